//! The heap walk: every object on the GC lists, then everything reachable from them and from the roots, each
//! visited once (a bitmap over the snapshot), sized and tallied by type.

use super::HeapError;
use super::census::{Census, TypeTally};
use super::ctx::Ctx;
use super::decode::refs;
use super::gc::gc_objects;
use super::roots::roots;
use super::size::{footprint, getsizeof};
use super::types::Types;

/// One bit per 8-byte word of every snapshot region.
struct Visited {
    bits: Vec<Vec<u64>>,
}

impl Visited {
    fn new(ctx: &Ctx) -> Visited {
        Visited {
            bits: ctx
                .mem
                .regions()
                .iter()
                .map(|r| vec![0u64; r.len().div_ceil(8 * 64)])
                .collect(),
        }
    }
    /// Set the bit for `a`; false if it was already set or `a` is outside the snapshot.
    #[inline]
    fn insert(&mut self, ctx: &Ctx, a: u64) -> bool {
        let Some((i, off)) = ctx.mem.locate(a) else {
            return false;
        };
        self.insert_at(i, off)
    }
    #[inline]
    fn insert_at(&mut self, region: usize, off: usize) -> bool {
        let w = off / 8;
        let slot = &mut self.bits[region][w / 64];
        let m = 1u64 << (w % 64);
        if *slot & m != 0 {
            return false;
        }
        *slot |= m;
        true
    }
}

/// Walk the heap and take a census.
pub fn census(ctx: &Ctx) -> Result<Census, HeapError> {
    let mut types = Types::default();
    let mut visited = Visited::new(ctx);
    let mut work: Vec<(u64, bool)> = Vec::new();
    let mut tracked = Vec::new();
    let gc_tracked = gc_objects(ctx, &mut tracked)?;
    if gc_tracked == 0 {
        return Err(HeapError::Invalid("the GC lists are empty".into()));
    }
    for &a in &tracked {
        if visited.insert(ctx, a) {
            work.push((a, true));
        }
    }
    drop(tracked);
    let mut root_refs = Vec::new();
    roots(ctx, &mut root_refs);

    let mut tallies: Vec<TypeTally> = Vec::new();
    let mut census = Census {
        gc_tracked: gc_tracked as u64,
        ..Default::default()
    };
    let mut out: Vec<u64> = Vec::with_capacity(1024);
    let mut items = Vec::new();
    let mut rejected = 0u64;
    let mut consider =
        |p: u64, work: &mut Vec<(u64, bool)>, visited: &mut Visited, types: &mut Types| {
            if p == 0 || p & 7 != 0 {
                return;
            }
            let Some((region, off)) = ctx.mem.locate(p) else {
                rejected += 1;
                return;
            };
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
    for p in root_refs.drain(..) {
        consider(p, &mut work, &mut visited, &mut types);
    }
    while let Some((a, is_tracked)) = work.pop() {
        let Some(t) = ctx.u64(a + 8) else { continue };
        let Some(ti) = types.get(ctx, t) else {
            continue;
        };
        let ti = types.infos[ti as usize].clone();
        if ctx.is_static(a) {
            census.static_objects += 1;
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
            consider(p, &mut work, &mut visited, &mut types);
        }
    }
    census.rejected_refs = rejected;
    for (k, mut t) in tallies.into_iter().enumerate() {
        if t.count == 0 {
            continue;
        }
        let (module, name) = types.key_names[k].clone();
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
