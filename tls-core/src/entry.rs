//! What an upload or a stored record holds: a certificate chain with an optional private key, or
//! a standalone public key. One generic type serves both, so IDs and metadata come from the same
//! code whether the key is in plaintext ([`Upload`]) or encrypted ([`Record`]).

use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

use crate::id::{CertId, Fingerprint, OrgId};
use crate::key::PrivateKey;
use crate::meta::Metadata;
use crate::seal::StoredKey;

/// A parsed upload: certificates with an optional plaintext key, or a public key.
pub type Upload = Entry<PrivateKey>;
/// A stored record: certificates with an optional encrypted key, or a public key.
pub type Record = Entry<StoredKey>;

/// A certificate chain (leaf first) with an optional private key of type `K`, or a standalone
/// public key. Built only by parsing, so the chain parses, the key matches the leaf, and the
/// metadata is computed once.
#[derive(Debug)]
pub struct Entry<K> {
    chain: Vec<CertificateDer<'static>>,
    public_key: Option<SubjectPublicKeyInfoDer<'static>>,
    key: Option<K>,
    meta: Metadata,
}

impl<K> Entry<K> {
    pub(crate) fn chain_of(
        chain: Vec<CertificateDer<'static>>,
        key: Option<K>,
        meta: Metadata,
    ) -> Self {
        Self {
            chain,
            public_key: None,
            key,
            meta,
        }
    }

    pub(crate) fn public_key_of(spki: SubjectPublicKeyInfoDer<'static>, meta: Metadata) -> Self {
        Self {
            chain: Vec::new(),
            public_key: Some(spki),
            key: None,
            meta,
        }
    }

    /// SHA-256 of the leaf's DER (of the SPKI DER for a public key).
    pub fn fingerprint(&self) -> Fingerprint {
        self.meta.fingerprint
    }

    /// The certificate ID under `org`.
    pub fn id(&self, org: &OrgId) -> CertId {
        CertId::new(org.clone(), self.fingerprint())
    }

    /// Metadata of the leaf (or public key). Never includes key material.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The certificate chain, leaf first, in upload order; empty for a public key.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The standalone public key, for a public-key entry.
    pub fn public_key(&self) -> Option<&SubjectPublicKeyInfoDer<'static>> {
        self.public_key.as_ref()
    }

    /// The private key, if one goes with the leaf.
    pub fn key(&self) -> Option<&K> {
        self.key.as_ref()
    }

    pub(crate) fn map_key<L>(self, key: Option<L>) -> Entry<L> {
        Entry {
            chain: self.chain,
            public_key: self.public_key,
            key,
            meta: self.meta,
        }
    }
}
