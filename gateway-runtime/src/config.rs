//! Configuration: a subset of `tyk.conf` and of classic API definitions, with Tyk's field names,
//! `TYK_GW_*` environment overrides, warnings for unknown fields and clear errors for invalid
//! values.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

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

/// TLS protocol versions as `tyk.conf` writes them (Go's `tls.VersionTLS12` = 771, 1.3 = 772).
pub const TLS12: u16 = 771;
/// TLS 1.3.
pub const TLS13: u16 = 772;

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
    pub certificate_ui: crate::ui::CertificateUiConfig,
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
            certificate_ui: crate::ui::CertificateUiConfig::default(),
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
    /// Server certificates (IDs or inline PEM) for every domain.
    pub ssl_certificates: Vec<String>,
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
    pub apis: Vec<String>,
    /// Upstream client certificates for every API: host pattern → certificate.
    pub upstream: HashMap<String, String>,
    /// Client certificates (or CAs) accepted by the control API.
    pub control_api: Vec<String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// `storage`, with Tyk's field names. One node (`host`/`port`, or the first of `addrs`), a Redis
/// Cluster (`enable_cluster` with `addrs` as seeds) or Redis Sentinel (`master_name` with
/// `addrs` as the sentinels).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StorageConfig {
    /// `memory` (default) or `redis`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Redis host (without `addrs`).
    pub host: String,
    /// Redis port (without `addrs`).
    pub port: u16,
    /// `host:port` list: one node (the first is used), the cluster's seed nodes, or the
    /// sentinels.
    pub addrs: Vec<String>,
    /// Redis Cluster: `addrs` are seed nodes.
    pub enable_cluster: bool,
    /// Redis Sentinel: the monitored master's name; `addrs` are the sentinels.
    pub master_name: String,
    /// Password on the sentinels.
    pub sentinel_password: String,
    /// ACL user name on the sentinels.
    pub sentinel_username: String,
    /// Redis ACL user name.
    pub username: String,
    /// Redis password.
    pub password: String,
    /// Redis database number (not on a cluster).
    pub database: i64,
    /// Seconds connecting and each command may take (0: 2 s).
    pub timeout: u64,
    /// Connect to Redis (and the sentinels) over TLS.
    pub use_ssl: bool,
    /// With `use_ssl`: accept any server certificate (dangerous).
    pub ssl_insecure_skip_verify: bool,
    /// With `use_ssl`: PEM file of the CA certificates to trust (default: the system's).
    pub ca_file: String,
    /// With `use_ssl`: PEM client certificate (with `key_file`).
    pub cert_file: String,
    /// With `use_ssl`: PEM key of `cert_file`.
    pub key_file: String,
    /// Lowest TLS version towards Redis: `""`, `"1.0"`, `"1.1"` or `"1.2"` (Redis connections
    /// negotiate TLS 1.2 or 1.3 whatever is asked below 1.2).
    pub tls_min_version: String,
    /// Highest TLS version towards Redis: `""` or `"1.3"`.
    pub tls_max_version: String,
    /// Ours: replicas that must have every write before it is acknowledged (`WAIT`); a write
    /// that does not reach them is answered 503.
    pub min_replicas_to_ack: u32,
    /// Ours: milliseconds a write waits for `min_replicas_to_ack` replicas.
    pub min_replicas_timeout_ms: u64,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: "memory".into(),
            host: "127.0.0.1".into(),
            port: 6379,
            addrs: Vec::new(),
            enable_cluster: false,
            master_name: String::new(),
            sentinel_password: String::new(),
            sentinel_username: String::new(),
            username: String::new(),
            password: String::new(),
            database: 0,
            timeout: 0,
            use_ssl: false,
            ssl_insecure_skip_verify: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            tls_min_version: String::new(),
            tls_max_version: String::new(),
            min_replicas_to_ack: 0,
            min_replicas_timeout_ms: 1000,
            unknown: BTreeMap::new(),
        }
    }
}

impl StorageConfig {
    #[cfg(feature = "redis")]
    fn addrs_or_host(&self) -> Vec<String> {
        if self.addrs.is_empty() {
            vec![format!("{}:{}", self.host, self.port)]
        } else {
            self.addrs.clone()
        }
    }

