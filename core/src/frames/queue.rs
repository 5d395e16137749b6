//! PageQueue: the lending queue of issued pages, in order of issue, the eviction policy that picks
//! victims from it, and the free list.
//!
//! Both live under one mutex (the *lists lock*) in [`crate::frames`]. The queue is an intrusive
//! doubly linked list over frame indices, oldest at the head, so a frame can be unlinked in O(1)
//! (by `close`, or by SIEVE taking a victim from the middle), and the memory it needs is fixed
//! (12 bytes per frame) whatever the traffic. It holds two such lists over the same links, the
//! *small* and the *main* segment: FIFO, CLOCK and SIEVE use only the small one; S3-FIFO both.
//!
//! # Policies ([`Policy`])
//!
//! Every page enters at the tail when it is issued (filled). Hits never touch the queue: they
//! raise the 2-bit `FREQ` count of the page's entry (saturating at 3) in the CAS that pins it (no
//! lock, no extra store).
//!
//! * **FIFO** (the departure design): the victim is the oldest unpinned page; pinned pages rotate
//!   to the tail.
//! * **CLOCK** (second chance): as FIFO, but a page hit since it was last looked at has its
//!   count cleared and rotates to the tail instead of being evicted.
//! * **SIEVE** (Zhang et al., NSDI '24): a *hand* moves from the oldest page toward newer ones,
//!   wrapping around; a hit page has its count cleared and stays where it is, the first
//!   unreferenced unpinned page is evicted (unlinked in place), and the hand moves past it. New
//!   pages that are not hit again leave quickly; pages that are stay, without ever being moved.
//! * **S3-FIFO** (Yang et al., SOSP '23; the `s3fifo` module): a small FIFO (10% of the frames)
//!   that new pages enter, a main FIFO, and a *ghost* FIFO remembering the ids of pages recently
//!   evicted from the small one. A page leaving the head of the small FIFO moves to main if it
//!   was hit at least twice there, else it is evicted and remembered in the ghost; a page the
//!   ghost remembers enters main directly when it is faulted again. Main is a CLOCK with the
//!   2-bit count: a page at its head with a count above 0 has it lowered by one and goes to the
//!   tail. The victim comes from main when main is over its share or small is empty.
//!
//! There is no plain **LRU**: it moves a page to the newest end on every hit, a write to the
//! shared list (under the lists lock, or a lock-free list's several CASes) on the path that is
//! now one CAS on the page's own entry, and every hitting thread would contend on that list's
//! ends. CLOCK is LRU's lock-free approximation, and SIEVE and S3-FIFO miss less than LRU on the
//! traces their authors measured.
//!
//! A search is bounded: CLOCK and SIEVE look at each queued frame at most twice (one pass clears
//! every count); S3-FIFO looks at each small page once and each main page at most four times.
//!
//! Invariant (I1, checked by `Pages::census`): under the lists lock, the frames linked
//! in the queue (either segment) are exactly the `Resident` frames, and the free list holds
//! exactly the `Free` ones.

const NIL: u32 = u32::MAX;

pub use super::s3fifo::S3Fifo;

/// How the pool picks the page to reclaim when it has no free frame (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// First in, first out, in order of issue (the departure design).
    #[default]
    Fifo,
    /// FIFO with a second chance for pages hit since they were last looked at.
    Clock,
    /// SIEVE: a hand sweeps from the oldest page; hit pages keep their place.
    Sieve,
    /// S3-FIFO: a small FIFO for new pages, a main FIFO for pages hit again, and a ghost FIFO
    /// of recently evicted ids; its parameters ([`S3Fifo::default`]: its authors' simulator's)
    /// size the three.
    ///
    /// ```
    /// use pagecore::{Pages, Policy, S3Fifo};
    /// let pages = Pages::builder().frames(100).policy(Policy::S3Fifo(S3Fifo::default())).build()?;
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    S3Fifo(S3Fifo),
}

/// One of the queue's two lists (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// The only list of FIFO, CLOCK and SIEVE; S3-FIFO's small FIFO.
    Small = 0,
    /// S3-FIFO's main FIFO.
    Main = 1,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    /// 0: not linked; 1 + the segment it is linked in.
    list: u8,
}

/// One list's ends.
#[derive(Clone, Copy, Debug)]
struct Ends {
    head: u32,
    tail: u32,
    len: usize,
}

