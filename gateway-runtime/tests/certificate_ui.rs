//! The certificate page over HTTP with a real client: sign-in and its cookie, sessions, CSRF,
//! upload (refusals show the API's message and store nothing), details, delete, sign-out,
//! live updates, and no key material or `Debug` text in any answer.

mod ui_support;

use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tls_core::OrgId;
use ui_support::{Browser, SECRET, expected_id, html_escape, start, start_with, vector};

#[tokio::test]
async fn a_wrong_secret_is_refused_and_sign_in_sets_a_flagged_session_cookie() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    let first = browser.get("/ui/").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(first.location(), "/ui/signin");
    let form = browser.get("/ui/signin").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("<label for=\"secret\">"));
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(!form.body.contains("<script>"));

    let wrong = browser.sign_in("not-the-secret").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.body.contains("That is not the control API secret"));
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(browser.cookie.is_none());

    let right = browser.sign_in(SECRET).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.location(), "/ui/");
    let cookie = right.headers["set-cookie"].to_str().unwrap();
    for flag in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/ui/",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    assert!(cookie.starts_with("certgate_ui_session="));
    assert!(!cookie.contains(SECRET));
    let overview = browser.get("/ui/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("Overview"));
    browser.assert_nothing_leaked();
}

#[tokio::test]
async fn sign_in_failures_are_limited() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    for _ in 0..5 {
        assert_eq!(browser.sign_in("wrong").await.status, StatusCode::FORBIDDEN);
    }
    let limited = browser.sign_in(SECRET).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(browser.cookie.is_none());
    ui.clock.advance(time::Duration::seconds(61));
    assert_eq!(browser.sign_in(SECRET).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_require_a_session_and_sessions_expire() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    for path in ["/ui/certs", "/ui/upload", "/ui/events", "/ui/certs/x"] {
        let answer = browser.get(path).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.location(), "/ui/signin");
    }
    let post = browser
        .post_multipart(
            "/ui/upload",
            &[("pem", &vector("leaf-p384-pkcs8.bundle.pem"))],
        )
        .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    browser.cookie = Some("certgate_ui_session=forged".into());
    assert_eq!(browser.get("/ui/certs").await.status, StatusCode::SEE_OTHER);
    browser.cookie = None;
    browser.sign_in(SECRET).await;
    assert_eq!(browser.get("/ui/certs").await.status, StatusCode::OK);
    ui.clock.advance(time::Duration::seconds(3601));
    assert_eq!(browser.get("/ui/certs").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ui.store
            .list(None, &Default::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}

#[tokio::test]
async fn a_change_without_the_csrf_token_is_refused_and_changes_nothing() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let pem = vector("leaf-p384-pkcs8.bundle.pem");
    let missing = browser.post_multipart("/ui/upload", &[("pem", &pem)]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("security token (CSRF)"));
    let wrong = browser
        .post_multipart("/ui/upload", &[("csrf", "forged"), ("pem", &pem)])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let delete = browser
        .post_form(&format!("/ui/certs/{}/delete", ui.used_id), &[])
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let signout = browser.post_form("/ui/signout", &[]).await;
    assert_eq!(signout.status, StatusCode::FORBIDDEN);
    assert_eq!(
        ui.store
            .list(None, &Default::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(browser.get("/ui/").await.status, StatusCode::OK);
    browser.assert_nothing_leaked();
}

#[tokio::test]
async fn a_bad_pem_shows_the_apis_message_and_stores_nothing() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let csrf = browser.csrf().await;
    for bad in [
        "bad-garbage.pem",
        "bad-key-mismatch.pem",
        "bad-key-only.pem",
    ] {
        let pem = vector(bad);
        // What the API itself says about this upload.
        let api = browser
            .send(
                Method::POST,
                "/tyk/certs?org_id=org1",
                None,
                pem.clone().into_bytes(),
                &[("x-tyk-authorization", SECRET)],
            )
            .await;
        assert_eq!(api.status, StatusCode::FORBIDDEN, "{bad}");
        let message: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        let message = message["message"].as_str().unwrap().to_owned();
        let page = browser
            .post_multipart(
                "/ui/upload",
                &[("csrf", &csrf), ("cert_file", &pem), ("org", "org1")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{bad}");
        assert!(
            page.body.contains(&html_escape(&message)),
            "{bad}: {message} not in {}",
            page.body
        );
        assert!(page.body.contains("id=\"upload-error\" role=\"alert\""));
        // The pasted PEM is not echoed back.
        if let Some(line) = pem.lines().find(|l| l.len() >= 32) {
            assert!(!page.body.contains(line), "{bad} echoed back");
        }
    }
    assert_eq!(
        ui.store
            .list(None, &Default::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    browser.assert_nothing_leaked();
}

#[tokio::test]
async fn an_upload_with_its_key_is_listed_with_the_right_id_and_its_details_show() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let csrf = browser.csrf().await;
    let id = expected_id("leaf-p384-pkcs8");
    let cert = vector("leaf-p384-pkcs8.crt.pem");
    let key = vector("leaf-p384-pkcs8.key.pem");
    let added = browser
        .post_multipart(
            "/ui/upload",
            &[
                ("csrf", &csrf),
                ("cert_file", &cert),
                ("key_file", &key),
                ("org", "5e9d9544a1dcd60001d0ed20"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    assert_eq!(added.location(), format!("/ui/certs/{id}?added=1"));
    let stored = ui.store.details(&id.parse().unwrap()).await.unwrap();
    assert!(stored.has_private);

    let details = browser.get(added.location()).await;
    assert_eq!(details.status, StatusCode::OK);
    assert!(details.body.contains("Certificate added."));
    assert!(details.body.contains(&stored.fingerprint.to_hex()));
    assert!(details.body.contains(&stored.spki_pin.to_hpkp()));
    assert!(details.body.contains("p384-pkcs8.vectors.test"));

    // Listed, with its ID, in the store's order and in a search by ID prefix and by SAN.
    for path in [
        "/ui/certs".to_owned(),
        format!("/ui/certs?q={}", &id[..30]),
        "/ui/certs?q=P384-PKCS8.vectors&sort=expiry".to_owned(),
        "/ui/certs?org=5e9d9544a1dcd60001d0ed20".to_owned(),
    ] {
        // The index follows the store's notices; give it a moment.
        let mut found = false;
        for _ in 0..50 {
            let list = browser.get(&path).await;
            assert_eq!(list.status, StatusCode::OK);
            if list.body.contains(&format!("data-copy=\"{id}\"")) {
                found = true;
                assert!(
                    list.body.contains("<div>yes</div>"),
                    "private key shown as yes"
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(found, "{id} not listed at {path}");
    }
    let none = browser.get("/ui/certs?q=no-such-name").await;
    assert!(none.body.contains("No certificate matches."));
    browser.assert_nothing_leaked();
}

#[tokio::test]
async fn details_show_the_fingerprint_chain_and_the_apis_using_it() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let details = browser.get(&format!("/ui/certs/{}", ui.used_id)).await;
    assert_eq!(details.status, StatusCode::OK, "{}", details.body);
    let meta = ui
        .store
        .details(&ui.used_id.parse().unwrap())
        .await
        .unwrap();
    assert!(details.body.contains(&meta.fingerprint.to_hex()));
    assert!(
        details
            .body
            .contains("Orders <code>used-api</code> on orders.example")
    );
    assert!(details.body.contains("<code>/orders/</code>"));
    assert!(details.body.contains("client allow-list"));
    // Every field of the details API, by its name.
    for field in [
        "fingerprint",
        "has_private",
        "issuer",
        "subject",
        "not_before",
        "not_after",
        "dns_names",
        "is_ca",
    ] {
        assert!(
            details.body.contains(&format!("<dt>{field}</dt>")),
            "{field}"
        );
    }
    let missing = browser.get("/ui/certs/org1ffff").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing
            .body
            .contains("Certificate with given SHA256 fingerprint not found")
    );
    browser.assert_nothing_leaked();
}

#[tokio::test]
async fn expired_and_expiring_certificates_show_their_status() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let mut overview = String::new();
    for _ in 0..50 {
        overview = browser.get("/ui/").await.body;
        if overview.contains("<span class=\"n\">3</span> certificates") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        overview.contains("<span class=\"n\">3</span> certificates"),
        "{overview}"
    );
    assert!(overview.contains("<span class=\"n\">1</span> expired"));
    assert!(overview.contains("<span class=\"n\">1</span> expiring within 30 days"));
    assert!(overview.contains("<svg class=\"chart\""));
    assert!(overview.contains("class=\"status expired\">Expired</span>"));
    assert!(overview.contains("class=\"status expiring\">Expiring soon</span>"));
    assert!(overview.contains("expired 2 days ago"));
    assert!(overview.contains("in 10 days"));
    let list = browser.get("/ui/certs?sort=expiry").await.body;
    let expired = list.find(&expected_id("expired")).unwrap();
    let expiring = list.find(&expected_id("expiring-10d")).unwrap();
    assert!(expired < expiring, "soonest expiry first");
    assert!(list.contains("class=\"status valid\">Valid</span>"));
}

#[tokio::test]
async fn delete_asks_first_listing_the_apis_then_removes_it() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let confirm = browser
        .get(&format!("/ui/certs/{}/delete", ui.used_id))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("1 API uses this certificate."));
    assert!(confirm.body.contains("Orders (<code>used-api</code>"));
    assert!(
        confirm
            .body
            .contains(&format!("action=\"/ui/certs/{}/delete\"", ui.used_id))
    );
    // The confirmation page changes nothing.
    assert!(ui.store.details(&ui.used_id.parse().unwrap()).await.is_ok());
    let csrf = browser.csrf().await;
    let done = browser
        .post_form(
            &format!("/ui/certs/{}/delete", ui.used_id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/ui/certs?removed={}", ui.used_id));
    assert!(
        ui.store
            .details(&ui.used_id.parse().unwrap())
            .await
            .is_err()
    );
    let list = browser.get(done.location()).await;
    assert!(
        list.body
            .contains(&format!("Certificate {} was deleted.", ui.used_id))
    );
    browser.assert_nothing_leaked();
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let csrf = browser.csrf().await;
    let out = browser.post_form("/ui/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"));
    assert_eq!(out.location(), "/ui/signin?signed_out=1");
    assert!(
        browser
            .get(out.location())
            .await
            .body
            .contains("You are signed out.")
    );
    // The old token no longer opens anything.
    let after = browser.get("/ui/").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/ui/signin");
}

#[tokio::test]
async fn a_change_made_through_the_api_is_announced_on_the_event_stream() {
    let ui = start().await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::get(format!("http://{}/ui/events", ui.addr()))
        .header("cookie", browser.cookie.clone().unwrap())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("connected"));
    ui.store
        .add(
            &vector("valid-31d.bundle.pem"),
            &OrgId::new("org1").unwrap(),
        )
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
        .await
        .expect("a change event")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(String::from_utf8_lossy(&next).starts_with("event: change\n"));
}

#[tokio::test]
async fn static_assets_are_served_and_the_page_is_off_by_default() {
    let ui = start().await;
    let browser = Browser::new(ui.addr());
    let js = browser.get("/ui/static/ui.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.body.contains("EventSource"));
    let css = browser.get("/ui/static/ui.css").await;
    assert!(css.body.contains("@media (max-width: 700px)"));

    let config = gateway_runtime::GatewayConfig::from_json(
        r#"{"listen_address": "127.0.0.1", "listen_port": 0, "secret": "off-secret"}"#,
        std::path::Path::new("off.json"),
        Vec::new(),
    )
    .unwrap();
    assert!(!config.certificate_ui.enabled);
    let off = gateway_runtime::GatewayBuilder::new(config)
        .apis(Vec::new())
        .start()
        .await
        .unwrap();
    let answer = Browser::new(off.local_addr()).get("/ui/signin").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn details_show_the_expiry_monitors_recent_events() {
    let ui = start_with(
        r#", "security": {"certificate_expiry_monitor": {"sweep_interval_seconds": 1}}"#,
    )
    .await;
    let mut browser = Browser::new(ui.addr());
    browser.sign_in(SECRET).await;
    let path = format!("/ui/certs/{}", expected_id("expiring-10d"));
    let mut body = String::new();
    for _ in 0..100 {
        body = browser.get(&path).await.body;
        if body.contains("<strong>CertificateExpiringSoon</strong>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        body.contains("<strong>CertificateExpiringSoon</strong>"),
        "no event shown: {body}"
    );
    let expired = browser
        .get(&format!("/ui/certs/{}", expected_id("expired")))
        .await;
    assert!(expired.body.contains("<strong>CertificateExpired</strong>"));
    // Without a sweep, nothing has happened yet.
    let quiet = start().await;
    let mut other = Browser::new(quiet.addr());
    other.sign_in(SECRET).await;
    let none = other.get(&path).await;
    assert!(
        none.body
            .contains("No expiry event for this certificate since the gateway started.")
    );
}
