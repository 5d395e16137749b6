#![cfg(target_os = "linux")]
//! Black-box tests of copies and private mappings of an object that is itself mapped
//! (SPEC §2.8 "Private mappings" and "Copies of a mapped object", §9; the rustdoc of `Mapping`,
//! `MappingBuilder::private`, `Mapping::private`, `Mapping::share`, `PageMapper::copy` and
//! `Error::Mapped`), written from the documentation only. Models: a copy or private mapping
//! reads the object as of its making and nothing later; its own stores reach nothing else; the
//! shared mappings and the file (after `sync`) hold exactly the shared side's stores; every
//! frame is free and no swap slot is in use at the end. Each test prints `SKIPPED` where
//! userfaultfd is not permitted (`PAGECORE_REQUIRE_UFFD=1` fails instead).
//!
//! Written by a fresh-eyes pass (stop 34). Its findings that were bugs are fixed, and their
//! reproductions (below, "Found by this pass") now check the fix: a mapped file's first store
//! after a copy no longer reads the page from the file (nor needs a frame: the page's bytes are
//! written to the layer's swap), and a dropped copy's layer no longer keeps a frame a later
//! fault needs. The two left `#[ignore]`d are known limits (SPEC §9: rolling checkpoints of a
//! file; faults through layers outnumbering the frames). The `child_*` tests are child processes of others (a signal or a hang there must not
//! take the test binary down) and do nothing unless `MCB_CHILD` is set.

mod mapped;

