//! Copy-on-write races (S15, C6-C8, C10, C12-C14, C18, C20-C22): copies, breaks, proxies,
//! freezes, collapses and compaction.

use super::*;

// ----- copy-on-write scenarios (S15, C6, C7) ------------------------------------------------

/// S15 copy-on-write fault vs a reader of the shared page: X0 (written, resident) is copied to Y,
/// so both map X0's old frame through proxies of the frozen layer. A thread reads Y0 while the
/// main thread writes X0, which breaks the copy (a private frame for X, swapped in by one CAS).
/// Y0 reads the old value whatever the interleaving (the shared frame never changes: under loom
/// the break's copy is a tracked shared access beside the reader's); X0 reads the new one; sync
/// stores X's write; the frozen frame stays Y's; census adds up; nothing pinned after; every frame
/// free once both objects are gone.
pub fn s15_cow_fault_vs_reader() {
    let pages = pool(3);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    assert_eq!(s.get(0), 7, "S15: copy did not write the dirty page back");
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).unwrap().0)
    };
    write(&x, 0, 8).unwrap();
    let vy = t.join().unwrap();
    assert_eq!(vy, 7, "S15: the copy saw the source's write");
    assert_eq!(read(&x, 0).unwrap().0, 8);
    assert_eq!(read(&y, 0).unwrap().0, 7);
    x.sync().unwrap();
    assert_eq!(
        s.get(0),
        8,
        "S15: the source's write did not reach its store"
    );
    assert_eq!(read(&y, 0).unwrap().0, 7, "S15: the copy lost its snapshot");
    assert_settled(&pages, "S15");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "S15: frames outlived the objects: {c:?}");
}

/// C6 `copy` racing a writer of the source: X0 holds 5; a thread writes 6 into X0 while the main
/// thread copies X. The copy waits for the write guard to go (it marks the page first), so the
/// snapshot holds 5 or 6, whole; X holds 6; a later write to X does not reach the snapshot; the
/// swap slots and frames are freed once both are gone.
pub fn c6_copy_vs_write() {
    let pages = pool(3);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 6).unwrap())
    };
    let y = x.copy().unwrap();
    t.join().unwrap();
    let vy = read(&y, 0).unwrap().0;
    assert!(vy == 5 || vy == 6, "C6: the snapshot holds {vy}");
    assert_eq!(read(&x, 0).unwrap().0, 6);
    write(&x, 0, 9).unwrap();
    assert_eq!(
        read(&y, 0).unwrap().0,
        vy,
        "C6: a later write reached the snapshot"
    );
    assert_eq!(read(&x, 0).unwrap().0, 9);
    assert_conserved(&pages);
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C6: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C6: swap slots outlived the objects");
}

/// C7 a copy-on-write break racing a reclaim that unmaps its proxy: X0 and Y0 are proxies of the
/// frozen layer's frame (two frames in the pool). A thread writes X0 (a break: copy, then one
/// CAS) while a fault on another object needs a frame and may unmap both proxies and take the
/// shared frame, clean (the file still holds it). Whatever the interleaving: the break either
/// publishes or finds its proxy gone and faults again; the layer's page is kept (dirty: swap)
/// before X's file is overwritten; X reads 9 and its store gets 9; Y still reads the original.
pub fn c7_break_vs_reclaim() {
    let pages = pool(2);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    assert_eq!(read(&x, 0).unwrap().0, initial(A, 0));
    let y = x.copy().unwrap();
    assert_eq!(read(&y, 0).unwrap().0, initial(A, 0));
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 9).unwrap())
    };
    let vb = read(&b, 0).unwrap().0;
    t.join().unwrap();
    assert_eq!(vb, initial(B, 0));
    assert_eq!(read(&x, 0).unwrap().0, 9);
    x.sync().unwrap();
    assert_eq!(s.get(0), 9);
    assert_eq!(
        read(&y, 0).unwrap().0,
        initial(A, 0),
        "C7: the copy lost its snapshot"
    );
    assert_settled(&pages, "C7");
}

