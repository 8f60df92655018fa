//! Classic API definitions: the fields certgate uses, loaded from `app_path` or given in code.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{CertificateRef, ConfigError, TlsVersion, invalid};

/// A classic API definition (the fields certgate uses).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ApiDefinition {
    /// The API's ID.
    pub api_id: String,
    /// Its name.
    pub name: String,
    /// Its org.
    pub org_id: String,
    /// Inactive APIs are not served.
    pub active: bool,
    /// The host name it is served on (empty: any).
    pub domain: String,
    /// Proxy settings.
    pub proxy: ProxyConfig,
    /// Require client certificates from `client_certificates` (plus `security.certificates.apis`).
    pub use_mutual_tls_auth: bool,
    /// Accepted client certificates or CAs.
    pub client_certificates: Vec<CertificateRef>,
    /// Server certificates for `domain`.
    pub certificates: Vec<CertificateRef>,
    /// Upstream client certificates: host pattern → certificate (`None`, written `""`: no
    /// certificate for those hosts).
    #[serde(deserialize_with = "super::reference::optional_refs::deserialize")]
    pub upstream_certificates: HashMap<String, Option<CertificateRef>>,
    /// Ignore upstream client certificates (this API's and the global ones).
    pub upstream_certificates_disabled: bool,
    /// Upstream pins: host pattern → comma-separated pins or public-key IDs.
    pub pinned_public_keys: HashMap<String, String>,
    /// Ignore pins (this API's and the global ones).
    pub certificate_pinning_disabled: bool,
    /// Ours: certificate revocation lists (inline PEM `X509 CRL`) checked for client
    /// certificates issued by the CAs in `client_certificates`. Each CRL covers the
    /// certificates its issuer signed, nothing more: a root's CRL can revoke the root's
    /// intermediates (and leaves it signed itself), not the leaves an intermediate signed. Each
    /// must be signed by a CA this API trusts (a certificate in one of its CA entries),
    /// otherwise the definition is refused, naming it.
    pub client_certificate_crls: Vec<String>,
    /// Ours: which certificates of a client's chain are checked against the CRLs: `"chain"`
    /// (default: the leaf and every intermediate, each against its issuer's CRL when one is
    /// configured) or `"leaf"` (the leaf only, against its issuer's CRL).
    pub client_certificate_crl_depth: String,
    /// Ours: a checked certificate whose issuer has no configured CRL: `"allow"` (default: the
    /// CRLs configured are applied, nothing is refused for lack of one) or `"deny"` (every
    /// checked certificate's issuer needs a CRL, as OpenSSL's `crl_check_all`).
    pub client_certificate_crl_unknown_status: String,
    /// Ours: refuse a CRL past its `nextUpdate` (the API definition is refused at load, and a
    /// CRL that expires later fails the checks that need it). Off: such a CRL is still used,
    /// with a warning in the log and the `certgate_crls_past_next_update` gauge.
    pub client_certificate_crls_strict: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl Default for ApiDefinition {
    fn default() -> Self {
        Self {
            api_id: String::new(),
            name: String::new(),
            org_id: String::new(),
            active: true,
            domain: String::new(),
            proxy: ProxyConfig::default(),
            use_mutual_tls_auth: false,
            client_certificates: Vec::new(),
            certificates: Vec::new(),
            upstream_certificates: HashMap::new(),
            upstream_certificates_disabled: false,
            pinned_public_keys: HashMap::new(),
            certificate_pinning_disabled: false,
            client_certificate_crls: Vec::new(),
            client_certificate_crl_depth: String::new(),
            client_certificate_crl_unknown_status: String::new(),
            client_certificate_crls_strict: false,
            unknown: BTreeMap::new(),
        }
    }
}

