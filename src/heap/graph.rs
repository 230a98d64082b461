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
use rustc_hash::FxHashMap;
use std::cell::RefCell;

pub const NONE: u32 = u32::MAX;

/// Node flags.
pub const TRACKED: u8 = 1;
pub const STATIC: u8 = 2;
pub const VIRTUAL: u8 = 4;

/// The object graph of one heap.
pub struct Graph<'a> {
    ctx: &'a Ctx<'a>,
    /// Nodes `[0, first_object)` are virtual; node 0 is the root of everything.
    pub first_object: u32,
    pub addr: Vec<u64>,
    /// index into `type_names` (objects), or NONE (virtual)
    pub ty: Vec<u32>,
    pub size: Vec<u64>,
    pub footprint: Vec<u64>,
    pub flags: Vec<u8>,
    /// virtual node names
    pub vname: Vec<String>,
    /// outgoing edges of object nodes, CSR by (node - first_object)
    edge_start: Vec<u64>,
    edge_to: Vec<u32>,
    edge_label: Vec<Packed>,
    /// outgoing edges of virtual nodes
    vedges: Vec<Vec<(u32, Label)>>,
    /// (module, name) per type key
    pub type_names: Vec<(String, String)>,
    /// kind of each type key (to render class/module/function names)
    pub type_kinds: Vec<Kind>,
    /// `tp_flags` of each type key
    pub type_flags: Vec<u64>,
    /// names resolved on first use: (kind, address) -> text
    names: RefCell<FxHashMap<(u8, u64), String>>,
    pub census: Census,
}

/// Names of the category roots.
pub const ROOT_INTERNALS: &str = "interpreter internals";
pub const ROOT_NATIVE: &str = "native or unknown referrers";
pub const ROOT_UNREACHABLE: &str = "unreachable (garbage awaiting collection)";

