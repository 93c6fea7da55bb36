//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), served at
//! `/openapi.json`, with Swagger UI at `/docs/` from files vendored in a crate.

use std::sync::Arc;

use actix_web::{
    http::{header, Method},
    web, HttpResponse,
};
use utoipa::{
    openapi::{
        header::Header,
        link::Link,
        path::Operation,
        response::Response,
        security::{ApiKey, ApiKeyValue, SecurityScheme},
        RefOr, Schema,
    },
    Modify, OpenApi,
};
use utoipa_swagger_ui::Config;

use crate::{
    domain::username,
    routes::{health, sessions, ApiError, Endpoint, ErrorBody},
};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// Mounts `GET /openapi.json`, Swagger UI at `GET /docs/` and the redirect from `/docs`,
/// each with `HEAD`, `OPTIONS` and `405`s like every other route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let document = web::Data::new(bytes::Bytes::from(
        serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_else(|_| b"{}".to_vec()),
    ));
    let config = web::Data::new(Arc::new(Config::new([DOCUMENT_PATH])));
    cfg.service(
        Endpoint::new(DOCUMENT_PATH)
            .route(Method::GET, |r| r.to(serve_document))
            .finish()
            .app_data(document),
    )
    .service(
        Endpoint::new("/docs")
            .route(Method::GET, |r| {
                r.to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/docs/"))
                        .finish()
                })
            })
            .finish()
            .wrap(no_framing()),
    )
    .service(
        Endpoint::new("/docs/{file:.*}")
            .route(Method::GET, |r| r.to(serve_swagger_ui))
            .finish()
            .app_data(config)
            .wrap(no_framing()),
    );
}

/// Swagger UI runs "Try it out" with the user's cookie: no other page may frame it
/// (clickjacking). The CSP directive for current browsers, `X-Frame-Options` for older ones.
fn no_framing() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
}

async fn serve_document(document: web::Data<bytes::Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.get_ref().clone())
}

/// One of Swagger UI's vendored files (`index.html` for `/docs/`).
async fn serve_swagger_ui(
    file: web::Path<String>,
    config: web::Data<Arc<Config<'static>>>,
) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&file, config.get_ref().clone()) {
        Ok(Some(file)) => {
            let mut response = HttpResponse::Ok();
            if file.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            Ok(response
                .content_type(file.content_type)
                .body(file.bytes.to_vec()))
        }
        Ok(None) => Err(ApiError::RouteNotFound),
        Err(error) => {
            tracing::error!(%error, "cannot render Swagger UI's configuration");
            Ok(HttpResponse::InternalServerError().finish())
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "upstash-sessions",
        description = "Server-side sessions kept in Upstash Redis over its REST API. The session \
                       cookie is set by `POST /login/`; a browser sends it back by itself, so \
                       \"Try it out\" works on every endpoint once you have logged in here \
                       (over plain http, run the service with COOKIE_SECURE=false).\n\n\
                       Every path also answers `HEAD` where it answers `GET` (same status and \
                       headers, no body), `OPTIONS` with `204` and `Allow`, and any other \
                       method with `405`, `Allow` and a JSON error. A `POST`, `PATCH` or \
                       `DELETE` whose `Origin` is neither the service's own nor in \
                       CORS_ALLOWED_ORIGINS (or, without `Origin`, that carries \
                       `Sec-Fetch-Site: cross-site`) is refused with `403` before it reaches \
                       the store."
    ),
    paths(
        sessions::login,
        sessions::profile,
        sessions::patch_profile,
        sessions::logout,
        sessions::list,
        sessions::end_one,
        sessions::logout_all,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        sessions::LoginRequest,
        sessions::LoginResponse,
        sessions::ProfileResponse,
        sessions::DataPatch,
        sessions::MessageResponse,
        sessions::LogoutAllResponse,
        sessions::SessionSummary,
        sessions::SessionList,
        health::Health,
        sessions::SessionView,
        ErrorBody,
    )),
    modifiers(
        &SessionCookie,
        &UsernameSchema,
        &MethodRules,
        &CommonHeaders,
        &LoginLinks,
        &PlainSummaries
    ),
    tags(
        (name = "sessions", description = "Log in, read the session, log out, and manage a user's sessions"),
        (name = "probes", description = "Liveness and readiness for load balancers"),
    )
)]
pub struct ApiDoc;

/// One link: its name, the target operation id, and (parameter, runtime expression) pairs.
type LoginLink = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The operations a login's cookie opens, as OpenAPI links on `POST /login/`'s `200`: link
/// name, target operation id, and the target's parameters taken from the login answer. The
/// cookie itself travels as the `session_cookie` credential.
const AFTER_LOGIN: &[LoginLink] = &[
    ("ReadProfile", "profile", &[]),
    ("ListSessions", "list", &[]),
    (
        "EndThisSession",
        "end_one",
        &[("session_id", "$response.body#/session_id")],
    ),
    ("LogOut", "logout", &[]),
    ("LogOutEverywhere", "logout_all", &[]),
];

