//! Scenarios written for the semantic mutants that C25-C35 left alive (`bench/semantic-mutants/`,
//! SPEC.md §10): each plays the window its mutant's table row names, and each fails with that
//! mutant applied (under loom at bound 3, and where said under shuttle too).

use crate::{
    anonymous, assert_arbitration_idle, assert_conserved, assert_settled, initial, open, pool, put,
    read, value, write, Store,
};
use crate::{A, B, C, PAGE};
use pagecore::internals::sync::thread;
use pagecore::{Access, Error, Pages};
use std::time::Duration;

/// A pool of `frames` frames whose waits all time out at once (under loom a timed wait is an
/// immediate time-out anyway): every wait a scenario's threads may meet ends in `Busy`.
fn pool_without_waits(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(Some(Duration::ZERO))
        .swap_slots(64)
        .build()
        .expect("valid pool")
}

/// The `u64` a read guard shows.
fn shown(g: &[u8]) -> u64 {
    u64::from_le_bytes(g[..8].try_into().unwrap())
}

/// C36 a break that a reader of its proxy overtook, then the shared frame reclaimed: X0
/// (anonymous, 5) is copied to Y, so X0 is a proxy of the frozen layer L's frame, already hit
/// three times (its `FREQ` count saturated). Two frames. A thread R reads X0 while the main thread writes 6 into it (a
/// break) and a thread C faults B0 of a file object. R's pin and unpin may both fall between
/// the break's last look at X0's entry and its publishing CAS, leaving the word as it was (an
/// ABA): the CAS then succeeds on the word R's unpin wrote, and only its Acquire orders R's read
/// of the shared frame before the break's Release unpins of L's page, which C's reclaim of that
/// frame (now unpinned: Y has no proxy) acquires before it refills the frame with B0. (The
/// breaker's own later pin of X0 would acquire R's unpin through the release sequence: the
/// refill must come from another thread.) Whatever the interleaving: R reads 5 or 6, B0 its
/// own value, X0 6 and Y0 5 after; census; nothing pinned; every frame and swap slot freed.
pub fn c36_reclaim_after_a_break_a_proxy_reader_overtook() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    for _ in 0..3 {
        assert_eq!(read(&x, 0).unwrap().0, 5); // hits on X0's proxy: FREQ saturated at 3
    }
    let r = {
        let x = x.clone();
        thread::spawn(move || read(&x, 0).unwrap().0)
    };
    let c = {
        let b = b.clone();
        thread::spawn(move || read(&b, 0).unwrap().0)
    };
    write(&x, 0, 6).unwrap();
    let vb = c.join().unwrap();
    let vr = r.join().unwrap();
    assert!(vr == 5 || vr == 6, "C36: the reader of X0 saw {vr}");
    assert_eq!(vb, initial(B, 0), "C36: B0");
    assert_eq!(read(&x, 0).unwrap().0, 6, "C36: X0");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C36: the copy lost its snapshot");
    assert_settled(&pages, "C36");
    drop((x, y, b));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C36: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C36: swap slots outlived the objects");
}

/// C37 a read guard on a proxy that a break overtook, held across a fault that needs a frame:
/// X0 (anonymous, 5) is copied to Y (X0 a proxy of the frozen layer's frame, at the queue head);
/// C0 of a file object fills the second of three frames. A thread writes 6 into X0 (a break)
/// while the main thread takes a read guard on X0 and, holding it, faults B0 of a third object.
/// A guard taken after the break's look at the proxy must still keep the break from publishing
/// (its publishing CAS re-checks the pins): published under the guard, the guard's pin moved to
/// the private frame's entry, the break dropped the layer's pins, and B0's fault reclaimed the
/// shared frame and refilled it while the guard still read it. Whatever the interleaving: the
/// guard shows 5 or 6 and the same before and after the fault; B0 right; X0 6 and Y0 5 after;
/// census; nothing pinned; every frame and swap slot freed once the objects go.
pub fn c37_read_guard_on_a_proxy_across_a_fault() {
    let pages = pool(3);
    let (x, swap) = anonymous(&pages, 1, 8);
    let (sb, sc) = (Store::new(1, B), Store::new(1, C));
    let (b, c) = (open(&pages, &sb, 1), open(&pages, &sc, 1));
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    assert_eq!(read(&c, 0).unwrap().0, initial(C, 0)); // the queue: X's frozen frame, C0
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 6).unwrap())
    };
    let g = x.read(0).unwrap();
    let before = shown(&g);
    let vb = read(&b, 0).unwrap().0;
    let after = shown(&g);
    drop(g);
    t.join().unwrap();
    assert!(before == 5 || before == 6, "C37: the guard showed {before}");
    assert_eq!(before, after, "C37: the frame under a read guard changed");
    assert_eq!(vb, initial(B, 0), "C37: B0");
    assert_eq!(read(&x, 0).unwrap().0, 6, "C37: X0");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C37: the copy lost its snapshot");
    assert_settled(&pages, "C37");
    drop((x, y, b, c));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C37: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C37: swap slots outlived the objects");
}

