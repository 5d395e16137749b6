//! A simulated MMU on the sync facade (std, loom or shuttle): the model the mapping's protocol
//! is checked over (SPEC §2.8, scenarios M…).
//!
//! Per page: a table entry ([`Pte`]: absent, read-only, writable, poisoned), the page's bytes
//! (one zeroed allocation, like the memfd's pages), and whether a fault is queued for it. A
//! "CPU" is any thread calling [`SimMmu::load`] or [`SimMmu::store`]: the access happens under
//! the model's one lock, the table changes too, so an access is ordered before or after each
//! change, never across it (the TLB shootdown). An access the entry does not allow queues a
//! fault (once per page until it is served, as the kernel's `userfaultfd` reports a fault once)
//! and parks until that page's entry changes or it is woken, then tries again, as a CPU would
//! return to the faulting instruction.
//!
//! Orderings: none of its own; the lock orders every table change, access and queue change.
//! Wake-ups run after the lock is dropped; a parked CPU re-checks its page's generation (bumped
//! by each change of the page's entry and by each wake) under the parker's lock.

use super::mmu::{Fault, Mapped, Mmu};
use crate::error::Result;
use crate::frames::memory::Memory;
use crate::sync::{lock, AccessTrack, Level, Mutex, Parker};
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
}

struct SimState {
    pte: Vec<Pte>,
    /// A fault is queued for the page and not yet served.
    waiting: Vec<bool>,
    /// Bumped by every change of the page's entry and every wake.
    generation: Vec<u64>,
    queue: VecDeque<Fault>,
    unmapped: bool,
    /// Faults queued so far (statistics for the scenarios' checks).
    faults: u64,
}

/// The simulated MMU (see the module doc).
pub struct SimMmu {
    memory: Memory,
    tracks: Box<[AccessTrack]>,
    state: Mutex<SimState>,
    /// CPUs waiting for their page.
    cpus: Parker,
    /// Handlers waiting for a fault.
    handlers: Parker,
}

impl std::fmt::Debug for SimMmu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMmu")
            .field("pages", &self.pages())
            .field("page_size", &self.page_size())
            .finish()
    }
}

impl SimMmu {
    /// A range of `pages` pages of `page_size` bytes, all zero and unmapped.
    pub fn new(pages: u64, page_size: usize) -> Result<Self> {
        Memory::check_page_size(page_size)?;
        let n = pages.max(1);
        Ok(Self {
            memory: Memory::new(n, page_size)?,
            tracks: (0..n).map(|_| AccessTrack::new()).collect(),
            state: Mutex::new(
                Level::Mmu,
                SimState {
                    pte: vec![Pte::Absent; n as usize],
                    waiting: vec![false; n as usize],
                    generation: vec![0; n as usize],
                    queue: VecDeque::new(),
                    unmapped: false,
                    faults: 0,
                },
            ),
            cpus: Parker::new(Level::Park),
            handlers: Parker::new(Level::Park),
        })
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

    /// Page `page`'s table entry now.
    pub fn pte(&self, page: u64) -> Pte {
        lock(&self.state).pte[page as usize]
    }

    /// Faults queued so far.
    pub fn faults(&self) -> u64 {
        lock(&self.state).faults
    }

    fn access(&self, page: u64, store: Option<u64>) -> std::result::Result<u64, CpuError> {
        assert!(page < self.pages(), "a CPU access outside the mapping");
        let i = page as usize;
        loop {
            let mut st = lock(&self.state);
            if st.unmapped {
                return Err(CpuError::Unmapped);
            }
            match (st.pte[i], store) {
                (Pte::Poisoned, _) => return Err(CpuError::SigBus),
                (Pte::Writable, Some(v)) => {
                    let _t = self.tracks[i].exclusive();
                    // SAFETY: the entry is writable, which the pager makes it only while no
                    // access of its own can overlap (IM1: DIRTY set, no write-back reads until
                    // a zap or a write-protect, which take this lock); 8 <= page size.
                    unsafe { (self.bytes(page) as *mut u64).write_unaligned(v) };
                    return Ok(v);
                }
                (Pte::Writable | Pte::ReadOnly, None) => {
                    let _t = self.tracks[i].shared();
                    // SAFETY: mapped: the pager writes the page's bytes only while it is not
                    // (a fill), or while it holds it exclusively after a zap.
                    return Ok(unsafe { (self.bytes(page) as *const u64).read_unaligned() });
                }
                _ => {}
            }
            let queued = !st.waiting[i];
            if queued {
                st.waiting[i] = true;
                st.faults += 1;
                st.queue.push_back(Fault {
                    page,
                    write: store.is_some(),
                });
            }
            let seen = st.generation[i];
            drop(st);
            if queued {
                self.handlers.unpark_all();
            }
            self.cpus.park(None, || {
                let st = lock(&self.state);
                st.generation[i] == seen && !st.unmapped
            });
        }
    }

    /// Changes page `page`'s state under the lock, bumps its generation, then wakes the CPUs.
    fn change<R>(&self, page: u64, f: impl FnOnce(&mut SimState, usize) -> R) -> R {
        let i = page as usize;
        let r = {
            let mut st = lock(&self.state);
            let r = f(&mut st, i);
            st.generation[i] += 1;
            r
        };
        self.cpus.unpark_all();
        r
    }
}

impl Mmu for SimMmu {
    fn page_size(&self) -> usize {
        self.memory.page_size()
    }

