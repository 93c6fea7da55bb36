//! What operators see: Prometheus metrics at `/metrics` and request ids.

use crate::helpers::{spawn_app, spawn_app_with, Backend};

#[tokio::test]
async fn metrics_expose_http_upstash_and_session_instruments() {
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    app.profile(Some(&cookie)).await;
    app.profile(Some("session_id=forged")).await;
    app.get("/no/such/path/12345", None).await;
    app.logout(Some(&cookie)).await;
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for needle in [
        r#"http_requests_total{endpoint="/profile/",method="GET",status="200"} 1"#,
        r#"http_requests_total{endpoint="/profile/",method="GET",status="404"} 1"#,
        r#"http_requests_total{endpoint="UNKNOWN",method="GET",status="404"} 1"#,
        "http_requests_duration_seconds_bucket",
        r#"upstash_request_duration_seconds_count{endpoint="command"}"#,
        r#"upstash_request_duration_seconds_count{endpoint="multi-exec"} 1"#,
        "sessions_created_total 1",
        r#"sessions_ended_total{reason="logout"} 1"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    assert!(
        !text.contains("12345"),
        "unmatched paths must not become labels"
    );
}

#[tokio::test]
async fn metrics_count_upstash_errors_and_retries() {
    use wiremock::{matchers::method, Mock, ResponseTemplate};
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.fake().server)
        .await;
    assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains(r#"upstash_errors_total{kind="status_5xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"upstash_retries_total{kind="status_5xx"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_memory_store_reports_live_sessions() {
    let app = spawn_app().await;
    app.login("alice").await;
    app.login("bob").await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("sessions_live 2"), "{text}");
}

#[tokio::test]
async fn a_request_id_is_kept_from_the_request_or_generated() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let first = app.get("/profile/", None).await;
    let second = app.get("/profile/", None).await;
    let a = first.headers()["x-request-id"].to_str().unwrap().to_owned();
    let b = second.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    // An unreasonable id is replaced, not echoed.
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn_app_with(Backend::Memory, |s| s.metrics = false).await;
    assert_eq!(app.get("/metrics", None).await.status(), 404);
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

/// The series lines of a scrape (label sets with their values), without comments.
fn series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(labels, _)| labels))
        .collect()
}

#[tokio::test]
async fn metrics_stay_the_same_size_under_thousands_of_made_up_methods_and_paths() {
    let app = spawn_app().await;
    let send = |method: String, path: String| {
        let request = app
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&path),
            )
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    // One of each kind first, so every series exists before the first scrape.
    assert_eq!(send("XXXX0".into(), "/profile/".into()).await, 405);
    assert_eq!(send("GET".into(), "/nope/0".into()).await, 404);
    assert_eq!(send("XXXX0".into(), "/nope/0".into()).await, 404);
    assert_eq!(send("GET".into(), "/login".into()).await, 405);
    let before = app.get("/metrics", None).await.text().await.unwrap();
    for i in 1..=1500 {
        assert_eq!(send(format!("XXXX{i}"), "/profile/".into()).await, 405);
        assert_eq!(send("GET".into(), format!("/nope/{i}")).await, 404);
        assert_eq!(send(format!("M{i}"), format!("/nope/{i}")).await, 404);
        if i % 100 == 0 {
            assert_eq!(send("GET".into(), "/login/".into()).await, 405);
        }
    }
    let after = app.get("/metrics", None).await.text().await.unwrap();
    let (mut old, mut new) = (series(&before), series(&after));
    old.retain(|s| !s.contains(r#"endpoint="/metrics""#));
    new.retain(|s| !s.contains(r#"endpoint="/metrics""#));
    assert_eq!(
        old, new,
        "no series may appear: before\n{before}\nafter\n{after}"
    );
    // Only the counts grew (a few digits per line), not the label sets.
    assert!(
        after.len() < before.len() + 2048,
        "{} -> {}",
        before.len(),
        after.len()
    );
    for needle in [
        r#"http_requests_total{endpoint="/profile/",method="OTHER",status="405"} 1501"#,
        r#"http_requests_total{endpoint="UNKNOWN",method="GET",status="404"} 1501"#,
        r#"http_requests_total{endpoint="/login/",method="GET",status="405"} 16"#,
    ] {
        assert!(after.contains(needle), "{needle} missing from\n{after}");
    }
    assert!(!after.contains("XXXX") && !after.contains("/nope/") && !after.contains(r#""/login""#));
}

#[tokio::test]
async fn the_memory_store_serves_no_upstash_series() {
    let app = spawn_app().await;
    app.login("alice").await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    let upstash: Vec<&str> = text.lines().filter(|l| l.contains("upstash_")).collect();
    assert!(upstash.is_empty(), "{upstash:?}");
    let app = spawn_app_with(Backend::Upstash, |_| {}).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("upstash_tls_handshakes_total"), "{text}");
}
