//! Ordering one name: the ordering lock, the account, the challenge answers published through
//! the coordinator, a fresh key, the certificate stored and committed under the lock's fence.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use cert_store::CertStore;
use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use tls_core::{
    CertId, EncodingSecret, Fingerprint, KeyEncoding, KeyFormat, OrgId, PrivateKey, StoredKey,
};
use zeroize::Zeroizing;

use crate::challenge::{ANSWER_REUSE, Dns01Solver};
use crate::config::{AcmeSettings, ChallengeKind, KeyType};
use crate::coordinator::{Commit, Coordinator, Lock, http01_key, tls_alpn01_key};
use crate::error::AcmeError;

/// How long a published challenge answer lives.
const CHALLENGE_TTL: Duration = Duration::from_secs(600);
/// Prefix of the sealed account record's text.
const SEALED_ACCOUNT_PREFIX: &str = "certgate-acme-account-v1:";

/// A certificate obtained and committed for a name.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub(crate) id: CertId,
    /// The name's previous certificate, already deleted from the store.
    pub(crate) previous: Option<CertId>,
}

/// A published challenge answer, withdrawn when the order ends.
enum Published {
    Coordinator(String),
    Dns { record: String, value: String },
}

pub(crate) struct Issuer {
    pub(crate) settings: Arc<AcmeSettings>,
    pub(crate) store: CertStore,
    pub(crate) coordinator: Arc<dyn Coordinator>,
    pub(crate) secret: Arc<EncodingSecret>,
    pub(crate) dns: Option<Arc<dyn Dns01Solver>>,
    account: tokio::sync::Mutex<Option<Account>>,
}

impl Issuer {
    pub(crate) fn new(
        settings: Arc<AcmeSettings>,
        store: CertStore,
        coordinator: Arc<dyn Coordinator>,
        secret: Arc<EncodingSecret>,
        dns: Option<Arc<dyn Dns01Solver>>,
    ) -> Self {
        Self {
            settings,
            store,
            coordinator,
            secret,
            dns,
            account: tokio::sync::Mutex::new(None),
        }
    }

