//! Per-client rate limits, decided in process before any store work, so a refused request
//! costs no Upstash command: `RATE_LIMIT_LOGIN` for `POST /login/` and `RATE_LIMIT_REQUESTS`
//! for every other session route, per client address ([`TrustedProxies`] says which address
//! that is), each a GCRA allowance (`governor`) usable whole as a burst and refilled
//! continuously.
//!
//! At most `RATE_LIMIT_MAX_CLIENTS` addresses are tracked (`table.rs`): past it the least
//! recently seen is forgotten, so a flood of random addresses cannot grow the process. Limits
//! are per process: N instances allow N times the rate.

mod client_ip;
mod table;

use std::{fmt, net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use actix_web::http::header::HeaderMap;
use governor::{
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    Quota, RateLimiter,
};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Gauge, IntCounter, IntCounterVec, Opts, Registry,
};

pub use client_ip::{client_key, TrustedProxies};
use table::{ClientTable, Slot};

/// An allowance: `count` requests per `per`, all usable at once, refilled continuously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (and the largest burst).
    pub count: NonZeroU32,
    /// The period: one second, minute or hour.
    pub per: Per,
}

/// The period of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// `/s`
    Second,
    /// `/m`
    Minute,
    /// `/h`
    Hour,
}

/// Default of `RATE_LIMIT_LOGIN`: 20 logins a minute per address, a burst of 20 (a person
/// retyping a password, or a few dozen users behind one NAT, stay well under it).
pub const DEFAULT_LOGIN_RATE: Rate = Rate {
    // Evaluated at compile time: cannot fail at run time.
    count: match NonZeroU32::new(20) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    },
    per: Per::Minute,
};

/// Default of `RATE_LIMIT_REQUESTS`: 50 session requests a second per address, a burst of 50.
pub const DEFAULT_REQUESTS_RATE: Rate = Rate {
    count: match NonZeroU32::new(50) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    },
    per: Per::Second,
};

/// A rate that is not `N/s`, `N/m`, `N/h` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected N/s, N/m or N/h (N an integer from 1 to {MAX_RATE_COUNT}), or off")]
pub struct InvalidRate;

/// Largest `N` of a rate: above it a per-second allowance would refill faster than the clock
/// counts.
pub const MAX_RATE_COUNT: u32 = 1_000_000;

impl Rate {
    /// Parses `N/s`, `N/m` or `N/h` (N from 1 to [`MAX_RATE_COUNT`]); `off` is `Ok(None)`.
    pub fn parse(value: &str) -> Result<Option<Rate>, InvalidRate> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (count, per) = value.split_once('/').ok_or(InvalidRate)?;
        let count: u32 = count.trim().parse().map_err(|_| InvalidRate)?;
        let count = NonZeroU32::new(count)
            .filter(|n| n.get() <= MAX_RATE_COUNT)
            .ok_or(InvalidRate)?;
        let per = match per.trim().to_ascii_lowercase().as_str() {
            "s" => Per::Second,
            "m" => Per::Minute,
            "h" => Per::Hour,
            _ => return Err(InvalidRate),
        };
        Ok(Some(Rate { count, per }))
    }

    /// The rate as a `governor` quota: a burst of `count`, one cell back every `per / count`.
    pub fn quota(&self) -> Quota {
        match self.per {
            Per::Second => Quota::per_second(self.count),
            Per::Minute => Quota::per_minute(self.count),
            Per::Hour => Quota::per_hour(self.count),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = match self.per {
            Per::Second => "s",
            Per::Minute => "m",
            Per::Hour => "h",
        };
        write!(f, "{}/{per}", self.count)
    }
}

/// Which allowance a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `RATE_LIMIT_LOGIN`: `POST /login/`.
    Login,
    /// `RATE_LIMIT_REQUESTS`: every other route that reaches the store.
    Requests,
}

impl Limit {
    /// The `limit` label of `rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Login => "login",
            Limit::Requests => "requests",
        }
    }

    fn index(self) -> usize {
        match self {
            Limit::Login => 0,
            Limit::Requests => 1,
        }
    }
}

/// A refused request: its client is over `limit` until `retry_after` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The allowance that is spent.
    pub limit: Limit,
    /// How long until one more request is allowed.
    pub retry_after: Duration,
}

