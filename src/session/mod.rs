//! Session logic: ids, signed cookies, idle and absolute lifetimes, rotation on login, and
//! the per-user operations. It sits between the HTTP routes and the [`SessionStore`]; it knows
//! cookies but not routes, and stores only through the trait.
//!
//! [`SessionManager`] (here) runs the operations; `signing.rs` holds the keys and the signer
//! of cookie values, `cookie_header.rs` reads our cookie from a request's `Cookie` headers,
//! `set_cookie.rs` writes the `Set-Cookie` answers, `deadline.rs` gives one request's store
//! calls one shared deadline, and `metrics.rs` counts lifecycle events.

mod cookie_header;
mod deadline;
pub mod metrics;
pub mod readiness;
mod set_cookie;
pub mod signing;

/// The module's former name (it holds the signing keys, not cookie parsing), kept so code
/// written against `session::cookie::..` still compiles.
#[doc(hidden)]
pub use signing as cookie;

use std::{future::Future, sync::Arc, time::Duration};

use actix_web::{
    cookie::{Cookie, SameSite},
    http::header::HeaderValue,
};

pub use cookie_header::{CookieState, MAX_SESSION_COOKIES};
pub use metrics::SessionMetrics;
pub use signing::{CookieSigner, KeySource, SigningKey};
// Re-exported from `domain`, where they live, so `session::{Username, UsernameError}` and
// `session::username` keep naming them.
pub use crate::domain::{username, Username, UsernameError};

use deadline::Deadline;
use readiness::Readiness;
use set_cookie::SetCookie;

use crate::{
    domain::{
        clock::unix_millis as now_ms, AppData, DataError, SessionData, SessionId,
        DEFAULT_MAX_DATA_BYTES,
    },
    store::{Created, ListedSession, Merged, SessionStore, StoreError},
};

/// Lifetimes and cookie attributes.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Idle expiry: a session unused this long ends; each read slides it.
    pub idle_ttl: Duration,
    /// Absolute lifetime from login, never extended.
    pub absolute_ttl: Duration,
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Whether the session cookie has the `Secure` attribute.
    pub cookie_secure: bool,
    /// The session cookie's `SameSite` attribute.
    pub same_site: SameSite,
    /// Budget of one request's store work; `None` for stores that cannot stall (memory).
    pub deadline: Option<Duration>,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed: it timed out, could not be reached, or held a corrupt record.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fresh random ids kept colliding: the generator or the store is broken.
    #[error("could not allocate a free session id")]
    NoFreeId,
    /// The session cookie cannot be a header value (a cookie name with invalid bytes).
    #[error("the session cookie is not a valid header value")]
    InvalidCookie(#[from] actix_web::http::header::InvalidHeaderValue),
    /// Data that cannot be stored: not an object, too deep, or too large.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// What a failed session operation means to its caller, so the HTTP layer can answer without
/// knowing the store's error variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The store did not answer within the request's deadline.
    TimedOut,
    /// The store failed or refused; a later attempt may succeed.
    Unavailable,
    /// The store sent nothing: the instance's command budget is spent for now.
    OverBudget,
    /// The store is at its bound; a later attempt may succeed, after about this long.
    Full(Duration),
    /// The caller's data cannot be stored (see [`SessionError::Data`]).
    BadData,
    /// Anything else: a corrupt record, a broken id generator, an impossible cookie name.
    Internal,
}

impl SessionError {
    /// What this failure means to the caller.
    pub fn kind(&self) -> FailureKind {
        match self {
            SessionError::Store(StoreError::Timeout(_)) => FailureKind::TimedOut,
            SessionError::Store(StoreError::Unavailable(_)) => FailureKind::Unavailable,
            SessionError::Store(StoreError::OverBudget(_)) => FailureKind::OverBudget,
            SessionError::Store(StoreError::Full { retry_after }) => {
                FailureKind::Full(*retry_after)
            }
            SessionError::Data(_) => FailureKind::BadData,
            SessionError::Store(StoreError::Corrupt(_))
            | SessionError::NoFreeId
            | SessionError::InvalidCookie(_) => FailureKind::Internal,
        }
    }
}

/// The live session(s) named by a request's verified cookies, for a request that changes
/// state ([`SessionManager::refresh_sole_live`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoleLive {
    /// No cookie names a live session.
    None,
    /// Exactly one does: the session, read and slid.
    One(ActiveSession),
    /// Two or more do (a sibling subdomain may have planted a live session of its own): acting
    /// on either could do what the user did not mean.
    Several,
}

