//! Where events go: the [`EventSink`] trait, a channel for subscribers and a `tracing` logger.
//! (The webhook sink lives in `gateway-runtime`, which owns HTTP.)

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::event::ExpiryEvent;

/// The error a sink reports; the monitor logs it and carries on with the other sinks.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives the events the monitor decides to emit, one at a time, on the monitor's background
/// worker (never on the request path).
///
/// Deliveries are awaited in turn, so a slow sink delays the next checks (not the callers of
/// `observe`); a sink that does network I/O should bound it with a timeout, or queue and return.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Delivers one event.
    async fn deliver(&self, event: &ExpiryEvent) -> Result<(), SinkError>;
}

#[async_trait]
impl<T: EventSink + ?Sized> EventSink for Arc<T> {
    async fn deliver(&self, event: &ExpiryEvent) -> Result<(), SinkError> {
        (**self).deliver(event).await
    }
}

/// Publishes events on a Tokio broadcast channel: every [`subscribe`](Self::subscribe)r gets
/// every event sent after it subscribed. Clones publish on the same channel.
#[derive(Clone, Debug)]
pub struct ChannelSink {
    sender: broadcast::Sender<ExpiryEvent>,
}

impl ChannelSink {
    /// A channel keeping up to `capacity` events for slow subscribers (at least 1); a subscriber
    /// further behind loses the oldest ones.
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<ExpiryEvent> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl EventSink for ChannelSink {
    async fn deliver(&self, event: &ExpiryEvent) -> Result<(), SinkError> {
        // No subscriber is not an error: nobody is listening right now.
        let _ = self.sender.send(event.clone());
        Ok(())
    }
}

/// Logs one warning per event, as Tyk does: `certificate expiring soon` or
/// `certificate expired`, with fields `cert_id` (masked as Tyk masks it, see
/// [`mask_cert_id`]), `cert_name`, `days_remaining` or `days_since_expiry`, `event_type`,
/// `cert_role` and `api_id`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

#[async_trait]
impl EventSink for TracingSink {
    async fn deliver(&self, event: &ExpiryEvent) -> Result<(), SinkError> {
        let cert_id = mask_cert_id(&event.cert_id().to_hex());
        match event {
            ExpiryEvent::ExpiringSoon(e) => tracing::warn!(
                cert_id = %cert_id,
                cert_name = %e.cert_name,
                days_remaining = e.days_remaining,
                event_type = event.name(),
                cert_role = e.cert_role.as_str(),
                api_id = %e.api_id,
                "certificate expiring soon"
            ),
            ExpiryEvent::Expired(e) => tracing::warn!(
                cert_id = %cert_id,
                cert_name = %e.cert_name,
                days_since_expiry = e.days_since_expiry,
                event_type = event.name(),
                cert_role = e.cert_role.as_str(),
                api_id = %e.api_id,
                "certificate expired"
            ),
            ExpiryEvent::RenewalFailed(e) => tracing::warn!(
                cert_id = %cert_id,
                cert_name = %e.cert_name,
                error = %e.error,
                failures = e.failures,
                retry_at = %e.retry_at,
                event_type = event.name(),
                "certificate renewal failed"
            ),
            ExpiryEvent::Renewed(e) => tracing::info!(
                cert_id = %cert_id,
                previous_cert_id = %mask_cert_id(&e.previous_cert_id.to_hex()),
                cert_name = %e.cert_name,
                expires_at = %e.expires_at,
                event_type = event.name(),
                "certificate renewed"
            ),
        }
        Ok(())
    }
}

/// Tyk's log masking of a certificate ID: the first 8 characters, then `***[len=N]` with the
/// full length in characters. An ID of 8 characters or fewer shows none of them.
pub fn mask_cert_id(id: &str) -> String {
    let len = id.chars().count();
    let shown: String = if len > 8 {
        id.chars().take(8).collect()
    } else {
        String::new()
    };
    format!("{shown}***[len={len}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_tyk() {
        let id = "7d0c7288f1af81476f5f2be88e96dc43a8b98ead3d974f98038bc009a7e695ce";
        assert_eq!(mask_cert_id(id), "7d0c7288***[len=64]");
        assert_eq!(
            mask_cert_id(&format!("org1{id}")),
            "org17d0c***[len=68]",
            "an org-prefixed ID keeps its org in the visible part"
        );
        assert_eq!(mask_cert_id("short"), "***[len=5]");
        assert_eq!(mask_cert_id(""), "***[len=0]");
    }
}
