//! Command-line interface: argument parsing, calling the library, printing. The only place that exits.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pymemspy::alloc::join::{Join, join};
use pymemspy::alloc::tracemalloc::{self, TraceError, Traces};
use pymemspy::analysis::alloc as alloc_view;
use pymemspy::analysis::flame::{self, FlameOptions};
use pymemspy::analysis::{DomTree, SizeModel, paths};
use pymemspy::heap::HeapError;
use pymemspy::heap::graph;
use pymemspy::output::{table, write_atomic};
use pymemspy::snapshot::{self, Options};
use pymemspy::target::Target;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "pymemspy",
    version,
    about = "Where did a running Python process's memory go? Read from outside, no restart."
)]
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
    /// Python 3.14+: ask the target to start tracemalloc with N frames first (PEP 768; writes to the target)
    #[arg(long, value_name = "N")]
    pub start_tracemalloc: Option<u32>,
}

impl Attach {
    fn options(&self) -> Options {
        Options {
            nonblocking: self.nonblocking,
            attempts: self.attempts,
            stop_timeout: Duration::from_millis(self.stop_timeout_ms),
            start_tracemalloc: self.start_tracemalloc,
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
        /// Tally by type, or by allocation site (needs tracemalloc in the target)
        #[arg(long, value_enum, default_value_t = SummaryBy::Type)]
        by: SummaryBy,
        /// Write to this file instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Flamegraph of retained memory: which module, global, container and object chain keeps it alive
    Record {
        #[command(flatten)]
        attach: Attach,
        /// Output file (default: pymemspy-PID-TIME.EXT in the current directory)
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Output format
        #[arg(short, long, value_enum, default_value_t = RecordFormat::Svg)]
        format: RecordFormat,
        /// Stacks by retaining path (dominator tree), or by type then who retains it
        #[arg(long, value_enum, default_value_t = By::Path)]
        by: By,
        /// Size each object contributes
        #[arg(long, value_enum, default_value_t = Size::Footprint)]
        size: Size,
        /// Deepest frame of the flamegraph
        #[arg(long, default_value_t = 48)]
        max_depth: usize,
        /// Frames narrower than this percentage of the total are merged into their parent
        #[arg(long, default_value_t = 0.05)]
        min_percent: f64,
    },
    /// Shortest reference chains from the roots to objects of a type (or at an address): who keeps them alive
    Paths {
        #[command(flatten)]
        attach: Attach,
        /// Type name, e.g. Order or billing.models.Order
        #[arg(long, required_unless_present = "address")]
        r#type: Option<String>,
        /// Object address (hex, as id() shows it in decimal or hex)
        #[arg(long, conflicts_with = "type")]
        address: Option<String>,
        /// Number of chains
        #[arg(short, long, default_value_t = 5)]
        limit: usize,
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    Svg,
    Folded,
    Json,
}

impl RecordFormat {
    fn extension(self) -> &'static str {
        match self {
            RecordFormat::Svg => "svg",
            RecordFormat::Folded => "folded",
            RecordFormat::Json => "json",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// retaining path (dominator tree)
    Path,
    /// type, then (allocation site and) who retains it
    Type,
    /// allocation traceback, then type (needs tracemalloc in the target)
    Alloc,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryBy {
    Type,
    Alloc,
}

/// The target's tracemalloc traces joined to its objects, or a one-sentence error naming the remedy.
fn traces_for(g: &graph::Graph, _pid: i32, minor: u8) -> Result<(Traces, Join), HeapError> {
    let t0 = std::time::Instant::now();
    let t = tracemalloc::read(g.ctx()).map_err(|e| match e {
        TraceError::NotTracing => HeapError::Other(format!(
            "tracemalloc is not tracing in it: start the program with PYTHONTRACEMALLOC=10 or -X tracemalloc=10{}",
            if minor >= 14 { ", or pass --start-tracemalloc 10" } else { "" }
        )),
        e @ TraceError::Corrupt { .. } => HeapError::from(e),
        other => HeapError::Other(format!("cannot read its tracemalloc tables: {other}")),
    })?;
    log::info!(
        "tracemalloc tables: {} blocks in {:?}",
        t.blocks.len(),
        t0.elapsed()
    );
    let t0 = std::time::Instant::now();
    let mut j = join(g, &t);
    log::info!("join: {:?}", t0.elapsed());
    j.set_source_root(std::path::PathBuf::from(format!("/proc/{_pid}/root")));
    Ok((t, j))
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Footprint,
    Getsizeof,
}

fn parse_address(s: &str) -> Result<u64> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse::<u64>(),
    };
    r.with_context(|| format!("{s} is not an address (decimal as id() prints it, or 0x-hex)"))
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Summary {
            attach,
            format,
            limit,
            output,
            by: SummaryBy::Alloc,
        } => {
            let pid = attach.pid;
            let ((sites, cov), meta) = snapshot::with_heap(pid, &attach.options(), |ctx| {
                let t0 = std::time::Instant::now();
                let g = graph::build(ctx)?;
                log::info!("graph: {} nodes in {:?}", g.len(), t0.elapsed());
                let (t, j) = traces_for(&g, pid, ctx.minor)?;
                let traced: u64 = t.blocks.iter().map(|b| b.size).sum();
                let cov = serde_json::json!({
                    "traced_bytes": traced,
                    "traced_blocks": t.blocks.len(),
                    "objects": j.total_objects,
                    "objects_traced": j.covered_objects,
                    "bytes": j.total_bytes,
                    "bytes_traced": j.covered_bytes,
                    "max_nframe": t.max_nframe,
                });
                Ok((alloc_view::sites(&g, &t, &j), cov))
            })?;
            let text = match format {
                SummaryFormat::Json => {
                    let mut v = serde_json::to_value(&meta)?;
                    v["coverage"] = cov;
                    v["sites"] = serde_json::to_value(&sites)?;
                    serde_json::to_string(&v)? + "\n"
                }
                SummaryFormat::Table => table::render_sites(&meta, &cov, &sites, limit),
            };
            match output {
                Some(p) => write_atomic(&p, text.as_bytes())
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => print!("{text}"),
            }
        }
        Cmd::Summary {
            attach,
            format,
            limit,
            output,
            by: SummaryBy::Type,
        } => {
            let report = snapshot::census(attach.pid, &attach.options())?;
            let text = match format {
                SummaryFormat::Json => serde_json::to_string(&report)? + "\n",
                SummaryFormat::Table => table::render(&report, limit),
            };
            match output {
                Some(p) => {
                    write_atomic(&p, text.as_bytes())
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!(
                        "Wrote {} ({} objects, {} bytes)",
                        p.display(),
                        report.objects,
                        report.bytes
                    );
                }
                None => print!("{text}"),
            }
        }
        Cmd::Record {
            attach,
            output,
            format,
            by,
            size,
            max_depth,
            min_percent,
        } => {
            let model = match size {
                Size::Footprint => SizeModel::Footprint,
                Size::Getsizeof => SizeModel::Getsizeof,
            };
            let fopts = FlameOptions {
                max_depth: max_depth.max(1),
                min_fraction: (min_percent / 100.0).max(0.0),
            };
            let (stacks, meta) = snapshot::with_heap(attach.pid, &attach.options(), |ctx| {
                let t = std::time::Instant::now();
                // by path, nothing is read from the objects' memory once the graph is built
                let g = if by == By::Path {
                    graph::build_releasing(ctx)?
                } else {
                    graph::build(ctx)?
                };
                log::info!("graph: {} nodes in {:?}", g.len(), t.elapsed());
                let t = std::time::Instant::now();
                let d = if by == By::Alloc {
                    DomTree::empty()
                } else {
                    DomTree::new(&g, model)
                };
                log::info!("dominators: {:?}", t.elapsed());
                let t = std::time::Instant::now();
                let s = match by {
                    By::Path => flame::by_path(&g, &d, &fopts),
                    By::Type => match traces_for(&g, attach.pid, g.ctx().minor) {
                        Ok((t, j)) => {
                            let (site_of, names) = alloc_view::object_sites(&g, &t, &j);
                            flame::by_type(&g, &d, &fopts, Some((&site_of, &names)))
                        }
                        Err(_) => flame::by_type(&g, &d, &fopts, None),
                    },
                    By::Alloc => {
                        let (t, j) = traces_for(&g, attach.pid, g.ctx().minor)?;
                        alloc_view::by_alloc(&g, &t, &j)
                    }
                };
                log::info!("stacks: {} lines in {:?}", s.lines.len(), t.elapsed());
                let t = std::time::Instant::now();
                drop(d);
                drop(g);
                log::debug!("freed the graph in {:?}", t.elapsed());
                let (fresh, reused) = pymemspy::memory::huge::stats();
                log::debug!(
                    "big blocks: {} MiB fresh, {} MiB reused",
                    fresh >> 20,
                    reused >> 20
                );
                Ok(s)
            })?;
            let when =
                chrono::DateTime::from_timestamp(meta.taken_at as i64, 0).unwrap_or_default();
            let path = output.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "pymemspy-{}-{}.{}",
                    meta.pid,
                    when.format("%Y%m%dT%H%M%S"),
                    format.extension()
                ))
            });
            let title = format!(
                "pymemspy: pid {} Python {} — {} objects, {} retained ({} UTC)",
                meta.pid,
                meta.python_version,
                stacks.objects,
                pymemspy::output::human_bytes(stacks.total),
                when.format("%Y-%m-%d %H:%M:%S")
            );
            let subtitle = format!(
                "{} by {}; widths are {} bytes; paused {:.1} ms",
                meta.executable,
                if by == By::Path {
                    "retaining path (dominator tree)"
                } else {
                    "type, then who retains it"
                },
                if model == SizeModel::Footprint {
                    "footprint"
                } else {
                    "sys.getsizeof"
                },
                meta.pause_ms
            );
            let bytes = match format {
                RecordFormat::Svg => pymemspy::output::flame::svg(&stacks, &title, &subtitle)?,
                RecordFormat::Folded => {
                    if stacks.lines.is_empty() {
                        return Err(pymemspy::output::flame::FlameError::Empty.into());
                    }
                    stacks.folded().into_bytes()
                }
                RecordFormat::Json => {
                    let m = serde_json::to_value(&meta)?;
                    serde_json::to_vec(&pymemspy::output::flame::json_tree(&stacks, m, 8))?
                }
            };
            write_atomic(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "Wrote {} to '{}'. Objects: {}, bytes: {}, paused {:.1} ms",
                match format {
                    RecordFormat::Svg => "flamegraph",
                    RecordFormat::Folded => "folded stacks",
                    RecordFormat::Json => "JSON",
                },
                path.display(),
                stacks.objects,
                stacks.total,
                meta.pause_ms
            );
        }
        Cmd::Paths {
            attach,
            r#type,
            address,
            limit,
        } => {
            let target = match (r#type, address) {
                (_, Some(a)) => paths::Target::Address(parse_address(&a)?),
                (Some(t), None) => paths::Target::Type(t),
                (None, None) => anyhow::bail!("give --type or --address"),
            };
            let (chains, _meta) = snapshot::with_heap(attach.pid, &attach.options(), |ctx| {
                let g = graph::build(ctx)?;
                Ok(paths::shortest_paths(&g, &target, limit))
            })?;
            if chains.is_empty() {
                anyhow::bail!("no live object matched in process {}", attach.pid);
            }
            for c in chains {
                println!("{}", c.join(" → "));
            }
        }
        Cmd::Inspect { pid } => {
            let t = Target::open(pid)?;
            println!("pid               {}", t.pid);
            println!("executable        {}", t.exe);
            println!("python            {}", t.version);
            println!(
                "module            {} (opened as {})",
                t.python.path,
                t.python.host_path.display()
            );
            println!(
                "load bias         {:#x}{}",
                t.python.bias,
                if t.python.elf.is_exec {
                    " (ET_EXEC)"
                } else {
                    ""
                }
            );
            println!(
                "build id          {}",
                t.python.elf.build_id.as_deref().unwrap_or("-")
            );
            println!(
                "symbol table      {}",
                if t.python.elf.has_symtab {
                    "yes"
                } else {
                    "no (.dynsym only)"
                }
            );
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
