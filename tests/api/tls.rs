//! HTTPS to the store: a private CA trusted through settings, HTTP/2 by ALPN over reused
//! connections, the whole API over TLS, and faults on the wire, all in process against the
//! fake Upstash behind a TLS front (`tls_front.rs`). The binary's part (settings from the
//! environment, log lines) is at the end.

use std::{
    process::Child,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{stream, StreamExt};
use upstash_sessions::upstash::{ClientConfig, Command as Cmd, RetryPolicy, UpstashClient};

use crate::{
    fake_upstash::{FakeUpstash, FAKE_TOKEN},
    helpers::{session_cookie, spawn_with_settings, test_settings, upstash_settings},
    tls_front::{Behaviour, Mode, TestCa, TlsFront},
};

/// A client for `front`, trusting `ca`.
fn client_for(front: &TlsFront, ca: &TestCa, timeout: Duration) -> UpstashClient {
    let mut config = ClientConfig::new(
        reqwest::Url::parse(&front.url()).unwrap(),
        FAKE_TOKEN,
        timeout,
    );
    config.extra_roots = vec![ca.der()];
    UpstashClient::new(config).unwrap()
}

#[tokio::test]
async fn a_thousand_calls_share_one_http2_connection_and_one_tls_handshake() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(ca.localhost())).await;
    let client = client_for(&front, &ca, Duration::from_secs(5));

    for i in 0..1000 {
        client
            .command(
                &Cmd::new("SET").arg(format!("k{i}")).arg("v"),
                RetryPolicy::Idempotent,
            )
            .await
            .unwrap();
    }
    // Then 1,000 more, 50 at a time: multiplexed on the same HTTP/2 connection.
    let client = Arc::new(client);
    let results: Vec<_> = stream::iter(0..1000)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .command(
                        &Cmd::new("GET").arg(format!("k{i}")),
                        RetryPolicy::Idempotent,
                    )
                    .await
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok));

    assert_eq!(fake.requests(), 2000);
    assert_eq!(front.handshakes(), 1, "one TLS handshake for 2,000 calls");
    assert_eq!(front.tcp_accepts(), 1);
    assert_eq!(
        client.tls_handshakes(),
        1,
        "the client counts what the server saw"
    );
    assert_eq!(front.alpn(), vec!["h2".to_owned()], "HTTP/2 agreed by ALPN");
}

#[tokio::test]
async fn a_server_offering_only_http1_is_spoken_to_in_http1() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let tls = ca.server("localhost", false, &["http/1.1"]);
    let front = TlsFront::start(&fake.uri(), Mode::relay(tls)).await;
    let client = client_for(&front, &ca, Duration::from_secs(5));
    for _ in 0..20 {
        client
            .command(&Cmd::new("PING"), RetryPolicy::Once)
            .await
            .unwrap();
    }
    assert_eq!(front.alpn(), vec!["http/1.1".to_owned()]);
    assert_eq!(front.handshakes(), 1, "keep-alive reuses the connection");
}

#[tokio::test]
async fn a_server_closing_idle_connections_does_not_fail_the_next_call_even_a_once_only_one() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let mut mode = Mode::relay(ca.localhost());
    // Long enough for a loaded machine to send its request after the handshake.
    mode.idle_close = Some(Duration::from_millis(300));
    let front = TlsFront::start(&fake.uri(), mode).await;
    let client = client_for(&front, &ca, Duration::from_secs(5));

    for round in 1..=5u64 {
        // `Once`: no retry by the client may hide a failure on a stale connection.
        client
            .command(&Cmd::new("PING"), RetryPolicy::Once)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            front.handshakes(),
            round,
            "each round needs a new connection"
        );
        // Long past the server's idle timeout: it has closed the pooled connection.
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    assert_eq!(fake.requests(), 5);
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused_at_once_and_not_retried() {
    let fake = FakeUpstash::start().await;
    let trusted = TestCa::new();
    let stranger = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(stranger.localhost())).await;
    let client = client_for(&front, &trusted, Duration::from_secs(5));
    let error = client
        .command(&Cmd::new("GET").arg("k"), RetryPolicy::Idempotent)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "tls");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("unknown CA"), "{error}");
    assert_eq!(
        front.tcp_accepts(),
        1,
        "a refused certificate is not retried"
    );
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn a_private_ca_is_trusted_only_when_configured() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(ca.localhost())).await;
    let without = UpstashClient::new(ClientConfig::new(
        reqwest::Url::parse(&front.url()).unwrap(),
        FAKE_TOKEN,
        Duration::from_secs(2),
    ))
    .unwrap();
    let error = without
        .command(&Cmd::new("PING"), RetryPolicy::Once)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unknown CA"), "{error}");
    let with = client_for(&front, &ca, Duration::from_secs(2));
    with.command(&Cmd::new("PING"), RetryPolicy::Once)
        .await
        .unwrap();
}

