//! What the overview and the search need of every certificate, kept in memory and up to date
//! from the store's change notices, so that no page scans the store.
//!
//! The index subscribes to the store's changes before its first scan; an `Added` or `Replaced`
//! notice reads that one certificate's details, `Removed` drops it, `Resync` scans again. Every
//! applied change bumps a version that the page's event stream announces.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use cert_store::{CertStore, Change, PageWalk, StoreError};
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
}

/// A summary with what searching and ordering need precomputed.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) summary: Summary,
    /// `not_after` in Unix seconds; `i64::MAX` for none (public keys sort last).
    expires: i64,
    /// The ID, lowercase.
    id_lower: String,
    /// The common name and the SANs, lowercase, one per line.
    names_lower: String,
}

impl Entry {
    fn new(summary: Summary) -> Self {
        let mut names_lower = summary.subject_cn.to_lowercase();
        for san in &summary.sans {
            names_lower.push('\n');
            names_lower.push_str(&san.to_lowercase());
        }
        Self {
            expires: summary
                .not_after
                .map_or(i64::MAX, OffsetDateTime::unix_timestamp),
            id_lower: summary.id.to_lowercase(),
            names_lower,
            summary,
        }
    }

    /// Whether `needle` (lowercase) is a prefix of the ID or of its fingerprint part, or occurs
    /// in the common name or a SAN.
    pub(super) fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || self.id_lower.starts_with(needle)
            || self
                .id_lower
                .get(self.summary.org.len()..)
                .is_some_and(|fingerprint| fingerprint.starts_with(needle))
            || self.names_lower.contains(needle)
    }
}

/// The overview's figures at one instant.
#[derive(Debug)]
pub(super) struct Stats {
    pub(super) total: usize,
    pub(super) with_key: usize,
    pub(super) expired: usize,
    pub(super) expiring: usize,
    /// Certificates expiring on each of the next days (day 0: the next 24 hours).
    pub(super) per_day: Vec<u32>,
    /// Unreadable ones first, then by expiry: expired, then expiring.
    pub(super) attention: Vec<Arc<Entry>>,
}

/// A page of a search.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) total: usize,
    pub(super) items: Vec<Arc<Entry>>,
}

/// What a search asks for.
#[derive(Debug)]
pub(super) struct Search<'a> {
    pub(super) org: &'a str,
    /// Lowercase; empty for everything.
    pub(super) needle: &'a str,
    pub(super) by_expiry: bool,
    pub(super) offset: usize,
    pub(super) limit: usize,
}

/// Every certificate, by ID and by expiry, with running counts, so that no request scans
/// more than it shows (a search by text scans the names in memory).
#[derive(Debug, Default)]
struct State {
    ready: bool,
    by_id: BTreeMap<String, Arc<Entry>>,
    by_expiry: BTreeMap<(i64, String), Arc<Entry>>,
    problems: BTreeMap<String, Arc<Entry>>,
    with_key: usize,
    per_org: HashMap<String, usize>,
}

impl State {
    fn put(&mut self, summary: Summary) {
        self.remove(&summary.id);
        let entry = Arc::new(Entry::new(summary));
        let id = entry.summary.id.clone();
        if entry.summary.has_private {
            self.with_key += 1;
        }
        *self.per_org.entry(entry.summary.org.clone()).or_insert(0) += 1;
        if entry.summary.problem.is_some() {
            self.problems.insert(id.clone(), Arc::clone(&entry));
        }
        self.by_expiry
            .insert((entry.expires, id.clone()), Arc::clone(&entry));
        self.by_id.insert(id, entry);
    }

    fn remove(&mut self, id: &str) {
        let Some(entry) = self.by_id.remove(id) else {
            return;
        };
        if entry.summary.has_private {
            self.with_key -= 1;
        }
        if let Some(count) = self.per_org.get_mut(&entry.summary.org) {
            *count -= 1;
            if *count == 0 {
                self.per_org.remove(&entry.summary.org);
            }
        }
        self.problems.remove(id);
        self.by_expiry.remove(&(entry.expires, id.to_owned()));
    }
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

    /// How many certificates there are, of `org` or of all (`""`).
    pub(super) fn count(&self, org: &str) -> usize {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if org.is_empty() {
            state.by_id.len()
        } else {
            state.per_org.get(org).copied().unwrap_or(0)
        }
    }

    /// The overview's figures at `now`: expired when `not_after <= now`, expiring when within
    /// `warning` after it; `days` days of chart; at most `attention` certificates to look at.
    pub(super) fn stats(
        &self,
        now: OffsetDateTime,
        warning: time::Duration,
        days: usize,
        attention: usize,
    ) -> Stats {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let now_s = now.unix_timestamp();
        let warn_s = now_s.saturating_add(warning.whole_seconds());
        let day_s = 86_400i64;
        let chart_end =
            now_s.saturating_add(day_s.saturating_mul(i64::try_from(days).unwrap_or(0)));
        let key = |at: i64| (at, String::new());
        let expired = state.by_expiry.range(..key(now_s + 1)).count();
        let expiring = state
            .by_expiry
            .range(key(now_s + 1)..key(warn_s.saturating_add(1)))
            .count();
        let mut per_day = vec![0u32; days];
        for (expires, _) in state
            .by_expiry
            .range(key(now_s + 1)..key(chart_end))
            .map(|(k, _)| k)
        {
            let day = usize::try_from((expires - now_s) / day_s).unwrap_or(usize::MAX);
            if let Some(slot) = per_day.get_mut(day) {
                *slot += 1;
            }
        }
        let urgent = state
            .problems
            .values()
            .chain(
                state
                    .by_expiry
                    .range(..key(warn_s.saturating_add(1)))
                    .map(|(_, entry)| entry)
                    .filter(|entry| entry.summary.problem.is_none()),
            )
            .take(attention)
            .cloned()
            .collect();
        Stats {
            total: state.by_id.len(),
            with_key: state.with_key,
            expired,
            expiring,
            per_day,
            attention: urgent,
        }
    }

