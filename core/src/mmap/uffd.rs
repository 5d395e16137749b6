//! Linux's userfaultfd through raw ioctls (`libc` + `linux-raw-sys`; no bindgen at build time).
//!
//! A [`Uffd`] is one userfaultfd: ranges of this process's memory are registered with it, and
//! faults on them are read from it as [`Event`]s and resolved by the ioctls it wraps:
//!
//! | operation | ioctl | resolves |
//! |---|---|---|
//! | [`Uffd::copy`] | `UFFDIO_COPY` | a missing page, by copying bytes in (optionally write-protected) |
//! | [`Uffd::zeropage`] | `UFFDIO_ZEROPAGE` | a missing page, with the shared zero page |
//! | [`Uffd::write_protect`] | `UFFDIO_WRITEPROTECT` | sets or clears write protection (clearing wakes a write fault) |
//! | [`Uffd::continue_minor`] | `UFFDIO_CONTINUE` | a minor fault on shmem/memfd: maps the page cache page already there |
//! | [`Uffd::move_pages`] | `UFFDIO_MOVE` | moves anonymous pages between addresses (no copy) |
//! | [`Uffd::wake`] | `UFFDIO_WAKE` | wakes threads waiting on a range resolved elsewhere (EEXIST) |
//! | [`Uffd::poison`] | `UFFDIO_POISON` | a fault that cannot be filled: the access (and every later one) gets SIGBUS |
//! | [`Uffd::scan_written`] | `PAGEMAP_SCAN` (on `/proc/self/pagemap`) | lists the pages written since write protection (WP_ASYNC) |
//!
//! The outcomes a fault handler must tell apart are typed: [`Filled::Exists`] (another party
//! mapped the page: wake the waiters and move on) and [`Filled::Again`] (the mapping is changing,
//! with the bytes copied so far: read the pending events, then resume the rest).
//!
//! Opening tries the `userfaultfd(2)` system call, then `/dev/userfaultfd` (Linux 6.1+; its
//! file mode decides who may use it). Where neither is permitted, [`Uffd::open`] fails with
//! `PermissionDenied` and [`NOT_PERMITTED`] names the remedies.
//!
//! Used by the kernel's MMU (`mmap/real.rs`, under `Mapping`); its own tests exercise every
//! operation on real memory here. Parts of it (COPY, ZEROPAGE, MOVE, `PAGEMAP_SCAN`) have no
//! caller but those tests yet.
#![allow(dead_code)]

use linux_raw_sys::general as sys;
use linux_raw_sys::ioctl;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What to tell a user whose system refuses userfaultfd.
pub(crate) const NOT_PERMITTED: &str = "userfaultfd is not permitted for this process: run as \
root or with CAP_SYS_PTRACE, or set `sysctl vm.unprivileged_userfaultfd=1`, or give the user \
read-write access to /dev/userfaultfd (Linux 6.1+); in a container, the seccomp profile must \
allow the userfaultfd system call";

/// `_IOWR(type, nr, size)`.
const fn iowr(ty: u32, nr: u32, size: usize) -> u32 {
    (3 << 30) | ((size as u32) << 16) | (ty << 8) | nr
}

/// `UFFDIO` ioctls' type byte.
const UFFDIO: u32 = 0xAA;
/// `UFFDIO_MOVE` (Linux 6.8; linux-raw-sys 0.12 has its struct, not its number).
const UFFDIO_MOVE: u32 = iowr(UFFDIO, sys::_UFFDIO_MOVE, size_of::<sys::uffdio_move>());
/// `UFFDIO_POISON` = `_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)` (Linux 6.6,
/// include/uapi/linux/userfaultfd.h; linux-raw-sys 0.12 has the struct and `_UFFDIO_POISON`, not
/// the number).
const UFFDIO_POISON: u32 = iowr(UFFDIO, sys::_UFFDIO_POISON, size_of::<sys::uffdio_poison>());
/// `USERFAULTFD_IOC_NEW` = `_IO(0xAA, 0x00)`, on `/dev/userfaultfd`.
const USERFAULTFD_IOC_NEW: u32 = UFFDIO << 8;
/// `PAGEMAP_SCAN` = `_IOWR('f', 16, struct pm_scan_arg)` (Linux 6.7), on `/proc/self/pagemap`.
const PAGEMAP_SCAN: u32 = iowr(b'f' as u32, 16, size_of::<sys::pm_scan_arg>());

