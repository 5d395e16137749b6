//! PageQueue: the lending queue of issued pages, in FIFO order of issue, and the free list.
//!
//! Both live under one mutex (the *lists lock*) in [`crate::pages`]. The queue is an intrusive
//! doubly linked list over frame indices, so a frame can be unlinked in O(1) by `close`, and the
//! memory it needs is fixed (8 bytes per frame) whatever the traffic.
//!
//! Invariant (I1, checked by `Pages::check_invariants`): under the lists lock, the frames linked
//! in the queue are exactly the `Resident` frames, and the free list holds exactly the `Free` ones.

const NIL: u32 = u32::MAX;

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
        }
    }

    /// Number of linked frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is linked.
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
        /// The intrusive queue behaves like a VecDeque with unique elements.
        #[test]
        fn matches_vecdeque(ops in prop::collection::vec((0u8..3, 0u32..8), 0..200)) {
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
                    _ => {
                        let pos = m.iter().position(|&x| x == f);
                        prop_assert_eq!(q.remove(f), pos.is_some());
                        if let Some(p) = pos { m.remove(p); }
                    }
                }
                prop_assert_eq!(q.len(), m.len());
                prop_assert_eq!(q.iter().collect::<Vec<_>>(), m.iter().copied().collect::<Vec<_>>());
            }
        }
    }
}
