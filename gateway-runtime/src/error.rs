//! Why the gateway cannot start, reload or serve a certificate: [`GatewayError`] and the typed
//! errors it carries.

use crate::config::ConfigError;

/// Why the gateway cannot start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `storage` settings do not describe a usable Redis connection.
    #[error("certificate storage: {0}")]
    StorageConfig(#[source] ConfigError),
    /// The certificate storage cannot be reached or set up.
    #[error("certificate storage: {0}")]
    Storage(#[source] cert_store::StorageError),
    /// `storage.type` is `redis`, but this build has no Redis support.
    #[error(
        "certificate storage: storage.type is \"redis\", but this build has no Redis support: enable the `redis` feature of certgate-gateway-runtime (or certgate)"
    )]
    NoRedisSupport,
    /// TLS settings or certificates cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The expiry monitor cannot start.
    #[error("expiry monitor: {0}")]
    Monitor(#[from] MonitorSetupError),
    /// Automatic certificates (ACME) cannot start: their configuration, the account, or the
    /// coordination store.
    #[error("automatic certificates (ACME): {0}")]
    Acme(String),
    /// A certificate cannot be served (not stored, no usable private key, storage away).
    #[error("certificate {id} cannot be served: {source}")]
    Certificate {
        /// The certificate.
        id: tls_core::CertId,
        /// Why.
        source: cert_store::StoreError,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Why the TLS snapshot (server certificates, client-certificate policies, rustls settings)
/// cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// An API's `client_certificate_crls` do not parse.
    #[error("{0}")]
    CrlList(#[from] crate::config::CrlListError),
    /// An API's CRL options (`client_certificate_crl_depth`, `..._unknown_status`) are unknown.
    #[error("API {api_id}: {}: {source}", source.field)]
    CrlOption {
        /// The API.
        api_id: String,
        /// The option and its value.
        source: crate::config::CrlOptionError,
    },
    /// An API's CRLs fail their checks (signature, issuer, `nextUpdate` when strict).
    #[error("API {api_id}: {reason}")]
    Crls {
        /// The API.
        api_id: String,
        /// Which CRL and why.
        reason: String,
    },
    /// An API's `client_certificates` cannot make a client-certificate policy.
    #[error("API {api_id}: client_certificates: {reason}")]
    ClientCertificates {
        /// The API.
        api_id: String,
        /// Why.
        reason: String,
    },
    /// The client-certificate policy of a domain or of the control API cannot be built.
    #[error("{reason}")]
    ClientPolicy {
        /// Why.
        reason: String,
    },
    /// rustls refuses the listener's protocol versions and cipher suites.
    #[error("http_server_options: {0}")]
    ServerConfig(#[source] rustls::Error),
    /// Session ticket encryption cannot be set up.
    #[error("session tickets: {0}")]
    Tickets(#[source] rustls::Error),
    /// The upstream TLS settings (`proxy_ssl_min_version`) are invalid.
    #[error("{0}")]
    Upstream(#[source] ConfigError),
}

/// Why the expiry monitor cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorSetupError {
    /// A `certificate_expiry_webhooks` entry cannot be used.
    #[error("{0}")]
    Webhook(#[from] WebhookError),
    /// The `storage` settings do not describe a usable Redis connection for the cooldowns.
    #[error("{0}")]
    StorageConfig(#[source] ConfigError),
    /// The cooldowns' Redis cannot be reached.
    #[error("{0}")]
    Cooldowns(#[source] cert_store::StorageError),
    /// The monitor refuses to start.
    #[error("{0}")]
    Monitor(#[from] expiry_monitor::MonitorError),
}

/// Why a `certificate_expiry_webhooks` entry cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// `url` does not parse.
    #[error("webhook URL {url:?} is not a URL")]
    Url {
        /// The URL as configured.
        url: String,
    },
    /// A header name is not valid HTTP.
    #[error("webhook header {name:?}: {source}")]
    HeaderName {
        /// The name as configured.
        name: String,
        /// Why.
        source: http::header::InvalidHeaderName,
    },
    /// A header value is not valid HTTP.
    #[error("webhook header {name}: {source}")]
    HeaderValue {
        /// The header's name.
        name: http::HeaderName,
        /// Why.
        source: http::header::InvalidHeaderValue,
    },
    /// rustls cannot make an HTTPS client.
    #[error("{0}")]
    Tls(#[source] rustls::Error),
}
