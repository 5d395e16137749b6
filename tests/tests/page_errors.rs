//! Unusual write-back errors (seed 000's "oddball condition", SPEC.md §2.4 and I11): an error
//! other than EIO, ENOSPC, EDQUOT escapes the page to a shared out-of-line record; reclaim skips
//! the page; a later successful write-back clears it; nothing written is lost.

use pagecore::{Access, Accessor, Error, PageMapper, Pages};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PAGE: usize = 64;
const EBADF: i32 = 9;
const EFBIG: i32 = 27;
const EIO: i32 = 5;

/// A backing store whose write-backs fail with `errno` while it is non-zero; counts fills per
/// page.
#[derive(Default)]
struct Store {
    data: Mutex<HashMap<u64, Vec<u8>>>,
    fills: Mutex<HashMap<u64, usize>>,
    errno: AtomicI32,
}

impl Accessor for Store {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        *self.fills.lock().unwrap().entry(page).or_default() += 1;
        match self.data.lock().unwrap().get(&page) {
            Some(d) => buf.copy_from_slice(d),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        match self.errno.load(SeqCst) {
            0 => {
                self.data.lock().unwrap().insert(page, buf.to_vec());
                Ok(())
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

impl Store {
    fn stored(&self, page: u64) -> Option<u8> {
        self.data.lock().unwrap().get(&page).map(|d| d[0])
    }
    fn fills(&self, page: u64) -> usize {
        self.fills.lock().unwrap().get(&page).copied().unwrap_or(0)
    }
}

fn setup(frames: u64) -> (Pages, Arc<Store>, PageMapper) {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let store = Arc::new(Store::default());
    let obj = pages.open(store.clone(), 16 * PAGE as u64).unwrap();
    (pages, store, obj)
}

fn os_error(e: &Error) -> Option<i32> {
    match e {
        Error::WriteBack { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[test]
fn an_unusual_write_back_error_escapes_out_of_line_shared_and_skipped_by_reclaim() {
    let (pages, store, obj) = setup(3);
    obj.write(0).unwrap()[0] = 0xA0;
    obj.write(1).unwrap()[0] = 0xA1;
    store.errno.store(EBADF, SeqCst);
    // Pressure: pages 2.. go through the pool; reclaiming pages 0 and 1 fails with EBADF.
    for p in 2..8 {
        assert_eq!(obj.read(p).unwrap()[0], 0);
    }
    let census = obj.arbitration().unwrap();
    assert_eq!(census.error_pages, 2, "{census:?}");
    assert_eq!(
        census.records, 1,
        "the two pages share one record: {census:?}"
    );
    assert_eq!(census.record_refs, 2);
    for p in [0, 1] {
        let e = obj.page_error(p).unwrap().expect("recorded");
        assert!(matches!(e, Error::WriteBack { page, .. } if page == p));
        assert_eq!(os_error(&e), Some(EBADF));
    }
    assert!(obj.page_error(2).unwrap().is_none());
    // Reclaim skips the errored pages: the others keep cycling through the one free frame, and
    // pages 0 and 1 were never dropped (filled once, still resident with their contents).
    for round in 0..3 {
        for p in 2..8 {
            assert_eq!(obj.read(p).unwrap()[0], 0, "round {round}");
        }
    }
    assert_eq!((store.fills(0), store.fills(1)), (1, 1));
    assert_eq!(obj.read(0).unwrap()[0], 0xA0);
    // Clients go on using an errored page (through the slow path).
    let c = obj.register().unwrap();
    {
        let mut g = c.request(1, Access::Write).unwrap();
        assert_eq!(g[0], 0xA1);
        g.bytes_mut().unwrap()[0] = 0xB1;
    }
    assert_eq!(c.request(1, Access::Read).unwrap()[0], 0xB1);
    // Still failing: sync reports the error and keeps the record.
    let e = obj.sync().unwrap_err();
    assert_eq!(os_error(&e), Some(EBADF));
    assert_eq!(obj.arbitration().unwrap().error_pages, 2);
    assert_eq!((store.stored(0), store.stored(1)), (None, None));
    // Repaired: the next sync writes both back and clears the records, freed exactly once.
    store.errno.store(0, SeqCst);
    obj.sync().unwrap();
    let census = obj.arbitration().unwrap();
    assert_eq!(
        (census.error_pages, census.records, census.side_entries),
        (0, 0, 0)
    );
    assert_eq!(census.records_created, census.records_freed, "{census:?}");
    assert_eq!((store.stored(0), store.stored(1)), (Some(0xA0), Some(0xB1)));
    assert!(obj.page_error(0).unwrap().is_none());
    // And reclaim takes them again.
    for p in 2..8 {
        drop(obj.read(p).unwrap());
    }
    assert!(pages.stats().reclaims > 0);
    drop(c);
}

#[test]
fn different_unusual_errors_get_different_records_and_expected_ones_none() {
    let (_pages, store, obj) = setup(4);
    obj.write(0).unwrap()[0] = 1;
    obj.write(1).unwrap()[0] = 2;
    // Expected errors (EIO here) leave the pages inline: dirty, retried, no record.
    store.errno.store(EIO, SeqCst);
    assert_eq!(os_error(&obj.sync().unwrap_err()), Some(EIO));
    for p in 4..10 {
        drop(obj.read(p).unwrap()); // reclaim retries pages 0 and 1 and fails again
    }
    assert_eq!(obj.arbitration().unwrap().error_pages, 0);
    assert!(obj.page_error(0).unwrap().is_none());
    // Reclaim failing on pages 0 and 1 with EBADF, then on page 2 with EFBIG: two records.
    store.errno.store(EBADF, SeqCst);
    for p in 4..10 {
        drop(obj.read(p).unwrap());
    }
    obj.write(2).unwrap()[0] = 3;
    store.errno.store(EFBIG, SeqCst);
    for p in 4..10 {
        drop(obj.read(p).unwrap());
    }
    let census = obj.arbitration().unwrap();
    assert_eq!(census.error_pages, 3, "{census:?}");
    assert_eq!((census.records, census.record_refs), (2, 3), "{census:?}");
    assert_eq!(os_error(&obj.page_error(0).unwrap().unwrap()), Some(EBADF));
    assert_eq!(os_error(&obj.page_error(2).unwrap().unwrap()), Some(EFBIG));
    // A sync that fails with EFBIG moves pages 0 and 1 to the EFBIG record: one record left.
    assert!(obj.sync().is_err());
    let census = obj.arbitration().unwrap();
    assert_eq!((census.records, census.record_refs), (1, 3), "{census:?}");
    store.errno.store(0, SeqCst);
    obj.sync().unwrap();
    let census = obj.arbitration().unwrap();
    assert_eq!((census.error_pages, census.records), (0, 0));
    assert_eq!(census.records_created, census.records_freed);
    assert_eq!(
        (store.stored(0), store.stored(1), store.stored(2)),
        (Some(1), Some(2), Some(3))
    );
}

#[test]
fn close_writes_back_an_errored_page_or_stays_open() {
    let (pages, store, obj) = setup(2);
    obj.write(0).unwrap()[0] = 0x55;
    store.errno.store(EBADF, SeqCst);
    for p in 1..4 {
        drop(obj.read(p).unwrap());
    }
    assert_eq!(obj.arbitration().unwrap().error_pages, 1);
    // close retries the write-back at once (it does not wait out the bound on a page that
    // nothing holds), fails, and leaves the object open with the page resident and dirty.
    let other = obj.clone();
    let started = std::time::Instant::now();
    let e = obj.close().unwrap_err();
    assert_eq!(os_error(&e), Some(EBADF));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(other.read(0).unwrap()[0], 0x55);
    store.errno.store(0, SeqCst);
    other.close().unwrap();
    assert_eq!(store.stored(0), Some(0x55));
    assert_eq!(pages.census().unwrap().free, 2);
}

/// A page whose record carries both an error and a waiting client: the error survives grants and
/// hand-offs, and the waiter is still served in order.
#[test]
fn an_errored_page_still_arbitrates() {
    let (_pages, store, obj) = setup(4);
    obj.write(0).unwrap()[0] = 1;
    store.errno.store(EBADF, SeqCst);
    assert!(obj.sync().is_err());
    let (a, b) = (obj.register().unwrap(), obj.register().unwrap());
    let ga = a.request(0, Access::Write).unwrap();
    let pb = b.enqueue(0, Access::Read).unwrap();
    assert_eq!(obj.arbitration().unwrap().waiting, 1);
    drop(ga);
    let gb = pb.wait().unwrap();
    assert_eq!(gb[0], 1);
    assert!(obj.page_error(0).unwrap().is_some());
    drop(gb);
    let census = obj.arbitration().unwrap();
    assert_eq!(
        (census.error_pages, census.held_pages, census.waiting),
        (1, 0, 0)
    );
}

/// A store whose content does not outlive the object (like anonymous memory): `close` discards
/// its dirty pages instead of writing them back.
struct Scratch(Arc<Store>);

impl Accessor for Scratch {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.fill(page, buf)
    }
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        self.0.flush(page, buf)
    }
    fn persistent(&self) -> bool {
        false
    }
}

#[test]
fn close_discards_an_errored_page_of_a_non_persistent_object() {
    // A page-out (reclaim's write-back of a non-persistent page) that failed in an unusual way
    // leaves an error record; close discards the page (its content does not outlive the object)
    // and the record with it, rather than trying the write-back again.
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(1)
        .wait_bound(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let store = Arc::new(Store::default());
    let obj = pages.open(Scratch(store.clone()), 4 * PAGE as u64).unwrap();
    obj.write(0).unwrap()[0] = 0x66;
    store.errno.store(EBADF, SeqCst);
    let e = obj.read(1).unwrap_err();
    assert_eq!(os_error(&e), Some(EBADF), "the page-out did not fail: {e}");
    assert!(obj.page_error(0).unwrap().is_some(), "no error recorded");
    assert_eq!(
        obj.read(0).unwrap()[0],
        0x66,
        "the errored page lost its content"
    );
    // Closed for good; the earlier page-out failure, recorded for the object, is reported once.
    let other = obj.clone();
    if let Err(e) = obj.close() {
        assert_eq!(os_error(&e), Some(EBADF), "close failed otherwise: {e}");
    }
    assert!(
        other.is_closed(),
        "close kept the object open over a discarded page"
    );
    assert_eq!(store.stored(0), None, "close wrote a discarded page back");
    let census = pages.census().unwrap();
    assert_eq!((census.free, census.pinned), (1, 0), "{census:?}");
}
