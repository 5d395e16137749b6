//! PageMapper: one per memory object, shared by all its clients. Serves faults (find -> reserve,
//! or obtain -> fill -> record -> queue), writes dirty pages back (`sync`), and closes the object
//! (`writeback.rs`).
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
//! 5. **copies** (`crate::copies`): an object with a frozen layer below it fills only the pages
//!    it owns (its swap slots, or the pages a persistent object wrote since its last copy).
//!    Any other page is *resolved*: found (resident, or faulted in) in the first layer of the
//!    chain that owns it, read-pinned there, and published here as a copy-on-write proxy of that
//!    frame (`PagesShared::make_proxy`), the read pin becoming the proxy's. A write fault on a
//!    proxy breaks the copy first (`copies::break_cow`). Every publication checks the object's
//!    copy epoch under the shard lock: a fill that began before a copy moved the object's pages
//!    is abandoned and its faults look the page up again.
//!
//! The shard lock is only held for table updates, never across I/O. Locks follow the lock
//! hierarchy (SPEC.md §5.1, `sync::Level`): fill shard (`FillShard`) before the parkers
//! (`Park`: the fill parker's `prepare` takes a fill's outcome, the pool parker's the lists),
//! before the lists, before layer state and swap slots.

use crate::backing::accessor::Accessor;
use crate::error::{Error, Result};
use crate::frames::{Owner, PagesShared, Take};
use crate::object::access_map::AccessMap;
use crate::pack::EntryWord;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{lock, Arc, Instant, Mutex, Parked, Parker, ShareArc};
use rustc_hash::FxHashMap;

pub(crate) mod poll;
mod resolved;
mod writeback;

#[cfg(pagecore_loom)]
const FILL_SHARDS: usize = 1;
#[cfg(not(pagecore_loom))]
const FILL_SHARDS: usize = 16;

/// How an in-flight fill ended, for the faults that joined it.
#[derive(Clone)]
enum Outcome {
    /// Published in this frame, with one read pin per joined fault.
    Frame(u32),
    /// Failed; every joined fault gets the error.
    Failed(Error),
    /// Not published (a copy changed what the object owns meanwhile): look the page up again.
    Retry,
}

/// Where the faults that joined an in-flight fill wait for its outcome.
pub(crate) struct Inflight {
    outcome: Mutex<Option<Outcome>>,
}

/// One in-flight fill, in its shard's table: made by the first fault of a page (the filler),
/// which alone publishes it. The outcome cell is made only when a second fault comes (most fills
/// are nobody else's business, and pay no allocation for it).
#[derive(Default)]
pub(crate) struct Record {
    waiters: Option<Arc<Inflight>>,
    /// Faults that joined: the filler pre-pins one read pin for each.
    joined: u64,
}

impl Record {
    /// Where the faults waiting for this fill learn its outcome (made by the first of them).
    fn inflight(&mut self) -> Arc<Inflight> {
        self.waiters
            .get_or_insert_with(|| {
                Arc::new(Inflight {
                    outcome: Mutex::new(crate::sync::Level::FillOutcome, None),
                })
            })
            .clone()
    }
}

/// How the filler left the page for its own fault.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// One read pin (the fault's).
    Read,
    /// The writer bit (a write fault that no other fault joined).
    Write,
}

/// What the miss path did.
pub(crate) enum Miss<'a> {
    /// The page is pinned as asked.
    Pinned(u32, &'a AtomicU64),
    /// Look the page up again.
    Retry,
    /// A frozen layer that does not hold the page (resolution looks further down the chain).
    NotHere,
}

/// Per-page fill records of one shard: the record and how many faults joined it.
pub(crate) type FillTable = FxHashMap<u64, Record>;

