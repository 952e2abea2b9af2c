//! Pulling: every page after the cursor, each verified before anything of
//! it is applied, and committed in one transaction with its heads, cursor,
//! quarantine, alarms and bookkeeping.
//!
//! **Recovery after tampering.** A page that omits or alters an envelope
//! of a device breaks that device's chain here: the envelope is
//! quarantined, and so is every later one of that device, until the chain
//! can continue. The cursor still moves on (other devices' envelopes in the
//! page are fine), so the pull remembers where to *rewind* to: the cursor
//! of the last envelope applied from the device whose chain broke. The next
//! pull starts again from there; envelopes already applied come back and
//! are passed over (the same id at a seq already applied), and the missing
//! ones fill the chain if the relay now serves them. A relay that keeps
//! tampering breaks the chain again and raises the alarm again; one that
//! stopped heals the device by itself. Alarms and quarantine entries stay
//! as the record until an admin acknowledges them.

use std::collections::{BTreeMap, BTreeSet};

use super::client::RelayClient;
use super::engine::{Progress, SyncReport, interrupted};
use super::permissions::PageDocs;
use super::tail::{self, Views};
use super::verify::{
    Refusal, RosterView, check_context, check_envelope, check_heads, check_page_order,
    check_withheld, sealed_after_unknown_change,
};
use super::witness::{self, Witnesses};
use super::{Env, Rejection, SyncError, alarms};
use crate::envelope::seal::{self, Notice};
use crate::envelope::snapshot::Snapshot;
use crate::framing::PageHead;
use crate::ids::DeviceId;
use crate::roster::{Role, Roster};
use crate::store::quarantine::Vouched;
use crate::store::{Alarm, AlarmId, DeviceStore, PeerHead, PulledPage, StoreError};
use crate::transport::Transport;

/// Envelopes per pulled page.
const PAGE_LIMIT: usize = 200;
/// Envelope bytes per pulled page (the relay sends at least one envelope);
/// halved for the rest of the sync each time a page is cut off.
const PAGE_TARGET_BYTES: usize = 64 * 1024;
/// Meta entry: where the next pull starts again (absent: at the cursor).
const REWIND: &str = "rewind_cursor";
/// Meta entry: per device, the cursor of the last envelope applied from it.
const APPLIED_AT: &str = "applied_cursors";
/// Meta entry: per device, the highest seq the relay served and this device
/// refused for its author's sake (not withheld: `verify::check_withheld`).
const REFUSED: &str = "refused_seqs";
/// Meta entry: the chain breaks a rewind was already tried for, and when.
const REWOUND: &str = "rewound_breaks";
/// How long before the same chain break is fetched again from the start:
/// a relay that keeps the break cannot make every sync re-download the
/// team's log, and one that stops is caught up with within this time.
const REWIND_BACKOFF_SECS: u64 = 6 * 3600;

/// Where the next pull starts again, and the breaks already tried.
struct Rewinds {
    /// Where this pull started again, if it did: kept until it completes
    /// (a pull cut short must not forget a lower point).
    pending: Option<u64>,
    from: Option<u64>,
    tried: Vec<(DeviceId, u64, u64)>,
    now: u64,
}

impl Rewinds {
    fn load(store: &DeviceStore, now: u64) -> Result<Self, StoreError> {
        let tried = store.meta_records(REWOUND, 32, "rewind records", |r| {
            (r.device(0), r.u64(16), r.u64(24))
        })?;
        Ok(Rewinds {
            pending: read_u64(store, REWIND)?,
            from: None,
            tried,
            now,
        })
    }

    /// The chain of `device` broke at `seq`: start the next pull again at
    /// `cursor`, unless this break was fetched again recently already.
    fn want(&mut self, device: DeviceId, seq: u64, cursor: u64) {
        if self.recently_tried(device, seq) {
            return;
        }
        self.tried.retain(|(d, s, _)| !(*d == device && *s == seq));
        self.tried.push((device, seq, self.now));
        self.from = Some(self.from.map_or(cursor, |f| f.min(cursor)));
    }

