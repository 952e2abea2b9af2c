//! The relay API (`docs/relay-api.md`) as typed calls. Every call on a
//! team is signed with the device key and a fresh nonce; a `clock_skew`
//! refusal is answered once by correcting the offset with the relay's
//! `server_time` (a device offline for weeks may have a wrong clock).

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_json::json;

use super::{Env, SyncError};
use crate::framing::{self, Page, PageHead};
use crate::ids::{DeviceId, Digest, TeamId};
use crate::keys::DeviceKeys;
use crate::keys::announce::Announcement;
use crate::request_auth;
use crate::roster::Role;
use crate::team_token::TeamToken;
use crate::transport::{Method, Request, Response, Transport};

/// Largest clock correction a relay's `clock_skew` answer may cause: a
/// device's clock is rarely off by more, and what the relay can shift
/// bounds how it can bend the times envelopes and roster operations state.
const MAX_CLOCK_OFFSET_SECS: u64 = 6 * 3600;
/// Most heads a page may carry (devices in a team).
const MAX_PAGE_HEADS: usize = 10_000;
/// Most envelopes a page may carry.
const MAX_PAGE_ENTRIES: usize = 10_000;

/// What `GET /v1/relay` says.
#[derive(Clone, Copy, Debug)]
pub struct RelayInfo {
    /// The key that signs receipts.
    pub relay_key: VerifyingKey,
    /// The relay's clock.
    pub server_time: u64,
}

/// One envelope the relay accepted.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// Its seq.
    pub seq: u64,
    /// Where the relay stored it.
    pub cursor: u64,
    /// Whether the relay had it already.
    pub duplicate: bool,
    /// The signed receipt.
    pub receipt: Vec<u8>,
}

/// What an upload did: the envelopes accepted, and the refusal that stopped
/// it, if any (the relay stops at the first refused envelope).
#[derive(Debug)]
pub struct UploadOutcome {
    /// Accepted envelopes, in order.
    pub accepted: Vec<Accepted>,
    /// The refusal, if the batch stopped early.
    pub refused: Option<SyncError>,
}

/// A device waiting for approval, as the relay reports it.
#[derive(Clone, Debug)]
pub struct PendingDevice {
    /// Its id.
    pub device: DeviceId,
    /// Its signing key.
    pub signing_key: VerifyingKey,
    /// Its age recipient.
    pub recipient: String,
    /// The role of the invite it used.
    pub role: Role,
    /// The invite it used.
    pub invite: Digest,
    /// The MAC binding its keys to the invite (checked by the admin that
    /// issued it; the relay cannot compute it).
    pub key_mac: Vec<u8>,
    /// When it asked (unix seconds, relay clock).
    pub requested_at: u64,
}

/// A join request (sent unsigned: the device is not on the roster yet).
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// The redemption token derived from the invite secret.
    pub invite_token: [u8; crate::invite::TOKEN_LEN],
    /// The device's signing key.
    pub signing_key: VerifyingKey,
    /// The device's age recipient.
    pub recipient: String,
    /// Signature proving the device holds the signing key.
    pub proof: [u8; 64],
    /// MAC of the keys under the invite's binding key.
    pub key_mac: [u8; crate::invite::KEY_MAC_LEN],
}

/// The relay API for one team.
#[derive(Debug)]
pub struct RelayClient<T: Transport> {
    transport: T,
    team: TeamId,
    clock_offset: i64,
    /// Bytes sent and received, for reports and benchmarks.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Requests made.
    pub requests: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
    server_time: Option<u64>,
    accepted: Option<Vec<AcceptedJson>>,
    roster_len: Option<usize>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct AcceptedJson {
    seq: u64,
    cursor: u64,
    duplicate: bool,
    receipt: String,
}

impl<T: Transport> RelayClient<T> {
    /// A client for `team` over `transport`.
    pub fn new(transport: T, team: TeamId) -> Self {
        RelayClient {
            transport,
            team,
            clock_offset: 0,
            bytes_sent: 0,
            bytes_received: 0,
            requests: 0,
        }
    }

