//! The Tyk defects the control API fixes, one test each.

use std::sync::Arc;

use cert_store::{CertStore, MemoryStorage};
use http::StatusCode;
use serde_json::json;
use tls_core::{CertId, EncodingSecret, OrgId};

use super::{Fixture, fingerprint, vector};

const NOT_FOUND: &str = "Certificate with given SHA256 fingerprint not found";

/// Tyk #4776: without `org_id`, Tyk lists everything once, then nothing.
#[tokio::test]
async fn listing_without_org_id_lists_every_org_every_time() {
    let f = Fixture::new();
    let a = f.add("orgA", "root-ca.pem").await;
    let b = f.add("", "client-good.crt.pem").await;
    let c = f.add("orgB", "leaf-p256-traditional.bundle.pem").await;
    for round in 0..3 {
        let list = f.get("/tyk/certs").await;
        let mut ids: Vec<String> = serde_json::from_value(list.json["certs"].clone())
            .unwrap_or_else(|e| panic!("round {round}: {e}: {}", list.text));
        ids.sort();
        let mut expected = vec![a.clone(), b.clone(), c.clone()];
        expected.sort();
        assert_eq!(ids, expected, "round {round}");
    }
    // And a certificate added without an org stays listed after others come and go.
    f.send("DELETE", &format!("/tyk/certs/{a}"), "").await;
    let list = f.get("/tyk/certs").await;
    assert!(list.json["certs"].as_array().unwrap().contains(&json!(b)));
}

/// Tyk panics (drops the connection) on a record that does not load in detailed mode.
#[tokio::test]
async fn detailed_listing_reports_records_it_cannot_read_instead_of_failing() {
    let f = Fixture::new();
    let good = f.add("org", "client-good.crt.pem").await;

    // A record sealed with another encoding secret: metadata readable, key not.
    let other = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("another secret"))
        .clock(f.clock.clone())
        .build();
    let org = OrgId::new("org").unwrap();
    let sealed = other
        .add(&vector("leaf-p256-traditional.bundle.pem"), &org)
        .await
        .unwrap();
    let text = other.storage().get(&sealed).await.unwrap().unwrap();
    f.store.storage().insert(&sealed, &text).await.unwrap();

    // A record that does not parse at all.
    let broken: CertId = format!("org{}", "ab".repeat(32)).parse().unwrap();
    f.store
        .storage()
        .insert(&broken, "this is not a stored record")
        .await
        .unwrap();

    let listing = f.get("/tyk/certs?org_id=org&mode=detailed").await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.text);
    let certs = listing.json["certs"].as_array().unwrap();
    assert_eq!(certs.len(), 3);
    assert_eq!(certs[0]["id"], good.as_str());
    assert!(certs[0].get("error").is_none());

    assert_eq!(certs[1]["id"], sealed.to_string());
    assert_eq!(certs[1]["subject_cn"], "p256-traditional.vectors.test");
    assert_eq!(certs[1]["has_private"], true);
    let error = certs[1]["error"]
        .as_str()
        .expect("an error for the sealed record");
    assert!(error.contains("private key"), "{error}");

    assert_eq!(certs[2]["id"], broken.to_string());
    assert_eq!(certs[2]["subject_cn"], "");
    assert_eq!(certs[2]["not_after"], "0001-01-01T00:00:00Z");
    let error = certs[2]["error"]
        .as_str()
        .expect("an error for the broken record");
    assert!(error.contains("cannot be read"), "{error}");

    // The listing by ID and by one ID still work; the unparseable one is not found.
    assert_eq!(
        f.get("/tyk/certs?org_id=org").await.json["certs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        f.get(&format!("/tyk/certs/{sealed}")).await.status,
        StatusCode::OK
    );
    f.get(&format!("/tyk/certs/{broken}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND);
}

/// Tyk tries an `{id}` it does not find as a file path relative to its working directory.
#[tokio::test]
async fn ids_are_never_read_as_file_paths() {
    let f = Fixture::new();
    // An absolute path to a real PEM file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cert.pem");
    std::fs::write(&file, vector("root-ca.pem")).unwrap();
    let encoded = file.display().to_string().replace('/', "%2F");
    f.get(&format!("/tyk/certs/{encoded}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND);
    // A path relative to the test's working directory (the crate folder) that exists.
    let relative = "..%2F..%2Fshared%2Fvectors%2Froot-ca.pem";
    f.get(&format!("/tyk/certs/{relative}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND);
    // A plain file name, and in a comma list: null, never the file.
    let many = f.get(&format!("/tyk/certs/{encoded},Cargo.toml")).await;
    assert_eq!(many.json, json!([null, null]));
    // Nor through the usage route.
    f.get(&format!("/tyk/certs/{encoded}/apis"))
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND);
}

/// Tyk reports the hash of the last certificate of a bundle; we report the leaf's.
#[tokio::test]
async fn fingerprint_is_the_leafs_hash_for_a_bundle_with_a_chain() {
    let f = Fixture::new();
    let bundle = vector("leaf-p256-traditional.bundle.pem");
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() > 1,
        "the bundle carries its chain"
    );
    let id = f.add("", "leaf-p256-traditional.bundle.pem").await;
    let meta = f.get(&format!("/tyk/certs/{id}")).await;
    assert_eq!(
        meta.json["fingerprint"],
        fingerprint("leaf-p256-traditional")
    );
    assert_eq!(
        meta.json["subject"]["CommonName"],
        "p256-traditional.vectors.test"
    );
}