/// The shared state of one memory object.
pub(crate) struct MapperShared {
    /// Unique within the pool (reported by the reverse map).
    pub(crate) id: u64,
    pub(crate) pages: Arc<PagesShared>,
    /// The pool's swap area (for copies of this object).
    /// (A std `Arc` on every backend: its count is no protocol state, and the models need not
    /// see it.)
    pub(crate) swap: ShareArc<crate::backing::swap::PoolSwap>,
    pub(crate) map: AccessMap,
    pub(crate) accessor: ShareArc<dyn Accessor>,
    limit: u64,
    closed: AtomicBool,
    fills: Box<[Mutex<FillTable>]>,
    fill_park: Parker,
    error: Mutex<Option<Error>>,
    pub(crate) handles: AtomicUsize,
    /// Which clients may read or write each page.
    pub(crate) arb: crate::arbitration::Arbiter,
    /// Its place in a chain of copies.
    pub(crate) layer: crate::object::layer::Layer,
    /// Where address spaces map it (for the reverse map).
    pub(crate) regions: Mutex<Vec<crate::regions::Registration>>,
    /// A mapped object's page memory (its resident pages' bytes live there, not in their
    /// frames); `None` for every other object.
    pub(crate) memory: Option<ShareArc<dyn crate::object::memory::PageMemory>>,
    /// Its statistics (`PageMapper::stats`; the pool's registry holds them too, for its sums).
    pub(crate) stats: ShareArc<crate::stats::ObjectCounters>,
    /// Whether it counts its hits (the pool's `PagesBuilder::count_hits`, copied here, beside
    /// the fields the hit path reads).
    count_hits: bool,
}

/// Access wanted by a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Read,
    Write,
}

/// How long a fault may wait: for a frame, for a writer or a reclaim of the page to finish, for a
/// copy-on-write break or a copy in progress. Not for another fault's fill it joined: that fill's
/// accessor I/O is not interrupted, and the joined fault shares its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// The pool's wait bound ([`crate::PagesBuilder::wait_bound`]).
    Pool,
    /// Until this instant, or (`None`, a time-out too long to express) for good: a per-call
    /// time-out (`PageMapper::read_timeout`).
    Until(Option<Instant>),
    /// A resident page that refuses the pin fails at once with [`Error::Busy`] (client requests,
    /// which then queue); a miss waits as under `Pool`.
    NoWait,
}

impl Bound {
    /// The deadline of the fault's waits.
    pub(crate) fn deadline(self, pages: &PagesShared) -> Option<Instant> {
        match self {
            Bound::Until(t) => t,
            Bound::Pool | Bound::NoWait => pages.deadline(),
        }
    }

    /// The bound of a fault's resolution in a layer below: a layer's page that refuses the pin
    /// is waited for even by a `NoWait` fault (whose `Busy` means "a holder of *this* page is in
    /// the way, queue behind it"; a layer's page has no holders to queue behind, and failing there
    /// made a client's request fault the page in again at once, for ever: found by the random
    /// programs, seed 14 under PCT).
    pub(crate) fn in_layer(self) -> Self {
        match self {
            Bound::NoWait => Bound::Pool,
            b => b,
        }
    }

    /// A per-call bound, `timeout` from now.
    pub(crate) fn after(timeout: std::time::Duration) -> Self {
        Bound::Until(Instant::now().checked_add(timeout))
    }
}