    /// Checks the Redis fields (only when `type` is `redis`).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.kind != "redis" {
            return Ok(());
        }
        if self.enable_cluster && !self.master_name.is_empty() {
            return Err(invalid(
                "storage.master_name",
                "give either enable_cluster (Redis Cluster) or master_name (Redis Sentinel), not both",
            ));
        }
        if self.enable_cluster && self.database != 0 {
            return Err(invalid(
                "storage.database",
                "a Redis Cluster has only database 0; remove database or enable_cluster",
            ));
        }
        if !matches!(self.tls_min_version.as_str(), "" | "1.0" | "1.1" | "1.2") {
            return Err(invalid(
                "storage.tls_min_version",
                format!(
                    "{:?} is not supported: use \"1.0\", \"1.1\" or \"1.2\" (Redis connections negotiate TLS 1.2 or 1.3)",
                    self.tls_min_version
                ),
            ));
        }
        if !matches!(self.tls_max_version.as_str(), "" | "1.3") {
            return Err(invalid(
                "storage.tls_max_version",
                format!(
                    "{:?} is not supported: use \"1.3\" (Redis connections negotiate TLS 1.2 or 1.3)",
                    self.tls_max_version
                ),
            ));
        }
        if self.min_replicas_to_ack > 0 && self.min_replicas_timeout_ms == 0 {
            return Err(invalid(
                "storage.min_replicas_timeout_ms",
                "must be at least 1 when min_replicas_to_ack is set (0 would wait forever)",
            ));
        }
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(invalid(
                "storage.cert_file",
                "a client certificate needs both cert_file and key_file",
            ));
        }
        #[cfg(feature = "redis")]
        self.redis_connection()?;
        Ok(())
    }

    /// The Redis connection these fields describe.
    #[cfg(feature = "redis")]
    pub fn redis_connection(&self) -> Result<cert_store::RedisConnection, ConfigError> {
        use cert_store::{RedisConnection, RedisTls};
        let addrs = self.addrs_or_host();
        let mut connection = if self.enable_cluster {
            RedisConnection::cluster(addrs)
        } else if !self.master_name.is_empty() {
            RedisConnection::sentinel(addrs, self.master_name.clone())
                .with_sentinel_credentials(&self.sentinel_username, &self.sentinel_password)
        } else {
            RedisConnection::single(addrs.into_iter().next().unwrap_or_default())
        }
        .with_credentials(&self.username, &self.password)
        .with_database(self.database);
        if self.timeout > 0 {
            let timeout = std::time::Duration::from_secs(self.timeout);
            connection = connection.with_timeouts(timeout, timeout);
        }
        if self.use_ssl {
            let file = |f: &str| (!f.is_empty()).then(|| PathBuf::from(f));
            let mut tls = RedisTls::new();
            tls.ca_file = file(&self.ca_file);
            tls.cert_file = file(&self.cert_file);
            tls.key_file = file(&self.key_file);
            tls.insecure_skip_verify = self.ssl_insecure_skip_verify;
            connection = connection.with_tls(tls);
        }
        connection
            .validate()
            .map_err(|e| invalid("storage", e.to_string()))?;
        Ok(connection)
    }

    /// The Redis store settings these fields describe.
    #[cfg(feature = "redis")]
    pub fn redis_config(&self) -> Result<cert_store::RedisConfig, ConfigError> {
        Ok(
            cert_store::RedisConfig::new(self.redis_connection()?).with_min_replicas_to_ack(
                self.min_replicas_to_ack,
                std::time::Duration::from_millis(self.min_replicas_timeout_ms),
            ),
        )
    }
}

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
    /// Accepted client certificates or CAs: IDs or inline PEM.
    pub client_certificates: Vec<String>,
    /// Server certificates for `domain`: IDs or inline PEM.
    pub certificates: Vec<String>,
    /// Upstream client certificates: host pattern → certificate.
    pub upstream_certificates: HashMap<String, String>,
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

