//! Cost control: the per-client rate limits, the client address behind proxies, the
//! instance's Upstash command budget and the cached readiness probe. Every refusal is
//! counted at the fake Upstash: it must cost no request and no command.

use std::{
    num::NonZeroU32,
    time::{Duration, Instant},
};

use reqwest::{header, Response, StatusCode};
use upstash_sessions::{
    ratelimit::{Rate, TrustedProxies},
    settings::Settings,
};

use crate::helpers::{json, spawn_app_with, Backend, TestApp};

fn rate(text: &str) -> Option<Rate> {
    Rate::parse(text).expect("a valid rate")
}

/// The app on the fake Upstash with the given limits (`off` for none).
async fn app_with_limits(login: &str, requests: &str) -> TestApp {
    spawn_app_with(Backend::Upstash, |s| {
        s.rate_limit.login = rate(login);
        s.rate_limit.requests = rate(requests);
    })
    .await
}

/// The value of the metric line that starts with `series` (name and labels).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Asserts a 429 with a JSON error and a whole-second `Retry-After` of at least 1.
async fn assert_rate_limited(response: Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    let body = json(response).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Too many requests"),
        "{body}"
    );
    retry_after
}

#[tokio::test]
async fn the_default_limits_refuse_a_burst_of_hundreds_of_logins_from_one_address() {
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.rate_limit = Settings::default().rate_limit;
    })
    .await;
    let body = r#"{"username": "alice"}"#;
    let mut accepted = 0;
    for _ in 0..300 {
        match app.post_login(body, None).await.status() {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    // 20 a minute, all usable at once: the burst passes, then one every 3 s at most.
    assert!(accepted >= 20, "{accepted}");
    assert!(accepted <= 40, "{accepted} of 300 logins passed");
    assert_eq!(
        metric(&app, "rate_limited_total{limit=\"login\"}").await,
        f64::from(300 - accepted)
    );
}

#[tokio::test]
async fn refused_logins_cost_no_upstash_command() {
    let app = app_with_limits("2/h", "off").await;
    let body = r#"{"username": "alice"}"#;
    for _ in 0..2 {
        assert_eq!(app.post_login(body, None).await.status(), 200);
    }
    let fake = app.fake();
    fake.reset_counters();
    let retry_after = assert_rate_limited(app.post_login(body, None).await).await;
    // One login comes back every 30 minutes.
    assert!((1700..=1800).contains(&retry_after), "{retry_after}");
    for _ in 0..50 {
        assert_eq!(app.post_login(body, None).await.status(), 429);
    }
    // Refused before the body is even read: a malformed one is refused the same.
    assert_eq!(app.post_login("not json", None).await.status(), 429);
    assert_eq!(fake.requests(), 0);
    assert_eq!(fake.commands(), 0);
}

#[tokio::test]
async fn refused_reads_and_writes_cost_no_upstash_command() {
    let app = app_with_limits("off", "3/h").await;
    let (_, cookie) = app.login("bob").await;
    for _ in 0..3 {
        assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    }
    let fake = app.fake();
    fake.reset_counters();
    for path in ["/profile/", "/profile", "/sessions/"] {
        assert_rate_limited(app.get(path, Some(&cookie)).await).await;
    }
    assert_rate_limited(app.post("/logout/", Some(&cookie)).await).await;
    assert_rate_limited(app.post("/logout/all/", Some(&cookie)).await).await;
    let id = crate::helpers::id_of(&cookie);
    assert_rate_limited(app.delete(&format!("/sessions/{id}"), Some(&cookie)).await).await;
    let patch = app
        .http
        .patch(app.url("/profile/"))
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body(r#"{"a": 1}"#)
        .send()
        .await
        .unwrap();
    assert_rate_limited(patch).await;
    for _ in 0..100 {
        assert_eq!(app.profile(Some(&cookie)).await.status(), 429);
    }
    assert_eq!(fake.requests(), 0);
    assert_eq!(fake.commands(), 0);
    // Logins draw on their own allowance (off here), probes on none.
    assert_eq!(
        app.post_login(r#"{"username": "bob"}"#, None)
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    assert_eq!(
        metric(&app, "rate_limited_total{limit=\"requests\"}").await,
        107.0
    );
}

/// `GET /profile/` with `headers`, from 127.0.0.1.
async fn profile_with(app: &TestApp, cookie: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut request = app
        .http
        .get(app.url("/profile/"))
        .header(header::COOKIE, cookie);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_changes_nothing_without_a_trusted_proxy() {
    let app = app_with_limits("off", "2/h").await;
    let (_, cookie) = app.login("carol").await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let spoofed = format!("203.0.113.{n}");
        statuses.push(
            profile_with(
                &app,
                &cookie,
                &[
                    ("x-forwarded-for", spoofed.as_str()),
                    ("forwarded", &format!("for={spoofed}")),
                ],
            )
            .await,
        );
    }
    assert_eq!(statuses[..2], [StatusCode::OK; 2]);
    assert_eq!(statuses[2..], [StatusCode::TOO_MANY_REQUESTS; 4]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.rate_limit.login = None;
        s.rate_limit.requests = rate("2/h");
        s.rate_limit.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
    })
    .await;
    let (_, cookie) = app.login("dave").await;
    // The client prepends a spoofed entry; the proxy (127.0.0.1) appends the real one.
    let first = [("x-forwarded-for", "198.51.100.1, 203.0.113.7")];
    let spoofed_again = [("x-forwarded-for", "198.51.100.2, 203.0.113.7")];
    assert_eq!(profile_with(&app, &cookie, &first).await, 200);
    assert_eq!(profile_with(&app, &cookie, &spoofed_again).await, 200);
    // Same client behind the same proxy, whatever it put before: refused.
    assert_eq!(profile_with(&app, &cookie, &first).await, 429);
    // Another client, through X-Forwarded-For or Forwarded, is not.
    let other = [("x-forwarded-for", "203.0.113.8")];
    assert_eq!(profile_with(&app, &cookie, &other).await, 200);
    let other = [("forwarded", "for=\"[2001:db8::1]:4711\"")];
    assert_eq!(profile_with(&app, &cookie, &other).await, 200);
    // Another address of the same IPv6 /64 shares that allowance.
    let same_64 = [("forwarded", "for=\"[2001:db8::2]\"")];
    assert_eq!(profile_with(&app, &cookie, &same_64).await, 200);
    assert_eq!(profile_with(&app, &cookie, &same_64).await, 429);
    // The proxy's own requests (no header) count as the proxy's.
    assert_eq!(profile_with(&app, &cookie, &[]).await, 200);
}

#[tokio::test]
async fn the_limiter_tracks_at_most_rate_limit_max_clients_addresses() {
    let app = spawn_app_with(Backend::Memory, |s| {
        s.rate_limit.login = None;
        s.rate_limit.requests = rate("1/h");
        s.rate_limit.max_clients = 50;
        s.rate_limit.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    // Random-looking addresses, each new: one request each passes (403: no cookie).
    for n in 0..400u32 {
        let address = std::net::Ipv4Addr::from(n.wrapping_mul(2_654_435_761)).to_string();
        let status = app
            .http
            .get(app.url("/profile/"))
            .header("x-forwarded-for", address)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(metric(&app, "rate_limit_clients").await, 50.0);
}

#[tokio::test]
async fn the_upstash_budget_holds_under_concurrency_sends_nothing_past_it_and_recovers() {
    let per_second = 5;
    let app = spawn_app_with(Backend::Upstash, |s| {
        s.rate_limit = upstash_sessions::settings::RateLimitSettings::off();
        s.upstash_max_commands_per_second = NonZeroU32::new(per_second);
    })
    .await;
    let fake = app.fake();
    // A login is one transaction of more commands than the whole budget: it passes once
    // the budget is full (after the start-up PING), and takes all of it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, cookie) = app.login("erin").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fake.reset_counters();

    let start = Instant::now();
    let answers =
        futures_util::future::join_all((0..100).map(|_| app.profile(Some(&cookie)))).await;
    let elapsed = start.elapsed();
    let mut ok = 0;
    let mut refused = 0;
    for response in answers {
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()[header::RETRY_AFTER], "1");
                let body = json(response).await;
                assert_eq!(
                    body["error"],
                    "Too many requests to the session store: retry in a second"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // One GETEX per profile sent, none for a refused one.
    assert_eq!(fake.commands(), ok);
    // Never more than the budget: a full second's worth, plus what refilled meanwhile.
    let allowed = u64::from(per_second) * (1 + elapsed.as_secs() + 1);
    assert!(ok <= allowed, "{ok} commands sent in {elapsed:?}");
    assert!(
        refused > 0,
        "100 concurrent reads within a budget of {per_second}/s"
    );
    assert_eq!(
        metric(&app, "rate_limited_total{limit=\"upstash_budget\"}").await,
        refused as f64
    );
    // As soon as the budget refills, requests pass again.
    let mut recovered = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if app.profile(Some(&cookie)).await.status() == StatusCode::OK {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the budget never refilled");
}

#[tokio::test]
async fn upstash_commands_are_counted_by_name_as_the_fake_receives_them() {
    let app = app_with_limits("off", "off").await;
    let (_, cookie) = app.login("frank").await;
    for _ in 0..3 {
        assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
    }
    let names = app.fake().command_names();
    let count = |name: &str| names.iter().flatten().filter(|n| *n == name).count() as f64;
    assert_eq!(count("GETEX"), 3.0);
    assert_eq!(
        metric(&app, "upstash_commands_total{command=\"GETEX\"}").await,
        count("GETEX")
    );
    // The login's transaction: each of its commands counts.
    assert_eq!(
        metric(&app, "upstash_commands_total{command=\"SET\"}").await,
        count("SET")
    );
    assert!(count("SET") >= 1.0);
}

#[tokio::test]
async fn readiness_probes_every_millisecond_cost_about_one_ping_a_second() {
    let app = app_with_limits("off", "off").await;
    let fake = app.fake();
    let pings = || {
        fake.command_names()
            .iter()
            .flatten()
            .filter(|n| *n == "PING")
            .count()
    };
    let start = Instant::now();
    let mut probes = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        // A probe every millisecond, and a few at once now and then.
        let answers = if probes % 50 == 0 {
            futures_util::future::join_all((0..5).map(|_| app.get("/readyz", None))).await
        } else {
            vec![app.get("/readyz", None).await]
        };
        for response in answers {
            assert_eq!(response.status(), 200);
            probes += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed().as_secs();
    assert!(probes >= 20);
    // At most one PING per second begun, however many probes.
    assert!(
        pings() as u64 <= elapsed + 1,
        "{} PINGs for {probes} probes",
        pings()
    );
    assert!(pings() >= 1);
}

#[tokio::test]
async fn a_failed_readiness_check_answers_503_until_the_next_check() {
    let app = app_with_limits("off", "off").await;
    let fake = app.fake();
    let before = fake
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .len();
    // Upstash down: every request 503s.
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&fake.server)
        .await;
    for _ in 0..20 {
        let response = app.get("/readyz", None).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
    // One check (its attempts retried within its deadline), two if the probes took over a
    // second: not twenty.
    let received = fake
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .len()
        - before;
    assert!(received <= 12, "{received} requests for 20 probes");
}

/// Against upstash-on-redis in front of a real redis-server, counted at its `/__stats` (what
/// Upstash would bill). `#[ignore]`d: `scripts/e2e-store.sh` runs them with
/// `--include-ignored`, one test at a time, with `UPSTASH_E2E_URL` and `UPSTASH_E2E_TOKEN`.
mod e2e {
    use super::*;
    use crate::helpers::{id_of, spawn_with_settings, test_settings, upstash_settings};

    fn real_upstash() -> (String, String) {
        match (
            std::env::var("UPSTASH_E2E_URL"),
            std::env::var("UPSTASH_E2E_TOKEN"),
        ) {
            (Ok(url), Ok(token)) => (url, token),
            _ => panic!("set UPSTASH_E2E_URL and UPSTASH_E2E_TOKEN (scripts/e2e-store.sh does)"),
        }
    }

    /// Billed commands so far (`/__stats`).
    async fn billed(url: &str) -> u64 {
        let stats = format!("{}/__stats", url.trim_end_matches('/'));
        let body: serde_json::Value = reqwest::get(stats).await.unwrap().json().await.unwrap();
        body["commands"].as_u64().unwrap()
    }

    async fn app_on_real_upstash(tweak: impl FnOnce(&mut Settings)) -> (TestApp, String) {
        let (url, token) = real_upstash();
        let mut settings = test_settings(None);
        settings.upstash = Some(upstash_settings(&url, &token));
        tweak(&mut settings);
        (spawn_with_settings(settings, None).await, url)
    }

    fn unique(user: &str) -> String {
        format!("{user}-{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    #[ignore = "needs upstash-on-redis: scripts/e2e-store.sh"]
    async fn refused_requests_cost_no_billed_command_at_upstash_on_redis() {
        let (app, url) = app_on_real_upstash(|s| {
            s.rate_limit.login = rate("2/h");
            s.rate_limit.requests = rate("3/h");
        })
        .await;
        let body = serde_json::json!({ "username": unique("limited") }).to_string();
        let (_, cookie) = app.login(&unique("limited")).await;
        assert_eq!(app.post_login(&body, None).await.status(), 200);
        for _ in 0..3 {
            assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
        }
        let before = billed(&url).await;
        for _ in 0..100 {
            assert_eq!(app.post_login(&body, None).await.status(), 429);
            assert_eq!(app.profile(Some(&cookie)).await.status(), 429);
        }
        assert_eq!(app.get("/sessions/", Some(&cookie)).await.status(), 429);
        assert_eq!(app.post("/logout/", Some(&cookie)).await.status(), 429);
        assert_eq!(billed(&url).await - before, 0, "refusals were billed");
    }

    #[tokio::test]
    #[ignore = "needs upstash-on-redis: scripts/e2e-store.sh"]
    async fn requests_past_the_command_budget_cost_no_billed_command_at_upstash_on_redis() {
        let (app, url) = app_on_real_upstash(|s| {
            s.upstash_max_commands_per_second = NonZeroU32::new(5);
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (_, cookie) = app.login(&unique("budget")).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = billed(&url).await;
        let answers =
            futures_util::future::join_all((0..60).map(|_| app.profile(Some(&cookie)))).await;
        let ok = answers.iter().filter(|r| r.status() == 200).count() as u64;
        let refused = answers.iter().filter(|r| r.status() == 503).count() as u64;
        assert_eq!(ok + refused, 60);
        assert!(refused > 0);
        // One GETEX per answered read, nothing for a refused one.
        assert_eq!(billed(&url).await - before, ok);
    }

    /// The billed commands of each operation, printed as the table of docs/cost-control.md
    /// (`--nocapture` shows it), and checked against what the document says.
    #[tokio::test]
    #[ignore = "needs upstash-on-redis: scripts/e2e-store.sh"]
    async fn billed_commands_per_operation_at_upstash_on_redis() {
        let (app, url) = app_on_real_upstash(|_| {}).await;
        let user = unique("priced");
        let mut table = Vec::new();
        // (operation, requests sent, billed commands)
        let mut measure = |name: &'static str, before: u64, after: u64| {
            let requests = if name.starts_with("GET /readyz") {
                100
            } else {
                1
            };
            table.push((name, requests, after - before));
        };

        let b = billed(&url).await;
        let (_, first) = app.login(&user).await;
        measure(
            "POST /login/ (first session of a user)",
            b,
            billed(&url).await,
        );
        let b = billed(&url).await;
        let (_, cookie) = app.login(&user).await;
        measure("POST /login/ (user with sessions)", b, billed(&url).await);
        let b = billed(&url).await;
        let response = app
            .post_login(
                &serde_json::json!({ "username": user }).to_string(),
                Some(&cookie),
            )
            .await;
        let cookie = crate::helpers::session_cookie(&response).unwrap();
        measure(
            "POST /login/ (with a session cookie: rotation)",
            b,
            billed(&url).await,
        );
        let b = billed(&url).await;
        assert_eq!(app.profile(Some(&cookie)).await.status(), 200);
        measure("GET /profile/", b, billed(&url).await);
        let patch = |n: u32| {
            app.http
                .patch(app.url("/profile/"))
                .header(header::COOKIE, &cookie)
                .header(header::CONTENT_TYPE, "application/merge-patch+json")
                .body(format!(r#"{{"n": {n}}}"#))
                .send()
        };
        assert_eq!(patch(0).await.unwrap().status(), 200);
        let b = billed(&url).await;
        assert_eq!(patch(1).await.unwrap().status(), 200);
        measure("PATCH /profile/", b, billed(&url).await);
        let b = billed(&url).await;
        assert_eq!(app.get("/sessions/", Some(&cookie)).await.status(), 200);
        measure("GET /sessions/ (3 sessions)", b, billed(&url).await);
        let b = billed(&url).await;
        let path = format!("/sessions/{}", id_of(&first));
        assert_eq!(app.delete(&path, Some(&cookie)).await.status(), 200);
        measure("DELETE /sessions/{id}", b, billed(&url).await);
        let b = billed(&url).await;
        assert_eq!(app.logout(Some(&cookie)).await.status(), 200);
        measure("POST /logout/", b, billed(&url).await);
        let (_, cookie) = app.login(&user).await;
        let b = billed(&url).await;
        assert_eq!(app.post("/logout/all/", Some(&cookie)).await.status(), 200);
        measure("POST /logout/all/ (2 sessions)", b, billed(&url).await);
        let forged = format!("session_id={}.{}", uuid::Uuid::new_v4(), "A".repeat(43));
        let b = billed(&url).await;
        assert_eq!(app.profile(Some(&forged)).await.status(), 404);
        measure("GET /profile/ with a forged cookie", b, billed(&url).await);
        let b = billed(&url).await;
        for _ in 0..100 {
            assert_eq!(app.get("/readyz", None).await.status(), 200);
        }
        measure(
            "GET /readyz (100 probes within a second or so)",
            b,
            billed(&url).await,
        );

        println!("| operation | billed commands | a million of them cost |");
        println!("|---|---:|---:|");
        for (name, requests, commands) in &table {
            // $0.20 per 100,000 commands.
            let dollars = *commands as f64 / *requests as f64 * 1_000_000.0 * 0.20 / 100_000.0;
            println!("| {name} | {commands} | ${dollars:.2} |");
        }
        let of = |name: &str| table.iter().find(|(n, _, _)| *n == name).unwrap().2;
        assert_eq!(of("GET /profile/"), 1);
        assert_eq!(of("PATCH /profile/"), 1);
        assert_eq!(of("POST /logout/"), 1);
        assert_eq!(of("GET /profile/ with a forged cookie"), 0);
        assert!(of("GET /readyz (100 probes within a second or so)") <= 3);
    }
}