/// C10 a break waiting for a reader of the same proxy: X0 (written) is copied to Y, so X0 and Y0
/// are proxies of the frozen frame. A thread reads X0 (a read pin on X's proxy) while the main
/// thread writes X0. The write's break must wait for that pin wherever it lands: before the
/// fault's check (the fault waits on the entry), between that check and the break's (the break
/// waits), or between the break's copy and its publishing CAS (the CAS is refused and the break
/// waits, keeping its copy); then it publishes, with no wait bound to hide a lost wake-up. The
/// reader sees the old value or the new, whole; X reads the new one, Y the old; one break; census;
/// nothing pinned; every frame free once both objects go.
pub fn c10_break_vs_reader_of_its_proxy() {
    let pages = pool(3);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || read(&x, 0).unwrap().0)
    };
    write(&x, 0, 8).unwrap();
    let vx = t.join().unwrap();
    assert!(vx == 7 || vx == 8, "C10: the reader of X0 saw {vx}");
    assert_eq!(read(&x, 0).unwrap().0, 8);
    assert_eq!(read(&y, 0).unwrap().0, 7, "C10: the break reached the copy");
    assert_eq!(pages.stats().cow_breaks, 1, "C10: breaks");
    assert_settled(&pages, "C10");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C10: frames outlived the objects: {c:?}");
}

/// C12 two faults resolving a copy's page through its layer: X0 is written and copied to Y, so
/// Y maps nothing yet and a fault on Y0 finds X0's old frame in the frozen layer and publishes a
/// proxy for it. Two threads read Y0: one resolves, the other joins its resolution (or finds the
/// proxy published); the proxy is published with one read pin per fault. Both read the old
/// value; X0 the new one after a write; once the guards are gone nothing is pinned (a pin too
/// few would underflow, a pin too many would keep the frame forever); frames free after.
pub fn c12_faults_joining_a_proxy() {
    let pages = pool(3);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).unwrap())
    };
    let (v, f) = read(&y, 0).unwrap();
    let (vt, ft) = t.join().unwrap();
    assert_eq!(
        (v, vt),
        (7, 7),
        "C12: a fault through the layer read the wrong value"
    );
    assert_eq!(f, ft, "C12: two frames for one shared page");
    assert_settled(&pages, "C12");
    write(&x, 0, 8).unwrap();
    assert_eq!(read(&y, 0).unwrap().0, 7, "C12: the copy lost its snapshot");
    assert_eq!(read(&x, 0).unwrap().0, 8);
    assert_settled(&pages, "C12");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C12: frames outlived the objects: {c:?}");
}

/// C13 a fault waiting for the pool while the only frame is shared through a pinned proxy: one
/// frame; X0 is copied to Y (the frame now belongs to the frozen layer, X0 is a proxy of it). A
/// thread reads X0 (pinning the shared frame through the proxy) while the main thread faults an
/// other object's page, which needs that frame: it waits for the pool (marking the pinned proxy
/// so that its last unpin wakes the pool; no wait bound), then unmaps the proxy and takes the
/// frame (the layer's page is clean: the file holds it). Both reads are right; X0 and Y0 read
/// the original again after; census; nothing pinned.
///
/// It found two lost wake-ups (the fault parked forever; loom and shuttle both report it): a
/// proxy whose last pin went between the obtainer's unmap attempt and its mark was left
/// unmarked; and when the obtainer had unmapped the proxy and the reader's own fault resolved the
/// page again, the reader's resolution pin on the marked owner's entry became a new, unmarked
/// proxy's pin.
pub fn c13_pool_wait_on_a_pinned_proxy() {
    let pages = pool(1);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    assert_eq!(read(&x, 0).unwrap().0, initial(A, 0));
    let y = x.copy().unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || read(&x, 0).unwrap().0)
    };
    let vb = read(&b, 0).unwrap().0;
    assert_eq!(t.join().unwrap(), initial(A, 0), "C13: the proxy's reader");
    assert_eq!(vb, initial(B, 0), "C13: the other object's fault");
    assert_eq!(read(&y, 0).unwrap().0, initial(A, 0));
    assert_eq!(read(&x, 0).unwrap().0, initial(A, 0));
    assert_settled(&pages, "C13");
}

