//! Answering challenges: `http-01` bodies and `tls-alpn-01` certificates looked up in the shared
//! coordinator (so any process of a fleet answers for the one that ordered), and the `dns-01`
//! provider trait.
//!
//! A `tls-alpn-01` ClientHello is something anyone can send, so its lookups are bounded: the
//! answer for a name (a challenge certificate, or none) is reused for [`ANSWER_REUSE`], so a
//! name costs at most one coordinator lookup per second however many hellos name it (and
//! concurrent hellos share one lookup); names this process does not manage share a budget of
//! [`UNMANAGED_LOOKUPS_PER_SECOND`] lookups, beyond which they are answered "no challenge"
//! without any lookup. A reused "none" could hide a challenge published just after it was looked
//! up: the ordering process therefore waits [`ANSWER_REUSE`] (and a margin) after publishing a
//! `tls-alpn-01` answer before it asks the CA to validate, so every process's earlier answer
//! has expired by then. This bounds the I/O without a local copy of the pending challenges
//! kept in step with the coordinator (which would need a notification channel per process).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::coordinator::{Coordinator, http01_key, tls_alpn01_key};
use crate::error::AcmeError;

/// The ALPN protocol of `tls-alpn-01` (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The path prefix of `http-01` requests.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// How long a `tls-alpn-01` answer looked up for a name (a certificate, or that no challenge is
/// pending) is reused.
pub(crate) const ANSWER_REUSE: Duration = Duration::from_secs(1);

/// Coordinator lookups per second, shared by all the names this process does not manage (a
/// challenge another process of the fleet, configured with other names, published).
pub(crate) const UNMANAGED_LOOKUPS_PER_SECOND: u32 = 10;

/// Remembered answers beyond which the expired ones are dropped.
const PRUNE_AT: usize = 1024;

/// The longest `http-01` token looked up. CAs send 43 base64url characters (256 bits); RFC 8555
/// asks for at least 128 bits of entropy.
const LONGEST_TOKEN: usize = 128;

/// Publishes and withdraws `dns-01` TXT records with a DNS provider's API.
///
/// Plug one in with [`AcmeManagerBuilder::dns01`](crate::AcmeManagerBuilder::dns01) and list
/// `dns-01` among the challenges.
///
/// ```
/// use acme::{AcmeError, Dns01Solver};
///
/// /// Writes records through a (here imaginary) provider client.
/// struct MyProvider;
///
/// #[async_trait::async_trait]
/// impl Dns01Solver for MyProvider {
///     async fn present(&self, record_name: &str, value: &str) -> Result<(), AcmeError> {
///         // e.g. client.create_txt(record_name, value, 60).await
///         println!("TXT {record_name} {value}");
///         Ok(())
///     }
///
///     async fn clean_up(&self, record_name: &str, value: &str) -> Result<(), AcmeError> {
///         println!("remove TXT {record_name} {value}");
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Dns01Solver: Send + Sync + 'static {
    /// Publishes `value` as a TXT record at `record_name` (`_acme-challenge.<name>`) and returns
    /// once the provider accepted it (propagation is the CA's to wait for).
    async fn present(&self, record_name: &str, value: &str) -> Result<(), AcmeError>;
    /// Removes the record published by [`present`](Self::present).
    async fn clean_up(&self, record_name: &str, value: &str) -> Result<(), AcmeError>;
}

/// Whether `token` can be an `http-01` token: 1 to [`LONGEST_TOKEN`] base64url characters.
fn is_token(token: &str) -> bool {
    (1..=LONGEST_TOKEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `tls-alpn-01` answer for a name, being looked up or looked up at `since`.
type Answer = Arc<tokio::sync::OnceCell<Option<Arc<ServerConfig>>>>;

/// The `tls-alpn-01` answers reused, and the lookup budget of unmanaged names.
struct Answers {
    by_name: HashMap<String, (Instant, Answer)>,
    /// The current one-second window's start and the unmanaged lookups in it.
    window: (Instant, u32),
}

/// Answers challenges from the shared coordinator: used by the gateway's listeners. Clones
/// share the managed names and the reused answers.
#[derive(Clone)]
pub struct ChallengeResponder {
    coordinator: Arc<dyn Coordinator>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    managed: Arc<RwLock<HashSet<String>>>,
    answers: Arc<Mutex<Answers>>,
}

impl std::fmt::Debug for ChallengeResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeResponder").finish_non_exhaustive()
    }
}

