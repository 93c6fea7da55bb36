//! Typed settings, read once from the environment (plus a `.env` file when present) and
//! validated at start. An invalid value is one [`SettingsError`] line naming the variable and
//! what it accepts; secrets are wrapped in [`SecretString`] so they never reach a log.

use std::{path::PathBuf, time::Duration};

use actix_web::cookie::SameSite;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use secrecy::{ExposeSecret, SecretString};

/// Every variable the service reads, for docs and `.env.example` checks.
pub const VARIABLES: &[&str] = &[
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "UPSTASH_TIMEOUT_MS",
    "UPSTASH_AUTO_PIPELINE",
    "UPSTASH_CA_CERT",
    "SSL_CERT_FILE",
    "UPSTASH_ALLOW_INSECURE_HTTP",
    "UPSTASH_WARM_POOL",
    "HOST",
    "PORT",
    "SESSION_TTL_SECONDS",
    "SESSION_ABSOLUTE_TTL_SECONDS",
    "SESSION_SECRET",
    "SESSION_SECRET_PREVIOUS",
    "UPSTASH_REDIS_REST_TOKEN_PREVIOUS",
    "MAX_SESSIONS_PER_USER",
    "SESSION_DATA_MAX_BYTES",
    "COOKIE_NAME",
    "COOKIE_SECURE",
    "COOKIE_SAMESITE",
    "WORKERS",
    "SHUTDOWN_TIMEOUT_SECONDS",
    "METRICS",
    "LOG_FORMAT",
    "RUST_LOG",
    "CORS_ALLOWED_ORIGINS",
    "PUBLIC_ORIGIN",
];

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
    /// Only one of `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` is set.
    #[error("{missing} is not set, but {present} is: set both to use Upstash, or neither to use the in-memory store")]
    UpstashHalfSet {
        /// The variable that is not set.
        missing: &'static str,
        /// The variable that is set.
        present: &'static str,
    },
    /// A value that cannot be parsed or is out of range.
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// The value (for `UPSTASH_REDIS_REST_URL`, with secrets redacted).
        value: String,
        /// What the variable accepts.
        expected: &'static str,
    },
    /// A malformed or too short secret (a session secret or an Upstash token); the value is
    /// never shown.
    #[error("{var} is invalid: {expected}")]
    InvalidSecret {
        /// The variable.
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
            log_format: LogFormat::Pretty,
            metrics: true,
            cors_allowed_origins: Vec::new(),
            public_origin: None,
        }
    }
}

/// Why the `.env` file could not be loaded. Never quotes the file's text: it holds secrets.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    /// A line that is not `KEY=VALUE` (or a comment, or blank).
    #[error("{path}: line {line} is not KEY=VALUE (nothing was loaded from the file)")]
    Line {
        /// The `.env` file's path.
        path: String,
        /// The bad line's number, from 1; 0 when it could not be located.
        line: usize,
    },
    /// The file exists but cannot be read.
    #[error("{path}: cannot be read: {source}")]
    Io {
        /// The `.env` file's path.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
}

