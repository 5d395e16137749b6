//! AccessMap: per memory object, page index -> entry word (frame and pin state).
//!
//! Each entry is the page's whole hit-path state ([`EntryWord`]: frame, pins, writer, dirty,
//! reclaiming), so a hit reads one state word. A radix table of entries: leaves of `LEAF` entries
//! allocated on first use, under a top array sized for the object's limit. The top array has at
//! most `TOP_MAX` slots: an object too large for that (up to 2^64 bytes) gets as many levels of
//! interior nodes (`NODE` pointers each, also allocated on first use) between the top and the
//! leaves as it needs, so a huge, sparsely used object costs little and opening one never
//! allocates in proportion to its limit. Objects of up to `TOP_MAX * LEAF` pages (64 GiB of 4 KiB
//! pages) have no interior level, and their lookup is the two loads it always was. Lookups take
//! no lock: an `Acquire` load of each pointer on the way down and a load of the entry.
//!
//! Finding an entry is *tentative*: the frame may be reclaimed concurrently until a CAS on the
//! entry pins it (`PagesShared::try_pin_read`). Who writes an entry:
//! * the filler that owns the page's in-flight fill record publishes `EMPTY -> resident(frame)`;
//! * pinners add and drop pins and the writer bit; waiters set wait bits;
//! * a reclaimer (or `close`) sets `RECLAIMING` on an unpinned entry, and later clears it to
//!   `EMPTY` (written back) or back to resident (write-back failed).
//!
//! ## Orderings
//! * Leaf and node pointers: installed with a `Release` CAS (`AcqRel` on success, `Acquire` on
//!   failure) and read with `Acquire`, pairing so the zeroed leaf or node is visible before its
//!   address.
//! * Entries: see `frames/` (each RMW site states what it pairs with).

use crate::pack::EntryWord;
use crate::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::ptr;

#[cfg(pagecore_loom)]
const LEAF_SHIFT: u32 = 1;
#[cfg(not(pagecore_loom))]
const LEAF_SHIFT: u32 = 9;
/// Entries per leaf.
const LEAF: usize = 1 << LEAF_SHIFT;
/// Pointers per interior node.
const NODE_SHIFT: u32 = 9;
const NODE: usize = 1 << NODE_SHIFT;
/// Most slots of the top array (256 KiB of pointers); larger objects get interior levels.
const TOP_MAX: u64 = 1 << 15;

struct Leaf {
    entries: [AtomicU64; LEAF],
}

/// An interior node: `NODE` pointers to the nodes of the level below, or to leaves.
struct Node {
    children: [AtomicPtr<()>; NODE],
}

/// A zeroed leaf or node, as the raw pointer the table stores.
fn alloc(leaf: bool) -> *mut () {
    if leaf {
        Box::into_raw(Box::new(Leaf {
            entries: std::array::from_fn(|_| AtomicU64::new(0)),
        }))
        .cast()
    } else {
        Box::into_raw(Box::new(Node {
            children: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }))
        .cast()
    }
}

/// Frees a leaf (`below == 0`) or a node with `below` levels of nodes under it, and all of them.
///
/// # Safety
/// `p` was made by `alloc(below == 0)` and nothing else refers to it or below it.
unsafe fn free(p: *mut (), below: u32) {
    if p.is_null() {
        return;
    }
    if below == 0 {
        // SAFETY: made by `alloc(true)` (the caller's contract).
        drop(unsafe { Box::from_raw(p.cast::<Leaf>()) });
        return;
    }
    // SAFETY: made by `alloc(false)` (the caller's contract).
    let node = unsafe { Box::from_raw(p.cast::<Node>()) };
    for c in &node.children {
        // SAFETY: each child is a node of the level below or a leaf, owned by this node alone.
        unsafe { free(c.load(Ordering::Acquire), below - 1) };
    }
}

/// The per-object page table.
pub struct AccessMap {
    /// Pointers to leaves (`levels == 0`) or to interior nodes.
    top: Box<[AtomicPtr<()>]>,
    /// Levels of interior nodes between the top array and the leaves.
    levels: u32,
    /// Leaves the object's pages need (the leaf index bound).
    leaves: u64,
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
    /// A map of `pages` entries, all `EMPTY`; it allocates at most `TOP_MAX` pointers up front,
    /// whatever `pages` is.
    pub fn new(pages: u64) -> Self {
        let leaves = pages.div_ceil(LEAF as u64);
        let mut levels = 0;
        let mut top = leaves;
        while top > TOP_MAX {
            top = top.div_ceil(NODE as u64);
            levels += 1;
        }
        Self {
            top: (0..top).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            levels,
            leaves,
            pages,
        }
    }

    /// Number of page indices the map covers.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    #[inline(always)]
    fn split(page: u64) -> (u64, usize) {
        (page >> LEAF_SHIFT, (page as usize) & (LEAF - 1))
    }

    /// The top slot and the interior-node index at each level (from the top down) of leaf `i`.
    fn path(&self, i: u64) -> (usize, impl Iterator<Item = usize>) {
        let levels = self.levels;
        (
            (i >> (levels * NODE_SHIFT)) as usize,
            (0..levels)
                .rev()
                .map(move |l| ((i >> (l * NODE_SHIFT)) as usize) & (NODE - 1)),
        )
    }

    #[inline(always)]
    fn leaf(&self, i: u64) -> Option<&Leaf> {
        if self.levels == 0 {
            let p = self
                .top
                .get(usize::try_from(i).ok()?)?
                .load(Ordering::Acquire);
            // SAFETY: a non-null pointer in the table was made by `alloc(true)` (the top array
            // of a map with no interior level points at leaves) and is freed only in `Drop`,
            // which has `&mut self`; so it is valid for `&self`'s lifetime.
            return unsafe { p.cast::<Leaf>().as_ref() };
        }
        self.deep_leaf(i, false)
    }

