//! Keeps `docs/FORMAT.md` true. An independent decryptor of the modern key format, built from
//! `ring`'s HKDF and AEAD primitives and the parameters it reads from the document (not from
//! tls-core), opens records sealed by tls-core; the document's worked examples are recomputed
//! from their inputs and decrypted by tls-core; and records are laid out as the document says.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use common::{KEY_BUNDLES, Vectors, hex, pem_blocks, pem_encode, unhex};
use md5::{Digest, Md5};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::{hkdf, hmac};
use tls_core::{
    EncodingSecret, KeyEncoding, KeyFormat, LEGACY_LABEL, MODERN_LABEL, OrgId, Record, Upload,
};

const FORMAT_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMAT.md");

/// The document.
struct Doc {
    text: String,
}

impl Doc {
    fn load() -> Self {
        let text = std::fs::read_to_string(FORMAT_MD)
            .unwrap_or_else(|e| panic!("cannot read {FORMAT_MD}: {e}"));
        Self { text }
    }

    /// The first back-quoted value in the second cell of the table row whose first cell is
    /// `name`.
    fn param(&self, name: &str) -> String {
        let row = self
            .text
            .lines()
            .find(|l| l.split('|').nth(1).is_some_and(|cell| cell.trim() == name))
            .unwrap_or_else(|| panic!("FORMAT.md has no table row {name:?}"));
        let cell = row.split('|').nth(2).expect("a value cell");
        cell.split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("FORMAT.md row {name:?}: no `value` in {cell:?}"))
            .to_owned()
    }

    fn param_usize(&self, name: &str) -> usize {
        self.param(name)
            .parse()
            .unwrap_or_else(|e| panic!("FORMAT.md row {name:?}: not a number: {e}"))
    }

    /// The content of the first fenced block after the HTML comment `<!-- marker -->`.
    fn fenced_after(&self, marker: &str) -> String {
        let comment = format!("<!-- {marker} -->");
        let after = self
            .text
            .split_once(&comment)
            .unwrap_or_else(|| panic!("FORMAT.md has no {comment}"))
            .1;
        let open = after.find("```").expect("a fenced block after the marker");
        let body_start = open + after[open..].find('\n').expect("fence line ends") + 1;
        let len = after[body_start..]
            .find("```")
            .expect("fenced block closes");
        after[body_start..body_start + len].to_owned()
    }

    /// A worked example: `name: value` lines, where indented lines continue the value.
    fn example(&self, marker: &str) -> Example {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in self.fenced_after(marker).lines() {
            if line.starts_with(char::is_whitespace) {
                let name = last.as_ref().expect("a continuation follows a value");
                values
                    .get_mut(name)
                    .expect("value exists")
                    .push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                values.insert(name.trim().to_owned(), value.trim().to_owned());
                last = Some(name.trim().to_owned());
            }
        }
        Example { values }
    }
}

/// The values of a worked example.
struct Example {
    values: BTreeMap<String, String>,
}

impl Example {
    fn raw(&self, name: &str) -> &str {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("worked example has no {name:?}"))
    }

    /// A quoted text value.
    fn text(&self, name: &str) -> String {
        let raw = self.raw(name);
        raw.strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{name}: {raw:?} is not quoted"))
            .to_owned()
    }

    /// A hex value.
    fn bytes(&self, name: &str) -> Vec<u8> {
        unhex(self.raw(name))
    }
}

