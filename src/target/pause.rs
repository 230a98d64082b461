//! Stopping every thread of a target with ptrace (SEIZE + INTERRUPT, never SIGSTOP) and always resuming it.
//!
//! A seized tracee that is in a ptrace-stop resumes by itself if the tracer dies, so a killed pymemspy can never
//! leave the target stopped. The `Pause` guard detaches every thread on drop: on success, error and panic.

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("process {0} exited")]
    Gone(i32),
    #[error("not permitted to trace process {pid}: {errno}")]
    Permission { pid: i32, errno: Errno },
    #[error(
        "could not stop all threads of process {pid} within {ms} ms (a thread may be in uninterruptible sleep)"
    )]
    Timeout { pid: i32, ms: u128 },
    #[error("ptrace on thread {tid} of process {pid} failed: {errno}")]
    Ptrace { pid: i32, tid: i32, errno: Errno },
}

/// All threads of a process, stopped. Dropping it resumes them.
pub struct Pause {
    pid: i32,
    /// tid -> signal to re-deliver on detach (a signal that arrived while we were stopping it).
    threads: HashMap<i32, Option<Signal>>,
    started: Instant,
}

fn task_ids(pid: i32) -> Result<Vec<i32>, PauseError> {
    let rd = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|_| PauseError::Gone(pid))?;
    let mut v: Vec<i32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

impl Pause {
    /// Seize and interrupt every thread, re-scanning `/proc/PID/task` until no new thread appears.
    pub fn stop_all(pid: i32, timeout: Duration) -> Result<Pause, PauseError> {
        let mut p = Pause {
            pid,
            threads: HashMap::new(),
            started: Instant::now(),
        };
        let deadline = Instant::now() + timeout;
        let mut waiting: Vec<i32> = Vec::new();
        loop {
            let tids = task_ids(pid)?;
            let mut new = 0;
            for tid in tids {
                if p.threads.contains_key(&tid) {
                    continue;
                }
                match ptrace::seize(Pid::from_raw(tid), ptrace::Options::empty()) {
                    Ok(()) => {}
                    Err(Errno::ESRCH) => continue, // thread exited meanwhile
                    Err(e @ (Errno::EPERM | Errno::EACCES)) => {
                        if p.threads.is_empty()
                            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                        {
                            return Err(PauseError::Gone(pid));
                        }
                        if p.threads.is_empty() {
                            return Err(PauseError::Permission { pid, errno: e });
                        }
                        // a dying thread can refuse; skip it
                        continue;
                    }
                    Err(errno) => return Err(PauseError::Ptrace { pid, tid, errno }),
                }
                p.threads.insert(tid, None);
                match ptrace::interrupt(Pid::from_raw(tid)) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(errno) => return Err(PauseError::Ptrace { pid, tid, errno }),
                }
                waiting.push(tid);
                new += 1;
            }
            // wait until every interrupted thread reports a stop
            while let Some(&tid) = waiting.last() {
                match waitpid(
                    Pid::from_raw(tid),
                    Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
                ) {
                    Ok(WaitStatus::StillAlive) => {
                        if Instant::now() > deadline {
                            return Err(PauseError::Timeout {
                                pid,
                                ms: timeout.as_millis(),
                            });
                        }
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    Ok(WaitStatus::PtraceEvent(..)) | Ok(WaitStatus::PtraceSyscall(..)) => {
                        waiting.pop();
                    }
                    Ok(WaitStatus::Stopped(_, sig)) => {
                        // signal-delivery-stop: keep it stopped, hand the signal back on detach
                        if sig != Signal::SIGSTOP && sig != Signal::SIGTRAP {
                            p.threads.insert(tid, Some(sig));
                        }
                        waiting.pop();
                    }
                    Ok(WaitStatus::Exited(..))
                    | Ok(WaitStatus::Signaled(..))
                    | Err(Errno::ECHILD) => {
                        p.threads.remove(&tid);
                        waiting.pop();
                    }
                    Ok(_) => {
                        waiting.pop();
                    }
                    Err(Errno::EINTR) => {}
                    Err(errno) => return Err(PauseError::Ptrace { pid, tid, errno }),
                }
            }
            if new == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(PauseError::Timeout {
                    pid,
                    ms: timeout.as_millis(),
                });
            }
        }
        if p.threads.is_empty() {
            return Err(PauseError::Gone(pid));
        }
        p.started = Instant::now();
        Ok(p)
    }

    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Time since every thread was stopped.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Resume all threads now (same as dropping).
    pub fn resume(self) {}
}

impl Drop for Pause {
    fn drop(&mut self) {
        for (&tid, sig) in &self.threads {
            let t = Pid::from_raw(tid);
            if let Err(Errno::ESRCH) = ptrace::detach(t, *sig) {
                // Not in a ptrace-stop yet (interrupted but not reported) or dead: give the stop a moment to land,
                // then detach again. Were this to fail, the kernel still detaches when this process exits.
                let until = Instant::now() + Duration::from_millis(200);
                while Instant::now() < until {
                    match waitpid(t, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) => {
                            std::thread::sleep(Duration::from_micros(100))
                        }
                        Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_) => break,
                        Ok(_) => {
                            let _ = ptrace::detach(t, *sig);
                            break;
                        }
                    }
                }
            }
        }
        log::debug!("resumed {} threads of pid {}", self.threads.len(), self.pid);
    }
}
