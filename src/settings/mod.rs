//! Typed settings, read once from the environment (plus a `.env` file when present) and
//! validated at start. An invalid value is one [`SettingsError`] line naming the variable and
//! what it accepts; secrets are wrapped in [`SecretString`] so they never reach a log.

//!
//! The files: this one holds the types, their defaults and [`VARIABLES`], the one table of
//! variables (`--help` prints it); `env` reads them from the environment; `validate` checks
//! single values (URLs, origins, certificates, secrets, cookie attributes); `dotenv` loads
//! a `.env` file.

mod dotenv;
mod env;
mod validate;

use std::{num::NonZeroU32, time::Duration};

use actix_web::cookie::SameSite;
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};

use crate::ratelimit::{Rate, TrustedProxies};

pub use dotenv::{load_dotenv, DotenvError};
pub use validate::{is_loopback, redact_url};

/// One environment variable the service reads.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The name, as set in the environment.
    pub name: &'static str,
    /// What it sets, in a few words.
    pub meaning: &'static str,
    /// Its default, in words, rendered from [`Settings::default`] where it is one.
    pub default: fn(&Settings) -> String,
}

/// "unset", with what that means.
macro_rules! unset {
    ($meaning:literal) => {
        |_| concat!("unset: ", $meaning).to_owned()
    };
}

