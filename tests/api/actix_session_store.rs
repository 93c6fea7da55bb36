//! actix-session's real `SessionMiddleware` in front of `UpstashSessionStore`, with signed and
//! with private cookies, on the fake Upstash and — when `UPSTASH_E2E_URL` and
//! `UPSTASH_E2E_TOKEN` are set (scripts/e2e-store.sh) — on upstash-on-redis over real Redis.
//! Everything the tests check in the store, they read through Upstash commands (`KEYS`,
//! `TTL`, `GET`), so one scenario runs unchanged on both.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_session::{
    config::{BrowserSession, CookieContentSecurity, PersistentSession, TtlExtensionPolicy},
    Session, SessionMiddleware,
};
use actix_web::{
    body::MessageBody,
    cookie::{time, Cookie, Key},
    dev::{Service, ServiceResponse},
    test::{self, TestRequest},
    web, App, HttpResponse,
};
use futures_util::future::join_all;
use tokio::sync::Notify;
use upstash_sessions::{
    actix_session::{OnMissingKey, UpstashSessionStore, DEFAULT_KEY_PREFIX},
    upstash::{ClientConfig, Command, Reply, RetryPolicy, UpstashClient},
};
use wiremock::{matchers::method, Mock, ResponseTemplate};

use crate::fake_upstash::{FakeUpstash, FAKE_TOKEN};

/// The example app, compiled from its own source: its routes and middleware are tested here.
#[allow(dead_code)]
#[path = "../../examples/actix_session_upstash.rs"]
mod example;

/// Where the store runs: the fake, or a real Upstash-compatible server. Each target gets its
/// own key prefix, so runs can share a server.
struct Target {
    url: String,
    token: String,
    prefix: String,
    fake: Option<FakeUpstash>,
}

impl Target {
    async fn fake() -> Self {
        let fake = FakeUpstash::start().await;
        Self {
            url: fake.uri(),
            token: FAKE_TOKEN.to_owned(),
            prefix: unique_prefix(),
            fake: Some(fake),
        }
    }

    /// The real server from the environment, or `None` (said on stderr).
    fn e2e() -> Option<Self> {
        match (
            std::env::var("UPSTASH_E2E_URL"),
            std::env::var("UPSTASH_E2E_TOKEN"),
        ) {
            (Ok(url), Ok(token)) => Some(Self {
                url,
                token,
                prefix: unique_prefix(),
                fake: None,
            }),
            _ => {
                eprintln!("UPSTASH_E2E_URL/UPSTASH_E2E_TOKEN not set: skipped");
                None
            }
        }
    }

    fn client_with(&self, timeout: Duration) -> UpstashClient {
        let url = reqwest::Url::parse(&self.url).unwrap();
        UpstashClient::new(ClientConfig::new(url, self.token.clone(), timeout)).unwrap()
    }

    fn store(&self) -> UpstashSessionStore {
        self.store_with(OnMissingKey::KeepEnded)
    }

    fn store_with(&self, on_missing: OnMissingKey) -> UpstashSessionStore {
        UpstashSessionStore::builder(self.client_with(Duration::from_secs(3)))
            .key_prefix(self.prefix.clone())
            .on_missing_key(on_missing)
            .build()
    }

    async fn raw(&self, command: Command<'_>) -> Reply {
        let client = self.client_with(Duration::from_secs(3));
        client
            .command(&command, RetryPolicy::Idempotent)
            .await
            .unwrap()
    }

    /// This target's session keys in the store, sorted.
    async fn keys(&self) -> Vec<String> {
        let pattern = format!("{}*", self.prefix);
        let reply = self.raw(Command::new("KEYS").arg(pattern)).await;
        let mut keys: Vec<String> = reply
            .into_array()
            .unwrap()
            .into_iter()
            .map(|k| k.into_string().unwrap())
            .collect();
        keys.sort();
        keys
    }

    /// The only session key in the store.
    async fn only_key(&self) -> String {
        let keys = self.keys().await;
        assert_eq!(keys.len(), 1, "expected one session key, found {keys:?}");
        keys[0].clone()
    }

