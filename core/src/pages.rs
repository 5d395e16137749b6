//! Pages: the frame pool front. `obtain` gives a fresh frame or reclaims the one at the head of
//! the [`PageQueue`]; `reserve` (`PagesShared::try_pin_read` / `try_pin_write`) claims a page a
//! mapper found in its AccessMap if the entry still names a frame that is not being reclaimed;
//! `queue` (`PagesShared::make_resident`) appends a newly issued page at the tail.
//!
//! # The protocol
//!
//! Two kinds of word. Each **page** has an [`EntryWord`] in its object's AccessMap: the frame
//! backing it, read pins, a writer bit, a dirty bit, two waiter bits and `RECLAIMING`. Each
//! **frame** has a [`FrameWord`] holding its lifecycle [`Tag`].
//!
//! ```text
//!  frame:  Free ──obtain──▶ Filling ──make_resident──▶ Resident ──take──▶ Reclaiming ─┬─▶ Filling (handed to the obtainer)
//!           ▲                  │                                              │        └─▶ Free (close)
//!           └──free (fill failed / closed)                                    └──revert (write-back failed)──▶ Resident
//!
//!  entry:  EMPTY ──make_resident──▶ (f, pins) ◀──pin / unpin──▶ (f, pins±1 | writer)
//!                                     │ take (no pins, no writer)
//!                                     ▼
//!                              (f, RECLAIMING) ──written back──▶ EMPTY
//!                                     └──────write-back failed──▶ (f) dirty
//! ```
//!
//! *Reserve* is a CAS on the entry that adds a pin only if it names a frame and is neither
//! `RECLAIMING` nor held by a writer; *take* (reclaim) is a CAS on the same entry that sets
//! `RECLAIMING` only if there is no pin and no writer. The two CAS on one word decide S1: exactly
//! one wins. A filling frame is named by no entry and linked in no queue, so it can be neither
//! reserved nor taken (S3). No generation is needed: a pin CAS succeeds only on the page's own
//! entry naming a live frame, so it pins that page's bytes (if the page was reclaimed and
//! refilled meanwhile, the entry names its new frame, and the CAS, comparing the whole word,
//! either sees that or fails).
//!
//! Frame tags change under the *lists lock* (free list and PageQueue), except
//! `Reclaiming -> Filling`, done by the frame's exclusive holder. So under that lock: the free
//! list holds exactly the `Free` frames, the queue exactly the `Resident` ones, and each
//! `Resident` frame's owner entry names it (I1, I2; checked by `PagesShared::check_invariants`).
//!
//! # Orderings
//!
//! * Pinning (read pin, writer bit, upgrade): CAS on the entry, `Acquire` on success. It pairs
//!   with the `Release` CAS that published the entry (the fill's bytes become visible) and with
//!   the `Release` of the previous writer's unpin.
//! * Unpinning (`fetch_sub` / `fetch_and` on the entry): `Release`. It pairs with the `Acquire` of
//!   the next writer and of the taker, so every access through a guard happens before the frame
//!   is written back or refilled.
//! * Taking for reclaim: CAS `Acquire` (pairs with the unpins).
//! * Clearing a written-back entry to `EMPTY`: swap, `Release`. It pairs with the `Acquire` load
//!   by which the next fault of the page sees `EMPTY` and starts a fill: the write-back happens
//!   before that fill reads the backing store (I3, I6).
//! * Waiter bits: set with a CAS in the waiter's `prepare` (under its parker's lock); whoever
//!   clears one takes the same parker's lock to notify. The parker's mutex, not the atomics,
//!   carries the happens-before edge to the woken waiter, which re-reads the entry.
//!
//! No lost wake-up: a waiter sets its bit with a CAS that also checks the entry is still what it
//! saw; a waker's RMW on the entry either comes first in its modification order (the waiter's CAS
//! then fails on the changed word and does not park) or after (the waker then sees the bit and
//! must take the parker's lock, which the waiter holds until parked).

use crate::error::{Error, Result};
use crate::mapper::MapperShared;
use crate::memory::Memory;
use crate::pack::{EntryWord, FrameWord, Tag};
use crate::queue::{PageQueue, Policy};
use crate::swap::SwapArea;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{
    lock, AccessTrack, Arc, Counter, Duration, Instant, Mutex, Parked, Parker, ShareArc, UnsafeCell,
};

/// Who a frame belongs to (the reverse map: frame -> (object, page)), or who maps it as a
/// copy-on-write proxy.
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) mapper: Arc<MapperShared>,
    pub(crate) page: u64,
}

impl Owner {
    /// Whether this names page `page` of `mapper`.
    pub(crate) fn is(&self, mapper: &MapperShared, page: u64) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.mapper), mapper) && self.page == page
    }

    /// The owner page's entry word. It exists: the leaf was allocated when the page was recorded
    /// and lives as long as the mapper, which the owner keeps alive.
    pub(crate) fn slot(&self) -> Option<&AtomicU64> {
        self.mapper.map.slot(self.page)
    }
}

/// Per-frame data other than the lifecycle word: cold, read by reclaim, close and the census.
pub(crate) struct Frame {
    /// Written by the frame's exclusive holder (`Filling`, or `Reclaiming` taken by it), or under
    /// the lists lock while the frame is `Resident` (a copy moving the page to a frozen layer);
    /// read by that holder, or by anyone holding the lists lock who saw the frame `Resident`
    /// under it (a frame leaves `Resident` only under that lock).
    owner: UnsafeCell<Option<Owner>>,
    /// The copy-on-write proxies mapping this frame besides its owner (the rest of the reverse
    /// map): each names a page whose entry names this frame with `COW` and holds one read pin on
    /// the owner's entry. Read and written only under the lists lock, and only while the frame
    /// is `Resident` (a proxy pins the owner's entry, so a frame with proxies cannot be taken).
    proxies: UnsafeCell<Proxies>,
    /// Lets loom check the protocol's exclusion on the frame's bytes.
    pub(crate) track: AccessTrack,
}

/// A frame's proxy list: one pointer, empty (no allocation) for the common unshared frame. A
/// boxed slice rather than a `Vec` (8 bytes per frame instead of 24): proxies come and go only on
/// misses, breaks and unmaps, and a frame has as many as copies share it.
#[derive(Default)]
pub(crate) struct Proxies(Option<Box<[Owner]>>);

impl Proxies {
    fn iter(&self) -> impl Iterator<Item = &Owner> {
        self.0.iter().flat_map(|v| v.iter())
    }

    fn push(&mut self, o: Owner) {
        let mut v = self.0.take().map(Vec::from).unwrap_or_default();
        v.push(o);
        self.0 = Some(v.into_boxed_slice());
    }

    /// Removes `(mapper, page)`; returns it (to be dropped outside the lists lock).
    fn remove(&mut self, mapper: &MapperShared, page: u64) -> Option<Owner> {
        let i = self.iter().position(|o| o.is(mapper, page))?;
        let mut v = Vec::from(self.0.take()?);
        let o = v.swap_remove(i);
        self.0 = (!v.is_empty()).then(|| v.into_boxed_slice());
        Some(o)
    }

    fn contains(&self, mapper: &MapperShared, page: u64) -> bool {
        self.iter().any(|o| o.is(mapper, page))
    }
}