/// Every variable the service reads, with its default: the one table behind `--help`, and the
/// list `.env.example` and the README's settings table are checked against.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "UPSTASH_REDIS_REST_URL",
        meaning: "the Upstash REST endpoint, https://... (with the token: both or neither)",
        default: unset!("the in-memory store"),
    },
    Variable {
        name: "UPSTASH_REDIS_REST_TOKEN",
        meaning: "the Upstash REST token",
        default: unset!("the in-memory store"),
    },
    Variable {
        name: "UPSTASH_TIMEOUT_MS",
        meaning: "budget of one request's Upstash work, retries included, in milliseconds",
        default: |s| s.upstash_timeout.as_millis().to_string(),
    },
    Variable {
        name: "UPSTASH_AUTO_PIPELINE",
        meaning: "concurrent session reads share /pipeline requests",
        default: |s| s.upstash_auto_pipeline.to_string(),
    },
    Variable {
        name: "UPSTASH_CA_CERT",
        meaning: "PEM file of CAs trusted for Upstash besides the public roots",
        default: unset!("the public roots only"),
    },
    Variable {
        name: "SSL_CERT_FILE",
        meaning: "read as UPSTASH_CA_CERT is, when Upstash is used",
        default: unset!("the public roots only"),
    },
    Variable {
        name: "UPSTASH_ALLOW_INSECURE_HTTP",
        meaning: "allow an http:// Upstash URL to a host that is not loopback",
        default: |_| "false".to_owned(),
    },
    Variable {
        name: "UPSTASH_WARM_POOL",
        meaning: "each worker opens its Upstash connection at start",
        default: |s| s.upstash_warm_pool.to_string(),
    },
    Variable {
        name: "HOST",
        meaning: "the address to listen on",
        default: |s| s.host.clone(),
    },
    Variable {
        name: "PORT",
        meaning: "the port to listen on",
        default: |s| s.port.to_string(),
    },
    Variable {
        name: "SESSION_TTL_SECONDS",
        meaning: "idle expiry, slid by each read, in seconds",
        default: |s| s.session.idle_ttl.as_secs().to_string(),
    },
    Variable {
        name: "SESSION_ABSOLUTE_TTL_SECONDS",
        meaning: "lifetime from login, never extended, in seconds",
        default: |s| s.session.absolute_ttl.as_secs().to_string(),
    },
    Variable {
        name: "SESSION_SECRET",
        meaning: "cookie signing secret, at least 32 bytes",
        default: unset!("derived from the Upstash token, or random per process"),
    },
    Variable {
        name: "SESSION_SECRET_PREVIOUS",
        meaning: "a previous secret, still accepted (never used to sign)",
        default: unset!("none"),
    },
    Variable {
        name: "UPSTASH_REDIS_REST_TOKEN_PREVIOUS",
        meaning: "a previous token whose derived key is still accepted",
        default: unset!("none"),
    },
    Variable {
        name: "MAX_SESSIONS_PER_USER",
        meaning: "most sessions one user holds; a login past it ends the oldest",
        default: |s| s.session.max_per_user.to_string(),
    },
    Variable {
        name: "SESSION_DATA_MAX_BYTES",
        meaning: "largest serialized data of one session, in bytes",
        default: |s| s.session.max_data_bytes.to_string(),
    },
    Variable {
        name: "MEMORY_STORE_MAX_BYTES",
        meaning: "most the in-memory store's sessions may count, in bytes (unused on Upstash)",
        default: |s| s.memory_store_max_bytes.to_string(),
    },
    Variable {
        name: "COOKIE_NAME",
        meaning: "the session cookie's name",
        default: |s| s.cookie.name.clone(),
    },
    Variable {
        name: "COOKIE_SECURE",
        meaning: "whether the cookie has the Secure attribute",
        default: |s| s.cookie.secure.to_string(),
    },
    Variable {
        name: "COOKIE_SAMESITE",
        meaning: "the cookie's SameSite: lax, strict or none",
        default: |s| s.cookie.same_site.to_string().to_ascii_lowercase(),
    },
    Variable {
        name: "WORKERS",
        meaning: "HTTP worker threads",
        default: |s| match s.workers {
            Some(n) => n.to_string(),
            None => "one per CPU core".to_owned(),
        },
    },
    Variable {
        name: "SHUTDOWN_TIMEOUT_SECONDS",
        meaning: "time in-flight requests get on SIGTERM/SIGINT, in seconds",
        default: |s| s.shutdown_timeout.as_secs().to_string(),
    },
    Variable {
        name: "REQUEST_BODY_TIMEOUT_MS",
        meaning: "time a request body may take to arrive in full, in milliseconds (then 408)",
        default: |s| s.request_body_timeout.as_millis().to_string(),
    },
    Variable {
        name: "METRICS",
        meaning: "serve /metrics and count requests",
        default: |s| s.metrics.to_string(),
    },
    Variable {
        name: "LOG_FORMAT",
        meaning: "log lines as pretty text or json",
        default: |s| match s.log_format {
            LogFormat::Pretty => "pretty".to_owned(),
            LogFormat::Json => "json".to_owned(),
        },
    },
    Variable {
        name: "RUST_LOG",
        meaning: "log level filter, e.g. warn or upstash_sessions=debug,info",
        default: |_| crate::telemetry::DEFAULT_FILTER.to_owned(),
    },
    Variable {
        name: "CORS_ALLOWED_ORIGINS",
        meaning: "comma-separated exact origins allowed to call with credentials",
        default: unset!("CORS off"),
    },
    Variable {
        name: "PUBLIC_ORIGIN",
        meaning: "the origin browsers reach the service at, for the cross-site guard",
        default: unset!("taken from each request"),
    },
    Variable {
        name: "RATE_LIMIT_LOGIN",
        meaning: "logins per client address: N/s, N/m or N/h, or off",
        default: |s| rate_or_off(s.rate_limit.login),
    },
    Variable {
        name: "RATE_LIMIT_REQUESTS",
        meaning: "every other session request per client address: N/s, N/m or N/h, or off",
        default: |s| rate_or_off(s.rate_limit.requests),
    },
    Variable {
        name: "RATE_LIMIT_MAX_CLIENTS",
        meaning: "most client addresses the rate limits track; past it the least recent go",
        default: |s| s.rate_limit.max_clients.to_string(),
    },
    Variable {
        name: "TRUSTED_PROXIES",
        meaning: "comma-separated CIDRs of proxies whose forwarded headers name the client",
        default: unset!("no proxy is trusted"),
    },
    Variable {
        name: "UPSTASH_MAX_COMMANDS_PER_SECOND",
        meaning: "this instance's budget of Upstash commands per second, or off",
        default: |s| match s.upstash_max_commands_per_second {
            Some(n) => n.to_string(),
            None => "off".to_owned(),
        },
    },
    // Traces: the OpenTelemetry specification's names, in the order of
    // `crate::traces::VARIABLES` (docs/traces.md says more). Traces are off unless an endpoint
    // is set, so their defaults are the specification's, not fields of `Settings`.
    Variable {
        name: "OTEL_SDK_DISABLED",
        meaning: "true turns traces off",
        default: |_| "false".to_owned(),
    },
    Variable {
        name: "OTEL_TRACES_EXPORTER",
        meaning: "otlp, or none to turn traces off",
        default: |_| "otlp".to_owned(),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        meaning: "OTLP/HTTP base URL; spans go to <base>/v1/traces",
        default: unset!("traces off"),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        meaning: "OTLP/HTTP URL for spans, used as given",
        default: unset!("traces off"),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_PROTOCOL",
        meaning: "http/protobuf or http/json",
        default: |_| "http/protobuf".to_owned(),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        meaning: "OTEL_EXPORTER_OTLP_PROTOCOL for spans only",
        default: |_| "http/protobuf".to_owned(),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_HEADERS",
        meaning: "name=value,... sent with each export, percent-encoded",
        default: unset!("none"),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        meaning: "OTEL_EXPORTER_OTLP_HEADERS for spans only",
        default: unset!("none"),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TIMEOUT",
        meaning: "time one export request may take, in milliseconds",
        default: |_| "10000".to_owned(),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        meaning: "OTEL_EXPORTER_OTLP_TIMEOUT for spans only",
        default: |_| "10000".to_owned(),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_COMPRESSION",
        meaning: "none or gzip",
        default: |_| "none".to_owned(),
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        meaning: "OTEL_EXPORTER_OTLP_COMPRESSION for spans only",
        default: |_| "none".to_owned(),
    },
    Variable {
        name: "OTEL_SERVICE_NAME",
        meaning: "the traces' service.name",
        default: |_| crate::traces::DEFAULT_SERVICE_NAME.to_owned(),
    },
    Variable {
        name: "OTEL_RESOURCE_ATTRIBUTES",
        meaning: "key=value,... resource attributes, percent-encoded",
        default: unset!("none"),
    },
    Variable {
        name: "OTEL_TRACES_SAMPLER",
        meaning: "always_on, always_off, traceidratio or their parentbased_ forms",
        default: |_| "parentbased_always_on".to_owned(),
    },
    Variable {
        name: "OTEL_TRACES_SAMPLER_ARG",
        meaning: "ratio of the *traceidratio samplers, 0 to 1",
        default: |_| "1.0".to_owned(),
    },
    Variable {
        name: "OTEL_BSP_SCHEDULE_DELAY",
        meaning: "time between scheduled span exports, in milliseconds",
        default: |_| "5000".to_owned(),
    },
    Variable {
        name: "OTEL_BSP_EXPORT_TIMEOUT",
        meaning: "time one span export may take, in milliseconds",
        default: |_| "30000".to_owned(),
    },
    Variable {
        name: "OTEL_BSP_MAX_QUEUE_SIZE",
        meaning: "most spans waiting for export; past it they are dropped and counted",
        default: |_| "2048".to_owned(),
    },
    Variable {
        name: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        meaning: "most spans per export request",
        default: |_| "512".to_owned(),
    },
];

