//! `pymemspy record` (flamegraph of retained memory) and `pymemspy paths` against tests/fixtures/retained.py,
//! which prints what its global `LEAK` and its "holder" thread's local `hoard` retain (see the comment at its top).
//!
//! Per interpreter (same set and skip/require policy as tests/census.rs), with `record --format folded --size
//! getsizeof --min-percent 0`, asserted exactly:
//! * the folded file is well formed: every line is `frame;...;frame BYTES` with non-empty frames free of control
//!   characters and BYTES > 0; the fixture's dict keys containing `;` and a newline stay inside one frame each;
//! * Σ of the lines under `module __main__;.LEAK dict` == the fixture's retained size of LEAK (that frame's
//!   `×COUNT` against the number of objects LEAK alone keeps alive is only printed: the tool also counts, with
//!   0 bytes, static small ints among LEAK's keys);
//! * Σ of the lines under `thread holder …` that go through `hoard list` == getsizeof(hoard) + Σ getsizeof(items),
//!   those stacks contain `hold (retained.py:LINE)` and the hoard frame's `×COUNT` == 1 + len(hoard).
//!
//! Once, on any one interpreter: `paths --type Order`; the SVG format; the JSON format (total_bytes == Σ of its
//! top-level frames == Σ folded values of another run with the same options); with the default --min-percent,
//! narrow frames are merged, not dropped (Σ folded == total_bytes); `--by type` (Σ under `__main__.Order ×N` ==
//! N × getsizeof(Order)); a failed `record` leaves no output file.

mod common;

use common::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub const RETAINED_FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/retained.py");

/// What tests/fixtures/retained.py prints.
#[derive(Debug, Clone, Deserialize)]
struct RetainedTruth {
    python_version: String,
    leak_bytes: u64,
    leak_objects: u64,
    /// type → [count, bytes] of the objects LEAK alone keeps alive
    leak_types: BTreeMap<String, [u64; 2]>,
    hoard_bytes: u64,
    hoard_objects: u64,
    hold_line: u32,
    n_leak: u64,
    selfcheck: String,
}

/// Start the retained fixture under `interp` and parse its ground truth; the fixture must pass its self-check.
fn start_fixture(interp: &Interp) -> Result<(Fixture, RetainedTruth), String> {
    let cmd = python_command(interp, Path::new(RETAINED_FIXTURE), &[]);
    let (f, truth): (Fixture, RetainedTruth) = start_with_truth(
        cmd,
        &format!("retained fixture under {}", interp.describe()),
    )?;
    if truth.selfcheck != "ok" {
        return Err(format!(
            "{} failed its self-check: {}",
            f.what, truth.selfcheck
        ));
    }
    Ok((f, truth))
}

/// One line of a folded file: the frames, root first, and the bytes.
type Stack = (Vec<String>, u64);

/// Parse a folded-stacks file strictly: `frame;frame;...;frame BYTES\n` per line, frames non-empty and free of
/// control characters (a newline in a frame would have split the line), BYTES a positive integer.
fn parse_folded(text: &str) -> Result<Vec<Stack>, String> {
    if text.is_empty() {
        return Err("the folded file is empty".into());
    }
    if !text.ends_with('\n') {
        return Err("the folded file does not end with a newline".into());
    }
    let mut out = vec![];
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let (stack, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {n} has no ' BYTES' at its end: {line:?}"))?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("line {n}: {value:?} is not an integer: {line:?}"));
        }
        let value: u64 = value
            .parse()
            .map_err(|e| format!("line {n}: {value:?}: {e}"))?;
        if value == 0 {
            return Err(format!("line {n} has value 0: {line:?}"));
        }
        let frames: Vec<String> = stack.split(';').map(str::to_string).collect();
        for f in &frames {
            if f.trim().is_empty() {
                return Err(format!("line {n} has an empty frame: {line:?}"));
            }
            if f.chars().any(char::is_control) {
                return Err(format!(
                    "line {n} has a control character in a frame: {line:?}"
                ));
            }
        }
        out.push((frames, value));
    }
    Ok(out)
}

