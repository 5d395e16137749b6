//! The fault path polled as a future (`PageMapper::read_async`, `write_async`): the steps of
//! the blocking path (module doc of `object::mapper`), where each of its waits registers the
//! task's waker instead of parking the thread, and nothing a dropped future leaves behind needs
//! undoing.
//!
//! * A resident page held by a writer, readers (for a write) or a reclaim: the waker goes on the
//!   frame's page parker (`PagesShared::poll_wait_entry`, `WAIT_PAGE` set on the entry), which
//!   the holder's last unpin notifies, as for a parked thread.
//! * Another fault's fill of the page: the future waits for the fill's outcome on the fill
//!   parker **without joining it** (the filler pre-pins nothing for it), then looks the page up
//!   again. A joined fault owns a pin the filler takes for it, which a future dropped before
//!   its next poll could not give back; a fill outcome's wake-up takes every waker.
//! * No frame: the future obtains one **before** it records a fill (`reclaim::poll_obtain`:
//!   `WAIT_POOL` left on the pages in the way, the future counted among the waiting obtainers
//!   until its next poll or its drop, its waker on the pool parker), so no fill record, which
//!   other faults would join, ever waits on a future that may be dropped. With the frame in
//!   hand it records the fill under the shard lock (or, if another fault got there first,
//!   frees the frame and waits for that one) and fills at once.
//!
//! * A page an object in a chain of copies reads through its frozen layers: the future first
//!   awaits the page in the layer that holds it (`poll_in_layers`: the layer's page pinned for
//!   reading by the same polled path, its fill, reclaim and frame waits registering the waker),
//!   then resolves it as a blocking fault does (`MapperShared::miss`), which, with the layer's
//!   page resident and pinned, publishes the proxy without waiting; then it unpins the layer's
//!   page. The pin is a hint: the resolution walks the chain again and decides, so a collapse
//!   or a copy in between costs at most one blocking wait. A page of such an object that no
//!   layer holds (zeros) is the object's own: its frame is awaited as for any miss, and kept
//!   through the fill's resolution, which finds no layer holding it again (one that does,
//!   after a collapse or copy in between, frees it first). Not yet async: a mapped copy's miss
//!   (which copies the layer's bytes into a frame of its own) obtains that frame as a blocking
//!   fault does, within the poll.
//!
//! * A write to a copy-on-write proxy: the future awaits the frame for its private copy first
//!   (`poll_obtain`, with nothing pinned, never taking the layer page's own frame, which the
//!   break copies from), then breaks the page into it (`break_cow` with the frame). A blocking
//!   break pins the layer's page, then obtains: breakers as many as the frames, each pinning
//!   one and waiting for another, wait out the pool's bound; an awaited break holds nothing
//!   while it waits. If the page changed between (another break, or a reclaim took the
//!   layer's page), the frame is freed and the task tries again at its next poll, woken at
//!   once.
//!
//! What runs inside a poll, as a blocking fault would run it: the accessor's fill and an
//! evicted victim's write-back (the I/O of a fault is its own work, not a wait); a break's copy
//! of the page, and its wait for readers of the proxy that came between (rare); a copy's
//! resolution in the rare cases above. An awaited fault has no deadline otherwise:
//! dropping it (an executor's time-out) ends its waits, and the object's close wakes those
//! waiting for a frame (`PagesShared::wake_obtainers`).
//!
//! Orderings: none of its own; the pins' CASes, the shard and parker locks carry them, as on the
//! blocking path.

use super::*;
use std::task::{Context, Poll};

/// What an awaited fault keeps between its polls.
#[derive(Debug, Default)]
pub(crate) struct PollState {
    /// Counted among the pool's waiting obtainers (`PagesShared::poll_obtain`): withdrawn at the
    /// next poll or the drop.
    obtaining: bool,
}

impl PollState {
    /// Withdraws what the last poll left registered (at the next poll, or the future's drop).
    #[inline(always)]
    pub(crate) fn withdraw(&mut self, pages: &PagesShared) {
        if std::mem::take(&mut self.obtaining) {
            pages.unwait_obtain();
        }
    }
}

