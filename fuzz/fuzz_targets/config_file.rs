//! Fuzz target: `wsgate::fuzz::config_file` (see its documentation for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsgate::fuzz::config_file(data));
