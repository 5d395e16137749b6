//! Private (copy-on-write) mappings on real memory (issue 20): `Mapping::private` maps a copy
//! of an object, as `mmap(MAP_PRIVATE)` maps a file. Its loads of pages it never stored to read
//! the object as it was when the mapping was made; its stores are its own. Checked against
//! models under eviction pressure, with the source written through guards meanwhile. Each test
//! prints `SKIPPED` where userfaultfd is not permitted (see `mapping.rs`).
#![cfg(target_os = "linux")]

mod mapped;

use mapped::{initial, load, pool, store, Backing, PAGE};
use pagecore::{Mapping, PageMapper};
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use mapped::{private, private_with};

fn word(object: &PageMapper, p: u64) -> u64 {
    u64::from_le_bytes(object.read(p).unwrap()[..8].try_into().unwrap())
}

fn set(object: &PageMapper, p: u64, v: u64) {
    object.write(p).unwrap()[..8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn a_private_mapping_reads_the_snapshot_and_keeps_its_stores() {
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), 8 * PAGE as u64).unwrap();
    set(&obj, 1, 11);
    let Some(m) = private(&obj) else { return };
    set(&obj, 1, 22);
    set(&obj, 2, 33);
    assert_eq!(
        load(&m, 1),
        11,
        "the object's page as it was at the mapping"
    );
    assert_eq!(
        load(&m, 2),
        2000,
        "a page the object wrote after the mapping"
    );
    store(&m, 3, 7);
    store(&m, 1, 8);
    assert_eq!((load(&m, 3), load(&m, 1)), (7, 8));
    assert_eq!(word(&obj, 3), 3000, "the object saw the mapping's store");
    assert_eq!(word(&obj, 1), 22);
    obj.sync().unwrap();
    assert_eq!(
        (b.word(1), b.word(2), b.word(3)),
        (22, 33, 3000),
        "the object's file holds the object's writes only"
    );
    // The mapping's object is the copy: its guards see the mapping's stores.
    assert_eq!(word(m.object(), 3), 7);
    assert_eq!(word(m.object(), 2), 2000);
    // The rest of each page came along too.
    let tail = unsafe { std::slice::from_raw_parts(m.as_ptr().add(5 * PAGE), PAGE) };
    assert_eq!(tail, &initial(5)[..]);
}

#[test]
fn two_private_mappings_and_the_source_never_see_each_others_stores() {
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), 4 * PAGE as u64).unwrap();
    let Some(x) = private(&obj) else { return };
    set(&obj, 0, 1);
    let y = private(&obj).unwrap();
    store(&x, 0, 10);
    store(&y, 0, 20);
    set(&obj, 0, 30);
    assert_eq!((load(&x, 0), load(&y, 0), word(&obj, 0)), (10, 20, 30));
    assert_eq!(load(&x, 1), 1000);
    assert_eq!(load(&y, 1), 1000);
    // y was made after the object's write of 1 to page 0; x before it.
    drop(x);
    let z = private(&obj).unwrap();
    assert_eq!(load(&z, 0), 30);
    assert_eq!(load(&y, 0), 20);
}

#[test]
fn another_mapping_of_a_private_mapping_shares_its_pages() {
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b, 4 * PAGE as u64).unwrap();
    let Some(x) = private(&obj) else { return };
    let y = x.share().unwrap();
    store(&x, 2, 5);
    assert_eq!(load(&y, 2), 5, "the views of one private copy are coherent");
    assert_eq!(word(&obj, 2), 2000);
}

#[test]
fn a_private_mapping_outlives_its_source_handle() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), 16 * PAGE as u64).unwrap();
    for p in 0..16 {
        set(&obj, p, 100 + p);
    }
    let Some(m) = private(&obj) else { return };
    for p in 0..16 {
        set(&obj, p, 200 + p);
    }
    obj.close().unwrap();
    drop(obj);
    for round in 0..3 {
        for p in 0..16 {
            assert_eq!(load(&m, p), 100 + p, "round {round}, page {p}");
        }
    }
    assert_eq!(
        b.word(4),
        204,
        "the source's close wrote its own pages back"
    );
    drop(m);
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived both: {c:?}");
}

