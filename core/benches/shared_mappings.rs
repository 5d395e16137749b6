//! Several mappings of one object (issue 20): what sharing costs, beside its baselines, in one
//! run.
//!
//! * `read_mostly` — four threads make Zipf-distributed loads (s = 1.0) on an object's resident
//!   pages, each through its own mapping of the object (four mappings), against the same four
//!   threads loading through one mapping: loads per second, and their ratio (goal ≥ 0.9x).
//! * `ping_pong` — two threads take turns writing one page (each waits for the other's write,
//!   then writes the next number): round trips per second through two mappings of one object,
//!   against two `MAP_SHARED` mappings of a memfd with no pager (the kernel's own sharing), and
//!   against two threads handing a page over a `Mutex` (each takes the lock, looks whose turn it
//!   is, writes if its own).
//!
//! Run: `cargo bench -p pagecore --bench shared_mappings` (criterion), or
//! `PAGECORE_BENCH_INTERLEAVE=ROUNDS` to alternate the measurements and print medians and
//! ratios. Where userfaultfd is not permitted it prints `SKIPPED` and measures nothing.

use criterion::{criterion_group, Criterion};

mod support;

#[cfg(target_os = "linux")]
mod linux {
    use super::support;
    use criterion::Criterion;
    use pagecore::{Mapping, MemoryAccessor, Pages};
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::{Distribution, Zipf};
    use std::hint::black_box;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier, Mutex};
    use std::time::{Duration, Instant};

    const PAGE: usize = 4096;
    /// Pages of the read-mostly object (all resident: the pool has twice as many frames).
    const PAGES: usize = 1024;
    /// Loads per thread per measurement.
    const LOADS: usize = 1 << 20;
    /// Threads (and mappings) of the read-mostly measurement.
    const READERS: usize = 4;
    /// Writes per ping-pong measurement (half as many round trips).
    const TURNS: u64 = 200_000;

    /// A range of memory two threads may touch (raw pointers are not `Send`).
    #[derive(Clone, Copy)]
    struct Range(*mut u8);
    // SAFETY: the ranges outlive the threads the measurements start (joined before they go).
    unsafe impl Send for Range {}

    fn mapping(pages: &Pages) -> Option<Mapping> {
        match Mapping::new(pages, MemoryAccessor::new(), (PAGES * PAGE) as u64) {
            Ok(m) => Some(m),
            Err(e) => {
                println!("SKIPPED: {e}");
                None
            }
        }
    }

    fn zipf_offsets(seed: u64) -> Vec<usize> {
        let z = Zipf::new(PAGES as f64, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        (0..LOADS)
            .map(|_| {
                let page = z.sample(&mut rng) as usize - 1;
                page * PAGE + rng.random_range(0..PAGE / 8) * 8
            })
            .collect()
    }

    /// Touches every page of `m` once (a load), so that the measurement finds them mapped.
    fn touch(m: &Mapping) {
        for p in 0..PAGES {
            // SAFETY: inside the mapping, which outlives the call.
            black_box(unsafe { std::ptr::read_volatile(m.as_ptr().add(p * PAGE)) });
        }
    }

    /// Four threads load their offsets, thread i through `ranges[i]`; loads per second.
    fn read_mostly(ranges: &[Range], offsets: &Arc<Vec<Vec<usize>>>) -> f64 {
        let start = Arc::new(Barrier::new(ranges.len() + 1));
        let threads: Vec<_> = ranges
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                let (start, offsets) = (start.clone(), offsets.clone());
                std::thread::spawn(move || {
                    let r = r;
                    start.wait();
                    let mut sum = 0u64;
                    for &o in &offsets[i] {
                        // SAFETY: every offset is inside the range, which outlives the thread.
                        sum = sum.wrapping_add(unsafe { std::ptr::read(r.0.add(o).cast::<u64>()) });
                    }
                    black_box(sum);
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        for th in threads {
            th.join().unwrap();
        }
        (ranges.len() * LOADS) as f64 / t.elapsed().as_secs_f64()
    }

    /// Two threads take turns writing the first word of a page, `a` through one range and `b`
    /// through the other (the same page in two mappings); round trips per second.
    fn ping_pong(a: Range, b: Range) -> f64 {
        let run = |r: Range, me: u64| {
            std::thread::spawn(move || {
                let r = r;
                // SAFETY: the word is 8-aligned at the page's start, inside the range, which
                // outlives the thread; both threads use it only atomically.
                let w = unsafe { &*(r.0 as *const AtomicU64) };
                loop {
                    let v = w.load(Ordering::Acquire);
                    if v >= TURNS {
                        return;
                    }
                    if v % 2 == me {
                        w.store(v + 1, Ordering::Release);
                    } else {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        // SAFETY: as above.
        unsafe { &*(a.0 as *const AtomicU64) }.store(0, Ordering::SeqCst);
        let t = Instant::now();
        let (x, y) = (run(a, 0), run(b, 1));
        x.join().unwrap();
        y.join().unwrap();
        (TURNS / 2) as f64 / t.elapsed().as_secs_f64()
    }

    /// The same turns over a page behind a `Mutex`.
    fn ping_pong_mutex() -> f64 {
        let page = Arc::new(Mutex::new(vec![0u8; PAGE]));
        let run = |me: u64| {
            let page = page.clone();
            std::thread::spawn(move || loop {
                let mut p = page.lock().unwrap();
                let v = u64::from_le_bytes(p[..8].try_into().unwrap());
                if v >= TURNS {
                    return;
                }
                if v % 2 == me {
                    p[..8].copy_from_slice(&(v + 1).to_le_bytes());
                } else {
                    drop(p);
                    std::hint::spin_loop();
                }
            })
        };
        let t = Instant::now();
        let (x, y) = (run(0), run(1));
        x.join().unwrap();
        y.join().unwrap();
        (TURNS / 2) as f64 / t.elapsed().as_secs_f64()
    }

    /// Two `MAP_SHARED` mappings of a one-page memfd, no pager; unmapped on drop.
    struct KernelShared {
        _fd: OwnedFd,
        a: *mut u8,
        b: *mut u8,
    }

    impl KernelShared {
        fn new() -> Self {
            // SAFETY: a valid C string; the descriptor is ours.
            let fd = unsafe { libc::memfd_create(c"pagecore-bench".as_ptr(), libc::MFD_CLOEXEC) };
            assert!(fd >= 0, "memfd_create");
            // SAFETY: `fd` is ours.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: resizes our own memfd.
            assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), PAGE as _) }, 0);
            let map = || {
                // SAFETY: a fresh shared mapping of our own memfd.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        PAGE,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd.as_raw_fd(),
                        0,
                    )
                };
                assert_ne!(p, libc::MAP_FAILED);
                p.cast::<u8>()
            };
            let (a, b) = (map(), map());
            Self { _fd: fd, a, b }
        }
    }

    impl Drop for KernelShared {
        fn drop(&mut self) {
            // SAFETY: the two mappings `new` made, once each.
            unsafe {
                libc::munmap(self.a.cast(), PAGE);
                libc::munmap(self.b.cast(), PAGE);
            }
        }
    }

    struct Setup {
        _pages: Pages,
        one: Mapping,
        four: Vec<Mapping>,
        kernel: KernelShared,
        offsets: Arc<Vec<Vec<usize>>>,
    }

    fn setup() -> Option<Setup> {
        let pages = Pages::builder()
            .page_size(PAGE)
            .frames(2 * PAGES as u64)
            .build()
            .unwrap();
        let one = mapping(&pages)?;
        touch(&one);
        let mut four = vec![mapping(&pages)?];
        for _ in 1..READERS {
            four.push(four[0].share().unwrap());
        }
        for m in &four {
            touch(m);
        }
        let offsets = Arc::new((0..READERS).map(|i| zipf_offsets(i as u64)).collect());
        Some(Setup {
            _pages: pages,
            one,
            four,
            kernel: KernelShared::new(),
            offsets,
        })
    }

    impl Setup {
        fn read_one(&self) -> f64 {
            let r = Range(self.one.as_ptr());
            read_mostly(&[r; READERS], &self.offsets)
        }

        fn read_four(&self) -> f64 {
            let rs: Vec<Range> = self.four.iter().map(|m| Range(m.as_ptr())).collect();
            read_mostly(&rs, &self.offsets)
        }

        fn pong_pagecore(&self) -> f64 {
            ping_pong(Range(self.four[0].as_ptr()), Range(self.four[1].as_ptr()))
        }

        fn pong_kernel(&self) -> f64 {
            ping_pong(Range(self.kernel.a), Range(self.kernel.b))
        }
    }

    pub fn bench(c: &mut Criterion) {
        let Some(s) = setup() else { return };
        let mut g = c.benchmark_group("shared_mappings");
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        g.bench_function("read_mostly_one_mapping", |b| b.iter(|| s.read_one()));
        g.bench_function("read_mostly_four_mappings", |b| b.iter(|| s.read_four()));
        g.bench_function("ping_pong_two_mappings", |b| b.iter(|| s.pong_pagecore()));
        g.bench_function("ping_pong_kernel_map_shared", |b| {
            b.iter(|| s.pong_kernel())
        });
        g.bench_function("ping_pong_mutex", |b| b.iter(ping_pong_mutex));
        g.finish();
    }

    pub fn interleaved(rounds: usize) {
        let Some(s) = setup() else { return };
        let (mut one, mut four, mut pc, mut kern, mut mutex) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            one.push(s.read_one());
            four.push(s.read_four());
            pc.push(s.pong_pagecore());
            kern.push(s.pong_kernel());
            mutex.push(ping_pong_mutex());
        }
        let med = support::median;
        let (one, four) = (med(&mut one), med(&mut four));
        println!(
            "read-mostly, {READERS} threads: one mapping {:.1} M loads/s, {READERS} mappings {:.1} M loads/s: {:.2}x (goal >= 0.9x)",
            one / 1e6,
            four / 1e6,
            four / one
        );
        let (pc, kern, mutex) = (med(&mut pc), med(&mut kern), med(&mut mutex));
        println!(
            "ping-pong round trips/s: two mappings {:.0}k, kernel MAP_SHARED {:.0}k ({:.2}x), Mutex {:.0}k ({:.2}x)",
            pc / 1e3,
            kern / 1e3,
            pc / kern,
            mutex / 1e3,
            pc / mutex
        );
        let faults: u64 = s.four.iter().map(|m| m.stats().faults).sum();
        println!(
            "faults through the {READERS} mappings over the whole run: {faults} (the first touches; a resident page costs each extra mapping one page-table entry)"
        );
    }
}

fn bench(c: &mut Criterion) {
    #[cfg(target_os = "linux")]
    linux::bench(c);
    let _ = c;
}

fn interleaved(rounds: usize) {
    #[cfg(target_os = "linux")]
    linux::interleaved(rounds);
    let _ = rounds;
}

criterion_group!(benches, bench);

fn main() {
    support::main(benches, interleaved);
}
