//! The public API of arbitration: a registered [`Client`], a [`Pending`] request and a
//! [`Grant`].

use super::*;
use crate::object::mapper::MapperShared;
use crate::object::PageMapper;

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
    /// holders in conflict are asked to revoke (once each). If the page is absent, `enqueue`
    /// faults it in on the calling thread first (the accessor's fill and, if no frame is free, a
    /// wait for one up to the pool's bound), also when the `Pending` is then awaited: on an async
    /// executor, call it where blocking that long is acceptable (e.g. `spawn_blocking`) if the
    /// pool may run out of frames.
    // Always inlined, like `request`: a `Pending` returned through memory by an outlined call
    // stalls the grant's release (measured by the hit bench's `pagecore_client_async` peer).
    #[inline(always)]
    pub fn enqueue(&self, page: u64, access: Access) -> Result<Pending<'_>> {
        if let Some(held) = self.fast(page, access) {
            // Granted at once on the fast path, as `request` would be.
            return Ok(Pending {
                client: self,
                page,
                access,
                granted: true,
                done: false,
                held: Some(held),
            });
        }
        self.enqueue_slow(page, access)
    }

    #[cold]
    #[inline(never)]
    fn enqueue_slow(&self, page: u64, access: Access) -> Result<Pending<'_>> {
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
            held: None,
        })
    }

    /// Requests `access` to `page`, waiting as long as it takes.
    // Always inlined (with the slow path out of line): a `Grant` returned through memory by an
    // outlined call cost as much as the whole hit (a store-forwarding stall before the release's
    // locked instruction, measured by core/benches/hit_path.rs).
    #[inline(always)]
    pub fn request(&self, page: u64, access: Access) -> Result<Grant<'_>> {
        // The fast and the slow path meet on (entry, frame), two registers, and the grant is made
        // once after: a grant made on each path and merged cost the hit path a trip of the whole
        // grant through the stack (about a fifth of a hit, measured; README's hit-path table).
        let (slot, frame) = match self.fast(page, access) {
            Some(held) => held,
            None => self.request_slow(page, access)?,
        };
        Ok(self.make_grant(slot, page, frame, access))
    }

    #[cold]
    #[inline(never)]
    fn request_slow(&self, page: u64, access: Access) -> Result<(&AtomicU64, u32)> {
        // Not `enqueue`: `request` has just tried the fast path.
        self.enqueue_slow(page, access)?.wait_held(None)
    }

    /// The hit path of an inline client: one CAS on a resident page's entry, no lock. Returns the
    /// page's entry and frame, now held by this client.
    #[inline(always)]
    fn fast(&self, page: u64, access: Access) -> Option<(&AtomicU64, u32)> {
        let m = &**self.shared();
        if self.id >= EntryWord::INLINE_CLIENTS
            || (access == Access::Write && !m.accessor.writable())
        {
            return None;
        }
        let slot = m.map.slot(page)?;
        let frame = Arbiter::fast_grant(slot, self.id, access)?;
        m.hit();
        Some((slot, frame))
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
        let (slot, frame) = self.held(page)?;
        Ok(self.make_grant(slot, page, frame, access))
    }

    /// The entry and frame of a page this client was just granted.
    fn held(&self, page: u64) -> Result<(&AtomicU64, u32)> {
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
        Ok((slot, frame))
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
        let track = m.page_track(page, frame);
        Grant {
            client: self,
            pages: &m.pages,
            arb: &m.arb,
            slot,
            page,
            frame,
            bytes: m.held_ptr(page, frame, access == Access::Write),
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
    /// The entry and frame, when granted on the fast path at `enqueue` (nothing to look up).
    held: Option<(&'c AtomicU64, u32)>,
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

    fn wait_until(self, deadline: Option<Instant>) -> Result<Grant<'c>> {
        let (client, page, access) = (self.client, self.page, self.access);
        let (slot, frame) = self.wait_held(deadline)?;
        Ok(client.make_grant(slot, page, frame, access))
    }

    /// As [`Pending::wait_until`], giving the page's entry and frame, held by the client.
    fn wait_held(mut self, deadline: Option<Instant>) -> Result<(&'c AtomicU64, u32)> {
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
        match self.held {
            Some(held) => Ok(held),
            None => client.held(self.page),
        }
    }
}

/// A request is a future: `client.enqueue(page, access)?.await` waits for the grant without
/// blocking a thread, on any executor (core depends on no runtime). Dropping the future before it
/// completes withdraws the request, as dropping a `Pending` does (if it was granted meanwhile,
/// the grant is released). What `enqueue` did before it returned, such as faulting the page in,
/// is done: a fill never depends on the future being polled. A write request held up only by a
/// copy-on-write page breaks it while being polled (a page copy, blocking the poll briefly). The
/// future must not be polled again after it completed: it then returns [`Error::Invariant`].
///
/// ```
/// use pagecore::{Access, MemoryAccessor, Pages};
/// use std::future::Future;
/// use std::task::{Context, Poll, Waker};
///
/// let pages = Pages::builder().page_size(64).frames(4).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 64 * 4)?;
/// let (reader, writer) = (obj.register()?, obj.register()?);
/// let r = reader.request(1, Access::Read)?;
/// let mut fut = std::pin::pin!(writer.enqueue(1, Access::Write)?);
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(fut.as_mut().poll(&mut cx).is_pending());      // the reader is in the way
/// drop(r);                                               // wakes the task
/// let Poll::Ready(g) = fut.as_mut().poll(&mut cx) else { panic!() };
/// g?.bytes_mut()?[0] = 5;
/// # Ok::<(), pagecore::Error>(())
/// ```
impl<'c> std::future::Future for Pending<'c> {
    type Output = Result<Grant<'c>>;

    #[inline(always)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll as Task;
        // `Pending` is `Unpin`: references, numbers and flags.
        let this = self.get_mut();
        if let (Some((slot, frame)), false) = (this.held, this.done) {
            this.done = true;
            return Task::Ready(Ok(this.client.make_grant(
                slot,
                this.page,
                frame,
                this.access,
            )));
        }
        this.poll_slow(cx)
    }
}

