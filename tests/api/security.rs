//! The secure lifecycle: signed cookies and key rotation, absolute lifetime, rotation on
//! login, cookie attributes.

use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::fake_upstash::{FakeUpstash, FAKE_TOKEN};
use crate::helpers::{
    id_of, json, session_cookie, set_cookie, spawn_app_with, spawn_with_settings, test_settings,
    Backend,
};
use crate::on_both_backends;

const SECRET_A: &str = "secret-a-secret-a-secret-a-secret-a-0001";
const SECRET_B: &str = "secret-b-secret-b-secret-b-secret-b-0002";

async fn a_tampered_cookie_is_404_and_costs_no_store_request(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let requests = app.upstash_count();
    let (name_id, tag) = cookie.split_once('.').unwrap();
    // Another id with the same tag, and the same id with a flipped tag bit.
    let other_id = format!("session_id={}.{tag}", uuid::Uuid::new_v4());
    let mut flipped = tag.to_owned().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{name_id}.{}", String::from_utf8(flipped).unwrap());
    for forged in [other_id, flipped, format!("session_id={}", id_of(&cookie))] {
        assert_eq!(app.profile(Some(&forged)).await.status(), 404, "{forged}");
    }
    app.assert_upstash_requests_since(requests, 0);
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
}

async fn the_absolute_lifetime_ends_a_session_in_use(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.absolute_ttl = Duration::from_secs(2);
    })
    .await;
    let (_, cookie) = app.login("alice").await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_millis(4000) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        statuses.push((
            started.elapsed(),
            app.profile(Some(&cookie)).await.status().as_u16(),
        ));
    }
    assert_eq!(statuses[0].1, 200, "{statuses:?}");
    let first_404 = statuses
        .iter()
        .position(|(_, s)| *s == 404)
        .expect("it must end");
    assert!(
        statuses[first_404].0 <= Duration::from_millis(3600),
        "{statuses:?}"
    );
    assert!(
        statuses[first_404..].iter().all(|(_, s)| *s == 404),
        "{statuses:?}"
    );
    if let Some(fake) = &app.upstash {
        assert!(!fake.exists(&format!("session:{}", id_of(&cookie))));
    }
}

async fn profile_refreshes_the_cookie_max_age(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.idle_ttl = Duration::from_secs(600)).await;
    let (_, cookie) = app.login("alice").await;
    let response = app.profile(Some(&cookie)).await;
    let header = set_cookie(&response, "session_id").unwrap();
    assert!(header.contains("Max-Age=600"), "{header}");
    assert_eq!(session_cookie(&response).unwrap(), cookie);
}

async fn the_cookie_max_age_never_outlives_the_absolute_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.absolute_ttl = Duration::from_secs(60);
    })
    .await;
    let (response, _) = app.login("alice").await;
    let header = set_cookie(&response, "session_id").unwrap();
    let max_age: u64 = header
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&max_age), "{header}");
}

async fn the_cookie_name_and_samesite_are_configurable(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.cookie.name = "__Host-sid".into();
        s.cookie.same_site = actix_web::cookie::SameSite::Strict;
    })
    .await;
    let response = app.post_login(r#"{"username":"alice"}"#, None).await;
    let header = set_cookie(&response, "__Host-sid").expect("named cookie");
    for attribute in ["SameSite=Strict", "Secure", "Path=/", "HttpOnly"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.contains("Domain="));
    let pair = header.split(';').next().unwrap().to_owned();
    assert_eq!(app.profile(Some(&pair)).await.status(), 200);
    // The default name is not read any more.
    let renamed = pair.replacen("__Host-sid", "session_id", 1);
    assert_eq!(app.profile(Some(&renamed)).await.status(), 403);
    let logout = app.logout(Some(&pair)).await;
    assert!(set_cookie(&logout, "__Host-sid")
        .unwrap()
        .contains("Max-Age=0"));
}

async fn a_forged_cookie_among_several_does_not_hide_the_real_one(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let both = format!("session_id=forged; {cookie}; theme=dark");
    assert_eq!(app.profile(Some(&both)).await.status(), 200);
}

