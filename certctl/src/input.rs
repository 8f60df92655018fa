//! Reading FILE and telling an upload from a stored record.

use std::io::Read as _;
use std::path::Path;

use tls_core::{
    CertId, Duration, LEGACY_LABEL, MODERN_LABEL, Metadata, OffsetDateTime, OrgId, Record, Upload,
    UploadError,
};

/// What FILE holds.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// PEM text a user would add: checked like an upload (key matches, nothing expired).
    Upload(Upload),
    /// A record as the store keeps it, with an encrypted private key.
    Record(Record),
}

impl Loaded {
    /// The certificate ID under `org`.
    pub(crate) fn id(&self, org: &OrgId) -> CertId {
        match self {
            Self::Upload(upload) => upload.id(org),
            Self::Record(record) => record.id(org),
        }
    }

    /// The leaf's (or public key's) metadata.
    pub(crate) fn metadata(&self) -> &Metadata {
        match self {
            Self::Upload(upload) => upload.metadata(),
            Self::Record(record) => record.metadata(),
        }
    }
}

/// Reads `file` (`-` for standard input) and parses it; an upload is judged at `now`.
pub(crate) fn load(file: &Path, now: OffsetDateTime) -> Result<Loaded, String> {
    let text = read_text(file)?;
    if is_stored_record(&text) {
        Record::decode(&text)
            .map(Loaded::Record)
            .map_err(|e| e.to_string())
    } else {
        Upload::parse(&text, now)
            .map(Loaded::Upload)
            .map_err(|e| e.to_string())
    }
}

/// Like [`load`], for `certctl id`: an upload whose certificates have expired (or are not yet
/// valid) at `now` still has an ID, and removing an expired certificate needs it. Such an upload
/// is parsed at an instant inside its validity (every other check still applies) and the second
/// value says why it would be refused by `add`.
pub(crate) fn load_for_id(
    file: &Path,
    now: OffsetDateTime,
) -> Result<(Loaded, Option<String>), String> {
    let text = read_text(file)?;
    if is_stored_record(&text) {
        return Record::decode(&text)
            .map(|record| (Loaded::Record(record), None))
            .map_err(|e| e.to_string());
    }
    let first = match Upload::parse(&text, now) {
        Ok(upload) => return Ok((Loaded::Upload(upload), None)),
        Err(e) => e,
    };
    let mut at = match &first {
        UploadError::Expired { not_after, .. } => *not_after - Duration::SECOND,
        _ => return Err(first.to_string()),
    };
    // A chain may hold several expired certificates: step back to before the earliest expiry.
    for _ in 0..MAX_EXPIRED_STEPS {
        match Upload::parse(&text, at) {
            Ok(upload) => return Ok((Loaded::Upload(upload), Some(first.to_string()))),
            Err(UploadError::Expired { not_after, .. }) if not_after <= at => {
                at = not_after - Duration::SECOND;
            }
            Err(_) => break,
        }
    }
    Err(first.to_string())
}

/// How many expired certificates of one chain `load_for_id` steps over.
const MAX_EXPIRED_STEPS: usize = 16;

/// The text of `file` (`-` for standard input).
pub(crate) fn read_text(file: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::read(file).map(|content| bytes = content)
    };
    read.map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "not PEM text: the file is not UTF-8".to_owned())
}

/// A stored record carries an encrypted key block: Tyk's legacy label or certgate's modern one.
fn is_stored_record(text: &str) -> bool {
    [LEGACY_LABEL, MODERN_LABEL]
        .iter()
        .any(|label| text.contains(&format!("-----BEGIN {label}-----")))
}
