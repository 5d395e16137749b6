//! A client's request, the part over the object and its copies: `begin` (grant, queue, or fault
//! the page in first and relabel the fault's pin as the grant), `wait` (park until granted,
//! breaking a copy-on-write page that only the copy stands in the way of) and `upgrade`. The
//! arbiter proper (`arbiter.rs`, `release.rs`, `state.rs`) sees only entries and pages; this
//! file is where arbitration meets the object's fault path (`object::mapper`) and copies
//! (`copies::break_cow`), so it sits in the layer above both with the client handles
//! (SPEC.md §1, `core/tests/layers.rs`).
//!
//! Orderings: none of its own; the arbiter's CASes and shard locks carry them (module doc of
//! `arbitration`).

use super::*;
use crate::object::mapper::{Bound, MapperShared, Want};

impl Arbiter {
    /// Starts a request: grants it, or queues it (asking conflicting holders to revoke), or with
    /// `try_only` refuses it.
    pub(super) fn begin(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        c: u32,
        page: u64,
        want: Access,
        try_only: bool,
    ) -> Result<Begin> {
        let pages = &*mapper.pages;
        let mut deadline = None;
        loop {
            if mapper.is_closed() {
                return Err(Error::Closed);
            }
            // Relaxed: only "has it a frame?"; the CASes below validate what they change.
            let slot = mapper
                .map
                .slot(page)
                .filter(|slot| EntryWord(slot.load(Ordering::Relaxed)).frame().is_some());
            let Some(slot) = slot else {
                // No frame: fault the page in.
                if let Some(b) = self.begin_by_fault(mapper, c, page, want, try_only)? {
                    return Ok(b);
                }
                continue;
            };
            if want == Access::Write {
                // Relaxed: a hint; break_cow re-reads and validates.
                let e = EntryWord(slot.load(Ordering::Relaxed));
                let free = EntryWord::PINNED_BITS | EntryWord::RECLAIMING.mask();
                if e.cow() && e.0 & free == 0 {
                    // No one holds it: give the object its private page, then request it (behind
                    // any waiters, as usual; the early break takes nothing from them).
                    let d = *deadline.get_or_insert_with(|| pages.deadline());
                    crate::copies::break_cow(mapper, page, slot, 0, d)?;
                }
            }
            if c < EntryWord::INLINE_CLIENTS && Self::fast_grant(slot, c, want).is_some() {
                mapper.hit();
                return Ok(Begin::Granted);
            }
            match self.enqueue_slow(pages, slot, c, page, want, try_only, false)? {
                Begin::Retry(e) if e.reclaiming() => {
                    let d = *deadline.get_or_insert_with(|| pages.deadline());
                    if pages.wait_entry(slot, e, d) == Parked::TimedOut {
                        return Err(Error::Busy { page });
                    }
                }
                Begin::Retry(_) => {}
                b => {
                    mapper.hit();
                    return Ok(b);
                }
            }
        }
    }

    /// A request for a page without a frame: fault it in with a plain read pin and relabel the
    /// pin as the client's grant, or (if that is not possible at once) enqueue the request while
    /// still holding the pin, dropping it in the same CAS. `None`: look again.
    fn begin_by_fault(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        c: u32,
        page: u64,
        want: Access,
        try_only: bool,
    ) -> Result<Option<Begin>> {
        let (f, slot) = match MapperShared::pin_with(mapper, page, Want::Read, Bound::NoWait) {
            Ok(r) => r,
            Err(Error::Busy { .. }) => return Ok(None), // resident after all, and refused
            Err(e) => return Err(e),
        };
        let pages = &*mapper.pages;
        if Self::convert_pin(slot, f, c, want) {
            return Ok(Some(Begin::Granted));
        }
        if want == Access::Write && EntryWord(slot.load(Ordering::Acquire)).cow() {
            // The fault made a copy-on-write proxy: a write needs a private page first, and the
            // break needs the entry free of our pin. Start over (`begin` breaks it).
            pages.unpin_read(slot);
            return Ok(None);
        }
        match self.enqueue_slow(pages, slot, c, page, want, try_only, true)? {
            Begin::Retry(_) => Err(Error::Invariant(format!(
                "page {page} empty or reclaimed under a pin"
            ))),
            b => Ok(Some(b)),
        }
    }

