//! The global allocator of the musl builds (the static gateway binaries): dlmalloc, a pure-Rust port
//! of Doug Lea's malloc, behind one spin lock.
//!
//! Why not musl's own malloc (mallocng): it is built for size, not speed, and every record on the
//! hot path allocates and frees a few small buffers (the input line, the JSON tree, the encoded
//! value); `produce` of 200,000 SensorData lines spent 1.75x glibc's user time on it. dlmalloc keeps
//! freed chunks in size bins and gives memory back to the kernel only past a 2 MiB trim threshold,
//! as glibc's malloc (a dlmalloc descendant) does. It is pure Rust (its `libc` dependency is
//! declarations only), so no C allocator (mimalloc, jemalloc) enters the default build.
//!
//! Why not dlmalloc's own `GlobalDlmalloc`: it locks a `pthread_mutex_t`, and musl's
//! `pthread_mutex_lock`/`unlock` are out-of-line calls with type checks on every allocation (about a
//! fifth of the produce path's samples). A `std::sync::Mutex` still cost 14 % (an atomic swap to
//! lock, another to unlock, a poison check). The lock here is one atomic swap to take and a plain
//! release store to give back; a waiter spins briefly, then yields its core. The binary has a few
//! threads and the critical sections are short (one dlmalloc call), so waiting is rare and brief.
//!
//! Blocks of 256 KiB or more (fetch frames, produce batches) bypass dlmalloc and get their own
//! `mmap`, given back with `munmap` when freed, as C dlmalloc does past its mmap threshold (the Rust
//! port has none: a big buffer freed in the middle of a segment stayed resident, and `consume`'s peak
//! RSS went from 6.7 to 10 MiB). A fresh mapping costs a page fault per 4 KiB touched, though, and
//! `consume` maps and unmaps a fetch frame's buffer for every fetch (growing 256 KiB → 1 MiB): on
//! 1,000,000 records, 71,600 minor faults against glibc's 9,800, and twice glibc's system time. So
//! the last [`KEPT_MAPS`] freed mappings (at most [`KEPT_BYTES`] together) are kept ([`Maps`]) and
//! handed out again to the next big block they fit, faulted in already; a mapping shrunk by
//! `realloc` keeps its pages for the next growth. Then 16,700 faults, system time 0.07 s instead of
//! 0.16 s, peak RSS 9.5 MiB instead of 7.4 (glibc's: 11.2).
//!
//! Must not be used by the library (a library never picks its user's allocator) nor on glibc builds.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// A free of at least this many bytes (a fetch frame, a batch, a spool buffer: rare) is followed by a
/// trim, so that memory freed in bulk goes back to the kernel instead of waiting for dlmalloc's fixed
/// 2 MiB trim threshold. Small frees (the per-record ones) never trim.
const TRIM_AFTER_FREE: usize = 64 * 1024;
/// What a trim leaves at the top of the heap for the next allocations.
const TRIM_PAD: usize = 256 * 1024;

/// Blocks at least this big are mapped on their own (see the module doc).
const MMAP_THRESHOLD: usize = 256 * 1024;
/// The largest alignment a fresh mapping guarantees (a page).
const PAGE: usize = 4096;

/// Freed mappings kept for reuse (see the module doc), and the bytes they may hold together: four
/// of `consume`'s largest fetch buffers (1 MiB), so a peak RSS rises by at most that. Two were too
/// few: a third buffer freed while two were kept was unmapped, and 37,500 faults remained.
const KEPT_MAPS: usize = 4;
const KEPT_BYTES: usize = 4 * 1024 * 1024;
/// Mappings larger than the block they hold (a kept one reused, or one shrunk in place) that are
/// remembered with their length; past that many, the surplus pages of a new one are unmapped.
const OVERSIZE: usize = 8;

/// Whether a block of this layout is (or is to be) a mapping of its own.
fn mapped(size: usize, align: usize) -> bool {
    size >= MMAP_THRESHOLD && align <= PAGE
}

/// A fresh zeroed private mapping of `size` bytes, or null.
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

/// `size` rounded up to whole pages: the length of its mapping.
fn pages(size: usize) -> usize {
    size.div_ceil(PAGE) * PAGE
}

/// A mapping: its address and length (a free slot has address 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Map {
    at: usize,
    len: usize,
}

