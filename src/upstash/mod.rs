//! A thin client for the Upstash Redis REST API: JSON command arrays over HTTPS, typed replies
//! and errors, timeouts, retries of retry-safe calls, and the `upstash-sync-token`
//! read-your-writes header, and an optional budget of commands per second checked before
//! anything is sent. It knows nothing of sessions.

mod batch;
mod budget;
mod client;
mod command;
mod error;
mod metrics;
mod reply;

pub use batch::MAX_BATCH as MAX_PIPELINE_COMMANDS;
pub use client::{ClientConfig, RetryPolicy, UpstashClient, DEFAULT_MAX_REPLY_BYTES};
pub use command::Command;
pub use error::UpstashError;
pub use metrics::UpstashMetrics;
pub use reply::{parse_pipeline_body, parse_single_body, Reply};
/// The URL type [`ClientConfig::new`] takes (reqwest's, re-exported so an app needs no
/// dependency of its own to build one): `Url::parse("https://eu1-example.upstash.io")?`.
pub use reqwest::Url;
