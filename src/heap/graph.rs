//! The reference graph: every object the census finds, its outgoing references with labels, and virtual root
//! nodes (modules, threads and their frames, interpreter internals, native referrers, unreachable cycles).

use super::HeapError;
use super::census::{Census, TypeTally};
use super::ctx::Ctx;
use super::decode::{
    self, Label, dict_items, frame_object_locals, iframe_refs, read_str, refs, stackref,
};
use super::gc::gc_objects;
use super::label::Packed;
use super::roots::{interpreters, thread_frames, thread_state_refs, threads};
use super::size::{footprint, getsizeof};
use super::types::{Kind, Types};
use super::walk::{Part, Visit, Visited, traverse};
use crate::memory::huge::{Column, ColumnWriter};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Mutex;

pub const NONE: u32 = u32::MAX;
/// `Graph::dom_info` bits: the node is a leaf of the dominator graph; its class edge is part of it.
const DOM_LEAF: u8 = 1;
const DOM_CLASS: u8 = 2;

/// Worker threads for the graph's parallel passes.
fn threads_available() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// A size too big for 32 bits: the real one is in `Graph::big_sizes`.
const BIG: u32 = u32::MAX;
const BIG_EXTRA: u16 = u16::MAX;
/// A reference count of 255 or more: the real one is kept aside.
const BIG_RC: u8 = u8::MAX;

/// Node flags.
pub const TRACKED: u8 = 1;
pub const STATIC: u8 = 2;
pub const VIRTUAL: u8 = 4;

/// The object graph of one heap.
pub struct Graph<'a> {
    ctx: &'a Ctx<'a>,
    /// Nodes `[0, first_object)` are virtual; node 0 is the root of everything. Objects follow in the order the
    /// walk found them.
    pub first_object: u32,
    /// each object's slot in the walk's visited bitmap (its address, see `addr`), 32 or 64 bits wide
    slots: Slots,
    /// (first slot, start address) of every snapshot region, by slot
    slot_regions: Vec<(u64, u64)>,
    /// the node's type object, an index into `type_key` and `type_node` (NONE for virtual nodes)
    pub tyo: Column<u32>,
    /// `sys.getsizeof`, and what the footprint adds to it; `BIG` and `BIG_EXTRA` for objects of 4 GiB or more
    /// or with an unusual footprint (both sizes then in `big_sizes`)
    size: Column<u32>,
    fp_extra: Column<u16>,
    big_sizes: FxHashMap<u32, (u64, u64)>,
    pub flags: Column<u8>,
    /// virtual node names
    pub vname: Vec<String>,
    /// outgoing edges of object nodes besides their class, CSR by node (`edge_start(v)..edge_start(v + 1)`):
    /// the low 32 bits of each start, and the nodes at which the high part grows by one
    edge_start: Column<u32>,
    edge_wraps: Vec<u32>,
    edge_to: Column<u32>,
    edge_label: Column<Packed>,
    /// outgoing edges of virtual nodes
    vedges: Vec<Vec<(u32, Label)>>,
    /// per type object: its type key (index into `type_names`), and its node (the class edge of its instances)
    pub type_key: Vec<u32>,
    pub type_node: Vec<u32>,
    /// (module, name) per type key
    pub type_names: Vec<(String, String)>,
    /// kind of each type key (to render class/module/function names)
    pub type_kinds: Vec<Kind>,
    /// `tp_flags` of each type key
    pub type_flags: Vec<u64>,
    /// nodes reachable from the roots only through context edges
    context_only: Vec<bool>,
    /// per node: `DOM_LEAF`, `DOM_CLASS`
    dom_info: Vec<u8>,
    /// names resolved on first use: (kind, address) -> text; all of them, read before the heap part of the
    /// snapshot was released, when `released`
    released: bool,
    names: Mutex<FxHashMap<(u8, u64), String>>,
    /// objects on the GC lists, and references that led to no valid object
    gc_tracked: u64,
    rejected_refs: u64,
}

/// Names of the category roots.
pub const ROOT_INTERNALS: &str = "interpreter internals";
pub const ROOT_NATIVE: &str = "native or unknown referrers";
pub const ROOT_UNREACHABLE: &str = "unreachable (garbage awaiting collection)";

