//! Black-box tests of private (copy-on-write) mappings (`Mapping::private`,
//! `MappingBuilder::private`), written from README.md, SPEC.md §2.8 and §9 and the rustdoc of
//! `Mapping`, `MappingBuilder::private` and `PageMapper::copy` only. The promise under test:
//! "loads of pages never stored to through this mapping read `object` as it was at this call,
//! whatever is written to it later; a store gives the mapping a page of its own, which
//! `object`, its other copies and mappings never see". Each test prints `SKIPPED` where
//! userfaultfd is not permitted (as `private_mappings.rs` does).
#![cfg(target_os = "linux")]

mod mapped;

use mapped::{initial, load, pool, store, Backing, PAGE};
use pagecore::{
    Access, ComputedAccessor, Error, FileAccessor, Mapping, PageMapper, Pages, Revocation, SwapArea,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

const P: u64 = PAGE as u64;
const SEC10: Duration = Duration::from_secs(10);

use mapped::{private, private_with};

/// The mapping, or return from the test (SKIPPED).
macro_rules! or_skip {
    ($e:expr) => {
        match $e {
            Some(m) => m,
            None => return,
        }
    };
}

fn word(object: &PageMapper, p: u64) -> u64 {
    u64::from_le_bytes(object.read(p).unwrap()[..8].try_into().unwrap())
}

fn set(object: &PageMapper, p: u64, v: u64) {
    object.write(p).unwrap()[..8].copy_from_slice(&v.to_le_bytes());
}

fn vals(n: u64, f: impl Fn(u64) -> u64) -> Vec<u64> {
    (0..n).map(f).collect()
}

/// Every page's first word through the mapping is the model's.
fn check(m: &Mapping, model: &[u64], what: &str) {
    for (p, &w) in model.iter().enumerate() {
        assert_eq!(load(m, p as u64), w, "{what}: page {p}");
    }
}

/// Every page's first word through guards on `o` is the model's.
fn check_obj(o: &PageMapper, model: &[u64], what: &str) {
    for (p, &w) in model.iter().enumerate() {
        assert_eq!(word(o, p as u64), w, "{what}: page {p}");
    }
}

/// A copy of page `p`'s bytes as the mapping shows them (no other thread may store there).
fn page_of(m: &Mapping, p: u64) -> Vec<u8> {
    // SAFETY: inside the mapping; callers are the only thread touching the page.
    unsafe { std::slice::from_raw_parts(m.as_ptr().add(p as usize * PAGE), PAGE) }.to_vec()
}

fn guard_page(object: &PageMapper, p: u64) -> Vec<u8> {
    object.read(p).unwrap().to_vec()
}

/// Whole pages through the mapping and through its object's guards are the model's.
fn check_bytes(m: &Mapping, model: &[Vec<u8>], what: &str) {
    for (p, want) in model.iter().enumerate() {
        assert!(page_of(m, p as u64) == *want, "{what}: page {p}");
        let g = guard_page(m.object(), p as u64);
        assert!(g == *want, "{what}: guard {p}");
    }
}

/// Every frame free and none pinned, once everything is dropped (a fault's pin may lag its
/// wake a little: `Mapping`'s doc).
fn all_free(pages: &Pages) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = pages.census().unwrap();
        if c.free == c.total() && c.pinned == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "frames leaked or pinned: {c:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pool_with_swap(frames: u64, slots: u32) -> (Pages, Arc<SwapArea>) {
    let swap = Arc::new(SwapArea::temporary(PAGE, slots).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .swap(swap.clone());
    (pages.build().unwrap(), swap)
}

/// An anonymous object, or one over a `Backing`, of `n` pages.
fn open_src(pages: &Pages, anonymous: bool, n: u64) -> PageMapper {
    let b = Arc::new(Backing::default());
    let o = if anonymous {
        pages.anonymous(n * P)
    } else {
        pages.open(b, n * P)
    };
    o.unwrap()
}

fn errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// `read(2)` of `data` from a pipe into `at` (the kernel stores there): its result and errno.
fn kernel_store(at: *mut u8, data: &[u8]) -> (isize, Option<i32>) {
    let mut fds = [0i32; 2];
    // SAFETY: a pipe of our own; `at` is inside a mapping that outlives the call.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let n = libc::write(fds[1], data.as_ptr().cast(), data.len());
        assert_eq!(n, data.len() as isize);
        let n = libc::read(fds[0], at.cast(), data.len());
        let e = errno();
        libc::close(fds[0]);
        libc::close(fds[1]);
        (n, e)
    }
}

/// `write(2)` of page `p`'s first 8 bytes into a pipe (the kernel loads them), on a thread of
/// its own: its result, errno and the word, or a panic if it has not returned in 10 s.
fn kernel_load(m: &Arc<Mapping>, p: u64) -> (isize, Option<i32>, u64) {
    let (tx, rx) = mpsc::channel();
    let m = m.clone();
    std::thread::spawn(move || {
        let (mut fds, mut w) = ([0i32; 2], [0u8; 8]);
        // SAFETY: a pipe of our own; the page is inside the mapping, which the thread holds.
        let r = unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let n = libc::write(fds[1], m.as_ptr().add(p as usize * PAGE).cast(), 8);
            let e = errno();
            if n == 8 {
                libc::read(fds[0], w.as_mut_ptr().cast(), 8);
            }
            libc::close(fds[0]);
            libc::close(fds[1]);
            (n, e, u64::from_le_bytes(w))
        };
        tx.send(r).unwrap();
    });
    rx.recv_timeout(SEC10)
        .expect("a system call reading the mapping hung")
}

