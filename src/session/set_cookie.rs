//! The session's `Set-Cookie` headers: `HttpOnly`, `SameSite` and `Secure` as configured,
//! `Path=/`, no `Domain`. The live cookie is rendered from a template the cookie crate formats
//! once at start (`name=` and `; HttpOnly; SameSite=..; Path=/`), so a refreshed cookie is one
//! string instead of a `Cookie` rendered on every request.

use std::fmt::Write as _;

use actix_web::{
    cookie::{Cookie, CookieBuilder, SameSite},
    http::header::{HeaderValue, InvalidHeaderValue},
};

use super::signing::{CookieSigner, SIGNED_LEN};
use crate::domain::SessionId;

/// Renders the session cookie for one set of attributes.
#[derive(Debug, Clone)]
pub(crate) struct SetCookie {
    name: String,
    secure: bool,
    same_site: SameSite,
    /// What the cookie crate writes before and after the value; `None` if its rendering cannot
    /// be split that way: then every cookie is rendered by the crate.
    template: Option<(String, String)>,
}

impl SetCookie {
    pub(crate) fn new(name: &str, secure: bool, same_site: SameSite) -> Self {
        let mut cookie = Self {
            name: name.to_owned(),
            secure,
            same_site,
            template: None,
        };
        cookie.template = cookie.template();
        cookie
    }

    /// The `Set-Cookie` of a live session signed by `signer`, kept `max_age` seconds.
    pub(crate) fn live(
        &self,
        signer: &CookieSigner,
        id: &SessionId,
        max_age: u64,
    ) -> Result<HeaderValue, InvalidHeaderValue> {
        let Some((prefix, suffix)) = &self.template else {
            let cookie = self
                .base(signer.sign(id))
                .max_age(actix_web::cookie::time::Duration::seconds(max_age as i64))
                .finish();
            return HeaderValue::try_from(cookie.to_string());
        };
        let mut header = String::with_capacity(prefix.len() + SIGNED_LEN + suffix.len() + 30);
        header.push_str(prefix);
        signer.sign_into(id, &mut header);
        header.push_str(suffix);
        // The cookie crate puts Max-Age after Path (and we set no Domain or Expires).
        let _ = write!(header, "; Max-Age={max_age}");
        HeaderValue::try_from(header)
    }

    /// The `Set-Cookie` that clears the session cookie, with the attributes it was set with.
    pub(crate) fn removal(&self) -> Cookie<'static> {
        let mut cookie = self.base(String::new()).finish();
        cookie.make_removal();
        cookie
    }

    fn base(&self, value: String) -> CookieBuilder<'static> {
        Cookie::build(self.name.clone(), value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
    }

    /// What the cookie crate writes before and after the value of the session cookie, if its
    /// rendering is `name=VALUE` followed by attributes that do not repeat the value.
    fn template(&self) -> Option<(String, String)> {
        const MARK: &str = "VALUE";
        let rendered = self.base(MARK.to_owned()).finish().to_string();
        let prefix = format!("{}=", self.name);
        let suffix = rendered.strip_prefix(&prefix)?.strip_prefix(MARK)?;
        (!suffix.contains(MARK) && suffix.starts_with("; ")).then(|| (prefix, suffix.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SigningKey;

    #[test]
    fn the_session_cookie_header_is_what_the_cookie_crate_writes() {
        let signer = CookieSigner::new(SigningKey::random(), None);
        let names = ["session_id", "__Host-sid", "__Secure-sid"];
        for (name, secure, same_site) in names.into_iter().flat_map(|n| {
            [false, true].into_iter().flat_map(move |secure| {
                [SameSite::Lax, SameSite::Strict, SameSite::None].map(|s| (n, secure, s))
            })
        }) {
            let mut cookie = SetCookie::new(name, secure, same_site);
            assert!(cookie.template.is_some(), "{name}");
            for template in [cookie.template.clone(), None] {
                // With the template (the normal case) and without (the crate renders).
                cookie.template = template;
                for max_age in [0, 5, 899, 900] {
                    let id = SessionId::random();
                    let header = cookie.live(&signer, &id, max_age).unwrap();
                    let ours = header.to_str().unwrap();
                    let expected = cookie
                        .base(signer.sign(&id))
                        .max_age(actix_web::cookie::time::Duration::seconds(max_age as i64))
                        .finish()
                        .to_string();
                    assert_eq!(ours, expected);
                    assert!(
                        ours.contains("; HttpOnly") && ours.contains("; Path=/"),
                        "{ours}"
                    );
                    assert!(ours.ends_with(&format!("; Max-Age={max_age}")), "{ours}");
                }
            }
        }
    }

    #[test]
    fn a_cookie_name_that_cannot_be_a_header_is_an_error_not_an_empty_header() {
        let signer = CookieSigner::new(SigningKey::random(), None);
        let cookie = SetCookie::new("bad\nname", true, SameSite::Lax);
        assert!(cookie.live(&signer, &SessionId::random(), 900).is_err());
    }
}
