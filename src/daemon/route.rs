//! What a route declares about itself, for the layers in front of its handler: whether it starts
//! sandboxes (per-principal rate limits and caps apply), whether it is a health or metrics probe
//! (may be public, not audited by default), and which error shape its API speaks. Each API
//! declares these on its router (`http::Api`); the HTTP layer attaches them to every request as
//! a `RouteInfo` extension, so the security middleware never matches literal paths.
//!
//! A leaf module: `http` and `security` both read it, it imports nothing of either.

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    /// `/healthz`, `/readyz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// A route that starts sandboxes: the principal's request rate and sandbox cap apply.
    Execution,
    /// A route that parses code without running it (`/v1/check`): it shares the principal's
    /// request rate.
    Analysis,
    #[default]
    Other,
}

/// The error shape of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// `{"code": …, "message": …}` with the code's own status.
    #[default]
    Native,
    /// Piston's `{"message": …}`.
    Piston,
}

/// A request's route, as its API declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteInfo {
    pub kind: RouteKind,
    pub shape: Shape,
}

/// The id of the request being handled (also sent back as `x-request-id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);
