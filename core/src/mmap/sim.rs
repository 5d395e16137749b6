//! A simulated MMU on the sync facade (std, loom or shuttle): the model the mapping's protocol
//! is checked over (SPEC §2.8, scenarios M…).
//!
//! One object's pages ([`SimMmu::new`]) may be mapped in several views ([`SimMmu::share`]), as
//! a memfd is in several mappings: the views share the pages' bytes, and each has its own
//! table entries and fault queue. Per page and view: a table entry ([`Pte`]: absent,
//! read-only, writable, poisoned); per page: its bytes (one zeroed allocation, like the memfd's
//! pages). A "CPU" is any thread calling
//! [`SimMmu::load`] or [`SimMmu::store`] on a view: the access happens under the model's one
//! lock (one for every view: a machine's), the table changes too, so an access is ordered
//! before or after each change, never across it (the TLB shootdown), and two CPUs' accesses
//! of one page through two views are ordered as the hardware's coherent caches order them. An
//! access the entry does not allow queues a fault of its own (as the kernel's `userfaultfd`
//! queues a message per faulting thread: two CPUs faulting on a page report it twice, and a CPU
//! woken before its page is mapped faults again, so handlers meet duplicate and stale faults)
//! and parks until its fault is answered (see the generation below) or the mapping ends, then
//! tries again, as a CPU would return to the faulting instruction. A map of a page already mapped is the kernel's `EEXIST`:
//! it changes nothing and wakes nobody. A store through a read-only view fails at once
//! ([`CpuError::ReadOnly`]: the kernel's `SIGSEGV`, with no fault to the handler).
//!
//! Orderings: none of its own; the lock orders every table change, access and queue change.
//! Each view has its own parkers for its CPUs and its handlers (a change in one view wakes
//! nobody in another). Wake-ups run after the lock is dropped; a parked CPU re-checks its page's
//! generation under the parker's lock. The generation is bumped only by what the kernel wakes
//! a faulting thread for: a map, a write-protect's removal, a wake, a poison, the mapping's
//! end (a zap, a write-protect and a punch wake nobody).

use super::mmu::{Fault, Mapped, Mmu};
use crate::error::Result;
use crate::frames::memory::Memory;
use crate::sync::{lock, AccessTrack, Arc, Level, Mutex, Parker};
use std::collections::VecDeque;

/// A simulated page-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pte {
    /// No entry: any access faults.
    Absent,
    /// Loads go through; a store faults (write-protected).
    ReadOnly,
    /// Loads and stores go through.
    Writable,
    /// Any access is a bus error.
    Poisoned,
}

/// Why a simulated CPU's access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuError {
    /// The page was poisoned: a failed fill (`SIGBUS` on real memory).
    SigBus,
    /// The mapping is gone (`SIGSEGV` on real memory).
    Unmapped,
    /// A store through a read-only view (`SIGSEGV` on real memory).
    ReadOnly,
}

/// One view's table and fault queue.
struct ViewState {
    pte: Vec<Pte>,
    /// Bumped by every change of the page's entry and every wake.
    generation: Vec<u64>,
    queue: VecDeque<Fault>,
    unmapped: bool,
    /// Stores fail without a fault (a read-only view).
    read_only: bool,
    /// Faults queued so far (statistics for the scenarios' checks).
    faults: u64,
}

impl ViewState {
    fn new(n: usize, read_only: bool) -> Self {
        Self {
            pte: vec![Pte::Absent; n],
            generation: vec![0; n],
            queue: VecDeque::new(),
            unmapped: false,
            read_only,
            faults: 0,
        }
    }
}

/// The pages and every view's tables (one per object).
struct Machine {
    memory: Memory,
    tracks: Box<[AccessTrack]>,
    views: Mutex<Vec<ViewState>>,
}

/// A view of a simulated object's pages (see the module doc).
pub struct SimMmu {
    machine: Arc<Machine>,
    view: usize,
    /// This view's CPUs waiting for their page (a change in another view wakes none of them).
    cpus: Parker,
    /// This view's handlers waiting for a fault.
    handlers: Parker,
}

impl std::fmt::Debug for SimMmu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMmu")
            .field("pages", &self.pages())
            .field("page_size", &self.page_size())
            .field("view", &self.view)
            .finish()
    }
}

