//! With `security.private_certificate_key_format: "legacy"`, the store the gateway builds from its
//! configuration writes private keys exactly as Tyk does, so Tyk nodes sharing the Redis read
//! them. Checked with a real Redis and independently of tls-core: the record's bytes are read
//! over RESP, the key derived with OpenSSL's `EVP_BytesToKey(MD5)` (`openssl enc -P`) and the
//! key decrypted with `openssl enc -aes-256-cbc -d`, as Go's `x509.DecryptPEMBlock` does. The
//! secret is the control API `secret`, which Tyk falls back to when
//! `private_certificate_encoding_secret` is empty.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gateway_runtime::GatewayConfig;
use test_support::redis::RedisServer;
use test_support::vectors::read as vector;
use tls_core::OrgId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CONTROL_SECRET: &str = "control secret, used for keys too";

/// `GET key` over RESP, reading the whole bulk reply.
async fn redis_get(port: u16, key: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    stream.write_all(command.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        if text.starts_with("$-1\r\n") {
            return None;
        }
        if let Some((len, rest)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n")) {
            let len: usize = len.parse().unwrap();
            if rest.len() >= len + 2 {
                return Some(rest[..len].to_owned());
            }
        }
    }
}

/// Runs `openssl` and returns its standard output; panics with its error output on failure.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The DER of the first block labelled `label` (exactly) in `text`.
fn block_der(text: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let start = text.find(&begin).unwrap() + begin.len();
    let end = text[start..].find("-----END").unwrap() + start;
    STANDARD
        .decode(text[start..end].split_whitespace().collect::<String>())
        .unwrap()
}

/// The key block Tyk's `x509.EncryptPEMBlock` writes: returns (IV, ciphertext), checking the
/// layout byte for byte on the way.
fn tyk_key_block(record: &str) -> ([u8; 16], Vec<u8>) {
    let begin = "\n\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n";
    let at = record
        .find(begin)
        .unwrap_or_else(|| panic!("no Tyk key block after a blank line: {record}"));
    assert!(
        record[..at].ends_with("-----END CERTIFICATE-----"),
        "certificates come first"
    );
    let block = &record[at + begin.len()..];
    let mut lines = block.split('\n');
    assert_eq!(lines.next(), Some("Proc-Type: 4,ENCRYPTED"));
    let dek = lines.next().unwrap();
    let iv_hex = dek
        .strip_prefix("DEK-Info: AES-256-CBC,")
        .unwrap_or_else(|| panic!("{dek}"));
    assert_eq!(iv_hex.len(), 32);
    assert!(
        iv_hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "Go writes the IV in lower-case hex: {iv_hex}"
    );
    assert_eq!(lines.next(), Some(""), "a blank line after the headers");
    let mut b64 = String::new();
    let mut ended = false;
    for line in lines.by_ref() {
        if line == "-----END ENCRYPTED PRIVATE KEY-----" {
            ended = true;
            break;
        }
        assert!(line.len() <= 64, "64-column base64: {line}");
        b64.push_str(line);
    }
    assert!(ended);
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [""],
        "the record ends after the block"
    );
    let mut iv = [0u8; 16];
    for (i, byte) in iv.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&iv_hex[2 * i..2 * i + 2], 16).unwrap();
    }
    (iv, STANDARD.decode(b64).unwrap())
}

/// Decrypts like Go's `x509.DecryptPEMBlock`, with the `openssl` command line only.
fn openssl_decrypt(
    dir: &Path,
    iv: &[u8; 16],
    ciphertext: &[u8],
    password: &str,
) -> Option<Vec<u8>> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // EVP_BytesToKey(MD5, salt = the IV's first 8 bytes, 1 round): `openssl enc -P` prints it.
    let derived = openssl(&[
        "enc",
        "-aes-256-cbc",
        "-md",
        "md5",
        "-S",
        &hex(&iv[..8]),
        "-pass",
        &format!("pass:{password}"),
        "-P",
    ]);
    let derived = String::from_utf8(derived).unwrap();
    let key = derived
        .lines()
        .find_map(|l| l.trim().strip_prefix("key="))
        .unwrap()
        .trim()
        .to_owned();
    let input = dir.join("ciphertext.bin");
    let output = dir.join("plain.der");
    std::fs::write(&input, ciphertext).unwrap();
    let status = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            &key,
            "-iv",
            &hex(iv),
            "-in",
        ])
        .arg(&input)
        .arg("-out")
        .arg(&output)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    status.success().then(|| std::fs::read(&output).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_setting_writes_keys_a_tyk_node_decrypts_with_the_control_secret() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let text = format!(
        r#"{{"secret": "{CONTROL_SECRET}",
            "storage": {{"type": "redis", "host": "127.0.0.1", "port": {}}},
            "security": {{"private_certificate_key_format": "legacy"}}}}"#,
        server.port()
    );
    let config = GatewayConfig::from_json(&text, Path::new("tyk.conf"), Vec::new()).unwrap();
    let store = gateway_runtime::store_from_config(&config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (bundle, key_label) in [
        ("leaf-p256-traditional.bundle.pem", "EC PRIVATE KEY"),
        ("leaf-rsa2048-pkcs8.bundle.pem", "PRIVATE KEY"),
    ] {
        let upload = vector(bundle);
        let id = store
            .add(&upload, &OrgId::new("5e9d9544a1dcd60001d0ed20").unwrap())
            .await
            .unwrap();
        let record = redis_get(server.port(), &format!("cert-raw-{id}"))
            .await
            .expect("the record is stored under Tyk's key");
        let (iv, ciphertext) = tyk_key_block(&record);
        let plain = openssl_decrypt(dir.path(), &iv, &ciphertext, CONTROL_SECRET)
            .expect("decrypts with Tyk's algorithm and the control secret");
        // Tyk encrypts the key's DER exactly as uploaded.
        assert_eq!(plain, block_der(&upload, key_label), "{bundle}");
        // A wrong secret does not give the key back.
        let wrong = openssl_decrypt(dir.path(), &iv, &ciphertext, "another secret");
        assert_ne!(wrong.as_deref(), Some(plain.as_slice()), "{bundle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_stays_modern() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let text = format!(
        r#"{{"secret": "{CONTROL_SECRET}",
            "storage": {{"type": "redis", "host": "127.0.0.1", "port": {}}}}}"#,
        server.port()
    );
    let config = GatewayConfig::from_json(&text, Path::new("tyk.conf"), Vec::new()).unwrap();
    let store = gateway_runtime::store_from_config(&config).await.unwrap();
    let id = store
        .add(&vector("leaf-p256-traditional.bundle.pem"), &OrgId::EMPTY)
        .await
        .unwrap();
    let record = redis_get(server.port(), &format!("cert-raw-{id}"))
        .await
        .unwrap();
    assert!(record.contains("-----BEGIN CERTGATE ENCRYPTED PRIVATE KEY-----"));
}
