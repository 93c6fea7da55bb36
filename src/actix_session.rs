//! An [actix-session](https://docs.rs/actix-session) store over the Upstash REST API: any
//! actix-web app that keeps its sessions through `SessionMiddleware` switches from Redis over
//! TCP to Upstash over HTTPS with one line. Behind the cargo feature `actix-session`.
//!
//! ```no_run
//! use std::time::Duration;
//! use actix_session::{Session, SessionMiddleware};
//! use actix_web::{cookie::Key, web, App, HttpServer};
//! use upstash_sessions::{
//!     actix_session::UpstashSessionStore,
//!     upstash::{ClientConfig, UpstashClient},
//! };
//!
//! async fn visit(session: Session) -> actix_web::Result<String> {
//!     let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
//!     session.insert("visits", visits)?;
//!     Ok(format!("visit number {visits}"))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let url = "https://eu1-example-12345.upstash.io".parse()?;
//!     let client = UpstashClient::new(ClientConfig::new(url, "token", Duration::from_secs(3)))?;
//!     let store = UpstashSessionStore::new(client);
//!     // In production, load the key from configuration: a new key logs everybody out.
//!     let key = Key::generate();
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(SessionMiddleware::new(store.clone(), key.clone()))
//!             .route("/", web::get().to(visit))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! Each store call is one Upstash request; the client's deadline and retry rules apply:
//!
//! | store call | when the middleware makes it | Upstash request | retried |
//! |---|---|---|---|
//! | `load` | a request carries a valid session cookie | `GET key` (`GETEX key EX ttl` with `extend_ttl_on_load`) | yes |
//! | `save` | a new session gets state; `renew()` | `/multi-exec`: `SET key state NX EX ttl`, `GET key` | yes: a retry that finds its own state counts as success |
//! | `update` | an existing session's state changed | `SET key state XX EX ttl` | yes |
//! | `update_ttl` | unchanged state, `TtlExtensionPolicy::OnEveryRequest` | `EXPIRE key ttl` | yes |
//! | `delete` | `purge()`; `renew()` | `DEL key` | yes |
//!
//! Keys are `<prefix><64 random alphanumerics>` (about 381 random bits); the default prefix
//! `actix-session:` never collides with the service's own `session:` and `user_sessions:`
//! keys. A session whose key vanished between `load` and `update` (a concurrent `purge()`, or
//! its expiry) stays ended by default: see [`OnMissingKey`].
//!
//! Errors reach the middleware as `LoadError::Other`/`SaveError::Other`/`UpdateError::Other`
//! (an opaque 500 for the user), except state in Redis that is not a JSON map of strings,
//! which is `LoadError::Deserialization` (the middleware then starts an empty session). No
//! error text carries the token, a session key or session data.

use std::{collections::HashMap, sync::Arc};

use ::actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration;

use crate::upstash::{Command, Reply, RetryPolicy, UpstashClient, UpstashError};

/// The default key prefix: apart from the service's `session:` and `user_sessions:` keys.
pub const DEFAULT_KEY_PREFIX: &str = "actix-session:";

/// New keys drawn when a fresh key is already taken (never seen in practice: 381 bits).
const SAVE_ATTEMPTS: usize = 3;

/// The session state as actix-session hands it over: string keys to JSON-encoded values.
type SessionState = HashMap<String, String>;

/// What `update` does when the session's key is gone from Redis by the time it writes: a
/// concurrent request called `purge()` (a logout), or the session expired since `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissingKey {
    /// The write is dropped and the session stays ended (the default): a request that raced a
    /// logout cannot log the user back in. The response still succeeds; the cookie keeps the
    /// dead key, so the next request starts an empty session. No request beyond the `SET XX`.
    #[default]
    KeepEnded,
    /// Save the state under a new key, as actix-session's `RedisSessionStore` does (one more
    /// request, `SET NX`). Only for state that must never be lost, and where reviving a
    /// session that a concurrent `purge()` ended is acceptable.
    SaveAsNew,
}

/// Why a store call failed. The texts name the command, never a key, the token or any state.
#[derive(Debug, thiserror::Error)]
pub enum UpstashSessionError {
    /// The Upstash call failed (unreachable, deadline passed, HTTP error, garbage answer).
    #[error("the Upstash call ({command}) failed")]
    Upstash {
        /// The Redis command, e.g. `GETEX`.
        command: &'static str,
        /// The client's error.
        #[source]
        source: UpstashError,
    },
    /// Upstash answered a reply the command cannot give.
    #[error("unexpected reply to {0} from Upstash")]
    Unexpected(&'static str),
    /// Fresh keys kept colliding with existing ones (a broken random source).
    #[error("could not find a free session key")]
    NoFreeKey,
    /// The stored state is not a JSON map of strings. Only the position is kept: serde's own
    /// message may quote the stored data.
    #[error("the stored session state is not a JSON map of strings ({category} error at line {line}, column {column})")]
    Corrupt {
        /// serde_json's error category: `syntax`, `data`, `eof` or `io`.
        category: &'static str,
        /// Line of the error in the stored text, from 1.
        line: usize,
        /// Column of the error in the stored text, from 1.
        column: usize,
    },
    /// The state could not be encoded as JSON.
    #[error("the session state cannot be encoded as JSON")]
    Encode,
}

/// An actix-session [`SessionStore`] keeping each session as one JSON string in Upstash
/// Redis, with the session TTL as its Redis expiry. Cheap to clone: clones share the client.
#[derive(Debug, Clone)]
pub struct UpstashSessionStore {
    client: Arc<UpstashClient>,
    prefix: Arc<str>,
    on_missing: OnMissingKey,
    /// Whole seconds: `load` slides the expiry to this (`GETEX EX`), when set.
    extend_on_load: Option<i64>,
}

/// Configures an [`UpstashSessionStore`]; from [`UpstashSessionStore::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct UpstashSessionStoreBuilder {
    client: Arc<UpstashClient>,
    prefix: String,
    on_missing: OnMissingKey,
    extend_on_load: Option<i64>,
}

