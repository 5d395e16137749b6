//! Unit tests of the frame pool: invariant checks, and the proxy and break races driven by hand.

use super::*;
use crate::{MemoryAccessor, PageMapper, Pages};

const PAGE: usize = 64;

fn slot(o: &PageMapper, page: u64) -> &AtomicU64 {
    o.shared.map.slot(page).expect("the page has an entry")
}

/// Clears `clear` and sets `set` in the entry, checks the census refuses it, and puts the
/// entry back.
fn refused_with(pages: &Pages, slot: &AtomicU64, set: u64, clear: u64, what: &str) {
    let saved = slot.load(Ordering::SeqCst);
    slot.store((saved & !clear) | set, Ordering::SeqCst);
    let r = pages.census();
    slot.store(saved, Ordering::SeqCst);
    assert!(r.is_err(), "the census accepted {what}: {r:?}");
    pages.census().expect("restored");
}

/// `check_invariants` is the oracle of every other test and scenario: each kind of broken
/// owner or proxy entry it is meant to catch (I2 and its copy-on-write form) makes it fail.
/// (Mutation testing: its checks of those entries could be weakened without a test noticing,
/// since no correct run breaks them.)
#[test]
fn check_invariants_rejects_broken_owner_and_proxy_entries() {
    let pages = Pages::builder().page_size(PAGE).frames(4).build().unwrap();
    let x = pages.open(MemoryAccessor::new(), 2 * PAGE as u64).unwrap();
    x.write(0).unwrap()[0] = 5;
    let y = x.copy().unwrap();
    assert_eq!(y.read(0).unwrap()[0], 5);
    let c = pages.census().unwrap();
    assert_eq!((c.resident, c.proxies), (1, 2), "{c:?}");
    // x0 and y0 are proxies of the frozen layer's page, which owns the frame.
    let frame = EntryWord(slot(&y, 0).load(Ordering::SeqCst))
        .frame()
        .unwrap();
    let ps = &pages.shared;
    let layer_page = {
        let _l = lock(&ps.lists);
        // SAFETY: lists lock held; the frame is Resident (the census just said so).
        unsafe { ps.with_owner(frame, |o| o.cloned()) }.expect("the frame has an owner")
    };
    assert!(!layer_page.is(&x.shared, 0) && !layer_page.is(&y.shared, 0));
    let owner = layer_page.slot().unwrap();
    let other = EntryWord::FRAME1.set(0, (frame as u64 + 1) % 4 + 1);
    let frame_bits = EntryWord::FRAME1.mask();
    refused_with(
        &pages,
        owner,
        EntryWord::RECLAIMING.mask(),
        0,
        "a resident owner RECLAIMING",
    );
    refused_with(
        &pages,
        owner,
        other,
        frame_bits,
        "an owner naming another frame",
    );
    refused_with(
        &pages,
        owner,
        0,
        EntryWord::PINS.mask(),
        "two proxies, no pins",
    );
    for p in [&x, &y] {
        let s = slot(p, 0);
        refused_with(&pages, s, 0, EntryWord::COW.mask(), "a proxy without COW");
        refused_with(
            &pages,
            s,
            EntryWord::RECLAIMING.mask(),
            0,
            "a proxy RECLAIMING",
        );
        refused_with(&pages, s, other, frame_bits, "a proxy naming another frame");
    }
}
/// A pool of `frames` frames whose waits give up after `bound` (`None`: never).
fn pool(frames: u64, bound: Option<std::time::Duration>) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(bound)
        .build()
        .unwrap()
}

