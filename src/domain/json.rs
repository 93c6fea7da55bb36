//! The JSON reader behind [`AppData`](super::AppData): a strict RFC 8259 parser that keeps
//! number literals as written, objects as ordered maps of canonical keys, and tracks depth.
//!
//! Hand-written rather than `serde_json::Value`: keeping number literals and key order needs
//! serde_json's `arbitrary_precision` and `preserve_order` features, which are crate-wide and
//! would change how every other user of serde_json in the build (reqwest, utoipa, the client's
//! reply parser) decodes numbers and maps.

use indexmap::IndexMap;

use super::{app_data::MAX_DEPTH, DataError};

/// `text` as one JSON value (any kind), with nothing but white space after it.
pub(super) fn parse(text: &str) -> Result<Node, DataError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let node = parser.value(0)?;
    parser.end()?;
    Ok(node)
}

/// A parsed value: objects as ordered maps of canonical key text to values, everything else
/// as canonical text.
pub(super) enum Node {
    Object(IndexMap<String, Node>),
    Raw(String),
}

impl Node {
    pub(super) fn write(&self, out: &mut String) {
        match self {
            Node::Raw(text) => out.push_str(text),
            Node::Object(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(key);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A strict JSON (RFC 8259) parser that keeps number literals as text and tracks depth.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn malformed(&self, what: &str) -> DataError {
        DataError::Malformed(format!("{what} at byte {}", self.at))
    }

    fn eat(&mut self, byte: u8) -> Result<(), DataError> {
        self.ws();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.malformed(&format!("expected `{}`", byte as char)))
        }
    }

    fn end(&mut self) -> Result<(), DataError> {
        self.ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.malformed("trailing characters")),
        }
    }

    /// One value; `depth` is how many containers enclose it.
    fn value(&mut self, depth: usize) -> Result<Node, DataError> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(DataError::TooDeep);
                }
                self.at += 1;
                let mut map = IndexMap::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Node::Object(map));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    let value = self.value(depth + 1)?;
                    // Duplicate keys: the last value wins, at the first one's place.
                    map.insert(key, value);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Node::Object(map));
                        }
                        _ => return Err(self.malformed("expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(DataError::TooDeep);
                }
                self.at += 1;
                let mut out = String::from("[");
                self.ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    out.push(']');
                    return Ok(Node::Raw(out));
                }
                loop {
                    self.value(depth + 1)?.write(&mut out);
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.at += 1;
                            out.push(',');
                        }
                        Some(b']') => {
                            self.at += 1;
                            out.push(']');
                            return Ok(Node::Raw(out));
                        }
                        _ => return Err(self.malformed("expected `,` or `]`")),
                    }
                }
            }
            Some(b'"') => self.string().map(Node::Raw),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.malformed("expected a value")),
            None => Err(self.malformed("unexpected end")),
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<Node, DataError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(Node::Raw(word.to_owned()))
        } else {
            Err(self.malformed("expected a value"))
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as written.
    fn number(&mut self) -> Result<Node, DataError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.malformed("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.malformed("invalid number"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.malformed("invalid number"));
            }
            self.digits();
        }
        Ok(Node::Raw(self.text[start..self.at].to_owned()))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    /// A string, returned in canonical form (quotes included).
    fn string(&mut self) -> Result<String, DataError> {
        if self.peek() != Some(b'"') {
            return Err(self.malformed("expected a string"));
        }
        let start = self.at;
        self.at += 1;
        let mut plain = true;
        loop {
            match self.peek() {
                None => return Err(self.malformed("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    plain = false;
                    self.at += 2;
                }
                Some(0..=0x1f) => return Err(self.malformed("control character in a string")),
                Some(_) => self.at += 1,
            }
        }
        self.at += 1;
        let raw = self
            .text
            .get(start..self.at)
            .ok_or_else(|| self.malformed("bad string"))?;
        if plain {
            // No escapes and no control characters: already what serde_json writes.
            return Ok(raw.to_owned());
        }
        let decoded: String =
            serde_json::from_str(raw).map_err(|e| DataError::Malformed(e.to_string()))?;
        serde_json::to_string(&decoded).map_err(|e| DataError::Malformed(e.to_string()))
    }
}
