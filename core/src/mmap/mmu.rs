//! The MMU as a mapping's protocol sees it: the operations the pager applies to a mapped range's
//! page tables, and the source of the faults it serves. Two implementations: the kernel's, through
//! userfaultfd (`UffdMmu` in `real.rs`: `CONTINUE`, `WRITEPROTECT`, `MADV_DONTNEED`,
//! `PUNCH_HOLE`, `POISON`, `WAKE` on a memfd mapping; `docs/design/mmap.md`), and [`SimMmu`](super::sim::SimMmu), a model on the
//! sync facade, so that loom and shuttle check the protocol over it (`MapCore`, SPEC §2.8).
//!
//! Most operations name one page; those a batch uses (`map_read_only` for fault-around,
//! `zap_range` and `free_range` for a batched eviction) take a range, which the kernel's do in
//! one system call and the model page by page, in order.

use crate::sync::AccessTrack;

/// A fault a CPU took on a mapped page, as the handler reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The page index in the mapping.
    pub page: u64,
    /// A store (to an unmapped or a write-protected page), not a load.
    pub write: bool,
}

/// Outcome of [`Mmu::map`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// The page is now mapped, and the CPUs waiting on it are woken.
    Done,
    /// It was mapped already (by another fault's service): nothing changed, nobody was woken
    /// (userfaultfd's `EEXIST`).
    Exists,
}

/// A mapped range's page tables and fault source (see the module doc).
pub trait Mmu: Send + Sync {
    /// Page size in bytes.
    fn page_size(&self) -> usize;

    /// Number of pages in the range.
    fn pages(&self) -> u64;

    /// Page `page`'s bytes, where the pager fills and writes back (a memfd page through the
    /// pager's own unregistered alias; the model's page).
    fn bytes(&self, page: u64) -> *mut u8;

    /// Fills page `page`'s bytes through `fill` (a fault's fill: the page is mapped nowhere
    /// while it fills, and the caller holds it exclusively). By default in place
    /// ([`Mmu::bytes`]); the kernel's fills a buffer and writes it into the memfd, which spares
    /// the alias's first-touch fault and the new page's zeroing.
    fn fill(
        &self,
        page: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        // SAFETY: the caller holds the page exclusively while it fills (see above), so these
        // are the only references to its bytes; `bytes` is `page_size` bytes long.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.bytes(page), self.page_size()) };
        fill(buf)
    }

    /// The access tracker of page `page`'s bytes (loom fails a model in which a CPU's access
    /// overlaps a conflicting access of the pager's).
    fn track(&self, page: u64) -> &AccessTrack;

    /// Maps page `page`, its bytes in place, read-only or `writable`, and wakes the CPUs that
    /// wait on it. Read-only must trap a store to the handler (`CONTINUE` with `MODE_WP`, not a
    /// plain read-only entry, which the kernel would make writable on a shared mapping's first
    /// store with no event: the store would reach the page with `DIRTY` unset, IM1).
    fn map(&self, page: u64, writable: bool) -> Mapped;

    /// Maps pages `[first, first + n)` read-only, as `map(page, false)` on each would, in one
    /// operation where the MMU can (the kernel's `CONTINUE` takes a range; the model maps page
    /// by page). Returns how many it mapped; a page mapped already keeps its entry and is not
    /// counted. The caller holds every page of the range pinned.
    fn map_read_only(&self, first: u64, n: u64) -> u64 {
        (first..first.saturating_add(n))
            .filter(|&p| self.map(p, false) == Mapped::Done)
            .count() as u64
    }

    /// Write-protects page `page` (`wp`: a later store faults, trapped to the handler as a
    /// write-protect fault), or makes it writable again and wakes the CPUs that wait on it. No
    /// effect on an unmapped page's access (the kernel leaves a marker on a shared mapping's
    /// absent page, which the next map replaces; the model does not keep it).
    fn protect(&self, page: u64, wp: bool);

    /// Removes page `page`'s table entry and keeps its bytes: every later access faults. When
    /// it returns, no access through the old entry is in progress (the TLB shootdown).
    fn zap(&self, page: u64);

    /// Zaps pages `[first, first + n)`, as `zap` on each would, in one operation where the
    /// MMU can (the kernel's `MADV_DONTNEED` takes a range).
    fn zap_range(&self, first: u64, n: u64) {
        for p in first..first.saturating_add(n) {
            self.zap(p);
        }
    }

    /// Gives page `page`'s bytes up (and its table entry): a later fill starts afresh.
    fn free(&self, page: u64);

    /// Frees pages `[first, first + n)`, as `free` on each would, in one operation where the
    /// MMU can (the kernel's `PUNCH_HOLE` takes a range).
    fn free_range(&self, first: u64, n: u64) {
        for p in first..first.saturating_add(n) {
            self.free(p);
        }
    }

    /// Wakes the CPUs waiting on page `page` without mapping it (they fault again if they
    /// still cannot access it).
    fn wake(&self, page: u64);

    /// Answers the faults on page `page` with a bus error (a failed fill), and every later
    /// access too, until the page is zapped.
    fn poison(&self, page: u64);

    /// Ends the mapping for its CPUs: every access from now on fails (the range is unmapped),
    /// and the waiting ones are woken to fail.
    fn unmap(&self);

    /// Page `page`'s address in this range and whether it is writable, if its table entry is
    /// present (the reverse map's view of the mapping; a racy snapshot). The model's
    /// addresses are its own: view `v`'s page `p` at `(v * pages + p) * page_size`.
    fn mapped_at(&self, page: u64) -> Option<(usize, bool)>;

    /// Whether [`Mmu::unmap`] was called (a fault's server stops trying).
    fn ended(&self) -> bool;

    /// The next fault to serve: waits for one if `block`. `None` when there is none (not
    /// blocking) or the MMU was shut down ([`Mmu::unmap`] and no fault left).
    fn next_fault(&self, block: bool) -> Option<Fault>;
}
