//! A live process as a memory source: `process_vm_readv` in large chunks, and bulk copies of its mappings.

use super::{MapEntry, MemoryError, MemorySource, Region, RegionData, parse_maps};
use std::io;

/// Reads another process's memory with `process_vm_readv`. Never writes.
pub struct LiveProcess {
    pub pid: i32,
}

const CHUNK: usize = 4 << 20;

impl LiveProcess {
    pub fn new(pid: i32) -> LiveProcess {
        LiveProcess { pid }
    }

    /// The current `/proc/PID/maps`.
    pub fn maps(&self) -> io::Result<Vec<MapEntry>> {
        Ok(parse_maps(&std::fs::read_to_string(format!(
            "/proc/{}/maps",
            self.pid
        ))?))
    }

    fn readv(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: the local iovec covers exactly `buf`, which we borrow mutably; the remote side is only read.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Copy `buf.len()` bytes from `addr` in large chunks; unreadable pages are left as they are (zero).
    /// Returns the number of bytes actually read, or the first error if nothing at all could be read.
    pub fn copy_into(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0usize;
        let mut got = 0usize;
        let mut first_err = None;
        while done < buf.len() {
            let n = (buf.len() - done).min(CHUNK);
            match self.readv(addr + done as u64, &mut buf[done..done + n]) {
                Ok(0) => {
                    done = next_page(addr, done, buf.len());
                }
                Ok(k) => {
                    done += k;
                    got += k;
                }
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ESRCH) | Some(libc::EPERM) | Some(libc::EACCES)
                    ) {
                        return Err(e);
                    }
                    first_err.get_or_insert(e);
                    done = next_page(addr, done, buf.len());
                }
            }
        }
        match first_err {
            Some(e) if got == 0 => Err(e),
            _ => Ok(got),
        }
    }
}

impl LiveProcess {
    /// Write into the target. Used only for features the user explicitly asks for (`--start-tracemalloc`);
    /// everything else in pymemspy is read-only.
    pub fn write(&self, addr: u64, data: &[u8]) -> io::Result<()> {
        let local = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: the local iovec covers exactly `data`, which is only read.
        let n = unsafe { libc::process_vm_writev(self.pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else if (n as usize) < data.len() {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
        } else {
            Ok(())
        }
    }
}

fn next_page(addr: u64, done: usize, len: usize) -> usize {
    let cur = addr + done as u64;
    let next = (cur & !0xfff) + 0x1000;
    ((next - addr) as usize).min(len)
}

impl MemorySource for LiveProcess {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0;
        while done < buf.len() {
            match self.readv(addr + done as u64, &mut buf[done..]) {
                Ok(0) => {
                    return Err(MemoryError::Read {
                        pid: self.pid,
                        addr,
                        len: buf.len(),
                        source: io::Error::from(io::ErrorKind::UnexpectedEof),
                    });
                }
                Ok(k) => done += k,
                Err(source) => {
                    return Err(MemoryError::Read {
                        pid: self.pid,
                        addr,
                        len: buf.len(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
    fn read_lossy(&self, addr: u64, buf: &mut [u8]) -> usize {
        self.copy_into(addr, buf).unwrap_or(0)
    }
}

/// Which mappings a heap snapshot copies: readable, not executable code, not kernel or device mappings.
pub fn wanted(m: &MapEntry) -> bool {
    m.read && !m.exec && !m.is_special() && !m.is_empty()
}

/// Allocate a buffer for a region: large ones are anonymous mappings backed by transparent huge pages (fewer
/// faults, and far fewer TLB misses while walking), not yet faulted in; see `prefault`.
pub fn alloc_buffer(len: usize) -> io::Result<RegionData> {
    if len >= (1 << 20) {
        let m = memmap2::MmapOptions::new().len(len).map_anon()?;
        // SAFETY: madvise on a mapping we own, covering exactly its length; a hint only.
        unsafe {
            libc::madvise(m.as_ptr() as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        Ok(RegionData::Mmap(m))
    } else {
        Ok(RegionData::Vec(vec![0u8; len]))
    }
}

/// Fault in (the kernel zeroes) every page of the given buffers, spreading the work over `workers` threads in
/// chunks, so that copying into them later, while the target is stopped, pays no page faults.
pub fn prefault(buffers: &mut [&mut RegionData], workers: usize) {
    const STEP: usize = 32 << 20;
    let mut chunks: Vec<(usize, usize)> = vec![];
    for b in buffers.iter_mut() {
        if let RegionData::Mmap(m) = b {
            let (p, len) = (m.as_mut_ptr() as usize, m.len());
            let mut off = 0;
            while off < len {
                chunks.push((p + off, STEP.min(len - off)));
                off += STEP;
            }
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            let (chunks, next) = (&chunks, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(p, len)) = chunks.get(i) else {
                        break;
                    };
                    // SAFETY: (p, len) lies inside a mapping we own and nobody else touches until the scope ends.
                    unsafe {
                        if libc::madvise(
                            p as *mut libc::c_void,
                            len,
                            23, /* MADV_POPULATE_WRITE */
                        ) != 0
                        {
                            // older kernels: touch every page
                            for off in (0..len).step_by(4096) {
                                std::ptr::write_volatile((p + off) as *mut u8, 0);
                            }
                        }
                    }
                }
            });
        }
    });
}

/// Copy one mapping into `data` (already sized), returning the region.
pub fn copy_mapping(p: &LiveProcess, m: &MapEntry, mut data: RegionData) -> io::Result<Region> {
    p.copy_into(m.start, data.as_mut_slice())?;
    Ok(Region {
        start: m.start,
        data,
        name: if m.path.is_empty() {
            "[anon]".into()
        } else {
            m.path.clone()
        },
        writable: m.write,
    })
}
