//! `spawn_app()`: the whole service on a random port, on the memory store or on a fake
//! Upstash (wiremock), with a small client that carries the session cookie by hand.

use std::{net::TcpListener, time::Duration};

use reqwest::{header, Response};
use upstash_sessions::{
    settings::{RateLimitSettings, Settings},
    startup::Application,
};

use crate::fake_upstash::{FakeUpstash, FAKE_TOKEN};

/// Which store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Upstash,
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    /// The fake Upstash, for `Backend::Upstash`.
    pub upstash: Option<FakeUpstash>,
}

/// The app on the memory store with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Backend::Memory, |_| {}).await
}

/// The app on `backend`, with settings adjusted by `tweak`.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let upstash = match backend {
        Backend::Memory => None,
        Backend::Upstash => Some(FakeUpstash::start().await),
    };
    let mut settings = test_settings(upstash.as_ref().map(|u| u.uri()));
    tweak(&mut settings);
    spawn_with_settings(settings, upstash).await
}

/// Settings for tests: port 0, one worker, no per-client rate limits, and Upstash at
/// `upstash_uri` when given.
pub fn test_settings(upstash_uri: Option<String>) -> Settings {
    let mut settings = Settings {
        port: 0,
        workers: Some(1),
        shutdown_timeout: Duration::from_secs(1),
        // Tests count Upstash requests from start: no warm-up PING racing the count.
        upstash_warm_pool: false,
        // Every test sends all its requests from 127.0.0.1; the limits have their own tests
        // (cost_control.rs), which set them.
        rate_limit: RateLimitSettings::off(),
        ..Settings::default()
    };
    if let Some(uri) = upstash_uri {
        settings.upstash = Some(upstash_settings(&uri, FAKE_TOKEN));
    }
    settings
}

pub fn upstash_settings(uri: &str, token: &str) -> upstash_sessions::settings::UpstashSettings {
    upstash_sessions::settings::UpstashSettings {
        url: reqwest::Url::parse(uri).expect("fake Upstash URL"),
        token: token.to_owned().into(),
    }
}

/// Starts the app with exactly `settings`. `TEST_LOG=1` shows the service's logs.
pub async fn spawn_with_settings(settings: Settings, upstash: Option<FakeUpstash>) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        upstash_sessions::telemetry::init(upstash_sessions::settings::LogFormat::Pretty);
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    let app = Application::build_with_listener(settings, listener)
        .await
        .expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // The start-up PING is not part of what the tests count.
    if let Some(upstash) = &upstash {
        upstash.reset_counters();
    }
    TestApp {
        address,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        upstash,
    }
}

/// The `name=value` pair of the session cookie a response sets.
pub fn session_cookie(response: &Response) -> Option<String> {
    set_cookie(response, "session_id").map(|c| c.split(';').next().unwrap_or("").to_owned())
}

/// The whole `Set-Cookie` header for cookie `name`.
pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn fake(&self) -> &FakeUpstash {
        self.upstash
            .as_ref()
            .expect("this app runs on the fake Upstash")
    }

    /// Upstash requests served so far. Only on `Backend::Upstash`: the memory store has no
    /// requests to count, so an assertion on them there would say nothing.
    pub fn upstash_requests(&self) -> u64 {
        self.fake().requests()
    }

    /// Upstash requests served so far; `None` on the memory store, which has none to count.
    pub fn upstash_count(&self) -> Option<u64> {
        self.upstash.as_ref().map(FakeUpstash::requests)
    }

    /// Asserts that `n` Upstash requests were made since `before` (from
    /// [`Self::upstash_count`]). On the memory store there are no requests to count, and
    /// nothing is checked: tests on both stores call this for the Upstash run.
    pub fn assert_upstash_requests_since(&self, before: Option<u64>, n: u64) {
        if let (Some(now), Some(before)) = (self.upstash_count(), before) {
            assert_eq!(now, before + n, "Upstash requests");
        }
    }

    pub async fn post_login(&self, body: &str, cookie: Option<&str>) -> Response {
        let mut request = self
            .http
            .post(self.url("/login/"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("login request")
    }

    /// Logs `user` in; returns the response and its `session_id=...` cookie pair.
    pub async fn login(&self, user: &str) -> (Response, String) {
        let response = self
            .post_login(&serde_json::json!({ "username": user }).to_string(), None)
            .await;
        assert_eq!(response.status(), 200, "login of {user}");
        let cookie = session_cookie(&response).expect("login sets the cookie");
        (response, cookie)
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.get(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("GET request")
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.post(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("POST request")
    }

    pub async fn delete(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.delete(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("DELETE request")
    }

    pub async fn profile(&self, cookie: Option<&str>) -> Response {
        self.get("/profile/", cookie).await
    }

    pub async fn logout(&self, cookie: Option<&str>) -> Response {
        self.post("/logout/", cookie).await
    }
}

/// The JSON body of a response.
pub async fn json(response: Response) -> serde_json::Value {
    response.json().await.expect("a JSON body")
}

/// The session id inside a `session_id=<id>.<tag>` cookie pair.
pub fn id_of(cookie: &str) -> String {
    let value = cookie.split_once('=').map_or("", |(_, v)| v);
    value.split('.').next().unwrap_or("").to_owned()
}

/// Generates `memory::name` and `upstash::name` tests from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Memory).await
                }
            )*
        }
        mod upstash {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Upstash).await
                }
            )*
        }
    };
}
