//! S3-FIFO (Yang, Zhang, Qiu, Yue, Rashmi: "FIFO queues are all you need for cache eviction",
//! SOSP '23), the pool's fourth [`Policy`](super::queue::Policy): its parameters ([`S3Fifo`]),
//! its ghost FIFO, and its pick under the lists lock.
//!
//! New pages enter the queue's *small* segment (10% of the frames by default). A pick takes
//! from the small segment's head unless the *main* segment is over its share (the other 90%) or
//! the small one is empty. A small page hit at least `move_to_main` times (default 2) while it
//! was there moves to main with its count cleared; one hit less is evicted, and its id (a 32-bit
//! fingerprint of object and page) is remembered in the *ghost*, a FIFO of the last ids evicted
//! from small (90% of the frames by default). A page faulted while the ghost remembers it enters
//! main directly (and is forgotten). Main is a CLOCK over the entry's 2-bit `FREQ`: a page at its
//! head with a count above 0 has it lowered by one and goes to the tail; one with 0 is evicted.
//!
//! Until the first eviction, pages that find the small segment full enter main (as the authors'
//! simulator does): a pool filling up keeps the pages it took first.
//!
//! Hits cost what they cost under the other policies: the pin's or grant's own CAS raises
//! `FREQ` (saturating at 3, `EntryWord::hit`); nothing else is touched on a hit. The pick reads
//! and lowers the count under the lists lock, like CLOCK and SIEVE. A frame shared copy-on-write
//! counts the hits of its owner's entry and every proxy's: its count is the largest of them,
//! and lowering it lowers each.
//!
//! The ghost costs about 14 bytes per remembered id (4 in its ring, about 10 in the hash map
//! counting each id's entries in the ring), allocated in full when the pool is built, so the
//! pick never allocates under the lists lock. An id forgotten by a fault and remembered again
//! before its old ring entry leaves may be forgotten a little early: the ghost is a hint.

use super::*;
use crate::error::Error;
use crate::frames::queue::Segment;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// S3-FIFO's parameters ([`Policy::S3Fifo`](crate::Policy::S3Fifo)): the share of the frames
/// the small FIFO holds before it gives pages up, the ghost's size, and how many hits in the
/// small FIFO move a page to main. The default is the authors' simulator's (libCacheSim):
/// small 10%, ghost 90%, move to main at 2 hits.
///
/// ```
/// use pagecore::{Pages, Policy, S3Fifo};
/// // A larger small FIFO for a trace with many one-hit wonders, a ghost as large as the pool.
/// let params = S3Fifo::new(20, 100, 1)?;
/// assert_eq!(params.small_percent(), 20);
/// let pages = Pages::builder().frames(1000).policy(Policy::S3Fifo(params)).build()?;
/// assert!(S3Fifo::new(0, 90, 2).is_err()); // the small FIFO needs a share
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct S3Fifo {
    small_percent: u8,
    ghost_percent: u16,
    move_to_main: u8,
}

impl Default for S3Fifo {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl S3Fifo {
    /// The authors' simulator's parameters: small 10%, ghost 90%, move to main at 2 hits (what
    /// [`Default`] gives, as a constant).
    pub const DEFAULT: Self = Self {
        small_percent: 10,
        ghost_percent: 90,
        move_to_main: 2,
    };

    /// The largest ghost, in percent of the frames.
    pub const MAX_GHOST_PERCENT: u16 = 1000;

    /// S3-FIFO with a small FIFO of `small_percent` percent of the frames (1 to 90; at least
    /// one frame), a ghost remembering as many ids as `ghost_percent` percent of the frames (0,
    /// no ghost, to [`MAX_GHOST_PERCENT`](Self::MAX_GHOST_PERCENT)), and pages moving from small
    /// to main once hit `move_to_main` times there (1 to 3: the count saturates at 3).
    /// [`Error::InvalidPolicy`] otherwise. The ghost costs about 14 bytes per id it remembers,
    /// allocated when the pool is built: 13 bytes per frame at the default 90%, 140 at 1000%
    /// (more than a small page's frame).
    pub fn new(small_percent: u8, ghost_percent: u16, move_to_main: u8) -> Result<Self> {
        if !(1..=90).contains(&small_percent) {
            return Err(Error::InvalidPolicy(
                "S3-FIFO's small FIFO must be 1% to 90% of the frames",
            ));
        }
        if ghost_percent > Self::MAX_GHOST_PERCENT {
            return Err(Error::InvalidPolicy(
                "S3-FIFO's ghost must be at most 1000% of the frames",
            ));
        }
        if !(1..=3).contains(&move_to_main) {
            return Err(Error::InvalidPolicy(
                "S3-FIFO's move-to-main threshold must be 1 to 3 hits",
            ));
        }
        Ok(Self {
            small_percent,
            ghost_percent,
            move_to_main,
        })
    }

