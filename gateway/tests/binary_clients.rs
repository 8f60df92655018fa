//! The `gateway` binary's demo, driven by real clients: the `curl` commands it prints, and
//! `openssl s_client`.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

struct Demo {
    child: Child,
    port: u16,
    commands: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    start_demo_on(Command::new(env!("CARGO_BIN_EXE_gateway")))
}

/// The demo pinned to one CPU, where the gateway runs every task on its main thread.
fn start_demo_on_one_cpu() -> Demo {
    let mut command = Command::new("taskset");
    command.args(["-c", "0", env!("CARGO_BIN_EXE_gateway")]);
    start_demo_on(command)
}

fn start_demo_on(mut command: Command) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command
        .args(["--port", "0", "--demo-dir"])
        .arg(dir.path().join("demo-certs"))
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut port = 0;
    let mut commands = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("certgate demo gateway on https://localhost:") {
            port = rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        if line.starts_with("curl ") {
            commands.push(line.clone());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert_ne!(port, 0, "the demo printed its address");
    Demo {
        child,
        port,
        commands,
        _dir: dir,
    }
}

/// Runs a printed curl command (in the demo's folder) and returns (status, body).
fn run_curl(demo: &Demo, command: &str) -> (u16, String) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -sS -w '\\n%{{http_code}}'"))
        .current_dir(demo._dir.path())
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn the_demo_serves_what_its_printed_curl_commands_expect() {
    check_printed_commands(&start_demo());
}

#[test]
fn the_demo_on_one_cpu_serves_the_same() {
    check_printed_commands(&start_demo_on_one_cpu());
}

fn check_printed_commands(demo: &Demo) {
    assert_eq!(demo.commands.len(), 5, "{:?}", demo.commands);
    let (status, body) = run_curl(demo, &demo.commands[0]);
    assert_eq!(
        (status, body.contains("certgate demo echo")),
        (200, true),
        "open API: {body}"
    );
    let (status, body) = run_curl(demo, &demo.commands[1]);
    assert_eq!(
        (status, body.contains("\"path\":\"/hello\"")),
        (200, true),
        "mTLS API with a certificate: {body}"
    );
    let (status, body) = run_curl(demo, &demo.commands[2]);
    assert_eq!(status, 403, "mTLS API without a certificate: {body}");
    let (status, body) = run_curl(demo, &demo.commands[3]);
    assert_eq!(status, 200, "certificate list: {body}");
    assert!(body.contains("\"certs\""), "{body}");
    let (status, body) = run_curl(demo, &demo.commands[4]);
    assert_eq!(status, 200, "one certificate: {body}");
    assert!(body.contains("\"fingerprint\""), "{body}");
}

#[test]
fn openssl_s_client_sees_the_demo_certificate_and_tls_1_3() {
    let demo = start_demo();
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", demo.port),
            "-servername",
            "localhost",
            "-brief",
        ])
        .arg("-CAfile")
        .arg(demo._dir.path().join("demo-certs/ca.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shown.contains("TLSv1.3"), "{shown}");
    assert!(shown.contains("Verification: OK"), "{shown}");
    assert!(shown.contains("localhost"), "{shown}");
}

#[test]
fn sigterm_stops_the_gateway_cleanly() {
    let mut demo = start_demo();
    let pid = demo.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = demo.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
