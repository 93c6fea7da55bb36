//! The Upstash REST client against wiremock: exact request forms, reply and error parsing,
//! the sync token, timeouts and retries.

use std::time::{Duration, Instant};

use upstash_sessions::upstash::{
    ClientConfig, Command, Reply, RetryPolicy, UpstashClient, UpstashError,
};
use wiremock::{
    matchers::{body_json, body_string, header, method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

fn client(server: &MockServer, timeout_ms: u64) -> UpstashClient {
    let config = ClientConfig::new(
        reqwest::Url::parse(&server.uri()).unwrap(),
        "secret-token",
        Duration::from_millis(timeout_ms),
    );
    UpstashClient::new(config).unwrap()
}

fn ok(result: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({ "result": result }))
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Answers every request with `answer` (exactly `calls` requests when given) and returns the
/// error `command` ends with under a client with a `timeout_ms` budget.
async fn failure(
    answer: ResponseTemplate,
    calls: Option<u64>,
    timeout_ms: u64,
    command: Command<'_>,
    retry: RetryPolicy,
) -> UpstashError {
    let server = MockServer::start().await;
    let mock = Mock::given(method("POST")).respond_with(answer);
    match calls {
        Some(n) => mock.expect(n),
        None => mock,
    }
    .mount(&server)
    .await;
    client(&server, timeout_ms)
        .command(&command, retry)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_command_is_posted_as_a_json_array_with_bearer_auth_and_exact_content_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("authorization", "Bearer secret-token"))
        .and(header("content-type", "application/json"))
        .and(header("upstash-encoding", "base64"))
        .and(body_string(
            r#"["SET","session:x","{\"a\":1}","EX","900","NX"]"#,
        ))
        .respond_with(ok("OK".into()))
        .expect(1)
        .mount(&server)
        .await;
    let reply = client(&server, 1000)
        .command(
            &Command::new("SET")
                .arg("session:x")
                .arg(r#"{"a":1}"#)
                .arg("EX")
                .int(900)
                .arg("NX"),
            RetryPolicy::Once,
        )
        .await
        .unwrap();
    assert_eq!(reply, Reply::Str("OK".into()));
}

#[tokio::test]
async fn base64_results_are_decoded_and_nulls_and_integers_kept() {
    let server = MockServer::start().await;
    Mock::given(body_json(serde_json::json!(["GETEX", "k", "EX", "900"])))
        .respond_with(ok(b64(r#"{"user":"é😀"}"#).into()))
        .mount(&server)
        .await;
    Mock::given(body_json(serde_json::json!(["GET", "missing"])))
        .respond_with(ok(serde_json::Value::Null))
        .mount(&server)
        .await;
    Mock::given(body_json(serde_json::json!(["DEL", "k"])))
        .respond_with(ok(1.into()))
        .mount(&server)
        .await;
    let c = client(&server, 1000);
    let r = c
        .command(
            &Command::new("GETEX").arg("k").arg("EX").int(900),
            RetryPolicy::Once,
        )
        .await
        .unwrap();
    assert_eq!(r, Reply::Str(r#"{"user":"é😀"}"#.into()));
    let r = c
        .command(&Command::new("GET").arg("missing"), RetryPolicy::Once)
        .await
        .unwrap();
    assert_eq!(r, Reply::Nil);
    let r = c
        .command(&Command::new("DEL").arg("k"), RetryPolicy::Once)
        .await
        .unwrap();
    assert_eq!(r, Reply::Int(1));
}

#[tokio::test]
async fn transactions_go_to_multi_exec_and_carry_per_item_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/multi-exec"))
        .and(body_json(serde_json::json!([
            ["SET", "a", "1"],
            ["INCR", "a"]
        ])))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"result": "OK"}, {"error": "ERR value is not an integer"}
        ])))
        .mount(&server)
        .await;
    let items = client(&server, 1000)
        .transaction(
            &[
                Command::new("SET").arg("a").arg("1"),
                Command::new("INCR").arg("a"),
            ],
            RetryPolicy::Once,
        )
        .await
        .unwrap();
    assert_eq!(items[0], Ok(Reply::Str("OK".into())));
    assert_eq!(items[1], Err("ERR value is not an integer".into()));
}

#[tokio::test]
async fn pipelines_go_to_pipeline_and_a_short_answer_is_a_protocol_error() {
    let server = MockServer::start().await;
    Mock::given(path("/pipeline"))
        .and(body_json(serde_json::json!([["GET", "a"], ["GET", "b"]])))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"result": b64("1")}, {"result": null}
        ])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/pipeline"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!([{"result": null}])),
        )
        .mount(&server)
        .await;
    let c = client(&server, 1000);
    let gets = [Command::new("GET").arg("a"), Command::new("GET").arg("b")];
    let items = c.pipeline(&gets, RetryPolicy::Once).await.unwrap();
    assert_eq!(items, [Ok(Reply::Str("1".into())), Ok(Reply::Nil)]);
    let err = c.pipeline(&gets, RetryPolicy::Once).await.unwrap_err();
    assert!(
        matches!(err, UpstashError::Protocol(ref m) if m.contains("expected 2 results")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_discarded_transaction_is_one_command_error() {
    let server = MockServer::start().await;
    Mock::given(path("/multi-exec"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"error": "EXECABORT Transaction discarded"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server, 1000)
        .transaction(&[Command::new("BOGUS")], RetryPolicy::Idempotent)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstashError::Command(m) if m.contains("EXECABORT")));
}

#[tokio::test]
async fn the_sync_token_of_each_response_is_sent_with_the_next_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(|req: &Request| {
            let seen = req
                .headers
                .get("upstash-sync-token")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let next = format!(
                "token-after-{}",
                if seen.is_empty() { "none" } else { &seen }
            );
            ResponseTemplate::new(200)
                .insert_header("upstash-sync-token", next.as_str())
                .set_body_json(serde_json::json!({ "result": b64(&seen) }))
        })
        .mount(&server)
        .await;
    let c = client(&server, 1000);
    let ping = Command::new("PING");
    let first = c.command(&ping, RetryPolicy::Once).await.unwrap();
    let second = c.command(&ping, RetryPolicy::Once).await.unwrap();
    let third = c.command(&ping, RetryPolicy::Once).await.unwrap();
    assert_eq!(first, Reply::Str(String::new()));
    assert_eq!(second, Reply::Str("token-after-none".into()));
    assert_eq!(third, Reply::Str("token-after-token-after-none".into()));
}

