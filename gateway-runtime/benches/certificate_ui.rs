//! The certificate page over 100,000 certificates in a memory store: server time and page
//! weight of the list page (one page of 50 rows, the store's order through the API's cursors),
//! a search over the whole store sorted by expiry, and the overview.
//!
//! Each iteration is one HTTP request to an in-process gateway over loopback, with the session
//! cookie; the figure is the request's wall time as the client sees it (server time plus a
//! loopback round trip). The page weights are printed once, before compression.
//!
//! Run: `cargo bench -p certgate-gateway-runtime --bench certificate_ui -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cert_store::{CertStore, ManualClock, MemoryStorage};
use criterion::{Criterion, criterion_group, criterion_main};
use gateway_runtime::{GatewayBuilder, GatewayConfig};
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use time::OffsetDateTime;
use time::macros::datetime;
use tls_core::{EncodingSecret, OrgId};

const CERTS: usize = 100_000;
const SECRET: &str = "bench-control-secret";

/// `CERTS` leaf certificates (no keys) signed by one CA, expiring over the next 400 days from
/// `start`, in four orgs.
fn certificates(start: OffsetDateTime) -> Vec<(OrgId, String)> {
    let ca_key = KeyPair::generate().expect("a key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, "Bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, &ca_key);
    let leaf_key = KeyPair::generate().expect("a key");
    let orgs: Vec<OrgId> = (0..4)
        .map(|n| OrgId::new(format!("org{n}")).expect("an org"))
        .collect();
    (0..CERTS)
        .map(|i| {
            let name = format!("svc-{i}.bench.example");
            let mut params =
                CertificateParams::new(vec![name.clone(), format!("alt-{i}.bench.example")])
                    .expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.not_before = start - time::Duration::days(1);
            params.not_after = start
                + time::Duration::days(i64::try_from(i % 400).expect("small"))
                + time::Duration::hours(1);
            let cert = params.signed_by(&leaf_key, &issuer).expect("a certificate");
            (orgs[i % orgs.len()].clone(), cert.pem())
        })
        .collect()
}

fn certificate_ui(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let start = datetime!(2026-01-01 00:00 UTC);
    let setup = Instant::now();
    let uploads = certificates(start);
    eprintln!("generated {CERTS} certificates in {:?}", setup.elapsed());
    let clock = Arc::new(ManualClock::new(start));
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new(SECRET))
        .clock(clock.clone())
        .build();
    let (gateway, cookie, client) = runtime.block_on(async {
        for chunk in uploads.chunks(1000) {
            for result in store.import(chunk).await {
                result.expect("imported");
            }
        }
        // Twenty days on: some have expired, some are within the 30-day warning window.
        clock.advance(time::Duration::days(20));
        let config = GatewayConfig::from_json(
            &format!(
                r#"{{"listen_address": "127.0.0.1", "listen_port": 0, "secret": "{SECRET}",
                    "certificate_ui": {{"enabled": true}}}}"#
            ),
            std::path::Path::new("bench.json"),
            Vec::new(),
        )
        .expect("a configuration");
        let gateway = GatewayBuilder::new(config)
            .store(store.clone())
            .apis(Vec::new())
            .start()
            .await
            .expect("a gateway");
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let signin = Request::post(format!("http://{}/ui/signin", gateway.local_addr()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(format!("secret={SECRET}"))))
            .expect("a request");
        let response = client.request(signin).await.expect("signed in");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .expect("text")
            .split(';')
            .next()
            .expect("a cookie")
            .to_owned();
        (gateway, cookie, client)
    });
    let addr = gateway.local_addr();
    let fetch = |path: &str| {
        let request = Request::get(format!("http://{addr}{path}"))
            .header("cookie", &cookie)
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let client = client.clone();
        async move {
            let response = client.request(request).await.expect("an answer");
            assert_eq!(response.status(), 200);
            response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes()
        }
    };
    // Wait for the page's index to have read the whole store.
    runtime.block_on(async {
        let started = Instant::now();
        loop {
            let page = fetch("/ui/").await;
            if String::from_utf8_lossy(&page).contains(&format!("<span class=\"n\">{CERTS}</span>"))
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the index never filled"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "index ready {:?} after the gateway started",
            started.elapsed()
        );
    });
    let pages = [
        ("overview", "/ui/"),
        ("list, first page", "/ui/certs"),
        ("list, one org", "/ui/certs?org=org2"),
        (
            "search by SAN, sorted by expiry",
            "/ui/certs?q=alt-99&sort=expiry",
        ),
        ("sorted by expiry, whole store", "/ui/certs?sort=expiry"),
    ];
    for (name, path) in pages {
        let body = runtime.block_on(fetch(path));
        eprintln!("page weight: {name}: {} bytes ({path})", body.len());
    }
    let mut group = c.benchmark_group(format!("certificate page, {CERTS} certificates"));
    group.sample_size(20);
    for (name, path) in pages {
        group.bench_function(name, |b| {
            b.iter(|| black_box(runtime.block_on(fetch(path))))
        });
    }
    group.finish();
    runtime.block_on(gateway.shutdown());
}

criterion_group!(benches, certificate_ui);
criterion_main!(benches);
