//! The `brevvakt` command; everything lives in the library (see `cli`).
//!
//! jemalloc is the global allocator: events are allocated on the decode thread and freed
//! on the shard threads, a pattern glibc's malloc serves with lock contention. Measured
//! with the replay of a generated archive, A/B in the same run (README, Performance).

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    brevvakt::cli::main()
}