impl Graph<'_> {
    pub fn len(&self) -> usize {
        self.addr.len()
    }
    pub fn is_empty(&self) -> bool {
        self.addr.is_empty()
    }
    /// The walk context the graph was built from (its snapshot is still alive).
    pub fn ctx(&self) -> &Ctx<'_> {
        self.ctx
    }

    /// Number of edges (object and virtual).
    pub fn edge_count(&self) -> usize {
        self.edge_to.len() + self.vedges.iter().map(|e| e.len()).sum::<usize>()
    }
    pub fn is_virtual(&self, v: u32) -> bool {
        v < self.first_object
    }
    /// Outgoing edges of `v`.
    pub fn succ(&self, v: u32) -> impl Iterator<Item = (u32, Label)> + '_ {
        let (virt, to, labels): (&[(u32, Label)], &[u32], &[Packed]) = if v < self.first_object {
            (&self.vedges[v as usize], &[], &[])
        } else {
            let i = (v - self.first_object) as usize;
            let (s, e) = (self.edge_start[i] as usize, self.edge_start[i + 1] as usize);
            (&[], &self.edge_to[s..e], &self.edge_label[s..e])
        };
        virt.iter()
            .copied()
            .chain(to.iter().copied().zip(labels.iter().map(|p| p.unpack())))
    }

    /// The text of a name label (str or C string in the target, or a dict key), read on first use.
    pub fn name(&self, kind: u8, addr: u64) -> String {
        self.names
            .borrow_mut()
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
        let (m, n) = &self.type_names[self.ty[v as usize] as usize];
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

/// Address -> node index: a dense array per snapshot region for 16-byte aligned addresses (almost every heap
/// object), allocated lazily and zero-filled by the kernel on first touch; a hash map for the rest.
pub(crate) struct NodeIndex {
    dense: Vec<Vec<u32>>,
    sparse: FxHashMap<u64, u32>,
}

impl NodeIndex {
    pub(crate) fn new(regions: usize) -> NodeIndex {
        NodeIndex {
            dense: vec![Vec::new(); regions],
            sparse: FxHashMap::default(),
        }
    }
    /// Stored value + 1 (0 = absent) for dense slots.
    #[inline]
    pub(crate) fn get(&self, ctx: &Ctx, p: u64) -> Option<u32> {
        if p & 15 == 0 {
            let (r, off) = ctx.mem.locate(p)?;
            let v = *self.dense[r].get(off / 16)?;
            return (v != 0).then(|| v - 1);
        }
        self.sparse.get(&p).copied()
    }
    #[inline]
    pub(crate) fn insert(&mut self, ctx: &Ctx, p: u64, i: u32) {
        if p & 15 == 0
            && let Some((r, off)) = ctx.mem.locate(p)
        {
            let d = &mut self.dense[r];
            if d.is_empty() {
                *d = vec![0u32; ctx.mem.regions()[r].len() / 16 + 1];
            }
            d[off / 16] = i + 1;
            return;
        }
        self.sparse.insert(p, i);
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

/// Phase-1 visitor: remembers the untracked objects it owns (GC objects are known already).
#[derive(Default)]
struct Found(Vec<u64>);

impl Visit for Found {
    #[inline]
    fn object(&mut self, _ctx: &Ctx, a: u64, _ti: &super::types::TypeInfo, is_tracked: bool) {
        if !is_tracked {
            self.0.push(a);
        }
    }
}

/// Phase-2 output for a contiguous range of nodes.
struct Chunk {
    types: Types,
    ty: Vec<u32>,
    size: Vec<u64>,
    fp: Vec<u64>,
    flags: Vec<u8>,
    refcnt: Vec<u32>,
    /// end of each node's edges, relative to this chunk
    edge_end: Vec<u64>,
    edge_to: Vec<u32>,
    edge_label: Vec<Packed>,
}

/// Sizes, flags and labelled edges of the nodes at `addrs` (the first `n_tracked` of them GC objects).
fn edges_chunk(ctx: &Ctx, index: &NodeIndex, addrs: &[u64], n_tracked: isize) -> Chunk {
    let mut types = Types::default();
    let n = addrs.len();
    let mut c = Chunk {
        types: Types::default(),
        ty: Vec::with_capacity(n),
        size: Vec::with_capacity(n),
        fp: Vec::with_capacity(n),
        flags: Vec::with_capacity(n),
        refcnt: Vec::with_capacity(n),
        edge_end: Vec::with_capacity(n),
        edge_to: Vec::with_capacity(n * 3),
        edge_label: Vec::with_capacity(n * 3),
    };
    let mut out: Vec<(u64, Label)> = Vec::with_capacity(1024);
    let mut items = vec![];
    for (k, &a) in addrs.iter().enumerate() {
        let t = ctx.ptr(a + 8);
        let ti = types.get(ctx, t).expect("validated when found");
        let ti = types.infos[ti as usize].clone();
        let is_static = ctx.is_static(a);
        let (size, fp) = if is_static {
            (0, 0)
        } else {
            let s = getsizeof(ctx, a, &ti);
            (s, footprint(ctx, a, &ti, s))
        };
        c.ty.push(ti.key);
        c.size.push(size);
        c.fp.push(fp);
        c.flags.push(
            if (k as isize) < n_tracked { TRACKED } else { 0 } | if is_static { STATIC } else { 0 },
        );
        c.refcnt.push(ctx.mem.u32(a).unwrap_or(0));
        out.clear();
        out.push((t, Label::Class));
        refs(ctx, a, &ti, &mut out, &mut items);
        for &(p, l) in out.iter() {
            if let Some(i) = index.get(ctx, p) {
                c.edge_to.push(i);
                c.edge_label.push(Packed::pack(l));
            }
        }
        c.edge_end.push(c.edge_to.len() as u64);
    }
    c.types = types;
    c
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

/// Build the graph: objects, labelled references, virtual roots; then native referrers and unreachable cycles.
pub fn build<'a>(ctx: &'a Ctx<'a>) -> Result<Graph<'a>, HeapError> {
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

    let t0 = std::time::Instant::now();
    // ---- objects, phase 1: find every object, one walker thread per core (as the census does)
    let mut tracked = vec![];
    let gc_tracked = gc_objects(ctx, &mut tracked)?;
    if gc_tracked == 0 {
        return Err(HeapError::Invalid("the GC lists are empty".into()));
    }
    let visited = Visited::new(ctx);
    tracked.retain(|&a| visited.insert(ctx, a));
    let n_tracked = tracked.len();
    let root_addrs: Vec<u64> = vaddr_edges.iter().flatten().map(|e| e.0).collect();
    let parts: Vec<Part<Found>> = traverse(ctx, &visited, &tracked, &root_addrs);
    drop(visited);
    let mut rejected = 0;
    let mut addrs = tracked;
    for p in &parts {
        addrs.extend_from_slice(&p.visit.0);
        rejected += p.rejected;
    }
    drop(parts);
    log::debug!("graph: phase 1 {:?}", t0.elapsed());
    // node indices: GC objects first, then the rest in discovery order
    let mut index = NodeIndex::new(ctx.mem.regions().len());
    for (k, &a) in addrs.iter().enumerate() {
        index.insert(ctx, a, first_object + k as u32);
    }
    let mut vedges: Vec<Vec<(u32, Label)>> = vvirt_edges;
    for (v, es) in vaddr_edges.into_iter().enumerate() {
        for (p, l) in es {
            if let Some(i) = index.get(ctx, p) {
                vedges[v].push((i, l));
            }
        }
    }
    log::debug!("graph: index {:?}", t0.elapsed());
    // ---- phase 2: sizes and labelled edges, each thread a contiguous range of nodes
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per = addrs.len().div_ceil(threads).max(1);
    let ranges: Vec<&[u64]> = addrs.chunks(per).collect();
    let chunks: Vec<Chunk> = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .iter()
            .enumerate()
            .map(|(c, r)| {
                let index = &index;
                let first_tracked = (c * per) as isize;
                s.spawn(move || edges_chunk(ctx, index, r, n_tracked as isize - first_tracked))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("graph thread panicked"))
            .collect()
    });
    drop(index);
    log::debug!("graph: phase 2 {:?}", t0.elapsed());
    // type keys per thread -> global keys by (module, name)
    let mut keys: FxHashMap<(String, String), u32> = FxHashMap::default();
    let mut type_names: Vec<(String, String)> = vec![];
    let mut global_kinds: Vec<Kind> = vec![];
    let mut global_flags: Vec<u64> = vec![];
    let total_edges: usize = chunks.iter().map(|c| c.edge_to.len()).sum();
    let n = first_object as usize + addrs.len();
    let mut g_ty = vec![NONE; first_object as usize];
    let mut g_size = vec![0u64; first_object as usize];
    let mut g_fp = vec![0u64; first_object as usize];
    let mut g_flags = vec![VIRTUAL; first_object as usize];
    let mut refcnt: Vec<u32> = Vec::with_capacity(addrs.len());
    for v in [&mut g_size, &mut g_fp] {
        v.reserve(addrs.len());
    }
    g_ty.reserve(addrs.len());
    g_flags.reserve(addrs.len());
    let mut edge_start: Vec<u64> = Vec::with_capacity(addrs.len() + 1);
    edge_start.push(0);
    let mut edge_to: Vec<u32> = Vec::with_capacity(total_edges);
    let mut edge_label: Vec<Packed> = Vec::with_capacity(total_edges);
    for c in chunks {
        let remap: Vec<u32> = c
            .types
            .key_names
            .iter()
            .map(|k| {
                *keys.entry(k.clone()).or_insert_with(|| {
                    type_names.push(k.clone());
                    global_kinds.push(Kind::Other);
                    global_flags.push(0);
                    (type_names.len() - 1) as u32
                })
            })
            .collect();
        for ti in &c.types.infos {
            let g = remap[ti.key as usize] as usize;
            global_kinds[g] = ti.kind;
            global_flags[g] = ti.flags;
        }
        g_ty.extend(c.ty.iter().map(|&k| remap[k as usize]));
        g_size.extend_from_slice(&c.size);
        g_fp.extend_from_slice(&c.fp);
        g_flags.extend_from_slice(&c.flags);
        refcnt.extend_from_slice(&c.refcnt);
        let base = edge_to.len() as u64;
        edge_start.extend(c.edge_end.iter().map(|&e| base + e));
        edge_to.extend_from_slice(&c.edge_to);
        edge_label.extend_from_slice(&c.edge_label);
    }
    debug_assert_eq!(g_ty.len(), n);
    let mut g_addr = vec![0u64; first_object as usize];
    g_addr.extend_from_slice(&addrs);
    drop(addrs);
    let type_kinds = global_kinds;
    let type_flags = global_flags;
    let mut g = Graph {
        first_object,
        addr: g_addr,
        ty: g_ty,
        size: g_size,
        footprint: g_fp,
        flags: g_flags,
        vname,
        edge_start,
        edge_to,
        edge_label,
        vedges,
        type_names,
        type_kinds,
        type_flags,
        ctx,
        names: RefCell::new(FxHashMap::default()),
        census: Census {
            gc_tracked: gc_tracked as u64,
            rejected_refs: rejected,
            ..Default::default()
        },
    };

    log::debug!("graph: merged {:?}", t0.elapsed());
    // ---- native referrers: refcount beyond the references found (immortal and static objects excluded)
    let n = g.len();
    let mut indeg = vec![0u32; n];
    for v in 0..n as u32 {
        for (t, l) in g.succ(v) {
            // the interned tables (<= 3.11) and borrowed frame fields hold no reference count
            if (!matches!(l, Label::Field("internal")) || !g.is_virtual(v))
                && !l.is_borrowed(ctx.minor)
            {
                indeg[t as usize] = indeg[t as usize].saturating_add(1);
            }
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
    let mut native = vec![];
    for i in first_object as usize..n {
        let rc = refcnt[i - first_object as usize];
        if g.flags[i] & STATIC == 0 && !immortal(rc) && rc > indeg[i] {
            native.push((i as u32, Label::Field("native")));
        }
    }
    g.vedges[nv as usize] = native;
    log::debug!("graph: native {:?}", t0.elapsed());
    // ---- unreachable: on the GC lists but not reachable from any root
    let mut seen = vec![false; n];
    let mut stack = vec![0u32];
    seen[0] = true;
    while let Some(v) = stack.pop() {
        for (t, _) in g.succ(v) {
            if !seen[t as usize] {
                seen[t as usize] = true;
                stack.push(t);
            }
        }
    }
    let unreached: Vec<(u32, Label)> = (first_object..n as u32)
        .filter(|&i| !seen[i as usize])
        .map(|i| (i, Label::Field("cycle")))
        .collect();
    g.vedges[uv as usize] = unreached;

    log::debug!("graph: unreachable {:?}", t0.elapsed());
    // ---- the census, from the same nodes
    let mut tallies: Vec<TypeTally> = vec![TypeTally::default(); g.type_names.len()];
    for i in first_object as usize..n {
        if g.flags[i] & STATIC != 0 {
            g.census.static_objects += 1;
            continue;
        }
        let t = &mut tallies[g.ty[i] as usize];
        t.count += 1;
        t.bytes += g.size[i];
        t.footprint += g.footprint[i];
        t.tracked += (g.flags[i] & TRACKED != 0) as u64;
    }
    for (k, mut t) in tallies.into_iter().enumerate() {
        if t.count == 0 {
            continue;
        }
        (t.module, t.name) = g.type_names[k].clone();
        g.census.objects += t.count;
        g.census.bytes += t.bytes;
        g.census.footprint += t.footprint;
        g.census.types.push(t);
    }
    g.census.sort();
    Ok(g)
}