    /// The time now by the relay's clock, as far as this client knows it
    /// (the device's clock corrected by the offset a `clock_skew` answer
    /// taught it).
    pub fn now(&self, env: &Env) -> u64 {
        env.now().saturating_add_signed(self.clock_offset)
    }

    /// The transport (tests use it to inject faults).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The team.
    pub fn team(&self) -> TeamId {
        self.team
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/teams/{}/{rest}", self.team)
    }

    fn raw(&mut self, request: &Request) -> Result<Response, SyncError> {
        self.requests += 1;
        self.bytes_sent += (request.body.len() + request.path.len()) as u64;
        let response = self.transport.send(request)?;
        self.bytes_received += response.body.len() as u64;
        Ok(response)
    }

    /// Sends a request signed by `keys`, correcting the clock once.
    fn signed(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        method: Method,
        path: String,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    ) -> Result<Response, SyncError> {
        let mut request = Request {
            method,
            path,
            content_type,
            body,
            authorization: None,
        };
        for attempt in 0..2 {
            let ts = env.now().saturating_add_signed(self.clock_offset);
            request.authorization = Some(request_auth::sign(
                keys,
                method.as_str(),
                &request.path,
                &request.body,
                ts,
                env.nonce(),
            ));
            let response = self.raw(&request)?;
            if response.status == 401
                && attempt == 0
                && let Ok(err) = serde_json::from_slice::<ErrorBody>(&response.body)
                && err.error.code == "clock_skew"
                && let Some(server) = err.server_time
            {
                let offset = server as i64 - env.now() as i64;
                // A device's clock may be off by minutes or an hour; a relay
                // claiming more is lying (or this clock is badly wrong) and
                // would skew every time this device states.
                if offset.unsigned_abs() > MAX_CLOCK_OFFSET_SECS {
                    return Err(SyncError::RelayMalformed(format!(
                        "the relay's clock is {offset} seconds from this device's; set the date and time if this device's is wrong"
                    )));
                }
                self.clock_offset = offset;
                continue;
            }
            return Ok(response);
        }
        Err(SyncError::ClockSkew)
    }

    /// `GET /v1/relay`.
    pub fn relay_info(&mut self) -> Result<RelayInfo, SyncError> {
        let response = self.raw(&Request {
            method: Method::Get,
            path: "/v1/relay".into(),
            content_type: None,
            body: Vec::new(),
            authorization: None,
        })?;
        let value = json_ok(&response)?;
        Ok(RelayInfo {
            relay_key: key_field(&value, "relay_key")?,
            server_time: value["server_time"]
                .as_u64()
                .ok_or_else(|| garbage("server_time missing"))?,
        })
    }

    /// `POST /v1/teams` with the genesis operation; returns the relay key.
    pub fn create_team(
        &mut self,
        genesis: &[u8],
        token: Option<&TeamToken>,
    ) -> Result<VerifyingKey, SyncError> {
        let response = self.raw(&Request {
            method: Method::Post,
            path: "/v1/teams".into(),
            content_type: Some(framing::ROSTER_OP),
            body: genesis.to_vec(),
            authorization: token.map(|t| format!("AmanaTeam {}", t.to_text().as_str())),
        })?;
        key_field(&json_ok(&response)?, "relay_key")
    }

    /// `GET …/roster`: every operation.
    pub fn roster(&mut self, env: &mut Env, keys: &DeviceKeys) -> Result<Vec<Vec<u8>>, SyncError> {
        let path = self.path("roster");
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        let body = binary_ok(&response, framing::ROSTER)?;
        framing::split(&body, usize::MAX).map_err(|e| garbage(&e.to_string()))
    }

