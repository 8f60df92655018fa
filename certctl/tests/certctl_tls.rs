//! `certctl --url https://...` against an in-process gateway whose control API is TLS, with and
//! without mutual TLS: `--cacert`, `--insecure`, `--cert`/`--key`, and the `CERTCTL_*`
//! environment variables. The PKI (from `certgate-test-support`) is made for the real clock.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use cert_store::{CertStore, MemoryStorage};
use support::InProcessGateway;
use test_support::pki::{self, TestCa, Usage};
use time::Duration;

const CERTCTL: &str = env!("CARGO_BIN_EXE_certctl");
const CONTROL_SECRET: &str = "control-secret-for-certctl-tls";

/// A CA with a server certificate for `localhost`/127.0.0.1 and a client certificate, written
/// as PEM files into a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
    server_bundle: String,
    client_ca_pem: String,
}

impl Pki {
    fn new() -> Self {
        let now = pki::now();
        let validity = (now - Duration::days(1), now + Duration::days(30));
        let ca = TestCa::root_valid("certctl test CA", validity);
        let server = ca.issue(
            &["localhost", "127.0.0.1"],
            "certctl test",
            Usage::Server,
            Some(validity),
        );
        let client = ca.issue(&[], "certctl test", Usage::Client, Some(validity));
        let ca_pem = ca.cert_pem.clone();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("client.pem"), &client.cert_pem).unwrap();
        std::fs::write(dir.path().join("client.key"), &client.key_pem).unwrap();
        std::fs::write(dir.path().join("garbage.pem"), "not pem at all").unwrap();
        Self {
            dir,
            server_bundle: server.bundle(),
            client_ca_pem: ca_pem,
        }
    }

    fn file(&self, name: &str) -> String {
        path_text(&self.dir.path().join(name))
    }
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_owned()
}

/// An in-process gateway with `use_ssl` on and the control API on the gateway port.
fn tls_gateway(pki: &Pki, control_mtls: bool) -> InProcessGateway {
    InProcessGateway::start(
        async move || {
            let store = CertStore::builder(Arc::new(MemoryStorage::new())).build();
            let org = tls_core::OrgId::default();
            let server_id = store.add(&pki.server_bundle, &org).await.unwrap();
            let ca_id = store.add(&pki.client_ca_pem, &org).await.unwrap();
            let config = gateway_runtime::GatewayConfig::from_json(
                &format!(
                    r#"{{"listen_address": "127.0.0.1", "listen_port": 0, "secret": "{CONTROL_SECRET}",
                        "http_server_options": {{"use_ssl": true, "ssl_certificates": ["{server_id}"]}},
                        "security": {{"control_api_use_mutual_tls": {control_mtls}, "certificates": {{"control_api": ["{ca_id}"]}}}}}}"#
                ),
                Path::new("certctl-tls-test.json"),
                Vec::new(),
            )
            .unwrap();
            gateway_runtime::GatewayBuilder::new(config).store(store)
        },
        |gateway| format!("https://localhost:{}", gateway.local_addr().port()),
    )
}

