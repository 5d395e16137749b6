//! Pages: the frame pool front. `obtain` gives a fresh frame or reclaims the one at the head of
//! the [`PageQueue`]; `reserve` (here: [`PagesShared::try_pin_read`] / `try_pin_write`) claims a
//! page a mapper found in its AccessMap if the frame still backs it; `queue`
//! ([`PagesShared::make_resident`]) appends a newly issued page at the tail.
//!
//! # The frame protocol
//!
//! Each frame has one 64-bit state word ([`FrameWord`]): a tag (`Free`, `Filling`, `Resident`,
//! `Reclaiming`), read pins, a writer bit, a dirty bit, two waiter bits and a generation.
//!
//! ```text
//!            obtain (free list)                 make_resident (+ map record, + queue)
//!   Free ───────────────────────────▶ Filling ─────────────────────────────────────▶ Resident
//!    ▲                                  │  ▲                                         │  ▲  pins/writer
//!    │ free (fill failed / closed)      │  │ to_filling (gen+1)                      │  └─ come and go
//!    └──────────────────────────────────┘  └──────────── Reclaiming ◀────────────────┘
//!    ▲            free (close, gen+1)            │   take (unpinned; under lists lock)
//!    └───────────────────────────────────────────┤
//!                                                └──▶ Resident  (write-back failed: revert)
//! ```
//!
//! *Reserve* is a CAS on the word that adds a pin only if the tag is `Resident` at the
//! generation the AccessMap entry recorded; *reclaim* is a CAS that moves `Resident` with no pins
//! to `Reclaiming`. The two CAS on one word decide S1: exactly one wins. A filling frame is in no
//! queue and no map, so it can be neither reserved nor reclaimed (S3).
//!
//! # Orderings
//!
//! * Taking a pin or the writer bit: CAS with `Acquire` on success. It pairs with the `Release`
//!   that made the frame `Resident` (the fill's bytes and owner become visible), and with the
//!   `Release` of the previous writer's unpin (its bytes become visible).
//! * Dropping a pin (`fetch_sub`) or the writer bit (`fetch_and`): `Release`. It pairs with the
//!   `Acquire` CAS of the next writer and of the reclaimer, so every access through a guard
//!   happens before the frame is written back or refilled.
//! * Taking a frame for reclaim: CAS `Acquire` (pairs with the unpins above).
//! * Publishing (`Filling -> Resident`) and handing over (`Reclaiming -> Filling/Free`): `Release`
//!   stores/swaps (pair with the pinners' and takers' `Acquire`). Transitions to and from `Free`
//!   and `Resident` also happen under the lists lock, which orders them for `obtain` and for
//!   [`PagesShared::check_invariants`].
//! * Waiter bits: set with a CAS in the waiter's `prepare` (under its parker's lock); whoever
//!   clears one takes the same parker's lock to notify. The lock, not the atomics, carries the
//!   happens-before edge to the woken waiter, who re-reads the word with `Acquire`.
//!
//! The waiter protocol has no lost wake-up: a waiter sets its bit with a CAS that also checks the
//! condition it waits for; a waker's RMW either comes first in the word's modification order (the
//! waiter's CAS then sees the changed condition and does not park) or after it (the waker then
//! sees the bit and notifies, and cannot take the parker's lock before the waiter has parked).

use crate::access_map::AccessMap;
use crate::error::{Error, Result};
use crate::mapper::MapperShared;
use crate::memory::Memory;
use crate::pack::{EntryWord, FrameWord, Tag};
use crate::queue::PageQueue;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{
    lock, AccessTrack, Arc, Counter, Duration, Instant, Mutex, Parked, Parker, ShareArc, UnsafeCell,
};

/// Who a resident frame belongs to (the reverse map: frame -> (object, page)).
pub(crate) struct Owner {
    pub(crate) mapper: Arc<MapperShared>,
    pub(crate) page: u64,
}

/// Per-frame data other than the state word. State words live in their own dense array
/// (`PagesShared::states`, 8 bytes a frame) so the hit path's pin touches as few cache lines as
/// possible; this cold part is only read by reclaim, close and the census.
pub(crate) struct Frame {
    /// Written only by the frame's exclusive holder (`Filling` or `Reclaiming`); read by the
    /// exclusive holder, or by anyone holding the lists lock while the frame is `Resident`
    /// (it can leave `Resident` only under that lock).
    owner: UnsafeCell<Option<Owner>>,
    /// Lets loom check the protocol's exclusion on the frame's bytes.
    pub(crate) track: AccessTrack,
}

