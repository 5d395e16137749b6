//! Arbitration: which clients of an object may read or write each page (seed 000), with FIFO
//! wait lists, revocation, and compact per-page state.
//!
//! # State
//!
//! A page's arbitration state is its ACCESSLIST (holders: client, read or write), its FIFO
//! WAITLIST of requests, the set of holders already asked to revoke, and an unusual write-back
//! error if one was recorded (`PageState`). It is stored in one of three forms:
//!
//! * **inline, fast**: the holders among the object's first four clients are the `HOLD` bits of
//!   the page's [`EntryWord`] (the same 64-bit word that names its frame); no waiter, nobody asked.
//!   A grant or a release is then one CAS (or `fetch_and`) on that word: no lock.
//! * **inline, slow**: as above, plus the page's [`AccessWord`] (up to four waiters and the asked
//!   bits) in the object's sharded side table; the entry has `ARB_SLOW`.
//! * **out-of-line**: a fifth client on the page, a fifth waiter, or an unusual write-back error
//!   (`PageError`: the seed's "oddball condition"): the entry has `ARB_SLOW` and
//!   `EXT_READ`/`EXT_WRITE`, and the side-table word names an interned record (`Records`): every
//!   page in the same state shares one record, which is freed when no page refers to it.
//!
//! So a page costs its 8-byte entry up to four clients; the side table costs something only for
//! pages that have waiters, pending revocations or more clients.
//!
//! # Protocol
//!
//! * **Fast paths** (inline client, no `ARB_SLOW`): a grant is a CAS on the entry that adds the
//!   client's `HOLD` bit if the page is resident, not being reclaimed, and compatible (read: no
//!   writer of any kind; write: nothing pins or holds it); a release is a `fetch_and` clearing the
//!   client's bits. A held page cannot be taken by reclaim (`HOLD` counts as pinned), so the grant
//!   *is* the pin: no separate pin count.
//! * **Slow paths** (waiting, revoking, out-of-line) run under the page's shard lock: decode the
//!   state from the entry and the side table, change it (enqueue, cancel, release, grant the head
//!   of the wait list), encode it, and publish it with one CAS on the entry (which fails if a fast
//!   path or a plain pin changed the entry meanwhile; then everything is recomputed). Side-table
//!   words and records are only read or written under the shard lock, so the CAS on the entry is
//!   the single point at which a state change becomes visible.
//! * **Granting** (`PageState::grant_ready`) takes waiters from the head: a writer when no one
//!   else holds the page (a sole reader upgrading counts as no one else), then stops; readers while
//!   no writer holds it, up to the next writer. It also respects plain guards and reclaim (a write
//!   grant needs no plain pin, any grant needs no plain writer and no reclaim in progress): a
//!   waiter blocked only by those waits on the entry itself, woken by the plain unpin.
//! * **Hand-off**: whoever changes the state (a release, a cancel, a downgrade, a waiter's own poll)
//!   grants what has become grantable in the same CAS, then wakes the shard's parker.
//! * **Revocation**: a request that must wait asks each conflicting holder, once, to give access
//!   back (release, or downgrade if the request is a read and the holder writes); an `obtain` that
//!   finds every frame pinned asks holders of queued pages to release. The callbacks run outside
//!   every pagecore lock.
//!
//! # Orderings
//!
//! * Fast grant: CAS `Acquire` (pairs with the `Release` of the previous holder's release, a plain
//!   unpin, and the fill's publication: the bytes are theirs).
//! * Fast release: `fetch_and` `Release` (pairs with the next grant's or pin's or taker's
//!   `Acquire`: every access through the grant happens before).
//! * Slow-path CAS: `AcqRel` (it both ends holders' accesses and starts new ones). A client granted
//!   by another thread's CAS learns it under the shard lock, whose mutex orders that CAS before
//!   the client's first access.
//! * Waiters: the shard's [`Parker`]; a waiter re-checks its state under the shard lock inside the
//!   parker's `prepare`, and every slow-path change notifies the parker after dropping the shard
//!   lock, so no wake-up is lost (lock order: parker -> shard -> records -> clients).

use crate::error::{Error, Result};
use crate::mapper::{MapperShared, Want};
use crate::pack::{AccessWord, EntryWord};
use crate::pages::PagesShared;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{lock, Exclusive, Instant, Mutex, Parked, Parker, ShareArc, Shared};
use rustc_hash::FxHashMap;
use std::collections::{HashMap, VecDeque};
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::time::Duration;

#[cfg(pagecore_loom)]
const SHARDS: usize = 1;
#[cfg(not(pagecore_loom))]
const SHARDS: usize = 64;

/// Read or write access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Shared with other readers.
    Read,
    /// Exclusive.
    Write,
}

/// What the pager asks a holder to do (see [`Revoke`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// Give access back (drop the grant).
    Release,
    /// Keep reading but stop writing ([`Grant::downgrade`]); a release answers it too.
    Downgrade,
}

/// A client's revocation callback: the pager calls it to ask the client to give back access to
/// `page`. The client answers by dropping (or downgrading) its [`Grant`], typically from the
/// thread that owns it: the callback should only signal that thread, never block.
///
/// It is called at most once per holder and conflict, from the thread of the request (or the
/// reclaim) that needs the page, outside every pagecore lock. It may arrive late, after the client
/// released the page on its own: ignore a revocation for a page you no longer hold. Any
/// `Fn(u64, Revocation) + Send + Sync + 'static` closure is a `Revoke`.
pub trait Revoke: Send + Sync + 'static {
    /// Asks the client to give access to `page` back, as `ask` says.
    fn revoke(&self, page: u64, ask: Revocation);
}

impl<F> Revoke for F
where
    F: Fn(u64, Revocation) + Send + Sync + 'static,
{
    fn revoke(&self, page: u64, ask: Revocation) {
        self(page, ask)
    }
}

/// The arbitration state of one page, decoded (inline and out-of-line forms alike). Also the
/// interned out-of-line record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PageState {
    /// ACCESSLIST: (client id, access), sorted by client id.
    holders: Vec<(u32, Access)>,
    /// WAITLIST, FIFO: (client id, wanted access). A client appears at most once; a holder
    /// appears only as a reader waiting to upgrade, at the head.
    waiters: VecDeque<(u32, Access)>,
    /// Holders asked to revoke their current access, sorted.
    asked: Vec<u32>,
    /// An unusual write-back error recorded on the page (always out of line).
    error: Option<PageError>,
}