async fn a_planted_ended_session_cookie_does_not_lock_the_user_out(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    // A validly signed cookie of an ended session, sent first (as a longer Path would be).
    let (_, planted) = app.login("mallory").await;
    app.logout(Some(&planted)).await;
    let (_, live) = app.login("alice").await;
    let both = format!("{planted}; {live}");
    let response = app.profile(Some(&both)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["session_id"], id_of(&live).as_str());
    for path in ["/sessions/", "/profile/"] {
        assert_eq!(app.get(path, Some(&both)).await.status(), 200, "{path}");
    }
    // A single cookie still costs one store request.
    let before = app.upstash_count();
    assert_eq!(app.profile(Some(&live)).await.status(), 200);
    app.assert_upstash_requests_since(before, 1);
    // Logging in again with both rotates the live one too: no session is left behind.
    let response = app.post_login(r#"{"username":"alice"}"#, Some(&both)).await;
    let fresh = session_cookie(&response).unwrap();
    assert_eq!(app.profile(Some(&live)).await.status(), 404);
    assert_eq!(app.profile(Some(&fresh)).await.status(), 200);
    // Logout with both ends both.
    let (_, other) = app.login("alice").await;
    let pair = format!("{fresh}; {other}");
    assert_eq!(app.logout(Some(&pair)).await.status(), 200);
    assert_eq!(app.profile(Some(&fresh)).await.status(), 404);
    assert_eq!(app.profile(Some(&other)).await.status(), 404);
}

/// A state-changing request with the cookies of two live sessions: refused with a JSON 409,
/// nothing changed.
async fn assert_conflict(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 409, "{what}");
    let body = json(response).await;
    assert!(
        body["error"].as_str().unwrap().contains("several"),
        "{what}: {body}"
    );
}

async fn a_planted_live_cookie_cannot_take_over_a_state_changing_request(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    // Mallory's own live session, planted by a sibling subdomain and sent first.
    let (_, mallory) = app.login("mallory").await;
    let (_, alice) = app.login("alice").await;
    let (_, alice_phone) = app.login("alice").await;
    let both = format!("{mallory}; {alice}");
    let writes_before = app.upstash.as_ref().map(|f| f.command_names());

    let patch = app
        .patch_with(
            Some(&both),
            Some("application/merge-patch+json"),
            r#"{"csrf":"alice-secret"}"#,
        )
        .await;
    assert_conflict(patch, "PATCH /profile/").await;
    let delete = app
        .delete(&format!("/sessions/{}", id_of(&alice_phone)), Some(&both))
        .await;
    assert_conflict(delete, "DELETE /sessions/{id}").await;
    assert_conflict(
        app.post("/logout/all/", Some(&both)).await,
        "POST /logout/all/",
    )
    .await;

    // Nothing changed: every session is live, mallory's data is untouched.
    for (who, cookie) in [
        ("mallory", &mallory),
        ("alice", &alice),
        ("phone", &alice_phone),
    ] {
        let response = app.profile(Some(cookie)).await;
        assert_eq!(response.status(), 200, "{who}");
        assert_eq!(
            json(response).await["session_data"]["data"],
            serde_json::json!({}),
            "{who}"
        );
    }
    if let (Some(fake), Some(before)) = (&app.upstash, writes_before) {
        // Each refusal cost one GETEX per cookie and wrote nothing.
        let after = fake.command_names();
        let refusals: Vec<String> = after[before.len()..after.len() - 3]
            .iter()
            .flatten()
            .cloned()
            .collect();
        assert!(refusals.iter().all(|c| c == "GETEX"), "{refusals:?}");
        assert_eq!(refusals.len(), 6, "{refusals:?}");
    }

    // Reads keep taking the first live cookie.
    let read = app.profile(Some(&both)).await;
    assert_eq!(json(read).await["session_id"], id_of(&mallory).as_str());
    assert_eq!(app.get("/sessions/", Some(&both)).await.status(), 200);

    // One live cookie beside a dead planted one still acts, on the live one.
    app.logout(Some(&mallory)).await;
    let patched = app
        .patch_with(
            Some(&both),
            Some("application/merge-patch+json"),
            r#"{"n":1}"#,
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(json(patched).await["session_id"], id_of(&alice).as_str());
    let ended = app.post("/logout/all/", Some(&both)).await;
    assert_eq!(ended.status(), 200);
    assert_eq!(json(ended).await["ended"], 2);
    assert_eq!(app.profile(Some(&alice_phone)).await.status(), 404);
}

on_both_backends!(
    a_planted_live_cookie_cannot_take_over_a_state_changing_request,
    a_planted_ended_session_cookie_does_not_lock_the_user_out,
    a_tampered_cookie_is_404_and_costs_no_store_request,
    the_absolute_lifetime_ends_a_session_in_use,
    profile_refreshes_the_cookie_max_age,
    the_cookie_max_age_never_outlives_the_absolute_lifetime,
    the_cookie_name_and_samesite_are_configurable,
    a_forged_cookie_among_several_does_not_hide_the_real_one,
);

#[tokio::test]
async fn rotation_deletes_the_old_session_in_the_same_upstash_request() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, old) = app.login("alice").await;
    let fake = app.fake();
    fake.reset_counters();
    let response = app.post_login(r#"{"username":"alice"}"#, Some(&old)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(fake.requests(), 1);
    assert!(fake.command_names()[0].contains(&"DEL".to_owned()));
    assert!(!fake.exists(&format!("session:{}", id_of(&old))));
}