impl<'c> Pending<'c> {
    #[cold]
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<Grant<'c>>> {
        use std::task::Poll as Task;
        let this = self;
        if this.done {
            return Task::Ready(Err(Error::Invariant(format!(
                "the request for page {} was polled after it completed",
                this.page
            ))));
        }
        let client = this.client;
        let m = client.shared();
        if !this.granted {
            let Some(slot) = m.map.slot(this.page) else {
                this.done = true;
                return Task::Ready(Err(Error::Invariant(format!(
                    "waiting page {} has no entry",
                    this.page
                ))));
            };
            match m
                .arb
                .poll_wait(m, slot, client.id, this.page, this.access, cx)
            {
                Task::Pending => return Task::Pending,
                Task::Ready(r) => {
                    // Whatever happened, the request is no longer in the wait list.
                    this.done = true;
                    if let Err(e) = r {
                        return Task::Ready(Err(e));
                    }
                }
            }
        }
        this.done = true;
        Task::Ready(
            client
                .held(this.page)
                .map(|(slot, frame)| client.make_grant(slot, this.page, frame, this.access)),
        )
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
    /// The page's bytes: the frame's, or a mapped object's own memory's (`page_ptr`).
    bytes: *mut u8,
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
        // SAFETY: a write grant excludes every other holder, plain guard, filler and reclaimer
        // (I9, I4), and `&mut self` excludes other borrows through this grant.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.bytes, self.pages.page_size()) })
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
        let track = m.page_track(self.page, self.frame);
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
        self.bytes = m.held_ptr(self.page, self.frame, true);
        let track = m.page_track(self.page, self.frame);
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
        // SAFETY: the grant keeps the page resident in `frame` and excludes writers other than
        // itself (I9); the memory lives as long as the pool (or the mapped object), which the
        // client keeps alive.
        unsafe { std::slice::from_raw_parts(self.bytes, self.pages.page_size()) }
    }
}

impl Drop for Grant<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // The error (an invariant violation) is reported by `release`; drop cannot return it.
        let _ = self.end();
    }
}

impl PageMapper {
    /// Registers a client of this object whose holders are never asked to revoke anything (its
    /// grants end when it drops them). The client keeps the object open.
    pub fn register(&self) -> Result<Client> {
        self.register_with(|_page: u64, _ask: Revocation| {})
    }

    /// Registers a client with a revocation callback (see [`Revoke`]).
    pub fn register_with(&self, revoke: impl Revoke) -> Result<Client> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let id = self.shared.arb.register(ShareArc::new(revoke));
        Ok(Client {
            mapper: self.clone(),
            id,
        })
    }
}