impl SimMmu {
    /// A range of `pages` pages of `page_size` bytes, all zero and unmapped: an object's first
    /// view, writable.
    pub fn new(pages: u64, page_size: usize) -> Result<Self> {
        Memory::check_page_size(page_size)?;
        let n = pages.max(1);
        Ok(Self {
            machine: Arc::new(Machine {
                memory: Memory::new(n, page_size)?,
                tracks: (0..n).map(|_| AccessTrack::new()).collect(),
                views: Mutex::new(Level::Mmu, vec![ViewState::new(n as usize, false)]),
            }),
            view: 0,
            cpus: Parker::new(Level::Park),
            handlers: Parker::new(Level::Park),
        })
    }

    /// Another view of the same pages (another mapping of the object), every entry absent;
    /// `read_only`: a store through it fails ([`CpuError::ReadOnly`]).
    pub fn share(&self, read_only: bool) -> Self {
        let mut views = lock(&self.machine.views);
        views.push(ViewState::new(
            self.machine.memory.frames() as usize,
            read_only,
        ));
        Self {
            machine: self.machine.clone(),
            view: views.len() - 1,
            cpus: Parker::new(Level::Park),
            handlers: Parker::new(Level::Park),
        }
    }

    /// A CPU's 8-byte load at the start of page `page` (faulting, and waiting for the fault's
    /// service, as needed).
    pub fn load(&self, page: u64) -> std::result::Result<u64, CpuError> {
        self.access(page, None)
    }

    /// A CPU's 8-byte store of `v` at the start of page `page` (see [`SimMmu::load`]).
    pub fn store(&self, page: u64, v: u64) -> std::result::Result<(), CpuError> {
        self.access(page, Some(v)).map(|_| ())
    }

    /// Page `page`'s table entry in this view now.
    pub fn pte(&self, page: u64) -> Pte {
        lock(&self.machine.views)[self.view].pte[page as usize]
    }

    /// Faults queued in this view so far.
    pub fn faults(&self) -> u64 {
        lock(&self.machine.views)[self.view].faults
    }

    fn access(&self, page: u64, store: Option<u64>) -> std::result::Result<u64, CpuError> {
        assert!(page < self.pages(), "a CPU access outside the mapping");
        let i = page as usize;
        let m = &*self.machine;
        loop {
            let mut views = lock(&m.views);
            let st = &mut views[self.view];
            if st.unmapped {
                return Err(CpuError::Unmapped);
            }
            if st.read_only && store.is_some() {
                return Err(CpuError::ReadOnly);
            }
            match (st.pte[i], store) {
                (Pte::Poisoned, _) => return Err(CpuError::SigBus),
                (Pte::Writable, Some(v)) => {
                    let _t = m.tracks[i].exclusive();
                    // SAFETY: the entry is writable, which the pager makes it only while no
                    // access of its own can overlap (IM1: DIRTY set, no write-back reads until
                    // a zap or a write-protect, which take this lock); every other CPU's access
                    // (any view's) is under this lock too; 8 <= page size.
                    unsafe { (self.bytes(page) as *mut u64).write_unaligned(v) };
                    return Ok(v);
                }
                (Pte::Writable | Pte::ReadOnly, None) => {
                    let _t = m.tracks[i].shared();
                    // SAFETY: mapped: the pager writes the page's bytes only while it is not
                    // mapped in any view (a fill), or while it holds it exclusively after a
                    // zap of every view.
                    return Ok(unsafe { (self.bytes(page) as *const u64).read_unaligned() });
                }
                _ => {}
            }
            // Every faulting access queues a fault of its own, as the kernel queues a message
            // per faulting thread: a page two CPUs fault on is reported twice, and a CPU woken
            // before its page is mapped (by a change of the entry, a wake) faults again, so a
            // handler meets duplicate and stale faults.
            st.faults += 1;
            st.queue.push_back(Fault {
                page,
                write: store.is_some(),
            });
            let seen = st.generation[i];
            drop(views);
            self.handlers.unpark_all();
            // Blocked until the page's fault is answered (its generation moves) or the mapping
            // ends: a wake-up for another page of the view puts the CPU back to sleep rather
            // than have it fault again, as the kernel wakes only the faulting threads of the
            // range it answers.
            let waiting = || {
                let views = lock(&m.views);
                let st = &views[self.view];
                st.generation[i] == seen && !st.unmapped
            };
            while waiting() {
                self.cpus.park(None, waiting);
            }
        }
    }

    /// Changes page `page`'s state in this view under the lock; with `wake`, bumps its
    /// generation and then wakes the CPUs waiting for it. As in the kernel, only an answer to
    /// a fault wakes them (a map, a write-protect's removal, a wake, a poison): a zap or a
    /// write-protect does not, and a CPU woken otherwise would only fault again.
    fn change<R>(&self, page: u64, wake: bool, f: impl FnOnce(&mut ViewState, usize) -> R) -> R {
        let i = page as usize;
        let r = {
            let mut views = lock(&self.machine.views);
            let st = &mut views[self.view];
            let r = f(st, i);
            if wake {
                st.generation[i] += 1;
            }
            r
        };
        if wake {
            self.cpus.unpark_all();
        }
        r
    }
}

