//! PageMapper: one per memory object, shared by all its clients. Serves faults (find -> reserve,
//! or obtain -> fill -> record -> queue), writes dirty pages back (`sync`), and closes the object.
//!
//! # Fault path
//!
//! 1. **find**: the AccessMap entry for the page (lock-free).
//! 2. **reserve**: a CAS on that entry adds a read pin (`PagesShared::try_pin_read`). On a hit
//!    this is the whole path: one load and one CAS on the entry, no lock.
//! 3. If the page is busy (a writer, readers for a write, or a reclaim writing it back), park on
//!    the entry (`PagesShared::wait_entry`) and retry.
//! 4. **miss**: under the page's fill shard lock, re-check the map; join the page's in-flight fill
//!    if there is one (S2: the filler pre-pins one read pin per waiter, so every waiter gets the
//!    same frame and no reclaim can slip in between); otherwise register a fill record, drop the
//!    lock, **obtain** a frame, **fill** it through the Accessor, then under the shard lock
//!    **record** it in the map and **queue** it (`PagesShared::make_resident`), remove the fill
//!    record and wake the waiters. A failed fill is handed to every waiter and records nothing.
//!
//! The shard lock is only held for table updates, never across I/O. Lock order:
//! fill shard -> lists; parkers' locks are innermost (their `prepare` closures take only the
//! lists lock, under the pool parker).

use crate::access_map::AccessMap;
use crate::accessor::Accessor;
use crate::error::{Error, Result};
use crate::pack::EntryWord;
use crate::pages::{Owner, PagesShared, Take};
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{lock, Arc, Mutex, Parked, Parker, ShareArc};
use std::collections::HashMap;

#[cfg(pagecore_loom)]
const FILL_SHARDS: usize = 1;
#[cfg(not(pagecore_loom))]
const FILL_SHARDS: usize = 16;

/// One in-flight fill, shared by its filler and the faults that joined it.
struct Inflight {
    /// The frame (with one read pin per joined fault), or the error every joined fault gets.
    outcome: Mutex<Option<Result<u32>>>,
}

/// Per-page fill records of one shard: the record and how many faults joined it.
type FillTable = HashMap<u64, (Arc<Inflight>, u64)>;

/// The shared state of one memory object.
pub(crate) struct MapperShared {
    pub(crate) pages: Arc<PagesShared>,
    pub(crate) map: AccessMap,
    pub(crate) accessor: Box<dyn Accessor>,
    limit: u64,
    closed: AtomicBool,
    fills: Box<[Mutex<FillTable>]>,
    fill_park: Parker,
    error: Mutex<Option<Error>>,
    pub(crate) handles: AtomicUsize,
    /// Which clients may read or write each page.
    pub(crate) arb: crate::arbitration::Arbiter,
}

/// Access wanted by a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Read,
    Write,
}

