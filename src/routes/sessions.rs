//! The session endpoints: login, profile, logout, and a user's list of sessions.

use actix_web::{
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{
    error::body_error, rate_limit, ApiError, BodyTimeout, ErrorBody, StoreFailure, TooManyRequests,
    MAX_BODY_BYTES,
};
use crate::ratelimit::Limit;
use crate::{
    domain::{AppData, SessionData, SessionId, Username},
    session::{ActiveSession, CookieState, SessionManager, SoleLive},
};

/// `POST /login/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"username": "alice", "data": {"locale": "fr"}}))]
pub struct LoginRequest {
    /// 1 to 128 characters after trimming, no control characters.
    pub username: String,
    /// Optional: the session's first `data`, a JSON object (at most 32 levels deep and
    /// `SESSION_DATA_MAX_BYTES` serialized). Absent or `null`: `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Box<RawValue>>,
}

/// `PATCH /profile/` body: a JSON merge patch (RFC 7396) of the session's `data`.
pub struct DataPatch;

impl utoipa::PartialSchema for DataPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some(
                "A JSON merge patch (RFC 7396) applied to the session's `data`: a member set to \
                 `null` removes that key, an object member merges recursively, any other value \
                 (arrays included) replaces. Must be an object, at most 32 levels deep; the \
                 resulting `data` must fit in SESSION_DATA_MAX_BYTES (16384 by default) \
                 serialized. Numbers are kept exactly as sent.",
            ))
            .examples([serde_json::json!({"cart": {"apple": 2, "pear": null}, "locale": "fr"})])
            .into()
    }
}

impl ToSchema for DataPatch {}

/// `POST /login/` answer.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse<'a> {
    /// Always "Logged in successfully".
    pub message: &'static str,
    /// The new session's id (a UUIDv4): a handle, not the credential (that is the cookie).
    pub session_id: &'a str,
}

/// `GET /profile/` answer.
#[derive(Serialize, ToSchema)]
pub struct ProfileResponse<'a> {
    /// The session's id (a UUIDv4).
    pub session_id: &'a str,
    /// What the session holds.
    pub session_data: SessionView<'a>,
}

// A session as the API shows it, published as `SessionData`. The store's record
// (`domain::SessionData`) is a separate type, so the storage format and the public contract can
// change apart.
/// What a session holds.
#[derive(Serialize, ToSchema)]
#[schema(as = SessionData)]
pub struct SessionView<'a> {
    /// The user name given at login.
    pub user: &'a str,
    /// Always `"active"` for a live session.
    pub status: &'a str,
    /// Login time, unix seconds.
    pub created_at: u64,
    /// End of the absolute lifetime, unix seconds: the session ends then however it is used.
    pub absolute_expires_at: u64,
    /// The application's own data: a JSON object, `{}` when nothing was stored (and in
    /// records written before sessions carried data). Numbers keep the digits they were
    /// sent with.
    #[schema(value_type = Object, required = true, example = json!({"cart": {"apple": 2}, "locale": "fr"}))]
    pub data: &'a AppData,
}

impl<'a> From<&'a SessionData> for SessionView<'a> {
    fn from(record: &'a SessionData) -> Self {
        Self {
            user: &record.user,
            status: &record.status,
            created_at: record.created_at,
            absolute_expires_at: record.absolute_expires_at,
            data: &record.data,
        }
    }
}

/// The answer of `POST /logout/` and `DELETE /sessions/{session_id}`: what was done.
#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    /// What was done, e.g. "Logged out successfully" or "Session ended".
    pub message: &'static str,
}

/// `POST /logout/all/` answer.
#[derive(Serialize, ToSchema)]
pub struct LogoutAllResponse {
    /// Always "Logged out of all sessions".
    pub message: &'static str,
    /// How many live sessions were ended, the current one included.
    pub ended: u64,
}

/// One of the user's live sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    /// The session's id (a UUIDv4), as `DELETE /sessions/{session_id}` takes it.
    pub session_id: String,
    /// Login time, unix seconds.
    pub created_at: u64,
    /// Whether this is the session of the request.
    pub current: bool,
}

/// `GET /sessions/` answer.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first, by login second; logins within the same second in a fixed order (by
    /// session id, descending), since login times are kept to the second.
    pub sessions: Vec<SessionSummary>,
}

fn cookie_state(req: &HttpRequest, sessions: &SessionManager) -> CookieState {
    sessions.read_cookie(req.headers().get_all(header::COOKIE).map(|v| v.as_bytes()))
}

