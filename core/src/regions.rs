//! Regions (seed 004's internal paging interface): an [`AddressSpace`] binds ranges of a client's
//! addresses to memory objects (files, anonymous memory, computed data: any [`PageMapper`]). A
//! fault at an address finds the region that covers it, computes the object's page from the fault
//! address, the region's start and the region's offset into the object, checks the region's
//! protection, and requests access through the region's client: the result is a [`Grant`].
//!
//! A region is **shared** (it reads and writes the object itself, through one client of the
//! object per address space) or **private** (it reads and writes a copy-on-write copy of the
//! object made when the region was mapped: a snapshot, [`PageMapper::copy`]). Unmapping part of
//! a region splits it; the pieces keep the binding (the client, and for a private region its
//! copy). The grants a fault returns borrow the address space, so mapping and unmapping (which
//! take it mutably) cannot run while any is held: the borrow checker enforces what an `mmap_lock`
//! enforces in a kernel.
//!
//! Every binding tells its object where it is mapped, so the reverse map
//! ([`crate::Pages::rmap`]) can name the regions and clients that hold a frame; revocations
//! reach the address space's callback ([`AddressSpace::with_revoke`]) as addresses.
//!
//! Locks (SPEC.md §5.1): an object's registrations (`Regions`) before a table's ranges
//! (`Ranges`), both before arbitration and the pool.

use crate::arbitration::client::{Client, Grant};
use crate::arbitration::{Access, Revocation};
use crate::error::{Error, Result};
use crate::sync::{lock, Mutex, ShareArc};
use crate::{PageMapper, Pages};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a region allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Read faults only.
    Read,
    /// Read and write faults.
    ReadWrite,
}

/// How a region sees its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// The object itself: its other clients see the region's writes, and it sees theirs.
    Shared,
    /// A copy-on-write copy of the object made when the region was mapped: the region's writes
    /// are its own, and writes to the object after the mapping are not seen by the region.
    Private,
}

/// Where a binding (a client of one object in one address space) is mapped: (start, length,
/// offset into the object), bytes. Shared with the object's region registry and the client's
/// revocation callback.
pub(crate) type Ranges = Mutex<Vec<(u64, u64, u64)>>;

/// One region of an address space, as the reverse map reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionRef {
    /// The address space's id.
    pub space: u64,
    /// First address of the region.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset of `start` in the object, in bytes.
    pub offset: u64,
    /// The region's client of the object. Client ids are per object (each object numbers its
    /// clients from 0), so two regions of different objects may show the same id.
    pub client: u32,
}

/// The object's side of a binding: enough for the reverse map to name regions.
pub(crate) struct Registration {
    pub(crate) space: u64,
    pub(crate) client: u32,
    pub(crate) ranges: ShareArc<Ranges>,
}

/// A client of one object (the object itself, or the region's private copy) in one address
/// space, shared by the regions that map it.
struct Binding {
    object: PageMapper,
    client: Client,
    ranges: ShareArc<Ranges>,
    sharing: Sharing,
}

impl Drop for Binding {
    fn drop(&mut self) {
        let mut regs = lock(&self.object.shared.regions);
        regs.retain(|r| !ShareArc::ptr_eq(&r.ranges, &self.ranges));
    }
}

struct Region {
    len: u64,
    offset: u64,
    prot: Protection,
    binding: ShareArc<Binding>,
}

/// What a fault address translates to (see [`AddressSpace::translate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The fault address.
    pub addr: u64,
    /// Start of the region that covers it.
    pub region_start: u64,
    /// The byte offset in the object: `addr - region_start + region offset`.
    pub object_offset: u64,
    /// The object's page (`object_offset / page size`).
    pub page: u64,
    /// Id of the object the region reads (its private copy, for a private region).
    pub object: u64,
    /// The region's protection.
    pub prot: Protection,
}

/// A region, as [`AddressSpace::regions`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// First address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset of `start` in the object, in bytes.
    pub offset: u64,
    /// Protection.
    pub prot: Protection,
    /// Shared or private.
    pub sharing: Sharing,
    /// Id of the object the region reads (its private copy, for a private region).
    pub object: u64,
    /// The region's client of that object. Client ids are per object (each object numbers its
    /// clients from 0), so two regions of different objects may show the same id.
    pub client: u32,
}

type RevokeFn = dyn Fn(u64, Revocation) + Send + Sync;