/// Whether `frame` is `text` with or without a ` ×COUNT` suffix (and nothing else).
fn frame_is(frame: &str, text: &str) -> bool {
    frame == text || frame_count(frame, text).is_some()
}

/// The COUNT of `TEXT ×COUNT`.
fn frame_count(frame: &str, text: &str) -> Option<u64> {
    frame.strip_prefix(text)?.strip_prefix(" ×")?.parse().ok()
}

fn show(stacks: &[&Stack]) -> String {
    let mut s = String::new();
    for (f, v) in stacks.iter().take(60) {
        let _ = writeln!(s, "    {} {v}", f.join(";"));
    }
    if stacks.len() > 60 {
        let _ = writeln!(s, "    ... {} more lines", stacks.len() - 60);
    }
    s
}

/// `pymemspy ARGS`, which must succeed.
fn run_ok(test: &str, args: &[&str]) -> Run {
    let run = run_pymemspy(args);
    assert_no_panic(&run, test);
    assert!(
        run.status.success(),
        "{test}: pymemspy {} failed\n{}",
        args.join(" "),
        run.describe()
    );
    run
}

/// `record --format folded` with `extra` options into a temporary file; the parsed stacks.
fn record_folded(test: &str, pid: &str, extra: &[&str]) -> Vec<Stack> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.folded");
    let out_s = out.to_str().unwrap();
    let mut args = vec!["record", "--pid", pid, "--format", "folded", "-o", out_s];
    args.extend_from_slice(extra);
    let run = run_ok(test, &args);
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{test}: cannot read {out_s}: {e}\n{}", run.describe()));
    parse_folded(&text)
        .unwrap_or_else(|e| panic!("{test}: malformed folded output ({}): {e}", args.join(" ")))
}

