//! Stopping and resuming a real multi-threaded target: every thread is in a tracing stop while paused, and every
//! thread runs again afterwards (also when the guard is dropped by a panic).

mod common;

use common::*;
use pymemspy::target::pause::Pause;
use std::process::Command;
use std::time::Duration;

const THREADS: &str = "import threading, time, sys\n\
evs = [threading.Event() for _ in range(4)]\n\
for e in evs: threading.Thread(target=e.wait, daemon=True).start()\n\
print('READY', flush=True)\n\
sys.stdin.read()\n";

#[test]
fn stop_all_threads_then_resume() {
    if !is_root() {
        skip(
            "stop_all_threads_then_resume",
            "errors",
            "ptrace of another process needs root here",
        );
        return;
    }
    let py = which("python3").expect("python3");
    let mut c = Command::new(py);
    c.arg("-c").arg(THREADS);
    let fx = Fixture::start(c, "a python with 5 threads").unwrap();
    let pid = fx.pid;
    let p = Pause::stop_all(pid, Duration::from_secs(2)).expect("stop");
    assert_eq!(p.thread_count(), 5, "all 5 threads seized");
    let st = thread_states(pid);
    assert!(
        st.iter().all(|&c| c == 't'),
        "every thread in a tracing stop while paused: {st:?}"
    );
    drop(p);
    std::thread::sleep(Duration::from_millis(50));
    let st = thread_states(pid);
    assert!(
        st.iter().all(|&c| c != 't' && c != 'T'),
        "every thread resumed: {st:?}"
    );
    // a panic while paused still resumes the target
    let r = std::panic::catch_unwind(|| {
        let _p = Pause::stop_all(pid, Duration::from_secs(2)).expect("stop");
        panic!("boom");
    });
    assert!(r.is_err());
    std::thread::sleep(Duration::from_millis(50));
    let st = thread_states(pid);
    assert!(
        st.iter().all(|&c| c != 't' && c != 'T'),
        "resumed after a panic: {st:?}"
    );
}
