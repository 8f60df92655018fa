//! Runs the built `certctl` against the shared test vectors (`testdata/vectors` in the
//! workspace, or `$CERTGATE_VECTORS`) and checks its answers against `manifest.json`.
//!
//! Every time-dependent check passes the manifest's `generated_at` as `--at`, never the wall
//! clock. A missing vectors folder fails the tests: it does not skip them.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use test_support::vectors::{Case, Vectors};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const CERTCTL: &str = env!("CARGO_BIN_EXE_certctl");
const WRONG_SECRET: &str = "not-the-encoding-secret";

/// What these tests do with the shared vectors: run certctl on a case.
trait RunCertctl {
    fn upload_instant(&self, case: &Case) -> String;
    fn run(&self, case: &Case, args: &[&str]) -> Output;
    fn path(&self, file: &str) -> String;
}

impl RunCertctl for Vectors {
    /// The instant at which an accepted case is uploaded: `generated_at`, or three days before
    /// `not_after` for a certificate that had already expired then (the `expired*` cases).
    fn upload_instant(&self, case: &Case) -> String {
        let not_after = case.not_after.as_deref().map(instant);
        match not_after {
            Some(not_after) if not_after <= self.generated_at => {
                rfc3339(not_after - Duration::days(3))
            }
            _ => self.manifest.generated_at.clone(),
        }
    }