    async fn ttl(&self, key: &str) -> i64 {
        let reply = self.raw(Command::new("TTL").arg(key)).await;
        reply.as_int().unwrap()
    }

    /// Upstash requests served so far: the fake's count, or upstash-on-redis's `/__stats`.
    async fn requests(&self) -> u64 {
        if let Some(fake) = &self.fake {
            return fake.requests();
        }
        let stats = format!("{}/__stats", self.url.trim_end_matches('/'));
        let body: serde_json::Value = reqwest::get(stats).await.unwrap().json().await.unwrap();
        body["requests"].as_u64().unwrap()
    }
}

fn unique_prefix() -> String {
    format!("actix-test-{}:", uuid::Uuid::new_v4().simple())
}

/// Holds a gated request between its `load` and its `update`.
#[derive(Default)]
struct Gate {
    reached: Notify,
    release: Notify,
}

/// `GET /peek`: reads the session, changes nothing.
async fn peek(session: Session) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?;
    let user = session.get::<String>("user")?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "visits": visits, "user": user })))
}

/// `GET /gated-visit`: loads, waits at the gate, then counts a visit.
async fn gated_visit(session: Session, gate: web::Data<Gate>) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    gate.reached.notify_one();
    gate.release.notified().await;
    session.insert("visits", visits)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "visits": visits })))
}

/// The middleware as a test configures it: cookie security, TTL policy, state TTL.
fn middleware(
    store: UpstashSessionStore,
    security: CookieContentSecurity,
    policy: TtlExtensionPolicy,
) -> SessionMiddleware<UpstashSessionStore> {
    SessionMiddleware::builder(store, Key::from(&[7u8; 64]))
        .cookie_content_security(security)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(time::Duration::seconds(600))
                .session_ttl_extension_policy(policy),
        )
        .build()
}

/// The app under test: the example's routes plus `/peek` and `/gated-visit`.
macro_rules! app {
    ($middleware:expr) => {
        app!($middleware, web::Data::new(Gate::default()))
    };
    ($middleware:expr, $gate:expr) => {
        test::init_service(
            App::new()
                .app_data($gate)
                .wrap($middleware)
                .configure(example::configure)
                .route("/peek", web::get().to(peek))
                .route("/gated-visit", web::get().to(gated_visit)),
        )
        .await
    };
}

/// What a browser sees from one request.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    /// `Some(None)`: the cookie was removed.
    cookie: Option<Option<Cookie<'static>>>,
    /// The middleware's error, as a logging middleware would print it (`{:?}`).
    error: Option<String>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }
}

/// Sends one request with `cookie`; errors become the response actix-web would send.
async fn send<S, R, B>(app: &S, req: TestRequest, cookie: Option<&Cookie<'static>>) -> Answer
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    TestRequest: IntoRequest<R>,
    B: MessageBody,
{
    let req = match cookie {
        Some(c) => req.cookie(c.clone()),
        None => req,
    };
    match app.call(req.into_request()).await {
        Ok(res) => {
            let cookie = res
                .response()
                .cookies()
                .find(|c| c.name() == "id")
                .map(|c| Some(c.into_owned()).filter(|c| !c.value().is_empty()));
            let status = res.status().as_u16();
            let body = test::read_body(res).await;
            Answer {
                status,
                body: String::from_utf8(body.to_vec()).unwrap(),
                cookie,
                error: None,
            }
        }
        Err(error) => {
            let res = error.error_response();
            let status = res.status().as_u16();
            let has_cookie = res.headers().contains_key("set-cookie");
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
            Answer {
                status,
                body: String::from_utf8(body.to_vec()).unwrap(),
                cookie: has_cookie.then_some(None),
                error: Some(format!("{error:?} / {error}")),
            }
        }
    }
}

/// `TestRequest::to_request` under a name the generic `send` can bound on.
trait IntoRequest<R> {
    fn into_request(self) -> R;
}

impl IntoRequest<actix_http::Request> for TestRequest {
    fn into_request(self) -> actix_http::Request {
        self.to_request()
    }
}

/// A browser: one cookie jar.
#[derive(Default, Clone)]
struct Browser {
    cookie: Option<Cookie<'static>>,
}

impl Browser {
    async fn go<S, R, B>(&mut self, app: &S, req: TestRequest) -> Answer
    where
        S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
        TestRequest: IntoRequest<R>,
        B: MessageBody,
    {
        let answer = send(app, req, self.cookie.as_ref()).await;
        if let Some(cookie) = &answer.cookie {
            self.cookie = cookie.clone();
        }
        answer
    }
}

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path)
}