/// Writes to the source after the mapping, by every API (guards, `write_at` across pages,
/// client grants, an upgraded grant, an awaited guard), are not seen; the mapping's stores
/// reach neither the source, its file (its accessor: not even through the mapping's `sync` or
/// `close`), another private mapping, nor copies made before or after.
#[test]
fn the_snapshot_ignores_later_writes_and_stores_reach_nothing_else() {
    let pages = pool(32);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), 8 * P).unwrap();
    set(&obj, 0, 5);
    obj.write_at(3 * P + 16, &[9u8; 32]).unwrap();
    let mut snap: Vec<Vec<u8>> = (0..8).map(initial).collect();
    snap[0][..8].copy_from_slice(&5u64.to_le_bytes());
    snap[3][16..48].fill(9);
    let before = obj.copy().unwrap();
    let x = or_skip!(private(&obj));
    let y = private(&obj).unwrap();
    set(&obj, 0, 6);
    obj.write_at(P - 8, &[0xAA; 24]).unwrap(); // spans pages 0 and 1
    let client = obj.register().unwrap();
    let mut g = client.request(2, Access::Write).unwrap();
    g.bytes_mut().unwrap().fill(0xBB);
    drop(g);
    let mut g = client.request(3, Access::Read).unwrap();
    g.upgrade().unwrap();
    g.bytes_mut().unwrap()[..8].fill(0xCC);
    drop(g);
    obj.write(7).unwrap().fill(0xDD); // a page the source never had resident before
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async { obj.write_async(5).await.unwrap().fill(0xEE) });
    check_bytes(&x, &snap, "x");
    check_bytes(&y, &snap, "y");
    obj.sync().unwrap();
    check_bytes(&x, &snap, "x after the source's sync");
    let src: Vec<Vec<u8>> = (0..8).map(|p| guard_page(&obj, p)).collect();
    let flushes = b.flushes.load(SeqCst);
    for p in 0..8 {
        store(&x, p, 0xF00 + p);
    }
    let after = obj.copy().unwrap();
    x.sync().unwrap();
    x.object().sync().unwrap();
    assert_eq!(b.flushes.load(SeqCst), flushes, "x's sync reached the file");
    check(&x, &vals(8, |p| 0xF00 + p), "x");
    check_obj(x.object(), &vals(8, |p| 0xF00 + p), "x's object");
    check_bytes(&y, &snap, "y after x's stores");
    let first = |v: &Vec<u8>| u64::from_le_bytes(v[..8].try_into().unwrap());
    let words: Vec<u64> = snap.iter().map(first).collect();
    check_obj(&before, &words, "a copy made before");
    for p in 0..8 {
        assert!(guard_page(&obj, p) == src[p as usize], "source page {p}");
        assert!(guard_page(&after, p) == src[p as usize], "copy after {p}");
        assert_eq!(b.word(p), first(&src[p as usize]), "file page {p}");
    }
    x.close().unwrap();
    assert_eq!(b.flushes.load(SeqCst), flushes, "x's close: the file");
    drop((client, y, before, after, obj));
    all_free(&pages);
}

#[test]
fn the_snapshot_survives_eviction_and_the_source_s_sync_close_and_drop() {
    const N: u64 = 24;
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), N * P).unwrap();
    for p in (0..N).step_by(2) {
        set(&obj, p, 500 + p);
    }
    let snap = vals(N, |p| if p % 2 == 0 { 500 + p } else { p * 1000 });
    let m = or_skip!(private_with(Mapping::builder().fault_around(0), &obj));
    let mut rng = StdRng::seed_from_u64(1);
    let mut source = snap.clone();
    for n in 0..600u64 {
        let p = rng.random_range(0..N);
        set(&obj, p, 1 << 32 | n);
        source[p as usize] = 1 << 32 | n;
        let q = rng.random_range(0..N);
        assert_eq!(load(&m, q), snap[q as usize], "step {n}, page {q}");
    }
    obj.sync().unwrap();
    check(&m, &snap, "after the source's sync");
    assert!((0..N).all(|p| b.word(p) == source[p as usize]), "the file");
    obj.close().unwrap();
    check(&m, &snap, "after the source's close");
    drop(obj);
    check(&m, &snap, "after the source's drop");
    assert!(page_of(&m, 3)[8..] == initial(3)[8..]);
    assert!(pages.stats().evictions > N, "{:?}", pages.stats());
    drop(m);
    all_free(&pages);
}

