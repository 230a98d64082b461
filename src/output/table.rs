//! The terminal table of `summary`: a header line, then the types holding the most memory.

use super::human_bytes;
use crate::snapshot::Report;
use std::fmt::Write;

pub fn render(r: &Report, limit: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pid {}  Python {}  {}  objects {}  bytes {} ({})  paused {:.1} ms",
        r.pid,
        r.python_version,
        r.executable,
        r.objects,
        r.bytes,
        human_bytes(r.bytes),
        r.pause_ms
    );
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>7} {:>14}  TYPE",
        "COUNT", "BYTES", "SHARE", "FOOTPRINT"
    );
    for t in r.types.iter().take(limit) {
        let share = if r.bytes > 0 {
            100.0 * t.bytes as f64 / r.bytes as f64
        } else {
            0.0
        };
        let name = if t.module.is_empty() {
            t.name.clone()
        } else {
            format!("{}.{}", t.module, t.name)
        };
        let _ = writeln!(
            s,
            "{:>12} {:>14} {:>6.2}% {:>14}  {}",
            t.count, t.bytes, share, t.footprint, name
        );
    }
    if r.types.len() > limit {
        let rest: u64 = r.types[limit..].iter().map(|t| t.bytes).sum();
        let _ = writeln!(
            s,
            "... {} more types, {} bytes",
            r.types.len() - limit,
            rest
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
