//! The certificate manager: validation, encryption, storage, caching and change propagation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tls_core::{CertId, EncodingSecret, KeyError, KeyFormat, Metadata, OrgId, Record, Upload};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::storage::{CertStorage, Change, Changes, Inserted, Page, PageRequest, PageWalk, Scope};
use crate::usage::{CertUse, UsageIndex};

/// Cache lifetime when the backend pushes change notices (a safety net only).
pub const DEFAULT_CACHE_TTL_NOTIFIED: Duration = Duration::from_secs(300);
/// Cache lifetime when the backend cannot notify.
pub const DEFAULT_CACHE_TTL_UNNOTIFIED: Duration = Duration::from_secs(10);

/// A certificate loaded from the store (or from inline PEM or a file), shared by every user
/// until it changes. Its private key is decrypted the first time TLS needs it, then kept inside
/// rustls' signing key.
pub struct LoadedCert {
    id: CertId,
    record: Record,
    tls: OnceLock<Result<Arc<CertifiedKey>, KeyError>>,
}

impl LoadedCert {
    fn new(id: CertId, record: Record) -> Arc<Self> {
        Arc::new(Self {
            id,
            record,
            tls: OnceLock::new(),
        })
    }

    /// Its ID (org empty for inline PEM and files).
    pub fn id(&self) -> &CertId {
        &self.id
    }

    /// Its metadata.
    pub fn metadata(&self) -> &Metadata {
        self.record.metadata()
    }

    /// The decoded record: chain, public key, encrypted key.
    pub fn record(&self) -> &Record {
        &self.record
    }
}

impl core::fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LoadedCert")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One entry of a detailed listing.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The ID from the index.
    pub id: CertId,
    /// Its metadata, when the record parses.
    pub metadata: Option<Metadata>,
    /// What is wrong with the record, if anything: it does not parse, or its private key does
    /// not decrypt with the configured secret.
    pub problem: Option<StoreError>,
}

/// What a rekey did.
#[derive(Debug, Default)]
pub struct RekeyReport {
    /// Records re-encrypted with the new secret.
    pub rekeyed: usize,
    /// Records already readable with the new secret, in the target format, or without a key.
    pub unchanged: usize,
    /// Records that could not be re-encrypted, with the reason.
    pub failed: Vec<(CertId, StoreError)>,
}

struct Secrets {
    current: Arc<EncodingSecret>,
    previous: Option<Arc<EncodingSecret>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum CacheKey {
    Id(CertId),
    Inline([u8; 32]),
}

struct Inner {
    storage: Arc<dyn CertStorage>,
    secrets: ArcSwap<Secrets>,
    key_format: KeyFormat,
    clock: Arc<dyn Clock>,
    provider: Arc<CryptoProvider>,
    cache: Cache<CacheKey, Arc<LoadedCert>>,
    usage: UsageIndex,
    backend_notifies: bool,
    changes: broadcast::Sender<Change>,
    watcher: OnceLock<JoinHandle<()>>,
    /// IDs whose key was found not to decrypt (each logged once).
    undecryptable: Mutex<HashSet<CertId>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.get() {
            watcher.abort();
        }
    }
}

/// The certificate store: add, look up, list and delete certificates over any [`CertStorage`],
/// with private keys encrypted at rest and a shared in-process cache for TLS.
///
/// Cloning is cheap and clones share everything.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use cert_store::{CertStore, MemoryStorage};
/// use tls_core::{EncodingSecret, OrgId};
///
/// let store = CertStore::builder(Arc::new(MemoryStorage::new()))
///     .encoding_secret(EncodingSecret::new("change me"))
///     .build();
/// let pem = include_str!("../../tls-core/tests/data/demo.pem");
/// let id = store.add(pem, &OrgId::new("org1")?).await?;
/// assert_eq!(store.details(&id).await?.subject.common_name.as_deref(), Some("demo.certgate.test"));
/// let tls_key = store.certified_key(&id).await?; // ready for a rustls resolver
/// assert!(store.delete(&id).await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct CertStore {
    inner: Arc<Inner>,
}

