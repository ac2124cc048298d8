//! Fuzz target: `wsgate::fuzz::jwt` (see its documentation for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsgate::fuzz::jwt(data));
