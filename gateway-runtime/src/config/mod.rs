//! Configuration: a subset of `tyk.conf` and of classic API definitions, with Tyk's field names,
//! `TYK_GW_*` environment overrides, warnings for unknown fields and clear errors for invalid
//! values.
//!
//! One style for every certgate configuration (the expiry monitor's block included): serde reads
//! the document into these structs, which keep Tyk's spelling (TLS versions as 771/772 with 0
//! for the default, cipher suites as Go's names); a value of the wrong type is refused there,
//! with its line and column. [`GatewayConfig::validate`] then checks ranges and
//! combinations once, and the typed settings the runtime uses come from the same checks
//! ([`TlsVersion::from_tyk`], the listener's versions and cipher suites); the store's
//! [`StorageTarget`] (cert-store's Redis connection) is parsed there, and a starting gateway
//! keeps what its validation parsed.
//! Certificate references are typed when read ([`CertificateRef`]).
//!
//! - this module: `tyk.conf` ([`GatewayConfig`]), its setters, loading and validation;
//! - `env`: the `TYK_GW_*` overrides, the expiry monitor's included;
//! - `api`: classic API definitions ([`ApiDefinition`]);
//! - `storage`: `storage` and the Redis connection it describes ([`StorageConfig`], parsed into
//!   a [`StorageTarget`]);
//! - `tls`: TLS versions and cipher suite names;
//! - `reference`: certificate references;
//! - `ui`: the certificate page (`certificate_ui`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

mod api;
mod env;
mod reference;
mod storage;
mod tls;
mod ui;

pub use self::api::{ApiDefinition, CrlListError, CrlOptionError, ProxyConfig, TransportConfig};
pub(crate) use self::reference::SERVER_API_ID;
pub use self::reference::{CertificateRef, CertificateRefError};
pub use self::storage::{StorageConfig, StorageTarget};
pub use self::tls::{CipherSuiteError, TLS12, TLS13, TlsVersion, cipher_suites};
pub(crate) use self::tls::{CipherSuites, ServerTls};
pub use self::ui::CertificateUiConfig;

/// A configuration problem that stops start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The JSON does not parse or has a value of the wrong type. The message never quotes
    /// PEM text (a misplaced inline certificate could carry a private key).
    #[error("{path}: {}", redact_pem(&source.to_string()))]
    Json {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// The parser's message, with line and column.
        source: serde_json::Error,
    },
    /// A value is out of range or contradicts another.
    #[error("invalid configuration: {field}: {reason}")]
    Invalid {
        /// The field, in JSON path form (`http_server_options.min_version`) or the env variable.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// Cuts a message at the first PEM marker, so a quoted value never shows key material.
fn redact_pem(message: &str) -> String {
    match message.find("-----BEGIN") {
        Some(at) => format!(
            "{}<PEM text redacted>{}",
            &message[..at],
            line_info(message)
        ),
        None => message.to_owned(),
    }
}

/// The " at line L column C" suffix serde_json appends, if any.
fn line_info(message: &str) -> &str {
    message.rfind(" at line ").map_or("", |at| &message[at..])
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The gateway configuration (`tyk.conf` field names).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Address to listen on (`""` means all interfaces).
    pub listen_address: String,
    /// Port of the gateway listener.
    pub listen_port: u16,
    /// The control API secret (`X-Tyk-Authorization`).
    pub secret: String,
    /// Listener options.
    pub http_server_options: HttpServerOptions,
    /// Certificates and keys.
    pub security: SecurityConfig,
    /// Where certificates are stored.
    pub storage: StorageConfig,
    /// A folder of classic API definitions (`*.json`).
    pub app_path: Option<PathBuf>,
    /// Serve the control API only on this host name (empty: any).
    pub control_api_hostname: String,
    /// Serve the control API on its own port (0: on the gateway port).
    pub control_api_port: u16,
    /// Skip upstream certificate verification for every API (dangerous).
    pub proxy_ssl_insecure_skip_verify: bool,
    /// Lowest TLS version towards upstreams (default TLS 1.2).
    pub proxy_ssl_min_version: u16,
    /// Ours: let certificate references be file paths (off: only IDs and inline PEM).
    pub allow_certificate_files: bool,
    /// Ours: seconds a TLS handshake may take before the connection is dropped.
    pub tls_handshake_timeout_seconds: u64,
    /// Ours: seconds a client may take to send a request's headers, and a control API
    /// request's body; a slower client is disconnected.
    pub request_read_timeout_seconds: u64,
    /// Ours: largest control API request body in bytes.
    pub max_request_body_bytes: usize,
    /// Ours: URLs that receive expiry events as JSON (HTTP POST).
    pub certificate_expiry_webhooks: Vec<WebhookConfig>,
    /// Ours: the certificate page served on the control API's listener.
    pub certificate_ui: CertificateUiConfig,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen_address: String::new(),
            listen_port: 8080,
            secret: String::new(),
            http_server_options: HttpServerOptions::default(),
            security: SecurityConfig::default(),
            storage: StorageConfig::default(),
            app_path: None,
            control_api_hostname: String::new(),
            control_api_port: 0,
            proxy_ssl_insecure_skip_verify: false,
            proxy_ssl_min_version: TLS12,
            allow_certificate_files: false,
            tls_handshake_timeout_seconds: 10,
            request_read_timeout_seconds: 30,
            max_request_body_bytes: 1 << 20,
            certificate_expiry_webhooks: Vec::new(),
            certificate_ui: CertificateUiConfig::default(),
            unknown: BTreeMap::new(),
        }
    }
}

