//! Device lifecycle endpoints: recipient announcements (a device posts
//! where its next epoch key should be encrypted to, signed by itself;
//! admins fetch every device's newest one when they rotate the epoch), and
//! compaction after a shred (an admin asks the relay to drop the bodies of
//! retired epochs' envelopes). See `docs/relay-api.md`.

use std::sync::Arc;

use amana_core::keys::announce::Announcement;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use amana_core::envelope::{EnvelopeLimits, Kind, Stored};
use serde::Deserialize;

use super::enrolment::{bad, json_body, require_admin};
use super::{ApiError, AppState, binary, blocking, framing, parse_team, require_type};

pub(super) async fn put_recipient(
    State(state): State<Arc<AppState>>,
    Path(team): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let team = parse_team(&team)?;
    require_type(&headers, framing::RECIPIENT)?;
    blocking(move || {
        let (roster, device) = state.authenticate(team, &method, &uri, &headers, &body)?;
        let announcement = Announcement::parse(body.to_vec())
            .map_err(|e| bad("invalid_announcement", &e.to_string()))?;
        if announcement.device != device {
            return Err(bad(
                "invalid_announcement",
                "a device can announce only its own recipient",
            ));
        }
        announcement
            .verify(&roster)
            .map_err(|e| bad("invalid_announcement", &e.to_string()))?;
        if !roster
            .device(&device)
            .is_some_and(|d| d.entry.role.reads_cases())
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_a_reader",
                "only devices that read cases receive epoch keys",
            ));
        }
        state.store.put_announcement(
            team,
            device,
            announcement.generation,
            announcement.as_bytes(),
            state.now(),
        )?;
        tracing::info!(%team, %device, generation = announcement.generation, "recipient announced");
        Ok((
            StatusCode::CREATED,
            Json(json!({"generation": announcement.generation})),
        )
            .into_response())
    })
    .await
}

pub(super) async fn get_recipients(
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
        let all = state.store.announcements(team)?;
        Ok(binary(framing::RECIPIENTS, framing::join(&all)))
    })
    .await
}

#[derive(Deserialize)]
struct CompactBody {
    /// Seq, in the requester's own log, of a part of its snapshot under
    /// the forgetting rotation.
    snapshot_seq: u64,
}

pub(super) async fn compact(
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
        let request: CompactBody = json_body(&headers, &body)?;
        let floor = roster.retired_below();
        if floor <= 1 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "nothing_to_compact",
                "no epoch of this team is retired",
            ));
        }
        let snapshot = state
            .store
            .envelope_at(team, device, request.snapshot_seq)?
            .and_then(|stored| Stored::parse(stored.bytes, &EnvelopeLimits::default()).ok())
            .filter(|s| {
                matches!(s, Stored::Whole(_))
                    && s.header().kind == Kind::Snapshot
                    && s.header().epoch >= floor
            });
        if snapshot.is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "snapshot_missing",
                "the requesting admin has no snapshot under the current epoch at that seq; upload it first",
            ));
        }
        let done = state.store.compact(team, floor, device, state.now())?;
        tracing::info!(%team, %device, below = floor, envelopes = done.envelopes, "compacted");
        Ok(Json(json!({
            "below_epoch": floor,
            "envelopes": done.envelopes,
            "bytes_freed": done.bytes_freed,
        }))
        .into_response())
    })
    .await
}
