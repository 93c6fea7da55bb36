//! The API test binary: the whole service over HTTP, on the memory store and on a fake
//! Upstash, plus the Upstash client against wiremock and the shared store suite.

mod fake_upstash;
mod helpers;

#[cfg(feature = "actix-session")]
mod actix_session_store;
mod binary;
mod contract;
mod cost_control;
mod data;
mod ecosystem;
mod failures;
mod http_semantics;
mod memory_store;
mod security;
mod sessions;
mod slow_bodies;
mod store_suite;
mod tls;
mod tls_front;
#[cfg(feature = "tower-sessions")]
mod tower_sessions_store;
mod traces;
mod upstash_client;
