//! Entry point: logging, Ctrl-C, and turning every error into one plain sentence and a non-zero exit.

mod cli;

use clap::Parser;
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOC: pymemspy::memory::huge::HugePages = pymemspy::memory::huge::HugePages;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Ctrl-C: finish or abandon the current step, resume the target, exit. (If pymemspy is killed outright the
    // kernel detaches ptrace and the target resumes by itself.)
    let _ = ctrlc::set_handler(|| {
        pymemspy::target::INTERRUPTED.store(true, Ordering::SeqCst);
        if !pymemspy::target::PAUSED.load(Ordering::SeqCst) {
            // the target is running: nothing to undo, and output files are only ever renamed into place whole
            eprintln!("pymemspy: error: interrupted");
            std::process::exit(130);
        }
    });
    let cli = cli::Cli::parse();
    if let Err(e) = cli::run(cli) {
        // one sentence: the chain joined, without duplicates
        let mut parts: Vec<String> = vec![];
        for c in e.chain() {
            let s = c.to_string();
            if !parts.iter().any(|p| p.contains(&s)) {
                parts.push(s);
            }
        }
        eprintln!("pymemspy: error: {}", parts.join(": "));
        let interrupted = pymemspy::target::INTERRUPTED.load(Ordering::SeqCst);
        std::process::exit(if interrupted { 130 } else { 1 });
    }
}