    /// Walks the interior levels to leaf `i`, allocating what is missing if `alloc` is set.
    fn deep_leaf(&self, i: u64, make: bool) -> Option<&Leaf> {
        if i >= self.leaves {
            return None;
        }
        let (t, path) = self.path(i);
        let mut slot = self.top.get(t)?;
        let mut below = self.levels;
        for k in path {
            let node = Self::get_or_make(slot, false, make)?;
            // SAFETY: a pointer with levels below it was made by `alloc(false)`; it lives
            // until `Drop` (see `leaf`).
            slot = &unsafe { &*node.cast::<Node>() }.children[k];
            below -= 1;
        }
        debug_assert_eq!(below, 0);
        let leaf = Self::get_or_make(slot, true, make)?;
        // SAFETY: the last level's pointers were made by `alloc(true)`; see `leaf`.
        Some(unsafe { &*leaf.cast::<Leaf>() })
    }

    /// The pointer in `slot`, installing a fresh leaf or node first if it is null and `make`.
    fn get_or_make(slot: &AtomicPtr<()>, leaf: bool, make: bool) -> Option<*mut ()> {
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() {
            return Some(p);
        }
        if !make {
            return None;
        }
        let new = alloc(leaf);
        // AcqRel on success: the zeroed leaf or node is visible before its address (pairs with
        // the Acquire loads above); Acquire on failure: so is the one another thread installed.
        match slot.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(new),
            Err(cur) => {
                // SAFETY: `new` was never shared; we still own it.
                unsafe { free(new, u32::from(!leaf)) };
                Some(cur)
            }
        }
    }

    fn leaf_or_alloc(&self, i: u64) -> Option<&Leaf> {
        if let Some(l) = self.leaf(i) {
            return Some(l);
        }
        if self.levels > 0 {
            return self.deep_leaf(i, true);
        }
        let slot = self.top.get(usize::try_from(i).ok()?)?;
        let p = Self::get_or_make(slot, true, true)?;
        // SAFETY: made by `alloc(true)`; it lives until `Drop` (see `leaf`).
        Some(unsafe { &*p.cast::<Leaf>() })
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

    /// The allocated leaves, as `(leaf index, leaf)`, in index order (a racy snapshot).
    fn allocated(&self) -> Vec<(u64, &Leaf)> {
        let mut out = Vec::new();
        for (t, slot) in self.top.iter().enumerate() {
            self.collect(slot, t as u64, self.levels, &mut out);
        }
        out
    }

    fn collect<'a>(
        &'a self,
        slot: &'a AtomicPtr<()>,
        i: u64,
        below: u32,
        out: &mut Vec<(u64, &'a Leaf)>,
    ) {
        let p = slot.load(Ordering::Acquire);
        if p.is_null() {
            return;
        }
        if below == 0 {
            // SAFETY: the last level's pointers are leaves; see `leaf`.
            out.push((i, unsafe { &*p.cast::<Leaf>() }));
            return;
        }
        // SAFETY: a pointer with levels below it is a node; see `deep_leaf`.
        let node = unsafe { &*p.cast::<Node>() };
        for (k, c) in node.children.iter().enumerate() {
            self.collect(c, (i << NODE_SHIFT) | k as u64, below - 1, out);
        }
    }

    /// Every non-empty entry, as `(page, entry)`, in page order (a racy snapshot: entries may be
    /// added or removed while it runs; callers validate each one).
    pub fn entries(&self) -> impl Iterator<Item = (u64, EntryWord)> + '_ {
        self.allocated().into_iter().flat_map(move |(i, leaf)| {
            (0..LEAF).filter_map(move |j| {
                let e = EntryWord(leaf.entries[j].load(Ordering::Acquire));
                e.frame().map(|_| ((i << LEAF_SHIFT) | j as u64, e))
            })
        })
    }
}

impl Drop for AccessMap {
    fn drop(&mut self) {
        for slot in self.top.iter() {
            // SAFETY: the top array's pointers have `levels` levels of nodes below them, made
            // by `alloc`; `&mut self` means no other reference.
            unsafe { free(slot.load(Ordering::Acquire), self.levels) };
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

    #[test]
    fn a_huge_map_is_sparse_and_numbers_its_entries() {
        // 2^61 pages: the largest page count a 2^64-byte object of 8-byte pages has.
        let n = 1u64 << 61;
        let map = AccessMap::new(n);
        assert!(
            map.levels > 0 && map.top.len() as u64 <= TOP_MAX,
            "{}",
            map.levels
        );
        let word = EntryWord::resident(3, 0);
        let pages = [
            0,
            LEAF as u64 + 5,
            LEAF as u64 * NODE as u64 + 1,
            n / 3,
            n - 1,
        ];
        for page in pages {
            assert!(map.slot(page).is_none());
            map.slot_or_alloc(page)
                .unwrap()
                .store(word.raw(), Ordering::Relaxed);
            assert_eq!(map.find(page), word);
        }
        assert!(map.slot_or_alloc(n).is_none(), "past the end");
        assert!(map.slot(u64::MAX).is_none());
        let found: Vec<u64> = map.entries().map(|(p, _)| p).collect();
        assert_eq!(found, pages);
    }

    #[test]
    fn the_largest_flat_map_has_no_interior_level() {
        let flat = AccessMap::new(TOP_MAX * LEAF as u64);
        assert_eq!(flat.levels, 0);
        let deep = AccessMap::new(TOP_MAX * LEAF as u64 + 1);
        assert_eq!(deep.levels, 1);
        deep.slot_or_alloc(TOP_MAX * LEAF as u64).unwrap();
        assert_eq!(deep.allocated().len(), 1);
    }
}