impl Refused {
    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// One allowance, keyed by client.
type Limiter<C> = RateLimiter<IpAddr, Slot, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The per-client limits of one process, shared by every worker.
pub struct ClientLimits<C: Clock = DefaultClock> {
    /// Indexed by [`Limit::index`]; `None`: that limit is off.
    limiters: [Option<Limiter<C>>; 2],
    table: Arc<ClientTable>,
    proxies: TrustedProxies,
    clock: C,
    /// `rate_limited_total{limit}`, by [`Limit::index`].
    refused: [Option<IntCounter>; 2],
}

impl ClientLimits<DefaultClock> {
    /// Limits on the real clock: `login` and `requests` (`None`: off), at most `max_clients`
    /// addresses tracked, clients found through `proxies`.
    pub fn new(
        login: Option<Rate>,
        requests: Option<Rate>,
        max_clients: usize,
        proxies: TrustedProxies,
    ) -> Self {
        Self::with_clock(
            login,
            requests,
            max_clients,
            proxies,
            DefaultClock::default(),
        )
    }
}

impl<C: Clock + Clone> ClientLimits<C> {
    /// Limits on `clock` (tests use `governor`'s fake clock).
    pub fn with_clock(
        login: Option<Rate>,
        requests: Option<Rate>,
        max_clients: usize,
        proxies: TrustedProxies,
        clock: C,
    ) -> Self {
        let table = Arc::new(ClientTable::new(max_clients));
        let limiter = |rate: Option<Rate>, limit: Limit| {
            rate.map(|rate| {
                RateLimiter::new(
                    rate.quota(),
                    Slot::new(table.clone(), limit.index()),
                    clock.clone(),
                )
            })
        };
        Self {
            limiters: [
                limiter(login, Limit::Login),
                limiter(requests, Limit::Requests),
            ],
            table: table.clone(),
            proxies,
            clock,
            refused: [None, None],
        }
    }

    /// Counts refusals on `metrics`.
    pub fn with_metrics(mut self, metrics: &RateLimitMetrics) -> Self {
        for limit in [Limit::Login, Limit::Requests] {
            self.refused[limit.index()] = Some(metrics.counter(limit.label()));
        }
        self
    }

    /// Whether any limit is on.
    pub fn is_on(&self) -> bool {
        self.limiters.iter().any(Option::is_some)
    }

    /// Draws one request of the client at `peer` (its address read through the trusted
    /// proxies from `headers`) on `limit`; `Err` when the client is over it. A limit that is
    /// off, or a request with no peer address, always passes.
    pub fn check(
        &self,
        limit: Limit,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<(), Refused> {
        let Some(limiter) = &self.limiters[limit.index()] else {
            return Ok(());
        };
        let Some(peer) = peer else {
            return Ok(());
        };
        let key = client_key(self.proxies.client(peer, headers));
        limiter.check_key(&key).map_err(|not_until| {
            if let Some(counter) = &self.refused[limit.index()] {
                counter.inc();
            }
            Refused {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }
        })
    }

    /// Client addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }
}

/// `rate_limited_total{limit}`: requests refused by a per-client limit (`login`,
/// `requests`) or by the Upstash command budget (`upstash_budget`). None of them cost an
/// Upstash command.
#[derive(Debug, Clone)]
pub struct RateLimitMetrics {
    refused: IntCounterVec,
}

/// The `limit` label of refusals by the Upstash command budget.
pub const UPSTASH_BUDGET_LABEL: &str = "upstash_budget";

impl RateLimitMetrics {
    /// Creates the counter and registers it on `registry`, with the per-client labels at 0
    /// (`upstash_budget` appears once an Upstash client counts on it, see [`Self::counter`]:
    /// the memory store's `/metrics` carries no Upstash series).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let refused = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused before any store work (429 per client, 503 for the Upstash \
                 command budget), by limit; none cost an Upstash command.",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        for label in ["login", "requests"] {
            refused.with_label_values(&[label]);
        }
        Ok(Self { refused })
    }

    /// The counter of one `limit` label.
    pub fn counter(&self, limit: &str) -> IntCounter {
        self.refused.with_label_values(&[limit])
    }

    /// Reports `limits.tracked()` as the gauge `rate_limit_clients` at each scrape.
    pub fn watch(&self, registry: &Registry, limits: Arc<ClientLimits>) -> prometheus::Result<()> {
        let gauge = Gauge::with_opts(Opts::new(
            "rate_limit_clients",
            "Client addresses the per-client rate limits track (at most RATE_LIMIT_MAX_CLIENTS).",
        ))?;
        registry.register(Box::new(TrackedClients { limits, gauge }))
    }
}

/// The `rate_limit_clients` gauge, read at scrape time.
struct TrackedClients {
    limits: Arc<ClientLimits>,
    gauge: Gauge,
}

impl Collector for TrackedClients {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set(self.limits.tracked() as f64);
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn rate(text: &str) -> Option<Rate> {
        Rate::parse(text).expect("a valid rate")
    }

