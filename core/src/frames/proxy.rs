//! Copy-on-write proxies (the reverse map beyond the owner): a frame's proxy list, publishing and
//! unmapping proxies, the source of a copy, publishing a break, and the reverse map's read of a
//! frame.

use super::*;

impl PagesShared {
    // ----- copy-on-write proxies (the reverse map beyond the owner) -------------------------

    /// Runs `g` on frame `f`'s proxy list. Holding `_l` (the lists lock) is the list's rule.
    pub(super) fn with_proxies<R>(
        &self,
        _l: &mut Lists,
        f: u32,
        g: impl FnOnce(&mut Proxies) -> R,
    ) -> R {
        // SAFETY: the lists lock is held (`_l`), which serializes every access to the list.
        self.frame(f).proxies.with_mut(|p| g(unsafe { &mut *p }))
    }

    /// Publishes a copy-on-write proxy: `slot` (page `proxy.page` of `proxy.mapper`, `EMPTY`)
    /// becomes `(f, COW, pins)` and joins `f`'s proxies. The caller holds a read pin on the entry
    /// of `f`'s owner `owner` (its resolution pin), which becomes the proxy's pin. Returns `false`
    /// (nothing changed) if the entry was occupied or `f` no longer belongs to `owner`.
    pub(crate) fn make_proxy(
        &self,
        f: u32,
        pins: u64,
        slot: &AtomicU64,
        proxy: Owner,
        owner: &Owner,
    ) -> bool {
        let mut l = lock(&self.lists);
        // SAFETY: lists lock held; `f` is Resident: its owner's entry is pinned by the caller.
        let owned =
            unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(&owner.mapper, owner.page))) };
        if !owned {
            drop(l);
            drop(proxy);
            return false;
        }
        // An obtainer that found the owner's entry pinned only by our resolution pin marked it
        // (`WAIT_POOL`) and waits for that pin to go. It becomes the proxy's pin, which no
        // unpin of the owner's entry drops until the proxy is unmapped, which the obtainer does
        // once the proxy is unpinned: carry the mark to the proxy, so that its last unpinner
        // wakes the pool (scenario C13: a lost wake-up without it).
        // Relaxed: obtainers set the mark under the lists lock, which we hold.
        let wait_pool = owner
            .slot()
            .is_some_and(|os| EntryWord::WAIT_POOL.is_set(os.load(Ordering::Relaxed)));
        let entry = EntryWord::resident(f, pins)
            .with(EntryWord::COW, true)
            .with(EntryWord::WAIT_POOL, wait_pool);
        // Release: pairs with the Acquire of this entry's pinners: the bytes our resolution pin
        // acquired (from the owner's publication) are visible to them.
        if slot
            .compare_exchange(0, entry.0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            drop(l);
            drop(proxy);
            return false;
        }
        self.with_proxies(&mut l, f, |p| p.push(proxy));
        true
    }

    /// Where the `COW` frame `f` named by page `page` of `mapper` (entry `slot`) comes from.
    pub(crate) fn cow_source(
        &self,
        f: u32,
        mapper: &MapperShared,
        page: u64,
        slot: &AtomicU64,
    ) -> CowSource {
        let mut l = lock(&self.lists);
        let e = EntryWord(slot.load(Ordering::Acquire));
        // An entry naming `f` and not RECLAIMING means `f` is Resident (I2).
        if e.frame() != Some(f) || !e.cow() || e.reclaiming() {
            return CowSource::Changed;
        }
        if self.with_proxies(&mut l, f, |p| p.contains(mapper, page)) {
            // SAFETY: lists lock held, `f` Resident. The clone is dropped by the caller, outside.
            return unsafe { self.with_owner(f, |o| o.cloned()) }
                .map_or(CowSource::Changed, CowSource::Layer);
        }
        // SAFETY: as above.
        if unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(mapper, page))) } {
            CowSource::Own
        } else {
            CowSource::Changed
        }
    }

    /// Drops a stale `COW` mark (left by a copy that failed, or a mapped file's mark: SPEC §2.8)
    /// from page `page` of `mapper`, if the page still owns frame `f`, and runs `then` if it did.
    /// Under the lists lock, so no freeze can turn it into a proxy (or take what `then`
    /// records) meanwhile.
    pub(crate) fn unmark_own(
        &self,
        f: u32,
        mapper: &MapperShared,
        page: u64,
        slot: &AtomicU64,
        then: impl FnOnce(),
    ) {
        let _l = lock(&self.lists);
        let mut cur = EntryWord(slot.load(Ordering::Acquire));
        while cur.frame() == Some(f) && cur.cow() && !cur.reclaiming() {
            // SAFETY: lists lock held; an entry naming `f`, not RECLAIMING: `f` is Resident.
            if !unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(mapper, page))) } {
                return;
            }
            // AcqRel: writers may pin the page again from here on.
            match slot.compare_exchange(
                cur.0,
                cur.0 & !EntryWord::COW.mask(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    then();
                    return;
                }
                Err(c) => cur = EntryWord(c),
            }
        }
    }

    /// Publishes a broken copy-on-write page: the entry `slot` of `me` moves from the proxy
    /// frame `f` to the private frame `f2` (`Filling`, the caller's, holding `f`'s bytes) in one
    /// CAS that keeps its pins and holders (exactly `allowed`), clears `COW` and the waiter bits
    /// and sets `DIRTY` if `dirty`; `f2` becomes `Resident` at the queue tail, owned by `me`, and
    /// `me` leaves `f`'s proxies. `privatize` runs under the lists lock right after the CAS (a
    /// copy's freeze reads what it records under the same lock). The caller still holds the
    /// proxy's pin on `f`'s owner and drops it afterwards.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish_break(
        &self,
        f: u32,
        f2: u32,
        slot: &AtomicU64,
        allowed: u64,
        dirty: bool,
        me: Owner,
        privatize: impl FnOnce(),
    ) -> Publish {
        let mut l = lock(&self.lists);
        let mut cur = EntryWord(slot.load(Ordering::Acquire));
        loop {
            if cur.frame() != Some(f) || !cur.cow() || cur.reclaiming() {
                return Publish::Changed;
            }
            if cur.0 & EntryWord::PINNED_BITS != allowed {
                return Publish::Busy(cur);
            }
            let moved = EntryWord::FRAME1.set(cur.0, f2 as u64 + 1)
                & !(EntryWord::COW.mask() | EntryWord::WAIT_BITS);
            let new = moved | if dirty { EntryWord::DIRTY.mask() } else { 0 };
            // Release: the new frame's bytes (copied by us) are visible to the entry's next
            // pinners (Acquire). Acquire: pairs with the Release unpins of the proxy's readers.
            match slot.compare_exchange(cur.0, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(c) => cur = EntryWord(c),
            }
        }
        privatize();
        // SAFETY: `f2` is Filling and the caller's alone.
        let old = unsafe { self.set_owner(f2, Some(me.clone())) };
        self.set_tag(f2, Tag::Resident);
        self.link_new(&mut l, f2);
        let removed = self.with_proxies(&mut l, f, |p| p.remove(&me.mapper, me.page));
        let wake_pool = l.waiting_obtainers > 0;
        drop(l);
        drop((old, removed, me));
        self.notify(f, cur.0 & EntryWord::WAIT_BITS);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        Publish::Done
    }

    /// The frame's lifecycle tag, owner and proxies, read under the lists lock (for the reverse
    /// map's report; the references are dropped by the caller, outside the lock).
    pub(crate) fn frame_map(&self, f: u32) -> Option<(Tag, Option<Owner>, Vec<Owner>)> {
        if f >= self.frame_count() {
            return None;
        }
        let mut l = lock(&self.lists);
        // Relaxed: ordered by the lists lock (see set_tag).
        let tag = FrameWord(self.tags[f as usize].load(Ordering::Relaxed)).tag();
        if tag != Tag::Resident {
            return Some((tag, None, Vec::new()));
        }
        // SAFETY: lists lock held and `f` Resident.
        let owner = unsafe { self.with_owner(f, |o| o.cloned()) };
        let proxies = self.with_proxies(&mut l, f, |p| p.iter().cloned().collect());
        Some((tag, owner, proxies))
    }
}
