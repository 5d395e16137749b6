//! The arbiter's second half: release, downgrade and upgrade of grants, unusual write-back
//! errors, and inspection (the arbitration census).

use super::*;

impl Arbiter {
    // ----- release, downgrade, upgrade ------------------------------------------------------

    /// Ends `c`'s access to `page`.
    #[inline(always)]
    pub(super) fn release(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        c: u32,
        page: u64,
    ) -> Result<()> {
        if c < EntryWord::INLINE_CLIENTS {
            let bits = EntryWord::hold_bits(c);
            // Release: pairs with the Acquire of the next grant, pin or take (module doc).
            let prev = slot.fetch_and(!bits, Ordering::Release);
            let follow_up = EntryWord::ARB_SLOW.mask() | EntryWord::WAIT_BITS;
            if prev & bits != 0 && prev & follow_up == 0 {
                return Ok(());
            }
            return self.release_slow(pages, slot, c, page, prev);
        }
        self.release_slow(pages, slot, c, page, 0)
    }

    /// The rest of a release: waiters to hand off to or wake, or an out-of-line holder
    /// (`prev` is the entry before an inline client's `fetch_and`, or 0).
    #[cold]
    #[inline(never)]
    fn release_slow(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        prev: u64,
    ) -> Result<()> {
        if c < EntryWord::INLINE_CLIENTS {
            let bits = EntryWord::hold_bits(c);
            if prev & bits != 0 {
                if prev & EntryWord::ARB_SLOW.mask() != 0 {
                    // Waiters or asked bits: settle them (normalize and hand off).
                    let (_, fx) = self.update(slot, page, |st, e| {
                        st.grant_ready(e);
                        Ok(())
                    })?;
                    self.after(pages, slot, page, fx);
                }
                Self::wake_if_waiting(pages, slot, prev);
                return Ok(());
            }
        }
        self.change_held(pages, slot, c, page, "released", |st, e| {
            let had = st.remove_holder(c).is_some();
            st.grant_ready(e);
            had
        })
    }

    /// A slow-path change that must find `c` holding as expected (`f` says whether it did),
    /// followed by the wake-ups it calls for.
    fn change_held(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        what: &str,
        mut f: impl FnMut(&mut PageState, EntryWord) -> bool,
    ) -> Result<()> {
        let (had, fx) = self.update(slot, page, |st, e| Ok(f(st, e)))?;
        self.after(pages, slot, page, fx);
        if had {
            Ok(())
        } else {
            Err(Error::Invariant(format!(
                "page {page}: client {c} {what} a grant it did not hold"
            )))
        }
    }

    /// After a fast-path RMW whose previous word was `prev`: wake plain waiters and obtainers.
    fn wake_if_waiting(pages: &PagesShared, slot: &AtomicU64, prev: u64) {
        if prev & EntryWord::WAIT_BITS != 0 {
            pages.wake_waiters(slot);
        }
    }

    pub(super) fn downgrade(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        c: u32,
        page: u64,
    ) -> Result<()> {
        if c < EntryWord::INLINE_CLIENTS {
            let mut cur = EntryWord(slot.load(Ordering::Relaxed));
            while cur.0 & EntryWord::hold_bit(c, true) != 0 && !cur.arb_slow() {
                let new = cur.0 & !EntryWord::hold_bit(c, true) | EntryWord::hold_bit(c, false);
                // AcqRel: our writes happen before the readers this admits (Release).
                match slot.compare_exchange_weak(cur.0, new, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => {
                        Self::wake_if_waiting(pages, slot, cur.0);
                        return Ok(());
                    }
                    Err(x) => cur = EntryWord(x),
                }
            }
        }
        self.change_held(pages, slot, c, page, "downgraded", |st, e| {
            if st.holder(c) != Some(Access::Write) {
                return false;
            }
            st.set_holder(c, Access::Read);
            st.grant_ready(e);
            true
        })
    }

