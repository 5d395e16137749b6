//! Mapped memory (issue 19): `Mapping`'s page faults beside the baselines, in one run.
//!
//! * `fault` — the service of one fault: pages of a fresh mapping touched once each (a load) in
//!   a random order, each touch timed; the median. Beside it, a minimal userfaultfd handler with
//!   no pagecore (a thread reads the event and answers `UFFDIO_COPY` from a buffer), and the
//!   kernel's own `mmap` of a file holding the same bytes (page cache warm). Also a private
//!   mapping's (`Mapping::private`) load of a page resident in its frozen layer (a copy into
//!   the mapping's memory) beside the kernel's `MAP_PRIVATE` of the file.
//! * `scan` — a sequential scan (a load per page) of a fresh mapping: pages per second, beside
//!   the same two.
//! * `zipf` — Zipf-distributed loads (s = 1.0) on resident mapped pages, beside the same loads on
//!   a `Vec<u8>` (the hit is the hardware's).
//! * `evict` — a scan of a mapping ten times the pool, so that every fault after the first pool's
//!   worth evicts a page: the marginal cost of an eviction (the scan's time minus a scan of a
//!   mapping the pool holds whole, per eviction), as evictions per second.
//! * `write_protect` — the first store to a write-protected page, synchronous (a fault to a
//!   handler thread) against `WP_ASYNC` plus the `PAGEMAP_SCAN` that lists the written pages.
//! * `rss` — resident memory (`Pss` in `/proc/self/smaps_rollup`, which counts a page mapped in
//!   both of the mapping's views once) while scanning a mapping ten times the pool, against the
//!   pool's budget.
//!
//! Every source is the same bytes: an image in memory (pagecore's accessor copies from it, as
//! the minimal handler does). Run: `cargo bench -p pagecore --bench mmap`; on noisy machines
//! `PAGECORE_BENCH_INTERLEAVE=ROUNDS` alternates the measurements and prints medians and ratios.
//! Where userfaultfd is not permitted it prints `SKIPPED` and measures nothing.

use criterion::{criterion_group, Criterion, Throughput};

mod support;

#[cfg(target_os = "linux")]
mod linux {
    use super::support;
    use criterion::{Criterion, Throughput};
    use linux_raw_sys::general as sys;
    use linux_raw_sys::ioctl;
    use pagecore::{ComputedAccessor, Mapping, PageMapper, Pages};
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::{Distribution, Zipf};
    use std::hint::black_box;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    pub const PAGE: usize = 4096;
    /// Pages of the fault and scan measurements (and frames: no eviction there).
    const PAGES: usize = 4096;
    /// The pool of the eviction and resident-memory measurements, and of the Zipf loads.
    const POOL: usize = 1024;

    /// The bytes every source serves: page `p` holds `p` in its first 8 bytes.
    pub struct Image {
        bytes: Arc<Vec<u8>>,
        _dir: tempfile::TempDir,
        file: std::fs::File,
    }

    impl Image {
        pub fn new(pages: usize) -> Self {
            let mut bytes = vec![0u8; pages * PAGE];
            for p in 0..pages {
                bytes[p * PAGE..p * PAGE + 8].copy_from_slice(&(p as u64).to_le_bytes());
                bytes[p * PAGE + 8..(p + 1) * PAGE].fill(p as u8);
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("image");
            std::fs::File::create(&path)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
            let file = std::fs::File::open(&path).unwrap();
            // Read once: the kernel's mmap finds it in the page cache.
            black_box(std::fs::read(&path).unwrap().len());
            Self {
                bytes: Arc::new(bytes),
                _dir: dir,
                file,
            }
        }

        fn accessor(&self) -> ComputedAccessor {
            let bytes = self.bytes.clone();
            ComputedAccessor::new(move |p, buf| {
                let at = p as usize * PAGE;
                buf.copy_from_slice(&bytes[at..at + PAGE]);
                Ok(())
            })
        }
    }

    /// Whether a mapping can be made here (else the bench prints why and measures nothing).
    pub fn permitted() -> bool {
        let pages = Pages::builder().page_size(PAGE).frames(4).build().unwrap();
        match Mapping::new(&pages, pagecore::MemoryAccessor::new(), PAGE as u64) {
            Ok(_) => true,
            Err(e) => {
                println!("SKIPPED: {e}");
                false
            }
        }
    }