/// Test settings for the service behind `front`, trusting `ca`.
fn settings_behind(front: &TlsFront, ca: &TestCa) -> upstash_sessions::settings::Settings {
    let mut settings = test_settings(None);
    settings.upstash = Some(upstash_settings(&front.url(), FAKE_TOKEN));
    settings.upstash_extra_roots = vec![ca.der()];
    settings
}

#[tokio::test]
async fn login_profile_sessions_and_logout_work_over_https_with_the_sync_token() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(ca.localhost())).await;
    let app = spawn_with_settings(settings_behind(&front, &ca), None).await;

    let login = app.post_login(r#"{"username":"alice"}"#, None).await;
    assert_eq!(login.status(), 200);
    let laptop = session_cookie(&login).unwrap();
    let phone = session_cookie(&app.post_login(r#"{"username":"alice"}"#, None).await).unwrap();
    let profile = app.get("/profile/", Some(&laptop)).await;
    assert_eq!(profile.status(), 200);
    assert!(
        fake.last_sync_token_received()
            .is_some_and(|t| t.starts_with("fake-")),
        "the sync token of earlier answers is sent back over TLS"
    );

    let list: serde_json::Value = app
        .get("/sessions/", Some(&laptop))
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let phone_id = sessions.iter().find(|s| s["current"] == false).unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = app
        .delete(&format!("/sessions/{phone_id}"), Some(&laptop))
        .await;
    assert_eq!(ended.status(), 200);
    assert_eq!(app.get("/profile/", Some(&phone)).await.status(), 404);

    let all = app.post("/logout/all/", Some(&laptop)).await;
    assert_eq!(all.status(), 200);
    assert_eq!(app.get("/profile/", Some(&laptop)).await.status(), 404);
    let logout = app.post("/logout/", Some(&laptop)).await;
    assert_eq!(logout.status(), 200);
    assert_eq!(app.get("/readyz", None).await.status(), 200);

    // The start-up PING ran on the main thread's pool, the rest on the worker's: two
    // connections, whatever the number of requests; all HTTP/2.
    assert!(front.handshakes() <= 2, "{} handshakes", front.handshakes());
    assert!(front.alpn().iter().all(|p| p == "h2"), "{:?}", front.alpn());
}

#[tokio::test]
async fn a_warm_pool_opens_the_workers_connection_before_the_first_request() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(ca.localhost())).await;
    let mut settings = settings_behind(&front, &ca);
    settings.upstash_warm_pool = true;
    let app = spawn_with_settings(settings, None).await;
    // The start-up PING's connection, then the worker's, with no request sent.
    let mut waited = 0;
    while front.handshakes() < 2 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += 1;
    }
    assert_eq!(front.handshakes(), 2);
    assert_eq!(
        app.post_login(r#"{"username":"alice"}"#, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        front.handshakes(),
        2,
        "the first request used the warm connection"
    );
}

// ---- the binary: settings from the environment, answers and log lines of each fault ----

fn spawn_binary(vars: &[(&str, &str)]) -> Child {
    crate::binary::binary(vars).spawn().unwrap()
}

/// Stops the binary and returns its log.
fn stop(mut child: Child) -> String {
    crate::binary::stop(&mut child).1
}

/// The binary in front of `front`, with `vars` added; and its base URL.
async fn binary_for(front: &TlsFront, vars: &[(&str, &str)]) -> (Child, String) {
    let url = front.url();
    let mut all = vec![
        ("UPSTASH_REDIS_REST_URL", url.as_str()),
        ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN),
        ("COOKIE_SECURE", "false"),
        ("WORKERS", "1"),
        ("RUST_LOG", "info"),
    ];
    all.extend_from_slice(vars);
    crate::binary::start(&all).await
}

#[tokio::test]
async fn the_binary_trusts_a_private_ca_named_by_upstash_ca_cert_or_ssl_cert_file() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(ca.localhost())).await;
    let ca_file = ca.write_pem("ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let http = reqwest::Client::new();
    for var in ["UPSTASH_CA_CERT", "SSL_CERT_FILE"] {
        let (child, base) = binary_for(&front, &[(var, ca_file)]).await;
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        let status = ready.status();
        let log = stop(child);
        assert_eq!(status, 200, "{var}: {log}");
        assert!(log.contains("connected to Upstash"), "{var}: {log}");
    }
    // Without either, the same endpoint is refused, and the log says why and what to set.
    let (child, base) = binary_for(&front, &[]).await;
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    let status = ready.status();
    let log = stop(child);
    assert_eq!(status, 503, "{log}");
    assert!(log.contains("unknown CA (set UPSTASH_CA_CERT"), "{log}");
}

