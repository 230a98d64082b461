//! The target process: finding it, its Python binary or libpython (through `/proc/PID/root`), symbols, version,
//! and taking a consistent copy of its memory while all its threads are stopped.

pub mod elf;
pub mod pause;
pub mod remote_exec;
pub mod version;

use crate::layout::{DebugOffsets, LayoutError, PyVersion};
use crate::memory::live::{LiveProcess, alloc_buffer, copy_mapping, prefault, wanted};
use crate::memory::{MapEntry, MemorySource, Region, RegionData, Snapshot};
use elf::ElfInfo;
use pause::{Pause, PauseError};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by the Ctrl-C handler; long operations check it and stop cleanly (the target is always resumed).
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True while the target is stopped: Ctrl-C then waits for the copy to finish and resume it; otherwise the
/// process may exit at once (it holds nothing of the target's).
pub static PAUSED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {0}")]
    NoSuchProcess(i32),
    #[error("{}", permission_message(*pid, what))]
    Permission { pid: i32, what: String },
    #[error("process {pid} does not look like a Python process: {reason}")]
    NotPython { pid: i32, reason: String },
    #[error("process {pid}: {source}")]
    Layout { pid: i32, source: LayoutError },
    #[error(
        "process {pid} runs a free-threaded Python {version} build, which pymemspy does not support"
    )]
    FreeThreaded { pid: i32, version: PyVersion },
    #[error(
        "process {pid} runs a debug build of Python {version} (Py_DEBUG), which pymemspy does not support"
    )]
    DebugBuild { pid: i32, version: PyVersion },
    #[error("process {0} exited while pymemspy was reading it")]
    Exited(i32),
    #[error("could not stop process {pid}: {source}")]
    Pause { pid: i32, source: PauseError },
    #[error("reading process {pid}: {source}")]
    Io { pid: i32, source: io::Error },
    #[error("cannot start tracemalloc in process {pid}: {msg}")]
    RemoteExec { pid: i32, msg: String },
    #[error("interrupted; process {0} was resumed")]
    Interrupted(i32),
    #[error("{0}")]
    Elf(#[from] elf::ElfError),
}

fn permission_message(pid: i32, what: &str) -> String {
    let mut s = format!(
        "permission denied to {what} process {pid}: run pymemspy with sudo, or grant it CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE)"
    );
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        let v = v.trim();
        if v != "0" {
            s.push_str(&format!(
                "; kernel.yama.ptrace_scope is {v}, so even the same user needs that (or: sudo sysctl kernel.yama.ptrace_scope=0)"
            ));
        }
    }
    s
}

impl TargetError {
    pub(crate) fn from_io(pid: i32, e: io::Error, what: &str) -> TargetError {
        match e.raw_os_error() {
            Some(libc::ESRCH) => TargetError::Exited(pid),
            Some(libc::EPERM) | Some(libc::EACCES) => TargetError::Permission {
                pid,
                what: what.into(),
            },
            _ if e.kind() == io::ErrorKind::NotFound => {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    TargetError::Io { pid, source: e }
                } else {
                    TargetError::Exited(pid)
                }
            }
            _ if e.kind() == io::ErrorKind::PermissionDenied => TargetError::Permission {
                pid,
                what: what.into(),
            },
            _ => TargetError::Io { pid, source: e },
        }
    }
}

/// The ELF file that holds `_PyRuntime` (libpython or the python executable), as mapped in the target.
#[derive(Debug, Clone)]
pub struct PythonModule {
    /// Path as the target sees it.
    pub path: String,
    /// Path we opened (through `/proc/PID/root`).
    pub host_path: PathBuf,
    pub elf: ElfInfo,
    pub bias: u64,
    /// Debug file whose `.symtab` was merged, if any.
    pub debug_file: Option<PathBuf>,
}

impl PythonModule {
    /// Run-time address of a symbol.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.elf.symbol(name).map(|v| v + self.bias)
    }
    /// Run-time address of a file-local symbol, whatever suffix the compiler gave it (`interned`, `interned.0`,
    /// `interned.lto_priv.0`).
    pub fn local_symbol(&self, base: &str) -> Option<u64> {
        if let Some(a) = self.symbol(base) {
            return Some(a);
        }
        let mut best: Option<(&String, u64)> = None;
        for (k, &v) in &self.elf.symbols {
            if let Some(rest) = k.strip_prefix(base).and_then(|r| r.strip_prefix('.'))
                && rest
                    .trim_start_matches("lto_priv.")
                    .chars()
                    .all(|c| c.is_ascii_digit())
                && best.is_none_or(|(b, _)| k < b)
            {
                best = Some((k, v));
            }
        }
        best.map(|(_, v)| v + self.bias)
    }

    /// Run-time address of `_PyRuntime` (symbol, else the `.PyRuntime` section).
    pub fn runtime(&self) -> Option<u64> {
        self.symbol("_PyRuntime")
            .or_else(|| self.elf.sections.get(".PyRuntime").map(|s| s.0 + self.bias))
    }
}

