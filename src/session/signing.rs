//! Signed session cookies: the cookie value is `<session id>.<tag>`, the tag being
//! HMAC-SHA256 over the id, base64url without padding. A cookie that does not verify is
//! rejected before the store is asked anything, so forged or random cookies cost nothing.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::SessionId;

type HmacSha256 = Hmac<Sha256>;

/// Length of a signed cookie value: 36 (id) + 1 (`.`) + 43 (tag).
pub const SIGNED_LEN: usize = 80;
const TAG_LEN: usize = 32;

/// HKDF `info` labels: fixed, so every instance derives the same key from the same input.
const LABEL_SECRET: &[u8] = b"upstash-sessions/cookie-signing/v1/secret";
const LABEL_TOKEN: &[u8] = b"upstash-sessions/cookie-signing/v1/upstash-token";

/// Where the current signing key came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `SESSION_SECRET`.
    Secret,
    /// Derived from the Upstash token: shared by every instance using that token.
    UpstashToken,
    /// Random for this process (memory store): cookies die with the process.
    Random,
}

impl KeySource {
    /// Where the key came from, in the words of the settings, for the start-up log line.
    pub fn describe(self) -> &'static str {
        match self {
            KeySource::Secret => "SESSION_SECRET",
            KeySource::UpstashToken => "derived from UPSTASH_REDIS_REST_TOKEN",
            KeySource::Random => "random for this process (memory store; set SESSION_SECRET to keep sessions across restarts)",
        }
    }
}

/// An HMAC-SHA256 key, kept as the keyed MAC state: HMAC hashes the padded key into its
/// inner and outer states once here, so each tag costs two SHA-256 blocks instead of four.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Derives a key from `SESSION_SECRET` (or its previous value) with HKDF-SHA256.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self::derive(secret, LABEL_SECRET)
    }

    /// Derives a key from the Upstash REST token with HKDF-SHA256 and a fixed label.
    pub fn from_upstash_token(token: &[u8]) -> Self {
        Self::derive(token, LABEL_TOKEN)
    }

    /// A random key from the OS generator.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::from_bytes(&key)
    }

    fn derive(input: &[u8], label: &[u8]) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, input).expand(label, &mut key);
        Self::from_bytes(&key)
    }

    fn from_bytes(key: &[u8; 32]) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        Self(<HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()))
    }

    fn mac(&self) -> HmacSha256 {
        self.0.clone()
    }
}

/// Signs with the current key; verifies with the current or any previous one.
#[derive(Debug, Clone)]
pub struct CookieSigner {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl CookieSigner {
    /// A signer; the `previous` keys keep cookies signed before a key rotation valid (they
    /// verify, and never sign). Pass `None`, one key in `Some`, or any list.
    pub fn new(current: SigningKey, previous: impl IntoIterator<Item = SigningKey>) -> Self {
        Self {
            current,
            previous: previous.into_iter().collect(),
        }
    }

    /// The cookie value for `id`.
    pub fn sign(&self, id: &SessionId) -> String {
        let mut value = String::with_capacity(SIGNED_LEN);
        self.sign_into(id, &mut value);
        value
    }

    /// Appends the cookie value for `id` to `out`.
    pub fn sign_into(&self, id: &SessionId, out: &mut String) {
        let mut buf = [0u8; 36];
        let text = id.encode(&mut buf);
        let mut mac = self.current.mac();
        mac.update(text.as_bytes());
        let tag = mac.finalize().into_bytes();
        out.push_str(text);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, out);
    }

