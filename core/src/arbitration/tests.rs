//! Unit tests of arbitration: page-state transitions and client requests.

use super::*;

fn state(holders: &[(u32, Access)], waiters: &[(u32, Access)], asked: &[u32]) -> PageState {
    PageState {
        holders: holders.to_vec(),
        waiters: waiters.iter().copied().collect(),
        asked: asked.to_vec(),
        error: None,
    }
}

/// `decode` refuses an entry that says its holders are out of line (`EXT_READ` or
/// `EXT_WRITE`) while its access word names no record, and a record that is not live: either
/// would lose holders. The inline form decodes to exactly its hold bits and waitlist.
#[test]
fn decode_refuses_out_of_line_bits_without_a_record() {
    let recs = Records::default();
    let inline = AccessWord::inline(&[(2, true)], 0b1000).unwrap();
    let e = EntryWord(EntryWord::resident(0, 0).0 | EntryWord::hold_bit(1, false));
    let st = Arbiter::decode(e, inline, &recs).unwrap();
    assert_eq!(st.holders, vec![(1, Access::Read)]);
    assert_eq!(
        st.waiters.iter().copied().collect::<Vec<_>>(),
        vec![(2, Access::Write)]
    );
    assert_eq!(st.asked, vec![3]);
    for ext in [EntryWord::EXT_READ, EntryWord::EXT_WRITE] {
        let e = EntryWord::resident(0, 0)
            .with(EntryWord::ARB_SLOW, true)
            .with(ext, true);
        assert!(
            Arbiter::decode(e, inline, &recs).is_err(),
            "{e:?} decoded without a record"
        );
    }
    let dead = AccessWord(AccessWord::OUT_OF_LINE.mask() | AccessWord::RECORD.set(0, 7));
    let e = EntryWord::resident(0, 0).with(EntryWord::ARB_SLOW, true);
    assert!(
        Arbiter::decode(e, dead, &recs).is_err(),
        "a dead record decoded"
    );
}

/// `Records::bytes`, the records' part of `ArbitrationCensus::side_bytes`: each live record
/// is stored twice (its slot and its key in the interning map), each copy with its index
/// entry and the heap of its lists; pages in the same state share one record; a freed
/// record costs nothing.
#[test]
fn record_bytes_count_each_live_record_with_its_lists() {
    use std::mem::size_of;
    let mut recs = Records::default();
    assert_eq!(recs.bytes(), 0);
    let fixed = size_of::<PageState>() + 2 * size_of::<(u32, u64)>();
    // One holder, three waiters, one asked: the stored clones have exactly these lengths.
    let a = state(
        &[(4, Access::Read)],
        &[(5, Access::Write), (6, Access::Read), (7, Access::Read)],
        &[4],
    );
    let ia = recs.intern(&a);
    let bytes_a = 2 * (fixed + (1 + 3) * 8 + 4);
    assert_eq!(recs.bytes(), bytes_a);
    assert_eq!(recs.intern(&a), ia, "equal states share a record");
    assert_eq!(recs.bytes(), bytes_a);
    let b = state(&[(4, Access::Read), (5, Access::Read)], &[], &[]);
    let ib = recs.intern(&b);
    assert_eq!(recs.bytes(), bytes_a + 2 * (fixed + 2 * 8));
    recs.release(ia).unwrap();
    assert_eq!(
        recs.bytes(),
        bytes_a + 2 * (fixed + 2 * 8),
        "a is still referenced"
    );
    recs.release(ia).unwrap();
    recs.release(ib).unwrap();
    assert_eq!(recs.bytes(), 0);
    assert_eq!((recs.created, recs.freed), (2, 2));
}

