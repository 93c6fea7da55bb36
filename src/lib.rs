//! upstash-sessions: server-side sessions for Actix-web, kept in Upstash Redis through its
//! HTTPS REST API, or in an embedded in-memory store when no Upstash settings are given.
//!
//! Layers, each knowing only the one below it:
//! HTTP [`routes`] → session logic ([`session`]: ids, signed cookies, lifetimes) →
//! the [`store::SessionStore`] trait → its backends ([`store::memory`], [`store::upstash`]) →
//! the Upstash REST client ([`upstash`]).
#![forbid(unsafe_code)]

pub mod routes;
pub mod session;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod upstash;