    /// `GET …/roster?after=N`: the operations after the `held` this device
    /// already verified (a sync with no roster change downloads none). A
    /// relay holding fewer than `held` is a rollback.
    pub fn roster_after(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        held: usize,
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let path = self.path(&format!("roster?after={held}"));
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        if response.status == 409
            && let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body)
            && body.error.code == "roster_behind"
        {
            return Err(SyncError::RosterRollback {
                ours: held,
                relay: body.roster_len.unwrap_or(0),
            });
        }
        let body = binary_ok(&response, framing::ROSTER)?;
        framed_list(&body)
    }

    /// `POST …/roster`: appends one operation.
    pub fn append_roster(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        op: &[u8],
    ) -> Result<(), SyncError> {
        let path = self.path("roster");
        let response = self.signed(
            env,
            keys,
            Method::Post,
            path,
            Some(framing::ROSTER_OP),
            op.to_vec(),
        )?;
        json_ok(&response).map(drop)
    }

    /// `POST …/invites`: registers an invite (by its id, never its secret).
    pub fn create_invite(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        invite: Digest,
        role: Role,
        expires_at: u64,
    ) -> Result<(), SyncError> {
        let body = json!({"invite": invite.to_hex(), "role": role, "expires_at": expires_at});
        let path = self.path("invites");
        let response = self.signed(
            env,
            keys,
            Method::Post,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )?;
        json_ok(&response).map(drop)
    }

    /// `POST …/join`: asks to join with an invite.
    pub fn join(&mut self, request: &JoinRequest) -> Result<(), SyncError> {
        let body = json!({
            "invite_token": hex::encode(request.invite_token),
            "signing_key": hex::encode(request.signing_key.as_bytes()),
            "recipient": request.recipient,
            "proof": hex::encode(request.proof),
            "key_mac": hex::encode(request.key_mac),
        });
        let path = self.path("join");
        let response = self.raw(&Request {
            method: Method::Post,
            path,
            content_type: Some("application/json"),
            body: body.to_string().into_bytes(),
            authorization: None,
        })?;
        json_ok(&response).map(drop)
    }

    /// `GET …/pending`: devices waiting for approval.
    pub fn pending(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
    ) -> Result<Vec<PendingDevice>, SyncError> {
        let path = self.path("pending");
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        let value = json_ok(&response)?;
        let list = value["pending"]
            .as_array()
            .ok_or_else(|| garbage("pending list missing"))?;
        list.iter()
            .map(|item| {
                let text = |name: &str| {
                    item[name]
                        .as_str()
                        .ok_or_else(|| garbage(&format!("{name} missing")))
                };
                Ok(PendingDevice {
                    device: text("device")?.parse().map_err(|_| garbage("device id"))?,
                    signing_key: key_field(item, "signing_key")?,
                    recipient: text("recipient")?.to_owned(),
                    role: serde_json::from_value(item["role"].clone())
                        .map_err(|_| garbage("role"))?,
                    invite: text("invite")?.parse().map_err(|_| garbage("invite id"))?,
                    key_mac: hex::decode(text("key_mac")?).map_err(|_| garbage("key_mac"))?,
                    requested_at: item["requested_at"]
                        .as_u64()
                        .ok_or_else(|| garbage("requested_at"))?,
                })
            })
            .collect()
    }

    /// `POST …/keys`: delivers key envelopes.
    pub fn put_keys(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        envelopes: &[Vec<u8>],
    ) -> Result<(), SyncError> {
        let path = self.path("keys");
        let response = self.signed(
            env,
            keys,
            Method::Post,
            path,
            Some(framing::KEYS),
            framing::join(envelopes),
        )?;
        json_ok(&response).map(drop)
    }

    /// `GET …/keys`: the key envelopes addressed to this device.
    pub fn keys(&mut self, env: &mut Env, keys: &DeviceKeys) -> Result<Vec<Vec<u8>>, SyncError> {
        let path = self.path("keys");
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        framed_list(&binary_ok(&response, framing::KEYS)?)
    }