/// Configures a [`CertStore`].
pub struct CertStoreBuilder {
    storage: Arc<dyn CertStorage>,
    secret: EncodingSecret,
    previous_secret: Option<EncodingSecret>,
    key_format: KeyFormat,
    clock: Arc<dyn Clock>,
    provider: Arc<CryptoProvider>,
    cache_ttl: Option<Duration>,
}

impl CertStoreBuilder {
    /// The secret that encrypts private keys (default: empty, which protects nothing).
    pub fn encoding_secret(mut self, secret: EncodingSecret) -> Self {
        self.secret = secret;
        self
    }

    /// A secret that keys may still be encrypted with: tried when the current one fails, and
    /// replaced by [`CertStore::rekey`]. Set it to resume an interrupted rekey.
    pub fn previous_encoding_secret(mut self, secret: EncodingSecret) -> Self {
        self.previous_secret = Some(secret);
        self
    }

    /// The format new keys are written in (default modern; legacy for stores Tyk also reads).
    pub fn key_format(mut self, format: KeyFormat) -> Self {
        self.key_format = format;
        self
    }

    /// The clock that judges expiry at upload (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The rustls crypto provider that loads keys (default: ring).
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// How long a cached certificate lives (default: 300 s when the backend sends change
    /// notices, 10 s when it cannot).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// Builds the store. Inside a Tokio runtime it starts a task that applies the backend's
    /// change notices to the cache; outside one, the cache relies on its TTL.
    pub fn build(self) -> CertStore {
        let notices = self.storage.watch();
        let backend_notifies = notices.is_some();
        let ttl = self.cache_ttl.unwrap_or(if backend_notifies {
            DEFAULT_CACHE_TTL_NOTIFIED
        } else {
            DEFAULT_CACHE_TTL_UNNOTIFIED
        });
        let inner = Arc::new(Inner {
            storage: self.storage,
            secrets: ArcSwap::from_pointee(Secrets {
                current: Arc::new(self.secret),
                previous: self.previous_secret.map(Arc::new),
            }),
            key_format: self.key_format,
            clock: self.clock,
            provider: self.provider,
            cache: Cache::new(ttl),
            usage: UsageIndex::default(),
            backend_notifies,
            changes: broadcast::channel(4096).0,
            watcher: OnceLock::new(),
            undecryptable: Mutex::new(HashSet::new()),
        });
        if let Some(notices) = notices {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let task = runtime.spawn(apply_notices(Arc::downgrade(&inner), notices));
                    let _ = inner.watcher.set(task);
                }
                Err(_) => tracing::warn!(
                    "CertStore built outside a Tokio runtime: change notices are not applied, the cache relies on its TTL"
                ),
            }
        }
        CertStore { inner }
    }
}

/// Applies backend notices to the cache, then passes them on to the store's subscribers.
async fn apply_notices(inner: Weak<Inner>, mut notices: Changes) {
    while let Some(change) = notices.next().await {
        let Some(inner) = inner.upgrade() else { return };
        match change.id() {
            Some(id) => inner.cache.invalidate(&CacheKey::Id(id.clone())),
            // Notices may have been missed (the subscription was lost, e.g. in a failover):
            // everything reloads on its next use, and what cannot be reloaded because the
            // storage is still away keeps serving, as after its TTL.
            None => inner.cache.expire_all(),
        }
        let _ = inner.changes.send(change);
    }
}