impl Graph<'_> {
    pub fn len(&self) -> usize {
        self.tyo.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tyo.is_empty()
    }
    /// The walk context the graph was built from (its snapshot is still alive).
    pub fn ctx(&self) -> &Ctx<'_> {
        self.ctx
    }

    pub fn is_virtual(&self, v: u32) -> bool {
        v < self.first_object
    }
    /// Address of object `v` in the target (0 for virtual nodes).
    pub fn addr(&self, v: u32) -> u64 {
        if self.is_virtual(v) {
            return 0;
        }
        let s = match &self.slots {
            Slots::Narrow(c) => c[v as usize] as u64,
            Slots::Wide(c) => c[v as usize],
        };
        let i = self.slot_regions.partition_point(|r| r.0 <= s) - 1;
        self.slot_regions[i].1 + (s - self.slot_regions[i].0) * 8
    }

    /// Type key of object `v` (index into `type_names`), NONE for virtual nodes.
    #[inline]
    pub fn ty(&self, v: u32) -> u32 {
        match self.tyo[v as usize] {
            NONE => NONE,
            t => self.type_key[t as usize],
        }
    }
    /// The node of object `v`'s class, if the class is a node.
    #[inline]
    pub fn class_node(&self, v: u32) -> Option<u32> {
        match self.tyo[v as usize] {
            NONE => None,
            t => Some(self.type_node[t as usize]).filter(|&n| n != NONE),
        }
    }
    /// The census of the graph's objects (what `summary` reports), tallied from the nodes.
    pub fn census(&self) -> Census {
        let mut c = Census {
            gc_tracked: self.gc_tracked,
            rejected_refs: self.rejected_refs,
            ..Default::default()
        };
        let mut tallies: Vec<TypeTally> = vec![TypeTally::default(); self.type_names.len()];
        for v in self.first_object..self.len() as u32 {
            let f = self.flags[v as usize];
            if f & STATIC != 0 {
                c.static_objects += 1;
                continue;
            }
            let t = &mut tallies[self.ty(v) as usize];
            t.count += 1;
            t.bytes += self.size(v);
            t.footprint += self.footprint(v);
            t.tracked += (f & TRACKED != 0) as u64;
        }
        for (k, mut t) in tallies.into_iter().enumerate() {
            if t.count == 0 {
                continue;
            }
            (t.module, t.name) = self.type_names[k].clone();
            c.objects += t.count;
            c.bytes += t.bytes;
            c.footprint += t.footprint;
            c.types.push(t);
        }
        c.sort();
        c
    }

    /// `sys.getsizeof()` of object `v` (0 for virtual and static nodes).
    #[inline]
    pub fn size(&self, v: u32) -> u64 {
        match self.size[v as usize] {
            BIG => self.big_sizes.get(&v).map_or(0, |s| s.0),
            s => s as u64,
        }
    }
    /// Footprint of object `v` (0 for virtual and static nodes).
    #[inline]
    pub fn footprint(&self, v: u32) -> u64 {
        match self.fp_extra[v as usize] {
            BIG_EXTRA => self.big_sizes.get(&v).map_or(0, |s| s.1),
            e => self.size(v) + e as u64,
        }
    }
    #[inline]
    fn edge_start(&self, v: usize) -> usize {
        let lo = self.edge_start[v] as usize;
        if self.edge_wraps.is_empty() {
            lo
        } else {
            (self.edge_wraps.partition_point(|&w| w as usize <= v) << 32) | lo
        }
    }
    /// Outgoing edges of object `v` other than its class: targets and packed labels.
    #[inline]
    pub fn object_edges(&self, v: u32) -> (&[u32], &[Packed]) {
        let (s, e) = (self.edge_start(v as usize), self.edge_start(v as usize + 1));
        (&self.edge_to[s..e], &self.edge_label[s..e])
    }
    /// Calls `f` for every outgoing edge of `v` (an object's class first) with its packed label: `succ` without
    /// unpacking labels, for passes over every edge.
    #[inline]
    pub fn for_each_succ(&self, v: u32, mut f: impl FnMut(u32, Packed)) {
        if v < self.first_object {
            for &(t, l) in &self.vedges[v as usize] {
                f(t, Packed::pack(l));
            }
        } else {
            if let Some(c) = self.class_node(v) {
                f(c, Packed::pack(Label::Class));
            }
            let (to, labels) = self.object_edges(v);
            for (&t, &l) in to.iter().zip(labels) {
                f(t, l);
            }
        }
    }

    /// Whether `v` is reachable from the roots only through context edges (`Label::is_context`): the dominator
    /// tree follows context edges to such nodes only.
    #[inline]
    pub fn context_only(&self, v: u32) -> bool {
        self.context_only[v as usize]
    }

    /// Whether `v` is a leaf of the graph the dominator tree is built over: an object with one referrer (not
    /// counting context edges), reachable without context edges, that refers to nothing but its class (and its
    /// class is reachable without context edges too).
    #[inline]
    pub fn dominator_leaf(&self, v: u32) -> bool {
        self.dom_info[v as usize] & DOM_LEAF != 0
    }

    /// Calls `f` for every edge of `v` in the graph the dominator tree is built over: context edges only to
    /// nodes reachable in no other way (`context_only`).
    #[inline]
    pub fn for_each_dominator_succ(&self, v: u32, mut f: impl FnMut(u32)) {
        if v < self.first_object {
            for &(t, l) in &self.vedges[v as usize] {
                if !l.is_context() || self.context_only[t as usize] {
                    f(t);
                }
            }
            return;
        }
        if self.dom_info[v as usize] & DOM_CLASS != 0
            && let Some(c) = self.class_node(v)
        {
            f(c);
        }
        let (to, labels) = self.object_edges(v);
        for (&t, &l) in to.iter().zip(labels) {
            if !l.is_context() || self.context_only[t as usize] {
                f(t);
            }
        }
    }

    /// Outgoing edges of `v`, an object's class first.
    pub fn succ(&self, v: u32) -> impl Iterator<Item = (u32, Label)> + '_ {
        let (virt, class, to, labels): (&[(u32, Label)], _, &[u32], &[Packed]) =
            if v < self.first_object {
                (&self.vedges[v as usize], None, &[], &[])
            } else {
                let (to, labels) = self.object_edges(v);
                (&[], self.class_node(v), to, labels)
            };
        virt.iter()
            .copied()
            .chain(class.map(|c| (c, Label::Class)))
            .chain(to.iter().copied().zip(labels.iter().map(|p| p.unpack())))
    }

    /// The text of a name label (str or C string in the target, or a dict key), read on first use.
    pub fn name(&self, kind: u8, addr: u64) -> String {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if self.released {
            // the objects' memory is gone: only names read before can be given
            return names
                .get(&(kind, addr))
                .cloned()
                .unwrap_or_else(|| "?".into());
        }
        names
            .entry((kind, addr))
            .or_insert_with(|| resolve_name(self.ctx, kind, addr))
            .clone()
    }

    /// How an edge is shown: `.name`, `['key']`, `[*]`, `__dict__`, ...
    pub fn render_label(&self, l: Label) -> String {
        match l {
            Label::None => "?".into(),
            Label::Class => "__class__".into(),
            Label::Item => "[*]".into(),
            Label::DictKey => "(key)".into(),
            Label::StrKey(k) => format!("['{}']", short(&self.name(0, k))),
            Label::OtherKey(0) => "[…]".into(),
            Label::OtherKey(k) => format!("[{}]", short(&self.name(2, k))),
            Label::Attr(k) => format!(".{}", short(&self.name(0, k))),
            Label::CAttr(k) => format!(".{}", short(&self.name(1, k))),
            Label::Field(f) => f.to_string(),
            Label::Local(k) => short(&self.name(0, k)).to_string(),
            Label::Module(k) => format!("module {}", self.name(0, k)),
            Label::Text(i) => self.vname[i as usize].clone(),
        }
    }

    /// "Order", "dict", "billing.Order", "class Order", "module os", "function f".
    pub fn type_label(&self, v: u32) -> String {
        if self.is_virtual(v) {
            return self.vname[v as usize].clone();
        }
        let (m, n) = &self.type_names[self.ty(v) as usize];
        if m.is_empty() || m == "builtins" {
            n.clone()
        } else {
            format!("{m}.{n}")
        }
    }
}

