//! Automatic certificates against a real ACME CA: Pebble (Debian's `pebble` package) validates
//! `tls-alpn-01` and `http-01` against the running gateway, then curl gets the issued
//! certificate by SNI, verified against Pebble's issuing root.
//!
//! Without Pebble installed these tests say so and pass; with `CI=true` they fail instead.

#![cfg(feature = "acme")]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acme::testkit::{Pebble, free_port};
use acme::{AcmeSettings, ChallengeKind, Outcome};
use cert_store::{CertStore, Clock as _, ManualClock, MemoryStorage, StoreError, SystemClock};
use expiry_monitor::{ChannelSink, EventType, ExpiryEvent};
use gateway_runtime::{GatewayBuilder, GatewayConfig};
use tls_core::{CertId, EncodingSecret};

/// The HTTP status curl gets from `https://<name>:<port>/`, resolving `name` to 127.0.0.1 and
/// trusting only `root`; `None` when the handshake or verification fails.
fn curl_status(name: &str, port: u16, root: &Path) -> Option<String> {
    let output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(root)
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .arg(format!("https://{name}:{port}/"))
        .output()
        .expect("curl runs");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A gateway configured for ACME with `challenges` and `key_type`, in front of a fresh Pebble;
/// waits until curl verifies the certificate served for `name`, whose key is `key_label`.
async fn issued_and_served(challenges: &[&str], name: &str, key_type: &str, key_label: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("acme=debug,gateway_runtime=debug")
        .with_test_writer()
        .try_init();
    let (tls_port, http_port) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(http_port, tls_port) else {
        return;
    };
    let mut acme = pebble.acme_block(&[name], challenges);
    acme["http_port"] = http_port.into();
    acme["key_type"] = key_type.into();
    let config = support::config_from_json(&support::acme_gateway_json(tls_port, acme));
    let gateway = GatewayBuilder::new(config).start().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let issuing_root = dir.path().join("root.pem");
    std::fs::write(&issuing_root, pebble.issuing_root_pem()).unwrap();
    let started = Instant::now();
    let status = loop {
        let (name_owned, root) = (name.to_owned(), issuing_root.clone());
        let status = tokio::task::spawn_blocking(move || curl_status(&name_owned, tls_port, &root))
            .await
            .unwrap();
        if let Some(status) = status {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no certificate for {name} verified by Pebble's root within 60 s; pebble log:\n{}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Any HTTP answer means the TLS handshake verified the issued chain for `name`.
    assert_eq!(status, "404", "no API or fallback: the gateway answers 404");
    assert_eq!(pebble.orders_created(), 1, "{}", pebble.log());

    // The certificate is in the store, with its key, under the name.
    let listed = gateway
        .store()
        .list_detailed(
            Some(&tls_core::OrgId::EMPTY),
            &cert_store::PageRequest::first(100),
        )
        .await
        .unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|item| item.metadata.as_ref())
        .flat_map(|meta| meta.dns_names.clone())
        .collect();
    assert_eq!(names, [name.to_owned()]);
    let keys: Vec<_> = listed
        .items
        .iter()
        .filter_map(|item| item.metadata.as_ref())
        .map(|meta| meta.key.label())
        .collect();
    assert_eq!(keys, [key_label]);
    gateway.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_is_validated_by_pebble_against_the_gateway_and_served_by_sni() {
    issued_and_served(&["tls-alpn-01"], "alpn.certgate.test", "", "ECDSA P-256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_validated_by_pebble_against_the_gateway_and_served_by_sni() {
    issued_and_served(
        &["http-01"],
        "http.certgate.test",
        "ecdsa-p256",
        "ECDSA P-256",
    )
    .await;
}

/// With aws-lc-rs (which generates RSA keys; *ring* cannot), `key_type: rsa-2048` gets an RSA
/// certificate that curl verifies.
#[cfg(feature = "aws-lc-rs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_2048_certificate_is_issued_and_served_with_aws_lc_rs() {
    issued_and_served(
        &["tls-alpn-01"],
        "rsa.certgate.test",
        "rsa-2048",
        "RSA 2048",
    )
    .await;
}

/// On *ring* the configuration is refused at start, saying what to build with.
#[cfg(not(feature = "aws-lc-rs"))]
#[tokio::test]
async fn rsa_2048_is_refused_at_start_without_aws_lc_rs() {
    let json = serde_json::json!({
        "listen_address": "127.0.0.1", "listen_port": 0, "secret": "acme test secret",
        "http_server_options": {"use_ssl": true, "acme": {"enabled": true,
            "directory": "https://127.0.0.1:9/dir", "accept_terms": true,
            "domains": ["rsa.certgate.test"], "key_type": "rsa-2048"}},
    });
    let config = GatewayConfig::from_json(&json.to_string(), Path::new("tyk.conf"), []).unwrap();
    let message = GatewayBuilder::new(config)
        .start()
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        message.contains("http_server_options.acme.key_type")
            && message.contains("aws-lc-rs feature"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_01_listener_redirects_everything_else_to_https() {
    let (tls_port, http_port) = (free_port(), free_port());
    let mut config = GatewayConfig::default()
        .listen("127.0.0.1", tls_port)
        .with_tls();
    let settings = AcmeSettings::new("https://127.0.0.1:9/dir", &["redirect.certgate.test"])
        .unwrap()
        .with_challenges(&[ChallengeKind::Http01]);
    let mut settings = settings;
    settings.http_port = http_port;
    config.secret = "acme test secret".to_owned();
    let gateway = GatewayBuilder::new(config)
        .acme(settings)
        .start()
        .await
        .unwrap();
    let output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .args(["-H", "Host: redirect.certgate.test"])
        .arg(format!("http://127.0.0.1:{http_port}/some/path?q=1"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "308 https://redirect.certgate.test/some/path?q=1"
    );
    let output = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://127.0.0.1:{http_port}/.well-known/acme-challenge/unknown-token"
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "404");
    gateway.shutdown_within(Duration::from_secs(1)).await;
}

/// A third of `lifetime`, to the nearest second (the manager's rule).
fn a_third(lifetime: time::Duration) -> time::Duration {
    time::Duration::seconds((lifetime.whole_seconds() as f64 / 3.0).round() as i64)
}

fn renewal_events(events: &mut tokio::sync::broadcast::Receiver<ExpiryEvent>) -> Vec<ExpiryEvent> {
    let mut found = Vec::new();
    while let Ok(event) = events.try_recv() {
        if matches!(
            event.event_type(),
            EventType::CertificateRenewed | EventType::CertificateRenewalFailed
        ) {
            found.push(event);
        }
    }
    found
}

/// Time is passed in: the store's clock is a `ManualClock` that the test moves, and the test
/// runs the manager's checks itself (its own loop waits a minute between checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_happens_at_a_third_of_the_lifetime_and_a_refusing_ca_is_retried_with_growing_delays()
 {
    let name = "renew.certgate.test";
    let tls_port = free_port();
    let Some(pebble) = Pebble::start(free_port(), tls_port) else {
        return;
    };
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("acme test secret"))
        .clock(clock.clone())
        .build();
    let settings = AcmeSettings::new(&pebble.directory_url, &[name])
        .unwrap()
        .with_ca_root(pebble.https_root.clone())
        .with_challenges(&[ChallengeKind::TlsAlpn01]);
    let sink = ChannelSink::new(64);
    let mut events = sink.subscribe();
    let mut config = GatewayConfig::default()
        .listen("127.0.0.1", tls_port)
        .with_tls();
    config.secret = "acme test secret".to_owned();
    let gateway = GatewayBuilder::new(config)
        .store(store.clone())
        .acme(settings)
        .event_sink(Arc::new(sink))
        .start()
        .await
        .unwrap();
    let manager = Arc::clone(gateway.acme().expect("ACME is on"));
    let root = pebble.issuing_root();

    // The first certificate, obtained by the manager's own first check.
    let started = Instant::now();
    let first = loop {
        if let Some(id) = manager.status(name).await.cert_id {
            break id.parse::<CertId>().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    support::until_served(
        gateway.local_addr(),
        name,
        &root,
        Some(first.fingerprint()),
        || pebble.log(),
    )
    .await;
    let meta = store.get(&first).await.unwrap().metadata().clone();
    let (not_before, not_after) = (meta.not_before.unwrap(), meta.not_after.unwrap());
    let renew_at = not_after - a_third(not_after - not_before);
    let status = manager.status(name).await;
    assert_eq!(status.next_renewal, Some(renew_at));
    assert_eq!(status.not_after, Some(not_after));

    // Just before the rule's moment nothing happens; just after, the certificate is renewed.
    clock.set(renew_at - time::Duration::minutes(1));
    assert_eq!(manager.check(name).await, Outcome::NotDue);
    assert!(renewal_events(&mut events).is_empty());
    clock.set(renew_at + time::Duration::seconds(1));
    let Outcome::Issued {
        id: second,
        previous,
    } = manager.check(name).await
    else {
        panic!("not renewed at the rule's moment: {}", pebble.log());
    };
    assert_eq!(previous.as_ref(), Some(&first));
    assert_ne!(second, first);
    assert_eq!(pebble.orders_created(), 2);
    support::until_served(
        gateway.local_addr(),
        name,
        &root,
        Some(second.fingerprint()),
        || pebble.log(),
    )
    .await;
    assert!(
        matches!(store.get(&first).await, Err(StoreError::NotFound { .. })),
        "the replaced certificate is deleted"
    );
    let renewed = renewal_events(&mut events);
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    let ExpiryEvent::Renewed(renewed) = &renewed[0] else {
        panic!("{renewed:?}");
    };
    assert_eq!(renewed.cert_id, second.fingerprint());
    assert_eq!(renewed.previous_cert_id, first.fingerprint());
    assert_eq!(renewed.cert_name, name);
    // `/metrics` renders these (`certgate_acme_certificates_total{result="renewed"} 1`; the
    // rendering is tested in gateway-runtime's prometheus.rs).
    let figures = manager.figures();
    assert_eq!(figures.renewed, 1, "{figures:?}");
    assert_eq!(figures.names.len(), 1, "{figures:?}");
    assert_eq!(figures.names[0].name, name, "{figures:?}");
    assert_eq!(figures.failed, 0, "{figures:?}");

    // The CA goes away: each attempt fails, is reported, and waits longer than the one before;
    // the current certificate keeps being served.
    drop(pebble);
    let meta = store.get(&second).await.unwrap().metadata().clone();
    let (not_before, not_after) = (meta.not_before.unwrap(), meta.not_after.unwrap());
    clock.set(not_after - a_third(not_after - not_before) + time::Duration::seconds(1));
    let mut delays = Vec::new();
    for attempt in 1..=3u32 {
        let Outcome::Failed { retry_in, .. } = manager.check(name).await else {
            panic!("attempt {attempt} did not fail");
        };
        assert_eq!(manager.check(name).await, Outcome::Waiting);
        let failed = renewal_events(&mut events);
        assert_eq!(failed.len(), 1, "{failed:?}");
        let ExpiryEvent::RenewalFailed(failed) = &failed[0] else {
            panic!("{failed:?}");
        };
        assert_eq!(failed.failures, attempt);
        assert_eq!(failed.cert_id, second.fingerprint());
        assert_eq!(manager.status(name).await.failures, attempt);
        delays.push(retry_in);
        clock.advance(time::Duration::try_from(retry_in).unwrap() + time::Duration::seconds(1));
    }
    assert!(
        delays[0] < delays[1] && delays[1] < delays[2],
        "delays grow: {delays:?}"
    );
    assert!(store.get(&second).await.is_ok());
    assert_eq!(
        support::served_fingerprint(gateway.local_addr(), name, &root).await,
        Some(second.fingerprint())
    );
    gateway.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_domains_without_a_certificate_are_managed_and_a_bad_block_stops_the_start() {
    let api = |id: &str, domain: &str, certificates: &[&str]| {
        let json = serde_json::json!({"api_id": id, "name": id, "active": true, "domain": domain,
            "certificates": certificates,
            "proxy": {"listen_path": format!("/{id}/"), "target_url": "http://127.0.0.1:9"}});
        gateway_runtime::ApiDefinition::from_json(&json.to_string(), Path::new("api.json")).unwrap()
    };
    let apis = vec![
        api("own", "own.certgate.test", &["a-certificate-id"]),
        api("bare", "Bare.Certgate.Test", &[]),
        api("nodomain", "", &[]),
    ];
    let config = |acme: serde_json::Value| {
        let json = serde_json::json!({
            "listen_address": "127.0.0.1",
            "listen_port": 0,
            "secret": "acme test secret",
            "http_server_options": {"use_ssl": true, "acme": acme},
        });
        GatewayConfig::from_json(&json.to_string(), Path::new("tyk.conf"), []).unwrap()
    };
    let gateway = GatewayBuilder::new(config(serde_json::json!({
        "enabled": true,
        "directory": "https://127.0.0.1:9/dir",
        "accept_terms": true,
        "domains": ["listed.certgate.test"],
        "domains_from_apis": true,
        "challenges": ["tls-alpn-01"],
    })))
    .apis(apis)
    .start()
    .await
    .unwrap();
    assert_eq!(
        gateway.acme().unwrap().names(),
        ["listed.certgate.test", "bare.certgate.test"]
    );
    gateway.shutdown_within(Duration::from_secs(1)).await;

    let refused = GatewayBuilder::new(config(serde_json::json!({
        "enabled": true,
        "domains": ["a.certgate.test"],
    })))
    .start()
    .await
    .err()
    .expect("terms not accepted");
    let message = refused.to_string();
    assert!(
        message.contains("http_server_options.acme.accept_terms"),
        "{message}"
    );
}
