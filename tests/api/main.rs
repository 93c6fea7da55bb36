//! The API test binary: the whole service over HTTP, on the memory store and on a fake
//! Upstash, plus the Upstash client against wiremock and the shared store suite.

mod fake_upstash;
mod helpers;

/// tower-sessions' own test helpers and `route_tests!` macro, from the published crate
/// (copied by build.rs; `route_tests!` names this module `crate::common`).
#[cfg(all(feature = "tower-sessions", tower_sessions_route_suite))]
#[macro_use]
#[allow(dead_code)]
mod common {
    include!(concat!(env!("OUT_DIR"), "/tower_sessions_common.rs"));
}

#[cfg(feature = "actix-session")]
mod actix_session_store;
mod binary;
mod contract;
mod cost_control;
mod data;
mod ecosystem;
mod failures;
mod http_semantics;
mod security;
mod sessions;
mod store_suite;
mod tls;
mod tls_front;
#[cfg(feature = "tower-sessions")]
mod tower_sessions_store;
mod traces;
mod upstash_client;
