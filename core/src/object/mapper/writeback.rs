//! Write-back of an object's pages: one pinned page (`write_back_pinned`, keeping the page's
//! unusual-error record up to date), `sync` (every dirty page, then the accessor), `close` (every
//! page taken and evicted, written back first if the object is persistent), and the retry of a
//! page whose error was recorded. Reclaim's write-back of a victim is `object::reclaim`'s.
//!
//! Orderings: none of their own. The read pin a write-back holds (Acquire on the pin, Release on
//! the unpin) orders the bytes it reads; clearing `DIRTY` is `PagesShared::clear_dirty`'s Release.

use super::*;

impl MapperShared {
    /// Writes `page` (resident in `f`, read-pinned by the caller) back if it is dirty, and keeps
    /// its unusual-error record up to date: cleared by a success (or a clean page), set by an
    /// unusual failure.
    pub(crate) fn write_back_pinned(&self, page: u64, slot: &AtomicU64, f: u32) -> Result<()> {
        let pages = &*self.pages;
        // Dirty is re-read after pinning: a writer may have set it before our pin.
        if !EntryWord(slot.load(Ordering::Acquire)).dirty() {
            return self.arb.clear_error(pages, slot, page);
        }
        if let Some(m) = &self.memory {
            // No store through the mapping completes from here until a write fault, which waits
            // for our pin and sets DIRTY again (IM1).
            m.quiesce(page, false);
        }
        let started = crate::sync::Instant::now();
        let r = {
            let _t = self.page_track(page, f).shared();
            // SAFETY: our read pin excludes writers, fillers and reclaimers (I4, I9), and the
            // quiesce above stores through a mapping (IM1).
            let buf =
                unsafe { std::slice::from_raw_parts(self.page_ptr(page, f), pages.page_size()) };
            crate::backing::accessor::guarded("flush", || self.accessor.flush(page, buf))
        };
        self.stats.writeback_took(started);
        match r {
            Ok(()) => {
                pages.counters.writebacks.incr();
                self.stats.writebacks.incr();
                pages.clear_dirty(slot);
                self.arb.clear_error(pages, slot, page)
            }
            Err(e) => {
                pages.counters.writeback_errors.incr();
                self.stats.writeback_errors.incr();
                if let Some(pe) = crate::arbitration::PageError::of(&e) {
                    self.arb.record_error(pages, slot, page, f, pe)?;
                }
                Err(Error::WriteBack {
                    object: self.id,
                    page,
                    source: ShareArc::new(e),
                })
            }
        }
    }

    /// Writes back a page that close cannot take only because of its unusual-error record
    /// (nothing pins or holds it). `Ok(true)`: written back and cleared, take it again;
    /// `Ok(false)`: it has no error record (wait for it as for any busy page).
    fn retry_errored(&self, page: u64, slot: &AtomicU64, seen: EntryWord) -> Result<bool> {
        let pages = &*self.pages;
        if !seen.arb_slow() || !seen.unpinned() || seen.reclaiming() {
            return Ok(false);
        }
        if self.arb.page_error(slot, page)?.is_none() {
            return Ok(false);
        }
        if !self.accessor.persistent() {
            // Anonymous: close discards the content, so the failed page-out no longer matters.
            self.arb.clear_error(pages, slot, page)?;
            return Ok(true);
        }
        let Ok(pinned) = pages.try_pin_read(slot, seen) else {
            return Ok(true); // changed meanwhile: look again
        };
        let f = pinned.frame().unwrap_or(0);
        let r = self.write_back_pinned(page, slot, f);
        pages.unpin_read(slot);
        r.map(|()| true)
    }

    /// The unusual write-back error recorded on `page`, if any (see [`crate::PageMapper::page_error`]).
    pub(crate) fn page_error(&self, page: u64) -> Result<Option<Error>> {
        self.check_page(page)?;
        let Some(slot) = self.map.slot(page) else {
            return Ok(None);
        };
        Ok(self.arb.page_error(slot, page)?.map(|e| Error::WriteBack {
            object: self.id,
            page,
            source: ShareArc::new(e),
        }))
    }