// SAFETY: the only non-Sync field is `owner`, whose accesses are serialized by the frame protocol
// (written only by the frame's exclusive holder; read by that holder or under the lists lock while
// Resident — see Frame::owner), and `Owner` itself is Send + Sync.
unsafe impl Sync for Frame {}
// SAFETY: as above; moving a Frame moves its owner, which is Send.
unsafe impl Send for Frame {}

struct Lists {
    free: Vec<u32>,
    queue: PageQueue,
    waiting_obtainers: usize,
}

/// Pool-wide event counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fills: Counter,
    pub(crate) fill_errors: Counter,
    pub(crate) reclaims: Counter,
    pub(crate) writebacks: Counter,
    pub(crate) writeback_errors: Counter,
    pub(crate) obtain_waits: Counter,
}

/// The shared state of a pool (what [`crate::Pages`] handles point to).
pub(crate) struct PagesShared {
    memory: Memory,
    states: Box<[AtomicU64]>,
    frames: Box<[Frame]>,
    lists: Mutex<Lists>,
    pool_park: Parker,
    page_park: Box<[Parker]>,
    wait_bound: Option<Duration>,
    pub(crate) counters: Counters,
}

/// What a scan of the lists produced.
enum Pick {
    /// A frame from the free list, now `Filling`.
    Free(u32),
    /// A victim taken from the queue, now `Reclaiming` (word as taken).
    Victim(u32, FrameWord),
    /// Nothing available.
    None,
}

/// Result of [`PagesShared::take_for_close`].
pub(crate) enum Take {
    /// Now `Reclaiming`, held by the caller.
    Taken(FrameWord),
    /// Pinned or being reclaimed by someone else: wait on this word.
    Busy(FrameWord),
    /// The frame no longer backs that page.
    Gone,
}

/// Snapshot of frame states taken under the lists lock (see [`crate::Pages::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Frames on the free list.
    pub free: u32,
    /// Frames being filled (or handed from a reclaimer to a filler).
    pub filling: u32,
    /// Frames backing a page, linked in the PageQueue.
    pub resident: u32,
    /// Frames being reclaimed or closed.
    pub reclaiming: u32,
    /// Resident frames with a read pin or a writer.
    pub pinned: u32,
    /// Resident or reclaiming frames whose bytes are not yet written back.
    pub dirty: u32,
}

impl Census {
    /// Sum of the four states; equals the pool size (I1).
    pub fn total(&self) -> u32 {
        self.free + self.filling + self.resident + self.reclaiming
    }
}

impl PagesShared {
    pub(crate) fn new(frames: u64, page_size: usize, wait_bound: Option<Duration>) -> Result<Self> {
        let memory = Memory::new(frames, page_size)?;
        let n = memory.frames();
        let states: Box<[AtomicU64]> = (0..n)
            .map(|_| AtomicU64::new(FrameWord::new(Tag::Free, 0).raw()))
            .collect();
        let frames: Box<[Frame]> = (0..n)
            .map(|_| Frame {
                owner: UnsafeCell::new(None),
                track: AccessTrack::new(),
            })
            .collect();
        let buckets = if cfg!(pagecore_loom) { 1 } else { n.min(64) };
        Ok(Self {
            memory,
            states,
            frames,
            // Pop order: frame 0 first.
            lists: Mutex::new(Lists {
                free: (0..n).rev().collect(),
                queue: PageQueue::new(n),
                waiting_obtainers: 0,
            }),
            pool_park: Parker::new(),
            page_park: (0..buckets).map(|_| Parker::new()).collect(),
            wait_bound,
            counters: Counters::default(),
        })
    }

    pub(crate) fn page_size(&self) -> usize {
        self.memory.page_size()
    }

    pub(crate) fn frame_count(&self) -> u32 {
        self.memory.frames()
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.wait_bound.map(|d| Instant::now() + d)
    }

    #[inline(always)]
    fn frame(&self, f: u32) -> &Frame {
        &self.frames[f as usize]
    }

