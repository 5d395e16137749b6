//! Requests awaited as futures (issue 21): the waker hand-off raced against the grant it waits
//! for, and against the drop that withdraws it; and a per-call time-out leaving a joined fill. `Pending`'s `poll` registers the task's waker on
//! the page's arbitration parker under the parker's lock, after re-checking the request
//! (`Parker::poll_park`); every hand-off notifies that parker after dropping the shard lock, and
//! takes the wakers with it.

use crate::{assert_arbitration_idle, assert_settled, open, pool, put, read, value, Store, A, B};
use pagecore::internals::sync::atomic::Ordering::SeqCst;
use pagecore::internals::sync::thread;
use pagecore::Access;
use std::future::Future;
use std::task::{Context, Waker};

/// Runs a future to completion on the backend's executor: loom's and shuttle's `block_on`, whose
/// wakers the checkers see (a lost wake-up is a deadlock they report), or, on real threads, a
/// waker that unparks the thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    #[cfg(pagecore_loom)]
    {
        loom::future::block_on(f)
    }
    #[cfg(all(feature = "shuttle", not(pagecore_loom)))]
    {
        shuttle::future::block_on(f)
    }
    #[cfg(not(any(pagecore_loom, feature = "shuttle")))]
    {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark()
            }
        }
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}

/// C44 a request awaited as a future, woken by the release it waits for: client 0 holds A0 for
/// reading; client 1's write request queues behind it and is awaited on another thread (its poll
/// registers the task's waker after re-checking, under the shard parker's lock) while client 0
/// releases (the hand-off under the shard lock, then the parker's wake-up, which takes the
/// waker). The task is woken and granted alone and adds one; had the wake-up been lost, the
/// checker reports a deadlock. Arbitration idle; nothing pinned.
pub fn c44_awaited_request_vs_the_release_it_waits_for() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let (c0, c1) = (a.register().unwrap(), a.register().unwrap());
    let g = c0.request(0, Access::Read).unwrap();
    let t = thread::spawn(move || {
        let p = c1.enqueue(0, Access::Write).unwrap();
        let mut g = block_on(p).unwrap();
        let v = value(&g);
        put(&mut g, v + 1);
    });
    drop(g);
    t.join().unwrap();
    assert_eq!(
        read(&a, 0).unwrap().0,
        A + 1,
        "C44: the awaited write was lost"
    );
    assert_arbitration_idle(&a);
    assert_settled(&pages, "C44");
}

/// C45 a request future dropped while the grant may be handed to it: client 0 holds A0 for
/// writing; on another thread client 1's read request is polled once (queued and its waker
/// registered, or granted if the release came first) and then dropped, while client 0 releases,
/// whose hand-off may grant the request between the poll and the drop. Either way nothing is left
/// behind: the drop withdraws the request or releases the grant made meanwhile, and client 2's
/// write request is then granted at once without waiting. Arbitration idle; nothing pinned.
pub fn c45_dropped_request_future_vs_the_grant_handed_to_it() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let (c0, c1, c2) = (
        a.register().unwrap(),
        a.register().unwrap(),
        a.register().unwrap(),
    );
    let g = c0.request(0, Access::Write).unwrap();
    let t = thread::spawn(move || {
        let p = c1.enqueue(0, Access::Read).unwrap();
        let mut p = std::pin::pin!(p);
        let mut cx = Context::from_waker(Waker::noop());
        let _ = p.as_mut().poll(&mut cx);
        // Dropped here, polled once: withdrawn, or released if granted meanwhile.
    });
    drop(g);
    t.join().unwrap();
    let g = c2
        .try_request(0, Access::Write)
        .expect("C45: the dropped request left a holder or a waiter behind");
    drop(g);
    assert_arbitration_idle(&a);
    assert_settled(&pages, "C45");
}

