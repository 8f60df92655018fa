//! `ApiDefinition::from_json` on arbitrary text: errors, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = gateway_runtime::ApiDefinition::from_json(&text, Path::new("f"));
});
