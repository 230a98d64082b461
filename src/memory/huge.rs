//! Big memory: a global allocator that asks for transparent huge pages for big blocks, and `Column`, a
//! fixed-capacity array reserved up front and faulted in only as far as it is written.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks at least this big are the allocator's own mappings (with huge pages and recycling).
const MIN: usize = 4 << 20;
const HUGE: usize = 2 << 20;
const PAGE: usize = 4096;

/// The global allocator of the `pymemspy` binary: the system allocator for small blocks; blocks of 4 MiB or more
/// are anonymous mappings of its own, 2 MiB aligned and marked `MADV_HUGEPAGE`, and when freed they are kept
/// (up to `KEEP` bytes) for the next big request instead of being unmapped.
///
/// Why: the graph and dominator passes allocate and free several arrays of one value per object (20–40 MB each at
/// 5 million objects) one after another. Fresh anonymous memory costs a page fault and the kernel zeroing the page
/// at first touch, which in the virtual machines this runs on took as long as the heap walk itself; a block that
/// was touched before costs neither, and huge pages cut the faults of fresh ones 512-fold.
pub struct HugePages;

/// Freed big blocks kept for reuse: (mapping start, mapping length), at most `SLOTS`.
struct Cache {
    blocks: [(usize, usize); SLOTS],
    count: usize,
    bytes: usize,
}

const SLOTS: usize = 32;
const KEEP: usize = 2 << 30;

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    blocks: [(0, 0); SLOTS],
    count: 0,
    bytes: 0,
});

/// Set once `HugePages` serves a big request, i.e. when it is the global allocator: only then is a freed block
/// worth keeping (a dropped `Column` is otherwise unmapped at once).
static RECYCLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Bytes of big blocks mapped fresh, and reused from the cache (for the log).
static FRESH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static REUSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// (bytes of big blocks mapped fresh, bytes served from freed blocks) so far.
pub fn stats() -> (usize, usize) {
    (
        FRESH.load(std::sync::atomic::Ordering::Relaxed),
        REUSED.load(std::sync::atomic::Ordering::Relaxed),
    )
}

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Mark a range for transparent huge pages (a hint only).
fn advise(p: *mut u8, size: usize) {
    let start = (p as usize).next_multiple_of(PAGE);
    let end = (p as usize + size) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside a mapping we own; madvise only sets a hint and never changes contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Whether a block of this layout is one of ours (decided by the layout alone, so that `dealloc` agrees).
#[inline]
fn ours(layout: &Layout) -> bool {
    layout.size() >= MIN && layout.align() <= PAGE
}

/// A mapping of `len` bytes (a multiple of `HUGE`) starting on a huge-page boundary, or null.
fn map(len: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; the parts outside the aligned window are unmapped again.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let p = p as usize;
        let start = p.next_multiple_of(HUGE);
        if start > p {
            libc::munmap(p as *mut libc::c_void, start - p);
        }
        let tail = start + len;
        if p + len + HUGE > tail {
            libc::munmap(tail as *mut libc::c_void, p + len + HUGE - tail);
        }
        advise(start as *mut u8, len);
        start as *mut u8
    }
}

/// A big block: its mapping starts one page before the returned pointer, where the mapping's length is kept.
/// The second value says whether the block was used before (its bytes are not zero).
fn big_alloc(size: usize) -> (*mut u8, bool) {
    RECYCLE.store(true, std::sync::atomic::Ordering::Relaxed);
    let need = (size + PAGE).next_multiple_of(HUGE);
    let reused = {
        let mut c = cache();
        // the smallest kept block that fits, if not wastefully big
        let best = (0..c.count)
            .filter(|&i| c.blocks[i].1 >= need && c.blocks[i].1 <= need.saturating_mul(2))
            .min_by_key(|&i| c.blocks[i].1);
        best.map(|i| {
            let b = c.blocks[i];
            let last = c.count - 1;
            c.blocks[i] = c.blocks[last];
            c.count -= 1;
            c.bytes -= b.1;
            b
        })
    };
    let (start, len, used) = match reused {
        Some((start, len)) => {
            REUSED.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            (start as *mut u8, len, true)
        }
        None => {
            FRESH.fetch_add(need, std::sync::atomic::Ordering::Relaxed);
            let p = map(need);
            if p.is_null() {
                return (p, false);
            }
            (p, need, false)
        }
    };
    // SAFETY: the first page of the mapping is ours and holds the header.
    unsafe {
        (start as *mut usize).write(len);
        (start.add(PAGE), used)
    }
}

