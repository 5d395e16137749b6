//! The mapping's protocol over an [`Mmu`]: serving faults, and the object's page memory that
//! reclaim and write-back go through (SPEC §2.8). It runs no thread of its own: a handler calls
//! [`MapCore::serve`] for each fault it reads (`MapCore::serve_all` until the mapping ends).
//!
//! The object's resident pages live in the MMU's memory ([`Mmu::bytes`]); their frames are the
//! pool's budget tokens. The invariant the protocol keeps (IM1): a page whose table entry is
//! writable has `DIRTY` set in its entry word. Hence:
//!
//! * a read fault pins the page for reading (faulting it in: the fill writes the MMU's bytes)
//!   and maps it read-only under the pin; a write fault pins it for writing (which sets
//!   `DIRTY`) and maps it writable, or un-protects it, under the pin. Mapping under the pin
//!   means reclaim cannot take the page in between (it would give the bytes up, and the map
//!   would expose a freed page);
//! * reclaim takes a page (T7), zaps its entry (no access completes after), writes it back if
//!   `DIRTY` (a store that completed is in those bytes), gives the bytes up, and empties the
//!   entry (T8); a CPU that faults meanwhile waits for the page and finds it refilled;
//! * `sync` read-pins a dirty page, write-protects it, writes it back and clears `DIRTY`; a
//!   store meanwhile faults, and its service waits for the pin, then sets `DIRTY` again.
//!
//! A fill that fails poisons the page ([`Mmu::poison`]): the faulting CPU gets a bus error, not
//! zeros.

use super::mmu::{Fault, Mapped, Mmu};
use crate::error::{Error, Result};
use crate::object::mapper::{Bound, MapperShared, Want};
use crate::object::memory::PageMemory;
use crate::sync::{lock, thread, AccessTrack, Arc, Instant, Level, Mutex, Parker, ShareArc};
use crate::{Accessor, PageMapper, Pages};

/// A fault service's first pause before it tries again a page it could not have (see
/// [`MapCore::serve`]).
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(5);
/// The longest pause between a fault service's tries: what a store waits at most, once the
/// cause (a failing store, a full pool) is gone, before its page is tried again.
const RETRY_AT_MOST: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether a fault's error is lasting (answered with a bus error): anything but a wait that ran
/// out or a frame that could not be had for now because write-backs fail (tried again).
fn lasting(e: &Error) -> bool {
    !matches!(
        e,
        Error::Busy { .. } | Error::Exhausted { .. } | Error::WriteBack { .. }
    )
}

/// The views an object is mapped in (several mappings of one object share its pages' bytes,
/// SPEC §2.8): the object's page memory. Bytes, trackers and `release` go through the first
/// view's MMU, whose store every view shares (a memfd, the model's pages); `quiesce` takes the
/// page's access away in every view, so no store through any mapping completes after it.
struct Views<M> {
    /// The first view: its MMU holds the pages (kept while the object lives, whichever
    /// mappings go).
    store: ShareArc<M>,
    /// The views mapped now. A view leaves only after its MMU is unmapped (no access through
    /// it completes after), so a quiesce that misses it misses nothing.
    list: Mutex<Vec<ShareArc<M>>>,
}

/// The runs of consecutive pages in `pages` (sorted, distinct), as (first, length).
fn runs(pages: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut rest = pages;
    std::iter::from_fn(move || {
        let &first = rest.first()?;
        // Neighbours one apart (no range past the last page: `u64::MAX` may be in a run).
        let n = 1 + rest
            .windows(2)
            .take_while(|w| w[0].checked_add(1) == Some(w[1]))
            .count();
        rest = &rest[n..];
        Some((first, n as u64))
    })
}

impl<M: Mmu> Views<M> {
    /// Removes `view` (once unmapped); returns how many views are left.
    fn leave(&self, view: &ShareArc<M>) -> usize {
        let mut list = lock(&self.list);
        list.retain(|v| !ShareArc::ptr_eq(v, view));
        list.len()
    }
}

impl<M: Mmu> PageMemory for Views<M> {
    fn bytes(&self, page: u64) -> *mut u8 {
        self.store.bytes(page)
    }

