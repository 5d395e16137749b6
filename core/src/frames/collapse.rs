//! Freeze and collapse, the frame side of copies (`copies`): moving a whole object's frames and
//! entries to a frozen layer, or a layer's into its only reader, under the lists lock.

use super::*;

impl PagesShared {
    /// A copy's freeze, under the lists lock (the caller holds every fill-shard lock of `from`):
    /// every private page of `from` moves to the new frozen layer `to` without copying a byte.
    /// The frame's owner becomes `to`'s page, `to`'s entry names the frame with one pin (the
    /// proxy's) and `from`'s dirty bit, and `from`'s entry stays where its pinners see it, now a
    /// clean `COW` proxy. Proxies `from` already had (of older layers) stay as they are. Then
    /// `then` moves the store (swap slots, or the record of which pages the file holds) and
    /// rewires the chain, still under the lock, so no reclaim, break or fill sees a half-moved
    /// object. Restarts (moving nothing) if a page is being reclaimed, or is private and
    /// written, or dirty in a persistent object, since the copy's marking.
    pub(crate) fn freeze(
        &self,
        from: &Arc<MapperShared>,
        to: &Arc<MapperShared>,
        then: impl FnOnce(),
    ) -> Freeze {
        let mut l = lock(&self.lists);
        let persistent = from.accessor.persistent();
        // A mapped object's bytes live in its mappings' memory, not in its frames: its pages
        // stay its own (clean: written back by the copy's marking), and the layer takes only
        // its swap slots (SPEC §2.8, copies of a mapped object).
        let mapped = from.memory.is_some();
        let mut moves = Vec::new();
        let mut kept = Vec::new();
        for (page, _) in from.map.entries() {
            let Some(slot) = from.map.slot(page) else {
                continue;
            };
            let mut cur = EntryWord(slot.load(Ordering::Acquire));
            while let Some(f) = cur.frame() {
                if cur.reclaiming() {
                    return Freeze::Restart(page, cur);
                }
                // SAFETY: lists lock held; an entry naming `f`, not RECLAIMING: `f` is Resident.
                if !unsafe { self.with_owner(f, |o| o.is_some_and(|o| o.is(from, page))) } {
                    break; // a proxy of an older layer: it stays one
                }
                if mapped && cur.dirty() {
                    return Freeze::Restart(page, cur);
                }
                if !cur.cow() {
                    let writing = cur.writer()
                        || cur.0 & (EntryWord::HOLD_WRITE_BITS | EntryWord::EXT_WRITE.mask()) != 0;
                    if writing || (persistent && cur.dirty()) {
                        return Freeze::Restart(page, cur);
                    }
                    // AcqRel: refuses writers from here on (they see COW and break instead).
                    match slot.compare_exchange(
                        cur.0,
                        cur.0 | EntryWord::COW.mask(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {}
                        Err(c) => {
                            cur = EntryWord(c);
                            continue;
                        }
                    }
                }
                if mapped {
                    kept.push(page);
                } else {
                    moves.push((page, f));
                }
                break;
            }
        }
        let mut later = Deferred::default();
        for (page, f) in moves {
            let (Some(slot), Some(to_slot)) = (from.map.slot(page), to.map.slot_or_alloc(page))
            else {
                continue;
            };
            // No writer can set DIRTY again (COW), so clearing it here moves it exactly.
            // Relaxed: the lists lock orders this with the frozen entry's publication below.
            let prev = EntryWord(slot.fetch_and(!EntryWord::DIRTY.mask(), Ordering::Relaxed));
            let frozen = EntryWord::resident(f, 1).with(EntryWord::DIRTY, prev.dirty());
            // Release: `to` becomes reachable only through its handle, published under the
            // layer state lock in `then`; this store is ordered before that by program order.
            to_slot.store(frozen.raw(), Ordering::Release);
            // SAFETY: lists lock held and `f` Resident: the owner rule allows the change.
            let old = unsafe {
                self.set_owner(
                    f,
                    Some(Owner {
                        mapper: to.clone(),
                        page,
                    }),
                )
            };
            later.drop.extend(old);
            self.with_proxies(&mut l, f, |p| {
                p.push(Owner {
                    mapper: from.clone(),
                    page,
                })
            });
        }
        then();
        // A mapped file keeps the marks: its layers read those pages from its file, and the
        // first writer of each records it as the file's own first (SPEC §2.8).
        if persistent {
            kept.clear();
        }
        for page in kept {
            if let Some(slot) = from.map.slot(page) {
                // Only now, with the swap slots moved: a writer let in earlier could write the
                // page back into a slot the layer takes. Release: pairs with a writer's pin
                // (Acquire), whose write-back then finds the object's slots as `then` left them.
                slot.fetch_and(!EntryWord::COW.mask(), Ordering::Release);
            }
        }
        drop(l);
        later.run(self);
        Freeze::Done
    }

    /// A collapse (under every fill-shard lock of both objects, and here the lists lock): moves
    /// each resident page of the frozen layer `from` that its only child `to` reads through it
    /// into `to`, without copying. If `to`'s page is a proxy of the frame, the proxy becomes the
    /// frame's owner entry (keeping the pins of the proxies of objects above `to`, which now pin
    /// it); if `to` has no entry for the page, the layer's entry moves to `to`; if `to` has its own
    /// copy (`has(page)`), the layer's frame is freed. A page pinned by anything but proxies, or
    /// being reclaimed, stays; so does every page `stays` names. `then` (still under the lock)
    /// moves the stores.
    pub(crate) fn collapse(
        &self,
        from: &Arc<MapperShared>,
        to: &Arc<MapperShared>,
        stays: impl Fn(u64) -> bool,
        has: impl Fn(u64) -> bool,
        then: impl FnOnce(&Collapse),
    ) -> Collapse {
        let mut l = lock(&self.lists);
        let mut later = Deferred::default();
        let mut out = Collapse::default();
        for (page, _) in from.map.entries() {
            if stays(page) {
                out.left.push(page);
                continue;
            }
            let (Some(f_slot), Some(t_slot)) = (from.map.slot(page), to.map.slot_or_alloc(page))
            else {
                continue;
            };
            let ef = EntryWord(f_slot.load(Ordering::Acquire));
            let Some(f) = ef.frame() else { continue };
            let proxies = self.with_proxies(&mut l, f, |p| p.iter().count() as u64);
            // A frozen entry has no holder and no writer: its pins are its proxies', plus
            // transient ones (a resolution, a break's copy) which keep it where it is.
            if ef.reclaiming() || ef.0 & EntryWord::PINNED_BITS != EntryWord::PINS.one() * proxies {
                out.left.push(page);
                continue;
            }
            let et = EntryWord(t_slot.load(Ordering::Acquire));
            let to_proxy = et.frame() == Some(f)
                && et.cow()
                && self.with_proxies(&mut l, f, |p| p.contains(to, page));
            let keep_wait = ef.0 & EntryWord::WAIT_BITS;
            if !to_proxy && has(page) {
                if proxies != 0 {
                    out.left.push(page);
                    continue;
                }
                // Acquire: the layer's last readers' unpins happen before the frame's reuse.
                if f_slot
                    .compare_exchange(ef.0, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    out.left.push(page);
                    continue;
                }
                l.queue.remove(f);
                self.set_tag(f, Tag::Free);
                l.free.push(f);
                // SAFETY: lists lock held; `f` was Resident a moment ago and is ours now.
                later.drop.extend(unsafe { self.set_owner(f, None) });
                out.discarded.push(page);
            } else if to_proxy {
                // Acquire: as above (the proxies' pins move to `to`'s entry with it).
                if f_slot
                    .compare_exchange(ef.0, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    out.left.push(page);
                    continue;
                }
                let mut cur = et;
                loop {
                    // `to`'s own proxy pin goes; the other proxies' pins now pin this entry.
                    let pins = cur.pins() + proxies - 1;
                    let new = cur
                        .with(EntryWord::COW, false)
                        .with_pins(pins)
                        .with(EntryWord::DIRTY, cur.dirty() || ef.dirty());
                    // AcqRel: the frame's bytes are `to`'s own from here on; writers may pin it.
                    match t_slot.compare_exchange(cur.0, new.0, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => break,
                        Err(c) => cur = EntryWord(c),
                    }
                }
                // SAFETY: lists lock held and `f` Resident: the owner rule allows the change.
                later.drop.extend(unsafe {
                    self.set_owner(
                        f,
                        Some(Owner {
                            mapper: to.clone(),
                            page,
                        }),
                    )
                });
                later
                    .drop
                    .extend(self.with_proxies(&mut l, f, |p| p.remove(to, page)));
                out.moved.push(page);
            } else if et.frame().is_none() {
                if f_slot
                    .compare_exchange(ef.0, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    out.left.push(page);
                    continue;
                }
                // `to`'s entry is empty and stays so until we unlock: its publications need its
                // shard locks (held by the caller) or this lock. Release: its pinners' Acquire.
                t_slot.store(ef.0 & !EntryWord::WAIT_BITS, Ordering::Release);
                // SAFETY: as above.
                later.drop.extend(unsafe {
                    self.set_owner(
                        f,
                        Some(Owner {
                            mapper: to.clone(),
                            page,
                        }),
                    )
                });
                out.moved.push(page);
            } else {
                out.left.push(page);
                continue;
            }
            if keep_wait != 0 {
                later.notify.push((f, keep_wait));
            }
        }
        then(&out);
        let wake_pool = !out.discarded.is_empty() && l.waiting_obtainers > 0;
        drop(l);
        later.run(self);
        if wake_pool {
            self.pool_park.unpark_all();
        }
        out
    }

    /// Whether page `page` of `mapper` (entry `slot`) names a frame `mapper` owns (under the
    /// lists lock, for a collapse).
    pub(crate) fn owns_frame(&self, mapper: &MapperShared, page: u64, slot: &AtomicU64) -> bool {
        let e = EntryWord(slot.load(Ordering::Acquire));
        match e.frame() {
            // SAFETY: called by `collapse`'s `has` under the lists lock; an entry naming `f`
            // and not RECLAIMING means `f` is Resident.
            Some(f) if !e.reclaiming() => unsafe {
                self.with_owner(f, |o| o.is_some_and(|o| o.is(mapper, page)))
            },
            Some(_) => true, // being reclaimed from `mapper`: its content is `mapper`'s
            None => false,
        }
    }
}