/// Give a big block back: kept for reuse, or unmapped when the cache is full.
///
/// # Safety
/// `p` came from `big_alloc` and is not used afterwards.
unsafe fn big_free(p: *mut u8) {
    // SAFETY: per the contract, the header page precedes `p`.
    let (start, len) = unsafe {
        let start = p.sub(PAGE);
        (start as usize, (start as *const usize).read())
    };
    let evict = {
        let mut c = cache();
        // full: make room by dropping the smallest kept block, if this one is bigger
        if c.count == SLOTS {
            let smallest = (0..c.count).min_by_key(|&i| c.blocks[i].1);
            if let Some(i) = smallest.filter(|&i| c.blocks[i].1 < len) {
                let b = c.blocks[i];
                let last = c.count - 1;
                c.blocks[i] = c.blocks[last];
                c.count -= 1;
                c.bytes -= b.1;
                // SAFETY: a kept block belongs to the cache alone; unmapping it whole.
                unsafe {
                    libc::munmap(b.0 as *mut libc::c_void, b.1);
                }
            }
        }
        if RECYCLE.load(std::sync::atomic::Ordering::Relaxed)
            && c.count < SLOTS
            && c.bytes + len <= KEEP
        {
            let i = c.count;
            c.blocks[i] = (start, len);
            c.count += 1;
            c.bytes += len;
            None
        } else {
            Some((start, len))
        }
    };
    if let Some((start, len)) = evict {
        // SAFETY: unmapping a mapping made by `map`, no longer referenced.
        unsafe {
            libc::munmap(start as *mut libc::c_void, len);
        }
    }
}

