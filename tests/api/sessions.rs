//! A user's sessions: list them, end one, end all; on both stores.

use std::time::Duration;

use crate::helpers::{id_of, json, set_cookie, spawn_app_with, Backend};
use crate::on_both_backends;

async fn listing_shows_every_live_session_of_the_user_newest_first(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, first) = app.login("alice").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, second) = app.login("alice").await;
    let (_, _bob) = app.login("bob").await;
    let response = app.get("/sessions/", Some(&first)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json(response).await;
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{body}");
    assert_eq!(sessions[0]["session_id"], id_of(&second).as_str());
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["session_id"], id_of(&first).as_str());
    assert_eq!(sessions[1]["current"], true);
    assert!(sessions[0]["created_at"].as_u64() > sessions[1]["created_at"].as_u64());
}

async fn expired_and_logged_out_sessions_are_never_listed(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.idle_ttl = Duration::from_secs(1)).await;
    let (_, short) = app.login("alice").await;
    let (_, gone) = app.login("alice").await;
    app.logout(Some(&gone)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, current) = app.login("alice").await;
    let body = json(app.get("/sessions", Some(&current)).await).await;
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id_of(&current).as_str()]);
    assert!(!ids.contains(&id_of(&short).as_str()));
}

async fn listing_needs_a_live_session(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    assert_eq!(app.get("/sessions/", None).await.status(), 403);
    let bogus = format!("session_id={}", uuid::Uuid::new_v4());
    assert_eq!(app.get("/sessions/", Some(&bogus)).await.status(), 404);
}

async fn a_user_can_end_another_of_their_sessions(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, laptop) = app.login("alice").await;
    let (_, phone) = app.login("alice").await;
    let response = app
        .delete(&format!("/sessions/{}", id_of(&phone)), Some(&laptop))
        .await;
    assert_eq!(response.status(), 200);
    assert!(set_cookie(&response, "session_id").is_none());
    assert_eq!(json(response).await["message"], "Session ended");
    assert_eq!(app.profile(Some(&phone)).await.status(), 404);
    assert_eq!(app.profile(Some(&laptop)).await.status(), 200);
}

async fn ending_the_current_session_by_id_clears_the_cookie(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let response = app
        .delete(&format!("/sessions/{}", id_of(&cookie)), Some(&cookie))
        .await;
    assert_eq!(response.status(), 200);
    assert!(set_cookie(&response, "session_id")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
}

async fn another_users_session_cannot_be_ended_or_probed(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, alice) = app.login("alice").await;
    let (_, bob) = app.login("bob").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let bobs = id_of(&bob);
    for target in [bobs.as_str(), unknown.as_str(), "not-a-uuid", "*"] {
        let response = app
            .delete(&format!("/sessions/{target}"), Some(&alice))
            .await;
        assert_eq!(response.status(), 404, "{target}");
        assert_eq!(
            json(response).await["error"],
            "Session not found or expired"
        );
    }
    assert_eq!(app.profile(Some(&bob)).await.status(), 200);
}

async fn logout_all_ends_every_session_of_the_user_and_only_theirs(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, a1) = app.login("alice").await;
    let (_, a2) = app.login("alice").await;
    let (_, a3) = app.login("alice").await;
    let (_, bob) = app.login("bob").await;
    let response = app.post("/logout/all/", Some(&a2)).await;
    assert_eq!(response.status(), 200);
    assert!(set_cookie(&response, "session_id")
        .unwrap()
        .contains("Max-Age=0"));
    let body = json(response).await;
    assert_eq!(body["message"], "Logged out of all sessions");
    assert_eq!(body["ended"], 3);
    for cookie in [&a1, &a2, &a3] {
        assert_eq!(app.profile(Some(cookie)).await.status(), 404);
    }
    assert_eq!(app.profile(Some(&bob)).await.status(), 200);
    assert_eq!(app.post("/logout/all", Some(&a1)).await.status(), 404);
    assert_eq!(app.post("/logout/all", None).await.status(), 403);
}