/// An unusual write-back error recorded on a page: seed 000's "oddball condition", an error other
/// than the expected EIO, ENOSPC and EDQUOT (see `is_expected`). The expected ones leave the
/// page dirty for reclaim to retry; an unusual one (EBADF, EFBIG, EROFS, an accessor's own error,
/// a panicking accessor...) would most likely fail again, so it escapes the page to an
/// out-of-line record: reclaim then skips the page (`ARB_SLOW`), [`crate::PageMapper::page_error`]
/// reports it, and the next successful write-back (`sync`, `close`) clears it. Pages that failed
/// the same way share one interned record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PageError {
    kind: std::io::ErrorKind,
    os: Option<i32>,
    text: String,
}

impl PageError {
    /// The record of `e`, or `None` if `e` is one of the expected errors.
    pub(crate) fn of(e: &std::io::Error) -> Option<Self> {
        (!is_expected(e)).then(|| Self {
            kind: e.kind(),
            os: e.raw_os_error(),
            text: e.to_string(),
        })
    }

    /// An `io::Error` like the recorded one (same OS code, or same kind and message).
    fn to_io(&self) -> std::io::Error {
        match self.os {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.kind, self.text.clone()),
        }
    }
}

/// Whether a write-back error is one of the expected ones (seed 000): EIO, ENOSPC, EDQUOT.
pub(crate) fn is_expected(e: &std::io::Error) -> bool {
    const EIO: i32 = 5;
    const ENOSPC: i32 = 28;
    #[cfg(target_os = "linux")]
    const EDQUOT: i32 = 122;
    #[cfg(not(target_os = "linux"))]
    const EDQUOT: i32 = 69;
    use std::io::ErrorKind;
    matches!(e.raw_os_error(), Some(EIO | ENOSPC | EDQUOT))
        || matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

impl PageState {
    fn holder(&self, c: u32) -> Option<Access> {
        self.holders
            .binary_search_by_key(&c, |h| h.0)
            .ok()
            .map(|i| self.holders[i].1)
    }

    fn set_holder(&mut self, c: u32, a: Access) {
        match self.holders.binary_search_by_key(&c, |h| h.0) {
            Ok(i) => self.holders[i].1 = a,
            Err(i) => self.holders.insert(i, (c, a)),
        }
        self.unask(c);
    }

    fn remove_holder(&mut self, c: u32) -> Option<Access> {
        let i = self.holders.binary_search_by_key(&c, |h| h.0).ok()?;
        self.unask(c);
        Some(self.holders.remove(i).1)
    }

    fn unask(&mut self, c: u32) {
        if let Ok(i) = self.asked.binary_search(&c) {
            self.asked.remove(i);
        }
    }

    fn waiting(&self, c: u32) -> Option<usize> {
        self.waiters.iter().position(|w| w.0 == c)
    }

    fn has_writer(&self) -> bool {
        self.holders.iter().any(|h| h.1 == Access::Write)
    }

    fn others_hold(&self, c: u32) -> bool {
        self.holders.iter().any(|h| h.0 != c)
    }

    /// Only holders can have been asked.
    fn normalize(&mut self) {
        let holders = &self.holders;
        self.asked
            .retain(|c| holders.binary_search_by_key(c, |h| h.0).is_ok());
    }

    fn fits_inline(&self) -> bool {
        let inline = |c: &u32| *c < EntryWord::INLINE_CLIENTS;
        self.waiters.len() <= AccessWord::WAIT_SLOTS
            && self.holders.iter().all(|h| inline(&h.0))
            && self.waiters.iter().all(|w| inline(&w.0))
            && self.asked.iter().all(inline)
            && self.error.is_none()
    }

    /// Grants waiters from the head of the wait list, as far as the rules and the core state of
    /// the entry `e` allow (see the module doc). Returns whether the head is blocked only by the
    /// core (plain guards or a reclaim).
    fn grant_ready(&mut self, e: EntryWord) -> bool {
        let resident = e.frame().is_some() && !e.reclaiming();
        while let Some(&(c, want)) = self.waiters.front() {
            let (arbitration_ok, core_ok) = match want {
                // A shared copy-on-write frame is never written: the waiter breaks it first.
                Access::Write => (
                    !self.others_hold(c),
                    resident && e.pins() == 0 && !e.writer() && !e.cow(),
                ),
                Access::Read => (!self.has_writer(), resident && !e.writer()),
            };
            if !arbitration_ok {
                return false;
            }
            if !core_ok {
                return true;
            }
            self.waiters.pop_front();
            self.set_holder(c, want);
            if want == Access::Write {
                return false;
            }
        }
        false
    }

    /// Whether `c` would be granted now if plain guards and reclaim did not stand in the way.
    fn ready_but_for_core(&self, c: u32) -> bool {
        let mut writer = self.has_writer();
        for (i, &(w, want)) in self.waiters.iter().enumerate() {
            let ok = match want {
                Access::Write => i == 0 && !self.others_hold(w),
                Access::Read => !writer,
            };
            if !ok {
                return false;
            }
            if w == c {
                return true;
            }
            writer |= want == Access::Write;
        }
        false
    }

    /// Asks (marks, and returns with what to ask) every holder that stands in the way of a
    /// waiting request and has not been asked yet: release for a waiting writer, downgrade for a
    /// waiting reader behind a writer. Each holder is asked once per grant it holds (a downgrade
    /// is a new grant), whoever caused the conflict: the request that queued, or a hand-off that
    /// made a new holder while others still wait.
    fn ask_in_the_way(&mut self) -> Vec<(u32, Revocation)> {
        let mut asks: Vec<(u32, Revocation)> = Vec::new();
        for &(c, want) in &self.waiters {
            for &(h, held) in &self.holders {
                let ask = match (want, held) {
                    _ if h == c => continue,
                    (Access::Write, _) => Revocation::Release,
                    (Access::Read, Access::Write) => Revocation::Downgrade,
                    (Access::Read, Access::Read) => continue,
                };
                if self.asked.binary_search(&h).is_err() && asks.iter().all(|a| a.0 != h) {
                    asks.push((h, ask));
                }
            }
        }
        for &(h, _) in &asks {
            if let Err(i) = self.asked.binary_search(&h) {
                self.asked.insert(i, h);
            }
        }
        asks
    }

    /// Checks the page invariants (I9, I10) on a quiescent or locked state.
    fn check(&self, page: u64, e: EntryWord) -> std::result::Result<(), String> {
        let writers = self.holders.iter().filter(|h| h.1 == Access::Write).count();
        if writers > 1 || (writers == 1 && self.holders.len() > 1) {
            return Err(format!(
                "page {page}: I9 violated: holders {:?}",
                self.holders
            ));
        }
        if writers == 1 && (e.pins() != 0 || e.writer()) {
            return Err(format!(
                "page {page}: I9 violated: client writer beside {e:?}"
            ));
        }
        if !self.holders.is_empty() && e.writer() {
            return Err(format!(
                "page {page}: I9 violated: plain writer beside holders"
            ));
        }
        // I10: the head is blocked, by the arbitration rules or only by the core.
        let mut probe = self.clone();
        probe.grant_ready(e);
        if probe != *self {
            return Err(format!(
                "page {page}: I10 violated: grantable head in {self:?}"
            ));
        }
        for (i, w) in self.waiters.iter().enumerate() {
            if self.waiters.iter().skip(i + 1).any(|v| v.0 == w.0) {
                return Err(format!("page {page}: client {} waits twice", w.0));
            }
            if self.holder(w.0).is_some() && (i != 0 || w.1 != Access::Write) {
                return Err(format!(
                    "page {page}: holder {} waits other than to upgrade",
                    w.0
                ));
            }
        }
        if self.asked.iter().any(|c| self.holder(*c).is_none()) {
            return Err(format!(
                "page {page}: asked set {:?} names a non-holder",
                self.asked
            ));
        }
        Ok(())
    }
}

/// Interned out-of-line records: pages in the same state share one; freed with its last page.
#[derive(Debug, Default)]
pub(crate) struct Records {
    by_state: FxHashMap<PageState, u32>,
    slots: Vec<Option<(PageState, u64)>>,
    free: Vec<u32>,
    /// Records ever created and freed (for tests: each freed exactly once).
    created: u64,
    freed: u64,
}

impl Records {
    fn intern(&mut self, st: &PageState) -> u32 {
        if let Some(&id) = self.by_state.get(st) {
            if let Some(Some((_, refs))) = self.slots.get_mut(id as usize) {
                *refs += 1;
            }
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[id as usize] = Some((st.clone(), 1));
        self.by_state.insert(st.clone(), id);
        self.created += 1;
        id
    }

    fn get(&self, id: u32) -> Option<&PageState> {
        self.slots.get(id as usize)?.as_ref().map(|s| &s.0)
    }

    fn release(&mut self, id: u32) -> Result<()> {
        let Some(Some((st, refs))) = self.slots.get_mut(id as usize) else {
            return Err(Error::Invariant(format!(
                "record {id} released but not live"
            )));
        };
        *refs -= 1;
        if *refs == 0 {
            let st = st.clone();
            self.by_state.remove(&st);
            self.slots[id as usize] = None;
            self.free.push(id);
            self.freed += 1;
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        let per = std::mem::size_of::<PageState>() + std::mem::size_of::<(u32, u64)>() * 2;
        self.slots
            .iter()
            .flatten()
            .map(|(st, _)| {
                // Stored twice (slot and key).
                2 * (per
                    + (st.holders.capacity() + st.waiters.capacity()) * 8
                    + st.asked.capacity() * 4)
            })
            .sum()
    }
}

/// A census of an object's arbitration state (see [`crate::PageMapper::arbitration`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArbitrationCensus {
    /// Registered clients.
    pub clients: u32,
    /// Pages some client holds.
    pub held_pages: u64,
    /// Requests waiting, over all pages.
    pub waiting: u64,
    /// Pages with side-table state (`ARB_SLOW`).
    pub side_entries: u64,
    /// Live out-of-line records.
    pub records: u64,
    /// Pages referring to an out-of-line record.
    pub record_refs: u64,
    /// Approximate heap bytes of the side table and the records (each shard of the table gives
    /// its memory back as its pages leave it).
    pub side_bytes: u64,
    /// Records created and freed so far.
    pub records_created: u64,
    /// Records freed so far (each exactly once).
    pub records_freed: u64,
    /// Pages with an unusual write-back error recorded (see [`crate::PageMapper::page_error`]).
    pub error_pages: u64,
}

/// What a slow-path change did, to act on after the shard lock is dropped.
#[derive(Default)]
struct Effects {
    changed: bool,
    prev: u64,
    /// Holders to ask to revoke (their callbacks, looked up under the shard lock: a holder cannot
    /// unregister while it holds, since its grants borrow it).
    revoke: Vec<(ShareArc<dyn Revoke>, Revocation)>,
}

/// The per-object arbiter.
pub(crate) struct Arbiter {
    shards: Box<[Mutex<FxHashMap<u64, AccessWord>>]>,
    parks: Box<[Parker]>,
    records: Mutex<Records>,
    clients: Mutex<Vec<Option<ShareArc<dyn Revoke>>>>,
}

enum Poll {
    Granted,
    Waiting,
    /// Blocked only by plain guards, a reclaim, or a copy-on-write frame; with the entry and the
    /// pinned bits that are the waiter's own (its read hold, when upgrading).
    CoreBlocked(EntryWord, u64),
}

enum Begin {
    Granted,
    Waiting,
    Retry(EntryWord),
    WouldBlock,
}

impl Arbiter {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
            parks: (0..SHARDS).map(|_| Parker::new()).collect(),
            records: Mutex::new(Records::default()),
            clients: Mutex::new(Vec::new()),
        }
    }

    fn shard(&self, page: u64) -> usize {
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

    fn decode(e: EntryWord, aw: AccessWord, recs: &Records) -> Result<PageState> {
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
    fn update<R>(
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
    fn after(&self, pages: &PagesShared, slot: &AtomicU64, page: u64, fx: Effects) {
        if !fx.changed {
            return;
        }
        Self::call_revokers(pages, page, fx.revoke);
        self.parks[self.shard(page)].unpark_all();
        if fx.prev & EntryWord::WAIT_BITS != 0 {
            pages.wake_waiters(slot);
        }
    }

    fn revokers(&self, asks: &[(u32, Revocation)]) -> Vec<(ShareArc<dyn Revoke>, Revocation)> {
        if asks.is_empty() {
            return Vec::new();
        }
        let t = lock(&self.clients);
        asks.iter()
            .filter_map(|&(c, ask)| Some((t.get(c as usize)?.clone()?, ask)))
            .collect()
    }

    fn call_revokers(
        pages: &PagesShared,
        page: u64,
        revokers: Vec<(ShareArc<dyn Revoke>, Revocation)>,
    ) {
        for (r, ask) in revokers {
            pages.counters.revocations.incr();
            // A panicking callback must not take the requester down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.revoke(page, ask)));
        }
    }

    // ----- fast paths ------------------------------------------------------------------------

    /// One CAS: grants `want` to inline client `c` if nothing stands in the way.
    #[inline(always)]
    fn fast_grant(slot: &AtomicU64, c: u32, want: Access) -> Option<u32> {
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
            let new = EntryWord::REFERENCED.mask()
                | match want {
                    Access::Read => cur.0 | EntryWord::hold_bit(c, false),
                    Access::Write => cur.0 | EntryWord::hold_bit(c, true) | EntryWord::DIRTY.mask(),
                };
            // Acquire: pairs with the previous holder's / unpinner's Release and the fill's
            // publication.
            match slot.compare_exchange_weak(cur.0, new, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return cur.frame(),
                Err(x) => cur = EntryWord(x),
            }
        }
    }

    /// Turns a plain read pin on `frame` (just taken by a fault) into inline client `c`'s grant.
    fn convert_pin(slot: &AtomicU64, frame: u32, c: u32, want: Access) -> bool {
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

    /// Starts a request: grants it, or queues it (asking conflicting holders to revoke), or with
    /// `try_only` refuses it.
    fn begin(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        c: u32,
        page: u64,
        want: Access,
        try_only: bool,
    ) -> Result<Begin> {
        let pages = &*mapper.pages;
        let mut deadline = None;
        loop {
            if mapper.is_closed() {
                return Err(Error::Closed);
            }
            // Relaxed: only "has it a frame?"; the CASes below validate what they change.
            let slot = mapper
                .map
                .slot(page)
                .filter(|slot| EntryWord(slot.load(Ordering::Relaxed)).frame().is_some());
            let Some(slot) = slot else {
                // No frame: fault the page in.
                if let Some(b) = self.begin_by_fault(mapper, c, page, want, try_only)? {
                    return Ok(b);
                }
                continue;
            };
            if want == Access::Write {
                // Relaxed: a hint; break_cow re-reads and validates.
                let e = EntryWord(slot.load(Ordering::Relaxed));
                let free = EntryWord::PINNED_BITS | EntryWord::RECLAIMING.mask();
                if e.cow() && e.0 & free == 0 {
                    // No one holds it: give the object its private page, then request it (behind
                    // any waiters, as usual; the early break takes nothing from them).
                    let d = *deadline.get_or_insert_with(|| pages.deadline());
                    crate::copies::break_cow(mapper, page, slot, 0, d)?;
                }
            }
            if c < EntryWord::INLINE_CLIENTS && Self::fast_grant(slot, c, want).is_some() {
                return Ok(Begin::Granted);
            }
            match self.enqueue_slow(pages, slot, c, page, want, try_only, false)? {
                Begin::Retry(e) if e.reclaiming() => {
                    let d = *deadline.get_or_insert_with(|| pages.deadline());
                    if pages.wait_entry(slot, e, d) == Parked::TimedOut {
                        return Err(Error::Busy { page });
                    }
                }
                Begin::Retry(_) => {}
                b => return Ok(b),
            }
        }
    }

    /// The slow request: enqueue (asking holders in the way), or grant at once, or (`try_only`)
    /// refuse with [`Error::WouldBlock`]; with `pinned`, also drops the caller's plain read pin in
    /// the same CAS. Returns `Granted`, `Waiting` (counted), or `Retry` (no frame, or reclaiming).
    #[allow(clippy::too_many_arguments)]
    fn enqueue_slow(
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
                Ok(b)
            }
            b => Ok(b),
        }
    }

    /// A request for a page without a frame: fault it in with a plain read pin and relabel the
    /// pin as the client's grant, or (if that is not possible at once) enqueue the request while
    /// still holding the pin, dropping it in the same CAS. `None`: look again.
    fn begin_by_fault(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        c: u32,
        page: u64,
        want: Access,
        try_only: bool,
    ) -> Result<Option<Begin>> {
        let (f, slot) = match MapperShared::pin_with(mapper, page, Want::Read, false) {
            Ok(r) => r,
            Err(Error::Busy { .. }) => return Ok(None), // resident after all, and refused
            Err(e) => return Err(e),
        };
        let pages = &*mapper.pages;
        if Self::convert_pin(slot, f, c, want) {
            return Ok(Some(Begin::Granted));
        }
        if want == Access::Write && EntryWord(slot.load(Ordering::Acquire)).cow() {
            // The fault made a copy-on-write proxy: a write needs a private page first, and the
            // break needs the entry free of our pin. Start over (`begin` breaks it).
            pages.unpin_read(slot);
            return Ok(None);
        }
        match self.enqueue_slow(pages, slot, c, page, want, try_only, true)? {
            Begin::Retry(_) => Err(Error::Invariant(format!(
                "page {page} empty or reclaimed under a pin"
            ))),
            b => Ok(Some(b)),
        }
    }

    /// Re-examines a waiting request of `c` (granting what has become grantable).
    fn poll(&self, slot: &AtomicU64, c: u32, page: u64, want: Access) -> Result<(Poll, Effects)> {
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
    fn cancel(
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

    /// Blocks until `c`'s waiting request is granted, or `deadline` passes (then withdraws it).
    /// A write request at the head blocked only by a copy-on-write frame breaks it.
    #[allow(clippy::too_many_arguments)]
    fn wait(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        want: Access,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let pages = &*mapper.pages;
        let start = Instant::now();
        let park = &self.parks[self.shard(page)];
        loop {
            let mut out = None;
            let parked = park.park(deadline, || {
                let r = self.poll(slot, c, page, want);
                // If our poll granted others, do not park: they must be woken first (by
                // `after`, below, outside this parker's lock), then we poll again.
                let wait = matches!(&r, Ok((Poll::Waiting, fx)) if !fx.changed);
                out = Some(r);
                wait
            });
            let Some(r) = out else {
                return Err(Error::Invariant("parker skipped prepare".into()));
            };
            let (poll, fx) = r?;
            self.after(pages, slot, page, fx);
            let timed_out = match poll {
                Poll::Granted => return Ok(()),
                Poll::CoreBlocked(e, own)
                    if e.cow() && !e.reclaiming() && e.0 & EntryWord::PINNED_BITS == own =>
                {
                    if let Err(err) = crate::copies::break_cow(mapper, page, slot, own, deadline) {
                        // Withdraw (unless granted meanwhile: then the page was broken anyway).
                        return if self.cancel(pages, slot, c, page, want)? {
                            Ok(())
                        } else {
                            Err(err)
                        };
                    }
                    false
                }
                Poll::CoreBlocked(e, _) => pages.wait_entry(slot, e, deadline) == Parked::TimedOut,
                Poll::Waiting => parked == Parked::TimedOut,
            };
            if timed_out {
                return if self.cancel(pages, slot, c, page, want)? {
                    Ok(())
                } else {
                    Err(Error::GrantTimeout {
                        page,
                        waited: start.elapsed(),
                    })
                };
            }
        }
    }

    // ----- release, downgrade, upgrade ------------------------------------------------------

    /// Ends `c`'s access to `page`.
    #[inline(always)]
    fn release(&self, pages: &PagesShared, slot: &AtomicU64, c: u32, page: u64) -> Result<()> {
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

    fn downgrade(&self, pages: &PagesShared, slot: &AtomicU64, c: u32, page: u64) -> Result<()> {
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

    fn upgrade(
        &self,
        mapper: &crate::sync::Arc<MapperShared>,
        slot: &AtomicU64,
        c: u32,
        page: u64,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let pages = &*mapper.pages;
        let (granted, fx) = self.update(slot, page, |st, e| {
            if st.holder(c) != Some(Access::Read) {
                return Err(Error::Invariant(format!(
                    "page {page}: client {c} upgrades without a read grant"
                )));
            }
            if let Some(&(h, Access::Write)) = st.waiters.front() {
                if st.holder(h).is_some() {
                    return Err(Error::UpgradeConflict { page });
                }
            }
            st.waiters.push_front((c, Access::Write));
            st.grant_ready(e);
            Ok(st.holder(c) == Some(Access::Write))
        })?;
        self.after(pages, slot, page, fx);
        if granted {
            return Ok(());
        }
        pages.counters.grant_waits.incr();
        self.wait(mapper, slot, c, page, Access::Write, deadline)
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
    /// record, so a record made after that would sit on a clean page no sync revisits, and
    /// reclaim would skip that page until the object closed. A pool whose other frames are
    /// pinned then deadlocked its obtainers (program seed 136, scenario C43). `DIRTY` is read
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

    /// Checks I9-I12 for every page of `map` and returns the census. Exact when no client
    /// operation runs concurrently (each page is checked under its shard lock, but fast paths do
    /// not take it).
    pub(crate) fn check(
        &self,
        map: &crate::access_map::AccessMap,
    ) -> std::result::Result<ArbitrationCensus, String> {
        let mut census = ArbitrationCensus::default();
        let registered: Vec<bool> = lock(&self.clients).iter().map(Option::is_some).collect();
        census.clients = registered.iter().filter(|r| **r).count() as u32;
        let mut refs: HashMap<u32, u64> = HashMap::new();
        for (page, _) in map.entries() {
            let Some(slot) = map.slot(page) else { continue };
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
        // Shard locks before the records lock, never while holding it (lock order: shard ->
        // records, as in every slow path).
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

// ----- public API ----------------------------------------------------------------------------

/// One client's registration with a memory object (see [`crate::PageMapper::register`]).
///
/// A client requests read or write access to pages and gets [`Grant`]s; conflicting requests wait
/// in each page's FIFO wait list, and holders in the way are asked to give access back through
/// the client's [`Revoke`] callback. A client holds at most one grant or request per page.
/// Dropping the client (or [`Client::unregister`]) ends its registration; its grants and pending
/// requests borrow it, so by then they have been released and withdrawn.
///
/// ```
/// use pagecore::{Pages, MemoryAccessor, Access};
/// let pages = Pages::builder().page_size(64).frames(4).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 64 * 16)?;
/// let (a, b) = (obj.register()?, obj.register()?);
/// a.request(3, Access::Write)?.bytes_mut()?[0] = 7;  // granted, written, released
/// let r1 = a.request(3, Access::Read)?;
/// let r2 = b.request(3, Access::Read)?;               // readers share
/// assert_eq!((r1[0], r2[0]), (7, 7));
/// assert!(b.try_request(4, Access::Write).is_ok());
/// drop((r1, r2));
/// # Ok::<(), pagecore::Error>(())
/// ```
pub struct Client {
    pub(crate) mapper: crate::PageMapper,
    pub(crate) id: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id).finish()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.mapper.shared.arb.unregister(self.id);
    }
}

impl Client {
    /// The client's id within its object (ids 0..4 use the inline entry; lowest free id first).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn shared(&self) -> &crate::sync::Arc<MapperShared> {
        &self.mapper.shared
    }

    fn check(&self, page: u64, want: Access) -> Result<()> {
        self.shared().check_page(page)?;
        if want == Access::Write && !self.shared().accessor.writable() {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Requests `access` to `page` and queues the request if it conflicts; see [`Pending`]. The
    /// holders in conflict are asked to revoke (once each).
    pub fn enqueue(&self, page: u64, access: Access) -> Result<Pending<'_>> {
        self.check(page, access)?;
        let m = self.shared();
        let granted = matches!(
            m.arb.begin(m, self.id, page, access, false)?,
            Begin::Granted
        );
        Ok(Pending {
            client: self,
            page,
            access,
            granted,
            done: false,
        })
    }

    /// Requests `access` to `page`, waiting as long as it takes.
    // Always inlined (with the slow path out of line): a `Grant` returned through memory by an
    // outlined call cost as much as the whole hit (a store-forwarding stall before the release's
    // locked instruction, measured by core/benches/hit_path.rs).
    #[inline(always)]
    pub fn request(&self, page: u64, access: Access) -> Result<Grant<'_>> {
        if let Some(g) = self.fast(page, access) {
            return Ok(g);
        }
        self.request_slow(page, access)
    }

    #[cold]
    #[inline(never)]
    fn request_slow(&self, page: u64, access: Access) -> Result<Grant<'_>> {
        self.enqueue(page, access)?.wait_until(None)
    }

    /// The hit path of an inline client: one CAS on a resident page's entry, no lock.
    #[inline(always)]
    fn fast(&self, page: u64, access: Access) -> Option<Grant<'_>> {
        let m = &**self.shared();
        if self.id >= EntryWord::INLINE_CLIENTS
            || (access == Access::Write && !m.accessor.writable())
        {
            return None;
        }
        let slot = m.map.slot(page)?;
        let frame = Arbiter::fast_grant(slot, self.id, access)?;
        Some(self.make_grant(slot, page, frame, access))
    }

    /// Requests `access` to `page`, waiting at most `timeout`; then the request is withdrawn and
    /// [`Error::GrantTimeout`] returned.
    pub fn request_timeout(
        &self,
        page: u64,
        access: Access,
        timeout: Duration,
    ) -> Result<Grant<'_>> {
        self.enqueue(page, access)?
            .wait_until(Some(Instant::now() + timeout))
    }

    /// Grants `access` to `page` only if it can be granted now: fails with
    /// [`Error::WouldBlock`] (asking no one to revoke) otherwise.
    pub fn try_request(&self, page: u64, access: Access) -> Result<Grant<'_>> {
        self.check(page, access)?;
        let m = self.shared();
        match m.arb.begin(m, self.id, page, access, true)? {
            Begin::Granted => self.grant(page, access),
            _ => Err(Error::WouldBlock { page }),
        }
    }

    /// Ends the registration (as dropping it does).
    pub fn unregister(self) {}

    fn grant(&self, page: u64, access: Access) -> Result<Grant<'_>> {
        let m = &**self.shared();
        let slot = m
            .map
            .slot(page)
            .ok_or_else(|| Error::Invariant(format!("granted page {page} has no entry")))?;
        // Acquire: we learned of the grant by our own CAS or under the shard lock; this load
        // only reads the frame, which cannot change while the page is held.
        let e = EntryWord(slot.load(Ordering::Acquire));
        let frame = e
            .frame()
            .ok_or_else(|| Error::Invariant(format!("granted page {page} is not resident")))?;
        Ok(self.make_grant(slot, page, frame, access))
    }

    #[inline(always)]
    fn make_grant<'c>(
        &'c self,
        slot: &'c AtomicU64,
        page: u64,
        frame: u32,
        access: Access,
    ) -> Grant<'c> {
        let m = &**self.shared();
        let track = m.pages.track(frame);
        Grant {
            client: self,
            pages: &m.pages,
            arb: &m.arb,
            slot,
            page,
            frame,
            access,
            track: ManuallyDrop::new(match access {
                Access::Read => Track::Shared(track.shared()),
                Access::Write => Track::Exclusive(track.exclusive()),
            }),
        }
    }
}

