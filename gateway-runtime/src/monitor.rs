//! The expiry monitor in the gateway: certificate uses reported on the hot path, events logged
//! and posted to webhooks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cert_store::{CertRole, CertStore, LoadedCert};
use expiry_monitor::{CertSubject, EventSink, ExpiryEvent, ExpiryMonitor, SinkError, TracingSink};
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use tls_core::Fingerprint;

use crate::config::{GatewayConfig, StorageTarget, WebhookConfig};
use crate::error::{MonitorSetupError, WebhookError};
use crate::observe::CertObserver;
use crate::proxy::connector::UpstreamConnector;
use crate::proxy::upstream_tls::Trust;

/// Reports uses to the monitor; keeps each certificate's [`CertSubject`] so that `observe`
/// allocates nothing after a certificate's first use.
pub(crate) struct MonitorObserver {
    monitor: ExpiryMonitor,
    subjects: RwLock<HashMap<Fingerprint, Arc<CertSubject>>>,
}

impl MonitorObserver {
    pub(crate) fn new(monitor: ExpiryMonitor) -> Self {
        Self {
            monitor,
            subjects: RwLock::new(HashMap::new()),
        }
    }

    /// The monitor's figures, for `/metrics`.
    pub(crate) fn figures(&self) -> expiry_monitor::MetricsSnapshot {
        self.monitor.metrics()
    }

    fn subject(&self, cert: &LoadedCert) -> Option<Arc<CertSubject>> {
        let fingerprint = cert.id().fingerprint();
        if let Some(subject) = self
            .subjects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fingerprint)
        {
            return Some(Arc::clone(subject));
        }
        let subject = Arc::new(CertSubject::from_loaded(cert)?);
        self.subjects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fingerprint, Arc::clone(&subject));
        Some(subject)
    }
}

impl CertObserver for MonitorObserver {
    fn observe(&self, cert: &LoadedCert, role: CertRole, api_id: &str) {
        if let Some(subject) = self.subject(cert) {
            self.monitor.observe(&subject, role, api_id);
        }
    }
}

/// Starts the monitor the configuration describes: cooldowns shared through Redis when the
/// store is Redis, events logged and posted to the configured webhooks, plus `extra_sinks`.
pub(crate) async fn start_monitor(
    config: &GatewayConfig,
    storage: &StorageTarget,
    store: &CertStore,
    extra_sinks: Vec<Arc<dyn EventSink>>,
    webhook_roots: &[CertificateDer<'static>],
) -> Result<MonitorObserver, MonitorSetupError> {
    let mut builder = ExpiryMonitor::builder(config.security.certificate_expiry_monitor)
        .clock(Arc::clone(store.clock()))
        .store(store.clone())
        .sink(TracingSink);
    for sink in extra_sinks {
        builder = builder.sink(sink);
    }
    for hook in &config.certificate_expiry_webhooks {
        builder = builder.sink(WebhookSink::new(hook, webhook_roots)?);
    }
    #[cfg(not(feature = "redis"))]
    let StorageTarget::Memory = storage;
    #[cfg(feature = "redis")]
    if let Some(redis) = storage.redis() {
        let cooldowns = expiry_monitor::RedisCooldowns::connect(redis.connection.clone())
            .await
            .map_err(MonitorSetupError::Cooldowns)?;
        builder = builder.cooldowns(cooldowns);
    }
    let monitor = builder.start()?;
    Ok(MonitorObserver::new(monitor))
}

/// Posts each event's JSON (`{"event": <type>, "meta": <Tyk's meta>}`) to a URL, retrying
/// with backoff. Deliveries are queued and posted by a task of its own, so a slow or unreachable
/// receiver never holds up the monitor.
pub(crate) struct WebhookSink {
    url: http::Uri,
    queue: tokio::sync::mpsc::Sender<Bytes>,
}

struct Poster {
    url: http::Uri,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    timeout: Duration,
    retries: u32,
    client: Client<UpstreamConnector, Full<Bytes>>,
}

impl WebhookSink {
    pub(crate) fn new(
        config: &WebhookConfig,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, WebhookError> {
        let url: http::Uri = config.url.parse().map_err(|_| WebhookError::Url {
            url: config.url.clone(),
        })?;
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            let name = http::HeaderName::try_from(name.as_str()).map_err(|source| {
                WebhookError::HeaderName {
                    name: name.clone(),
                    source,
                }
            })?;
            let value = http::HeaderValue::try_from(value.as_str()).map_err(|source| {
                WebhookError::HeaderValue {
                    name: name.clone(),
                    source,
                }
            })?;
            headers.push((name, value));
        }
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let tls = if url.scheme_str() == Some("https") {
            let roots = Trust::new(extra_roots.to_vec(), true).roots();
            let client = rustls::ClientConfig::builder_with_provider(tls_core::default_provider())
                .with_safe_default_protocol_versions()
                .map_err(WebhookError::Tls)?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(client))
        } else {
            None
        };
        let client =
            Client::builder(TokioExecutor::new()).build(UpstreamConnector::new(tls, timeout));
        let poster = Poster {
            url: url.clone(),
            headers,
            timeout,
            retries: config.retries,
            client,
        };
        let (queue, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(1024);
        tokio::spawn(async move {
            while let Some(body) = receiver.recv().await {
                poster.post(&body).await;
            }
        });
        Ok(Self { url, queue })
    }
}

impl Poster {
    async fn post(&self, body: &Bytes) {
        let mut delay = Duration::from_millis(500);
        for attempt in 0..=self.retries {
            match self.post_once(body).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(url = %self.url, attempt = attempt + 1, error = %e, "expiry webhook failed")
                }
            }
            if attempt < self.retries {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        tracing::error!(url = %self.url, attempts = self.retries + 1, "expiry webhook given up");
    }

    async fn post_once(&self, body: &Bytes) -> Result<(), PostError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(PostError::Request)?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| PostError::Timeout(self.timeout))?
            .map_err(PostError::Send)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(PostError::Status(response.status()))
        }
    }
}

/// Why one webhook delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum PostError {
    /// The request cannot be built (a configured header).
    #[error("{0}")]
    Request(#[source] http::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request cannot be sent (connection, TLS).
    #[error("{0}")]
    Send(#[source] hyper_util::client::legacy::Error),
    /// The receiver answered with an error status.
    #[error("answered {0}")]
    Status(http::StatusCode),
}

/// The webhook body of an event.
pub(crate) fn webhook_body(event: &ExpiryEvent) -> String {
    serde_json::json!({ "event": event.name(), "meta": event }).to_string()
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn deliver(&self, event: &ExpiryEvent) -> Result<(), SinkError> {
        self.queue
            .try_send(Bytes::from(webhook_body(event)))
            .map_err(|e| format!("webhook {} queue: {e}", self.url).into())
    }
}