/// As above over anonymous memory: once the source is gone, the frozen layer has one reader
/// left (the mapping's copy), which must not adopt the layer's frames (a mapped copy's pages
/// live in its memfd): its misses keep copying from the layer.
#[test]
fn a_private_mapping_of_anonymous_memory_outlives_its_source() {
    let pages = pool(8);
    let obj = pages.anonymous(16 * PAGE as u64).unwrap();
    for p in 0..16 {
        set(&obj, p, 100 + p);
    }
    let Some(m) = private(&obj) else { return };
    for p in (0..16).step_by(2) {
        set(&obj, p, 200 + p);
    }
    assert_eq!(load(&m, 3), 103);
    drop(obj);
    for round in 0..3 {
        for p in 0..16 {
            assert_eq!(load(&m, p), 100 + p, "round {round}, page {p}");
        }
        for p in (round..16).step_by(3) {
            store(&m, p, 300 + p + round);
        }
        for p in (round..16).step_by(3) {
            assert_eq!(load(&m, p), 300 + p + round, "round {round}, page {p}");
        }
        for p in (round..16).step_by(3) {
            store(&m, p, 100 + p);
        }
    }
    assert_eq!(m.object().copy_stats().depth, 1, "the layer stays below");
    drop(m);
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived both: {c:?}");
}

/// A mapped file (a store object here) and its private mappings: the file's mappings keep
/// storing and the file holds their stores only; each private mapping reads the file as it was
/// when it was made, also once eviction dropped its pages and the file was written since
/// (SPEC §2.8, copies of a mapped object; scenario M18).
#[test]
fn private_mappings_of_a_mapped_file_keep_their_snapshots() {
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    let Some(s) = mapped::map(&pages, &b, 8) else {
        return;
    };
    let s2 = s.share().unwrap();
    store(&s, 1, 11);
    let p = private(s.object()).unwrap();
    assert_eq!(b.word(1), 11, "the copy wrote the dirty page back");
    store(&s2, 1, 111);
    store(&s, 2, 22);
    let copy = s.object().copy().unwrap();
    store(&s, 2, 222);
    assert_eq!((load(&p, 1), load(&p, 2), load(&p, 3)), (11, 2000, 3000));
    assert_eq!((word(&copy, 1), word(&copy, 2)), (111, 22));
    store(&p, 3, 33);
    assert_eq!((load(&s, 3), load(&s2, 1), load(&s2, 2)), (3000, 111, 222));
    // Eviction pressure: another object's pages take every frame, then all read their own.
    let other = pages.anonymous(32 * PAGE as u64).unwrap();
    for q in 0..32 {
        set(&other, q, q);
    }
    s.sync().unwrap();
    assert_eq!(
        (b.word(1), b.word(2), b.word(3)),
        (111, 222, 3000),
        "the file"
    );
    assert_eq!((load(&p, 1), load(&p, 2), load(&p, 3)), (11, 2000, 33));
    assert_eq!(
        (word(&copy, 1), word(&copy, 2), word(&copy, 3)),
        (111, 22, 3000)
    );
    assert_eq!((load(&s, 1), load(&s2, 2), load(&s, 3)), (111, 222, 3000));
    drop((s, s2, p, copy, other));
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived them all: {c:?}");
}