// SAFETY: the only non-Sync fields are `owner` and `proxies`, whose accesses are serialized by
// the frame protocol (see their docs), and `Owner` itself is Send + Sync.
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
    pub(crate) grant_waits: Counter,
    pub(crate) revocations: Counter,
    pub(crate) cow_breaks: Counter,
}

/// The shared state of a pool (what [`crate::Pages`] handles point to).
pub(crate) struct PagesShared {
    memory: Memory,
    /// One [`FrameWord`] per frame.
    tags: Box<[AtomicU64]>,
    frames: Box<[Frame]>,
    lists: Mutex<Lists>,
    pool_park: Parker,
    page_park: Box<[Parker]>,
    wait_bound: Option<Duration>,
    policy: Policy,
    pub(crate) counters: Counters,
    /// The swap area of copies of persistent objects and of frozen layers (given at build, or a
    /// temporary file made on first use).
    swap: Mutex<Option<ShareArc<SwapArea>>>,
    swap_slots: u32,
    /// Object ids (for the reverse map's reports).
    next_object: Counter,
}

/// What a scan of the lists produced.
enum Pick {
    /// A frame from the free list, now `Filling`.
    Free(u32),
    /// A victim taken from the queue, now `Reclaiming` (its entry as taken).
    Victim(u32, EntryWord),
    /// Nothing available.
    None,
}

/// Result of `PagesShared::take_for_close`.
pub(crate) enum Take {
    /// The frame is now `Reclaiming`, held by the caller (entry as taken).
    Taken(u32, EntryWord),
    /// The page was a copy-on-write proxy and is now unmapped (its entry `EMPTY`).
    Unmapped,
    /// Pinned or being reclaimed by someone else: wait on this entry.
    Busy(EntryWord),
    /// The page has no frame.
    Gone,
}

/// Where the frame of a `COW` entry comes from (`PagesShared::cow_source`).
pub(crate) enum CowSource {
    /// The entry is a proxy of this owner's page (a frozen layer).
    Layer(Owner),
    /// The entry is the frame's owner: a private page a copy marked `COW`.
    Own,
    /// The entry changed (no longer `COW`, another frame, unmapped): look again.
    Changed,
}

/// Result of `PagesShared::publish_break`.
pub(crate) enum Publish {
    /// The page is private now, in the new frame.
    Done,
    /// The entry has pins or holders besides the allowed ones: wait on it and try again.
    Busy(EntryWord),
    /// The entry no longer is this proxy (unmapped by reclaim, broken by someone else).
    Changed,
}

/// Result of `PagesShared::freeze`.
pub(crate) enum Freeze {
    /// Every private page moved to the frozen layer; the store moved.
    Done,
    /// Page `.0` (entry `.1`) is being reclaimed or written, or is dirty in a persistent object,
    /// since the marking: wait outside the locks for a reclaim or a writer to finish, then mark
    /// again (which asks write holders to downgrade, writes dirty pages back and marks new ones)
    /// and freeze again.
    Restart(u64, EntryWord),
}

/// What a collapse did (`PagesShared::collapse`).
#[derive(Debug, Default)]
pub(crate) struct Collapse {
    /// Resident pages moved to the child: (page, the layer's dirty bit).
    pub(crate) moved: Vec<u64>,
    /// Resident pages of the layer the child already had its own copy of: frames freed.
    pub(crate) discarded: Vec<u64>,
    /// Resident pages that could not move now (pinned by a fault or a break in progress, or
    /// being reclaimed): they stay in the layer.
    pub(crate) left: Vec<u64>,
}

/// Work left by a holder of the lists lock, to do once it (and the pool parker's lock, which
/// `obtain` takes before it) is released: wake-ups take parker locks, and dropping a mapper's
/// last reference may close a frozen layer, which takes the lists lock.
#[derive(Default)]
pub(crate) struct Deferred {
    /// Parkers to notify: (frame, waiter bits cleared from an entry naming it).
    notify: Vec<(u32, u64)>,
    /// Entries whose waiter bits to settle (`wake_waiters`) after an unpin made under the lock.
    wake: Vec<Owner>,
    /// References to drop.
    drop: Vec<Owner>,
}

impl Deferred {
    pub(crate) fn run(self, pages: &PagesShared) {
        for (f, bits) in self.notify {
            pages.notify(f, bits);
        }
        for o in &self.wake {
            if let Some(slot) = o.slot() {
                pages.wake_waiters(slot);
            }
        }
        drop(self.wake);
        drop(self.drop);
    }
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
    /// Resident frames with a read pin, a holder or a writer (through their owner's entry or a
    /// proxy; the pins proxies hold on their owner do not count).
    pub pinned: u32,
    /// Resident frames whose bytes are not yet written back.
    pub dirty: u32,
    /// Resident frames shared copy-on-write: mapped by at least one proxy besides their owner.
    pub shared: u32,
    /// Copy-on-write proxies mapping resident frames (each object page that maps a frame it
    /// does not own).
    pub proxies: u32,
    /// Threads waiting for a frame: faults (or breaks) that found every frame pinned and sleep
    /// until one is unpinned, freed or put back (not part of [`Census::total`]).
    pub waiting_for_frames: u32,
}

impl Census {
    /// Sum of the four states; equals the pool size (I1).
    pub fn total(&self) -> u32 {
        self.free + self.filling + self.resident + self.reclaiming
    }
}

impl PagesShared {
    pub(crate) fn new(
        frames: u64,
        page_size: usize,
        wait_bound: Option<Duration>,
        swap: Option<ShareArc<SwapArea>>,
        swap_slots: u32,
        policy: Policy,
    ) -> Result<Self> {
        let memory = Memory::new(frames, page_size)?;
        let n = memory.frames();
        // One page parker per frame up to 64 (loom too: a scenario with two frames must be able
        // to tell their parkers apart, or a wake-up sent to the wrong frame goes unnoticed).
        let buckets = n.min(64);
        Ok(Self {
            memory,
            tags: (0..n)
                .map(|_| AtomicU64::new(FrameWord::new(Tag::Free).raw()))
                .collect(),
            frames: (0..n)
                .map(|_| Frame {
                    owner: UnsafeCell::new(None),
                    proxies: UnsafeCell::new(Proxies::default()),
                    track: AccessTrack::new(),
                })
                .collect(),
            // Pop order: frame 0 first.
            lists: Mutex::new(Lists {
                free: (0..n).rev().collect(),
                queue: PageQueue::new(n),
                waiting_obtainers: 0,
            }),
            pool_park: Parker::new(),
            page_park: (0..buckets).map(|_| Parker::new()).collect(),
            wait_bound,
            policy,
            counters: Counters::default(),
            swap: Mutex::new(swap),
            swap_slots,
            next_object: Counter::default(),
        })
    }

    /// The pool's swap area, made (a temporary file) on first use.
    pub(crate) fn swap(&self) -> Result<ShareArc<SwapArea>> {
        let mut s = lock(&self.swap);
        if let Some(a) = &*s {
            return Ok(a.clone());
        }
        let a = ShareArc::new(SwapArea::temporary(self.page_size(), self.swap_slots)?);
        *s = Some(a.clone());
        Ok(a)
    }

