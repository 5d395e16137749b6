//! An object's place in a chain of copies: the data every object keeps about the frozen layers
//! below it ([`Layer`]), a frozen layer's store ([`FrozenStore`]), and the two operations of the
//! chain its fault path needs ([`Chain`]: resolving a page it does not own through the layers
//! below, breaking a copy-on-write page for a writer).
//!
//! The operations are `copies`' (`copies::Copies` implements [`Chain`]); the front hands them to
//! each object it opens, and a copy passes its source's on. The fault path calls them through
//! this trait, so `object` names nothing of the layer above it and the two do not import each
//! other (SPEC.md §1, layering; `core/tests/layers.rs`). The data stays here because it is the
//! object's: its fault path reads the copy epoch and ownership under its own fill-shard locks.
//! What the fields mean, who changes them and with which orderings: `copies`' module doc.

use super::mapper::{Bound, MapperShared};
use crate::backing::accessor::Accessor;
use crate::backing::anonymous::Anonymous;
use crate::backing::swap::SwapArea;
use crate::error::{Error, Result};
use crate::frames::{Owner, PagesShared};
use crate::pack::EntryWord;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{lock, Arc, Instant, Mutex, MutexGuard, Parked, Parker, ShareArc};
use crate::PageMapper;
use std::collections::HashSet;
use std::io;

/// What an object's fault path asks of the chain of copies it sits in (implemented by
/// `copies::Copies`).
pub(crate) trait Chain: Send + Sync {
    /// Finds `page` in the chain below `this`: the first layer that holds it, resident or
    /// faulted in there, read-pinned; `None` if no layer holds it.
    fn resolve(
        &self,
        this: &Arc<MapperShared>,
        page: u64,
        bound: Bound,
    ) -> Result<Option<Resolved>>;

    /// Gives `this` a private copy of page `page` if its entry (`slot`) is a copy-on-write proxy
    /// whose pinned bits are `allowed` (the caller's own hold), waiting up to `deadline`; into
    /// `frame` (`Filling`, the caller's; freed if unused) if given, else into a frame it obtains.
    fn break_cow(
        &self,
        this: &Arc<MapperShared>,
        page: u64,
        slot: &AtomicU64,
        allowed: u64,
        deadline: Option<Instant>,
        frame: Option<u32>,
    ) -> Result<()>;
}

/// A page found in a frozen layer and read-pinned there, for a proxy.
pub(crate) struct Resolved {
    /// Keeps the layer open until the proxy is published (the proxy then pins its page).
    pub(crate) _layer: PageMapper,
    pub(crate) owner: Owner,
    pub(crate) frame: u32,
}

impl Resolved {
    /// Gives the resolution pin back (the proxy was not published).
    pub(crate) fn unpin(&self, pages: &PagesShared) {
        if let Some(slot) = self.owner.slot() {
            pages.unpin_read(slot);
        }
    }
}

/// A persistent top is about to own `owner`'s page in its file, where the layer `owner` may be
/// reading it from: the layer keeps its frame's content (`DIRTY`: to its swap on reclaim). The
/// caller holds a read pin on the layer's entry, `src`.
pub(crate) fn keep_in_layer(owner: &Owner, src: &AtomicU64) {
    let Some(fs) = owner.mapper.layer.frozen.as_ref() else {
        return;
    };
    if !fs.has_slot(owner.page) {
        // Relaxed: the reclaimer's take CAS comes later in this word's modification order (after
        // the caller's Release unpin), so it sees the bit (`crate::copies`, Orderings).
        src.fetch_or(EntryWord::DIRTY.mask(), Ordering::Relaxed);
    }
}

/// Which pages of a frozen layer of a persistent chain the top object's file still holds.
pub(crate) enum InFile {
    /// Every page (the layer froze an object that had never been copied).
    All,
    /// These pages (the ones the top object wrote between the copy before and this one).
    Pages(HashSet<u64>),
}

/// The store of a frozen layer: its swap slots, and, in a persistent chain, the pages the top
/// object's file holds for it.
pub(crate) struct FrozenStore {
    pub(crate) anon: Anonymous,
    pub(crate) file: Mutex<Option<(ShareArc<dyn Accessor>, InFile)>>,
}

