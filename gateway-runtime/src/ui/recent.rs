//! The expiry events the page shows on a certificate's details: the monitor delivers every
//! event to this sink too, which keeps the last few per certificate in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cert_store::Clock;
use expiry_monitor::{EventSink, ExpiryEvent, SinkError};
use time::OffsetDateTime;
use tls_core::Fingerprint;

/// Events kept per certificate.
const PER_CERT: usize = 10;
/// Certificates with events kept; beyond it, events of new certificates are not kept.
const MAX_CERTS: usize = 100_000;

/// One delivered event, as the page shows it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) at: OffsetDateTime,
    pub(crate) name: &'static str,
    pub(crate) message: String,
    pub(crate) api_id: String,
    pub(crate) role: &'static str,
}

/// The last events of each certificate, by leaf fingerprint.
pub(crate) struct RecentEvents {
    clock: Arc<dyn Clock>,
    events: Mutex<HashMap<Fingerprint, VecDeque<Recorded>>>,
}

impl core::fmt::Debug for RecentEvents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecentEvents").finish_non_exhaustive()
    }
}

impl RecentEvents {
    /// A sink that stamps events with `clock`'s time.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            events: Mutex::new(HashMap::new()),
        })
    }

    /// The events of `fingerprint`, newest first.
    pub(crate) fn of(&self, fingerprint: &Fingerprint) -> Vec<Recorded> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events
            .get(fingerprint)
            .map(|list| list.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl EventSink for RecentEvents {
    async fn deliver(&self, event: &ExpiryEvent) -> Result<(), SinkError> {
        let recorded = Recorded {
            at: self.clock.now(),
            name: event.name(),
            message: event.message().to_owned(),
            api_id: event.api_id().to_owned(),
            role: event.role().as_str(),
        };
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let full = events.len() >= MAX_CERTS;
        if full && !events.contains_key(event.cert_id()) {
            return Ok(());
        }
        let list = events.entry(*event.cert_id()).or_default();
        if list.len() == PER_CERT {
            list.pop_front();
        }
        list.push_back(recorded);
        Ok(())
    }
}
