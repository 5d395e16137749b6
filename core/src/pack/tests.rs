//! Unit tests and proptests of the packed words and their codecs.

use super::*;
use proptest::prelude::*;

/// `takeable` (what reclaim and close ask) refuses each thing that keeps a page: a pin, a
/// holder, a writer, an out-of-line holder, a reclaim under way, arbitration state; and
/// `takeable_but_reclaiming` refuses the same less the reclaim.
#[test]
fn takeable_refuses_every_pin_holder_and_reclaim() {
    let free = EntryWord::resident(3, 0);
    assert!(free.takeable() && free.takeable_but_reclaiming());
    let keeps = [
        EntryWord::resident(3, 1),
        free.with(EntryWord::WRITER, true),
        EntryWord(free.0 | EntryWord::hold_bit(2, false)),
        free.with(EntryWord::EXT_READ, true),
        free.with(EntryWord::EXT_WRITE, true),
        free.with(EntryWord::ARB_SLOW, true),
    ];
    for e in keeps {
        assert!(!e.takeable(), "{e:?}");
        assert!(!e.takeable_but_reclaiming(), "{e:?}");
    }
    let reclaiming = free.with(EntryWord::RECLAIMING, true);
    assert!(!reclaiming.takeable());
    assert!(reclaiming.takeable_but_reclaiming());
    assert!(
        free.with(EntryWord::DIRTY, true).takeable(),
        "a dirty page is taken"
    );
}

/// One writer (plain, inline or out-of-line) excludes every other pin and holder: the decoder
/// refuses each such pair and accepts each writer alone and readers together.
#[test]
fn the_decoder_refuses_a_writer_beside_any_other_access() {
    let base = EntryWord::resident(7, 0).raw();
    let writer = EntryWord::WRITER.mask();
    let ext_write = EntryWord::EXT_WRITE.mask() | EntryWord::ARB_SLOW.mask();
    let hold_w = EntryWord::hold_bit(1, true);
    let others = [
        EntryWord::PINS.one(),
        EntryWord::hold_bit(0, false),
        EntryWord::hold_bit(2, true),
        EntryWord::EXT_READ.mask() | EntryWord::ARB_SLOW.mask(),
    ];
    for w in [writer, hold_w, ext_write] {
        assert!(EntryWord::from_raw(base | w).is_ok(), "{w:#x} alone");
        for o in others {
            if o & w == 0 && !(w == ext_write && o & EntryWord::EXT_READ.mask() != 0) {
                assert!(
                    EntryWord::from_raw(base | w | o).is_err(),
                    "accepted writer {w:#x} beside {o:#x}"
                );
            }
        }
    }
    let readers = base | (2 * EntryWord::PINS.one()) | EntryWord::hold_bit(0, false);
    assert!(EntryWord::from_raw(readers | EntryWord::hold_bit(3, false)).is_ok());
    // Out-of-line holders live in the side table (`ARB_SLOW`), and then every holder does.
    let ext_read = EntryWord::EXT_READ.mask();
    let arb = EntryWord::ARB_SLOW.mask();
    assert!(EntryWord::from_raw(base | ext_read | arb).is_ok());
    assert!(
        EntryWord::from_raw(base | ext_read).is_err(),
        "out of line, no side table"
    );
    let mixed = base | ext_read | arb | EntryWord::hold_bit(0, false);
    assert!(
        EntryWord::from_raw(mixed).is_err(),
        "out of line beside inline"
    );
    // An inline slot holds for reading or for writing, not both.
    for c in 0..EntryWord::INLINE_CLIENTS {
        assert!(
            EntryWord::from_raw(base | EntryWord::hold_bits(c)).is_err(),
            "slot {c}"
        );
    }
}

/// An entry shows its fields (the scenarios' failure messages print entries).
#[test]
fn an_entry_shows_its_fields() {
    let e = EntryWord::resident(5, 2).with(EntryWord::DIRTY, true);
    let shown = format!("{e:?}");
    for part in [
        "EntryWord",
        "frame: Some(5)",
        "pins: 2",
        "dirty: true",
        "writer: false",
    ] {
        assert!(shown.contains(part), "{part} not in {shown}");
    }
}

