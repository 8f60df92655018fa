//! A test PKI made with rcgen (ECDSA P-256 keys): root and intermediate CAs, server and client
//! certificates with their chains, at rcgen's default validity (1975 to 4096, which covers any
//! clock) or at a validity around the real clock, and CRLs.
//!
//! Certificates made "for now" read the wall clock ([`now`]): they are for tests that run a
//! gateway or a TLS handshake on the real clock, not for expectations judged at a fixed
//! instant (use the [vectors](crate::vectors) for those).

use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData as _, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use tls_core::{Fingerprint, SpkiPin};

/// The wall clock, for certificates that a real-clock handshake must accept.
pub fn now() -> OffsetDateTime {
    #[allow(
        clippy::disallowed_methods,
        reason = "test certificates are made for the real clock"
    )]
    OffsetDateTime::now_utc()
}

/// From yesterday for a year: a validity that a handshake on the real clock accepts.
pub fn valid_now() -> (OffsetDateTime, OffsetDateTime) {
    let now = now();
    (now - Duration::days(1), now + Duration::days(365))
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// TLS server (`serverAuth`).
    Server,
    /// TLS client (`clientAuth`).
    Client,
}

/// A test certificate authority (root or intermediate).
pub struct TestCa {
    /// Its certificate.
    pub cert: CertificateDer<'static>,
    /// Its certificate as PEM.
    pub cert_pem: String,
    /// Its public key's pin.
    pub pin: SpkiPin,
    /// Its serial number.
    pub serial: u64,
    /// The certificates between a leaf it signs and the root, starting with its own (empty for
    /// a root), as DER and as PEM.
    chain_above: Vec<CertificateDer<'static>>,
    chain_above_pem: String,
    params: CertificateParams,
    key: KeyPair,
}

/// Serial numbers, unique across every certificate this process makes (from 100), so that a CRL
/// revokes exactly what a test names.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(100);

fn next_serial() -> u64 {
    NEXT_SERIAL.fetch_add(1, Ordering::SeqCst)
}

/// A leaf certificate with its chain and key.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// Leaf first, then the intermediates (not the root).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf as PEM.
    pub cert_pem: String,
    /// The chain as PEM, leaf first.
    pub chain_pem: String,
    /// The private key as PKCS#8 PEM.
    pub key_pem: String,
    /// The public key as `PUBLIC KEY` PEM.
    pub public_key_pem: String,
    /// The public key's pin.
    pub pin: SpkiPin,
    /// The leaf's serial number.
    pub serial: u64,
    key_der: Vec<u8>,
}

impl Leaf {
    /// Chain then key, as `CertStore::add` takes them.
    pub fn bundle(&self) -> String {
        format!("{}{}", self.chain_pem, self.key_pem)
    }

    /// The leaf's DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.chain[0].clone()
    }

    /// The private key for rustls.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fn fingerprint(&self) -> String {
        Fingerprint::of(&self.chain[0]).to_hex()
    }
}

impl TestCa {
    /// A self-signed root named `name`, at rcgen's default validity.
    pub fn root(name: &str) -> Self {
        Self::make(name, None, None)
    }

    /// A self-signed root named `name`, valid from `validity.0` to `validity.1`.
    pub fn root_valid(name: &str, validity: (OffsetDateTime, OffsetDateTime)) -> Self {
        Self::make(name, Some(validity), None)
    }

    /// An intermediate CA named `name`, signed by this CA, at rcgen's default validity.
    pub fn intermediate(&self, name: &str) -> Self {
        Self::make(name, None, Some(self))
    }

