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
