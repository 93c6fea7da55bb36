//! Wiring: the store chosen by the settings, the signing key, the session manager, and the
//! HTTP server on a given listener (tests bind port 0).

use std::{net::TcpListener, sync::Arc};

use actix_web::{
    dev::Server,
    http::Method,
    middleware::{from_fn, Condition},
    web, App, HttpServer,
};
use secrecy::ExposeSecret;

use crate::{
    metrics::Metrics,
    openapi,
    ratelimit::{ClientLimits, UPSTASH_BUDGET_LABEL},
    routes,
    session::{CookieSigner, KeySource, SessionConfig, SessionManager, SigningKey},
    settings::Settings,
    store::{MemoryStore, SessionStore, UpstashStore},
    telemetry::ErrorChain,
    upstash::{
        ClientConfig, Command, RetryPolicy, UpstashClient, UpstashError, DEFAULT_MAX_REPLY_BYTES,
    },
};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `HOST:PORT` cannot be bound (in use, not a local address, no permission).
    #[error("cannot listen on {address} (HOST/PORT): {source}")]
    Bind {
        /// The address tried, from `HOST` and `PORT`.
        address: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The start-up `PING` got HTTP 401: the Upstash token is wrong; holds Upstash's message.
    #[error("UPSTASH_REDIS_REST_TOKEN was rejected by Upstash (HTTP 401: {0}); check the token in the Upstash console")]
    TokenRejected(String),
    /// The Upstash client cannot be built: its TLS or HTTP set-up failed, or the token or
    /// URL cannot be used in a request.
    #[error("cannot set up the Upstash client: {0}")]
    Client(#[source] UpstashError),
    /// The HTTP server cannot start on the listener.
    #[error("cannot start the HTTP server: {0}")]
    Server(#[source] std::io::Error),
    /// The metrics cannot be set up; holds the cause.
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
}

/// A built, listening service.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `HOST:PORT` and builds the service.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let address = settings.address();
        let listener =
            TcpListener::bind(&address).map_err(|source| StartupError::Bind { address, source })?;
        Self::build_with_listener(settings, listener).await
    }

    /// Builds the service on an already bound listener.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let metrics = Metrics::new().map_err(|e| StartupError::Metrics(e.to_string()))?;
        let sessions = session_manager(&settings, Some(&metrics)).await?;
        metrics
            .watch_store(sessions.store().clone())
            .map_err(|e| StartupError::Metrics(e.to_string()))?;
        let port = listener.local_addr().map_err(StartupError::Server)?.port();
        let server = serve(listener, sessions, metrics, &settings)?;
        tracing::info!(address = %settings.address(), port, "listening");
        Ok(Self { port, server })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then stops accepting and lets in-flight requests finish
    /// within `SHUTDOWN_TIMEOUT_SECONDS`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The client's reply-size bound: room for max(per-user limit, auto-pipelined batch) records
/// holding data at the size limit (base64-encoded, so 4/3 of it, plus the fixed fields), and
/// never below [`DEFAULT_MAX_REPLY_BYTES`]. The largest legitimate reply is a full batch of
/// profile reads; the per-user term is room left from when a listing read whole records (it
/// now reads a few fields of each), kept so a setting that fitted before still fits.
pub fn reply_bound(max_per_user: usize, max_data_bytes: usize) -> usize {
    let per_record = max_data_bytes.saturating_add(1024).saturating_mul(4) / 3 + 1024;
    let records = max_per_user.max(crate::upstash::MAX_PIPELINE_COMMANDS);
    DEFAULT_MAX_REPLY_BYTES.max(per_record.saturating_mul(records))
}

/// The store, signing key and lifetimes chosen by `settings`, instrumented on `metrics` when
/// given.
pub async fn session_manager(
    settings: &Settings,
    metrics: Option<&Metrics>,
) -> Result<SessionManager, StartupError> {
    let (store, derived, deadline): (Arc<dyn SessionStore>, _, _) = match &settings.upstash {
        Some(upstash) => {
            let mut config = ClientConfig::new(
                upstash.url.clone(),
                upstash.token(),
                settings.upstash_timeout,
            );
            config.max_reply_bytes = reply_bound(
                settings.session.max_per_user,
                settings.session.max_data_bytes,
            );
            config.extra_roots = settings.upstash_extra_roots.clone();
            config.max_commands_per_second = settings.upstash_max_commands_per_second;
            if upstash.url.scheme() == "http" && !crate::settings::is_loopback(&upstash.url) {
                tracing::warn!(
                    upstash_host = upstash.url.host_str().unwrap_or("?"),
                    "UPSTASH_ALLOW_INSECURE_HTTP=true: the Upstash token is sent in clear text"
                );
            }
            let mut client = UpstashClient::new(config).map_err(StartupError::Client)?;
            if let Some(metrics) = metrics {
                metrics
                    .upstash
                    .register_on(&metrics.registry)
                    .map_err(|e| StartupError::Metrics(e.to_string()))?;
                // The budget's refusals are counted beside the per-client ones, only here,
                // where there is a budget to refuse.
                client = client.with_metrics(
                    metrics
                        .upstash
                        .clone()
                        .with_budget_refusals(metrics.rate_limits.counter(UPSTASH_BUDGET_LABEL)),
                );
            }
            check_upstash(&client, upstash.url.host_str().unwrap_or("?")).await?;
            (
                Arc::new(
                    UpstashStore::new(Arc::new(client))
                        .with_max_sessions_per_user(settings.session.max_per_user)
                        .with_auto_pipeline(settings.upstash_auto_pipeline),
                ),
                (
                    SigningKey::from_upstash_token(upstash.token().as_bytes()),
                    KeySource::UpstashToken,
                ),
                Some(settings.upstash_timeout),
            )
        }
        None => {
            tracing::info!(
                "running on the in-memory session store: sessions live in this process only \
                 and are lost on restart; set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN to share them"
            );
            (
                Arc::new(
                    MemoryStore::new()
                        .with_max_sessions_per_user(settings.session.max_per_user)
                        .with_max_bytes(settings.memory_store_max_bytes),
                ),
                (SigningKey::random(), KeySource::Random),
                None,
            )
        }
    };
    let (current, source) = match &settings.session.secret {
        Some(secret) => (
            SigningKey::from_secret(secret.expose_secret().as_bytes()),
            KeySource::Secret,
        ),
        None => derived,
    };
    // Keys that still verify (never sign): a previous secret, and the key derived from a
    // previous token, so rotating the token or moving to SESSION_SECRET keeps sessions.
    let mut previous = Vec::new();
    let mut accepted = Vec::new();
    if let Some(secret) = &settings.session.previous_secret {
        previous.push(SigningKey::from_secret(secret.expose_secret().as_bytes()));
        accepted.push("SESSION_SECRET_PREVIOUS");
    }
    if let Some(token) = &settings.session.previous_token {
        previous.push(SigningKey::from_upstash_token(
            token.expose_secret().as_bytes(),
        ));
        accepted.push("UPSTASH_REDIS_REST_TOKEN_PREVIOUS");
    }
    tracing::info!(
        key_source = source.describe(),
        also_verifying_with = accepted.join(", "),
        "cookie signing key ready"
    );
    let config = SessionConfig {
        idle_ttl: settings.session.idle_ttl,
        absolute_ttl: settings.session.absolute_ttl,
        cookie_name: settings.cookie.name.clone(),
        cookie_secure: settings.cookie.secure,
        same_site: settings.cookie.same_site,
        deadline,
    };
    let manager = SessionManager::new(store, CookieSigner::new(current, previous), config)
        .with_max_data_bytes(settings.session.max_data_bytes);
    Ok(match metrics {
        Some(metrics) => manager.with_metrics(metrics.sessions.clone()),
        None => manager,
    })
}

/// One `PING` at start: a rejected token stops the service; an unreachable Upstash is a
/// warning (it may come up later; `/readyz` tells).
async fn check_upstash(client: &UpstashClient, host: &str) -> Result<(), StartupError> {
    match client
        .command(&Command::new("PING"), RetryPolicy::Once)
        .await
    {
        Ok(_) => {
            tracing::info!(upstash_host = host, "connected to Upstash");
            Ok(())
        }
        Err(UpstashError::Unauthorized(message)) => Err(StartupError::TokenRejected(message)),
        Err(error) => {
            tracing::warn!(upstash_host = host, error = %ErrorChain(&error), "Upstash did not answer PING at start; starting anyway");
            Ok(())
        }
    }
}

/// The HTTP server on `listener`: the session routes, `/metrics`, `/openapi.json` and
/// `/docs/`.
pub fn serve(
    listener: TcpListener,
    sessions: SessionManager,
    metrics: Metrics,
    settings: &Settings,
) -> Result<Server, StartupError> {
    let sessions = web::Data::new(sessions);
    let limits = client_limits(settings, &metrics)?;
    let http_metrics = metrics
        .http
        .clone()
        .with_endpoint_label(routes::endpoint_label);
    let metrics = web::Data::new(metrics);
    let metrics_on = settings.metrics;
    let warm = settings.upstash_warm_pool && settings.upstash.is_some();
    let allowed_origins = settings.cors_allowed_origins.clone();
    let public_origin = settings.public_origin.clone();
    let body_timeout = routes::BodyTimeout(settings.request_body_timeout);
    let mut server = HttpServer::new(move || {
        if warm {
            // Each worker has its own connection pool: open it now (one PING), so the
            // worker's first request does not pay the TCP and TLS handshakes.
            let sessions = sessions.clone();
            actix_web::rt::spawn(async move {
                if let Err(error) = sessions.ping().await {
                    tracing::debug!(error = %error, "connection pool warm-up failed");
                }
            });
        }
        App::new()
            .wrap(routes::OriginPolicy::new(
                &allowed_origins,
                public_origin.as_deref(),
            ))
            .wrap(routes::default_headers())
            .wrap(Condition::new(
                metrics_on,
                from_fn(http_metrics.middleware()),
            ))
            .wrap(from_fn(routes::request_id::request_id))
            .wrap(routes::CloseUnreadBodies)
            .app_data(sessions.clone())
            .configure(|cfg| {
                if let Some(limits) = &limits {
                    cfg.app_data(limits.clone());
                }
            })
            .app_data(body_timeout)
            .configure(routes::configure)
            .configure(|cfg| {
                if metrics_on {
                    cfg.app_data(metrics.clone()).service(
                        routes::Endpoint::new("/metrics")
                            .route(Method::GET, |r| {
                                r.to(|m: web::Data<Metrics>| async move { m.render() })
                            })
                            .finish(),
                    );
                }
            })
            .configure(openapi::configure)
            .default_service(web::to(routes::not_found))
    })
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener).map_err(StartupError::Server)?.run())
}

