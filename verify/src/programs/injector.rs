//! The fault-injecting accessor of object 2, and the tags the programs write.

use super::*;

// ----- the fault-injecting accessor -------------------------------------------------------------

/// An in-memory store whose fills and write-backs fail as its program says (see the module doc).
///
/// Its state is std atomics and a std mutex, not the facade's: they are never held across a
/// pagecore call, so shuttle need not see them, and leaving them out adds no scheduling points
/// (the decisions stay deterministic: shuttle runs one thread at a time, so the call counter
/// advances in schedule order).
#[derive(Debug)]
pub struct Injector {
    pages: std::sync::Mutex<Vec<u64>>,
    seed: u64,
    calls: AtomicU64,
    fill_fail: u64,
    flush_fail: u64,
    unusual: u64,
    unusual_cap: usize,
    /// Pages whose last write-back failed with an unusual error (recorded on the page, which
    /// reclaim then skips) and has not succeeded since.
    unusual_pages: std::sync::Mutex<Vec<u64>>,
    /// Injection on (the final checks turn it off).
    pub on: AtomicBool,
    /// Fill errors injected so far.
    pub fills_injected: AtomicU64,
    /// Write-back errors injected so far.
    pub flushes_injected: AtomicU64,
    /// Unusual write-back errors injected so far.
    pub unusual_injected: AtomicU64,
}

impl Injector {
    /// A store of `pages` zero pages injecting as `p` says, with unusual write-back errors
    /// outstanding on at most `unusual_cap` pages at a time (so that reclaim always has a page
    /// it does not skip: see the module doc).
    pub fn new(p: &Program, pages: u64, unusual_cap: usize) -> Self {
        Self {
            pages: std::sync::Mutex::new(vec![0; pages as usize]),
            seed: p.seed,
            calls: AtomicU64::new(0),
            fill_fail: p.fill_fail,
            flush_fail: p.flush_fail,
            unusual: p.unusual,
            unusual_cap,
            unusual_pages: std::sync::Mutex::new(Vec::new()),
            on: AtomicBool::new(true),
            fills_injected: AtomicU64::new(0),
            flushes_injected: AtomicU64::new(0),
            unusual_injected: AtomicU64::new(0),
        }
    }

    fn draw(&self) -> u64 {
        let mut x = self.seed
            ^ self
                .calls
                .fetch_add(1, SeqCst)
                .wrapping_mul(0x2545_f491_4f6c_dd1d);
        splitmix(&mut x)
    }

    /// The stored tag of page `page`.
    pub fn get(&self, page: u64) -> u64 {
        self.pages.lock().unwrap()[page as usize]
    }
}

impl Accessor for Injector {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        // I/O takes time: let the scheduler run another thread here (under shuttle, a
        // scheduling point; on real threads, a yield).
        thread::yield_now();
        if self.on.load(SeqCst) && self.draw() % 1000 < self.fill_fail {
            self.fills_injected.fetch_add(1, SeqCst);
            return Err(io::Error::from_raw_os_error(5));
        }
        fill_tag(buf, self.get(page));
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        thread::yield_now();
        if self.on.load(SeqCst) {
            let d = self.draw();
            if d % 1000 < self.flush_fail {
                self.flushes_injected.fetch_add(1, SeqCst);
                let unusual = (d >> 20) % 1000 < self.unusual && {
                    let mut u = self.unusual_pages.lock().unwrap();
                    let ok = u.contains(&page) || u.len() < self.unusual_cap;
                    if ok && !u.contains(&page) {
                        u.push(page);
                    }
                    ok
                };
                if unusual {
                    self.unusual_injected.fetch_add(1, SeqCst);
                }
                return Err(match (unusual, (d >> 40) % 3) {
                    (true, 0) => io::Error::from_raw_os_error(1),
                    (true, _) => io::Error::other("injected unusual error"),
                    (false, 0) => io::Error::from_raw_os_error(5),
                    (false, 1) => io::Error::from_raw_os_error(28),
                    (false, _) => io::Error::from_raw_os_error(122),
                });
            }
        }
        let v = tag_of(buf).map_err(io::Error::other)?;
        self.pages.lock().unwrap()[page as usize] = v;
        self.unusual_pages.lock().unwrap().retain(|&p| p != page);
        Ok(())
    }
}

pub(super) fn fill_tag(buf: &mut [u8], v: u64) {
    for w in buf.chunks_exact_mut(8) {
        w.copy_from_slice(&v.to_le_bytes());
    }
}

/// The tag of a page's bytes, or why they are not one tag repeated.
pub(super) fn tag_of(buf: &[u8]) -> Result<u64, String> {
    let w0 = u64::from_le_bytes(buf[..8].try_into().unwrap());
    for (i, w) in buf.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(w.try_into().unwrap());
        if w != w0 {
            return Err(format!("torn page: word 0 is {w0:#x}, word {i} is {w:#x}"));
        }
    }
    Ok(w0)
}
