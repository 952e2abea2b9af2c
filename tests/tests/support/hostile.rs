//! A relay that lies on purpose: a transport in front of the in-memory
//! relay that rewrites its answers, and the means to forge what a hostile
//! relay (or someone holding a stolen key) could put in them.

use amana_core::envelope::seal::{self, CaseChange, Witness};
use amana_core::envelope::{EnvelopeHeader, Kind};
use amana_core::framing::Page;
use amana_core::keys::DeviceKeys;
use amana_core::store::DeviceStore;
use amana_core::sync::{RelayClient, SyncError, SyncReport, sync};
use amana_core::transport::{Request, Response, Transport, TransportError};
use amana_core::{DeviceId, Digest, TeamId};
use amana_sync_server::memory::MemoryRelay;
use amana_sync_server::store::RelayStore;

use super::{World, case, new_store};

/// The relay, with every response passed through `rewrite`.
pub struct Hostile<'a, F: FnMut(&Request, &mut Response)> {
    pub relay: &'a mut MemoryRelay,
    pub rewrite: F,
}

impl<F: FnMut(&Request, &mut Response)> Transport for Hostile<'_, F> {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        let mut response = self.relay.send(request)?;
        (self.rewrite)(request, &mut response);
        Ok(response)
    }
}

/// One sync of `store` through a relay that rewrites its responses.
pub fn sync_via<F: FnMut(&Request, &mut Response)>(
    w: &mut World,
    store: &mut DeviceStore,
    rewrite: F,
) -> Result<SyncReport, SyncError> {
    let mut env = w.env();
    let team = w.team;
    let hostile = Hostile {
        relay: &mut w.relay,
        rewrite,
    };
    let mut client = RelayClient::new(hostile, team);
    sync(store, &mut client, &mut env, &mut |_| {})
}

/// Whether the request is for a page of envelopes.
pub fn is_page(request: &Request) -> bool {
    request.path.contains("/envelopes?")
}

/// A rewrite that edits every successful page of envelopes. The page's
/// next cursor is then set as the relay sets it (its last envelope's, or
/// where it was asked from when empty), so an edit leaves the page well
/// formed unless it means not to.
pub fn pages(mut edit: impl FnMut(&mut Page)) -> impl FnMut(&Request, &mut Response) {
    move |request, response| {
        if is_page(request) && response.status == 200 {
            let mut page = Page::parse(&response.body, 1000, 1000).unwrap();
            edit(&mut page);
            page.next_cursor = page
                .entries
                .last()
                .map_or_else(|| asked_after(request), |e| e.cursor);
            response.body = Page::encode_with(
                page.next_cursor,
                page.more,
                (!page.heads_as_held).then_some(page.heads.as_slice()),
                page.entries.iter().map(|e| (e.cursor, e.bytes.as_slice())),
            );
        }
    }
}

