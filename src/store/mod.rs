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

    /// Every live session of `user`, in no particular order.
    async fn list_user(&self, user: &str) -> Result<Vec<(SessionId, SessionData)>, StoreError>;

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
}