    /// An intermediate CA named `name`, signed by this CA, valid from `validity.0` to
    /// `validity.1`.
    pub fn intermediate_valid(
        &self,
        name: &str,
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> Self {
        Self::make(name, Some(validity), Some(self))
    }

    fn make(
        name: &str,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
        parent: Option<&TestCa>,
    ) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        let serial = next_serial();
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let (cert, chain_above, chain_above_pem) = match parent {
            None => (params.self_signed(&key).unwrap(), Vec::new(), String::new()),
            Some(parent) => {
                let cert = params.signed_by(&key, &parent.issuer()).unwrap();
                let mut chain = vec![cert.der().clone()];
                chain.extend(parent.chain_above.iter().cloned());
                let pem = format!("{}{}", cert.pem(), parent.chain_above_pem);
                (cert, chain, pem)
            }
        };
        Self {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            pin: SpkiPin::of_spki(&key.subject_public_key_info()),
            serial,
            chain_above,
            chain_above_pem,
            params,
            key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// Its certificate (a copy of [`TestCa::cert`]).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// A leaf for `names` (DNS names or IP addresses; the first is the common name), signed by
    /// this CA, at rcgen's default validity.
    pub fn leaf(&self, names: &[&str], usage: Usage) -> Leaf {
        self.issue(
            names,
            names.first().copied().unwrap_or_default(),
            usage,
            None,
        )
    }

    /// A leaf for `names` with common name `cn`, signed by this CA, valid from `validity.0` to
    /// `validity.1` (rcgen's default when `None`).
    pub fn issue(
        &self,
        names: &[&str],
        cn: &str,
        usage: Usage,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        self.issue_on_key(key, names, cn, usage, validity)
    }

    /// A leaf for `names` on `key` (an RSA key loaded from the vectors, say: rcgen makes ECDSA
    /// keys only), signed by this CA, at rcgen's default validity.
    pub fn leaf_on_key(&self, key: KeyPair, names: &[&str], usage: Usage) -> Leaf {
        let cn = names.first().copied().unwrap_or_default();
        self.issue_on_key(key, names, cn, usage, None)
    }

    fn issue_on_key(
        &self,
        key: KeyPair,
        names: &[&str],
        cn: &str,
        usage: Usage,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        let serial = next_serial();
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain_above.iter().cloned());
        Leaf {
            cert_pem: cert.pem(),
            chain_pem: format!("{}{}", cert.pem(), self.chain_above_pem),
            key_pem: key.serialize_pem(),
            public_key_pem: key.public_key_pem(),
            pin: SpkiPin::of_spki(&key.subject_public_key_info()),
            serial,
            key_der: key.serialize_der(),
            chain,
        }
    }

    /// A server certificate for `names` valid from yesterday for a year.
    pub fn server(&self, names: &[&str]) -> Leaf {
        let cn = names.first().copied().unwrap_or("server");
        self.issue(names, cn, Usage::Server, Some(valid_now()))
    }

    /// A client certificate named `cn` valid from yesterday for a year.
    pub fn client(&self, cn: &str) -> Leaf {
        self.issue(&[], cn, Usage::Client, Some(valid_now()))
    }

    /// A client certificate valid from yesterday for `days` more days.
    pub fn client_expiring_in(&self, cn: &str, days: i64) -> Leaf {
        let (yesterday, _) = valid_now();
        let now = yesterday + Duration::days(1);
        self.issue(
            &[],
            cn,
            Usage::Client,
            Some((yesterday, now + Duration::days(days))),
        )
    }

    /// A server certificate valid from yesterday for `days` more days.
    pub fn server_expiring_in(&self, names: &[&str], days: i64) -> Leaf {
        let (yesterday, _) = valid_now();
        let now = yesterday + Duration::days(1);
        self.issue(
            names,
            names[0],
            Usage::Server,
            Some((yesterday, now + Duration::days(days))),
        )
    }

    /// A client certificate that expired an hour ago.
    pub fn expired_client(&self, cn: &str) -> Leaf {
        let now = now();
        self.issue(
            &[],
            cn,
            Usage::Client,
            Some((now - Duration::days(30), now - Duration::hours(1))),
        )
    }

    /// A CRL revoking `serials`, issued yesterday, next update in 29 days.
    pub fn crl(&self, serials: &[u64]) -> String {
        let (start, _) = valid_now();
        self.crl_between(serials, start, start + Duration::days(30))
    }

    /// A CRL revoking `serials` (revoked at `this_update`), with `this_update` and
    /// `next_update` as given.
    pub fn crl_between(
        &self,
        serials: &[u64],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> String {
        self.crl_signed_by(&self.key, serials, this_update, next_update)
    }

    /// [`TestCa::crl_between`] signed with `key` instead of the CA's key: a forgery in this
    /// CA's name whose signature does not verify (unless `key` is the CA's).
    pub fn crl_signed_by(
        &self,
        key: &KeyPair,
        serials: &[u64],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> String {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&Issuer::from_params(&self.params, key))
            .unwrap()
            .pem()
            .unwrap()
    }
}

/// A client certificate nobody trusts: issued by a CA of its own, which no test trusts.
pub fn stranger() -> Leaf {
    TestCa::root("stranger").client("stranger")
}
