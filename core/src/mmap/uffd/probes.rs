//! Probes: the kernel facts `docs/design/mmap.md` builds the mapping on (its **verify** items),
//! each checked on the running kernel and asserted, so a kernel that behaves otherwise fails here
//! first. The setup is the design's: a memfd seen twice `MAP_SHARED`, the client view registered
//! `MISSING|MINOR|WP` and pagecore's alias never registered, no `EVENT_REMOVE`. Like
//! `tests.rs`, each test prints `SKIPPED` and passes where userfaultfd is not permitted, unless
//! `PAGECORE_REQUIRE_UFFD=1`.

use super::tests::{open, Region, PAGE};
use super::*;
use crate::sync::thread;
use std::time::{Duration, Instant};

/// The features the mapping's userfaultfd asks for (design §1 (c); no `EVENT_REMOVE`, §2 step 2).
const MAPPING: u64 = feature::MISSING_SHMEM
    | feature::MINOR_SHMEM
    | feature::WP
    | feature::WP_SHMEM
    | feature::POISON;
/// How the client view is registered.
const ALL: u64 = mode::MISSING | mode::MINOR | mode::WP;

/// A memfd of `pages` pages seen twice, `MAP_SHARED`: `alias` (pagecore's view, never
/// registered) and `client` (the view the tests register).
struct Shm {
    alias: Region,
    client: Region,
    fd: OwnedFd,
}

impl Shm {
    fn new(pages: usize) -> Self {
        // SAFETY: the name is a valid C string; the descriptor is ours.
        let fd = unsafe { libc::memfd_create(c"pagecore-uffd-probe".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
        // SAFETY: `fd` is ours; OwnedFd closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: resizes our own memfd (sparse: every page a hole).
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), (pages * PAGE) as libc::off_t) }).unwrap();
        Self {
            alias: Region::shared(fd.as_raw_fd(), pages),
            client: Region::shared(fd.as_raw_fd(), pages),
            fd,
        }
    }

    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)` over pages `[first, first + n)`: frees their
    /// page-cache pages (design §2 step 4).
    fn punch(&self, first: usize, n: usize) {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let (off, len) = ((first * PAGE) as libc::off_t, (n * PAGE) as libc::off_t);
        // SAFETY: frees a range of our own memfd; the mappings stay valid (holes read as zeros).
        check(unsafe { libc::fallocate(self.fd.as_raw_fd(), mode, off, len) }).unwrap();
    }

    /// `MADV_DONTNEED` on the client's pages `[first, first + n)` (design §2 step 2).
    fn zap(&self, first: usize, n: usize) {
        let addr = self.client.page(first) as *mut libc::c_void;
        // SAFETY: drops PTEs of our own shared mapping; the page cache keeps the bytes.
        check(unsafe { libc::madvise(addr, n * PAGE, libc::MADV_DONTNEED) }).unwrap();
    }
}

/// [`open`] (skips where userfaultfd is not permitted), made non-blocking: [`Uffd::poll`] needs
/// that, and so does a test that asserts "no event" without hanging when there is one.
fn open_nb(features: u64) -> Option<Uffd> {
    let u = open(features)?;
    // SAFETY: sets a status flag on our own descriptor.
    check(unsafe { libc::fcntl(u.raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) }).unwrap();
    Some(u)
}

/// The next event, waiting at most 10 s (a probe that expected one fails instead of hanging).
fn next(u: &Uffd) -> Event {
    assert!(u.poll(10_000).unwrap(), "no event within 10 s");
    let mut v = Vec::new();
    u.read_events(&mut v, 1).unwrap();
    v[0]
}

/// A fault event as the kernel reports it without `THREAD_ID`.
fn fault(addr: usize, write: bool, wp: bool, minor: bool) -> Event {
    Event::Fault {
        addr: addr as u64,
        write,
        wp,
        minor,
        tid: 0,
    }
}

/// Loads the byte at `addr` on a new thread (which sleeps in the kernel while its fault waits).
fn load_on_thread(addr: usize) -> thread::JoinHandle<u8> {
    // SAFETY: every caller's mapping outlives the thread (joined before the mapping drops).
    thread::spawn(move || unsafe { std::ptr::read_volatile(addr as *const u8) })
}

/// Stores `v` at `addr` on a new thread.
fn store_on_thread(addr: usize, v: u8) -> thread::JoinHandle<()> {
    // SAFETY: as in `load_on_thread`; the mapping is writable.
    thread::spawn(move || unsafe { std::ptr::write_volatile(addr as *mut u8, v) })
}

/// How a child process ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// `exit(status)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

