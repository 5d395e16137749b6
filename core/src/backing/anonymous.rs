//! Anonymous memory (seed 001): an object with no file behind it. Each page is
//!
//! * **not yet allocated**: no slot, not resident; its first fault fills it with zeros, no I/O;
//! * **resident**: in a frame of the pool (dirty once written);
//! * **on swap**: reclaim wrote it to a slot of the object's [`SwapArea`] and freed its frame; a
//!   fault reads it back.
//!
//! [`Anonymous`] is the object's accessor: its page table maps page -> swap slot. A slot is
//! allocated when the page is first paged out, rewritten in place on later page-outs, and freed
//! exactly once when the object is discarded (its last handle drops: the accessor drops with
//! it). Reclaim pages out only pages that no client holds and nothing pins (the core's
//! `takeable`), and an anonymous object is not persistent ([`Accessor::persistent`]): `sync`
//! writes nothing and `close` discards instead of paging out. A full swap area makes the page-out
//! fail with ENOSPC, an expected write-back error: the page stays resident and dirty and reclaim
//! tries another frame.
//!
//! Objects are shared by reference count: cloning the [`crate::PageMapper`] (as on fork) shares
//! the object; the last clone's drop frees its frames and then its swap slots.
//!
//! Its slot table's lock (`AnonSlots`, SPEC.md §5.1) is taken under the fill shards and the
//! lists lock, before the swap area's.

use crate::backing::accessor::Accessor;
use crate::backing::swap::{Slot, SwapArea};
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{lock, Mutex, ShareArc};
use rustc_hash::FxHashMap;
use std::io;

/// The accessor of an anonymous object: zero-fill on first touch, page-out to and page-in from
/// a [`SwapArea`].
///
/// ```
/// use pagecore::{Anonymous, Pages, ShareArc, SwapArea};
///
/// let pages = Pages::builder().page_size(4096).frames(2).build()?;
/// let swap = ShareArc::new(SwapArea::temporary(4096, 64)?);
/// let anon = ShareArc::new(Anonymous::new(swap.clone()));
/// let obj = pages.open(anon.clone(), 16 * 4096)?;
/// assert_eq!(obj.read(9)?[0], 0);                  // first touch: zeros, no I/O
/// for p in 0..4 {
///     obj.write(p)?[0] = p as u8 + 1;              // 4 pages through 2 frames: paged out
/// }
/// assert!(anon.swapped() >= 2);
/// assert_eq!(obj.read(0)?[0], 1);                  // paged back in
/// drop(obj);                                       // last handle: frames, then slots freed
/// drop(anon);
/// assert_eq!(swap.in_use(), 0);
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Debug)]
pub struct Anonymous {
    swap: ShareArc<SwapArea>,
    slots: Mutex<FxHashMap<u64, Slot>>,
    /// How many pages have slots: zero (an object that never paged out) spares a fill the lookup.
    count: AtomicUsize,
}

impl Anonymous {
    /// An empty anonymous object paging out to `swap`.
    pub fn new(swap: ShareArc<SwapArea>) -> Self {
        Self {
            swap,
            slots: Mutex::new(crate::sync::Level::AnonSlots, FxHashMap::default()),
            count: AtomicUsize::new(0),
        }
    }

    /// Pages that have a swap slot (paged out at least once).
    pub fn swapped(&self) -> usize {
        lock(&self.slots).len()
    }

    /// The swap slot of `page`, if it has one.
    pub fn slot_of(&self, page: u64) -> Option<Slot> {
        // Acquire: pairs with the Release updates below (made under the slots lock). A slot
        // that appears concurrently is for another page: pagecore never fills a page while it
        // is being paged out; a copy that moves slots bumps the epoch, which fails the
        // publication of a fill that missed it; a collapse moves no slot of a page with a fill
        // in flight.
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        lock(&self.slots).get(&page).copied()
    }

    fn recount(&self, slots: &FxHashMap<u64, Slot>) {
        // Release: see slot_of; the caller holds the slots lock.
        self.count.store(slots.len(), Ordering::Release);
    }

    /// The swap area.
    pub fn swap(&self) -> &SwapArea {
        &self.swap
    }

    /// The swap area, shared.
    pub(crate) fn swap_area(&self) -> &ShareArc<SwapArea> {
        &self.swap
    }

    /// Takes every page -> slot pair out of this object (a copy moves them to the frozen layer,
    /// which then owns and frees them).
    pub(crate) fn take_slots(&self) -> FxHashMap<u64, Slot> {
        let mut t = lock(&self.slots);
        let taken = std::mem::take(&mut *t);
        self.recount(&t);
        taken
    }

    /// Takes the page -> slot pairs whose page `take` picks, leaving the others in place (never
    /// out of the table, not even for a moment: a fill in flight may be reading them).
    pub(crate) fn take_slots_where(&self, mut take: impl FnMut(u64) -> bool) -> Vec<(u64, Slot)> {
        let mut t = lock(&self.slots);
        let mut taken = Vec::new();
        t.retain(|&p, &mut s| {
            let go = take(p);
            if go {
                taken.push((p, s));
            }
            !go
        });
        self.recount(&t);
        taken
    }

    /// Adopts page -> slot pairs taken from another object over the same swap area.
    pub(crate) fn adopt_slots(&self, slots: impl IntoIterator<Item = (u64, Slot)>) {
        let mut t = lock(&self.slots);
        t.extend(slots);
        self.recount(&t);
    }
}

impl Accessor for Anonymous {
    fn page_size(&self) -> Option<usize> {
        Some(self.swap.page_size())
    }

    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        // The core never fills a page while its flush runs, so the slot cannot change under us.
        match self.slot_of(page) {
            Some(s) => self.swap.read(s, buf),
            None => {
                buf.fill(0); // not yet allocated: zero-fill, no I/O
                Ok(())
            }
        }
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        if let Some(s) = self.slot_of(page) {
            return self.swap.write(s, buf);
        }
        let s = match self.swap.alloc() {
            Ok(s) => s,
            // ENOSPC: an expected write-back error (the page stays resident and dirty).
            Err(Error::SwapFull { .. }) => return Err(io::Error::from_raw_os_error(28)),
            Err(e) => return Err(io::Error::other(e)),
        };
        match self.swap.write(s, buf) {
            Ok(()) => {
                let mut t = lock(&self.slots);
                t.insert(page, s);
                self.recount(&t);
                Ok(())
            }
            Err(e) => {
                // Never published: give the slot back (cannot fail: we just allocated it).
                let _ = self.swap.free(s);
                Err(e)
            }
        }
    }

    fn persistent(&self) -> bool {
        false
    }

    fn as_anonymous(&self) -> Option<&Anonymous> {
        Some(self)
    }
}

impl Anonymous {
    /// Frees the slots now (as dropping does) and reports a slot that was not in use.
    pub fn discard(self) -> Result<()> {
        self.free_slots()
    }

    /// Frees every slot and forgets it, each exactly once (the table is emptied first, so a
    /// second call frees nothing); reports the first slot the area did not have in use.
    fn free_slots(&self) -> Result<()> {
        let slots = self.take_slots();
        let mut first = Ok(());
        for s in slots.into_values() {
            // Every slot is freed, even after an error.
            first = first.and(self.swap.free(s));
        }
        first
    }
}

impl Drop for Anonymous {
    /// Frees every slot (the object is gone: no page can be paged in again).
    fn drop(&mut self) {
        // An error here would be a double free, a pagecore bug; there is no caller to tell.
        let _ = self.free_slots();
    }
}