impl MapperShared {
    pub(crate) fn new(
        pages: Arc<PagesShared>,
        swap: ShareArc<crate::backing::swap::PoolSwap>,
        accessor: ShareArc<dyn Accessor>,
        limit: u64,
        layer: crate::object::layer::Layer,
    ) -> Self {
        let page_size = pages.page_size() as u64;
        let id = pages.object_id();
        let count_hits = pages.count_hits;
        let stats = ShareArc::new(crate::stats::ObjectCounters::new(
            pages.pool_id(),
            count_hits,
        ));
        // A frozen layer is the pool's own, shared by copies: its counts are not an object's
        // the user opened (its pages' evictions and write-backs are in the pool's counters).
        if !layer.is_frozen() {
            pages.objects.register(stats.clone());
        }
        Self {
            id,
            map: AccessMap::new(limit.div_ceil(page_size)),
            pages,
            swap,
            accessor,
            limit,
            closed: AtomicBool::new(false),
            fills: (0..FILL_SHARDS)
                .map(|_| Mutex::new(crate::sync::Level::FillShard, FxHashMap::default()))
                .collect(),
            fill_park: Parker::new(crate::sync::Level::Park),
            error: Mutex::new(crate::sync::Level::ObjectError, None),
            handles: AtomicUsize::new(1),
            arb: crate::arbitration::Arbiter::new(id, stats.clone()),
            layer,
            regions: Mutex::new(crate::sync::Level::Regions, Vec::new()),
            memory: None,
            stats,
            count_hits,
        }
    }

    /// The object, with its resident pages' bytes in `memory` (a mapped object).
    pub(crate) fn with_memory(
        mut self,
        memory: ShareArc<dyn crate::object::memory::PageMemory>,
    ) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The bytes of `page`, resident in frame `f`: the frame's, or the object's own memory's.
    #[inline(always)]
    pub(crate) fn page_ptr(&self, page: u64, f: u32) -> *mut u8 {
        match &self.memory {
            None => self.pages.bytes(f),
            Some(m) => m.bytes(page),
        }
    }

    /// The bytes of `page`, resident in frame `f`, for a guard or grant that holds the page
    /// (`exclusive`: a writer): as [`Self::page_ptr`], and for a mapped object the mapping's
    /// access is taken away first, as for a write-back (a writer's: every access through the
    /// mapping faults and waits for the holder; a reader's: stores do), so a holder's bytes are
    /// never written through the mapping meanwhile (I4, I9 with the mapping as a party).
    #[inline(always)]
    pub(crate) fn held_ptr(&self, page: u64, f: u32, exclusive: bool) -> *mut u8 {
        match &self.memory {
            None => self.pages.bytes(f),
            Some(m) => {
                m.quiesce(page, exclusive);
                m.bytes(page)
            }
        }
    }