/// C14 a copy racing a page-out of the page it freezes: two frames hold X0 and X1 (anonymous,
/// written, X0 older); a thread faults another object's page, which reclaims X0 (a page-out to a
/// swap slot), while
/// the main thread copies X. The copy's freeze finds X0 resident and marks it, or finds it being
/// reclaimed and waits for the reclaim to finish (then starts again, with no wait bound to hide a
/// lost wake-up), or finds it on swap; whatever the interleaving the snapshot holds X0's value,
/// a later write to X does not reach it, the other object's page reads right, and every frame and
/// swap slot is freed once both go.
pub fn c14_copy_vs_page_out() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 2, 8);
    write(&x, 0, 5).unwrap();
    write(&x, 1, 7).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = thread::spawn(move || read(&b, 0).unwrap().0);
    let y = x.copy().unwrap();
    assert_eq!(
        t.join().unwrap(),
        initial(B, 0),
        "C14: the other object's fault"
    );
    assert_eq!(read(&y, 0).unwrap().0, 5, "C14: the snapshot lost X0");
    write(&x, 0, 6).unwrap();
    assert_eq!(
        read(&y, 0).unwrap().0,
        5,
        "C14: a later write reached the snapshot"
    );
    assert_eq!(read(&x, 0).unwrap().0, 6);
    assert_eq!((read(&x, 1).unwrap().0, read(&y, 1).unwrap().0), (7, 7));
    assert_settled(&pages, "C14");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C14: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C14: swap slots outlived the objects");
}

/// C18 a copy racing faults that bring pages in between its marking and its freeze: X (a file,
/// two pages, neither resident) is copied by the main thread while a thread reads X0 and then
/// writes 9 into X1, each fault filling its page. A page filled after the copy marked X's
/// resident pages reaches the freeze unmarked: the freeze marks it itself if nobody writes it,
/// and starts the copy again if it is being written or dirty (a file's dirty page is written
/// back first), so no writer is left on a frozen frame and no copy loops. The snapshot holds
/// X0's value and X1's old value or 9, whole; X holds both; a later write to X does not reach the
/// snapshot; every frame is free once both are gone.
pub fn c18_copy_vs_faults_between_mark_and_freeze() {
    let pages = pool(3);
    let s = Store::new(2, A);
    let x = open(&pages, &s, 2);
    let t = {
        let x = x.clone();
        thread::spawn(move || {
            let v0 = read(&x, 0).unwrap().0;
            write(&x, 1, 9).unwrap();
            v0
        })
    };
    let y = x.copy().unwrap();
    assert_eq!(t.join().unwrap(), initial(A, 0), "C18: the reader");
    let y1 = read(&y, 1).unwrap().0;
    assert!(
        y1 == initial(A, 1) || y1 == 9,
        "C18: the snapshot holds {y1}"
    );
    assert_eq!(
        read(&y, 0).unwrap().0,
        initial(A, 0),
        "C18: the snapshot's X0"
    );
    assert_eq!(read(&x, 1).unwrap().0, 9, "C18: X lost its write");
    write(&x, 0, 5).unwrap();
    assert_eq!(
        (read(&y, 0).unwrap().0, read(&y, 1).unwrap().0),
        (initial(A, 0), y1),
        "C18: a later write reached the snapshot"
    );
    assert_settled(&pages, "C18");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C18: frames outlived the objects: {c:?}");
    assert_eq!(s.get(1), 9, "C18: X1's write did not reach the file");
}

