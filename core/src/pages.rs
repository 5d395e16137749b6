//! The pool handle: [`Pages`] (the public face of `PagesShared`), its builder and its
//! statistics.

use crate::backing::{anonymous, swap};
use crate::frames::{memory, queue, Census, PagesShared};
use crate::object::layer::Layer;
use crate::object::mapper::MapperShared;
use crate::sync::{Arc, Duration};
use crate::{copies, sync};
use crate::{Accessor, Error, LatencyHistogram, PageMapper, Result};

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
    evict_batch: Option<u32>,
    count_hits: bool,
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
            evict_batch: None,
            count_hits: false,
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

    /// The eviction policy: which page to reclaim when no frame is free ([`Policy`](crate::Policy): FIFO of
    /// issue, the default and the departure design; CLOCK; SIEVE, which the miss-ratio study in
    /// `docs/` recommends for plain skewed workloads; or S3-FIFO, ahead where scans or loops
    /// pollute the cache). Hits cost the same under every policy.
    pub fn policy(mut self, policy: queue::Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How many pages a reclaim that evicts a page of a [`Mapping`](crate::Mapping) evicts at
    /// once (default: 16, or a sixteenth of the frames if that is fewer, at least 1; at most the
    /// frames). The pages of one object are taken out of its mappings and their memory given up
    /// a range at a time, one system call per run of consecutive pages instead of one per page;
    /// the frames beyond the first go to the free list, for the next faults to take without
    /// reclaiming. A batch takes only pages nobody holds, and writes back the dirty ones first,
    /// as any eviction does. 1 turns batching off. A batch starts only at a mapped page, but
    /// takes the policy's next victims whatever their objects (pages outside mappings are then
    /// evicted ahead of need, their write-backs one call each); pools without mappings are not
    /// affected. It takes none while an obtainer waits for a frame. A large batch lengthens the
    /// fault that takes it (its dirty pages are written back one after the other) and may evict
    /// pages fault-around has just mapped: keep it well below the frames.
    pub fn evict_batch(mut self, pages: u32) -> Self {
        self.evict_batch = Some(pages);
        self
    }

    /// Whether the pool's objects count their hits ([`ObjectStats::hits`](crate::ObjectStats::hits),
    /// [`Stats::hits`]; default: no, and those stay 0). A counted hit adds a thread-local load
    /// and a store to a counter of the thread's own (no locked instruction), which measured
    /// about a tenth of a read guard's hit on a noisy 2-core VM (README, Statistics); misses,
    /// fills, evictions, write-backs and the rest are counted either way, on their slow paths.
    ///
    /// ```
    /// use pagecore::{MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(64).frames(2).count_hits(true).build()?;
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 4)?;
    /// drop(obj.read(0)?); // a miss
    /// drop(obj.read(0)?); // a hit
    /// assert_eq!((obj.stats().hits, obj.stats().misses), (1, 1));
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn count_hits(mut self, on: bool) -> Self {
        self.count_hits = on;
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
                self.policy,
                self.evict_batch,
                self.count_hits,
            )?),
            swap: sync::ShareArc::new(swap::PoolSwap::new(
                self.swap,
                self.page_size,
                self.swap_slots,
            )),
        })
    }
}

