//! The behaviour every storage backend must have.
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::Arc;
//! use cert_store::{CertStorage, MemoryStorage};
//!
//! // `make` returns a fresh, empty storage for each check.
//! cert_store::testkit::conformance::run_all(|| async {
//!     Arc::new(MemoryStorage::new()) as Arc<dyn CertStorage>
//! })
//! .await;
//! # }
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tls_core::{CertId, Fingerprint, OrgId};

use crate::storage::{CertStorage, Change, Changes, Cursor, Inserted, PageRequest, Scope};

type Check = fn(Arc<dyn CertStorage>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("insert_then_get_returns_the_record", |s| {
        Box::pin(insert_then_get_returns_the_record(s))
    }),
    ("insert_of_an_existing_id_changes_nothing", |s| {
        Box::pin(insert_of_an_existing_id_changes_nothing(s))
    }),
    ("get_of_a_missing_id_is_none", |s| {
        Box::pin(get_of_a_missing_id_is_none(s))
    }),
    ("delete_says_whether_it_existed_and_unindexes", |s| {
        Box::pin(delete_says_whether_it_existed_and_unindexes(s))
    }),
    ("replace_is_compare_and_set", |s| {
        Box::pin(replace_is_compare_and_set(s))
    }),
    ("org_listing_pages_in_insertion_order", |s| {
        Box::pin(org_listing_pages_in_insertion_order(s))
    }),
    ("listing_all_covers_every_org_once", |s| {
        Box::pin(listing_all_covers_every_org_once(s))
    }),
    ("orgs_are_isolated", |s| Box::pin(orgs_are_isolated(s))),
    ("concurrent_inserts_of_one_id_have_one_winner", |s| {
        Box::pin(concurrent_inserts_of_one_id_have_one_winner(s))
    }),
    ("insert_many_answers_each_in_order", |s| {
        Box::pin(insert_many_answers_each_in_order(s))
    }),
    ("a_malformed_cursor_is_an_error", |s| {
        Box::pin(a_malformed_cursor_is_an_error(s))
    }),
    ("notices_name_what_changed", |s| {
        Box::pin(notices_name_what_changed(s))
    }),
    ("ping_answers", |s| Box::pin(ping_answers(s))),
];

/// Runs every check, each on a fresh storage from `make`, and panics naming the first that
/// fails.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn CertStorage>>,
{
    for (name, check) in CHECKS {
        let storage = make().await;
        let outcome = tokio::spawn(check(storage)).await;
        if let Err(e) = outcome {
            panic!("storage conformance check `{name}` failed: {e}");
        }
    }
}

/// A test ID: `org` followed by a fingerprint made of `n`.
pub fn test_id(org: &str, n: u32) -> CertId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[31] = 0x5a;
    CertId::new(
        OrgId::new(org).expect("a valid test org"),
        Fingerprint::from_bytes(bytes),
    )
}

async fn all_ids(storage: &dyn CertStorage, scope: Scope<'_>, limit: usize) -> Vec<CertId> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(limit);
    for _ in 0..10_000 {
        let result = storage.list(scope, &page).await.expect("list");
        assert!(
            result.items.len() <= limit,
            "a page holds at most `limit` IDs"
        );
        out.extend(result.items);
        match result.next {
            Some(next) => page = PageRequest::after(next, limit),
            None => return out,
        }
    }
    panic!("listing did not end");
}

/// A record can be read back after it is inserted.
pub async fn insert_then_get_returns_the_record(storage: Arc<dyn CertStorage>) {
    let id = test_id("org1", 1);
    assert_eq!(
        storage.insert(&id, "record one").await.unwrap(),
        Inserted::Added
    );
    assert_eq!(
        storage.get(&id).await.unwrap().as_deref(),
        Some("record one")
    );
}

/// Inserting an existing ID reports it and keeps the first record and a single index entry.
pub async fn insert_of_an_existing_id_changes_nothing(storage: Arc<dyn CertStorage>) {
    let id = test_id("org1", 2);
    storage.insert(&id, "first").await.unwrap();
    assert_eq!(
        storage.insert(&id, "second").await.unwrap(),
        Inserted::AlreadyExists
    );
    assert_eq!(storage.get(&id).await.unwrap().as_deref(), Some("first"));
    assert_eq!(all_ids(&*storage, Scope::Org(id.org()), 10).await, [id]);
}

