//! The `gateway` binary with a configuration file: Tyk field names, inline PEM server
//! certificates, API definitions from `app_path`, SIGHUP reload, and clear start-up errors.

#[path = "../../gateway-runtime/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::echo_upstream;
use test_support::pki::TestCa;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_api(dir: &std::path::Path, id: &str, path: &str, upstream: std::net::SocketAddr) {
    let api = serde_json::json!({"api_id": id, "name": id, "active": true,
        "proxy": {"listen_path": path, "target_url": format!("http://{upstream}"), "strip_listen_path": true}});
    std::fs::write(dir.join(format!("{id}.json")), api.to_string()).unwrap();
}

fn curl(ca: &std::path::Path, url: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_file_serves_its_apis_and_sighup_reloads_them() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    std::fs::create_dir(&apps).unwrap();
    let upstream = echo_upstream().await;
    write_api(&apps, "one", "/one/", upstream);
    let pki = TestCa::root("config ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.cert_pem).unwrap();
    let port = free_port();
    let config = serde_json::json!({
        "listen_address": "127.0.0.1", "listen_port": port, "secret": "config-test-secret",
        "http_server_options": {"use_ssl": true, "ssl_certificates": [pki.server(&["localhost"]).bundle()]},
        "storage": {"type": "memory"}, "app_path": apps, "a_field_certgate_does_not_know": 1,
    });
    let config_path = dir.path().join("tyk.conf");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let answer = curl(&ca, &format!("{base}/one/x"));
        if answer.0 != 0 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first.0, 200, "{first:?}");
    assert!(first.1.contains("upstream says /x"), "{}", first.1);
    assert_eq!(curl(&ca, &format!("{base}/two/x")).0, 404);

    write_api(&apps, "two", "/two/", upstream);
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let reloaded_by = Instant::now() + Duration::from_secs(10);
    while curl(&ca, &format!("{base}/two/x")).0 != 200 {
        assert!(
            Instant::now() < reloaded_by,
            "SIGHUP did not load the new API"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("a_field_certgate_does_not_know"),
        "unknown fields are logged: {log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "no key material in the log");
}

#[test]
fn an_invalid_configuration_stops_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tyk.conf");
    std::fs::write(
        &config_path,
        r#"{"listen_port": 0, "http_server_options": {"min_version": 769}}"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("http_server_options.min_version"),
        "{stderr}"
    );

    let missing = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", "/nonexistent/tyk.conf"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/tyk.conf"));
}
