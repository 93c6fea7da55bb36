//! The wall clock sessions are timed by: lifetimes are stored as unix time, so the session
//! logic and the Upstash store read the same clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 for a clock set before 1970).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix time in whole seconds, rounded down.
pub fn unix_seconds() -> u64 {
    unix_millis() / 1000
}
