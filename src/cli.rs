//! Command-line interface: argument parsing, calling the library, printing. The only place that exits.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pymemspy::output::{table, write_atomic};
use pymemspy::snapshot::{self, Options};
use pymemspy::target::Target;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "pymemspy", version, about = "Where did a running Python process's memory go? Read from outside, no restart.")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Attach {
    /// Process id of the Python process
    #[arg(short, long)]
    pub pid: i32,
    /// Do not stop the target; read it while it runs and validate (may need retries, may be less exact)
    #[arg(long)]
    pub nonblocking: bool,
    /// Give up stopping all threads after this many milliseconds
    #[arg(long, default_value_t = 2000, hide = true)]
    pub stop_timeout_ms: u64,
    /// Attempts when the target is caught mid garbage collection
    #[arg(long, default_value_t = 10, hide = true)]
    pub attempts: u32,
}

impl Attach {
    fn options(&self) -> Options {
        Options {
            nonblocking: self.nonblocking,
            attempts: self.attempts,
            stop_timeout: Duration::from_millis(self.stop_timeout_ms),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Census of live objects per type: count, bytes (as sys.getsizeof), share
    Summary {
        #[command(flatten)]
        attach: Attach,
        /// Output format
        #[arg(short, long, value_enum, default_value_t = SummaryFormat::Table)]
        format: SummaryFormat,
        /// Rows in the table (JSON always lists every type)
        #[arg(short, long, default_value_t = 25)]
        limit: usize,
        /// Write to this file instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show what pymemspy found about a process: version, binary, addresses, chosen layout
    Inspect {
        #[arg(short, long)]
        pid: i32,
    },
    /// Benchmark helper: stop the target, copy its writable memory, resume; print bytes and milliseconds as JSON
    #[command(hide = true)]
    BenchCopy {
        #[arg(short, long)]
        pid: i32,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Summary { attach, format, limit, output } => {
            let report = snapshot::census(attach.pid, &attach.options())?;
            let text = match format {
                SummaryFormat::Json => serde_json::to_string(&report)? + "\n",
                SummaryFormat::Table => table::render(&report, limit),
            };
            match output {
                Some(p) => {
                    write_atomic(&p, text.as_bytes()).with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!("Wrote {} ({} objects, {} bytes)", p.display(), report.objects, report.bytes);
                }
                None => print!("{text}"),
            }
        }
        Cmd::Inspect { pid } => {
            let t = Target::open(pid)?;
            println!("pid               {}", t.pid);
            println!("executable        {}", t.exe);
            println!("python            {}", t.version);
            println!("module            {} (opened as {})", t.python.path, t.python.host_path.display());
            println!("load bias         {:#x}{}", t.python.bias, if t.python.elf.is_exec { " (ET_EXEC)" } else { "" });
            println!("build id          {}", t.python.elf.build_id.as_deref().unwrap_or("-"));
            println!("symbol table      {}", if t.python.elf.has_symtab { "yes" } else { "no (.dynsym only)" });
            if let Some(d) = &t.python.debug_file {
                println!("debug file        {}", d.display());
            }
            println!("_PyRuntime        {:#x}", t.runtime);
            match &t.debug_offsets {
                Some(d) => println!(
                    "_Py_DebugOffsets  version {} free_threaded {} ({} fields, list {})",
                    d.version,
                    d.free_threaded,
                    d.fields.len(),
                    d.field_list
                ),
                None => println!("_Py_DebugOffsets  none"),
            }
            let layout = pymemspy::layout::Layout::select(t.version, t.debug_offsets.as_ref())
                .map_err(|source| pymemspy::target::TargetError::Layout { pid, source })?;
            for n in &layout.notes {
                println!("layout            {n}");
            }
        }
        Cmd::BenchCopy { pid } => {
            let t = Target::open(pid)?;
            let cap = t.capture(false, Duration::from_secs(2))?;
            println!(
                "{}",
                serde_json::json!({"bytes": cap.bytes, "snapshot_bytes": cap.snapshot.total_bytes(), "pause_ms": cap.pause.as_secs_f64() * 1000.0, "threads": cap.threads})
            );
        }
    }
    Ok(())
}