const NO_ENDS: Ends = Ends {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Two FIFOs of frame indices over one link array, with O(1) push, pop and unlink.
#[derive(Debug)]
pub struct PageQueue {
    links: Box<[Link]>,
    ends: [Ends; 2],
    /// SIEVE's hand in the small segment: the next frame to look at (`NIL`: start again from
    /// the head).
    hand: u32,
}

impl PageQueue {
    /// An empty queue for frames `0..frames`.
    #[cfg(test)]
    pub fn new(frames: u32) -> Self {
        Self::try_new(frames).expect("memory for a test queue")
    }

    /// An empty queue for frames `0..frames`, or `None` if the memory for its links cannot be
    /// had.
    pub fn try_new(frames: u32) -> Option<Self> {
        let mut links = Vec::new();
        links.try_reserve_exact(frames as usize).ok()?;
        links.resize(
            frames as usize,
            Link {
                prev: NIL,
                next: NIL,
                list: 0,
            },
        );
        Some(Self {
            links: links.into_boxed_slice(),
            ends: [NO_ENDS; 2],
            hand: NIL,
        })
    }

    /// SIEVE's hand: the frame it points at, or the small segment's head if it ran off the newer
    /// end.
    pub fn hand(&self) -> Option<u32> {
        match (self.hand, self.ends[0].head) {
            (NIL, NIL) => None,
            (NIL, h) => Some(h),
            (f, _) => Some(f),
        }
    }

    /// Moves the hand past `frame` (to the next newer frame; off the end means: back to the head).
    pub fn advance_hand(&mut self, frame: u32) {
        self.hand = self.links[frame as usize].next;
    }

    /// Number of linked frames, both segments.
    pub fn len(&self) -> usize {
        self.ends[0].len + self.ends[1].len
    }

    /// Number of frames linked in `seg`.
    pub fn len_of(&self, seg: Segment) -> usize {
        self.ends[seg as usize].len
    }

    /// Whether no frame is linked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `frame` is linked (in either segment).
    pub fn contains(&self, frame: u32) -> bool {
        self.links[frame as usize].list != 0
    }

    /// The segment `frame` is linked in.
    #[cfg(test)]
    pub fn segment(&self, frame: u32) -> Option<Segment> {
        match self.links[frame as usize].list {
            1 => Some(Segment::Small),
            2 => Some(Segment::Main),
            _ => None,
        }
    }

    /// Appends `frame` at the small segment's tail. Returns `false` (and does nothing) if it was
    /// already linked.
    pub fn push_back(&mut self, frame: u32) -> bool {
        self.push_back_to(frame, Segment::Small)
    }

    /// Appends `frame` at `seg`'s tail. Returns `false` (and does nothing) if it was already
    /// linked (in either segment).
    pub fn push_back_to(&mut self, frame: u32, seg: Segment) -> bool {
        let i = frame as usize;
        if self.links[i].list != 0 {
            return false;
        }
        let e = &mut self.ends[seg as usize];
        self.links[i] = Link {
            prev: e.tail,
            next: NIL,
            list: seg as u8 + 1,
        };
        let old_tail = e.tail;
        if old_tail == NIL {
            e.head = frame;
        }
        e.tail = frame;
        e.len += 1;
        if old_tail != NIL {
            self.links[old_tail as usize].next = frame;
        }
        true
    }

    /// Removes and returns the small segment's head.
    pub fn pop_front(&mut self) -> Option<u32> {
        self.pop_front_of(Segment::Small)
    }

    /// Removes and returns `seg`'s head.
    pub fn pop_front_of(&mut self, seg: Segment) -> Option<u32> {
        let f = self.ends[seg as usize].head;
        if f == NIL {
            return None;
        }
        self.remove(f);
        Some(f)
    }

    /// Unlinks `frame` wherever it is. Returns `false` if it was not linked.
    pub fn remove(&mut self, frame: u32) -> bool {
        let i = frame as usize;
        let Link { prev, next, list } = self.links[i];
        if list == 0 {
            return false;
        }
        if self.hand == frame {
            self.hand = next;
        }
        let e = &mut self.ends[list as usize - 1];
        if prev == NIL {
            e.head = next;
        }
        if next == NIL {
            e.tail = prev;
        }
        e.len -= 1;
        if prev != NIL {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[i] = Link {
            prev: NIL,
            next: NIL,
            list: 0,
        };
        true
    }

    /// Checks the lists' own invariants: the links agree both ways, each frame is marked with the
    /// segment it is walked in, the lengths count the linked frames, and the hand points at a
    /// frame linked in the small segment (or nowhere). Part of the census (I1).
    pub fn check(&self) -> Result<(), String> {
        let mut total = 0;
        for (s, e) in self.ends.iter().enumerate() {
            let mut n = 0;
            let mut prev = NIL;
            let mut cur = e.head;
            while cur != NIL {
                let l = self
                    .links
                    .get(cur as usize)
                    .ok_or("queue link out of range")?;
                if l.list as usize != s + 1 || l.prev != prev || n > self.links.len() {
                    return Err(format!("queue broken at frame {cur}"));
                }
                n += 1;
                prev = cur;
                cur = l.next;
            }
            if prev != e.tail || n != e.len {
                return Err(format!(
                    "queue segment {s} of {} frames walks {n}, tail {}",
                    e.len, e.tail
                ));
            }
            total += n;
        }
        let marked = self.links.iter().filter(|l| l.list != 0).count();
        if marked != total {
            return Err(format!(
                "{marked} frames are marked linked, {total} are in the lists"
            ));
        }
        if self.hand != NIL
            && self
                .links
                .get(self.hand as usize)
                .is_none_or(|l| l.list != 1)
        {
            return Err(format!(
                "the policy's hand points at unlinked frame {}",
                self.hand
            ));
        }
        Ok(())
    }

    /// Frames from head to tail, the small segment first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut seg = 0;
        let mut cur = self.ends[0].head;
        std::iter::from_fn(move || loop {
            if cur != NIL {
                let f = cur;
                cur = self.links[f as usize].next;
                return Some(f);
            }
            if seg == 1 {
                return None;
            }
            seg = 1;
            cur = self.ends[1].head;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    proptest! {
        // Miri runs these a few hundred times slower: a handful of cases there (ci/miri.sh).
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 }))]
        /// The intrusive queue behaves like two VecDeques with unique elements between them.
        #[test]
        fn matches_two_vecdeques(ops in prop::collection::vec((0u8..6, 0u32..8), 0..200)) {
            let mut q = PageQueue::new(8);
            let mut m: [VecDeque<u32>; 2] = Default::default();
            let seg = |f: u32| if f % 3 == 0 { Segment::Main } else { Segment::Small };
            for (op, f) in ops {
                match op {
                    0 | 4 => {
                        let to = if op == 0 { Segment::Small } else { seg(f) };
                        let fresh = !m[0].contains(&f) && !m[1].contains(&f);
                        prop_assert_eq!(q.push_back_to(f, to), fresh);
                        if fresh { m[to as usize].push_back(f); }
                    }
                    1 => prop_assert_eq!(q.pop_front(), m[0].pop_front()),
                    5 => prop_assert_eq!(q.pop_front_of(Segment::Main), m[1].pop_front()),
                    2 if f % 2 == 0 => {
                        if let Some(h) = q.hand() {
                            q.advance_hand(h);
                        }
                    }
                    _ => {
                        let mut found = false;
                        for l in m.iter_mut() {
                            if let Some(p) = l.iter().position(|&x| x == f) {
                                l.remove(p);
                                found = true;
                            }
                        }
                        prop_assert_eq!(q.remove(f), found);
                    }
                }
                prop_assert_eq!(q.len(), m[0].len() + m[1].len());
                prop_assert_eq!(q.len_of(Segment::Small), m[0].len());
                prop_assert_eq!(q.len_of(Segment::Main), m[1].len());
                prop_assert_eq!(q.is_empty(), m[0].is_empty() && m[1].is_empty());
                let both: Vec<u32> = m[0].iter().chain(m[1].iter()).copied().collect();
                prop_assert_eq!(q.iter().collect::<Vec<_>>(), both);
                for f in 0..8 {
                    let want = if m[0].contains(&f) {
                        Some(Segment::Small)
                    } else if m[1].contains(&f) {
                        Some(Segment::Main)
                    } else {
                        None
                    };
                    prop_assert_eq!(q.segment(f), want);
                    prop_assert_eq!(q.contains(f), want.is_some());
                }
                prop_assert_eq!(q.check(), Ok(()));
                // The hand always points at a frame of the small segment (or, off the end, its
                // head).
                prop_assert_eq!(q.hand().is_some(), !m[0].is_empty());
                if let Some(h) = q.hand() {
                    prop_assert!(m[0].contains(&h));
                }
            }
        }
    }

    /// `check` (part of the census) finds every kind of broken list: a census that passes
    /// everything would hide the bugs it exists to report. (Mutation testing: a `check` that
    /// accepted anything survived every other test.)
    #[test]
    fn check_finds_every_broken_link() {
        let good = || {
            let mut q = PageQueue::new(8);
            for f in [3, 1, 6, 4] {
                q.push_back(f);
            }
            q.push_back_to(5, Segment::Main);
            q.push_back_to(0, Segment::Main);
            q
        };
        assert_eq!(good().check(), Ok(()));
        type Break = fn(&mut PageQueue);
        let breaks: [(&str, Break); 12] = [
            ("a frame in the chain not marked linked", |q| {
                q.links[1].list = 0
            }),
            ("a frame marked in the other segment", |q| {
                q.links[1].list = 2
            }),
            ("a main frame marked small", |q| q.links[0].list = 1),
            ("a frame marked linked but in no list", |q| {
                q.links[2].list = 1
            }),
            ("a wrong back link", |q| q.links[6].prev = 3),
            ("a back link on the head", |q| q.links[3].prev = 4),
            ("a link out of range", |q| q.links[1].next = 99),
            ("a length that disagrees", |q| q.ends[0].len = 3),
            ("a main length that disagrees", |q| q.ends[1].len = 1),
            ("a tail that is not the last frame", |q| q.ends[0].tail = 6),
            ("a list cut short", |q| q.links[6].next = NIL),
            ("a hand at a frame outside the small segment", |q| {
                q.hand = 5
            }),
        ];
        for (what, broke) in breaks {
            let mut q = good();
            broke(&mut q);
            assert!(q.check().is_err(), "check accepted {what}");
        }
        let mut q = good();
        q.hand = 2;
        assert!(
            q.check().is_err(),
            "check accepted a hand at an unlinked frame"
        );
    }
}
