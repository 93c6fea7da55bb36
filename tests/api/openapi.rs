//! The OpenAPI document at `/openapi.json` and the Swagger UI at `/docs/`.

use crate::helpers::{json, spawn_app};

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
                    status == "503" || status == "429",
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
async fn the_docs_page_cannot_be_framed_by_another_site() {
    // Swagger UI runs "Try it out" with the user's cookie: a page framing it could make the
    // user click through requests (clickjacking).
    let app = spawn_app().await;
    for path in [
        "/docs/",
        "/docs/index.html",
        "/docs/swagger-initializer.js",
        "/docs",
    ] {
        let response = app.get(path, None).await;
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok());
        assert_eq!(csp, Some("frame-ancestors 'none'"), "{path}");
        let xfo = headers.get("x-frame-options").and_then(|v| v.to_str().ok());
        assert_eq!(xfo, Some("DENY"), "{path}");
    }
}

#[tokio::test]
async fn summaries_are_plain_text_without_markdown_backticks() {
    let app = spawn_app().await;
    let doc = json(app.get("/openapi.json", None).await).await;
    let mut summaries = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if let Some(summary) = operation["summary"].as_str() {
                summaries += 1;
                assert!(!summary.contains('`'), "{method} {path}: {summary}");
            }
        }
    }
    assert!(summaries >= 9, "{summaries}");
}
