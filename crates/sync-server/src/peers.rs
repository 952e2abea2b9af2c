//! Connections per peer address, bounded where they are accepted.
//!
//! Header and request timeouts close a slow connection eventually, but
//! until then each holds a socket and buffers; one address opening
//! thousands would hold them all. [`PeerLimit`] wraps the relay's
//! acceptor: an address with `max` connections open has further ones
//! closed at once, before TLS or HTTP, and a connection gives its place
//! back when it closes.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Open connections per address, shared by the acceptor and the streams.
#[derive(Clone, Debug)]
pub struct PeerLimit {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max: u32,
}

impl PeerLimit {
    /// At most `max` open connections per address.
    pub fn new(max: u32) -> Self {
        PeerLimit {
            open: Arc::new(Mutex::new(HashMap::new())),
            max: max.max(1),
        }
    }
}

/// An accepted connection holding its address's place.
#[derive(Debug)]
pub struct Counted {
    inner: TcpStream,
    peer: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

impl<S> Accept<TcpStream, S> for PeerLimit {
    type Stream = Counted;
    type Service = S;
    type Future = Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let peer = match stream.peer_addr() {
            Ok(addr) => addr.ip(),
            Err(e) => return ready(Err(e)),
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(peer).or_insert(0);
        if *n >= self.max {
            drop(open);
            tracing::warn!(%peer, max = self.max, "connection refused: too many open from this address");
            return ready(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "too many connections from this address",
            )));
        }
        *n += 1;
        drop(open);
        let _ = stream.set_nodelay(true);
        ready(Ok((
            Counted {
                inner: stream,
                peer,
                open: self.open.clone(),
            },
            service,
        )))
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