/// Loads `./.env` (only from the working directory, never a parent) into the process
/// environment when it exists; variables already set win. Returns the file loaded. The whole
/// file is checked first: a malformed line stops the service with its line number, instead of
/// silently dropping every line after it.
pub fn load_dotenv() -> Result<Option<PathBuf>, DotenvError> {
    let Some(path) = std::env::current_dir().ok().map(|d| d.join(".env")) else {
        return Ok(None);
    };
    if !path.is_file() {
        return Ok(None);
    }
    let shown = path.display().to_string();
    let io = |source| DotenvError::Io {
        path: shown.clone(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(io)?;
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(bad, _)) => {
                let line = text
                    .lines()
                    .position(|l| bad.starts_with(l.trim_end()) || l.contains(bad.trim()))
                    .map_or(0, |i| i + 1);
                return Err(DotenvError::Line { path: shown, line });
            }
            Err(dotenvy::Error::Io(source)) => return Err(io(source)),
            Err(_) => {
                return Err(DotenvError::Line {
                    path: shown,
                    line: 0,
                })
            }
        }
    }
    dotenvy::from_read(text.as_bytes()).map_err(|_| DotenvError::Line {
        path: shown,
        line: 0,
    })?;
    Ok(Some(path))
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name → its value); empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Settings::default();

        let upstash = match (
            get("UPSTASH_REDIS_REST_URL"),
            get("UPSTASH_REDIS_REST_TOKEN"),
        ) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingsError::UpstashHalfSet {
                    missing: "UPSTASH_REDIS_REST_TOKEN",
                    present: "UPSTASH_REDIS_REST_URL",
                })
            }
            (None, Some(_)) => {
                return Err(SettingsError::UpstashHalfSet {
                    missing: "UPSTASH_REDIS_REST_URL",
                    present: "UPSTASH_REDIS_REST_TOKEN",
                })
            }
            (Some(url), Some(token)) => {
                // Not a field of `Settings`: it only loosens the URL check.
                let allow_http = parse_bool(
                    "UPSTASH_ALLOW_INSECURE_HTTP",
                    get("UPSTASH_ALLOW_INSECURE_HTTP"),
                    false,
                )?;
                Some(UpstashSettings {
                    url: parse_url(&url, allow_http)?,
                    token: parse_token("UPSTASH_REDIS_REST_TOKEN", token)?,
                })
            }
        };
        // Certificate files matter only to the Upstash client: an `SSL_CERT_FILE` set for
        // other programs does not stop the memory-store service.
        let mut upstash_extra_roots = Vec::new();
        if upstash.is_some() {
            for var in ["UPSTASH_CA_CERT", "SSL_CERT_FILE"] {
                if let Some(path) = get(var) {
                    upstash_extra_roots.extend(read_certificates(var, &path)?);
                }
            }
        }
        let upstash_warm_pool = parse_bool(
            "UPSTASH_WARM_POOL",
            get("UPSTASH_WARM_POOL"),
            defaults.upstash_warm_pool,
        )?;

        let secret = get("SESSION_SECRET")
            .map(|v| parse_secret("SESSION_SECRET", v))
            .transpose()?;
        let previous_secret = get("SESSION_SECRET_PREVIOUS")
            .map(|v| parse_secret("SESSION_SECRET_PREVIOUS", v))
            .transpose()?;
        let previous_token = get("UPSTASH_REDIS_REST_TOKEN_PREVIOUS")
            .map(|v| parse_token("UPSTASH_REDIS_REST_TOKEN_PREVIOUS", v))
            .transpose()?;
        // Checked here so a typo stops the service instead of silently logging at `info`.
        if let Some(filter) = get("RUST_LOG") {
            if tracing_subscriber::EnvFilter::try_new(&filter).is_err() {
                return Err(SettingsError::Invalid {
                    var: "RUST_LOG",
                    value: filter,
                    expected: "a tracing filter, e.g. info, warn or upstash_sessions=debug,info",
                });
            }
        }

        let secure = parse_bool(
            "COOKIE_SECURE",
            get("COOKIE_SECURE"),
            defaults.cookie.secure,
        )?;
        let name = match get("COOKIE_NAME") {
            None => defaults.cookie.name,
            Some(v) => parse_cookie_name(&v, secure)?,
        };
        let same_site = match get("COOKIE_SAMESITE") {
            None => defaults.cookie.same_site,
            Some(v) => parse_same_site(&v, secure)?,
        };

        let upstash_auto_pipeline = parse_bool(
            "UPSTASH_AUTO_PIPELINE",
            get("UPSTASH_AUTO_PIPELINE"),
            defaults.upstash_auto_pipeline,
        )?;

        let metrics = parse_bool("METRICS", get("METRICS"), defaults.metrics)?;

        let cors_allowed_origins = match get("CORS_ALLOWED_ORIGINS") {
            None => defaults.cors_allowed_origins.clone(),
            Some(v) => v
                .split(',')
                .filter(|o| !o.trim().is_empty())
                .map(|o| parse_origin("CORS_ALLOWED_ORIGINS", o))
                .collect::<Result<_, _>>()?,
        };
        let public_origin = get("PUBLIC_ORIGIN")
            .map(|v| parse_origin("PUBLIC_ORIGIN", &v))
            .transpose()?;

        Ok(Settings {
            metrics,
            cors_allowed_origins,
            public_origin,
            upstash_auto_pipeline,
            upstash_extra_roots,
            upstash_warm_pool,
            host: get("HOST").unwrap_or(defaults.host),
            port: parse_int(
                "PORT",
                get("PORT"),
                1,
                65_535,
                defaults.port,
                "an integer from 1 to 65535",
            )?,
            upstash,
            upstash_timeout: Duration::from_millis(parse_int(
                "UPSTASH_TIMEOUT_MS",
                get("UPSTASH_TIMEOUT_MS"),
                50,
                60_000,
                defaults.upstash_timeout.as_millis() as u64,
                "milliseconds, an integer from 50 to 60000",
            )?),
            session: SessionSettings {
                idle_ttl: Duration::from_secs(parse_int(
                    "SESSION_TTL_SECONDS",
                    get("SESSION_TTL_SECONDS"),
                    1,
                    31_536_000,
                    defaults.session.idle_ttl.as_secs(),
                    "seconds, an integer from 1 to 31536000",
                )?),
                absolute_ttl: Duration::from_secs(parse_int(
                    "SESSION_ABSOLUTE_TTL_SECONDS",
                    get("SESSION_ABSOLUTE_TTL_SECONDS"),
                    1,
                    31_536_000,
                    defaults.session.absolute_ttl.as_secs(),
                    "seconds, an integer from 1 to 31536000",
                )?),
                secret,
                previous_secret,
                previous_token,
                max_per_user: parse_int(
                    "MAX_SESSIONS_PER_USER",
                    get("MAX_SESSIONS_PER_USER"),
                    1,
                    10_000,
                    defaults.session.max_per_user,
                    "an integer from 1 to 10000",
                )?,
                max_data_bytes: parse_int(
                    "SESSION_DATA_MAX_BYTES",
                    get("SESSION_DATA_MAX_BYTES"),
                    2,
                    1_048_576,
                    defaults.session.max_data_bytes,
                    "bytes, an integer from 2 to 1048576",
                )?,
            },
            cookie: CookieSettings {
                name,
                secure,
                same_site,
            },
            workers: match get("WORKERS") {
                None => defaults.workers,
                Some(v) => Some(parse_in_range(
                    "WORKERS",
                    v,
                    1,
                    256,
                    "an integer from 1 to 256",
                )?),
            },
            shutdown_timeout: Duration::from_secs(parse_int(
                "SHUTDOWN_TIMEOUT_SECONDS",
                get("SHUTDOWN_TIMEOUT_SECONDS"),
                0,
                3600,
                defaults.shutdown_timeout.as_secs(),
                "seconds, an integer from 0 to 3600",
            )?),
            log_format: match get("LOG_FORMAT").as_deref().map(str::to_ascii_lowercase) {
                None => defaults.log_format,
                Some(v) if v == "pretty" || v == "text" => LogFormat::Pretty,
                Some(v) if v == "json" => LogFormat::Json,
                Some(v) => {
                    return Err(SettingsError::Invalid {
                        var: "LOG_FORMAT",
                        value: v,
                        expected: "one of pretty, json",
                    })
                }
            },
        })
    }

    /// `host:port` to bind (`[v6]:port` for an IPv6 host).
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn parse_int<T>(
    var: &'static str,
    value: Option<String>,
    min: T,
    max: T,
    default: T,
    expected: &'static str,
) -> Result<T, SettingsError>
where
    T: std::str::FromStr + PartialOrd + Copy,
{
    match value {
        None => Ok(default),
        Some(value) => parse_in_range(var, value, min, max, expected),
    }
}

