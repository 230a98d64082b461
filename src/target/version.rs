//! Detecting the target's CPython version: `Py_Version`, `_Py_DebugOffsets`, the `Py_GetVersion` buffer, the file name.

use super::{PythonModule, TargetError};
use crate::layout::{DebugOffsets, LayoutError, PyVersion, debug_offsets};
use crate::memory::MemorySource;

/// "3.12.1 (main, ..." -> 3.12.1
pub fn version_from_banner(s: &str) -> Option<PyVersion> {
    let end = s.find(' ').unwrap_or(s.len());
    let v = PyVersion::parse(&s[..end])?;
    (v.major == 2 || v.major == 3).then_some(v)
}

/// "libpython3.12.so.1.0", "python3.11", "libpython2.7.so" -> (major, minor, 0)
pub fn version_from_filename(name: &str) -> Option<PyVersion> {
    let i = name.find("python")? + "python".len();
    let rest = &name[i..];
    let mut it = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major: u8 = it.next()?.parse().ok()?;
    if rest.get(1..2).is_none_or(|c| c != ".") {
        return None;
    }
    let minor: u8 = it.next()?.parse().ok()?;
    (major == 2 || major == 3).then_some(PyVersion::new(major, minor, crate::layout::MICRO_UNKNOWN))
}

pub fn detect(
    pid: i32,
    py: &PythonModule,
    runtime: u64,
    mem: &dyn MemorySource,
) -> Result<(PyVersion, Option<DebugOffsets>), TargetError> {
    let layout_err = |source| TargetError::Layout { pid, source };
    let mut version = None;
    // 1. Py_Version (3.11+)
    if let Some(a) = py.symbol("Py_Version") {
        let mut b = [0u8; 4];
        if mem.read(a, &mut b).is_ok() {
            let v = PyVersion::from_hex(u32::from_le_bytes(b) as u64);
            if v.major == 3 {
                version = Some(v);
            }
        }
    }
    // 2. _Py_DebugOffsets (3.13+)
    let mut dbg = None;
    let mut raw = vec![0u8; debug_offsets::max_len()];
    if mem.read(runtime, &mut raw).is_ok() && DebugOffsets::present(&raw) {
        let d = DebugOffsets::parse(&raw).map_err(layout_err)?;
        if version.is_none() {
            version = Some(d.version);
        }
        dbg = Some(d);
    }
    // 3. the static buffer behind Py_GetVersion()
    if version.is_none() {
        for name in [
            "version.0",
            "version",
            "version.lto_priv.0",
            "Py_GetVersion.version",
        ] {
            if let Some(a) = py.symbol(name) {
                let mut b = [0u8; 80];
                if mem.read(a, &mut b).is_ok() {
                    let s = String::from_utf8_lossy(
                        &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())],
                    )
                    .into_owned();
                    if let Some(v) = version_from_banner(&s) {
                        version = Some(v);
                        break;
                    }
                }
            }
        }
    }
    if version.is_none() {
        for (name, a) in py.elf.symbols.iter() {
            if name.starts_with("version.") {
                let mut b = [0u8; 80];
                if mem.read(a + py.bias, &mut b).is_ok() {
                    let s = String::from_utf8_lossy(
                        &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())],
                    )
                    .into_owned();
                    if let Some(v) = version_from_banner(&s) {
                        version = Some(v);
                        break;
                    }
                }
            }
        }
    }
    // 4. the file name (minor version only; good enough for <= 3.12, whose layouts do not change within a minor)
    if version.is_none() {
        let base = py.path.rsplit('/').next().unwrap_or(&py.path);
        version = version_from_filename(base);
    }
    let version = version.ok_or_else(|| TargetError::NotPython {
        pid,
        reason: format!("cannot tell which Python version {} is", py.path),
    })?;
    if !version.at_least(8) {
        return Err(layout_err(LayoutError::Unsupported(version)));
    }
    Ok((version, dbg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        assert_eq!(
            version_from_filename("libpython3.12.so.1.0")
                .unwrap()
                .to_string(),
            "3.12"
        );
        assert_eq!(version_from_filename("python3.11").unwrap().minor, 11);
        assert_eq!(
            version_from_filename("libpython2.7.so.1.0")
                .unwrap()
                .to_string(),
            "2.7"
        );
        assert_eq!(version_from_filename("python3"), None);
        assert_eq!(
            version_from_filename("libpython3.7m.so.1.0").unwrap().minor,
            7
        );
    }

    #[test]
    fn banners() {
        assert_eq!(
            version_from_banner("3.10.13 (main, Jan  1 2024, 00:00:00) [GCC]"),
            Some(PyVersion::new(3, 10, 13))
        );
        assert_eq!(version_from_banner("garbage"), None);
    }
}
