//! pagesim end to end (issue 6): pagesim's workload (Zipf 0.99 reads over one file of 16,384
//! pages of 4 KiB, a cache of 10% of it) through pagecore's clients, beside the same workload on
//! what a user would build instead, `quick_cache` of page copies filled by positional reads
//! (`pagesim::peer`), with the same threads, pages and driver loop, in the same run.
//!
//! Run: `cargo bench -p pagesim --bench end_to_end`; `PAGECORE_BENCH_INTERLEAVE=ROUNDS`
//! alternates the two and prints medians and the ratio per thread count.

use criterion::{criterion_group, Criterion, Throughput};
use pagecore::{Access, Client, FileAccessor, PageMapper, Pages};
use pagesim::peer::{drive, QuickCachePeer};
use pagesim::{Kind, Workload};
use std::hint::black_box;
use std::time::Duration;

const PAGE: usize = 4096;
const PAGES: u64 = 16_384;
const CACHE: u64 = PAGES / 10;
const OPS: u64 = 200_000;

struct Sides {
    _dir: tempfile::TempDir,
    _pages: Pages,
    obj: PageMapper,
    clients: Vec<Client>,
    peer: QuickCachePeer,
    workload: Workload,
}

fn sides(threads: usize) -> Sides {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object-0.bin");
    pagesim::sim::create_file(&path, 0, PAGES, PAGE).unwrap();
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(CACHE)
        .policy(pagecore::Policy::Sieve)
        .build()
        .unwrap();
    let obj = pages
        .open(
            FileAccessor::open(&path, PAGE).unwrap(),
            PAGES * PAGE as u64,
        )
        .unwrap();
    let clients = (0..threads).map(|_| obj.register().unwrap()).collect();
    let peer = QuickCachePeer::new(&[&path], PAGE, CACHE).unwrap();
    Sides {
        _dir: dir,
        _pages: pages,
        obj,
        clients,
        peer,
        workload: Workload::new(Kind::Zipf, PAGES),
    }
}

fn pagecore_run(s: &Sides, threads: usize, ops: u64) -> Duration {
    drive(threads, ops, &s.workload, 11, |t, p| {
        let g = s.clients[t].request(p, Access::Read).unwrap();
        black_box(g[0]);
    })
}

fn quick_cache_run(s: &Sides, threads: usize, ops: u64) -> Duration {
    drive(threads, ops, &s.workload, 11, |_, p| {
        let g = s.peer.read(0, p).unwrap();
        black_box(g[0]);
    })
}

fn bench(c: &mut Criterion) {
    for threads in [1usize, 2, 4] {
        let s = sides(threads);
        let mut g = c.benchmark_group(format!("end_to_end/{threads}"));
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function("pagecore", |b| {
            b.iter_custom(|n| pagecore_run(&s, threads, n))
        });
        g.bench_function("quick_cache_pread", |b| {
            b.iter_custom(|n| quick_cache_run(&s, threads, n))
        });
        g.finish();
        drop(s.clients);
        s.obj.close().unwrap();
    }
}

fn interleaved(rounds: usize) {
    for threads in [1usize, 2, 4] {
        let s = sides(threads);
        // Warm both to their steady state.
        pagecore_run(&s, threads, OPS);
        quick_cache_run(&s, threads, OPS);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let rate = |d: Duration| (threads as u64 * OPS) as f64 / d.as_secs_f64() / 1e6;
        for _ in 0..rounds {
            a.push(rate(pagecore_run(&s, threads, OPS)));
            b.push(rate(quick_cache_run(&s, threads, OPS)));
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|x, y| x.total_cmp(y));
            v[v.len() / 2]
        };
        let (x, y) = (med(&mut a), med(&mut b));
        println!(
            "end_to_end {threads} thread(s): pagecore {x:.2} Mops/s, quick_cache+pread {y:.2} Mops/s: {:.2}x",
            x / y
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("PAGECORE_BENCH_INTERLEAVE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(rounds) => interleaved(rounds.max(1)),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
