//! `GET /tyk/acme`: refused without the secret, a clear 404 when ACME is off, and each managed
//! name's status (with a failure told without addresses) when it is on.

use http::StatusCode;

use super::{Fixture, SECRET};
use crate::control::AUTH_FAILED;

#[tokio::test]
async fn acme_status_needs_the_secret_and_says_when_acme_is_off() {
    let f = Fixture::new();
    for secret in [None, Some("wrong"), Some(SECRET)] {
        let mut request = http::Request::builder().uri("/tyk/acme");
        if let Some(secret) = secret {
            request = request.header(super::AUTH_HEADER, secret);
        }
        let answer = f
            .raw(request.body(http_body_util::Full::default()).unwrap())
            .await;
        if secret == Some(SECRET) {
            answer.assert_error(StatusCode::NOT_FOUND, crate::acme::OFF);
            assert!(answer.text.contains("ACME"), "{}", answer.text);
        } else {
            answer.assert_error(StatusCode::FORBIDDEN, AUTH_FAILED);
        }
    }
    let answer = f.send("POST", "/tyk/acme", "").await;
    answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, "Method not supported");
    assert_eq!(answer.headers["allow"], "GET");
    // Not a certificate ID: the certificate routes are untouched.
    f.get("/tyk/certs/acme").await.assert_error(
        StatusCode::NOT_FOUND,
        "Certificate with given SHA256 fingerprint not found",
    );
}

/// Without a CA (nothing listens on the directory's port): the attempt fails, and the status
/// tells it without the address or the OS error.
#[cfg(feature = "acme")]
#[tokio::test]
async fn acme_status_lists_each_managed_name_and_a_failure_without_internals() {
    use std::sync::Arc;

    let clock = Arc::new(cert_store::ManualClock::new(super::generated_at()));
    let store = cert_store::CertStore::builder(Arc::new(cert_store::MemoryStorage::new()))
        .clock(clock.clone())
        .build();
    let settings = acme::AcmeSettings::new(
        "https://127.0.0.1:9/dir",
        &["a.certgate.test", "b.certgate.test"],
    )
    .unwrap();
    let manager = Arc::new(acme::AcmeManager::builder(settings, store.clone()).build());
    let acme::Outcome::Failed { retry_in, .. } = manager.check("a.certgate.test").await else {
        panic!("no CA: the attempt fails");
    };
    let f = Fixture::over_with_acme(store, clock, |_| {}, Some(manager));
    let answer = f.get("/tyk/acme").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let status: crate::wire::AcmeStatus = serde_json::from_str(&answer.text).unwrap();
    assert_eq!((status.issued, status.renewed, status.failed), (0, 0, 1));
    let names: Vec<&str> = status.names.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a.certgate.test", "b.certgate.test"]);
    let (failed, waiting) = (&status.names[0], &status.names[1]);
    assert_eq!(failed.failures, 1);
    assert_eq!(failed.cert_id, None);
    let retry_at = super::generated_at() + time::Duration::try_from(retry_in).unwrap();
    assert_eq!(
        failed.next_renewal.map(|at| at.unix_timestamp()),
        Some(retry_at.unix_timestamp()),
        "the next attempt, to the second"
    );
    let error = failed.last_error.as_deref().expect("the failure is told");
    assert!(error.contains("cannot reach the ACME CA"), "{error}");
    for internal in ["127.0.0.1", ":9", "onnection refused", "os error"] {
        assert!(!error.contains(internal), "{internal} in {error}");
    }
    assert_eq!(waiting.failures, 0);
    assert_eq!(waiting.last_error, None);
    assert_eq!(waiting.next_renewal, None, "due now: it has no certificate");
    assert!(
        answer.text.contains(r#""next_renewal":null"#),
        "absent times are null: {}",
        answer.text
    );
}
