//! The application's own data in a session (`session_data.data`): a JSON object kept as
//! canonical text, and the JSON merge patch (RFC 7396) that updates it.
//!
//! Values are never decoded into numbers: a number is kept as the literal the client sent
//! (`1234567890123456789`, `0.1234567890123456789` and `1e400` come back as they went in),
//! arrays stay arrays (`[]` never turns into `{}`), and strings are re-escaped only the way
//! `serde_json` writes them. That canonical form (no insignificant whitespace, keys and
//! strings escaped as `serde_json` does, duplicate keys resolved to the last value) makes two
//! equal keys the same bytes, so the Upstash store's Lua script can merge the stored text
//! without decoding it (see `MERGE_SCRIPT` in [`crate::store::upstash`]) and both stores agree byte
//! for byte with [`AppData::merge`].

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::json::{self, Node};

/// Default of `SESSION_DATA_MAX_BYTES`: the largest serialized `data` a session may hold.
pub const DEFAULT_MAX_DATA_BYTES: usize = 16_384;

/// Deepest nesting of objects and arrays accepted in `data` and in a patch (`{}` is 1).
pub const MAX_DEPTH: usize = 32;

/// Why a JSON text cannot be session data or a patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object.
    #[error("data must be a JSON object")]
    NotAnObject,
    /// Objects and arrays nested deeper than [`MAX_DEPTH`].
    #[error("data is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The serialized data would be larger than the limit.
    #[error("session data would be {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The size the serialized data would have, in bytes.
        size: usize,
        /// The largest allowed, in bytes.
        limit: usize,
    },
}

/// A JSON object in canonical form (see the module docs). `{}` costs no allocation.
///
/// ```
/// use upstash_sessions::store::AppData;
///
/// let cart = AppData::parse(r#"{"cart": {"apple": 2, "pear": 1}, "id": 1234567890123456789}"#)?;
/// let patch = AppData::parse(r#"{"cart": {"pear": null, "fig": 3}, "locale": "fr"}"#)?;
/// let merged = cart.merge(&patch)?;
/// assert_eq!(
///     merged.as_str(),
///     r#"{"cart":{"apple":2,"fig":3},"id":1234567890123456789,"locale":"fr"}"#
/// );
/// # Ok::<(), upstash_sessions::store::DataError>(())
/// ```
#[derive(Clone, Default)]
pub struct AppData(Option<Box<RawValue>>);

impl AppData {
    /// The empty object `{}`.
    pub const fn empty() -> Self {
        Self(None)
    }

    /// Parses a JSON object into canonical form: [`DataError::Malformed`] for text that is
    /// not JSON, [`DataError::NotAnObject`] and [`DataError::TooDeep`] for JSON that cannot be
    /// session data. `null` members are kept (in a patch they remove keys).
    pub fn parse(text: &str) -> Result<Self, DataError> {
        // Malformed text is reported as such, and only then a wrong type.
        match json::parse(text)? {
            node @ Node::Object(_) => Ok(Self::from_node(&node)),
            Node::Raw(_) => Err(DataError::NotAnObject),
        }
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().map_or("{}", RawValue::get)
    }

    /// Serialized size in bytes (what `SESSION_DATA_MAX_BYTES` limits).
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether this is `{}`.
    pub fn is_empty(&self) -> bool {
        self.as_str() == "{}"
    }

    /// Deserializes the data into a type of the caller's.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(self.as_str())
    }

    /// Applies `patch` as an RFC 7396 merge patch: a `null` member removes that key, an
    /// object member merges recursively, anything else replaces. Keys keep their position;
    /// new keys come after, in the patch's order. Fails only on text that is not canonical
    /// data (never for values made by [`AppData::parse`]).
    pub fn merge(&self, patch: &AppData) -> Result<AppData, DataError> {
        let mut target = match self.node()? {
            Node::Object(map) => map,
            Node::Raw(_) => return Err(DataError::NotAnObject),
        };
        let Node::Object(patch) = patch.node()? else {
            return Err(DataError::NotAnObject);
        };
        merge_into(&mut target, patch);
        Ok(Self::from_node(&Node::Object(target)))
    }

    /// Checks the serialized size against `limit`.
    pub fn check_size(&self, limit: usize) -> Result<(), DataError> {
        match self.len() {
            size if size > limit => Err(DataError::TooLarge { size, limit }),
            _ => Ok(()),
        }
    }

    fn node(&self) -> Result<Node, DataError> {
        json::parse(self.as_str())
    }

    fn from_node(node: &Node) -> Self {
        let mut out = String::new();
        node.write(&mut out);
        if out == "{}" {
            return Self(None);
        }
        // Our own output is valid JSON; the check of `from_string` only guards that.
        match RawValue::from_string(out) {
            Ok(raw) => Self(Some(raw)),
            Err(_) => Self(None),
        }
    }
}

impl PartialEq for AppData {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for AppData {}

impl fmt::Debug for AppData {
    /// Never prints the values (they are the application's, and may be secrets): only the
    /// size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppData({} bytes)", self.len())
    }
}

impl Serialize for AppData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(raw) => raw.serialize(serializer),
            None => serializer.serialize_map(Some(0))?.end(),
        }
    }
}

use serde::ser::SerializeMap as _;

impl<'de> Deserialize<'de> for AppData {
    /// Reads a stored record's `data` as it is: records are written only in canonical form,
    /// so this checks that it is an object and nothing more (no re-parse on every read).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        match raw.get().as_bytes().first() {
            Some(b'{') if raw.get() == "{}" => Ok(Self(None)),
            Some(b'{') => Ok(Self(Some(raw))),
            _ => Err(serde::de::Error::custom(
                "session data is not a JSON object",
            )),
        }
    }
}