impl ChallengeResponder {
    /// Answers from `coordinator`. Every name is unmanaged until [`manage`](Self::manage)d.
    pub fn new(coordinator: Arc<dyn Coordinator>) -> Self {
        Self {
            coordinator,
            provider: tls_core::default_provider(),
            managed: Arc::default(),
            answers: Arc::new(Mutex::new(Answers {
                by_name: HashMap::new(),
                window: (Instant::now(), 0),
            })),
        }
    }

    /// Adds names this process manages: their `tls-alpn-01` lookups are not limited by the
    /// unmanaged names' budget (only by the reuse of answers).
    pub fn manage<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut managed = self
            .managed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        managed.extend(names.into_iter().map(str::to_ascii_lowercase));
    }

    /// The body to answer `GET /.well-known/acme-challenge/<token>` with, if pending. A token
    /// that is not 1 to 128 base64url characters (a path with `..`, `%2e`, `/`, anything a CA
    /// never sends) is answered `None` without looking anything up.
    pub async fn http01(&self, token: &str) -> Option<String> {
        if !is_token(token) {
            return None;
        }
        match self.coordinator.challenge(&http01_key(token)).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "cannot look up an http-01 challenge");
                None
            }
        }
    }

    /// Whether a ClientHello asks for a `tls-alpn-01` answer: it offers `acme-tls/1` alone.
    pub fn is_tls_alpn01(hello: &ClientHello<'_>) -> bool {
        // RFC 8737, section 3: the validation's ClientHello offers `acme-tls/1` and nothing
        // else. A client that also offers `h2` or `http/1.1` is an ordinary client.
        hello.alpn().is_some_and(|mut protocols| {
            protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
        })
    }

    /// The TLS configuration answering `tls-alpn-01` for `name`, if a challenge is pending: it
    /// offers only `acme-tls/1` and serves the challenge certificate of RFC 8737.
    ///
    /// The answer for a name is reused for a second, and names this process does not manage
    /// share a budget of lookups (see the module's documentation): a flood of hellos costs the
    /// coordinator at most one lookup per managed name and ten for all the other names, per
    /// second.
    pub async fn tls_alpn01_config(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let name = name.to_ascii_lowercase();
        let answer = self.answer_for(&name)?;
        answer
            .get_or_init(|| self.look_up_tls_alpn01(&name))
            .await
            .clone()
    }

    /// The reused answer for `name`, or a new one to look up; `None` when `name` is unmanaged
    /// and the budget of this second is spent.
    fn answer_for(&self, name: &str) -> Option<Answer> {
        let now = Instant::now();
        let managed = self
            .managed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(name);
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((since, answer)) = answers.by_name.get(name)
            && now.duration_since(*since) < ANSWER_REUSE
        {
            return Some(Arc::clone(answer));
        }
        if !managed {
            if now.duration_since(answers.window.0) >= Duration::from_secs(1) {
                answers.window = (now, 0);
            }
            if answers.window.1 >= UNMANAGED_LOOKUPS_PER_SECOND {
                tracing::debug!(
                    name,
                    "tls-alpn-01 lookups for unmanaged names are over budget: not looked up"
                );
                return None;
            }
            answers.window.1 += 1;
        }
        if answers.by_name.len() >= PRUNE_AT {
            answers
                .by_name
                .retain(|_, (since, _)| now.duration_since(*since) < ANSWER_REUSE);
        }
        let answer = Answer::default();
        answers
            .by_name
            .insert(name.to_owned(), (now, Arc::clone(&answer)));
        Some(answer)
    }

    /// Looks up the pending `tls-alpn-01` challenge of `name` and builds its configuration.
    async fn look_up_tls_alpn01(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let key_authorization = match self.coordinator.challenge(&tls_alpn01_key(name)).await {
            Ok(found) => found?,
            Err(error) => {
                tracing::warn!(%error, "cannot look up a tls-alpn-01 challenge");
                return None;
            }
        };
        let certified = match tls_alpn01_certificate(name, &key_authorization, &self.provider) {
            Ok(certified) => certified,
            Err(error) => {
                tracing::warn!(%error, "cannot build a tls-alpn-01 certificate");
                return None;
            }
        };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .ok()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Single(certified)));
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        Some(Arc::new(config))
    }
}

/// The self-signed certificate for `name` carrying the `acmeIdentifier` extension: the SHA-256
/// of the key authorization (RFC 8737, section 3).
fn tls_alpn01_certificate(
    name: &str,
    key_authorization: &str,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let failed = |_| AcmeError::Ca("cannot build the tls-alpn-01 certificate".to_owned());
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(failed)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest.as_ref()));
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| AcmeError::Ca("cannot load the tls-alpn-01 key".to_owned()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing,
    )))
}

#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl ResolvesServerCert for Single {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}