    /// A fresh object id.
    pub(crate) fn object_id(&self) -> u64 {
        self.next_object.next()
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

    fn set_tag(&self, f: u32, tag: Tag) {
        // Relaxed: every tag change is ordered by the lists lock, or (Reclaiming -> Filling) made
        // by the frame's exclusive holder; the data's edges are carried by the entry words.
        self.tags[f as usize].store(FrameWord::new(tag).raw(), Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn bytes(&self, f: u32) -> *mut u8 {
        self.memory.frame_ptr(f)
    }

    pub(crate) fn track(&self, f: u32) -> &AccessTrack {
        &self.frame(f).track
    }

    /// Sets the owner of a frame.
    ///
    /// # Safety
    /// The caller holds `f` exclusively (it is `Filling` or `Reclaiming` and the caller is the one
    /// who moved it there), or holds the lists lock while `f` is `Resident` (`Frame::owner`).
    pub(crate) unsafe fn set_owner(&self, f: u32, owner: Option<Owner>) -> Option<Owner> {
        // SAFETY: exclusive holder, or lists lock with `f` Resident (caller's contract;
        // Frame::owner's rule): no other access to the owner runs concurrently.
        self.frame(f)
            .owner
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, owner) })
    }

    /// Runs `g` on a frame's owner.
    ///
    /// # Safety
    /// The caller holds the frame exclusively (`Filling`/`Reclaiming`, moved there by it), or holds
    /// the lists lock and has seen the frame `Resident` under it.
    unsafe fn with_owner<R>(&self, f: u32, g: impl FnOnce(Option<&Owner>) -> R) -> R {
        // SAFETY: no writer can run concurrently (caller's contract; Frame::owner's rule).
        self.frame(f).owner.with(|p| g(unsafe { (*p).as_ref() }))
    }

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
                (cur.0 + EntryWord::PINS.one()) | EntryWord::REFERENCED.mask(),
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
            let new = cur
                .with(EntryWord::WRITER, true)
                .with(EntryWord::DIRTY, true)
                .with(EntryWord::REFERENCED, true);
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
    fn notify(&self, frame: u32, cleared: u64) {
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
        self.page_parker(frame).park(deadline, || {
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
        })
    }

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
    /// (`queue::Policy`: FIFO, CLOCK or SIEVE; pinned pages are passed over), else nothing. A
    /// frame pinned only by copy-on-write proxies has those proxies unmapped first (wake-ups and
    /// drops go to `later`).
    fn pick(&self, l: &mut Lists, mark: bool, later: &mut Deferred) -> Pick {
        if let Some(f) = l.free.pop() {
            self.set_tag(f, Tag::Filling);
            return Pick::Free(f);
        }
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
                        return Pick::Victim(f, w);
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
                        return Pick::Victim(f, w);
                    }
                    l.queue.advance_hand(f);
                }
            }
        }
        Pick::None
    }

    /// Under the lists lock, for a queued (`Resident`) frame: whether its page was hit since the
    /// policy last looked (the `REFERENCED` bit of its owner's entry or of a proxy), clearing it.
    fn clear_referenced(&self, l: &mut Lists, f: u32) -> bool {
        let clear = |slot: &AtomicU64| {
            // Relaxed: the bit is a hint for the policy and orders nothing. Every entry naming a
            // queued frame keeps naming it until the lists lock, which we hold, is released.
            let e = EntryWord(slot.load(Ordering::Relaxed));
            e.referenced()
                && EntryWord(slot.fetch_and(!EntryWord::REFERENCED.mask(), Ordering::Relaxed))
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
    fn take_victim(
        &self,
        l: &mut Lists,
        f: u32,
        mark: bool,
        later: &mut Deferred,
    ) -> Option<EntryWord> {
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

    /// Gives the caller a frame in `Filling` state, held exclusively: a free one, or the first
    /// reclaimable one from the queue head (written back first if dirty). Waits up to the pool's
    /// bound for a frame to become unpinned; then fails with [`Error::Exhausted`].
    pub(crate) fn obtain(&self) -> Result<u32> {
        // Read the clock only if we have to wait (a free or reclaimable frame needs no deadline).
        let mut waiting: Option<(Instant, Option<Instant>)> = None;
        let mut failures = 0u32;
        let mut pending: Option<Pick> = None;
        loop {
            let pick = match pending.take() {
                Some(p) => p,
                None => {
                    let mut later = Deferred::default();
                    let p = self.pick(&mut lock(&self.lists), false, &mut later);
                    later.run(self);
                    p
                }
            };
            match pick {
                Pick::Free(f) => return Ok(f),
                Pick::Victim(f, w) => match self.evict(f, w) {
                    Ok(()) => {
                        // Relaxed store: we hold the frame exclusively (see set_tag).
                        self.set_tag(f, Tag::Filling);
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
                    let (start, deadline) =
                        *waiting.get_or_insert_with(|| (Instant::now(), self.deadline()));
                    self.ask_holders();
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
                                got = Some(p);
                                false
                            }
                        }
                    });
                    later.run(self);
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

    /// Every frame is pinned: asks the clients holding the oldest queued pages to release them
    /// (each holder once per grant; the access lists of the frame's owner and proxies are the
    /// reverse map from frame to clients). The callbacks run with no lock held.
    fn ask_holders(&self) {
        const ASK_AT_MOST: usize = 8;
        let mut held: Vec<Owner> = Vec::new();
        {
            let mut l = lock(&self.lists);
            let queued: Vec<u32> = l.queue.iter().collect();
            for f in queued {
                let holds = |o: &Owner| {
                    // Relaxed: a hint; ask_release re-reads under its shard lock.
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
                if held.len() >= ASK_AT_MOST {
                    break;
                }
            }
        }
        for o in held {
            if let Some(slot) = o.slot() {
                o.mapper.arb.ask_release(self, slot, o.page);
            }
        }
    }

    /// Removes a `Reclaiming` frame from its owner: writes it back if dirty, then clears the
    /// owner's entry and forgets the owner. On a failed write-back the frame goes back to
    /// `Resident` (dirty, at the queue tail), the error is recorded with the owner, and returned.
    ///
    /// An unusual error (not EIO, ENOSPC, EDQUOT) is also recorded on the page itself, which
    /// escapes to an out-of-line arbitration record, so reclaim skips it until a successful
    /// write-back clears it (see `arbitration::PageError`).
    pub(crate) fn evict(&self, f: u32, taken: EntryWord) -> Result<()> {
        let mut unusual = None;
        // SAFETY: `f` is Reclaiming and we moved it there: we hold it exclusively.
        let r = unsafe {
            self.with_owner(f, |owner| {
                let Some(o) = owner else { return Ok(()) };
                let Some(slot) = o.slot() else { return Ok(()) };
                if taken.dirty() {
                    let r = {
                        let _t = self.track(f).shared();
                        // SAFETY: RECLAIMING excludes every writer and filler (I4); the frame
                        // stays valid for the pool's lifetime.
                        let buf = std::slice::from_raw_parts(self.bytes(f), self.page_size());
                        crate::accessor::guarded("flush", || o.mapper.accessor.flush(o.page, buf))
                    };
                    if let Err(e) = r {
                        self.counters.writeback_errors.incr();
                        let err = Error::WriteBack {
                            object: o.mapper.id,
                            page: o.page,
                            source: ShareArc::new(e),
                        };
                        o.mapper.record_error(err.clone());
                        if let Error::WriteBack { source, .. } = &err {
                            unusual = crate::arbitration::PageError::of(source)
                                .map(|pe| (o.mapper.clone(), o.page, pe));
                        }
                        self.revert(f, slot);
                        return Err(err);
                    }
                    self.counters.writebacks.incr();
                }
                // Release: the write-back happens before the next fault of this page sees EMPTY
                // (Acquire) and fills it from the backing store.
                let prev = slot.swap(0, Ordering::Release);
                self.notify(f, prev & EntryWord::WAIT_BITS);
                Ok(())
            })
        };
        if r.is_ok() {
            // SAFETY: still exclusive (Reclaiming).
            drop(unsafe { self.set_owner(f, None) });
        }
        // The frame is Resident again (reverted): the error is recorded through the page's entry
        // if it is still in `f`, no other reclaim took it meanwhile and no write-back succeeded
        // meanwhile (it is still dirty; see `record_error`, scenarios C23 and C43).
        if let Some((mapper, page, pe)) = unusual {
            if let Some(slot) = mapper.map.slot(page) {
                mapper.arb.record_error(self, slot, page, f, pe)?;
            }
        }
        r
    }

    /// `Reclaiming -> Resident` after a failed write-back: `RECLAIMING` cleared (dirty kept), back
    /// at the queue tail.
    fn revert(&self, f: u32, slot: &AtomicU64) {
        let mut l = lock(&self.lists);
        // Release: a pinner (Acquire) sees the entry as we leave it; nothing was written.
        let prev = slot.fetch_and(
            !(EntryWord::RECLAIMING.mask() | EntryWord::WAIT_BITS),
            Ordering::Release,
        );
        self.set_tag(f, Tag::Resident);
        l.queue.push_back(f);
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        self.notify(f, prev & EntryWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
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
    pub(crate) fn make_resident(&self, f: u32, pins: u64, writer: bool, slot: &AtomicU64) -> bool {
        let mut l = lock(&self.lists);
        // `pins < PINS.max()`: the miss path lets no more faults join a fill (see `miss`). A write
        // fault that nobody joined (`pins == 1`) gets the writer bit instead of its read pin.
        let entry = if writer {
            EntryWord::resident(f, 0)
                .with(EntryWord::WRITER, true)
                .with(EntryWord::DIRTY, true)
        } else {
            EntryWord::resident(f, pins.min(EntryWord::PINS.max()))
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
        l.queue.push_back(f);
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
                return Take::Taken(f, w);
            }
            // The entry changed between the two reads (a pin came or went): look again.
        }
    }

    // ----- copy-on-write proxies (the reverse map beyond the owner) -------------------------

    /// Runs `g` on frame `f`'s proxy list. Holding `_l` (the lists lock) is the list's rule.
    fn with_proxies<R>(&self, _l: &mut Lists, f: u32, g: impl FnOnce(&mut Proxies) -> R) -> R {
        // SAFETY: the lists lock is held (`_l`), which serializes every access to the list.
        self.frame(f).proxies.with_mut(|p| g(unsafe { &mut *p }))
    }

    /// Publishes a copy-on-write proxy: `slot` (page `proxy.page` of `proxy.mapper`, `EMPTY`)
    /// becomes `(f, COW, pins)` and joins `f`'s proxies. The caller holds a read pin on the entry
    /// of `f`'s owner `owner` (its resolution pin), which becomes the proxy's pin. Returns `false`
    /// (nothing changed) if the entry was occupied or `f` no longer belongs to `owner`.
    pub(crate) fn make_proxy(
        &self,
        f: u32,
        pins: u64,
        slot: &AtomicU64,
        proxy: Owner,
        owner: &Owner,
    ) -> bool {
        let mut l = lock(&self.lists);
        // SAFETY: lists lock held; `f` is Resident: its owner's entry is pinned by the caller.
        let owned =
            unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(&owner.mapper, owner.page))) };
        if !owned {
            drop(l);
            drop(proxy);
            return false;
        }
        // An obtainer that found the owner's entry pinned only by our resolution pin marked it
        // (`WAIT_POOL`) and waits for that pin to go. It becomes the proxy's pin, which no
        // unpin of the owner's entry drops until the proxy is unmapped, which the obtainer does
        // once the proxy is unpinned: carry the mark to the proxy, so that its last unpinner
        // wakes the pool (scenario C13: a lost wake-up without it).
        // Relaxed: obtainers set the mark under the lists lock, which we hold.
        let wait_pool = owner
            .slot()
            .is_some_and(|os| EntryWord::WAIT_POOL.is_set(os.load(Ordering::Relaxed)));
        let entry = EntryWord::resident(f, pins)
            .with(EntryWord::COW, true)
            .with(EntryWord::WAIT_POOL, wait_pool);
        // Release: pairs with the Acquire of this entry's pinners: the bytes our resolution pin
        // acquired (from the owner's publication) are visible to them.
        if slot
            .compare_exchange(0, entry.0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            drop(l);
            drop(proxy);
            return false;
        }
        self.with_proxies(&mut l, f, |p| p.push(proxy));
        true
    }

    /// Where the `COW` frame `f` named by page `page` of `mapper` (entry `slot`) comes from.
    pub(crate) fn cow_source(
        &self,
        f: u32,
        mapper: &MapperShared,
        page: u64,
        slot: &AtomicU64,
    ) -> CowSource {
        let mut l = lock(&self.lists);
        let e = EntryWord(slot.load(Ordering::Acquire));
        // An entry naming `f` and not RECLAIMING means `f` is Resident (I2).
        if e.frame() != Some(f) || !e.cow() || e.reclaiming() {
            return CowSource::Changed;
        }
        if self.with_proxies(&mut l, f, |p| p.contains(mapper, page)) {
            // SAFETY: lists lock held, `f` Resident. The clone is dropped by the caller, outside.
            return unsafe { self.with_owner(f, |o| o.cloned()) }
                .map_or(CowSource::Changed, CowSource::Layer);
        }
        // SAFETY: as above.
        if unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(mapper, page))) } {
            CowSource::Own
        } else {
            CowSource::Changed
        }
    }

    /// Drops a stale `COW` mark (left by a copy that failed) from page `page` of `mapper`, if the
    /// page still owns frame `f`. Under the lists lock, so no freeze can turn it into a proxy
    /// meanwhile.
    pub(crate) fn unmark_own(&self, f: u32, mapper: &MapperShared, page: u64, slot: &AtomicU64) {
        let _l = lock(&self.lists);
        let mut cur = EntryWord(slot.load(Ordering::Acquire));
        while cur.frame() == Some(f) && cur.cow() && !cur.reclaiming() {
            // SAFETY: lists lock held; an entry naming `f`, not RECLAIMING: `f` is Resident.
            if !unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(mapper, page))) } {
                return;
            }
            // AcqRel: writers may pin the page again from here on.
            match slot.compare_exchange(
                cur.0,
                cur.0 & !EntryWord::COW.mask(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Publishes a broken copy-on-write page: the entry `slot` of `me` moves from the proxy
    /// frame `f` to the private frame `f2` (`Filling`, the caller's, holding `f`'s bytes) in one
    /// CAS that keeps its pins and holders (exactly `allowed`), clears `COW` and the waiter bits
    /// and sets `DIRTY` if `dirty`; `f2` becomes `Resident` at the queue tail, owned by `me`, and
    /// `me` leaves `f`'s proxies. `privatize` runs under the lists lock right after the CAS (a
    /// copy's freeze reads what it records under the same lock). The caller still holds the
    /// proxy's pin on `f`'s owner and drops it afterwards.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish_break(
        &self,
        f: u32,
        f2: u32,
        slot: &AtomicU64,
        allowed: u64,
        dirty: bool,
        me: Owner,
        privatize: impl FnOnce(),
    ) -> Publish {
        let mut l = lock(&self.lists);
        let mut cur = EntryWord(slot.load(Ordering::Acquire));
        loop {
            if cur.frame() != Some(f) || !cur.cow() || cur.reclaiming() {
                return Publish::Changed;
            }
            if cur.0 & EntryWord::PINNED_BITS != allowed {
                return Publish::Busy(cur);
            }
            let moved = EntryWord::FRAME1.set(cur.0, f2 as u64 + 1)
                & !(EntryWord::COW.mask() | EntryWord::WAIT_BITS);
            let new = moved | if dirty { EntryWord::DIRTY.mask() } else { 0 };
            // Release: the new frame's bytes (copied by us) are visible to the entry's next
            // pinners (Acquire). Acquire: pairs with the Release unpins of the proxy's readers.
            match slot.compare_exchange(cur.0, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(c) => cur = EntryWord(c),
            }
        }
        privatize();
        // SAFETY: `f2` is Filling and the caller's alone.
        let old = unsafe { self.set_owner(f2, Some(me.clone())) };
        self.set_tag(f2, Tag::Resident);
        l.queue.push_back(f2);
        let removed = self.with_proxies(&mut l, f, |p| p.remove(&me.mapper, me.page));
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        drop((old, removed, me));
        self.notify(f, cur.0 & EntryWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        Publish::Done
    }

    /// A copy's freeze, under the lists lock (the caller holds every fill-shard lock of `from`):
    /// every private page of `from` moves to the new frozen layer `to` without copying a byte.
    /// The frame's owner becomes `to`'s page, `to`'s entry names the frame with one pin (the
    /// proxy's) and `from`'s dirty bit, and `from`'s entry stays where its pinners see it, now a
    /// clean `COW` proxy. Proxies `from` already had (of older layers) stay as they are. Then
    /// `then` moves the store (swap slots, or the record of which pages the file holds) and
    /// rewires the chain, still under the lock, so no reclaim, break or fill sees a half-moved
    /// object. Restarts (moving nothing) if a page is being reclaimed, or is private and
    /// written, or dirty in a persistent object, since the copy's marking.
    pub(crate) fn freeze(
        &self,
        from: &Arc<MapperShared>,
        to: &Arc<MapperShared>,
        then: impl FnOnce(),
    ) -> Freeze {
        let mut l = lock(&self.lists);
        let persistent = from.accessor.persistent();
        let mut moves = Vec::new();
        for (page, _) in from.map.entries() {
            let Some(slot) = from.map.slot(page) else {
                continue;
            };
            let mut cur = EntryWord(slot.load(Ordering::Acquire));
            while let Some(f) = cur.frame() {
                if cur.reclaiming() {
                    return Freeze::Restart(page, cur);
                }
                // SAFETY: lists lock held; an entry naming `f`, not RECLAIMING: `f` is Resident.
                if !unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(from, page))) } {
                    break; // a proxy of an older layer: it stays one
                }
                if !cur.cow() {
                    let writing = cur.writer()
                        || cur.0 & (EntryWord::HOLD_WRITE_BITS | EntryWord::EXT_WRITE.mask()) != 0;
                    if writing || (persistent && cur.dirty()) {
                        return Freeze::Restart(page, cur);
                    }
                    // AcqRel: refuses writers from here on (they see COW and break instead).
                    match slot.compare_exchange(
                        cur.0,
                        cur.0 | EntryWord::COW.mask(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {}
                        Err(c) => {
                            cur = EntryWord(c);
                            continue;
                        }
                    }
                }
                moves.push((page, f));
                break;
            }
        }
        let mut later = Deferred::default();
        for (page, f) in moves {
            let (Some(slot), Some(to_slot)) = (from.map.slot(page), to.map.slot_or_alloc(page))
            else {
                continue;
            };
            // No writer can set DIRTY again (COW), so clearing it here moves it exactly.
            // Relaxed: the lists lock orders this with the frozen entry's publication below.
            let prev = EntryWord(slot.fetch_and(!EntryWord::DIRTY.mask(), Ordering::Relaxed));
            let frozen = EntryWord::resident(f, 1).with(EntryWord::DIRTY, prev.dirty());
            // Release: `to` becomes reachable only through its handle, published under the
            // layer state lock in `then`; this store is ordered before that by program order.
            to_slot.store(frozen.raw(), Ordering::Release);
            // SAFETY: lists lock held and `f` Resident: the owner rule allows the change.
            let old = unsafe {
                self.set_owner(
                    f,
                    Some(Owner {
                        mapper: to.clone(),
                        page,
                    }),
                )
            };
            later.drop.extend(old);
            self.with_proxies(&mut l, f, |p| {
                p.push(Owner {
                    mapper: from.clone(),
                    page,
                })
            });
        }
        then();
        drop(l);
        later.run(self);
        Freeze::Done
    }

    /// A collapse (under every fill-shard lock of both objects, and here the lists lock): moves
    /// each resident page of the frozen layer `from` that its only child `to` reads through it
    /// into `to`, without copying. If `to`'s page is a proxy of the frame, the proxy becomes the
    /// frame's owner entry (keeping the pins of the proxies of objects above `to`, which now pin
    /// it); if `to` has no entry for the page, the layer's entry moves to `to`; if `to` has its own
    /// copy (`has(page)`), the layer's frame is freed. A page pinned by anything but proxies, or
    /// being reclaimed, stays; so does every page `stays` names. `then` (still under the lock)
    /// moves the stores.
    pub(crate) fn collapse(
        &self,
        from: &Arc<MapperShared>,
        to: &Arc<MapperShared>,
        stays: impl Fn(u64) -> bool,
        has: impl Fn(u64) -> bool,
        then: impl FnOnce(&Collapse),
    ) -> Collapse {
        let mut l = lock(&self.lists);
        let mut later = Deferred::default();
        let mut out = Collapse::default();
        for (page, _) in from.map.entries() {
            if stays(page) {
                out.left.push(page);
                continue;
            }
            let (Some(f_slot), Some(t_slot)) = (from.map.slot(page), to.map.slot_or_alloc(page))
            else {
                continue;
            };
            let ef = EntryWord(f_slot.load(Ordering::Acquire));
            let Some(f) = ef.frame() else { continue };
            let proxies = self.with_proxies(&mut l, f, |p| p.iter().count() as u64);
            // A frozen entry has no holder and no writer: its pins are its proxies', plus
            // transient ones (a resolution, a break's copy) which keep it where it is.
            if ef.reclaiming() || ef.0 & EntryWord::PINNED_BITS != EntryWord::PINS.one() * proxies {
                out.left.push(page);
                continue;
            }
            let et = EntryWord(t_slot.load(Ordering::Acquire));
            let to_proxy = et.frame() == Some(f)
                && et.cow()
                && self.with_proxies(&mut l, f, |p| p.contains(to, page));
            let keep_wait = ef.0 & EntryWord::WAIT_BITS;
            if !to_proxy && has(page) {
                if proxies != 0 {
                    out.left.push(page);
                    continue;
                }
                // Acquire: the layer's last readers' unpins happen before the frame's reuse.
                if f_slot
                    .compare_exchange(ef.0, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    out.left.push(page);
                    continue;
                }
                l.queue.remove(f);
                self.set_tag(f, Tag::Free);
                l.free.push(f);
                // SAFETY: lists lock held; `f` was Resident a moment ago and is ours now.
                later.drop.extend(unsafe { self.set_owner(f, None) });
                out.discarded.push(page);
            } else if to_proxy {
                // Acquire: as above (the proxies' pins move to `to`'s entry with it).
                if f_slot
                    .compare_exchange(ef.0, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    out.left.push(page);
                    continue;
                }
                let mut cur = et;
                loop {
                    // `to`'s own proxy pin goes; the other proxies' pins now pin this entry.
                    let pins = cur.pins() + proxies - 1;
                    let new = cur
                        .with(EntryWord::COW, false)
                        .with_pins(pins)
                        .with(EntryWord::DIRTY, cur.dirty() || ef.dirty());
                    // AcqRel: the frame's bytes are `to`'s own from here on; writers may pin it.
                    match t_slot.compare_exchange(cur.0, new.0, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => break,
                        Err(c) => cur = EntryWord(c),
                    }
                }
                // SAFETY: lists lock held and `f` Resident: the owner rule allows the change.
                later.drop.extend(unsafe {
                    self.set_owner(
                        f,
                        Some(Owner {
                            mapper: to.clone(),
                            page,
                        }),
                    )
                });
                later
                    .drop
                    .extend(self.with_proxies(&mut l, f, |p| p.remove(to, page)));
                out.moved.push(page);
            } else if et.frame().is_none() {
                if f_slot
                    .compare_exchange(ef.0, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    out.left.push(page);
                    continue;
                }
                // `to`'s entry is empty and stays so until we unlock: its publications need its
                // shard locks (held by the caller) or this lock. Release: its pinners' Acquire.
                t_slot.store(ef.0 & !EntryWord::WAIT_BITS, Ordering::Release);
                // SAFETY: as above.
                later.drop.extend(unsafe {
                    self.set_owner(
                        f,
                        Some(Owner {
                            mapper: to.clone(),
                            page,
                        }),
                    )
                });
                out.moved.push(page);
            } else {
                out.left.push(page);
                continue;
            }
            if keep_wait != 0 {
                later.notify.push((f, keep_wait));
            }
        }
        then(&out);
        let wake_pool = !out.discarded.is_empty() && l.waiting_obtainers > 0;
        drop(l);
        later.run(self);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        out
    }

    /// Whether page `page` of `mapper` (entry `slot`) names a frame `mapper` owns (under the
    /// lists lock, for a collapse).
    pub(crate) fn owns_frame(&self, mapper: &MapperShared, page: u64, slot: &AtomicU64) -> bool {
        let e = EntryWord(slot.load(Ordering::Acquire));
        match e.frame() {
            // SAFETY: called by `collapse`'s `has` under the lists lock; an entry naming `f`
            // and not RECLAIMING means `f` is Resident.
            Some(f) if !e.reclaiming() => unsafe {
                self.with_owner(f, |o| o.is_some_and(|o| o.is(mapper, page)))
            },
            Some(_) => true, // being reclaimed from `mapper`: its content is `mapper`'s
            None => false,
        }
    }

    /// The frame's lifecycle tag, owner and proxies, read under the lists lock (for the reverse
    /// map's report; the references are dropped by the caller, outside the lock).
    pub(crate) fn frame_map(&self, f: u32) -> Option<(Tag, Option<Owner>, Vec<Owner>)> {
        if f >= self.frame_count() {
            return None;
        }
        let mut l = lock(&self.lists);
        // Relaxed: ordered by the lists lock (see set_tag).
        let tag = FrameWord(self.tags[f as usize].load(Ordering::Relaxed)).tag();
        if tag != Tag::Resident {
            return Some((tag, None, Vec::new()));
        }
        // SAFETY: lists lock held and `f` Resident.
        let owner = unsafe { self.with_owner(f, |o| o.cloned()) };
        let proxies = self.with_proxies(&mut l, f, |p| p.iter().cloned().collect());
        Some((tag, owner, proxies))
    }

    // ----- inspection ------------------------------------------------------------------------

    /// Checks I1 (conservation) and I2 (uniqueness) under the lists lock and returns the census.
    pub(crate) fn check_invariants(&self) -> std::result::Result<Census, String> {
        let mut l = lock(&self.lists);
        l.queue.check()?;
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
            let raw = self.tags[f as usize].load(Ordering::Relaxed);
            let tag = FrameWord::from_raw(raw)
                .map_err(|e| format!("frame {f}: {e}"))?
                .tag();
            match tag {
                Tag::Free => c.free += 1,
                Tag::Filling => c.filling += 1,
                Tag::Resident => c.resident += 1,
                Tag::Reclaiming => c.reclaiming += 1,
            }
            if (tag == Tag::Free) != on_free[f as usize] {
                return Err(format!(
                    "frame {f} is {tag:?} but on_free_list={}",
                    on_free[f as usize]
                ));
            }
            let queued = l.queue.contains(f);
            if (tag == Tag::Resident) != queued {
                return Err(format!("frame {f} is {tag:?} but queued={queued}"));
            }
            if tag != Tag::Resident {
                continue;
            }
            // SAFETY: we hold the lists lock and saw the frame Resident; it cannot leave Resident
            // (and its owner cannot change) until we release the lock.
            let e = unsafe {
                self.with_owner(f, |o| {
                    let o = o.ok_or_else(|| format!("resident frame {f} has no owner"))?;
                    let e = EntryWord(
                        o.slot()
                            .ok_or_else(|| format!("resident frame {f}: owner page has no entry"))?
                            .load(Ordering::Acquire),
                    );
                    EntryWord::from_raw(e.raw())
                        .map_err(|err| format!("page {}: {err}", o.page))?;
                    if e.frame() != Some(f) || e.reclaiming() {
                        return Err(format!("resident frame {f}: page {} maps to {e:?}", o.page));
                    }
                    if !owners.insert((Arc::as_ptr(&o.mapper) as usize, o.page)) {
                        return Err(format!("page {} backed by two frames", o.page));
                    }
                    Ok(e)
                })
            }?;
            // The proxies (I2 for copies): each names a page whose entry names this frame with
            // COW, not RECLAIMING, and holds one of the owner entry's pins.
            let proxies: Vec<Owner> = self.with_proxies(&mut l, f, |p| p.iter().cloned().collect());
            let mut proxy_pinned = false;
            for p in &proxies {
                let pe = EntryWord(
                    p.slot()
                        .ok_or_else(|| format!("frame {f}: proxy page {} has no entry", p.page))?
                        .load(Ordering::Acquire),
                );
                EntryWord::from_raw(pe.raw())
                    .map_err(|err| format!("proxy page {}: {err}", p.page))?;
                if pe.frame() != Some(f) || !pe.cow() || pe.reclaiming() {
                    return Err(format!("frame {f}: proxy page {} maps to {pe:?}", p.page));
                }
                proxy_pinned |= !pe.unpinned();
            }
            let n = proxies.len() as u64;
            if e.pins() < n {
                return Err(format!("frame {f}: {n} proxies but the owner entry {e:?}"));
            }
            if e.pins() > n || e.held() || e.writer() || proxy_pinned {
                c.pinned += 1;
            }
            if n > 0 {
                c.shared += 1;
                c.proxies += n as u32;
            }
            if e.dirty() {
                c.dirty += 1;
            }
            drop(proxies);
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
        c.waiting_for_frames = u32::try_from(l.waiting_obtainers)
            .map_err(|_| format!("{} threads waiting for a frame", l.waiting_obtainers))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryAccessor, PageMapper, Pages};

    const PAGE: usize = 64;

    fn slot(o: &PageMapper, page: u64) -> &AtomicU64 {
        o.shared.map.slot(page).expect("the page has an entry")
    }

    /// Clears `clear` and sets `set` in the entry, checks the census refuses it, and puts the
    /// entry back.
    fn refused_with(pages: &Pages, slot: &AtomicU64, set: u64, clear: u64, what: &str) {
        let saved = slot.load(Ordering::SeqCst);
        slot.store((saved & !clear) | set, Ordering::SeqCst);
        let r = pages.check_invariants();
        slot.store(saved, Ordering::SeqCst);
        assert!(r.is_err(), "the census accepted {what}: {r:?}");
        pages.check_invariants().expect("restored");
    }

    /// `check_invariants` is the oracle of every other test and scenario: each kind of broken
    /// owner or proxy entry it is meant to catch (I2 and its copy-on-write form) makes it fail.
    /// (Mutation testing: its checks of those entries could be weakened without a test noticing,
    /// since no correct run breaks them.)
    #[test]
    fn check_invariants_rejects_broken_owner_and_proxy_entries() {
        let pages = Pages::builder().page_size(PAGE).frames(4).build().unwrap();
        let x = pages.open(MemoryAccessor::new(), 2 * PAGE as u64).unwrap();
        x.write(0).unwrap()[0] = 5;
        let y = x.copy().unwrap();
        assert_eq!(y.read(0).unwrap()[0], 5);
        let c = pages.check_invariants().unwrap();
        assert_eq!((c.resident, c.proxies), (1, 2), "{c:?}");
        // x0 and y0 are proxies of the frozen layer's page, which owns the frame.
        let frame = EntryWord(slot(&y, 0).load(Ordering::SeqCst))
            .frame()
            .unwrap();
        let ps = &pages.shared;
        let layer_page = {
            let _l = lock(&ps.lists);
            // SAFETY: lists lock held; the frame is Resident (the census just said so).
            unsafe { ps.with_owner(frame, |o| o.cloned()) }.expect("the frame has an owner")
        };
        assert!(!layer_page.is(&x.shared, 0) && !layer_page.is(&y.shared, 0));
        let owner = layer_page.slot().unwrap();
        let other = EntryWord::FRAME1.set(0, (frame as u64 + 1) % 4 + 1);
        let frame_bits = EntryWord::FRAME1.mask();
        refused_with(
            &pages,
            owner,
            EntryWord::RECLAIMING.mask(),
            0,
            "a resident owner RECLAIMING",
        );
        refused_with(
            &pages,
            owner,
            other,
            frame_bits,
            "an owner naming another frame",
        );
        refused_with(
            &pages,
            owner,
            0,
            EntryWord::PINS.mask(),
            "two proxies, no pins",
        );
        for p in [&x, &y] {
            let s = slot(p, 0);
            refused_with(&pages, s, 0, EntryWord::COW.mask(), "a proxy without COW");
            refused_with(
                &pages,
                s,
                EntryWord::RECLAIMING.mask(),
                0,
                "a proxy RECLAIMING",
            );
            refused_with(&pages, s, other, frame_bits, "a proxy naming another frame");
        }
    }
    /// A pool of `frames` frames whose waits give up after `bound` (`None`: never).
    fn pool(frames: u64, bound: Option<std::time::Duration>) -> Pages {
        Pages::builder()
            .page_size(PAGE)
            .frames(frames)
            .wait_bound(bound)
            .build()
            .unwrap()
    }

    /// Waits (polling, bounded) until a thread has parked on the entry: `WAIT_PAGE` is set.
    fn until_waited_on(slot: &AtomicU64) {
        for _ in 0..20_000 {
            if EntryWord::WAIT_PAGE.is_set(slot.load(Ordering::SeqCst)) {
                return;
            }
            crate::sync::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("nobody waited on the entry");
    }

    /// Sets up X0 written with 5 and copied (to the returned Y): X0 is a proxy of the frozen
    /// layer's page, whose frame is returned.
    fn copied(pages: &Pages) -> (PageMapper, PageMapper, u32) {
        let x = pages.open(MemoryAccessor::new(), PAGE as u64).unwrap();
        x.write(0).unwrap()[0] = 5;
        let y = x.copy().unwrap();
        let e = EntryWord(slot(&x, 0).load(Ordering::SeqCst));
        assert!(e.cow(), "X0 is not a proxy after the copy: {e:?}");
        (x, y, e.frame().unwrap())
    }

    /// Page 0 of `x`, as a break's owner.
    fn x0(x: &PageMapper) -> Owner {
        Owner {
            mapper: (*x.shared).clone(),
            page: 0,
        }
    }

    /// A break of X0 that copied frame `f` into `f2` publishes now, after X0's entry changed:
    /// it must be refused and leave the entry as it is; `f2` goes back to the pool.
    fn assert_refused(pages: &Pages, x: &PageMapper, f: u32, f2: u32) {
        let ps = &pages.shared;
        let sx = slot(x, 0);
        let now = sx.load(Ordering::SeqCst);
        let r = ps.publish_break(f, f2, sx, 0, true, x0(x), || {
            panic!("a refused break privatized its page")
        });
        assert!(
            matches!(r, Publish::Changed),
            "a stale break was not refused"
        );
        assert_eq!(sx.load(Ordering::SeqCst), now, "the entry changed");
        ps.free(f2);
    }

    /// The writer of X0 (6) parked on X0's proxy finished, the copy Y kept 5, nothing pinned.
    fn writer_done(
        pages: &Pages,
        w: crate::sync::thread::JoinHandle<crate::Result<()>>,
        x: &PageMapper,
        y: &PageMapper,
        what: &str,
    ) {
        w.join().unwrap().expect(what);
        assert_eq!(x.read(0).unwrap()[0], 6);
        assert_eq!(y.read(0).unwrap()[0], 5, "the write reached the copy");
        let c = pages.check_invariants().unwrap();
        assert_eq!(c.pinned, 0, "{c:?}");
    }

    /// The unpinner's window (SPEC §5): a reader of a proxy drops its pin (`fetch_sub`), and
    /// before its wake-up runs a reclaim unmaps the proxy, so the wake-up finds the entry empty
    /// and wakes nobody. A writer parked on the proxy meanwhile must be woken by the unmap
    /// itself, or it sleeps to its wait bound. The window is played by hand: the reader's pin
    /// and its two halves of `unpin_read` are taken directly, the reclaim is a real `obtain`.
    /// (Mutation testing: unmap's notify of the proxy's waiters was never needed by a scenario.)
    #[test]
    fn unmap_wakes_a_writer_waiting_on_the_proxy_in_an_unpinners_window() {
        let bound = std::time::Duration::from_secs(3);
        let pages = pool(3, Some(bound));
        let ps = &pages.shared;
        let (x, y, f) = copied(&pages);
        let sx = slot(&x, 0);
        // The reader pins the proxy.
        let pinned = ps
            .try_pin_read(sx, EntryWord(sx.load(Ordering::SeqCst)))
            .expect("an unpinned proxy takes a read pin");
        assert_eq!(pinned.frame(), Some(f));
        let w = {
            let x = x.clone();
            crate::sync::thread::spawn(move || x.write(0).map(|mut g| g[0] = 6))
        };
        until_waited_on(sx);
        // The reader's unpin, first half: the pin goes, its wake-up has not run yet.
        let prev = sx.fetch_sub(EntryWord::PINS.one(), Ordering::Release);
        assert!(EntryWord::WAIT_PAGE.is_set(prev));
        // A reclaim: the two free frames, then the shared one (unmapping the unpinned proxy).
        let taken: Vec<u32> = (0..3).map(|_| ps.obtain().unwrap()).collect();
        assert!(
            taken.contains(&f),
            "the reclaim did not take the shared frame"
        );
        assert_eq!(EntryWord(sx.load(Ordering::SeqCst)).frame(), None);
        // The reader's unpin, second half: the entry is empty, there is nobody for it to wake.
        ps.wake_waiters(sx);
        for t in taken {
            ps.free(t);
        }
        writer_done(
            &pages,
            w,
            &x,
            &y,
            "the writer parked on the unmapped proxy was not woken",
        );
    }

    /// A break's publication (its one CAS) must be refused when the proxy it copied was unmapped
    /// and made again for another frame between its copy and its CAS (a reclaim took the shared
    /// frame, a fault brought the layer's page back elsewhere): publishing would replace a live
    /// proxy it never copied. Played by hand: the break's new frame is obtained, the reclaim and
    /// the refault are real, then the break publishes with the frame it had seen.
    /// (Mutation testing: no scenario reaches this four-party window.)
    #[test]
    fn publish_break_refuses_a_proxy_made_again_for_another_frame() {
        let pages = pool(3, Some(std::time::Duration::from_secs(3)));
        let ps = &pages.shared;
        let (x, y, f) = copied(&pages);
        let sx = slot(&x, 0);
        // The break: its new frame (a free one).
        let f2 = ps.obtain().unwrap();
        // A reclaim: B0 takes the last free frame, B1 the shared one (X0's proxy is unmapped).
        let b = pages.open(MemoryAccessor::new(), 2 * PAGE as u64).unwrap();
        let b0 = b.read(0).unwrap();
        let b1 = b.read(1).unwrap();
        assert_eq!(b1.frame(), f, "the reclaim did not take the shared frame");
        assert_eq!(EntryWord(sx.load(Ordering::SeqCst)).frame(), None);
        // X0 faults again: the layer's page comes back in B0's frame, X0 a proxy of it.
        drop(b0);
        assert_eq!(x.read(0).unwrap()[0], 5);
        let now = EntryWord(sx.load(Ordering::SeqCst));
        assert!(
            now.cow() && now.frame().is_some_and(|g| g != f && g != f2),
            "{now:?}"
        );
        assert_refused(&pages, &x, f, f2);
        drop(b1);
        assert_eq!(x.read(0).unwrap()[0], 5);
        assert_eq!(y.read(0).unwrap()[0], 5);
        let c = pages.check_invariants().unwrap();
        assert_eq!(c.pinned, 0, "{c:?}");
    }

    /// The owner's entry of a proxy's frame (under the lists lock).
    fn owner_slot(pages: &Pages, f: u32) -> Owner {
        let ps = &pages.shared;
        let _l = lock(&ps.lists);
        // SAFETY: lists lock held; a proxy names `f`, which pins its owner: `f` is Resident.
        unsafe { ps.with_owner(f, |o| o.cloned()) }.expect("the frame has an owner")
    }

    /// A break publishes while a writer waits on the proxy, blocked by a pin the break allows
    /// (as an upgrade allows its own hold): the publication clears the waiter bits, so it must
    /// wake the writer itself (which then waits for the pin on the private page); nobody else
    /// would, since the pin's unpin then finds no waiter bit. Played by hand: a read pin, a real
    /// writer parked behind it, then the break's copy and publication with that pin allowed.
    /// (Mutation testing: `publish_break`'s notify was never needed by a scenario; a real
    /// upgrade changes the entry, waking the writer, just before it publishes.)
    #[test]
    fn a_break_wakes_a_writer_waiting_on_the_proxy() {
        let pages = pool(3, Some(std::time::Duration::from_secs(3)));
        let ps = &pages.shared;
        let (x, y, f) = copied(&pages);
        let sx = slot(&x, 0);
        ps.try_pin_read(sx, EntryWord(sx.load(Ordering::SeqCst)))
            .expect("an unpinned proxy takes a read pin");
        let w = {
            let x = x.clone();
            crate::sync::thread::spawn(move || x.write(0).map(|mut w| w[0] = 6))
        };
        until_waited_on(sx);
        let f2 = ps.obtain().unwrap();
        {
            let _from = ps.track(f).shared();
            let _to = ps.track(f2).exclusive();
            // SAFETY: the read pin keeps `f` resident and a frozen layer has no writer (I4);
            // `f2` is Filling and ours (I1); distinct frames do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ps.bytes(f), ps.bytes(f2), PAGE) };
        }
        let r = ps.publish_break(f, f2, sx, EntryWord::PINS.one(), false, x0(&x), || {});
        assert!(matches!(r, Publish::Done), "the break was refused");
        // The proxy's pin on the owner's entry goes; then the reader's pin.
        ps.unpin_read(owner_slot(&pages, f).slot().unwrap());
        ps.unpin_read(sx);
        writer_done(
            &pages,
            w,
            &x,
            &y,
            "the writer parked on the proxy was not woken by the break",
        );
    }

    /// A break's publication must be refused when its proxy became the frame's owner entry (a
    /// collapse moved the layer's page into the object once the copy was gone): the entry
    /// still names the frame, but it is a private page now, which the break would replace.
    #[test]
    fn publish_break_refuses_a_proxy_a_collapse_made_private() {
        let pages = pool(3, Some(std::time::Duration::from_secs(3)));
        let ps = &pages.shared;
        let swap = crate::sync::ShareArc::new(crate::swap::SwapArea::temporary(PAGE, 8).unwrap());
        let x = pages
            .open(
                crate::sync::ShareArc::new(crate::anonymous::Anonymous::new(swap.clone())),
                PAGE as u64,
            )
            .unwrap();
        x.write(0).unwrap()[0] = 5;
        let y = x.copy().unwrap();
        let sx = slot(&x, 0);
        let f = EntryWord(sx.load(Ordering::SeqCst)).frame().unwrap();
        let f2 = ps.obtain().unwrap();
        drop(y);
        assert_eq!(x.compact(), 0, "the layer did not collapse");
        let now = EntryWord(sx.load(Ordering::SeqCst));
        assert!(!now.cow() && now.frame() == Some(f), "{now:?}");
        assert_refused(&pages, &x, f, f2);
        assert_eq!(x.read(0).unwrap()[0], 5);
        let c = pages.check_invariants().unwrap();
        assert_eq!(c.pinned, 0, "{c:?}");
    }
}