/// C20 a break publishes a frame a fault waits for: two frames; X0 (anonymous, 5) is copied to
/// Y, and the main thread holds a read guard on Y0 (a proxy of the frozen layer's frame). A
/// thread writes 6 into X0 (a break: it obtains the second frame, copies, publishes it as X0's
/// private page) while another faults B0 of a third object: whichever gets the second frame
/// first, the other waits for the pool (no wait bound), and nothing it marked unpins while the
/// main thread holds its guard; it must be woken by the frame coming back: the break publishing
/// it (unpinned until the writer pins it), or B0's unpin. Y0's guard reads 5 throughout; X0 reads
/// 6 and Y0 5 after; B0 right; census; every frame and swap slot freed once all go.
pub fn c20_break_publishes_for_a_waiting_fault() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let g = y.read(0).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let w = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 6).unwrap())
    };
    let f = thread::spawn(move || read(&b, 0).unwrap().0);
    w.join().unwrap();
    assert_eq!(
        f.join().unwrap(),
        initial(B, 0),
        "C20: the other object's fault"
    );
    assert_eq!(
        u64::from_le_bytes(g[..8].try_into().unwrap()),
        5,
        "C20: Y0's guard"
    );
    drop(g);
    assert_eq!(read(&x, 0).unwrap().0, 6, "C20: X0 lost its write");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C20: the snapshot");
    assert_settled(&pages, "C20");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.resident + c.free, 2, "C20: {c:?}");
    assert_eq!(swap.in_use(), 0, "C20: swap slots outlived the objects");
}

/// The start of C21 and C22: in a pool of two frames, X0 (anonymous, 1) is copied to Y, Y0
/// written (2, a break), and X dropped, so Y is the only reader of the frozen layer holding 1.
/// Returns the pool, Y and their swap area.
fn sole_reader_of_a_layer() -> (Pages, PageMapper, ShareArc<SwapArea>) {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 1).unwrap();
    let y = x.copy().unwrap();
    write(&y, 0, 2).unwrap();
    drop(x);
    (pages, y, swap)
}

/// C21 a compaction racing a copy of the same object: X0 (anonymous, 1) is copied to Y, Y0
/// written (2, a break), X dropped, and both frames paged out (two faults of a third object), so
/// Y is the only reader of the frozen layer L, which holds 1 in a swap slot, and Y's own 2 is in
/// Y's slot. A thread compacts Y (collapsing L into Y) while the main thread copies Y to Z (Y's
/// slot moves to a new layer T over L). Whatever the interleaving: Y and Z read 2, never L's 1
/// (a collapse that read Y's backing before the copy and collapsed L into Y after it gave Y L's
/// slot, and dropped T from Y's chain); Y's chain is one layer deep after a compaction (T, read
/// by Y and Z: L collapses into T, or into Y before the copy); census; every frame and swap slot
/// freed once all go.
pub fn c21_compaction_vs_copy() {
    let (pages, y, swap) = sole_reader_of_a_layer();
    let (b, _) = anonymous(&pages, 2, 8);
    write(&b, 0, 3).unwrap();
    write(&b, 1, 4).unwrap();
    drop(b);
    let t = {
        let y = y.clone();
        thread::spawn(move || {
            y.compact();
        })
    };
    let z = y.copy().unwrap();
    t.join().unwrap();
    assert_eq!(
        read(&y, 0).unwrap().0,
        2,
        "C21: Y read its old layer's page"
    );
    assert_eq!(read(&z, 0).unwrap().0, 2, "C21: the copy's snapshot");
    assert_eq!(y.compact(), 1, "C21: Y's chain after a compaction");
    assert_eq!(read(&y, 0).unwrap().0, 2, "C21: Y after the compaction");
    assert_settled(&pages, "C21");
    drop((y, z));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C21: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C21: swap slots outlived the objects");
}

/// C22 a compaction racing a page-out of the object's own page: X0 (anonymous, 1) is copied to
/// Y, Y0 written (2, a break), X dropped, and a fault of a third object's B0 pages the frozen
/// layer L's page out, so Y alone reads L (1, in a swap slot) and holds its own 2 in a frame. A
/// thread faults B1, which pages Y0 out (dirty: to a slot of Y's), while the main thread compacts
/// Y: the collapse must see Y0 as Y's own wherever the page-out is (resident, being reclaimed,
/// or in Y's slot) and free L's slot, never give it to Y (reading the owner of a frame being
/// reclaimed races the reclaimer's clearing of it: loom reports that). Y reads 2; L collapsed
/// (depth 0); B1 reads zeros; census; every frame and swap slot freed once all go.
pub fn c22_compaction_vs_page_out() {
    let (pages, y, swap) = sole_reader_of_a_layer();
    let (b, b_swap) = anonymous(&pages, 2, 8);
    assert_eq!(read(&b, 0).unwrap().0, 0);
    let t = {
        let b = b.clone();
        thread::spawn(move || read(&b, 1).unwrap().0)
    };
    let depth = y.compact();
    assert_eq!(t.join().unwrap(), 0, "C22: B1");
    assert_eq!(depth, 0, "C22: the layer did not collapse");
    assert_eq!(
        read(&y, 0).unwrap().0,
        2,
        "C22: Y read its old layer's page"
    );
    assert_settled(&pages, "C22");
    drop((y, b));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C22: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C22: swap slots outlived the objects");
    assert_eq!(b_swap.in_use(), 0, "C22: B's swap slots outlived it");
}

