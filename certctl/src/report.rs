//! What `inspect` prints, as text or as one JSON object. Never holds key material.

use std::fmt::Write as _;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use tls_core::{
    Duration, EncodingSecret, KeyFormat, Metadata, Name, OffsetDateTime, OrgId, StoredKey, Validity,
};

use crate::input::Loaded;

/// How to inspect.
pub(crate) struct Options {
    /// Org ID of the certificate ID (it is also bound to a modern record's key).
    pub(crate) org: OrgId,
    /// The instant validity is computed at.
    pub(crate) now: OffsetDateTime,
    /// The "expiring soon" window.
    pub(crate) warning: Duration,
    /// Secret to try on a stored record's key.
    pub(crate) secret: Option<EncodingSecret>,
}

/// The inspection of one file.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    id: String,
    /// `upload` or `stored_record`.
    source: &'static str,
    fingerprint: String,
    is_public_key: bool,
    subject_cn: Option<String>,
    subject: String,
    subject_attributes: Vec<Attribute>,
    issuer_cn: Option<String>,
    issuer: String,
    serial: String,
    dns_names: Vec<String>,
    ip_addresses: Vec<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    /// The instant `validity` and `days_remaining` are computed at.
    at: String,
    validity: Option<&'static str>,
    days_remaining: Option<i64>,
    is_ca: bool,
    key_type: String,
    signature_algorithm: Option<String>,
    spki_sha256: String,
    spki_hpkp: String,
    has_private: bool,
    /// A stored record's key encryption: `modern`, `legacy` or `plaintext`.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_format: Option<&'static str>,
    chain_len: usize,
    /// Left out without `--secret`; null when there is no stored key to decrypt.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_decrypts: Option<Option<bool>>,
    /// Why the key does not decrypt.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_error: Option<String>,
}

/// One attribute of a distinguished name.
#[derive(Debug, Serialize)]
struct Attribute {
    oid: String,
    name: Option<String>,
    value: String,
}

impl Report {
    pub(crate) fn new(entry: &Loaded, options: &Options) -> Self {
        let meta = entry.metadata();
        let id = entry.id(&options.org);
        let validity = meta.validity(options.now, options.warning);
        let stored_key = match entry {
            Loaded::Record(record) => record.key(),
            Loaded::Upload(_) => None,
        };
        let (key_decrypts, key_error) = match (&options.secret, entry) {
            (None, _) => (None, None),
            (Some(secret), Loaded::Record(record)) if stored_key.is_some() => {
                match record.private_key(&id, secret) {
                    // The decrypted key is dropped (and wiped) right away.
                    Ok(_key) => (Some(Some(true)), None),
                    Err(e) => (Some(Some(false)), Some(e.to_string())),
                }
            }
            (Some(_), _) => (Some(None), None),
        };
        Self {
            id: id.to_string(),
            source: match entry {
                Loaded::Upload(_) => "upload",
                Loaded::Record(_) => "stored_record",
            },
            fingerprint: meta.fingerprint.to_hex(),
            is_public_key: meta.is_public_key,
            subject_cn: meta.subject.common_name.clone(),
            subject: distinguished_name(&meta.subject),
            subject_attributes: attributes(&meta.subject),
            issuer_cn: meta.issuer.common_name.clone(),
            issuer: distinguished_name(&meta.issuer),
            serial: meta.serial.clone(),
            dns_names: meta.dns_names.clone(),
            ip_addresses: meta.ip_addresses.iter().map(ToString::to_string).collect(),
            not_before: meta.not_before.map(rfc3339),
            not_after: meta.not_after.map(rfc3339),
            at: rfc3339(options.now),
            validity: validity.map(validity_name),
            days_remaining: days_remaining(meta, options.now, validity),
            is_ca: meta.is_ca,
            key_type: meta.key.label(),
            signature_algorithm: meta.signature_algorithm.clone(),
            spki_sha256: meta.spki_pin.to_string(),
            spki_hpkp: meta.spki_pin.to_hpkp(),
            has_private: meta.has_private,
            key_format: stored_key.map(key_format_name),
            chain_len: meta.chain_len,
            key_decrypts,
            key_error,
        }
    }

