//! Random concurrent programs over pagecore's public API, checked after the run against
//! sequential expectations and the invariants.
//!
//! A [`Program`] is generated from a seed ([`Program::from_seed`]) or from fuzz bytes
//! ([`Program::from_bytes`]): 2 to 4 threads, each a list of 16 to 40 [`Op`]s, over one pool of
//! `threads + 2` to [`FRAMES`] frames of 64 bytes (FIFO) and three objects of 12 to [`PAGES`]
//! pages each (36 to 96 pages through at most 8 frames):
//!
//! * object 0, a persistent [`MemoryAccessor`] object (closed and reopened by the program);
//! * object 1, an anonymous object over the pool's swap area (sometimes a 6-slot area, which
//!   fills up);
//! * object 2, a persistent object over an [`Injector`]: an in-memory store whose fills and
//!   write-backs fail at rates the program picks, expected errors (EIO, ENOSPC, EDQUOT) and
//!   unusual ones (EPERM, `io::Error::other`), each decision a hash of the program's seed and a
//!   per-accessor call counter, so a shuttle schedule replays exactly. Its fills and write-backs
//!   yield to the scheduler first (I/O takes time; under shuttle a scheduling point there lets
//!   other threads run in the middle of a write-back, which PCT in particular needs).
//!
//! **Swarm testing.** A quarter of the programs use every kind of operation on every object; the
//! others a random subset of the objects (a single one half the time) and of the operation
//! classes ([`CLASS_BOUNDS`]), so that some programs hammer a few operations on one object.
//! [`Program::from_seed_focused`] fixes the subsets (the test drivers' `PAGECORE_PROGRAM_FOCUS`).
//!
//! **Single writer per page.** Page `p` of every object is written only by thread
//! `(p / 2) % threads` (so `write_at` over pages `2k, 2k+1` has one writer), and every write
//! stores a unique tag (thread, sequence number) in all eight words of the page. Then, for every
//! successful read of page `p` by thread `t`:
//!
//! * all eight words are equal (no torn page) and the tag is `0` (never written) or one the
//!   page's writer wrote, never a copy's tag;
//! * if `t` writes `p`, it is exactly `t`'s last write (or, after a failed `write_at` that may
//!   have landed, that write);
//! * otherwise it is no older than the last write of `p` that completed before the read started
//!   and no newer than the last one started before it returned, and no older than what `t` saw
//!   before (per-thread monotonicity).
//!
//! **Copies** ([`PageMapper::copy`]) belong to the thread that made them: for pages the thread
//! writes a copy shows exactly its last write before the copy, for the others a value in the
//! window between the last write completed before the copy started and the last one started
//! before it returned (fixed at the first read), and the copy's own writes (tagged as such) are
//! seen by the copy only.
//!
//! **Errors.** Every operation's error must be one it may return here ([`allowed`]):
//! [`Error::Invariant`] never is, a [`Error::Fill`] only on object 2 (or a copy of it) after the
//! injector injected a fill error, write-back errors only with an injected or swap-full errno.
//!
//! **After the run** (threads joined): the census (I1, I2) with nothing pinned and nobody
//! waiting; injection turned off, then every object's `sync` succeeds (by the third try: one may
//! report an error a reclaim recorded earlier); `arbitration()` (I9-I12) with no held page, no
//! waiter and no out-of-line record left; every page of every object holds its writer's last
//! write, as does the backing store of the persistent objects; every copy holds what it should;
//! and after closing everything every frame is free.
//!
//! Waits are unbounded under shuttle (`wait_bound(None)`: shuttle's timed waits never time out,
//! and a real-time bound would make schedules unreplayable), so a lost wake-up is a deadlock that
//! shuttle reports. The programs are built so that no legitimate deadlock exists: each thread
//! holds at most one pin or grant while it waits, grants end within their operation, and the
//! injector keeps unusual write-back errors outstanding on at most `frames - threads - 1` pages
//! (reclaim skips a page with one recorded). On real threads ([`run_threads`]) the pool waits at
//! most 2 s, and `Busy`/`Exhausted` are allowed.
//!
//! A failure does not unwind through the program's threads: the first one is recorded, the
//! threads stop, and the run panics with it once they are joined, leaking the pool (see
//! `Ctx::fail`), so that a process can go on running programs after one failed (the `hunt`
//! driver in `tests/programs.rs` counts failures that way).

use pagecore::internals::sync::atomic::{AtomicU64 as FAtomicU64, Ordering as FOrdering};
use pagecore::internals::sync::{lock_raw as lock, thread, Arc, RawMutex as Mutex};
use pagecore::{Access, Accessor, Error, MemoryAccessor, PageMapper, Pages, Revocation};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

/// Page size of the programs' pool.
pub const PAGE: usize = 64;
/// Pages of each object, at most.
pub const PAGES: u64 = 32;
/// Frames of the pool, at most.
pub const FRAMES: u64 = 8;
/// Number of objects (memory, anonymous, injecting).
pub const OBJECTS: usize = 3;
const COPY_BIT: u64 = 1 << 62;
const MAX_COPIES: usize = 2;

/// Reads bytes of a fuzz input (or of a seed's expansion) as program choices; zeros once spent.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// The next byte (0 once the input is spent).
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        let v = u16::from_le_bytes([self.byte(), self.byte()]) as u64;
        v % n
    }

    /// A little-endian `u64` from the next eight bytes.
    pub fn u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        for b in &mut v {
            *b = self.byte();
        }
        u64::from_le_bytes(v)
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a grant operation asks for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `Client::request`.
    Request,
    /// `Client::try_request` (may answer `WouldBlock`).
    Try,
    /// `Client::enqueue`, then `Pending::wait`.
    Enqueue,
    /// `Client::enqueue`, polled with `Pending::is_granted` a few times, then waited for.
    Poll,
}