impl UpstashSessionStoreBuilder {
    /// The prefix of every key this store writes (default [`DEFAULT_KEY_PREFIX`]). Give apps
    /// that share one database different prefixes.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// What `update` does when the key vanished since `load` (default
    /// [`OnMissingKey::KeepEnded`]).
    pub fn on_missing_key(mut self, policy: OnMissingKey) -> Self {
        self.on_missing = policy;
        self
    }

    /// Makes every `load` also reset the session's expiry to `ttl`, in the same request
    /// (`GETEX key EX ttl` instead of `GET key`): an idle timeout that slides on reads at one
    /// request per read, where `TtlExtensionPolicy::OnEveryRequest` costs two (`GET`, then
    /// `EXPIRE`). Meant for `BrowserSession` (its cookie has no `Max-Age`) with the
    /// `OnStateChanges` policy, and `ttl` equal to its `state_ttl`. With `PersistentSession`
    /// prefer `OnEveryRequest`: only it also refreshes the cookie's `Max-Age` on reads.
    pub fn extend_ttl_on_load(mut self, ttl: Duration) -> Self {
        self.extend_on_load = Some(ttl_secs(&ttl));
        self
    }

    /// Builds the store with the options set so far.
    pub fn build(self) -> UpstashSessionStore {
        UpstashSessionStore {
            client: self.client,
            prefix: self.prefix.into(),
            on_missing: self.on_missing,
            extend_on_load: self.extend_on_load,
        }
    }
}

impl UpstashSessionStore {
    /// A store with the default prefix and policy over `client` (an `UpstashClient`, or an
    /// `Arc` of one shared with other users). Deadline and retries are the client's.
    pub fn new(client: impl Into<Arc<UpstashClient>>) -> Self {
        Self::builder(client).build()
    }

    /// A builder for the key prefix, the [`OnMissingKey`] policy and sliding reads.
    pub fn builder(client: impl Into<Arc<UpstashClient>>) -> UpstashSessionStoreBuilder {
        UpstashSessionStoreBuilder {
            client: client.into(),
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            on_missing: OnMissingKey::default(),
            extend_on_load: None,
        }
    }

    /// The Redis key of a session key.
    pub fn redis_key(&self, session_key: &SessionKey) -> String {
        let key: &str = session_key.as_ref();
        let mut out = String::with_capacity(self.prefix.len() + key.len());
        out.push_str(&self.prefix);
        out.push_str(key);
        out
    }

    /// The client, for callers that need raw access (health checks).
    pub fn client(&self) -> &Arc<UpstashClient> {
        &self.client
    }

    async fn run(
        &self,
        command: Command<'_>,
        name: &'static str,
    ) -> Result<Reply, UpstashSessionError> {
        self.client
            .command(&command, RetryPolicy::Idempotent)
            .await
            .map_err(|e| failed(name, e))
    }

    /// Stores `body` under a fresh key that did not exist: one `/multi-exec` request per key
    /// drawn. The `GET` after `SET NX` tells a retry that finds its own write (success) from a
    /// key some other session holds (draw another).
    async fn save_new(
        &self,
        body: &str,
        ttl: &Duration,
    ) -> Result<SessionKey, UpstashSessionError> {
        let ttl = ttl_secs(ttl);
        for _ in 0..SAVE_ATTEMPTS {
            let session_key = generate_session_key();
            let key = self.redis_key(&session_key);
            let commands = [
                Command::new("SET")
                    .arg(key.as_str())
                    .arg(body)
                    .arg("NX")
                    .arg("EX")
                    .int(ttl),
                Command::new("GET").arg(key.as_str()),
            ];
            let mut items = self
                .client
                .transaction(&commands, RetryPolicy::Idempotent)
                .await
                .map_err(|e| failed("SET NX", e))?;
            let get = items.pop();
            let set = items.pop();
            match (set, get) {
                (Some(Ok(Reply::Str(ok))), Some(Ok(_))) if ok == "OK" => return Ok(session_key),
                // Not set: either an earlier attempt of this very call set it (the retry of a
                // lost answer), or the key belongs to another session.
                (Some(Ok(Reply::Nil)), Some(Ok(Reply::Str(held)))) if held == body => {
                    return Ok(session_key)
                }
                (Some(Ok(Reply::Nil)), Some(Ok(_))) => continue,
                (Some(Err(message)), _) | (_, Some(Err(message))) => {
                    return Err(failed("SET NX", UpstashError::Command(message)))
                }
                _ => return Err(UpstashSessionError::Unexpected("SET NX")),
            }
        }
        Err(UpstashSessionError::NoFreeKey)
    }
}

