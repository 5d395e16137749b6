//! Logical copies (issue 4, item 2): copy-on-write copies of anonymous and file-backed objects,
//! copies of copies, frames shared until written, proxies unmapped by reclaim, everything freed
//! exactly once when no copy refers to it.

use pagecore::internals::sync::ShareArc;
use pagecore::SwapArea;
use pagecore::{Access, FileAccessor, PageMapper, Pages, Revocation};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PAGE: usize = 128;

fn pool(frames: u64) -> (Pages, ShareArc<SwapArea>) {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 4096).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .swap(swap.clone())
        .wait_bound(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    (pages, swap)
}

/// The bytes page `p` holds in version `v`: every byte depends on both.
fn pattern(p: u64, v: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|i| (p as u8).wrapping_mul(29) ^ v.wrapping_mul(101) ^ i as u8)
        .collect()
}

fn put(o: &PageMapper, p: u64, v: u8) {
    o.write(p).unwrap().copy_from_slice(&pattern(p, v));
}

fn get(o: &PageMapper, p: u64) -> Vec<u8> {
    o.read(p).unwrap().to_vec()
}

fn zeros() -> Vec<u8> {
    vec![0; PAGE]
}

/// A file-backed object of `n` pages over `path`, every page written in version 1.
fn file_object(pages: &Pages, path: &std::path::Path, n: u64) -> PageMapper {
    let file = pages
        .open(FileAccessor::open(path, PAGE).unwrap(), n * PAGE as u64)
        .unwrap();
    for p in 0..n {
        put(&file, p, 1);
    }
    file
}

#[test]
fn a_copy_is_a_snapshot_both_ways_and_shares_frames_until_written() {
    let (pages, swap) = pool(16);
    let x = pages.anonymous(8 * PAGE as u64).unwrap();
    for p in 0..4 {
        put(&x, p, 1);
    }
    let y = x.copy().unwrap();
    assert_eq!(x.copy_stats().depth, 1);
    assert_eq!(y.copy_stats().depth, 1);
    // The pages move into the layer as they are: a copy writes nothing to swap.
    assert_eq!(swap.in_use(), 0, "a copy wrote to swap");
    // Reads share the frozen frames: one frame, two proxies, per page.
    for p in 0..4 {
        assert_eq!(get(&x, p), pattern(p, 1));
        assert_eq!(get(&y, p), pattern(p, 1));
    }
    let c = pages.census().unwrap();
    assert_eq!((c.resident, c.shared, c.proxies), (4, 4, 8), "{c:?}");
    // Writes give the writer a private page; the other keeps the old content.
    put(&x, 0, 2);
    put(&y, 1, 3);
    put(&y, 5, 4); // a page neither had: private to y at once
    assert_eq!(get(&x, 0), pattern(0, 2));
    assert_eq!(get(&y, 0), pattern(0, 1));
    assert_eq!(get(&x, 1), pattern(1, 1));
    assert_eq!(get(&y, 1), pattern(1, 3));
    assert_eq!(get(&x, 5), zeros());
    assert_eq!(get(&y, 5), pattern(5, 4));
    assert_eq!(pages.stats().cow_breaks, 2);
    let c = pages.census().unwrap();
    assert_eq!(c.pinned, 0, "{c:?}");
    drop((x, y));
    let c = pages.census().unwrap();
    assert_eq!(c.free, 16, "frames outlived every copy: {c:?}");
    assert_eq!(swap.in_use(), 0, "swap slots outlived every copy");
}

