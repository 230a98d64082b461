//! `pymemspy summary` against the census fixture under every supported interpreter, compared with the ground truth
//! the fixture computed about itself (tests/fixtures/census.py).
//!
//! Asserted exactly: count, bytes and tracked of every fixture class and of `list`; `gc_tracked`; the counts of
//! `float`, `bytes` and `bytearray` (from the fixture's reachability closure); the report's own consistency
//! (objects and bytes are the sums over types, types sorted by bytes descending, tracked ≤ count, Σ tracked ==
//! gc_tracked); pid and python_version. Printed, not asserted (yet): the differences for str, int, tuple, dict.

mod common;

use common::*;
use std::fmt::Write as _;
use std::path::Path;

/// Types whose count must match the closure ground truth exactly.
const EXACT_UNTRACKED: [&str; 3] = ["float", "bytes", "bytearray"];
/// Types whose differences are only printed for now.
const REPORTED: [&str; 4] = ["str", "int", "tuple", "dict"];

fn census_test(test: &str, id: &str) {
    census_test_with(test, id, &[]);
}

fn census_test_with(test: &str, id: &str, extra: &[&str]) {
    let Some(interp) = interp_or_skip(test, id) else {
        return;
    };
    let (fx, truth) = Fixture::census(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let mut args = vec!["summary", "--pid", &pid, "--format", "json"];
    args.extend_from_slice(extra);
    let run = run_pymemspy(&args);
    // the target must be running again: no thread left in a tracing stop (t) or stopped (T)
    let states = thread_states(fx.pid);
    assert!(
        !states.is_empty() && states.iter().all(|&c| c != 't' && c != 'T'),
        "{test}: after pymemspy exited, the target's threads are in states {states:?}"
    );
    assert_no_panic(&run, test);
    assert!(
        run.status.success(),
        "{test}: pymemspy summary failed\n{}",
        run.describe()
    );
    let report: Report = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{test}: stdout is not the summary JSON of the contract: {e}\n{}",
            run.describe()
        )
    });
    if !run.stderr.trim().is_empty() {
        eprintln!("{test}: pymemspy stderr:\n{}", run.stderr.trim_end());
    }
    let failures = compare(test, &interp, &truth, &report);
    if !failures.is_empty() {
        let mut msg = format!(
            "{test}: {} mismatch(es) against the fixture's ground truth ({}):\n",
            failures.len(),
            interp.describe()
        );
        for f in &failures {
            let _ = writeln!(msg, "  - {f}");
        }
        panic!("{msg}");
    }
    drop(fx);
}

/// Every contract violation, as one line each (so one run shows all of them).
fn compare(test: &str, interp: &Interp, truth: &Truth, report: &Report) -> Vec<String> {
    let mut bad = vec![];

    // identity
    if report.pid != truth.pid as i64 {
        bad.push(format!("pid {} != {}", report.pid, truth.pid));
    }
    if report.python_version != truth.python_version {
        bad.push(format!(
            "python_version {:?} != {:?}",
            report.python_version, truth.python_version
        ));
    }
    if !same_executable(interp, &truth.executable, &report.executable) {
        bad.push(format!(
            "executable {:?} is not the fixture's {:?}",
            report.executable, truth.executable
        ));
    }

    // the report's own consistency
    let sum_count: u64 = report.types.iter().map(|t| t.count).sum();
    let sum_bytes: u64 = report.types.iter().map(|t| t.bytes).sum();
    let sum_tracked: u64 = report.types.iter().map(|t| t.tracked).sum();
    let sum_footprint: u64 = report.types.iter().map(|t| t.footprint).sum();
    if report.objects != sum_count {
        bad.push(format!(
            "objects {} != sum of types' counts {}",
            report.objects, sum_count
        ));
    }
    if report.bytes != sum_bytes {
        bad.push(format!(
            "bytes {} != sum of types' bytes {}",
            report.bytes, sum_bytes
        ));
    }
    if report.footprint != sum_footprint {
        eprintln!(
            "INFO {test}: footprint {} != sum of types' footprints {}",
            report.footprint, sum_footprint
        );
    }
    if sum_tracked != report.gc_tracked {
        bad.push(format!(
            "sum of types' tracked {} != gc_tracked {}",
            sum_tracked, report.gc_tracked
        ));
    }
    if let Some(w) = report.types.windows(2).find(|w| w[0].bytes < w[1].bytes) {
        bad.push(format!(
            "types not sorted by bytes descending: {} ({}) before {} ({})",
            w[0].name, w[0].bytes, w[1].name, w[1].bytes
        ));
    }
    for t in &report.types {
        if t.tracked > t.count {
            bad.push(format!(
                "{}.{}: tracked {} > count {}",
                t.module, t.name, t.tracked, t.count
            ));
        }
    }
    let mut keys: Vec<(&str, &str)> = report
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.module.as_str()))
        .collect();
    keys.sort();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        bad.push(format!("type {:?} listed twice", w[0]));
    }
    if report.pause_ms.is_nan() || report.pause_ms < 0.0 {
        bad.push(format!("pause_ms {} is not a duration", report.pause_ms));
    }

    // against the ground truth
    if report.gc_tracked != truth.gc_tracked {
        bad.push(format!(
            "gc_tracked {} != {} (gc.get_objects() {} + gc.get_freeze_count() {})",
            report.gc_tracked, truth.gc_tracked, truth.gc_objects, truth.freeze_count
        ));
    }
    let mut exact: Vec<(String, String)> = truth
        .fixture_classes
        .iter()
        .map(|c| (c.name.clone(), c.module.clone()))
        .collect();
    exact.push(("list".into(), String::new()));
    for (name, module) in &exact {
        let label = if module.is_empty() {
            name.clone()
        } else {
            format!("{module}.{name}")
        };
        let Some(want) = truth.get(name, module) else {
            bad.push(format!(
                "{label}: missing from the fixture's own ground truth"
            ));
            continue;
        };
        let Some(got) = report.get(name, module) else {
            bad.push(format!(
                "{label}: not in the report (fixture: {} objects, {} bytes)",
                want.count, want.bytes
            ));
            continue;
        };
        for (what, g, w) in [
            ("count", got.count, want.count),
            ("bytes", got.bytes, want.bytes),
            ("tracked", got.tracked, want.tracked),
        ] {
            if g != w {
                bad.push(format!(
                    "{label}: {what} {g} != {w} (diff {:+})",
                    g as i64 - w as i64
                ));
            }
        }
    }
    for name in EXACT_UNTRACKED {
        let want = truth.get(name, "");
        let got = report.get(name, "");
        let (wc, wb) = want.map(|t| (t.count, t.bytes)).unwrap_or((0, 0));
        let (gc, gb) = got.map(|t| (t.count, t.bytes)).unwrap_or((0, 0));
        if gc != wc {
            let frame_only = truth.frame_only.get(name).copied().unwrap_or(0);
            let via = truth
                .untracked_via
                .get(name)
                .map(|m| format!("{m:?}"))
                .unwrap_or_default();
            bad.push(format!(
                "{name}: count {gc} != {wc} (diff {:+}; the fixture's untracked ones by first referrer: {via}; \
                 {frame_only} are referenced only by executing frames)",
                gc as i64 - wc as i64
            ));
        } else if gb != wb {
            eprintln!(
                "INFO {test}: {name}: counts agree ({gc}) but bytes {gb} != {wb} (diff {:+})",
                gb as i64 - wb as i64
            );
        }
    }
    for name in REPORTED {
        let (wc, wb) = truth
            .get(name, "")
            .map(|t| (t.count, t.bytes))
            .unwrap_or((0, 0));
        let (gc, gb) = report
            .get(name, "")
            .map(|t| (t.count, t.bytes))
            .unwrap_or((0, 0));
        if (gc, gb) != (wc, wb) {
            eprintln!(
                "INFO {test}: {name}: count {gc} vs {wc} (diff {:+}), bytes {gb} vs {wb} (diff {:+})",
                gc as i64 - wc as i64,
                gb as i64 - wb as i64
            );
        }
    }
    bad
}

