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
    /// 503: the session store could not be reached.
    #[response(status = 503, description = "Session store unavailable")]
    Unavailable(ErrorBody),
    /// 504: the session store did not answer in time.
    #[response(status = 504, description = "Session store timed out")]
    TimedOut(ErrorBody),
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

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error.kind() {
            FailureKind::TimedOut => ApiError::StoreTimeout(error),
            FailureKind::Unavailable => ApiError::StoreUnavailable(error),
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
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::StoreTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::StoreTimeout(e) | ApiError::StoreUnavailable(e) | ApiError::Internal(e) =
            self
        {
            tracing::error!(error.cause_chain = %ErrorChain(e), status = self.status_code().as_u16(), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::StoreUnavailable(_)) {
            response.insert_header((header::RETRY_AFTER, "1"));
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
