//! A Rust service embedding the gateway with its own store and router.

mod support;

use support::{api, client_config, echo_upstream, https_get, memory_store, tls_config};
use test_support::pki::TestCa;
use tls_core::OrgId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_matching_no_api_reach_the_services_own_router() {
    let pki = TestCa::root("embed ca");
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        store
            .add(&pki.server(&["svc.test"]).bundle(), &OrgId::EMPTY)
            .await
            .unwrap()
            .into(),
    ];
    let upstream = echo_upstream().await;
    // The service's own router, as it is: an axum `Router` is a `tower::Service`.
    let router = axum::Router::new().route(
        "/status",
        axum::routing::get(|| async { "the service answers /status" }),
    );
    let gateway = gateway_runtime::GatewayBuilder::new(config)
        .store(store)
        .apis(vec![api(serde_json::json!({"api_id": "api", "proxy": {"listen_path": "/api/", "target_url": format!("http://{upstream}")}}))])
        .fallback(router)
        .start()
        .await
        .unwrap();
    let client = client_config(&[pki.ca_der()], None);
    let own = https_get(gateway.local_addr(), "svc.test", client.clone(), "/status")
        .await
        .unwrap();
    assert_eq!(
        (own.status, own.body.as_str()),
        (Some(200), "the service answers /status")
    );
    let proxied = https_get(gateway.local_addr(), "svc.test", client, "/api/x")
        .await
        .unwrap();
    assert!(
        proxied.body.starts_with("upstream says /api/x"),
        "{}",
        proxied.body
    );
    gateway.shutdown().await;
}
