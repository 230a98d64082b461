//! Reading tracemalloc's tables from outside: every live traced block (pointer, requested size, domain) with its
//! traceback, decoded from a stopped copy of the target (cpython-internals.md §5).
//!
//! Where the state is: the config struct and the variables holding the traces / domains `_Py_hashtable_t*` come
//! resolved in `ctx.syms` (file-local statics on 3.8–3.11, `_PyRuntime.tracemalloc` on 3.12+). The tables:
//! * 3.9+: `{nentries, nbuckets, buckets, ...}`, entries `{next, key_hash, key = block pointer, value = trace_t*}`;
//!   domain 0 in the traces table, every other domain in its own traces table, found through the domains table
//!   (key = domain, value = `_Py_hashtable_t*`).
//! * 3.8: `{num_buckets, entries, buckets, key_size, data_size, ...}`, entries `{next, key_hash}` followed inline by
//!   the key (`key_size` bytes: the pointer, or a packed 12-byte `pointer_t {ptr, u32 domain}` once any non-zero
//!   domain was used) and the `trace_t` itself (`data_size` = 16 bytes, possibly unaligned).
//!
//! `trace_t {size, traceback_t*}`; `traceback_t {hash, nframe, [total_nframe], frames[]}` with packed 12-byte
//! `frame_t {filename, u32 lineno}`, most recent call first; the filename is a `str` up to 3.14 and a NUL-terminated
//! UTF-8 `char*` on 3.15. On 3.8 `nframe` is an `int`, on 3.9+ a `uint16_t` followed by `total_nframe`.
//!
//! The tables are rehashed and modified while the program runs; a copy taken at an unlucky moment is rejected
//! (`TraceError::Corrupt`) rather than half-read: bucket counts must be powers of two whose array lies in the
//! snapshot, every entry must sit in the bucket its hash selects, chains may not hold more entries than the table
//! says it has (cycles), and the number walked must match `nentries` give or take the one entry a stopped insert
//! or removal can leave unaccounted.

use crate::heap::decode::read_str;
use crate::heap::{Ctx, HeapError};
use rustc_hash::FxHashMap;

/// One frame of a traceback.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub filename: String,
    pub lineno: u32,
}

/// One live traced block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// the allocation's start address
    pub ptr: u64,
    /// the size requested from the allocator
    pub size: u64,
    /// 0 for Python's own allocators; others from `PyTraceMalloc_Track`
    pub domain: u32,
    /// index into `Traces::tracebacks`
    pub traceback: u32,
}

/// Everything tracemalloc traces in the target.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    pub tracing: bool,
    pub max_nframe: u32,
    /// every live traced block: (address, requested size, domain, traceback index)
    pub blocks: Vec<Block>,
    /// deduplicated tracebacks, frames outermost call FIRST (tracemalloc stores most recent first; reversed here)
    pub tracebacks: Vec<Vec<Frame>>,
    /// blocks whose traceback was truncated (total_nframe > nframe), 0 on 3.8
    pub total_nframe_truncated: u64,
}

impl Traces {
    /// Sum of the requested sizes of all blocks.
    pub fn total_size(&self) -> u64 {
        self.blocks.iter().map(|b| b.size).sum()
    }
    /// The innermost frame (the allocation site) of a block, if its traceback has one.
    pub fn site(&self, b: &Block) -> Option<&Frame> {
        self.tracebacks.get(b.traceback as usize)?.last()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(
        "tracemalloc is not tracing in the target (start it with PYTHONTRACEMALLOC=N, -X tracemalloc=N or tracemalloc.start(N))"
    )]
    NotTracing,
    #[error("tracemalloc's tables cannot be found: {0}")]
    NotFound(String),
    #[error(
        "tracemalloc's tables do not validate ({what} at {addr:#x}); they were probably being modified"
    )]
    Corrupt { what: &'static str, addr: u64 },
}

impl TraceError {
    /// A fresh copy of the target may cure it.
    pub fn is_transient(&self) -> bool {
        matches!(self, TraceError::Corrupt { .. })
    }
}

/// For use inside `snapshot::with_heap`: `Corrupt` becomes the transient `HeapError::Torn` (so that a fresh copy is
/// taken), the rest `HeapError::Invalid`.
impl From<TraceError> for HeapError {
    fn from(e: TraceError) -> HeapError {
        match e {
            TraceError::Corrupt { what, addr } => HeapError::TornTraces { what, addr },
            e => HeapError::Invalid(e.to_string()),
        }
    }
}

/// Longest file name read from a 3.15 `char*` (bytes, NUL included).
const MAX_CSTR: usize = 8192;
/// Largest plausible bucket count (the bucket array must also lie in the snapshot).
const MAX_BUCKETS: u64 = 1 << 36;
/// Largest plausible requested size of one block.
const MAX_BLOCK: u64 = 1 << 47;
/// Entries a table may hold beyond / below its `nentries` (one insert or removal caught between linking the entry
/// and updating the count).
const SLACK: u64 = 1;