#[tokio::test]
async fn a_500_is_retried_for_idempotent_commands() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(1.into()))
        .mount(&server)
        .await;
    let r = client(&server, 2000)
        .command(&Command::new("DEL").arg("k"), RetryPolicy::Idempotent)
        .await
        .unwrap();
    assert_eq!(r, Reply::Int(1));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_call_marked_once_is_never_retried() {
    let err = failure(
        ResponseTemplate::new(503),
        Some(1),
        2000,
        Command::new("INCR").arg("k"),
        RetryPolicy::Once,
    )
    .await;
    assert!(matches!(err, UpstashError::Status { status: 503, .. }));
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_delay() {
    waits_out_retry_after(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(serde_json::json!({"error": "ERR max requests limit exceeded"})),
    )
    .await;
}

/// The first answer is `refusal` (with `Retry-After: 1`), the second a success: the call must
/// succeed, and no sooner than a second later.
async fn waits_out_retry_after(refusal: ResponseTemplate) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(refusal)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(1.into()))
        .mount(&server)
        .await;
    let started = Instant::now();
    let r = client(&server, 3000)
        .command(&Command::new("DEL").arg("k"), RetryPolicy::Idempotent)
        .await
        .unwrap();
    assert_eq!(r, Reply::Int(1));
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_fails_at_once() {
    let err = failure(
        ResponseTemplate::new(429).insert_header("retry-after", "30"),
        Some(1),
        1000,
        Command::new("DEL").arg("k"),
        RetryPolicy::Idempotent,
    )
    .await;
    assert!(matches!(err, UpstashError::RateLimited { .. }));
}