fn short(s: &str) -> &str {
    match s.char_indices().nth(48) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The text behind a name label: a str (kind 0), a C string (kind 1), or a dict key (kind 2: an int shows its
/// value, anything else is elided).
fn resolve_name(ctx: &Ctx, kind: u8, a: u64) -> String {
    let s = match kind {
        0 => read_str(ctx, a),
        1 => ctx.mem.cstr(a, 256),
        _ => {
            let int_type = ctx
                .known
                .kinds
                .iter()
                .find(|k| k.1 == Kind::Int)
                .map(|k| k.0);
            Some(if ctx.mem.u64(a + 8) == int_type {
                int_value(ctx, a)
                    .map(|v| v.to_string())
                    .unwrap_or("…".into())
            } else {
                "…".into()
            })
        }
    };
    s.unwrap_or_else(|| "?".into())
}

/// Objects' slots, kept as the walk held them.
enum Slots {
    Narrow(Column<u32>),
    Wide(Column<u64>),
}

/// Where a reference leads while the walk runs: the target's slot in the visited bitmap, in 32 bits unless the
/// snapshot holds 32 GiB or more.
trait Slot: Copy + Default + Send + Sync + 'static {
    fn from_slot(s: u64) -> Self;
    fn slot(self) -> u64;
    fn keep(col: Column<Self>) -> Slots;
    /// The references' target nodes, `node(slot)` for every slot of `col`.
    fn into_nodes(
        col: Column<Self>,
        threads: usize,
        node: &(impl Fn(u64) -> u32 + Sync),
        missing: &mut usize,
    ) -> std::io::Result<Column<u32>>;
}

/// Set every `to[i]` to `f(i, to[i])` on `threads` threads; returns how many became NONE.
fn par_translate(to: &mut [u32], threads: usize, f: &(impl Fn(usize, u32) -> u32 + Sync)) -> usize {
    let per = to.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = to
            .chunks_mut(per)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    let mut missing = 0;
                    for (k, t) in part.iter_mut().enumerate() {
                        *t = f(c * per + k, *t);
                        missing += (*t == NONE) as usize;
                    }
                    missing
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("graph thread panicked"))
            .sum()
    })
}

impl Slot for u32 {
    #[inline]
    fn from_slot(s: u64) -> u32 {
        s as u32
    }
    fn keep(col: Column<u32>) -> Slots {
        Slots::Narrow(col)
    }
    fn into_nodes(
        mut col: Column<u32>,
        threads: usize,
        node: &(impl Fn(u64) -> u32 + Sync),
        missing: &mut usize,
    ) -> std::io::Result<Column<u32>> {
        *missing = par_translate(&mut col, threads, &|_, slot| node(slot as u64));
        Ok(col)
    }
    #[inline]
    fn slot(self) -> u64 {
        self as u64
    }
}

impl Slot for u64 {
    #[inline]
    fn from_slot(s: u64) -> u64 {
        s
    }
    fn keep(col: Column<u64>) -> Slots {
        Slots::Wide(col)
    }
    fn into_nodes(
        col: Column<u64>,
        threads: usize,
        node: &(impl Fn(u64) -> u32 + Sync),
        missing: &mut usize,
    ) -> std::io::Result<Column<u32>> {
        let mut to = Column::<u32>::reserve(col.len())?;
        to.set_len(col.len());
        *missing = par_translate(&mut to, threads, &|i, _| node(col[i]));
        Ok(to)
    }
    #[inline]
    fn slot(self) -> u64 {
        self
    }
}

/// Objects a walker thread collects before it claims their node numbers and copies them into the graph.
const BATCH: usize = 4096;

/// The graph's columns while the walk fills them, and the next free node and edge number.
struct Shared<S> {
    claim: Mutex<(usize, usize)>,
    slot: ColumnWriter<S>,
    tyo: ColumnWriter<u32>,
    size: ColumnWriter<u32>,
    fp: ColumnWriter<u16>,
    flags: ColumnWriter<u8>,
    refcnt: ColumnWriter<u8>,
    edge_start: ColumnWriter<u32>,
    edge_slot: ColumnWriter<S>,
    edge_label: ColumnWriter<Packed>,
    node_cap: usize,
    edge_cap: usize,
}

/// A walker thread's visitor: sizes, flags and labelled references (as addresses) of the objects it owns,
/// copied into the graph's columns a batch at a time.
struct Builder<'s, S> {
    shared: &'s Shared<S>,
    overflow: bool,
    slot: Vec<S>,
    /// type objects by this thread's `Types` index
    tyo: Vec<u32>,
    size: Vec<u32>,
    fp: Vec<u16>,
    /// objects of 4 GiB or more: (address, size, footprint)
    big: Vec<(u64, u64, u64)>,
    flags: Vec<u8>,
    refcnt: Vec<u8>,
    /// reference counts of `BIG_RC` or more: (slot, count)
    big_rc: Vec<(u64, u32)>,
    /// end of each object's edges in `edge_slot` (low 32 bits once claimed)
    edge_end: Vec<u32>,
    edge_slot: Vec<S>,
    edge_label: Vec<Packed>,
    /// (first node, count) of every batch this thread copied
    batches: Vec<(usize, usize)>,
}