    /// The small FIFO's share of the frames, in percent.
    pub fn small_percent(&self) -> u8 {
        self.small_percent
    }

    /// The ghost's size, in percent of the frames.
    pub fn ghost_percent(&self) -> u16 {
        self.ghost_percent
    }

    /// Hits in the small FIFO that move a page to main.
    pub fn move_to_main(&self) -> u8 {
        self.move_to_main
    }
}

/// S3-FIFO's state beside the queue, under the lists lock.
pub(super) struct S3State {
    /// Frames the small segment holds before a pick takes from it (at least 1).
    small_target: usize,
    /// Frames the main segment holds before a pick takes from it.
    main_target: usize,
    threshold: u64,
    ghost: Ghost,
    /// Whether a pick has evicted a page yet (before that, new pages that find the small
    /// segment full go to main).
    evicted: bool,
}

impl S3State {
    /// The state for a pool of `frames` frames, or `None` if the memory for the ghost cannot be
    /// had.
    pub(super) fn try_new(p: S3Fifo, frames: u32) -> Option<Self> {
        let frames = frames as usize;
        let small_target = (frames * p.small_percent as usize / 100).max(1);
        Some(Self {
            small_target,
            main_target: frames.saturating_sub(small_target),
            threshold: p.move_to_main as u64,
            ghost: Ghost::try_new(frames * p.ghost_percent as usize / 100)?,
            evicted: false,
        })
    }

    #[cfg(test)]
    fn new(p: S3Fifo, frames: u32) -> Self {
        Self::try_new(p, frames).expect("memory for a test ghost")
    }
}

/// The ghost FIFO: the fingerprints of the last `cap` pages evicted from the small segment.
struct Ghost {
    ring: VecDeque<u32>,
    cap: usize,
    /// How many times each fingerprint is in `ring` (an id forgotten by a fault is removed here
    /// at once and its ring entries left to age out).
    counts: FxHashMap<u32, u32>,
}

impl Ghost {
    fn try_new(cap: usize) -> Option<Self> {
        let mut counts = FxHashMap::default();
        counts.try_reserve(cap).ok()?;
        let mut ring = VecDeque::new();
        ring.try_reserve_exact(cap).ok()?;
        Some(Self { ring, cap, counts })
    }

    #[cfg(test)]
    fn new(cap: usize) -> Self {
        Self::try_new(cap).expect("memory for a test ghost")
    }

    fn remember(&mut self, id: u32) {
        if self.cap == 0 {
            return;
        }
        if self.ring.len() == self.cap {
            if let Some(old) = self.ring.pop_front() {
                if let std::collections::hash_map::Entry::Occupied(mut e) = self.counts.entry(old) {
                    if *e.get() <= 1 {
                        e.remove();
                    } else {
                        *e.get_mut() -= 1;
                    }
                }
            }
        }
        self.ring.push_back(id);
        *self.counts.entry(id).or_insert(0) += 1;
    }

    /// Whether `id` is remembered; forgets it.
    fn forget(&mut self, id: u32) -> bool {
        self.counts.remove(&id).is_some()
    }
}

/// A page's id in the ghost: 32 bits of a hash of its object's id and its index.
fn fingerprint(o: &Owner) -> u32 {
    let h = (o.mapper.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ o.page)
        .wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (h >> 32) as u32
}

impl PagesShared {
    /// Under the lists lock: links frame `f`, just made `Resident` with its owner set, where the
    /// policy puts a new page: S3-FIFO's main segment if the ghost remembers the page (or, before
    /// the first eviction, if the small segment is full), else the small segment.
    pub(super) fn link_new(&self, l: &mut Lists, f: u32) {
        let seg = match l.s3.as_mut() {
            None => Segment::Small,
            Some(s3) => {
                // SAFETY: the caller holds the lists lock and has just made `f` Resident under it.
                let id = unsafe { self.with_owner(f, |o| o.map(fingerprint)) };
                if id.is_some_and(|id| s3.ghost.forget(id))
                    || (!s3.evicted && l.queue.len_of(Segment::Small) >= s3.small_target)
                {
                    Segment::Main
                } else {
                    Segment::Small
                }
            }
        };
        l.queue.push_back_to(f, seg);
    }

