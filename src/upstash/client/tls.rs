//! TLS for the REST endpoint, built once per client and shared by every thread's pool, and
//! the count of completed handshakes.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, OnceLock,
};

use rustls::pki_types::CertificateDer;

use super::UpstashError;

/// TLS for the REST endpoint: the public web PKI roots (Mozilla's, compiled in, so a
/// container without a CA bundle works) plus `extra_roots`; ALPN offers HTTP/2 then
/// HTTP/1.1; TLS 1.2 and 1.3 with rustls' safe defaults and session resumption.
pub(super) fn tls_config(
    extra_roots: &[CertificateDer<'static>],
    handshakes: Arc<HandshakeCounter>,
) -> Result<rustls::ClientConfig, UpstashError> {
    let roots = root_store(extra_roots)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstashError::Protocol(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tls.key_log = handshakes;
    Ok(tls)
}

/// The public roots, plus `extra_roots`.
pub(super) fn root_store(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::RootCertStore, UpstashError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for certificate in extra_roots {
        roots.add(certificate.clone()).map_err(|e| {
            UpstashError::Protocol(format!("a trusted certificate is not usable: {e}"))
        })?;
    }
    Ok(roots)
}

/// Counts completed TLS handshakes. rustls reports each handshake to the configured
/// [`rustls::KeyLog`] by the names of the secrets it derives; this one asks only for the
/// name of the secret every completed handshake derives last (TLS 1.3's client application
/// secret, TLS 1.2's master secret) and keeps nothing but the count.
#[derive(Debug, Default)]
pub(super) struct HandshakeCounter {
    pub(super) count: AtomicU64,
    pub(super) metric: OnceLock<prometheus::IntCounter>,
}

impl rustls::KeyLog for HandshakeCounter {
    fn will_log(&self, label: &str) -> bool {
        label == "CLIENT_TRAFFIC_SECRET_0" || label == "CLIENT_RANDOM"
    }

    fn log(&self, label: &str, _client_random: &[u8], _secret: &[u8]) {
        if self.will_log(label) {
            self.count.fetch_add(1, Ordering::Relaxed);
            if let Some(metric) = self.metric.get() {
                metric.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_ca_is_added_to_the_public_roots_not_put_in_their_place() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap().der().clone();
        let public = webpki_roots::TLS_SERVER_ROOTS.len();
        assert!(public > 100);
        assert_eq!(root_store(&[]).unwrap().len(), public);
        assert_eq!(root_store(&[ca]).unwrap().len(), public + 1);
    }
}