    fn track(&self, page: u64) -> &AccessTrack {
        self.store.track(page)
    }

    fn fill(
        &self,
        page: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.store.fill(page, fill)
    }

    fn quiesce(&self, page: u64, evict: bool) {
        // Under the list's lock: a view that leaves meanwhile was unmapped first.
        for v in lock(&self.list).iter() {
            if evict {
                v.zap(page);
            } else {
                v.protect(page, true);
            }
        }
    }

    fn release(&self, page: u64) {
        self.store.free(page);
    }

    fn quiesce_evicted(&self, pages: &[u64]) {
        // As `quiesce(p, true)` on each, a run of consecutive pages per call, in every view.
        for v in lock(&self.list).iter() {
            for (first, n) in runs(pages) {
                v.zap_range(first, n);
            }
        }
    }

    fn release_many(&self, pages: &[u64]) {
        for (first, n) in runs(pages) {
            self.store.free_range(first, n);
        }
    }

    fn mapped_at(&self, page: u64) -> Vec<(usize, bool)> {
        lock(&self.list)
            .iter()
            .filter_map(|v| v.mapped_at(page))
            .collect()
    }
}

/// Fault-around's default bound: at most this many pages after a faulting page are mapped with
/// it ([`MapCore::set_fault_around`]).
pub const FAULT_AROUND: u64 = 32;

/// A mapping's guess at a sequential stream of loads (fault-around, SPEC §2.8): a read fault
/// on the page right after what the previous one mapped continues the stream, and the stream's
/// window doubles (from 4) up to the bound; any other read fault ends it. Write faults are no
/// part of it (a page mapped ahead is read-only, so a store to it faults anyway: a scan that
/// stores to the pages it loads keeps its stream).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stream {
    /// The page a continuing fault would be on (none before the first fault).
    next: Option<u64>,
    /// Pages mapped after the last fault.
    window: u64,
}

impl Stream {
    /// Records a fault on `page`; returns how many pages after it to map with it (at most
    /// `bound`).
    pub fn ahead(&mut self, page: u64, bound: u64) -> u64 {
        self.window = if self.next == Some(page) {
            (self.window * 2).max(4).min(bound)
        } else {
            0
        };
        self.next = page.checked_add(1 + self.window);
        self.window
    }
}

/// A memory object mapped through an [`Mmu`]: the protocol of SPEC §2.8 (see the module doc).
pub struct MapCore<M: Mmu + 'static> {
    mmu: ShareArc<M>,
    /// Every view of the object, this one included until it ends.
    views: ShareArc<Views<M>>,
    object: PageMapper,
    /// Where a fault's server waits between tries (nobody wakes it: it times out).
    retry_park: Parker,
    /// Fault-around's bound (0: off).
    around: crate::sync::atomic::AtomicU64,
    /// The pool's frames: a window takes at most a quarter of them, so that pages mapped
    /// ahead do not evict each other (or the stream's next page) in a small pool.
    frames: u64,
    /// The stream of loads fault-around follows: one for the mapping, whichever handler thread
    /// reads a fault (with a stream per thread, a scan's faults would alternate between them
    /// and look like jumps).
    stream: Mutex<Stream>,
    /// Faults read, and pages mapped ahead ([`MapCore::counts`]).
    faults: crate::sync::atomic::AtomicU64,
    mapped_ahead: crate::sync::atomic::AtomicU64,
    /// [`MapCore::retry`]s so far, counted under the views' lock: a service whose fill failed
    /// poisons its page only if no retry came since it began (see `serve_with`).
    retries: crate::sync::atomic::AtomicU64,
}

impl<M: Mmu + 'static> std::fmt::Debug for MapCore<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapCore")
            .field("pages", &self.mmu.pages())
            .finish()
    }
}

