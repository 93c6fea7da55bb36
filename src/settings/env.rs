//! Reading [`Settings`] from environment variables: [`Env`] reads one variable as a typed
//! value (a number in a range, a duration, a boolean) or leaves the default, and its error
//! names the variable and what it accepts, derived from the same range the value is checked
//! against.

use std::{fmt::Display, num::NonZeroU32, ops::RangeInclusive, str::FromStr, time::Duration};

use super::{
    validate::{
        parse_cookie_name, parse_origin, parse_same_site, parse_secret, parse_token, parse_url,
        read_certificates,
    },
    CookieSettings, LogFormat, RateLimitSettings, SessionSettings, Settings, SettingsError,
    UpstashSettings,
};
use crate::ratelimit::{Rate, TrustedProxies};

/// The spellings of a boolean setting, in the order the error message lists them.
pub(super) const TRUE_WORDS: [&str; 4] = ["true", "1", "yes", "on"];
/// See [`TRUE_WORDS`].
pub(super) const FALSE_WORDS: [&str; 4] = ["false", "0", "no", "off"];
/// What a boolean setting accepts: every spelling of [`TRUE_WORDS`] and [`FALSE_WORDS`].
const BOOL_EXPECTED: &str = "one of true, false, 1, 0, yes, no, on, off";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name → its value); empty values count as
    /// unset, except that an empty Upstash URL or token beside the other one set is named as
    /// empty.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env { lookup };
        let defaults = Settings::default();

        let upstash = env.upstash()?;
        // Certificate files matter only to the Upstash client: an `SSL_CERT_FILE` set for
        // other programs does not stop the memory-store service.
        let mut upstash_extra_roots = Vec::new();
        if upstash.is_some() {
            for var in ["UPSTASH_CA_CERT", "SSL_CERT_FILE"] {
                if let Some(path) = env.get(var) {
                    upstash_extra_roots.extend(read_certificates(var, &path)?);
                }
            }
        }
        let upstash_warm_pool = env.bool("UPSTASH_WARM_POOL", defaults.upstash_warm_pool)?;

        let secret = env.parse("SESSION_SECRET", parse_secret)?;
        let previous_secret = env.parse("SESSION_SECRET_PREVIOUS", parse_secret)?;
        let previous_token = env.parse("UPSTASH_REDIS_REST_TOKEN_PREVIOUS", parse_token)?;
        // Checked here so a typo stops the service instead of silently logging at `info`.
        if let Some(filter) = env.get("RUST_LOG") {
            if tracing_subscriber::EnvFilter::try_new(&filter).is_err() {
                return Err(SettingsError::Invalid {
                    var: "RUST_LOG",
                    value: filter,
                    expected: "a tracing filter, e.g. info, warn or upstash_sessions=debug,info",
                });
            }
        }

        let secure = env.bool("COOKIE_SECURE", defaults.cookie.secure)?;
        let name = match env.get("COOKIE_NAME") {
            None => defaults.cookie.name,
            Some(v) => parse_cookie_name(&v, secure)?,
        };
        let same_site = match env.get("COOKIE_SAMESITE") {
            None => defaults.cookie.same_site,
            Some(v) => parse_same_site(&v, secure)?,
        };

        let upstash_auto_pipeline =
            env.bool("UPSTASH_AUTO_PIPELINE", defaults.upstash_auto_pipeline)?;
        let metrics = env.bool("METRICS", defaults.metrics)?;

        let cors_allowed_origins = match env.get("CORS_ALLOWED_ORIGINS") {
            None => defaults.cors_allowed_origins.clone(),
            Some(v) => v
                .split(',')
                .filter(|o| !o.trim().is_empty())
                .map(|o| parse_origin("CORS_ALLOWED_ORIGINS", o))
                .collect::<Result<_, _>>()?,
        };
        let public_origin = env.parse("PUBLIC_ORIGIN", |var, v| parse_origin(var, &v))?;

        let traces = crate::traces::TraceSettings::from_lookup(|name| env.get(name))?;

        let rate_limit = RateLimitSettings {
            login: env.rate("RATE_LIMIT_LOGIN", defaults.rate_limit.login)?,
            requests: env.rate("RATE_LIMIT_REQUESTS", defaults.rate_limit.requests)?,
            max_clients: env.int(
                "RATE_LIMIT_MAX_CLIENTS",
                1..=10_000_000,
                defaults.rate_limit.max_clients,
            )?,
            trusted_proxies: match env.parse("TRUSTED_PROXIES", |var, value| {
                TrustedProxies::parse(&value).map_err(|_| SettingsError::Invalid {
                    var,
                    value,
                    expected: "comma-separated CIDRs (10.0.0.0/8) or addresses",
                })
            })? {
                None => defaults.rate_limit.trusted_proxies.clone(),
                Some(proxies) => proxies,
            },
        };
        let upstash_max_commands_per_second = match env.get("UPSTASH_MAX_COMMANDS_PER_SECOND") {
            None => defaults.upstash_max_commands_per_second,
            Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(n @ 1..=1_000_000) => NonZeroU32::new(n),
                _ => {
                    return Err(SettingsError::Invalid {
                        var: "UPSTASH_MAX_COMMANDS_PER_SECOND",
                        value,
                        expected: "an integer from 1 to 1000000, or off",
                    })
                }
            },
        };
        let memory_store_max_bytes = env.ranged(
            "MEMORY_STORE_MAX_BYTES",
            Some("bytes"),
            65_536..=1 << 40,
            defaults.memory_store_max_bytes,
        )?;

        Ok(Settings {
            traces,
            rate_limit,
            upstash_max_commands_per_second,
            memory_store_max_bytes,
            metrics,
            cors_allowed_origins,
            public_origin,
            upstash_auto_pipeline,
            upstash_extra_roots,
            upstash_warm_pool,
            host: env.get("HOST").unwrap_or(defaults.host),
            port: env.int("PORT", 1..=65_535, defaults.port)?,
            upstash,
            upstash_timeout: env.millis(
                "UPSTASH_TIMEOUT_MS",
                50..=60_000,
                defaults.upstash_timeout,
            )?,
            session: SessionSettings {
                idle_ttl: env.seconds(
                    "SESSION_TTL_SECONDS",
                    1..=31_536_000,
                    defaults.session.idle_ttl,
                )?,
                absolute_ttl: env.seconds(
                    "SESSION_ABSOLUTE_TTL_SECONDS",
                    1..=31_536_000,
                    defaults.session.absolute_ttl,
                )?,
                secret,
                previous_secret,
                previous_token,
                max_per_user: env.int(
                    "MAX_SESSIONS_PER_USER",
                    1..=10_000,
                    defaults.session.max_per_user,
                )?,
                max_data_bytes: env.bytes(
                    "SESSION_DATA_MAX_BYTES",
                    2..=1_048_576,
                    defaults.session.max_data_bytes,
                )?,
            },
            cookie: CookieSettings {
                name,
                secure,
                same_site,
            },
            workers: match env.get("WORKERS") {
                None => defaults.workers,
                Some(v) => Some(in_range("WORKERS", None, 1..=256, v)?),
            },
            shutdown_timeout: env.seconds(
                "SHUTDOWN_TIMEOUT_SECONDS",
                0..=3600,
                defaults.shutdown_timeout,
            )?,
            request_body_timeout: env.millis(
                "REQUEST_BODY_TIMEOUT_MS",
                10..=300_000,
                defaults.request_body_timeout,
            )?,
            log_format: match env
                .get("LOG_FORMAT")
                .as_deref()
                .map(str::to_ascii_lowercase)
            {
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
}

/// The environment as the parser reads it: a variable set to nothing (or only white space)
/// counts as unset, and each typed read returns the default when the variable is unset.
struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The variable's value, `None` when unset or empty.
    fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// Whether the variable is set, but to nothing (or only white space).
    fn is_empty(&self, var: &str) -> bool {
        (self.lookup)(var).is_some_and(|v| v.trim().is_empty())
    }

    /// The variable through `parse` (given the variable's name and value); `None` when unset.
    fn parse<T>(
        &self,
        var: &'static str,
        parse: impl FnOnce(&'static str, String) -> Result<T, SettingsError>,
    ) -> Result<Option<T>, SettingsError> {
        self.get(var).map(|v| parse(var, v)).transpose()
    }

    /// An integer in `range`, or `default`.
    fn int<T: FromStr + PartialOrd + Display>(
        &self,
        var: &'static str,
        range: RangeInclusive<T>,
        default: T,
    ) -> Result<T, SettingsError> {
        self.ranged(var, None, range, default)
    }

    /// A size in bytes in `range`, or `default`.
    fn bytes(
        &self,
        var: &'static str,
        range: RangeInclusive<usize>,
        default: usize,
    ) -> Result<usize, SettingsError> {
        self.ranged(var, Some("bytes"), range, default)
    }

    /// Whole seconds in `range`, or `default`.
    fn seconds(
        &self,
        var: &'static str,
        range: RangeInclusive<u64>,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        self.ranged(var, Some("seconds"), range, default.as_secs())
            .map(Duration::from_secs)
    }

    /// Whole milliseconds in `range`, or `default`.
    fn millis(
        &self,
        var: &'static str,
        range: RangeInclusive<u64>,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.ranged(var, Some("milliseconds"), range, default)
            .map(Duration::from_millis)
    }

    fn ranged<T: FromStr + PartialOrd + Display>(
        &self,
        var: &'static str,
        unit: Option<&'static str>,
        range: RangeInclusive<T>,
        default: T,
    ) -> Result<T, SettingsError> {
        match self.get(var) {
            None => Ok(default),
            Some(value) => in_range(var, unit, range, value),
        }
    }

    /// A boolean in any spelling of [`TRUE_WORDS`] or [`FALSE_WORDS`], or `default`.
    fn bool(&self, var: &'static str, default: bool) -> Result<bool, SettingsError> {
        let Some(value) = self.get(var) else {
            return Ok(default);
        };
        let word = value.trim().to_ascii_lowercase();
        if TRUE_WORDS.contains(&word.as_str()) {
            Ok(true)
        } else if FALSE_WORDS.contains(&word.as_str()) {
            Ok(false)
        } else {
            Err(SettingsError::Invalid {
                var,
                value,
                expected: BOOL_EXPECTED,
            })
        }
    }

    /// A rate (`N/s`, `N/m`, `N/h`) or `off`, or `default`.
    fn rate(
        &self,
        var: &'static str,
        default: Option<Rate>,
    ) -> Result<Option<Rate>, SettingsError> {
        match self.get(var) {
            None => Ok(default),
            Some(value) => Rate::parse(&value).map_err(|_| SettingsError::Invalid {
                var,
                value,
                expected: "N/s, N/m or N/h (N an integer from 1 to 1000000), or off",
            }),
        }
    }

    /// Both Upstash variables, or neither (the memory store).
    fn upstash(&self) -> Result<Option<UpstashSettings>, SettingsError> {
        const URL: &str = "UPSTASH_REDIS_REST_URL";
        const TOKEN: &str = "UPSTASH_REDIS_REST_TOKEN";
        let half_set = |missing, present| SettingsError::UpstashHalfSet {
            missing,
            state: if self.is_empty(missing) {
                "empty"
            } else {
                "not set"
            },
            present,
        };
        match (self.get(URL), self.get(TOKEN)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(half_set(TOKEN, URL)),
            (None, Some(_)) => Err(half_set(URL, TOKEN)),
            (Some(url), Some(token)) => {
                // Not a field of `Settings`: it only loosens the URL check.
                let allow_http = self.bool("UPSTASH_ALLOW_INSECURE_HTTP", false)?;
                Ok(Some(UpstashSettings {
                    url: parse_url(&url, allow_http)?,
                    token: parse_token(TOKEN, token)?,
                }))
            }
        }
    }
}

/// `value` as a number in `range`; the error says so in the range's own numbers.
fn in_range<T: FromStr + PartialOrd + Display>(
    var: &'static str,
    unit: Option<&'static str>,
    range: RangeInclusive<T>,
    value: String,
) -> Result<T, SettingsError> {
    match value.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(SettingsError::OutOfRange {
            var,
            value,
            unit,
            min: range.start().to_string(),
            max: range.end().to_string(),
        }),
    }
}
