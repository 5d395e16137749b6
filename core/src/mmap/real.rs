//! The kernel's MMU: a memfd mapped twice `MAP_SHARED` (the client range, registered with a
//! userfaultfd for `MISSING | MINOR | WP`, and pagecore's alias, never registered), as
//! `docs/design/mmap.md` §1 (c) chose. A fill is written into the memfd from a buffer
//! (`pwrite`: no alias entry, no zeroing of the new page); write-backs, guards and grants reach
//! the bytes through the alias; a fault is
//! answered with `CONTINUE` (the page cache's page, read-only or writable), a write-protect
//! fault with `WRITEPROTECT`; eviction zaps the client's entry with `MADV_DONTNEED` and gives
//! the bytes up with `fallocate(PUNCH_HOLE)`; a failed fill is answered with `POISON`.
//!
//! Every operation here is a system call on pagecore's own descriptors and mappings; none takes
//! a pagecore lock, and none waits for a handler (no `EVENT_REMOVE`: design §2 step 2).

use super::mmu::{Fault, Mapped, Mmu};
use super::uffd::{feature, mode, Event, Filled, Uffd};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{lock, AccessTrack, Level, Mutex, ShareArc};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How long the handler looks for the next fault before it sleeps (microseconds).
const SPIN_US: u64 = 50;

/// The features the mapping's userfaultfd asks for (design §1 (c); no `EVENT_REMOVE`).
const FEATURES: u64 = feature::MISSING_SHMEM
    | feature::MINOR_SHMEM
    | feature::WP
    | feature::WP_SHMEM
    | feature::POISON;

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One `MAP_SHARED` view of the memfd, unmapped on drop.
struct View {
    addr: *mut u8,
    len: usize,
}

impl View {
    fn new(fd: &OwnedFd, len: usize, read_only: bool) -> io::Result<Self> {
        let prot = if read_only {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: a fresh shared mapping of our own memfd; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let v = Self {
            addr: p.cast(),
            len,
        };
        // A forked child would get a copy of the view with no table entries and no
        // registration: its loads would read the page cache past pagecore (design §4).
        // SAFETY: changes only how our own fresh mapping is inherited.
        check(unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) })?;
        // One table entry per page: a huge page of shmem would map (and fill, and evict) 512
        // pages at once behind the pool's back. Fails (EINVAL) only where the kernel has no
        // transparent huge pages, which is as good.
        // SAFETY: changes only the huge-page advice of our own fresh mapping.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        Ok(v)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping `new` made, once.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// An object's pages: the memfd and pagecore's alias of it (never registered), shared by every
/// mapping of the object.
struct Shm {
    memfd: OwnedFd,
    alias: View,
    tracks: Box<[AccessTrack]>,
}

/// The kernel's MMU for one mapping (see the module doc): a view of an object's memfd, with
/// its own userfaultfd.
pub struct UffdMmu {
    uffd: Uffd,
    shm: ShareArc<Shm>,
    /// Written by `unmap` to wake a handler blocked in `poll`.
    wakeup: OwnedFd,
    client: View,
    /// Mapped `PROT_READ`, registered without write-protect: a store is the kernel's
    /// `SIGSEGV`, never a fault to the handler.
    read_only: bool,
    page_size: usize,
    pages: u64,
    /// Faults read and not yet handed out (one `read(2)` returns several).
    pending: Mutex<VecDeque<Fault>>,
    unmapped: AtomicBool,
    /// Faults taken per read (`set_readers`).
    batch: AtomicUsize,
}

// SAFETY: the alias's pointer is a mapping this value owns; every access through it is the
// protocol's (the pager's under a pin or a reclaim's take).
unsafe impl Send for Shm {}
// SAFETY: as above; the trackers are the facade's (shared use is their purpose).
unsafe impl Sync for Shm {}

// SAFETY: the client range's pointer is a mapping this value owns (the alias's is `Shm`'s);
// every access through it is a CPU's, through the kernel.
unsafe impl Send for UffdMmu {}
// SAFETY: as above; the mutable state is behind a lock or atomic.
unsafe impl Sync for UffdMmu {}

impl std::fmt::Debug for UffdMmu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UffdMmu")
            .field("client", &self.client.addr)
            .field("pages", &self.pages)
            .finish()
    }
}

