//! The allocation views of the command line against tests/fixtures/alloc_cli.py, under every interpreter of the
//! harness (see the comment at the top of the fixture for what it builds and the ground truth it prints).
//!
//! Asserted, per interpreter, on the fixture started with `-X tracemalloc=10`:
//! * `record --by alloc --format folded`: for each marked line, the values of the stacks whose innermost
//!   traceback frame (the frame before the leaf) is `alloc_cli.py:LINE in FUNCTION` add up to the fixture's
//!   `statistics('lineno')` size for that line, exactly (everything allocated there is held by module globals, the
//!   fixture empties the free lists before its snapshot, and both sides read the same table entries; 1 % is the
//!   contract, so a difference is reported with both numbers). The leaves under each line are the right types with
//!   the right bytes: per type, the `sys.getsizeof` sum (= the traced block sizes for these objects) of the objects
//!   `tracemalloc.get_object_traceback()` puts on that line: `__main__.Slotted` (all 5000, checked) and `list`
//!   (its item array, plus its object unless that came from the list free list, as on 3.12/3.13) on the Slotted
//!   line, with `int` (the `i` values) exactly when the fixture finds ints allocated there; `bytearray` alone on
//!   the bytearray line; `str` and `list` on the str line. `(not an object)` may hold at most
//!   `NOT_AN_OBJECT_SLACK` bytes on the Slotted and str lines: blocks live for tracemalloc that belong to no object
//!   (measured: the "zombie" frames ≤3.10 code objects cache, 424 to 888 bytes). The outermost frame of those
//!   stacks is the fixture's module level.
//! * `summary --by alloc --format json`: the site of each marked line has the fixture's bytes and blocks; the
//!   Slotted line's heaviest type is `__main__.Slotted`; `coverage.objects_traced` is in `1..=objects` and
//!   `coverage.max_nframe` is 10.
//! * `record --by type --format folded`: a stack starts with `__main__.Slotted ×5000;allocated at
//!   alloc_cli.py:LINE in build;` and a retainer frame (the type frame carries the documented ` ×COUNT`), every
//!   Slotted stack has that site, and they add up to 5000 × `getsizeof(Slotted)`.
//!
//! On the same fixture started without tracemalloc (main thread looping in Python):
//! * `summary --by alloc` and `record --by alloc -o FILE` fail with the one-line not-tracing error (exactly the
//!   documented sentence; `, or pass --start-tracemalloc 10` on 3.14+ only), and the output file is not created.
//! * < 3.14: `--start-tracemalloc 10` fails with one line saying it needs Python 3.14.
//! * 3.14+: `summary --by alloc --start-tracemalloc 10` succeeds (coverage.max_nframe 10), the fixture then reports
//!   `tracemalloc.is_tracing()` true, the script file written for the target is gone, and a second summary (with
//!   `--start-tracemalloc 10` again: already tracing, nothing to do) finds what the fixture allocated after tracing
//!   started with exactly the bytes and blocks its own `statistics('lineno')` reports.
//! * 3.14+: with `PYTHON_DISABLE_REMOTE_DEBUG=1` in the fixture's environment (the fixture re-executes itself
//!   without `-I`, which would ignore the variable), and with `-X disable-remote-debug`, `--start-tracemalloc 10`
//!   fails with one line saying remote debugging is disabled.

mod common;

use common::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

pub const ALLOC_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alloc_cli.py");

/// Bytes a marked line may have under `(not an object)` (measured: at most 880, two zombie frames on 3.8).
const NOT_AN_OBJECT_SLACK: u64 = 2048;

const NOT_AN_OBJECT: &str = "(not an object)";