/// What a grant operation does once granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Read (and write, if a write grant on a page the thread writes), then release.
    Plain,
    /// Upgrade a read grant to write (may answer `UpgradeConflict`), then as `Plain`.
    Upgrade,
    /// Downgrade a write grant to read after writing, read, release.
    Downgrade,
}

/// One operation of a thread. `obj` is 0 (memory), 1 (anonymous) or 2 (injecting); `copy`
/// indexes the thread's own copies (an operation on a missing copy does nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `read(page)`, checked.
    Read {
        /// Object.
        obj: usize,
        /// Page.
        page: u64,
    },
    /// `write(page)` of a fresh tag (a page the thread writes).
    Write {
        /// Object.
        obj: usize,
        /// Page.
        page: u64,
    },
    /// `read_at` of the second half of `page` and the first half of `page + 1`.
    ReadAt {
        /// Object.
        obj: usize,
        /// First page.
        page: u64,
    },
    /// `write_at` of pages `2 * pair` and `2 * pair + 1` whole (128 bytes across the boundary).
    WriteAt {
        /// Object.
        obj: usize,
        /// Pair index.
        pair: u64,
    },
    /// `sync()`.
    Sync {
        /// Object.
        obj: usize,
    },
    /// `close()` of a handle, and reopening over the same store if it closed (objects 0, 2).
    /// Copies made before keep reading the pages they did not write through the store's
    /// accessor, so they may show writes made through the reopened object: the checks allow a
    /// copy of a reopened object any later write of the page's writer.
    CloseReopen {
        /// Object.
        obj: usize,
    },
    /// `copy()` of an object, kept by the thread (the oldest copy dropped beyond two).
    Copy {
        /// Object.
        obj: usize,
    },
    /// `copy()` of one of the thread's copies.
    CopyCopy {
        /// Copy.
        copy: usize,
    },
    /// Drops one of the thread's copies.
    DropCopy {
        /// Copy.
        copy: usize,
    },
    /// Reads a page of a copy, checked.
    CopyRead {
        /// Copy.
        copy: usize,
        /// Page.
        page: u64,
    },
    /// Writes a copy tag into a page of a copy.
    CopyWrite {
        /// Copy.
        copy: usize,
        /// Page.
        page: u64,
    },
    /// `compact()` of an object (`copy == None`) or of a copy.
    Compact {
        /// Object.
        obj: usize,
        /// Copy, instead of the object.
        copy: Option<usize>,
    },
    /// Registers a client (with a revocation callback), asks for a page, uses and releases it.
    Grant {
        /// Object.
        obj: usize,
        /// Page.
        page: u64,
        /// Access asked for.
        access: Access,
        /// How it is asked for.
        how: How,
        /// What is done with it.
        then: Then,
    },
    /// `census()` and `rmap()` of a frame, mid-run.
    Census {
        /// Frame.
        frame: u32,
    },
}

/// A random concurrent program (see the module doc).
#[derive(Debug, Clone)]
pub struct Program {
    /// Seed of the injector's decisions.
    pub seed: u64,
    /// Frames of the pool (at least one more than threads, see the module doc).
    pub frames: u64,
    /// Pages of each object (even).
    pub pages: u64,
    /// Slots of the pool's swap area (6 fills up; 64 does not).
    pub swap_slots: u32,
    /// Per mille of the injector's fills that fail.
    pub fill_fail: u64,
    /// Per mille of the injector's write-backs that fail.
    pub flush_fail: u64,
    /// Per mille of the failed write-backs whose error is unusual (EPERM, `io::Error::other`).
    pub unusual: u64,
    /// The objects the operations use (bit `o` for object `o`; swarm testing).
    pub objects: u8,
    /// The classes of operations used (bit `k` for the `k`-th row of [`CLASS_BOUNDS`]).
    pub classes: u16,
    /// Each thread's operations.
    pub threads: Vec<Vec<Op>>,
}

/// Number of operation classes ([`CLASS_BOUNDS`]).
pub const CLASSES: u32 = 14;
const ALL_CLASSES: u16 = (1 << CLASSES) - 1;
const ALL_OBJECTS: u8 = (1 << OBJECTS) - 1;

/// The operation classes, as the upper bounds of their shares of 100 (read, write, read_at,
/// write_at, sync, close, copy, copy of a copy, drop of a copy, copy read, copy write, compact,
/// grant, census).
pub const CLASS_BOUNDS: [u64; CLASSES as usize] =
    [22, 40, 44, 48, 54, 56, 62, 63, 66, 72, 78, 80, 98, 100];

/// The thread that writes page `page` of every object, with `threads` threads.
pub fn writer_of(page: u64, threads: usize) -> usize {
    ((page / 2) % threads as u64) as usize
}

impl Program {
    /// The program a seed expands to.
    pub fn from_seed(seed: u64) -> Self {
        Self::from_seed_focused(seed, None)
    }

    /// The program a seed expands to, with its swarm choice (objects, operation classes)
    /// replaced by `focus` if given.
    pub fn from_seed_focused(seed: u64, focus: Option<(u8, u16)>) -> Self {
        let mut x = seed;
        let bytes: Vec<u8> = (0..1024)
            .flat_map(|_| splitmix(&mut x).to_le_bytes())
            .collect();
        Self::from_bytes_focused(&bytes, focus)
    }

