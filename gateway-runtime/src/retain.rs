//! Last good copies of the certificates the configuration references, so that losing the
//! store's data (a Redis restarted empty, a `FLUSHALL`, a record overwritten with garbage)
//! never takes down TLS that was working.
//!
//! Every reference the TLS snapshot or the proxy resolves goes through [`Retained::resolve`].
//! A successful resolution is remembered; when a later one fails, the remembered copy is used
//! instead. A certificate that the store no longer has (not found) is *missing*: that is logged
//! at error level once when it goes missing (and at info level when it comes back), counted in
//! the `certgate_referenced_certificates_missing` gauge and reported by `/hello` (status
//! `warn`). Any other failure (storage unreachable, record unreadable) is logged at warn level
//! once, until the certificate can be read again, and served the same way.
//!
//! While some copy is served, the gateway rebuilds every few seconds to ask the store again;
//! otherwise once a minute, so that a loss nobody announced (a `FLUSHALL`) shows within minutes
//! (when the store's cache entries expire).
//!
//! A remembered copy is dropped only when
//! - the configuration stops referencing it ([`Retained::retain_only`], after every reload), or
//! - an explicit delete of its ID went through a store API: this process's `CertStore::delete`
//!   (the control API), or another gateway's, whose [`cert_store::Change::Removed`] notice
//!   arrives through the store ([`Retained::forget`]). Data loss sends no such notice: a
//!   `FLUSHALL` sends nothing and a Redis restart only a `Resync`, which drops nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cert_store::{CertStore, LoadedCert, StoreError};
use tls_core::CertId;

use crate::api::ApiTable;
use crate::config::{CertificateRef, GatewayConfig};
use crate::metrics::GatewayMetrics;

/// One remembered certificate.
struct Kept {
    cert: Arc<LoadedCert>,
    /// The store said "not found" the last time it was asked.
    missing: bool,
    /// The last resolution failed (for any reason) and this copy was served instead.
    stale: bool,
}

/// The last good copy of each referenced certificate (see the module docs).
pub(crate) struct Retained {
    /// By reference, as the configuration writes it.
    kept: Mutex<HashMap<String, Kept>>,
    metrics: Arc<GatewayMetrics>,
    /// `allow_certificate_files`: references may be file paths.
    allow_files: bool,
}