/// Two instances sharing one fake Upstash, with the given secrets.
async fn two_instances(
    first: Option<&str>,
    second: (Option<&str>, Option<&str>),
) -> (crate::helpers::TestApp, crate::helpers::TestApp) {
    let fake = FakeUpstash::start().await;
    let uri = fake.uri();
    let mut a = test_settings(Some(uri.clone()));
    a.session.secret = first.map(|s| SecretString::from(s.to_owned()));
    let mut b = test_settings(Some(uri));
    b.session.secret = second.0.map(|s| SecretString::from(s.to_owned()));
    b.session.previous_secret = second.1.map(|s| SecretString::from(s.to_owned()));
    let second_app = spawn_with_settings(b, None).await;
    let first_app = spawn_with_settings(a, Some(fake)).await;
    (first_app, second_app)
}

#[tokio::test]
async fn a_cookie_signed_with_the_previous_secret_is_still_accepted() {
    let (before, after) = two_instances(Some(SECRET_A), (Some(SECRET_B), Some(SECRET_A))).await;
    let (_, cookie) = before.login("alice").await;
    assert_eq!(after.profile(Some(&cookie)).await.status(), 200);
    // New cookies are signed with the new key only.
    let (_, fresh) = after.login("bob").await;
    assert_eq!(before.profile(Some(&fresh)).await.status(), 404);
}

#[tokio::test]
async fn a_cookie_signed_with_an_unknown_secret_is_rejected() {
    let (before, after) = two_instances(Some(SECRET_A), (Some(SECRET_B), None)).await;
    let (_, cookie) = before.login("alice").await;
    assert_eq!(after.profile(Some(&cookie)).await.status(), 404);
}

#[tokio::test]
async fn instances_sharing_an_upstash_token_accept_each_others_cookies_without_a_secret() {
    let (one, two) = two_instances(None, (None, None)).await;
    let (_, cookie) = one.login("alice").await;
    assert_eq!(two.profile(Some(&cookie)).await.status(), 200);
}

/// An instance on `fake` with Upstash token `token`, `SESSION_SECRET` `secret` and
/// `UPSTASH_REDIS_REST_TOKEN_PREVIOUS` `previous_token`.
async fn instance(
    fake: &FakeUpstash,
    token: &str,
    secret: Option<&str>,
    previous_token: Option<&str>,
) -> crate::helpers::TestApp {
    let mut settings = test_settings(None);
    settings.upstash = Some(crate::helpers::upstash_settings(&fake.uri(), token));
    settings.session.secret = secret.map(|s| SecretString::from(s.to_owned()));
    settings.session.previous_token = previous_token.map(|s| SecretString::from(s.to_owned()));
    spawn_with_settings(settings, None).await
}

