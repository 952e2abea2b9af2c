//! An in-memory relay for tests and benchmarks: the real router and the
//! real checks over an in-memory SQLite store, called without sockets. It
//! implements the sync engine's `Transport`, and can lose a response or a
//! request on purpose to show that a sync interrupted anywhere resumes.

use std::sync::Arc;

use amana_core::transport::{Method, Request, Response, Transport, TransportError};
use axum::Router;
use axum::body::Body;
use axum::http;
use tower::ServiceExt as _;

use crate::api::{AppState, Clock, router};
use crate::config::Limits;
use crate::store::{RelayStore, SqliteStore};

/// What to do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Deliver it normally.
    None,
    /// The request never reaches the relay.
    DropRequest,
    /// The relay handles the request but the response is lost.
    DropResponse,
}

type FaultPlan = Box<dyn FnMut(u64, &Request) -> Fault + Send>;

/// A relay in memory.
pub struct MemoryRelay {
    runtime: tokio::runtime::Runtime,
    router: Router,
    store: Arc<SqliteStore>,
    requests: u64,
    plan: Option<FaultPlan>,
}

impl std::fmt::Debug for MemoryRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRelay")
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

impl MemoryRelay {
    /// A fresh relay with `key` as its receipt key, default limits and
    /// `clock` as its time.
    pub fn new(key: ed25519_dalek::SigningKey, clock: Clock) -> Self {
        // Tests create teams freely: the open mode, asked for explicitly.
        Self::with_limits(
            key,
            clock,
            Limits {
                open_team_creation: true,
                ..Limits::default()
            },
        )
    }

    /// A fresh relay with the given limits.
    pub fn with_limits(key: ed25519_dalek::SigningKey, clock: Clock, limits: Limits) -> Self {
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite opens"));
        let state = Arc::new(AppState::new(
            store.clone() as Arc<dyn RelayStore>,
            key,
            limits,
            clock,
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        MemoryRelay {
            runtime,
            router: router(state),
            store,
            requests: 0,
            plan: None,
        }
    }

    /// The store behind the relay (tests inspect or tamper with it).
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Decides, for every later request (numbered from 1 since the relay
    /// was made), whether to deliver it, drop it, or lose its response.
    pub fn set_faults(&mut self, plan: impl FnMut(u64, &Request) -> Fault + Send + 'static) {
        self.plan = Some(Box::new(plan));
    }

    /// Delivers every request normally again.
    pub fn clear_faults(&mut self) {
        self.plan = None;
    }
}

impl Transport for MemoryRelay {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        self.requests += 1;
        let fault = match &mut self.plan {
            Some(plan) => plan(self.requests, request),
            None => Fault::None,
        };
        if fault == Fault::DropRequest {
            return Err(TransportError::Interrupted(
                "request lost (test fault)".into(),
            ));
        }
        let method = match request.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
        };
        let mut builder = http::Request::builder().method(method).uri(&request.path);
        if let Some(ct) = request.content_type {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
        }
        if let Some(auth) = &request.authorization {
            builder = builder.header(http::header::AUTHORIZATION, auth);
        }
        // As an HTTP client sends it: the relay admits bodies by their
        // declared length.
        builder = builder.header(http::header::CONTENT_LENGTH, request.body.len());
        let http_request = builder
            .body(Body::from(request.body.clone()))
            .map_err(|e| TransportError::Config(e.to_string()))?;
        let router = self.router.clone();
        let (status, content_type, body) = self.runtime.block_on(async move {
            let response = router
                .oneshot(http_request)
                .await
                .expect("the router is infallible");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map(|b| b.to_vec());
            (status, content_type, body)
        });
        if fault == Fault::DropResponse {
            return Err(TransportError::Interrupted(
                "response lost (test fault)".into(),
            ));
        }
        Ok(Response {
            status,
            content_type,
            body: body.map_err(|e| TransportError::Interrupted(e.to_string()))?,
        })
    }
}