/// Offsets of one version, resolved once.
#[derive(Debug, Clone)]
struct Lay {
    /// 3.8: entries carry key and data inline
    inline: bool,
    ht_size: usize,
    ht_nentries: usize,
    ht_nbuckets: usize,
    ht_buckets: usize,
    ht_key_size: usize,
    ht_data_size: usize,
    /// entry header (3.8) or whole entry (3.9+)
    entry_size: usize,
    e_hash: usize,
    e_key: usize,
    e_value: usize,
    trace_size: usize,
    /// `trace.size` (requested size) and `trace.traceback` inside trace_t
    trace_sz: usize,
    trace_tb: usize,
    tb_nframe: usize,
    /// `nframe` is an int (3.8), not a u16
    tb_nframe_int: bool,
    tb_total: Option<usize>,
    tb_frames: usize,
    frame_size: usize,
    fr_filename: usize,
    fr_lineno: usize,
    cstr_filenames: bool,
    cfg_tracing: u64,
    cfg_max_nframe: u64,
    cfg_use_domain: Option<u64>,
}

impl Lay {
    fn new(ctx: &Ctx) -> Result<Lay, TraceError> {
        let get = |l: &str| ctx.layout.get(l).map(|v| v as usize);
        let req = |l: &str| {
            get(l).ok_or_else(|| {
                TraceError::NotFound(format!("layout table {} lacks {l}", ctx.layout.table.build))
            })
        };
        let inline = get("ht.key_size").is_some();
        // 3.8 names them num_buckets (+0) and entries (+8); its table leaves the 3.9+ labels empty
        let (ht_nentries, ht_nbuckets) = if inline {
            (
                get("ht.nentries").unwrap_or(8),
                get("ht.nbuckets").unwrap_or(0),
            )
        } else {
            (req("ht.nentries")?, req("ht.nbuckets")?)
        };
        let tb_total = get("traceback.total_nframe");
        let l = Lay {
            inline,
            ht_size: req("sizeof(_Py_hashtable_t)")?,
            ht_nentries,
            ht_nbuckets,
            ht_buckets: req("ht.buckets")?,
            ht_key_size: get("ht.key_size").unwrap_or(0),
            ht_data_size: get("ht.data_size").unwrap_or(0),
            entry_size: if inline {
                get("sizeof(_Py_hashtable_entry_t)").unwrap_or(16)
            } else {
                req("hte.value")? + 8
            },
            e_hash: req("hte.key_hash")?,
            e_key: if inline { 0 } else { req("hte.key")? },
            e_value: if inline { 0 } else { req("hte.value")? },
            trace_size: get("sizeof(trace_t)").unwrap_or(16),
            trace_sz: req("trace.size")?,
            trace_tb: req("trace.traceback")?,
            tb_nframe: req("traceback.nframe")?,
            tb_nframe_int: tb_total.is_none(),
            tb_total,
            tb_frames: req("traceback.frames")?,
            frame_size: req("sizeof(frame_t)")?,
            fr_filename: req("frame_t.filename")?,
            fr_lineno: req("frame_t.lineno")?,
            cstr_filenames: ctx.at_least(15),
            cfg_tracing: req("tmcfg.tracing")? as u64,
            cfg_max_nframe: req("tmcfg.max_nframe")? as u64,
            cfg_use_domain: get("tmcfg.use_domain").map(|v| v as u64),
        };
        if l.ht_size < l.ht_buckets.max(l.ht_nbuckets).max(l.ht_nentries) + 8
            || l.trace_size < l.trace_tb.max(l.trace_sz) + 8
            || l.frame_size < l.fr_filename.max(l.fr_lineno) + 4
        {
            return Err(TraceError::NotFound(format!(
                "layout table {}: inconsistent tracemalloc struct sizes",
                ctx.layout.table.build
            )));
        }
        Ok(l)
    }
}

#[inline]
fn rd64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}
#[inline]
fn rd32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}
#[inline]
fn rd16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}

fn corrupt(what: &'static str, addr: u64) -> TraceError {
    TraceError::Corrupt { what, addr }
}

fn missing_local(what: &str, ctx: &Ctx) -> TraceError {
    if ctx.at_least(12) {
        return TraceError::NotFound(format!(
            "the layout table {} does not place {what} in _PyRuntime.tracemalloc",
            ctx.layout.table.build
        ));
    }
    TraceError::NotFound(format!(
        "{what} is a file-local (static) symbol of the interpreter and this build has no symbol table: install its \
         debug file (e.g. Debian's python3.{}-dbg, found by build id under /usr/lib/debug/.build-id) or use an \
         unstripped build",
        ctx.minor
    ))
}

