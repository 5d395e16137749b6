//! Anonymous objects (issue 4, item 1): zero-fill on first touch, page-out to and page-in from a
//! real swap file, fork-style sharing, slots freed exactly once, a full swap area.

use pagecore::internals::sync::{Arc, ShareArc};
use pagecore::Anonymous;
use pagecore::SwapArea;
use pagecore::{Access, Error, Pages};
use std::time::Duration;

const PAGE: usize = 256;

fn pool(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(Some(Duration::from_millis(100)))
        .build()
        .unwrap()
}

/// The content page `p` gets in generation `g`: every byte depends on both.
fn pattern(p: u64, g: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|i| (p as u8).wrapping_mul(31) ^ g.wrapping_mul(7) ^ i as u8)
        .collect()
}

#[test]
fn first_touch_is_zero_and_does_no_io() {
    let pages = pool(4);
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 16).unwrap());
    let anon = Arc::new(Anonymous::new(swap.clone()));
    let obj = pages.open(anon.clone(), 64 * PAGE as u64).unwrap();
    // Reading never-touched pages, more of them than frames: clean zero pages are dropped by
    // reclaim without a page-out and come back as zeros.
    for round in 0..2 {
        for p in 0..32 {
            assert!(
                obj.read(p).unwrap().iter().all(|&b| b == 0),
                "round {round}"
            );
        }
    }
    assert_eq!(anon.swapped(), 0);
    assert_eq!(swap.in_use(), 0);
    assert_eq!(pages.stats().writebacks, 0);
}

#[test]
fn pages_go_to_swap_and_come_back() {
    let pages = pool(4);
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 64).unwrap());
    let anon = Arc::new(Anonymous::new(swap.clone()));
    let obj = pages.open(anon.clone(), 64 * PAGE as u64).unwrap();
    for g in 0..3u8 {
        for p in 0..40 {
            obj.write(p).unwrap().copy_from_slice(&pattern(p, g));
        }
        for p in 0..40 {
            assert_eq!(
                &obj.read(p).unwrap()[..],
                &pattern(p, g)[..],
                "page {p} gen {g}"
            );
        }
    }
    // Each page that went out has exactly one slot, rewritten in place by later page-outs.
    assert!(anon.swapped() >= 36, "{}", anon.swapped());
    assert_eq!(swap.in_use() as usize, anon.swapped());
    let mut slots: Vec<_> = (0..40).filter_map(|p| anon.slot_of(p)).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), anon.swapped(), "two pages share a slot");
    // sync writes nothing for anonymous memory.
    let before = pages.stats().writebacks;
    obj.sync().unwrap();
    assert_eq!(pages.stats().writebacks, before);
}

#[test]
fn shared_fork_style_and_freed_once_by_the_last_drop() {
    let pages = pool(8);
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 128).unwrap());
    let obj = pages
        .open(Anonymous::new(swap.clone()), 96 * PAGE as u64)
        .unwrap();
    let children: Vec<_> = (0..4).map(|_| obj.clone()).collect();
    std::thread::scope(|s| {
        for (t, child) in children.iter().enumerate() {
            s.spawn(move || {
                let c = child.register().unwrap();
                for p in (t as u64..96).step_by(4) {
                    let mut g = c.request(p, Access::Write).unwrap();
                    g.bytes_mut().unwrap().copy_from_slice(&pattern(p, t as u8));
                }
            });
        }
    });
    // Every handle sees every child's writes (one object, shared).
    for p in 0..96 {
        assert_eq!(&obj.read(p).unwrap()[..], &pattern(p, (p % 4) as u8)[..]);
    }
    assert!(swap.in_use() > 0);
    let writebacks = pages.stats().writebacks;
    drop(children);
    assert!(swap.in_use() > 0, "slots outlive all but the last handle");
    drop(obj);
    assert_eq!(swap.in_use(), 0, "the last drop frees every slot");
    assert_eq!(pages.census().unwrap().free, 8, "and every frame");
    // Discarded, not paged out: the last drop wrote nothing (8 dirty frames were resident).
    assert_eq!(pages.stats().writebacks, writebacks);
}