    /// The async form of [`Arbiter::wait`], for a `Pending` polled as a future: `Ready` once
    /// `c`'s request is granted (or failed), else `Pending` with the task's waker registered on
    /// the parker a blocking waiter would park on (the page's arbitration shard, or, when only
    /// plain guards or a reclaim stand in the way, the frame's page parker). A write request held
    /// up only by a copy-on-write frame breaks it here, blocking (it copies the page and may wait
    /// for a frame, up to the pool's bound). Withdrawing is the caller's drop.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn poll_wait(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        want: Access,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        use std::task::Poll as Task;
        let pages = &*mapper.pages;
        let park = &self.parks[self.shard(page)];
        loop {
            let mut out = None;
            let registered = park.poll_park(cx, || {
                let r = self.poll(slot, c, page, want);
                // As in `wait`: if our poll granted others, wake them first, then poll again.
                let wait = matches!(&r, Ok((Poll::Waiting, fx)) if !fx.changed);
                out = Some(r);
                wait
            });
            let Some(r) = out else {
                return Task::Ready(Err(Error::Invariant("parker skipped prepare".into())));
            };
            let (poll, fx) = match r {
                Ok(r) => r,
                Err(e) => return Task::Ready(Err(e)),
            };
            self.after(pages, slot, page, fx);
            match poll {
                Poll::Granted => return Task::Ready(Ok(())),
                Poll::CoreBlocked(e, own) if breaks_cow(e, own) => {
                    let deadline = pages.deadline();
                    if let Err(err) = crate::copies::break_cow(mapper, page, slot, own, deadline) {
                        return Task::Ready(match self.cancel(pages, slot, c, page, want) {
                            Ok(true) => Ok(()),
                            Ok(false) => Err(err),
                            Err(e) => Err(e),
                        });
                    }
                }
                Poll::CoreBlocked(e, _) => {
                    if pages.poll_wait_entry(slot, e, cx).is_pending() {
                        return Task::Pending;
                    }
                }
                Poll::Waiting => {
                    if registered.is_pending() {
                        return Task::Pending;
                    }
                }
            }
        }
    }

    /// Blocks until `c`'s waiting request is granted, or `deadline` passes (then withdraws it).
    /// A write request at the head blocked only by a copy-on-write frame breaks it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wait(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        want: Access,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let pages = &*mapper.pages;
        let start = Instant::now();
        let park = &self.parks[self.shard(page)];
        loop {
            let mut out = None;
            let parked = park.park(deadline, || {
                let r = self.poll(slot, c, page, want);
                // If our poll granted others, do not park: they must be woken first (by
                // `after`, below, outside this parker's lock), then we poll again.
                let wait = matches!(&r, Ok((Poll::Waiting, fx)) if !fx.changed);
                out = Some(r);
                wait
            });
            let Some(r) = out else {
                return Err(Error::Invariant("parker skipped prepare".into()));
            };
            let (poll, fx) = r?;
            self.after(pages, slot, page, fx);
            let timed_out = match poll {
                Poll::Granted => return Ok(()),
                Poll::CoreBlocked(e, own) if breaks_cow(e, own) => {
                    if let Err(err) = crate::copies::break_cow(mapper, page, slot, own, deadline) {
                        // Withdraw (unless granted meanwhile: then the page was broken anyway).
                        return if self.cancel(pages, slot, c, page, want)? {
                            Ok(())
                        } else {
                            Err(err)
                        };
                    }
                    false
                }
                Poll::CoreBlocked(e, _) => pages.wait_entry(slot, e, deadline) == Parked::TimedOut,
                Poll::Waiting => parked == Parked::TimedOut,
            };
            if timed_out {
                return if self.cancel(pages, slot, c, page, want)? {
                    Ok(())
                } else {
                    Err(Error::GrantTimeout {
                        page,
                        waited: start.elapsed(),
                    })
                };
            }
        }
    }

    pub(super) fn upgrade(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let pages = &*mapper.pages;
        let (granted, fx) = self.update(slot, page, |st, e| {
            if st.holder(c) != Some(Access::Read) {
                return Err(Error::Invariant(format!(
                    "page {page}: client {c} upgrades without a read grant"
                )));
            }
            if let Some(&(h, Access::Write)) = st.waiters.front() {
                if st.holder(h).is_some() {
                    return Err(Error::UpgradeConflict { page });
                }
            }
            st.waiters.push_front((c, Access::Write));
            st.grant_ready(e);
            Ok(st.holder(c) == Some(Access::Write))
        })?;
        self.after(pages, slot, page, fx);
        if granted {
            return Ok(());
        }
        pages.counters.grant_waits.incr();
        mapper.stats.grant_waits.incr();
        self.wait(mapper, slot, c, page, Access::Write, deadline)
    }
}

/// Whether a request the core blocks on entry `e` (its own pins being `own`) is blocked only by
/// a copy-on-write frame: nobody else pins the page and no reclaim holds it, so the request (a
/// writer at the head) breaks the page itself instead of waiting. `wait` and `poll_wait` share
/// it.
fn breaks_cow(e: EntryWord, own: u64) -> bool {
    e.cow() && !e.reclaiming() && e.0 & EntryWord::PINNED_BITS == own
}
