//! Client certificate CRLs (issue 12, finding 4), with real handshakes over the test PKI:
//! root -> intermediate -> clients, and clients issued by the root directly. A root-only CRL
//! does not refuse clients under an intermediate; each option (`client_certificate_crl_depth`,
//! `client_certificate_crl_unknown_status`, `client_certificate_crls_strict`) does what it
//! says; a CRL past its `nextUpdate` warns (gauge) or is refused; a CRL with a bad signature is
//! refused at load, named.

mod support;

use std::sync::Arc;

use gateway_runtime::{Gateway, GatewayBuilder, GatewayError};
use rcgen::KeyPair;
use support::{api, echo_upstream, https_get, memory_store, tls_config};
use test_support::pki::{Leaf, TestCa, Usage, now};
use time::{Duration, OffsetDateTime};
use tls_core::OrgId;

/// The validity of every certificate here: from yesterday for 30 days.
fn validity() -> (OffsetDateTime, OffsetDateTime) {
    (now() - Duration::days(1), now() + Duration::days(30))
}

/// A client certificate named `cn` issued by `ca`.
fn client(ca: &TestCa, cn: &str) -> Leaf {
    ca.issue(&[], cn, Usage::Client, Some(validity()))
}

/// A CRL by `issuer` revoking `serials` since two days ago, whose `nextUpdate` is
/// `next_update`.
fn crl(issuer: &TestCa, serials: &[u64], next_update: OffsetDateTime) -> String {
    issuer.crl_between(serials, now() - Duration::days(2), next_update)
}

/// root -> intermediate -> {under, under_revoked}; root -> {direct, direct_revoked}.
struct Hierarchy {
    root: TestCa,
    intermediate: TestCa,
    under: Leaf,
    under_revoked: Leaf,
    direct: Leaf,
    direct_revoked: Leaf,
    servers: TestCa,
}

fn hierarchy() -> Hierarchy {
    let root = TestCa::root_valid("crl root", validity());
    let intermediate = root.intermediate_valid("crl intermediate", validity());
    Hierarchy {
        under: client(&intermediate, "under"),
        under_revoked: client(&intermediate, "under revoked"),
        direct: client(&root, "direct"),
        direct_revoked: client(&root, "direct revoked"),
        root,
        intermediate,
        servers: TestCa::root("crl servers"),
    }
}

impl Hierarchy {
    /// A gateway whose API on `crl.test` trusts the root, with `crls` and `options` (extra
    /// API definition fields).
    async fn gateway(
        &self,
        crls: &[String],
        options: serde_json::Value,
    ) -> Result<Gateway, GatewayError> {
        let store = memory_store();
        let server_id = store
            .add(&self.servers.server(&["crl.test"]).bundle(), &OrgId::EMPTY)
            .await
            .unwrap();
        let root_id = store.add(&self.root.cert_pem, &OrgId::EMPTY).await.unwrap();
        let mut config = tls_config();
        config.http_server_options.ssl_certificates = vec![server_id.into()];
        let mut definition = serde_json::json!({
            "api_id": "crl-api", "domain": "crl.test", "use_mutual_tls_auth": true,
            "client_certificates": [root_id.to_string()],
            "client_certificate_crls": crls,
            "proxy": {"listen_path": "/", "target_url": format!("http://{}", echo_upstream().await)}
        });
        for (field, value) in options.as_object().unwrap() {
            definition[field] = value.clone();
        }
        GatewayBuilder::new(config)
            .store(store)
            .apis(vec![api(definition)])
            .start()
            .await
    }

    /// Whether `client` (with the intermediate in its chain when `via_intermediate`) gets a
    /// 200 from the API.
    async fn admitted(&self, gateway: &Gateway, client: &Leaf, via_intermediate: bool) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.servers.ca_der()).unwrap();
        let mut chain = vec![client.der()];
        if via_intermediate {
            chain.push(self.intermediate.cert.clone());
        }
        let key = client.key();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        match https_get(gateway.local_addr(), "crl.test", Arc::new(config), "/x").await {
            Ok(answer) => answer.status == Some(200),
            Err(_) => false,
        }
    }
}

