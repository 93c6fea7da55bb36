//! An in-process fake of the Upstash Redis REST API on wiremock: `POST /`, `/pipeline` and
//! `/multi-exec`, bearer auth, `Upstash-Encoding: base64`, `upstash-sync-token`, and the Redis
//! string, expiry and sorted-set commands the store uses (and `KEYS prefix*` for tests to
//! look around), with real-time expiry, and
//! `EVAL`/`EVALSHA` of the store's two Lua scripts (the session data merge, and the listing's
//! read of a few fields), each run by a Rust twin of the script, with Redis's script cache and
//! `NOSCRIPT` answer. The Lua itself runs only against real Redis (`scripts/e2e-store.sh`).
//!
//! The handler is mounted at priority 10, so a test can mount fault mocks of higher priority
//! (e.g. `Mock::given(..).respond_with(..).with_priority(1)`) on `server`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value as Json};
use upstash_sessions::store::{
    upstash::{list_script_sha, merge_script_sha, LIST_SCRIPT, MERGE_SCRIPT},
    AppData, SessionData,
};
use wiremock::{matchers::any, Mock, MockServer, Request, ResponseTemplate};

pub const FAKE_TOKEN: &str = "test-token";

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const SYNTAX: &str = "ERR syntax error";

enum Data {
    Str(String),
    ZSet(BTreeMap<String, f64>),
}

struct Entry {
    data: Data,
    expires: Option<Instant>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Entry>,
    requests: u64,
    commands: u64,
    /// Bytes of reply bodies sent (what Upstash bills as bandwidth), every answer counted.
    reply_bytes: u64,
    names: Vec<Vec<String>>,
    sync: u64,
    last_sync: Option<String>,
    /// Tokens accepted besides [`FAKE_TOKEN`] (a database with a rotated token).
    extra_tokens: Vec<String>,
    /// SHA-1s of the scripts loaded by EVAL (Redis's script cache).
    scripts: HashSet<String>,
}

impl State {
    /// Drops every expired key, so expired keys are invisible to everything after.
    fn purge(&mut self) {
        let now = Instant::now();
        self.keys.retain(|_, e| e.expires.is_none_or(|t| t > now));
    }

    /// The sorted set at `key`: `Ok(None)` when missing, WRONGTYPE when a string.
    fn zset(&mut self, key: &str) -> Result<Option<&mut BTreeMap<String, f64>>, String> {
        match self.keys.get_mut(key).map(|e| &mut e.data) {
            None => Ok(None),
            Some(Data::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(WRONGTYPE.into()),
        }
    }

    /// The string at `key`: `Ok(None)` when missing, WRONGTYPE when a sorted set.
    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.keys.get(key).map(|e| &e.data) {
            None => Ok(None),
            Some(Data::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(WRONGTYPE.into()),
        }
    }

    fn insert(&mut self, key: &str, data: Data, expires: Option<Instant>) {
        self.keys.insert(key.to_owned(), Entry { data, expires });
    }

    fn drop_if_empty(&mut self, key: &str) {
        if matches!(self.keys.get(key), Some(Entry { data: Data::ZSet(z), .. }) if z.is_empty()) {
            self.keys.remove(key);
        }
    }
}

pub struct FakeUpstash {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl FakeUpstash {
    /// Starts the server and mounts the fake at priority 10.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        Mock::given(any())
            .respond_with(move |req: &Request| handle(&shared, req))
            .with_priority(10)
            .mount(&server)
            .await;
        Self { server, state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The state, expired keys purged.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.purge();
        st
    }

    /// Authorized, well-formed requests served (a pipeline or transaction counts once).
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    /// Commands executed (a discarded transaction executes none).
    pub fn commands(&self) -> u64 {
        self.state().commands
    }

    /// Per served request, the upper-cased command names in order.
    pub fn command_names(&self) -> Vec<Vec<String>> {
        self.state().names.clone()
    }

    /// Bytes of reply bodies sent, as upstash-on-redis's `/__stats` counts them.
    pub fn reply_bytes(&self) -> u64 {
        self.state().reply_bytes
    }

    pub fn reset_counters(&self) {
        let mut st = self.state();
        st.requests = 0;
        st.commands = 0;
        st.reply_bytes = 0;
        st.names.clear();
    }

