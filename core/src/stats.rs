//! Statistics: per-object counters ([`ObjectStats`], from [`PageMapper::stats`]) and their
//! pool-wide sums ([`Stats`](crate::Stats), from [`Pages::stats`](crate::Pages::stats)), with
//! latency histograms of fills and write-backs ([`LatencyHistogram`]).
//!
//! Statistics are not part of any protocol: nothing reads them to decide anything. Their
//! atomics are std's even under loom and shuttle (like `sync::Counter`), so the models explore
//! only the protocol's own operations, and every access is `Relaxed`: a counter orders nothing.
//!
//! # What a hit costs
//!
//! Hits are counted only in pools built with `PagesBuilder::count_hits(true)` (otherwise a hit
//! reads one flag beside the fields it reads anyway). A hit is one CAS on the page's entry; a shared counter beside it would add a locked
//! read-modify-write (and a contended cache line) to every hit. Hits are instead counted in a
//! `sync::HitCounter`: four counters per CPU (8 to 256), each on its own cache line and *owned*
//! by one thread at a time, which adds to its own with a plain load and store (no locked
//! instruction, no line shared with another writer). A thread gets a counter the first time it
//! counts a hit, and gives it back when it exits (under a mutex, so the next owner sees every
//! count its predecessor made); threads beyond those add to one more, shared counter with
//! `fetch_add`. No thread but its owner writes an owned counter, so no count is lost. Under
//! loom and shuttle, whose threads share one OS thread's thread-locals, every thread shares.
//!
//! Misses, fills, evictions, write-backs, grant waits and revocations are counted on their own
//! (slow) paths, with one `fetch_add` each; a fill and a write-back read the clock twice for the
//! histogram (about 40 ns beside the page's I/O).
//!
//! An object's statistics take about 1 KiB, plus (if the pool counts hits) 256 bytes per CPU
//! for its hit counter (at least 576). The
//! pool's registry holds every object's until it is gone; gone objects' counts are folded
//! into the pool's sums when they are next asked for, or when the registry has doubled.

use crate::sync::{Counter, HitCounter, ShareArc, StatLock};
use std::time::{Duration, Instant};

/// Buckets of a [`Histogram`]: bucket 0 holds 0 ns, bucket `b` holds `[2^(b-1), 2^b)` ns; the
/// last holds everything from 2^46 ns (about 20 hours) up.
pub const BUCKETS: usize = 48;

/// A latency histogram with power-of-two buckets (one `fetch_add` per sample).
pub(crate) struct Histogram {
    buckets: [Counter; BUCKETS],
    sum_ns: Counter,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Counter::default()),
            sum_ns: Counter::default(),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Histogram {
    /// Records one sample.
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].incr();
        self.sum_ns.add(ns);
    }

    /// The samples so far.
    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            counts: std::array::from_fn(|b| self.buckets[b].get()),
            sum_ns: self.sum_ns.get(),
        }
    }
}