    /// Where the next pull starts again if this one stops here.
    fn point(&self) -> Option<u64> {
        match (self.pending, self.from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the break of `device` at `seq` was fetched again within the
    /// back-off.
    fn recently_tried(&self, device: DeviceId, seq: u64) -> bool {
        self.tried
            .iter()
            .any(|(d, s, at)| *d == device && *s == seq && at + REWIND_BACKOFF_SECS > self.now)
    }

    /// Whether the break of `device` at `seq` was already fetched again
    /// (by an earlier pull).
    fn tried_before(&self, device: DeviceId, seq: u64) -> bool {
        self.tried
            .iter()
            .any(|(d, s, at)| *d == device && *s == seq && *at < self.now)
    }

    /// What to store with a page.
    fn metas(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = vec![(REWOUND, self.encode_tried())];
        if let Some(point) = self.point() {
            out.push((REWIND, point.to_be_bytes().to_vec()));
        }
        out
    }

    fn encode_tried(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.tried.len() * 32);
        for (device, seq, at) in &self.tried {
            bytes.extend_from_slice(device.as_bytes());
            bytes.extend_from_slice(&seq.to_be_bytes());
            bytes.extend_from_slice(&at.to_be_bytes());
        }
        bytes
    }

    /// Stores what the next pull needs; `complete` if this pull reached its
    /// end without a break.
    fn save(
        mut self,
        store: &mut DeviceStore,
        heads: &BTreeMap<DeviceId, PeerHead>,
        complete: bool,
    ) -> Result<(), StoreError> {
        // A break the chain has since passed is healed.
        self.tried
            .retain(|(d, s, _)| heads.get(d).is_none_or(|h| h.seq < *s));
        store.put_meta(REWOUND, &self.encode_tried())?;
        match (self.from, complete) {
            (Some(from), _) => store.put_meta(REWIND, &from.to_be_bytes()),
            (None, true) => store.remove_meta(REWIND),
            (None, false) => match self.pending {
                Some(pending) => store.put_meta(REWIND, &pending.to_be_bytes()),
                None => Ok(()),
            },
        }
    }
}

/// Pulls every page after the cursor (or from the rewind point), verifying
/// before applying.
pub(super) fn pull<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    roster: &mut Roster,
    progress: &mut dyn FnMut(Progress),
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let me = store.keys().device_id();
    let mut keyring = store.epoch_keys()?;
    let mut retired_below = roster.retired_below();
    let mut roster_fetches = 0;
    // The entry the roster was last fetched again for: a second stop at
    // the same entry is judged with what the fetch brought.
    let mut refetched_for: Option<u64> = None;
    let mut shredded = store.shredded_cases()?;
    let high = store.cursor()?;
    let mut applied_at = read_cursors(store, APPLIED_AT)?;
    // Envelopes held back by an earlier pull are fetched again once their
    // back-off is over.
    let mut rewind_from = read_u64(store, REWIND)?;
    for (device, from) in read_cursors(store, DEFERRED)? {
        if !Rewinds::load(store, env.now())?.recently_tried(device, from) {
            let at = applied_at.get(&device).copied().unwrap_or(0);
            rewind_from = Some(rewind_from.map_or(at, |r| r.min(at)));
        }
    }
    let mut cursor = rewind_from.map_or(high, |r| r.min(high));
    let rewinding = rewind_from.is_some();
    let mut stored_cursor = high;
    let mut stored_applied_at = applied_at.clone();
    // Every head applied so far: a device the relay stops listing is a
    // rollback too.
    let mut heads: BTreeMap<DeviceId, PeerHead> = store
        .peer_heads()?
        .into_iter()
        .map(|h| (h.device, h))
        .collect();
    let mut rewinds = Rewinds::load(store, env.now())?;
    rewinds.pending = rewind_from;
    let mut refused = read_cursors(store, REFUSED)?;
    let mut complete = false;
    let mut shred_applied = false;
    let mut witnesses = Witnesses::load(store)?;
    let mut views = Views::load(store)?;
    let began = client.now(env);
    let mut first_alarm: Option<SyncError> = None;
    // Devices whose envelopes this pull leaves for a later one (see
    // `defer`): passed over for the rest of it.
    // Kept across pulls (so a later one does not take what it passes over
    // for tampering), and tried again by a pull that starts over.
    let mut deferred: BTreeMap<DeviceId, u64> = if rewinding {
        BTreeMap::new()
    } else {
        read_cursors(store, DEFERRED)?
    };
    let mut doubts = read_doubts(store)?;
    let mut pages = 0;
    let mut junk_kept = 0;
    // Pages in a row whose every envelope no roster device signed, or was
    // a replay, gap or dropped body (genuine envelopes re-served).
    let mut junk_pages = 0;
    let (mut page_bytes, mut retries) = (PAGE_TARGET_BYTES, 0);
    let result = loop {
        pages += 1;
        if pages > MAX_PAGES {
            // Never counted as a complete pull: what follows is unchecked.
            break Err(SyncError::RelayMalformed(format!(
                "more than {MAX_PAGES} pages in one pull"
            )));
        }
        progress(Progress::Pulling {
            done: report.pulled,
        });
        let held: Vec<PageHead> = heads.values().copied().map(PageHead::from).collect();
        let page =
            match client.page_within(env, store.keys(), cursor, PAGE_LIMIT, page_bytes, &held) {
                Err(e) if interrupted(&e) && retries < RETRIES => {
                    retries += 1;
                    page_bytes = (page_bytes / 2).max(1);
                    continue;
                }
                other => other?,
            };
        retries = 0;
        check_page_order(&page, cursor, PAGE_LIMIT, page_bytes)?;
        check_heads(&page, &heads)?;
        let mut page_junk = 0;
        let mut pulled = PulledPage {
            at: env.now(),
            ..PulledPage::default()
        };
        let mut position = cursor;
        let mut docs = PageDocs::new(me);
        let mut staged: Vec<Staged> = Vec::new();
        // The cursor of each envelope in `pulled.chained`.
        let mut chained_at: Vec<u64> = Vec::new();
        let page_start_heads = heads.clone();
        let mut changed: BTreeMap<DeviceId, PeerHead> = BTreeMap::new();
        let mut stopped = None;
        for entry in &page.entries {
            // Inside a rewound range, what this device applied already
            // comes back: passed over, without a check to spend.
            if entry.cursor <= high && already_applied(store, &entry.bytes, &heads)?
                || header_of(&entry.bytes)
                    .is_some_and(|h| deferred.get(&h.device).is_some_and(|from| h.seq >= *from))
            {
                position = entry.cursor;
                continue;
            }
            match check_envelope(&entry.bytes, roster, &keyring, &heads) {
                Ok(opened) => {
                    if opened.header.device != me {
                        let view = check_context(roster, opened.header.epoch, &opened.context);
                        if view == RosterView::Ahead {
                            let (author, seq) = (opened.header.device, opened.header.seq);
                            let claimed = opened.context.roster_len;
                            if refetched_for != Some(entry.cursor)
                                && roster_fetches < ROSTER_FETCHES
                            {
                                // Its author saw more of the roster: fetch
                                // it before this envelope is judged.
                                stopped = Some(Stop::RosterAhead { at: entry.cursor });
                                break;
                            }
                            // Still behind after fetching it again: the
                            // relay hides it (or the author lies). Only
                            // this device's envelopes wait; this device
                            // seals nothing until it has that roster.
                            roster_withheld(
                                &mut Deferral {
                                    deferred: &mut deferred,
                                    rewinds: &mut rewinds,
                                    applied_at: &applied_at,
                                    heads: &heads,
                                },
                                Withheld {
                                    pulled: &mut pulled,
                                    doubts: &mut doubts,
                                    first_alarm: &mut first_alarm,
                                },
                                &entry.bytes,
                                (author, seq, opened.header.epoch),
                                (claimed, roster.ops().len() as u64),
                            );
                            position = entry.cursor;
                            continue;
                        }
                        let alarm = roster_alarm(view, &opened)
                            .or_else(|| {
                                stale_roster(store, &opened, &pulled.stated_rosters).transpose()
                            })
                            .or_else(|| {
                                sealed_after_unknown_change(roster, &opened.context).map(
                                    |(index, late)| {
                                        Ok(SyncError::SealedAfterRosterChange {
                                            device: opened.header.device,
                                            seq: opened.header.seq,
                                            index,
                                            hours: late / 3600,
                                        })
                                    },
                                )
                            });
                        if let Some(alarm) = alarm.transpose()? {
                            pulled.quarantined.push((
                                entry.bytes.clone(),
                                format!("{}: {alarm}", alarm.alarm_code().unwrap_or("alarm")),
                                Vouched::Author,
                            ));
                            pulled.alarms.extend(alarms::of_error(&alarm));
                            first_alarm.get_or_insert(alarm);
                        }
                        pulled.stated_rosters.insert(
                            (opened.header.device, opened.header.seq),
                            opened.context.roster_len,
                        );
                    }
                    let head = PeerHead {
                        device: opened.header.device,
                        seq: opened.header.seq,
                        id: opened.id,
                    };
                    heads.insert(head.device, head);
                    changed.insert(head.device, head);
                    applied_at.insert(head.device, entry.cursor);
                    pulled.chained.push(head);
                    chained_at.push(entry.cursor);
                    report.pulled += 1;
                    if head.device != me {
                        let forks = witnesses.check(
                            store,
                            head.device,
                            &opened.witnesses,
                            &heads,
                            &pulled.chained,
                        )?;
                        if let Some(first) = forks.first() {
                            pulled.quarantined.push((
                                entry.bytes.clone(),
                                format!("fork_witnessed: {first}"),
                                Vouched::Author,
                            ));
                        }
                        for fork in forks {
                            pulled.alarms.extend(alarms::of_error(&fork));
                            first_alarm.get_or_insert(fork);
                        }
                    }
                    if head.device != me {
                        take_notices(roster, me, &opened, &mut pulled);
                        views.note_envelope(
                            me,
                            head.device,
                            &opened.context,
                            &opened.witnesses,
                            env.now(),
                        );
                    }
                    let refusal = if head.device == me {
                        // What this device wrote is applied here already;
                        // its own snapshot's tombstones are recorded.
                        if let Some(part) = opened.snapshot {
                            pulled.tombstones.extend(part.tombstones.iter().copied());
                            pulled.snapshot_parts.push(Snapshot {
                                cases: Vec::new(),
                                ..part
                            });
                        }
                        None
                    } else if let Some(part) = opened.snapshot {
                        take_snapshot(
                            part,
                            head,
                            &entry.bytes,
                            &mut docs,
                            &mut staged,
                            &mut shredded,
                            &mut pulled,
                            report,
                        )
                    } else {
                        let mut kept = Vec::with_capacity(opened.changes.len());
                        for change in opened.changes {
                            if shredded.contains(&change.case) {
                                report.discarded_shredded += 1;
                                if opened.header.epoch >= retired_below
                                    && !report.late_writers_to_shredded.contains(&head.device)
                                {
                                    report.late_writers_to_shredded.push(head.device);
                                }
                            } else {
                                kept.push(change);
                            }
                        }
                        let role = roster
                            .device(&head.device)
                            .map_or(Role::Auditor, |d| d.entry.role);
                        let count = kept.len();
                        let n = docs.stage(head.device, role, head.seq, kept);
                        staged.push((n, entry.bytes.clone(), count, head.device, head.seq, None));
                        None
                    };
                    if let Some(rejection) = refusal {
                        // Authentic, so chained; not applied; kept as
                        // evidence, with its alarm.
                        pulled.quarantined.push((
                            entry.bytes.clone(),
                            rejection.record(),
                            Vouched::Author,
                        ));
                        pulled.alarms.push(alarms::of_rejection(&rejection));
                        report.quarantined.push(rejection);
                    }
                }
                Err(Refusal::Retired(head)) => {
                    heads.insert(head.device, head);
                    changed.insert(head.device, head);
                    applied_at.insert(head.device, entry.cursor);
                    pulled.chained.push(head);
                    chained_at.push(entry.cursor);
                    report.skipped_retired += 1;
                }
                Err(Refusal::MissingKey(epoch)) => {
                    stopped = Some(Stop::MissingKey(epoch));
                    break;
                }
                Err(Refusal::RosterAhead)
                    if refetched_for != Some(entry.cursor) && roster_fetches < ROSTER_FETCHES =>
                {
                    stopped = Some(Stop::RosterAhead { at: entry.cursor });
                    break;
                }
                Err(Refusal::UnknownAuthor(_))
                    if refetched_for != Some(entry.cursor) && roster_fetches < ROSTER_FETCHES =>
                {
                    stopped = Some(Stop::UnknownAuthor { at: entry.cursor });
                    break;
                }
                Err(Refusal::RosterAhead) => {
                    // Fetched again for this very envelope, and still
                    // behind: the relay hides the roster it was sealed
                    // under. Its author's envelopes wait for a later pull.
                    let header = header_of(&entry.bytes);
                    let ours = roster.ops().len() as u64;
                    roster_withheld(
                        &mut Deferral {
                            deferred: &mut deferred,
                            rewinds: &mut rewinds,
                            applied_at: &applied_at,
                            heads: &heads,
                        },
                        Withheld {
                            pulled: &mut pulled,
                            doubts: &mut doubts,
                            first_alarm: &mut first_alarm,
                        },
                        &entry.bytes,
                        header.map_or((me, 0, 0), |h| (h.device, h.seq, h.epoch)),
                        (ours + 1, ours),
                    );
                }
                Err(Refusal::Quarantine(rejection) | Refusal::UnknownAuthor(rejection)) => {
                    if refused_for_its_author(&rejection)
                        && let Some(header) = header_of(&entry.bytes)
                    {
                        let max = refused.entry(header.device).or_insert(0);
                        *max = (*max).max(header.seq);
                    }
                    if let Some(device) = chain_broken_by_relay(&rejection, roster) {
                        let from = applied_at.get(&device).copied().unwrap_or(0);
                        let seq = heads.get(&device).map_or(1, |h| h.seq + 1);
                        rewinds.want(device, seq, from);
                    }
                    // Unsigned junk costs the relay nothing to make: its
                    // evidence is kept for a few per pull only, so it
                    // cannot crowd out what a signature vouches for.
                    let unsigned = matches!(
                        rejection,
                        Rejection::Malformed(_)
                            | Rejection::WrongTeam { .. }
                            | Rejection::Signature { .. }
                            | Rejection::Author(crate::error::AuthorError::UnknownDevice(_))
                    );
                    // Signed, but refused for what the relay did with it:
                    // re-serving genuine envelopes makes as many as it
                    // likes.
                    let relay_made = matches!(
                        rejection,
                        Rejection::Replay { .. }
                            | Rejection::Gap { .. }
                            | Rejection::BrokenChain { .. }
                            | Rejection::BodyDropped { .. }
                    );
                    page_junk += usize::from(unsigned || relay_made);
                    if !unsigned {
                        let vouched = if relay_made {
                            Vouched::RelayMade
                        } else {
                            Vouched::Author
                        };
                        pulled
                            .quarantined
                            .push((entry.bytes.clone(), rejection.record(), vouched));
                    } else if junk_kept < JUNK_EVIDENCE_PER_PULL {
                        junk_kept += 1;
                        pulled.quarantined.push((
                            entry.bytes.clone(),
                            rejection.record(),
                            Vouched::Nobody,
                        ));
                    }
                    pulled
                        .alarms
                        .push(alarms::of_rejection_on(&rejection, Some(roster)));
                    report.quarantined.push(rejection);
                }
            }
            position = entry.cursor;
        }
        if stopped.is_none() {
            position = page.next_cursor.max(position);
        }
        stored_cursor = stored_cursor.max(position);
        pulled.cursor = stored_cursor;
        let (refused_here, deferred_from, checked) =
            docs.resolve(store, &shredded, &|d, seq| rewinds.tried_before(d, seq))?;
        pulled.checked = checked;
        // Changes that build on what this device does not hold yet: their
        // author's chain stops before them, to be fetched again (the relay
        // may have served them before what they build on).
        for (device, from_seq) in &deferred_from {
            let kept: Vec<usize> = (0..pulled.chained.len())
                .filter(|&i| {
                    !(pulled.chained[i].device == *device && pulled.chained[i].seq >= *from_seq)
                })
                .collect();
            pulled.chained = kept.iter().map(|&i| pulled.chained[i]).collect();
            chained_at = kept.iter().map(|&i| chained_at[i]).collect();
            pulled
                .stated_rosters
                .retain(|(d, s), _| !(d == device && s >= from_seq));
            let back = pulled
                .chained
                .iter()
                .zip(&chained_at)
                .rev()
                .find(|(h, _)| h.device == *device)
                .map(|(h, at)| (*h, *at));
            match back {
                Some((head, at)) => {
                    heads.insert(*device, head);
                    changed.insert(*device, head);
                    applied_at.insert(*device, at);
                }
                None => {
                    changed.remove(device);
                    match page_start_heads.get(device) {
                        Some(head) => heads.insert(*device, *head),
                        None => heads.remove(device),
                    };
                    match stored_applied_at.get(device) {
                        Some(at) => applied_at.insert(*device, *at),
                        None => applied_at.remove(device),
                    };
                }
            }
            defer_author(
                &mut Deferral {
                    deferred: &mut deferred,
                    rewinds: &mut rewinds,
                    applied_at: &applied_at,
                    heads: &heads,
                },
                *device,
            );
            pulled.alarms.push(crate::store::NewAlarm {
                code: "missing_dependencies".into(),
                device: Some(*device),
                seq: Some(*from_seq),
                message: format!(
                    "device {device} seq {from_seq}: changes that build on changes this device does not hold yet; fetched again later"
                ),
            });
        }
        pulled.heads = changed.into_values().collect();
        for (n, bytes, count, device, seq, snapshot_part) in staged {
            if deferred_from.get(&device).is_some_and(|from| seq >= *from) {
                continue;
            }
            match refused_here.get(&n) {
                // Authentic, so chained; not applied; kept as evidence,
                // with its alarm. A snapshot part whose documents did not
                // merge does not count as applied (the shred it carries
                // does not finish on this device).
                Some(rejection) => {
                    if let Some(part) = snapshot_part {
                        pulled.snapshot_parts.retain(|p| (p.id, p.part) != part);
                    }
                    pulled
                        .quarantined
                        .push((bytes, rejection.record(), Vouched::Author));
                    pulled.alarms.push(alarms::of_rejection(rejection));
                    report.quarantined.push(rejection.clone());
                }
                None => report.applied_changes += count,
            }
        }
        views.note_relay(&page.heads, roster);
        stored_applied_at = applied_at.clone();
        pulled.meta = vec![
            (witness::CLAIMS, witnesses.encode()),
            (tail::VIEWS, views.encode()),
            (APPLIED_AT, encode_cursors(&applied_at)),
            (REFUSED, encode_cursors(&refused)),
            (DOUBTS, encode_doubts(&doubts)),
            (DEFERRED, encode_cursors(&deferred)),
        ];
        pulled.meta.extend(rewinds.metas());
        shred_applied |= !pulled.tombstones.is_empty();
        store.commit_pull(pulled)?;
        cursor = position;
        junk_pages = if !page.entries.is_empty() && page_junk == page.entries.len() {
            junk_pages + 1
        } else {
            0
        };
        if junk_pages >= JUNK_PAGES {
            // Nothing but junk, page after page: a relay wasting this
            // device's time, battery and data. The cursor has moved past
            // it; the next sync goes on from there.
            break Err(SyncError::RelayMalformed(format!(
                "{junk_pages} pages in a row held nothing new a device of the team signed"
            )));
        }
        match stopped {
            Some(Stop::MissingKey(epoch)) => break Err(SyncError::MissingEpochKey(epoch)),
            Some(Stop::RosterAhead { at }) => {
                // Asked for again from this envelope, which is judged with
                // what the fetch brought (deferred if still ahead).
                roster_fetches += 1;
                refetched_for = Some(at);
                *roster = super::engine::refresh_roster(store, client, env)?;
                retired_below = roster.retired_below();
                if super::keys::missing_any(store, roster)? {
                    report.epoch_keys_received += super::keys::collect(store, client, env, roster)?;
                }
                keyring = store.epoch_keys()?;
                continue;
            }
            Some(Stop::UnknownAuthor { at }) => {
                // Once: a device added after this sync fetched the roster.
                // Its envelope is judged against the new roster (refused
                // as unknown if it is still not on it).
                refetched_for = Some(at);
                roster_fetches += 1;
                *roster = super::engine::refresh_roster(store, client, env)?;
                retired_below = roster.retired_below();
                continue;
            }
            None => {}
        }
        if !page.more {
            let waiting: BTreeSet<DeviceId> = deferred.keys().copied().collect();
            if let Err(e) = check_withheld(&page, &heads, &refused, roster, &waiting) {
                // What was withheld may sit behind the cursor: fetch again
                // from the last envelope applied from that device.
                if let SyncError::Withheld {
                    device, received, ..
                } = &e
                {
                    let from = applied_at.get(device).copied().unwrap_or(0);
                    rewinds.want(*device, received + 1, from);
                }
                // An alarm raised earlier in the pull comes first (this one
                // is recorded too).
                if let Some(first) = first_alarm.take() {
                    if let Some(new) = alarms::of_error(&e) {
                        store.raise_alarm(&new, env.now())?;
                    }
                    break Err(first);
                }
                break Err(e);
            }
            complete = true;
            views.settle(me, &heads, env.now());
            store.put_meta(tail::VIEWS, &views.encode())?;
            store.put_meta(tail::LAST_COMPLETE_PULL, &began.to_be_bytes())?;
            views.prune_own(store, roster)?;
            let mut settled = witnesses.settle(store, &heads, &waiting)?;
            settled.extend(views.own_tail_withheld(store, roster)?);
            settled.extend(tail::snapshot_missing(store, roster, env.now())?);
            for alarm in &settled {
                if let Some(new) = alarms::of_error(alarm) {
                    store.raise_alarm(&new, env.now())?;
                }
            }
            store.put_meta(witness::CLAIMS, &witnesses.encode())?;
            break match first_alarm.take().or(settled.into_iter().next()) {
                Some(alarm) => Err(alarm),
                None => Ok(()),
            };
        }
    };
    // A pull that reached its end with every chain whole needs no rewind;
    // otherwise the next one starts again where a chain broke.
    rewinds.save(store, &heads, complete)?;
    if shred_applied {
        // No page image of a shredded case may stay in the WAL.
        store.checkpoint()?;
    }
    result
}