    /// The session id of a cookie value whose tag verifies with either key, in constant time.
    pub fn verify(&self, value: &str) -> Option<SessionId> {
        if value.len() != SIGNED_LEN || value.as_bytes()[36] != b'.' {
            return None;
        }
        let (id_text, tag_text) = (value.get(..36)?, value.get(37..)?);
        let id = SessionId::parse(id_text)?;
        let mut tag = [0u8; TAG_LEN + 2];
        let n = URL_SAFE_NO_PAD
            .decode_slice(tag_text.as_bytes(), &mut tag)
            .ok()?;
        if n != TAG_LEN {
            return None;
        }
        let tag = &tag[..TAG_LEN];
        let check = |key: &SigningKey| {
            let mut mac = key.mac();
            mac.update(id_text.as_bytes());
            mac.verify_slice(tag).is_ok()
        };
        (check(&self.current) || self.previous.iter().any(check)).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_cookie_verifies_and_has_the_documented_shape() {
        let signer = CookieSigner::new(SigningKey::random(), None);
        let id = SessionId::random();
        let value = signer.sign(&id);
        assert_eq!(value.len(), SIGNED_LEN);
        assert!(value.starts_with(&id.to_string()));
        assert_eq!(signer.verify(&value), Some(id));
    }

    #[test]
    fn any_tampering_is_rejected() {
        let signer = CookieSigner::new(SigningKey::random(), None);
        let id = SessionId::random();
        let value = signer.sign(&id);
        for i in 0..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            if let Ok(tampered) = String::from_utf8(bytes) {
                if tampered != value {
                    assert_eq!(signer.verify(&tampered), None, "position {i}");
                }
            }
        }
        assert_eq!(signer.verify(&id.to_string()), None);
        assert_eq!(signer.verify(""), None);
    }

    #[test]
    fn the_previous_key_still_verifies_but_is_never_used_to_sign() {
        let old = SigningKey::from_secret(b"an old secret of at least thirty-two bytes");
        let new = SigningKey::from_secret(b"a new secret of at least thirty-two bytes!");
        let before = CookieSigner::new(old.clone(), None).sign(&SessionId::random());
        let rotated = CookieSigner::new(new.clone(), Some(old));
        assert!(rotated.verify(&before).is_some());
        let id = SessionId::random();
        assert!(CookieSigner::new(new, None)
            .verify(&rotated.sign(&id))
            .is_some());
        let unrelated = CookieSigner::new(SigningKey::random(), None);
        assert!(unrelated.verify(&before).is_none());
    }

    #[test]
    fn tags_match_hkdf_and_hmac_sha256_computed_independently() {
        // Computed with Python's hmac/hashlib (HKDF by hand), so that a change in how the
        // key is derived or kept cannot silently log every user out on the next deploy.
        let id = SessionId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        let secret = SigningKey::from_secret(b"a fixed test secret of at least thirty-two bytes");
        assert_eq!(
            CookieSigner::new(secret, None).sign(&id),
            "67e55044-10b1-426f-9247-bb680e5fe0c8.GCtRh4LJCnwcQBjTiJux-xjuCdpmROyymxQldLUZSS4"
        );
        let token = SigningKey::from_upstash_token(b"dev-token");
        assert_eq!(
            CookieSigner::new(token, None).sign(&id),
            "67e55044-10b1-426f-9247-bb680e5fe0c8.9eedOUKF2bE0LctICWU6bCszLOsnmkqf-GpGz9DsruA"
        );
    }

    #[test]
    fn keys_derived_from_the_same_token_agree() {
        let a = CookieSigner::new(SigningKey::from_upstash_token(b"tok"), None);
        let b = CookieSigner::new(SigningKey::from_upstash_token(b"tok"), None);
        let c = CookieSigner::new(SigningKey::from_secret(b"tok"), None);
        let value = a.sign(&SessionId::random());
        assert!(b.verify(&value).is_some());
        assert!(c.verify(&value).is_none());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_cookie_value_verifies_only_if_we_signed_it(value in any::<String>()) {
            let signer = CookieSigner::new(SigningKey::random(), None);
            prop_assert_eq!(signer.verify(&value), None);
        }

        #[test]
        fn near_miss_values_never_verify(tail in "[A-Za-z0-9_-]{43}", id in any::<u128>()) {
            let signer = CookieSigner::new(SigningKey::random(), None);
            let uuid = uuid::Builder::from_random_bytes(id.to_le_bytes()).into_uuid();
            let value = format!("{uuid}.{tail}");
            prop_assert_eq!(signer.verify(&value), None);
        }
    }
}
