//! Proxy tests with real upstreams and real handshakes (no mocks): plain and TLS upstreams
//! from `tests/common/upstream.rs`, requests through `Proxy::forward`.

#[path = "../../tests/common/upstream.rs"]
mod upstream;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use tls_core::{EncodingSecret, OrgId};

use self::upstream::{Leaf, TestCa, TestUpstream, UpstreamOptions, Usage, channel_body, seen};
use super::*;
use crate::mtls::ClientInfo;

/// Records every observation.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, CertRole, String)>>);

impl CertObserver for Recorder {
    fn observe(&self, cert: &LoadedCert, role: CertRole, api_id: &str) {
        self.0
            .lock()
            .unwrap()
            .push((cert.id().to_string(), role, api_id.to_owned()));
    }
}

struct Harness {
    proxy: Proxy,
    observer: Arc<Recorder>,
    metrics: Arc<GatewayMetrics>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn seen(&self) -> Value {
        seen(&self.headers)
    }

    fn error(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

fn memory_store() -> CertStore {
    CertStore::builder(Arc::new(cert_store::MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("proxy test secret"))
        .build()
}

fn harness_with(
    config: &GatewayConfig,
    store: &CertStore,
    roots: &[&TestCa],
    tweak: impl FnOnce(&mut ProxyOptions),
) -> Harness {
    let observer = Arc::new(Recorder::default());
    let metrics = Arc::new(GatewayMetrics::default());
    let mut options = ProxyOptions {
        extra_roots: roots.iter().map(|ca| ca.cert.clone()).collect(),
        system_roots: false,
        ..ProxyOptions::default()
    };
    tweak(&mut options);
    let proxy = Proxy::with_options(
        config,
        store.clone(),
        Arc::clone(&observer) as Arc<dyn CertObserver>,
        Arc::clone(&metrics),
        options,
    )
    .unwrap();
    Harness {
        proxy,
        observer,
        metrics,
    }
}

fn harness(config: &GatewayConfig, store: &CertStore, roots: &[&TestCa]) -> Harness {
    harness_with(config, store, roots, |_| {})
}

/// An API definition proxying `/api/` (stripped) to `target`.
fn api(target: &str) -> Value {
    json!({
        "api_id": "api1",
        "org_id": "org1",
        "proxy": { "listen_path": "/api/", "target_url": target, "strip_listen_path": true }
    })
}

fn route(def: &Value) -> ApiRoute {
    let def = ApiDefinition::from_json(&def.to_string(), Path::new("api.json")).unwrap();
    ApiRoute {
        target: def.proxy.target_url.parse().unwrap(),
        def,
    }
}

fn client_info(tls: bool) -> ClientInfo {
    ClientInfo::new("203.0.113.7:50000".parse().unwrap(), tls, None)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", "gateway.example")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

impl Harness {
    async fn send<B>(&self, route: &ApiRoute, request: Request<B>) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let response = self.proxy.forward(route, request, &client_info(true)).await;
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    fn failures(&self) -> u64 {
        self.metrics.upstream_failures.load(Ordering::Relaxed)
    }
}

/// A TLS upstream for `localhost` and 127.0.0.1 signed by `ca`.
async fn tls_upstream(ca: &TestCa) -> (TestUpstream, Leaf) {
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], Usage::Server);
    let upstream = TestUpstream::start(UpstreamOptions::tls(&leaf)).await;
    (upstream, leaf)
}

async fn add(store: &CertStore, pem: &str) -> String {
    store
        .add(pem, &OrgId::new("org1").unwrap())
        .await
        .unwrap()
        .to_string()
}

const PIN_ERROR: &str = "upstream certificate public key pinning error: public keys do not match";

#[tokio::test]
async fn plain_http_upstream_gets_the_stripped_path_query_and_forwarded_headers() {
    let upstream = TestUpstream::start(UpstreamOptions::default()).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    let mut def = api(&format!("{}/base", upstream.url("http", "127.0.0.1")));
    let stripped = route(&def);
    let request = Request::builder()
        .uri("/api/users/7?x=1&y=2")
        .header("host", "gateway.example")
        .header("x-forwarded-for", "198.51.100.1")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-custom", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = h.send(&stripped, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let saw = reply.seen();
    assert_eq!(saw["path"], "/base/users/7?x=1&y=2");
    let headers = &saw["headers"];
    assert_eq!(headers["x-forwarded-for"], "198.51.100.1, 203.0.113.7");
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-host"], "gateway.example");
    assert_eq!(
        headers["host"],
        format!("127.0.0.1:{}", upstream.addr.port())
    );
    assert_eq!(headers["x-custom"], "kept");
    for removed in [
        "x-private",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(headers.get(removed).is_none(), "{removed} was forwarded");
    }
    for removed in ["connection", "x-hop", "keep-alive", "proxy-test"] {
        assert!(reply.headers.get(removed).is_none(), "{removed} came back");
    }

    def["proxy"]["strip_listen_path"] = json!(false);
    let kept = route(&def);
    let reply = h
        .proxy
        .forward(&kept, get("/api/users"), &client_info(false))
        .await;
    let seen = seen(reply.headers());
    assert_eq!(seen["path"], "/base/api/users");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    assert_eq!(h.metrics.proxied_requests.load(Ordering::Relaxed), 2);
    assert_eq!(h.failures(), 0);
}

#[test]
fn paths_join_with_one_slash_and_queries_merge() {
    assert_eq!(strip_listen_path("/api/users", "/api/"), "/users");
    assert_eq!(strip_listen_path("/api/users", "/api"), "/users");
    assert_eq!(strip_listen_path("/api/", "/api/"), "/");
    assert_eq!(strip_listen_path("/other", "/api/"), "/other");
    assert_eq!(join_paths("/base", "/users"), "/base/users");
    assert_eq!(join_paths("/base/", "/users"), "/base/users");
    assert_eq!(join_paths("/", "/users"), "/users");
    assert_eq!(join_paths("", "/users"), "/users");
    assert_eq!(join_paths("/base", "/"), "/base/");
    assert_eq!(join_paths("", ""), "/");
    let queries = |target, request| {
        let mut path = String::from("/p");
        append_queries(&mut path, target, request);
        path
    };
    assert_eq!(queries(Some("a=1"), Some("b=2")), "/p?a=1&b=2");
    assert_eq!(queries(None, Some("b=2")), "/p?b=2");
    assert_eq!(queries(Some("a=1"), Some("")), "/p?a=1");
    assert_eq!(queries(None, None), "/p");
    assert_eq!(strip_listen_path("/apix", "/api"), "/x");
    assert_eq!(strip_listen_path("/api", "/api/"), "/api");
    assert_eq!(join_paths("base", "users"), "/base/users");
    assert_eq!(join_paths("/base", "users"), "/base/users");
    assert_eq!(join_paths("", "users"), "/users");
}

#[tokio::test]
async fn https_upstream_is_verified_with_an_extra_root_and_connections_are_reused() {
    let ca = TestCa::root("upstream ca");
    let (upstream, _) = tls_upstream(&ca).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let r = route(&api(&upstream.url("https", "localhost")));
    for _ in 0..3 {
        let reply = h.send(&r, get("/api/hello")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.seen()["path"], "/hello");
        assert_eq!(reply.seen()["version"], "HTTP/1.1");
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "the pooled connection is kept alive"
    );

    let by_ip = route(&api(&upstream.url("https", "127.0.0.1")));
    let reply = h.send(&by_ip, get("/api/ip")).await;
    assert_eq!(reply.status, StatusCode::OK, "IP SAN: {:?}", reply.body);
}

#[tokio::test]
async fn an_untrusted_or_misnamed_upstream_certificate_is_a_502() {
    let ca = TestCa::root("upstream ca");
    let leaf = ca.leaf(&["other.example"], Usage::Server);
    let upstream = TestUpstream::start(UpstreamOptions::tls(&leaf)).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let reply = h
        .send(
            &route(&api(&upstream.url("https", "localhost"))),
            get("/api/"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let error = reply.error();
    assert!(error.starts_with("upstream TLS error: "), "{error}");
    assert!(
        error.contains("not valid for the upstream's host name"),
        "{error}"
    );

    let other_ca = TestCa::root("someone else");
    let (trusted_elsewhere, _) = tls_upstream(&other_ca).await;
    let reply = h
        .send(
            &route(&api(&trusted_elsewhere.url("https", "localhost"))),
            get("/api/"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply
            .error()
            .contains("issued by an authority this gateway does not trust"),
        "{}",
        reply.error()
    );
    assert_eq!(h.failures(), 2);
}

#[tokio::test]
async fn refused_connections_and_silent_upstreams_are_502s() {
    let store = memory_store();
    let h = harness_with(&GatewayConfig::default(), &store, &[], |options| {
        options.response_timeout = Duration::from_millis(300);
    });
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let reply = h
        .send(&route(&api(&format!("http://{closed}"))), get("/api/"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.error().starts_with("upstream connection error: "),
        "{}",
        reply.error()
    );

    let silent = TestUpstream::start(UpstreamOptions {
        silent: true,
        ..UpstreamOptions::default()
    })
    .await;
    let reply = h
        .send(&route(&api(&silent.url("http", "127.0.0.1"))), get("/api/"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.error().starts_with("upstream timeout"),
        "{}",
        reply.error()
    );
    assert_eq!(h.failures(), 2);
}

/// An upstream that requires a client certificate from `client_ca`.
async fn mtls_upstream(server_ca: &TestCa, client_ca: &TestCa) -> TestUpstream {
    let leaf = server_ca.leaf(&["localhost"], Usage::Server);
    TestUpstream::start(UpstreamOptions {
        client_ca: Some(client_ca.cert.clone()),
        ..UpstreamOptions::tls(&leaf)
    })
    .await
}

#[tokio::test]
async fn the_apis_upstream_certificate_is_presented_and_observed() {
    let ca = TestCa::root("upstream ca");
    let client_ca = TestCa::root("client ca");
    let upstream = mtls_upstream(&ca, &client_ca).await;
    let client = client_ca.leaf(&["gateway client"], Usage::Client);
    let store = memory_store();
    let id = add(&store, &client.bundle()).await;
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);

    let mut def = api(&upstream.url("https", "localhost"));
    let without = route(&def);
    let reply = h.send(&without, get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.error().starts_with("upstream TLS error: "),
        "{}",
        reply.error()
    );
    assert!(h.observer.0.lock().unwrap().is_empty());

    def["api_id"] = json!("with-cert");
    def["upstream_certificates"] = json!({ "localhost": id });
    let with = route(&def);
    let reply = h.send(&with, get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
    assert_eq!(reply.seen()["client_cert"], client.fingerprint());
    assert_eq!(
        *h.observer.0.lock().unwrap(),
        [(id.clone(), CertRole::Upstream, "with-cert".to_owned())]
    );
}

#[tokio::test]
async fn global_upstream_certificates_apply_unless_disabled_and_need_a_key() {
    let ca = TestCa::root("upstream ca");
    let client_ca = TestCa::root("client ca");
    let upstream = mtls_upstream(&ca, &client_ca).await;
    let client = client_ca.leaf(&["gateway client"], Usage::Client);
    let store = memory_store();
    let mut config = GatewayConfig::default();
    // Inline PEM works as a reference too.
    config
        .security
        .certificates
        .upstream
        .insert("*".into(), Some(client.bundle().parse().unwrap()));
    let h = harness(&config, &store, &[&ca]);
    let mut def = api(&upstream.url("https", "localhost"));
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
    assert_eq!(reply.seen()["client_cert"], client.fingerprint());

    def["api_id"] = json!("disabled");
    def["upstream_certificates_disabled"] = json!(true);
    def["upstream_certificates"] = json!({ "*": client.bundle() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "disabled disables both maps"
    );

    let public_only = add(&store, &client.cert_pem).await;
    let def = json!({
        "api_id": "no-key",
        "proxy": { "listen_path": "/api/", "target_url": upstream.url("https", "localhost") },
        "upstream_certificates": { "*": public_only },
    });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "the API map overrides the global one, and a certificate without a key gives none"
    );
}

#[tokio::test]
async fn reload_resolves_certificates_again_and_shares_pools() {
    let ca = TestCa::root("upstream ca");
    let client_ca = TestCa::root("client ca");
    let upstream = mtls_upstream(&ca, &client_ca).await;
    let client = client_ca.leaf(&["gateway client"], Usage::Client);
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let upload = tls_core::Upload::parse(&client.bundle(), store.clock().now()).unwrap();
    let id = upload.id(&OrgId::new("org1").unwrap()).to_string();

    let mut first = api(&upstream.url("https", "localhost"));
    first["upstream_certificates"] = json!({ "*": id });
    let mut second = first.clone();
    second["api_id"] = json!("api2");
    second["proxy"]["listen_path"] = json!("/two/");
    let defs: Vec<ApiDefinition> = [&first, &second]
        .iter()
        .map(|v| ApiDefinition::from_json(&v.to_string(), Path::new("a.json")).unwrap())
        .collect();
    let table = ApiTable::new(defs);
    h.proxy.reload(&table).await;
    let reply = h.send(&route(&first), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "not stored yet");

    add(&store, &client.bundle()).await;
    h.proxy.reload(&table).await;
    assert_eq!(
        h.proxy.lock_clients().len(),
        1,
        "equal settings share a client"
    );
    let reply = h.send(&route(&first), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
    let reply = h.send(&route(&second), get("/two/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        2,
        "one refused handshake, then one shared keep-alive connection"
    );

    h.proxy.reload(&ApiTable::new(Vec::new())).await;
    assert!(
        h.proxy.lock_clients().is_empty(),
        "unused pools are dropped"
    );
}

#[tokio::test]
async fn pins_add_to_chain_verification() {
    let ca = TestCa::root("upstream ca");
    let (upstream, leaf) = tls_upstream(&ca).await;
    let stranger = TestCa::root("stranger").leaf(&["x"], Usage::Server);
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let target = upstream.url("https", "localhost");

    let mut def = api(&target);
    def["pinned_public_keys"] = json!({ "localhost": leaf.pin.to_string() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());

    def["api_id"] = json!("mismatch");
    def["pinned_public_keys"] = json!({ "*": stranger.pin.to_string() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error(), PIN_ERROR);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body,
        json!({ "error": PIN_ERROR }),
        "Tyk's proxy error shape"
    );

    // A matching pin does not rescue a chain that does not verify.
    let untrusting = harness(&GatewayConfig::default(), &store, &[]);
    def["api_id"] = json!("untrusted");
    def["pinned_public_keys"] = json!({ "localhost": leaf.pin.to_string() });
    let reply = untrusting.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply
            .error()
            .contains("issued by an authority this gateway does not trust"),
        "{}",
        reply.error()
    );

    // The root's pin (HPKP form) matches through the verified path.
    def["api_id"] = json!("root-pin");
    def["pinned_public_keys"] = json!({ "*.localhost": "x", "localhost": format!("{}, {}", stranger.pin, ca.pin.to_hpkp()) });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
}

#[tokio::test]
async fn pin_only_mode_needs_skip_verify_and_a_pinned_signer() {
    let ca = TestCa::root("untrusted ca");
    let intermediate = ca.intermediate("untrusted intermediate");
    let leaf = intermediate.leaf(&["localhost"], Usage::Server);
    let upstream = TestUpstream::start(UpstreamOptions::tls(&leaf)).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    let mut def = api(&upstream.url("https", "localhost"));
    def["proxy"]["transport"] = json!({ "ssl_insecure_skip_verify": true });

    def["pinned_public_keys"] = json!({ "localhost": leaf.pin.to_string() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "leaf pinned: {}",
        reply.error()
    );

    def["api_id"] = json!("intermediate");
    def["pinned_public_keys"] = json!({ "localhost": intermediate.pin.to_string() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "signer pinned: {}",
        reply.error()
    );

    def["api_id"] = json!("wrong");
    def["pinned_public_keys"] = json!({ "localhost": ca.pin.to_string() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "the root was not presented"
    );
    assert_eq!(reply.error(), PIN_ERROR);

    def["api_id"] = json!("no-pins");
    def["pinned_public_keys"] = json!({});
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "skip-verify alone accepts anything"
    );
}

#[tokio::test]
async fn a_pinned_certificate_sent_along_but_not_signing_the_leaf_does_not_count() {
    let ca = TestCa::root("upstream ca");
    let leaf = ca.leaf(&["localhost"], Usage::Server);
    let bystander = TestCa::root("bystander").intermediate("bystander intermediate");
    let mut chain = leaf.chain.clone();
    chain.push(bystander.cert.clone());
    let upstream = TestUpstream::start(UpstreamOptions {
        tls: Some((chain, leaf.key())),
        ..UpstreamOptions::default()
    })
    .await;
    let store = memory_store();
    let mut def = api(&upstream.url("https", "localhost"));
    def["pinned_public_keys"] = json!({ "localhost": bystander.pin.to_string() });

    let verifying = harness(&GatewayConfig::default(), &store, &[&ca]);
    let reply = verifying.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error(), PIN_ERROR);

    let mut config = GatewayConfig::default();
    config.proxy_ssl_insecure_skip_verify = true;
    let pin_only = harness(&config, &store, &[]);
    let reply = pin_only.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error(), PIN_ERROR);
}

#[tokio::test]
async fn pins_resolve_stored_public_keys_certificates_and_inline_pem() {
    let ca = TestCa::root("upstream ca");
    let (upstream, leaf) = tls_upstream(&ca).await;
    let store = memory_store();
    let public_key_id = add(&store, &leaf.public_key_pem).await;
    let cert_id = add(&store, &leaf.cert_pem).await;
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let target = upstream.url("https", "localhost");
    for (name, pins) in [
        ("public-key-id", public_key_id.clone()),
        ("certificate-id", cert_id.clone()),
        ("inline-pem", leaf.public_key_pem.clone()),
        ("hex", leaf.pin.to_string().to_uppercase()),
    ] {
        let mut def = api(&target);
        def["api_id"] = json!(name);
        def["pinned_public_keys"] = json!({ "localhost": pins });
        let reply = h.send(&route(&def), get("/api/")).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.error());
    }

    let mut def = api(&target);
    def["api_id"] = json!("nothing-resolves");
    def["pinned_public_keys"] = json!({ "localhost": "org1ffff, not-a-pin" });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "fails closed");
    assert_eq!(reply.error(), PIN_ERROR);
}

#[tokio::test]
async fn pin_entries_resolve_to_spki_pins() {
    let ca = TestCa::root("ca");
    let leaf = ca.leaf(&["localhost"], Usage::Server);
    let store = memory_store();
    let cert_id = add(&store, &leaf.cert_pem).await;
    // A stored public key's ID with an empty org is 64 hex characters: the record wins, and
    // equals the literal reading.
    let bare_id = store
        .add(&leaf.public_key_pem, &OrgId::EMPTY)
        .await
        .unwrap()
        .to_string();
    assert_eq!(bare_id, leaf.pin.to_string());
    let value = format!(
        "{cert_id}, {bare_id},{},sha256/garbage, , {}",
        ca.pin.to_hpkp(),
        "0".repeat(64)
    );
    let pins = resolve_pins(&store, &value, "api", "localhost").await;
    assert_eq!(
        pins,
        PinSet::new([leaf.pin, ca.pin, SpkiPin::from_bytes([0; 32])])
    );
}

#[tokio::test]
async fn global_pins_apply_unless_pinning_is_disabled() {
    let ca = TestCa::root("upstream ca");
    let (upstream, leaf) = tls_upstream(&ca).await;
    let stranger = TestCa::root("stranger");
    let store = memory_store();
    let mut config = GatewayConfig::default();
    config
        .security
        .pinned_public_keys
        .insert("localhost".into(), stranger.pin.to_string());
    let h = harness(&config, &store, &[&ca]);
    let mut def = api(&upstream.url("https", "localhost"));
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.error(), PIN_ERROR);

    def["api_id"] = json!("api-override");
    def["pinned_public_keys"] = json!({ "*": leaf.pin.to_string() });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the API map overrides: {}",
        reply.error()
    );

    def["api_id"] = json!("disabled");
    def["pinned_public_keys"] = json!({ "*": stranger.pin.to_string() });
    def["certificate_pinning_disabled"] = json!(true);
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
}

#[tokio::test]
async fn http2_is_used_when_the_upstream_agrees_to_it() {
    let ca = TestCa::root("upstream ca");
    let leaf = ca.leaf(&["localhost"], Usage::Server);
    let upstream = TestUpstream::start(UpstreamOptions {
        h2: true,
        ..UpstreamOptions::tls(&leaf)
    })
    .await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let r = route(&api(&upstream.url("https", "localhost")));
    let body = Bytes::from(vec![7u8; 100_000]);
    for _ in 0..2 {
        let request = Request::builder()
            .method("POST")
            .uri("/api/h2?q=1")
            .header("host", "gateway.example")
            .body(Full::new(body.clone()))
            .unwrap();
        let reply = h.send(&r, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
        let seen = reply.seen();
        assert_eq!(seen["version"], "HTTP/2.0");
        assert_eq!(seen["path"], "/h2?q=1");
        assert_eq!(seen["headers"]["x-forwarded-host"], "gateway.example");
        assert!(seen["headers"].get("host").is_none(), "h2 uses :authority");
        assert_eq!(reply.body, body);
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let ca = TestCa::root("upstream ca");
    let (tls, _) = tls_upstream(&ca).await;
    let plain = TestUpstream::start(UpstreamOptions::default()).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    for target in [
        plain.url("http", "127.0.0.1"),
        tls.url("https", "localhost"),
    ] {
        let (tx, body) = channel_body();
        let request = Request::builder()
            .method("PUT")
            .uri("/api/echo")
            .body(body)
            .unwrap();
        let r = route(&api(&target));
        let info = client_info(false);
        let forwarding = h.proxy.forward(&r, request, &info);
        tx.send(Bytes::from_static(b"first chunk")).await.unwrap();
        // The response starts before the request body ends: nothing is buffered.
        let response = tokio::time::timeout(Duration::from_secs(10), forwarding)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(&first[..], b"first chunk");
        let chunk = Bytes::from(vec![0xa5u8; 64 * 1024]);
        let sender = tokio::spawn(async move {
            for _ in 0..16 {
                tx.send(chunk.clone()).await.unwrap();
            }
        });
        let rest = body.collect().await.unwrap().to_bytes();
        sender.await.unwrap();
        assert_eq!(rest.len(), 1024 * 1024, "{target}");
        assert!(rest.iter().all(|b| *b == 0xa5));
    }
}

#[tokio::test]
async fn unusable_tls_settings_are_a_502_naming_the_setting() {
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    let mut def = api("https://localhost:1");
    def["proxy"]["transport"] = json!({ "ssl_ciphers": ["TLS_RSA_WITH_RC4_128_SHA"] });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply
            .error()
            .starts_with("upstream TLS configuration error: proxy.transport.ssl_ciphers"),
        "{}",
        reply.error()
    );
}

#[tokio::test]
async fn tls13_minimum_and_cipher_names_apply_to_upstreams() {
    let ca = TestCa::root("upstream ca");
    let (upstream, _) = tls_upstream(&ca).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[&ca]);
    let mut def = api(&upstream.url("https", "localhost"));
    def["proxy"]["transport"] = json!({
        "ssl_min_version": 772,
        "ssl_ciphers": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
    });
    let reply = h.send(&route(&def), get("/api/")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
    let mut old = GatewayConfig::default();
    old.proxy_ssl_min_version = 770;
    assert!(
        Proxy::with_options(
            &old,
            store.clone(),
            Arc::new(crate::observe::NoObserver),
            Arc::new(GatewayMetrics::default()),
            ProxyOptions::default(),
        )
        .is_err(),
        "TLS 1.1 is refused"
    );
}

/// The plain-HTTP pool that `h` prepared for API `api1`.
fn plain_pool(h: &Harness) -> Http1Pool {
    match h.proxy.upstreams.load().get("api1").map(|u| &u.client) {
        Some(Ok(UpstreamClient::Plain(pool))) => pool.clone(),
        _ => panic!("api1 has no plain-HTTP pool"),
    }
}

#[tokio::test]
async fn plain_http_connections_are_reused_across_sequential_requests() {
    let upstream = TestUpstream::start(UpstreamOptions::default()).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    let r = route(&api(&upstream.url("http", "127.0.0.1")));
    for i in 0..5 {
        let reply = h.send(&r, get(&format!("/api/get/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.seen()["path"], format!("/get/{i}"));
        let body = Bytes::from(vec![b'x'; 10_000 + i]);
        let request = Request::builder()
            .method("POST")
            .uri("/api/post")
            .body(Full::new(body.clone()))
            .unwrap();
        let reply = h.send(&r, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body, body);
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    assert_eq!(plain_pool(&h).idle_count(), 1);

    let table = ApiTable::new(vec![r.def.clone()]);
    h.proxy.reload(&table).await;
    let reply = h.send(&r, get("/api/after-reload")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "a reload keeping the target keeps the pool"
    );
}

#[tokio::test]
async fn a_plain_connection_whose_response_body_is_dropped_is_not_reused() {
    let upstream = TestUpstream::start(UpstreamOptions::default()).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    let r = route(&api(&upstream.url("http", "127.0.0.1")));
    let request = Request::builder()
        .method("POST")
        .uri("/api/big")
        .body(Full::new(Bytes::from(vec![1u8; 1024 * 1024])))
        .unwrap();
    let response = h.proxy.forward(&r, request, &client_info(false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    assert_eq!(plain_pool(&h).idle_count(), 0);

    let reply = h.send(&r, get("/api/next")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    assert_eq!(h.failures(), 0);
}

/// A plain HTTP/1.1 upstream that answers each connection's first request with `200` and
/// closes the connection, saying so with `Connection: close` when `announce` is set.
struct ClosingUpstream {
    addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ClosingUpstream {
    async fn start(announce: bool) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let response: &[u8] = if announce {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tcp.write_all(response).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }
}

impl Drop for ClosingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_plain_upstream_closing_between_requests_is_not_a_502() {
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    for announce in [true, false] {
        let upstream = ClosingUpstream::start(announce).await;
        let r = route(&api(&format!("http://{}", upstream.addr)));
        for _ in 0..3 {
            let reply = h.send(&r, get("/api/")).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.error());
            assert_eq!(reply.body, "ok");
            // Time for the connection's task to see the close.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(upstream.connections.load(Ordering::SeqCst), 3);
    }
    assert_eq!(h.failures(), 0);
}

#[tokio::test]
async fn concurrent_plain_requests_open_more_connections_and_all_succeed() {
    let upstream = TestUpstream::start(UpstreamOptions::default()).await;
    let store = memory_store();
    let h = harness(&GatewayConfig::default(), &store, &[]);
    let r = route(&api(&upstream.url("http", "127.0.0.1")));
    let info = client_info(false);
    let start = || {
        let (tx, body) = channel_body();
        let request = Request::builder()
            .method("PUT")
            .uri("/api/echo")
            .body(body)
            .unwrap();
        (tx, h.proxy.forward(&r, request, &info))
    };
    let (tx1, one) = start();
    let (tx2, two) = start();
    let (tx3, three) = start();
    // All three responses are open (their request bodies still streaming) at once.
    let (one, two, three) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(one, two, three)
    })
    .await
    .unwrap();
    for (i, tx) in [tx1, tx2, tx3].into_iter().enumerate() {
        tx.send(Bytes::from(format!("body {i}"))).await.unwrap();
    }
    for (i, response) in [one, two, three].into_iter().enumerate() {
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("body {i}"));
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 3);

    let reply = h.send(&r, get("/api/again")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 3, "reused");
    assert_eq!(h.failures(), 0);
}

#[tokio::test]
async fn idle_plain_connections_expire() {
    let upstream = TestUpstream::start(UpstreamOptions::default()).await;
    let target: Uri = upstream.url("http", "127.0.0.1").parse().unwrap();
    let connector = UpstreamConnector::new(None, Duration::from_secs(10));
    let pool = Http1Pool::new(connector, &target, Duration::from_millis(100)).unwrap();
    let send = || async {
        let request = Request::builder()
            .uri(format!("{target}idle"))
            .body(Full::new(Bytes::new()).map_err(Into::into).boxed_unsync())
            .unwrap();
        let response = pool.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let seen = seen(response.headers());
        response.into_body().collect().await.unwrap();
        seen
    };
    let seen = send().await;
    assert_eq!(seen["path"], "/idle");
    assert_eq!(
        seen["headers"]["host"],
        format!("127.0.0.1:{}", upstream.addr.port())
    );
    send().await;
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send().await;
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    assert_eq!(pool.idle_count(), 1, "the expired connection was dropped");
}