/// Runs certctl with a clean environment plus `env`.
fn certctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(CERTCTL);
    command.args(args);
    for name in [
        "CERTCTL_URL",
        "CERTCTL_REDIS",
        "CERTCTL_SECRET",
        "CERTCTL_CACERT",
        "CERTCTL_CERT",
        "CERTCTL_KEY",
        "CERTCTL_ENCODING_SECRET",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        command.env_remove(name);
    }
    // No system roots: a gateway's private CA must be named with --cacert.
    let empty = tempfile::tempdir().unwrap();
    command.env("SSL_CERT_DIR", empty.path());
    command.env(
        "SSL_CERT_FILE",
        PathBuf::from(empty.path()).join("none.pem"),
    );
    command.envs(env.iter().copied());
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CERTCTL}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = certctl(args, env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "certctl {args:?} failed: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

#[track_caller]
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = certctl(args, env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "certctl {args:?} should fail: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    text(&out.stderr)
}

#[test]
fn certctl_manages_a_tls_control_api() {
    let pki = Pki::new();
    let gateway = tls_gateway(&pki, false);
    let ca = pki.file("ca.pem");
    let target = [
        "--url",
        gateway.url.as_str(),
        "--secret",
        CONTROL_SECRET,
        "--cacert",
        ca.as_str(),
    ];

    // The gateway holds its server certificate and the client CA.
    let listed = ok(&[&["list"][..], &target].concat(), &[]).0;
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // Add, list, delete over TLS.
    let leaf = tempfile::NamedTempFile::new().unwrap();
    let extra = Pki::new();
    std::fs::write(leaf.path(), &extra.server_bundle).unwrap();
    let leaf_path = path_text(leaf.path());
    let id = ok(
        &[&["add", "--org", "org9"][..], &target, &[&leaf_path]].concat(),
        &[],
    )
    .0;
    let id = id.trim();
    assert!(id.starts_with("org9") && id.len() == 4 + 64, "{id}");
    let listed = ok(&[&["list", "--org", "org9"][..], &target].concat(), &[]).0;
    assert_eq!(listed.trim(), id);
    let removed = ok(&[&["delete"][..], &target, &[id]].concat(), &[]).0;
    assert_eq!(removed, format!("removed {id}\n"));

    // Without the CA the gateway's certificate is not trusted, and the error says what to do.
    let err = fails(
        &["list", "--url", &gateway.url, "--secret", CONTROL_SECRET],
        &[],
    );
    assert!(err.contains("--cacert"), "{err}");

    // --insecure works, and warns.
    let (listed, warning) = ok(
        &[
            "list",
            "--url",
            &gateway.url,
            "--secret",
            CONTROL_SECRET,
            "--insecure",
        ],
        &[],
    );
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(warning.contains("not verified"), "{warning}");

    // Everything from the environment.
    let env = [
        ("CERTCTL_URL", gateway.url.as_str()),
        ("CERTCTL_SECRET", CONTROL_SECRET),
        ("CERTCTL_CACERT", ca.as_str()),
    ];
    assert_eq!(ok(&["list"], &env).0.lines().count(), 2);

    // Hostile or mistaken TLS options are clear errors.
    let garbage = pki.file("garbage.pem");
    let err = fails(
        &[
            "list",
            "--url",
            &gateway.url,
            "--secret",
            CONTROL_SECRET,
            "--cacert",
            &garbage,
        ],
        &[],
    );
    assert!(
        err.contains("--cacert") && err.contains("garbage.pem"),
        "{err}"
    );
    let missing = pki.file("missing.pem");
    let err = fails(
        &[
            "list",
            "--url",
            &gateway.url,
            "--secret",
            CONTROL_SECRET,
            "--cacert",
            &missing,
        ],
        &[],
    );
    assert!(
        err.contains("--cacert") && err.contains("cannot read"),
        "{err}"
    );
    let err = fails(
        &[
            "list",
            "--url",
            &gateway.url,
            "--secret",
            CONTROL_SECRET,
            "--cacert",
            &ca,
            "--insecure",
        ],
        &[],
    );
    assert!(err.contains("not both"), "{err}");
    let plain = gateway.url.replace("https://", "http://");
    let err = fails(
        &[
            "list",
            "--url",
            &plain,
            "--secret",
            CONTROL_SECRET,
            "--cacert",
            &ca,
        ],
        &[],
    );
    assert!(err.contains("https:// URLs only"), "{err}");
    let with_path = format!("{}/tyk/certs", gateway.url);
    let err = fails(
        &[
            "list",
            "--url",
            &with_path,
            "--secret",
            CONTROL_SECRET,
            "--cacert",
            &ca,
        ],
        &[],
    );
    assert!(err.contains("without a path"), "{err}");
    let err = fails(
        &[
            "list",
            "--url",
            "ftp://localhost",
            "--secret",
            CONTROL_SECRET,
        ],
        &[],
    );
    assert!(err.contains("http:// or https://"), "{err}");
}

#[test]
fn certctl_uses_a_client_certificate_when_the_control_api_requires_one() {
    let pki = Pki::new();
    let gateway = tls_gateway(&pki, true);
    let ca = pki.file("ca.pem");
    let target = [
        "--url",
        gateway.url.as_str(),
        "--secret",
        CONTROL_SECRET,
        "--cacert",
        ca.as_str(),
    ];

    // Without a client certificate the control API refuses.
    let err = fails(&[&["list"][..], &target].concat(), &[]);
    assert!(err.contains("--cert"), "{err}");

    let cert = pki.file("client.pem");
    let key = pki.file("client.key");
    let listed = ok(
        &[&["list"][..], &target, &["--cert", &cert, "--key", &key]].concat(),
        &[],
    )
    .0;
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // The same through the environment.
    let env = [
        ("CERTCTL_URL", gateway.url.as_str()),
        ("CERTCTL_SECRET", CONTROL_SECRET),
        ("CERTCTL_CACERT", ca.as_str()),
        ("CERTCTL_CERT", cert.as_str()),
        ("CERTCTL_KEY", key.as_str()),
    ];
    assert_eq!(ok(&["list"], &env).0.lines().count(), 2);

    // A certificate without its key is a usage error.
    let out = certctl(&[&["list"][..], &target, &["--cert", &cert]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // A key file that holds no key says so.
    let err = fails(
        &[&["list"][..], &target, &["--cert", &cert, "--key", &ca]].concat(),
        &[],
    );
    assert!(
        err.contains("--key") && err.contains("no private key"),
        "{err}"
    );
}
