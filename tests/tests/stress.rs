//! Stress on real threads and real temp files: threads write known patterns to disjoint and
//! overlapping pages of several objects through a pool ten times smaller than the data; readers
//! check that no page is ever seen torn (I4); after sync every byte on disk is what the model
//! says (I3, I6), and the pool's census adds up (I1).

use pagecore::{FileAccessor, PageMapper, Pages};
use std::sync::Arc;
use std::thread;

const PAGE: usize = 512;
const OBJECTS: usize = 3;
const PAGES: u64 = 64; // per object
const WRITERS: u64 = 4;
const ROUNDS: u64 = 300;
/// Pages [0, SHARED) of each object are written by every thread, each in its own byte slice;
/// pages [SHARED, PAGES) are each owned by one thread (page % WRITERS).
const SHARED: u64 = 8;
const SLICE: usize = PAGE / WRITERS as usize;

/// Content of an owned page after round `r` of its owner: every 8-byte word is the same stamp.
fn stamp(obj: usize, page: u64, r: u64) -> u64 {
    ((obj as u64) << 48) | (page << 24) | (r + 1)
}

fn fill_owned(buf: &mut [u8], v: u64) {
    for w in buf.chunks_exact_mut(8) {
        w.copy_from_slice(&v.to_le_bytes());
    }
}

/// An owned page is never torn: all words equal, and either never written (zero) or a stamp of
/// this very page.
fn check_owned(obj: usize, page: u64, buf: &[u8]) {
    let first = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert!(
        buf.chunks_exact(8)
            .all(|w| u64::from_le_bytes(w.try_into().unwrap()) == first),
        "torn page {page} of object {obj}"
    );
    assert!(
        first == 0 || first >> 24 == ((obj as u64) << 24) | page,
        "page {page} of object {obj} shows another page's bytes: {first:#x}"
    );
}

#[test]
fn writers_and_readers_through_a_small_pool() {
    let dir = tempfile::tempdir().unwrap();
    let data_pages = OBJECTS as u64 * PAGES;
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(data_pages / 10)
        .build()
        .unwrap();
    let objects: Vec<PageMapper> = (0..OBJECTS)
        .map(|i| {
            let acc = FileAccessor::open(dir.path().join(format!("obj{i}")), PAGE).unwrap();
            pages.open(acc, PAGES * PAGE as u64).unwrap()
        })
        .collect();
    let objects = Arc::new(objects);

    let mut handles = Vec::new();
    for t in 0..WRITERS {
        let objects = objects.clone();
        handles.push(thread::spawn(move || {
            for r in 0..ROUNDS {
                for (o, obj) in objects.iter().enumerate() {
                    for p in (SHARED..PAGES).filter(|p| p % WRITERS == t) {
                        fill_owned(&mut obj.write(p).unwrap(), stamp(o, p, r));
                    }
                    for p in 0..SHARED {
                        let slice = vec![(t as u8 + 1).wrapping_mul(r as u8 + 1); SLICE];
                        obj.write_at(p * PAGE as u64 + t * SLICE as u64, &slice)
                            .unwrap();
                    }
                }
            }
        }));
    }
    for _ in 0..2 {
        let objects = objects.clone();
        handles.push(thread::spawn(move || {
            for _ in 0..ROUNDS {
                for (o, obj) in objects.iter().enumerate() {
                    for p in SHARED..PAGES {
                        check_owned(o, p, &obj.read(p).unwrap());
                    }
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    for obj in objects.iter() {
        obj.sync().unwrap();
    }
    let stats = pages.stats().unwrap();
    assert_eq!(stats.census.total() as u64, data_pages / 10);
    assert_eq!(stats.census.dirty, 0, "sync left dirty pages");
    assert!(
        stats.reclaims > 0 && stats.writebacks > 0,
        "no pressure: {stats:?}"
    );

    // Every byte on disk is what the model says.
    for o in 0..OBJECTS {
        let disk = std::fs::read(dir.path().join(format!("obj{o}"))).unwrap();
        assert_eq!(disk.len(), PAGES as usize * PAGE);
        for p in 0..PAGES {
            let page = &disk[p as usize * PAGE..(p as usize + 1) * PAGE];
            let mut want = vec![0u8; PAGE];
            if p < SHARED {
                for t in 0..WRITERS as usize {
                    want[t * SLICE..(t + 1) * SLICE].fill((t as u8 + 1).wrapping_mul(ROUNDS as u8));
                }
            } else {
                fill_owned(&mut want, stamp(o, p, ROUNDS - 1));
            }
            assert_eq!(page, &want[..], "object {o} page {p} on disk");
        }
    }
    let objects = Arc::try_unwrap(objects).unwrap();
    for obj in objects {
        obj.close().unwrap();
    }
    assert_eq!(pages.census().unwrap().free as u64, data_pages / 10);
}