/// `proxy` of an API definition.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Path prefix the API answers on, e.g. `/api/`.
    pub listen_path: String,
    /// Upstream base URL (`http://` or `https://`).
    pub target_url: String,
    /// Remove `listen_path` before proxying.
    pub strip_listen_path: bool,
    /// Upstream TLS settings.
    pub transport: TransportConfig,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// `proxy.transport`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Lowest TLS version towards the upstream (0: the gateway's `proxy_ssl_min_version`).
    pub ssl_min_version: u16,
    /// Cipher suite names for the upstream.
    pub ssl_ciphers: Vec<String>,
    /// Skip upstream certificate verification for this API (dangerous).
    pub ssl_insecure_skip_verify: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// An entry of `client_certificate_crls` that is not a CRL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlListError {
    /// The entry (counted from 1) is not valid PEM.
    #[error("entry {entry}: {source}")]
    Pem {
        /// Its position, from 1.
        entry: usize,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// The entry (counted from 1) holds no CRL block.
    #[error("entry {entry} holds no -----BEGIN X509 CRL----- block")]
    NoCrl {
        /// Its position, from 1.
        entry: usize,
    },
}

/// An API's CRL option with a value certgate does not know; shows as the value and what is
/// allowed, `field` names the option.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not {allowed}")]
#[non_exhaustive]
pub struct CrlOptionError {
    /// The option (`client_certificate_crl_depth` or `client_certificate_crl_unknown_status`).
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: &'static str,
}

impl TransportConfig {
    /// `ssl_min_version` read as a [`TlsVersion`], with 0 meaning `default` (the gateway's
    /// `proxy_ssl_min_version`); an error names `field`.
    pub fn min_version(&self, field: &str, default: TlsVersion) -> Result<TlsVersion, ConfigError> {
        TlsVersion::from_tyk(field, self.ssl_min_version, default)
    }
}

/// Setters for an API definition written in code rather than read from a file; each returns
/// the definition, so they chain. [`ApiDefinition::from_json`] and the gateway's start check
/// what a file would be checked for.
///
/// ```
/// use gateway_runtime::ApiDefinition;
/// use gateway_runtime::config::CertificateRef;
///
/// let ca: tls_core::CertId = format!("org1{}", "ab".repeat(32)).parse()?;
/// let client: CertificateRef = format!("org1{}", "cd".repeat(32)).parse()?;
/// let api = ApiDefinition::new("orders", "/orders/", "https://orders.internal:8443")
///     .domain("api.example.com")
///     .require_client_certificate(ca)
///     .upstream_certificate("orders.internal", client);
/// assert!(api.use_mutual_tls_auth);
/// assert_eq!(api.client_certificates.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl ApiDefinition {
    /// An active API `api_id` answering on `listen_path` (e.g. `/orders/`) and proxying to
    /// `target_url` (`http://` or `https://`).
    pub fn new(
        api_id: impl Into<String>,
        listen_path: impl Into<String>,
        target_url: impl Into<String>,
    ) -> Self {
        let mut api = Self {
            api_id: api_id.into(),
            ..Self::default()
        };
        api.proxy.listen_path = listen_path.into();
        api.proxy.target_url = target_url.into();
        api
    }

    /// Serves the API on `domain` only (`domain`; default: any host).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self
    }

    /// Serves the certificate `reference` for the API's domain (`certificates`).
    #[must_use]
    pub fn server_certificate(mut self, reference: impl Into<CertificateRef>) -> Self {
        self.certificates.push(reference.into());
        self
    }

    /// Requires a client certificate that is `reference` or is issued by it (a CA): turns on
    /// `use_mutual_tls_auth` and adds to `client_certificates`.
    #[must_use]
    pub fn require_client_certificate(mut self, reference: impl Into<CertificateRef>) -> Self {
        self.use_mutual_tls_auth = true;
        self.client_certificates.push(reference.into());
        self
    }

    /// Presents `reference` to upstream hosts matching `host_pattern` (`upstream_certificates`).
    #[must_use]
    pub fn upstream_certificate(
        mut self,
        host_pattern: impl Into<String>,
        reference: impl Into<CertificateRef>,
    ) -> Self {
        self.upstream_certificates
            .insert(host_pattern.into(), Some(reference.into()));
        self
    }
}

