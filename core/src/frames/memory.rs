//! Memory: the fixed budget of page-sized, page-aligned frames.

use crate::error::{Error, Result};
use crate::pack::EntryWord;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Smallest page size accepted (useful for model checking with tiny pages).
pub const MIN_PAGE_SIZE: usize = 8;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: usize = 1 << 30;
/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 4096;

/// One contiguous, zeroed, page-aligned allocation of `frames * page_size` bytes.
///
/// `Memory` hands out raw pointers to frames; who may touch a frame's bytes, and how, is decided
/// by the frame state protocol in [`crate::frames`] (see SPEC.md, I1 and I4).
#[derive(Debug)]
pub struct Memory {
    base: NonNull<u8>,
    layout: Layout,
    page_size: usize,
    frames: u32,
}

// SAFETY: `Memory` owns its allocation; it never creates references to frame bytes itself. All
// access goes through raw pointers under the frame protocol (`frames/`), which excludes data races.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Memory {
    /// Validates a page size.
    pub fn check_page_size(page_size: usize) -> Result<()> {
        if page_size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            Ok(())
        } else {
            Err(Error::InvalidPageSize(page_size))
        }
    }

    /// Number of frames a budget of `bytes` holds.
    pub fn frames_for_budget(bytes: u64, page_size: usize) -> Result<u64> {
        Self::check_page_size(page_size)?;
        let n = bytes / page_size as u64;
        if n == 0 {
            return Err(Error::BudgetTooSmall {
                budget: bytes,
                page_size,
            });
        }
        Ok(n)
    }

    /// Allocates `frames` zeroed frames of `page_size` bytes.
    pub fn new(frames: u64, page_size: usize) -> Result<Self> {
        Self::check_page_size(page_size)?;
        if frames == 0 {
            return Err(Error::BudgetTooSmall {
                budget: 0,
                page_size,
            });
        }
        if frames > EntryWord::MAX_FRAME as u64 {
            return Err(Error::TooManyFrames(frames));
        }
        let size = (frames as usize)
            .checked_mul(page_size)
            .filter(|&s| s <= isize::MAX as usize)
            .ok_or(Error::TooManyFrames(frames))?;
        let layout =
            Layout::from_size_align(size, page_size).map_err(|_| Error::TooManyFrames(frames))?;
        // SAFETY: `layout` has a non-zero size (frames >= 1, page_size >= 8).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).ok_or(Error::TooManyFrames(frames))?;
        Ok(Self {
            base,
            layout,
            page_size,
            frames: frames as u32,
        })
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Raw pointer to the first byte of `frame` (`frame < frames()`, guaranteed by callers: frame
    /// indices only come from the pool's own lists and entries).
    #[inline(always)]
    pub fn frame_ptr(&self, frame: u32) -> *mut u8 {
        debug_assert!(frame < self.frames);
        // SAFETY: frame < frames, so the offset stays inside the allocation.
        unsafe { self.base.as_ptr().add(frame as usize * self.page_size) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}