fn ended(status: libc::c_int) -> Ended {
    if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

/// Loads the byte at `addr` in a child *process* that shares this address space
/// (`clone(CLONE_VM)`: the same page tables, poison markers and registrations, but its own
/// signals), so a SIGBUS kills the child and not the test. A plain `fork` would not do: the
/// child's copy of a `MAP_SHARED` memfd mapping starts without PTEs (see
/// `poison_sigbuses_the_faulting_and_every_later_access_but_a_forked_child_does_not_inherit_it`).
/// With `catch`, the child catches SIGBUS instead and exits with `100 + si_code`. The faults the
/// child raises on `u` go to `serve`, which must resolve them. Returns the events and how the
/// child ended (on a successful load it exits with the byte).
fn load_in_child(
    u: &Uffd,
    addr: usize,
    catch: bool,
    mut serve: impl FnMut(&Event),
) -> (Vec<Event>, Ended) {
    extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo (SA_SIGINFO); `_exit` is async-signal-safe.
        unsafe { libc::_exit(100 + (*info).si_code) }
    }
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the parent's `(addr, catch)`, alive until this child is reaped.
        let &(addr, catch) = unsafe { &*(arg as *const (usize, bool)) };
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: system calls on valid structs. Rlimits and signal handlers are per process
        // here (no CLONE_THREAD, no CLONE_SIGHAND): they change the child's alone.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &no_core); // no core file for an expected SIGBUS
            if catch {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
            }
        }
        // SAFETY: `addr` is in a live mapping of the shared address space (the parent reaps
        // this child before it unmaps anything).
        libc::c_int::from(unsafe { std::ptr::read_volatile(addr as *const u8) })
    }
    let arg = (addr, catch);
    let mut c = Child {
        pid: 0,
        stack: vec![0u8; 64 * 1024],
    };
    let top = (c.stack.as_mut_ptr() as usize + c.stack.len()) & !15;
    // SAFETY: the child runs `child` on `c.stack`, which `c` frees only after the child is
    // reaped (also on a panic); it touches nothing but `addr` and its own stack, allocates
    // nothing, and exits when `child` returns.
    c.pid = unsafe {
        libc::clone(
            child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            &arg as *const (usize, bool) as *mut libc::c_void,
        )
    };
    assert!(c.pid > 0, "clone: {}", io::Error::last_os_error());
    let (mut events, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(10));
    loop {
        if let Some(end) = c.reap(libc::WNOHANG) {
            return (events, end);
        }
        assert!(Instant::now() < deadline, "the child is stuck: {events:?}");
        if u.poll(5).unwrap() {
            let at = events.len();
            u.read_events(&mut events, 8).unwrap();
            events[at..].iter().for_each(&mut serve);
        }
    }
}

/// A child process running on `stack` in this address space: killed and reaped on drop if it
/// has not been, so its stack is never freed under it.
struct Child {
    pid: libc::pid_t,
    stack: Vec<u8>,
}

impl Child {
    /// `waitpid` with `flags`: how the child ended, or `None` if it is still running.
    fn reap(&mut self, flags: libc::c_int) -> Option<Ended> {
        let mut status = 0;
        // SAFETY: reaps our own child; `status` is valid for the call.
        let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
        assert!(r >= 0, "waitpid: {}", io::Error::last_os_error());
        (r == self.pid).then(|| {
            self.pid = 0;
            ended(status)
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: kills our own child, not yet reaped (so the pid is still ours).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.reap(0);
        }
    }
}

#[test]
fn a_store_to_a_memfd_hole_is_missing_and_an_alias_fill_plus_continue_wakes_it() {
    let Some(u) = open_nb(MAPPING) else { return };
    let m = Shm::new(2);
    let ioctls = u.register(m.client.addr, m.client.len, ALL).unwrap();
    assert_ne!(ioctls & (1 << sys::_UFFDIO_CONTINUE), 0);
    let addr = m.client.page(1);
    let t = thread::spawn(move || {
        // SAFETY: the mapping outlives the thread (joined below); the store faults.
        unsafe { std::ptr::write_volatile((addr + 5) as *mut u8, 0xAB) };
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile((addr + 6) as *const u8) }
    });
    assert_eq!(next(&u), fault(addr, true, false, false), "a hole: MISSING");
    let e = u.continue_minor(addr, PAGE, false, false).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EFAULT),
        "CONTINUE needs the page"
    );
    for i in 0..PAGE {
        m.alias.store(PAGE + i, 7); // allocates the page-cache page: the alias is unregistered
    }
    assert!(!u.poll(0).unwrap(), "the alias's fault raised no event");
    let f = u.continue_minor(addr, PAGE, false, false).unwrap();
    assert_eq!(f, Filled::Done, "CONTINUE resolves a MISSING fault");
    assert_eq!(
        t.join().unwrap(),
        7,
        "the waiter woke and sees the alias's bytes"
    );
    assert_eq!(m.alias.load(PAGE + 5), 0xAB, "its store is in the one page");
    assert_eq!(m.alias.load(PAGE + 6), 7);
}

