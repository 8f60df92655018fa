//! Helpers shared by the integration tests: the shared test vectors and their manifest (from
//! `certgate-test-support`), the vector bundles by key encoding, a small PEM reader and writer
//! written independently of tls-core's, scratch files, and the `openssl` command line.
#![allow(
    dead_code,
    reason = "each test crate includes this module and uses a different part of it"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tls_core::KeyEncoding;

pub(crate) use test_support::vectors::Vectors;

/// The vector bundles with a private key, one per key type and encoding:
/// (bundle file, the key's encoding).
pub(crate) const KEY_BUNDLES: [(&str, KeyEncoding); 5] = [
    ("leaf-p256-traditional.bundle.pem", KeyEncoding::Sec1),
    ("leaf-p384-pkcs8.bundle.pem", KeyEncoding::Pkcs8),
    ("leaf-rsa2048-traditional.bundle.pem", KeyEncoding::Pkcs1),
    ("leaf-rsa2048-pkcs8.bundle.pem", KeyEncoding::Pkcs8),
    ("leaf-ed25519-pkcs8.bundle.pem", KeyEncoding::Pkcs8),
];

/// One PEM block as read by [`pem_blocks`].
#[derive(Clone, Debug)]
pub(crate) struct PemBlock {
    /// The label of the BEGIN line.
    pub(crate) label: String,
    /// RFC 1423 headers, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The decoded body.
    pub(crate) der: Vec<u8>,
    /// The block's text as it appears in the input, from BEGIN to the end of the END line
    /// (including its line break, if any).
    pub(crate) text: String,
}

impl PemBlock {
    /// The value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The blocks of well-formed, line-based PEM text (panics otherwise: this is for test inputs).
pub(crate) fn pem_blocks(text: &str) -> Vec<PemBlock> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from_begin = &rest[start..];
        let begin_line_end = from_begin.find('\n').expect("BEGIN line ends");
        let label = from_begin["-----BEGIN ".len()..begin_line_end]
            .trim_end()
            .strip_suffix("-----")
            .expect("BEGIN line ends in -----")
            .to_owned();
        let end_marker = format!("-----END {label}-----");
        let end = from_begin
            .find(&end_marker)
            .expect("block has its END line");
        let mut block_end = end + end_marker.len();
        if from_begin[block_end..].starts_with("\r\n") {
            block_end += 2;
        } else if from_begin[block_end..].starts_with('\n') {
            block_end += 1;
        }
        let body = &from_begin[begin_line_end + 1..end];
        let mut headers = Vec::new();
        let mut payload = String::new();
        for line in body.lines().map(str::trim) {
            match line.split_once(": ") {
                Some((name, value)) if payload.is_empty() => {
                    headers.push((name.to_owned(), value.to_owned()));
                }
                _ => payload.push_str(line),
            }
        }
        let der = BASE64
            .decode(payload.as_bytes())
            .unwrap_or_else(|e| panic!("block {label}: bad base64: {e}"));
        blocks.push(PemBlock {
            label,
            headers,
            der,
            text: from_begin[..block_end].to_owned(),
        });
        rest = &from_begin[block_end..];
    }
    blocks
}

/// The labels of every BEGIN line of `text`, in order; works on broken PEM too.
pub(crate) fn pem_labels(text: &str) -> Vec<String> {
    text.split("-----BEGIN ")
        .skip(1)
        .map(|after| after.split("-----").next().unwrap_or_default().to_owned())
        .collect()
}

/// Position (from 1) of the first BEGIN line labelled `label`.
pub(crate) fn position_of(text: &str, label: &str) -> usize {
    pem_labels(text)
        .iter()
        .position(|l| l == label)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {label} block in the text"))
}

/// Positions (from 1) of every BEGIN line whose label ends in `suffix`.
pub(crate) fn positions_ending_with(text: &str, suffix: &str) -> Vec<usize> {
    pem_labels(text)
        .iter()
        .enumerate()
        .filter(|(_, l)| l.ends_with(suffix))
        .map(|(i, _)| i + 1)
        .collect()
}

/// A PEM block with 64-column base64, as OpenSSL and Go write it.
pub(crate) fn pem_encode(label: &str, headers: &[(&str, &str)], der: &[u8]) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\n"));
    }
    if !headers.is_empty() {
        out.push('\n');
    }
    let b64 = BASE64.encode(der);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes hex of either case, ignoring white space; panics on anything else.
pub(crate) fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| {
            (b as char)
                .to_digit(16)
                .unwrap_or_else(|| panic!("{:?} is not hex", b as char)) as u8
        })
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// A fresh, empty scratch folder for one test, under cargo's temporary folder for tests.
pub(crate) fn scratch_dir(test: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("tls-core-tests")
        .join(format!("{test}-{}-{n}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("clear scratch folder");
    }
    fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// Runs the `openssl` command line with `args` and returns its standard output; panics with its
/// standard error when it fails, and with a clear message when it is not installed.
pub(crate) fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need the `openssl` command line, which could not be run ({e}); \
                 install it (the CI script does)"
            )
        });
    assert!(
        output.status.success(),
        "openssl {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Writes `contents` to `dir/name` and returns the path as text, for `openssl` arguments.
pub(crate) fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_str().expect("scratch paths are UTF-8").to_owned()
}

/// `openssl`'s output as text.
pub(crate) fn openssl_text(args: &[&str]) -> String {
    String::from_utf8(openssl(args)).expect("openssl writes PEM as ASCII")
}