/// The bucket of a sample of `ns` nanoseconds.
fn bucket_of(ns: u64) -> usize {
    ((u64::BITS - ns.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// A snapshot of a latency histogram: how many samples fell in each power-of-two bucket of
/// nanoseconds, and their sum. Quantiles are bucket bounds, so within a factor of two.
///
/// ```
/// use pagecore::{MemoryAccessor, Pages};
/// let pages = Pages::builder().page_size(64).frames(4).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 64 * 16)?;
/// for p in 0..8 {
///     drop(obj.read(p)?); // 8 fills (4 frames: 4 evictions)
/// }
/// let fills = obj.stats().fill_latency;
/// assert_eq!(fills.count(), 8);
/// assert!(fills.quantile(0.5) <= fills.quantile(0.99));
/// assert!(fills.mean() <= fills.quantile(1.0));
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    sum_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("mean", &self.mean())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

impl LatencyHistogram {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |n, &c| n.saturating_add(c))
    }

    /// Mean of the samples (zero without samples).
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns / n),
        }
    }

    /// An upper bound of the `q` quantile (`q` in 0..=1; below 0 is 0, above 1 and NaN are 1):
    /// the upper end of the bucket holding the sample of that rank, so less than twice the true
    /// value (for samples up to 2^46 ns, about 20 hours; the last bucket's bound is `u64::MAX`
    /// ns); zero without samples.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank (1-based) of the sample at quantile q.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Duration::from_nanos(Self::upper_ns(b));
            }
        }
        Duration::from_nanos(Self::upper_ns(BUCKETS - 1))
    }

    /// The samples per bucket: `(upper bound, count)` for each bucket holding any, in order.
    /// Bucket bounds are powers of two of nanoseconds (the last bucket's bound is `u64::MAX` ns).
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(b, &c)| (Duration::from_nanos(Self::upper_ns(b)), c))
    }

    /// The sum of every sample.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// This histogram with `other`'s samples added.
    pub fn merged(mut self, other: &LatencyHistogram) -> LatencyHistogram {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self
    }

    /// The largest value bucket `b` holds.
    fn upper_ns(b: usize) -> u64 {
        match b {
            0 => 0,
            b if b >= BUCKETS - 1 => u64::MAX,
            b => (1u64 << b) - 1,
        }
    }
}

/// An object's counters (see [`ObjectStats`] for what each counts).
#[derive(Debug, Default)]
pub(crate) struct ObjectCounters {
    pub(crate) hits: HitCounter,
    pub(crate) misses: Counter,
    pub(crate) fills: Counter,
    pub(crate) fill_errors: Counter,
    pub(crate) evictions: Counter,
    pub(crate) writebacks: Counter,
    pub(crate) writeback_errors: Counter,
    pub(crate) grant_waits: Counter,
    pub(crate) revocations: Counter,
    pub(crate) fill_time: Histogram,
    pub(crate) writeback_time: Histogram,
    /// The pool's number, the `pool` label of the latency samples (the `metrics` feature).
    #[cfg(feature = "metrics")]
    pool: metrics::SharedString,
}

impl ObjectCounters {
    /// The counters of a new object of pool number `pool`, with a hit counter if `count_hits`.
    pub(crate) fn new(pool: u64, count_hits: bool) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = pool;
        Self {
            hits: HitCounter::new(count_hits),
            #[cfg(feature = "metrics")]
            pool: metrics::SharedString::from_shared(ShareArc::from(pool.to_string())),
            ..Self::default()
        }
    }

    /// A fill that began at `started` ended (well or not): its latency recorded (and, with the
    /// `metrics` feature, reported as `pagecore_fill_seconds`).
    pub(crate) fn fill_took(&self, started: Instant) {
        self.took(&self.fill_time, "pagecore_fill_seconds", started);
    }

    /// A write-back that began at `started` ended: as [`Self::fill_took`]
    /// (`pagecore_writeback_seconds`).
    pub(crate) fn writeback_took(&self, started: Instant) {
        self.took(&self.writeback_time, "pagecore_writeback_seconds", started);
    }

    /// Records the time since `started` in `hist` (and, with `metrics`, as sample `name`).
    fn took(&self, hist: &Histogram, name: &'static str, started: Instant) {
        let d = started.elapsed();
        hist.record(d);
        #[cfg(feature = "metrics")]
        metrics::histogram!(name, "pool" => self.pool.clone()).record(d.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = name;
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> ObjectStats {
        ObjectStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            fills: self.fills.get(),
            fill_errors: self.fill_errors.get(),
            evictions: self.evictions.get(),
            writebacks: self.writebacks.get(),
            writeback_errors: self.writeback_errors.get(),
            grant_waits: self.grant_waits.get(),
            revocations: self.revocations.get(),
            fill_latency: self.fill_time.snapshot(),
            writeback_latency: self.writeback_time.snapshot(),
        }
    }
}