#[tokio::test]
async fn a_401_is_unauthorized_and_never_retried() {
    let err = failure(
        ResponseTemplate::new(401)
            .set_body_json(serde_json::json!({"error": "WRONGPASS invalid or missing auth token"})),
        Some(1),
        1000,
        Command::new("GET").arg("k"),
        RetryPolicy::Idempotent,
    )
    .await;
    assert!(matches!(err, UpstashError::Unauthorized(m) if m.starts_with("WRONGPASS")));
}

#[tokio::test]
async fn a_400_redis_error_is_a_command_error_and_never_retried() {
    let err = failure(
        ResponseTemplate::new(400)
            .set_body_json(serde_json::json!({"error": "ERR DB capacity quota exceeded"})),
        Some(1),
        1000,
        Command::new("GET").arg("k"),
        RetryPolicy::Idempotent,
    )
    .await;
    assert!(matches!(err, UpstashError::Command(m) if m.contains("quota")));
}

#[tokio::test]
async fn a_non_json_200_body_is_retried_then_reported() {
    let err = failure(
        ResponseTemplate::new(200).set_body_string("error code: 1016"),
        Some(6),
        3000,
        Command::new("GET").arg("k"),
        RetryPolicy::Idempotent,
    )
    .await;
    assert!(matches!(err, UpstashError::NotJson(_)), "{err}");
}

#[tokio::test]
async fn a_stalled_upstash_fails_within_the_deadline() {
    let started = Instant::now();
    let err = failure(
        ok(1.into()).set_delay(Duration::from_secs(10)),
        None,
        600,
        Command::new("GET").arg("k"),
        RetryPolicy::Idempotent,
    )
    .await;
    let took = started.elapsed();
    assert!(matches!(err, UpstashError::Timeout(_)), "{err}");
    assert!(took >= Duration::from_millis(550), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = ClientConfig::new(
        reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        "t",
        Duration::from_millis(500),
    );
    let err = UpstashClient::new(config)
        .unwrap()
        .command(&Command::new("PING"), RetryPolicy::Idempotent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstashError::Transport(_) | UpstashError::Timeout(_)),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_never_appears_in_debug_output() {
    let server = MockServer::start().await;
    let c = client(&server, 1000);
    assert!(!format!("{c:?}").contains("secret-token"));
    let config = ClientConfig::new(
        reqwest::Url::parse(&server.uri()).unwrap(),
        "secret-token",
        Duration::from_secs(1),
    );
    assert!(!format!("{config:?}").contains("secret-token"));
}

#[tokio::test]
async fn a_503_with_retry_after_is_waited_out() {
    waits_out_retry_after(ResponseTemplate::new(503).insert_header("retry-after", "1")).await;
}

#[tokio::test]
async fn a_reply_of_the_wrong_shape_is_not_retried() {
    let err = failure(
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"result": true})),
        Some(1),
        1000,
        Command::new("GET").arg("k"),
        RetryPolicy::Idempotent,
    )
    .await;
    assert!(matches!(err, UpstashError::Protocol(_)), "{err}");
}

#[tokio::test]
async fn commands_issued_together_share_one_pipeline_request_and_keep_their_own_results() {
    let server = MockServer::start().await;
    Mock::given(path("/pipeline"))
        .and(body_json(serde_json::json!([
            ["GETEX", "a", "EX", "900"],
            ["GETEX", "b", "EX", "900"],
            ["GETEX", "c", "EX", "900"]
        ])))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"result": b64("A")}, {"result": null}, {"error": "WRONGTYPE x"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let c = std::sync::Arc::new(client(&server, 1000));
    let get = |k: &'static str| {
        let c = c.clone();
        async move {
            c.command_coalesced(&Command::new("GETEX").arg(k).arg("EX").int(900))
                .await
        }
    };
    let (a, b, x) = tokio::join!(get("a"), get("b"), get("c"));
    assert_eq!(a.unwrap(), Reply::Str("A".into()));
    assert_eq!(b.unwrap(), Reply::Nil);
    assert!(matches!(x.unwrap_err(), UpstashError::Command(m) if m == "WRONGTYPE x"));
}

