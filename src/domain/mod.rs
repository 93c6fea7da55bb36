//! The value types every layer shares: a session's id, its stored record, the application's
//! data in it, and the user name given at login. They hold no I/O and know no layer, so the
//! routes, the session logic and the stores can all name them without reaching through one
//! another (as zero-to-production's `domain/`).

pub mod app_data;
pub mod clock;
mod json;
mod session_data;
mod session_id;
pub mod username;

pub use app_data::{AppData, DataError, DEFAULT_MAX_DATA_BYTES, MAX_DEPTH};
pub use session_data::SessionData;
pub use session_id::SessionId;
pub use username::{Username, UsernameError};
