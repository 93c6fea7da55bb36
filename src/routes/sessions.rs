//! The session endpoints: login, profile, logout, and a user's list of sessions.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ErrorBody, StoreFailure};
use crate::{
    session::{ActiveSession, CookieState, SessionManager, Username},
    store::{SessionData, SessionId},
};

/// `POST /login/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"username": "alice"}))]
pub struct LoginRequest {
    /// 1 to 128 characters after trimming, no control characters.
    pub username: String,
}

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
    pub session_id: &'a str,
    pub session_data: &'a SessionData,
}

/// A confirmation.
#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
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
    pub session_id: String,
    /// Login time, unix seconds.
    pub created_at: u64,
    /// Whether this is the session of the request.
    pub current: bool,
}

/// `GET /sessions/` answer.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionSummary>,
}

fn cookie_state(req: &HttpRequest, sessions: &SessionManager) -> CookieState {
    sessions.read_cookie(req.headers().get_all(header::COOKIE).map(|v| v.as_bytes()))
}

/// The live session of the request, its idle expiry slid: no cookie is 403, a cookie that
/// does not verify is 404 (and costs no store request). Of several verified cookies the
/// first naming a live session wins, so a planted dead one cannot lock the user out.
async fn require_session(
    req: &HttpRequest,
    sessions: &SessionManager,
) -> Result<ActiveSession, ApiError> {
    let session = match cookie_state(req, sessions) {
        CookieState::Valid(id) => sessions.refresh(&id).await?,
        CookieState::Several(ids) => sessions.refresh_first_live(&ids).await?,
        CookieState::Missing => return Err(ApiError::MissingCookie),
        CookieState::Invalid => return Err(ApiError::SessionNotFound),
    };
    session.ok_or(ApiError::SessionNotFound)
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
        (status = 413, description = "Body over 4 KiB", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Wrong shape, or an invalid username", body = ErrorBody),
        StoreFailure,
    ),
    security((), ("session_cookie" = [])),
)]
pub async fn login(
    req: HttpRequest,
    body: web::Json<LoginRequest>,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    sessions
        .request(async {
            let user = Username::parse(&body.username)?;
            let previous = cookie_state(&req, &sessions);
            let session = sessions.login(&user, previous.ids()).await?;
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
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn profile(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    sessions
        .request(async {
            let session = require_session(&req, &sessions).await?;
            let mut buf = [0u8; 36];
            Ok(HttpResponse::Ok()
                .append_header((header::SET_COOKIE, sessions.session_cookie(&session)?))
                .json(ProfileResponse {
                    session_id: session.id.encode(&mut buf),
                    session_data: &session.data,
                }))
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
        StoreFailure,
    ),
    security((), ("session_cookie" = [])),
)]
pub async fn logout(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
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

/// `GET /sessions/`: every live session of the current user, newest first.
#[utoipa::path(
    get,
    path = "/sessions/",
    tag = "sessions",
    responses(
        (status = 200, description = "Every live session of the user, newest first", body = SessionList,
            headers(("Set-Cookie" = String, description = "The session cookie again, its `Max-Age` refreshed"))),
        (status = 403, description = "No session cookie", body = ErrorBody),
        (status = 404, description = "Unknown, expired or forged session", body = ErrorBody),
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn list(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    sessions
        .request(async {
            let current = require_session(&req, &sessions).await?;
            let all = sessions.list(&current).await?;
            let mut list: Vec<SessionSummary> = all
                .into_iter()
                .map(|(id, data)| SessionSummary {
                    session_id: id.to_string(),
                    created_at: data.created_at,
                    current: id == current.id,
                })
                .collect();
            // The current session was just read live: make sure a lagging index never hides it.
            if !list.iter().any(|s| s.current) {
                list.insert(
                    0,
                    SessionSummary {
                        session_id: current.id.to_string(),
                        created_at: current.data.created_at,
                        current: true,
                    },
                );
            }
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
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn end_one(
    req: HttpRequest,
    path: web::Path<String>,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    sessions
        .request(async {
            let current = require_session(&req, &sessions).await?;
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
        StoreFailure,
    ),
    security(("session_cookie" = [])),
)]
pub async fn logout_all(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    sessions
        .request(async {
            let current = require_session(&req, &sessions).await?;
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
