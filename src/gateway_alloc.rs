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
//! RSS went from 6.7 to 10 MiB).
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

/// dlmalloc behind one lock. The heap is only touched with the lock held.
pub struct Allocator {
    locked: AtomicBool,
    heap: UnsafeCell<dlmalloc::Dlmalloc>,
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
        }
    }

    /// Take the lock: spin a little (the holder is inside one dlmalloc call), then yield the core
    /// so that a holder that was preempted can finish.
    fn lock(&self) -> Guard<'_> {
        let mut spins = 0u32;
        while self.locked.swap(true, Ordering::Acquire) {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 64 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        Guard(&self.locked)
    }

    /// Run `f` on the heap with the lock held.
    fn with<R>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> R) -> R {
        let _guard = self.lock();
        // SAFETY: the lock is held for the whole call, so this is the only reference to the heap.
        f(unsafe { &mut *self.heap.get() })
    }
}

// SAFETY: dlmalloc returns blocks of at least `size` bytes aligned to `align`, or null; the callers'
// contract (layout of the block on free/realloc) is passed through unchanged.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return unsafe { map(layout.size()) };
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
            // SAFETY: the block is the whole mapping `alloc` made for this layout.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
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
            (true, true) => {
                // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `alloc`.
                let p = unsafe {
                    libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE)
                };
                if p == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    p.cast()
                }
            }
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
