//! Every userfaultfd operation on real memory: a missing fault served by COPY (and EEXIST on a
//! second copy), the zero page, write protection and its fault, MOVE, MINOR + CONTINUE on a
//! memfd, WP_ASYNC with PAGEMAP_SCAN, and events on unmap. Where userfaultfd is not permitted
//! each test prints `SKIPPED` and passes, unless `PAGECORE_REQUIRE_UFFD=1`.

use super::*;
use crate::sync::thread;

pub(super) const PAGE: usize = 4096;

/// Opens a userfaultfd with `features`, or says why not: `None` means skip this test.
pub(super) fn open(features: u64) -> Option<Uffd> {
    match Uffd::open(features, false) {
        Ok(u) => Some(u),
        Err(e) => {
            if std::env::var_os("PAGECORE_REQUIRE_UFFD").is_some_and(|v| v == "1") {
                panic!("userfaultfd required (PAGECORE_REQUIRE_UFFD=1) but: {e}");
            }
            eprintln!("SKIPPED: userfaultfd unavailable: {e}");
            None
        }
    }
}

/// A mapping of `pages` pages (anonymous private, or shared of a file), unmapped on drop.
pub(super) struct Region {
    pub(super) addr: usize,
    pub(super) len: usize,
}

impl Region {
    pub(super) fn anonymous(pages: usize) -> Self {
        let len = pages * PAGE;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap: {}", io::Error::last_os_error());
        // A fork elsewhere in this test process (a probe forks) would make the pages
        // copy-on-write shared, and MOVE refuses a page that is not exclusive (EBUSY).
        // SAFETY: changes only how our own fresh mapping is inherited.
        check(unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) }).unwrap();
        Self {
            addr: p as usize,
            len,
        }
    }

    pub(super) fn shared(fd: RawFd, pages: usize) -> Self {
        let len = pages * PAGE;
        // SAFETY: a fresh shared mapping of `fd`; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap: {}", io::Error::last_os_error());
        Self {
            addr: p as usize,
            len,
        }
    }

    pub(super) fn page(&self, i: usize) -> usize {
        self.addr + i * PAGE
    }

    /// A volatile load of byte `off` (through the MMU: may fault).
    pub(super) fn load(&self, off: usize) -> u8 {
        assert!(off < self.len);
        // SAFETY: in bounds of a live mapping; volatile so the access really happens.
        unsafe { std::ptr::read_volatile((self.addr + off) as *const u8) }
    }

    /// A volatile store of `v` at byte `off`.
    pub(super) fn store(&self, off: usize, v: u8) {
        assert!(off < self.len);
        // SAFETY: as in `load`; the mapping is writable.
        unsafe { std::ptr::write_volatile((self.addr + off) as *mut u8, v) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping we made.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Reads one event (blocking).
pub(super) fn next(u: &Uffd) -> Event {
    let mut v = Vec::new();
    while v.is_empty() {
        u.read_events(&mut v, 1).expect("read events");
    }
    v[0]
}

#[test]
fn a_missing_fault_is_served_by_copy_and_a_second_copy_finds_it_there() {
    let Some(u) = open(feature::THREAD_ID) else {
        return;
    };
    let r = Region::anonymous(4);
    let ioctls = u.register(r.addr, r.len, mode::MISSING).unwrap();
    assert_ne!(
        ioctls & (1 << sys::_UFFDIO_COPY),
        0,
        "COPY supported on anonymous memory"
    );
    let (addr, len) = (r.addr, r.len);
    let toucher = thread::spawn(move || {
        // SAFETY: the region outlives the thread (joined below); a store faults to the handler.
        unsafe { std::ptr::write_volatile((addr + 2 * PAGE + 5) as *mut u8, 0xAB) };
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile((addr + 2 * PAGE + 6) as *const u8) }
    });
    let ev = next(&u);
    let Event::Fault {
        addr: at,
        write,
        wp,
        tid,
        ..
    } = ev
    else {
        panic!("expected a fault, got {ev:?}");
    };
    assert_eq!(at as usize, r.page(2), "page-aligned fault address");
    assert!(write && !wp);
    assert_ne!(tid, 0, "THREAD_ID gives the faulting thread");
    let src = vec![7u8; PAGE];
    // SAFETY: `src` is PAGE readable bytes.
    let f = unsafe { u.copy(r.page(2), src.as_ptr(), PAGE, false, false) }.unwrap();
    assert_eq!(f, Filled::Done);
    assert_eq!(toucher.join().unwrap(), 7, "the copied bytes");
    assert_eq!(
        r.load(2 * PAGE + 5),
        0xAB,
        "the faulting store went through after the copy"
    );
    // SAFETY: as above.
    let again = unsafe { u.copy(r.page(2), src.as_ptr(), PAGE, false, false) }.unwrap();
    assert_eq!(again, Filled::Exists, "EEXIST is an outcome, not an error");
    u.wake(r.page(2), PAGE).unwrap();
    u.unregister(r.addr, len).unwrap();
    assert_eq!(r.load(0), 0, "unregistered: an ordinary zero-filled page");
}

#[test]
fn the_zero_page_serves_a_read_and_a_write_then_faults_normally() {
    let Some(u) = open(0) else { return };
    let r = Region::anonymous(2);
    u.register(r.addr, r.len, mode::MISSING).unwrap();
    let addr = r.addr;
    // SAFETY: the region outlives the thread.
    let t = thread::spawn(move || unsafe { std::ptr::read_volatile((addr + 9) as *const u8) });
    let Event::Fault { write, .. } = next(&u) else {
        panic!("expected a fault")
    };
    assert!(!write, "a read fault");
    assert_eq!(u.zeropage(r.page(0), PAGE, false).unwrap(), Filled::Done);
    assert_eq!(t.join().unwrap(), 0);
    r.store(10, 3); // the zero page is replaced by a private page without a userfault
    assert_eq!(r.load(10), 3);
    assert_eq!(u.zeropage(r.page(0), PAGE, false).unwrap(), Filled::Exists);
}

#[test]
fn a_store_to_a_write_protected_page_faults_until_protection_is_lifted() {
    let Some(u) = open(feature::WP) else { return };
    let r = Region::anonymous(2);
    u.register(r.addr, r.len, mode::MISSING | mode::WP).unwrap();
    let src = vec![1u8; PAGE];
    // SAFETY: `src` is PAGE readable bytes. Mapped write-protected.
    let f = unsafe { u.copy(r.page(1), src.as_ptr(), PAGE, true, false) }.unwrap();
    assert_eq!(f, Filled::Done);
    assert_eq!(
        r.load(PAGE),
        1,
        "a read of a write-protected page does not fault"
    );
    let addr = r.addr;
    // SAFETY: the region outlives the thread.
    let t =
        thread::spawn(move || unsafe { std::ptr::write_volatile((addr + PAGE + 1) as *mut u8, 9) });
    let ev = next(&u);
    assert!(
        matches!(ev, Event::Fault { write: true, wp: true, addr, .. } if addr as usize == r.page(1)),
        "{ev:?}"
    );
    assert_eq!(
        r.load(PAGE + 1),
        1,
        "the store waits while the page is protected"
    );
    u.write_protect(r.page(1), PAGE, false, false).unwrap();
    t.join().unwrap();
    assert_eq!(r.load(PAGE + 1), 9);
    // Protect again: the handler reads a stable page (what write-back needs).
    u.write_protect(r.page(1), PAGE, true, false).unwrap();
    assert_eq!(r.load(PAGE + 1), 9);
}

#[test]
fn move_takes_pages_without_a_copy_and_leaves_the_source_absent() {
    let Some(u) = open(feature::MOVE) else { return };
    let src = Region::anonymous(4);
    let dst = Region::anonymous(4);
    for i in 0..3 {
        src.store(i * PAGE, 10 + i as u8);
    }
    u.register(dst.addr, dst.len, mode::MISSING).unwrap();
    let f = u
        .move_pages(dst.addr, src.addr, 4 * PAGE, true, false)
        .unwrap();
    assert_eq!(f, Filled::Done, "page 3 of the source is a hole, skipped");
    for i in 0..3 {
        assert_eq!(dst.load(i * PAGE), 10 + i as u8, "page {i} moved");
        assert_eq!(src.load(i * PAGE), 0, "page {i} left the source");
    }
}

#[test]
fn a_minor_fault_on_a_memfd_is_served_by_continue_from_the_page_cache() {
    let Some(u) = open(feature::MINOR_SHMEM) else {
        return;
    };
    // SAFETY: the name is a valid C string; the descriptor is ours.
    let fd = unsafe { libc::memfd_create(c"pagecore-uffd-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: `fd` is ours; OwnedFd closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: resizes our own memfd.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), (2 * PAGE) as libc::off_t) }).unwrap();
    let alias = Region::shared(fd.as_raw_fd(), 2); // the pager's own, unregistered view
    let client = Region::shared(fd.as_raw_fd(), 2);
    u.register(client.addr, client.len, mode::MINOR).unwrap();
    alias.store(PAGE + 3, 42); // fills the page cache; the client's view is not mapped yet
    let addr = client.addr;
    // SAFETY: the region outlives the thread.
    let t =
        thread::spawn(move || unsafe { std::ptr::read_volatile((addr + PAGE + 3) as *const u8) });
    let ev = next(&u);
    assert!(matches!(ev, Event::Fault { minor: true, .. }), "{ev:?}");
    assert_eq!(
        u.continue_minor(client.page(1), PAGE, false, false)
            .unwrap(),
        Filled::Done
    );
    assert_eq!(
        t.join().unwrap(),
        42,
        "one copy of the bytes, seen through both views"
    );
    client.store(PAGE + 4, 43);
    assert_eq!(alias.load(PAGE + 4), 43);
}

#[test]
fn wp_async_lists_exactly_the_pages_written_since_the_last_scan() {
    let Some(u) = open(feature::WP | feature::WP_ASYNC | feature::WP_UNPOPULATED) else {
        return;
    };
    let r = Region::anonymous(8);
    for i in 0..8 {
        r.store(i * PAGE, 1);
    }
    u.register(r.addr, r.len, mode::WP).unwrap();
    u.write_protect(r.addr, r.len, true, false).unwrap();
    assert_eq!(Uffd::scan_written(r.addr, r.len).unwrap(), vec![]);
    r.store(PAGE + 7, 2); // no handler: WP_ASYNC resolves the fault in the kernel
    r.store(5 * PAGE, 2);
    r.store(6 * PAGE + 1, 2);
    let written = Uffd::scan_written(r.addr, r.len).unwrap();
    let p = |i: usize| r.page(i) as u64;
    assert_eq!(written, vec![(p(1), p(2)), (p(5), p(7))]);
    assert_eq!(
        Uffd::scan_written(r.addr, r.len).unwrap(),
        vec![],
        "the scan protected them again"
    );
    r.store(3 * PAGE, 4);
    assert_eq!(
        Uffd::scan_written(r.addr, r.len).unwrap(),
        vec![(p(3), p(4))]
    );
}

#[test]
fn unmap_and_remove_are_reported_as_events_and_wait_to_be_read() {
    let Some(u) = open(feature::EVENTS) else {
        return;
    };
    let r = Region::anonymous(4);
    u.register(r.addr, r.len, mode::MISSING).unwrap();
    let src = vec![5u8; PAGE];
    // SAFETY: `src` is PAGE readable bytes.
    unsafe { u.copy(r.page(0), src.as_ptr(), PAGE, false, false) }.unwrap();
    // A non-cooperative event blocks the thread that caused it until the handler reads it: a
    // handler must never madvise or unmap registered memory itself.
    let page0 = r.page(0);
    let t = thread::spawn(move || {
        // SAFETY: drops the pages of our own mapping (alive until joined).
        check(unsafe { libc::madvise(page0 as *mut libc::c_void, PAGE, libc::MADV_DONTNEED) })
    });
    let mut v = Vec::new();
    u.read_events(&mut v, 8).unwrap();
    t.join().unwrap().unwrap();
    assert_eq!(
        v,
        vec![Event::Remove {
            start: r.page(0) as u64,
            end: r.page(1) as u64
        }]
    );
    let (addr, len) = (r.addr, r.len);
    let t = thread::spawn(move || drop(r));
    v.clear();
    u.read_events(&mut v, 8).unwrap();
    t.join().unwrap();
    assert_eq!(
        v,
        vec![Event::Unmap {
            start: addr as u64,
            end: (addr + len) as u64
        }]
    );
}

#[test]
fn refusals_are_clear_errors() {
    let Some(u) = open(0) else { return };
    let r = Region::anonymous(1);
    let e = u.register(r.addr + 1, PAGE, mode::MISSING).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "unaligned range");
    // A copy into a range not registered with this descriptor.
    let src = [0u8; PAGE];
    // SAFETY: `src` is PAGE readable bytes.
    let e = unsafe { u.copy(r.addr, src.as_ptr(), PAGE, false, false) }.unwrap_err();
    assert!(
        matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL)),
        "{e}"
    );
    assert!(NOT_PERMITTED.contains("vm.unprivileged_userfaultfd"));
    let all = Uffd::supported().unwrap();
    assert_ne!(all & feature::WP, 0, "Linux 6.18 supports write protection");
}