    /// The program `data` describes (any bytes are a program; spent input reads as zeros).
    pub fn from_bytes(data: &[u8]) -> Self {
        Self::from_bytes_focused(data, None)
    }

    /// [`Program::from_bytes`], with the swarm choice replaced by `focus` if given: a mask of
    /// objects (bit `o` for object `o`) and one of operation classes ([`CLASS_BOUNDS`]).
    pub fn from_bytes_focused(data: &[u8], focus: Option<(u8, u16)>) -> Self {
        let mut r = ByteReader::new(data);
        let seed = r.u64();
        let nthreads = [3, 3, 2, 4][r.below(4) as usize];
        let swap_slots = if r.below(3) == 0 { 6 } else { 64 };
        let frames = (nthreads as u64 + 2 + r.below(3)).min(FRAMES);
        let npages = [12, 12, 24, PAGES][r.below(4) as usize];
        let fill_fail = [0, 20, 50][r.below(3) as usize];
        let flush_fail = [0, 100, 100, 250, 500][r.below(5) as usize];
        let unusual = [100, 100, 300, 1000][r.below(4) as usize];
        // Swarm testing: a quarter of the programs use every operation on every object, the
        // others a random subset of each (a program that does fewer kinds of things does each
        // more often).
        let (objects, classes) = if r.below(4) == 0 {
            (ALL_OBJECTS, ALL_CLASSES)
        } else {
            // One object half the time, else any non-empty set of them.
            let o = if r.below(2) == 0 {
                1 << r.below(OBJECTS as u64)
            } else {
                (r.below(7) + 1) as u8
            };
            let c = (r.below(1 << CLASSES) as u16 & ALL_CLASSES).max(1);
            (o, c)
        };
        let (objects, classes) = match focus {
            Some((o, c)) if o & ALL_OBJECTS != 0 && c & ALL_CLASSES != 0 => {
                (o & ALL_OBJECTS, c & ALL_CLASSES)
            }
            _ => (objects, classes),
        };
        let threads = (0..nthreads)
            .map(|t| {
                let n = 16 + r.below(25) as usize;
                (0..n)
                    .map(|_| gen_op(&mut r, t, nthreads, npages, objects, classes))
                    .collect()
            })
            .collect();
        Self {
            seed,
            frames,
            pages: npages,
            objects,
            classes,
            swap_slots,
            fill_fail,
            flush_fail,
            unusual,
            threads,
        }
    }

    /// Runs the program once (under whatever scheduler the caller runs it in) and checks it;
    /// panics with a description on any violation.
    pub fn run(&self) {
        run_program(self);
    }
}

fn gen_op(
    r: &mut ByteReader<'_>,
    t: usize,
    threads: usize,
    npages: u64,
    objects: u8,
    classes: u16,
) -> Op {
    let enabled: Vec<usize> = (0..OBJECTS).filter(|o| objects & (1 << o) != 0).collect();
    let obj = enabled[r.below(enabled.len() as u64) as usize];
    let page = r.below(npages);
    // A page (and pair) this thread writes, near `page`.
    let own_pair = {
        let pairs = npages / 2;
        let mut k = page / 2;
        for _ in 0..pairs {
            if writer_of(2 * k, threads) == t {
                break;
            }
            k = (k + 1) % pairs;
        }
        k
    };
    let own_page = 2 * own_pair + (page & 1);
    let copy = r.below(MAX_COPIES as u64) as usize;
    let mut roll = r.below(100);
    for _ in 0..32 {
        let class = CLASS_BOUNDS.iter().position(|&b| roll < b).unwrap_or(0);
        if classes & (1 << class) != 0 {
            break;
        }
        roll = r.below(100);
    }
    match roll {
        0..=21 => Op::Read { obj, page },
        22..=39 => Op::Write {
            obj,
            page: own_page,
        },
        40..=43 => Op::ReadAt {
            obj,
            page: page.min(npages - 2),
        },
        44..=47 => Op::WriteAt {
            obj,
            pair: own_pair,
        },
        48..=53 => Op::Sync { obj },
        54..=55 => Op::CloseReopen {
            obj: if obj == 1 { 0 } else { obj },
        },
        56..=61 => Op::Copy { obj },
        62 => Op::CopyCopy { copy },
        63..=65 => Op::DropCopy { copy },
        66..=71 => Op::CopyRead { copy, page },
        72..=77 => Op::CopyWrite { copy, page },
        78..=79 => Op::Compact {
            obj,
            copy: if r.below(2) == 0 { Some(copy) } else { None },
        },
        80..=97 => {
            let access = if r.below(2) == 0 {
                Access::Read
            } else {
                Access::Write
            };
            let how = [How::Request, How::Try, How::Enqueue, How::Poll][r.below(4) as usize];
            let then = match (access, r.below(3)) {
                (Access::Read, 0) => Then::Upgrade,
                (Access::Write, 0) => Then::Downgrade,
                _ => Then::Plain,
            };
            Op::Grant {
                obj,
                page,
                access,
                how,
                then,
            }
        }
        _ => Op::Census {
            frame: r.below(FRAMES) as u32,
        },
    }
}

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

fn fill_tag(buf: &mut [u8], v: u64) {
    for w in buf.chunks_exact_mut(8) {
        w.copy_from_slice(&v.to_le_bytes());
    }
}

/// The tag of a page's bytes, or why they are not one tag repeated.
fn tag_of(buf: &[u8]) -> Result<u64, String> {
    let w0 = u64::from_le_bytes(buf[..8].try_into().unwrap());
    for (i, w) in buf.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(w.try_into().unwrap());
        if w != w0 {
            return Err(format!("torn page: word 0 is {w0:#x}, word {i} is {w:#x}"));
        }
    }
    Ok(w0)
}