/// Reads a JSON body of at most `limit` bytes within the app's [`BodyTimeout`]: 413 past the
/// limit, 408 past the time, 400 when it is not JSON, 422 when it is JSON of the wrong shape.
async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let BodyTimeout(timeout) = req.app_data::<BodyTimeout>().copied().unwrap_or_default();
    let mut read = std::pin::pin!(payload.to_bytes_limited(limit));
    // A body that has arrived already (the usual case) is taken without arming a timer.
    let read = match futures_util::FutureExt::now_or_never(&mut read) {
        Some(read) => read,
        None => actix_web::rt::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::BodyTimeout(timeout))?,
    };
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(ApiError::BadBody {
                status: StatusCode::BAD_REQUEST,
                message: "could not read the request body".to_owned(),
            })
        }
        Err(_) => {
            return Err(ApiError::BadBody {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("request body is larger than {limit} bytes"),
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| body_error(&e))
}

/// Largest body of a request that carries data: the data limit plus room for the rest.
fn body_limit(sessions: &SessionManager) -> usize {
    sessions.max_data_bytes().saturating_add(MAX_BODY_BYTES)
}

/// The live session of the request, its idle expiry slid: no cookie is 403, a cookie that
/// does not verify is 404 (and costs no store request). Of several verified cookies the
/// first naming a live session wins, so a planted dead one cannot lock the user out.
async fn require_session(
    req: &HttpRequest,
    sessions: &SessionManager,
) -> Result<ActiveSession, ApiError> {
    let state = live_cookie(req, sessions)?;
    sessions
        .refresh_first_live(state.ids())
        .await?
        .ok_or(ApiError::SessionNotFound)
}

/// The one live session of a request that changes state, its idle expiry slid: as
/// [`require_session`], but when its cookies name several live sessions it is refused (409)
/// rather than acting on the first, which may be a session a sibling subdomain planted.
async fn require_sole_session(
    req: &HttpRequest,
    sessions: &SessionManager,
) -> Result<ActiveSession, ApiError> {
    let state = live_cookie(req, sessions)?;
    sole_session(sessions, state.ids()).await
}

async fn sole_session(
    sessions: &SessionManager,
    ids: &[SessionId],
) -> Result<ActiveSession, ApiError> {
    match sessions.refresh_sole_live(ids).await? {
        SoleLive::One(session) => Ok(session),
        SoleLive::None => Err(ApiError::SessionNotFound),
        SoleLive::Several => Err(ApiError::SeveralSessions),
    }
}

/// The verified cookie(s) of a request that needs a session: no cookie is 403, a cookie
/// that does not verify is 404 (before any store request).
fn live_cookie(req: &HttpRequest, sessions: &SessionManager) -> Result<CookieState, ApiError> {
    match cookie_state(req, sessions) {
        CookieState::Missing => Err(ApiError::MissingCookie),
        CookieState::Invalid => Err(ApiError::SessionNotFound),
        state => Ok(state),
    }
}

/// `POST /login/`: creates a session and sets its cookie; a session the client still held is
/// ended in the same store request.
#[utoipa::path(
    post,
    path = "/login/",
    tag = "sessions",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged in; `Set-Cookie` carries the signed session cookie", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "The signed session cookie (`HttpOnly`, `Path=/`, `SameSite`, `Secure` and `Max-Age` as configured)"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "Cross-site request refused (`Origin` neither the service's own nor allowed)", body = ErrorBody),
        (status = 408, description = "The body did not arrive in full within REQUEST_BODY_TIMEOUT_MS (10 s by default); the connection is closed, nothing stored", body = ErrorBody),
        (status = 413, description = "Body over SESSION_DATA_MAX_BYTES + 4 KiB, or `data` over SESSION_DATA_MAX_BYTES serialized", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Wrong shape, an invalid username, or `data` that is not an object or is nested deeper than 32 levels", body = ErrorBody),
        TooManyRequests,
        StoreFailure,
    ),
    security((), ("session_cookie" = [])),
)]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Login)?;
    // The body is read before the store deadline starts: a slow upload is the client's
    // time, not the store's.
    let body: LoginRequest = read_json(&req, payload, body_limit(&sessions)).await?;
    sessions
        .request(async {
            let user = Username::parse(&body.username)?;
            let data = match &body.data {
                Some(raw) => AppData::parse(raw.get())?,
                None => AppData::empty(),
            };
            let previous = cookie_state(&req, &sessions);
            let session = sessions.login(&user, previous.ids(), data).await?;
            let mut buf = [0u8; 36];
            Ok(HttpResponse::Ok()
                .append_header((header::SET_COOKIE, sessions.session_cookie(&session)?))
                .json(LoginResponse {
                    message: "Logged in successfully",
                    session_id: session.id.encode(&mut buf),
                }))
        })
        .await
}