    /// Runs certctl on the case's file; several files are concatenated and sent on stdin.
    fn run(&self, case: &Case, args: &[&str]) -> Output {
        match case.files.as_slice() {
            [file] => {
                let path = self.dir.join(file);
                let mut all: Vec<&str> = args.to_vec();
                let path = path.to_str().expect("vector paths are UTF-8");
                all.push(path);
                certctl(&all, None)
            }
            files => {
                let text: Vec<u8> = files
                    .iter()
                    .flat_map(|f| {
                        std::fs::read(self.dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
                    })
                    .collect();
                let mut all: Vec<&str> = args.to_vec();
                all.push("-");
                certctl(&all, Some(&text))
            }
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().expect("UTF-8 path").to_owned()
    }
}

fn certctl(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(CERTCTL)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {CERTCTL}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("certctl output")
}

fn instant(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("formattable instant")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
fn success(output: &Output, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: certctl failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn inspect_json(vectors: &Vectors, case: &Case, extra: &[&str]) -> Value {
    let at = vectors.upload_instant(case);
    let mut args = vec!["inspect", "--json", "--at", &at, "--org", &case.org_id];
    args.extend_from_slice(extra);
    let stdout = success(&vectors.run(case, &args), &case.name);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{}: not one JSON object ({e}): {stdout}", case.name))
}

#[test]
fn id_prints_the_expected_id_for_every_accepted_case() {
    let vectors = Vectors::load();
    let mut checked = 0;
    for case in vectors.accepted() {
        let Some(expect_id) = &case.expect_id else {
            continue;
        };
        let at = vectors.upload_instant(case);
        let output = vectors.run(case, &["id", "--org", &case.org_id, "--at", &at]);
        assert_eq!(
            success(&output, &case.name),
            format!("{expect_id}\n"),
            "{}",
            case.name
        );
        checked += 1;
    }
    assert!(checked > 0, "no case with expect_id");
}

#[test]
fn inspect_json_matches_the_manifest_metadata() {
    let vectors = Vectors::load();
    for case in vectors.accepted() {
        let json = inspect_json(&vectors, case, &[]);
        let name = &case.name;
        let field = |key: &str| {
            json.get(key)
                .unwrap_or_else(|| panic!("{name}: no {key:?} in {json}"))
        };
        let check = |key: &str, expected: Option<Value>| {
            if let Some(expected) = expected {
                assert_eq!(field(key), &expected, "{name}: {key}");
            }
        };
        check("id", case.expect_id.clone().map(Value::from));
        check("fingerprint", case.fingerprint.clone().map(Value::from));
        check("spki_sha256", case.spki_sha256_hex.clone().map(Value::from));
        check("subject_cn", case.subject_cn.clone().map(Value::from));
        check("issuer_cn", case.issuer_cn.clone().map(Value::from));
        check("dns_names", case.dns_names.clone().map(Value::from));
        check("is_ca", case.is_ca.map(Value::from));
        check("not_before", case.not_before.clone().map(Value::from));
        check("not_after", case.not_after.clone().map(Value::from));
        check("has_private", case.has_private.map(Value::from));
        check("chain_len", case.chain_len.map(Value::from));
        check(
            "is_public_key",
            Some(Value::from(case.is_public_key.unwrap_or(false))),
        );
        for key in ["key_type", "validity", "days_remaining"] {
            field(key);
        }
        assert!(json.get("key_decrypts").is_none(), "{name}: no --secret");
        if case.is_public_key == Some(true) {
            for key in ["not_before", "not_after", "validity", "days_remaining"] {
                assert_eq!(field(key), &Value::Null, "{name}: {key}");
            }
        }
    }
}

#[test]
fn every_refused_case_exits_1_with_an_error_and_prints_nothing() {
    let vectors = Vectors::load();
    let at = &vectors.manifest.generated_at;
    let mut checked = 0;
    for case in vectors.refused() {
        for args in [
            &["id", "--at", at][..],
            &["inspect", "--at", at][..],
            &["inspect", "--json", "--at", at][..],
        ] {
            let output = vectors.run(case, args);
            assert_eq!(output.status.code(), Some(1), "{} {args:?}", case.name);
            assert!(output.stdout.is_empty(), "{}: printed to stdout", case.name);
            let stderr = text(&output.stderr);
            assert!(
                stderr.starts_with("certctl: ") && stderr.trim().len() > "certctl: ".len(),
                "{}: stderr {stderr:?}",
                case.name
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no expect_error case");
}

#[test]
fn stored_records_report_whether_their_key_decrypts() {
    let vectors = Vectors::load();
    let secret = &vectors.manifest.encoding_secret;
    let mut checked = 0;
    for case in vectors.accepted().filter(|c| c.decrypt_with.is_some()) {
        let right = case.decrypt_with.as_deref().unwrap_or(secret);
        let json = inspect_json(&vectors, case, &["--secret", right]);
        assert_eq!(
            json["key_decrypts"],
            Value::Bool(true),
            "{}: {json}",
            case.name
        );
        assert_eq!(json["source"], "stored_record", "{}", case.name);
        assert!(json.get("key_error").is_none(), "{}", case.name);

        let json = inspect_json(&vectors, case, &["--secret", WRONG_SECRET]);
        assert_eq!(
            json["key_decrypts"],
            Value::Bool(false),
            "{}: {json}",
            case.name
        );
        assert!(
            json["key_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}: {json}",
            case.name
        );
        checked += 1;
    }
    assert!(
        vectors
            .manifest
            .cases
            .iter()
            .any(|c| c.files[0].ends_with(".tyk-stored.pem")),
        "no *.tyk-stored.pem case"
    );
    assert!(checked > 0, "no decrypt_with case");
}

#[test]
fn every_tyk_stored_file_decrypts_with_the_encoding_secret_only() {
    let vectors = Vectors::load();
    let at = &vectors.manifest.generated_at;
    let secret = &vectors.manifest.encoding_secret;
    let stored = vectors
        .manifest
        .cases
        .iter()
        .filter(|c| c.files.iter().any(|f| f.ends_with(".tyk-stored.pem")));
    for case in stored {
        let output = vectors.run(case, &["inspect", "--at", at, "--secret", secret]);
        let stdout = success(&output, &case.name);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("Key decrypts:") && l.ends_with("yes")),
            "{}: {stdout}",
            case.name
        );
        let output = vectors.run(case, &["inspect", "--at", at, "--secret", WRONG_SECRET]);
        let stdout = success(&output, &case.name);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("Key decrypts:") && l.contains(" no: ")),
            "{}: {stdout}",
            case.name
        );
    }
}

#[test]
fn modern_record_decrypts_only_under_its_own_id() {
    let vectors = Vectors::load();
    let case = vectors.case("leaf-ed25519-pkcs8");
    let pem = std::fs::read_to_string(vectors.dir.join(&case.files[0])).expect("vector file");
    let upload = tls_core::Upload::parse(&pem, vectors.generated_at).expect("upload");
    let id = upload.id(&tls_core::OrgId::new("org1").expect("org"));
    let secret = tls_core::EncodingSecret::new("modern-secret");
    let stored = upload
        .seal(&id, &secret, tls_core::KeyFormat::Modern)
        .expect("seal")
        .encode();
    assert!(stored.contains(tls_core::MODERN_LABEL));
    let at = &vectors.manifest.generated_at;
    let inspect = |org: &str, secret: &str| {
        let args = [
            "inspect", "--json", "--at", at, "--org", org, "--secret", secret, "-",
        ];
        let stdout = success(&certctl(&args, Some(stored.as_bytes())), "modern record");
        serde_json::from_str::<Value>(&stdout).expect("JSON")
    };
    let json = inspect("org1", "modern-secret");
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["key_format"], "modern");
    assert_eq!(json["key_decrypts"], true, "{json}");
    assert_eq!(inspect("org2", "modern-secret")["key_decrypts"], false);
    assert_eq!(inspect("org1", WRONG_SECRET)["key_decrypts"], false);
}

#[test]
fn uploads_have_no_stored_key_to_decrypt() {
    let vectors = Vectors::load();
    let case = vectors.case("leaf-p384-pkcs8");
    let json = inspect_json(&vectors, case, &["--secret", WRONG_SECRET]);
    assert_eq!(json["source"], "upload");
    assert_eq!(json["key_decrypts"], Value::Null, "{json}");
}

#[test]
fn expired_bundle_is_refused_at_generated_at_but_accepted_before_its_expiry() {
    let vectors = Vectors::load();
    let case = vectors.case("expired");
    let not_after = instant(
        case.not_after
            .as_deref()
            .expect("expired case has not_after"),
    );
    assert!(
        not_after <= vectors.generated_at,
        "the expired case is not expired"
    );

    let output = vectors.run(case, &["inspect", "--at", &vectors.manifest.generated_at]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("expired"), "{stderr}");
    assert!(stderr.contains("expired.bundle.pem"), "{stderr}");

    // An ID is not a validity check: removing an expired certificate needs its ID.
    let output = vectors.run(
        case,
        &[
            "id",
            "--org",
            &case.org_id,
            "--at",
            &vectors.manifest.generated_at,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        text(&output.stdout).trim(),
        case.expect_id.as_deref().expect("expired case has an ID")
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("note:") && stderr.contains("expired"),
        "{stderr}"
    );

    let before = rfc3339(not_after - Duration::days(3));
    let json = inspect_json(&vectors, case, &[]);
    assert_eq!(json["at"], before.as_str());
    assert_eq!(json["validity"], "expiring_soon");
    assert_eq!(json["days_remaining"], 3);
}

#[test]
fn validity_and_days_remaining_are_computed_at_the_given_instant() {
    let vectors = Vectors::load();
    let expectations = [
        ("expiring-10d", "expiring_soon", 10),
        ("expiring-30d", "expiring_soon", 30),
        ("valid-31d", "valid", 31),
        ("not-yet-valid", "not_yet_valid", 400),
        ("leaf-p256-traditional", "valid", 3650),
    ];
    for (name, validity, days) in expectations {
        let case = vectors.case(name);
        let json = inspect_json(&vectors, case, &[]);
        assert_eq!(json["at"], vectors.manifest.generated_at.as_str(), "{name}");
        assert_eq!(json["validity"], validity, "{name}");
        assert_eq!(json["days_remaining"], days, "{name}");
    }

    // A narrower warning window turns "expiring soon" into "valid".
    let json = inspect_json(
        &vectors,
        vectors.case("expiring-10d"),
        &["--warn-days", "9"],
    );
    assert_eq!(json["validity"], "valid");

    // A stored record is not refused once expired: validity says so, with negative days.
    let case = vectors.case("leaf-p256-traditional_tyk_stored");
    let path = vectors.path(&case.files[0]);
    let output = certctl(
        &["inspect", "--json", "--at", "2036-11-26T05:27:32Z", &path],
        None,
    );
    let json: Value = serde_json::from_str(&success(&output, &case.name)).expect("JSON");
    assert_eq!(json["validity"], "expired");
    assert_eq!(json["days_remaining"], -1);
}

#[test]
fn dash_reads_the_file_from_standard_input() {
    let vectors = Vectors::load();
    let case = vectors.case("valid-31d");
    let pem = std::fs::read(vectors.dir.join(&case.files[0])).expect("vector file");
    let at = &vectors.manifest.generated_at;
    let output = certctl(&["id", "--org", &case.org_id, "--at", at, "-"], Some(&pem));
    assert_eq!(
        success(&output, "stdin"),
        format!("{}\n", case.expect_id.as_deref().expect("expect_id"))
    );
}

#[test]
fn text_inspect_shows_the_fields_and_never_the_private_key() {
    let vectors = Vectors::load();
    let case = vectors.case("leaf-rsa2048-traditional");
    let at = &vectors.manifest.generated_at;
    let stdout = success(
        &vectors.run(case, &["inspect", "--org", &case.org_id, "--at", at]),
        &case.name,
    );
    for label in [
        "ID:",
        "Fingerprint:",
        "Subject CN:",
        "Subject:",
        "Issuer:",
        "Serial:",
        "DNS names:",
        "Not before:",
        "Not after:",
        "Validity:",
        "CA:",
        "Key type:",
        "Signature algorithm:",
        "SPKI pin (hex):",
        "SPKI pin (HPKP):",
        "Private key:",
        "Chain length:",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(label)),
            "no {label}: {stdout}"
        );
    }
    assert!(stdout.contains(case.expect_id.as_deref().expect("expect_id")));
    assert!(stdout.contains("sha256/"), "{stdout}");
    assert!(stdout.contains("RSA 2048"), "{stdout}");

    let key = std::fs::read_to_string(vectors.dir.join("leaf-rsa2048-traditional.key.pem"))
        .expect("key file");
    let secret = &vectors.manifest.encoding_secret;
    let stored = vectors.path("leaf-rsa2048-traditional.tyk-stored.pem");
    let outputs = [
        stdout,
        success(
            &vectors.run(case, &["inspect", "--json", "--at", at]),
            "json",
        ),
        success(
            &certctl(&["inspect", "--at", at, "--secret", secret, &stored], None),
            "stored",
        ),
        success(
            &certctl(
                &["inspect", "--json", "--at", at, "--secret", secret, &stored],
                None,
            ),
            "stored json",
        ),
    ];
    for output in outputs {
        assert!(!output.contains("PRIVATE KEY"), "{output}");
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
        {
            assert!(!output.contains(line), "key material printed: {output}");
        }
    }
}

#[test]
fn unreadable_file_exits_1_naming_it() {
    let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/no-such-file.pem");
    let output = certctl(&["id", missing], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("certctl: {missing}: ")),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["id"][..],
        &["frobnicate", "x.pem"][..],
        &["id", "--at", "yesterday", "x.pem"][..],
        &["id", "--org", "a/b", "x.pem"][..],
        &["inspect", "--warn-days", "-1", "x.pem"][..],
    ] {
        let output = certctl(args, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn readme_command_inspects_the_demo_certificate() {
    let demo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tls-core/tests/data/demo.pem"
    );
    // The demo certificate is valid for a century: this one check may use the wall clock.
    let stdout = success(&certctl(&["inspect", demo], None), "demo");
    assert!(stdout.starts_with("ID:"), "{stdout}");
    assert!(stdout.contains("demo.certgate.test"), "{stdout}");
}