    /// Under the lists lock: links frame `f`, `Resident` again after a failed eviction (T10), at
    /// the tail: of S3-FIFO's main segment (the page was kept), else of the only one.
    pub(super) fn link_again(&self, l: &mut Lists, f: u32) {
        let seg = if l.s3.is_some() {
            Segment::Main
        } else {
            Segment::Small
        };
        l.queue.push_back_to(f, seg);
    }

    /// S3-FIFO's pick (see the module doc): a victim taken (`Reclaiming`) from the segment the
    /// policy evicts from, else from the other; `None` if every page is pinned.
    pub(super) fn pick_s3fifo(
        &self,
        l: &mut Lists,
        mark: bool,
        later: &mut Deferred,
    ) -> Option<(u32, EntryWord)> {
        let (main_target, threshold) = match &l.s3 {
            Some(s3) => (s3.main_target, s3.threshold),
            None => return None,
        };
        let main_first =
            l.queue.len_of(Segment::Main) > main_target || l.queue.len_of(Segment::Small) == 0;
        let order = if main_first {
            [Segment::Main, Segment::Small]
        } else {
            [Segment::Small, Segment::Main]
        };
        for seg in order {
            let found = match seg {
                Segment::Small => self.evict_small(l, threshold, mark, later),
                Segment::Main => self.evict_main(l, mark, later),
            };
            if let Some((f, w)) = found {
                if let Some(s3) = l.s3.as_mut() {
                    s3.evicted = true;
                }
                self.set_tag(f, Tag::Reclaiming);
                return Some((f, w));
            }
        }
        None
    }

    /// From the small segment's head: moves pages hit `threshold` times to main, rotates pinned
    /// ones, takes the first other one and remembers it in the ghost. Looks at each page once.
    fn evict_small(
        &self,
        l: &mut Lists,
        threshold: u64,
        mark: bool,
        later: &mut Deferred,
    ) -> Option<(u32, EntryWord)> {
        for _ in 0..l.queue.len_of(Segment::Small) {
            let f = l.queue.pop_front_of(Segment::Small)?;
            if self.frequency(l, f) >= threshold {
                self.lower_frequency(l, f, EntryWord::FREQ.max());
                l.queue.push_back_to(f, Segment::Main);
                continue;
            }
            if let Some(w) = self.take_victim(l, f, mark, later) {
                // SAFETY: lists lock held; `f` was Resident under it (taken just now, its tag
                // not yet changed).
                let id = unsafe { self.with_owner(f, |o| o.map(fingerprint)) };
                if let (Some(id), Some(s3)) = (id, l.s3.as_mut()) {
                    s3.ghost.remember(id);
                }
                return Some((f, w));
            }
            l.queue.push_back_to(f, Segment::Small);
        }
        None
    }

    /// From the main segment's head: a page with a count above 0 has it lowered by one and goes
    /// to the tail, a pinned one goes to the tail, the first other one is taken. Looks at each
    /// page at most four times (three looks bring any count to 0).
    fn evict_main(
        &self,
        l: &mut Lists,
        mark: bool,
        later: &mut Deferred,
    ) -> Option<(u32, EntryWord)> {
        let looks = (EntryWord::FREQ.max() as usize + 1) * l.queue.len_of(Segment::Main);
        for _ in 0..looks {
            let f = l.queue.pop_front_of(Segment::Main)?;
            if self.frequency(l, f) > 0 {
                self.lower_frequency(l, f, 1);
                l.queue.push_back_to(f, Segment::Main);
                continue;
            }
            if let Some(w) = self.take_victim(l, f, mark, later) {
                return Some((f, w));
            }
            l.queue.push_back_to(f, Segment::Main);
        }
        None
    }

