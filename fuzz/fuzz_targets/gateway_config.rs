//! `GatewayConfig::from_json` on arbitrary text: errors, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = gateway_runtime::GatewayConfig::from_json(&text, Path::new("f"), Vec::new())
    {
        let _ = config.validate();
    }
});