// The formula reproduces the numbers linux-raw-sys does have, so the two it lacks are right too.
const _: () =
    assert!(iowr(UFFDIO, sys::_UFFDIO_COPY, size_of::<sys::uffdio_copy>()) == ioctl::UFFDIO_COPY);
const _: () = assert!(
    iowr(
        UFFDIO,
        sys::_UFFDIO_CONTINUE,
        size_of::<sys::uffdio_continue>()
    ) == ioctl::UFFDIO_CONTINUE
);
const _: () = assert!(size_of::<sys::uffdio_poison>() == 32);
const _: () = assert!(size_of::<sys::uffd_msg>() == 32);
const _: () = assert!(size_of::<sys::pm_scan_arg>() == 96);

// Mode bits linux-raw-sys 0.12 lacks (include/uapi/linux/userfaultfd.h).
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1;
const UFFDIO_WRITEPROTECT_MODE_DONTWAKE: u64 = 2;
const UFFDIO_CONTINUE_MODE_DONTWAKE: u64 = 1;
const UFFDIO_CONTINUE_MODE_WP: u64 = 2;
const UFFDIO_MOVE_MODE_DONTWAKE: u64 = 1;
const UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: u64 = 2;
const UFFDIO_POISON_MODE_DONTWAKE: u64 = 1;

/// Feature bits asked of the kernel at open (`UFFD_FEATURE_*`).
pub(crate) mod feature {
    use linux_raw_sys::general as sys;
    /// Write-protect faults are reported (`PAGEFAULT_FLAG_WP`).
    pub(crate) const WP: u64 = sys::UFFD_FEATURE_PAGEFAULT_FLAG_WP as u64;
    /// Write protection on shmem/memfd (and hugetlbfs) mappings: needs the kernel's PTE markers
    /// (`CONFIG_PTE_MARKER_UFFD_WP`), which keep the protection of a page whose PTE was zapped.
    pub(crate) const WP_SHMEM: u64 = sys::UFFD_FEATURE_WP_HUGETLBFS_SHMEM as u64;
    /// Missing faults on shmem/memfd mappings.
    pub(crate) const MISSING_SHMEM: u64 = sys::UFFD_FEATURE_MISSING_SHMEM as u64;
    /// Minor faults on shmem/memfd mappings (`UFFDIO_CONTINUE`).
    pub(crate) const MINOR_SHMEM: u64 = sys::UFFD_FEATURE_MINOR_SHMEM as u64;
    /// A fault on a registered range raises SIGBUS instead of waiting for a handler.
    pub(crate) const SIGBUS: u64 = sys::UFFD_FEATURE_SIGBUS as u64;
    /// Events carry the faulting thread's id.
    pub(crate) const THREAD_ID: u64 = sys::UFFD_FEATURE_THREAD_ID as u64;
    /// Write protection of pages never touched (`WP_UNPOPULATED`).
    pub(crate) const WP_UNPOPULATED: u64 = sys::UFFD_FEATURE_WP_UNPOPULATED as u64;
    /// Write-protect faults resolved by the kernel itself, tracked for `PAGEMAP_SCAN`.
    pub(crate) const WP_ASYNC: u64 = sys::UFFD_FEATURE_WP_ASYNC as u64;
    /// `UFFDIO_MOVE`.
    pub(crate) const MOVE: u64 = sys::UFFD_FEATURE_MOVE as u64;
    /// `UFFDIO_POISON`.
    pub(crate) const POISON: u64 = sys::UFFD_FEATURE_POISON as u64;
    /// Unmap, remap, remove and fork events.
    pub(crate) const EVENTS: u64 = (sys::UFFD_FEATURE_EVENT_UNMAP
        | sys::UFFD_FEATURE_EVENT_REMAP
        | sys::UFFD_FEATURE_EVENT_REMOVE) as u64;
}

