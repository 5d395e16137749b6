//! Collapse: folding a frozen layer into its only reader (`try_collapse`, `collapse_backing`)
//! and compacting a whole chain (`compact`).

use super::*;

/// Collapses, into `c`, its backing if `c` is the only object reading through it, as far as it
/// can without waiting (skipped if a copy or close of `c` runs, or the backing holds pages of a
/// persistent object's file, which an anonymous object cannot adopt). Returns whether the
/// backing went away.
pub(super) fn try_collapse(c: &Arc<MapperShared>) -> bool {
    try_collapse_for(c, None)
}

/// [`try_collapse`] by the fill of `c`'s page `own` (whose record in `c` is the caller's: it
/// does not keep the layer from being unlinked, as the caller's walk reads the backing afresh).
pub(super) fn try_collapse_for(c: &Arc<MapperShared>, own: Option<u64>) -> bool {
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
pub(super) fn collapse_backing(c: &Arc<MapperShared>, fh: &PageMapper, own: Option<u64>) -> bool {
    let f: &Arc<MapperShared> = &fh.shared;
    // A mapped object's pages live in its mappings' memory, not in frames it could adopt: the
    // layers of mapped anonymous memory (a private mapping's copy among them) stay below it
    // (its misses copy their bytes in) until it closes. A mapped file drops its last layer
    // instead (`Into::Top`, `mapped`).
    let mapped = c.memory.is_some();
    if mapped && !(c.accessor.persistent() && c.layer.frozen.is_none()) {
        return false;
    }
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
        (_, None) if mapped => return false,
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
    // A mapped file has every page: the pages it has not written since the copy are its file's
    // (as above), and it reads them there once the layer is gone; the layer's frames are freed,
    // not adopted (their bytes are not where its mappings map its pages).
    let c_has = |p: u64| {
        mapped
            || c.map.slot(p).is_some_and(|s| pages.owns_frame(c, p, s))
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
    // A mapped file frees the layer's pages instead (it publishes no proxy, and nothing moves
    // into its entries): its own fills in flight keep none of them, and none keeps the layer
    // linked (one that holds a layer page pinned keeps that page, and so the layer; one that has
    // not resolved yet walks the chain afresh and reads its file once the layer is gone).
    let filling: HashSet<u64> = c_shards
        .iter()
        .filter(|_| !mapped)
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
        || (!mapped && c_shards.iter().any(|t| t.keys().any(|&p| Some(p) != own)));
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
