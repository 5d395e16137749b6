//! Several mappings of one object on real memory (issue 20): `Mapping::share` and read-only
//! mappings. The mappings share each resident page (one memfd page, one frame), so they are
//! coherent as `MAP_SHARED` mappings of one file are; reclaim and sync take a page's access away
//! in every mapping. Each test prints `SKIPPED` where userfaultfd is not permitted (see
//! `mapping.rs`).
#![cfg(target_os = "linux")]

mod mapped;

use mapped::{load, map, pool, store, Backing, PAGE};
use pagecore::{Error, Mapping};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

#[test]
fn a_store_through_one_mapping_is_seen_by_the_next_load_through_another() {
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 8) else { return };
    let y = x.share().unwrap();
    assert_eq!((x.mappings(), y.mappings()), (2, 2));
    assert_ne!(x.as_ptr(), y.as_ptr(), "two ranges");
    assert_eq!(
        load(&y, 3),
        3000,
        "a first touch through the second mapping"
    );
    store(&x, 3, 1);
    assert_eq!(
        load(&y, 3),
        1,
        "y mapped the page before x's store: the same page"
    );
    store(&y, 3, 2);
    assert_eq!(load(&x, 3), 2);
    store(&y, 5, 50);
    assert_eq!(
        load(&x, 5),
        50,
        "x's first touch of a page y filled and stored to"
    );
    assert_eq!(
        b.fills.load(SeqCst),
        2,
        "each page filled once for both mappings"
    );
    let c = pages.census().unwrap();
    assert_eq!(
        c.resident, 2,
        "one frame per page, however many mappings: {c:?}"
    );
    x.sync().unwrap();
    assert_eq!(
        (b.word(3), b.word(5)),
        (2, 50),
        "stores through both written back"
    );
    // A guard sees the same page too.
    assert_eq!(
        u64::from_le_bytes(y.object().read(5).unwrap()[..8].try_into().unwrap()),
        50
    );
}

#[test]
fn stores_through_two_mappings_under_eviction_pressure_match_a_model() {
    let pages = pool(6);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 48) else { return };
    let y = x.share().unwrap();
    let maps = Arc::new([x, y]);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let maps = maps.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t + 100);
                // Thread t owns the pages p with p % 4 == t (its model is exact) and goes
                // through either mapping at random.
                let mut model: HashMap<u64, u64> = HashMap::new();
                for i in 0..3000u64 {
                    let p = rng.random_range(0..12) * 4 + t;
                    let m = &maps[rng.random_range(0..2usize)];
                    if rng.random_bool(0.5) {
                        let v = (t << 32) | i;
                        store(m, p, v);
                        model.insert(p, v);
                    } else {
                        let want = model.get(&p).copied().unwrap_or(p * 1000);
                        assert_eq!(load(m, p), want, "thread {t}, page {p}");
                    }
                }
                model
            })
        })
        .collect();
    let mut all = HashMap::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    maps[1].sync().unwrap();
    for p in 0..48 {
        let want = all.get(&p).copied().unwrap_or(p * 1000);
        assert_eq!(b.word(p), want, "page {p} in the backing store after sync");
        assert_eq!(
            load(&maps[0], p),
            want,
            "page {p} through the first mapping"
        );
        assert_eq!(
            load(&maps[1], p),
            want,
            "page {p} through the second mapping"
        );
    }
    assert!(
        pages.stats().reclaims > 0,
        "48 pages through 6 frames evict"
    );
    let c = pages.census().unwrap();
    assert!(c.resident <= 6, "{c:?}");
}

#[test]
fn the_object_outlives_all_but_its_last_mapping() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 4) else { return };
    let y = x.share().unwrap();
    store(&x, 1, 11);
    x.close().unwrap();
    assert_eq!(y.mappings(), 1);
    assert_eq!(
        b.flushes.load(SeqCst),
        0,
        "an earlier mapping's end writes nothing back"
    );
    assert_eq!(load(&y, 1), 11, "x's store stays in the object");
    store(&y, 2, 22);
    // A mapping made from the survivor still shares the object.
    let z = Mapping::builder().handlers(2).share(&y).unwrap();
    assert_eq!(load(&z, 2), 22);
    drop(y);
    assert_eq!(load(&z, 1), 11);
    z.close().unwrap();
    assert_eq!(
        (b.word(1), b.word(2)),
        (11, 22),
        "the last mapping's end wrote back"
    );
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived the mappings: {c:?}");
}

#[test]
fn a_read_only_mapping_sees_stores_and_refuses_its_own() {
    use std::io::Write;
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 4) else { return };
    let r = Mapping::builder().read_only(true).share(&x).unwrap();
    assert_eq!(load(&r, 0), 0, "a read fault through a read-only mapping");
    store(&x, 0, 5);
    assert_eq!(load(&r, 0), 5);
    // A store through the read-only range: read(2) into it fails with EFAULT (a CPU's store
    // would be a SIGSEGV), and the object is unchanged.
    let (mut rd, mut wr) = pipe();
    wr.write_all(&[9u8; 8]).unwrap();
    // SAFETY: reads into page 0 of the read-only mapping, which outlives the call.
    let n = unsafe { libc::read(rd.as_raw(), r.as_ptr().cast(), 8) };
    let err = std::io::Error::last_os_error();
    assert_eq!(n, -1, "read(2) into a read-only mapping succeeded");
    assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
    // Untouched pages too (the kernel checks the protection before any fault reaches us).
    // SAFETY: as above, page 2.
    let n = unsafe { libc::read(rd.as_raw(), r.as_ptr().add(2 * PAGE).cast(), 8) };
    assert_eq!(n, -1);
    assert_eq!(load(&x, 0), 5, "the object is unchanged");
    rd.drain();
    // A read-only mapping of a new object.
    let ro = Mapping::builder()
        .read_only(true)
        .build(&pages, b.clone(), 4 * PAGE as u64)
        .unwrap();
    assert_eq!(load(&ro, 3), 3000);
    drop(ro);
    // Reclaim and sync with a read-only mapping beside a writable one.
    for p in 0..4 {
        store(&x, p, 100 + p);
        assert_eq!(load(&r, p), 100 + p);
    }
    x.sync().unwrap();
    assert_eq!(b.word(3), 103);
    drop(x);
    assert_eq!(load(&r, 2), 102, "the read-only mapping keeps the object");
    drop(r);
    assert_eq!(b.word(2), 102);
}

