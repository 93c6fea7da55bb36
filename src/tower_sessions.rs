//! A [tower-sessions](https://docs.rs/tower-sessions) store over the Upstash REST API: an axum
//! (or any tower) app that keeps its sessions through `SessionManagerLayer` keeps them in
//! Upstash over HTTPS, where tower-sessions' own Redis store needs Redis over TCP (RESP).
//! Behind the cargo feature `tower-sessions`, for tower-sessions 0.14.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower_sessions::{Expiry, Session, SessionManagerLayer};
//! use upstash_sessions::{
//!     tower_sessions::UpstashSessionStore,
//!     upstash::{ClientConfig, UpstashClient},
//! };
//!
//! async fn visit(session: Session) -> String {
//!     let visits = session.get::<u64>("visits").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("visits", visits).await;
//!     format!("visit number {visits}")
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://eu1-example-12345.upstash.io".parse()?;
//! let client = UpstashClient::new(ClientConfig::new(url, "token", Duration::from_secs(3)))?;
//! let sessions = SessionManagerLayer::new(UpstashSessionStore::new(client))
//!     .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::minutes(30)));
//! let app: Router = Router::new().route("/", get(visit)).layer(sessions);
//! # Ok(())
//! # }
//! ```
//!
//! Each store call is one Upstash request of one command; the client's deadline and retry
//! rules apply, and every call is retry-safe:
//!
//! | store call | Upstash request |
//! |---|---|
//! | `load` | `GET key` |
//! | `create` | `SET key record NX PXAT expiry` (taken: `GET key`, see below) |
//! | `save` | `SET key record XX PXAT expiry` |
//! | `delete` | `DEL key` |
//! | `delete_expired` | none: Redis expires every key at its record's `expiry_date` |
//!
//! **`create` never overwrites.** `SET NX` writes only where no key is. When it writes nothing,
//! the key is either another session's (a colliding id: a new id is drawn and tried) or this
//! very call's own record, written by an earlier attempt whose answer was lost before the
//! client retried it: one `GET` tells them apart (the stored record is byte for byte the one
//! being created), so a retried create succeeds once, under the id it first wrote.
//!
//! **`save` never revives.** `SET XX` writes only over an existing key: a request that raced a
//! logout (`flush`, `cycle_id`) or the session's expiry writes nothing and the session stays
//! ended, as with tower-sessions' Redis store.
//!
//! # Stored form
//!
//! Key: the prefix (default [`DEFAULT_KEY_PREFIX`], `tower-sessions:`) and the session id as
//! tower-sessions prints it (22 characters of URL-safe base64). The service's own keys
//! (`session:`, `user_sessions:`) and the actix-session store's (`actix-session:`) never
//! share a prefix with it, so all three can use one database.
//!
//! Value: one JSON object, format version 1 ([`FORMAT_VERSION`]):
//! `{"v":1,"expires_at":1796710340,"expires_at_nanos":123456789,"data":{"visits":3}}` — the
//! expiry as Unix seconds plus the nanoseconds within that second, and the session data as the
//! JSON object tower-sessions holds. Numbers keep their exact value (`u64::MAX`,
//! `i64::MIN`, and every `f64` bit for bit), strings any Unicode. The key's Redis expiry is the
//! record's `expiry_date` (milliseconds, rounded up), and `load` treats a record past its
//! expiry as absent even in the millisecond before Redis drops it. Later releases keep reading
//! version 1; a record of an unknown version fails to load with a `Decode` error naming it.
//!
//! # Errors
//!
//! Failures reach tower-sessions as `session_store::Error`: `Backend` for Upstash
//! (unreachable, no answer within the client's deadline, HTTP 5xx or 429, a reply that is not
//! JSON or not the documented shape), `Decode` for a stored value that is not a version-1
//! record, `Encode` for data that could not be read back (nested deeper than
//! [`MAX_DATA_DEPTH`]) or is larger than the store's limit (no request is spent on those).
//! Texts name the Redis command and the cause, never the token, a key, a session id or data.
//! A whole store call, retries and a `create`'s extra requests included, ends within the
//! client's deadline.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions_core::{
    session::{Id, Record},
    session_store::{self, ExpiredDeletion, SessionStore},
};

use crate::upstash::{
    Command, Reply, RetryPolicy, UpstashClient, UpstashError, DEFAULT_MAX_REPLY_BYTES,
};

/// The default key prefix: apart from the service's `session:` and `user_sessions:` keys and
/// the actix-session store's `actix-session:`.
pub const DEFAULT_KEY_PREFIX: &str = "tower-sessions:";