/// Pool-wide counters since the pool was built ([`Pages::stats`]; the frame states are
/// [`Pages::census`]'s). Every frame a pool hands out was free or reclaimed, so at any quiet
/// moment before any object was closed `fills + cow_breaks == reclaims + frames in use` (frames
/// freed by a close return to the free list without a reclaim).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pages filled through an accessor.
    pub fills: u64,
    /// Fills that failed.
    pub fill_errors: u64,
    /// Frames reclaimed for reuse: taken from their page (written back first if dirty) by
    /// the eviction policy for a fill or a copy-on-write break, or by a batched eviction
    /// ([`PagesBuilder::evict_batch`]) for the free list.
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
    /// Hits of every object the pool opened and of their copies, closed ones included, if the
    /// pool counts hits ([`PagesBuilder::count_hits`])
    /// ([`ObjectStats::hits`](crate::ObjectStats::hits)); the frozen layers copies share are the
    /// pool's own and not counted (their pages' evictions are in `reclaims`).
    pub hits: u64,
    /// Misses of every object ([`ObjectStats::misses`](crate::ObjectStats::misses)).
    pub misses: u64,
    /// Pages evicted, of every object ([`ObjectStats::evictions`](crate::ObjectStats::evictions)).
    pub evictions: u64,
    /// Fill latencies of every object ([`ObjectStats::fill_latency`](crate::ObjectStats::fill_latency)).
    pub fill_latency: LatencyHistogram,
    /// Write-back latencies of every object ([`ObjectStats::writeback_latency`](crate::ObjectStats::writeback_latency)).
    pub writeback_latency: LatencyHistogram,
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
    pub(crate) shared: Arc<PagesShared>,
    swap: sync::ShareArc<swap::PoolSwap>,
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
    /// returned [`PageMapper`] shares the object. Fails with [`Error::AccessorPageSize`] if the
    /// accessor was made for another page size ([`Accessor::page_size`]).
    pub fn open(&self, accessor: impl Accessor, limit: u64) -> Result<PageMapper> {
        if let Some(size) = accessor.page_size() {
            if size != self.page_size() {
                return Err(Error::AccessorPageSize {
                    accessor: size,
                    page_size: self.page_size(),
                });
            }
        }
        Ok(PageMapper::from_shared(Arc::new(MapperShared::new(
            self.shared.clone(),
            self.swap.clone(),
            sync::ShareArc::new(accessor),
            limit,
            Layer::top(&copies::Copies),
        ))))
    }

    /// Opens an object whose resident pages live in `memory` instead of in their frames (a
    /// mapped object: `mmap::core::MapCore`).
    pub(crate) fn open_with_memory(
        &self,
        accessor: sync::ShareArc<dyn Accessor>,
        limit: u64,
        memory: sync::ShareArc<dyn crate::object::memory::PageMemory>,
    ) -> Result<PageMapper> {
        if let Some(size) = accessor.page_size() {
            if size != self.page_size() {
                return Err(Error::AccessorPageSize {
                    accessor: size,
                    page_size: self.page_size(),
                });
            }
        }
        Ok(PageMapper::from_shared(Arc::new(
            MapperShared::new(
                self.shared.clone(),
                self.swap.clone(),
                accessor,
                limit,
                Layer::top(&copies::Copies),
            )
            .with_memory(memory),
        )))
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
        let swap = self.swap.get()?;
        self.open(anonymous::Anonymous::new(swap), limit)
    }

    /// The pool's counters since it was built, and the sums of its objects' ([`ObjectStats`](crate::ObjectStats):
    /// hits, misses, evictions, latency histograms; objects already closed included). Relaxed
    /// loads, and a statistics-only lock over the objects' list; never fails (the frame states
    /// are [`Pages::census`]'s, which walks every frame under the lists lock).
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let o = self.shared.objects.sum();
        Stats {
            hits: o.hits,
            misses: o.misses,
            evictions: o.evictions,
            fill_latency: o.fill_latency,
            writeback_latency: o.writeback_latency,
            fills: c.fills.get(),
            fill_errors: c.fill_errors.get(),
            reclaims: c.reclaims.get(),
            writebacks: c.writebacks.get(),
            writeback_errors: c.writeback_errors.get(),
            obtain_waits: c.obtain_waits.get(),
            grant_waits: c.grant_waits.get(),
            revocations: c.revocations.get(),
            cow_breaks: c.cow_breaks.get(),
        }
    }

    /// Reports the pool's counters ([`Pages::stats`]) and frame states ([`Pages::census`])
    /// through the [`metrics`] crate's facade, to whatever recorder the program installed (a
    /// Prometheus exporter, StatsD, ...). Counters (absolute values): `pagecore_hits_total`,
    /// `pagecore_misses_total`, `pagecore_fills_total`, `pagecore_fill_errors_total`,
    /// `pagecore_evictions_total`, `pagecore_reclaims_total`, `pagecore_writebacks_total`,
    /// `pagecore_writeback_errors_total`, `pagecore_obtain_waits_total`,
    /// `pagecore_grant_waits_total`, `pagecore_revocations_total`, `pagecore_cow_breaks_total`;
    /// gauges: `pagecore_frames` labelled `state` (`free`, `filling`, `resident`,
    /// `reclaiming`), `pagecore_frames_pinned`, `pagecore_frames_dirty`,
    /// `pagecore_threads_waiting_for_frames`. The latency histograms `pagecore_fill_seconds` and
    /// `pagecore_writeback_seconds` are recorded as fills and write-backs happen, with no call,
    /// through the recorder the filling thread sees (install a global one: a thread-local
    /// recorder sees only its own thread's). Every series is labelled `pool` with the pool's
    /// number in the process (pools built in turn are numbered 0, 1, ...; an object's id is
    /// unique within its pool).
    /// Call it as often as the exporter scrapes (a timer thread, or before rendering); it costs
    /// what [`Pages::stats`] and [`Pages::census`] cost. The `metrics` feature.
    ///
    /// ```
    /// # #[cfg(feature = "metrics")] {
    /// use pagecore::{MemoryAccessor, Pages};
    /// // metrics_exporter_prometheus::PrometheusBuilder::new().install()?; // in a real program
    /// let pages = Pages::builder().page_size(64).frames(4).build()?;
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
    /// drop(obj.read(0)?);
    /// pages.report_metrics(); // pool-wide series
    /// obj.report_metrics();   // this object's, labelled object="<id>"
    /// # }
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    #[cfg(feature = "metrics")]
    pub fn report_metrics(&self) {
        let s = self.stats();
        let pool = self.shared.pool_id().to_string();
        for (name, v) in [
            ("pagecore_hits_total", s.hits),
            ("pagecore_misses_total", s.misses),
            ("pagecore_fills_total", s.fills),
            ("pagecore_fill_errors_total", s.fill_errors),
            ("pagecore_evictions_total", s.evictions),
            ("pagecore_reclaims_total", s.reclaims),
            ("pagecore_writebacks_total", s.writebacks),
            ("pagecore_writeback_errors_total", s.writeback_errors),
            ("pagecore_obtain_waits_total", s.obtain_waits),
            ("pagecore_grant_waits_total", s.grant_waits),
            ("pagecore_revocations_total", s.revocations),
            ("pagecore_cow_breaks_total", s.cow_breaks),
        ] {
            metrics::counter!(name, "pool" => pool.clone()).absolute(v);
        }
        if let Ok(c) = self.census() {
            for (state, n) in [
                ("free", c.free),
                ("filling", c.filling),
                ("resident", c.resident),
                ("reclaiming", c.reclaiming),
            ] {
                metrics::gauge!("pagecore_frames", "pool" => pool.clone(), "state" => state).set(n);
            }
            metrics::gauge!("pagecore_frames_pinned", "pool" => pool.clone()).set(c.pinned);
            metrics::gauge!("pagecore_frames_dirty", "pool" => pool.clone()).set(c.dirty);
            metrics::gauge!("pagecore_threads_waiting_for_frames", "pool" => pool)
                .set(c.waiting_for_frames);
        }
    }

    /// Checks conservation (I1) and uniqueness (I2) at this instant and returns the census of
    /// frame states. Safe to call at any time, concurrently with any operation: it takes the
    /// lists lock, under which those invariants hold exactly (SPEC.md). An `Err` describes a
    /// violated invariant, which is a pagecore bug.
    pub fn census(&self) -> Result<Census, Error> {
        self.shared.check_invariants().map_err(Error::Invariant)
    }
}
