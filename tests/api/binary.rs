//! The real binary: start-up errors, logs without secrets, graceful shutdown on SIGTERM.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use wiremock::{matchers::method, Mock, ResponseTemplate};

use crate::fake_upstash::{FakeUpstash, FAKE_TOKEN};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with a clean environment plus `vars`, run in an empty directory so no `.env`
/// is picked up.
pub(crate) fn binary(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upstash-sessions"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

/// Stops the binary (SIGTERM, then SIGKILL after 20 s); its exit code and its log.
pub(crate) fn stop(child: &mut Child) -> (Option<i32>, String) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// `POST /login/` as alice.
async fn login(client: &reqwest::Client, base: &str) -> reqwest::Response {
    client
        .post(format!("{base}/login/"))
        .header("content-type", "application/json")
        .body(r#"{"username":"alice"}"#)
        .send()
        .await
        .unwrap()
}

/// The binary on a free port with `vars`, once it answers `/healthz`; and its base URL.
pub(crate) async fn start(vars: &[(&str, &str)]) -> (Child, String) {
    let port = free_port().to_string();
    let mut all = vec![("PORT", port.as_str())];
    all.extend_from_slice(vars);
    let child = binary(&all).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    (child, base)
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the binary did not start");
}

#[test]
fn an_invalid_setting_stops_the_binary_with_one_line_naming_the_variable() {
    for (vars, needle) in [
        (vec![("PORT", "eighty")], "PORT=\"eighty\" is invalid"),
        (vec![("SESSION_TTL_SECONDS", "0")], "SESSION_TTL_SECONDS"),
        (
            vec![("UPSTASH_REDIS_REST_URL", "https://x.upstash.io")],
            "UPSTASH_REDIS_REST_TOKEN is not set",
        ),
        (
            vec![("SESSION_SECRET", "short")],
            "SESSION_SECRET is invalid",
        ),
        (vec![("RUST_LOG", "[[[")], "RUST_LOG=\"[[[\" is invalid"),
        (
            vec![("CORS_ALLOWED_ORIGINS", "*")],
            "CORS_ALLOWED_ORIGINS=\"*\" is invalid: a wildcard cannot be combined with credentials",
        ),
        (
            vec![("RATE_LIMIT_LOGIN", "20/day")],
            "RATE_LIMIT_LOGIN=\"20/day\" is invalid: N/s, N/m or N/h",
        ),
        (
            vec![("RATE_LIMIT_REQUESTS", "-1/s")],
            "RATE_LIMIT_REQUESTS=\"-1/s\" is invalid",
        ),
        (
            vec![("RATE_LIMIT_MAX_CLIENTS", "many")],
            "RATE_LIMIT_MAX_CLIENTS=\"many\" is invalid",
        ),
        (
            vec![("TRUSTED_PROXIES", "10.0.0.0/8,lb")],
            "TRUSTED_PROXIES=\"10.0.0.0/8,lb\" is invalid",
        ),
        (
            vec![("UPSTASH_MAX_COMMANDS_PER_SECOND", "0")],
            "UPSTASH_MAX_COMMANDS_PER_SECOND=\"0\" is invalid",
        ),
    ] {
        let output = binary(&vars).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{vars:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn a_malformed_env_file_line_stops_the_binary_naming_the_file_and_line() {
    let dir =
        std::env::temp_dir().join(format!("upstash-sessions-dotenv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "# settings\nHOST=127.0.0.1\nPORT 8129\nSESSION_SECRET=never-shown-secret-never-shown-secret\n",
    )
    .unwrap();
    let output = binary(&[]).current_dir(&dir).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(".env: line 3 is not KEY=VALUE"), "{stderr}");
    assert!(
        !stderr.contains("never-shown") && !stderr.contains("8129"),
        "{stderr}"
    );
}

#[test]
fn an_unclosed_quote_in_the_env_file_is_named_as_such_on_its_line() {
    let dir =
        std::env::temp_dir().join(format!("upstash-sessions-dotenv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "# settings\n\nHOST=127.0.0.1\nSESSION_SECRET=\"never-shown-secret-never-shown\nPORT=8129\n",
    )
    .unwrap();
    let output = binary(&[]).current_dir(&dir).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(".env: line 4 opens a quote that is never closed"),
        "{stderr}"
    );
    assert!(!stderr.contains("never-shown"), "{stderr}");
}

/// Runs the binary to its end, or fails the test after 30 s (a binary that serves instead
/// of answering never ends by itself).
fn run_to_end(command: &mut Command) -> (Option<i32>, String, String) {
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the binary did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn help_says_what_the_binary_is_and_lists_every_setting_with_its_default() {
    for flag in ["--help", "-h"] {
        let port = free_port().to_string();
        let (code, stdout, stderr) = run_to_end(binary(&[("PORT", &port)]).arg(flag));
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.starts_with("upstash-sessions "), "{stdout}");
        assert!(stdout.contains("Usage: upstash-sessions"), "{stdout}");
        for variable in upstash_sessions::settings::VARIABLES {
            assert!(stdout.contains(variable.name), "{} missing", variable.name);
        }
        assert!(stdout.contains("  PORT=8000\n"), "{stdout}");
        assert!(stdout.contains("  SESSION_TTL_SECONDS=900\n"), "{stdout}");
        assert!(stderr.is_empty(), "{stderr}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let (code, stdout, _) = run_to_end(binary(&[]).arg("--version"));
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        format!("upstash-sessions {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_argument_is_a_usage_error_with_exit_code_2() {
    for argument in ["--port=9000", "serve", "-x"] {
        let (code, stdout, stderr) = run_to_end(binary(&[]).arg(argument));
        assert_eq!(code, Some(2), "{argument}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("unknown argument"), "{stderr}");
        assert!(stderr.contains("--help"), "{stderr}");
    }
}

#[tokio::test]
async fn logs_never_carry_session_ids_cookies_or_the_token() {
    let fake = FakeUpstash::start().await;
    let (mut child, base) = start(&[
        ("RUST_LOG", "trace"),
        ("UPSTASH_REDIS_REST_URL", &fake.uri()),
        ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN),
        (
            "UPSTASH_REDIS_REST_TOKEN_PREVIOUS",
            "old-token-never-logged",
        ),
    ])
    .await;
    let client = reqwest::Client::new();
    let response = login(&client, &base).await;
    let cookie = crate::helpers::session_cookie(&response).unwrap();
    let id = crate::helpers::id_of(&cookie);
    for path in ["/profile/", "/sessions/"] {
        client
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
    }
    // The application's data never reaches the logs, whatever happens to it.
    let marker = "data-value-that-must-not-be-logged";
    for body in [
        format!(r#"{{"csrf":"{marker}"}}"#),
        format!(r#"{{"csrf":"{marker}","blob":"{}"}}"#, "x".repeat(17_000)),
        format!(r#"[{{"csrf":"{marker}"}}]"#),
    ] {
        client
            .patch(format!("{base}/profile/"))
            .header("cookie", &cookie)
            .header("content-type", "application/merge-patch+json")
            .body(body)
            .send()
            .await
            .unwrap();
    }
    client
        .post(format!("{base}/login/"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"username":"carol","data":{{"m":"{marker}"}}}}"#
        ))
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/profile/"))
        .header("cookie", "session_id=forged")
        .send()
        .await
        .unwrap();
    // A second session of the same user, ended by id (its id is in the path), then all.
    let other = login(&client, &base).await;
    let other_id = crate::helpers::id_of(&crate::helpers::session_cookie(&other).unwrap());
    let ended = client
        .delete(format!("{base}/sessions/{other_id}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    client
        .post(format!("{base}/logout/all/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (status, logs) = stop(&mut child);
    assert!(
        !logs.contains(&other_id),
        "a session id from a path leaked into the logs"
    );
    assert!(logs.contains("ended_by_user"), "{logs}");
    assert_eq!(status, Some(0), "{logs}");
    assert!(logs.contains("session_created"), "{logs}");
    assert!(logs.contains("cookie_rejected"), "{logs}");
    assert!(!logs.contains(&id), "a session id leaked into the logs");
    assert!(
        !logs.contains(&id.replace('-', "")),
        "a session id leaked into the logs"
    );
    assert!(!logs.contains(FAKE_TOKEN), "the token leaked into the logs");
    assert!(!logs.contains("old-token-never-logged"), "{logs}");
    // Where the signing key came from is said once, at start.
    let key_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("cookie signing key ready"))
        .collect();
    assert_eq!(key_lines.len(), 1, "{logs}");
    assert!(
        key_lines[0].contains("derived from UPSTASH_REDIS_REST_TOKEN")
            && key_lines[0].contains("also_verifying_with=\"UPSTASH_REDIS_REST_TOKEN_PREVIOUS\""),
        "{}",
        key_lines[0]
    );
    assert!(!logs.contains(marker), "session data leaked into the logs");
    assert!(logs.contains("session_updated"), "{logs}");
    // Captured through a pipe, not a terminal: plain text, no colour escapes.
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escapes in piped logs: {logs}"
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let fake = FakeUpstash::start().await;
    let (mut child, base) = start(&[
        ("UPSTASH_REDIS_REST_URL", &fake.uri()),
        ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN),
    ])
    .await;
    let client = reqwest::Client::new();
    let response = login(&client, &base).await;
    let cookie = crate::helpers::session_cookie(&response).unwrap();
    // The next Upstash answer takes 0.6 s (under the 1 s attempt budget): the profile read is in flight when SIGTERM comes.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"result": null}))
                .set_delay(Duration::from_millis(600)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.server)
        .await;
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/profile/");
        async move { client.get(url).header("cookie", cookie).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, logs) = tokio::task::spawn_blocking(move || stop(&mut child))
        .await
        .unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(
        response.status(),
        404,
        "the delayed answer said: no such session"
    );
    assert_eq!(status, Some(0), "{logs}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let (mut child, base) = start(&[("LOG_FORMAT", "json"), ("COOKIE_SECURE", "false")]).await;
    reqwest::Client::new()
        .post(format!("{base}/login/"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-42")
        .body(r#"{"username":"alice"}"#)
        .send()
        .await
        .unwrap();
    let (status, logs) = stop(&mut child);
    assert_eq!(status, Some(0), "{logs}");
    let mut created = None;
    for line in logs.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["event"] == "session_created" {
            created = Some(value);
        }
    }
    let created = created.expect("a session_created line");
    assert_eq!(created["span"]["request_id"], "req-42", "{created}");
    assert_eq!(created["span"]["route"], "/login/", "{created}");
}

#[test]
fn every_setting_is_in_env_example_and_the_readme_table() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/.env.example")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    for var in upstash_sessions::settings::VARIABLES.iter().map(|v| v.name) {
        assert!(example.contains(var), "{var} missing from .env.example");
        assert!(
            readme.contains(&format!("| `{var}` |")),
            "{var} missing from the README table"
        );
    }
}
