//! Cache hints for the hot path.
//!
//! The pipeline hands every event from the core that decoded it to the stage's core and
//! then to a shard's, and a shard's mailbox states (tens of bytes each, for every
//! mailbox) do not stay in one core's cache. A thread that walks a batch asks for the
//! cache lines of the items a few places ahead, so they are loaded while it works on the
//! current one. Measured on the shard worker (interleaved A/B on the CLI, 581,100 lines,
//! 5,000 roster mailboxes): `Shard::apply`'s own `perf` samples fell from 264 to 94
//! (they were the first loads of each mailbox's state entry), CPU time −7 % by the medians.

/// How many items ahead of the one it works on a thread walking a batch prefetches: far
/// enough for a load from memory to arrive, near enough to stay in the cache.
pub const AHEAD: usize = 4;

/// Asks the core to load the cache lines of `x` (the first two at most). A hint only: it
/// reads nothing the program sees and changes no result.
#[inline]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p: *const i8 = (x as *const T).cast();
        // SAFETY: a prefetch cannot fault, whatever the address, and writes nothing; `p`
        // points into `x`, and `p + 64` is only computed (`wrapping_add`), never read.
        // `sse`, which the intrinsic needs, is part of every x86-64 target.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            if std::mem::size_of::<T>() > 64 {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}
