//! Enrolment endpoints: invites (admin), join requests (unsigned: the
//! device is not on the roster yet, but proves it holds its key), the
//! pending list (admin) and key envelopes (delivered by an admin, fetched
//! by their recipient). See `docs/relay-api.md`.

use std::sync::Arc;

use amana_core::invite::{TOKEN_LEN, invite_id, verify_join_proof};
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::roster::{Role, Roster};
use amana_core::{DeviceId, Digest, TeamId};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, binary, blocking, framing, parse_team, require_type};
use crate::store::JoinRecord;

pub(super) fn bad(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message.to_owned())
}

pub(super) fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    require_type(headers, "application/json")?;
    serde_json::from_slice(body)
        .map_err(|e| bad("bad_json", &format!("the JSON body is not valid: {e}")))
}

pub(super) fn require_admin(roster: &Roster, device: &DeviceId) -> Result<(), ApiError> {
    if roster.device(device).map(|d| d.entry.role) == Some(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_an_admin",
            "only an admin device can manage enrolment",
        ))
    }
}

fn hex_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("bad_field", &format!("{what} must be {} hex digits", N * 2)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InviteBody {
    invite: String,
    role: Role,
    expires_at: u64,
}

pub(super) async fn create_invite(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    blocking(move || {
        let (roster, device) = state.authenticate(team, &method, &uri, &headers, &body)?;
        require_admin(&roster, &device)?;
        let request: InviteBody = json_body(&headers, &body)?;
        let invite = Digest::from_bytes(hex_array(&request.invite, "invite")?);
        let now = state.now();
        if request.expires_at <= now || request.expires_at - now > state.limits.max_invite_ttl_secs
        {
            return Err(bad(
                "bad_expiry",
                &format!(
                    "an invite must expire within {} seconds from now",
                    state.limits.max_invite_ttl_secs
                ),
            ));
        }
        state.store.create_invite(
            team,
            invite,
            request.role.code(),
            request.expires_at,
            now,
            state.limits.max_open_invites,
        )?;
        tracing::info!(%team, %device, "invite registered");
        Ok((StatusCode::CREATED, Json(json!({"created": true}))).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinBody {
    invite_token: String,
    signing_key: String,
    recipient: String,
    proof: String,
    key_mac: String,
}

pub(super) async fn join(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let team: TeamId = parse_team(&team)?;
    blocking(move || {
        let request: JoinBody = json_body(&headers, &body)?;
        let token: [u8; TOKEN_LEN] = hex_array(&request.invite_token, "invite_token")?;
        // The relay cannot check the MAC (it never holds the invite
        // secret); it keeps it for the admin who can.
        let key_mac: [u8; 32] = hex_array(&request.key_mac, "key_mac")?;
        let key_bytes: [u8; 32] = hex_array(&request.signing_key, "signing_key")?;
        let proof: [u8; 64] = hex_array(&request.proof, "proof")?;
        let signing_key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| bad("bad_field", "signing_key is not an Ed25519 public key"))?;
        let recipient = request.recipient;
        let recipient_ok = recipient.len() <= 100
            && recipient.starts_with("age1")
            && recipient
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !recipient_ok {
            return Err(bad("bad_field", "recipient is not an age X25519 recipient"));
        }
        let invite = invite_id(&token);
        if !verify_join_proof(team, invite, &signing_key, &recipient, &proof) {
            return Err(bad(
                "bad_join_proof",
                "the join request is not signed by the key it carries",
            ));
        }
        let device = DeviceId::for_key(&signing_key);
        let roster = state.roster(team)?;
        if roster.device(&device).is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_member",
                "this device is already on the team's roster",
            ));
        }
        let record = JoinRecord {
            device,
            signing_key: key_bytes,
            recipient,
            invite,
            role: 0,
            key_mac,
            requested_at: state.now(),
        };
        state.store.redeem_invite(team, &record, state.now())?;
        tracing::info!(%team, %device, "join request recorded");
        Ok((
            StatusCode::CREATED,
            Json(json!({"device": device.to_hex()})),
        )
            .into_response())
    })
    .await
}

pub(super) async fn pending(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    blocking(move || {
        let (roster, device) = state.authenticate(team, &method, &uri, &headers, &[])?;
        require_admin(&roster, &device)?;
        let list: Vec<_> = state
            .store
            .join_requests(team)?
            .into_iter()
            .filter(|r| roster.device(&r.device).is_none())
            .filter_map(|r| {
                let role = Role::from_code(r.role)?;
                Some(json!({
                    "device": r.device.to_hex(),
                    "signing_key": hex::encode(r.signing_key),
                    "recipient": r.recipient,
                    "role": role,
                    "invite": r.invite.to_hex(),
                    "key_mac": hex::encode(r.key_mac),
                    "requested_at": r.requested_at,
                }))
            })
            .collect();
        Ok(Json(json!({"pending": list})).into_response())
    })
    .await
}

pub(super) async fn put_keys(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    require_type(&headers, framing::KEYS)?;
    blocking(move || {
        let (roster, device) = state.authenticate(team, &method, &uri, &headers, &body)?;
        require_admin(&roster, &device)?;
        let items = framing::split(&body, 1000).map_err(|e| bad("bad_batch", &e.to_string()))?;
        let mut deliveries = Vec::with_capacity(items.len());
        for item in items {
            let delivery = KeyEnvelope::parse(item)
                .map_err(|e| bad("invalid_key_envelope", &e.to_string()))?;
            delivery
                .verify(&roster)
                .map_err(|e| bad("invalid_key_envelope", &e.to_string()))?;
            let to = roster
                .device(&delivery.recipient)
                .filter(|d| d.is_active() && d.entry.role.reads_cases())
                .ok_or_else(|| {
                    bad(
                        "invalid_key_envelope",
                        "a key envelope is addressed to a device that is not an active reader",
                    )
                })?;
            deliveries.push((to.entry.id(), delivery.epoch, delivery.as_bytes().to_vec()));
        }
        state
            .store
            .put_key_envelopes(team, &deliveries, state.now())?;
        tracing::info!(%team, %device, count = deliveries.len(), "key envelopes stored");
        Ok((
            StatusCode::CREATED,
            Json(json!({"stored": deliveries.len()})),
        )
            .into_response())
    })
    .await
}

pub(super) async fn get_keys(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    blocking(move || {
        let (_, device) = state.authenticate(team, &method, &uri, &headers, &[])?;
        let envelopes = state.store.key_envelopes(team, device)?;
        Ok(binary(framing::KEYS, framing::join(&envelopes)))
    })
    .await
}