#[test]
fn sharing_checks_its_options() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 4) else { return };
    assert!(matches!(
        Mapping::builder().handlers(0).share(&x),
        Err(Error::Map(_))
    ));
    assert_eq!(x.mappings(), 1, "a refused share leaves no view behind");
}

/// A pipe's ends, closed on drop.
fn pipe() -> (Fd, Fd) {
    let mut fds = [0; 2];
    // SAFETY: two ints for the kernel to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (Fd(fds[0]), Fd(fds[1]))
}

struct Fd(i32);

impl Fd {
    fn as_raw(&self) -> i32 {
        self.0
    }

    /// Reads whatever is buffered (non-blocking).
    fn drain(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::fcntl(self.0, libc::F_SETFL, libc::O_NONBLOCK) };
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer.
        while unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

impl std::io::Write for Fd {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: writes from a live slice to our own descriptor.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closes our own descriptor once.
        unsafe { libc::close(self.0) };
    }
}

/// The frame of `obj`'s page `page`, found through the reverse map (no guard: a guard would
/// take the mappings' access away).
fn frame_of(pages: &pagecore::Pages, obj: &pagecore::PageMapper, page: u64) -> u32 {
    (0..pages.frames())
        .find(|&f| {
            pages
                .rmap(f)
                .and_then(|m| m.owner)
                .is_some_and(|o| o.object == obj.id() && o.page == page)
        })
        .expect("the page is resident")
}

#[test]
fn the_reverse_map_names_every_mapping_of_a_page() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 4) else { return };
    x.set_fault_around(0);
    let y = Mapping::builder().fault_around(0).share(&x).unwrap();
    let r = Mapping::builder()
        .fault_around(0)
        .read_only(true)
        .share(&x)
        .unwrap();
    store(&x, 1, 5);
    assert_eq!(load(&y, 1), 5);
    assert_eq!(load(&r, 1), 5);
    let f = frame_of(&pages, x.object(), 1);
    let mut at: Vec<(usize, bool)> = pages
        .rmap(f)
        .unwrap()
        .mappings
        .iter()
        .map(|m| {
            assert_eq!((m.at.object, m.at.page), (x.object().id(), 1));
            (m.addr, m.writable)
        })
        .collect();
    at.sort();
    let mut want = vec![
        (x.as_ptr() as usize + PAGE, true),
        (y.as_ptr() as usize + PAGE, false),
        (r.as_ptr() as usize + PAGE, false),
    ];
    want.sort();
    assert_eq!(at, want, "x stored (writable), y and r loaded (read-only)");
    // A page only one mapping touched is mapped there only.
    store(&y, 2, 6);
    let f2 = frame_of(&pages, x.object(), 2);
    let m2 = pages.rmap(f2).unwrap().mappings;
    assert_eq!(m2.len(), 1, "{m2:?}");
    assert_eq!(
        (m2[0].addr, m2[0].writable),
        (y.as_ptr() as usize + 2 * PAGE, true)
    );
    // A sync write-protects the page in every mapping.
    x.sync().unwrap();
    assert!(pages.rmap(f).unwrap().mappings.iter().all(|m| !m.writable));
    // An ended mapping is no longer named.
    drop(r);
    assert_eq!(pages.rmap(f).unwrap().mappings.len(), 2);
}

/// A write guard takes the page away from every mapping (the pager forces it: no mapping is
/// asked): a load through any mapping made while the guard lives waits for it and reads what
/// the guard wrote, never the bytes from before.
#[test]
fn a_write_guard_takes_the_page_from_every_mapping() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 4) else { return };
    let y = x.share().unwrap();
    store(&x, 0, 7);
    assert_eq!(load(&y, 0), 7);
    let maps = Arc::new([x, y]);
    let mut g = maps[0].object().write(0).unwrap();
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let maps = maps.clone();
            std::thread::spawn(move || load(&maps[i], 0))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    g[..8].copy_from_slice(&42u64.to_le_bytes());
    drop(g);
    for (i, r) in readers.into_iter().enumerate() {
        assert_eq!(
            r.join().unwrap(),
            42,
            "mapping {i} read the page from before the guard"
        );
    }
    maps[1].sync().unwrap();
    assert_eq!(b.word(0), 42);
}

/// Sharing a mapping whose object was closed is refused (found by a fresh-eyes pass: it made a
/// mapping every access through which was a `SIGBUS`).
#[test]
fn sharing_a_closed_object_is_refused() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let Some(x) = map(&pages, &b, 4) else { return };
    x.object().close().unwrap();
    assert!(matches!(x.share(), Err(Error::Closed)));
    assert_eq!(x.mappings(), 1);
}