impl UffdMmu {
    /// A mapping of `pages` pages of the system's page size: the memfd, both views and the
    /// registration. Fails where userfaultfd is not permitted or lacks a feature (the error
    /// says which and what to do).
    pub fn new(pages: u64, read_only: bool) -> io::Result<Self> {
        // SAFETY: no arguments.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(page_size))
            .filter(|&l| l > 0 && l <= isize::MAX as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a mapping of {pages} pages of {page_size} bytes: it must be at least one \
                         page and at most isize::MAX bytes"
                    ),
                )
            })?;
        // Not executable and sealed so (where `vm.memfd_noexec = 2` refuses any other memfd);
        // kernels before 6.3 do not know the flag (EINVAL): then without it.
        let name = c"pagecore-mapping";
        let noexec = linux_raw_sys::general::MFD_NOEXEC_SEAL;
        // SAFETY: the name is a valid C string; the descriptor is ours.
        let mut fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | noexec) };
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            // SAFETY: as above.
            fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        }
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is ours; OwnedFd closes it.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: resizes our own memfd (sparse: every page a hole).
        check(unsafe { libc::ftruncate(memfd.as_raw_fd(), len as libc::off_t) })?;
        let alias = View::new(&memfd, len, false)?;
        let shm = ShareArc::new(Shm {
            memfd,
            alias,
            tracks: (0..pages).map(|_| AccessTrack::new()).collect(),
        });
        Self::view(shm, pages, page_size, read_only)
    }

    /// Another mapping of the same object's pages (the same memfd), with its own range and
    /// userfaultfd; `read_only`: mapped `PROT_READ` (a store through it is a `SIGSEGV`).
    pub fn share(&self, read_only: bool) -> io::Result<Self> {
        Self::view(self.shm.clone(), self.pages, self.page_size, read_only)
    }

    fn view(shm: ShareArc<Shm>, pages: u64, page_size: usize, read_only: bool) -> io::Result<Self> {
        let len = shm.alias.len;
        let uffd = Uffd::open(FEATURES, true)?;
        let client = View::new(&shm.memfd, len, read_only)?;
        // A read-only range cannot take a write-protect registration, and needs none: no store
        // goes through it.
        let modes = if read_only {
            mode::MISSING | mode::MINOR
        } else {
            mode::MISSING | mode::MINOR | mode::WP
        };
        uffd.register(client.addr as usize, len, modes)?;
        // SAFETY: a new eventfd, ours.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            uffd,
            shm,
            // SAFETY: `efd` is ours.
            wakeup: unsafe { OwnedFd::from_raw_fd(efd) },
            client,
            read_only,
            page_size,
            pages,
            pending: Mutex::new(Level::Mmu, VecDeque::new()),
            unmapped: AtomicBool::new(false),
            batch: AtomicUsize::new(32),
        })
    }

    /// How many threads read this MMU's faults: with several, each read takes one fault, so
    /// that a thread waking to a burst of faults does not take them all while the others
    /// sleep (the kernel wakes every poller; the first to read would win the whole batch).
    pub(crate) fn set_readers(&self, readers: usize) {
        let batch = if readers > 1 { 1 } else { 32 };
        // (`next_fault` reads it too: a batch of one means other readers, and no spin.)
        // Relaxed: read by `next_fault` as a hint; set before the readers start.
        self.batch.store(batch, Ordering::Relaxed);
    }

    /// The client range's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.client.addr
    }

    /// The client range's length in bytes.
    pub fn len(&self) -> usize {
        self.client.len
    }

    /// Whether the range is empty (never: a mapping has at least one page).
    pub fn is_empty(&self) -> bool {
        self.client.len == 0
    }

    fn addr(&self, page: u64) -> usize {
        self.client.addr as usize + page as usize * self.page_size
    }

    /// The length in bytes of pages `[first, first + n)` cut at the range's end; `None` if
    /// that leaves nothing.
    fn range_len(&self, first: u64, n: u64) -> Option<usize> {
        let end = first.saturating_add(n).min(self.pages);
        (first < end).then(|| (end - first) as usize * self.page_size)
    }

    /// Runs a fill-like ioctl until it is not interrupted by a changing mapping (EAGAIN: the
    /// rest of the page is retried; a one-page call either maps it or reports it mapped).
    fn resolve(&self, mut op: impl FnMut() -> io::Result<Filled>) -> Mapped {
        loop {
            match op() {
                Ok(Filled::Done) => return Mapped::Done,
                Ok(Filled::Exists) => return Mapped::Exists,
                Ok(Filled::Again(_)) => crate::sync::thread::yield_now(),
                // The range is going away (ENOENT, ESRCH after unmap): nobody waits any more.
                Err(_) => return Mapped::Exists,
            }
        }
    }
}

impl Mmu for UffdMmu {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn pages(&self) -> u64 {
        self.pages
    }

