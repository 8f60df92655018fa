//! The plain-HTTP `http-01` listener attacked from outside with curl (`--path-as-is`, so that
//! curl sends the path as written): traversal, encoded dots and slashes, very long tokens,
//! characters a token never has, other methods, no `Host`. Each gets a clean answer (404, 405,
//! 308 or 400) with an empty body, and only a path that can be a token is looked up in the
//! coordination storage (counted by a coordinator that wraps the in-memory one).

#![cfg(feature = "acme")]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use acme::testkit::{CountingCoordinator, free_port};
use acme::{AcmeSettings, ChallengeKind, MemoryCoordinator};
use gateway_runtime::{GatewayBuilder, GatewayConfig};

/// What curl got: status, headers (lowercase names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl --path-as-is` with `args` (method, headers) to `path` on the listener.
fn curl(port: u16, args: &[String], path: &str) -> Answer {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--path-as-is", "--max-time", "5"])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_01_listener_answers_attacks_cleanly_and_looks_up_only_tokens() {
    let (tls_port, http_port) = (free_port(), free_port());
    let mut config = GatewayConfig::default()
        .listen("127.0.0.1", tls_port)
        .with_tls();
    config.secret = "acme test secret".to_owned();
    let mut settings = AcmeSettings::new("https://127.0.0.1:9/dir", &["attacked.certgate.test"])
        .unwrap()
        .with_challenges(&[ChallengeKind::Http01]);
    settings.http_port = http_port;
    let coordinator = Arc::new(CountingCoordinator::new(Arc::new(
        MemoryCoordinator::default(),
    )));
    let gateway = GatewayBuilder::new(config)
        .acme(settings)
        .acme_coordinator(coordinator.clone())
        .start()
        .await
        .unwrap();
    // The manager's own first check looks nothing up on this listener's behalf.
    let lookups = || coordinator.http01_lookups();
    let port = http_port;
    let run = move |args: &[&str], path: String| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || curl(port, &args, &path))
    };
    let host = &["-H", "Host: attacked.certgate.test"][..];

    let prefix = "/.well-known/acme-challenge/";
    let long = "a".repeat(129);
    let refused_paths = [
        format!("{prefix}../../etc/passwd"),
        format!("{prefix}..%2f..%2fetc%2fpasswd"),
        format!("{prefix}%2e%2e/%2e%2e/x"),
        format!("{prefix}%2e%2e%2f%2e%2e%2fx"),
        format!("{prefix}tok.en"),
        format!("{prefix}tok~en"),
        format!("{prefix}tok%00en"),
        format!("{prefix}tok;en"),
        format!("{prefix}tok/en"),
        prefix.to_owned(),
        format!("{prefix}{long}"),
        format!("{prefix}{}", "A".repeat(20_000)),
    ];
    for path in refused_paths {
        let answer = run(host, path.clone()).await.unwrap();
        assert_eq!(answer.status, 404, "{path}");
        assert!(answer.body.is_empty(), "{path}: no body");
        assert_eq!(lookups(), 0, "{path} is not a token: nothing is looked up");
    }

    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let args = ["-X", method];
        let answer = run(&args, format!("{prefix}Valid-Token_1")).await.unwrap();
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{method}");
        assert!(answer.body.is_empty(), "{method}");
    }
    assert_eq!(lookups(), 0, "refused methods look nothing up");

    // A path that can be a token is looked up: no challenge is pending, so 404.
    let answer = run(host, format!("{prefix}{}", "B".repeat(128)))
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.len()), (404, 0));
    let answer = run(&["-I"], format!("{prefix}Valid-Token_1"))
        .await
        .unwrap();
    assert_eq!(answer.status, 404, "HEAD");
    assert_eq!(lookups(), 2, "each token is looked up once");

    // Everything else goes to HTTPS on the same host, whatever the path; without a usable
    // Host there is nowhere to send it.
    let answer = run(host, "/.well-known/../admin?x=1".to_owned())
        .await
        .unwrap();
    assert_eq!(answer.status, 308);
    assert_eq!(
        answer.header("location"),
        Some("https://attacked.certgate.test/.well-known/../admin?x=1")
    );
    for args in [
        &["-H", "Host:"][..],
        &["-H", "Host: evil.example/x"][..],
        &["-H", "Host: a b"][..],
    ] {
        let answer = run(args, "/admin".to_owned()).await.unwrap();
        assert_eq!(answer.status, 400, "{args:?}");
        assert!(answer.body.is_empty(), "{args:?}");
        assert_eq!(answer.header("location"), None, "{args:?}");
    }
    gateway.shutdown_within(Duration::from_secs(1)).await;
}
