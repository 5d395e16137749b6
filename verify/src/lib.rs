//! Race scenarios of SPEC.md (S1–S15, C1–C20), written once against pagecore's sync facade and run by
//! three drivers:
//!
//! * `tests/loom_scenarios.rs` — exhaustive under loom (`RUSTFLAGS="--cfg pagecore_loom"`);
//! * `tests/shuttle_scenarios.rs` — random and PCT schedules under shuttle (`--features shuttle`);
//! * `tests/std_scenarios.rs` — many repetitions on real threads (default build).
//!
//! Each scenario asserts the invariants it is about (content I3, conservation I1, uniqueness I2,
//! exactly-one-fill, no lost write I6), not merely the absence of a panic; a deadlock is reported
//! by loom and shuttle as a failure (every wait in these scenarios is unbounded on purpose, so a
//! lost wake-up cannot hide behind a time-out).
//!
//! Pages are 8 bytes and hold one little-endian `u64`, so the backing store is a row of atomics
//! ([`Store`]) and the model checkers spend their budget on pagecore's protocol.

mod anonymous_races;
mod arbitration_races;
mod async_races;
mod copies_races;
mod core_races;
#[cfg(feature = "shuttle")]
pub mod fuzz;
pub mod linearizability;
mod mmap_races;
mod mutant_races;
pub mod programs;
mod semantic;
#[cfg(feature = "shuttle")]
pub mod shuttle_run;
mod user_races;
pub use anonymous_races::*;
pub use arbitration_races::*;
pub use async_races::*;
pub use copies_races::*;
pub use core_races::*;
pub use mmap_races::*;
pub use mutant_races::*;
pub use semantic::*;
pub use user_races::*;

use pagecore::internals::sync::atomic::{
    AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use pagecore::internals::sync::{lock_raw as lock, thread, Arc, Condvar, RawMutex as Mutex};
use pagecore::internals::sync::{AccessTrack, ShareArc};
use pagecore::Anonymous;
use pagecore::SwapArea;
use pagecore::{Access, Accessor, Client, Error, Grant, PageMapper, Pages, Revocation};
use std::io;

/// Page size used by every scenario.
pub const PAGE: usize = 8;

/// An atomics-only backing store of `u64` pages with fault injection and call counters.
#[derive(Debug)]
pub struct Store {
    pages: Vec<AtomicU64>,
    /// Access tracking of each stored page (see the comment in `fill`): under loom, a fill
    /// of a page must be ordered after every write-back of it, and the other way round.
    tracks: Vec<AccessTrack>,
    /// Number of successful fills.
    pub fills: AtomicUsize,
    /// Number of successful write-backs.
    pub flushes: AtomicUsize,
    /// When non-zero, write-backs fail with this OS error code (EIO, ENOSPC, EDQUOT, ...).
    pub fail_flush: AtomicI32,
    /// When non-zero, fills fail with this OS error code.
    pub fail_fill: AtomicI32,
    /// When non-zero, the next write-back fails with this OS error code (and it is cleared).
    pub fail_next_flush: AtomicI32,
}

impl Store {
    /// A store of `n` pages whose page `p` initially holds `base + p`.
    pub fn new(n: usize, base: u64) -> Arc<Self> {
        Arc::new(Self {
            pages: (0..n as u64).map(|p| AtomicU64::new(base + p)).collect(),
            tracks: (0..n).map(|_| AccessTrack::new()).collect(),
            fills: AtomicUsize::new(0),
            flushes: AtomicUsize::new(0),
            fail_flush: AtomicI32::new(0),
            fail_fill: AtomicI32::new(0),
            fail_next_flush: AtomicI32::new(0),
        })
    }

    /// The stored value of page `p`.
    pub fn get(&self, p: u64) -> u64 {
        self.pages[p as usize].load(SeqCst)
    }
}

impl Accessor for Store {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        let errno = self.fail_fill.load(SeqCst);
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
        // A fill reads what the last write-back stored, so it takes the page's track exclusively
        // (write-backs share it: two syncs may write the same page back at once, which the
        // accessor must allow). The value itself is Relaxed: it must not order anything by
        // itself, or it would hide a weakened publication in the core (a write-back that the
        // emptied entry does not order before the next fill: loom reports the two accesses).
        let _t = self.tracks[page as usize].exclusive();
        let v = self.pages[page as usize].load(Relaxed);
        buf.copy_from_slice(&v.to_le_bytes());
        self.fills.fetch_add(1, SeqCst);
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        let mut errno = self.fail_flush.load(SeqCst);
        if errno == 0 {
            errno = self.fail_next_flush.swap(0, SeqCst);
        }
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let v = u64::from_le_bytes(buf.try_into().map_err(|_| io::ErrorKind::InvalidInput)?);
        let _t = self.tracks[page as usize].shared();
        // Relaxed: see `fill`.
        self.pages[page as usize].store(v, Relaxed);
        self.flushes.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// A pool of `frames` 8-byte frames with unbounded waits (see the crate doc).
pub fn pool(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(None)
        .swap_slots(64)
        .build()
        .expect("valid pool")
}

/// Opens an object of `n` pages over `store`.
pub fn open(pages: &Pages, store: &Arc<Store>, n: u64) -> PageMapper {
    pages
        .open(store.clone(), n * PAGE as u64)
        .expect("valid object")
}

/// Reads page `p` as a `u64`, returning it and the frame that backed it.
pub fn read(obj: &PageMapper, p: u64) -> Result<(u64, u32), Error> {
    let g = obj.read(p)?;
    Ok((u64::from_le_bytes(g[..8].try_into().unwrap()), g.frame()))
}

/// Writes `v` into page `p`.
pub fn write(obj: &PageMapper, p: u64, v: u64) -> Result<(), Error> {
    obj.write(p)?.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Asserts I1 and I2 and that the census adds up to `frames`.
pub fn assert_conserved(pages: &Pages) -> pagecore::Census {
    let c = pages
        .census()
        .unwrap_or_else(|e| panic!("I1/I2 violated: {e}"));
    assert_eq!(c.total(), pages.frames(), "I1: census {c:?}");
    c
}

/// Asserts what every scenario ends with once its threads are joined: I1 and I2 (the census adds
/// up), nothing pinned and nobody waiting for a frame. `name` labels the failure.
pub fn assert_settled(pages: &Pages, name: &str) -> pagecore::Census {
    let c = assert_conserved(pages);
    assert_eq!(
        (c.pinned, c.waiting_for_frames),
        (0, 0),
        "{name}: a pin or a waiter was left behind: {c:?}"
    );
    c
}

/// Value page `p` of an object whose store base is `base` holds before any write.
pub(crate) fn initial(base: u64, p: u64) -> u64 {
    base + p
}

const A: u64 = 1000;
const B: u64 = 2000;
const C: u64 = 3000;
