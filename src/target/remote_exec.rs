//! Starting tracemalloc in a running 3.14+ target through CPython's own remote-debugging protocol (PEP 768):
//! a script path and a pending flag in the main thread's state, and the eval-breaker bit that makes the thread
//! run it at its next check. Writes to the target; used only when the user passes `--start-tracemalloc`.

use super::{Target, TargetError};
use crate::layout::Layout;
use crate::memory::MemorySource;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const PLEASE_STOP_BIT: u64 = 1 << 5;

fn read_u64(t: &Target, a: u64) -> Result<u64, TargetError> {
    let mut b = [0u8; 8];
    t.live.read(a, &mut b).map_err(|e| TargetError::Io {
        pid: t.pid,
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(u64::from_le_bytes(b))
}

fn read_i32(t: &Target, a: u64) -> Result<i32, TargetError> {
    Ok(read_u64(t, a)? as u32 as i32)
}

/// Is tracemalloc tracing in the target (live read of its config)?
pub fn is_tracing(t: &Target, layout: &Layout) -> Result<bool, TargetError> {
    let cfg = crate::snapshot::tracemalloc_syms(t, layout).tm_config;
    let Some(cfg) = cfg else { return Ok(false) };
    let off = layout.get("tmcfg.tracing").unwrap_or(4) as u64;
    Ok(read_i32(t, cfg + off)? != 0)
}

/// Ask the target to run `tracemalloc.start(nframe)` and wait until it traces.
pub fn start_tracemalloc(
    t: &Target,
    layout: &Layout,
    nframe: u32,
    timeout: Duration,
) -> Result<(), TargetError> {
    let pid = t.pid;
    let fail = |msg: String| TargetError::RemoteExec { pid, msg };
    if !t.version.at_least(14) {
        return Err(fail(format!(
            "--start-tracemalloc needs Python 3.14 or newer (PEP 768), but it runs {}; start it with PYTHONTRACEMALLOC={nframe} or -X tracemalloc={nframe}",
            t.version
        )));
    }
    if is_tracing(t, layout)? {
        return Ok(());
    }
    let d = t
        .debug_offsets
        .as_ref()
        .ok_or_else(|| fail("it has no _Py_DebugOffsets".into()))?;
    let f = |k: &str| {
        d.fields
            .get(k)
            .copied()
            .ok_or_else(|| fail(format!("_Py_DebugOffsets lacks {k}")))
    };
    let interp = read_u64(t, t.runtime + f("runtime_state.interpreters_head")?)?;
    if read_i32(t, interp + f("debugger_support.remote_debugging_enabled")?)? == 0 {
        return Err(fail(format!(
            "remote debugging is disabled in process {pid} (PYTHON_DISABLE_REMOTE_DEBUG or -X disable-remote-debug); start it with PYTHONTRACEMALLOC={nframe} instead"
        )));
    }
    let mut ts = read_u64(t, interp + f("interpreter_state.threads_main")?)?;
    if ts == 0 {
        ts = read_u64(t, interp + f("interpreter_state.threads_head")?)?;
    }
    if ts == 0 {
        return Err(fail("it has no thread state".into()));
    }
    let support = ts + f("debugger_support.remote_debugger_support")?;
    let path_off = f("debugger_support.debugger_script_path")?;
    let path_max = f("debugger_support.debugger_script_path_size")? as usize;
    let pending_off = f("debugger_support.debugger_pending_call")?;
    let breaker = ts + f("debugger_support.eval_breaker")?;
    if read_i32(t, support + pending_off)? != 0 {
        return Err(fail(
            "another remote script is already pending in it".into(),
        ));
    }
    // the script, readable by the target (through its root: containers and chroots)
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let inside = format!("/tmp/pymemspy-start-tracemalloc-{pid}-{nonce:x}.py");
    let host = format!("/proc/{pid}/root{inside}");
    if inside.len() + 1 > path_max {
        return Err(fail("script path too long".into()));
    }
    let script = format!(
        "import tracemalloc\nif not tracemalloc.is_tracing():\n    tracemalloc.start({nframe})\n"
    );
    let write_file = || -> std::io::Result<()> {
        let mut fh = std::fs::File::create(&host)?;
        fh.write_all(script.as_bytes())?;
        fh.set_permissions(std::fs::Permissions::from_mode(0o644))
    };
    write_file().map_err(|e| fail(format!("cannot write {host}: {e}")))?;
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = Cleanup(host.clone());
    let w = |a: u64, data: &[u8]| {
        t.live
            .write(a, data)
            .map_err(|e| TargetError::from_io(pid, e, "write to"))
    };
    let mut p = inside.clone().into_bytes();
    p.push(0);
    w(support + path_off, &p)?;
    w(support + pending_off, &1i32.to_le_bytes())?;
    let eb = read_u64(t, breaker)?;
    w(breaker, &(eb | PLEASE_STOP_BIT).to_le_bytes())?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if is_tracing(t, layout)? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // withdraw the request if it was not taken (best effort; the file is removed either way)
    if read_i32(t, support + pending_off).unwrap_or(0) != 0 {
        let _ = w(support + pending_off, &0i32.to_le_bytes());
    }
    Err(fail(format!(
        "tracemalloc did not start within {} s: the main thread of process {pid} is not running Python code (blocked in C or a system call?)",
        timeout.as_secs()
    )))
}
