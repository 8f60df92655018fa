//! The JSON bodies of the control API, in Tyk's shapes and field order; written the way Go's
//! `json.Encoder` writes them (HTML characters escaped, a trailing newline) by
//! [`response::respond`](crate::response::respond).
//!
//! The answers a client reads are public as [`crate::wire`], with `Deserialize` beside
//! `Serialize`: what the server writes is what a client parses.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;
use tls_core::{Metadata, Name};

/// `{"status","message"}`: Tyk's answer to a delete, and every error's.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusMessage<'a> {
    /// `ok` or `error`.
    #[serde(borrow)]
    pub status: &'a str,
    /// What happened, for a person.
    pub message: String,
}

/// Tyk's `APICertificateStatusMessage`: `{"id","status","message"}`, the answer to an add.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateStatus<'a> {
    /// The new certificate's ID.
    pub id: String,
    /// `ok`.
    #[serde(borrow)]
    pub status: &'a str,
    /// `Certificate added`.
    #[serde(borrow)]
    pub message: &'a str,
}

/// A time as Go's `time.Time` marshals a certificate time: RFC 3339, UTC, whole seconds; Go's
/// zero time (`0001-01-01T00:00:00Z`) for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime(pub Option<OffsetDateTime>);

impl GoTime {
    pub(crate) const ZERO_TEXT: &'static str = "0001-01-01T00:00:00Z";
}

impl Serialize for GoTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&go_time(self.0))
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        if text == Self::ZERO_TEXT {
            return Ok(Self(None));
        }
        OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map(|at| Self(Some(at)))
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
    }
}

/// The text of [`GoTime`].
pub(crate) fn go_time(at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else {
        return GoTime::ZERO_TEXT.to_owned();
    };
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| GoTime::ZERO_TEXT.to_owned())
}

/// Go's `crypto/x509/pkix.Name`, with Go's field names and order.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct PkixName {
    /// `C`.
    pub country: Option<Vec<String>>,
    /// `O`.
    pub organization: Option<Vec<String>>,
    /// `OU`.
    pub organizational_unit: Option<Vec<String>>,
    /// `L`.
    pub locality: Option<Vec<String>>,
    /// `ST`.
    pub province: Option<Vec<String>>,
    /// `street`.
    pub street_address: Option<Vec<String>>,
    /// `postalCode`.
    pub postal_code: Option<Vec<String>>,
    /// `serialNumber` (empty when absent).
    pub serial_number: String,
    /// `CN` (empty when absent).
    pub common_name: String,
    /// Every attribute, in certificate order.
    pub names: Option<Vec<AttributeTypeAndValue>>,
    /// Always `null` (Go's field for attributes to add when writing a name).
    pub extra_names: Option<Vec<AttributeTypeAndValue>>,
}

/// Go's `pkix.AttributeTypeAndValue`: the OID as an integer array and the value.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct AttributeTypeAndValue {
    /// The attribute's OID, as integers.
    #[serde(rename = "Type")]
    pub oid: Vec<u64>,
    /// Its value.
    pub value: String,
}

impl PkixName {
    /// Fills the name as Go's `FillFromRDNSequence` does: every attribute goes to `Names` in
    /// certificate order; the well-known ones also to their field (the last serial number and
    /// common name win).
    pub(crate) fn from_name(name: &Name) -> Self {
        let mut out = Self::default();
        let mut names = Vec::with_capacity(name.attributes.len());
        for attr in &name.attributes {
            let value = attr.value.clone();
            if let [2, 5, 4, kind] = attr.oid.as_slice() {
                let list = match kind {
                    6 => Some(&mut out.country),
                    10 => Some(&mut out.organization),
                    11 => Some(&mut out.organizational_unit),
                    7 => Some(&mut out.locality),
                    8 => Some(&mut out.province),
                    9 => Some(&mut out.street_address),
                    17 => Some(&mut out.postal_code),
                    5 => {
                        out.serial_number.clone_from(&value);
                        None
                    }
                    3 => {
                        out.common_name.clone_from(&value);
                        None
                    }
                    _ => None,
                };
                if let Some(list) = list {
                    list.get_or_insert_with(Vec::new).push(value.clone());
                }
            }
            names.push(AttributeTypeAndValue {
                oid: attr.oid.clone(),
                value,
            });
        }
        if !names.is_empty() {
            out.names = Some(names);
        }
        out
    }

    /// Tyk's subject of a standalone public key: only the common name `Public Key: <sha>`.
    fn public_key(fingerprint: &str) -> Self {
        Self {
            common_name: format!("Public Key: {fingerprint}"),
            ..Self::default()
        }
    }
}

