//! The one thing the sync engine needs from a network: send a request to
//! the relay, get its response.
//!
//! Two implementations exist: HTTPS with a pinned relay key (feature
//! `http`, [`crate::sync::http`]) and an in-memory relay for tests (in the
//! relay crate, which runs the real router without sockets). The trait is
//! deliberately at the level of HTTP requests so both run the same relay
//! code and the same request signatures.

/// An HTTP method the relay API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A request to the relay.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// `Content-Type` of the body, if any.
    pub content_type: Option<&'static str>,
    /// The body (empty for GET).
    pub body: Vec<u8>,
    /// The `Authorization` header, for signed requests.
    pub authorization: Option<String>,
}

/// The relay's response.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The relay could not be reached (DNS, refused, reset, no route).
    #[error(
        "the relay at {url} cannot be reached ({reason}); check the connection and retry later, nothing was lost"
    )]
    Unreachable {
        /// The relay URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The connection dropped or timed out before the whole response came.
    #[error(
        "the connection to the relay dropped ({0}); run the sync again, it resumes where it stopped"
    )]
    Interrupted(String),
    /// The relay's TLS key is not the one pinned at enrolment.
    #[error(
        "the relay presented a TLS key that is not the one pinned at enrolment: someone may be intercepting the connection. Do not retry on this network; tell the office"
    )]
    PinMismatch,
    /// The response is larger than the client accepts.
    #[error("the relay sent a response larger than {limit} bytes; it may be misbehaving")]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The transport cannot be built as configured.
    #[error("cannot connect to the relay as configured: {0}")]
    Config(String),
}

/// Sends requests to one relay.
pub trait Transport {
    /// Sends `request` and returns the relay's response, whatever its status.
    fn send(&mut self, request: &Request) -> Result<Response, TransportError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        (**self).send(request)
    }
}