/// C46 a fault with a per-call time-out that joined another's fill leaves it at its deadline,
/// racing the fill's publication (issue 21's per-call time-outs; a fresh-eyes user found joined
/// faults waiting out the filler's own bound). The pool's one frame holds B0, which the main
/// thread keeps write-pinned, so a fill of A0 waits for a frame. A thread faults A0 (the pool's
/// bound: unbounded here) while the main thread's `read_timeout` of A0 either joins that fill or
/// starts it, with a time-out of zero: its waits end at once, on every backend. As a joiner it leaves the fill
/// under the shard lock, where the filler reads how many joined before it pre-pins one read pin
/// for each (`Busy`); as the filler it gives up its frame wait (`Exhausted`) and hands the
/// joined thread `Retry`, which then fills. The main thread then lets B0 go. The thread reads A0's
/// value, A0 is filled once, and no pin is leaked (a joiner that left without un-joining leaves
/// the filler's pin for it on A0 for good).
pub fn c46_timed_joiner_leaves_a_fill_vs_its_publication() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    let held = b.write(0).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    match a.read_timeout(0, std::time::Duration::ZERO) {
        Err(pagecore::Error::Busy { page: 0 }) | Err(pagecore::Error::Exhausted { .. }) => {}
        Ok(_) => panic!("C46: A0 filled while the only frame was pinned"),
        Err(e) => panic!("C46: the timed fault failed otherwise: {e:?}"),
    }
    drop(held);
    assert_eq!(t.join().unwrap(), A, "C46: the thread's read of A0");
    assert_eq!(sa.fills.load(SeqCst), 1, "C46: A0 filled more than once");
    assert_settled(&pages, "C46");
}

/// C51 a write request awaited as a future behind a plain read guard, vs the guard's drop: the
/// main thread holds a read guard on A0 (a pin, no client); on another thread client 0's write
/// request on A0 is awaited. The core blocks it on the entry (`Poll::CoreBlocked`: the guard's
/// pin is not the request's own), so its poll registers the task's waker on the frame's page
/// parker (`poll_wait_entry`), which the guard's last unpin notifies; it must not try to break a
/// copy-on-write page that is not one (that returns at once and polled again for ever: a spin
/// loom reports as exceeding its branch bound). The task is woken and granted and its write
/// lands; arbitration idle; nothing pinned.
pub fn c51_awaited_write_behind_a_plain_reader_vs_its_drop() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let c0 = a.register().unwrap();
    let g = a.read(0).unwrap();
    let t = thread::spawn(move || {
        let p = c0.enqueue(0, Access::Write).unwrap();
        let mut g = block_on(p).unwrap();
        let v = value(&g);
        put(&mut g, v + 1);
    });
    drop(g);
    t.join().unwrap();
    assert_eq!(
        read(&a, 0).unwrap().0,
        A + 1,
        "C51: the awaited write was lost"
    );
    assert_arbitration_idle(&a);
    assert_settled(&pages, "C51");
}

/// The `u64` a read guard's page holds.
fn word(g: &[u8]) -> u64 {
    u64::from_le_bytes(g[..8].try_into().unwrap())
}

/// C52 an awaited fault of a page another thread is filling, vs the fill's publication: a thread
/// reads A0 (a blocking fault, the filler), while the main thread awaits `read_async(A0)`. The
/// future finds the page resident (a hit), or its fill in flight, and then waits for the fill's
/// outcome on the fill parker without joining it (registering its waker under the parker's lock
/// after re-checking that the outcome is unset; the filler sets it, then wakes every waker), and
/// looks again; or it fills the page itself and the thread waits for it. Both read A0's value;
/// nothing pinned (a future that joined would own a pin the filler took for it). A0 is filled
/// once, or twice with one eviction between: the future obtains its frame before it records a
/// fill (so that no fault ever joins a future that may be dropped), and in this one-frame pool
/// a thread that filled A0 and let it go between the future's look and its obtain leaves A0 the
/// only victim (a wasted fill, never a wrong byte; SPEC §5).
pub fn c52_awaited_fault_vs_the_fill_it_waits_for() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    let v = block_on(async { a.read_async(0).await.map(|g| word(&g)) }).unwrap();
    assert_eq!(v, A, "C52: the awaited fault's read of A0");
    assert_eq!(t.join().unwrap(), A, "C52: the thread's read of A0");
    let fills = sa.fills.load(SeqCst) as u64;
    assert!(fills == 1 || fills == 2, "C52: A0 filled {fills} times");
    assert_eq!(
        pages.stats().evictions,
        fills - 1,
        "C52: a second fill without an eviction between"
    );
    assert_settled(&pages, "C52");
}

