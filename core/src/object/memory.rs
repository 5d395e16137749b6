//! An object's own page memory: where a mapped object's resident pages live instead of in their
//! frames (issue 19; SPEC.md §2.8).
//!
//! A page of an object mapped into an address space has one copy of its bytes: the page the
//! mapping's memory holds (a memfd's page-cache page, or the simulated MMU's page). The frame
//! the pool lends for it stays the budget token (its tag, queue place, owner and pins are as for
//! any page) but its own bytes go unused. The object reaches the bytes through this trait, which
//! the mapping layer (`mmap`) implements, so `object` names nothing above it:
//!
//! * the fill, the guards and grants, and every write-back use [`PageMemory::bytes`] and track
//!   the access on [`PageMemory::track`] (loom checks a store through the mapping never overlaps
//!   a write-back's read or a fill);
//! * before reclaim or `sync` reads a page's bytes for its write-back, [`PageMemory::quiesce`]
//!   stops every store through the mapping (reclaim zaps the page's table entry, sync
//!   write-protects it): a store that completed before is in the bytes written back, a later one
//!   faults and waits for the page (I6 for mappings, SPEC §2.8);
//! * reclaim gives the page's bytes up ([`PageMemory::release`]) before the entry empties (T8),
//!   so a later fault's fill can never be punched out.
//!
//! Orderings: none of its own. Each call is made while the caller holds the page (a pin, or the
//! reclaim's take), whose entry word carries the happens-before edges; the implementation's own
//! lock orders its table changes with the accesses through the mapping.

use crate::sync::AccessTrack;

/// The memory a mapped object's resident pages live in (see the module doc).
pub(crate) trait PageMemory: Send + Sync {
    /// Page `page`'s bytes (the object's page size), valid while the caller holds the page.
    fn bytes(&self, page: u64) -> *mut u8;

    /// Fills page `page` through `fill`, which the caller runs the accessor in: the page is
    /// mapped nowhere while it fills and the caller holds it exclusively (a frame in `Filling`).
    fn fill(
        &self,
        page: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()>;

    /// The access tracker of page `page`'s bytes (loom: conflicting accesses fail the model).
    fn track(&self, page: u64) -> &AccessTrack;

    /// Stops stores through the mapping to `page` before its bytes are read for a write-back:
    /// `evict` (reclaim, the page taken): no access at all completes after it (the page table
    /// entry is zapped); else (sync, the page read-pinned) the page is write-protected. Returns
    /// once no store can complete until the page is faulted in again.
    fn quiesce(&self, page: u64, evict: bool);

    /// Reclaim is about to empty `page` (T8) after its write-back: its bytes are given up.
    fn release(&self, page: u64);

    /// A batched eviction's `quiesce(page, true)` of every page in `pages` (sorted, distinct),
    /// a run of consecutive pages in one operation where the memory can.
    fn quiesce_evicted(&self, pages: &[u64]) {
        for &p in pages {
            self.quiesce(p, true);
        }
    }

    /// A batched eviction's `release` of every page in `pages` (sorted, distinct), a run of
    /// consecutive pages in one operation where the memory can.
    fn release_many(&self, pages: &[u64]) {
        for &p in pages {
            self.release(p);
        }
    }

    /// Where `page` is mapped now, for the reverse map (`Pages::rmap`): each mapping whose
    /// table entry for it is present, as (address, writable). A racy snapshot.
    fn mapped_at(&self, page: u64) -> Vec<(usize, bool)>;
}
