//! Obtain and reclaim, the pool's half: taking a page for reclaim, the eviction pick,
//! `try_obtain`/`wait_obtain` (a free frame or a victim from the queue), the end of an eviction
//! (`evicted`, T8) or its revert (T10), free, `make_resident` and the take for `close`. The other
//! half — writing the victim back, asking holders, the loop that waits — is the object layer's
//! (`object::reclaim`): the pool does no I/O and calls nobody above it.

use super::*;

impl PagesShared {
    // ----- obtain and reclaim ----------------------------------------------------------------

    /// Takes the page in `slot` (backed by `f`) for reclaim if unpinned: sets `RECLAIMING`.
    /// Otherwise, if `mark`, sets `WAIT_POOL` so its last unpinner wakes the pool. `WAIT_POOL` is
    /// cleared on take without a wake-up: the frame goes to this taker, or is freed or reverted,
    /// and both of those wake waiting obtainers.
    fn take_or_mark(&self, slot: &AtomicU64, f: u32, mark: bool) -> Option<EntryWord> {
        let mut cur = EntryWord(slot.load(Ordering::Acquire));
        loop {
            if cur.frame() != Some(f) || cur.reclaiming() {
                return None;
            }
            if cur.takeable_but_reclaiming() {
                let new = cur
                    .with(EntryWord::RECLAIMING, true)
                    .with(EntryWord::WAIT_POOL, false);
                // Acquire: pairs with the Release unpins; every guard access happens before the
                // write-back and refill that follow.
                match slot.compare_exchange(cur.0, new.0, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => return Some(new),
                    Err(c) => {
                        cur = EntryWord(c);
                        continue;
                    }
                }
            }
            if !mark || EntryWord::WAIT_POOL.is_set(cur.0) {
                return None;
            }
            // Relaxed: only publishes "an obtainer waits"; see the waiter protocol.
            match slot.compare_exchange(
                cur.0,
                cur.0 | EntryWord::WAIT_POOL.mask(),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => return None,
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Under the lists lock: a free frame, else a victim the pool's policy picks from the queue
    /// (`queue::Policy`: FIFO, CLOCK, SIEVE or S3-FIFO; pinned pages are passed over), else nothing. A
    /// frame pinned only by copy-on-write proxies has those proxies unmapped first (wake-ups and
    /// drops go to `later`).
    fn pick(&self, l: &mut Lists, mark: bool, later: &mut Deferred) -> Pick {
        if let Some(f) = l.free.pop() {
            self.set_tag(f, Tag::Filling);
            return Pick::Free(f);
        }
        match self.pick_victim(l, mark, later) {
            Some((f, w)) => Pick::Victim(f, w),
            None => Pick::None,
        }
    }

    /// Under the lists lock: a victim the policy picks from the queue, taken (`Reclaiming`), as
    /// [`pick`](Self::pick) takes one when no frame is free.
    fn pick_victim(
        &self,
        l: &mut Lists,
        mark: bool,
        later: &mut Deferred,
    ) -> Option<(u32, EntryWord)> {
        let n = l.queue.len();
        match self.policy {
            Policy::Fifo | Policy::Clock => {
                let second_chance = self.policy == Policy::Clock;
                // CLOCK looks at each frame at most twice: the first look clears its bit.
                let looks = if second_chance { 2 * n } else { n };
                for _ in 0..looks {
                    let Some(f) = l.queue.pop_front() else { break };
                    if second_chance && self.clear_referenced(l, f) {
                        l.queue.push_back(f);
                        continue;
                    }
                    if let Some(w) = self.take_victim(l, f, mark, later) {
                        self.set_tag(f, Tag::Reclaiming);
                        return Some((f, w));
                    }
                    l.queue.push_back(f);
                }
            }
            Policy::Sieve => {
                for _ in 0..2 * n {
                    let Some(f) = l.queue.hand() else { break };
                    if self.clear_referenced(l, f) {
                        l.queue.advance_hand(f);
                        continue;
                    }
                    if let Some(w) = self.take_victim(l, f, mark, later) {
                        // Unlinked where it stands; the hand moves on past it.
                        l.queue.remove(f);
                        self.set_tag(f, Tag::Reclaiming);
                        return Some((f, w));
                    }
                    l.queue.advance_hand(f);
                }
            }
            Policy::S3Fifo(_) => return self.pick_s3fifo(l, mark, later),
        }
        None
    }

    /// Under the lists lock, for a queued (`Resident`) frame: whether its page was hit since the
    /// policy last looked (the `FREQ` count of its owner's entry or of a proxy), clearing it.
    fn clear_referenced(&self, l: &mut Lists, f: u32) -> bool {
        let clear = |slot: &AtomicU64| {
            // Relaxed: the bit is a hint for the policy and orders nothing. Every entry naming a
            // queued frame keeps naming it until the lists lock, which we hold, is released.
            let e = EntryWord(slot.load(Ordering::Relaxed));
            e.referenced()
                && EntryWord(slot.fetch_and(!EntryWord::FREQ.mask(), Ordering::Relaxed))
                    .referenced()
        };
        // SAFETY: lists lock held and `f` queued, hence Resident (I1).
        let mut hit = unsafe { self.with_owner(f, |o| o.and_then(Owner::slot).is_some_and(clear)) };
        self.with_proxies(l, f, |p| {
            for o in p.iter() {
                hit |= o.slot().is_some_and(clear);
            }
        });
        hit
    }

    /// Under the lists lock, for a queued (hence `Resident`, I1) frame: takes its owner's entry
    /// if unpinned; if only proxies pin it, unmaps every proxy nobody pins (the reverse map in
    /// use: Linux's try_to_unmap) and tries again. With `mark`, leaves `WAIT_POOL` on whatever
    /// still pins it (the owner's entry and the remaining proxies).
    pub(super) fn take_victim(
        &self,
        l: &mut Lists,
        f: u32,
        mark: bool,
        later: &mut Deferred,
    ) -> Option<EntryWord> {
        if l.except == Some(f) {
            // Not marked: its unpin is no frame for this obtainer.
            return None;
        }
        // SAFETY (with_owner): lists lock held and `f` queued, hence Resident (I1).
        let taken = unsafe {
            self.with_owner(f, |o| {
                o.and_then(Owner::slot)
                    .and_then(|slot| self.take_or_mark(slot, f, false))
            })
        };
        if taken.is_some() {
            return taken;
        }
        // SAFETY: as above.
        let owner = unsafe { self.with_owner(f, |o| o.cloned()) }?;
        let owner_slot = owner.slot()?;
        let taken = loop {
            let proxies: Vec<Owner> = self.with_proxies(l, f, |p| p.iter().cloned().collect());
            let mut left = Vec::new();
            for p in proxies {
                let unmapped = p.slot().is_some_and(|ps| {
                    self.unmap_locked(l, f, ps, &p.mapper, p.page, owner_slot, later)
                });
                if !unmapped {
                    left.push(p);
                }
            }
            let taken = self.take_or_mark(owner_slot, f, mark);
            // Every proxy left must be marked, or be unmappable now: a proxy unpinned since
            // `unmap_locked` saw it pinned has nobody left to wake us.
            let mut again = false;
            if taken.is_none() && mark {
                for p in &left {
                    if let Some(ps) = p.slot() {
                        again |= !self.mark_pool(ps, f);
                    }
                }
            }
            later.drop.extend(left);
            if !again {
                break taken;
            }
        };
        later.drop.push(owner);
        taken
    }

    /// Sets `WAIT_POOL` on a pinned proxy entry naming `f`, so its last unpinner wakes the pool.
    /// Returns `false` if the proxy is unpinned now (its last pin went after the caller's
    /// `unmap_locked` found it pinned, with no `WAIT_POOL` to wake anyone): the caller must try
    /// the victim again instead of waiting (scenario C13). `true`: marked (now or before), or it
    /// no longer names `f` (a break or a close dropped its pin on the owner's entry, which the
    /// caller marked, so that unpin wakes the pool).
    fn mark_pool(&self, slot: &AtomicU64, f: u32) -> bool {
        let mut cur = EntryWord(slot.load(Ordering::Relaxed));
        loop {
            if cur.frame() != Some(f) || EntryWord::WAIT_POOL.is_set(cur.0) {
                return true;
            }
            if cur.takeable_but_reclaiming() {
                return false;
            }
            // Relaxed: only publishes "an obtainer waits" (see the waiter protocol).
            match slot.compare_exchange_weak(
                cur.0,
                cur.0 | EntryWord::WAIT_POOL.mask(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Under the lists lock: unmaps the proxy `proxy_slot` (page `page` of `mapper`) of frame `f`
    /// if nothing pins or holds it and it has no arbitration state: its entry becomes `EMPTY`, it
    /// leaves `f`'s proxies, and the pin it held on the owner's entry (`owner_slot`) is dropped.
    /// Returns whether it did. Wake-ups and the dropped reference go to `later`.
    #[allow(clippy::too_many_arguments)]
    fn unmap_locked(
        &self,
        l: &mut Lists,
        f: u32,
        proxy_slot: &AtomicU64,
        mapper: &MapperShared,
        page: u64,
        owner_slot: &AtomicU64,
        later: &mut Deferred,
    ) -> bool {
        let mut cur = EntryWord(proxy_slot.load(Ordering::Acquire));
        loop {
            if cur.frame() != Some(f)
                || !cur.cow()
                || cur.0
                    & (EntryWord::PINNED_BITS
                        | EntryWord::ARB_SLOW.mask()
                        | EntryWord::RECLAIMING.mask())
                    != 0
            {
                return false;
            }
            // Acquire: pairs with the Release unpins of the proxy's readers, whose reads of `f`
            // then happen before our unpin of the owner (Release) and so before the taker's
            // Acquire and the frame's reuse.
            match proxy_slot.compare_exchange(cur.0, 0, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => break,
                Err(c) => cur = EntryWord(c),
            }
        }
        if cur.0 & EntryWord::WAIT_BITS != 0 {
            later.notify.push((f, cur.0 & EntryWord::WAIT_BITS));
        }
        if let Some(o) = self.with_proxies(l, f, |p| p.remove(mapper, page)) {
            later.drop.push(o);
        }
        // Release: the proxy's readers' accesses (acquired above) happen before the owner's
        // next taker (Acquire).
        let prev = owner_slot.fetch_sub(EntryWord::PINS.one(), Ordering::Release);
        if prev & EntryWord::WAIT_BITS != 0 {
            // SAFETY: lists lock held; `f` is Resident (its owner's entry was pinned).
            if let Some(o) = unsafe { self.with_owner(f, |o| o.cloned()) } {
                later.wake.push(o);
            }
        }
        true
    }

    /// T4/T5 without waiting: a free frame (now `Filling`, the caller's), or a victim the policy
    /// took from the queue (now `Reclaiming`, the caller's, to be finished with
    /// [`evicted`](Self::evicted) or [`revert`](Self::revert)), or `None` when every frame is
    /// pinned or being filled or reclaimed. The pool writes nothing back and asks nobody: the
    /// object layer (`object::reclaim`) does both with what this returns.
    pub(crate) fn try_obtain(&self) -> Option<Got> {
        self.try_obtain_except(None)
    }

    /// As [`Self::try_obtain`], never taking frame `except.0` as the victim while entry
    /// `except.1` (an awaited break's proxy) still names it (see [`Lists::except`]).
    pub(crate) fn try_obtain_except(&self, except: Option<(u32, &AtomicU64)>) -> Option<Got> {
        let mut later = Deferred::default();
        let mut l = lock(&self.lists);
        l.except = still_named(except);
        let p = self.pick(&mut l, false, &mut later);
        l.except = None;
        drop(l);
        later.run(self);
        p.into_got()
    }

    /// A batch's further victims (`PagesBuilder::evict_batch`): while the free list is empty
    /// and no obtainer waits, takes up to `more` more victims as the policy picks them, without
    /// waiting or marking (each now `Reclaiming`, the caller's, to be finished as any victim
    /// is), into `out`. Stops at the first pick that finds none, once a frame is free (another
    /// reclaim or a close freed one: the batch has done its part), or when an obtainer waits
    /// (the page it waits to be unpinned must not be taken from under it by a batch, whose
    /// write-backs it would then wait behind).
    pub(crate) fn take_victims(&self, more: usize, out: &mut Vec<Victim>) {
        let mut later = Deferred::default();
        let mut l = lock(&self.lists);
        for _ in 0..more {
            if !l.free.is_empty() || l.waiting_obtainers > 0 {
                break;
            }
            let Some((frame, taken)) = self.pick_victim(&mut l, false, &mut later) else {
                break;
            };
            out.push(Victim { frame, taken });
        }
        drop(l);
        later.run(self);
    }

    /// Waits (up to `deadline`) for a frame to become free or reclaimable, leaving `WAIT_POOL` on
    /// the pages in the way so their last unpin wakes this waiter. A pick made while getting ready
    /// to park is returned at once, as from [`try_obtain`](Self::try_obtain).
    pub(crate) fn wait_obtain(&self, deadline: Option<Instant>) -> Waited {
        let mut got = None;
        let mut later = Deferred::default();
        self.counters.obtain_waits.incr();
        let parked = self.pool_park.park(deadline, || {
            let mut l = lock(&self.lists);
            match self.pick(&mut l, true, &mut later) {
                Pick::None => {
                    l.waiting_obtainers += 1;
                    true
                }
                p => {
                    got = p.into_got();
                    false
                }
            }
        });
        later.run(self);
        if let Some(g) = got {
            return Waited::Got(g);
        }
        lock(&self.lists).waiting_obtainers -= 1;
        if parked == Parked::TimedOut {
            Waited::TimedOut
        } else {
            Waited::Woken
        }
    }

    /// The async form of [`wait_obtain`](Self::wait_obtain), for a fault polled as a future:
    /// `Ready(Some(got))` for a pick made while getting ready to wait, `Ready(None)` (look again)
    /// when nothing is picked but the parker's re-check says not to wait, or `Pending` with the
    /// task's waker registered on the pool parker, `WAIT_POOL` left on the pages in the way and
    /// the caller counted among the waiting obtainers (`*registered`; the count stays until the
    /// caller's [`unwait_obtain`](Self::unwait_obtain), at its next poll or its drop, so a frame
    /// freed meanwhile notifies the parker, whose wake-up takes every waker).
    /// `stop` (the fault's object closed) is checked under the lists lock before the caller
    /// is counted: a close sets its flag before it reads the count under that lock
    /// ([`wake_obtainers`](Self::wake_obtainers)), so either the close sees the count and
    /// wakes the caller, or the caller sees the flag and does not wait (`Ready(None)`).
    pub(crate) fn poll_obtain(
        &self,
        cx: &mut std::task::Context<'_>,
        registered: &mut bool,
        stop: impl Fn() -> bool,
        except: Option<(u32, &AtomicU64)>,
    ) -> std::task::Poll<Option<Got>> {
        let mut got = None;
        let mut later = Deferred::default();
        let r = self.pool_park.poll_park(cx, || {
            let mut l = lock(&self.lists);
            l.except = still_named(except);
            let picked = self.pick(&mut l, true, &mut later);
            l.except = None;
            match picked {
                Pick::None if stop() => false,
                Pick::None => {
                    if !*registered {
                        l.waiting_obtainers += 1;
                        *registered = true;
                        self.counters.obtain_waits.incr();
                    }
                    true
                }
                p => {
                    got = p.into_got();
                    false
                }
            }
        });
        later.run(self);
        match (got, r) {
            (Some(g), _) => std::task::Poll::Ready(Some(g)),
            (None, std::task::Poll::Pending) => std::task::Poll::Pending,
            (None, std::task::Poll::Ready(())) => std::task::Poll::Ready(None),
        }
    }

    /// Wakes every obtainer waiting for a frame, if any (an object's close: its awaited faults
    /// then end with `Closed`; a blocking obtainer re-picks and waits again, a spurious
    /// wake-up).
    pub(crate) fn wake_obtainers(&self) {
        let waiting = lock(&self.lists).waiting_obtainers > 0;
        if waiting {
            self.pool_park.unpark_all();
        }
    }

    /// Withdraws a waiting obtainer [`poll_obtain`](Self::poll_obtain) counted.
    #[cold]
    pub(crate) fn unwait_obtain(&self) {
        let mut l = lock(&self.lists);
        debug_assert!(l.waiting_obtainers > 0, "an obtainer withdrawn twice");
        l.waiting_obtainers = l.waiting_obtainers.saturating_sub(1);
    }

    /// Every frame is pinned: the owners and proxies of the oldest queued frames (up to
    /// `at_most`) whose entries are held by clients, for the object layer to ask to release them
    /// (the access lists of a frame's owner and proxies are the reverse map from frame to
    /// clients). Collected under the lists lock; the caller asks with no lock held.
    pub(crate) fn held_pages(&self, at_most: usize) -> Vec<Owner> {
        let mut held: Vec<Owner> = Vec::new();
        let mut l = lock(&self.lists);
        let queued: Vec<u32> = l.queue.iter().collect();
        for f in queued {
            let holds = |o: &Owner| {
                // Relaxed: a hint; the arbiter re-reads under its shard lock when asking.
                o.slot().is_some_and(|s| {
                    let e = EntryWord(s.load(Ordering::Relaxed));
                    e.held() && e.frame() == Some(f)
                })
            };
            // SAFETY: lists lock held and `f` queued, hence Resident (I1).
            let owner = unsafe { self.with_owner(f, |o| o.filter(|o| holds(o)).cloned()) };
            held.extend(owner);
            self.with_proxies(&mut l, f, |p| {
                held.extend(p.iter().filter(|o| holds(o)).cloned())
            });
            if held.len() >= at_most {
                break;
            }
        }
        held
    }

    /// Runs `g` on a victim's owner (the page whose bytes are in it) and the frame's bytes, which
    /// `g` reads through [`VictimBytes::read`] if it writes the page back. The victim is the
    /// caller's (`Reclaiming`, taken by it): nothing else reads or writes the owner or the bytes
    /// meanwhile (I4).
    pub(crate) fn with_victim<R>(
        &self,
        v: &Victim,
        g: impl FnOnce(Option<&Owner>, VictimBytes<'_>) -> R,
    ) -> R {
        let bytes = VictimBytes {
            pages: self,
            frame: v.frame,
        };
        // SAFETY: `v` proves the caller holds the frame exclusively in `Reclaiming` (Victim is made
        // only by a take and consumed by `evicted`/`revert`): no one else touches the owner
        // (Frame::owner's rule).
        unsafe { self.with_owner(v.frame, |o| g(o, bytes)) }
    }

    /// T8, the victim's page written back (or clean, or discarded): clears its entry to `EMPTY`,
    /// wakes its waiters and forgets the owner. The frame stays the caller's, `Reclaiming`; it
    /// is returned to be refilled ([`reclaimed`](Self::reclaimed)) or freed ([`free`](Self::free)).
    pub(crate) fn evicted(&self, v: Victim) -> u32 {
        let f = v.frame;
        // SAFETY: the caller holds `f` exclusively (Victim).
        let slot = unsafe {
            self.with_owner(f, |o| {
                o.and_then(Owner::slot).map(|s| s as *const AtomicU64)
            })
        };
        if let Some(slot) = slot {
            // SAFETY: the slot lives as long as its mapper, which the owner (still set) keeps alive.
            let slot = unsafe { &*slot };
            // Release: the write-back happens before the next fault of this page sees EMPTY
            // (Acquire) and fills it from the backing store.
            let prev = slot.swap(0, Ordering::Release);
            self.notify(f, prev & EntryWord::WAIT_BITS);
        }
        // SAFETY: still exclusive (Reclaiming).
        drop(unsafe { self.set_owner(f, None) });
        f
    }

    /// `Reclaiming -> Filling` for the reclaimer that evicted `f` (T5): it fills `f` next.
    pub(crate) fn reclaimed(&self, f: u32) {
        // Relaxed store: we hold the frame exclusively (see set_tag).
        self.set_tag(f, Tag::Filling);
        self.counters.reclaims.incr();
    }

    /// A batch's frame beyond the first, its page evicted (T8): counted as reclaimed and put on
    /// the free list (T9), where the next obtainer finds it without reclaiming.
    pub(crate) fn reclaimed_ahead(&self, f: u32) {
        self.counters.reclaims.incr();
        self.free(f);
    }

    /// T10, `Reclaiming -> Resident` after a failed write-back: `RECLAIMING` cleared (dirty
    /// kept), back at the queue tail. Returns the frame.
    pub(crate) fn revert(&self, v: Victim) -> u32 {
        let f = v.frame;
        // SAFETY: the caller holds `f` exclusively (Victim).
        let slot = unsafe {
            self.with_owner(f, |o| {
                o.and_then(Owner::slot).map(|s| s as *const AtomicU64)
            })
        };
        let mut l = lock(&self.lists);
        let mut prev = 0;
        if let Some(slot) = slot {
            // SAFETY: as in `evicted`.
            let slot = unsafe { &*slot };
            // Release: a pinner (Acquire) sees the entry as we leave it; nothing was written.
            prev = slot.fetch_and(
                !(EntryWord::RECLAIMING.mask() | EntryWord::WAIT_BITS),
                Ordering::Release,
            );
        }
        self.set_tag(f, Tag::Resident);
        self.link_again(&mut l, f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        self.notify(f, prev & EntryWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        f
    }

    /// Puts a frame the caller holds (`Filling` or `Reclaiming`, owner already cleared, named by
    /// no entry) on the free list.
    pub(crate) fn free(&self, f: u32) {
        let mut l = lock(&self.lists);
        self.set_tag(f, Tag::Free);
        l.free.push(f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        if wake_pool {
            self.pool_park.unpark_all();
        }
    }

    /// Publishes a filled frame: `Filling -> Resident`, its page's entry `EMPTY -> (f, pins)`,
    /// linked at the queue tail — all under the lists lock, so that under that lock Resident
    /// frames, queued frames and entries agree (I1, I2). Returns `false` (frame left `Filling`) if
    /// the entry was unexpectedly occupied.
    /// A reader's publication with `marked` carries `COW` (a mapped file's page its layers read
    /// from its file: its first writer records it as the file's own first, SPEC §2.8).
    pub(crate) fn make_resident(
        &self,
        f: u32,
        pins: u64,
        writer: bool,
        marked: bool,
        slot: &AtomicU64,
    ) -> bool {
        let mut l = lock(&self.lists);
        // `pins < PINS.max()`: the miss path lets no more faults join a fill (see `miss`). A write
        // fault that nobody joined (`pins == 1`) gets the writer bit instead of its read pin.
        let entry = if writer {
            EntryWord::resident(f, 0)
                .with(EntryWord::WRITER, true)
                .with(EntryWord::DIRTY, true)
        } else {
            EntryWord::resident(f, pins.min(EntryWord::PINS.max())).with(EntryWord::COW, marked)
        };
        // Release: pairs with the pinners' Acquire CAS: the filled bytes and the owner are visible
        // to whoever pins the page.
        if slot
            .compare_exchange(0, entry.0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.set_tag(f, Tag::Resident);
        self.link_new(&mut l, f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        true
    }

    /// For `close`: takes page `page` of `mapper` (entry `slot`, with whatever frame backs it) if
    /// unpinned; a copy-on-write proxy is unmapped instead (its frame stays with its owner).
    pub(crate) fn take_for_close(
        &self,
        slot: &AtomicU64,
        mapper: &MapperShared,
        page: u64,
    ) -> Take {
        let mut l = lock(&self.lists);
        loop {
            let cur = EntryWord(slot.load(Ordering::Acquire));
            let Some(f) = cur.frame() else {
                return Take::Gone;
            };
            if cur.cow()
                && !cur.reclaiming()
                && self.with_proxies(&mut l, f, |p| p.contains(mapper, page))
            {
                let mut later = Deferred::default();
                // SAFETY: lists lock held; a proxy pins its owner's entry, so `f` is Resident.
                let owner = unsafe { self.with_owner(f, |o| o.cloned()) };
                let unmapped = owner.as_ref().and_then(Owner::slot).is_some_and(|os| {
                    self.unmap_locked(&mut l, f, slot, mapper, page, os, &mut later)
                });
                drop(l);
                later.drop.extend(owner);
                later.run(self);
                return if unmapped {
                    Take::Unmapped
                } else {
                    Take::Busy(cur)
                };
            }
            if !cur.takeable() {
                return Take::Busy(cur);
            }
            if let Some(w) = self.take_or_mark(slot, f, false) {
                self.set_tag(f, Tag::Reclaiming);
                l.queue.remove(f);
                return Take::Taken(Victim { frame: f, taken: w });
            }
            // The entry changed between the two reads (a pin came or went): look again.
        }
    }
}

/// The frame an awaited break excepts from its pick (`Lists::except`), if its proxy entry still
/// names it: checked at each pick, under the lists lock, where every change of a proxy's frame
/// is made (its unmap by a reclaim, a break's publication). A frame taken by another obtainer
/// since the break looked (its proxy unmapped, the frame filled with another page) is a frame
/// like any other again; excepting it still left the break waiting for a frame it could take
/// (found by review, stop 33). Its fill's publication wakes the break if it already waits.
fn still_named(except: Option<(u32, &AtomicU64)>) -> Option<u32> {
    // Relaxed: the lists lock, held by the caller, orders it with those changes.
    except.and_then(|(f, slot)| {
        (EntryWord(slot.load(Ordering::Relaxed)).frame() == Some(f)).then_some(f)
    })
}
