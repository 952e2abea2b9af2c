//! The relay's HTTP API (`/v1`), documented in `docs/relay-api.md`.
//!
//! Handlers never log request bodies; they log the team, device, route and
//! outcome only.

mod admission;
mod enrolment;
mod error;
pub mod framing;
mod lifecycle;
mod rate;

pub use error::ApiError;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amana_core::envelope::EnvelopeLimits;
use amana_core::receipt::Receipt;
use amana_core::request_auth::RequestAuth;
use amana_core::roster::{Role, Roster, RosterChange};
use amana_core::team_token::TeamToken;
use amana_core::{DeviceId, Digest, TeamId};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ed25519_dalek::SigningKey;
use serde::Deserialize;
use serde_json::json;

use crate::config::Limits;
use crate::ingest;
use crate::store::{Appended, NewEnvelope, RelayStore, RevocationBound, RosterEffect};

/// The `Authorization` scheme of team creation: `AmanaTeam <token>`.
pub const TEAM_TOKEN_SCHEME: &str = "AmanaTeam ";

/// A source of the current time in unix seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// Everything the handlers share.
pub struct AppState {
    store: Arc<dyn RelayStore>,
    key: SigningKey,
    limits: Limits,
    clock: Clock,
    rosters: Mutex<HashMap<TeamId, Arc<Roster>>>,
    rate: rate::RateLimiter,
    admission: admission::Admission,
}

impl AppState {
    /// Builds the state.
    pub fn new(store: Arc<dyn RelayStore>, key: SigningKey, limits: Limits, clock: Clock) -> Self {
        let rate = rate::RateLimiter::new(limits.requests_per_minute);
        let admission =
            admission::Admission::new(limits.max_in_flight_bytes, limits.max_requests_per_peer);
        Self {
            store,
            key,
            limits,
            clock,
            rosters: Mutex::new(HashMap::new()),
            rate,
            admission,
        }
    }

    pub(super) fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The verified roster of a team, from cache while the stored chain
    /// ends with the same operation at the same length: a request costs one
    /// indexed read of the last operation, not a read and verification of
    /// all of them (another relay process sharing the database, or a
    /// restored copy, shows as another tip).
    pub(super) fn roster(&self, team: TeamId) -> Result<Arc<Roster>, ApiError> {
        let (len, last) = self.store.roster_tip(team)?;
        if let Some(cached) = self
            .rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&team)
            && cached.ops().len() as u64 == len
            && cached.ops().last().map(|o| o.as_bytes()) == Some(last.as_slice())
        {
            return Ok(cached.clone());
        }
        let ops = self.store.roster(team)?;
        let roster = Arc::new(Roster::verify(&ops).map_err(|e| {
            tracing::error!(%team, error = %e, "stored roster does not verify");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the relay's stored roster for this team does not verify",
            )
        })?);
        self.rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(team, roster.clone());
        Ok(roster)
    }

    /// What the headers alone can show, checked before a body is read:
    /// a well-formed Authorization header, a fresh time, and an active
    /// device of the team. Returns the parsed header, the roster and the
    /// device's key.
    pub(super) fn authenticate_headers(
        &self,
        team: TeamId,
        headers: &HeaderMap,
    ) -> Result<(RequestAuth, Arc<Roster>, ed25519_dalek::VerifyingKey), ApiError> {
        let now = self.now();
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(amana_core::request_auth::RequestAuthError::Missing)?;
        let auth = RequestAuth::parse(value)?;
        if auth.ts.abs_diff(now) > self.limits.max_clock_skew_secs {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "clock_skew",
                format!(
                    "the request time differs from the relay's by more than {} seconds; correct the clock offset with server_time and sign again",
                    self.limits.max_clock_skew_secs
                ),
            )
            .with_time(now));
        }
        let roster = self.roster(team)?;
        let key = match roster.device(&auth.device) {
            Some(d) if d.is_active() => d.entry.signing_key,
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "revoked_device",
                    "this device was revoked from the team",
                ));
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not_a_team_device",
                    "this device is not on the team's roster",
                ));
            }
        };
        Ok((auth, roster, key))
    }

    /// Checks the request signature and freshness; returns the team's
    /// roster and the signing device.
    pub(super) fn authenticate(
        &self,
        team: TeamId,
        method: &Method,
        uri: &OriginalUri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(Arc<Roster>, DeviceId), ApiError> {
        let now = self.now();
        let (auth, roster, key) = self.authenticate_headers(team, headers)?;
        let path = uri.0.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        auth.verify(&key, method.as_str(), path, body)?;
        if !self.rate.allow(auth.device, now) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this device; wait a minute and retry",
            ));
        }
        let expires = auth.ts.max(now) + 2 * self.limits.max_clock_skew_secs;
        if !self
            .store
            .use_nonce(auth.device, auth.nonce, expires, now)?
        {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "replayed_request",
                "this request was already received; sign every request with a fresh nonce",
            ));
        }
        Ok((roster, auth.device))
    }
}

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_request_bytes;
    Router::new()
        .route("/healthz", get(health))
        .route("/v1/relay", get(relay_info))
        .route("/v1/teams", post(create_team))
        .route(
            "/v1/teams/{team}/roster",
            get(get_roster).post(append_roster),
        )
        .route(
            "/v1/teams/{team}/envelopes",
            get(get_envelopes).post(upload),
        )
        .route("/v1/teams/{team}/receipts", get(get_receipts))
        .route("/v1/teams/{team}/invites", post(enrolment::create_invite))
        .route("/v1/teams/{team}/compact", post(lifecycle::compact))
        .route(
            "/v1/teams/{team}/recipients",
            get(lifecycle::get_recipients).post(lifecycle::put_recipient),
        )
        .route("/v1/teams/{team}/join", post(enrolment::join))
        .route("/v1/teams/{team}/pending", get(enrolment::pending))
        .route(
            "/v1/teams/{team}/keys",
            get(enrolment::get_keys).post(enrolment::put_keys),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admission::admit,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.limits.request_timeout_secs),
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/relay-api.md",
    )
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn relay_info(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "relay_key": hex::encode(state.key.verifying_key().as_bytes()),
        "server_time": state.now(),
    }))
}

