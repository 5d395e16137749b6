//! Scenarios of races a user found (issue 17) that no earlier scenario reached: each reproduces
//! its bug on the code before the fix, under loom and shuttle.

use crate::{assert_settled, open, pool, read, write, Store, A, B};
use pagecore::sync::atomic::Ordering::SeqCst;
use pagecore::sync::thread;
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