/// The alarms another device reported (kept here if this device is an
/// office one) and the acknowledgements an admin sent.
fn take_notices(
    roster: &Roster,
    me: DeviceId,
    opened: &seal::OpenedEnvelope,
    pulled: &mut PulledPage,
) {
    let author = opened.header.device;
    let role_of = |d: &DeviceId| roster.device(d).map(|r| r.entry.role);
    let office_here = role_of(&me).is_some_and(Role::is_office);
    let from_admin = role_of(&author) == Some(Role::Admin);
    for notice in &opened.notices {
        match notice {
            Notice::Alarm {
                id,
                code,
                device,
                seq,
                first_seen,
            } if office_here => pulled.reported_alarms.push(Alarm {
                id: AlarmId(*id),
                raised_by: author,
                code: code.clone(),
                device: *device,
                seq: *seq,
                message: format!("reported by device {author}"),
                first_seen: *first_seen,
                last_seen: opened.context.sealed_at,
                sightings: 1,
                reported: true,
                acknowledged: None,
            }),
            Notice::Ack { raised_by, id } if from_admin => {
                pulled
                    .acks
                    .push((*raised_by, AlarmId(*id), author, opened.context.sealed_at))
            }
            _ => {}
        }
    }
}

/// Applies one part of another device's snapshot (the roster checked it
/// comes from an admin): its tombstones must name its signer, or nothing
/// of it is applied. Returns the refusal, if any.
#[allow(clippy::too_many_arguments)]
fn take_snapshot(
    mut part: Snapshot,
    head: PeerHead,
    bytes: &[u8],
    docs: &mut PageDocs,
    staged: &mut Vec<Staged>,
    shredded: &mut BTreeSet<crate::ids::CaseId>,
    pulled: &mut PulledPage,
    report: &mut SyncReport,
) -> Option<Rejection> {
    if part.tombstones.iter().any(|t| t.by != head.device) {
        return Some(Rejection::InvalidContent {
            device: head.device,
            seq: head.seq,
            what: "a tombstone names another device than the snapshot's signer".into(),
        });
    }
    for t in &part.tombstones {
        if shredded.insert(t.case) {
            report.cases_shredded += 1;
        }
        docs.forget(t.case);
    }
    pulled.tombstones.extend(part.tombstones.iter().copied());
    let cases: Vec<_> = std::mem::take(&mut part.cases)
        .into_iter()
        .filter(|saved| !shredded.contains(&saved.case))
        .collect();
    let n = docs.stage_snapshot(head.device, head.seq, cases);
    staged.push((
        n,
        bytes.to_vec(),
        0,
        head.device,
        head.seq,
        Some((part.id, part.part)),
    ));
    pulled.labels.extend(part.labels.iter().cloned());
    pulled.snapshot_parts.push(part);
    None
}

