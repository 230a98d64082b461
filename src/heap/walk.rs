//! The heap walk: every object on the GC lists, then everything reachable from them and from the roots, each
//! visited once (an atomic bitmap over the snapshot), sized and tallied by type. Runs on every core: threads take
//! chunks of GC objects and walk depth-first from them; whoever marks an object first owns it.

use super::HeapError;
use super::census::{Census, TypeTally};
use super::ctx::Ctx;
use super::decode::refs;
use super::gc::gc_objects;
use super::roots::roots;
use super::size::{footprint, getsizeof};
use super::types::Types;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One bit per 8-byte word of every snapshot region.
struct Visited {
    bits: Vec<Vec<AtomicU64>>,
}

impl Visited {
    fn new(ctx: &Ctx) -> Visited {
        Visited {
            bits: ctx
                .mem
                .regions()
                .iter()
                .map(|r| {
                    (0..r.len().div_ceil(8 * 64))
                        .map(|_| AtomicU64::new(0))
                        .collect()
                })
                .collect(),
        }
    }
    /// Set the bit for `a`; false if it was already set or `a` is outside the snapshot.
    #[inline]
    fn insert(&self, ctx: &Ctx, a: u64) -> bool {
        let Some((i, off)) = ctx.mem.locate(a) else {
            return false;
        };
        self.insert_at(i, off)
    }
    #[inline]
    fn contains(&self, region: usize, off: usize) -> bool {
        let w = off / 8;
        self.bits[region][w / 64].load(Ordering::Relaxed) & (1u64 << (w % 64)) != 0
    }
    #[inline]
    fn insert_at(&self, region: usize, off: usize) -> bool {
        let w = off / 8;
        let m = 1u64 << (w % 64);
        let slot = &self.bits[region][w / 64];
        if slot.load(Ordering::Relaxed) & m != 0 {
            return false;
        }
        slot.fetch_or(m, Ordering::Relaxed) & m == 0
    }
}

/// What one walker thread found.
#[derive(Default)]
struct Part {
    tallies: FxHashMap<(String, String), TypeTally>,
    static_objects: u64,
    rejected: u64,
}

const CHUNK: usize = 4096;

/// Walk from the GC objects of the shared queue (and, for the first thread, the roots) until it is empty.
fn walk_part(
    ctx: &Ctx,
    visited: &Visited,
    tracked: &[u64],
    next: &AtomicUsize,
    root_refs: &[u64],
) -> Part {
    let mut types = Types::default();
    let mut tallies: Vec<TypeTally> = Vec::new();
    let mut part = Part::default();
    let mut work: Vec<(u64, bool)> = Vec::new();
    let mut out: Vec<u64> = Vec::with_capacity(1024);
    let mut items = Vec::new();
    let mut rejected = 0u64;
    let mut consider = |p: u64, work: &mut Vec<(u64, bool)>, types: &mut Types| {
        if p == 0 || p & 7 != 0 {
            return;
        }
        let Some((region, off)) = ctx.mem.locate(p) else {
            rejected += 1;
            return;
        };
        // most references lead to objects seen already (types, shared strings, small ints): check that first
        if visited.contains(region, off) {
            return;
        }
        let Some(hdr) = ctx.mem.regions()[region].data.as_slice().get(off..off + 16) else {
            rejected += 1;
            return;
        };
        let refcnt = u32::from_le_bytes(hdr[..4].try_into().unwrap());
        let t = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        // a live object has a non-zero refcount and a valid type
        if refcnt == 0 || types.get(ctx, t).is_none() {
            rejected += 1;
            return;
        }
        if visited.insert_at(region, off) {
            work.push((p, false));
        }
    };
    for &p in root_refs {
        consider(p, &mut work, &mut types);
    }
    loop {
        if work.is_empty() {
            let start = next.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= tracked.len() {
                break;
            }
            // GC objects were all marked up front; walking from them is this thread's share
            work.extend(
                tracked[start..(start + CHUNK).min(tracked.len())]
                    .iter()
                    .rev()
                    .map(|&a| (a, true)),
            );
        }
        while let Some((a, is_tracked)) = work.pop() {
            let Some(t) = ctx.u64(a + 8) else { continue };
            let Some(ti) = types.get(ctx, t) else {
                continue;
            };
            let ti = types.infos[ti as usize].clone();
            if ctx.is_static(a) {
                part.static_objects += 1;
            } else {
                let key = ti.key as usize;
                if tallies.len() <= key {
                    tallies.resize_with(key + 1, TypeTally::default);
                }
                let size = getsizeof(ctx, a, &ti);
                let fp = footprint(ctx, a, &ti, size);
                let tally = &mut tallies[key];
                tally.count += 1;
                tally.bytes += size;
                tally.footprint += fp;
                tally.tracked += is_tracked as u64;
            }
            out.clear();
            // every object refers to its type
            out.push(t);
            refs(ctx, a, &ti, &mut out, &mut items);
            for &p in out.iter() {
                consider(p, &mut work, &mut types);
            }
        }
    }
    part.rejected = rejected;
    for (k, t) in tallies.into_iter().enumerate() {
        if t.count > 0 {
            part.tallies.insert(types.key_names[k].clone(), t);
        }
    }
    part
}

/// Walk the heap and take a census.
pub fn census(ctx: &Ctx) -> Result<Census, HeapError> {
    let visited = Visited::new(ctx);
    let mut tracked = Vec::new();
    let gc_tracked = gc_objects(ctx, &mut tracked)?;
    if gc_tracked == 0 {
        return Err(HeapError::Invalid("the GC lists are empty".into()));
    }
    // an object may sit on a list twice only in a torn copy; mark them all before walking
    tracked.retain(|&a| visited.insert(ctx, a));
    let mut root_refs = Vec::new();
    roots(ctx, &mut root_refs);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let next = AtomicUsize::new(0);
    let parts: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (visited, tracked, next) = (&visited, &tracked, &next);
                let roots: &[u64] = if i == 0 { &root_refs } else { &[] };
                s.spawn(move || walk_part(ctx, visited, tracked, next, roots))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("walker thread panicked"))
            .collect()
    });
    let mut census = Census {
        gc_tracked: gc_tracked as u64,
        ..Default::default()
    };
    let mut merged: FxHashMap<(String, String), TypeTally> = FxHashMap::default();
    for p in parts {
        census.static_objects += p.static_objects;
        census.rejected_refs += p.rejected;
        for (k, t) in p.tallies {
            let m = merged.entry(k).or_default();
            m.count += t.count;
            m.bytes += t.bytes;
            m.footprint += t.footprint;
            m.tracked += t.tracked;
        }
    }
    for ((module, name), mut t) in merged {
        t.name = name;
        t.module = module;
        census.objects += t.count;
        census.bytes += t.bytes;
        census.footprint += t.footprint;
        census.types.push(t);
    }
    census.sort();
    Ok(census)
}
