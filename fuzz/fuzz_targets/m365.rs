//! Fuzzes the `m365` decoder: lines through a fresh decoder, then the end of input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brevvakt_fuzz::decode_lines(brevvakt::decode::Format::M365, data));