/// A staged envelope: its number, its bytes (for evidence), how many
/// changes it carries, its author and seq, and for a snapshot part its id
/// and part number.
type Staged = (
    usize,
    Vec<u8>,
    usize,
    DeviceId,
    u64,
    Option<([u8; 16], u32)>,
);

/// What deferring an author's envelopes touches.
struct Deferral<'a> {
    deferred: &'a mut BTreeMap<DeviceId, u64>,
    rewinds: &'a mut Rewinds,
    applied_at: &'a BTreeMap<DeviceId, u64>,
    heads: &'a BTreeMap<DeviceId, PeerHead>,
}

/// Leaves `author`'s envelopes for a later pull: passed over for the rest
/// of this one, fetched again from the last one applied (the same break at
/// most every few hours).
fn defer_author(d: &mut Deferral<'_>, author: DeviceId) {
    let seq = d.heads.get(&author).map_or(1, |h| h.seq + 1);
    d.deferred.insert(author, seq);
    let from = d.applied_at.get(&author).copied().unwrap_or(0);
    d.rewinds.want(author, seq, from);
}

/// Where a `roster_withheld` finding is recorded.
struct Withheld<'a> {
    pulled: &'a mut PulledPage,
    doubts: &'a mut Vec<Doubt>,
    first_alarm: &'a mut Option<SyncError>,
}

