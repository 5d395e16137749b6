//! Hit path: a read of one byte through a read guard on a resident page, Zipf(0.99) over 262,144
//! pages of 4 KiB, at 1 and 2 threads, beside the peers a user would otherwise reach for, all
//! holding the same pages, in the same run:
//!
//! * `atomic_bound` — the lower bound: `fetch_add` on a per-page counter, one byte read,
//!   `fetch_sub` (what any pin-based design must at least do);
//! * `quick_cache` (`quick_cache::sync::Cache`), `moka` (`moka::sync::Cache`), `dashmap`, and
//!   `mutex_lru` (`Mutex<lru::LruCache>`), each mapping page index -> `Arc<[u8]>` of 4 KiB.
//!
//! Environment: `PAGECORE_BENCH_PAGES` (default 262144), `PAGECORE_BENCH_THREADS` (default "1,2").
//! Run: `cargo bench -p pagecore --bench hit_path`. Ratios: `bench/ratios.py`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pagecore::{ComputedAccessor, Pages};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
const KEYS_PER_THREAD: usize = 1 << 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn threads() -> Vec<usize> {
    std::env::var("PAGECORE_BENCH_THREADS")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2])
}

/// Zipf(0.99) page indices, hottest ranks scattered over the page range by an odd multiplier
/// (a bijection modulo a power of two; otherwise a near-bijection, fine for a workload).
fn keys(n: usize, seed: u64) -> Vec<u64> {
    let z = Zipf::new(n as f64, 0.99).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..KEYS_PER_THREAD)
        .map(|_| {
            let rank = z.sample(&mut rng) as u64 - 1;
            rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n as u64
        })
        .collect()
}

/// Runs `op` over each thread's key stream, `iters` operations per thread; returns wall time.
fn run_threads<F: Fn(u64) -> u8 + Sync>(
    threads: usize,
    iters: u64,
    key_sets: &[Vec<u64>],
    op: &F,
) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let keys = &key_sets[t];
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let mut acc = 0u8;
                    for i in 0..iters as usize {
                        acc = acc.wrapping_add(op(keys[i % keys.len()]));
                    }
                    black_box(acc);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let n = env_usize("PAGECORE_BENCH_PAGES", 262_144);
    let thread_counts = threads();
    let max_t = thread_counts.iter().copied().max().unwrap_or(1);
    let key_sets: Vec<Vec<u64>> = (0..max_t).map(|t| keys(n, 42 + t as u64)).collect();
    let page_of = |k: u64| -> Arc<[u8]> { vec![(k % 251) as u8; PAGE].into() };

    let mut g = c.benchmark_group("hit_path");
    g.measurement_time(Duration::from_secs(
        env_usize("PAGECORE_BENCH_SECS", 3) as u64
    ));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(20);

    macro_rules! peer {
        ($name:expr, $op:expr) => {{
            let op = $op;
            for &t in &thread_counts {
                g.throughput(Throughput::Elements(t as u64));
                g.bench_with_input(BenchmarkId::new($name, t), &t, |b, &t| {
                    b.iter_custom(|iters| run_threads(t, iters, &key_sets, &op))
                });
            }
        }};
    }

    // pagecore: every page resident in a pool as large as the working set.
    {
        let pages = Pages::builder()
            .page_size(PAGE)
            .frames(n as u64)
            .build()
            .unwrap();
        let obj = pages
            .open(
                ComputedAccessor::new(|p, buf| {
                    buf.fill((p % 251) as u8);
                    Ok(())
                }),
                (n * PAGE) as u64,
            )
            .unwrap();
        for p in 0..n as u64 {
            drop(obj.read(p).unwrap());
        }
        assert_eq!(pages.stats().unwrap().fills, n as u64);
        peer!("pagecore", |k: u64| obj.read(k).unwrap()[0]);
        assert_eq!(
            pages.stats().unwrap().fills,
            n as u64,
            "the benchmark missed"
        );
    }

    // Lower bound: per-page counter pin + one byte read.
    {
        let counters: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let data: Vec<u8> = (0..n * PAGE).map(|i| ((i / PAGE) % 251) as u8).collect();
        peer!("atomic_bound", |k: u64| {
            let c = &counters[k as usize];
            c.fetch_add(1, Ordering::Acquire);
            let b = data[k as usize * PAGE];
            c.fetch_sub(1, Ordering::Release);
            b
        });
    }

    {
        let cache: quick_cache::sync::Cache<u64, Arc<[u8]>> = quick_cache::sync::Cache::new(n);
        for k in 0..n as u64 {
            cache.insert(k, page_of(k));
        }
        peer!("quick_cache", |k: u64| cache.get(&k).map_or(0, |v| v[0]));
    }

    {
        let cache: moka::sync::Cache<u64, Arc<[u8]>> = moka::sync::Cache::new(n as u64);
        for k in 0..n as u64 {
            cache.insert(k, page_of(k));
        }
        cache.run_pending_tasks();
        peer!("moka", |k: u64| cache.get(&k).map_or(0, |v| v[0]));
    }

    {
        let map: dashmap::DashMap<u64, Arc<[u8]>> = dashmap::DashMap::with_capacity(n);
        for k in 0..n as u64 {
            map.insert(k, page_of(k));
        }
        peer!("dashmap", |k: u64| map.get(&k).map_or(0, |v| v[0]));
    }

    {
        let mut lru = lru::LruCache::new(NonZeroUsize::new(n).unwrap());
        for k in 0..n as u64 {
            lru.put(k, page_of(k));
        }
        let lru = Mutex::new(lru);
        peer!("mutex_lru", |k: u64| lru
            .lock()
            .unwrap()
            .get(&k)
            .map_or(0, |v| v[0]));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
