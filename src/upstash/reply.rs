//! Parsing of REST API bodies into typed [`Reply`] values.
//!
//! Single commands answer `{"result": X}` or `{"error": "..."}`. Pipelines and transactions
//! answer an array with one such object per command, or a single error object when a
//! transaction was discarded. With `Upstash-Encoding: base64` every string in `result` is
//! base64 except a bare `"OK"`; errors are never encoded.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::Value;

use super::UpstashError;

/// A Redis reply as the REST API carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// JSON `null`: no value (a missing key, for instance).
    Nil,
    /// A JSON integer.
    Int(i64),
    /// A string, base64-decoded when the reply was encoded (a non-integer number is kept as
    /// its text).
    Str(String),
    /// An array, such as the reply of `MGET`.
    Array(Vec<Reply>),
}

impl Reply {
    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Takes the string out, when this is one.
    pub fn into_string(self) -> Option<String> {
        match self {
            Reply::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether this is a nil reply.
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Nil)
    }

    /// Takes the array out, when this is one.
    pub fn into_array(self) -> Option<Vec<Reply>> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Parses the body of a 2xx answer to a single command.
pub fn parse_single_body(body: &[u8], base64: bool) -> Result<Reply, UpstashError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| not_json(body))?;
    item(value, base64)?.map_err(UpstashError::Command)
}

/// Parses the body of a 2xx answer to `/pipeline` or `/multi-exec`: one result per command,
/// each either a reply or that command's error text.
pub fn parse_pipeline_body(
    body: &[u8],
    base64: bool,
) -> Result<Vec<Result<Reply, String>>, UpstashError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| not_json(body))?;
    match value {
        Value::Array(items) => items.into_iter().map(|v| item(v, base64)).collect(),
        // A discarded transaction answers one error object.
        Value::Object(_) => match item(value, base64)? {
            Err(message) => Err(UpstashError::Command(message)),
            Ok(_) => Err(UpstashError::Protocol(
                "expected an array of results".into(),
            )),
        },
        _ => Err(UpstashError::Protocol(
            "expected an array of results".into(),
        )),
    }
}

/// The error text of a non-2xx body: its `error` field, or the start of the raw body.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) {
        if let Some(Value::String(message)) = map.remove("error") {
            return message;
        }
    }
    snippet(body)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

fn not_json(body: &[u8]) -> UpstashError {
    UpstashError::NotJson(format!("{:?}", snippet(body)))
}

/// One `{"result": X}` or `{"error": "..."}` object.
fn item(value: Value, base64: bool) -> Result<Result<Reply, String>, UpstashError> {
    let Value::Object(mut map) = value else {
        return Err(UpstashError::Protocol(
            "expected an object with result or error".into(),
        ));
    };
    if let Some(error) = map.remove("error") {
        return match error {
            Value::String(message) => Ok(Err(message)),
            other => Ok(Err(other.to_string())),
        };
    }
    match map.remove("result") {
        Some(result) => convert(result, base64).map(Ok),
        None => Err(UpstashError::Protocol(
            "object has neither result nor error".into(),
        )),
    }
}