/// An envelope states a roster (`claimed` operations) longer than the
/// relay serves this device (`ours`) even after fetching it again: the
/// relay hides it, or the author lies. Only that author's envelopes wait;
/// the evidence and the alarm are kept, and this device seals nothing
/// until it has that roster (the doubt).
fn roster_withheld(
    deferral: &mut Deferral<'_>,
    record: Withheld<'_>,
    bytes: &[u8],
    (author, seq, epoch): (DeviceId, u64, u32),
    (claimed, ours): (u64, u64),
) {
    let alarm = SyncError::RosterWithheld {
        author,
        seq,
        claimed,
        ours,
    };
    defer_author(deferral, author);
    record.pulled.quarantined.push((
        bytes.to_vec(),
        format!("roster_withheld: {alarm}"),
        Vouched::RelayMade,
    ));
    record.pulled.alarms.extend(alarms::of_error(&alarm));
    record.doubts.retain(|(a, _, _)| *a != author);
    record.doubts.push((author, claimed, epoch));
    record.first_alarm.get_or_insert(alarm);
}

/// Meta entry: per device, the seq from which its envelopes wait for a
/// later pull (see `defer_author`).
const DEFERRED: &str = "deferred_from";

/// Meta entry: rosters other devices stated and the relay did not serve
/// (author, stated length): this device seals nothing while one is open.
const DOUBTS: &str = "roster_doubts";