/// Mapped anonymous memory (over a swap area): its private mappings and copies read it as it
/// was when they were made, while its shared mappings keep storing; a private mapping of a
/// private mapping too (SPEC §2.8, copies of a mapped object; scenario M14).
#[test]
fn private_mappings_of_mapped_anonymous_memory_keep_their_snapshots() {
    let pages = pool(16);
    let swap = pagecore::ShareArc::new(pagecore::SwapArea::temporary(PAGE, 64).unwrap());
    let Some(s) = mapped::or_skip(Mapping::new(
        &pages,
        pagecore::Anonymous::new(swap.clone()),
        8 * PAGE as u64,
    )) else {
        return;
    };
    let s2 = s.share().unwrap();
    store(&s, 1, 11);
    store(&s2, 2, 22);
    let p = private(s.object()).unwrap();
    let copy = s.object().copy().unwrap();
    assert_eq!(
        s.object().copy_stats().depth,
        2,
        "a layer per copy under the source"
    );
    store(&s2, 1, 111);
    store(&s, 3, 33);
    assert_eq!((load(&p, 1), load(&p, 2), load(&p, 3)), (11, 22, 0));
    assert_eq!(
        (word(&copy, 1), word(&copy, 2), word(&copy, 3)),
        (11, 22, 0)
    );
    store(&p, 2, 222);
    set(&copy, 2, 2222);
    let pp = private(p.object()).unwrap();
    store(&p, 1, 1111);
    assert_eq!(
        (load(&pp, 1), load(&pp, 2)),
        (11, 222),
        "the private mapping's snapshot"
    );
    assert_eq!(
        (load(&s, 1), load(&s2, 2), load(&s, 3)),
        (111, 22, 33),
        "the source saw a copy's store"
    );
    assert_eq!(
        (load(&p, 1), load(&p, 2), word(&copy, 2)),
        (1111, 222, 2222)
    );
    // Eviction pressure: another object's pages take every frame, then all read their own.
    let other = pages.anonymous(32 * PAGE as u64).unwrap();
    for q in 0..32 {
        set(&other, q, q);
    }
    assert_eq!((load(&s2, 1), load(&s, 2), load(&s2, 3)), (111, 22, 33));
    assert_eq!((load(&p, 1), load(&p, 2), load(&p, 3)), (1111, 222, 0));
    assert_eq!((load(&pp, 1), load(&pp, 2)), (11, 222));
    assert_eq!(
        (word(&copy, 1), word(&copy, 2), word(&copy, 3)),
        (11, 2222, 0)
    );
    drop((s, s2, p, pp, copy, other));
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived them all: {c:?}");
    assert_eq!(swap.in_use(), 0, "swap slots outlived them all");
}

/// Two threads store through two shared mappings of a mapped object (40 pages in 8 frames)
/// while one of them makes a private mapping every 300 steps; each private mapping gets a
/// thread that loads and stores against its model (the object as of its making, plus its own
/// stores), and the object is checked against its model at the end (and its file, if it has
/// one).
fn private_mappings_of_a_shared_object_under_eviction(
    pages: &pagecore::Pages,
    accessor: impl pagecore::Accessor,
    initial: impl Fn(u64) -> u64,
    file: Option<&Backing>,
) {
    const N: u64 = 40;
    let Some(s) = mapped::or_skip(Mapping::builder().handlers(2).build(
        pages,
        accessor,
        N * PAGE as u64,
    )) else {
        return;
    };
    let s = Arc::new(s);
    let s2 = Arc::new(s.share().unwrap());
    let start: Vec<u64> = (0..N).map(&initial).collect();
    // Thread 0 stores to even pages through `s` and makes the private mappings; thread 1 stores
    // to odd pages through `s2`: each owns its pages' model.
    let other = {
        let s2 = s2.clone();
        let mut model = start.clone();
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            for n in 0..3000u64 {
                let p = rng.random_range(0..N / 2) * 2 + 1;
                if rng.random_bool(0.5) {
                    store(&s2, p, 1 << 40 | n);
                    model[p as usize] = 1 << 40 | n;
                } else {
                    assert_eq!(load(&s2, p), model[p as usize], "odd page {p}");
                }
            }
            model
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut model = start;
    let mut privates = Vec::new();
    for n in 0..3000u64 {
        let p = rng.random_range(0..N / 2) * 2;
        store(&s, p, 2 << 40 | n);
        model[p as usize] = 2 << 40 | n;
        if n % 300 == 150 {
            let m = private(s.object()).unwrap();
            // The even pages are known now; the odd ones are whatever thread 1 stored last,
            // and must not change but by this mapping's own stores.
            let snap: Vec<u64> = (0..N).map(|q| load(&m, q)).collect();
            for q in (0..N).step_by(2) {
                assert_eq!(
                    snap[q as usize], model[q as usize],
                    "snapshot at {n}, page {q}"
                );
            }
            let i = privates.len() as u64;
            privates.push(std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + i);
                let mut model = snap;
                for k in 0..800u64 {
                    let q = rng.random_range(0..N);
                    if rng.random_bool(0.3) {
                        store(&m, q, (10 + i) << 40 | k);
                        model[q as usize] = (10 + i) << 40 | k;
                    } else {
                        assert_eq!(load(&m, q), model[q as usize], "private {i}, page {q}");
                    }
                }
                for q in 0..N {
                    assert_eq!(
                        load(&m, q),
                        model[q as usize],
                        "private {i} at its end, page {q}"
                    );
                }
            }));
        }
    }
    let odd = other.join().unwrap();
    for t in privates {
        t.join().unwrap();
    }
    for q in 0..N {
        let want = if q % 2 == 0 {
            model[q as usize]
        } else {
            odd[q as usize]
        };
        assert_eq!(load(&s, q), want, "source, page {q}");
        assert_eq!(load(&s2, q), want, "source's other mapping, page {q}");
    }
    if let Some(b) = file {
        s.sync().unwrap();
        for q in 0..N {
            let want = if q % 2 == 0 {
                model[q as usize]
            } else {
                odd[q as usize]
            };
            assert_eq!(b.word(q), want, "the file, page {q}");
        }
    }
    drop((s, s2));
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived them all: {c:?}");
}

