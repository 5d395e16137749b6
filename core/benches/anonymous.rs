//! Anonymous memory (issue 4): two costs, each beside the baseline the issue names, in one run.
//!
//! * `zero_fill` — first touch of a never-written anonymous 4 KiB page (a write fault: obtain a
//!   free frame, zero it, publish it, pin it for writing, write one byte, unpin) beside
//!   `memset_pin`: a 4 KiB memset of a page of an equally large buffer, plus an atomic pin and
//!   unpin (`fetch_add`/`fetch_sub`) on a per-page counter, plus the same one-byte write.
//! * `swap_in` — a read fault on a page that is on swap (cyclic order over 16x more pages than
//!   frames, so every read misses and evicts a clean page) beside `pread`: a raw positional read
//!   of the same slots, in the same order, from the same swap file.
//!
//! Run: `cargo bench -p pagecore --bench anonymous`. On noisy machines
//! `PAGECORE_BENCH_INTERLEAVE=ROUNDS` measures the two sides of each pair in alternating slices
//! and prints medians and ratios (as `hit_path` does).

use criterion::{criterion_group, Criterion, Throughput};

mod support;
use pagecore::internals::sync::{Arc, ShareArc};
use pagecore::Anonymous;
use pagecore::SwapArea;
use pagecore::{PageMapper, Pages};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
/// Pages touched per zero-fill batch (the pool holds them all: no reclaim).
const BATCH: u64 = 4096;
/// Frames and pages of the swap-in object.
const SWAP_FRAMES: u64 = 256;
const SWAP_PAGES: u64 = SWAP_FRAMES * 16;

/// Zero-fill first touch: `n` untouched pages written once each; returns the time of the touches
/// alone (objects are made and closed outside it).
fn zero_fill(pages: &Pages, n: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < n {
        let obj = pages.anonymous(BATCH * PAGE as u64).unwrap();
        let k = (n - done).min(BATCH);
        let t = Instant::now();
        for p in 0..k {
            obj.write(p).unwrap()[0] = p as u8;
        }
        total += t.elapsed();
        obj.close().unwrap();
        done += k;
    }
    total
}

/// The baseline: memset + pin + one-byte write + unpin over as many pages.
struct MemsetPin {
    buf: Vec<u8>,
    pins: Vec<AtomicU64>,
}

impl MemsetPin {
    fn new() -> Self {
        Self {
            buf: vec![1u8; BATCH as usize * PAGE],
            pins: (0..BATCH).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let t = Instant::now();
        for i in 0..n {
            let p = (i % BATCH) as usize;
            self.pins[p].fetch_add(1, Ordering::Acquire);
            let page = &mut self.buf[p * PAGE..(p + 1) * PAGE];
            // SAFETY: `page` is a valid, exclusive slice of PAGE bytes.
            unsafe { std::ptr::write_bytes(black_box(page.as_mut_ptr()), 0, PAGE) };
            page[0] = p as u8;
            self.pins[p].fetch_sub(1, Ordering::Release);
        }
        black_box(&self.buf);
        t.elapsed()
    }
}

/// The swap-in object: every page written once, so all but `SWAP_FRAMES` are on swap, then read
/// once in order so the resident ones are clean too.
struct SwapIn {
    _pages: Pages,
    obj: PageMapper,
    anon: Arc<Anonymous>,
    next: u64,
    slots: Vec<u32>,
    buf: Vec<u8>,
    next_raw: usize,
}

impl SwapIn {
    fn new() -> Self {
        let pages = Pages::builder()
            .page_size(PAGE)
            .frames(SWAP_FRAMES)
            .build()
            .unwrap();
        let swap = ShareArc::new(SwapArea::temporary(PAGE, SWAP_PAGES as u32 * 2).unwrap());
        let anon = Arc::new(Anonymous::new(swap));
        let obj = pages.open(anon.clone(), SWAP_PAGES * PAGE as u64).unwrap();
        for p in 0..SWAP_PAGES {
            obj.write(p).unwrap()[..8].copy_from_slice(&p.to_le_bytes());
        }
        for _ in 0..2 {
            for p in 0..SWAP_PAGES {
                black_box(obj.read(p).unwrap()[0]);
            }
        }
        let slots = (0..SWAP_PAGES)
            .map(|p| anon.slot_of(p).expect("every page went to swap"))
            .collect();
        Self {
            _pages: pages,
            obj,
            anon,
            next: 0,
            slots,
            buf: vec![0; PAGE],
            next_raw: 0,
        }
    }

    /// `n` read faults, each on a page on swap (cyclic order, FIFO reclaim: always a miss).
    fn pagecore(&mut self, n: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..n {
            let g = self.obj.read(self.next).unwrap();
            black_box(g[0]);
            drop(g);
            self.next = (self.next + 1) % SWAP_PAGES;
        }
        t.elapsed()
    }

    /// `n` raw positional reads of the same slots from the same file.
    fn pread(&mut self, n: u64) -> Duration {
        let swap = self.anon.swap();
        let t = Instant::now();
        for _ in 0..n {
            swap.read(self.slots[self.next_raw], &mut self.buf).unwrap();
            black_box(self.buf[0]);
            self.next_raw = (self.next_raw + 1) % self.slots.len();
        }
        t.elapsed()
    }
}

fn bench(c: &mut Criterion) {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(BATCH)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("zero_fill");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pagecore", |b| b.iter_custom(|n| zero_fill(&pages, n)));
    let mut base = MemsetPin::new();
    g.bench_function("memset_pin", |b| b.iter_custom(|n| base.run(n)));
    g.finish();

    let mut s = SwapIn::new();
    let mut g = c.benchmark_group("swap_in");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pagecore", |b| b.iter_custom(|n| s.pagecore(n)));
    g.bench_function("pread", |b| b.iter_custom(|n| s.pread(n)));
    g.finish();
}

/// Alternating slices of each side of each pair; medians of ns per operation, and ratios.
fn interleaved(rounds: usize) {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(BATCH)
        .build()
        .unwrap();
    let mut base = MemsetPin::new();
    let mut s = SwapIn::new();
    let n = 4 * BATCH;
    let m = 4 * SWAP_PAGES;
    let mut zf = (Vec::new(), Vec::new());
    let mut si = (Vec::new(), Vec::new());
    let ns = |d: Duration, n: u64| d.as_nanos() as f64 / n as f64;
    for _ in 0..rounds {
        zf.0.push(ns(zero_fill(&pages, n), n));
        zf.1.push(ns(base.run(n), n));
        si.0.push(ns(s.pagecore(m), m));
        si.1.push(ns(s.pread(m), m));
    }
    let med = |v: &mut Vec<f64>| support::median(v);
    let (a, b) = (med(&mut zf.0), med(&mut zf.1));
    println!(
        "zero_fill: pagecore {a:.0} ns/page, memset_pin {b:.0} ns/page: {:.2}x",
        a / b
    );
    let (a, b) = (med(&mut si.0), med(&mut si.1));
    println!(
        "swap_in: pagecore {a:.0} ns/page, pread {b:.0} ns/page: {:.2}x",
        a / b
    );
}

criterion_group!(benches, bench);

fn main() {
    support::main(benches, interleaved);
}
