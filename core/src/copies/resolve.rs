//! Resolution and break: finding a page in the frozen layers below an object (for a proxy), and
//! giving a writer a private copy of a copy-on-write page (`break_cow`, `copy_out`).

use super::*;

/// Finds `page` in the chain below `this`: the first layer that holds it, resident or faulted in
/// there, read-pinned. `None` if no layer holds it, checked against concurrent collapses (a page
/// moving up between two of our looks would otherwise be missed in both): the walk is redone if
/// any layer's moves count changed meanwhile. On the way, a layer read by one object only is
/// collapsed into it (§2.7 of SPEC.md).
pub(crate) fn resolve(
    this: &Arc<MapperShared>,
    page: u64,
    bound: Bound,
) -> Result<Option<Resolved>> {
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
            if let Some((frame, _)) =
                MapperShared::pin_inner(l, page, Want::Read, bound.in_layer())?
            {
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
    break_cow_with(this, page, slot, allowed, deadline, None)
}

/// As [`break_cow`], with `frame` (`Filling`, the caller's) for the private copy if one is
/// needed, instead of obtaining one while the layer's page is pinned: an awaited write obtains
/// it first, polled (SPEC §5), so that it never waits for a frame while it pins a frame (four
/// breakers pinning the four frames of a pool, each waiting for a fifth, was a deadlock until
/// the pool's bound: stop 33). Freed if unused.
pub(crate) fn break_cow_with(
    this: &Arc<MapperShared>,
    page: u64,
    slot: &crate::sync::atomic::AtomicU64,
    allowed: u64,
    deadline: Option<Instant>,
    frame: Option<u32>,
) -> Result<()> {
    let mut spare = frame;
    let r = break_loop(this, page, slot, allowed, deadline, &mut spare);
    if let Some(f) = spare {
        this.pages.free(f);
    }
    r
}

fn break_loop(
    this: &Arc<MapperShared>,
    page: u64,
    slot: &crate::sync::atomic::AtomicU64,
    allowed: u64,
    deadline: Option<Instant>,
    spare: &mut Option<u32>,
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
                // (it failed), the mark is stale: drop it. A mapped file's page that its layers
                // read from its file keeps its mark until its first writer makes it the file's
                // own (`privatize`).
                if !this.layer.wait_copy(page, deadline)? {
                    if this.memory.is_some()
                        && this.accessor.persistent()
                        && !this.layer.owns(page, &*this.accessor)
                    {
                        privatize(this, page, slot, f)?;
                    } else {
                        pages.unmark_own(f, this, page, slot, || {});
                    }
                }
            }
            CowSource::Layer(owner) => {
                if copy_out(this, page, slot, allowed, deadline, f, owner, spare)? {
                    return Ok(());
                }
            }
        }
    }
}

/// The first write of a mapped file's page that its layers still read from its file (SPEC §2.8,
/// copies of a mapped object): the page's bytes are already the object's (in its mapping's
/// memory, and the same as the layer's), so nothing is copied into a frame and nothing is read;
/// the layer that holds the page keeps its content, written from the object's page (read-pinned
/// here; its mark keeps writers out) into that layer's swap unless it has it there already
/// (`keep_in_swap`). Then, under the lists lock, the mark goes **and** the page is recorded as
/// the file's own, in one critical section: a copy's freeze, which takes that record under the
/// same lock, sees both or neither.
fn privatize(
    this: &Arc<MapperShared>,
    page: u64,
    slot: &crate::sync::atomic::AtomicU64,
    f: u32,
) -> Result<()> {
    let pages = &*this.pages;
    // Acquire: pairs with the entry's publication (its bytes).
    let e = EntryWord(slot.load(Ordering::Acquire));
    if e.frame() != Some(f) || !e.cow() {
        return Ok(()); // changed meanwhile: the caller looks again
    }
    if pages.try_pin_read(slot, e).is_err() {
        return Ok(());
    }
    let kept = keep_in_swap(this, page, f);
    if kept.is_ok() {
        pages.unmark_own(f, this, page, slot, || {
            let mut st = lock(&this.layer.state);
            // With no layer left (collapsed meanwhile), the object owns every page already.
            if st.backing.is_some() {
                st.privatized.insert(page);
            }
        });
    }
    pages.unpin_read(slot);
    kept
}

/// For [`privatize`]: finds the first layer below `this` that holds `page` (resident, in a swap
/// slot, or in the file) and, unless it holds it in swap already, writes `this`'s bytes of the
/// page (frame `f`, read-pinned by the caller) into a slot of that layer's. A fill of the layer
/// meanwhile reads the file or the slot: the same bytes, as the file is not written until the
/// page is recorded as the object's own.
fn keep_in_swap(this: &Arc<MapperShared>, page: u64, f: u32) -> Result<()> {
    let mut next = this.layer.backing();
    while let Some(l) = next {
        let ls: &Arc<MapperShared> = &l.shared;
        let Some(fs) = ls.layer.frozen.as_ref() else {
            return Ok(());
        };
        if fs.has_slot(page) {
            return Ok(());
        }
        if ls.map.find(page).frame().is_some() || fs.in_file(page).is_some() {
            let n = this.pages.page_size();
            let r = {
                let _t = this.page_track(page, f).shared();
                // SAFETY: our read pin keeps the page resident and its bytes ours to read; its
                // mark keeps writers out, and a clean mapped page is mapped read-only (IM1).
                let buf = unsafe { std::slice::from_raw_parts(this.page_ptr(page, f), n) };
                crate::backing::accessor::guarded("flush", || {
                    crate::backing::accessor::Accessor::flush(&fs.anon, page, buf)
                })
            };
            return r.map_err(|e| Error::WriteBack {
                object: this.id,
                page,
                source: ShareArc::new(e),
            });
        }
        next = ls.layer.backing();
    }
    Ok(())
}

/// The break proper: copies the shared frame `f` (of layer page `owner`) into a new frame and
/// publishes it as `this`'s private page. `Ok(false)`: the proxy changed meanwhile, look again.
/// The new frame is `spare`'s if the caller brought one (taken once the layer's page is pinned,
/// and given back if the copy is not published), else obtained.
#[allow(clippy::too_many_arguments)]
pub(super) fn copy_out(
    this: &Arc<MapperShared>,
    page: u64,
    slot: &crate::sync::atomic::AtomicU64,
    allowed: u64,
    deadline: Option<Instant>,
    f: u32,
    owner: Owner,
    spare: &mut Option<u32>,
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
    // A frame the caller brought goes back to it if the copy is not published (the caller's
    // next try uses it, and frees it if none needs it): an awaited break never obtains while
    // it pins the layer's page. One this call obtained is freed, as before.
    let from_spare = spare.is_some();
    let f2 = match spare
        .take()
        .map_or_else(|| crate::object::reclaim::obtain(pages), Ok)
    {
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
    if persistent {
        crate::object::layer::keep_in_layer(&owner, src);
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
                keep_or_free(pages, spare, from_spare, f2);
                pages.unpin_read(src);
                return Ok(false);
            }
            Publish::Busy(cur) => {
                if allowed != 0 {
                    // A holder's upgrade: look again from the caller's poll (see break_cow).
                    keep_or_free(pages, spare, from_spare, f2);
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

/// An unpublished copy's frame `f2`: back to the caller's `spare` if it came from there, else
/// freed (see `copy_out`).
fn keep_or_free(
    pages: &crate::frames::PagesShared,
    spare: &mut Option<u32>,
    from_spare: bool,
    f2: u32,
) {
    if from_spare {
        *spare = Some(f2);
    } else {
        pages.free(f2);
    }
}
