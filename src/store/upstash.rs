//! The Upstash backend: one Redis key per session and a sorted set per user, each store
//! operation one REST request where the product needs it.
//!
//! Keys: `session:<id>` holds the record as JSON with the idle TTL as its Redis expiry;
//! `user_sessions:<user>` is a sorted set of that user's session ids scored by their absolute
//! expiry (unix seconds), pruned by score whenever it is written or read, and itself expiring
//! with the newest session's absolute lifetime, so it cannot grow without bound.
//!
//! | operation | requests | commands |
//! |---|---|---|
//! | create | 1 (`/multi-exec`) | SET NX EX, ZADD, ZREMRANGEBYSCORE, EXPIRE NX, EXPIRE GT, ZCARD (+ DEL and ZREM of a replaced session); 3 more when the index holds more entries than the per-user limit (ZRANGE, EXISTS per member, then ZREM of gone entries + DEL/ZREM of the oldest live ones past the limit) |
//! | load | 1 | GETEX EX |
//! | merge | 1 (+1 once per process: the script cache) | EVALSHA of [`MERGE_SCRIPT`] (EVAL when Redis answers NOSCRIPT) |
//! | delete | 1 | DEL |
//! | list_user | 1-2 (+1 once per process: the script cache) | ZREMRANGEBYSCORE + ZRANGE, then EVALSHA of [`LIST_SCRIPT`] over the sessions' keys (EVAL when Redis answers NOSCRIPT): only the fields a listing shows come back, never the data |
//! | delete_user_session | 1-2 | ZSCORE + EXISTS, then DEL + ZREM |
//! | delete_user | 1-3 | ZRANGE, EXISTS per member, then DEL + ZREM |

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use async_trait::async_trait;
use sha1::{Digest, Sha1};

use super::{
    AppData, Created, ListedSession, Merged, SessionData, SessionId, SessionStore, StoreError,
};
use crate::domain::clock::unix_seconds as unix_now;
use crate::upstash::{Command, Reply, RetryPolicy, UpstashClient, UpstashError};

/// The Lua script of [`SessionStore::merge`]: reads the record, refuses a missing or
/// expired session, merges the patch into `data` without decoding values (Redis's cjson
/// would round numbers and turn `[]` into `{}`), checks the size, and writes it back with
/// the idle TTL, all in one atomic step.
pub const MERGE_SCRIPT: &str = concat!(include_str!("json_scan.lua"), include_str!("merge.lua"));

/// The SHA-1 of [`MERGE_SCRIPT`] as `EVALSHA` takes it (lower-case hex).
pub fn merge_script_sha() -> &'static str {
    static SHA: LazyLock<String> = LazyLock::new(|| sha1_hex(MERGE_SCRIPT));
    &SHA
}

/// The Lua script of [`SessionStore::list_user`]: for each session key, the record's
/// `created_at` and `absolute_expires_at` when it is the user's, so a listing transfers a
/// few bytes per session whatever their data holds. It reads the records as every release
/// wrote them.
pub const LIST_SCRIPT: &str = concat!(include_str!("json_scan.lua"), include_str!("list.lua"));

/// The SHA-1 of [`LIST_SCRIPT`] as `EVALSHA` takes it (lower-case hex).
pub fn list_script_sha() -> &'static str {
    static SHA: LazyLock<String> = LazyLock::new(|| sha1_hex(LIST_SCRIPT));
    &SHA
}

