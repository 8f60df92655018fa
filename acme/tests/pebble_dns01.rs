//! `dns-01` validated for real by Pebble: a [`Dns01Solver`] publishes the TXT record in the DNS
//! server Pebble asks; the manager, used from code without a gateway, stores the certificate.

#![cfg(feature = "testkit")]

use std::sync::{Arc, Mutex};

use acme::testkit::{Pebble, free_port};
use acme::{AcmeError, AcmeManager, AcmeSettings, ChallengeKind, Dns01Solver, Outcome};
use cert_store::{CertStore, MemoryStorage};
use tls_core::EncodingSecret;

/// Writes records into Pebble's DNS server, and remembers what it was asked.
struct PebbleDns {
    pebble: Arc<Pebble>,
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Dns01Solver for PebbleDns {
    async fn present(&self, record_name: &str, value: &str) -> Result<(), AcmeError> {
        self.pebble.set_txt(record_name, value);
        self.calls
            .lock()
            .unwrap()
            .push(format!("present {record_name}"));
        Ok(())
    }

    async fn clean_up(&self, record_name: &str, _value: &str) -> Result<(), AcmeError> {
        self.pebble.clear_txt(record_name);
        self.calls
            .lock()
            .unwrap()
            .push(format!("clean_up {record_name}"));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_01_is_validated_by_pebble_through_a_plugged_in_provider() {
    let Some(pebble) = Pebble::start(free_port(), free_port()) else {
        return;
    };
    let pebble = Arc::new(pebble);
    let name = "dns.certgate.test";
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("dns test"))
        .build();
    let settings = AcmeSettings::new(&pebble.directory_url, &[name])
        .unwrap()
        .with_ca_root(pebble.https_root.clone())
        .with_challenges(&[ChallengeKind::Dns01]);
    let solver = Arc::new(PebbleDns {
        pebble: Arc::clone(&pebble),
        calls: Mutex::default(),
    });
    let manager = AcmeManager::builder(settings, store.clone())
        .encoding_secret(EncodingSecret::new("dns test"))
        .dns01(solver.clone())
        .build();
    let Outcome::Issued { id, previous } = manager.check(name).await else {
        panic!("not issued: {}", pebble.log());
    };
    assert_eq!(previous, None);
    let cert = store.get(&id).await.unwrap();
    assert_eq!(cert.metadata().dns_names, [name]);
    assert!(
        store.certified_key(&id).await.is_ok(),
        "stored with its key"
    );
    assert_eq!(
        *solver.calls.lock().unwrap(),
        [
            format!("present _acme-challenge.{name}"),
            format!("clean_up _acme-challenge.{name}")
        ]
    );
    assert_eq!(manager.check(name).await, Outcome::NotDue);
}

#[tokio::test]
async fn without_a_provider_dns_01_alone_is_refused_as_unusable() {
    let Some(pebble) = Pebble::start(free_port(), free_port()) else {
        return;
    };
    let store = CertStore::builder(Arc::new(MemoryStorage::new())).build();
    let settings = AcmeSettings::new(&pebble.directory_url, &["nodns.certgate.test"])
        .unwrap()
        .with_ca_root(pebble.https_root.clone())
        .with_challenges(&[ChallengeKind::Dns01]);
    let manager = AcmeManager::builder(settings, store).build();
    let Outcome::Failed { error, .. } = manager.check("nodns.certgate.test").await else {
        panic!("a name with no usable challenge was issued");
    };
    assert!(
        error.contains("none of the configured challenge types"),
        "{error}"
    );
}
