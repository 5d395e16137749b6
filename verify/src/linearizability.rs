//! A linearizability checker (Wing & Gong's search, with Lowe's memoization of visited
//! configurations) for histories of pagecore's public API on shared pages, and a recorder that
//! takes such histories from real threads or from shuttle (issue 5).
//!
//! A history is a set of completed operations, each with an invocation and a response stamp from
//! one sequentially consistent counter (the recorder's clock, a facade atomic, so shuttle sees it).
//! It is linearizable if the operations can be put in one order that respects real time (an
//! operation that responded before another was invoked comes first) in which each, applied to the
//! sequential specification ([`Spec`]), is allowed and returns what it returned. The search
//! ([`check`]) tries, at each step, every operation that no unplaced one responded before;
//! configurations (placed set, state) already explored are skipped.
//!
//! The specification is the reference model of a shared object's pages plus the arbitration rules
//! (SPEC.md I3, I9): a page holds the last value written; a client's write grant needs no other
//! holder, a read grant no writer; a plain write needs no holder, a plain read no writing holder;
//! through a grant its client reads the page, and a write grant writes it; `sync` changes nothing
//! a read can see. FIFO order (I5) is a liveness property, outside linearizability.

use pagecore::internals::sync::atomic::{AtomicU64, Ordering::SeqCst};
use pagecore::internals::sync::{lock_raw as lock, RawMutex as Mutex};
use std::collections::{BTreeMap, HashSet};

/// What an operation did (its arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// A plain read of a page.
    Read(u64),
    /// A plain write of a value into a page.
    Write(u64, u64),
    /// `sync`.
    Sync,
    /// Client `.0` was granted page `.1`, for writing if `.2`.
    Request(u32, u64, bool),
    /// Client `.0` released page `.1`.
    Release(u32, u64),
    /// Client `.0` read page `.1` through its grant.
    GrantRead(u32, u64),
    /// Client `.0` wrote value `.2` into page `.1` through its write grant.
    GrantWrite(u32, u64, u64),
}

/// One completed operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The thread that ran it.
    pub thread: usize,
    /// Invocation stamp.
    pub call_at: u64,
    /// Response stamp (greater than `call_at`).
    pub ret_at: u64,
    /// What it did.
    pub call: Call,
    /// What it returned (reads: the value; otherwise 0).
    pub ret: u64,
}

/// The sequential specification's state: page values and holders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Spec {
    /// Page values (absent: the initial value, 0).
    pub pages: BTreeMap<u64, u64>,
    /// Holders per page: client -> writes.
    pub holders: BTreeMap<u64, BTreeMap<u32, bool>>,
}

impl Spec {
    fn writer(&self, p: u64) -> bool {
        self.holders.get(&p).is_some_and(|h| h.values().any(|&w| w))
    }

    fn held(&self, p: u64) -> bool {
        self.holders.get(&p).is_some_and(|h| !h.is_empty())
    }

    fn value(&self, p: u64) -> u64 {
        self.pages.get(&p).copied().unwrap_or(0)
    }

    /// Applies `op` if the specification allows it here and it returns what `op` returned.
    pub fn apply(&self, op: &Op) -> Option<Spec> {
        let mut s = self.clone();
        match op.call {
            Call::Read(p) => (!self.writer(p) && self.value(p) == op.ret).then_some(s),
            Call::Write(p, v) => {
                if self.held(p) {
                    return None;
                }
                s.pages.insert(p, v);
                Some(s)
            }
            Call::Sync => Some(s),
            Call::Request(c, p, w) => {
                let h = s.holders.entry(p).or_default();
                let others = h.keys().any(|&k| k != c);
                let ok = !h.contains_key(&c) && if w { !others } else { !h.values().any(|&x| x) };
                if !ok {
                    return None;
                }
                h.insert(c, w);
                Some(s)
            }
            Call::Release(c, p) => {
                s.holders.get_mut(&p)?.remove(&c)?;
                Some(s)
            }
            Call::GrantRead(c, p) => {
                (self.holders.get(&p)?.contains_key(&c) && self.value(p) == op.ret).then_some(s)
            }
            Call::GrantWrite(c, p, v) => {
                if self.holders.get(&p)?.get(&c) != Some(&true) {
                    return None;
                }
                s.pages.insert(p, v);
                Some(s)
            }
        }
    }
}

/// Whether `history` is linearizable from the empty specification state. `Ok` gives one
/// linearization (indices into `history`); `Err` says why not.
pub fn check(history: &[Op]) -> Result<Vec<usize>, String> {
    if let Some(op) = history.iter().find(|o| o.ret_at <= o.call_at) {
        return Err(format!("malformed: {op:?} responds before it is invoked"));
    }
    let n = history.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut seen: HashSet<(Vec<bool>, Spec)> = HashSet::new();
    if search(history, &mut placed, &mut order, Spec::default(), &mut seen) {
        Ok(order)
    } else {
        Err(format!(
            "not linearizable: no order of the {n} operations respects real time and the \
             specification ({} configurations explored)",
            seen.len()
        ))
    }
}