// ----- the run ----------------------------------------------------------------------------------

/// What the run shares between threads.
struct World {
    pages: Pages,
    objs: Vec<Mutex<PageMapper>>,
    mem: Arc<MemoryAccessor>,
    inj: Arc<Injector>,
    /// Per object and page: the newest tag whose write started / completed.
    started: Vec<Vec<AtomicU64>>,
    committed: Vec<Vec<AtomicU64>>,
    /// Per object: how many times it was closed and reopened.
    gens: Vec<AtomicU64>,
    threads: usize,
    npages: u64,
    real: bool,
    /// The first failure a thread found.
    failure: std::sync::Mutex<Option<String>>,
    revocations: Arc<FAtomicU64>,
}

impl World {
    fn obj(&self, o: usize) -> PageMapper {
        lock(&self.objs[o]).clone()
    }
}

/// What a thread expects of one page of one of its copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exp {
    Known(u64),
    /// A tag of the page's writer between these two (inclusive), not yet read.
    Window(u64, u64),
    /// The copy's own write.
    Mine(u64),
}

impl Exp {
    /// Whether the copy may show `v` for a page `writer` writes; `reopened`: the object the
    /// copy was made of was closed and reopened since, and pages the copy did not write may
    /// show later writes to the store (see [`Op::CloseReopen`]).
    fn admits(self, v: u64, writer: u64, reopened: bool) -> bool {
        let of_writer = v & COPY_BIT == 0 && (v == 0 || v >> 40 == writer);
        match self {
            Exp::Mine(k) => v == k,
            Exp::Known(k) if reopened => v == k || (of_writer && v >= k),
            Exp::Window(lo, _) if reopened => v == lo || (of_writer && v >= lo),
            Exp::Known(k) => v == k,
            Exp::Window(lo, hi) => v == lo || (of_writer && lo <= v && v <= hi),
        }
    }
}

struct CopyState {
    map: PageMapper,
    /// The generation of the object it was made of when it was made.
    gen: u64,
    /// The object the copy (or the copy it was copied from) was made of.
    base: usize,
    exp: Vec<Exp>,
}

/// Where an operation ran, for [`allowed`].
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// The object (for a copy, the object its chain started from).
    pub obj: usize,
    /// Whether the operation ran on a copy.
    pub copy: bool,
    /// Whether the pool's waits are bounded (real threads).
    pub bounded: bool,
    /// Whether the injector has injected a fill error.
    pub fill_injected: bool,
    /// The operation was a `try_request`.
    pub try_request: bool,
    /// The operation was an upgrade.
    pub upgrade: bool,
}

fn io_ok(source: &io::Error) -> bool {
    matches!(source.raw_os_error(), Some(1 | 5 | 28 | 122))
        || source.to_string().contains("injected unusual error")
}

/// Whether `e` is an error the operation at `site` may return in these programs.
/// [`Error::Invariant`] never is; a [`Error::Fill`] only on the injecting object (or a copy of
/// it) once a fill error was injected, never one naming a frozen layer otherwise.
pub fn allowed(e: &Error, site: Site) -> bool {
    match e {
        Error::Invariant(_) => false,
        Error::Fill { source, .. } => {
            site.obj == 2 && site.fill_injected && {
                // The injector's own error, or a frozen layer passing one on.
                source.raw_os_error() == Some(5) || source.to_string().contains("frozen layer")
            }
        }
        Error::WriteBack { source, .. } => io_ok(source),
        Error::SwapFull { .. } => true,
        Error::Closed => !site.copy && site.obj != 1,
        Error::Busy { .. } | Error::Exhausted { .. } => site.bounded,
        Error::WouldBlock { .. } => site.try_request,
        Error::UpgradeConflict { .. } => site.upgrade,
        _ => false,
    }
}

struct Ctx<'w> {
    w: &'w World,
    t: usize,
    seq: u64,
    /// Per object and page: (last tag this thread surely wrote, a newer one that may have
    /// landed) for its own pages; the newest tag it saw for the others.
    mine: Vec<Vec<(u64, Vec<u64>)>>,
    seen: Vec<Vec<u64>>,
    copies: Vec<CopyState>,
    step: usize,
}