/// The version of the stored form this release writes (and the only one it reads so far).
pub const FORMAT_VERSION: u64 = 1;

/// The deepest nesting of arrays and objects a session value may have: serde_json reads at
/// most 127 levels of nesting, and the record's own object and its `data` object take two.
/// Deeper data is refused when saved (an `Encode` error), where it would otherwise be stored
/// and then fail every load.
pub const MAX_DATA_DEPTH: usize = 125;

/// The default [`UpstashSessionStoreBuilder::max_record_bytes`]: the largest record whose
/// base64-encoded reply still fits the client's default reply limit
/// ([`DEFAULT_MAX_REPLY_BYTES`]).
pub const DEFAULT_MAX_RECORD_BYTES: usize = DEFAULT_MAX_REPLY_BYTES / 4 * 3 - 64;
// The base64 of such a record, in `{"result":"..."}`, fits the client's default reply limit.
const _: () = assert!(DEFAULT_MAX_RECORD_BYTES.div_ceil(3) * 4 + 64 <= DEFAULT_MAX_REPLY_BYTES);

/// New ids drawn when a fresh one is already taken (with 128 random bits, never in practice).
const CREATE_ATTEMPTS: usize = 4;

/// The session data as tower-sessions holds it.
type Data = HashMap<String, Value>;

/// The stored form, version 1, as written.
#[derive(Serialize)]
struct StoredRef<'a> {
    v: u64,
    expires_at: i64,
    expires_at_nanos: u32,
    data: &'a Data,
}

/// The stored form, version 1, as read.
#[derive(Deserialize)]
struct Stored {
    v: u64,
    expires_at: i64,
    expires_at_nanos: u32,
    data: Data,
}

/// Only the version, to name it when a record is not version 1.
#[derive(Deserialize)]
struct Version {
    v: u64,
}

/// A tower-sessions [`SessionStore`] keeping each session as one JSON string in Upstash Redis,
/// expiring with the record. Cheap to clone: clones share the client. `Debug` shows the
/// Upstash URL and the prefix, never the token.
#[derive(Debug, Clone)]
pub struct UpstashSessionStore {
    client: Arc<UpstashClient>,
    prefix: Arc<str>,
    max_record_bytes: usize,
}

/// Configures an [`UpstashSessionStore`]; from [`UpstashSessionStore::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct UpstashSessionStoreBuilder {
    client: Arc<UpstashClient>,
    prefix: String,
    max_record_bytes: usize,
}

impl UpstashSessionStoreBuilder {
    /// The prefix of every key this store writes (default [`DEFAULT_KEY_PREFIX`]). Give apps
    /// that share one database different prefixes.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The largest stored record, in bytes of JSON (default [`DEFAULT_MAX_RECORD_BYTES`]). A
    /// larger one is refused with an `Encode` error before any request: its reply would be
    /// larger than the client reads. Raise it with `ClientConfig::max_reply_bytes` (to at
    /// least 4/3 of this, plus a little).
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// The store.
    pub fn build(self) -> UpstashSessionStore {
        UpstashSessionStore {
            client: self.client,
            prefix: self.prefix.into(),
            max_record_bytes: self.max_record_bytes,
        }
    }
}

impl UpstashSessionStore {
    /// A store with the default prefix over `client` (an `UpstashClient`, or an `Arc` of one
    /// shared with other users). Deadline and retries are the client's.
    pub fn new(client: impl Into<Arc<UpstashClient>>) -> Self {
        Self::builder(client).build()
    }

