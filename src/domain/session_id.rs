//! The session id: a random version 4 UUID, parsed only in its canonical form, and never
//! shown in `Debug` output (ids are bearer credentials; logs get [`SessionId::log_tag`]).

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A session id: a random (version 4) UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

impl SessionId {
    /// The smallest id, for range bounds.
    pub const MIN: SessionId = SessionId(Uuid::nil());
    /// The largest id, for range bounds.
    pub const MAX: SessionId = SessionId(Uuid::max());

    /// A fresh random id (122 random bits from the OS generator).
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses the canonical lower-case hyphenated form of a version 4 UUID, and nothing else:
    /// no braces, no upper case, no URN prefix, no other version.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let uuid = Uuid::try_parse(s).ok()?;
        (uuid.get_version_num() == 4 && uuid.get_variant() == uuid::Variant::RFC4122)
            .then_some(Self(uuid))
    }

    /// The canonical text form, without allocating.
    pub fn encode<'b>(&self, buf: &'b mut [u8; 36]) -> &'b str {
        self.0.hyphenated().encode_lower(buf)
    }

    /// A short, stable, non-reversible tag for logs (first 12 hex digits of SHA-256).
    pub fn log_tag(&self) -> String {
        let mut buf = [0u8; 36];
        let digest = Sha256::digest(self.encode(&mut buf).as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SessionId {
    /// Never prints the id itself: ids are bearer credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.log_tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_v4_uuids_parse() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        for bad in [
            "",
            "*",
            "session:*",
            "not-a-uuid",
            "6F9619FF-8B86-4011-B42D-00CF4FC964FF",
            "{6f9619ff-8b86-4011-b42d-00cf4fc964ff}",
            "6f9619ff8b864011b42d00cf4fc964ff",
            "6f9619ff-8b86-1011-b42d-00cf4fc964ff",
            "6f9619ff-8b86-4011-b42d-00cf4fc964f%",
            "urn:uuid:6f9619ff-8b86-4011-b42d-00cf4fc964ff",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
        assert!(SessionId::parse("6f9619ff-8b86-4011-b42d-00cf4fc964ff").is_some());
    }

    #[test]
    fn debug_and_log_tag_never_show_the_id() {
        for text in [
            "6f9619ff-8b86-4011-b42d-00cf4fc964ff",
            "00000000-0000-4000-8000-000000000000",
            "a1b2c3d4-e5f6-4789-8abc-def012345678",
        ] {
            let id = SessionId::parse(text).unwrap();
            // The tag is a digest of the id, not a piece of it.
            let digest = Sha256::digest(text.as_bytes());
            let expected: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(id.log_tag(), expected);
            let shown = format!("{id:?}");
            assert_eq!(shown, format!("SessionId({expected})"));
            // No run of 4 of the id's hex digits shows anywhere in it.
            let digits = text.replace('-', "");
            let leaked = (0..=digits.len() - 4).find(|&i| shown.contains(&digits[i..i + 4]));
            assert_eq!(leaked, None, "{shown} shows part of {text}");
        }
    }
}
