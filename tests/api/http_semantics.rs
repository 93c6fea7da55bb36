//! HTTP's method rules (405 with `Allow`, `HEAD`, `OPTIONS`), CORS for allowed origins, and
//! the cross-site request guard, on both stores.

use reqwest::{header, Method, Response};

use crate::helpers::{id_of, json, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;

/// Every path the service serves and the `Allow` it must answer with.
const ROUTES: &[(&str, &str)] = &[
    ("/login/", "POST, OPTIONS"),
    ("/login", "POST, OPTIONS"),
    ("/profile/", "GET, HEAD, PATCH, OPTIONS"),
    ("/profile", "GET, HEAD, PATCH, OPTIONS"),
    ("/logout/", "POST, OPTIONS"),
    ("/logout", "POST, OPTIONS"),
    ("/logout/all/", "POST, OPTIONS"),
    ("/logout/all", "POST, OPTIONS"),
    ("/sessions/", "GET, HEAD, OPTIONS"),
    ("/sessions", "GET, HEAD, OPTIONS"),
    (
        "/sessions/8cba73cf-bff3-44bf-ad9c-e8390d81fc44/",
        "DELETE, OPTIONS",
    ),
    (
        "/sessions/8cba73cf-bff3-44bf-ad9c-e8390d81fc44",
        "DELETE, OPTIONS",
    ),
    ("/healthz", "GET, HEAD, OPTIONS"),
    ("/readyz", "GET, HEAD, OPTIONS"),
    ("/metrics", "GET, HEAD, OPTIONS"),
    ("/openapi.json", "GET, HEAD, OPTIONS"),
    ("/docs", "GET, HEAD, OPTIONS"),
    ("/docs/", "GET, HEAD, OPTIONS"),
    ("/docs/swagger-ui.css", "GET, HEAD, OPTIONS"),
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE", "OPTIONS", "PROPFIND",
];

async fn send(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = app.http.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        app.url(path),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn every_route_answers_an_unserved_method_with_405_and_its_allow_header(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for (path, allow) in ROUTES {
        let served: Vec<&str> = allow.split(", ").collect();
        for method in METHODS.iter().filter(|m| !served.contains(m)) {
            let response = send(&app, method, path, &[]).await;
            assert_eq!(response.status(), 405, "{method} {path}");
            assert_eq!(header(&response, "allow"), Some(*allow), "{method} {path}");
            if *method != "HEAD" {
                assert_eq!(
                    json(response).await["error"],
                    "Method not allowed",
                    "{method} {path}"
                );
            }
        }
    }
    app.assert_upstash_requests_since(Some(0), 0);
}

async fn options_answers_204_with_allow_on_every_route(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for (path, allow) in ROUTES {
        let response = send(&app, "OPTIONS", path, &[]).await;
        assert_eq!(response.status(), 204, "OPTIONS {path}");
        assert_eq!(header(&response, "allow"), Some(*allow), "OPTIONS {path}");
        assert_eq!(header(&response, "access-control-allow-origin"), None);
    }
}

async fn unknown_paths_stay_404_for_every_method(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for method in METHODS {
        for path in ["/nowhere", "/login/extra", "/sessions/a/b", "/healthz/"] {
            let response = send(&app, method, path, &[]).await;
            assert_eq!(response.status(), 404, "{method} {path}");
            assert_eq!(header(&response, "allow"), None);
        }
    }
}

async fn head_answers_like_get_without_a_body_at_the_same_store_cost(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    // The first listing of a process also loads the listing script into Redis (one EVAL);
    // compare the listings after that.
    send(&app, "GET", "/sessions/", &[("cookie", &cookie)]).await;
    for path in [
        "/profile/",
        "/sessions/",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        let cost = |before: Option<u64>| app.upstash_count().zip(before).map(|(n, b)| n - b);
        let before = app.upstash_count();
        let get = send(&app, "GET", path, &[("cookie", &cookie)]).await;
        let get_cost = cost(before);
        let before = app.upstash_count();
        let head = send(&app, "HEAD", path, &[("cookie", &cookie)]).await;
        let head_cost = cost(before);
        assert_eq!(head.status(), get.status(), "{path}");
        if path == "/readyz" {
            // Answered from the check the GET just made, unless a second has passed since.
            assert!(head_cost <= get_cost, "{path}");
        } else {
            assert_eq!(head_cost, get_cost, "{path}");
        }
        for name in ["content-type", "content-length", "cache-control"] {
            assert_eq!(header(&head, name), header(&get, name), "{name} of {path}");
        }
        assert_eq!(
            header(&head, "set-cookie").is_some(),
            header(&get, "set-cookie").is_some(),
            "{path}"
        );
        assert!(!get.bytes().await.unwrap().is_empty());
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    // Without a cookie HEAD is the same 403 as GET, and slides nothing.
    let head = send(&app, "HEAD", "/profile/", &[]).await;
    assert_eq!(head.status(), 403);
    assert!(head.bytes().await.unwrap().is_empty());
}

async fn cors_is_off_by_default_and_adds_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (_, cookie) = app.login("alice").await;
    let origin = "https://app.example.com";
    let response = send(
        &app,
        "GET",
        "/profile/",
        &[("cookie", &cookie), ("origin", origin)],
    )
    .await;
    assert_eq!(response.status(), 200);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "vary",
    ] {
        assert_eq!(header(&response, name), None, "{name}");
    }
    let preflight = send(
        &app,
        "OPTIONS",
        "/login/",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    assert_eq!(header(&preflight, "access-control-allow-methods"), None);
}

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";

async fn cors_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.cors_allowed_origins = vec![APP.to_owned(), "http://localhost:3000".to_owned()]
    })
    .await
}

