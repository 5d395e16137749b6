//! The frame pool. `try_obtain` gives a free frame or takes a victim from the [`PageQueue`] (the
//! object layer writes it back and finishes it: `object::reclaim`); `reserve`
//! (`PagesShared::try_pin_read` / `try_pin_write`) claims a page a mapper found in its AccessMap
//! if the entry still names a frame that is not being reclaimed; `queue` (`PagesShared::make_resident`) appends a newly issued page at the tail. The pool does
//! no I/O and calls nothing above it; its one name from above is its frames' owner type.
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
//!
//! Locks (the hierarchy of SPEC.md §5.1, `sync::Level`): the lists lock (`Lists`) comes after
//! the fill shards and the parkers (the pool parker's `prepare` takes it) and before layer
//! state, swap slots and the swap map; wake-ups found under it run after it is dropped.

use crate::error::Result;
use crate::frames::memory::Memory;
use crate::frames::queue::{PageQueue, Policy};
use crate::object::mapper::MapperShared;
use crate::pack::{EntryWord, FrameWord, Tag};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{
    lock, AccessTrack, Arc, Counter, Duration, Instant, Mutex, Parked, Parker, UnsafeCell,
};

mod census;
mod collapse;
pub(crate) mod memory;
mod pin;
mod proxy;
pub(crate) mod queue;
mod reclaim;
mod s3fifo;
#[cfg(test)]
mod tests;

pub use census::Census;

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
    /// A frame the pick in progress must not take (an awaited break's own source page: its
    /// frame for the copy must be another; `PagesShared::poll_obtain`). Set and cleared under
    /// this lock by that pick; `None` otherwise.
    except: Option<u32>,
    /// S3-FIFO's ghost and segment sizes (`None` under the other policies).
    s3: Option<s3fifo::S3State>,
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
    /// How many victims a reclaim of a mapped page takes at once (`PagesBuilder::evict_batch`).
    evict_batch: u32,
    pub(crate) counters: Counters,
    /// Object ids (for the reverse map's reports).
    next_object: Counter,
    /// Every object's counters, for the pool's sums (`Pages::stats`).
    pub(crate) objects: crate::stats::Registry,
    /// The pool's number in the process (its statistics' `pool` label).
    pool: u64,
    /// Whether objects count their hits (`PagesBuilder::count_hits`).
    pub(crate) count_hits: bool,
}

/// `PagesBuilder::evict_batch`'s default bound (the kernel reclaims 32 pages a round; half of
/// that keeps one fault's extra latency near a dozen microseconds on real memory when the
/// pages are clean; each dirty one adds its write-back).
const DEFAULT_EVICT_BATCH: u32 = 16;

/// What a scan of the lists produced.
enum Pick {
    /// A frame from the free list, now `Filling`.
    Free(u32),
    /// A victim taken from the queue, now `Reclaiming` (its entry as taken).
    Victim(u32, EntryWord),
    /// Nothing available.
    None,
}

impl Pick {
    fn into_got(self) -> Option<Got> {
        match self {
            Pick::Free(f) => Some(Got::Frame(f)),
            Pick::Victim(frame, taken) => Some(Got::Victim(Victim { frame, taken })),
            Pick::None => None,
        }
    }
}

/// A frame the caller holds exclusively in `Reclaiming`, taken from its page (by the eviction
/// pick or by a close), with the page's entry as taken. Made only by the pool's takes; not
/// `Clone`: whoever holds it finishes the eviction, with [`PagesShared::evicted`] (T8, the page
/// written back or clean) or [`PagesShared::revert`] (T10, the write-back failed).
#[must_use = "a victim must be finished: evicted (T8) or reverted (T10)"]
pub(crate) struct Victim {
    frame: u32,
    taken: EntryWord,
}

impl Victim {
    /// The page's entry as taken (`RECLAIMING` set; `DIRTY` says whether to write back).
    pub(crate) fn taken(&self) -> EntryWord {
        self.taken
    }

    /// For an object whose pages are not written back (anonymous, being closed): the page is
    /// discarded, not paged out.
    pub(crate) fn discard(mut self) -> Self {
        self.taken = self.taken.with(EntryWord::DIRTY, false);
        self
    }
}

/// A victim frame's bytes, for its write-back ([`PagesShared::with_victim`]).
pub(crate) struct VictimBytes<'a> {
    pages: &'a PagesShared,
    frame: u32,
}

