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