impl<'s, S: Slot> Builder<'s, S> {
    fn new(shared: &'s Shared<S>) -> Builder<'s, S> {
        Builder {
            shared,
            overflow: false,
            slot: Vec::with_capacity(BATCH),
            tyo: Vec::with_capacity(BATCH),
            size: Vec::with_capacity(BATCH),
            fp: Vec::with_capacity(BATCH),
            big: vec![],
            flags: Vec::with_capacity(BATCH),
            refcnt: Vec::with_capacity(BATCH),
            big_rc: vec![],
            edge_end: Vec::with_capacity(BATCH),
            edge_slot: Vec::with_capacity(BATCH * 4),
            edge_label: Vec::with_capacity(BATCH * 4),
            batches: vec![],
        }
    }

    /// Claim node and edge numbers for the batch and copy it into the columns.
    fn flush(&mut self) {
        let (k, m) = (self.slot.len(), self.edge_slot.len());
        if k == 0 {
            return;
        }
        let sh = self.shared;
        let (nb, eb) = {
            let mut c = sh.claim.lock().unwrap_or_else(|e| e.into_inner());
            let (nb, eb) = *c;
            // one slot stays free at the end of the node columns for the last edge end
            if nb + k >= sh.node_cap || eb + m > sh.edge_cap {
                // a torn or corrupt snapshot: stop collecting (the walk still ends), report once joined
                self.overflow = true;
                self.clear();
                return;
            }
            *c = (nb + k, eb + m);
            (nb, eb)
        };
        for e in self.edge_end.iter_mut() {
            *e = e.wrapping_add(eb as u32);
        }
        // edge_end[i] is where node i's edges end, i.e. where node i + 1's start
        let first = [eb as u32];
        // SAFETY: nodes nb..nb+k and edges eb..eb+m were claimed by this thread alone under the lock; the columns
        // live until the walk's threads are joined.
        unsafe {
            sh.slot.put(nb, &self.slot);
            sh.tyo.put(nb, &self.tyo);
            sh.size.put(nb, &self.size);
            sh.fp.put(nb, &self.fp);
            sh.flags.put(nb, &self.flags);
            sh.refcnt.put(nb, &self.refcnt);
            sh.edge_start.put(nb, &first);
            sh.edge_start.put(nb + 1, &self.edge_end[..k - 1]);
            sh.edge_slot.put(eb, &self.edge_slot);
            sh.edge_label.put(eb, &self.edge_label);
        }
        self.batches.push((nb, k));
        self.clear();
    }

    fn clear(&mut self) {
        self.slot.clear();
        self.edge_slot.clear();
        self.size.clear();
        self.fp.clear();
        self.tyo.clear();
        self.flags.clear();
        self.refcnt.clear();
        self.edge_end.clear();
        self.edge_label.clear();
    }
}

impl<S: Slot> Visit for Builder<'_, S> {
    type Ref = (u64, Label);
    #[inline]
    fn object(
        &mut self,
        ctx: &Ctx,
        a: u64,
        slot: u64,
        ti: &super::types::TypeInfo,
        is_tracked: bool,
        refcnt: u32,
    ) {
        if self.overflow {
            return;
        }
        let is_static = ctx.is_static(a);
        let (size, fp) = if is_static {
            (0, 0)
        } else {
            let s = getsizeof(ctx, a, ti);
            (s, footprint(ctx, a, ti, s))
        };
        self.slot.push(S::from_slot(slot));
        self.tyo.push(ti.index);
        match fp.checked_sub(size) {
            Some(extra) if size < BIG as u64 && extra < BIG_EXTRA as u64 => {
                self.size.push(size as u32);
                self.fp.push(extra as u16);
            }
            _ => {
                self.big.push((a, size, fp));
                self.size.push(BIG);
                self.fp.push(BIG_EXTRA);
            }
        }
        self.flags
            .push(if is_tracked { TRACKED } else { 0 } | if is_static { STATIC } else { 0 });
        if refcnt >= BIG_RC as u32 {
            self.big_rc.push((slot, refcnt));
            self.refcnt.push(BIG_RC);
        } else {
            self.refcnt.push(refcnt as u8);
        }
    }
    #[inline]
    fn edge(&mut self, _to: u64, slot: u64, label: Label) {
        // the class is implied by the node's type
        if label != Label::Class && !self.overflow {
            self.edge_slot.push(S::from_slot(slot));
            self.edge_label.push(Packed::pack(label));
        }
    }
    #[inline]
    fn done(&mut self) {
        if self.overflow {
            return;
        }
        // batches hold a few thousand objects: their own edge counts fit in 32 bits
        self.edge_end.push(self.edge_slot.len() as u32);
        if self.slot.len() >= BATCH {
            self.flush();
        }
    }
}

/// Thread names from `threading._active` ({ident: Thread}), by ident.
fn thread_names(ctx: &Ctx) -> FxHashMap<u64, (String, Option<u64>)> {
    let mut out = FxHashMap::default();
    let Some(mo) = ctx.off("interp.modules") else {
        return out;
    };
    let modules = ctx.ptr(ctx.interp + mo);
    let mut items = vec![];
    dict_items(ctx, modules, &mut items);
    let Some(&(_, threading)) = items
        .iter()
        .find(|(k, _)| read_str(ctx, *k).as_deref() == Some("threading"))
    else {
        return out;
    };
    let find = |d: u64, key: &str| -> u64 {
        let mut it = vec![];
        dict_items(ctx, d, &mut it);
        it.iter()
            .find(|(k, _)| read_str(ctx, *k).as_deref() == Some(key))
            .map(|x| x.1)
            .unwrap_or(0)
    };
    let active = find(ctx.ptr(threading + ctx.o.md_dict), "_active");
    if active == 0 {
        return out;
    }
    let mut threads = vec![];
    dict_items(ctx, active, &mut threads);
    for (k, th) in threads {
        let Some(ident) = int_value(ctx, k) else {
            continue;
        };
        // the Thread's instance attributes: a dict or inline values; look for _name either way
        let mut attrs: Vec<(u64, Label)> = vec![];
        let mut tys = Types::default();
        if let Some(ti) = tys.get(ctx, ctx.ptr(th + 8)) {
            let ti = tys.infos[ti as usize].clone();
            let mut scratch = vec![];
            refs(ctx, th, &ti, &mut attrs, &mut scratch);
        }
        // attributes live in inline values (3.11+) or in the instance's __dict__
        let mut pairs: Vec<(u64, u64)> = attrs
            .iter()
            .filter_map(|&(v, l)| {
                if let Label::Attr(n) = l {
                    Some((n, v))
                } else {
                    None
                }
            })
            .collect();
        for &(d, l) in &attrs {
            if l == Label::Field("__dict__") {
                dict_items(ctx, d, &mut pairs);
            }
        }
        let mut name = None;
        let mut native = None;
        for (k, v) in pairs {
            match read_str(ctx, k).as_deref() {
                Some("_name") => name = read_str(ctx, v),
                Some("_native_id") => native = int_value(ctx, v),
                _ => {}
            }
        }
        if let Some(n) = name {
            out.insert(ident, (n, native));
        }
    }
    out
}

/// Value of a small non-negative int object (thread idents), any version.
fn int_value(ctx: &Ctx, p: u64) -> Option<u64> {
    let (ndigits, negative) = if ctx.at_least(12) {
        let tag = ctx.u64(p + 16)?;
        (tag >> 3, tag & 3 == 2)
    } else {
        let s = ctx.mem.i64(p + 16)?;
        (s.unsigned_abs(), s < 0)
    };
    if negative || ndigits > 3 {
        return None;
    }
    let mut v = 0u64;
    for i in (0..ndigits).rev() {
        v = (v << 30) | ctx.mem.u32(p + 24 + 4 * i)? as u64;
    }
    Some(v)
}

/// "qualname (file.py:LINE)" for a code object.
fn code_label(ctx: &Ctx, code: u64) -> String {
    let (file, name, line) = decode::code_info(ctx, code);
    let file = file.unwrap_or_default();
    let base = file.rsplit('/').next().unwrap_or(&file);
    format!("{} ({base}:{line})", name.unwrap_or_else(|| "?".into()))
}

/// The nodes at which edge starts (kept as their low 32 bits, non-decreasing) pass a multiple of 2^32.
fn wraps(starts: &[u32], total: usize) -> Vec<u32> {
    let mut out = vec![];
    if total >> 32 == 0 {
        return out;
    }
    for v in 1..starts.len() {
        if starts[v] < starts[v - 1] {
            out.push(v as u32);
        }
    }
    out
}