/// Waits (polling, bounded) until a thread has parked on the entry: `WAIT_PAGE` is set.
fn until_waited_on(slot: &AtomicU64) {
    for _ in 0..20_000 {
        if EntryWord::WAIT_PAGE.is_set(slot.load(Ordering::SeqCst)) {
            return;
        }
        crate::sync::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("nobody waited on the entry");
}

/// Sets up X0 written with 5 and copied (to the returned Y): X0 is a proxy of the frozen
/// layer's page, whose frame is returned.
fn copied(pages: &Pages) -> (PageMapper, PageMapper, u32) {
    let x = pages.open(MemoryAccessor::new(), PAGE as u64).unwrap();
    x.write(0).unwrap()[0] = 5;
    let y = x.copy().unwrap();
    let e = EntryWord(slot(&x, 0).load(Ordering::SeqCst));
    assert!(e.cow(), "X0 is not a proxy after the copy: {e:?}");
    (x, y, e.frame().unwrap())
}

/// Page 0 of `x`, as a break's owner.
fn x0(x: &PageMapper) -> Owner {
    Owner {
        mapper: (*x.shared).clone(),
        page: 0,
    }
}

/// A break of X0 that copied frame `f` into `f2` publishes now, after X0's entry changed:
/// it must be refused and leave the entry as it is; `f2` goes back to the pool.
fn assert_refused(pages: &Pages, x: &PageMapper, f: u32, f2: u32) {
    let ps = &pages.shared;
    let sx = slot(x, 0);
    let now = sx.load(Ordering::SeqCst);
    let r = ps.publish_break(f, f2, sx, 0, true, x0(x), || {
        panic!("a refused break privatized its page")
    });
    assert!(
        matches!(r, Publish::Changed),
        "a stale break was not refused"
    );
    assert_eq!(sx.load(Ordering::SeqCst), now, "the entry changed");
    ps.free(f2);
}

/// The writer of X0 (6) parked on X0's proxy finished, the copy Y kept 5, nothing pinned.
fn writer_done(
    pages: &Pages,
    w: crate::sync::thread::JoinHandle<crate::Result<()>>,
    x: &PageMapper,
    y: &PageMapper,
    what: &str,
) {
    w.join().unwrap().expect(what);
    assert_eq!(x.read(0).unwrap()[0], 6);
    assert_eq!(y.read(0).unwrap()[0], 5, "the write reached the copy");
    let c = pages.census().unwrap();
    assert_eq!(c.pinned, 0, "{c:?}");
}

/// The unpinner's window (SPEC §5): a reader of a proxy drops its pin (`fetch_sub`), and
/// before its wake-up runs a reclaim unmaps the proxy, so the wake-up finds the entry empty
/// and wakes nobody. A writer parked on the proxy meanwhile must be woken by the unmap
/// itself, or it sleeps to its wait bound. The window is played by hand: the reader's pin
/// and its two halves of `unpin_read` are taken directly, the reclaim is a real `obtain`.
/// (Mutation testing: unmap's notify of the proxy's waiters was never needed by a scenario.)
#[test]
fn unmap_wakes_a_writer_waiting_on_the_proxy_in_an_unpinners_window() {
    let bound = std::time::Duration::from_secs(3);
    let pages = pool(3, Some(bound));
    let ps = &pages.shared;
    let (x, y, f) = copied(&pages);
    let sx = slot(&x, 0);
    // The reader pins the proxy.
    let pinned = ps
        .try_pin_read(sx, EntryWord(sx.load(Ordering::SeqCst)))
        .expect("an unpinned proxy takes a read pin");
    assert_eq!(pinned.frame(), Some(f));
    let w = {
        let x = x.clone();
        crate::sync::thread::spawn(move || x.write(0).map(|mut g| g[0] = 6))
    };
    until_waited_on(sx);
    // The reader's unpin, first half: the pin goes, its wake-up has not run yet.
    let prev = sx.fetch_sub(EntryWord::PINS.one(), Ordering::Release);
    assert!(EntryWord::WAIT_PAGE.is_set(prev));
    // A reclaim: the two free frames, then the shared one (unmapping the unpinned proxy).
    let taken: Vec<u32> = (0..3)
        .map(|_| crate::object::reclaim::obtain(ps).unwrap())
        .collect();
    assert!(
        taken.contains(&f),
        "the reclaim did not take the shared frame"
    );
    assert_eq!(EntryWord(sx.load(Ordering::SeqCst)).frame(), None);
    // The reader's unpin, second half: the entry is empty, there is nobody for it to wake.
    ps.wake_waiters(sx);
    for t in taken {
        ps.free(t);
    }
    writer_done(
        &pages,
        w,
        &x,
        &y,
        "the writer parked on the unmapped proxy was not woken",
    );
}

/// A break's publication (its one CAS) must be refused when the proxy it copied was unmapped
/// and made again for another frame between its copy and its CAS (a reclaim took the shared
/// frame, a fault brought the layer's page back elsewhere): publishing would replace a live
/// proxy it never copied. Played by hand: the break's new frame is obtained, the reclaim and
/// the refault are real, then the break publishes with the frame it had seen.
/// (Mutation testing: no scenario reaches this four-party window.)
#[test]
fn publish_break_refuses_a_proxy_made_again_for_another_frame() {
    let pages = pool(3, Some(std::time::Duration::from_secs(3)));
    let ps = &pages.shared;
    let (x, y, f) = copied(&pages);
    let sx = slot(&x, 0);
    // The break: its new frame (a free one).
    let f2 = crate::object::reclaim::obtain(ps).unwrap();
    // A reclaim: B0 takes the last free frame, B1 the shared one (X0's proxy is unmapped).
    let b = pages.open(MemoryAccessor::new(), 2 * PAGE as u64).unwrap();
    let b0 = b.read(0).unwrap();
    let b1 = b.read(1).unwrap();
    assert_eq!(b1.frame(), f, "the reclaim did not take the shared frame");
    assert_eq!(EntryWord(sx.load(Ordering::SeqCst)).frame(), None);
    // X0 faults again: the layer's page comes back in B0's frame, X0 a proxy of it.
    drop(b0);
    assert_eq!(x.read(0).unwrap()[0], 5);
    let now = EntryWord(sx.load(Ordering::SeqCst));
    assert!(
        now.cow() && now.frame().is_some_and(|g| g != f && g != f2),
        "{now:?}"
    );
    assert_refused(&pages, &x, f, f2);
    drop(b1);
    assert_eq!(x.read(0).unwrap()[0], 5);
    assert_eq!(y.read(0).unwrap()[0], 5);
    let c = pages.census().unwrap();
    assert_eq!(c.pinned, 0, "{c:?}");
}

/// The owner's entry of a proxy's frame (under the lists lock).
fn owner_slot(pages: &Pages, f: u32) -> Owner {
    let ps = &pages.shared;
    let _l = lock(&ps.lists);
    // SAFETY: lists lock held; a proxy names `f`, which pins its owner: `f` is Resident.
    unsafe { ps.with_owner(f, |o| o.cloned()) }.expect("the frame has an owner")
}

/// A break publishes while a writer waits on the proxy, blocked by a pin the break allows
/// (as an upgrade allows its own hold): the publication clears the waiter bits, so it must
/// wake the writer itself (which then waits for the pin on the private page); nobody else
/// would, since the pin's unpin then finds no waiter bit. Played by hand: a read pin, a real
/// writer parked behind it, then the break's copy and publication with that pin allowed.
/// (Mutation testing: `publish_break`'s notify was never needed by a scenario; a real
/// upgrade changes the entry, waking the writer, just before it publishes.)
#[test]
fn a_break_wakes_a_writer_waiting_on_the_proxy() {
    let pages = pool(3, Some(std::time::Duration::from_secs(3)));
    let ps = &pages.shared;
    let (x, y, f) = copied(&pages);
    let sx = slot(&x, 0);
    ps.try_pin_read(sx, EntryWord(sx.load(Ordering::SeqCst)))
        .expect("an unpinned proxy takes a read pin");
    let w = {
        let x = x.clone();
        crate::sync::thread::spawn(move || x.write(0).map(|mut w| w[0] = 6))
    };
    until_waited_on(sx);
    let f2 = crate::object::reclaim::obtain(ps).unwrap();
    {
        let _from = ps.track(f).shared();
        let _to = ps.track(f2).exclusive();
        // SAFETY: the read pin keeps `f` resident and a frozen layer has no writer (I4);
        // `f2` is Filling and ours (I1); distinct frames do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(ps.bytes(f), ps.bytes(f2), PAGE) };
    }
    let r = ps.publish_break(f, f2, sx, EntryWord::PINS.one(), false, x0(&x), || {});
    assert!(matches!(r, Publish::Done), "the break was refused");
    // The proxy's pin on the owner's entry goes; then the reader's pin.
    ps.unpin_read(owner_slot(&pages, f).slot().unwrap());
    ps.unpin_read(sx);
    writer_done(
        &pages,
        w,
        &x,
        &y,
        "the writer parked on the proxy was not woken by the break",
    );
}

/// A break's publication must be refused when its proxy became the frame's owner entry (a
/// collapse moved the layer's page into the object once the copy was gone): the entry
/// still names the frame, but it is a private page now, which the break would replace.
#[test]
fn publish_break_refuses_a_proxy_a_collapse_made_private() {
    let pages = pool(3, Some(std::time::Duration::from_secs(3)));
    let ps = &pages.shared;
    let swap =
        crate::sync::ShareArc::new(crate::backing::swap::SwapArea::temporary(PAGE, 8).unwrap());
    let x = pages
        .open(
            crate::sync::ShareArc::new(crate::backing::anonymous::Anonymous::new(swap.clone())),
            PAGE as u64,
        )
        .unwrap();
    x.write(0).unwrap()[0] = 5;
    let y = x.copy().unwrap();
    let sx = slot(&x, 0);
    let f = EntryWord(sx.load(Ordering::SeqCst)).frame().unwrap();
    let f2 = crate::object::reclaim::obtain(ps).unwrap();
    drop(y);
    assert_eq!(x.compact(), 0, "the layer did not collapse");
    let now = EntryWord(sx.load(Ordering::SeqCst));
    assert!(!now.cow() && now.frame() == Some(f), "{now:?}");
    assert_refused(&pages, &x, f, f2);
    assert_eq!(x.read(0).unwrap()[0], 5);
    let c = pages.census().unwrap();
    assert_eq!(c.pinned, 0, "{c:?}");
}
