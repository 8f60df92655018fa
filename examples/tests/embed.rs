//! Runs the `embed` example and drives it with curl: its axum route answers through the
//! gateway's TLS, and a certificate added through the control API after start-up is served by
//! SNI (the time it took is printed: `cargo test -p certgate-examples --test embed -- --nocapture`).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

const SECRET: &str = "embed-test-control-secret";

struct Embed {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Embed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Embed {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_embed"))
        .args(["--port", "0", "--secret", SECRET, "--ca-out"])
        .arg(dir.path().join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("embed runs");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut port = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("embed listening on https://localhost:") {
            port = Some(rest.trim().parse().unwrap());
        }
        if line == "ready" {
            break;
        }
    }
    Embed {
        child,
        port: port.expect("embed printed its address"),
        dir,
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A CA of the test's own and a server certificate for `name` with its key, as PEM.
fn own_certificate(name: &str) -> (String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "embed test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![name.to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf
        .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();
    (ca_pem, format!("{}{}", cert.pem(), key.serialize_pem()))
}

#[test]
fn the_embed_example_serves_its_router_and_certificates_added_at_run_time() {
    let embed = start();
    let port = embed.port.to_string();
    let ca = embed.dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();

    // The service's own axum routes, through the gateway's TLS.
    let status = curl(&[
        "--cacert",
        ca,
        &format!("https://localhost:{port}/app/status"),
    ]);
    assert_eq!(
        text(&status.stdout),
        "the service is up\n",
        "{}",
        text(&status.stderr)
    );
    let hello = curl(&[
        "--cacert",
        ca,
        &format!("https://localhost:{port}/app/hello/rust"),
    ]);
    assert_eq!(text(&hello.stdout), "hello, rust\n");

    // A certificate for a new name, added through the control API after start-up.
    let name = "app.embed.test";
    let (own_ca, bundle) = own_certificate(name);
    let own_ca_path = embed.dir.path().join("own-ca.pem");
    std::fs::write(&own_ca_path, own_ca).unwrap();
    let bundle_path = embed.dir.path().join("bundle.pem");
    std::fs::write(&bundle_path, bundle).unwrap();
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}/app/status");
    let own_ca_path = own_ca_path.to_str().unwrap();
    let before = curl(&["--resolve", &resolve, "--cacert", own_ca_path, &url]);
    assert_ne!(
        before.status.code(),
        Some(0),
        "not served before it is added"
    );

    let added = Instant::now();
    let answer = curl(&[
        "--cacert",
        ca,
        "-H",
        &format!("X-Tyk-Authorization: {SECRET}"),
        "--data-binary",
        &format!("@{}", bundle_path.display()),
        &format!("https://localhost:{port}/tyk/certs?org_id=org1"),
    ]);
    let answer = text(&answer.stdout);
    assert!(answer.contains("\"id\":\"org1"), "{answer}");
    loop {
        let served = curl(&["--resolve", &resolve, "--cacert", own_ca_path, &url]);
        if served.status.code() == Some(0) {
            assert_eq!(text(&served.stdout), "the service is up\n");
            break;
        }
        assert!(
            added.elapsed() < Duration::from_secs(5),
            "the added certificate was never served: {}",
            text(&served.stderr)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!(
        "{name} served by SNI {:?} after the add was sent (curl polls included)",
        added.elapsed()
    );
}