/// A real file whose pages the source never had resident: the frozen layer reads them from the
/// file, which the source then rewrites (and syncs) under eviction pressure.
#[test]
fn a_file_source_rewritten_on_disk_after_the_mapping_keeps_the_mapping_s_snapshot() {
    const N: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.bin");
    let original: Vec<u8> = (0..N * P).map(|i| (i / P) as u8 + 1).collect();
    std::fs::write(&path, &original).unwrap();
    let orig = |p: u64| &original[(p * P) as usize..][..PAGE];
    let on_disk_is_ee = || std::fs::read(&path).unwrap().iter().all(|&x| x == 0xEE);
    let pages = pool(4);
    let obj = pages.open(FileAccessor::open(&path, PAGE).unwrap(), N * P);
    let obj = obj.unwrap();
    let m = or_skip!(private(&obj));
    for p in (0..N).step_by(2) {
        assert!(page_of(&m, p) == orig(p), "page {p} before the rewrite");
    }
    for p in 0..N {
        obj.write(p).unwrap().fill(0xEE);
    }
    obj.sync().unwrap();
    assert!(on_disk_is_ee());
    for round in 0..2 {
        for p in 0..N {
            assert!(page_of(&m, p) == orig(p), "{round}: new page {p} seen");
        }
    }
    for p in 0..N / 2 {
        store(&m, p, 0x1234 + p);
    }
    m.sync().unwrap();
    m.object().sync().unwrap();
    assert!(on_disk_is_ee(), "the mapping's stores reached the file");
    obj.close().unwrap();
    for p in 0..N {
        let w = u64::from_le_bytes(orig(p)[..8].try_into().unwrap());
        let want = if p < N / 2 { 0x1234 + p } else { w };
        assert_eq!(load(&m, p), want, "page {p}");
    }
    drop((m, obj));
    assert!(on_disk_is_ee());
    all_free(&pages);
}

/// Root gets kernel-mode faults served (`Mapping`'s doc): `read(2)` into a private mapping is
/// a store of its own; `write(2)` from it a load of the snapshot. Views of a private mapping
/// (`share`, read-only or not) share its pages and outlive it; a read-only view refuses
/// `read(2)` with `EFAULT` and sees guard writes on its object (`MappingBuilder::read_only`).
#[test]
fn views_and_system_calls_of_private_mappings() {
    let pages = pool(16);
    let obj = pages.open(Arc::new(Backing::default()), 6 * P).unwrap();
    set(&obj, 0, 7);
    let x = Arc::new(or_skip!(private_with(Mapping::builder().handlers(2), &obj)));
    let r = Arc::new(private_with(Mapping::builder().read_only(true), &obj).unwrap());
    let ro = Mapping::builder().read_only(true).share(&x).unwrap();
    let y = x.share().unwrap();
    assert_eq!((x.mappings(), r.mappings()), (3, 1));
    set(&obj, 0, 8);
    set(&obj, 3, 33);
    let data = vec![0x5Au8; PAGE];
    // SAFETY (both calls): pages inside the mappings, which outlive the calls.
    let (n, e) = kernel_store(unsafe { x.as_ptr().add(2 * PAGE) }, &data);
    assert_eq!(n, PAGE as isize, "read(2) into a private mapping: {e:?}");
    let (n, _, w) = kernel_load(&x, 3);
    assert_eq!((n, w), (8, 3000), "write(2) from a private mapping");
    assert!(page_of(&x, 2) == data && guard_page(x.object(), 2) == data);
    assert_eq!(word(&obj, 2), 2000, "read(2) reached the source");
    let (n, e) = kernel_store(unsafe { r.as_ptr().add(PAGE) }, &[0x77; 64]);
    assert_eq!((n, e), (-1, Some(libc::EFAULT)), "read(2): read-only");
    let got = (load(&r, 0), load(&r, 1), kernel_load(&r, 3).2);
    assert_eq!(got, (7, 1000, 3000));
    set(r.object(), 2, 42);
    assert_eq!((load(&r, 2), word(&obj, 2)), (42, 2000));
    store(&x, 1, 10);
    store(&y, 4, 40);
    assert_eq!((load(&ro, 1), load(&ro, 4), load(&x, 4)), (10, 40, 40));
    assert_eq!((load(&ro, 3), load(&y, 0)), (3000, 7));
    // A private mapping's copy is anonymous memory: it can be copied and privately mapped.
    let xc = x.object().copy().unwrap();
    let z = Mapping::private(y.object()).unwrap();
    store(&y, 1, 11);
    assert_eq!(
        (word(&xc, 1), word(&xc, 4), load(&z, 1), load(&z, 4)),
        (10, 40, 10, 40)
    );
    store(&z, 4, 44);
    assert_eq!((load(&x, 4), word(&xc, 4), load(&z, 1)), (40, 40, 10));
    store(&y, 1, 10);
    drop((xc, z));
    drop((x, r));
    assert_eq!(y.mappings(), 2);
    store(&y, 5, 50);
    let got = (load(&y, 1), load(&ro, 5), load(&ro, 2));
    assert_eq!(got, (10, 50, u64::from_le_bytes([0x5A; 8])));
    check_obj(&obj, &[8, 1000, 2000, 33, 4000, 5000], "the source");
    drop((y, ro, obj));
    all_free(&pages);
}