/// What the fixture prints in `traced` mode.
#[derive(Debug, Clone, Deserialize)]
struct AllocTruth {
    pid: i32,
    python_version: String,
    filename: String,
    /// mark name → line
    lines: BTreeMap<String, u32>,
    /// mark name → enclosing function
    funcs: BTreeMap<String, String>,
    /// line (as a string) → [size, count]
    per_line: BTreeMap<String, [u64; 2]>,
    max_nframe: u32,
    n_slotted: u64,
    slotted_sizeof: u64,
    /// line (as a string) → type → bytes of the objects of that type tracemalloc says were allocated there
    expect: BTreeMap<String, BTreeMap<String, u64>>,
    /// ints held by the Slotted objects that tracemalloc says were allocated on the Slotted line
    ints_at_slotted: u64,
}

impl AllocTruth {
    fn base(&self) -> &str {
        self.filename.rsplit('/').next().unwrap_or(&self.filename)
    }

    /// The frame text pymemspy should print for a marked line: `alloc_cli.py:LINE in FUNCTION`.
    fn frame(&self, mark: &str) -> String {
        format!(
            "{}:{} in {}",
            self.base(),
            self.lines[mark],
            self.funcs[mark]
        )
    }

    fn stats(&self, mark: &str) -> [u64; 2] {
        self.per_line
            .get(&self.lines[mark].to_string())
            .copied()
            .unwrap_or([0, 0])
    }
}

fn minor_of(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The pid the fixture reports on its first line (`... pid=N`).
fn reported_pid(f: &Fixture) -> Option<i32> {
    f.lines
        .iter()
        .find_map(|l| l.strip_prefix("# pymemspy alloc_cli fixture "))
        .and_then(|l| l.rsplit_once("pid="))
        .and_then(|(_, p)| p.trim().parse().ok())
}

fn start_traced(interp: &Interp) -> Result<(Fixture, AllocTruth), String> {
    let cmd = python_command_with(
        interp,
        &["-X", "tracemalloc=10"],
        Path::new(ALLOC_FIXTURE),
        &["traced"],
    );
    let (f, truth): (Fixture, AllocTruth) = start_with_truth(
        cmd,
        &format!("alloc_cli fixture (traced) under {}", interp.describe()),
    )?;
    Ok((f, truth))
}

/// The fixture in `loop` (or `loop-reexec`) mode: not tracing, main thread looping in Python.
fn start_loop(
    interp: &Interp,
    mode: &str,
    py_opts: &[&str],
    env: &[(&str, &str)],
) -> Result<Fixture, String> {
    let mut cmd = python_command_with(interp, py_opts, Path::new(ALLOC_FIXTURE), &[mode]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!(
        "alloc_cli fixture ({mode}{}{}) under {}",
        if py_opts.is_empty() { "" } else { ", " },
        py_opts.join(" "),
        interp.describe()
    );
    let mut f = Fixture::start(cmd, &what)?;
    match reported_pid(&f) {
        Some(p) => f.pid = p,
        None => return Err(format!("{what} did not report its pid: {:?}", f.lines)),
    }
    Ok(f)
}

/// `sys.is_remote_debug_enabled()` as the loop fixture reported it (`None` before 3.14).
fn remote_debug(f: &Fixture) -> Option<String> {
    f.lines
        .iter()
        .find_map(|l| l.strip_prefix("REMOTE_DEBUG "))
        .map(str::to_string)
}

/// Folded stacks: frames and value (frames contain spaces: the value is after the last one).
fn parse_folded(text: &str) -> Result<Vec<(Vec<String>, u64)>, String> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (stack, v) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("folded line {} has no value: {line:?}", i + 1))?;
        let v: u64 = v
            .parse()
            .map_err(|e| format!("folded line {} value {v:?}: {e}", i + 1))?;
        out.push((stack.split(';').map(str::to_string).collect(), v));
    }
    Ok(out)
}

fn run_ok(args: &[&str], what: &str) -> Run {
    let run = run_pymemspy(args);
    assert_no_panic(&run, what);
    assert!(run.status.success(), "{what}: failed\n{}", run.describe());
    run
}

