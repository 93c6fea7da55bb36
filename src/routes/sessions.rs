//! The session endpoints: login, profile, logout, and a user's list of sessions.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::{
    session::{ActiveSession, CookieState, SessionManager, Username},
    store::{SessionData, SessionId},
};

/// `POST /login/` body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub username: String,
}

#[derive(Serialize)]
struct LoginResponse<'a> {
    message: &'static str,
    session_id: &'a str,
}

#[derive(Serialize)]
struct ProfileResponse<'a> {
    session_id: &'a str,
    session_data: &'a SessionData,
}

#[derive(Serialize)]
struct MessageResponse {
    message: &'static str,
}

#[derive(Serialize)]
struct LogoutAllResponse {
    message: &'static str,
    ended: u64,
}

#[derive(Serialize)]
struct SessionSummary {
    session_id: String,
    created_at: u64,
    current: bool,
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionSummary>,
}

fn cookie_state(req: &HttpRequest, sessions: &SessionManager) -> CookieState {
    sessions.read_cookie(
        req.headers()
            .get_all(header::COOKIE)
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The verified session id of the request: no cookie is 403, a cookie that does not verify
/// is 404 (and costs no store request).
fn require_id(req: &HttpRequest, sessions: &SessionManager) -> Result<SessionId, ApiError> {
    match cookie_state(req, sessions) {
        CookieState::Valid(id) => Ok(id),
        CookieState::Missing => Err(ApiError::MissingCookie),
        CookieState::Invalid => Err(ApiError::SessionNotFound),
    }
}

/// The live session of the request, its idle expiry slid.
async fn require_session(
    req: &HttpRequest,
    sessions: &SessionManager,
) -> Result<ActiveSession, ApiError> {
    let id = require_id(req, sessions)?;
    sessions
        .refresh(&id)
        .await?
        .ok_or(ApiError::SessionNotFound)
}

/// `POST /login/`: creates a session and sets its cookie; a session the client still held is
/// ended in the same store request.
pub async fn login(
    req: HttpRequest,
    body: web::Json<LoginRequest>,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    let user = Username::parse(&body.username)?;
    let previous = match cookie_state(&req, &sessions) {
        CookieState::Valid(id) => Some(id),
        _ => None,
    };
    let session = sessions.login(&user, previous).await?;
    let mut buf = [0u8; 36];
    Ok(HttpResponse::Ok()
        .cookie(sessions.session_cookie(&session))
        .json(LoginResponse {
            message: "Logged in successfully",
            session_id: session.id.encode(&mut buf),
        }))
}

/// `GET /profile/`: the session, its idle expiry reset to the full TTL.
pub async fn profile(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    let session = require_session(&req, &sessions).await?;
    let mut buf = [0u8; 36];
    Ok(HttpResponse::Ok()
        .cookie(sessions.session_cookie(&session))
        .json(ProfileResponse {
            session_id: session.id.encode(&mut buf),
            session_data: &session.data,
        }))
}

/// `POST /logout/`: deletes the session (if any) and clears the cookie; always 200.
pub async fn logout(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    if let CookieState::Valid(id) = cookie_state(&req, &sessions) {
        sessions.logout(&id).await?;
    }
    Ok(HttpResponse::Ok()
        .cookie(sessions.removal_cookie())
        .json(MessageResponse {
            message: "Logged out successfully",
        }))
}

/// `GET /sessions/`: every live session of the current user, newest first.
pub async fn list(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
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
        .cookie(sessions.session_cookie(&current))
        .json(SessionList { sessions: list }))
}

/// `DELETE /sessions/{session_id}`: ends one of the current user's sessions; 404 for any
/// other id, so other users' sessions cannot be probed.
pub async fn end_one(
    req: HttpRequest,
    path: web::Path<String>,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
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
}

/// `POST /logout/all/`: ends every session of the current user and clears the cookie.
pub async fn logout_all(
    req: HttpRequest,
    sessions: web::Data<SessionManager>,
) -> Result<HttpResponse, ApiError> {
    let current = require_session(&req, &sessions).await?;
    let ended = sessions.end_all(&current).await?;
    Ok(HttpResponse::Ok()
        .cookie(sessions.removal_cookie())
        .json(LogoutAllResponse {
            message: "Logged out of all sessions",
            ended,
        }))
}