/// One expiry-event webhook.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Where to POST (`http://` or `https://`).
    pub url: String,
    /// Extra request headers (e.g. an authorization token).
    pub headers: HashMap<String, String>,
    /// Seconds one attempt may take.
    pub timeout_seconds: u64,
    /// Attempts after the first, with exponential backoff from 500 ms.
    pub retries: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            headers: HashMap::new(),
            timeout_seconds: 5,
            retries: 3,
        }
    }
}

/// `http_server_options`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HttpServerOptions {
    /// Terminate TLS on the gateway port.
    pub use_ssl: bool,
    /// Server certificates for every domain.
    pub ssl_certificates: Vec<CertificateRef>,
    /// Lowest TLS version (771 = 1.2, 772 = 1.3; 0 = 1.2).
    pub min_version: u16,
    /// Highest TLS version (0 = 1.3).
    pub max_version: u16,
    /// Cipher suite names as Go/Tyk writes them; empty = rustls' defaults.
    pub ssl_ciphers: Vec<String>,
    /// Offer HTTP/2 (ALPN h2).
    pub enable_http2: bool,
    /// Do not send the list of acceptable client CAs in the CertificateRequest.
    pub skip_client_ca_announcement: bool,
    /// Tyk's: route and forward request paths exactly as sent, without cleaning (dot segments,
    /// repeated slashes, unreserved percent-escapes) or refusing encoded slashes and NULs.
    /// Dangerous: an upstream that resolves `/open/../admin` itself serves what the gateway
    /// routed as `/open/`, past any mutual TLS of the API at `/admin/` (see SECURITY.md).
    pub skip_url_cleaning: bool,
    /// Seconds a client connection may stay open with no request in flight (after the
    /// handshake, between keep-alive requests, idle HTTP/2 with GOAWAY); 0 = 20 seconds.
    pub idle_timeout: u64,
    /// Ours: most client connections open at once; more are closed at accept. 0 = half the
    /// process's open-file limit (the rest is left for upstreams and storage).
    pub max_connections: usize,
    /// Ours: most client connections open at once from one IP address; 0 = no per-IP limit
    /// (clients behind one NAT or load balancer share an address).
    pub max_connections_per_ip: usize,
    /// Ours: also serve certificates of the store that nothing names (see
    /// [`CertificatesFromStore`]); off by default, as in Tyk.
    pub certificates_from_store: CertificatesFromStore,
    /// Ours: obtain and renew certificates by ACME (feature `acme`; see [`acme::AcmeConfig`]).
    #[cfg(feature = "acme")]
    pub acme: acme::AcmeConfig,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// `http_server_options.certificates_from_store`: serve every stored certificate that has a
/// private key, not only the ones `ssl_certificates` and the APIs' `certificates` name ("store
/// it, and it is served").
///
/// Selection by SNI keeps its order (exact name, then a wildcard for the parent, then the
/// default) over one snapshot that the store's change notices rebuild; a handshake never reads
/// storage. A certificate is served for its DNS names (its subject CN when it has none). Named
/// certificates come first: a stored one never takes a name that a configured one has, and
/// never becomes the default. Among stored certificates with the same name, the one that
/// expires last is served (a renewed certificate replaces the old one as soon as it is
/// stored). CA certificates, certificates without a private key (or whose key does not
/// decrypt) and expired ones are not served.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CertificatesFromStore {
    /// Serve stored certificates.
    pub enabled: bool,
    /// Only the certificates of these orgs (`""` is the org-less ones); empty means every org.
    pub orgs: Vec<String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl HttpServerOptions {
    /// `idle_timeout` with its default applied.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(match self.idle_timeout {
            0 => 20,
            seconds => seconds,
        })
    }
}