/// The modern format as FORMAT.md specifies it.
struct ModernSpec {
    label: String,
    version: u8,
    salt_len: usize,
    nonce_len: usize,
    tag_len: usize,
    extract_salt: Vec<u8>,
    info_prefix: Vec<u8>,
    okm_len: usize,
    codes: Vec<(u8, KeyEncoding)>,
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl ModernSpec {
    fn from_doc(doc: &Doc) -> Self {
        assert_eq!(doc.param("HKDF hash"), "SHA-256");
        assert_eq!(doc.param("AEAD"), "AES-256-GCM");
        let code =
            |name: &str| u8::try_from(doc.param_usize(name)).expect("encoding codes are bytes");
        Self {
            label: doc.param("PEM label"),
            version: u8::try_from(doc.param_usize("version byte")).expect("a byte"),
            salt_len: doc.param_usize("salt length"),
            nonce_len: doc.param_usize("nonce length"),
            tag_len: doc.param_usize("tag length"),
            extract_salt: doc.param("HKDF-Extract salt").into_bytes(),
            info_prefix: doc.param("HKDF-Expand info prefix").into_bytes(),
            okm_len: doc.param_usize("HKDF output length"),
            codes: vec![
                (code("encoding code PKCS#8"), KeyEncoding::Pkcs8),
                (code("encoding code PKCS#1"), KeyEncoding::Pkcs1),
                (code("encoding code SEC1"), KeyEncoding::Sec1),
            ],
        }
    }

    fn header_len(&self) -> usize {
        2 + self.salt_len + self.nonce_len
    }

    /// Steps 2 and 3: HKDF-Extract, then HKDF-Expand with the record's salt.
    fn record_key(&self, secret: &[u8], salt: &[u8]) -> Vec<u8> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &self.extract_salt).extract(secret);
        let info = [self.info_prefix.as_slice(), salt];
        let mut key = vec![0u8; self.okm_len];
        prk.expand(&info, Len(self.okm_len))
            .expect("HKDF-Expand")
            .fill(&mut key)
            .expect("fill");
        key
    }

    /// Steps 1 to 5 of "Decryption".
    fn open(&self, blob: &[u8], secret: &[u8], id: &str) -> Result<(KeyEncoding, Vec<u8>), String> {
        let header_len = self.header_len();
        if blob.len() < header_len + self.tag_len {
            return Err(format!("{} bytes is too short", blob.len()));
        }
        if blob[0] != self.version {
            return Err(format!("version {}", blob[0]));
        }
        let encoding = self
            .codes
            .iter()
            .find(|(code, _)| *code == blob[1])
            .map(|(_, encoding)| *encoding)
            .ok_or_else(|| format!("unknown encoding code {}", blob[1]))?;
        let salt = &blob[2..2 + self.salt_len];
        let nonce = &blob[2 + self.salt_len..header_len];
        let key = self.record_key(secret, salt);
        let mut aad = blob[..header_len].to_vec();
        aad.extend_from_slice(id.as_bytes());
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("AES-256 key"));
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("96-bit nonce");
        let mut body = blob[header_len..].to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| "tag check failed".to_owned())?;
        Ok((encoding, plain.to_vec()))
    }
}

/// The vectors' Ed25519 key and certificate that the worked examples use.
fn example_key_and_certificate(v: &Vectors) -> (Vec<u8>, String) {
    let key = pem_blocks(&v.read("leaf-ed25519-pkcs8.key.pem"))
        .remove(0)
        .der;
    (key, v.read("leaf-ed25519-pkcs8.crt.pem"))
}

#[test]
fn format_md_parameters_name_the_crate_labels() {
    let doc = Doc::load();
    let spec = ModernSpec::from_doc(&doc);
    assert_eq!(spec.label, MODERN_LABEL);
    assert_eq!(spec.okm_len, 32, "AES-256 takes a 32-byte key");
    assert_eq!(spec.nonce_len, 12, "AES-GCM takes a 96-bit nonce");
    assert!(
        doc.text
            .contains(&format!("PEM label `{LEGACY_LABEL}` with two headers")),
        "the legacy section names the label"
    );
}

#[test]
fn independent_decryptor_following_format_md_opens_records_sealed_by_tls_core() {
    let v = Vectors::load();
    let spec = ModernSpec::from_doc(&Doc::load());
    let secrets: [&[u8]; 4] = [
        b"",
        b"s",
        b"a longer encoding secret",
        &[0xff, 0x00, 0x80, 0x7f],
    ];
    for (index, (file, encoding)) in KEY_BUNDLES.iter().enumerate() {
        for (secret_index, secret) in secrets.iter().enumerate() {
            let org = ["", "org1", "5e9d9544a1dcd60001d0ed20"][(index + secret_index) % 3];
            let what = format!("{file}, secret {secret_index}, org {org:?}");
            let upload = v.upload(file);
            let id = upload.id(&OrgId::new(org).expect("valid org"));
            let key_der = upload.key().expect("a key").secret_der().to_vec();
            let text = upload
                .seal(&id, &EncodingSecret::new(secret), KeyFormat::Modern)
                .expect("seals")
                .encode();

            let block = pem_blocks(&text).pop().expect("a key block");
            assert_eq!(block.label, spec.label, "{what}");
            assert!(block.headers.is_empty(), "{what}: no headers");
            assert_eq!(
                block.der.len(),
                spec.header_len() + key_der.len() + spec.tag_len,
                "{what}: blob length"
            );
            let (opened_encoding, opened) = spec
                .open(&block.der, secret, &id.to_string())
                .unwrap_or_else(|e| panic!("{what}: the document's decryptor fails: {e}"));
            assert_eq!(opened, key_der, "{what}: key DER");
            assert_eq!(opened_encoding, *encoding, "{what}: encoding code");

            // The ID is bound as the document says: any other ID fails.
            let other = format!("x{id}");
            assert!(spec.open(&block.der, secret, &other).is_err(), "{what}");
        }
    }
}