async fn a_session_created_during_logout_all_is_listed_or_ended(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, keeper) = app.login("alice").await;
    let mut racers = Vec::new();
    for _ in 0..10 {
        let (_, cookie) = app.login("alice").await;
        racers.push(cookie);
    }
    let (logout_all, late) = tokio::join!(app.post("/logout/all/", Some(&keeper)), async {
        let mut late = Vec::new();
        for _ in 0..5 {
            late.push(app.login("alice").await.1);
        }
        late
    });
    assert_eq!(logout_all.status(), 200);
    // Every session that still answers must be listed.
    let alive: Vec<&String> = {
        let mut alive = Vec::new();
        for cookie in late.iter() {
            if app.profile(Some(cookie)).await.status() == 200 {
                alive.push(cookie);
            }
        }
        alive
    };
    if let Some(viewer) = alive.first() {
        let body = json(app.get("/sessions/", Some(viewer)).await).await;
        let listed: Vec<String> = body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_owned())
            .collect();
        for cookie in &alive {
            assert!(
                listed.contains(&id_of(cookie)),
                "a live session is missing from the list"
            );
        }
    }
    for cookie in &racers {
        assert_eq!(app.profile(Some(cookie)).await.status(), 404);
    }
}

on_both_backends!(
    listing_shows_every_live_session_of_the_user_newest_first,
    expired_and_logged_out_sessions_are_never_listed,
    listing_needs_a_live_session,
    a_user_can_end_another_of_their_sessions,
    ending_the_current_session_by_id_clears_the_cookie,
    another_users_session_cannot_be_ended_or_probed,
    logout_all_ends_every_session_of_the_user_and_only_theirs,
    a_session_created_during_logout_all_is_listed_or_ended,
    a_login_past_the_per_user_limit_ends_the_oldest_sessions,
);

#[tokio::test]
async fn upstash_costs_one_request_for_login_profile_and_logout_and_few_for_lists() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let fake = app.fake();
    let (_, other) = app.login("alice").await;
    fake.reset_counters();
    let (_, cookie) = app.login("alice").await;
    assert_eq!(fake.requests(), 1, "login: {:?}", fake.command_names());
    fake.reset_counters();
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    assert_eq!(fake.command_names(), vec![vec!["GETEX".to_owned()]]);
    fake.reset_counters();
    // The first listing of a process also loads the listing script into Redis's cache (one
    // EVAL after the EVALSHA's NOSCRIPT); every later one is 3 requests.
    assert_eq!(app.get("/sessions/", Some(&cookie)).await.status(), 200);
    assert_eq!(fake.requests(), 4, "list: {:?}", fake.command_names());
    fake.reset_counters();
    assert_eq!(app.get("/sessions/", Some(&cookie)).await.status(), 200);
    let names: Vec<Vec<String>> = [
        &["GETEX"][..],
        &["ZREMRANGEBYSCORE", "ZRANGE"],
        &["EVALSHA"],
    ]
    .iter()
    .map(|r| r.iter().map(|n| n.to_string()).collect())
    .collect();
    assert_eq!(fake.command_names(), names, "list");
    fake.reset_counters();
    app.logout(Some(&other)).await;
    assert_eq!(fake.command_names(), vec![vec!["DEL".to_owned()]]);
}