#[tokio::test]
async fn a_failed_pipeline_fails_each_of_its_callers() {
    let server = MockServer::start().await;
    Mock::given(path("/pipeline"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": "WRONGPASS"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = std::sync::Arc::new(client(&server, 1000));
    let (ga, gb) = (
        Command::new("GETEX").arg("a"),
        Command::new("GETEX").arg("b"),
    );
    let (a, b) = tokio::join!(c.command_coalesced(&ga), c.command_coalesced(&gb));
    assert!(matches!(a.unwrap_err(), UpstashError::Unauthorized(_)));
    assert!(matches!(b.unwrap_err(), UpstashError::Unauthorized(_)));
}

#[tokio::test]
async fn a_command_alone_is_sent_as_a_single_command() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .and(body_json(serde_json::json!(["GETEX", "a"])))
        .respond_with(ok(serde_json::Value::Null))
        .expect(1)
        .mount(&server)
        .await;
    let c = std::sync::Arc::new(client(&server, 1000));
    assert_eq!(
        c.command_coalesced(&Command::new("GETEX").arg("a"))
            .await
            .unwrap(),
        Reply::Nil
    );
}

#[tokio::test]
async fn a_sync_token_on_an_error_response_is_not_taken() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).insert_header("upstash-sync-token", "good"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("upstash-sync-token", "from-an-error")
                .set_body_string("proxy error"),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok("PONG".into()))
        .with_priority(3)
        .mount(&server)
        .await;
    let c = client(&server, 1000);
    let ping = Command::new("PING");
    // The first answer has no JSON body: an error, but its token is from a 200.
    c.command(&ping, RetryPolicy::Once).await.unwrap_err();
    c.command(&ping, RetryPolicy::Once).await.unwrap_err();
    c.command(&ping, RetryPolicy::Once).await.unwrap();
    let sent: Vec<Option<String>> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("upstash-sync-token")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(sent, [None, Some("good".into()), Some("good".into())]);
}

/// A client for `url` whose reply bound is 1 MiB, with a 5 s budget.
fn client_reading_at_most_1_mib(url: &str) -> UpstashClient {
    let mut config = ClientConfig::new(
        reqwest::Url::parse(url).unwrap(),
        "secret-token",
        Duration::from_secs(5),
    );
    config.max_reply_bytes = 1 << 20;
    UpstashClient::new(config).unwrap()
}

#[tokio::test]
async fn a_reply_larger_than_the_bound_fails_at_once_without_a_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 2 << 20]))
        .expect(1)
        .mount(&server)
        .await;
    let err = client_reading_at_most_1_mib(&server.uri())
        .command(&Command::new("PING"), RetryPolicy::Idempotent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstashError::TooLarge { limit } if limit == 1 << 20),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_streamed_reply_is_cut_off_at_the_bound_without_being_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that streams an endless chunked body (no Content-Length): the client must
    // stop reading at the bound rather than buffer it all.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "x".repeat(64 << 10));
        // At most 64 MiB; the client hangs up long before.
        for _ in 0..1024 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            counter.fetch_add(64 << 10, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let err = client_reading_at_most_1_mib(&format!("http://{address}"))
        .command(&Command::new("PING"), RetryPolicy::Once)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstashError::TooLarge { .. }), "{err:?}");
    // Socket buffers hold a few MiB at most: far less than the 64 MiB on offer.
    assert!(sent.load(std::sync::atomic::Ordering::SeqCst) < 32 << 20);
}