/// The inline access word refuses a client listed twice, whichever slot it has, and an
/// `asked` mask wider than the four inline slots.
#[test]
fn an_inline_access_word_refuses_a_client_twice() {
    assert_eq!(AccessWord::inline(&[], 0x10), None);
    assert!(AccessWord::inline(&[], 0xF).is_some());
    for c in 0..EntryWord::INLINE_CLIENTS {
        assert_eq!(
            AccessWord::inline(&[(c, false), (c, true)], 0),
            None,
            "client {c}"
        );
        let other = (c + 1) % EntryWord::INLINE_CLIENTS;
        assert!(AccessWord::inline(&[(c, false), (other, true)], 0).is_some());
    }
}

#[test]
fn fields_tile_the_word_without_overlap() {
    for fields in [EntryWord::FIELDS, AccessWord::FIELDS, FrameWord::FIELDS] {
        let mut seen = 0u64;
        for (name, f) in fields {
            assert_eq!(seen & f.mask(), 0, "{name} overlaps");
            seen |= f.mask();
        }
        assert_eq!(seen, u64::MAX);
    }
    let mut holds = 0;
    for c in 0..EntryWord::INLINE_CLIENTS {
        assert_eq!(
            EntryWord::hold_bits(c),
            EntryWord::hold_bit(c, false) | EntryWord::hold_bit(c, true)
        );
        holds |= EntryWord::hold_bits(c);
    }
    assert_eq!(holds, EntryWord::HOLD.mask());
    assert_eq!(EntryWord::HOLD_WRITE_BITS & !EntryWord::HOLD.mask(), 0);
}

#[test]
fn every_tag_round_trips() {
    for t in Tag::ALL {
        assert_eq!(
            FrameWord::from_raw(FrameWord::new(t).raw()).map(|w| w.tag()),
            Ok(t)
        );
    }
}

/// Every inline waitlist of up to four distinct client slots, with every asked mask, round
/// trips exactly (exhaustive: 4 slots x 2 accesses, all orders, 16 masks).
#[test]
fn every_inline_access_word_round_trips() {
    fn lists(prefix: &mut Vec<(u32, bool)>, out: &mut Vec<Vec<(u32, bool)>>) {
        out.push(prefix.clone());
        for c in 0..4 {
            if prefix.iter().any(|&(p, _)| p == c) {
                continue;
            }
            for w in [false, true] {
                prefix.push((c, w));
                lists(prefix, out);
                prefix.pop();
            }
        }
    }
    let mut all = Vec::new();
    lists(&mut Vec::new(), &mut all);
    assert_eq!(all.len(), 1 + 8 + 8 * 6 + 8 * 6 * 4 + 8 * 6 * 4 * 2);
    let mut words = std::collections::HashSet::new();
    // Under Miri (ci/miri.sh: some hundred times slower) every 37th list; the rest is
    // integer arithmetic, which Miri checks nothing more of.
    let stride = if cfg!(miri) { 37 } else { 1 };
    for l in all.iter().step_by(stride) {
        for asked in 0..16u8 {
            let w = AccessWord::inline(l, asked).expect("fits");
            assert_eq!(AccessWord::from_raw(w.raw()), Ok(w));
            assert_eq!(&w.waiters().collect::<Vec<_>>(), l);
            assert_eq!(w.asked(), asked);
            assert_eq!(w.record(), None);
            assert!(words.insert(w.raw()), "two states pack alike");
        }
    }
    assert!(AccessWord::inline(&[(0, false); 2], 0).is_none());
    assert!(AccessWord::inline(&[(4, false)], 0).is_none());
    assert!(AccessWord::inline(
        &[(0, false), (1, false), (2, false), (3, false), (0, true)],
        0
    )
    .is_none());
}

