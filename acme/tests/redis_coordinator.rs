//! The Redis coordinator against a private `redis-server`: exclusive locks that expire, fencing
//! that refuses a stalled holder, challenges with a TTL, the first stored account kept.

#![cfg(feature = "redis")]

use std::time::Duration;

use acme::{Commit, Coordinator as _, RedisCoordinator};
use cert_store::testkit::RedisServer;

#[tokio::test]
async fn locks_fence_stalled_holders_and_challenges_expire() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let one = RedisCoordinator::connect(&redis.url()).await.unwrap();
    let two = RedisCoordinator::connect(&redis.url()).await.unwrap();
    let ttl = Duration::from_millis(600);
    let first = one.acquire("a.example", ttl).await.unwrap().unwrap();
    assert!(two.acquire("a.example", ttl).await.unwrap().is_none());
    assert!(two.acquire("b.example", ttl).await.unwrap().is_some());
    assert!(one.extend(&first, ttl).await.unwrap());

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!one.extend(&first, ttl).await.unwrap(), "expired");
    let second = two.acquire("a.example", ttl).await.unwrap().unwrap();
    assert!(second.fence > first.fence);
    assert_eq!(
        two.commit(&second, "new").await.unwrap(),
        Commit::Committed { previous: None }
    );
    assert_eq!(
        one.commit(&first, "stale").await.unwrap(),
        Commit::Superseded
    );
    one.release(&first).await.unwrap();
    assert!(
        one.acquire("a.example", ttl).await.unwrap().is_none(),
        "still held by two"
    );
    assert_eq!(
        one.current("a.example").await.unwrap().as_deref(),
        Some("new")
    );
    two.release(&second).await.unwrap();
    let third = one.acquire("a.example", ttl).await.unwrap().unwrap();
    assert_eq!(
        one.commit(&third, "newer").await.unwrap(),
        Commit::Committed {
            previous: Some("new".to_owned())
        }
    );

    one.put_challenge("http-01:tok", "tok.thumb", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        two.challenge("http-01:tok").await.unwrap().as_deref(),
        Some("tok.thumb")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(two.challenge("http-01:tok").await.unwrap(), None);

    assert_eq!(one.put_account("dir", "first").await.unwrap(), "first");
    assert_eq!(two.put_account("dir", "second").await.unwrap(), "first");
    assert_eq!(two.account("dir").await.unwrap().as_deref(), Some("first"));
}