/// Copies of copies (anonymous), through six frames and a swap area of our own.
#[test]
fn private_mappings_of_copies_in_a_chain_read_their_own_snapshots() {
    const N: u64 = 20;
    let (pages, swap) = pool_with_swap(6, 512);
    let a = pages.anonymous(N * P).unwrap();
    for p in 0..N {
        set(&a, p, 100 + p);
    }
    let b1 = a.copy().unwrap();
    for p in (0..N).step_by(2) {
        set(&a, p, 200 + p);
    }
    let c = b1.copy().unwrap();
    for p in (0..N).step_by(3) {
        set(&b1, p, 300 + p);
    }
    let mc = or_skip!(private(&c));
    let mb = private(&b1).unwrap();
    let b_snap = vals(N, |p| if p % 3 == 0 { 300 + p } else { 100 + p });
    for p in (0..N).step_by(4) {
        set(&c, p, 400 + p);
        set(&b1, p, 500 + p);
    }
    check(&mc, &vals(N, |p| 100 + p), "the mapping of c");
    check(&mb, &b_snap, "the mapping of b1");
    drop((a, b1));
    c.compact();
    for p in (0..N).step_by(5) {
        store(&mc, p, 600 + p);
    }
    let mine = vals(N, |p| if p % 5 == 0 { 600 + p } else { 100 + p });
    check(&mc, &mine, "the mapping of c after its sources went");
    check(&mb, &b_snap, "the mapping of b1 after its source went");
    let c_now = vals(N, |p| if p % 4 == 0 { 400 + p } else { 100 + p });
    check_obj(&c, &c_now, "c itself");
    drop((mc, mb, c));
    all_free(&pages);
    assert_eq!(swap.in_use(), 0, "swap slots outlived every object");
}

/// Sequential scans: fault-around maps pages ahead read-only; their content must be the
/// snapshot, and a store to one must stay the mapping's.
#[test]
fn fault_around_scans_read_the_snapshot_and_stores_after_them_stay_private() {
    const N: u64 = 96;
    for frames in [128u64, 8] {
        let pages = pool(frames);
        let b = Arc::new(Backing::default());
        let obj = pages.open(b.clone(), N * P).unwrap();
        let mut snap: Vec<Vec<u8>> = (0..N).map(initial).collect();
        for p in (0..N).step_by(5) {
            obj.write(p).unwrap().fill(p as u8);
            snap[p as usize].fill(p as u8);
        }
        let m = or_skip!(private(&obj));
        for p in 0..N {
            set(&obj, p, 7 << 40);
        }
        let first = |s: &Vec<u8>| u64::from_le_bytes(s[..8].try_into().unwrap());
        let what = format!("{frames} frames");
        check(&m, &snap.iter().map(first).collect::<Vec<_>>(), &what);
        assert!(m.stats().mapped_ahead > 0, "{what}: {:?}", m.stats());
        check_bytes(&m, &snap, &what);
        for p in 0..N {
            store(&m, p, 9 << 40 | p);
        }
        check(&m, &vals(N, |p| 9 << 40 | p), &what);
        check_obj(&obj, &[7 << 40; N as usize], &what);
        obj.sync().unwrap();
        assert!((0..N).all(|p| b.word(p) == 7 << 40), "{what}: file");
        drop((m, obj));
        all_free(&pages);
    }
}

/// Four threads store and load their own pages through one private mapping with four
/// handlers, two scan (fault-around) pages nobody stores to through it, while two threads
/// write the source (guards on even pages, client grants on odd ones), one writes another
/// object of the pool and takes the census, over 64 pages in 12 frames.
#[test]
fn threads_on_a_private_mapping_and_writers_of_its_source_match_models() {
    const N: u64 = 64;
    const OWNED: u64 = 40;
    let pages = pool(12);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), N * P).unwrap();
    let noise = pages.anonymous(32 * P).unwrap();
    for p in (0..N).step_by(3) {
        set(&obj, p, 1 << 50 | p);
    }
    let snap = vals(N, |p| if p % 3 == 0 { 1 << 50 | p } else { p * 1000 });
    let m = or_skip!(private_with(Mapping::builder().handlers(4), &obj));
    let (m, stop) = (Arc::new(m), Arc::new(AtomicBool::new(false)));
    let mut threads = Vec::new();
    for t in 0..6u64 {
        let (m, mut model) = (m.clone(), snap.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(t);
            for n in 0..2500u64 {
                if t >= 4 {
                    let p = OWNED + (n + t * 5) % (N - OWNED);
                    assert_eq!(load(&m, p), model[p as usize], "scanner {t}, page {p}");
                    continue;
                }
                let p = rng.random_range(0..OWNED / 4) * 4 + t;
                if rng.random_bool(0.4) {
                    store(&m, p, (t + 1) << 40 | n);
                    model[p as usize] = (t + 1) << 40 | n;
                } else {
                    assert_eq!(load(&m, p), model[p as usize], "thread {t}, page {p}");
                }
            }
            model
        }));
    }
    let mut writers = Vec::new();
    for parity in 0..2u64 {
        let (obj, mut model) = (obj.clone(), snap.clone());
        writers.push(std::thread::spawn(move || {
            let client = obj.register().unwrap();
            let mut rng = StdRng::seed_from_u64(100 + parity);
            for n in 0..1500u64 {
                let p = rng.random_range(0..N / 2) * 2 + parity;
                let v = (5 + parity) << 40 | n;
                if parity == 0 {
                    set(&obj, p, v);
                } else {
                    let mut g = client.request(p, Access::Write).unwrap();
                    g.bytes_mut().unwrap()[..8].copy_from_slice(&v.to_le_bytes());
                }
                model[p as usize] = v;
            }
            model
        }));
    }
    let (o, pg, st) = (noise.clone(), pages.clone(), stop.clone());
    let bg = std::thread::spawn(move || {
        for n in 0.. {
            if st.load(SeqCst) {
                break;
            }
            set(&o, n % 32, n);
            pg.census().expect("census meanwhile");
        }
    });
    let models: Vec<Vec<u64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let writers: Vec<Vec<u64>> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, SeqCst);
    bg.join().unwrap();
    let mine = vals(N, |p| {
        models[if p < OWNED { p % 4 } else { 4 } as usize][p as usize]
    });
    let source = vals(N, |p| writers[(p % 2) as usize][p as usize]);
    check(&m, &mine, "the mapping");
    check_obj(m.object(), &mine, "the mapping's object");
    check_obj(&obj, &source, "the source");
    obj.sync().unwrap();
    assert!((0..N).all(|p| b.word(p) == source[p as usize]), "the file");
    assert!(pages.stats().evictions > N && m.stats().mapped_ahead > 0);
    drop((m, noise));
    obj.close().unwrap();
    drop(obj);
    all_free(&pages);
}