/// The per-client limits of the settings, counted on `metrics`; `None` when both are off.
fn client_limits(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Option<web::Data<ClientLimits>>, StartupError> {
    let limit = &settings.rate_limit;
    let limits = ClientLimits::new(
        limit.login,
        limit.requests,
        limit.max_clients,
        limit.trusted_proxies.clone(),
    )
    .with_metrics(&metrics.rate_limits);
    let shown =
        |rate: Option<crate::ratelimit::Rate>| rate.map_or("off".to_owned(), |r| r.to_string());
    let proxies: Vec<String> = limit
        .trusted_proxies
        .nets()
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        login = %shown(limit.login),
        requests = %shown(limit.requests),
        max_clients = limit.max_clients,
        trusted_proxies = %proxies.join(","),
        upstash_max_commands_per_second = settings.upstash_max_commands_per_second.map_or(0, |n| n.get()),
        "rate limits per client address (per instance)"
    );
    if !limits.is_on() {
        return Ok(None);
    }
    let limits = std::sync::Arc::new(limits);
    metrics
        .rate_limits
        .watch(&metrics.registry, limits.clone())
        .map_err(|e| StartupError::Metrics(e.to_string()))?;
    Ok(Some(web::Data::from(limits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_bound_holds_a_full_listing_or_batch_of_records_at_the_data_limit() {
        assert_eq!(reply_bound(100, 16_384), DEFAULT_MAX_REPLY_BYTES);
        for (max_per_user, max_data) in [(100, 300_000), (1_000, 16_384), (10_000, 1_048_576)] {
            let records = max_per_user.max(crate::upstash::MAX_PIPELINE_COMMANDS);
            // Every record's data base64-encoded (4/3), whatever the fixed fields add.
            assert!(reply_bound(max_per_user, max_data) > records * max_data * 4 / 3);
        }
    }
}