/// The text of every name among these labels (dict keys, attribute, variable and module names), each read once:
/// on every core, behind a small cache of the last addresses seen (the same attribute names and keys label most
/// references).
fn label_names(ctx: &Ctx, labels: &[Packed], extra: &[Label]) -> FxHashMap<(u8, u64), String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per = labels.len().div_ceil(threads).max(1);
    let scan = |part: &mut dyn Iterator<Item = Label>| -> FxHashSet<(u8, u64)> {
        let mut out = FxHashSet::default();
        let mut recent = [u64::MAX; 64];
        for l in part {
            let Some((kind, a)) = l.name_ref() else {
                continue;
            };
            let slot = &mut recent[((a >> 4) ^ (a >> 10)) as usize & 63];
            if *slot != a {
                *slot = a;
                out.insert((kind, a));
            }
        }
        out
    };
    let mut found = scan(&mut extra.iter().copied());
    let parts: Vec<FxHashSet<(u8, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = labels
            .chunks(per)
            .map(|part| {
                let scan = &scan;
                s.spawn(move || scan(&mut part.iter().filter(|p| p.has_name()).map(|p| p.unpack())))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("graph thread panicked"))
            .collect()
    });
    for p in parts {
        found.extend(p);
    }
    found
        .into_iter()
        .map(|(kind, a)| ((kind, a), resolve_name(ctx, kind, a)))
        .collect()
}

/// Objects whose reference count exceeds the references to them the graph holds (immortal and static objects
/// excluded): something outside the heap, C code or the C stack, holds them.
///
/// Also counts each node's referrers through edges other than context edges, up to 2 (see `Graph::referrers`).
fn native_referrers(
    g: &Graph,
    refcnt: &[u8],
    big_rc: &FxHashMap<u32, u32>,
) -> (Vec<(u32, Label)>, Vec<u8>) {
    let ctx = g.ctx;
    let n = g.len();
    let first_object = g.first_object as usize;
    let mut indeg = vec![0u32; n];
    let mut referrers = vec![0u8; n];
    for es in &g.vedges {
        for &(t, l) in es {
            if !l.is_context() {
                referrers[t as usize] = referrers[t as usize].saturating_add(1).min(2);
            }
            // the interned tables (<= 3.11) and borrowed frame fields hold no reference count
            if l != Label::Field("internal") && !l.is_borrowed(ctx.minor) {
                indeg[t as usize] = indeg[t as usize].saturating_add(1);
            }
        }
    }
    // every instance holds its class
    let mut instances = vec![0u32; g.type_node.len()];
    for &t in &g.tyo[first_object..] {
        instances[t as usize] += 1;
    }
    for (t, &k) in instances.iter().enumerate() {
        if let Some(i) = indeg.get_mut(g.type_node[t] as usize) {
            *i = i.saturating_add(k);
        }
    }
    drop(instances);
    for (&t, &l) in g.edge_to.iter().zip(g.edge_label.iter()) {
        if !l.is_context() {
            indeg[t as usize] = indeg[t as usize].saturating_add(1);
            referrers[t as usize] = referrers[t as usize].saturating_add(1).min(2);
        } else if !(ctx.minor >= 11 && l.unpack().is_borrowed(ctx.minor)) {
            indeg[t as usize] = indeg[t as usize].saturating_add(1);
        }
    }
    let immortal = |rc: u32| -> bool {
        if ctx.at_least(14) {
            rc >= 0x8000_0000
        } else if ctx.at_least(12) {
            rc == 0xFFFF_FFFF
        } else {
            false
        }
    };
    let native = (first_object..n)
        .filter(|&i| {
            let rc = match refcnt[i] {
                BIG_RC => big_rc.get(&(i as u32)).copied().unwrap_or(u32::MAX),
                r => r as u32,
            };
            g.flags[i] & STATIC == 0 && !immortal(rc) && rc > indeg[i]
        })
        .map(|i| (i as u32, Label::Field("native")))
        .collect();
    (native, referrers)
}

/// The objects of the heap as graph nodes (after the `first_object` virtual ones, whose edges are given by
/// address or node), with their reference count; `S` holds a reference's target during the walk.
#[allow(clippy::type_complexity)]
fn objects<'a, S: Slot>(
    ctx: &'a Ctx<'a>,
    first_object: u32,
    vname: Vec<String>,
    vaddr_edges: Vec<Vec<(u64, Label)>>,
    vvirt_edges: Vec<Vec<(u32, Label)>>,
    release: bool,
) -> Result<
    (
        Graph<'a>,
        Column<u8>,
        FxHashMap<u32, u32>,
        std::time::Instant,
    ),
    HeapError,