/// `PageState::check` (what `PageMapper::arbitration` runs on every page) accepts a valid
/// state and rejects each kind of broken one, naming the invariant.
#[test]
fn check_rejects_each_broken_page_state() {
    use Access::{Read, Write};
    let e = EntryWord::resident(3, 0);
    let ok = state(&[(0, Read), (1, Read)], &[(2, Write)], &[0, 1]);
    assert_eq!(ok.check(7, e), Ok(()));
    let broken = [
        (state(&[(0, Write), (1, Write)], &[], &[]), e, "I9"),
        (state(&[(0, Write), (1, Read)], &[], &[]), e, "I9"),
        (
            state(&[(0, Write)], &[], &[]),
            EntryWord::resident(3, 1),
            "I9",
        ),
        (
            state(&[(0, Read)], &[], &[]),
            e.with(EntryWord::WRITER, true),
            "I9",
        ),
        (state(&[], &[(1, Read)], &[]), e, "I10"),
        (
            state(&[(0, Write)], &[(1, Read), (1, Read)], &[]),
            e,
            "waits twice",
        ),
        (
            state(&[(0, Read)], &[(2, Write), (0, Write)], &[]),
            e,
            "other than to upgrade",
        ),
        // (Blocked by a reclaim, so that I10 holds.)
        (
            state(&[(0, Read)], &[(0, Read)], &[]),
            e.with(EntryWord::RECLAIMING, true),
            "other than to upgrade",
        ),
        (state(&[(0, Read)], &[(2, Write)], &[1]), e, "asked set"),
    ];
    for (st, e, why) in broken {
        let r = st.check(7, e);
        assert!(
            r.as_ref().is_err_and(|m| m.contains(why)),
            "{st:?} in {e:?}: {r:?}, expected an error naming {why}"
        );
    }
}

/// Which waiter would be granted but for the core (plain guards, a reclaim): the head writer
/// when nobody else holds the page, readers up to the first writer while no writer holds it.
#[test]
fn ready_but_for_core_follows_the_grant_rules() {
    use Access::{Read, Write};
    let st = state(&[], &[(1, Write), (2, Read)], &[]);
    assert!(st.ready_but_for_core(1));
    assert!(
        !st.ready_but_for_core(2),
        "a reader behind a waiting writer"
    );
    let st = state(&[(0, Read)], &[(1, Write)], &[]);
    assert!(!st.ready_but_for_core(1), "a writer beside a reader");
    let st = state(&[(0, Read)], &[(0, Write)], &[]);
    assert!(st.ready_but_for_core(0), "a sole reader upgrading");
    let st = state(&[(0, Read)], &[(1, Read), (2, Read)], &[]);
    assert!(st.ready_but_for_core(1) && st.ready_but_for_core(2));
    let st = state(&[(0, Write)], &[(1, Read)], &[]);
    assert!(!st.ready_but_for_core(1), "a reader beside a writer");
    assert!(!st.ready_but_for_core(3), "not waiting");
}

/// `grant_ready` grants nothing while the core stands in the way (the page absent, being
/// reclaimed, written by a plain guard, or shared copy-on-write for a writer), and reports
/// that only the core blocks the head.
#[test]
fn grant_ready_respects_the_core() {
    use Access::{Read, Write};
    let e = EntryWord::resident(3, 0);
    let blocked = [
        (Read, EntryWord(0)),
        (Read, e.with(EntryWord::RECLAIMING, true)),
        (Read, e.with(EntryWord::WRITER, true)),
        (Write, EntryWord::resident(3, 1)),
        (Write, e.with(EntryWord::COW, true)),
    ];
    for (want, e) in blocked {
        let mut st = state(&[], &[(1, want)], &[]);
        assert!(
            st.grant_ready(e),
            "{want:?} in {e:?}: not blocked by the core"
        );
        assert_eq!(st.holders, [], "{want:?} granted in {e:?}");
    }
    let mut st = state(&[], &[(1, Read), (2, Read), (3, Write)], &[]);
    assert!(!st.grant_ready(e));
    assert_eq!(st.holders, [(1, Read), (2, Read)]);
    assert_eq!(st.waiters, [(3, Write)]);
}
