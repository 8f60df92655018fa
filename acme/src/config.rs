//! `http_server_options.acme`: the configuration block as written in the JSON file, and the
//! validated [`AcmeSettings`] the issuer works with.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use serde_json::Value;
use tls_core::OrgId;

use crate::error::AcmeError;

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// `http_server_options.acme`, as written in the configuration file.
///
/// ```json
/// "acme": {
///   "enabled": true,
///   "directory": "letsencrypt",
///   "email": "ops@example.com",
///   "accept_terms": true,
///   "domains": ["api.example.com"],
///   "challenges": ["tls-alpn-01", "http-01"]
/// }
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AcmeConfig {
    /// Obtain and renew certificates.
    pub enabled: bool,
    /// `letsencrypt` (default), `letsencrypt-staging`, or the `https://` URL of any RFC 8555
    /// directory.
    pub directory: String,
    /// Contact address given to the CA (expiry notices, account recovery).
    pub email: String,
    /// Agreement to the CA's terms of service; required.
    pub accept_terms: bool,
    /// External account binding, for CAs that require one (ZeroSSL, Google, most commercial CAs).
    pub external_account: Option<ExternalAccountConfig>,
    /// `ecdsa-p256` (default).
    pub key_type: String,
    /// Names to obtain certificates for.
    pub domains: Vec<String>,
    /// Also every API `domain` that has no certificate of its own.
    pub domains_from_apis: bool,
    /// Challenge types in order of preference: `tls-alpn-01`, `http-01`, `dns-01` (needs a DNS
    /// provider plugged in through the library). Default: `tls-alpn-01` then `http-01`.
    pub challenges: Vec<String>,
    /// PEM of the root (or a file path to it) that the CA's own HTTPS chains to, for test CAs
    /// such as Pebble; empty means the system's roots.
    pub ca_root: String,
    /// Renew when this fraction of the certificate's lifetime remains; 0 means one third
    /// (certmagic's rule). The CA's renewal information (RFC 9773) can move it earlier.
    pub renew_when_remaining: f64,
    /// Port of the plain-HTTP listener answering `http-01` (and redirecting everything else to
    /// HTTPS); 0 means 80. Only started when `http-01` is among the challenges.
    pub http_port: u16,
    /// The org the issued certificates are stored under (empty: org-less).
    pub org_id: String,
    /// How long a process that stalls or dies while ordering keeps the name locked; 0 means
    /// 120 seconds. A live process extends its lock every third of this.
    pub lock_ttl_seconds: u64,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// `http_server_options.acme.external_account`.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ExternalAccountConfig {
    /// The key ID the CA gave.
    pub key_id: String,
    /// The HMAC key the CA gave, base64url (padding optional).
    pub hmac_key: String,
}

impl std::fmt::Debug for ExternalAccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAccountConfig")
            .field("key_id", &self.key_id)
            .field("hmac_key", &"<redacted>")
            .finish()
    }
}

/// The key type of issued certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA with P-256 and SHA-256.
    #[default]
    EcdsaP256,
}

/// A challenge type certgate can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// `tls-alpn-01` (RFC 8737), answered by the TLS listener.
    TlsAlpn01,
    /// `http-01`, answered by the plain-HTTP listener.
    Http01,
    /// `dns-01`, answered by a [`Dns01Solver`](crate::Dns01Solver).
    Dns01,
}

impl ChallengeKind {
    /// The name in configuration and in the ACME protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
        }
    }
}

/// Validated ACME settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct AcmeSettings {
    /// The directory URL.
    pub directory_url: String,
    /// Contact URIs (`mailto:`).
    pub contact: Vec<String>,
    /// External account binding: key ID and the decoded HMAC key.
    pub external_account: Option<(String, Vec<u8>)>,
    /// Key type of issued certificates.
    pub key_type: KeyType,
    /// Names listed explicitly (lowercase).
    pub domains: Vec<String>,
    /// Whether API domains without a certificate are added.
    pub domains_from_apis: bool,
    /// Challenge types, preferred first.
    pub challenges: Vec<ChallengeKind>,
    /// Roots trusted for the CA's HTTPS; empty means the system's.
    pub ca_roots: Vec<CertificateDer<'static>>,
    /// Fraction of the lifetime remaining at which to renew.
    pub renew_when_remaining: f64,
    /// Port of the `http-01` listener.
    pub http_port: u16,
    /// Org of the stored certificates.
    pub org: OrgId,
    /// How long a process may hold a name's ordering lock without extending it.
    pub lock_ttl: Duration,
}

impl std::fmt::Debug for AcmeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeSettings")
            .field("directory_url", &self.directory_url)
            .field("domains", &self.domains)
            .field("challenges", &self.challenges)
            .field("renew_when_remaining", &self.renew_when_remaining)
            .finish_non_exhaustive()
    }
}