fn convert(value: Value, base64: bool) -> Result<Reply, UpstashError> {
    Ok(match value {
        Value::Null => Reply::Nil,
        Value::Number(n) => match n.as_i64() {
            Some(i) => Reply::Int(i),
            None => Reply::Str(n.to_string()),
        },
        Value::String(s) if !base64 || s == "OK" => Reply::Str(s),
        // Like the official JS SDK, keep the raw text when it is not base64 of UTF-8: a
        // server that ignores the header (or leaves status replies such as PONG unencoded)
        // still works.
        Value::String(s) => match STANDARD.decode(s.as_bytes()).map(String::from_utf8) {
            Ok(Ok(decoded)) => Reply::Str(decoded),
            _ => Reply::Str(s),
        },
        Value::Array(items) => Reply::Array(
            items
                .into_iter()
                .map(|v| convert(v, base64))
                .collect::<Result<_, _>>()?,
        ),
        Value::Bool(_) | Value::Object(_) => {
            return Err(UpstashError::Protocol(
                "a result holds a boolean or an object".into(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_results_of_every_type_parse() {
        assert_eq!(
            parse_single_body(br#"{"result":null}"#, true).unwrap(),
            Reply::Nil
        );
        assert_eq!(
            parse_single_body(br#"{"result":3}"#, true).unwrap(),
            Reply::Int(3)
        );
        assert_eq!(
            parse_single_body(br#"{"result":"OK"}"#, true).unwrap(),
            Reply::Str("OK".into())
        );
        assert_eq!(
            parse_single_body(br#"{"result":"YmFy"}"#, true).unwrap(),
            Reply::Str("bar".into())
        );
        assert_eq!(
            parse_single_body(br#"{"result":"bar"}"#, false).unwrap(),
            Reply::Str("bar".into())
        );
        assert_eq!(
            parse_single_body(br#"{"result":["YQ==",null,["Yg==",7]]}"#, true).unwrap(),
            Reply::Array(vec![
                Reply::Str("a".into()),
                Reply::Nil,
                Reply::Array(vec![Reply::Str("b".into()), Reply::Int(7)])
            ])
        );
    }

    #[test]
    fn text_that_is_not_base64_is_kept_as_sent() {
        assert_eq!(
            parse_single_body(br#"{"result":"PONG"}"#, true).unwrap(),
            Reply::Str("PONG".into())
        );
        assert_eq!(
            parse_single_body(br#"{"result":"{\"user\":\"a\"}"}"#, true).unwrap(),
            Reply::Str(r#"{"user":"a"}"#.into())
        );
    }

    #[test]
    fn an_encoded_ok_from_srh_decodes_to_ok() {
        assert_eq!(
            parse_single_body(br#"{"result":"T0s="}"#, true).unwrap(),
            Reply::Str("OK".into())
        );
    }

    #[test]
    fn error_objects_become_command_errors_and_are_never_decoded() {
        let err =
            parse_single_body(br#"{"error":"ERR max requests limit exceeded"}"#, true).unwrap_err();
        assert!(matches!(err, UpstashError::Command(m) if m == "ERR max requests limit exceeded"));
    }

    #[test]
    fn a_non_json_body_is_retryable_and_json_of_another_shape_is_a_protocol_error() {
        let err = parse_single_body(b"error code: 1016", true).unwrap_err();
        assert!(matches!(err, UpstashError::NotJson(_)));
        assert!(err.is_retryable());
        let err = parse_single_body(br#"{"result":true}"#, true).unwrap_err();
        assert!(matches!(err, UpstashError::Protocol(_)));
        assert!(!err.is_retryable());
    }

    #[test]
    fn pipelines_carry_per_item_errors_and_a_discarded_transaction_is_one_error() {
        let items = parse_pipeline_body(
            br#"[{"result":"OK"},{"error":"WRONGTYPE x"},{"result":1}]"#,
            true,
        )
        .unwrap();
        assert_eq!(
            items,
            vec![
                Ok(Reply::Str("OK".into())),
                Err("WRONGTYPE x".into()),
                Ok(Reply::Int(1))
            ]
        );
        let err = parse_pipeline_body(br#"{"error":"EXECABORT Transaction discarded"}"#, true)
            .unwrap_err();
        assert!(matches!(err, UpstashError::Command(m) if m.starts_with("EXECABORT")));
    }

    #[test]
    fn error_message_prefers_the_error_field_then_the_raw_body() {
        assert_eq!(error_message(br#"{"error":"WRONGPASS x"}"#), "WRONGPASS x");
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            any::<String>().prop_map(Value::String),
            "[A-Za-z0-9+/]{0,12}={0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::hash_map("(result|error|[a-z]{1,5})", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_bytes_are_not_json_exactly_when_they_do_not_parse_as_json(body in prop::collection::vec(any::<u8>(), 0..512), b64 in any::<bool>()) {
            let is_json = serde_json::from_slice::<Value>(&body).is_ok();
            for outcome in [parse_single_body(&body, b64).map(|_| ()), parse_pipeline_body(&body, b64).map(|_| ())] {
                match outcome {
                    Err(UpstashError::NotJson(text)) => {
                        prop_assert!(!is_json);
                        // A quoted snippet of at most 200 characters, no control characters.
                        prop_assert!(text.chars().count() <= 2 + 200 * 10);
                    }
                    Ok(()) | Err(UpstashError::Protocol(_) | UpstashError::Command(_)) => prop_assert!(is_json),
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }
            let message = error_message(&body);
            prop_assert!(!message.chars().any(char::is_control) || is_json);
        }

        #[test]
        fn a_result_parses_exactly_when_it_holds_no_boolean_or_object(value in json_value(), b64 in any::<bool>()) {
            fn allowed(v: &Value) -> bool {
                match v {
                    Value::Bool(_) | Value::Object(_) => false,
                    Value::Array(items) => items.iter().all(allowed),
                    _ => true,
                }
            }
            let wrapped = serde_json::to_vec(&serde_json::json!({ "result": value })).unwrap();
            match parse_single_body(&wrapped, b64) {
                Ok(reply) => {
                    prop_assert!(allowed(&value));
                    // Nulls, integers and arrays keep their shape.
                    match (&value, &reply) {
                        (Value::Null, r) => prop_assert_eq!(r, &Reply::Nil),
                        (Value::Array(items), Reply::Array(replies)) => prop_assert_eq!(items.len(), replies.len()),
                        (Value::Array(_), other) => prop_assert!(false, "array became {other:?}"),
                        _ => {}
                    }
                }
                Err(UpstashError::Protocol(_)) => prop_assert!(!allowed(&value)),
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
            // Bare JSON (not wrapped) parses only when it is an object with result or error.
            let body = serde_json::to_vec(&value).unwrap();
            if parse_single_body(&body, b64).is_ok() {
                prop_assert!(value.get("result").is_some() && value.get("error").is_none());
            }
        }

        #[test]
        fn every_result_string_round_trips_through_base64(text in any::<String>()) {
            use base64::{engine::general_purpose::STANDARD, Engine as _};
            let body = serde_json::to_vec(&serde_json::json!({ "result": STANDARD.encode(&text) })).unwrap();
            prop_assert_eq!(parse_single_body(&body, true).unwrap(), Reply::Str(text));
        }
    }
}
