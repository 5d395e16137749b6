//! The pool's census (`Pages::census`, SPEC.md I1): every field counted exactly, including the
//! transient states, which an accessor observes from inside its own fill and write-back.
//! (Mutation testing: counters that stayed zero, or counted too widely, survived every test
//! that only checked the census adds up.)

use pagecore::internals::sync::ShareArc;
use pagecore::SwapArea;
use pagecore::{Access, Accessor, Census, MemoryAccessor, Pages};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

const PAGE: usize = 64;

fn census(pages: &Pages) -> Census {
    let c = pages.census().unwrap();
    assert_eq!(c.total(), pages.frames(), "I1: {c:?}");
    c
}

#[test]
fn pins_holds_writers_dirt_and_proxies_are_counted_exactly() {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 64).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(8)
        .swap(swap)
        .build()
        .unwrap();
    let o = pages.open(MemoryAccessor::new(), 8 * PAGE as u64).unwrap();
    o.write(0).unwrap()[0] = 1;
    let c = census(&pages);
    assert_eq!(
        (c.free, c.resident, c.dirty, c.pinned),
        (7, 1, 1, 0),
        "{c:?}"
    );
    let reader = o.read(1).unwrap();
    assert_eq!(census(&pages).pinned, 1, "a read guard pins its frame");
    let writer = o.write(2).unwrap();
    let c = census(&pages);
    assert_eq!(
        (c.pinned, c.dirty),
        (2, 2),
        "a write guard pins and dirties: {c:?}"
    );
    let client = o.register().unwrap();
    let grant = client.request(3, Access::Read).unwrap();
    assert_eq!(census(&pages).pinned, 3, "a client's grant pins its frame");
    drop((reader, writer, grant));
    let c = census(&pages);
    assert_eq!(
        (c.resident, c.pinned, c.shared, c.proxies),
        (4, 0, 0, 0),
        "{c:?}"
    );

    // Copies: a frame shared by proxies counts once as shared, each proxy once.
    let x = pages.anonymous(2 * PAGE as u64).unwrap();
    x.write(0).unwrap()[0] = 5;
    x.write(1).unwrap()[0] = 6;
    let y = x.copy().unwrap();
    let c = census(&pages);
    assert_eq!(
        (c.shared, c.proxies, c.pinned),
        (2, 2, 0),
        "x's pages, now proxies: {c:?}"
    );
    let g = y.read(0).unwrap();
    assert_eq!(g[0], 5);
    let c = census(&pages);
    assert_eq!(
        (c.shared, c.proxies),
        (2, 3),
        "y0 maps the same frame: {c:?}"
    );
    assert_eq!(
        c.pinned, 1,
        "a guard on a proxy pins the shared frame: {c:?}"
    );
    drop(g);
    assert_eq!(census(&pages).pinned, 0);
    drop((x, y));
    let c = census(&pages);
    assert_eq!((c.shared, c.proxies, c.resident), (0, 0, 4), "{c:?}");
}

/// A store that takes the census from inside its fill and its write-back.
#[derive(Default)]
struct Watching {
    pages: OnceLock<Pages>,
    seen: Mutex<Vec<(&'static str, Census)>>,
}

impl Accessor for Watching {
    fn fill(&self, _page: u64, buf: &mut [u8]) -> io::Result<()> {
        let c = self.pages.get().unwrap().census().unwrap();
        self.seen.lock().unwrap().push(("fill", c));
        buf.fill(0);
        Ok(())
    }
    fn flush(&self, _page: u64, _buf: &[u8]) -> io::Result<()> {
        let c = self.pages.get().unwrap().census().unwrap();
        self.seen.lock().unwrap().push(("flush", c));
        Ok(())
    }
}

#[test]
fn a_frame_is_counted_filling_during_its_fill_and_reclaiming_during_its_write_back() {
    let pages = Pages::builder().page_size(PAGE).frames(1).build().unwrap();
    let w = Arc::new(Watching::default());
    w.pages.set(pages.clone()).ok().unwrap();
    let o = pages.open(w.clone(), 4 * PAGE as u64).unwrap();
    o.write(0).unwrap()[0] = 1;
    // Page 1 needs the only frame: page 0 is written back (reclaiming), then page 1 filled.
    drop(o.read(1).unwrap());
    let seen = w.seen.lock().unwrap().clone();
    let kinds: Vec<_> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["fill", "flush", "fill"], "{seen:?}");
    let (fill, flush) = (seen[0].1, seen[1].1);
    assert_eq!(
        (fill.filling, fill.free, fill.resident),
        (1, 0, 0),
        "{fill:?}"
    );
    assert_eq!(
        (flush.reclaiming, flush.resident, flush.filling),
        (1, 0, 0),
        "{flush:?}"
    );
    assert_eq!(seen[2].1.filling, 1, "{:?}", seen[2].1);
    // I1 holds in the transient states too.
    assert!(seen.iter().all(|(_, c)| c.total() == 1), "{seen:?}");
}

/// `waiting_for_frames` counts the threads asleep in the pool's wait for a frame, and drops back
/// to zero once they have their frames (a count that only grew, or went below zero, would
/// survive every test that only checks the frames).
#[test]
fn threads_waiting_for_a_frame_are_counted_while_they_wait() {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(1)
        .wait_bound(None)
        .build()
        .unwrap();
    let o = pages.open(MemoryAccessor::new(), 3 * PAGE as u64).unwrap();
    assert_eq!(census(&pages).waiting_for_frames, 0);
    let g = o.read(0).unwrap();
    let waiters: Vec<_> = (1..3)
        .map(|p| {
            let o = o.clone();
            std::thread::spawn(move || o.read(p).map(|g| g[0]))
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while census(&pages).waiting_for_frames < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "two faults never waited for the only frame: {:?}",
            census(&pages)
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(census(&pages).waiting_for_frames, 2, "no third waiter");
    drop(g);
    for w in waiters {
        assert_eq!(w.join().unwrap().unwrap(), 0);
    }
    let c = census(&pages);
    assert_eq!((c.waiting_for_frames, c.pinned), (0, 0), "{c:?}");
}