#[tokio::test]
async fn rotating_the_upstash_token_keeps_sessions_when_the_old_token_is_given_as_previous() {
    let fake = FakeUpstash::start().await;
    fake.accept_token("rotated-token");
    let before = instance(&fake, FAKE_TOKEN, None, None).await;
    let (_, cookie) = before.login("alice").await;
    // Without the old token the derived key changed: every session is lost.
    let forgetful = instance(&fake, "rotated-token", None, None).await;
    assert_eq!(forgetful.profile(Some(&cookie)).await.status(), 404);
    let after = instance(&fake, "rotated-token", None, Some(FAKE_TOKEN)).await;
    assert_eq!(after.profile(Some(&cookie)).await.status(), 200);
    // New cookies are signed with the new token's key only.
    let (_, fresh) = after.login("bob").await;
    assert_eq!(before.profile(Some(&fresh)).await.status(), 404);
    assert_eq!(forgetful.profile(Some(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn moving_from_the_token_derived_key_to_session_secret_keeps_sessions() {
    let fake = FakeUpstash::start().await;
    let before = instance(&fake, FAKE_TOKEN, None, None).await;
    let (_, cookie) = before.login("alice").await;
    let forgetful = instance(&fake, FAKE_TOKEN, Some(SECRET_A), None).await;
    assert_eq!(forgetful.profile(Some(&cookie)).await.status(), 404);
    let after = instance(&fake, FAKE_TOKEN, Some(SECRET_A), Some(FAKE_TOKEN)).await;
    assert_eq!(after.profile(Some(&cookie)).await.status(), 200);
    let (_, fresh) = after.login("bob").await;
    assert_eq!(forgetful.profile(Some(&fresh)).await.status(), 200);
    assert_eq!(before.profile(Some(&fresh)).await.status(), 404);
}

#[tokio::test]
async fn memory_store_instances_sign_with_different_random_keys() {
    use upstash_sessions::{session::ActiveSession, startup::session_manager, store::SessionId};
    let settings = test_settings(None);
    let one = session_manager(&settings, None).await.unwrap();
    let two = session_manager(&settings, None).await.unwrap();
    let session = ActiveSession {
        id: SessionId::random(),
        data: upstash_sessions::store::SessionData {
            user: "alice".into(),
            status: "active".into(),
            created_at: 0,
            absolute_expires_at: u64::MAX / 1000,
            data: Default::default(),
        },
    };
    let a = one
        .session_cookie(&session)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let b = two
        .session_cookie(&session)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        a, b,
        "two processes on the memory store must not share a key"
    );
    assert_eq!(
        a,
        one.session_cookie(&session).unwrap().to_str().unwrap(),
        "signing is deterministic"
    );
}

#[tokio::test]
async fn the_upstash_sync_token_of_a_login_is_sent_with_the_next_read() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    app.profile(Some(&cookie)).await;
    let sent = app
        .fake()
        .last_sync_token_received()
        .expect("a sync token was sent");
    assert!(sent.starts_with("fake-"), "{sent}");
}

#[tokio::test]
async fn a_request_is_read_with_at_most_four_verified_cookies() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let mut dead = Vec::new();
    for i in 0..40 {
        let (_, cookie) = app.login(&format!("mallory{i}")).await;
        app.logout(Some(&cookie)).await;
        dead.push(cookie);
    }
    let (_, live) = app.login("alice").await;
    // Three planted cookies before the user's own: still found, one store request each.
    let few = format!("{}; {live}", dead[..3].join("; "));
    let before = app.upstash_count();
    assert_eq!(app.profile(Some(&few)).await.status(), 200);
    app.assert_upstash_requests_since(before, 4);
    // Forty: only the first four are read, so the request costs four store requests, not 41.
    let many = format!("{}; {live}", dead.join("; "));
    let before = app.upstash_count();
    assert_eq!(app.profile(Some(&many)).await.status(), 404);
    app.assert_upstash_requests_since(before, 4);
}
