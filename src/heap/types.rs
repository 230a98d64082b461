//! Type objects of the target: validation, names and modules, the builtin "kind" each type derives from, slots.

use super::ctx::{Ctx, flags};
use super::decode;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// The builtin layout an object has (for heap subclasses: the nearest builtin base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Object,
    List,
    Tuple,
    Dict,
    Set,
    Str,
    Bytes,
    ByteArray,
    Int,
    Float,
    Complex,
    Type,
    Module,
    Function,
    Cell,
    Method,
    Code,
    Frame,
    Gen,
    CFunction,
    WeakRef,
    /// Anything else (C types): references found by a validated scan of the fixed part.
    Other,
}

/// Exported symbols of the builtin types and their kind.
pub const KIND_SYMBOLS: &[(&str, Kind)] = &[
    ("PyBaseObject_Type", Kind::Object),
    ("PyList_Type", Kind::List),
    ("PyTuple_Type", Kind::Tuple),
    ("PyDict_Type", Kind::Dict),
    ("PySet_Type", Kind::Set),
    ("PyFrozenSet_Type", Kind::Set),
    ("PyUnicode_Type", Kind::Str),
    ("PyBytes_Type", Kind::Bytes),
    ("PyByteArray_Type", Kind::ByteArray),
    ("PyLong_Type", Kind::Int),
    ("PyBool_Type", Kind::Int),
    ("PyFloat_Type", Kind::Float),
    ("PyComplex_Type", Kind::Complex),
    ("PyType_Type", Kind::Type),
    ("PyModule_Type", Kind::Module),
    ("PyFunction_Type", Kind::Function),
    ("PyCell_Type", Kind::Cell),
    ("PyMethod_Type", Kind::Method),
    ("PyCode_Type", Kind::Code),
    ("PyFrame_Type", Kind::Frame),
    ("PyGen_Type", Kind::Gen),
    ("PyCoro_Type", Kind::Gen),
    ("PyAsyncGen_Type", Kind::Gen),
    ("PyCFunction_Type", Kind::CFunction),
    ("PyCMethod_Type", Kind::CFunction),
    ("_PyWeakref_RefType", Kind::WeakRef),
    ("_PyWeakref_ProxyType", Kind::WeakRef),
    ("_PyWeakref_CallableProxyType", Kind::WeakRef),
];

#[derive(Debug, Clone)]
pub struct TypeInfo {
    pub addr: u64,
    pub name: String,
    /// `__module__` for heap types, "" for static types.
    pub module: String,
    pub flags: u64,
    pub basicsize: i64,
    pub itemsize: i64,
    pub dictoffset: i64,
    pub kind: Kind,
    /// basicsize of the nearest static base (the part the base kind's decoder understands)
    pub base_basicsize: i64,
    /// fields a C subclass adds to a builtin base: [start, end) scanned for references
    pub extra_scan: (i64, i64),
    pub weaklistoffset: i64,
    /// Offsets of object slots (`__slots__`, T_OBJECT members) of the heap types in the MRO.
    pub slots: Vec<u64>,
    /// C-string addresses of the slots' names
    pub slot_names: Vec<u64>,
    pub is_heap: bool,
    /// Index into the census key table.
    pub key: u32,
    /// Index of this type in its `Types` (`infos`).
    pub index: u32,
}

impl TypeInfo {
    pub fn is_gc(&self) -> bool {
        self.flags & flags::HAVE_GC != 0
    }
}

/// Cache of validated type objects by address.
#[derive(Default)]
pub struct Types {
    /// direct-mapped cache in front of `by_addr`: (type address, index)
    recent: Vec<(u64, u32)>,
    by_addr: FxHashMap<u64, u32>,
    pub infos: Vec<Arc<TypeInfo>>,
    /// (module, name) -> key
    keys: FxHashMap<(String, String), u32>,
    pub key_names: Vec<(String, String)>,
}

const INVALID: u32 = u32::MAX;

impl Types {
    /// The type info of the object whose `ob_type` is `t`, validating `t` the first time it is seen.
    #[inline]
    pub fn get(&mut self, ctx: &Ctx, t: u64) -> Option<u32> {
        if self.recent.is_empty() {
            self.recent = vec![(u64::MAX, INVALID); 256];
        }
        let slot = ((t >> 4) ^ (t >> 12)) as usize & 255;
        if self.recent[slot].0 == t {
            let i = self.recent[slot].1;
            return (i != INVALID).then_some(i);
        }
        let i = match self.by_addr.get(&t) {
            Some(&i) => i,
            None => {
                let r = self.resolve(ctx, t, 0).unwrap_or(INVALID);
                self.by_addr.insert(t, r);
                r
            }
        };
        self.recent[slot] = (t, i);
        (i != INVALID).then_some(i)
    }

    fn is_type_object(&mut self, ctx: &Ctx, t: u64, depth: u32) -> bool {
        if t == 0 || t & 7 != 0 || depth > 8 {
            return false;
        }
        if t == ctx.known.type_type {
            return true;
        }
        let Some(meta) = ctx.u64(t + 8) else {
            return false;
        };
        if meta == ctx.known.type_type {
            return true;
        }
        // a metaclass: itself a type whose flags say it subclasses `type`
        let Some(mf) = ctx.u64(meta + ctx.tp_flags) else {
            return false;
        };
        mf & flags::TYPE_SUBCLASS != 0 && self.is_type_object(ctx, meta, depth + 1)
    }

