//! HTTPS in tests, in process: a throwaway CA that issues certificates (rcgen), and a TLS
//! front (tokio-rustls) that terminates TLS before the fake Upstash and can misbehave on the
//! wire: a certificate the client must refuse, a handshake that never finishes, a connection
//! reset in the middle of an answer, idle connections closed by the server. It counts the
//! handshakes it completes and the protocol each one agreed by ALPN, so tests can show that
//! connections are reused and HTTP/2 is spoken.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};
use tokio_rustls::TlsAcceptor;

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("upstash-sessions test CA {:08x}", rand::random::<u32>()),
        );
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        Self { issuer }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to a fresh file and returns its path.
    pub fn write_pem(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "upstash-sessions-tls-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, self.pem()).expect("write CA file");
        path
    }

    /// A server configuration with a certificate for `name` issued by this CA, expired
    /// when `expired`, offering `alpn`.
    pub fn server(&self, name: &str, expired: bool, alpn: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("server params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], key)
        .expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    /// A `localhost` server offering h2 and http/1.1, as Upstash does.
    pub fn localhost(&self) -> Arc<rustls::ServerConfig> {
        self.server("localhost", false, &["h2", "http/1.1"])
    }
}

/// What the front does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// TLS, then relay to the upstream both ways.
    Relay,
    /// Accept the TCP connection and never answer: the handshake never finishes.
    Stall,
    /// TLS, read the request, send the first bytes of an HTTP/1.1 answer, then reset the
    /// connection (TCP RST). Use with a configuration offering only http/1.1.
    ResetMidResponse,
}

#[derive(Clone)]
pub struct Mode {
    pub tls: Arc<rustls::ServerConfig>,
    pub behaviour: Behaviour,
    /// Close a relayed connection after this long without traffic.
    pub idle_close: Option<Duration>,
}

impl Mode {
    pub fn relay(tls: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tls,
            behaviour: Behaviour::Relay,
            idle_close: None,
        }
    }
}

struct State {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    handshakes: AtomicU64,
    tcp_accepts: AtomicU64,
    alpn: Mutex<Vec<String>>,
    connections: Mutex<Vec<AbortHandle>>,
}

/// A TLS front on a random loopback port.
pub struct TlsFront {
    port: u16,
    state: Arc<State>,
    accept: AbortHandle,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accept.abort();
        self.close_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TlsFront {
    /// A front for `upstream` (`http://127.0.0.1:port`, e.g. the fake Upstash's URI).
    pub async fn start(upstream: &str, mode: Mode) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind front");
        let port = listener.local_addr().expect("front address").port();
        let state = Arc::new(State {
            upstream,
            mode: Mutex::new(mode),
            handshakes: AtomicU64::new(0),
            tcp_accepts: AtomicU64::new(0),
            alpn: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
        });
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accept_state.tcp_accepts.fetch_add(1, Ordering::Relaxed);
                let task = tokio::spawn(serve(accept_state.clone(), tcp));
                let mut connections = lock(&accept_state.connections);
                connections.retain(|c| !c.is_finished());
                connections.push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            port,
            state,
            accept,
        }
    }

    /// `https://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Changes what new connections get, and closes the open ones so the client's pool
    /// must connect again.
    pub fn set(&self, mode: Mode) {
        *lock(&self.state.mode) = mode;
        self.close_all();
    }

    /// Closes every open connection (the client sees them end).
    pub fn close_all(&self) {
        for connection in lock(&self.state.connections).drain(..) {
            connection.abort();
        }
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.state.handshakes.load(Ordering::Relaxed)
    }

    /// TCP connections accepted.
    pub fn tcp_accepts(&self) -> u64 {
        self.state.tcp_accepts.load(Ordering::Relaxed)
    }

    /// The protocol agreed by ALPN on each completed handshake ("none" without ALPN).
    pub fn alpn(&self) -> Vec<String> {
        lock(&self.state.alpn).clone()
    }
}

async fn serve(state: Arc<State>, tcp: TcpStream) {
    let mode = lock(&state.mode).clone();
    if mode.behaviour == Behaviour::Stall {
        let _held = tcp;
        std::future::pending::<()>().await;
        return;
    }
    let Ok(mut tls) = TlsAcceptor::from(mode.tls.clone()).accept(tcp).await else {
        return; // the client refused the certificate
    };
    state.handshakes.fetch_add(1, Ordering::Relaxed);
    let alpn = tls
        .get_ref()
        .1
        .alpn_protocol()
        .map_or("none".to_owned(), |p| {
            String::from_utf8_lossy(p).into_owned()
        });
    lock(&state.alpn).push(alpn);
    match mode.behaviour {
        Behaviour::Stall => {}
        Behaviour::ResetMidResponse => {
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"result\":",
                )
                .await;
            let _ = tls.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (tcp, _) = tls.into_inner();
            let _ = tcp.set_zero_linger();
            drop(tcp);
        }
        Behaviour::Relay => {
            let Ok(upstream) = TcpStream::connect(state.upstream).await else {
                return;
            };
            relay(tls, upstream, mode.idle_close).await;
        }
    }
}

/// Copies both ways until either side ends, or until `idle` passes without traffic.
async fn relay(
    client: tokio_rustls::server::TlsStream<TcpStream>,
    upstream: TcpStream,
    idle: Option<Duration>,
) {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    let idle = idle.unwrap_or(Duration::from_secs(3600));
    loop {
        tokio::select! {
            n = client_read.read(&mut up) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => if upstream_write.write_all(&up[..n]).await.is_err() { break },
            },
            n = upstream_read.read(&mut down) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { break },
            },
            _ = tokio::time::sleep(idle) => break,
        }
    }
    // A clean close: TLS close_notify, then FIN, as a server closing an idle keep-alive
    // connection does.
    let _ = client_write.shutdown().await;
}