/// Read every traced block of the target, in all domains, with deduplicated, decoded tracebacks.
pub fn read(ctx: &Ctx) -> Result<Traces, TraceError> {
    let m = ctx.mem;
    let l = Lay::new(ctx)?;
    let Some(cfg) = ctx.syms.tm_config else {
        return Err(TraceError::NotFound(if ctx.at_least(12) {
            "_PyRuntime.tracemalloc.config is not in the layout table".into()
        } else {
            "the exported symbol _Py_tracemalloc_config was not found".into()
        }));
    };
    let (Some(tracing), Some(max_nframe)) = (
        m.i32(cfg.wrapping_add(l.cfg_tracing)),
        m.i32(cfg.wrapping_add(l.cfg_max_nframe)),
    ) else {
        return Err(TraceError::NotFound(format!(
            "tracemalloc's config at {cfg:#x} is not in the snapshot"
        )));
    };
    if tracing == 0 {
        return Err(TraceError::NotTracing);
    }
    // 3.9+ cap max_nframe at 65535 (nframe is a uint16_t); 3.8's int allows more
    if tracing != 1 || max_nframe < 0 || (!l.tb_nframe_int && max_nframe > u16::MAX as i32) {
        return Err(corrupt("tracemalloc config", cfg));
    }
    let Some(traces_var) = ctx.syms.tm_traces else {
        return Err(missing_local("tracemalloc_traces", ctx));
    };
    let Some(traces) = m.u64(traces_var) else {
        return Err(TraceError::NotFound(format!(
            "the traces table pointer at {traces_var:#x} is not in the snapshot"
        )));
    };
    if traces == 0 {
        return Err(corrupt(
            "traces table pointer (NULL while tracing)",
            traces_var,
        ));
    }
    let mut r = Reader {
        ctx,
        l: &l,
        max_nframe: (max_nframe as u32).max(1),
        out: Traces {
            tracing: true,
            max_nframe: max_nframe as u32,
            ..Default::default()
        },
        tb_index: FxHashMap::default(),
        tb_truncated: vec![],
        names: FxHashMap::default(),
    };
    if l.inline {
        let use_domain = l
            .cfg_use_domain
            .and_then(|o| m.i32(cfg.wrapping_add(o)))
            .map(|v| v != 0);
        r.traces_table(traces, None, use_domain)?;
    } else {
        r.traces_table(traces, Some(0), None)?;
        let Some(dom_var) = ctx.syms.tm_domains else {
            return Err(missing_local("tracemalloc_domains", ctx));
        };
        let Some(domains) = m.u64(dom_var) else {
            return Err(TraceError::NotFound(format!(
                "the domains table pointer at {dom_var:#x} is not in the snapshot"
            )));
        };
        if domains == 0 {
            return Err(corrupt(
                "domains table pointer (NULL while tracing)",
                dom_var,
            ));
        }
        let mut tables = vec![];
        walk(m, &l, domains, |e, eb| {
            let dom = rd64(eb, l.e_key);
            let t = rd64(eb, l.e_value);
            if dom > u32::MAX as u64 || dom == 0 || t == 0 {
                return Err(corrupt("domains table entry", e));
            }
            tables.push((dom as u32, t));
            Ok(())
        })?;
        for (dom, t) in tables {
            r.traces_table(t, Some(dom), None)?;
        }
    }
    Ok(r.out)
}

/// Walk one `_Py_hashtable_t`, calling `f(entry address, entry bytes)` for each entry (the bytes cover the 3.9+
/// entry, or on 3.8 the header, key and data).
fn walk(
    m: &crate::memory::Snapshot,
    l: &Lay,
    ht: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), TraceError>,
) -> Result<u64, TraceError> {
    let hdr = m.bytes(ht, l.ht_size).ok_or(corrupt("hashtable", ht))?;
    let nb = rd64(hdr, l.ht_nbuckets);
    let ne = rd64(hdr, l.ht_nentries);
    let buckets = rd64(hdr, l.ht_buckets);
    if nb == 0 || !nb.is_power_of_two() || nb > MAX_BUCKETS {
        return Err(corrupt("hashtable bucket count", ht));
    }
    // an entry takes at least 16 bytes of the snapshot
    if ne > m.total_bytes() / 16 {
        return Err(corrupt("hashtable entry count", ht));
    }
    let entry_len = if l.inline {
        let ks = rd64(hdr, l.ht_key_size);
        let ds = rd64(hdr, l.ht_data_size);
        if !(ks == 8 || ks == 12) || ds != l.trace_size as u64 {
            return Err(corrupt("hashtable key/data size", ht));
        }
        l.entry_size + (ks + ds) as usize
    } else {
        l.entry_size
    };
    let arr = m
        .bytes(buckets, (nb * 8) as usize)
        .ok_or(corrupt("hashtable bucket array", buckets))?;
    let mask = nb - 1;
    let limit = ne + SLACK;
    let mut walked = 0u64;
    for (b, head) in arr.chunks_exact(8).enumerate() {
        let mut e = u64::from_le_bytes(head.try_into().unwrap());
        while e != 0 {
            walked += 1;
            if walked > limit {
                return Err(corrupt(
                    "hashtable chains (more entries than nentries: a cycle, or a rehash)",
                    e,
                ));
            }
            if e & 7 != 0 {
                return Err(corrupt("hashtable entry pointer", e));
            }
            let eb = m.bytes(e, entry_len).ok_or(corrupt("hashtable entry", e))?;
            if rd64(eb, l.e_hash) & mask != b as u64 {
                return Err(corrupt("hashtable entry in the wrong bucket", e));
            }
            f(e, eb)?;
            e = rd64(eb, 0);
        }
    }
    if walked + SLACK < ne {
        return Err(corrupt("hashtable (fewer entries than nentries)", ht));
    }
    Ok(walked)
}

