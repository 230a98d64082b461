//! Joining traced blocks to objects: an object's block starts at its address minus its pre-header; buffers an
//! object alone owns (list items, dict keys and values, set tables, bytearray data, values arrays) are its own.

use super::tracemalloc::{Frame, Traces};
use crate::heap::Ctx;
use crate::heap::ctx::flags;
use crate::heap::decode::values_array;
use crate::heap::graph::{Graph, STATIC};
use crate::heap::size::preheader;
use crate::heap::types::Kind;
use rustc_hash::FxHashMap;

/// Who a traced block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// the object's own allocation
    Object(u32),
    /// a buffer the object alone owns
    Buffer(u32),
    /// no object found for it (C allocations, freed-object caches, interpreter internals)
    None,
}

/// The attribution of every traced block.
pub struct Join {
    pub owner: Vec<Owner>,
    /// objects (not static) with a trace, and their bytes (getsizeof)
    pub covered_objects: u64,
    pub covered_bytes: u64,
    pub total_objects: u64,
    pub total_bytes: u64,
    /// code objects by file name: (first line, function name), sorted
    functions: FxHashMap<String, Vec<(u32, String)>>,
    /// where the target's files are (its `/proc/PID/root`), to read sources for function boundaries
    source_root: Option<std::path::PathBuf>,
    sources: std::cell::RefCell<FxHashMap<String, Option<Vec<String>>>>,
}

/// Block address -> index of its first block: a dense array per snapshot region for 16-byte aligned addresses (almost every heap
/// object), allocated lazily and zero-filled by the kernel on first touch; a hash map for the rest.
struct BlockIndex {
    dense: Vec<Vec<u32>>,
    sparse: FxHashMap<u64, u32>,
}