/// The mapping's object is the copy: guards on it and the mapping's bytes agree, whole pages,
/// under eviction pressure, with writes through either side.
#[test]
fn the_mapping_s_object_and_its_bytes_agree_byte_for_byte() {
    const N: u64 = 16;
    let pages = pool(6);
    let obj = pages.open(Arc::new(Backing::default()), N * P).unwrap();
    let m = or_skip!(private_with(Mapping::builder().fault_around(0), &obj));
    let mut model: Vec<Vec<u8>> = (0..N).map(initial).collect();
    let mut rng = StdRng::seed_from_u64(9);
    for n in 0..800u64 {
        let p = rng.random_range(0..N);
        let off = rng.random_range(0..PAGE - 64);
        let byte = (n % 251) as u8;
        let (pu, model_p) = (p as usize, &model[p as usize]);
        match rng.random_range(0..5) {
            0 => {
                // SAFETY: inside the mapping; this thread alone.
                unsafe { m.as_ptr().add(pu * PAGE + off).write_volatile(byte) };
                model[pu][off] = byte;
            }
            1 => {
                m.object().write(p).unwrap()[off] = byte;
                model[pu][off] = byte;
            }
            2 if p + 1 < N => {
                m.object().write_at((p + 1) * P - 32, &[byte; 64]).unwrap();
                model[pu][PAGE - 32..].fill(byte);
                model[pu + 1][..32].fill(byte);
            }
            3 => assert!(page_of(&m, p) == *model_p, "step {n}: page {p}"),
            _ => assert!(guard_page(m.object(), p) == *model_p, "step {n}: {p}"),
        }
    }
    check_bytes(&m, &model, "the end");
    for p in 0..N {
        assert!(guard_page(&obj, p) == initial(p), "source page {p}");
    }
    drop((m, obj));
    all_free(&pages);
}