fn post(path: &str) -> TestRequest {
    TestRequest::post().uri(path)
}

/// Runs a scenario on the fake with signed and with private cookies, and on the real server
/// from the environment (skipped, visibly, without it).
macro_rules! on_every_target {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[actix_web::test]
            async fn on_the_fake_with_signed_cookies() {
                super::$scenario(Target::fake().await, CookieContentSecurity::Signed).await;
            }

            #[actix_web::test]
            async fn on_the_fake_with_private_cookies() {
                super::$scenario(Target::fake().await, CookieContentSecurity::Private).await;
            }

            #[actix_web::test]
            async fn on_upstash_on_redis() {
                if let Some(target) = Target::e2e() {
                    super::$scenario(target, CookieContentSecurity::Private).await;
                }
            }
        }
    )*};
}

on_every_target!(
    state_persists_and_renew_moves_it_to_a_new_key_ending_the_old_one,
    purge_deletes_the_key_and_the_old_cookie_starts_an_empty_session,
    an_expired_or_deleted_key_starts_an_empty_session,
    the_ttl_in_redis_follows_the_extension_policy,
    extend_ttl_on_load_slides_the_ttl_on_reads_in_one_request,
    each_policy_costs_what_the_redis_store_costs_per_request,
    concurrent_requests_on_one_session_all_succeed_on_one_key,
    an_update_racing_a_purge_keeps_the_session_ended,
    an_update_racing_a_purge_revives_only_when_asked_to,
    stored_state_that_is_not_json_starts_an_empty_session_on_the_same_key,
);

async fn state_persists_and_renew_moves_it_to_a_new_key_ending_the_old_one(
    target: Target,
    security: CookieContentSecurity,
) {
    let app = app!(middleware(
        target.store(),
        security,
        TtlExtensionPolicy::OnStateChanges
    ));
    let mut browser = Browser::default();
    assert_eq!(browser.go(&app, get("/")).await.json()["visits"], 1);
    assert_eq!(browser.go(&app, get("/")).await.json()["visits"], 2);
    let before = target.only_key().await;
    assert!(before.starts_with(&target.prefix));
    let random = &before[target.prefix.len()..];
    assert!(random.len() >= 22 && random.chars().all(|c| c.is_ascii_alphanumeric()));
    let stolen = browser.clone();

    let login = browser.go(&app, post("/login/alice")).await;
    assert_eq!(login.status, 200);
    let after = target.only_key().await;
    assert_ne!(after, before, "renew() must move the state to a new key");
    let seen = browser.go(&app, get("/")).await.json();
    assert_eq!(
        (seen["visits"].as_u64(), seen["user"].as_str()),
        (Some(3), Some("alice"))
    );

    // The pre-login cookie is dead: it starts an empty, anonymous session.
    let mut stolen = stolen;
    let seen = stolen.go(&app, get("/peek")).await.json();
    assert_eq!(seen, serde_json::json!({ "visits": null, "user": null }));
}

async fn purge_deletes_the_key_and_the_old_cookie_starts_an_empty_session(
    target: Target,
    security: CookieContentSecurity,
) {
    let app = app!(middleware(
        target.store(),
        security,
        TtlExtensionPolicy::OnStateChanges
    ));
    let mut browser = Browser::default();
    browser.go(&app, post("/login/bob")).await;
    assert_eq!(target.keys().await.len(), 1);
    let kept = browser.clone();
    let out = browser.go(&app, post("/logout")).await;
    assert_eq!(out.status, 200);
    assert!(matches!(out.cookie, Some(None)), "the cookie is removed");
    assert_eq!(target.keys().await, Vec::<String>::new());
    let mut kept = kept;
    assert_eq!(
        kept.go(&app, get("/peek")).await.json()["user"],
        serde_json::Value::Null
    );
    assert_eq!(
        target.keys().await,
        Vec::<String>::new(),
        "reading stores nothing"
    );
}

