//! # pagecore
//!
//! The lock-light, model-checked concurrent core of a multi-client pager. A [`Pages`] pool lends a
//! fixed budget of page-sized frames (`memory::Memory`) to memory objects; each object has one
//! [`PageMapper`] shared by all its clients, which serves faults from its `access_map::AccessMap`
//! or by filling a frame through the object's [`Accessor`]. Issued pages wait in the
//! `queue::PageQueue` (FIFO of issue); when no free frame is left, the page at the head is
//! reclaimed (written back first if dirty).
//!
//! Hits take no lock: a read guard on a resident page costs one load and one CAS on the page's
//! 64-bit AccessMap entry (`pack::EntryWord`), and its drop one `fetch_sub`. Every state change
//! is an atomic RMW on an entry, or a frame-tag change under the lists lock,
//! and the protocol is model-checked with loom and shuttle (see `verify/` and `SPEC.md`).
//!
//! ```
//! use pagecore::{Pages, FileAccessor};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("pagecore-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let pages = Pages::builder().page_size(4096).frames(8).build()?;
//! let file = pages.open(FileAccessor::open(dir.join("data"), 4096)?, 64 * 4096)?;
//! for p in 0..64 {
//!     file.write(p)?[..8].copy_from_slice(&p.to_le_bytes()); // 64 pages through 8 frames
//! }
//! assert_eq!(file.read(5)?[..8], 5u64.to_le_bytes());          // reclaimed, written back, read again
//! file.close()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! Backends: std (default), loom (`RUSTFLAGS="--cfg pagecore_loom"`), shuttle (feature `shuttle`);
//! see `core/src/sync.rs`.

mod access_map;
mod accessor;
mod anonymous;
mod arbitration;
mod copies;
mod error;
mod guard;
mod mapper;
mod memory;
mod mmap;
mod pack;
mod pages;
mod queue;
mod regions;
mod rmap;
mod swap;
mod sync;

pub use accessor::{Accessor, ComputedAccessor, FileAccessor, MemoryAccessor};
pub use anonymous::Anonymous;
pub use arbitration::{Access, ArbitrationCensus, Client, Grant, Pending, Revocation, Revoke};
pub use copies::CopyStats;
pub use error::{Error, Result};
pub use guard::{ReadGuard, WriteGuard};
pub use pages::Census;
pub use queue::Policy;
pub use regions::{AddressSpace, Fault, Protection, RegionInfo, RegionRef, Sharing};
pub use rmap::{FrameMap, Holder, PageRef};
pub use swap::{Slot, SwapArea};
pub use sync::ShareArc;

/// The internals the project's own harnesses use (`verify/`, `tests/`, `fuzz/`): the sync
/// facade (std, loom or shuttle types, `lock`, access tracking) and the packed state words.
/// **Not covered by semver**: anything here may change in any release. Not for applications.
#[doc(hidden)]
pub mod internals {
    /// The packed state words (`core/src/pack.rs`): fields, codecs and their checks.
    pub mod pack {
        pub use crate::pack::*;
    }
    /// The sync facade (`core/src/sync.rs`): std, loom or shuttle primitives.
    pub mod sync {
        pub use crate::sync::*;
    }
}

use mapper::{MapperShared, Want};
use pages::PagesShared;
use std::mem::ManuallyDrop;
use sync::atomic::Ordering;
use sync::{Arc, Duration};

/// Default bound on how long `obtain` waits for a frame, and a fault for a busy page.
pub const DEFAULT_WAIT_BOUND: Duration = Duration::from_secs(10);

/// Builds a [`Pages`] pool.
#[derive(Debug, Clone)]
pub struct PagesBuilder {
    page_size: usize,
    frames: Option<u64>,
    budget: Option<u64>,
    wait_bound: Option<Duration>,
    swap: Option<sync::ShareArc<swap::SwapArea>>,
    swap_slots: u32,
    policy: queue::Policy,
}

/// Default size, in slots, of the temporary swap area a pool makes on first use (the file is
/// sparse: a slot costs disk only once written, and one bit of memory).
pub const DEFAULT_SWAP_SLOTS: u32 = 1 << 20;

