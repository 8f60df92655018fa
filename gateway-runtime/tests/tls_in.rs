//! TLS termination with real handshakes: SNI selection, hot changes, mutual TLS, versions,
//! ALPN and resumption.

mod support;

use std::time::{Duration, Instant};

use support::{api, client_config, echo_upstream, https_get, memory_store, start, tls_config};
use test_support::pki::{Leaf, TestCa, stranger};
use tls_core::{OrgId, Upload};

async fn add(store: &cert_store::CertStore, pem: &str) -> String {
    store.add(pem, &OrgId::EMPTY).await.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_exact_then_wildcard_then_default() {
    let pki = TestCa::root("sni ca");
    let (default, exact, wildcard) = (
        pki.server(&["default.test"]),
        pki.server(&["a.test"]),
        pki.server(&["*.wild.test"]),
    );
    let store = memory_store();
    let mut config = tls_config();
    for cert in [&default, &exact, &wildcard] {
        config
            .http_server_options
            .ssl_certificates
            .push(add(&store, &cert.bundle()).await.parse().unwrap());
    }
    let gateway = start(config, store, Vec::new()).await;
    let client = client_config(&[pki.ca_der()], None);
    let addr = gateway.local_addr();
    let served = |sni: &'static str| {
        let client = client.clone();
        async move {
            https_get(addr, sni, client, "/")
                .await
                .map(|a| a.server_cert)
        }
    };
    assert_eq!(served("a.test").await.unwrap(), exact.der());
    assert_eq!(served("x.wild.test").await.unwrap(), wildcard.der());
    assert_eq!(
        served("A.TEST").await.unwrap(),
        exact.der(),
        "names are case-insensitive"
    );
    // An unknown name gets the default, which the client then refuses for the wrong name.
    let unknown = served("unknown.test").await.unwrap_err();
    assert!(unknown.contains("handshake"), "{unknown}");
    let lenient = https_get(addr, "default.test", client.clone(), "/")
        .await
        .unwrap();
    assert_eq!(lenient.server_cert, default.der());
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_added_and_deleted_in_the_store_change_new_handshakes() {
    let pki = TestCa::root("hot ca");
    let (default, later) = (pki.server(&["default.test"]), pki.server(&["later.test"]));
    let store = memory_store();
    let later_id = Upload::parse(
        &later.bundle(),
        cert_store::Clock::now(&cert_store::SystemClock),
    )
    .unwrap()
    .id(&OrgId::EMPTY);
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        add(&store, &default.bundle()).await.parse().unwrap(),
        (&later_id).into(),
    ];
    let gateway = start(config, store.clone(), Vec::new()).await;
    // A fresh client each time: a resumed session would not show which certificate is served.
    let client = || client_config(&[pki.ca_der()], None);
    let addr = gateway.local_addr();
    assert!(
        https_get(addr, "later.test", client(), "/").await.is_err(),
        "not stored yet: the default is served"
    );

    let added_at = Instant::now();
    assert_eq!(add(&store, &later.bundle()).await, later_id.to_string());
    loop {
        if let Ok(answer) = https_get(addr, "later.test", client(), "/").await {
            assert_eq!(answer.server_cert, later.der());
            break;
        }
        assert!(
            added_at.elapsed() < Duration::from_secs(5),
            "the added certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("added certificate served after {:?}", added_at.elapsed());

    let deleted_at = Instant::now();
    store.delete(&later_id).await.unwrap();
    while https_get(addr, "later.test", client(), "/").await.is_ok() {
        assert!(
            deleted_at.elapsed() < Duration::from_secs(5),
            "the deleted certificate is still served"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("deleted certificate gone after {:?}", deleted_at.elapsed());
    gateway.shutdown().await;
}

/// A gateway whose `mtls.test` domain has only a mutual-TLS API and whose `mixed.test` domain
/// has an open API and a mutual-TLS API.
struct MtlsSetup {
    pki: TestCa,
    client_pki: TestCa,
    gateway: gateway_runtime::Gateway,
    allowed_leaf: Leaf,
    revoked: Leaf,
}

async fn mtls_setup() -> MtlsSetup {
    let pki = TestCa::root("server ca");
    let client_pki = TestCa::root("client ca");
    let upstream = echo_upstream().await;
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        add(&store, &pki.server(&["mtls.test", "mixed.test"]).bundle())
            .await
            .parse()
            .unwrap(),
    ];
    let ca_id = add(&store, &client_pki.cert_pem).await;
    // A leaf from an untrusted issuer, allow-listed by fingerprint.
    let allowed_leaf = TestCa::root("other ca").client("allow-listed");
    let leaf_id = add(&store, &allowed_leaf.cert_pem).await;
    let revoked = client_pki.client("revoked");
    let crl = client_pki.crl(&[revoked.serial]);
    let target = format!("http://{upstream}");
    let apis = vec![
        api(
            serde_json::json!({"api_id": "strict", "domain": "mtls.test", "use_mutual_tls_auth": true,
            "client_certificates": [ca_id, leaf_id], "client_certificate_crls": [crl],
            "proxy": {"listen_path": "/", "target_url": target}}),
        ),
        api(serde_json::json!({"api_id": "open", "domain": "mixed.test",
            "proxy": {"listen_path": "/open/", "target_url": target}})),
        api(
            serde_json::json!({"api_id": "secure", "domain": "mixed.test", "use_mutual_tls_auth": true,
            "client_certificates": [ca_id], "proxy": {"listen_path": "/secure/", "target_url": target}}),
        ),
    ];
    let gateway = start(config, store, apis).await;
    MtlsSetup {
        pki,
        client_pki,
        gateway,
        allowed_leaf,
        revoked,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_domain_refuses_strangers_expired_revoked_and_anonymous_clients_at_the_handshake()
 {
    let s = mtls_setup().await;
    let addr = s.gateway.local_addr();
    let roots = [s.pki.ca_der()];
    let get = |identity: Option<&Leaf>| {
        let config = client_config(&roots, identity);
        async move { https_get(addr, "mtls.test", config, "/x").await }
    };
    let good = s.client_pki.client("good");
    assert_eq!(
        get(Some(&good)).await.unwrap().status,
        Some(200),
        "issued by the allowed CA"
    );
    assert_eq!(
        get(Some(&s.allowed_leaf)).await.unwrap().status,
        Some(200),
        "allow-listed by fingerprint"
    );
    for (what, identity) in [
        ("stranger", Some(stranger())),
        ("expired", Some(s.client_pki.expired_client("expired"))),
        ("revoked", Some(s.revoked.clone())),
        ("no certificate", None),
    ] {
        // TLS 1.3 clients learn of the refusal on their first read.
        let outcome = get(identity.as_ref()).await;
        assert!(
            outcome.as_ref().map_or(true, |a| a.status.is_none()),
            "{what}: {outcome:?}"
        );
    }
    assert!(
        s.gateway
            .metrics()
            .render()
            .contains("certgate_mtls_refusals_total")
    );
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_domain_serves_open_apis_to_anyone_and_checks_mutual_tls_apis_per_request() {
    let s = mtls_setup().await;
    let addr = s.gateway.local_addr();
    let roots = [s.pki.ca_der()];
    let get = |identity: Option<Leaf>, path: &'static str| {
        let config = client_config(&roots, identity.as_ref());
        async move { https_get(addr, "mixed.test", config, path).await.unwrap() }
    };
    assert_eq!(get(None, "/open/a").await.status, Some(200));
    assert_eq!(
        get(Some(stranger()), "/open/a").await.status,
        Some(200),
        "the open API ignores client certificates"
    );
    let anonymous = get(None, "/secure/a").await;
    assert_eq!(anonymous.status, Some(403));
    assert!(
        anonymous
            .body
            .contains("Client TLS certificate is required"),
        "{}",
        anonymous.body
    );
    let refused = get(Some(stranger()), "/secure/a").await;
    assert_eq!(refused.status, Some(403));
    assert!(refused.body.contains("not allowed"), "{}", refused.body);
    assert_eq!(
        get(Some(s.client_pki.client("good")), "/secure/a")
            .await
            .status,
        Some(200)
    );
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_and_http2_is_offered() {
    let pki = TestCa::root("resume ca");
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        add(&store, &pki.server(&["r.test"]).bundle())
            .await
            .parse()
            .unwrap(),
    ];
    let gateway = start(config, store, Vec::new()).await;
    let client = client_config(&[pki.ca_der()], None);
    let first = https_get(gateway.local_addr(), "r.test", client.clone(), "/")
        .await
        .unwrap();
    assert!(!first.resumed);
    let second = https_get(gateway.local_addr(), "r.test", client.clone(), "/")
        .await
        .unwrap();
    assert!(
        second.resumed,
        "the second handshake resumes the first session"
    );

    let mut h2 = (*client_config(&[pki.ca_der()], None)).clone();
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(h2))
        .connect(
            rustls::pki_types::ServerName::try_from("r.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_is_the_minimum_and_a_stalled_handshake_is_dropped() {
    let pki = TestCa::root("version ca");
    let store = memory_store();
    let mut config = tls_config();
    config.tls_handshake_timeout_seconds = 1;
    config.http_server_options.ssl_certificates = vec![
        add(&store, &pki.server(&["v.test"]).bundle())
            .await
            .parse()
            .unwrap(),
    ];
    let gateway = start(config, store, Vec::new()).await;
    let addr = gateway.local_addr();

    // openssl as a second, independent client: TLS 1.1 is refused, 1.2 works.
    let s_client = |flag: &'static str| {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "v.test",
                flag,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed")
    };
    let old = s_client("-tls1_1");
    assert!(
        !String::from_utf8_lossy(&old.stdout).contains("BEGIN CERTIFICATE"),
        "TLS 1.1 must not complete"
    );
    let modern = s_client("-tls1_2");
    let shown = String::from_utf8_lossy(&modern.stdout);
    assert!(
        shown.contains("Protocol  : TLSv1.2") || shown.contains("TLSv1.2"),
        "{shown}"
    );

    // A client that connects and sends nothing is dropped after the handshake timeout.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stalled, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the server closed the stalled connection: {read:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    gateway.shutdown().await;
}
