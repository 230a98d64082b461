//! Everything the walk needs to read a snapshot: memory, layout, well-known addresses, and the image ranges.

use super::HeapError;
use crate::layout::Layout;
use crate::memory::Snapshot;

/// Type flags (`Py_TPFLAGS_*`).
pub mod flags {
    pub const INLINE_VALUES: u64 = 1 << 2;
    pub const MANAGED_WEAKREF: u64 = 1 << 3;
    pub const MANAGED_DICT: u64 = 1 << 4;
    pub const HEAPTYPE: u64 = 1 << 9;
    pub const READY: u64 = 1 << 12;
    pub const HAVE_GC: u64 = 1 << 14;
    pub const TYPE_SUBCLASS: u64 = 1 << 31;
}

/// Addresses of the interpreter's own objects and types, from the exported symbols of libpython / the executable.
#[derive(Debug, Default, Clone)]
pub struct Known {
    pub type_type: u64,
    pub set_dummy: u64,
    pub str_type: u64,
    pub none: u64,
    /// (symbol, kind) pairs resolved to addresses
    pub kinds: Vec<(u64, super::types::Kind)>,
}

/// Addresses of interpreter variables found through symbols (file-local ones need a symbol table or debug file).
#[derive(Debug, Default, Clone)]
pub struct Syms {
    /// tracemalloc's config struct (`{int initialized, tracing, max_nframe[, use_domain]}`)
    pub tm_config: Option<u64>,
    /// the variable holding the traces table pointer (`_Py_hashtable_t *`)
    pub tm_traces: Option<u64>,
    /// the variable holding the domains table pointer (3.9+)
    pub tm_domains: Option<u64>,
}

/// Read-only context of a walk.
pub struct Ctx<'a> {
    pub mem: &'a Snapshot,
    pub layout: &'a Layout,
    pub known: Known,
    pub runtime: u64,
    /// ELF image ranges (static objects live there), sorted.
    pub images: Vec<(u64, u64)>,
    /// `interned` dict pointer variable (3.8–3.11, file-local symbol), if found.
    pub interned_sym: Option<u64>,
    pub syms: Syms,
    pub minor: u8,
    pub micro: u8,
    /// The main interpreter state.
    pub interp: u64,
    pub o: super::decode::Offs,
    // hot offsets
    pub tuple_items: u64,
    pub tp_name: u64,
    pub tp_basicsize: u64,
    pub tp_itemsize: u64,
    pub tp_flags: u64,
    pub tp_dictoffset: u64,
    pub tp_base: u64,
    pub tp_dict: u64,
    pub tp_mro: u64,
    pub tp_bases: u64,
    pub tp_members: u64,
    pub tp_subclasses: u64,
    pub tp_weaklistoffset: u64,
    pub ht_cached_keys: u64,
}

impl<'a> Ctx<'a> {
    pub fn new(
        mem: &'a Snapshot,
        layout: &'a Layout,
        known: Known,
        runtime: u64,
        images: Vec<(u64, u64)>,
        interned_sym: Option<u64>,
    ) -> Result<Ctx<'a>, HeapError> {
        let r = |l: &str| layout.req(l).map(|v| v as u64);
        let interp = mem.u64(runtime + r("rt.interpreters.head")?).unwrap_or(0);
        if interp == 0 {
            return Err(HeapError::Invalid(format!(
                "no interpreter at _PyRuntime {runtime:#x} (not initialised, or finalising)"
            )));
        }
        Ok(Ctx {
            interp,
            o: super::decode::Offs::new(layout),
            mem,
            layout,
            known,
            runtime,
            images,
            interned_sym,
            syms: Syms::default(),
            minor: layout.version.minor,
            micro: layout.version.micro,
            tuple_items: r("tuple.ob_item")?,
            tp_name: r("type.tp_name")?,
            tp_basicsize: r("type.tp_basicsize")?,
            tp_itemsize: r("type.tp_itemsize")?,
            tp_flags: r("type.tp_flags")?,
            tp_dictoffset: r("type.tp_dictoffset")?,
            tp_base: r("type.tp_base")?,
            tp_dict: r("type.tp_dict")?,
            tp_mro: r("type.tp_mro")?,
            tp_bases: r("type.tp_bases")?,
            tp_members: r("type.tp_members")?,
            tp_subclasses: r("type.tp_subclasses")?,
            tp_weaklistoffset: r("type.tp_weaklistoffset")?,
            ht_cached_keys: r("heaptype.ht_cached_keys")?,
        })
    }

    #[inline]
    pub fn u64(&self, a: u64) -> Option<u64> {
        self.mem.u64(a)
    }
    #[inline]
    pub fn ptr(&self, a: u64) -> u64 {
        self.mem.u64(a).unwrap_or(0)
    }
    /// A layout field; 0 if absent.
    pub fn off(&self, label: &str) -> Option<u64> {
        self.layout.get(label).map(|v| v as u64)
    }
    pub fn req(&self, label: &str) -> Result<u64, HeapError> {
        Ok(self.layout.req(label)? as u64)
    }
    /// Inside an ELF image (a static object), not on the heap.
    #[inline]
    pub fn is_static(&self, a: u64) -> bool {
        let i = self.images.partition_point(|r| r.0 <= a);
        i > 0 && a < self.images[i - 1].1
    }
    pub fn at_least(&self, minor: u8) -> bool {
        self.minor >= minor
    }
}