impl Ctx<'_> {
    /// Records the thread's first failure (the run panics with it once every thread is joined)
    /// and returns a dummy tag. Failing without unwinding matters under shuttle: a task that
    /// switches out while unwinding (dropping guards and handles calls into the scheduler)
    /// leaves the executor thread panicking, and every later execution in the process fails.
    fn fail(&self, what: String) -> u64 {
        let mut f = self.w.failure.lock().unwrap();
        if f.is_none() {
            *f = Some(format!("thread {} step {}: {what}", self.t, self.step));
        }
        0
    }

    fn site(&self, obj: usize, copy: bool) -> Site {
        Site {
            obj,
            copy,
            bounded: self.w.real,
            fill_injected: self.w.inj.fills_injected.load(SeqCst) > 0,
            try_request: false,
            upgrade: false,
        }
    }

    fn check_err(&self, e: &Error, mut site: Site, op: &str) {
        site.fill_injected = self.w.inj.fills_injected.load(SeqCst) > 0;
        if !allowed(e, site) {
            let on = if site.copy {
                "a copy of object"
            } else {
                "object"
            };
            self.fail(format!(
                "{op} on {on} {}: error not allowed here: {e:?} ({e})",
                site.obj
            ));
        }
    }

    fn next_tag(&mut self) -> u64 {
        self.seq += 1;
        ((self.t as u64 + 1) << 40) | self.seq
    }

    fn owns(&self, page: u64) -> bool {
        writer_of(page, self.w.threads) == self.t
    }

    fn window(&self, obj: usize, page: u64) -> u64 {
        self.w.committed[obj][page as usize].load(SeqCst)
    }

    fn begin_write(&mut self, obj: usize, page: u64, tag: u64) {
        self.w.started[obj][page as usize].store(tag, SeqCst);
    }

    fn end_write(&mut self, obj: usize, page: u64, tag: u64, landed: Option<bool>) {
        let m = &mut self.mine[obj][page as usize];
        match landed {
            Some(true) => {
                *m = (tag, Vec::new());
                self.w.committed[obj][page as usize].store(tag, SeqCst);
            }
            Some(false) => {}
            None => m.1.push(tag),
        }
    }

    /// Checks tag `v` read from page `page` of object `obj`, where `lo` was the newest completed
    /// write when the read started.
    fn check_read(&mut self, obj: usize, page: u64, v: u64, lo: u64, what: &str) {
        let hi = self.w.started[obj][page as usize].load(SeqCst);
        if v & COPY_BIT != 0 {
            self.fail(format!(
                "{what}: object {obj} page {page} shows a copy's write {v:#x}"
            ));
        }
        if self.owns(page) {
            let (c, maybe) = self.mine[obj][page as usize].clone();
            if v == c {
                self.mine[obj][page as usize].1.clear();
            } else if maybe.contains(&v) {
                self.end_write(obj, page, v, Some(true));
            } else {
                self.fail(format!(
                    "{what}: object {obj} page {page} reads {v:#x}, but this thread last wrote \
                     {c:#x} (maybe {maybe:x?})"
                ));
            }
        } else {
            let writer = writer_of(page, self.w.threads) as u64 + 1;
            let seen = self.seen[obj][page as usize];
            if v != 0 && v >> 40 != writer {
                self.fail(format!(
                    "{what}: object {obj} page {page} reads {v:#x}, not a tag of its writer"
                ));
            }
            if v < lo || v > hi || v < seen {
                self.fail(format!(
                    "{what}: object {obj} page {page} reads {v:#x}, outside [{lo:#x}, {hi:#x}] \
                     or older than {seen:#x} seen before"
                ));
            }
            self.seen[obj][page as usize] = v;
        }
    }

    fn read(&mut self, obj: usize, page: u64) {
        let lo = self.window(obj, page);
        let m = self.w.obj(obj);
        let v = match m.read(page) {
            Ok(g) => tag_of(&g).unwrap_or_else(|e| self.fail(format!("read {obj}/{page}: {e}"))),
            Err(e) => return self.check_err(&e, self.site(obj, false), "read"),
        };
        self.check_read(obj, page, v, lo, "read");
    }

    fn write(&mut self, obj: usize, page: u64) {
        let tag = self.next_tag();
        let m = self.w.obj(obj);
        self.begin_write(obj, page, tag);
        match m.write(page) {
            Ok(mut g) => {
                fill_tag(&mut g, tag);
                drop(g);
                self.end_write(obj, page, tag, Some(true));
            }
            Err(e) => self.check_err(&e, self.site(obj, false), "write"),
        };
    }

    fn read_at(&mut self, obj: usize, page: u64) {
        let (lo0, lo1) = (self.window(obj, page), self.window(obj, page + 1));
        let m = self.w.obj(obj);
        let mut buf = [0u8; PAGE];
        match m.read_at(page * PAGE as u64 + PAGE as u64 / 2, &mut buf) {
            Ok(()) => {
                let (a, b) = buf.split_at(PAGE / 2);
                let va = tag_of(a).unwrap_or_else(|e| self.fail(format!("read_at: {e}")));
                let vb = tag_of(b).unwrap_or_else(|e| self.fail(format!("read_at: {e}")));
                self.check_read(obj, page, va, lo0, "read_at");
                self.check_read(obj, page + 1, vb, lo1, "read_at");
            }
            Err(e) => self.check_err(&e, self.site(obj, false), "read_at"),
        }
    }

    fn write_at(&mut self, obj: usize, pair: u64) {
        let (p0, p1) = (2 * pair, 2 * pair + 1);
        let tag = self.next_tag();
        let m = self.w.obj(obj);
        let mut buf = [0u8; 2 * PAGE];
        fill_tag(&mut buf, tag);
        self.begin_write(obj, p0, tag);
        self.begin_write(obj, p1, tag);
        match m.write_at(p0 * PAGE as u64, &buf) {
            Ok(()) => {
                self.end_write(obj, p0, tag, Some(true));
                self.end_write(obj, p1, tag, Some(true));
            }
            Err(e) => {
                self.check_err(&e, self.site(obj, false), "write_at");
                // The first page may have been written before the second failed.
                self.end_write(obj, p0, tag, None);
            }
        }
    }

    fn close_reopen(&mut self, obj: usize) {
        let mut slot = lock(&self.w.objs[obj]);
        let h = slot.clone();
        let probe = slot.clone();
        let res = h.close();
        if let Err(e) = &res {
            self.check_err(e, self.site(obj, false), "close");
        }
        // An error a reclaim recorded earlier is reported by the close that closes for good.
        match res.map_err(|_| probe.is_closed()) {
            Ok(()) | Err(true) => {
                let m = if obj == 0 {
                    self.w
                        .pages
                        .open(self.w.mem.clone(), self.w.npages * PAGE as u64)
                } else {
                    self.w
                        .pages
                        .open(self.w.inj.clone(), self.w.npages * PAGE as u64)
                };
                match m {
                    Ok(m) => *slot = m,
                    Err(e) => {
                        self.fail(format!("reopen: {e}"));
                    }
                }
                self.w.gens[obj].fetch_add(1, SeqCst);
            }
            Err(false) => {}
        }
    }

    /// A copy of `src` (an object, or one of this thread's copies), with what it should show.
    fn copy(&mut self, obj: usize, from_copy: Option<usize>) {
        let (made, base, gen, exp) = match from_copy {
            None => {
                let gen = self.w.gens[obj].load(SeqCst);
                let lo: Vec<u64> = (0..self.w.npages).map(|p| self.window(obj, p)).collect();
                let m = self.w.obj(obj);
                let made = m.copy();
                let exp = (0..self.w.npages)
                    .map(|p| {
                        if self.owns(p) {
                            let (c, maybe) = &self.mine[obj][p as usize];
                            match maybe.iter().max() {
                                None => Exp::Known(*c),
                                Some(&n) => Exp::Window(*c, n),
                            }
                        } else {
                            let hi = self.w.started[obj][p as usize].load(SeqCst);
                            Exp::Window(lo[p as usize].max(self.seen[obj][p as usize]), hi)
                        }
                    })
                    .collect();
                (made, obj, gen, exp)
            }
            Some(i) => {
                let Some(c) = self.copies.get(i) else { return };
                (c.map.copy(), c.base, c.gen, c.exp.clone())
            }
        };
        match made {
            Ok(map) => {
                if self.copies.len() == MAX_COPIES {
                    self.copies.remove(0);
                }
                self.copies.push(CopyState {
                    map,
                    base,
                    gen,
                    exp,
                });
            }
            Err(e) => self.check_err(&e, self.site(base, from_copy.is_some()), "copy"),
        }
    }

    fn copy_read(&mut self, i: usize, page: u64) {
        let Some(c) = self.copies.get(i) else { return };
        let base = c.base;
        let v = match c.map.read(page) {
            Ok(g) => tag_of(&g).unwrap_or_else(|e| self.fail(format!("copy read: {e}"))),
            Err(e) => return self.check_err(&e, self.site(base, true), "copy read"),
        };
        self.check_copy_value(i, page, v);
    }

    fn check_copy_value(&mut self, i: usize, page: u64, v: u64) {
        let writer = writer_of(page, self.w.threads) as u64 + 1;
        let c = &self.copies[i];
        let reopened = self.w.gens[c.base].load(SeqCst) != c.gen;
        let exp = c.exp[page as usize];
        if !exp.admits(v, writer, reopened) {
            self.fail(format!(
                "copy {i} (of {}) page {page} reads {v:#x}, expected {exp:x?} (reopened since: {reopened})",
                c.base
            ));
        }
        if !matches!(exp, Exp::Mine(_)) {
            self.copies[i].exp[page as usize] = Exp::Known(v);
        }
    }

    fn copy_write(&mut self, i: usize, page: u64) {
        let tag = self.next_tag() | COPY_BIT;
        let Some(c) = self.copies.get(i) else { return };
        let base = c.base;
        let res = c.map.write(page).map(|mut g| fill_tag(&mut g, tag));
        match res {
            Ok(()) => self.copies[i].exp[page as usize] = Exp::Mine(tag),
            Err(e) => self.check_err(&e, self.site(base, true), "copy write"),
        }
    }

    fn grant(&mut self, obj: usize, page: u64, access: Access, how: How, then: Then) {
        let m = self.w.obj(obj);
        let asks = self.w.revocations.clone();
        let client = match m.register_with(move |_p: u64, _a: Revocation| {
            asks.fetch_add(1, FOrdering::SeqCst);
        }) {
            Ok(c) => c,
            Err(e) => return self.check_err(&e, self.site(obj, false), "register"),
        };
        let mut site = self.site(obj, false);
        let lo = self.window(obj, page);
        let got = match how {
            How::Request => client.request(page, access),
            How::Try => {
                site.try_request = true;
                client.try_request(page, access)
            }
            How::Enqueue => client.enqueue(page, access).and_then(|p| p.wait()),
            How::Poll => client.enqueue(page, access).and_then(|mut p| {
                for _ in 0..3 {
                    if p.is_granted()? {
                        break;
                    }
                    thread::yield_now();
                }
                p.wait()
            }),
        };
        let mut g = match got {
            Ok(g) => g,
            Err(e) => return self.check_err(&e, site, "request"),
        };
        let mut access = access;
        if then == Then::Upgrade {
            let mut s = site;
            s.upgrade = true;
            match g.upgrade() {
                Ok(()) => access = Access::Write,
                Err(e) => self.check_err(&e, s, "upgrade"),
            }
        }
        let v = tag_of(&g).unwrap_or_else(|e| self.fail(format!("grant: {e}")));
        self.check_read(obj, page, v, lo, "grant");
        if access == Access::Write && self.owns(page) {
            let tag = self.next_tag();
            self.begin_write(obj, page, tag);
            match g.bytes_mut() {
                Ok(b) => {
                    fill_tag(b, tag);
                    self.end_write(obj, page, tag, Some(true));
                }
                Err(e) => self.check_err(&e, site, "bytes_mut"),
            }
        }
        if then == Then::Downgrade && access == Access::Write {
            if let Err(e) = g.downgrade() {
                self.check_err(&e, site, "downgrade");
            }
            let lo = self.window(obj, page);
            let v = tag_of(&g).unwrap_or_else(|e| self.fail(format!("grant: {e}")));
            self.check_read(obj, page, v, lo, "downgraded grant");
        }
        if let Err(e) = g.release() {
            self.check_err(&e, site, "release");
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Read { obj, page } => self.read(obj, page),
            Op::Write { obj, page } => self.write(obj, page),
            Op::ReadAt { obj, page } => self.read_at(obj, page),
            Op::WriteAt { obj, pair } => self.write_at(obj, pair),
            Op::Sync { obj } => {
                if let Err(e) = self.w.obj(obj).sync() {
                    self.check_err(&e, self.site(obj, false), "sync");
                }
            }
            Op::CloseReopen { obj } => self.close_reopen(obj),
            Op::Copy { obj } => self.copy(obj, None),
            Op::CopyCopy { copy } => self.copy(0, Some(copy)),
            Op::DropCopy { copy } => {
                if copy < self.copies.len() {
                    self.copies.remove(copy);
                }
            }
            Op::CopyRead { copy, page } => self.copy_read(copy, page),
            Op::CopyWrite { copy, page } => self.copy_write(copy, page),
            Op::Compact { obj, copy } => match copy {
                Some(i) => {
                    if let Some(c) = self.copies.get(i) {
                        c.map.compact();
                    }
                }
                None => {
                    self.w.obj(obj).compact();
                }
            },
            Op::Grant {
                obj,
                page,
                access,
                how,
                then,
            } => self.grant(obj, page, access, how, then),
            Op::Census { frame } => {
                if let Err(e) = self.w.pages.census() {
                    self.fail(format!("census mid-run: {e}"));
                }
                let _ = self.w.pages.rmap(frame);
            }
        }
    }
}