/// `GET /profile/`: the session, its idle expiry reset to the full TTL.
#[utoipa::path(
    get,
    path = "/profile/",
    tag = "sessions",
    responses(
        (status = 200, description = "The session; its idle expiry and the cookie's Max-Age are reset", body = ProfileResponse,
            headers(("Set-Cookie" = String, description = "The session cookie again, its `Max-Age` refreshed"))),
        (status = 403, description = "No session cookie", body = ErrorBody),
        (status = 404, description = "Unknown, expired or forged session", body = ErrorBody),
        TooManyRequests,
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn profile(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Requests)?;
    sessions
        .request(async {
            let session = require_session(&req, &sessions).await?;
            profile_response(&sessions, &session)
        })
        .await
}

/// The answer of `GET` and `PATCH /profile/`: the session, with its cookie refreshed.
fn profile_response(
    sessions: &SessionManager,
    session: &ActiveSession,
) -> Result<HttpResponse, ApiError> {
    let mut buf = [0u8; 36];
    Ok(HttpResponse::Ok()
        .append_header((header::SET_COOKIE, sessions.session_cookie(session)?))
        .json(ProfileResponse {
            session_id: session.id.encode(&mut buf),
            session_data: SessionView::from(&session.data),
        }))
}

/// `PATCH /profile/`: merges a JSON merge patch (RFC 7396) into the session's `data` in one
/// atomic store operation, and answers as `GET /profile/` does (idle expiry and cookie
/// refreshed). Nothing is stored when the patch is refused.
#[utoipa::path(
    patch,
    path = "/profile/",
    tag = "sessions",
    request_body(
        description = "A JSON merge patch (RFC 7396) of `session_data.data`",
        content(
            (DataPatch = "application/merge-patch+json"),
            (DataPatch = "application/json"),
        )
    ),
    responses(
        (status = 200, description = "Merged; the session as `GET /profile/` answers it, idle expiry and cookie Max-Age reset", body = ProfileResponse,
            headers(("Set-Cookie" = String, description = "The session cookie again, its `Max-Age` refreshed"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "No session cookie, or a cross-site request refused (`Origin` neither the service's own nor allowed)", body = ErrorBody),
        (status = 404, description = "Unknown, expired or forged session (forged: no store request)", body = ErrorBody),
        (status = 408, description = "The body did not arrive in full within REQUEST_BODY_TIMEOUT_MS (10 s by default); the connection is closed, nothing stored", body = ErrorBody),
        (status = 409, description = "The cookies name several live sessions (one may have been planted by a sibling subdomain); nothing changed", body = ErrorBody),
        (status = 413, description = "The resulting data would be over SESSION_DATA_MAX_BYTES serialized, or the body over SESSION_DATA_MAX_BYTES + 4 KiB; nothing stored", body = ErrorBody),
        (status = 415, description = "Content-Type is neither application/merge-patch+json nor application/json", body = ErrorBody),
        (status = 422, description = "The body is not a JSON object, or is nested deeper than 32 levels", body = ErrorBody),
        TooManyRequests,
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn patch_profile(
    req: HttpRequest,
    payload: web::Payload,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Requests)?;
    let state = live_cookie(&req, &sessions)?;
    // The body is read before the store deadline starts (see `login`).
    let raw: Box<RawValue> = read_json(&req, payload, body_limit(&sessions)).await?;
    let patch = AppData::parse(raw.get())?;
    sessions
        .request(async {
            let id = match state.ids() {
                // One cookie: the merge is the only store request (it reports a gone session).
                [id] => *id,
                // Several: the one live session, or none (a refused patch costs no merge).
                ids => {
                    sessions.check_patch(&patch)?;
                    sole_session(&sessions, ids).await?.id
                }
            };
            match sessions.update(&id, &patch).await? {
                Some(session) => profile_response(&sessions, &session),
                None => Err(ApiError::SessionNotFound),
            }
        })
        .await
}

/// `POST /logout/`: deletes the session (if any) and clears the cookie; always 200.
#[utoipa::path(
    post,
    path = "/logout/",
    tag = "sessions",
    responses(
        (status = 200, description = "Logged out (also without a cookie); the cookie is cleared", body = MessageResponse,
            headers(("Set-Cookie" = String, description = "Clears the session cookie (`Max-Age=0`)"))),
        (status = 403, description = "Cross-site request refused (`Origin` neither the service's own nor allowed)", body = ErrorBody),
        TooManyRequests,
        StoreFailure,
    ),
    security((), ("session_cookie" = [])),
)]
pub async fn logout(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Requests)?;
    sessions
        .request(async {
            for id in cookie_state(&req, &sessions).ids() {
                sessions.logout(id).await?;
            }
            Ok(HttpResponse::Ok()
                .cookie(sessions.removal_cookie())
                .json(MessageResponse {
                    message: "Logged out successfully",
                }))
        })
        .await
}

