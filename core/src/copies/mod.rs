//! Logical copies (seed 004): copy-on-write copies of memory objects, anonymous or persistent.
//!
//! # Model
//!
//! [`crate::PageMapper::copy`] makes a snapshot: right after it returns, the copy reads exactly
//! what the source held, and from then on a write to either is seen by neither the other nor any
//! other copy. Three pieces carry it:
//!
//! * **Frozen layers.** A copy moves the source's private pages (its resident frames, its swap
//!   slots, or, for a persistent object, the record of which pages its file holds) into a new
//!   *frozen layer*: an object no one writes (`FrozenStore`), which both the source and the copy
//!   then read through (their *backing*). Frames are not copied: a moved frame just changes
//!   owner. A frozen layer reads through the layer below it for pages it does not hold, so
//!   copies of copies form a chain, newest on top.
//! * **Proxies.** An object reading a page through its chain does not copy it: the page's entry
//!   becomes a *proxy* of the frame the owning layer holds (`EntryWord::COW`), holding one read pin
//!   on the owner's entry. Hits on a proxy cost what hits on an own page cost (one CAS on the
//!   object's own entry); many objects share one frame. The frame's owner and its proxies are
//!   its reverse map (`crate::frames::Frame`): reclaim unmaps proxies nobody pins before taking
//!   the frame, `close` unmaps the object's proxies.
//! * **Breaking.** A writer (plain, or a client's write grant) finding a proxy gives the object a
//!   private page first (`break_cow`): copy the shared frame into a new one, then, in one CAS
//!   on the object's entry, swap the frame and clear `COW`. Readers are never blocked by a break
//!   in progress (the shared frame never changes); the CAS only waits for the pins and holders
//!   of the object's own entry to be those of the breaker. The other objects keep the old frame.
//!
//! A persistent object (a file) stays the top of its chain and keeps its file: its frozen layers
//! read the pages it has not written since the copy from that file (`InFile`). Before the object
//! writes such a page, it breaks it, and the break marks the layer's frame dirty, so that when
//! the layer's frame is reclaimed the layer keeps the page in swap instead of reading the file
//! again later. A copy of a persistent object writes its dirty pages back first, so the file
//! holds everything the layer expects of it.
//!
//! # Ownership
//!
//! Which object a page's content belongs to, for an object with a backing: an anonymous object
//! owns the pages it has swap slots for (and those resident in frames it owns); a persistent
//! object owns the pages it wrote since its last copy (`LayerState::privatized`); a frozen layer
//! owns the pages in its swap slots and, for a persistent chain, the pages of `InFile`. A page
//! no layer holds is zeros (anonymous memory), filled privately. Resolution walks the chain from
//! the top: depth = the number of live frozen layers in the object's lineage.
//!
//! # Orderings
//!
//! * Proxy publication (`PagesShared::make_proxy`): CAS `Release` from `EMPTY`, after the
//!   resolution pin's `Acquire` on the owner's entry: the owner's bytes reach the proxy's pinners.
//! * Break publication (`PagesShared::publish_break`): CAS `AcqRel` under the lists lock; the
//!   new frame's bytes, copied under our own read pin on the owner's entry, reach the entry's next
//!   pinners; the proxy's pin and ours are dropped after (`Release`, as any unpin).
//! * The copy's marking: `COW` set with a CAS (`AcqRel`) that requires no writer: writers from
//!   then on see `COW` and break instead. The freeze runs under every fill-shard lock of the
//!   source and the lists lock; the epoch bump under the shard locks orders it with every later
//!   publication (fills compare the epoch under their shard lock).
//! * The frozen layer's `DIRTY` mark: `fetch_or` `Relaxed` while the breaker holds a read pin
//!   on the layer's entry: the reclaimer's take CAS comes later in that word's modification
//!   order (after the breaker's `Release` unpin), so it sees the bit and writes the page to swap.
//!
//! Locks (SPEC.md §5.1): an object's copy lock (`Copy`) is the outermost; a layer's state
//! (`LayerState`) comes after the lists lock, its file record (`LayerFile`) after both.

mod collapse;
mod resolve;
mod snapshot;
#[cfg(test)]
mod tests;

pub(crate) use collapse::compact;
use collapse::{try_collapse, try_collapse_for};
pub(crate) use resolve::break_cow;
use resolve::resolve;
pub(crate) use snapshot::copy;

use crate::backing::anonymous::Anonymous;
use crate::backing::swap::SwapArea;
use crate::error::{Error, Result};
use crate::frames::{CowSource, Freeze, Owner, Publish};
use crate::object::layer::{attach, detach, Chain, FrozenStore, InFile, Layer, Resolved};
use crate::object::mapper::{Bound, MapperShared, Want};
use crate::pack::EntryWord;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{lock, Arc, Instant, Parked, ShareArc};
use crate::PageMapper;
use std::collections::HashSet;

/// The chain's operations (resolution and break), as objects call them through
/// [`Chain`](crate::object::layer::Chain): the front hands `&Copies` to each object it opens,
/// and a copy passes its source's on.
pub(crate) struct Copies;