impl Default for PagesBuilder {
    fn default() -> Self {
        Self {
            page_size: memory::DEFAULT_PAGE_SIZE,
            frames: None,
            budget: None,
            wait_bound: Some(DEFAULT_WAIT_BOUND),
            swap: None,
            swap_slots: DEFAULT_SWAP_SLOTS,
            policy: queue::Policy::default(),
        }
    }
}

impl PagesBuilder {
    /// Page size in bytes: a power of two from 8 bytes to 1 GiB (default 4 KiB).
    pub fn page_size(mut self, bytes: usize) -> Self {
        self.page_size = bytes;
        self
    }

    /// Pool size in frames.
    pub fn frames(mut self, frames: u64) -> Self {
        self.frames = Some(frames);
        self.budget = None;
        self
    }

    /// Pool size as a memory budget in bytes (rounded down to whole frames).
    pub fn budget_bytes(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self.frames = None;
        self
    }

    /// How long `obtain` waits for a frame to become reclaimable when every frame is pinned, and
    /// a fault waits for a busy page, before failing with [`Error::Exhausted`] / [`Error::Busy`].
    /// `None` waits without bound (then a pool whose every frame is pinned by the waiting thread
    /// itself would never make progress: use it only where something else guarantees release).
    pub fn wait_bound(mut self, bound: Option<Duration>) -> Self {
        self.wait_bound = bound;
        self
    }

    /// The swap area of the pool's anonymous objects ([`Pages::anonymous`]), of copies of
    /// persistent objects, and of the frozen layers of copies ([`PageMapper::copy`]). Default: a
    /// temporary file of [`DEFAULT_SWAP_SLOTS`] slots, made on first use and removed with the pool.
    /// Its slots must be the pool's page size ([`PagesBuilder::build`] fails with
    /// [`Error::SwapPageSize`] otherwise).
    pub fn swap(mut self, area: sync::ShareArc<swap::SwapArea>) -> Self {
        self.swap = Some(area);
        self
    }

    /// Size in slots of the default temporary swap area (see [`PagesBuilder::swap`]).
    pub fn swap_slots(mut self, slots: u32) -> Self {
        self.swap_slots = slots;
        self
    }

    /// The eviction policy: which page to reclaim when no frame is free ([`Policy`]: FIFO of
    /// issue, the default and the departure design; CLOCK; or SIEVE, which the miss-ratio study in
    /// `docs/` recommends). Hits cost the same under every policy.
    pub fn policy(mut self, policy: queue::Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Allocates the pool.
    pub fn build(self) -> Result<Pages> {
        memory::Memory::check_page_size(self.page_size)?;
        if let Some(area) = &self.swap {
            if area.page_size() != self.page_size {
                // Every page-out would fail later; say so now.
                return Err(Error::SwapPageSize {
                    slot_size: area.page_size(),
                    page_size: self.page_size,
                });
            }
        }
        let frames = match (self.frames, self.budget) {
            (Some(f), _) => f,
            (None, Some(b)) => memory::Memory::frames_for_budget(b, self.page_size)?,
            (None, None) => 1024,
        };
        Ok(Pages {
            shared: Arc::new(PagesShared::new(
                frames,
                self.page_size,
                self.wait_bound,
                self.swap,
                self.swap_slots,
                self.policy,
            )?),
        })
    }
}

/// Pool-wide statistics (monotonic counters and a state census).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pages filled through an accessor.
    pub fills: u64,
    /// Fills that failed.
    pub fill_errors: u64,
    /// Frames reclaimed from the queue head for reuse.
    pub reclaims: u64,
    /// Dirty pages written back (by reclaim, sync or close).
    pub writebacks: u64,
    /// Write-backs that failed.
    pub writeback_errors: u64,
    /// Times `obtain` had to wait for a frame.
    pub obtain_waits: u64,
    /// Client requests (and upgrades) that had to wait.
    pub grant_waits: u64,
    /// Revocations asked of clients (by conflicting requests and by reclaim).
    pub revocations: u64,
    /// Copy-on-write pages given a private frame by a writer ([`PageMapper::copy`]).
    pub cow_breaks: u64,
    /// Frames in each state.
    pub census: Census,
}

