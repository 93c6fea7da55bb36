//! Bad input gets a clear JSON error and costs no store request: login bodies, hostile
//! cookies, oversized headers; on both stores.

use crate::helpers::{json, spawn_app_with, Backend};
use crate::on_both_backends;

async fn login_bodies_are_validated_with_json_errors(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, r#"{"username":"a"}"#.into(), 415, "Content-Type"),
        (
            Some("text/plain"),
            r#"{"username":"a"}"#.into(),
            415,
            "Content-Type",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "username=a".into(),
            415,
            "Content-Type",
        ),
        (
            Some("application/json"),
            format!(r#"{{"username":"{}"}}"#, "a".repeat(25_000)),
            413,
            "larger than 20480",
        ),
        (
            Some("application/json"),
            r#"{"username":"#.into(),
            400,
            "malformed JSON",
        ),
        (
            Some("application/json"),
            "not json".into(),
            400,
            "malformed JSON",
        ),
        (
            Some("application/json"),
            r#"{"username":5}"#.into(),
            422,
            "invalid type",
        ),
        (
            Some("application/json"),
            r#"{"name":"a"}"#.into(),
            422,
            "missing field `username`",
        ),
        (Some("application/json"), "[]".into(), 422, "invalid"),
        (
            Some("application/json"),
            r#"{"username":"   "}"#.into(),
            422,
            "username must not be empty",
        ),
        (
            Some("application/json"),
            format!(r#"{{"username":"{}"}}"#, "é".repeat(129)),
            422,
            "at most 128",
        ),
        (
            Some("application/json"),
            r#"{"username":"a\u0007b"}"#.into(),
            422,
            "control characters",
        ),
    ];
    for (content_type, body, status, needle) in cases {
        let mut request = app.http.post(app.url("/login/")).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{content_type:?} {body:.60}"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains(needle), "{error} lacks {needle}");
    }
    app.assert_upstash_requests_since(Some(0), 0);
    // And a good body still works.
    app.login("  alice  ").await;
}

async fn hostile_cookies_are_404_and_cost_no_upstash_request(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let id = uuid::Uuid::new_v4();
    let long = "a".repeat(3000);
    for value in [
        "*",
        "session:*",
        "%2A",
        "6f9619ff-8b86-4011-b42d-00cf4fc964ff%00",
        &format!("{id}"),
        &format!("{id}.AAAA"),
        &format!("{id}.{}", "A".repeat(43)),
        &long,
        "a b",
        "../../etc",
    ] {
        let cookie = format!("session_id={value}");
        let response = app.profile(Some(&cookie)).await;
        assert_eq!(response.status(), 404, "{value:.40}");
    }
    app.assert_upstash_requests_since(Some(0), 0);
}

async fn oversized_headers_are_refused_with_a_4xx(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let response = app
        .http
        .get(app.url("/profile/"))
        .header("cookie", format!("session_id={}", "a".repeat(64 * 1024)))
        .send()
        .await;
    match response {
        Ok(response) => assert!(response.status().is_client_error(), "{}", response.status()),
        // The server may also close the connection after answering 431.
        Err(error) => assert!(
            error.is_request() || error.is_connect() || error.is_body(),
            "{error}"
        ),
    }
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

on_both_backends!(
    login_bodies_are_validated_with_json_errors,
    hostile_cookies_are_404_and_cost_no_upstash_request,
    oversized_headers_are_refused_with_a_4xx,
);
