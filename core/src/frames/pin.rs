//! Reserve: the pin protocol on a page's entry (read pins, the writer bit, upgrade), unpinning,
//! and the waiter bits with their parkers (see the protocol and orderings in the module doc of
//! `frames`).

use super::*;

impl PagesShared {
    // ----- reserve: pins on the entry --------------------------------------------------------

    /// Reserve for reading: adds a read pin if the entry (last seen as `seen`) names a frame, is
    /// not being reclaimed and has no writer. Returns the entry as pinned, or the entry that
    /// refused.
    #[inline(always)]
    pub(crate) fn try_pin_read(
        &self,
        slot: &AtomicU64,
        seen: EntryWord,
    ) -> Result<EntryWord, EntryWord> {
        let mut cur = seen;
        loop {
            if cur.frame().is_none()
                || cur.0 & EntryWord::NO_READ_BITS != 0
                || cur.pins() == EntryWord::PINS.max()
            {
                return Err(cur);
            }
            // Acquire on success: pairs with the Release that published the entry (fill) and with
            // the previous writer's Release unpin, so the bytes we hand out are theirs.
            // The same CAS marks the page hit for the eviction policy (no extra store).
            match slot.compare_exchange_weak(
                cur.0,
                EntryWord::hit(cur.0 + EntryWord::PINS.one()),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(cur),
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Reserve for writing: takes the writer bit (and marks the page dirty) if the entry names a
    /// frame, is not being reclaimed, and has no pins and no writer.
    pub(crate) fn try_pin_write(
        &self,
        slot: &AtomicU64,
        seen: EntryWord,
    ) -> Result<EntryWord, EntryWord> {
        let mut cur = seen;
        loop {
            if cur.frame().is_none() || cur.0 & EntryWord::NO_WRITE_BITS != 0 {
                return Err(cur);
            }
            let new = EntryWord(EntryWord::hit(
                cur.with(EntryWord::WRITER, true)
                    .with(EntryWord::DIRTY, true)
                    .0,
            ));
            // Acquire: as in try_pin_read; the writer must also see every earlier reader done.
            match slot.compare_exchange_weak(cur.0, new.0, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(cur),
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Turns the caller's read pin on `frame` into the writer bit if it is the only pin.
    pub(crate) fn try_upgrade(&self, slot: &AtomicU64, frame: u32) -> bool {
        // Relaxed: a guess for the CAS, which validates it.
        let mut cur = EntryWord(slot.load(Ordering::Relaxed));
        loop {
            if cur.frame() != Some(frame)
                || cur.0 & EntryWord::PINNED_BITS != EntryWord::PINS.one()
                || cur.cow()
            {
                return false;
            }
            let new = cur
                .with_pins(0)
                .with(EntryWord::WRITER, true)
                .with(EntryWord::DIRTY, true);
            // Acquire: pairs with the Release unpins of the readers that came before.
            match slot.compare_exchange_weak(cur.0, new.0, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Drops a read pin on the page whose entry is `slot`.
    #[inline(always)]
    pub(crate) fn unpin_read(&self, slot: &AtomicU64) {
        // Release: pairs with the Acquire of the next writer / taker (reads happen before).
        let prev = slot.fetch_sub(EntryWord::PINS.one(), Ordering::Release);
        if prev & EntryWord::WAIT_BITS != 0 {
            self.wake_waiters(slot);
        }
    }

    /// Drops the writer bit.
    pub(crate) fn unpin_write(&self, slot: &AtomicU64) {
        // Release: pairs with the Acquire of the next pinner / taker (writes happen before).
        let prev = slot.fetch_and(!EntryWord::WRITER.mask(), Ordering::Release);
        if prev & EntryWord::WAIT_BITS != 0 {
            self.wake_waiters(slot);
        }
    }

    /// Clears the dirty bit after a successful write-back by a party that holds a read pin (so no
    /// writer can have set it again meanwhile).
    pub(crate) fn clear_dirty(&self, slot: &AtomicU64) {
        // Release: the write-back happens before a later taker (Acquire) sees the page clean and
        // skips writing it back.
        slot.fetch_and(!EntryWord::DIRTY.mask(), Ordering::Release);
    }

    /// After an unpin that saw a waiter bit: clears `WAIT_PAGE` (always; the page waiters re-check)
    /// and `WAIT_POOL` (if the page is now takeable), and wakes the matching parkers.
    ///
    /// The page parker woken is the one of the frame the entry names *now*, in the word whose bits
    /// are cleared: between the caller's unpin and this call the page may have been reclaimed and
    /// refilled into another frame, whose waiters parked on that frame's parker. Waking the frame
    /// the caller pinned instead cleared the new waiters' bit and woke nobody (a lost wake-up that
    /// `tests/tests/client_stress.rs` caught as a grant time-out; scenario C5 in
    /// SPEC.md reproduces it).
    #[cold]
    pub(crate) fn wake_waiters(&self, slot: &AtomicU64) {
        let mut cur = EntryWord(slot.load(Ordering::Relaxed));
        loop {
            let mut clear = cur.0 & EntryWord::WAIT_PAGE.mask();
            if cur.takeable_but_reclaiming() {
                clear |= cur.0 & EntryWord::WAIT_POOL.mask();
            }
            if clear == 0 {
                return;
            }
            // Relaxed: the parker's mutex carries the happens-before edge to the woken waiters.
            match slot.compare_exchange_weak(
                cur.0,
                cur.0 & !clear,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // An entry with waiter bits names a frame (an empty entry is exactly 0).
                    if let Some(frame) = cur.frame() {
                        self.notify(frame, clear);
                    }
                    return;
                }
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Wakes the parkers for the waiter bits in `cleared` (which the caller just cleared from an
    /// entry naming `frame`).
    pub(super) fn notify(&self, frame: u32, cleared: u64) {
        if cleared & EntryWord::WAIT_PAGE.mask() != 0 {
            self.page_parker(frame).unpark_all();
        }
        if cleared & EntryWord::WAIT_POOL.mask() != 0 {
            self.pool_park.unpark_all();
        }
    }

    fn page_parker(&self, f: u32) -> &Parker {
        &self.page_park[f as usize % self.page_park.len()]
    }

    /// Blocks until the entry differs from `seen` (ignoring waiter bits) or `deadline` passes.
    /// Used by faults that met a writer, readers, or a reclaim in progress. `seen` names a frame.
    pub(crate) fn wait_entry(
        &self,
        slot: &AtomicU64,
        seen: EntryWord,
        deadline: Option<Instant>,
    ) -> Parked {
        // An empty entry has nobody to wake us (and must stay exactly 0): nothing to wait for.
        let Some(frame) = seen.frame() else {
            return Parked::Woken;
        };
        self.page_parker(frame)
            .park(deadline, || Self::mark_waiting(slot, seen))
    }

    /// The async form of [`wait_entry`](Self::wait_entry): `Ready` if the entry changed from
    /// `seen` (look again), else `Pending` with the task's waker registered on the frame's page
    /// parker, which the clearer of `WAIT_PAGE` wakes.
    pub(crate) fn poll_wait_entry(
        &self,
        slot: &AtomicU64,
        seen: EntryWord,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let Some(frame) = seen.frame() else {
            return std::task::Poll::Ready(());
        };
        self.page_parker(frame)
            .poll_park(cx, || Self::mark_waiting(slot, seen))
    }

    /// A page waiter's `prepare`, under its parker's lock: `true` (wait) once `WAIT_PAGE` is set
    /// on an entry still as `seen` (its waiter bits aside), `false` if the entry changed.
    fn mark_waiting(slot: &AtomicU64, seen: EntryWord) -> bool {
        // Acquire: if the entry changed we return and the caller re-reads; no data read here.
        let mut cur = EntryWord(slot.load(Ordering::Acquire));
        loop {
            if cur.without_waiters() != seen.without_waiters() {
                return false;
            }
            if EntryWord::WAIT_PAGE.is_set(cur.0) {
                return true;
            }
            // Relaxed: the CAS only publishes "I wait"; see the module doc's waiter protocol.
            match slot.compare_exchange_weak(
                cur.0,
                cur.0 | EntryWord::WAIT_PAGE.mask(),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(c) => cur = EntryWord(c),
            }
        }
    }
}