impl MapperShared {
    pub(crate) fn new(pages: Arc<PagesShared>, accessor: Box<dyn Accessor>, limit: u64) -> Self {
        let page_size = pages.page_size() as u64;
        Self {
            map: AccessMap::new(limit.div_ceil(page_size)),
            pages,
            accessor,
            limit,
            closed: AtomicBool::new(false),
            fills: (0..FILL_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            fill_park: Parker::new(),
            error: Mutex::new(None),
            handles: AtomicUsize::new(1),
            arb: crate::arbitration::Arbiter::new(),
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with close's SeqCst store; only a fast refusal, re-checked under locks.
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn record_error(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    pub(crate) fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }

    /// Checks a page index against the limit.
    pub(crate) fn check_page(&self, page: u64) -> Result<()> {
        if page < self.map.pages() {
            Ok(())
        } else {
            Err(Error::OutOfRange {
                offset: page.saturating_mul(self.pages.page_size() as u64),
                limit: self.limit,
            })
        }
    }

    /// Pins `page` for `want`, faulting it in if needed. Returns the frame and the page's entry
    /// slot; the caller owns one read pin (Read) or the writer bit (Write) on that entry.
    ///
    /// Inlined hit path (a resident page, a read, an open object): one CAS; everything else goes
    /// out of line, so the guard is built in the caller's frame rather than returned through
    /// memory by an outlined call (which measurably stalls the unpin's locked instruction).
    #[inline(always)]
    pub(crate) fn pin(this: &Arc<Self>, page: u64, want: Want) -> Result<(u32, &AtomicU64)> {
        if want == Want::Read && !this.is_closed() {
            if let Some(slot) = this.map.slot(page) {
                // Relaxed: a guess for the pin's CAS, which validates it (and orders the data).
                let seen = EntryWord(slot.load(Ordering::Relaxed));
                if let Ok(pinned) = this.pages.try_pin_read(slot, seen) {
                    // try_pin_read pins only entries that name a frame, so this always matches.
                    if let Some(f) = pinned.frame() {
                        return Ok((f, slot));
                    }
                }
            }
        }
        Self::pin_slow(this, page, want)
    }

    #[cold]
    #[inline(never)]
    fn pin_slow(this: &Arc<Self>, page: u64, want: Want) -> Result<(u32, &AtomicU64)> {
        Self::pin_with(this, page, want, true)
    }

    /// As [`MapperShared::pin`]; with `wait == false`, a resident page that refuses the pin fails
    /// at once with [`Error::Busy`] instead of waiting (used by client requests, which then queue).
    pub(crate) fn pin_with(
        this: &Arc<Self>,
        page: u64,
        want: Want,
        wait: bool,
    ) -> Result<(u32, &AtomicU64)> {
        this.check_page(page)?;
        if want == Want::Write && !this.accessor.writable() {
            return Err(Error::ReadOnly);
        }
        let mut deadline = None;
        loop {
            if this.is_closed() {
                return Err(Error::Closed);
            }
            let slot = match this.map.slot(page) {
                Some(slot) => slot,
                None => match Self::miss(this, page, want)? {
                    Some(r) => return Ok(r),
                    None => continue,
                },
            };
            // Relaxed: a guess for the pin's CAS, which validates it (and orders the data).
            let seen = EntryWord(slot.load(Ordering::Relaxed));
            let Some(f) = seen.frame() else {
                match Self::miss(this, page, want)? {
                    Some(r) => return Ok(r),
                    None => continue,
                }
            };
            let r = match want {
                Want::Read => this.pages.try_pin_read(slot, seen),
                Want::Write => this.pages.try_pin_write(slot, seen),
            };
            let refused = match r {
                Ok(pinned) => return Ok((pinned.frame().unwrap_or(f), slot)),
                Err(w) => w,
            };
            if refused.frame().is_none() {
                continue; // reclaimed meanwhile: fault it in
            }
            // A writer, readers (for a write), or a reclaim writing the page back: wait.
            if !wait {
                return Err(Error::Busy { page });
            }
            let d = *deadline.get_or_insert_with(|| this.pages.deadline());
            if this.pages.wait_entry(slot, refused, d) == Parked::TimedOut {
                return Err(Error::Busy { page });
            }
        }
    }

    /// The miss path. Returns `Ok(None)` when the caller should look the page up again.
    fn miss(this: &Arc<Self>, page: u64, want: Want) -> Result<Option<(u32, &AtomicU64)>> {
        let shard = &this.fills[page as usize % this.fills.len()];
        let mut table = lock(shard);
        // Acquire (in find): if a reclaim just emptied the entry, its write-back happens before
        // the fill below reads the backing store.
        if this.map.find(page).frame().is_some() {
            return Ok(None);
        }
        let frame = if let Some((inflight, joined)) = table.get_mut(&page) {
            let inflight = inflight.clone();
            if *joined + 1 >= EntryWord::PINS.max() {
                // The fill cannot pre-pin one more fault (PINS would overflow): wait for its
                // outcome without joining, then look the page up again.
                drop(table);
                let _ = this.wait_fill(&inflight);
                return Ok(None);
            }
            *joined += 1;
            drop(table);
            this.wait_fill(&inflight)?
        } else {
            let inflight = Arc::new(Inflight {
                outcome: Mutex::new(None),
            });
            table.insert(page, (inflight.clone(), 0));
            drop(table);
            Self::fill(this, page, &inflight)?
        };
        // We hold a read pin (ours, or the one the filler took for us) on the page's entry.
        let Some(slot) = this.map.slot(page) else {
            return Ok(None);
        };
        if want == Want::Read || this.pages.try_upgrade(slot, frame) {
            return Ok(Some((frame, slot)));
        }
        // Others joined too: give our pin back and take the ordinary write path.
        this.pages.unpin_read(slot);
        Ok(None)
    }

    fn wait_fill(&self, inflight: &Inflight) -> Result<u32> {
        loop {
            if let Some(r) = lock(&inflight.outcome).clone() {
                return r;
            }
            self.fill_park
                .park(None, || lock(&inflight.outcome).is_none());
        }
    }

    fn complete(&self, page: u64, inflight: &Inflight, r: Result<u32>) {
        let shard = &self.fills[page as usize % self.fills.len()];
        lock(shard).remove(&page);
        *lock(&inflight.outcome) = Some(r);
        self.fill_park.unpark_all();
    }

    /// obtain -> fill -> record -> queue, for the owner of `inflight`. Returns the frame, with one
    /// read pin for the caller and one for each fault that joined.
    fn fill(this: &Arc<Self>, page: u64, inflight: &Inflight) -> Result<u32> {
        let pages = &*this.pages;
        let f = match pages.obtain() {
            Ok(f) => f,
            Err(e) => {
                this.complete(page, inflight, Err(e.clone()));
                return Err(e);
            }
        };
        // SAFETY: obtain handed us `f` in Filling state; we hold it exclusively.
        unsafe {
            pages.set_owner(
                f,
                Some(Owner {
                    mapper: this.clone(),
                    page,
                }),
            );
        }
        let filled = {
            let _t = pages.track(f).exclusive();
            // SAFETY: Filling frames are their obtainer's alone (I1): no guard, reclaimer or other
            // filler can reach them, so this is the only reference to the bytes.
            let buf = unsafe { std::slice::from_raw_parts_mut(pages.bytes(f), pages.page_size()) };
            crate::accessor::guarded("fill", || this.accessor.fill(page, buf))
        };
        if let Err(e) = filled {
            pages.counters.fill_errors.incr();
            let err = Error::Fill {
                page,
                source: ShareArc::new(e),
            };
            this.abandon(f, page, inflight, err.clone());
            return Err(err);
        }
        let shard = &this.fills[page as usize % this.fills.len()];
        let mut table = lock(shard);
        if this.is_closed() {
            drop(table);
            this.abandon(f, page, inflight, Error::Closed);
            return Err(Error::Closed);
        }
        let joined = table.get(&page).map_or(0, |(_, n)| *n);
        let published = this
            .map
            .slot_or_alloc(page)
            .is_some_and(|slot| pages.make_resident(f, 1 + joined, slot));
        if !published {
            // The entry was occupied: impossible while we own the fill record (only the record's
            // owner publishes this page). Report it rather than overwrite.
            drop(table);
            let err = Error::Invariant(format!("AccessMap entry of page {page} already taken"));
            this.abandon(f, page, inflight, err.clone());
            return Err(err);
        }
        table.remove(&page);
        drop(table);
        pages.counters.fills.incr();
        *lock(&inflight.outcome) = Some(Ok(f));
        this.fill_park.unpark_all();
        Ok(f)
    }

    /// A fill that will not be published: free the frame and hand `err` to the waiters.
    fn abandon(&self, f: u32, page: u64, inflight: &Inflight, err: Error) {
        // SAFETY: `f` is still Filling and ours.
        let owner = unsafe { self.pages.set_owner(f, None) };
        self.pages.free(f);
        self.complete(page, inflight, Err(err));
        drop(owner);
    }

    /// Writes back every dirty page, then syncs the accessor. Reports the first failure, or else a
    /// write-back error recorded by an earlier reclaim (once, like fsync's error reporting).
    /// Writes `page` (resident in `f`, read-pinned by the caller) back if it is dirty, and keeps
    /// its unusual-error record up to date: cleared by a success (or a clean page), set by an
    /// unusual failure.
    fn write_back_pinned(&self, page: u64, slot: &AtomicU64, f: u32) -> Result<()> {
        let pages = &*self.pages;
        // Dirty is re-read after pinning: a writer may have set it before our pin.
        if !EntryWord(slot.load(Ordering::Acquire)).dirty() {
            return self.arb.set_error(pages, slot, page, None);
        }
        let r = {
            let _t = pages.track(f).shared();
            // SAFETY: our read pin excludes writers, fillers and reclaimers (I4, I9).
            let buf = unsafe { std::slice::from_raw_parts(pages.bytes(f), pages.page_size()) };
            crate::accessor::guarded("flush", || self.accessor.flush(page, buf))
        };
        match r {
            Ok(()) => {
                pages.counters.writebacks.incr();
                pages.clear_dirty(slot);
                self.arb.set_error(pages, slot, page, None)
            }
            Err(e) => {
                pages.counters.writeback_errors.incr();
                if let Some(pe) = crate::arbitration::PageError::of(&e) {
                    self.arb.set_error(pages, slot, page, Some(pe))?;
                }
                Err(Error::WriteBack {
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
            self.arb.set_error(pages, slot, page, None)?;
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
            page,
            source: ShareArc::new(e),
        }))
    }

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
        if let Err(e) = crate::accessor::guarded("sync_all", || self.accessor.sync_all()) {
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
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
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
                match pages.take_for_close(slot) {
                    Take::Gone => break,
                    Take::Taken(f, w) => {
                        // Not persistent (anonymous): discard instead of paging out.
                        let w = if persistent {
                            w
                        } else {
                            w.with(EntryWord::DIRTY, false)
                        };
                        match pages.evict(f, w) {
                            Ok(()) => pages.free(f),
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
            if let Err(e) = crate::accessor::guarded("sync_all", || self.accessor.sync_all()) {
                first = Some(Error::Sync(ShareArc::new(e)));
            }
        }
        let recorded = self.take_error();
        match first {
            Some(e) => {
                self.closed.store(false, Ordering::SeqCst);
                Err(e)
            }
            None => match recorded {
                // Data is written back now, but an earlier write-back failed: report it once.
                Some(e) => Err(e),
                None => Ok(()),
            },
        }
    }
}
