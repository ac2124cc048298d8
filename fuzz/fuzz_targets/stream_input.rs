//! Fuzz target: `wsgate::fuzz::stream_input` (see its documentation for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsgate::fuzz::stream_input(data));