impl AcmeSettings {
    /// Settings for `directory_url` (or `letsencrypt`, `letsencrypt-staging`) and `domains`,
    /// terms accepted, everything else at its default: for use from code.
    pub fn new(directory: &str, domains: &[&str]) -> Result<Self, AcmeError> {
        AcmeConfig {
            enabled: true,
            directory: directory.to_owned(),
            accept_terms: true,
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            ..AcmeConfig::default()
        }
        .validate()
    }

    /// Uses `challenges`, preferred first.
    pub fn with_challenges(mut self, challenges: &[ChallengeKind]) -> Self {
        self.challenges = challenges.to_vec();
        self
    }

    /// Trusts `root` for the CA's HTTPS (a test CA).
    pub fn with_ca_root(mut self, root: CertificateDer<'static>) -> Self {
        self.ca_roots.push(root);
        self
    }

    /// Sets the contact address.
    pub fn with_email(mut self, email: &str) -> Self {
        self.contact = vec![format!("mailto:{email}")];
        self
    }

    /// Sets how long an ordering lock lives unless extended (default 2 minutes).
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Stores issued certificates under `org`.
    pub fn with_org(mut self, org: OrgId) -> Self {
        self.org = org;
        self
    }
}

impl AcmeConfig {
    /// Unknown fields (typos), for a warning.
    pub fn unknown_fields(&self) -> impl Iterator<Item = &str> {
        self.unknown.keys().map(String::as_str)
    }

    /// Checks the block and turns it into settings.
    pub fn validate(&self) -> Result<AcmeSettings, AcmeError> {
        let directory_url = match self.directory.trim() {
            "" | "letsencrypt" => LETSENCRYPT.to_owned(),
            "letsencrypt-staging" => LETSENCRYPT_STAGING.to_owned(),
            url if url.starts_with("https://") && url.len() > "https://".len() => url.to_owned(),
            _ => {
                return Err(AcmeError::config(
                    "directory",
                    "use \"letsencrypt\", \"letsencrypt-staging\" or the https:// URL of an ACME directory",
                ));
            }
        };
        if !self.accept_terms {
            return Err(AcmeError::config(
                "accept_terms",
                "set it to true to agree to the CA's terms of service (certificates cannot be obtained otherwise)",
            ));
        }
        let contact = match self.email.trim() {
            "" => Vec::new(),
            email if is_email(email) => vec![format!("mailto:{email}")],
            _ => {
                return Err(AcmeError::config(
                    "email",
                    "not an email address (expected name@domain)",
                ));
            }
        };
        let external_account = match &self.external_account {
            None => None,
            Some(eab) => {
                if eab.key_id.trim().is_empty() {
                    return Err(AcmeError::config(
                        "external_account.key_id",
                        "empty; copy the key ID your CA gave",
                    ));
                }
                let hmac = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(eab.hmac_key.trim().trim_end_matches('='))
                    .ok()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        AcmeError::config(
                            "external_account.hmac_key",
                            "not base64url text; copy the HMAC key your CA gave",
                        )
                    })?;
                Some((eab.key_id.trim().to_owned(), hmac))
            }
        };
        let key_type = match self.key_type.trim() {
            "" | "ecdsa-p256" => KeyType::EcdsaP256,
            "rsa-2048" => {
                return Err(AcmeError::config(
                    "key_type",
                    "rsa-2048 is not available yet (the ring crypto provider cannot generate RSA keys); use \"ecdsa-p256\"",
                ));
            }
            _ => return Err(AcmeError::config("key_type", "use \"ecdsa-p256\"")),
        };
        let mut domains = Vec::new();
        for domain in &self.domains {
            let name = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if !is_dns_name(&name) {
                return Err(AcmeError::config(
                    "domains",
                    format!(
                        "{domain:?} is not a DNS name (wildcards need dns-01 and are not supported yet)"
                    ),
                ));
            }
            if !domains.contains(&name) {
                domains.push(name);
            }
        }
        if domains.is_empty() && !self.domains_from_apis {
            return Err(AcmeError::config(
                "domains",
                "empty: list the names, or set domains_from_apis",
            ));
        }
        let mut challenges = Vec::new();
        for name in &self.challenges {
            let kind = match name.trim() {
                "tls-alpn-01" => ChallengeKind::TlsAlpn01,
                "http-01" => ChallengeKind::Http01,
                "dns-01" => ChallengeKind::Dns01,
                other => {
                    return Err(AcmeError::config(
                        "challenges",
                        format!("{other:?} is not one of tls-alpn-01, http-01, dns-01"),
                    ));
                }
            };
            if !challenges.contains(&kind) {
                challenges.push(kind);
            }
        }
        if challenges.is_empty() {
            challenges = vec![ChallengeKind::TlsAlpn01, ChallengeKind::Http01];
        }
        let ca_roots = match self.ca_root.trim() {
            "" => Vec::new(),
            text => parse_roots(text)?,
        };
        let renew_when_remaining = match self.renew_when_remaining {
            0.0 => 1.0 / 3.0,
            f if f > 0.0 && f < 1.0 => f,
            _ => {
                return Err(AcmeError::config(
                    "renew_when_remaining",
                    "a fraction of the lifetime between 0 and 1 (e.g. 0.33)",
                ));
            }
        };
        let org = OrgId::new(self.org_id.trim())
            .map_err(|e| AcmeError::config("org_id", e.to_string()))?;
        Ok(AcmeSettings {
            directory_url,
            contact,
            external_account,
            key_type,
            domains,
            domains_from_apis: self.domains_from_apis,
            challenges,
            ca_roots,
            renew_when_remaining,
            http_port: match self.http_port {
                0 => 80,
                port => port,
            },
            org,
            lock_ttl: Duration::from_secs(match self.lock_ttl_seconds {
                0 => 120,
                seconds => seconds,
            }),
        })
    }
}

