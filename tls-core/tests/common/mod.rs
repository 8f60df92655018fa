//! Helpers shared by the integration tests: the shared test vectors and their manifest, a small
//! PEM reader and writer written independently of tls-core's, scratch files, and the `openssl`
//! command line.
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
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tls_core::{KeyEncoding, OrgId, Upload};

/// Where the shared vectors live unless `CERTGATE_VECTORS` says otherwise.
const DEFAULT_VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

/// The vectors' manifest (`manifest.json`).
#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    /// The instant at which every time-dependent expectation holds (RFC 3339).
    pub(crate) generated_at: String,
    /// The secret of the `*.tyk-stored.pem` records.
    pub(crate) encoding_secret: String,
    /// The cases.
    pub(crate) cases: Vec<Case>,
}

/// One case of the manifest; absent fields are not checked.
#[derive(Debug, Deserialize)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) files: Vec<String>,
    #[serde(default)]
    pub(crate) org_id: String,
    pub(crate) expect_id: Option<String>,
    pub(crate) fingerprint: Option<String>,
    pub(crate) spki_sha256_hex: Option<String>,
    #[serde(default)]
    pub(crate) expect_error: bool,
    pub(crate) decrypt_with: Option<String>,
    pub(crate) subject_cn: Option<String>,
    pub(crate) issuer_cn: Option<String>,
    pub(crate) dns_names: Option<Vec<String>>,
    pub(crate) is_ca: Option<bool>,
    pub(crate) not_before: Option<String>,
    pub(crate) not_after: Option<String>,
    pub(crate) has_private: Option<bool>,
    pub(crate) chain_len: Option<usize>,
    pub(crate) is_public_key: Option<bool>,
    pub(crate) key_kind: Option<String>,
    pub(crate) key_format: Option<String>,
}

impl Case {
    /// The org the case is added under.
    pub(crate) fn org(&self) -> OrgId {
        OrgId::new(self.org_id.as_str())
            .unwrap_or_else(|e| panic!("case {}: org_id is not valid: {e}", self.name))
    }

    /// `not_before` as an instant, if given.
    pub(crate) fn not_before(&self) -> Option<OffsetDateTime> {
        self.not_before.as_deref().map(rfc3339)
    }

    /// `not_after` as an instant, if given.
    pub(crate) fn not_after(&self) -> Option<OffsetDateTime> {
        self.not_after.as_deref().map(rfc3339)
    }

    /// The key encoding that `key_kind` and `key_format` announce: `traditional` is PKCS#1 for RSA
    /// and SEC1 for EC.
    pub(crate) fn key_encoding(&self) -> Option<KeyEncoding> {
        match (self.key_kind.as_deref()?, self.key_format.as_deref()?) {
            (_, "pkcs8") => Some(KeyEncoding::Pkcs8),
            (kind, "traditional") if kind.starts_with("rsa") => Some(KeyEncoding::Pkcs1),
            (_, "traditional") => Some(KeyEncoding::Sec1),
            (kind, format) => panic!(
                "case {}: unknown key_kind/key_format {kind}/{format}",
                self.name
            ),
        }
    }
}

/// Parses an RFC 3339 instant or panics naming it.
pub(crate) fn rfc3339(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 instant: {e}"))
}

/// The shared vectors folder and its manifest.
pub(crate) struct Vectors {
    pub(crate) dir: PathBuf,
    pub(crate) manifest: Manifest,
    pub(crate) generated_at: OffsetDateTime,
}

impl Vectors {
    /// Loads the manifest from `CERTGATE_VECTORS` or the default folder; panics (never skips)
    /// when it is missing.
    pub(crate) fn load() -> Self {
        let dir = std::env::var_os("CERTGATE_VECTORS")
            .map_or_else(|| PathBuf::from(DEFAULT_VECTORS), PathBuf::from);
        let path = dir.join("manifest.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the shared test vectors are required: cannot read {}: {e}. Point the \
                 CERTGATE_VECTORS environment variable at the folder holding manifest.json",
                path.display()
            )
        });
        let manifest: Manifest = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a valid manifest: {e}", path.display()));
        let generated_at = rfc3339(&manifest.generated_at);
        Self {
            dir,
            manifest,
            generated_at,
        }
    }

    /// The text of a file of the vectors folder.
    pub(crate) fn read(&self, file: &str) -> String {
        let path = self.dir.join(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read vector file {}: {e}", path.display()))
    }

    /// The text of a case: its files, concatenated.
    pub(crate) fn text_of(&self, case: &Case) -> String {
        case.files
            .iter()
            .map(|f| self.read(f))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The case called `name`.
    pub(crate) fn case(&self, name: &str) -> &Case {
        self.manifest
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the manifest has no case {name:?}"))
    }

    /// The encoding secret of the stored records.
    pub(crate) fn secret(&self) -> &str {
        &self.manifest.encoding_secret
    }

    /// Parses a bundle file at `generated_at`.
    pub(crate) fn upload(&self, file: &str) -> Upload {
        Upload::parse(&self.read(file), self.generated_at)
            .unwrap_or_else(|e| panic!("{file} does not parse at generated_at: {e}"))
    }
}

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
