//! Reclaim, the object layer's half. The frame pool picks a victim and hands it over
//! (`PagesShared::try_obtain`, `Victim`); this module writes the victim's page back through its
//! object's accessor if dirty, records a failure with the object and the page, and finishes the
//! eviction through the pool: T8 (`PagesShared::evicted`) or, on a failed write-back, T10
//! (`PagesShared::revert`). When every frame is pinned it asks the clients holding the oldest
//! pages to release them (`PagesShared::held_pages`, then the arbiter) and waits on the pool.
//! A victim that is a mapped page brings the pool's next victims with it (`evict_batch`): the
//! batch's mapped pages are taken out of their mappings and given up a run of consecutive pages
//! at a time, its frames beyond the first go to the free list (SPEC §2.8, M15).
//!
//! Orderings: none of its own. The pool's take (`Acquire`), `evicted` (`Release` swap to
//! `EMPTY`) and `revert` (`Release`) carry every edge; the write-back reads the frame's bytes
//! while the victim token proves `RECLAIMING` is held (I4).

use crate::arbitration::PageError;
use crate::error::{Error, Result};
use crate::frames::{Got, Owner, PagesShared, Victim, VictimBytes, Waited};
use crate::object::mapper::{Bound, MapperShared};
use crate::object::memory::PageMemory;
use crate::sync::{Arc, Instant, ShareArc};

/// How many holders one round of asking asks at most.
const ASK_AT_MOST: usize = 8;

/// Gives the caller a frame in `Filling` state, held exclusively: a free one, or the first
/// reclaimable one from the queue (written back first if dirty). Waits up to the pool's bound
/// for a frame to become unpinned; then fails with [`Error::Exhausted`].
pub(crate) fn obtain(pages: &PagesShared) -> Result<u32> {
    obtain_by(pages, Bound::Pool)
}

/// As [`obtain`], waiting as `bound` says.
pub(crate) fn obtain_by(pages: &PagesShared, bound: Bound) -> Result<u32> {
    // Read the clock only if we have to wait (a free or reclaimable frame needs no deadline).
    let mut waiting: Option<(Instant, Option<Instant>)> = None;
    let mut failures = 0u32;
    let mut pending: Option<Got> = None;
    loop {
        match pending.take().or_else(|| pages.try_obtain()) {
            Some(got) => {
                if let Some(r) = take(pages, got, &mut failures) {
                    return r;
                }
            }
            None => {
                let (start, deadline) =
                    *waiting.get_or_insert_with(|| (Instant::now(), bound.deadline(pages)));
                ask_holders(pages);
                match pages.wait_obtain(deadline) {
                    Waited::Got(g) => pending = Some(g),
                    Waited::Woken => {}
                    Waited::TimedOut => {
                        return Err(Error::Exhausted {
                            waited: start.elapsed(),
                        })
                    }
                }
            }
        }
    }
}

/// What [`obtain_by`] and [`poll_obtain`] do with a pick: a free frame is the caller's; a victim
/// is evicted (with its batch) and its frame the caller's, or on a failed write-back (the victims
/// back at the queue tail, dirty) `None`: try another, unless every frame has failed us (each
/// write-back of a batch counts in `failures`), then the error.
#[inline(always)]
fn take(pages: &PagesShared, got: Got, failures: &mut u32) -> Option<Result<u32>> {
    match got {
        Got::Frame(f) => Some(Ok(f)),
        Got::Victim(v) => match evict_batch(pages, v) {
            (Ok(f), _) => {
                pages.reclaimed(f);
                Some(Ok(f))
            }
            (Err(e), failed) => {
                *failures = failures.saturating_add(failed);
                (*failures >= pages.frame_count()).then_some(Err(e))
            }
        },
    }
}

