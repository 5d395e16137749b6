//! # pagecore
//!
//! The lock-light, model-checked concurrent core of a multi-client pager. A [`Pages`] pool lends a
//! fixed budget of page-sized frames (`frames::memory::Memory`) to memory objects; each object has one
//! [`PageMapper`] shared by all its clients, which serves faults from its `object::access_map::AccessMap`
//! or by filling a frame through the object's [`Accessor`]. Issued pages wait in the
//! `frames::queue::PageQueue`; when no free frame is left, the pool's eviction [`Policy`] (FIFO of
//! issue by default; CLOCK, SIEVE or S3-FIFO) picks the page to reclaim (written back first if
//! dirty). [`PageMapper::stats`] and [`Pages::stats`] count what happened to each object's pages
//! and the pool's (the `metrics` feature reports them through the `metrics` crate).
//!
//! Hits take no lock: a read guard on a resident page costs one load and one CAS on the page's
//! 64-bit AccessMap entry (`pack::EntryWord`), and its drop one `fetch_sub`. Every state change
//! is an atomic RMW on an entry, or a frame-tag change under the lists lock,
//! and the protocol is model-checked with loom and shuttle (see `verify/` and `SPEC.md`).
//!
//! Blocking waits are bounded (the pool's `wait_bound`, or a per-call time-out), and tasks on
//! any executor have futures instead: [`PageMapper::read_async`] and
//! [`PageMapper::write_async`] await a page, and a client's request is a future ([`Pending`]);
//! dropping one withdraws it (see their docs for what still blocks within a poll).
//!
//! ```
//! use pagecore::{Pages, FileAccessor};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("pagecore-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let pages = Pages::builder().page_size(4096).frames(8).build()?;
//! let file = pages.open(FileAccessor::open(dir.join("data"), 4096)?, 64 * 4096)?;
//! for p in 0..64 {
//!     file.write(p)?[..8].copy_from_slice(&p.to_le_bytes()); // 64 pages through 8 frames
//! }
//! assert_eq!(file.read(5)?[..8], 5u64.to_le_bytes());          // reclaimed, written back, read again
//! file.close()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! On Linux a [`Mapping`] maps an object into the process's memory: plain loads and stores fault
//! its pages in through userfaultfd, within the pool's frames.
//!
//! ```
//! # #[cfg(target_os = "linux")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pagecore::{Error, Mapping, MemoryAccessor, Pages};
//! let pages = Pages::builder().page_size(4096).frames(8).build()?;
//! let map = match Mapping::new(&pages, MemoryAccessor::new(), 64 * 4096) {
//!     Ok(map) => map,
//!     Err(Error::Map(why)) => return Ok(println!("no userfaultfd here: {why}")),
//!     Err(e) => return Err(e.into()),
//! };
//! let bytes = map.as_ptr();
//! for p in 0..64 {
//!     // SAFETY: inside the mapping, which outlives the loop; no other thread touches it.
//!     unsafe { *bytes.add(p * 4096) = p as u8 }; // faults, evicts, writes back
//! }
//! map.sync()?;
//! assert_eq!(map.object().read(63)?[0], 63); // the same object through a guard
//! # Ok(()) }
//! # #[cfg(not(target_os = "linux"))]
//! # fn main() {}
//! ```
//!
//! Backends: std (default), loom (`RUSTFLAGS="--cfg pagecore_loom"`), shuttle (feature `shuttle`);
//! see `core/src/sync/mod.rs`.

mod access;
mod arbitration;
mod backing;
mod copies;
mod error;
mod frames;
mod mmap;
mod object;
mod pack;
mod pages;
mod regions;
mod rmap;
mod stats;
mod sync;

pub use access::Access;
pub use arbitration::client::{Client, Grant, OwnedGrant, Pending};
pub use arbitration::{ArbitrationCensus, Revocation, Revoke, RevokeIn};
pub use backing::accessor::{Accessor, ComputedAccessor, FileAccessor, MemoryAccessor};
pub use backing::anonymous::Anonymous;
pub use backing::swap::{Slot, SwapArea};
pub use copies::CopyStats;
pub use error::{Error, Result};
pub use frames::queue::{Policy, S3Fifo};
pub use frames::Census;
#[cfg(all(target_os = "linux", not(any(pagecore_loom, feature = "shuttle"))))]
pub use mmap::mapping::{Mapping, MappingBuilder, MappingStats};
pub use object::future::{ReadGuardFuture, WriteGuardFuture};
pub use object::guard::{ReadGuard, WriteGuard};
pub use object::PageMapper;
pub use pages::{Pages, PagesBuilder, Stats, DEFAULT_SWAP_SLOTS, DEFAULT_WAIT_BOUND};
pub use regions::{AddressSpace, Fault, Protection, RegionInfo, RegionRef, Sharing};
pub use rmap::{FrameMap, Holder, MappedAt, PageRef};
pub use stats::{LatencyHistogram, ObjectStats};
pub use sync::ShareArc;

/// The internals the project's own harnesses use (`verify/`, `tests/`, `fuzz/`): the sync
/// facade (std, loom or shuttle types, `lock`, access tracking) and the packed state words.
/// **Not covered by semver**: anything here may change in any release. Not for applications.
#[doc(hidden)]
pub mod internals {
    /// The packed state words (`core/src/pack/`): fields, codecs and their checks.
    pub mod pack {
        pub use crate::pack::*;
    }
    /// The sync facade (`core/src/sync/mod.rs`): std, loom or shuttle primitives.
    pub mod sync {
        pub use crate::sync::*;
    }
    /// The mapping's protocol over an MMU, and the simulated MMU the models check it over
    /// (`core/src/mmap/`; [`Mapping`](crate::Mapping) is the public one over userfaultfd).
    pub mod mmap {
        pub use crate::mmap::core::MapCore;
        pub use crate::mmap::mmu::{Fault, Mapped, Mmu};
        pub use crate::mmap::sim::{CpuError, Pte, SimMmu};
    }
}
