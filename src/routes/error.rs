//! The API's one error type and its mapping to HTTP: every error is JSON
//! `{"error": "<message>"}` with the right status. Store failures are logged here once with
//! their cause, and the client sees only an opaque message.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, ResponseError,
};
use serde::Serialize;

use crate::{
    domain::{DataError, UsernameError},
    ratelimit::Refused,
    session::{FailureKind, SessionError},
    telemetry::ErrorChain,
};

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A human-readable message; never internals.
    pub error: String,
}

/// The answers of every route that reaches the session store when the store fails, for the
/// OpenAPI document (`responses(.., StoreFailure)`).
#[derive(utoipa::IntoResponses)]
pub enum StoreFailure {
    /// 500: a stored record could not be read.
    #[response(
        status = 500,
        description = "A stored record that cannot be read (opaque; the cause is logged)"
    )]
    Internal(ErrorBody),
    /// 503: the session store could not be reached, is full, or the instance's Upstash
    /// command budget is spent.
    #[response(
        status = 503,
        description = "Session store unavailable, the in-memory store full (MEMORY_STORE_MAX_BYTES), or this instance's Upstash command budget (UPSTASH_MAX_COMMANDS_PER_SECOND) spent; nothing stored or sent. `Retry-After` says when to try again"
    )]
    Unavailable(ErrorBody),
    /// 504: the session store did not answer in time.
    #[response(status = 504, description = "Session store timed out")]
    TimedOut(ErrorBody),
}

/// The answer of every route with a per-client rate limit when the client is over it, for
/// the OpenAPI document (`responses(.., TooManyRequests)`).
#[derive(utoipa::IntoResponses)]
pub enum TooManyRequests {
    /// 429: the client address is over its allowance.
    #[response(
        status = 429,
        description = "This client address is over its rate limit (RATE_LIMIT_LOGIN for login, RATE_LIMIT_REQUESTS for the other session routes); nothing was sent to the store"
    )]
    RateLimited(ErrorBody),
}