    /// `POST …/envelopes`: uploads this device's envelopes in seq order.
    pub fn upload(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        envelopes: &[Vec<u8>],
    ) -> Result<UploadOutcome, SyncError> {
        let path = self.path("envelopes");
        let response = self.signed(
            env,
            keys,
            Method::Post,
            path,
            Some(framing::ENVELOPES),
            framing::join(envelopes),
        )?;
        if (200..300).contains(&response.status) {
            let value = json_ok(&response)?;
            let accepted = serde_json::from_value::<Vec<AcceptedJson>>(value["accepted"].clone())
                .map_err(|_| garbage("accepted list"))?;
            return Ok(UploadOutcome {
                accepted: decode_accepted(accepted)?,
                refused: None,
            });
        }
        let accepted = serde_json::from_slice::<ErrorBody>(&response.body)
            .ok()
            .and_then(|b| b.accepted)
            .unwrap_or_default();
        Ok(UploadOutcome {
            accepted: decode_accepted(accepted)?,
            refused: Some(error_from(&response)),
        })
    }

    /// `GET …/envelopes?after=…&limit=…`: one page.
    pub fn page(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        after: u64,
        limit: usize,
    ) -> Result<Page, SyncError> {
        self.get_page(
            env,
            keys,
            format!("envelopes?after={after}&limit={limit}"),
            None,
        )
    }

    /// `GET …/envelopes?after=…&limit=…&max_bytes=…&heads=…`: one page of
    /// at most `max_bytes` of envelopes (but at least one envelope). The
    /// request carries the digest of `held`, the heads this device holds;
    /// when the relay's are the same it does not list them, and the page
    /// returned carries `held` as its heads.
    pub fn page_within(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        after: u64,
        limit: usize,
        max_bytes: usize,
        held: &[PageHead],
    ) -> Result<Page, SyncError> {
        let digest = framing::heads_digest(held).to_hex();
        self.get_page(
            env,
            keys,
            format!("envelopes?after={after}&limit={limit}&max_bytes={max_bytes}&heads={digest}"),
            Some(held),
        )
    }

    /// One page; `held` is what the request sent the digest of, if anything.
    fn get_page(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        query: String,
        held: Option<&[PageHead]>,
    ) -> Result<Page, SyncError> {
        let path = self.path(&query);
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        let body = binary_ok(&response, framing::PAGE)?;
        let mut page = Page::parse(&body, MAX_PAGE_HEADS, MAX_PAGE_ENTRIES)
            .map_err(|e| garbage(&e.to_string()))?;
        if page.heads_as_held {
            let held =
                held.ok_or_else(|| garbage("the page stands for heads this device did not send"))?;
            page.heads = held.to_vec();
        }
        Ok(page)
    }

    /// `POST …/recipients`: announces this device's next receiving key.
    pub fn announce(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        announcement: &Announcement,
    ) -> Result<(), SyncError> {
        let path = self.path("recipients");
        let response = self.signed(
            env,
            keys,
            Method::Post,
            path,
            Some(framing::RECIPIENT),
            announcement.as_bytes().to_vec(),
        )?;
        json_ok(&response).map(drop)
    }

    /// `GET …/recipients`: every device's newest announcement (admins).
    pub fn recipients(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let path = self.path("recipients");
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        framed_list(&binary_ok(&response, framing::RECIPIENTS)?)
    }

    /// `POST …/compact` (admin): asks the relay to drop the bodies of
    /// retired epochs' envelopes, naming a part of this device's snapshot
    /// under the forgetting rotation. Returns how many bodies went.
    pub fn compact(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        snapshot_seq: u64,
    ) -> Result<u64, SyncError> {
        let body = json!({"snapshot_seq": snapshot_seq});
        let path = self.path("compact");
        let response = self.signed(
            env,
            keys,
            Method::Post,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )?;
        json_ok(&response)?["envelopes"]
            .as_u64()
            .ok_or_else(|| garbage("compaction count missing"))
    }