async fn an_expired_or_deleted_key_starts_an_empty_session(
    target: Target,
    security: CookieContentSecurity,
) {
    let app = app!(middleware(
        target.store(),
        security,
        TtlExtensionPolicy::OnStateChanges
    ));
    let mut browser = Browser::default();
    browser.go(&app, post("/login/carol")).await;
    let key = target.only_key().await;
    target
        .raw(Command::new("EXPIRE").arg(key.as_str()).int(1))
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        browser.go(&app, get("/peek")).await.json()["user"],
        serde_json::Value::Null
    );
    // A state change now saves a new session under a new key.
    assert_eq!(browser.go(&app, get("/")).await.json()["visits"], 1);
    let key = target.only_key().await;
    target.raw(Command::new("DEL").arg(key.as_str())).await;
    let seen = browser.go(&app, get("/peek")).await.json();
    assert_eq!(seen, serde_json::json!({ "visits": null, "user": null }));
}

async fn the_ttl_in_redis_follows_the_extension_policy(
    target: Target,
    security: CookieContentSecurity,
) {
    for policy in [
        TtlExtensionPolicy::OnEveryRequest,
        TtlExtensionPolicy::OnStateChanges,
    ] {
        let every = matches!(policy, TtlExtensionPolicy::OnEveryRequest);
        let app = app!(middleware(target.store(), security, policy));
        let mut browser = Browser::default();
        browser.go(&app, post("/login/dave")).await;
        let key = target.only_key().await;
        assert!((590..=600).contains(&target.ttl(&key).await));

        // Shorten the TTL behind the middleware's back, then only read.
        target
            .raw(Command::new("EXPIRE").arg(key.as_str()).int(30))
            .await;
        let read = browser.go(&app, get("/peek")).await;
        assert_eq!(read.json()["user"], "dave");
        let ttl = target.ttl(&key).await;
        if every {
            assert!((590..=600).contains(&ttl), "a read extends: {ttl}");
            assert!(read.cookie.is_some(), "and refreshes the cookie's Max-Age");
        } else {
            assert!(
                (1..=30).contains(&ttl),
                "a read leaves the TTL alone: {ttl}"
            );
            assert!(read.cookie.is_none());
        }
        // A state change always writes the full TTL.
        target
            .raw(Command::new("EXPIRE").arg(key.as_str()).int(30))
            .await;
        browser.go(&app, get("/")).await;
        assert!((590..=600).contains(&target.ttl(&key).await));
        browser.go(&app, post("/logout")).await;
    }
}

async fn extend_ttl_on_load_slides_the_ttl_on_reads_in_one_request(
    target: Target,
    security: CookieContentSecurity,
) {
    let ttl = time::Duration::seconds(600);
    let store = UpstashSessionStore::builder(target.client_with(Duration::from_secs(3)))
        .key_prefix(target.prefix.clone())
        .extend_ttl_on_load(ttl)
        .build();
    let app = app!(SessionMiddleware::builder(store, Key::from(&[7u8; 64]))
        .cookie_content_security(security)
        .session_lifecycle(BrowserSession::default().state_ttl(ttl))
        .build());
    let mut browser = Browser::default();
    browser.go(&app, post("/login/judy")).await;
    let key = target.only_key().await;
    target
        .raw(Command::new("EXPIRE").arg(key.as_str()).int(30))
        .await;

    let before = target.requests().await;
    let read = browser.go(&app, get("/peek")).await;
    let used = target.requests().await - before;
    assert_eq!(read.json()["user"], "judy");
    assert_eq!(
        used, 1,
        "one GETEX, where OnEveryRequest sends GET and EXPIRE"
    );
    let left = target.ttl(&key).await;
    assert!((590..=600).contains(&left), "the read slid the TTL: {left}");
    assert!(
        read.cookie.is_none(),
        "a browser-session cookie needs no refresh"
    );
    if let Some(fake) = &target.fake {
        assert_eq!(fake.command_names()[before as usize], vec!["GETEX"]);
    }
}