impl Map {
    /// Give the mapping back to the kernel.
    unsafe fn unmap(self) {
        if self.at != 0 && self.len != 0 {
            // SAFETY: the caller owns these whole pages of a mapping `map` made.
            unsafe { libc::munmap(self.at as *mut libc::c_void, self.len) };
        }
    }
}

/// The freed mappings kept for reuse and the oversize mappings in use: bookkeeping only, no system
/// calls (the caller makes the one a method returns, after letting go of the lock).
#[derive(Debug, Default)]
struct Maps {
    kept: [Map; KEPT_MAPS],
    oversize: [Map; OVERSIZE],
}

impl Maps {
    const fn new() -> Maps {
        Maps {
            kept: [Map { at: 0, len: 0 }; KEPT_MAPS],
            oversize: [Map { at: 0, len: 0 }; OVERSIZE],
        }
    }

    /// The length of the mapping at `at` that holds a block of `size` bytes.
    fn len_of(&self, at: usize, size: usize) -> usize {
        self.oversize
            .iter()
            .find(|m| m.at == at)
            .map_or(pages(size), |m| m.len)
    }

    /// Note that the mapping `m` holds a block of `size` bytes. Returns the pages to unmap: its
    /// surplus when it is oversize and no slot is free to remember it.
    fn hold(&mut self, m: Map, size: usize) -> Map {
        self.forget(m.at);
        let need = pages(size);
        if m.len == need {
            return Map::default();
        }
        match self.oversize.iter_mut().find(|o| o.at == 0) {
            Some(slot) => {
                *slot = m;
                Map::default()
            }
            None => Map {
                at: m.at + need,
                len: m.len - need,
            },
        }
    }

    fn forget(&mut self, at: usize) {
        if let Some(o) = self.oversize.iter_mut().find(|o| o.at == at) {
            *o = Map::default();
        }
    }

    /// A kept mapping for a block of `size` bytes (the smallest that fits), and the pages to unmap.
    fn take(&mut self, size: usize) -> Option<(usize, Map)> {
        let need = pages(size);
        let slot = self
            .kept
            .iter_mut()
            .filter(|m| m.at != 0 && m.len >= need)
            .min_by_key(|m| m.len)?;
        let m = std::mem::take(slot);
        Some((m.at, self.hold(m, size)))
    }

    /// The block of `size` bytes at `at` was freed: keep its mapping if there is room, else return
    /// it to be unmapped.
    fn give(&mut self, at: usize, size: usize) -> Map {
        let m = Map {
            at,
            len: self.len_of(at, size),
        };
        self.forget(at);
        let kept: usize = self.kept.iter().map(|k| k.len).sum();
        match self.kept.iter_mut().find(|k| k.at == 0) {
            Some(slot) if kept + m.len <= KEPT_BYTES => {
                *slot = m;
                Map::default()
            }
            _ => m,
        }
    }
}

/// dlmalloc behind one lock, and the mapped blocks' bookkeeping behind another. The heap and the
/// bookkeeping are only touched with their lock held.
pub struct Allocator {
    locked: AtomicBool,
    heap: UnsafeCell<dlmalloc::Dlmalloc>,
    maps_locked: AtomicBool,
    maps: UnsafeCell<Maps>,
}

/// Holds the lock; gives it back when dropped.
struct Guard<'a>(&'a AtomicBool);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