/// C8 a collapse racing faults through the chain: a (pages 0 and 1 written) is copied to b, b
/// to c, so c reads through L2 (shared with b) and L1 (under L2); then a goes, leaving L1 read by
/// L2 alone. Two threads fault page 0 of c and page 1 of b: each walk may collapse L1 into L2
/// (pages move up, no byte copied) while the other is between two layers of the same walk. Both
/// read the original values (a walk that found nothing in two layers while a page moved between
/// them re-walks: each layer's moves count), the chain is shorter after, census adds up, and
/// every frame and swap slot is freed once all are gone.
pub fn c8_collapse_vs_fault() {
    let pages = pool(3);
    let (a, swap) = anonymous(&pages, 2, 8);
    write(&a, 0, 10).unwrap();
    write(&a, 1, 11).unwrap();
    let b = a.copy().unwrap();
    let c = b.copy().unwrap();
    drop(a);
    let t = {
        let c = c.clone();
        thread::spawn(move || read(&c, 0).unwrap().0)
    };
    let vb = read(&b, 1).unwrap().0;
    let vc = t.join().unwrap();
    assert_eq!((vb, vc), (11, 10), "C8: a fault missed a page moving up");
    assert_eq!(read(&b, 0).unwrap().0, 10);
    assert_eq!(read(&c, 1).unwrap().0, 11);
    assert_eq!(c.copy_stats().depth, 1, "C8: L1 was not collapsed into L2");
    assert_conserved(&pages);
    drop((b, c));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C8: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C8: swap slots outlived the objects");
}

/// C47 a client's request resolving a copy's page through a layer page being paged out: one
/// frame; X0 (anonymous, 5) is copied to Y, so the frame holds the frozen layer's page, dirty
/// (only a swap slot can keep it). A thread faults an other object's page B0, which reclaims the
/// layer's page (a page-out: the page refuses pins while its bytes go to swap) and takes the
/// frame, while a client of Y requests Y0 for reading. The request faults Y0 in without waiting
/// for Y0's holders (a holder's `Busy` sends it to queue behind them), but a layer's page that
/// refuses its pin has no holder to queue behind: the resolution waits for the page-out, then
/// faults the page back in from swap once B0's guard is gone (no wait bound). Found as a livelock
/// by the random programs (seed 14 under PCT) when the per-call time-outs passed the request's
/// no-wait bound down to the layer: the request failed `Busy` and faulted Y0 again, for ever
/// (loom reports an execution past its branch cap, shuttle one past its step bound). The grant
/// reads 5; X0 and Y0 read 5 after; B0 right; census; nothing pinned; frames and swap slots free
/// once all go.
pub fn c47_request_resolving_through_a_paged_out_layer() {
    let pages = pool(1);
    let (x, swap) = anonymous(&pages, 1, 4);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = thread::spawn(move || read(&b, 0).unwrap().0);
    let client = y.register().unwrap();
    let v = value(&client.request(0, Access::Read).unwrap());
    assert_eq!(
        t.join().unwrap(),
        initial(B, 0),
        "C47: the other object's fault"
    );
    assert_eq!(
        v, 5,
        "C47: the request read the wrong bytes through the layer"
    );
    assert_eq!((read(&x, 0).unwrap().0, read(&y, 0).unwrap().0), (5, 5));
    drop(client);
    assert_settled(&pages, "C47");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 1, "C47: a frame outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C47: swap slots outlived the objects");
}