/// One request of the cost table: Upstash requests expected and the Redis store's round trips,
/// each as `[OnStateChanges, OnEveryRequest]`.
struct Step {
    what: &'static str,
    request: fn(&str) -> TestRequest,
    path: &'static str,
    upstash: [u64; 2],
    redis: [u64; 2],
}

impl Step {
    fn new(
        what: &'static str,
        request: fn(&str) -> TestRequest,
        path: &'static str,
        upstash: [u64; 2],
        redis: [u64; 2],
    ) -> Self {
        Self {
            what,
            request,
            path,
            upstash,
            redis,
        }
    }
}

/// Requests per HTTP request, per policy, next to what actix-session's `RedisSessionStore`
/// sends over TCP for the same (its source: GET on load, SET on save and update, EXPIRE on
/// update_ttl, DEL on delete, each one round trip).
async fn each_policy_costs_what_the_redis_store_costs_per_request(
    target: Target,
    security: CookieContentSecurity,
) {
    let steps = [
        Step::new("read without a session", get, "/peek", [0, 0], [0, 0]),
        Step::new("first state (save)", get, "/", [1, 1], [1, 1]),
        Step::new("read (load)", get, "/peek", [1, 2], [1, 2]),
        Step::new("state change (load, update)", get, "/", [2, 2], [2, 2]),
        Step::new(
            "renew (load, delete, save)",
            post,
            "/login/erin",
            [3, 3],
            [3, 3],
        ),
        Step::new("purge (load, delete)", post, "/logout", [2, 2], [2, 2]),
    ];
    let policies: [(&str, SessionMiddleware<UpstashSessionStore>, usize); 3] = [
        (
            "PersistentSession, OnStateChanges",
            middleware(target.store(), security, TtlExtensionPolicy::OnStateChanges),
            0,
        ),
        (
            "PersistentSession, OnEveryRequest",
            middleware(target.store(), security, TtlExtensionPolicy::OnEveryRequest),
            1,
        ),
        (
            "BrowserSession (default: OnStateChanges)",
            SessionMiddleware::builder(target.store(), Key::from(&[7u8; 64]))
                .cookie_content_security(security)
                .session_lifecycle(BrowserSession::default())
                .build(),
            0,
        ),
    ];
    for (name, mw, column) in policies {
        let app = app!(mw);
        let mut browser = Browser::default();
        let mut measured = Vec::new();
        for step in &steps {
            let before = target.requests().await;
            let answer = browser.go(&app, (step.request)(step.path)).await;
            let what = step.what;
            assert_eq!(answer.status, 200, "{name}: {what}: {answer:?}");
            let used = target.requests().await - before;
            assert_eq!(used, step.upstash[column], "{name}: {what}");
            assert!(
                used <= step.redis[column],
                "{name}: {what}: more than the Redis store"
            );
            measured.push(format!("{what}: {used}"));
        }
        eprintln!(
            "Upstash requests per HTTP request, {name}: {}",
            measured.join(", ")
        );
    }
    if let Some(fake) = &target.fake {
        // The last policy's commands, request by request.
        let names = fake.command_names();
        let last: Vec<Vec<&str>> = names[names.len() - 9..]
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            last,
            [
                vec!["SET", "GET"],
                vec!["GET"],
                vec!["GET"],
                vec!["SET"],
                vec!["GET"],
                vec!["DEL"],
                vec!["SET", "GET"],
                vec!["GET"],
                vec!["DEL"],
            ]
        );
    }
}

async fn concurrent_requests_on_one_session_all_succeed_on_one_key(
    target: Target,
    security: CookieContentSecurity,
) {
    let app = app!(middleware(
        target.store(),
        security,
        TtlExtensionPolicy::OnEveryRequest
    ));
    let mut browser = Browser::default();
    browser.go(&app, post("/login/frank")).await;
    let key = target.only_key().await;
    let cookie = browser.cookie.clone();
    let answers = join_all((0..12).map(|i| {
        let path = if i % 2 == 0 { "/" } else { "/peek" };
        send(&app, get(path), cookie.as_ref())
    }))
    .await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json()["user"], "frank");
    }
    // Concurrent updates of one session race (last writer wins, as with Redis over TCP), but
    // they never fork it: still one key, the same one, holding a count from the race.
    assert_eq!(target.keys().await, vec![key]);
    let visits = browser.go(&app, get("/peek")).await.json()["visits"]
        .as_u64()
        .unwrap();
    assert!((1..=6).contains(&visits), "{visits}");
}