// SAFETY: every access to `heap` happens while `lock` is held (see `with`).
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator {
            locked: AtomicBool::new(false),
            heap: UnsafeCell::new(dlmalloc::Dlmalloc::new()),
            maps_locked: AtomicBool::new(false),
            maps: UnsafeCell::new(Maps::new()),
        }
    }

    /// Take a lock: spin a little (the holder is inside one dlmalloc call), then yield the core
    /// so that a holder that was preempted can finish.
    fn lock(locked: &AtomicBool) -> Guard<'_> {
        let mut spins = 0u32;
        while locked.swap(true, Ordering::Acquire) {
            while locked.load(Ordering::Relaxed) {
                if spins < 64 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        Guard(locked)
    }

    /// Run `f` on the heap with the lock held.
    fn with<R>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> R) -> R {
        let _guard = Self::lock(&self.locked);
        // SAFETY: the lock is held for the whole call, so this is the only reference to the heap.
        f(unsafe { &mut *self.heap.get() })
    }

    /// Run `f` on the mapped blocks' bookkeeping with its lock held.
    fn with_maps<R>(&self, f: impl FnOnce(&mut Maps) -> R) -> R {
        let _guard = Self::lock(&self.maps_locked);
        // SAFETY: the lock is held for the whole call, so this is the only reference to the maps.
        f(unsafe { &mut *self.maps.get() })
    }

    /// A mapped block of `size` bytes: a kept mapping if one fits, else a fresh one.
    unsafe fn map_block(&self, size: usize) -> *mut u8 {
        match self.with_maps(|m| m.take(size)) {
            Some((at, surplus)) => {
                unsafe { surplus.unmap() };
                at as *mut u8
            }
            None => unsafe { map(size) },
        }
    }

    /// The mapped block of `size` bytes at `p` grown or shrunk to `new_size` (both mapped): in
    /// place when its mapping is long enough, else moved by `mremap`.
    unsafe fn remap_block(&self, p: *mut u8, size: usize, new_size: usize) -> *mut u8 {
        let at = p as usize;
        let (len, surplus) = self.with_maps(|m| {
            let len = m.len_of(at, size);
            if pages(new_size) <= len {
                (len, m.hold(Map { at, len }, new_size))
            } else {
                m.forget(at);
                (len, Map::default())
            }
        });
        if pages(new_size) <= len {
            unsafe { surplus.unmap() };
            return p;
        }
        // SAFETY: `p` is a whole mapping of `len` bytes, no longer in the bookkeeping.
        let q = unsafe { libc::mremap(p.cast(), len, new_size, libc::MREMAP_MAYMOVE) };
        if q == libc::MAP_FAILED {
            // The block stays where it was, as long as it was.
            let surplus = self.with_maps(|m| m.hold(Map { at, len }, size));
            unsafe { surplus.unmap() };
            std::ptr::null_mut()
        } else {
            q.cast()
        }
    }
}

