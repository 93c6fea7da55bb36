//! The memory store's total bound (`MEMORY_STORE_MAX_BYTES`) over HTTP: a login or a growing
//! `PATCH` past it is a 503 with `Retry-After` and stores nothing, the sessions already held
//! keep working, and `/metrics` shows the bytes held and the bound.

use reqwest::Response;
use serde_json::json;
use upstash_sessions::settings::Settings;

use crate::helpers::{json, session_cookie, spawn_with_settings, test_settings, TestApp};

/// The app on the memory store with `MEMORY_STORE_MAX_BYTES=max`, read as the service reads
/// it, and the test settings (port 0, one worker) for the rest.
async fn bounded_app(max: &str) -> TestApp {
    let mut settings =
        Settings::from_lookup(|name| (name == "MEMORY_STORE_MAX_BYTES").then(|| max.to_owned()))
            .expect("MEMORY_STORE_MAX_BYTES is accepted");
    let test = test_settings(None);
    settings.port = test.port;
    settings.workers = test.workers;
    settings.shutdown_timeout = test.shutdown_timeout;
    spawn_with_settings(settings, None).await
}

/// A gauge or counter's value in `GET /metrics`.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn login_with(app: &TestApp, user: &str, data: &serde_json::Value) -> Response {
    let body = json!({ "username": user, "data": data }).to_string();
    app.post_login(&body, None).await
}

/// A 503 that says when to come back and why, in JSON.
async fn assert_full(response: Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    let retry = response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    let seconds: u64 = retry.to_str().unwrap().parse().unwrap();
    assert!(seconds >= 1, "{what}: Retry-After {seconds}");
    let body = json(response).await;
    assert!(
        body["error"].as_str().unwrap().contains("full"),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn a_login_or_patch_past_the_memory_bound_is_503_and_stores_nothing_while_held_sessions_keep_working(
) {
    let app = bounded_app("65536").await;
    let data = json!({ "d": "x".repeat(8_000) });
    let mut cookies = Vec::new();
    let refused = loop {
        assert!(
            cookies.len() < 64,
            "{} logins of 8 KB each were all stored under MEMORY_STORE_MAX_BYTES=65536 \
             (memory_store_bytes: {:?})",
            cookies.len(),
            metric(&app, "memory_store_bytes").await
        );
        let response = login_with(&app, &format!("user-{}", cookies.len()), &data).await;
        if response.status() == 200 {
            cookies.push(session_cookie(&response).unwrap());
        } else {
            break response;
        }
    };
    assert!(cookies.len() >= 4, "only {} logins fitted", cookies.len());
    let live = metric(&app, "sessions_live").await;
    let bytes = metric(&app, "memory_store_bytes").await.unwrap();
    assert!(bytes <= 65_536.0, "{bytes}");
    assert_full(refused, "the login past the bound").await;
    // Nothing stored: again, and the counts have not moved.
    assert_full(login_with(&app, "late", &data).await, "a second try").await;
    assert_eq!(metric(&app, "sessions_live").await, live);
    assert_eq!(metric(&app, "memory_store_bytes").await, Some(bytes));

    // The sessions held keep working: reads, a PATCH that shrinks, logout.
    let first = &cookies[0];
    assert_eq!(app.profile(Some(first)).await.status(), 200);
    let grow = app
        .patch_with(
            Some(first),
            Some("application/merge-patch+json"),
            &json!({ "e": "y".repeat(8_000) }).to_string(),
        )
        .await;
    assert_full(grow, "a PATCH that grows past the bound").await;
    assert_eq!(
        app.data(first).await,
        data,
        "the refused PATCH stored nothing"
    );
    assert_eq!(metric(&app, "memory_store_bytes").await, Some(bytes));
    app.patch(first, r#"{"d": null, "small": 1}"#).await;
    assert_eq!(app.data(first).await, json!({ "small": 1 }));
    let shrunk = metric(&app, "memory_store_bytes").await.unwrap();
    assert!(
        shrunk < bytes,
        "{shrunk} after the shrinking PATCH, {bytes} before"
    );
    assert_eq!(app.logout(Some(&cookies[1])).await.status(), 200);
    assert!(metric(&app, "memory_store_bytes").await.unwrap() < shrunk);
    // Room again: the next login fits.
    assert_eq!(login_with(&app, "late", &data).await.status(), 200);
}

#[tokio::test]
async fn the_memory_store_reports_its_bytes_and_its_bound() {
    let app = bounded_app("1048576").await;
    assert_eq!(
        metric(&app, "memory_store_max_bytes").await,
        Some(1_048_576.0)
    );
    assert_eq!(metric(&app, "memory_store_bytes").await, Some(0.0));
    let response = login_with(&app, "alice", &json!({ "d": "x".repeat(10_000) })).await;
    let cookie = session_cookie(&response).unwrap();
    let held = metric(&app, "memory_store_bytes").await.unwrap();
    // The data, the user name and a fixed overhead per session.
    assert!((10_000.0..11_000.0).contains(&held), "{held}");
    app.logout(Some(&cookie)).await;
    assert_eq!(metric(&app, "memory_store_bytes").await, Some(0.0));
}

#[tokio::test]
async fn the_default_memory_bound_is_256_mib() {
    let app = crate::helpers::spawn_app().await;
    assert_eq!(
        metric(&app, "memory_store_max_bytes").await,
        Some(268_435_456.0)
    );
}
