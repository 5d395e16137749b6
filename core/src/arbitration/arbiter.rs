//! The internal arbiter ([`Arbiter`]): its shards and parkers, the fast paths and requests.
//! Release, downgrade, upgrade, unusual errors and inspection are in `release`.

use super::*;

/// What a slow-path change did, to act on after the shard lock is dropped.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) changed: bool,
    prev: u64,
    /// Holders to ask to revoke (their callbacks, looked up under the shard lock: a holder cannot
    /// unregister while it holds, since its grants borrow it).
    pub(super) revoke: Vec<(ShareArc<dyn Revoke>, Revocation)>,
}

/// The per-object arbiter.
pub(crate) struct Arbiter {
    pub(super) shards: Box<[Mutex<FxHashMap<u64, AccessWord>>]>,
    pub(super) parks: Box<[Parker]>,
    pub(super) records: Mutex<Records>,
    pub(super) clients: Mutex<Vec<Option<ShareArc<dyn Revoke>>>>,
    /// The object's id, told to revocation callbacks ([`Revoke::revoke_in`]).
    object: u64,
    /// The object's statistics (grant waits, revocations).
    stats: ShareArc<crate::stats::ObjectCounters>,
}

pub(super) enum Poll {
    Granted,
    Waiting,
    /// Blocked only by plain guards, a reclaim, or a copy-on-write frame; with the entry and the
    /// pinned bits that are the waiter's own (its read hold, when upgrading).
    CoreBlocked(EntryWord, u64),
}

pub(super) enum Begin {
    Granted,
    Waiting,
    Retry(EntryWord),
    WouldBlock,
}

