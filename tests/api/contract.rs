//! The contract of `/login/`, `/profile/` and `/logout/` that existing clients depend on, on
//! both stores.

use std::time::Duration;

use crate::helpers::{id_of, json, session_cookie, set_cookie, spawn_app_with, Backend};
use crate::on_both_backends;

async fn login_returns_the_message_and_a_uuid_v4_session_id(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (response, cookie) = app.login("alice").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json(response).await;
    assert_eq!(body["message"], "Logged in successfully");
    let id = body["session_id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(id_of(&cookie), id);
}

async fn login_sets_an_httponly_lax_secure_cookie_on_path_root(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (response, _) = app.login("alice").await;
    let header = set_cookie(&response, "session_id").unwrap();
    for attribute in [
        "HttpOnly",
        "Path=/",
        "SameSite=Lax",
        "Secure",
        "Max-Age=900",
    ] {
        assert!(
            header.contains(attribute),
            "{attribute} missing from {header}"
        );
    }
}

async fn the_cookie_is_not_secure_when_cookie_secure_is_false(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.cookie.secure = false).await;
    let (response, _) = app.login("alice").await;
    let header = set_cookie(&response, "session_id").unwrap();
    assert!(!header.contains("Secure"), "{header}");
    assert!(header.contains("HttpOnly"));
}

async fn profile_returns_the_session_data(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (_, cookie) = app.login("alice").await;
    let response = app.profile(Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json(response).await;
    assert_eq!(body["session_id"], id_of(&cookie).as_str());
    assert_eq!(body["session_data"]["user"], "alice");
    assert_eq!(body["session_data"]["status"], "active");
    let created = body["session_data"]["created_at"].as_u64().unwrap();
    assert!(created >= before && created <= before + 5);
}

async fn the_absolute_lifetime_is_exactly_the_configured_length(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    // Twenty logins: with the end rounded up and the start down, nearly all were a second long.
    for _ in 0..20 {
        let (_, cookie) = app.login("alice").await;
        let body = json(app.profile(Some(&cookie)).await).await;
        let created = body["session_data"]["created_at"].as_u64().unwrap();
        let end = body["session_data"]["absolute_expires_at"]
            .as_u64()
            .unwrap();
        assert_eq!(end - created, 43_200, "{body}");
    }
}

async fn profile_without_a_cookie_is_403(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let response = app.profile(None).await;
    assert_eq!(response.status(), 403);
    assert_eq!(json(response).await["error"], "No session cookie found");
}

async fn profile_with_an_unknown_or_malformed_id_is_404(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for cookie in [
        format!("session_id={}", uuid::Uuid::new_v4()),
        "session_id=not-a-uuid".to_owned(),
        "session_id=".to_owned(),
    ] {
        let response = app.profile(Some(&cookie)).await;
        assert_eq!(response.status(), 404, "{cookie}");
        assert_eq!(
            json(response).await["error"],
            "Session not found or expired"
        );
    }
}

async fn an_expired_session_is_404(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.idle_ttl = Duration::from_secs(1)).await;
    let (_, cookie) = app.login("alice").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
}

async fn logout_deletes_the_session_and_clears_the_cookie_with_the_same_attributes(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let response = app.logout(Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    let header = set_cookie(&response, "session_id").unwrap();
    for attribute in ["HttpOnly", "Path=/", "SameSite=Lax", "Secure", "Max-Age=0"] {
        assert!(
            header.contains(attribute),
            "{attribute} missing from {header}"
        );
    }
    assert_eq!(json(response).await["message"], "Logged out successfully");
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
    if let Some(fake) = &app.upstash {
        assert!(!fake.exists(&format!("session:{}", id_of(&cookie))));
    }
}

async fn logout_without_a_cookie_is_still_200(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let response = app.logout(None).await;
    assert_eq!(response.status(), 200);
    app.assert_upstash_requests_since(Some(0), 0);
}

async fn every_route_answers_without_its_trailing_slash(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let response = app
        .http
        .post(app.url("/login"))
        .header("content-type", "application/json")
        .body(r#"{"username":"bob"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).unwrap();
    assert_eq!(app.get("/profile", Some(&cookie)).await.status(), 200);
    assert_eq!(app.post("/logout", Some(&cookie)).await.status(), 200);
    assert_eq!(app.get("/profile", Some(&cookie)).await.status(), 404);
}

async fn logging_in_with_a_valid_session_ends_the_old_one(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, old) = app.login("alice").await;
    let response = app.post_login(r#"{"username":"alice"}"#, Some(&old)).await;
    assert_eq!(response.status(), 200);
    let new = session_cookie(&response).unwrap();
    assert_ne!(id_of(&old), id_of(&new));
    assert_eq!(app.profile(Some(&old)).await.status(), 404);
    assert_eq!(app.profile(Some(&new)).await.status(), 200);
}

async fn unknown_paths_and_methods_get_json_errors(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let response = app.get("/nowhere", None).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(json(response).await["error"], "Not found");
    let response = app.get("/login/", None).await;
    assert_eq!(response.status(), 405);
    assert_eq!(json(response).await["error"], "Method not allowed");
    let response = app.post("/profile/", None).await;
    assert_eq!(response.status(), 405);
}

async fn every_response_is_no_store_and_nosniff(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (login, cookie) = app.login("alice").await;
    let responses = vec![
        login,
        app.profile(Some(&cookie)).await,
        app.profile(None).await,
        app.get("/nowhere", None).await,
        app.get("/healthz", None).await,
        app.logout(Some(&cookie)).await,
    ];
    for response in responses {
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{}",
            response.url()
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

on_both_backends!(
    login_returns_the_message_and_a_uuid_v4_session_id,
    login_sets_an_httponly_lax_secure_cookie_on_path_root,
    the_cookie_is_not_secure_when_cookie_secure_is_false,
    profile_returns_the_session_data,
    the_absolute_lifetime_is_exactly_the_configured_length,
    profile_without_a_cookie_is_403,
    profile_with_an_unknown_or_malformed_id_is_404,
    an_expired_session_is_404,
    logout_deletes_the_session_and_clears_the_cookie_with_the_same_attributes,
    logout_without_a_cookie_is_still_200,
    every_route_answers_without_its_trailing_slash,
    logging_in_with_a_valid_session_ends_the_old_one,
    unknown_paths_and_methods_get_json_errors,
    every_response_is_no_store_and_nosniff,
);
