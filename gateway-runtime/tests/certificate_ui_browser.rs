//! The certificate page in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` (WebDriver) with fantoccini, against a gateway started in-process.
//!
//! Covers issue 17's "Done when" list: wrong secret refused, sign-in, the cookie's flags,
//! upload with key listed with the right ID, a bad PEM showing the API's message and storing
//! nothing, details with the fingerprint and the APIs, expired and expiring statuses, a change
//! made through the API appearing on an open page without reload, a change without the CSRF
//! token refused, delete with confirmation, sign-out.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages; `scripts/test.sh` installs them).
//! Without them the test says so and passes, except under `CI=true`, where it fails.
//! With `CERTGATE_SCREENSHOTS=docs/ui` it also writes screenshots of the overview, list,
//! details and upload pages at 1280 and 375 pixels wide into that folder (relative to the
//! workspace root).

mod ui_support;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use ui_support::{Browser, SECRET, expected_id, vector};

/// A chromedriver process, stopped on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why the browser test cannot run: fails under CI, skips otherwise.
fn unavailable(why: &str) {
    assert!(
        !in_ci(),
        "CI=true and the browser test cannot run: {why} (install chromium and chromium-driver)"
    );
    eprintln!("SKIPPED: the certificate page's browser test cannot run: {why}");
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/lib/chromium")]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_browser(profile: &Path) -> Result<(Driver, Client), String> {
    let driver_path = find_program(&["chromedriver"]).ok_or("chromedriver is not installed")?;
    let chromium =
        find_program(&["chromium", "chromium-browser"]).ok_or("chromium is not installed")?;
    let port = free_port();
    let child = Command::new(&driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver does not start: {e}"))?;
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        return Err("chromedriver did not listen within 10 s".into());
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .map_err(|e| format!("chromium does not start under chromedriver: {e}"))?;
    Ok((driver, client))
}

/// Where screenshots go, when asked for.
fn screenshot_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CERTGATE_SCREENSHOTS")?;
    let dir = PathBuf::from(dir);
    let dir = if dir.is_absolute() {
        dir
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
    };
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

/// Screenshots of the current page at desktop and phone widths, whole page tall.
async fn screenshots(client: &Client, name: &str) {
    let Some(dir) = screenshot_dir() else {
        return;
    };
    for (label, width) in [("desktop", 1280u32), ("375", 375u32)] {
        client.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let height = client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900)
            .clamp(600, 3000)
            + 120;
        client
            .set_window_size(width, u32::try_from(height).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-{label}.png")), png).unwrap();
    }
    client.set_window_size(1280, 1000).await.unwrap();
}

async fn page_text(client: &Client) -> String {
    // The page may be navigating: read its text in one script, and treat a failure as empty.
    client
        .execute(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Waits until the page's text contains `needle`.
async fn wait_for_text(client: &Client, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = page_text(client).await;
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle:?} never appeared; the page says:\n{text}");
}

fn write_temp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_page_works_in_a_real_browser() {
    let scratch = tempfile::tempdir().unwrap();
    let (driver, client) = match start_browser(&scratch.path().join("profile")).await {
        Ok(started) => started,
        Err(why) => return unavailable(&why),
    };
    let ui = ui_support::start().await;
    let base = format!("http://127.0.0.1:{}/ui/", ui.addr().port());
    let store_count = || async {
        ui.store
            .list(None, &Default::default())
            .await
            .unwrap()
            .items
            .len()
    };

    // A wrong secret is refused; no cookie is set.
    client.goto(&base).await.unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/ui/signin")
    );
    client
        .find(Locator::Id("secret"))
        .await
        .unwrap()
        .send_keys("wrong secret")
        .await
        .unwrap();
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "That is not the control API secret").await;
    assert!(client.get_all_cookies().await.unwrap().is_empty());

    // Sign in: the session cookie carries its flags.
    client
        .find(Locator::Id("secret"))
        .await
        .unwrap()
        .send_keys(SECRET)
        .await
        .unwrap();
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let overview = wait_for_text(&client, "Needs attention first").await;
    let cookies = client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "certgate_ui_session")
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.secure(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    assert_eq!(session.path(), Some("/ui/"));
    assert_ne!(session.value(), SECRET);
    // Nothing of the secret in the browser's storage.
    let storage = client
        .execute(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(storage.as_str(), Some("{}{}"));

    // The expired and the expiring certificates show their status.
    let overview = if overview.contains("3\ncertificates") || overview.contains("3 certificates") {
        overview
    } else {
        client.refresh().await.unwrap();
        wait_for_text(&client, "expiring within 30 days").await
    };
    assert!(overview.contains("Expired"), "{overview}");
    assert!(overview.contains("Expiring soon"));
    assert!(overview.contains("expired 2 days ago"));
    assert!(overview.contains("in 10 days"));
    screenshots(&client, "overview").await;

    // A bad PEM shows the API's message next to the input and stores nothing.
    let before = store_count().await;
    let bad = vector("bad-key-mismatch.pem");
    let api = Browser::new(ui.addr())
        .send(
            Method::POST,
            "/tyk/certs",
            None,
            bad.clone().into_bytes(),
            &[("x-tyk-authorization", SECRET)],
        )
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    let message = serde_json::from_str::<serde_json::Value>(&api.body).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    client.goto(&format!("{base}upload")).await.unwrap();
    let bad_file = write_temp(scratch.path(), "bad.pem", &bad);
    client
        .find(Locator::Id("cert_file"))
        .await
        .unwrap()
        .send_keys(bad_file.to_str().unwrap())
        .await
        .unwrap();
    client
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let shown = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("upload-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown, message);
    assert_eq!(store_count().await, before);
    screenshots(&client, "upload").await;

    // Upload a certificate and its key from the file pickers: it is listed with the right ID.
    let id = expected_id("leaf-p384-pkcs8");
    let cert_file = write_temp(
        scratch.path(),
        "leaf.crt.pem",
        &vector("leaf-p384-pkcs8.crt.pem"),
    );
    let key_file = write_temp(
        scratch.path(),
        "leaf.key.pem",
        &vector("leaf-p384-pkcs8.key.pem"),
    );
    client.goto(&format!("{base}upload")).await.unwrap();
    client
        .find(Locator::Id("cert_file"))
        .await
        .unwrap()
        .send_keys(cert_file.to_str().unwrap())
        .await
        .unwrap();
    client
        .find(Locator::Id("key_file"))
        .await
        .unwrap()
        .send_keys(key_file.to_str().unwrap())
        .await
        .unwrap();
    client
        .find(Locator::Id("org"))
        .await
        .unwrap()
        .send_keys("5e9d9544a1dcd60001d0ed20")
        .await
        .unwrap();
    client
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let details = wait_for_text(&client, "Certificate added.").await;
    assert!(details.contains(&id));
    let meta = ui.store.details(&id.parse().unwrap()).await.unwrap();
    assert!(meta.has_private);
    assert!(details.contains(&meta.fingerprint.to_hex()));
    client.goto(&format!("{base}certs")).await.unwrap();
    wait_for_text(&client, &id).await;
    let copy = client
        .find(Locator::Css(&format!("button[data-copy='{id}']")))
        .await
        .unwrap();
    assert!(copy.is_displayed().await.unwrap());
    screenshots(&client, "list").await;

    // Details show the fingerprint and the APIs that use the certificate.
    client
        .goto(&format!("{base}certs/{}", ui.used_id))
        .await
        .unwrap();
    let used_meta = ui
        .store
        .details(&ui.used_id.parse().unwrap())
        .await
        .unwrap();
    let details = wait_for_text(&client, &used_meta.fingerprint.to_hex()).await;
    assert!(
        details.contains("Orders used-api on orders.example"),
        "{details}"
    );
    assert!(details.contains("/orders/"));
    assert!(details.contains("client allow-list"));
    screenshots(&client, "details").await;

    // A change made through the API appears on an open page without reload.
    client
        .goto(&format!("{base}certs?sort=expiry"))
        .await
        .unwrap();
    wait_for_text(&client, "Soonest expiry first").await;
    client
        .execute("window.notReloaded = true; return true;", vec![])
        .await
        .unwrap();
    // Let the page's event stream connect before the change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let added = Browser::new(ui.addr())
        .send(
            Method::POST,
            "/tyk/certs?org_id=org1",
            None,
            vector("valid-31d.bundle.pem").into_bytes(),
            &[("x-tyk-authorization", SECRET)],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    wait_for_text(&client, &expected_id("valid-31d")).await;
    let still = client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(still.as_bool(), Some(true), "the page was reloaded");

    // A change without the CSRF token is refused: remove the token from the form and submit.
    client
        .goto(&format!("{base}certs/{}/delete", ui.used_id))
        .await
        .unwrap();
    let confirm = wait_for_text(&client, "1 API uses this certificate.").await;
    assert!(confirm.contains("Orders (used-api, /orders/)"), "{confirm}");
    client
        .execute(
            "document.querySelector('main form input[name=csrf]').remove(); return true;",
            vec![],
        )
        .await
        .unwrap();
    client
        .find(Locator::Css("main form button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "Change refused").await;
    assert!(ui.store.details(&ui.used_id.parse().unwrap()).await.is_ok());

    // Delete with confirmation removes it.
    client
        .goto(&format!("{base}certs/{}/delete", ui.used_id))
        .await
        .unwrap();
    wait_for_text(&client, "1 API uses this certificate.").await;
    client
        .find(Locator::Css("main form button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "was deleted").await;
    assert!(
        ui.store
            .details(&ui.used_id.parse().unwrap())
            .await
            .is_err()
    );

    // Sign-out ends the session.
    client
        .find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "Sign in with the control API secret").await;
    client.goto(&format!("{base}certs")).await.unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/ui/signin")
    );

    client.close().await.unwrap();
    drop(driver);
    ui.gateway.shutdown().await;
}
