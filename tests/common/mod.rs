//! Shared harness of the integration tests: finding the interpreters, starting fixture processes and waiting for
//! their readiness line, running the `pymemspy` binary with a time limit, and the skip-or-fail policy.
//!
//! Interpreters (test id → where):
//! * `py38` … `py313`: pyenv builds (shared libpython), `$PYENV_ROOT/versions/3.X.Y/bin/python3` (default
//!   `~/.pyenv`), the highest micro version present; `py27`, `py36`, `py37` for the unsupported-version tests.
//! * `debian_py311_static`: Debian's `/usr/bin/python3.11` (libpython linked in, stripped).
//! * `sid_py313`, `sid_py314`, `sid_py315`: `/usr/bin/python3.X` inside the Debian sid root
//!   `${PYMEMSPY_SID_ROOT:-/var/cache/pymemspy/sid-root}` made by `scripts/setup-test-pythons`, started with
//!   `unshare --mount` + `mount -t proc` + `chroot` so that /proc works inside; needs root.
//!
//! Missing interpreters: the test prints `SKIP <test>: <reason>` to stderr and passes, unless it is required:
//! `PYMEMSPY_REQUIRE_ALL=1` requires everything; `PYMEMSPY_REQUIRE=sid,debian,py312,…` requires the listed groups
//! (`pyenv`, `debian`, `sid`, `errors`) or test ids. A required prerequisite that is missing fails the test.

#![allow(dead_code)]

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a fixture may take to build its heap and print READY (it takes 1-2 s alone; CI machines are slow and
/// run two tests at once).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one `pymemspy` run may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/census.py");

/// Python flags for every fixture: isolated (no PYTHON* variables, no user site) and no `site`, so that the heap
/// does not depend on what a machine has in site-packages (.pth files can import dozens of modules).
pub const PY_FLAGS: [&str; 2] = ["-I", "-S"];

// ------------------------------------------------------------------------------------------ skip-or-fail policy

/// Which group a test id belongs to, for `PYMEMSPY_REQUIRE`.
fn group_of(id: &str) -> &'static str {
    if id.starts_with("sid_") {
        "sid"
    } else if id.starts_with("debian_") {
        "debian"
    } else if id.starts_with("py") {
        "pyenv"
    } else {
        "errors"
    }
}

/// Whether a missing prerequisite of `id` must fail the test instead of skipping it.
pub fn required(id: &str) -> bool {
    if std::env::var("PYMEMSPY_REQUIRE_ALL")
        .map(|v| v == "1")
        .unwrap_or(false)
    {
        return true;
    }
    let list = std::env::var("PYMEMSPY_REQUIRE").unwrap_or_default();
    let group = group_of(id);
    list.split(',')
        .map(str::trim)
        .any(|w| !w.is_empty() && (w == id || w == group || w == "all"))
}

