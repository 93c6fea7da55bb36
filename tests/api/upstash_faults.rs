//! Failing well when Upstash does not: 5xx, 429, stalls, bodies that are not JSON, lost
//! answers, an unreachable endpoint or a rejected token, oversized replies. Faults are
//! injected with higher-priority wiremock mocks in front of the fake Upstash.

use std::time::{Duration, Instant};

use wiremock::{matchers::method, Mock, ResponseTemplate};

use crate::helpers::{
    json, spawn_app_with, spawn_with_settings, test_settings, upstash_settings, Backend,
};

/// Makes the next `n` Upstash requests answer `template`.
async fn fail_next(app: &crate::helpers::TestApp, n: u64, template: ResponseTemplate) {
    Mock::given(method("POST"))
        .respond_with(template)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(&app.fake().server)
        .await;
}

#[tokio::test]
async fn every_flow_succeeds_when_each_first_upstash_attempt_fails_with_500() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    for _ in 0..5 {
        fail_next(&app, 1, ResponseTemplate::new(500).set_body_string("boom")).await;
        let (_, cookie) = app.login("alice").await;
        fail_next(&app, 1, ResponseTemplate::new(500)).await;
        assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
        fail_next(&app, 1, ResponseTemplate::new(502)).await;
        assert_eq!(app.logout(Some(&cookie)).await.status(), 200);
        assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
    }
}

#[tokio::test]
async fn a_login_whose_first_attempt_committed_but_lost_its_answer_still_succeeds() {
    // The first transaction reaches "Upstash" and is applied, but its answer is lost (the
    // client times out); the retry finds its own record and must count as success.
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.upstash_timeout = Duration::from_millis(1500)
    })
    .await;
    let fake = app.fake();
    let apply = fake.applier();
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = committed.clone();
    // Apply the request to the fake, then stall past the attempt budget: the answer is lost.
    Mock::given(method("POST"))
        .respond_with(move |req: &wiremock::Request| {
            apply(req);
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            ResponseTemplate::new(200).set_delay(Duration::from_secs(5))
        })
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.server)
        .await;
    let (response, cookie) = app.login("alice").await;
    assert_eq!(response.status(), 200);
    assert!(committed.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    fail_next(
        &app,
        1,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(serde_json::json!({"error": "ERR max requests limit exceeded"})),
    )
    .await;
    let (_, cookie) = app.login("alice").await;
    fail_next(
        &app,
        1,
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
    )
    .await;
    let started = Instant::now();
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_stalled_upstash_gives_a_json_504_within_the_deadline() {
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.upstash_timeout = Duration::from_millis(600)
    })
    .await;
    let (_, cookie) = app.login("alice").await;
    fail_next(
        &app,
        100,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    let started = Instant::now();
    let response = app.profile(Some(&cookie)).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(json(response).await["error"], "session store timed out");
    assert!(took >= Duration::from_millis(550), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_non_json_upstash_body_is_retried_and_then_a_503() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    fail_next(
        &app,
        1,
        ResponseTemplate::new(200).set_body_string("error code: 1016"),
    )
    .await;
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    fail_next(
        &app,
        100,
        ResponseTemplate::new(200).set_body_string("<html>"),
    )
    .await;
    let response = app.profile(Some(&cookie)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(json(response).await["error"], "session store unavailable");
}

#[tokio::test]
async fn upstash_error_texts_never_reach_the_client() {
    for (status, text) in [
        (
            400,
            "ERR max requests limit exceeded. Limit: 500000, Usage: 500000",
        ),
        (401, "WRONGPASS invalid or missing auth token"),
        (500, "SRH: Unable to connect to the Redis server"),
    ] {
        let app = spawn_app_with(Backend::Upstash, |_| {}).await;
        let (_, cookie) = app.login("alice").await;
        app.fake().reset_counters();
        fail_next(
            &app,
            10,
            ResponseTemplate::new(status).set_body_json(serde_json::json!({ "error": text })),
        )
        .await;
        let response = app.profile(Some(&cookie)).await;
        assert_eq!(response.status(), 503, "{text}");
        let body = response.text().await.unwrap();
        assert_eq!(body, r#"{"error":"session store unavailable"}"#);
        // The fault mock answered, not the fake behind it.
        assert_eq!(app.fake().requests(), 0);
    }
}

#[tokio::test]
async fn a_corrupt_record_is_an_opaque_500() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let id = crate::helpers::id_of(&cookie);
    app.fake()
        .set_raw(&format!("session:{id}"), "{not json at all");
    let response = app.profile(Some(&cookie)).await;
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":"internal server error"}"#
    );
}

#[tokio::test]
async fn an_unreachable_upstash_gives_503_and_the_service_still_starts() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings = test_settings(None);
    settings.upstash = Some(upstash_settings(&format!("http://127.0.0.1:{port}"), "t"));
    settings.upstash_timeout = Duration::from_millis(500);
    let app = spawn_with_settings(settings, None).await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let ready = app.get("/readyz", None).await;
    assert!(matches!(ready.status().as_u16(), 503 | 504));
    let response = app.post_login(r#"{"username":"alice"}"#, None).await;
    assert!(matches!(response.status().as_u16(), 503 | 504));
    assert!(json(response).await["error"]
        .as_str()
        .unwrap()
        .starts_with("session store"));
}

#[tokio::test]
async fn a_rejected_token_stops_the_service_at_start_naming_the_variable() {
    let fake = crate::fake_upstash::FakeUpstash::start().await;
    let mut settings = test_settings(None);
    settings.upstash = Some(upstash_settings(&fake.uri(), "wrong-token"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = upstash_sessions::startup::Application::build_with_listener(settings, listener)
        .await
        .err()
        .expect("start-up must fail");
    let text = error.to_string();
    assert!(text.contains("UPSTASH_REDIS_REST_TOKEN"), "{text}");
    assert!(!text.contains("wrong-token"), "{text}");
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn readyz_reports_the_store() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let body = json(app.get("/readyz", None).await).await;
    assert_eq!(body["store"], "upstash");
    let app = spawn_app_with(Backend::Memory, |_| {}).await;
    let body = json(app.get("/readyz", None).await).await;
    assert_eq!(body["store"], "memory");
}

#[tokio::test]
async fn a_request_needing_several_upstash_calls_still_answers_within_one_deadline() {
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.upstash_timeout = Duration::from_millis(1000)
    })
    .await;
    let (_, cookie) = app.login("alice").await;
    // The session read (first call) answers after 0.7 s; the index read (second) stalls.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .with_priority(2)
        .mount(&app.fake().server)
        .await;
    let apply = app.fake().applier();
    Mock::given(method("POST"))
        .respond_with(move |req: &wiremock::Request| {
            apply(req).set_delay(Duration::from_millis(700))
        })
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.fake().server)
        .await;
    let started = Instant::now();
    let response = app.get("/sessions/", Some(&cookie)).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    // Two separate budgets would take at least 0.7 + 1.0 s.
    assert!(took < Duration::from_millis(1600), "{took:?}");
}

