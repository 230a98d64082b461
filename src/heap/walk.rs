//! The heap walk: every object on the GC lists, then everything reachable from them and from the roots, each
//! visited once (an atomic bitmap over the snapshot), sized and tallied by type. Runs on every core: threads take
//! chunks of GC objects and walk depth-first from them; whoever marks an object first owns it.

use super::HeapError;
use super::census::{Census, TypeTally};
use super::ctx::Ctx;
use super::decode::refs;
use super::gc::gc_objects;
use super::label::{Label, Sink};
use super::roots::roots;
use super::size::{footprint, getsizeof};
use super::types::{TypeInfo, Types};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One bit per 8-byte word of every snapshot region, in one array: region `r`'s bits start at `base[r]` (a
/// multiple of 64), so an object's bit index (its "slot") is a dense number across the whole snapshot.
pub(crate) struct Visited {
    bits: Vec<AtomicU64>,
    base: Vec<u64>,
}

impl Visited {
    pub(crate) fn new(ctx: &Ctx) -> Visited {
        let mut base = Vec::with_capacity(ctx.mem.regions().len());
        let mut total = 0u64;
        for r in ctx.mem.regions() {
            base.push(total);
            total += (r.len() as u64).div_ceil(8 * 64) * 64;
        }
        Visited {
            bits: (0..total / 64).map(|_| AtomicU64::new(0)).collect(),
            base,
        }
    }
    /// The first slot of each region (regions in address order).
    pub(crate) fn bases(&self) -> &[u64] {
        &self.base
    }
    /// The slot of the word at `off` in region `region`.
    #[inline]
    pub(crate) fn slot(&self, region: usize, off: usize) -> u64 {
        self.base[region] + (off / 8) as u64
    }
    /// Set the bit for `a`; false if it was already set or `a` is outside the snapshot.
    #[inline]
    pub(crate) fn insert(&self, ctx: &Ctx, a: u64) -> bool {
        // objects are 8-byte aligned; an unaligned value (a torn list, a stale field) is no object
        if a & 7 != 0 {
            return false;
        }
        let Some((i, off)) = ctx.mem.locate(a) else {
            return false;
        };
        self.insert_slot(self.slot(i, off))
    }
    #[inline]
    fn contains_slot(&self, s: u64) -> bool {
        self.bits[(s / 64) as usize].load(Ordering::Relaxed) & (1u64 << (s % 64)) != 0
    }
    #[inline]
    fn insert_slot(&self, s: u64) -> bool {
        let m = 1u64 << (s % 64);
        let word = &self.bits[(s / 64) as usize];
        if word.load(Ordering::Relaxed) & m != 0 {
            return false;
        }
        word.fetch_or(m, Ordering::Relaxed) & m == 0
    }
}

/// A reference as a decoder reports it: an address alone (the census), or with its label (the graph).
pub(crate) trait Ref: Copy + Send {
    fn addr(self) -> u64;
    fn label(self) -> Label;
}

impl Ref for u64 {
    #[inline]
    fn addr(self) -> u64 {
        self
    }
    #[inline]
    fn label(self) -> Label {
        Label::None
    }
}

impl Ref for (u64, Label) {
    #[inline]
    fn addr(self) -> u64 {
        self.0
    }
    #[inline]
    fn label(self) -> Label {
        self.1
    }
}

/// Dense numbers for the objects marked in a `Visited`: the rank of an object's bit among all set bits, in
/// address order. Prefix counts per 64-bit word, so a rank is one lookup and one popcount.
pub(crate) struct Ranks<'v> {
    visited: &'v Visited,
    prefix: Vec<u32>,
    pub total: usize,
}

impl Visited {
    pub(crate) fn ranks(&self) -> Ranks<'_> {
        let mut acc = 0usize;
        let prefix = self
            .bits
            .iter()
            .map(|w| {
                let p = acc as u32;
                acc += w.load(Ordering::Relaxed).count_ones() as usize;
                p
            })
            .collect();
        Ranks {
            visited: self,
            prefix,
            total: acc,
        }
    }
}

impl Ranks<'_> {
    /// The rank of the marked slot `s`, or None if it is not marked.
    #[inline]
    pub(crate) fn rank_slot(&self, s: u64) -> Option<u32> {
        let i = (s / 64) as usize;
        let word = self.visited.bits.get(i)?.load(Ordering::Relaxed);
        let bit = 1u64 << (s % 64);
        (word & bit != 0).then(|| self.prefix[i] + (word & (bit - 1)).count_ones())
    }
    /// The rank of the marked object at `a`, or None if `a` is not marked.
    #[inline]
    pub(crate) fn rank(&self, ctx: &Ctx, a: u64) -> Option<u32> {
        if a & 7 != 0 {
            return None;
        }
        let (r, off) = ctx.mem.locate(a)?;
        self.rank_slot(self.visited.slot(r, off))
    }
}

/// What a walker thread does with each object it owns: `object`, then `edge` for each of its references that
/// leads to an object (its class first, labelled `Class`), then `done`.
pub(crate) trait Visit: Send {
    type Ref: Ref;
    /// `slot`: the object's slot in the visited bitmap; `refcnt`: the low 32 bits of its `ob_refcnt`
    fn object(
        &mut self,
        ctx: &Ctx,
        a: u64,
        slot: u64,
        ti: &TypeInfo,
        is_tracked: bool,
        refcnt: u32,
    );
    #[inline]
    fn edge(&mut self, _to: u64, _slot: u64, _label: Label) {}
    #[inline]
    fn done(&mut self) {}
}