pub(super) fn parse_team(text: &str) -> Result<TeamId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_team_id",
            "the team id must be 32 hex digits",
        )
    })
}

pub(super) fn require_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let found = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if found.split(';').next().map(str::trim) == Some(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("this endpoint takes Content-Type: {expected}"),
        ))
    }
}

/// Runs blocking store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_failure",
            "the relay failed while handling this request; try again",
        ))
    })
}

pub(super) fn binary(media_type: &'static str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, media_type)], body).into_response()
}

async fn create_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_type(&headers, framing::ROSTER_OP)?;
    let token = match headers.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.strip_prefix(TEAM_TOKEN_SCHEME))
            .map(TeamToken::parse)
    }) {
        Some(Some(Ok(token))) => Some(token.hash()),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "team_token_invalid",
                amana_core::team_token::BadTeamToken.to_string(),
            ));
        }
        None if state.limits.open_team_creation => None,
        None => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "team_token_required",
                "creating a team on this relay needs a team token from its operator (`amana-relay team-token`); pass it to `amana team create`",
            ));
        }
    };
    blocking(move || {
        let roster = Roster::verify(&[&body[..]])?;
        state.store.create_team(
            roster.team(),
            &body,
            state.now(),
            state.limits.max_teams,
            token,
        )?;
        tracing::info!(team = %roster.team(), "team created");
        Ok((
            StatusCode::CREATED,
            Json(json!({"team": roster.team().to_hex(), "relay_key": hex::encode(state.key.verifying_key().as_bytes())})),
        )
            .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct RosterQuery {
    after: Option<usize>,
}

async fn get_roster(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    Query(query): Query<RosterQuery>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    blocking(move || {
        state.authenticate(team, &method, &uri, &headers, &[])?;
        let ops = state.store.roster(team)?;
        let after = query.after.unwrap_or(0);
        if after > ops.len() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "roster_behind",
                format!(
                    "the relay holds {} roster operations, fewer than the {after} the device verified",
                    ops.len()
                ),
            )
            .with_details("roster_len", json!(ops.len())));
        }
        Ok(binary(framing::ROSTER, framing::join(&ops[after..])))
    })
    .await
}

async fn append_roster(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    require_type(&headers, framing::ROSTER_OP)?;
    blocking(move || {
        let (cached, device) = state.authenticate(team, &method, &uri, &headers, &body)?;
        // A copy to extend (the cached one stays as verified).
        let mut roster = Roster::clone(&cached);
        let index = roster.next_index();
        roster.apply(&body)?;
        let effect = match &roster.ops()[index as usize].change {
            RosterChange::RevokeDevice {
                device,
                last_seq,
                last_id,
            } => RosterEffect::Revokes(RevocationBound {
                device: *device,
                last_seq: *last_seq,
                last_id: *last_id,
            }),
            RosterChange::RotateEpoch {
                epoch,
                forget: true,
                ..
            } => RosterEffect::Forgets { below: *epoch },
            _ => RosterEffect::None,
        };
        state.store.append_roster_op(team, index, &body, effect)?;
        tracing::info!(%team, %device, index, "roster operation appended");
        Ok((StatusCode::CREATED, Json(json!({"index": index}))).into_response())
    })
    .await
}

