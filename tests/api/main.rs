//! The API test binary: the whole service over HTTP, on the memory store and on a fake
//! Upstash, plus the Upstash client against wiremock and the shared store suite.

mod support;
use support::{fake_upstash, helpers, tls_front};

#[cfg(feature = "actix-session")]
mod actix_session_store;
mod bad_input;
mod binary;
mod contract;
mod cost_control;
mod data;
mod http_semantics;
mod memory_store;
mod observability;
mod openapi;
mod races;
mod security;
mod sessions;
mod slow_bodies;
mod store_suite;
mod tls;
#[cfg(feature = "tower-sessions")]
mod tower_sessions_store;
mod traces;
mod upstash_client;
mod upstash_faults;