/// `security`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Encrypts private keys at rest; falls back to `secret` when empty (as in Tyk).
    pub private_certificate_encoding_secret: String,
    /// How private keys are written: `"modern"` (default) or `"legacy"` (Tyk's, for a Redis
    /// shared with Tyk nodes). See [`GatewayConfig::key_format`].
    pub private_certificate_key_format: String,
    /// Expiry monitor settings (`warning_threshold_days`, ...).
    pub certificate_expiry_monitor: expiry_monitor::ExpiryMonitorConfig,
    /// Upstream pins for every API: host pattern → comma-separated pins or public-key IDs.
    pub pinned_public_keys: HashMap<String, String>,
    /// Certificate lists.
    pub certificates: CertificateLists,
    /// Require client certificates on the control API.
    pub control_api_use_mutual_tls: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// `security.certificates`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CertificateLists {
    /// Client certificates (or CAs) accepted by every mTLS API.
    pub apis: Vec<CertificateRef>,
    /// Upstream client certificates for every API: host pattern → certificate (`None`, written
    /// `""`: no certificate for those hosts).
    #[serde(deserialize_with = "reference::optional_refs::deserialize")]
    pub upstream: HashMap<String, Option<CertificateRef>>,
    /// Client certificates (or CAs) accepted by the control API.
    pub control_api: Vec<CertificateRef>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// Setters for a configuration written in code rather than read from a file; each returns the
/// configuration, so they chain. [`GatewayConfig::validate`] (run by the builder's `start`)
/// still checks the result.
///
/// ```
/// use gateway_runtime::config::CertificateRef;
/// use gateway_runtime::{GatewayConfig, TlsVersion};
///
/// let id: tls_core::CertId = format!("org1{}", "ab".repeat(32)).parse()?;
/// let ca: CertificateRef = "-----BEGIN CERTIFICATE-----\n(the CA's PEM)\n-----END CERTIFICATE-----".parse()?;
/// let client = CertificateRef::Id(format!("org1{}", "cd".repeat(32)).parse()?);
/// let config = GatewayConfig::default()
///     .listen("127.0.0.1", 8443)
///     .with_tls()
///     .tls_versions(TlsVersion::Tls13, TlsVersion::Tls13)
///     .control_secret("a long control API secret")
///     .server_certificate(id.clone())
///     .control_api_client_certificate(ca)
///     .upstream_certificate("*.internal.example", client);
/// assert!(config.http_server_options.use_ssl);
/// assert_eq!(config.listen_port, 8443);
/// assert_eq!(config.http_server_options.min_version, 772);
/// assert_eq!(config.http_server_options.ssl_certificates, [id.into()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl GatewayConfig {
    /// Listens on `address` (`""` for every interface) and `port` (0 picks a free one).
    #[must_use]
    pub fn listen(mut self, address: impl Into<String>, port: u16) -> Self {
        self.listen_address = address.into();
        self.listen_port = port;
        self
    }

    /// Terminates TLS on the gateway port and offers HTTP/2 (`use_ssl`, `enable_http2`).
    #[must_use]
    pub fn with_tls(mut self) -> Self {
        self.http_server_options.use_ssl = true;
        self.http_server_options.enable_http2 = true;
        self
    }

    /// Offers TLS versions `min` to `max` on the gateway port (`http_server_options.min_version`
    /// and `max_version`; TLS 1.2 to 1.3 unless set).
    #[must_use]
    pub fn tls_versions(mut self, min: TlsVersion, max: TlsVersion) -> Self {
        self.http_server_options.min_version = min.wire();
        self.http_server_options.max_version = max.wire();
        self
    }

    /// The control API secret (`secret`; `X-Tyk-Authorization`). Also encrypts private keys
    /// at rest unless `security.private_certificate_encoding_secret` is set, as in Tyk.
    #[must_use]
    pub fn control_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// Adds a server certificate for every domain (`http_server_options.ssl_certificates`):
    /// a stored certificate's ID (a [`tls_core::CertId`] converts), or another
    /// [`CertificateRef`].
    #[must_use]
    pub fn server_certificate(mut self, reference: impl Into<CertificateRef>) -> Self {
        self.http_server_options
            .ssl_certificates
            .push(reference.into());
        self
    }

    /// Accepts client certificates issued by (or equal to) `reference` on the control API
    /// (`security.certificates.control_api`; with `control_api_use_mutual_tls`).
    #[must_use]
    pub fn control_api_client_certificate(mut self, reference: impl Into<CertificateRef>) -> Self {
        self.security
            .certificates
            .control_api
            .push(reference.into());
        self
    }

    /// Presents `reference` to upstreams whose host matches `host_pattern` (`*`, `*.example.com`,
    /// `host:port`), for every API (`security.certificates.upstream`).
    #[must_use]
    pub fn upstream_certificate(
        mut self,
        host_pattern: impl Into<String>,
        reference: impl Into<CertificateRef>,
    ) -> Self {
        self.security
            .certificates
            .upstream
            .insert(host_pattern.into(), Some(reference.into()));
        self
    }
}