impl FrozenStore {
    pub(crate) fn new(swap: ShareArc<SwapArea>) -> Self {
        Self {
            anon: Anonymous::new(swap),
            file: Mutex::new(crate::sync::Level::LayerFile, None),
        }
    }

    pub(crate) fn has_slot(&self, page: u64) -> bool {
        self.anon.slot_of(page).is_some()
    }

    pub(crate) fn in_file(&self, page: u64) -> Option<ShareArc<dyn Accessor>> {
        match &*lock(&self.file) {
            Some((f, InFile::All)) => Some(f.clone()),
            Some((f, InFile::Pages(p))) if p.contains(&page) => Some(f.clone()),
            _ => None,
        }
    }

    /// Whether this layer holds `page` outside its frames.
    pub(crate) fn owns(&self, page: u64) -> bool {
        self.has_slot(page) || self.in_file(page).is_some()
    }
}

impl Accessor for FrozenStore {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.has_slot(page) {
            return self.anon.fill(page, buf);
        }
        match self.in_file(page) {
            Some(f) => f.fill(page, buf),
            // Resolution asks a layer only for pages it owns (checked under its fill shard lock).
            None => Err(io::Error::other(format!(
                "frozen layer asked for page {page}, which it does not hold"
            ))),
        }
    }

    /// A frozen page is written back only to keep it (to swap): the layer's content never
    /// changes, but a persistent top may be about to overwrite the file's copy.
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        self.anon.flush(page, buf)
    }

    fn writable(&self) -> bool {
        false
    }

    fn persistent(&self) -> bool {
        false
    }

    fn as_anonymous(&self) -> Option<&Anonymous> {
        Some(&self.anon)
    }
}

/// What changes of an object's place in its chain, under `Layer::state`.
pub(crate) struct LayerState {
    /// The frozen layer below: pages this object does not own are read through it.
    pub(crate) backing: Option<PageMapper>,
    /// A persistent object with a backing: the pages it wrote (broke) since its last copy,
    /// which its file now holds for it alone.
    pub(crate) privatized: HashSet<u64>,
}

/// An object's place in a chain of copies (every `MapperShared` has one).
pub(crate) struct Layer {
    /// The operations of the chain (resolution and break), which `copies` implements.
    pub(crate) chain: &'static dyn Chain,
    /// `Some` for a frozen layer (its store, also the object's accessor).
    pub(crate) frozen: Option<ShareArc<FrozenStore>>,
    /// Serializes copy and close of the object.
    pub(crate) copy_lock: Mutex<()>,
    /// A copy is marking and moving the object's pages: breaks of a marked page wait.
    pub(crate) copying: AtomicBool,
    pub(crate) park: Parker,
    /// Bumped by each copy, under every fill-shard lock of the object.
    pub(crate) epoch: AtomicU64,
    /// Hint: the object has a backing (re-checked under `state`).
    pub(crate) layered: AtomicBool,
    /// Copies made of this object (statistics).
    pub(crate) copies: AtomicUsize,
    /// A frozen layer: how many objects have it as their backing (one: it can be collapsed).
    pub(crate) children: AtomicUsize,
    /// Bumped, under every fill-shard lock of the object, when a collapse moves pages into or
    /// out of it: a resolution that found a page nowhere re-walks if a layer's count changed.
    pub(crate) moves: AtomicU64,
    /// Layers collapsed into this object (statistics).
    pub(crate) collapsed: AtomicUsize,
    pub(crate) state: Mutex<LayerState>,
}

impl Layer {
    pub(crate) fn with(chain: &'static dyn Chain, frozen: Option<ShareArc<FrozenStore>>) -> Self {
        Self {
            chain,
            frozen,
            copy_lock: Mutex::new(crate::sync::Level::Copy, ()),
            copying: AtomicBool::new(false),
            park: Parker::new(crate::sync::Level::Park),
            epoch: AtomicU64::new(0),
            layered: AtomicBool::new(false),
            copies: AtomicUsize::new(0),
            children: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            collapsed: AtomicUsize::new(0),
            state: Mutex::new(
                crate::sync::Level::LayerState,
                LayerState {
                    backing: None,
                    privatized: HashSet::new(),
                },
            ),
        }
    }