    /// A builder for the key prefix and the record size limit.
    pub fn builder(client: impl Into<Arc<UpstashClient>>) -> UpstashSessionStoreBuilder {
        UpstashSessionStoreBuilder {
            client: client.into(),
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// The Redis key of a session id.
    pub fn redis_key(&self, id: &Id) -> String {
        format!("{}{id}", self.prefix)
    }

    /// The client, for callers that need raw access (health checks).
    pub fn client(&self) -> &Arc<UpstashClient> {
        &self.client
    }

    /// Runs `call` within the client's deadline: a `create` that needs more than one request
    /// still ends in time.
    async fn within_deadline<T>(
        &self,
        command: &'static str,
        call: impl std::future::Future<Output = session_store::Result<T>>,
    ) -> session_store::Result<T> {
        let deadline = self.client.timeout();
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(failed(command, &UpstashError::Timeout(deadline))),
        }
    }

    async fn run(&self, command: Command<'_>, name: &'static str) -> session_store::Result<Reply> {
        self.client
            .command(&command, RetryPolicy::Idempotent)
            .await
            .map_err(|e| failed(name, &e))
    }

    /// `SET key body NX|XX PXAT ms`: `true` when written.
    async fn set(
        &self,
        key: &str,
        body: &str,
        condition: &'static str,
        expiry_ms: i64,
    ) -> session_store::Result<bool> {
        let name = if condition == "NX" {
            "SET NX"
        } else {
            "SET XX"
        };
        let command = Command::new("SET")
            .arg(key)
            .arg(body)
            .arg(condition)
            .arg("PXAT")
            .int(expiry_ms);
        match self.run(command, name).await? {
            Reply::Str(ok) if ok == "OK" => Ok(true),
            Reply::Nil => Ok(false),
            _ => Err(unexpected(name)),
        }
    }

    async fn get(&self, key: &str) -> session_store::Result<Option<String>> {
        match self.run(Command::new("GET").arg(key), "GET").await? {
            Reply::Nil => Ok(None),
            Reply::Str(body) => Ok(Some(body)),
            _ => Err(unexpected("GET")),
        }
    }

    async fn create_within_deadline(&self, record: &mut Record) -> session_store::Result<()> {
        let body = self.encode(record)?;
        let expiry = expiry_ms(record.expiry_date);
        for _ in 0..CREATE_ATTEMPTS {
            let key = self.redis_key(&record.id);
            if self.set(&key, &body, "NX", expiry).await? {
                return Ok(());
            }
            // Not written: another session's key, or this call's own record from an attempt
            // whose answer was lost (the client retried it).
            match self.get(&key).await? {
                Some(held) if held == body => return Ok(()),
                Some(_) => record.id = Id::default(),
                // Gone meanwhile (it expired): the id is free again.
                None => {}
            }
        }
        tracing::warn!(
            event = "tower_sessions_store_failed",
            command = "SET NX",
            kind = "no_free_id",
            "fresh session ids kept colliding with existing keys"
        );
        Err(session_store::Error::Backend(
            "could not find a free session id (every new id drawn was taken)".into(),
        ))
    }

    /// The stored form of `record`, refused when it could not be read back.
    fn encode(&self, record: &Record) -> session_store::Result<String> {
        if let Some(depth) = record.data.values().map(depth).max() {
            if depth > MAX_DATA_DEPTH {
                return Err(session_store::Error::Encode(format!(
                    "session data nested {depth} levels deep; at most {MAX_DATA_DEPTH} can be read back"
                )));
            }
        }
        let nanos = record.expiry_date.unix_timestamp_nanos();
        let stored = StoredRef {
            v: FORMAT_VERSION,
            expires_at: record.expiry_date.unix_timestamp(),
            expires_at_nanos: nanos.rem_euclid(1_000_000_000) as u32,
            data: &record.data,
        };
        let body = serde_json::to_string(&stored)
            .map_err(|_| session_store::Error::Encode("the session data is not JSON".into()))?;
        if body.len() > self.max_record_bytes {
            return Err(session_store::Error::Encode(format!(
                "the session record is {} bytes, more than the store's limit of {}",
                body.len(),
                self.max_record_bytes
            )));
        }
        Ok(body)
    }
}

/// Nesting depth of arrays and objects in `value` (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The key's `PXAT`: the expiry in Unix milliseconds, rounded up, at least 1 (Redis refuses
/// 0 and below; a past time expires the key at once).
fn expiry_ms(expiry: OffsetDateTime) -> i64 {
    let nanos = expiry.unix_timestamp_nanos();
    let ms = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    ms.clamp(1, i128::from(i64::MAX)) as i64
}

/// Reads a stored record; `Decode` errors keep only the position, never the stored text.
fn decode(id: Id, body: &str) -> session_store::Result<Record> {
    let stored: Stored = serde_json::from_str(body).map_err(|e| {
        if let Ok(Version { v }) = serde_json::from_str::<Version>(body) {
            if v != FORMAT_VERSION {
                return session_store::Error::Decode(format!(
                    "the stored session record has format version {v}; this release reads version {FORMAT_VERSION}"
                ));
            }
        }
        session_store::Error::Decode(format!(
            "the stored session record is not a version-{FORMAT_VERSION} record ({} error at line {}, column {})",
            category(&e),
            e.line(),
            e.column()
        ))
    })?;
    if stored.v != FORMAT_VERSION {
        return Err(session_store::Error::Decode(format!(
            "the stored session record has format version {}; this release reads version {FORMAT_VERSION}",
            stored.v
        )));
    }
    let nanos = i128::from(stored.expires_at) * 1_000_000_000 + i128::from(stored.expires_at_nanos);
    let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|_| session_store::Error::Decode("the stored expiry is out of range".into()))?;
    Ok(Record {
        id,
        data: stored.data,
        expiry_date,
    })
}

