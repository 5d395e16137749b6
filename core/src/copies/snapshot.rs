//! Snapshot: making a copy-on-write copy of an object (`copy`): marking its pages, then
//! freezing them into a new frozen layer.

use super::*;

/// Makes a copy-on-write copy of `handle`'s object (see the module doc): freezes its private
/// pages into a new frozen layer that becomes the backing of both the object and the copy,
/// which is returned (an anonymous object, over the source's swap area if it is anonymous, else
/// over the pool's).
/// With `memory`, the copy's resident pages live there (a mapped copy: a private mapping, SPEC
/// §2.8): it holds no proxies, and its misses copy the layers' bytes in.
pub(crate) fn copy(
    handle: &PageMapper,
    memory: Option<ShareArc<dyn crate::object::memory::PageMemory>>,
) -> Result<PageMapper> {
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
    if this.memory.is_some()
        && !this.accessor.persistent()
        && this.accessor.as_anonymous().is_none()
    {
        // A mapped object's pages stay its own through the copy: the layer must read them from
        // the object's swap slots or file, and this one has neither.
        return Err(Error::Mapped);
    }
    let pages = this.pages.clone();
    let _copy = this.layer.copy_guard();
    if this.is_closed() {
        return Err(Error::Closed);
    }
    let swap = match this.accessor.as_anonymous() {
        Some(a) => a.swap_area().clone(),
        None => this.swap.get()?,
    };
    let deadline = pages.deadline();
    // Release/Acquire with wait_copy: breakers of a marked page see the copy running.
    this.layer.copying.store(true, Ordering::Release);
    let frozen = freeze(this, &swap, deadline);
    this.layer.copying.store(false, Ordering::Release);
    this.layer.park.unpark_all();
    let below = frozen?;
    this.layer.copies.fetch_add(1, Ordering::Relaxed);
    let mut copy = MapperShared::new(
        pages,
        this.swap.clone(),
        ShareArc::new(Anonymous::new(swap)),
        this.limit(),
        Layer::top(this.layer.chain),
    );
    if let Some(m) = memory {
        copy = copy.with_memory(m);
    }
    let copy = Arc::new(copy);
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
            this.swap.clone(),
            store.clone(),
            this.limit(),
            Layer::with(this.layer.chain, Some(store.clone())),
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
                        // With no layer below, the object owns every page: a record left
                        // from before is meaningless, and would be wrong above the new layer.
                        st.privatized.clear();
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
    // A mapped object keeps its pages through the copy (their bytes are its mappings'), so the
    // layer reads them from the object's store: every dirty one is written there first.
    let persistent = this.accessor.persistent() || this.memory.is_some();
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
