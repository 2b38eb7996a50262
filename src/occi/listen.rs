//! Serving a [`super::Server`] on a listener: HTTP/1.1 with keep-alive, HTTP/2
//! (over TLS by ALPN, or with prior knowledge), TLS with rustls on `ring`,
//! a table of connection slots in which anonymous connections give way
//! to authenticated ones, deadlines that close every connection that does
//! not do its part (see [`super::connections`]), timeouts for slow
//! handshakes, headers and bodies, and a graceful shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::connections::{Admission, Closed, Conn, Deadlines, Peer, Table, Watched};

/// How connections are taken.
#[derive(Clone)]
pub struct Listening {
    /// TLS, when set (HTTP/2 and HTTP/1.1 offered by ALPN).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections served at once. When all are taken, the oldest one
    /// without an authenticated request is closed to make room; only when
    /// every one is authenticated is a new one answered 503 and closed.
    pub max_connections: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a request's headers may take to arrive (slowloris).
    pub header_timeout: Duration,
    /// How long a connection may stay open before one of its requests is
    /// authenticated, whatever it sends (or, without authentication,
    /// before its first request is read).
    pub anonymous_timeout: Duration,
    /// How long a connection may move no byte while no request on it is in
    /// flight (HTTP/1 keep-alive, HTTP/2 sessions, WebSockets alike).
    pub idle_timeout: Duration,
    /// How long to wait for open connections at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Listening {
    fn default() -> Listening {
        Listening {
            tls: None,
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            anonymous_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// A TLS configuration from a PEM certificate chain and a PEM private key,
/// on the `ring` provider, offering `h2` and `http/1.1`.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    // rustls 0.23.48 deprecates ring's provider (ring has no post-quantum
    // key exchange). We build on ring on purpose: aws-lc-rs needs a C and
    // cmake toolchain to build. The classical key exchanges stay sound.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 52\r\n\r\ntoo many connections at once; try again in a moment\n";

/// Logs at most one line a second of each kind; the lines held back are
/// counted into the next one, so a flood of connections does not flood the
/// log.
struct Quota {
    log: Arc<dyn Fn(String) + Send + Sync>,
    state: std::sync::Mutex<std::collections::HashMap<&'static str, (std::time::Instant, u64)>>,
}

impl Quota {
    fn say(&self, kind: &'static str, line: String) {
        self.say_at(kind, line, std::time::Instant::now());
    }

    fn say_at(&self, kind: &'static str, line: String, now: std::time::Instant) {
        let held = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match state.get_mut(kind) {
                Some((last, held)) if now.duration_since(*last) < Duration::from_secs(1) => {
                    *held += 1;
                    return;
                }
                Some((last, held)) => {
                    *last = now;
                    std::mem::take(held)
                }
                None => {
                    state.insert(kind, (now, 0));
                    0
                }
            }
        };
        if held > 0 {
            (self.log)(format!("{line} (and {held} more like it)"));
        } else {
            (self.log)(line);
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; `log` hears
/// about connections refused, closed by a deadline, or failed (at most a
/// line a second of each kind). Each request carries a [`Peer`] in its
/// extensions.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    how: Listening,
    shutdown: impl std::future::Future<Output = ()> + Send,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> std::io::Result<()> {
    let table = Table::new(how.max_connections);
    let graceful = GracefulShutdown::new();
    let acceptor = how.tls.clone().map(TlsAcceptor::from);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(how.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let quota = Arc::new(Quota {
        log,
        state: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let deadlines = Deadlines {
        anonymous: how.anonymous_timeout,
        idle: how.idle_timeout,
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, go on.
                    quota.say("accept", format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match table.admit(peer) {
            Admission::Admitted(slot, evicted) => {
                if let Some(old) = evicted {
                    quota.say("evicted", format!("{old}: {}", Closed::Evicted));
                }
                slot
            }
            Admission::Full => {
                quota.say(
                    "refused",
                    format!("{peer}: refused, {} connections open", how.max_connections),
                );
                if acceptor.is_none() {
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            let _ = stream.write_all(BUSY).await;
                            let _ = stream.shutdown().await;
                        })
                        .await;
                    });
                }
                continue;
            }
        };
        let (builder, acceptor, quota) =
            (Arc::clone(&builder), acceptor.clone(), Arc::clone(&quota));
        let router = router.clone();
        let watcher = graceful.watcher();
        let handshake = how.handshake_timeout;
        tokio::spawn(async move {
            let conn = Arc::clone(&slot.conn);
            let stream = Watched::new(stream, Arc::clone(&conn));
            let served = async {
                match acceptor {
                    None => run(&builder, stream, &conn, router, watcher, &quota, peer).await,
                    Some(a) => match tokio::time::timeout(handshake, a.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            run(&builder, tls, &conn, router, watcher, &quota, peer).await
                        }
                        Ok(Err(e)) => {
                            quota.say("tls", format!("{peer}: TLS handshake failed: {e}"))
                        }
                        Err(_) => quota.say(
                            "tls",
                            format!("{peer}: TLS handshake took over {handshake:?}"),
                        ),
                    },
                }
            };
            tokio::select! {
                () = served => {}
                why = conn.expired(deadlines) => {
                    if why != Closed::Evicted {
                        quota.say(if matches!(why, Closed::Idle(_)) { "idle" } else { "anonymous" }, format!("{peer}: {why}"));
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(how.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        (quota.log)("connections still open at shutdown were dropped".into());
    }
    Ok(())
}

async fn run<S>(
    builder: &Builder<TokioExecutor>,
    io: S,
    conn: &Arc<Conn>,
    router: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    quota: &Quota,
    peer: std::net::SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let inner = TowerToHyperService::new(router);
    let conn = Arc::clone(conn);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        use hyper::service::Service;
        req.extensions_mut().insert(Peer(Arc::clone(&conn)));
        let busy = conn.begin();
        let answer = inner.call(req);
        async move {
            let r = answer.await;
            drop(busy);
            r
        }
    });
    let served = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(served.into_owned()).await {
        let text = e.to_string();
        // A client that goes away is not news.
        if !text.contains("connection closed") && !text.contains("reset") {
            quota.say("failed", format!("{peer}: {text}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    #[test]
    fn the_log_says_one_line_a_second_of_each_kind_and_counts_the_rest() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let quota = Quota {
            log: Arc::new(move |l| seen.lock().unwrap().push(l)),
            state: Mutex::new(Default::default()),
        };
        let t0 = Instant::now();
        for i in 0..5 {
            quota.say_at("idle", format!("idle {i}"), t0);
        }
        quota.say_at("refused", "refused".into(), t0);
        quota.say_at(
            "idle",
            "idle later".into(),
            t0 + Duration::from_millis(1500),
        );
        assert_eq!(
            *lines.lock().unwrap(),
            ["idle 0", "refused", "idle later (and 4 more like it)"]
        );
    }
}