#[test]
fn a_full_swap_area_is_a_clear_error_and_the_pages_stay() {
    let pages = pool(2);
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 2).unwrap());
    let anon = Arc::new(Anonymous::new(swap.clone()));
    let obj = pages.open(anon.clone(), 16 * PAGE as u64).unwrap();
    // Capacity: 2 frames + 2 slots.
    for p in 0..4 {
        obj.write(p).unwrap().copy_from_slice(&pattern(p, 1));
    }
    assert_eq!(swap.in_use(), 2);
    // A fifth page needs a frame; paging a dirty page out fails: the swap area is full (ENOSPC).
    match obj.write(4) {
        Err(Error::WriteBack { source, .. }) => assert_eq!(source.raw_os_error(), Some(28)),
        other => panic!("expected the ENOSPC page-out error, got {other:?}"),
    }
    // The object recorded it too: sync reports it (once).
    match obj.sync() {
        Err(Error::WriteBack { source, .. }) => assert_eq!(source.raw_os_error(), Some(28)),
        other => panic!("expected the ENOSPC write-back error, got {other:?}"),
    }
    obj.sync().unwrap();
    // Nothing lost: pages 2 and 3 stay resident and dirty, pages 0 and 1 are in their slots.
    for p in 2..4 {
        assert_eq!(&obj.read(p).unwrap()[..], &pattern(p, 1)[..]);
    }
    for p in 0..2 {
        let mut buf = vec![0; PAGE];
        swap.read(anon.slot_of(p).unwrap(), &mut buf).unwrap();
        assert_eq!(buf, pattern(p, 1));
        // Paging them in needs a frame, and every frame holds a page that cannot go out.
        match obj.read(p) {
            Err(Error::WriteBack { source, .. }) => assert_eq!(source.raw_os_error(), Some(28)),
            other => panic!("expected ENOSPC, got {:?}", other.map(|g| g[0])),
        }
    }
    assert_eq!(
        obj.arbitration().unwrap().error_pages,
        0,
        "ENOSPC is expected"
    );
}

#[test]
fn slots_are_reused_and_the_swap_file_can_be_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swap");
    let pages = pool(2);
    let swap = ShareArc::new(SwapArea::create(&path, PAGE, 8).unwrap());
    for round in 0..3u8 {
        let obj = pages
            .open(Anonymous::new(swap.clone()), 8 * PAGE as u64)
            .unwrap();
        for p in 0..8 {
            obj.write(p).unwrap().copy_from_slice(&pattern(p, round));
        }
        for p in 0..8 {
            assert_eq!(&obj.read(p).unwrap()[..], &pattern(p, round)[..]);
        }
        assert!(swap.in_use() >= 6);
        drop(obj);
        assert_eq!(swap.in_use(), 0, "round {round}");
    }
    assert!(path.exists());
    assert!(std::fs::metadata(&path).unwrap().len() >= 6 * PAGE as u64);
    // A temporary area works (a page out and back in through it) and leaves no file behind: on
    // Unix it has no name from the start, so even a killed process leaks nothing.
    let temp = ShareArc::new(SwapArea::temporary(PAGE, 8).unwrap());
    let temp_path = temp.path().to_path_buf();
    #[cfg(unix)]
    assert!(
        !temp_path.exists(),
        "a temporary swap file is unlinked at once"
    );
    let obj = pages
        .open(Anonymous::new(temp.clone()), 4 * PAGE as u64)
        .unwrap();
    for p in 0..4 {
        obj.write(p).unwrap().copy_from_slice(&pattern(p, 9));
    }
    assert!(
        temp.in_use() >= 2,
        "two frames for four pages: some went to swap"
    );
    for p in 0..4 {
        assert_eq!(&obj.read(p).unwrap()[..], &pattern(p, 9)[..]);
    }
    drop((obj, temp));
    assert!(
        !temp_path.exists(),
        "a temporary swap file is removed on drop"
    );
}