/// C53 an awaited fault waiting for a frame vs the unpin that frees one, and a fault future
/// dropped while it waits: the pool's one frame holds B0, read-pinned by the main thread. On
/// another thread a fault of A0 is polled once and dropped (it found no frame: counted among the
/// waiting obtainers, `WAIT_POOL` on B0, its waker on the pool parker; the drop withdraws the
/// count), then a second fault of A0 is awaited, while the main thread lets B0 go (its unpin
/// consumes `WAIT_POOL` and wakes the pool parker, which takes the wakers). The awaited fault
/// is woken, evicts B0, fills A0 and reads it; no waiting obtainer is left counted (the
/// census), nothing pinned; a lost wake-up is a deadlock both checkers report.
pub fn c53_awaited_fault_waiting_for_a_frame_vs_its_unpin() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    let held = b.read(0).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || {
            {
                let f = a.read_async(0);
                let mut f = std::pin::pin!(f);
                let mut cx = Context::from_waker(Waker::noop());
                let _ = f.as_mut().poll(&mut cx);
                // Dropped here, polled once: withdrawn, or a guard dropped if it got the frame.
            }
            block_on(async { a.read_async(0).await.map(|g| word(&g)) }).unwrap()
        })
    };
    assert_eq!(word(&held), B, "C53: B0's value");
    drop(held);
    assert_eq!(t.join().unwrap(), A, "C53: the awaited read of A0");
    assert_settled(&pages, "C53");
}

/// C54 an object's close vs its awaited fault waiting for a frame: the pool's one frame holds B0,
/// read-pinned by the main thread for the whole scenario, so a fault of A0 can never get a
/// frame. On another thread a fault of A0 is awaited while the main thread closes A. The future
/// has no deadline: it ends only because the close ends it. Either its poll sees A closed (at
/// its start, or in the pool parker's `prepare`, under the lists lock, before it would count
/// itself among the waiting obtainers), or the close sees it counted (under the lists lock,
/// after setting its flag) and wakes the pool parker, which takes its waker, and the woken poll
/// sees A closed. It fails with `Closed` and the main thread joins it before letting B0 go (a
/// lost wake-up is a deadlock both checkers report); then nothing is pinned and nobody waits.
pub fn c54_close_vs_an_awaited_fault_waiting_for_a_frame() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    let held = b.read(0).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || block_on(async { a.read_async(0).await.map(|g| word(&g)) }))
    };
    a.close().unwrap();
    match t.join().unwrap() {
        Err(pagecore::Error::Closed) => {}
        r => panic!("C54: the awaited fault of a closed object ended with {r:?}"),
    }
    drop(held);
    assert_eq!(sa.fills.load(SeqCst), 0, "C54: A0 filled");
    assert_settled(&pages, "C54");
}

