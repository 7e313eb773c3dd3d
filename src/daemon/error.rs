//! API errors: one type with a stable machine-readable `code`, an HTTP status and a message that
//! never carries host paths or internal details (those go to the log with the request id).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The stable error codes of the native API (docs/service.md lists them with their statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The body is not JSON, or not the documented shape (types, unknown fields).
    InvalidBody,
    /// The body is well-formed but asks for something impossible (both code and files, a bad
    /// file name, a bad encoding).
    InvalidRequest,
    /// The file set cannot be laid out in the work dir (a duplicate, a file that is also a
    /// directory, a name too long, a path leaving the work dir).
    InvalidFiles,
    /// More items or bytes than the service accepts (files, arguments, environment, work dir).
    RequestTooLarge,
    /// The Content-Type is not JSON.
    UnsupportedMediaType,
    /// The body exceeds the configured size.
    BodyTooLarge,
    /// No profile (or language alias) of that name.
    UnknownProfile,
    /// A requested limit above the profile's maximum.
    LimitExceedsProfile,
    /// A request tried to weaken the profile's pre-flight analysis.
    CheckRequired,
    /// Every sandbox slot is busy and the queue is full.
    QueueFull,
    /// The request waited for a slot longer than the queue timeout.
    QueueTimeout,
    /// The service is shutting down.
    Draining,
    /// The sandbox launcher is not running.
    Unavailable,
    /// The principal may not do this (profile not granted, a limit above its maximum).
    Forbidden,
    /// Sandbox set-up keeps failing: the circuit breaker refuses runs until it recovers.
    SandboxUnavailable,
    /// Something failed on our side; the log has the details under the request id.
    Internal,
    NotFound,
    MethodNotAllowed,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidBody => "invalid_body",
            Code::InvalidRequest => "invalid_request",
            Code::InvalidFiles => "invalid_files",
            Code::RequestTooLarge => "request_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::BodyTooLarge => "body_too_large",
            Code::UnknownProfile => "unknown_profile",
            Code::LimitExceedsProfile => "limit_exceeds_profile",
            Code::CheckRequired => "check_required",
            Code::QueueFull => "queue_full",
            Code::QueueTimeout => "queue_timeout",
            Code::Draining => "draining",
            Code::Unavailable => "unavailable",
            Code::Forbidden => "forbidden",
            Code::SandboxUnavailable => "sandbox_unavailable",
            Code::Internal => "internal",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidBody
            | Code::InvalidRequest
            | Code::InvalidFiles
            | Code::RequestTooLarge
            | Code::LimitExceedsProfile => StatusCode::BAD_REQUEST,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnknownProfile | Code::NotFound => StatusCode::NOT_FOUND,
            Code::CheckRequired | Code::Forbidden => StatusCode::FORBIDDEN,
            Code::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            Code::QueueTimeout | Code::Draining | Code::Unavailable | Code::SandboxUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// Which API answers: the native one (`code` + `message`) or Piston (`message` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Native,
    Piston,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Seconds for `Retry-After` (overload and drain answers).
    pub retry_after: Option<u64>,
    pub flavor: Flavor,
    /// The status to send instead of the code's own (Piston's 400 for every validation error).
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            flavor: Flavor::Native,
            status: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn piston(mut self) -> Self {
        self.flavor = Flavor::Piston;
        self
    }

    /// An internal failure: the details go to the log, the client gets the request id.
    pub fn internal(request_id: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(request_id, "internal error: {detail}");
        ApiError::new(
            Code::Internal,
            format!(
                "internal error; the service log has the details under request id {request_id}"
            ),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self.flavor {
            Flavor::Native => json!({"code": self.code.as_str(), "message": self.message}),
            Flavor::Piston => json!({"message": self.message}),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_answers_carry_retry_after() {
        let r = ApiError::new(Code::QueueFull, "busy")
            .retry_after(0)
            .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::new(Code::Draining, "bye").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn piston_errors_use_its_status_override() {
        let mut e = ApiError::new(Code::UnknownProfile, "python-9 runtime is unknown").piston();
        e.status = Some(StatusCode::BAD_REQUEST);
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
