//! `expiry-monitor`: certificate expiry events with fleet-wide cooldowns, Tyk compatible.
//!
//! - [`ExpiryMonitor::observe`] is called on the request path whenever a certificate is used
//!   (an mTLS allow-list, a server or an upstream certificate). It returns at once; within a
//!   certificate's check cooldown it is a lock-free lookup. Due certificates go to a background
//!   worker.
//! - The worker checks validity at the injected [`cert_store::Clock`]'s now and emits
//!   [`ExpiryEvent`]s, `CertificateExpiringSoon` (`0 < time left <= warning threshold`) or
//!   `CertificateExpired` (`time left <= 0`, including a certificate that expired a minute ago,
//!   which Tyk misses), with Tyk's meta fields, JSON and message texts, to every [`EventSink`]:
//!   a [`ChannelSink`] for subscribers, a [`TracingSink`] for logs, or your own (the gateway's
//!   webhooks).
//! - Cooldowns (a check at most every `check_cooldown_seconds`, an event at most every
//!   `event_cooldown_seconds`) are kept in process and claimed atomically in a shared
//!   [`CooldownStore`]: with `RedisCooldowns` (feature `redis`, Tyk's keys) N monitors on one
//!   Redis emit exactly one event per certificate per cooldown. When Redis is down the monitor
//!   carries on with its local cooldowns.
//! - An optional sweep checks every certificate of a [`cert_store::CertStore`] on a schedule,
//!   so an idle certificate warns too (Tyk only checks certificates in use).
//! - [`MetricsSnapshot`] counts checks, skips and events and gives each certificate's seconds to
//!   expiry, as plain figures (the gateway renders them on `/metrics`).
//! - [`ExpiryMonitorConfig`] reads Tyk's `security.certificate_expiry_monitor` block (the
//!   gateway's configuration applies Tyk's `TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_*`
//!   environment overrides to it).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//!
//! use cert_store::ManualClock;
//! use expiry_monitor::{CertRole, CertSubject, ChannelSink, ExpiryMonitor, ExpiryMonitorConfig};
//! use time::{Duration, macros::datetime};
//! use tls_core::Fingerprint;
//!
//! let now = datetime!(2026-11-29 04:57:32 UTC);
//! let clock = Arc::new(ManualClock::new(now));
//! let events = ChannelSink::new(16);
//! let mut received = events.subscribe();
//! let monitor = ExpiryMonitor::builder(ExpiryMonitorConfig::default())
//!     .clock(clock.clone())
//!     .sink(events)
//!     .start()?;
//!
//! // Built once when the certificate is loaded; usually `CertSubject::from_loaded(&cert)`.
//! let cert = CertSubject::new(
//!     Fingerprint::of(b"the leaf's DER"),
//!     now - Duration::days(80),
//!     now + Duration::days(10),
//!     "api.example.com",
//! );
//! for _request in 0..1000 {
//!     monitor.observe(&cert, CertRole::Client, "api1"); // returns at once
//! }
//! monitor.flush().await; // wait for the background worker
//!
//! let event = received.try_recv()?;
//! assert_eq!(event.name(), "CertificateExpiringSoon");
//! assert_eq!(event.message(), "Certificate api.example.com is expiring in 10 days");
//! assert!(received.try_recv().is_err(), "one event per cooldown");
//! assert_eq!(monitor.metrics().checks, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod config;
mod cooldown;
mod error;
mod event;
mod metrics;
mod monitor;
#[cfg(feature = "redis")]
mod redis;
mod schedule;
mod sink;
mod subject;

pub use config::{
    DEFAULT_CHECK_COOLDOWN_SECONDS, DEFAULT_EVENT_COOLDOWN_SECONDS, DEFAULT_WARNING_THRESHOLD_DAYS,
    ExpiryMonitorConfig, MAX_INTERVAL_SECONDS, MAX_WARNING_THRESHOLD_DAYS,
};
pub use cooldown::{Claim, CooldownKind, CooldownStore, MemoryCooldowns};
pub use error::{ConfigError, MonitorError};
pub use event::{
    CertificateExpired, CertificateExpiringSoon, CertificateRenewalFailed, CertificateRenewed,
    EventType, ExpiryEvent,
};
pub use metrics::{CertificateExpiry, MetricsSnapshot};
pub use monitor::{
    DEFAULT_CLOCK_REFRESH, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHARED_RETRY, ExpiryMonitor,
    ExpiryMonitorBuilder, SweepReport,
};
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, RedisCooldowns};
pub use sink::{ChannelSink, EventSink, SinkError, TracingSink, mask_cert_id};
pub use subject::CertSubject;

/// The role a certificate is observed in (cert-store's, re-exported for convenience).
pub use cert_store::CertRole;
