//! The user name given at login: validated once at the edge, then trusted.

use std::fmt;

/// Longest accepted user name, in characters, after trimming.
pub const MAX_CHARS: usize = 128;

/// A validated user name: 1 to 128 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

/// Why a user name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username must not be empty")]
    Empty,
    #[error("username must be at most 128 characters")]
    TooLong,
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

    /// The name.
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

    proptest! {
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