    /// Under the lists lock, for a queued (`Resident`) frame: its page's hit count, the largest
    /// of its owner's entry and its proxies'.
    fn frequency(&self, l: &mut Lists, f: u32) -> u64 {
        let freq = |slot: &AtomicU64| {
            // Relaxed: the count is a hint for the policy and orders nothing.
            let e = EntryWord(slot.load(Ordering::Relaxed));
            if e.frame() == Some(f) {
                e.freq()
            } else {
                0
            }
        };
        // SAFETY: lists lock held and `f` queued, hence Resident (I1).
        let mut most = unsafe { self.with_owner(f, |o| o.and_then(Owner::slot).map_or(0, freq)) };
        self.with_proxies(l, f, |p| {
            for o in p.iter() {
                most = most.max(o.slot().map_or(0, freq));
            }
        });
        most
    }

    /// Under the lists lock, for a queued (`Resident`) frame: lowers the hit count of its
    /// owner's entry and of every proxy's by `by` (to no less than 0). A hit's CAS racing it
    /// either lands first (and is lowered) or after (and counts).
    fn lower_frequency(&self, l: &mut Lists, f: u32, by: u64) {
        let lower = |slot: &AtomicU64| {
            // Relaxed: as in `frequency`; the CAS only keeps concurrent pins and unpins intact.
            let mut cur = EntryWord(slot.load(Ordering::Relaxed));
            while cur.frame() == Some(f) && cur.freq() > 0 {
                let new = cur.with_freq(cur.freq().saturating_sub(by));
                match slot.compare_exchange_weak(cur.0, new.0, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(c) => cur = EntryWord(c),
                }
            }
        };
        // SAFETY: lists lock held and `f` queued, hence Resident (I1).
        unsafe { self.with_owner(f, |o| o.and_then(Owner::slot).map(lower)) };
        self.with_proxies(l, f, |p| {
            for o in p.iter() {
                if let Some(s) = o.slot() {
                    lower(s);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_out_of_range_are_refused() {
        assert_eq!(S3Fifo::new(10, 90, 2).ok(), Some(S3Fifo::default()));
        for (small, ghost, t) in [
            (0, 90, 2),
            (91, 90, 2),
            (10, 1001, 2),
            (10, 90, 0),
            (10, 90, 4),
        ] {
            assert!(
                matches!(S3Fifo::new(small, ghost, t), Err(Error::InvalidPolicy(_))),
                "accepted {small}% small, {ghost}% ghost, threshold {t}"
            );
        }
        let p = S3Fifo::new(1, 0, 3).unwrap();
        assert_eq!(
            (p.small_percent(), p.ghost_percent(), p.move_to_main()),
            (1, 0, 3)
        );
    }

    #[test]
    fn targets_split_the_frames() {
        let s = S3State::new(S3Fifo::default(), 100);
        assert_eq!((s.small_target, s.main_target, s.ghost.cap), (10, 90, 90));
        // A tiny pool still has a small segment of one frame.
        let s = S3State::new(S3Fifo::default(), 3);
        assert_eq!((s.small_target, s.main_target, s.ghost.cap), (1, 2, 2));
        let s = S3State::new(S3Fifo::new(50, 1000, 1).unwrap(), 1);
        assert_eq!((s.small_target, s.main_target, s.ghost.cap), (1, 0, 10));
    }

    /// The ghost remembers the last `cap` ids, forgets an id on a hit, and never holds more
    /// than `cap` ring entries or counts.
    #[test]
    fn the_ghost_is_a_bounded_fifo_of_ids() {
        let mut g = Ghost::new(3);
        for id in [1, 2, 3, 4] {
            g.remember(id);
        }
        assert!(!g.forget(1), "the oldest id outlived the ghost's size");
        assert!(g.forget(3));
        assert!(!g.forget(3), "a hit did not forget the id");
        g.remember(2);
        g.remember(5);
        assert!(g.ring.len() <= 3 && g.counts.len() <= 3);
        assert!(g.forget(2) && g.forget(5));
        let mut none = Ghost::new(0);
        none.remember(7);
        assert!(!none.forget(7));
        // Many ids through a small ghost: bounded, and the last ones remembered.
        let mut g = Ghost::new(16);
        for id in 0..10_000 {
            g.remember(id % 97);
        }
        assert!(g.ring.len() == 16 && g.counts.values().map(|&c| c as usize).sum::<usize>() == 16);
    }
}
