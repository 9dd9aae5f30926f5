//! Fuzzes the config parser: TOML text → validated settings or errors, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brevvakt_fuzz::parse_config(data));