/// A rate as its variable spells it, or `off`.
fn rate_or_off(rate: Option<Rate>) -> String {
    rate.map_or_else(|| "off".to_owned(), |r| r.to_string())
}

/// The table of [`VARIABLES`] as `--help` prints it: `NAME=default` (or `NAME (unset: ..)`),
/// then what it sets.
pub fn describe_variables() -> String {
    let defaults = Settings::default();
    let mut out = String::new();
    for variable in VARIABLES {
        let default = (variable.default)(&defaults);
        let shown = if default.starts_with("unset") {
            format!("{} ({default})", variable.name)
        } else {
            format!("{}={default}", variable.name)
        };
        out.push_str(&format!("  {shown}\n      {}\n", variable.meaning));
    }
    out
}

/// Minimum length of `SESSION_SECRET` and `SESSION_SECRET_PREVIOUS`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// All settings of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST` (default `127.0.0.1`): the address to listen on.
    pub host: String,
    /// `PORT` (default 8000): the port to listen on, 1 to 65535.
    pub port: u16,
    /// `None`: the embedded memory store.
    pub upstash: Option<UpstashSettings>,
    /// Total budget of one incoming request for its Upstash work.
    pub upstash_timeout: Duration,
    /// Whether concurrent session reads share `/pipeline` requests.
    pub upstash_auto_pipeline: bool,
    /// `MEMORY_STORE_MAX_BYTES` (default 256 MiB): the most the memory store's sessions may
    /// count (see [`crate::store::memory`]); unused on Upstash.
    pub memory_store_max_bytes: u64,
    /// Certificates trusted for the Upstash endpoint besides the public roots
    /// (`UPSTASH_CA_CERT`, `SSL_CERT_FILE`); read only when Upstash is configured.
    pub upstash_extra_roots: Vec<CertificateDer<'static>>,
    /// Whether each worker opens its Upstash connection at start rather than on its first
    /// request (`UPSTASH_WARM_POOL`). Off by default: a request that arrives as the process
    /// starts (serverless) then races the warm-up and is slower; on, it saves the first
    /// request the connect where the platform waits for readiness first.
    pub upstash_warm_pool: bool,
    /// Session lifetimes, limits and cookie signing keys.
    pub session: SessionSettings,
    /// The session cookie's name and attributes.
    pub cookie: CookieSettings,
    /// HTTP worker threads; `None`: one per CPU core.
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish on SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// `REQUEST_BODY_TIMEOUT_MS` (default 10 s): how long a request body may take to arrive
    /// in full; past it the request is answered `408` and its connection closed.
    pub request_body_timeout: Duration,
    /// `LOG_FORMAT` (default `pretty`): how log lines are written.
    pub log_format: LogFormat,
    /// Whether `/metrics` is served and requests are counted.
    pub metrics: bool,
    /// `CORS_ALLOWED_ORIGINS`: exact origins (`scheme://host[:port]`, lowercase) whose pages
    /// may call the service with credentials; empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// `PUBLIC_ORIGIN`: the origin browsers reach the service at, for the cross-site request
    /// guard; `None`: taken from each request (`Host`, forwarded headers).
    pub public_origin: Option<String>,
    /// OpenTelemetry traces (`OTEL_*`, see [`crate::traces`]); `None`: off, the default.
    pub traces: Option<crate::traces::TraceSettings>,
    /// Per-client rate limits and how the client address is found.
    pub rate_limit: RateLimitSettings,
    /// `UPSTASH_MAX_COMMANDS_PER_SECOND` (default off): the instance's budget of Upstash
    /// commands per second, each command of a pipeline or transaction counted.
    pub upstash_max_commands_per_second: Option<NonZeroU32>,
}

/// Per-client rate limits, in process (each instance counts alone).
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_LOGIN` (default `20/m`): logins per client address; `None`: off.
    pub login: Option<Rate>,
    /// `RATE_LIMIT_REQUESTS` (default `50/s`): every other session request per client
    /// address; `None`: off.
    pub requests: Option<Rate>,
    /// `RATE_LIMIT_MAX_CLIENTS` (default 100000): most client addresses tracked; past it
    /// the least recently seen are forgotten.
    pub max_clients: usize,
    /// `TRUSTED_PROXIES` (default none): CIDRs of the proxies whose `X-Forwarded-For` /
    /// `Forwarded` headers name the client.
    pub trusted_proxies: TrustedProxies,
}

impl RateLimitSettings {
    /// No limit at all (for embedding and tests that send many requests from one address).
    pub fn off() -> Self {
        Self {
            login: None,
            requests: None,
            ..Settings::default().rate_limit
        }
    }
}

/// Where Upstash is and how to authenticate.
#[derive(Debug, Clone)]
pub struct UpstashSettings {
    /// `UPSTASH_REDIS_REST_URL`: the REST endpoint; `https://`, or `http://` for a loopback
    /// host or with `UPSTASH_ALLOW_INSECURE_HTTP=true`.
    pub url: reqwest::Url,
    /// `UPSTASH_REDIS_REST_TOKEN`: the bearer token of the REST API.
    pub token: SecretString,
}

