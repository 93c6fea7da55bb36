//! upstash-sessions: server-side sessions for Actix-web, kept in Upstash Redis through its
//! HTTPS REST API, or in an embedded in-memory store when no Upstash settings are given.
//!
//! Layers, each knowing only the one below it:
//! HTTP [`routes`] → session logic ([`session`]: ids, signed cookies, lifetimes) →
//! the [`store::SessionStore`] trait → its backends ([`store::MemoryStore`],
//! [`store::UpstashStore`]) → the Upstash REST client ([`upstash`]). The value types they
//! all speak in (a [`domain::SessionId`], its [`domain::SessionData`] record, the
//! application's [`domain::AppData`], a [`domain::Username`]) live in [`domain`], below every
//! layer. [`startup`] wires the layers together from [`settings`]; [`metrics`], [`openapi`]
//! and [`telemetry`] sit beside them. A test (`layers_import_only_the_layer_below`) holds
//! the routes, session logic, stores and client to this. `docs/architecture.md` walks
//! through each module.
//!
//! Before any store work, the routes refuse a client over its [`ratelimit`] allowance; the
//! client refuses to send past the instance's command budget
//! (`UPSTASH_MAX_COMMANDS_PER_SECOND`). Neither refusal costs an Upstash command.
//!
//! With the cargo feature `actix-session`, the `actix_session` module offers an
//! actix-session `SessionStore` over the same Upstash client, for apps that keep their
//! sessions through actix-session's middleware. With the cargo feature `tower-sessions`, the
//! `tower_sessions` module offers a tower-sessions `SessionStore` (axum and other tower apps)
//! over the same client.
//!
//! # Mount the session routes in your own app
//!
//! Build a [`session::SessionManager`] from [`settings::Settings`] and mount
//! [`routes::configure`] under any scope:
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use upstash_sessions::{routes, settings::Settings, startup::session_manager};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let settings = Settings::from_env()?;
//!     let sessions = web::Data::new(session_manager(&settings, None).await?);
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(sessions.clone())
//!             // Bodies may take REQUEST_BODY_TIMEOUT_MS (10 s without this) to arrive.
//!             .app_data(routes::BodyTimeout(settings.request_body_timeout))
//!             // A chunked body left unread closes its connection instead of being drained.
//!             .wrap(routes::CloseUnreadBodies)
//!             // POST /auth/login/, GET /auth/profile/, POST /auth/logout/, ...
//!             .service(
//!                 web::scope("/auth")
//!                     // CORS for CORS_ALLOWED_ORIGINS and the cross-site request guard, on
//!                     // these routes only (wrapped on the App it would guard yours too).
//!                     .wrap(routes::OriginPolicy::new(
//!                         &settings.cors_allowed_origins,
//!                         settings.public_origin.as_deref(),
//!                     ))
//!                     .configure(routes::configure),
//!             )
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Use the store directly
//!
//! The store and the Upstash client stand alone:
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use upstash_sessions::{
//!     domain::{AppData, SessionData, SessionId},
//!     store::{Merged, SessionStore, UpstashStore},
//!     upstash::{ClientConfig, UpstashClient},
//! };
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://eu1-example-12345.upstash.io".parse()?;
//! let client = UpstashClient::new(ClientConfig::new(url, "token", Duration::from_secs(3)))?;
//! let store = UpstashStore::new(Arc::new(client));
//!
//! let id = SessionId::random();
//! let data = SessionData {
//!     user: "alice".into(),
//!     status: "active".into(),
//!     created_at: 1_800_000_000,
//!     absolute_expires_at: 1_800_043_200,
//!     data: AppData::parse(r#"{"cart": {"apple": 2}}"#)?,
//! };
//! store.create(&id, &data, Duration::from_secs(900), None).await?;
//! // Read and slide the idle expiry in one GETEX.
//! assert_eq!(store.load(&id, Duration::from_secs(900)).await?, Some(data));
//! // Merge a JSON merge patch (RFC 7396) into the data: one EVALSHA, atomic.
//! let patch = AppData::parse(r#"{"cart": {"apple": null, "pear": 1}, "locale": "fr"}"#)?;
//! let now_ms = 1_800_000_060_000;
//! match store.merge(&id, &patch, Duration::from_secs(900), now_ms, 16_384).await? {
//!     Merged::Merged(session) => {
//!         assert_eq!(session.data.as_str(), r#"{"cart":{"pear":1},"locale":"fr"}"#)
//!     }
//!     Merged::Gone | Merged::Expired => println!("logged out meanwhile"),
//!     Merged::TooLarge { size } => println!("{size} bytes is too much"),
//! }
//! store.delete(&id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Raw commands go through [`upstash::UpstashClient`]:
//!
//! ```no_run
//! # async fn demo(client: upstash_sessions::upstash::UpstashClient) -> Result<(), upstash_sessions::upstash::UpstashError> {
//! use upstash_sessions::upstash::{Command, RetryPolicy};
//! let reply = client
//!     .command(&Command::new("GET").arg("some-key"), RetryPolicy::Idempotent)
//!     .await?;
//! println!("{:?}", reply.as_str());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "actix-session")]
pub mod actix_session;
#[cfg(any(test, doctest))]
mod doc_examples;
pub mod domain;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod session;
pub mod settings;
pub mod startup;
pub mod store;
mod sync;
pub mod telemetry;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions;
pub mod traces;
pub mod upstash;

#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Every `.rs` file under `src/<dir>`, with its comments and white space left out.
    fn code_of(dir: &str) -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut pending = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir)];
        while let Some(path) = pending.pop() {
            if path.is_dir() {
                pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
                    .collect();
                files.push((path.display().to_string(), code));
            }
        }
        assert!(!files.is_empty(), "no source under src/{dir}");
        files
    }

    /// The top-level modules of the crate that `code` names: `crate::a::..` and each
    /// `crate::{a::.., b}`.
    fn modules_named(code: &str) -> Vec<&str> {
        let mut named = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            named.push(first_segment(&group[start..i]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            named.push(first_segment(&group[start..i]));
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            } else {
                named.push(first_segment(rest));
            }
        }
        named
    }

    fn first_segment(path: &str) -> &str {
        let end = path
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(path.len());
        &path[..end]
    }

    #[test]
    fn modules_named_reads_paths_and_groups() {
        let code = "usecrate::{domain::{A,B},session::C};fnf(){crate::store::x()}";
        assert_eq!(modules_named(code), ["domain", "session", "store"]);
    }

    #[test]
    fn layers_import_only_the_layer_below() {
        let above_store = ["routes", "session", "startup", "metrics", "openapi"];
        for (layer, forbidden) in [
            ("routes", &["store", "upstash", "startup", "settings"][..]),
            ("session", &["routes", "upstash", "startup", "settings"]),
            ("store", &above_store[..]),
            (
                "upstash",
                &["routes", "session", "store", "domain", "startup"],
            ),
            (
                "domain",
                &["routes", "session", "store", "upstash", "startup"],
            ),
        ] {
            for (file, code) in code_of(layer) {
                for module in modules_named(&code) {
                    assert!(
                        !forbidden.contains(&module),
                        "{file} reaches past its layer into crate::{module}"
                    );
                }
            }
        }
    }
}