#[test]
fn modern_worked_example_in_format_md_is_true() {
    let v = Vectors::load();
    let doc = Doc::load();
    let spec = ModernSpec::from_doc(&doc);
    let ex = doc.example("worked-example:modern");
    let secret = ex.text("secret");
    let id = ex.text("id");
    let key_der = ex.bytes("key DER");
    let (vector_key, certificate) = example_key_and_certificate(&v);
    assert_eq!(key_der, vector_key, "the example encrypts the vectors' key");
    let upload = Upload::parse(&certificate, v.generated_at).expect("certificate parses");
    assert_eq!(
        upload.id(&OrgId::new("org1").expect("org")).to_string(),
        id,
        "the example's ID is the certificate's under org1"
    );

    let salt = ex.bytes("salt");
    let nonce = ex.bytes("nonce");
    assert_eq!(ex.bytes("version"), [spec.version]);
    assert_eq!(ex.bytes("code"), [1]);
    assert_eq!(salt.len(), spec.salt_len);
    assert_eq!(nonce.len(), spec.nonce_len);

    // Step 2: PRK = HMAC-SHA256(extract salt, secret).
    let prk = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &spec.extract_salt),
        secret.as_bytes(),
    );
    assert_eq!(hex(prk.as_ref()), hex(&ex.bytes("PRK")), "PRK");
    // Step 3: K = HMAC-SHA256(PRK, info prefix || salt || 0x01), and HKDF gives the same.
    let mut t1 = spec.info_prefix.clone();
    t1.extend_from_slice(&salt);
    t1.push(1);
    let k = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &t1);
    assert_eq!(hex(k.as_ref()), hex(&ex.bytes("K")), "K");
    assert_eq!(spec.record_key(secret.as_bytes(), &salt), ex.bytes("K"));
    // Step 4: AAD = header || ID.
    let mut header = [ex.bytes("version"), ex.bytes("code"), salt, nonce].concat();
    let mut aad = header.clone();
    aad.extend_from_slice(id.as_bytes());
    assert_eq!(hex(&aad), hex(&ex.bytes("AAD")), "AAD");
    // Step 5, and the blob layout.
    let ciphertext = ex.bytes("ciphertext");
    let tag = ex.bytes("tag");
    assert_eq!(ciphertext.len(), key_der.len());
    assert_eq!(tag.len(), spec.tag_len);
    header.extend_from_slice(&ciphertext);
    header.extend_from_slice(&tag);
    let blob = header;
    let (encoding, plain) = spec
        .open(&blob, secret.as_bytes(), &id)
        .expect("the example decrypts");
    assert_eq!(plain, key_der);
    assert_eq!(encoding, KeyEncoding::Pkcs8);

    // The PEM block shown is the blob, and tls-core decrypts it.
    let pem = doc.fenced_after("worked-example:modern-pem");
    let block = pem_blocks(&pem).remove(0);
    assert_eq!(block.label, MODERN_LABEL);
    assert_eq!(
        block.der, blob,
        "the PEM block is version || code || ... || tag"
    );
    assert_eq!(pem, pem_encode(MODERN_LABEL, &[], &blob), "64-column PEM");
    let record = Record::decode(&format!("{certificate}\n{pem}")).expect("record decodes");
    let opened = record
        .private_key(
            &id.parse().expect("ID parses"),
            &EncodingSecret::new(&secret),
        )
        .expect("tls-core decrypts the worked example");
    assert_eq!(opened.secret_der(), key_der.as_slice());
    assert_eq!(opened.encoding(), KeyEncoding::Pkcs8);
}