fn record_folded(pid: i32, by: &str, dir: &Path, what: &str) -> Vec<(Vec<String>, u64)> {
    let out = dir.join(format!("{by}.folded"));
    let pid_s = pid.to_string();
    let out_s = out.to_string_lossy().into_owned();
    run_ok(
        &[
            "record", "--pid", &pid_s, "--by", by, "--format", "folded", "-o", &out_s,
        ],
        what,
    );
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{what}: cannot read {out_s}: {e}"));
    parse_folded(&text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn summary_alloc(pid: i32, extra: &[&str], what: &str) -> Value {
    let pid_s = pid.to_string();
    let mut args = vec![
        "summary", "--pid", &pid_s, "--by", "alloc", "--format", "json",
    ];
    args.extend_from_slice(extra);
    let run = run_ok(&args, what);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{what}: unparsable JSON ({e})\n{}", run.describe()))
}

fn site<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["sites"]
        .as_array()?
        .iter()
        .find(|s| s["site"].as_str() == Some(name))
}

/// `TEXT ×COUNT` → (TEXT, Some(COUNT)); otherwise (frame, None).
fn strip_count(frame: &str) -> (&str, Option<u64>) {
    match frame.rsplit_once(" ×") {
        Some((text, n)) => match n.parse() {
            Ok(n) => (text, Some(n)),
            Err(_) => (frame, None),
        },
        None => (frame, None),
    }
}

fn within_1pct(got: u64, want: u64) -> bool {
    got.abs_diff(want) * 100 <= want
}

// ------------------------------------------------------------------------------------------------- traced target

fn check_by_alloc(t: &AllocTruth, stacks: &[(Vec<String>, u64)], bad: &mut Vec<String>) {
    let base = t.base().to_string();
    for mark in ["slotted", "bytearray", "strs"] {
        let frame = t.frame(mark);
        let [truth_bytes, _] = t.stats(mark);
        let line_prefix = format!("{base}:{}", t.lines[mark]);
        let mut leaves: BTreeMap<String, u64> = BTreeMap::new();
        let mut other_names: BTreeMap<String, u64> = BTreeMap::new();
        let mut outermost: BTreeMap<String, u64> = BTreeMap::new();
        for (frames, v) in stacks {
            if frames.len() < 2 {
                continue;
            }
            let inner = &frames[frames.len() - 2];
            if *inner == frame {
                *leaves.entry(frames[frames.len() - 1].clone()).or_default() += v;
                *outermost.entry(frames[0].clone()).or_default() += v;
            } else if inner == &line_prefix || inner.starts_with(&format!("{line_prefix} ")) {
                *other_names.entry(inner.clone()).or_default() += v;
            }
        }
        let sum: u64 = leaves.values().sum();
        if sum != truth_bytes {
            bad.push(format!(
                "record --by alloc: {sum} bytes under innermost frame {frame:?}, the fixture's statistics('lineno') \
                 says {truth_bytes} ({}within 1 %); leaves {leaves:?}",
                if within_1pct(sum, truth_bytes) { "" } else { "not " }
            ));
        }
        if !other_names.is_empty() {
            bad.push(format!(
                "record --by alloc: line {} also appears as innermost frame with other texts: {other_names:?}",
                t.lines[mark]
            ));
        }
        let module = " in <module>";
        if let Some(o) = outermost
            .keys()
            .find(|o| !(o.starts_with(&format!("{base}:")) && o.ends_with(module)))
        {
            bad.push(format!(
                "record --by alloc: a stack ending at {frame:?} starts with {o:?}, not the fixture's module level \
                 ({base}:N in <module>): tracebacks must be outermost first"
            ));
        }
        // leaves: the expected bytes per type
        let expect = t
            .expect
            .get(&t.lines[mark].to_string())
            .cloned()
            .unwrap_or_default();
        let rest_ok: &[&str] = match mark {
            "slotted" => &["int", NOT_AN_OBJECT],
            "bytearray" => &[],
            _ => &[NOT_AN_OBJECT],
        };
        for (ty, want) in &expect {
            let got = leaves.get(ty).copied().unwrap_or(0);
            if got != *want {
                bad.push(format!(
                    "record --by alloc: {got} bytes under {frame:?} → {ty}, expected {want} (sys.getsizeof of the \
                     objects get_object_traceback() puts on that line); leaves {leaves:?}"
                ));
            }
        }
        if mark == "slotted" && (t.ints_at_slotted > 0) != leaves.contains_key("int") {
            bad.push(format!(
                "record --by alloc: {} ints were allocated on {frame:?}, but the leaves are {leaves:?}",
                t.ints_at_slotted
            ));
        }
        for (leaf, v) in &leaves {
            if expect.contains_key(leaf) {
                continue;
            }
            if !rest_ok.contains(&leaf.as_str()) {
                bad.push(format!(
                    "record --by alloc: unexpected leaf {leaf:?} ({v} bytes) under {frame:?}; leaves {leaves:?}"
                ));
            } else if leaf == NOT_AN_OBJECT && *v > NOT_AN_OBJECT_SLACK {
                bad.push(format!(
                    "record --by alloc: {v} bytes under {frame:?} → {NOT_AN_OBJECT} (allowed: {NOT_AN_OBJECT_SLACK}); \
                     leaves {leaves:?}"
                ));
            }
        }
        eprintln!("INFO {mark}: {frame} → {leaves:?} (truth {truth_bytes})");
    }
}

fn check_summary(t: &AllocTruth, report: &Value, bad: &mut Vec<String>) {
    for mark in ["slotted", "bytearray", "strs"] {
        let frame = t.frame(mark);
        let [bytes, blocks] = t.stats(mark);
        let Some(s) = site(report, &frame) else {
            let near: Vec<&str> = report["sites"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s["site"].as_str())
                        .filter(|s| s.starts_with(t.base()))
                        .collect()
                })
                .unwrap_or_default();
            bad.push(format!(
                "summary --by alloc: no site {frame:?}; the fixture's sites are {near:?}"
            ));
            continue;
        };
        let (gb, gn) = (s["bytes"].as_u64(), s["blocks"].as_u64());
        if gb != Some(bytes) || gn != Some(blocks) {
            bad.push(format!(
                "summary --by alloc: site {frame:?} has {gb:?} bytes in {gn:?} blocks, the fixture's \
                 statistics('lineno') says {bytes} in {blocks} ({}within 1 %)",
                if within_1pct(gb.unwrap_or(0), bytes) { "" } else { "not " }
            ));
        }
        let types = s["types"].as_array().cloned().unwrap_or_default();
        let type_bytes: u64 = types.iter().filter_map(|t| t[2].as_u64()).sum();
        let type_blocks: u64 = types.iter().filter_map(|t| t[1].as_u64()).sum();
        if Some(type_bytes) != gb || Some(type_blocks) != gn {
            bad.push(format!(
                "summary --by alloc: site {frame:?}: its types add up to {type_bytes} bytes in {type_blocks} blocks, \
                 the site says {gb:?} in {gn:?}"
            ));
        }
        let top = types.first().and_then(|t| t[0].as_str()).unwrap_or("");
        let want_top = match mark {
            "slotted" => "__main__.Slotted",
            "bytearray" => "bytearray",
            _ => "str",
        };
        if top != want_top {
            bad.push(format!(
                "summary --by alloc: site {frame:?}: top type {top:?}, expected {want_top:?}; types {types:?}"
            ));
        }
    }
    let cov = &report["coverage"];
    let objects = cov["objects"].as_u64();
    let traced = cov["objects_traced"].as_u64();
    match (traced, objects) {
        (Some(tr), Some(o)) if tr > 0 && tr <= o => {}
        _ => bad.push(format!(
            "summary --by alloc: coverage.objects_traced {traced:?} not in 1..=objects {objects:?}"
        )),
    }
    if cov["max_nframe"].as_u64() != Some(t.max_nframe as u64) {
        bad.push(format!(
            "summary --by alloc: coverage.max_nframe {}, the fixture's get_traceback_limit() is {}",
            cov["max_nframe"], t.max_nframe
        ));
    }
    if report["pid"].as_i64() != Some(t.pid as i64)
        || report["python_version"].as_str() != Some(t.python_version.as_str())
    {
        bad.push(format!(
            "summary --by alloc: pid {} python_version {} (the fixture: {} {})",
            report["pid"], report["python_version"], t.pid, t.python_version
        ));
    }
}