fn record_test(test: &str, id: &str) {
    let Some(interp) = interp_or_skip(test, id) else {
        return;
    };
    let (fx, truth) = start_fixture(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let stacks = record_folded(test, &pid, &["--size", "getsizeof", "--min-percent", "0"]);
    let mut bad: Vec<String> = vec![];

    // the dict keys "semi;colon" and "new\nline" of ODD_KEYS: each within one frame
    for (part, whole) in [("colon", "semi"), ("line", "new")] {
        let frames: Vec<&String> = stacks
            .iter()
            .flat_map(|(f, _)| f.iter())
            .filter(|f| f.contains(part) && f.contains("bytearray"))
            .collect();
        if frames.is_empty() {
            bad.push(format!(
                "no frame for the ODD_KEYS item whose key contains {part:?}"
            ));
        }
        for f in frames {
            if !f.contains(whole) {
                bad.push(format!(
                    "frame {f:?}: a key with ';' or a newline was split across frames"
                ));
            }
        }
    }

    // LEAK
    let leak: Vec<&Stack> = stacks
        .iter()
        .filter(|(f, _)| {
            f.len() >= 2 && frame_is(&f[0], "module __main__") && frame_is(&f[1], ".LEAK dict")
        })
        .collect();
    let leak_sum: u64 = leak.iter().map(|(_, v)| v).sum();
    if leak_sum != truth.leak_bytes {
        // where LEAK's objects went instead (e.g. `shared dict;['LEAK'] dict` when the module's dict is shared)
        let elsewhere: Vec<&Stack> = stacks
            .iter()
            .filter(|(f, _)| f.iter().any(|x| x.contains("LEAK")))
            .filter(|s| !leak.contains(s))
            .collect();
        bad.push(format!(
            "Σ under `module __main__;.LEAK dict` = {leak_sum} != {} retained by LEAK (diff {:+}); the fixture's \
             exclusive set by type [count, bytes]: {:?}; the lines:\n{}  other lines naming LEAK:\n{}",
            truth.leak_bytes,
            leak_sum as i64 - truth.leak_bytes as i64,
            truth.leak_types,
            show(&leak),
            show(&elsewhere)
        ));
    }
    let leak_frames: Vec<&String> = leak.iter().map(|(f, _)| &f[1]).collect();
    if let Some(f) = leak_frames.iter().find(|f| **f != leak_frames[0]) {
        bad.push(format!(
            "two different LEAK frames: {:?} and {f:?}",
            leak_frames[0]
        ));
    }
    if let Some(f) = leak_frames.first() {
        // Not asserted: the tool also counts, with 0 bytes, static small ints (LEAK's keys below 257, or 1025 on
        // 3.15) that no other heap object refers to, which LEAK does not keep alive.
        let count = frame_count(f, ".LEAK dict");
        if count != Some(truth.leak_objects) {
            eprintln!(
                "INFO {test}: LEAK frame {f:?}, but LEAK alone keeps {} objects alive",
                truth.leak_objects
            );
        }
    }

    // the holder thread's hoard
    let hold_frame = format!("hold (retained.py:{})", truth.hold_line);
    let holder: Vec<&Stack> = stacks
        .iter()
        .filter(|(f, _)| f[0] == "thread holder" || f[0].starts_with("thread holder (tid "))
        .collect();
    let hoard: Vec<&Stack> = holder
        .iter()
        .copied()
        .filter(|(f, _)| f.iter().any(|x| frame_is(x, "hoard list")))
        .collect();
    let hoard_sum: u64 = hoard.iter().map(|(_, v)| v).sum();
    if hoard_sum != truth.hoard_bytes {
        let mut roots: Vec<&str> = stacks
            .iter()
            .filter(|(f, _)| f[0].starts_with("thread "))
            .map(|(f, _)| f[0].as_str())
            .collect();
        roots.dedup();
        let elsewhere: Vec<&Stack> = stacks
            .iter()
            .filter(|(f, _)| f.iter().any(|x| x.starts_with("hoard ")))
            .filter(|s| !holder.contains(s))
            .collect();
        bad.push(format!(
            "Σ under `thread holder …;…;hoard list` = {hoard_sum} != {} = getsizeof(hoard) + Σ getsizeof(items) \
             (diff {:+}); the holder thread's lines:\n{}  thread roots: {roots:?}; other lines naming hoard:\n{}",
            truth.hoard_bytes,
            hoard_sum as i64 - truth.hoard_bytes as i64,
            show(&holder),
            show(&elsewhere)
        ));
    }
    for (f, _) in &hoard {
        let h = f.iter().position(|x| frame_is(x, "hoard list")).unwrap();
        if !f[..h].contains(&hold_frame) {
            bad.push(format!(
                "the hoard's stack has no frame {hold_frame:?} above it: {}",
                f.join(";")
            ));
        }
        let count = frame_count(&f[h], "hoard list");
        if count != Some(truth.hoard_objects) {
            bad.push(format!(
                "hoard frame {:?}: expected ×{} (the list and its bytearrays)",
                f[h], truth.hoard_objects
            ));
        }
    }

    if !bad.is_empty() {
        let mut msg = format!(
            "{test}: {} mismatch(es) against the fixture's ground truth ({}, Python {}):\n",
            bad.len(),
            interp.describe(),
            truth.python_version
        );
        for b in &bad {
            let _ = writeln!(msg, "  - {b}");
        }
        panic!("{msg}");
    }
    drop(fx);
}

#[test]
fn py38() {
    record_test("py38", "py38");
}

#[test]
fn py39() {
    record_test("py39", "py39");
}

#[test]
fn py310() {
    record_test("py310", "py310");
}

#[test]
fn py311() {
    record_test("py311", "py311");
}

#[test]
fn py312() {
    record_test("py312", "py312");
}

#[test]
fn py313() {
    record_test("py313", "py313");
}

#[test]
fn debian_py311_static() {
    record_test("debian_py311_static", "debian_py311_static");
}

#[test]
fn sid_py313() {
    record_test("sid_py313", "sid_py313");
}

#[test]
fn sid_py314() {
    record_test("sid_py314", "sid_py314");
}

#[test]
fn sid_py315() {
    record_test("sid_py315", "sid_py315");
}

// ------------------------------------------------------------------------------- once, on any one interpreter

/// The first interpreter found, preferring the cheap direct ones; `None` after printing SKIP.
fn any_interp(test: &str) -> Option<Interp> {
    common::any_interp(test, "record")
}

/// `paths --type Order --limit 3`: three chains through LEAK.
#[test]
fn paths_to_orders() {
    let test = "paths_to_orders";
    let Some(interp) = any_interp(test) else {
        return;
    };
    let (fx, truth) = start_fixture(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let run = run_ok(
        test,
        &["paths", "--pid", &pid, "--type", "Order", "--limit", "3"],
    );
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "{test}: --limit 3 should print 3 chains\n{}",
        run.describe()
    );
    const HEAD: &str = "module __main__ → .LEAK dict → [";
    for l in &lines {
        assert!(
            l.starts_with(HEAD) && l.ends_with("Order"),
            "{test}: chain {l:?} should be `{HEAD}N] … Order`\n{}",
            run.describe()
        );
        // the dict key: an int of 0..N_LEAK
        let key = l[HEAD.len()..].split(']').next().unwrap_or_default();
        assert!(
            key.parse::<u64>().is_ok_and(|k| k < truth.n_leak),
            "{test}: chain {l:?}: [{key}] is not one of LEAK's keys 0..{}",
            truth.n_leak
        );
    }
    drop(fx);
}

/// `record --format svg`: an SVG document that names the pid.
#[test]
fn svg_format() {
    let test = "svg_format";
    let Some(interp) = any_interp(test) else {
        return;
    };
    let (fx, _truth) = start_fixture(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("flame.svg");
    let run = run_ok(
        test,
        &[
            "record",
            "--pid",
            &pid,
            "--format",
            "svg",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let svg = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!(
            "{test}: cannot read {}: {e}\n{}",
            out.display(),
            run.describe()
        )
    });
    assert!(
        svg.starts_with("<?xml"),
        "{test}: the SVG should start with <?xml: {:?}",
        &svg[..svg.len().min(200)]
    );
    assert!(svg.contains("<svg"), "{test}: no <svg element");
    assert!(
        svg.contains(&pid),
        "{test}: the SVG does not name pid {pid}"
    );
    drop(fx);
}

/// `record --format json ARGS` into a temporary file, parsed; its meta must name the fixture's pid and version.
fn record_json(
    test: &str,
    fx: &Fixture,
    truth: &RetainedTruth,
    extra: &[&str],
) -> serde_json::Value {
    let pid = fx.pid.to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("tree.json");
    let mut args = vec![
        "record",
        "--pid",
        &pid,
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = run_ok(test, &args);
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!(
            "{test}: cannot read {}: {e}\n{}",
            out.display(),
            run.describe()
        )
    });
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{test}: the JSON does not parse: {e}"));
    assert!(
        v["total_bytes"].is_u64(),
        "{test}: no total_bytes: {}",
        &text[..text.len().min(500)]
    );
    assert_eq!(
        v["meta"]["pid"].as_i64(),
        Some(fx.pid as i64),
        "{test}: meta.pid"
    );
    assert_eq!(
        v["meta"]["python_version"].as_str(),
        Some(truth.python_version.as_str()),
        "{test}: meta.python_version"
    );
    assert!(v["tree"].is_array(), "{test}: no tree array");
    v
}

/// Σ bytes of the JSON tree's top-level frames.
fn json_top_sum(v: &serde_json::Value) -> u64 {
    v["tree"]
        .as_array()
        .map(|t| t.iter().map(|n| n["bytes"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// `record --format json`: total_bytes == Σ of its top-level frames == Σ of the values of a separate folded run
/// with the same options.
#[test]
fn json_format() {
    let test = "json_format";
    let Some(interp) = any_interp(test) else {
        return;
    };
    let (fx, truth) = start_fixture(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let opts = ["--size", "getsizeof", "--min-percent", "0"];
    let v = record_json(test, &fx, &truth, &opts);
    let total = v["total_bytes"].as_u64().unwrap();
    assert_eq!(
        json_top_sum(&v),
        total,
        "{test}: Σ bytes of the top-level frames != total_bytes"
    );
    let tree = v["tree"].as_array().unwrap();
    assert!(
        tree.iter().any(|n| n["frame"]
            .as_str()
            .is_some_and(|f| frame_is(f, "module __main__"))),
        "{test}: no top-level frame `module __main__`"
    );
    let stacks = record_folded(test, &fx.pid.to_string(), &opts);
    let sum: u64 = stacks.iter().map(|(_, v)| v).sum();
    assert_eq!(
        total,
        sum,
        "{test}: JSON total_bytes {total} != Σ of the folded values {sum} (diff {:+})",
        total as i64 - sum as i64
    );
    drop(fx);
}

/// With the default --min-percent, narrow frames are merged into their parents, never dropped: the folded values
/// and the JSON tree still add up to total_bytes.
#[test]
fn min_percent_keeps_bytes() {
    let test = "min_percent_keeps_bytes";
    let Some(interp) = any_interp(test) else {
        return;
    };
    let (fx, truth) = start_fixture(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let v = record_json(test, &fx, &truth, &[]);
    let total = v["total_bytes"].as_u64().unwrap();
    let pid = fx.pid.to_string();
    let all = record_folded(test, &pid, &["--min-percent", "0"]);
    let all_sum: u64 = all.iter().map(|(_, v)| v).sum();
    assert_eq!(
        all_sum, total,
        "{test}: Σ folded values with --min-percent 0 != JSON total_bytes"
    );
    let stacks = record_folded(test, &pid, &[]);
    let sum: u64 = stacks.iter().map(|(_, v)| v).sum();
    // the top-level frames narrower than the threshold: where the missing bytes were
    let mut top: BTreeMap<&str, u64> = BTreeMap::new();
    for (f, v) in &all {
        *top.entry(f[0].as_str()).or_default() += v;
    }
    let min = total as f64 * 0.0005;
    let narrow: Vec<(&str, u64)> = top.into_iter().filter(|(_, b)| (*b as f64) < min).collect();
    let narrow_sum: u64 = narrow.iter().map(|(_, b)| b).sum();
    assert_eq!(
        sum,
        total,
        "{test}: Σ folded values {sum} != total_bytes {total} (diff {:+}); the top-level frames under 0.05 % \
         add up to {narrow_sum}: {narrow:?}",
        sum as i64 - total as i64
    );
    assert_eq!(
        json_top_sum(&v),
        total,
        "{test}: Σ bytes of the JSON's top-level frames != total_bytes {total}"
    );
    drop(fx);
}

/// `record --by type`: the type first; the Orders' own sizes all under `__main__.Order`.
#[test]
fn by_type() {
    let test = "by_type";
    let Some(interp) = any_interp(test) else {
        return;
    };
    let (fx, truth) = start_fixture(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let stacks = record_folded(
        test,
        &pid,
        &["--by", "type", "--size", "getsizeof", "--min-percent", "0"],
    );
    let orders: Vec<&Stack> = stacks
        .iter()
        .filter(|(f, _)| frame_is(&f[0], "__main__.Order"))
        .collect();
    assert!(
        !orders.is_empty() && orders.iter().all(|(f, _)| f.len() >= 2),
        "{test}: expected lines `__main__.Order;…` (the type, then who retains it):\n{}",
        show(&stacks.iter().take(40).collect::<Vec<_>>())
    );
    let [count, bytes] = truth.leak_types["__main__.Order"];
    let sum: u64 = orders.iter().map(|(_, v)| v).sum();
    assert_eq!(
        sum,
        bytes,
        "{test}: Σ under __main__.Order != {count} × getsizeof(Order)\n{}",
        show(&orders)
    );
    assert!(
        orders
            .iter()
            .any(|(f, _)| f[1..].iter().any(|x| frame_is(x, ".LEAK dict"))),
        "{test}: no Order line names LEAK as the retainer\n{}",
        show(&orders)
    );
    drop(fx);
}

/// A failed `record` (no such process) is one error line and leaves no file behind.
#[test]
fn record_no_such_pid() {
    let pid = unused_pid().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("never.folded");
    let run = run_pymemspy(&[
        "record",
        "--pid",
        &pid,
        "--format",
        "folded",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&run, "record on a pid that does not exist", &[&pid]);
    assert!(
        !out.exists(),
        "a failed record left {} behind",
        out.display()
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a failed record left files behind: {left:?}"
    );
}
