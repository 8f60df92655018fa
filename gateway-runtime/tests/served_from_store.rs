//! Serving certificates that nothing names: `certificates_from_store` ("store it, and it is
//! served") and `Gateway::add_server_certificate` / `remove_server_certificate`, with real
//! handshakes.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_runtime::GatewayBuilder;
use rustls::pki_types::CertificateDer;
use support::{client_config, https_get, memory_store, tls_config};
use test_support::pki::TestCa;
use tls_core::OrgId;

/// The certificate a fresh client (trusting `root`) gets for `sni`, if the handshake succeeds.
/// Fresh: a resumed session would not show which certificate is served now.
async fn served(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
) -> Option<CertificateDer<'static>> {
    https_get(
        addr,
        sni,
        client_config(std::slice::from_ref(root), None),
        "/",
    )
    .await
    .ok()
    .map(|answer| answer.server_cert)
}

/// Waits until `sni` gets `expected` (or, with `None`, fails), at most 5 s; returns how long.
async fn until(
    addr: SocketAddr,
    sni: &str,
    client: &CertificateDer<'static>,
    expected: Option<&CertificateDer<'static>>,
) -> Duration {
    let started = Instant::now();
    loop {
        if served(addr, sni, client).await.as_ref() == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{sni}: never served {}",
            if expected.is_some() {
                "the expected certificate"
            } else {
                "nothing"
            }
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn org(name: &str) -> OrgId {
    OrgId::new(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_stored_after_start_up_is_served_by_its_names() {
    let pki = TestCa::root("from-store ca");
    let configured = pki.server(&["default.test", "taken.test"]);
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        store
            .add(&configured.bundle(), &OrgId::EMPTY)
            .await
            .unwrap()
            .into(),
    ];
    let gateway = GatewayBuilder::new(config)
        .store(store.clone())
        .serve_certificates_from_store([org("org1"), OrgId::EMPTY])
        .start()
        .await
        .unwrap();
    let addr = gateway.local_addr();
    let client = pki.ca_der();

    // Stored after start-up, named by nothing: served by SNI once the notice is in.
    let dynamic = pki.server(&["dyn.test", "*.wild.test"]);
    let added = Instant::now();
    let id = store.add(&dynamic.bundle(), &org("org1")).await.unwrap();
    let took = until(addr, "dyn.test", &client, Some(&dynamic.der())).await;
    eprintln!("served {:?} after the add", added.elapsed());
    assert!(took < Duration::from_secs(5));
    assert_eq!(
        served(addr, "x.wild.test", &client).await,
        Some(dynamic.der())
    );

    // A configured certificate keeps its names and stays the default.
    let intruder = pki.server(&["taken.test"]);
    store.add(&intruder.bundle(), &OrgId::EMPTY).await.unwrap();
    let marker = pki.server(&["marker.test"]);
    store.add(&marker.bundle(), &OrgId::EMPTY).await.unwrap();
    until(addr, "marker.test", &client, Some(&marker.der())).await;
    assert_eq!(
        served(addr, "taken.test", &client).await,
        Some(configured.der())
    );
    assert_eq!(
        served(addr, "default.test", &client).await,
        Some(configured.der())
    );

    // Orgs not chosen, certificates without a key and CA certificates are not served.
    let other_org = pki.server(&["other-org.test"]);
    store.add(&other_org.bundle(), &org("org2")).await.unwrap();
    store
        .add(&pki.server(&["nokey.test"]).cert_pem, &org("org1"))
        .await
        .unwrap();
    let sub_ca = TestCa::root("nokey.test");
    store.add(&sub_ca.cert_pem, &org("org1")).await.unwrap();
    let marker2 = pki.server(&["marker2.test"]);
    store.add(&marker2.bundle(), &org("org1")).await.unwrap();
    until(addr, "marker2.test", &client, Some(&marker2.der())).await;
    for name in ["other-org.test", "nokey.test"] {
        // The default answers, which the client refuses for the wrong name.
        assert_eq!(served(addr, name, &client).await, None, "{name}");
    }

    // Of two certificates for one name, the one that expires last is served (a renewal).
    let renewed = pki.server_expiring_in(&["dyn.test"], 800);
    store.add(&renewed.bundle(), &org("org1")).await.unwrap();
    until(addr, "dyn.test", &client, Some(&renewed.der())).await;
    let older = pki.server_expiring_in(&["dyn.test"], 10);
    store.add(&older.bundle(), &org("org1")).await.unwrap();
    let marker3 = pki.server(&["marker3.test"]);
    store.add(&marker3.bundle(), &org("org1")).await.unwrap();
    until(addr, "marker3.test", &client, Some(&marker3.der())).await;
    assert_eq!(served(addr, "dyn.test", &client).await, Some(renewed.der()));

    // Deleted from the store: no longer served.
    let renewed_id = tls_core::Upload::parse(
        &renewed.bundle(),
        cert_store::Clock::now(&cert_store::SystemClock),
    )
    .unwrap()
    .id(&org("org1"));
    store.delete(&renewed_id).await.unwrap();
    store.delete(&id).await.unwrap();
    until(addr, "dyn.test", &client, Some(&older.der())).await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_a_stored_certificate_is_served_only_when_added_at_run_time() {
    let pki = TestCa::root("runtime ca");
    let default = pki.server(&["default.test"]);
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        store
            .add(&default.bundle(), &OrgId::EMPTY)
            .await
            .unwrap()
            .into(),
    ];
    let gateway = GatewayBuilder::new(config)
        .store(store.clone())
        .start()
        .await
        .unwrap();
    let addr = gateway.local_addr();
    let client = pki.ca_der();

    let runtime = pki.server(&["runtime.test"]);
    let id = store.add(&runtime.bundle(), &OrgId::EMPTY).await.unwrap();
    // Give a (wrong) rebuild the time to happen: still not served, nothing names it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(served(addr, "runtime.test", &client).await, None);

    // Served as soon as the call returns.
    gateway.add_server_certificate(&id).await.unwrap();
    assert_eq!(
        served(addr, "runtime.test", &client).await,
        Some(runtime.der())
    );
    // Adding twice is harmless; removing stops serving it at once, the store keeps it.
    gateway.add_server_certificate(&id).await.unwrap();
    assert!(gateway.remove_server_certificate(&id).await.unwrap());
    assert_eq!(served(addr, "runtime.test", &client).await, None);
    assert!(!gateway.remove_server_certificate(&id).await.unwrap());
    assert!(store.details(&id).await.is_ok());

    // Not stored, or without a private key: refused, saying which.
    let missing = tls_core::CertId::new(OrgId::EMPTY, tls_core::Fingerprint::of(b"nothing"));
    let refused = gateway.add_server_certificate(&missing).await.unwrap_err();
    assert!(
        refused.to_string().contains(&missing.to_string()),
        "{refused}"
    );
    let no_key = store
        .add(&pki.server(&["nokey.test"]).cert_pem, &OrgId::EMPTY)
        .await
        .unwrap();
    let refused = gateway.add_server_certificate(&no_key).await.unwrap_err();
    assert!(
        refused.to_string().contains("cannot be served"),
        "{refused}"
    );
    gateway.shutdown().await;
}

#[test]
fn the_configuration_field_and_its_environment_override_are_read_and_checked() {
    let config = gateway_runtime::GatewayConfig::from_json(
        r#"{"http_server_options": {"certificates_from_store": {"enabled": true, "orgs": ["org1", ""]}}}"#,
        std::path::Path::new("t.json"),
        Vec::new(),
    )
    .unwrap();
    let options = &config.http_server_options.certificates_from_store;
    assert!(options.enabled);
    assert_eq!(options.orgs, ["org1", ""]);

    let config = gateway_runtime::GatewayConfig::from_json(
        "{}",
        std::path::Path::new("t.json"),
        vec![
            (
                "TYK_GW_HTTPSERVEROPTIONS_CERTIFICATESFROMSTORE_ENABLED".to_owned(),
                "true".to_owned(),
            ),
            (
                "TYK_GW_HTTPSERVEROPTIONS_CERTIFICATESFROMSTORE_ORGS".to_owned(),
                "a, b".to_owned(),
            ),
        ],
    )
    .unwrap();
    let options = &config.http_server_options.certificates_from_store;
    assert!(options.enabled);
    assert_eq!(options.orgs, ["a", "b"]);

    let bad = gateway_runtime::GatewayConfig::from_json(
        &format!(
            r#"{{"http_server_options": {{"certificates_from_store": {{"orgs": ["{}"]}}}}}}"#,
            "x".repeat(300)
        ),
        std::path::Path::new("t.json"),
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        bad.to_string()
            .contains("http_server_options.certificates_from_store.orgs[0]"),
        "{bad}"
    );
}
