use super::*;
use crate::keys::DeviceKeys;

fn store(dir: &std::path::Path) -> DeviceStore {
    DeviceStore::create_unsealed_for_tests(dir, DeviceKeys::generate()).unwrap()
}

fn all(store: &DeviceStore) -> Vec<QuarantinedEnvelope> {
    let mut out = Vec::new();
    loop {
        let page = store
            .quarantined_page(out.last().map_or(0, |q: &QuarantinedEnvelope| q.id), 100)
            .unwrap();
        if page.is_empty() {
            return out;
        }
        assert!(page.len() <= 100);
        out.extend(page);
    }
}

fn insert(store: &mut DeviceStore, n: usize, size: usize, code: &str, vouched: Vouched) {
    let tx = store.conn.transaction().unwrap();
    for i in 0..n {
        let bytes = vec![i as u8; size];
        quarantine_in(
            &tx,
            &store.sealer,
            &bytes,
            &format!("{code}: number {i}"),
            vouched,
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// A relay that serves refusals without end fills no disk: whole
/// envelopes stay within their byte bound, the oldest reduced to stubs,
/// those nobody signed first. (Before: 10,000 rows of up to 4 MiB each,
/// then silently nothing.)
#[test]
fn whole_envelopes_stay_within_their_bytes_and_the_unsigned_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    insert(&mut store, 6, 1 << 20, "invalid_content", Vouched::Author);
    insert(&mut store, 40, 1 << 20, "bad_signature", Vouched::Nobody);
    let kept = all(&store);
    assert_eq!(kept.len(), 46, "nothing removed: only reduced");
    let whole: usize = kept
        .iter()
        .filter(|q| q.whole)
        .map(|q| q.envelope.len())
        .sum();
    assert!(whole as i64 <= KEEP_WHOLE_BYTES, "{whole}");
    assert!(whole as i64 > KEEP_WHOLE_BYTES - (2 << 20), "{whole}");
    assert!(
        kept.iter()
            .filter(|q| q.vouched == Vouched::Author)
            .all(|q| q.whole),
        "signed evidence is kept whole while junk can be reduced"
    );
    let stub = kept.iter().find(|q| !q.whole).unwrap();
    assert_eq!(stub.envelope.len(), STUB_LEN);
    assert_eq!(stub.code, "bad_signature");
    assert_eq!(
        &stub.envelope[HEADER_LEN + SIGNATURE_LEN..],
        Digest::of(&vec![0u8; (1 << 20) - HEADER_LEN - SIGNATURE_LEN]).as_bytes()
    );
}

/// Past the row bound the oldest rows leave, counted by code, never
/// silently: the summary says how many of each.
#[test]
fn rows_beyond_the_bound_are_summarised_by_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    insert(&mut store, 10, 300, "gap", Vouched::Author);
    insert(
        &mut store,
        KEEP_ROWS as usize + 40,
        300,
        "malformed",
        Vouched::Nobody,
    );
    let kept = all(&store);
    assert_eq!(kept.len() as i64, KEEP_ROWS);
    assert_eq!(kept.iter().filter(|q| q.code == "gap").count(), 10);
    assert_eq!(
        store.quarantine_summary().unwrap(),
        QuarantineSummary::from([("malformed".to_owned(), 50)])
    );
    assert_eq!(store.quarantine_len().unwrap(), (KEEP_ROWS as u64, 50));
    // Once only signed evidence is left, the oldest of it goes.
    insert(
        &mut store,
        KEEP_ROWS as usize,
        300,
        "replay",
        Vouched::Author,
    );
    let summary = store.quarantine_summary().unwrap();
    assert_eq!(summary["malformed"], 50 + KEEP_ROWS as u64 - 10);
    assert_eq!(summary["gap"], 10);
    assert!(all(&store).iter().all(|q| q.code == "replay"));
}

#[test]
fn records_and_bytes_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    store
        .quarantine(b"bytes", "bad_signature: forged", Vouched::Nobody)
        .unwrap();
    store
        .quarantine(b"more", "odd record", Vouched::Author)
        .unwrap();
    let kept = all(&store);
    assert_eq!(
        kept.iter()
            .map(|q| (
                q.code.as_str(),
                q.reason.as_str(),
                &q.envelope[..],
                q.whole,
                q.vouched
            ))
            .collect::<Vec<_>>(),
        [
            (
                "bad_signature",
                "forged",
                &b"bytes"[..],
                true,
                Vouched::Nobody
            ),
            ("unknown", "odd record", &b"more"[..], true, Vouched::Author),
        ]
    );
    assert_eq!(store.quarantined_page(kept[0].id, 10).unwrap(), kept[1..]);
}

/// A relay that re-serves genuine envelopes (replays, gaps) cannot flush
/// out what an author did: those rows leave first. (Before this fix the
/// review found that 2,000 replays per sync evicted every real piece of
/// evidence.)
#[test]
fn replays_and_gaps_cannot_flush_out_an_authors_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    insert(&mut store, 5, 300, "decompression_bomb", Vouched::Author);
    insert(
        &mut store,
        3 * KEEP_ROWS as usize,
        300,
        "replay",
        Vouched::RelayMade,
    );
    let kept = all(&store);
    assert_eq!(
        kept.iter()
            .filter(|q| q.code == "decompression_bomb")
            .count(),
        5
    );
    assert_eq!(
        store.quarantine_summary().unwrap()["replay"],
        2 * KEEP_ROWS as u64 + 5
    );
}
