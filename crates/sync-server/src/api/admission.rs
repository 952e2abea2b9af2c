//! What a request must show before the relay reads its body.
//!
//! Anyone on the internet can open connections to a relay and start
//! sending bodies. Before this layer, a body up to `max_request_bytes`
//! was buffered in full before anyone checked who sent it, with no bound
//! on how many at once: 100 connections without an Authorization header
//! took a relay to 1.5 GiB resident. So, before a byte of body is read:
//!
//! 1. a declared `Content-Length` over the limit is refused at once
//!    (413; routes open to anyone take at most [`OPEN_BODY_BYTES`]);
//! 2. a body that may be large (declared over [`OPEN_BODY_BYTES`], or of
//!    unknown length) must come with an Authorization header of an active
//!    device of the team, at a fresh time, that declares the body's digest
//!    and whose signature over it verifies (the body read is then checked
//!    against the digest, and the nonce consumed, by the handler);
//! 3. the body's bytes (or, for a page of envelopes, twice the page's byte
//!    budget) are reserved from the relay's in-flight budget
//!    (`max_in_flight_bytes`; the routes open to anyone have their own
//!    [`OPEN_POOL_BYTES`]), and a peer address has at most
//!    `max_requests_per_peer` requests in flight; past either the answer is
//!    503 or 429, retry later.
//!
//! Refusals close the connection, so an unread body is never drained.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState, blocking, parse_team};

/// Largest body of a route open to anyone (team creation, joining).
pub const OPEN_BODY_BYTES: u64 = 64 * 1024;
/// The in-flight budget of the routes open to anyone.
pub const OPEN_POOL_BYTES: u64 = 8 * 1024 * 1024;
/// The unit of the in-flight budget.
const UNIT: u64 = 1024;

/// The relay's budget of request bytes in flight, and requests per peer.
pub(super) struct Admission {
    bytes: Arc<Semaphore>,
    units: u64,
    /// A pool of its own for the routes open to anyone, so that strangers
    /// cannot take what team devices need.
    open: Arc<Semaphore>,
    per_peer: Mutex<HashMap<IpAddr, u32>>,
    max_per_peer: u32,
}

impl Admission {
    pub(super) fn new(max_in_flight_bytes: u64, max_requests_per_peer: u32) -> Self {
        let units = (max_in_flight_bytes / UNIT).max(1);
        Admission {
            bytes: Arc::new(Semaphore::new(
                units.min(Semaphore::MAX_PERMITS as u64) as usize
            )),
            units,
            open: Arc::new(Semaphore::new((OPEN_POOL_BYTES / UNIT) as usize)),
            per_peer: Mutex::new(HashMap::new()),
            max_per_peer: max_requests_per_peer.max(1),
        }
    }
}

/// A peer's place among the requests in flight, given back when dropped.
struct PeerSlot<'a> {
    admission: &'a Admission,
    peer: IpAddr,
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        let mut peers = self
            .admission
            .per_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    closing(ApiError::new(status, code, message).into_response())
}

fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The team a route names, if it takes a signed request.
fn signed_team(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/teams/")?;
    let (team, route) = rest.split_once('/')?;
    (route != "join").then_some(team)
}

/// The middleware: admits a request (or refuses it before its body) and
/// holds its reservation until the response is made.
pub(super) async fn admit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let limits = state.limits();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let has_body = declared.is_some_and(|n| n > 0)
        || (declared.is_none() && !matches!(*request.method(), Method::GET | Method::HEAD));
    let path = request.uri().path().to_owned();
    let team = signed_team(&path);
    let limit = match team {
        Some(_) => limits.max_request_bytes as u64,
        None => OPEN_BODY_BYTES,
    };
    if declared.is_some_and(|n| n > limit) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the {limit}-byte limit; send smaller batches"),
        );
    }
    // The peer's place first: its header checks (a database read, a
    // signature) are work too.
    let admission = &state.admission;
    let _peer = match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => {
            let peer = peer.ip();
            let mut peers = admission.per_peer.lock().unwrap_or_else(|p| p.into_inner());
            let n = peers.entry(peer).or_insert(0);
            if *n >= admission.max_per_peer {
                drop(peers);
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_from_peer",
                    "too many requests in flight from this address; wait and retry",
                );
            }
            *n += 1;
            Some(PeerSlot { admission, peer })
        }
        None => None,
    };
    let may_be_large = has_body && declared.is_none_or(|n| n > OPEN_BODY_BYTES);
    if may_be_large {
        let Some(team) = team else {
            return refuse(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "this endpoint takes a small body with a Content-Length",
            );
        };
        let team = match parse_team(team) {
            Ok(team) => team,
            Err(e) => return closing(e.into_response()),
        };
        let headers = request.headers().clone();
        let method = request.method().as_str().to_owned();
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let checked = {
            let state = state.clone();
            blocking(move || {
                let (auth, _, key) = state.authenticate_headers(team, &headers)?;
                // The signature, over the digest the header declares: a
                // device id learnt from traffic is not enough.
                auth.verify_declared(&key, &method, &target)?;
                Ok(())
            })
            .await
        };
        if let Err(e) = checked {
            return closing(e.into_response());
        }
    }
    // What the request may make the relay hold: its body, or for a page
    // of envelopes the page's byte budget (read from storage, then encoded
    // once more).
    let reserve = if has_body {
        declared.unwrap_or(limit).min(limit)
    } else if path.ends_with("/envelopes") && *request.method() == Method::GET {
        let asked = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("max_bytes=")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        asked.min(limits.max_page_bytes as u64).saturating_mul(2)
    } else {
        0
    };
    let pool = if team.is_some() {
        &admission.bytes
    } else {
        &admission.open
    };
    let units = reserve.div_ceil(UNIT).min(admission.units) as u32;
    let _bytes: Option<OwnedSemaphorePermit> = if units == 0 {
        None
    } else {
        match pool.clone().try_acquire_many_owned(units) {
            Ok(permit) => Some(permit),
            Err(_) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "relay_busy",
                    "the relay is receiving as much as it holds at once; retry in a few seconds",
                );
            }
        }
    };
    next.run(request).await.into_response()
}