impl Mmu for SimMmu {
    fn page_size(&self) -> usize {
        self.machine.memory.page_size()
    }

    fn pages(&self) -> u64 {
        self.machine.memory.frames() as u64
    }

    fn bytes(&self, page: u64) -> *mut u8 {
        self.machine.memory.frame_ptr(page as u32)
    }

    fn track(&self, page: u64) -> &AccessTrack {
        &self.machine.tracks[page as usize]
    }

    fn map(&self, page: u64, writable: bool) -> Mapped {
        let i = page as usize;
        {
            let mut views = lock(&self.machine.views);
            let st = &mut views[self.view];
            // The kernel's EEXIST: nothing changes and nobody is woken (the caller must wake
            // the page's CPUs, or un-protect the page, if one of them may wait).
            if st.pte[i] != Pte::Absent {
                return Mapped::Exists;
            }
            st.pte[i] = if writable && !st.read_only {
                Pte::Writable
            } else {
                Pte::ReadOnly
            };
            st.generation[i] += 1;
        }
        self.cpus.unpark_all();
        Mapped::Done
    }

    fn protect(&self, page: u64, wp: bool) {
        self.change(page, !wp, |st, i| match (st.pte[i], wp) {
            (Pte::Writable, true) => st.pte[i] = Pte::ReadOnly,
            // Clearing the protection wakes the page's waiters whatever its entry (the
            // kernel's WRITEPROTECT without DONTWAKE): they fault again if they must.
            (Pte::ReadOnly, false) if !st.read_only => st.pte[i] = Pte::Writable,
            _ => {}
        })
    }

    fn zap(&self, page: u64) {
        self.change(page, false, |st, i| st.pte[i] = Pte::Absent)
    }

    fn free(&self, page: u64) {
        let i = page as usize;
        {
            let mut views = lock(&self.machine.views);
            // A punch of the object's page takes its entry away in every view, and keeps a
            // poison marker (the probe
            // `punch_hole_keeps_a_poison_marker_so_the_next_access_still_sigbuses`). The
            // protocol zapped every view's entry first, so no other view's CPU is running on
            // it or needs waking (its waiting CPUs wait for a map in their own view).
            for st in views.iter_mut() {
                if st.pte[i] != Pte::Poisoned {
                    st.pte[i] = Pte::Absent;
                }
            }
            let _t = self.machine.tracks[i].exclusive();
            // SAFETY: the caller gives the page up: no access of its own is in progress, and
            // none of a CPU's (every view's entry is absent, under the lock).
            unsafe { std::ptr::write_bytes(self.bytes(page), 0, self.page_size()) };
        }
    }

    fn wake(&self, page: u64) {
        self.change(page, true, |_, _| ())
    }

    fn poison(&self, page: u64) {
        self.change(page, true, |st, i| {
            if st.pte[i] == Pte::Absent {
                st.pte[i] = Pte::Poisoned;
            }
        })
    }

    fn unmap(&self) {
        {
            let mut views = lock(&self.machine.views);
            let st = &mut views[self.view];
            st.unmapped = true;
            for p in st.pte.iter_mut() {
                *p = Pte::Absent;
            }
        }
        self.cpus.unpark_all();
        self.handlers.unpark_all();
    }

    fn mapped_at(&self, page: u64) -> Option<(usize, bool)> {
        let pte = lock(&self.machine.views)[self.view].pte[page as usize];
        let addr = (self.view as u64 * self.pages() + page) as usize * self.page_size();
        match pte {
            Pte::ReadOnly => Some((addr, false)),
            Pte::Writable => Some((addr, true)),
            Pte::Absent | Pte::Poisoned => None,
        }
    }

    fn ended(&self) -> bool {
        lock(&self.machine.views)[self.view].unmapped
    }

    fn next_fault(&self, block: bool) -> Option<Fault> {
        let m = &*self.machine;
        loop {
            {
                let mut views = lock(&m.views);
                let st = &mut views[self.view];
                if let Some(f) = st.queue.pop_front() {
                    return Some(f);
                }
                if st.unmapped || !block {
                    return None;
                }
            }
            self.handlers.park(None, || {
                let views = lock(&m.views);
                let st = &views[self.view];
                st.queue.is_empty() && !st.unmapped
            });
        }
    }
}
