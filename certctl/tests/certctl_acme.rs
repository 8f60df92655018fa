//! `certctl acme status` against in-process gateways: one whose ACME obtains a certificate from
//! a real test CA (Pebble, Debian's `pebble` package) for one name and fails to validate another
//! (the test DNS points it at an address where nothing listens), one with ACME off, and a wrong
//! secret. The control API is TLS with a `localhost` certificate from `certgate-test-support`.
//!
//! Without Pebble installed the Pebble test says so and passes; with `CI=true` it fails instead.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acme::testkit::{Pebble, free_port};
use cert_store::{CertStore, MemoryStorage};
use gateway_runtime::wire::AcmeStatus;
use test_support::pki::{self, TestCa, Usage};

const CERTCTL: &str = env!("CARGO_BIN_EXE_certctl");
const SECRET: &str = "control-secret-for-certctl-acme";
const ISSUED: &str = "ok.certgate.test";
const FAILING: &str = "broken.certgate.test";

fn certctl(args: &[&str]) -> Output {
    Command::new(CERTCTL)
        .args(args)
        .env_remove("CERTCTL_SECRET")
        .env_remove("CERTCTL_URL")
        .env_remove("CERTCTL_REDIS")
        .env_remove("CERTCTL_CACERT")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let out = certctl(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "certctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn fails(args: &[&str]) -> String {
    let out = certctl(args);
    assert_eq!(out.status.code(), Some(1), "certctl {args:?} should fail");
    assert!(out.stdout.is_empty(), "nothing on standard output");
    String::from_utf8(out.stderr).unwrap()
}

/// A gateway on its own runtime, shut down on drop; its control API is TLS for `localhost`.
struct TestGateway {
    runtime: tokio::runtime::Runtime,
    gateway: Option<gateway_runtime::Gateway>,
    dir: tempfile::TempDir,
    /// The ID of the control API's `localhost` certificate (not managed by ACME).
    server_id: String,
}

impl TestGateway {
    /// Starts a gateway on `port` (0: any) with `acme` as `http_server_options.acme`.
    fn start(port: u16, acme: serde_json::Value) -> Self {
        let now = pki::now();
        let validity = (
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        );
        let ca = TestCa::root_valid("certctl acme test CA", validity);
        let server = ca.issue(
            &["localhost"],
            "certctl acme test",
            Usage::Server,
            Some(validity),
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = CertStore::builder(Arc::new(MemoryStorage::new())).build();
        let server_id = runtime
            .block_on(store.add(&server.bundle(), &tls_core::OrgId::default()))
            .unwrap()
            .to_string();
        let gateway = runtime.block_on(async {
            let config = serde_json::json!({
                "listen_address": "127.0.0.1",
                "listen_port": port,
                "secret": SECRET,
                "http_server_options": {
                    "use_ssl": true,
                    "ssl_certificates": [server_id],
                    "acme": acme,
                },
            });
            let config = gateway_runtime::GatewayConfig::from_json(
                &config.to_string(),
                Path::new("certctl-acme-test.json"),
                Vec::new(),
            )
            .unwrap();
            gateway_runtime::GatewayBuilder::new(config)
                .store(store)
                .start()
                .await
                .unwrap()
        });
        Self {
            runtime,
            gateway: Some(gateway),
            dir,
            server_id,
        }
    }

    fn gateway(&self) -> &gateway_runtime::Gateway {
        self.gateway.as_ref().unwrap()
    }

    /// The target arguments of certctl for this gateway.
    fn target(&self, secret: &str) -> Vec<String> {
        [
            "--url",
            &format!("https://localhost:{}", self.gateway().local_addr().port()),
            "--secret",
            secret,
            "--cacert",
            self.dir.path().join("ca.pem").to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn acme_status(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["acme".to_owned(), "status".to_owned()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(self.target(SECRET));
        args
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            self.runtime
                .block_on(gateway.shutdown_within(Duration::from_secs(1)));
        }
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn acme_status_shows_the_issued_certificate_and_the_name_that_fails() {
    let tls_port = free_port();
    let Some(pebble) = Pebble::start(free_port(), tls_port) else {
        return;
    };
    // Pebble validates FAILING at an address where nothing listens.
    pebble.set_a(FAILING, "127.0.0.2");
    let gateway = TestGateway::start(
        tls_port,
        pebble.acme_block(&[ISSUED, FAILING], &["tls-alpn-01"]),
    );
    let manager = Arc::clone(gateway.gateway().acme().expect("ACME is on"));
    let started = Instant::now();
    loop {
        let (issued, failing) = gateway
            .runtime
            .block_on(async { (manager.status(ISSUED).await, manager.status(FAILING).await) });
        if issued.cert_id.is_some() && failing.failures >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{issued:?} {failing:?}\n{}",
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // JSON: the gateway's answer, typed.
    let json = ok(&strs(&gateway.acme_status(&["--json"])));
    let status: AcmeStatus = serde_json::from_str(&json).unwrap();
    assert_eq!((status.issued, status.failed), (1, 1), "{json}");
    let [issued, failing] = <[_; 2]>::try_from(status.names).expect("two names");
    assert_eq!(issued.name, ISSUED);
    let cert_id = issued.cert_id.clone().expect("issued");
    let stored = gateway
        .runtime
        .block_on(gateway.gateway().store().get(&cert_id.parse().unwrap()))
        .unwrap();
    let meta = stored.metadata();
    assert_eq!(meta.dns_names, [ISSUED]);
    let (not_before, not_after) = (meta.not_before.unwrap(), meta.not_after.unwrap());
    assert_eq!(issued.not_after, Some(not_after));
    let renew_at = issued.next_renewal.expect("a renewal moment");
    let lifetime = (not_after - not_before).whole_seconds();
    let before_expiry = (not_after - renew_at).whole_seconds();
    assert!(
        (lifetime / 3 - 1..=lifetime / 3 + 1).contains(&before_expiry),
        "renewed with a third of the lifetime left: {renew_at} for {not_before}..{not_after}"
    );
    assert_eq!((issued.failures, issued.last_error.as_deref()), (0, None));
    assert_eq!(failing.name, FAILING);
    assert_eq!(failing.cert_id, None);
    assert!(failing.failures >= 1, "{json}");
    assert!(failing.next_renewal.is_some(), "the retry moment: {json}");
    let error = failing.last_error.clone().expect("the failure is told");
    assert!(
        error.contains(&format!("could not validate {FAILING}")) && error.contains("reachable"),
        "{error}\n{}",
        pebble.log()
    );
    assert!(!json.contains("127.0.0.2"), "no addresses: {json}");

    // The table: the same facts, one row per name.
    let table = ok(&strs(&gateway.acme_status(&[])));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for column in [
        "NAME",
        "CERTIFICATE",
        "EXPIRES",
        "NEXT RENEWAL",
        "FAILURES",
        "LAST ERROR",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    let rfc3339 = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            ISSUED,
            cert_id.as_str(),
            &rfc3339(not_after),
            &rfc3339(renew_at),
            "0",
            "-"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines[2].split_whitespace().take(5).collect();
    assert_eq!(row[..3], [FAILING, "-", "-"], "{table}");
    assert_eq!(row[4], failing.failures.to_string(), "{table}");
    assert!(lines[2].ends_with(&error), "{table}");
    assert_eq!(
        lines[3],
        "since start (this gateway): issued 1, renewed 0, failed 1"
    );

    // The certificate's details carry its name's renewal state; other certificates' do not.
    let get = |id: &str| {
        let json = ok(&[
            &["get", "--json"][..],
            &strs(&gateway.target(SECRET)),
            &[id],
        ]
        .concat());
        serde_json::from_str::<serde_json::Value>(&json).unwrap()[0].take()
    };
    let details = get(&cert_id);
    assert_eq!(
        details["acme"],
        serde_json::json!({"name": ISSUED, "next_renewal": rfc3339(renew_at), "failures": 0,
            "last_error": null, "local_only": false}),
        "{details}"
    );
    let text = ok(&[&["get"][..], &strs(&gateway.target(SECRET)), &[&cert_id]].concat());
    assert!(
        text.contains(&format!("ACME name:       {ISSUED}\n"))
            && text.contains(&format!("Next renewal:    {}\n", rfc3339(renew_at)))
            && text.contains("ACME failures:   0\n"),
        "{text}"
    );
    let localhost = gateway.server_id.clone();
    let details = get(&localhost);
    assert_eq!(details["dns_names"], serde_json::json!(["localhost"]));
    assert!(details.get("acme").is_none(), "{details}");
}

#[test]
fn acme_status_is_refused_without_the_secret_and_explains_when_acme_is_off() {
    let gateway = TestGateway::start(0, serde_json::json!({"enabled": false}));
    let err = fails(&[&["acme", "status"][..], &strs(&gateway.target("wrong"))].concat());
    assert!(
        err.contains("403") && err.contains("Attempted administrative access"),
        "{err}"
    );
    let err = fails(&strs(&gateway.acme_status(&[])));
    assert!(
        err.contains("404") && err.contains("ACME is not configured on this gateway"),
        "{err}"
    );
    let err = fails(&[
        "acme",
        "status",
        "--redis",
        "redis://127.0.0.1:1/0",
        "--encoding-secret",
        "x",
    ]);
    assert!(err.contains("acme status needs --url"), "{err}");
}
