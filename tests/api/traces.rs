//! Traces: the real binary exporting OTLP/HTTP to an in-process receiver (wiremock on port 0,
//! bodies decoded with opentelemetry-proto), in front of the fake Upstash.

use std::time::Duration;

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{any_value::Value, KeyValue},
    trace::v1::{span::SpanKind, Span},
};
use prost::Message;
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

use crate::{
    binary::{start, stop},
    fake_upstash::{FakeUpstash, FAKE_TOKEN},
    helpers::{id_of, session_cookie},
};

/// An OTLP/HTTP receiver answering every export with `response`.
async fn collector(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// Every export body the receiver got.
async fn bodies(collector: &MockServer) -> Vec<Vec<u8>> {
    collector
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.body)
        .collect()
}

/// Every span in protobuf export bodies, with its resource's `service.name`.
fn spans(bodies: &[Vec<u8>]) -> Vec<(String, Span)> {
    let mut all = Vec::new();
    for body in bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    all.push((service.clone(), span));
                }
            }
        }
    }
    all
}

/// An attribute as text (strings as they are, integers in decimal).
fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The binary on the fake Upstash, exporting to `collector` with `extra` settings.
async fn traced(
    fake: &FakeUpstash,
    collector: &str,
    extra: &[(&str, &str)],
) -> (std::process::Child, String) {
    let mut vars = vec![
        ("UPSTASH_REDIS_REST_URL", fake.uri()),
        ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.to_owned()),
        ("COOKIE_SECURE", "false".to_owned()),
        ("WORKERS", "1".to_owned()),
    ];
    for (k, v) in extra {
        vars.push((k, v.to_string()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start(&vars).await
}

/// Logs in as `user` and reads the profile once, both with the caller's `traceparent`;
/// returns the cookie.
async fn login_and_read(client: &reqwest::Client, base: &str, user: &str) -> String {
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let login = client
        .post(format!("{base}/login/"))
        .header("content-type", "application/json")
        .header("traceparent", &traceparent)
        .body(format!(r#"{{"username":"{user}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = session_cookie(&login).unwrap();
    let profile = client
        .get(format!("{base}/profile/"))
        .header("cookie", &cookie)
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 200);
    cookie
}

#[tokio::test]
async fn the_callers_trace_continues_through_the_server_span_into_the_upstash_client_span() {
    let fake = FakeUpstash::start().await;
    let receiver = collector(ResponseTemplate::new(200)).await;
    // No scheduled export: what arrives was flushed at shutdown.
    let (mut child, base) = traced(
        &fake,
        &receiver.uri(),
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    login_and_read(&client, &base, "tracy").await;
    let (status, logs) = stop(&mut child);
    assert_eq!(status, Some(0), "{logs}");

    let spans = spans(&bodies(&receiver).await);
    let server = spans
        .iter()
        .map(|(service, span)| {
            assert_eq!(service, "upstash-sessions");
            span
        })
        .find(|s| s.name == "GET /profile/")
        .unwrap_or_else(|| panic!("no server span: {spans:?}"));
    assert_eq!(hex(&server.trace_id), CALLER_TRACE);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.kind, SpanKind::Server as i32);
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/profile/"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            attribute(&server.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
    let getex = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "GETEX" && s.parent_span_id == server.span_id)
        .unwrap_or_else(|| panic!("no GETEX client span under the server span: {spans:?}"));
    assert_eq!(getex.trace_id, server.trace_id);
    assert_eq!(getex.kind, SpanKind::Client as i32);
    for (key, value) in [
        ("db.system.name", "redis"),
        ("db.operation.name", "GETEX"),
        ("http.response.status_code", "200"),
        ("upstash.retries", "0"),
    ] {
        assert_eq!(
            attribute(&getex.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
    // Login: its server span and its transaction's client span, in the caller's trace.
    let login = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "POST /login/")
        .unwrap();
    assert_eq!(hex(&login.trace_id), CALLER_TRACE);
    assert!(spans.iter().any(|(_, s)| s.parent_span_id == login.span_id
        && s.kind == SpanKind::Client as i32
        && attribute(&s.attributes, "upstash.endpoint").as_deref() == Some("multi-exec")));

    // Log lines written inside the request carry its trace and span ids.
    assert!(
        logs.lines()
            .any(|l| l.contains(&format!("\"trace_id\":\"{CALLER_TRACE}\""))
                && l.contains("\"span_id\":\"")),
        "{logs}"
    );
    // Nothing about the trace goes to Upstash.
    for request in fake.server.received_requests().await.unwrap() {
        assert!(request.headers.get("traceparent").is_none());
        assert!(request.headers.get("tracestate").is_none());
    }
}

#[tokio::test]
async fn no_token_cookie_session_id_or_username_is_in_any_exported_byte_in_either_encoding() {
    for protocol in ["http/protobuf", "http/json"] {
        let fake = FakeUpstash::start().await;
        let receiver = collector(ResponseTemplate::new(200)).await;
        let (mut child, base) = traced(
            &fake,
            &receiver.uri(),
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)],
        )
        .await;
        let client = reqwest::Client::new();
        let user = "unmistakable-user-name";
        let cookie = login_and_read(&client, &base, user).await;
        let patch = client
            .patch(format!("{base}/profile/"))
            .header("cookie", &cookie)
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"secret-data":"unmistakable-value"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(patch.status(), 200);
        let id = id_of(&cookie);
        let ended = client
            .delete(format!("{base}/sessions/{id}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), 200);
        let (status, logs) = stop(&mut child);
        assert_eq!(status, Some(0), "{logs}");

        let requests = receiver.received_requests().await.unwrap();
        assert!(!requests.is_empty(), "{protocol}: nothing exported");
        let expected_type = match protocol {
            "http/json" => "application/json",
            _ => "application/x-protobuf",
        };
        let mut all = Vec::new();
        for request in &requests {
            assert_eq!(
                request.headers.get("content-type").unwrap(),
                expected_type,
                "{protocol}"
            );
            all.extend_from_slice(&request.body);
        }
        let text = String::from_utf8_lossy(&all);
        let cookie_value = cookie.split_once('=').unwrap().1;
        for secret in [
            FAKE_TOKEN,
            cookie_value,
            &id,
            &id.replace('-', ""),
            user,
            "unmistakable-value",
            "secret-data",
        ] {
            assert!(
                !text.contains(secret),
                "{protocol}: {secret:?} was exported"
            );
        }
        // The export did carry the spans (so the search above searched something), and the
        // route of the session-id path is its pattern.
        assert!(text.contains("GET /profile/"), "{protocol}");
        assert!(
            text.contains("DELETE /sessions/{session_id}"),
            "{protocol}: {text}"
        );
    }
}

/// Logs in and reads the profile `n` times, every answer as it would be without traces.
async fn exercise(base: &str, n: usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let cookie = login_and_read(&client, base, "bob").await;
    for _ in 0..n {
        let response = client
            .get(format!("{base}/profile/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["session_data"]["user"], "bob");
    }
}

fn dropped(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("otel_spans_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_collector_that_hangs_or_is_down_changes_no_answer_and_costs_only_counted_spans() {
    let hanging = collector(ResponseTemplate::new(200).set_delay(Duration::from_secs(600))).await;
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for endpoint in [hanging.uri(), down] {
        let fake = FakeUpstash::start().await;
        let (mut child, base) = traced(
            &fake,
            &endpoint,
            &[
                ("OTEL_BSP_SCHEDULE_DELAY", "10"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
                ("SHUTDOWN_TIMEOUT_SECONDS", "2"),
            ],
        )
        .await;
        exercise(&base, 40).await;
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // 80-odd spans through a queue of 4 whose export never succeeds.
        assert!(dropped(&metrics) > 0, "{endpoint}: {metrics}");
        assert!(metrics.contains("otel_spans_exported_total 0"), "{metrics}");
        // Shutdown gives up on the export within its own timeout: exit 0, not killed.
        let (status, logs) = stop(&mut child);
        assert_eq!(status, Some(0), "{endpoint}: {logs}");
    }
}

#[tokio::test]
async fn tracing_is_off_without_an_endpoint_and_metrics_say_nothing_of_spans() {
    let fake = FakeUpstash::start().await;
    let (mut child, base) = start(&[
        ("UPSTASH_REDIS_REST_URL", &fake.uri()),
        ("UPSTASH_REDIS_REST_TOKEN", FAKE_TOKEN),
        ("OTEL_SERVICE_NAME", "configured-but-off"),
        ("LOG_FORMAT", "json"),
    ])
    .await;
    let client = reqwest::Client::new();
    login_and_read(&client, &base, "offline").await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("otel_spans"), "{metrics}");
    let (status, logs) = stop(&mut child);
    assert_eq!(status, Some(0));
    assert!(!logs.contains("trace_id"), "{logs}");
}

#[tokio::test]
async fn an_auto_pipelined_request_links_to_every_callers_server_span() {
    let fake = FakeUpstash::start().await;
    let receiver = collector(ResponseTemplate::new(200)).await;
    let (mut child, base) = traced(&fake, &receiver.uri(), &[]).await;
    let client = reqwest::Client::new();
    let cookie = login_and_read(&client, &base, "many").await;
    // Bursts of concurrent reads on the one worker until one shared `/pipeline` carried
    // several GETEXs (bounded: a few bursts suffice).
    let shared = |names: &[Vec<String>]| {
        names
            .iter()
            .any(|n| n.len() > 1 && n.iter().all(|c| c == "GETEX"))
    };
    for _ in 0..50 {
        let reads = (0..16).map(|_| {
            client
                .get(format!("{base}/profile/"))
                .header("cookie", &cookie)
                .send()
        });
        for response in futures_util::future::join_all(reads).await {
            assert_eq!(response.unwrap().status(), 200);
        }
        if shared(&fake.command_names()) {
            break;
        }
    }
    assert!(shared(&fake.command_names()), "no read was ever pipelined");
    let (status, logs) = stop(&mut child);
    assert_eq!(status, Some(0), "{logs}");

    let spans = spans(&bodies(&receiver).await);
    let servers: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "GET /profile/")
        .collect();
    let pipelines: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "pipeline GETEX")
        .collect();
    assert!(!pipelines.is_empty(), "{spans:?}");
    for pipeline in pipelines {
        let size: usize = attribute(&pipeline.attributes, "db.operation.batch.size")
            .unwrap()
            .parse()
            .unwrap();
        assert!(size > 1);
        assert_eq!(pipeline.links.len(), size, "one link per caller");
        // Each link is a server span of a profile read; the parent is the first of them.
        for link in &pipeline.links {
            assert!(servers
                .iter()
                .any(|s| s.span_id == link.span_id && s.trace_id == link.trace_id));
        }
        assert_eq!(pipeline.parent_span_id, pipeline.links[0].span_id);
        assert_eq!(pipeline.trace_id, pipeline.links[0].trace_id);
    }
}