/// An object's counters since it was opened ([`PageMapper::stats`](crate::PageMapper::stats)).
/// A few relaxed loads, no lock. Every access that is served or fails on the page's content is
/// a hit or a miss (one refused at once, such as a `try_request` that would block, is neither);
/// a miss fills the page or joins another access's fill.
///
/// ```
/// use pagecore::{MemoryAccessor, Pages};
/// let pages = Pages::builder().page_size(64).frames(2).count_hits(true).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
/// obj.write(0)?[0] = 1; // a miss: filled, then dirty
/// drop(obj.read(0)?);   // a hit
/// drop(obj.read(1)?);   // a miss
/// drop(obj.read(2)?);   // a miss that evicts page 0, written back first
/// let s = obj.stats();
/// assert_eq!((s.hits, s.misses, s.fills), (1, 3, 3));
/// assert_eq!((s.evictions, s.writebacks), (1, 1));
/// assert_eq!(s.writeback_latency.count(), 1);
/// assert_eq!(pages.stats().hits, 1); // the pool sums its objects'
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectStats {
    /// Guards and client grants served by a resident page (including a page another access
    /// was filling, found resident on a second look), if the pool counts hits
    /// ([`PagesBuilder::count_hits`](crate::PagesBuilder::count_hits)); else 0.
    pub hits: u64,
    /// Guards, client grants and mapping faults that found the page absent: they filled it, or
    /// joined another access's fill (whether that fill succeeded or failed).
    pub misses: u64,
    /// Pages filled through the object's accessor (or resolved from a copy's layer).
    pub fills: u64,
    /// Fills that failed.
    pub fill_errors: u64,
    /// The object's pages whose frames were reclaimed (written back first if dirty).
    pub evictions: u64,
    /// The object's dirty pages written back (by reclaim, sync or close).
    pub writebacks: u64,
    /// Write-backs that failed.
    pub writeback_errors: u64,
    /// Client requests (and upgrades) on the object that had to wait.
    pub grant_waits: u64,
    /// Revocations asked of the object's clients.
    pub revocations: u64,
    /// How long fills took (the accessor's `fill`, or a copy's resolution), failed ones
    /// included (so `fill_latency.count() == fills + fill_errors`).
    pub fill_latency: LatencyHistogram,
    /// How long write-backs took (the accessor's `flush`), failed ones included.
    pub writeback_latency: LatencyHistogram,
}

impl ObjectStats {
    /// The counters of `self` and `other` added (the pool's sums).
    pub fn merged(&self, other: &ObjectStats) -> ObjectStats {
        ObjectStats {
            hits: self.hits.saturating_add(other.hits),
            misses: self.misses.saturating_add(other.misses),
            fills: self.fills.saturating_add(other.fills),
            fill_errors: self.fill_errors.saturating_add(other.fill_errors),
            evictions: self.evictions.saturating_add(other.evictions),
            writebacks: self.writebacks.saturating_add(other.writebacks),
            writeback_errors: self.writeback_errors.saturating_add(other.writeback_errors),
            grant_waits: self.grant_waits.saturating_add(other.grant_waits),
            revocations: self.revocations.saturating_add(other.revocations),
            fill_latency: self.fill_latency.merged(&other.fill_latency),
            writeback_latency: self.writeback_latency.merged(&other.writeback_latency),
        }
    }
}

/// Reports `s`, object `object`'s counters, through the `metrics` facade (the `metrics`
/// feature; [`PageMapper::report_metrics`](crate::PageMapper::report_metrics)).
#[cfg(feature = "metrics")]
pub(crate) fn report_object(pool: u64, object: u64, s: &ObjectStats) {
    let (pool, id) = (pool.to_string(), object.to_string());
    for (name, v) in [
        ("pagecore_object_hits_total", s.hits),
        ("pagecore_object_misses_total", s.misses),
        ("pagecore_object_fills_total", s.fills),
        ("pagecore_object_fill_errors_total", s.fill_errors),
        ("pagecore_object_evictions_total", s.evictions),
        ("pagecore_object_writebacks_total", s.writebacks),
        ("pagecore_object_writeback_errors_total", s.writeback_errors),
        ("pagecore_object_grant_waits_total", s.grant_waits),
        ("pagecore_object_revocations_total", s.revocations),
    ] {
        metrics::counter!(name, "pool" => pool.clone(), "object" => id.clone()).absolute(v);
    }
}

