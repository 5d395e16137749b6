//! Hit path: a read of one byte through a read guard on a resident page, Zipf(0.99) over 262,144
//! pages of 4 KiB, at 1 and 2 threads, beside the peers a user would otherwise reach for, all
//! holding the same pages, in the same run:
//!
//! * `pagecore_async` — the same read as an awaited fault (`read_async`, polled once);
//! * `pagecore_counted` — the same read in a pool that counts hits (`PagesBuilder::count_hits`):
//!   the hit counter's cost, beside `pagecore` in the same run;
//! * `pagecore_client`, `pagecore_client_async` — the same read as a client's read grant
//!   (`Client::request`), and as an awaited request (`enqueue`, polled once);
//! * `atomic_bound` — the lower bound: `fetch_add` on a per-page counter, one byte read,
//!   `fetch_sub` (what any pin-based design must at least do);
//! * `quick_cache` (`quick_cache::sync::Cache`), `moka` (`moka::sync::Cache`), `dashmap`, and
//!   `mutex_lru` (`Mutex<lru::LruCache>`), each mapping page index -> `Arc<[u8]>` of 4 KiB.
//!
//! Environment: `PAGECORE_BENCH_PAGES` (default 262144), `PAGECORE_BENCH_THREADS` (default "1,2"),
//! `PAGECORE_BENCH_PEERS` (comma-separated peers to keep beside `pagecore`; default all).
//! Run: `cargo bench -p pagecore --bench hit_path`. Ratios: `bench/ratios.py`.
//!
//! On noisy (shared, virtualised) machines, criterion's one-peer-after-another runs drift apart;
//! `PAGECORE_BENCH_INTERLEAVE=ROUNDS` instead measures every peer in short alternating slices
//! (ROUNDS rounds, each peer for `PAGECORE_BENCH_SLICE_MS` per thread count per round) and prints
//! the median throughput per peer and the ratios, so each ratio compares peers measured in the
//! same time window.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use pagecore::{Access, ComputedAccessor, Pages};
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
fn run_threads<F: Fn(usize, u64) -> u8 + Sync>(
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
                        acc = acc.wrapping_add(op(t, keys[i % keys.len()]));
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

/// One operation: (benchmark thread index, page) -> a byte of the page.
type Op<'a> = Box<dyn Fn(usize, u64) -> u8 + Sync + 'a>;

/// Builds every peer (holding the same pages) and runs `f` over them.
fn with_peers(n: usize, f: impl FnOnce(&[(&str, Op<'_>)])) {
    let page_of = |k: u64| -> Arc<[u8]> { vec![(k % 251) as u8; PAGE].into() };

    // pagecore: every page resident in a pool as large as the working set; `count_hits`: the
    // pool counts hits (PagesBuilder::count_hits), the hit counter's cost measured beside the
    // plain read in the same run. The pool lives as long as its object's handle.
    let resident = |count_hits: bool| {
        let pages = Pages::builder()
            .page_size(PAGE)
            .frames(n as u64)
            .count_hits(count_hits)
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
        obj
    };
    let obj = resident(false);
    let counted = resident(true);
    // Lower bound: per-page counter pin + one byte read.
    let counters: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let data: Vec<u8> = (0..n * PAGE).map(|i| ((i / PAGE) % 251) as u8).collect();
    let qc: quick_cache::sync::Cache<u64, Arc<[u8]>> = quick_cache::sync::Cache::new(n);
    let moka: moka::sync::Cache<u64, Arc<[u8]>> = moka::sync::Cache::new(n as u64);
    let dm: dashmap::DashMap<u64, Arc<[u8]>> = dashmap::DashMap::with_capacity(n);
    let mut lru = lru::LruCache::new(NonZeroUsize::new(n).unwrap());
    for k in 0..n as u64 {
        qc.insert(k, page_of(k));
        moka.insert(k, page_of(k));
        dm.insert(k, page_of(k));
        lru.put(k, page_of(k));
    }
    moka.run_pending_tasks();
    let lru = Mutex::new(lru);
    // Clients: benchmark thread t uses client t % CLIENTS (as a user holds its client in hand).
    let clients: Vec<pagecore::Client> = (0..CLIENTS).map(|_| obj.register().unwrap()).collect();
    let peers: Vec<(&str, Op<'_>)> = vec![
        ("pagecore", Box::new(|_, k| obj.read(k).unwrap()[0])),
        (
            // The same read as an awaited fault, polled once by a no-op waker (an executor's
            // first poll of `obj.read_async(k).await` on a resident page).
            "pagecore_async",
            Box::new(|_, k| {
                use std::future::Future;
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let mut f = std::pin::pin!(obj.read_async(k));
                match f.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(g) => g.unwrap()[0],
                    std::task::Poll::Pending => unreachable!("a resident page nobody writes"),
                }
            }),
        ),
        (
            "pagecore_counted",
            Box::new(|_, k| counted.read(k).unwrap()[0]),
        ),
        (
            "pagecore_client",
            Box::new(|t, k| clients[t % CLIENTS].request(k, Access::Read).unwrap()[0]),
        ),
        (
            // The same read grant as an awaited request, polled once by a no-op waker (an
            // executor's first poll of `client.enqueue(k, Read)?.await` on a resident page).
            "pagecore_client_async",
            Box::new(|t, k| {
                use std::future::Future;
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let mut f = std::pin::pin!(clients[t % CLIENTS].enqueue(k, Access::Read).unwrap());
                match f.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(g) => g.unwrap()[0],
                    std::task::Poll::Pending => unreachable!("a resident page nobody writes"),
                }
            }),
        ),
        (
            "atomic_bound",
            Box::new(|_, k| {
                let c = &counters[k as usize];
                c.fetch_add(1, Ordering::Acquire);
                let b = data[k as usize * PAGE];
                c.fetch_sub(1, Ordering::Release);
                b
            }),
        ),
        (
            "quick_cache",
            Box::new(|_, k| qc.get(&k).map_or(0, |v| v[0])),
        ),
        ("moka", Box::new(|_, k| moka.get(&k).map_or(0, |v| v[0]))),
        ("dashmap", Box::new(|_, k| dm.get(&k).map_or(0, |v| v[0]))),
        (
            "mutex_lru",
            Box::new(|_, k| lru.lock().unwrap().get(&k).map_or(0, |v| v[0])),
        ),
    ];
    // PAGECORE_BENCH_PEERS=a,b keeps only the named peers (pagecore itself always stays first).
    let keep: Option<Vec<String>> = std::env::var("PAGECORE_BENCH_PEERS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let peers: Vec<(&str, Op<'_>)> = peers
        .into_iter()
        .enumerate()
        .filter(|(i, (name, _))| {
            *i == 0 || keep.as_ref().is_none_or(|k| k.iter().any(|k| k == name))
        })
        .map(|(_, p)| p)
        .collect();
    f(&peers);
    for o in [&obj, &counted] {
        assert_eq!(o.stats().fills, n as u64, "the pagecore benchmark missed");
    }
}

/// Clients registered for the `pagecore_client` peer (one per benchmark thread).
const CLIENTS: usize = 4;

/// Bytes of arbitration state per page with `clients` clients each holding a read grant on
/// every one of `n` resident pages (all pages in the same state, the best case for sharing),
/// and with one more client waiting to write on every page (the state a conflict adds).
fn bytes_per_page() {
    let n: u64 = 4096;
    println!("arbitration memory, {n} resident pages, every client reading every page");
    println!("| clients | entry bytes/page | side table + records bytes/page | total bytes/page | records | pages per record |");
    println!("|---|---|---|---|---|---|");
    for clients in [1usize, 4, 5, 64] {
        let pages = Pages::builder().page_size(64).frames(n).build().unwrap();
        let obj = pages.open(pagecore::MemoryAccessor::new(), n * 64).unwrap();
        let cs: Vec<_> = (0..clients).map(|_| obj.register().unwrap()).collect();
        let grants: Vec<_> = cs
            .iter()
            .flat_map(|c| (0..n).map(move |p| c.request(p, Access::Read).unwrap()))
            .collect();
        let census = obj.arbitration().unwrap();
        // The AccessMap: 8 bytes per entry (leaves of 512) plus one pointer per leaf.
        let entry = 8.0 + 8.0 / 512.0;
        let side = census.side_bytes as f64 / n as f64;
        println!(
            "| {clients} | {entry:.2} | {side:.2} | {:.2} | {} | {} |",
            entry + side,
            census.records,
            census.record_refs.checked_div(census.records).unwrap_or(0)
        );
        let w = obj.register().unwrap();
        let waiting: Vec<_> = (0..n)
            .map(|p| w.enqueue(p, Access::Write).unwrap())
            .collect();
        let census = obj.arbitration().unwrap();
        let side = census.side_bytes as f64 / n as f64;
        println!(
            "| {clients} + 1 waiting writer | {entry:.2} | {side:.2} | {:.2} | {} | {} |",
            entry + side,
            census.records,
            census.record_refs.checked_div(census.records).unwrap_or(0)
        );
        drop(waiting);
        drop(grants);
    }
}

fn bench(c: &mut Criterion) {
    let n = env_usize("PAGECORE_BENCH_PAGES", 262_144);
    let thread_counts = threads();
    let max_t = thread_counts.iter().copied().max().unwrap_or(1);
    let key_sets: Vec<Vec<u64>> = (0..max_t).map(|t| keys(n, 42 + t as u64)).collect();
    let mut g = c.benchmark_group("hit_path");
    g.measurement_time(Duration::from_secs(
        env_usize("PAGECORE_BENCH_SECS", 3) as u64
    ));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(20);
    with_peers(n, |peers| {
        for (name, op) in peers {
            for &t in &thread_counts {
                g.throughput(Throughput::Elements(t as u64));
                g.bench_with_input(BenchmarkId::new(*name, t), &t, |b, &t| {
                    b.iter_custom(|iters| run_threads(t, iters, &key_sets, op))
                });
            }
        }
    });
    g.finish();
}

/// Interleaved measurement (see the module doc). Prints a Markdown table and the ratios.
fn interleaved(rounds: usize) {
    let n = env_usize("PAGECORE_BENCH_PAGES", 262_144);
    let slice = Duration::from_millis(env_usize("PAGECORE_BENCH_SLICE_MS", 300) as u64);
    let thread_counts = threads();
    let max_t = thread_counts.iter().copied().max().unwrap_or(1);
    let key_sets: Vec<Vec<u64>> = (0..max_t).map(|t| keys(n, 42 + t as u64)).collect();
    with_peers(n, |peers| {
        // rates[peer][threads] = Mops/s per round
        let mut rates = vec![vec![Vec::new(); thread_counts.len()]; peers.len()];
        for _ in 0..rounds {
            for (pi, (_, op)) in peers.iter().enumerate() {
                for (ti, &t) in thread_counts.iter().enumerate() {
                    // Calibrate the op count to roughly one slice, then measure.
                    let mut iters = 10_000u64;
                    let mut d = run_threads(t, iters, &key_sets, op);
                    while d < slice / 4 {
                        iters *= 4;
                        d = run_threads(t, iters, &key_sets, op);
                    }
                    rates[pi][ti].push((iters * t as u64) as f64 / d.as_secs_f64() / 1e6);
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let med: Vec<Vec<f64>> = rates
            .iter_mut()
            .map(|per_t| per_t.iter_mut().map(median).collect())
            .collect();
        println!("hit path, Zipf 0.99 over {n} pages of {PAGE} B, {rounds} interleaved rounds (median Mops/s)");
        print!("| peer |");
        for t in &thread_counts {
            print!(" {t} thread(s) |");
        }
        println!("\n|---|{}", "---|".repeat(thread_counts.len()));
        for (pi, (name, _)) in peers.iter().enumerate() {
            print!("| {name} |");
            for m in &med[pi] {
                print!(" {m:.1} |");
            }
            println!();
        }
        for (ti, t) in thread_counts.iter().enumerate() {
            for (pi, (name, _)) in peers.iter().enumerate().skip(1) {
                println!(
                    "{t} thread(s): pagecore / {name} = {:.2}x",
                    med[0][ti] / med[pi][ti]
                );
            }
        }
    });
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var("PAGECORE_BENCH_BYTES").is_ok() {
        bytes_per_page();
        return;
    }
    match std::env::var("PAGECORE_BENCH_INTERLEAVE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(rounds) => interleaved(rounds),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
