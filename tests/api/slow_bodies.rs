//! Slow request bodies: a body that does not arrive in full within `REQUEST_BODY_TIMEOUT_MS`
//! is answered `408` and its connection closed, and nothing is stored. The clients here speak
//! raw HTTP/1.1 over TCP, so they can stop or trickle mid-body.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{id_of, json, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;

/// The body time limit of these tests: short, so they stay fast.
const BODY_TIMEOUT: Duration = Duration::from_millis(200);

/// How long a test waits for the service to answer and close before failing: far past
/// [`BODY_TIMEOUT`], so a loaded machine cannot make the test fail, and short enough that the
/// code before the fix (which waited forever) fails in reasonable time.
const GIVE_UP: Duration = Duration::from_secs(20);

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.request_body_timeout = BODY_TIMEOUT).await
}

/// The head of a request to `path` whose body is announced as `length` bytes of JSON.
fn head(app: &TestApp, method: &str, path: &str, cookie: Option<&str>, length: usize) -> String {
    let host = app.address.trim_start_matches("http://");
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         {cookie}Content-Length: {length}\r\n\r\n"
    )
}

/// Reads what the service sends until it closes the connection (a reset after the answer
/// counts as closed); fails if it neither answers nor closes within [`GIVE_UP`].
async fn answer_then_close(socket: &mut tokio::net::tcp::OwnedReadHalf) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(GIVE_UP, async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        read.is_ok(),
        "the service neither answered nor closed the connection within {GIVE_UP:?} of an \
         incomplete body; received so far: {answer:?}"
    );
    answer
}

/// Checks a 408 answer: status, JSON error, `Connection: close`.
fn assert_408(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(lower.contains("content-type: application/json"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert!(body["error"].as_str().unwrap().contains("body"), "{body}");
}

/// Nothing was stored: no Upstash request was made (Upstash), or the memory store holds no
/// session (`sessions_live` on `/metrics`).
async fn assert_nothing_stored(app: &TestApp, upstash_requests_before: u64) {
    if app.upstash.is_some() {
        assert_eq!(app.upstash_requests(), upstash_requests_before);
    } else {
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        let live = metrics
            .lines()
            .find_map(|l| l.strip_prefix("sessions_live "))
            .expect("the sessions_live gauge");
        assert_eq!(live.trim(), "0", "sessions held by the memory store");
    }
}

async fn a_login_body_that_never_arrives_is_408_and_closes_the_connection(backend: Backend) {
    let app = app(backend).await;
    let body = r#"{"username":"eve"}"#;
    let socket = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut read, mut write) = socket.into_split();
    write
        .write_all(head(&app, "POST", "/login/", None, body.len()).as_bytes())
        .await
        .unwrap();
    // Then nothing.
    let answer = answer_then_close(&mut read).await;
    assert_408(&answer);
    // The body sent now lands on a closed connection: no login.
    let _ = write.write_all(body.as_bytes()).await;
    assert_nothing_stored(&app, 0).await;
}

async fn a_login_body_trickling_in_is_408_and_closes_the_connection(backend: Backend) {
    let app = app(backend).await;
    // A body announced as 20,000 bytes, sent one byte of white space (valid JSON padding)
    // every 20 ms: it would take 400 s to arrive, so the limit is what ends it.
    let socket = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut read, mut write) = socket.into_split();
    write
        .write_all(head(&app, "POST", "/login/", None, 20_000).as_bytes())
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        while write.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let answer = answer_then_close(&mut read).await;
    trickle.abort();
    assert_408(&answer);
    assert_nothing_stored(&app, 0).await;
}

async fn a_patch_body_that_never_arrives_is_408_and_changes_nothing(backend: Backend) {
    let app = app(backend).await;
    let (_, cookie) = app.login("alice").await;
    let requests = app.upstash_count();
    let patch = r#"{"locale":"fr"}"#;
    let socket = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut read, mut write) = socket.into_split();
    write
        .write_all(head(&app, "PATCH", "/profile/", Some(&cookie), patch.len()).as_bytes())
        .await
        .unwrap();
    let answer = answer_then_close(&mut read).await;
    assert_408(&answer);
    let _ = write.write_all(patch.as_bytes()).await;
    app.assert_upstash_requests_since(requests, 0);
    let profile = json(app.profile(Some(&cookie)).await).await;
    assert_eq!(profile["session_id"], id_of(&cookie).as_str());
    assert_eq!(profile["session_data"]["data"], serde_json::json!({}));
}

/// Sends the head of a chunked `POST` to `path`, then one chunk of one space every 20 ms,
/// never the last chunk; returns what the service sent until it closed.
async fn chunked_trickle(app: &TestApp, path: &str) -> String {
    let socket = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut read, mut write) = socket.into_split();
    let host = app.address.trim_start_matches("http://").to_owned();
    write
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        while write.write_all(b"1\r\n \r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let answer = answer_then_close(&mut read).await;
    trickle.abort();
    answer
}

async fn a_chunked_login_body_trickling_in_is_408_and_closes_the_connection(backend: Backend) {
    let app = app(backend).await;
    assert_408(&chunked_trickle(&app, "/login/").await);
    assert_nothing_stored(&app, 0).await;
}

async fn a_chunked_body_left_unread_does_not_keep_the_connection(backend: Backend) {
    // Routes that read no body answer at once; the trickle must not hold the connection
    // after that (actix-http would drain it for as long as it lasts).
    let app = app(backend).await;
    for path in ["/logout/", "/healthz", "/no-such-path"] {
        let answer = chunked_trickle(&app, path).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}: {answer}"
        );
    }
}

async fn a_chunked_login_body_sent_in_full_logs_in(backend: Backend) {
    let app = app(backend).await;
    let mut socket = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let host = app.address.trim_start_matches("http://").to_owned();
    let body = r#"{"username":"alice"}"#;
    let request = format!(
        "POST /login/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Logged in successfully"), "{answer}");
}

on_both_backends!(
    a_chunked_login_body_sent_in_full_logs_in,
    a_login_body_that_never_arrives_is_408_and_closes_the_connection,
    a_login_body_trickling_in_is_408_and_closes_the_connection,
    a_patch_body_that_never_arrives_is_408_and_changes_nothing,
    a_chunked_login_body_trickling_in_is_408_and_closes_the_connection,
    a_chunked_body_left_unread_does_not_keep_the_connection,
);