#[test]
fn refusals_are_errors_not_panics_and_leave_the_source_usable() {
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    // A mapped file can be mapped privately, the builder's way too.
    let shared = or_skip!(mapped::map(&pages, &b, 4));
    let pm = Mapping::builder()
        .handlers(2)
        .private(shared.object())
        .unwrap();
    store(&shared, 0, 1);
    assert_eq!((load(&shared, 0), load(&pm, 0)), (1, 0));
    drop(pm);
    // A mapped object that is neither anonymous nor persistent cannot be copied: its layers
    // would have nowhere to read its pages from.
    struct Scratch;
    impl pagecore::Accessor for Scratch {
        fn fill(&self, _: u64, buf: &mut [u8]) -> std::io::Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn flush(&self, _: u64, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn persistent(&self) -> bool {
            false
        }
    }
    let scratch = Mapping::new(&pages, Scratch, 2 * P).unwrap();
    let r = Mapping::private(scratch.object());
    assert!(matches!(r, Err(Error::Mapped)), "{r:?}");
    assert!(matches!(scratch.object().copy(), Err(Error::Mapped)));
    drop(scratch);
    let obj = pages.open(b.clone(), 4 * P).unwrap();
    for n in [0, 65] {
        let r = Mapping::builder().handlers(n).private(&obj);
        assert!(matches!(r, Err(Error::Map(_))), "{n} handlers: {r:?}");
    }
    // Dirty pages the copy cannot write back first (`PageMapper::copy`'s doc).
    set(&obj, 0, 3);
    b.fail_flush.store(true, SeqCst);
    let r = Mapping::private(&obj);
    assert!(matches!(r, Err(Error::WriteBack { page: 0, .. })), "{r:?}");
    b.fail_flush.store(false, SeqCst);
    assert_eq!(word(&obj, 0), 3);
    let m = private(&obj).unwrap();
    assert_eq!((load(&m, 0), b.word(0)), (3, 3), "after refused attempts");
    // Zero length: `build`'s doc names it.
    let empty = pages.open(Arc::new(Backing::default()), 0).unwrap();
    let r = Mapping::private(&empty);
    assert!(matches!(r, Err(Error::Map(_))), "a 0-byte object: {r:?}");
    // A pool whose page size is not the system's.
    let big = Pages::builder().page_size(2 * PAGE).frames(4).build();
    let other = big.unwrap().anonymous(8 * P).unwrap();
    let r = Mapping::private(&other);
    assert!(matches!(r, Err(Error::Map(_))), "{r:?}");
    // A closed object.
    let closed = pages.open(Arc::new(Backing::default()), 4 * P).unwrap();
    closed.close().unwrap();
    let r = Mapping::private(&closed);
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    // An object whose limit is not whole pages: the mapping rounds up.
    let odd = pages.open(Arc::new(Backing::default()), 2 * P + 100);
    let mo = private(&odd.unwrap()).unwrap();
    assert_eq!((mo.len(), load(&mo, 2)), (3 * PAGE, 2000));
    drop((m, mo, obj, other, shared));
    all_free(&pages);
}

/// A copy waits for writers (`PageMapper::copy`'s doc): a plain writer that lets go within the
/// bound is waited for (its write is in the snapshot); a client writer that never downgrades
/// is asked to, then the private mapping fails with `Busy`. The other way round, a guard or a
/// grant on the mapping's own object holds the mapping's loads of that page (a client holder
/// is asked to give it back), which then see what the holder wrote.
#[test]
fn writers_in_the_way_are_waited_for_asked_or_reported_busy() {
    let pages = Pages::builder().page_size(PAGE).frames(16);
    let pages = pages.wait_bound(Some(Duration::from_millis(300))).build();
    let pages = pages.unwrap();
    let obj = pages.open(Arc::new(Backing::default()), 4 * P).unwrap();
    let hold = |o: PageMapper, p: u64, v: u64| {
        let held = Arc::new(Barrier::new(2));
        let h = held.clone();
        let t = std::thread::spawn(move || {
            let mut g = o.write(p).unwrap();
            h.wait();
            std::thread::sleep(Duration::from_millis(50));
            g[..8].copy_from_slice(&v.to_le_bytes());
        });
        held.wait();
        t
    };
    let t = hold(obj.clone(), 1, 77);
    let m = private(&obj);
    t.join().unwrap();
    let m = Arc::new(or_skip!(m));
    assert_eq!(load(&m, 1), 77, "the copy did not wait for the writer");
    let (tx, rx) = mpsc::channel::<u64>();
    let asker = |tx: mpsc::Sender<u64>| {
        move |p: u64, _r: Revocation| {
            let _ = tx.send(p);
        }
    };
    let client = obj.register_with(asker(tx.clone())).unwrap();
    let mut g = client.request(2, Access::Write).unwrap();
    g.bytes_mut().unwrap()[..8].copy_from_slice(&88u64.to_le_bytes());
    let r = Mapping::private(&obj);
    assert!(matches!(r, Err(Error::Busy { .. })), "{r:?}");
    assert_eq!(rx.try_recv(), Ok(2), "the write holder was not asked");
    drop(g);
    let m2 = private(&obj).unwrap();
    assert_eq!((load(&m2, 2), load(&m, 2)), (88, 2000));
    // Holders on the mapping's object.
    let t = hold(m.object().clone(), 3, 99);
    assert_eq!(load(&m, 3), 99, "a load went past the guard's holder");
    t.join().unwrap();
    let own = m.object().register_with(asker(tx)).unwrap();
    while rx.try_recv().is_ok() {}
    let mut g = own.request(0, Access::Write).unwrap();
    g.bytes_mut().unwrap()[..8].copy_from_slice(&55u64.to_le_bytes());
    let (done_tx, done_rx) = mpsc::channel();
    let m3 = m.clone();
    std::thread::spawn(move || done_tx.send(load(&m3, 0)).unwrap());
    assert_eq!(rx.recv_timeout(SEC10), Ok(0), "the holder was not asked");
    assert!(done_rx.try_recv().is_err(), "the load went past the grant");
    drop(g);
    assert_eq!(done_rx.recv_timeout(SEC10), Ok(55));
    assert_eq!((word(&obj, 0), word(&obj, 3)), (0, 3000));
    drop((m, m2, client, own, obj));
    all_free(&pages);
}

/// A writer sweeps the pages in order, round after round, while two threads make private
/// mappings: each must be one instant of the sweep (non-increasing over the pages, spanning at
/// most two rounds), a thread's later mappings no older than its earlier ones, and none may
/// change afterwards.
#[test]
fn private_mappings_made_during_a_sweep_are_consistent_instants() {
    const N: u64 = 16;
    let pages = pool(8);
    let obj = pages.anonymous(N * P).unwrap();
    drop(or_skip!(private(&obj)));
    let stop = Arc::new(AtomicBool::new(false));
    let (o, st) = (obj.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        for r in 1.. {
            if st.load(SeqCst) {
                break;
            }
            (0..N).for_each(|p| set(&o, p, r));
        }
    });
    let makers: Vec<_> = (0..2)
        .map(|t| {
            let obj = obj.clone();
            std::thread::spawn(move || {
                let mut maps = Vec::new();
                let mut last = 0;
                for i in 0..6 {
                    std::thread::sleep(Duration::from_millis(2));
                    let m = Mapping::builder().fault_around(0).private(&obj).unwrap();
                    let v = vals(N, |p| load(&m, p));
                    assert!(v.windows(2).all(|w| w[0] >= w[1]), "{t}/{i}: {v:?}");
                    assert!(v[0] - v[N as usize - 1] <= 1, "{t}/{i}: {v:?}");
                    assert!(v[N as usize - 1] >= last, "{t}/{i} older than the last");
                    last = v[N as usize - 1];
                    maps.push((m, v));
                }
                maps
            })
        })
        .collect();
    let all: Vec<_> = makers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, SeqCst);
    writer.join().unwrap();
    assert!(all.iter().any(|(_, v)| v[0] > 1), "the sweep never moved");
    for (i, (m, v)) in all.iter().enumerate() {
        check(m, v, &format!("mapping {i} changed"));
    }
    drop((all, obj));
    all_free(&pages);
}