impl std::fmt::Debug for Retained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retained")
            .field("kept", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Retained {
    /// An empty set that reports missing certificates through `metrics`; file references are
    /// read only when `allow_files` (`allow_certificate_files`).
    pub(crate) fn new(metrics: Arc<GatewayMetrics>, allow_files: bool) -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
            metrics,
            allow_files,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        // Every critical section leaves the map consistent.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves `reference` in `store`; when that fails and a good copy was seen before, the
    /// copy. `owner` names who references it, in logs.
    pub(crate) async fn resolve(
        &self,
        store: &CertStore,
        reference: &CertificateRef,
        owner: &str,
    ) -> Result<Arc<LoadedCert>, StoreError> {
        let resolved = crate::resolve::resolve(store, reference, self.allow_files).await;
        let reference = reference.to_string();
        let reference = reference.as_str();
        match resolved {
            Ok(cert) => {
                let mut kept = self.lock();
                let back = kept.get(reference).is_some_and(|k| k.missing);
                let readable_again = kept.get(reference).is_some_and(|k| k.stale && !k.missing);
                if readable_again {
                    tracing::info!(owner, id = %cert.id(), "a referenced certificate can be read from storage again");
                }
                kept.insert(
                    reference.to_owned(),
                    Kept {
                        cert: Arc::clone(&cert),
                        missing: false,
                        stale: false,
                    },
                );
                if back {
                    tracing::info!(owner, id = %cert.id(), "a referenced certificate is back in storage");
                    self.publish(&kept);
                }
                Ok(cert)
            }
            Err(error) => {
                let mut kept = self.lock();
                let Some(entry) = kept.get_mut(reference) else {
                    return Err(error);
                };
                let cert = Arc::clone(&entry.cert);
                let was_stale = std::mem::replace(&mut entry.stale, true);
                if matches!(error, StoreError::NotFound { .. }) {
                    if !entry.missing {
                        entry.missing = true;
                        tracing::error!(
                            owner,
                            id = %cert.id(),
                            "a certificate the configuration references is missing from storage; \
                             serving the last good copy until the configuration stops referencing it \
                             or it is deleted through the API (restore it with POST /tyk/certs)"
                        );
                        self.publish(&kept);
                    }
                } else if !was_stale {
                    tracing::warn!(owner, id = %cert.id(), %error, "a referenced certificate cannot be read from storage now; serving the last good copy");
                }
                Ok(cert)
            }
        }
    }

    /// Drops the copies of `id`: it was deleted through a store API.
    pub(crate) fn forget(&self, id: &CertId) {
        let mut kept = self.lock();
        let before = kept.len();
        kept.retain(|reference, _| reference.parse::<CertId>().ok().as_ref() != Some(id));
        if kept.len() != before {
            tracing::info!(%id, "certificate deleted through the API: its last good copy is dropped");
            self.publish(&kept);
        }
    }

    /// Drops the copies of references that `config` and `apis` no longer make.
    pub(crate) fn retain_only(&self, config: &GatewayConfig, apis: &ApiTable) {
        let referenced = references(config, apis);
        let mut kept = self.lock();
        kept.retain(|reference, _| referenced.contains(reference));
        self.publish(&kept);
    }

    /// True when some copy is served because its resolution failed: worth asking the store
    /// again soon (it may be back, or the failure may turn out to be a loss).
    pub(crate) fn degraded(&self) -> bool {
        self.lock().values().any(|k| k.stale)
    }

    fn publish(&self, kept: &HashMap<String, Kept>) {
        self.metrics.set_missing_certificates(missing_ids(kept));
    }
}

fn missing_ids(kept: &HashMap<String, Kept>) -> Vec<String> {
    let mut ids: Vec<String> = kept
        .values()
        .filter(|k| k.missing)
        .map(|k| k.cert.id().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Every certificate reference of `config` and `apis`, as [`Retained`] keys them.
fn references(config: &GatewayConfig, apis: &ApiTable) -> HashSet<String> {
    let security = &config.security.certificates;
    let mut out: HashSet<String> = config
        .http_server_options
        .ssl_certificates
        .iter()
        .chain(&security.apis)
        .chain(&security.control_api)
        .chain(security.upstream.values().flatten())
        .map(CertificateRef::to_string)
        .collect();
    out.extend(pin_entries(&config.security.pinned_public_keys).map(str::to_owned));
    for route in apis.iter() {
        let def = &route.def;
        out.extend(
            def.certificates
                .iter()
                .chain(&def.client_certificates)
                .chain(def.upstream_certificates.values().flatten())
                .map(CertificateRef::to_string),
        );
        out.extend(pin_entries(&def.pinned_public_keys).map(str::to_owned));
    }
    out
}

/// The entries of `pinned_public_keys` values (comma-separated).
fn pin_entries(pins: &HashMap<String, String>) -> impl Iterator<Item = &str> {
    pins.values()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

#[cfg(test)]
mod tests {
    use cert_store::MemoryStorage;
    use tls_core::{EncodingSecret, OrgId};

    use super::*;

    const PEM: &str = include_str!("../../tls-core/tests/data/demo.pem");

    #[tokio::test]
    async fn a_lost_certificate_is_served_from_its_copy_until_an_explicit_delete() {
        let storage = Arc::new(MemoryStorage::new());
        let store = CertStore::builder(Arc::clone(&storage) as Arc<dyn cert_store::CertStorage>)
            .encoding_secret(EncodingSecret::new("retain test"))
            .build();
        let metrics = Arc::new(GatewayMetrics::default());
        let retained = Retained::new(Arc::clone(&metrics), false);
        let id = store.add(PEM, &OrgId::EMPTY).await.unwrap();
        let reference: CertificateRef = format!(" {id} ").parse().unwrap();
        let first = retained.resolve(&store, &reference, "test").await.unwrap();

        // Lost behind the store's back: the copy serves, reported missing.
        assert!(
            cert_store::CertStorage::delete(&*storage, &id)
                .await
                .unwrap()
        );
        // Stands in for the cache entry expiring (nobody here listens to its notice).
        store.delete(&id).await.unwrap();
        for _ in 0..3 {
            let served = retained.resolve(&store, &reference, "test").await.unwrap();
            assert!(Arc::ptr_eq(&served, &first));
        }
        assert_eq!(metrics.missing_certificates(), vec![id.to_string()]);
        assert!(retained.degraded());

        // Back in storage: no longer missing.
        store.add(PEM, &OrgId::EMPTY).await.unwrap();
        retained.resolve(&store, &reference, "test").await.unwrap();
        assert!(metrics.missing_certificates().is_empty());
        assert!(!retained.degraded());

        // An explicit delete ends the copy.
        store.delete(&id).await.unwrap();
        retained.forget(&id);
        assert!(matches!(
            retained.resolve(&store, &reference, "test").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(metrics.missing_certificates().is_empty());
    }
}
