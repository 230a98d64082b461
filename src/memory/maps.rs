//! Parsing `/proc/PID/maps` lines into address ranges with permissions and backing file.

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub shared: bool,
    pub offset: u64,
    pub inode: u64,
    /// Path, pseudo-name such as `[heap]`, or empty for anonymous memory.
    pub path: String,
}

impl MapEntry {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Backed by a regular file (not anonymous, not a `[pseudo]` mapping).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }
    /// Kernel-provided mappings that must never be read.
    pub fn is_special(&self) -> bool {
        matches!(
            self.path.as_str(),
            "[vvar]" | "[vsyscall]" | "[vvar_vclock]"
        ) || self.path.starts_with("/dev/")
            || self.path.starts_with("/SYSV")
            || self.path.starts_with("/memfd:")
    }
    /// Basename of the backing file, with a trailing " (deleted)" removed.
    pub fn basename(&self) -> &str {
        let p = self.path.strip_suffix(" (deleted)").unwrap_or(&self.path);
        p.rsplit('/').next().unwrap_or(p)
    }
}

/// Parse the whole text of a maps file. Malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MapEntry> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let inode: u64 = it.next()?.parse().ok()?;
    let path = it.next().unwrap_or("").trim_start().to_string();
    let (s, e) = range.split_once('-')?;
    if perms.len() < 4 {
        return None;
    }
    Some(MapEntry {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        inode,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical_lines() {
        let text = "\
55d0c5a00000-55d0c5a01000 r--p 00000000 fe:01 1234                       /usr/bin/python3.11
7f1c2c000000-7f1c2c021000 rw-p 00000000 00:00 0 
7ffd1e5e0000-7ffd1e601000 rw-p 00000000 00:00 0                          [stack]
7f00 garbage
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
7f1c2d000000-7f1c2d100000 r-xp 00010000 fe:01 99 /lib/libpython3.12.so.1.0 (deleted)
";
        let m = parse_maps(text);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].path, "/usr/bin/python3.11");
        assert!(m[0].read && !m[0].write && m[0].is_file());
        assert_eq!(m[1].path, "");
        assert!(m[1].write && !m[1].is_file());
        assert_eq!(m[2].path, "[stack]");
        assert!(m[3].is_special());
        assert_eq!(m[4].offset, 0x10000);
        assert_eq!(m[4].basename(), "libpython3.12.so.1.0");
    }
}