/// C38 a break whose wait for a reader of its proxy times out: a pool whose waits all time out
/// at once; X0 (anonymous, 5) copied to Y. A thread reads X0 while the main thread writes 6 into
/// it. A read pin taken between the break's look at the proxy and its publishing CAS makes the
/// CAS refuse; the break waits for it, times out, and must give back its frame and its read pin
/// on the layer's page (left behind, the layer's page stays pinned for good). Whatever the
/// interleaving: the read gives 5 or 6 or fails `Busy`, the write succeeds or fails `Busy`; X0
/// reads what the write's outcome says, Y0 5; census; nothing pinned; every frame and swap slot
/// freed once both objects go.
pub fn c38_break_timing_out_on_a_reader_of_its_proxy() {
    let pages = pool_without_waits(3);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || read(&x, 0).map(|(v, _)| v))
    };
    let w = write(&x, 0, 6);
    match t.join().unwrap() {
        Ok(v) => assert!(v == 5 || v == 6, "C38: the reader of X0 saw {v}"),
        Err(Error::Busy { .. }) => {}
        Err(e) => panic!("C38: the read failed with {e:?}"),
    }
    let vx = match w {
        Ok(()) => 6,
        Err(Error::Busy { .. }) => 5,
        Err(e) => panic!("C38: the write failed with {e:?}"),
    };
    assert_eq!(read(&x, 0).unwrap().0, vx, "C38: X0");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C38: the copy lost its snapshot");
    assert_settled(&pages, "C38");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C38: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C38: swap slots outlived the objects");
}

/// C39 two writers of a proxy and its reader's unpin: X0 (anonymous, 5) copied to Y; the main
/// thread holds a read guard on X0 while two threads write 8 and 9 into it. A writer that finds
/// the guard's pin waits on X0's entry (`WAIT_PAGE`). The other may start its break only once
/// the guard is dropped, between the unpin's decrement (which saw the waiter bit) and its
/// wake-up: its publishing CAS then clears the waiter bit, the unpin's wake-up finds none, and
/// only the break's own wake-up of the proxy's waiters reaches the parked writer (no wait bound:
/// a lost wake-up is a deadlock). Whatever the interleaving: the guard reads 5; both writes
/// succeed, X0 ends 8 or 9; Y0 5; census; nothing pinned; every frame and swap slot freed.
pub fn c39_two_writers_of_a_proxy_and_its_readers_unpin() {
    let pages = pool(3);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let g = x.read(0).unwrap();
    let ws: Vec<_> = [8u64, 9]
        .into_iter()
        .map(|v| {
            let x = x.clone();
            thread::spawn(move || write(&x, 0, v).unwrap())
        })
        .collect();
    let seen = shown(&g);
    drop(g);
    for w in ws {
        w.join().unwrap();
    }
    assert_eq!(seen, 5, "C39: the guard saw a write");
    let vx = read(&x, 0).unwrap().0;
    assert!(vx == 8 || vx == 9, "C39: X0 holds {vx}");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C39: the copy lost its snapshot");
    assert_settled(&pages, "C39");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C39: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C39: swap slots outlived the objects");
}

