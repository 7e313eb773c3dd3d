//! CORS (the Fetch standard's CORS protocol): off unless origins are configured. Without it no
//! `Access-Control-*` header is ever sent, so browsers refuse cross-origin reads of the API.
//! With it, listed origins get their origin echoed (never `*` together with credentials), the
//! rate-limit and cache headers exposed, and preflights answered before authentication (a
//! preflight carries no credentials by design).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

const ALLOW_METHODS: &str = "GET, POST, DELETE";
const ALLOW_HEADERS: &str =
    "authorization, content-type, accept, x-api-key, x-auth-token, x-request-id, stockade-cache";
const EXPOSE_HEADERS: &str = "ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after, cache-status, x-request-id";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins (`https://app.example`), or `*` for any.
    pub origins: Vec<String>,
    pub max_age_secs: u64,
}

impl Cors {
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn allowed<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let o = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
            .then_some(origin)
    }

    /// The answer to a preflight from an allowed origin.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if !self.enabled()
            || method != Method::OPTIONS
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = self.allowed(headers)?.clone();
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age_secs),
        );
        Some(r)
    }

    /// Add the CORS headers to an answer for an allowed origin.
    pub fn decorate(&self, request: &HeaderMap, response: &mut Response) {
        if !self.enabled() {
            return;
        }
        let h = response.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed(request) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: &str, preflight: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_static("POST"),
            );
        }
        h
    }

    #[test]
    fn off_by_default() {
        let c = Cors::default();
        assert!(
            c.preflight(&Method::OPTIONS, &headers("https://a.test", true))
                .is_none()
        );
        let mut r = Response::new(axum::body::Body::empty());
        c.decorate(&headers("https://a.test", false), &mut r);
        assert!(r.headers().is_empty());
    }

    #[test]
    fn listed_origins_only() {
        let c = Cors {
            origins: vec!["https://app.test".into()],
            max_age_secs: 600,
        };
        let r = c
            .preflight(&Method::OPTIONS, &headers("https://app.test", true))
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.test"
        );
        assert_eq!(r.headers()[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert!(
            c.preflight(&Method::OPTIONS, &headers("https://evil.test", true))
                .is_none()
        );
        assert!(
            c.preflight(&Method::POST, &headers("https://app.test", true))
                .is_none()
        );
        let mut r = Response::new(axum::body::Body::empty());
        c.decorate(&headers("https://evil.test", false), &mut r);
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
        c.decorate(&headers("https://app.test", false), &mut r);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.test"
        );
        assert!(
            r.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                .to_str()
                .unwrap()
                .contains("ratelimit-remaining")
        );
    }
}