    /// The relay's current head of every device's log (a page after the
    /// last cursor, so no envelope is sent).
    pub fn heads(&mut self, env: &mut Env, keys: &DeviceKeys) -> Result<Vec<PageHead>, SyncError> {
        Ok(self.page(env, keys, i64::MAX as u64, 1)?.heads)
    }

    /// `GET …/receipts`: receipts for a device's envelopes after `after_seq`.
    pub fn receipts(
        &mut self,
        env: &mut Env,
        keys: &DeviceKeys,
        device: DeviceId,
        after_seq: u64,
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let path = self.path(&format!("receipts?device={device}&after_seq={after_seq}"));
        let response = self.signed(env, keys, Method::Get, path, None, Vec::new())?;
        let value = json_ok(&response)?;
        value["receipts"]
            .as_array()
            .ok_or_else(|| garbage("receipts missing"))?
            .iter()
            .map(|r| {
                r.as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .ok_or_else(|| garbage("receipt"))
            })
            .collect()
    }
}

fn decode_accepted(list: Vec<AcceptedJson>) -> Result<Vec<Accepted>, SyncError> {
    list.into_iter()
        .map(|a| {
            Ok(Accepted {
                seq: a.seq,
                cursor: a.cursor,
                duplicate: a.duplicate,
                receipt: hex::decode(&a.receipt).map_err(|_| garbage("receipt"))?,
            })
        })
        .collect()
}

fn garbage(what: &str) -> SyncError {
    SyncError::RelayMalformed(what.to_owned())
}

fn key_field(value: &serde_json::Value, name: &str) -> Result<VerifyingKey, SyncError> {
    let bytes: [u8; 32] = value[name]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| garbage(&format!("{name} missing or malformed")))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| garbage(&format!("{name} is not a valid key")))
}

/// The JSON body of a successful response, or the error it carries.
fn json_ok(response: &Response) -> Result<serde_json::Value, SyncError> {
    if !(200..300).contains(&response.status) {
        return Err(error_from(response));
    }
    serde_json::from_slice(&response.body).map_err(|_| garbage("expected a JSON body"))
}

/// The binary body of a successful response of the expected media type.
fn binary_ok(response: &Response, media_type: &str) -> Result<Vec<u8>, SyncError> {
    if !(200..300).contains(&response.status) {
        return Err(error_from(response));
    }
    if response.content_type.as_deref() != Some(media_type) {
        return Err(garbage(&format!("expected {media_type}")));
    }
    Ok(response.body.clone())
}

/// A framed list (key envelopes, announcements, new roster operations);
/// an empty body is an empty list.
fn framed_list(body: &[u8]) -> Result<Vec<Vec<u8>>, SyncError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    framing::split(body, MAX_PAGE_HEADS).map_err(|e| garbage(&e.to_string()))
}

/// The specific error for a relay refusal.
fn error_from(response: &Response) -> SyncError {
    let status = response.status;
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        if status >= 500 || status == 408 || status == 429 {
            return SyncError::RelayUnavailable {
                status,
                message: "no details".into(),
            };
        }
        return garbage(&format!("HTTP {status} without an error body"));
    };
    let ErrorDetail { code, message } = body.error;
    match code.as_str() {
        "revoked_device" => SyncError::Revoked,
        "clock_skew" => SyncError::ClockSkew,
        "invite_unknown" => SyncError::InviteUnknown,
        "invite_used" => SyncError::InviteUsed,
        "invite_expired" => SyncError::InviteExpired,
        _ if status >= 500 || status == 408 || status == 429 => {
            SyncError::RelayUnavailable { status, message }
        }
        _ => SyncError::Refused {
            status,
            code,
            message,
        },
    }
}
