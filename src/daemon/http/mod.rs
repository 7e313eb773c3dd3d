//! The HTTP layer: listeners and signals (`server`), the request id and log line, the body read
//! once (`body`), error rendering (`error`), streamed answers (`stream`), and the composition of
//! the APIs' routers. Each API (native, Piston; later Judge0) exports an `Api`: its routes, which
//! of them start sandboxes, and the error shape it speaks. Those declarations reach the security
//! middleware as a `RouteInfo` on every request; nothing matches literal paths.
//!
//! Layers, outermost first: `server::track` (request id, metrics, log line) → `classify` (the
//! route's declaration) → `panic::catch` (a panicking handler is a 500) →
//! `security::layer::middleware` (CORS, audit, authentication, rate limits) → `body::read_once`
//! (size limit, slow-client timeout) → the handler.
//!
//! Others may use: `Api`, `router`, `ApiError`/`Code`, `RequestBody`, `RequestId`, `caller`, and
//! `stream`. This folder imports the engine, `security` and `App`; it never imports an API
//! adapter (the daemon's `serve` hands the adapters' `Api`s in).

pub mod body;
pub mod error;
pub mod panic;
pub mod server;
pub mod stream;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

pub use self::body::RequestBody;
pub use self::error::{ApiError, Code};
use super::app::App;
use super::engine::Caller;
use super::security::layer::Ctx;
pub use crate::daemon::route::RequestId;
use crate::daemon::route::{RouteInfo, RouteKind, Shape};

/// One API's routes and what they declare about themselves.
pub struct Api {
    shape: Shape,
    prefixes: Vec<String>,
    router: Router<Arc<App>>,
    declared: Vec<Declared>,
}

struct Declared {
    path: String,
    /// The method the kind applies to (`None`: every method).
    method: Option<Method>,
    kind: RouteKind,
}

impl Api {
    /// An API whose errors take `shape`.
    pub fn new(shape: Shape) -> Api {
        Api {
            shape,
            prefixes: Vec::new(),
            router: Router::new(),
            declared: Vec::new(),
        }
    }

    /// Paths under `prefix` belong to this API even when no route matches: the fallback
    /// answers them in its shape.
    pub fn prefix(mut self, prefix: &str) -> Api {
        self.prefixes.push(prefix.to_string());
        self
    }

    /// A route that neither starts sandboxes nor is a probe.
    pub fn route(self, path: &str, handler: MethodRouter<Arc<App>>) -> Api {
        self.declare(path, None, RouteKind::Other, handler)
    }

    /// A route whose `method` starts sandboxes: per-principal rate limits and caps apply.
    pub fn execution(self, path: &str, method: Method, handler: MethodRouter<Arc<App>>) -> Api {
        self.declare(path, Some(method), RouteKind::Execution, handler)
    }

    /// A route whose `method` parses code without running it: it shares the principal's rate.
    pub fn analysis(self, path: &str, method: Method, handler: MethodRouter<Arc<App>>) -> Api {
        self.declare(path, Some(method), RouteKind::Analysis, handler)
    }

    /// A health or metrics probe (may be public; audited only when configured).
    pub fn probe(self, path: &str, kind: RouteKind, handler: MethodRouter<Arc<App>>) -> Api {
        self.declare(path, None, kind, handler)
    }

    fn declare(
        mut self,
        path: &str,
        method: Option<Method>,
        kind: RouteKind,
        handler: MethodRouter<Arc<App>>,
    ) -> Api {
        self.router = self.router.route(path, handler);
        self.declared.push(Declared {
            path: path.to_string(),
            method,
            kind,
        });
        self
    }
}

/// One route template's declarations: its API's shape, and the kind per method (`None`: any).
#[derive(Debug)]
struct Entry {
    shape: Shape,
    kinds: Vec<(Option<Method>, RouteKind)>,
}

/// Every API's declarations, looked up per request.
#[derive(Debug, Default)]
struct RouteTable {
    /// Route template → its API's shape and declarations.
    routes: HashMap<String, Entry>,
    /// Path prefixes and their APIs' shapes, longest first.
    prefixes: Vec<(String, Shape)>,
}

impl RouteTable {
    fn info(&self, matched: Option<&str>, method: &Method, path: &str) -> RouteInfo {
        if let Some(Entry { shape, kinds }) = matched.and_then(|m| self.routes.get(m)) {
            let kind = kinds
                .iter()
                .find(|(m, _)| m.as_ref().is_none_or(|m| m == method))
                .map_or(RouteKind::Other, |(_, k)| *k);
            return RouteInfo {
                kind,
                shape: *shape,
            };
        }
        RouteInfo {
            kind: RouteKind::Other,
            shape: self.shape_of(path),
        }
    }