    fn bytes(&self, page: u64) -> *mut u8 {
        debug_assert!(page < self.pages);
        // SAFETY: page < pages: inside the alias.
        unsafe { self.shm.alias.addr.add(page as usize * self.page_size) }
    }

    fn track(&self, page: u64) -> &AccessTrack {
        &self.shm.tracks[page as usize]
    }

    fn fill(&self, page: u64, fill: &mut dyn FnMut(&mut [u8]) -> io::Result<()>) -> io::Result<()> {
        // The accessor fills a buffer of this thread's, which `pwrite` copies into the memfd:
        // shmem allocates the page for a whole-page write without zeroing it, and no alias
        // entry is made (the alias's first touch would be a page fault, then the zeroing, then
        // the copy). Like a pool frame, the buffer holds the previous fill's bytes: an accessor
        // fills the whole page (`Accessor::fill`).
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let ps = self.page_size;
        let mut write = |buf: &mut [u8]| -> io::Result<()> {
            fill(buf)?;
            let mut done = 0;
            while done < ps {
                let off = (page as usize * ps + done) as libc::off_t;
                // SAFETY: writes from our own live buffer into our own memfd.
                let n = unsafe {
                    libc::pwrite(
                        self.shm.memfd.as_raw_fd(),
                        buf[done..].as_ptr().cast(),
                        ps - done,
                        off,
                    )
                };
                match n {
                    n if n > 0 => done += n as usize,
                    0 => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                    _ => {
                        let e = io::Error::last_os_error();
                        if e.kind() != io::ErrorKind::Interrupted {
                            return Err(e);
                        }
                    }
                }
            }
            Ok(())
        };
        BUFFER.with(|b| match b.try_borrow_mut() {
            Ok(mut b) => {
                b.resize(ps, 0);
                write(&mut b)
            }
            // An accessor whose fill fills another mapped page on this thread: a buffer of its
            // own.
            Err(_) => write(&mut vec![0u8; ps]),
        })
    }

    fn map(&self, page: u64, writable: bool) -> Mapped {
        let a = self.addr(page);
        // A read-only range maps read-only by its protection (no write-protect mode there).
        let wp = !writable && !self.read_only;
        self.resolve(|| self.uffd.continue_minor(a, self.page_size, wp, false))
    }

    fn map_read_only(&self, first: u64, n: u64) -> u64 {
        // One CONTINUE over the range. It stops at a page mapped already: EEXIST when that is
        // the first page (skip it), else EAGAIN with the bytes it mapped (go on from there,
        // where the next call says EEXIST); EAGAIN with nothing mapped is a changing mapping
        // (try again). Any other error is a range going away: stop.
        let ps = self.page_size as u64;
        let (mut at, end) = (first, first.saturating_add(n).min(self.pages));
        let mut done = 0;
        while at < end {
            let len = ((end - at) * ps) as usize;
            let wp = !self.read_only;
            match self.uffd.continue_minor(self.addr(at), len, wp, false) {
                Ok(Filled::Done) => return done + (end - at),
                Ok(Filled::Again(0)) => crate::sync::thread::yield_now(),
                Ok(Filled::Again(bytes)) => {
                    done += bytes / ps;
                    at += bytes / ps;
                }
                Ok(Filled::Exists) => at += 1,
                Err(_) => break,
            }
        }
        done
    }

    fn protect(&self, page: u64, wp: bool) {
        if self.read_only {
            // Never writable; no write-protect registration to change.
            return;
        }
        // An error here is a range going away (after unmap): nothing to protect.
        let _ = self
            .uffd
            .write_protect(self.addr(page), self.page_size, wp, false);
    }

    fn zap(&self, page: u64) {
        self.zap_range(page, 1);
    }

    fn zap_range(&self, first: u64, n: u64) {
        let Some(len) = self.range_len(first, n) else {
            return;
        };
        // SAFETY: drops table entries of our own shared mapping (`range_len` keeps the range
        // inside it); the page cache keeps the bytes and the next access faults (design §2 step
        // 2; probe
        // `madv_dontneed_on_the_shared_range_zaps_ptes_but_keeps_bytes_so_the_next_access_is_minor`).
        unsafe {
            libc::madvise(
                self.addr(first) as *mut libc::c_void,
                len,
                libc::MADV_DONTNEED,
            )
        };
    }

    fn free(&self, page: u64) {
        self.free_range(page, 1);
    }

    fn free_range(&self, first: u64, n: u64) {
        let Some(len) = self.range_len(first, n) else {
            return;
        };
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let off = (first as usize * self.page_size) as libc::off_t;
        // SAFETY: frees pages of our own memfd (every view then reads a hole: zeros, and a
        // client's next access is MISSING; design §2 step 4).
        unsafe { libc::fallocate(self.shm.memfd.as_raw_fd(), mode, off, len as _) };
    }