/// The cursor a page request asks from.
pub fn asked_after(request: &Request) -> u64 {
    request
        .path
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("after="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Serves `bytes` as one more envelope at the end of a page.
pub fn append(page: &mut Page, bytes: Vec<u8>) {
    let cursor = page.next_cursor + 1;
    page.entries
        .push(amana_core::framing::PageEntry { cursor, bytes });
    page.next_cursor = cursor;
}

/// A rewrite that replaces the framed list answered on `route` (`roster`,
/// which a device holding a roster asks only for what follows it, or
/// `keys`).
pub fn framed(
    route: &'static str,
    mut edit: impl FnMut(&mut Vec<Vec<u8>>),
) -> impl FnMut(&Request, &mut Response) {
    move |request, response| {
        let path = request.path.split('?').next().unwrap_or_default();
        if path.ends_with(&format!("/{route}")) && response.status == 200 {
            // An empty body is an empty list (nothing new on the roster).
            let mut items = if response.body.is_empty() {
                Vec::new()
            } else {
                amana_core::framing::split(&response.body, usize::MAX).unwrap()
            };
            edit(&mut items);
            response.body = amana_core::framing::join(&items);
        }
    }
}

/// A rewrite that answers roster requests as a relay holding `ops` would:
/// the operations after the `after` the device asks from, or
/// `roster_behind` when it holds fewer than that.
pub fn roster_as(ops: Vec<Vec<u8>>) -> impl FnMut(&Request, &mut Response) {
    move |request, response| {
        let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
        if !path.ends_with("/roster") || response.status != 200 {
            return;
        }
        let after: usize = query
            .strip_prefix("after=")
            .map_or(0, |n| n.parse().unwrap());
        if after > ops.len() {
            response.status = 409;
            response.content_type = Some("application/json".into());
            response.body = serde_json::to_vec(&serde_json::json!({
                "error": {"code": "roster_behind", "message": "the relay holds fewer operations"},
                "roster_len": ops.len(),
            }))
            .unwrap();
        } else {
            response.body = amana_core::framing::join(&ops[after..]);
        }
    }
}

/// Real Automerge changes of a new case whose note is `note`, written on a
/// throwaway device: content that would show if it were ever applied.
pub fn changes_of(w: &World, note: &str) -> Vec<CaseChange> {
    let dir = tempfile::tempdir().unwrap();
    let mut scratch = new_store(&dir.path().join("scratch"));
    scratch.record_intake(&case(note, w.now())).unwrap();
    scratch
        .outbox(100)
        .unwrap()
        .into_iter()
        .map(|e| e.change)
        .collect()
}

/// The Automerge change of a new case whose note is `note`, written under
/// `author`'s actor id: what that device's own build would write.
pub fn changes_as(w: &World, author: DeviceId, note: &str) -> Vec<CaseChange> {
    let new = case(note, w.now());
    let (_, change) = amana_core::case::CaseDoc::create(&new, author).unwrap();
    vec![CaseChange {
        case: new.case_id,
        change,
    }]
}

/// What to put in a forged envelope's header.
pub struct Forgery {
    pub team: TeamId,
    pub device: DeviceId,
    pub seq: u64,
    pub prev: Digest,
    pub epoch: u32,
    /// The seal context to state (default: the reader's roster).
    pub context: Option<seal::SealContext>,
}

impl Forgery {
    /// The next envelope of `device`'s log after `head` (seq, id), in the
    /// current epoch of `reader`'s roster.
    pub fn next(reader: &DeviceStore, device: DeviceId, head: (u64, Digest)) -> Forgery {
        let roster = reader.roster().unwrap().unwrap();
        Forgery {
            team: roster.team(),
            device,
            seq: head.0 + 1,
            prev: head.1,
            epoch: roster.current_epoch().epoch,
            context: None,
        }
    }

    /// Seals `changes` under this header, encrypted to the epoch's public
    /// recipient taken from `reader`'s roster, signed by `signer`.
    pub fn seal(
        &self,
        reader: &DeviceStore,
        changes: &[CaseChange],
        witnesses: &[Witness],
        signer: &DeviceKeys,
    ) -> Vec<u8> {
        let roster = reader.roster().unwrap().unwrap();
        let recipient = roster.epoch(self.epoch).unwrap().recipient.clone();
        let header = EnvelopeHeader {
            kind: Kind::Changes,
            team: self.team,
            device: self.device,
            seq: self.seq,
            prev: self.prev,
            epoch: self.epoch,
            body_len: 0,
        };
        let contents = seal::Contents {
            context: self
                .context
                .unwrap_or_else(|| seal::SealContext::under(&roster, super::T0)),
            changes,
            witnesses,
            notices: &[],
        };
        seal::seal(header, &contents, &recipient, signer)
            .unwrap()
            .into_bytes()
    }
}

/// The relay's head (seq, id) of a device.
pub fn relay_head(w: &World, device: DeviceId) -> (u64, Digest) {
    w.relay
        .store()
        .heads(w.team)
        .unwrap()
        .into_iter()
        .find(|h| h.device == device)
        .map_or((0, Digest::ZERO), |h| (h.seq, h.id))
}

/// The relay's heads, as a page lists them.
pub fn relay_heads(w: &World) -> Vec<amana_core::framing::PageHead> {
    relay_heads_of(&w.relay, w.team)
}

/// The quarantine codes of a device, in order.
pub fn quarantine_codes(store: &DeviceStore) -> Vec<String> {
    store
        .quarantined_page(0, usize::MAX >> 1)
        .unwrap()
        .into_iter()
        .map(|q| q.code)
        .collect()
}

/// A relay that swaps the keys of every join request for keys of its own
/// (it sees the redemption token, so it can sign a valid join proof for
/// them) and keeps the rest of the request, MAC included: it cannot make
/// a MAC of its own without the invite secret.
pub struct SwapJoinKeys<'a> {
    pub relay: &'a mut MemoryRelay,
    pub team: TeamId,
    /// The signing key the relay puts in (None: keep the device's).
    pub signing: Option<ed25519_dalek::SigningKey>,
    /// The recipient the relay puts in.
    pub recipient: String,
}

impl Transport for SwapJoinKeys<'_> {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        let mut request = request.clone();
        if request.path.ends_with("/join") {
            let mut body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let token: [u8; 16] = hex::decode(body["invite_token"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            body["recipient"] = self.recipient.clone().into();
            if let Some(signing) = &self.signing {
                use ed25519_dalek::Signer as _;
                let vk = signing.verifying_key();
                let message = amana_core::invite::join_message(
                    self.team,
                    amana_core::invite::invite_id(&token),
                    &vk,
                    &self.recipient,
                );
                body["signing_key"] = hex::encode(vk.as_bytes()).into();
                body["proof"] = hex::encode(signing.sign(&message).to_bytes()).into();
            }
            request.body = body.to_string().into_bytes();
        }
        self.relay.send(&request)
    }
}

/// A relay colluding with whoever holds a revoked device's key: it
/// reports that device's head as `claimed`, and stores any roster
/// operation it is given, whatever its bound (an honest relay refuses a
/// revocation whose bound is not the stored head).
pub struct Colluding<'a> {
    pub relay: &'a mut MemoryRelay,
    pub team: TeamId,
    pub device: DeviceId,
    pub claimed: u64,
}