fn gauge(gateway: &Gateway) -> String {
    gateway
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with("certgate_crls_past_next_update "))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_only_crl_admits_good_clients_under_an_intermediate_and_refuses_what_it_revokes() {
    let pki = hierarchy();
    let later = now() + Duration::days(7);
    let root_crl = crl(&pki.root, &[pki.direct_revoked.serial], later);
    let gateway = pki
        .gateway(std::slice::from_ref(&root_crl), serde_json::json!({}))
        .await
        .unwrap();
    assert!(
        pki.admitted(&gateway, &pki.under, true).await,
        "a good client under an intermediate, with only the root's CRL"
    );
    assert!(
        pki.admitted(&gateway, &pki.direct, false).await,
        "a good client"
    );
    assert!(
        !pki.admitted(&gateway, &pki.direct_revoked, false).await,
        "a client the root's CRL revokes"
    );
    assert_eq!(gauge(&gateway), "certgate_crls_past_next_update 0");
    gateway.shutdown().await;

    // With an intermediate's CRL as well, its revoked client is refused and the others admitted.
    let intermediate_crl = crl(&pki.intermediate, &[pki.under_revoked.serial], later);
    // The intermediate's CRL must verify against a CA the API trusts: the root alone is not
    // enough, so the definition is refused, naming it.
    let refused = pki
        .gateway(
            &[root_crl.clone(), intermediate_crl.clone()],
            serde_json::json!({}),
        )
        .await
        .err()
        .expect("an intermediate's CRL that no configured CA signed is refused");
    let message = refused.to_string();
    assert!(
        message.contains("CRL 2 (issuer CN=crl intermediate)") && message.contains("signature"),
        "{message}"
    );

    // `deny`: every checked certificate needs its issuer's CRL: clients under the
    // intermediate (which has none) are refused, clients of the root are judged by its CRL.
    let gateway = pki
        .gateway(
            &[root_crl],
            serde_json::json!({"client_certificate_crl_unknown_status": "deny"}),
        )
        .await
        .unwrap();
    assert!(!pki.admitted(&gateway, &pki.under, true).await);
    assert!(pki.admitted(&gateway, &pki.direct, false).await);
    assert!(!pki.admitted(&gateway, &pki.direct_revoked, false).await);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_intermediate_refuses_its_clients_unless_only_leaves_are_checked() {
    let pki = hierarchy();
    let root_crl = crl(
        &pki.root,
        &[pki.intermediate.serial],
        now() + Duration::days(7),
    );
    // Default depth "chain": the intermediate is checked against the root's CRL.
    let gateway = pki
        .gateway(std::slice::from_ref(&root_crl), serde_json::json!({}))
        .await
        .unwrap();
    assert!(!pki.admitted(&gateway, &pki.under, true).await);
    assert!(pki.admitted(&gateway, &pki.direct, false).await);
    gateway.shutdown().await;
    // Depth "leaf": only the leaf is checked (its issuer, the intermediate, has no CRL).
    let gateway = pki
        .gateway(
            &[root_crl],
            serde_json::json!({"client_certificate_crl_depth": "leaf"}),
        )
        .await
        .unwrap();
    assert!(pki.admitted(&gateway, &pki.under, true).await);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_past_its_next_update_warns_with_a_gauge_or_is_refused_when_strict() {
    let pki = hierarchy();
    let expired = crl(
        &pki.root,
        &[pki.direct_revoked.serial],
        now() - Duration::days(1),
    );
    let gateway = pki
        .gateway(std::slice::from_ref(&expired), serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(gauge(&gateway), "certgate_crls_past_next_update 1");
    assert!(pki.admitted(&gateway, &pki.direct, false).await);
    assert!(
        !pki.admitted(&gateway, &pki.direct_revoked, false).await,
        "an old CRL still revokes"
    );
    gateway.shutdown().await;

    let refused = pki
        .gateway(
            &[expired],
            serde_json::json!({"client_certificate_crls_strict": true}),
        )
        .await
        .err()
        .expect("strict refuses a CRL past its nextUpdate");
    let message = refused.to_string();
    assert!(
        message.contains("crl-api")
            && message.contains("CRL 1 (issuer CN=crl root)")
            && message.contains("nextUpdate"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_with_a_bad_signature_is_refused_at_load_naming_it() {
    let pki = hierarchy();
    let impostor = KeyPair::generate().unwrap();
    let forged = pki.root.crl_signed_by(
        &impostor,
        &[],
        now() - Duration::days(2),
        now() + Duration::days(7),
    );
    let refused = pki
        .gateway(&[forged], serde_json::json!({}))
        .await
        .err()
        .expect("a CRL the root did not sign is refused");
    let message = refused.to_string();
    assert!(
        message.contains("crl-api")
            && message.contains("CRL 1 (issuer CN=crl root)")
            && message.contains("signature does not verify"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_crl_option_values_are_refused_with_the_field() {
    for (field, value) in [
        ("client_certificate_crl_depth", "intermediates"),
        ("client_certificate_crl_unknown_status", "maybe"),
    ] {
        let json = serde_json::json!({
            "api_id": "a", "proxy": {"listen_path": "/", "target_url": "http://127.0.0.1:1"},
            field: value
        });
        let error = gateway_runtime::ApiDefinition::from_json(
            &json.to_string(),
            std::path::Path::new("a.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(field) && error.contains(value), "{error}");
    }
}