fn check_by_type(t: &AllocTruth, stacks: &[(Vec<String>, u64)], bad: &mut Vec<String>) {
    // the type frame carries the documented ` ×COUNT` (objects merged into it): `__main__.Slotted ×5000`
    let want = format!("allocated at {}", t.frame("slotted"));
    let slotted: Vec<&(Vec<String>, u64)> = stacks
        .iter()
        .filter(|(f, _)| strip_count(&f[0]).0 == "__main__.Slotted")
        .collect();
    if !slotted.iter().any(|(f, _)| f.len() >= 3 && f[1] == want) {
        bad.push(format!(
            "record --by type: no stack starts with \"__main__.Slotted[ ×N];{want};<retainer>\"; the Slotted \
             stacks: {slotted:?}"
        ));
    }
    let counts: Vec<Option<u64>> = slotted.iter().map(|(f, _)| strip_count(&f[0]).1).collect();
    if counts.iter().any(|c| *c != counts[0]) || counts.first() != Some(&Some(t.n_slotted)) {
        bad.push(format!(
            "record --by type: the __main__.Slotted frame should say ×{}: {counts:?}",
            t.n_slotted
        ));
    }
    let sum: u64 = slotted.iter().map(|(_, v)| v).sum();
    if sum != t.n_slotted * t.slotted_sizeof {
        bad.push(format!(
            "record --by type: {sum} bytes under __main__.Slotted, expected {} × getsizeof {}",
            t.n_slotted, t.slotted_sizeof
        ));
    }
    if let Some(s) = slotted
        .iter()
        .find(|(f, _)| f.get(1).map(String::as_str) != Some(want.as_str()))
    {
        bad.push(format!(
            "record --by type: every Slotted was allocated on the marked line after tracing started, but a stack \
             says {s:?}"
        ));
    }
}