    /// One JSON object.
    pub(crate) fn to_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(self).map_err(|e| format!("cannot write JSON: {e}"))
    }

    /// A readable layout, one field a line.
    pub(crate) fn to_text(&self) -> String {
        let none = || "(none)".to_owned();
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let list = |items: &[String]| {
            if items.is_empty() {
                none()
            } else {
                items.join(", ")
            }
        };
        let validity = match (self.validity, self.days_remaining) {
            (Some(validity), Some(days)) => format!(
                "{} ({days} days remaining at {})",
                validity.replace('_', " "),
                self.at
            ),
            _ => "(a public key does not expire)".to_owned(),
        };
        let mut lines = vec![
            ("ID", self.id.clone()),
            ("Source", self.source.replace('_', " ")),
            ("Fingerprint", self.fingerprint.clone()),
        ];
        if self.is_public_key {
            lines.push(("Public key only", "yes".to_owned()));
        } else {
            lines.extend([
                ("Subject CN", self.subject_cn.clone().unwrap_or_else(none)),
                ("Subject", self.subject.clone()),
                ("Issuer", self.issuer.clone()),
                ("Serial", self.serial.clone()),
                ("DNS names", list(&self.dns_names)),
                ("IP addresses", list(&self.ip_addresses)),
                ("Not before", self.not_before.clone().unwrap_or_else(none)),
                ("Not after", self.not_after.clone().unwrap_or_else(none)),
            ]);
        }
        lines.extend([
            ("Validity", validity),
            ("CA", yes_no(self.is_ca)),
            ("Key type", self.key_type.clone()),
            (
                "Signature algorithm",
                self.signature_algorithm.clone().unwrap_or_else(none),
            ),
            ("SPKI pin (hex)", self.spki_sha256.clone()),
            ("SPKI pin (HPKP)", self.spki_hpkp.clone()),
            ("Private key", yes_no(self.has_private)),
        ]);
        if let Some(format) = self.key_format {
            lines.push(("Key stored as", format.to_owned()));
        }
        lines.push(("Chain length", self.chain_len.to_string()));
        match (&self.key_decrypts, &self.key_error) {
            (Some(Some(true)), _) => lines.push(("Key decrypts", "yes".to_owned())),
            (Some(Some(false)), error) => lines.push((
                "Key decrypts",
                format!("no: {}", error.as_deref().unwrap_or("unknown error")),
            )),
            (Some(None), _) => {
                lines.push(("Key decrypts", "(no stored key to decrypt)".to_owned()))
            }
            (None, _) => {}
        }
        let mut text = String::new();
        for (label, value) in lines {
            let _ = writeln!(text, "{:<21}{}", format!("{label}:"), printable(&value));
        }
        text
    }
}

/// Escapes control characters, so that text taken from a certificate cannot drive the terminal.
pub(crate) fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.to_owned()
    }
}

/// RFC 3339 in UTC with whole seconds, e.g. `2036-11-26T04:57:32Z`.
fn rfc3339(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    whole.format(&Rfc3339).unwrap_or_else(|_| whole.to_string())
}

fn validity_name(validity: Validity) -> &'static str {
    match validity {
        Validity::NotYetValid { .. } => "not_yet_valid",
        Validity::Valid { .. } => "valid",
        Validity::ExpiringSoon { .. } => "expiring_soon",
        Validity::Expired { .. } => "expired",
        _ => "unknown",
    }
}

/// Whole days until `not_after`, rounded down: negative once expired (-1 for a certificate that
/// expired less than a day ago, or just now).
fn days_remaining(meta: &Metadata, now: OffsetDateTime, validity: Option<Validity>) -> Option<i64> {
    let remaining = meta.not_after? - now;
    let days = remaining
        .whole_seconds()
        .div_euclid(Duration::DAY.whole_seconds());
    let expired = validity.is_some_and(|v| v.is_expired());
    Some(if expired { days.min(-1) } else { days })
}

fn key_format_name(key: &StoredKey) -> &'static str {
    match key.format() {
        Some(KeyFormat::Modern) => "modern",
        Some(KeyFormat::Legacy) => "legacy",
        Some(_) => "unknown",
        None => "plaintext",
    }
}

/// The name in certificate order, with short names: `CN=leaf, O=Example`.
fn distinguished_name(name: &Name) -> String {
    attributes(name)
        .iter()
        .map(|a| format!("{}={}", a.name.as_deref().unwrap_or(&a.oid), a.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn attributes(name: &Name) -> Vec<Attribute> {
    name.attributes
        .iter()
        .map(|a| Attribute {
            oid: a
                .oid
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("."),
            name: a.short_name.clone(),
            value: a.value.clone(),
        })
        .collect()
}