impl VictimBytes<'_> {
    /// Runs `g` on the bytes, as a tracked shared access (loom checks no writer overlaps it).
    pub(crate) fn read<R>(&self, g: impl FnOnce(&[u8]) -> R) -> R {
        let _t = self.pages.track(self.frame).shared();
        // SAFETY: made only by `with_victim` for a frame the caller holds in `Reclaiming`:
        // RECLAIMING excludes every writer and filler (I4); the frame's bytes stay valid for the
        // pool's lifetime.
        let buf = unsafe {
            std::slice::from_raw_parts(self.pages.bytes(self.frame), self.pages.page_size())
        };
        g(buf)
    }
}

/// What [`PagesShared::try_obtain`] gives.
pub(crate) enum Got {
    /// A free frame, now `Filling`, the caller's.
    Frame(u32),
    /// A victim to write back (if dirty) and finish.
    Victim(Victim),
}

/// How [`PagesShared::wait_obtain`] ended.
pub(crate) enum Waited {
    /// A pick made while getting ready to park.
    Got(Got),
    /// Woken: try again.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Result of `PagesShared::take_for_close`.
pub(crate) enum Take {
    /// The frame is now `Reclaiming`, held by the caller.
    Taken(Victim),
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

/// `n` values made by `f` from their index, or `None` if the memory for them cannot be had.
fn try_collect<T>(n: u32, f: impl FnMut(usize) -> T) -> Option<Box<[T]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n as usize).ok()?;
    v.extend((0..n as usize).map(f));
    Some(v.into_boxed_slice())
}

impl PagesShared {
    pub(crate) fn new(
        frames: u64,
        page_size: usize,
        wait_bound: Option<Duration>,
        policy: Policy,
        evict_batch: Option<u32>,
        count_hits: bool,
    ) -> Result<Self> {
        let memory = Memory::new(frames, page_size)?;
        let n = memory.frames();
        let evict_batch = evict_batch
            .unwrap_or((n / 16).min(DEFAULT_EVICT_BATCH))
            .clamp(1, n.max(1));
        // One page parker per frame up to 64 (loom too: a scenario with two frames must be able
        // to tell their parkers apart, or a wake-up sent to the wrong frame goes unnoticed).
        let buckets = n.min(64);
        // The bookkeeping is allocated fallibly, as the frames' memory is: a pool too large for
        // the machine is an error, not an abort.
        let too_many = || crate::Error::TooManyFrames(frames);
        let tags = try_collect(n, |_| AtomicU64::new(FrameWord::new(Tag::Free).raw()))
            .ok_or_else(too_many)?;
        let frame_data = try_collect(n, |_| Frame {
            owner: UnsafeCell::new(None),
            proxies: UnsafeCell::new(Proxies::default()),
            track: AccessTrack::new(),
        })
        .ok_or_else(too_many)?;
        // Pop order: frame 0 first.
        let free = try_collect(n, |i| n - 1 - i as u32)
            .ok_or_else(too_many)?
            .into_vec();
        let queue = PageQueue::try_new(n).ok_or_else(too_many)?;
        let s3 = match policy {
            Policy::S3Fifo(p) => Some(s3fifo::S3State::try_new(p, n).ok_or_else(too_many)?),
            _ => None,
        };
        Ok(Self {
            memory,
            tags,
            frames: frame_data,
            lists: Mutex::new(
                crate::sync::Level::Lists,
                Lists {
                    free,
                    queue,
                    waiting_obtainers: 0,
                    except: None,
                    s3,
                },
            ),
            pool_park: Parker::new(crate::sync::Level::Park),
            page_park: (0..buckets)
                .map(|_| Parker::new(crate::sync::Level::Park))
                .collect(),
            wait_bound,
            policy,
            evict_batch,
            counters: Counters::default(),
            next_object: Counter::default(),
            objects: crate::stats::Registry::default(),
            pool: crate::sync::next_pool_id(),
            count_hits,
        })
    }

    /// The pool's number in the process (labels its statistics).
    pub(crate) fn pool_id(&self) -> u64 {
        self.pool
    }

    /// A fresh object id.
    pub(crate) fn object_id(&self) -> u64 {
        self.next_object.next()
    }

    /// How many victims a reclaim of a mapped page takes at once (at least 1).
    pub(crate) fn evict_batch(&self) -> usize {
        self.evict_batch as usize
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
}
