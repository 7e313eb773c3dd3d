//! Why the engine did not run a request (or could not finish one), in terms every adapter can
//! map to its own wire shape: the native API's `{code, message}`, Piston's `{message}` with 400s,
//! an MCP tool error. Nothing here knows HTTP.

use std::fmt;

/// The stable reasons; `as_str` is the code the native API and the audit log use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request asks for something impossible (both code and files, a bad variable name, a
    /// preset without a command).
    InvalidRequest,
    /// The file set cannot be laid out in the work dir (a duplicate, a file that is also a
    /// directory, a name too long, a path leaving the work dir).
    InvalidFiles,
    /// More items or bytes than the service accepts (files, arguments, environment, work dir).
    RequestTooLarge,
    /// No profile (or language alias) of that name.
    UnknownProfile,
    /// A requested limit above the profile's maximum.
    LimitExceedsProfile,
    /// A request tried to weaken the profile's pre-flight analysis.
    CheckRequired,
    /// The caller may not do this (profile not granted, a limit above its grant).
    Forbidden,
    /// Every sandbox slot is busy and the queue is full.
    QueueFull,
    /// The request waited for a slot longer than its queue timeout.
    QueueTimeout,
    /// The service is shutting down.
    Draining,
    /// The sandbox launcher is not running.
    Unavailable,
    /// Sandbox set-up keeps failing: the circuit breaker refuses runs until it recovers.
    SandboxUnavailable,
    /// Something failed on our side; the log has the details under the request id.
    Internal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InvalidRequest => "invalid_request",
            Kind::InvalidFiles => "invalid_files",
            Kind::RequestTooLarge => "request_too_large",
            Kind::UnknownProfile => "unknown_profile",
            Kind::LimitExceedsProfile => "limit_exceeds_profile",
            Kind::CheckRequired => "check_required",
            Kind::Forbidden => "forbidden",
            Kind::QueueFull => "queue_full",
            Kind::QueueTimeout => "queue_timeout",
            Kind::Draining => "draining",
            Kind::Unavailable => "unavailable",
            Kind::SandboxUnavailable => "sandbox_unavailable",
            Kind::Internal => "internal",
        }
    }
}

/// A refusal or failure: the reason, a message for the caller (never a host path), and when to
/// retry for the overload and drain refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub kind: Kind,
    pub message: String,
    /// Seconds after which a retry may succeed (queue full, draining, breaker open).
    pub retry_after: Option<u64>,
}

impl EngineError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        EngineError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// An internal failure: the details go to the log, the caller gets the request id.
    pub fn internal(request_id: &str, detail: &dyn fmt::Display) -> Self {
        tracing::error!(request_id, "internal error: {detail}");
        EngineError::new(
            Kind::Internal,
            format!(
                "internal error; the service log has the details under request id {request_id}"
            ),
        )
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for EngineError {}
