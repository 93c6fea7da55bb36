//! Reading the session cookie from a request's `Cookie` headers: our name among the others,
//! its signature verified before anything else is done with it, and what to make of several
//! cookies of our name.

use super::CookieSigner;
use crate::domain::SessionId;

/// Most verified session cookies one request is read with (see
/// [`super::SessionManager::read_cookie`]): enough for a planted cookie or two beside the user's own.
pub const MAX_SESSION_COOKIES: usize = 4;

/// The session cookie found on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieState {
    /// No cookie of our name.
    Missing,
    /// A cookie of our name, but none verifies (forged, tampered, malformed, old key).
    Invalid,
    /// A verified session id (the session may still be gone from the store).
    Valid(SessionId),
    /// Several cookies of our name verify, in the order the client sent them (a sibling
    /// subdomain can plant one with a longer `Path`, which browsers send first). No id repeats.
    Several(Vec<SessionId>),
}

impl CookieState {
    /// The verified ids, in the order sent.
    pub fn ids(&self) -> &[SessionId] {
        match self {
            CookieState::Valid(id) => std::slice::from_ref(id),
            CookieState::Several(ids) => ids,
            CookieState::Missing | CookieState::Invalid => &[],
        }
    }
}

/// Our cookie among `Cookie` header values: see [`super::SessionManager::read_cookie`].
pub(super) fn read<'a>(
    headers: impl Iterator<Item = &'a [u8]>,
    cookie_name: &str,
    signer: &CookieSigner,
) -> CookieState {
    let name = cookie_name.as_bytes();
    let mut state = CookieState::Missing;
    let mut found: Option<SessionId> = None;
    let mut more: Vec<SessionId> = Vec::new();
    'headers: for header in headers {
        // RFC 6265 §5.4: `name=value` pairs separated by `;`. (actix's cookie 0.16 has
        // no borrowing splitter, and parsing each pair into a `Cookie` allocates.)
        for pair in header.split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name {
                continue;
            }
            let value = std::str::from_utf8(pair[eq + 1..].trim_ascii()).ok();
            match value.and_then(|v| signer.verify(v)) {
                Some(id) if found.is_none() => found = Some(id),
                Some(id) if found != Some(id) && !more.contains(&id) => {
                    more.push(id);
                    if more.len() + 1 >= MAX_SESSION_COOKIES {
                        break 'headers;
                    }
                }
                Some(_) => {}
                None => state = CookieState::Invalid,
            }
        }
    }
    match found {
        Some(first) if more.is_empty() => CookieState::Valid(first),
        Some(first) => {
            more.insert(0, first);
            CookieState::Several(more)
        }
        None => {
            if state == CookieState::Invalid {
                tracing::info!(event = "cookie_rejected", "session cookie did not verify");
            }
            state
        }
    }
}
