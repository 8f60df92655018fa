//! `CertId: FromStr` on arbitrary text; when it parses, Display then FromStr is the identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_core::CertId;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = text.parse::<CertId>() {
        let shown = id.to_string();
        assert_eq!(shown, text, "Display gives back the parsed text");
        let again: CertId = shown.parse().expect("a displayed ID parses");
        assert_eq!(again, id, "Display then FromStr is the identity");
    }
});