fn is_email(text: &str) -> bool {
    matches!(text.split_once('@'), Some((user, domain)) if !user.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace))
}

/// A DNS name with at least two labels of letters, digits and hyphens.
pub(crate) fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_roots(text: &str) -> Result<Vec<CertificateDer<'static>>, AcmeError> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = if text.contains("-----BEGIN") {
        text.to_owned()
    } else {
        std::fs::read_to_string(text).map_err(|_| {
            AcmeError::config(
                "ca_root",
                "neither PEM text nor a readable file holding PEM",
            )
        })?
    };
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| AcmeError::config("ca_root", "damaged PEM"))?;
    if roots.is_empty() {
        return Err(AcmeError::config("ca_root", "holds no CERTIFICATE block"));
    }
    if roots
        .iter()
        .any(|root| x509_parser::parse_x509_certificate(root).is_err())
    {
        return Err(AcmeError::config(
            "ca_root",
            "a CERTIFICATE block is not a certificate",
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> AcmeConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_resolve_and_defaults_apply() {
        let settings = config(
            r#"{"enabled":true,"directory":"letsencrypt-staging","email":"ops@example.com","accept_terms":true,"domains":["API.Example.com.","api.example.com"]}"#,
        )
        .validate()
        .unwrap();
        assert_eq!(settings.directory_url, LETSENCRYPT_STAGING);
        assert_eq!(settings.contact, ["mailto:ops@example.com"]);
        assert_eq!(settings.domains, ["api.example.com"]);
        assert_eq!(
            settings.challenges,
            [ChallengeKind::TlsAlpn01, ChallengeKind::Http01]
        );
        assert!((settings.renew_when_remaining - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(settings.http_port, 80);
        assert_eq!(settings.key_type, KeyType::EcdsaP256);
    }

    #[test]
    fn each_mistake_names_its_field() {
        let base = r#""enabled":true,"accept_terms":true,"domains":["a.example"]"#;
        for (extra, field) in [
            (r#","directory":"http://ca.example/dir""#, "directory"),
            (r#","email":"not an address""#, "email"),
            (r#","key_type":"rsa-2048""#, "key_type"),
            (r#","key_type":"dsa""#, "key_type"),
            (r#","challenges":["tls-sni-01"]"#, "challenges"),
            (r#","renew_when_remaining":1.5"#, "renew_when_remaining"),
            (
                r#","ca_root":"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----""#,
                "ca_root",
            ),
            (
                r#","external_account":{"key_id":"kid","hmac_key":"!!"}"#,
                "external_account.hmac_key",
            ),
            (
                r#","external_account":{"key_id":"","hmac_key":"aGk"}"#,
                "external_account.key_id",
            ),
        ] {
            let Err(error) = config(&format!("{{{base}{extra}}}")).validate() else {
                panic!("{extra} is accepted");
            };
            assert!(
                matches!(&error, AcmeError::Config { field: f, .. } if *f == field),
                "{extra}: {error}"
            );
        }
        let error = config(r#"{"enabled":true,"domains":["a.example"]}"#)
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("accept_terms"), "{error}");
        let error = config(r#"{"enabled":true,"accept_terms":true}"#)
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("domains"), "{error}");
        let error = config(r#"{"enabled":true,"accept_terms":true,"domains":["*.example.com"]}"#)
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("wildcards"), "{error}");
    }

    #[test]
    fn external_account_keys_decode_and_stay_out_of_debug() {
        let config = config(
            r#"{"enabled":true,"accept_terms":true,"domains":["a.example"],"external_account":{"key_id":"kid-1","hmac_key":"c2VjcmV0LWhtYWM="}}"#,
        );
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
        let settings = config.validate().unwrap();
        assert_eq!(
            settings.external_account,
            Some(("kid-1".to_owned(), b"secret-hmac".to_vec()))
        );
    }
}
