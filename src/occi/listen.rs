//! Serving a [`Server`] on a listener: HTTP/1.1 with keep-alive, HTTP/2
//! (over TLS by ALPN, or with prior knowledge), TLS with rustls on `ring`,
//! a cap on concurrent connections, timeouts for slow handshakes and
//! headers, and a graceful shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// How connections are taken.
#[derive(Clone)]
pub struct Listening {
    /// TLS, when set (HTTP/2 and HTTP/1.1 offered by ALPN).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a request's headers may take to arrive (slowloris).
    pub header_timeout: Duration,
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

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 52\r\n\r\ntoo many connections at once; try again in a moment\n";

/// Serves `router` on `listener` until `shutdown` completes; `log` hears
/// about connections refused or failed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    how: Listening,
    shutdown: impl std::future::Future<Output = ()> + Send,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(how.max_connections));
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
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, go on.
                    log(format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            log(format!(
                "{peer}: refused, {} connections open",
                how.max_connections
            ));
            if acceptor.is_none() {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = stream.write_all(BUSY).await;
                    let _ = stream.shutdown().await;
                });
            }
            continue;
        };
        let (builder, acceptor, log) = (Arc::clone(&builder), acceptor.clone(), Arc::clone(&log));
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let handshake = how.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => run(&builder, stream, service, watcher, &*log, peer).await,
                Some(a) => match tokio::time::timeout(handshake, a.accept(stream)).await {
                    Ok(Ok(tls)) => run(&builder, tls, service, watcher, &*log, peer).await,
                    Ok(Err(e)) => log(format!("{peer}: TLS handshake failed: {e}")),
                    Err(_) => log(format!("{peer}: TLS handshake took over {handshake:?}")),
                },
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(how.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        log("connections still open at shutdown were dropped".into());
    }
    Ok(())
}

async fn run<S>(
    builder: &Builder<TokioExecutor>,
    io: S,
    service: TowerToHyperService<axum::Router>,
    watcher: hyper_util::server::graceful::Watcher,
    log: &(dyn Fn(String) + Send + Sync),
    peer: std::net::SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        let text = e.to_string();
        // A client that goes away is not news.
        if !text.contains("connection closed") && !text.contains("reset") {
            log(format!("{peer}: {text}"));
        }
    }
}
