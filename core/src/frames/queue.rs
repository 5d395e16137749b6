//! PageQueue: the lending queue of issued pages, in order of issue, the eviction policy that picks
//! victims from it, and the free list.
//!
//! Both live under one mutex (the *lists lock*) in [`crate::frames`]. The queue is an intrusive
//! doubly linked list over frame indices, oldest at the head, so a frame can be unlinked in O(1)
//! (by `close`, or by SIEVE taking a victim from the middle), and the memory it needs is fixed
//! (12 bytes per frame) whatever the traffic.
//!
//! # Policies ([`Policy`])
//!
//! Every page enters at the tail when it is issued (filled). Hits never touch the queue: they set
//! the `REFERENCED` bit of the page's entry in the CAS that pins it (no lock, no extra store).
//!
//! * **FIFO** (the departure design): the victim is the oldest unpinned page; pinned pages rotate
//!   to the tail.
//! * **CLOCK** (second chance): as FIFO, but a page referenced since it was last looked at has its
//!   bit cleared and rotates to the tail instead of being evicted.
//! * **SIEVE** (Zhang et al., NSDI '24): a *hand* moves from the oldest page toward newer ones,
//!   wrapping around; a referenced page has its bit cleared and stays where it is, the first
//!   unreferenced unpinned page is evicted (unlinked in place), and the hand moves past it. New
//!   pages that are not hit again leave quickly; pages that are stay, without ever being moved.
//!
//! A search visits each queued frame at most twice (one pass clears every bit), so it is bounded.
//!
//! Invariant (I1, checked by `Pages::census`): under the lists lock, the frames linked
//! in the queue are exactly the `Resident` frames, and the free list holds exactly the `Free` ones.

const NIL: u32 = u32::MAX;

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
}

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    linked: bool,
}

/// FIFO of frame indices with O(1) push, pop and unlink.
#[derive(Debug)]
pub struct PageQueue {
    links: Box<[Link]>,
    head: u32,
    tail: u32,
    len: usize,
    /// SIEVE's hand: the next frame to look at (`NIL`: start again from the head).
    hand: u32,
}

impl PageQueue {
    /// An empty queue for frames `0..frames`.
    pub fn new(frames: u32) -> Self {
        Self {
            links: vec![
                Link {
                    prev: NIL,
                    next: NIL,
                    linked: false
                };
                frames as usize
            ]
            .into_boxed_slice(),
            head: NIL,
            tail: NIL,
            len: 0,
            hand: NIL,
        }
    }

    /// SIEVE's hand: the frame it points at, or the head if it ran off the newer end.
    pub fn hand(&self) -> Option<u32> {
        match (self.hand, self.head) {
            (NIL, NIL) => None,
            (NIL, h) => Some(h),
            (f, _) => Some(f),
        }
    }

    /// Moves the hand past `frame` (to the next newer frame; off the end means: back to the head).
    pub fn advance_hand(&mut self, frame: u32) {
        self.hand = self.links[frame as usize].next;
    }

    /// Number of linked frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is linked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `frame` is linked.
    pub fn contains(&self, frame: u32) -> bool {
        self.links[frame as usize].linked
    }

    /// Appends `frame` at the tail. Returns `false` (and does nothing) if it was already linked.
    pub fn push_back(&mut self, frame: u32) -> bool {
        let i = frame as usize;
        if self.links[i].linked {
            return false;
        }
        self.links[i] = Link {
            prev: self.tail,
            next: NIL,
            linked: true,
        };
        if self.tail == NIL {
            self.head = frame;
        } else {
            self.links[self.tail as usize].next = frame;
        }
        self.tail = frame;
        self.len += 1;
        true
    }

    /// Removes and returns the head.
    pub fn pop_front(&mut self) -> Option<u32> {
        let f = self.head;
        if f == NIL {
            return None;
        }
        self.remove(f);
        Some(f)
    }

