//! Arbitration: which clients of an object may read or write each page (seed 000), with FIFO
//! wait lists, revocation, and compact per-page state.
//!
//! Files: page states and records (`state.rs`), the arbiter on entries and its side table
//! (`arbiter.rs`, `release.rs`) — below the object layer, they see entries and pages only — and,
//! above the object and its copies (SPEC.md §1's layers), a request's path that faults pages in
//! and breaks copy-on-write pages (`request.rs`) and the public handles (`client.rs`).
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
//!   lock, so no wake-up is lost (the lock hierarchy, SPEC.md §5.1: `ArbPark` -> `ArbShard` ->
//!   `Records` -> `Clients`).

mod arbiter;
pub(crate) mod client;
mod release;
mod request;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use arbiter::Arbiter;
use arbiter::{Begin, Poll};
pub(crate) use state::{PageError, PageState, Records};

pub use crate::access::Access;
use crate::error::{Error, Result};
use crate::frames::PagesShared;
use crate::pack::{AccessWord, EntryWord};
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

/// What the pager asks a holder to do (see [`Revoke`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// Give access back (drop the grant).
    Release,
    /// Keep reading but stop writing ([`Grant::downgrade`](crate::Grant::downgrade)); a release answers it too.
    Downgrade,
}

/// A client's revocation callback: the pager calls it to ask the client to give back access to
/// `page`. The client answers by dropping (or downgrading) its [`Grant`](crate::Grant),
/// typically from the thread that owns it: the callback should only signal that thread, never
/// block.
///
/// It is called at most once per holder and conflict, from the thread of the request (or the
/// reclaim, or the thread serving a [`Mapping`](crate::Mapping)'s fault) that needs the page,
/// outside every pagecore lock. It may arrive late, after the client
/// released the page on its own: ignore a revocation for a page you no longer hold. Any
/// `Fn(u64, Revocation) + Send + Sync + 'static` closure is a `Revoke`; for one callback serving
/// clients of several objects, [`RevokeIn`] wraps a closure that is told the object too.
pub trait Revoke: Send + Sync + 'static {
    /// Asks the client to give access to `page` back, as `ask` says.
    fn revoke(&self, page: u64, ask: Revocation);

    /// As [`Revoke::revoke`], told the object the page belongs to (its
    /// [`PageMapper::id`](crate::PageMapper::id)). The pager calls this one; by default it calls
    /// [`Revoke::revoke`]. Implement it to serve the clients of several objects with one
    /// callback.
    fn revoke_in(&self, object: u64, page: u64, ask: Revocation) {
        let _ = object;
        self.revoke(page, ask)
    }
}

impl<F> Revoke for F
where
    F: Fn(u64, Revocation) + Send + Sync + 'static,
{
    fn revoke(&self, page: u64, ask: Revocation) {
        self(page, ask)
    }
}

/// A [`Revoke`] from a closure told the object as well as the page: `|object, page, ask|`, so one
/// callback (one channel, one owner thread) serves clients of several objects.
///
/// ```
/// use pagecore::{Access, MemoryAccessor, Pages, Revocation, RevokeIn};
/// use std::sync::mpsc;
///
/// let pages = Pages::builder().page_size(64).frames(8).build()?;
/// let (a, b) = (pages.open(MemoryAccessor::new(), 64 * 4)?, pages.open(MemoryAccessor::new(), 64 * 4)?);
/// let (tx, rx) = mpsc::channel::<(u64, u64, Revocation)>();
/// // One owner thread's channel, told the object, page and ask, for clients of both objects.
/// let tell = |tx: mpsc::Sender<_>| RevokeIn(move |object, page, ask| {
///     let _ = tx.send((object, page, ask)); // signal the owner thread, never block
/// });
/// let holder_a = a.register_with(tell(tx.clone()))?;
/// let _holder_b = b.register_with(tell(tx))?;
/// let g = holder_a.request(2, Access::Read)?;
/// let writer = a.register()?;
/// assert!(writer.try_request(2, Access::Write).is_err()); // asks nobody: would block
/// let pending = writer.enqueue(2, Access::Write)?;       // asks the reader to release
/// assert_eq!(rx.recv().unwrap(), (a.id(), 2, Revocation::Release));
/// drop(g);
/// let _w = pending.wait()?;
/// # Ok::<(), pagecore::Error>(())
/// ```
pub struct RevokeIn<F>(pub F);

impl<F> Revoke for RevokeIn<F>
where
    F: Fn(u64, u64, Revocation) + Send + Sync + 'static,
{
    /// Not called by the pager (it calls [`Revoke::revoke_in`]); told no object, it passes
    /// `u64::MAX`.
    fn revoke(&self, page: u64, ask: Revocation) {
        (self.0)(u64::MAX, page, ask)
    }

    fn revoke_in(&self, object: u64, page: u64, ask: Revocation) {
        (self.0)(object, page, ask)
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
    /// Out-of-line records created so far (over the object's life; `records` counts those
    /// still in use).
    pub records_created: u64,
    /// Records freed so far (each exactly once).
    pub records_freed: u64,
    /// Pages with an unusual write-back error recorded (see [`crate::PageMapper::page_error`]).
    pub error_pages: u64,
}