/// The counters of every object a pool opened: live objects' are read when asked, and an
/// object's are folded into `retired` once only this registry holds them.
#[derive(Default)]
pub(crate) struct Registry {
    // A leaf lock taken alone (by open and by the pool's stats), never with a protocol lock:
    // statistics are outside the lock hierarchy, as their atomics are outside the models.
    inner: StatLock<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    live: Vec<ShareArc<ObjectCounters>>,
    retired: ObjectStats,
    /// `live.len()` after the last sweep of gone objects.
    swept: usize,
}

impl RegistryInner {
    /// Folds the counters of objects that are gone into `retired`; returns the live ones' sum
    /// (with `retired`).
    fn sweep(&mut self) -> ObjectStats {
        let mut sum = self.retired;
        let mut i = 0;
        while i < self.live.len() {
            let s = self.live[i].snapshot();
            sum = sum.merged(&s);
            if ShareArc::strong_count(&self.live[i]) == 1 {
                // The object is gone: nothing counts on these any more.
                self.retired = self.retired.merged(&s);
                self.live.swap_remove(i);
            } else {
                i += 1;
            }
        }
        self.swept = self.live.len();
        sum
    }
}

impl Registry {
    /// Adds an object's counters. Sweeps gone objects' whenever the list has doubled since the
    /// last sweep, so a program that opens and drops objects without ever asking for the
    /// pool's sums keeps at most about twice its live objects' counters.
    pub(crate) fn register(&self, c: ShareArc<ObjectCounters>) {
        self.inner.with(|r| {
            r.live.push(c);
            if r.live.len() >= 2 * r.swept.max(32) {
                r.sweep();
            }
        });
    }

    /// The sums over every object the pool opened.
    pub(crate) fn sum(&self) -> ObjectStats {
        self.inner.with(RegistryInner::sweep)
    }

    /// Objects whose counters the registry holds (live ones, and gone ones not yet swept).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.inner.with(|r| r.live.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects opened and dropped without the pool's sums ever asked for: the registry keeps
    /// a bounded number of counters, and the sums still count every object.
    #[test]
    fn the_registry_forgets_gone_objects_as_it_grows() {
        let r = Registry::default();
        let keep: Vec<_> = (0..10)
            .map(|_| ShareArc::new(ObjectCounters::default()))
            .collect();
        for k in &keep {
            r.register(k.clone());
        }
        for _ in 0..10_000 {
            let c = ShareArc::new(ObjectCounters::default());
            c.misses.incr();
            r.register(c);
        }
        assert!(r.held() <= 64, "{} counters held", r.held());
        keep[0].misses.incr();
        assert_eq!(r.sum().misses, 10_001);
        assert_eq!(r.held(), 10);
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(1023), 10);
        assert_eq!(bucket_of(1024), 11);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for ns in [0u64, 1, 5, 100, 4096, 1 << 40] {
            assert!(ns <= LatencyHistogram::upper_ns(bucket_of(ns)));
            let b = bucket_of(ns);
            assert!(b == 0 || ns > LatencyHistogram::upper_ns(b - 1));
        }
    }

    #[test]
    fn quantiles_bound_the_samples() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile(0.5), Duration::ZERO);
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.sum(), Duration::from_micros(5050));
        assert_eq!(s.mean(), Duration::from_nanos(50_500));
        // The true median is 50 µs; the bound is within a factor of two above it.
        let p50 = s.quantile(0.5);
        assert!(p50 >= Duration::from_micros(50) && p50 < Duration::from_micros(100));
        assert!(s.quantile(1.0) >= Duration::from_micros(100));
        assert!(s.quantile(f64::NAN) == s.quantile(1.0) && s.quantile(-1.0) == s.quantile(0.0));
        assert_eq!(s.buckets().map(|(_, c)| c).sum::<u64>(), 100);
        let m = s.merged(&s);
        assert_eq!((m.count(), m.sum()), (200, Duration::from_micros(10_100)));
    }
}
