//! Arbitration state of a page: holders, waiters and revocations asked ([`PageState`]), the
//! per-page error records (`PageError`), and the object's table of interned out-of-line
//! records ([`Records`]).

use super::*;

/// The arbitration state of one page, decoded (inline and out-of-line forms alike). Also the
/// interned out-of-line record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PageState {
    /// ACCESSLIST: (client id, access), sorted by client id.
    pub(super) holders: Vec<(u32, Access)>,
    /// WAITLIST, FIFO: (client id, wanted access). A client appears at most once; a holder
    /// appears only as a reader waiting to upgrade, at the head.
    pub(super) waiters: VecDeque<(u32, Access)>,
    /// Holders asked to revoke their current access, sorted.
    pub(super) asked: Vec<u32>,
    /// An unusual write-back error recorded on the page (always out of line).
    pub(super) error: Option<PageError>,
}

/// An unusual write-back error recorded on a page: seed 000's "oddball condition", an error other
/// than the expected EIO, ENOSPC and EDQUOT (see `is_expected`). The expected ones leave the
/// page dirty for reclaim to retry; an unusual one (EBADF, EFBIG, EROFS, an accessor's own error,
/// a panicking accessor...) would most likely fail again, so it escapes the page to an
/// out-of-line record: reclaim then skips the page (`ARB_SLOW`), [`crate::PageMapper::page_error`]
/// reports it, and the next successful write-back (`sync`, `close`) clears it. Pages that failed
/// the same way share one interned record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PageError {
    kind: std::io::ErrorKind,
    os: Option<i32>,
    text: String,
}

impl PageError {
    /// The record of `e`, or `None` if `e` is one of the expected errors.
    pub(crate) fn of(e: &std::io::Error) -> Option<Self> {
        (!is_expected(e)).then(|| Self {
            kind: e.kind(),
            os: e.raw_os_error(),
            text: e.to_string(),
        })
    }

    /// An `io::Error` like the recorded one (same OS code, or same kind and message).
    pub(super) fn to_io(&self) -> std::io::Error {
        match self.os {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.kind, self.text.clone()),
        }
    }
}

