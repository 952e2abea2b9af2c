//! The key steps of a sync on a device that reads cases: collect the epoch
//! keys delivered to it, then renew its receiving key once one has been
//! used (see [`crate::keys::receiving`]).

use super::client::RelayClient;
use super::{Env, SyncError};
use crate::keys::ReceivingKey;
use crate::keys::announce::Announcement;
use crate::keys::delivery::KeyEnvelope;
use crate::roster::Roster;
use crate::store::DeviceStore;
use crate::transport::Transport;

/// Whether the roster shows a readable epoch (not retired) whose key this
/// device does not hold, or holds a key other than the roster's for. Only
/// then can the relay's key deliveries hold anything new for it (a
/// delivery for any other epoch is passed over by [`collect`]), so a sync
/// with nothing missing skips that request.
pub(super) fn missing_any(store: &DeviceStore, roster: &Roster) -> Result<bool, SyncError> {
    let held = store.epoch_keys()?;
    let current = roster.current_epoch().epoch;
    Ok((roster.retired_below().max(1)..=current).any(|epoch| {
        roster.epoch(epoch).is_some_and(|on_roster| {
            held.get(epoch)
                .is_none_or(|k| k.recipient().to_string() != on_roster.recipient.to_string())
        })
    }))
}

/// Stores every delivered epoch key this device does not hold yet (and is
/// not retired); returns how many.
pub(super) fn collect<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    roster: &Roster,
) -> Result<usize, SyncError> {
    let held = store.epoch_keys()?;
    let receiving = store.receiving_keys()?;
    let me = store.keys().device_id();
    let mut received = 0;
    for bytes in client.keys(env, store.keys())? {
        let delivery = KeyEnvelope::parse(bytes)?;
        // A held key counts only if it is the epoch's key on the roster: a
        // rotation this device attempted that lost to another admin's
        // leaves a key of its own behind, which the delivery replaces.
        let on_roster = roster
            .epoch(delivery.epoch)
            .map(|e| e.recipient.to_string());
        let holds = held
            .get(delivery.epoch)
            .is_some_and(|k| Some(k.recipient().to_string()) == on_roster);
        if holds || delivery.epoch < roster.retired_below() {
            continue;
        }
        let (key, generation) = delivery.open(roster, me, &receiving)?;
        store.put_epoch_key(&key)?;
        store.mark_receiving_key_used(generation)?;
        received += 1;
    }
    Ok(received)
}

/// Once the newest receiving key has opened a delivery, makes the next
/// one, announces it, and destroys every older generation. An
/// announcement that did not reach the relay is sent again next time;
/// nothing is destroyed before the relay has accepted its successor.
pub(super) fn renew_receiving_key<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<(), SyncError> {
    let mut current = store.current_receiving_key()?;
    if store.current_receiving_key_used()? {
        let next = ReceivingKey::generate(current.generation() + 1);
        store.add_receiving_key(&next)?;
        current = next;
    }
    let announced = store.announced_generation()?;
    if current.generation() > 0 && announced != Some(current.generation()) {
        let team = client.team();
        let have_epoch = store.epoch_keys()?.latest().map_or(0, |k| k.epoch());
        let announcement = Announcement::sign(
            team,
            store.keys(),
            current.generation(),
            have_epoch,
            &current.recipient(),
        )?;
        client.announce(env, store.keys(), &announcement)?;
        store.set_announced_generation(current.generation())?;
    }
    if let Some(announced) = store.announced_generation()? {
        store.destroy_receiving_keys_below(announced)?;
    }
    Ok(())
}
