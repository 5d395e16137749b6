//! The miss path and reclaim under pressure (issue 6), each beside its baseline, in one run.
//!
//! * `miss_path` — a read fault on a page of a real file that is not resident: reclaim the
//!   oldest (clean) page, fill from the file with a positional read, publish, pin, read a byte,
//!   unpin. The pages are read in a fixed random order of 16x more pages than frames, repeated,
//!   so under FIFO every read misses (and, like real misses, they are not sequential in the
//!   file). Beside it, `pread`: a positional read of the same pages, in the same order, from the
//!   same file into a buffer (what the fill itself costs).
//! * `reclaim` — pressure: uniform random reads (`ro`) or 80% reads and 20% writes (`rw`, whose
//!   victims are written back first) over a working set ten times the pool, at 1 and 2 threads.
//!   Reported as reclaims per second against the single-thread miss path's misses per second.
//!
//! Run: `cargo bench -p pagecore --bench miss_path`; on noisy machines
//! `PAGECORE_BENCH_INTERLEAVE=ROUNDS` alternates the measurements and prints medians and ratios.

use criterion::{criterion_group, Criterion, Throughput};

mod support;
use pagecore::{FileAccessor, PageMapper, Pages};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
const FRAMES: u64 = 1024;
const CYCLE_PAGES: u64 = FRAMES * 16;
const PRESSURE_PAGES: u64 = FRAMES * 10;

struct Setup {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut w = std::io::BufWriter::new(File::create(&path).unwrap());
    let mut page = vec![0u8; PAGE];
    for p in 0..CYCLE_PAGES {
        page[..8].copy_from_slice(&p.to_le_bytes());
        w.write_all(&page).unwrap();
    }
    w.flush().unwrap();
    // Read it once so both sides find it in the page cache.
    black_box(std::fs::read(&path).unwrap().len());
    Setup { _dir: dir, path }
}

fn object(s: &Setup, frames: u64) -> (Pages, PageMapper) {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .build()
        .unwrap();
    let obj = pages
        .open(
            FileAccessor::open(&s.path, PAGE).unwrap(),
            CYCLE_PAGES * PAGE as u64,
        )
        .unwrap();
    (pages, obj)
}

/// The miss path: `n` read faults in cyclic order (each misses).
struct MissPath {
    _pages: Pages,
    obj: PageMapper,
    order: Vec<u64>,
    next: usize,
    file: File,
    buf: Vec<u8>,
    next_raw: usize,
}

impl MissPath {
    fn new(s: &Setup) -> Self {
        let (pages, obj) = object(s, FRAMES);
        let mut order: Vec<u64> = (0..CYCLE_PAGES).collect();
        let mut rng = StdRng::seed_from_u64(9);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for &p in &order {
            black_box(obj.read(p).unwrap()[0]);
        }
        Self {
            _pages: pages,
            obj,
            order,
            next: 0,
            file: File::open(&s.path).unwrap(),
            buf: vec![0; PAGE],
            next_raw: 0,
        }
    }

    fn pagecore(&mut self, n: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..n {
            black_box(self.obj.read(self.order[self.next]).unwrap()[0]);
            self.next = (self.next + 1) % self.order.len();
        }
        t.elapsed()
    }

    fn pread(&mut self, n: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..n {
            std::os::unix::fs::FileExt::read_exact_at(
                &self.file,
                &mut self.buf,
                self.order[self.next_raw] * PAGE as u64,
            )
            .unwrap();
            black_box(self.buf[0]);
            self.next_raw = (self.next_raw + 1) % self.order.len();
        }
        t.elapsed()
    }
}

/// Reclaim under pressure: `threads` threads, `n` operations each, uniform over 10x the pool;
/// returns (wall time, reclaims).
fn pressure(s: &Setup, threads: usize, n: u64, write_share: f64) -> (Duration, u64) {
    let (pages, obj) = object(s, FRAMES);
    for p in 0..FRAMES {
        black_box(obj.read(p).unwrap()[0]);
    }
    let before = pages.stats().reclaims;
    let barrier = std::sync::Barrier::new(threads + 1);
    let wall = std::thread::scope(|sc| {
        for t in 0..threads {
            let (obj, barrier) = (&obj, &barrier);
            sc.spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64 + 1);
                barrier.wait();
                for i in 0..n {
                    let p = rng.random_range(0..PRESSURE_PAGES);
                    if rng.random::<f64>() < write_share {
                        obj.write(p).unwrap()[8] = i as u8;
                    } else {
                        black_box(obj.read(p).unwrap()[0]);
                    }
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed();
    let reclaims = pages.stats().reclaims - before;
    (wall, reclaims)
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut m = MissPath::new(&s);
    let mut g = c.benchmark_group("miss_path");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pagecore", |b| b.iter_custom(|n| m.pagecore(n)));
    g.bench_function("pread", |b| b.iter_custom(|n| m.pread(n)));
    g.finish();
    let mut g = c.benchmark_group("reclaim");
    for (name, share) in [("ro", 0.0), ("rw", 0.2)] {
        for threads in [1, 2] {
            g.bench_function(format!("{name}/{threads}"), |b| {
                // Per element: one reclaim (the rate the goal is about).
                b.iter_custom(|n| {
                    let (wall, reclaims) = pressure(&s, threads, n.div_ceil(threads as u64), share);
                    wall.mul_f64(n as f64 / reclaims.max(1) as f64)
                })
            });
        }
    }
    g.finish();
}

fn interleaved(rounds: usize) {
    let s = setup();
    let mut m = MissPath::new(&s);
    let n = 4 * CYCLE_PAGES;
    let per = |d: Duration, n: u64| d.as_nanos() as f64 / n as f64;
    let mut miss = Vec::new();
    let mut raw = Vec::new();
    let mut rec: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..rounds {
        miss.push(per(m.pagecore(n), n));
        raw.push(per(m.pread(n), n));
        for (k, (name, share)) in [("ro", 0.0), ("rw", 0.2)].into_iter().enumerate() {
            for (j, threads) in [1usize, 2].into_iter().enumerate() {
                let (wall, reclaims) = pressure(&s, threads, 100_000, share);
                let i = k * 2 + j;
                if rec.len() <= i {
                    rec.push((format!("{name}, {threads} thread(s)"), Vec::new()));
                }
                rec[i].1.push(per(wall, reclaims.max(1)));
            }
        }
    }
    let med = |v: &mut Vec<f64>| support::median(v);
    let (mp, pr) = (med(&mut miss), med(&mut raw));
    println!(
        "miss_path: pagecore {mp:.0} ns/miss, pread {pr:.0} ns/page: {:.2}x (goal <= 1.5x)",
        mp / pr
    );
    for (name, v) in &mut rec {
        let ns = med(v);
        println!(
            "reclaim {name}: {ns:.0} ns/reclaim, {:.2} Mreclaims/s = {:.2}x the miss path's rate (goal >= 0.7x)",
            1e3 / ns,
            mp / ns
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    support::main(benches, interleaved);
}