/// Setters for a configuration written in code rather than read from a file; each returns the
/// configuration, so they chain. [`GatewayConfig::validate`] (run by the builder's `start`)
/// still checks the result.
///
/// ```
/// use gateway_runtime::GatewayConfig;
/// let config = GatewayConfig::default()
///     .listen("127.0.0.1", 8443)
///     .with_tls()
///     .control_secret("a long control API secret")
///     .server_certificate("org1f1c2...: a certificate ID, or inline PEM");
/// assert!(config.http_server_options.use_ssl);
/// assert_eq!(config.listen_port, 8443);
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

    /// The control API secret (`secret`; `X-Tyk-Authorization`). Also encrypts private keys
    /// at rest unless `security.private_certificate_encoding_secret` is set, as in Tyk.
    #[must_use]
    pub fn control_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// Adds a server certificate for every domain (`http_server_options.ssl_certificates`):
    /// a certificate ID, or inline PEM.
    #[must_use]
    pub fn server_certificate(mut self, reference: impl ToString) -> Self {
        self.http_server_options
            .ssl_certificates
            .push(reference.to_string());
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

    /// Applies `TYK_GW_*` overrides for the top-level fields and the secrets.
    pub fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        self.security.certificate_expiry_monitor = self
            .security
            .certificate_expiry_monitor
            .with_env(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| invalid("security.certificate_expiry_monitor", e.to_string()))?;
        for (name, value) in env {
            let Some(field) = name.strip_prefix("TYK_GW_") else {
                continue;
            };
            match field {
                "LISTENADDRESS" => self.listen_address = value,
                "LISTENPORT" => self.listen_port = parse_env(&name, &value)?,
                "SECRET" => self.secret = value,
                "SECURITY_PRIVATECERTIFICATEENCODINGSECRET" => {
                    self.security.private_certificate_encoding_secret = value
                }
                "SECURITY_PRIVATECERTIFICATEKEYFORMAT" => {
                    self.security.private_certificate_key_format = value
                }
                "SECURITY_CONTROLAPIUSEMUTUALTLS" => {
                    self.security.control_api_use_mutual_tls = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_USESSL" => {
                    self.http_server_options.use_ssl = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_ENABLEHTTP2" => {
                    self.http_server_options.enable_http2 = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MINVERSION" => {
                    self.http_server_options.min_version = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MAXVERSION" => {
                    self.http_server_options.max_version = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_CERTIFICATESFROMSTORE_ENABLED" => {
                    self.http_server_options.certificates_from_store.enabled =
                        parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_CERTIFICATESFROMSTORE_ORGS" => {
                    self.http_server_options.certificates_from_store.orgs =
                        value.split(',').map(|org| org.trim().to_owned()).collect()
                }
                "HTTPSERVEROPTIONS_SKIPURLCLEANING" => {
                    self.http_server_options.skip_url_cleaning = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_IDLETIMEOUT" => {
                    self.http_server_options.idle_timeout = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MAXCONNECTIONS" => {
                    self.http_server_options.max_connections = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MAXCONNECTIONSPERIP" => {
                    self.http_server_options.max_connections_per_ip = parse_env(&name, &value)?
                }
                "STORAGE_TYPE" => self.storage.kind = value,
                "STORAGE_HOST" => self.storage.host = value,
                "STORAGE_PORT" => self.storage.port = parse_env(&name, &value)?,
                "STORAGE_USERNAME" => self.storage.username = value,
                "STORAGE_PASSWORD" => self.storage.password = value,
                "STORAGE_DATABASE" => self.storage.database = parse_env(&name, &value)?,
                "STORAGE_USESSL" => self.storage.use_ssl = parse_env(&name, &value)?,
                "STORAGE_ADDRS" => {
                    self.storage.addrs = value
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "STORAGE_ENABLECLUSTER" => self.storage.enable_cluster = parse_env(&name, &value)?,
                "STORAGE_MASTERNAME" => self.storage.master_name = value,
                "STORAGE_SENTINELPASSWORD" => self.storage.sentinel_password = value,
                "STORAGE_SENTINELUSERNAME" => self.storage.sentinel_username = value,
                "STORAGE_TIMEOUT" => self.storage.timeout = parse_env(&name, &value)?,
                "STORAGE_SSLINSECURESKIPVERIFY" => {
                    self.storage.ssl_insecure_skip_verify = parse_env(&name, &value)?
                }
                "STORAGE_CAFILE" => self.storage.ca_file = value,
                "STORAGE_CERTFILE" => self.storage.cert_file = value,
                "STORAGE_KEYFILE" => self.storage.key_file = value,
                "STORAGE_TLSMINVERSION" => self.storage.tls_min_version = value,
                "STORAGE_TLSMAXVERSION" => self.storage.tls_max_version = value,
                "STORAGE_MINREPLICASTOACK" => {
                    self.storage.min_replicas_to_ack = parse_env(&name, &value)?
                }
                "STORAGE_MINREPLICASTIMEOUTMS" => {
                    self.storage.min_replicas_timeout_ms = parse_env(&name, &value)?
                }
                "APPPATH" => self.app_path = Some(PathBuf::from(value)),
                "CONTROLAPIHOSTNAME" => self.control_api_hostname = value,
                "CONTROLAPIPORT" => self.control_api_port = parse_env(&name, &value)?,
                "PROXYSSLINSECURESKIPVERIFY" => {
                    self.proxy_ssl_insecure_skip_verify = parse_env(&name, &value)?
                }
                "PROXYSSLMINVERSION" => self.proxy_ssl_min_version = parse_env(&name, &value)?,
                // The expiry monitor reads its own variables.
                _ => {}
            }
        }
        Ok(())
    }

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
            .map_err(|reason| invalid("security.private_certificate_key_format", reason))?;
        let options = &self.http_server_options;
        let min = tls_version(
            "http_server_options.min_version",
            options.min_version,
            TLS12,
        )?;
        let max = tls_version(
            "http_server_options.max_version",
            options.max_version,
            TLS13,
        )?;
        if min > max {
            return Err(invalid(
                "http_server_options.min_version",
                "is above max_version",
            ));
        }
        tls_version("proxy_ssl_min_version", self.proxy_ssl_min_version, TLS12)?;
        crate::tls::cipher_suites(&options.ssl_ciphers)
            .map_err(|reason| invalid("http_server_options.ssl_ciphers", reason))?;
        for (n, org) in options.certificates_from_store.orgs.iter().enumerate() {
            tls_core::OrgId::new(org.as_str()).map_err(|e| {
                invalid(
                    format!("http_server_options.certificates_from_store.orgs[{n}]"),
                    e.to_string(),
                )
            })?;
        }
        match self.storage.kind.as_str() {
            "memory" | "" => {}
            "redis" if cfg!(feature = "redis") => {}
            "redis" => {
                return Err(invalid(
                    "storage.type",
                    "this build has no Redis support (feature `redis`)",
                ));
            }
            other => {
                return Err(invalid(
                    "storage.type",
                    format!("{other:?} is not supported; use \"memory\" or \"redis\""),
                ));
            }
        }
        self.storage.validate()?;
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
        self.certificate_ui
            .validate()
            .map_err(|reason| invalid("certificate_ui", reason))?;
        if !self.secret.is_empty() && self.secret.len() < 8 {
            tracing::warn!("the control API secret is shorter than 8 characters");
        }
        Ok(())
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

/// Accepts 0 (the default), 771 (TLS 1.2) and 772 (TLS 1.3).
pub fn tls_version(field: &str, value: u16, default: u16) -> Result<u16, ConfigError> {
    match value {
        0 => Ok(default),
        TLS12 | TLS13 => Ok(value),
        769 | 770 => Err(invalid(
            field,
            format!(
                "{value} is TLS 1.0/1.1, which certgate does not offer; use 771 (TLS 1.2) or 772 (TLS 1.3)"
            ),
        )),
        _ => Err(invalid(
            field,
            format!("{value} is not a TLS version; use 771 (TLS 1.2) or 772 (TLS 1.3)"),
        )),
    }
}

/// `security.private_certificate_key_format`: empty or `modern`, or `legacy`.
pub fn parse_key_format(text: &str) -> Result<tls_core::KeyFormat, String> {
    match text {
        "" | "modern" => Ok(tls_core::KeyFormat::Modern),
        "legacy" => Ok(tls_core::KeyFormat::Legacy),
        other => Err(format!(
            "{other:?} is not a key format: use \"modern\" (AES-256-GCM, the default) or \"legacy\" (Tyk's format, which Tyk nodes sharing the Redis can read)"
        )),
    }
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is not a valid value")))
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
        tls_version(
            &at("proxy.transport.ssl_min_version"),
            self.proxy.transport.ssl_min_version,
            TLS12,
        )?;
        self.crls()
            .map_err(|reason| invalid(at("client_certificate_crls"), reason))?;
        self.crl_options()
            .map_err(|(field, reason)| invalid(at(field), reason))?;
        Ok(())
    }

    /// How the CRLs are applied (`client_certificate_crl_depth`, `..._unknown_status`,
    /// `client_certificate_crls_strict`); the field and the reason when a value is unknown.
    pub(crate) fn crl_options(&self) -> Result<crate::mtls::CrlOptions, (&'static str, String)> {
        let chain = match self.client_certificate_crl_depth.trim() {
            "" | "chain" => true,
            "leaf" => false,
            other => {
                return Err((
                    "client_certificate_crl_depth",
                    format!("{other:?} is not \"chain\" or \"leaf\""),
                ));
            }
        };
        let deny_unknown = match self.client_certificate_crl_unknown_status.trim() {
            "" | "allow" => false,
            "deny" => true,
            other => {
                return Err((
                    "client_certificate_crl_unknown_status",
                    format!("{other:?} is not \"allow\" or \"deny\""),
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
    ) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, String> {
        use rustls_pki_types::pem::PemObject as _;
        let mut crls = Vec::new();
        for (n, text) in self.client_certificate_crls.iter().enumerate() {
            let found =
                rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(text.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("entry {}: {e}", n + 1))?;
            if found.is_empty() {
                return Err(format!(
                    "entry {} holds no -----BEGIN X509 CRL----- block",
                    n + 1
                ));
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
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_json(text, Path::new("test.json"), Vec::new())
    }

    #[test]
    fn tyk_field_names_parse_and_defaults_apply() {
        let config = parse(
            r#"{"listen_port": 8443, "secret": "s3cr3t-key", "http_server_options": {"use_ssl": true, "min_version": 772,
                "ssl_certificates": ["abc"]}, "security": {"private_certificate_encoding_secret": "enc",
                "certificates": {"upstream": {"*": "id1"}}}, "storage": {"type": "redis", "host": "h", "port": 7000}}"#,
        )
        .unwrap();
        assert_eq!(config.listen_port, 8443);
        assert!(config.http_server_options.use_ssl);
        assert_eq!(config.http_server_options.min_version, TLS13);
        assert_eq!(config.security.certificates.upstream["*"], "id1");
        assert_eq!(config.encoding_secret(), "enc");
        #[cfg(feature = "redis")]
        assert_eq!(
            config.storage.redis_connection().unwrap().topology,
            cert_store::RedisTopology::Single {
                addr: "h:7000".into()
            }
        );
        assert_eq!(config.proxy_ssl_min_version, TLS12);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn storage_describes_a_cluster_or_sentinels_in_tyks_field_names() {
        use cert_store::RedisTopology;
        let config = parse(
            r#"{"storage": {"type": "redis", "enable_cluster": true, "addrs": ["a:7000", "b:7001"],
                "password": "pw", "use_ssl": true, "ssl_insecure_skip_verify": true, "timeout": 3,
                "min_replicas_to_ack": 1, "min_replicas_timeout_ms": 500}}"#,
        )
        .unwrap();
        let connection = config.storage.redis_connection().unwrap();
        assert_eq!(
            connection.topology,
            RedisTopology::Cluster {
                seeds: vec!["a:7000".into(), "b:7001".into()]
            }
        );
        assert_eq!(connection.password.as_deref(), Some("pw"));
        assert!(connection.tls.as_ref().unwrap().insecure_skip_verify);
        assert_eq!(connection.response_timeout.as_secs(), 3);
        assert_eq!(
            config.storage.redis_config().unwrap().min_replicas_to_ack,
            1
        );

        let mut config = GatewayConfig::default();
        config
            .apply_env([
                ("TYK_GW_STORAGE_TYPE".to_owned(), "redis".to_owned()),
                (
                    "TYK_GW_STORAGE_ADDRS".to_owned(),
                    "s1:26379, s2:26379".to_owned(),
                ),
                ("TYK_GW_STORAGE_MASTERNAME".to_owned(), "main".to_owned()),
                (
                    "TYK_GW_STORAGE_SENTINELPASSWORD".to_owned(),
                    "sp".to_owned(),
                ),
                ("TYK_GW_STORAGE_DATABASE".to_owned(), "2".to_owned()),
            ])
            .unwrap();
        config.validate().unwrap();
        let connection = config.storage.redis_connection().unwrap();
        assert!(matches!(
            &connection.topology,
            RedisTopology::Sentinel { sentinels, master_name, sentinel_password, .. }
                if sentinels.len() == 2 && master_name == "main" && sentinel_password.as_deref() == Some("sp")
        ));
        assert_eq!(connection.database, 2);

        for (json, field, reason) in [
            (
                r#"{"storage": {"type": "redis", "enable_cluster": true, "database": 1}}"#,
                "storage.database",
                "only database 0",
            ),
            (
                r#"{"storage": {"type": "redis", "enable_cluster": true, "master_name": "m"}}"#,
                "storage.master_name",
                "not both",
            ),
            (
                r#"{"storage": {"type": "redis", "tls_max_version": "1.2"}}"#,
                "storage.tls_max_version",
                "1.3",
            ),
            (
                r#"{"storage": {"type": "redis", "addrs": ["nohost"]}}"#,
                "storage",
                "host:port",
            ),
            (
                r#"{"storage": {"type": "redis", "use_ssl": true, "cert_file": "c.pem"}}"#,
                "storage.cert_file",
                "key_file",
            ),
        ] {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(reason), "{json}: {err}");
        }
    }

    #[test]
    fn env_overrides_top_level_fields_and_secrets() {
        let mut config = GatewayConfig::default();
        config
            .apply_env([
                ("TYK_GW_LISTENPORT".to_owned(), "9000".to_owned()),
                ("TYK_GW_SECRET".to_owned(), "from-env".to_owned()),
                ("TYK_GW_STORAGE_PASSWORD".to_owned(), "p@ss word".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ])
            .unwrap();
        assert_eq!(config.listen_port, 9000);
        assert_eq!(
            config.encoding_secret(),
            "from-env",
            "falls back to secret, as in Tyk"
        );
        assert_eq!(config.storage.password, "p@ss word");
        assert_eq!(
            config.http_server_options.idle_timeout(),
            Duration::from_secs(20)
        );
        config
            .apply_env([
                (
                    "TYK_GW_HTTPSERVEROPTIONS_IDLETIMEOUT".to_owned(),
                    "7".to_owned(),
                ),
                (
                    "TYK_GW_HTTPSERVEROPTIONS_SKIPURLCLEANING".to_owned(),
                    "true".to_owned(),
                ),
                (
                    "TYK_GW_HTTPSERVEROPTIONS_MAXCONNECTIONS".to_owned(),
                    "100".to_owned(),
                ),
                (
                    "TYK_GW_HTTPSERVEROPTIONS_MAXCONNECTIONSPERIP".to_owned(),
                    "5".to_owned(),
                ),
            ])
            .unwrap();
        let options = &config.http_server_options;
        assert_eq!(options.idle_timeout(), Duration::from_secs(7));
        assert!(options.skip_url_cleaning);
        assert_eq!(
            (options.max_connections, options.max_connections_per_ip),
            (100, 5)
        );
        let err = config
            .apply_env([("TYK_GW_LISTENPORT".to_owned(), "eighty".to_owned())])
            .unwrap_err();
        assert!(err.to_string().contains("TYK_GW_LISTENPORT"), "{err}");
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
