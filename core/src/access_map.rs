//! AccessMap: per memory object, page index -> entry word (frame and pin state).
//!
//! Each entry is the page's whole hit-path state ([`EntryWord`]: frame, pins, writer, dirty,
//! reclaiming), so a hit reads one state word. A two-level radix table of entries: a top array sized for the object's limit, and
//! leaves of `LEAF` entries allocated on first use (so a huge, sparsely used object costs little)
//! and freed with the map. Lookups take no lock: an `Acquire` load of the leaf pointer and a load
//! of the entry.
//!
//! Finding an entry is *tentative*: the frame may be reclaimed concurrently until a CAS on the
//! entry pins it (`PagesShared::try_pin_read`). Who writes an entry:
//! * the filler that owns the page's in-flight fill record publishes `EMPTY -> resident(frame)`;
//! * pinners add and drop pins and the writer bit; waiters set wait bits;
//! * a reclaimer (or `close`) sets `RECLAIMING` on an unpinned entry, and later clears it to
//!   `EMPTY` (written back) or back to resident (write-back failed).
//!
//! ## Orderings
//! * Leaf pointer: installed with a `Release` CAS (`AcqRel` on success, `Acquire` on failure) and
//!   read with `Acquire`, pairing so the zeroed leaf is visible before its address.
//! * Entries: see `pages.rs` (each RMW site states what it pairs with).

use crate::pack::EntryWord;
use crate::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::ptr;

#[cfg(pagecore_loom)]
const LEAF_SHIFT: u32 = 1;
#[cfg(not(pagecore_loom))]
const LEAF_SHIFT: u32 = 9;
/// Entries per leaf.
const LEAF: usize = 1 << LEAF_SHIFT;

struct Leaf {
    entries: [AtomicU64; LEAF],
}

impl Leaf {
    fn boxed() -> Box<Leaf> {
        Box::new(Leaf {
            entries: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }
}

/// The per-object page table.
pub struct AccessMap {
    top: Box<[AtomicPtr<Leaf>]>,
    pages: u64,
}

impl std::fmt::Debug for AccessMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessMap")
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

impl AccessMap {
    /// A map for page indices `0..pages`.
    pub fn new(pages: u64) -> Self {
        let leaves = pages.div_ceil(LEAF as u64) as usize;
        Self {
            top: (0..leaves)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            pages,
        }
    }

    /// Number of page indices the map covers.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    #[inline(always)]
    fn split(page: u64) -> (usize, usize) {
        ((page >> LEAF_SHIFT) as usize, (page as usize) & (LEAF - 1))
    }

    #[inline(always)]
    fn leaf(&self, i: usize) -> Option<&Leaf> {
        let p = self.top.get(i)?.load(Ordering::Acquire);
        // SAFETY: a non-null leaf pointer was produced by `Box::into_raw` in `leaf_or_alloc` and is
        // freed only in `Drop`, which has `&mut self`; so it is valid for `&self`'s lifetime.
        unsafe { p.as_ref() }
    }

    fn leaf_or_alloc(&self, i: usize) -> Option<&Leaf> {
        if let Some(l) = self.leaf(i) {
            return Some(l);
        }
        let slot = self.top.get(i)?;
        let new = Box::into_raw(Leaf::boxed());
        match slot.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: we just installed `new`; it lives until `Drop` (see `leaf`).
            Ok(_) => Some(unsafe { &*new }),
            Err(cur) => {
                // SAFETY: `new` was never shared; we still own it.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: `cur` is a leaf installed by another thread (see `leaf`).
                Some(unsafe { &*cur })
            }
        }
    }

    /// The entry word of `page`, if its leaf exists (`None`: the page has never had a frame, or
    /// is out of range). The slot's address is stable for the map's lifetime.
    #[inline(always)]
    pub fn slot(&self, page: u64) -> Option<&AtomicU64> {
        let (i, j) = Self::split(page);
        self.leaf(i).map(|l| &l.entries[j])
    }

    /// The entry word of `page`, allocating its leaf if needed (`None` only out of range).
    pub fn slot_or_alloc(&self, page: u64) -> Option<&AtomicU64> {
        let (i, j) = Self::split(page);
        self.leaf_or_alloc(i).map(|l| &l.entries[j])
    }

    /// The entry for `page` (tentative; `EMPTY` if the page has no frame or is out of range).
    #[inline(always)]
    pub fn find(&self, page: u64) -> EntryWord {
        match self.slot(page) {
            Some(s) => EntryWord(s.load(Ordering::Acquire)),
            None => EntryWord::EMPTY,
        }
    }

    /// Every non-empty entry, as `(page, entry)`, in page order (a racy snapshot: entries may be
    /// added or removed while it runs; callers validate each one).
    pub fn entries(&self) -> impl Iterator<Item = (u64, EntryWord)> + '_ {
        (0..self.top.len()).flat_map(move |i| {
            let leaf = self.leaf(i);
            (0..LEAF).filter_map(move |j| {
                let e = EntryWord(leaf?.entries[j].load(Ordering::Acquire));
                e.frame()
                    .map(|_| (((i as u64) << LEAF_SHIFT) | j as u64, e))
            })
        })
    }
}

impl Drop for AccessMap {
    fn drop(&mut self) {
        for slot in self.top.iter() {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: installed by `Box::into_raw`; `&mut self` means no other reference.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_page_count_and_no_entries() {
        assert_eq!(
            format!("{:?}", AccessMap::new(5)),
            "AccessMap { pages: 5, .. }"
        );
    }

    #[test]
    fn entries_are_numbered_by_leaf_and_slot() {
        let map = AccessMap::new(3 * LEAF as u64);
        let word = EntryWord::resident(7, 0);
        for page in [0, 1, LEAF as u64 - 1, LEAF as u64, 2 * LEAF as u64 + 3] {
            map.slot_or_alloc(page)
                .unwrap()
                .store(word.raw(), Ordering::Relaxed);
        }
        let pages: Vec<u64> = map.entries().map(|(p, _)| p).collect();
        assert_eq!(
            pages,
            [0, 1, LEAF as u64 - 1, LEAF as u64, 2 * LEAF as u64 + 3]
        );
    }
}