impl Chain for Copies {
    fn resolve(
        &self,
        this: &Arc<MapperShared>,
        page: u64,
        bound: Bound,
    ) -> Result<Option<Resolved>> {
        resolve(this, page, bound)
    }

    fn break_cow(
        &self,
        this: &Arc<MapperShared>,
        page: u64,
        slot: &AtomicU64,
        allowed: u64,
        deadline: Option<Instant>,
        frame: Option<u32>,
    ) -> Result<()> {
        resolve::break_cow_with(this, page, slot, allowed, deadline, frame)
    }
}

/// Counters of an object's copies (see [`crate::PageMapper::copy_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Frozen layers below the object (its misses walk at most this many).
    pub depth: usize,
    /// Copies made of the object.
    pub copies: usize,
    /// Frozen layers collapsed into the object (each read by it alone).
    pub collapsed: usize,
}

pub(crate) fn stats(this: &MapperShared) -> CopyStats {
    CopyStats {
        depth: this.layer.depth(),
        copies: this.layer.copies.load(Ordering::Relaxed),
        collapsed: this.layer.collapsed.load(Ordering::Relaxed),
    }
}

impl PageMapper {
    /// Makes a copy-on-write copy of the object: a new object whose content is, at this instant,
    /// the object's, and which from then on is written independently of it (a write to either is
    /// seen by neither the other nor any other copy). Nothing is copied up front: both objects
    /// share the frames and swap slots of the pages neither has written since (a *frozen layer*
    /// below them), and a write gives the writer a private page (SPEC.md §2.6). The copy is an
    /// anonymous object (not persistent), over the object's swap area if it is anonymous, else
    /// over the pool's ([`PagesBuilder::swap`](crate::PagesBuilder::swap)). For a copy of the copy, copy it.
    ///
    /// A copy is a snapshot, so it waits for writers of the object to finish (asking client
    /// write holders to downgrade) up to the pool's bound, then fails with [`Error::Busy`]; it
    /// writes the dirty pages of a persistent object back first, and those of a mapped object
    /// ([`crate::Mapping`]), whose pages then stay where its mappings map them (SPEC §2.8, copies
    /// of a mapped object). A mapped object whose accessor is neither anonymous nor persistent
    /// cannot be copied ([`Error::Mapped`]). Failures to write back first are
    /// [`Error::WriteBack`] (a file's, or a full swap area's `ENOSPC`).
    ///
    /// While the copy lives, the first write of each page of a mapped file puts the page's old
    /// bytes in the copy's layer's swap (the pool's, [`PagesBuilder::swap`](crate::PagesBuilder::swap)),
    /// and fails with [`Error::WriteBack`] if it is full (a store through a mapping waits for
    /// slots instead); a miss of a mapped object's page that the copy's layers hold copies it in,
    /// holding two frames at once, so such misses need a pool of two frames or more.
    ///
    /// ```
    /// use pagecore::{Pages, MemoryAccessor};
    /// let pages = Pages::builder().page_size(64).frames(8).build()?;
    /// let file = pages.open(MemoryAccessor::new(), 64 * 16)?;
    /// file.write(3)?[0] = 1;
    /// let snap = file.copy()?;            // shares every page
    /// file.write(3)?[0] = 2;              // the file gets a private page 3
    /// snap.write(4)?[0] = 9;              // and so does the copy, for page 4
    /// assert_eq!((file.read(3)?[0], snap.read(3)?[0]), (2, 1));
    /// assert_eq!((file.read(4)?[0], snap.read(4)?[0]), (0, 9));
    /// assert_eq!(pages.stats().cow_breaks, 2);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn copy(&self) -> Result<PageMapper> {
        copy(self, None)
    }

    /// A copy of the object whose resident pages live in `memory` (a private mapping's: SPEC
    /// §2.8), as [`PageMapper::copy`] makes one otherwise.
    pub(crate) fn copy_mapped(
        &self,
        memory: ShareArc<dyn crate::object::memory::PageMemory>,
    ) -> Result<PageMapper> {
        copy(self, Some(memory))
    }

    /// The object's place in its chain of copies (the frozen layers below it).
    pub fn copy_stats(&self) -> CopyStats {
        stats(&self.shared)
    }

    /// Collapses the frozen layers of the object's chain that only one object still reads
    /// through (their pages move up, no byte copied), as far as possible without waiting, and
    /// returns the chain's depth after. Misses do this on their own as they walk the chain; this
    /// does it now, for the whole chain.
    ///
    /// ```
    /// use pagecore::Pages;
    /// let pages = Pages::builder().page_size(64).frames(8).build()?;
    /// let a = pages.anonymous(64 * 4)?;
    /// a.write(0)?[0] = 1;
    /// let b = a.copy()?;                  // a and b read one frozen layer
    /// assert_eq!(a.copy_stats().depth, 1);
    /// drop(b);                            // now only a reads it
    /// assert_eq!(a.compact(), 0);         // its pages move up into a
    /// assert_eq!(a.read(0)?[0], 1);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn compact(&self) -> usize {
        compact(&self.shared)
    }
}