/// A read-only source (no write-back): its private mapping's stores are the mapping's own, as
/// `MAP_PRIVATE` of a read-only file allows, and go to swap under pressure.
#[test]
fn a_private_mapping_of_a_read_only_object_takes_stores() {
    const N: u64 = 12;
    let pages = pool(4);
    let src = ComputedAccessor::new(|p, buf: &mut [u8]| {
        buf.fill(p as u8 + 1);
        Ok(())
    });
    let obj = pages.open(src, N * P).unwrap();
    assert!(matches!(obj.write(0), Err(Error::ReadOnly)));
    let m = or_skip!(private(&obj));
    for p in 0..N {
        store(&m, p, 0xABC0 + p);
    }
    for round in 0..3 {
        check(&m, &vals(N, |p| 0xABC0 + p), &format!("round {round}"));
        for p in 0..N {
            assert_eq!(page_of(&m, p)[8..], [p as u8 + 1; PAGE - 8]);
        }
    }
    assert_eq!(obj.read(3).unwrap()[0], 4);
    drop((m, obj));
    all_free(&pages);
}

/// A failed fill of the source's page poisons the page in the private mapping (a system call
/// gets `EFAULT`, not a hang); `retry` clears it once the source fills again. Closing the
/// mapping's object while it is mapped (the doc warns: later accesses fail) fails accesses the
/// same way, and the mapping still drops cleanly.
#[test]
fn failed_fills_and_a_closed_object_fail_accesses_without_hanging() {
    let pages = pool(8);
    let b = Arc::new(Backing::default());
    let obj = pages.open(b.clone(), 4 * P).unwrap();
    let m = Arc::new(or_skip!(private(&obj)));
    b.fail_fill.store(true, SeqCst);
    let (n, e, _) = kernel_load(&m, 1);
    assert_eq!((n, e), (-1, Some(libc::EFAULT)), "a failed fill");
    b.fail_fill.store(false, SeqCst);
    m.retry(1).unwrap();
    assert_eq!(load(&m, 1), 1000);
    assert!(matches!(m.retry(4), Err(Error::OutOfRange { .. })));
    store(&m, 0, 1);
    m.object().close().unwrap();
    assert!(matches!(m.object().read(0), Err(Error::Closed)));
    let (n, e, _) = kernel_load(&m, 2);
    assert_eq!((n, e), (-1, Some(libc::EFAULT)), "a closed object");
    assert!(m.sync().is_err(), "sync of a closed object succeeded");
    assert_eq!(word(&obj, 0), 0);
    drop((m, obj));
    all_free(&pages);
}

/// Snapshots per checkpoint: a private mapping made, used and dropped in turn, the source
/// written between. Each sees its own instant; the chain stays shallow ("copies made and
/// dropped in turn keep the chain at most one layer deep", SPEC §2.7); nothing leaks.
#[test]
fn private_mappings_made_and_dropped_in_turn_keep_the_chain_shallow_and_leak_nothing() {
    const N: u64 = 12;
    for anonymous in [false, true] {
        let (pages, swap) = pool_with_swap(6, 256);
        let obj = open_src(&pages, anonymous, N);
        let mut source = vals(N, |p| if anonymous { 0 } else { p * 1000 });
        for i in 0..40u64 {
            let m = or_skip!(private(&obj));
            let p = i % N;
            set(&obj, p, 1 << 20 | i);
            store(&m, (p + 1) % N, 7);
            let mut mine = source.clone();
            mine[((p + 1) % N) as usize] = 7;
            check(&m, &mine, &format!("anonymous {anonymous}, checkpoint {i}"));
            source[p as usize] = 1 << 20 | i;
        }
        let depth = obj.copy_stats().depth;
        assert!(depth <= 1, "anonymous {anonymous}: depth {depth}");
        check_obj(&obj, &source, "the source");
        drop(obj);
        all_free(&pages);
        assert_eq!(swap.in_use(), 0, "anonymous {anonymous}: swap slots leaked");
    }
}

/// The mapping's stores go to swap when evicted: with the swap area full a store waits (its
/// server retries, SPEC §2.8: "the CPU waits as for memory"), `sync` reports the write-back
/// error, and once another object frees its slots the store completes and nothing is lost.
#[test]
fn stores_waiting_on_a_full_swap_area_complete_once_slots_are_freed() {
    let (pages, swap) = pool_with_swap(4, 6);
    let hog = pages.anonymous(8 * P).unwrap();
    for p in 0..8 {
        set(&hog, p, p);
    }
    let obj = pages.open(Arc::new(Backing::default()), 8 * P).unwrap();
    let m = or_skip!(private_with(Mapping::builder().fault_around(0), &obj));
    let m = Arc::new(m);
    let (tx, rx) = mpsc::channel();
    let m2 = m.clone();
    std::thread::spawn(move || {
        for p in 0..8 {
            store(&m2, p, 100 + p);
            tx.send(p).unwrap();
        }
    });
    let mut done = 0;
    while let Ok(p) = rx.recv_timeout(Duration::from_millis(500)) {
        done = p + 1;
    }
    if done < 8 {
        assert_eq!(swap.in_use(), swap.slots(), "stuck with free slots");
        let r = m.sync();
        assert!(matches!(r, Err(Error::WriteBack { .. })), "{r:?}");
    }
    drop(hog);
    while done < 8 {
        let p = rx.recv_timeout(SEC10);
        done = 1 + p.expect("the store never completed after slots were freed");
    }
    check(&m, &vals(8, |p| 100 + p), "the mapping");
    check_obj(&obj, &vals(8, |p| p * 1000), "source");
    drop((m, obj));
    all_free(&pages);
    assert_eq!(swap.in_use(), 0);
}