/// RFC 7396 `MergePatch(Target, Patch)` on objects.
fn merge_into(target: &mut IndexMap<String, Node>, patch: IndexMap<String, Node>) {
    for (key, value) in patch {
        match value {
            Node::Raw(text) if text == "null" => {
                target.shift_remove(&key);
            }
            Node::Object(inner) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Node::Object(IndexMap::new()));
                if !matches!(slot, Node::Object(_)) {
                    *slot = Node::Object(IndexMap::new());
                }
                if let Node::Object(existing) = slot {
                    merge_into(existing, inner);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        AppData::parse(text).unwrap().as_str().to_owned()
    }

    fn merged(target: &str, patch: &str) -> String {
        let target = AppData::parse(target).unwrap();
        let patch = AppData::parse(patch).unwrap();
        target.merge(&patch).unwrap().as_str().to_owned()
    }

    #[test]
    fn numbers_are_kept_exactly_as_written() {
        let text = r#"{"big":1234567890123456789,"huge":123456789012345678901234567890,"dec":0.1234567890123456789,"exp":1e400,"neg":-0.0,"e":6.02E+23,"small":-1.5e-7}"#;
        assert_eq!(canon(text), text);
    }

    #[test]
    fn empty_arrays_and_objects_keep_their_kind() {
        assert_eq!(
            canon(r#"{ "a" : [ ] , "b" : { } , "c" : [ { } , [ ] ] }"#),
            r#"{"a":[],"b":{},"c":[{},[]]}"#
        );
        assert_eq!(merged(r#"{"a":{}}"#, r#"{"b":[]}"#), r#"{"a":{},"b":[]}"#);
    }

    #[test]
    fn strings_are_escaped_the_way_serde_json_writes_them() {
        assert_eq!(
            canon(
                r#"{"\u00e9t\u00e9":"caf\u00e9 \ud83d\ude00 \/ \" \\ \n \u0001","plain":"日本 😀"}"#
            ),
            "{\"été\":\"café 😀 / \\\" \\\\ \\n \\u0001\",\"plain\":\"日本 😀\"}"
        );
        // Two spellings of one key are one key.
        assert_eq!(merged(r#"{"é":1}"#, r#"{"\u00e9":2}"#), r#"{"é":2}"#);
    }

    #[test]
    fn the_merge_follows_rfc_7396() {
        // The examples of RFC 7396, appendix A (objects only: the body must be one).
        for (target, patch, result) in [
            (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
            (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
            (
                r#"{"a":{"b":"c"}}"#,
                r#"{"a":{"b":"d","c":null}}"#,
                r#"{"a":{"b":"d"}}"#,
            ),
            (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
            (
                r#"{}"#,
                r#"{"a":{"bb":{"ccc":null}}}"#,
                r#"{"a":{"bb":{}}}"#,
            ),
            (
                r#"{"a":1}"#,
                r#"{"a":{"b":null,"c":2}}"#,
                r#"{"a":{"c":2}}"#,
            ),
        ] {
            assert_eq!(merged(target, patch), result, "{target} + {patch}");
        }
    }

    #[test]
    fn keys_keep_their_place_and_new_keys_follow_in_patch_order() {
        assert_eq!(
            merged(r#"{"z":1,"a":2,"m":3}"#, r#"{"y":0,"a":{"k":1},"b":9}"#),
            r#"{"z":1,"a":{"k":1},"m":3,"y":0,"b":9}"#
        );
        assert_eq!(canon(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn bad_text_is_malformed_and_good_json_of_the_wrong_kind_is_not_an_object() {
        for bad in [
            "",
            "{",
            r#"{"a"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            "{} x",
            "{\"a\":\"\u{1}\"}",
            r#"{"a":"\ud800"}"#,
            "[1,]",
        ] {
            assert!(
                matches!(AppData::parse(bad), Err(DataError::Malformed(_))),
                "{bad:?}"
            );
        }
        for wrong in ["[]", "1", "\"s\"", "null", " true "] {
            assert_eq!(
                AppData::parse(wrong).unwrap_err(),
                DataError::NotAnObject,
                "{wrong}"
            );
        }
    }

    #[test]
    fn nesting_is_limited_to_32_levels() {
        let deep = |n: usize| format!("{}{}", "{\"a\":".repeat(n - 1) + "{", "}".repeat(n));
        assert!(AppData::parse(&deep(MAX_DEPTH)).is_ok());
        assert_eq!(
            AppData::parse(&deep(MAX_DEPTH + 1)).unwrap_err(),
            DataError::TooDeep
        );
        let arrays = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(AppData::parse(&arrays).unwrap_err(), DataError::TooDeep);
        let deep_many = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(AppData::parse(&deep_many).unwrap_err(), DataError::TooDeep);
    }

    #[test]
    fn values_never_show_in_debug_output() {
        let data = AppData::parse(r#"{"csrf":"s3cr3t"}"#).unwrap();
        assert_eq!(format!("{data:?}"), "AppData(17 bytes)");
    }

    #[test]
    fn stored_data_serializes_verbatim_and_empty_data_as_an_empty_object() {
        let data = AppData::parse(r#"{"n":1e400}"#).unwrap();
        assert_eq!(serde_json::to_string(&data).unwrap(), r#"{"n":1e400}"#);
        assert_eq!(serde_json::to_string(&AppData::empty()).unwrap(), "{}");
        let back: AppData = serde_json::from_str(r#"{"n":1e400}"#).unwrap();
        assert_eq!(back, data);
        assert!(serde_json::from_str::<AppData>("[1]").is_err());
        assert!(AppData::parse("{ }").unwrap().is_empty());
    }
}