    /// One page of the certificates that match `search`, by ID or by expiry, and how many match.
    pub(super) fn search(&self, search: &Search<'_>) -> Found {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let all: Box<dyn Iterator<Item = &Arc<Entry>>> = if search.by_expiry {
            Box::new(state.by_expiry.values())
        } else {
            Box::new(state.by_id.values())
        };
        if search.needle.is_empty() && search.org.is_empty() {
            let items = all
                .skip(search.offset)
                .take(search.limit)
                .cloned()
                .collect();
            return Found {
                total: state.by_id.len(),
                items,
            };
        }
        let keep = |entry: &&Arc<Entry>| {
            (search.org.is_empty() || entry.summary.org == search.org)
                && entry.matches(search.needle)
        };
        let mut total = 0;
        let mut items = Vec::with_capacity(search.limit);
        for entry in all.filter(keep) {
            if total >= search.offset && items.len() < search.limit {
                items.push(Arc::clone(entry));
            }
            total += 1;
        }
        Found { total, items }
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
        state.put(summary);
    }

    fn remove(&self, id: &CertId) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.remove(&id.to_string());
    }

    /// Reads every certificate of the store; replaces the index when the scan completes.
    async fn scan(&self, store: &CertStore) -> Result<(), StoreError> {
        let mut fresh = State::default();
        let mut walk = PageWalk::new(SCAN_PAGE).at_most(MAX_SCAN_PAGES);
        while let Some(request) = walk.request() {
            let page = store.list_detailed(None, request).await?;
            for listed in walk.advance(page) {
                let problem = listed.problem.as_ref().map(ToString::to_string);
                fresh.put(Summary::new(&listed.id, listed.metadata.as_ref(), problem));
            }
        }
        fresh.ready = true;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = fresh;
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
    use time::macros::datetime;

    fn summary(id: &str, org: &str, cn: &str, not_after: Option<OffsetDateTime>) -> Summary {
        Summary {
            id: id.into(),
            org: org.into(),
            subject_cn: cn.into(),
            issuer_cn: "CA".into(),
            sans: vec![format!("www.{cn}")],
            not_after,
            has_private: true,
            problem: None,
        }
    }

    #[test]
    fn search_matches_id_prefixes_names_and_sans_ignoring_case() {
        let entry = Entry::new(Summary {
            sans: vec!["www.Example.org".into()],
            ..summary("Org1abcdef", "Org1", "API.example", None)
        });
        assert!(entry.matches("org1ab"));
        assert!(entry.matches("abc"));
        assert!(entry.matches("api.ex"));
        assert!(entry.matches("example.org"));
        assert!(!entry.matches("bcd"));
        assert!(!entry.matches("ca"));
        assert!(entry.matches(""));
    }

    #[test]
    fn counts_order_and_pages_follow_puts_and_removes() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let index = Index::new();
        {
            let mut state = index.state.write().unwrap();
            state.put(summary(
                "a1",
                "a",
                "one",
                Some(now - time::Duration::days(1)),
            ));
            state.put(summary(
                "a2",
                "a",
                "two",
                Some(now + time::Duration::days(5)),
            ));
            state.put(summary(
                "b3",
                "b",
                "three",
                Some(now + time::Duration::days(60)),
            ));
            state.put(summary("b4", "b", "four", None));
            state.put(Summary {
                problem: Some("unreadable".into()),
                ..summary("b5", "b", "five", Some(now + time::Duration::days(300)))
            });
            // Replacing keeps the counts right.
            state.put(summary(
                "a2",
                "a",
                "two",
                Some(now + time::Duration::days(5)),
            ));
        }
        let stats = index.stats(now, time::Duration::days(30), 90, 10);
        assert_eq!(
            (stats.total, stats.with_key, stats.expired, stats.expiring),
            (5, 5, 1, 1)
        );
        assert_eq!(stats.per_day[5], 1);
        assert_eq!(stats.per_day[60], 1);
        assert_eq!(stats.per_day.iter().sum::<u32>(), 2);
        let urgent: Vec<_> = stats
            .attention
            .iter()
            .map(|e| e.summary.id.as_str())
            .collect();
        assert_eq!(urgent, ["b5", "a1", "a2"]);
        assert_eq!(
            (index.count(""), index.count("b"), index.count("c")),
            (5, 3, 0)
        );

        let page = |org, needle, by_expiry, offset| {
            let found = index.search(&Search {
                org,
                needle,
                by_expiry,
                offset,
                limit: 2,
            });
            let ids: Vec<String> = found.items.iter().map(|e| e.summary.id.clone()).collect();
            (found.total, ids)
        };
        assert_eq!(page("", "", true, 0), (5, vec!["a1".into(), "a2".into()]));
        assert_eq!(page("", "", true, 4), (5, vec!["b4".into()]));
        assert_eq!(page("b", "", false, 0), (3, vec!["b3".into(), "b4".into()]));
        assert_eq!(
            page("", "www.t", true, 0),
            (2, vec!["a2".into(), "b3".into()])
        );
        index.state.write().unwrap().remove("a2");
        assert_eq!(index.count("a"), 1);
        assert_eq!(
            index.stats(now, time::Duration::days(30), 90, 10).expiring,
            0
        );
    }
}
