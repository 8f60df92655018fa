//! `Upload::parse` on arbitrary text at a fixed instant: it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = time::macros::datetime!(2030-01-01 0:00 UTC);
    let _ = tls_core::Upload::parse(&text, now);
});
