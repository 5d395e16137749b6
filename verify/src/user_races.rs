//! Scenarios of races a user found (issue 17) that no earlier scenario reached: each reproduces
//! its bug on the code before the fix, under loom and shuttle.

use crate::{assert_settled, open, pool, read, write, Store, A, B};
use pagecore::internals::sync::atomic::Ordering::SeqCst;
use pagecore::internals::sync::thread;
use pagecore::Error;

/// EPERM: an unusual write-back error (not EIO, ENOSPC or EDQUOT), recorded on the page.
const EPERM: i32 = 1;

/// C23 an unusual write-back failure in reclaim vs another reclaim of the same page: two frames
/// hold A0 (dirty, 7) at the queue head and B0. A thread's fault on B1 reclaims A0 and its
/// write-back fails with EPERM, an unusual error: the frame goes back to `Resident` (at the
/// queue tail) and the error is to be recorded on A0. Meanwhile the main thread faults B2 (which
/// reclaims B0) then B0 again, which reclaims A0 — now written back with success. The error must
/// be recorded on A0 only while A0 is still resident in the frame whose write-back failed (and
/// not being reclaimed): recorded on an emptied entry it broke the page for good (every later
/// fault failed "AccessMap entry of page 0 already taken", I11 reported a record no page names);
/// recorded while the other reclaim ran, that reclaim's success dropped the record with the
/// entry. Whatever the interleaving: the failed fault reports EPERM; A reads 7; A's arbitration
/// state is consistent (I9-I12); a sync succeeds (after reporting the recorded failure once) and
/// clears any error; the store holds 7.
pub fn c23_unusual_writeback_failure_vs_reclaim() {
    let pages = pool(2);
    let (sa, sb) = (Store::new(1, A), Store::new(3, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 3));
    write(&a, 0, 7).unwrap();
    read(&b, 0).unwrap(); // the queue: A0, B0
    sa.fail_next_flush.store(EPERM, SeqCst);
    let t = {
        let b = b.clone();
        thread::spawn(move || read(&b, 1).map(|(v, _)| v))
    };
    let r2 = read(&b, 2);
    let r0 = read(&b, 0);
    let r1 = t.join().unwrap();
    for (p, r) in [(0, r0.map(|(v, _)| v)), (1, r1), (2, r2.map(|(v, _)| v))] {
        match r {
            Ok(v) => assert_eq!(v, B + p, "C23: B{p} read a wrong value"),
            Err(Error::WriteBack { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(EPERM), "C23: B{p}'s fault")
            }
            Err(e) => panic!("C23: the fault on B{p} failed with {e}"),
        }
    }
    if let Err(e) = a.arbitration() {
        panic!("C23: A's arbitration state is broken: {e}");
    }
    assert_eq!(read(&a, 0).expect("C23: A0 broken").0, 7, "C23: lost write");
    // The first sync may report the failure a reclaim recorded (once, as fsync does).
    match a.sync() {
        Ok(()) => {}
        Err(Error::WriteBack { source, .. }) if source.raw_os_error() == Some(EPERM) => a
            .sync()
            .expect("C23: a second sync after the store recovered"),
        Err(e) => panic!("C23: sync failed with {e}"),
    }
    assert!(a.page_error(0).unwrap().is_none(), "C23: error left");
    assert_eq!(sa.get(0), 7, "C23: the store lost the write");
    a.arbitration().expect("C23: arbitration after sync");
    assert_settled(&pages, "C23");
}

/// C24 a compaction racing a fault that a frozen layer fills from swap: X (anonymous; X0 = 1,
/// X1 = 11) is copied to Y, Y0 written (2), X dropped, and every frame paged out (two faults of a
/// third object), so Y alone reads the frozen layer L, which holds 1 and 11 in swap slots. A
/// thread faults Y1, which resolves to L: L checks it holds page 1 (under its fill-shard lock),
/// then fills a frame from its slot; meanwhile the main thread compacts Y, collapsing L into Y.
/// A collapse must leave a page whose fill is in flight in the layer (slot and all): one that
/// moved the slot to Y made L's fill fail ("frozen layer asked for page 1, which it does not
/// hold"), and Y's read with it. Y1 reads 11 and Y0 2 whatever the interleaving; a compaction
/// after empties the chain (depth 0); census; every frame and swap slot freed once all go.
pub fn c24_compaction_vs_layer_fill() {
    let pages = pool(2);
    let (x, swap) = crate::anonymous(&pages, 2, 8);
    write(&x, 0, 1).unwrap();
    write(&x, 1, 11).unwrap();
    let y = x.copy().unwrap();
    write(&y, 0, 2).unwrap();
    drop(x);
    let (b, b_swap) = crate::anonymous(&pages, 2, 8);
    write(&b, 0, 3).unwrap();
    write(&b, 1, 4).unwrap();
    drop(b);
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 1).map(|(v, _)| v))
    };
    y.compact();
    match t.join().unwrap() {
        Ok(v) => assert_eq!(v, 11, "C24: Y1 read a wrong value"),
        Err(e) => panic!("C24: reading Y1 failed: {e}"),
    }
    assert_eq!(y.compact(), 0, "C24: the layer did not collapse");
    assert_eq!(read(&y, 0).unwrap().0, 2, "C24: Y0");
    assert_eq!(read(&y, 1).unwrap().0, 11, "C24: Y1 after the collapse");
    assert_settled(&pages, "C24");
    drop(y);
    let c = crate::assert_conserved(&pages);
    assert_eq!(c.free, 2, "C24: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C24: swap slots outlived the objects");
    assert_eq!(b_swap.in_use(), 0, "C24: B's swap slots outlived it");
}