impl GatewayConfig {
    /// Reads a configuration file, applies `env` overrides, warns about unknown fields and
    /// validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, path, env)
    }

    /// Parses configuration text (see [`GatewayConfig::load`]).
    pub fn from_json(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut config: Self = serde_json::from_str(text).map_err(|source| ConfigError::Json {
            path: path.to_owned(),
            source,
        })?;
        config.apply_env(env)?;
        config.warn_unknown();
        config.validate()?;
        Ok(config)
    }
}

impl GatewayConfig {
    fn warn_unknown(&self) {
        let groups: [(&str, &BTreeMap<String, Value>); 6] = [
            ("", &self.unknown),
            ("http_server_options.", &self.http_server_options.unknown),
            (
                "http_server_options.certificates_from_store.",
                &self.http_server_options.certificates_from_store.unknown,
            ),
            ("security.", &self.security.unknown),
            (
                "security.certificates.",
                &self.security.certificates.unknown,
            ),
            ("storage.", &self.storage.unknown),
        ];
        for (prefix, unknown) in groups {
            for key in unknown.keys() {
                tracing::warn!(field = %format!("{prefix}{key}"), "unknown or unsupported configuration field; ignored");
            }
        }
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validated().map(drop)
    }

    /// [`validate`](Self::validate), returning what it parsed that the runtime uses as is: the
    /// store's target (the Redis connection, parsed once here).
    pub(crate) fn validated(&self) -> Result<StorageTarget, ConfigError> {
        self.security
            .certificate_expiry_monitor
            .validate()
            .map_err(|e| invalid("security.certificate_expiry_monitor", e.to_string()))?;
        for (n, hook) in self.certificate_expiry_webhooks.iter().enumerate() {
            let field = format!("certificate_expiry_webhooks[{n}].url");
            let uri: http::Uri = hook
                .url
                .parse()
                .map_err(|_| invalid(&field, format!("{:?} is not a URL", hook.url)))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(invalid(
                    field,
                    format!("{:?} is not an http:// or https:// URL", hook.url),
                ));
            }
        }
        parse_key_format(&self.security.private_certificate_key_format)
            .map_err(|e| invalid("security.private_certificate_key_format", e.to_string()))?;
        let options = &self.http_server_options;
        options.tls()?;
        self.proxy_min_version()?;
        for (n, org) in options.certificates_from_store.orgs.iter().enumerate() {
            tls_core::OrgId::new(org.as_str()).map_err(|e| {
                invalid(
                    format!("http_server_options.certificates_from_store.orgs[{n}]"),
                    e.to_string(),
                )
            })?;
        }
        let storage = self.storage.parse()?;
        if self.request_read_timeout_seconds == 0 {
            return Err(invalid(
                "request_read_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.http_server_options.idle_timeout > 86_400 {
            return Err(invalid(
                "http_server_options.idle_timeout",
                "must be at most 86400 seconds (0 = 20 seconds)",
            ));
        }
        if self.tls_handshake_timeout_seconds == 0 {
            return Err(invalid(
                "tls_handshake_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.security.control_api_use_mutual_tls && !self.http_server_options.use_ssl {
            return Err(invalid(
                "security.control_api_use_mutual_tls",
                "needs http_server_options.use_ssl",
            ));
        }
        self.certificate_ui.validate()?;
        if !self.secret.is_empty() && self.secret.len() < 8 {
            tracing::warn!("the control API secret is shorter than 8 characters");
        }
        Ok(storage)
    }

    /// The lowest TLS version towards upstreams (`proxy_ssl_min_version`; 0 is TLS 1.2), the
    /// default of every API's `proxy.transport.ssl_min_version`.
    pub fn proxy_min_version(&self) -> Result<TlsVersion, ConfigError> {
        TlsVersion::from_tyk(
            "proxy_ssl_min_version",
            self.proxy_ssl_min_version,
            TlsVersion::Tls12,
        )
    }

    /// The format private keys are written in: `security.private_certificate_key_format`
    /// (`"modern"`, the default, or `"legacy"`, Tyk's); validated at load.
    pub fn key_format(&self) -> tls_core::KeyFormat {
        parse_key_format(&self.security.private_certificate_key_format).unwrap_or_default()
    }

    /// The secret that encrypts private keys: the dedicated one, else `secret` (as in Tyk).
    pub fn encoding_secret(&self) -> &str {
        if self.security.private_certificate_encoding_secret.is_empty() {
            &self.secret
        } else {
            &self.security.private_certificate_encoding_secret
        }
    }
}

/// `security.private_certificate_key_format`: empty or `modern`, or `legacy`.
pub fn parse_key_format(text: &str) -> Result<tls_core::KeyFormat, KeyFormatError> {
    match text {
        "" | "modern" => Ok(tls_core::KeyFormat::Modern),
        "legacy" => Ok(tls_core::KeyFormat::Legacy),
        other => Err(KeyFormatError {
            value: other.to_owned(),
        }),
    }
}

/// A `security.private_certificate_key_format` that is not a key format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a key format: use \"modern\" (AES-256-GCM, the default) or \"legacy\" (Tyk's format, which Tyk nodes sharing the Redis can read)"
)]
#[non_exhaustive]
pub struct KeyFormatError {
    /// The value given.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_json(text, Path::new("test.json"), Vec::new())
    }