    fn pages(&self) -> u64 {
        self.memory.frames() as u64
    }

    fn bytes(&self, page: u64) -> *mut u8 {
        self.memory.frame_ptr(page as u32)
    }

    fn track(&self, page: u64) -> &AccessTrack {
        &self.tracks[page as usize]
    }

    fn map(&self, page: u64, writable: bool) -> Mapped {
        self.change(page, |st, i| {
            match st.pte[i] {
                // An answer: the waiting CPUs wake (and fault again if they still cannot go).
                Pte::ReadOnly | Pte::Writable | Pte::Poisoned => {
                    st.waiting[i] = false;
                    return Mapped::Exists;
                }
                Pte::Absent => {}
            }
            st.pte[i] = if writable {
                Pte::Writable
            } else {
                Pte::ReadOnly
            };
            st.waiting[i] = false;
            Mapped::Done
        })
    }

    fn protect(&self, page: u64, wp: bool) {
        self.change(page, |st, i| match (st.pte[i], wp) {
            (Pte::Writable, true) => st.pte[i] = Pte::ReadOnly,
            (_, false) => {
                // Clearing the protection wakes the page's waiters whatever its entry (the
                // kernel's WRITEPROTECT without DONTWAKE): they fault again if they must.
                if st.pte[i] == Pte::ReadOnly {
                    st.pte[i] = Pte::Writable;
                }
                st.waiting[i] = false;
            }
            _ => {}
        })
    }

    fn zap(&self, page: u64) {
        self.change(page, |st, i| st.pte[i] = Pte::Absent)
    }

    fn free(&self, page: u64) {
        self.change(page, |st, i| {
            // A punch keeps a poison marker (the probe
            // `punch_hole_keeps_a_poison_marker_so_the_next_access_still_sigbuses`).
            if st.pte[i] != Pte::Poisoned {
                st.pte[i] = Pte::Absent;
            }
            let _t = self.tracks[i].exclusive();
            // SAFETY: the caller gives the page up: no access of its own is in progress, and
            // none of a CPU's (the entry is absent, under the lock).
            unsafe { std::ptr::write_bytes(self.bytes(page), 0, self.page_size()) };
        })
    }

    fn wake(&self, page: u64) {
        self.change(page, |st, i| st.waiting[i] = false)
    }

    fn poison(&self, page: u64) {
        self.change(page, |st, i| {
            if st.pte[i] == Pte::Absent {
                st.pte[i] = Pte::Poisoned;
            }
            st.waiting[i] = false;
        })
    }

    fn unmap(&self) {
        {
            let mut st = lock(&self.state);
            st.unmapped = true;
            for p in st.pte.iter_mut() {
                *p = Pte::Absent;
            }
        }
        self.cpus.unpark_all();
        self.handlers.unpark_all();
    }

    fn ended(&self) -> bool {
        lock(&self.state).unmapped
    }

    fn next_fault(&self, block: bool) -> Option<Fault> {
        loop {
            {
                let mut st = lock(&self.state);
                if let Some(f) = st.queue.pop_front() {
                    return Some(f);
                }
                if st.unmapped || !block {
                    return None;
                }
            }
            self.handlers.park(None, || {
                let st = lock(&self.state);
                st.queue.is_empty() && !st.unmapped
            });
        }
    }
}