/// Tyk's `CertificateMeta`, the answer of `GET /tyk/certs/{id}` (an array of them, `null` for
/// an ID not found, for several IDs).
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateMeta {
    /// The certificate ID.
    pub id: String,
    /// The leaf's SHA-256 (Tyk reports the last certificate's), or the SPKI's for a public key.
    pub fingerprint: String,
    /// Whether a private key is stored with it.
    pub has_private: bool,
    /// The issuer (empty for a public key).
    pub issuer: PkixName,
    /// The subject (common name `Public Key: <fingerprint>` alone for a public key).
    pub subject: PkixName,
    /// Start of validity.
    pub not_before: GoTime,
    /// End of validity.
    pub not_after: GoTime,
    /// The leaf's DNS names (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Whether the leaf is a CA.
    pub is_ca: bool,
    /// certgate's addition, which Tyk clients ignore: whether the stored private key decrypts
    /// with this node's secret (absent when there is no key). Tyk answers 404 for such a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_decrypts: Option<bool>,
    /// certgate's addition, which Tyk clients ignore: the renewal state of a certificate that
    /// automatic certificates (ACME) manage (absent for any other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<super::renewals::AcmeRenewal>,
}

impl CertificateMeta {
    pub(crate) fn new(id: String, meta: &Metadata) -> Self {
        let fingerprint = meta.fingerprint.to_hex();
        let (issuer, subject) = if meta.is_public_key {
            (PkixName::default(), PkixName::public_key(&fingerprint))
        } else {
            (
                PkixName::from_name(&meta.issuer),
                PkixName::from_name(&meta.subject),
            )
        };
        Self {
            id,
            fingerprint,
            has_private: meta.has_private,
            issuer,
            subject,
            not_before: GoTime(meta.not_before),
            not_after: GoTime(meta.not_after),
            dns_names: meta.dns_names.clone(),
            is_ca: meta.is_ca,
            key_decrypts: None,
            acme: None,
        }
    }
}

/// Tyk's `CertificateBasics`, an entry of `GET /tyk/certs?mode=detailed`, plus `error` for a
/// record that cannot be read in full (Tyk's handler panics on those).
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateBasics {
    /// The certificate ID.
    pub id: String,
    /// The issuer's common name.
    pub issuer_cn: String,
    /// The subject's common name (`Public Key: <fingerprint>` for a public key).
    pub subject_cn: String,
    /// The leaf's DNS names (`null` when none).
    pub dns_names: Option<Vec<String>>,
    /// Whether a private key is stored with it.
    pub has_private: bool,
    /// Start of validity.
    pub not_before: GoTime,
    /// End of validity.
    pub not_after: GoTime,
    /// Whether the leaf is a CA.
    pub is_ca: bool,
    /// Why the record cannot be read in full (certgate's addition; absent when it can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CertificateBasics {
    /// The entry of `id`, from whatever metadata could be read, with the problem if any.
    pub(crate) fn new(id: String, meta: Option<&Metadata>, problem: Option<String>) -> Self {
        let Some(meta) = meta else {
            return Self {
                id,
                issuer_cn: String::new(),
                subject_cn: String::new(),
                dns_names: None,
                has_private: false,
                not_before: GoTime(None),
                not_after: GoTime(None),
                is_ca: false,
                error: Some(problem.unwrap_or_else(|| "the record cannot be read".to_owned())),
            };
        };
        let full = CertificateMeta::new(id, meta);
        Self {
            id: full.id,
            issuer_cn: full.issuer.common_name,
            subject_cn: full.subject.common_name,
            dns_names: (!full.dns_names.is_empty()).then_some(full.dns_names),
            has_private: full.has_private,
            not_before: full.not_before,
            not_after: full.not_after,
            is_ca: full.is_ca,
            error: problem,
        }
    }
}

/// `{"certs":[...]}` of a listing by ID: `null` when empty, as Tyk writes it.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdList {
    /// The IDs (`null` when there are none).
    pub certs: Option<Vec<String>>,
    /// The cursor of the next page, only when `limit` was given and more remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `{"certs":[...]}` of a detailed listing: `[]` when empty, as Tyk writes it.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DetailedList {
    /// The entries.
    pub certs: Vec<CertificateBasics>,
    /// The cursor of the next page, only when `limit` was given and more remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `{"id","apis":[{"api_id","role"}...]}`, the answer of `GET /tyk/certs/{id}/apis`.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiUses {
    /// The certificate ID.
    pub id: String,
    /// The APIs that use it, and how.
    pub apis: Vec<cert_store::CertUse>,
}

/// Tyk's `/hello` health answer.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    pub(crate) status: &'static str,
    pub(crate) version: &'static str,
    pub(crate) description: &'static str,
    pub(crate) details: HealthDetails,
}

/// The components of [`Health`].
#[derive(Debug, Serialize)]
pub(crate) struct HealthDetails {
    pub(crate) storage: HealthCheck,
    /// Ours: present (status `warn`) when referenced certificates are missing from storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certificates: Option<HealthCheck>,
}

/// Tyk's `HealthCheckItem`.
#[derive(Debug, Serialize)]
pub(crate) struct HealthCheck {
    pub(crate) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<String>,
    #[serde(rename = "componentType")]
    pub(crate) component_type: &'static str,
    pub(crate) time: String,
    /// Ours: the IDs of the missing certificates (component `certificates`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) missing: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_utc_whole_seconds_and_go_zero_for_none() {
        let at = datetime!(2024-03-25 10:46:37.5 +02:00);
        assert_eq!(go_time(Some(at)), "2024-03-25T08:46:37Z");
        assert_eq!(go_time(None), "0001-01-01T00:00:00Z");
    }
}
