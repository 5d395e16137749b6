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
//!   its reverse map (`crate::pages::Frame`): reclaim unmaps proxies nobody pins before taking
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

use crate::accessor::Accessor;
use crate::anonymous::Anonymous;
use crate::error::{Error, Result};
use crate::mapper::{MapperShared, Want};
use crate::pack::EntryWord;
use crate::pages::{CowSource, Freeze, Owner, PagesShared, Publish};
use crate::swap::SwapArea;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{lock, Arc, Instant, Mutex, MutexGuard, Parked, Parker, ShareArc};
use crate::PageMapper;
use std::collections::HashSet;
use std::io;

/// Which pages of a frozen layer of a persistent chain the top object's file still holds.
enum InFile {
    /// Every page (the layer froze an object that had never been copied).
    All,
    /// These pages (the ones the top object wrote between the copy before and this one).
    Pages(HashSet<u64>),
}

/// The store of a frozen layer: its swap slots, and, in a persistent chain, the pages the top
/// object's file holds for it.
pub(crate) struct FrozenStore {
    anon: Anonymous,
    file: Mutex<Option<(ShareArc<dyn Accessor>, InFile)>>,
}

impl FrozenStore {
    fn new(swap: ShareArc<SwapArea>) -> Self {
        Self {
            anon: Anonymous::new(swap),
            file: Mutex::new(None),
        }
    }

    fn has_slot(&self, page: u64) -> bool {
        self.anon.slot_of(page).is_some()
    }

    fn in_file(&self, page: u64) -> Option<ShareArc<dyn Accessor>> {
        match &*lock(&self.file) {
            Some((f, InFile::All)) => Some(f.clone()),
            Some((f, InFile::Pages(p))) if p.contains(&page) => Some(f.clone()),
            _ => None,
        }
    }