/// Everything a route can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 403: a route that needs a session was called without a session cookie.
    #[error("No session cookie found")]
    MissingCookie,
    /// 404: the cookie does not verify, or names no live session (or, for
    /// `DELETE /sessions/{id}`, the id is not one of the user's live sessions).
    #[error("Session not found or expired")]
    SessionNotFound,
    /// 422: the login's user name is refused.
    #[error("{0}")]
    InvalidUsername(#[from] UsernameError),
    /// A request body that cannot be used: not JSON (400), over the size limit (413), of
    /// another content type (415), or of the wrong shape (422).
    #[error("{message}")]
    BadBody {
        /// The status to answer with.
        status: StatusCode,
        /// What is wrong with the body, for the client.
        message: String,
    },
    /// 408 (and the connection closed): the request body did not arrive in full within
    /// the body time limit (`REQUEST_BODY_TIMEOUT_MS`).
    #[error("request body not received within {} ms", .0.as_millis())]
    BodyTimeout(std::time::Duration),
    /// 409: a state-changing request carries the cookies of several live sessions (one may
    /// have been planted by a sibling subdomain); nothing was changed.
    #[error("The request carries cookies of several live sessions, so it is refused: log out (which ends them all) and log in again")]
    SeveralSessions,
    /// 404: no route has this path (or a path parameter did not parse).
    #[error("Not found")]
    RouteNotFound,
    /// 405: the path exists but not with this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// A state-changing request from an origin that is neither the service's own nor allowed.
    #[error("Cross-site request refused: this origin may not change sessions")]
    CrossSiteRequest,
    /// 504: the session store did not answer in time.
    #[error("session store timed out")]
    StoreTimeout(#[source] SessionError),
    /// 503 (with `Retry-After: 1`): the session store could not be reached.
    #[error("session store unavailable")]
    StoreUnavailable(#[source] SessionError),
    /// 503 (with `Retry-After: 1`): the instance's Upstash command budget
    /// (`UPSTASH_MAX_COMMANDS_PER_SECOND`) is spent; nothing was sent to the store.
    #[error("Too many requests to the session store: retry in a second")]
    StoreOverBudget(#[source] SessionError),
    /// 429 (with `Retry-After`): the client address is over `RATE_LIMIT_LOGIN` or
    /// `RATE_LIMIT_REQUESTS`; nothing was sent to the store.
    #[error("Too many requests from this address: retry in {retry_after} seconds")]
    RateLimited {
        /// Whole seconds until the next request is allowed, at least 1.
        retry_after: u64,
    },
    /// 503 (with `Retry-After`: when the earliest session expires): the in-memory store is at
    /// `MEMORY_STORE_MAX_BYTES`; nothing was stored.
    #[error("session store is full; try again later")]
    StoreFull {
        /// Whole seconds until room may be made, at least 1.
        retry_after_secs: u64,
        /// The refusal.
        #[source]
        source: SessionError,
    },
    /// 500: any other session failure: a stored record that cannot be read, no free session
    /// id, or a cookie that cannot be a header value.
    #[error("internal server error")]
    Internal(#[source] SessionError),
}

impl From<DataError> for ApiError {
    /// 400 for text that is not JSON, 422 for JSON that is not data, 413 for too much.
    fn from(error: DataError) -> Self {
        let status = match error {
            DataError::Malformed(_) => StatusCode::BAD_REQUEST,
            DataError::NotAnObject | DataError::TooDeep => StatusCode::UNPROCESSABLE_ENTITY,
            DataError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        };
        ApiError::BadBody {
            status,
            message: error.to_string(),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        ApiError::RateLimited {
            retry_after: refused.retry_after_secs(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error.kind() {
            FailureKind::TimedOut => ApiError::StoreTimeout(error),
            FailureKind::Unavailable => ApiError::StoreUnavailable(error),
            FailureKind::OverBudget => ApiError::StoreOverBudget(error),
            FailureKind::Full(wait) => ApiError::StoreFull {
                retry_after_secs: wait.as_secs().max(1),
                source: error,
            },
            FailureKind::BadData => match error {
                SessionError::Data(data) => data.into(),
                other => ApiError::Internal(other),
            },
            FailureKind::Internal => ApiError::Internal(error),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingCookie | ApiError::CrossSiteRequest => StatusCode::FORBIDDEN,
            ApiError::SessionNotFound | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidUsername(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadBody { status, .. } => *status,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::SeveralSessions => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::StoreTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::StoreUnavailable(_)
            | ApiError::StoreOverBudget(_)
            | ApiError::StoreFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::StoreTimeout(e) | ApiError::StoreUnavailable(e) | ApiError::Internal(e) =
            self
        {
            tracing::error!(error.cause_chain = %ErrorChain(e), status = self.status_code().as_u16(), "request failed");
        }
        if let ApiError::StoreFull {
            retry_after_secs, ..
        } = self
        {
            // A refusal by design, not a failure: no cause chain to log.
            tracing::warn!(
                event = "store_full",
                retry_after = retry_after_secs,
                "the memory store is at MEMORY_STORE_MAX_BYTES; write refused"
            );
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            // The budget refills continuously: whatever the call, it fits within a second.
            ApiError::StoreUnavailable(_) | ApiError::StoreOverBudget(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::RateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, *retry_after));
            }
            ApiError::StoreFull {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            // The rest of the body may still be on its way: the connection cannot carry
            // another request, and a slow client must not keep it.
            ApiError::BodyTimeout(_) => {
                response.force_close();
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
        })
    }
}

/// A JSON body that did not deserialize: 422 when it is JSON of the wrong shape, else 400.
pub(crate) fn body_error(error: &serde_json::Error) -> ApiError {
    let (status, message) = if error.is_data() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid request body: {error}"),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("malformed JSON: {error}"))
    };
    ApiError::BadBody { status, message }
}