/// A client's address space: regions bound to memory objects, and faults on them.
///
/// ```
/// use pagecore::{Access, MemoryAccessor, Pages};
/// use pagecore::{AddressSpace, Protection, Sharing};
/// let pages = Pages::builder().page_size(4096).frames(8).build()?;
/// let file = pages.open(MemoryAccessor::new(), 16 * 4096)?;
/// file.write(2)?[0] = 7;
/// let mut space = AddressSpace::new(&pages);
/// // Addresses 0x10000.. show the file from byte 8192 (page 2) on; 0x40000.. a private copy.
/// space.map(0x10000, 4 * 4096, &file, 8192, Protection::ReadWrite, Sharing::Shared)?;
/// space.map(0x40000, 4 * 4096, &file, 8192, Protection::ReadWrite, Sharing::Private)?;
/// assert_eq!(space.fault(0x10000, Access::Read)?[0], 7);       // file page 2
/// space.fault(0x40000, Access::Write)?.bytes_mut()?[0] = 9;    // private: the file keeps 7
/// assert_eq!(file.read(2)?[0], 7);
/// assert!(space.fault(0x20000, Access::Read).is_err());       // no region there
/// space.unmap(0x11000, 4096)?;                                 // splits the shared region
/// assert!(space.fault(0x11000, Access::Read).is_err());
/// assert_eq!(space.regions().count(), 3);
/// # Ok::<(), pagecore::Error>(())
/// ```
pub struct AddressSpace {
    id: u64,
    page_size: u64,
    regions: BTreeMap<u64, Region>,
    revoke: Option<ShareArc<RevokeFn>>,
}

impl std::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSpace")
            .field("id", &self.id)
            .field("regions", &self.regions.len())
            .finish()
    }
}

impl AddressSpace {
    /// An empty address space over objects of `pages`.
    pub fn new(pages: &Pages) -> Self {
        Self {
            id: pages.shared.object_id(),
            page_size: pages.page_size() as u64,
            regions: BTreeMap::new(),
            revoke: None,
        }
    }

    /// Revocations of the grants this space's faults hold reach `revoke(addr, ask)`, once per
    /// address that maps the page (see [`crate::Revoke`]: signal the owner of the grant, do not
    /// block). Applies to regions mapped from now on.
    pub fn with_revoke(mut self, revoke: impl Fn(u64, Revocation) + Send + Sync + 'static) -> Self {
        self.revoke = Some(ShareArc::new(revoke));
        self
    }

    /// The space's id (as the reverse map reports it).
    pub fn id(&self) -> u64 {
        self.id
    }

    fn check(&self, what: &'static str, value: u64, nonzero: bool) -> Result<()> {
        if value % self.page_size != 0 || (nonzero && value == 0) {
            return Err(Error::Unaligned { what, value });
        }
        Ok(())
    }

    /// The end of `[start, start + len)`, which must be page-aligned, non-empty and not wrap.
    fn range(&self, start: u64, len: u64) -> Result<u64> {
        self.check("start", start, false)?;
        self.check("length", len, true)?;
        start.checked_add(len).ok_or(Error::Unaligned {
            what: "length",
            value: len,
        })
    }

    /// Binds `[start, start + len)` to `object` from byte `offset` on, with protection `prot`,
    /// shared or private (a copy made now). All three must be multiples of the page size; the
    /// range must not overlap a mapped region, nor run past the object's last page.
    pub fn map(
        &mut self,
        start: u64,
        len: u64,
        object: &PageMapper,
        offset: u64,
        prot: Protection,
        sharing: Sharing,
    ) -> Result<()> {
        let end = self.range(start, len)?;
        self.check("offset", offset, false)?;
        let object_end = object.page_count() * self.page_size;
        if offset.checked_add(len).is_none_or(|e| e > object_end) {
            return Err(Error::OutOfRange {
                offset: offset.saturating_add(len),
                limit: object_end,
            });
        }
        if self.overlapping(start, end).next().is_some() {
            return Err(Error::Overlap { start, len });
        }
        let binding = match sharing {
            Sharing::Shared => {
                if prot == Protection::ReadWrite && !object.shared.accessor.writable() {
                    return Err(Error::ReadOnly);
                }
                let existing = self.regions.values().find(|r| {
                    r.binding.sharing == Sharing::Shared && r.binding.object.id() == object.id()
                });
                match existing {
                    Some(r) => r.binding.clone(),
                    None => self.bind(object.clone(), Sharing::Shared)?,
                }
            }
            Sharing::Private => self.bind(object.copy()?, Sharing::Private)?,
        };
        lock(&binding.ranges).push((start, len, offset));
        self.regions.insert(
            start,
            Region {
                len,
                offset,
                prot,
                binding,
            },
        );
        Ok(())
    }

    /// A new client of `object` for this space, registered with the object.
    fn bind(&self, object: PageMapper, sharing: Sharing) -> Result<ShareArc<Binding>> {
        let ranges: ShareArc<Ranges> =
            ShareArc::new(Mutex::new(crate::sync::Level::Ranges, Vec::new()));
        let client = match &self.revoke {
            None => object.register()?,
            Some(revoke) => {
                let (revoke, ranges, ps) = (revoke.clone(), ranges.clone(), self.page_size);
                object.register_with(move |page: u64, ask: Revocation| {
                    let at = page * ps;
                    let addrs: Vec<u64> = lock(&ranges)
                        .iter()
                        .filter(|&&(_, len, off)| (off..off + len).contains(&at))
                        .map(|&(start, _, off)| start + (at - off))
                        .collect();
                    for a in addrs {
                        revoke(a, ask);
                    }
                })?
            }
        };
        lock(&object.shared.regions).push(Registration {
            space: self.id,
            client: client.id(),
            ranges: ranges.clone(),
        });
        Ok(ShareArc::new(Binding {
            object,
            client,
            ranges,
            sharing,
        }))
    }

    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (&u64, &Region)> {
        self.regions
            .range(..end)
            .filter(move |(&s, r)| s + r.len > start)
    }

