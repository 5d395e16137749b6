//! What a user would build instead of pagecore for a read-mostly page cache: `quick_cache`
//! (a concurrent cache with a good eviction policy) holding page copies, filled by positional
//! reads of the file on a miss (concurrent misses of one page are coalesced by
//! `get_or_insert_with`). The end-to-end benchmark drives it and pagecore with the same workload,
//! threads and driver loop ([`drive`]).

use crate::workload::Workload;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `quick_cache` of page copies over positional reads.
pub struct QuickCachePeer {
    cache: quick_cache::sync::Cache<(u32, u64), Arc<[u8]>>,
    files: Vec<File>,
    page_size: usize,
}

impl QuickCachePeer {
    /// A cache of `pages` pages of `page_size` bytes over `files`.
    pub fn new(files: &[impl AsRef<Path>], page_size: usize, pages: u64) -> std::io::Result<Self> {
        Ok(Self {
            cache: quick_cache::sync::Cache::new(pages as usize),
            files: files
                .iter()
                .map(File::open)
                .collect::<std::io::Result<_>>()?,
            page_size,
        })
    }

    /// Page `page` of object `obj`.
    pub fn read(&self, obj: usize, page: u64) -> std::io::Result<Arc<[u8]>> {
        self.cache.get_or_insert_with(&(obj as u32, page), || {
            let mut buf = vec![0u8; self.page_size];
            std::os::unix::fs::FileExt::read_exact_at(
                &self.files[obj],
                &mut buf,
                page * self.page_size as u64,
            )?;
            Ok::<_, std::io::Error>(buf.into())
        })
    }
}

/// Runs `threads` threads, each doing `ops` operations `op(thread, page)` on pages of `workload`
/// (thread `t` seeded `seed + t`), and returns the wall time of the whole.
pub fn drive<F: Fn(usize, u64) + Sync>(
    threads: usize,
    ops: u64,
    workload: &Workload,
    seed: u64,
    op: F,
) -> Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (op, barrier) = (&op, &barrier);
            let mut gen = workload.generator(seed.wrapping_add(t as u64));
            // The pages are drawn before the clock starts.
            let pages: Vec<u64> = (0..ops).map(|_| gen.next_page()).collect();
            s.spawn(move || {
                barrier.wait();
                for p in pages {
                    op(t, p);
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Scope end joins every thread.
        start
    })
    .elapsed()
}