/// An attached-to (not yet stopped) Python process.
pub struct Target {
    pub pid: i32,
    pub exe: String,
    pub maps: Vec<MapEntry>,
    pub python: PythonModule,
    pub runtime: u64,
    pub version: PyVersion,
    pub debug_offsets: Option<DebugOffsets>,
    pub live: LiveProcess,
}

impl Target {
    /// Find the process, its interpreter and version. Reads a few words of its memory; does not stop it.
    pub fn open(pid: i32) -> Result<Target, TargetError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid <= 0 || !proc_dir.exists() {
            return Err(TargetError::NoSuchProcess(pid));
        }
        let exe = match std::fs::read_link(proc_dir.join("exe")) {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(TargetError::Permission {
                    pid,
                    what: "inspect".into(),
                });
            }
            Err(_) => {
                if !proc_dir.exists() {
                    return Err(TargetError::Exited(pid));
                }
                return Err(TargetError::NotPython {
                    pid,
                    reason: "it has no executable (a kernel thread?)".into(),
                });
            }
        };
        let live = LiveProcess::new(pid);
        let maps = live
            .maps()
            .map_err(|e| TargetError::from_io(pid, e, "read the memory map of"))?;
        if maps.is_empty() {
            return Err(TargetError::NotPython {
                pid,
                reason: "it has no memory mappings".into(),
            });
        }
        let python = find_python(pid, &maps)?;
        let runtime = python.runtime().ok_or_else(|| TargetError::NotPython {
            pid,
            reason: format!("{} has no _PyRuntime", python.path),
        })?;
        // one small read tells us early whether we may read it at all
        let mut probe = [0u8; 8];
        if let Err(e) = live.read(runtime, &mut probe) {
            let io = match e {
                crate::memory::MemoryError::Read { source, .. } => source,
                other => io::Error::other(other.to_string()),
            };
            return Err(TargetError::from_io(pid, io, "read the memory of"));
        }
        let (version, debug_offsets) = version::detect(pid, &python, runtime, &live)?;
        if debug_offsets.as_ref().is_some_and(|d| d.free_threaded)
            || python
                .path
                .contains(&format!("{}.{}t", version.major, version.minor))
        {
            return Err(TargetError::FreeThreaded { pid, version });
        }
        if [
            "_Py_RefTotal",
            "_Py_NegativeRefcount",
            "_Py_GetGlobalRefTotal",
        ]
        .iter()
        .any(|s| python.elf.symbol(s).is_some())
        {
            return Err(TargetError::DebugBuild { pid, version });
        }
        Ok(Target {
            pid,
            exe,
            maps,
            python,
            runtime,
            version,
            debug_offsets,
            live,
        })
    }

    /// Stop all threads (unless `nonblocking`), copy every readable non-code mapping, resume.
    pub fn capture(
        &self,
        nonblocking: bool,
        stop_timeout: Duration,
    ) -> Result<Capture, TargetError> {
        capture(self, nonblocking, stop_timeout)
    }
}

fn python_like(m: &MapEntry) -> bool {
    let b = m.basename().to_ascii_lowercase();
    m.is_file() && b.contains("python")
}

/// Open a file of the target: through its root (containers, chroots), else through `map_files`.
pub fn open_target_file(pid: i32, m: &MapEntry) -> Result<(PathBuf, ElfInfo), TargetError> {
    let path = m.path.strip_suffix(" (deleted)").unwrap_or(&m.path);
    let via_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
    match ElfInfo::load(&via_root) {
        Ok(e) => Ok((via_root, e)),
        Err(first) => {
            let via_map = PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end));
            ElfInfo::load(&via_map)
                .map(|e| (via_map, e))
                .map_err(|_| TargetError::Elf(first))
        }
    }
}

