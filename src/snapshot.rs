//! One heap census of a live process, end to end: open the target, choose the layout, copy its memory while it is
//! stopped (retrying when the copy caught it mid-collection), walk the copy.

use crate::heap::ctx::{Known, Syms};
use crate::heap::types::KIND_SYMBOLS;
use crate::heap::{Census, Ctx, HeapError};
use crate::layout::Layout;
use crate::target::{Capture, INTERRUPTED, Target, TargetError, image_ranges};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("process {pid}: {source}")]
    Heap { pid: i32, source: HeapError },
    #[error(
        "process {pid} was busy in every one of {attempts} attempts ({last}); try again, or use --nonblocking to read without stopping it"
    )]
    Inconsistent {
        pid: i32,
        attempts: u32,
        last: HeapError,
    },
}

/// How to take the snapshot.
#[derive(Debug, Clone)]
pub struct Options {
    /// Read without stopping the target (results validated, may need retries).
    pub nonblocking: bool,
    /// Attempts before giving up when the copy catches the target mid-collection.
    pub attempts: u32,
    /// Upper bound for stopping all threads.
    pub stop_timeout: Duration,
    /// Ask a 3.14+ target to start tracemalloc with this many frames first (writes to the target).
    pub start_tracemalloc: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nonblocking: false,
            attempts: 10,
            stop_timeout: Duration::from_secs(2),
            start_tracemalloc: None,
        }
    }
}

/// What `summary` reports: how the snapshot was taken, then the census.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub meta: Meta,
    pub objects: u64,
    pub bytes: u64,
    pub footprint: u64,
    pub gc_tracked: u64,
    pub static_objects: u64,
    pub types: Vec<crate::heap::TypeTally>,
}

/// Addresses of builtin types and singletons from the interpreter's exported symbols.
pub fn known_addresses(t: &Target, cap: &Capture) -> Known {
    let py = &t.python;
    let mut k = Known {
        type_type: py.symbol("PyType_Type").unwrap_or(0),
        none: py.symbol("_Py_NoneStruct").unwrap_or(0),
        str_type: py.symbol("PyUnicode_Type").unwrap_or(0),
        ..Default::default()
    };
    if let Some(a) = py.symbol("_PySet_Dummy") {
        k.set_dummy = cap.snapshot.u64(a).unwrap_or(0);
    }
    for (sym, kind) in KIND_SYMBOLS {
        if let Some(a) = py.symbol(sym) {
            k.kinds.push((a, *kind));
        }
    }
    k
}

/// What every analysis of one snapshot reports about how it was taken.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub pid: i32,
    pub python_version: String,
    pub executable: String,
    pub pause_ms: f64,
    pub threads_stopped: usize,
    pub snapshot_bytes: u64,
    pub attempts: u32,
    pub walk_ms: f64,
    pub layout: String,
    pub warnings: Vec<String>,
    /// Seconds since the Unix epoch when the copy was taken.
    pub taken_at: u64,
}

/// Where tracemalloc keeps its state: in `_PyRuntime` on 3.12+, in (partly file-local) statics before.
pub fn tracemalloc_syms(t: &Target, layout: &Layout) -> Syms {
    let rt = |l: &str| layout.get(l).map(|o| t.runtime + o as u64);
    if t.version.at_least(12) {
        Syms {
            tm_config: rt("rt.tracemalloc.config"),
            tm_traces: rt("rt.tracemalloc.traces"),
            tm_domains: rt("rt.tracemalloc.domains"),
        }
    } else {
        Syms {
            tm_config: t.python.symbol("_Py_tracemalloc_config"),
            tm_traces: t.python.local_symbol("tracemalloc_traces"),
            tm_domains: t.python.local_symbol("tracemalloc_domains"),
        }
    }
}

/// Open `pid`, copy its memory (retrying when the copy caught it mid-collection) and run `f` on the copy.
pub fn with_heap<T>(
    pid: i32,
    opts: &Options,
    f: impl Fn(&Ctx) -> Result<T, HeapError>,
) -> Result<(T, Meta), Error> {
    let t_open = Instant::now();
    let target = Target::open(pid)?;
    log::info!("open: {:?}", t_open.elapsed());
    let layout = Layout::select(target.version, target.debug_offsets.as_ref())
        .map_err(|source| TargetError::Layout { pid, source })?;
    if let Some(n) = opts.start_tracemalloc {
        crate::target::remote_exec::start_tracemalloc(&target, &layout, n, Duration::from_secs(5))?;
    }
    let mut warnings = vec![];
    if !target.version.at_least(12) && target.python.local_symbol("interned").is_none() {
        warnings.push(format!(
            "{} has no symbol table (and no debug file by build-id was found), so strings reachable only from the interned table are not counted",
            target.python.path
        ));
    }
    let mut last = None;
    for attempt in 1..=opts.attempts.max(1) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(TargetError::Interrupted(pid).into());
        }
        let t_cap = Instant::now();
        let cap = target.capture(opts.nonblocking, opts.stop_timeout)?;
        let taken_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        log::info!(
            "capture: {:?} (paused {:?}, {} bytes)",
            t_cap.elapsed(),
            cap.pause,
            cap.snapshot.total_bytes()
        );
        let t0 = Instant::now();
        let known = known_addresses(&target, &cap);
        let images = image_ranges(&target.maps, &cap.snapshot);
        let interned = if target.version.at_least(12) {
            None
        } else {
            target.python.local_symbol("interned")
        };
        let mut ctx = Ctx::new(
            &cap.snapshot,
            &layout,
            known,
            target.runtime,
            images,
            interned,
        )
        .map_err(|source| Error::Heap { pid, source })?;
        ctx.syms = tracemalloc_syms(&target, &layout);
        match f(&ctx) {
            Ok(v) => {
                log::info!("walk: {:?}", t0.elapsed());
                let meta = Meta {
                    pid,
                    python_version: target.version.to_string(),
                    executable: target.exe.clone(),
                    pause_ms: cap.pause.as_secs_f64() * 1000.0,
                    threads_stopped: cap.threads,
                    snapshot_bytes: cap.snapshot.total_bytes(),
                    attempts: attempt,
                    walk_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    layout: layout.table.build.clone(),
                    warnings,
                    taken_at,
                };
                return Ok((v, meta));
            }
            Err(e) if e.is_transient() => {
                log::info!("attempt {attempt}: {e}; letting the target run and retrying");
                last = Some(e);
                drop(cap);
                std::thread::sleep(Duration::from_millis(5 * attempt as u64));
            }
            Err(source) => return Err(Error::Heap { pid, source }),
        }
    }
    Err(Error::Inconsistent {
        pid,
        attempts: opts.attempts,
        last: last.unwrap(),
    })
}

/// Open `pid`, copy its memory and take a census.
pub fn census(pid: i32, opts: &Options) -> Result<Report, Error> {
    let (c, m) = with_heap(pid, opts, crate::heap::walk::census)?;
    Ok(report(m, c))
}

fn report(meta: Meta, c: Census) -> Report {
    Report {
        meta,
        objects: c.objects,
        bytes: c.bytes,
        footprint: c.footprint,
        gc_tracked: c.gc_tracked,
        static_objects: c.static_objects,
        types: c.types,
    }
}
