//! Allocation views: flamegraph stacks by allocation traceback (`--by alloc`), top allocation sites, and the
//! innermost allocation site of each object (for `--by type`).

use super::flame::{Stacks, sanitize};
use crate::alloc::join::{Join, Owner};
use crate::alloc::tracemalloc::Traces;
use crate::heap::graph::Graph;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// Leaf frame of a traced block no object owns.
pub const NOT_AN_OBJECT: &str = "(not an object)";

fn owner_type(g: &Graph, o: Owner) -> String {
    match o {
        Owner::Object(v) | Owner::Buffer(v) => g.type_label(v),
        Owner::None => NOT_AN_OBJECT.into(),
    }
}

/// Type key of a block's owner (`u32::MAX`: no object), for aggregating without building strings per block.
fn owner_key(g: &Graph, o: Owner) -> u32 {
    match o {
        Owner::Object(v) | Owner::Buffer(v) => g.ty(v),
        Owner::None => u32::MAX,
    }
}

/// A representative node of each type key (to render its label once).
fn key_names(g: &Graph, j: &Join, keys: impl Iterator<Item = u32>) -> FxHashMap<u32, String> {
    let mut want: FxHashMap<u32, String> = keys.map(|k| (k, String::new())).collect();
    for o in &j.owner {
        if let Owner::Object(v) | Owner::Buffer(v) = *o {
            let k = g.ty(v);
            if let Some(s) = want.get_mut(&k)
                && s.is_empty()
            {
                *s = owner_type(g, *o);
            }
        }
    }
    want.insert(u32::MAX, NOT_AN_OBJECT.into());
    want
}

/// Stacks: the traceback (outermost call first), then the type of the object the block belongs to; traced bytes.
pub fn by_alloc(g: &Graph, t: &Traces, j: &Join) -> Stacks {
    let mut agg: FxHashMap<(u32, u32), u64> = FxHashMap::default();
    let mut total = 0;
    for (i, b) in t.blocks.iter().enumerate() {
        *agg.entry((b.traceback, owner_key(g, j.owner[i])))
            .or_default() += b.size;
        total += b.size;
    }
    let names = key_names(g, j, agg.keys().map(|k| k.1));
    let mut tb_text: FxHashMap<u32, Vec<String>> = FxHashMap::default();
    let mut lines = vec![];
    for ((tb, key), bytes) in agg {
        let mut frames = tb_text
            .entry(tb)
            .or_insert_with(|| {
                t.tracebacks[tb as usize]
                    .iter()
                    .map(|f| sanitize(&j.frame_text(f)))
                    .collect()
            })
            .clone();
        if frames.is_empty() {
            frames.push("<unknown>".into());
        }
        frames.push(sanitize(&names[&key]));
        lines.push((frames, bytes));
    }
    lines.sort();
    Stacks {
        lines,
        total,
        objects: j.covered_objects,
    }
}

/// One allocation site (the innermost frame of the traceback).
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub site: String,
    pub bytes: u64,
    pub blocks: u64,
    /// types allocated there, by bytes: (type, blocks, bytes)
    pub types: Vec<(String, u64, u64)>,
}

/// Allocation sites by traced bytes, heaviest first.
pub fn sites(g: &Graph, t: &Traces, j: &Join) -> Vec<Site> {
    // (traceback, owner type) -> (blocks, bytes), then tracebacks -> their innermost frame's text
    let mut agg: FxHashMap<(u32, u32), (u64, u64)> = FxHashMap::default();
    for (i, b) in t.blocks.iter().enumerate() {
        let e = agg
            .entry((b.traceback, owner_key(g, j.owner[i])))
            .or_default();
        e.0 += 1;
        e.1 += b.size;
    }
    let names = key_names(g, j, agg.keys().map(|k| k.1));
    let mut inner: FxHashMap<u32, String> = FxHashMap::default();
    let mut by_site: FxHashMap<String, SiteAcc> = FxHashMap::default();
    for ((tb, key), (n, bytes)) in agg {
        let site = inner
            .entry(tb)
            .or_insert_with(|| {
                t.tracebacks[tb as usize]
                    .last()
                    .map(|f| j.frame_text(f))
                    .unwrap_or_else(|| "<unknown>".into())
            })
            .clone();
        let e = by_site.entry(site).or_default();
        e.0 += bytes;
        e.1 += n;
        let te = e.2.entry(names[&key].clone()).or_default();
        te.0 += n;
        te.1 += bytes;
    }
    let mut out: Vec<Site> = by_site
        .into_iter()
        .map(|(site, (bytes, blocks, types))| {
            let mut types: Vec<(String, u64, u64)> =
                types.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
            types.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            Site {
                site,
                bytes,
                blocks,
                types,
            }
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
    out
}

/// Per site: bytes, blocks, and per type (blocks, bytes).
type SiteAcc = (u64, u64, FxHashMap<String, (u64, u64)>);

/// The innermost allocation site of each object node that owns a traced block (index into the returned names).
pub fn object_sites(g: &Graph, t: &Traces, j: &Join) -> (Vec<u32>, Vec<String>) {
    let mut site_of = vec![u32::MAX; g.len()];
    let mut names: Vec<String> = vec![];
    let mut by_tb: FxHashMap<u32, u32> = FxHashMap::default();
    let mut by_name: FxHashMap<String, u32> = FxHashMap::default();
    for (i, b) in t.blocks.iter().enumerate() {
        if let Owner::Object(v) = j.owner[i] {
            let k = *by_tb.entry(b.traceback).or_insert_with(|| {
                let name = t.tracebacks[b.traceback as usize]
                    .last()
                    .map(|f| format!("allocated at {}", j.frame_text(f)))
                    .unwrap_or_else(|| "allocated at <unknown>".into());
                *by_name.entry(name.clone()).or_insert_with(|| {
                    names.push(name);
                    (names.len() - 1) as u32
                })
            });
            site_of[v as usize] = k;
        }
    }
    (site_of, names)
}