#[tokio::test]
async fn the_upstash_user_index_is_pruned_and_expires() {
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.session.absolute_ttl = Duration::from_secs(1);
    })
    .await;
    for _ in 0..5 {
        app.login("carol").await;
    }
    assert_eq!(app.fake().zcard("user_sessions:carol"), 5);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.login("carol").await;
    // Entries past their absolute lifetime are pruned on the next write.
    assert_eq!(app.fake().zcard("user_sessions:carol"), 1);
    let ttl = app.fake().ttl("user_sessions:carol").unwrap();
    assert!((0..=2).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn a_shorter_absolute_lifetime_after_a_redeploy_never_shortens_the_index() {
    use crate::fake_upstash::FakeUpstash;
    use crate::helpers::{spawn_with_settings, test_settings};
    let fake = FakeUpstash::start().await;
    let mut long = test_settings(Some(fake.uri()));
    long.session.absolute_ttl = Duration::from_secs(3600);
    let mut short = test_settings(Some(fake.uri()));
    short.session.absolute_ttl = Duration::from_secs(60);
    let before = spawn_with_settings(long, None).await;
    let after = spawn_with_settings(short, Some(fake)).await;
    let (_, laptop) = before.login("dana").await;
    let (_, phone) = after.login("dana").await;
    let ttl = after.fake().ttl("user_sessions:dana").unwrap();
    assert!(ttl > 3500, "the index must outlive the 1 h session: {ttl}");
    let body = json(after.get("/sessions/", Some(&phone)).await).await;
    assert_eq!(body["sessions"].as_array().unwrap().len(), 2, "{body}");
    let ended = json(after.post("/logout/all/", Some(&phone)).await).await;
    assert_eq!(ended["ended"], 2);
    assert_eq!(before.profile(Some(&laptop)).await.status(), 404);
}

async fn a_login_past_the_per_user_limit_ends_the_oldest_sessions(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.max_per_user = 3).await;
    let mut cookies = Vec::new();
    for _ in 0..3 {
        cookies.push(app.login("erin").await.1);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        cookies.push(app.login("erin").await.1);
    }
    let newest = cookies.last().unwrap();
    assert_eq!(app.profile(Some(newest)).await.status(), 200);
    let listed = json(app.get("/sessions/", Some(newest)).await).await["sessions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, 3);
    let alive = {
        let mut n = 0;
        for cookie in &cookies {
            if app.profile(Some(cookie)).await.status() == 200 {
                n += 1;
            }
        }
        n
    };
    assert_eq!(alive, 3);
    // The two logged in last survive: the eviction took older ones.
    assert_eq!(app.profile(Some(&cookies[3])).await.status(), 200);
    if let Some(fake) = &app.upstash {
        assert_eq!(fake.zcard("user_sessions:erin"), 3);
    }
    // Another user is not affected.
    let (_, other) = app.login("frank").await;
    assert_eq!(app.profile(Some(&other)).await.status(), 200);
}

/// Sharing of `/pipeline` requests itself is shown deterministically by the client test
/// `commands_issued_together_share_one_pipeline_request_and_keep_their_own_results`; here,
/// whatever the batching, each read is one command and answers its own session.
#[tokio::test]
async fn concurrent_profile_reads_cost_one_getex_each_and_answer_their_own_session() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let mut cookies = Vec::new();
    for i in 0..40 {
        cookies.push(app.login(&format!("user{i}")).await.1);
    }
    let fake = app.fake();
    fake.reset_counters();
    let reads = futures_util::future::join_all(cookies.iter().map(|c| app.profile(Some(c)))).await;
    for (read, cookie) in reads.into_iter().zip(&cookies) {
        assert_eq!(read.status(), 200);
        assert_eq!(json(read).await["session_id"], id_of(cookie).as_str());
    }
    assert_eq!(fake.commands(), 40, "one GETEX per read");
    assert!(fake
        .command_names()
        .iter()
        .flatten()
        .all(|name| name == "GETEX"));
}

#[tokio::test]
async fn the_current_session_is_listed_and_ended_even_when_the_user_index_lags_behind() {
    use upstash_sessions::upstash::{ClientConfig, Command, RetryPolicy, UpstashClient};
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("ivan").await;
    let id = id_of(&cookie);
    // The index misses the live session (a replica behind, or a write that half failed).
    let client = UpstashClient::new(ClientConfig::new(
        reqwest::Url::parse(&app.fake().uri()).unwrap(),
        crate::fake_upstash::FAKE_TOKEN,
        std::time::Duration::from_secs(2),
    ))
    .unwrap();
    let zrem = Command::new("ZREM")
        .arg("user_sessions:ivan")
        .arg(id.as_str());
    client.command(&zrem, RetryPolicy::Once).await.unwrap();
    let body = json(app.get("/sessions/", Some(&cookie)).await).await;
    let listed = body["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["session_id"], id.as_str());
    assert_eq!(listed[0]["current"], true);
    // "Log out everywhere" ends it too, and says so.
    let all = json(app.post("/logout/all/", Some(&cookie)).await).await;
    assert_eq!(all["ended"], 1, "{all}");
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
    // So does ending it by id from the listing.
    let (_, cookie) = app.login("ivan").await;
    let id = id_of(&cookie);
    let zrem = Command::new("ZREM")
        .arg("user_sessions:ivan")
        .arg(id.as_str());
    client.command(&zrem, RetryPolicy::Once).await.unwrap();
    let ended = app.delete(&format!("/sessions/{id}"), Some(&cookie)).await;
    assert_eq!(ended.status(), 200);
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
}

#[tokio::test]
async fn on_upstash_a_listing_transfers_a_few_bytes_per_session_whatever_their_data() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let fake = app.fake();
    let login = serde_json::json!({"username": "alice", "data": {"blob": "x".repeat(15_000)}});
    let mut cookie = String::new();
    for _ in 0..20 {
        let response = app.post_login(&login.to_string(), None).await;
        assert_eq!(response.status(), 200);
        cookie = crate::helpers::session_cookie(&response).unwrap();
    }
    // What reading the request's own session costs (one GETEX of its record, data included)...
    fake.reset_counters();
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    let own = fake.reply_bytes();
    // ...and what the listing adds to it for the 20 sessions.
    fake.reset_counters();
    let response = app.get("/sessions/", Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await["sessions"].as_array().unwrap().len(),
        20
    );
    let listing = fake.reply_bytes() - own;
    assert!(
        listing < 20 * 200,
        "the listing of 20 sessions with 15 KB of data each pulled {listing} bytes of Upstash \
         replies besides the request's own session ({own} bytes): {:?}",
        fake.command_names()
    );
}

