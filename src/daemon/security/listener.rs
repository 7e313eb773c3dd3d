//! The HTTP/1.1 accept loop for TCP (optionally TLS) and Unix sockets, with the hardened limits
//! `axum::serve` does not expose: a TLS handshake timeout, a header read timeout (which also
//! bounds idle keep-alive connections), header count and size caps (hyper answers 431), and caps
//! on open connections overall and per client address. Every request carries the connection's
//! `Peer` (address, `SO_PEERCRED` uid, verified client-certificate principal) in its extensions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use super::authn::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The whole request head must arrive within this; also the idle keep-alive limit.
    pub header_timeout: Duration,
    /// Request line plus headers, in bytes (beyond: 431).
    pub max_header_bytes: usize,
    /// Header count (beyond: 431).
    pub max_headers: usize,
    pub handshake_timeout: Duration,
    /// Open connections at once; more are closed at accept.
    pub max_connections: usize,
    /// Open connections at once from one IP address.
    pub max_connections_per_address: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_address: 128,
        }
    }
}

/// A bound listener.
pub enum Bound {
    Tcp {
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    },
    Unix(UnixListener),
}

/// Open connections per IP address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for the client's network (`authn::client_network`: an IPv6 /64 counts as one).
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let ip = super::authn::client_network(ip);
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self
            .table
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Held for the life of a connection.
struct Slots {
    _global: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// Serve `router` on `bound` until `stop` turns true; then finish the open connections
/// gracefully (hyper's graceful shutdown: in-flight requests complete, idle ones close).
pub async fn serve(bound: Bound, router: Router, limits: HttpLimits, stop: watch::Receiver<bool>) {
    let global = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let mut tasks = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = stopped(&mut stopping) => break,
            a = accept(&bound) => a,
        };
        let (io, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&global).try_acquire_owned() else {
            tracing::warn!(client = %peer.client(), "connection limit reached; closing a new connection");
            continue;
        };
        let address = match peer.addr {
            Some(a) => match per_address.take(a.ip(), limits.max_connections_per_address) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!(client = %a.ip(), "per-address connection limit reached");
                    continue;
                }
            },
            None => None,
        };
        let slots = Slots {
            _global: permit,
            _address: address,
        };
        let tls = match &bound {
            Bound::Tcp { tls, .. } => tls.clone(),
            Bound::Unix(_) => None,
        };
        let (router, stop) = (router.clone(), stop.clone());
        tasks.spawn(async move {
            let _slots = slots;
            match (io, tls) {
                (Io::Tcp(s), Some(acceptor)) => {
                    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(s)).await {
                        Ok(Ok(tls)) => {
                            let mut peer = peer;
                            peer.tls = true;
                            peer.cert_principal = super::tls::client_principal(tls.get_ref().1);
                            connection(tls, peer, router, limits, stop).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer.client(), "tls handshake: {e}")
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer.client(), "tls handshake timed out")
                        }
                    }
                }
                (Io::Tcp(s), None) => connection(s, peer, router, limits, stop).await,
                (Io::Unix(s), _) => connection(s, peer, router, limits, stop).await,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Resolves once `stop` is true (the borrow of the value ends here, so callers stay `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(bound: &Bound) -> std::io::Result<(Io, Peer)> {
    match bound {
        Bound::Tcp { listener, .. } => {
            let (s, addr) = listener.accept().await?;
            // Small JSON answers and stream events must not wait for Nagle's algorithm.
            let _ = s.set_nodelay(true);
            let peer = Peer {
                addr: Some(addr),
                ..Peer::default()
            };
            Ok((Io::Tcp(s), peer))
        }
        Bound::Unix(listener) => {
            let (s, _) = listener.accept().await?;
            // SO_PEERCRED (unix(7)): the credentials of the process that connected.
            let uid = s.peer_cred().ok().map(|c| c.uid());
            let peer = Peer {
                uid,
                ..Peer::default()
            };
            Ok((Io::Unix(s), peer))
        }
    }
}

async fn connection<I>(
    io: I,
    peer: Peer,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = peer.client();
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let mut r = router.clone();
        async move { r.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, "connection: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::routing::get;

    use super::*;

    #[test]
    fn connection_slots_count_an_ipv6_64_as_one_address() {
        let table = Arc::new(PerAddress::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let first = table.take(ip("2001:db8::1"), 1).expect("first slot");
        assert!(table.take(ip("2001:db8::ffff:2"), 1).is_none(), "same /64");
        assert!(
            table.take(ip("2001:db8:0:1::1"), 1).is_some(),
            "another /64"
        );
        drop(first);
        assert!(
            table.take(ip("2001:db8::2"), 1).is_some(),
            "slot given back"
        );
    }

    async fn who(axum::Extension(peer): axum::Extension<Peer>) -> String {
        format!("{:?} {:?}", peer.uid, peer.addr.map(|a| a.ip()))
    }

    fn start(
        limits: HttpLimits,
    ) -> (
        std::net::SocketAddr,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_l.set_nonblocking(true).unwrap();
        let addr = std_l.local_addr().unwrap();
        let listener = TcpListener::from_std(std_l).unwrap();
        let (tx, rx) = watch::channel(false);
        let router = Router::new().route("/who", get(who));
        let h = tokio::spawn(serve(
            Bound::Tcp {
                listener,
                tls: None,
            },
            router,
            limits,
            rx,
        ));
        (addr, tx, h)
    }

    fn blocking(addr: std::net::SocketAddr, request: Vec<u8>) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peers_header_limits_and_slow_clients() {
        let limits = HttpLimits {
            header_timeout: Duration::from_millis(300),
            max_headers: 8,
            max_header_bytes: 2048,
            ..HttpLimits::default()
        };
        let (addr, stop, server) = start(limits);
        let ok = tokio::task::spawn_blocking(move || {
            blocking(
                addr,
                b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            )
        })
        .await
        .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("None Some(127.0.0.1)"), "{ok}");
        let many: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
        let r = tokio::task::spawn_blocking(move || {
            blocking(
                addr,
                format!("GET /who HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(),
            )
        })
        .await
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 431"), "too many headers: {r}");
        let big = "a".repeat(4096);
        let r = tokio::task::spawn_blocking(move || {
            blocking(
                addr,
                format!("GET /who HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").into_bytes(),
            )
        })
        .await
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 431"), "oversized header: {r}");
        // A client that sends half a request line and stalls is cut off.
        let started = std::time::Instant::now();
        let r = tokio::task::spawn_blocking(move || blocking(addr, b"GET /who HTT".to_vec()))
            .await
            .unwrap();
        assert!(!r.contains("200 OK"), "{r}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "closed by the header timeout"
        );
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unix_peers_carry_their_uid_and_connection_caps_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = watch::channel(false);
        let router = Router::new().route("/who", get(who));
        let server = tokio::spawn(serve(
            Bound::Unix(listener),
            router,
            HttpLimits::default(),
            rx,
        ));
        let r = tokio::task::spawn_blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
            s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .unwrap();
        let uid = nix::unistd::getuid().as_raw();
        assert!(r.contains(&format!("Some({uid}) None")), "{r}");
        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();

        let (addr, stop, server) = start(HttpLimits {
            max_connections_per_address: 1,
            ..HttpLimits::default()
        });
        let held = std::net::TcpStream::connect(addr).unwrap();
        // Give the server time to accept the first one.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = tokio::task::spawn_blocking(move || {
            blocking(
                addr,
                b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            r, "",
            "the second connection from the address is closed unanswered"
        );
        drop(held);
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