    /// Unlinks `frame` wherever it is. Returns `false` if it was not linked.
    pub fn remove(&mut self, frame: u32) -> bool {
        let i = frame as usize;
        let Link { prev, next, linked } = self.links[i];
        if !linked {
            return false;
        }
        if self.hand == frame {
            self.hand = next;
        }
        if prev == NIL {
            self.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        self.links[i] = Link {
            prev: NIL,
            next: NIL,
            linked: false,
        };
        self.len -= 1;
        true
    }

    /// Checks the list's own invariants: the links agree both ways, `len` counts the linked
    /// frames, and the hand points at a linked frame (or nowhere). Part of the census (I1).
    pub fn check(&self) -> Result<(), String> {
        let mut n = 0;
        let mut prev = NIL;
        let mut cur = self.head;
        while cur != NIL {
            let l = self
                .links
                .get(cur as usize)
                .ok_or("queue link out of range")?;
            if !l.linked || l.prev != prev || n > self.links.len() {
                return Err(format!("queue broken at frame {cur}"));
            }
            n += 1;
            prev = cur;
            cur = l.next;
        }
        if prev != self.tail || n != self.len {
            return Err(format!(
                "queue of {} frames walks {n}, tail {}",
                self.len, self.tail
            ));
        }
        if self.hand != NIL && !self.links.get(self.hand as usize).is_some_and(|l| l.linked) {
            return Err(format!(
                "the policy's hand points at unlinked frame {}",
                self.hand
            ));
        }
        Ok(())
    }

    /// Frames from head to tail.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let f = cur;
            cur = self.links[f as usize].next;
            Some(f)
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
        /// The intrusive queue behaves like a VecDeque with unique elements.
        #[test]
        fn matches_vecdeque(ops in prop::collection::vec((0u8..4, 0u32..8), 0..200)) {
            let mut q = PageQueue::new(8);
            let mut m: VecDeque<u32> = VecDeque::new();
            for (op, f) in ops {
                match op {
                    0 => {
                        let fresh = !m.contains(&f);
                        prop_assert_eq!(q.push_back(f), fresh);
                        if fresh { m.push_back(f); }
                    }
                    1 => prop_assert_eq!(q.pop_front(), m.pop_front()),
                    2 if f % 2 == 0 => {
                        if let Some(h) = q.hand() {
                            q.advance_hand(h);
                        }
                    }
                    _ => {
                        let pos = m.iter().position(|&x| x == f);
                        prop_assert_eq!(q.remove(f), pos.is_some());
                        if let Some(p) = pos { m.remove(p); }
                    }
                }
                prop_assert_eq!(q.len(), m.len());
                prop_assert_eq!(q.is_empty(), m.is_empty());
                prop_assert_eq!(q.iter().collect::<Vec<_>>(), m.iter().copied().collect::<Vec<_>>());
                // The hand always points at a linked frame (or, off the end, the head).
                prop_assert_eq!(q.hand().is_some(), !m.is_empty());
                if let Some(h) = q.hand() {
                    prop_assert!(m.contains(&h));
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
            q
        };
        assert_eq!(good().check(), Ok(()));
        type Break = fn(&mut PageQueue);
        let breaks: [(&str, Break); 8] = [
            ("a frame in the chain not marked linked", |q| {
                q.links[1].linked = false
            }),
            ("a wrong back link", |q| q.links[6].prev = 3),
            ("a back link on the head", |q| q.links[3].prev = 4),
            ("a link out of range", |q| q.links[1].next = 99),
            ("a length that disagrees", |q| q.len = 3),
            ("a tail that is not the last frame", |q| q.tail = 6),
            ("a list cut short", |q| q.links[6].next = NIL),
            ("a hand at an unlinked frame", |q| q.hand = 2),
        ];
        for (what, broke) in breaks {
            let mut q = good();
            broke(&mut q);
            assert!(q.check().is_err(), "check accepted {what}");
        }
    }
}
