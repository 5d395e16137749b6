//! Anonymous memory races (S13, S14): page-out to swap and the last handle's drop, each against a
//! fault.

use super::*;

// ----- anonymous memory scenarios (S13-S14) -------------------------------------------------

/// An anonymous object of `n` pages over a fresh temporary swap area of `slots` slots.
pub fn anonymous(pages: &Pages, n: u64, slots: u32) -> (PageMapper, ShareArc<SwapArea>) {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, slots).expect("swap area"));
    let obj = pages
        .open(Arc::new(Anonymous::new(swap.clone())), n * PAGE as u64)
        .expect("valid object");
    (obj, swap)
}

/// S13 swap-out vs fault on the same anonymous page: X0 is written (dirty, resident) in a pool of
/// two frames; a thread faults X1 and then X2, whose fault reclaims the queue head X0, paging it
/// out to a swap slot, while the main thread faults X0 (which then needs a frame of its own). The
/// X0 fault sees the written value whichever way the race goes (from the frame before the
/// page-out, after waiting for it, or from the slot after it), never zeros (X0's entry must not
/// look empty before its page-out is done); X1 and X2 are zeros (first touch). Afterwards a
/// second page-out rewrites the same slot in place, and dropping the object frees its one slot
/// exactly once; the census adds up throughout.
pub fn s13_swap_out_vs_fault() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 3, 4);
    write(&x, 0, 5).unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || (read(&x, 1).unwrap().0, read(&x, 2).unwrap().0))
    };
    let v0 = read(&x, 0).unwrap().0;
    assert_eq!(v0, 5, "S13: the fault on X0 saw {v0}");
    assert_eq!(t.join().unwrap(), (0, 0), "S13: not zero on first touch");
    assert!(
        swap.in_use() <= 1,
        "S13: {} slots for one page",
        swap.in_use()
    );
    // Page X0 out (again, or for the first time): one slot, rewritten in place.
    write(&x, 0, 6).unwrap();
    assert_eq!(read(&x, 1).unwrap().0, 0);
    assert_eq!(read(&x, 2).unwrap().0, 0);
    assert_eq!(
        swap.in_use(),
        1,
        "S13: X0 was not paged out to exactly one slot"
    );
    assert_eq!(read(&x, 0).unwrap().0, 6);
    assert_conserved(&pages);
    drop(x);
    assert_eq!(swap.in_use(), 0, "S13: the slot outlived its object");
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "S13: the object's frames were not freed: {c:?}");
}

/// S14 last reference dropped vs a concurrent fault: an anonymous object X has two handles (as
/// after fork) and one dirty page on swap. A thread faults X0 back in through the second handle
/// and drops it, while the main thread drops the first, and a fault on another object's page
/// needs the only frame (reclaiming X0, or finding it discarded). The fault through the live
/// handle always sees X0's value; whichever handle goes last discards X's pages; X's frame and
/// its swap slot are freed exactly once (the slot count returns to zero, the census adds up, the
/// other object's page reads right).
pub fn s14_last_drop_vs_fault() {
    let pages = pool(1);
    let (x, swap) = anonymous(&pages, 2, 4);
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    write(&x, 0, 5).unwrap();
    assert_eq!(read(&x, 1).unwrap().0, 0); // X0 paged out to its slot
    assert_eq!(swap.in_use(), 1);
    let t = {
        let x2 = x.clone();
        thread::spawn(move || {
            let v = read(&x2, 0).unwrap().0;
            drop(x2);
            v
        })
    };
    let u = thread::spawn(move || read(&b, 0).unwrap().0);
    drop(x);
    assert_eq!(t.join().unwrap(), 5, "S14: the live handle lost X0");
    assert_eq!(u.join().unwrap(), initial(B, 0));
    assert_eq!(swap.in_use(), 0, "S14: a swap slot outlived its object");
    assert_settled(&pages, "S14");
}