/// The report may name the executable as the process sees it or as the host sees it (for a chroot, the host path
/// is inside the root); symlinks (pyenv's python3 → python3.X) are resolved on both sides.
fn same_executable(interp: &Interp, fixture: &str, reported: &str) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let reported = Path::new(reported);
    let mut candidates = vec![Path::new(fixture).to_path_buf()];
    if let Launch::Chroot(root) = &interp.launch {
        candidates.push(root.join(fixture.trim_start_matches('/')));
    }
    let got = canon(reported);
    candidates.iter().any(|c| c == reported || canon(c) == got)
}

#[test]
fn py38() {
    census_test("py38", "py38");
}

#[test]
fn py39() {
    census_test("py39", "py39");
}

#[test]
fn py310() {
    census_test("py310", "py310");
}

#[test]
fn py311() {
    census_test("py311", "py311");
}

#[test]
fn py312() {
    census_test("py312", "py312");
}

/// `--nonblocking` reads the target without stopping it; on an idle target the result is just as exact.
#[test]
fn py312_nonblocking() {
    census_test_with("py312_nonblocking", "py312", &["--nonblocking"]);
}

#[test]
fn sid_py315_nonblocking() {
    census_test_with("sid_py315_nonblocking", "sid_py315", &["--nonblocking"]);
}

#[test]
fn py313() {
    census_test("py313", "py313");
}

#[test]
fn debian_py311_static() {
    census_test("debian_py311_static", "debian_py311_static");
}

#[test]
fn sid_py313() {
    census_test("sid_py313", "sid_py313");
}

#[test]
fn sid_py314() {
    census_test("sid_py314", "sid_py314");
}

#[test]
fn sid_py315() {
    census_test("sid_py315", "sid_py315");
}

/// The table format: a header line naming the pid and the Python version, and `--limit` rows.
#[test]
fn table_format() {
    let test = "table_format";
    // any one interpreter will do; prefer the cheap direct ones
    let Some(interp) = any_interp(test, "table") else {
        return;
    };
    let (fx, truth) = Fixture::census(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let run = run_pymemspy(&[
        "summary", "--pid", &pid, "--format", "table", "--limit", "5",
    ]);
    assert_no_panic(&run, test);
    assert!(
        run.status.success(),
        "{test}: pymemspy summary failed\n{}",
        run.describe()
    );
    let mut lines = run.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.contains(&pid),
        "{test}: header line should name pid {pid}: {header:?}\n{}",
        run.describe()
    );
    assert!(
        header.contains(&truth.python_version),
        "{test}: header line should name Python {}: {header:?}\n{}",
        truth.python_version,
        run.describe()
    );
    // data rows start with the count; the column titles, a "... more types" line and warnings do not
    let rows = lines
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .count();
    assert_eq!(
        rows,
        5,
        "{test}: --limit 5 should give 5 rows\n{}",
        run.describe()
    );
    drop(fx);
}