async fn upload(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    require_type(&headers, framing::ENVELOPES)?;
    blocking(move || {
        let (roster, device) = state.authenticate(team, &method, &uri, &headers, &body)?;
        let items = framing::split(&body, state.limits.max_batch).map_err(|e| {
            let status = match e {
                framing::FrameError::TooMany { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, "bad_batch", e.to_string())
        })?;
        let limits = EnvelopeLimits {
            max_body: state.limits.max_envelope_bytes,
            ..EnvelopeLimits::default()
        };
        // The stateless checks first, up to the first failure; then the
        // envelopes before it are appended in one transaction.
        let mut checked = Vec::with_capacity(items.len());
        let mut failure = None;
        for item in items {
            match ingest::check(item, team, device, &roster, &limits) {
                Ok(envelope) => checked.push(envelope),
                Err(e) => {
                    failure = Some(ApiError::from(e));
                    break;
                }
            }
        }
        // The relay keeps no body of a retired epoch: its author re-sends
        // the content under the new epoch.
        let stubs: Vec<Option<_>> = checked
            .iter()
            .map(|c| (c.envelope().header().epoch < roster.retired_below()).then(|| c.envelope().stub()))
            .collect();
        let new: Vec<NewEnvelope<'_>> = checked
            .iter()
            .zip(&stubs)
            .map(|(c, stub)| {
                let mut new = c.as_new();
                if let Some(stub) = stub {
                    new.bytes = stub.as_bytes();
                }
                new
            })
            .collect();
        let (appended, refused) = if new.is_empty() {
            (Vec::new(), None)
        } else {
            state
                .store
                .append_envelopes(team, &new, state.now(), state.limits.max_team_bytes)?
        };
        let accepted: Vec<_> = new
            .iter()
            .zip(&appended)
            .map(|(new, outcome)| {
                let receipt = Receipt {
                    team,
                    device,
                    seq: new.seq,
                    envelope: new.id,
                    cursor: outcome.cursor(),
                }
                .sign(&state.key);
                json!({
                    "seq": new.seq,
                    "cursor": outcome.cursor(),
                    "duplicate": matches!(outcome, Appended::Duplicate { .. }),
                    "receipt": hex::encode(receipt),
                })
            })
            .collect();
        if let Some(e) = refused.map(ApiError::from).or(failure) {
            tracing::info!(%team, %device, code = e.code(), accepted = accepted.len(), "upload refused");
            return Err(e.with_details("accepted", json!(accepted)));
        }
        tracing::info!(%team, %device, count = accepted.len(), "envelopes accepted");
        Ok(Json(json!({"accepted": accepted})).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
    max_bytes: Option<usize>,
    /// Hex SHA-256 digest of the heads the device holds.
    heads: Option<String>,
}

async fn get_envelopes(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    Query(query): Query<PageQuery>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    let held = query
        .heads
        .as_deref()
        .map(|hex| {
            hex.parse::<Digest>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_heads_digest",
                    "heads must be the 64-hex-digit digest of the heads the device holds",
                )
            })
        })
        .transpose()?;
    blocking(move || {
        let (roster, device) = state.authenticate(team, &method, &uri, &headers, &[])?;
        if roster.device(&device).map(|d| d.entry.role) == Some(Role::Intake) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_a_reader",
                "an intake device submits cases but cannot download the team's envelopes",
            ));
        }
        let after = query.after.unwrap_or(0);
        let limit = query
            .limit
            .unwrap_or(state.limits.max_page)
            .clamp(1, state.limits.max_page);
        // A byte budget (devices on links that drop ask for less) stops the
        // page early, after at least one envelope; the store reads no body
        // beyond it.
        let budget = query
            .max_bytes
            .unwrap_or(usize::MAX)
            .min(state.limits.max_page_bytes);
        let crate::store::Page {
            envelopes,
            heads,
            more,
        } = state.store.page(team, after, limit, budget)?;
        let next = envelopes.last().map_or(after, |e| e.cursor);
        Ok(binary(
            framing::PAGE,
            framing::page(next, more, &heads, held, &envelopes),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct ReceiptQuery {
    device: String,
    after_seq: Option<u64>,
    limit: Option<usize>,
}

async fn get_receipts(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    Query(query): Query<ReceiptQuery>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    let device: DeviceId = query.device.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_device_id",
            "device must be 32 hex digits",
        )
    })?;
    blocking(move || {
        state.authenticate(team, &method, &uri, &headers, &[])?;
        let limit = query
            .limit
            .unwrap_or(state.limits.max_page)
            .clamp(1, state.limits.max_page);
        let mut receipts = Vec::new();
        let mut seq = query.after_seq.unwrap_or(0) + 1;
        while receipts.len() < limit {
            let Some(stored) = state.store.envelope_at(team, device, seq)? else {
                break;
            };
            let receipt = Receipt {
                team,
                device,
                seq,
                envelope: amana_core::envelope::id_of(&stored.bytes).ok_or_else(|| {
                    ApiError::from(crate::store::StoreError::Corrupt(
                        "a stored envelope is too short".into(),
                    ))
                })?,
                cursor: stored.cursor,
            };
            receipts.push(hex::encode(receipt.sign(&state.key)));
            seq += 1;
        }
        Ok(Json(json!({"receipts": receipts})).into_response())
    })
    .await
}