/// C55 an awaited miss of a copy's page, waiting in the frozen layer for a frame, vs a blocking
/// fault of the same page and the unpin that frees the frame: the pool's one frame holds B0,
/// read-pinned by the main thread; A0 (never read) is in A's file, and C is a copy of A, so C0
/// lives in the frozen layer below C (not resident). A thread reads C0 through a blocking
/// guard (it records the layer's fill of A0 and waits for a frame); the main thread polls an
/// awaited read of C0 once: it must be `Pending` (it waits in the layer, for that fill or a
/// frame: a poll that blocked for the frame the main thread itself holds is a deadlock both
/// checkers report), then lets B0 go and awaits the read. Both read A0's value; the layer's
/// page was filled once, or twice with an eviction between (a wasted fill, as in C52); nothing
/// pinned, no obtainer left counted.
pub fn c55_awaited_copy_miss_vs_a_blocking_fault_in_the_layer() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    let c = a.copy().unwrap();
    let held = b.read(0).unwrap();
    let t = {
        let c = c.clone();
        thread::spawn(move || read(&c, 0).unwrap().0)
    };
    let v = {
        let f = c.read_async(0);
        let mut f = std::pin::pin!(f);
        let first = f.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(
            first.is_pending(),
            "C55: the awaited miss found a frame the main thread holds"
        );
        assert_eq!(word(&held), B, "C55: B0's value");
        drop(held);
        block_on(async { f.await.map(|g| word(&g)) }).unwrap()
    };
    assert_eq!(v, A, "C55: the awaited read of C0");
    assert_eq!(t.join().unwrap(), A, "C55: the blocking read of C0");
    // Filled twice only if evicted between (as in C52: the blocking read filled it and let
    // the copy's proxy go, and the future's obtain, counted since its first poll, took the
    // layer's page as its victim): reclaims are B0's and each such one (a frozen layer's
    // evictions are not among the objects' counts).
    let fills = sa.fills.load(SeqCst) as u64;
    assert!(fills == 1 || fills == 2, "C55: A0 filled {fills} times");
    assert_eq!(
        pages.stats().reclaims,
        fills,
        "C55: a second fill of the layer's page without a reclaim between"
    );
    drop(c);
    assert_settled(&pages, "C55");
}

/// C56 an awaited write to a copy-on-write proxy, whose frame for the private copy is awaited
/// before anything is pinned, vs another awaited write of the page and the unpin that
/// frees a frame: two frames; A0 (written 1) was frozen by a copy C of A (its frame now the
/// layer's, A's entry a proxy of it), and the other frame holds B0, read-pinned by the main
/// thread. A thread awaits a write of A0 (storing 3) while the main thread polls its own
/// awaited write of A0 once: it must be `Pending` (the only other frame is the layer page's
/// own, which the break copies from and so never takes; a break that pinned the layer's page
/// and then waited for a frame, as a blocking one does, waits for the frame its own thread
/// holds: a deadlock both checkers report), then lets B0 go and awaits the write, storing 2.
/// One write breaks the page; the other, which may have obtained a frame for a break too,
/// finds the page private (or evicted) and frees that frame. A0 reads 2 or 3, C0 reads 1;
/// nothing pinned, nobody waiting, no frame left obtained (a frame brought for a break and
/// not used must be freed).
pub fn c56_awaited_break_vs_the_frame_it_waits_for() {
    let pages = pool(2);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    crate::write(&a, 0, 1).unwrap();
    let c = a.copy().unwrap();
    let held = b.read(0).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || {
            block_on(async {
                let mut g = a.write_async(0).await?;
                g[..8].copy_from_slice(&3u64.to_le_bytes());
                Ok::<_, pagecore::Error>(())
            })
        })
    };
    {
        let fills = sa.fills.load(SeqCst);
        let f = a.write_async(0);
        let mut f = std::pin::pin!(f);
        let first = f.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(
            first.is_pending(),
            "C56: the awaited write found a frame the main thread holds"
        );
        // Neither write took the layer's page for its copy (evicted, it is filled again).
        assert_eq!(
            sa.fills.load(SeqCst),
            fills,
            "C56: an awaited break evicted the page it copies"
        );
        assert_eq!(word(&held), B, "C56: B0's value");
        drop(held);
        block_on(async {
            let mut g = f.await?;
            g[..8].copy_from_slice(&2u64.to_le_bytes());
            Ok::<_, pagecore::Error>(())
        })
        .expect("C56: the awaited write");
    }
    t.join().unwrap().expect("C56: the thread's awaited write");
    let v = read(&a, 0).unwrap().0;
    assert!(v == 2 || v == 3, "C56: A0 after both awaited writes: {v}");
    assert_eq!(read(&c, 0).unwrap().0, 1, "C56: the copy saw A's write");
    drop(c);
    let census = assert_settled(&pages, "C56");
    assert_eq!(census.filling, 0, "C56: a frame left obtained: {census:?}");
}
