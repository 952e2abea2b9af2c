//! The relay's error responses: a status code and a JSON body with a
//! stable machine code and a message for people.
//!
//! ```json
//! {"error": {"code": "equivocation", "message": "…"}, "server_time": 1780000000}
//! ```
//!
//! Client input never produces a 5xx; 503 means the relay's own storage failed.

use amana_core::request_auth::RequestAuthError;
use amana_core::{AuthorError, EnvelopeError, RosterError};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::IngestError;
use crate::store::StoreError;

/// An error the API returns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    server_time: Option<u64>,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            server_time: None,
            details: None,
        }
    }

    /// Adds structured details (e.g. what a batch accepted before failing).
    pub fn with_details(mut self, key: &str, value: serde_json::Value) -> Self {
        let mut map = match self.details.take() {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        map.insert(key.to_owned(), value);
        self.details = Some(serde_json::Value::Object(map));
        self
    }

    /// Adds the relay's clock, so a client can correct its own.
    pub fn with_time(mut self, now: u64) -> Self {
        self.server_time = Some(now);
        self
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(t) = self.server_time {
            body["server_time"] = json!(t);
        }
        if let Some(serde_json::Value::Object(details)) = self.details {
            for (k, v) in details {
                body[k] = v;
            }
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<RequestAuthError> for ApiError {
    fn from(e: RequestAuthError) -> Self {
        let code = match e {
            RequestAuthError::Missing => "unauthenticated",
            RequestAuthError::Malformed(_) => "malformed_authorization",
            RequestAuthError::BadSignature => "bad_request_signature",
            _ => "unauthenticated",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            StoreError::UnknownTeam(_) => (S::NOT_FOUND, "unknown_team"),
            StoreError::TeamExists(_) => (S::CONFLICT, "team_exists"),
            StoreError::TooManyTeams { .. } => (S::FORBIDDEN, "relay_full"),
            StoreError::TeamTokenInvalid => (S::FORBIDDEN, "team_token_invalid"),
            StoreError::TeamFull { .. } => (S::FORBIDDEN, "team_quota_exceeded"),
            StoreError::RosterConflict { .. } => (S::CONFLICT, "roster_conflict"),
            StoreError::Gap { .. } => (S::CONFLICT, "seq_gap"),
            StoreError::PrevMismatch { .. } => (S::CONFLICT, "prev_mismatch"),
            StoreError::Equivocation { .. } => (S::CONFLICT, "equivocation"),
            StoreError::InviteUnknown => (S::NOT_FOUND, "invite_unknown"),
            StoreError::InviteUsed => (S::GONE, "invite_used"),
            StoreError::InviteExpired => (S::GONE, "invite_expired"),
            StoreError::TooManyInvites { .. } => (S::FORBIDDEN, "too_many_invites"),
            StoreError::RevocationBound { .. } => (S::CONFLICT, "revocation_bound"),
            StoreError::StaleAnnouncement { .. } => (S::CONFLICT, "stale_announcement"),
            StoreError::Revoked { .. } => (S::FORBIDDEN, "device_revoked"),
            StoreError::Corrupt(_) | StoreError::Backend(_) => {
                tracing::error!(error = %e, "relay storage failed");
                return ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the relay's storage failed; try again later",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            IngestError::Envelope(env) => match env {
                EnvelopeError::Truncated { .. } => (S::BAD_REQUEST, "envelope_truncated"),
                EnvelopeError::TrailingBytes { .. } => (S::BAD_REQUEST, "envelope_trailing_bytes"),
                EnvelopeError::Oversized { .. } => (S::PAYLOAD_TOO_LARGE, "envelope_oversized"),
                EnvelopeError::Body(_) => (S::BAD_REQUEST, "body_not_age"),
                EnvelopeError::BadSignature => (S::BAD_REQUEST, "bad_envelope_signature"),
                EnvelopeError::UnsupportedVersion(_) | EnvelopeError::UnknownKind(_) => {
                    (S::BAD_REQUEST, "envelope_unsupported")
                }
                _ => (S::BAD_REQUEST, "envelope_malformed"),
            },
            IngestError::WrongTeam { .. } => (S::BAD_REQUEST, "wrong_team"),
            IngestError::NotSigner { .. } => (S::FORBIDDEN, "not_signer"),
            IngestError::Author(a) => match a {
                AuthorError::Revoked { .. } => (S::FORBIDDEN, "revoked_device"),
                AuthorError::UnknownEpoch { .. } | AuthorError::EpochBeforeJoin { .. } => {
                    (S::BAD_REQUEST, "bad_epoch")
                }
                _ => (S::FORBIDDEN, "not_a_writer"),
            },
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<RosterError> for ApiError {
    fn from(e: RosterError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_roster_op", e.to_string())
    }
}
