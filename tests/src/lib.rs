//! The sequential reference model of pagecore's observable behaviour, used by the model-based
//! property tests (and by the fuzz targets as they grow).
//!
//! The model knows nothing of frames: an object is a row of pages, each holding the last bytes
//! written to it, else the backing data, else zeros (I3). What frames add is only *failure*
//! behaviour, which the model predicts from the set of pages clients hold: with every frame
//! pinned, a fault on another page is refused ([`Expect::Exhausted`]).

use std::collections::{BTreeMap, BTreeSet};

/// What an operation should do, according to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Succeeds (for reads: with these bytes).
    Ok(Vec<u8>),
    /// Fails: every frame is pinned.
    Exhausted,
    /// Fails: the page is held by a reader and a writer was asked for (bounded wait of zero).
    Busy,
    /// Fails: beyond the object's limit.
    OutOfRange,
    /// Fails: the object is closed.
    Closed,
}

/// One memory object of the model.
#[derive(Debug, Clone, Default)]
pub struct ModelObject {
    /// Page contents written so far (absent: zeros).
    pub pages: BTreeMap<u64, Vec<u8>>,
    /// Page count.
    pub page_count: u64,
    /// Whether the object is open.
    pub open: bool,
}

/// The whole model: objects, the pool size and the pages clients hold.
#[derive(Debug, Clone)]
pub struct Model {
    /// Page size in bytes.
    pub page_size: usize,
    /// Frames in the pool.
    pub frames: usize,
    /// Objects by index.
    pub objects: Vec<ModelObject>,
    /// (object, page) pairs held by read guards (each at most once in these tests).
    pub held: BTreeSet<(usize, u64)>,
}

impl Model {
    /// A model of a pool of `frames` frames of `page_size` bytes.
    pub fn new(page_size: usize, frames: usize) -> Self {
        Self {
            page_size,
            frames,
            objects: Vec::new(),
            held: BTreeSet::new(),
        }
    }

    /// Adds an open object of `page_count` pages; returns its index.
    pub fn open(&mut self, page_count: u64) -> usize {
        self.objects.push(ModelObject {
            pages: BTreeMap::new(),
            page_count,
            open: true,
        });
        self.objects.len() - 1
    }

    /// Content of a page.
    pub fn content(&self, obj: usize, page: u64) -> Vec<u8> {
        self.objects[obj]
            .pages
            .get(&page)
            .cloned()
            .unwrap_or_else(|| vec![0; self.page_size])
    }

    fn precheck(&self, obj: usize, page: u64) -> Option<Expect> {
        // Arguments are validated before the object's state.
        let o = &self.objects[obj];
        if page >= o.page_count {
            return Some(Expect::OutOfRange);
        }
        if !o.open {
            return Some(Expect::Closed);
        }
        None
    }

    /// Whether a fault on a page nobody holds must fail for lack of an unpinned frame.
    fn exhausted(&self, obj: usize, page: u64) -> bool {
        !self.held.contains(&(obj, page)) && self.held.len() >= self.frames
    }

    /// A read of `page`.
    pub fn read(&self, obj: usize, page: u64) -> Expect {
        if let Some(e) = self.precheck(obj, page) {
            return e;
        }
        if self.exhausted(obj, page) {
            return Expect::Exhausted;
        }
        Expect::Ok(self.content(obj, page))
    }

    /// A write of `data` over the whole of `page`; applies it if it succeeds.
    pub fn write(&mut self, obj: usize, page: u64, data: Vec<u8>) -> Expect {
        if let Some(e) = self.precheck(obj, page) {
            return e;
        }
        if self.held.contains(&(obj, page)) {
            return Expect::Busy;
        }
        if self.exhausted(obj, page) {
            return Expect::Exhausted;
        }
        self.objects[obj].pages.insert(page, data);
        Expect::Ok(Vec::new())
    }

    /// Taking and keeping a read guard on `page`.
    pub fn hold(&mut self, obj: usize, page: u64) -> Expect {
        let e = self.read(obj, page);
        if matches!(e, Expect::Ok(_)) {
            self.held.insert((obj, page));
        }
        e
    }

    /// Dropping every held guard.
    pub fn release_all(&mut self) {
        self.held.clear();
    }

    /// Closing an object: refused (`Busy`) while a client holds one of its pages.
    pub fn close(&mut self, obj: usize) -> Expect {
        if !self.objects[obj].open {
            return Expect::Ok(Vec::new());
        }
        if self.held.iter().any(|&(o, _)| o == obj) {
            return Expect::Busy;
        }
        self.objects[obj].open = false;
        Expect::Ok(Vec::new())
    }

    /// Reopening a closed object over the same backing store: contents persist.
    pub fn reopen(&mut self, obj: usize) {
        self.objects[obj].open = true;
    }
}

/// Read or write access, in the model (mirrors `pagecore::Access`, kept separate so the model
/// does not depend on the implementation's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acc {
    /// Shared.
    Read,
    /// Exclusive.
    Write,
}

/// A revocation the model predicts: (client, page, true = release / false = downgrade).
pub type Ask = (u32, u64, bool);