// SAFETY: dlmalloc returns blocks of at least `size` bytes aligned to `align`, or null; the callers'
// contract (layout of the block on free/realloc) is passed through unchanged.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return unsafe { self.map_block(layout.size()) };
        }
        self.with(|h| unsafe { h.malloc(layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            // Anonymous mappings are zeroed by the kernel.
            return unsafe { map(layout.size()) };
        }
        self.with(|h| unsafe { h.calloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout.size(), layout.align()) {
            let gone = self.with_maps(|m| m.give(ptr as usize, layout.size()));
            // SAFETY: the block's whole mapping, unless it was kept.
            unsafe { gone.unmap() };
            return;
        }
        self.with(|h| unsafe {
            h.free(ptr, layout.size(), layout.align());
            if layout.size() >= TRIM_AFTER_FREE {
                h.trim(TRIM_PAD);
            }
        })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (mapped(layout.size(), align), mapped(new_size, align)) {
            (false, false) => {
                self.with(|h| unsafe { h.realloc(ptr, layout.size(), align, new_size) })
            }
            (true, true) => unsafe { self.remap_block(ptr, layout.size(), new_size) },
            // Crossing the threshold: a new block of the other kind, the contents copied over.
            _ => unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, align);
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! Run on a musl target: `cargo test --target x86_64-unknown-linux-musl --bin avro-edge gateway_alloc`.
    use super::*;

    /// Fill `n` bytes at `p` with a pattern derived from `seed`.
    unsafe fn fill(p: *mut u8, n: usize, seed: u8) {
        for i in 0..n {
            unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
        }
    }

    unsafe fn holds(p: *const u8, n: usize, seed: u8) -> bool {
        (0..n).all(|i| unsafe { p.add(i).read() } == seed.wrapping_add(i as u8))
    }

    #[test]
    fn small_and_mapped_blocks_keep_their_bytes_through_realloc_across_the_threshold() {
        let a = Allocator::new();
        // small → small, small → mapped, mapped → mapped (grow and shrink), mapped → small
        let steps = [
            64,
            4000,
            MMAP_THRESHOLD + 1,
            3 * MMAP_THRESHOLD,
            MMAP_THRESHOLD,
            1000,
        ];
        unsafe {
            let mut layout = Layout::from_size_align(16, 8).unwrap();
            let mut p = a.alloc(layout);
            assert!(!p.is_null());
            fill(p, 16, 7);
            let mut kept = 16;
            for &size in &steps {
                p = a.realloc(p, layout, size);
                assert!(!p.is_null(), "realloc to {size}");
                assert!(holds(p, kept.min(size), 7), "bytes kept at {size}");
                fill(p, size, 7);
                kept = size;
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            a.dealloc(p, layout);
        }
    }

    fn kept_bytes(a: &Allocator) -> usize {
        a.with_maps(|m| m.kept.iter().map(|k| k.len).sum())
    }

    #[test]
    fn freed_mappings_are_reused_shrunk_and_grown_in_place_and_kept_within_bounds() {
        let a = Allocator::new();
        let big = Layout::from_size_align(1 << 20, 8).unwrap();
        let small = Layout::from_size_align(MMAP_THRESHOLD + 100, 8).unwrap();
        unsafe {
            let p = a.alloc(big);
            fill(p, big.size(), 1);
            a.dealloc(p, big);
            assert_eq!(kept_bytes(&a), 1 << 20);
            // The kept 1 MiB mapping holds the next, smaller block, and its growth back to 1 MiB.
            let q = a.alloc(small);
            assert_eq!(q, p, "the kept mapping is reused");
            assert_eq!(kept_bytes(&a), 0);
            fill(q, small.size(), 2);
            let r = a.realloc(q, small, big.size());
            assert_eq!(r, q, "grown within its mapping");
            assert!(holds(r, small.size(), 2));
            // Past its mapping it moves, bytes kept.
            let huge = Layout::from_size_align(KEPT_BYTES + (1 << 20), 8).unwrap();
            fill(r, big.size(), 3);
            let s = a.realloc(r, big, huge.size());
            assert!(!s.is_null());
            assert!(holds(s, big.size(), 3));
            a.dealloc(s, huge);
            // Too big to keep: unmapped.
            assert_eq!(kept_bytes(&a), 0);
            // More frees than room: at most KEPT_BYTES kept, every block intact until freed.
            let blocks: Vec<*mut u8> = (0..KEPT_MAPS + 2).map(|_| a.alloc(big)).collect();
            for (i, &b) in blocks.iter().enumerate() {
                fill(b, big.size(), i as u8);
            }
            for (i, &b) in blocks.iter().enumerate() {
                assert!(holds(b, big.size(), i as u8));
                a.dealloc(b, big);
            }
            assert_eq!(kept_bytes(&a), KEPT_BYTES);
        }
    }

    #[test]
    fn blocks_shrunk_in_place_past_the_oversize_slots_stay_intact() {
        let a = Allocator::new();
        let big = Layout::from_size_align(1 << 20, 8).unwrap();
        let small = Layout::from_size_align(MMAP_THRESHOLD, 8).unwrap();
        unsafe {
            let blocks: Vec<*mut u8> = (0..OVERSIZE + 3)
                .map(|i| {
                    let p = a.alloc(big);
                    fill(p, big.size(), i as u8);
                    let q = a.realloc(p, big, small.size());
                    assert_eq!(q, p, "shrunk in place");
                    q
                })
                .collect();
            for (i, &b) in blocks.iter().enumerate() {
                assert!(holds(b, small.size(), i as u8));
                // Grown again: in place while its pages were remembered, else moved; bytes kept.
                let g = a.realloc(b, small, big.size());
                assert!(holds(g, small.size(), i as u8));
                fill(g, big.size(), 9);
                a.dealloc(g, big);
            }
            assert!(kept_bytes(&a) <= KEPT_BYTES);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_and_alignment_is_honoured() {
        let a = Allocator::new();
        for (size, align) in [
            (24, 8),
            (100, 64),
            (MMAP_THRESHOLD, 16),
            (MMAP_THRESHOLD, 8192),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size} bytes aligned to {align}");
                assert!((0..size).all(|i| p.add(i).read() == 0));
                a.dealloc(p, layout);
            }
        }
    }

    #[test]
    fn threads_allocating_at_once_get_distinct_intact_blocks() {
        let a = std::sync::Arc::new(Allocator::new());
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || unsafe {
                    let mut blocks = Vec::new();
                    for i in 0..2000usize {
                        let size = 1 + (i * 37 + t as usize * 11) % 700;
                        let layout = Layout::from_size_align(size, 8).unwrap();
                        let p = a.alloc(layout);
                        assert!(!p.is_null());
                        fill(p, size, t);
                        blocks.push((p as usize, layout));
                        if i % 3 == 0 {
                            let (q, l) = blocks.swap_remove(i % blocks.len());
                            assert!(holds(q as *const u8, l.size(), t));
                            a.dealloc(q as *mut u8, l);
                        }
                    }
                    for (q, l) in blocks {
                        assert!(holds(q as *const u8, l.size(), t));
                        a.dealloc(q as *mut u8, l);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
    }
}
