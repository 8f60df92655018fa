//! `Record::decode` on arbitrary text, then decryption of its key with a fixed secret and ID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_core::{CertId, EncodingSecret, Record};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(record) = Record::decode(&text) {
        let id: CertId = "org1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            .parse()
            .expect("a valid ID");
        let _ = record.private_key(&id, &EncodingSecret::new("fuzz secret"));
        let _ = record.id(id.org());
    }
});