impl<M: Mmu + 'static> MapCore<M> {
    /// Opens an object backed by `accessor` whose pages are mapped through `mmu` (the object's
    /// size is the MMU's range). Fails with [`Error::AccessorPageSize`] if the MMU's page size
    /// is not the pool's.
    pub fn new(pages: &Pages, accessor: impl Accessor, mmu: M) -> Result<Self> {
        if mmu.page_size() != pages.page_size() {
            return Err(Error::AccessorPageSize {
                accessor: mmu.page_size(),
                page_size: pages.page_size(),
            });
        }
        let mmu = ShareArc::new(mmu);
        let limit = mmu.pages() * mmu.page_size() as u64;
        let views = ShareArc::new(Views {
            store: mmu.clone(),
            list: Mutex::new(Level::Views, vec![mmu.clone()]),
        });
        let memory: ShareArc<dyn PageMemory> = views.clone();
        let object = pages.open_with_memory(ShareArc::new(accessor), limit, memory)?;
        Ok(Self::view(mmu, views, object, u64::from(pages.frames())))
    }

    /// A private mapping of `source` through `mmu`: a copy-on-write copy of the object
    /// ([`PageMapper::copy`]) whose pages live in the MMU's memory. Its loads of pages it has not
    /// stored to read the source as it was at this call; its stores give it pages of its own,
    /// which neither the source nor any other mapping or copy of it sees (SPEC §2.8, private
    /// mappings). A page it reads is copied into its memory (no proxies: one copy per page
    /// touched), and evicted clean unless it was stored to. Fails with [`Error::Mapped`] if
    /// `source` is mapped and neither anonymous nor persistent, [`Error::Map`] if the MMU's range is not the object's size or
    /// the pool has fewer than two frames (a page read holds the layer's frame and the copy's),
    /// [`Error::AccessorPageSize`] if its page size is not the pool's, and as a copy does.
    pub fn private(source: &PageMapper, mmu: M) -> Result<Self> {
        let pages = &*source.shared.pages;
        if mmu.page_size() != pages.page_size() {
            return Err(Error::AccessorPageSize {
                accessor: mmu.page_size(),
                page_size: pages.page_size(),
            });
        }
        if pages.frame_count() < 2 {
            // A page read through the mapping holds the layer's frame and the copy's at once:
            // with one frame its faults could never be served (they would retry for ever).
            return Err(Error::Map(ShareArc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a private mapping needs a pool of at least two frames",
            ))));
        }
        let limit = source.shared.limit();
        if mmu.pages() != limit.div_ceil(mmu.page_size() as u64) {
            return Err(Error::Map(ShareArc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a private mapping of another size than its object's",
            ))));
        }
        let mmu = ShareArc::new(mmu);
        let views = ShareArc::new(Views {
            store: mmu.clone(),
            list: Mutex::new(Level::Views, vec![mmu.clone()]),
        });
        let memory: ShareArc<dyn PageMemory> = views.clone();
        let object = source.copy_mapped(memory)?;
        Ok(Self::view(
            mmu,
            views,
            object,
            u64::from(pages.frame_count()),
        ))
    }

    fn view(mmu: ShareArc<M>, views: ShareArc<Views<M>>, object: PageMapper, frames: u64) -> Self {
        Self {
            mmu,
            views,
            object,
            retry_park: Parker::new(Level::Park),
            around: crate::sync::atomic::AtomicU64::new(FAULT_AROUND),
            frames,
            stream: Mutex::new(Level::Mmu, Stream::default()),
            faults: crate::sync::atomic::AtomicU64::new(0),
            mapped_ahead: crate::sync::atomic::AtomicU64::new(0),
            retries: crate::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Another mapping of this one's object through `mmu`, a view of the same pages (the
    /// kernel's: another mapping of the memfd; the model's: [`SimMmu::share`](super::sim::SimMmu::share)).
    /// Its faults are its own (serve them with [`MapCore::serve_all`] on it); reclaim and
    /// write-back take a page's access away in every view. Fails with [`Error::Map`] if the
    /// view's size is not the object's, or [`Error::Closed`] if the object was closed or every
    /// mapping of it has ended.
    pub fn share(&self, mmu: M) -> Result<Self> {
        if mmu.pages() != self.mmu.pages() || mmu.page_size() != self.mmu.page_size() {
            return Err(Error::Map(ShareArc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a view of another size than the object's",
            ))));
        }
        if self.object.shared.is_closed() {
            return Err(Error::Closed);
        }
        let mmu = ShareArc::new(mmu);
        {
            let mut list = lock(&self.views.list);
            if list.is_empty() {
                return Err(Error::Closed);
            }
            list.push(mmu.clone());
        }
        Ok(Self::view(
            mmu,
            self.views.clone(),
            self.object.clone(),
            self.frames,
        ))
    }

    /// How many mappings of the object are live (this one included, until it ends).
    pub fn mappings(&self) -> usize {
        lock(&self.views.list).len()
    }

    /// Faults the handlers have read, and pages fault-around has mapped, so far.
    pub fn counts(&self) -> (u64, u64) {
        // Relaxed: statistics, ordered with nothing.
        let r = crate::sync::atomic::Ordering::Relaxed;
        (self.faults.load(r), self.mapped_ahead.load(r))
    }

    /// Sets fault-around's bound: a fault that continues a sequential stream of faults maps up
    /// to `pages` pages after its own, read-only, before its CPU is woken (0 turns it off).
    pub fn set_fault_around(&self, pages: u64) {
        // Relaxed: a tuning knob; a handler that reads the old bound once is fine.
        self.around
            .store(pages, crate::sync::atomic::Ordering::Relaxed);
    }

    /// The window fault-around may use: its bound, and at most a quarter of the pool's frames.
    fn window_bound(&self) -> u64 {
        self.fault_around().min(self.frames / 4)
    }

    /// Fault-around's bound.
    pub fn fault_around(&self) -> u64 {
        // Relaxed: see set_fault_around.
        self.around.load(crate::sync::atomic::Ordering::Relaxed)
    }

    /// Maps up to `n` pages after `page` read-only, as read faults served with a zero time-out
    /// would (fault-around): a page that would wait (held, or no frame at once), or whose fill
    /// fails, ends it (nobody faulted there: the failure is not poisoned). Returns how many it
    /// mapped (a page mapped already is not counted).
    pub fn map_ahead(&self, page: u64, n: u64) -> u64 {
        let shared: &Arc<MapperShared> = &self.object.shared;
        let first = page.saturating_add(1);
        let end = first.saturating_add(n).min(self.mmu.pages());
        let mut pinned = Vec::new();
        for q in first..end {
            let bound = Bound::after(std::time::Duration::ZERO);
            let Ok((_, slot)) = MapperShared::pin_bounded(shared, q, Want::Read, bound) else {
                break;
            };
            pinned.push(slot);
        }
        // Under the read pins, read-only (IM1 holds: no writable entry without DIRTY), in one
        // operation; a page mapped already keeps its entry.
        let done = self.mmu.map_read_only(first, pinned.len() as u64);
        for slot in pinned {
            shared.pages.unpin_read(slot);
        }
        done
    }

    /// The mapped object (its guards, clients and `sync` work beside the mapping).
    pub fn object(&self) -> &PageMapper {
        &self.object
    }

    /// The MMU.
    pub fn mmu(&self) -> &M {
        &self.mmu
    }

    /// Serves one fault: the page is faulted in (filled through the object's accessor, once
    /// however many faults, guards and clients want it) and mapped, read-only for a load,
    /// writable and `DIRTY` for a store. Waits for the page's holders and for a frame; a wait
    /// that runs out, or a frame that cannot be had because write-backs fail, is tried again
    /// (after 5 ms, doubling up to 100 ms while it keeps failing, so that a store
    /// waiting out a failing store does not retry its write-backs hundreds of times a second)
    /// until the page is served or the mapping ends: the CPU waits, as it would for memory. Any
    /// other error (a failed fill, a closed object, a store to a read-only object) poisons the
    /// page, so the CPU gets a bus error instead of faulting for ever, and is returned.
    pub fn serve(&self, fault: Fault) -> Result<()> {
        let mut pause = RETRY_FIRST;
        loop {
            self.ask_holders(fault);
            match self.serve_with(fault, Bound::Pool) {
                Ok(_) => return Ok(()),
                Err(e) if lasting(&e) => return Err(e),
                // The mapping ended: nobody waits for this page any more.
                Err(e) if self.mmu.ended() => return Err(e),
                Err(_) => {
                    let again = Instant::now().checked_add(pause);
                    self.retry_park.park(again, || true);
                    pause = (pause * 2).min(RETRY_AT_MOST);
                }
            }
        }
    }

    /// Clients holding the fault's page in the way are asked to give it back, as a conflicting
    /// request asks them ([`Revoke`](crate::Revoke)): every holder for a store, a writer (to
    /// downgrade) for a load. Each holder is asked once per grant; a page without client
    /// holders costs one load of its entry.
    fn ask_holders(&self, fault: Fault) {
        let shared: &Arc<MapperShared> = &self.object.shared;
        let Some(slot) = shared.map.slot(fault.page) else {
            return;
        };
        // Relaxed: a hint; `ask` decides under the arbitration's shard lock.
        let e = crate::pack::EntryWord(slot.load(crate::sync::atomic::Ordering::Relaxed));
        if !e.held() {
            return;
        }
        let ask = if fault.write {
            crate::arbitration::Revocation::Release
        } else {
            crate::arbitration::Revocation::Downgrade
        };
        shared.arb.ask(&shared.pages, slot, fault.page, ask);
    }

    /// As [`MapCore::serve`], waiting for nobody: `Ok(false)` if the page is held (a guard, a
    /// grant, a reclaim, another fault's fill) or no frame can be had at once; then serve it with
    /// [`MapCore::serve`] on a thread that may block.
    pub fn try_serve(&self, fault: Fault) -> Result<bool> {
        self.serve_with(fault, Bound::after(std::time::Duration::ZERO))
    }

    fn serve_with(&self, fault: Fault, bound: Bound) -> Result<bool> {
        let shared: &Arc<MapperShared> = &self.object.shared;
        let want = if fault.write { Want::Write } else { Want::Read };
        // Relaxed: a hint; the look that decides is made again under the views' lock.
        let retries = self.retries.load(crate::sync::atomic::Ordering::Relaxed);
        let (_, slot) = match MapperShared::pin_bounded(shared, fault.page, want, bound) {
            Ok(pinned) => pinned,
            Err(e) if lasting(&e) => {
                // Under the views' lock, as `retry` counts and zaps: a retry since we began (the
                // fault may be a stale or duplicate one, read before the user mended the store
                // and retried) must not be undone by our poison, which would then outlive it
                // (scenario M5, with one fault queued per faulting CPU). Then the page's CPUs
                // are woken instead: one that still waits faults again and is served anew.
                let _views = lock(&self.views.list);
                // Relaxed: the count changes only under this lock.
                if self.retries.load(crate::sync::atomic::Ordering::Relaxed) == retries {
                    self.mmu.poison(fault.page);
                } else {
                    self.mmu.wake(fault.page);
                }
                return Err(e);
            }
            Err(_) if bound != Bound::Pool => return Ok(false),
            Err(e) => return Err(e),
        };
        // Under the pin: reclaim cannot take the page (and give its bytes up) before it is
        // mapped. A write pin has set DIRTY (IM1 before the entry turns writable).
        let mapped = self.mmu.map(fault.page, fault.write);
        match (mapped, fault.write) {
            (Mapped::Done, _) => {}
            (Mapped::Exists, true) => self.mmu.protect(fault.page, false),
            (Mapped::Exists, false) => self.mmu.wake(fault.page),
        }
        let pages = &shared.pages;
        if fault.write {
            pages.unpin_write(slot);
        } else {
            pages.unpin_read(slot);
        }
        Ok(true)
    }

    /// Serves faults until the mapping ends ([`Mmu::unmap`]); returns how many it read. The
    /// reading thread never waits for a page's holders or for a frame: a fault that would
    /// ([`MapCore::try_serve`]) is served by a thread of its own, so a holder that faults on
    /// another page meanwhile is still served (scenario M8). Those threads are joined before it
    /// returns.
    pub fn serve_all(this: &Arc<Self>) -> u64 {
        let mut n = 0;
        let mut workers = Vec::new();
        // Relaxed: statistics (see `counts`).
        let r = crate::sync::atomic::Ordering::Relaxed;
        while let Some(f) = this.mmu.next_fault(true) {
            n += 1;
            this.faults.fetch_add(1, r);
            // Fault-around first: the faulting CPU is woken once, with the pages after its own
            // mapped (a scan runs on through them without faulting).
            let bound = this.window_bound();
            let ahead = if f.write || bound == 0 {
                0
            } else {
                lock(&this.stream).ahead(f.page, bound)
            };
            if ahead > 0 {
                let mapped = this.map_ahead(f.page, ahead);
                this.mapped_ahead.fetch_add(mapped, r);
            }
            if let Ok(false) = this.try_serve(f) {
                // Join the servers that are done (a long mapping would keep a handle per
                // fault that ever waited); the rest are joined at the end.
                workers.retain(|w| !crate::sync::finished(w));
                let me = this.clone();
                workers.push(thread::spawn(move || {
                    let _ = me.serve(f);
                }));
            }
        }
        for w in workers {
            let _ = w.join();
        }
        n
    }

    /// Writes back every page stored to through the mapping (or written otherwise) since it was
    /// last written back ([`PageMapper::sync`]).
    pub fn sync(&self) -> Result<()> {
        self.object.sync()
    }

    /// Clears a poisoned page (a failed fill, [`MapCore::serve`]): the next access faults and
    /// fills it again.
    pub fn retry(&self, page: u64) {
        let _views = lock(&self.views.list);
        // Relaxed: counted and read under the views' lock (see `serve_with`).
        self.retries
            .fetch_add(1, crate::sync::atomic::Ordering::Relaxed);
        self.mmu.zap(page);
    }

    /// Ends the mapping: its CPUs' accesses fail from now on (handlers' `MapCore::serve_all`
    /// returns). The last mapping of the object to end closes it (written back, frames
    /// released); an earlier one leaves its pages (dirty ones included) to the others.
    pub fn close(&self) -> Result<()> {
        if self.end() == 0 {
            self.object.close()
        } else {
            Ok(())
        }
    }

    /// Unmaps this view, then takes it out of the object's views; returns how many are left.
    fn end(&self) -> usize {
        self.mmu.unmap();
        self.views.leave(&self.mmu)
    }
}