fn category(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}

/// A `Backend` error naming the command and the cause. Upstash's texts are left out where they
/// may quote a reply body (a 5xx page, a reply that is not JSON).
fn failed(command: &'static str, error: &UpstashError) -> session_store::Error {
    tracing::warn!(
        event = "tower_sessions_store_failed",
        command,
        kind = error.kind(),
        "an Upstash call of the tower-sessions store failed"
    );
    let cause = match error {
        UpstashError::Unauthorized(_) => "Upstash rejected the token (HTTP 401)".to_owned(),
        UpstashError::RateLimited { .. } => "Upstash is rate limiting (HTTP 429)".to_owned(),
        UpstashError::Status { status, .. } => format!("Upstash answered HTTP {status}"),
        UpstashError::NotJson(_) => "the Upstash reply is not JSON".to_owned(),
        UpstashError::Command(message) => {
            // Redis quotes the arguments of a command it does not know: keep its words only.
            let words = message.split(", with args").next().unwrap_or_default();
            format!("Upstash command error: {words}")
        }
        UpstashError::Transport(_)
        | UpstashError::Timeout(_)
        | UpstashError::Protocol(_)
        | UpstashError::TooLarge { .. }
        | UpstashError::OverBudget { .. } => error.to_string(),
    };
    session_store::Error::Backend(format!("the Upstash call ({command}) failed: {cause}"))
}

fn unexpected(command: &'static str) -> session_store::Error {
    tracing::warn!(
        event = "tower_sessions_store_failed",
        command,
        kind = "unexpected_reply",
        "an Upstash call of the tower-sessions store got a reply its command cannot give"
    );
    session_store::Error::Backend(format!("unexpected reply to {command} from Upstash"))
}

#[async_trait]
impl SessionStore for UpstashSessionStore {
    /// `SET key record NX PXAT expiry`; a taken id gets a new one (see the module docs).
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.within_deadline("SET NX", self.create_within_deadline(record))
            .await
    }

    /// `SET key record XX PXAT expiry`: a session that ended meanwhile stays ended.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let body = self.encode(record)?;
        let key = self.redis_key(&record.id);
        let expiry = expiry_ms(record.expiry_date);
        let written = self
            .within_deadline("SET XX", self.set(&key, &body, "XX", expiry))
            .await?;
        if !written {
            tracing::info!(
                event = "tower_sessions_save_dropped",
                "the session ended before it was saved; the save is dropped"
            );
        }
        Ok(())
    }

    /// `GET key`: `None` when missing or past its expiry.
    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let key = self.redis_key(session_id);
        let Some(body) = self.within_deadline("GET", self.get(&key)).await? else {
            return Ok(None);
        };
        let record = decode(*session_id, &body)?;
        Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
    }

    /// `DEL key` (deleting a missing key succeeds).
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let key = self.redis_key(session_id);
        let del = async {
            match self.run(Command::new("DEL").arg(key), "DEL").await? {
                Reply::Int(_) => Ok(()),
                _ => Err(unexpected("DEL")),
            }
        };
        self.within_deadline("DEL", del).await
    }
}