/// `value` as a number from `min` to `max`.
fn parse_in_range<T>(
    var: &'static str,
    value: String,
    min: T,
    max: T,
    expected: &'static str,
) -> Result<T, SettingsError>
where
    T: std::str::FromStr + PartialOrd + Copy,
{
    match value.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(SettingsError::Invalid {
            var,
            value,
            expected,
        }),
    }
}

/// `value` as a boolean, or `default` when unset.
fn parse_bool(
    var: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, SettingsError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(SettingsError::Invalid {
            var,
            value,
            expected: "true or false",
        }),
    }
}

const URL_VAR: &str = "UPSTASH_REDIS_REST_URL";

fn parse_url(value: &str, allow_http: bool) -> Result<reqwest::Url, SettingsError> {
    // The value may carry a secret (`?_token=...`, `user:password@`): every message shows it
    // redacted.
    let invalid = |expected: &'static str| SettingsError::Invalid {
        var: URL_VAR,
        value: redact_url(value.trim()),
        expected,
    };
    let url = reqwest::Url::parse(value.trim())
        .map_err(|_| invalid("an https:// URL such as https://eu1-example-12345.upstash.io"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            "an https:// URL such as https://eu1-example-12345.upstash.io",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "no user:password@ in the URL; the token goes in UPSTASH_REDIS_REST_TOKEN",
        ));
    }
    if url.query().is_some() {
        return Err(invalid(
            "no ?query in the URL; the token goes in UPSTASH_REDIS_REST_TOKEN",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid(
            "no #fragment in the URL: the /pipeline and /multi-exec paths would fall into it",
        ));
    }
    if url.scheme() == "http" && !allow_http && !is_loopback(&url) {
        return Err(invalid(
            "https:// (the token travels in every request; http:// is allowed for loopback \
             hosts, or anywhere with UPSTASH_ALLOW_INSECURE_HTTP=true)",
        ));
    }
    Ok(url)
}