    /// Whether this layer holds `page` outside its frames.
    fn owns(&self, page: u64) -> bool {
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
struct LayerState {
    /// The frozen layer below: pages this object does not own are read through it.
    backing: Option<PageMapper>,
    /// A persistent object with a backing: the pages it wrote (broke) since its last copy,
    /// which its file now holds for it alone.
    privatized: HashSet<u64>,
}

/// An object's place in a chain of copies (every `MapperShared` has one).
pub(crate) struct Layer {
    /// `Some` for a frozen layer (its store, also the object's accessor).
    frozen: Option<ShareArc<FrozenStore>>,
    /// Serializes copy and close of the object.
    copy_lock: Mutex<()>,
    /// A copy is marking and moving the object's pages: breaks of a marked page wait.
    copying: AtomicBool,
    park: Parker,
    /// Bumped by each copy, under every fill-shard lock of the object.
    epoch: AtomicU64,
    /// Hint: the object has a backing (re-checked under `state`).
    layered: AtomicBool,
    /// Copies made of this object (statistics).
    copies: AtomicUsize,
    /// A frozen layer: how many objects have it as their backing (one: it can be collapsed).
    children: AtomicUsize,
    /// Bumped, under every fill-shard lock of the object, when a collapse moves pages into or
    /// out of it: a resolution that found a page nowhere re-walks if a layer's count changed.
    moves: AtomicU64,
    /// Layers collapsed into this object (statistics).
    collapsed: AtomicUsize,
    state: Mutex<LayerState>,
}

impl Layer {
    fn with(frozen: Option<ShareArc<FrozenStore>>) -> Self {
        Self {
            frozen,
            copy_lock: Mutex::new(()),
            copying: AtomicBool::new(false),
            park: Parker::new(),
            epoch: AtomicU64::new(0),
            layered: AtomicBool::new(false),
            copies: AtomicUsize::new(0),
            children: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            collapsed: AtomicUsize::new(0),
            state: Mutex::new(LayerState {
                backing: None,
                privatized: HashSet::new(),
            }),
        }
    }

    /// The layer of an object users hold (opened, or made by a copy).
    pub(crate) fn top() -> Self {
        Self::with(None)
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
    fn set_backing(&self, st: &mut LayerState, below: Option<PageMapper>) {
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
    fn backing(&self) -> Option<PageMapper> {
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
    fn wait_copy(&self, page: u64, deadline: Option<Instant>) -> Result<bool> {
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

impl Drop for Layer {
    fn drop(&mut self) {
        // An object whose close succeeded has no backing left; one that never closed (its last
        // close failed) lets go of its chain here, in a loop.
        let below = lock(&self.state).backing.take();
        if let Some(b) = &below {
            detach(b);
        }
        crate::let_go_chain(below);
    }
}

/// One more object has `layer` as its backing.
fn attach(layer: &PageMapper) {
    // Relaxed: a count read as a hint (a collapse re-checks it under locks).
    layer.shared.layer.children.fetch_add(1, Ordering::Relaxed);
}

/// One object less has `layer` as its backing.
fn detach(layer: &PageMapper) {
    // Relaxed: as in attach.
    layer.shared.layer.children.fetch_sub(1, Ordering::Relaxed);
}

/// A page found in a frozen layer and read-pinned there, for a proxy.
pub(crate) struct Resolved {
    /// Keeps the layer open until the proxy is published (the proxy then pins its page).
    _layer: PageMapper,
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

/// Finds `page` in the chain below `this`: the first layer that holds it, resident or faulted in
/// there, read-pinned. `None` if no layer holds it, checked against concurrent collapses (a page
/// moving up between two of our looks would otherwise be missed in both): the walk is redone if
/// any layer's moves count changed meanwhile. On the way, a layer read by one object only is
/// collapsed into it (§2.7 of SPEC.md).
pub(crate) fn resolve(this: &Arc<MapperShared>, page: u64) -> Result<Option<Resolved>> {
    'walk: loop {
        // Our own fill's record does not keep the layer from going: this walk reads the
        // backing again right after.
        try_collapse_for(this, Some(page));
        let mut seen: Vec<(PageMapper, u64)> = Vec::new();
        let mut next = this.layer.backing();
        while let Some(layer) = next {
            let l: &Arc<MapperShared> = &layer.shared;
            try_collapse(l);
            // Acquire: pairs with the Release bump of a collapse (made under l's shard locks).
            let moves = l.layer.moves.load(Ordering::Acquire);
            if let Some((frame, _)) = MapperShared::pin_inner(l, page, Want::Read, true)? {
                let owner = Owner {
                    mapper: l.clone(),
                    page,
                };
                return Ok(Some(Resolved {
                    _layer: layer,
                    owner,
                    frame,
                }));
            }
            next = l.layer.backing();
            seen.push((layer, moves));
        }
        for (l, moves) in &seen {
            if l.shared.layer.moves.load(Ordering::Acquire) != *moves {
                continue 'walk;
            }
        }
        return Ok(None);
    }
}

/// Collapses, into `c`, its backing if `c` is the only object reading through it, as far as it
/// can without waiting (skipped if a copy or close of `c` runs, or the backing holds pages of a
/// persistent object's file, which an anonymous object cannot adopt). Returns whether the
/// backing went away.
fn try_collapse(c: &Arc<MapperShared>) -> bool {
    try_collapse_for(c, None)
}

/// [`try_collapse`] by the fill of `c`'s page `own` (whose record in `c` is the caller's: it
/// does not keep the layer from being unlinked, as the caller's walk reads the backing afresh).
fn try_collapse_for(c: &Arc<MapperShared>, own: Option<u64>) -> bool {
    let Some(fh) = c.layer.backing() else {
        return false;
    };
    collapse_backing(c, &fh, own)
}

/// What a collapse of a frozen layer `f` into its only reader `c` does with `f`'s pages that `c`
/// does not hold itself.
enum Into<'a> {
    /// `c` adopts them, frames and swap slots: `c` is an anonymous object, or a frozen layer of
    /// an anonymous chain, over `f`'s swap area (and `f` holds no file pages).
    Anonymous(&'a Anonymous),
    /// `c` is the persistent object itself, and `f` the only layer below it: every page `c` has
    /// not written since the copy that made `f` is, in `f`'s chain, what `c`'s file holds (the
    /// copy wrote `c`'s dirty pages back first, and every later write of `c` privatized its
    /// page). So `c` adopts `f`'s resident frames (clean copies of its file's pages) and, once
    /// nothing is left in `f`, reads its file alone again.
    Top,
}

/// `try_collapse` once it has read `c`'s backing `fh`, with no lock held: a copy of `c` may
/// have replaced it since (and a close or a collapse of `c` taken it away), so it is re-read
/// under `c`'s copy lock, which those hold.
fn collapse_backing(c: &Arc<MapperShared>, fh: &PageMapper, own: Option<u64>) -> bool {
    let f: &Arc<MapperShared> = &fh.shared;
    // Relaxed: a hint; re-checked under c's copy lock below.
    if f.layer.children.load(Ordering::Relaxed) != 1 {
        return false;
    }
    let Some(fs) = f.layer.frozen.clone() else {
        return false;
    };
    let f_file = lock(&fs.file).as_ref().map(|(a, _)| a.clone());
    let into = match (&c.layer.frozen, f_file) {
        // Two frozen layers of one persistent chain: not collapsed yet. Merging the file
        // records lost a write under the random programs (seed 29: the top's page read an older
        // version), not yet understood; a copy of a persistent object keeps its chain short
        // through the top's own collapse (below), and deeper chains wait for that fix.
        (Some(_), Some(_)) => return false,
        (None, Some(file)) => {
            if !ShareArc::ptr_eq(&c.accessor, &file) || f.layer.is_layered() {
                // Not `f`'s file; or `f` still reads through layers whose frames `c`'s
                // proxies may pin (collapsed into `f` first, by `compact` or later misses).
                return false;
            }
            Into::Top
        }
        (_, None) => match c.accessor.as_anonymous() {
            Some(a) => Into::Anonymous(a),
            None => return false, // a persistent object over an anonymous copy: never so
        },
    };
    let c_anon = match &into {
        Into::Anonymous(a) => Some(*a),
        Into::Top => None,
    };
    if c_anon.is_some_and(|a| !ShareArc::ptr_eq(fs.anon.swap_area(), a.swap_area())) {
        return false;
    }
    let Some(_copy) = crate::sync::try_lock(&c.layer.copy_lock) else {
        return false;
    };
    let pages = &*c.pages;
    let c_shards = c.lock_fill_shards();
    let f_shards = f.lock_fill_shards();
    // Checked under c's shard locks, which every collapse touching `c` holds (into `c`, or of
    // `c` into its child): a collapse of `c` itself into its child, emptied, unlinks `c` and
    // hands `f` to that child; a collapse of `f` into an unlinked `c` would move `f`'s pages
    // into an object nobody reads and drop the child's link below `f` (found by the random
    // programs: seed 53, pages read as zeros and a close waiting for a proxy's pin; scenario
    // C35). Still `c`'s backing? A copy of `c` that ran since `fh` was read moved `c`'s pages
    // into a new layer reading through `f` (whose reader count it left at one): collapsing `f`
    // into `c` now would give `c` `f`'s older pages and drop the new layer from its chain.
    if c.is_closed()
        || f.layer.children.load(Ordering::Relaxed) != 1
        || !lock(&c.layer.state)
            .backing
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(&b.shared, f))
    {
        return false;
    }
    // The pages `c` wrote since its last copy (a persistent top), as of now: a break that
    // privatizes another page before the collapse takes the lists lock publishes `c`'s own
    // frame for it, which `c_has` sees.
    let privatized = match into {
        Into::Top => lock(&c.layer.state).privatized.clone(),
        _ => HashSet::new(),
    };
    // Whether `c` holds page `p` itself: a frame it owns, or else its store (a swap slot, the
    // persistent top's privatized pages). The entry first: a
    // page-out of `p` (which our locks do not stop) records the slot, then empties the entry
    // (Release; owns_frame's load is Acquire), so an entry seen empty has its slot visible. The
    // other order missed both when the page-out ran between the two reads, and the collapse gave
    // `c` the layer's older slot for a page it had written (scenario C22).
    let c_has = |p: u64| {
        c.map.slot(p).is_some_and(|s| pages.owns_frame(c, p, s))
            || match &into {
                Into::Anonymous(a) => a.slot_of(p).is_some(),
                Into::Top => privatized.contains(&p),
            }
    };
    // Pages with a fill in flight in either object stay where they are, frame, slot and all. A
    // fill of the layer checked that the layer holds its page (under the shard lock we now
    // hold) and reads it from the layer's store after: had the page moved, the fill would find
    // it gone (scenario C24). A fill of `c` decided, under its shard lock, whether `c` or its
    // chain holds the page, and publishes into `c`'s entry: a page moved into `c` meanwhile
    // would make it publish over it. Leaving both alone keeps every such decision true, so a
    // collapse needs no epoch bump that would send them back to start again (a miss collapsing
    // its own object's backing threw away the frame it had filled). A later collapse moves
    // them, once published.
    let filling: HashSet<u64> = c_shards
        .iter()
        .chain(f_shards.iter())
        .flat_map(|t| t.keys().copied())
        .collect();
    let mut kept_filling = false;
    let out = pages.collapse(
        f,
        c,
        |p| filling.contains(&p),
        c_has,
        |out| {
            let moved: HashSet<u64> = out.moved.iter().copied().collect();
            let Some(c_anon) = c_anon else {
                return; // the top: `f`'s slots go with `f`
            };
            // The swap slots: with their page if it moved, freed if `c` has its own copy,
            // kept by the layer if the page stays there (or is being filled), else moved (`c`
            // reads it from swap).
            let left: HashSet<u64> = out.left.iter().copied().collect();
            let taken = fs.anon.take_slots_where(|p| {
                let stays = filling.contains(&p) && !moved.contains(&p);
                kept_filling |= stays;
                !stays && !left.contains(&p)
            });
            let mut take = Vec::new();
            for (p, slot) in taken {
                if !moved.contains(&p) && c_has(p) {
                    // `c` has its own copy: the layer's is garbage.
                    let _ = fs.anon.swap().free(slot);
                } else {
                    take.push((p, slot));
                }
            }
            c_anon.adopt_slots(take);
        },
    );
    // Emptied only if no fill is in flight in either object: a fill of `c` may be resolving
    // through `f` (with a handle on it), and must find `f` still in `c`'s chain when it
    // publishes its proxy, or `f`'s last handle would go with the proxy pinning `f`'s page, and
    // `f`'s close would wait for that pin forever (found by the random programs: seed 5).
    let others_filling = f_shards.iter().any(|t| !t.is_empty())
        || c_shards.iter().any(|t| t.keys().any(|&p| Some(p) != own));
    // (Our own page, if the layer holds it, stayed in it: then the layer is not empty either.)
    let emptied = out.left.is_empty() && !kept_filling && !others_filling;
    if emptied {
        // `f` holds nothing now, its file pages included (the top's last layer keeps its
        // record until here): a resolution that still has a handle on it finds nothing there
        // (and, `f`'s moves count bumped below, walks again).
        if let Some((_, in_file)) = &mut *lock(&fs.file) {
            *in_file = InFile::Pages(HashSet::new());
        }
    }
    if let Into::Top = into {
        // Frames that moved up are `c`'s own now (clean copies of its file's pages).
        lock(&c.layer.state)
            .privatized
            .extend(out.moved.iter().copied());
    }
    // Release: pairs with resolve's Acquire (see there); under both objects' shard locks.
    f.layer.moves.fetch_add(1, Ordering::Release);
    c.layer.moves.fetch_add(1, Ordering::Release);
    let mut dropped = Vec::new();
    if emptied {
        // Unlink the empty layer: `c` reads through what it read through.
        let mut st = lock(&c.layer.state);
        let below = f.layer.take_backing();
        if let Some(b) = &below {
            attach(b);
        }
        let old = st.backing.take();
        if below.is_none() {
            // Nothing below: a persistent top owns every page again.
            st.privatized.clear();
        }
        c.layer.set_backing(&mut st, below);
        if let Some(o) = &old {
            detach(o);
        }
        dropped.extend(old);
        c.layer.collapsed.fetch_add(1, Ordering::Relaxed);
    }
    drop(f_shards);
    drop(c_shards);
    // Dropped with no lock held: the layer's last handle closes it.
    drop(dropped);
    emptied
}

/// Collapses every layer of `this`'s chain that only one object reads through, waiting for
/// nothing (see [`crate::PageMapper::compact`]). Returns the depth after.
pub(crate) fn compact(this: &Arc<MapperShared>) -> usize {
    // The top first (it may absorb several layers in turn), then each layer below; then the top
    // again (a persistent top absorbs its layer only once the layers below collapsed into it).
    loop {
        let mut any = false;
        while try_collapse(this) {
            any = true;
        }
        let mut next = this.layer.backing();
        while let Some(l) = next {
            while try_collapse(&l.shared) {
                any = true;
            }
            next = l.shared.layer.backing();
        }
        if !any {
            return this.layer.depth();
        }
    }
}

/// Gives `this` a private copy of `page` if its entry (`slot`) is a copy-on-write proxy, once
/// the pins and holders of the entry are exactly `allowed` (0 for a writer that holds nothing;
/// a reader's own hold bits for an upgrade). Returns when the entry is no longer `COW` (broken
/// by us or by someone else) or no longer names a frame (unmapped: the caller faults again).
pub(crate) fn break_cow(
    this: &Arc<MapperShared>,
    page: u64,
    slot: &crate::sync::atomic::AtomicU64,
    allowed: u64,
    deadline: Option<Instant>,
) -> Result<()> {
    let pages = &*this.pages;
    loop {
        // Acquire: pairs with the publication of the entry (the proxy's frame bytes).
        let e = EntryWord(slot.load(Ordering::Acquire));
        let Some(f) = e.frame() else { return Ok(()) };
        if !e.cow() {
            return Ok(());
        }
        if e.reclaiming() || e.0 & EntryWord::PINNED_BITS != allowed {
            if allowed != 0 && !e.reclaiming() {
                // A holder's upgrade: which bits are its own hold depends on the entry's form
                // (its inline HOLD bit, or EXT_READ out of line), which may have changed since
                // the caller computed `allowed` (a page error recorded or cleared moves the page
                // out of line or back). Waiting here for the old form hung the upgrade forever
                // (found by the random programs: seed 13): the caller polls again, computes its
                // hold afresh, and waits for the entry itself if the page is not its alone.
                return Ok(());
            }
            if pages.wait_entry(slot, e, deadline) == Parked::TimedOut {
                return Err(Error::Busy { page });
            }
            continue;
        }
        match pages.cow_source(f, this, page, slot) {
            CowSource::Changed => continue,
            CowSource::Own => {
                // A private page a copy marked: that copy turns it into a proxy; if none runs
                // (it failed), the mark is stale: drop it.
                if !this.layer.wait_copy(page, deadline)? {
                    pages.unmark_own(f, this, page, slot);
                }
            }
            CowSource::Layer(owner) => {
                if copy_out(this, page, slot, allowed, deadline, f, owner)? {
                    return Ok(());
                }
            }
        }
    }
}

/// The break proper: copies the shared frame `f` (of layer page `owner`) into a new frame and
/// publishes it as `this`'s private page. `Ok(false)`: the proxy changed meanwhile, look again.
fn copy_out(
    this: &Arc<MapperShared>,
    page: u64,
    slot: &crate::sync::atomic::AtomicU64,
    allowed: u64,
    deadline: Option<Instant>,
    f: u32,
    owner: Owner,
) -> Result<bool> {
    let pages = &*this.pages;
    let Some(src) = owner.slot() else {
        return Ok(false);
    };
    // Our own read pin on the layer's page while we copy it (reclaim may unmap the proxy, and
    // with it the proxy's pin, at any time).
    // Relaxed: a guess for the pin's CAS.
    match pages.try_pin_read(src, EntryWord(src.load(Ordering::Relaxed))) {
        Ok(p) if p.frame() == Some(f) => {}
        Ok(_) => {
            pages.unpin_read(src);
            return Ok(false);
        }
        Err(_) => return Ok(false),
    }
    let f2 = match pages.obtain() {
        Ok(f2) => f2,
        Err(e) => {
            pages.unpin_read(src);
            return Err(e);
        }
    };
    {
        let _from = pages.track(f).shared();
        let _to = pages.track(f2).exclusive();
        // SAFETY: our read pin on the owner's entry keeps `f` resident, and a frozen layer has
        // no writer (I4); `f2` is Filling and ours alone (I1). Distinct frames do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(pages.bytes(f), pages.bytes(f2), pages.page_size())
        };
    }
    pages.counters.cow_breaks.incr();
    let persistent = this.accessor.persistent();
    if persistent
        && owner
            .mapper
            .layer
            .frozen
            .as_ref()
            .is_some_and(|fs| !fs.has_slot(page))
    {
        // The top is about to own this page in its file, where the layer may be reading it
        // from: the layer keeps its frame's content (dirty: to swap on reclaim).
        // Relaxed: see the module doc (Orderings).
        src.fetch_or(EntryWord::DIRTY.mask(), Ordering::Relaxed);
    }
    let me = Owner {
        mapper: this.clone(),
        page,
    };
    loop {
        // Anonymous: the private page is not in the object's swap yet (dirty). Persistent: the
        // copied bytes are what the file holds for the page (clean), and from now on the
        // object's fills read the file for it.
        let r = pages.publish_break(f, f2, slot, allowed, !persistent, me.clone(), || {
            if persistent {
                lock(&this.layer.state).privatized.insert(page);
            }
        });
        match r {
            Publish::Done => {
                // Ours and the proxy's.
                pages.unpin_read(src);
                pages.unpin_read(src);
                return Ok(true);
            }
            Publish::Changed => {
                pages.free(f2);
                pages.unpin_read(src);
                return Ok(false);
            }
            Publish::Busy(cur) => {
                if allowed != 0 {
                    // A holder's upgrade: look again from the caller's poll (see break_cow).
                    pages.free(f2);
                    pages.unpin_read(src);
                    return Ok(false);
                }
                if pages.wait_entry(slot, cur, deadline) == Parked::TimedOut {
                    pages.free(f2);
                    pages.unpin_read(src);
                    return Err(Error::Busy { page });
                }
            }
        }
    }
}

/// Makes a copy-on-write copy of `handle`'s object (see the module doc): freezes its private
/// pages into a new frozen layer that becomes the backing of both the object and the copy,
/// which is returned (an anonymous object, over the source's swap area if it is anonymous, else
/// over the pool's).
pub(crate) fn copy(handle: &PageMapper) -> Result<PageMapper> {
    let this: &Arc<MapperShared> = &handle.shared;
    if this.layer.is_frozen() {
        return Err(Error::Invariant(
            "a frozen layer was asked for a copy".into(),
        ));
    }
    // First collapse what only this object still reads (the layer below, and what only that
    // layer reads), so that copies made and dropped in turn (a snapshot per checkpoint) keep the
    // chain short without a `compact`: two levels, so that the cost does not grow with the
    // number of copies still alive.
    if let Some(below) = this.layer.backing() {
        while try_collapse(&below.shared) {}
    }
    while try_collapse(this) {}
    let pages = this.pages.clone();
    let _copy = this.layer.copy_guard();
    if this.is_closed() {
        return Err(Error::Closed);
    }
    let swap = match this.accessor.as_anonymous() {
        Some(a) => a.swap_area().clone(),
        None => pages.swap()?,
    };
    let deadline = pages.deadline();
    // Release/Acquire with wait_copy: breakers of a marked page see the copy running.
    this.layer.copying.store(true, Ordering::Release);
    let frozen = freeze(this, &swap, deadline);
    this.layer.copying.store(false, Ordering::Release);
    this.layer.park.unpark_all();
    let below = frozen?;
    this.layer.copies.fetch_add(1, Ordering::Relaxed);
    let copy = Arc::new(MapperShared::new(
        pages,
        ShareArc::new(Anonymous::new(swap)),
        this.limit(),
        Layer::top(),
    ));
    {
        let mut st = lock(&copy.layer.state);
        attach(&below);
        copy.layer.set_backing(&mut st, Some(below));
    }
    Ok(PageMapper::from_shared(copy))
}

/// Marks, then freezes, until the freeze finds the object as marked. Returns a handle on the
/// new frozen layer (the object's backing now holds another).
fn freeze(
    this: &Arc<MapperShared>,
    swap: &ShareArc<SwapArea>,
    deadline: Option<Instant>,
) -> Result<PageMapper> {
    let pages = &*this.pages;
    loop {
        mark(this, deadline)?;
        let store = ShareArc::new(FrozenStore::new(swap.clone()));
        let to = Arc::new(MapperShared::new(
            this.pages.clone(),
            store.clone(),
            this.limit(),
            Layer::with(Some(store.clone())),
        ));
        let mut handle = None;
        let shards = this.lock_fill_shards();
        let r = pages.freeze(this, &to, || {
            match this.accessor.as_anonymous() {
                Some(a) => store.anon.adopt_slots(a.take_slots()),
                None => {
                    let mut st = lock(&this.layer.state);
                    let in_file = if st.backing.is_some() {
                        InFile::Pages(std::mem::take(&mut st.privatized))
                    } else {
                        InFile::All
                    };
                    *lock(&store.file) = Some((this.accessor.clone(), in_file));
                }
            }
            let mut st = lock(&this.layer.state);
            // The layer below moves from `this` to `to` (its children count is unchanged).
            let below = st.backing.take();
            {
                let mut to_st = lock(&to.layer.state);
                to.layer.set_backing(&mut to_st, below);
            }
            let h = PageMapper::from_shared(to.clone());
            attach(&h);
            this.layer.set_backing(&mut st, Some(h.clone()));
            handle = Some(h);
        });
        match r {
            Freeze::Done => {
                this.layer.epoch.fetch_add(1, Ordering::Relaxed);
                drop(shards);
                return handle.ok_or_else(|| Error::Invariant("freeze made no layer".into()));
            }
            Freeze::Restart(page, seen) => {
                drop(shards);
                drop(to);
                // Wait only for what ends by itself and changes the entry as it ends (a reclaim,
                // a write guard; `mark` would skip a marked page being reclaimed, and restarting
                // at once would spin). Anything else is `mark`'s: a page a writer left dirty in a
                // persistent object changes only once written back, which `mark` does, so
                // waiting here for it to change was a lost wake-up (scenario C18).
                if seen.reclaiming() || seen.writer() {
                    if let Some(slot) = this.map.slot(page) {
                        if pages.wait_entry(slot, seen, deadline) == Parked::TimedOut {
                            return Err(Error::Busy { page });
                        }
                    }
                }
            }
        }
    }
}

/// The copy's first phase, with no lock held: marks every private page `COW` (so no writer can
/// start on it), waiting for writers to leave (client write holders are asked to downgrade) and
/// reclaims to finish; writes back the dirty pages of a persistent object (its frozen layer will
/// read them from its file).
fn mark(this: &Arc<MapperShared>, deadline: Option<Instant>) -> Result<()> {
    let pages = &*this.pages;
    let persistent = this.accessor.persistent();
    for (page, _) in this.map.entries() {
        let Some(slot) = this.map.slot(page) else {
            continue;
        };
        loop {
            let e = EntryWord(slot.load(Ordering::Acquire));
            let Some(f) = e.frame() else { break };
            if e.cow() && !(persistent && e.dirty()) {
                break; // a proxy, or marked already
            }
            let writing =
                e.writer() || e.0 & (EntryWord::HOLD_WRITE_BITS | EntryWord::EXT_WRITE.mask()) != 0;
            if e.reclaiming() || writing {
                if writing && e.held() {
                    this.arb
                        .ask(pages, slot, page, crate::arbitration::Revocation::Downgrade);
                }
                if pages.wait_entry(slot, e, deadline) == Parked::TimedOut {
                    return Err(Error::Busy { page });
                }
                continue;
            }
            if !e.cow() {
                // AcqRel: from here on writers see COW (and break, or wait for this copy).
                if slot
                    .compare_exchange(
                        e.0,
                        e.0 | EntryWord::COW.mask(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    continue;
                }
            }
            if persistent && e.dirty() {
                let Ok(pinned) = pages.try_pin_read(slot, e.with(EntryWord::COW, true)) else {
                    continue;
                };
                let r = this.write_back_pinned(page, slot, pinned.frame().unwrap_or(f));
                pages.unpin_read(slot);
                r?;
                continue;
            }
            break;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::Freeze;
    use crate::{Access, Pages};

    const PAGE: usize = 64;

    /// A pool of `frames` frames whose waits give up after 3 seconds.
    fn pool(frames: u64) -> Pages {
        Pages::builder()
            .page_size(PAGE)
            .frames(frames)
            .wait_bound(Some(std::time::Duration::from_secs(3)))
            .build()
            .unwrap()
    }

    /// An anonymous object of one page in a pool of three frames (waits bounded).
    fn anonymous() -> (Pages, PageMapper) {
        let pages = pool(3);
        let x = anonymous_in(&pages).1;
        (pages, x)
    }

    /// Another anonymous object of one page (its own swap area) in `pages`.
    fn anonymous_in(pages: &Pages) -> (ShareArc<SwapArea>, PageMapper) {
        let swap = ShareArc::new(SwapArea::temporary(PAGE, 8).unwrap());
        let x = pages
            .open(ShareArc::new(Anonymous::new(swap.clone())), PAGE as u64)
            .unwrap();
        (swap, x)
    }

    /// A copy's freeze of `x` as `copy` runs it once its marking is done (under `x`'s fill-shard
    /// locks, into a new empty layer), moving nothing else if it restarts.
    fn freeze_now(x: &PageMapper) -> Freeze {
        let this: &Arc<MapperShared> = &x.shared;
        let swap = this.accessor.as_anonymous().unwrap().swap_area().clone();
        let store = ShareArc::new(FrozenStore::new(swap));
        let to = Arc::new(MapperShared::new(
            this.pages.clone(),
            store.clone(),
            this.limit(),
            Layer::with(Some(store)),
        ));
        let _shards = this.lock_fill_shards();
        this.pages.freeze(this, &to, || {})
    }

    /// A page filled and written between a copy's marking and its freeze (the marking found it
    /// absent, so it asked no writer to finish): the freeze must see the writer still at work
    /// and restart, not make the page a read-only proxy under a live write guard, whose later
    /// bytes would reach the snapshot. Played by hand: a held write guard, then the freeze.
    /// (Mutation testing: no scenario puts a writer's bit on the entry at that moment.)
    /// A collapse that read `c`'s backing before a copy of `c` replaced it: the copy moved
    /// `c`'s pages into a new layer reading through the old backing (whose reader count stays
    /// one), so only the backing itself shows the change. Collapsing the old backing into `c`
    /// then would give `c` the layer's older pages and drop the new layer from its chain.
    /// Played by hand: the backing is read, the copy runs, then the rest of the collapse.
    /// (Found by mutation testing: the reader count's re-check is what the code relied on.)
    #[test]
    fn a_collapse_that_a_copy_overtook_leaves_the_chain_alone() {
        let pages = pool(2);
        let swap = ShareArc::new(SwapArea::temporary(PAGE, 32).unwrap());
        let x = pages
            .open(ShareArc::new(Anonymous::new(swap.clone())), PAGE as u64)
            .unwrap();
        x.write(0).unwrap()[0] = 1;
        let y = x.copy().unwrap();
        y.write(0).unwrap()[0] = 2;
        drop(x);
        // The collapse reads Y's backing (the layer holding 1, read by Y alone) ...
        let seen = y.shared.layer.backing().expect("a backing");
        assert_eq!(seen.shared.layer.children.load(Ordering::SeqCst), 1);
        // ... a copy of Y moves Y's page (2) into a new layer above it ...
        let z = y.copy().unwrap();
        // ... and everything is paged out.
        let other = pages
            .open(ShareArc::new(Anonymous::new(swap.clone())), 4 * PAGE as u64)
            .unwrap();
        for p in 0..4 {
            other.write(p).unwrap()[0] = 9;
        }
        assert!(
            !collapse_backing(&y.shared, &seen, None),
            "collapsed a stale backing"
        );
        assert_eq!(y.read(0).unwrap()[0], 2, "Y lost its page");
        assert_eq!(z.read(0).unwrap()[0], 2, "the copy lost its snapshot");
        // The old layer now collapses into the new one (read by Y and the copy: it stays).
        assert_eq!(y.compact(), 1);
        assert_eq!(y.read(0).unwrap()[0], 2);
        assert_eq!(z.read(0).unwrap()[0], 2);
        pages.check_invariants().unwrap();
    }

    /// A break that found its proxy's frame and owner, and then found the owner's entry naming
    /// another frame (the frame was reclaimed from the owner, the owner's page refaulted
    /// elsewhere, and the proxy made again for the frame's next owner), must look again, not copy
    /// a frame it holds no pin on and publish it with pins counted against the wrong entry.
    /// Played by hand: `copy_out` is given X0's proxy frame with, as its owner, another object's
    /// page in another frame. (Mutation testing: no scenario reaches this five-party window.)
    #[test]
    fn a_break_whose_owner_names_another_frame_looks_again() {
        let (pages, x) = anonymous();
        x.write(0).unwrap()[0] = 5;
        let y = x.copy().unwrap();
        let sx = x.shared.map.slot(0).unwrap();
        let seen = EntryWord(sx.load(Ordering::SeqCst));
        let f = seen.frame().unwrap();
        assert!(seen.cow());
        let (_, z) = anonymous_in(&pages);
        z.write(0).unwrap()[0] = 7;
        let sz = z.shared.map.slot(0).unwrap();
        let z_seen = sz.load(Ordering::SeqCst);
        assert_ne!(EntryWord(z_seen).frame(), Some(f));
        let stale = Owner {
            mapper: (*z.shared).clone(),
            page: 0,
        };
        let this: &Arc<MapperShared> = &x.shared;
        let r = copy_out(this, 0, sx, 0, None, f, stale);
        assert!(
            matches!(r, Ok(false)),
            "a break copied through a stale owner: {r:?}"
        );
        assert_eq!(sx.load(Ordering::SeqCst), seen.raw(), "X0's proxy changed");
        // (Its look at the other page counts as a use: the referenced bit may be set.)
        let referenced = EntryWord::REFERENCED.mask();
        assert_eq!(
            sz.load(Ordering::SeqCst) & !referenced,
            z_seen & !referenced,
            "the other page's pins changed"
        );
        // The break proper still works.
        x.write(0).unwrap()[0] = 6;
        assert_eq!(y.read(0).unwrap()[0], 5);
        assert_eq!(z.read(0).unwrap()[0], 7);
        let c = pages.check_invariants().unwrap();
        assert_eq!(c.pinned, 0, "{c:?}");
    }

    /// A file that refuses every write-back while `broken` is set.
    #[derive(Default)]
    struct Fragile {
        pages: Mutex<std::collections::HashMap<u64, Vec<u8>>>,
        broken: AtomicBool,
    }

    impl Accessor for Fragile {
        fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
            match lock(&self.pages).get(&page) {
                Some(b) => buf.copy_from_slice(b),
                None => buf.fill(0),
            }
            Ok(())
        }
        fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(5));
            }
            lock(&self.pages).insert(page, buf.to_vec());
            Ok(())
        }
    }

    /// The source of a copy is dropped while its file refuses writes: its last handle's close
    /// fails, so the source stays (its written page resident and dirty: nothing is lost), still
    /// counted as a reader of the layer it shares with the copy. Once the file recovers and a
    /// reclaim writes the page back, the source goes, and with it its count on the layer (which
    /// a collapse needs at one). (Mutation testing: the layer's drop not detaching its backing
    /// after a failed close kept the count one too high; only an anonymous chain collapses,
    /// where such a close takes a reclaim slower than the wait bound, so the count is checked.)
    #[test]
    fn a_reader_gone_after_a_failed_close_leaves_the_layers_count() {
        let pages = pool(3);
        let file = ShareArc::new(Fragile::default());
        let x = pages.open(file.clone(), PAGE as u64).unwrap();
        x.write(0).unwrap()[0] = 1;
        let y = x.copy().unwrap();
        x.write(0).unwrap()[0] = 2;
        let layer = y.shared.layer.backing().expect("the copy reads a layer");
        let readers = || layer.shared.layer.children.load(Ordering::SeqCst);
        assert_eq!(readers(), 2);
        file.broken.store(true, Ordering::SeqCst);
        drop(x);
        assert_eq!(readers(), 2, "the source still reads the layer");
        file.broken.store(false, Ordering::SeqCst);
        let (_, z) = anonymous_in(&pages);
        let other = pages
            .open(ShareArc::new(crate::MemoryAccessor::new()), 4 * PAGE as u64)
            .unwrap();
        for p in 0..4 {
            drop(other.read(p).unwrap());
        }
        drop(z);
        assert_eq!(
            lock(&file.pages).get(&0).map(|b| b[0]),
            Some(2),
            "the write was lost"
        );
        assert_eq!(readers(), 1, "the source's count outlived it");
        assert_eq!(y.read(0).unwrap()[0], 1);
    }

    #[test]
    fn a_freeze_restarts_for_a_plain_writer_at_work() {
        let (_pages, x) = anonymous();
        let mut g = x.write(0).unwrap();
        g[0] = 5;
        match freeze_now(&x) {
            Freeze::Restart(0, e) => assert!(e.writer(), "{e:?}"),
            Freeze::Restart(p, e) => panic!("restarted on page {p}: {e:?}"),
            Freeze::Done => panic!("froze a page under a write guard"),
        }
        g[0] = 6;
        drop(g);
        let y = x.copy().unwrap();
        assert_eq!(y.read(0).unwrap()[0], 6);
        x.write(0).unwrap()[0] = 7;
        assert_eq!(
            y.read(0).unwrap()[0],
            6,
            "a later write reached the snapshot"
        );
    }

    /// As above for a client's write grant (a hold, no writer bit): the freeze must restart.
    #[test]
    fn a_freeze_restarts_for_a_clients_write_grant() {
        let (_pages, x) = anonymous();
        let c = x.register().unwrap();
        let mut g = c.request(0, Access::Write).unwrap();
        g.bytes_mut().unwrap()[0] = 5;
        match freeze_now(&x) {
            Freeze::Restart(0, e) => {
                assert!(e.0 & EntryWord::HOLD_WRITE_BITS != 0, "{e:?}")
            }
            Freeze::Restart(p, e) => panic!("restarted on page {p}: {e:?}"),
            Freeze::Done => panic!("froze a page under a write grant"),
        }
        g.bytes_mut().unwrap()[0] = 6;
        g.release().unwrap();
        let y = x.copy().unwrap();
        assert_eq!(y.read(0).unwrap()[0], 6);
    }
}