impl CertStore {
    /// A builder over `storage`.
    pub fn builder(storage: Arc<dyn CertStorage>) -> CertStoreBuilder {
        CertStoreBuilder {
            storage,
            secret: EncodingSecret::new(""),
            previous_secret: None,
            key_format: KeyFormat::Modern,
            clock: Arc::new(SystemClock),
            provider: tls_core::default_provider(),
            cache_ttl: None,
        }
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn CertStorage> {
        &self.inner.storage
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The usage index: which API uses which certificate.
    pub fn usage(&self) -> &UsageIndex {
        &self.inner.usage
    }

    /// Change notices after they have been applied to this store's cache: every add, delete and
    /// rewrite, from this process and (when the backend notifies) from every other.
    pub fn subscribe(&self) -> Changes {
        Changes::new(self.inner.changes.subscribe())
    }

    /// Validates `pem` (at the clock's now), encrypts its key and stores it under `org`,
    /// atomically. Returns the new ID.
    ///
    /// Idempotent: when the ID is already stored with the same certificate chain (or public
    /// key) and the same private key (or none in both), the add succeeds with that ID, so a
    /// client may retry an add whose outcome it does not know (a timeout). A stored record that
    /// differs (another key, no key, a key this store cannot decrypt) is
    /// [`StoreError::AlreadyExists`].
    pub async fn add(&self, pem: &str, org: &OrgId) -> Result<CertId, StoreError> {
        let (id, record) = self.prepare(pem, org)?;
        match self.inner.storage.insert(&id, &record).await? {
            Inserted::Added => {
                self.local_notice(Change::Added(id.clone()));
                Ok(id)
            }
            Inserted::AlreadyExists if self.stored_as_uploaded(&id, pem).await? => Ok(id),
            Inserted::AlreadyExists => Err(StoreError::AlreadyExists { id }),
        }
    }

    /// Whether the record stored under `id` holds what `pem` uploads: the same chain (or
    /// public key) and the same private key. Keys are compared by their SHA-256 digests,
    /// without data-dependent early exits.
    async fn stored_as_uploaded(&self, id: &CertId, pem: &str) -> Result<bool, StoreError> {
        let Some(text) = self.inner.storage.get(id).await? else {
            return Ok(false);
        };
        let Ok(stored) = Record::decode(&text) else {
            return Ok(false);
        };
        let upload =
            Upload::parse_with_provider(pem, self.inner.clock.now(), &self.inner.provider)?;
        if stored.chain() != upload.chain() || stored.public_key() != upload.public_key() {
            return Ok(false);
        }
        Ok(match (stored.key(), upload.key()) {
            (None, None) => true,
            (Some(_), Some(uploaded)) => {
                let cert = LoadedCert::new(id.clone(), stored);
                self.open_key(&cert).is_ok_and(|opened| {
                    opened.encoding() == uploaded.encoding()
                        && same_secret(opened.secret_der(), uploaded.secret_der())
                })
            }
            _ => false,
        })
    }

    /// Adds many certificates, batching the storage round trips. Results are in input order;
    /// each is as [`CertStore::add`] would give (idempotent for identical uploads).
    pub async fn import(&self, uploads: &[(OrgId, String)]) -> Vec<Result<CertId, StoreError>> {
        let mut results: Vec<Result<CertId, StoreError>> = Vec::with_capacity(uploads.len());
        let mut batch = Vec::new();
        let mut slots = Vec::new();
        for (org, pem) in uploads {
            match self.prepare(pem, org) {
                Ok((id, record)) => {
                    slots.push(results.len());
                    results.push(Ok(id.clone()));
                    batch.push((id, record));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let inserted = self.inner.storage.insert_many(&batch).await;
        for ((slot, (id, _)), outcome) in slots.into_iter().zip(batch).zip(inserted) {
            results[slot] = match outcome {
                Ok(Inserted::Added) => {
                    self.local_notice(Change::Added(id.clone()));
                    Ok(id)
                }
                Ok(Inserted::AlreadyExists) => {
                    match self.stored_as_uploaded(&id, &uploads[slot].1).await {
                        Ok(true) => Ok(id),
                        Ok(false) => Err(StoreError::AlreadyExists { id }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.into()),
            };
        }
        results
    }

    fn prepare(&self, pem: &str, org: &OrgId) -> Result<(CertId, String), StoreError> {
        let upload =
            Upload::parse_with_provider(pem, self.inner.clock.now(), &self.inner.provider)?;
        let id = upload.id(org);
        let secrets = self.inner.secrets.load();
        let record = upload
            .seal(&id, &secrets.current, self.inner.key_format)
            .map_err(|source| StoreError::Key {
                id: id.clone(),
                source,
            })?;
        Ok((id, record.encode()))
    }

    /// Deletes `id`; says whether it existed. This process's cache forgets it at once, others'
    /// when the notice reaches them.
    ///
    /// This process's subscribers get [`Change::Removed`] even when the record was already
    /// gone (lost with the storage's data, say): an explicit delete tells them to drop
    /// whatever copy of it they keep (a gateway keeps the last good copy of each certificate
    /// its configuration references). Other processes hear of deletes that removed a record.
    pub async fn delete(&self, id: &CertId) -> Result<bool, StoreError> {
        let existed = self.inner.storage.delete(id).await?;
        self.inner.cache.invalidate(&CacheKey::Id(id.clone()));
        if existed {
            self.local_notice(Change::Removed(id.clone()));
        } else {
            let _ = self.inner.changes.send(Change::Removed(id.clone()));
        }
        Ok(existed)
    }

    /// The certificate `id`, from the cache or the storage.
    ///
    /// A cached entry is reloaded when its lifetime ends or a [`Change::Resync`] arrives. If the
    /// storage is unreachable then, the cached entry keeps serving; if the storage answers that
    /// the record is gone (it lost its data), this is [`StoreError::NotFound`]. A caller that must
    /// keep serving through such a loss keeps its own copy (the gateway keeps the last good copy
    /// of each certificate its configuration references).
    pub async fn get(&self, id: &CertId) -> Result<Arc<LoadedCert>, StoreError> {
        let key = CacheKey::Id(id.clone());
        self.inner
            .cache
            .get_or_load(
                &key,
                async {
                    let text = self
                        .inner
                        .storage
                        .get(id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound { id: id.clone() })?;
                    let record = Record::decode(&text).map_err(|source| StoreError::Record {
                        id: id.clone(),
                        source,
                    })?;
                    Ok(LoadedCert::new(id.clone(), record))
                },
                StoreError::is_temporary,
            )
            .await
    }

    /// The certificate `id` if it is cached now; never waits.
    pub fn cached(&self, id: &CertId) -> Option<Arc<LoadedCert>> {
        self.inner.cache.peek(&CacheKey::Id(id.clone()))
    }

    /// Metadata of `id`; never includes the key.
    pub async fn details(&self, id: &CertId) -> Result<Metadata, StoreError> {
        Ok(self.get(id).await?.metadata().clone())
    }

    /// Metadata of each of `ids`, in order; a missing or unreadable one is an error in its slot.
    pub async fn details_many(&self, ids: &[CertId]) -> Vec<Result<Metadata, StoreError>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.details(id).await);
        }
        out
    }

    /// A page of IDs: of one org, or of all orgs when `org` is `None`.
    pub async fn list(
        &self,
        org: Option<&OrgId>,
        page: &PageRequest,
    ) -> Result<Page<CertId>, StoreError> {
        let scope = org.map_or(Scope::All, Scope::Org);
        Ok(self.inner.storage.list(scope, page).await?)
    }

    /// A page of IDs with their metadata. A record that does not parse, or whose key does not
    /// decrypt, is listed with its problem; it never fails the listing.
    pub async fn list_detailed(
        &self,
        org: Option<&OrgId>,
        page: &PageRequest,
    ) -> Result<Page<Listed>, StoreError> {
        let ids = self.list(org, page).await?;
        let mut items = Vec::with_capacity(ids.items.len());
        for id in ids.items {
            match self.get(&id).await {
                Ok(cert) => {
                    let problem = match cert.record.key() {
                        Some(_) => self.open_key(&cert).err(),
                        None => None,
                    };
                    if let Some(StoreError::Key { source, .. }) = &problem
                        && !key_opens(source)
                    {
                        self.note_undecryptable(&cert.id);
                    }
                    items.push(Listed {
                        id,
                        metadata: Some(cert.metadata().clone()),
                        problem,
                    });
                }
                // Deleted between the index read and the record read.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) if e.is_temporary() => return Err(e),
                Err(e) => items.push(Listed {
                    id,
                    metadata: None,
                    problem: Some(e),
                }),
            }
        }
        Ok(Page {
            items,
            next: ids.next,
        })
    }

    /// The chain and key of `id`, loaded into rustls, decrypted once and cached.
    pub async fn certified_key(&self, id: &CertId) -> Result<Arc<CertifiedKey>, StoreError> {
        let cert = self.get(id).await?;
        self.tls_key(&cert)
    }

    /// The rustls key of a loaded certificate (decrypted on first use, then kept).
    pub fn tls_key(&self, cert: &LoadedCert) -> Result<Arc<CertifiedKey>, StoreError> {
        cert.tls
            .get_or_init(|| {
                let secrets = self.inner.secrets.load();
                let provider = &self.inner.provider;
                let first = cert
                    .record
                    .certified_key(&cert.id, &secrets.current, provider);
                match (first, &secrets.previous) {
                    (Err(KeyError::Decrypt), Some(previous)) => {
                        cert.record.certified_key(&cert.id, previous, provider)
                    }
                    (result, _) => result,
                }
                .map(Arc::new)
            })
            .clone()
            .map_err(|source| StoreError::Key {
                id: cert.id.clone(),
                source,
            })
    }

    /// Whether the private key of `cert` decrypts with this store's secret (or the previous
    /// one): `None` when the record has no private key. The answer is computed once per loaded
    /// record. A key that does not decrypt is logged as a warning once per ID (not per call)
    /// and counted in [`CertStore::undecryptable_keys`].
    pub fn key_decrypts(&self, cert: &LoadedCert) -> Option<bool> {
        cert.record.key()?;
        match self.tls_key(cert) {
            Ok(_) => Some(true),
            Err(StoreError::Key { source, .. }) if !key_opens(&source) => {
                self.note_undecryptable(&cert.id);
                Some(false)
            }
            // Decrypted, but not usable for TLS: a different problem.
            Err(_) => Some(true),
        }
    }

    /// How many distinct certificates were found, since start, with a private key that does
    /// not decrypt with this store's secret.
    pub fn undecryptable_keys(&self) -> usize {
        self.inner
            .undecryptable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn note_undecryptable(&self, id: &CertId) {
        let first = self
            .inner
            .undecryptable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone());
        if first {
            tracing::warn!(
                %id,
                "the private key of this certificate does not decrypt with this node's encoding secret (private_certificate_encoding_secret, else secret); it cannot be served. Its metadata is still shown, with key_decrypts: false"
            );
        }
    }

    fn open_key(&self, cert: &LoadedCert) -> Result<tls_core::PrivateKey, StoreError> {
        let secrets = self.inner.secrets.load();
        let first = cert.record.private_key(&cert.id, &secrets.current);
        match (first, &secrets.previous) {
            (Err(KeyError::Decrypt), Some(previous)) => cert.record.private_key(&cert.id, previous),
            (result, _) => result,
        }
        .map_err(|source| StoreError::Key {
            id: cert.id.clone(),
            source,
        })
    }

    /// A certificate given as PEM text rather than stored (a configuration's inline PEM, a
    /// file's content): decoded once per distinct text, then served from the cache. Its ID has
    /// the empty org. `source` names the text in errors (`inline PEM`, a file name). CRLF and
    /// single-line "collapsed" PEM are fine.
    pub async fn load_pem(&self, text: &str, source: &str) -> Result<Arc<LoadedCert>, StoreError> {
        let text = text.trim();
        let key = CacheKey::Inline(Sha256::digest(text.as_bytes()).into());
        self.inner
            .cache
            .get_or_load(&key, async { self.load_text(text, source) }, |_| false)
            .await
    }

    fn load_text(&self, text: &str, what: &str) -> Result<Arc<LoadedCert>, StoreError> {
        let record = Record::decode(text).map_err(|e| reference_error(what, &e.to_string()))?;
        let id = record.id(&OrgId::EMPTY);
        Ok(LoadedCert::new(id, record))
    }

    /// The APIs that use `id`, from the usage index.
    pub fn apis_using(&self, id: &CertId) -> Vec<CertUse> {
        self.inner.usage.apis_using(id)
    }

    /// Checks that the storage answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.inner.storage.ping().await?)
    }

    /// Re-encrypts every stored key with `new_secret` in the store's key format (so legacy
    /// records move to the modern format), then makes it the current secret.
    ///
    /// Safe while serving: until it ends, keys open with either secret, and each record is
    /// rewritten with a compare-and-set. Resumable: records that already open with the new
    /// secret in the target format are left alone, so running it again after an interruption
    /// finishes the job (configure the store with the new secret as current and the old one as
    /// [`CertStoreBuilder::previous_encoding_secret`]).
    pub async fn rekey(&self, new_secret: EncodingSecret) -> Result<RekeyReport, StoreError> {
        let old = self.inner.secrets.load_full();
        let new_secret = Arc::new(new_secret);
        // New keys are written with the new secret from now on; old ones still open.
        self.inner.secrets.store(Arc::new(Secrets {
            current: Arc::clone(&new_secret),
            previous: Some(Arc::clone(&old.current)),
        }));
        let mut report = RekeyReport::default();
        let mut walk = PageWalk::new(500);
        while let Some(request) = walk.request() {
            let page = self.inner.storage.list(Scope::All, request).await?;
            for id in walk.advance(page) {
                match self.rekey_one(&id, old.previous.as_deref()).await {
                    Ok(true) => report.rekeyed += 1,
                    Ok(false) => report.unchanged += 1,
                    Err(e) if e.is_temporary() => return Err(e),
                    Err(e) => report.failed.push((id, e)),
                }
            }
        }
        if report.failed.is_empty() {
            self.inner.secrets.store(Arc::new(Secrets {
                current: new_secret,
                previous: None,
            }));
        }
        Ok(report)
    }

    /// Rewrites one record if needed; true when it was rewritten.
    async fn rekey_one(
        &self,
        id: &CertId,
        older: Option<&EncodingSecret>,
    ) -> Result<bool, StoreError> {
        for _attempt in 0..3 {
            let Some(text) = self.inner.storage.get(id).await? else {
                return Ok(false);
            };
            let record = Record::decode(&text).map_err(|source| StoreError::Record {
                id: id.clone(),
                source,
            })?;
            let Some(stored) = record.key() else {
                return Ok(false);
            };
            let secrets = self.inner.secrets.load();
            if stored.format() == Some(self.inner.key_format)
                && stored.open(id, &secrets.current).is_ok()
            {
                return Ok(false);
            }
            let candidates = [Some(&*secrets.current), secrets.previous.as_deref(), older];
            let key = candidates
                .into_iter()
                .flatten()
                .find_map(|secret| stored.open(id, secret).ok())
                .ok_or(StoreError::Key {
                    id: id.clone(),
                    source: KeyError::Decrypt,
                })?;
            let resealed =
                tls_core::StoredKey::seal(&key, id, &secrets.current, self.inner.key_format)
                    .map_err(|source| StoreError::Key {
                        id: id.clone(),
                        source,
                    })?;
            let new_text = record.with_key(resealed).encode();
            if self.inner.storage.replace(id, &text, &new_text).await? {
                self.inner.cache.invalidate(&CacheKey::Id(id.clone()));
                self.local_notice(Change::Replaced(id.clone()));
                return Ok(true);
            }
        }
        Err(StoreError::Conflict { id: id.clone() })
    }

    /// Without backend notices, this process's own changes still reach its subscribers.
    fn local_notice(&self, change: Change) {
        if !self.inner.backend_notifies {
            let _ = self.inner.changes.send(change);
        }
    }
}

/// Compares two secrets through their SHA-256 digests, folding every byte (no early exit).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

fn reference_error(reference: &str, reason: &str) -> StoreError {
    let shown: String = reference.chars().take(80).collect();
    StoreError::Reference {
        reference: shown,
        reason: reason.to_owned(),
    }
}

impl core::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CertStore")
            .field("key_format", &self.inner.key_format)
            .finish_non_exhaustive()
    }
}

/// False for the key errors that mean "cannot be decrypted here" (wrong secret, altered record,
/// unknown encryption); true for the others (the key decrypted but cannot be used).
fn key_opens(error: &KeyError) -> bool {
    !matches!(
        error,
        KeyError::Decrypt | KeyError::UnsupportedCipher(_) | KeyError::UnsupportedFormat(_)
    )
}