/// The arbitration state of one page in the model: holders, FIFO waiters, asked holders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArbPage {
    /// Holders by client.
    pub holders: BTreeMap<u32, Acc>,
    /// FIFO wait list.
    pub waiters: std::collections::VecDeque<(u32, Acc)>,
    /// Holders already asked to revoke their current access.
    pub asked: BTreeSet<u32>,
}

/// Outcome of a request in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqOutcome {
    /// Granted at once.
    Granted,
    /// Queued.
    Waiting,
    /// The client already holds or waits for the page.
    AlreadyHeld,
}

/// The arbitration model of one object (SPEC.md's rules, written independently of the
/// implementation): many readers or one writer, FIFO wait lists with reader batches, upgrade of a
/// sole reader, each conflicting holder asked once per grant.
#[derive(Debug, Clone, Default)]
pub struct ArbModel {
    /// Per-page state.
    pub pages: BTreeMap<u64, ArbPage>,
    /// Revocations asked so far, in order.
    pub asks: Vec<Ask>,
}

impl ArbModel {
    fn page(&mut self, p: u64) -> &mut ArbPage {
        self.pages.entry(p).or_default()
    }

    /// The access `c` holds on `p`.
    pub fn holds(&self, c: u32, p: u64) -> Option<Acc> {
        self.pages.get(&p)?.holders.get(&c).copied()
    }

    /// Whether `c` waits for `p`.
    pub fn waits(&self, c: u32, p: u64) -> bool {
        self.pages
            .get(&p)
            .is_some_and(|s| s.waiters.iter().any(|w| w.0 == c))
    }

    fn settle(&mut self, p: u64) {
        let s = self.pages.entry(p).or_default();
        // Grant from the head: a writer when no one else holds; readers while no writer holds.
        while let Some(&(c, want)) = s.waiters.front() {
            let ok = match want {
                Acc::Write => s.holders.keys().all(|&h| h == c),
                Acc::Read => s.holders.values().all(|&a| a == Acc::Read),
            };
            if !ok {
                break;
            }
            s.waiters.pop_front();
            s.holders.insert(c, want);
            s.asked.remove(&c);
            if want == Acc::Write {
                break;
            }
        }
        s.asked.retain(|c| s.holders.contains_key(c));
        // Ask every holder in some waiter's way, once.
        let mut new = Vec::new();
        for &(c, want) in &s.waiters {
            for (&h, &held) in &s.holders {
                let release = match (want, held) {
                    _ if h == c => continue,
                    (Acc::Write, _) => true,
                    (Acc::Read, Acc::Write) => false,
                    (Acc::Read, Acc::Read) => continue,
                };
                if !s.asked.contains(&h) && new.iter().all(|a: &Ask| a.0 != h) {
                    new.push((h, p, release));
                }
            }
        }
        for a in &new {
            s.asked.insert(a.0);
        }
        self.asks.extend(new);
    }

    /// `c` requests `want` on `p`.
    pub fn request(&mut self, c: u32, p: u64, want: Acc) -> ReqOutcome {
        if self.holds(c, p).is_some() || self.waits(c, p) {
            return ReqOutcome::AlreadyHeld;
        }
        self.page(p).waiters.push_back((c, want));
        self.settle(p);
        if self.holds(c, p) == Some(want) {
            ReqOutcome::Granted
        } else {
            ReqOutcome::Waiting
        }
    }

    /// `c` drops its grant of, or withdraws its request for, `p`.
    pub fn drop_access(&mut self, c: u32, p: u64) {
        let s = self.page(p);
        s.holders.remove(&c);
        s.asked.remove(&c);
        s.waiters.retain(|w| w.0 != c);
        self.settle(p);
    }

    /// `c` downgrades its write grant of `p`.
    pub fn downgrade(&mut self, c: u32, p: u64) {
        let s = self.page(p);
        if s.holders.get(&c) == Some(&Acc::Write) {
            s.holders.insert(c, Acc::Read);
            s.asked.remove(&c);
        }
        self.settle(p);
    }

    /// `c` tries to upgrade its read grant of `p` without waiting: succeeds if it is the sole
    /// holder; otherwise the attempt (queued at the head) asks the others to release, then is
    /// withdrawn. Returns whether it succeeded.
    pub fn try_upgrade(&mut self, c: u32, p: u64) -> bool {
        let s = self.page(p);
        if s.holders.keys().all(|&h| h == c) {
            s.holders.insert(c, Acc::Write);
            s.asked.remove(&c);
            self.settle(p);
            return true;
        }
        s.waiters.push_front((c, Acc::Write));
        self.settle(p);
        let s = self.page(p);
        s.waiters.retain(|w| !(w.0 == c && w.1 == Acc::Write));
        self.settle(p);
        false
    }

    /// Pages some client holds, and requests waiting in total.
    pub fn census(&self) -> (u64, u64) {
        let held = self
            .pages
            .values()
            .filter(|s| !s.holders.is_empty())
            .count() as u64;
        let waiting = self.pages.values().map(|s| s.waiters.len() as u64).sum();
        (held, waiting)
    }
}