    #[inline(always)]
    pub(crate) fn word(&self, f: u32) -> FrameWord {
        FrameWord(self.states[f as usize].load(Ordering::Acquire))
    }

    #[inline(always)]
    pub(crate) fn bytes(&self, f: u32) -> *mut u8 {
        self.memory.frame_ptr(f)
    }

    /// Hints the CPU to fetch the first cache line of `f`'s bytes (a hit will read them next).
    #[inline(always)]
    pub(crate) fn prefetch(&self, f: u32) {
        self.memory.prefetch(f)
    }

    pub(crate) fn track(&self, f: u32) -> &AccessTrack {
        &self.frame(f).track
    }

    /// Sets the owner of a frame.
    ///
    /// # Safety
    /// The caller holds `f` exclusively: it is `Filling` or `Reclaiming` and the caller is the one
    /// who moved it there.
    pub(crate) unsafe fn set_owner(&self, f: u32, owner: Option<Owner>) -> Option<Owner> {
        // SAFETY: exclusive holder (caller's contract; Frame::owner's rule).
        self.frame(f)
            .owner
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, owner) })
    }

    /// Runs `f` on a frame's owner.
    ///
    /// # Safety
    /// The caller holds the frame exclusively (`Filling`/`Reclaiming`, moved there by it), or holds
    /// the lists lock and has seen the frame `Resident` under it.
    unsafe fn with_owner<R>(&self, f: u32, g: impl FnOnce(Option<&Owner>) -> R) -> R {
        // SAFETY: no writer can run concurrently (caller's contract; Frame::owner's rule).
        self.frame(f).owner.with(|p| g(unsafe { (*p).as_ref() }))
    }

    // ----- reserve: pins ---------------------------------------------------------------------

    /// Reserve for reading: adds a read pin if `f` is `Resident` at generation `gen` with no
    /// writer. On failure returns the word seen.
    #[inline(always)]
    pub(crate) fn try_pin_read(&self, f: u32, gen: u32) -> Result<FrameWord, FrameWord> {
        let state = &self.states[f as usize];
        // Relaxed: only a guess for the CAS, which validates it.
        let mut cur = FrameWord(state.load(Ordering::Relaxed));
        loop {
            if cur.tag() != Tag::Resident
                || cur.gen() != gen
                || cur.writer()
                || cur.pins() == FrameWord::PINS.max()
            {
                return Err(cur);
            }
            // Acquire on success: pairs with the Release that published the frame (fill) and with
            // the previous writer's Release unpin, so the bytes we hand out are theirs.
            match state.compare_exchange_weak(
                cur.0,
                cur.0 + FrameWord::PINS.one(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(cur),
                Err(c) => cur = FrameWord(c),
            }
        }
    }

    /// Reserve for writing: takes the writer bit (and marks the page dirty) if `f` is `Resident`
    /// at `gen` with no pins and no writer. On failure returns the word seen.
    pub(crate) fn try_pin_write(&self, f: u32, gen: u32) -> Result<FrameWord, FrameWord> {
        let state = &self.states[f as usize];
        let mut cur = FrameWord(state.load(Ordering::Relaxed));
        loop {
            if cur.tag() != Tag::Resident || cur.gen() != gen || !cur.unpinned() {
                return Err(cur);
            }
            let new = cur
                .with(FrameWord::WRITER, true)
                .with(FrameWord::DIRTY, true);
            // Acquire: as in try_pin_read; the writer must also see every earlier reader done.
            match state.compare_exchange_weak(cur.0, new.0, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(cur),
                Err(c) => cur = FrameWord(c),
            }
        }
    }

    /// Turns the caller's read pin into the writer bit if it is the only pin.
    pub(crate) fn try_upgrade(&self, f: u32, gen: u32) -> bool {
        let state = &self.states[f as usize];
        let mut cur = FrameWord(state.load(Ordering::Relaxed));
        loop {
            if cur.tag() != Tag::Resident || cur.gen() != gen || cur.pins() != 1 || cur.writer() {
                return false;
            }
            let new = cur
                .with_pins(0)
                .with(FrameWord::WRITER, true)
                .with(FrameWord::DIRTY, true);
            // Acquire: pairs with the Release unpins of the readers that came before.
            match state.compare_exchange_weak(cur.0, new.0, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(c) => cur = FrameWord(c),
            }
        }
    }

    /// Drops a read pin.
    #[inline(always)]
    pub(crate) fn unpin_read(&self, f: u32) {
        // Release: pairs with the Acquire of the next writer / reclaimer (reads happen before).
        let prev = self.states[f as usize].fetch_sub(FrameWord::PINS.one(), Ordering::Release);
        if prev & FrameWord::WAIT_BITS != 0 {
            self.wake_waiters(f);
        }
    }

    /// Drops the writer bit.
    pub(crate) fn unpin_write(&self, f: u32) {
        // Release: pairs with the Acquire of the next pinner / reclaimer (writes happen before).
        let prev = self.states[f as usize].fetch_and(!FrameWord::WRITER.mask(), Ordering::Release);
        if prev & FrameWord::WAIT_BITS != 0 {
            self.wake_waiters(f);
        }
    }

    /// Clears the dirty bit after a successful write-back by a party that holds a read pin (so no
    /// writer can have set it again meanwhile).
    pub(crate) fn clear_dirty(&self, f: u32) {
        // Release: the write-back happens before a later taker (Acquire) sees the page clean and
        // skips writing it back.
        self.states[f as usize].fetch_and(!FrameWord::DIRTY.mask(), Ordering::Release);
    }

    /// After an unpin that saw a waiter bit: clears `WAIT_PAGE` (always; the page waiters re-check)
    /// and `WAIT_POOL` (if the frame is now unpinned), and wakes the matching parkers.
    #[cold]
    fn wake_waiters(&self, f: u32) {
        let state = &self.states[f as usize];
        let mut cur = FrameWord(state.load(Ordering::Relaxed));
        loop {
            let mut clear = cur.0 & FrameWord::WAIT_PAGE.mask();
            if cur.unpinned() {
                clear |= cur.0 & FrameWord::WAIT_POOL.mask();
            }
            if clear == 0 {
                return;
            }
            // Relaxed: the parker's mutex carries the happens-before edge to the woken waiters.
            match state.compare_exchange_weak(
                cur.0,
                cur.0 & !clear,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.notify(f, clear);
                    return;
                }
                Err(c) => cur = FrameWord(c),
            }
        }
    }

    /// Wakes the parkers for the waiter bits in `cleared` (which the caller just cleared).
    fn notify(&self, f: u32, cleared: u64) {
        if cleared & FrameWord::WAIT_PAGE.mask() != 0 {
            self.page_parker(f).unpark_all();
        }
        if cleared & FrameWord::WAIT_POOL.mask() != 0 {
            self.pool_park.unpark_all();
        }
    }

    fn page_parker(&self, f: u32) -> &Parker {
        &self.page_park[f as usize % self.page_park.len()]
    }

    /// Blocks until `f`'s word differs from `seen` (ignoring waiter bits) or `deadline` passes.
    /// Used by faulters that met a writer, readers, or a reclaim in progress.
    pub(crate) fn wait_frame(&self, f: u32, seen: FrameWord, deadline: Option<Instant>) -> Parked {
        let state = &self.states[f as usize];
        self.page_parker(f).park(deadline, || {
            // Acquire: if the word changed we return and the caller re-reads; no data is read here.
            let mut cur = FrameWord(state.load(Ordering::Acquire));
            loop {
                if cur.without_waiters() != seen.without_waiters() {
                    return false;
                }
                if FrameWord::WAIT_PAGE.is_set(cur.0) {
                    return true;
                }
                // Relaxed: the CAS only publishes "I wait"; see the module doc's waiter protocol.
                match state.compare_exchange_weak(
                    cur.0,
                    cur.0 | FrameWord::WAIT_PAGE.mask(),
                    Ordering::Relaxed,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return true,
                    Err(c) => cur = FrameWord(c),
                }
            }
        })
    }

    // ----- obtain and reclaim ----------------------------------------------------------------

    /// Takes `f` for reclaim if it is `Resident` and unpinned; otherwise, if `mark`, sets
    /// `WAIT_POOL` so its last unpinner wakes the pool. Caller holds the lists lock and has just
    /// unlinked `f` from the queue.
    fn take_or_mark(&self, f: u32, mark: bool) -> Option<FrameWord> {
        let state = &self.states[f as usize];
        let mut cur = FrameWord(state.load(Ordering::Acquire));
        loop {
            if cur.tag() != Tag::Resident {
                return None;
            }
            if cur.unpinned() {
                let new = cur
                    .with_tag(Tag::Reclaiming)
                    .with(FrameWord::WAIT_POOL, false);
                // Acquire: pairs with the Release unpins; every guard access happens before the
                // write-back and refill that follow.
                match state.compare_exchange(cur.0, new.0, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => return Some(new),
                    Err(c) => {
                        cur = FrameWord(c);
                        continue;
                    }
                }
            }
            if !mark || FrameWord::WAIT_POOL.is_set(cur.0) {
                return None;
            }
            // Relaxed: only publishes "an obtainer waits"; see the waiter protocol.
            match state.compare_exchange(
                cur.0,
                cur.0 | FrameWord::WAIT_POOL.mask(),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => return None,
                Err(c) => cur = FrameWord(c),
            }
        }
    }

    /// Under the lists lock: a free frame, else the first unpinned frame from the queue head
    /// (pinned ones rotate to the tail), else nothing.
    fn pick(&self, l: &mut Lists, mark: bool) -> Pick {
        if let Some(f) = l.free.pop() {
            let w = FrameWord(self.states[f as usize].load(Ordering::Relaxed));
            // Release: orders nothing new (the lists lock already does) but keeps every
            // publication of a tag change Release, which check_invariants relies on.
            self.states[f as usize].store(
                FrameWord::new(Tag::Filling, w.gen()).raw(),
                Ordering::Release,
            );
            return Pick::Free(f);
        }
        for _ in 0..l.queue.len() {
            let Some(f) = l.queue.pop_front() else { break };
            if let Some(w) = self.take_or_mark(f, mark) {
                return Pick::Victim(f, w);
            }
            l.queue.push_back(f);
        }
        Pick::None
    }

    /// Gives the caller a frame in `Filling` state, held exclusively: a free one, or the first
    /// reclaimable one from the queue head (written back first if dirty). Waits up to the pool's
    /// bound for a frame to become unpinned; then fails with [`Error::Exhausted`].
    pub(crate) fn obtain(&self) -> Result<u32> {
        let start = Instant::now();
        let deadline = self.deadline();
        let mut failures = 0u32;
        let mut pending: Option<Pick> = None;
        loop {
            let pick = match pending.take() {
                Some(p) => p,
                None => self.pick(&mut lock(&self.lists), false),
            };
            match pick {
                Pick::Free(f) => return Ok(f),
                Pick::Victim(f, w) => match self.evict(f, w) {
                    Ok(()) => {
                        self.to_filling(f);
                        self.counters.reclaims.incr();
                        return Ok(f);
                    }
                    Err(e) => {
                        // The victim went back to the queue tail, dirty; try another one, but
                        // give up once every frame has failed us.
                        failures += 1;
                        if failures >= self.frame_count() {
                            return Err(e);
                        }
                    }
                },
                Pick::None => {
                    let mut got = None;
                    self.counters.obtain_waits.incr();
                    let parked = self.pool_park.park(deadline, || {
                        let mut l = lock(&self.lists);
                        match self.pick(&mut l, true) {
                            Pick::None => {
                                l.waiting_obtainers += 1;
                                true
                            }
                            p => {
                                got = Some(p);
                                false
                            }
                        }
                    });
                    if got.is_some() {
                        pending = got;
                        continue;
                    }
                    lock(&self.lists).waiting_obtainers -= 1;
                    if parked == Parked::TimedOut {
                        return Err(Error::Exhausted {
                            waited: start.elapsed(),
                        });
                    }
                }
            }
        }
    }

    /// Removes a `Reclaiming` frame from its owner: writes it back if dirty, then clears the
    /// owner's AccessMap entry and forgets the owner. On a failed write-back the frame goes back
    /// to `Resident` (dirty, at the queue tail), the error is recorded with the owner, and returned.
    pub(crate) fn evict(&self, f: u32, w: FrameWord) -> Result<()> {
        // SAFETY: `f` is Reclaiming and we moved it there: we hold it exclusively.
        let flushed = unsafe {
            self.with_owner(f, |owner| {
                let Some(o) = owner else { return Ok(()) };
                if w.dirty() {
                    let r = {
                        let _t = self.track(f).shared();
                        // SAFETY: Reclaiming excludes every writer and filler (I4); the frame
                        // stays valid for the pool's lifetime.
                        let buf = std::slice::from_raw_parts(self.bytes(f), self.page_size());
                        crate::accessor::guarded("flush", || o.mapper.accessor.flush(o.page, buf))
                    };
                    match r {
                        Ok(()) => self.counters.writebacks.incr(),
                        Err(e) => {
                            self.counters.writeback_errors.incr();
                            let err = Error::WriteBack {
                                page: o.page,
                                source: ShareArc::new(e),
                            };
                            o.mapper.record_error(err.clone());
                            return Err(err);
                        }
                    }
                }
                let removed = o.mapper.map.remove(o.page, EntryWord::new(f, w.gen()));
                debug_assert!(removed, "AccessMap entry of a reclaimed frame was not ours");
                Ok(())
            })
        };
        match flushed {
            Ok(()) => {
                // SAFETY: still exclusive (Reclaiming).
                let old = unsafe { self.set_owner(f, None) };
                drop(old);
                Ok(())
            }
            Err(e) => {
                self.revert(f);
                Err(e)
            }
        }
    }

    /// `Reclaiming -> Filling`, generation + 1 (the frame changes hands).
    fn to_filling(&self, f: u32) {
        let state = &self.states[f as usize];
        let old = FrameWord(state.load(Ordering::Relaxed));
        // Release: pairs with the Acquire of a waiter re-reading the word; the frame's previous
        // page is gone from the map before this.
        let prev = FrameWord(state.swap(
            FrameWord::new(Tag::Filling, old.gen().wrapping_add(1)).raw(),
            Ordering::Release,
        ));
        self.notify(f, prev.0 & FrameWord::WAIT_BITS);
    }

    /// `Reclaiming -> Resident` after a failed write-back: dirty, back at the queue tail.
    fn revert(&self, f: u32) {
        let state = &self.states[f as usize];
        let mut l = lock(&self.lists);
        let mut cur = FrameWord(state.load(Ordering::Relaxed));
        let prev = loop {
            let new = cur.with_tag(Tag::Resident).raw() & !FrameWord::WAIT_BITS;
            // Release: a pinner (Acquire) sees the frame as we leave it; nothing was written.
            match state.compare_exchange_weak(cur.0, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break cur,
                Err(c) => cur = FrameWord(c),
            }
        };
        l.queue.push_back(f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        self.notify(f, prev.0 & FrameWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
    }

    /// Puts a frame the caller holds (`Filling` or `Reclaiming`, owner already cleared) on the
    /// free list, generation + 1.
    pub(crate) fn free(&self, f: u32) {
        let state = &self.states[f as usize];
        let mut l = lock(&self.lists);
        let old = FrameWord(state.load(Ordering::Relaxed));
        // Release: the next obtainer (under the lists lock) and any stale-entry reader see Free.
        let prev = FrameWord(state.swap(
            FrameWord::new(Tag::Free, old.gen().wrapping_add(1)).raw(),
            Ordering::Release,
        ));
        l.free.push(f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        self.notify(f, prev.0 & FrameWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
    }

    /// Publishes a filled frame: `Filling -> Resident` with `pins` read pins, recorded in `map`
    /// at `page`, linked at the queue tail — all under the lists lock, so that under that lock
    /// Resident frames, queued frames and recorded entries agree (I1, I2). Returns the entry, or
    /// `None` if the map slot was unexpectedly occupied (the frame is then left `Filling`).
    pub(crate) fn make_resident(
        &self,
        f: u32,
        pins: u64,
        map: &AccessMap,
        page: u64,
    ) -> Option<EntryWord> {
        let state = &self.states[f as usize];
        let mut l = lock(&self.lists);
        let old = FrameWord(state.load(Ordering::Relaxed));
        let entry = EntryWord::new(f, old.gen());
        // The frame becomes Resident *before* the entry is recorded: a fault that finds the entry
        // must find the frame pinnable (or busy), never Filling at the entry's generation, which
        // it would take for a stale entry and retry in a loop (found by loom, S2).
        // Release: pairs with the pinners' Acquire CAS: the filled bytes and the owner are
        // visible to whoever pins the frame.
        let prev = FrameWord(
            state.swap(
                FrameWord::new(Tag::Resident, old.gen())
                    .with_pins(pins.min(FrameWord::PINS.max()))
                    .raw(),
                Ordering::Release,
            ),
        );
        if !map.record(page, entry) {
            // Relaxed: nobody can have pinned it (no entry names it); back to the holder alone.
            state.store(old.raw(), Ordering::Relaxed);
            return None;
        }
        l.queue.push_back(f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        self.notify(f, prev.0 & FrameWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        Some(entry)
    }

    /// For `close`: takes `f` (recorded at `gen`) for eviction if unpinned.
    pub(crate) fn take_for_close(&self, f: u32, gen: u32) -> Take {
        let mut l = lock(&self.lists);
        let w = FrameWord(self.states[f as usize].load(Ordering::Acquire));
        if w.gen() != gen || matches!(w.tag(), Tag::Free | Tag::Filling) {
            return Take::Gone;
        }
        if w.tag() == Tag::Reclaiming || !w.unpinned() {
            return Take::Busy(w);
        }
        match self.take_or_mark(f, false) {
            Some(w) => {
                l.queue.remove(f);
                Take::Taken(w)
            }
            None => Take::Busy(w),
        }
    }

    // ----- inspection ------------------------------------------------------------------------

    /// Checks I1 (conservation) and I2 (uniqueness) under the lists lock and returns the census.
    pub(crate) fn check_invariants(&self) -> std::result::Result<Census, String> {
        let l = lock(&self.lists);
        let n = self.frame_count();
        let mut c = Census::default();
        let mut on_free = vec![false; n as usize];
        for &f in &l.free {
            if f >= n || std::mem::replace(&mut on_free[f as usize], true) {
                return Err(format!("free list holds frame {f} twice or out of range"));
            }
        }
        let mut owners = std::collections::HashSet::new();
        for f in 0..n {
            let raw = self.states[f as usize].load(Ordering::Acquire);
            let w = FrameWord::from_raw(raw).map_err(|e| format!("frame {f}: {e}"))?;
            let queued = l.queue.contains(f);
            match w.tag() {
                Tag::Free => c.free += 1,
                Tag::Filling => c.filling += 1,
                Tag::Resident => c.resident += 1,
                Tag::Reclaiming => c.reclaiming += 1,
            }
            if (w.tag() == Tag::Free) != on_free[f as usize] {
                return Err(format!(
                    "frame {f} is {:?} but on_free_list={}",
                    w.tag(),
                    on_free[f as usize]
                ));
            }
            if (w.tag() == Tag::Resident) != queued {
                return Err(format!("frame {f} is {:?} but queued={queued}", w.tag()));
            }
            if w.tag() == Tag::Resident {
                if !w.unpinned() {
                    c.pinned += 1;
                }
                // SAFETY: we hold the lists lock and saw the frame Resident; it cannot leave
                // Resident (and its owner cannot change) until we release the lock.
                let r = unsafe {
                    self.with_owner(f, |o| match o {
                        None => Err(format!("resident frame {f} has no owner")),
                        Some(o) => {
                            let e = o.mapper.map.find(o.page);
                            if e != EntryWord::new(f, w.gen()) {
                                Err(format!(
                                    "resident frame {f} (gen {}) is not what page {} maps to ({:?})",
                                    w.gen(),
                                    o.page,
                                    e.get()
                                ))
                            } else if !owners.insert((Arc::as_ptr(&o.mapper) as usize, o.page)) {
                                Err(format!("page {} backed by two frames", o.page))
                            } else {
                                Ok(())
                            }
                        }
                    })
                };
                r?;
            }
            if w.dirty() {
                c.dirty += 1;
            }
        }
        if c.free as usize != l.free.len() || c.resident as usize != l.queue.len() {
            return Err(format!(
                "census {c:?} disagrees with lists (free {}, queued {})",
                l.free.len(),
                l.queue.len()
            ));
        }
        if c.total() != n {
            return Err(format!("census {c:?} does not add up to {n} frames"));
        }
        Ok(c)
    }
}