struct Reader<'c, 'a> {
    ctx: &'c Ctx<'a>,
    l: &'c Lay,
    max_nframe: u32,
    out: Traces,
    /// traceback_t address -> index in out.tracebacks
    tb_index: FxHashMap<u64, u32>,
    tb_truncated: Vec<bool>,
    /// filename pointer -> decoded name
    names: FxHashMap<u64, String>,
}

impl Reader<'_, '_> {
    /// One traces table: `domain` fixed (3.9+), or from the keys (3.8; `use_domain` cross-checks the key size).
    fn traces_table(
        &mut self,
        ht: u64,
        domain: Option<u32>,
        use_domain: Option<bool>,
    ) -> Result<(), TraceError> {
        let m = self.ctx.mem;
        let l = self.l;
        if let Some(hdr) = m.bytes(ht, l.ht_size) {
            let ne = rd64(hdr, l.ht_nentries);
            if l.inline
                && let Some(u) = use_domain
                && u != (rd64(hdr, l.ht_key_size) == 12)
            {
                return Err(corrupt(
                    "traces table key size (disagrees with use_domain)",
                    ht,
                ));
            }
            if ne <= m.total_bytes() / 16 {
                self.out.blocks.reserve(ne as usize + 1);
            }
        }
        walk(m, l, ht, |e, eb| {
            let (ptr, dom, size, tb) = if l.inline {
                let ks = eb.len() - l.entry_size - l.trace_size;
                let key = l.entry_size;
                let data = key + ks;
                let dom = if ks == 12 { rd32(eb, key + 8) } else { 0 };
                (
                    rd64(eb, key),
                    dom,
                    rd64(eb, data + l.trace_sz),
                    rd64(eb, data + l.trace_tb),
                )
            } else {
                let trace = rd64(eb, l.e_value);
                if trace & 7 != 0 {
                    return Err(corrupt("trace_t pointer", e));
                }
                let tr = m
                    .bytes(trace, l.trace_size)
                    .ok_or(corrupt("trace_t", trace))?;
                (
                    rd64(eb, l.e_key),
                    domain.unwrap_or(0),
                    rd64(tr, l.trace_sz),
                    rd64(tr, l.trace_tb),
                )
            };
            if size > MAX_BLOCK || ptr == 0 {
                return Err(corrupt("trace", e));
            }
            let traceback = match self.tb_index.get(&tb) {
                Some(&i) => i,
                None => self.traceback(tb)?,
            };
            if self.tb_truncated[traceback as usize] {
                self.out.total_nframe_truncated += 1;
            }
            self.out.blocks.push(Block {
                ptr,
                size,
                domain: dom,
                traceback,
            });
            Ok(())
        })?;
        Ok(())
    }

    /// Decode a `traceback_t` and add it to the table.
    fn traceback(&mut self, tb: u64) -> Result<u32, TraceError> {
        let m = self.ctx.mem;
        let l = self.l;
        let hdr = m.bytes(tb, l.tb_frames).ok_or(corrupt("traceback_t", tb))?;
        let nframe = if l.tb_nframe_int {
            rd32(hdr, l.tb_nframe)
        } else {
            rd16(hdr, l.tb_nframe) as u32
        };
        if nframe > self.max_nframe {
            return Err(corrupt("traceback_t frame count", tb));
        }
        let truncated = l
            .tb_total
            .map(|o| rd16(hdr, o) as u32 > nframe)
            .unwrap_or(false);
        let all = m
            .bytes(tb, l.tb_frames + nframe as usize * l.frame_size)
            .ok_or(corrupt("traceback_t frames", tb))?;
        let mut frames = Vec::with_capacity(nframe as usize);
        for k in (0..nframe as usize).rev() {
            let fr = l.tb_frames + k * l.frame_size;
            let name = rd64(all, fr + l.fr_filename);
            let lineno = rd32(all, fr + l.fr_lineno);
            let filename = match self.names.get(&name) {
                Some(s) => s.clone(),
                None => {
                    let s = self.filename(name)?;
                    self.names.insert(name, s.clone());
                    s
                }
            };
            frames.push(Frame { filename, lineno });
        }
        let i = self.out.tracebacks.len() as u32;
        self.out.tracebacks.push(frames);
        self.tb_truncated.push(truncated);
        self.tb_index.insert(tb, i);
        Ok(i)
    }