/// A request that may still be waiting in the page's wait list. Dropping it withdraws the request
/// (or releases the access if it was granted meanwhile).
#[must_use = "dropping a Pending withdraws the request"]
pub struct Pending<'c> {
    client: &'c Client,
    page: u64,
    access: Access,
    granted: bool,
    done: bool,
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("client", &self.client.id)
            .field("page", &self.page)
            .field("access", &self.access)
            .finish()
    }
}

impl<'c> Pending<'c> {
    /// The requested page.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Whether the request has been granted (it then takes no waiting to [`Pending::wait`]).
    /// Polling also grants whatever has become grantable on the page.
    pub fn is_granted(&mut self) -> Result<bool> {
        if !self.granted {
            let m = self.client.shared();
            let slot = m.map.slot(self.page).ok_or_else(|| {
                Error::Invariant(format!("waiting page {} has no entry", self.page))
            })?;
            let (poll, fx) = m.arb.poll(slot, self.client.id, self.page, self.access)?;
            m.arb.after(&m.pages, slot, self.page, fx);
            self.granted = matches!(poll, Poll::Granted);
        }
        Ok(self.granted)
    }

    /// Waits (without bound) until granted.
    pub fn wait(self) -> Result<Grant<'c>> {
        self.wait_until(None)
    }

    /// Waits at most `timeout`; then withdraws the request and fails with
    /// [`Error::GrantTimeout`].
    pub fn wait_timeout(self, timeout: Duration) -> Result<Grant<'c>> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(mut self, deadline: Option<Instant>) -> Result<Grant<'c>> {
        let client = self.client;
        let m = client.shared();
        if !self.granted {
            let slot = m.map.slot(self.page).ok_or_else(|| {
                Error::Invariant(format!("waiting page {} has no entry", self.page))
            })?;
            let r = m
                .arb
                .wait(m, slot, client.id, self.page, self.access, deadline);
            // Whatever happened, the request is no longer in the wait list.
            self.done = true;
            r?;
        }
        self.done = true;
        client.grant(self.page, self.access)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let m = self.client.shared();
        let Some(slot) = m.map.slot(self.page) else {
            return;
        };
        let id = self.client.id;
        let granted = self.granted
            || m.arb
                .cancel(&m.pages, slot, id, self.page, self.access)
                .unwrap_or(false);
        if granted {
            let _ = m.arb.release(&m.pages, slot, id, self.page);
        }
    }
}

