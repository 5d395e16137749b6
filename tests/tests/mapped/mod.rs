//! What the real-memory mapping tests share: a backing store in memory with fault injection,
//! the mapping (or `SKIPPED`), and loads and stores through it.
#![allow(dead_code)] // each test file uses some of it

use pagecore::{Accessor, Error, Mapping, Pages};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

pub const PAGE: usize = 4096;

/// A backing store in memory: page `p` starts as `p * 1000` in its first 8 bytes (and
/// `p` repeated in every other 8 bytes); counts fills and flushes; can be told to fail flushes.
#[derive(Default)]
pub struct Backing {
    pub pages: Mutex<HashMap<u64, Vec<u8>>>,
    pub fills: AtomicU64,
    pub flushes: AtomicU64,
    pub fail_flush: AtomicBool,
    pub fail_fill: AtomicBool,
}

pub fn initial(p: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(PAGE);
    for i in 0..PAGE / 8 {
        let w = if i == 0 { p * 1000 } else { p };
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

impl Backing {
    pub fn word(&self, p: u64) -> u64 {
        let pages = self.pages.lock().unwrap();
        let v = pages.get(&p).cloned().unwrap_or_else(|| initial(p));
        u64::from_le_bytes(v[..8].try_into().unwrap())
    }
}

impl Accessor for Backing {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.fail_fill.load(SeqCst) {
            return Err(io::Error::from_raw_os_error(libc_eio()));
        }
        let pages = self.pages.lock().unwrap();
        match pages.get(&page) {
            Some(v) => buf.copy_from_slice(v),
            None => buf.copy_from_slice(&initial(page)),
        }
        self.fills.fetch_add(1, SeqCst);
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        if self.fail_flush.load(SeqCst) {
            return Err(io::Error::from_raw_os_error(libc_eio()));
        }
        self.pages.lock().unwrap().insert(page, buf.to_vec());
        self.flushes.fetch_add(1, SeqCst);
        Ok(())
    }
}

pub fn libc_eio() -> i32 {
    5
}

/// The mapping, or `None` (after printing SKIPPED) where userfaultfd is not permitted.
pub fn map(pages: &Pages, backing: &Arc<Backing>, n: u64) -> Option<Mapping> {
    or_skip(Mapping::new(pages, backing.clone(), n * PAGE as u64))
}

/// A private mapping of `object` built by `b`, or `None` (after printing SKIPPED) where
/// userfaultfd is not permitted.
pub fn private_with(b: pagecore::MappingBuilder, object: &pagecore::PageMapper) -> Option<Mapping> {
    or_skip(b.private(object))
}

/// A private mapping of `object` with the default options (see [`private_with`]).
pub fn private(object: &pagecore::PageMapper) -> Option<Mapping> {
    private_with(Mapping::builder(), object)
}

/// `made`'s mapping, or `None` (after printing SKIPPED) if userfaultfd is not permitted here;
/// with `PAGECORE_REQUIRE_UFFD=1` (CI) that fails instead. Any other error fails.
pub fn or_skip(made: Result<Mapping, Error>) -> Option<Mapping> {
    match made {
        Ok(m) => Some(m),
        Err(Error::Map(e)) => {
            if std::env::var_os("PAGECORE_REQUIRE_UFFD").is_some_and(|v| v == "1") {
                panic!("userfaultfd required (PAGECORE_REQUIRE_UFFD=1) but: {e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("mapping: {e}"),
    }
}

pub fn load(m: &Mapping, p: u64) -> u64 {
    // SAFETY: inside the mapping, which outlives the call; aligned.
    unsafe { (m.as_ptr().add(p as usize * PAGE) as *const u64).read_volatile() }
}

pub fn store(m: &Mapping, p: u64, v: u64) {
    // SAFETY: as in `load`.
    unsafe { (m.as_ptr().add(p as usize * PAGE) as *mut u64).write_volatile(v) }
}

pub fn pool(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .build()
        .expect("pool")
}

/// A pool whose reclaims of mapped pages evict `batch` pages at once.
pub fn pool_batched(frames: u64, batch: u32) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .evict_batch(batch)
        .build()
        .expect("pool")
}