/// A missing ID reads as `None`, not an error.
pub async fn get_of_a_missing_id_is_none(storage: Arc<dyn CertStorage>) {
    assert_eq!(storage.get(&test_id("org1", 3)).await.unwrap(), None);
}

/// Delete says whether the record existed, and the ID leaves the index.
pub async fn delete_says_whether_it_existed_and_unindexes(storage: Arc<dyn CertStorage>) {
    let (a, b) = (test_id("org1", 4), test_id("org1", 5));
    storage.insert(&a, "a").await.unwrap();
    storage.insert(&b, "b").await.unwrap();
    assert!(storage.delete(&a).await.unwrap());
    assert!(!storage.delete(&a).await.unwrap());
    assert_eq!(storage.get(&a).await.unwrap(), None);
    assert_eq!(
        all_ids(&*storage, Scope::Org(a.org()), 10).await,
        std::slice::from_ref(&b)
    );
    assert_eq!(all_ids(&*storage, Scope::All, 10).await, [b]);
    // The ID can be added again after a delete.
    assert_eq!(
        storage.insert(&a, "a again").await.unwrap(),
        Inserted::Added
    );
}

/// Replace rewrites only when the current record is the expected one.
pub async fn replace_is_compare_and_set(storage: Arc<dyn CertStorage>) {
    let id = test_id("org1", 6);
    assert!(
        !storage.replace(&id, "x", "y").await.unwrap(),
        "nothing to replace"
    );
    storage.insert(&id, "v1").await.unwrap();
    assert!(!storage.replace(&id, "stale", "v2").await.unwrap());
    assert_eq!(storage.get(&id).await.unwrap().as_deref(), Some("v1"));
    assert!(storage.replace(&id, "v1", "v2").await.unwrap());
    assert_eq!(storage.get(&id).await.unwrap().as_deref(), Some("v2"));
    assert_eq!(all_ids(&*storage, Scope::Org(id.org()), 10).await, [id]);
}

/// An org's IDs come back in insertion order, each once, across pages of any size.
pub async fn org_listing_pages_in_insertion_order(storage: Arc<dyn CertStorage>) {
    let ids: Vec<CertId> = (0..23).map(|n| test_id("paged", 100 + n)).collect();
    for id in &ids {
        storage.insert(id, "r").await.unwrap();
    }
    for limit in [1, 7, 23, 100] {
        assert_eq!(
            all_ids(&*storage, Scope::Org(&OrgId::new("paged").unwrap()), limit).await,
            ids,
            "page size {limit}"
        );
    }
    let empty = storage
        .list(
            Scope::Org(&OrgId::new("nobody").unwrap()),
            &PageRequest::first(5),
        )
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());
}

/// Listing every org returns each ID exactly once, the empty org included.
pub async fn listing_all_covers_every_org_once(storage: Arc<dyn CertStorage>) {
    let mut expected = HashSet::new();
    for (n, org) in ["", "a", "b", "zz"].iter().enumerate() {
        for k in 0..5 {
            let id = test_id(org, u32::try_from(n * 10 + k).unwrap());
            storage.insert(&id, "r").await.unwrap();
            expected.insert(id);
        }
    }
    for limit in [1, 3, 5, 6, 50] {
        let listed = all_ids(&*storage, Scope::All, limit).await;
        assert_eq!(
            listed.len(),
            expected.len(),
            "page size {limit}: no ID twice"
        );
        assert_eq!(
            listed.into_iter().collect::<HashSet<_>>(),
            expected,
            "page size {limit}"
        );
    }
    let empty_org = all_ids(&*storage, Scope::Org(&OrgId::EMPTY), 2).await;
    assert_eq!(empty_org.len(), 5, "the empty org has an index of its own");
    assert!(empty_org.iter().all(|id| id.org().is_empty()));
}

/// One org's listing never shows another's IDs, even when one org ID is a prefix of another.
pub async fn orgs_are_isolated(storage: Arc<dyn CertStorage>) {
    let a = test_id("org", 1);
    let b = test_id("org1", 1);
    storage.insert(&a, "a").await.unwrap();
    storage.insert(&b, "b").await.unwrap();
    assert_eq!(all_ids(&*storage, Scope::Org(a.org()), 10).await, [a]);
    assert_eq!(all_ids(&*storage, Scope::Org(b.org()), 10).await, [b]);
}

