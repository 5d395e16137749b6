//! The object handle: [`PageMapper`], which every client of a memory object shares, and the
//! object's internals: `mapper` (`MapperShared`: the fault path, write-back, close),
//! `access_map` (the AccessMap of page entries), `guard` (read and write guards), `layer` (the
//! object's place in a chain of copies, and the chain's operations it calls), `memory` (a mapped
//! object's own page memory) and `reclaim`
//! (the object layer's half of reclaim: write-back of the pool's victims, asking holders).

pub(crate) mod access_map;
pub(crate) mod future;
pub(crate) mod guard;
pub(crate) mod layer;
pub(crate) mod mapper;
pub(crate) mod memory;
pub(crate) mod reclaim;

use crate::sync::atomic::Ordering;
use crate::sync::Arc;
use crate::{ArbitrationCensus, Error, ReadGuard, Result, WriteGuard};
use mapper::{Bound, MapperShared, Want};
use std::mem::ManuallyDrop;
use std::time::Duration;

/// A memory object: the handle its clients share. Clone it to give another client access; the
/// object is closed (written back, frames released) by [`PageMapper::close`] or when the last
/// handle drops.
pub struct PageMapper {
    pub(crate) shared: ManuallyDrop<Arc<MapperShared>>,
}

impl std::fmt::Debug for PageMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageMapper")
            .field("limit", &self.limit())
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

impl Clone for PageMapper {
    fn clone(&self) -> Self {
        // Relaxed: a handle count, like Arc's increment.
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for PageMapper {
    fn drop(&mut self) {
        let below = self.let_go();
        let_go_chain(below);
    }
}

/// Lets go of the handles on a chain of frozen layers, one after the other: each may be the
/// last handle on its layer, whose close hands over the handle on the layer below. A loop, not
/// a recursion through `drop`, however deep the chain.
pub(crate) fn let_go_chain(mut next: Option<PageMapper>) {
    while let Some(h) = next {
        let mut h = ManuallyDrop::new(h);
        next = h.let_go();
    }
}

impl PageMapper {
    /// Gives this handle up (its `Drop`, less dropping what its object's close hands over):
    /// returns the handle on the frozen layer below that the close took, if this was the last
    /// handle. The handle must not be used or dropped after.
    fn let_go(&mut self) -> Option<PageMapper> {
        let mut below = None;
        // AcqRel: the last handle's drop sees every other handle's operations (as Arc's drop).
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Best effort: on a failed write-back the pages stay resident and dirty, owned by the
            // object (frames keep it alive), and a later reclaim retries writing them back.
            below = self.shared.close_keeping_backing().1;
        }
        // SAFETY: called once per handle, by its drop or by `let_go_chain`, which then forgets
        // the handle.
        unsafe { ManuallyDrop::drop(&mut self.shared) };
        below
    }

    /// The first handle on a new object (whose handle count starts at one).
    pub(crate) fn from_shared(shared: Arc<MapperShared>) -> Self {
        Self {
            shared: ManuallyDrop::new(shared),
        }
    }

    /// The object's id within its pool (as the reverse map reports it).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The object's limit in bytes.
    pub fn limit(&self) -> u64 {
        self.shared.limit()
    }

    /// Whether page `page` is in a frame now (a racy snapshot: one load of its entry; for
    /// statistics, such as telling hits from misses in a simulator).
    pub fn is_resident(&self, page: u64) -> bool {
        self.shared.map.find(page).frame().is_some()
    }

    /// The object's counters since it was opened: hits and misses, fills, evictions and
    /// write-backs of its pages (with their errors and latency histograms), grant waits and
    /// revocations of its clients. A few relaxed loads, no lock; counts made by other threads
    /// are seen as soon as their atomics are (a hit costs no locked instruction: see
    /// [`ObjectStats`](crate::ObjectStats)). Copies ([`PageMapper::copy`]) count their own.
    pub fn stats(&self) -> crate::ObjectStats {
        self.shared.stats.snapshot()
    }

    /// Reports this object's counters ([`PageMapper::stats`]) through the [`metrics`] crate's
    /// facade, to whatever recorder the program installed, as counters labelled with the
    /// object's id (`object`, unique within its pool) and its pool's number (`pool`): `pagecore_object_hits_total`, `_misses_total`, `_fills_total`,
    /// `_fill_errors_total`, `_evictions_total`, `_writebacks_total`, `_writeback_errors_total`,
    /// `_grant_waits_total`, `_revocations_total`. Call it for the objects worth a series of their
    /// own, as often as the exporter scrapes (the pool-wide sums are
    /// [`Pages::report_metrics`](crate::Pages::report_metrics)'s). The `metrics` feature.
    #[cfg(feature = "metrics")]
    pub fn report_metrics(&self) {
        crate::stats::report_object(self.shared.pages.pool_id(), self.shared.id, &self.stats());
    }

    /// Number of pages the object can have.
    pub fn page_count(&self) -> u64 {
        self.shared.map.pages()
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.shared.pages.page_size()
    }

    /// Shared access to page `page` (faulting it in if needed).
    #[inline(always)]
    pub fn read(&self, page: u64) -> Result<ReadGuard<'_>> {
        let (frame, slot) = MapperShared::pin(&self.shared, page, Want::Read)?;
        Ok(self.read_guard(page, frame, slot))
    }