/// Session lifetimes and the cookie signing keys.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Idle expiry, slid by each profile read.
    pub idle_ttl: Duration,
    /// Absolute lifetime from login, never extended.
    pub absolute_ttl: Duration,
    /// `SESSION_SECRET`; when `None` the key is derived (Upstash) or random (memory).
    pub secret: Option<SecretString>,
    /// `SESSION_SECRET_PREVIOUS`: still accepted for verification, never used to sign.
    pub previous_secret: Option<SecretString>,
    /// `UPSTASH_REDIS_REST_TOKEN_PREVIOUS`: a token whose derived key is still accepted for
    /// verification (after rotating the Upstash token, or after moving to `SESSION_SECRET`).
    pub previous_token: Option<SecretString>,
    /// Most sessions one user may hold; a login past it ends the oldest.
    pub max_per_user: usize,
    /// Largest serialized `data` of one session (`SESSION_DATA_MAX_BYTES`).
    pub max_data_bytes: usize,
}

/// Attributes of the session cookie.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// `COOKIE_NAME` (default `session_id`).
    pub name: String,
    /// `COOKIE_SECURE` (default true): whether the cookie has the `Secure` attribute.
    pub secure: bool,
    /// `COOKIE_SAMESITE` (default `lax`; `none` needs `COOKIE_SECURE=true`).
    pub same_site: SameSite,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text lines, coloured only on a terminal (`LOG_FORMAT=pretty` or `text`);
    /// the default.
    Pretty,
    /// One JSON object per line (`LOG_FORMAT=json`).
    Json,
}

/// A setting that stops the service at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// Only one of `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` is set; the other
    /// is unset or empty.
    #[error("{missing} is {state}, but {present} is set: set both to use Upstash, or neither to use the in-memory store")]
    UpstashHalfSet {
        /// The variable that is not set, or set to nothing.
        missing: &'static str,
        /// `"not set"` or `"empty"`.
        state: &'static str,
        /// The variable that is set.
        present: &'static str,
    },
    /// A value that cannot be parsed or is out of range.
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable, as the message names it.
        var: &'static str,
        /// The value (for `UPSTASH_REDIS_REST_URL`, with secrets redacted).
        value: String,
        /// What the variable accepts.
        expected: &'static str,
    },
    /// A number that does not parse or is outside its range.
    #[error("{var}={value:?} is invalid: {}an integer from {min} to {max}", unit.map(|u| format!("{u}, ")).unwrap_or_default())]
    OutOfRange {
        /// The variable, as the message names it.
        var: &'static str,
        /// The value, as given.
        value: String,
        /// What the number counts (`seconds`, `bytes`), when not a plain count.
        unit: Option<&'static str>,
        /// The smallest accepted.
        min: String,
        /// The largest accepted.
        max: String,
    },
    /// A malformed or too short secret (a session secret or an Upstash token); the value is
    /// never shown.
    #[error("{var} is invalid: {expected}")]
    InvalidSecret {
        /// The variable, as the message names it.
        var: &'static str,
        /// What the variable accepts.
        expected: &'static str,
    },
    /// A certificate file that cannot be used; paths are not secret, so they are shown.
    #[error("{var}={path:?}: {problem}")]
    CertFile {
        /// The variable naming the file (`UPSTASH_CA_CERT` or `SSL_CERT_FILE`).
        var: &'static str,
        /// The file's path, as given.
        path: String,
        /// What is wrong: unreadable, not PEM, no certificate, or an unusable certificate.
        problem: String,
    },
}

impl Default for Settings {
    /// The documented defaults, on the memory store.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            upstash: None,
            upstash_timeout: Duration::from_millis(3000),
            upstash_auto_pipeline: true,
            memory_store_max_bytes: crate::store::memory::DEFAULT_MAX_BYTES,
            upstash_extra_roots: Vec::new(),
            upstash_warm_pool: false,
            session: SessionSettings {
                idle_ttl: Duration::from_secs(900),
                absolute_ttl: Duration::from_secs(43_200),
                secret: None,
                previous_secret: None,
                previous_token: None,
                max_per_user: crate::store::DEFAULT_MAX_SESSIONS_PER_USER,
                max_data_bytes: crate::domain::DEFAULT_MAX_DATA_BYTES,
            },
            cookie: CookieSettings {
                name: "session_id".into(),
                secure: true,
                same_site: SameSite::Lax,
            },
            workers: None,
            shutdown_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(10),
            log_format: LogFormat::Pretty,
            metrics: true,
            cors_allowed_origins: Vec::new(),
            public_origin: None,
            traces: None,
            rate_limit: RateLimitSettings {
                login: Some(crate::ratelimit::DEFAULT_LOGIN_RATE),
                requests: Some(crate::ratelimit::DEFAULT_REQUESTS_RATE),
                max_clients: 100_000,
                trusted_proxies: TrustedProxies::none(),
            },
            upstash_max_commands_per_second: None,
        }
    }
}

