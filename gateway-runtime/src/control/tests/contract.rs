//! Tyk's `TestCertificateHandlerTLS`, replayed: the control API contract byte for byte where
//! Tyk's tests assert bytes.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Fixture, fingerprint, vector};

#[tokio::test]
async fn tyk_certificate_handler_contract() {
    let f = Fixture::new();

    // An empty list is exactly {"certs":null}.
    let empty = f.get("/tyk/certs").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.text, "{\"certs\":null}\n");
    assert_eq!(empty.content_type, "application/json");

    // POST ?org_id=1 returns "id":"1<sha>" for a public cert, a cert with its key, and a CA.
    let cases = [
        ("client-good.crt.pem", fingerprint("client-good")),
        (
            "leaf-p256-traditional.bundle.pem",
            fingerprint("leaf-p256-traditional"),
        ),
        ("root-ca.pem", fingerprint("root_ca_only")),
    ];
    let mut ids = Vec::new();
    for (file, sha) in &cases {
        let answer = f.send("POST", "/tyk/certs?org_id=1", &vector(file)).await;
        assert_eq!(answer.status, StatusCode::OK, "{file}: {}", answer.text);
        assert_eq!(
            answer.text,
            format!("{{\"id\":\"1{sha}\",\"status\":\"ok\",\"message\":\"Certificate added\"}}\n")
        );
        ids.push(format!("1{sha}"));
    }
    let [public_id, private_id, ca_id] = [&ids[0], &ids[1], &ids[2]];

    // A second upload of the same certificate answers as the first (Tyk: 403), so that a
    // client may retry an add whose outcome it does not know.
    let again = f
        .send(
            "POST",
            "/tyk/certs?org_id=1",
            &vector("client-good.crt.pem"),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(
        again.text,
        format!("{{\"id\":\"{public_id}\",\"status\":\"ok\",\"message\":\"Certificate added\"}}\n")
    );
    // The same certificate with its key is another record under that ID: Tyk's 403.
    let with_key = format!(
        "{}{}",
        vector("client-good.crt.pem"),
        vector("client-good.key.pem")
    );
    let again = f.send("POST", "/tyk/certs?org_id=1", &with_key).await;
    again.assert_error(
        StatusCode::FORBIDDEN,
        &format!("Certificate with {public_id} id already exists"),
    );

    // The list contains all three, with and without the org.
    for uri in ["/tyk/certs?org_id=1", "/tyk/certs", "/tyk/certs/"] {
        let list = f.get(uri).await;
        assert_eq!(list.status, StatusCode::OK);
        assert_eq!(list.json, json!({ "certs": ids }), "{uri}");
    }
    assert_eq!(
        f.get("/tyk/certs?org_id=2").await.text,
        "{\"certs\":null}\n"
    );

    // mode=detailed: has_private and is_ca right, times in seconds, UTC.
    let detailed = f.get("/tyk/certs?org_id=1&mode=detailed").await;
    assert_eq!(detailed.status, StatusCode::OK);
    let certs = detailed.json["certs"].as_array().expect("certs");
    assert_eq!(certs.len(), 3);
    let by_id = |id: &str| -> &Value {
        certs
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(
        by_id(public_id),
        &json!({
            "id": public_id, "issuer_cn": "Vector Client CA", "subject_cn": "client-good.vectors.test",
            "dns_names": null, "has_private": false, "not_before": "2026-11-28T04:57:32Z",
            "not_after": "2036-11-26T04:57:32Z", "is_ca": false
        })
    );
    assert_eq!(by_id(private_id)["has_private"], true);
    assert_eq!(
        by_id(private_id)["dns_names"],
        json!([
            "p256-traditional.vectors.test",
            "*.p256-traditional.vectors.test"
        ])
    );
    assert_eq!(by_id(ca_id)["is_ca"], true);
    assert_eq!(by_id(ca_id)["has_private"], false);

    // GET one: the body starts with id, fingerprint (the leaf's), has_private.
    let one = f.get(&format!("/tyk/certs/{private_id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    let sha = &cases[1].1;
    assert!(
        one.text.starts_with(&format!(
            "{{\"id\":\"{private_id}\",\"fingerprint\":\"{sha}\",\"has_private\":true,"
        )),
        "{}",
        one.text
    );

    // The CA: the whole CertificateMeta, pkix.Name exactly as Go writes it.
    let ca = f.get(&format!("/tyk/certs/{ca_id}")).await;
    let vectors_inc = "{\"Country\":null,\"Organization\":[\"Vectors Inc\"],\"OrganizationalUnit\":null,\
        \"Locality\":null,\"Province\":null,\"StreetAddress\":null,\"PostalCode\":null,\"SerialNumber\":\"\",\
        \"CommonName\":\"Vector Root CA\",\"Names\":[{\"Type\":[2,5,4,10],\"Value\":\"Vectors Inc\"},\
        {\"Type\":[2,5,4,3],\"Value\":\"Vector Root CA\"}],\"ExtraNames\":null}";
    assert_eq!(
        ca.text,
        format!(
            "{{\"id\":\"{ca_id}\",\"fingerprint\":\"{}\",\"has_private\":false,\"issuer\":{vectors_inc},\
             \"subject\":{vectors_inc},\"not_before\":\"2026-11-28T04:57:32Z\",\
             \"not_after\":\"2036-11-26T04:57:32Z\",\"is_ca\":true}}\n",
            cases[2].1
        )
    );

    // A comma list: an array in request order, null for a missing one; never 404.
    let missing = format!("1{}", "0".repeat(64));
    let many = f
        .get(&format!("/tyk/certs/{ca_id},{missing},{public_id}"))
        .await;
    assert_eq!(many.status, StatusCode::OK);
    let items = many.json.as_array().expect("an array");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], ca_id.as_str());
    assert_eq!(items[1], Value::Null);
    assert_eq!(items[2]["id"], public_id.as_str());
    assert_eq!(items[2]["dns_names"], Value::Null, "left out when empty");
    assert!(items[2].get("dns_names").is_none());

    // DELETE answers 200 "removed"; the list is null again afterwards.
    for id in &ids {
        let answer = f
            .send("DELETE", &format!("/tyk/certs/{id}?org_id=1"), "")
            .await;
        assert_eq!(answer.text, "{\"status\":\"ok\",\"message\":\"removed\"}\n");
    }
    assert_eq!(f.get("/tyk/certs").await.text, "{\"certs\":null}\n");
    assert_eq!(
        f.get("/tyk/certs?mode=detailed").await.text,
        "{\"certs\":[]}\n"
    );
    f.get(&format!("/tyk/certs/{private_id}"))
        .await
        .assert_error(
            StatusCode::NOT_FOUND,
            "Certificate with given SHA256 fingerprint not found",
        );
}

#[tokio::test]
async fn public_keys_are_listed_and_described_as_tyk_does() {
    let f = Fixture::new();
    let sha = fingerprint("public_key_only");
    let id = f.add("org1", "pubkey-p256.pem").await;
    assert_eq!(id, format!("org1{sha}"));
    let meta = f.get(&format!("/tyk/certs/{id}")).await;
    let empty_name = json!({"Country": null, "Organization": null, "OrganizationalUnit": null,
        "Locality": null, "Province": null, "StreetAddress": null, "PostalCode": null,
        "SerialNumber": "", "CommonName": "", "Names": null, "ExtraNames": null});
    let mut subject = empty_name.clone();
    subject["CommonName"] = json!(format!("Public Key: {sha}"));
    assert_eq!(
        meta.json,
        json!({"id": id, "fingerprint": sha, "has_private": false, "issuer": empty_name,
            "subject": subject, "not_before": "0001-01-01T00:00:00Z",
            "not_after": "0001-01-01T00:00:00Z", "is_ca": false})
    );
    let detailed = f.get("/tyk/certs?mode=detailed").await;
    assert_eq!(
        detailed.json["certs"][0]["subject_cn"],
        format!("Public Key: {sha}")
    );
    assert_eq!(
        detailed.json["certs"][0]["not_after"],
        "0001-01-01T00:00:00Z"
    );
}

#[tokio::test]
async fn add_at_a_path_ignores_the_path_id_and_add_without_org_gives_the_bare_fingerprint() {
    let f = Fixture::new();
    let answer = f
        .send(
            "POST",
            "/tyk/certs/whatever-is-here",
            &vector("root-ca.pem"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["id"], fingerprint("root_ca_only"));
    // An empty org_id is no org, as in Go.
    let answer = f
        .send("POST", "/tyk/certs?org_id=", &vector("client-good.crt.pem"))
        .await;
    assert_eq!(answer.json["id"], fingerprint("client-good"));
}

#[tokio::test]
async fn every_refused_upload_is_403_with_the_reason_and_stores_nothing() {
    let f = Fixture::new();
    for file in [
        "bad-empty.pem",
        "bad-garbage.pem",
        "bad-truncated.pem",
        "bad-key-mismatch.pem",
        "bad-two-keys.pem",
        "bad-key-only.pem",
        "bad-cert-and-pubkey.pem",
        "bad-asn1.pem",
        "expired.bundle.pem",
        "expired-30min.bundle.pem",
    ] {
        let answer = f.send("POST", "/tyk/certs?org_id=o", &vector(file)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{file}");
        assert_eq!(answer.json["status"], "error");
        let message = answer.json["message"].as_str().expect("message");
        assert!(!message.is_empty(), "{file}");
    }
    // Bytes that are not text are refused like any other non-PEM.
    let answer = f.send("POST", "/tyk/certs", "\u{0}\u{1}garbage").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(f.get("/tyk/certs").await.text, "{\"certs\":null}\n");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_with_the_time_it_expired() {
    let f = Fixture::new();
    let answer = f
        .send("POST", "/tyk/certs", &vector("expired.bundle.pem"))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.text.contains("expired"),
        "the reason says it expired: {}",
        answer.text
    );
}