/// C40 a break whose layer page is reclaimed and faulted in again elsewhere before the break
/// pins it: X0 (anonymous, 5) copied to Y (X0 a proxy of the frozen layer L's frame, at the
/// queue head), C0 of a file object in the second of two frames. The main thread writes 6 into
/// X0 while a thread faults B0 (reclaiming the shared frame: X0's proxy unmapped, L's page paged
/// out) and then Y0 (L's page faulted in again, into C0's frame). If all of that falls between
/// the break's look at the proxy and its read pin on L's page, the pin lands on an entry naming
/// another frame: the break must give it back and look again (X0 is gone: it faults X0 in
/// again and breaks that). It must not copy on from the old frame, which it no longer pins:
/// B0's frame by then, which the break's own `obtain` may hand it as the frame to copy into.
/// Whatever the interleaving: B0 right, Y0 5, X0 6 after; census;
/// nothing pinned; every frame and swap slot freed once the objects go (a pin left on L's page
/// would keep L's close waiting forever).
pub fn c40_break_vs_reclaim_and_refault_of_its_layer_page() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    let (sb, sc) = (Store::new(1, B), Store::new(1, C));
    let (b, c) = (open(&pages, &sb, 1), open(&pages, &sc, 1));
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    assert_eq!(read(&c, 0).unwrap().0, initial(C, 0)); // the queue: L's frame, C0
    let t = {
        let (b, y) = (b.clone(), y.clone());
        thread::spawn(move || (read(&b, 0).unwrap().0, read(&y, 0).unwrap().0))
    };
    write(&x, 0, 6).unwrap();
    let (vb, vy) = t.join().unwrap();
    assert_eq!((vb, vy), (initial(B, 0), 5), "C40: B0, Y0");
    assert_eq!(read(&x, 0).unwrap().0, 6, "C40: X0");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C40: the copy lost its snapshot");
    assert_settled(&pages, "C40");
    drop((x, y, b, c));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C40: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C40: swap slots outlived the objects");
}

/// C41 an out-of-line client's write grant made in the slow path while an inline client's
/// grant and release on the fast path leave the entry word as they found it: A0 is resident,
/// written (5: `DIRTY`) and hit three times (`FREQ` saturated), the two fields a write grant sets; five clients are registered, so client 4 has no inline slot
/// and always requests through the shard-locked update, which loads the entry (Acquire), then
/// CASes it. Client 0 (on a thread) takes a write grant on the fast path, adds one, and
/// releases, while client 4 (the main thread) does the same. If client 0's grant and release
/// fall between client 4's load and its CAS, the word is back as it was (an ABA) and the CAS
/// succeeds on the value client 0's release wrote: only its Acquire orders client 0's write
/// before client 4's. No write is lost (A0 ends at 7); arbitration idle; nothing pinned.
pub fn c41_slow_write_grant_after_a_fast_grant_and_release() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    write(&a, 0, 5).unwrap(); // DIRTY, which a write grant would set
    for _ in 0..3 {
        assert_eq!(read(&a, 0).unwrap().0, 5); // hits: FREQ saturated at 3
    }
    let mut cs: Vec<_> = (0..5).map(|_| a.register().unwrap()).collect();
    let c4 = cs.pop().unwrap();
    assert_eq!(c4.id(), 4);
    let c0 = cs.remove(0);
    let t = thread::spawn(move || {
        let mut g = c0.request(0, Access::Write).unwrap();
        let v = value(&g);
        put(&mut g, v + 1);
    });
    {
        let mut g = c4.request(0, Access::Write).unwrap();
        let v = value(&g);
        put(&mut g, v + 1);
    }
    t.join().unwrap();
    assert_eq!(read(&a, 0).unwrap().0, 7, "C41: a write was lost");
    drop(cs);
    assert_arbitration_idle(&a);
    assert_settled(&pages, "C41");
}

