//! Runs the built `certctl` store commands against a private `redis-server` (`--redis`) and
//! against an in-process gateway's control API (`--url`), with the shared test vectors
//! (`testdata/vectors` in the repository, or `$CERTGATE_VECTORS`).
//!
//! Uploads are judged at the manifest's `generated_at` (`--at`), never at the wall clock. The
//! Redis tests skip when `redis-server` is not installed, unless `CI=true`.

mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use cert_store::{CertStore, ManualClock, MemoryStorage};
use serde_json::Value;
use support::InProcessGateway;
use test_support::redis::{RedisCluster, RedisSentinels, RedisServer};
use test_support::vectors::{self, Vectors, generated_at};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const CERTCTL: &str = env!("CARGO_BIN_EXE_certctl");
const ENCODING_SECRET: &str = "store-secret-1";
const CONTROL_SECRET: &str = "control-secret-for-certctl";

/// The path of vector file `name`, as an argument.
fn vector_path(name: &str) -> String {
    vectors::path(name).to_str().expect("UTF-8 path").to_owned()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

/// The ID a manifest case gets under `org`.
fn id(case: &str, org: &str) -> String {
    let vectors = Vectors::load();
    let expect = vectors.case(case).expect_id.as_deref().unwrap();
    format!("{org}{}", &expect[expect.len() - 64..])
}

fn certctl(args: &[&str]) -> Output {
    Command::new(CERTCTL)
        .args(args)
        .env_remove("CERTCTL_URL")
        .env_remove("CERTCTL_REDIS")
        .env_remove("CERTCTL_SECRET")
        .env_remove("CERTCTL_ENCODING_SECRET")
        .env_remove("CERTCTL_NEW_SECRET")
        .env_remove("CERTCTL_REDIS")
        .env_remove("CERTCTL_SENTINEL_PASSWORD")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CERTCTL}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs certctl, asserts exit status 0, returns stdout.
#[track_caller]
fn ok(args: &[&str]) -> String {
    let out = certctl(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "certctl {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs certctl, asserts exit status 1, returns stderr.
#[track_caller]
fn fails(args: &[&str]) -> (String, String) {
    let out = certctl(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "certctl {args:?} should fail: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

fn with(target: &[&str], args: &[&str]) -> Vec<String> {
    args.iter().chain(target).map(|s| (*s).to_owned()).collect()
}

fn run_ok(target: &[&str], args: &[&str]) -> String {
    let all = with(target, args);
    ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

fn run_fails(target: &[&str], args: &[&str]) -> (String, String) {
    let all = with(target, args);
    fails(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn store_commands_work_against_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let target = [
        "--redis",
        url.as_str(),
        "--encoding-secret",
        ENCODING_SECRET,
    ];
    let at = rfc3339(generated_at());
    let earlier = rfc3339(generated_at() - Duration::hours(2));

    // add prints the ID; expiry is judged at --at.
    let root = id("root_ca_only", "org1");
    let leaf = id("leaf-p256-traditional", "org1");
    let pubkey = id("public_key_only", "");
    let soon = id("expiring-10d", "org2");
    let gone = id("expired-30min", "org2");
    for (org, file, when, expected) in [
        ("org1", "root-ca.pem", &at, &root),
        ("org1", "leaf-p256-traditional.bundle.pem", &at, &leaf),
        ("", "pubkey-p256.pem", &at, &pubkey),
        ("org2", "expiring-10d.bundle.pem", &at, &soon),
        ("org2", "expired-30min.bundle.pem", &earlier, &gone),
    ] {
        let path = vector_path(file);
        let mut args = vec!["add", "--at", when.as_str()];
        if !org.is_empty() {
            args.extend(["--org", org]);
        }
        args.push(&path);
        assert_eq!(run_ok(&target, &args), format!("{expected}\n"), "{file}");
    }
    // Adding the same certificate again answers its ID (a retry is safe)...
    assert_eq!(
        run_ok(
            &target,
            &[
                "add",
                "--org",
                "org1",
                "--at",
                &at,
                &vector_path("root-ca.pem"),
            ],
        ),
        format!("{root}\n")
    );
    // ...but refusals exit 1 with the reason: here the stored record has a key, this one not.
    let (_, err) = run_fails(
        &target,
        &[
            "add",
            "--org",
            "org1",
            "--at",
            &at,
            &vector_path("leaf-p256-traditional.crt.pem"),
        ],
    );
    assert!(
        err.contains(&format!("Certificate with {leaf} id already exists")),
        "{err}"
    );
    let (_, err) = run_fails(
        &target,
        &["add", "--at", &at, &vector_path("expired.bundle.pem")],
    );
    assert!(
        err.starts_with("certctl: ") && err.contains("expired"),
        "{err}"
    );

    // list: every org, one org.
    let all = run_ok(&target, &["list"]);
    let mut got = lines(&all);
    got.sort_unstable();
    let mut expected = vec![
        root.as_str(),
        leaf.as_str(),
        pubkey.as_str(),
        soon.as_str(),
        gone.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(
        lines(&run_ok(&target, &["list", "--org", "org1"])),
        [root.as_str(), leaf.as_str()]
    );
    let json: Value =
        serde_json::from_str(&run_ok(&target, &["list", "--org", "org1", "--json"])).unwrap();
    assert_eq!(json, serde_json::json!([root, leaf]));
    let detailed = run_ok(&target, &["list", "--org", "org1", "--detailed"]);
    let rows = lines(&detailed);
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("NOT AFTER"),
        "{detailed}"
    );
    assert!(rows[1].starts_with(&root) && rows[1].contains("Vector Root CA"));
    assert!(rows[2].contains("2036-11-26T04:57:32Z") && rows[2].contains("yes"));
    let detailed: Value = serde_json::from_str(&run_ok(
        &target,
        &["list", "--org", "org1", "--detailed", "--json"],
    ))
    .unwrap();
    assert_eq!(detailed[1]["subject_cn"], "p256-traditional.vectors.test");
    assert_eq!(detailed[1]["has_private"], true);
    assert_eq!(detailed[0]["is_ca"], true);

    // get: found ones printed, missing ones on stderr, exit 1.
    let one = run_ok(&target, &["get", &leaf]);
    assert!(one.contains(&format!("ID:              {leaf}")), "{one}");
    assert!(one.contains("Subject CN:      p256-traditional.vectors.test"));
    assert!(one.contains("Private key:     yes"));
    let missing = format!("org1{}", "0".repeat(64));
    let (out, err) = run_fails(&target, &["get", &format!("{root},{missing}"), &pubkey]);
    assert!(
        out.contains(&root) && out.contains("Public key only: yes"),
        "{out}"
    );
    assert_eq!(err, format!("certctl: {missing}: not found\n"));
    let (out, _) = run_fails(&target, &["get", "--json", &format!("{missing},{root}")]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0], Value::Null);
    assert_eq!(json[1]["id"], root.as_str());

    // expiry: by days remaining at --at; the public key has no expiry and is left out.
    let table = run_ok(&target, &["expiry", "--at", &at]);
    let rows = lines(&table);
    assert!(rows[0].starts_with("DAYS"), "{table}");
    assert!(rows[1].starts_with("-1") && rows[1].contains("expired") && rows[1].contains(&gone));
    assert!(rows[2].starts_with("10") && rows[2].contains("expiring") && rows[2].contains(&soon));
    assert!(rows[3].contains("valid"));
    assert_eq!(rows.len(), 5, "{table}");
    assert!(
        !table.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let within = run_ok(&target, &["expiry", "--at", &at, "--within-days", "30"]);
    assert_eq!(lines(&within).len(), 3, "{within}");
    let org1 = run_ok(&target, &["expiry", "--at", &at, "--org", "org1"]);
    assert_eq!(lines(&org1).len(), 3, "{org1}");

    // apis needs a gateway.
    let (_, err) = run_fails(&target, &["apis", &root]);
    assert!(err.contains("needs --url"), "{err}");

    // rekey: every key re-encrypted; the old secret no longer opens them.
    let report = run_ok(&target, &["rekey", "--new-secret", "store-secret-2"]);
    assert!(
        report.starts_with("rekeyed 3, unchanged 2, failed 0\n"),
        "{report}"
    );
    let old = run_ok(&target, &["list", "--detailed", "--org", "org1"]);
    assert!(
        old.contains("problem: the private key cannot be used"),
        "{old}"
    );
    let new_target = [
        "--redis",
        url.as_str(),
        "--encoding-secret",
        "store-secret-2",
    ];
    let new = run_ok(&new_target, &["list", "--detailed", "--org", "org1"]);
    assert!(!new.contains("problem"), "{new}");
    let again = run_ok(&new_target, &["rekey", "--new-secret", "store-secret-2"]);
    assert!(
        again.starts_with("rekeyed 0, unchanged 5, failed 0"),
        "{again}"
    );
    // With the wrong current secret, rekey reports the keys it cannot open and fails.
    let (out, err) = run_fails(&target, &["rekey", "--new-secret", "store-secret-3"]);
    assert!(out.starts_with("rekeyed 0, unchanged 2, failed 3"), "{out}");
    assert!(err.contains("--previous-secret"), "{err}");
    let resumed = run_ok(
        &[
            "--redis",
            url.as_str(),
            "--encoding-secret",
            "store-secret-1",
            "--previous-secret",
            "store-secret-2",
        ],
        &["rekey", "--new-secret", "store-secret-3"],
    );
    assert!(resumed.starts_with("rekeyed 3"), "{resumed}");

    // delete: removed, then gone; deleting again says so but succeeds.
    assert_eq!(
        run_ok(&target, &["delete", &root]),
        format!("removed {root}\n")
    );
    assert!(!run_ok(&target, &["list"]).contains(&root));
    let out = certctl(
        &with(&target, &["delete", &root])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("no such certificate"));
    let (_, err) = run_fails(&target, &["delete", "not-an-id"]);
    assert!(err.contains("not a certificate ID"), "{err}");
}

/// add, list, delete, repair and reindex through a `redis+cluster://` or `redis+sentinel://` URL.
fn store_commands_work_on(url: &str) {
    let target = ["--redis", url, "--encoding-secret", ENCODING_SECRET];
    let at = rfc3339(generated_at());
    let leaf = id("leaf-p256-traditional", "org1");
    let root = id("root_ca_only", "org1");
    for (file, expected) in [
        ("leaf-p256-traditional.bundle.pem", &leaf),
        ("root-ca.pem", &root),
    ] {
        let path = vector_path(file);
        let args = [
            "add",
            "--org",
            "org1",
            "--at",
            &at,
            "--min-replicas-to-ack",
            "1",
            &path,
        ];
        assert_eq!(run_ok(&target, &args), format!("{expected}\n"), "{file}");
    }
    let mut listed = lines(&run_ok(&target, &["list", "--org", "org1"]))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    listed.sort_unstable();
    let mut expected = vec![leaf.clone(), root.clone()];
    expected.sort_unstable();
    assert_eq!(listed, expected);
    run_ok(&target, &["delete", &root]);
    assert_eq!(
        run_ok(&target, &["repair"]),
        "records 1, added to their index 0, dead index entries dropped 0\n"
    );
    assert_eq!(lines(&run_ok(&target, &["list"])), [leaf.as_str()]);
    // Tyk's index migration for every org, on every master of a cluster; the URL may come
    // from CERTCTL_REDIS.
    let out = Command::new(CERTCTL)
        .arg("reindex")
        .env_remove("CERTCTL_URL")
        .env("CERTCTL_REDIS", url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "orgs 1, records 1, index entries added 0, org-less entries moved from cert--index 0\n"
    );
}

#[test]
fn store_commands_work_against_a_redis_cluster_and_sentinels() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    store_commands_work_on(&format!("redis+cluster://{}", cluster.addrs().join(",")));
    drop(cluster);
    let Some(sentinels) = RedisSentinels::start() else {
        return;
    };
    store_commands_work_on(&format!(
        "redis+sentinel://{}/{}",
        sentinels.sentinel_addrs().join(","),
        RedisSentinels::MASTER_NAME
    ));
    // A cluster has only database 0: a clear error, nothing stored.
    let (_, err) = run_fails(
        &[
            "--redis",
            "redis+cluster://127.0.0.1:1/2",
            "--encoding-secret",
            "s",
        ],
        &["list"],
    );
    assert!(err.contains("cluster") && err.contains("database"), "{err}");
}

#[test]
fn the_encoding_secret_can_come_from_the_environment() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let out = Command::new(CERTCTL)
        .args(["list", "--redis", &redis.url()])
        .env("CERTCTL_ENCODING_SECRET", ENCODING_SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn target_mistakes_are_clear_errors() {
    let (_, err) = fails(&["list"]);
    assert!(err.contains("--url") && err.contains("--redis"), "{err}");
    let (_, err) = fails(&["list", "--url", "http://127.0.0.1:1"]);
    assert!(err.contains("--secret"), "{err}");
    let (_, err) = fails(&["list", "--redis", "redis://127.0.0.1:1/"]);
    assert!(err.contains("--encoding-secret"), "{err}");
    let (_, err) = fails(&["list", "--url", "gw.example:8443", "--secret", "s"]);
    assert!(err.contains("http:// or https://"), "{err}");
    let (_, err) = fails(&["list", "--url", "http://127.0.0.1:1", "--secret", "s"]);
    assert!(err.contains("cannot reach the gateway"), "{err}");
    let (_, err) = fails(&[
        "rekey",
        "--new-secret",
        "x",
        "--url",
        "http://127.0.0.1:1",
        "--secret",
        "s",
    ]);
    assert!(err.contains("only with --redis"), "{err}");
    let (_, err) = fails(&[
        "list",
        "--redis",
        "redis://127.0.0.1:1/",
        "--encoding-secret",
        "s",
    ]);
    assert!(err.contains("cannot use Redis"), "{err}");
    // Both targets: a usage error (exit 2).
    let out = certctl(&[
        "list",
        "--url",
        "http://127.0.0.1:1",
        "--redis",
        "redis://127.0.0.1:1/",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// An in-process gateway (memory store, clock at `generated_at`) serving the control API on a
/// loopback port, for the `--url` mode.
fn test_gateway() -> InProcessGateway {
    let config = gateway_runtime::GatewayConfig::from_json(
        &format!(
            r#"{{"listen_address": "127.0.0.1", "listen_port": 0, "secret": "{CONTROL_SECRET}"}}"#
        ),
        std::path::Path::new("certctl-test.json"),
        Vec::new(),
    )
    .unwrap();
    let api = gateway_runtime::ApiDefinition::from_json(
        &format!(
            r#"{{"api_id": "api-with-ca", "proxy": {{"listen_path": "/a/", "target_url": "http://127.0.0.1:9"}},
                "use_mutual_tls_auth": true, "client_certificates": ["{}"]}}"#,
            id("root_ca_only", "org1")
        ),
        std::path::Path::new("api.json"),
    )
    .unwrap();
    InProcessGateway::start(
        async move || {
            let store = CertStore::builder(Arc::new(MemoryStorage::new()))
                .clock(Arc::new(ManualClock::new(generated_at())))
                .build();
            gateway_runtime::GatewayBuilder::new(config)
                .store(store)
                .apis(vec![api])
        },
        |gateway| {
            format!(
                "http://{}",
                gateway.control_addr().unwrap_or(gateway.local_addr())
            )
        },
    )
}

#[test]
fn store_commands_work_against_a_gateway() {
    let gateway = test_gateway();
    let target = ["--url", gateway.url.as_str(), "--secret", CONTROL_SECRET];
    let root = id("root_ca_only", "org1");
    let leaf = id("leaf-p256-traditional", "org1");
    let soon = id("expiring-10d", "");

    assert_eq!(run_ok(&target, &["list"]), "");
    for (org, file, expected) in [
        (Some("org1"), "root-ca.pem", &root),
        (Some("org1"), "leaf-p256-traditional.bundle.pem", &leaf),
        (None, "expiring-10d.bundle.pem", &soon),
    ] {
        let path = vector_path(file);
        let mut args = vec!["add"];
        if let Some(org) = org {
            args.extend(["--org", org]);
        }
        args.push(&path);
        assert_eq!(run_ok(&target, &args), format!("{expected}\n"));
    }
    assert_eq!(
        run_ok(
            &target,
            &["add", "--org", "org1", &vector_path("root-ca.pem")]
        ),
        format!("{root}\n"),
        "adding the same certificate again answers its ID"
    );
    let (_, err) = run_fails(
        &target,
        &[
            "add",
            "--org",
            "org1",
            &vector_path("leaf-p256-traditional.crt.pem"),
        ],
    );
    assert!(
        err.contains("403") && err.contains(&format!("Certificate with {leaf} id already exists")),
        "{err}"
    );
    let (_, err) = run_fails(
        &target,
        &[
            "add",
            "--at",
            "2026-01-01T00:00:00Z",
            &vector_path("root-ca.pem"),
        ],
    );
    assert!(err.contains("only with --redis"), "{err}");

    assert_eq!(
        lines(&run_ok(&target, &["list", "--org", "org1"])),
        [root.as_str(), leaf.as_str()]
    );
    assert_eq!(lines(&run_ok(&target, &["list"])).len(), 3);
    let detailed: Value =
        serde_json::from_str(&run_ok(&target, &["list", "--detailed", "--json"])).unwrap();
    assert_eq!(detailed[0]["id"], soon.as_str(), "sorted by expiry");
    assert_eq!(detailed[2]["has_private"], true);

    let got = run_ok(&target, &["get", &leaf]);
    assert!(
        got.contains(&format!("Fingerprint:     {}", &leaf[4..])),
        "{got}"
    );
    let missing = format!("org1{}", "0".repeat(64));
    let (out, err) = run_fails(&target, &["get", &format!("{root},{missing}")]);
    assert!(out.contains("Subject CN:      Vector Root CA"), "{out}");
    assert!(err.contains(&format!("{missing}: not found")), "{err}");
    let (_, err) = run_fails(&target, &["get", &missing]);
    assert!(err.contains("not found"), "{err}");

    let at = rfc3339(generated_at());
    let table = run_ok(&target, &["expiry", "--at", &at, "--within-days", "30"]);
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[1].starts_with("10") && rows[1].contains(&soon));

    assert_eq!(run_ok(&target, &["apis", &root]), "api-with-ca\tclient\n");
    assert_eq!(run_ok(&target, &["apis", &leaf]), "");
    let (_, err) = run_fails(&target, &["apis", "nope"]);
    assert!(err.contains("not a certificate ID"), "{err}");

    assert_eq!(
        run_ok(&target, &["delete", &leaf]),
        format!("removed {leaf}\n")
    );
    assert_eq!(
        lines(&run_ok(&target, &["list", "--org", "org1"])),
        [root.as_str()]
    );

    // A wrong secret is the gateway's 403, as an error.
    let (_, err) = fails(&["list", "--url", &gateway.url, "--secret", "wrong"]);
    assert!(
        err.contains("403") && err.contains("Attempted administrative access"),
        "{err}"
    );
}