impl MapperShared {
    /// As [`MapperShared::pin`], polled: `Ready` with the frame and the page's entry slot (the
    /// caller owns one read pin, or the writer bit), or `Pending` with the task's waker
    /// registered where the blocking path would park. The hit (a read of a resident page, by a
    /// future with nothing registered) is inlined, as `pin`'s is.
    #[inline(always)]
    pub(crate) fn poll_pin<'a>(
        this: &'a Arc<Self>,
        page: u64,
        want: Want,
        state: &mut PollState,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(u32, &'a AtomicU64)>> {
        if want == Want::Read && !state.obtaining && !this.is_closed() {
            if let Some(slot) = this.map.slot(page) {
                // Relaxed: a guess for the pin's CAS, which validates it (and orders the data).
                let seen = EntryWord(slot.load(Ordering::Relaxed));
                if let Ok(pinned) = this.pages.try_pin_read(slot, seen) {
                    if let Some(f) = pinned.frame() {
                        this.hit();
                        return Poll::Ready(Ok((f, slot)));
                    }
                }
            }
        }
        Self::poll_pin_slow(this, page, want, state, cx).map(|r| {
            r.and_then(|found| {
                found.ok_or_else(|| {
                    Error::Invariant(format!("page {page}: a top object found nothing to fill"))
                })
            })
        })
    }

