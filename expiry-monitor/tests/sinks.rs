//! The tracing sink logs one warning per event, with the certificate ID masked as Tyk masks it.

mod common;

use common::{Capture, GENERATED_AT, Line, subject, vector_subject};
use expiry_monitor::{CertRole, EventSink, ExpiryEvent, TracingSink};
use time::Duration;
use tracing::Level;

async fn logged(event: &ExpiryEvent) -> Vec<Line> {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    TracingSink.deliver(event).await.unwrap();
    capture.lines()
}

#[tokio::test]
async fn expiring_soon_is_one_warning_with_a_masked_id() {
    let cert = vector_subject("expiring-10d.bundle.pem");
    let event = ExpiryEvent::at(
        &cert,
        CertRole::Client,
        "api1",
        GENERATED_AT,
        Duration::days(30),
    )
    .unwrap();
    let lines = logged(&event).await;
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    let expected: Line = [
        ("level", Level::WARN.to_string().as_str()),
        ("message", "certificate expiring soon"),
        ("cert_id", "7d0c7288***[len=64]"),
        ("cert_name", "expiring-10d.vectors.test"),
        ("days_remaining", "10"),
        ("event_type", "CertificateExpiringSoon"),
        ("cert_role", "client"),
        ("api_id", "api1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(line, &expected);
    assert!(
        !line.values().any(|v| v.contains("f1af8147")),
        "the full ID never appears"
    );
}

#[tokio::test]
async fn expired_is_one_warning_with_days_since_expiry() {
    let cert = subject("gone.example", GENERATED_AT, -Duration::days(3));
    let event = ExpiryEvent::at(
        &cert,
        CertRole::Upstream,
        "",
        GENERATED_AT,
        Duration::days(30),
    )
    .unwrap();
    let lines = logged(&event).await;
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["message"], "certificate expired");
    assert_eq!(line["days_since_expiry"], "3");
    assert_eq!(line["event_type"], "CertificateExpired");
    assert_eq!(line["cert_role"], "upstream");
    assert_eq!(
        line["cert_id"],
        format!("{}***[len=64]", &cert.fingerprint().to_hex()[..8])
    );
    assert!(!line.contains_key("days_remaining"));
}