impl<M: Mmu + 'static> Drop for MapCore<M> {
    /// Ends the mapping as [`MapCore::close`] does; the object closes when its last handle goes.
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(all(test, not(pagecore_loom), not(feature = "shuttle")))]
mod tests {
    use super::{runs, Stream};

    #[test]
    fn runs_split_sorted_pages_where_they_stop_being_consecutive() {
        let r = |p: &[u64]| runs(p).collect::<Vec<_>>();
        assert_eq!(r(&[]), []);
        assert_eq!(r(&[7]), [(7, 1)]);
        assert_eq!(r(&[3, 4, 5, 9, 10, 12]), [(3, 3), (9, 2), (12, 1)]);
        assert_eq!(r(&[u64::MAX - 1, u64::MAX]), [(u64::MAX - 1, 2)]);
        assert_eq!(r(&[0, 2, 3, u64::MAX]), [(0, 1), (2, 2), (u64::MAX, 1)]);
    }

    #[test]
    fn a_stream_opens_at_four_doubles_to_the_bound_and_ends_on_a_jump() {
        let mut s = Stream::default();
        assert_eq!(s.ahead(0, 32), 0, "a first fault is no stream");
        assert_eq!(s.ahead(1, 32), 4);
        // The next fault of the stream is on the page after the window: 1 + 4 + 1.
        assert_eq!(s.ahead(6, 32), 8);
        assert_eq!(s.ahead(15, 32), 16);
        assert_eq!(s.ahead(32, 32), 32);
        assert_eq!(s.ahead(65, 32), 32, "capped at the bound");
        assert_eq!(s.ahead(65 + 33 + 5, 32), 0, "a jump ends it");
        assert_eq!(s.ahead(104, 2), 2, "a bound under 4 caps the first window");
        assert_eq!(s.ahead(107, 0), 0, "bound 0: off");
    }

    #[test]
    fn a_stream_at_the_end_of_the_page_range_does_not_overflow() {
        let mut s = Stream::default();
        assert_eq!(s.ahead(u64::MAX - 1, 32), 0);
        assert_eq!(s.ahead(u64::MAX, 32), 4);
        assert_eq!(
            s.ahead(u64::MAX, 32),
            0,
            "nothing continues past the last page"
        );
    }
}