    /// Removes every mapping of `[start, start + len)`, splitting the regions it cuts through
    /// (their pieces keep their binding). Unmapping addresses no region covers is not an error.
    pub fn unmap(&mut self, start: u64, len: u64) -> Result<()> {
        let end = self.range(start, len)?;
        let hit: Vec<u64> = self.overlapping(start, end).map(|(&s, _)| s).collect();
        for s in hit {
            let Some(r) = self.regions.remove(&s) else {
                continue;
            };
            let r_end = s + r.len;
            let mut ranges = lock(&r.binding.ranges);
            ranges.retain(|&x| x != (s, r.len, r.offset));
            if s < start {
                ranges.push((s, start - s, r.offset));
            }
            if r_end > end {
                ranges.push((end, r_end - end, r.offset + (end - s)));
            }
            drop(ranges);
            if s < start {
                let left = Region {
                    len: start - s,
                    offset: r.offset,
                    prot: r.prot,
                    binding: r.binding.clone(),
                };
                self.regions.insert(s, left);
            }
            if r_end > end {
                let right = Region {
                    len: r_end - end,
                    offset: r.offset + (end - s),
                    prot: r.prot,
                    binding: r.binding.clone(),
                };
                self.regions.insert(end, right);
            }
        }
        Ok(())
    }

    fn find(&self, addr: u64, access: Access) -> Result<(&Region, Fault)> {
        let (&start, r) = self
            .regions
            .range(..=addr)
            .next_back()
            .filter(|(&s, r)| addr < s + r.len)
            .ok_or(Error::NoRegion { addr })?;
        if access == Access::Write && r.prot == Protection::Read {
            return Err(Error::Protection { addr, access });
        }
        let object_offset = addr - start + r.offset;
        Ok((
            r,
            Fault {
                addr,
                region_start: start,
                object_offset,
                page: object_offset / self.page_size,
                object: r.binding.object.id(),
                prot: r.prot,
            },
        ))
    }

    /// What a fault at `addr` reaches: the region, the object offset and page (no access is
    /// requested). [`Error::NoRegion`] outside every region.
    pub fn translate(&self, addr: u64) -> Result<Fault> {
        self.find(addr, Access::Read).map(|(_, f)| f)
    }

    /// A fault at `addr`: requests `access` to the page the address maps, through the region's
    /// client, waiting as long as it takes ([`crate::Client::request`]). A write fault on a
    /// read-only region is [`Error::Protection`]; outside every region, [`Error::NoRegion`].
    pub fn fault(&self, addr: u64, access: Access) -> Result<Grant<'_>> {
        let (r, f) = self.find(addr, access)?;
        r.binding.client.request(f.page, access)
    }

    /// As [`AddressSpace::fault`], waiting at most `timeout` ([`Error::GrantTimeout`]).
    pub fn fault_timeout(&self, addr: u64, access: Access, timeout: Duration) -> Result<Grant<'_>> {
        let (r, f) = self.find(addr, access)?;
        r.binding.client.request_timeout(f.page, access, timeout)
    }

    /// As [`AddressSpace::fault`], without waiting for other clients ([`Error::WouldBlock`]).
    pub fn try_fault(&self, addr: u64, access: Access) -> Result<Grant<'_>> {
        let (r, f) = self.find(addr, access)?;
        r.binding.client.try_request(f.page, access)
    }

    /// The regions, in address order.
    pub fn regions(&self) -> impl Iterator<Item = RegionInfo> + '_ {
        self.regions.iter().map(|(&start, r)| RegionInfo {
            start,
            len: r.len,
            offset: r.offset,
            prot: r.prot,
            sharing: r.binding.sharing,
            object: r.binding.object.id(),
            client: r.binding.client.id(),
        })
    }
}

/// The regions of `registrations` (one object's) that map byte `at` of the object.
pub(crate) fn regions_at(registrations: &[Registration], at: u64) -> Vec<RegionRef> {
    let mut out = Vec::new();
    for reg in registrations {
        for &(start, len, offset) in lock(&reg.ranges).iter() {
            if (offset..offset + len).contains(&at) {
                out.push(RegionRef {
                    space: reg.space,
                    start,
                    len,
                    offset,
                    client: reg.client,
                });
            }
        }
    }
    out
}