/// How a range is registered (`UFFDIO_REGISTER_MODE_*`).
pub(crate) mod mode {
    use linux_raw_sys::general as sys;
    /// Faults on pages not present.
    pub(crate) const MISSING: u64 = sys::UFFDIO_REGISTER_MODE_MISSING as u64;
    /// Writes to write-protected pages.
    pub(crate) const WP: u64 = sys::UFFDIO_REGISTER_MODE_WP as u64;
    /// Faults on shmem pages present in the page cache but not mapped here.
    pub(crate) const MINOR: u64 = sys::UFFDIO_REGISTER_MODE_MINOR as u64;
}

/// An event read from a userfaultfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A thread faulted at `addr` (page-aligned unless `EXACT_ADDRESS` was asked).
    Fault {
        /// The faulting address.
        addr: u64,
        /// A write access.
        write: bool,
        /// A write to a write-protected page.
        wp: bool,
        /// A minor fault (the page is in the page cache).
        minor: bool,
        /// The faulting thread (with `THREAD_ID`; else 0).
        tid: u32,
    },
    /// The range moved (`mremap`).
    Remap {
        /// Old start.
        from: u64,
        /// New start.
        to: u64,
        /// Length.
        len: u64,
    },
    /// `[start, end)` was dropped (`MADV_DONTNEED`/`MADV_REMOVE`).
    Remove {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// `[start, end)` was unmapped.
    Unmap {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// An event this code does not know (a newer kernel's): reported, not an error, so that
    /// the messages read with it are still handled.
    Unknown {
        /// The kernel's event number.
        event: u32,
    },
    /// The process forked; the child's userfaultfd.
    Fork {
        /// Its descriptor, owned by the reader now.
        fd: RawFd,
    },
}

/// What a fill ioctl (`COPY`, `ZEROPAGE`, `CONTINUE`, `MOVE`) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filled {
    /// The whole range.
    Done,
    /// Some page of the range was already mapped (EEXIST): the fault was resolved by someone
    /// else; the waiters of the range may still need a [`Uffd::wake`].
    Exists,
    /// The mapping is changing (EAGAIN): this many bytes were filled; read pending events, then
    /// resume the rest.
    Again(u64),
}