    fn shape_of(&self, path: &str) -> Shape {
        self.prefixes
            .iter()
            .find(|(p, _)| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
            .map_or(Shape::Native, |(_, s)| *s)
    }
}

/// The service's router: every API's routes, the fallbacks in the shape of the API a path
/// belongs to, and the layers (see the module documentation for their order).
pub fn router(app: Arc<App>, apis: Vec<Api>) -> Router {
    let mut table = RouteTable::default();
    let mut r = Router::new();
    for api in apis {
        for d in api.declared {
            let entry = table.routes.entry(d.path).or_insert_with(|| Entry {
                shape: api.shape,
                kinds: Vec::new(),
            });
            entry.kinds.push((d.method, d.kind));
        }
        table
            .prefixes
            .extend(api.prefixes.into_iter().map(|p| (p, api.shape)));
        r = r.merge(api.router);
    }
    table
        .prefixes
        .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let table = Arc::new(table);
    let (t1, t2) = (Arc::clone(&table), Arc::clone(&table));
    r.fallback(move |uri: Uri| async move { error::no_route(t1.shape_of(uri.path()), &uri) })
        .method_not_allowed_fallback(move |method: Method, uri: Uri| async move {
            error::no_method(t2.shape_of(uri.path()), &method, &uri)
        })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            body::read_once,
        ))
        // Inside `track`, so refusals get a request id, a log line and metrics too.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app.security),
            crate::daemon::security::layer::middleware,
        ))
        // Inside `track` too: a panicking request is logged and counted as its 500.
        .layer(middleware::from_fn(panic::catch))
        .layer(middleware::from_fn_with_state(table, classify))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            server::track,
        ))
        .with_state(app)
}

/// Attach the route's declaration to the request.
async fn classify(State(table): State<Arc<RouteTable>>, mut req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let info = table.info(matched.as_deref(), req.method(), req.uri().path());
    req.extensions_mut().insert(info);
    next.run(req).await
}

/// The engine's caller for an HTTP request, from what the security middleware established.
pub fn caller(ctx: &Ctx) -> Caller {
    Caller {
        principal: ctx.principal.clone(),
        grant: Arc::clone(&ctx.grant),
        audit: ctx.audit.clone(),
        cache: ctx.cache_pref,
    }
}

/// Add the `Cache-Status` header to an answer the result cache was consulted for.
pub fn cache_status(r: &mut Response, status: Option<String>) {
    if let Some(v) = status.and_then(|s| axum::http::HeaderValue::from_str(&s).ok()) {
        r.headers_mut().insert("cache-status", v);
    }
}

/// `GET /`: which service this is.
pub async fn root() -> Response {
    let version = env!("CARGO_PKG_VERSION");
    axum::Json(serde_json::json!({
        "message": format!("stockade v{version} (Piston v2 compatible)"),
        "service": "stockade",
        "version": version,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_classify_requests() {
        let mut t = RouteTable::default();
        let entry = |shape, kinds| Entry { shape, kinds };
        t.routes.insert(
            "/api/v2/execute".into(),
            entry(
                Shape::Piston,
                vec![(Some(Method::POST), RouteKind::Execution)],
            ),
        );
        t.routes.insert(
            "/healthz".into(),
            entry(Shape::Native, vec![(None, RouteKind::Health)]),
        );
        t.prefixes.push(("/api/v2".into(), Shape::Piston));
        let post = t.info(Some("/api/v2/execute"), &Method::POST, "/api/v2/execute");
        assert_eq!(post.kind, RouteKind::Execution);
        assert_eq!(post.shape, Shape::Piston);
        let get = t.info(Some("/api/v2/execute"), &Method::GET, "/api/v2/execute");
        assert_eq!(
            get.kind,
            RouteKind::Other,
            "only the declared method executes"
        );
        assert_eq!(
            t.info(Some("/healthz"), &Method::HEAD, "/healthz").kind,
            RouteKind::Health
        );
        // Unmatched paths take the shape of the API whose prefix they are under.
        assert_eq!(
            t.info(None, &Method::GET, "/api/v2/nope").shape,
            Shape::Piston
        );
        assert_eq!(t.info(None, &Method::GET, "/api/v2").shape, Shape::Piston);
        assert_eq!(t.info(None, &Method::GET, "/api/v20").shape, Shape::Native);
        assert_eq!(t.info(None, &Method::GET, "/v1/nope").shape, Shape::Native);
    }
}