/// The next `/multi-exec` that deletes sessions is applied, but its answer is lost (a 503
/// after the fact), so the client retries it and the retry's `DEL` finds nothing.
async fn lose_the_answer_of_the_next_deletion(app: &crate::helpers::TestApp) {
    use wiremock::matchers::{body_string_contains, path};
    let apply = app.fake().applier();
    Mock::given(method("POST"))
        .and(path("/multi-exec"))
        .and(body_string_contains(r#"["DEL""#))
        .respond_with(move |req: &wiremock::Request| {
            apply(req);
            ResponseTemplate::new(503)
        })
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.fake().server)
        .await;
}

#[tokio::test]
async fn ending_sessions_reports_what_was_ended_even_when_the_first_answer_was_lost() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, phone) = app.login("alice").await;
    let (_, laptop) = app.login("alice").await;
    lose_the_answer_of_the_next_deletion(&app).await;
    let path = format!("/sessions/{}/", crate::helpers::id_of(&phone));
    let response = app.delete(&path, Some(&laptop)).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(app.profile(Some(&phone)).await.status(), 404);
    // Once really gone, the same DELETE is a 404.
    assert_eq!(app.delete(&path, Some(&laptop)).await.status(), 404);

    app.login("alice").await;
    lose_the_answer_of_the_next_deletion(&app).await;
    let response = app.post("/logout/all/", Some(&laptop)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["ended"], 2);
    assert_eq!(app.profile(Some(&laptop)).await.status(), 404);
}

#[tokio::test]
async fn an_oversized_upstash_reply_is_a_clean_503_read_once() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let requests = app.fake().server.received_requests().await.unwrap().len();
    fail_next(
        &app,
        u64::MAX,
        ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 9 << 20]),
    )
    .await;
    let response = app.profile(Some(&cookie)).await;
    assert_eq!(response.status(), 503);
    let body = json(response).await;
    assert!(body["error"].is_string(), "{body}");
    // Not retried: one more request reached the server.
    let after = app.fake().server.received_requests().await.unwrap().len();
    assert_eq!(after, requests + 1);
}

#[tokio::test]
async fn a_slow_upload_does_not_spend_the_store_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.upstash_timeout = Duration::from_millis(300)
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = r#"{"username":"slow-phone","data":{"cart":{"apple":1}}}"#;
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /login/ HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The body arrives well after the whole store budget would have run out.
    tokio::time::sleep(Duration::from_millis(900)).await;
    socket.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