#[test]
fn continue_with_mode_wp_maps_read_only_and_writeprotect_clear_wakes_the_store() {
    let Some(u) = open_nb(MAPPING) else { return };
    let m = Shm::new(1);
    u.register(m.client.addr, m.client.len, ALL).unwrap();
    m.alias.store(3, 1);
    let addr = m.client.addr;
    let t = load_on_thread(addr + 3);
    assert_eq!(
        next(&u),
        fault(addr, false, false, true),
        "in the cache: MINOR"
    );
    let f = u.continue_minor(addr, PAGE, true, false).unwrap();
    assert_eq!(f, Filled::Done);
    assert_eq!(t.join().unwrap(), 1);
    assert_eq!(
        m.client.load(3),
        1,
        "a read of the WP-mapped page does not fault"
    );
    let t = store_on_thread(addr + 3, 2);
    assert_eq!(next(&u), fault(addr, true, true, false), "a store: WP");
    assert_eq!(m.alias.load(3), 1, "the store waits");
    u.write_protect(addr, PAGE, false, false).unwrap();
    t.join().unwrap();
    assert_eq!(
        m.alias.load(3),
        2,
        "woken, the store landed in the page cache"
    );
    m.client.store(4, 3);
    assert!(!u.poll(0).unwrap(), "now writable: no more faults");
}

#[test]
fn madv_dontneed_on_the_shared_range_zaps_ptes_but_keeps_bytes_so_the_next_access_is_minor() {
    let Some(u) = open_nb(MAPPING) else { return };
    let m = Shm::new(2);
    u.register(m.client.addr, m.client.len, ALL).unwrap();
    m.alias.store(0, 5);
    m.alias.store(PAGE, 6);
    let (p0, p1) = (m.client.page(0), m.client.page(1));
    assert_eq!(
        u.continue_minor(p0, PAGE, false, false).unwrap(),
        Filled::Done
    );
    assert_eq!(
        u.continue_minor(p1, PAGE, true, false).unwrap(),
        Filled::Done
    );
    m.client.store(1, 9); // page 0 is writable (a DIRTY page), page 1 write-protected
    m.zap(0, 2);
    assert!(
        !u.poll(0).unwrap(),
        "without EVENT_REMOVE a zap raises no event"
    );
    assert_eq!(m.alias.load(1), 9, "the bytes stay in the page cache");
    assert_eq!(m.alias.load(PAGE), 6);
    for (addr, off, wp, byte) in [(p0, 1, false, 9), (p1, 0, true, 6)] {
        let t = load_on_thread(addr + off);
        assert_eq!(
            next(&u),
            fault(addr, false, false, true),
            "MINOR, not MISSING"
        );
        assert_eq!(
            u.continue_minor(addr, PAGE, wp, false).unwrap(),
            Filled::Done
        );
        assert_eq!(t.join().unwrap(), byte);
    }
    let t = store_on_thread(p1, 7);
    assert_eq!(
        next(&u),
        fault(p1, true, true, false),
        "mapped with MODE_WP again"
    );
    u.write_protect(p1, PAGE, false, false).unwrap();
    t.join().unwrap();
}