    fn wake(&self, page: u64) {
        let _ = self.uffd.wake(self.addr(page), self.page_size);
    }

    fn poison(&self, page: u64) {
        let (a, ps) = (self.addr(page), self.page_size);
        if let Ok(Filled::Done) = self.uffd.poison(a, ps, false) {
            return;
        }
        // POISON refuses any entry but none, a uffd-wp marker (left by a zap of a protected
        // page, or by a write-protect of an absent one) included, and then wakes nobody: clear
        // the entry and the marker, and try again.
        // SAFETY: drops table entries of our own shared mapping (bytes kept).
        unsafe { libc::madvise(a as *mut libc::c_void, ps, libc::MADV_DONTNEED) };
        let _ = self.uffd.write_protect(a, ps, false, true);
        if !matches!(self.uffd.poison(a, ps, false), Ok(Filled::Done)) {
            // Never leave a faulting thread asleep: it faults again.
            let _ = self.uffd.wake(a, ps);
        }
    }

    fn unmap(&self) {
        self.unmapped.store(true, Ordering::SeqCst);
        // Every access from now on is a segmentation fault (the mapping is gone for its
        // CPUs); the range itself stays reserved until drop. Unregistering wakes the threads
        // waiting on a fault there, which then fault on the protection.
        // SAFETY: changes the protection of our own client view.
        unsafe { libc::mprotect(self.client.addr.cast(), self.client.len, libc::PROT_NONE) };
        let _ = self
            .uffd
            .unregister(self.client.addr as usize, self.client.len);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes to our own eventfd.
        unsafe { libc::write(self.wakeup.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn mapped_at(&self, page: u64) -> Option<(usize, bool)> {
        use std::os::unix::fs::FileExt;
        let addr = self.addr(page);
        // /proc/self/pagemap: 8 bytes per virtual page; bit 63 present, bit 57 write-protected
        // by userfaultfd (Documentation/admin-guide/mm/pagemap.rst). A diagnostic: opened per
        // call.
        let pagemap = std::fs::File::open("/proc/self/pagemap").ok()?;
        let mut entry = [0u8; 8];
        let at = (addr / self.page_size) as u64 * 8;
        pagemap.read_exact_at(&mut entry, at).ok()?;
        let e = u64::from_le_bytes(entry);
        let (present, wp) = ((e >> 63) & 1 == 1, (e >> 57) & 1 == 1);
        present.then_some((addr, !self.read_only && !wp))
    }

    fn ended(&self) -> bool {
        self.unmapped.load(Ordering::SeqCst)
    }

    fn next_fault(&self, block: bool) -> Option<Fault> {
        let mut events = Vec::new();
        // Relaxed: a tuning knob, set before the readers start (`set_readers`).
        let alone = self.batch.load(Ordering::Relaxed) > 1;
        // The spin's end, once it started; none after it (or with other readers).
        let mut spin: Option<std::time::Instant> = None;
        let mut spun = !alone;
        loop {
            if let Some(f) = lock(&self.pending).pop_front() {
                return Some(f);
            }
            if self.unmapped.load(Ordering::SeqCst) {
                return None;
            }
            events.clear();
            // Relaxed: a tuning knob (see `set_readers`).
            let batch = self.batch.load(Ordering::Relaxed);
            match self.uffd.read_events(&mut events, batch) {
                Ok(0) | Err(_) => {}
                Ok(_) => {
                    let mut q = lock(&self.pending);
                    for e in &events {
                        if let Event::Fault { addr, write, .. } = *e {
                            let base = self.client.addr as u64;
                            let page = (addr - base) / self.page_size as u64;
                            if page < self.pages {
                                q.push_back(Fault { page, write });
                            }
                        }
                    }
                    continue;
                }
            }
            if !block {
                return None;
            }
            // A fault often follows soon after the last one was served (the CPU it woke runs
            // on and faults again): look for it a little while before sleeping, so that
            // neither this CPU nor the faulting one has to be woken from idle (on a VM, tens
            // of microseconds each way). Once per call, and only for a mapping's one reader
            // (several would all spin after each wake, for a fault one of them takes).
            if !spun {
                let now = std::time::Instant::now();
                let until = *spin.get_or_insert(now + std::time::Duration::from_micros(SPIN_US));
                if now < until {
                    crate::sync::hint::spin_loop();
                    continue;
                }
                spun = true;
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.uffd.raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.wakeup.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two pollfds, valid for the call.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        }
    }
}