/// `GET /sessions/`: every live session of the current user, newest first (to the second).
#[utoipa::path(
    get,
    path = "/sessions/",
    tag = "sessions",
    responses(
        (status = 200, description = "Every live session of the user, newest first (login times are kept to the second: logins of the same second are ordered by session id)", body = SessionList,
            headers(("Set-Cookie" = String, description = "The session cookie again, its `Max-Age` refreshed"))),
        (status = 403, description = "No session cookie", body = ErrorBody),
        (status = 404, description = "Unknown, expired or forged session", body = ErrorBody),
        TooManyRequests,
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn list(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Requests)?;
    sessions
        .request(async {
            let current = require_session(&req, &sessions).await?;
            let all = sessions.list(&current).await?;
            let list: Vec<SessionSummary> = all
                .into_iter()
                .map(|s| SessionSummary {
                    session_id: s.id.to_string(),
                    created_at: s.created_at,
                    current: s.id == current.id,
                })
                .collect();
            Ok(HttpResponse::Ok()
                .append_header((header::SET_COOKIE, sessions.session_cookie(&current)?))
                .json(SessionList { sessions: list }))
        })
        .await
}

/// `DELETE /sessions/{session_id}`: ends one of the current user's sessions; 404 for any
/// other id, so other users' sessions cannot be probed.
#[utoipa::path(
    delete,
    path = "/sessions/{session_id}",
    tag = "sessions",
    params(("session_id" = String, Path, description = "A session id from GET /sessions/ (any other value is a 404)")),
    responses(
        (status = 200, description = "The session was ended", body = MessageResponse,
            headers(("Set-Cookie" = String, description = "Clears the session cookie, when the session ended is the request's own"))),
        (status = 403, description = "No session cookie, or a cross-site request refused", body = ErrorBody),
        (status = 404, description = "Not one of the user's live sessions", body = ErrorBody),
        TooManyRequests,
        (status = 409, description = "The cookies name several live sessions (one may have been planted by a sibling subdomain); nothing changed", body = ErrorBody),
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn end_one(
    req: HttpRequest,
    path: web::Path<String>,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Requests)?;
    sessions
        .request(async {
            let current = require_sole_session(&req, &sessions).await?;
            let target = SessionId::parse(&path).ok_or(ApiError::SessionNotFound)?;
            if !sessions.end_one(&current, &target).await? {
                return Err(ApiError::SessionNotFound);
            }
            let mut response = HttpResponse::Ok();
            if target == current.id {
                response.cookie(sessions.removal_cookie());
            }
            Ok(response.json(MessageResponse {
                message: "Session ended",
            }))
        })
        .await
}

/// `POST /logout/all/`: ends every session of the current user and clears the cookie.
#[utoipa::path(
    post,
    path = "/logout/all/",
    tag = "sessions",
    responses(
        (status = 200, description = "Every session of the user was ended; the cookie is cleared", body = LogoutAllResponse,
            headers(("Set-Cookie" = String, description = "Clears the session cookie (`Max-Age=0`)"))),
        (status = 403, description = "No session cookie, or a cross-site request refused", body = ErrorBody),
        (status = 404, description = "Unknown, expired or forged session", body = ErrorBody),
        TooManyRequests,
        (status = 409, description = "The cookies name several live sessions (one may have been planted by a sibling subdomain); nothing changed", body = ErrorBody),
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn logout_all(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&req, Limit::Requests)?;
    sessions
        .request(async {
            let current = require_sole_session(&req, &sessions).await?;
            let ended = sessions.end_all(&current).await?;
            Ok(HttpResponse::Ok()
                .cookie(sessions.removal_cookie())
                .json(LogoutAllResponse {
                    message: "Logged out of all sessions",
                    ended,
                }))
        })
        .await
}