    #[test]
    fn tyk_field_names_parse_and_defaults_apply() {
        // A build without the `redis` feature refuses a Redis storage block at load.
        let storage = if cfg!(feature = "redis") {
            r#", "storage": {"type": "redis", "host": "h", "port": 7000}"#
        } else {
            ""
        };
        let config = parse(&format!(
            r#"{{"listen_port": 8443, "secret": "s3cr3t-key", "http_server_options": {{"use_ssl": true, "min_version": 772,
                "ssl_certificates": ["abc"]}}, "security": {{"private_certificate_encoding_secret": "enc",
                "certificates": {{"upstream": {{"*": "id1"}}}}}}{storage}}}"#
        ))
        .unwrap();
        assert_eq!(config.listen_port, 8443);
        assert!(config.http_server_options.use_ssl);
        assert_eq!(config.http_server_options.min_version, TLS13);
        assert_eq!(
            config.security.certificates.upstream["*"]
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("id1")
        );
        assert_eq!(config.encoding_secret(), "enc");
        #[cfg(feature = "redis")]
        assert_eq!(
            config
                .storage
                .parse()
                .unwrap()
                .redis()
                .unwrap()
                .connection
                .topology,
            cert_store::RedisTopology::Single {
                addr: "h:7000".into()
            }
        );
        assert_eq!(config.proxy_ssl_min_version, TLS12);
    }

    #[test]
    fn json_errors_never_quote_pem_text() {
        let text = r#"{"http_server_options": {"ssl_certificates": "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----"}}"#;
        let err = parse(text).unwrap_err().to_string();
        assert!(
            !err.contains("secret") && err.contains("redacted") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_are_clear_errors() {
        for (text, field) in [
            (
                r#"{"http_server_options": {"min_version": 769}}"#,
                "min_version",
            ),
            (
                r#"{"http_server_options": {"min_version": 772, "max_version": 771}}"#,
                "min_version",
            ),
            (
                r#"{"http_server_options": {"ssl_ciphers": ["TLS_RSA_WITH_RC4_128_SHA"]}}"#,
                "ssl_ciphers",
            ),
            (r#"{"storage": {"type": "mongo"}}"#, "storage.type"),
            (
                r#"{"http_server_options": {"idle_timeout": 100000}}"#,
                "idle_timeout",
            ),
            (
                r#"{"listen_port": "80"}"#,
                "expected u16 at line 1 column 20",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }
}