async fn an_allowed_origin_may_read_with_credentials_and_every_answer_varies_by_origin(
    backend: Backend,
) {
    let app = cors_app(backend).await;
    let (_, cookie) = app.login("alice").await;
    let response = send(
        &app,
        "GET",
        "/profile/",
        &[("cookie", &cookie), ("origin", APP)],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&response, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(header(&response, "vary"), Some("Origin"));
    let exposed = header(&response, "access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    // Another origin reads nothing: no CORS headers, so the browser hides the answer.
    let response = send(
        &app,
        "GET",
        "/profile/",
        &[("cookie", &cookie), ("origin", EVIL)],
    )
    .await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    assert_eq!(header(&response, "access-control-allow-credentials"), None);
    assert_eq!(header(&response, "vary"), Some("Origin"));
    // Without Origin too, so a cache never serves one origin's answer to another.
    let response = send(&app, "GET", "/healthz", &[]).await;
    assert_eq!(header(&response, "vary"), Some("Origin"));
}

async fn a_preflight_from_an_allowed_origin_gets_the_routes_methods_and_a_max_age(
    backend: Backend,
) {
    let app = cors_app(backend).await;
    let preflight = [
        ("origin", APP),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let response = send(&app, "OPTIONS", "/login/", &preflight).await;
    assert_eq!(response.status(), 204);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&response, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        header(&response, "access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert!(header(&response, "access-control-allow-headers")
        .unwrap()
        .contains("content-type"));
    assert_eq!(header(&response, "access-control-max-age"), Some("7200"));
    assert_eq!(header(&response, "vary"), Some("Origin"));
    let response = send(
        &app,
        "OPTIONS",
        "/sessions/8cba73cf-bff3-44bf-ad9c-e8390d81fc44",
        &preflight,
    )
    .await;
    assert_eq!(
        header(&response, "access-control-allow-methods"),
        Some("DELETE, OPTIONS")
    );

    let response = send(
        &app,
        "OPTIONS",
        "/login/",
        &[("origin", EVIL), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    assert_eq!(header(&response, "access-control-allow-methods"), None);
    // An unknown path is no route's preflight.
    let response = send(&app, "OPTIONS", "/nowhere", &preflight).await;
    assert_eq!(response.status(), 404);
    assert_eq!(header(&response, "access-control-allow-methods"), None);
}

/// Every state-changing request, for the session `id` (`PATCH /profile/` included: the
/// guard refuses it by method, whether or not a route serves it).
fn writes(id: &str) -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        ("POST", "/login/".into(), Some(r#"{"username":"mallory"}"#)),
        ("POST", "/logout/".into(), None),
        ("POST", "/logout/all/".into(), None),
        ("DELETE", format!("/sessions/{id}"), None),
        ("PATCH", "/profile/".into(), Some("{}")),
    ]
}

/// Sends each state-changing request with `cookie` and `headers`; returns the statuses.
async fn try_writes(app: &TestApp, cookie: &str, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for (method, path, body) in writes(&id_of(cookie)) {
        let mut request = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&path),
            )
            .header(header::COOKIE, cookie);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status == 403 {
            assert_eq!(header(&response, "content-type"), Some("application/json"));
            assert!(header(&response, "x-request-id").is_some());
            let body = json(response).await;
            assert!(
                body["error"].as_str().unwrap().contains("Cross-site"),
                "{method} {path}: {body}"
            );
        }
        statuses.push(status);
    }
    statuses
}

async fn cross_site_writes_are_refused_before_any_store_request_even_with_samesite_none(
    backend: Backend,
) {
    for same_site in [
        actix_web::cookie::SameSite::Lax,
        actix_web::cookie::SameSite::None,
    ] {
        let app = spawn_app_with(backend, |s| {
            s.cors_allowed_origins = vec![APP.to_owned()];
            s.cookie.same_site = same_site;
        })
        .await;
        let (_, cookie) = app.login("alice").await;
        let before = app.upstash_count();
        for headers in [
            &[("origin", EVIL)][..],
            &[("origin", "null")][..],
            &[("origin", "https://app.example.com.evil.example")][..],
            &[("sec-fetch-site", "cross-site")][..],
            &[("origin", EVIL), ("sec-fetch-site", "same-origin")][..],
        ] {
            assert_eq!(
                try_writes(&app, &cookie, headers).await,
                [403; 5],
                "{same_site:?} {headers:?}"
            );
        }
        app.assert_upstash_requests_since(before, 0);
        let response = app.profile(Some(&cookie)).await;
        assert_eq!(response.status(), 200, "the session was ended");
        let sessions = json(app.get("/sessions/", Some(&cookie)).await).await;
        assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    }
}

async fn writes_from_the_services_own_origin_an_allowed_one_or_no_browser_pass(backend: Backend) {
    let app = cors_app(backend).await;
    let own = app.address.clone();
    for headers in [
        vec![("origin", own.as_str())],
        vec![("origin", APP)],
        vec![("origin", "http://localhost:3000")],
        vec![("sec-fetch-site", "same-site")],
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![],
        // Behind a proxy that says what the browser saw.
        vec![
            ("origin", "https://auth.example.com"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "auth.example.com"),
        ],
        vec![
            ("origin", "https://auth.example.com"),
            ("forwarded", "proto=https;host=auth.example.com"),
        ],
    ] {
        let (_, cookie) = app.login("alice").await;
        let statuses = try_writes(&app, &cookie, &headers).await;
        assert!(
            !statuses.contains(&403),
            "{headers:?} was refused: {statuses:?}"
        );
    }
}

async fn public_origin_replaces_the_origin_read_from_the_request(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.public_origin = Some("https://auth.example.com".to_owned())
    })
    .await;
    let (_, cookie) = app.login("alice").await;
    let own = app.address.clone();
    assert_eq!(
        try_writes(&app, &cookie, &[("origin", own.as_str())]).await,
        [403; 5]
    );
    let statuses = try_writes(&app, &cookie, &[("origin", "https://auth.example.com")]).await;
    assert!(!statuses.contains(&403), "{statuses:?}");
}

async fn an_allowed_origin_logs_in_reads_and_logs_out(backend: Backend) {
    let app = cors_app(backend).await;
    let response = app
        .http
        .post(app.url("/login/"))
        .header("origin", APP)
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"username":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    let cookie = crate::helpers::session_cookie(&response).unwrap();
    let response = send(
        &app,
        "GET",
        "/profile/",
        &[("cookie", &cookie), ("origin", APP)],
    )
    .await;
    assert_eq!(json(response).await["session_data"]["user"], "alice");
    let response = send(
        &app,
        "POST",
        "/logout/",
        &[("cookie", &cookie), ("origin", APP)],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    assert_eq!(app.profile(Some(&cookie)).await.status(), 404);
}

on_both_backends!(
    every_route_answers_an_unserved_method_with_405_and_its_allow_header,
    options_answers_204_with_allow_on_every_route,
    unknown_paths_stay_404_for_every_method,
    head_answers_like_get_without_a_body_at_the_same_store_cost,
    cors_is_off_by_default_and_adds_nothing,
    an_allowed_origin_may_read_with_credentials_and_every_answer_varies_by_origin,
    a_preflight_from_an_allowed_origin_gets_the_routes_methods_and_a_max_age,
    cross_site_writes_are_refused_before_any_store_request_even_with_samesite_none,
    writes_from_the_services_own_origin_an_allowed_one_or_no_browser_pass,
    public_origin_replaces_the_origin_read_from_the_request,
    an_allowed_origin_logs_in_reads_and_logs_out,
);
