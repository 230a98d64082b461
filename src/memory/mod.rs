//! Reading another address space: the `MemorySource` trait, `/proc/PID/maps`, and the local `Snapshot` the walker reads.

pub mod live;
pub mod maps;

use std::cell::Cell;

pub use maps::{MapEntry, parse_maps};

/// Errors of the memory layer; they name the pid and the address.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot read {len} bytes at {addr:#x} of pid {pid}: {source}")]
    Read {
        pid: i32,
        addr: u64,
        len: usize,
        source: std::io::Error,
    },
    #[error("address {addr:#x} is not in the snapshot")]
    Unmapped { addr: u64 },
}

/// Something that can copy bytes out of an address space: a live process, a core file, a saved snapshot.
pub trait MemorySource {
    /// Fill `buf` from `addr`; fails if any byte is unreadable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Fill `buf` from `addr`, tolerating unreadable pages (left as zero). Returns bytes really read.
    fn read_lossy(&self, addr: u64, buf: &mut [u8]) -> usize {
        match self.read(addr, buf) {
            Ok(()) => buf.len(),
            Err(_) => 0,
        }
    }
}

/// One copied address range.
pub struct Region {
    pub start: u64,
    pub data: RegionData,
    /// Where the bytes came from (path or `[anon]`), for messages.
    pub name: String,
    pub writable: bool,
}

/// Backing storage of a region: a plain vector or an anonymous mapping pre-faulted before the target was stopped.
pub enum RegionData {
    Vec(Vec<u8>),
    Mmap(memmap2::MmapMut),
}

impl RegionData {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            RegionData::Vec(v) => v,
            RegionData::Mmap(m) => m,
        }
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            RegionData::Vec(v) => v,
            RegionData::Mmap(m) => m,
        }
    }
}

impl Region {
    pub fn end(&self) -> u64 {
        self.start + self.data.as_slice().len() as u64
    }
    pub fn len(&self) -> usize {
        self.data.as_slice().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A local copy of (part of) a target's memory, sorted by address. All reads of the heap walk come from here.
#[derive(Default)]
pub struct Snapshot {
    regions: Vec<Region>,
    last: Cell<usize>,
}

impl Snapshot {
    pub fn new(mut regions: Vec<Region>) -> Snapshot {
        regions.sort_by_key(|r| r.start);
        Snapshot {
            regions,
            last: Cell::new(0),
        }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Total bytes held.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len() as u64).sum()
    }

    /// Index of the region holding `addr`.
    #[inline]
    pub fn region_index(&self, addr: u64) -> Option<usize> {
        let last = self.last.get();
        if let Some(r) = self.regions.get(last)
            && addr >= r.start
            && addr < r.end()
        {
            return Some(last);
        }
        let i = self.regions.partition_point(|r| r.start <= addr);
        if i == 0 {
            return None;
        }
        let r = &self.regions[i - 1];
        if addr < r.end() {
            self.last.set(i - 1);
            Some(i - 1)
        } else {
            None
        }
    }

    /// Region index and offset of `addr`.
    #[inline]
    pub fn locate(&self, addr: u64) -> Option<(usize, usize)> {
        let i = self.region_index(addr)?;
        Some((i, (addr - self.regions[i].start) as usize))
    }

    /// `len` bytes at `addr`, if they lie inside one region.
    #[inline]
    pub fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let i = self.region_index(addr)?;
        let r = &self.regions[i];
        let off = (addr - r.start) as usize;
        r.data.as_slice().get(off..off.checked_add(len)?)
    }

    #[inline]
    pub fn u64(&self, addr: u64) -> Option<u64> {
        self.bytes(addr, 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    #[inline]
    pub fn i64(&self, addr: u64) -> Option<i64> {
        self.u64(addr).map(|v| v as i64)
    }
    #[inline]
    pub fn u32(&self, addr: u64) -> Option<u32> {
        self.bytes(addr, 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    #[inline]
    pub fn i32(&self, addr: u64) -> Option<i32> {
        self.u32(addr).map(|v| v as i32)
    }
    #[inline]
    pub fn u16(&self, addr: u64) -> Option<u16> {
        self.bytes(addr, 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
    }
    #[inline]
    pub fn u8(&self, addr: u64) -> Option<u8> {
        self.bytes(addr, 1).map(|b| b[0])
    }

    /// A NUL-terminated C string of at most `max` bytes.
    pub fn cstr(&self, addr: u64, max: usize) -> Option<String> {
        let i = self.region_index(addr)?;
        let r = &self.regions[i];
        let off = (addr - r.start) as usize;
        let data = r.data.as_slice();
        let end = (off + max).min(data.len());
        let s = &data[off..end];
        let n = memchr::memchr(0, s)?;
        Some(String::from_utf8_lossy(&s[..n]).into_owned())
    }
}

impl MemorySource for Snapshot {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        match self.bytes(addr, buf.len()) {
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            None => Err(MemoryError::Unmapped { addr }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_across_regions() {
        let s = Snapshot::new(vec![
            Region {
                start: 0x2000,
                data: RegionData::Vec(vec![2; 0x1000]),
                name: "b".into(),
                writable: true,
            },
            Region {
                start: 0x1000,
                data: RegionData::Vec((0..=255u8).cycle().take(0x1000).collect()),
                name: "a".into(),
                writable: true,
            },
        ]);
        assert_eq!(s.u8(0x1001), Some(1));
        assert_eq!(s.u8(0x2fff), Some(2));
        assert_eq!(s.u8(0x3000), None);
        assert_eq!(s.u8(0xfff), None);
        // a read may not straddle two regions
        assert!(s.bytes(0x1ffc, 8).is_none());
        assert_eq!(s.u32(0x1000), Some(u32::from_le_bytes([0, 1, 2, 3])));
    }

    #[test]
    fn cstr_stops_at_nul_and_region_end() {
        let mut v = b"hello\0world".to_vec();
        v.resize(16, b'x');
        let s = Snapshot::new(vec![Region {
            start: 0x100,
            data: RegionData::Vec(v),
            name: "a".into(),
            writable: false,
        }]);
        assert_eq!(s.cstr(0x100, 64).as_deref(), Some("hello"));
        assert_eq!(s.cstr(0x106, 64), None);
    }
}