    /// [`MapperShared::poll_pin`]'s slow path: `Ready(Ok(None))` if `this` is a frozen layer that
    /// does not hold `page` (a top object always does).
    #[cold]
    #[inline(never)]
    fn poll_pin_slow<'a>(
        this: &'a Arc<Self>,
        page: u64,
        want: Want,
        state: &mut PollState,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<(u32, &'a AtomicU64)>>> {
        state.withdraw(&this.pages);
        if let Err(e) = this.check_page(page) {
            return Poll::Ready(Err(e));
        }
        if want == Want::Write && !this.accessor.writable() {
            return Poll::Ready(Err(Error::ReadOnly));
        }
        // A break with an awaited frame was tried in this poll (see below).
        let mut broke = false;
        loop {
            if this.is_closed() {
                return Poll::Ready(Err(Error::Closed));
            }
            // Relaxed: a guess for the pin's CAS, which validates it (and orders the data).
            let found = this
                .map
                .slot(page)
                .map(|slot| (slot, EntryWord(slot.load(Ordering::Relaxed))))
                .filter(|(_, seen)| seen.frame().is_some());
            let Some((slot, seen)) = found else {
                let missed = match Self::poll_miss(this, page, want, state, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(m) => m,
                };
                match missed {
                    Ok(Miss::Retry) => continue,
                    Ok(Miss::Pinned(f, slot)) => {
                        this.stats.misses.incr();
                        return Poll::Ready(Ok(Some((f, slot))));
                    }
                    Ok(Miss::NotHere) => return Poll::Ready(Ok(None)),
                    Err(e) => {
                        this.stats.misses.incr();
                        return Poll::Ready(Err(e));
                    }
                }
            };
            let r = match want {
                Want::Read => this.pages.try_pin_read(slot, seen),
                Want::Write => this.pages.try_pin_write(slot, seen),
            };
            let refused = match r {
                Ok(pinned) => {
                    this.hit();
                    let f = pinned.frame().or(seen.frame());
                    return Poll::Ready(f.map(|f| Some((f, slot))).ok_or_else(|| {
                        Error::Invariant(format!("page {page}: pinned without a frame"))
                    }));
                }
                Err(w) => w,
            };
            if refused.frame().is_none() {
                continue; // reclaimed meanwhile: fault it in
            }
            if want == Want::Write
                && refused.cow()
                && refused.0 & (EntryWord::PINNED_BITS | EntryWord::RECLAIMING.mask()) == 0
            {
                // Only the shared copy-on-write frame stands in the way: the frame for the
                // private copy is awaited first, with nothing pinned, and never the layer page's
                // own (a break needs both at once; module doc), then the break copies the page
                // into it now, as the fill's I/O runs. Once per poll: if the page changed
                // meanwhile (the frame unused, freed), the next try is the next poll's (the
                // task is woken at once), so racing breakers never spin within a poll.
                if broke {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                broke = true;
                let closed = || this.is_closed();
                // A mapped object holds no proxies: its marked page (a mapped file's, SPEC §2.8)
                // is made its own where it is, with no frame.
                let f = if this.memory.is_some() {
                    None
                } else {
                    match super::super::reclaim::poll_obtain(
                        &this.pages,
                        cx,
                        &mut state.obtaining,
                        closed,
                        refused.frame().map(|f| (f, slot)),
                    ) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(f)) => Some(f),
                    }
                };
                let deadline = this.pages.deadline();
                if let Err(e) = this.layer.break_cow(this, page, slot, 0, deadline, f) {
                    return Poll::Ready(Err(e));
                }
                continue;
            }
            // A writer, readers (for a write), or a reclaim writing the page back.
            if this.pages.poll_wait_entry(slot, refused, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// The miss path, polled (module doc): `Ready` with what [`MapperShared::miss`] returns, or
    /// `Pending` (waiting for another fault's fill, or for a frame).
    fn poll_miss<'a>(
        this: &'a Arc<Self>,
        page: u64,
        want: Want,
        state: &mut PollState,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Miss<'a>>> {
        let shard = &this.fills[page as usize % this.fills.len()];
        let table = lock(shard);
        // Acquire (in find): as in `miss`.
        if this.map.find(page).frame().is_some() {
            return Poll::Ready(Ok(Miss::Retry));
        }
        if let Some(waiting) = this.await_fill(table, page, cx) {
            return waiting;
        }
        // A copy's page resolved through its frozen layers: the page is first awaited in the
        // layer that holds it (read-pinned there, as resident as a hit), then resolved as a
        // blocking fault resolves it, which then waits for nothing (module doc).
        if this.layer.is_layered() && !this.owns(page) {
            match Self::poll_in_layers(this, page, state, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(Some(l))) => {
                    let missed = Self::miss(this, page, want, Bound::Pool);
                    if let Some(slot) = l.shared.map.slot(page) {
                        this.pages.unpin_read(slot);
                    }
                    return Poll::Ready(missed);
                }
                // No layer holds it (zeros): filled here as the object's own page, its frame
                // awaited below; the fill's resolution (which finds none again) keeps it.
                Poll::Ready(Ok(None)) => {}
            }
        }
        if this.layer.is_frozen() && !this.owns(page) {
            return Poll::Ready(Ok(Miss::NotHere));
        }
        let closed = || this.is_closed();
        let f = match super::super::reclaim::poll_obtain(
            &this.pages,
            cx,
            &mut state.obtaining,
            closed,
            None,
        ) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(f)) => f,
        };
        let mut table = lock(shard);
        if this.map.find(page).frame().is_some() {
            drop(table);
            this.pages.free(f);
            return Poll::Ready(Ok(Miss::Retry));
        }
        if this.layer.is_frozen() && !this.owns(page) {
            // A frozen layer's page moved up (a collapse) while we obtained: not here now.
            drop(table);
            this.pages.free(f);
            return Poll::Ready(Ok(Miss::NotHere));
        }
        if table.contains_key(&page) {
            // Another fault began filling the page while we obtained: wait for it instead.
            drop(table);
            this.pages.free(f);
            return match this.await_fill(lock(shard), page, cx) {
                Some(waiting) => waiting,
                None => Poll::Ready(Ok(Miss::Retry)),
            };
        }
        // The copy epoch changes only under every shard lock, which we hold.
        let epoch = this.layer.epoch();
        table.insert(page, Record::default());
        drop(table);
        let filled = Self::fill(this, page, epoch, want, Bound::Pool, Some(f));
        Poll::Ready(filled.map(|filled| this.filled(page, want, filled)))
    }

    /// An awaited miss of a page `this` reads through its frozen layers: finds the first layer
    /// that holds `page` and pins it there for reading, polled (a layer's page being filled,
    /// reclaimed, or waiting for a frame registers the waker as any awaited fault does).
    /// `Ready(Ok(Some(layer)))`: the caller holds one read pin on that layer's entry of `page`,
    /// and gives it back after its resolution (which finds the page resident there: a pinned
    /// page is neither reclaimed nor moved by a collapse). `Ready(Ok(None))`: no layer holds it
    /// (zeros, or this object's own). A hint only: the resolution that follows walks the chain
    /// again and decides, so a collapse or copy meanwhile costs at most a blocking wait.
    fn poll_in_layers(
        this: &Arc<Self>,
        page: u64,
        state: &mut PollState,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<crate::PageMapper>>> {
        let mut next = this.layer.backing();
        while let Some(l) = next {
            let ls = &l.shared;
            if ls.map.find(page).frame().is_some() || ls.owns(page) {
                match Self::poll_pin_slow(ls, page, Want::Read, state, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(Some(_))) => return Poll::Ready(Ok(Some(l))),
                    // Moved up by a collapse since: look below (or let the resolution decide).
                    Poll::Ready(Ok(None)) => {}
                }
            }
            next = ls.layer.backing();
        }
        Poll::Ready(Ok(None))
    }

    /// If `page` has a fill in flight (its record in `table`, the page's shard, locked): waits for
    /// its outcome without joining it (module doc): `Pending` with the waker on the fill parker,
    /// or `Ready(Retry)` once it has one. `None`: no fill in flight.
    fn await_fill<'a>(
        &self,
        mut table: crate::sync::MutexGuard<'_, FillTable>,
        page: u64,
        cx: &mut Context<'_>,
    ) -> Option<Poll<Result<Miss<'a>>>> {
        let inflight = table.get_mut(&page)?.inflight();
        drop(table);
        // The outcome is set before the fill parker's wake-up, which takes every waker.
        Some(
            match self
                .fill_park
                .poll_park(cx, || lock(&inflight.outcome).is_none())
            {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Ok(Miss::Retry)),
            },
        )
    }
}
