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

mod check;
mod injector;
mod run;

pub use injector::*;
pub use run::*;

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
    /// `read(page)`, or `read_async(page)` awaited, checked.
    Read {
        /// Object.
        obj: usize,
        /// Page.
        page: u64,
        /// Awaited (`read_async`, on the backend's executor) rather than blocking.
        awaited: bool,
    },
    /// `write(page)`, or `write_async(page)` awaited, of a fresh tag (a page the thread writes).
    Write {
        /// Object.
        obj: usize,
        /// Page.
        page: u64,
        /// Awaited (`write_async`, on the backend's executor) rather than blocking.
        awaited: bool,
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
        // One in four awaited (from the roll, so a seed's program is decoded as before).
        0..=21 => Op::Read {
            obj,
            page,
            awaited: roll % 4 == 1,
        },
        22..=39 => Op::Write {
            obj,
            page: own_page,
            awaited: roll % 4 == 1,
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