fn search(
    h: &[Op],
    placed: &mut Vec<bool>,
    order: &mut Vec<usize>,
    state: Spec,
    seen: &mut HashSet<(Vec<bool>, Spec)>,
) -> bool {
    if order.len() == h.len() {
        return true;
    }
    if !seen.insert((placed.clone(), state.clone())) {
        return false;
    }
    // An operation can go next if no unplaced operation responded before it was invoked.
    let horizon = h
        .iter()
        .zip(placed.iter())
        .filter(|(_, &p)| !p)
        .map(|(o, _)| o.ret_at)
        .min()
        .unwrap_or(u64::MAX);
    for i in 0..h.len() {
        if placed[i] || h[i].call_at > horizon {
            continue;
        }
        if let Some(next) = state.apply(&h[i]) {
            placed[i] = true;
            order.push(i);
            if search(h, placed, order, next, seen) {
                return true;
            }
            order.pop();
            placed[i] = false;
        }
    }
    false
}

/// A client's work under its grant: on real threads a short spin, which widens the overlap of
/// the threads' operations; nothing under shuttle, which chooses the interleavings itself.
fn work() {
    #[cfg(not(feature = "shuttle"))]
    for _ in 0..2000 {
        std::hint::spin_loop();
    }
}

/// Records a history: operations stamp their invocation and response from one counter.
#[derive(Debug, Default)]
pub struct Recorder {
    clock: AtomicU64,
    log: Mutex<Vec<Op>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stamps an invocation.
    pub fn invoke(&self) -> u64 {
        self.clock.fetch_add(1, SeqCst)
    }

    /// Stamps the response of the operation invoked at `call_at` and records it.
    pub fn respond(&self, thread: usize, call_at: u64, call: Call, ret: u64) {
        let ret_at = self.clock.fetch_add(1, SeqCst);
        lock(&self.log).push(Op {
            thread,
            call_at,
            ret_at,
            call,
            ret,
        });
    }

    /// The history recorded so far.
    pub fn history(&self) -> Vec<Op> {
        lock(&self.log).clone()
    }
}

/// Runs `threads` threads doing `ops` random operations each on `pages` shared pages of one
/// object (through a pool of `frames` frames, so pages are reclaimed, written back and refilled
/// under the operations), on whatever backend the facade is built on, and returns the history.
/// Each thread has its own client; it holds at most one grant at a time and does no plain
/// operation while it holds one (a plain write would wait for its own grant forever).
pub fn record_run(threads: usize, ops: usize, pages: u64, frames: u64, seed: u64) -> Vec<Op> {
    use crate::{open, pool, Store, PAGE};
    use pagecore::internals::sync::{thread, Arc};
    use pagecore::{Access, Accessor};
    let p = pool(frames);
    let store = Store::new(pages as usize, 0);
    // The store starts at zeros, as the specification does.
    for page in 0..pages {
        store.flush(page, &0u64.to_le_bytes()).expect("store");
    }
    let obj = open(&p, &store, pages);
    let rec = Arc::new(Recorder::new());
    // A start gate, so that the threads' operations overlap.
    let gate = Arc::new((
        pagecore::internals::sync::RawMutex::new(0usize),
        pagecore::internals::sync::Condvar::new(),
    ));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (obj, rec, gate) = (obj.clone(), rec.clone(), gate.clone());
            thread::spawn(move || {
                let client = obj.register().expect("client");
                {
                    let (m, cv) = &*gate;
                    let mut n = lock(m);
                    *n += 1;
                    if *n == threads {
                        cv.notify_all();
                    }
                    while *n < threads {
                        n = cv.wait(n).unwrap_or_else(|p| p.into_inner());
                    }
                }
                let id = client.id();
                let mut x = seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let read = |g: &[u8]| u64::from_le_bytes(g[..PAGE].try_into().expect("8 bytes"));
                for i in 0..ops {
                    let page = next() % pages;
                    let v = ((t as u64 + 1) << 32) | i as u64;
                    match next() % 5 {
                        0 => {
                            let at = rec.invoke();
                            let got = read(&obj.read(page).expect("read"));
                            rec.respond(t, at, Call::Read(page), got);
                        }
                        1 => {
                            let at = rec.invoke();
                            obj.write(page)
                                .expect("write")
                                .copy_from_slice(&v.to_le_bytes());
                            rec.respond(t, at, Call::Write(page, v), 0);
                        }
                        2 => {
                            let at = rec.invoke();
                            obj.sync().expect("sync");
                            rec.respond(t, at, Call::Sync, 0);
                        }
                        k => {
                            let write = k == 4;
                            let access = if write { Access::Write } else { Access::Read };
                            let at = rec.invoke();
                            let mut g = client.request(page, access).expect("request");
                            rec.respond(t, at, Call::Request(id, page, write), 0);
                            let at = rec.invoke();
                            let got = read(&g);
                            rec.respond(t, at, Call::GrantRead(id, page), got);
                            if write {
                                let at = rec.invoke();
                                g.bytes_mut()
                                    .expect("write grant")
                                    .copy_from_slice(&v.to_le_bytes());
                                rec.respond(t, at, Call::GrantWrite(id, page, v), 0);
                            }
                            work();
                            let at = rec.invoke();
                            drop(g);
                            rec.respond(t, at, Call::Release(id, page), 0);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let history = rec.history();
    drop(obj);
    history
}