// --------------------------------------------------------------------------------------------- untraced target

fn not_tracing_error(pid: i32, minor: u32) -> String {
    format!(
        "pymemspy: error: process {pid}: tracemalloc is not tracing in it: start the program with \
         PYTHONTRACEMALLOC=10 or -X tracemalloc=10{}",
        if minor >= 14 {
            ", or pass --start-tracemalloc 10"
        } else {
            ""
        }
    )
}

fn check_not_tracing(f: &Fixture, minor: u32, dir: &Path, bad: &mut Vec<String>) {
    let pid_s = f.pid.to_string();
    let want = not_tracing_error(f.pid, minor);
    let out = dir.join("untraced.folded");
    let out_s = out.to_string_lossy().into_owned();
    for (what, args) in [
        (
            "summary --by alloc (not tracing)",
            vec!["summary", "--pid", &pid_s, "--by", "alloc"],
        ),
        (
            "record --by alloc (not tracing)",
            vec![
                "record", "--pid", &pid_s, "--by", "alloc", "--format", "folded", "-o", &out_s,
            ],
        ),
    ] {
        let run = run_pymemspy(&args);
        assert_clean_error(&run, what, &["tracemalloc", "PYTHONTRACEMALLOC"]);
        let line = run.stderr.trim();
        if line != want {
            bad.push(format!("{what}: stderr {line:?}, expected {want:?}"));
        } else {
            eprintln!("INFO {what}: {line}");
        }
    }
    if out.exists() {
        bad.push(format!(
            "record --by alloc (not tracing) failed but left {}",
            out.display()
        ));
    }
}