    /// As [`PageMapper::read`], waiting at most `timeout` (instead of the pool's
    /// [`wait_bound`](crate::PagesBuilder::wait_bound)) for a frame, for a writer or a reclaim of
    /// the page to finish, for another fault's fill of the page, or for a copy: then it fails with
    /// [`Error::Busy`] (the page stayed taken, or being filled) or [`Error::Exhausted`] (no frame
    /// came free for its own fill). Giving up interrupts nothing: a fill it joined goes on for the
    /// faults that stay, and an accessor's I/O this call started itself runs to its end first
    /// (the bound is on waits, not on I/O).
    ///
    /// ```
    /// use pagecore::{Error, MemoryAccessor, Pages};
    /// use std::time::Duration;
    /// let pages = Pages::builder().page_size(64).frames(1).build()?; // a 10 s pool bound
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 4)?;
    /// let w = obj.write(0)?;                                   // holds the only frame
    /// assert!(matches!(obj.read_timeout(0, Duration::from_millis(5)), Err(Error::Busy { page: 0 })));
    /// assert!(matches!(obj.read_timeout(1, Duration::from_millis(5)), Err(Error::Exhausted { .. })));
    /// drop(w);
    /// assert_eq!(obj.read_timeout(1, Duration::from_millis(5))?[0], 0);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn read_timeout(&self, page: u64, timeout: Duration) -> Result<ReadGuard<'_>> {
        let bound = Bound::after(timeout);
        let (frame, slot) = MapperShared::pin_bounded(&self.shared, page, Want::Read, bound)?;
        Ok(self.read_guard(page, frame, slot))
    }

    /// As [`PageMapper::write`], waiting at most `timeout` (see [`PageMapper::read_timeout`]).
    pub fn write_timeout(&self, page: u64, timeout: Duration) -> Result<WriteGuard<'_>> {
        let bound = Bound::after(timeout);
        let (frame, slot) = MapperShared::pin_bounded(&self.shared, page, Want::Write, bound)?;
        Ok(self.write_guard(page, frame, slot))
    }

    /// Exclusive access to page `page` (faulting it in if needed); marks it dirty.
    pub fn write(&self, page: u64) -> Result<WriteGuard<'_>> {
        let (frame, slot) = MapperShared::pin(&self.shared, page, Want::Write)?;
        Ok(self.write_guard(page, frame, slot))
    }

    /// The guard of a read pin on `page` (frame `frame`, entry `slot`) the caller took.
    // Always inlined: `read`/`write` are, into the user's crate, and a guard returned through
    // memory by an outlined call stalls the hit (see `MapperShared::pin`).
    #[inline(always)]
    fn read_guard<'a>(
        &'a self,
        page: u64,
        frame: u32,
        slot: &'a crate::sync::atomic::AtomicU64,
    ) -> ReadGuard<'a> {
        ReadGuard {
            pages: &self.shared.pages,
            slot,
            frame,
            page,
            bytes: self.shared.held_ptr(page, frame, false),
            track: ManuallyDrop::new(self.shared.page_track(page, frame).shared()),
        }
    }

    /// The guard of the writer bit on `page` (frame `frame`, entry `slot`) the caller took.
    // Always inlined: `read`/`write` are, into the user's crate, and a guard returned through
    // memory by an outlined call stalls the hit (see `MapperShared::pin`).
    #[inline(always)]
    fn write_guard<'a>(
        &'a self,
        page: u64,
        frame: u32,
        slot: &'a crate::sync::atomic::AtomicU64,
    ) -> WriteGuard<'a> {
        WriteGuard {
            pages: &self.shared.pages,
            slot,
            frame,
            page,
            bytes: self.shared.held_ptr(page, frame, true),
            track: ManuallyDrop::new(self.shared.page_track(page, frame).exclusive()),
        }
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.limit() => Ok(()),
            _ => Err(Error::OutOfRange {
                offset,
                limit: self.limit(),
            }),
        }
    }

    /// Reads `buf.len()` bytes at byte `offset`, across pages.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        let ps = self.page_size() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (page, within) = (pos / ps, (pos % ps) as usize);
            let n = (ps as usize - within).min(buf.len() - done);
            let g = self.read(page)?;
            buf[done..done + n].copy_from_slice(&g[within..within + n]);
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at byte `offset`, across pages.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len())?;
        let ps = self.page_size() as u64;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (page, within) = (pos / ps, (pos % ps) as usize);
            let n = (ps as usize - within).min(data.len() - done);
            let mut g = self.write(page)?;
            g[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Writes back every dirty page and syncs the backing store. Reports the first failure, or a
    /// write-back failure an earlier reclaim recorded (once).
    pub fn sync(&self) -> Result<()> {
        self.shared.sync()
    }

    /// Closes the object for every handle: writes back and frees its frames. Later operations
    /// fail with [`Error::Closed`]. If a write-back fails the object stays open, its pages
    /// resident and dirty, and the error is returned: this handle (or any other) may call
    /// `close` again once the cause is mended. Closing a closed object succeeds at once.
    ///
    /// ```
    /// use pagecore::{MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(64).frames(4).build()?;
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
    /// obj.write(0)?[0] = 1;
    /// obj.close()?;
    /// assert!(obj.read(0).is_err());
    /// obj.close()?; // already closed
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.shared.close()
    }

    /// Whether the object is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The unusual write-back error recorded on `page`, as an [`Error::WriteBack`], if any.
    ///
    /// A write-back that fails with EIO, ENOSPC or EDQUOT (the expected errors) leaves the page
    /// resident and dirty, to be retried by reclaim, and is reported by [`PageMapper::sync`]. Any
    /// other error (EBADF, EFBIG, an accessor's own error...) would most likely fail again, so it
    /// is also recorded on the page: reclaim then skips the page (it stays resident and dirty;
    /// reads, writes and grants go on as before), this method reports it, and the next write-back
    /// that succeeds (`sync` or `close`) clears it. Pages that failed the same way share one
    /// out-of-line record ([`ArbitrationCensus::error_pages`] counts them).
    ///
    /// ```
    /// use pagecore::{Accessor, Pages};
    /// use std::io;
    ///
    /// /// A store whose write-backs fail with EBADF (an unusual error).
    /// struct Broken;
    /// impl Accessor for Broken {
    ///     fn fill(&self, _page: u64, buf: &mut [u8]) -> io::Result<()> { buf.fill(0); Ok(()) }
    ///     fn flush(&self, _page: u64, _buf: &[u8]) -> io::Result<()> {
    ///         Err(io::Error::from_raw_os_error(9))
    ///     }
    /// }
    ///
    /// let pages = Pages::builder().page_size(4096).frames(4).build()?;
    /// let obj = pages.open(Broken, 8 * 4096)?;
    /// obj.write(0)?[0] = 1;
    /// assert!(obj.sync().is_err());                 // EBADF: recorded on page 0
    /// assert!(obj.page_error(0)?.is_some());
    /// assert_eq!(obj.read(0)?[0], 1);               // nothing lost; reclaim skips the page
    /// assert_eq!(obj.arbitration().unwrap().error_pages, 1);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn page_error(&self, page: u64) -> Result<Option<Error>> {
        self.shared.page_error(page)
    }

    /// Checks the arbitration invariants (I9-I12, SPEC.md) on every page and returns a census.
    /// Call it when no client request, grant release or guard of this object runs: an `Err`
    /// then is a pagecore bug. While they run, it may catch a page between two steps that are
    /// one transition to the others (a lock-free release, then the hand-off to the head waiter
    /// under the shard lock) and report that moment as an I10 violation, and its counts are a
    /// snapshot of moving state.
    pub fn arbitration(&self) -> Result<ArbitrationCensus> {
        let map = &self.shared.map;
        let entries = map
            .entries()
            .filter_map(|(page, _)| map.slot(page).map(|slot| (page, slot)));
        self.shared.arb.check(entries).map_err(Error::Invariant)
    }
}
