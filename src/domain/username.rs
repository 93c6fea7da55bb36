//! The user name given at login: validated once at the edge, then trusted.

use std::fmt;

/// Longest accepted user name, in characters, after trimming.
pub const MAX_CHARS: usize = 128;

/// Unicode `White_Space`, what [`str::trim`] removes, as a regular-expression class body.
macro_rules! white_space {
    () => {
        r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// Exactly the strings [`Username::parse`] accepts, as a regular expression in the syntax
/// JSON Schema, JavaScript, Python and Rust's `regex` share (`\uXXXX` escapes only): optional
/// white space, then 1 to 128 characters without control characters (U+0000-U+001F,
/// U+007F-U+009F) that start and end with neither white space nor a control character, then
/// optional white space. The OpenAPI document publishes it as the `username` pattern.
pub const PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"(?:[^\u0000-\u001f\u007f-\u009f]{0,126}",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?",
    "[",
    white_space!(),
    "]*$"
);

/// A validated user name: 1 to 128 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

/// Why a user name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Nothing but white space.
    #[error("username must not be empty")]
    Empty,
    /// More than [`MAX_CHARS`] characters after trimming.
    #[error("username must be at most 128 characters")]
    TooLong,
    /// A control character (U+0000-U+001F, U+007F-U+009F) inside the trimmed name.
    #[error("username must not contain control characters")]
    ControlCharacter,
}

impl Username {
    /// Trims and validates.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(UsernameError::Empty);
        }
        if name.chars().count() > MAX_CHARS {
            return Err(UsernameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(UsernameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The trimmed name, as the session records it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Username::parse("  alice ").unwrap().as_str(), "alice");
        assert_eq!(Username::parse("   "), Err(UsernameError::Empty));
        assert_eq!(
            Username::parse(&"é".repeat(128))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            128
        );
        assert_eq!(
            Username::parse(&"é".repeat(129)),
            Err(UsernameError::TooLong)
        );
        assert_eq!(
            Username::parse("a\u{0}b"),
            Err(UsernameError::ControlCharacter)
        );
        assert_eq!(
            Username::parse("a\u{7f}b"),
            Err(UsernameError::ControlCharacter)
        );
        assert!(Username::parse("名前 😀").is_ok());
    }

    fn pattern() -> regex::Regex {
        regex::Regex::new(PATTERN).unwrap()
    }

    #[test]
    fn the_published_pattern_accepts_exactly_what_parse_accepts_at_the_edges() {
        let re = pattern();
        let long = "é".repeat(128);
        let too_long = "é".repeat(129);
        for raw in [
            "alice",
            "  alice ",
            "\t\nalice\r\n\u{85}",
            "a",
            "a b",
            "\u{3000}名前 😀\u{a0}",
            long.as_str(),
            &format!("  {long}\t"),
            too_long.as_str(),
            "",
            "   ",
            "\u{2028}",
            "a\u{0}b",
            "a\u{7f}b",
            "a\u{85}b",
            "a\tb",
            "\u{1}alice",
            "\u{feff}",
            "\u{200b}",
        ] {
            assert_eq!(re.is_match(raw), Username::parse(raw).is_ok(), "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn the_published_pattern_agrees_with_parse_on_any_string(
            raw in "[ \t\n\u{85}\u{a0}\u{3000}\u{0}-\u{1f}\u{7f}-\u{9f}a-zé😀]{0,140}",
        ) {
            prop_assert_eq!(pattern().is_match(&raw), Username::parse(&raw).is_ok(), "{:?}", raw);
        }

        #[test]
        fn a_name_is_accepted_exactly_when_it_is_1_to_128_characters_without_controls(raw in any::<String>()) {
            let trimmed = raw.trim();
            let valid = (1..=MAX_CHARS).contains(&trimmed.chars().count())
                && !trimmed.chars().any(char::is_control);
            match Username::parse(&raw) {
                Ok(name) => {
                    prop_assert!(valid);
                    prop_assert_eq!(name.as_str(), trimmed);
                }
                Err(_) => prop_assert!(!valid),
            }
        }
    }
}