fn sha1_hex(script: &str) -> String {
    Sha1::digest(script.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sessions in Upstash Redis.
#[derive(Debug, Clone)]
pub struct UpstashStore {
    client: Arc<UpstashClient>,
    max_per_user: usize,
    auto_pipeline: bool,
}

impl UpstashStore {
    /// A store over `client`, with the default per-user limit.
    pub fn new(client: Arc<UpstashClient>) -> Self {
        Self {
            client,
            max_per_user: super::DEFAULT_MAX_SESSIONS_PER_USER,
            auto_pipeline: true,
        }
    }

    /// Whether concurrent session reads share `/pipeline` requests (default: yes).
    pub fn with_auto_pipeline(mut self, on: bool) -> Self {
        self.auto_pipeline = on;
        self
    }

    /// Sets how many index entries (sessions) a user may hold; a login past it ends the
    /// oldest. This also bounds the keys of a listing's script and the `DEL` of `delete_user`.
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max.max(1);
        self
    }

    /// Brings the user of `index` back within the limit after a login took the index past
    /// it: entries whose session is gone (logged out, rotated, idle-expired) are dropped from
    /// the index, and only if more than `max_per_user` live sessions remain are the oldest
    /// live ones ended, never `keep` (the session just created, which may tie on score with
    /// older ones). Three requests, only after a login took the index past the limit.
    async fn trim_to_limit(&self, index: &str, keep: &SessionId) -> Result<usize, StoreError> {
        let (live, dead) = self.live_members(index).await?;
        let live: Vec<SessionId> = live.into_iter().filter(|id| id != keep).collect();
        // `keep` counts against the limit too.
        let excess = (live.len() + 1).saturating_sub(self.max_per_user);
        self.end_indexed(index, &live[..excess], &dead).await?;
        Ok(excess)
    }

    /// The members of `index`, oldest first, split into those whose session record exists
    /// and those whose record is gone. Two requests (ZRANGE, then one EXISTS per member).
    async fn live_members(
        &self,
        index: &str,
    ) -> Result<(Vec<SessionId>, Vec<SessionId>), StoreError> {
        let members = self
            .client
            .command(
                &Command::new("ZRANGE").arg(index).arg("0").arg("-1"),
                RetryPolicy::Idempotent,
            )
            .await?;
        let ids = ids_of(members, "ZRANGE")?;
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let keys: Vec<String> = ids.iter().map(session_key).collect();
        let exists: Vec<Command<'_>> = keys
            .iter()
            .map(|key| Command::new("EXISTS").arg(key.as_str()))
            .collect();
        let mut items = self
            .client
            .transaction(&exists, RetryPolicy::Idempotent)
            .await?;
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        for (i, id) in ids.into_iter().enumerate() {
            match item(&mut items, i, "EXISTS")?.as_int() {
                Some(n) if n > 0 => live.push(id),
                Some(_) => dead.push(id),
                None => return Err(unexpected("EXISTS", "not an integer")),
            }
        }
        Ok((live, dead))
    }

    /// Deletes the sessions `end` and removes them and the stale entries `stale` from
    /// `index`, in one transaction. Only these members are removed: a session created
    /// meanwhile stays indexed (and so listed), never orphaned.
    ///
    /// What the deletion reports is not used: when an attempt is applied but its answer lost,
    /// the retry's `DEL` counts 0, so callers decide what was ended from what they read before.
    async fn end_indexed(
        &self,
        index: &str,
        end: &[SessionId],
        stale: &[SessionId],
    ) -> Result<(), StoreError> {
        if end.is_empty() && stale.is_empty() {
            return Ok(());
        }
        let mut commands = Vec::with_capacity(2);
        if !end.is_empty() {
            let mut del = Command::new("DEL");
            for id in end {
                del = del.arg(session_key(id));
            }
            commands.push(del);
        }
        let mut zrem = Command::new("ZREM").arg(index);
        for id in end.iter().chain(stale) {
            zrem = zrem.arg(id.to_string());
        }
        commands.push(zrem);
        let mut items = self
            .client
            .transaction(&commands, RetryPolicy::Idempotent)
            .await?;
        for (i, command) in commands.iter().enumerate() {
            item(&mut items, i, command.name())?;
        }
        Ok(())
    }

    /// Runs `script` (whose SHA-1 is `sha`) with `keys` and `args`: one `EVALSHA`, and when
    /// this Redis's script cache does not hold it yet (a first call, a restart, `SCRIPT
    /// FLUSH`), one `EVAL`, which caches it for the `EVALSHA`s after. Only for scripts whose
    /// second run gives what the first gave, since a lost answer is retried.
    async fn eval(
        &self,
        script: &'static str,
        sha: &'static str,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Reply, StoreError> {
        let call = |name: &'static str, body: &'static str| {
            let mut command = Command::new(name).arg(body).int(keys.len() as i64);
            for part in keys.iter().chain(args) {
                command = command.arg(*part);
            }
            command
        };
        match self
            .client
            .command(&call("EVALSHA", sha), RetryPolicy::Idempotent)
            .await
        {
            Err(UpstashError::Command(message)) if message.starts_with("NOSCRIPT") => {
                self.client
                    .command(&call("EVAL", script), RetryPolicy::Idempotent)
                    .await
            }
            other => other,
        }
        .map_err(StoreError::from)
    }

    /// The client, for callers that need raw access (health checks, tools).
    pub fn client(&self) -> &Arc<UpstashClient> {
        &self.client
    }
}

fn session_key(id: &SessionId) -> String {
    let mut buf = [0u8; 36];
    let mut key = String::with_capacity(44);
    key.push_str("session:");
    key.push_str(id.encode(&mut buf));
    key
}

fn user_key(user: &str) -> String {
    format!("user_sessions:{user}")
}

impl From<UpstashError> for StoreError {
    /// An Upstash call that ran out of time is a store timeout, one the command budget refused
    /// is over budget; any other failure leaves the store unavailable.
    fn from(error: UpstashError) -> Self {
        match error {
            UpstashError::Timeout(_) => StoreError::Timeout(Box::new(error)),
            UpstashError::OverBudget { .. } => StoreError::OverBudget(Box::new(error)),
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

fn unexpected(what: &str, reply: impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(Box::new(UpstashError::Protocol(format!(
        "unexpected reply to {what}: {reply:?}"
    ))))
}

/// The reply of item `i` of a transaction, or the store error its failure means.
fn item(items: &mut [Result<Reply, String>], i: usize, what: &str) -> Result<Reply, StoreError> {
    match items
        .get_mut(i)
        .map(|r| std::mem::replace(r, Ok(Reply::Nil)))
    {
        Some(Ok(reply)) => Ok(reply),
        Some(Err(message)) => Err(UpstashError::Command(format!("{what}: {message}")).into()),
        None => Err(unexpected(what, "missing item")),
    }
}

/// The record; a corrupt one is described by the error's kind and position only, since serde's
/// own message can quote the stored values (user names, data) into the log.
fn parse_record(json: &str) -> Result<SessionData, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::Corrupt(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// A record's unix time in seconds, as the listing script returns its digits.
fn seconds(reply: &Reply) -> Result<u64, StoreError> {
    reply
        .as_str()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("a session record's time is not unix seconds".into()))
}

fn ids_of(reply: Reply, what: &str) -> Result<Vec<SessionId>, StoreError> {
    let items = reply
        .into_array()
        .ok_or_else(|| unexpected(what, "not an array"))?;
    // Members that are not session ids cannot come from us; skip them rather than fail.
    Ok(items
        .iter()
        .filter_map(|m| m.as_str().and_then(SessionId::parse))
        .collect())
}

#[async_trait]
impl SessionStore for UpstashStore {
    async fn create(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
        replaces: Option<&SessionId>,
    ) -> Result<Created, StoreError> {
        let key = session_key(id);
        let index = user_key(&data.user);
        let json = serde_json::to_string(data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut buf = [0u8; 36];
        let member = id.encode(&mut buf);
        let index_ttl = data.absolute_expires_at.saturating_sub(unix_now()).max(1) as i64;
        let mut commands = vec![
            Command::new("SET")
                .arg(key.as_str())
                .arg(json.as_str())
                .arg("EX")
                .int(ttl.as_secs().max(1) as i64)
                .arg("NX"),
            Command::new("ZADD")
                .arg(index.as_str())
                .int(data.absolute_expires_at as i64)
                .arg(member),
            Command::new("ZREMRANGEBYSCORE")
                .arg(index.as_str())
                .arg("-inf")
                .int(unix_now() as i64),
            // The index lives as long as its longest-lived session: set an expiry when it has
            // none, and only ever push it later (a shorter SESSION_ABSOLUTE_TTL_SECONDS after
            // a redeploy must not cut older sessions out of the index).
            Command::new("EXPIRE")
                .arg(index.as_str())
                .int(index_ttl)
                .arg("NX"),
            Command::new("EXPIRE")
                .arg(index.as_str())
                .int(index_ttl)
                .arg("GT"),
        ];
        let old_member = replaces.map(|old| old.to_string());
        if let (Some(old), Some(member)) = (replaces, &old_member) {
            commands.push(Command::new("DEL").arg(session_key(old)));
            // Out of this user's index too (a no-op when it was another user's), so a rotation
            // does not count against the limit until the next trim.
            commands.push(
                Command::new("ZREM")
                    .arg(index.as_str())
                    .arg(member.as_str()),
            );
        }
        let zcard_at = commands.len();
        commands.push(Command::new("ZCARD").arg(index.as_str()));
        // Every command here is idempotent except SET NX, whose second run finds our own
        // record: that case is told apart below, so the whole request is retry-safe.
        let mut items = self
            .client
            .transaction(&commands, RetryPolicy::Idempotent)
            .await?;
        let held = item(&mut items, zcard_at, "ZCARD")?
            .as_int()
            .unwrap_or(0)
            .max(0) as usize;
        for (i, command) in commands.iter().enumerate().take(zcard_at).skip(1) {
            item(&mut items, i, command.name())?;
        }
        match item(&mut items, 0, "SET")? {
            Reply::Str(ok) if ok == "OK" => {
                if held > self.max_per_user {
                    // The login stands even if trimming fails; the next login trims again.
                    match self.trim_to_limit(&index, id).await {
                        Ok(n) => tracing::info!(
                            event = "sessions_evicted",
                            count = n,
                            "a user passed the session limit; oldest sessions ended"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not end the oldest sessions of a user past the limit")
                        }
                    }
                }
                Ok(Created::Created)
            }
            Reply::Nil => {
                // Either a retried attempt already wrote this record, or the id is taken.
                let existing = self
                    .client
                    .command(
                        &Command::new("GET").arg(key.as_str()),
                        RetryPolicy::Idempotent,
                    )
                    .await?;
                if existing.as_str() == Some(json.as_str()) {
                    return Ok(Created::Created);
                }
                // Someone else's session: take the id back out of this user's index.
                self.client
                    .command(
                        &Command::new("ZREM").arg(index.as_str()).arg(member),
                        RetryPolicy::Idempotent,
                    )
                    .await?;
                Ok(Created::IdTaken)
            }
            other => Err(unexpected("SET", other)),
        }
    }

    async fn load(
        &self,
        id: &SessionId,
        idle_ttl: Duration,
    ) -> Result<Option<SessionData>, StoreError> {
        let key = session_key(id);
        // The hot path: concurrent reads share one /pipeline request (still one command each).
        let getex = Command::new("GETEX")
            .arg(key.as_str())
            .arg("EX")
            .int(idle_ttl.as_secs().max(1) as i64);
        let reply = if self.auto_pipeline {
            self.client.command_coalesced(&getex).await
        } else {
            self.client.command(&getex, RetryPolicy::Idempotent).await
        }?;
        match reply {
            Reply::Nil => Ok(None),
            Reply::Str(json) => parse_record(&json).map(Some),
            other => Err(unexpected("GETEX", other)),
        }
    }

    async fn merge(
        &self,
        id: &SessionId,
        patch: &AppData,
        idle_ttl: Duration,
        now_ms: u64,
        max_bytes: usize,
    ) -> Result<Merged, StoreError> {
        let key = session_key(id);
        let ttl = idle_ttl.as_secs().max(1).to_string();
        let now = now_ms.to_string();
        let max = max_bytes.to_string();
        // A merge patch applied twice gives what it gave once, so a retry is harmless.
        let reply = self
            .eval(
                MERGE_SCRIPT,
                merge_script_sha(),
                &[key.as_str()],
                &[patch.as_str(), ttl.as_str(), now.as_str(), max.as_str()],
            )
            .await?;
        let mut items = reply
            .into_array()
            .ok_or_else(|| unexpected("EVALSHA", "not an array"))?
            .into_iter();
        let status = items.next().and_then(Reply::into_string);
        match (status.as_deref(), items.next()) {
            (Some("ok"), Some(Reply::Str(record))) => parse_record(&record).map(Merged::Merged),
            (Some("gone"), None) => Ok(Merged::Gone),
            (Some("expired"), None) => Ok(Merged::Expired),
            (Some("too_large"), Some(Reply::Int(size))) => Ok(Merged::TooLarge {
                size: size.max(0) as usize,
            }),
            (Some("corrupt"), None) => Err(StoreError::Corrupt(
                "the session record or its data is not valid JSON".into(),
            )),
            // The record itself is never put in an error: it holds the application's data.
            (status, _) => Err(unexpected("EVALSHA", status)),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let reply = self
            .client
            .command(
                &Command::new("DEL").arg(session_key(id)),
                RetryPolicy::Idempotent,
            )
            .await?;
        match reply.as_int() {
            Some(n) => Ok(n > 0),
            None => Err(unexpected("DEL", reply)),
        }
    }

    async fn list_user(&self, user: &str) -> Result<Vec<ListedSession>, StoreError> {
        let index = user_key(user);
        let commands = [
            Command::new("ZREMRANGEBYSCORE")
                .arg(index.as_str())
                .arg("-inf")
                .int(unix_now() as i64),
            Command::new("ZRANGE")
                .arg(index.as_str())
                .arg("0")
                .arg("-1"),
        ];
        let mut items = self
            .client
            .transaction(&commands, RetryPolicy::Idempotent)
            .await?;
        item(&mut items, 0, "ZREMRANGEBYSCORE")?;
        let ids = ids_of(item(&mut items, 1, "ZRANGE")?, "ZRANGE")?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(session_key).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // The user as serde_json writes it into the records (see LIST_SCRIPT).
        let user_json =
            serde_json::to_string(user).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let values = self
            .eval(LIST_SCRIPT, list_script_sha(), &keys, &[user_json.as_str()])
            .await?
            .into_array()
            .ok_or_else(|| unexpected("EVALSHA", "not an array"))?;
        if values.len() != ids.len() {
            return Err(unexpected("EVALSHA", "one item per key"));
        }
        let mut sessions = Vec::with_capacity(ids.len());
        for (id, value) in ids.into_iter().zip(values) {
            match value {
                Reply::Nil => {}
                Reply::Array(fields) => match fields.as_slice() {
                    [created_at, absolute_expires_at] => sessions.push(ListedSession {
                        id,
                        created_at: seconds(created_at)?,
                        absolute_expires_at: seconds(absolute_expires_at)?,
                    }),
                    _ => return Err(unexpected("EVALSHA", "not two fields")),
                },
                Reply::Str(status) if status == "corrupt" => {
                    return Err(StoreError::Corrupt(
                        "a session record is not a JSON object with its fields".into(),
                    ))
                }
                // The reply is never put in an error: it may quote a record.
                _ => return Err(unexpected("EVALSHA", "an item of another kind")),
            }
        }
        Ok(sessions)
    }

    async fn delete_user_session(&self, user: &str, id: &SessionId) -> Result<bool, StoreError> {
        let index = user_key(user);
        let key = session_key(id);
        let mut buf = [0u8; 36];
        let member = id.encode(&mut buf);
        // Whether it is this user's and live, read before the deletion: a deletion applied
        // whose answer was lost reads 0 on its retry, so its own count cannot be trusted.
        let commands = [
            Command::new("ZSCORE").arg(index.as_str()).arg(member),
            Command::new("EXISTS").arg(key.as_str()),
        ];
        let mut items = self
            .client
            .transaction(&commands, RetryPolicy::Idempotent)
            .await?;
        let indexed = !item(&mut items, 0, "ZSCORE")?.is_nil();
        let live = item(&mut items, 1, "EXISTS")?.as_int().unwrap_or(0) > 0;
        if !indexed {
            return Ok(false);
        }
        if live {
            self.end_indexed(&index, &[*id], &[]).await?;
        } else {
            self.end_indexed(&index, &[], &[*id]).await?;
        }
        Ok(live)
    }

    async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let index = user_key(user);
        // The count comes from what was live before the deletion (see end_indexed).
        let (live, dead) = self.live_members(&index).await?;
        self.end_indexed(&index, &live, &dead).await?;
        Ok(live.len() as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .command(&Command::new("PING"), RetryPolicy::Once)
            .await
            .map(|_| ())
            .map_err(StoreError::from)
    }

    fn backend(&self) -> &'static str {
        "upstash"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_record_is_described_without_its_values() {
        let record = r#"{"user":"alice","status":"active","created_at":"secret-value-1","absolute_expires_at":1}"#;
        let Err(StoreError::Corrupt(message)) = parse_record(record) else {
            panic!("a corrupt record must not parse");
        };
        assert!(!message.contains("secret-value-1"), "{message}");
        assert!(message.contains("line 1 column"), "{message}");
    }
}
