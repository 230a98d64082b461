//! The terminal table of `summary`: a header line, then the types holding the most memory.

use super::human_bytes;
use crate::snapshot::Report;
use std::fmt::Write;

pub fn render(r: &Report, limit: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pid {}  Python {}  {}  objects {}  bytes {} ({})  paused {:.1} ms",
        r.meta.pid,
        r.meta.python_version,
        r.meta.executable,
        r.objects,
        r.bytes,
        human_bytes(r.bytes),
        r.meta.pause_ms
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
    for w in &r.meta.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// The table of `summary --by alloc`: allocation sites by traced bytes.
pub fn render_sites(
    m: &crate::snapshot::Meta,
    cov: &serde_json::Value,
    sites: &[crate::analysis::alloc::Site],
    limit: usize,
) -> String {
    let mut s = String::new();
    let g = |k: &str| cov[k].as_u64().unwrap_or(0);
    let pct = |a: u64, b: u64| {
        if b > 0 {
            100.0 * a as f64 / b as f64
        } else {
            0.0
        }
    };
    let _ = writeln!(
        s,
        "pid {}  Python {}  {}  traced {} in {} blocks  paused {:.1} ms",
        m.pid,
        m.python_version,
        m.executable,
        human_bytes(g("traced_bytes")),
        g("traced_blocks"),
        m.pause_ms
    );
    let _ = writeln!(
        s,
        "coverage: {} of {} objects ({:.1}%) and {:.1}% of their bytes have an allocation trace; objects allocated before tracing started have none",
        g("objects_traced"),
        g("objects"),
        pct(g("objects_traced"), g("objects")),
        pct(g("bytes_traced"), g("bytes"))
    );
    let _ = writeln!(s, "{:>14} {:>10}  SITE  (TYPES)", "BYTES", "BLOCKS");
    for site in sites.iter().take(limit) {
        let types: Vec<String> = site
            .types
            .iter()
            .take(3)
            .map(|(t, n, _)| format!("{t} ×{n}"))
            .collect();
        let _ = writeln!(
            s,
            "{:>14} {:>10}  {}  ({})",
            site.bytes,
            site.blocks,
            site.site,
            types.join(", ")
        );
    }
    if sites.len() > limit {
        let _ = writeln!(s, "... {} more sites", sites.len() - limit);
    }
    s
}