impl Arbiter {
    pub(crate) fn new(object: u64, stats: ShareArc<crate::stats::ObjectCounters>) -> Self {
        Self {
            object,
            stats,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(crate::sync::Level::ArbShard, FxHashMap::default()))
                .collect(),
            parks: (0..SHARDS)
                .map(|_| Parker::new(crate::sync::Level::ArbPark))
                .collect(),
            records: Mutex::new(crate::sync::Level::Records, Records::default()),
            clients: Mutex::new(crate::sync::Level::Clients, Vec::new()),
        }
    }

    pub(super) fn shard(&self, page: u64) -> usize {
        (page % self.shards.len() as u64) as usize
    }

    pub(crate) fn register(&self, revoke: ShareArc<dyn Revoke>) -> u32 {
        let mut t = lock(&self.clients);
        match t.iter().position(Option::is_none) {
            Some(i) => {
                t[i] = Some(revoke);
                i as u32
            }
            None => {
                t.push(Some(revoke));
                (t.len() - 1) as u32
            }
        }
    }

    pub(crate) fn unregister(&self, id: u32) {
        if let Some(s) = lock(&self.clients).get_mut(id as usize) {
            *s = None;
        }
    }

    pub(super) fn decode(e: EntryWord, aw: AccessWord, recs: &Records) -> Result<PageState> {
        if let Some(id) = aw.record() {
            return recs
                .get(id)
                .cloned()
                .ok_or_else(|| Error::Invariant(format!("side table names dead record {id}")));
        }
        if e.ext_read() || e.ext_write() {
            return Err(Error::Invariant(format!(
                "{e:?} is out-of-line without a record"
            )));
        }
        let hold = e.hold();
        let mut st = PageState::default();
        for c in 0..EntryWord::INLINE_CLIENTS {
            match (hold >> (2 * c)) & 3 {
                1 => st.holders.push((c, Access::Read)),
                2 => st.holders.push((c, Access::Write)),
                _ => {}
            }
        }
        st.waiters = aw
            .waiters()
            .map(|(c, w)| (c, if w { Access::Write } else { Access::Read }))
            .collect();
        st.asked = (0..4).filter(|c| aw.asked() & (1 << c) != 0).collect();
        Ok(st)
    }

    fn encode(st: &PageState, e: EntryWord, recs: &mut Records) -> (EntryWord, AccessWord) {
        let base = EntryWord(
            e.with_hold(0).0
                & !(EntryWord::ARB_SLOW.mask()
                    | EntryWord::EXT_READ.mask()
                    | EntryWord::EXT_WRITE.mask()),
        );
        let base = base.with(EntryWord::DIRTY, e.dirty() || st.has_writer());
        if st.fits_inline() {
            let hold = st.holders.iter().fold(0, |h, &(c, a)| {
                h | EntryWord::hold_bit(c, a == Access::Write)
            }) >> EntryWord::HOLD.shift();
            let waiters: Vec<(u32, bool)> = st
                .waiters
                .iter()
                .map(|&(c, a)| (c, a == Access::Write))
                .collect();
            let asked = st.asked.iter().fold(0u8, |m, &c| m | 1 << c);
            let aw = AccessWord::inline(&waiters, asked).unwrap_or(AccessWord::EMPTY);
            (
                base.with_hold(hold)
                    .with(EntryWord::ARB_SLOW, aw != AccessWord::EMPTY),
                aw,
            )
        } else {
            let id = recs.intern(st);
            let readers = st.holders.iter().any(|h| h.1 == Access::Read);
            (
                base.with(EntryWord::ARB_SLOW, true)
                    .with(EntryWord::EXT_READ, readers)
                    .with(EntryWord::EXT_WRITE, st.has_writer()),
                AccessWord::record_of(id),
            )
        }
    }

    /// The slow path: runs `f` on the page's decoded state under the shard lock and publishes the
    /// result with one CAS on the entry (retrying from scratch if the entry changed meanwhile).
    pub(super) fn update<R>(
        &self,
        slot: &AtomicU64,
        page: u64,
        f: impl FnMut(&mut PageState, EntryWord) -> Result<R>,
    ) -> Result<(R, Effects)> {
        self.update_pinned(slot, page, false, f)
    }

    /// As [`Arbiter::update`]; with `pinned`, the caller holds one plain read pin on the page,
    /// which `f` does not see and the same CAS drops (so the page cannot be reclaimed between a
    /// fault and the request it serves).
    fn update_pinned<R>(
        &self,
        slot: &AtomicU64,
        page: u64,
        pinned: bool,
        mut f: impl FnMut(&mut PageState, EntryWord) -> Result<R>,
    ) -> Result<(R, Effects)> {
        let mut side = lock(&self.shards[self.shard(page)]);
        loop {
            // Acquire: pairs with the Release of releasers and unpinners (see the module doc).
            let e = EntryWord(slot.load(Ordering::Acquire));
            let base = if pinned && e.pins() > 0 {
                EntryWord(e.0 - EntryWord::PINS.one())
            } else {
                e
            };
            let aw = side.get(&page).copied().unwrap_or(AccessWord::EMPTY);
            let mut recs = lock(&self.records);
            let mut st = Self::decode(e, aw, &recs)?;
            let before = st.clone();
            let r = f(&mut st, base)?;
            st.normalize();
            let asks = st.ask_in_the_way();
            if st == before && !pinned {
                return Ok((r, Effects::default()));
            }
            let (ne, naw) = Self::encode(&st, base, &mut recs);
            // AcqRel: ends the accesses of holders it removes (Release) and starts those of
            // holders it adds (Acquire of the previous releases). Failure: re-read and recompute.
            match slot.compare_exchange(e.0, ne.0, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if naw == AccessWord::EMPTY {
                        side.remove(&page);
                        // Give the memory back once the shard is mostly empty (all of it once
                        // empty), so the side table costs what its pages with waiters cost.
                        let len = side.len();
                        if len * 4 < side.capacity() {
                            side.shrink_to(len * 2);
                        }
                    } else {
                        side.insert(page, naw);
                    }
                    if let Some(id) = aw.record() {
                        recs.release(id)?;
                    }
                    drop(recs);
                    return Ok((
                        r,
                        Effects {
                            changed: true,
                            prev: e.0,
                            revoke: self.revokers(&asks),
                        },
                    ));
                }
                Err(_) => {
                    if let Some(id) = naw.record() {
                        recs.release(id)?;
                    }
                }
            }
        }
    }

    /// After a slow-path change, with no pagecore lock held: wake the shard's waiters and any
    /// plain waiter or obtainer parked on the entry.
    pub(super) fn after(&self, pages: &PagesShared, slot: &AtomicU64, page: u64, fx: Effects) {
        if !fx.changed {
            return;
        }
        self.call_revokers(pages, page, fx.revoke);
        self.parks[self.shard(page)].unpark_all();
        if fx.prev & EntryWord::WAIT_BITS != 0 {
            pages.wake_waiters(slot);
        }
    }

    pub(super) fn revokers(
        &self,
        asks: &[(u32, Revocation)],
    ) -> Vec<(ShareArc<dyn Revoke>, Revocation)> {
        if asks.is_empty() {
            return Vec::new();
        }
        let t = lock(&self.clients);
        asks.iter()
            .filter_map(|&(c, ask)| Some((t.get(c as usize)?.clone()?, ask)))
            .collect()
    }

    fn call_revokers(
        &self,
        pages: &PagesShared,
        page: u64,
        revokers: Vec<(ShareArc<dyn Revoke>, Revocation)>,
    ) {
        let object = self.object;
        for (r, ask) in revokers {
            pages.counters.revocations.incr();
            self.stats.revocations.incr();
            // A panicking callback must not take the requester down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                r.revoke_in(object, page, ask)
            }));
        }
    }

    // ----- fast paths ------------------------------------------------------------------------

    /// One CAS: grants `want` to inline client `c` if nothing stands in the way.
    #[inline(always)]
    pub(super) fn fast_grant(slot: &AtomicU64, c: u32, want: Access) -> Option<u32> {
        let mut cur = EntryWord(slot.load(Ordering::Relaxed));
        loop {
            let refuse = match want {
                Access::Read => {
                    EntryWord::ARB_SLOW.mask()
                        | EntryWord::RECLAIMING.mask()
                        | EntryWord::WRITER.mask()
                        | EntryWord::HOLD_WRITE_BITS
                        | EntryWord::hold_bits(c)
                }
                Access::Write => EntryWord::ARB_SLOW.mask() | EntryWord::NO_WRITE_BITS,
            };
            if cur.frame().is_none() || cur.0 & refuse != 0 {
                return None;
            }
            // The same CAS marks the page hit for the eviction policy.
            let new = EntryWord::hit(match want {
                Access::Read => cur.0 | EntryWord::hold_bit(c, false),
                Access::Write => cur.0 | EntryWord::hold_bit(c, true) | EntryWord::DIRTY.mask(),
            });
            // Acquire: pairs with the previous holder's / unpinner's Release and the fill's
            // publication.
            match slot.compare_exchange_weak(cur.0, new, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return cur.frame(),
                Err(x) => cur = EntryWord(x),
            }
        }
    }

    /// Turns a plain read pin on `frame` (just taken by a fault) into inline client `c`'s grant.
    pub(super) fn convert_pin(slot: &AtomicU64, frame: u32, c: u32, want: Access) -> bool {
        if c >= EntryWord::INLINE_CLIENTS {
            return false;
        }
        let mut cur = EntryWord(slot.load(Ordering::Relaxed));
        loop {
            if cur.frame() != Some(frame) || cur.arb_slow() || cur.pins() == 0 {
                return false;
            }
            let new = match want {
                Access::Read => cur.0 - EntryWord::PINS.one() + EntryWord::hold_bit(c, false),
                Access::Write => {
                    if cur.0 & EntryWord::PINNED_BITS != EntryWord::PINS.one() || cur.cow() {
                        return false;
                    }
                    cur.0 - EntryWord::PINS.one()
                        + EntryWord::hold_bit(c, true)
                        + EntryWord::DIRTY.mask() * (!cur.dirty() as u64)
                }
            };
            // Acquire: as fast_grant (we already hold a pin, so this only re-labels it).
            match slot.compare_exchange_weak(cur.0, new, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(x) => cur = EntryWord(x),
            }
        }
    }

    // ----- requests --------------------------------------------------------------------------

    /// The slow request: enqueue (asking holders in the way), or grant at once, or (`try_only`)
    /// refuse with [`Error::WouldBlock`]; with `pinned`, also drops the caller's plain read pin in
    /// the same CAS. Returns `Granted`, `Waiting` (counted), or `Retry` (no frame, or reclaiming).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue_slow(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        want: Access,
        try_only: bool,
        pinned: bool,
    ) -> Result<Begin> {
        let b = self.update_pinned(slot, page, pinned, |st, e| {
            if e.frame().is_none() || e.reclaiming() {
                return Ok(Begin::Retry(e));
            }
            if st.holder(c).is_some() || st.waiting(c).is_some() {
                return Err(Error::AlreadyHeld { page });
            }
            let before = st.clone();
            st.waiters.push_back((c, want));
            st.grant_ready(e);
            if st.holder(c) == Some(want) {
                return Ok(Begin::Granted);
            }
            if try_only {
                *st = before;
                return Ok(Begin::WouldBlock);
            }
            Ok(Begin::Waiting)
        });
        let (b, fx) = match b {
            Ok(r) => r,
            Err(e) => {
                if pinned {
                    // Our pin is still there: give it back.
                    pages.unpin_read(slot);
                }
                return Err(e);
            }
        };
        self.after(pages, slot, page, fx);
        match b {
            Begin::WouldBlock => Err(Error::WouldBlock { page }),
            Begin::Waiting => {
                pages.counters.grant_waits.incr();
                self.stats.grant_waits.incr();
                Ok(b)
            }
            b => Ok(b),
        }
    }

    /// Re-examines a waiting request of `c` (granting what has become grantable).
    pub(super) fn poll(
        &self,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        want: Access,
    ) -> Result<(Poll, Effects)> {
        self.update(slot, page, |st, e| {
            if st.holder(c) == Some(want) {
                return Ok(Poll::Granted);
            }
            if st.waiting(c).is_none() {
                return Err(Error::Invariant(format!(
                    "page {page}: request of client {c} vanished"
                )));
            }
            st.grant_ready(e);
            if st.holder(c) == Some(want) {
                Ok(Poll::Granted)
            } else if st.ready_but_for_core(c) {
                let own = match st.holder(c) {
                    None => 0,
                    Some(_) if e.ext_read() || e.ext_write() => EntryWord::EXT_READ.mask(),
                    Some(_) => EntryWord::hold_bit(c, false),
                };
                Ok(Poll::CoreBlocked(e, own))
            } else {
                Ok(Poll::Waiting)
            }
        })
    }

    /// Withdraws a waiting request. `Ok(true)`: it had been granted meanwhile (the caller now
    /// holds it).
    pub(super) fn cancel(
        &self,
        pages: &PagesShared,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        want: Access,
    ) -> Result<bool> {
        let (granted, fx) = self.update(slot, page, |st, e| {
            if st.holder(c) == Some(want) {
                return Ok(true);
            }
            if let Some(i) = st.waiting(c) {
                st.waiters.remove(i);
            }
            st.grant_ready(e);
            Ok(false)
        })?;
        self.after(pages, slot, page, fx);
        Ok(granted)
    }
}
