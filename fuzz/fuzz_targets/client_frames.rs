//! Fuzz target: `wsgate::fuzz::client_frames` (see its documentation for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsgate::fuzz::client_frames(data));
