//! Tyk's legacy key format: a record whose `ENCRYPTED PRIVATE KEY` block carries a fuzzed IV
//! (in `DEK-Info`) and ciphertext, decrypted with a fixed secret. Padding and DER errors must be
//! errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_core::{CertId, EncodingSecret, Record};

/// A certificate the record starts with (the shared vectors' `root-ca.pem`).
const CERT: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBvzCCAUagAwIBAgIUR3rtT+AuTAdwWB9wKWuU1gFQY08wCgYIKoZIzj0EAwIw\n\
LzEUMBIGA1UECgwLVmVjdG9ycyBJbmMxFzAVBgNVBAMMDlZlY3RvciBSb290IENB\n\
MB4XDTI2MTEyODA0NTczMloXDTM2MTEyNjA0NTczMlowLzEUMBIGA1UECgwLVmVj\n\
dG9ycyBJbmMxFzAVBgNVBAMMDlZlY3RvciBSb290IENBMHYwEAYHKoZIzj0CAQYF\n\
K4EEACIDYgAEHdA37ils/o4ShHusk7dzT9Cw9vSIwi9l8iH6kcVM44zN0TC2Sx4j\n\
a2TUz15OuoOzDXYfkEEP7uPd43DIdj6h33/juBm1YHtv+Eqrwi5TV+PsYMoQbICa\n\
vBGAwScpyq/yoyMwITAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBhjAK\n\
BggqhkjOPQQDAgNnADBkAjBACzEL0FTYSJZGHa4vOZZIU2nwp8ocCWwsacVQ3hPX\n\
P5Mz01ilODniwk/xQwGv1GcCMGPGHmjOiMqL4VGQn/ImvD7+T1gpcdnvImys2txV\n\
PvmvNhU0Ju0RtpNscW1HPIN0hA==\n\
-----END CERTIFICATE-----\n\
";

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (iv, ciphertext) = data.split_at(16);
    let iv_hex: String = iv.iter().map(|b| format!("{b:02x}")).collect();
    let body = base64(ciphertext);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).expect("base64 is ASCII"))
        .collect();
    let text = format!(
        "{CERT}\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
         DEK-Info: AES-256-CBC,{iv_hex}\n\n{}\n-----END ENCRYPTED PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let id: CertId = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        .parse()
        .expect("a valid ID");
    if let Ok(record) = Record::decode(&text) {
        let _ = record.private_key(&id, &EncodingSecret::new("vector-secret-7f3a"));
    }
});
