//! Reading another address space: the `MemorySource` trait, `/proc/PID/maps`, and the local `Snapshot` the walker reads.

pub mod huge;
pub mod live;
pub mod maps;

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
/// Shared between walker threads (it is read-only once built).
#[derive(Default)]
pub struct Snapshot {
    regions: Vec<Region>,
    map: GranuleMap,
}

const GRANULE_BITS: u32 = 21;
const AMBIGUOUS: u32 = u32::MAX;

/// Address -> region in two array lookups: per 4 GiB (by the high address bits, a handful in practice) a table of
/// 2 MiB granules, each naming the one region that touches it, or `AMBIGUOUS` when several do.
#[derive(Default)]
struct GranuleMap {
    tops: Vec<(u64, Box<[u32]>)>,
}

impl GranuleMap {
    fn build(regions: &[Region]) -> GranuleMap {
        let mut m = GranuleMap::default();
        for (i, r) in regions.iter().enumerate() {
            if r.is_empty() {
                continue;
            }
            let (first, last) = (r.start >> GRANULE_BITS, (r.end() - 1) >> GRANULE_BITS);
            for g in first..=last {
                let hi = g >> (32 - GRANULE_BITS);
                let lo = (g & ((1 << (32 - GRANULE_BITS)) - 1)) as usize;
                let t = match m.tops.iter().position(|(h, _)| *h == hi) {
                    Some(t) => t,
                    None => {
                        m.tops
                            .push((hi, vec![0u32; 1 << (32 - GRANULE_BITS)].into_boxed_slice()));
                        m.tops.len() - 1
                    }
                };
                let slot = &mut m.tops[t].1[lo];
                *slot = if *slot == 0 { i as u32 + 1 } else { AMBIGUOUS };
            }
        }
        m
    }

    /// Region index + 1, 0 (none), or AMBIGUOUS.
    #[inline]
    fn get(&self, addr: u64) -> u32 {
        let hi = addr >> 32;
        for (h, t) in &self.tops {
            if *h == hi {
                return t[((addr >> GRANULE_BITS) & ((1 << (32 - GRANULE_BITS)) - 1)) as usize];
            }
        }
        0
    }
}

impl Snapshot {
    pub fn new(mut regions: Vec<Region>) -> Snapshot {
        regions.sort_by_key(|r| r.start);
        let map = GranuleMap::build(&regions);
        Snapshot { regions, map }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Give back to the kernel the memory of every region `keep` refuses (large, mapped regions only); returns the
    /// bytes released. Those regions read as zeros afterwards: only for a caller that has read all it needs from
    /// them. (The pages are not written through any reference: the kernel replaces them with zero pages.)
    pub fn release(&self, keep: impl Fn(&Region) -> bool) -> u64 {
        let mut total = 0;
        for r in &self.regions {
            if let RegionData::Mmap(m) = &r.data
                && !keep(r)
            {
                // SAFETY: the mapping is ours for as long as `self` lives; MADV_DONTNEED drops its private pages,
                // after which they read as zeros. No slice into it is held across this call.
                unsafe {
                    libc::madvise(
                        m.as_ptr() as *mut libc::c_void,
                        m.len(),
                        libc::MADV_DONTNEED,
                    );
                }
                total += m.len() as u64;
            }
        }
        total
    }

    /// Total bytes held.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len() as u64).sum()
    }

    /// Index of the region holding `addr`.
    #[inline]
    pub fn region_index(&self, addr: u64) -> Option<usize> {
        match self.map.get(addr) {
            0 => None,
            AMBIGUOUS => {
                let i = self.regions.partition_point(|r| r.start <= addr);
                (i > 0 && addr < self.regions[i - 1].end()).then(|| i - 1)
            }
            i => {
                let r = &self.regions[i as usize - 1];
                (addr >= r.start && addr < r.end()).then_some(i as usize - 1)
            }
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
    fn lookup_with_many_regions_per_granule_and_far_apart() {
        let mut regions = vec![];
        for k in 0..64u64 {
            regions.push(Region {
                start: 0x10000 + k * 0x2000,
                data: RegionData::Vec(vec![k as u8; 0x1000]),
                name: "r".into(),
                writable: true,
            });
        }
        regions.push(Region {
            start: 0x7fff_0000_0000,
            data: RegionData::Vec(vec![0xaa; 0x40_0000]),
            name: "big".into(),
            writable: true,
        });
        let s = Snapshot::new(regions);
        for k in 0..64u64 {
            assert_eq!(s.u8(0x10000 + k * 0x2000 + 5), Some(k as u8));
            assert_eq!(
                s.u8(0x10000 + k * 0x2000 + 0x1000),
                None,
                "gap after region {k}"
            );
        }
        assert_eq!(s.u8(0x7fff_0000_0000 + 0x3f_ffff), Some(0xaa));
        assert_eq!(s.u8(0x7fff_0000_0000 + 0x40_0000), None);
        assert_eq!(s.u8(0x1234_0000_0000), None);
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