> {
    let t0 = std::time::Instant::now();
    // ---- objects: one walk, one thread per core (as the census), each copying what it finds into the columns
    let mut tracked = vec![];
    let gc_tracked = gc_objects(ctx, &mut tracked)?;
    if gc_tracked == 0 {
        return Err(HeapError::Invalid("the GC lists are empty".into()));
    }
    let visited = Visited::new(ctx);
    tracked.retain(|&a| visited.insert(ctx, a));
    log::debug!("graph: {} GC objects in {:?}", tracked.len(), t0.elapsed());
    let root_addrs: Vec<u64> = vaddr_edges.iter().flatten().map(|e| e.0).collect();
    // objects are 8-byte aligned and at least 16 bytes long: the snapshot bounds how many there can be; every
    // reference is a pointer-sized word of the object that holds it (its class is not stored), so there are no
    // more references than words. Address space only: pages are faulted in as they are written.
    let words = (ctx.mem.total_bytes() / 8) as usize;
    let node_cap = first_object as usize + words / 2 + 2;
    let edge_cap = words + 4096;
    let col = |e: std::io::Error| {
        HeapError::Invalid(format!(
            "cannot reserve address space for the reference graph ({} MiB of snapshot): {e}; a limit on \
             virtual memory (ulimit -v) or strict overcommit (vm.overcommit_memory=2) refuses it",
            ctx.mem.total_bytes() >> 20
        ))
    };
    let mut slot = Column::<S>::reserve(node_cap).map_err(col)?;
    let mut tyo = Column::<u32>::reserve(node_cap).map_err(col)?;
    let mut size = Column::<u32>::reserve(node_cap).map_err(col)?;
    let mut fp = Column::<u16>::reserve(node_cap).map_err(col)?;
    let mut flags = Column::<u8>::reserve(node_cap).map_err(col)?;
    let mut refcnt = Column::<u8>::reserve(node_cap).map_err(col)?;
    let mut edge_start = Column::<u32>::reserve(node_cap).map_err(col)?;
    let mut edge_slot = Column::<S>::reserve(edge_cap).map_err(col)?;
    let mut edge_label = Column::<Packed>::reserve(edge_cap).map_err(col)?;
    let shared = Shared {
        claim: Mutex::new((first_object as usize, 0)),
        slot: slot.writer(),
        tyo: tyo.writer(),
        size: size.writer(),
        fp: fp.writer(),
        flags: flags.writer(),
        refcnt: refcnt.writer(),
        edge_start: edge_start.writer(),
        edge_slot: edge_slot.writer(),
        edge_label: edge_label.writer(),
        node_cap,
        edge_cap,
    };
    let mut parts: Vec<Part<Builder<S>>> = traverse(ctx, &visited, &tracked, &root_addrs, |_| {
        Builder::new(&shared)
    });
    for p in parts.iter_mut() {
        p.visit.flush();
    }
    drop(tracked);
    if parts.iter().any(|p| p.visit.overflow) {
        return Err(HeapError::Invalid(
            "the walk found more objects or references than the snapshot can hold".into(),
        ));
    }
    let (n, n_edges) = *shared.claim.lock().unwrap_or_else(|e| e.into_inner());
    let rejected: u64 = parts.iter().map(|p| p.rejected).sum();
    slot.set_len(n);
    size.set_len(n);
    fp.set_len(n);
    tyo.set_len(n);
    refcnt.set_len(n);
    flags.set_len(n);
    edge_start.set_len(n + 1);
    edge_start[n] = n_edges as u32;
    for v in 0..first_object as usize {
        tyo[v] = NONE;
        flags[v] = VIRTUAL;
    }
    edge_slot.set_len(n_edges);
    edge_label.set_len(n_edges);
    log::debug!("graph: walk {:?}", t0.elapsed());
    // everything the graph needs from the objects' memory is read: keep the names that label references, and let
    // the heap part of the snapshot go, so that what follows reuses its pages instead of faulting in fresh ones
    let names = if release {
        let extra: Vec<Label> = vaddr_edges.iter().flatten().map(|e| e.1).collect();
        let names = label_names(ctx, &edge_label, &extra);
        let keep = &ctx.images;
        let released = ctx.mem.release(|r| {
            let i = keep.partition_point(|im| im.1 <= r.start);
            i < keep.len() && keep[i].0 < r.end()
        });
        log::debug!(
            "graph: {} names kept, {} MiB of the snapshot released, {:?}",
            names.len(),
            released >> 20,
            t0.elapsed()
        );
        Some(names)
    } else {
        None
    };

    // ---- type objects: one number per type object across the threads' tables
    let mut by_addr: FxHashMap<u64, u32> = FxHashMap::default();
    let mut keys: FxHashMap<(String, String), u32> = FxHashMap::default();
    let mut type_names: Vec<(String, String)> = vec![];
    let mut type_kinds: Vec<Kind> = vec![];
    let mut type_flags: Vec<u64> = vec![];
    let mut type_key: Vec<u32> = vec![];
    let mut type_addr: Vec<u64> = vec![];
    for p in &parts {
        let remap: Vec<u32> = p
            .types
            .infos
            .iter()
            .map(|ti| {
                *by_addr.entry(ti.addr).or_insert_with(|| {
                    let name = p.types.key_names[ti.key as usize].clone();
                    let k = *keys.entry(name.clone()).or_insert_with(|| {
                        type_names.push(name);
                        type_kinds.push(ti.kind);
                        type_flags.push(ti.flags);
                        (type_names.len() - 1) as u32
                    });
                    type_key.push(k);
                    type_addr.push(ti.addr);
                    (type_key.len() - 1) as u32
                })
            })
            .collect();
        for &(first, count) in &p.visit.batches {
            for t in tyo[first..first + count].iter_mut() {
                *t = remap[*t as usize];
            }
        }
    }

    log::debug!("graph: types {:?}", t0.elapsed());
    // ---- node numbers by address: the rank of an object's bit in `visited` -> its node
    let ranks = visited.ranks();
    let mut perm = vec![NONE; ranks.total];
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    {
        let w = ColumnWriter::for_slice(&mut perm);
        let per = (n - first_object as usize).div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (c, part) in slot[first_object as usize..].chunks(per).enumerate() {
                let ranks = &ranks;
                s.spawn(move || {
                    let base = first_object as usize + c * per;
                    for (k, &a) in part.iter().enumerate() {
                        if let Some(r) = ranks.rank_slot(a.slot()) {
                            // SAFETY: ranks of distinct marked addresses are distinct, so every slot is written
                            // by one thread only; `perm` outlives the scope.
                            unsafe { w.set(r as usize, (base + k) as u32) };
                        }
                    }
                });
            }
        });
    }
    let node_of = |a: u64| -> u32 { ranks.rank(ctx, a).map(|r| perm[r as usize]).unwrap_or(NONE) };
    let type_node: Vec<u32> = type_addr.iter().map(|&a| node_of(a)).collect();
    let mut vedges: Vec<Vec<(u32, Label)>> = vvirt_edges;
    for (v, es) in vaddr_edges.into_iter().enumerate() {
        for (p, l) in es {
            match node_of(p) {
                NONE => {}
                i => vedges[v].push((i, l)),
            }
        }
    }
    // edges: slots -> nodes, in parallel slices (in place when slots are 32-bit)
    let mut missing = 0usize;
    let node_of_slot = |s: u64| ranks.rank_slot(s).map(|r| perm[r as usize]).unwrap_or(NONE);
    let mut edge_to =
        S::into_nodes(edge_slot, threads, &node_of_slot, &mut missing).map_err(col)?;
    let big_sizes: FxHashMap<u32, (u64, u64)> = parts
        .iter()
        .flat_map(|p| p.visit.big.iter())
        .map(|&(a, s, f)| (node_of(a), (s, f)))
        .collect();
    let big_rc: FxHashMap<u32, u32> = parts
        .iter()
        .flat_map(|p| p.visit.big_rc.iter())
        .map(|&(slot, rc)| (node_of_slot(slot), rc))
        .collect();
    drop(perm);
    drop(ranks);
    let slot_regions: Vec<(u64, u64)> = visited
        .bases()
        .iter()
        .zip(ctx.mem.regions())
        .map(|(&b, r)| (b, r.start))
        .collect();
    drop(visited);
    let mut edge_wraps = wraps(&edge_start, n_edges);
    if missing > 0 {
        // references to something marked but never visited (a torn copy): drop them
        let full = |starts: &[u32], v: usize| -> usize {
            (edge_wraps.partition_point(|&w| w as usize <= v) << 32) | starts[v] as usize
        };
        let mut w = 0usize;
        let mut start = full(&edge_start, first_object as usize);
        for v in first_object as usize..n {
            let end = full(&edge_start, v + 1);
            edge_start[v] = w as u32;
            for e in start..end {
                if edge_to[e] != NONE {
                    edge_to[w] = edge_to[e];
                    edge_label[w] = edge_label[e];
                    w += 1;
                }
            }
            start = end;
        }
        edge_start[n] = w as u32;
        edge_to.set_len(w);
        edge_label.set_len(w);
        edge_wraps = wraps(&edge_start, w);
    }
    log::debug!("graph: numbered {:?}", t0.elapsed());
    drop(parts);
    let g = Graph {
        first_object,
        slots: S::keep(slot),
        slot_regions,
        tyo,
        size,
        fp_extra: fp,
        big_sizes,
        flags,
        vname,
        edge_start,
        edge_wraps,
        edge_to,
        edge_label,
        vedges,
        type_key,
        type_node,
        type_names,
        type_kinds,
        type_flags,
        ctx,
        context_only: vec![],
        dom_info: vec![],
        released: names.is_some(),
        names: Mutex::new(names.unwrap_or_default()),
        gc_tracked: gc_tracked as u64,
        rejected_refs: rejected,
    };
    Ok((g, refcnt, big_rc, t0))
}

