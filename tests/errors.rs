//! The error contract: one sentence on stderr starting with "pymemspy: error: ", a non-zero exit, never a panic,
//! and the words that tell the user what to do.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn no_such_pid() {
    let pid = unused_pid().to_string();
    let run = run_pymemspy(&["summary", "--pid", &pid]);
    assert_clean_error(&run, "summary on a pid that does not exist", &[&pid]);
    let run = run_pymemspy(&["inspect", "--pid", &pid]);
    assert_clean_error(&run, "inspect on a pid that does not exist", &[&pid]);
}

#[test]
fn not_a_python_process() {
    let sleep = which("sleep").expect("sleep");
    let mut c = Command::new(sleep);
    c.arg("60");
    let child = ChildGuard::spawn(c).expect("start sleep 60");
    // no readiness line to wait for: wait until the exec is visible in /proc
    let exe = format!("/proc/{}/exe", child.pid());
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while std::fs::read_link(&exe)
        .map(|p| !p.to_string_lossy().contains("sleep"))
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep 60 did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = child.pid().to_string();
    let run = run_pymemspy(&["summary", "--pid", &pid, "--format", "json"]);
    assert_clean_error(&run, "summary on `sleep 60`", &[&pid, "python"]);
    assert!(
        run.stdout.trim().is_empty(),
        "no JSON may be printed on error\n{}",
        run.describe()
    );
    drop(child);
}

/// The message names `major.minor`, and where it also gives a micro version, the right one (not e.g. "2.7.0"
/// for 2.7.18).
fn unsupported(test: &str, id: &str, minor: &str) {
    let Some(interp) = interp_or_skip(test, id) else {
        return;
    };
    let fx = blocker(&interp.python).unwrap_or_else(|e| panic!("{test}: {e}"));
    let full = fx
        .reported_version()
        .unwrap_or_else(|| panic!("{test}: the blocker printed no VERSION line"))
        .to_string();
    assert!(
        full.starts_with(&format!("{minor}.")),
        "{test}: {} is Python {full}, not {minor}",
        interp.describe()
    );
    let pid = fx.pid.to_string();
    for cmd in ["summary", "inspect"] {
        let what = format!("{cmd} on Python {full}");
        let run = run_pymemspy(&[cmd, "--pid", &pid]);
        assert_clean_error(&run, &what, &[minor, "support"]);
        for micro in versions_in(&run.stderr, minor) {
            assert_eq!(
                micro,
                full,
                "{what}: the message names the wrong version\n{}",
                run.describe()
            );
        }
    }
    drop(fx);
}

/// Every `minor.N` (N digits) in `text`, e.g. "2.7.0" for minor "2.7".
fn versions_in(text: &str, minor: &str) -> Vec<String> {
    let pat = format!("{minor}.");
    let mut out = vec![];
    for (i, _) in text.match_indices(&pat) {
        let rest = &text[i + pat.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let before_ok = text[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_ascii_digit() && c != '.');
        if !digits.is_empty() && before_ok {
            out.push(format!("{pat}{digits}"));
        }
    }
    out
}

#[test]
fn unsupported_py27() {
    unsupported("unsupported_py27", "py27", "2.7");
}

#[test]
fn unsupported_py36() {
    unsupported("unsupported_py36", "py36", "3.6");
}

#[test]
fn unsupported_py37() {
    unsupported("unsupported_py37", "py37", "3.7");
}

/// uid and gid of `nobody` from /etc/passwd.
fn nobody() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "nobody")
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

/// `pymemspy ARGS` as `nobody`, run from a copy of the binary that nobody can execute (the build directory may
/// not be reachable for other users).
fn run_as_nobody(args: &[&str]) -> Result<Run, String> {
    let (uid, gid) = nobody().ok_or("no user `nobody` in /etc/passwd")?;
    let dir = tempfile::Builder::new()
        .prefix("pymemspy-nobody-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let bin: PathBuf = dir.path().join("pymemspy");
    std::fs::copy(BIN, &bin).map_err(|e| format!("cannot copy {BIN}: {e}"))?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let mut c = if let Some(setpriv) = which("setpriv") {
        let mut c = Command::new(setpriv);
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg("--");
        c
    } else if let Some(runuser) = which("runuser") {
        let mut c = Command::new(runuser);
        c.args(["-u", "nobody", "--"]);
        c
    } else {
        return Err("neither setpriv nor runuser found".into());
    };
    c.arg(&bin).args(args).current_dir("/");
    let run = run_command(c, RUN_TIMEOUT);
    drop(dir);
    Ok(run)
}

#[test]
fn permission_denied() {
    let test = "permission_denied";
    if !is_root() {
        skip(
            test,
            "errors",
            "needs root: the target must belong to root and pymemspy must run as nobody",
        );
        return;
    }
    // any Python will do: the error comes before the version matters
    let ids = [
        "debian_py311_static",
        "py312",
        "py311",
        "py313",
        "py310",
        "py39",
        "py38",
    ];
    let python = ids
        .iter()
        .find_map(|id| find_interp(id).ok())
        .map(|i| i.python)
        .or_else(|| which("python3"));
    let Some(python) = python else {
        skip(test, "errors", "no Python interpreter found");
        return;
    };
    let fx = blocker(&python).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    for args in [
        vec!["summary", "--pid", pid.as_str()],
        vec!["inspect", "--pid", pid.as_str()],
    ] {
        let run = match run_as_nobody(&args) {
            Ok(r) => r,
            Err(reason) => {
                skip(test, "errors", &reason);
                return;
            }
        };
        assert_clean_error(
            &run,
            &format!("{} as nobody on a root-owned Python", args[0]),
            &["sudo", "CAP_SYS_PTRACE", &pid],
        );
    }
    drop(fx);
}

/// Debug builds (Py_DEBUG) change the object header: refused by name. Debian's python3.X-dbg packages install
/// such an interpreter (`python3.14d`) in the sid root.
#[test]
fn debug_build_refused() {
    let test = "debug_build_refused";
    let Some(base) = interp_or_skip(test, "sid_py314") else {
        return;
    };
    let Launch::Chroot(root) = &base.launch else {
        return;
    };
    if !root.join("usr/bin/python3.14d").exists() {
        skip(
            test,
            "sid_py314",
            "python3.14d (python3.14-dbg) is not installed in the sid root",
        );
        return;
    }
    let interp = Interp {
        id: "sid_py314d".into(),
        python: PathBuf::from("/usr/bin/python3.14d"),
        launch: base.launch.clone(),
    };
    let (fx, _truth) = Fixture::census(&interp).unwrap_or_else(|e| panic!("{test}: {e}"));
    let pid = fx.pid.to_string();
    let run = run_pymemspy(&["summary", "--pid", &pid]);
    assert_clean_error(
        &run,
        "summary on a debug build",
        &[&pid, "debug build", "3.14"],
    );
}