/// Report a missing prerequisite: `SKIP` on stderr, or a panic when it is required.
pub fn skip(test: &str, id: &str, reason: &str) {
    if required(id) {
        panic!("{test}: {reason} (required: PYMEMSPY_REQUIRE_ALL / PYMEMSPY_REQUIRE)");
    }
    eprintln!("SKIP {test}: {reason}");
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

// ------------------------------------------------------------------------------------------------ interpreters

#[derive(Debug, Clone)]
pub enum Launch {
    /// Run the interpreter directly.
    Direct,
    /// Run `/usr/bin/pythonX.Y` inside this root with `unshare --mount` + proc mount + `chroot`.
    Chroot(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Interp {
    /// Test id, e.g. `py312`, `sid_py314`.
    pub id: String,
    /// The interpreter: a host path, or the path inside the root for `Launch::Chroot`.
    pub python: PathBuf,
    pub launch: Launch,
}

impl Interp {
    /// The interpreter as seen from the host (for a chroot: the root joined with the inner path).
    pub fn host_python(&self) -> PathBuf {
        match &self.launch {
            Launch::Direct => self.python.clone(),
            Launch::Chroot(root) => {
                root.join(self.python.strip_prefix("/").unwrap_or(&self.python))
            }
        }
    }

    pub fn describe(&self) -> String {
        match &self.launch {
            Launch::Direct => format!("{} ({})", self.id, self.python.display()),
            Launch::Chroot(root) => format!(
                "{} ({} in {})",
                self.id,
                self.python.display(),
                root.display()
            ),
        }
    }
}

pub fn pyenv_root() -> PathBuf {
    if let Some(p) = std::env::var_os("PYENV_ROOT") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".pyenv")
}

pub fn sid_root() -> PathBuf {
    std::env::var_os("PYMEMSPY_SID_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/pymemspy/sid-root"))
}

/// The pyenv build `major.minor.N` with the highest N (plain release builds only: `3.13.0t` and `3.12-dev`
/// do not match).
fn pyenv_version(major: u32, minor: u32) -> Result<PathBuf, String> {
    let versions = pyenv_root().join("versions");
    let prefix = format!("{major}.{minor}.");
    let entries = std::fs::read_dir(&versions)
        .map_err(|e| format!("no pyenv versions at {}: {e}", versions.display()))?;
    let mut best: Option<(u32, PathBuf)> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(micro) = name
            .strip_prefix(&prefix)
            .and_then(|m| m.parse::<u32>().ok())
        else {
            continue;
        };
        let bin = e
            .path()
            .join("bin")
            .join(if major == 2 { "python2" } else { "python3" });
        if is_executable(&bin) && best.as_ref().map(|(m, _)| micro > *m).unwrap_or(true) {
            best = Some((micro, bin));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| {
        format!(
            "no pyenv build {major}.{minor}.N under {}",
            versions.display()
        )
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Find the interpreter of a test id, or say why it is not there.
pub fn find_interp(id: &str) -> Result<Interp, String> {
    let direct = |python: PathBuf| Interp {
        id: id.to_string(),
        python,
        launch: Launch::Direct,
    };
    let pyenv = |minor: u32| pyenv_version(3, minor).map(direct);
    match id {
        "py27" => pyenv_version(2, 7).map(direct),
        "py36" => pyenv(6),
        "py37" => pyenv(7),
        "py38" => pyenv(8),
        "py39" => pyenv(9),
        "py310" => pyenv(10),
        "py311" => pyenv(11),
        "py312" => pyenv(12),
        "py313" => pyenv(13),
        "debian_py311_static" => {
            let p = PathBuf::from("/usr/bin/python3.11");
            if is_executable(&p) {
                Ok(direct(p))
            } else {
                Err(format!("{} not found", p.display()))
            }
        }
        "sid_py313" | "sid_py314" | "sid_py315" => {
            let minor = &id["sid_py3".len()..];
            let root = sid_root();
            let inner = PathBuf::from(format!("/usr/bin/python3.{minor}"));
            let host = root.join(inner.strip_prefix("/").unwrap());
            if !is_executable(&host) {
                return Err(format!(
                    "{} not found (run scripts/setup-test-pythons, or set PYMEMSPY_SID_ROOT)",
                    host.display()
                ));
            }
            if !is_root() {
                return Err("the sid interpreters run in a chroot, which needs root".into());
            }
            for tool in ["unshare", "chroot", "mount"] {
                if which(tool).is_none() {
                    return Err(format!("`{tool}` not found"));
                }
            }
            Ok(Interp {
                id: id.to_string(),
                python: inner,
                launch: Launch::Chroot(root),
            })
        }
        _ => Err(format!("unknown interpreter id {id}")),
    }
}

/// The interpreter for a test, or `None` after printing SKIP (panics instead when it is required).
/// Interpreters for tests that need any one, cheap direct ones first.
pub const ANY_INTERP: &[&str] = &[
    "py312",
    "debian_py311_static",
    "py313",
    "py311",
    "py310",
    "py39",
    "py38",
    "sid_py314",
    "sid_py313",
    "sid_py315",
];

/// The first interpreter of `ANY_INTERP` found; `None` after printing SKIP for `test` (group `group`).
pub fn any_interp(test: &str, group: &str) -> Option<Interp> {
    let found = ANY_INTERP.iter().find_map(|id| find_interp(id).ok());
    if found.is_none() {
        skip(test, group, "no interpreter found");
    }
    found
}

pub fn interp_or_skip(test: &str, id: &str) -> Option<Interp> {
    match find_interp(id) {
        Ok(i) => Some(i),
        Err(reason) => {
            skip(test, id, &reason);
            None
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// A command that runs `script` (a host path) with `args` under the interpreter, as a child of this process with
/// the same pid as the interpreter (unshare, sh and chroot all exec).
pub fn python_command(interp: &Interp, script: &Path, args: &[&str]) -> Command {
    python_command_with(interp, &[], script, args)
}

/// `python_command` with extra interpreter options after `PY_FLAGS` (e.g. `-X tracemalloc=5`: `-I` makes the
/// interpreter ignore `PYTHON*` variables such as `PYTHONTRACEMALLOC`, so options are the way to configure it).
pub fn python_command_with(
    interp: &Interp,
    py_opts: &[&str],
    script: &Path,
    args: &[&str],
) -> Command {
    match &interp.launch {
        Launch::Direct => {
            let mut c = Command::new(&interp.python);
            c.args(PY_FLAGS).args(py_opts).arg(script).args(args);
            c
        }
        Launch::Chroot(root) => {
            let inner = copy_into_root(root, script);
            let mut c = Command::new(which("unshare").expect("unshare"));
            c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(r#"mount -t proc proc "$ROOT/proc" && exec chroot "$ROOT" "$@""#)
                .arg("sh")
                .arg(&interp.python)
                .args(PY_FLAGS)
                .args(py_opts)
                .arg(&inner)
                .args(args)
                .env("ROOT", root);
            c
        }
    }
}

/// Copy a fixture into `ROOT/tmp/pymemspy-fixtures/` (atomically: tests run in parallel) and return its path
/// inside the root.
fn copy_into_root(root: &Path, script: &Path) -> PathBuf {
    let dir = root.join("tmp/pymemspy-fixtures");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let name = script.file_name().unwrap();
    let tmp = tempfile::NamedTempFile::new_in(&dir).expect("temp file in the sid root");
    std::fs::copy(script, tmp.path())
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", script.display()));
    let dest = dir.join(name);
    tmp.persist(&dest)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
    Path::new("/tmp/pymemspy-fixtures").join(name)
}

// ---------------------------------------------------------------------------------------------------- children

/// A pid with no process: counting down from the kernel's pid_max, the first one /proc does not list.
pub fn unused_pid() -> i32 {
    let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (300..max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}

/// Kills and reaps its child when dropped.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command) -> std::io::Result<ChildGuard> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(ChildGuard {
            child: cmd.spawn()?,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines a child wrote, collected by a reader thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn spawn_reader<R: Read + Send + 'static>(&self, r: R, tx: Option<mpsc::Sender<String>>) {
        let store = self.0.clone();
        thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                store.lock().unwrap().push(line.clone());
                if let Some(tx) = &tx {
                    let _ = tx.send(line);
                }
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// A fixture process that printed `READY` and now blocks until its stdin closes. Dropping it closes stdin, waits
/// briefly for the exit and kills it if needed.
pub struct Fixture {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// The pid to attach to (the fixture's own `os.getpid()` when it reports one, else the child's pid).
    pub pid: i32,
    /// The stdout lines up to and including READY.
    pub lines: Vec<String>,
    stderr: Lines,
    pub what: String,
}

impl Fixture {
    /// The blocker's `VERSION x.y.z` line.
    pub fn reported_version(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix("VERSION "))
    }

    /// Start `cmd` and wait until it prints a line `READY`.
    pub fn start(mut cmd: Command, what: &str) -> Result<Fixture, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let out = Lines::default();
        out.spawn_reader(child.stdout.take().unwrap(), Some(tx));
        let err = Lines::default();
        err.spawn_reader(child.stderr.take().unwrap(), None);
        let pid = child.id() as i32;
        let mut f = Fixture {
            child: Some(child),
            stdin,
            pid,
            lines: vec![],
            stderr: err,
            what: what.to_string(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.trim_end() == "READY";
                    f.lines.push(line);
                    if ready {
                        return Ok(f);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(f.failure(&format!("no READY within {READY_TIMEOUT:?}")));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process ended (or closed it) before READY
                    let status = f.child.as_mut().and_then(|c| c.wait().ok());
                    let status = status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "status unknown".into());
                    return Err(f.failure(&format!("exited before READY ({status})")));
                }
            }
        }
    }

    fn failure(&mut self, why: &str) -> String {
        self.kill();
        thread::sleep(Duration::from_millis(50)); // let the reader threads drain what is left
        let stdout: Vec<String> = self.lines.iter().map(|l| clip(l)).collect();
        let stderr: Vec<String> = self.stderr.text().lines().map(clip).collect();
        format!(
            "{} {why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            stdout.join("\n"),
            stderr.join("\n")
        )
    }

    /// The census fixture under `interp`: started, READY, ground truth parsed and checked for self-consistency.
    pub fn census(interp: &Interp) -> Result<(Fixture, Truth), String> {
        let cmd = python_command(interp, Path::new(FIXTURE), &[]);
        let mut f = Fixture::start(cmd, &format!("census fixture under {}", interp.describe()))?;
        let json = f.lines.iter().rev().find(|l| l.starts_with('{')).cloned();
        let Some(json) = json else {
            return Err(f.failure("printed no JSON line"));
        };
        let truth: Truth = match serde_json::from_str(&json) {
            Ok(t) => t,
            Err(e) => return Err(f.failure(&format!("printed unparsable ground truth: {e}"))),
        };
        if !f.lines.iter().any(|l| l == "SELFCHECK ok") {
            return Err(f.failure(
                "failed its self-check (the heap it blocks with differs from the one it printed)",
            ));
        }
        if !truth.stable {
            return Err(f.failure("reported an unstable census (two runs back to back differed)"));
        }
        if truth.tracked_found != truth.gc_tracked {
            return Err(f.failure(&format!(
                "accounts for {} tracked objects but gc says {} (permanent generation not fully enumerated)",
                truth.tracked_found, truth.gc_tracked
            )));
        }
        if truth.sizeof_errors != 0 {
            return Err(f.failure(&format!("could not size {} objects", truth.sizeof_errors)));
        }
        f.pid = truth.pid;
        Ok((f, truth))
    }

    /// Stderr the fixture wrote so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"q"); // the fixture exits on any byte or on EOF
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A line shortened for a failure message (the ground-truth line is tens of kilobytes).
fn clip(l: &str) -> String {
    const MAX: usize = 2000;
    if l.len() <= MAX {
        return l.to_string();
    }
    let mut end = MAX;
    while !l.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &l[..end], l.len())
}

/// A minimal blocking script for any Python (2.7 included): prints `VERSION x.y.z` and READY, blocks on stdin.
pub const BLOCKER_SCRIPT: &str = "import os, sys; sys.stdout.write('VERSION %d.%d.%d\\nREADY\\n' % sys.version_info[:3]); \
                                  sys.stdout.flush(); os.read(0, 1)";

/// Start `python -c BLOCKER_SCRIPT` and wait for READY.
/// Start a fixture that prints its ground truth as one JSON line before READY, and parse it. A `pid` field in
/// it (the fixture's own pid: inside a chroot the spawned command is a wrapper) becomes the fixture's pid.
pub fn start_with_truth<T: serde::de::DeserializeOwned>(
    cmd: Command,
    what: &str,
) -> Result<(Fixture, T), String> {
    let mut f = Fixture::start(cmd, what)?;
    let Some(json) = f.lines.iter().rev().find(|l| l.starts_with('{')).cloned() else {
        return Err(format!(
            "{} printed no JSON line: {:?}\n{}",
            f.what,
            f.lines,
            f.stderr_text()
        ));
    };
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| format!("{} printed unparsable ground truth: {e}\n{json}", f.what))?;
    if let Some(pid) = value.get("pid").and_then(|p| p.as_i64()) {
        f.pid = pid as i32;
    }
    let truth = serde_json::from_value(value)
        .map_err(|e| format!("{} printed unparsable ground truth: {e}\n{json}", f.what))?;
    Ok((f, truth))
}

/// States of a process's threads from /proc (`S`, `R`, `t` = stopped by a tracer, `T` = stopped by a signal).
pub fn thread_states(pid: i32) -> Vec<char> {
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            if let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) {
                // "tid (comm) S ...": the state follows the last ')'
                if let Some(st) = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.trim_start().chars().next())
                {
                    v.push(st);
                }
            }
        }
    }
    v
}

pub fn blocker(python: &Path) -> Result<Fixture, String> {
    let mut c = Command::new(python);
    c.arg("-c").arg(BLOCKER_SCRIPT);
    Fixture::start(c, &format!("blocker under {}", python.display()))
}

// ------------------------------------------------------------------------------------------------ ground truth

/// What `tests/fixtures/census.py` prints (see the comment at its top for how it is computed).
#[derive(Debug, Clone, Deserialize)]
pub struct Truth {
    pub pid: i32,
    pub python_version: String,
    pub sys_version: String,
    pub executable: String,
    pub gc_tracked: u64,
    pub gc_objects: u64,
    pub freeze_count: u64,
    pub tracked_found: u64,
    pub hidden_permanent: u64,
    pub tracked_static: u64,
    pub objects: u64,
    pub bytes: u64,
    pub types: Vec<TruthType>,
    pub fixture_classes: Vec<FixtureClass>,
    pub frame_only: BTreeMap<String, u64>,
    pub untracked_via: BTreeMap<String, BTreeMap<String, u64>>,
    pub code_cache_objects: u64,
    pub static_referents: u64,
    pub sizeof_errors: u64,
    pub stable: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthType {
    #[serde(rename = "type")]
    pub name: String,
    pub module: String,
    pub count: u64,
    pub bytes: u64,
    pub tracked: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FixtureClass {
    #[serde(rename = "type")]
    pub name: String,
    pub module: String,
    pub expected: u64,
}

impl Truth {
    pub fn get(&self, name: &str, module: &str) -> Option<&TruthType> {
        self.types
            .iter()
            .find(|t| t.name == name && t.module == module)
    }
}

// ------------------------------------------------------------------------------------------- pymemspy's output

/// `summary --format json`, as the contract defines it (extra fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub pid: i64,
    pub python_version: String,
    pub executable: String,
    pub objects: u64,
    pub bytes: u64,
    pub footprint: u64,
    pub pause_ms: f64,
    pub gc_tracked: u64,
    pub types: Vec<ReportType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportType {
    #[serde(rename = "type")]
    pub name: String,
    pub module: String,
    pub count: u64,
    pub bytes: u64,
    pub footprint: u64,
    pub tracked: u64,
}

impl Report {
    pub fn get(&self, name: &str, module: &str) -> Option<&ReportType> {
        self.types
            .iter()
            .find(|t| t.name == name && t.module == module)
    }
}

// ----------------------------------------------------------------------------------------------- running pymemspy

pub const BIN: &str = env!("CARGO_BIN_EXE_pymemspy");

#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn describe(&self) -> String {
        format!(
            "exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Run `pymemspy ARGS` with the standard time limit.
pub fn run_pymemspy(args: &[&str]) -> Run {
    let mut c = Command::new(BIN);
    c.args(args);
    run_command(c, RUN_TIMEOUT)
}

/// Run a command to completion with a time limit; panics (after killing it) when the limit is exceeded.
/// `RUST_LOG` is removed so a developer's setting does not add lines to stderr.
pub fn run_command(mut cmd: Command, timeout: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let to = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let te = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let out = String::from_utf8_lossy(&to.join().unwrap_or_default()).into_owned();
                let err = String::from_utf8_lossy(&te.join().unwrap_or_default()).into_owned();
                panic!(
                    "{shown} did not finish within {timeout:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
                );
            }
            Err(e) => panic!("waiting for {shown}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&to.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&te.join().unwrap_or_default()).into_owned();
    Run {
        status,
        stdout,
        stderr,
    }
}

/// No Rust panic message anywhere in stderr.
pub fn assert_no_panic(run: &Run, what: &str) {
    assert!(
        !run.stderr.contains("panicked at") && !run.stderr.contains("RUST_BACKTRACE"),
        "{what}: pymemspy panicked\n{}",
        run.describe()
    );
}

/// The error contract: non-zero exit, exactly one line on stderr, starting with "pymemspy: error: ", no panic,
/// and every one of `words` in it (case-insensitive).
pub fn assert_clean_error(run: &Run, what: &str, words: &[&str]) {
    assert_no_panic(run, what);
    assert!(
        !run.status.success(),
        "{what}: expected a non-zero exit\n{}",
        run.describe()
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected exactly one line on stderr\n{}",
        run.describe()
    );
    assert!(
        lines[0].starts_with("pymemspy: error: "),
        "{what}: stderr must start with \"pymemspy: error: \"\n{}",
        run.describe()
    );
    let low = lines[0].to_lowercase();
    for w in words {
        assert!(
            low.contains(&w.to_lowercase()),
            "{what}: the error should mention {w:?}\n{}",
            run.describe()
        );
    }
}
