//! The application's data in a session over HTTP: `PATCH /profile/` (RFC 7396), `data` on
//! login, the limits (each a JSON error with nothing stored), and what each costs on Upstash.

use reqwest::{header, Response};
use serde_json::{json, Value};

use crate::helpers::{id_of, json, session_cookie, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;

const MERGE_PATCH: &str = "application/merge-patch+json";

impl TestApp {
    /// `PATCH /profile/` with `body` as `content_type`.
    pub async fn patch_with(
        &self,
        cookie: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Response {
        let mut request = self.http.patch(self.url("/profile/")).body(body.to_owned());
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.send().await.expect("PATCH request")
    }

    /// `PATCH /profile/` with a merge patch; asserts 200 and answers the body.
    pub async fn patch(&self, cookie: &str, body: &str) -> Value {
        let response = self.patch_with(Some(cookie), Some(MERGE_PATCH), body).await;
        assert_eq!(response.status(), 200, "PATCH {body}");
        json(response).await
    }

    /// `session_data.data` of `GET /profile/`.
    pub async fn data(&self, cookie: &str) -> Value {
        let response = self.profile(Some(cookie)).await;
        assert_eq!(response.status(), 200);
        json(response).await["session_data"]["data"].clone()
    }
}

async fn store_a_cart_read_it_back_and_remove_one_key(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    assert_eq!(app.data(&cookie).await, json!({}));

    let response = app
        .patch_with(
            Some(&cookie),
            Some(MERGE_PATCH),
            r#"{"cart": {"apple": 2, "pear": 1}, "locale": "fr"}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        session_cookie(&response).is_some(),
        "the cookie is refreshed as on a read"
    );
    let patched = json(response).await;
    let read = json(app.profile(Some(&cookie)).await).await;
    assert_eq!(patched, read, "PATCH answers what GET /profile/ answers");
    assert_eq!(read["session_id"], id_of(&cookie));
    assert_eq!(read["session_data"]["user"], "alice");
    assert_eq!(read["session_data"]["status"], "active");
    assert_eq!(
        read["session_data"]["data"],
        json!({"cart": {"apple": 2, "pear": 1}, "locale": "fr"})
    );

    // null removes a key, nested objects merge; plain application/json works too.
    let response = app
        .patch_with(
            Some(&cookie),
            Some("application/json; charset=utf-8"),
            r#"{"cart": {"pear": null, "fig": 3}}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.data(&cookie).await,
        json!({"cart": {"apple": 2, "fig": 3}, "locale": "fr"})
    );
    let data = app.patch(&cookie, r#"{"cart": null}"#).await;
    assert_eq!(data["session_data"]["data"], json!({"locale": "fr"}));
}

async fn the_fixed_fields_are_not_writable(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let before = json(app.profile(Some(&cookie)).await).await["session_data"].clone();
    let body = r#"{"user": "mallory", "status": "admin", "absolute_expires_at": 99999999999}"#;
    let after = app.patch(&cookie, body).await["session_data"].clone();
    for field in ["user", "status", "created_at", "absolute_expires_at"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(after["data"]["user"], "mallory");
}

async fn numbers_and_empty_containers_come_back_exactly_as_sent(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let body = r#"{"big":1234567890123456789,"dec":0.1234567890123456789,"exp":1e400,"small":-1.5E-7,"list":[],"map":{},"text":"caf\u00e9 \ud83d\ude00 \"q\""}"#;
    // (serde_json's own `Value` refuses 1e400, so the bodies are compared as text.)
    for body in [body, r#"{"other": true}"#] {
        let response = app.patch_with(Some(&cookie), Some(MERGE_PATCH), body).await;
        assert_eq!(response.status(), 200);
    }
    let text = app.profile(Some(&cookie)).await.text().await.unwrap();
    let expected = r#""data":{"big":1234567890123456789,"dec":0.1234567890123456789,"exp":1e400,"small":-1.5E-7,"list":[],"map":{},"text":"café 😀 \"q\"","other":true}"#;
    assert!(text.contains(expected), "{text}");
}

async fn login_stores_the_data_it_is_given(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let body = r#"{"username": "alice", "data": {"roles": ["admin"], "n": 1234567890123456789}}"#;
    let response = app.post_login(body, None).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).unwrap();
    let text = app.profile(Some(&cookie)).await.text().await.unwrap();
    assert!(
        text.contains(r#""data":{"roles":["admin"],"n":1234567890123456789}"#),
        "{text}"
    );
    // `data: null` is no data.
    let response = app
        .post_login(r#"{"username": "bob", "data": null}"#, None)
        .await;
    let cookie = session_cookie(&response).unwrap();
    assert_eq!(app.data(&cookie).await, json!({}));
}

/// `n` objects nested in each other.
fn nested(n: usize) -> String {
    format!("{}{}{}", r#"{"a":"#.repeat(n - 1), "{}", "}".repeat(n - 1))
}

async fn bad_login_data_is_refused_and_no_session_is_created(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.max_data_bytes = 100).await;
    let long = format!(r#"{{"username":"a","data":{{"x":"{}"}}}}"#, "y".repeat(100));
    let cases = [
        (r#"{"username":"a","data":[1]}"#.to_owned(), 422, "object"),
        (r#"{"username":"a","data":"s"}"#.to_owned(), 422, "object"),
        (
            format!(r#"{{"username":"a","data":{}}}"#, nested(33)),
            422,
            "32 levels",
        ),
        (
            format!(
                r#"{{"username":"a","data":{}}}"#,
                "[".repeat(1000) + &"]".repeat(1000)
            ),
            422,
            "32 levels",
        ),
        (long, 413, "over the limit of 100 bytes"),
        (
            r#"{"username":"a","data":{"x":}}"#.to_owned(),
            400,
            "malformed",
        ),
    ];
    for (body, status, needle) in cases {
        let response = app.post_login(&body, None).await;
        assert_eq!(response.status(), status, "{body:.80}");
        assert!(session_cookie(&response).is_none());
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains(needle), "{error}");
    }
    app.assert_upstash_requests_since(Some(0), 0);
    // Exactly at the limit is fine.
    let fits = format!(r#"{{"username":"a","data":{{"x":"{}"}}}}"#, "y".repeat(92));
    assert_eq!(app.post_login(&fits, None).await.status(), 200);
}

async fn a_patch_is_refused_with_a_json_error_and_nothing_stored(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.max_data_bytes = 300).await;
    let (_, cookie) = app.login("alice").await;
    app.patch(&cookie, r#"{"keep":"me"}"#).await;
    let over = format!(r#"{{"x":"{}"}}"#, "y".repeat(285));
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        // The result would be too large though the patch alone fits.
        (
            Some(MERGE_PATCH),
            over,
            413,
            "305 bytes, over the limit of 300 bytes",
        ),
        (
            Some(MERGE_PATCH),
            format!(r#"{{"x":"{}"}}"#, "y".repeat(4000)),
            413,
            "over the limit of 300",
        ),
        (Some(MERGE_PATCH), "x".repeat(5000), 413, "larger than 4396"),
        (Some(MERGE_PATCH), "[]".into(), 422, "object"),
        (Some(MERGE_PATCH), "1".into(), 422, "object"),
        (Some(MERGE_PATCH), "null".into(), 422, "object"),
        (Some(MERGE_PATCH), nested(33), 422, "32 levels"),
        (Some(MERGE_PATCH), r#"{"a":"#.into(), 400, "malformed"),
        (Some(MERGE_PATCH), "".into(), 400, "malformed"),
        (Some(MERGE_PATCH), r#"{"a":1} {}"#.into(), 400, "malformed"),
        (
            Some("text/plain"),
            r#"{"a":1}"#.into(),
            415,
            "merge-patch+json",
        ),
        (
            Some("application/json-patch+json"),
            "[]".into(),
            415,
            "Content-Type",
        ),
        (None, r#"{"a":1}"#.into(), 415, "Content-Type"),
    ];
    for (content_type, body, status, needle) in cases {
        let response = app.patch_with(Some(&cookie), content_type, &body).await;
        assert_eq!(response.status(), status, "{content_type:?} {body:.60}");
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains(needle), "{status}: {error}");
    }
    assert_eq!(app.data(&cookie).await, json!({"keep": "me"}));
    // Nested exactly 32 deep is fine.
    assert_eq!(
        app.patch_with(Some(&cookie), Some(MERGE_PATCH), &nested(32))
            .await
            .status(),
        200
    );
}

async fn a_patch_needs_a_live_session(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let body = r#"{"a":1}"#;
    let response = app.patch_with(None, Some(MERGE_PATCH), body).await;
    assert_eq!(response.status(), 403);
    assert_eq!(json(response).await["error"], "No session cookie found");

    let (_, cookie) = app.login("alice").await;
    let last = if cookie.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &cookie[..cookie.len() - 1]);
    let before = app.upstash_count();
    let response = app.patch_with(Some(&forged), Some(MERGE_PATCH), body).await;
    assert_eq!(response.status(), 404);
    // A forged cookie costs nothing.
    app.assert_upstash_requests_since(before, 0);

    // After a logout the session stays gone: a PATCH does not bring it back.
    assert_eq!(app.logout(Some(&cookie)).await.status(), 200);
    let response = app.patch_with(Some(&cookie), Some(MERGE_PATCH), body).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        json(response).await["error"],
        "Session not found or expired"
    );
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
    if let Some(fake) = &app.upstash {
        assert!(!fake.exists(&format!("session:{}", id_of(&cookie))));
    }
}

async fn a_patch_past_the_absolute_lifetime_is_404_and_ends_the_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.absolute_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let (_, cookie) = app.login("alice").await;
    assert_eq!(
        app.patch(&cookie, r#"{"a":1}"#).await["session_data"]["data"]["a"],
        1
    );
    // The absolute expiry is rounded up to a whole second: at most 2 s away.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = app
        .patch_with(Some(&cookie), Some(MERGE_PATCH), r#"{"b":2}"#)
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
    if let Some(fake) = &app.upstash {
        assert!(!fake.exists(&format!("session:{}", id_of(&cookie))));
    }
}

async fn fifty_concurrent_patches_each_keep_their_key(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let patches = (0..50).map(|i| {
        let body = format!(r#"{{"k{i}": {i}}}"#);
        let (app, cookie) = (&app, &cookie);
        async move {
            let response = app.patch_with(Some(cookie), Some(MERGE_PATCH), &body).await;
            response.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(patches).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let data = app.data(&cookie).await;
    let data = data.as_object().unwrap();
    assert_eq!(data.len(), 50);
    assert!((0..50).all(|i| data[&format!("k{i}")] == i));
}

async fn the_session_list_does_not_carry_data(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    app.patch(&cookie, r#"{"secret": "s3cr3t"}"#).await;
    let response = app.get("/sessions/", Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("s3cr3t") && !text.contains("data"), "{text}");
}

async fn other_methods_on_the_profile_are_405(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let response = app
            .http
            .request(method.clone(), app.url("/profile"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(json(response).await["error"], "Method not allowed");
    }
    // Both spellings take PATCH.
    let (_, cookie) = app.login("alice").await;
    let response = app
        .http
        .patch(app.url("/profile"))
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, MERGE_PATCH)
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

on_both_backends!(
    store_a_cart_read_it_back_and_remove_one_key,
    the_fixed_fields_are_not_writable,
    numbers_and_empty_containers_come_back_exactly_as_sent,
    login_stores_the_data_it_is_given,
    bad_login_data_is_refused_and_no_session_is_created,
    a_patch_is_refused_with_a_json_error_and_nothing_stored,
    a_patch_needs_a_live_session,
    a_patch_past_the_absolute_lifetime_is_404_and_ends_the_session,
    fifty_concurrent_patches_each_keep_their_key,
    the_session_list_does_not_carry_data,
    other_methods_on_the_profile_are_405,
);

#[tokio::test]
async fn on_upstash_a_profile_read_and_a_login_with_data_stay_one_request_and_a_patch_one() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let fake = app.fake();
    let response = app
        .post_login(r#"{"username":"alice","data":{"a":1}}"#, None)
        .await;
    let cookie = session_cookie(&response).unwrap();
    assert_eq!(app.upstash_requests(), 1, "login with data");
    fake.reset_counters();

    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    assert_eq!(fake.command_names(), vec![vec!["GETEX"]]);
    fake.reset_counters();

    // The first PATCH of the process finds the script missing from Redis's cache: EVAL
    // loads it. Every later one is one EVALSHA.
    app.patch(&cookie, r#"{"b":2}"#).await;
    assert_eq!(fake.command_names(), vec![vec!["EVALSHA"], vec!["EVAL"]]);
    fake.reset_counters();
    for i in 0..3 {
        app.patch(&cookie, &format!(r#"{{"c":{i}}}"#)).await;
    }
    assert_eq!(fake.command_names(), vec![vec!["EVALSHA"]; 3]);
    fake.reset_counters();

    // Too large on its own: refused before any request.
    let huge = format!(r#"{{"x":"{}"}}"#, "y".repeat(16_384));
    let response = app
        .patch_with(Some(&cookie), Some(MERGE_PATCH), &huge)
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(app.upstash_requests(), 0);
    assert_eq!(app.data(&cookie).await, json!({"a": 1, "b": 2, "c": 2}));
}

#[tokio::test]
async fn on_upstash_a_record_written_before_data_existed_reads_as_empty_data() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let key = format!("session:{}", id_of(&cookie));
    let record: Value = serde_json::from_str(&app.fake().get(&key).unwrap()).unwrap();
    let mut old = record.as_object().unwrap().clone();
    old.remove("data");
    app.fake().set_raw(&key, &Value::Object(old).to_string());
    assert_eq!(app.data(&cookie).await, json!({}));
    app.patch(&cookie, r#"{"a":[]}"#).await;
    assert_eq!(app.data(&cookie).await, json!({"a": []}));
}
