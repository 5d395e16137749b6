//! The reverse map (seed 003): from a frame to everything that uses it.
//!
//! A frame's *owner* is the page whose content it holds (an object's page, or a frozen layer's);
//! its *proxies* are the pages of other objects that map it copy-on-write (`crate::copies`). Both
//! are kept with the frame itself (`frames::Frame`), under the lists lock, and are what reclaim
//! and copy-on-write breaking use: reclaim unmaps the proxies nobody pins before taking a frame
//! and asks the clients holding it to let go; a break finds the layer it copies from; `close`
//! unmaps an object's proxies. [`crate::Pages::rmap`] reports the whole picture for one frame:
//! owner, proxies, the clients holding each page, the regions of address spaces
//! ([`crate::regions`]) that map each page, and the mappings of real memory ([`crate::Mapping`])
//! whose page tables map it (an object's mappings are its own reverse map: reclaim takes a page
//! away from each of them before the write-back, SPEC §2.8).
//!
//! Memory per frame (SPEC.md §3): 8 bytes of lifecycle tag, 16 of owner (object, page), 8 of
//! proxy-list pointer (a shared frame adds 16 bytes per proxy), 12 of queue link.

use crate::arbitration::Access;
use crate::frames::{Owner, PagesShared};
use crate::pack::Tag;
use crate::regions::RegionRef;

/// A page of an object (or of a frozen layer), as the reverse map names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageRef {
    /// The object's id ([`crate::PageMapper::id`]).
    pub object: u64,
    /// The page.
    pub page: u64,
}

/// A client holding a page that maps the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Holder {
    /// The object and page through which it holds the frame.
    pub at: PageRef,
    /// The client's id within that object.
    pub client: u32,
    /// Its access.
    pub access: Access,
}

/// A mapping of this process's memory where a frame's page is mapped ([`FrameMap::mappings`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappedAt {
    /// The object and page mapped there.
    pub at: PageRef,
    /// The page's address in the mapping ([`crate::Mapping::as_ptr`] plus the page's offset).
    pub addr: usize,
    /// Whether its table entry lets a store through (else a store faults to pagecore's
    /// handler, or is refused: a read-only mapping).
    pub writable: bool,
}

/// Everything that uses one frame (a racy snapshot: exact while nothing else runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameMap {
    /// The frame.
    pub frame: u32,
    /// Its lifecycle state.
    pub state: Tag,
    /// The page whose content it holds (`Resident` frames only).
    pub owner: Option<PageRef>,
    /// The other pages mapping it copy-on-write.
    pub proxies: Vec<PageRef>,
    /// The clients holding it, through the owner or a proxy.
    pub holders: Vec<Holder>,
    /// The regions of address spaces mapping it, through the owner or a proxy.
    pub regions: Vec<RegionRef>,
    /// The mappings of this process's memory ([`crate::Mapping`]) whose page tables map it
    /// now: every mapping of the owner's object that touched the page since it was last taken
    /// away (reclaim takes it away from all of them, through the object's mappings, before it
    /// writes the page back).
    pub mappings: Vec<MappedAt>,
}

fn page_ref(o: &Owner) -> PageRef {
    PageRef {
        object: o.mapper.id,
        page: o.page,
    }
}

pub(crate) fn frame_map(pages: &PagesShared, frame: u32) -> Option<FrameMap> {
    let (state, owner, proxies) = pages.frame_map(frame)?;
    let mut map = FrameMap {
        frame,
        state,
        owner: owner.as_ref().map(page_ref),
        proxies: proxies.iter().map(page_ref).collect(),
        holders: Vec::new(),
        regions: Vec::new(),
        mappings: Vec::new(),
    };
    let ps = pages.page_size() as u64;
    for o in owner.iter().chain(&proxies) {
        if let Some(slot) = o.slot() {
            for (client, access) in o.mapper.arb.holders(slot, o.page, frame) {
                map.holders.push(Holder {
                    at: page_ref(o),
                    client,
                    access,
                });
            }
        }
        if let Some(m) = &o.mapper.memory {
            map.mappings.extend(
                m.mapped_at(o.page)
                    .into_iter()
                    .map(|(addr, writable)| MappedAt {
                        at: page_ref(o),
                        addr,
                        writable,
                    }),
            );
        }
        let regs = crate::sync::lock(&o.mapper.regions);
        map.regions
            .extend(crate::regions::regions_at(&regs, o.page * ps));
    }
    Some(map)
}

impl crate::pages::Pages {
    /// The reverse map of frame `frame`: its state, the page it holds, the pages mapping it
    /// copy-on-write, the clients holding it, the regions mapping it and the mappings of real
    /// memory whose page tables map it ([`FrameMap`]).
    /// `None` for a frame index beyond the pool.
    ///
    /// ```
    /// use pagecore::{Access, MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(64).frames(4).build()?;
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
    /// let copy = obj.copy()?;
    /// let client = copy.register()?;
    /// let g = client.request(5, Access::Read)?;           // faulted in by the frozen layer
    /// let map = pages.rmap(g.frame()).unwrap();
    /// assert_eq!(map.proxies.len(), 1);                    // the copy's page 5 maps it
    /// assert_eq!(map.holders.len(), 1);                    // and the client holds it
    /// assert_eq!(map.holders[0].at.object, copy.id());
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn rmap(&self, frame: u32) -> Option<FrameMap> {
        frame_map(&self.shared, frame)
    }
}