    fn resolve(&mut self, ctx: &Ctx, t: u64, depth: u32) -> Option<u32> {
        if !self.is_type_object(ctx, t, depth) {
            return None;
        }
        let fl = ctx.u64(t + ctx.tp_flags)?;
        if fl & flags::READY == 0 {
            return None;
        }
        let basicsize = ctx.u64(t + ctx.tp_basicsize)? as i64;
        let itemsize = ctx.u64(t + ctx.tp_itemsize)? as i64;
        if !(16..(1 << 24)).contains(&basicsize) || !(0..(1 << 16)).contains(&itemsize) {
            return None;
        }
        let name = ctx.mem.cstr(ctx.u64(t + ctx.tp_name)?, 512)?;
        if name.is_empty() {
            return None;
        }
        let is_heap = fl & flags::HEAPTYPE != 0;
        // nearest known builtin base
        let (mut kind, mut base_basicsize) = (Kind::Object, 16);
        // basicsize of the first static C type in the chain that has no decoder of its own
        let mut c_static: Option<i64> = None;
        let mut b = t;
        for _ in 0..64 {
            if b == 0 {
                break;
            }
            if let Some(&(_, k)) = ctx.known.kinds.iter().find(|(a, _)| *a == b) {
                kind = k;
                base_basicsize = ctx.u64(b + ctx.tp_basicsize).unwrap_or(16) as i64;
                break;
            }
            let bf = ctx.u64(b + ctx.tp_flags).unwrap_or(0);
            if bf & flags::HEAPTYPE == 0 && c_static.is_none() {
                c_static = Some(ctx.u64(b + ctx.tp_basicsize).unwrap_or(16) as i64);
            }
            b = ctx.ptr(b + ctx.tp_base);
        }
        // A C type derived from a builtin (OrderedDict from dict, a struct sequence from tuple) is decoded as that
        // builtin, and the fields it adds are scanned; one derived from object alone is scanned whole.
        let mut extra_scan = (0, 0);
        if let Some(cs) = c_static {
            if kind == Kind::Object {
                kind = Kind::Other;
                base_basicsize = cs;
            } else if cs > base_basicsize && itemsize == 0 {
                extra_scan = (base_basicsize, cs);
            }
        }
        let module = if is_heap {
            type_module(ctx, t).unwrap_or_default()
        } else {
            String::new()
        };
        let (slots, slot_names) = if is_heap {
            slot_offsets(ctx, t)
        } else {
            (vec![], vec![])
        };
        let keyname = (module.clone(), name.clone());
        let key = match self.keys.get(&keyname) {
            Some(&k) => k,
            None => {
                let k = self.key_names.len() as u32;
                self.keys.insert(keyname.clone(), k);
                self.key_names.push(keyname);
                k
            }
        };
        let info = TypeInfo {
            addr: t,
            name,
            module,
            flags: fl,
            basicsize,
            itemsize,
            dictoffset: ctx.u64(t + ctx.tp_dictoffset).unwrap_or(0) as i64,
            kind,
            base_basicsize,
            extra_scan,
            weaklistoffset: ctx.u64(t + ctx.tp_weaklistoffset).unwrap_or(0) as i64,
            slots,
            slot_names,
            is_heap,
            key,
            index: self.infos.len() as u32,
        };
        self.infos.push(Arc::new(info));
        Some((self.infos.len() - 1) as u32)
    }
}

/// `__module__` of a heap type, from its dict.
fn type_module(ctx: &Ctx, t: u64) -> Option<String> {
    let d = ctx.u64(t + ctx.tp_dict)?;
    let mut items = vec![];
    decode::dict_items(ctx, d, &mut items);
    for (k, v) in items {
        if decode::read_str(ctx, k).as_deref() == Some("__module__") {
            return decode::read_str(ctx, v);
        }
    }
    None
}

/// Offsets of T_OBJECT / T_OBJECT_EX members declared by the heap types in `t`'s MRO.
fn slot_offsets(ctx: &Ctx, t: u64) -> (Vec<u64>, Vec<u64>) {
    let mut out = vec![];
    let mut names = vec![];
    let mro = ctx.ptr(t + ctx.tp_mro);
    let mut types = vec![];
    if mro != 0 {
        let n = ctx.u64(mro + 16).unwrap_or(0).min(256);
        for i in 0..n {
            types.push(ctx.ptr(mro + ctx.tuple_items + 8 * i));
        }
    } else {
        types.push(t);
    }
    for ty in types {
        let fl = ctx.u64(ty + ctx.tp_flags).unwrap_or(0);
        if fl & flags::HEAPTYPE == 0 {
            continue;
        }
        let mut m = ctx.ptr(ty + ctx.tp_members);
        for _ in 0..4096 {
            if m == 0 || ctx.ptr(m) == 0 {
                break;
            }
            let ty = ctx.mem.i32(m + 8).unwrap_or(0);
            let off = ctx.u64(m + 16).unwrap_or(0);
            if (ty == 6 || ty == 16) && (16..(1 << 20)).contains(&off) && !out.contains(&off) {
                out.push(off);
                names.push(ctx.ptr(m));
            }
            m += 40;
        }
    }
    (out, names)
}