#[test]
fn private_mappings_of_shared_anonymous_memory_under_eviction_match_models() {
    let pages = pool(8);
    let swap = pagecore::ShareArc::new(pagecore::SwapArea::temporary(PAGE, 1024).unwrap());
    private_mappings_of_a_shared_object_under_eviction(
        &pages,
        pagecore::Anonymous::new(swap.clone()),
        |_| 0,
        None,
    );
    assert_eq!(swap.in_use(), 0, "swap slots outlived them all");
}

#[test]
fn private_mappings_of_a_shared_file_under_eviction_match_models() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    private_mappings_of_a_shared_object_under_eviction(&pages, b.clone(), |p| p * 1000, Some(&b));
}

/// Three threads: two store through their own private mappings (made at different times) and
/// one writes the source through guards, over 40 pages in 8 frames (every page evicted and
/// faulted again many times: private pages to swap, clean copies dropped and copied again,
/// the source's pages to its file). Each mapping's model is the source as of its creation plus
/// its own stores.
#[test]
fn private_mappings_and_their_source_under_eviction_pressure_match_models() {
    const N: u64 = 40;
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), N * PAGE as u64).unwrap();
    for p in (0..N).step_by(3) {
        set(&obj, p, 1_000_000 + p);
    }
    let mut source: Vec<u64> = (0..N)
        .map(|p| if p % 3 == 0 { 1_000_000 + p } else { p * 1000 })
        .collect();
    let Some(x) = private_with(Mapping::builder().handlers(2), &obj) else {
        return;
    };
    let snap_x = source.clone();
    for p in (1..N).step_by(5) {
        set(&obj, p, 2_000_000 + p);
        source[p as usize] = 2_000_000 + p;
    }
    let y = private(&obj).unwrap();
    let snap_y = source.clone();
    let maps = Arc::new([x, y]);
    let threads: Vec<_> = [snap_x, snap_y]
        .into_iter()
        .enumerate()
        .map(|(i, mut model)| {
            let maps = maps.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64 + 7);
                let m = &maps[i];
                for n in 0..3000u64 {
                    let p = rng.random_range(0..N);
                    if rng.random_bool(0.3) {
                        let v = (i as u64 + 1) << 40 | n;
                        store(m, p, v);
                        model[p as usize] = v;
                    } else {
                        assert_eq!(load(m, p), model[p as usize], "mapping {i}, page {p}");
                    }
                }
                model
            })
        })
        .collect();
    let writer = {
        let obj = obj.clone();
        let mut model = source.clone();
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(99);
            for n in 0..1500u64 {
                let p = rng.random_range(0..N);
                if rng.random_bool(0.5) {
                    let v = 3 << 40 | n;
                    set(&obj, p, v);
                    model[p as usize] = v;
                } else {
                    assert_eq!(word(&obj, p), model[p as usize], "source, page {p}");
                }
            }
            model
        })
    };
    let models: Vec<Vec<u64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let source = writer.join().unwrap();
    for (i, model) in models.iter().enumerate() {
        for p in 0..N {
            assert_eq!(
                load(&maps[i], p),
                model[p as usize],
                "mapping {i}, page {p}"
            );
            assert_eq!(word(maps[i].object(), p), model[p as usize]);
        }
    }
    for p in 0..N {
        assert_eq!(word(&obj, p), source[p as usize], "source, page {p}");
    }
    obj.sync().unwrap();
    for p in 0..N {
        assert_eq!(b.word(p), source[p as usize], "the source's file, page {p}");
    }
    assert!(b.fills.load(SeqCst) > 0);
    let s = pages.stats();
    assert!(s.evictions > N, "no eviction pressure: {s:?}");
    drop(maps);
    obj.close().unwrap();
    drop(obj);
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived the objects: {c:?}");
}

