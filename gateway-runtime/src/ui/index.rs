//! What the overview and the search need of every certificate, kept in memory and up to date
//! from the store's change notices, so that no page scans the store.
//!
//! The index subscribes to the store's changes before its first scan; an `Added` or `Replaced`
//! notice reads that one certificate's details, `Removed` drops it, `Resync` scans again. Every
//! applied change bumps a version that the page's event stream announces.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cert_store::{CertStore, Change, PageRequest, StoreError};
use time::OffsetDateTime;
use tls_core::{CertId, Metadata};
use tokio::sync::watch;

/// Page size of a scan.
const SCAN_PAGE: usize = 1000;
/// Guards against a backend whose cursors never end.
const MAX_SCAN_PAGES: usize = 100_000;

/// One certificate as the pages show it in a row.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    pub(super) id: String,
    pub(super) org: String,
    pub(super) subject_cn: String,
    pub(super) issuer_cn: String,
    pub(super) sans: Vec<String>,
    pub(super) not_after: Option<OffsetDateTime>,
    pub(super) has_private: bool,
    /// The record cannot be read in full.
    pub(super) problem: Option<String>,
}

impl Summary {
    pub(super) fn new(id: &CertId, meta: Option<&Metadata>, problem: Option<String>) -> Self {
        let org = id.org().as_str().to_owned();
        let Some(meta) = meta else {
            return Self {
                id: id.to_string(),
                org,
                subject_cn: String::new(),
                issuer_cn: String::new(),
                sans: Vec::new(),
                not_after: None,
                has_private: false,
                problem: Some(problem.unwrap_or_else(|| "the record cannot be read".into())),
            };
        };
        let mut sans = meta.dns_names.clone();
        sans.extend(meta.ip_addresses.iter().map(ToString::to_string));
        Self {
            id: id.to_string(),
            org,
            subject_cn: if meta.is_public_key {
                format!("Public Key: {}", meta.fingerprint.to_hex())
            } else {
                meta.subject.common_name.clone().unwrap_or_default()
            },
            issuer_cn: meta.issuer.common_name.clone().unwrap_or_default(),
            sans,
            not_after: meta.not_after,
            has_private: meta.has_private,
            problem,
        }
    }

    /// Whether `needle` (lowercase) is a prefix of the ID (or of its fingerprint part), or
    /// occurs in the common name or a SAN.
    pub(super) fn matches(&self, needle: &str) -> bool {
        if needle.is_empty() {
            return true;
        }
        let fingerprint = &self.id[self.org.len()..];
        starts_with_ignore_case(&self.id, needle)
            || starts_with_ignore_case(fingerprint, needle)
            || contains_ignore_case(&self.subject_cn, needle)
            || self
                .sans
                .iter()
                .any(|san| contains_ignore_case(san, needle))
    }
}

fn starts_with_ignore_case(text: &str, lower_needle: &str) -> bool {
    text.len() >= lower_needle.len()
        && text.as_bytes()[..lower_needle.len()].eq_ignore_ascii_case(lower_needle.as_bytes())
}

fn contains_ignore_case(text: &str, lower_needle: &str) -> bool {
    text.len() >= lower_needle.len()
        && text
            .as_bytes()
            .windows(lower_needle.len())
            .any(|w| w.eq_ignore_ascii_case(lower_needle.as_bytes()))
}

#[derive(Debug, Default)]
struct State {
    ready: bool,
    by_id: HashMap<String, Arc<Summary>>,
}

/// The index. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(super) struct Index {
    state: RwLock<State>,
    version: watch::Sender<u64>,
}

impl Index {
    pub(super) fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            version: watch::channel(0).0,
        }
    }

    /// Whether the first scan has finished.
    pub(super) fn ready(&self) -> bool {
        self.state.read().unwrap_or_else(|p| p.into_inner()).ready
    }

    /// Calls `f` with every summary (in no particular order).
    pub(super) fn with_all<R>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &Arc<Summary>>) -> R,
    ) -> R {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let mut values = state.by_id.values();
        f(&mut values)
    }

    /// A receiver that changes whenever the index does.
    pub(super) fn versions(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn put(&self, summary: Summary) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.by_id.insert(summary.id.clone(), Arc::new(summary));
    }

    fn remove(&self, id: &CertId) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.by_id.remove(&id.to_string());
    }

    /// Reads every certificate of the store; replaces the index when the scan completes.
    async fn scan(&self, store: &CertStore) -> Result<(), StoreError> {
        let mut by_id = HashMap::new();
        let mut page = PageRequest::first(SCAN_PAGE);
        for _ in 0..MAX_SCAN_PAGES {
            let got = store.list_detailed(None, &page).await?;
            for listed in got.items {
                let problem = listed.problem.as_ref().map(ToString::to_string);
                let summary = Summary::new(&listed.id, listed.metadata.as_ref(), problem);
                by_id.insert(summary.id.clone(), Arc::new(summary));
            }
            match got.next {
                Some(next) => page = PageRequest::after(next, SCAN_PAGE),
                None => break,
            }
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.by_id = by_id;
        state.ready = true;
        Ok(())
    }

    async fn refresh_one(&self, store: &CertStore, id: &CertId) {
        match store.details(id).await {
            Ok(meta) => self.put(Summary::new(id, Some(&meta), None)),
            Err(StoreError::NotFound { .. }) => self.remove(id),
            Err(e) if e.is_temporary() => {
                tracing::debug!(%id, error = %e, "certificate page: cannot read a changed certificate");
            }
            Err(e) => self.put(Summary::new(id, None, Some(e.to_string()))),
        }
    }

    /// Keeps the index up to date until `stop` turns true or the store goes away.
    pub(super) async fn follow(self: Arc<Self>, store: CertStore, mut stop: watch::Receiver<bool>) {
        let mut changes = store.subscribe();
        let mut scanned = false;
        loop {
            if !scanned {
                match self.scan(&store).await {
                    Ok(()) => {
                        scanned = true;
                        self.bump();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "certificate page: cannot read the store; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => continue,
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
            let change = tokio::select! {
                change = changes.next() => change,
                _ = stop.changed() => return,
            };
            match change {
                Some(Change::Added(id) | Change::Replaced(id)) => {
                    self.refresh_one(&store, &id).await
                }
                Some(Change::Removed(id)) => self.remove(&id),
                Some(_) => scanned = false,
                None => return,
            }
            if scanned {
                self.bump();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_matches_id_prefixes_names_and_sans_ignoring_case() {
        let summary = Summary {
            id: "org1abcdef".into(),
            org: "org1".into(),
            subject_cn: "API.example".into(),
            issuer_cn: "CA".into(),
            sans: vec!["www.Example.org".into()],
            not_after: None,
            has_private: false,
            problem: None,
        };
        assert!(summary.matches("org1ab"));
        assert!(summary.matches("abc"));
        assert!(summary.matches("api.ex"));
        assert!(summary.matches("example.org"));
        assert!(!summary.matches("bcd"));
        assert!(!summary.matches("ca"));
        assert!(summary.matches(""));
    }
}