    /// A mapped range, whichever serves it.
    pub trait Mapped {
        fn ptr(&self) -> *const u8;
    }

    /// pagecore's mapping of the image, with `frames` frames.
    pub struct Core {
        _pages: Pages,
        map: Mapping,
    }

    impl Core {
        pub fn new(image: &Image, pages: usize, frames: usize) -> Self {
            Self::batched(image, pages, frames, None)
        }

        /// As `new`, its evictions batched as `batch` says (`None`: the pool's default).
        pub fn batched(image: &Image, pages: usize, frames: usize, batch: Option<u32>) -> Self {
            let mut b = Pages::builder().page_size(PAGE).frames(frames as u64);
            if let Some(n) = batch {
                b = b.evict_batch(n);
            }
            let pool = b.build().unwrap();
            let map = Mapping::new(&pool, image.accessor(), (pages * PAGE) as u64).unwrap();
            Self { _pages: pool, map }
        }
    }

    impl Mapped for Core {
        fn ptr(&self) -> *const u8 {
            self.map.as_ptr()
        }
    }

    /// A private mapping (`Mapping::private`) of an object over the image whose pages are all
    /// resident (a warm snapshot, as for a VM restored from an image another has read): each
    /// fault copies the frozen layer's page into the mapping's memory.
    pub struct Private {
        map: Mapping,
        _object: PageMapper,
        _pages: Pages,
    }

    impl Private {
        pub fn new(image: &Image, pages: usize) -> Self {
            let pool = Pages::builder()
                .page_size(PAGE)
                .frames(2 * pages as u64)
                .build()
                .unwrap();
            let object = pool.open(image.accessor(), (pages * PAGE) as u64).unwrap();
            for p in 0..pages {
                black_box(object.read(p as u64).unwrap()[0]);
            }
            let map = Mapping::private(&object).unwrap();
            Self {
                map,
                _object: object,
                _pages: pool,
            }
        }
    }

    impl Mapped for Private {
        fn ptr(&self) -> *const u8 {
            self.map.as_ptr()
        }
    }

    /// The kernel's `mmap` of the image's file (shared, read-only; or private, read-write).
    pub struct Kernel {
        addr: *mut libc::c_void,
        len: usize,
    }

    impl Kernel {
        pub fn new(image: &Image, pages: usize) -> Self {
            Self::with(image, pages, false)
        }

        /// `MAP_PRIVATE` (read-write) if `private`, else `MAP_SHARED` (read-only).
        pub fn with(image: &Image, pages: usize, private: bool) -> Self {
            let len = pages * PAGE;
            let (prot, flags) = if private {
                (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)
            } else {
                (libc::PROT_READ, libc::MAP_SHARED)
            };
            // SAFETY: a new mapping of our file; unmapped on drop.
            let addr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    flags,
                    image.file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(addr, libc::MAP_FAILED);
            Self { addr, len }
        }
    }

    impl Mapped for Kernel {
        fn ptr(&self) -> *const u8 {
            self.addr as *const u8
        }
    }

    impl Drop for Kernel {
        fn drop(&mut self) {
            // SAFETY: our mapping, not used after this.
            unsafe { libc::munmap(self.addr, self.len) };
        }
    }

    /// A minimal userfaultfd handler with no pagecore: an anonymous private mapping registered
    /// for missing faults; a thread reads each fault and answers `UFFDIO_COPY` from the image.
    pub struct Minimal {
        addr: *mut libc::c_void,
        alias: *mut libc::c_void,
        len: usize,
        stop: std::os::fd::OwnedFd,
        handler: Option<std::thread::JoinHandle<()>>,
    }

    fn check(r: libc::c_int) {
        assert!(r >= 0, "{}", std::io::Error::last_os_error());
    }

    impl Minimal {
        /// `memfd`: the kernel path pagecore takes instead (a memfd mapped twice; the handler
        /// copies the page in through its own view and answers `UFFDIO_CONTINUE`, write-protected
        /// if `wp`, with the range registered for write-protect faults too).
        pub fn new(image: &Image, pages: usize) -> Self {
            Self::with(image, pages, false, false)
        }

