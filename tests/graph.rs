//! The reference graph through the library, against tests/fixtures/retained.py on every interpreter (same set
//! and skip/require policy as tests/census.rs), on one snapshot:
//! * the graph's census (`Graph::census`) equals the heap walk's census (`heap::walk::census`, what `summary`
//!   reports): the same objects, GC-tracked objects, bytes and footprint, per type and in total;
//! * a graph built with 64-bit reference slots (the path for snapshots of 32 GiB or more) equals the one built
//!   with 32-bit slots: node for node by address, the same type, sizes, flags and outgoing edges with labels;
//! * a graph built with `build_releasing` (the heap part of the snapshot given back after the walk) has the same
//!   nodes and renders every edge label exactly as the first graph did while the snapshot was whole.

mod common;

use common::*;
use pymemspy::heap::graph::{self, BuildOptions, Graph};
use pymemspy::heap::{HeapError, walk};
use pymemspy::snapshot::{Options, with_heap};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/retained.py");

/// Per object node, by address: (type, getsizeof, footprint, flags, sorted edges as (target address, label)).
type Nodes = HashMap<u64, (String, u64, u64, u8, Vec<(u64, String)>)>;

fn nodes(g: &Graph) -> Nodes {
    (g.first_object..g.len() as u32)
        .map(|v| {
            let mut edges: Vec<(u64, String)> = g
                .succ(v)
                .map(|(t, l)| (g.addr(t), g.render_label(l)))
                .collect();
            edges.sort();
            (
                g.addr(v),
                (
                    g.type_label(v),
                    g.size(v),
                    g.footprint(v),
                    g.flags[v as usize],
                    edges,
                ),
            )
        })
        .collect()
}

fn compare(what: &str, a: &Nodes, b: &Nodes, bad: &mut Vec<String>) {
    if a.len() != b.len() {
        bad.push(format!("{what}: {} nodes, expected {}", b.len(), a.len()));
    }
    let mut shown = 0;
    for (addr, na) in a {
        let diff = match b.get(addr) {
            None => Some(format!("object {addr:#x} ({}) missing", na.0)),
            Some(nb) if nb != na => Some(format!("object {addr:#x}: {nb:?}, expected {na:?}")),
            _ => None,
        };
        if let Some(d) = diff {
            shown += 1;
            if shown <= 5 {
                bad.push(format!("{what}: {d}"));
            }
        }
    }
    if shown > 5 {
        bad.push(format!("{what}: {} objects differ in all", shown));
    }
}

fn graph_test(test: &str, id: &str) {
    let Some(interp) = interp_or_skip(test, id) else {
        return;
    };
    let cmd = python_command(&interp, Path::new(FIXTURE), &[]);
    let (fx, _truth): (Fixture, serde_json::Value) = start_with_truth(
        cmd,
        &format!("retained fixture under {}", interp.describe()),
    )
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    let (bad, _) = with_heap(fx.pid, &Options::default(), |ctx| {
        let mut bad = vec![];
        let census = walk::census(ctx)?;
        let g = graph::build(ctx)?;
        let gc = g.census();
        let totals = |c: &pymemspy::heap::Census| (c.objects, c.bytes, c.footprint, c.gc_tracked);
        if totals(&gc) != totals(&census) {
            bad.push(format!(
                "graph census (objects, bytes, footprint, gc_tracked) {:?}, walk census {:?}",
                totals(&gc),
                totals(&census)
            ));
        }
        let per_type = |c: &pymemspy::heap::Census| -> BTreeMap<String, (u64, u64, u64, u64)> {
            c.types
                .iter()
                .map(|t| {
                    (
                        format!("{}.{}", t.module, t.name),
                        (t.count, t.bytes, t.footprint, t.tracked),
                    )
                })
                .collect()
        };
        let (pg, pw) = (per_type(&gc), per_type(&census));
        for (k, v) in &pw {
            if pg.get(k) != Some(v) {
                bad.push(format!("type {k}: graph {:?}, walk {v:?}", pg.get(k)));
            }
        }
        for k in pg.keys().filter(|k| !pw.contains_key(*k)) {
            bad.push(format!("type {k} only in the graph's census"));
        }
        let narrow = nodes(&g);
        // every object the walk counted (static ones included) is a node
        if narrow.len() as u64 != census.objects + census.static_objects {
            bad.push(format!(
                "{} object nodes, the walk found {} objects and {} static ones",
                narrow.len(),
                census.objects,
                census.static_objects
            ));
        }
        let wide = graph::build_with(
            ctx,
            BuildOptions {
                wide_slots: true,
                ..Default::default()
            },
        )?;
        compare("64-bit slots", &narrow, &nodes(&wide), &mut bad);
        drop(wide);
        drop(g);
        // last: this one releases the objects' memory, after which only its own name table may be read
        let released = graph::build_releasing(ctx)?;
        compare("released snapshot", &narrow, &nodes(&released), &mut bad);
        Ok::<_, HeapError>(bad)
    })
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    drop(fx);
    assert!(bad.is_empty(), "{test}:\n  {}", bad.join("\n  "));
}

#[test]
fn py38() {
    graph_test("py38", "py38");
}

#[test]
fn py39() {
    graph_test("py39", "py39");
}

#[test]
fn py310() {
    graph_test("py310", "py310");
}

#[test]
fn py311() {
    graph_test("py311", "py311");
}

#[test]
fn py312() {
    graph_test("py312", "py312");
}

#[test]
fn py313() {
    graph_test("py313", "py313");
}

#[test]
fn debian_py311_static() {
    graph_test("debian_py311_static", "debian_py311_static");
}

#[test]
fn sid_py313() {
    graph_test("sid_py313", "sid_py313");
}

#[test]
fn sid_py314() {
    graph_test("sid_py314", "sid_py314");
}

#[test]
fn sid_py315() {
    graph_test("sid_py315", "sid_py315");
}
