//! The mapping's protocol over an [`Mmu`]: serving faults, and the object's page memory that
//! reclaim and write-back go through (SPEC §2.8). It runs no thread of its own: a handler calls
//! [`MapCore::serve`] for each fault it reads ([`MapCore::serve_all`] until the mapping ends).
//!
//! The object's resident pages live in the MMU's memory ([`Mmu::bytes`]); their frames are the
//! pool's budget tokens. The invariant the protocol keeps (IM1): a page whose table entry is
//! writable has `DIRTY` set in its entry word. Hence:
//!
//! * a read fault pins the page for reading (faulting it in: the fill writes the MMU's bytes)
//!   and maps it read-only under the pin; a write fault pins it for writing (which sets
//!   `DIRTY`) and maps it writable, or un-protects it, under the pin. Mapping under the pin
//!   means reclaim cannot take the page in between (it would give the bytes up, and the map
//!   would expose a freed page);
//! * reclaim takes a page (T7), zaps its entry (no access completes after), writes it back if
//!   `DIRTY` (a store that completed is in those bytes), gives the bytes up, and empties the
//!   entry (T8); a CPU that faults meanwhile waits for the page and finds it refilled;
//! * `sync` read-pins a dirty page, write-protects it, writes it back and clears `DIRTY`; a
//!   store meanwhile faults, and its service waits for the pin, then sets `DIRTY` again.
//!
//! A fill that fails poisons the page ([`Mmu::poison`]): the faulting CPU gets a bus error, not
//! zeros.

use super::mmu::{Fault, Mapped, Mmu};
use crate::error::{Error, Result};
use crate::object::mapper::{MapperShared, Want};
use crate::object::memory::PageMemory;
use crate::sync::{AccessTrack, Arc, ShareArc};
use crate::{Accessor, PageMapper, Pages};

/// An MMU as an object's page memory.
struct MmuMemory<M>(ShareArc<M>);

impl<M: Mmu> PageMemory for MmuMemory<M> {
    fn bytes(&self, page: u64) -> *mut u8 {
        self.0.bytes(page)
    }

    fn track(&self, page: u64) -> &AccessTrack {
        self.0.track(page)
    }

    fn quiesce(&self, page: u64, evict: bool) {
        if evict {
            self.0.zap(page);
        } else {
            self.0.protect(page, true);
        }
    }

    fn release(&self, page: u64) {
        self.0.free(page);
    }
}

/// A memory object mapped through an [`Mmu`]: the protocol of SPEC §2.8 (see the module doc).
pub struct MapCore<M: Mmu + 'static> {
    mmu: ShareArc<M>,
    object: PageMapper,
}

impl<M: Mmu + 'static> std::fmt::Debug for MapCore<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapCore")
            .field("pages", &self.mmu.pages())
            .finish()
    }
}

impl<M: Mmu + 'static> MapCore<M> {
    /// Opens an object backed by `accessor` whose pages are mapped through `mmu` (the object's
    /// size is the MMU's range). Fails with [`Error::AccessorPageSize`] if the MMU's page size
    /// is not the pool's.
    pub fn new(pages: &Pages, accessor: impl Accessor, mmu: M) -> Result<Self> {
        if mmu.page_size() != pages.page_size() {
            return Err(Error::AccessorPageSize {
                accessor: mmu.page_size(),
                page_size: pages.page_size(),
            });
        }
        let mmu = ShareArc::new(mmu);
        let limit = mmu.pages() * mmu.page_size() as u64;
        let memory: ShareArc<dyn PageMemory> = ShareArc::new(MmuMemory(mmu.clone()));
        let object = pages.open_with_memory(ShareArc::new(accessor), limit, memory)?;
        Ok(Self { mmu, object })
    }

    /// The mapped object (its guards, clients and `sync` work beside the mapping).
    pub fn object(&self) -> &PageMapper {
        &self.object
    }

    /// The MMU.
    pub fn mmu(&self) -> &M {
        &self.mmu
    }

    /// Serves one fault: the page is faulted in (filled through the object's accessor, once
    /// however many faults, guards and clients want it) and mapped, read-only for a load,
    /// writable and `DIRTY` for a store. A failed fill poisons the page (the CPU gets a bus
    /// error) and is returned; so is any other error, after waking the CPU to fault again.
    pub fn serve(&self, fault: Fault) -> Result<()> {
        let shared: &Arc<MapperShared> = &self.object.shared;
        let want = if fault.write { Want::Write } else { Want::Read };
        let (_, slot) = match MapperShared::pin(shared, fault.page, want) {
            Ok(pinned) => pinned,
            Err(e) => {
                if matches!(e, Error::Fill { .. }) {
                    self.mmu.poison(fault.page);
                } else {
                    self.mmu.wake(fault.page);
                }
                return Err(e);
            }
        };
        // Under the pin: reclaim cannot take the page (and give its bytes up) before it is
        // mapped. A write pin has set DIRTY (IM1 before the entry turns writable).
        let mapped = self.mmu.map(fault.page, fault.write);
        match (mapped, fault.write) {
            (Mapped::Done, _) => {}
            (Mapped::Exists, true) => self.mmu.protect(fault.page, false),
            (Mapped::Exists, false) => self.mmu.wake(fault.page),
        }
        let pages = &shared.pages;
        if fault.write {
            pages.unpin_write(slot);
        } else {
            pages.unpin_read(slot);
        }
        Ok(())
    }

    /// Serves faults until the mapping ends ([`Mmu::unmap`]); returns how many it served. An
    /// error serving one (a failed fill, which poisoned its page) does not stop it.
    pub fn serve_all(&self) -> u64 {
        let mut n = 0;
        while let Some(f) = self.mmu.next_fault(true) {
            let _ = self.serve(f);
            n += 1;
        }
        n
    }

    /// Writes back every page stored to through the mapping (or written otherwise) since it was
    /// last written back ([`PageMapper::sync`]).
    pub fn sync(&self) -> Result<()> {
        self.object.sync()
    }

    /// Clears a poisoned page (a failed fill, [`MapCore::serve`]): the next access faults and
    /// fills it again.
    pub fn retry(&self, page: u64) {
        self.mmu.zap(page);
    }

    /// Ends the mapping: its CPUs' accesses fail from now on (handlers' [`MapCore::serve_all`]
    /// returns), then the object is closed (written back, frames released).
    pub fn close(&self) -> Result<()> {
        self.mmu.unmap();
        self.object.close()
    }
}

impl<M: Mmu + 'static> Drop for MapCore<M> {
    /// Ends the mapping as [`MapCore::close`] does; the object closes when its last handle goes.
    fn drop(&mut self) {
        self.mmu.unmap();
    }
}