/// A roster doubt: the author, the roster length it stated and the epoch
/// it sealed under (both must be on this device's roster to clear it).
type Doubt = (DeviceId, u64, u32);

fn read_doubts(store: &DeviceStore) -> Result<Vec<Doubt>, StoreError> {
    store.meta_records(DOUBTS, 28, "roster doubts", |r| {
        (r.device(0), r.u64(16), r.u32(24))
    })
}

fn encode_doubts(doubts: &[Doubt]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doubts.len() * 28);
    for (device, len, epoch) in doubts {
        out.extend_from_slice(device.as_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
    }
    out
}

/// The roster doubt still open under `roster`, if any: a stated roster
/// longer than this one, from a device still active on it (a revoked
/// device's word no longer holds this device back).
pub(super) fn open_doubt(
    store: &mut DeviceStore,
    roster: &Roster,
) -> Result<Option<SyncError>, StoreError> {
    let len = roster.ops().len() as u64;
    let mut doubts = read_doubts(store)?;
    let before = doubts.len();
    doubts.retain(|(author, claimed, epoch)| {
        (*claimed > len || roster.epoch(*epoch).is_none())
            && roster.device(author).is_some_and(|d| d.is_active())
    });
    if doubts.len() != before {
        store.put_meta(DOUBTS, &encode_doubts(&doubts))?;
    }
    Ok(doubts
        .first()
        .map(|(author, claimed, _)| SyncError::RosterWithheld {
            author: *author,
            seq: 0,
            claimed: *claimed,
            ours: len,
        }))
}

