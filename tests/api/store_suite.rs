//! One suite for every `SessionStore` backend (as tower-sessions does): the memory store, the
//! Upstash store over the fake, and — when `UPSTASH_E2E_URL` and `UPSTASH_E2E_TOKEN` are set —
//! the Upstash store over a real Upstash-compatible server (e.g. upstash-on-redis).
//!
//! The data part checks every merge against [`AppData::merge`], the Rust twin of the Upstash
//! store's Lua script: on a real server that proves the Lua and the Rust agree byte for byte.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use rand::{rngs::StdRng, Rng, SeedableRng};
use upstash_sessions::{
    store::{
        AppData, Created, MemoryStore, Merged, SessionData, SessionId, SessionStore, UpstashStore,
    },
    upstash::{ClientConfig, Command, RetryPolicy, UpstashClient},
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
        data: AppData::empty(),
    }
}

fn now_ms() -> u64 {
    unix_now() * 1000
}

fn client(url: &str, token: &str) -> Arc<UpstashClient> {
    let mut config = ClientConfig::new(
        reqwest::Url::parse(url).unwrap(),
        token,
        Duration::from_secs(3),
    );
    // `UPSTASH_E2E_CA_CERT`: the private CA of an HTTPS endpoint (scripts/e2e-store.sh).
    config.extra_roots = crate::tls::e2e::extra_roots();
    Arc::new(UpstashClient::new(config).unwrap())
}

fn upstash(url: &str, token: &str) -> Arc<dyn SessionStore> {
    Arc::new(UpstashStore::new(client(url, token)))
}