    /// The access tracker of `page`'s bytes (resident in frame `f`; see [`Self::page_ptr`]).
    #[inline(always)]
    pub(crate) fn page_track(&self, page: u64, f: u32) -> &crate::sync::AccessTrack {
        match &self.memory {
            None => self.pages.track(f),
            Some(m) => m.track(page),
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

    /// Counts a hit, if the pool counts them (`PagesBuilder::count_hits`).
    #[inline(always)]
    pub(crate) fn hit(&self) {
        if self.count_hits {
            self.stats.hits.incr();
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
        Self::pin_bounded(this, page, want, Bound::Pool)
    }

    /// As [`MapperShared::pin`], waiting as `bound` says.
    #[inline(always)]
    pub(crate) fn pin_bounded(
        this: &Arc<Self>,
        page: u64,
        want: Want,
        bound: Bound,
    ) -> Result<(u32, &AtomicU64)> {
        if want == Want::Read && !this.is_closed() {
            if let Some(slot) = this.map.slot(page) {
                // Relaxed: a guess for the pin's CAS, which validates it (and orders the data).
                let seen = EntryWord(slot.load(Ordering::Relaxed));
                if let Ok(pinned) = this.pages.try_pin_read(slot, seen) {
                    // try_pin_read pins only entries that name a frame, so this always matches.
                    if let Some(f) = pinned.frame() {
                        this.hit();
                        return Ok((f, slot));
                    }
                }
            }
        }
        Self::pin_slow(this, page, want, bound)
    }

    #[cold]
    #[inline(never)]
    fn pin_slow(
        this: &Arc<Self>,
        page: u64,
        want: Want,
        bound: Bound,
    ) -> Result<(u32, &AtomicU64)> {
        Self::pin_with(this, page, want, bound)
    }

    /// As [`MapperShared::pin`], waiting as `bound` says ([`Bound::NoWait`]: a resident page that
    /// refuses the pin fails at once with [`Error::Busy`]; used by client requests, which then
    /// queue).
    pub(crate) fn pin_with(
        this: &Arc<Self>,
        page: u64,
        want: Want,
        bound: Bound,
    ) -> Result<(u32, &AtomicU64)> {
        Self::pin_inner(this, page, want, bound)?.ok_or_else(|| {
            Error::Invariant(format!("page {page}: a top object found nothing to fill"))
        })
    }

    /// As [`MapperShared::pin_with`]; `None` only for a frozen layer that does not hold `page`.
    pub(crate) fn pin_inner(
        this: &Arc<Self>,
        page: u64,
        want: Want,
        bound: Bound,
    ) -> Result<Option<(u32, &AtomicU64)>> {
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
                None => match Self::miss(this, page, want, bound)
                    .inspect_err(|_| this.stats.misses.incr())?
                {
                    Miss::Pinned(f, slot) => {
                        this.stats.misses.incr();
                        return Ok(Some((f, slot)));
                    }
                    Miss::Retry => continue,
                    Miss::NotHere => return Ok(None),
                },
            };
            // Relaxed: a guess for the pin's CAS, which validates it (and orders the data).
            let seen = EntryWord(slot.load(Ordering::Relaxed));
            let Some(f) = seen.frame() else {
                match Self::miss(this, page, want, bound)
                    .inspect_err(|_| this.stats.misses.incr())?
                {
                    Miss::Pinned(f, slot) => {
                        this.stats.misses.incr();
                        return Ok(Some((f, slot)));
                    }
                    Miss::Retry => continue,
                    Miss::NotHere => return Ok(None),
                }
            };
            let r = match want {
                Want::Read => this.pages.try_pin_read(slot, seen),
                Want::Write => this.pages.try_pin_write(slot, seen),
            };
            let refused = match r {
                Ok(pinned) => {
                    this.hit();
                    return Ok(Some((pinned.frame().unwrap_or(f), slot)));
                }
                Err(w) => w,
            };
            if refused.frame().is_none() {
                continue; // reclaimed meanwhile: fault it in
            }
            let d = *deadline.get_or_insert_with(|| bound.deadline(&this.pages));
            if want == Want::Write
                && refused.cow()
                && refused.0 & (EntryWord::PINNED_BITS | EntryWord::RECLAIMING.mask()) == 0
            {
                // Only the shared copy-on-write frame stands in the way: give this object a
                // private page (then pin it for writing like any other).
                this.layer.break_cow(this, page, slot, 0, d, None)?;
                continue;
            }
            // A writer, readers (for a write), or a reclaim writing the page back: wait.
            if matches!(bound, Bound::NoWait) {
                return Err(Error::Busy { page });
            }
            if this.pages.wait_entry(slot, refused, d) == Parked::TimedOut {
                return Err(Error::Busy { page });
            }
        }
    }

    /// The miss path.
    fn miss(this: &Arc<Self>, page: u64, want: Want, bound: Bound) -> Result<Miss<'_>> {
        let shard = &this.fills[page as usize % this.fills.len()];
        let mut table = lock(shard);
        // Acquire (in find): if a reclaim just emptied the entry, its write-back happens before
        // the fill below reads the backing store.
        if this.map.find(page).frame().is_some() {
            return Ok(Miss::Retry);
        }
        let filled = if let Some(rec) = table.get_mut(&page) {
            let inflight = rec.inflight();
            if rec.joined + 1 >= EntryWord::PINS.max() {
                // The fill cannot pre-pin one more fault (PINS would overflow): wait for its
                // outcome without joining, then look the page up again.
                drop(table);
                let _ = this.wait_fill(&inflight);
                return Ok(Miss::Retry);
            }
            rec.joined += 1;
            drop(table);
            match bound {
                Bound::Until(deadline) => this.wait_fill_until(page, &inflight, deadline)?,
                Bound::Pool | Bound::NoWait => this.wait_fill(&inflight)?,
            }
            .map(|f| (f, Held::Read))
        } else {
            if this.layer.is_frozen() && !this.owns(page) {
                return Ok(Miss::NotHere);
            }
            // The copy epoch changes only under every shard lock, which we hold.
            let epoch = this.layer.epoch();
            table.insert(page, Record::default());
            drop(table);
            Self::fill(this, page, epoch, want, bound, None)?
        };
        Ok(this.filled(page, want, filled))
    }