/// What a thread hands back when joined: its final expectations and its copies.
struct Outcome {
    mine: Vec<Vec<(u64, Vec<u64>)>>,
    copies: Vec<CopyState>,
}

fn run_program(p: &Program) {
    run_with(p, cfg!(not(feature = "shuttle")))
}

/// Runs `p` once on real threads (std backend), with the pool's waits bounded at 2 s.
pub fn run_threads(p: &Program) {
    run_with(p, true)
}

fn run_with(p: &Program, real: bool) {
    let threads = p.threads.len();
    let npages = p.pages;
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(p.frames)
        .wait_bound(if real {
            Some(std::time::Duration::from_secs(2))
        } else {
            None
        })
        .swap_slots(p.swap_slots)
        .build()
        .expect("pool");
    let unusual_cap = p.frames.saturating_sub(threads as u64 + 1) as usize;
    let mem = Arc::new(MemoryAccessor::new());
    let inj = Arc::new(Injector::new(p, npages, unusual_cap));
    let limit = npages * PAGE as u64;
    let objs = vec![
        Mutex::new(pages.open(mem.clone(), limit).expect("open")),
        Mutex::new(pages.anonymous(limit).expect("anonymous")),
        Mutex::new(pages.open(inj.clone(), limit).expect("open")),
    ];
    let table = || -> Vec<Vec<AtomicU64>> {
        (0..OBJECTS)
            .map(|_| (0..npages).map(|_| AtomicU64::new(0)).collect())
            .collect()
    };
    let world = Arc::new(World {
        pages: pages.clone(),
        objs,
        mem: mem.clone(),
        inj: inj.clone(),
        started: table(),
        committed: table(),
        gens: (0..OBJECTS).map(|_| AtomicU64::new(0)).collect(),
        threads,
        npages,
        real,
        failure: std::sync::Mutex::new(None),
        revocations: Arc::new(FAtomicU64::new(0)),
    });
    let handles: Vec<_> = p
        .threads
        .iter()
        .enumerate()
        .map(|(t, ops)| {
            let ops = ops.clone();
            let world = world.clone();
            thread::spawn(move || {
                let mut cx = Ctx {
                    w: &world,
                    t,
                    seq: 0,
                    mine: vec![vec![(0, Vec::new()); npages as usize]; OBJECTS],
                    seen: vec![vec![0; npages as usize]; OBJECTS],
                    copies: Vec::new(),
                    step: 0,
                };
                let trace = std::env::var_os("PAGECORE_PROGRAM_TRACE").is_some();
                for (i, op) in ops.into_iter().enumerate() {
                    if cx.w.failure.lock().unwrap().is_some() {
                        break;
                    }
                    cx.step = i;
                    if trace {
                        eprintln!("TRACE thread {t} step {i}: {op:?}");
                    }
                    cx.step(op);
                }
                Outcome {
                    mine: cx.mine,
                    copies: cx.copies,
                }
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = handles
        .into_iter()
        .map(|h| h.join().expect("a program thread panicked"))
        .collect();
    if std::env::var_os("PAGECORE_PROGRAM_STATS").is_some() {
        eprintln!(
            "STATS {:?} injected: fills {} flushes {} unusual {}",
            pages.stats(),
            inj.fills_injected.load(SeqCst),
            inj.flushes_injected.load(SeqCst),
            inj.unusual_injected.load(SeqCst)
        );
    }
    let failed = world.failure.lock().unwrap().take();
    let result = match failed {
        Some(f) => {
            std::mem::forget(outcomes);
            Err(f)
        }
        None => final_checks(&world, p, outcomes),
    };
    if let Err(f) = result {
        // Leaked, not dropped: a broken state may hang a close, and the panic below must not
        // unwind through pagecore's handles (see `Ctx::fail`).
        std::mem::forget(world);
        std::mem::forget(pages);
        panic!("{f}");
    }
    drop(world);
    let c = pages
        .census()
        .unwrap_or_else(|e| panic!("final census: {e}"));
    if c.free != pages.frames() {
        panic!("after closing everything, frames are left: {c:?}");
    }
}

/// Returns the formatted message as an `Err` (the final checks fail without unwinding: see
/// `Ctx::fail`).
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(format!($($t)*))
    };
}

fn settled(pages: &Pages, when: &str) -> Result<(), String> {
    let c = pages
        .census()
        .map_err(|e| format!("{when}: census (I1/I2): {e}"))?;
    if c.total() != pages.frames() || c.pinned != 0 || c.waiting_for_frames != 0 {
        bail!("{when}: a pin or a waiter was left behind, or frames lost: {c:?}");
    }
    Ok(())
}

/// A fault that found every frame holding an anonymous dirty page the full swap area cannot take.
fn swap_full(e: &Error, p: &Program) -> bool {
    p.swap_slots < 16
        && match e {
            Error::SwapFull { .. } => true,
            Error::WriteBack { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        }
}

fn final_checks(w: &World, p: &Program, outcomes: Vec<Outcome>) -> Result<(), String> {
    settled(&w.pages, "after the run")?;
    w.inj.on.store(false, SeqCst);
    let (threads, npages) = (p.threads.len(), p.pages);
    // Each page's expected tag: its writer's last write (or the one that may have landed).
    let expect = |o: usize, pg: u64| &outcomes[writer_of(pg, threads)].mine[o][pg as usize];
    for o in 0..OBJECTS {
        let m = w.obj(o);
        let mut last = Ok(());
        for _ in 0..3 {
            last = m.sync();
            if last.is_ok() {
                break;
            }
        }
        if let Err(e) = last {
            bail!("object {o}: sync still fails with injection off: {e:?}");
        }
        let a = m
            .arbitration()
            .map_err(|e| format!("object {o}: arbitration invariant violated: {e}"))?;
        if (
            a.held_pages,
            a.waiting,
            a.records,
            a.record_refs,
            a.error_pages,
        ) != (0, 0, 0, 0, 0)
            || a.records_created != a.records_freed
        {
            bail!("object {o}: arbitration state left behind after the run and a sync: {a:?}");
        }
        for pg in 0..npages {
            let (c, maybe) = expect(o, pg).clone();
            let v = match m.read(pg) {
                Ok(g) => tag_of(&g).map_err(|e| format!("object {o} page {pg}: {e}"))?,
                Err(e) if swap_full(&e, p) => continue,
                Err(e) => bail!("object {o} page {pg}: final read failed: {e:?} ({e})"),
            };
            if v != c && !maybe.contains(&v) {
                bail!("object {o} page {pg}: holds {v:#x}, its writer last wrote {c:#x} (maybe {maybe:x?})");
            }
            let stored = match o {
                0 => w.mem.stored(pg).map_or(Ok(0), |b| tag_of(&b)),
                2 => Ok(w.inj.get(pg)),
                _ => Ok(v),
            };
            if stored != Ok(v) {
                bail!(
                    "object {o} page {pg}: the store holds {stored:x?} after sync, the page {v:#x}"
                );
            }
        }
    }
    for (t, out) in outcomes.into_iter().enumerate() {
        for (i, c) in out.copies.into_iter().enumerate() {
            let (map, base, exp) = (c.map, c.base, c.exp);
            let reopened = w.gens[base].load(SeqCst) != c.gen;
            if let Err(e) = map.arbitration() {
                bail!("thread {t} copy {i}: arbitration invariant violated: {e}");
            }
            for pg in 0..npages {
                let v = match map.read(pg) {
                    Ok(g) => tag_of(&g).map_err(|e| format!("copy page {pg}: {e}"))?,
                    Err(e) if swap_full(&e, p) => continue,
                    Err(e) => bail!(
                        "thread {t} copy {i} (of {base}) page {pg}: final read failed: {e:?} ({e})"
                    ),
                };
                let writer = writer_of(pg, threads) as u64 + 1;
                if !exp[pg as usize].admits(v, writer, reopened) {
                    bail!(
                        "thread {t} copy {i} (of {base}) page {pg}: holds {v:#x}, expected {:x?} \
                         (reopened since: {reopened})",
                        exp[pg as usize]
                    );
                }
            }
            drop(map);
        }
    }
    settled(&w.pages, "after the final checks")?;
    for o in 0..OBJECTS {
        let h = w.obj(o);
        let probe = h.clone();
        if let Err(e) = h.close() {
            // A write-back failure a reclaim recorded earlier is reported once, by the close
            // that closes the object for good (a full swap area, for the anonymous one).
            if !probe.is_closed() || !swap_full(&e, p) {
                bail!("object {o}: close with injection off failed: {e:?}");
            }
        }
        drop(probe);
    }
    Ok(())
}

/// The body of the `programs` fuzz target: the first byte says how many of the following bytes
/// (times four) describe the program ([`Program::from_bytes`]); the rest drive shuttle's
/// scheduler ([`crate::fuzz::BytesScheduler`]).
#[cfg(feature = "shuttle")]
pub fn fuzz(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let split = (n as usize * 4).min(rest.len());
    let (prog, sched) = rest.split_at(split);
    let p = Program::from_bytes(prog);
    shuttle::Runner::new(
        crate::fuzz::BytesScheduler::new(sched),
        crate::shuttle_run::config(),
    )
    .run(move || p.run());
}