    /// For reclaim: asks every holder of `page` not yet asked to release it.
    pub(crate) fn ask_release(&self, pages: &PagesShared, slot: &AtomicU64, page: u64) {
        self.ask(pages, slot, page, Revocation::Release)
    }

    /// Asks the holders of `page` not yet asked (every holder to release it, or the writer to
    /// downgrade): reclaim needs the frame, a copy needs the page unwritten while it freezes.
    pub(crate) fn ask(&self, pages: &PagesShared, slot: &AtomicU64, page: u64, ask: Revocation) {
        let Ok((asks, mut fx)) = self.update(slot, page, |st, e| {
            if e.frame().is_none() {
                return Ok(Vec::new());
            }
            let mut asks = Vec::new();
            for &(h, held) in &st.holders {
                let wanted = ask == Revocation::Release || held == Access::Write;
                if wanted && st.asked.binary_search(&h).is_err() {
                    asks.push((h, ask));
                }
            }
            for &(h, _) in &asks {
                if let Err(i) = st.asked.binary_search(&h) {
                    st.asked.insert(i, h);
                }
            }
            // Under the shard lock: the holders are still registered (see Effects::revoke).
            Ok(self.revokers(&asks))
        }) else {
            return;
        };
        fx.revoke.extend(asks);
        self.after(pages, slot, page, fx);
    }

    // ----- unusual errors --------------------------------------------------------------------

    /// Records an unusual write-back error on `page`, whose write-back from frame `frame` failed
    /// (slow path: the page escapes to an out-of-line record) — only while the page is still
    /// resident in `frame` and not being reclaimed. Otherwise the record would outlive what it
    /// describes: on an emptied entry it broke the page for good (a later fill found the entry
    /// taken, I11 found a record no page names); on an entry another reclaim took meanwhile, that
    /// reclaim's success dropped it with the entry (scenario C23). Either way the page's content
    /// went on (written back by that reclaim, or resident again), and the object keeps the error
    /// for `sync` to report.
    ///
    /// Only while the page is still dirty, too: a write-back that succeeded after the failing
    /// one (a sync's, or a close's, under its own read pin) cleared `DIRTY` before it cleared the
    /// record, so a record made after that would sit on a clean page until a later sync or close
    /// visited it (an anonymous object's sync visits none), and reclaim would skip that page
    /// meanwhile. A pool whose other frames are pinned then deadlocked its obtainers (program
    /// seed 136, scenario C43). `DIRTY` is read
    /// under the shard lock `update` holds; a writer that dirtied the page again after that
    /// success makes the record stand (conservative: the next sync rewrites the page anyway).
    pub(crate) fn record_error(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        page: u64,
        frame: u32,
        error: PageError,
    ) -> Result<()> {
        let (_, fx) = self.update(slot, page, |st, e| {
            if e.frame() == Some(frame) && !e.reclaiming() && e.dirty() {
                st.error = Some(error.clone());
            }
            Ok(())
        })?;
        self.after(pages, slot, page, fx);
        Ok(())
    }

    /// Clears the unusual write-back error recorded on `page`, if any (the page comes back from
    /// its out-of-line record unless something else keeps it there).
    pub(crate) fn clear_error(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        page: u64,
    ) -> Result<()> {
        // Relaxed: a hint that spares clearing a page with no side state the shard lock;
        // `update` re-reads the entry under it.
        if !EntryWord(slot.load(Ordering::Relaxed)).arb_slow() {
            return Ok(());
        }
        let (_, fx) = self.update(slot, page, |st, _| {
            st.error = None;
            Ok(())
        })?;
        self.after(pages, slot, page, fx);
        Ok(())
    }

    /// The unusual write-back error recorded on `page`, if any.
    pub(crate) fn page_error(&self, slot: &AtomicU64, page: u64) -> Result<Option<std::io::Error>> {
        // Relaxed: a hint, as in clear_error; re-read under the shard lock below.
        if !EntryWord(slot.load(Ordering::Relaxed)).arb_slow() {
            return Ok(None);
        }
        let side = lock(&self.shards[self.shard(page)]);
        // Acquire: the entry and the side word agree under the shard lock.
        let e = EntryWord(slot.load(Ordering::Acquire));
        let aw = side.get(&page).copied().unwrap_or(AccessWord::EMPTY);
        let recs = lock(&self.records);
        Ok(Self::decode(e, aw, &recs)?.error.map(|pe| pe.to_io()))
    }