enum Track {
    Shared(#[allow(dead_code)] Shared),
    Exclusive(#[allow(dead_code)] Exclusive),
}

/// Access granted to one client for one page: derefs to the page's bytes (mutable ones through
/// [`Grant::bytes_mut`] for a write grant). Released on drop or by [`Grant::release`].
///
/// While a grant lives its page stays resident in the same frame (reclaim skips it; it asks the
/// holder to revoke instead), and no other client or plain guard conflicts with it (I9).
#[must_use = "a grant holds its page until dropped"]
pub struct Grant<'c> {
    client: &'c Client,
    pages: &'c PagesShared,
    arb: &'c Arbiter,
    slot: &'c AtomicU64,
    page: u64,
    frame: u32,
    access: Access,
    track: ManuallyDrop<Track>,
}

// SAFETY: a read Grant is a shared borrow of page bytes no one may write while it lives (I9:
// no writer of any kind coexists with a holder); a write Grant is exclusive (I9). Like `&[u8]` /
// `&mut [u8]` they may be sent and shared.
unsafe impl Send for Grant<'_> {}
// SAFETY: as above; `&Grant` only gives `&[u8]`.
unsafe impl Sync for Grant<'_> {}

impl std::fmt::Debug for Grant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("client", &self.client.id)
            .field("page", &self.page)
            .field("access", &self.access)
            .field("frame", &self.frame)
            .finish()
    }
}