    /// A miss's end: the pin it holds after a fill it made or joined (`filled`: the frame and how
    /// it holds the page; `None`: look again), as `want` asks.
    fn filled(&self, page: u64, want: Want, filled: Option<(u32, Held)>) -> Miss<'_> {
        let Some((frame, held)) = filled else {
            return Miss::Retry;
        };
        // We hold a read pin (ours, or the one the filler took for us), or the writer bit, on
        // the page's entry.
        let Some(slot) = self.map.slot(page) else {
            return Miss::Retry;
        };
        if want == Want::Read || held == Held::Write || self.pages.try_upgrade(slot, frame) {
            return Miss::Pinned(frame, slot);
        }
        // Others joined too, or the page is a copy-on-write proxy: give our pin back and take
        // the ordinary write path.
        self.pages.unpin_read(slot);
        Miss::Retry
    }

    /// Waits for a joined fill: `Some(frame)` (one of its read pins is ours), `None` (look again).
    fn wait_fill(&self, inflight: &Inflight) -> Result<Option<u32>> {
        loop {
            if let Some(o) = lock(&inflight.outcome).clone() {
                return match o {
                    Outcome::Frame(f) => Ok(Some(f)),
                    Outcome::Failed(e) => Err(e),
                    Outcome::Retry => Ok(None),
                };
            }
            self.fill_park
                .park(None, || lock(&inflight.outcome).is_none());
        }
    }

    /// As [`MapperShared::wait_fill`] for a fault with a per-call time-out: at `deadline`, it
    /// leaves the fill if the fill has not published yet (under the shard lock, where the filler
    /// reads how many joined, so the pin it would have taken for us is never taken) and fails
    /// with [`Error::Busy`]; if the fill has published (its record is gone), the pin is ours and
    /// the outcome a moment away: it takes it as `wait_fill` does.
    fn wait_fill_until(
        &self,
        page: u64,
        inflight: &Arc<Inflight>,
        deadline: Option<Instant>,
    ) -> Result<Option<u32>> {
        let mut deadline = deadline;
        loop {
            if let Some(o) = lock(&inflight.outcome).clone() {
                return match o {
                    Outcome::Frame(f) => Ok(Some(f)),
                    Outcome::Failed(e) => Err(e),
                    Outcome::Retry => Ok(None),
                };
            }
            let parked = self
                .fill_park
                .park(deadline, || lock(&inflight.outcome).is_none());
            if parked == Parked::TimedOut {
                let shard = &self.fills[page as usize % self.fills.len()];
                let mut table = lock(shard);
                if let Some(rec) = table.get_mut(&page) {
                    let ours = rec
                        .waiters
                        .as_ref()
                        .is_some_and(|w| Arc::ptr_eq(w, inflight));
                    if ours {
                        rec.joined -= 1;
                        return Err(Error::Busy { page });
                    }
                }
                // Published (or settled) already: the outcome is being handed over.
                deadline = None;
            }
        }
    }

    /// Ends the fill of `page` with outcome `o`: removes its record (under the shard lock, so no
    /// fault joins after) and hands `o` to the faults that joined, if any. The caller holds
    /// `table` (that shard, locked).
    fn settle(&self, mut table: crate::sync::MutexGuard<'_, FillTable>, page: u64, o: Outcome) {
        let waiters = table.remove(&page).and_then(|r| r.waiters);
        drop(table);
        if let Some(w) = waiters {
            *lock(&w.outcome) = Some(o);
            self.fill_park.unpark_all();
        }
    }

    fn complete(&self, page: u64, o: Outcome) {
        let shard = &self.fills[page as usize % self.fills.len()];
        self.settle(lock(shard), page, o);
    }

    /// Every fill-shard lock, in order (a copy's freeze: no publication can run meanwhile).
    pub(crate) fn lock_fill_shards(&self) -> Vec<crate::sync::MutexGuard<'_, FillTable>> {
        self.fills.iter().map(lock).collect()
    }

    /// Whether this object holds `page`'s content itself (in a frame it owns, or its store),
    /// rather than reading it through the frozen layer below (`crate::copies`).
    pub(crate) fn owns(&self, page: u64) -> bool {
        self.layer.owns(page, &*self.accessor)
    }

    /// obtain -> fill -> record -> queue, for the first fault of `page` (begun at copy epoch
    /// `epoch`); or, for a page this object reads through its frozen layer, resolve -> proxy.
    /// Returns the frame, with one read pin for the caller (or, for a write fault nobody joined,
    /// the writer bit) and one for each fault that joined, or `None` (look again: a copy changed
    /// what this object owns meanwhile). `frame`: one the caller obtained already (an async
    /// fault's, `poll.rs`), `Filling` and its own, used instead of obtaining one (or freed, if
    /// the page turns out to be resolved from a layer).
    // Always inlined into the miss path (its one hot caller; the awaited fault's poll is the
    // other): outlined, its call cost the miss 1.3% more instructions (callgrind, stop 32).
    #[inline(always)]
    fn fill(
        this: &Arc<Self>,
        page: u64,
        epoch: u64,
        want: Want,
        bound: Bound,
        mut frame: Option<u32>,
    ) -> Result<Option<(u32, Held)>> {
        let pages = &*this.pages;
        if this.layer.is_layered() && !this.owns(page) {
            // An async fault's frame is kept through the resolution only where no layer held
            // the page when it looked (`poll_miss`), so that a page of zeros is filled into it;
            // a layer that holds it now (a copy or collapse in between: rare), or a failed
            // resolution, frees it.
            let started = Instant::now();
            let resolved = this.layer.resolve(this, page, bound);
            if let (Ok(Some(_)) | Err(_), Some(f)) = (&resolved, frame) {
                pages.free(f);
                frame = None;
            }
            match resolved {
                Ok(Some(r)) if this.memory.is_some() => {
                    // A mapped copy's pages live in its mapping's memory: no proxies.
                    return Self::fill_copied(this, page, epoch, want, bound, r);
                }
                Ok(Some(r)) => {
                    let published = Self::publish_proxy(this, page, epoch, r)?;
                    if published.is_some() {
                        // Resolved from a layer below: this object's fill of the page.
                        this.stats.fills.incr();
                        this.stats.fill_took(started);
                    }
                    return Ok(published.map(|f| (f, Held::Read)));
                }
                // Held by no layer below: the page is this object's (zeros, if anonymous).
                Ok(None) => {}
                Err(e) => {
                    this.stats.fill_errors.incr();
                    this.stats.fill_took(started);
                    this.complete(page, Outcome::Failed(e.clone()));
                    return Err(e);
                }
            }
        }
        let f = match frame.map_or_else(|| super::reclaim::obtain_by(pages, bound), Ok) {
            Ok(f) => f,
            Err(e) => return Err(this.obtain_failed(page, bound, e)),
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
        let started = Instant::now();
        let filled = {
            let _t = this.page_track(page, f).exclusive();
            let mut fill = |buf: &mut [u8]| {
                crate::backing::accessor::guarded("fill", || this.accessor.fill(page, buf))
            };
            match &this.memory {
                // A mapped object's page is mapped nowhere while it fills (IM1, SPEC §2.8) and
                // its frame is ours (I1): the memory fills it as it best can.
                Some(m) => m.fill(page, &mut fill),
                None => {
                    // SAFETY: Filling frames are their obtainer's alone (I1): no guard,
                    // reclaimer or other filler can reach them, so this is the only reference
                    // to the bytes.
                    let buf = unsafe {
                        std::slice::from_raw_parts_mut(pages.bytes(f), pages.page_size())
                    };
                    fill(buf)
                }
            }
        };
        this.stats.fill_took(started);
        Self::publish_fill(this, f, page, epoch, want, filled, false)
    }

    /// A fill's frame could not be obtained (`e`): ends the fill's record and returns `e`.
    fn obtain_failed(&self, page: u64, bound: Bound, e: Error) -> Error {
        // A per-call time-out is this fault's own: the faults that joined look again (one of
        // them fills, waiting as long as it may) rather than fail with it.
        let o = match (bound, &e) {
            (Bound::Until(_), Error::Exhausted { .. }) => Outcome::Retry,
            _ => Outcome::Failed(e.clone()),
        };
        self.complete(page, o);
        e
    }

    /// The fill's end, once `filled` tells how writing the page's bytes (in frame `f`, or the
    /// object's memory) went: publishes the page (record -> queue) with one read pin per
    /// fault, or abandons the fill. Returns as [`MapperShared::fill`] does.
    #[inline(always)]
    fn publish_fill(
        this: &Arc<Self>,
        f: u32,
        page: u64,
        epoch: u64,
        want: Want,
        filled: std::io::Result<()>,
        marked: bool,
    ) -> Result<Option<(u32, Held)>> {
        let pages = &*this.pages;
        if let Err(e) = filled {
            pages.counters.fill_errors.incr();
            this.stats.fill_errors.incr();
            let err = Error::Fill {
                page,
                source: ShareArc::new(e),
            };
            this.abandon(f, page, Outcome::Failed(err.clone()));
            return Err(err);
        }
        let shard = &this.fills[page as usize % this.fills.len()];
        let table = lock(shard);
        if this.is_closed() {
            drop(table);
            this.abandon(f, page, Outcome::Failed(Error::Closed));
            return Err(Error::Closed);
        }
        if this.layer.epoch() != epoch {
            // A copy moved this object's pages after we read its store: what we filled may now
            // belong to the frozen layer. Nothing published; look again.
            drop(table);
            this.abandon(f, page, Outcome::Retry);
            return Ok(None);
        }
        let joined = table.get(&page).map_or(0, |r| r.joined);
        // A write fault nobody joined takes the writer bit in the publication itself.
        let held = if want == Want::Write && joined == 0 {
            Held::Write
        } else {
            Held::Read
        };
        let published = this.map.slot_or_alloc(page).is_some_and(|slot| {
            pages.make_resident(f, 1 + joined, held == Held::Write, marked, slot)
        });
        if !published {
            // The entry was occupied: impossible while we own the fill record (only the record's
            // owner publishes this page). Report it rather than overwrite.
            drop(table);
            let err = Error::Invariant(format!("AccessMap entry of page {page} already taken"));
            this.abandon(f, page, Outcome::Failed(err.clone()));
            return Err(err);
        }
        pages.counters.fills.incr();
        this.stats.fills.incr();
        this.settle(table, page, Outcome::Frame(f));
        Ok(Some((f, held)))
    }

    /// A fill that will not be published: free the frame and hand `o` to the waiters.
    fn abandon(&self, f: u32, page: u64, o: Outcome) {
        if let Some(m) = &self.memory {
            // A mapped object's fill wrote the mapping's bytes (a memfd page outside the
            // pool's budget once the frame goes): give them up before the next fill may start.
            m.release(page);
        }
        // SAFETY: `f` is still Filling and ours.
        let owner = unsafe { self.pages.set_owner(f, None) };
        self.pages.free(f);
        self.complete(page, o);
        drop(owner);
    }
}
