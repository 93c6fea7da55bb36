//! One suite for every `SessionStore` backend (as tower-sessions does): the memory store, the
//! Upstash store over the fake, and — when `UPSTASH_E2E_URL` and `UPSTASH_E2E_TOKEN` are set —
//! the Upstash store over a real Upstash-compatible server (e.g. upstash-on-redis).

use std::{sync::Arc, time::Duration};

use upstash_sessions::{
    store::{Created, MemoryStore, SessionData, SessionId, SessionStore, UpstashStore},
    upstash::{ClientConfig, UpstashClient},
};

use crate::fake_upstash::{FakeUpstash, FAKE_TOKEN};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn data(user: &str) -> SessionData {
    SessionData {
        user: user.to_owned(),
        status: "active".to_owned(),
        created_at: unix_now(),
        absolute_expires_at: unix_now() + 3600,
    }
}

fn upstash(url: &str, token: &str) -> Arc<dyn SessionStore> {
    let mut config = ClientConfig::new(
        reqwest::Url::parse(url).unwrap(),
        token,
        Duration::from_secs(3),
    );
    // `UPSTASH_E2E_CA_CERT`: the private CA of an HTTPS endpoint (scripts/e2e-store.sh).
    config.extra_roots = crate::tls::e2e::extra_roots();
    Arc::new(UpstashStore::new(Arc::new(
        UpstashClient::new(config).unwrap(),
    )))
}

/// Runs the suite on one store; `user` is made unique per run so real servers can be shared.
async fn suite(store: Arc<dyn SessionStore>) {
    let user = format!("suite-{}", uuid::Uuid::new_v4());
    let ttl = Duration::from_secs(60);

    // create + load round trip, with the TTL slid by load.
    let id = SessionId::random();
    let record = data(&user);
    assert_eq!(
        store.create(&id, &record, ttl, None).await.unwrap(),
        Created::Created
    );
    assert_eq!(store.load(&id, ttl).await.unwrap(), Some(record.clone()));

    // The same id cannot be created twice.
    assert_eq!(
        store
            .create(&id, &data("mallory"), ttl, None)
            .await
            .unwrap(),
        Created::IdTaken
    );
    assert_eq!(store.load(&id, ttl).await.unwrap().unwrap().user, user);

    // Rotation: the replaced session is gone, the new one lives.
    let rotated = SessionId::random();
    store
        .create(&rotated, &record, ttl, Some(&id))
        .await
        .unwrap();
    assert_eq!(store.load(&id, ttl).await.unwrap(), None);
    assert!(store.load(&rotated, ttl).await.unwrap().is_some());

    // Delete is final and reports whether something was there.
    assert!(store.delete(&rotated).await.unwrap());
    assert!(!store.delete(&rotated).await.unwrap());
    assert_eq!(store.load(&rotated, ttl).await.unwrap(), None);

    // Listing, ending one, ending all.
    let mut mine = Vec::new();
    for _ in 0..3 {
        let id = SessionId::random();
        store.create(&id, &data(&user), ttl, None).await.unwrap();
        mine.push(id);
    }
    let other_user = format!("{user}-other");
    let theirs = SessionId::random();
    store
        .create(&theirs, &data(&other_user), ttl, None)
        .await
        .unwrap();
    let mut listed: Vec<SessionId> = store
        .list_user(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    listed.sort();
    let mut expected = mine.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(!store.delete_user_session(&user, &theirs).await.unwrap());
    assert!(store.load(&theirs, ttl).await.unwrap().is_some());
    assert!(store.delete_user_session(&user, &mine[0]).await.unwrap());
    assert!(!store.delete_user_session(&user, &mine[0]).await.unwrap());
    assert_eq!(store.delete_user(&user).await.unwrap(), 2);
    assert!(store.list_user(&user).await.unwrap().is_empty());
    assert_eq!(store.delete_user(&user).await.unwrap(), 0);
    assert!(store.load(&theirs, ttl).await.unwrap().is_some());
    assert_eq!(store.delete_user(&other_user).await.unwrap(), 1);

    // Expiry: a 1 s session is gone after 2 s, and never listed.
    let short = SessionId::random();
    store
        .create(&short, &data(&user), Duration::from_secs(1), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.load(&short, ttl).await.unwrap(), None);
    assert!(store.list_user(&user).await.unwrap().is_empty());
    assert!(!store.delete(&short).await.unwrap());

    store.ping().await.unwrap();
}

#[tokio::test]
async fn the_store_suite_passes_on_the_memory_store() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn the_store_suite_passes_on_the_upstash_store() {
    let fake = FakeUpstash::start().await;
    suite(upstash(&fake.uri(), FAKE_TOKEN)).await;
}

#[tokio::test]
async fn the_store_suite_passes_on_a_real_upstash_when_configured() {
    let (Ok(url), Ok(token)) = (
        std::env::var("UPSTASH_E2E_URL"),
        std::env::var("UPSTASH_E2E_TOKEN"),
    ) else {
        eprintln!("UPSTASH_E2E_URL/UPSTASH_E2E_TOKEN not set: nothing to check");
        return;
    };
    suite(upstash(&url, &token)).await;
}
