//! Scenarios written for semantic mutants (`bench/semantic-mutants/`, SPEC.md §10): windows
//! that no earlier scenario reached, each killing a weakened publication under loom (the frame
//! bytes are tracked cells: an access not ordered after the previous conflicting one fails the
//! model).

use crate::{
    anonymous, assert_arbitration_idle, assert_conserved, initial, open, pool, put, read, value,
    write, Store, A, B, C,
};
use pagecore::internals::sync::atomic::Ordering::SeqCst;
use pagecore::internals::sync::thread;
use pagecore::{Access, Error};

/// C25 a reclaim takes a page that a reader hit between the reclaim's look and its take: A0 is
/// resident and already hit three times (its `FREQ` count saturated), so a further hit leaves its
/// entry word as it was once the reader unpins (same pins, same count). A thread reads A0 while the main
/// thread's fault on B0 reclaims A0's frame (one frame, FIFO). The take's CAS may succeed on the
/// word the reader's unpin wrote, equal to the one the reclaim first loaded: only the CAS's own
/// Acquire orders the reader's access before the refill of the frame (the mutant that weakens
/// it to Relaxed fails loom's access tracking). Values right, census conserved.
pub fn c25_reclaim_vs_a_hit_that_leaves_the_entry_as_it_was() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0)); // faulted in
    for _ in 0..3 {
        assert_eq!(read(&a, 0).unwrap().0, initial(A, 0)); // hits: FREQ saturated at 3
    }
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    let vb = read(&b, 0).unwrap().0;
    let va = t.join().unwrap();
    assert_eq!((va, vb), (initial(A, 0), initial(B, 0)));
    let c = assert_conserved(&pages);
    assert_eq!((c.resident, c.pinned), (1, 0));
}

/// C26 two faults on an absent page whose AccessMap leaf already exists: A1 was faulted in and
/// out again, so A0's entry is in a leaf published before the threads start. One thread faults
/// A0 and fills it; the other either joins the fill (ordered by the fill record) or finds A0
/// resident and pins it on the hit path, where only the publication's Release CAS
/// (`make_resident`) orders the filled bytes before its read (with a fresh leaf, the leaf's own
/// publication, made after the fill, hides a weakened one). Exactly one fill, both read A0.
pub fn c26_double_fault_in_an_existing_leaf() {
    let pages = pool(2);
    let s = Store::new(2, A);
    let a = open(&pages, &s, 2);
    assert_eq!(read(&a, 1).unwrap().0, initial(A, 1)); // allocates the leaf of A0 and A1
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap())
    };
    let (v1, f1) = read(&a, 0).unwrap();
    let (v2, f2) = t.join().unwrap();
    assert_eq!((v1, v2), (initial(A, 0), initial(A, 0)));
    assert_eq!(s.fills.load(SeqCst), 2, "A0 was filled more than once");
    assert_eq!(f1, f2, "the two faults got different frames");
    let c = assert_conserved(&pages);
    assert_eq!((c.resident, c.pinned), (2, 0));
}

/// C27 a read fault and a write fault on the same absent page: whichever fills, the other may
/// join the fill; a write fault that joined holds a read pin and upgrades it once the reader
/// has unpinned (`try_upgrade`), and only the upgrade's Acquire orders the reader's access
/// before the write. The reader sees the stored value or the written one, the write lands.
pub fn c27_read_and_write_faults_on_an_absent_page() {
    let pages = pool(2);
    let s = Store::new(2, A);
    let a = open(&pages, &s, 2);
    assert_eq!(read(&a, 1).unwrap().0, initial(A, 1)); // the leaf exists (see C26)
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    write(&a, 0, 9).unwrap();
    let v = t.join().unwrap();
    assert!(v == initial(A, 0) || v == 9, "reader saw {v}");
    assert_eq!(read(&a, 0).unwrap().0, 9);
    let c = assert_conserved(&pages);
    assert_eq!(c.pinned, 0);
}

