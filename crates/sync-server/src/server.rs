//! Running the relay: TLS (rustls) or, only when asked, plain HTTP; a
//! listener and a shutdown future passed in, so tests bind port 0.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::api::{AppState, router};

/// How connections are protected.
pub enum Transport {
    /// TLS with this certificate and key.
    Tls(RustlsConfig),
    /// Plain HTTP, for a TLS-terminating proxy in front or loopback only.
    InsecureHttp,
}

/// Loads a PEM certificate chain and private key for TLS.
pub async fn tls_from_pem(cert: &[u8], key: &[u8]) -> std::io::Result<Transport> {
    install_crypto_provider();
    RustlsConfig::from_pem(cert.to_vec(), key.to_vec())
        .await
        .map(Transport::Tls)
}

/// Installs the ring provider as rustls's process default (once).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves the relay on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (up to 10 seconds).
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle: Handle<std::net::SocketAddr> = Handle::new();
    let waiter = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        waiter.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let header_timeout = Duration::from_secs(state.limits().header_timeout_secs);
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match transport {
        Transport::Tls(config) => {
            let mut server = axum_server::from_tcp_rustls(listener, config)?.handle(handle);
            configure(server.http_builder(), header_timeout);
            server.serve(app).await
        }
        Transport::InsecureHttp => {
            let mut server = axum_server::from_tcp(listener)?.handle(handle);
            configure(server.http_builder(), header_timeout);
            server.serve(app).await
        }
    }
}

/// Cuts off clients that are slow to send their headers (slowloris) and
/// keeps to HTTP/1.1.
fn configure(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
}