impl Grant<'_> {
    /// The page.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// The access held.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The frame backing the page while the grant lives.
    pub fn frame(&self) -> u32 {
        self.frame
    }

    /// The page's bytes, writable: only for a write grant ([`Error::ReadGrant`] otherwise).
    pub fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        if self.access != Access::Write {
            return Err(Error::ReadGrant { page: self.page });
        }
        let pages = &self.client.shared().pages;
        // SAFETY: a write grant excludes every other holder, plain guard, filler and reclaimer
        // (I9, I4), and `&mut self` excludes other borrows through this grant.
        Ok(unsafe { std::slice::from_raw_parts_mut(pages.bytes(self.frame), pages.page_size()) })
    }

    /// Releases the grant now (as dropping it does), reporting an invariant violation if any.
    pub fn release(self) -> Result<()> {
        let mut me = ManuallyDrop::new(self);
        me.end()
    }

    /// Ends the grant; called exactly once, by `release` (which then skips the drop) or `drop`.
    #[inline(always)]
    fn end(&mut self) -> Result<()> {
        // SAFETY: called once (see above); the access ends before the grant.
        unsafe { ManuallyDrop::drop(&mut self.track) };
        self.arb
            .release(self.pages, self.slot, self.client.id, self.page)
    }

    /// Turns a write grant into a read grant (answering a [`Revocation::Downgrade`]); readers
    /// waiting behind are granted. A read grant is left as it is.
    pub fn downgrade(&mut self) -> Result<()> {
        if self.access == Access::Read {
            return Ok(());
        }
        let m = self.client.shared();
        let track = m.pages.track(self.frame);
        // SAFETY: replaced right below; the exclusive access ends before others may read.
        unsafe { ManuallyDrop::drop(&mut self.track) };
        self.track = ManuallyDrop::new(Track::Shared(track.shared()));
        self.access = Access::Read;
        m.arb
            .downgrade(&m.pages, self.slot, self.client.id, self.page)
    }

    /// Turns a read grant into a write grant, waiting as long as it takes for the other holders
    /// (asked to release). A sole reader is upgraded at once. Fails with
    /// [`Error::UpgradeConflict`] if another holder is already upgrading (release instead), and
    /// with [`Error::ReadOnly`] on an object whose accessor is not writable (the grant stays a
    /// read grant).
    pub fn upgrade(&mut self) -> Result<()> {
        self.upgrade_until(None)
    }

    /// As [`Grant::upgrade`], waiting at most `timeout` ([`Error::GrantTimeout`]; the grant
    /// stays a read grant).
    pub fn upgrade_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.upgrade_until(Some(Instant::now() + timeout))
    }

    fn upgrade_until(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.access == Access::Write {
            return Ok(());
        }
        // As a write request would: a grant on a read-only object stays a read grant.
        self.client.check(self.page, Access::Write)?;
        let m = self.client.shared();
        m.arb
            .upgrade(m, self.slot, self.client.id, self.page, deadline)?;
        // The frame changed if the upgrade broke a copy-on-write page. Acquire: we are the sole
        // holder now (granted under the shard lock); this only reads the frame, which cannot
        // change while we hold the page.
        if let Some(f) = EntryWord(self.slot.load(Ordering::Acquire)).frame() {
            self.frame = f;
        }
        let track = m.pages.track(self.frame);
        // SAFETY: replaced right below; we are the sole holder now.
        unsafe { ManuallyDrop::drop(&mut self.track) };
        self.track = ManuallyDrop::new(Track::Exclusive(track.exclusive()));
        self.access = Access::Write;
        Ok(())
    }
}

