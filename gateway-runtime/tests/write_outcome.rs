//! Writes whose outcome is unknown (issue 12, finding 5): with Redis paused (`SIGSTOP`), adds
//! time out with a 503 that says the outcome is unknown; Redis then applies them when it
//! resumes, and retrying the same uploads answers 200 with the same IDs, each stored once.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use cert_store::RedisConfig;
use support::{redis_command, redis_store, start, tls_config, tls_control};
use test_support::pki::TestCa;
use test_support::redis::RedisServer;

const SECRET: &str = "control-secret";

/// Status and body of a control API request over TLS on `api.test` (0 when nothing answered).
async fn control(
    addr: SocketAddr,
    pki: &TestCa,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    tls_control(addr, "api.test", pki, SECRET, (method, path, body))
        .await
        .unwrap_or_else(|e| (0, e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_answered_503_while_redis_is_paused_are_safe_to_retry() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pki = TestCa::root("outcome ca");
    let mut redis = RedisConfig::new(server.connection());
    redis.connection.response_timeout = Duration::from_millis(500);
    let store = redis_store(redis).await;
    let served = store
        .add(&pki.server(&["api.test"]).bundle(), &tls_core::OrgId::EMPTY)
        .await
        .unwrap();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![served.into()];
    let gateway = start(config, store, Vec::new()).await;
    let addr = gateway.local_addr();
    let uploads: Vec<String> = (0..5)
        .map(|n| pki.server(&[&format!("n{n}.test")]).bundle())
        .collect();

    // The attack: pause Redis, POST adds, resume it.
    let paused = server.pause();
    let mut answers = Vec::new();
    for upload in &uploads {
        answers.push(
            control(
                addr,
                &pki,
                "POST",
                "/tyk/certs?org_id=pause-org",
                upload.as_bytes(),
            )
            .await,
        );
    }
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        let message = serde_json::from_str::<serde_json::Value>(body).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("did not answer in time")
                && message.contains("the outcome is unknown")
                && message.contains("retrying the same upload is safe"),
            "{message}"
        );
        assert!(
            !message.contains("127.0.0.1") && !message.contains("os error"),
            "{message}"
        );
    }
    paused.resume();

    // Redis applies what it had received; the retries then answer 200 with the same IDs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let index = redis_command(
        server.port(),
        &[b"LRANGE", b"cert-pause-org-index", b"0", b"-1"],
    )
    .await;
    let applied_before_retry = index.matches("raw-pause-org").count();
    eprintln!(
        "adds applied after their 503: {applied_before_retry} of {}",
        uploads.len()
    );
    // The finding: Redis applies the timed-out adds once it resumes (9 of 9 in the attack), so
    // the retries below meet stored records and must still answer 200.
    assert!(
        applied_before_retry >= 1,
        "no add was applied after its 503, so the retries would not test idempotence"
    );
    let mut ids = Vec::new();
    for upload in &uploads {
        let (status, body) = control(
            addr,
            &pki,
            "POST",
            "/tyk/certs?org_id=pause-org",
            upload.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["message"], "Certificate added");
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    // Each retry of the same upload again: the same ID.
    for (upload, id) in uploads.iter().zip(&ids) {
        let (status, body) = control(
            addr,
            &pki,
            "POST",
            "/tyk/certs?org_id=pause-org",
            upload.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(id.as_str()), "{body}");
    }
    let index = redis_command(
        server.port(),
        &[b"LRANGE", b"cert-pause-org-index", b"0", b"-1"],
    )
    .await;
    for id in &ids {
        assert_eq!(
            index.matches(&format!("raw-{id}\r\n")).count(),
            1,
            "{id} is indexed exactly once: {index}"
        );
    }
    assert_eq!(
        index.matches("raw-pause-org").count(),
        uploads.len(),
        "{index}"
    );
    gateway.shutdown().await;
}
