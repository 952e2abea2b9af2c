//! Running the relay: TLS (rustls) or, only when asked, plain HTTP; a
//! listener and a shutdown future passed in, so tests bind port 0.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::api::{AppState, router};
use crate::peers::PeerLimit;

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
    let peers = PeerLimit::new(state.limits().max_connections_per_peer);
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match transport {
        Transport::Tls(config) => {
            let acceptor = RustlsAcceptor::new(config)
                .handshake_timeout(header_timeout)
                .acceptor(peers);
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .handle(handle)
                .first_request_timeout(header_timeout);
            configure(server.http_builder(), header_timeout);
            server.serve(app).await
        }
        Transport::InsecureHttp => {
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(peers)
                .handle(handle)
                .first_request_timeout(header_timeout);
            configure(server.http_builder(), header_timeout);
            server.serve(app).await
        }
    }
}

/// Timeouts and buffers for both protocols: a connection must finish its
/// TLS handshake and send its first request within `header_timeout`
/// (set on the server), HTTP/1 headers must arrive within it, and an
/// HTTP/2 connection holds few streams, small header lists, and is closed
/// when it stops answering pings. What a request body may take is the
/// admission layer's and the request timeout's (`api`).
fn configure(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(32)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(16)
        // Unread DATA a peer may push before the admission layer answers.
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024)
        .keep_alive_interval(Some(header_timeout))
        .keep_alive_timeout(header_timeout);
}
