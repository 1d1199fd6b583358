//! The global allocator of the musl builds (the static gateway binaries): dlmalloc, a pure-Rust port
//! of Doug Lea's malloc, behind one `std::sync::Mutex`.
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
//! fifth of the produce path's samples). `std::sync::Mutex` is a futex with an inline
//! compare-and-swap fast path, does not allocate, and the binary has few threads, so one lock is enough.
//!
//! Must not be used by the library (a library never picks its user's allocator) nor on glibc builds.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::{Mutex, MutexGuard};

/// dlmalloc behind one lock. The heap is only touched with the lock held.
pub struct Allocator {
    lock: Mutex<()>,
    heap: UnsafeCell<dlmalloc::Dlmalloc>,
}

// SAFETY: every access to `heap` happens while `lock` is held (see `with`).
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator {
            lock: Mutex::new(()),
            heap: UnsafeCell::new(dlmalloc::Dlmalloc::new()),
        }
    }

    /// Run `f` on the heap with the lock held. A poisoned lock is taken over: the build panics with
    /// abort, so no unwinding thread can have left the heap half-changed.
    fn with<R>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> R) -> R {
        let _guard: MutexGuard<'_, ()> = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the lock is held for the whole call, so this is the only reference to the heap.
        f(unsafe { &mut *self.heap.get() })
    }
}

// SAFETY: dlmalloc returns blocks of at least `size` bytes aligned to `align`, or null; the callers'
// contract (layout of the block on free/realloc) is passed through unchanged.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|h| unsafe { h.malloc(layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.with(|h| unsafe { h.calloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.with(|h| unsafe { h.free(ptr, layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.with(|h| unsafe { h.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}