impl Settings {
    /// `host:port` to bind (`[v6]:port` for an IPv6 host).
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl UpstashSettings {
    /// The token, for the client's `Authorization` header only.
    pub fn token(&self) -> &str {
        self.token.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn variables_lists_exactly_the_variables_the_parser_reads() {
        // Upstash set, so the reads that depend on it happen too; everything else unset.
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|name| {
            read.borrow_mut().insert(name.to_owned());
            match name {
                "UPSTASH_REDIS_REST_URL" => Some("https://eu1-x.upstash.io".to_owned()),
                "UPSTASH_REDIS_REST_TOKEN" => Some("token".to_owned()),
                _ => None,
            }
        })
        .unwrap();
        let listed: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(read.into_inner(), listed);
        assert_eq!(listed.len(), VARIABLES.len(), "a variable is listed twice");
    }

    #[test]
    fn variables_lists_the_traces_variables_in_their_order() {
        let names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        let start = names
            .iter()
            .position(|n| *n == crate::traces::VARIABLES[0])
            .unwrap();
        assert_eq!(
            &names[start..start + crate::traces::VARIABLES.len()],
            crate::traces::VARIABLES
        );
    }

    #[test]
    fn the_parser_takes_its_defaults_from_default() {
        let parsed = from(&[]).unwrap();
        let default = Settings::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn no_variables_gives_documented_defaults_on_the_memory_store() {
        let s = from(&[]).unwrap();
        assert!(s.upstash.is_none());
        assert_eq!(s.address(), "127.0.0.1:8000");
        assert_eq!(s.session.idle_ttl, Duration::from_secs(900));
        assert_eq!(s.session.absolute_ttl, Duration::from_secs(43_200));
        assert_eq!(s.upstash_timeout, Duration::from_millis(3000));
        assert_eq!(s.request_body_timeout, Duration::from_secs(10));
        assert!(s.cookie.secure);
        assert_eq!(s.cookie.name, "session_id");
        assert_eq!(s.cookie.same_site, SameSite::Lax);
        assert_eq!(s.session.max_data_bytes, 16_384);
        let s = from(&[("SESSION_DATA_MAX_BYTES", "100")]).unwrap();
        assert_eq!(s.session.max_data_bytes, 100);
        assert_eq!(s.memory_store_max_bytes, 256 * 1024 * 1024);
        let s = from(&[("MEMORY_STORE_MAX_BYTES", "1048576")]).unwrap();
        assert_eq!(s.memory_store_max_bytes, 1_048_576);
    }

    #[test]
    fn rate_limits_are_on_by_default_and_the_budget_is_off() {
        let s = from(&[]).unwrap();
        let shown = |r: Option<Rate>| r.map(|r| r.to_string());
        assert_eq!(shown(s.rate_limit.login).as_deref(), Some("20/m"));
        assert_eq!(shown(s.rate_limit.requests).as_deref(), Some("50/s"));
        assert_eq!(s.rate_limit.max_clients, 100_000);
        assert!(s.rate_limit.trusted_proxies.nets().is_empty());
        assert_eq!(s.upstash_max_commands_per_second, None);
        let s = from(&[
            ("RATE_LIMIT_LOGIN", "off"),
            ("RATE_LIMIT_REQUESTS", "5/h"),
            ("RATE_LIMIT_MAX_CLIENTS", "10"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("UPSTASH_MAX_COMMANDS_PER_SECOND", "500"),
        ])
        .unwrap();
        assert_eq!(s.rate_limit.login, None);
        assert_eq!(shown(s.rate_limit.requests).as_deref(), Some("5/h"));
        assert_eq!(s.rate_limit.max_clients, 10);
        assert_eq!(s.rate_limit.trusted_proxies.nets().len(), 2);
        assert_eq!(
            s.upstash_max_commands_per_second.map(|n| n.get()),
            Some(500)
        );
        let s = from(&[("UPSTASH_MAX_COMMANDS_PER_SECOND", "off")]).unwrap();
        assert_eq!(s.upstash_max_commands_per_second, None);
    }

    #[test]
    fn an_ipv6_host_is_bracketed() {
        let s = from(&[("HOST", "::1"), ("PORT", "9000")]).unwrap();
        assert_eq!(s.address(), "[::1]:9000");
    }

    #[test]
    fn url_without_token_names_the_missing_token() {
        let err = from(&[("UPSTASH_REDIS_REST_URL", "https://x.upstash.io")]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("UPSTASH_REDIS_REST_TOKEN is not set"));
    }

    #[test]
    fn token_without_url_names_the_missing_url() {
        let err = from(&[("UPSTASH_REDIS_REST_TOKEN", "abc")]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("UPSTASH_REDIS_REST_URL is not set"));
    }

    #[test]
    fn invalid_values_name_the_variable_and_what_it_accepts() {
        for (var, value, needle) in [
            (
                "PORT",
                "eighty",
                "PORT=\"eighty\" is invalid: an integer from 1 to 65535",
            ),
            ("PORT", "0", "PORT=\"0\""),
            ("SESSION_TTL_SECONDS", "-5", "SESSION_TTL_SECONDS=\"-5\""),
            (
                "COOKIE_SECURE",
                "maybe",
                "COOKIE_SECURE=\"maybe\" is invalid: one of true, false",
            ),
            ("COOKIE_SAMESITE", "loose", "COOKIE_SAMESITE"),
            ("COOKIE_NAME", "bad name", "COOKIE_NAME"),
            ("UPSTASH_TIMEOUT_MS", "5", "UPSTASH_TIMEOUT_MS"),
            (
                "REQUEST_BODY_TIMEOUT_MS",
                "0",
                "REQUEST_BODY_TIMEOUT_MS=\"0\" is invalid: milliseconds, an integer from 10 to 300000",
            ),
            ("LOG_FORMAT", "xml", "LOG_FORMAT"),
            (
                "SESSION_DATA_MAX_BYTES",
                "2000000",
                "SESSION_DATA_MAX_BYTES=\"2000000\" is invalid: bytes, an integer from 2 to 1048576",
            ),
            (
                "RATE_LIMIT_LOGIN",
                "20/d",
                "RATE_LIMIT_LOGIN=\"20/d\" is invalid: N/s, N/m or N/h (N an integer from 1 to 1000000), or off",
            ),
            ("RATE_LIMIT_LOGIN", "0/m", "RATE_LIMIT_LOGIN=\"0/m\""),
            ("RATE_LIMIT_REQUESTS", "50", "RATE_LIMIT_REQUESTS=\"50\" is invalid"),
            ("RATE_LIMIT_REQUESTS", "none", "RATE_LIMIT_REQUESTS=\"none\""),
            (
                "RATE_LIMIT_MAX_CLIENTS",
                "0",
                "RATE_LIMIT_MAX_CLIENTS=\"0\" is invalid: an integer from 1 to 10000000",
            ),
            (
                "TRUSTED_PROXIES",
                "10.0.0.0/8, proxy.internal",
                "TRUSTED_PROXIES=\"10.0.0.0/8, proxy.internal\" is invalid: comma-separated CIDRs",
            ),
            ("TRUSTED_PROXIES", "10.0.0.0/40", "TRUSTED_PROXIES"),
            (
                "UPSTASH_MAX_COMMANDS_PER_SECOND",
                "0",
                "UPSTASH_MAX_COMMANDS_PER_SECOND=\"0\" is invalid: an integer from 1 to 1000000, or off",
            ),
            ("UPSTASH_MAX_COMMANDS_PER_SECOND", "lots", "UPSTASH_MAX_COMMANDS_PER_SECOND"),
            (
                "MEMORY_STORE_MAX_BYTES",
                "256MiB",
                "MEMORY_STORE_MAX_BYTES=\"256MiB\" is invalid: bytes, an integer from 65536 to 1099511627776",
            ),
            ("MEMORY_STORE_MAX_BYTES", "1000", "MEMORY_STORE_MAX_BYTES=\"1000\""),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn a_range_error_states_the_range_it_was_checked_against() {
        for (var, value, needle) in [
            ("PORT", "65536", "an integer from 1 to 65535"),
            (
                "UPSTASH_TIMEOUT_MS",
                "49",
                "milliseconds, an integer from 50 to 60000",
            ),
            (
                "SESSION_TTL_SECONDS",
                "0",
                "seconds, an integer from 1 to 31536000",
            ),
            (
                "SHUTDOWN_TIMEOUT_SECONDS",
                "3601",
                "seconds, an integer from 0 to 3600",
            ),
            (
                "MAX_SESSIONS_PER_USER",
                "10001",
                "an integer from 1 to 10000",
            ),
            ("WORKERS", "257", "an integer from 1 to 256"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert_eq!(err, format!("{var}=\"{value}\" is invalid: {needle}"));
        }
        for (var, value) in [
            ("PORT", "1"),
            ("PORT", "65535"),
            ("UPSTASH_TIMEOUT_MS", "60000"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "0"),
        ] {
            assert!(from(&[(var, value)]).is_ok(), "{var}={value}");
        }
    }

    #[test]
    fn a_bad_boolean_lists_every_spelling_that_is_accepted() {
        let err = from(&[("COOKIE_SECURE", "maybe")]).unwrap_err().to_string();
        for word in env::TRUE_WORDS.iter().chain(&env::FALSE_WORDS) {
            assert!(err.contains(word), "{word} missing from: {err}");
            assert!(from(&[("COOKIE_SECURE", word)]).is_ok(), "{word}");
        }
    }

    #[test]
    fn an_empty_upstash_token_or_url_is_named_as_empty_not_as_unset() {
        let err = from(&[
            ("UPSTASH_REDIS_REST_URL", "https://x.upstash.io"),
            ("UPSTASH_REDIS_REST_TOKEN", " "),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("UPSTASH_REDIS_REST_TOKEN is empty, but UPSTASH_REDIS_REST_URL is set"),
            "{err}"
        );
        let err = from(&[
            ("UPSTASH_REDIS_REST_URL", ""),
            ("UPSTASH_REDIS_REST_TOKEN", "abc"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("UPSTASH_REDIS_REST_URL is empty, but UPSTASH_REDIS_REST_TOKEN is set"),
            "{err}"
        );
        // Both empty: the memory store, as when both are unset.
        let s = from(&[
            ("UPSTASH_REDIS_REST_URL", ""),
            ("UPSTASH_REDIS_REST_TOKEN", ""),
        ]);
        assert!(s.unwrap().upstash.is_none());
    }

    #[test]
    fn the_help_table_shows_every_variable_with_its_default_from_default() {
        let help = describe_variables();
        let defaults = Settings::default();
        for variable in VARIABLES {
            let default = (variable.default)(&defaults);
            let shown = match default.starts_with("unset") {
                true => format!("  {} ({default})\n", variable.name),
                false => format!("  {}={default}\n", variable.name),
            };
            assert!(help.contains(&shown), "{shown}");
            assert!(help.contains(variable.meaning), "{}", variable.name);
        }
        for expected in [
            "PORT=8000",
            "SESSION_TTL_SECONDS=900",
            "SESSION_ABSOLUTE_TTL_SECONDS=43200",
            "SESSION_DATA_MAX_BYTES=16384",
            "COOKIE_NAME=session_id",
            "COOKIE_SAMESITE=lax",
            "LOG_FORMAT=pretty",
            "WORKERS=one per CPU core",
        ] {
            assert!(help.contains(&format!("  {expected}\n")), "{expected}");
        }
    }

    #[test]
    fn a_short_secret_is_rejected_without_echoing_it() {
        let err = from(&[("SESSION_SECRET", "tooshort-secret-value")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SESSION_SECRET is invalid: at least 32 bytes"));
        assert!(!err.contains("tooshort"));
    }

    #[test]
    fn host_prefixed_cookie_name_requires_secure() {
        assert!(from(&[("COOKIE_NAME", "__Host-sid"), ("COOKIE_SECURE", "false")]).is_err());
        let s = from(&[("COOKIE_NAME", "__Host-sid")]).unwrap();
        assert_eq!(s.cookie.name, "__Host-sid");
    }

    #[test]
    fn cors_is_off_by_default_and_takes_exact_origins_normalized() {
        let s = from(&[]).unwrap();
        assert!(s.cors_allowed_origins.is_empty());
        assert_eq!(s.public_origin, None);
        let s = from(&[
            (
                "CORS_ALLOWED_ORIGINS",
                "https://App.Example.com, http://localhost:3000,https://x.example:443",
            ),
            ("PUBLIC_ORIGIN", "https://auth.example.com"),
        ])
        .unwrap();
        assert_eq!(
            s.cors_allowed_origins,
            [
                "https://app.example.com",
                "http://localhost:3000",
                "https://x.example"
            ]
        );
        assert_eq!(s.public_origin.as_deref(), Some("https://auth.example.com"));
    }

    #[test]
    fn a_wildcard_origin_is_refused_in_one_line_naming_the_variable() {
        for value in ["*", "https://*.example.com", "https://a.example,*"] {
            let err = from(&[("CORS_ALLOWED_ORIGINS", value)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("CORS_ALLOWED_ORIGINS="), "{err}");
            assert!(err.contains("wildcard cannot be combined with credentials"));
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn an_origin_with_a_path_or_another_scheme_is_refused() {
        for value in [
            "https://app.example.com/",
            "https://app.example.com/app",
            "app.example.com",
            "null",
            "ftp://app.example.com",
            "https://user@app.example.com",
        ] {
            let err = from(&[("CORS_ALLOWED_ORIGINS", value)]).unwrap_err();
            assert!(err.to_string().contains("exact origins"), "{value}: {err}");
        }
        assert!(from(&[("PUBLIC_ORIGIN", "https://auth.example.com/x")]).is_err());
    }

    #[test]
    fn upstash_url_must_be_http_or_https() {
        let err = from(&[
            ("UPSTASH_REDIS_REST_URL", "redis://localhost:6379"),
            ("UPSTASH_REDIS_REST_TOKEN", "t"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("UPSTASH_REDIS_REST_URL"));
        let s = from(&[
            ("UPSTASH_REDIS_REST_URL", "https://eu1-x.upstash.io"),
            ("UPSTASH_REDIS_REST_TOKEN", "tok"),
        ])
        .unwrap();
        let up = s.upstash.unwrap();
        assert_eq!(up.token(), "tok");
        assert!(!format!("{up:?}").contains("tok\""));
    }

    fn with_url(url: &str, extra: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut pairs = vec![
            ("UPSTASH_REDIS_REST_URL", url),
            ("UPSTASH_REDIS_REST_TOKEN", "tok"),
        ];
        pairs.extend_from_slice(extra);
        from(&pairs)
    }

    #[test]
    fn a_rejected_url_is_shown_without_its_query_or_credentials() {
        for (url, secret) in [
            (
                "https://eu1-x.upstash.io/?_token=AXsecret123",
                "AXsecret123",
            ),
            ("https://user:AXsecret123@eu1-x.upstash.io", "AXsecret123"),
            ("https://AXsecret123@eu1-x.upstash.io/", "AXsecret123"),
            (
                "redis://default:AXsecret123@eu1-x.upstash.io:6379",
                "AXsecret123",
            ),
            ("not a url?_token=AXsecret123", "AXsecret123"),
            ("https://eu1-x.upstash.io/#AXsecret123", "AXsecret123"),
        ] {
            let err = with_url(url, &[]).unwrap_err().to_string();
            assert!(err.starts_with("UPSTASH_REDIS_REST_URL="), "{err}");
            assert!(!err.contains(secret), "{err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn redaction_keeps_what_locates_the_server() {
        assert_eq!(
            redact_url("https://u:p@eu1-x.upstash.io:443/db?_token=t#f"),
            "https://***@eu1-x.upstash.io:443/db?***"
        );
        assert_eq!(
            redact_url("https://eu1-x.upstash.io"),
            "https://eu1-x.upstash.io"
        );
    }

    #[test]
    fn a_url_with_a_fragment_or_query_stops_the_service_naming_the_variable() {
        for url in [
            "https://eu1-x.upstash.io/#x",
            "https://eu1-x.upstash.io/#",
            "https://eu1-x.upstash.io/?",
            "https://eu1-x.upstash.io/?a=b",
        ] {
            let err = with_url(url, &[]).unwrap_err().to_string();
            assert!(err.starts_with("UPSTASH_REDIS_REST_URL="), "{err}");
        }
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_or_explicitly_allowed() {
        let err = with_url("http://redis-proxy.internal:8080", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("UPSTASH_REDIS_REST_URL"), "{err}");
        assert!(err.contains("UPSTASH_ALLOW_INSECURE_HTTP=true"), "{err}");
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert!(with_url(url, &[]).is_ok(), "{url}");
        }
        let allowed = with_url(
            "http://redis-proxy.internal:8080",
            &[("UPSTASH_ALLOW_INSECURE_HTTP", "true")],
        );
        assert!(allowed.is_ok());
        assert!(with_url("https://eu1-x.upstash.io", &[]).is_ok());
    }

    #[test]
    fn only_localhost_and_loopback_addresses_count_as_loopback_not_names_under_localhost() {
        // `*.localhost` goes to the network's DNS resolver (glibc), which may answer with any
        // address: the token would travel there in clear text.
        for url in [
            "http://upstash.localhost:8080",
            "http://a.b.localhost",
            "http://localhost.:8080",
            "http://127.0.0.1.nip.io:8080",
        ] {
            let err = with_url(url, &[]).unwrap_err().to_string();
            assert!(
                err.contains("UPSTASH_ALLOW_INSECURE_HTTP=true"),
                "{url}: {err}"
            );
        }
        for url in ["http://LOCALHOST:8080", "http://127.0.0.1", "http://[::1]"] {
            assert!(with_url(url, &[]).is_ok(), "{url}");
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("upstash-sessions-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn test_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_missing_or_empty_ca_file_stops_the_service_naming_the_variable() {
        let empty = temp_file("empty.pem", b"no certificate here\n");
        for var in ["UPSTASH_CA_CERT", "SSL_CERT_FILE"] {
            for path in ["/nonexistent/ca.pem", empty.to_str().unwrap()] {
                let err = with_url("https://eu1-x.upstash.io", &[(var, path)])
                    .unwrap_err()
                    .to_string();
                assert!(err.starts_with(&format!("{var}=\"{path}\": ")), "{err}");
                assert!(!err.contains('\n'));
            }
        }
    }

    #[test]
    fn ca_files_add_their_certificates_only_when_upstash_is_used() {
        let one = temp_file("one.pem", test_ca_pem().as_bytes());
        let two = temp_file("two.pem", (test_ca_pem() + &test_ca_pem()).as_bytes());
        let s = with_url(
            "https://eu1-x.upstash.io",
            &[
                ("UPSTASH_CA_CERT", one.to_str().unwrap()),
                ("SSL_CERT_FILE", two.to_str().unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(s.upstash_extra_roots.len(), 3);
        let memory = from(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")]).unwrap();
        assert!(memory.upstash_extra_roots.is_empty());
    }

    #[test]
    fn a_pem_block_that_is_not_a_certificate_is_refused() {
        let bad = temp_file(
            "bad.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = with_url(
            "https://eu1-x.upstash.io",
            &[("UPSTASH_CA_CERT", bad.to_str().unwrap())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("UPSTASH_CA_CERT="), "{err}");
    }

    #[test]
    fn a_bundle_of_many_certificates_with_text_between_them_loads_every_one() {
        // As distributions write theirs: a comment before each block.
        let mut bundle = String::new();
        for n in 0..40 {
            bundle.push_str(&format!("# Issuer: CN=Test CA {n}\n{}\n", test_ca_pem()));
        }
        let path = temp_file("bundle.pem", bundle.as_bytes());
        let s = with_url(
            "https://eu1-x.upstash.io",
            &[("SSL_CERT_FILE", path.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(s.upstash_extra_roots.len(), 40);
    }

    #[test]
    fn the_platform_ca_bundle_is_accepted_as_ssl_cert_file() {
        // Containers often set SSL_CERT_FILE to the distribution's bundle: every one of its
        // certificates must load, or the service would not start. Where the bundle lives:
        // Debian/Ubuntu/Alpine, Fedora/RHEL, macOS/Alpine without ca-certificates.
        const BUNDLES: [&str; 3] = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ];
        let Some((bundle, text)) = BUNDLES
            .iter()
            .find_map(|b| Some((*b, std::fs::read_to_string(b).ok()?)))
        else {
            panic!("no platform CA bundle at any of {BUNDLES:?}: install ca-certificates");
        };
        let expected = text.matches("-----BEGIN CERTIFICATE-----").count();
        assert!(expected > 10, "{bundle} holds {expected} certificates");
        let s = with_url("https://eu1-x.upstash.io", &[("SSL_CERT_FILE", bundle)]).unwrap();
        assert_eq!(s.upstash_extra_roots.len(), expected);
    }
}
