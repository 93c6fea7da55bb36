//! The session store: a small trait over where sessions live, and its backends
//! ([`memory`] for one process, [`upstash`] for Upstash Redis over REST).
//!
//! The store speaks in session ids, records and lifetimes; it knows nothing of HTTP, cookies or
//! signing. Every operation is atomic with respect to the others on the same session: a
//! deleted session can never be brought back by a concurrent read.

pub mod memory;
pub mod upstash;

use std::time::Duration;

use async_trait::async_trait;

// The value types the store speaks in live in `domain`; re-exported here so that
// `store::{SessionId, SessionData, AppData, ...}` keeps naming them.
pub use crate::domain::app_data as data;
pub use crate::domain::{
    AppData, DataError, SessionData, SessionId, DEFAULT_MAX_DATA_BYTES, MAX_DEPTH,
};
pub use memory::MemoryStore;
pub use upstash::UpstashStore;

/// Default of `MAX_SESSIONS_PER_USER`: past it, a login ends the user's oldest sessions.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;

/// A boxed error cause, kept for logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a listing shows of one session ([`SessionStore::list_user`]): no data, so what a
/// listing reads and transfers does not grow with the sessions' data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedSession {
    /// The session's id.
    pub id: SessionId,
    /// Login time, unix seconds.
    pub created_at: u64,
    /// End of the absolute lifetime, unix seconds.
    pub absolute_expires_at: u64,
}

/// What a store holding sessions in this process's memory counts, and its bound
/// ([`SessionStore::memory_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// What the held sessions count, in bytes.
    pub bytes: u64,
    /// The most they may count (`MEMORY_STORE_MAX_BYTES`).
    pub max_bytes: u64,
}

/// Outcome of [`SessionStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The session was written.
    Created,
    /// Another session already has this id; nothing was written for it.
    IdTaken,
}

/// Outcome of [`SessionStore::merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The patch was applied; the session as stored now, its idle expiry slid.
    Merged(SessionData),
    /// No such session (never created, ended, or idle-expired); nothing was written.
    Gone,
    /// The session was past its absolute lifetime: it has been deleted, nothing merged.
    Expired,
    /// The resulting data would be `size` bytes, over the limit; nothing was written.
    TooLarge {
        /// The size the serialized data would have, in bytes.
        size: usize,
    },
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend did not answer within its deadline.
    #[error("the session store did not answer in time")]
    Timeout(#[source] BoxError),
    /// The backend failed or refused the operation.
    #[error("the session store is unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored record could not be read back.
    #[error("a stored session record is corrupt: {0}")]
    Corrupt(String),
    /// The backend did not send the operation: it would pass the instance's budget of
    /// backend commands (`UPSTASH_MAX_COMMANDS_PER_SECOND`). Nothing was sent; the budget
    /// refills within a second.
    #[error("the session store's command budget is spent for now")]
    OverBudget(#[source] BoxError),
    /// The write would take the store past its bound (the memory store's
    /// `MEMORY_STORE_MAX_BYTES`); nothing was changed.
    #[error("the session store is full")]
    Full {
        /// When room may be made: the time until the earliest session expires.
        retry_after: Duration,
    },
}

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Writes a new session with expiry `ttl`, unless `id` is taken. When `replaces` is given,
    /// that session is deleted in the same operation (rotation on login). When the user then
    /// holds more sessions than the store's per-user limit, the oldest are ended.
    async fn create(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
        replaces: Option<&SessionId>,
    ) -> Result<Created, StoreError>;

    /// Reads a session and resets its expiry to `idle_ttl` in one atomic step; `None` when it
    /// does not exist or has expired. Never re-creates a deleted session.
    async fn load(
        &self,
        id: &SessionId,
        idle_ttl: Duration,
    ) -> Result<Option<SessionData>, StoreError>;

    /// Applies `patch` to the session's data as an RFC 7396 merge patch
    /// ([`AppData::merge`]) in one atomic step, and slides its expiry to `idle_ttl` as
    /// [`Self::load`] does. A missing session stays missing ([`Merged::Gone`]); one whose
    /// absolute lifetime has ended by `now_ms` (unix milliseconds) is deleted
    /// ([`Merged::Expired`]); a result over `max_bytes` serialized is refused
    /// ([`Merged::TooLarge`]). Concurrent merges never lose each other's keys.
    async fn merge(
        &self,
        id: &SessionId,
        patch: &AppData,
        idle_ttl: Duration,
        now_ms: u64,
        max_bytes: usize,
    ) -> Result<Merged, StoreError>;

    /// Deletes a session; `true` when it existed.
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// Every live session of `user`, in no particular order, without their data.
    async fn list_user(&self, user: &str) -> Result<Vec<ListedSession>, StoreError>;

    /// Deletes session `id` only if it belongs to `user`; `true` when it was deleted.
    async fn delete_user_session(&self, user: &str, id: &SessionId) -> Result<bool, StoreError>;

    /// Deletes every session of `user`; returns how many live sessions were ended.
    async fn delete_user(&self, user: &str) -> Result<u64, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The backend's name, for logs and readiness: `"memory"` or `"upstash"`.
    fn backend(&self) -> &'static str;

    /// Sessions held, when the backend can tell cheaply (the memory store).
    fn live_sessions(&self) -> Option<u64> {
        None
    }

    /// What the sessions count against the store's bound, and the bound, for a store that
    /// holds them in this process's memory.
    fn memory_usage(&self) -> Option<MemoryUsage> {
        None
    }
}