/// Request A loads the session, B logs out, then A writes: returns A's answer and the
/// browser that made both.
async fn race_update_with_purge(
    target: &Target,
    security: CookieContentSecurity,
    on_missing: OnMissingKey,
) -> (Answer, Browser) {
    let gate = web::Data::new(Gate::default());
    let app = app!(
        middleware(
            target.store_with(on_missing),
            security,
            TtlExtensionPolicy::OnStateChanges
        ),
        gate.clone()
    );
    let mut browser = Browser::default();
    browser.go(&app, post("/login/grace")).await;
    let cookie = browser.cookie.clone();
    let (slow, _) = tokio::join!(send(&app, get("/gated-visit"), cookie.as_ref()), async {
        gate.reached.notified().await;
        let out = send(&app, post("/logout"), cookie.as_ref()).await;
        assert_eq!(out.status, 200);
        gate.release.notify_one();
    });
    assert_eq!(slow.status, 200, "{slow:?}");
    if let Some(cookie) = &slow.cookie {
        browser.cookie = cookie.clone();
    }
    let after = browser.go(&app, get("/peek")).await;
    (after, browser)
}

async fn an_update_racing_a_purge_keeps_the_session_ended(
    target: Target,
    security: CookieContentSecurity,
) {
    let (after, _) = race_update_with_purge(&target, security, OnMissingKey::KeepEnded).await;
    let seen = after.json();
    assert_eq!(seen, serde_json::json!({ "visits": null, "user": null }));
    assert_eq!(
        target.keys().await,
        Vec::<String>::new(),
        "nothing was revived"
    );
}

async fn an_update_racing_a_purge_revives_only_when_asked_to(
    target: Target,
    security: CookieContentSecurity,
) {
    // OnMissingKey::SaveAsNew is RedisSessionStore's behaviour: the logged-out user is back.
    let (after, _) = race_update_with_purge(&target, security, OnMissingKey::SaveAsNew).await;
    let seen = after.json();
    assert_eq!(
        (seen["user"].as_str(), seen["visits"].as_u64()),
        (Some("grace"), Some(1))
    );
    assert_eq!(target.keys().await.len(), 1);
}