/// A [`Grant`] that owns a share of its client, so it can live beside the client in one struct,
/// be returned from a function that made it, or be moved to another thread, with no borrow of
/// the client: `OwnedGrant::request(&client, page, access)` with the client in an
/// `Arc` ([`ShareArc`](crate::ShareArc) is std's). It is a [`Grant`] in every other way (derefs to the page's bytes,
/// [`bytes_mut`](OwnedGrant::bytes_mut) for a write grant, downgrade, upgrade, released on drop),
/// and the client stays registered until its last owned grant is gone. The borrow-checked
/// [`Grant`] costs one reference less; use it where it fits.
///
/// ```
/// use pagecore::{Access, Client, MemoryAccessor, OwnedGrant, Pages};
/// use std::{sync::Arc, thread};
///
/// /// A cursor over an object's pages that keeps the page it is on.
/// struct Cursor {
///     client: Arc<Client>,
///     at: Option<OwnedGrant>,
/// }
///
/// impl Cursor {
///     fn seek(&mut self, page: u64) -> pagecore::Result<u8> {
///         self.at = None; // the old page first: a client holds one grant per page
///         let g = OwnedGrant::request(&self.client, page, Access::Read)?;
///         let first = g[0];
///         self.at = Some(g);
///         Ok(first)
///     }
/// }
///
/// let pages = Pages::builder().page_size(64).frames(4).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
/// obj.write(5)?[0] = 42;
/// let mut c = Cursor { client: Arc::new(obj.register()?), at: None };
/// assert_eq!(c.seek(5)?, 42);
/// let g = c.at.take().unwrap();
/// let t = thread::spawn(move || g[0]); // the grant moves to another thread
/// assert_eq!(t.join().unwrap(), 42);
/// # Ok::<(), pagecore::Error>(())
/// ```
pub struct OwnedGrant {
    /// Borrows `*client` (`'static` stands for "as long as `client` below"): dropped first.
    grant: ManuallyDrop<Grant<'static>>,
    client: ShareArc<Client>,
}

impl OwnedGrant {
    /// As [`Client::request`], for a client shared through an `Arc`.
    pub fn request(client: &ShareArc<Client>, page: u64, access: Access) -> Result<Self> {
        Self::make(client, |c| c.request(page, access))
    }

    /// As [`Client::request_timeout`], for a client shared through an `Arc`.
    pub fn request_timeout(
        client: &ShareArc<Client>,
        page: u64,
        access: Access,
        timeout: Duration,
    ) -> Result<Self> {
        Self::make(client, |c| c.request_timeout(page, access, timeout))
    }

    /// As [`Client::try_request`], for a client shared through an `Arc`.
    pub fn try_request(client: &ShareArc<Client>, page: u64, access: Access) -> Result<Self> {
        Self::make(client, |c| c.try_request(page, access))
    }

    fn make<'c>(
        client: &'c ShareArc<Client>,
        get: impl FnOnce(&'c Client) -> Result<Grant<'c>>,
    ) -> Result<Self> {
        let grant = get(client)?;
        // SAFETY: the grant borrows the `Client` inside the `Arc`'s allocation, whose address does
        // not change while any `Arc` to it lives. `OwnedGrant` keeps such an `Arc` (`client`,
        // cloned below) for as long as the grant: the grant is dropped first (`Drop`, or
        // `release`), and the `'static` lifetime never leaves this type (every method reborrows
        // it for `&self`/`&mut self`).
        let grant: Grant<'static> =
            unsafe { std::mem::transmute::<Grant<'c>, Grant<'static>>(grant) };
        Ok(Self {
            grant: ManuallyDrop::new(grant),
            client: client.clone(),
        })
    }

    /// The client holding the grant.
    pub fn client(&self) -> &ShareArc<Client> {
        &self.client
    }

    /// The page granted.
    pub fn page(&self) -> u64 {
        self.grant.page()
    }

    /// The access granted (a read grant may have been upgraded, a write grant downgraded).
    pub fn access(&self) -> Access {
        self.grant.access()
    }

    /// The frame backing the page while the grant lives.
    pub fn frame(&self) -> u32 {
        self.grant.frame()
    }

    /// As [`Grant::bytes_mut`].
    pub fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        self.grant.bytes_mut()
    }

    /// As [`Grant::downgrade`].
    pub fn downgrade(&mut self) -> Result<()> {
        self.grant.downgrade()
    }

    /// As [`Grant::upgrade`].
    pub fn upgrade(&mut self) -> Result<()> {
        self.grant.upgrade()
    }

    /// As [`Grant::upgrade_timeout`].
    pub fn upgrade_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.grant.upgrade_timeout(timeout)
    }

    /// Releases the grant now (as dropping it does), reporting an invariant violation if any.
    pub fn release(self) -> Result<()> {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: taken once; `me` is never dropped, so neither is the grant again.
        let grant = unsafe { ManuallyDrop::take(&mut me.grant) };
        let r = grant.release();
        // SAFETY: read once out of the never-dropped `me`, after the grant that borrowed it ended.
        drop(unsafe { std::ptr::read(&me.client) });
        r
    }
}

impl Drop for OwnedGrant {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, before `client` (a field dropped after this body), which
        // the grant borrows.
        unsafe { ManuallyDrop::drop(&mut self.grant) };
    }
}

impl Deref for OwnedGrant {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.grant
    }
}

impl std::fmt::Debug for OwnedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedGrant")
            .field("client", &self.client.id())
            .field("page", &self.page())
            .field("access", &self.access())
            .finish()
    }
}