/// Build the graph: objects, labelled references, virtual roots; then native referrers and unreachable cycles.
pub fn build<'a>(ctx: &'a Ctx<'a>) -> Result<Graph<'a>, HeapError> {
    build_with(ctx, BuildOptions::default())
}

/// How `build_with` builds the graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Release the heap part of the snapshot once the walk is done (see `build_releasing`).
    pub release: bool,
    /// Hold references during the walk in 64-bit slots, as for snapshots of 32 GiB or more, whatever the size
    /// (so that tests exercise that path on small heaps).
    pub wide_slots: bool,
}

/// Build the graph, and once the walk has read what it needs from the objects' memory, release the heap part of
/// the snapshot (keeping the names that label references, and the interpreter's own images). Only for callers
/// that read nothing more from the snapshot afterwards (the flamegraph by retaining path): the released regions
/// read as zeros.
pub fn build_releasing<'a>(ctx: &'a Ctx<'a>) -> Result<Graph<'a>, HeapError> {
    build_with(
        ctx,
        BuildOptions {
            release: true,
            ..Default::default()
        },
    )
}

pub fn build_with<'a>(ctx: &'a Ctx<'a>, opts: BuildOptions) -> Result<Graph<'a>, HeapError> {
    let release = opts.release;
    // ---- virtual nodes and their (address) edges
    let mut vname: Vec<String> = vec!["all".into()];
    let mut vaddr_edges: Vec<Vec<(u64, Label)>> = vec![vec![]];
    let mut vvirt_edges: Vec<Vec<(u32, Label)>> = vec![vec![]];
    let new_v = |name: String,
                 vname: &mut Vec<String>,
                 va: &mut Vec<Vec<(u64, Label)>>,
                 vv: &mut Vec<Vec<(u32, Label)>>| {
        vname.push(name);
        va.push(vec![]);
        vv.push(vec![]);
        (vname.len() - 1) as u32
    };
    let mut items = vec![];
    // modules: one top-level root per entry of sys.modules
    let modules_dict = ctx
        .off("interp.modules")
        .map(|o| ctx.ptr(ctx.interp + o))
        .unwrap_or(0);
    items.clear();
    dict_items(ctx, modules_dict, &mut items);
    for &(k, v) in &items {
        vaddr_edges[0].push((v, Label::Module(k)));
    }
    // threads
    let names = thread_names(ctx);
    for interp in interpreters(ctx) {
        for ts in threads(ctx, interp) {
            let ident = ctx
                .off("ts.thread_id")
                .map(|o| ctx.ptr(ts + o))
                .unwrap_or(0);
            let tid = ctx
                .off("ts.native_thread_id")
                .map(|o| ctx.ptr(ts + o))
                .unwrap_or(0);
            let (name, native) = match names.get(&ident) {
                Some((n, nid)) => (Some(n.clone()), nid.unwrap_or(tid)),
                None => (None, tid),
            };
            let label = match (name, native) {
                (Some(n), 0) => format!("thread {n}"),
                (Some(n), t) => format!("thread {n} (tid {t})"),
                (None, 0) => format!("thread {ident:#x}"),
                (None, t) => format!("thread tid {t}"),
            };
            let tv = new_v(label, &mut vname, &mut vaddr_edges, &mut vvirt_edges);
            vvirt_edges[0].push((tv, Label::Text(tv)));
            thread_state_refs(ctx, ts, &mut vaddr_edges[tv as usize]);
            // frames, outermost first, each a virtual node holding its locals
            let frames = thread_frames(ctx, ts);
            let mut parent = tv;
            for &fr in frames.iter().rev() {
                let mut e: Vec<(u64, Label)> = vec![];
                let code;
                if ctx.at_least(11) {
                    code = stackref(ctx, ctx.ptr(fr + ctx.o.if_executable));
                    iframe_refs(ctx, fr, &mut e);
                } else {
                    code = ctx.ptr(fr + ctx.o.f_code);
                    e.push((fr, Label::Field("frame")));
                    frame_object_locals(ctx, fr, code, &mut e);
                }
                // skip C-stack shims (no code object, or None)
                if code == 0 || code == ctx.known.none {
                    continue;
                }
                let fv = new_v(
                    code_label(ctx, code),
                    &mut vname,
                    &mut vaddr_edges,
                    &mut vvirt_edges,
                );
                vaddr_edges[fv as usize] = e;
                vvirt_edges[parent as usize].push((fv, Label::Text(fv)));
                parent = fv;
            }
        }
    }
    // interpreter internals
    let iv = new_v(
        ROOT_INTERNALS.into(),
        &mut vname,
        &mut vaddr_edges,
        &mut vvirt_edges,
    );
    vvirt_edges[0].push((iv, Label::Text(iv)));
    {
        let mut e: Vec<u64> = vec![];
        for interp in interpreters(ctx) {
            for (l, name) in [
                ("interp.sysdict", "sys.__dict__"),
                ("interp.builtins", "builtins"),
                ("interp.dict", "interpreter dict"),
                ("interp.modules", "sys.modules"),
            ] {
                if let Some(o) = ctx.off(l) {
                    vaddr_edges[iv as usize].push((ctx.ptr(interp + o), Label::Field(name)));
                }
            }
        }
        super::roots::roots_with(ctx, &mut e, false);
        vaddr_edges[iv as usize].extend(e.into_iter().map(|p| (p, Label::Field("internal"))));
    }
    let nv = new_v(
        ROOT_NATIVE.into(),
        &mut vname,
        &mut vaddr_edges,
        &mut vvirt_edges,
    );
    vvirt_edges[0].push((nv, Label::Text(nv)));
    let uv = new_v(
        ROOT_UNREACHABLE.into(),
        &mut vname,
        &mut vaddr_edges,
        &mut vvirt_edges,
    );
    vvirt_edges[0].push((uv, Label::Text(uv)));
    let first_object = vname.len() as u32;

    let slots: u64 = ctx
        .mem
        .regions()
        .iter()
        .map(|r| (r.len() as u64).div_ceil(8 * 64) * 64)
        .sum();
    let (mut g, refcnt, big_rc, t0) = if slots < u32::MAX as u64 && !opts.wide_slots {
        objects::<u32>(ctx, first_object, vname, vaddr_edges, vvirt_edges, release)?
    } else {
        objects::<u64>(ctx, first_object, vname, vaddr_edges, vvirt_edges, release)?
    };

    // ---- native referrers (refcount beyond the references found), and at the same time on another core, the
    // objects reachable from the roots without context edges
    const UNSEEN: u8 = 0;
    const STRONG: u8 = 1;
    const WEAK: u8 = 2;
    let n = g.len();
    let mut reach = vec![UNSEEN; n];
    let mut stack = vec![];
    // targets of context edges not yet reached when seen
    let mut context_targets: Vec<u32> = vec![];
    let strong_from =
        |g: &Graph, reach: &mut [u8], stack: &mut Vec<u32>, context_targets: &mut Vec<u32>| {
            while let Some(v) = stack.pop() {
                g.for_each_succ(v, |t, l| {
                    if reach[t as usize] == UNSEEN {
                        if l.is_context() {
                            context_targets.push(t);
                        } else {
                            reach[t as usize] = STRONG;
                            stack.push(t);
                        }
                    }
                });
            }
        };
    let (native, mut referrers) = std::thread::scope(|s| {
        let gr = &g;
        let h = s.spawn(move || {
            let r = native_referrers(gr, &refcnt, &big_rc);
            log::debug!("graph: native referrers counted {:?}", t0.elapsed());
            r
        });
        reach[0] = STRONG;
        stack.push(0);
        strong_from(&g, &mut reach, &mut stack, &mut context_targets);
        log::debug!("graph: strong reach {:?}", t0.elapsed());
        h.join().expect("graph thread panicked")
    });
    for &(v, _) in &native {
        referrers[v as usize] = referrers[v as usize].saturating_add(1).min(2);
        if reach[v as usize] == UNSEEN {
            reach[v as usize] = STRONG;
            stack.push(v);
        }
    }
    strong_from(&g, &mut reach, &mut stack, &mut context_targets);
    g.vedges[nv as usize] = native;
    log::debug!("graph: native {:?}", t0.elapsed());
    // ---- the rest is reachable only through context edges, or not at all (on the GC lists but reachable from
    // no root: cycles awaiting collection)
    for t in context_targets {
        if reach[t as usize] == UNSEEN {
            reach[t as usize] = WEAK;
            stack.push(t);
            while let Some(v) = stack.pop() {
                g.for_each_succ(v, |t, _| {
                    if reach[t as usize] == UNSEEN {
                        reach[t as usize] = WEAK;
                        stack.push(t);
                    }
                });
            }
        }
    }
    let unreached: Vec<(u32, Label)> = (first_object..n as u32)
        .filter(|&i| reach[i as usize] == UNSEEN)
        .map(|i| (i, Label::Field("cycle")))
        .collect();
    // the unreachable root reaches its nodes, and through them without context edges perhaps some more
    for &(u, _) in &unreached {
        referrers[u as usize] = referrers[u as usize].saturating_add(1).min(2);
        reach[u as usize] = STRONG;
        stack.push(u);
    }
    while let Some(v) = stack.pop() {
        g.for_each_succ(v, |t, l| {
            if reach[t as usize] != STRONG && !l.is_context() {
                reach[t as usize] = STRONG;
                stack.push(t);
            }
        });
    }
    g.vedges[uv as usize] = unreached;
    g.context_only = reach.iter().map(|&r| r == WEAK).collect();
    drop(reach);
    // what the dominator search asks of every node, worked out once in node order
    let mut info = vec![0u8; n];
    {
        let g = &g;
        let per = n.div_ceil(threads_available()).max(1);
        std::thread::scope(|s| {
            for (c, part) in info.chunks_mut(per).enumerate() {
                let referrers = &referrers;
                s.spawn(move || {
                    for (k, slot) in part.iter_mut().enumerate() {
                        let v = (c * per + k) as u32;
                        if g.is_virtual(v) {
                            continue;
                        }
                        let class_weak =
                            g.class_node(v).is_some_and(|c| g.context_only[c as usize]);
                        let leaf = referrers[v as usize] == 1
                            && !g.context_only[v as usize]
                            && g.edge_start(v as usize) == g.edge_start(v as usize + 1)
                            && !class_weak;
                        *slot = if leaf { DOM_LEAF } else { 0 }
                            | if class_weak { DOM_CLASS } else { 0 };
                    }
                });
            }
        });
    }
    g.dom_info = info;

    log::debug!("graph: unreachable {:?}", t0.elapsed());
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::wraps;

    #[test]
    fn edge_starts_past_four_billion() {
        // full starts 0, 10, 2^32 - 1, 2^32 + 5, 2^32 + 5, 2^33 + 1 kept as their low 32 bits
        let full: [u64; 6] = [
            0,
            10,
            (1 << 32) - 1,
            (1 << 32) + 5,
            (1 << 32) + 5,
            (1 << 33) + 1,
        ];
        let lo: Vec<u32> = full.iter().map(|&f| f as u32).collect();
        let w = wraps(&lo, (1 << 33) + 1);
        assert_eq!(w, vec![3, 5]);
        for (v, &f) in full.iter().enumerate() {
            let got = ((w.partition_point(|&x| x as usize <= v) as u64) << 32) | lo[v] as u64;
            assert_eq!(got, f, "node {v}");
        }
        assert!(wraps(&lo[..3], 11).is_empty());
    }
}
