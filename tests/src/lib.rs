//! The sequential reference model of pagecore's observable behaviour, used by the model-based
//! property tests (and by the fuzz targets as they grow).
//!
//! The model knows nothing of frames: an object is a row of pages, each holding the last bytes
//! written to it, else the backing data, else zeros (I3). What frames add is only *failure*
//! behaviour, which the model predicts from the set of pages clients hold: with every frame
//! pinned, a fault on another page is refused ([`Expect::Exhausted`]).

pub mod fuzz;

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

/// The model of objects with logical copies and regions (SPEC.md §2.6, I13): an object is a row
/// of pages (absent: zeros); a copy clones the row; a shared region reads and writes its object,
/// a private region a copy of it made when mapped. Frames, layers and swap are invisible here:
/// they change nothing a client can see.
#[derive(Debug, Clone, Default)]
pub struct CopyModel {
    /// Objects by id (ids are never reused).
    pub objects: BTreeMap<usize, BTreeMap<u64, Vec<u8>>>,
    next: usize,
    /// Address spaces: start page -> region.
    pub spaces: Vec<BTreeMap<u64, ModelRegion>>,
}

/// A region of the model: `len` pages from page `offset` of object `object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelRegion {
    /// Pages.
    pub len: u64,
    /// The object (a private region's own copy).
    pub object: usize,
    /// First page of the object.
    pub offset: u64,
    /// Writable.
    pub write: bool,
}

/// What a region operation should do, according to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionExpect {
    /// Succeeds (a read: with these bytes).
    Ok(Vec<u8>),
    /// No region covers the address.
    NoRegion,
    /// A write fault on a read-only region.
    Protection,
    /// The new region overlaps a mapped one.
    Overlap,
    /// The region runs past the object.
    OutOfRange,
}

impl CopyModel {
    /// A model with `spaces` empty address spaces.
    pub fn new(spaces: usize) -> Self {
        Self {
            spaces: vec![BTreeMap::new(); spaces],
            ..Default::default()
        }
    }

    /// A new empty object; returns its id.
    pub fn create(&mut self) -> usize {
        self.next += 1;
        self.objects.insert(self.next, BTreeMap::new());
        self.next
    }

    /// A copy of object `o`; returns its id.
    pub fn copy(&mut self, o: usize) -> usize {
        let c = self.objects[&o].clone();
        self.next += 1;
        self.objects.insert(self.next, c);
        self.next
    }

    /// Page `p` of object `o`.
    pub fn read(&self, o: usize, p: u64, page_size: usize) -> Vec<u8> {
        self.objects[&o]
            .get(&p)
            .cloned()
            .unwrap_or_else(|| vec![0; page_size])
    }

    /// Writes page `p` of object `o`.
    pub fn write(&mut self, o: usize, p: u64, data: Vec<u8>) {
        self.objects
            .get_mut(&o)
            .expect("live object")
            .insert(p, data);
    }

    fn region_at(&self, s: usize, page: u64) -> Option<(u64, ModelRegion)> {
        let (&start, r) = self.spaces[s].range(..=page).next_back()?;
        (page < start + r.len).then_some((start, *r))
    }

    /// Maps `len` pages at page `start` of space `s` to object `o` (of `pages` pages) from page
    /// `offset`; a private region gets a copy.
    #[allow(clippy::too_many_arguments)]
    pub fn map(
        &mut self,
        s: usize,
        start: u64,
        len: u64,
        o: usize,
        pages: u64,
        offset: u64,
        write: bool,
        private: bool,
    ) -> RegionExpect {
        if offset + len > pages {
            return RegionExpect::OutOfRange;
        }
        if self.spaces[s]
            .range(..start + len)
            .any(|(&rs, r)| rs + r.len > start)
        {
            return RegionExpect::Overlap;
        }
        let object = if private { self.copy(o) } else { o };
        self.spaces[s].insert(
            start,
            ModelRegion {
                len,
                object,
                offset,
                write,
            },
        );
        RegionExpect::Ok(Vec::new())
    }

    /// Unmaps `len` pages at page `start` of space `s`, splitting regions.
    pub fn unmap(&mut self, s: usize, start: u64, len: u64) {
        let end = start + len;
        let hit: Vec<u64> = self.spaces[s]
            .range(..end)
            .filter(|(&rs, r)| rs + r.len > start)
            .map(|(&rs, _)| rs)
            .collect();
        for rs in hit {
            let r = self.spaces[s].remove(&rs).expect("hit");
            if rs < start {
                self.spaces[s].insert(
                    rs,
                    ModelRegion {
                        len: start - rs,
                        ..r
                    },
                );
            }
            if rs + r.len > end {
                let cut = end - rs;
                self.spaces[s].insert(
                    end,
                    ModelRegion {
                        len: r.len - cut,
                        offset: r.offset + cut,
                        ..r
                    },
                );
            }
        }
    }

    /// A fault at page `page` of space `s`: a read, or (with `data`) a write of it.
    pub fn fault(
        &mut self,
        s: usize,
        page: u64,
        data: Option<Vec<u8>>,
        page_size: usize,
    ) -> RegionExpect {
        let Some((start, r)) = self.region_at(s, page) else {
            return RegionExpect::NoRegion;
        };
        let p = page - start + r.offset;
        match data {
            Some(_) if !r.write => RegionExpect::Protection,
            Some(d) => {
                self.write(r.object, p, d);
                RegionExpect::Ok(Vec::new())
            }
            None => RegionExpect::Ok(self.read(r.object, p, page_size)),
        }
    }
}

/// Asserts that `store` holds, for pages `0..pages` of `page_size` bytes, what model object `id`
/// holds (a persistent object's backing store after `sync` or `close`).
pub fn assert_store(
    store: &dyn pagecore::Accessor,
    model: &CopyModel,
    id: usize,
    pages: u64,
    page_size: usize,
    when: &str,
) {
    for p in 0..pages {
        let mut buf = vec![0; page_size];
        store.fill(p, &mut buf).expect("store");
        assert_eq!(buf, model.read(id, p, page_size), "store page {p} {when}");
    }
}

/// Every eviction policy (the model-based tests run under each: which pages stay resident
/// changes, what a client sees must not).
pub const POLICIES: [pagecore::Policy; 4] = [
    pagecore::Policy::Fifo,
    pagecore::Policy::Clock,
    pagecore::Policy::Sieve,
    // The authors' defaults; a pool of a few frames gets a small segment of one frame.
    pagecore::Policy::S3Fifo(pagecore::S3Fifo::DEFAULT),
];
