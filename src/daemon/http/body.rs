//! The request body, read once: within `[capacity] max_body` (413) and the slow-client timeout
//! (408), after authentication and rate limits (an unauthenticated client cannot make the
//! service buffer anything). Handlers take the bytes as a `RequestBody`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};
use crate::daemon::app::App;
use crate::daemon::route::RouteInfo;
use crate::daemon::security::layer::Ctx;

/// The whole request body, as `read_once` buffered it.
#[derive(Debug, Clone)]
pub struct RequestBody(pub Bytes);

impl<S: Send + Sync> FromRequestParts<S> for RequestBody {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<RequestBody>()
            .cloned()
            .ok_or_else(|| ApiError::internal("-", &"the request body was not buffered"))
    }
}

/// Buffer the body of requests that have one, or answer 413/400/408 in the route's shape.
pub async fn read_once(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let shape = req
        .extensions()
        .get::<RouteInfo>()
        .copied()
        .unwrap_or_default()
        .shape;
    let body = std::mem::replace(req.body_mut(), Body::empty());
    let limit = app.config.max_body;
    let timeout = app.security.config.body_timeout;
    let error = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            req.extensions_mut().insert(RequestBody(bytes));
            return next.run(req).await;
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                let msg = format!("request body larger than {limit} bytes");
                ApiError::new(Code::BodyTooLarge, msg)
            } else {
                ApiError::new(Code::InvalidBody, "the request body could not be read")
            }
        }
        Err(_) => {
            app.security
                .counters
                .slow_clients
                .fetch_add(1, Ordering::Relaxed);
            let msg = "the request body did not arrive in time";
            ApiError::new(Code::RequestTimeout, msg)
        }
    };
    if let Some(ctx) = req.extensions().get::<Arc<Ctx>>() {
        if let Some(a) = &ctx.audit {
            a.with(|r| r.reject(error.code.as_str(), &error.message));
        }
    }
    let timed_out = error.code == Code::RequestTimeout;
    let mut r = error.shaped(shape).into_response();
    if timed_out {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