/// The frame pool: a fixed budget of frames lent to memory objects. Cheap to clone (a handle).
///
/// ```
/// use pagecore::{Pages, ComputedAccessor};
/// let pages = Pages::builder().frames(2).page_size(64).build()?;
/// let squares = pages.open(ComputedAccessor::new(|p, buf| { buf.fill((p * p) as u8); Ok(()) }), 64 * 10)?;
/// assert_eq!(squares.read(3)?[0], 9);
/// assert_eq!(squares.read(4)?[0], 16);
/// assert_eq!(squares.read(5)?[0], 25); // reclaimed page 3's frame
/// assert!(squares.write(1).is_err());   // computed without a write-back is read-only
/// assert_eq!(pages.census()?.total(), 2);
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Clone)]
pub struct Pages {
    shared: Arc<PagesShared>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("frames", &self.frames())
            .field("page_size", &self.page_size())
            .finish()
    }
}

impl Pages {
    /// A builder with defaults (4 KiB pages, 1024 frames, 10 s wait bound).
    pub fn builder() -> PagesBuilder {
        PagesBuilder::default()
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.shared.page_size()
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.shared.frame_count()
    }

    /// Opens a memory object of at most `limit` bytes backed by `accessor`. Every clone of the
    /// returned [`PageMapper`] shares the object.
    pub fn open(&self, accessor: impl Accessor, limit: u64) -> Result<PageMapper> {
        Ok(PageMapper::from_shared(Arc::new(MapperShared::new(
            self.shared.clone(),
            sync::ShareArc::new(accessor),
            limit,
            copies::Layer::top(),
        ))))
    }

    /// Opens an anonymous object of at most `limit` bytes over the pool's swap area (see
    /// [`PagesBuilder::swap`]): pages read as zeros until written, go to swap when reclaimed,
    /// and are discarded with the object.
    ///
    /// ```
    /// use pagecore::Pages;
    /// let pages = Pages::builder().page_size(4096).frames(2).build()?;
    /// let anon = pages.anonymous(16 * 4096)?;
    /// for p in 0..8 {
    ///     anon.write(p)?[0] = p as u8;      // 8 pages through 2 frames: paged out to swap
    /// }
    /// assert_eq!(anon.read(3)?[0], 3);      // paged back in
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn anonymous(&self, limit: u64) -> Result<PageMapper> {
        let swap = self.shared.swap()?;
        self.open(anonymous::Anonymous::new(swap), limit)
    }

    /// Counters and a census of frame states (fails only with [`Error::Invariant`], a pagecore bug).
    pub fn stats(&self) -> Result<Stats> {
        let c = &self.shared.counters;
        Ok(Stats {
            fills: c.fills.get(),
            fill_errors: c.fill_errors.get(),
            reclaims: c.reclaims.get(),
            writebacks: c.writebacks.get(),
            writeback_errors: c.writeback_errors.get(),
            obtain_waits: c.obtain_waits.get(),
            grant_waits: c.grant_waits.get(),
            revocations: c.revocations.get(),
            cow_breaks: c.cow_breaks.get(),
            census: self.census()?,
        })
    }

    /// Checks conservation (I1) and uniqueness (I2) at this instant and returns the census of
    /// frame states. Safe to call at any time, concurrently with any operation: it takes the
    /// lists lock, under which those invariants hold exactly (SPEC.md). An `Err` describes a
    /// violated invariant, which is a pagecore bug.
    pub fn census(&self) -> Result<Census, Error> {
        self.shared.check_invariants().map_err(Error::Invariant)
    }

    /// The reverse map of frame `frame`: its state, the page it holds, the pages mapping it
    /// copy-on-write, the clients holding it and the regions mapping it ([`rmap::FrameMap`]).
    /// `None` for a frame index beyond the pool.
    ///
    /// ```
    /// use pagecore::{Access, MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(64).frames(4).build()?;
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
    /// let copy = obj.copy()?;
    /// let client = copy.register()?;
    /// let g = client.request(5, Access::Read)?;           // faulted in by the frozen layer
    /// let map = pages.rmap(g.frame()).unwrap();
    /// assert_eq!(map.proxies.len(), 1);                    // the copy's page 5 maps it
    /// assert_eq!(map.holders.len(), 1);                    // and the client holds it
    /// assert_eq!(map.holders[0].at.object, copy.id());
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn rmap(&self, frame: u32) -> Option<rmap::FrameMap> {
        rmap::frame_map(&self.shared, frame)
    }

