//! Objects larger than one AccessMap leaf (512 pages): every path that walks an object's entries
//! (`sync`, `close`, a copy's freeze) must see the pages of every leaf, with their own indices.
//! Found by mutation testing: `AccessMap::entries` numbering pages wrongly past the first leaf
//! survived every other test (no test had more than one leaf of resident pages).

use pagecore::{Accessor, MemoryAccessor, Pages};
use std::sync::Arc;

const PAGE: usize = 64;
const N: u64 = 2000;
const SPREAD: [u64; 7] = [0, 1, 511, 512, 1023, 1536, 1999];

#[test]
fn sync_and_close_write_back_pages_of_every_leaf() {
    let pages = Pages::builder().page_size(PAGE).frames(16).build().unwrap();
    let store = Arc::new(MemoryAccessor::new());
    let obj = pages.open(store.clone(), N * PAGE as u64).unwrap();
    for &p in &SPREAD {
        obj.write(p).unwrap()[..8].copy_from_slice(&p.to_le_bytes());
    }
    obj.sync().unwrap();
    for &p in &SPREAD {
        let mut buf = vec![0; PAGE];
        store.fill(p, &mut buf).unwrap();
        assert_eq!(buf[..8], p.to_le_bytes(), "page {p} after sync");
    }
    for &p in &SPREAD {
        obj.write(p).unwrap()[8..16].copy_from_slice(&(p + 7).to_le_bytes());
    }
    obj.close().unwrap();
    for &p in &SPREAD {
        let mut buf = vec![0; PAGE];
        store.fill(p, &mut buf).unwrap();
        assert_eq!(buf[8..16], (p + 7).to_le_bytes(), "page {p} after close");
    }
    assert_eq!(pages.census().unwrap().free, 16);
}

#[test]
fn a_copy_freezes_pages_of_every_leaf() {
    let pages = Pages::builder().page_size(PAGE).frames(16).build().unwrap();
    let obj = pages.anonymous(N * PAGE as u64).unwrap();
    for &p in &SPREAD {
        obj.write(p).unwrap()[..8].copy_from_slice(&p.to_le_bytes());
    }
    let copy = obj.copy().unwrap();
    for &p in &SPREAD {
        obj.write(p).unwrap()[..8].copy_from_slice(&(p + 1).to_le_bytes());
    }
    for &p in &SPREAD {
        assert_eq!(copy.read(p).unwrap()[..8], p.to_le_bytes(), "copy page {p}");
        assert_eq!(obj.read(p).unwrap()[..8], (p + 1).to_le_bytes(), "page {p}");
    }
}

/// A wait on a page in a high frame parks on that frame's bucket of the page parkers (64 of
/// them, frame % 64). A pool of more than 64 x 64 frames puts a page where a wrong bucket
/// computation (frame / 64) would index past the table.
#[test]
fn waits_on_pages_in_high_frames_of_a_large_pool() {
    const FRAMES: u64 = 64 * 64 + 64;
    let pages = Pages::builder()
        .page_size(8)
        .frames(FRAMES)
        .wait_bound(Some(std::time::Duration::from_millis(10)))
        .build()
        .unwrap();
    let obj = pages.open(MemoryAccessor::new(), FRAMES * 8).unwrap();
    // Faulted in order, page p lands in frame p (the free list hands out frame 0 first).
    for p in 0..FRAMES {
        drop(obj.read(p).unwrap());
    }
    let high = FRAMES - 10;
    let g = obj.read(high).unwrap();
    assert_eq!(g.frame() as u64, high);
    // A writer waits for the reader (the bound, then Busy).
    let e = obj.write(high).map(|_| ()).unwrap_err();
    assert!(matches!(e, pagecore::Error::Busy { .. }), "{e}");
    drop(g);
    obj.write(high).unwrap()[0] = 1;
    assert_eq!(obj.read(high).unwrap()[0], 1);
    // The same for the arbitration side table and its parkers (64 shards, page % 64): a client
    // waiting behind another on a page beyond 64 x 64.
    let (a, b) = (obj.register().unwrap(), obj.register().unwrap());
    let held = a.request(high, pagecore::Access::Write).unwrap();
    let mut waiting = b.enqueue(high, pagecore::Access::Read).unwrap();
    assert!(!waiting.is_granted().unwrap());
    assert_eq!(obj.arbitration().unwrap().waiting, 1);
    drop(held);
    let g = waiting.wait().unwrap();
    assert_eq!(g[0], 1);
}