impl BlockIndex {
    fn new(regions: usize) -> BlockIndex {
        BlockIndex {
            dense: vec![Vec::new(); regions],
            sparse: FxHashMap::default(),
        }
    }
    /// Stored value + 1 (0 = absent) for dense slots.
    #[inline]
    fn get(&self, ctx: &Ctx, p: u64) -> Option<u32> {
        if p & 15 == 0 {
            let (r, off) = ctx.mem.locate(p)?;
            let v = *self.dense[r].get(off / 16)?;
            return (v != 0).then(|| v - 1);
        }
        self.sparse.get(&p).copied()
    }
    #[inline]
    fn insert(&mut self, ctx: &Ctx, p: u64, i: u32) {
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

pub fn join(g: &Graph, t: &Traces) -> Join {
    let ctx = g.ctx();
    let o = &ctx.o;
    let minor = ctx.minor;
    // block start -> first block index (a dense array per snapshot region: blocks are 16-byte aligned), further
    // blocks at the same pointer (other domains) chained in `same`
    let mut first = BlockIndex::new(ctx.mem.regions().len());
    let mut same = vec![u32::MAX; t.blocks.len()];
    for (i, b) in t.blocks.iter().enumerate() {
        if let Some(prev) = first.get(ctx, b.ptr) {
            same[i] = prev;
        }
        first.insert(ctx, b.ptr, i as u32);
    }
    let mut owner = vec![Owner::None; t.blocks.len()];
    let mut j = Join {
        owner: vec![],
        covered_objects: 0,
        covered_bytes: 0,
        total_objects: 0,
        total_bytes: 0,
        functions: FxHashMap::default(),
        source_root: None,
        sources: Default::default(),
    };
    let claim = |p: u64, who: Owner, owner: &mut Vec<Owner>| -> bool {
        if p == 0 {
            return false;
        }
        let Some(i) = first.get(ctx, p) else {
            return false;
        };
        let mut i = i;
        while i != u32::MAX {
            if owner[i as usize] == Owner::None {
                owner[i as usize] = who;
            }
            i = same[i as usize];
        }
        true
    };
    for v in g.first_object..g.len() as u32 {
        if g.flags[v as usize] & STATIC != 0 {
            continue;
        }
        let key = g.ty(v) as usize;
        let a = g.addr(v);
        let f = g.type_flags[key];
        j.total_objects += 1;
        j.total_bytes += g.size(v);
        if claim(
            a.wrapping_sub(preheader(minor, f)),
            Owner::Object(v),
            &mut owner,
        ) {
            j.covered_objects += 1;
            j.covered_bytes += g.size(v);
        }
        let buf = Owner::Buffer(v);
        match g.type_kinds[key] {
            Kind::List => {
                claim(ctx.ptr(a + o.list_items), buf, &mut owner);
            }
            Kind::Dict => {
                let keys = ctx.ptr(a + o.ma_keys);
                if ctx.u64(keys) == Some(1) {
                    claim(keys, buf, &mut owner);
                }
                let values = ctx.ptr(a + o.ma_values);
                if values != 0 {
                    if minor >= 13 {
                        if ctx.mem.u8(values + 2) == Some(0) {
                            claim(values, buf, &mut owner);
                        }
                    } else if minor >= 11 {
                        let prefix = ctx.mem.u8(values.wrapping_sub(1)).unwrap_or(0) as u64;
                        claim(values.wrapping_sub(prefix), buf, &mut owner);
                    } else {
                        claim(values, buf, &mut owner);
                    }
                }
            }
            Kind::Set => {
                let table = ctx.ptr(a + o.set_table);
                if table != a + o.set_smalltable {
                    claim(table, buf, &mut owner);
                }
            }
            Kind::ByteArray => {
                if o.ba_bytes_object != u64::MAX {
                    claim(ctx.ptr(a + o.ba_bytes_object), buf, &mut owner);
                } else {
                    claim(ctx.ptr(a + 32), buf, &mut owner);
                }
            }
            Kind::Code => {
                if let (Some(fname), Some(name), line) = crate::heap::decode::code_info(ctx, a) {
                    j.functions
                        .entry(fname)
                        .or_default()
                        .push((line.max(0) as u32, name));
                }
            }
            _ => {}
        }
        // 3.11/3.12 instance values arrays
        if (11..13).contains(&minor) && f & flags::MANAGED_DICT != 0 {
            let values = values_array(ctx, a);
            if values != 0 {
                let prefix = ctx.mem.u8(values.wrapping_sub(1)).unwrap_or(0) as u64;
                claim(values.wrapping_sub(prefix), buf, &mut owner);
            }
        }
    }
    for v in j.functions.values_mut() {
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
    }
    j.owner = owner;
    j
}

impl Join {
    /// Read sources through this directory (the target's `/proc/PID/root`) to tell which function a line is in.
    pub fn set_source_root(&mut self, root: std::path::PathBuf) {
        self.source_root = Some(root);
    }

    /// The line of the `def` (or `class`) whose body holds line `lineno`, from the source's indentation;
    /// Some(None) when the line is at module level, None when the source cannot be read.
    fn enclosing_def(&self, file: &str, lineno: u32) -> Option<Option<(u32, String)>> {
        let root = self.source_root.as_ref()?;
        if !file.starts_with('/') {
            return None;
        }
        let mut cache = self.sources.borrow_mut();
        let lines = cache
            .entry(file.to_string())
            .or_insert_with(|| {
                let p = root.join(file.trim_start_matches('/'));
                let meta = std::fs::metadata(&p).ok()?;
                if meta.len() > 16 << 20 {
                    return None;
                }
                let text = std::fs::read_to_string(p).ok()?;
                Some(text.lines().map(|l| l.to_string()).collect())
            })
            .as_ref()?;
        let indent = |l: &str| l.len() - l.trim_start().len();
        let is_code = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
        let def_name = |l: &str| -> Option<String> {
            let t = l.trim_start();
            let t = t.strip_prefix("async ").unwrap_or(t);
            let rest = t
                .strip_prefix("def ")
                .or_else(|| t.strip_prefix("class "))?;
            Some(
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")
                    .to_string(),
            )
        };
        let i = (lineno as usize).checked_sub(1)?;
        let line = lines.get(i)?;
        if def_name(line).is_some() {
            return Some(Some((lineno, def_name(line).unwrap())));
        }
        let mut level = indent(line);
        for k in (0..i).rev() {
            let l = &lines[k];
            if !is_code(l) || indent(l) >= level {
                continue;
            }
            if let Some(n) = def_name(l) {
                return Some(Some((k as u32 + 1, n)));
            }
            level = indent(l);
            if level == 0 {
                break;
            }
        }
        Some(None)
    }

    /// "file.py:LINE in function": the function from the target's code objects, its boundaries from the source
    /// (read through the target's root) when available.
    pub fn frame_text(&self, f: &Frame) -> String {
        let base = f.filename.rsplit('/').next().unwrap_or(&f.filename);
        let by_code = |upto: u32| {
            self.functions.get(&f.filename).and_then(|v| {
                let i = v.partition_point(|(l, _)| *l <= upto);
                (i > 0).then(|| v[i - 1].1.clone())
            })
        };
        let func = match self.enclosing_def(&f.filename, f.lineno) {
            Some(None) => Some("<module>".to_string()),
            Some(Some((def_line, name))) => by_code(def_line)
                .filter(|q| q.ends_with(&name))
                .or(Some(name)),
            None => by_code(f.lineno),
        };
        match func {
            Some(n) => format!("{base}:{} in {n}", f.lineno),
            None => format!("{base}:{}", f.lineno),
        }
    }
}
