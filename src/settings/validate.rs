//! What a single value must be: the Upstash URL (shown redacted when refused), origins for
//! CORS and the cross-site guard, PEM certificate files, tokens and secrets, the cookie's
//! name and `SameSite`. Each check returns the one-line [`SettingsError`] naming its variable.

use actix_web::cookie::SameSite;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use secrecy::SecretString;

use super::{SettingsError, MIN_SECRET_BYTES};

const URL_VAR: &str = "UPSTASH_REDIS_REST_URL";

pub(super) fn parse_url(value: &str, allow_http: bool) -> Result<reqwest::Url, SettingsError> {
    // The value may carry a secret (`?_token=...`, `user:password@`): every message shows it
    // redacted.
    let invalid = |expected: &'static str| SettingsError::Invalid {
        var: URL_VAR,
        value: redact_url(value.trim()),
        expected,
    };
    let url = reqwest::Url::parse(value.trim())
        .map_err(|_| invalid("an https:// URL such as https://eu1-example-12345.upstash.io"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            "an https:// URL such as https://eu1-example-12345.upstash.io",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "no user:password@ in the URL; the token goes in UPSTASH_REDIS_REST_TOKEN",
        ));
    }
    if url.query().is_some() {
        return Err(invalid(
            "no ?query in the URL; the token goes in UPSTASH_REDIS_REST_TOKEN",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid(
            "no #fragment in the URL: the /pipeline and /multi-exec paths would fall into it",
        ));
    }
    if url.scheme() == "http" && !allow_http && !is_loopback(&url) {
        return Err(invalid(
            "https:// (the token travels in every request; http:// is allowed for loopback \
             hosts, or anywhere with UPSTASH_ALLOW_INSECURE_HTTP=true)",
        ));
    }
    Ok(url)
}

/// Whether `url` names this machine: a loopback address (`127.0.0.0/8`, `::1`) or exactly
/// `localhost` (answered from `/etc/hosts`). Names under `.localhost` and `localhost.` do not
/// count: glibc sends them to the network's DNS resolver, which may answer with any address.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// `value` with anything that may be a secret replaced by `***`: user information, the
/// query and the fragment. Works on text that is not a valid URL too.
pub fn redact_url(value: &str) -> String {
    let (head, tail) = match value.find(['?', '#']) {
        Some(at) => (&value[..at], Some(&value[at..at + 1])),
        None => (value, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut out = String::with_capacity(value.len());
    match head[authority_start..authority_end].rfind('@') {
        Some(at) => {
            out.push_str(&head[..authority_start]);
            out.push_str("***");
            out.push_str(&head[authority_start + at..]);
        }
        None => out.push_str(head),
    }
    if let Some(mark) = tail {
        out.push_str(mark);
        out.push_str("***");
    }
    out
}

/// The certificates of the PEM file `path`, each checked to be usable as a trust anchor.
pub(super) fn read_certificates(
    var: &'static str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let fail = |problem: String| SettingsError::CertFile {
        var,
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM file: {e}")))?;
    if certificates.is_empty() {
        return Err(fail(
            "holds no certificate (expected PEM blocks: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for (n, certificate) in certificates.iter().enumerate() {
        store
            .add(certificate.clone())
            .map_err(|e| fail(format!("certificate {} is not usable: {e}", n + 1)))?;
    }
    Ok(certificates)
}

pub(super) fn parse_token(var: &'static str, value: String) -> Result<SecretString, SettingsError> {
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if !ok {
        return Err(SettingsError::InvalidSecret {
            var,
            expected: "printable ASCII without spaces or quotes, as shown in the Upstash console",
        });
    }
    Ok(SecretString::from(value))
}

pub(super) fn parse_secret(
    var: &'static str,
    value: String,
) -> Result<SecretString, SettingsError> {
    if value.len() < MIN_SECRET_BYTES {
        return Err(SettingsError::InvalidSecret {
            var,
            expected: "at least 32 bytes; generate one with `openssl rand -base64 48`",
        });
    }
    Ok(SecretString::from(value))
}

pub(super) fn parse_cookie_name(value: &str, secure: bool) -> Result<String, SettingsError> {
    // RFC 6265 cookie-name is an RFC 2616 token.
    let is_token = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !is_token {
        return Err(SettingsError::Invalid {
            var: "COOKIE_NAME",
            value: value.to_owned(),
            expected: "1 to 64 letters, digits or !#$%&'*+-.^_`|~",
        });
    }
    if (value.starts_with("__Host-") || value.starts_with("__Secure-")) && !secure {
        return Err(SettingsError::Invalid {
            var: "COOKIE_NAME",
            value: value.to_owned(),
            expected: "a __Host- or __Secure- name needs COOKIE_SECURE=true",
        });
    }
    Ok(value.to_owned())
}

pub(super) fn parse_same_site(value: &str, secure: bool) -> Result<SameSite, SettingsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSite::Lax),
        "strict" => Ok(SameSite::Strict),
        "none" if secure => Ok(SameSite::None),
        "none" => Err(SettingsError::Invalid {
            var: "COOKIE_SAMESITE",
            value: value.to_owned(),
            expected: "None needs COOKIE_SECURE=true; use lax or strict",
        }),
        _ => Err(SettingsError::Invalid {
            var: "COOKIE_SAMESITE",
            value: value.to_owned(),
            expected: "one of lax, strict, none",
        }),
    }
}

/// One exact origin, `scheme://host[:port]` as browsers send it in `Origin` (lowercase, no
/// default port, no path). A wildcard is refused: CORS forbids `*` with credentials, and a
/// pattern would trust every site that matches it with the users' sessions.
pub(super) fn parse_origin(var: &'static str, value: &str) -> Result<String, SettingsError> {
    let value = value.trim();
    let invalid = |expected| SettingsError::Invalid {
        var,
        value: value.to_owned(),
        expected,
    };
    if value.contains('*') {
        return Err(invalid(
            "a wildcard cannot be combined with credentials (the session cookie); list exact origins such as https://app.example.com",
        ));
    }
    let exact = "exact origins such as https://app.example.com (scheme, host and port only; no path or trailing slash)";
    let url = reqwest::Url::parse(value).map_err(|_| invalid(exact))?;
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || has_credentials
        || url.path() != "/"
        || value.ends_with('/')
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(exact));
    }
    Ok(url.origin().ascii_serialization())
}