/// One userfaultfd, closed on drop.
#[derive(Debug)]
pub(crate) struct Uffd {
    fd: OwnedFd,
    features: u64,
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Uffd {
    /// Opens a userfaultfd (close-on-exec, non-blocking reads off unless `nonblocking`) and
    /// agrees on the API with `features` (every one must be supported: an unsupported one is an
    /// `Unsupported` error naming the missing bits). Faults from kernel mode are reported too
    /// where the process may ask for them; else from user mode only (`UFFD_USER_MODE_ONLY`).
    pub(crate) fn open(features: u64, nonblocking: bool) -> io::Result<Self> {
        let flags = libc::O_CLOEXEC | if nonblocking { libc::O_NONBLOCK } else { 0 };
        // Faults from kernel mode too (a `read(2)` into a page not mapped yet), where permitted:
        // root, CAP_SYS_PTRACE, `vm.unprivileged_userfaultfd = 1`, or `/dev/userfaultfd`.
        // SAFETY: the system call takes one integer argument and returns a new descriptor.
        let mut fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) } as libc::c_int;
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
            // An unprivileged process may still ask for faults from user mode only; then a
            // system call touching such a page fails with EFAULT instead of waiting for it.
            let user_only = flags | sys::UFFD_USER_MODE_ONLY as libc::c_int;
            // SAFETY: as above.
            let fd2 = unsafe { libc::syscall(libc::SYS_userfaultfd, user_only) } as libc::c_int;
            if fd2 >= 0 {
                fd = fd2;
            }
        }
        if fd < 0 {
            let sys_err = io::Error::last_os_error();
            fd = Self::open_dev(flags).map_err(|dev_err| {
                match (sys_err.raw_os_error(), dev_err.kind()) {
                    (Some(libc::EPERM), _) | (_, io::ErrorKind::PermissionDenied) => {
                        io::Error::new(io::ErrorKind::PermissionDenied, NOT_PERMITTED)
                    }
                    (Some(libc::ENOSYS), io::ErrorKind::NotFound) => io::Error::new(
                        io::ErrorKind::Unsupported,
                        "this kernel has no userfaultfd (CONFIG_USERFAULTFD)",
                    ),
                    _ => sys_err,
                }
            })?;
        }
        // SAFETY: `fd` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut api = sys::uffdio_api {
            api: sys::UFFD_API as u64,
            features,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes one `uffdio_api`, which outlives the call.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), ioctl::UFFDIO_API as _, &mut api) }).map_err(
            |e| match e.raw_os_error() {
                Some(libc::EINVAL) => io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "userfaultfd: this kernel lacks features {:#x} of {features:#x}",
                        features & !Self::supported().unwrap_or(0)
                    ),
                ),
                _ => e,
            },
        )?;
        Ok(Self {
            fd,
            features: api.features,
        })
    }

    /// The features this kernel supports (a throwaway handshake asking for none).
    pub(crate) fn supported() -> io::Result<u64> {
        Ok(Self::open(0, true)?.features)
    }

    fn open_dev(flags: libc::c_int) -> io::Result<libc::c_int> {
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/userfaultfd")?;
        // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its argument and returns a new fd.
        let fd = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW as _, flags) };
        check(fd)?;
        Ok(fd)
    }

    /// The features the kernel granted.
    pub(crate) fn features(&self) -> u64 {
        self.features
    }

    /// The descriptor (for epoll).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ioctl<T>(&self, op: u32, arg: &mut T) -> io::Result<()> {
        // SAFETY: every caller passes the struct its ioctl reads and writes; it outlives the
        // call. The ioctls only change page tables of ranges registered with this descriptor,
        // which the kernel checks.
        check(unsafe { libc::ioctl(self.fd.as_raw_fd(), op as _, arg as *mut T) })
    }

    /// Registers `[addr, addr + len)` (page-aligned, a whole mapping or part of one) for the
    /// faults of `mode`; returns the ioctls the range supports (a bit per `_UFFDIO_*`).
    pub(crate) fn register(&self, addr: usize, len: usize, mode: u64) -> io::Result<u64> {
        let mut r = sys::uffdio_register {
            range: range(addr, len),
            mode,
            ioctls: 0,
        };
        self.ioctl(ioctl::UFFDIO_REGISTER, &mut r)?;
        Ok(r.ioctls)
    }

    /// Unregisters `[addr, addr + len)`; threads waiting on it are woken (they retry the access).
    pub(crate) fn unregister(&self, addr: usize, len: usize) -> io::Result<()> {
        let mut r = range(addr, len);
        self.ioctl(ioctl::UFFDIO_UNREGISTER, &mut r)
    }

    /// Wakes the threads waiting on faults in `[addr, addr + len)`.
    pub(crate) fn wake(&self, addr: usize, len: usize) -> io::Result<()> {
        let mut r = range(addr, len);
        self.ioctl(ioctl::UFFDIO_WAKE, &mut r)
    }

    /// Fills `[dst, dst + len)` with the bytes at `src`, mapped write-protected if `wp`; wakes
    /// the range's waiters unless `dontwake`.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes.
    pub(crate) unsafe fn copy(
        &self,
        dst: usize,
        src: *const u8,
        len: usize,
        wp: bool,
        dontwake: bool,
    ) -> io::Result<Filled> {
        let mut c = sys::uffdio_copy {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode: (if wp { sys::UFFDIO_COPY_MODE_WP } else { 0 }
                | if dontwake {
                    sys::UFFDIO_COPY_MODE_DONTWAKE
                } else {
                    0
                }) as u64,
            copy: 0,
        };
        let r = self.ioctl(ioctl::UFFDIO_COPY, &mut c);
        filled(r, c.copy, len)
    }

    /// Maps the zero page over `[dst, dst + len)` (read faults; a write then faults normally).
    pub(crate) fn zeropage(&self, dst: usize, len: usize, dontwake: bool) -> io::Result<Filled> {
        let mut z = sys::uffdio_zeropage {
            range: range(dst, len),
            mode: if dontwake {
                sys::UFFDIO_ZEROPAGE_MODE_DONTWAKE as u64
            } else {
                0
            },
            zeropage: 0,
        };
        let r = self.ioctl(ioctl::UFFDIO_ZEROPAGE, &mut z);
        filled(r, z.zeropage, len)
    }

    /// Poisons `[dst, dst + len)` (`UFFDIO_POISON`, needs [`feature::POISON`]): installs a poison
    /// marker in each PTE, so the faulting threads (woken unless `dontwake`) and every later
    /// access get SIGBUS, as after a hardware memory error (`si_code` `BUS_MCEERR_AR` where the
    /// kernel has `CONFIG_MEMORY_FAILURE`, else `BUS_ADRERR`). This is how a fault whose fill
    /// failed is answered: the thread gets SIGBUS, never zeros. A page already mapped is
    /// [`Filled::Exists`]. On a memfd range `MADV_DONTNEED` clears the marker and
    /// `fallocate(PUNCH_HOLE)` does not (the probes in `uffd/probes.rs`).
    pub(crate) fn poison(&self, dst: usize, len: usize, dontwake: bool) -> io::Result<Filled> {
        let mut p = sys::uffdio_poison {
            range: range(dst, len),
            mode: if dontwake {
                UFFDIO_POISON_MODE_DONTWAKE
            } else {
                0
            },
            updated: 0,
        };
        let r = self.ioctl(UFFDIO_POISON, &mut p);
        filled(r, p.updated, len)
    }

    /// Sets (`on`) or clears write protection on `[addr, addr + len)`. Clearing it wakes the
    /// write faults waiting there unless `dontwake`.
    pub(crate) fn write_protect(
        &self,
        addr: usize,
        len: usize,
        on: bool,
        dontwake: bool,
    ) -> io::Result<()> {
        let mut w = sys::uffdio_writeprotect {
            range: range(addr, len),
            mode: (if on { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 })
                | if dontwake {
                    UFFDIO_WRITEPROTECT_MODE_DONTWAKE
                } else {
                    0
                },
        };
        self.ioctl(ioctl::UFFDIO_WRITEPROTECT, &mut w)
    }

    /// Resolves minor faults on `[addr, addr + len)` by mapping the page cache's pages
    /// (write-protected if `wp`).
    pub(crate) fn continue_minor(
        &self,
        addr: usize,
        len: usize,
        wp: bool,
        dontwake: bool,
    ) -> io::Result<Filled> {
        let mut c = sys::uffdio_continue {
            range: range(addr, len),
            mode: (if wp { UFFDIO_CONTINUE_MODE_WP } else { 0 })
                | if dontwake {
                    UFFDIO_CONTINUE_MODE_DONTWAKE
                } else {
                    0
                },
            mapped: 0,
        };
        let r = self.ioctl(ioctl::UFFDIO_CONTINUE, &mut c);
        filled(r, c.mapped, len)
    }

    /// Moves the anonymous pages of `[src, src + len)` to `[dst, dst + len)` (both registered
    /// with this descriptor, `dst` not present): no copy, `src` becomes absent. Holes in `src`
    /// are skipped if `allow_holes`, else an error.
    pub(crate) fn move_pages(
        &self,
        dst: usize,
        src: usize,
        len: usize,
        allow_holes: bool,
        dontwake: bool,
    ) -> io::Result<Filled> {
        let mut m = sys::uffdio_move {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode: (if allow_holes {
                UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
            } else {
                0
            }) | if dontwake {
                UFFDIO_MOVE_MODE_DONTWAKE
            } else {
                0
            },
            move_: 0,
        };
        let r = self.ioctl(UFFDIO_MOVE, &mut m);
        filled(r, m.move_, len)
    }

    /// Reads the pending events into `out` (at least one; blocks unless opened non-blocking,
    /// where no pending event is `Ok(0)`). Returns how many were read.
    pub(crate) fn read_events(&self, out: &mut Vec<Event>, max: usize) -> io::Result<usize> {
        let mut msgs = [std::mem::MaybeUninit::<sys::uffd_msg>::uninit(); 32];
        let want = max.clamp(1, msgs.len());
        let n = loop {
            // SAFETY: reads at most `want` whole messages into `msgs`, which outlives the call.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr().cast(),
                    want * size_of::<sys::uffd_msg>(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(0),
                _ => return Err(e),
            }
        };
        let count = n / size_of::<sys::uffd_msg>();
        for m in &msgs[..count] {
            // SAFETY: the kernel wrote `count` whole messages.
            let m = unsafe { m.assume_init() };
            out.push(decode(&m));
        }
        Ok(count)
    }

    /// Waits up to `timeout_ms` (-1: forever) for an event to be readable; `Ok(false)` on timeout.
    /// Needs a non-blocking descriptor: on a blocking one the kernel answers every poll with
    /// `POLLERR` at once (`userfaultfd_poll`), which is an `InvalidInput` error here.
    pub(crate) fn poll(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd, valid for the call.
            let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            if r > 0 && p.revents & libc::POLLERR != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "userfaultfd: poll needs a non-blocking descriptor (POLLERR)",
                ));
            }
            if r >= 0 {
                return Ok(r > 0);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// With `WP_ASYNC`: the pages of `[addr, addr + len)` written since they were last
    /// write-protected, as `(start, end)` ranges, write-protecting them again in the same pass
    /// (`PM_SCAN_WP_MATCHING`) so the next scan sees only later writes. `PAGEMAP_SCAN` on
    /// `/proc/self/pagemap`.
    pub(crate) fn scan_written(addr: usize, len: usize) -> io::Result<Vec<(u64, u64)>> {
        let pagemap = std::fs::File::open("/proc/self/pagemap")?;
        let mut regions = vec![
            sys::page_region {
                start: 0,
                end: 0,
                categories: 0,
            };
            256
        ];
        let mut out = Vec::new();
        let (mut start, end) = (addr as u64, (addr + len) as u64);
        while start < end {
            let mut arg = sys::pm_scan_arg {
                size: size_of::<sys::pm_scan_arg>() as u64,
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
            // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len` regions into
            // `regions`; both outlive the call. It changes protection only of this process's
            // pages in [start, end), which the caller registered for WP_ASYNC.
            let n = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg) };
            check(n)?;
            out.extend(regions[..n as usize].iter().map(|r| (r.start, r.end)));
            if arg.walk_end <= start {
                break;
            }
            start = arg.walk_end;
        }
        Ok(out)
    }
}

