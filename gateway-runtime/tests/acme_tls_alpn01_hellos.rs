//! `tls-alpn-01` ClientHellos (ALPN `acme-tls/1` alone) are something anyone can send: a flood
//! of them, for names the gateway does not manage and for the one it manages while nothing is
//! pending, costs the coordination storage a bounded number of lookups (counted by a
//! coordinator that wraps the in-memory one), while a challenge published there by another
//! process is answered once the reuse of the last answer (one second) has passed: `openssl
//! s_client` negotiates `acme-tls/1` and gets the RFC 8737 certificate for the key
//! authorization. (Pebble validating through a gateway that did not order: `acme_fleet`.)

#![cfg(feature = "acme")]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acme::testkit::{CountingCoordinator, free_port};
use acme::{AcmeSettings, ChallengeKind, Coordinator as _, MemoryCoordinator};
use gateway_runtime::{GatewayBuilder, GatewayConfig};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use test_support::pki::TestCa;

const MANAGED: &str = "managed.certgate.test";

/// Sends a ClientHello offering `acme-tls/1` alone for each of `names` (`in_flight` at a
/// time) and waits for every handshake to end, however it ends.
async fn hellos(addr: std::net::SocketAddr, names: Vec<String>, in_flight: usize) {
    let mut config = (*support::client_config(&[TestCa::root("nobody").ca_der()], None)).clone();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    for batch in names.chunks(in_flight) {
        let mut tasks = tokio::task::JoinSet::new();
        for name in batch {
            let (connector, name) = (
                connector.clone(),
                ServerName::try_from(name.clone()).unwrap(),
            );
            tasks.spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                // No certificate this client trusts: every handshake fails, after the hello.
                let ended =
                    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                        .await;
                assert!(ended.is_ok(), "the handshake ends");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
}

/// What `openssl s_client` offering `acme-tls/1` alone for `name` got: the negotiated ALPN
/// protocol and the server's certificate.
fn openssl_hello(port: u16, name: &str) -> (Option<String>, CertificateDer<'static>) {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name, "-alpn", "acme-tls/1", "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let alpn = text
        .lines()
        .find_map(|l| l.strip_prefix("ALPN protocol: "))
        .map(str::to_owned);
    let cert = CertificateDer::from_pem_slice(text.as_bytes())
        .unwrap_or_else(|e| panic!("no certificate ({e}): {text}"));
    (alpn, cert)
}

/// SHA-256 of `data`, by `openssl dgst`.
fn openssl_sha256(data: &str) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), data.as_bytes()).unwrap();
    let digest = child.wait_with_output().unwrap().stdout;
    assert_eq!(digest.len(), 32);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tls_alpn_01_hellos_costs_bounded_lookups_and_a_published_challenge_is_answered()
{
    let tls_port = free_port();
    let mut config = GatewayConfig::default()
        .listen("127.0.0.1", tls_port)
        .with_tls();
    config.secret = "acme test secret".to_owned();
    // A CA that does not answer: nothing is ever pending unless the test publishes it.
    let settings = AcmeSettings::new("https://127.0.0.1:9/dir", &[MANAGED])
        .unwrap()
        .with_challenges(&[ChallengeKind::TlsAlpn01]);
    let coordinator = Arc::new(CountingCoordinator::new(Arc::new(
        MemoryCoordinator::default(),
    )));
    let gateway = GatewayBuilder::new(config)
        .acme(settings)
        .acme_coordinator(coordinator.clone())
        .start()
        .await
        .unwrap();
    let addr = gateway.local_addr();
    let lookups = || coordinator.tls_alpn01_lookups();
    assert_eq!(lookups(), 0);

    // 600 names nobody manages, 50 hellos at a time: at most 10 lookups a second among them.
    let started = Instant::now();
    let unknown = (0..600).map(|i| format!("n{i}.unknown.test")).collect();
    hellos(addr, unknown, 50).await;
    let seconds = started.elapsed().as_secs() as usize;
    let unknown_lookups = lookups();
    assert!(
        (1..=10 * (seconds + 1)).contains(&unknown_lookups),
        "600 hellos in {seconds} s cost {unknown_lookups} lookups"
    );

    // 300 hellos for the managed name, nothing pending: one lookup per second at most.
    let started = Instant::now();
    hellos(addr, vec![MANAGED.to_owned(); 300], 50).await;
    let seconds = started.elapsed().as_secs() as usize;
    let managed_lookups = lookups() - unknown_lookups;
    assert!(
        (1..=seconds + 1).contains(&managed_lookups),
        "300 hellos in {seconds} s cost {managed_lookups} lookups"
    );

    // Another process publishes a challenge for the name (as an orderer of the fleet does; it
    // then waits a second and a quarter before asking the CA to validate).
    let key_authorization = "token-from-the-ca.account-thumbprint";
    coordinator
        .put_challenge(
            &format!("tls-alpn-01:{MANAGED}"),
            key_authorization,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1250)).await;
    let (alpn, cert) = tokio::task::spawn_blocking(move || openssl_hello(tls_port, MANAGED))
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some("acme-tls/1"));
    // The acmeIdentifier extension holds the SHA-256 of the key authorization.
    let digest = openssl_sha256(key_authorization);
    assert!(
        cert.windows(32).any(|w| w == digest.as_slice()),
        "the challenge certificate carries the key authorization's digest"
    );
    gateway.shutdown_within(Duration::from_secs(1)).await;
}