/// Wait until the fixture's stderr has a line starting with `prefix`; the rest of that line.
fn wait_stderr(f: &Fixture, prefix: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = f.stderr_text();
        if let Some(l) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
            return Some(l.to_string());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_start_tracemalloc(f: &Fixture, bad: &mut Vec<String>) {
    let what = "summary --by alloc --start-tracemalloc 10";
    let report = summary_alloc(f.pid, &["--start-tracemalloc", "10"], what);
    if report["coverage"]["max_nframe"].as_u64() != Some(10) {
        bad.push(format!(
            "{what}: coverage.max_nframe {} (expected 10)",
            report["coverage"]["max_nframe"]
        ));
    }
    if report["sites"].as_array().is_none() {
        bad.push(format!("{what}: no sites array"));
    }
    if wait_stderr(f, "TRACING 1", Duration::from_secs(10)).is_none() {
        bad.push(format!(
            "{what}: succeeded, but the fixture never saw tracemalloc.is_tracing() true; its stderr:\n{}",
            f.stderr_text()
        ));
        return;
    }
    // the script file pymemspy wrote for the target is gone
    let tmp = format!("/proc/{}/root/tmp", f.pid);
    let prefix = format!("pymemspy-start-tracemalloc-{}-", f.pid);
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        let left: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        if !left.is_empty() {
            bad.push(format!("{what}: left {left:?} in {tmp}"));
        }
    }
    // what the fixture allocated once tracing, against its own statistics
    let Some(late) = wait_stderr(f, "LATE ", Duration::from_secs(10)) else {
        bad.push(format!(
            "the fixture did not report its LATE allocation; its stderr:\n{}",
            f.stderr_text()
        ));
        return;
    };
    let late: Value = serde_json::from_str(&late).unwrap_or_else(|e| panic!("LATE {late}: {e}"));
    let what2 = "summary --by alloc --start-tracemalloc 10 (already tracing)";
    let report = summary_alloc(f.pid, &["--start-tracemalloc", "10"], what2);
    let base = Path::new(ALLOC_FIXTURE)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let frame = format!(
        "{base}:{} in {}",
        late["line"],
        late["func"].as_str().unwrap_or("?")
    );
    let want = (late["stats"][0].as_u64(), late["stats"][1].as_u64());
    match site(&report, &frame) {
        Some(s) => {
            let got = (s["bytes"].as_u64(), s["blocks"].as_u64());
            if got != want || want.0.unwrap_or(0) == 0 {
                bad.push(format!(
                    "{what2}: site {frame:?} has (bytes, blocks) {got:?}, the fixture's statistics('lineno') says \
                     {want:?}"
                ));
            }
            eprintln!("INFO {what2}: site {frame:?}: {s}; the fixture's statistics {want:?}");
            let top = s["types"][0][0].as_str();
            if top != Some("str") {
                bad.push(format!(
                    "{what2}: site {frame:?}: top type {top:?}, expected \"str\": {}",
                    s["types"]
                ));
            }
        }
        None => bad.push(format!(
            "{what2}: no site {frame:?} (allocated after tracing started: {want:?})"
        )),
    }
}

/// A loop fixture to start: mode, interpreter options, environment.
type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);

fn check_remote_debug_disabled(interp: &Interp, bad: &mut Vec<String>) {
    let cases: [Case; 2] = [
        ("loop-reexec", &[], &[("PYTHON_DISABLE_REMOTE_DEBUG", "1")]),
        ("loop", &["-X", "disable-remote-debug"], &[]),
    ];
    for (mode, opts, env) in cases {
        let f = start_loop(interp, mode, opts, env).unwrap_or_else(|e| panic!("{e}"));
        let what = format!("--start-tracemalloc 10 against {}", f.what);
        if remote_debug(&f).as_deref() != Some("False") {
            bad.push(format!(
                "{}: sys.is_remote_debug_enabled() is {:?}, not False: the precondition failed",
                f.what,
                remote_debug(&f)
            ));
            continue;
        }
        let pid_s = f.pid.to_string();
        let run = run_pymemspy(&[
            "summary",
            "--pid",
            &pid_s,
            "--by",
            "alloc",
            "--start-tracemalloc",
            "10",
        ]);
        assert_clean_error(&run, &what, &["remote debugging is disabled"]);
        eprintln!("INFO {what}: {}", run.stderr.trim());
        std::thread::sleep(Duration::from_millis(200));
        if f.stderr_text().contains("TRACING 1") {
            bad.push(format!("{what}: the fixture started tracing anyway"));
        }
    }
}