proptest! {
    // Miri runs these a few hundred times slower: a handful of cases there (ci/miri.sh).
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 }))]
    #[test]
    fn entry_word_round_trips(frame in 0u32..=EntryWord::MAX_FRAME,
                              pins in 0u64..=EntryWord::PINS.max(), hold in 0u64..256,
                              writer: bool, dirty: bool, wp: bool, wq: bool, rec: bool,
                              slow: bool, xr: bool, xw: bool, cow: bool, fq in 0u64..4) {
        let e = EntryWord::resident(frame, pins).with_hold(hold).with(EntryWord::WRITER, writer)
            .with(EntryWord::COW, cow).with_freq(fq)
            .with(EntryWord::DIRTY, dirty).with(EntryWord::WAIT_PAGE, wp)
            .with(EntryWord::WAIT_POOL, wq).with(EntryWord::RECLAIMING, rec)
            .with(EntryWord::ARB_SLOW, slow).with(EntryWord::EXT_READ, xr)
            .with(EntryWord::EXT_WRITE, xw);
        prop_assert_eq!(e.frame(), Some(frame));
        prop_assert_eq!(e.pins(), pins);
        prop_assert_eq!(e.hold(), hold);
        prop_assert_eq!(e.writer(), writer);
        prop_assert_eq!(e.dirty(), dirty);
        prop_assert_eq!(e.reclaiming(), rec);
        prop_assert_eq!(e.arb_slow(), slow);
        prop_assert_eq!(e.ext_read(), xr);
        prop_assert_eq!(e.ext_write(), xw);
        prop_assert_eq!(e.cow(), cow);
        prop_assert_eq!(e.freq(), fq);
        prop_assert_eq!(e.referenced(), fq != 0);
        // A hit raises FREQ by one up to 3 and changes nothing else.
        let h = EntryWord(EntryWord::hit(e.raw()));
        prop_assert_eq!(h.freq(), (fq + 1).min(3));
        prop_assert_eq!(h.with_freq(fq), e);
        prop_assert_eq!(EntryWord::WAIT_PAGE.is_set(e.raw()), wp);
        prop_assert_eq!(EntryWord::WAIT_POOL.is_set(e.raw()), wq);
        prop_assert_eq!(e.unpinned(), pins == 0 && !writer && hold == 0 && !xr && !xw);
        prop_assert_eq!(e.held(), hold != 0 || xr || xw);
        // The invariants, restated independently of from_raw.
        let slot_both = (0..4).any(|i| (hold >> (2 * i)) & 3 == 3);
        let hw = (hold & EntryWord::HOLD_WRITES).count_ones();
        let hr = (hold & 0x55).count_ones();
        let writers = writer as u32 + hw + xw as u32;
        let valid = !slot_both
            && writers <= 1
            && (writers == 0 || (pins == 0 && !xr && hr == 0))
            && (!(xr || xw) || (hold == 0 && slow))
            && (!rec || (pins == 0 && !writer && hold == 0 && !xr && !xw && !slow))
            && (!cow || writers == 0);
        prop_assert_eq!(EntryWord::from_raw(e.raw()).is_ok(), valid, "{:?}", e);
    }

    #[test]
    fn codecs_hold_on_any_raw_word(raw: u64) {
        prop_assert_eq!(check_codecs(raw), Ok(()));
    }

    #[test]
    fn out_of_line_access_word_round_trips(id: u32, junk in 1u64..(1 << 31)) {
        let w = AccessWord::record_of(id);
        prop_assert_eq!(AccessWord::from_raw(w.raw()), Ok(w));
        prop_assert_eq!(w.record(), Some(id));
        prop_assert_eq!(w.waiters().count(), 0);
        prop_assert!(AccessWord::from_raw(w.raw() | (junk << 32)).is_err());
    }

    #[test]
    fn entry_word_rejects_bits_without_frame(raw in 1u64..) {
        let raw = raw & !EntryWord::FRAME1.mask();
        prop_assume!(raw != 0);
        prop_assert!(EntryWord::from_raw(raw).is_err());
    }
}
