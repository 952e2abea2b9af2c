//! A hostile relay serving junk without end: the device's time, battery
//! and disk are not the relay's to spend. Before: a pull went on for up to
//! 10,000 pages of garbage and each pull added up to a hundred rows of it
//! to a quarantine bounded only in rows (10,000 of up to 4 MiB). Now: the
//! pull stops after a few pages of nothing signed, with an alarm, and the
//! quarantine stays within its bytes and rows.

use amana_core::framing::PageEntry;
use amana_core::roster::Role;
use amana_core::store::quarantine::{KEEP_ROWS, KEEP_WHOLE_BYTES};
use amana_core::sync::SyncError;
use amana_core::transport::{Request, Response};

use super::support::hostile::{is_page, pages, sync_via};
use super::support::{World, case, notes};

/// Pages of `per_page` junk entries of `size` bytes each, saying more
/// follows, for ever; counts the pages served.
fn junk_for_ever(
    per_page: usize,
    size: usize,
    served: &std::cell::Cell<usize>,
) -> impl FnMut(&Request, &mut Response) + '_ {
    let mut edit = pages(move |page| {
        let start = page
            .next_cursor
            .max(1_000_000 + served.get() as u64 * 1_000);
        page.entries = (0..per_page as u64)
            .map(|i| PageEntry {
                cursor: start + i + 1,
                bytes: vec![0x5a; size],
            })
            .collect();
        page.more = true;
    });
    move |request, response| {
        if is_page(request) {
            served.set(served.get() + 1);
        }
        edit(request, response);
    }
}

#[test]
fn a_relay_serving_junk_for_ever_is_stopped_and_fills_no_disk() {
    let _alone = super::alone();
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    a.record_intake(&case("real", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();
    assert_eq!(notes(&office), ["real"]);

    let served = std::cell::Cell::new(0);
    for _ in 0..30 {
        served.set(0);
        let result = sync_via(&mut w, &mut office, junk_for_ever(50, 1_000, &served));
        assert!(
            matches!(result, Err(SyncError::RelayMalformed(ref why)) if why.contains("pages in a row")),
            "{result:?}"
        );
        assert!(
            served.get() <= 10,
            "{} pages served in one sync",
            served.get()
        );
    }
    let (kept, _) = office.quarantine_len().unwrap();
    assert!(kept as i64 <= KEEP_ROWS, "{kept} rows");
    let whole: usize = office
        .quarantined_page(0, KEEP_ROWS as usize)
        .unwrap()
        .iter()
        .filter(|q| q.whole)
        .map(|q| q.envelope.len())
        .sum();
    assert!(whole as i64 <= KEEP_WHOLE_BYTES);
    assert_eq!(
        office
            .open_alarms()
            .unwrap()
            .iter()
            .filter(|a| a.code == "relay_malformed")
            .count(),
        1,
        "one alarm, its sightings counted"
    );
    // The honest relay again: the junk's cursors took the office's cursor
    // far ahead, but what is written next still arrives (its head says it
    // is there; the office fetches again from what it last applied).
    a.record_intake(&case("after the junk", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    for _ in 0..2 {
        let _ = w.sync(&mut office);
    }
    let mut seen = notes(&office);
    seen.sort();
    assert_eq!(seen, ["after the junk", "real"]);
}