/// Unsigned junk kept as evidence per pull (its alarm is raised whatever).
const JUNK_EVIDENCE_PER_PULL: usize = 100;
/// Pages in a row of nothing but unsigned junk after which a pull stops.
const JUNK_PAGES: usize = 8;

/// Most pages one pull takes (more is the relay's doing).
const MAX_PAGES: usize = 10_000;

/// Why a page was cut short before its end.
enum Stop {
    /// No key for this epoch yet.
    MissingKey(u32),
    /// An envelope's author held a longer roster than this device.
    RosterAhead { at: u64 },
    /// An envelope of an author this roster does not know.
    UnknownAuthor { at: u64 },
}

/// How often one pull fetches the roster again for envelopes that state a
/// longer one.
const ROSTER_FETCHES: usize = 4;

/// The alarm an envelope's stated roster raises, if any.
fn roster_alarm(
    view: RosterView,
    opened: &seal::OpenedEnvelope,
) -> Option<Result<SyncError, StoreError>> {
    let (device, seq) = (opened.header.device, opened.header.seq);
    match view {
        RosterView::Consistent | RosterView::Ahead => None,
        RosterView::Fork => Some(Ok(SyncError::RosterForkWitnessed {
            author: device,
            seq,
            index: opened.context.roster_len.saturating_sub(1),
        })),
        RosterView::StaleEpoch { expected } => Some(Ok(SyncError::StaleEpoch {
            device,
            seq,
            epoch: opened.header.epoch,
            expected,
        })),
    }
}