#[async_trait]
impl ExpiredDeletion for UpstashSessionStore {
    /// Does nothing and sends nothing: every key carries its record's expiry (`PXAT`), and
    /// Redis deletes expired keys itself. It exists so that an app written for a store that
    /// needs a sweep (`continuously_delete_expired`, as with SQL stores) runs unchanged, at no
    /// cost.
    async fn delete_expired(&self) -> session_store::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: Data, expiry_date: OffsetDateTime) -> Record {
        Record {
            id: Id(i128::MIN),
            data,
            expiry_date,
        }
    }

    fn nested(levels: usize) -> Value {
        (0..levels).fold(Value::from(1), |inner, _| Value::Array(vec![inner]))
    }

    use std::time::Duration;

    fn store() -> UpstashSessionStore {
        let url = "http://127.0.0.1:9".parse().unwrap();
        let config = crate::upstash::ClientConfig::new(url, "t", Duration::from_secs(1));
        UpstashSessionStore::new(UpstashClient::new(config).unwrap())
    }

    #[test]
    fn records_round_trip_exactly_through_the_stored_form() {
        let data: Data = [
            ("max".to_owned(), Value::from(u64::MAX)),
            ("min".to_owned(), Value::from(i64::MIN)),
            ("float".to_owned(), serde_json::json!(0.1 + 0.2)),
            ("tiny".to_owned(), serde_json::json!(5e-324)),
            (
                "text".to_owned(),
                Value::from("żółć 🦀 \u{0} \" \\ \u{202e}"),
            ),
            (
                "nested".to_owned(),
                serde_json::json!({"a": [1, {"b": null}], "c": true}),
            ),
        ]
        .into();
        let expiry = OffsetDateTime::from_unix_timestamp_nanos(1_796_710_340_123_456_789).unwrap();
        let original = record(data, expiry);
        let body = store().encode(&original).unwrap();
        assert!(
            body.starts_with(
                r#"{"v":1,"expires_at":1796710340,"expires_at_nanos":123456789,"data":{"#
            ),
            "{body}"
        );
        assert!(body.contains("18446744073709551615"), "{body}");
        let back = decode(original.id, &body).unwrap();
        assert_eq!(back, original);
        let floats = |r: &Record| {
            (
                r.data["float"].as_f64().unwrap().to_bits(),
                r.data["tiny"].as_f64().unwrap().to_bits(),
            )
        };
        assert_eq!(floats(&back), floats(&original));
    }

    #[test]
    fn data_nested_to_the_limit_reads_back_and_deeper_data_is_refused() {
        let at_limit = record(
            [("deep".to_owned(), nested(MAX_DATA_DEPTH))].into(),
            OffsetDateTime::now_utc(),
        );
        let body = store().encode(&at_limit).unwrap();
        assert_eq!(decode(at_limit.id, &body).unwrap(), at_limit);
        let deeper = record(
            [("deep".to_owned(), nested(MAX_DATA_DEPTH + 1))].into(),
            OffsetDateTime::now_utc(),
        );
        // What the limit guards against: serde_json cannot read such a record back.
        let unchecked = serde_json::to_string(&StoredRef {
            v: 1,
            expires_at: 0,
            expires_at_nanos: 0,
            data: &deeper.data,
        })
        .unwrap();
        assert!(decode(deeper.id, &unchecked).is_err());
        let err = store().encode(&deeper).unwrap_err();
        assert!(matches!(err, session_store::Error::Encode(_)), "{err}");
    }

    #[test]
    fn records_over_the_size_limit_are_refused_before_any_request() {
        let store = UpstashSessionStore::builder(store().client.clone())
            .max_record_bytes(100)
            .build();
        let big = record(
            [("blob".to_owned(), Value::from("x".repeat(100)))].into(),
            OffsetDateTime::now_utc(),
        );
        let err = store.encode(&big).unwrap_err();
        assert!(err.to_string().contains("limit of 100"), "{err}");
    }

    #[test]
    fn decode_errors_never_quote_the_stored_data() {
        let json = r#"{"v":1,"expires_at":"alice-secret-value","expires_at_nanos":0,"data":{}}"#;
        let serde = serde_json::from_str::<Stored>(json).err().unwrap();
        assert!(serde.to_string().contains("alice-secret-value"));
        let err = decode(Id(1), json).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("alice-secret-value"), "{text}");
        assert!(text.contains("data error"), "{text}");
        let err = decode(Id(1), r#"{"v":2,"something":"else"}"#).unwrap_err();
        assert!(err.to_string().contains("format version 2"), "{err}");
        let err = decode(Id(1), "not json").unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
    }

    #[test]
    fn the_key_expiry_is_the_record_expiry_in_milliseconds_rounded_up() {
        let at = |nanos: i128| OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
        assert_eq!(expiry_ms(at(1_796_710_340_000_000_000)), 1_796_710_340_000);
        assert_eq!(expiry_ms(at(1_796_710_340_000_000_001)), 1_796_710_340_001);
        assert_eq!(
            expiry_ms(at(-5_000_000_000)),
            1,
            "before 1970: expire at once"
        );
        assert_eq!(expiry_ms(at(0)), 1);
    }

    #[test]
    fn session_ids_of_every_i128_make_distinct_keys_that_parse_back() {
        let store = store();
        for id in [i128::MIN, -1, 0, 1, i128::MAX] {
            let key = store.redis_key(&Id(id));
            let printed = key.strip_prefix(DEFAULT_KEY_PREFIX).unwrap();
            assert_eq!(printed.len(), 22);
            assert_eq!(printed.parse::<Id>().unwrap(), Id(id));
        }
    }
}
