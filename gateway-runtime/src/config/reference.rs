//! Certificate references as configurations write them: a stored certificate's ID, inline PEM,
//! or (only with `allow_certificate_files`) a file path. Parsed when the configuration is read;
//! resolved against the store by the gateway ([`crate::resolve`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tls_core::CertId;

/// The API ID Tyk's usage tracker gives the gateway's own server certificates
/// (`http_server_options.ssl_certificates`).
pub(crate) const SERVER_API_ID: &str = "__server__";

/// A certificate as a configuration names it (`ssl_certificates`, an API's `certificates`,
/// `client_certificates`, `upstream_certificates`, `security.certificates`). Written as Tyk
/// writes it, one string: an ID (org ID followed by 64 lowercase hex characters), PEM text
/// (anything containing `-----BEGIN `; CRLF and single-line PEM are fine), or else a file path.
/// A file is read only when `allow_certificate_files` is on (Tyk reads files from its working
/// directory); an ID is never tried as a file.
///
/// ```
/// use gateway_runtime::config::CertificateRef;
///
/// let id = format!("org1{}", "ab".repeat(32));
/// let reference: CertificateRef = id.parse()?;
/// assert!(matches!(reference, CertificateRef::Id(_)));
/// assert_eq!(reference.to_string(), id);
/// let file: CertificateRef = "certs/server.pem".parse()?;
/// assert!(matches!(file, CertificateRef::File(_)));
/// assert!("  ".parse::<CertificateRef>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateRef {
    /// A stored certificate.
    Id(CertId),
    /// PEM text given in place: a certificate chain, with or without its private key.
    Pem(String),
    /// A file holding PEM text; only read when `allow_certificate_files` is on.
    File(PathBuf),
}

/// A certificate reference that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateRefError {
    /// The reference is empty (or only white space).
    #[error(
        "a certificate reference is empty: give a certificate ID, inline PEM or (with allow_certificate_files) a file path"
    )]
    Empty,
}

impl FromStr for CertificateRef {
    type Err = CertificateRefError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CertificateRefError::Empty);
        }
        if text.contains("-----BEGIN ") {
            return Ok(Self::Pem(text.to_owned()));
        }
        Ok(match text.parse::<CertId>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::File(PathBuf::from(text)),
        })
    }
}

impl From<CertId> for CertificateRef {
    fn from(id: CertId) -> Self {
        Self::Id(id)
    }
}

impl From<&CertId> for CertificateRef {
    fn from(id: &CertId) -> Self {
        Self::Id(id.clone())
    }
}

impl CertificateRef {
    /// The stored certificate's ID, when this names one.
    pub fn id(&self) -> Option<&CertId> {
        match self {
            Self::Id(id) => Some(id),
            Self::Pem(_) | Self::File(_) => None,
        }
    }
}

/// The reference as the configuration writes it.
impl std::fmt::Display for CertificateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Pem(text) => f.write_str(text),
            Self::File(path) => path.display().fmt(f),
        }
    }
}

/// Inline PEM is not printed (it may hold a private key).
impl std::fmt::Debug for CertificateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => f.debug_tuple("Id").field(&id.to_string()).finish(),
            Self::Pem(_) => f.write_str("Pem(<inline PEM>)"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl Serialize for CertificateRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertificateRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde for host pattern → certificate maps (`upstream_certificates`): an empty value is
/// `None`, "no certificate for these hosts" (it overrides a less specific pattern, as in Tyk).
pub(crate) mod optional_refs {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<String, Option<CertificateRef>>, D::Error> {
        HashMap::<String, String>::deserialize(deserializer)?
            .into_iter()
            .map(|(pattern, text)| {
                let reference = if text.trim().is_empty() {
                    None
                } else {
                    Some(text.parse().map_err(serde::de::Error::custom)?)
                };
                Ok((pattern, reference))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_ids_pem_or_file_paths_and_print_as_written() {
        let id = format!("org1{}", "0f".repeat(32));
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        for (text, want) in [
            (format!(" {id} "), CertificateRef::Id(id.parse().unwrap())),
            (pem.to_owned(), CertificateRef::Pem(pem.to_owned())),
            (
                "/etc/certs/a.pem".to_owned(),
                CertificateRef::File("/etc/certs/a.pem".into()),
            ),
        ] {
            let parsed: CertificateRef = text.parse().unwrap();
            assert_eq!(parsed, want);
            assert_eq!(parsed.to_string(), text.trim());
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(json, serde_json::to_string(text.trim()).unwrap());
            assert_eq!(serde_json::from_str::<CertificateRef>(&json).unwrap(), want);
        }
        assert!(!format!("{:?}", CertificateRef::Pem(pem.into())).contains("MIIB"));
    }

    #[test]
    fn an_empty_reference_is_an_error_at_load() {
        let err = serde_json::from_str::<Vec<CertificateRef>>(r#"["  "]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("certificate reference is empty"), "{err}");
    }
}
