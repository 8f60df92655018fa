//! Certificate and public-key metadata, and validity at an instant.

use std::net::IpAddr;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::oid_registry::Oid;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::id::{Fingerprint, SpkiPin, hex_lower};

/// What a certificate or public key says about itself. Never holds key material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Metadata {
    /// SHA-256 of the leaf's DER, or of the SPKI DER for a public key.
    #[serde(serialize_with = "display")]
    pub fingerprint: Fingerprint,
    /// True when this describes a standalone public key rather than a certificate.
    pub is_public_key: bool,
    /// The subject (empty for a public key).
    pub subject: Name,
    /// The issuer (empty for a public key).
    pub issuer: Name,
    /// Serial number, lowercase hex of its big-endian bytes (empty for a public key).
    pub serial: String,
    /// DNS names from the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// IP addresses from the subject alternative name extension.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity (`None` for a public key).
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// End of validity (`None` for a public key).
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Basic constraints say this is a CA.
    pub is_ca: bool,
    /// The public key's algorithm and size.
    pub key: KeyInfo,
    /// The signature algorithm's name (`None` for a public key).
    pub signature_algorithm: Option<String>,
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    #[serde(serialize_with = "display")]
    pub spki_pin: SpkiPin,
    /// Whether a private key goes with it.
    pub has_private: bool,
    /// Number of certificates (leaf first); 0 for a public key.
    pub chain_len: usize,
}

impl Metadata {
    /// Metadata of one DER certificate (e.g. a peer's), or `None` if it does not parse.
    pub fn of_certificate_der(der: &[u8]) -> Option<Self> {
        use x509_parser::prelude::FromDer as _;
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(of_certificate(der, &cert, 1, false))
    }

    /// The validity of the certificate at `now`, with `warning` as the "expiring soon" window.
    /// `None` for a public key, which does not expire.
    pub fn validity(&self, now: OffsetDateTime, warning: Duration) -> Option<Validity> {
        Some(Validity::at(
            self.not_before?,
            self.not_after?,
            now,
            warning,
        ))
    }
}

/// A distinguished name: the common name and every attribute in certificate order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Name {
    /// The first common name, if any.
    pub common_name: Option<String>,
    /// Every attribute, in order.
    pub attributes: Vec<NameAttribute>,
}

/// One attribute of a distinguished name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NameAttribute {
    /// The attribute type's OID arcs, e.g. `[2, 5, 4, 3]` for the common name.
    pub oid: Vec<u64>,
    /// Its short name when known: `CN`, `C`, `O`, `OU`, `L`, `ST`, `STREET`, `postalCode`,
    /// `serialNumber`, `emailAddress`, `DC`, `UID`, else the OID registry's name.
    pub short_name: Option<String>,
    /// Its value as text; hex of the raw bytes when it is not a string type.
    pub value: String,
}

/// A public key's algorithm and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// `RSA`, `ECDSA`, `Ed25519`, `Ed448`, or the algorithm OID in dotted form.
    pub algorithm: String,
    /// Key size in bits (0 when unknown).
    pub bits: u32,
    /// The named curve for ECDSA: `P-256`, `P-384`, `P-521`, or the curve OID.
    pub curve: Option<String>,
}

impl KeyInfo {
    /// A short label such as `ECDSA P-256`, `RSA 2048` or `Ed25519`.
    pub fn label(&self) -> String {
        match (&self.curve, self.algorithm.as_str()) {
            (Some(curve), alg) => format!("{alg} {curve}"),
            (None, "RSA") => format!("RSA {}", self.bits),
            (None, alg) => alg.to_owned(),
        }
    }
}

/// Where an instant falls in a certificate's validity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Validity {
    /// Before `not_before`.
    NotYetValid {
        /// Time until it becomes valid.
        starts_in: Duration,
    },
    /// Valid for longer than the warning window.
    Valid {
        /// Time until `not_after`.
        remaining: Duration,
    },
    /// Valid, and `not_after` is within the warning window (inclusive).
    ExpiringSoon {
        /// Time until `not_after`; positive.
        remaining: Duration,
    },
    /// `not_after` is now or past.
    Expired {
        /// Time since `not_after`; zero or positive.
        since: Duration,
    },
}

impl Validity {
    /// Classifies `now`. Expired wins over not-yet-valid; a certificate expired one second ago is
    /// expired; the warning window is inclusive.
    pub fn at(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
        warning: Duration,
    ) -> Self {
        let remaining = not_after - now;
        if remaining <= Duration::ZERO {
            Self::Expired { since: -remaining }
        } else if now < not_before {
            Self::NotYetValid {
                starts_in: not_before - now,
            }
        } else if remaining <= warning {
            Self::ExpiringSoon { remaining }
        } else {
            Self::Valid { remaining }
        }
    }

    /// True for [`Validity::Expired`].
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }
}

