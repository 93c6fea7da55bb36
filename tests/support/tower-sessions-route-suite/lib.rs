//! Test support for upstash-sessions (a dev-dependency only): tower-sessions' own route suite,
//! the `route_tests!` macro and helpers of its `tests/common/mod.rs`, as published. build.rs
//! copies that file from the crate cargo unpacked into `$CARGO_HOME/registry/src/` (the
//! tower-sessions version in Cargo.lock) into `OUT_DIR`; nothing of it is in the repository.
//! `route_suite_tests!()` lists the suite's tests by name, so a test can run all of them
//! again against another target. Not found, both macros are compile errors that say so.
//!
//! It is a crate of its own, not upstash-sessions' build script, so that upstash-sessions'
//! own builds have no build script: its default binary stays byte for byte what it was.

#[cfg(route_suite_found)]
#[allow(dead_code)]
pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
}

#[cfg(route_suite_found)]
include!(concat!(env!("OUT_DIR"), "/names.rs"));

/// Stands in for the suite when build.rs did not find it (see its cargo warning).
#[cfg(not(route_suite_found))]
#[macro_export]
macro_rules! route_tests {
    ($create_app:expr) => {
        compile_error!(
            "tower-sessions' tests/common/mod.rs was not found under $CARGO_HOME/registry/src \
             (see the cargo warning of tower-sessions-route-suite's build script)"
        );
    };
}

/// Stands in for the list of the suite's tests when build.rs did not find it.
#[cfg(not(route_suite_found))]
#[macro_export]
macro_rules! route_suite_tests {
    () => {
        compile_error!("tower-sessions' tests/common/mod.rs was not found")
    };
}