/// Whether a write-back error is one of the expected ones (seed 000): EIO, ENOSPC, EDQUOT.
pub(crate) fn is_expected(e: &std::io::Error) -> bool {
    const EIO: i32 = 5;
    const ENOSPC: i32 = 28;
    #[cfg(target_os = "linux")]
    const EDQUOT: i32 = 122;
    #[cfg(not(target_os = "linux"))]
    const EDQUOT: i32 = 69;
    use std::io::ErrorKind;
    matches!(e.raw_os_error(), Some(EIO | ENOSPC | EDQUOT))
        || matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

impl PageState {
    pub(super) fn holder(&self, c: u32) -> Option<Access> {
        self.holders
            .binary_search_by_key(&c, |h| h.0)
            .ok()
            .map(|i| self.holders[i].1)
    }

    pub(super) fn set_holder(&mut self, c: u32, a: Access) {
        match self.holders.binary_search_by_key(&c, |h| h.0) {
            Ok(i) => self.holders[i].1 = a,
            Err(i) => self.holders.insert(i, (c, a)),
        }
        self.unask(c);
    }

    pub(super) fn remove_holder(&mut self, c: u32) -> Option<Access> {
        let i = self.holders.binary_search_by_key(&c, |h| h.0).ok()?;
        self.unask(c);
        Some(self.holders.remove(i).1)
    }

    fn unask(&mut self, c: u32) {
        if let Ok(i) = self.asked.binary_search(&c) {
            self.asked.remove(i);
        }
    }

    pub(super) fn waiting(&self, c: u32) -> Option<usize> {
        self.waiters.iter().position(|w| w.0 == c)
    }

    pub(super) fn has_writer(&self) -> bool {
        self.holders.iter().any(|h| h.1 == Access::Write)
    }

    fn others_hold(&self, c: u32) -> bool {
        self.holders.iter().any(|h| h.0 != c)
    }

    /// Only holders can have been asked.
    pub(super) fn normalize(&mut self) {
        let holders = &self.holders;
        self.asked
            .retain(|c| holders.binary_search_by_key(c, |h| h.0).is_ok());
    }

    pub(super) fn fits_inline(&self) -> bool {
        let inline = |c: &u32| *c < EntryWord::INLINE_CLIENTS;
        self.waiters.len() <= AccessWord::WAIT_SLOTS
            && self.holders.iter().all(|h| inline(&h.0))
            && self.waiters.iter().all(|w| inline(&w.0))
            && self.asked.iter().all(inline)
            && self.error.is_none()
    }

    /// Grants waiters from the head of the wait list, as far as the rules and the core state of
    /// the entry `e` allow (see the module doc). Returns whether the head is blocked only by the
    /// core (plain guards or a reclaim).
    pub(super) fn grant_ready(&mut self, e: EntryWord) -> bool {
        let resident = e.frame().is_some() && !e.reclaiming();
        while let Some(&(c, want)) = self.waiters.front() {
            let (arbitration_ok, core_ok) = match want {
                // A shared copy-on-write frame is never written: the waiter breaks it first.
                Access::Write => (
                    !self.others_hold(c),
                    resident && e.pins() == 0 && !e.writer() && !e.cow(),
                ),
                Access::Read => (!self.has_writer(), resident && !e.writer()),
            };
            if !arbitration_ok {
                return false;
            }
            if !core_ok {
                return true;
            }
            self.waiters.pop_front();
            self.set_holder(c, want);
            if want == Access::Write {
                return false;
            }
        }
        false
    }

    /// Whether `c` would be granted now if plain guards and reclaim did not stand in the way.
    pub(super) fn ready_but_for_core(&self, c: u32) -> bool {
        let mut writer = self.has_writer();
        for (i, &(w, want)) in self.waiters.iter().enumerate() {
            let ok = match want {
                Access::Write => i == 0 && !self.others_hold(w),
                Access::Read => !writer,
            };
            if !ok {
                return false;
            }
            if w == c {
                return true;
            }
            writer |= want == Access::Write;
        }
        false
    }

    /// Asks (marks, and returns with what to ask) every holder that stands in the way of a
    /// waiting request and has not been asked yet: release for a waiting writer, downgrade for a
    /// waiting reader behind a writer. Each holder is asked once per grant it holds (a downgrade
    /// is a new grant), whoever caused the conflict: the request that queued, or a hand-off that
    /// made a new holder while others still wait.
    pub(super) fn ask_in_the_way(&mut self) -> Vec<(u32, Revocation)> {
        let mut asks: Vec<(u32, Revocation)> = Vec::new();
        for &(c, want) in &self.waiters {
            for &(h, held) in &self.holders {
                let ask = match (want, held) {
                    _ if h == c => continue,
                    (Access::Write, _) => Revocation::Release,
                    (Access::Read, Access::Write) => Revocation::Downgrade,
                    (Access::Read, Access::Read) => continue,
                };
                if self.asked.binary_search(&h).is_err() && asks.iter().all(|a| a.0 != h) {
                    asks.push((h, ask));
                }
            }
        }
        for &(h, _) in &asks {
            if let Err(i) = self.asked.binary_search(&h) {
                self.asked.insert(i, h);
            }
        }
        asks
    }

    /// Checks the page invariants (I9, I10) on a quiescent or locked state.
    pub(super) fn check(&self, page: u64, e: EntryWord) -> std::result::Result<(), String> {
        let writers = self.holders.iter().filter(|h| h.1 == Access::Write).count();
        if writers > 1 || (writers == 1 && self.holders.len() > 1) {
            return Err(format!(
                "page {page}: I9 violated: holders {:?}",
                self.holders
            ));
        }
        if writers == 1 && (e.pins() != 0 || e.writer()) {
            return Err(format!(
                "page {page}: I9 violated: client writer beside {e:?}"
            ));
        }
        if !self.holders.is_empty() && e.writer() {
            return Err(format!(
                "page {page}: I9 violated: plain writer beside holders"
            ));
        }
        // I10: the head is blocked, by the arbitration rules or only by the core.
        let mut probe = self.clone();
        probe.grant_ready(e);
        if probe != *self {
            return Err(format!(
                "page {page}: I10 violated: grantable head in {self:?}"
            ));
        }
        for (i, w) in self.waiters.iter().enumerate() {
            if self.waiters.iter().skip(i + 1).any(|v| v.0 == w.0) {
                return Err(format!("page {page}: client {} waits twice", w.0));
            }
            if self.holder(w.0).is_some() && (i != 0 || w.1 != Access::Write) {
                return Err(format!(
                    "page {page}: holder {} waits other than to upgrade",
                    w.0
                ));
            }
        }
        if self.asked.iter().any(|c| self.holder(*c).is_none()) {
            return Err(format!(
                "page {page}: asked set {:?} names a non-holder",
                self.asked
            ));
        }
        Ok(())
    }
}

/// Interned out-of-line records: pages in the same state share one; freed with its last page.
#[derive(Debug, Default)]
pub(crate) struct Records {
    by_state: FxHashMap<PageState, u32>,
    pub(super) slots: Vec<Option<(PageState, u64)>>,
    free: Vec<u32>,
    /// Records ever created and freed (for tests: each freed exactly once).
    pub(super) created: u64,
    pub(super) freed: u64,
}

impl Records {
    pub(super) fn intern(&mut self, st: &PageState) -> u32 {
        if let Some(&id) = self.by_state.get(st) {
            if let Some(Some((_, refs))) = self.slots.get_mut(id as usize) {
                *refs += 1;
            }
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[id as usize] = Some((st.clone(), 1));
        self.by_state.insert(st.clone(), id);
        self.created += 1;
        id
    }

    pub(super) fn get(&self, id: u32) -> Option<&PageState> {
        self.slots.get(id as usize)?.as_ref().map(|s| &s.0)
    }

    pub(super) fn release(&mut self, id: u32) -> Result<()> {
        let Some(Some((st, refs))) = self.slots.get_mut(id as usize) else {
            return Err(Error::Invariant(format!(
                "record {id} released but not live"
            )));
        };
        *refs -= 1;
        if *refs == 0 {
            let st = st.clone();
            self.by_state.remove(&st);
            self.slots[id as usize] = None;
            self.free.push(id);
            self.freed += 1;
        }
        Ok(())
    }

    pub(super) fn bytes(&self) -> usize {
        let per = std::mem::size_of::<PageState>() + std::mem::size_of::<(u32, u64)>() * 2;
        self.slots
            .iter()
            .flatten()
            .map(|(st, _)| {
                // Stored twice (slot and key).
                2 * (per
                    + (st.holders.capacity() + st.waiters.capacity()) * 8
                    + st.asked.capacity() * 4)
            })
            .sum()
    }
}