impl Deref for Grant<'_> {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        let pages = self.pages;
        // SAFETY: the grant keeps the page resident in `frame` and excludes writers other than
        // itself (I9); the memory lives as long as the pool, which the client keeps alive.
        unsafe { std::slice::from_raw_parts(pages.bytes(self.frame), pages.page_size()) }
    }
}

impl Drop for Grant<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // The error (an invariant violation) is reported by `release`; drop cannot return it.
        let _ = self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(holders: &[(u32, Access)], waiters: &[(u32, Access)], asked: &[u32]) -> PageState {
        PageState {
            holders: holders.to_vec(),
            waiters: waiters.iter().copied().collect(),
            asked: asked.to_vec(),
            error: None,
        }
    }

    /// `decode` refuses an entry that says its holders are out of line (`EXT_READ` or
    /// `EXT_WRITE`) while its access word names no record, and a record that is not live: either
    /// would lose holders. The inline form decodes to exactly its hold bits and waitlist.
    #[test]
    fn decode_refuses_out_of_line_bits_without_a_record() {
        let recs = Records::default();
        let inline = AccessWord::inline(&[(2, true)], 0b1000).unwrap();
        let e = EntryWord(EntryWord::resident(0, 0).0 | EntryWord::hold_bit(1, false));
        let st = Arbiter::decode(e, inline, &recs).unwrap();
        assert_eq!(st.holders, vec![(1, Access::Read)]);
        assert_eq!(
            st.waiters.iter().copied().collect::<Vec<_>>(),
            vec![(2, Access::Write)]
        );
        assert_eq!(st.asked, vec![3]);
        for ext in [EntryWord::EXT_READ, EntryWord::EXT_WRITE] {
            let e = EntryWord::resident(0, 0)
                .with(EntryWord::ARB_SLOW, true)
                .with(ext, true);
            assert!(
                Arbiter::decode(e, inline, &recs).is_err(),
                "{e:?} decoded without a record"
            );
        }
        let dead = AccessWord(AccessWord::OUT_OF_LINE.mask() | AccessWord::RECORD.set(0, 7));
        let e = EntryWord::resident(0, 0).with(EntryWord::ARB_SLOW, true);
        assert!(
            Arbiter::decode(e, dead, &recs).is_err(),
            "a dead record decoded"
        );
    }

    /// `Records::bytes`, the records' part of `ArbitrationCensus::side_bytes`: each live record
    /// is stored twice (its slot and its key in the interning map), each copy with its index
    /// entry and the heap of its lists; pages in the same state share one record; a freed
    /// record costs nothing.
    #[test]
    fn record_bytes_count_each_live_record_with_its_lists() {
        use std::mem::size_of;
        let mut recs = Records::default();
        assert_eq!(recs.bytes(), 0);
        let fixed = size_of::<PageState>() + 2 * size_of::<(u32, u64)>();
        // One holder, three waiters, one asked: the stored clones have exactly these lengths.
        let a = state(
            &[(4, Access::Read)],
            &[(5, Access::Write), (6, Access::Read), (7, Access::Read)],
            &[4],
        );
        let ia = recs.intern(&a);
        let bytes_a = 2 * (fixed + (1 + 3) * 8 + 4);
        assert_eq!(recs.bytes(), bytes_a);
        assert_eq!(recs.intern(&a), ia, "equal states share a record");
        assert_eq!(recs.bytes(), bytes_a);
        let b = state(&[(4, Access::Read), (5, Access::Read)], &[], &[]);
        let ib = recs.intern(&b);
        assert_eq!(recs.bytes(), bytes_a + 2 * (fixed + 2 * 8));
        recs.release(ia).unwrap();
        assert_eq!(
            recs.bytes(),
            bytes_a + 2 * (fixed + 2 * 8),
            "a is still referenced"
        );
        recs.release(ia).unwrap();
        recs.release(ib).unwrap();
        assert_eq!(recs.bytes(), 0);
        assert_eq!((recs.created, recs.freed), (2, 2));
    }

    /// `PageState::check` (what `PageMapper::arbitration` runs on every page) accepts a valid
    /// state and rejects each kind of broken one, naming the invariant.
    #[test]
    fn check_rejects_each_broken_page_state() {
        use Access::{Read, Write};
        let e = EntryWord::resident(3, 0);
        let ok = state(&[(0, Read), (1, Read)], &[(2, Write)], &[0, 1]);
        assert_eq!(ok.check(7, e), Ok(()));
        let broken = [
            (state(&[(0, Write), (1, Write)], &[], &[]), e, "I9"),
            (state(&[(0, Write), (1, Read)], &[], &[]), e, "I9"),
            (
                state(&[(0, Write)], &[], &[]),
                EntryWord::resident(3, 1),
                "I9",
            ),
            (
                state(&[(0, Read)], &[], &[]),
                e.with(EntryWord::WRITER, true),
                "I9",
            ),
            (state(&[], &[(1, Read)], &[]), e, "I10"),
            (
                state(&[(0, Write)], &[(1, Read), (1, Read)], &[]),
                e,
                "waits twice",
            ),
            (
                state(&[(0, Read)], &[(2, Write), (0, Write)], &[]),
                e,
                "other than to upgrade",
            ),
            // (Blocked by a reclaim, so that I10 holds.)
            (
                state(&[(0, Read)], &[(0, Read)], &[]),
                e.with(EntryWord::RECLAIMING, true),
                "other than to upgrade",
            ),
            (state(&[(0, Read)], &[(2, Write)], &[1]), e, "asked set"),
        ];
        for (st, e, why) in broken {
            let r = st.check(7, e);
            assert!(
                r.as_ref().is_err_and(|m| m.contains(why)),
                "{st:?} in {e:?}: {r:?}, expected an error naming {why}"
            );
        }
    }

    /// Which waiter would be granted but for the core (plain guards, a reclaim): the head writer
    /// when nobody else holds the page, readers up to the first writer while no writer holds it.
    #[test]
    fn ready_but_for_core_follows_the_grant_rules() {
        use Access::{Read, Write};
        let st = state(&[], &[(1, Write), (2, Read)], &[]);
        assert!(st.ready_but_for_core(1));
        assert!(
            !st.ready_but_for_core(2),
            "a reader behind a waiting writer"
        );
        let st = state(&[(0, Read)], &[(1, Write)], &[]);
        assert!(!st.ready_but_for_core(1), "a writer beside a reader");
        let st = state(&[(0, Read)], &[(0, Write)], &[]);
        assert!(st.ready_but_for_core(0), "a sole reader upgrading");
        let st = state(&[(0, Read)], &[(1, Read), (2, Read)], &[]);
        assert!(st.ready_but_for_core(1) && st.ready_but_for_core(2));
        let st = state(&[(0, Write)], &[(1, Read)], &[]);
        assert!(!st.ready_but_for_core(1), "a reader beside a writer");
        assert!(!st.ready_but_for_core(3), "not waiting");
    }

    /// `grant_ready` grants nothing while the core stands in the way (the page absent, being
    /// reclaimed, written by a plain guard, or shared copy-on-write for a writer), and reports
    /// that only the core blocks the head.
    #[test]
    fn grant_ready_respects_the_core() {
        use Access::{Read, Write};
        let e = EntryWord::resident(3, 0);
        let blocked = [
            (Read, EntryWord(0)),
            (Read, e.with(EntryWord::RECLAIMING, true)),
            (Read, e.with(EntryWord::WRITER, true)),
            (Write, EntryWord::resident(3, 1)),
            (Write, e.with(EntryWord::COW, true)),
        ];
        for (want, e) in blocked {
            let mut st = state(&[], &[(1, want)], &[]);
            assert!(
                st.grant_ready(e),
                "{want:?} in {e:?}: not blocked by the core"
            );
            assert_eq!(st.holders, [], "{want:?} granted in {e:?}");
        }
        let mut st = state(&[], &[(1, Read), (2, Read), (3, Write)], &[]);
        assert!(!st.grant_ready(e));
        assert_eq!(st.holders, [(1, Read), (2, Read)]);
        assert_eq!(st.waiters, [(3, Write)]);
    }
}
