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
    upstash_with_limit(
        url,
        token,
        upstash_sessions::store::DEFAULT_MAX_SESSIONS_PER_USER,
    )
}

fn upstash_with_limit(url: &str, token: &str, max: usize) -> Arc<dyn SessionStore> {
    let config = ClientConfig::new(
        reqwest::Url::parse(url).unwrap(),
        token,
        Duration::from_secs(3),
    );
    Arc::new(
        UpstashStore::new(Arc::new(UpstashClient::new(config).unwrap()))
            .with_max_sessions_per_user(max),
    )
}

fn memory_with_limit(max: usize) -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new().with_max_sessions_per_user(max))
}

/// The real server the e2e script points at; these tests are `#[ignore]`d and run by
/// `scripts/e2e-store.sh` with `--include-ignored`, which sets both variables.
fn real_upstash() -> (String, String) {
    match (
        std::env::var("UPSTASH_E2E_URL"),
        std::env::var("UPSTASH_E2E_TOKEN"),
    ) {
        (Ok(url), Ok(token)) => (url, token),
        _ => panic!("set UPSTASH_E2E_URL and UPSTASH_E2E_TOKEN (scripts/e2e-store.sh does)"),
    }
}

/// A record of `user` whose absolute expiry is `rank` seconds after the others', so the
/// per-user limit's "oldest" (earliest absolute expiry) is the same on every store.
fn ranked(user: &str, rank: u64) -> SessionData {
    SessionData {
        absolute_expires_at: unix_now() + 3600 + rank,
        ..data(user)
    }
}

/// The per-user limit counts live sessions only: logged-out and rotated sessions never
/// push a live one out. Run with `with_limit(2)` and the default limit.
async fn limit_suite(with_limit: impl Fn(usize) -> Arc<dyn SessionStore>) {
    let ttl = Duration::from_secs(60);
    let user = format!("limit-{}", uuid::Uuid::new_v4());
    let store = with_limit(2);
    let create = |store: Arc<dyn SessionStore>, rank: u64, replaces: Option<SessionId>| {
        let user = user.clone();
        async move {
            let id = SessionId::random();
            let created = store
                .create(&id, &ranked(&user, rank), ttl, replaces.as_ref())
                .await
                .unwrap();
            assert_eq!(created, Created::Created);
            id
        }
    };
    // A laptop and a phone, then the phone logs in again (rotation): the laptop stays.
    let laptop = create(store.clone(), 0, None).await;
    let phone = create(store.clone(), 1, None).await;
    let phone = create(store.clone(), 2, Some(phone)).await;
    assert!(store.load(&laptop, ttl).await.unwrap().is_some(), "laptop");
    assert!(store.load(&phone, ttl).await.unwrap().is_some(), "phone");
    // Logins followed by logouts leave nothing that counts.
    assert!(store.delete(&phone).await.unwrap());
    for rank in 3..8 {
        let id = create(store.clone(), rank, None).await;
        assert!(store.delete(&id).await.unwrap());
    }
    let phone = create(store.clone(), 8, None).await;
    assert!(
        store.load(&laptop, ttl).await.unwrap().is_some(),
        "laptop after logouts"
    );
    // A third live session really is past the limit: the oldest live one (the laptop) ends.
    let tablet = create(store.clone(), 9, None).await;
    assert_eq!(
        store.load(&laptop, ttl).await.unwrap(),
        None,
        "laptop evicted"
    );
    let mut listed: Vec<SessionId> = store
        .list_user(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    listed.sort();
    let mut expected = vec![phone, tablet];
    expected.sort();
    assert_eq!(listed, expected);

    // With the default limit (100): a laptop, then 99 phone logins each logged out, then one
    // more phone login: the laptop stays.
    let user = format!("limit-{}", uuid::Uuid::new_v4());
    let store = with_limit(upstash_sessions::store::DEFAULT_MAX_SESSIONS_PER_USER);
    let laptop = SessionId::random();
    store
        .create(&laptop, &ranked(&user, 0), ttl, None)
        .await
        .unwrap();
    for rank in 1..=99 {
        let id = SessionId::random();
        store
            .create(&id, &ranked(&user, rank), ttl, None)
            .await
            .unwrap();
        assert!(store.delete(&id).await.unwrap());
    }
    let phone = SessionId::random();
    store
        .create(&phone, &ranked(&user, 100), ttl, None)
        .await
        .unwrap();
    assert!(
        store.load(&laptop, ttl).await.unwrap().is_some(),
        "laptop after 99 logouts"
    );
    assert!(store.load(&phone, ttl).await.unwrap().is_some());
    assert_eq!(store.delete_user(&user).await.unwrap(), 2);
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
#[ignore = "needs a real Upstash-compatible server: run by scripts/e2e-store.sh"]
async fn the_store_suite_passes_on_a_real_upstash() {
    let (url, token) = real_upstash();
    suite(upstash(&url, &token)).await;
}

#[tokio::test]
async fn the_limit_counts_live_sessions_only_on_the_memory_store() {
    limit_suite(memory_with_limit).await;
}

#[tokio::test]
async fn the_limit_counts_live_sessions_only_on_the_upstash_store() {
    let fake = FakeUpstash::start().await;
    let uri = fake.uri();
    limit_suite(|max| upstash_with_limit(&uri, FAKE_TOKEN, max)).await;
}

#[tokio::test]
#[ignore = "needs a real Upstash-compatible server: run by scripts/e2e-store.sh"]
async fn the_limit_counts_live_sessions_only_on_a_real_upstash() {
    let (url, token) = real_upstash();
    limit_suite(|max| upstash_with_limit(&url, &token, max)).await;
}