/// C28 a failed write-back in reclaim vs a writer of the page: A0 is dirty (7) in the only
/// frame and its store fails write-backs (EIO). The main thread's fault on B0 reclaims A0, whose
/// write-back fails: the frame goes back to `Resident` (`revert`) and the fault reports the
/// error. Meanwhile a thread writes 8 into A0: before the reclaim, after it (pinning the
/// reverted entry on the fast path, where only the revert's Release orders the write-back's
/// read of the frame before the write), or waiting for it. The write is never lost: A0 reads 8,
/// a sync fails until the store recovers, then stores 8.
pub fn c28_failed_writeback_vs_a_writer() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    write(&a, 0, 7).unwrap();
    sa.fail_flush.store(5, SeqCst);
    let t = {
        let a = a.clone();
        thread::spawn(move || write(&a, 0, 8).unwrap())
    };
    let rb = read(&b, 0);
    t.join().unwrap();
    assert!(
        matches!(rb, Err(Error::WriteBack { .. })),
        "reclaim of the only frame should report the write-back error, got {rb:?}"
    );
    assert_eq!(read(&a, 0).unwrap().0, 8, "the write was lost");
    assert!(a.sync().is_err(), "sync must report the failing write-back");
    sa.fail_flush.store(0, SeqCst);
    a.sync().expect("a later sync succeeds");
    assert_eq!(sa.get(0), 8);
    let c = assert_conserved(&pages);
    assert_eq!((c.pinned, c.dirty), (0, 0));
}

/// C29 a reclaim unmaps a copy-on-write proxy whose reader has just left: X0 (7, written back by
/// the copy) is in the only frame, owned by the frozen layer below X and its copy Y, and Y0 is a
/// proxy of it. A thread reads Y0 (a hit on the proxy) while the main thread faults B0, which
/// reclaims the frame: the owner's entry is pinned only by proxies, so the reclaim unmaps Y0's
/// (once unpinned) and refills the frame with B0. Y0 was hit three times before (its count saturated), so the reader's hit and
/// unpin leave its word as it was: if they fall between the unmapping's first (Acquire) load and
/// its CAS, only the CAS's own Acquire orders the reader's access before the refill. Y0 reads 7
/// (through the proxy, or faulted in again), B0 its own value; census conserved.
pub fn c29_reclaim_unmaps_a_proxy_its_reader_just_left() {
    let pages = pool(1);
    let (sx, sb) = (Store::new(1, A), Store::new(1, B));
    let (x, b) = (open(&pages, &sx, 1), open(&pages, &sb, 1));
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    assert_eq!(read(&y, 0).unwrap().0, 7); // Y0: a proxy of the layer's frame
    for _ in 0..3 {
        assert_eq!(read(&y, 0).unwrap().0, 7); // hits: FREQ saturated (see C25)
    }
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).unwrap().0)
    };
    let vb = read(&b, 0).unwrap().0;
    let vy = t.join().unwrap();
    assert_eq!((vy, vb), (7, initial(B, 0)));
    let c = assert_conserved(&pages);
    assert_eq!(c.pinned, 0);
    drop((x, y));
}

/// C30 a client's write grant after another's release, on the fast path, with nothing else
/// between them: A0 is resident; clients 0 and 1 each request write access to it (client 0 on a
/// thread) and add one to what they see. The second grant is either made by the release itself
/// (a hand-off, ordered by the shard lock) or taken on the fast path after it, where only the
/// grant's Acquire CAS (paired with the inline release's Release) orders the first writer's
/// access before the second's. No write is lost: A0 ends at the stored value plus two.
pub fn c30_write_grants_on_the_fast_path() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    let (c0, c1) = (a.register().unwrap(), a.register().unwrap());
    let t = thread::spawn(move || {
        let mut g = c0.request(0, Access::Write).unwrap();
        let v = value(&g);
        put(&mut g, v + 1);
    });
    {
        let mut g = c1.request(0, Access::Write).unwrap();
        let v = value(&g);
        put(&mut g, v + 1);
    }
    t.join().unwrap();
    assert_eq!(
        read(&a, 0).unwrap().0,
        initial(A, 0) + 2,
        "a write was lost"
    );
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// C31 a copy read at once while a writer of its source may still run: X0 (anonymous) holds 5;
/// a thread writes 6 into X0 while the main thread copies X and reads the copy before joining
/// the writer (C6 joins first). A write that ended before the copy marked X0 is in the snapshot,
/// and only the marking CAS's Acquire (paired with the writer's Release unpin) orders it before
/// the main thread's read of the frozen frame. The snapshot holds 5 or 6 and keeps it; X ends at
/// 6; census conserved.
pub fn c31_copy_read_while_its_source_is_written() {
    let pages = pool(3);
    let (x, _swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 6).unwrap())
    };
    let y = x.copy().unwrap();
    let vy = read(&y, 0).unwrap().0;
    t.join().unwrap();
    assert!(vy == 5 || vy == 6, "C31: the snapshot holds {vy}");
    assert_eq!(read(&y, 0).unwrap().0, vy, "C31: the snapshot changed");
    assert_eq!(read(&x, 0).unwrap().0, 6);
    assert_conserved(&pages);
    drop((x, y));
}

