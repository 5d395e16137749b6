//! Faults awaited as futures: [`ReadGuardFuture`] and [`WriteGuardFuture`]
//! ([`PageMapper::read_async`], [`PageMapper::write_async`]). Their protocol (what a poll waits
//! for, where it registers the waker, what a drop withdraws) is `mapper/poll.rs`'s.

use super::mapper::poll::PollState;
use super::mapper::{MapperShared, Want};
use super::PageMapper;
use crate::error::Result;
use crate::sync::atomic::AtomicU64;
use crate::{ReadGuard, WriteGuard};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One awaited fault: what both futures share.
struct Fault<'a> {
    mapper: &'a PageMapper,
    page: u64,
    want: Want,
    state: PollState,
    /// It returned `Ready`: polling it again is an error (as for [`crate::Pending`]).
    done: bool,
}

impl<'a> Fault<'a> {
    fn new(mapper: &'a PageMapper, page: u64, want: Want) -> Self {
        Fault {
            mapper,
            page,
            want,
            state: PollState::default(),
            done: false,
        }
    }

    #[inline(always)]
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(u32, &'a AtomicU64)>> {
        if self.done {
            return Poll::Ready(Err(crate::Error::Invariant(format!(
                "the fault of page {} was polled after it completed",
                self.page
            ))));
        }
        let shared: &'a crate::sync::Arc<MapperShared> = &self.mapper.shared;
        let r = MapperShared::poll_pin(shared, self.page, self.want, &mut self.state, cx);
        self.done = r.is_ready();
        r
    }
}

impl Drop for Fault<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // A future dropped while it waits for a frame stops counting as a waiting obtainer; a
        // waker it left on a parker is woken once for nothing by the next wake-up.
        self.state.withdraw(&self.mapper.shared.pages);
    }
}

impl std::fmt::Debug for Fault<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fault")
            .field("page", &self.page)
            .field("want", &self.want)
            .finish()
    }
}

/// A read fault awaited as a future ([`PageMapper::read_async`]): resolves to the page's
/// [`ReadGuard`], as [`PageMapper::read`] returns it, without blocking the thread that polls it
/// while it waits for a writer or a reclaim of the page, another fault's fill of the page, or a
/// frame. Dropping it withdraws the fault and leaves nothing behind (a fill it started has
/// already ended: a fill runs within one poll). It has no deadline: wrap it in the executor's
/// time-out (`tokio::time::timeout`), which drops it. Polled again after it completed, it
/// returns [`Error::Invariant`](crate::Error::Invariant).
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReadGuardFuture<'a> {
    fault: Fault<'a>,
}

impl<'a> Future for ReadGuardFuture<'a> {
    type Output = Result<ReadGuard<'a>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fault = &mut self.get_mut().fault;
        let (mapper, page) = (fault.mapper, fault.page);
        fault
            .poll(cx)
            .map(|r| r.map(|(frame, slot)| mapper.read_guard(page, frame, slot)))
    }
}

/// A write fault awaited as a future ([`PageMapper::write_async`]): resolves to the page's
/// [`WriteGuard`], as [`PageMapper::write`] returns it; it waits as a [`ReadGuardFuture`] does,
/// for readers of the page too. A write to a copy-on-write page copies it within a poll.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WriteGuardFuture<'a> {
    fault: Fault<'a>,
}

impl<'a> Future for WriteGuardFuture<'a> {
    type Output = Result<WriteGuard<'a>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fault = &mut self.get_mut().fault;
        let (mapper, page) = (fault.mapper, fault.page);
        fault
            .poll(cx)
            .map(|r| r.map(|(frame, slot)| mapper.write_guard(page, frame, slot)))
    }
}

impl PageMapper {
    /// As [`PageMapper::read`], awaited: a task waits for the page (a writer or a reclaim of it,
    /// another fault's fill of it, a frame for its own fill) without blocking its thread, on any
    /// executor (the future registers the task's waker where a blocking fault would park).
    ///
    /// Runs within a poll, as a blocking fault runs it: the accessor's fill of the page and the
    /// write-back of a dirty page evicted for its frame (a fault's own I/O, not a wait), and a
    /// write's copy-on-write break (a page copy, into a frame the future awaited first).
    ///
    /// A miss of a page an object in a chain of copies reads through its frozen layers (a copy
    /// made by [`PageMapper::copy`], and the object it was made of, for the pages neither has
    /// written since) first awaits the page in the layer that holds it (its fill there, a frame
    /// for it), then publishes the copy's page within the poll without waiting; a page no layer
    /// holds (an anonymous copy's zeros) awaits its frame as any miss does. Not yet async there:
    /// every miss of a mapped object's page that its layers hold (a private mapping's object,
    /// [`Mapping::object`](crate::Mapping::object), or a mapped object copied since) waits for its
    /// frame within the poll as a blocking fault does, up to the pool's bound, and so does a
    /// mapped file's first write of a page after a copy (resolving the layer's page); so does,
    /// rarely, the publication after a collapse or a copy of the chain between the two.
    ///
    /// Elsewhere the future has no deadline (not the pool's
    /// [`wait_bound`](crate::PagesBuilder::wait_bound)): drop it to give up, for example through
    /// the executor's time-out. It may wait for ever where a blocking fault would fail with
    /// `Exhausted` (every frame pinned for good, or holding pages whose write-back keeps failing
    /// with an unusual error, which reclaim skips; or, for a write's copy-on-write break, no
    /// frame left but the one holding the layer page it copies from, which it never takes:
    /// a break needs both at once); the object's close wakes it (it then fails
    /// with [`Error::Closed`](crate::Error::Closed)). While it waits for a frame it counts in
    /// [`Census::waiting_for_frames`](crate::Census::waiting_for_frames). A dropped future
    /// leaves nothing behind: it never joins another fault's fill (it waits for the fill's end,
    /// then looks again), and it records a fill only once it has the frame, filling it in the
    /// same poll. A future left pending and never polled or dropped again (forgotten, or on a
    /// stalled executor) stays counted: until it goes, every fill notifies the pool's parker and
    /// evictions are not batched.
    ///
    /// Wakers are woken by other threads' unpins, fills and frees, sometimes while pagecore
    /// holds an internal lock (a fill's shard lock): a waker must schedule its task, not poll
    /// it inline on the waking thread (no mainstream executor does; tokio, smol and
    /// `futures::executor` schedule).
    ///
    /// ```
    /// use pagecore::{MemoryAccessor, Pages};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // A toy executor: polls until ready (the futures below complete at their first poll).
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #     }
    /// # }
    /// let pages = Pages::builder().page_size(64).frames(2).build()?;
    /// let obj = pages.open(MemoryAccessor::new(), 64 * 8)?;
    /// block_on(async {
    ///     obj.write_async(5).await?[0] = 7;      // a miss: filled within the poll
    ///     assert_eq!(obj.read_async(5).await?[0], 7);
    ///     Ok::<(), pagecore::Error>(())
    /// })?;
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    #[inline(always)]
    pub fn read_async(&self, page: u64) -> ReadGuardFuture<'_> {
        ReadGuardFuture {
            fault: Fault::new(self, page, Want::Read),
        }
    }

    /// As [`PageMapper::write`], awaited (see [`PageMapper::read_async`]); marks the page dirty.
    pub fn write_async(&self, page: u64) -> WriteGuardFuture<'_> {
        WriteGuardFuture {
            fault: Fault::new(self, page, Want::Write),
        }
    }
}
