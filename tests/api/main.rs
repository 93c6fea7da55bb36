//! The API test binary: the whole service over HTTP, on the memory store and on a fake
//! Upstash, plus the Upstash client against wiremock and the shared store suite.

mod support;
use support::{fake_upstash, helpers, tls_front};

#[cfg(feature = "actix-session")]
mod actix_session_store;
mod bad_input;
mod binary;
mod contract;
mod data;
mod http_semantics;
mod observability;
mod openapi;
mod races;
mod security;
mod sessions;
mod store_suite;
mod tls;
mod upstash_client;
mod upstash_faults;
