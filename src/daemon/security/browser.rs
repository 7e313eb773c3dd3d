//! Web pages against a service on loopback. A page on any site can make the browser send "simple"
//! requests to `http://127.0.0.1:2000` (a `text/plain` or form body needs no CORS preflight), and
//! with DNS rebinding (a name of the attacker's that resolves to 127.0.0.1) even same-origin JSON
//! requests. Two checks stop both without touching non-browser clients:
//! - on a loopback TCP connection the `Host` must be an IP literal, `localhost` (or a name under
//!   `.localhost`), or a name listed in `[http] allowed_hosts` (a rebound name is none of these);
//! - a request a browser sent (it carries `Origin` or `Sec-Fetch-Mode`) with a body must say
//!   `application/json`, which a cross-site page cannot send without a preflight the service
//!   refuses unless `[cors]` allows the origin.

use axum::http::{HeaderMap, Method, StatusCode, header};

use super::authn::Peer;

/// A refusal: status, stable code, message.
pub type Refusal = (StatusCode, &'static str, String);

/// The host name of a `Host` header value, without the port and IPv6 brackets, lowercased.
fn host_name(value: &str) -> String {
    let v = value.trim();
    let name = match v.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => v.rsplit_once(':').map_or(v, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                v
            }
        }),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn host_allowed(name: &str, allowed: &[String]) -> bool {
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.iter().any(|a| a == name)
}

fn json_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"))
}

/// The checks of the module documentation.
pub fn check(
    headers: &HeaderMap,
    method: &Method,
    peer: &Peer,
    allowed_hosts: &[String],
) -> Result<(), Refusal> {
    let loopback = peer.addr.is_some_and(|a| a.ip().is_loopback());
    if loopback {
        if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
            let name = host_name(host);
            if !host_allowed(&name, allowed_hosts) {
                let shown: String = name.chars().take(100).collect();
                return Err((
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    format!(
                        "`{shown}` is not a name of this service (a DNS rebinding guard): use localhost or an IP address, or add the name to `[http] allowed_hosts`"
                    ),
                ));
            }
        }
    }
    let browser = headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-mode");
    let has_body = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if browser && has_body && !json_type(headers) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "requests from a browser must be `Content-Type: application/json`".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn peer(addr: &str) -> Peer {
        Peer {
            addr: Some(addr.parse().unwrap()),
            ..Peer::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn rebound_names_are_refused_on_loopback() {
        let lo = peer("127.0.0.1:5000");
        let allowed = vec!["stockade.internal".to_string()];
        for ok in [
            "localhost:2000",
            "127.0.0.1:2000",
            "[::1]:2000",
            "app.localhost",
            "Stockade.Internal:80",
            "localhost.",
        ] {
            let h = headers(&[("host", ok)]);
            assert!(check(&h, &Method::GET, &lo, &allowed).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:2000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
        ] {
            let h = headers(&[("host", bad)]);
            let e = check(&h, &Method::POST, &lo, &allowed).unwrap_err();
            assert_eq!(
                (e.0, e.1),
                (StatusCode::FORBIDDEN, "host_not_allowed"),
                "{bad}"
            );
        }
        // Beyond loopback the name is the operator's business (a proxy, a load balancer).
        let h = headers(&[("host", "evil.example")]);
        assert!(check(&h, &Method::GET, &peer("10.0.0.2:5000"), &[]).is_ok());
    }

    #[test]
    fn browser_bodies_must_be_json() {
        let lo = peer("127.0.0.1:5000");
        let form = headers(&[
            ("host", "localhost"),
            ("origin", "https://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        let e = check(&form, &Method::POST, &lo, &[]).unwrap_err();
        assert_eq!(e.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let text = headers(&[
            ("sec-fetch-mode", "no-cors"),
            ("content-type", "text/plain"),
        ]);
        assert!(check(&text, &Method::POST, &lo, &[]).is_err());
        let json = headers(&[
            ("origin", "https://app.example"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert!(check(&json, &Method::POST, &lo, &[]).is_ok());
        // curl -d and piston-client (text/plain) send no Origin: unchanged.
        let curl = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert!(check(&curl, &Method::POST, &lo, &[]).is_ok());
    }
}