    /// Orders a certificate for `name` under the name's lock; `Busy` when another process holds it.
    pub(crate) async fn issue(&self, name: &str) -> Result<Issued, AcmeError> {
        let ttl = self.settings.lock_ttl;
        let lock = self
            .coordinator
            .acquire(name, ttl)
            .await?
            .ok_or_else(|| AcmeError::Busy {
                name: name.to_owned(),
            })?;
        // Keeps the lock alive while the order runs; a process that dies stops extending it.
        let heartbeat = {
            let (coordinator, lock) = (Arc::clone(&self.coordinator), lock.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match coordinator.extend(&lock, ttl).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(error) => tracing::warn!(%error, "cannot extend an ACME ordering lock"),
                    }
                }
            })
        };
        let result = self.order(name, &lock).await;
        heartbeat.abort();
        if let Err(error) = self.coordinator.release(&lock).await {
            tracing::warn!(%error, name, "cannot release an ACME ordering lock; it expires by itself");
        }
        result
    }

    async fn order(&self, name: &str, lock: &Lock) -> Result<Issued, AcmeError> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(name.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        tracing::info!(name, "ACME order placed");
        let mut published = Vec::new();
        let answered = self.answer(name, &mut order, &mut published).await;
        let outcome = match answered {
            Ok(()) => self.finish(name, &mut order).await,
            Err(error) => Err(error),
        };
        for item in published {
            let withdrawn = match &item {
                Published::Coordinator(key) => self.coordinator.remove_challenge(key).await,
                Published::Dns { record, value } => match &self.dns {
                    Some(dns) => dns.clean_up(record, value).await,
                    None => Ok(()),
                },
            };
            if let Err(error) = withdrawn {
                tracing::warn!(%error, name, "cannot withdraw a challenge answer");
            }
        }
        let pem = outcome?;
        let id = self.store.add(&pem, &self.settings.org).await?;
        match self.coordinator.commit(lock, &id.to_string()).await? {
            Commit::Committed { previous } => {
                let previous = previous.and_then(|p| p.parse::<CertId>().ok());
                if let Some(previous) = &previous
                    && let Err(error) = self.store.delete(previous).await
                {
                    tracing::warn!(%error, name, "cannot delete the replaced certificate");
                }
                tracing::info!(name, id = %id, "ACME certificate stored");
                Ok(Issued { id, previous })
            }
            Commit::Superseded => {
                // A newer holder took over: this copy must not linger beside its certificate.
                if let Err(error) = self.store.delete(&id).await {
                    tracing::warn!(%error, name, "cannot delete a superseded certificate");
                }
                Err(AcmeError::Superseded {
                    name: name.to_owned(),
                })
            }
        }
    }

    /// Publishes an answer for every pending authorization and tells the CA to validate.
    async fn answer(
        &self,
        name: &str,
        order: &mut instant_acme::Order,
        published: &mut Vec<Published>,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Validation {
                        name: name.to_owned(),
                        reason: format!("the authorization is {other:?}").to_lowercase(),
                        kind: None,
                    });
                }
            }
            let offered: Vec<ChallengeType> = authorization
                .challenges
                .iter()
                .map(|c| c.r#type.clone())
                .collect();
            let kind = self
                .settings
                .challenges
                .iter()
                .copied()
                .filter(|k| *k != ChallengeKind::Dns01 || self.dns.is_some())
                .find(|k| offered.contains(&challenge_type(*k)))
                .ok_or_else(|| AcmeError::NoUsableChallenge {
                    name: name.to_owned(),
                })?;
            let mut challenge = authorization
                .challenge(challenge_type(kind))
                .ok_or_else(|| AcmeError::NoUsableChallenge {
                    name: name.to_owned(),
                })?;
            let key_authorization = challenge.key_authorization();
            match kind {
                ChallengeKind::Http01 | ChallengeKind::TlsAlpn01 => {
                    let key = match kind {
                        ChallengeKind::Http01 => http01_key(&challenge.token),
                        _ => tls_alpn01_key(name),
                    };
                    self.coordinator
                        .put_challenge(&key, key_authorization.as_str(), CHALLENGE_TTL)
                        .await?;
                    published.push(Published::Coordinator(key));
                    if kind == ChallengeKind::TlsAlpn01 {
                        // Every process reuses a looked-up tls-alpn-01 answer ("none pending",
                        // or a previous order's) for ANSWER_REUSE: once that has passed, each
                        // of them sees this one.
                        tokio::time::sleep(ANSWER_REUSE + Duration::from_millis(250)).await;
                    }
                }
                ChallengeKind::Dns01 => {
                    let dns = self
                        .dns
                        .as_ref()
                        .ok_or_else(|| AcmeError::NoUsableChallenge {
                            name: name.to_owned(),
                        })?;
                    let record = format!("_acme-challenge.{name}");
                    let value = key_authorization.dns_value();
                    dns.present(&record, &value).await?;
                    published.push(Published::Dns { record, value });
                }
            }
            challenge.set_ready().await?;
        }
        Ok(())
    }

    /// Waits for validation, finalises with a fresh key and returns certificate chain and key.
    async fn finish(
        &self,
        name: &str,
        order: &mut instant_acme::Order,
    ) -> Result<Zeroizing<String>, AcmeError> {
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        // An order whose authorization failed comes back as the order's problem document.
        let status =
            order
                .poll_ready(&retries)
                .await
                .map_err(|error| match AcmeError::from(error) {
                    AcmeError::Refused { kind, detail } => AcmeError::Validation {
                        name: name.to_owned(),
                        reason: detail,
                        kind: Some(kind).filter(|k| !k.is_empty()),
                    },
                    other => other,
                })?;
        if status != OrderStatus::Ready {
            let (reason, kind) = self.failure_reason(order).await;
            return Err(AcmeError::Validation {
                name: name.to_owned(),
                reason,
                kind,
            });
        }
        let key = generate_key(self.settings.key_type)?;
        let csr = rcgen::CertificateParams::new(vec![name.to_owned()])
            .and_then(|params| params.serialize_request(&key))
            .map_err(|_| AcmeError::Ca("cannot build the certificate request".to_owned()))?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&retries).await?;
        Ok(Zeroizing::new(format!(
            "{}\n{}",
            chain.trim_end(),
            key.serialize_pem()
        )))
    }

    /// The CA's explanation of a failed validation, and the first failed challenge's problem
    /// type.
    async fn failure_reason(&self, order: &mut instant_acme::Order) -> (String, Option<String>) {
        let mut reasons = Vec::new();
        let mut kind = None;
        let mut authorizations = order.authorizations();
        while let Some(Ok(authorization)) = authorizations.next().await {
            for challenge in &authorization.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(
                        problem
                            .detail
                            .clone()
                            .unwrap_or_else(|| problem.to_string()),
                    );
                    kind = kind.or_else(|| problem.r#type.clone());
                }
            }
        }
        if reasons.is_empty() {
            ("the order did not become ready".to_owned(), None)
        } else {
            (reasons.join("; "), kind)
        }
    }

    /// Where the CA's renewal information (RFC 9773) puts `leaf`'s renewal: a random moment in
    /// its suggested window, and how long that answer holds; `None` when the CA does not offer
    /// renewal information.
    pub(crate) async fn suggested_renewal(
        &self,
        leaf: &rustls_pki_types::CertificateDer<'_>,
        random: f64,
    ) -> Result<Option<(time::OffsetDateTime, Duration)>, AcmeError> {
        let account = self.account().await?;
        let Ok(id) = instant_acme::CertificateIdentifier::try_from(leaf) else {
            return Ok(None);
        };
        match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let window = info.suggested_window;
                let span = (window.end - window.start).max(time::Duration::ZERO);
                Ok(Some((
                    window.start + span * random.clamp(0.0, 1.0),
                    retry_after,
                )))
            }
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The account: from the coordinator, or created at the CA and stored (sealed) there.
    pub(crate) async fn account(&self) -> Result<Account, AcmeError> {
        let mut cached = self.account.lock().await;
        if let Some(account) = &*cached {
            return Ok(account.clone());
        }
        let directory = &self.settings.directory_url;
        let account = match self.coordinator.account(directory).await? {
            Some(sealed) => self.open_account(&sealed).await?,
            None => {
                let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
                let external = self
                    .settings
                    .external_account
                    .as_ref()
                    .map(|(id, key)| ExternalAccountKey::new(id.clone(), key));
                let (account, credentials) = self
                    .account_builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        external.as_ref(),
                    )
                    .await?;
                let sealed = self.seal_account(&credentials)?;
                let stored = self.coordinator.put_account(directory, &sealed).await?;
                if stored == sealed {
                    tracing::info!("ACME account created");
                    account
                } else {
                    // Another process stored its account first: everyone uses that one.
                    self.open_account(&stored).await?
                }
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    fn account_record_id(&self) -> CertId {
        let label = format!("acme account {}", self.settings.directory_url);
        CertId::new(OrgId::EMPTY, Fingerprint::of(label.as_bytes()))
    }

    fn seal_account(&self, credentials: &AccountCredentials) -> Result<String, AcmeError> {
        let json = Zeroizing::new(
            serde_json::to_vec(credentials)
                .map_err(|_| AcmeError::Account("cannot encode the account".to_owned()))?,
        );
        let key = PrivateKey::new(KeyEncoding::Pkcs8, json.to_vec());
        match StoredKey::seal(
            &key,
            &self.account_record_id(),
            &self.secret,
            KeyFormat::Modern,
        ) {
            Ok(StoredKey::Modern(blob)) => Ok(format!(
                "{SEALED_ACCOUNT_PREFIX}{}",
                base64::engine::general_purpose::STANDARD.encode(blob)
            )),
            _ => Err(AcmeError::Account(
                "cannot encrypt the account key".to_owned(),
            )),
        }
    }

    async fn open_account(&self, sealed: &str) -> Result<Account, AcmeError> {
        let credentials = self.unseal_account(sealed)?;
        Ok(self
            .account_builder()?
            .from_credentials(credentials)
            .await?)
    }

    fn unseal_account(&self, sealed: &str) -> Result<AccountCredentials, AcmeError> {
        let blob = sealed
            .strip_prefix(SEALED_ACCOUNT_PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| AcmeError::Account("the record is damaged".to_owned()))?;
        let key = StoredKey::Modern(blob)
            .open(&self.account_record_id(), &self.secret)
            .map_err(|_| {
                AcmeError::Account(
                    "it does not decrypt: is the encoding secret the one the fleet uses?"
                        .to_owned(),
                )
            })?;
        serde_json::from_slice(key.secret_der())
            .map_err(|_| AcmeError::Account("the record is damaged".to_owned()))
    }

    /// The account client, over this workspace's crypto provider (`tls_core::crypto`) always:
    /// instant-acme's own client takes the process's default provider, which is ambiguous (a
    /// panic) when both *ring* and aws-lc-rs are compiled in.
    fn account_builder(&self) -> Result<AccountBuilder, AcmeError> {
        let mut roots = rustls::RootCertStore::empty();
        if self.settings.ca_roots.is_empty() {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(AcmeError::Ca(
                    "no system CA certificates were found to verify the ACME CA's HTTPS (install them, or set http_server_options.acme.ca_root)".to_owned(),
                ));
            }
        }
        for root in &self.settings.ca_roots {
            roots
                .add(root.clone())
                .map_err(|_| AcmeError::config("ca_root", "not a usable root certificate"))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(tls_core::default_provider())
            .with_safe_default_protocol_versions()
            .map_err(|_| AcmeError::config("ca_root", "no TLS version available"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, BodyWrapper<Bytes>>(connector);
        Ok(Account::builder_with_http(Box::new(client)))
    }
}

/// A fresh private key of `key_type` for the certificate.
fn generate_key(key_type: KeyType) -> Result<rcgen::KeyPair, AcmeError> {
    let failed = |_| AcmeError::Ca("cannot generate a private key".to_owned());
    match key_type {
        KeyType::EcdsaP256 => {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)
        }
        #[cfg(feature = "aws-lc-rs")]
        KeyType::Rsa2048 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(failed)
        }
        // Settings made in code can name it; validated configuration cannot.
        #[cfg(not(feature = "aws-lc-rs"))]
        KeyType::Rsa2048 => Err(AcmeError::config(
            "key_type",
            "rsa-2048 needs a build with the aws-lc-rs feature (ring cannot generate RSA keys)",
        )),
    }
}

fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use cert_store::MemoryStorage;

    use super::*;
    use crate::coordinator::MemoryCoordinator;

    fn issuer(secret: &str) -> Issuer {
        let settings = AcmeSettings::new("https://ca.example/dir", &["a.example"]).unwrap();
        let store = CertStore::builder(Arc::new(MemoryStorage::new())).build();
        Issuer::new(
            Arc::new(settings),
            store,
            Arc::new(MemoryCoordinator::default()),
            Arc::new(EncodingSecret::new(secret)),
            None,
        )
    }

    #[test]
    fn keys_of_each_type_are_generated_and_rsa_needs_aws_lc_rs() {
        let ecdsa = generate_key(KeyType::EcdsaP256).unwrap();
        assert_eq!(ecdsa.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let rsa = generate_key(KeyType::Rsa2048);
        if cfg!(feature = "aws-lc-rs") {
            use rustls_pki_types::pem::PemObject as _;
            let rsa = rsa.unwrap();
            assert_eq!(rsa.algorithm(), &rcgen::PKCS_RSA_SHA256);
            // A 2048-bit modulus: the PKCS #1 public key is 270 bytes.
            assert_eq!(rsa.public_key_raw().len(), 270);
            let der =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(rsa.serialize_pem().as_bytes())
                    .unwrap();
            let key = tls_core::default_provider()
                .key_provider
                .load_private_key(der)
                .expect("rustls signs with it");
            assert_eq!(key.algorithm(), rustls::SignatureAlgorithm::RSA);
        } else {
            assert!(
                matches!(
                    rsa,
                    Err(AcmeError::Config {
                        field: "key_type",
                        ..
                    })
                ),
                "refused on ring"
            );
        }
    }

    #[test]
    fn the_account_is_sealed_with_the_encoding_secret_and_only_that_secret_opens_it() {
        let (_, der) = instant_acme::Key::generate_pkcs8().unwrap();
        let key_text =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(der.secret_pkcs8_der());
        let json = serde_json::json!({
            "id": "https://ca.example/acct/1",
            "key_pkcs8": key_text,
            "directory": "https://ca.example/dir",
        });
        let credentials: AccountCredentials = serde_json::from_value(json).unwrap();
        let sealed = issuer("fleet secret").seal_account(&credentials).unwrap();
        assert!(sealed.starts_with(SEALED_ACCOUNT_PREFIX));
        assert!(
            !sealed.contains(&key_text),
            "the key is not stored in the clear"
        );
        let opened = issuer("fleet secret").unseal_account(&sealed).unwrap();
        assert_eq!(
            serde_json::to_value(&opened).unwrap()["key_pkcs8"],
            key_text.as_str()
        );
        let Err(error) = issuer("another secret").unseal_account(&sealed) else {
            panic!("another secret opened the account");
        };
        assert!(error.to_string().contains("encoding secret"), "{error}");
        assert!(issuer("fleet secret").unseal_account("garbage").is_err());
    }
}