fn range(addr: usize, len: usize) -> sys::uffdio_range {
    sys::uffdio_range {
        start: addr as u64,
        len: len as u64,
    }
}

/// The outcome of a fill ioctl: `r` its result, `done` the count (or negated errno) it wrote.
fn filled(r: io::Result<()>, done: i64, len: usize) -> io::Result<Filled> {
    match r {
        Ok(()) => Ok(Filled::Done),
        Err(e) => match e.raw_os_error() {
            Some(libc::EEXIST) => Ok(Filled::Exists),
            Some(libc::EAGAIN) => Ok(Filled::Again(done.clamp(0, len as i64) as u64)),
            _ => Err(e),
        },
    }
}

fn decode(m: &sys::uffd_msg) -> Event {
    let event = m.event as u32;
    // SAFETY: each arm reads the union member the kernel's `event` says it wrote; the members
    // are plain integers (any bit pattern is valid). Copies out of the packed struct.
    unsafe {
        match event {
            sys::UFFD_EVENT_PAGEFAULT => {
                let pf = m.arg.pagefault;
                let flags = pf.flags;
                Event::Fault {
                    addr: pf.address,
                    write: flags & sys::UFFD_PAGEFAULT_FLAG_WRITE as u64 != 0,
                    wp: flags & sys::UFFD_PAGEFAULT_FLAG_WP as u64 != 0,
                    minor: flags & sys::UFFD_PAGEFAULT_FLAG_MINOR as u64 != 0,
                    tid: pf.feat.ptid,
                }
            }
            sys::UFFD_EVENT_REMAP => {
                let r = m.arg.remap;
                Event::Remap {
                    from: r.from,
                    to: r.to,
                    len: r.len,
                }
            }
            sys::UFFD_EVENT_REMOVE => {
                let r = m.arg.remove;
                Event::Remove {
                    start: r.start,
                    end: r.end,
                }
            }
            sys::UFFD_EVENT_UNMAP => {
                let r = m.arg.remove;
                Event::Unmap {
                    start: r.start,
                    end: r.end,
                }
            }
            sys::UFFD_EVENT_FORK => Event::Fork {
                fd: m.arg.fork.ufd as RawFd,
            },
            other => Event::Unknown { event: other },
        }
    }
}

#[cfg(test)]
mod probes;
#[cfg(test)]
mod tests;