/// Every operation of the document, whatever its method.
fn operations_mut(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    })
}

fn string_header(description: &str) -> RefOr<Header> {
    let mut header = Header::default();
    header.description = Some(description.to_owned());
    RefOr::T(header)
}

/// HTTP's method rules, as [`Endpoint`] serves them, as operations: a `HEAD` beside every
/// `GET` (the same answers without bodies) and an `OPTIONS` on every path (`204` with
/// `Allow`, the path's methods). Runs after the handlers' operations are in, so a new
/// operation gets its `HEAD` and its place in `Allow` by itself.
struct MethodRules;

/// Swagger UI shows an operation's summary as plain text (only descriptions are Markdown),
/// and the summaries come from the handlers' doc comments, which write `POST /login/` in code
/// spans: the backticks are dropped from summaries, and kept in descriptions.
struct PlainSummaries;

impl Modify for PlainSummaries {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(openapi) {
            if let Some(summary) = &mut operation.summary {
                summary.retain(|c| c != '`');
            }
        }
    }
}

impl Modify for MethodRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            if let Some(get) = &item.get {
                let mut head = get.clone();
                head.operation_id = get.operation_id.as_ref().map(|id| format!("{id}_head"));
                head.summary = Some("The same as GET, without the body".to_owned());
                head.description = None;
                for response in head.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.content.clear();
                        response.links.clear();
                    }
                }
                item.head = Some(head);
            }
            let served = [
                ("GET", &item.get),
                ("HEAD", &item.head),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ];
            let mut allow: Vec<&str> = served
                .iter()
                .filter(|(_, op)| op.is_some())
                .map(|(method, _)| *method)
                .collect();
            allow.push("OPTIONS");
            let first = served.iter().find_map(|(_, op)| op.as_ref());
            let mut answer = Response::new("The methods this path serves, in `Allow`");
            answer.headers.insert(
                "Allow".into(),
                string_header(&format!("`{}`", allow.join(", "))),
            );
            let mut options = Operation::default();
            options.operation_id = first
                .and_then(|op| op.operation_id.as_ref())
                .map(|id| format!("{id}_options"));
            options.summary = Some("The methods this path serves".to_owned());
            options.tags = first.and_then(|op| op.tags.clone());
            options.parameters = first.and_then(|op| op.parameters.clone());
            options
                .responses
                .responses
                .insert("204".into(), RefOr::T(answer));
            item.options = Some(options);
        }
    }
}

/// Headers every answer carries (`X-Request-Id`, `Cache-Control`), and `Retry-After` on every
/// `503` and `429`.
struct CommonHeaders;

impl Modify for CommonHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(openapi) {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                response.headers.insert(
                    "X-Request-Id".into(),
                    string_header("The request's id: the caller's `X-Request-Id` when it is 1 to 128 visible ASCII characters, else a fresh one; every log line of the request carries it"),
                );
                response
                    .headers
                    .insert("Cache-Control".into(), string_header("Always `no-store`"));
                if status == "503" {
                    response.headers.insert(
                        "Retry-After".into(),
                        string_header("Seconds to wait before retrying (`1`)"),
                    );
                }
                if status == "429" {
                    response.headers.insert(
                        "Retry-After".into(),
                        string_header("Whole seconds until this address may send the next request (at least `1`)"),
                    );
                }
            }
        }
    }
}

/// The `username` bounds as schema keywords: the pattern of exactly the accepted strings
/// (trimmed length 1 to 128, no control characters), from [`username::PATTERN`].
struct UsernameSchema;

impl Modify for UsernameSchema {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(login))) = components.schemas.get_mut("LoginRequest")
        else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(name))) = login.properties.get_mut("username") {
            name.min_length = Some(1);
            name.pattern = Some(username::PATTERN.to_owned());
        }
    }
}

/// Links from `POST /login/` to the operations its cookie opens ([`AFTER_LOGIN`]).
struct LoginLinks;

impl Modify for LoginLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let login = openapi
            .paths
            .paths
            .get_mut("/login/")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut("200"));
        let Some(RefOr::T(ok)) = login else {
            return;
        };
        for (name, operation_id, parameters) in AFTER_LOGIN {
            let mut link = Link::builder().operation_id(*operation_id);
            for (parameter, value) in *parameters {
                link = link.parameter(*parameter, *value);
            }
            ok.links.insert((*name).into(), RefOr::T(link.build()));
        }
    }
}

/// Declares the session cookie as the API's credential.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "session_cookie",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    "session_id",
                    "The signed session cookie set by POST /login/ (name set by COOKIE_NAME)",
                ))),
            );
        }
    }
}