/// C32 a read grant after a downgrade, on the fast path: client 0 holds a write grant on A0 and
/// writes 5 into it, then downgrades to a read grant, while client 1 (on a thread) requests read
/// access. Client 1 either waits for the downgrade (a hand-off under the shard lock) or takes
/// its grant on the fast path after it, where only the downgrade's Release CAS orders client 0's
/// write before client 1's read. Both read 5; arbitration is idle after.
pub fn c32_read_grant_after_a_downgrade() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    let (c0, c1) = (a.register().unwrap(), a.register().unwrap());
    let mut g0 = c0.request(0, Access::Write).unwrap();
    put(&mut g0, 5);
    let t = thread::spawn(move || {
        let g = c1.request(0, Access::Read).unwrap();
        value(&g)
    });
    g0.downgrade().unwrap();
    assert_eq!(value(&g0), 5);
    drop(g0);
    assert_eq!(t.join().unwrap(), 5, "C32: the reader missed the write");
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// C33 a page written back by a reclaim and faulted in again at once through another frame:
/// A0 is dirty (7) at the queue head of a two-frame pool, C0 (clean) in the other frame. The
/// main thread's fault on B0 reclaims A0 (writing 7 back) while a thread reads A0: it pins it
/// first, waits for the reclaim, or finds the entry emptied and faults A0 in again, reclaiming
/// C0's frame (with one frame, S6, the refill would wait for the reclaimer's own frame and the
/// lists lock would order it). Only the emptying swap's Release orders the write-back before that
/// refill reads the store (the test store is a tracked cell under loom). The thread reads 7.
pub fn c33_write_back_then_refill_through_another_frame() {
    let pages = pool(2);
    let (sa, sb, sc) = (Store::new(1, A), Store::new(1, B), Store::new(1, C));
    let (a, b, c) = (
        open(&pages, &sa, 1),
        open(&pages, &sb, 1),
        open(&pages, &sc, 1),
    );
    write(&a, 0, 7).unwrap(); // queue head, dirty
    assert_eq!(read(&c, 0).unwrap().0, initial(C, 0));
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    assert_eq!(read(&b, 0).unwrap().0, initial(B, 0));
    assert_eq!(
        t.join().unwrap(),
        7,
        "C33: the refill lost the written-back value"
    );
    assert_conserved(&pages);
}

/// C34 close of a copy vs a fault that makes a copy-on-write proxy: X0 (anonymous, 5) is copied
/// to Y; a thread reads Y0 (resolving it in the frozen layer and publishing a proxy with the
/// layer page's pin) while the main thread closes Y. The fault reads 5 or fails with `Closed`; a
/// proxy must not be published once close has begun (its pin on the layer's page would outlive
/// Y): once X and Y are gone every frame is free and no swap slot is left.
pub fn c34_close_vs_a_proxy_fault() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).map(|(v, _)| v))
    };
    let closed = y.close();
    match t.join().unwrap() {
        Ok(v) => assert_eq!(v, 5, "C34: the copy read {v}"),
        Err(Error::Closed) => {}
        Err(e) => panic!("C34: a fault racing close failed with {e:?}"),
    }
    assert!(closed.is_ok(), "C34: close failed: {closed:?}");
    assert_eq!(read(&x, 0).unwrap().0, 5);
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C34: a frame outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C34: swap slots outlived the objects");
}
