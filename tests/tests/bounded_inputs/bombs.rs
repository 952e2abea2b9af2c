//! Decompression bombs from a writer key: a stolen tablet, before the
//! office revokes it, seals an envelope whose Automerge change inflates to
//! gigabytes. Before: every reading device inflated it in full (Automerge
//! 0.12 reads a compressed chunk to its end), on every sync, before the
//! page committed. Now: refused before inflation, quarantined as
//! `decompression_bomb`, and the sync goes on.

use amana_core::envelope::seal::CaseChange;
use amana_core::roster::Role;
use flate2::{Compress, Compression, FlushCompress};

use super::support::hostile::{Forgery, quarantine_codes, relay_head, store_directly};
use super::support::{World, case, notes};
use super::{MIB, within};

/// A raw deflate stream of `total` zero bytes: a flushed block of a
/// mebibyte of zeros (about a kilobyte, referring to nothing before it)
/// repeated, then an empty final block.
fn zeros_deflated(total: usize) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(1 << 16);
    compress
        .compress_vec(&vec![0u8; MIB], &mut block, FlushCompress::Full)
        .unwrap();
    let mut out = block.repeat(total / MIB);
    out.extend_from_slice(&[0x03, 0x00]);
    out
}

/// An Automerge compressed-change chunk (type 2) whose data inflates to
/// `total` bytes.
fn compressed_change_bomb(total: usize) -> Vec<u8> {
    let data = zeros_deflated(total);
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut len = data.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&data);
    out
}

#[test]
fn a_change_that_inflates_to_gigabytes_is_quarantined_and_the_sync_goes_on() {
    let _alone = super::alone();
    let (mut w, mut office) = World::new();
    let mut thief = w.enrol(&mut office, "tablet", Role::Field);
    w.sync(&mut thief).unwrap();
    w.sync(&mut office).unwrap();
    let id = thief.keys().device_id();

    // The stolen tablet seals a bomb (2 GiB of zeros in 2 MiB) as its
    // next envelope, then an honest intake after it.
    let bomb = CaseChange {
        case: amana_core::CaseId::random(),
        change: compressed_change_bomb(2048 * MIB),
    };
    assert!(bomb.change.len() < 4 * MIB);
    let sealed =
        Forgery::next(&office, id, relay_head(&w, id)).seal(&office, &[bomb], &[], thief.keys());
    store_directly(&w, &sealed);
    // Another officer's intake comes after it in the log.
    let mut officer = w.enrol(&mut office, "officer", Role::Field);
    officer
        .record_intake(&case("after the bomb", w.now()))
        .unwrap();
    w.sync(&mut officer).unwrap();

    // A phone's worth of memory for the whole sync; the old code
    // allocated the 2 GiB (and aborts here).
    let (result, peak) = within(256 * MIB, || w.sync(&mut office));
    let report = result.unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(quarantine_codes(&office), ["decompression_bomb"]);
    assert_eq!(notes(&office), ["after the bomb"], "the sync went on");
    println!(
        "peak while reading the bomb: {:.1} MiB",
        peak as f64 / MIB as f64
    );

    // The next sync does not read it again.
    let (again, _) = within(64 * MIB, || w.sync(&mut office));
    assert!(again.unwrap().quarantined.is_empty());
    // Open until acknowledged: the office's own, and the officer's (it
    // read the bomb too, at its first sync, and reported it).
    let mut open: Vec<_> = office
        .open_alarms()
        .unwrap()
        .into_iter()
        .map(|a| (a.code, a.raised_by))
        .collect();
    open.sort();
    let mut expected = vec![
        ("decompression_bomb".to_owned(), office.keys().device_id()),
        ("decompression_bomb".to_owned(), officer.keys().device_id()),
    ];
    expected.sort();
    assert_eq!(open, expected);
}
