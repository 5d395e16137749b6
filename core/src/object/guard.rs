//! Guards: in-process access to a page's bytes.
//!
//! A [`ReadGuard`] holds a read pin (shared with other readers); a [`WriteGuard`] holds the
//! page's writer bit (exclusive) and marked the page dirty when it was taken. While a guard
//! lives its frame cannot be reclaimed, refilled or written by anyone else (I4), so the bytes it
//! shows are exactly the page's (never another page's: the pin was taken by a CAS on this page's
//! own AccessMap entry while it named the frame).

use crate::frames::PagesShared;
use crate::sync::atomic::AtomicU64;
use crate::sync::{Exclusive, Shared};
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// Shared access to one resident page. Derefs to the page's bytes.
///
/// ```
/// # use pagecore::{Pages, MemoryAccessor};
/// let pages = Pages::builder().page_size(4096).frames(4).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 1 << 20)?;
/// let g = obj.read(3)?;
/// assert!(g.iter().all(|&b| b == 0));
/// # Ok::<(), pagecore::Error>(())
/// ```
#[must_use = "a guard pins its page until dropped"]
pub struct ReadGuard<'a> {
    pub(crate) pages: &'a PagesShared,
    pub(crate) slot: &'a AtomicU64,
    pub(crate) frame: u32,
    pub(crate) page: u64,
    /// The page's bytes: the frame's, or a mapped object's own memory's (`page_ptr`).
    pub(crate) bytes: *mut u8,
    pub(crate) track: ManuallyDrop<Shared>,
}

/// Exclusive access to one resident page. Derefs mutably to the page's bytes.
///
/// ```
/// # use pagecore::{Pages, MemoryAccessor};
/// let pages = Pages::builder().page_size(4096).frames(4).build()?;
/// let obj = pages.open(MemoryAccessor::new(), 1 << 20)?;
/// obj.write(0)?[..5].copy_from_slice(b"hello");
/// assert_eq!(&obj.read(0)?[..5], b"hello");
/// # Ok::<(), pagecore::Error>(())
/// ```
#[must_use = "a guard pins its page until dropped"]
pub struct WriteGuard<'a> {
    pub(crate) pages: &'a PagesShared,
    pub(crate) slot: &'a AtomicU64,
    pub(crate) frame: u32,
    pub(crate) page: u64,
    /// The page's bytes: the frame's, or a mapped object's own memory's (`page_ptr`).
    pub(crate) bytes: *mut u8,
    pub(crate) track: ManuallyDrop<Exclusive>,
}

// SAFETY: a ReadGuard is a shared borrow of page bytes that no one may write while it lives (the
// read pin excludes writers, fillers and reclaimers: I4); like `&[u8]` it may be sent and shared.
unsafe impl Send for ReadGuard<'_> {}
// SAFETY: as above.
unsafe impl Sync for ReadGuard<'_> {}
// SAFETY: a WriteGuard is an exclusive borrow (writer bit: no other pin can exist); like
// `&mut [u8]` it may be sent, and shared as `&[u8]`.
unsafe impl Send for WriteGuard<'_> {}
// SAFETY: as above.
unsafe impl Sync for WriteGuard<'_> {}

impl ReadGuard<'_> {
    /// The page index this guard shows.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// The frame backing the page while this guard lives (for diagnostics and harnesses).
    pub fn frame(&self) -> u32 {
        self.frame
    }
}

impl WriteGuard<'_> {
    /// The page index this guard shows.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// The frame backing the page while this guard lives (for diagnostics and harnesses).
    pub fn frame(&self) -> u32 {
        self.frame
    }
}

impl Deref for ReadGuard<'_> {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: the read pin keeps this page's entry naming this frame, with no writer and no reclaim,
        // for the guard's lifetime (I4); the memory lives as long as the pool, which `'a` outlives.
        unsafe { std::slice::from_raw_parts(self.bytes, self.pages.page_size()) }
    }
}

impl Deref for WriteGuard<'_> {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: the writer bit gives this guard exclusive access (I4); see ReadGuard::deref.
        unsafe { std::slice::from_raw_parts(self.bytes, self.pages.page_size()) }
    }
}

impl DerefMut for WriteGuard<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the writer bit excludes every other pin, filler and reclaimer (I4), and `&mut
        // self` excludes other borrows through this guard.
        unsafe { std::slice::from_raw_parts_mut(self.bytes, self.pages.page_size()) }
    }
}

impl Drop for ReadGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the access ends before the pin that protects it.
        unsafe { ManuallyDrop::drop(&mut self.track) };
        self.pages.unpin_read(self.slot);
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the access ends before the writer bit that protects it.
        unsafe { ManuallyDrop::drop(&mut self.track) };
        self.pages.unpin_write(self.slot);
    }
}

impl std::fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGuard")
            .field("page", &self.page)
            .field("frame", &self.frame)
            .finish()
    }
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("page", &self.page)
            .field("frame", &self.frame)
            .finish()
    }
}