/// A live session after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// The session's id.
    pub id: SessionId,
    /// The session's record: its user, lifetimes and application data.
    pub data: SessionData,
}

/// Session operations, shared by every worker.
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    signer: CookieSigner,
    config: SessionConfig,
    metrics: SessionMetrics,
    deadline: Deadline,
    set_cookie: SetCookie,
    /// Largest serialized `data` of a session (`SESSION_DATA_MAX_BYTES`).
    max_data_bytes: usize,
    /// The latest readiness check, for [`Self::ready`].
    readiness: Readiness,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("backend", &self.store.backend())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// Session operations on `store`, with cookies signed by `signer`. Session data may be
    /// [`DEFAULT_MAX_DATA_BYTES`] serialized (see [`Self::with_max_data_bytes`]), and nothing
    /// is counted until [`Self::with_metrics`].
    pub fn new(store: Arc<dyn SessionStore>, signer: CookieSigner, config: SessionConfig) -> Self {
        Self {
            store,
            signer,
            metrics: SessionMetrics::none(),
            deadline: Deadline::new(config.deadline),
            set_cookie: SetCookie::new(&config.cookie_name, config.cookie_secure, config.same_site),
            config,
            max_data_bytes: DEFAULT_MAX_DATA_BYTES,
            readiness: Readiness::default(),
        }
    }

    /// Sets the largest serialized `data` a session may hold (default
    /// [`DEFAULT_MAX_DATA_BYTES`]).
    pub fn with_max_data_bytes(mut self, max: usize) -> Self {
        self.max_data_bytes = max;
        self
    }

    /// The largest serialized `data` a session may hold.
    pub fn max_data_bytes(&self) -> usize {
        self.max_data_bytes
    }

    /// Counts lifecycle events on `metrics`.
    pub fn with_metrics(mut self, metrics: SessionMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The store, for health checks and embedding.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The settings in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Runs the handling of one request under one store deadline: every store call made
    /// inside shares the same budget, so a request that needs several calls still answers
    /// within `UPSTASH_TIMEOUT_MS` in total.
    pub async fn request<F: Future>(&self, work: F) -> F::Output {
        self.deadline.scope(work).await
    }

    /// Runs store work within the request's deadline.
    async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.deadline.within(work).await
    }

    /// Finds our cookie among `Cookie` header values (raw bytes: another cookie's non-ASCII
    /// value must not hide ours). With several cookies of our name (a sibling domain may set
    /// one), the first [`MAX_SESSION_COOKIES`] that verify are kept, in order, so the caller
    /// can prefer a live one; the rest are ignored, so one request cannot make the service
    /// spend a store request per cookie it carries.
    pub fn read_cookie<'a>(&self, headers: impl Iterator<Item = &'a [u8]>) -> CookieState {
        cookie_header::read(headers, &self.config.cookie_name, &self.signer)
    }

    /// The first of `ids` that names a live session, read and slid as [`Self::refresh`] does.
    /// One store request when the first is live (always so with a single cookie).
    pub async fn refresh_first_live(
        &self,
        ids: &[SessionId],
    ) -> Result<Option<ActiveSession>, SessionError> {
        for id in ids {
            if let Some(session) = self.refresh(id).await? {
                return Ok(Some(session));
            }
        }
        Ok(None)
    }

    /// The one live session among `ids`, for a request that changes state: reads may take
    /// the first live cookie ([`Self::refresh_first_live`]), but a write must not act on a
    /// planted session in the user's stead. One id costs one store request (as a read does);
    /// several are all read, concurrently (one command each), and their idle expiries slid.
    pub async fn refresh_sole_live(&self, ids: &[SessionId]) -> Result<SoleLive, SessionError> {
        if let [id] = ids {
            return Ok(self
                .refresh(id)
                .await?
                .map_or(SoleLive::None, SoleLive::One));
        }
        let read =
            futures_util::future::try_join_all(ids.iter().map(|id| self.refresh(id))).await?;
        let mut live = read.into_iter().flatten();
        Ok(match (live.next(), live.next()) {
            (None, _) => SoleLive::None,
            (Some(session), None) => SoleLive::One(session),
            (Some(_), Some(_)) => SoleLive::Several,
        })
    }

    /// Creates a session for `user` holding `data` (`AppData::empty()` for none); a session
    /// the client still holds (`previous`) is ended in the same store operation, so a login
    /// never leaves an orphan or a fixed id. Data over the size limit is refused before any
    /// store request.
    ///
    /// With several cookies (`previous` holds more than one id), the first is rotated in the
    /// login's store operation and the others are ended after it.
    pub async fn login(
        &self,
        user: &Username,
        previous: &[SessionId],
        data: AppData,
    ) -> Result<ActiveSession, SessionError> {
        data.check_size(self.max_data_bytes)?;
        // Both ends in whole seconds from the same rounded-down instant, so the absolute
        // lifetime is exactly SESSION_ABSOLUTE_TTL_SECONDS long, never a second more.
        let created_at = now_ms() / 1000;
        let data = SessionData {
            user: user.as_str().to_owned(),
            status: "active".to_owned(),
            created_at,
            absolute_expires_at: created_at.saturating_add(self.config.absolute_ttl.as_secs()),
            data,
        };
        let ttl = self.config.idle_ttl.min(self.config.absolute_ttl);
        let mut replaces = previous.first().copied();
        for _ in 0..3 {
            let id = SessionId::random();
            let created = self
                .within(self.store.create(&id, &data, ttl, replaces.as_ref()))
                .await?;
            if let Some(old) = replaces.take() {
                self.ended(&old, "rotated");
            }
            if created == Created::Created {
                tracing::info!(event = "session_created", session = %id.log_tag(), "session created");
                self.metrics.created();
                // Best effort: the login stands (its old session is already ended in the
                // same operation); a failure here leaves a planted cookie's session to expire.
                for other in previous.iter().skip(1) {
                    match self.within(self.store.delete(other)).await {
                        Ok(true) => {
                            self.ended(other, "rotated");
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(session = %other.log_tag(), error = %error, "could not end a further session cookie at login")
                        }
                    }
                }
                return Ok(ActiveSession { id, data });
            }
            tracing::warn!("a fresh session id was already taken; drawing another");
        }
        Err(SessionError::NoFreeId)
    }

    /// Reads a session and slides its idle expiry. A session past its absolute lifetime is
    /// deleted and reported as gone.
    pub async fn refresh(&self, id: &SessionId) -> Result<Option<ActiveSession>, SessionError> {
        let Some(data) = self
            .within(self.store.load(id, self.config.idle_ttl))
            .await?
        else {
            return Ok(None);
        };
        if now_ms() >= data.absolute_expires_at.saturating_mul(1000) {
            self.within(self.store.delete(id)).await?;
            self.expired(id);
            return Ok(None);
        }
        tracing::debug!(event = "session_refreshed", session = %id.log_tag(), "session refreshed");
        Ok(Some(ActiveSession { id: *id, data }))
    }

    /// Merges `patch` into the session's data (RFC 7396: `null` removes a key, objects merge
    /// recursively) and slides its idle expiry, as [`Self::refresh`] does; one atomic store
    /// operation, so concurrent patches never lose each other's keys and a patch racing a
    /// logout never brings the session back. `None` when the session is gone or past its
    /// absolute lifetime; [`DataError::TooLarge`] (nothing stored) when the result would be
    /// over the size limit.
    ///
    /// ```no_run
    /// # async fn demo(sessions: &upstash_sessions::session::SessionManager,
    /// #               id: upstash_sessions::store::SessionId) -> Result<(), Box<dyn std::error::Error>> {
    /// use upstash_sessions::store::AppData;
    ///
    /// let patch = AppData::parse(r#"{"cart": {"apple": 2}, "flash": null}"#)?;
    /// if let Some(session) = sessions.update(&id, &patch).await? {
    ///     #[derive(serde::Deserialize)]
    ///     struct Cart { apple: u32 }
    ///     #[derive(serde::Deserialize)]
    ///     struct Mine { cart: Cart }
    ///     let mine: Mine = session.data.data.decode()?;
    ///     assert_eq!(mine.cart.apple, 2);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        id: &SessionId,
        patch: &AppData,
    ) -> Result<Option<ActiveSession>, SessionError> {
        self.check_patch(patch)?;
        let merged = self
            .within(self.store.merge(
                id,
                patch,
                self.config.idle_ttl,
                now_ms(),
                self.max_data_bytes,
            ))
            .await?;
        match merged {
            Merged::Merged(data) => {
                tracing::debug!(event = "session_updated", session = %id.log_tag(), bytes = data.data.len(), "session data updated");
                Ok(Some(ActiveSession { id: *id, data }))
            }
            Merged::Gone => Ok(None),
            Merged::Expired => {
                self.expired(id);
                Ok(None)
            }
            Merged::TooLarge { size } => Err(DataError::TooLarge {
                size,
                limit: self.max_data_bytes,
            }
            .into()),
        }
    }

    /// Refuses a patch whose additions alone (part of any result) are over the size limit,
    /// before any store request.
    pub fn check_patch(&self, patch: &AppData) -> Result<(), SessionError> {
        AppData::empty()
            .merge(patch)?
            .check_size(self.max_data_bytes)?;
        Ok(())
    }

    /// Ends a session; `true` when it existed.
    pub async fn logout(&self, id: &SessionId) -> Result<bool, SessionError> {
        let existed = self.within(self.store.delete(id)).await?;
        if existed {
            self.ended(id, "logout");
        }
        Ok(existed)
    }

    /// Every live session of the user of `current`, newest first by login second (logins of
    /// the same second, which the record cannot tell apart, by id, descending); `current` itself always
    /// among them (it was just read live, so an index that lags behind never hides it).
    pub async fn list(&self, current: &ActiveSession) -> Result<Vec<ListedSession>, SessionError> {
        let now = now_ms();
        let mut sessions = self
            .within(self.store.list_user(&current.data.user))
            .await?;
        sessions.retain(|s| now < s.absolute_expires_at.saturating_mul(1000));
        if !sessions.iter().any(|s| s.id == current.id) {
            sessions.push(ListedSession {
                id: current.id,
                created_at: current.data.created_at,
                absolute_expires_at: current.data.absolute_expires_at,
            });
        }
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(sessions)
    }

    /// Ends `target` if it belongs to the user of `current`; `true` when it was ended.
    pub async fn end_one(
        &self,
        current: &ActiveSession,
        target: &SessionId,
    ) -> Result<bool, SessionError> {
        let mut ended = self
            .within(self.store.delete_user_session(&current.data.user, target))
            .await?;
        if !ended && target == &current.id {
            // The request's own session was just read live: end it even if the user's index
            // lags behind (the listing shows it, so ending it must work too).
            ended = self.within(self.store.delete(target)).await?;
        }
        if ended {
            self.ended(target, "ended_by_user");
        }
        Ok(ended)
    }

    /// Ends every session of the user of `current`, that one included: it is deleted by id
    /// too, so a user index that lags behind (or was evicted) cannot leave the caller's own
    /// session alive after "log out everywhere".
    pub async fn end_all(&self, current: &ActiveSession) -> Result<u64, SessionError> {
        let mut ended = self
            .within(self.store.delete_user(&current.data.user))
            .await?;
        if self.within(self.store.delete(&current.id)).await? {
            ended += 1;
        }
        tracing::info!(event = "sessions_ended", session = %current.id.log_tag(), count = ended, reason = "logout_all", "all sessions of a user ended");
        self.metrics.ended("logout_all", ended);
        Ok(ended)
    }

    /// Logs and counts one session ended for `reason` (the `reason` label of
    /// `sessions_ended_total`).
    fn ended(&self, id: &SessionId, reason: &'static str) {
        tracing::info!(event = "session_ended", session = %id.log_tag(), reason, "session ended");
        self.metrics.ended(reason, 1);
    }

    /// Logs and counts one session found past its absolute lifetime.
    fn expired(&self, id: &SessionId) {
        tracing::info!(event = "session_expired", session = %id.log_tag(), reason = "absolute_lifetime", "session ended");
        self.metrics.expired();
    }

    /// Checks the store within the deadline.
    pub async fn ping(&self) -> Result<(), SessionError> {
        Ok(self.within(self.store.ping()).await?)
    }

    /// Whether the store answers, from a [`Self::ping`] at most [`readiness::MAX_AGE`] old
    /// (its failure included): however often it is asked, about one `PING` a second.
    pub async fn ready(&self) -> Result<(), SessionError> {
        self.readiness.get(self.ping()).await
    }

    /// The `Set-Cookie` for a live session: `Max-Age` is the idle TTL, capped by what is
    /// left of the absolute lifetime.
    ///
    /// Fails only for a cookie name that cannot be in a header (the service's settings
    /// refuse such names; a library caller building `SessionConfig` by hand might not).
    pub fn session_cookie(&self, session: &ActiveSession) -> Result<HeaderValue, SessionError> {
        let left = session
            .data
            .absolute_expires_at
            .saturating_mul(1000)
            .saturating_sub(now_ms())
            / 1000;
        let max_age = self.config.idle_ttl.as_secs().min(left);
        Ok(self.set_cookie.live(&self.signer, &session.id, max_age)?)
    }

    /// The `Set-Cookie` that clears the session cookie, with the attributes it was set with.
    pub fn removal_cookie(&self) -> Cookie<'static> {
        self.set_cookie.removal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use proptest::prelude::*;

    fn manager() -> SessionManager {
        // A store is needed to build the manager; these tests never reach it.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(async { MemoryStore::new() });
        SessionManager::new(
            Arc::new(store),
            CookieSigner::new(SigningKey::random(), None),
            default_config(),
        )
    }

    /// The service's defaults: 15 min idle, 12 h absolute, `session_id`, Secure, Lax.
    fn default_config() -> SessionConfig {
        SessionConfig {
            idle_ttl: Duration::from_secs(900),
            absolute_ttl: Duration::from_secs(43_200),
            cookie_name: "session_id".into(),
            cookie_secure: true,
            same_site: SameSite::Lax,
            deadline: None,
        }
    }

    #[test]
    fn the_cookie_max_age_is_the_idle_ttl_capped_by_what_is_left_of_the_absolute_lifetime() {
        let m = manager();
        let now = now_ms() / 1000;
        for (left, expected) in [(0, 0), (5, 5), (899, 899), (900, 900), (50_000, 900)] {
            let session = ActiveSession {
                id: SessionId::random(),
                data: SessionData {
                    user: "alice".into(),
                    status: "active".into(),
                    created_at: now,
                    absolute_expires_at: now + left,
                    data: AppData::empty(),
                },
            };
            let header = m.session_cookie(&session).unwrap();
            let age: u64 = header
                .to_str()
                .unwrap()
                .rsplit_once("Max-Age=")
                .unwrap()
                .1
                .parse()
                .unwrap();
            // The second may turn between `now` above and the rendering.
            assert!(age == expected || age + 1 == expected, "{left}: {age}");
        }
    }

    #[test]
    fn the_first_verifying_cookie_of_our_name_wins() {
        let m = manager();
        let id = SessionId::random();
        let good = m.signer.sign(&id);
        let header = format!("a=1; session_id=forged; session_id={good}; b=2");
        assert_eq!(
            m.read_cookie([header.as_bytes()].into_iter()),
            CookieState::Valid(id)
        );
        assert_eq!(
            m.read_cookie([&b"session_id=x"[..]].into_iter()),
            CookieState::Invalid
        );
        assert_eq!(
            m.read_cookie([&b"other=x"[..]].into_iter()),
            CookieState::Missing
        );
        // Another cookie's non-ASCII (even non-UTF-8) value does not hide ours.
        let mut raw = b"theme=caf\xc3\xa9; junk=\xff\xfe; ".to_vec();
        raw.extend_from_slice(format!("session_id={good}").as_bytes());
        assert_eq!(
            m.read_cookie([raw.as_slice()].into_iter()),
            CookieState::Valid(id)
        );
        assert_eq!(m.read_cookie(std::iter::empty()), CookieState::Missing);
    }

    #[tokio::test]
    async fn the_list_is_newest_first_and_logins_of_one_second_in_session_id_order() {
        let store = Arc::new(MemoryStore::new());
        let m = SessionManager::new(
            store.clone(),
            CookieSigner::new(SigningKey::random(), None),
            default_config(),
        );
        let now = now_ms() / 1000;
        let record = |created_at| SessionData {
            user: "alice".into(),
            status: "active".into(),
            created_at,
            absolute_expires_at: now + 3600,
            data: AppData::empty(),
        };
        let mut ids = Vec::new();
        for created_at in [now - 5, now, now, now, now - 60] {
            let id = SessionId::random();
            store
                .create(&id, &record(created_at), Duration::from_secs(900), None)
                .await
                .unwrap();
            ids.push((created_at, id));
        }
        let current = ActiveSession {
            id: ids[0].1,
            data: record(now - 5),
        };
        let listed: Vec<(u64, SessionId)> = m
            .list(&current)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.created_at, s.id))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        assert_eq!(listed, ids);
    }

    proptest! {
        #[test]
        fn any_cookie_header_is_missing_or_invalid_without_our_signature(header in any::<String>()) {
            let m = manager();
            let state = m.read_cookie([header.as_bytes()].into_iter());
            prop_assert!(matches!(state, CookieState::Missing | CookieState::Invalid), "{state:?}");
        }
    }
}
