use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ROOT};
use flate2::{Compress, Compression, FlushCompress};

use super::*;

const GIB: u64 = 1 << 30;

/// A raw deflate stream of `total` zero bytes, a few kilobytes per
/// megabyte: one fully flushed block of a mebibyte of zeros, repeated (a
/// flushed block refers to nothing before it), then an empty final block.
fn zeros_deflated(total: u64) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(1 << 16);
    compress
        .compress_vec(&vec![0u8; 1 << 20], &mut block, FlushCompress::Full)
        .unwrap();
    let mut out = Vec::with_capacity(block.len() * (total >> 20) as usize + 2);
    for _ in 0..total >> 20 {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&[0x03, 0x00]);
    out
}

fn uleb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn chunk(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    uleb(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

/// A document of a hundred notes: big enough that `save()` deflates its
/// columns.
fn big_doc() -> AutoCommit {
    let mut doc = AutoCommit::new();
    for i in 0..100 {
        doc.put(
            ROOT,
            format!("note{i}"),
            format!("a note that repeats itself {i}"),
        )
        .unwrap();
    }
    doc.commit();
    doc
}

#[test]
fn what_automerge_writes_passes_and_only_compressed_parts_spend() {
    let mut doc = big_doc();
    let change = doc.get_last_local_change().unwrap().clone();

    let mut budget = InflateBudget::new(1 << 20, ITEMS_FLOOR);
    check_change(change.raw_bytes(), &mut budget).unwrap();
    assert_eq!(
        budget.left(),
        1 << 20,
        "an uncompressed change spends nothing"
    );

    let mut compressed = change.clone();
    let bytes = compressed.bytes().into_owned();
    assert_eq!(bytes[8], COMPRESSED_CHANGE, "big enough to be compressed");
    check_change(&bytes, &mut budget).unwrap();
    let spent = (1 << 20) - budget.left();
    assert!(spent >= change.raw_bytes().len() - 64, "spent {spent}");
    Change::from_bytes(bytes).unwrap();

    let mut budget = InflateBudget::new(1 << 20, ITEMS_FLOOR);
    check_saved(&doc.save_nocompress(), &mut budget).unwrap();
    assert_eq!(budget.left(), 1 << 20);
    let saved = doc.save();
    check_saved(&saved, &mut budget).unwrap();
    assert!(
        budget.left() < 1 << 20,
        "save() deflates columns, which spend"
    );
    AutoCommit::load(&saved).unwrap();
}

#[test]
fn a_compressed_change_that_inflates_to_gigabytes_is_refused() {
    let bomb = chunk(COMPRESSED_CHANGE, &zeros_deflated(4 * GIB));
    assert!(bomb.len() < 8 << 20, "{} bytes", bomb.len());
    let mut budget = InflateBudget::new(64 << 20, ITEMS_FLOOR);
    assert_eq!(
        check_change(&bomb, &mut budget),
        Err(BoundError::TooLarge { limit: 64 << 20 })
    );
}

#[test]
fn a_document_column_that_inflates_to_gigabytes_is_refused() {
    let bomb = zeros_deflated(2 * GIB);
    let mut data = Vec::new();
    uleb(0, &mut data); // actors
    uleb(0, &mut data); // heads
    uleb(1, &mut data); // one change column, deflated
    uleb(0x10 | DEFLATE_BIT | 2, &mut data);
    uleb(bomb.len() as u64, &mut data);
    uleb(0, &mut data); // no op column
    data.extend_from_slice(&bomb);
    let saved = chunk(DOCUMENT, &data);
    let mut budget = InflateBudget::new(64 << 20, ITEMS_FLOOR);
    assert_eq!(
        check_saved(&saved, &mut budget),
        Err(BoundError::TooLarge { limit: 64 << 20 })
    );
    // Behind a harmless document too.
    let mut doc = big_doc();
    let mut both = doc.save_nocompress();
    both.extend_from_slice(&chunk(COMPRESSED_CHANGE, &zeros_deflated(GIB)));
    assert!(matches!(
        check_saved(&both, &mut InflateBudget::new(64 << 20, ITEMS_FLOOR)),
        Err(BoundError::TooLarge { .. })
    ));
}

#[test]
fn the_budget_is_shared_by_every_chunk_of_an_envelope() {
    let small = chunk(COMPRESSED_CHANGE, &zeros_deflated(1 << 20));
    let mut budget = InflateBudget::new(3 << 20, ITEMS_FLOOR);
    for _ in 0..3 {
        check_change(&small, &mut budget).unwrap();
    }
    assert_eq!(budget.left(), 0);
    assert_eq!(
        check_change(&small, &mut budget),
        Err(BoundError::TooLarge { limit: 3 << 20 })
    );
}

#[test]
fn malformed_chunks_are_refused_before_automerge() {
    let mut doc = big_doc();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let saved = doc.save();
    let budget = || InflateBudget::new(1 << 20, ITEMS_FLOOR);
    let refused = |r: Result<(), BoundError>| matches!(r, Err(BoundError::Malformed { .. }));

    assert!(refused(check_change(
        &change[..change.len() - 1],
        &mut budget()
    )));
    assert!(refused(check_change(
        &[&change[..], b"x"].concat(),
        &mut budget()
    )));
    assert!(
        refused(check_change(&saved, &mut budget())),
        "a document is not a change"
    );
    let mut wrong_magic = change.clone();
    wrong_magic[0] ^= 1;
    assert!(refused(check_change(&wrong_magic, &mut budget())));
    assert!(refused(check_saved(&chunk(3, b"bundle"), &mut budget())));
    assert!(refused(check_saved(&[], &mut budget())));
    assert!(refused(check_saved(
        &saved[..saved.len() / 2],
        &mut budget()
    )));
    // A length of 2^64 - 1 and a number longer than 64 bits.
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&[0, 0, 0, 0, CHANGE]);
    huge.extend_from_slice(&[0xff; 9]);
    huge.push(0x01);
    assert!(refused(check_change(&huge, &mut budget())));
    let mut long = MAGIC.to_vec();
    long.extend_from_slice(&[0, 0, 0, 0, CHANGE]);
    long.extend_from_slice(&[0xff; 11]);
    assert!(refused(check_change(&long, &mut budget())));
    // A compressed part that is not deflate.
    assert!(refused(check_change(
        &chunk(COMPRESSED_CHANGE, &[0xff; 16]),
        &mut budget()
    )));
}

fn sleb(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

/// A change chunk of a few dozen bytes whose op columns claim `runs`.
fn change_claiming(columns: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    uleb(0, &mut body); // deps
    uleb(16, &mut body);
    body.extend_from_slice(&[7; 16]); // actor
    uleb(1, &mut body); // seq
    uleb(1, &mut body); // start op
    uleb(0, &mut body); // time
    uleb(0, &mut body); // message
    uleb(0, &mut body); // other actors
    uleb(columns.len() as u64, &mut body);
    for (spec, data) in columns {
        uleb(*spec, &mut body);
        uleb(data.len() as u64, &mut body);
    }
    for (_, data) in columns {
        body.extend_from_slice(data);
    }
    chunk(CHANGE, &body)
}

/// A few bytes that claim 2^40 operations (a run length, a null run, a
/// boolean run) are refused before Automerge walks them, which would take
/// hours and the device's memory. (Before: only compressed parts were
/// bounded.)
#[test]
fn a_change_whose_columns_claim_billions_of_operations_is_refused() {
    let huge: i64 = 1 << 40;
    let mut run = Vec::new();
    sleb(huge, &mut run);
    uleb(1, &mut run); // the value repeated
    let mut nulls = Vec::new();
    sleb(0, &mut nulls);
    uleb(huge as u64, &mut nulls);
    let mut booleans = Vec::new();
    uleb(huge as u64, &mut booleans);
    for (spec, data) in [
        ((4 << 4) | 2, run),
        ((1 << 4) | 1, nulls),
        ((3 << 4) | 4, booleans),
    ] {
        let bomb = change_claiming(&[(spec, data)]);
        assert!(bomb.len() < 64, "{} bytes", bomb.len());
        assert_eq!(
            check_change(&bomb, &mut InflateBudget::new(1 << 20, ITEMS_FLOOR)),
            Err(BoundError::TooManyItems { limit: ITEMS_FLOOR })
        );
    }
    // The same claim inside a saved document's columns.
    let mut run = Vec::new();
    sleb(huge, &mut run);
    uleb(1, &mut run);
    let mut data = Vec::new();
    uleb(0, &mut data); // actors
    uleb(0, &mut data); // heads
    uleb(0, &mut data); // change columns
    uleb(1, &mut data); // one op column
    uleb((4 << 4) | 2, &mut data);
    uleb(run.len() as u64, &mut data);
    data.extend_from_slice(&run);
    assert!(matches!(
        check_saved(
            &chunk(DOCUMENT, &data),
            &mut InflateBudget::new(1 << 20, ITEMS_FLOOR)
        ),
        Err(BoundError::TooManyItems { .. })
    ));
}

/// What a person really writes stays far inside the item budget: a
/// document of a hundred notes, and a note of ten thousand characters
/// typed and then deleted.
#[test]
fn real_documents_fit_the_item_budget() {
    use automerge::ObjType;
    let mut doc = big_doc();
    let text = doc.put_object(ROOT, "note", ObjType::Text).unwrap();
    doc.splice_text(&text, 0, 0, &"a".repeat(10_000)).unwrap();
    doc.commit();
    doc.splice_text(&text, 0, 10_000, "").unwrap();
    doc.commit();
    let mut budget = InflateBudget::for_envelope(64 << 20, 1024);
    for change in doc.get_changes(&[]) {
        check_change(change.raw_bytes(), &mut budget).unwrap();
    }
    check_saved(&doc.save(), &mut budget).unwrap();
    check_saved(&doc.save_nocompress(), &mut budget).unwrap();
    let spent = ITEMS_FLOOR - budget.items_left();
    assert!(spent > 20_000, "items were counted: {spent}");
}