#[test]
fn punch_hole_raises_no_event_and_the_next_access_is_missing_with_zeros_in_the_alias() {
    let Some(u) = open_nb(MAPPING) else { return };
    let m = Shm::new(2);
    u.register(m.client.addr, m.client.len, ALL).unwrap();
    m.alias.store(PAGE + 1, 8);
    let addr = m.client.page(1);
    assert_eq!(
        u.continue_minor(addr, PAGE, false, false).unwrap(),
        Filled::Done
    );
    assert_eq!(m.client.load(PAGE + 1), 8);
    m.punch(1, 1);
    assert!(!u.poll(0).unwrap(), "PUNCH_HOLE raises no event");
    let t = load_on_thread(addr + 1);
    let ev = next(&u);
    assert_eq!(
        ev,
        fault(addr, false, false, false),
        "the PTE is gone: MISSING"
    );
    assert_eq!(m.alias.load(PAGE + 1), 0, "the alias's PTE went too: zeros");
    assert_eq!(
        u.continue_minor(addr, PAGE, false, false).unwrap(),
        Filled::Done
    );
    assert_eq!(t.join().unwrap(), 0);
}

#[test]
fn poison_sigbuses_the_faulting_and_every_later_access_but_a_forked_child_does_not_inherit_it() {
    let Some(u) = open_nb(MAPPING) else { return };
    let m = Shm::new(2);
    let ioctls = u.register(m.client.addr, m.client.len, ALL).unwrap();
    assert_ne!(
        ioctls & (1 << sys::_UFFDIO_POISON),
        0,
        "POISON on a memfd range"
    );
    let p0 = m.client.page(0);
    let (events, end) = load_in_child(&u, p0, false, |_| {
        assert_eq!(u.poison(p0, PAGE, false).unwrap(), Filled::Done); // a failed fill
    });
    assert_eq!(events, vec![fault(p0, false, false, false)]);
    assert_eq!(end, Ended::Signaled(libc::SIGBUS), "the faulting access");
    m.alias.store(0, 4); // even with the page in the cache
    let (events, end) = load_in_child(&u, p0, false, |e| panic!("{e:?}"));
    assert_eq!(
        (events, end),
        (vec![], Ended::Signaled(libc::SIGBUS)),
        "later ones"
    );
    // The code: a memory error's where the kernel handles those (CONFIG_MEMORY_FAILURE, whose
    // sysctl tells), else a plain bad address (so on the 6.18 kernel this was probed on).
    let mf = std::path::Path::new("/proc/sys/vm/memory_failure_recovery").exists();
    let code = if mf {
        libc::BUS_MCEERR_AR
    } else {
        libc::BUS_ADRERR
    };
    let (_, end) = load_in_child(&u, p0, true, |e| panic!("{e:?}"));
    assert_eq!(
        end,
        Ended::Exited(100 + code),
        "si_code (memory failure: {mf})"
    );
    // A forked child (no EVENT_FORK) gets the shared mapping without PTEs: the page cache's page.
    // SAFETY: the child only loads from a live mapping and exits (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above; `_exit` skips the parent's atexit handlers.
        unsafe { libc::_exit(std::ptr::read_volatile(p0 as *const u8).into()) };
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(ended(status), Ended::Exited(4), "no marker in the child");
    m.alias.store(PAGE, 1);
    let p1 = m.client.page(1);
    assert_eq!(
        u.continue_minor(p1, PAGE, false, false).unwrap(),
        Filled::Done
    );
    assert_eq!(
        u.poison(p1, PAGE, false).unwrap(),
        Filled::Exists,
        "a mapped page"
    );
}

/// Poisons page 0 of a fresh registered memfd, checks that an access SIGBUSes, runs `clear`, and
/// returns the page's address, what the next access (in a child) raised, and how it ended (a
/// fault is served by filling `3` through the alias and CONTINUE).
fn poisoned_then(clear: impl FnOnce(&Shm)) -> Option<(usize, Vec<Event>, Ended)> {
    let u = open_nb(MAPPING)?;
    let m = Shm::new(1);
    u.register(m.client.addr, m.client.len, ALL).unwrap();
    let p0 = m.client.page(0);
    assert_eq!(u.poison(p0, PAGE, false).unwrap(), Filled::Done);
    let poisoned = load_in_child(&u, p0, false, |e| panic!("{e:?}"));
    assert_eq!(poisoned, (vec![], Ended::Signaled(libc::SIGBUS)));
    clear(&m);
    let (events, end) = load_in_child(&u, p0, false, |_| {
        m.alias.store(0, 3);
        assert_eq!(
            u.continue_minor(p0, PAGE, false, false).unwrap(),
            Filled::Done
        );
    });
    Some((p0, events, end))
}