#[test]
fn copies_survive_reclaim_and_swap_in_a_small_pool() {
    // 3 objects x 24 pages through 6 frames: proxies are unmapped, frozen pages go to swap and
    // come back, private pages go to their own slots.
    let (pages, swap) = pool(6);
    let x = pages.anonymous(24 * PAGE as u64).unwrap();
    for p in 0..24 {
        put(&x, p, 1);
    }
    let y = x.copy().unwrap();
    for p in (0..24).step_by(2) {
        put(&x, p, 2);
    }
    let z = y.copy().unwrap();
    for p in (0..24).step_by(3) {
        put(&y, p, 3);
    }
    assert_eq!(z.copy_stats().depth, 2);
    for round in 0..2 {
        for p in 0..24 {
            let xv = if p % 2 == 0 { 2 } else { 1 };
            let yv = if p % 3 == 0 { 3 } else { 1 };
            assert_eq!(get(&x, p), pattern(p, xv), "x page {p} round {round}");
            assert_eq!(get(&y, p), pattern(p, yv), "y page {p} round {round}");
            assert_eq!(get(&z, p), pattern(p, 1), "z page {p} round {round}");
        }
    }
    assert!(pages.stats().reclaims > 24);
    pages.census().unwrap();
    drop(y);
    for p in 0..24 {
        assert_eq!(get(&z, p), pattern(p, 1), "z page {p} after y went");
    }
    drop((x, z));
    assert_eq!(pages.census().unwrap().free, 6);
    assert_eq!(swap.in_use(), 0);
}

#[test]
fn a_file_keeps_its_writes_and_its_copies_keep_their_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (pages, swap) = pool(4);
    let n = 16u64;
    let file = file_object(&pages, &path, n);
    // The copy writes the file's dirty pages back first: the snapshot is in the file.
    let snap = file.copy().unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    for p in 0..n {
        let at = (p as usize) * PAGE;
        assert_eq!(
            &on_disk[at..at + PAGE],
            &pattern(p, 1)[..],
            "page {p} not on disk"
        );
    }
    // The file moves on: every page written and synced (through a pool 4x smaller than it,
    // so the snapshot's pages are reclaimed while the file overwrites them on disk).
    for p in 0..n {
        put(&file, p, 2);
    }
    file.sync().unwrap();
    for p in 0..n {
        assert_eq!(get(&snap, p), pattern(p, 1), "snapshot page {p}");
        assert_eq!(get(&file, p), pattern(p, 2), "file page {p}");
    }
    // A second snapshot, then more writes: each snapshot keeps its own version.
    let snap2 = file.copy().unwrap();
    for p in (0..n).step_by(2) {
        put(&file, p, 3);
    }
    put(&snap, 1, 9);
    file.sync().unwrap();
    for p in 0..n {
        let fv = if p % 2 == 0 { 3 } else { 2 };
        assert_eq!(get(&file, p), pattern(p, fv), "file page {p}");
        assert_eq!(get(&snap2, p), pattern(p, 2), "snap2 page {p}");
        let sv = if p == 1 { 9 } else { 1 };
        assert_eq!(get(&snap, p), pattern(p, sv), "snap page {p}");
    }
    drop((snap, snap2));
    file.close().unwrap();
    // The file holds exactly the file's writes.
    let on_disk = std::fs::read(&path).unwrap();
    for p in 0..n {
        let fv = if p % 2 == 0 { 3 } else { 2 };
        let at = (p as usize) * PAGE;
        assert_eq!(
            &on_disk[at..at + PAGE],
            &pattern(p, fv)[..],
            "page {p} on disk"
        );
    }
    assert_eq!(pages.census().unwrap().free, 4);
    assert_eq!(swap.in_use(), 0);
}

#[test]
fn a_write_grant_breaks_the_copy_and_an_upgrade_too() {
    let (pages, _swap) = pool(8);
    let x = pages.anonymous(4 * PAGE as u64).unwrap();
    put(&x, 0, 1);
    put(&x, 1, 1);
    let y = x.copy().unwrap();
    let (cx, cy) = (x.register().unwrap(), y.register().unwrap());
    // A read grant on a shared page reads the shared frame.
    let r = cy.request(0, Access::Read).unwrap();
    assert_eq!(&r[..], &pattern(0, 1)[..]);
    let shared_frame = r.frame();
    // A write grant on the same page of x gets a private frame at once: y's reader holds y's
    // page, not x's.
    let mut w = cx.request(0, Access::Write).unwrap();
    assert_ne!(w.frame(), shared_frame);
    w.bytes_mut().unwrap().copy_from_slice(&pattern(0, 2));
    drop(w);
    assert_eq!(&r[..], &pattern(0, 1)[..]);
    drop(r);
    // An upgrade of a read grant on a shared page breaks it too.
    let mut g = cy.request(1, Access::Read).unwrap();
    let before = g.frame();
    g.upgrade().unwrap();
    assert_ne!(g.frame(), before);
    g.bytes_mut().unwrap().copy_from_slice(&pattern(1, 3));
    drop(g);
    assert_eq!(get(&x, 0), pattern(0, 2));
    assert_eq!(get(&y, 0), pattern(0, 1));
    assert_eq!(get(&x, 1), pattern(1, 1));
    assert_eq!(get(&y, 1), pattern(1, 3));
    assert_eq!(pages.stats().cow_breaks, 2);
    x.arbitration().unwrap();
    y.arbitration().unwrap();
}