    /// The last `upstash-sync-token` request header received.
    pub fn last_sync_token_received(&self) -> Option<String> {
        self.state().last_sync.clone()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.state().keys.contains_key(key)
    }

    /// `None`: missing or expired; `Some(-1)`: no expiry; else whole seconds left, rounded up.
    pub fn ttl(&self, key: &str) -> Option<i64> {
        self.state()
            .keys
            .get(key)
            .map(|e| ttl_ms(e).map_or(-1, ceil_secs))
    }

    pub fn zcard(&self, key: &str) -> usize {
        self.state().zset(key).ok().flatten().map_or(0, |z| z.len())
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.state().string(key).ok().flatten()
    }

    /// A responder that applies a request to this fake's state, for tests that wrap it (for
    /// example: apply the command, then lose the answer).
    pub fn applier(&self) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
        let state = Arc::clone(&self.state);
        move |req: &Request| handle(&state, req)
    }

    /// Accepts `token` too, as a database does while its token is being rotated.
    pub fn accept_token(&self, token: &str) {
        self.state().extra_tokens.push(token.to_owned());
    }

    /// Plants a string value without TTL (for corrupt-record tests).
    pub fn set_raw(&self, key: &str, value: &str) {
        self.state().insert(key, Data::Str(value.to_owned()), None);
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn error(message: &str) -> Json {
    json!({ "error": message })
}

fn handle(state: &Mutex<State>, req: &Request) -> ResponseTemplate {
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    st.sync += 1;
    let token = format!("fake-{}", st.sync);
    if let Some(received) = header(req, "upstash-sync-token") {
        st.last_sync = Some(received);
    }
    let (status, body) = route(&mut st, req);
    let body = serde_json::to_vec(&body).unwrap_or_default();
    st.reply_bytes += body.len() as u64;
    ResponseTemplate::new(status)
        .insert_header("upstash-sync-token", token.as_str())
        .set_body_raw(body, "application/json")
}

fn route(st: &mut State, req: &Request) -> (u16, Json) {
    let path = req.url.path();
    if !matches!(path, "/" | "/pipeline" | "/multi-exec") {
        return (404, error("ERR endpoint not found"));
    }
    if req.method.as_str() != "POST" {
        return (405, error("ERR method not allowed"));
    }
    let authorized = header(req, "authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .is_some_and(|t| t == FAKE_TOKEN || st.extra_tokens.contains(&t));
    if !authorized {
        return (401, error("WRONGPASS invalid or missing auth token"));
    }
    if header(req, "content-type").as_deref() != Some("application/json") {
        return (400, error("ERR content type must be application/json"));
    }
    let base64 = header(req, "upstash-encoding").is_some_and(|v| v.eq_ignore_ascii_case("base64"));
    let parsed: Option<Vec<Vec<String>>> = match serde_json::from_slice::<Json>(&req.body) {
        Ok(body) if path == "/" => parse_command(&body).map(|c| vec![c]),
        Ok(Json::Array(items)) if !items.is_empty() => items.iter().map(parse_command).collect(),
        _ => None,
    };
    let Some(commands) = parsed else {
        return (400, error("ERR failed to parse command"));
    };
    st.requests += 1;
    st.names
        .push(commands.iter().map(|c| c[0].to_ascii_uppercase()).collect());
    if path == "/multi-exec" {
        // Queue-time errors (unknown command, arity) discard the whole transaction.
        if let Some(Err(message)) = commands.iter().map(|c| check(c)).find(Result::is_err) {
            let message = format!("EXECABORT Transaction discarded: {message}");
            return (400, error(&message));
        }
    }
    st.commands += commands.len() as u64;
    let mut items: Vec<(u16, Json)> = (commands.iter())
        .map(|c| match exec(st, c) {
            Ok(result) if base64 => (200, json!({ "result": encode(result, true) })),
            Ok(result) => (200, json!({ "result": result })),
            Err(message) => (400, error(&message)),
        })
        .collect();
    match items.pop() {
        Some(single) if path == "/" => single,
        last => (200, items.into_iter().chain(last).map(|i| i.1).collect()),
    }
}

/// A command array: non-empty, every element a JSON string or number.
fn parse_command(value: &Json) -> Option<Vec<String>> {
    let Json::Array(parts) = value else {
        return None;
    };
    if parts.is_empty() {
        return None;
    }
    parts
        .iter()
        .map(|p| match p {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// Every string in a result is base64, except a bare top-level "OK".
fn encode(value: Json, top: bool) -> Json {
    match value {
        Json::String(s) if top && s == "OK" => Json::String(s),
        Json::String(s) => Json::String(STANDARD.encode(s)),
        Json::Array(items) => Json::Array(items.into_iter().map(|v| encode(v, false)).collect()),
        other => other,
    }
}

/// Arity (command name included): minimum and maximum.
fn arity(name: &str) -> Option<(usize, usize)> {
    const MANY: usize = usize::MAX;
    Some(match name {
        "PING" => (1, 2),
        "GET" | "TTL" | "PTTL" | "ZCARD" | "KEYS" => (2, 2),
        "SET" => (3, MANY),
        "GETEX" | "DEL" | "EXISTS" | "MGET" => (2, MANY),
        "EXPIRE" | "EXPIREAT" => (3, 4),
        "ZADD" | "ZRANGE" | "ZREMRANGEBYSCORE" => {
            (4, if name == "ZREMRANGEBYSCORE" { 4 } else { MANY })
        }
        "ZREM" => (3, MANY),
        "ZSCORE" => (3, 3),
        "EVAL" | "EVALSHA" => (3, MANY),
        _ => return None,
    })
}

/// Queue-time checks: the command exists and has a valid number of arguments.
fn check(args: &[String]) -> Result<String, String> {
    let name = args[0].to_ascii_uppercase();
    let Some((min, max)) = arity(&name) else {
        return Err(format!("ERR unknown command '{}'", args[0]));
    };
    if args.len() < min || args.len() > max {
        let lower = args[0].to_ascii_lowercase();
        return Err(format!(
            "ERR wrong number of arguments for '{lower}' command"
        ));
    }
    Ok(name)
}

fn int(s: &str) -> Result<i64, String> {
    s.parse().map_err(|_| NOT_INT.to_string())
}

fn float(s: &str) -> Result<f64, String> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        t if t.contains("inf") || t.contains("nan") => Err(NOT_FLOAT.into()),
        t => t.parse().map_err(|_| NOT_FLOAT.to_string()),
    }
}

/// Redis' rendering of a score: integers without ".0".
fn score_str(score: f64) -> String {
    if score.is_infinite() {
        (if score > 0.0 { "inf" } else { "-inf" }).into()
    } else if score.fract() == 0.0 && score.abs() < 1e17 {
        format!("{}", score as i64)
    } else {
        format!("{score}")
    }
}

fn ttl_ms(entry: &Entry) -> Option<i64> {
    let left = entry.expires?.saturating_duration_since(Instant::now());
    Some(left.as_millis().min(i64::MAX as u128) as i64)
}

fn ceil_secs(ms: i64) -> i64 {
    (ms + 999) / 1000
}

/// `now + ms` (a past deadline when `ms <= 0`), saturating far in the future.
fn after_ms(ms: i64) -> Instant {
    let now = Instant::now();
    if ms <= 0 {
        return now;
    }
    let far = Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(Duration::from_millis(ms as u64).min(far))
        .unwrap_or(now)
}

/// The instant of a unix time in milliseconds (now, when already past).
fn at_unix_ms(ms: i64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    after_ms(ms.saturating_sub(now_ms))
}

/// Parses an expiry option (`EX`, `PX`, `EXAT`, `PXAT`) and its value into a deadline.
fn deadline(option: &str, value: &str, cmd: &str) -> Result<Instant, String> {
    let n = int(value)?;
    let invalid = || format!("ERR invalid expire time in '{cmd}' command");
    if n <= 0 {
        return Err(invalid());
    }
    let secs = |n: i64| n.checked_mul(1000).ok_or_else(invalid);
    Ok(match option {
        "EX" => after_ms(secs(n)?),
        "PX" => after_ms(n),
        "EXAT" => at_unix_ms(secs(n)?),
        _ => at_unix_ms(n),
    })
}

fn exec(st: &mut State, args: &[String]) -> Result<Json, String> {
    let name = check(args)?;
    st.purge();
    let key = args.get(1).map(String::as_str).unwrap_or_default();
    let upper = |i: usize| args[i].to_ascii_uppercase();
    let keys = args[1..].iter();
    match name.as_str() {
        "PING" => Ok(json!(args.get(1).map_or("PONG", String::as_str))),
        "GET" => Ok(json!(st.string(key)?)),
        "SET" => {
            let (mut expires, mut nx, mut xx) = (None, false, false);
            let mut i = 3;
            while i < args.len() {
                match upper(i).as_str() {
                    "NX" if !xx => nx = true,
                    "XX" if !nx => xx = true,
                    o @ ("EX" | "PX" | "EXAT" | "PXAT") if i + 1 < args.len() => {
                        expires = Some(deadline(o, &args[i + 1], "set")?);
                        i += 1;
                    }
                    _ => return Err(SYNTAX.into()),
                }
                i += 1;
            }
            let exists = st.keys.contains_key(key);
            if (nx && exists) || (xx && !exists) {
                return Ok(Json::Null);
            }
            st.insert(key, Data::Str(args[2].clone()), expires);
            Ok(json!("OK"))
        }
        "GETEX" => {
            let change = match args.len() {
                2 => None,
                3 if upper(2) == "PERSIST" => Some(None),
                4 if matches!(upper(2).as_str(), "EX" | "PX" | "EXAT" | "PXAT") => {
                    Some(Some(deadline(&upper(2), &args[3], "getex")?))
                }
                _ => return Err(SYNTAX.into()),
            };
            let value = st.string(key)?;
            if let (Some(expires), Some(entry)) = (change, st.keys.get_mut(key)) {
                entry.expires = expires;
            }
            Ok(json!(value))
        }
        "DEL" => Ok(json!(keys.filter(|k| st.keys.remove(*k).is_some()).count())),
        // Patterns: an exact key, or a prefix followed by one trailing `*`.
        "KEYS" => {
            let mut found: Vec<&String> = match key.strip_suffix('*') {
                Some(prefix) => st.keys.keys().filter(|k| k.starts_with(prefix)).collect(),
                None => st.keys.keys().filter(|k| *k == key).collect(),
            };
            found.sort();
            Ok(json!(found))
        }
        "EXISTS" => Ok(json!(keys.filter(|k| st.keys.contains_key(*k)).count())),
        "MGET" => Ok(keys.map(|k| json!(st.string(k).ok().flatten())).collect()),
        "EXPIRE" | "EXPIREAT" => {
            let ms = int(&args[2])?.checked_mul(1000).ok_or_else(|| {
                let lower = args[0].to_ascii_lowercase();
                format!("ERR invalid expire time in '{lower}' command")
            })?;
            let when = if name == "EXPIRE" {
                after_ms(ms)
            } else {
                at_unix_ms(ms)
            };
            let Some(entry) = st.keys.get_mut(key) else {
                return Ok(json!(0));
            };
            // Redis 7 options; a key without expiry counts as an infinite one.
            let allowed = match args.get(3).map(|o| o.to_ascii_uppercase()).as_deref() {
                None => true,
                Some("NX") => entry.expires.is_none(),
                Some("XX") => entry.expires.is_some(),
                Some("GT") => entry.expires.is_some_and(|old| when > old),
                Some("LT") => entry.expires.is_none_or(|old| when < old),
                Some(_) => return Err("ERR Unsupported option".into()),
            };
            if !allowed {
                return Ok(json!(0));
            }
            entry.expires = Some(when);
            st.purge();
            Ok(json!(1))
        }
        "TTL" | "PTTL" => Ok(json!(match st.keys.get(key) {
            None => -2,
            Some(entry) => match ttl_ms(entry) {
                None => -1,
                Some(ms) if name == "PTTL" => ms,
                Some(ms) => ceil_secs(ms),
            },
        })),
        "ZADD" => {
            let (nx, xx) = (upper(2) == "NX", upper(2) == "XX");
            let rest = &args[if nx || xx { 3 } else { 2 }..];
            let both = (nx || xx) && matches!(upper(3).as_str(), "NX" | "XX");
            if rest.is_empty() || rest.len() % 2 != 0 || both {
                return Err(SYNTAX.into());
            }
            let pairs = rest
                .chunks(2)
                .map(|p| Ok((float(&p[0])?, p[1].clone())))
                .collect::<Result<Vec<_>, String>>()?;
            if st.zset(key)?.is_none() && !xx {
                st.insert(key, Data::ZSet(BTreeMap::new()), None);
            }
            let Some(z) = st.zset(key)? else {
                return Ok(json!(0));
            };
            let mut added = 0;
            for (score, member) in pairs {
                let known = z.contains_key(&member);
                if (known && !nx) || (!known && !xx) {
                    added += usize::from(z.insert(member, score).is_none());
                }
            }
            st.drop_if_empty(key);
            Ok(json!(added))
        }
        "ZREM" => {
            let Some(z) = st.zset(key)? else {
                return Ok(json!(0));
            };
            let removed = args[2..].iter().filter(|m| z.remove(*m).is_some()).count();
            st.drop_if_empty(key);
            Ok(json!(removed))
        }
        "ZRANGE" => {
            let (start, stop) = (int(&args[2])?, int(&args[3])?);
            let with_scores = match args.len() {
                4 => false,
                5 if upper(4) == "WITHSCORES" => true,
                _ => return Err(SYNTAX.into()),
            };
            let Some(z) = st.zset(key)? else {
                return Ok(json!([]));
            };
            let mut sorted: Vec<(&String, f64)> = z.iter().map(|(m, s)| (m, *s)).collect();
            sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            let len = sorted.len() as i64;
            let start = (if start < 0 { start + len } else { start }).max(0);
            let stop = (if stop < 0 { stop + len } else { stop }).min(len - 1);
            if start > stop || start >= len {
                return Ok(json!([]));
            }
            let mut out = Vec::new();
            for (member, score) in &sorted[start as usize..=stop as usize] {
                out.push(json!(member));
                if with_scores {
                    out.push(json!(score_str(*score)));
                }
            }
            Ok(Json::Array(out))
        }
        "ZREMRANGEBYSCORE" => {
            let bound = |s: &str| {
                let open = s.strip_prefix('(');
                let value = float(open.unwrap_or(s)).map_err(|_| "ERR min or max is not a float");
                Ok::<_, String>((value?, open.is_some()))
            };
            let ((min, min_ex), (max, max_ex)) = (bound(&args[2])?, bound(&args[3])?);
            let Some(z) = st.zset(key)? else {
                return Ok(json!(0));
            };
            let before = z.len();
            z.retain(|_, s| {
                let above = if min_ex { *s > min } else { *s >= min };
                let below = if max_ex { *s < max } else { *s <= max };
                !(above && below)
            });
            let removed = before - z.len();
            st.drop_if_empty(key);
            Ok(json!(removed))
        }
        "ZSCORE" => {
            let score = st.zset(key)?.and_then(|z| z.get(&args[2]).copied());
            Ok(json!(score.map(score_str)))
        }
        "ZCARD" => Ok(json!(st.zset(key)?.map_or(0, |z| z.len()))),
        "EVAL" | "EVALSHA" => {
            let sha = if name == "EVAL" {
                let sha = match args[1].as_str() {
                    MERGE_SCRIPT => merge_script_sha(),
                    LIST_SCRIPT => list_script_sha(),
                    _ => return Err("ERR the fake runs only the store's own scripts".into()),
                };
                st.scripts.insert(sha.to_owned());
                sha.to_owned()
            } else if st.scripts.contains(&args[1].to_ascii_lowercase()) {
                args[1].to_ascii_lowercase()
            } else {
                return Err("NOSCRIPT No matching script. Please use EVAL.".into());
            };
            let keys = usize::try_from(int(&args[2])?).map_err(|_| NOT_INT.to_owned())?;
            let (keys, argv) = args[3..]
                .split_at_checked(keys)
                .ok_or("ERR Number of keys can't be greater than number of args")?;
            if sha == merge_script_sha() {
                if keys.len() != 1 || argv.len() != 4 {
                    return Err("ERR the merge script takes 1 key and 4 arguments".into());
                }
                merge_script(st, &keys[0], argv)
            } else {
                if argv.len() != 1 {
                    return Err("ERR the list script takes 1 argument".into());
                }
                list_script(st, keys, &argv[0])
            }
        }
        _ => Err(format!("ERR unknown command '{}'", args[0])),
    }
}

/// What `src/store/merge.lua` does, on this fake's state.
fn merge_script(st: &mut State, key: &str, argv: &[String]) -> Result<Json, String> {
    let Some(record) = st.string(key)? else {
        return Ok(json!(["gone"]));
    };
    let Ok(mut session) = serde_json::from_str::<SessionData>(&record) else {
        return Ok(json!(["corrupt"]));
    };
    if int(&argv[2])? >= (session.absolute_expires_at as i64).saturating_mul(1000) {
        st.keys.remove(key);
        return Ok(json!(["expired"]));
    }
    let Ok(merged) = AppData::parse(&argv[0]).and_then(|patch| session.data.merge(&patch)) else {
        return Ok(json!(["corrupt"]));
    };
    if merged.len() as i64 > int(&argv[3])? {
        return Ok(json!(["too_large", merged.len()]));
    }
    session.data = merged;
    let record = serde_json::to_string(&session).map_err(|e| e.to_string())?;
    let expires = deadline("EX", &argv[1], "set")?;
    st.insert(key, Data::Str(record.clone()), Some(expires));
    Ok(json!(["ok", record]))
}

/// What `src/store/list.lua` does, on this fake's state: per key, nil when missing or another
/// user's, else the record's `created_at` and `absolute_expires_at` digits ("corrupt" when it
/// does not read as a record).
fn list_script(st: &mut State, keys: &[String], user_json: &str) -> Result<Json, String> {
    #[derive(serde::Deserialize)]
    struct Fields<'a> {
        #[serde(borrow)]
        user: &'a serde_json::value::RawValue,
        created_at: &'a serde_json::value::RawValue,
        absolute_expires_at: &'a serde_json::value::RawValue,
    }
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(record) = st.string(key)? else {
            out.push(Json::Null);
            continue;
        };
        match serde_json::from_str::<Fields>(&record) {
            Err(_) => out.push(json!("corrupt")),
            Ok(f) if f.user.get() != user_json => out.push(Json::Null),
            Ok(f) => out.push(json!([f.created_at.get(), f.absolute_expires_at.get()])),
        }
    }
    Ok(Json::Array(out))
}

// ---- Tests of the fake itself, over real HTTP. ----

const AUTH: (&str, &str) = ("Authorization", "Bearer test-token");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// POSTs `body` with exactly `headers`; answers the status, the JSON body and the sync token.
async fn send(
    fake: &FakeUpstash,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Json, String) {
    let mut request = reqwest::Client::new().post(format!("{}{path}", fake.uri()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_owned()).send().await.unwrap();
    let token = response.headers()["upstash-sync-token"].to_str().unwrap();
    let (status, token) = (response.status().as_u16(), token.to_owned());
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (status, body, token)
}

async fn post(fake: &FakeUpstash, path: &str, body: Json) -> (u16, Json) {
    let (status, body, _) = send(fake, path, &body.to_string(), &[AUTH, JSON]).await;
    (status, body)
}

/// `redis!(fake, [command..] => result)`: one command on `POST /` answers 200 `{"result": ..}`.
macro_rules! redis {
    ($fake:expr, $cmd:tt => $result:tt) => {
        let expected = (200, json!({ "result": $result }));
        assert_eq!(post(&$fake, "/", json!($cmd)).await, expected, "{}", json!($cmd))
    };
}

#[tokio::test]
async fn fake_upstash_expires_keys_and_honours_nx() {
    let fake = FakeUpstash::start().await;
    redis!(fake, ["SET", "k", "v", "PX", 400] => "OK");
    redis!(fake, ["set", "k", "w", "NX"] => null);
    redis!(fake, ["GET", "k"] => "v");
    assert_eq!(fake.ttl("k"), Some(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!fake.exists("k"));
    redis!(fake, ["TTL", "k"] => (-2));
    redis!(fake, ["SET", "k", "w", "NX", "EX", "900"] => "OK");
    redis!(fake, ["TTL", "k"] => 900);
    redis!(fake, ["SET", "k", "x", "XX"] => "OK");
    assert_eq!(fake.ttl("k"), Some(-1), "SET clears the old TTL");
    redis!(fake, ["GETEX", "k", "EX", 60] => "x");
    assert_eq!(fake.ttl("k"), Some(60));
    redis!(fake, ["GETEX", "k", "PERSIST"] => "x");
    redis!(fake, ["TTL", "k"] => (-1));
    redis!(fake, ["EXPIREAT", "k", 1] => 1);
    assert_eq!(fake.get("k"), None);
    redis!(fake, ["EXPIRE", "k", 5] => 0);
    redis!(fake, ["SET", "p:b", "1"] => "OK");
    redis!(fake, ["SET", "p:a", "1"] => "OK");
    redis!(fake, ["KEYS", "p:*"] => ["p:a", "p:b"]);
    redis!(fake, ["KEYS", "p:a"] => ["p:a"]);
    assert_eq!(fake.requests(), 16);
    assert_eq!(fake.command_names()[1], vec!["SET".to_string()]);
}

#[tokio::test]
async fn fake_upstash_orders_and_trims_sorted_sets() {
    let fake = FakeUpstash::start().await;
    redis!(fake, ["ZADD", "z", 3, "c", "1", "a", "2", "b", "1", "aa"] => 4);
    redis!(fake, ["ZADD", "z", "1795673823", "a", "2.5", "b"] => 0);
    redis!(fake, ["ZADD", "z", "NX", "7", "a", "7", "d"] => 1);
    redis!(fake, ["ZSCORE", "z", "a"] => "1795673823");
    redis!(fake, ["ZSCORE", "z", "b"] => "2.5");
    redis!(fake, ["ZSCORE", "z", "nope"] => null);
    redis!(fake, ["ZRANGE", "z", 0, -1] => ["aa", "b", "c", "d", "a"]);
    redis!(fake, ["ZRANGE", "z", -2, 100, "WITHSCORES"] => ["d", "7", "a", "1795673823"]);
    redis!(fake, ["ZRANGE", "z", 3, 1] => []);
    redis!(fake, ["ZREMRANGEBYSCORE", "z", "-inf", "(3"] => 2);
    redis!(fake, ["ZREMRANGEBYSCORE", "z", "(7", "+inf"] => 1);
    assert_eq!(fake.zcard("z"), 2);
    redis!(fake, ["ZREM", "z", "c", "d", "x"] => 2);
    assert!(!fake.exists("z"), "an emptied sorted set is deleted");
    fake.set_raw("s", "plain");
    let wrong = post(&fake, "/", json!(["ZCARD", "s"])).await;
    assert_eq!(wrong, (400, error(WRONGTYPE)));
    let wrong = post(&fake, "/", json!(["ZADD", "s", "x", "m"])).await;
    assert_eq!(wrong, (400, error(NOT_FLOAT)));
    redis!(fake, ["DEL", "s", "z", "s"] => 1);
}

#[tokio::test]
async fn fake_upstash_speaks_pipelines_base64_auth_and_errors() {
    let fake = FakeUpstash::start().await;
    let body = r#"[["SET","a","1"],["MGET","a","b"],["PING"],["NOPE"],["GET"]]"#;
    let base64 = ("Upstash-Encoding", "base64");
    let (status, reply, token) = send(&fake, "/pipeline", body, &[AUTH, JSON, base64]).await;
    let expected = json!([
        {"result": "OK"},
        {"result": ["MQ==", null]},
        {"result": "UE9ORw=="},
        {"error": "ERR unknown command 'NOPE'"},
        {"error": "ERR wrong number of arguments for 'get' command"}
    ]);
    assert_eq!((status, reply, token.as_str()), (200, expected, "fake-1"));
    let reply = post(&fake, "/multi-exec", json!([["DEL", "a"], ["EXISTS", "a"]])).await;
    assert_eq!(reply, (200, json!([{"result": 1}, {"result": 0}])));
    let reply = post(&fake, "/multi-exec", json!([["SET", "a", "2"], ["BOGUS"]])).await;
    assert_eq!(reply.0, 400);
    assert!(!fake.exists("a"), "a discarded transaction runs nothing");
    assert_eq!(fake.commands(), 7);
    assert_eq!(fake.command_names()[2], vec!["SET", "BOGUS"]);

    let sync = ("upstash-sync-token", "fake-2");
    let (status, _, token) = send(&fake, "/", r#"["PING"]"#, &[JSON, sync]).await;
    assert_eq!((status, token.as_str()), (401, "fake-4"));
    assert_eq!(fake.last_sync_token_received().as_deref(), Some("fake-2"));
    let (status, reply, _) = send(&fake, "/", r#"["SET", {"#, &[AUTH, JSON]).await;
    assert_eq!((status, reply), (400, error("ERR failed to parse command")));
    let text = ("Content-Type", "text/plain");
    assert_eq!(send(&fake, "/", r#"["PING"]"#, &[AUTH, text]).await.0, 400);
    assert_eq!(fake.requests(), 3);
    fake.reset_counters();
    let counters = (fake.requests(), fake.commands(), fake.command_names().len());
    assert_eq!(counters, (0, 0, 0));
}
