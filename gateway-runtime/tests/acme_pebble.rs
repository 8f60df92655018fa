//! Automatic certificates against a real ACME CA: Pebble (Debian's `pebble` package) validates
//! `tls-alpn-01` and `http-01` against the running gateway, then curl gets the issued
//! certificate by SNI, verified against Pebble's issuing root.
//!
//! Without Pebble installed these tests say so and pass; with `CI=true` they fail instead.

#![cfg(feature = "acme")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use acme::testkit::{Pebble, free_port};
use gateway_runtime::{GatewayBuilder, GatewayConfig};

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

/// A gateway configured for ACME with `challenges`, in front of a fresh Pebble; waits until
/// curl verifies the certificate served for `name`.
async fn issued_and_served(challenges: &[&str], name: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("acme=debug,gateway_runtime=debug")
        .with_test_writer()
        .try_init();
    let (tls_port, http_port) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(http_port, tls_port) else {
        return;
    };
    let ca_root = std::fs::read_to_string(pebble.https_root_path()).unwrap();
    let config = serde_json::json!({
        "listen_address": "127.0.0.1",
        "listen_port": tls_port,
        "secret": "acme test secret",
        "http_server_options": {
            "use_ssl": true,
            "acme": {
                "enabled": true,
                "directory": pebble.directory_url,
                "email": "ops@certgate.test",
                "accept_terms": true,
                "domains": [name],
                "challenges": challenges,
                "ca_root": ca_root,
                "http_port": http_port,
            }
        }
    });
    let config = GatewayConfig::from_json(&config.to_string(), Path::new("tyk.conf"), []).unwrap();
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
    gateway.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_is_validated_by_pebble_against_the_gateway_and_served_by_sni() {
    issued_and_served(&["tls-alpn-01"], "alpn.certgate.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_validated_by_pebble_against_the_gateway_and_served_by_sni() {
    issued_and_served(&["http-01"], "http.certgate.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_01_listener_redirects_everything_else_to_https() {
    let (tls_port, http_port) = (free_port(), free_port());
    let mut config = GatewayConfig::default()
        .listen("127.0.0.1", tls_port)
        .with_tls();
    let settings = acme::AcmeSettings::new("https://127.0.0.1:9/dir", &["redirect.certgate.test"])
        .unwrap()
        .with_challenges(&[acme::ChallengeKind::Http01]);
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
