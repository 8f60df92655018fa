//! Random requests never panic the handler and never get a 5xx other than the documented 503
//! (which a memory store never gives): methods, paths, query strings and bodies, garbage bytes,
//! huge org IDs, IDs with commas, slashes and percent-encoding.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;

use super::{Answer, Fixture, SECRET, fingerprint, vector};

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST", "DELETE"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT"])
            .prop_map(str::to_owned),
        1 => "[A-Z]{1,10}",
    ]
}

/// Text safe in a URI path or query (what a client would send after encoding).
fn uri_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{0,20}",
        "(%[0-9a-fA-F]{2}|[a-z0-9,/+=&;:@!$'()*-]){0,40}",
        "%[0-9a-fA-F]{2}",
        "[a-f0-9]{64}",
        "[a-z]{0,10}[a-f0-9]{64}",
        "([a-z0-9]{0,3}[a-f0-9]{64},){1,4}[a-z0-9]{0,3}",
        Just(format!("org1{}", fingerprint("root_ca_only"))),
        Just(fingerprint("public_key_only")),
        Just("%2Fetc%2Fpasswd".to_owned()),
        Just("..%2F..%2Fshared%2Fvectors%2Froot-ca.pem".to_owned()),
        Just("o".repeat(5000)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/tyk/certs".to_owned()),
        Just("/tyk/certs/".to_owned()),
        uri_text().prop_map(|id| format!("/tyk/certs/{id}")),
        uri_text().prop_map(|id| format!("/tyk/certs/{id}/apis")),
        (uri_text(), uri_text()).prop_map(|(a, b)| format!("/tyk/certs/{a}/{b}")),
        Just("/hello".to_owned()),
        Just("/metrics".to_owned()),
        uri_text().prop_map(|rest| format!("/tyk/{rest}")),
        "/[a-z/]{0,20}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("org_id".to_owned()),
        Just("mode".to_owned()),
        Just("sort".to_owned()),
        Just("expiring_within_days".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        "[a-z_]{1,8}",
    ];
    let value = prop_oneof![
        uri_text(),
        Just("detailed".to_owned()),
        Just("not_after".to_owned()),
        "-?[0-9]{1,25}",
        Just("o".repeat(300)),
        Just("%FF%FE".to_owned()),
    ];
    prop::collection::vec((name, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..512),
        Just(vector("root-ca.pem").into_bytes()),
        Just(vector("leaf-p256-traditional.bundle.pem").into_bytes()),
        Just(vector("pubkey-p256.pem").into_bytes()),
        Just(vector("bad-truncated.pem").into_bytes()),
        Just(vector("root-ca.pem").replace('\n', "\r\n").into_bytes()),
        Just(vec![b'-'; 70_000]),
    ]
}

#[test]
fn random_requests_never_panic_nor_fail_with_a_5xx() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixture = {
        let _enter = runtime.enter();
        Fixture::with(|c| c.max_request_body_bytes = 64 * 1024)
    };
    runtime.block_on(async {
        fixture.add("org1", "root-ca.pem").await;
        fixture.add("", "pubkey-p256.pem").await;
    });
    let config = ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(method in method(), path in path(), query in query(), body in body(), auth in prop::bool::weighted(0.9))| {
        let uri = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        let Ok(parsed) = uri.parse::<http::Uri>() else {
            // Not a URI a server would hand over.
            return Ok(());
        };
        let mut request = Request::builder().method(method.as_str()).uri(parsed);
        if auth {
            request = request.header("X-Tyk-Authorization", SECRET);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let answer = runtime.block_on(async { Answer::read(fixture.api.handle(request).await).await });
        prop_assert!(
            !answer.status.is_server_error() || answer.status == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri} gave {}: {}", answer.status, answer.text
        );
        if !answer.content_type.starts_with("text/plain") {
            prop_assert_eq!(&answer.content_type, "application/json");
            prop_assert!(!answer.json.is_null(), "{} {}: not JSON: {}", method, uri, answer.text);
            prop_assert!(answer.text.ends_with('\n'));
        }
        if let Ok(parsed_method) = http::Method::from_bytes(method.as_bytes()) {
            let uri_path = uri.split('?').next().unwrap_or("");
            super::openapi::check_documented(&parsed_method, uri_path, &answer);
        }
        if !auth && !path.starts_with("/hello") {
            prop_assert_eq!(answer.status, StatusCode::FORBIDDEN);
        }
    });
}