impl Transport for Colluding<'_> {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        let mut response = self.relay.send(request)?;
        if is_page(request) && response.status == 200 {
            let mut page = Page::parse(&response.body, 1000, 1000).unwrap();
            if page.heads_as_held {
                page.heads = relay_heads_of(self.relay, self.team);
                page.heads_as_held = false;
            }
            for head in &mut page.heads {
                if head.device == self.device {
                    head.seq = self.claimed;
                }
            }
            response.body = Page::encode(
                page.next_cursor,
                page.more,
                &page.heads,
                page.entries.iter().map(|e| (e.cursor, e.bytes.as_slice())),
            );
        }
        let path = request.path.split('?').next().unwrap_or_default();
        if path.ends_with("/roster") && !request.body.is_empty() && response.status == 409 {
            let store = self.relay.store();
            let index = store.roster(self.team).unwrap().len() as u64;
            store
                .append_roster_op(
                    self.team,
                    index,
                    &request.body,
                    amana_sync_server::store::RosterEffect::None,
                )
                .unwrap();
            response.status = 201;
            response.body = serde_json::to_vec(&serde_json::json!({ "index": index })).unwrap();
        }
        Ok(response)
    }
}

fn relay_heads_of(relay: &MemoryRelay, team: TeamId) -> Vec<amana_core::framing::PageHead> {
    relay
        .store()
        .heads(team)
        .unwrap()
        .into_iter()
        .map(|h| amana_core::framing::PageHead {
            device: h.device,
            seq: h.seq,
            id: h.id,
        })
        .collect()
}

/// Stores `bytes` in the relay's log as the colluding relay would (no
/// check that its author is still active), and returns its cursor.
pub fn store_directly(w: &World, bytes: &[u8]) -> u64 {
    let header = EnvelopeHeader::decode(bytes.first_chunk().unwrap()).unwrap();
    let new = amana_sync_server::store::NewEnvelope {
        device: header.device,
        seq: header.seq,
        prev: header.prev,
        id: amana_core::envelope::id_of(bytes).unwrap(),
        epoch: header.epoch,
        bytes,
    };
    w.relay
        .store()
        .append_envelope(w.team, &new, w.now(), u64::MAX)
        .unwrap()
        .cursor()
}