fn failed(command: &'static str, source: UpstashError) -> UpstashSessionError {
    tracing::warn!(
        event = "actix_session_store_failed",
        command,
        kind = source.kind(),
        "an Upstash call of the actix-session store failed"
    );
    UpstashSessionError::Upstash { command, source }
}

/// Whole seconds, at least 1 (Redis rejects an expiry of 0).
fn ttl_secs(ttl: &Duration) -> i64 {
    ttl.whole_seconds().max(1)
}

fn encode(state: &SessionState) -> Result<String, UpstashSessionError> {
    serde_json::to_string(state).map_err(|_| UpstashSessionError::Encode)
}

fn decode(json: &str) -> Result<SessionState, UpstashSessionError> {
    serde_json::from_str(json).map_err(|e| UpstashSessionError::Corrupt {
        category: match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        },
        line: e.line(),
        column: e.column(),
    })
}

impl SessionStore for UpstashSessionStore {
    /// `GET key` (or `GETEX key EX ttl`, see `extend_ttl_on_load`): `None` when missing or
    /// expired.
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let key = self.redis_key(session_key);
        let (command, name) = match self.extend_on_load {
            None => (Command::new("GET").arg(key), "GET"),
            Some(ttl) => (Command::new("GETEX").arg(key).arg("EX").int(ttl), "GETEX"),
        };
        let reply = self
            .run(command, name)
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        match reply {
            Reply::Nil => Ok(None),
            Reply::Str(json) => decode(&json)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
            _ => Err(LoadError::Other(
                UpstashSessionError::Unexpected("GET").into(),
            )),
        }
    }

    /// A new random key, written with `SET NX EX` (see the module docs).
    async fn save(&self, state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let body = encode(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        self.save_new(&body, ttl)
            .await
            .map_err(|e| SaveError::Other(e.into()))
    }

    /// `SET key state XX EX ttl`; a vanished key is handled by [`OnMissingKey`].
    async fn update(
        &self,
        session_key: SessionKey,
        state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let body = encode(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let key = self.redis_key(&session_key);
        let set = Command::new("SET")
            .arg(key)
            .arg(body.as_str())
            .arg("XX")
            .arg("EX")
            .int(ttl_secs(ttl));
        let reply = self
            .run(set, "SET XX")
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        match reply {
            Reply::Str(ok) if ok == "OK" => Ok(session_key),
            Reply::Nil => match self.on_missing {
                OnMissingKey::KeepEnded => {
                    tracing::info!(
                        event = "actix_session_update_dropped",
                        "the session ended before its update; the update is dropped"
                    );
                    Ok(session_key)
                }
                OnMissingKey::SaveAsNew => self
                    .save_new(&body, ttl)
                    .await
                    .map_err(|e| UpdateError::Other(e.into())),
            },
            _ => Err(UpdateError::Other(
                UpstashSessionError::Unexpected("SET XX").into(),
            )),
        }
    }

    /// `EXPIRE key ttl` (nothing happens to a missing key).
    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let key = self.redis_key(session_key);
        match self
            .run(Command::new("EXPIRE").arg(key).int(ttl_secs(ttl)), "EXPIRE")
            .await?
        {
            Reply::Int(_) => Ok(()),
            _ => Err(UpstashSessionError::Unexpected("EXPIRE").into()),
        }
    }

    /// `DEL key` (deleting a missing key succeeds).
    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let key = self.redis_key(session_key);
        match self.run(Command::new("DEL").arg(key), "DEL").await? {
            Reply::Int(_) => Ok(()),
            _ => Err(UpstashSessionError::Unexpected("DEL").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_state_errors_never_quote_the_stored_data() {
        // serde_json's own message would quote the string: "invalid type: string ...".
        let json = r#""alice-secret-value""#;
        let serde = serde_json::from_str::<SessionState>(json).unwrap_err();
        assert!(serde.to_string().contains("alice-secret-value"));
        let err = decode(json).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("alice-secret-value"), "{text}");
        assert!(text.contains("data error"), "{text}");
        let err = decode("not json at all").unwrap_err();
        assert!(format!("{err}").contains("syntax"), "{err}");
    }

    #[test]
    fn state_round_trips_through_json() {
        let state: SessionState = [("cart".to_owned(), r#"["apple"]"#.to_owned())].into();
        assert_eq!(decode(&encode(&state).unwrap()).unwrap(), state);
    }

    #[test]
    fn ttls_below_one_second_become_one_second() {
        assert_eq!(ttl_secs(&Duration::ZERO), 1);
        assert_eq!(ttl_secs(&Duration::milliseconds(-5)), 1);
        assert_eq!(ttl_secs(&Duration::minutes(15)), 900);
    }
}
