//! A stored key that does not decrypt with this node's secret: 200 with the metadata and
//! `"key_decrypts": false`, one warning per ID (not per request), and a metric.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cert_store::{CertStore, ManualClock, MemoryStorage};
use http::StatusCode;
use tls_core::EncodingSecret;

use super::{Fixture, generated_at};

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn store(storage: &Arc<MemoryStorage>, secret: &str) -> (CertStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(generated_at()));
    let store = CertStore::builder(storage.clone())
        .encoding_secret(EncodingSecret::new(secret))
        .clock(clock.clone())
        .build();
    (store, clock)
}

fn metric(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("certgate_undecryptable_private_keys "))
        .expect("the metric is rendered")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_key_that_does_not_decrypt_keeps_the_metadata_and_says_so_once() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let storage = Arc::new(MemoryStorage::new());
    let (writer_store, clock) = store(&storage, "the secret of another node");
    let writer = Fixture::over(writer_store, clock, |_| {});
    let with_key = writer.add("o1", "leaf-p256-traditional.bundle.pem").await;
    let without_key = writer.add("o1", "root-ca.pem").await;
    let good = writer.get(&format!("/tyk/certs/{with_key}")).await;
    assert_eq!(good.json["key_decrypts"], true, "{}", good.text);

    let (reader_store, clock) = store(&storage, "this node's secret");
    let reader = Fixture::over(reader_store, clock, |_| {});
    assert_eq!(metric(&reader.get("/metrics").await.text), 0);
    for _ in 0..3 {
        let answer = reader.get(&format!("/tyk/certs/{with_key}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.json["id"], with_key.as_str());
        assert_eq!(answer.json["has_private"], true);
        assert_eq!(answer.json["key_decrypts"], false, "{}", answer.text);
        assert!(answer.json["subject"]["CommonName"].is_string());
    }
    // In a comma list too.
    let list = reader
        .get(&format!("/tyk/certs/{with_key},{without_key}"))
        .await;
    assert_eq!(list.json[0]["key_decrypts"], false);
    // No key, no field (Tyk's shape).
    let plain = reader.get(&format!("/tyk/certs/{without_key}")).await;
    assert!(plain.json.get("key_decrypts").is_none(), "{}", plain.text);
    // The detailed listing reports it too, without another warning.
    let detailed = reader.get("/tyk/certs?org_id=o1&mode=detailed").await;
    assert_eq!(detailed.status, StatusCode::OK);

    assert_eq!(metric(&reader.get("/metrics").await.text), 1);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("does not decrypt with this node's encoding secret"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains(&with_key), "{}", warnings[0]);
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
}