    /// The layer of an object users hold (opened, or made by a copy).
    pub(crate) fn top(chain: &'static dyn Chain) -> Self {
        Self::with(chain, None)
    }

    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Whether the object has a backing (a hint; ownership decisions re-check under locks and
    /// publications check the epoch).
    #[inline]
    pub(crate) fn is_layered(&self) -> bool {
        // Acquire: pairs with the Release store in `set_backing`.
        self.layered.load(Ordering::Acquire)
    }

    /// The copy epoch. Read under one of the object's fill-shard locks; changed only under all.
    pub(crate) fn epoch(&self) -> u64 {
        // Relaxed: the shard lock orders it (see above).
        self.epoch.load(Ordering::Relaxed)
    }

    pub(crate) fn copy_guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.copy_lock)
    }

    /// Sets the backing (the caller keeps the children counts: see `attach`, `detach`).
    pub(crate) fn set_backing(&self, st: &mut LayerState, below: Option<PageMapper>) {
        // Release: pairs with is_layered's Acquire.
        self.layered.store(below.is_some(), Ordering::Release);
        st.backing = below;
    }

    /// Takes the backing away (a closed object reads nothing through it any more).
    pub(crate) fn take_backing(&self) -> Option<PageMapper> {
        let mut st = lock(&self.state);
        let below = st.backing.take();
        self.set_backing(&mut st, None);
        if let Some(b) = &below {
            detach(b);
        }
        below
    }

    /// A handle on the frozen layer below, if any.
    pub(crate) fn backing(&self) -> Option<PageMapper> {
        lock(&self.state).backing.clone()
    }

    /// Number of frozen layers below (the lookup cost of a miss in pages the object does not own).
    pub(crate) fn depth(&self) -> usize {
        let mut d = 0;
        let mut next = self.backing();
        while let Some(l) = next {
            d += 1;
            next = l.shared.layer.backing();
        }
        d
    }

    /// Whether this object holds `page`'s content itself (see the module doc, Ownership).
    pub(crate) fn owns(&self, page: u64, accessor: &dyn Accessor) -> bool {
        if let Some(fs) = &self.frozen {
            return fs.owns(page);
        }
        if !self.is_layered() {
            return true;
        }
        match accessor.as_anonymous() {
            Some(a) => a.slot_of(page).is_some(),
            None => lock(&self.state).privatized.contains(&page),
        }
    }

    /// If a copy is running, waits (up to `deadline`) until it ends and returns `Ok(true)`.
    pub(crate) fn wait_copy(&self, page: u64, deadline: Option<Instant>) -> Result<bool> {
        // Acquire: pairs with the Release store that ends a copy.
        if !self.copying.load(Ordering::Acquire) {
            return Ok(false);
        }
        let parked = self
            .park
            .park(deadline, || self.copying.load(Ordering::Acquire));
        if parked == Parked::TimedOut {
            return Err(Error::Busy { page });
        }
        Ok(true)
    }
}

impl Layer {
    /// Finds `page` in the frozen layers below `this` (whose layer this is), read-pinned there,
    /// for a proxy: [`Chain::resolve`].
    pub(crate) fn resolve(
        &self,
        this: &Arc<MapperShared>,
        page: u64,
        bound: Bound,
    ) -> Result<Option<Resolved>> {
        self.chain.resolve(this, page, bound)
    }

    /// Gives `this` a private copy of its copy-on-write page `page`: [`Chain::break_cow`].
    pub(crate) fn break_cow(
        &self,
        this: &Arc<MapperShared>,
        page: u64,
        slot: &AtomicU64,
        allowed: u64,
        deadline: Option<Instant>,
        frame: Option<u32>,
    ) -> Result<()> {
        self.chain
            .break_cow(this, page, slot, allowed, deadline, frame)
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        // An object whose close succeeded has no backing left; one that never closed (its last
        // close failed) lets go of its chain here, in a loop.
        let below = lock(&self.state).backing.take();
        if let Some(b) = &below {
            detach(b);
        }
        super::let_go_chain(below);
    }
}

/// One more object has `layer` as its backing.
pub(crate) fn attach(layer: &PageMapper) {
    // Relaxed: a count read as a hint (a collapse re-checks it under locks).
    layer.shared.layer.children.fetch_add(1, Ordering::Relaxed);
}

/// One object less has `layer` as its backing.
pub(crate) fn detach(layer: &PageMapper) {
    // Relaxed: as in attach.
    layer.shared.layer.children.fetch_sub(1, Ordering::Relaxed);
}