    /// Like [`Pages::census`], with the violation as a plain message (for harnesses).
    pub fn check_invariants(&self) -> Result<Census, String> {
        self.shared.check_invariants()
    }
}

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

    /// Makes a copy-on-write copy of the object: a new object whose content is, at this instant,
    /// the object's, and which from then on is written independently of it (a write to either is
    /// seen by neither the other nor any other copy). Nothing is copied up front: both objects
    /// share the frames and swap slots of the pages neither has written since (a *frozen layer*
    /// below them), and a write gives the writer a private page (SPEC.md §2.6). The copy is an
    /// anonymous object (not persistent), over the object's swap area if it is anonymous, else
    /// over the pool's ([`PagesBuilder::swap`]). For a copy of the copy, copy it.
    ///
    /// A copy is a snapshot, so it waits for writers of the object to finish (asking client
    /// write holders to downgrade) up to the pool's bound, then fails with [`Error::Busy`]; it
    /// writes the dirty pages of a persistent object back first.
    ///
    /// ```
    /// use pagecore::{Pages, MemoryAccessor};
    /// let pages = Pages::builder().page_size(64).frames(8).build()?;
    /// let file = pages.open(MemoryAccessor::new(), 64 * 16)?;
    /// file.write(3)?[0] = 1;
    /// let snap = file.copy()?;            // shares every page
    /// file.write(3)?[0] = 2;              // the file gets a private page 3
    /// snap.write(4)?[0] = 9;              // and so does the copy, for page 4
    /// assert_eq!((file.read(3)?[0], snap.read(3)?[0]), (2, 1));
    /// assert_eq!((file.read(4)?[0], snap.read(4)?[0]), (0, 9));
    /// assert_eq!(pages.stats()?.cow_breaks, 2);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn copy(&self) -> Result<PageMapper> {
        copies::copy(self)
    }

    /// The object's place in its chain of copies (the frozen layers below it).
    pub fn copy_stats(&self) -> CopyStats {
        copies::stats(&self.shared)
    }

    /// Collapses the frozen layers of the object's chain that only one object still reads
    /// through (their pages move up, no byte copied), as far as possible without waiting, and
    /// returns the chain's depth after. Misses do this on their own as they walk the chain; this
    /// does it now, for the whole chain.
    ///
    /// ```
    /// use pagecore::Pages;
    /// let pages = Pages::builder().page_size(64).frames(8).build()?;
    /// let a = pages.anonymous(64 * 4)?;
    /// a.write(0)?[0] = 1;
    /// let b = a.copy()?;                  // a and b read one frozen layer
    /// assert_eq!(a.copy_stats().depth, 1);
    /// drop(b);                            // now only a reads it
    /// assert_eq!(a.compact(), 0);         // its pages move up into a
    /// assert_eq!(a.read(0)?[0], 1);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn compact(&self) -> usize {
        copies::compact(&self.shared)
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
        let pages = &*self.shared.pages;
        Ok(ReadGuard {
            pages,
            slot,
            frame,
            page,
            track: ManuallyDrop::new(pages.track(frame).shared()),
        })
    }

    /// Exclusive access to page `page` (faulting it in if needed); marks it dirty.
    pub fn write(&self, page: u64) -> Result<WriteGuard<'_>> {
        let (frame, slot) = MapperShared::pin(&self.shared, page, Want::Write)?;
        let pages = &*self.shared.pages;
        Ok(WriteGuard {
            pages,
            slot,
            frame,
            page,
            track: ManuallyDrop::new(pages.track(frame).exclusive()),
        })
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

    /// Registers a client of this object whose holders are never asked to revoke anything (its
    /// grants end when it drops them). The client keeps the object open.
    pub fn register(&self) -> Result<Client> {
        self.register_with(|_page: u64, _ask: Revocation| {})
    }

    /// Registers a client with a revocation callback (see [`Revoke`]).
    pub fn register_with(&self, revoke: impl Revoke) -> Result<Client> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let id = self.shared.arb.register(sync::ShareArc::new(revoke));
        Ok(Client {
            mapper: self.clone(),
            id,
        })
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
    /// Exact when no client operation on this object runs concurrently; an `Err` is a pagecore
    /// bug.
    pub fn arbitration(&self) -> Result<ArbitrationCensus, String> {
        self.shared.arb.check(&self.shared.map)
    }
}