/// The census visitor: tallies by type key.
#[derive(Default)]
struct Tally {
    tallies: Vec<TypeTally>,
    static_objects: u64,
}

impl Visit for Tally {
    type Ref = u64;
    #[inline]
    fn object(
        &mut self,
        ctx: &Ctx,
        a: u64,
        _slot: u64,
        ti: &TypeInfo,
        is_tracked: bool,
        _refcnt: u32,
    ) {
        if ctx.is_static(a) {
            self.static_objects += 1;
            return;
        }
        let key = ti.key as usize;
        if self.tallies.len() <= key {
            self.tallies.resize_with(key + 1, TypeTally::default);
        }
        let size = getsizeof(ctx, a, ti);
        let fp = footprint(ctx, a, ti, size);
        let tally = &mut self.tallies[key];
        tally.count += 1;
        tally.bytes += size;
        tally.footprint += fp;
        tally.tracked += is_tracked as u64;
    }
}

/// One thread's result: its visitor, its type table (keys are per thread), and rejected references.
pub(crate) struct Part<V> {
    pub visit: V,
    pub types: Types,
    pub rejected: u64,
}

const CHUNK: usize = 4096;

/// Walk from the GC objects of the shared queue (and, for the first thread, the roots) until it is empty.
fn walk_part<V: Visit>(
    ctx: &Ctx,
    visited: &Visited,
    tracked: &[u64],
    next: &AtomicUsize,
    root_refs: &[u64],
    mut visit: V,
) -> Part<V>
where
    Vec<V::Ref>: Sink,
{
    let mut types = Types::default();
    let mut work: Vec<(u64, bool)> = Vec::new();
    let mut out: Vec<V::Ref> = Vec::with_capacity(1024);
    let mut items = Vec::new();
    let mut rejected = 0u64;
    // the slot of `p` if it is an object (seen before, or validated now and queued)
    let mut consider = |p: u64, work: &mut Vec<(u64, bool)>, types: &mut Types| -> Option<u64> {
        if p == 0 || p & 7 != 0 {
            return None;
        }
        let Some((region, off)) = ctx.mem.locate(p) else {
            rejected += 1;
            return None;
        };
        let slot = visited.slot(region, off);
        // most references lead to objects seen already (types, shared strings, small ints): check that first
        if visited.contains_slot(slot) {
            return Some(slot);
        }
        let Some(hdr) = ctx.mem.regions()[region].data.as_slice().get(off..off + 16) else {
            rejected += 1;
            return None;
        };
        let refcnt = u32::from_le_bytes(hdr[..4].try_into().unwrap());
        let t = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        // a live object has a non-zero refcount and a valid type
        if refcnt == 0 || types.get(ctx, t).is_none() {
            rejected += 1;
            return None;
        }
        if visited.insert_slot(slot) {
            work.push((p, false));
        }
        Some(slot)
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
            let Some((region, off)) = ctx.mem.locate(a) else {
                continue;
            };
            let Some(hdr) = ctx.mem.regions()[region].data.as_slice().get(off..off + 16) else {
                continue;
            };
            let refcnt = u32::from_le_bytes(hdr[..4].try_into().unwrap());
            let t = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
            let Some(ti) = types.get(ctx, t) else {
                continue;
            };
            let ti = types.infos[ti as usize].clone();
            visit.object(ctx, a, visited.slot(region, off), &ti, is_tracked, refcnt);
            out.clear();
            // every object refers to its type
            out.add(t, Label::Class);
            refs(ctx, a, &ti, &mut out, &mut items);
            for &r in out.iter() {
                if let Some(slot) = consider(r.addr(), &mut work, &mut types) {
                    visit.edge(r.addr(), slot, r.label());
                }
            }
            visit.done();
        }
    }
    Part {
        visit,
        types,
        rejected,
    }
}

/// Walk everything reachable from the (already marked) GC objects `tracked` and from `root_refs`, one thread per
/// core, each with the visitor `make(thread)` gives; every object is visited by exactly one thread.
pub(crate) fn traverse<V: Visit>(
    ctx: &Ctx,
    visited: &Visited,
    tracked: &[u64],
    root_refs: &[u64],
    make: impl Fn(usize) -> V + Sync,
) -> Vec<Part<V>>
where
    Vec<V::Ref>: Sink,
{
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let next = &next;
                let roots: &[u64] = if i == 0 { root_refs } else { &[] };
                let make = &make;
                s.spawn(move || walk_part::<V>(ctx, visited, tracked, next, roots, make(i)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("walker thread panicked"))
            .collect()
    })
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
    let parts: Vec<Part<Tally>> =
        traverse(ctx, &visited, &tracked, &root_refs, |_| Tally::default());
    let mut census = Census {
        gc_tracked: gc_tracked as u64,
        ..Default::default()
    };
    let mut merged: FxHashMap<(String, String), TypeTally> = FxHashMap::default();
    for p in parts {
        census.static_objects += p.visit.static_objects;
        census.rejected_refs += p.rejected;
        for (k, t) in p.visit.tallies.into_iter().enumerate() {
            if t.count == 0 {
                continue;
            }
            let m = merged.entry(p.types.key_names[k].clone()).or_default();
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