/// Of 16 concurrent inserts of one ID exactly one wins, and the index holds it once.
pub async fn concurrent_inserts_of_one_id_have_one_winner(storage: Arc<dyn CertStorage>) {
    let id = test_id("race", 1);
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let (storage, id) = (Arc::clone(&storage), id.clone());
            tokio::spawn(async move { storage.insert(&id, &format!("writer {n}")).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() == Inserted::Added {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(all_ids(&*storage, Scope::Org(id.org()), 100).await, [id]);
}

/// Batch inserts answer for each record, in order, duplicates included.
pub async fn insert_many_answers_each_in_order(storage: Arc<dyn CertStorage>) {
    let existing = test_id("bulk", 1);
    storage.insert(&existing, "old").await.unwrap();
    let records: Vec<(CertId, String)> = vec![
        (test_id("bulk", 2), "two".into()),
        (existing.clone(), "new".into()),
        (test_id("bulk", 3), "three".into()),
    ];
    let results: Vec<Inserted> = storage
        .insert_many(&records)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results,
        [Inserted::Added, Inserted::AlreadyExists, Inserted::Added]
    );
    assert_eq!(
        storage.get(&existing).await.unwrap().as_deref(),
        Some("old")
    );
    assert_eq!(
        storage.get(&test_id("bulk", 3)).await.unwrap().as_deref(),
        Some("three")
    );
}

/// A cursor the backend never issued is refused with an error, not a panic.
pub async fn a_malformed_cursor_is_an_error(storage: Arc<dyn CertStorage>) {
    let page = PageRequest::after(Cursor::new("not a cursor"), 5);
    assert!(storage.list(Scope::All, &page).await.is_err());
    assert!(
        storage
            .list(Scope::Org(&OrgId::EMPTY), &page)
            .await
            .is_err()
    );
    // Whatever a client sends back as a cursor never crashes the backend.
    storage.insert(&test_id("", 1), "r").await.unwrap();
    for cursor in [
        u64::MAX.to_string(),
        format!("{}:", u64::MAX),
        format!("{}:zz", usize::MAX),
    ] {
        let page = PageRequest::after(Cursor::new(cursor), usize::MAX);
        for scope in [Scope::All, Scope::Org(&OrgId::EMPTY)] {
            if let Ok(listed) = storage.list(scope, &page).await {
                assert!(
                    listed.items.is_empty(),
                    "a cursor past the end lists nothing"
                );
            }
        }
    }
}

async fn next_change(changes: &mut Changes) -> Change {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), changes.next()).await {
            Ok(Some(Change::Resync)) => {}
            Ok(Some(change)) => return change,
            Ok(None) => panic!("the change stream ended"),
            Err(_) => panic!("no change notice within 5 s"),
        }
    }
}

/// A backend that notifies reports adds, replaces and removes by ID (and nothing for a
/// duplicate insert or a delete of a missing ID).
pub async fn notices_name_what_changed(storage: Arc<dyn CertStorage>) {
    let Some(mut changes) = storage.watch() else {
        return;
    };
    // Give a subscriber that connects in the background time to be listening.
    let mut ready = false;
    for n in 0..50u32 {
        let probe_n = test_id("probe", n);
        storage.insert(&probe_n, "p").await.unwrap();
        if let Ok(Some(Change::Added(_))) =
            tokio::time::timeout(Duration::from_millis(100), changes.next()).await
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "no notice arrived for inserts over 5 s");
    // Drain anything left from the probing.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), changes.next()).await {
    }

    let id = test_id("watched", 1);
    storage.insert(&id, "v1").await.unwrap();
    assert_eq!(next_change(&mut changes).await, Change::Added(id.clone()));
    storage.insert(&id, "dup").await.unwrap();
    storage.replace(&id, "v1", "v2").await.unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Replaced(id.clone())
    );
    storage.delete(&id).await.unwrap();
    storage.delete(&id).await.unwrap();
    assert_eq!(next_change(&mut changes).await, Change::Removed(id.clone()));
    let other = test_id("watched", 2);
    storage.insert(&other, "x").await.unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Added(other),
        "no notice for the duplicate or the second delete"
    );
}

/// Ping succeeds on a working backend.
pub async fn ping_answers(storage: Arc<dyn CertStorage>) {
    storage.ping().await.unwrap();
}
