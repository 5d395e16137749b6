//! Publishing a page the object reads through its frozen layers (`crate::copies`), once
//! resolution found it (read-pinned) in a layer: as a copy-on-write proxy of the layer's frame
//! (`publish_proxy`), or, for a mapped copy (a private mapping, SPEC §2.8), as a copy of the
//! layer's bytes in the object's own page memory (`fill_copied`): a mapped object's pages live
//! in its mapping's memory, which a proxy's frame is not.
//!
//! Orderings: none of their own. The resolution's read pin on the layer's entry (Acquire)
//! orders the layer's bytes before our copy of them; the publication is the fill's
//! (`PagesShared::make_resident`, Release), and the pin goes back after the copy (Release).

use super::*;

impl MapperShared {
    /// Publishes `page` as a copy-on-write proxy of the frame resolution found (and read-pinned)
    /// in a frozen layer, with one read pin per fault (the caller and the joined ones).
    pub(super) fn publish_proxy(
        this: &Arc<Self>,
        page: u64,
        epoch: u64,
        r: crate::object::layer::Resolved,
    ) -> Result<Option<u32>> {
        let pages = &*this.pages;
        let shard = &this.fills[page as usize % this.fills.len()];
        let table = lock(shard);
        let joined = table.get(&page).map_or(0, |r| r.joined);
        let outcome = if this.is_closed() {
            Outcome::Failed(Error::Closed)
        } else if this.layer.epoch() != epoch {
            Outcome::Retry
        } else {
            let me = Owner {
                mapper: this.clone(),
                page,
            };
            let published = this
                .map
                .slot_or_alloc(page)
                .is_some_and(|slot| pages.make_proxy(r.frame, 1 + joined, slot, me, &r.owner));
            if published {
                Outcome::Frame(r.frame)
            } else {
                Outcome::Retry
            }
        };
        this.settle(table, page, outcome.clone());
        if !matches!(outcome, Outcome::Frame(_)) {
            // Not published: give the resolution pin back.
            r.unpin(pages);
        }
        match outcome {
            Outcome::Frame(f) => Ok(Some(f)),
            Outcome::Failed(e) => Err(e),
            Outcome::Retry => Ok(None),
        }
    }

    /// The fill of `page` of a mapped copy from the layer page resolution found (`r`,
    /// read-pinned): obtains a frame (the page's budget token), copies the layer's bytes into
    /// the object's memory, gives the resolution pin back, and publishes an ordinary resident
    /// page, clean: the layer still holds its content, so an eviction drops it without a
    /// write-back and the next miss resolves it again; a store makes it dirty, and its
    /// write-back (to the copy's swap) makes the page the copy's own. One copy per page
    /// touched, not per page written (SPEC §2.8, private mappings).
    #[inline(never)]
    pub(super) fn fill_copied(
        this: &Arc<Self>,
        page: u64,
        epoch: u64,
        want: Want,
        bound: Bound,
        r: crate::object::layer::Resolved,
    ) -> Result<Option<(u32, Held)>> {
        let pages = &*this.pages;
        let Some(m) = &this.memory else {
            r.unpin(pages);
            let e = Error::Invariant("a copied fill of an unmapped object".into());
            this.complete(page, Outcome::Failed(e.clone()));
            return Err(e);
        };
        let started = Instant::now();
        let f = match super::super::reclaim::obtain_by(pages, bound) {
            Ok(f) => f,
            Err(e) => {
                r.unpin(pages);
                return Err(this.obtain_failed(page, bound, e));
            }
        };
        // SAFETY: obtain handed us `f` in Filling state; we hold it exclusively.
        unsafe {
            pages.set_owner(
                f,
                Some(Owner {
                    mapper: this.clone(),
                    page,
                }),
            );
        }
        let filled = {
            let _t = this.page_track(page, f).exclusive();
            let _from = pages.track(r.frame).shared();
            let from = pages.bytes(r.frame);
            let n = pages.page_size();
            m.fill(page, &mut |buf: &mut [u8]| {
                // SAFETY: the resolution's read pin on the layer's entry keeps `r.frame`
                // resident, and a frozen layer has no writer (I4); `buf` is the object's own
                // page memory, mapped nowhere while it fills (IM1): they do not overlap, and
                // neither is shorter than the count (a frame holds a page).
                unsafe { std::ptr::copy_nonoverlapping(from, buf.as_mut_ptr(), buf.len().min(n)) };
                Ok(())
            })
        };
        // A mapped file does not own what its layers read from its file: a write makes the page
        // its own (the layer keeps its copy, under our pin), a read publishes it marked, so
        // that its first writer does that first (`copies::resolve`'s `privatize`).
        let persistent = this.accessor.persistent();
        if persistent && want == Want::Write && filled.is_ok() {
            if let Some(src) = r.owner.slot() {
                crate::object::layer::keep_in_layer(&r.owner, src);
            }
            lock(&this.layer.state).privatized.insert(page);
        }
        r.unpin(pages);
        this.stats.fill_took(started);
        Self::publish_fill(
            this,
            f,
            page,
            epoch,
            want,
            filled,
            persistent && want != Want::Write,
        )
    }
}