/// The async form of [`obtain`], for a fault polled as a future: a frame in `Filling` state, the
/// caller's (a free one, or a victim evicted now, written back first if dirty: that I/O runs in
/// the poll), or `Pending` with the task's waker registered on the pool parker and the caller
/// counted among the waiting obtainers (`*registered`; the caller withdraws with
/// `PagesShared::unwait_obtain` at its next poll or its drop). No deadline: a future's waits end
/// when it is dropped (an executor's time-out), or with [`Error::Closed`] once `closed` says
/// its object closed (checked where it would wait; the close wakes it).
pub(crate) fn poll_obtain(
    pages: &PagesShared,
    cx: &mut std::task::Context<'_>,
    registered: &mut bool,
    closed: impl Fn() -> bool,
    except: Option<(u32, &crate::sync::atomic::AtomicU64)>,
) -> std::task::Poll<Result<u32>> {
    let mut failures = 0u32;
    let mut pending: Option<Got> = None;
    loop {
        match pending.take().or_else(|| pages.try_obtain_except(except)) {
            Some(got) => {
                if let Some(r) = take(pages, got, &mut failures) {
                    return std::task::Poll::Ready(r);
                }
            }
            None => {
                ask_holders(pages);
                match pages.poll_obtain(cx, registered, &closed, except) {
                    std::task::Poll::Ready(None) if closed() => {
                        return std::task::Poll::Ready(Err(Error::Closed))
                    }
                    std::task::Poll::Ready(g) => pending = g,
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            }
        }
    }
}

/// Every frame is pinned: asks the clients holding the oldest queued pages to release them (each
/// holder once per grant). The callbacks run with no lock held.
fn ask_holders(pages: &PagesShared) {
    for o in pages.held_pages(ASK_AT_MOST) {
        if let Some(slot) = o.slot() {
            o.mapper.arb.ask_release(pages, slot, o.page);
        }
    }
}

/// A write-back's failure: the error to return, and for an unusual one the page to record it on.
type Failure = (Error, Option<(Arc<MapperShared>, u64, PageError)>);

/// Finishes a victim: writes its page back if dirty, then T8 (the frame, still `Reclaiming`
/// and the caller's, is returned to be refilled or freed). On a failed write-back the frame goes
/// back to `Resident` (T10: dirty, at the queue tail), the error is recorded with the owner, and
/// returned.
///
/// An unusual error (not EIO, ENOSPC, EDQUOT) is also recorded on the page itself, which escapes
/// to an out-of-line arbitration record, so reclaim skips it until a successful write-back
/// clears it (see `arbitration::PageError`).
pub(crate) fn evict(pages: &PagesShared, v: Victim) -> Result<u32> {
    let dirty = v.taken().dirty();
    let failed = pages.with_victim(&v, |owner, bytes| {
        let o = owner?;
        o.slot()?;
        let memory = o.mapper.memory.as_ref();
        if let Some(m) = memory {
            // A mapped page: no access through the mapping completes from here on (a store
            // that did is in the bytes read below; a later one faults and waits for the page:
            // it is taken). Clean pages too: their table entries must go before T8.
            m.quiesce(o.page, true);
        }
        let failed = if dirty {
            write_back(pages, o, bytes)
        } else {
            None
        };
        if let (None, Some(m)) = (&failed, memory) {
            // Before T8: a fault after it fills these bytes afresh.
            m.release(o.page);
        }
        failed
    });
    finish(pages, v, failed)
}

/// As [`evict`], for the victim of a reclaim that may take more (`PagesBuilder::evict_batch`):
/// if `first` is a mapped page, the pool's next victims are taken with it, every mapped page
/// of the batch is quiesced, and later released, a run of an object's consecutive pages at a
/// time (one system call per run on real memory), the dirty ones written back in between.
/// Returns the first frame evicted (the others go to the free list), or the first victim's
/// error if none was evicted; and how many write-backs failed.
pub(crate) fn evict_batch(pages: &PagesShared, first: Victim) -> (Result<u32>, u32) {
    let one = |v| {
        let r = evict(pages, v);
        let failed = u32::from(r.is_err());
        (r, failed)
    };
    let batch = pages.evict_batch();
    if batch <= 1 || !pages.with_victim(&first, |o, _| o.is_some_and(|o| o.mapper.memory.is_some()))
    {
        return one(first);
    }
    let mut victims = Vec::with_capacity(batch);
    victims.push(first);
    pages.take_victims(batch - 1, &mut victims);
    if let [_] = victims[..] {
        return one(victims.swap_remove(0));
    }
    // Every mapped page of the batch, with its object's memory, as the victims hold them.
    let mapped: Vec<Option<(ShareArc<dyn PageMemory>, u64)>> = victims
        .iter()
        .map(|v| {
            pages.with_victim(v, |o, _| {
                let o = o?;
                o.slot()?;
                Some((o.mapper.memory.clone()?, o.page))
            })
        })
        .collect();
    // No access through a mapping completes from here on (as `evict`'s quiesce, per page).
    by_runs(&mapped, |m, run| m.quiesce_evicted(run));
    let failed: Vec<Option<Failure>> = victims
        .iter()
        .map(|v| {
            let dirty = v.taken().dirty();
            pages.with_victim(v, |o, bytes| {
                let o = o?;
                o.slot()?;
                if dirty {
                    write_back(pages, o, bytes)
                } else {
                    None
                }
            })
        })
        .collect();
    // Before T8, the pages written back (or clean) give their bytes up.
    let released: Vec<_> = mapped
        .into_iter()
        .zip(&failed)
        .map(|(m, f)| m.filter(|_| f.is_none()))
        .collect();
    by_runs(&released, |m, run| m.release_many(run));
    let failures = failed.iter().filter(|f| f.is_some()).count() as u32;
    let mut results = victims
        .into_iter()
        .zip(failed)
        .map(|(v, f)| finish(pages, v, f));
    let mut got = results.next().unwrap_or(Err(Error::Closed));
    for r in results {
        match (r, &got) {
            // A frame beyond the first, for the next faults.
            (Ok(f), Ok(_)) => pages.reclaimed_ahead(f),
            (Ok(f), Err(_)) => got = Ok(f),
            // Recorded with its object (`write_back`); the page is back in the queue.
            (Err(_), _) => {}
        }
    }
    (got, failures)
}

/// Calls `f` with each object's memory and the sorted pages of it named in `pages`.
fn by_runs(
    pages: &[Option<(ShareArc<dyn PageMemory>, u64)>],
    mut f: impl FnMut(&dyn PageMemory, &[u64]),
) {
    let mut keyed: Vec<(*const u8, u64, &ShareArc<dyn PageMemory>)> = pages
        .iter()
        .flatten()
        .map(|(m, p)| (ShareArc::as_ptr(m) as *const u8, *p, m))
        .collect();
    keyed.sort_unstable_by_key(|&(m, p, _)| (m, p));
    for group in keyed.chunk_by(|a, b| a.0 == b.0) {
        let run: Vec<u64> = group.iter().map(|&(_, p, _)| p).collect();
        f(group[0].2.as_ref(), &run);
    }
}

/// Writes the victim's page (owner `o`, its frame's `bytes`, or its mapping's memory, quiesced
/// already) back; on failure, counts and records the error with the object.
fn write_back(pages: &PagesShared, o: &Owner, bytes: VictimBytes<'_>) -> Option<Failure> {
    let flush = |buf: &[u8]| {
        crate::backing::accessor::guarded("flush", || o.mapper.accessor.flush(o.page, buf))
    };
    let started = crate::sync::Instant::now();
    let r = match o.mapper.memory.as_ref() {
        None => bytes.read(flush),
        Some(m) => {
            let _t = m.track(o.page).shared();
            // SAFETY: the page is taken (RECLAIMING excludes every pin and filler, I4) and
            // quiesced (no access through the mapping, IM1); its bytes live while the object
            // does, which its owner reference keeps.
            flush(unsafe { std::slice::from_raw_parts(m.bytes(o.page), pages.page_size()) })
        }
    };
    o.mapper.stats.writeback_took(started);
    match r {
        Ok(()) => {
            pages.counters.writebacks.incr();
            o.mapper.stats.writebacks.incr();
            None
        }
        Err(e) => {
            pages.counters.writeback_errors.incr();
            o.mapper.stats.writeback_errors.incr();
            let source = ShareArc::new(e);
            let unusual = PageError::of(&source);
            let err = Error::WriteBack {
                object: o.mapper.id,
                page: o.page,
                source,
            };
            o.mapper.record_error(err.clone());
            Some((err, unusual.map(|pe| (o.mapper.clone(), o.page, pe))))
        }
    }
}

/// Ends an eviction: T8 if nothing `failed`, else T10 and the error, recorded on the page if
/// unusual.
fn finish(pages: &PagesShared, v: Victim, failed: Option<Failure>) -> Result<u32> {
    let Some((err, unusual)) = failed else {
        pages.with_victim(&v, |o, _| {
            if let Some(o) = o {
                o.mapper.stats.evictions.incr();
            }
        });
        return Ok(pages.evicted(v));
    };
    let f = pages.revert(v);
    // The frame is Resident again (reverted): the error is recorded through the page's entry if
    // it is still in `f`, no other reclaim took it meanwhile and no write-back succeeded
    // meanwhile (it is still dirty; see `record_error`, scenarios C23 and C43).
    if let Some((mapper, page, pe)) = unusual {
        if let Some(slot) = mapper.map.slot(page) {
            mapper.arb.record_error(pages, slot, page, f, pe)?;
        }
    }
    Err(err)
}