    fn limits(
        login: &str,
        requests: &str,
        max_clients: usize,
    ) -> (ClientLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limits = ClientLimits::with_clock(
            rate(login),
            rate(requests),
            max_clients,
            TrustedProxies::none(),
            clock.clone(),
        );
        (limits, clock)
    }

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(n)))
    }

    #[test]
    fn rates_parse_per_second_minute_and_hour_or_off() {
        assert_eq!(rate("20/m").map(|r| r.to_string()).as_deref(), Some("20/m"));
        assert_eq!(
            rate(" 50 / S ").map(|r| r.to_string()).as_deref(),
            Some("50/s")
        );
        assert_eq!(rate("3/h").map(|r| r.to_string()).as_deref(), Some("3/h"));
        assert_eq!(rate("off"), None);
        assert_eq!(rate("OFF"), None);
        for bad in [
            "",
            "0/s",
            "-1/s",
            "20",
            "20/d",
            "20/",
            "/s",
            "x/m",
            "1000001/s",
            "1.5/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_whole_allowance_is_a_burst_then_it_refills_continuously() {
        let (limits, clock) = limits("3/m", "off", 10);
        let headers = HeaderMap::new();
        for _ in 0..3 {
            assert!(limits.check(Limit::Login, ip(1), &headers).is_ok());
        }
        let refused = limits.check(Limit::Login, ip(1), &headers).unwrap_err();
        assert_eq!(refused.limit, Limit::Login);
        // One cell comes back every 20 s.
        assert_eq!(refused.retry_after_secs(), 20);
        clock.advance(Duration::from_secs(19));
        assert_eq!(
            limits
                .check(Limit::Login, ip(1), &headers)
                .unwrap_err()
                .retry_after_secs(),
            1
        );
        clock.advance(Duration::from_secs(1));
        assert!(limits.check(Limit::Login, ip(1), &headers).is_ok());
        assert!(limits.check(Limit::Login, ip(1), &headers).is_err());
    }

    #[test]
    fn clients_and_limits_draw_on_their_own_allowances() {
        let (limits, _) = limits("1/h", "2/s", 10);
        let headers = HeaderMap::new();
        assert!(limits.check(Limit::Login, ip(1), &headers).is_ok());
        assert!(limits.check(Limit::Login, ip(1), &headers).is_err());
        // Another address, and the other limit of the same address, are untouched.
        assert!(limits.check(Limit::Login, ip(2), &headers).is_ok());
        assert!(limits.check(Limit::Requests, ip(1), &headers).is_ok());
        assert!(limits.check(Limit::Requests, ip(1), &headers).is_ok());
        assert!(limits.check(Limit::Requests, ip(1), &headers).is_err());
        assert_eq!(limits.tracked(), 2);
    }

    #[test]
    fn a_limit_that_is_off_never_refuses_nor_tracks() {
        let (limits, _) = limits("off", "off", 10);
        assert!(!limits.is_on());
        for n in 0..1000 {
            assert!(limits
                .check(Limit::Requests, ip(n), &HeaderMap::new())
                .is_ok());
        }
        assert_eq!(limits.tracked(), 0);
    }

    #[test]
    fn a_retry_after_under_a_second_is_one_second() {
        let refused = Refused {
            limit: Limit::Requests,
            retry_after: Duration::from_millis(20),
        };
        assert_eq!(refused.retry_after_secs(), 1);
        let refused = Refused {
            limit: Limit::Requests,
            retry_after: Duration::ZERO,
        };
        assert_eq!(refused.retry_after_secs(), 1);
    }

    #[test]
    fn tracking_stays_bounded_under_random_addresses_forgetting_the_least_recently_seen() {
        let (limits, _) = limits("1/h", "1/h", 100);
        let headers = HeaderMap::new();
        // The first client spends its allowance, and keeps being seen.
        assert!(limits.check(Limit::Login, ip(7), &headers).is_ok());
        let mut state = 0x9e37_79b9_u32;
        for _ in 0..100_000 {
            // xorshift: a stream of random addresses.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let _ = limits.check(Limit::Requests, ip(state), &headers);
            assert!(limits.tracked() <= 100);
            if state % 10 == 0 {
                // Seen again: still remembered, still refused.
                assert!(limits.check(Limit::Login, ip(7), &headers).is_err());
            }
        }
        assert_eq!(limits.tracked(), 100);
        // Once it stops and 100 other addresses come, it is forgotten: a fresh allowance.
        for n in 1..=100 {
            let _ = limits.check(Limit::Requests, ip(n << 8), &headers);
        }
        assert!(limits.check(Limit::Login, ip(7), &headers).is_ok());
    }
}