#[test]
fn a_missing_ca_file_stops_the_binary_with_one_line_naming_the_variable() {
    for var in ["UPSTASH_CA_CERT", "SSL_CERT_FILE"] {
        let child = spawn_binary(&[
            ("UPSTASH_REDIS_REST_URL", "https://localhost:1"),
            ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN),
            (var, "/nonexistent/ca.pem"),
        ]);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{var}=\"/nonexistent/ca.pem\": cannot read")),
            "{stderr}"
        );
    }
}

#[test]
fn a_rejected_url_never_prints_its_token() {
    for url in [
        "https://eu1-x.upstash.io/?_token=AXsecretvalue",
        "https://default:AXsecretvalue@eu1-x.upstash.io",
        "https://eu1-x.upstash.io/#AXsecretvalue",
    ] {
        let child = spawn_binary(&[
            ("UPSTASH_REDIS_REST_URL", url),
            ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN),
        ]);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("UPSTASH_REDIS_REST_URL"), "{stderr}");
        assert!(!stderr.contains("AXsecretvalue"), "{stderr}");
    }
}

#[tokio::test]
async fn each_fault_on_the_wire_is_a_clean_503_or_504_in_time_logged_by_its_cause() {
    let fake = FakeUpstash::start().await;
    let ca = TestCa::new();
    let stranger = TestCa::new();
    let front = TlsFront::start(&fake.uri(), Mode::relay(ca.localhost())).await;
    let ca_file = ca.write_pem("ca.pem");
    let timeout = Duration::from_millis(900);
    let (child, base) = binary_for(
        &front,
        &[
            ("UPSTASH_CA_CERT", ca_file.to_str().unwrap()),
            ("UPSTASH_TIMEOUT_MS", "900"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/login/"))
        .header("content-type", "application/json")
        .body(r#"{"username":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = session_cookie(&login).unwrap();

    let http1_only = ca.server("localhost", false, &["http/1.1"]);
    let faults = [
        ("unknown CA", Mode::relay(stranger.localhost())),
        (
            "another host name",
            Mode::relay(ca.server("upstash.example", false, &["h2", "http/1.1"])),
        ),
        (
            "expired",
            Mode::relay(ca.server("localhost", true, &["h2", "http/1.1"])),
        ),
        (
            "handshake never finishes",
            Mode {
                behaviour: Behaviour::Stall,
                ..Mode::relay(ca.localhost())
            },
        ),
        (
            "reset mid-response",
            Mode {
                behaviour: Behaviour::ResetMidResponse,
                ..Mode::relay(http1_only)
            },
        ),
    ];
    let mut outcomes = Vec::new();
    for (fault, mode) in faults {
        front.set(mode);
        // Let the service see its pooled connections close.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for path in ["/profile/", "/readyz"] {
            let started = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let elapsed = started.elapsed();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            outcomes.push(format!("{fault} {path}: {status} {body} in {elapsed:?}"));
            assert!(
                status == 503 || status == 504,
                "{fault} {path}: {status} {body}"
            );
            assert!(body["error"].is_string(), "{fault}: {body}");
            // The deadline is the service's; the slack is for a loaded machine.
            assert!(
                elapsed < timeout + Duration::from_secs(2),
                "{fault} {path}: {elapsed:?}"
            );
        }
    }
    // Back to normal: the next calls succeed on new connections.
    front.set(Mode::relay(ca.localhost()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let profile = http
        .get(format!("{base}/profile/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let profile_status = profile.status();
    let log = stop(child);
    assert_eq!(profile_status, 200, "{log}");
    for needle in [
        "certificate signed by an unknown CA",
        "certificate is for another host name",
        "certificate expired",
        "reset or closed mid-answer",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the log:\n{log}");
    }
    // The stalled handshake is named on the failed profile read itself, not only by /readyz.
    assert!(
        log.lines()
            .any(|l| l.contains("route=\"/profile/\"") && l.contains("handshake timed out")),
        "no handshake timeout on a /profile/ line in the log:\n{log}"
    );
    assert!(!log.contains(FAKE_TOKEN), "the token leaked into the log");
    eprintln!("{}\n{log}", outcomes.join("\n"));
}

/// Against a real Upstash-compatible server over HTTPS (`scripts/e2e-store.sh` runs
/// upstash-on-redis with a throwaway CA): set `UPSTASH_E2E_URL=https://...`,
/// `UPSTASH_E2E_TOKEN` and `UPSTASH_E2E_CA_CERT`. Without them these tests check nothing.
pub mod e2e {
    use rustls::pki_types::{pem::PemObject, CertificateDer};

    use super::*;
    use crate::helpers::upstash_settings;

    /// The certificates of `UPSTASH_E2E_CA_CERT`, if set.
    pub fn extra_roots() -> Vec<CertificateDer<'static>> {
        match std::env::var("UPSTASH_E2E_CA_CERT") {
            Ok(path) => CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect())
                .unwrap_or_else(|e| panic!("UPSTASH_E2E_CA_CERT={path}: {e}")),
            Err(_) => Vec::new(),
        }
    }

    /// URL and token of an HTTPS endpoint under test, or `None` (the test is skipped).
    fn https_endpoint() -> Option<(String, String)> {
        let url = std::env::var("UPSTASH_E2E_URL").ok()?;
        let token = std::env::var("UPSTASH_E2E_TOKEN").ok()?;
        if !url.starts_with("https://") {
            eprintln!("UPSTASH_E2E_URL is not https: nothing to check");
            return None;
        }
        Some((url, token))
    }

    /// `upstash_tls_handshakes_total` on the app's `/metrics`.
    async fn handshakes(app: &crate::helpers::TestApp) -> u64 {
        let text = app.get("/metrics", None).await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("upstash_tls_handshakes_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("upstash_tls_handshakes_total on /metrics")
    }

    #[tokio::test]
    async fn the_api_works_over_https_and_reuses_its_connection() {
        let Some((url, token)) = https_endpoint() else {
            return;
        };
        let mut settings = test_settings(None);
        settings.upstash = Some(upstash_settings(&url, &token));
        settings.upstash_extra_roots = extra_roots();
        let app = spawn_with_settings(settings, None).await;
        let user = format!("tls-e2e-{}", rand::random::<u32>());
        let body = format!(r#"{{"username":"{user}"}}"#);

        let laptop = session_cookie(&app.post_login(&body, None).await).unwrap();
        let phone = session_cookie(&app.post_login(&body, None).await).unwrap();
        assert_eq!(app.get("/profile/", Some(&laptop)).await.status(), 200);
        let list: serde_json::Value = app
            .get("/sessions/", Some(&laptop))
            .await
            .json()
            .await
            .unwrap();
        let sessions = list["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 2, "{list}");
        let phone_id = sessions.iter().find(|s| s["current"] == false).unwrap()["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let ended = app
            .http
            .delete(app.url(&format!("/sessions/{phone_id}")))
            .header("cookie", &laptop)
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), 200);
        assert_eq!(app.get("/profile/", Some(&phone)).await.status(), 404);

        // 1,000 profile reads: no new handshake (the worker's connection is reused).
        let before = handshakes(&app).await;
        for _ in 0..1000 {
            assert_eq!(app.get("/profile/", Some(&laptop)).await.status(), 200);
        }
        let during = handshakes(&app).await - before;
        eprintln!("TLS handshakes: {before} before, {during} during 1,000 profile reads");
        assert_eq!(during, 0, "a handshake per request is not reuse");
        assert!(before <= 2, "{before} handshakes for a handful of requests");

        let all = app
            .http
            .post(app.url("/logout/all/"))
            .header("cookie", &laptop)
            .send()
            .await
            .unwrap();
        assert_eq!(all.status(), 200);
        assert_eq!(app.get("/profile/", Some(&laptop)).await.status(), 404);
    }

    #[tokio::test]
    async fn the_server_agrees_http2_and_a_thousand_calls_cost_one_handshake() {
        let Some((url, token)) = https_endpoint() else {
            return;
        };
        // What ALPN agrees with the same roots: HTTP/2.
        let mut probe = reqwest::Client::builder().use_rustls_tls();
        for root in extra_roots() {
            probe = probe.add_root_certificate(reqwest::Certificate::from_der(&root).unwrap());
        }
        let response = probe
            .build()
            .unwrap()
            .post(&url)
            .bearer_auth(&token)
            .body(r#"["PING"]"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);

        let mut config = ClientConfig::new(
            reqwest::Url::parse(&url).unwrap(),
            token.as_str(),
            Duration::from_secs(5),
        );
        config.extra_roots = extra_roots();
        let client = UpstashClient::new(config).unwrap();
        let key = format!("tls-e2e-{}", rand::random::<u32>());
        for i in 0..1000i64 {
            // Read-your-writes: each read sees the write before it.
            client
                .command(
                    &Cmd::new("SET").arg(key.as_str()).int(i),
                    RetryPolicy::Idempotent,
                )
                .await
                .unwrap();
            let read = client
                .command(&Cmd::new("GET").arg(key.as_str()), RetryPolicy::Idempotent)
                .await
                .unwrap();
            assert_eq!(read.as_str(), Some(i.to_string().as_str()));
        }
        client
            .command(&Cmd::new("DEL").arg(key.as_str()), RetryPolicy::Idempotent)
            .await
            .unwrap();
        eprintln!(
            "TLS handshakes for 2,001 calls: {}",
            client.tls_handshakes()
        );
        assert_eq!(client.tls_handshakes(), 1);
    }
}