/// C42 a hit on a layer page that a collapse moved up just after the layer filled it: X0
/// (anonymous, 5) is copied to Y (the frozen layer L owns the frame; Y0 read once, so Y has its
/// leaf and a proxy), then both frames are taken by another object, paging L0 out to swap (X0's
/// and Y0's proxies unmapped), and that object dropped. A thread R reads Y0 while the main thread
/// reads X0 (a miss resolved in L: L0 filled from its slot into a frame, X0 its proxy), drops X
/// (L has one child left, Y, whose entry is empty) and compacts Y: L's entry moves up into Y0
/// as it is, no byte copied. R's read may come after all of that and hit Y0's entry on its
/// lock-free fast path: only the moving store's Release (which R's pin acquires) orders the
/// fill's bytes, written on the main thread, before R's read of the frame. Whatever the
/// interleaving: R reads 5; Y0 5 after, and the chain is empty (depth 0) after a second
/// compaction; census; nothing pinned; every frame and swap slot freed once Y goes.
pub fn c42_hit_on_a_layer_page_moved_up_after_its_fill() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    assert_eq!(read(&y, 0).unwrap().0, 5); // Y's leaf, and a proxy (unmapped below)
    let (b, b_swap) = anonymous(&pages, 2, 8);
    write(&b, 0, 3).unwrap();
    write(&b, 1, 4).unwrap();
    drop(b);
    assert_eq!(swap.in_use(), 1, "C42: L0 was not paged out");
    let r = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).unwrap().0)
    };
    assert_eq!(read(&x, 0).unwrap().0, 5, "C42: X0");
    drop(x);
    y.compact();
    assert_eq!(r.join().unwrap(), 5, "C42: the reader of Y0");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C42: Y0");
    assert_eq!(y.compact(), 0, "C42: the layer did not collapse");
    assert_settled(&pages, "C42");
    drop(y);
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C42: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C42: swap slots outlived the objects");
    assert_eq!(b_swap.in_use(), 0, "C42: B's swap slots outlived it");
}

/// C49 a reclaim vs a proxy whose last client holder is releasing while a request waits on it:
/// X0 (anonymous, 5) is copied to Y, so X0 is a proxy of the frozen layer's frame; two frames,
/// the other held by a guard on C0. Client 0 of X holds X0 for reading; client 1's write
/// request queues behind it (`ARB_SLOW` on X0's entry). A thread R releases client 0's grant:
/// the release's fast half clears its hold bits, and its slow half then settles the waiter
/// under the shard lock; between the two, X0's entry has no pin and no holder, only `ARB_SLOW`.
/// A thread T meanwhile faults B0, whose reclaim looks at the layer's frame: a proxy with
/// arbitration state must not be unmapped (`unmap_locked`), or the slow half settles a waiter
/// on an entry that names no frame any more (cargo-mutants' survivor at frames/reclaim.rs
/// :226, `PINNED_BITS | ARB_SLOW & RECLAIMING`: the arbitration check, run once R is done while
/// the request still waits, finds `ARB_SLOW` gone from an emptied entry whose side word holds
/// the waiter). The main thread then withdraws client 1's request and lets C0 go. Whatever the
/// interleaving: the waiter is queued on an entry that agrees with its side word; B0 right; X0
/// and Y0 read 5; arbitration idle; census; nothing pinned.
pub fn c49_reclaim_vs_a_proxy_releasing_with_a_waiter() {
    let pages = pool(2);
    let (x, _swap) = anonymous(&pages, 1, 8);
    let (sb, sc) = (Store::new(1, B), Store::new(1, C));
    let (b, c) = (open(&pages, &sb, 1), open(&pages, &sc, 1));
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let gc = c.read(0).unwrap();
    let c0 = std::sync::Arc::new(x.register().unwrap());
    let c1 = x.register().unwrap();
    let g0 = pagecore::OwnedGrant::request(&c0, 0, Access::Read).unwrap();
    let p1 = c1.enqueue(0, Access::Write).unwrap();
    let r = thread::spawn(move || drop(g0));
    let t = {
        let b = b.clone();
        thread::spawn(move || read(&b, 0).unwrap().0)
    };
    r.join().unwrap();
    // The waiter is still queued on X0: its entry must still name the layer's frame with
    // `ARB_SLOW` (I9-I12), whatever T's reclaim did meanwhile.
    let census = x
        .arbitration()
        .unwrap_or_else(|e| panic!("C49: arbitration broken while a request waits: {e}"));
    assert_eq!(census.waiting, 1, "C49: {census:?}");
    drop(p1);
    drop(gc);
    assert_eq!(t.join().unwrap(), initial(B, 0), "C49: B0");
    assert_eq!(read(&x, 0).unwrap().0, 5, "C49: X0");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C49: Y0");
    drop((c0, c1));
    crate::assert_arbitration_idle(&x);
    assert_settled(&pages, "C49");
}
