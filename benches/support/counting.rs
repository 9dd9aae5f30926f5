//! A global allocator for benchmarks that counts live heap bytes while [`COUNTING`] is
//! on (off during timed runs, so it costs one relaxed load per allocation then). It hands
//! every request to jemalloc, the allocator of the `brevvakt` binary, so timed runs
//! measure what the binary does (with the system allocator a replay was about a third
//! slower).
//! Included by the benches with `#[path = "support/counting.rs"] mod counting;`.

use std::alloc::{GlobalAlloc, Layout};

use tikv_jemallocator::Jemalloc as System;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Counts live heap bytes while [`COUNTING`] is on.
pub struct Counting;

pub static COUNTING: AtomicBool = AtomicBool::new(false);
pub static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        }
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;