    // ----- inspection ------------------------------------------------------------------------

    /// The holders of `page` (client, access) while its entry names `frame` (empty otherwise).
    pub(crate) fn holders(&self, slot: &AtomicU64, page: u64, frame: u32) -> Vec<(u32, Access)> {
        let side = lock(&self.shards[self.shard(page)]);
        // Acquire: the entry and the side word agree under the shard lock.
        let e = EntryWord(slot.load(Ordering::Acquire));
        if e.frame() != Some(frame) {
            return Vec::new();
        }
        let aw = side.get(&page).copied().unwrap_or(AccessWord::EMPTY);
        let recs = lock(&self.records);
        Self::decode(e, aw, &recs).map_or_else(|_| Vec::new(), |st| st.holders)
    }

    /// Checks I9-I12 for every page of an object (its entries, `(page, slot)`) and returns the
    /// census. Exact when no client
    /// operation runs concurrently (each page is checked under its shard lock, but fast paths do
    /// not take it).
    pub(crate) fn check<'m>(
        &self,
        entries: impl Iterator<Item = (u64, &'m AtomicU64)>,
    ) -> std::result::Result<ArbitrationCensus, String> {
        let mut census = ArbitrationCensus::default();
        let registered: Vec<bool> = lock(&self.clients).iter().map(Option::is_some).collect();
        census.clients = registered.iter().filter(|r| **r).count() as u32;
        let mut refs: HashMap<u32, u64> = HashMap::new();
        for (page, slot) in entries {
            let side = lock(&self.shards[self.shard(page)]);
            let e = EntryWord(slot.load(Ordering::Acquire));
            EntryWord::from_raw(e.raw()).map_err(|err| format!("page {page}: {err}"))?;
            let aw = side.get(&page).copied().unwrap_or(AccessWord::EMPTY);
            if e.arb_slow() != (aw != AccessWord::EMPTY) {
                return Err(format!(
                    "page {page}: ARB_SLOW in {e:?} but side word {aw:?}"
                ));
            }
            let recs = lock(&self.records);
            let st = Self::decode(e, aw, &recs).map_err(|err| err.to_string())?;
            st.check(page, e)?;
            if let Some(id) = aw.record() {
                *refs.entry(id).or_default() += 1;
                if st.fits_inline() {
                    return Err(format!(
                        "page {page}: record {id} for a state that fits inline"
                    ));
                }
            }
            for c in st
                .holders
                .iter()
                .map(|h| h.0)
                .chain(st.waiters.iter().map(|w| w.0))
            {
                if !registered.get(c as usize).copied().unwrap_or(false) {
                    return Err(format!("page {page}: unregistered client {c} in {st:?}"));
                }
            }
            census.held_pages += !st.holders.is_empty() as u64;
            census.waiting += st.waiters.len() as u64;
            census.error_pages += st.error.is_some() as u64;
            census.side_entries += e.arb_slow() as u64;
        }
        // Shard locks before the records lock, never while holding it (the hierarchy, SPEC.md
        // §5.1: `ArbShard` -> `Records`, as in every slow path).
        let side_entries: usize = self.shards.iter().map(|s| lock(s).capacity()).sum();
        let recs = lock(&self.records);
        let live: HashMap<u32, u64> = recs
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|(_, r)| (i as u32, *r)))
            .collect();
        if live != refs {
            return Err(format!(
                "I11 violated: record refcounts {live:?}, page references {refs:?}"
            ));
        }
        census.records = live.len() as u64;
        census.record_refs = refs.values().sum();
        census.records_created = recs.created;
        census.records_freed = recs.freed;
        census.side_bytes = (side_entries * (8 + 8 + 8) + recs.bytes()) as u64;
        Ok(census)
    }
}
