//! The record a session holds: its user, lifetimes and the application's data. Stored as
//! JSON by the Upstash store; the API shows it through its own type (`routes::sessions`).

use serde::{Deserialize, Serialize};

use super::AppData;

/// What a session holds: the stored record (the API shows it through its own type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    /// The user name given at login.
    pub user: String,
    /// Always `"active"` for a live session.
    pub status: String,
    /// Login time, unix seconds.
    pub created_at: u64,
    /// End of the absolute lifetime, unix seconds: the session ends then however it is used.
    pub absolute_expires_at: u64,
    /// The application's own data: a JSON object, `{}` when nothing was stored (and in
    /// records written before sessions carried data). Numbers keep the digits they were
    /// sent with.
    #[serde(default)]
    pub data: AppData,
}