/// Metadata of a certificate chain whose leaf is `leaf`.
pub(crate) fn of_certificate(
    leaf_der: &[u8],
    leaf: &X509Certificate<'_>,
    chain_len: usize,
    has_private: bool,
) -> Metadata {
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => ip_addresses.extend(ip_from_bytes(bytes)),
                _ => {}
            }
        }
    }
    let spki = leaf.public_key();
    Metadata {
        fingerprint: Fingerprint::of(leaf_der),
        is_public_key: false,
        subject: name(leaf.subject()),
        issuer: name(leaf.issuer()),
        serial: hex_lower(leaf.raw_serial()),
        dns_names,
        ip_addresses,
        not_before: Some(leaf.validity().not_before.to_datetime()),
        not_after: Some(leaf.validity().not_after.to_datetime()),
        is_ca: leaf.is_ca(),
        key: key_info(spki),
        signature_algorithm: Some(oid_name(&leaf.signature_algorithm.algorithm)),
        spki_pin: SpkiPin::of_spki(spki.raw),
        has_private,
        chain_len,
    }
}

/// Metadata of a standalone public key.
pub(crate) fn of_public_key(spki: &SubjectPublicKeyInfo<'_>) -> Metadata {
    Metadata {
        fingerprint: Fingerprint::of(spki.raw),
        is_public_key: true,
        subject: Name::default(),
        issuer: Name::default(),
        serial: String::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        not_before: None,
        not_after: None,
        is_ca: false,
        key: key_info(spki),
        signature_algorithm: None,
        spki_pin: SpkiPin::of_spki(spki.raw),
        has_private: false,
        chain_len: 0,
    }
}

fn name(x509: &X509Name<'_>) -> Name {
    let attributes: Vec<NameAttribute> = x509
        .iter_attributes()
        .map(|attr| NameAttribute {
            oid: attr
                .attr_type()
                .iter()
                .map(Iterator::collect)
                .unwrap_or_default(),
            short_name: short_name(attr.attr_type()),
            value: attr
                .as_str()
                .map_or_else(|_| hex_lower(attr.as_slice()), str::to_owned),
        })
        .collect();
    let common_name = x509.iter_common_name().next().map(|cn| {
        cn.as_str()
            .map_or_else(|_| hex_lower(cn.as_slice()), str::to_owned)
    });
    Name {
        common_name,
        attributes,
    }
}

/// The customary short name of a distinguished-name attribute.
fn short_name(oid: &Oid<'_>) -> Option<String> {
    let known = match oid.to_id_string().as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.17" => "postalCode",
        "2.5.4.5" => "serialNumber",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return oid2sn(oid, oid_registry()).ok().map(str::to_owned),
    };
    Some(known.to_owned())
}

fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let alg = spki.algorithm.algorithm.to_id_string();
    let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
    let bits = u32::try_from(bits).unwrap_or(0);
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => KeyInfo {
            algorithm: "RSA".into(),
            bits,
            curve: None,
        },
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| match oid.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    "1.3.132.0.35" => "P-521".to_owned(),
                    other => other.to_owned(),
                });
            let bits = match curve.as_deref() {
                Some("P-256") => 256,
                Some("P-384") => 384,
                Some("P-521") => 521,
                _ => bits,
            };
            KeyInfo {
                algorithm: "ECDSA".into(),
                bits,
                curve,
            }
        }
        "1.3.101.112" => KeyInfo {
            algorithm: "Ed25519".into(),
            bits: 256,
            curve: None,
        },
        "1.3.101.113" => KeyInfo {
            algorithm: "Ed448".into(),
            bits: 456,
            curve: None,
        },
        _ => KeyInfo {
            algorithm: alg,
            bits,
            curve: None,
        },
    }
}

fn oid_name(oid: &Oid<'_>) -> String {
    oid2sn(oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_owned)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn display<T: core::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NB: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);
    const NA: OffsetDateTime = datetime!(2026-12-31 0:00 UTC);

    #[test]
    fn validity_boundaries_are_exact() {
        let w = Duration::days(30);
        assert!(
            matches!(Validity::at(NB, NA, NA, w), Validity::Expired { since } if since == Duration::ZERO)
        );
        assert!(
            matches!(Validity::at(NB, NA, NA + Duration::minutes(1), w), Validity::Expired { since } if since == Duration::minutes(1))
        );
        assert!(matches!(
            Validity::at(NB, NA, NA - Duration::seconds(1), w),
            Validity::ExpiringSoon { .. }
        ));
        assert!(
            matches!(Validity::at(NB, NA, NA - w, w), Validity::ExpiringSoon { remaining } if remaining == w)
        );
        assert!(matches!(
            Validity::at(NB, NA, NA - w - Duration::seconds(1), w),
            Validity::Valid { .. }
        ));
        assert!(
            matches!(Validity::at(NB, NA, NB - Duration::hours(1), w), Validity::NotYetValid { starts_in } if starts_in == Duration::hours(1))
        );
    }
}