impl ApiDefinition {
    /// Parses one API definition.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let api: Self = serde_json::from_str(text).map_err(|source| ConfigError::Json {
            path: path.to_owned(),
            source,
        })?;
        for key in api
            .unknown
            .keys()
            .chain(api.proxy.unknown.keys())
            .chain(api.proxy.transport.unknown.keys())
        {
            tracing::debug!(api_id = %api.api_id, field = %key, "API definition field not used by certgate");
        }
        api.validate(path)?;
        Ok(api)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let at = |field: &str| format!("{}: {field}", path.display());
        if self.api_id.is_empty() {
            return Err(invalid(at("api_id"), "is required"));
        }
        if !self.proxy.listen_path.starts_with('/') {
            return Err(invalid(at("proxy.listen_path"), "must start with /"));
        }
        let target = &self.proxy.target_url;
        if !(target.starts_with("http://") || target.starts_with("https://"))
            || target.parse::<http::Uri>().is_err()
        {
            return Err(invalid(
                at("proxy.target_url"),
                format!("{target:?} is not an http:// or https:// URL"),
            ));
        }
        self.proxy
            .transport
            .min_version(&at("proxy.transport.ssl_min_version"), TlsVersion::Tls12)?;
        self.crls()
            .map_err(|e| invalid(at("client_certificate_crls"), e.to_string()))?;
        self.crl_options()
            .map_err(|e| invalid(at(e.field), e.to_string()))?;
        Ok(())
    }

    /// How the CRLs are applied (`client_certificate_crl_depth`, `..._unknown_status`,
    /// `client_certificate_crls_strict`); an error names the option with an unknown value.
    pub(crate) fn crl_options(&self) -> Result<crate::mtls::CrlOptions, CrlOptionError> {
        let unknown = |field, value: &str, allowed| CrlOptionError {
            field,
            value: value.to_owned(),
            allowed,
        };
        let chain = match self.client_certificate_crl_depth.trim() {
            "" | "chain" => true,
            "leaf" => false,
            other => {
                return Err(unknown(
                    "client_certificate_crl_depth",
                    other,
                    "\"chain\" or \"leaf\"",
                ));
            }
        };
        let deny_unknown = match self.client_certificate_crl_unknown_status.trim() {
            "" | "allow" => false,
            "deny" => true,
            other => {
                return Err(unknown(
                    "client_certificate_crl_unknown_status",
                    other,
                    "\"allow\" or \"deny\"",
                ));
            }
        };
        Ok(crate::mtls::CrlOptions {
            chain,
            deny_unknown,
            strict: self.client_certificate_crls_strict,
        })
    }

    /// The parsed `client_certificate_crls`.
    pub(crate) fn crls(
        &self,
    ) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, CrlListError> {
        use rustls_pki_types::pem::PemObject as _;
        let mut crls = Vec::new();
        for (n, text) in self.client_certificate_crls.iter().enumerate() {
            let entry = n + 1;
            let found =
                rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(text.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| CrlListError::Pem { entry, source })?;
            if found.is_empty() {
                return Err(CrlListError::NoCrl { entry });
            }
            crls.extend(found);
        }
        Ok(crls)
    }

    /// Every `*.json` file in `dir`, sorted by file name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut apis = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            apis.push(Self::from_json(&text, &path)?);
        }
        let mut seen = std::collections::HashSet::new();
        for api in &apis {
            if !seen.insert(api.api_id.as_str()) {
                return Err(invalid(
                    "api_id",
                    format!("{:?} is defined twice in {}", api.api_id, dir.display()),
                ));
            }
        }
        Ok(apis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_definitions_need_an_id_a_path_and_an_http_target() {
        let good = r#"{"api_id": "a1", "proxy": {"listen_path": "/a/", "target_url": "https://up.example:8443/base"}}"#;
        let api = ApiDefinition::from_json(good, Path::new("a.json")).unwrap();
        assert!(api.active);
        for bad in [
            r#"{"proxy": {"listen_path": "/a/", "target_url": "http://x"}}"#,
            r#"{"api_id": "a", "proxy": {"listen_path": "a", "target_url": "http://x"}}"#,
            r#"{"api_id": "a", "proxy": {"listen_path": "/a", "target_url": "ftp://x"}}"#,
        ] {
            assert!(
                ApiDefinition::from_json(bad, Path::new("b.json")).is_err(),
                "{bad}"
            );
        }
    }
}