#[test]
fn a_copy_asks_a_writing_client_to_downgrade_and_snapshots_after_it() {
    let (pages, _swap) = pool(8);
    let x = Arc::new(pages.anonymous(4 * PAGE as u64).unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    let writer = x
        .register_with(move |_p: u64, ask: Revocation| {
            assert_eq!(ask, Revocation::Downgrade);
            a.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let mut g = writer.request(2, Access::Write).unwrap();
    g.bytes_mut().unwrap().copy_from_slice(&pattern(2, 1));
    let copier = {
        let x = x.clone();
        std::thread::spawn(move || x.copy().unwrap())
    };
    while asked.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    // Asked to downgrade: finish the write, then downgrade (keep reading).
    g.bytes_mut().unwrap().copy_from_slice(&pattern(2, 2));
    g.downgrade().unwrap();
    let y = copier.join().unwrap();
    assert_eq!(&g[..], &pattern(2, 2)[..]);
    drop(g);
    assert_eq!(
        get(&y, 2),
        pattern(2, 2),
        "the snapshot missed the finished write"
    );
    put(&x, 2, 3);
    assert_eq!(get(&y, 2), pattern(2, 2));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[test]
fn a_copy_times_out_on_a_writer_that_never_lets_go() {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 64).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(4)
        .swap(swap)
        .wait_bound(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let x = pages.anonymous(4 * PAGE as u64).unwrap();
    let w = x.write(1).unwrap();
    assert!(matches!(x.copy(), Err(pagecore::Error::Busy { page: 1 })));
    drop(w);
    // The marks a failed copy left do not stop later writers, and a later copy works.
    put(&x, 0, 5);
    put(&x, 1, 6);
    let y = x.copy().unwrap();
    put(&x, 1, 7);
    assert_eq!(get(&y, 1), pattern(1, 6));
    assert_eq!(get(&y, 0), pattern(0, 5));
}

#[test]
fn closing_the_source_keeps_the_copy_and_frees_in_order() {
    let (pages, swap) = pool(4);
    let x = pages.anonymous(12 * PAGE as u64).unwrap();
    for p in 0..12 {
        put(&x, p, 1);
    }
    let y = x.copy().unwrap();
    x.close().unwrap();
    for p in 0..12 {
        assert_eq!(get(&y, p), pattern(p, 1));
    }
    assert!(swap.in_use() > 0);
    drop(y);
    assert_eq!(pages.census().unwrap().free, 4);
    assert_eq!(swap.in_use(), 0);
}

#[test]
fn a_layer_read_by_one_object_collapses_into_it() {
    let (pages, swap) = pool(6);
    let x = pages.anonymous(16 * PAGE as u64).unwrap();
    for p in 0..16 {
        put(&x, p, 1);
    }
    let y = x.copy().unwrap();
    put(&x, 3, 2);
    // A guard held on a proxy across the collapse keeps reading the same frame.
    let _ = get(&x, 5);
    let held = x.read(5).unwrap();
    let frame = held.frame();
    drop(y); // only x reads the layer now
    assert_eq!(x.copy_stats().depth, 1);
    assert_eq!(x.compact(), 0);
    assert_eq!(x.copy_stats().collapsed, 1);
    assert_eq!(held.frame(), frame);
    assert_eq!(&held[..], &pattern(5, 1)[..]);
    drop(held);
    for p in 0..16 {
        let v = if p == 3 { 2 } else { 1 };
        assert_eq!(get(&x, p), pattern(p, v), "page {p}");
    }
    // The moved pages are x's own: writing them breaks nothing.
    let breaks = pages.stats().cow_breaks;
    put(&x, 5, 3);
    assert_eq!(pages.stats().cow_breaks, breaks);
    let c = pages.census().unwrap();
    assert_eq!((c.shared, c.proxies), (0, 0), "{c:?}");
    drop(x);
    assert_eq!(pages.census().unwrap().free, 6);
    assert_eq!(swap.in_use(), 0);
}

#[test]
fn a_miss_collapses_the_chain_on_its_way_and_shared_layers_stay() {
    let (pages, swap) = pool(5);
    let a = pages.anonymous(20 * PAGE as u64).unwrap();
    for p in 0..20 {
        put(&a, p, 1);
    }
    // a -> L1; b = copy(a) over L1; c = copy(b): b -> L2 -> L1, c over L2.
    let b = a.copy().unwrap();
    put(&b, 1, 2);
    let c = b.copy().unwrap();
    put(&c, 2, 3);
    assert_eq!(c.copy_stats().depth, 2);
    // L1 is read by a and L2: it stays. Dropping b leaves L2 read by c alone.
    drop(b);
    for p in 0..20 {
        // Misses (the pool holds 5 of 60 page versions) walk c's chain and collapse L2 into c.
        let v = match p {
            1 => 2,
            2 => 3,
            _ => 1,
        };
        assert_eq!(get(&c, p), pattern(p, v), "c page {p}");
        assert_eq!(get(&a, p), pattern(p, 1), "a page {p}");
    }
    assert_eq!(c.copy_stats().depth, 1, "L2 should have collapsed into c");
    assert_eq!(c.copy_stats().collapsed, 1);
    assert_eq!(a.copy_stats().depth, 1, "L1 is still shared by a and c");
    // Dropping a leaves L1 read by c alone: compacting now empties the chain.
    drop(a);
    assert_eq!(c.compact(), 0);
    for p in 0..20 {
        let v = match p {
            1 => 2,
            2 => 3,
            _ => 1,
        };
        assert_eq!(
            get(&c, p),
            pattern(p, v),
            "c page {p} after the last collapse"
        );
    }
    drop(c);
    assert_eq!(pages.census().unwrap().free, 5);
    assert_eq!(swap.in_use(), 0);
}

/// Found by the `ops` fuzz target: a non-blocking write request on a page of a copy that was not
/// resident faulted it in as a copy-on-write proxy, then failed with `WouldBlock` although no one
/// held or waited for it (the request queued behind the copy, which only a blocking waiter
/// breaks). It must be granted, with a private page.
#[test]
fn try_request_for_writing_breaks_a_copy_that_nobody_holds() {
    let (pages, _swap) = pool(4);
    let x = pages.anonymous(8 * PAGE as u64).unwrap();
    put(&x, 4, 1);
    let y = x.copy().unwrap();
    let c = y.register().unwrap();
    let mut g = c.try_request(4, Access::Write).unwrap();
    assert_eq!(&g[..], &pattern(4, 1)[..]);
    g.bytes_mut().unwrap().copy_from_slice(&pattern(4, 2));
    drop(g);
    assert_eq!(get(&x, 4), pattern(4, 1));
    assert_eq!(get(&y, 4), pattern(4, 2));
    // Resident now as a proxy (read first), then written by a non-blocking request: same.
    let _ = get(&y, 5);
    let mut g = c.try_request(5, Access::Write).unwrap();
    g.bytes_mut().unwrap()[0] = 9;
    drop(g);
    assert_eq!(get(&x, 5), vec![0; PAGE]);
}

/// A copy of a file outlives the file's object: the frozen layer under it reads the file, which
/// an anonymous copy cannot adopt, so compacting (or a miss walking the chain) must leave the
/// layer in place and every page must still read the snapshot, resident or not. (Mutation
/// testing: a collapse that ignored the layer's file survived every other test.)
#[test]
fn a_copy_of_a_closed_file_keeps_reading_the_file_through_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (pages, swap) = pool(4);
    let n = 12u64;
    let file = file_object(&pages, &path, n);
    let snap = file.copy().unwrap();
    put(&snap, 2, 5); // one private page of the copy's own
    file.close().unwrap();
    // Only the copy reads the layer now; it holds the file's pages, so it stays.
    assert_eq!(
        snap.compact(),
        1,
        "a layer holding a file's pages was collapsed"
    );
    assert_eq!(snap.copy_stats().depth, 1);
    for round in 0..2 {
        for p in 0..n {
            let v = if p == 2 { 5 } else { 1 };
            assert_eq!(get(&snap, p), pattern(p, v), "round {round}, page {p}");
        }
        // Reading 12 pages through 4 frames reclaimed most of them: read them again from the
        // file through the layer.
        assert_eq!(snap.compact(), 1);
    }
    drop(snap);
    assert_eq!(pages.census().unwrap().free, 4);
    assert_eq!(swap.in_use(), 0);
}

/// A break leaves the layer's page as it was: a page the layer holds clean (zero-filled, never
/// written) is dropped by reclaim, not written to swap; only the writer's private page is.
/// (Mutation testing: a break marking an anonymous layer's page dirty survived.)
#[test]
fn a_break_writes_only_the_private_page_to_swap() {
    let (pages, swap) = pool(4);
    let x = pages.anonymous(16 * PAGE as u64).unwrap();
    assert_eq!(get(&x, 0), zeros());
    let y = x.copy().unwrap();
    put(&x, 0, 1);
    // Pressure: every frame goes to another object's clean pages.
    let z = pages.anonymous(16 * PAGE as u64).unwrap();
    for p in 0..12 {
        assert_eq!(get(&z, p), zeros());
    }
    assert!(!x.is_resident(0));
    assert_eq!(swap.in_use(), 1, "only x's private page 0 belongs in swap");
    assert_eq!(get(&x, 0), pattern(0, 1));
    assert_eq!(get(&y, 0), zeros());
}

#[test]
fn an_upgrade_breaks_the_copy_when_the_holders_are_out_of_line() {
    // A fifth client's grant is kept out of line (EXT_READ on the entry, not a HOLD bit): its
    // upgrade must still count that as its own hold when it breaks the shared page.
    let (pages, _swap) = pool(8);
    let x = pages.anonymous(2 * PAGE as u64).unwrap();
    put(&x, 0, 1);
    let y = x.copy().unwrap();
    let clients: Vec<_> = (0..5).map(|_| y.register().unwrap()).collect();
    let fifth = &clients[4];
    let mut g = fifth.request(0, Access::Read).unwrap();
    assert_eq!(&g[..], &pattern(0, 1)[..]);
    assert_eq!(
        y.arbitration().unwrap().records,
        1,
        "the grant is not out of line"
    );
    let shared = g.frame();
    g.upgrade_timeout(Duration::from_secs(2)).unwrap();
    assert_ne!(g.frame(), shared, "the upgrade did not break the copy");
    g.bytes_mut().unwrap().copy_from_slice(&pattern(0, 2));
    drop(g);
    assert_eq!(get(&y, 0), pattern(0, 2));
    assert_eq!(get(&x, 0), pattern(0, 1), "the break reached the source");
    assert_eq!(pages.stats().cow_breaks, 1);
    let census = y.arbitration().unwrap();
    assert_eq!((census.held_pages, census.records), (0, 0), "{census:?}");
}

/// A break that finds no frame for the private page (every frame pinned) fails `Exhausted` and
/// gives back the read pin it took on the layer's page: once everything is dropped every frame is
/// free again (semantic mutant 074: with the pin kept, the layer's frame is never freed).
#[test]
fn a_break_that_finds_no_frame_gives_its_layer_pin_back() {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 64).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(2)
        .swap(swap)
        .wait_bound(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let x = pages.anonymous(4 * PAGE as u64).unwrap();
    put(&x, 0, 1);
    let y = x.copy().unwrap();
    assert_eq!(get(&y, 0), pattern(0, 1)); // Y0: a proxy of the layer's frame
    let pinned = x.read(1).unwrap(); // the other frame
    match y.write(0) {
        Err(pagecore::Error::Exhausted { .. }) => {}
        other => panic!(
            "the break should find no frame, got {:?}",
            other.map(|_| ())
        ),
    }
    drop(pinned);
    assert_eq!(get(&y, 0), pattern(0, 1));
    drop((x, y));
    let c = pages.census().unwrap();
    assert_eq!(c.free, 2, "a frame outlived the objects: {c:?}");
}