#[test]
fn legacy_worked_example_in_format_md_is_true() {
    let v = Vectors::load();
    let doc = Doc::load();
    let ex = doc.example("worked-example:legacy");
    let secret = ex.text("secret");
    let key_der = ex.bytes("key DER");
    let (vector_key, certificate) = example_key_and_certificate(&v);
    assert_eq!(key_der, vector_key);
    let iv = ex.bytes("IV");
    assert_eq!(iv.len(), 16);
    assert_eq!(ex.bytes("salt"), iv[..8], "salt = IV[0..8]");

    // K = MD5(secret || salt) || MD5(D1 || secret || salt).
    let salt = &iv[..8];
    let d1 = Md5::new()
        .chain_update(secret.as_bytes())
        .chain_update(salt)
        .finalize();
    let d2 = Md5::new()
        .chain_update(d1)
        .chain_update(secret.as_bytes())
        .chain_update(salt)
        .finalize();
    let k = [d1.as_slice(), d2.as_slice()].concat();
    assert_eq!(hex(&k), hex(&ex.bytes("K")), "K");

    // AES-256-CBC, then PKCS#7 padding of 1 to 16 bytes.
    let ciphertext = ex.bytes("ciphertext");
    assert!(!ciphertext.is_empty() && ciphertext.len().is_multiple_of(16));
    let padded = cbc::Decryptor::<aes::Aes256>::new_from_slices(&k, &iv)
        .expect("key and IV sizes")
        .decrypt_padded_vec::<NoPadding>(&ciphertext)
        .expect("whole blocks");
    let pad = *padded.last().expect("not empty");
    assert!((1..=16).contains(&pad), "padding length {pad}");
    let (plain, padding) = padded.split_at(padded.len() - usize::from(pad));
    assert!(padding.iter().all(|b| *b == pad), "PKCS#7 padding");
    assert_eq!(plain, key_der.as_slice());

    // The PEM block shown carries the headers and the ciphertext, and tls-core decrypts it.
    let pem = doc.fenced_after("worked-example:legacy-pem");
    let dek_info = format!("AES-256-CBC,{}", hex(&iv));
    assert_eq!(
        pem,
        pem_encode(
            LEGACY_LABEL,
            &[("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", &dek_info)],
            &ciphertext
        )
    );
    let record = Record::decode(&format!("{certificate}\n{pem}")).expect("record decodes");
    let id = record.id(&OrgId::new("org1").expect("org"));
    let opened = record
        .private_key(&id, &EncodingSecret::new(&secret))
        .expect("tls-core decrypts the worked example");
    assert_eq!(opened.secret_der(), key_der.as_slice());
    assert_eq!(opened.encoding(), KeyEncoding::Pkcs8);
}

#[test]
fn records_are_laid_out_as_format_md_describes() {
    let v = Vectors::load();
    let secret = EncodingSecret::new("layout");
    for (file, _) in KEY_BUNDLES {
        for format in [KeyFormat::Modern, KeyFormat::Legacy] {
            let upload = v.upload(file);
            let id = upload.id(&OrgId::EMPTY);
            let chain: Vec<Vec<u8>> = upload.chain().iter().map(|c| c.to_vec()).collect();
            let text = upload.seal(&id, &secret, format).expect("seals").encode();
            let key_block = pem_blocks(&text).pop().expect("a key block");
            let headers: Vec<(&str, &str)> = key_block
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            match format {
                KeyFormat::Legacy => {
                    assert_eq!(key_block.label, LEGACY_LABEL);
                    assert_eq!(headers.len(), 2);
                    assert_eq!(headers[0], ("Proc-Type", "4,ENCRYPTED"));
                    assert_eq!(headers[1].0, "DEK-Info");
                    let iv = headers[1].1.strip_prefix("AES-256-CBC,").expect("cipher");
                    assert_eq!(iv, iv.to_lowercase(), "tls-core writes lowercase hex");
                    assert_eq!(unhex(iv).len(), 16);
                    assert!(key_block.der.len().is_multiple_of(16));
                }
                _ => assert_eq!(key_block.label, MODERN_LABEL),
            }
            let mut blocks: Vec<String> = chain
                .iter()
                .map(|der| pem_encode("CERTIFICATE", &[], der))
                .collect();
            blocks.push(pem_encode(&key_block.label, &headers, &key_block.der));
            assert_eq!(text, blocks.join("\n"), "{file}, {format:?}");
        }
    }

    let upload = v.upload("pubkey-p256.pem");
    let spki = upload.public_key().expect("a public key").as_ref().to_vec();
    let id = upload.id(&OrgId::EMPTY);
    let text = upload
        .seal(&id, &secret, KeyFormat::Modern)
        .expect("seals")
        .encode();
    assert_eq!(text, pem_encode("PUBLIC KEY", &[], &spki));
    assert_eq!(
        BASE64.encode(&spki),
        pem_blocks(&text)[0]
            .text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    );
}
