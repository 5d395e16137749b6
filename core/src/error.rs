//! Errors returned by pagecore. Library code never panics on bad input; it returns one of these.

use crate::sync::ShareArc as Arc;
use std::io;

/// Result alias for pagecore operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pagecore.
///
/// I/O errors are shared (`Arc<io::Error>`) because one failed fill is reported to every client
/// that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The page size is not a power of two in the supported range.
    #[error("page size {0} is not a power of two between 8 bytes and 1 GiB")]
    InvalidPageSize(usize),
    /// The memory budget holds no whole frame.
    #[error("memory budget of {budget} bytes is smaller than one {page_size}-byte frame")]
    BudgetTooSmall {
        /// The budget given, in bytes.
        budget: u64,
        /// The page size.
        page_size: usize,
    },
    /// A swap area given to a pool ([`crate::PagesBuilder::swap`]) has slots of another size
    /// than the pool's pages.
    #[error("the swap area's slots are {slot_size} bytes, the pool's pages {page_size}")]
    SwapPageSize {
        /// The area's slot size in bytes.
        slot_size: usize,
        /// The pool's page size in bytes.
        page_size: usize,
    },
    /// An eviction policy's parameters are out of range ([`crate::S3Fifo::new`]).
    #[error("invalid policy parameter: {0}")]
    InvalidPolicy(&'static str),
    /// An accessor made for another page size than the pool's ([`crate::Pages::open`]; see
    /// [`crate::Accessor::page_size`]).
    #[error("the accessor's pages are {accessor} bytes, the pool's {page_size}")]
    AccessorPageSize {
        /// The accessor's page size in bytes.
        accessor: usize,
        /// The pool's page size in bytes.
        page_size: usize,
    },
    /// The budget asks for more frames than a pool can index or the machine can allocate.
    #[error("a pool of {0} frames is too large")]
    TooManyFrames(u64),
    /// An offset or page index lies beyond the object's limit.
    #[error("offset {offset} is beyond the object's limit of {limit} bytes")]
    OutOfRange {
        /// The byte offset asked for.
        offset: u64,
        /// The object's limit in bytes.
        limit: u64,
    },
    /// The object was closed.
    #[error("the memory object is closed")]
    Closed,
    /// The object cannot be written (its accessor has no write-back).
    #[error("the memory object is read-only")]
    ReadOnly,
    /// Every frame is pinned (or being filled) and none became free within the pool's bound.
    #[error("every frame of the pool is in use; no frame became reclaimable within {waited:?}")]
    Exhausted {
        /// How long `obtain` waited before giving up.
        waited: std::time::Duration,
    },
    /// A page stayed pinned by other clients past the bound given (for example during `close`).
    #[error("page {page} stayed in use past the bound")]
    Busy {
        /// The page index.
        page: u64,
    },
    /// The accessor failed to fill a page; nothing was recorded in the AccessMap.
    #[error("fill of page {page} failed: {source}")]
    Fill {
        /// The page index.
        page: u64,
        /// The accessor's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Writing a dirty page back failed; the page stays resident and dirty. Returned by `sync`
    /// and `close` for the object's own pages, and by a fault whose reclaim of a victim page
    /// failed to write it back: the victim may belong to another object of the pool, which
    /// `object` names.
    #[error("write-back of page {page} of object {object} failed: {source}")]
    WriteBack {
        /// The id of the object whose page it is ([`crate::PageMapper::id`]).
        object: u64,
        /// The page index.
        page: u64,
        /// The accessor's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Every slot of the swap area is in use (the page stays resident; as a write-back error it
    /// is reported as ENOSPC).
    #[error("the swap area's {slots} slots are all in use")]
    SwapFull {
        /// The area's size in slots.
        slots: u32,
    },
    /// Creating or opening the swap area's file failed.
    #[error("swap area: {0}")]
    Swap(#[source] Arc<io::Error>),
    /// A pagecore invariant was found violated (a bug in pagecore; see SPEC.md).
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// The accessor's `sync_all` (fsync) failed.
    #[error("syncing the backing store failed: {0}")]
    Sync(#[source] Arc<io::Error>),
    /// The client already holds, or already waits for, access to this page (one grant or request
    /// per client and page; use [`crate::Grant::upgrade`] / [`crate::Grant::downgrade`] to change it).
    #[error("the client already holds or requested page {page}")]
    AlreadyHeld {
        /// The page.
        page: u64,
    },
    /// `try_request` could not be granted without waiting.
    #[error("page {page} is held in a conflicting mode or has waiters")]
    WouldBlock {
        /// The page.
        page: u64,
    },
    /// A request (or upgrade) was not granted within its timeout; it was withdrawn from the
    /// page's wait list.
    #[error("access to page {page} was not granted within {waited:?}")]
    GrantTimeout {
        /// The page.
        page: u64,
        /// How long the request waited.
        waited: std::time::Duration,
    },
    /// Another holder of the page is already waiting to upgrade to write; two upgrades would wait
    /// for each other forever, so the second is refused (release the read grant instead).
    #[error("another reader of page {page} is already upgrading to write")]
    UpgradeConflict {
        /// The page.
        page: u64,
    },
    /// Mutable bytes were asked of a read grant.
    #[error("page {page} is granted for reading only")]
    ReadGrant {
        /// The page.
        page: u64,
    },
    /// A fault at an address no region of the address space covers.
    #[error("no region covers address {addr:#x}")]
    NoRegion {
        /// The fault address.
        addr: u64,
    },
    /// A fault against the region's protection (a write to a read-only region).
    #[error("a {access:?} fault at {addr:#x} violates its region's protection")]
    Protection {
        /// The fault address.
        addr: u64,
        /// The access asked for.
        access: crate::access::Access,
    },
    /// A new region overlaps one already mapped.
    #[error("the range {start:#x}+{len:#x} overlaps a mapped region")]
    Overlap {
        /// Start of the range asked for.
        start: u64,
        /// Its length.
        len: u64,
    },
    /// A mapping could not be made: userfaultfd is not permitted (the message names the
    /// remedies) or lacks a feature, the memfd or its views could not be set up, or an argument
    /// was invalid (the message says which, as an `InvalidInput` error: a length of 0, a page
    /// size not the system's, a handler count out of range, a private mapping in a pool of
    /// fewer than two frames).
    #[error("cannot map the object: {0}")]
    Map(#[source] Arc<io::Error>),
    /// The object is mapped (its pages live in a mapping's memory) and its accessor is neither
    /// anonymous nor persistent: a copy's layers would have nowhere to read its pages from.
    #[error("the object is mapped and neither anonymous nor persistent: it cannot be copied")]
    Mapped,
    /// An address, length or offset that must be a multiple of the page size is not (or a
    /// length is zero, or a range wraps around).
    #[error("{what} {value:#x} is not a non-zero multiple of the page size, or the range wraps")]
    Unaligned {
        /// What was misaligned: "start", "length" or "offset".
        what: &'static str,
        /// The value.
        value: u64,
    },
}

impl Error {
    /// The underlying I/O error kind, for fill, write-back and sync errors.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Fill { source, .. } | Error::WriteBack { source, .. } | Error::Sync(source) => {
                Some(source.kind())
            }
            _ => None,
        }
    }
}