/// Copies of the source made, checked, written and dropped in a loop (with `compact`) beside
/// a private mapping in use, in eight frames under swap pressure: the chain below the source
/// churns while the mapping's layer must stay its snapshot; no frame or slot leaks.
#[test]
fn copies_of_the_source_churn_beside_a_busy_private_mapping() {
    const N: u64 = 32;
    for anonymous in [false, true] {
        let (pages, swap) = pool_with_swap(8, 512);
        let obj = open_src(&pages, anonymous, N);
        let base = vals(N, |p| if anonymous { 0 } else { p * 1000 });
        let m = or_skip!(private_with(Mapping::builder().handlers(2), &obj));
        let m = Arc::new(m);
        let (m2, mut mine) = (m.clone(), base.clone());
        let user = std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(3);
            for n in 0..3000u64 {
                let p = rng.random_range(0..N);
                if rng.random_bool(0.3) {
                    store(&m2, p, 1 << 40 | n);
                    mine[p as usize] = 1 << 40 | n;
                } else {
                    assert_eq!(load(&m2, p), mine[p as usize], "mapping, page {p}");
                }
            }
            mine
        });
        let (o, mut source) = (obj.clone(), base.clone());
        let copier = std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(4);
            for i in 0..60u64 {
                for _ in 0..5 {
                    let p = rng.random_range(0..N);
                    set(&o, p, 2 << 40 | i);
                    source[p as usize] = 2 << 40 | i;
                }
                let c = o.copy().unwrap();
                check_obj(&c, &source, &format!("copy {i}"));
                let p = rng.random_range(0..N);
                set(&c, p, 3 << 40);
                assert_eq!(word(&o, p), source[p as usize], "copy {i}'s write leaked");
                drop(c);
                if i % 7 == 0 {
                    o.compact();
                }
            }
            source
        });
        let mut peak = 0;
        while !(user.is_finished() && copier.is_finished()) {
            peak = peak.max(swap.in_use());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            peak > 8,
            "anonymous {anonymous}: no swap pressure ({peak} slots)"
        );
        let mine = user.join().unwrap();
        let source = copier.join().unwrap();
        check(&m, &mine, &format!("anonymous {anonymous}: the mapping"));
        check_obj(m.object(), &mine, "the mapping's object");
        check_obj(&obj, &source, "the source");
        drop(m);
        if anonymous {
            obj.compact();
            assert!(obj.copy_stats().depth <= 1, "{:?}", obj.copy_stats());
        }
        drop(obj);
        all_free(&pages);
        assert_eq!(swap.in_use(), 0, "anonymous {anonymous}: swap slots leaked");
    }
}

/// SPEC §2.7: "copies made and dropped in turn keep it [a persistent top's chain] at most one
/// layer deep". With one private mapping (or any copy) of a file alive meanwhile, every
/// checkpoint copy made and dropped adds a layer for good, even after the mapping goes.
#[test]
#[ignore = "surprise: a file's chain grows a layer per checkpoint copy while a private mapping \
            of it lives, and keeps them after it goes (SPEC §9 'copies alive together')"]
fn a_file_s_chain_stays_shallow_with_checkpoints_beside_a_private_mapping() {
    let pages = pool(8);
    let obj = pages.open(Arc::new(Backing::default()), 8 * P).unwrap();
    let m = or_skip!(private(&obj));
    for i in 0..10 {
        set(&obj, i % 8, i);
        drop(obj.copy().unwrap());
    }
    obj.compact();
    let alive = obj.copy_stats().depth;
    drop(m);
    obj.compact();
    let after = obj.copy_stats().depth;
    assert!(alive <= 2 && after <= 1, "depth {alive}, then {after}");
}

/// A pool may have one frame, and a plain mapping works in it; a private mapping's load needs
/// two (the layer's frame and its copy: SPEC §2.8), so it should fail (or `private` refuse the
/// pool), not wait for ever: a fault that hits `Exhausted` is retried without end (SPEC §2.8).
/// Found by this suite's first run (it waited for ever); `private` now refuses the pool.
#[test]
fn a_private_mapping_in_a_one_frame_pool_loads_or_is_refused() {
    let pages = Pages::builder().page_size(PAGE).frames(1);
    let pages = pages.wait_bound(Some(Duration::from_millis(100))).build();
    let obj = pages.unwrap().open(Arc::new(Backing::default()), 4 * P);
    match Mapping::private(&obj.unwrap()) {
        Err(Error::Map(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}"),
        Ok(m) => assert_eq!(kernel_load(&Arc::new(m), 1).2, 1000),
        Err(e) => panic!("refused with {e}"),
    }
}