// ------------------------------------------------------------------------------------------------------- tests

fn alloc_cli_test(test: &str, id: &str) {
    let Some(interp) = interp_or_skip(test, id) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bad: Vec<String> = vec![];

    // traced from the start
    let (fx, truth) = start_traced(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    for mark in ["slotted", "bytearray", "strs"] {
        let [bytes, blocks] = truth.stats(mark);
        assert!(
            bytes > 0 && blocks > 0,
            "{test}: the fixture's own statistics lack line {} ({mark}): {:?}",
            truth.lines[mark],
            truth.per_line
        );
    }
    let want = truth.n_slotted * truth.slotted_sizeof;
    let got = truth.expect[&truth.lines["slotted"].to_string()]["__main__.Slotted"];
    assert_eq!(
        got, want,
        "{test}: the fixture's tracemalloc puts only {got} of the {want} bytes of Slotted objects on their line"
    );
    let minor = minor_of(&truth.python_version);
    let stacks = record_folded(
        fx.pid,
        "alloc",
        dir.path(),
        &format!("{test}: record --by alloc"),
    );
    check_by_alloc(&truth, &stacks, &mut bad);
    let report = summary_alloc(fx.pid, &[], &format!("{test}: summary --by alloc"));
    check_summary(&truth, &report, &mut bad);
    let stacks = record_folded(
        fx.pid,
        "type",
        dir.path(),
        &format!("{test}: record --by type"),
    );
    check_by_type(&truth, &stacks, &mut bad);
    drop(fx);

    // not tracing
    let f = start_loop(&interp, "loop", &[], &[]).unwrap_or_else(|e| panic!("{test}: {e}"));
    check_not_tracing(&f, minor, dir.path(), &mut bad);
    if minor >= 14 {
        check_start_tracemalloc(&f, &mut bad);
        drop(f);
        check_remote_debug_disabled(&interp, &mut bad);
    } else {
        let pid_s = f.pid.to_string();
        let run = run_pymemspy(&[
            "summary",
            "--pid",
            &pid_s,
            "--by",
            "alloc",
            "--start-tracemalloc",
            "10",
        ]);
        assert_clean_error(
            &run,
            &format!(
                "{test}: --start-tracemalloc on Python {}",
                truth.python_version
            ),
            &["--start-tracemalloc", "needs Python 3.14"],
        );
        eprintln!("INFO {test}: --start-tracemalloc: {}", run.stderr.trim());
        drop(f);
    }

    eprintln!(
        "{test}: Python {} — lines {:?}, statistics {:?}",
        truth.python_version, truth.lines, truth.per_line
    );
    if !bad.is_empty() {
        let mut msg = format!(
            "{test}: {} mismatch(es) ({}):\n",
            bad.len(),
            interp.describe()
        );
        for b in &bad {
            let _ = writeln!(msg, "  - {b}");
        }
        panic!("{msg}");
    }
}

#[test]
fn py38() {
    alloc_cli_test("py38", "py38");
}

#[test]
fn py39() {
    alloc_cli_test("py39", "py39");
}

#[test]
fn py310() {
    alloc_cli_test("py310", "py310");
}

#[test]
fn py311() {
    alloc_cli_test("py311", "py311");
}

#[test]
fn py312() {
    alloc_cli_test("py312", "py312");
}

#[test]
fn py313() {
    alloc_cli_test("py313", "py313");
}

/// Stripped static binary: tracemalloc's tables only through the build-id debug file (python3.11-dbg).
#[test]
fn debian_py311_static() {
    alloc_cli_test("debian_py311_static", "debian_py311_static");
}

#[test]
fn sid_py313() {
    alloc_cli_test("sid_py313", "sid_py313");
}

#[test]
fn sid_py314() {
    alloc_cli_test("sid_py314", "sid_py314");
}

#[test]
fn sid_py315() {
    alloc_cli_test("sid_py315", "sid_py315");
}