fn find_python(pid: i32, maps: &[MapEntry]) -> Result<PythonModule, TargetError> {
    let mut seen: Vec<&str> = vec![];
    let mut names = vec![];
    let mut last_err = None;
    // libpython before the executable: in shared builds only the library has _PyRuntime
    let mut cands: Vec<&MapEntry> = maps
        .iter()
        .filter(|m| python_like(m) && m.offset == 0)
        .collect();
    cands.sort_by_key(|m| !m.basename().starts_with("lib"));
    for m in cands {
        if seen.contains(&m.path.as_str()) {
            continue;
        }
        seen.push(&m.path);
        names.push(m.basename().to_string());
        let (host_path, mut info) = match open_target_file(pid, m) {
            Ok(x) => x,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let has_rt =
            info.symbol("_PyRuntime").is_some() || info.sections.contains_key(".PyRuntime");
        if !has_rt {
            continue;
        }
        let bias = if info.is_exec {
            0
        } else {
            m.start - info.first_load_vaddr
        };
        let mut debug_file = None;
        if !info.has_symtab
            && let Some(id) = info.build_id.clone()
        {
            for cand in elf::debug_file_candidates(&PathBuf::from(format!("/proc/{pid}/root")), &id)
            {
                match ElfInfo::load(&cand) {
                    Ok(d) if d.build_id.as_deref() == Some(id.as_str()) => {
                        info.merge_debug(d);
                        debug_file = Some(cand);
                        break;
                    }
                    Ok(d) => log::debug!(
                        "{}: build id {:?} does not match {id}",
                        cand.display(),
                        d.build_id
                    ),
                    Err(e) => log::debug!("debug file candidate: {e}"),
                }
            }
        }
        return Ok(PythonModule {
            path: m.path.clone(),
            host_path,
            elf: info,
            bias,
            debug_file,
        });
    }
    // Name it when it is a Python we know to be unsupported (2.x, <= 3.7: no _PyRuntime or too old).
    for n in &names {
        if let Some(v) = version::version_from_filename(n) {
            return Err(TargetError::Layout {
                pid,
                source: LayoutError::Unsupported(v),
            });
        }
    }
    if let Some(e) = last_err
        && names.is_empty()
    {
        return Err(e);
    }
    Err(TargetError::NotPython {
        pid,
        reason: if names.is_empty() {
            "no python executable or libpython is mapped".into()
        } else {
            format!("none of {} holds a _PyRuntime symbol", names.join(", "))
        },
    })
}

/// The result of copying a target's memory.
pub struct Capture {
    pub snapshot: Snapshot,
    /// How long the target's threads were stopped (0 with `--nonblocking`).
    pub pause: Duration,
    pub threads: usize,
    pub bytes: u64,
}

fn is_elf_file(live: &LiveProcess, m: &MapEntry, cache: &mut HashMap<String, bool>) -> bool {
    if !m.is_file() {
        return false;
    }
    *cache.entry(m.path.clone()).or_insert_with(|| {
        let mut b = [0u8; 4];
        std::fs::File::open(format!("/proc/{}/root{}", live.pid, m.path))
            .and_then(|mut f| io::Read::read_exact(&mut f, &mut b))
            .map(|_| &b == b"\x7fELF")
            .unwrap_or(true)
    })
}

fn capture(t: &Target, nonblocking: bool, stop_timeout: Duration) -> Result<Capture, TargetError> {
    let pid = t.pid;
    let live = &t.live;
    let io_err = |e: io::Error| TargetError::from_io(pid, e, "read the memory of");
    let maps0 = live.maps().map_err(io_err)?;
    let mut elf_cache = HashMap::new();
    // Read-only parts of ELF images (type names live in .rodata) do not change: copy them before stopping.
    let mut regions: Vec<Region> = vec![];
    let mut prealloc: HashMap<(u64, u64), RegionData> = HashMap::new();
    for m in maps0.iter().filter(|m| wanted(m) && !m.shared && !m.write) {
        if is_elf_file(live, m, &mut elf_cache) {
            let buf = alloc_buffer(m.len() as usize).map_err(io_err)?;
            match copy_mapping(live, m, buf) {
                Ok(r) => regions.push(r),
                Err(e)
                    if e.raw_os_error() == Some(libc::EFAULT)
                        || e.raw_os_error() == Some(libc::EIO) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
    }
    // Buffers for the writable mappings, pre-faulted now (zeroing them is the kernel's work, spread over every
    // core) so that the copy while the target is stopped pays no page faults.
    for m in maps0.iter().filter(|m| wanted(m) && !m.shared && m.write) {
        prealloc.insert(
            (m.start, m.end),
            alloc_buffer(m.len() as usize).map_err(io_err)?,
        );
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    prefault(&mut prealloc.values_mut().collect::<Vec<_>>(), workers);
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(TargetError::Interrupted(pid));
    }
    let t0 = Instant::now();
    PAUSED.store(true, Ordering::SeqCst);
    struct Unpaused;
    impl Drop for Unpaused {
        fn drop(&mut self) {
            PAUSED.store(false, Ordering::SeqCst);
        }
    }
    let _unpaused = Unpaused;
    let pause = if nonblocking {
        None
    } else {
        Some(Pause::stop_all(pid, stop_timeout).map_err(|e| match e {
            PauseError::Gone(_) => TargetError::Exited(pid),
            PauseError::Permission { .. } => TargetError::Permission {
                pid,
                what: "stop (ptrace)".into(),
            },
            source => TargetError::Pause { pid, source },
        })?)
    };
    let threads = pause.as_ref().map(|p| p.thread_count()).unwrap_or(0);
    let maps1 = live.maps().map_err(io_err)?;
    let mut bytes = 0u64;
    for m in maps1.iter().filter(|m| wanted(m) && m.write && !m.shared) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(TargetError::Interrupted(pid));
        }
        let buf = match prealloc.remove(&(m.start, m.end)) {
            Some(b) => b,
            None => alloc_buffer(m.len() as usize).map_err(io_err)?,
        };
        match copy_mapping(live, m, buf) {
            Ok(r) => {
                bytes += r.len() as u64;
                regions.push(r);
            }
            Err(e)
                if e.raw_os_error() == Some(libc::EFAULT)
                    || e.raw_os_error() == Some(libc::EIO) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    drop(pause);
    let paused = if nonblocking {
        Duration::ZERO
    } else {
        t0.elapsed()
    };
    // drop read-only copies that the writable pass re-copied (a mapping can change permissions)
    let snapshot = Snapshot::new(dedup(regions));
    Ok(Capture {
        snapshot,
        pause: paused,
        threads,
        bytes,
    })
}

fn dedup(mut regions: Vec<Region>) -> Vec<Region> {
    regions.sort_by_key(|r| (r.start, std::cmp::Reverse(r.writable)));
    let mut out: Vec<Region> = Vec::with_capacity(regions.len());
    for r in regions {
        if let Some(last) = out.last()
            && r.start < last.end()
        {
            continue;
        }
        out.push(r);
    }
    out
}

/// Address ranges of every ELF image mapped in the target (text, data and .bss), computed from the program headers
/// found at each file's first mapping. Objects inside them are static (part of a binary), not heap.
pub fn image_ranges(maps: &[MapEntry], mem: &Snapshot) -> Vec<(u64, u64)> {
    let mut out = vec![];
    let mut seen = std::collections::HashSet::new();
    for m in maps.iter().filter(|m| m.is_file() && m.offset == 0) {
        if !seen.insert(&m.path) {
            continue;
        }
        let Some(eh) = mem.bytes(m.start, 64) else {
            continue;
        };
        if &eh[..4] != b"\x7fELF" || eh[4] != 2 {
            continue;
        }
        let e_type = u16::from_le_bytes([eh[16], eh[17]]);
        let phoff = u64::from_le_bytes(eh[32..40].try_into().unwrap());
        let phentsize = u16::from_le_bytes([eh[54], eh[55]]) as u64;
        let phnum = u16::from_le_bytes([eh[56], eh[57]]) as u64;
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for i in 0..phnum {
            let Some(ph) = mem.bytes(m.start + phoff + i * phentsize, 56) else {
                break;
            };
            if u32::from_le_bytes(ph[0..4].try_into().unwrap()) != 1 {
                continue;
            }
            let vaddr = u64::from_le_bytes(ph[16..24].try_into().unwrap());
            let memsz = u64::from_le_bytes(ph[40..48].try_into().unwrap());
            lo = lo.min(vaddr);
            hi = hi.max(vaddr + memsz);
        }
        if lo >= hi {
            continue;
        }
        let bias = if e_type == 2 {
            0
        } else {
            m.start.wrapping_sub(lo & !0xfff)
        };
        out.push((lo.wrapping_add(bias), hi.wrapping_add(bias)));
    }
    out.sort();
    out
}
