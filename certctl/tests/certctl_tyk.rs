//! `certctl` on a Redis shared with Tyk nodes: `rekey --key-format legacy` makes a certgate
//! store readable by Tyk and `--key-format modern` turns it back, resumably; `add --key-format
//! legacy` writes Tyk's format; `reindex` indexes records old Tyk nodes wrote without an index.
//! Raw Redis is read with `redis-cli`, which comes with `redis-server`.

use std::process::{Command, Output};

use test_support::redis::RedisServer;
use test_support::vectors;
use time::format_description::well_known::Rfc3339;

const CERTCTL: &str = env!("CARGO_BIN_EXE_certctl");
const SECRET: &str = "shared-with-tyk";

/// The path of vector file `name`, as an argument.
fn vector_path(name: &str) -> String {
    vectors::path(name).to_str().expect("UTF-8 path").to_owned()
}

/// The manifest's `generated_at`, as an argument.
fn generated_at() -> String {
    vectors::generated_at().format(&Rfc3339).unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(CERTCTL)
        .args(args)
        .env_remove("CERTCTL_SECRET")
        .env_remove("CERTCTL_ENCODING_SECRET")
        .env_remove("CERTCTL_NEW_SECRET")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "certctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--raw"])
        .args(args)
        .output()
        .expect("redis-cli runs (it comes with redis-server)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rekey_converts_a_store_to_tyks_key_format_and_back_resumably() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let at = generated_at();
    let target = ["--redis", url.as_str(), "--encoding-secret", SECRET];
    let add = |file: &str, format: &str| {
        let path = vector_path(file);
        let mut args = vec!["add", "--org", "org1", "--at", &at, "--key-format", format];
        args.extend(target);
        args.push(&path);
        ok(&args).trim().to_owned()
    };
    let modern = add("leaf-p256-traditional.bundle.pem", "modern");
    let legacy = add("leaf-rsa2048-pkcs8.bundle.pem", "legacy");
    let record = |id: &str| redis_cli(&server, &["GET", &format!("cert-raw-{id}")]);
    assert!(record(&modern).contains("-----BEGIN CERTGATE ENCRYPTED PRIVATE KEY-----"));
    let tyk = record(&legacy);
    assert!(
        tyk.contains(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,"
        ),
        "{tyk}"
    );

    let rekey = |format: &str| {
        let mut args = vec!["rekey", "--key-format", format];
        args.extend(target);
        ok(&args)
    };
    let report = rekey("legacy");
    assert!(
        report.starts_with("rekeyed 1, unchanged 1, failed 0\n"),
        "{report}"
    );
    assert!(report.contains("\"legacy\""), "{report}");
    for id in [&modern, &legacy] {
        let text = record(id);
        assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{text}");
        assert!(!text.contains("CERTGATE"), "{text}");
    }
    // Done already: running it again changes nothing (an interrupted run resumes this way).
    assert!(rekey("legacy").starts_with("rekeyed 0, unchanged 2, failed 0\n"));
    let mut args = vec!["list", "--detailed", "--org", "org1"];
    args.extend(target);
    let listed = ok(&args);
    assert!(!listed.contains("problem"), "{listed}");

    // And back.
    assert!(rekey("modern").starts_with("rekeyed 2, unchanged 0, failed 0\n"));
    for id in [&modern, &legacy] {
        assert!(record(id).contains("CERTGATE ENCRYPTED PRIVATE KEY"));
    }
}

#[test]
fn reindex_indexes_records_old_tyk_wrote_in_every_org() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let stored =
        std::fs::read_to_string(vector_path("leaf-p256-traditional.tyk-stored.pem")).unwrap();
    let ids = [
        format!("orgA{}", "a".repeat(64)),
        format!("orgA{}", "b".repeat(64)),
        format!("orgB{}", "c".repeat(64)),
    ];
    for id in &ids {
        redis_cli(&server, &["SET", &format!("cert-raw-{id}"), &stored]);
    }
    let url = server.url();
    let target = ["--redis", url.as_str(), "--encoding-secret", SECRET];
    let mut args = vec!["reindex"];
    args.extend(target);
    let report = ok(&args);
    assert!(
        report.starts_with("orgs 2, records 3, index entries added 3, "),
        "{report}"
    );
    let index_a = redis_cli(&server, &["LRANGE", "cert-orgA-index", "0", "-1"]);
    let mut entries: Vec<&str> = index_a.lines().collect();
    entries.sort_unstable();
    assert_eq!(
        entries,
        [format!("raw-{}", ids[0]), format!("raw-{}", ids[1])]
    );
    assert_eq!(
        redis_cli(&server, &["GET", "cert-orgA-index-migrated"]).trim(),
        "1"
    );
    let mut args = vec!["list"];
    args.extend(target);
    let listed = ok(&args);
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
    let mut args = vec!["reindex"];
    args.extend(target);
    assert!(ok(&args).contains("index entries added 0"));
}