        pub fn with(image: &Image, pages: usize, memfd: bool, wp: bool) -> Self {
            use std::os::fd::{FromRawFd, OwnedFd};
            let len = pages * PAGE;
            // SAFETY: the system call takes its flags and returns a new descriptor.
            let fd =
                unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) }
                    as i32;
            check(fd);
            // SAFETY: ours.
            let uffd = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut api = sys::uffdio_api {
                api: sys::UFFD_API as u64,
                features: if memfd {
                    (sys::UFFD_FEATURE_MISSING_SHMEM
                        | sys::UFFD_FEATURE_MINOR_SHMEM
                        | sys::UFFD_FEATURE_PAGEFAULT_FLAG_WP
                        | sys::UFFD_FEATURE_WP_HUGETLBFS_SHMEM) as u64
                } else {
                    0
                },
                ioctls: 0,
            };
            // SAFETY: UFFDIO_API reads and writes `api`.
            check(unsafe { libc::ioctl(fd, ioctl::UFFDIO_API as _, &mut api) });
            let (addr, alias) = if memfd {
                // SAFETY: a new memfd, sized, mapped twice shared; the descriptor is closed
                // after (the mappings keep the file).
                unsafe {
                    let m = libc::memfd_create(c"minimal".as_ptr(), libc::MFD_CLOEXEC);
                    check(m);
                    check(libc::ftruncate(m, len as libc::off_t));
                    let view = || {
                        let a = libc::mmap(
                            std::ptr::null_mut(),
                            len,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_SHARED,
                            m,
                            0,
                        );
                        assert_ne!(a, libc::MAP_FAILED);
                        a
                    };
                    let (a, b) = (view(), view());
                    libc::close(m);
                    (a, b)
                }
            } else {
                // SAFETY: a new anonymous mapping; unmapped on drop.
                let a = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                assert_ne!(a, libc::MAP_FAILED);
                (a, std::ptr::null_mut())
            };
            // SAFETY: as for `Mapping`'s memfd: no transparent huge pages (one fault per page).
            unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
            let mut reg = sys::uffdio_register {
                range: sys::uffdio_range {
                    start: addr as u64,
                    len: len as u64,
                },
                mode: (sys::UFFDIO_REGISTER_MODE_MISSING
                    | if memfd {
                        sys::UFFDIO_REGISTER_MODE_MINOR
                    } else {
                        0
                    }
                    | if wp { sys::UFFDIO_REGISTER_MODE_WP } else { 0 })
                    as u64,
                ioctls: 0,
            };
            // SAFETY: UFFDIO_REGISTER reads and writes `reg`; the range is our mapping.
            check(unsafe { libc::ioctl(fd, ioctl::UFFDIO_REGISTER as _, &mut reg) });
            // SAFETY: a new eventfd, ours.
            let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            check(efd);
            // SAFETY: ours.
            let stop = unsafe { OwnedFd::from_raw_fd(efd) };
            let stop_fd = stop.as_raw_fd();
            let src = image.bytes.clone();
            let base = addr as u64;
            let alias_at = alias as usize;
            let handler = std::thread::spawn(move || {
                // SAFETY: a plain C struct; all zeros is a valid value.
                let mut msgs: [sys::uffd_msg; 16] = unsafe { std::mem::zeroed() };
                loop {
                    let mut fds = [
                        libc::pollfd {
                            fd: uffd.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        },
                        libc::pollfd {
                            fd: stop_fd,
                            events: libc::POLLIN,
                            revents: 0,
                        },
                    ];
                    // SAFETY: two pollfds.
                    check(unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) });
                    if fds[1].revents != 0 {
                        return;
                    }
                    // SAFETY: reads whole messages into `msgs`.
                    let n = unsafe {
                        libc::read(
                            uffd.as_raw_fd(),
                            msgs.as_mut_ptr().cast(),
                            std::mem::size_of_val(&msgs),
                        )
                    };
                    if n <= 0 {
                        continue;
                    }
                    for m in &msgs[..n as usize / std::mem::size_of::<sys::uffd_msg>()] {
                        if m.event != sys::UFFD_EVENT_PAGEFAULT as u8 {
                            continue;
                        }
                        // SAFETY: a page-fault message's argument is the pagefault member.
                        let at = unsafe { m.arg.pagefault.address } & !(PAGE as u64 - 1);
                        let page = (at - base) as usize;
                        if alias_at != 0 {
                            // SAFETY: the page of our own alias view, inside it.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    src[page..].as_ptr(),
                                    (alias_at + page) as *mut u8,
                                    PAGE,
                                )
                            };
                            let mut c = sys::uffdio_continue {
                                range: sys::uffdio_range {
                                    start: at,
                                    len: PAGE as u64,
                                },
                                mode: if wp { 2 } else { 0 },
                                mapped: 0,
                            };
                            // SAFETY: maps the page cache page into the registered range.
                            unsafe {
                                libc::ioctl(uffd.as_raw_fd(), ioctl::UFFDIO_CONTINUE as _, &mut c)
                            };
                            continue;
                        }
                        let mut c = sys::uffdio_copy {
                            dst: at,
                            src: src[page..].as_ptr() as u64,
                            len: PAGE as u64,
                            mode: 0,
                            copy: 0,
                        };
                        // SAFETY: copies one page from the image into the registered range
                        // (EEXIST, a page copied already, is fine: the copy wakes nobody then,
                        // and the toucher retries).
                        unsafe { libc::ioctl(uffd.as_raw_fd(), ioctl::UFFDIO_COPY as _, &mut c) };
                    }
                }
            });
            Self {
                addr,
                alias,
                len,
                stop,
                handler: Some(handler),
            }
        }
    }

    impl Mapped for Minimal {
        fn ptr(&self) -> *const u8 {
            self.addr as *const u8
        }
    }

    impl Drop for Minimal {
        fn drop(&mut self) {
            let one = 1u64;
            // SAFETY: writes 8 bytes to our eventfd.
            unsafe { libc::write(self.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if let Some(h) = self.handler.take() {
                h.join().unwrap();
            }
            // SAFETY: our mappings; the handler has ended.
            unsafe {
                libc::munmap(self.addr, self.len);
                if !self.alias.is_null() {
                    libc::munmap(self.alias, self.len);
                }
            }
        }
    }

    fn load(m: &dyn Mapped, page: usize) -> u64 {
        // SAFETY: `page` is inside the mapping, which outlives the call.
        unsafe { std::ptr::read_volatile(m.ptr().add(page * PAGE).cast::<u64>()) }
    }

    /// A random order of `PAGES` pages (the same each time).
    pub fn order() -> Vec<usize> {
        let mut v: Vec<usize> = (0..PAGES).collect();
        let mut rng = StdRng::seed_from_u64(7);
        for i in (1..v.len()).rev() {
            v.swap(i, rng.random_range(0..=i));
        }
        v
    }

    /// Touches each page of `m` once in `order`; returns each touch's nanoseconds, sorted.
    pub fn faults(m: &dyn Mapped, order: &[usize]) -> Vec<f64> {
        let mut ns = Vec::with_capacity(order.len());
        for &p in order {
            let t = Instant::now();
            let w = load(m, p);
            ns.push(t.elapsed().as_nanos() as f64);
            assert_eq!(w, p as u64);
        }
        ns.sort_by(|a, b| a.total_cmp(b));
        ns
    }

    /// Runs `f` with this thread (and the threads it starts: a mapping's handler) bound to the
    /// CPU it is on, then unbinds it. On one CPU a fault costs the two context switches and
    /// the handler's work, not the wake-up of another (virtual) CPU, whose cost on a VM is
    /// bimodal (a few microseconds while the CPU still polls, tens once it halted).
    pub fn on_one_cpu<R>(f: impl FnOnce() -> R) -> R {
        // SAFETY: plain CPU-set manipulation on a zeroed set; the calls read and write it.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            check(libc::sched_getaffinity(0, size, &mut old));
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(libc::sched_getcpu().max(0) as usize, &mut one);
            check(libc::sched_setaffinity(0, size, &one));
            let r = f();
            check(libc::sched_setaffinity(0, size, &old));
            r
        }
    }

    /// Scans `pages` pages of `m` in order; the time.
    pub fn scan(m: &dyn Mapped, pages: usize) -> Duration {
        let t = Instant::now();
        for p in 0..pages {
            black_box(load(m, p));
        }
        t.elapsed()
    }

    /// `n` Zipf-distributed byte offsets within `pages` pages.
    pub fn zipf_offsets(pages: usize, n: usize) -> Vec<usize> {
        let z = Zipf::new(pages as f64, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        (0..n)
            .map(|_| {
                let page = z.sample(&mut rng) as usize - 1;
                page * PAGE + rng.random_range(0..PAGE / 8) * 8
            })
            .collect()
    }

    /// Loads the 8 bytes at each offset from `base`; the time.
    pub fn loads(base: *const u8, offsets: &[usize]) -> Duration {
        let t = Instant::now();
        let mut sum = 0u64;
        for &o in offsets {
            // SAFETY: every offset is inside the range at `base`, which outlives the call.
            sum = sum.wrapping_add(unsafe { std::ptr::read(base.add(o).cast::<u64>()) });
        }
        black_box(sum);
        t.elapsed()
    }

    /// This process's proportional resident memory in bytes.
    fn pss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }

    /// Scans a mapping ten times the pool, sampling resident memory; the largest growth over
    /// what the process held before the mapping, as a multiple of the pool's budget.
    pub fn rss(image: &Image) -> f64 {
        let before = pss();
        let m = Core::new(image, POOL * 10, POOL);
        let mut most = 0;
        for p in 0..POOL * 10 {
            black_box(load(&m, p));
            if p % 128 == 0 {
                most = most.max(pss().saturating_sub(before));
            }
        }
        most = most.max(pss().saturating_sub(before));
        most as f64 / (POOL * PAGE) as f64
    }

    /// Scans a mapping ten times the pool (its evictions batched as `batch` says: `None`, the
    /// pool's default) and one the pool holds whole (as many pages); the nanoseconds an
    /// eviction adds, per eviction.
    pub fn evict(image: &Image, batch: Option<u32>) -> f64 {
        let pages = POOL * 10;
        let tight = Core::batched(image, pages, POOL, batch);
        let t_tight = scan(&tight, pages);
        drop(tight);
        let roomy = Core::new(image, pages, pages);
        let t_roomy = scan(&roomy, pages);
        let evicted = (pages - POOL) as f64;
        (t_tight.as_nanos() as f64 - t_roomy.as_nanos() as f64).max(1.0) / evicted
    }

    /// Dirty tracking, the two ways userfaultfd offers it, on pagecore's layout (a memfd page
    /// mapped shared, present and writable, then write-protected): `sync` — each first store
    /// faults to a handler thread, which un-protects the page (what `Mapping` does: the handler
    /// marks the page dirty) — against `WP_ASYNC` — the kernel un-protects in the fault itself
    /// and a `PAGEMAP_SCAN` at sync time lists the written pages and protects them again.
    /// Returns the median first store (ns) each way and the scan's cost per written page (ns).
    pub fn write_protect(pages: usize, order: &[usize]) -> (f64, f64, f64) {
        let sync = wp_run(pages, order, false);
        let asy = wp_run(pages, order, true);
        (sync.0, asy.0, asy.1)
    }

    fn wp_run(pages: usize, order: &[usize], asynchronous: bool) -> (f64, f64) {
        use std::os::fd::{FromRawFd, OwnedFd};
        let len = pages * PAGE;
        // SAFETY: a new memfd, sized, mapped shared; the mapping keeps the file; every page
        // written once (present, writable).
        let view = unsafe {
            let m = libc::memfd_create(c"wp".as_ptr(), libc::MFD_CLOEXEC);
            check(m);
            check(libc::ftruncate(m, len as libc::off_t));
            let a = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                m,
                0,
            );
            assert_ne!(a, libc::MAP_FAILED);
            libc::close(m);
            for p in 0..pages {
                *(a as *mut u8).add(p * PAGE) = 1;
            }
            a
        };
        let features = sys::UFFD_FEATURE_PAGEFAULT_FLAG_WP
            | sys::UFFD_FEATURE_WP_HUGETLBFS_SHMEM
            | if asynchronous {
                sys::UFFD_FEATURE_WP_ASYNC
            } else {
                0
            };
        // SAFETY: a new userfaultfd, ours.
        let fd = unsafe {
            libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) as i32
        };
        check(fd);
        // SAFETY: ours.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut api = sys::uffdio_api {
            api: sys::UFFD_API as u64,
            features: features as u64,
            ioctls: 0,
        };
        let range = sys::uffdio_range {
            start: view as u64,
            len: len as u64,
        };
        let mut reg = sys::uffdio_register {
            range,
            mode: sys::UFFDIO_REGISTER_MODE_WP as u64,
            ioctls: 0,
        };
        let mut wp = sys::uffdio_writeprotect { range, mode: 1 };
        // SAFETY: the handshake, the registration of our view, its protection: each ioctl
        // reads and writes its struct.
        unsafe {
            check(libc::ioctl(fd, ioctl::UFFDIO_API as _, &mut api));
            check(libc::ioctl(fd, ioctl::UFFDIO_REGISTER as _, &mut reg));
            check(libc::ioctl(fd, ioctl::UFFDIO_WRITEPROTECT as _, &mut wp));
        }
        // SAFETY: a new eventfd, ours.
        let stop = unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) };
        let stop_fd = stop.as_raw_fd();
        // WP_ASYNC keeps the descriptor here (closing it would unregister the view).
        let (kept, uffd) = if asynchronous {
            (Some(uffd), None)
        } else {
            (None, Some(uffd))
        };
        let handler = uffd.map(|uffd| {
            std::thread::spawn(move || {
                // SAFETY: a plain C struct; zeros are valid.
                let mut msgs: [sys::uffd_msg; 16] = unsafe { std::mem::zeroed() };
                loop {
                    let mut fds = [
                        libc::pollfd {
                            fd: uffd.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        },
                        libc::pollfd {
                            fd: stop_fd,
                            events: libc::POLLIN,
                            revents: 0,
                        },
                    ];
                    // SAFETY: two pollfds.
                    check(unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) });
                    if fds[1].revents != 0 {
                        return uffd;
                    }
                    // SAFETY: reads whole messages into `msgs`.
                    let n = unsafe {
                        libc::read(
                            uffd.as_raw_fd(),
                            msgs.as_mut_ptr().cast(),
                            std::mem::size_of_val(&msgs),
                        )
                    };
                    for m in &msgs[..n.max(0) as usize / std::mem::size_of::<sys::uffd_msg>()] {
                        // SAFETY: a page-fault message's argument is the pagefault member.
                        let at = unsafe { m.arg.pagefault.address } & !(PAGE as u64 - 1);
                        let mut un = sys::uffdio_writeprotect {
                            range: sys::uffdio_range {
                                start: at,
                                len: PAGE as u64,
                            },
                            mode: 0,
                        };
                        // SAFETY: un-protects one page of the registered view (and wakes).
                        unsafe {
                            libc::ioctl(uffd.as_raw_fd(), ioctl::UFFDIO_WRITEPROTECT as _, &mut un)
                        };
                    }
                }
            })
        });
        let mut ns = Vec::with_capacity(order.len());
        for &p in order {
            let t = Instant::now();
            // SAFETY: inside our view.
            unsafe { std::ptr::write_volatile((view as *mut u8).add(p * PAGE + 8), 2) };
            ns.push(t.elapsed().as_nanos() as f64);
        }
        let mut scan = 0.0;
        if asynchronous {
            let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
            let mut regions = vec![
                sys::page_region {
                    start: 0,
                    end: 0,
                    categories: 0
                };
                256
            ];
            let (mut start, end) = (view as u64, view as u64 + len as u64);
            let (t, mut written) = (Instant::now(), 0);
            while start < end {
                let mut arg = sys::pm_scan_arg {
                    size: std::mem::size_of::<sys::pm_scan_arg>() as u64,
                    flags: (sys::PM_SCAN_WP_MATCHING | sys::PM_SCAN_CHECK_WPASYNC) as u64,
                    start,
                    end,
                    walk_end: 0,
                    vec: regions.as_mut_ptr() as u64,
                    vec_len: regions.len() as u64,
                    max_pages: 0,
                    category_inverted: 0,
                    category_mask: sys::PAGE_IS_WRITTEN as u64,
                    category_anyof_mask: 0,
                    return_mask: sys::PAGE_IS_WRITTEN as u64,
                };
                let scan_op = (3u32 << 30)
                    | ((std::mem::size_of::<sys::pm_scan_arg>() as u32) << 16)
                    | ((b'f' as u32) << 8)
                    | 16;
                // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len` regions; it
                // re-protects our own registered view's written pages.
                let n = unsafe { libc::ioctl(pagemap.as_raw_fd(), scan_op as _, &mut arg) };
                check(n);
                written += regions[..n as usize]
                    .iter()
                    .map(|r| (r.end - r.start) / PAGE as u64)
                    .sum::<u64>();
                if arg.walk_end <= start {
                    break;
                }
                start = arg.walk_end;
            }
            scan = t.elapsed().as_nanos() as f64 / written.max(1) as f64;
            assert_eq!(written, order.len() as u64, "every stored page is listed");
        }
        if let Some(h) = handler {
            let one = 1u64;
            // SAFETY: 8 bytes to our eventfd.
            unsafe { libc::write(stop_fd, (&one as *const u64).cast(), 8) };
            drop(h.join().unwrap());
        }
        drop(kept);
        // SAFETY: our view, unused from here.
        unsafe { libc::munmap(view, len) };
        ns.sort_by(|a, b| a.total_cmp(b));
        (ns[ns.len() / 2], scan)
    }

    pub fn bench(c: &mut Criterion) {
        if !permitted() {
            return;
        }
        let image = Image::new(POOL * 10);
        let order = order();
        let mut g = c.benchmark_group("mmap_fault");
        g.throughput(Throughput::Elements(PAGES as u64));
        g.sample_size(10);
        g.bench_function("pagecore", |b| {
            b.iter(|| faults(&Core::new(&image, PAGES, PAGES), &order))
        });
        g.bench_function("minimal_uffd", |b| {
            b.iter(|| faults(&Minimal::new(&image, PAGES), &order))
        });
        g.bench_function("kernel_mmap", |b| {
            b.iter(|| faults(&Kernel::new(&image, PAGES), &order))
        });
        g.finish();
        let mut g = c.benchmark_group("mmap_scan");
        g.throughput(Throughput::Elements(PAGES as u64));
        g.sample_size(10);
        g.bench_function("pagecore", |b| {
            b.iter(|| scan(&Core::new(&image, PAGES, PAGES), PAGES))
        });
        g.bench_function("minimal_uffd", |b| {
            b.iter(|| scan(&Minimal::new(&image, PAGES), PAGES))
        });
        g.bench_function("kernel_mmap", |b| {
            b.iter(|| scan(&Kernel::new(&image, PAGES), PAGES))
        });
        g.finish();
        let offsets = zipf_offsets(POOL, 1 << 20);
        let resident = Core::new(&image, POOL, POOL);
        scan(&resident, POOL);
        let vec = image.bytes[..POOL * PAGE].to_vec();
        let mut g = c.benchmark_group("mmap_zipf");
        g.throughput(Throughput::Elements(offsets.len() as u64));
        g.bench_function("pagecore", |b| b.iter(|| loads(resident.ptr(), &offsets)));
        g.bench_function("vec", |b| b.iter(|| loads(vec.as_ptr(), &offsets)));
        g.finish();
    }

    pub fn interleaved(rounds: usize) {
        if !permitted() {
            return;
        }
        let image = Image::new(POOL * 10);
        let order = order();
        let offsets = zipf_offsets(POOL, 1 << 22);
        let resident = Core::new(&image, POOL, POOL);
        scan(&resident, POOL);
        let vec = image.bytes[..POOL * PAGE].to_vec();
        let names = [
            "pagecore",
            "minimal uffd",
            "kernel mmap",
            "minimal memfd",
            "minimal memfd+wp",
            "pagecore private",
            "kernel private",
        ];
        let mut fault: [Vec<f64>; 7] = Default::default();
        let mut fault_p99: [Vec<f64>; 7] = Default::default();
        let mut fault_mean: [Vec<f64>; 7] = Default::default();
        let mut one_cpu: [Vec<f64>; 7] = Default::default();
        let mut scans: [Vec<f64>; 5] = Default::default();
        let (mut zc, mut zv, mut ev, mut ev1, mut rs) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut wps, mut wpa, mut wscan) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            let runs = [
                faults(&Core::new(&image, PAGES, PAGES), &order),
                faults(&Minimal::new(&image, PAGES), &order),
                faults(&Kernel::new(&image, PAGES), &order),
                faults(&Minimal::with(&image, PAGES, true, false), &order),
                faults(&Minimal::with(&image, PAGES, true, true), &order),
                faults(&Private::new(&image, PAGES), &order),
                faults(&Kernel::with(&image, PAGES, true), &order),
            ];
            for (i, ns) in runs.into_iter().enumerate() {
                fault[i].push(ns[ns.len() / 2]);
                fault_p99[i].push(ns[ns.len() * 99 / 100]);
                fault_mean[i].push(ns.iter().sum::<f64>() / ns.len() as f64);
            }
            let runs = on_one_cpu(|| {
                [
                    faults(&Core::new(&image, PAGES, PAGES), &order),
                    faults(&Minimal::new(&image, PAGES), &order),
                    faults(&Kernel::new(&image, PAGES), &order),
                    faults(&Minimal::with(&image, PAGES, true, false), &order),
                    faults(&Minimal::with(&image, PAGES, true, true), &order),
                    faults(&Private::new(&image, PAGES), &order),
                    faults(&Kernel::with(&image, PAGES, true), &order),
                ]
            });
            for (i, ns) in runs.into_iter().enumerate() {
                one_cpu[i].push(ns[ns.len() / 2]);
            }
            let runs = [
                scan(&Core::new(&image, PAGES, PAGES), PAGES),
                scan(&Minimal::new(&image, PAGES), PAGES),
                scan(&Kernel::new(&image, PAGES), PAGES),
                scan(&Minimal::with(&image, PAGES, true, false), PAGES),
                scan(&Minimal::with(&image, PAGES, true, true), PAGES),
            ];
            for (i, t) in runs.into_iter().enumerate() {
                scans[i].push(PAGES as f64 / t.as_secs_f64());
            }
            zc.push(loads(resident.ptr(), &offsets).as_nanos() as f64);
            zv.push(loads(vec.as_ptr(), &offsets).as_nanos() as f64);
            ev.push(evict(&image, None));
            ev1.push(evict(&image, Some(1)));
            rs.push(rss(&image));
            let (a, b, c) = write_protect(PAGES, &order);
            wps.push(a);
            wpa.push(b);
            wscan.push(c);
        }
        let med = support::median;
        let f: Vec<f64> = fault.iter_mut().map(|v| med(v)).collect();
        let f99: Vec<f64> = fault_p99.iter_mut().map(|v| med(v)).collect();
        let s: Vec<f64> = scans.iter_mut().map(|v| med(v)).collect();
        let fm: Vec<f64> = fault_mean.iter_mut().map(|v| med(v)).collect();
        let f1: Vec<f64> = one_cpu.iter_mut().map(|v| med(v)).collect();
        println!("fault service, random order, no fault-around (medians of {rounds} rounds):");
        for i in 0..names.len() {
            println!(
                "  {:>16}: one CPU median {:>6.0} ns = {:.2}x | two CPUs median {:>6.0} ns, mean {:>6.0} ns = {:.2}x, p99 {:>6.0} ns",
                names[i],
                f1[i],
                f1[i] / f1[1],
                f[i],
                fm[i],
                fm[i] / fm[1],
                f99[i],
            );
        }
        println!("  (ratios to the minimal handler; goal: pagecore <= 1.25x; pagecore private: a private mapping's load of a page resident in its frozen layer, a copy into its memory; kernel private: MAP_PRIVATE of the file, page cache warm)");
        for i in 0..scans.len() {
            println!(
                "scan {:>16}: {:>9.0} pages/s = {:.2}x the minimal handler's",
                names[i],
                s[i],
                s[i] / s[1]
            );
        }
        println!("  (goal: pagecore >= 3x the minimal handler)");
        let (zc, zv) = (med(&mut zc), med(&mut zv));
        println!(
            "zipf loads on resident pages: pagecore {:.2} ns/load, Vec<u8> {:.2} ns/load: {:.2}x Vec's rate (goal >= 0.9x)",
            zc / offsets.len() as f64,
            zv / offsets.len() as f64,
            zv / zc
        );
        let (ev, ev1) = (med(&mut ev), med(&mut ev1));
        println!(
            "eviction, batched (the pool's default, 16 pages): {ev:.0} ns each, {:.0} evictions/s (goal >= 100,000/s); one page per call: {ev1:.0} ns, {:.0}/s; batched {:.2}x the rate",
            1e9 / ev,
            1e9 / ev1,
            ev1 / ev
        );
        println!(
            "resident memory scanning a mapping 10x the pool: {:.2}x the pool's budget (goal <= 1.1x)",
            med(&mut rs)
        );
        let (s, a, sc) = (med(&mut wps), med(&mut wpa), med(&mut wscan));
        println!(
            "dirty tracking, first store to a write-protected page (median): sync {s:.0} ns (a fault to the handler), WP_ASYNC {a:.0} ns + PAGEMAP_SCAN {sc:.0} ns per written page = {:.2}x faster",
            s / (a + sc)
        );
    }
}

fn bench(c: &mut Criterion) {
    #[cfg(target_os = "linux")]
    linux::bench(c);
    let _ = (c, Throughput::Elements(0));
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