    /// Writes back every dirty page, then syncs the accessor. Reports the first failure, or else a
    /// write-back error recorded by an earlier reclaim (once, like fsync's error reporting).
    pub(crate) fn sync(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if !self.accessor.persistent() {
            // Anonymous: nothing outlives the object, nothing to write; report a recorded
            // page-out failure (a full swap area) once.
            return self.take_error().map_or(Ok(()), Err);
        }
        let pages = &*self.pages;
        let mut first: Option<Error> = None;
        for (page, seen) in self.map.entries() {
            let Some(slot) = self.map.slot(page) else {
                continue;
            };
            let deadline = pages.deadline();
            let mut seen = seen;
            loop {
                match pages.try_pin_read(slot, seen) {
                    Ok(pinned) => {
                        let f = pinned.frame().unwrap_or(0);
                        if let Err(e) = self.write_back_pinned(page, slot, f) {
                            first.get_or_insert(e);
                        }
                        pages.unpin_read(slot);
                        break;
                    }
                    Err(w) if w.frame().is_none() => break, // reclaimed: written back already
                    Err(w) => {
                        if pages.wait_entry(slot, w, deadline) == Parked::TimedOut {
                            first.get_or_insert(Error::Busy { page });
                            break;
                        }
                        seen = EntryWord(slot.load(Ordering::Relaxed));
                    }
                }
            }
        }
        if let Err(e) = crate::backing::accessor::guarded("sync_all", || self.accessor.sync_all()) {
            first.get_or_insert(Error::Sync(ShareArc::new(e)));
        }
        let recorded = self.take_error();
        match first.or(recorded) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Closes the object: refuses new faults, writes back and frees every frame. On a failed
    /// write-back the object is reopened (its pages stay resident and dirty) and the error
    /// returned, so nothing written is lost and the caller can retry.
    pub(crate) fn close(&self) -> Result<()> {
        let (r, below) = self.close_keeping_backing();
        crate::object::let_go_chain(below);
        r
    }

    /// As [`MapperShared::close`], but hands the handle on the frozen layer below (which a
    /// successful close takes away) to the caller instead of dropping it here: dropping it may
    /// close that layer, and so on down the chain, so the caller lets go of a chain in a loop
    /// (`let_go_chain`), never by recursion (a chain of copies may be 20,000 layers deep).
    pub(crate) fn close_keeping_backing(&self) -> (Result<()>, Option<crate::PageMapper>) {
        // A copy of this object and its close do not overlap (the copy moves its pages).
        let copy_lock = self.layer.copy_guard();
        if self.closed.swap(true, Ordering::SeqCst) {
            return (Ok(()), None);
        }
        // Barrier: a filler that publishes after this sees `closed` (it checks under the shard
        // lock); one that published before has its entry in the map for the scan below.
        for shard in self.fills.iter() {
            drop(lock(shard));
        }
        let pages = &*self.pages;
        let persistent = self.accessor.persistent();
        let mut first: Option<Error> = None;
        for (page, _) in self.map.entries() {
            let Some(slot) = self.map.slot(page) else {
                continue;
            };
            let deadline = pages.deadline();
            loop {
                match pages.take_for_close(slot, self, page) {
                    Take::Gone | Take::Unmapped => break,
                    Take::Taken(v) => {
                        // Not persistent (anonymous): discard instead of paging out.
                        let v = if persistent { v } else { v.discard() };
                        match crate::object::reclaim::evict(pages, v) {
                            Ok(f) => pages.free(f),
                            Err(e) => {
                                first.get_or_insert(e);
                            }
                        }
                        break;
                    }
                    Take::Busy(w) => {
                        match self.retry_errored(page, slot, w) {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(e) => {
                                first.get_or_insert(e);
                                break;
                            }
                        }
                        if pages.wait_entry(slot, w, deadline) == Parked::TimedOut {
                            first.get_or_insert(Error::Busy { page });
                            break;
                        }
                    }
                }
            }
        }
        if first.is_none() {
            if let Err(e) =
                crate::backing::accessor::guarded("sync_all", || self.accessor.sync_all())
            {
                first = Some(Error::Sync(ShareArc::new(e)));
            }
        }
        let recorded = self.take_error();
        match first {
            Some(e) => {
                self.closed.store(false, Ordering::SeqCst);
                (Err(e), None)
            }
            None => {
                // Closed for good: the frozen layer below is no longer read through. Dropped
                // by the caller with no lock held (it may close the layer, which takes the
                // lists lock).
                let below = self.layer.take_backing();
                drop(copy_lock);
                // An awaited fault of this object waiting for a frame has no deadline: wake it,
                // so it sees the object closed rather than wait for a frame it no longer needs.
                pages.wake_obtainers();
                let r = match recorded {
                    // Data is written back now, but an earlier write-back failed: report it once.
                    Some(e) => Err(e),
                    None => Ok(()),
                };
                (r, below)
            }
        }
    }
}