async fn stored_state_that_is_not_json_starts_an_empty_session_on_the_same_key(
    target: Target,
    security: CookieContentSecurity,
) {
    let app = app!(middleware(
        target.store(),
        security,
        TtlExtensionPolicy::OnStateChanges
    ));
    let mut browser = Browser::default();
    browser.go(&app, post("/login/heidi")).await;
    let key = target.only_key().await;
    let planted = Command::new("SET")
        .arg(key.as_str())
        .arg("<<not json>>")
        .arg("EX")
        .int(60);
    target.raw(planted).await;
    let read = browser.go(&app, get("/peek")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["user"], serde_json::Value::Null);
    // The next change overwrites the garbage in place.
    assert_eq!(browser.go(&app, get("/")).await.json()["visits"], 1);
    assert_eq!(target.only_key().await, key);
    let stored = target.raw(Command::new("GET").arg(key.as_str())).await;
    assert_eq!(stored.as_str(), Some(r#"{"visits":"1"}"#));
}

// ---- The fake only: retries, faults, logs. ----

#[actix_web::test]
async fn a_save_whose_answer_was_lost_is_retried_and_counts_as_success() {
    let target = Target::fake().await;
    let fake = target.fake.as_ref().unwrap();
    let apply = fake.applier();
    // The first transaction is applied, but its answer never arrives in time.
    Mock::given(method("POST"))
        .respond_with(move |req: &wiremock::Request| {
            apply(req);
            ResponseTemplate::new(200).set_delay(Duration::from_secs(5))
        })
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake.server)
        .await;
    let client = target.client_with(Duration::from_secs(3));
    let store = UpstashSessionStore::builder(client)
        .key_prefix(target.prefix.clone())
        .build();
    let app = app!(middleware(
        store,
        CookieContentSecurity::Private,
        TtlExtensionPolicy::OnStateChanges
    ));
    let mut browser = Browser::default();
    let first = browser.go(&app, get("/")).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(fake.command_names()[0], vec!["SET", "GET"]);
    assert_eq!(fake.requests(), 2, "the retry found its own state");
    let key = target.only_key().await;
    assert_eq!(browser.go(&app, get("/")).await.json()["visits"], 2);
    assert_eq!(target.only_key().await, key);
}

/// Captures this thread's tracing output (every level).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A session on a healthy fake, then a fault: what the user sees on a request that needs the
/// store, and everything logged meanwhile.
async fn under_fault(fault: ResponseTemplate) -> (Answer, Answer, String, String) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let target = Target::fake().await;
    let fake = target.fake.as_ref().unwrap();
    let mut config = ClientConfig::new(
        reqwest::Url::parse(&target.url).unwrap(),
        FAKE_TOKEN,
        Duration::from_millis(800),
    );
    config.attempt_timeout = Duration::from_millis(250);
    let store = UpstashSessionStore::builder(UpstashClient::new(config).unwrap())
        .key_prefix(target.prefix.clone())
        .build();
    let app = app!(middleware(
        store,
        CookieContentSecurity::Signed,
        TtlExtensionPolicy::OnStateChanges
    ));
    let mut browser = Browser::default();
    browser.go(&app, post("/login/ivan")).await;
    let key = target.only_key().await;
    Mock::given(method("POST"))
        .respond_with(fault)
        .with_priority(1)
        .mount(&fake.server)
        .await;
    let with_session = browser.go(&app, get("/peek")).await;
    let new_session = send(&app, get("/"), None).await;
    let cookie = browser.cookie.as_ref().unwrap().value().to_owned();
    (
        with_session,
        new_session,
        logs.text(),
        format!("{key}\n{cookie}"),
    )
}

async fn check_opaque_500(fault: ResponseTemplate, what: &str) {
    let (with_session, new_session, logs, secrets) = under_fault(fault).await;
    for answer in [&with_session, &new_session] {
        assert_eq!(answer.status, 500, "{what}: {answer:?}");
        assert_eq!(answer.body, "", "{what}: an opaque 500");
        assert!(answer.cookie.is_none(), "{what}: no cookie on failure");
    }
    let error = with_session.error.unwrap();
    assert!(
        error.contains("the Upstash call (GET) failed"),
        "{what}: {error}"
    );
    let new_error = new_session.error.unwrap();
    assert!(new_error.contains("SET NX"), "{what}: {new_error}");
    assert!(
        logs.contains("actix_session_store_failed"),
        "{what}: {logs}"
    );
    let random = secrets.lines().next().unwrap().rsplit(':').next().unwrap();
    for text in [&logs, &error, &new_error] {
        assert!(
            !text.contains(FAKE_TOKEN),
            "{what}: the token leaked: {text}"
        );
        for secret in secrets.lines().chain([random]) {
            assert!(
                !text.contains(secret),
                "{what}: a key or cookie leaked: {text}"
            );
        }
    }
}

