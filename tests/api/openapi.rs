//! OpenAPI document and docs page, Prometheus metrics, request ids.

use crate::helpers::{json, spawn_app, spawn_app_with, Backend};

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_schemas_and_error_statuses() {
    let app = spawn_app().await;
    let doc = json(app.get("/openapi.json", None).await).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "/login/",
            "post",
            &[
                "200", "400", "403", "413", "415", "422", "500", "503", "504",
            ],
        ),
        (
            "/profile/",
            "get",
            &["200", "403", "404", "500", "503", "504"],
        ),
        ("/logout/", "post", &["200", "403", "500", "503", "504"]),
        (
            "/sessions/",
            "get",
            &["200", "403", "404", "500", "503", "504"],
        ),
        (
            "/profile/",
            "patch",
            &[
                "200", "400", "403", "404", "413", "415", "422", "500", "503", "504",
            ],
        ),
        (
            "/sessions/{session_id}",
            "delete",
            &["200", "403", "404", "500", "503", "504"],
        ),
        (
            "/logout/all/",
            "post",
            &["200", "403", "404", "500", "503", "504"],
        ),
        ("/healthz", "get", &["200"]),
        ("/readyz", "get", &["200", "503", "504"]),
    ];
    for (path, method, statuses) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is missing");
        for status in *statuses {
            let schema = &op["responses"][status]["content"]["application/json"]["schema"];
            assert!(
                schema["$ref"].is_string(),
                "{method} {path} {status} has no schema: {op}"
            );
        }
    }
    assert_eq!(
        doc["paths"]["/login/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/LoginRequest"
    );
    let schemas = &doc["components"]["schemas"];
    for name in [
        "LoginRequest",
        "LoginResponse",
        "ProfileResponse",
        "SessionData",
        "SessionList",
        "ErrorBody",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["session_cookie"]["in"],
        "cookie"
    );
    // PATCH takes both content types with the merge patch schema; `data` is an object
    // in the profile and optional on login.
    let patch = &doc["paths"]["/profile/"]["patch"]["requestBody"]["content"];
    for content_type in ["application/merge-patch+json", "application/json"] {
        assert_eq!(
            patch[content_type]["schema"]["$ref"],
            "#/components/schemas/DataPatch"
        );
    }
    assert_eq!(patch.as_object().unwrap().len(), 2);
    assert_eq!(schemas["DataPatch"]["type"], "object");
    assert!(schemas["DataPatch"]["description"]
        .as_str()
        .unwrap()
        .contains("RFC 7396"));
    assert_eq!(
        schemas["SessionData"]["properties"]["data"]["type"],
        "object"
    );
    assert!(schemas["SessionData"]["required"]
        .as_array()
        .unwrap()
        .contains(&"data".into()));
    let login = &schemas["LoginRequest"];
    assert!(!login["required"]
        .as_array()
        .unwrap()
        .contains(&"data".into()));
    assert!(login["properties"]["data"].is_object(), "{login}");
    // Every documented path exists: no route is served but undocumented, nor the reverse.
    assert_eq!(doc["paths"].as_object().unwrap().len(), expected.len() - 1);
}

#[tokio::test]
async fn the_openapi_document_states_the_username_bounds_headers_and_links() {
    let app = spawn_app().await;
    let doc = json(app.get("/openapi.json", None).await).await;
    let username = &doc["components"]["schemas"]["LoginRequest"]["properties"]["username"];
    assert_eq!(username["minLength"], 1);
    assert_eq!(
        username["pattern"],
        upstash_sessions::session::username::PATTERN
    );
    let mut responses = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let headers = &response["headers"];
                assert!(
                    headers["X-Request-Id"].is_object(),
                    "{method} {path} {status}"
                );
                assert_eq!(
                    headers["Retry-After"].is_object(),
                    status == "503",
                    "{method} {path} {status}"
                );
                responses += 1;
            }
        }
    }
    assert!(responses > 40);
    for (path, method) in [
        ("/login/", "post"),
        ("/profile/", "get"),
        ("/logout/", "post"),
        ("/sessions/", "get"),
        ("/logout/all/", "post"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["200"]["headers"]["Set-Cookie"].is_object(),
            "{method} {path}"
        );
    }
    // HEAD beside every GET, without bodies; OPTIONS everywhere, with the path's Allow.
    for (path, allow) in [
        ("/profile/", "`GET, HEAD, PATCH, OPTIONS`"),
        ("/login/", "`POST, OPTIONS`"),
        ("/sessions/{session_id}", "`DELETE, OPTIONS`"),
        ("/healthz", "`GET, HEAD, OPTIONS`"),
    ] {
        let item = &doc["paths"][path];
        assert_eq!(item["head"].is_object(), item["get"].is_object(), "{path}");
        if item["head"].is_object() {
            assert!(
                item["head"]["responses"]["200"]["content"].is_null(),
                "{path}"
            );
        }
        assert_eq!(
            item["options"]["responses"]["204"]["headers"]["Allow"]["description"], allow,
            "{path}"
        );
    }
    let links = &doc["paths"]["/login/"]["post"]["responses"]["200"]["links"];
    let mut ids: Vec<&str> = links
        .as_object()
        .unwrap()
        .values()
        .map(|l| l["operationId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["end_one", "list", "logout", "logout_all", "profile"]);
    // Every link names an operation of the document.
    let operation_ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    for id in ids {
        assert!(operation_ids.contains(&id), "{id}");
    }
    assert_eq!(
        links["EndThisSession"]["parameters"]["session_id"],
        "$response.body#/session_id"
    );
}

#[tokio::test]
async fn the_docs_page_is_served_from_vendored_files() {
    let app = spawn_app().await;
    let response = app.get("/docs/", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("swagger"));
    let response = app.get("/docs/swagger-ui.css", None).await;
    assert_eq!(response.status(), 200);
    let redirect = app.get("/docs", None).await;
    assert_eq!(redirect.status(), 308);
}

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
