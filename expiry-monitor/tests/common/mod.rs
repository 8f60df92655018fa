//! Shared test helpers: the shared test vectors (from `certgate-test-support`), subjects at fixed
//! instants, and event draining.
#![allow(dead_code, reason = "each test crate uses a different part")]

pub(crate) mod flaky;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use expiry_monitor::{CertSubject, ExpiryEvent};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tls_core::{Fingerprint, Upload};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

pub(crate) use test_support::vectors::read as vector;

/// The vectors' `generated_at`: every time-dependent expectation holds at this instant.
pub(crate) const GENERATED_AT: OffsetDateTime = datetime!(2026-11-29 04:57:32 UTC);

/// The subject of vector file `name` (parsed before any vector expired).
pub(crate) fn vector_subject(name: &str) -> CertSubject {
    let upload = Upload::parse(&vector(name), datetime!(2026-11-26 0:00 UTC))
        .unwrap_or_else(|e| panic!("vector {name}: {e}"));
    CertSubject::from_metadata(upload.metadata()).expect("a certificate, not a public key")
}

/// A made-up certificate named `name`, valid since 90 days before `now`, with `left` to live.
pub(crate) fn subject(name: &str, now: OffsetDateTime, left: Duration) -> CertSubject {
    CertSubject::new(
        Fingerprint::of(name.as_bytes()),
        now - Duration::days(90),
        now + left,
        name,
    )
}

/// Every event received so far.
pub(crate) fn drain(events: &mut broadcast::Receiver<ExpiryEvent>) -> Vec<ExpiryEvent> {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => out.push(event),
            Err(broadcast::error::TryRecvError::Lagged(n)) => panic!("lost {n} events"),
            Err(_) => return out,
        }
    }
}

/// One log line: its level, message and fields.
pub(crate) type Line = BTreeMap<String, String>;

/// A `tracing` subscriber recording every event's level and fields.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<Line>>>);

impl Capture {
    /// The lines logged so far.
    pub(crate) fn lines(&self) -> Vec<Line> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut Line);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line::new();
        line.insert("level".into(), event.metadata().level().to_string());
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