/// An author that states a roster older than one stated by an envelope it
/// witnessed had seen that newer roster (an honest device fetches it
/// before going on) and wrote under the old one anyway.
fn stale_roster(
    store: &DeviceStore,
    opened: &seal::OpenedEnvelope,
    in_page: &BTreeMap<(DeviceId, u64), u64>,
) -> Result<Option<SyncError>, StoreError> {
    let stated = opened.context.roster_len;
    for w in &opened.witnesses {
        let seen = match in_page.get(&(w.device, w.seq)) {
            Some(len) => Some(*len),
            None => store.applied_roster_len(&w.device, w.seq)?,
        };
        if let Some(witnessed) = seen
            && witnessed > stated
        {
            return Ok(Some(SyncError::StaleRoster {
                device: opened.header.device,
                seq: opened.header.seq,
                stated,
                witnessed,
            }));
        }
    }
    Ok(None)
}

/// Requests cut off in a row that a pull retries.
const RETRIES: usize = super::engine::RETRIES;

/// Whether `bytes` is an envelope this device applied already (the same id
/// at a seq it applied), seen again in a rewound range.
fn already_applied(
    store: &DeviceStore,
    bytes: &[u8],
    heads: &BTreeMap<DeviceId, PeerHead>,
) -> Result<bool, StoreError> {
    let Some(header) = header_of(bytes) else {
        return Ok(false);
    };
    let Some(head) = heads.get(&header.device) else {
        return Ok(false);
    };
    if header.seq > head.seq {
        return Ok(false);
    }
    // This device's own envelopes up to its chained head: what it no longer
    // keeps (pruned after a shred) cannot be compared, and it wrote them.
    if header.device == store.keys().device_id() {
        return Ok(true);
    }
    let Some(id) = crate::envelope::id_of(bytes) else {
        return Ok(false);
    };
    Ok(store.applied_id(&header.device, header.seq)? == Some(id))
}

/// The roster device whose chain a refusal broke in a way the relay can
/// cause (an envelope left out, altered or cut to a stub): worth fetching
/// again. A refusal of the author's own doing (a valid signature on bad
/// content, a role or revocation rule) is not: fetching again brings the
/// same bytes.
fn chain_broken_by_relay(rejection: &Rejection, roster: &Roster) -> Option<DeviceId> {
    let device = match rejection {
        Rejection::Gap { device, .. }
        | Rejection::BrokenChain { device, .. }
        | Rejection::Signature { device, .. }
        | Rejection::BodyDropped { device, .. } => *device,
        _ => return None,
    };
    roster.device(&device).map(|_| device)
}

/// Whether the relay served the envelope whole and this device refused it
/// for its author's sake (not for anything the relay did).
fn refused_for_its_author(rejection: &Rejection) -> bool {
    matches!(
        rejection,
        Rejection::Author(_)
            | Rejection::RevokedFork { .. }
            | Rejection::SnapshotNotAdmin { .. }
            | Rejection::Unreadable { .. }
            | Rejection::InvalidContent { .. }
            | Rejection::DecompressionBomb { .. }
    )
}

fn header_of(bytes: &[u8]) -> Option<crate::envelope::EnvelopeHeader> {
    crate::envelope::EnvelopeHeader::decode(bytes.first_chunk()?).ok()
}

fn read_u64(store: &DeviceStore, name: &'static str) -> Result<Option<u64>, StoreError> {
    store
        .meta(name)?
        .map(|b| {
            b.as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt(format!("{name} unreadable")))
        })
        .transpose()
}

/// A stored map of device to number (`APPLIED_AT`, `REFUSED`).
fn read_cursors(
    store: &DeviceStore,
    name: &'static str,
) -> Result<BTreeMap<DeviceId, u64>, StoreError> {
    Ok(store
        .meta_records(name, 24, name, |r| (r.device(0), r.u64(16)))?
        .into_iter()
        .collect())
}

fn encode_cursors(map: &BTreeMap<DeviceId, u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len() * 24);
    for (device, cursor) in map {
        out.extend_from_slice(device.as_bytes());
        out.extend_from_slice(&cursor.to_be_bytes());
    }
    out
}