/// README's example of two mappings of one file and a private one, as written there (over a
/// file of its own).
#[test]
fn the_readme_s_shared_and_private_mappings_of_a_file() {
    use pagecore::{FileAccessor, Pages};
    let path = std::env::temp_dir().join(format!("pagecore-readme-{}.bin", std::process::id()));
    let pages = Pages::builder().page_size(4096).frames(8).build().unwrap();
    let Some(map) = mapped::or_skip(Mapping::new(
        &pages,
        FileAccessor::open(&path, 4096).unwrap(),
        64 * 4096,
    )) else {
        return;
    };
    let bytes = map.as_ptr();
    for p in 0..64 {
        unsafe { *bytes.add(p * 4096) = p as u8 };
    }
    map.sync().unwrap();
    assert_eq!(map.object().read(63).unwrap()[0], 63);
    let other = map.share().unwrap();
    let snapshot = Mapping::private(map.object()).unwrap();
    unsafe { *bytes = 200 };
    assert_eq!(unsafe { *other.as_ptr() }, 200);
    assert_eq!(unsafe { *snapshot.as_ptr() }, 0);
    unsafe { *snapshot.as_ptr().add(4096) = 7 };
    assert_eq!(unsafe { *bytes.add(4096) }, 1);
    drop((map, other, snapshot));
    let file = std::fs::read(&path).unwrap();
    assert_eq!((file[0], file[4096], file[63 * 4096]), (200, 1, 63));
    std::fs::remove_file(&path).unwrap();
}

/// An awaited write of a mapped file's page after a copy makes the page the file's own where it
/// is (no frame for a private copy: a mapped object holds no proxies), and the private mapping
/// keeps its snapshot through eviction.
#[test]
fn awaited_writes_of_a_mapped_file_after_a_private_mapping() {
    let pages = pool(6);
    let b = Arc::new(Backing::default());
    let Some(s) = mapped::map(&pages, &b, 12) else {
        return;
    };
    for p in 0..12 {
        store(&s, p, 10 + p);
    }
    let m = private(s.object()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for p in 0..12 {
            let mut g = s.object().write_async(p).await.unwrap();
            g[..8].copy_from_slice(&(100 + p).to_le_bytes());
        }
    });
    for p in 0..12 {
        assert_eq!(load(&m, p), 10 + p, "the snapshot, page {p}");
        assert_eq!(load(&s, p), 100 + p, "the file's mapping, page {p}");
    }
    s.sync().unwrap();
    let other = pages.anonymous(24 * PAGE as u64).unwrap();
    for q in 0..24 {
        set(&other, q, q);
    }
    for p in 0..12 {
        assert_eq!((load(&m, p), b.word(p)), (10 + p, 100 + p), "page {p}");
    }
}

/// Snapshots of a mapped file made and dropped in turn (a private mapping per checkpoint, with
/// stores through the file's mapping between them) keep its chain one layer deep: the file
/// drops its last layer once no other object reads it (SPEC §2.8, copies of a mapped
/// object), and the file and every snapshot keep their content.
#[test]
fn a_mapped_file_s_chain_stays_shallow_with_checkpoints() {
    const N: u64 = 16;
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(s) = mapped::map(&pages, &b, N) else {
        return;
    };
    let mut model: Vec<u64> = (0..N).map(|p| p * 1000).collect();
    let mut last = None;
    for round in 0..40u64 {
        if let Some((old, snap)) = last.take() {
            let old: Mapping = old;
            let snap: Vec<u64> = snap;
            for p in 0..N {
                assert_eq!(load(&old, p), snap[p as usize], "round {round}, page {p}");
            }
        }
        let m = (private(s.object()).unwrap(), model.clone());
        let depth = s.object().copy_stats().depth;
        assert_eq!(depth, 1, "round {round}: depth {depth}");
        for p in (round % 3..N).step_by(3) {
            store(&s, p, round << 20 | p);
            model[p as usize] = round << 20 | p;
        }
        last = Some(m);
    }
    drop(last);
    s.object().compact();
    assert_eq!(s.object().copy_stats().depth, 0, "the last layer dropped");
    for p in 0..N {
        assert_eq!(load(&s, p), model[p as usize], "page {p}");
    }
    s.sync().unwrap();
    for p in 0..N {
        assert_eq!(b.word(p), model[p as usize], "the file, page {p}");
    }
    drop(s);
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived them all: {c:?}");
}
