//! Panics never take the service down. Release builds unwind (Cargo.toml), and:
//! - `catch` answers a request whose handler panicked with a 500 (the message is logged under
//!   the request id); a panic while a response body streams ends that connection only, since
//!   every connection is its own tokio task;
//! - `guard_forks` makes a panic in a process forked from the one that installed it (the
//!   launcher, a worker, a sandbox's init or payload before `execve`) end that process at once
//!   with `_exit(101)` instead of unwinding through its copy of the parent's stack, which would
//!   run the parent's code (and destructors) inside a child.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::RequestId;

/// The process allowed to unwind; 0 until `guard_forks` runs.
static UNWINDING_PID: AtomicU32 = AtomicU32::new(0);

/// Install the panic hook described in the module documentation. Call once, early in `main`,
/// while the process is single-threaded.
pub fn guard_forks() {
    UNWINDING_PID.store(std::process::id(), Ordering::SeqCst);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::process::id() != UNWINDING_PID.load(Ordering::SeqCst) {
            eprintln!("stockade: panic in a forked process, exiting it: {info}");
            crate::sys::exit_now(101);
        }
        default(info);
    }));
}

/// A future whose panic becomes `Err` (the payload is dropped: the hook already printed it).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// Middleware: the handler's answer, or 500 `internal` if it panicked.
pub async fn catch(req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| "-".to_string(), |r| r.0.clone());
    match CatchUnwind(Box::pin(next.run(req))).await {
        Ok(r) => r,
        Err(()) => ApiError::internal(&id, &"the request handler panicked").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower_service::Service;

    use super::*;

    async fn boom() -> &'static str {
        // The shape of the bug in issue 11 item 4: an unchecked conversion in a handler.
        let ms: f64 = std::hint::black_box(1e30);
        let _ = std::time::Duration::from_secs_f64(ms);
        "unreachable"
    }

    #[tokio::test]
    async fn a_panicking_request_gets_500_and_the_next_one_is_served() {
        let mut router: Router = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(catch));
        let get = |path: &str| {
            Request::builder()
                .uri(path)
                .body(Body::empty())
                .expect("request")
        };
        for _ in 0..3 {
            let r = router.call(get("/boom")).await.expect("infallible");
            assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["code"], "internal");
            let r = router.call(get("/ok")).await.expect("infallible");
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
}