#[actix_web::test]
async fn upstash_answering_503_gives_the_user_an_opaque_500_and_logs_no_secret() {
    let fault = ResponseTemplate::new(503).set_body_string(r#"{"error":"unavailable"}"#);
    check_opaque_500(fault, "503").await;
}

#[actix_web::test]
async fn upstash_hanging_past_the_deadline_gives_the_user_an_opaque_500() {
    let fault = ResponseTemplate::new(200).set_delay(Duration::from_secs(30));
    check_opaque_500(fault, "hang").await;
}

#[actix_web::test]
async fn upstash_answering_garbage_gives_the_user_an_opaque_500() {
    check_opaque_500(
        ResponseTemplate::new(200).set_body_string("<html>502 Bad Gateway</html>"),
        "not JSON",
    )
    .await;
    check_opaque_500(
        ResponseTemplate::new(200).set_body_string(r#"{"result":true}"#),
        "wrong shape",
    )
    .await;
}

#[actix_web::test]
async fn upstash_unreachable_gives_the_user_an_opaque_500() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = ClientConfig::new(
        reqwest::Url::parse(&url).unwrap(),
        FAKE_TOKEN,
        Duration::from_millis(500),
    );
    config.attempt_timeout = Duration::from_millis(200);
    let app = app!(middleware(
        UpstashSessionStore::new(UpstashClient::new(config).unwrap()),
        CookieContentSecurity::Private,
        TtlExtensionPolicy::OnStateChanges
    ));
    let answer = send(&app, get("/"), None).await;
    assert_eq!((answer.status, answer.body.as_str()), (500, ""));
    assert!(!answer.error.unwrap().contains(FAKE_TOKEN));
}

#[actix_web::test]
async fn the_default_prefix_stays_apart_from_the_services_own_keys() {
    assert_eq!(DEFAULT_KEY_PREFIX, "actix-session:");
    for theirs in ["session:", "user_sessions:"] {
        assert!(!DEFAULT_KEY_PREFIX.starts_with(theirs));
        assert!(!theirs.starts_with(DEFAULT_KEY_PREFIX));
    }
    let fake = FakeUpstash::start().await;
    let url = reqwest::Url::parse(&fake.uri()).unwrap();
    let client = UpstashClient::new(ClientConfig::new(url, FAKE_TOKEN, Duration::from_secs(3)));
    let app = app!(SessionMiddleware::new(
        UpstashSessionStore::new(client.unwrap()),
        Key::generate()
    ));
    let answer = send(&app, get("/"), None).await;
    assert_eq!(answer.status, 200);
    let set = &fake.command_names()[0];
    assert_eq!(set, &vec!["SET", "GET"]);
    let raw = Target {
        url: fake.uri(),
        token: FAKE_TOKEN.to_owned(),
        prefix: DEFAULT_KEY_PREFIX.to_owned(),
        fake: None,
    };
    let keys = raw.keys().await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].len(), DEFAULT_KEY_PREFIX.len() + 64);
}

/// The example app (examples/actix_session_upstash.rs) walked like a browser: visits are
/// counted, a user logs in and out, and the session key appears with the 30-minute TTL and
/// goes away on logout. Against upstash-on-redis too, under scripts/e2e-store.sh.
async fn the_example_app_counts_visits_and_logs_a_user_in_and_out(target: Target) {
    let store = UpstashSessionStore::builder(target.client_with(Duration::from_secs(3)))
        .key_prefix(target.prefix.clone())
        .build();
    let app = test::init_service(
        App::new()
            .wrap(example::middleware(store, Key::generate()))
            .configure(example::configure),
    )
    .await;
    let mut browser = Browser::default();
    let seen = browser.go(&app, get("/")).await.json();
    assert_eq!(seen, serde_json::json!({ "visits": 1, "user": null }));
    let login = browser.go(&app, post("/login/alice")).await;
    assert_eq!(login.json(), serde_json::json!({ "user": "alice" }));
    let seen = browser.go(&app, get("/")).await.json();
    assert_eq!(seen, serde_json::json!({ "visits": 2, "user": "alice" }));
    let key = target.only_key().await;
    assert!(
        (1790..=1800).contains(&target.ttl(&key).await),
        "30-minute sessions"
    );
    let out = browser.go(&app, post("/logout")).await;
    assert_eq!(out.json(), serde_json::json!({ "user": null }));
    assert_eq!(target.keys().await, Vec::<String>::new());
    let seen = browser.go(&app, get("/")).await.json();
    assert_eq!(seen, serde_json::json!({ "visits": 1, "user": null }));
}

mod the_example_app_counts_visits_and_logs_a_user_in_and_out {
    use super::Target;

    #[actix_web::test]
    async fn on_the_fake() {
        super::the_example_app_counts_visits_and_logs_a_user_in_and_out(Target::fake().await).await;
    }

    #[actix_web::test]
    async fn on_upstash_on_redis() {
        if let Some(target) = Target::e2e() {
            super::the_example_app_counts_visits_and_logs_a_user_in_and_out(target).await;
        }
    }
}