    fn filename(&self, p: u64) -> Result<String, TraceError> {
        let m = self.ctx.mem;
        if p == 0 {
            return Err(corrupt("frame filename (NULL)", p));
        }
        if m.bytes(p, 1).is_none() {
            // a literal in a part of an ELF image the snapshot does not copy (3.15's "<unknown>" in a read-only
            // segment merged with code): not a torn table
            if self.ctx.is_static(p) {
                return Ok("<?>".into());
            }
            return Err(corrupt("frame filename", p));
        }
        let s = if self.l.cstr_filenames {
            m.cstr(p, MAX_CSTR)
        } else {
            // the whole str header must be in the snapshot before read_str adds offsets to the pointer
            m.bytes(p, self.ctx.o.ascii_size as usize)
                .and_then(|_| read_str(self.ctx, p))
        };
        s.ok_or(corrupt("frame filename", p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::ctx::{Known, Syms};
    use crate::layout::{Layout, PyVersion};
    use crate::memory::{Region, RegionData, Snapshot};

    const BASE: u64 = 0x10_0000;
    const LEN: usize = 0x10000;

    /// A little heap image with a bump allocator.
    struct Img {
        data: Vec<u8>,
        next: u64,
    }

    impl Img {
        fn new() -> Img {
            Img {
                data: vec![0; LEN],
                next: BASE + 0x1000,
            }
        }
        fn alloc(&mut self, n: usize) -> u64 {
            let a = self.next;
            self.next += (n as u64 + 15) & !15;
            a
        }
        fn put(&mut self, a: u64, b: &[u8]) {
            let o = (a - BASE) as usize;
            self.data[o..o + b.len()].copy_from_slice(b);
        }
        fn p64(&mut self, a: u64, v: u64) {
            self.put(a, &v.to_le_bytes())
        }
        fn p32(&mut self, a: u64, v: u32) {
            self.put(a, &v.to_le_bytes())
        }
        fn p16(&mut self, a: u64, v: u16) {
            self.put(a, &v.to_le_bytes())
        }
        fn get64(&self, a: u64) -> u64 {
            let o = (a - BASE) as usize;
            u64::from_le_bytes(self.data[o..o + 8].try_into().unwrap())
        }
        /// A compact ASCII str.
        fn pystr(&mut self, lay: &Layout, s: &str) -> u64 {
            let g = |l: &str| lay.get(l).unwrap() as u64;
            let a = self.alloc(g("sizeof(PyASCIIObject)") as usize + s.len() + 1);
            self.p64(a + g("str.length"), s.len() as u64);
            self.put(a + g("str.state"), &[0x20 | 0x40 | (1 << 2)]);
            self.put(a + g("sizeof(PyASCIIObject)"), s.as_bytes());
            a
        }
        fn cstr(&mut self, s: &str) -> u64 {
            let a = self.alloc(s.len() + 1);
            self.put(a, s.as_bytes());
            a
        }
        fn snapshot(self) -> Snapshot {
            Snapshot::new(vec![Region {
                start: BASE,
                data: RegionData::Vec(self.data),
                name: "[heap]".into(),
                writable: true,
            }])
        }
    }

    fn layout(v: &str) -> Layout {
        Layout::select(PyVersion::parse(v).unwrap(), None).unwrap()
    }

    /// The fixed part: a fake runtime (interpreter head set), the config struct and the table variables.
    struct Fake {
        img: Img,
        lay: Layout,
        cfg: u64,
        traces_var: u64,
        domains_var: u64,
    }

    impl Fake {
        fn new(v: &str, max_nframe: u32) -> Fake {
            Fake::with(layout(v), max_nframe)
        }

        fn with(lay: Layout, max_nframe: u32) -> Fake {
            let mut img = Img::new();
            let head = lay.get("rt.interpreters.head").unwrap() as u64;
            img.p64(BASE + head, 0xdead_0000);
            let cfg = BASE + 0x800;
            img.p32(cfg + 4, 1);
            img.p32(cfg + 8, max_nframe);
            Fake {
                img,
                lay,
                cfg,
                traces_var: BASE + 0x900,
                domains_var: BASE + 0x908,
            }
        }

        fn traceback(&mut self, frames: &[(u64, u32)], total: u16) -> u64 {
            let fo = self.lay.get("traceback.frames").unwrap() as u64;
            let tb = self.img.alloc(fo as usize + 12 * frames.len());
            if self.lay.get("traceback.total_nframe").is_some() {
                self.img.p16(tb + 8, frames.len() as u16);
                self.img.p16(tb + 10, total);
            } else {
                self.img.p32(tb + 8, frames.len() as u32);
            }
            for (k, (name, line)) in frames.iter().enumerate() {
                self.img.p64(tb + fo + 12 * k as u64, *name);
                self.img.p32(tb + fo + 12 * k as u64 + 8, *line);
            }
            tb
        }

        /// A 3.9+ table: entries (key, value) with the pointer hash `_Py_HashPointerRaw`.
        fn table(&mut self, nb: u64, entries: &[(u64, u64)], hash: impl Fn(u64) -> u64) -> u64 {
            let ht = self.img.alloc(80);
            let buckets = self.img.alloc(8 * nb as usize);
            self.img.p64(ht, entries.len() as u64);
            self.img.p64(ht + 8, nb);
            self.img.p64(ht + 16, buckets);
            for &(k, v) in entries {
                let e = self.img.alloc(32);
                let h = hash(k);
                let slot = buckets + 8 * (h & (nb - 1));
                let head = self.img.get64(slot);
                self.img.p64(e, head);
                self.img.p64(e + 8, h);
                self.img.p64(e + 16, k);
                self.img.p64(e + 24, v);
                self.img.p64(slot, e);
            }
            ht
        }

        fn trace(&mut self, size: u64, tb: u64) -> u64 {
            let t = self.img.alloc(16);
            self.img.p64(t, size);
            self.img.p64(t + 8, tb);
            t
        }

        fn run(self, syms: Syms) -> Result<Traces, TraceError> {
            let snap = self.img.snapshot();
            let mut ctx = Ctx::new(&snap, &self.lay, Known::default(), BASE, vec![], None).unwrap();
            ctx.syms = syms;
            read(&ctx)
        }

        fn syms(&self) -> Syms {
            Syms {
                tm_config: Some(self.cfg),
                tm_traces: Some(self.traces_var),
                tm_domains: Some(self.domains_var),
            }
        }
    }

    fn hash_ptr(p: u64) -> u64 {
        p.rotate_right(4)
    }

    /// 3.8: inline keys; once a domain is used the keys are packed 12-byte pointer_t and the trace_t that follows
    /// is unaligned. One pointer traced in two domains gives two blocks.
    #[test]
    fn py38_inline_pointer_t_keys() {
        let mut f = Fake::new("3.8.18", 4);
        f.img.p32(f.cfg + 12, 1); // use_domain
        let name = f.img.pystr(&f.lay, "/app/main.py");
        let lib = f.img.pystr(&f.lay, "/usr/lib/python3.8/lib.py");
        let tb1 = f.traceback(&[(lib, 7), (name, 42)], 0);
        let tb2 = f.traceback(&[(name, 99)], 0);
        let entries: [(u64, u32, u64, u64); 3] = [
            (0x7f00_0000_1000, 0, 123458, tb1),
            (0x7f00_0000_1000, 5, 389047, tb2),
            (0x7f00_0000_2000, 0, 64, tb1),
        ];
        let nb = 8u64;
        let ht = f.img.alloc(72);
        let buckets = f.img.alloc(8 * nb as usize);
        f.img.p64(ht, nb);
        f.img.p64(ht + 8, entries.len() as u64);
        f.img.p64(ht + 16, buckets);
        f.img.p64(ht + 24, 12);
        f.img.p64(ht + 32, 16);
        for (p, d, size, tb) in entries {
            let e = f.img.alloc(16 + 12 + 16);
            let h = hash_ptr(p) ^ d as u64;
            let slot = buckets + 8 * (h & (nb - 1));
            let head = f.img.get64(slot);
            f.img.p64(e, head);
            f.img.p64(e + 8, h);
            f.img.p64(e + 16, p);
            f.img.p32(e + 24, d);
            f.img.p64(e + 28, size); // unaligned
            f.img.p64(e + 36, tb);
            f.img.p64(slot, e);
        }
        f.img.p64(f.traces_var, ht);
        let syms = Syms {
            tm_domains: None,
            ..f.syms()
        };
        let t = f.run(syms).unwrap();
        assert!(t.tracing);
        assert_eq!(t.max_nframe, 4);
        assert_eq!(t.blocks.len(), 3);
        assert_eq!(t.tracebacks.len(), 2);
        assert_eq!(t.total_nframe_truncated, 0);
        let mut got: Vec<(u64, u32, u64, Vec<Frame>)> = t
            .blocks
            .iter()
            .map(|b| {
                (
                    b.ptr,
                    b.domain,
                    b.size,
                    t.tracebacks[b.traceback as usize].clone(),
                )
            })
            .collect();
        got.sort_by_key(|g| (g.0, g.1));
        let fr = |f: &str, l| Frame {
            filename: f.into(),
            lineno: l,
        };
        // outermost first
        let outer_first = vec![fr("/app/main.py", 42), fr("/usr/lib/python3.8/lib.py", 7)];
        assert_eq!(got[0], (0x7f00_0000_1000, 0, 123458, outer_first.clone()));
        assert_eq!(
            got[1],
            (0x7f00_0000_1000, 5, 389047, vec![fr("/app/main.py", 99)])
        );
        assert_eq!(got[2], (0x7f00_0000_2000, 0, 64, outer_first));
        // the allocation site is the most recent call, stored first by tracemalloc, last here
        let b = t.blocks.iter().find(|b| b.ptr == 0x7f00_0000_2000).unwrap();
        assert_eq!(t.site(b), Some(&fr("/usr/lib/python3.8/lib.py", 7)));
    }

    /// 3.8 before any domain: 8-byte keys; and use_domain disagreeing with the key size is a torn switch.
    #[test]
    fn py38_plain_keys_and_use_domain_check() {
        let build = |use_domain: u32| {
            let mut f = Fake::new("3.8.18", 1);
            f.img.p32(f.cfg + 12, use_domain);
            let name = f.img.pystr(&f.lay, "x.py");
            let tb = f.traceback(&[(name, 1)], 0);
            let ht = f.img.alloc(72);
            let buckets = f.img.alloc(16 * 8);
            f.img.p64(ht, 16);
            f.img.p64(ht + 8, 1);
            f.img.p64(ht + 16, buckets);
            f.img.p64(ht + 24, 8);
            f.img.p64(ht + 32, 16);
            let e = f.img.alloc(40);
            let p = 0x5555_0000_0010u64;
            let h = hash_ptr(p);
            f.img.p64(e + 8, h);
            f.img.p64(e + 16, p);
            f.img.p64(e + 24, 77);
            f.img.p64(e + 32, tb);
            f.img.p64(buckets + 8 * (h & 15), e);
            f.img.p64(f.traces_var, ht);
            let s = f.syms();
            f.run(s)
        };
        let t = build(0).unwrap();
        assert_eq!(t.blocks.len(), 1);
        assert_eq!(t.blocks[0].size, 77);
        assert_eq!(t.blocks[0].domain, 0);
        assert!(matches!(build(1), Err(TraceError::Corrupt { .. })));
    }

    /// 3.12: traces table for domain 0, domains table for the others, truncated tracebacks counted, tracebacks
    /// deduplicated by address.
    #[test]
    fn py312_domains_and_truncation() {
        let mut f = Fake::new("3.12.1", 2);
        let a = f.img.pystr(&f.lay, "a.py");
        let tb_long = f.traceback(&[(a, 3), (a, 2)], 9);
        let tb_short = f.traceback(&[(a, 10)], 1);
        let t1 = f.trace(100, tb_long);
        let t2 = f.trace(200, tb_long);
        let t3 = f.trace(300, tb_short);
        let main = f.table(16, &[(0x1000, t1), (0x2000, t2)], hash_ptr);
        let dom = f.table(16, &[(0x1000, t3)], hash_ptr);
        let domains = f.table(16, &[(7, dom)], |k| k);
        f.img.p64(f.traces_var, main);
        f.img.p64(f.domains_var, domains);
        let s = f.syms();
        let t = f.run(s).unwrap();
        assert_eq!(t.blocks.len(), 3);
        assert_eq!(t.tracebacks.len(), 2);
        assert_eq!(t.total_nframe_truncated, 2);
        assert_eq!(t.total_size(), 600);
        let d7: Vec<_> = t.blocks.iter().filter(|b| b.domain == 7).collect();
        assert_eq!(d7.len(), 1);
        assert_eq!((d7[0].ptr, d7[0].size), (0x1000, 300));
        let b = t.blocks.iter().find(|b| b.size == 100).unwrap();
        assert_eq!(
            t.tracebacks[b.traceback as usize],
            vec![
                Frame {
                    filename: "a.py".into(),
                    lineno: 2
                },
                Frame {
                    filename: "a.py".into(),
                    lineno: 3
                }
            ]
        );
    }

    /// 3.15: file names are C strings.
    #[test]
    fn py315_cstr_filenames() {
        let mut f = Fake::new("3.15.2", 5);
        let a = f.img.cstr("/srv/app/ünï.py");
        let tb = f.traceback(&[(a, 12)], 1);
        let t1 = f.trace(123490, tb);
        let main = f.table(8, &[(0xabc0, t1)], hash_ptr);
        let domains = f.table(8, &[], |k| k);
        f.img.p64(f.traces_var, main);
        f.img.p64(f.domains_var, domains);
        let s = f.syms();
        let t = f.run(s).unwrap();
        assert_eq!(t.blocks.len(), 1);
        assert_eq!(t.site(&t.blocks[0]).unwrap().filename, "/srv/app/ünï.py");
        assert_eq!(t.site(&t.blocks[0]).unwrap().lineno, 12);
    }

    fn simple_312() -> (Fake, u64, u64) {
        simple(layout("3.12.1"))
    }

    /// Two blocks in one chain, one traceback, no other domain (3.9+).
    fn simple(lay: Layout) -> (Fake, u64, u64) {
        let mut f = Fake::with(lay, 2);
        let a = if f.lay.version.at_least(15) {
            f.img.cstr("a.py")
        } else {
            f.img.pystr(&f.lay, "a.py")
        };
        let tb = f.traceback(&[(a, 3)], 1);
        let t1 = f.trace(100, tb);
        let t2 = f.trace(200, tb);
        // both keys in bucket 0 of 4: one chain of two
        let main = f.table(4, &[(0x40, t1), (0x80, t2)], |_| 0);
        let domains = f.table(4, &[], |k| k);
        f.img.p64(f.traces_var, main);
        f.img.p64(f.domains_var, domains);
        (f, main, tb)
    }

    #[test]
    fn not_tracing_and_missing_symbols() {
        let (mut f, _, _) = simple_312();
        f.img.p32(f.cfg + 4, 0);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::NotTracing)));

        // 3.8-3.11: a file-local symbol, missing from a stripped build without its debug file
        let (f, _, _) = simple(layout("3.11.7"));
        let s = Syms {
            tm_traces: None,
            ..f.syms()
        };
        match f.run(s) {
            Err(TraceError::NotFound(msg)) => {
                assert!(msg.contains("file-local"), "{msg}");
                assert!(msg.contains("-dbg"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn torn_tables_are_rejected() {
        // a cycle in a chain
        let (mut f, main, _) = simple_312();
        let buckets = f.img.get64(main + 16);
        let e1 = f.img.get64(buckets);
        let e2 = f.img.get64(e1);
        f.img.p64(e2, e1);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::Corrupt { .. })));
        // nentries far from what the chains hold
        let (mut f, main, _) = simple_312();
        f.img.p64(main, 5);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::Corrupt { .. })));
        // one off is tolerated (an insert caught before the count was updated)
        let (mut f, main, _) = simple_312();
        f.img.p64(main, 1);
        let s = f.syms();
        assert_eq!(f.run(s).unwrap().blocks.len(), 2);
        // bucket count not a power of two
        let (mut f, main, _) = simple_312();
        f.img.p64(main + 8, 3);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::Corrupt { .. })));
        // an entry in the wrong bucket (a rehash in progress)
        let (mut f, main, _) = simple_312();
        let buckets = f.img.get64(main + 16);
        let e1 = f.img.get64(buckets);
        f.img.p64(e1 + 8, 1);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::Corrupt { .. })));
        // a traceback deeper than max_nframe
        let (mut f, _, tb) = simple_312();
        f.img.p16(tb + 8, 3);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::Corrupt { .. })));
        // a filename pointing outside the snapshot
        let (mut f, _, tb) = simple_312();
        f.img.p64(tb + 12, 0x10);
        let s = f.syms();
        assert!(matches!(f.run(s), Err(TraceError::Corrupt { .. })));
    }

    /// Garbage everywhere: no panic, whatever the result. Valid images with a few words replaced, and images of
    /// nothing but random words (biased towards pointers into the image and small numbers).
    #[test]
    fn garbage_does_not_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut outcomes = [0u32; 4];
        for v in ["3.8.18", "3.11.7", "3.12.1", "3.15.2"] {
            let lay = layout(v);
            for round in 0..60 {
                let mut f = if lay.version.is(8) {
                    Fake::with(lay.clone(), 3)
                } else {
                    simple(lay.clone()).0
                };
                let sparse = round % 2 == 0 && !lay.version.is(8);
                for i in (0x800..LEN).step_by(8) {
                    if sparse && (f.img.data[i..i + 8].iter().all(|&b| b == 0) || rnd() % 8 != 0) {
                        continue;
                    }
                    let w = match rnd() % 5 {
                        0 => BASE + (rnd() % LEN as u64),
                        1 => (BASE + (rnd() % LEN as u64)) & !7,
                        2 => rnd() % 64,
                        3 => 1u64 << (rnd() % 64),
                        _ => rnd(),
                    };
                    f.img.data[i..i + 8].copy_from_slice(&w.to_le_bytes());
                }
                f.img.p32(f.cfg + 4, 1);
                let s = f.syms();
                outcomes[match f.run(s) {
                    Ok(_) => 0,
                    Err(TraceError::Corrupt { .. }) => 1,
                    Err(TraceError::NotFound(_)) => 2,
                    Err(TraceError::NotTracing) => 3,
                }] += 1;
            }
        }
        assert!(outcomes[1] > 0, "{outcomes:?}");
    }
}
