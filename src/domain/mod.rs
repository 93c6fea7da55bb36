//! The value types every layer shares: a session's id, its stored record, the application's
//! data in it, and the user name given at login. They hold no I/O and know no layer.

pub mod app_data;
pub mod username;