fn upstash_with_limit(url: &str, token: &str, max: usize) -> Arc<dyn SessionStore> {
    Arc::new(UpstashStore::new(client(url, token)).with_max_sessions_per_user(max))
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

/// The ids `store` lists for `user`, sorted.
async fn listed(store: &Arc<dyn SessionStore>, user: &str) -> Vec<SessionId> {
    sorted(
        store
            .list_user(user)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect(),
    )
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
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
    assert_eq!(listed(&store, &user).await, sorted(vec![phone, tablet]));

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

fn parse(text: &str) -> AppData {
    AppData::parse(text).unwrap()
}

/// Merges `patch` and checks the stored result is exactly what [`AppData::merge`] gives.
async fn merge_checked(
    store: &dyn SessionStore,
    id: &SessionId,
    before: &AppData,
    patch: &str,
) -> AppData {
    let patch = parse(patch);
    let expected = before.merge(&patch).unwrap();
    let ttl = Duration::from_secs(60);
    match store
        .merge(id, &patch, ttl, now_ms(), 16_384)
        .await
        .unwrap()
    {
        Merged::Merged(session) => {
            assert_eq!(
                session.data.as_str(),
                expected.as_str(),
                "{}",
                patch.as_str()
            );
            let loaded = store.load(id, ttl).await.unwrap().unwrap();
            assert_eq!(loaded.data.as_str(), expected.as_str());
            expected
        }
        other => panic!("merge of {} answered {other:?}", patch.as_str()),
    }
}

/// Patches that exercise what a Lua merge over cjson would corrupt, and the text scanning of
/// the script (braces, brackets and quotes inside strings and keys).
const FIDELITY: &[&str] = &[
    r#"{"big":1234567890123456789,"bigger":-123456789012345678901234567890,"dec":0.1234567890123456789,"exp":1e400,"neg_exp":-1.5E-7,"avogadro":6.02e+23,"zero":-0.0}"#,
    r#"{"empty_array":[],"empty_object":{},"nested_empty":[[],{},[{}]],"mixed":[1,"two",null,true,{"a":[]}]}"#,
    r#"{"text":"caf\u00e9 \ud83d\ude00 日本 \"quoted\" back\\slash\nnew\u0001line \u2028","tricky":"{[\"}]\\","k\"e{y}":"v","[":"]"}"#,
    r#"{"user":"not the session's user","created_at":"not the session's","data":{"deep":{"er":{"est":1}}}}"#,
    r#"{"data":{"deep":{"er":{"est":null,"new":[]},"sibling":2}},"big":null,"mixed":{"now":"an object"}}"#,
    r#"{"empty_object":{"filled":{"x":null,"y":1}},"text":null,"k\"e{y}":{"a":1},"nested_empty":null}"#,
    r#"{"dec":{"was":"a number"},"exp":[1e400,0.1234567890123456789]}"#,
];

/// A random JSON value of at most `depth` more levels, over a small pool of keys so that
/// patches hit existing keys, with the literals cjson gets wrong.
fn random_value(rng: &mut StdRng, depth: u32, patch: bool) -> String {
    const SCALARS: &[&str] = &[
        "0",
        "-1",
        "1234567890123456789",
        "0.1234567890123456789",
        "1e400",
        "-2.5E-8",
        "true",
        "false",
        r#""é😀""#,
        r#""a\"b\\c""#,
        r#""{[}]""#,
        r#""""#,
        "[]",
        "{}",
        "[[],{}]",
    ];
    match rng.gen_range(0..10) {
        0..=2 if depth > 0 => random_object(rng, depth - 1, patch),
        3 if patch => "null".into(),
        4 if depth > 0 => format!(
            "[{},{}]",
            random_value(rng, depth - 1, false),
            random_value(rng, depth - 1, false)
        ),
        _ => SCALARS[rng.gen_range(0..SCALARS.len())].into(),
    }
}

fn random_object(rng: &mut StdRng, depth: u32, patch: bool) -> String {
    const KEYS: &[&str] = &["a", "b", "c", "é", r#"q\"uote"#, "{", "]", "data", "user"];
    let members: Vec<String> = (0..rng.gen_range(0..5))
        .map(|_| {
            let key = KEYS[rng.gen_range(0..KEYS.len())];
            format!(r#""{key}":{}"#, random_value(rng, depth, patch))
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

/// The data guarantees, on one store.
async fn data_suite(store: Arc<dyn SessionStore>) {
    let user = format!("suite-data-{}", uuid::Uuid::new_v4());
    let ttl = Duration::from_secs(60);
    let max = 16_384;

    // Data given at creation comes back as it went in; every merge is the Rust twin's.
    let id = SessionId::random();
    let mut record = data(&user);
    record.data = parse(r#"{"cart":{"apple":2},"id":1234567890123456789,"list":[]}"#);
    store.create(&id, &record, ttl, None).await.unwrap();
    assert_eq!(store.load(&id, ttl).await.unwrap(), Some(record.clone()));
    let mut current = record.data.clone();
    for patch in FIDELITY {
        current = merge_checked(&*store, &id, &current, patch).await;
    }
    // The fixed fields are not the data's: a patch cannot touch them.
    let session = store.load(&id, ttl).await.unwrap().unwrap();
    assert_eq!(
        (
            &session.user,
            session.created_at,
            session.absolute_expires_at
        ),
        (&user, record.created_at, record.absolute_expires_at)
    );

    // Random documents and patches, each merge checked against the Rust twin.
    let mut rng = StdRng::seed_from_u64(17);
    for round in 0..60 {
        let patch = if round % 15 == 0 {
            random_object(&mut rng, 3, false)
        } else {
            random_object(&mut rng, 4, true)
        };
        current = merge_checked(&*store, &id, &current, &patch).await;
    }

    // Over the limit: refused with the size, nothing written.
    let before = store.load(&id, ttl).await.unwrap().unwrap().data;
    let big = parse(&format!(r#"{{"blob":"{}"}}"#, "x".repeat(max)));
    let refused = store.merge(&id, &big, ttl, now_ms(), max).await.unwrap();
    assert!(
        matches!(refused, Merged::TooLarge { size } if size > max),
        "{refused:?}"
    );
    assert_eq!(store.load(&id, ttl).await.unwrap().unwrap().data, before);

    // 50 concurrent merges, each setting its own key: none is lost.
    let fresh = SessionId::random();
    store.create(&fresh, &data(&user), ttl, None).await.unwrap();
    let patches: Vec<AppData> = (0..50)
        .map(|i| parse(&format!(r#"{{"k{i}":{i}}}"#)))
        .collect();
    let results = join_all(
        patches
            .iter()
            .map(|p| store.merge(&fresh, p, ttl, now_ms(), max)),
    )
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(Merged::Merged(_)))));
    let stored = store.load(&fresh, ttl).await.unwrap().unwrap().data;
    let all: serde_json::Map<String, serde_json::Value> = stored.decode().unwrap();
    assert_eq!(all.len(), 50);
    assert!((0..50).all(|i| all[&format!("k{i}")] == i));

    // The limit holds under concurrency: of 20 concurrent merges of 100 bytes each into a
    // 1000-byte limit, 9 fit (9 * 100 + 8 commas + 2 braces = 910), the other 11 are refused.
    let tight = SessionId::random();
    store.create(&tight, &data(&user), ttl, None).await.unwrap();
    let patches: Vec<AppData> = (0..20)
        .map(|i| parse(&format!(r#"{{"k{i:02}":"{}"}}"#, "y".repeat(92))))
        .collect();
    let results = join_all(
        patches
            .iter()
            .map(|p| store.merge(&tight, p, ttl, now_ms(), 1000)),
    )
    .await;
    let merged = results
        .iter()
        .filter(|r| matches!(r, Ok(Merged::Merged(_))))
        .count();
    let refused = (results.iter())
        .filter(|r| matches!(r, Ok(Merged::TooLarge { .. })))
        .count();
    let stored = store.load(&tight, ttl).await.unwrap().unwrap().data;
    let keys = stored
        .decode::<serde_json::Map<String, serde_json::Value>>()
        .unwrap()
        .len();
    assert_eq!((merged, refused, keys, stored.len()), (9, 11, 9, 910));

    // A merge never brings a session back: not after a delete, not racing one.
    assert!(store.delete(&fresh).await.unwrap());
    let gone = store
        .merge(&fresh, &parse(r#"{"x":1}"#), ttl, now_ms(), max)
        .await
        .unwrap();
    assert_eq!(gone, Merged::Gone);
    assert_eq!(store.load(&fresh, ttl).await.unwrap(), None);
    let never = SessionId::random();
    let gone = store
        .merge(&never, &parse("{}"), ttl, now_ms(), max)
        .await
        .unwrap();
    assert_eq!(gone, Merged::Gone);
    assert_eq!(store.load(&never, ttl).await.unwrap(), None);
    let racing = SessionId::random();
    store
        .create(&racing, &data(&user), ttl, None)
        .await
        .unwrap();
    let patch = parse(r#"{"late":true}"#);
    let merges = join_all((0..20).map(|_| store.merge(&racing, &patch, ttl, now_ms(), max)));
    let (results, deleted) = tokio::join!(merges, store.delete(&racing));
    assert!(deleted.unwrap());
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(Merged::Merged(_) | Merged::Gone))));
    assert_eq!(store.load(&racing, ttl).await.unwrap(), None);
    // Nor racing the end of all of a user's sessions (`/logout/all/`).
    let everyone = format!("{user}-all");
    let racing = SessionId::random();
    store
        .create(&racing, &data(&everyone), ttl, None)
        .await
        .unwrap();
    let merges = join_all((0..20).map(|_| store.merge(&racing, &patch, ttl, now_ms(), max)));
    let (results, ended) = tokio::join!(merges, store.delete_user(&everyone));
    assert_eq!(ended.unwrap(), 1);
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(Merged::Merged(_) | Merged::Gone))));
    assert_eq!(store.load(&racing, ttl).await.unwrap(), None);

    // Past the absolute lifetime: deleted, nothing merged, whatever the idle expiry.
    let old = SessionId::random();
    let mut ending = data(&user);
    ending.absolute_expires_at = unix_now() + 100;
    store.create(&old, &ending, ttl, None).await.unwrap();
    let later = (unix_now() + 100) * 1000;
    let expired = store
        .merge(&old, &parse(r#"{"x":1}"#), ttl, later, max)
        .await
        .unwrap();
    assert_eq!(expired, Merged::Expired);
    assert_eq!(store.load(&old, ttl).await.unwrap(), None);

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
    assert_eq!(listed(&store, &user).await, sorted(mine.clone()));
    assert!(!store.delete_user_session(&user, &theirs).await.unwrap());
    assert!(store.load(&theirs, ttl).await.unwrap().is_some());
    assert!(store.delete_user_session(&user, &mine[0]).await.unwrap());
    assert!(!store.delete_user_session(&user, &mine[0]).await.unwrap());
    assert_eq!(store.delete_user(&user).await.unwrap(), 2);
    assert!(store.list_user(&user).await.unwrap().is_empty());
    assert_eq!(store.delete_user(&user).await.unwrap(), 0);
    assert!(store.load(&theirs, ttl).await.unwrap().is_some());
    assert_eq!(store.delete_user(&other_user).await.unwrap(), 1);

    // Expiry: a 1 s session is gone after 2 s, and never listed; a merge slides the idle
    // expiry as a read does (and one with a 1 s idle TTL lets the session go).
    let short = SessionId::random();
    store
        .create(&short, &data(&user), Duration::from_secs(1), None)
        .await
        .unwrap();
    let slid = SessionId::random();
    store
        .create(&slid, &data(&user), Duration::from_secs(1), None)
        .await
        .unwrap();
    let patch = parse(r#"{"slid":true}"#);
    let merged = store
        .merge(&slid, &patch, ttl, now_ms(), 16_384)
        .await
        .unwrap();
    assert!(matches!(merged, Merged::Merged(_)));
    let shortened = SessionId::random();
    store
        .create(&shortened, &data(&user), ttl, None)
        .await
        .unwrap();
    let one_second = Duration::from_secs(1);
    let merged = store
        .merge(&shortened, &patch, one_second, now_ms(), 16_384)
        .await
        .unwrap();
    assert!(matches!(merged, Merged::Merged(_)));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.load(&shortened, ttl).await.unwrap(), None);
    assert_eq!(store.load(&slid, ttl).await.unwrap().unwrap().data, patch);
    assert!(store.delete(&slid).await.unwrap());
    assert_eq!(store.load(&short, ttl).await.unwrap(), None);
    assert!(store.list_user(&user).await.unwrap().is_empty());
    assert!(!store.delete(&short).await.unwrap());

    store.ping().await.unwrap();
    data_suite(store).await;
}

/// A record written before sessions carried data loads as `{}` and takes a merge (the
/// script adds `data` at the end of the record), on an Upstash store over `client`.
async fn records_without_data_still_work(client: Arc<UpstashClient>) {
    let store = UpstashStore::new(client.clone());
    let id = SessionId::random();
    let old = format!(
        r#"{{"user":"legacy-{id}","status":"active","created_at":{},"absolute_expires_at":{}}}"#,
        unix_now(),
        unix_now() + 3600
    );
    let key = format!("session:{id}");
    let set = Command::new("SET")
        .arg(key.as_str())
        .arg(old.as_str())
        .arg("EX")
        .arg("60");
    client.command(&set, RetryPolicy::Once).await.unwrap();
    let ttl = Duration::from_secs(60);
    assert!(store.load(&id, ttl).await.unwrap().unwrap().data.is_empty());
    let patch = parse(r#"{"n":0.1234567890123456789,"a":[]}"#);
    let Merged::Merged(merged) = store
        .merge(&id, &patch, ttl, now_ms(), 16_384)
        .await
        .unwrap()
    else {
        panic!("the merge failed");
    };
    assert_eq!(merged.data, patch);
    let get = Command::new("GET").arg(key.as_str());
    let raw = client.command(&get, RetryPolicy::Once).await.unwrap();
    let expected = format!(
        r#"{},"data":{{"n":0.1234567890123456789,"a":[]}}}}"#,
        &old[..old.len() - 1]
    );
    assert_eq!(raw.as_str(), Some(expected.as_str()));
    store.delete(&id).await.unwrap();
}

/// Records and an index written as every release so far writes them list with their own
/// times, on an Upstash store over `client`: the listing script finds the fields wherever
/// `data` mentions their names, skips another user's record and a missing one, and reports a
/// record that is not one.
async fn old_records_list_with_their_times(client: Arc<UpstashClient>) {
    use upstash_sessions::store::ListedSession;
    let store = UpstashStore::new(client.clone());
    let user = format!(r#"o"ld {} ü\"#, uuid::Uuid::new_v4());
    let user_json = serde_json::to_string(&user).unwrap();
    let index = format!("user_sessions:{user}");
    let now = unix_now();
    let record = |user_json: &str, created_at: u64, data: &str| {
        format!(
            r#"{{"user":{user_json},"status":"active","created_at":{created_at},"absolute_expires_at":{}{data}}}"#,
            created_at + 3600
        )
    };
    let ids: Vec<SessionId> = (0..6).map(|_| SessionId::random()).collect();
    let tricky = r#","data":{"created_at":"\"created_at\":1,","user":{"user":2},"absolute_expires_at":[3,{"x":"]}"}]}"#;
    let records = [
        Some(record(&user_json, now - 40, tricky)),
        Some(record(&user_json, now - 30, "")),
        Some(record(r#""someone else""#, now - 20, r#","data":{}"#)),
        None,
        Some(record(&user_json, now - 10, r#","data":{"big":"x"}"#)),
        // No writer puts `data` first, but the script reads such a record too.
        Some(format!(
            r#"{{"data":{{"user":{user_json},"created_at":1,"s":"}}\\"}},"user":{user_json},"status":"active","created_at":{},"absolute_expires_at":{}}}"#,
            now - 50,
            now - 50 + 3600
        )),
    ];
    for (id, record) in ids.iter().zip(&records) {
        if let Some(record) = record {
            let key = format!("session:{id}");
            let set = Command::new("SET")
                .arg(key.as_str())
                .arg(record.as_str())
                .arg("EX")
                .arg("60");
            client.command(&set, RetryPolicy::Once).await.unwrap();
        }
        let zadd = Command::new("ZADD")
            .arg(index.as_str())
            .int(now as i64 + 3600)
            .arg(id.to_string());
        client.command(&zadd, RetryPolicy::Once).await.unwrap();
    }
    let mut listed = store.list_user(&user).await.unwrap();
    listed.sort_by_key(|s| s.created_at);
    let expected: Vec<ListedSession> = [(5, 50), (0, 40), (1, 30), (4, 10)]
        .iter()
        .map(|&(i, ago)| ListedSession {
            id: ids[i],
            created_at: now - ago,
            absolute_expires_at: now - ago + 3600,
        })
        .collect();
    assert_eq!(listed, expected);
    // A record that is not one fails the listing (as a read of it does), naming no value.
    let key = format!("session:{}", ids[4]);
    let set = Command::new("SET")
        .arg(key.as_str())
        .arg(r#"{"user":"x"#)
        .arg("EX")
        .arg("60");
    client.command(&set, RetryPolicy::Once).await.unwrap();
    let failed = store.list_user(&user).await;
    assert!(
        matches!(failed, Err(upstash_sessions::store::StoreError::Corrupt(_))),
        "{failed:?}"
    );
    store.delete_user(&user).await.unwrap();
}

#[tokio::test]
async fn the_store_suite_passes_on_the_memory_store() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn the_store_suite_passes_on_the_upstash_store() {
    let fake = FakeUpstash::start().await;
    suite(upstash(&fake.uri(), FAKE_TOKEN)).await;
    records_without_data_still_work(client(&fake.uri(), FAKE_TOKEN)).await;
    old_records_list_with_their_times(client(&fake.uri(), FAKE_TOKEN)).await;
}

#[tokio::test]
#[ignore = "needs a real Upstash-compatible server: run by scripts/e2e-store.sh"]
async fn the_store_suite_passes_on_a_real_upstash() {
    let (url, token) = real_upstash();
    suite(upstash(&url, &token)).await;
    records_without_data_still_work(client(&url, &token)).await;
    old_records_list_with_their_times(client(&url, &token)).await;
    // The SHA-1 the store sends with EVALSHA is the one Redis cached the script under, so
    // after the first EVAL every merge is one EVALSHA.
    let exists = Command::new("SCRIPT")
        .arg("EXISTS")
        .arg(upstash_sessions::store::upstash::merge_script_sha());
    let reply = client(&url, &token)
        .command(&exists, RetryPolicy::Once)
        .await
        .unwrap();
    assert_eq!(
        reply.into_array(),
        Some(vec![upstash_sessions::upstash::Reply::Int(1)])
    );
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