// SAFETY: small blocks are the system allocator's; big ones are whole private mappings handed out to one owner
// at a time (the cache's lock serialises taking and returning them), aligned to a page (`ours` requires no more).
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ours(&layout) {
            return big_alloc(layout.size()).0;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ours(&layout) {
            let (p, used) = big_alloc(layout.size());
            if used && !p.is_null() {
                // SAFETY: `p` points to at least `layout.size()` writable bytes.
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
            }
            return p;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if ours(&layout) {
            // SAFETY: a block of this layout came from `big_alloc`.
            return unsafe { big_free(p) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` with the old alignment is a valid layout (the caller's guarantee).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (ours(&layout), ours(&new)) {
            (false, false) => {
                // SAFETY: forwarded with the caller's guarantees.
                unsafe { System.realloc(p, layout, new_size) }
            }
            (true, true) => {
                // SAFETY: `p` came from `big_alloc`; its header holds the mapping's length.
                let len = unsafe { (p.sub(PAGE) as *const usize).read() };
                if new_size + PAGE <= len {
                    return p;
                }
                // grow by moving the pages, not the bytes
                let need = (new_size + PAGE).next_multiple_of(HUGE);
                // SAFETY: remapping our own whole mapping; on success the old address is no longer used.
                unsafe {
                    let q = libc::mremap(
                        p.sub(PAGE) as *mut libc::c_void,
                        len,
                        need,
                        libc::MREMAP_MAYMOVE,
                    );
                    if q == libc::MAP_FAILED {
                        return std::ptr::null_mut();
                    }
                    let q = q as *mut u8;
                    advise(q, need);
                    (q as *mut usize).write(need);
                    q.add(PAGE)
                }
            }
            _ => {
                // between the system allocator and ours: allocate, copy, free
                // SAFETY: `new` is a valid layout; both blocks hold at least the bytes copied.
                unsafe {
                    let q = self.alloc(new);
                    if !q.is_null() {
                        std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                    q
                }
            }
        }
    }
}

/// An array of plain values in an anonymous mapping reserved for `cap` elements (`MAP_NORESERVE`: address space
/// only) and zero-filled by the kernel page by page as it is first written. Several threads may fill disjoint
/// slots through a `ColumnWriter`; `set_len` then exposes the first `len` as a slice. Used for the graph's
/// per-node and per-edge arrays, whose final sizes are known only at the end of a parallel walk: no growth, no
/// copying, and nothing is faulted in beyond what is written.
pub struct Column<T> {
    ptr: *mut T,
    cap: usize,
    len: usize,
}

// SAFETY: a Column owns its mapping like a Vec owns its buffer.
unsafe impl<T: Send> Send for Column<T> {}
// SAFETY: shared access is read-only through `Deref`.
unsafe impl<T: Sync> Sync for Column<T> {}

impl<T: Copy> Column<T> {
    /// An empty column that can hold nothing.
    pub fn empty() -> Column<T> {
        Column {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            cap: 0,
            len: 0,
        }
    }

    /// Reserve room for `cap` values; every slot reads as all-zero bytes until written (`T` must be valid so).
    pub fn reserve(cap: usize) -> std::io::Result<Column<T>> {
        let bytes = cap
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| std::io::Error::other("column too large"))?;
        if bytes == 0 {
            return Ok(Column::empty());
        }
        // a big block of its own, always fresh (zero-filled): a header page, then the slots
        let len = (bytes + PAGE).next_multiple_of(HUGE);
        let start = map(len);
        if start.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the first page of the new mapping holds the header.
        let p = unsafe {
            (start as *mut usize).write(len);
            start.add(PAGE)
        };
        Ok(Column {
            ptr: p as *mut T,
            cap,
            len: 0,
        })
    }

    /// A column of `len` copies of `v`.
    pub fn filled(len: usize, v: T) -> std::io::Result<Column<T>> {
        let mut c = Column::reserve(len)?;
        c.len = len;
        c.fill(v);
        Ok(c)
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Expose the first `len` slots (written or still zero).
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.cap,
            "column length {len} beyond its capacity {}",
            self.cap
        );
        self.len = len;
    }

    /// A handle through which threads write disjoint slots.
    pub fn writer(&mut self) -> ColumnWriter<T> {
        ColumnWriter {
            ptr: self.ptr,
            cap: self.cap,
        }
    }
}

impl<T> Drop for Column<T> {
    /// The part written (the first `len` slots) is kept for the allocator's next big request, already faulted
    /// in; the rest of the reservation is unmapped.
    fn drop(&mut self) {
        if self.cap == 0 {
            return;
        }
        // SAFETY: `ptr` came from `reserve`: its mapping starts one page before and the header holds its length;
        // nothing refers to the slots once the column is dropped.
        unsafe {
            let start = (self.ptr as *mut u8).sub(PAGE);
            let len = (start as *const usize).read();
            let used = (self.len * std::mem::size_of::<T>() + PAGE)
                .next_multiple_of(HUGE)
                .min(len);
            // too small for any big request: not worth keeping
            if used < (MIN + PAGE).next_multiple_of(HUGE) {
                libc::munmap(start as *mut libc::c_void, len);
                return;
            }
            if used < len {
                libc::munmap(start.add(used) as *mut libc::c_void, len - used);
            }
            (start as *mut usize).write(used);
            big_free(start.add(PAGE));
        }
    }
}

impl<T> std::ops::Deref for Column<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` slots lie in the mapping and hold valid (written or zero) values.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> std::ops::DerefMut for Column<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Writes into a `Column` from several threads at once; each slot must be written by one thread only, and the
/// column must outlive the writer (the borrow checker does not see this: the owner keeps the column alive and
/// untouched until every writing thread has been joined).
#[derive(Clone, Copy)]
pub struct ColumnWriter<T> {
    ptr: *mut T,
    cap: usize,
}

// SAFETY: writers only write disjoint slots (the caller's contract) of a mapping that outlives them.
unsafe impl<T: Send> Send for ColumnWriter<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for ColumnWriter<T> {}

impl<T: Copy> ColumnWriter<T> {
    /// A writer into a slice (the same contract: disjoint slots, and the slice outlives the writer's use).
    pub fn for_slice(s: &mut [T]) -> ColumnWriter<T> {
        ColumnWriter {
            ptr: s.as_mut_ptr(),
            cap: s.len(),
        }
    }

    /// Read one slot.
    ///
    /// # Safety
    /// No other thread writes slot `i` meanwhile, and the column is still alive.
    #[inline]
    pub unsafe fn get(&self, i: usize) -> T {
        assert!(i < self.cap, "column read beyond its capacity");
        // SAFETY: in bounds (checked above); no concurrent writer per the caller's contract.
        unsafe { self.ptr.add(i).read() }
    }

    /// Write one slot.
    ///
    /// # Safety
    /// No other thread reads or writes slot `i` meanwhile, and the column is still alive.
    #[inline]
    pub unsafe fn set(&self, i: usize, v: T) {
        assert!(i < self.cap, "column write beyond its capacity");
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        unsafe { self.ptr.add(i).write(v) }
    }

    /// Copy `src` into slots `at..at + src.len()`.
    ///
    /// # Safety
    /// No other thread reads or writes those slots meanwhile, and the column is still alive.
    #[inline]
    pub unsafe fn put(&self, at: usize, src: &[T]) {
        assert!(
            at.checked_add(src.len()).is_some_and(|e| e <= self.cap),
            "column write beyond its capacity"
        );
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) }
    }
}