/// A record exactly as the releases before this one write it (field order and escaping of
/// serde_json; `data` absent in records from before sessions carried data).
fn old_record(user_json: &str, created_at: u64, data: Option<&str>) -> String {
    let expires = created_at + 43_200;
    let data = data.map_or(String::new(), |d| format!(r#","data":{d}"#));
    format!(
        r#"{{"user":{user_json},"status":"active","created_at":{created_at},"absolute_expires_at":{expires}{data}}}"#
    )
}

#[tokio::test]
async fn on_upstash_sessions_stored_before_an_upgrade_still_list_and_work() {
    use upstash_sessions::{
        session::{CookieSigner, SigningKey},
        store::SessionId,
        upstash::{ClientConfig, Command, RetryPolicy, UpstashClient},
    };
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let user = r#"zoë "z""#;
    let user_json = serde_json::to_string(user).unwrap();
    let index = format!("user_sessions:{user}");
    let (_, current) = app.login(user).await;
    let client = UpstashClient::new(ClientConfig::new(
        reqwest::Url::parse(&app.fake().uri()).unwrap(),
        crate::fake_upstash::FAKE_TOKEN,
        Duration::from_secs(2),
    ))
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Three sessions written by the previous release: one whose data holds the listing's
    // field names as keys and values, one from before sessions carried data, and another
    // user's record that found its way into this index; all indexed as that release indexes.
    let (tricky, bare, foreign) = (
        SessionId::random(),
        SessionId::random(),
        SessionId::random(),
    );
    let records = [
        (
            tricky,
            old_record(
                &user_json,
                now - 20,
                Some(
                    r#"{"created_at":"\"created_at\":1,","user":{"created_at":2},"absolute_expires_at":[3]}"#,
                ),
            ),
        ),
        (bare, old_record(&user_json, now - 10, None)),
        (foreign, old_record(r#""mallory""#, now - 5, Some("{}"))),
    ];
    for (id, record) in &records {
        let key = format!("session:{id}");
        let set = Command::new("SET")
            .arg(key.as_str())
            .arg(record.as_str())
            .arg("EX")
            .int(900);
        client.command(&set, RetryPolicy::Once).await.unwrap();
        let zadd = Command::new("ZADD")
            .arg(index.as_str())
            .int(now as i64 + 43_000)
            .arg(id.to_string());
        client.command(&zadd, RetryPolicy::Once).await.unwrap();
    }
    let body = json(app.get("/sessions/", Some(&current)).await).await;
    let listed: Vec<(String, u64)> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = s["session_id"].as_str().unwrap().to_owned();
            (id, s["created_at"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (id_of(&current), listed[0].1),
            (bare.to_string(), now - 10),
            (tricky.to_string(), now - 20),
        ],
        "{body}"
    );
    // They work as sessions too: read, patched, ended from the listing.
    let signer = CookieSigner::new(
        SigningKey::from_upstash_token(crate::fake_upstash::FAKE_TOKEN.as_bytes()),
        None,
    );
    let bare_cookie = format!("session_id={}", signer.sign(&bare));
    let profile = json(app.profile(Some(&bare_cookie)).await).await;
    assert_eq!(profile["session_data"]["user"], user, "{profile}");
    assert_eq!(profile["session_data"]["data"], serde_json::json!({}));
    let tricky_cookie = format!("session_id={}", signer.sign(&tricky));
    let patched = app.patch(&tricky_cookie, r#"{"cart": 1}"#).await;
    assert_eq!(patched["session_data"]["data"]["cart"], 1, "{patched}");
    assert_eq!(patched["session_data"]["created_at"], now - 20);
    let ended = app
        .delete(&format!("/sessions/{bare}"), Some(&current))
        .await;
    assert_eq!(ended.status(), 200);
    assert_eq!(app.profile(Some(&bare_cookie)).await.status(), 404);
}