#[test]
fn punch_hole_keeps_a_poison_marker_so_the_next_access_still_sigbuses() {
    let Some((_, events, end)) = poisoned_then(|m| m.punch(0, 1)) else {
        return;
    };
    assert_eq!(events, vec![], "no fault reaches the handler");
    assert_eq!(
        end,
        Ended::Signaled(libc::SIGBUS),
        "the marker outlived the punch"
    );
}

#[test]
fn madv_dontneed_clears_a_poison_marker_and_the_next_access_is_missing() {
    let Some((p0, events, end)) = poisoned_then(|m| m.zap(0, 1)) else {
        return;
    };
    assert_eq!(
        events,
        vec![fault(p0, false, false, false)],
        "a hole: MISSING"
    );
    assert_eq!(end, Ended::Exited(3), "filled and read, no SIGBUS");
}

#[test]
fn wp_async_a_page_written_then_zapped_scans_as_written_and_a_clean_zapped_one_does_not() {
    let Some(u) = open_nb(feature::WP | feature::WP_ASYNC | feature::WP_SHMEM) else {
        return;
    };
    let m = Shm::new(4);
    for i in 0..4 {
        m.client.store(i * PAGE, 1);
    }
    u.register(m.client.addr, m.client.len, mode::WP).unwrap();
    u.write_protect(m.client.addr, m.client.len, true, false)
        .unwrap();
    let scan = || Uffd::scan_written(m.client.addr, m.client.len).unwrap();
    assert_eq!(scan(), vec![]);
    m.client.store(PAGE, 2); // page 1 written
    m.client.store(3 * PAGE, 2); // page 3 written
    m.zap(1, 2); // page 1 written then zapped, page 2 clean and zapped
    let p = |i: usize| m.client.page(i) as u64;
    let written = scan();
    assert_eq!(written, vec![(p(1), p(2)), (p(3), p(4))]);
    assert_eq!(scan(), vec![], "the scan protected them again");
    m.client.store(2 * PAGE, 3); // the zapped clean page is still protected
    assert_eq!(scan(), vec![(p(2), p(3))]);
}

#[test]
fn after_move_out_a_hole_in_a_wp_only_anon_range_maps_a_fresh_page_with_no_event() {
    let Some(u) = open_nb(feature::WP | feature::MOVE) else {
        return;
    };
    let (frames, dst) = (Region::anonymous(1), Region::anonymous(1));
    frames.store(0, 5);
    u.register(frames.addr, frames.len, mode::WP).unwrap();
    u.register(dst.addr, dst.len, mode::MISSING).unwrap();
    let f = u.move_pages(dst.addr, frames.addr, PAGE, false, false);
    assert_eq!(f.unwrap(), Filled::Done);
    assert_eq!(dst.load(0), 5, "the page moved");
    let addr = frames.addr;
    let t = thread::spawn(move || {
        // SAFETY: the region outlives the thread (joined below).
        let v = unsafe { std::ptr::read_volatile(addr as *const u8) };
        // SAFETY: as above; writable.
        unsafe { std::ptr::write_volatile((addr + 1) as *mut u8, 6) };
        v
    });
    while !t.is_finished() {
        assert!(!u.poll(5).unwrap(), "the hole raised an event");
    }
    assert_eq!(
        t.join().unwrap(),
        0,
        "a silent zero page, not the frame's bytes"
    );
    assert_eq!(frames.load(1), 6, "and a store allocates silently");
}

#[test]
fn move_refuses_a_page_once_a_fork_shared_it_ebusy() {
    let Some(u) = open_nb(feature::MOVE) else {
        return;
    };
    let (src, dst) = (Region::anonymous(1), Region::anonymous(1));
    // SAFETY: undoes `Region`'s MADV_DONTFORK on our own mapping: this probe wants the fork.
    check(unsafe { libc::madvise(src.addr as *mut libc::c_void, PAGE, libc::MADV_DOFORK) })
        .unwrap();
    src.store(0, 5);
    u.register(dst.addr, dst.len, mode::MISSING).unwrap();
    // SAFETY: the child only exits (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let e = u
        .move_pages(dst.addr, src.addr, PAGE, false, false)
        .unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EBUSY),
        "not exclusive, even after the child exited"
    );
    assert_eq!(src.load(0), 5, "the page stayed");
}
