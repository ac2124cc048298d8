//! Fuzz target: `wsgate::fuzz::consumer_message` (see its documentation for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsgate::fuzz::consumer_message(data));