use mapped::{load, or_skip as skip_or, store, Backing, PAGE};
use pagecore::{
    Access, Accessor, Anonymous, ComputedAccessor, Error, Mapping, MemoryAccessor, PageMapper,
    Pages, Revocation, SwapArea,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const P: u64 = PAGE as u64;

/// The value, or return from the test (SKIPPED where userfaultfd is not permitted).
macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

fn word(o: &PageMapper, p: u64) -> u64 {
    u64::from_le_bytes(o.read(p).unwrap()[..8].try_into().unwrap())
}

fn set(o: &PageMapper, p: u64, v: u64) {
    o.write(p).unwrap()[..8].copy_from_slice(&v.to_le_bytes());
}

/// Every page's first word through the mapping is the model's.
fn check_map(m: &Mapping, model: &[u64], what: &str) {
    for (p, &w) in model.iter().enumerate() {
        assert_eq!(load(m, p as u64), w, "{what}: page {p} through the mapping");
    }
}

/// Every page's first word through guards is the model's.
fn check_obj(o: &PageMapper, model: &[u64], what: &str) {
    for (p, &w) in model.iter().enumerate() {
        assert_eq!(word(o, p as u64), w, "{what}: page {p} through a guard");
    }
}

/// Every page's first word in the file is the model's.
fn check_file(b: &Backing, model: &[u64], what: &str) {
    for (p, &w) in model.iter().enumerate() {
        assert_eq!(b.word(p as u64), w, "{what}: page {p} in the file");
    }
}

/// Every frame free and none pinned (a fault's pin may lag its wake a little: `Mapping`'s doc).
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

/// No slot of the swap area in use.
fn no_slots(swap: &SwapArea) {
    assert_eq!(swap.in_use(), 0, "swap slots leaked");
}

/// A pool of `frames` frames over a swap area of our own of `slots` slots, waits bounded by
/// `bound`.
fn pool_swap(frames: u64, slots: u32, bound: Duration) -> (Pages, Arc<SwapArea>) {
    let swap = Arc::new(SwapArea::temporary(PAGE, slots).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .swap(swap.clone())
        .wait_bound(Some(bound))
        .build()
        .unwrap();
    (pages, swap)
}

const BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Anonymous memory over the pool's swap area: zeros at first.
    Anon,
    /// A file (a `Backing`, persistent): page `p`'s first word starts as `p * 1000`.
    File,
    /// A private mapping of such a file (mapped anonymous memory over the pool's swap, whose
    /// source is dropped at once): its views are the shared mappings.
    Private,
}

/// A shared mapping of `n` pages of a new object of `kind` (anonymous memory over `swap`), its
/// file (if any) and its initial first words.
fn map_new(
    pages: &Pages,
    swap: &Arc<SwapArea>,
    kind: Kind,
    n: u64,
) -> Option<(Mapping, Option<Arc<Backing>>, Vec<u64>)> {
    match kind {
        Kind::Anon => {
            let anon = Arc::new(Anonymous::new(swap.clone()));
            let m = skip_or(Mapping::new(pages, anon, n * P))?;
            Some((m, None, vec![0; n as usize]))
        }
        Kind::File => {
            let b = Arc::new(Backing::default());
            let m = skip_or(Mapping::new(pages, b.clone(), n * P))?;
            Some((m, Some(b), (0..n).map(|p| p * 1000).collect()))
        }
        Kind::Private => {
            let src = pages.open(Arc::new(Backing::default()), n * P).unwrap();
            let m = skip_or(Mapping::private(&src))?;
            set(&src, 0, 0xBAD); // after the mapping: not seen
            drop(src);
            Some((m, None, (0..n).map(|p| p * 1000).collect()))
        }
    }
}

/// A snapshot of a mapped object: a copy (read and written through guards) or a private
/// mapping (loads and stores).
enum Snap {
    Copy(PageMapper),
    Priv(Mapping),
}

impl Snap {
    fn get(&self, p: u64) -> u64 {
        match self {
            Snap::Copy(o) => word(o, p),
            Snap::Priv(m) => load(m, p),
        }
    }
    fn put(&self, p: u64, v: u64) {
        match self {
            Snap::Copy(o) => set(o, p, v),
            Snap::Priv(m) => store(m, p, v),
        }
    }
    fn object(&self) -> &PageMapper {
        match self {
            Snap::Copy(o) => o,
            Snap::Priv(m) => m.object(),
        }
    }
    /// Every page's first word is the model's (loads for a private mapping).
    fn check_loads(&self, model: &[u64], what: &str) {
        for (p, &w) in model.iter().enumerate() {
            assert_eq!(self.get(p as u64), w, "{what}: page {p}");
        }
    }
    /// As `check_loads`, and through guards on a private mapping's object too.
    fn check(&self, model: &[u64], what: &str) {
        self.check_loads(model, what);
        if let Snap::Priv(m) = self {
            check_obj(m.object(), model, &format!("{what} (its object's guards)"));
        }
    }
}

/// A copy (`even`) or a private mapping of `of`.
fn snap_of(of: &PageMapper, even: bool) -> Snap {
    if even {
        Snap::Copy(of.copy().expect("copy"))
    } else {
        Snap::Priv(skip_or(Mapping::private(of)).expect("private mapping"))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Snapshots against every later writer of the mapped object.
// ---------------------------------------------------------------------------------------------

/// Two shared mappings store (dirty, unsynced); then a copy and a private mapping are made.
/// Later writes through both mappings, a write guard, `write_at` across two pages, a client
/// write grant, an upgraded read grant and an awaited `write_async` are seen by neither; their
/// own stores reach neither the mappings, the object's guards, the file (even after their
/// `sync`/`close`), each other, nor a private mapping made later.
fn snapshot_ignores_every_later_writer(kind: Kind) {
    let (pages, swap) = pool_swap(64, 4096, BOUND);
    let n = 16u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let b = a.share().unwrap();
    let mut shared = init.clone();
    for p in 0..12 {
        let v = 0x1000 + p * 7;
        store(if p % 2 == 0 { &a } else { &b }, p, v);
        shared[p as usize] = v;
    }
    let copy = a.object().copy().expect("copy of a mapped object");
    let pm = or_return!(skip_or(Mapping::private(b.object())));
    if let Some(f) = &file {
        // "the copy first writes its dirty pages back (to its swap area or file)"
        check_file(f, &shared, "file right after the copy");
    }
    let snap = shared.clone();

    // Later writers of the object, each kind of them.
    let obj = a.object().clone();
    store(&a, 0, 0xA0);
    shared[0] = 0xA0;
    store(&b, 1, 0xB1);
    shared[1] = 0xB1;
    set(&obj, 2, 0xC2);
    shared[2] = 0xC2;
    // write_at across pages 3 and 4: page 3's last 4 bytes and page 4's first 8.
    let mut data = vec![0xEE; 4];
    data.extend_from_slice(&0xD4u64.to_le_bytes());
    obj.write_at(4 * P - 4, &data).unwrap();
    shared[4] = 0xD4;
    {
        let client = obj.register().unwrap();
        let mut g = client.request(5, Access::Write).unwrap();
        g.bytes_mut().unwrap()[..8].copy_from_slice(&0xE5u64.to_le_bytes());
        drop(g);
        let mut g = client.request(6, Access::Read).unwrap();
        g.upgrade().unwrap();
        g.bytes_mut().unwrap()[..8].copy_from_slice(&0xF6u64.to_le_bytes());
    }
    shared[5] = 0xE5;
    shared[6] = 0xF6;
    runtime().block_on(async {
        obj.write_async(7).await.unwrap()[..8].copy_from_slice(&0x77u64.to_le_bytes());
        obj.write_async(13).await.unwrap()[..8].copy_from_slice(&0x7Du64.to_le_bytes());
    });
    shared[7] = 0x77;
    shared[13] = 0x7D;
    store(&a, 14, 0xAE); // never touched before the copy (the file's page, for a file)
    shared[14] = 0xAE;

    let copy = Snap::Copy(copy);
    let pm = Snap::Priv(pm);
    copy.check(&snap, "copy after later writes");
    pm.check(&snap, "private mapping after later writes");
    // page 3's tail written by write_at is not in the snapshots either
    for s in [&copy, &pm] {
        let tail = s.object().read(3).unwrap()[PAGE - 4..].to_vec();
        assert_ne!(
            tail,
            vec![0xEE; 4],
            "write_at's bytes in page 3 reached a snapshot"
        );
    }
    check_map(&a, &shared, "mapping a");
    check_map(&b, &shared, "mapping b");
    check_obj(&obj, &shared, "the object");
    assert_eq!(obj.read(3).unwrap()[PAGE - 4..], [0xEE; 4]);

    // The snapshots' own stores reach nothing else.
    let mut cm = snap.clone();
    let mut pmm = snap.clone();
    for p in [0u64, 9, 15] {
        pm.put(p, 0x5000 + p);
        pmm[p as usize] = 0x5000 + p;
    }
    for p in [1u64, 10, 15] {
        copy.put(p, 0x6000 + p);
        cm[p as usize] = 0x6000 + p;
    }
    copy.check(&cm, "copy after its own writes");
    pm.check(&pmm, "private mapping after its own stores");
    check_map(&a, &shared, "mapping a after the snapshots' stores");
    check_map(&b, &shared, "mapping b after the snapshots' stores");
    check_obj(&obj, &shared, "the object after the snapshots' stores");
    let later = Snap::Priv(skip_or(Mapping::private(&obj)).unwrap());
    later.check(&shared, "a private mapping made later");
    // Views made after the copy: a read-write one stores (unseen by the snapshots), a
    // read-only one loads the shared side.
    let rw = a.share().unwrap();
    let ro = Mapping::builder().read_only(true).share(&b).unwrap();
    store(&rw, 11, 0xBB);
    shared[11] = 0xBB;
    check_map(&ro, &shared, "a read-only view made after the copy");
    copy.check(&cm, "copy after a later view's store");
    pm.check(&pmm, "private mapping after a later view's store");
    later.check(
        &{
            let mut m = shared.clone();
            m[11] = snap[11];
            m
        },
        "the later private mapping after a later view's store",
    );
    drop((rw, ro));

    a.sync().unwrap();
    if let Snap::Priv(m) = &pm {
        m.sync().unwrap();
    }
    copy.object().sync().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file after sync");
    }
    if let Snap::Priv(m) = pm {
        m.close().unwrap();
    }
    drop(copy);
    drop(later);
    if let Some(f) = &file {
        check_file(f, &shared, "file after the snapshots closed");
    }
    drop((a, obj));
    b.close().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file after the last mapping closed");
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn a_mapped_file_s_snapshots_ignore_every_later_writer() {
    snapshot_ignores_every_later_writer(Kind::File);
}

#[test]
fn mapped_anonymous_memory_s_snapshots_ignore_every_later_writer() {
    snapshot_ignores_every_later_writer(Kind::Anon);
}

#[test]
fn a_private_mapping_s_snapshots_ignore_every_later_writer() {
    snapshot_ignores_every_later_writer(Kind::Private);
}

// ---------------------------------------------------------------------------------------------
// 2. Under eviction pressure: snapshots made every round, each checked against its model.
// ---------------------------------------------------------------------------------------------

/// 40 pages through 6 frames: two shared mappings store at random (evicting and writing back
/// all the time), a copy or a private mapping is made every round (up to three alive, the
/// oldest dropped), each stores some pages of its own; every snapshot, the mappings, the
/// object's guards and (right after each copy, and after each sync) the file match models.
fn snapshots_under_eviction_pressure(kind: Kind, seed: u64) {
    let (pages, swap) = pool_swap(6, 4096, BOUND);
    let n = 40u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let b = a.share().unwrap();
    let mut shared = init;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut snaps: Vec<(Snap, Vec<u64>, usize)> = Vec::new();
    let mut tick = 1u64;
    for round in 0..10usize {
        for _ in 0..50 {
            let p = rng.random_range(0..n);
            tick += 1;
            let v = (round as u64) << 32 | tick;
            store(if rng.random_bool(0.5) { &a } else { &b }, p, v);
            shared[p as usize] = v;
        }
        if round % 3 == 2 {
            b.sync().unwrap();
            if let Some(f) = &file {
                check_file(f, &shared, &format!("file after sync, round {round}"));
            }
        }
        let of = if round % 2 == 0 {
            a.object()
        } else {
            b.object()
        };
        let s = snap_of(of, rng.random_bool(0.5));
        if let Some(f) = &file {
            check_file(f, &shared, &format!("file right after copy {round}"));
        }
        snaps.push((s, shared.clone(), round));
        for (s, model, made) in snaps.iter_mut() {
            for _ in 0..4 {
                let p = rng.random_range(0..n);
                tick += 1;
                let v = 0xFFFF_0000_0000 | tick;
                s.put(p, v);
                model[p as usize] = v;
            }
            s.check(model, &format!("snapshot {made} at round {round}"));
        }
        check_map(&a, &shared, &format!("mapping a, round {round}"));
        if snaps.len() > 3 {
            let i = rng.random_range(0..snaps.len());
            snaps.remove(i);
        }
    }
    check_obj(a.object(), &shared, "the object at the end");
    check_map(&b, &shared, "mapping b at the end");
    for (s, model, made) in &snaps {
        s.check(model, &format!("snapshot {made} at the end"));
    }
    drop(a);
    b.sync().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file at the end");
    }
    drop(b);
    for (s, model, made) in &snaps {
        s.check(
            model,
            &format!("snapshot {made} after the source's mappings went"),
        );
    }
    drop(snaps);
    if let Some(f) = &file {
        check_file(f, &shared, "file after everything went");
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn snapshots_of_a_mapped_file_under_eviction_pressure_match_models() {
    for seed in 0..3 {
        snapshots_under_eviction_pressure(Kind::File, seed);
    }
}

#[test]
fn snapshots_of_mapped_anonymous_memory_under_eviction_pressure_match_models() {
    for seed in 0..3 {
        snapshots_under_eviction_pressure(Kind::Anon, seed);
    }
}

#[test]
fn snapshots_of_a_private_mapping_under_eviction_pressure_match_models() {
    for seed in 0..2 {
        snapshots_under_eviction_pressure(Kind::Private, seed);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Chains: copies of copies, private mappings of private mappings, under pressure.
// ---------------------------------------------------------------------------------------------

fn chains(kind: Kind) {
    let (pages, swap) = pool_swap(8, 4096, BOUND);
    let n = 32u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let mut shared = init;
    let mut tick = 0u64;
    let mut put = |m: &mut Vec<u64>, s: &dyn Fn(u64, u64), ps: &[u64]| {
        for &p in ps {
            tick += 1;
            s(p, tick << 8 | p);
            m[p as usize] = tick << 8 | p;
        }
    };
    let every: Vec<u64> = (0..n).collect();
    put(&mut shared, &|p, v| store(&a, p, v), &every);

    // p1: private mapping of the mapped object; its view q1 stores too.
    let p1 = skip_or(Mapping::private(a.object())).unwrap();
    let q1 = p1.share().unwrap();
    let mut m1 = shared.clone();
    put(&mut m1, &|p, v| store(&q1, p, v), &[0, 3, 5, 30]);
    put(&mut shared, &|p, v| store(&a, p, v), &[0, 1, 2, 3, 4, 31]);
    // p2: private mapping of the private mapping (a mapped anonymous object itself).
    let p2 = skip_or(Mapping::private(p1.object())).unwrap();
    let mut m2 = m1.clone();
    put(&mut m1, &|p, v| store(&p1, p, v), &[1, 3, 6]);
    put(&mut m2, &|p, v| store(&p2, p, v), &[2, 3, 7]);
    // c1: copy of p1's object; c2: copy of c1; p3: private mapping of c2; c3 copy of p2's.
    let c1 = p1.object().copy().unwrap();
    let mut mc1 = m1.clone();
    put(&mut m1, &|p, v| store(&q1, p, v), &[8, 9]);
    put(&mut mc1, &|p, v| set(&c1, p, v), &[9, 10]);
    let c2 = c1.copy().unwrap();
    let mut mc2 = mc1.clone();
    put(&mut mc1, &|p, v| set(&c1, p, v), &[11]);
    let p3 = skip_or(Mapping::private(&c2)).unwrap();
    let mut m3 = mc2.clone();
    put(&mut mc2, &|p, v| set(&c2, p, v), &[12]);
    put(&mut m3, &|p, v| store(&p3, p, v), &[13]);
    let c3 = p2.object().copy().unwrap();
    let mut mc3 = m2.clone();
    put(&mut m2, &|p, v| store(&p2, p, v), &[14]);
    put(&mut shared, &|p, v| store(&a, p, v), &[14, 15, 16]);

    let checks = |what: &str,
                  shared: &[u64],
                  m1: &[u64],
                  m2: &[u64],
                  mc1: &[u64],
                  mc2: &[u64],
                  m3: &[u64],
                  mc3: &[u64],
                  p1_alive: bool| {
        check_map(&a, shared, &format!("{what}: a"));
        if p1_alive {
            check_map(&p1, m1, &format!("{what}: p1"));
        }
        check_map(&q1, m1, &format!("{what}: q1 (p1's view)"));
        check_map(&p2, m2, &format!("{what}: p2"));
        check_obj(&c1, mc1, &format!("{what}: c1"));
        check_obj(&c2, mc2, &format!("{what}: c2"));
        check_map(&p3, m3, &format!("{what}: p3"));
        check_obj(&c3, mc3, &format!("{what}: c3"));
    };
    checks("first", &shared, &m1, &m2, &mc1, &mc2, &m3, &mc3, true);
    checks(
        "again (all evicted)",
        &shared,
        &m1,
        &m2,
        &mc1,
        &mc2,
        &m3,
        &mc3,
        true,
    );
    // More stores everywhere, then p1 (but not its view) and the source's mapping go.
    put(&mut shared, &|p, v| store(&a, p, v), &every);
    put(&mut m1, &|p, v| store(&p1, p, v), &[20, 21]);
    put(&mut mc3, &|p, v| set(&c3, p, v), &[20, 22]);
    checks(
        "after more stores",
        &shared,
        &m1,
        &m2,
        &mc1,
        &mc2,
        &m3,
        &mc3,
        true,
    );
    a.sync().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file");
    }
    drop(p1);
    let obj = a.object().clone();
    drop(a);
    drop(obj); // the source object is gone now
    for round in 0..2 {
        let what = format!("source gone, pass {round}");
        check_map(&q1, &m1, &format!("{what}: q1"));
        check_map(&p2, &m2, &format!("{what}: p2"));
        check_obj(&c1, &mc1, &format!("{what}: c1"));
        check_obj(&c2, &mc2, &format!("{what}: c2"));
        check_map(&p3, &m3, &format!("{what}: p3"));
        check_obj(&c3, &mc3, &format!("{what}: c3"));
    }
    if let Some(f) = &file {
        check_file(f, &shared, "file after the source went");
    }
    drop((q1, p2, c1, c2, p3, c3));
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn chains_of_copies_and_private_mappings_of_a_mapped_file() {
    chains(Kind::File);
}

#[test]
fn chains_of_copies_and_private_mappings_of_mapped_anonymous_memory() {
    chains(Kind::Anon);
}

// ---------------------------------------------------------------------------------------------
// 4. The source's mappings end while its private mappings live.
// ---------------------------------------------------------------------------------------------

/// Every page in another state when the private mapping and the copy are made (never
/// resident, resident clean, resident dirty, evicted after a store, evicted clean); then the
/// shared side rewrites every page, syncs, and its mappings end (the last one writes back and
/// closes the object). The snapshots still read their content, through many evictions.
fn source_mappings_end_while_snapshots_live(kind: Kind) {
    let (pages, swap) = pool_swap(8, 4096, BOUND);
    let n = 32u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let b = a.share().unwrap();
    let mut shared = init;
    for p in 12..20 {
        store(&a, p, 0x100 + p); // evicted after a store (written back)
        shared[p as usize] = 0x100 + p;
    }
    for p in 20..28 {
        assert_eq!(load(&b, p), shared[p as usize]); // evicted clean
    }
    for p in 28..32 {
        assert_eq!(load(&b, p), shared[p as usize]);
    }
    for p in 4..8 {
        assert_eq!(load(&a, p), shared[p as usize]); // resident clean
    }
    for p in 8..12 {
        store(&b, p, 0x200 + p); // resident dirty
        shared[p as usize] = 0x200 + p;
    }
    // pages 0..4: never touched
    let pm = skip_or(Mapping::private(a.object())).unwrap();
    let copy = b.object().copy().unwrap();
    let snap = shared.clone();
    // A page read through the copy before the source writes it (the layer fills it).
    assert_eq!(word(&copy, 1), snap[1]);
    assert_eq!(load(&pm, 13), snap[13]);
    for p in 0..n {
        store(if p % 2 == 0 { &a } else { &b }, p, 0x9000 + p);
        shared[p as usize] = 0x9000 + p;
    }
    b.sync().unwrap();
    for p in (0..n).step_by(3) {
        store(&b, p, 0xA000 + p); // dirty again, left to the last mapping's end
        shared[p as usize] = 0xA000 + p;
    }
    check_map(
        &pm,
        &snap,
        "private mapping before the source's mappings end",
    );
    check_obj(&copy, &snap, "copy before the source's mappings end");
    drop(a);
    assert_eq!(b.mappings(), 1);
    b.close().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file after the last mapping closed");
    }
    for pass in 0..3 {
        check_map(&pm, &snap, &format!("private mapping, pass {pass}"));
        check_obj(&copy, &snap, &format!("copy, pass {pass}"));
        check_obj(
            pm.object(),
            &snap,
            &format!("private mapping's guards, pass {pass}"),
        );
    }
    // Copies and private mappings of the snapshots still work.
    let pm2 = skip_or(Mapping::private(&copy)).unwrap();
    let c2 = pm.object().copy().unwrap();
    store(&pm, 3, 0x33);
    set(&copy, 4, 0x44);
    check_map(&pm2, &snap, "private mapping of the copy");
    check_obj(&c2, &snap, "copy of the private mapping");
    if let Some(f) = &file {
        check_file(f, &shared, "file at the end");
    }
    drop((pm, copy, pm2, c2));
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn a_mapped_file_s_mappings_end_while_its_snapshots_live() {
    source_mappings_end_while_snapshots_live(Kind::File);
}

#[test]
fn mapped_anonymous_memory_s_mappings_end_while_its_snapshots_live() {
    source_mappings_end_while_snapshots_live(Kind::Anon);
}

// ---------------------------------------------------------------------------------------------
// 5. Threads store through several shared mappings (and guards, grants, awaited writes) while
//    copies and private mappings are made, checked and dropped.
// ---------------------------------------------------------------------------------------------

/// Writers: thread `t` owns pages `t, t + W, t + 2W, ...` (`PER` of them) and writes its
/// `s`-th value (`(t + 1) << 40 | s`, s = 1, 2, ...) to its page `s % PER`, then publishes `s`
/// as done. So at any instant each thread's pages show a prefix of its writes, and a snapshot
/// must show, for each thread, the writes up to some `k` exactly: every write done before the
/// snapshot began (`k >= done before`), none beyond the one in flight when it ended
/// (`k <= done after + 1`).
const W: u64 = 4;
const PER: u64 = 8;

fn writer_value(t: u64, s: u64) -> u64 {
    (t + 1) << 40 | s
}

/// Thread `t`'s page `i` after its writes `1..=k`, or `None` (the initial content).
fn last_write(k: u64, i: u64) -> Option<u64> {
    let r = (k % PER + PER - i) % PER;
    (k >= r && k - r >= 1).then(|| k - r)
}

/// The prefix `k` of thread `t`'s writes a snapshot's words show, checked to be exact.
fn cut_of(t: u64, words: &[u64], init: &[u64], what: &str) -> u64 {
    let mut k = 0;
    for (i, &w) in words.iter().enumerate() {
        let p = t + W * i as u64;
        if w == init[p as usize] {
            continue;
        }
        assert_eq!(
            w >> 40,
            t + 1,
            "{what}: page {p} holds {w:#x}, not thread {t}'s"
        );
        k = k.max(w & ((1 << 40) - 1));
    }
    for (i, &w) in words.iter().enumerate() {
        let p = t + W * i as u64;
        let want = last_write(k, i as u64).map_or(init[p as usize], |s| writer_value(t, s));
        assert_eq!(
            w, want,
            "{what}: thread {t}'s page {p} holds {w:#x}, but its writes up to {k} leave {want:#x} \
             (not a snapshot)"
        );
    }
    k
}

fn race(kind: Kind, seed: u64, run_for: Duration, frames: u64) {
    let (pages, swap) = pool_swap(frames, 8192, BOUND);
    let n = W * PER;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let b = Mapping::builder().handlers(2).share(&a).unwrap();
    let c = Mapping::builder().fault_around(0).share(&a).unwrap();
    let maps = [&a, &b, &c];
    let done: Vec<AtomicU64> = (0..W).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let obj = a.object().clone();
    let mut made = 0;
    let syncs = AtomicU64::new(0);
    let stall = Mutex::new((Duration::ZERO, None));
    std::thread::scope(|scope| {
        for t in 0..W {
            let (done, stop, obj) = (&done, &stop, &obj);
            scope.spawn(move || {
                let rt = (t == 3).then(runtime);
                let client = (t == 3).then(|| obj.register().unwrap());
                let mut s = 0u64;
                while !stop.load(SeqCst) {
                    s += 1;
                    let p = t + W * (s % PER);
                    let v = writer_value(t, s);
                    match t {
                        0 | 1 => store(maps[((t + s) % 3) as usize], p, v),
                        2 if s.is_multiple_of(2) => set(obj, p, v),
                        2 => obj.write_at(p * P, &v.to_le_bytes()).unwrap(),
                        _ if s.is_multiple_of(2) => {
                            let mut g = client.as_ref().unwrap().request(p, Access::Write).unwrap();
                            g.bytes_mut().unwrap()[..8].copy_from_slice(&v.to_le_bytes());
                        }
                        _ => rt.as_ref().unwrap().block_on(async {
                            obj.write_async(p).await.unwrap()[..8].copy_from_slice(&v.to_le_bytes())
                        }),
                    }
                    done[t as usize].store(s, SeqCst);
                }
            });
        }
        // A monitor: the longest stretch with a thread waiting for a frame, and the census
        // seen one second into it (all frames pinned: operations holding one frame each and
        // waiting for another; some unpinned: a waiter not woken).
        {
            let (stop, pages, stall) = (&stop, &pages, &stall);
            scope.spawn(move || {
                let mut since: Option<Instant> = None;
                while !stop.load(SeqCst) {
                    let c = pages.census().expect("census beside copies");
                    if c.waiting_for_frames > 0 {
                        let t0 = *since.get_or_insert_with(Instant::now);
                        let mut st = stall.lock().unwrap();
                        if t0.elapsed() > st.0 {
                            st.0 = t0.elapsed();
                            if st.0 > Duration::from_secs(1) && st.1.is_none() {
                                st.1 = Some(c);
                            }
                        }
                    } else {
                        since = None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        // A syncer: writes back while copies mark and freeze.
        {
            let (syncs, stop, obj) = (&syncs, &stop, &obj);
            scope.spawn(move || {
                while !stop.load(SeqCst) {
                    obj.sync().expect("sync beside copies");
                    syncs.fetch_add(1, SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut snaps: Vec<(Snap, Vec<u64>, usize)> = Vec::new();
        let deadline = Instant::now() + run_for;
        let mut tick = 0u64;
        while Instant::now() < deadline {
            made += 1;
            let chained = !snaps.is_empty() && rng.random_bool(0.25);
            if chained {
                // A snapshot of a snapshot: the latter's model, whatever the writers do.
                let j = rng.random_range(0..snaps.len());
                let s = snap_of(snaps[j].0.object(), rng.random_bool(0.5));
                let model = snaps[j].1.clone();
                s.check(
                    &model,
                    &format!("snapshot {made} of snapshot {}", snaps[j].2),
                );
                snaps.push((s, model, made));
            } else {
                let before: Vec<u64> = done.iter().map(|d| d.load(SeqCst)).collect();
                let s = snap_of(maps[made % 3].object(), rng.random_bool(0.5));
                let after: Vec<u64> = done.iter().map(|d| d.load(SeqCst)).collect();
                let words: Vec<u64> = (0..n).map(|p| s.get(p)).collect();
                for t in 0..W {
                    let mine: Vec<u64> = (0..PER).map(|i| words[(t + W * i) as usize]).collect();
                    let what = format!("snapshot {made}");
                    let k = cut_of(t, &mine, &init, &what);
                    assert!(
                        before[t as usize] <= k && k <= after[t as usize] + 1,
                        "{what}: thread {t}'s writes up to {k}, outside [{}, {}]",
                        before[t as usize],
                        after[t as usize] + 1
                    );
                }
                snaps.push((s, words, made));
            }
            for (s, model, m) in snaps.iter_mut() {
                for _ in 0..3 {
                    let p = rng.random_range(0..n);
                    tick += 1;
                    s.put(p, 0xF << 56 | tick);
                    model[p as usize] = 0xF << 56 | tick;
                }
                s.check_loads(model, &format!("snapshot {m}, later"));
            }
            if snaps.len() > 3 {
                let i = rng.random_range(0..snaps.len());
                snaps.remove(i);
            }
            pages.census().expect("census beside copies");
        }
        stop.store(true, SeqCst);
        drop(snaps);
    });
    let writes: Vec<u64> = done.iter().map(|d| d.load(SeqCst)).collect();
    eprintln!(
        "{kind:?} seed {seed}, {frames} frames: {made} snapshots, writes per thread {writes:?}, \
         {} syncs",
        syncs.load(SeqCst)
    );
    let stall = stall.into_inner().unwrap();
    if stall.0 > Duration::from_millis(500) {
        eprintln!("{kind:?} seed {seed}, {frames} frames: longest wait for a frame {:?}, census after 1 s of it {:?}", stall.0, stall.1);
    }
    assert!(made >= 5, "only {made} snapshots made");
    let mut shared = init.clone();
    for t in 0..W {
        let k = done[t as usize].load(SeqCst);
        assert!(k > 10, "thread {t} made only {k} writes");
        for i in 0..PER {
            if let Some(s) = last_write(k, i) {
                shared[(t + W * i) as usize] = writer_value(t, s);
            }
        }
    }
    for m in maps {
        check_map(m, &shared, "a shared mapping at the end");
    }
    check_obj(&obj, &shared, "the object at the end");
    c.sync().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file at the end");
    }
    drop((a, b, c, obj));
    if let Some(f) = &file {
        check_file(f, &shared, "file after the mappings went");
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn snapshots_of_a_mapped_file_under_concurrent_writers_are_cuts() {
    for seed in 0..2 {
        race(Kind::File, seed, Duration::from_secs(2), 10);
    }
}

/// The source is a private mapping of a file, stored to through its views.
#[test]
fn snapshots_of_a_private_mapping_under_concurrent_writers_are_cuts() {
    race(Kind::Private, 3, Duration::from_secs(2), 10);
}

/// Found by this pass (stop 34): as above in a pool of 5 frames. In about a third of the runs
/// every frame ended up pinned with five threads waiting for a frame (the monitor's census),
/// for the whole 10 s bound; then guards, grants and awaited writes fail with `Exhausted`.
/// The first write after a copy no longer needs a frame (fixed: about one run in four still
/// stalls); a fault resolved in a layer still holds the layer's frame while it waits for its
/// own, and eight threads faulting through layers outnumber five frames (a known limit).
#[test]
#[ignore = "known limit (SPEC §9): a fault through a layer holds the layer's frame while it waits for its own; more concurrent such faults than frames wait out the bound"]
fn snapshots_under_concurrent_writers_in_a_pool_of_five_frames() {
    race(Kind::File, 7, Duration::from_secs(2), 5);
    race(Kind::Anon, 7, Duration::from_secs(2), 5);
}

#[test]
fn snapshots_of_mapped_anonymous_memory_under_concurrent_writers_are_cuts() {
    for seed in 0..2 {
        race(Kind::Anon, seed, Duration::from_secs(2), 10);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Writers holding pages while a copy is made: guards, grants (asked to downgrade or not).
// ---------------------------------------------------------------------------------------------

/// A write guard held (on another thread) past the pool's bound: the copy and the private
/// mapping fail with `Busy`, the mapping keeps working, and once the guard goes a copy
/// succeeds and holds the guard's write. A client write holder with no callback is never asked
/// (`Busy` too); one with a callback is asked to downgrade, and the copy, which then succeeds,
/// holds its write, but not its writes after it upgrades again.
fn holders_during_a_copy(kind: Kind) {
    let (pages, swap) = pool_swap(16, 4096, Duration::from_millis(300));
    let n = 8u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let mut shared = init;
    for p in 0..n {
        store(&a, p, 0x10 + p);
        shared[p as usize] = 0x10 + p;
    }
    let obj = a.object().clone();
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let o = &obj;
        scope.spawn(move || {
            let mut g = o.write(2).unwrap();
            g[..8].copy_from_slice(&0x222u64.to_le_bytes());
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        assert!(
            matches!(obj.copy(), Err(Error::Busy { .. })),
            "a copy while a write guard is held past the bound"
        );
        assert!(
            matches!(Mapping::private(&obj), Err(Error::Busy { .. })),
            "a private mapping while a write guard is held past the bound"
        );
        // The mapping goes on working on other pages meanwhile.
        store(&a, 3, 0x333);
        assert_eq!(load(&a, 3), 0x333);
        go_tx.send(()).unwrap();
    });
    shared[2] = 0x222;
    shared[3] = 0x333;
    let c1 = obj.copy().unwrap();
    check_obj(&c1, &shared, "copy after the guard went");
    if let Some(f) = &file {
        check_file(f, &shared, "file after the copy");
    }

    // A client write holder with no callback: never asked, so the copy is Busy.
    let quiet = obj.register().unwrap();
    let mut g = quiet.request(4, Access::Write).unwrap();
    g.bytes_mut().unwrap()[..8].copy_from_slice(&0x444u64.to_le_bytes());
    std::thread::scope(|scope| {
        let o = &obj;
        let r = scope.spawn(move || o.copy().map(drop)).join().unwrap();
        assert!(
            matches!(r, Err(Error::Busy { .. })),
            "copy beside a silent write grant: {r:?}"
        );
    });
    drop(g);
    drop(quiet);
    shared[4] = 0x444;

    // A client with a callback: asked to downgrade, it does, and the copy goes ahead.
    let (ask_tx, ask_rx) = mpsc::channel::<(u64, Revocation)>();
    let ask_tx = Mutex::new(ask_tx);
    let client = obj
        .register_with(move |page: u64, r: Revocation| {
            let _ = ask_tx.lock().unwrap().send((page, r));
        })
        .unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (copied_tx, copied_rx) = mpsc::channel::<()>();
    let c2 = std::thread::scope(|scope| {
        let client = &client;
        scope.spawn(move || {
            let mut g = client.request(5, Access::Write).unwrap();
            g.bytes_mut().unwrap()[..8].copy_from_slice(&0x555u64.to_le_bytes());
            held_tx.send(()).unwrap();
            let (page, r) = ask_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("not asked");
            assert_eq!(page, 5);
            assert!(
                matches!(r, Revocation::Downgrade | Revocation::Release),
                "{r:?}"
            );
            g.downgrade().unwrap();
            assert_eq!(g.access(), Access::Read);
            copied_rx.recv().unwrap();
            g.upgrade().unwrap();
            g.bytes_mut().unwrap()[..8].copy_from_slice(&0x5555u64.to_le_bytes());
        });
        held_rx.recv().unwrap();
        let c2 = obj
            .copy()
            .expect("copy beside a write grant asked to downgrade");
        copied_tx.send(()).unwrap();
        c2
    });
    let mut at_c2 = shared.clone();
    at_c2[5] = 0x555;
    shared[5] = 0x5555;
    check_obj(&c2, &at_c2, "copy made while a grant downgraded");
    check_obj(
        &c1,
        &{
            let mut m = at_c2.clone();
            m[4] = 0x14;
            m[5] = 0x15;
            m
        },
        "first copy at the end",
    );
    check_map(&a, &shared, "the mapping at the end");
    drop(client);
    drop((c1, c2, obj));
    a.close().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file at the end");
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn holders_of_a_mapped_file_s_pages_during_a_copy() {
    holders_during_a_copy(Kind::File);
}

#[test]
fn holders_of_mapped_anonymous_memory_s_pages_during_a_copy() {
    holders_during_a_copy(Kind::Anon);
}

// ---------------------------------------------------------------------------------------------
// 7. Failing write-backs: a copy writes the mapped object's dirty pages back first.
// ---------------------------------------------------------------------------------------------

/// A file whose write-backs of one page (or of every page) fail.
struct Flaky {
    file: Arc<Backing>,
    /// The page whose write-backs fail, or `u64::MAX` for none; `u64::MAX - 1` for all.
    bad: AtomicU64,
}

impl Accessor for Flaky {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.fill(page, buf)
    }
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        let bad = self.bad.load(SeqCst);
        if bad == page || bad == u64::MAX - 1 {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.file.flush(page, buf)
    }
}

const NONE_BAD: u64 = u64::MAX;
const ALL_BAD: u64 = u64::MAX - 1;

/// Dirty pages of a mapped file whose write-back fails (one page, then all): the copy and the
/// private mapping fail with `WriteBack` and make nothing; the mapping keeps every store and
/// goes on storing; no byte of a failed page reaches the file; once write-backs work again a
/// copy succeeds with every store so far, and the file ends with exactly the shared stores.
#[test]
fn a_copy_of_a_mapped_file_whose_write_back_fails() {
    let (pages, swap) = pool_swap(16, 4096, Duration::from_secs(2));
    let n = 12u64;
    let file = Arc::new(Backing::default());
    let flaky = Arc::new(Flaky {
        file: file.clone(),
        bad: AtomicU64::new(NONE_BAD),
    });
    let a = or_return!(skip_or(Mapping::new(&pages, flaky.clone(), n * P)));
    let b = a.share().unwrap();
    let init: Vec<u64> = (0..n).map(|p| p * 1000).collect();
    let mut shared = init.clone();
    for p in 0..6 {
        store(&a, p, 0x100 + p);
        shared[p as usize] = 0x100 + p;
    }
    flaky.bad.store(3, SeqCst);
    let r = a.object().copy();
    assert!(
        matches!(r, Err(Error::WriteBack { page: 3, .. })),
        "copy: {:?}",
        r.map(drop)
    );
    let r = Mapping::private(b.object());
    assert!(
        matches!(r, Err(Error::WriteBack { page: 3, .. })),
        "private: {:?}",
        r.map(drop)
    );
    let r = Mapping::builder().handlers(2).private(a.object());
    assert!(
        matches!(r, Err(Error::WriteBack { page: 3, .. })),
        "builder: {:?}",
        r.map(drop)
    );
    assert_eq!(file.word(3), init[3], "the failed page reached the file");
    check_map(&a, &shared, "mapping a after the failed copies");
    check_map(&b, &shared, "mapping b after the failed copies");
    check_obj(a.object(), &shared, "the object after the failed copies");
    assert_eq!(
        a.object().copy_stats().copies,
        0,
        "a failed copy counted as made"
    );
    // Every store after the failure lands, including on pages the failed copy wrote back.
    for p in [0u64, 3, 5, 7] {
        store(&b, p, 0x200 + p);
        shared[p as usize] = 0x200 + p;
    }
    set(a.object(), 1, 0x201);
    shared[1] = 0x201;
    check_map(&a, &shared, "mapping a after later stores");
    flaky.bad.store(ALL_BAD, SeqCst);
    assert!(a.sync().is_err(), "sync with every write-back failing");
    assert!(a.object().copy().is_err());
    for p in 0..n {
        assert!(
            file.word(p) == init[p as usize] || file.word(p) == 0x100 + p,
            "page {p} in the file holds {:#x}, neither its first content nor a store made before \
             write-backs failed",
            file.word(p)
        );
    }
    check_map(&b, &shared, "mapping b while write-backs fail");
    flaky.bad.store(NONE_BAD, SeqCst);
    let copy = a.object().copy().expect("copy once write-backs work");
    check_file(&file, &shared, "file right after the copy");
    let pm = skip_or(Mapping::private(a.object())).unwrap();
    let snap = shared.clone();
    for p in 0..n {
        store(&a, p, 0x300 + p);
        shared[p as usize] = 0x300 + p;
    }
    check_obj(&copy, &snap, "copy");
    check_map(&pm, &snap, "private mapping");
    b.sync().unwrap();
    check_file(&file, &shared, "file after sync");
    drop((a, b, copy, pm));
    check_file(&file, &shared, "file at the end");
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

/// Mapped anonymous memory whose swap area is too small for its dirty pages: the copy must
/// write them back first and cannot. It must fail (not hang), lose no store, and leak nothing.
#[test]
fn a_copy_of_mapped_anonymous_memory_with_a_full_swap_area() {
    let (pages, swap) = pool_swap(16, 4, Duration::from_secs(2));
    let n = 12u64;
    let anon = Arc::new(Anonymous::new(swap.clone()));
    let a = or_return!(skip_or(Mapping::new(&pages, anon, n * P)));
    let mut shared = vec![0u64; n as usize];
    for p in 0..8 {
        store(&a, p, 0x100 + p);
        shared[p as usize] = 0x100 + p;
    }
    let (tx, rx) = mpsc::channel();
    let obj = a.object().clone();
    let t = std::thread::spawn(move || {
        let r = obj.copy().map(|c| c.copy_stats());
        tx.send(r).unwrap();
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the copy hung on a full swap area");
    t.join().unwrap();
    eprintln!("copy with 8 dirty pages and 4 swap slots: {r:?}");
    match r {
        Err(Error::WriteBack { .. }) | Err(Error::SwapFull { .. }) => {}
        other => panic!("expected a write-back failure, got {other:?}"),
    }
    check_map(&a, &shared, "the mapping after the failed copy");
    for p in [0u64, 7, 9] {
        store(&a, p, 0x200 + p);
        shared[p as usize] = 0x200 + p;
    }
    check_map(&a, &shared, "the mapping after later stores");
    check_obj(a.object(), &shared, "guards after later stores");
    drop(a);
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

// ---------------------------------------------------------------------------------------------
// 8. Which mapped objects can be copied.
// ---------------------------------------------------------------------------------------------

/// In-memory pages, neither anonymous nor persistent.
#[derive(Default)]
struct Scratch(Mutex<HashMap<u64, Vec<u8>>>);

impl Accessor for Scratch {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        match self.0.lock().unwrap().get(&page) {
            Some(v) => buf.copy_from_slice(v),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap().insert(page, buf.to_vec());
        Ok(())
    }
    fn persistent(&self) -> bool {
        false
    }
}

/// A mapped object that is neither anonymous nor persistent is refused with `Error::Mapped`
/// (copy, `Mapping::private`, `MappingBuilder::private`, through any of its mappings), and the
/// refusal leaves the mapping as it was; unmapped, the same accessor's object copies fine.
/// A mapped `MemoryAccessor` and a mapped read-only `ComputedAccessor` (both persistent) copy
/// and map privately; a closed mapped object is `Closed`.
#[test]
fn which_mapped_objects_can_be_copied() {
    let (pages, swap) = pool_swap(16, 4096, BOUND);
    let n = 8u64;
    let a = or_return!(skip_or(Mapping::new(&pages, Scratch::default(), n * P)));
    let b = a.share().unwrap();
    for p in 0..n {
        store(&a, p, 0x40 + p);
    }
    assert!(matches!(a.object().copy(), Err(Error::Mapped)));
    assert!(matches!(b.object().copy(), Err(Error::Mapped)));
    assert!(matches!(Mapping::private(a.object()), Err(Error::Mapped)));
    assert!(matches!(
        Mapping::builder().handlers(3).private(b.object()),
        Err(Error::Mapped)
    ));
    for p in 0..n {
        assert_eq!(load(&b, p), 0x40 + p);
        store(&b, p, 0x80 + p);
        assert_eq!(word(a.object(), p), 0x80 + p);
    }
    drop((a, b));

    let un = pages.open(Scratch::default(), n * P).unwrap();
    set(&un, 1, 11);
    let c = un
        .copy()
        .expect("copy of an unmapped non-persistent object");
    let pm = skip_or(Mapping::private(&un)).unwrap();
    set(&un, 1, 12);
    assert_eq!((word(&c, 1), load(&pm, 1), word(&un, 1)), (11, 11, 12));
    drop((un, c, pm));

    let mem = Arc::new(MemoryAccessor::new());
    let m = skip_or(Mapping::new(&pages, mem.clone(), n * P)).unwrap();
    store(&m, 2, 22);
    let c = m.object().copy().expect("copy of a mapped MemoryAccessor");
    assert_eq!(
        mem.stored(2).map(|v| v[0]),
        Some(22),
        "the copy wrote the dirty page back first"
    );
    store(&m, 2, 23);
    assert_eq!((word(&c, 2), load(&m, 2)), (22, 23));
    drop((m, c));

    let computed = ComputedAccessor::new(|p, buf| {
        buf.fill(0);
        buf[..8].copy_from_slice(&(p * 3 + 1).to_le_bytes());
        Ok(())
    });
    let m = skip_or(Mapping::new(&pages, computed, n * P)).unwrap();
    assert_eq!(load(&m, 5), 16);
    let pm = skip_or(Mapping::private(m.object())).expect("private mapping of a read-only object");
    store(&pm, 5, 99);
    store(&pm, 6, 98);
    assert_eq!((load(&pm, 5), load(&pm, 6), load(&pm, 7)), (99, 98, 22));
    assert_eq!((load(&m, 5), load(&m, 6)), (16, 19));
    let c = m.object().copy().unwrap();
    assert_eq!(word(&c, 6), 19);

    // A mapped object closed by its last mapping's end.
    let obj = m.object().clone();
    m.close().unwrap();
    assert!(obj.is_closed());
    assert!(
        matches!(obj.copy(), Err(Error::Closed)),
        "copy of a closed object"
    );
    assert!(matches!(Mapping::private(&obj), Err(Error::Closed)));
    assert_eq!(load(&pm, 7), 22, "the private mapping outlives its source");
    drop((obj, pm, c));
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

// ---------------------------------------------------------------------------------------------
// 9. Checkpoints: copies made and dropped in turn keep the chain and the swap bounded.
// ---------------------------------------------------------------------------------------------

/// "Each copy of a mapped object adds a layer below it for as long as that copy lives (layers
/// below it collapse into each other as copies go)" (SPEC §2.8): 20 checkpoints, each made,
/// checked, written and dropped, must leave the chain shallow and the swap bounded.
fn checkpoints(kind: Kind) -> Vec<(usize, u32)> {
    let (pages, swap) = pool_swap(8, 4096, BOUND);
    let n = 16u64;
    let (a, file, init) = match map_new(&pages, &swap, kind, n) {
        Some(x) => x,
        None => return vec![],
    };
    let mut shared = init;
    let mut seen = Vec::new();
    for round in 0..20u64 {
        for p in 0..n {
            if (p + round) % 3 != 0 {
                store(&a, p, round << 16 | p);
                shared[p as usize] = round << 16 | p;
            }
        }
        let s = snap_of(a.object(), round % 2 == 0);
        s.check_loads(&shared, &format!("checkpoint {round}"));
        s.put(round % n, 0xDEAD);
        drop(s);
        for p in 0..n {
            assert_eq!(load(&a, p), shared[p as usize], "round {round}: page {p}");
        }
        seen.push((a.object().copy_stats().depth, swap.in_use()));
    }
    a.sync().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file");
    }
    drop(a);
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
    seen
}

#[test]
fn checkpoints_of_mapped_anonymous_memory_keep_the_chain_and_swap_bounded() {
    let seen = checkpoints(Kind::Anon);
    eprintln!("(depth, swap slots in use) after each checkpoint: {seen:?}");
    for (i, &(depth, slots)) in seen.iter().enumerate() {
        assert!(depth <= 2, "checkpoint {i}: chain {depth} deep: {seen:?}");
        assert!(
            slots <= 32,
            "checkpoint {i}: {slots} slots in use: {seen:?}"
        );
    }
}

#[test]
fn checkpoints_of_a_mapped_file_keep_the_chain_and_swap_bounded() {
    let seen = checkpoints(Kind::File);
    eprintln!("(depth, swap slots in use) after each checkpoint: {seen:?}");
    for (i, &(depth, slots)) in seen.iter().enumerate() {
        assert!(depth <= 2, "checkpoint {i}: chain {depth} deep: {seen:?}");
        assert!(
            slots <= 32,
            "checkpoint {i}: {slots} slots in use: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 10. What the shared side's first write after a copy needs: the file readable, a frame, swap.
// ---------------------------------------------------------------------------------------------

/// Runs this test binary's test `name` (ignored, run only with `MCB_CHILD` set) in a child
/// process: its exit status and output.
fn run_child(name: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MCB_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// Child: a file mapped shared, page 2 loaded (resident, clean), a copy made (or not), then the
/// file's reads fail and page 2 is stored to through the mapping.
fn store_to_a_resident_page_with_failing_reads(copy: bool) {
    if std::env::var_os("MCB_CHILD").is_none() {
        return;
    }
    let (pages, _swap) = pool_swap(16, 4096, Duration::from_secs(1));
    let file = Arc::new(Backing::default());
    let a = skip_or(Mapping::new(&pages, file.clone(), 8 * P)).unwrap();
    assert_eq!(load(&a, 2), 2000);
    let _c = copy.then(|| a.object().copy().unwrap());
    file.fail_fill.store(true, SeqCst);
    store(&a, 2, 7);
    assert_eq!(load(&a, 2), 7);
    println!("CHILD STORED");
}

#[test]
#[ignore = "child process of a_store_to_a_resident_page_needs_no_read_of_the_file*"]
fn child_store_without_a_copy() {
    store_to_a_resident_page_with_failing_reads(false);
}

#[test]
#[ignore = "child process of a_store_to_a_resident_page_needs_no_read_of_the_file*"]
fn child_store_after_a_copy() {
    store_to_a_resident_page_with_failing_reads(true);
}

/// Control: with no copy, a store to a resident page of a mapped file reads nothing from the
/// file, so failing reads do not matter.
#[test]
fn a_store_to_a_resident_page_needs_no_read_of_the_file() {
    if skip_or(Mapping::new(&mapped::pool(4), MemoryAccessor::new(), P)).is_none() {
        return;
    }
    let (status, out) = run_child("child_store_without_a_copy");
    assert!(
        status.success() && out.contains("CHILD STORED"),
        "{status:?}\n{out}"
    );
}

/// Found by this pass (stop 34), fixed: after a copy, the shared side's first store to a page it holds resident (its
/// bytes are the file's and the layer's alike: SPEC §2.8) reads the page from the file again
/// (privatize faults it into the layer), so a file that cannot be read makes that store a
/// `SIGBUS` (and a write guard `Err(Fill)`), though nothing needs reading: the bytes are in
/// memory. Not in the docs of `Mapping`, `PageMapper::copy` or `MappingBuilder::private`.
#[test]
fn a_store_to_a_resident_page_needs_no_read_of_the_file_after_a_copy() {
    let (status, out) = run_child("child_store_after_a_copy");
    assert!(
        status.success() && out.contains("CHILD STORED"),
        "{status:?}\n{out}"
    );
}

/// A mapped file, all its pages loaded (resident, clean) and page 1 stored to; a copy; then
/// the file's reads fail.
fn copied_with_reads_failing(
    pages: &Pages,
    n: u64,
) -> Option<(Mapping, Arc<Backing>, PageMapper, Vec<u64>)> {
    let file = Arc::new(Backing::default());
    let a = skip_or(Mapping::new(pages, file.clone(), n * P))?;
    let mut snap: Vec<u64> = (0..n).map(|p| p * 1000).collect();
    for p in 0..n {
        assert_eq!(load(&a, p), snap[p as usize]);
    }
    store(&a, 1, 11);
    snap[1] = 11;
    let c = a.object().copy().unwrap();
    file.fail_fill.store(true, SeqCst);
    Some((a, file, c, snap))
}

/// The same through write guards, where the failure is an error, not a signal: whatever the
/// first write after a copy does while the file cannot be read (today: `Err(Fill)`), nothing is
/// lost; once reads work the writes go through, the copy keeps its snapshot, the file gets
/// the shared side's writes.
#[test]
fn a_failing_read_of_the_file_after_a_copy_loses_nothing() {
    let (pages, swap) = pool_swap(16, 4096, Duration::from_secs(1));
    let n = 8u64;
    let (a, file, c, snap) = or_return!(copied_with_reads_failing(&pages, n));
    for p in [1u64, 2] {
        let r = a
            .object()
            .write(p)
            .map(|mut g| g[..8].copy_from_slice(&(0x20 + p).to_le_bytes()));
        assert!(
            matches!(r, Ok(()) | Err(Error::Fill { .. })),
            "page {p}: {r:?}"
        );
    }
    file.fail_fill.store(false, SeqCst);
    check_obj(&c, &snap, "copy once the file can be read");
    set(a.object(), 1, 0x21);
    set(a.object(), 2, 0x22);
    let fills = file.fills.load(SeqCst);
    for p in 3..n {
        store(&a, p, 0x20 + p);
    }
    // Observed, not promised: each first store after the copy reads the file once more.
    eprintln!(
        "fills for {} first stores to resident pages after a copy: {}",
        n - 3,
        file.fills.load(SeqCst) - fills
    );
    check_obj(&c, &snap, "copy");
    for p in 1..n {
        assert_eq!(load(&a, p), 0x20 + p);
    }
    drop((a, c));
    for p in 1..n {
        assert_eq!(file.word(p), 0x20 + p);
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

/// Found by this pass (stop 34), fixed (minimal, no signal): a write guard on a page the mapped file holds resident fails
/// with `Fill` after a copy when the file cannot be read; without the copy it succeeds.
#[test]
fn a_write_guard_on_a_resident_page_after_a_copy_needs_no_read_of_the_file() {
    let (pages, _swap) = pool_swap(16, 4096, Duration::from_secs(1));
    let (a, _file, _c, _) = or_return!(copied_with_reads_failing(&pages, 4));
    let r = a.object().write(2).map(|mut g| g[0] = 1);
    assert!(r.is_ok(), "write guard on resident page 2: {r:?}");
}

/// After a copy of a mapped file, the layer keeps the old content of every page the shared
/// side writes, in the pool's swap area once evicted: with a swap area of 4 slots, the shared
/// side's stores wait (a guard's write fails with `WriteBack`/ENOSPC) until the copy goes;
/// then every store lands, and the copy read meanwhile its whole snapshot.
#[test]
fn a_mapped_file_s_writes_after_a_copy_are_bounded_by_the_pool_s_swap() {
    let (pages, swap) = pool_swap(8, 4, Duration::from_secs(1));
    let n = 16u64;
    let file = Arc::new(Backing::default());
    let a = or_return!(skip_or(Mapping::new(&pages, file.clone(), n * P)));
    let c = a.object().copy().unwrap();
    let mut failed = None;
    for p in 0..n {
        let r = a
            .object()
            .write(p)
            .map(|mut g| g[..8].copy_from_slice(&(0x50 + p).to_le_bytes()));
        if let Err(e) = r {
            failed = Some((p, e));
            break;
        }
    }
    eprintln!("guard writes after the copy, 4 swap slots: first failure {failed:?}");
    let (first_failed, e) = failed.expect("16 pages written with 4 swap slots and 8 frames");
    assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e:?}");
    // Stores through the mapping to the rest: they wait for swap.
    let done = AtomicU64::new(first_failed);
    std::thread::scope(|scope| {
        let (a, done) = (&a, &done);
        scope.spawn(move || {
            for p in first_failed..n {
                store(a, p, 0x50 + p);
                done.store(p + 1, SeqCst);
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let mid = done.load(SeqCst);
        eprintln!("stores done after 0.5 s: {mid} of {n}");
        for p in 0..n {
            if let Ok(g) = c.read(p) {
                assert_eq!(
                    u64::from_le_bytes(g[..8].try_into().unwrap()),
                    p * 1000,
                    "copy page {p}"
                );
            }
        }
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(5);
        while done.load(SeqCst) < n {
            if Instant::now() > deadline {
                // A thread stuck in a fault: never unmap under it.
                std::mem::forget(pages.clone());
                panic!(
                    "stores still waiting 5 s after the copy went: {} of {n}",
                    done.load(SeqCst)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    for p in 0..n {
        assert_eq!(load(&a, p), 0x50 + p);
    }
    a.close().unwrap();
    for p in 0..n {
        assert_eq!(file.word(p), 0x50 + p);
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

/// A copy of a mapped file in a pool of one frame (`Mapping::private` refuses such a pool,
/// `PageMapper::copy` does not): while the copy lives, a guard's write of the shared side's
/// resident page returns (`Exhausted` after the bound, as §9 says of a break in a one-frame
/// pool: the layer needs a frame of its own), and once the copy has gone (and another page
/// missed) nothing is lost.
#[test]
fn a_copy_of_a_mapped_file_in_a_pool_of_one_frame() {
    let (pages, swap) = pool_swap(1, 64, Duration::from_millis(500));
    let file = Arc::new(Backing::default());
    let a = or_return!(skip_or(Mapping::new(&pages, file.clone(), 4 * P)));
    store(&a, 0, 5);
    assert!(matches!(Mapping::private(a.object()), Err(Error::Map(_))));
    let c = a.object().copy().expect("copy in a pool of one frame");
    let r = a
        .object()
        .write(0)
        .map(|mut g| g[..8].copy_from_slice(&6u64.to_le_bytes()));
    assert!(matches!(r, Ok(()) | Err(Error::Exhausted { .. })), "{r:?}");
    // (Neither a guard nor a load of page 0 through `a` works now: after the failed write the
    // only frame holds the layer's page 0, which the object's fault pins to copy from while it
    // waits for a frame of its own; the load would hang. See the findings below.)
    assert_eq!(word(&c, 0), 5);
    drop(c);
    set(a.object(), 1, 7); // a miss: lets the layer go (see the finding below)
    assert_eq!(word(a.object(), 0), if r.is_ok() { 6 } else { 5 });
    set(a.object(), 0, 6);
    assert_eq!(load(&a, 0), 6);
    drop(a);
    assert_eq!((file.word(0), file.word(1)), (6, 7));
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

/// One frame; the copy of a mapped file read page 0 (its layer now holds the only frame), and
/// went.
fn one_frame_copy_read_and_dropped(pages: &Pages) -> Option<Mapping> {
    let file = Arc::new(Backing::default());
    let a = skip_or(Mapping::new(pages, file, 4 * P))?;
    store(&a, 0, 5);
    let c = a.object().copy().unwrap();
    assert_eq!(word(&c, 0), 5);
    drop(c);
    Some(a)
}

/// Found by this pass (stop 34), fixed (minimal): in a pool of one frame, once a copy of a mapped file has read page 0 and
/// gone, writing page 0 fails with `Exhausted` for good (until some other page misses): the
/// copy's layer outlives the copy and keeps the only frame (SPEC §2.8: a layer lives "for as
/// long as that copy lives").
#[test]
fn a_dropped_copy_s_layer_leaves_the_only_frame() {
    let (pages, _swap) = pool_swap(1, 64, Duration::from_millis(500));
    let a = or_return!(one_frame_copy_read_and_dropped(&pages));
    let r = a
        .object()
        .write(0)
        .map(|mut g| g[..8].copy_from_slice(&6u64.to_le_bytes()));
    assert!(r.is_ok(), "write of page 0 after the copy went: {r:?}");
}

#[test]
#[ignore = "child process of a_store_after_a_dropped_copy_in_a_pool_of_one_frame"]
fn child_store_after_a_dropped_copy() {
    if std::env::var_os("MCB_CHILD").is_none() {
        return;
    }
    let (pages, _swap) = pool_swap(1, 64, Duration::from_millis(500));
    let a = Arc::new(one_frame_copy_read_and_dropped(&pages).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    {
        let (a, done) = (a.clone(), done.clone());
        std::thread::spawn(move || {
            store(&a, 0, 6);
            done.store(true, SeqCst);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done.load(SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("STORE DONE: {}", done.load(SeqCst));
    std::process::exit(0); // never unmap under a thread stuck in a fault
}

/// Found by this pass (stop 34), fixed: the same through the mapping: the store's fault is retried for ever (`Exhausted`
/// is "not the page's fault"), so the storing thread hangs although no copy exists any more.
#[test]
fn a_store_after_a_dropped_copy_in_a_pool_of_one_frame() {
    let (status, out) = run_child("child_store_after_a_dropped_copy");
    assert!(out.contains("STORE DONE: true"), "{status:?}\n{out}");
}

// ---------------------------------------------------------------------------------------------
// 11. Many live copies; the last mapping ending while copies are made.
// ---------------------------------------------------------------------------------------------

/// 24 copies and private mappings alive at once, a round of shared stores between each
/// (a layer per live copy), checked, written and dropped in a random order under pressure.
fn many_live_snapshots(kind: Kind) {
    let (pages, swap) = pool_swap(8, 4096, BOUND);
    let n = 16u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let mut shared = init;
    let mut rng = StdRng::seed_from_u64(42);
    let mut snaps: Vec<(Snap, Vec<u64>)> = Vec::new();
    for i in 0..24u64 {
        for _ in 0..6 {
            let p = rng.random_range(0..n);
            store(&a, p, i << 20 | p);
            shared[p as usize] = i << 20 | p;
        }
        snaps.push((snap_of(a.object(), i % 3 != 0), shared.clone()));
    }
    eprintln!(
        "{kind:?}: depth with 24 live snapshots {:?}",
        a.object().copy_stats()
    );
    for (j, (s, model)) in snaps.iter_mut().enumerate() {
        s.check_loads(model, &format!("snapshot {j}"));
        let p = rng.random_range(0..n);
        s.put(p, 0xC0DE << 32 | j as u64);
        model[p as usize] = 0xC0DE << 32 | j as u64;
    }
    check_map(&a, &shared, "the mapping");
    while !snaps.is_empty() {
        let (s, model) = snaps.swap_remove(rng.random_range(0..snaps.len()));
        s.check_loads(&model, "a snapshot about to go");
        drop(s);
        if let Some((s, model)) = snaps.first() {
            s.check_loads(model, "a snapshot left");
        }
    }
    check_map(&a, &shared, "the mapping at the end");
    eprintln!(
        "{kind:?}: with none left: {:?}, {} swap slots in use, {:?}",
        a.object().copy_stats(),
        swap.in_use(),
        pages.census().unwrap()
    );
    drop(a);
    if let Some(f) = &file {
        check_file(f, &shared, "file");
    }
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn many_live_snapshots_of_a_mapped_file() {
    many_live_snapshots(Kind::File);
}

#[test]
fn many_live_snapshots_of_mapped_anonymous_memory() {
    many_live_snapshots(Kind::Anon);
}

#[test]
fn many_live_snapshots_of_a_private_mapping() {
    many_live_snapshots(Kind::Private);
}

/// A thread makes copies and private mappings of the object (through a handle of its own)
/// while its mappings end one after the other, the last one closing it: each is made whole
/// (the object's final content) or refused with `Closed`; nothing leaks.
fn last_mapping_ends_while_copies_are_made(kind: Kind) {
    let (pages, swap) = pool_swap(8, 4096, BOUND);
    let n = 16u64;
    let (a, file, init) = or_return!(map_new(&pages, &swap, kind, n));
    let b = a.share().unwrap();
    let c = a.share().unwrap();
    let mut shared = init;
    for p in 0..n {
        store([&a, &b, &c][p as usize % 3], p, 0x700 + p);
        shared[p as usize] = 0x700 + p;
    }
    let obj = a.object().clone();
    let (made, refused) = std::thread::scope(|scope| {
        let (obj, shared) = (&obj, &shared);
        let t = scope.spawn(move || {
            let (mut made, mut refused, mut i) = (0, 0, 0u64);
            loop {
                i += 1;
                let r = if i % 2 == 0 {
                    obj.copy().map(Snap::Copy)
                } else {
                    Mapping::private(obj).map(Snap::Priv)
                };
                match r {
                    Ok(s) => {
                        s.check_loads(shared, &format!("snapshot {i}"));
                        made += 1;
                    }
                    Err(Error::Closed) => {
                        refused += 1;
                        if refused > 3 {
                            return (made, refused);
                        }
                    }
                    Err(e) => panic!("snapshot {i}: {e:?}"),
                }
            }
        });
        std::thread::sleep(Duration::from_millis(30));
        drop(a);
        std::thread::sleep(Duration::from_millis(20));
        drop(b);
        std::thread::sleep(Duration::from_millis(20));
        c.close().unwrap();
        t.join().unwrap()
    });
    eprintln!("{kind:?}: {made} snapshots made, then {refused} refused");
    assert!(made > 0);
    assert!(obj.is_closed());
    if let Some(f) = &file {
        check_file(f, &shared, "file");
    }
    drop(obj);
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
}

#[test]
fn a_mapped_file_s_last_mapping_ends_while_copies_are_made() {
    last_mapping_ends_while_copies_are_made(Kind::File);
}

#[test]
fn mapped_anonymous_memory_s_last_mapping_ends_while_copies_are_made() {
    last_mapping_ends_while_copies_are_made(Kind::Anon);
}

fn rolling(kind: Kind, private: bool) -> Vec<(usize, u32)> {
    let (pages, swap) = pool_swap(8, 1 << 16, BOUND);
    let n = 16u64;
    let (a, file, init) = match map_new(&pages, &swap, kind, n) {
        Some(x) => x,
        None => return vec![],
    };
    let mut shared = init;
    let mut seen = Vec::new();
    let mut prev: Option<(Snap, Vec<u64>)> = None;
    for round in 0..30u64 {
        for p in 0..n {
            store(&a, p, round << 16 | p);
            shared[p as usize] = round << 16 | p;
        }
        let s = snap_of(a.object(), !private);
        if let Some((old, model)) = prev.take() {
            old.check_loads(&model, &format!("checkpoint {}", round - 1));
        }
        prev = Some((s, shared.clone()));
        seen.push((a.object().copy_stats().depth, swap.in_use()));
    }
    drop(prev);
    a.sync().unwrap();
    if let Some(f) = &file {
        check_file(f, &shared, "file");
    }
    drop(a);
    all_free(&pages);
    drop(pages);
    no_slots(&swap);
    seen
}

/// Rolling checkpoints (make the next snapshot, then drop the previous one: at most two alive)
/// of mapped anonymous memory keep its chain and its swap bounded.
#[test]
fn rolling_checkpoints_of_mapped_anonymous_memory_stay_bounded() {
    for private in [false, true] {
        let seen = rolling(Kind::Anon, private);
        eprintln!("private {private}: (depth, slots) {seen:?}");
        for (i, &(depth, slots)) in seen.iter().enumerate() {
            assert!(depth <= 2 && slots <= 32, "checkpoint {i}: {seen:?}");
        }
    }
}

/// A known limit (SPEC §9), found documented incompletely by this pass: rolling checkpoints of a
/// mapped file add a layer per checkpoint for good, and each keeps the old content of every
/// page the file wrote since, in the pool's swap: 30 layers and 464 slots for a 16-page file
/// after 30 checkpoints, though at most two copies are ever alive. SPEC §9 says a file "whose
/// copies were alive together keeps their layers after they go"; it does not say that their
/// swap slots stay too (against §2.6's "frames and swap slots are freed exactly when no copy
/// refers to them"), and with the swap area full the shared mapping's stores wait for ever
/// (`a_mapped_file_s_writes_after_a_copy_are_bounded_by_the_pool_s_swap`). §2.8's "(layers
/// below it collapse into each other as copies go)" does not hold for files. An unmapped file
/// behaves the same.
#[test]
#[ignore = "known limit (SPEC §9): rolling checkpoints of a file grow its chain and swap"]
fn rolling_checkpoints_of_a_mapped_file_stay_bounded() {
    for private in [false, true] {
        let seen = rolling(Kind::File, private);
        for (i, &(depth, slots)) in seen.iter().enumerate() {
            assert!(depth <= 2 && slots <= 32, "checkpoint {i}: {seen:?}");
        }
    }
}

#[test]
fn chains_of_copies_and_private_mappings_of_a_private_mapping() {
    chains(Kind::Private);
}

#[test]
fn a_private_mapping_s_views_end_while_its_snapshots_live() {
    source_mappings_end_while_snapshots_live(Kind::Private);
}

#[test]
fn holders_of_a_private_mapping_s_pages_during_a_copy() {
    holders_during_a_copy(Kind::Private);
}
/// Found by this pass (stop 34), fixed (liveness): two threads write two resident pages of a
/// mapped file after a copy, in a pool of two frames. Each pinned its page for the write and
/// then needed a frame for the layer's copy of the page (privatize, which now writes the
/// page's bytes to the layer's swap and needs no frame), so both waited for each other until
/// the pool's bound: both fail with `Exhausted` in about half the tries
/// (through mappings the faults would be retried instead). An unmapped file's copy-on-write
/// breaks do the same less often (6 of 30 tries, against 15-23 of 30); SPEC §9 names only the
/// one-frame case. The same hold-and-wait stalls `race` in a pool of 5 frames (every frame
/// pinned, five threads waiting for a frame, for the whole 10 s bound):
/// `snapshots_under_concurrent_writers_in_a_pool_of_five_frames`.
#[test]
fn two_writers_of_a_mapped_file_after_a_copy_in_a_pool_of_two_frames() {
    let mut stalls = 0;
    for _ in 0..30 {
        let (pages, _swap) = pool_swap(2, 64, Duration::from_millis(300));
        let file = Arc::new(Backing::default());
        let a = or_return!(skip_or(Mapping::new(&pages, file.clone(), 4 * P)));
        assert_eq!(load(&a, 0), 0);
        assert_eq!(load(&a, 1), 1000);
        let c = a.object().copy().unwrap();
        let bar = std::sync::Barrier::new(2);
        let rs: Vec<_> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2u64)
                .map(|p| {
                    let (o, bar) = (a.object(), &bar);
                    sc.spawn(move || {
                        bar.wait();
                        o.write(p).map(|mut g| g[0] = 9)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        stalls += rs.iter().any(|r| r.is_err()) as u32;
        drop(c);
    }
    assert_eq!(stalls, 0, "{stalls} of 30 tries: both writers Exhausted");
}
