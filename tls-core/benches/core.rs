//! Costs of the pure certificate logic on the add and load paths: the certificate ID, parsing an
//! upload, decoding a stored record and decrypting its key (modern and legacy formats), and
//! loading a chain and key into rustls.
//!
//! Inputs are the shared test vectors (`testdata/vectors` in the repository, or the folder
//! named by `$CERTGATE_VECTORS`), read at the vectors' clock, 2026-11-29T04:57:32Z.
//!
//! Run: `cargo bench -p certgate-tls-core --bench core -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use test_support::vectors::read as vector;
use time::OffsetDateTime;
use time::macros::datetime;
use tls_core::{CertId, EncodingSecret, Fingerprint, KeyFormat, OrgId, Record, Upload};

/// The vectors' `generated_at`: every vector is valid then.
const VECTORS_NOW: OffsetDateTime = datetime!(2026-11-29 04:57:32 UTC);
/// The vectors' `encoding_secret`, which decrypts their `*.tyk-stored.pem` records.
const VECTORS_SECRET: &str = "vector-secret-7f3a";
const ORG: &str = "5e9d9544a1dcd60001d0ed20";

fn certificate_id(c: &mut Criterion) {
    let upload = Upload::parse(&vector("leaf-p256-traditional.bundle.pem"), VECTORS_NOW)
        .expect("the P-256 vector parses");
    let leaf = upload.chain()[0].to_vec();
    let org = OrgId::new(ORG).expect("a valid org");
    let fingerprint = Fingerprint::of(&leaf);
    let mut group = c.benchmark_group("id");
    group.bench_function(
        format!("Fingerprint::of leaf DER ({} bytes)", leaf.len()),
        |b| b.iter(|| Fingerprint::of(black_box(&leaf))),
    );
    group.bench_function("CertId::new + to_string", |b| {
        b.iter(|| CertId::new(black_box(&org).clone(), black_box(fingerprint)).to_string())
    });
    group.bench_function("Fingerprint::of + CertId to_string", |b| {
        b.iter(|| CertId::new(org.clone(), Fingerprint::of(black_box(&leaf))).to_string())
    });
    group.finish();
}

fn upload_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("upload parse");
    for (label, file) in [
        ("ECDSA P-256 bundle", "leaf-p256-traditional.bundle.pem"),
        ("RSA-2048 bundle", "leaf-rsa2048-pkcs8.bundle.pem"),
    ] {
        let text = vector(file);
        Upload::parse(&text, VECTORS_NOW).expect("the vector parses");
        group.bench_function(label, |b| {
            b.iter(|| Upload::parse(black_box(&text), VECTORS_NOW).expect("parses"))
        });
    }
    group.finish();
}

/// A record in the modern format, sealed here from a vector bundle (the vectors' stored records
/// are in Tyk's legacy format).
fn modern_record(file: &str, org: &OrgId, secret: &EncodingSecret) -> (CertId, String) {
    let upload = Upload::parse(&vector(file), VECTORS_NOW).expect("the vector parses");
    let id = upload.id(org);
    let record = upload
        .seal(&id, secret, KeyFormat::Modern)
        .expect("the key seals");
    (id, record.encode())
}

fn record_decode_and_key(c: &mut Criterion) {
    let secret = EncodingSecret::new(VECTORS_SECRET);
    let org = OrgId::new(ORG).expect("a valid org");
    let no_org = OrgId::new("").expect("the empty org");
    let mut cases: Vec<(&str, CertId, String)> = Vec::new();
    for (label, file) in [
        ("modern P-256", "leaf-p256-traditional.bundle.pem"),
        ("modern RSA-2048", "leaf-rsa2048-pkcs8.bundle.pem"),
    ] {
        let (id, text) = modern_record(file, &org, &secret);
        cases.push((label, id, text));
    }
    for (label, file) in [
        ("legacy P-256", "leaf-p256-traditional.tyk-stored.pem"),
        ("legacy RSA-2048", "leaf-rsa2048-pkcs8.tyk-stored.pem"),
    ] {
        let text = vector(file);
        let record = Record::decode(&text).expect("the stored vector decodes");
        cases.push((label, record.id(&no_org), text));
    }

    let mut group = c.benchmark_group("record");
    for (label, id, text) in &cases {
        let record = Record::decode(text).expect("decodes");
        record.private_key(id, &secret).expect("the key decrypts");
        group.bench_function(format!("decode {label}"), |b| {
            b.iter(|| Record::decode(black_box(text)).expect("decodes"))
        });
        group.bench_function(format!("private_key {label}"), |b| {
            b.iter(|| {
                record
                    .private_key(black_box(id), &secret)
                    .expect("decrypts")
            })
        });
        group.bench_function(format!("decode + private_key {label}"), |b| {
            b.iter(|| {
                Record::decode(black_box(text))
                    .expect("decodes")
                    .private_key(id, &secret)
                    .expect("decrypts")
            })
        });
    }
    group.finish();
}

fn certified_key(c: &mut Criterion) {
    let provider = tls_core::default_provider();
    let secret = EncodingSecret::new(VECTORS_SECRET);
    let org = OrgId::new(ORG).expect("a valid org");
    let mut group = c.benchmark_group("certified_key");
    for (label, file) in [
        ("P-256", "leaf-p256-traditional.bundle.pem"),
        ("RSA-2048", "leaf-rsa2048-pkcs8.bundle.pem"),
    ] {
        let upload = Upload::parse(&vector(file), VECTORS_NOW).expect("the vector parses");
        group.bench_function(format!("Upload {label}"), |b| {
            b.iter(|| upload.certified_key(&provider).expect("loads"))
        });
        let (id, text) = modern_record(file, &org, &secret);
        let record = Record::decode(&text).expect("decodes");
        group.bench_function(format!("Record (modern) {label}"), |b| {
            b.iter(|| {
                record
                    .certified_key(&id, &secret, &provider)
                    .expect("loads")
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    certificate_id,
    upload_parse,
    record_decode_and_key,
    certified_key
);
criterion_main!(benches);