/// C35 two collapses of one chain, one level apart: X (anonymous; X0 = 1) is copied to A, X1
/// written (11), X copied to B, A and B dropped: X reads through L2 (holding 11) over L1
/// (holding 1), and each layer has one reader. Two threads compact X. One collapses L2 into X
/// and, L2 emptied, unlinks it (X now reads L1); the other, its collapse of X skipped (the
/// first holds X's copy lock), walks on to L2 and collapses L1 into it. The second collapse
/// must re-check, under the locks that order the two, that L1 is still L2's backing: checked
/// before them, it moved L1's pages into the unlinked L2 and took X's link to L1 away with
/// them, so X0 read zeros (and a fill holding a proxy into the orphaned layer waited for its
/// own pin when the layer closed). Found by the random programs (seed 53), and on real threads
/// by `tests/tests/user_bugs.rs` `reads_never_fail_while_copies_come_and_go`. Whatever the
/// interleaving: X0 reads 1, X1 11; a compaction after empties the chain; census; every frame
/// and swap slot is freed once X goes.
pub fn c35_collapse_into_a_layer_being_unlinked() {
    let pages = pool(2);
    let (x, swap) = crate::anonymous(&pages, 2, 8);
    write(&x, 0, 1).unwrap();
    let a = x.copy().unwrap();
    write(&x, 1, 11).unwrap();
    let b = x.copy().unwrap();
    drop(a);
    drop(b);
    let t = {
        let x = x.clone();
        thread::spawn(move || {
            x.compact();
        })
    };
    x.compact();
    t.join().unwrap();
    assert_eq!(read(&x, 0).unwrap().0, 1, "C35: X0 lost its content");
    assert_eq!(read(&x, 1).unwrap().0, 11, "C35: X1");
    assert_eq!(x.compact(), 0, "C35: the chain did not empty");
    assert_settled(&pages, "C35");
    drop(x);
    let c = crate::assert_conserved(&pages);
    assert_eq!(c.free, 2, "C35: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C35: swap slots outlived the objects");
}

/// C43 an unusual write-back failure in reclaim vs a sync that writes the page back: two frames
/// hold A0 (dirty, 7) at the queue head and B0; A's next write-back fails with EPERM. A thread
/// faults B1, which reclaims A0: its write-back fails, the frame goes back to `Resident` and the
/// error is to be recorded on A0. Meanwhile the main thread syncs A, which read-pins A0 and
/// writes it back — with success once the failure is spent — clearing `DIRTY` and any record.
/// A record made after that success sat on a clean page until a later sync or close visited it;
/// reclaim skipped the page meanwhile, so a pool whose other frames were pinned deadlocked its
/// obtainers (found by the random programs, seed 136: three copy-on-write breaks waiting for a
/// frame). The record must be made only while the page is still dirty. Whatever the
/// interleaving: the fault on B1 reads B1 or reports EPERM; the sync succeeds or reports EPERM;
/// once the store holds 7 (a write-back succeeded), A0 has no error record; and with B1 pinned,
/// a fault of B2 takes A0's frame (after a sync if A0 is still dirty); A reads 7.
pub fn c43_unusual_failure_vs_successful_sync() {
    let pages = pool(2);
    let (sa, sb) = (Store::new(1, A), Store::new(3, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 3));
    write(&a, 0, 7).unwrap();
    read(&b, 0).unwrap(); // the queue: A0, B0
    sa.fail_next_flush.store(EPERM, SeqCst);
    let t = {
        let b = b.clone();
        thread::spawn(move || read(&b, 1).map(|(v, _)| v))
    };
    let synced = a.sync();
    let r1 = t.join().unwrap();
    let eperm = |e: &Error| matches!(e, Error::WriteBack { source, .. } if source.raw_os_error() == Some(EPERM));
    match r1 {
        Ok(v) => assert_eq!(v, B + 1, "C43: B1 read a wrong value"),
        Err(e) => assert!(eperm(&e), "C43: the fault on B1 failed with {e}"),
    }
    if let Err(e) = &synced {
        assert!(eperm(e), "C43: sync failed with {e}");
    }
    if let Err(e) = a.arbitration() {
        panic!("C43: A's arbitration state is broken: {e}");
    }
    if sa.get(0) == 7 {
        assert!(
            a.page_error(0).unwrap().is_none(),
            "C43: A0 was written back but keeps an error record (reclaim skips it for good)"
        );
    } else {
        // A0 is still dirty (the sync's own write-back failed): the next sync writes it back.
        a.sync().expect("C43: a sync after the store recovered");
    }
    {
        let g = b.read(1).expect("C43: B1");
        assert_eq!(
            read(&b, 2).expect("C43: B2 while B1 is pinned").0,
            B + 2,
            "C43: B2"
        );
        drop(g);
    }
    assert_eq!(read(&a, 0).expect("C43: A0").0, 7, "C43: lost write");
    assert_eq!(sa.get(0), 7, "C43: the store lost the write");
    assert!(a.page_error(0).unwrap().is_none(), "C43: error left");
    assert_settled(&pages, "C43");
}