/// Whether `url` names this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// `value` with anything that may be a secret replaced by `***`: user information, the
/// query and the fragment. Works on text that is not a valid URL too.
pub fn redact_url(value: &str) -> String {
    let (head, tail) = match value.find(['?', '#']) {
        Some(at) => (&value[..at], Some(&value[at..at + 1])),
        None => (value, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut out = String::with_capacity(value.len());
    match head[authority_start..authority_end].rfind('@') {
        Some(at) => {
            out.push_str(&head[..authority_start]);
            out.push_str("***");
            out.push_str(&head[authority_start + at..]);
        }
        None => out.push_str(head),
    }
    if let Some(mark) = tail {
        out.push_str(mark);
        out.push_str("***");
    }
    out
}

/// The certificates of the PEM file `path`, each checked to be usable as a trust anchor.
fn read_certificates(
    var: &'static str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let fail = |problem: String| SettingsError::CertFile {
        var,
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM file: {e}")))?;
    if certificates.is_empty() {
        return Err(fail(
            "holds no certificate (expected PEM blocks: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for (n, certificate) in certificates.iter().enumerate() {
        store
            .add(certificate.clone())
            .map_err(|e| fail(format!("certificate {} is not usable: {e}", n + 1)))?;
    }
    Ok(certificates)
}

fn parse_token(var: &'static str, value: String) -> Result<SecretString, SettingsError> {
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if !ok {
        return Err(SettingsError::InvalidSecret {
            var,
            expected: "printable ASCII without spaces or quotes, as shown in the Upstash console",
        });
    }
    Ok(SecretString::from(value))
}

fn parse_secret(var: &'static str, value: String) -> Result<SecretString, SettingsError> {
    if value.len() < MIN_SECRET_BYTES {
        return Err(SettingsError::InvalidSecret {
            var,
            expected: "at least 32 bytes; generate one with `openssl rand -base64 48`",
        });
    }
    Ok(SecretString::from(value))
}

fn parse_cookie_name(value: &str, secure: bool) -> Result<String, SettingsError> {
    // RFC 6265 cookie-name is an RFC 2616 token.
    let is_token = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !is_token {
        return Err(SettingsError::Invalid {
            var: "COOKIE_NAME",
            value: value.to_owned(),
            expected: "1 to 64 letters, digits or !#$%&'*+-.^_`|~",
        });
    }
    if (value.starts_with("__Host-") || value.starts_with("__Secure-")) && !secure {
        return Err(SettingsError::Invalid {
            var: "COOKIE_NAME",
            value: value.to_owned(),
            expected: "a __Host- or __Secure- name needs COOKIE_SECURE=true",
        });
    }
    Ok(value.to_owned())
}

fn parse_same_site(value: &str, secure: bool) -> Result<SameSite, SettingsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSite::Lax),
        "strict" => Ok(SameSite::Strict),
        "none" if secure => Ok(SameSite::None),
        "none" => Err(SettingsError::Invalid {
            var: "COOKIE_SAMESITE",
            value: value.to_owned(),
            expected: "None needs COOKIE_SECURE=true; use lax or strict",
        }),
        _ => Err(SettingsError::Invalid {
            var: "COOKIE_SAMESITE",
            value: value.to_owned(),
            expected: "one of lax, strict, none",
        }),
    }
}

/// One exact origin, `scheme://host[:port]` as browsers send it in `Origin` (lowercase, no
/// default port, no path). A wildcard is refused: CORS forbids `*` with credentials, and a
/// pattern would trust every site that matches it with the users' sessions.
fn parse_origin(var: &'static str, value: &str) -> Result<String, SettingsError> {
    let value = value.trim();
    let invalid = |expected| SettingsError::Invalid {
        var,
        value: value.to_owned(),
        expected,
    };
    if value.contains('*') {
        return Err(invalid(
            "a wildcard cannot be combined with credentials (the session cookie); list exact origins such as https://app.example.com",
        ));
    }
    let exact = "exact origins such as https://app.example.com (scheme, host and port only; no path or trailing slash)";
    let url = reqwest::Url::parse(value).map_err(|_| invalid(exact))?;
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || has_credentials
        || url.path() != "/"
        || value.ends_with('/')
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(exact));
    }
    Ok(url.origin().ascii_serialization())
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
            VARIABLES.iter().map(|v| v.to_string()).collect();
        assert_eq!(read.into_inner(), listed);
        assert_eq!(listed.len(), VARIABLES.len(), "a variable is listed twice");
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
        assert!(s.cookie.secure);
        assert_eq!(s.cookie.name, "session_id");
        assert_eq!(s.cookie.same_site, SameSite::Lax);
        assert_eq!(s.session.max_data_bytes, 16_384);
        let s = from(&[("SESSION_DATA_MAX_BYTES", "100")]).unwrap();
        assert_eq!(s.session.max_data_bytes, 100);
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
                "COOKIE_SECURE=\"maybe\" is invalid: true or false",
            ),
            ("COOKIE_SAMESITE", "loose", "COOKIE_SAMESITE"),
            ("COOKIE_NAME", "bad name", "COOKIE_NAME"),
            ("UPSTASH_TIMEOUT_MS", "5", "UPSTASH_TIMEOUT_MS"),
            ("LOG_FORMAT", "xml", "LOG_FORMAT"),
            (
                "SESSION_DATA_MAX_BYTES",
                "2000000",
                "SESSION_DATA_MAX_BYTES=\"2000000\" is invalid: bytes, an integer from 2 to 1048576",
            ),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains('\n'));
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
    fn the_platform_ca_bundle_is_accepted_as_ssl_cert_file() {
        // Containers often set SSL_CERT_FILE to the distribution's bundle: every one of its
        // certificates must load, or the service would not start. (Debian/Ubuntu path.)
        let bundle = "/etc/ssl/certs/ca-certificates.crt";
        let Ok(text) = std::fs::read_to_string(bundle) else {
            eprintln!("{bundle} not present: nothing to check");
            return;
        };
        let expected = text.matches("-----BEGIN CERTIFICATE-----").count();
        let s = with_url("https://eu1-x.upstash.io", &[("SSL_CERT_FILE", bundle)]).unwrap();
        assert_eq!(s.upstash_extra_roots.len(), expected);
    }
}
