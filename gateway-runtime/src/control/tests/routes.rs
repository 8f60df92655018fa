//! The routes beyond Tyk's contract test: listing options, usage, metrics, health, matching.

use http::{Request, StatusCode};
use serde_json::{Value, json};
use time::Duration;
use tls_core::CertId;

use super::{Fixture, fingerprint};
use crate::control::query::encode_component;

/// Adds the expiry vectors; `expired-30min` is added while it was still valid.
async fn expiry_fixture() -> (Fixture, Vec<String>) {
    let f = Fixture::new();
    let now = super::generated_at();
    f.clock.set(now - Duration::hours(2));
    let expired = f.add("e", "expired-30min.bundle.pem").await;
    f.clock.set(now);
    let ids = vec![
        f.add("e", "valid-31d.bundle.pem").await,
        f.add("e", "leaf-p384-pkcs8.bundle.pem").await,
        f.add("e", "expiring-30d.bundle.pem").await,
        f.add("e", "pubkey-p256.pem").await,
        f.add("e", "expiring-10d.bundle.pem").await,
        expired,
    ];
    (f, ids)
}

fn ids_of(answer: &Value) -> Vec<String> {
    answer["certs"]
        .as_array()
        .map(|certs| {
            certs
                .iter()
                .map(|c| c.as_str().or(c["id"].as_str()).unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn detailed_listing_sorts_by_expiry_and_filters_to_what_expires_soon() {
    let (f, ids) = expiry_fixture().await;
    let [valid31, leaf2036, exp30, pubkey, exp10, expired] = <[String; 6]>::try_from(ids).unwrap();

    let sorted = f.get("/tyk/certs?mode=detailed&sort=not_after").await;
    assert_eq!(
        ids_of(&sorted.json),
        [&expired, &exp10, &exp30, &valid31, &leaf2036, &pubkey].map(String::as_str),
        "soonest first, the public key (no expiry) last"
    );

    // Within 30 days of generated_at: expired included, the 30-day one on the boundary too.
    let soon = f
        .get("/tyk/certs?mode=detailed&sort=not_after&expiring_within_days=30")
        .await;
    assert_eq!(
        ids_of(&soon.json),
        [&expired, &exp10, &exp30].map(String::as_str)
    );
    let today = f
        .get("/tyk/certs?mode=detailed&expiring_within_days=0")
        .await;
    assert_eq!(ids_of(&today.json), [expired.as_str()]);

    // Without mode=detailed the same options give IDs.
    let as_ids = f
        .get("/tyk/certs?org_id=e&sort=not_after&expiring_within_days=10")
        .await;
    assert_eq!(as_ids.json, json!({ "certs": [expired, exp10] }));
    let none = f
        .get("/tyk/certs?org_id=other&expiring_within_days=10")
        .await;
    assert_eq!(none.text, "{\"certs\":null}\n");
}

#[tokio::test]
async fn limit_and_cursor_page_through_a_listing() {
    let (f, ids) = expiry_fixture().await;
    for detailed in [false, true] {
        let mode = if detailed { "&mode=detailed" } else { "" };
        let mut seen = Vec::new();
        let mut uri = format!("/tyk/certs?limit=4{mode}");
        let mut pages = 0;
        loop {
            let page = f.get(&uri).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text);
            pages += 1;
            let got = ids_of(&page.json);
            assert!(got.len() <= 4);
            seen.extend(got);
            match page.json["next"].as_str() {
                Some(next) => {
                    uri = format!("/tyk/certs?limit=4{mode}&cursor={}", encode_component(next))
                }
                None => break,
            }
        }
        assert_eq!(pages, 2);
        let mut expected = ids.clone();
        expected.rotate_right(1); // `expired` was added first.
        assert_eq!(seen, expected);
    }
    // Without limit, everything at once and no `next`.
    let all = f.get("/tyk/certs").await;
    assert_eq!(ids_of(&all.json).len(), 6);
    assert!(all.json.get("next").is_none());
}

#[tokio::test]
async fn get_many_keeps_request_order_with_null_for_invalid_and_missing_ids() {
    let f = Fixture::new();
    let a = f.add("x", "root-ca.pem").await;
    let b = f.add("x", "client-good.crt.pem").await;
    let missing = format!("x{}", "1".repeat(64));
    let answer = f
        .get(&format!("/tyk/certs/{b},,{missing},not-an-id,{a}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let items = answer.json.as_array().unwrap();
    let got: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
    assert_eq!(
        got,
        [json!(b), Value::Null, Value::Null, Value::Null, json!(a)]
    );
    // A percent-encoded comma is a comma, as Tyk's router decodes the path first.
    let encoded = f.get(&format!("/tyk/certs/{a}%2C{b}")).await;
    assert_eq!(encoded.json.as_array().unwrap().len(), 2);
    // A trailing slash is ignored.
    let slash = f.get(&format!("/tyk/certs/{a}/")).await;
    assert_eq!(slash.json["id"], a.as_str());
    // Only lowercase hex is an ID.
    let upper = f.get(&format!("/tyk/certs/{}", a.to_uppercase())).await;
    assert_eq!(upper.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_says_removed_even_for_what_is_not_there_and_the_id_names_the_org() {
    let f = Fixture::new();
    let id = f.add("orgD", "root-ca.pem").await;
    for uri in [
        format!("/tyk/certs/{id}?org_id=someone-else"),
        format!("/tyk/certs/{id}"),
        "/tyk/certs/not-an-id".to_owned(),
        format!("/tyk/certs/{}", fingerprint("root_ca_only")),
    ] {
        let answer = f.send("DELETE", &uri, "").await;
        assert_eq!(
            answer.text, "{\"status\":\"ok\",\"message\":\"removed\"}\n",
            "{uri}"
        );
    }
    assert_eq!(f.get("/tyk/certs").await.text, "{\"certs\":null}\n");
}

#[tokio::test]
async fn apis_route_lists_the_uses_from_the_usage_index() {
    let f = Fixture::new();
    let id = f.add("", "root-ca.pem").await;
    let cert_id: CertId = id.parse().unwrap();
    let none = f.get(&format!("/tyk/certs/{id}/apis")).await;
    assert_eq!(none.text, format!("{{\"id\":\"{id}\",\"apis\":[]}}\n"));
    f.store
        .usage()
        .register(cert_id.clone(), "api2", cert_store::CertRole::Client);
    f.store
        .usage()
        .register(cert_id.clone(), "__server__", cert_store::CertRole::Server);
    let uses = f.get(&format!("/tyk/certs/{id}/apis/")).await;
    assert_eq!(
        uses.json,
        json!({"id": id, "apis": [{"api_id": "__server__", "role": "server"}, {"api_id": "api2", "role": "client"}]})
    );
    f.get("/tyk/certs/nope/apis").await.assert_error(
        StatusCode::NOT_FOUND,
        "Certificate with given SHA256 fingerprint not found",
    );
}

#[tokio::test]
async fn metrics_render_the_gateway_the_extra_and_the_control_api_counters() {
    let f = Fixture::new();
    f.get("/tyk/certs").await;
    f.send("DELETE", "/tyk/certs", "").await;
    let metrics = f.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(
        metrics.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    for needle in [
        "certgate_tls_handshakes_total 0",
        "certgate_extra_total 7",
        "# TYPE certgate_control_api_requests_total counter",
        "certgate_control_api_requests_total{route=\"/tyk/certs\",code=\"200\"} 1",
        "certgate_control_api_requests_total{route=\"/tyk/certs\",code=\"405\"} 1",
    ] {
        assert!(metrics.text.contains(needle), "{needle}:\n{}", metrics.text);
    }
}

#[tokio::test]
async fn hello_reports_the_version_and_storage_health_without_a_secret() {
    let f = Fixture::new();
    let request = Request::builder()
        .uri("/hello")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let hello = f.raw(request).await;
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(
        hello.text,
        format!(
            "{{\"status\":\"pass\",\"version\":\"{}\",\"description\":\"certgate gateway\",\
             \"details\":{{\"storage\":{{\"status\":\"pass\",\"componentType\":\"datastore\",\
             \"time\":\"2026-11-29T04:57:32Z\"}}}}}}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn matches_control_paths_on_the_configured_host_only() {
    let any = Fixture::new();
    let on_host = Fixture::with(|c| c.control_api_hostname = "Control.Example".into());
    let req = |uri: &str, host: Option<&str>| {
        let mut builder = Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(()).unwrap()
    };
    for (uri, host, anywhere, only_host) in [
        ("/tyk/certs", None, true, false),
        ("/tyk/certs/", Some("control.example"), true, true),
        ("/tyk/anything", Some("control.example:8443"), true, true),
        ("/hello", Some("other.example"), true, false),
        ("/hello/", Some("CONTROL.EXAMPLE"), true, true),
        ("/metrics", Some("control.example"), true, true),
        ("https://control.example:9000/tyk/certs", None, true, true),
        ("/tyk", Some("control.example"), false, false),
        ("/api/tyk/certs", Some("control.example"), false, false),
        ("/hellothere", Some("control.example"), false, false),
        ("/", Some("control.example"), false, false),
    ] {
        assert_eq!(any.api.matches(&req(uri, host)), anywhere, "{uri} {host:?}");
        assert_eq!(
            on_host.api.matches(&req(uri, host)),
            only_host,
            "{uri} {host:?} on control.example"
        );
    }
    let v6 = Fixture::with(|c| c.control_api_hostname = "::1".into());
    assert!(v6.api.matches(&req("/tyk/certs", Some("[::1]:8080"))));
    assert!(!v6.api.matches(&req("/tyk/certs", Some("[::2]:8080"))));
}
