//! The shared test vectors: certificates, keys and stored records made by an implementation
//! independent of certgate, with `manifest.json` giving each case's expected ID, fingerprint,
//! pin and metadata, or that it must be refused.
//!
//! The folder is `testdata/vectors` in the repository, or the one named by `$CERTGATE_VECTORS`.
//! Everything here panics when a file is missing: the tests fail, they never skip. Evaluate
//! every time-dependent expectation at the manifest's `generated_at`, never at the wall clock.

use std::fs;
use std::path::PathBuf;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tls_core::{KeyEncoding, OrgId, Upload};

/// Where the shared vectors live unless `CERTGATE_VECTORS` says otherwise.
const DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

/// The vectors folder: `$CERTGATE_VECTORS`, or `testdata/vectors` in the repository.
pub fn dir() -> PathBuf {
    std::env::var_os("CERTGATE_VECTORS").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// The path of vector file `name`; panics with a clear message when it does not exist.
pub fn path(name: &str) -> PathBuf {
    let path = dir().join(name);
    assert!(
        path.exists(),
        "the shared test vectors are missing: {} does not exist; set CERTGATE_VECTORS",
        path.display()
    );
    path
}

/// The text of vector file `name`; panics with a clear message when the vectors are missing.
pub fn read(name: &str) -> String {
    let path = dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the shared test vectors are missing: cannot read {} ({e}); set CERTGATE_VECTORS",
            path.display()
        )
    })
}

/// The manifest's `generated_at`: every time-dependent expectation holds at this instant.
pub fn generated_at() -> OffsetDateTime {
    Vectors::load().generated_at
}

/// Parses an RFC 3339 instant or panics naming it.
pub fn rfc3339(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 instant: {e}"))
}

/// Every base64 line (32 characters or more) of every private key among the vectors' `*.pem`
/// files: text only a key holds, which no answer, page or log may contain.
pub fn private_key_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let entries = fs::read_dir(dir()).unwrap_or_else(|e| {
        panic!(
            "the shared test vectors are missing: cannot list {} ({e}); set CERTGATE_VECTORS",
            dir().display()
        )
    });
    for entry in entries {
        let path = entry.expect("the vectors folder lists").path();
        if path.extension().is_some_and(|e| e == "pem") {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read vector file {}: {e}", path.display()));
            let mut in_key = false;
            for line in text.lines() {
                if line.starts_with("-----BEGIN") {
                    in_key = line.contains("PRIVATE KEY");
                } else if line.starts_with("-----END") {
                    in_key = false;
                } else if in_key && line.len() >= 32 {
                    lines.push(line.to_owned());
                }
            }
        }
    }
    lines
}

/// The vectors' manifest (`manifest.json`).
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// The instant at which every time-dependent expectation holds (RFC 3339).
    pub generated_at: String,
    /// The secret of the `*.tyk-stored.pem` records.
    pub encoding_secret: String,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One case of the manifest; absent fields are not checked.
#[derive(Debug, Deserialize)]
pub struct Case {
    /// The case's name.
    pub name: String,
    /// Its files, concatenated when there are several.
    pub files: Vec<String>,
    /// The org it is added under.
    #[serde(default)]
    pub org_id: String,
    /// The certificate ID `add` must answer.
    pub expect_id: Option<String>,
    /// The leaf's SHA-256 fingerprint, lowercase hex.
    pub fingerprint: Option<String>,
    /// The SubjectPublicKeyInfo's SHA-256, lowercase hex.
    pub spki_sha256_hex: Option<String>,
    /// Whether the upload must be refused.
    #[serde(default)]
    pub expect_error: bool,
    /// The secret a stored record decrypts with.
    pub decrypt_with: Option<String>,
    /// The subject's common name.
    pub subject_cn: Option<String>,
    /// The issuer's common name.
    pub issuer_cn: Option<String>,
    /// The DNS names.
    pub dns_names: Option<Vec<String>>,
    /// Whether the certificate is a CA.
    pub is_ca: Option<bool>,
    /// Start of validity (RFC 3339).
    pub not_before: Option<String>,
    /// End of validity (RFC 3339).
    pub not_after: Option<String>,
    /// Whether the upload holds a private key.
    pub has_private: Option<bool>,
    /// How many certificates the upload holds.
    pub chain_len: Option<usize>,
    /// Whether the upload is a lone public key.
    pub is_public_key: Option<bool>,
    /// The private key's kind (`rsa2048`, `p256`, `ed25519`, ...).
    pub key_kind: Option<String>,
    /// The private key's encoding (`pkcs8` or `traditional`).
    pub key_format: Option<String>,
}

impl Case {
    /// The org the case is added under.
    pub fn org(&self) -> OrgId {
        OrgId::new(self.org_id.as_str())
            .unwrap_or_else(|e| panic!("case {}: org_id is not valid: {e}", self.name))
    }

    /// `not_before` as an instant, if given.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        self.not_before.as_deref().map(rfc3339)
    }

    /// `not_after` as an instant, if given.
    pub fn not_after(&self) -> Option<OffsetDateTime> {
        self.not_after.as_deref().map(rfc3339)
    }

    /// The key encoding that `key_kind` and `key_format` announce: `traditional` is PKCS#1 for RSA
    /// and SEC1 for EC.
    pub fn key_encoding(&self) -> Option<KeyEncoding> {
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

/// The shared vectors folder and its manifest.
#[derive(Debug)]
pub struct Vectors {
    /// The folder.
    pub dir: PathBuf,
    /// Its `manifest.json`.
    pub manifest: Manifest,
    /// The manifest's `generated_at`.
    pub generated_at: OffsetDateTime,
}

impl Vectors {
    /// Loads the manifest from `CERTGATE_VECTORS` or the default folder; panics (never skips)
    /// when it is missing.
    pub fn load() -> Self {
        let dir = dir();
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
        assert!(!manifest.cases.is_empty(), "manifest.json lists no cases");
        let generated_at = rfc3339(&manifest.generated_at);
        Self {
            dir,
            manifest,
            generated_at,
        }
    }

    /// The text of a file of the vectors folder.
    pub fn read(&self, file: &str) -> String {
        let path = self.dir.join(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read vector file {}: {e}", path.display()))
    }

    /// The text of a case: its files, concatenated.
    pub fn text_of(&self, case: &Case) -> String {
        case.files
            .iter()
            .map(|f| self.read(f))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The case called `name`.
    pub fn case(&self, name: &str) -> &Case {
        self.manifest
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the manifest has no case {name:?}"))
    }

    /// The cases that must be accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &Case> {
        self.manifest.cases.iter().filter(|c| !c.expect_error)
    }

    /// The cases that must be refused.
    pub fn refused(&self) -> impl Iterator<Item = &Case> {
        self.manifest.cases.iter().filter(|c| c.expect_error)
    }

    /// The encoding secret of the stored records.
    pub fn secret(&self) -> &str {
        &self.manifest.encoding_secret
    }

    /// Parses a bundle file at `generated_at`.
    pub fn upload(&self, file: &str) -> Upload {
        Upload::parse(&self.read(file), self.generated_at)
            .unwrap_or_else(|e| panic!("{file} does not parse at generated_at: {e}"))
    }
}
