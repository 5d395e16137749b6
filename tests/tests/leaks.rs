//! Nothing outlives its last user (I11, I13, and the AccessMap's leaves): a workload over every
//! kind of object, copies, clients that overflow the inline entry (out-of-line records), swap and
//! reclaim, run many times, must hand every byte it allocated back to the allocator.
//!
//! A binary without the test harness (`harness = false`), so that nothing but the workload
//! allocates between the two measurements. The first round warms up whatever allocates once per
//! process (thread-locals, the standard library's buffers); every later round must leave the
//! live byte count exactly where the warm-up left it. Mutation testing found that dropping a
//! mapper's AccessMap without freeing its leaves survived every other test.

use pagecore::internals::sync::ShareArc;
use pagecore::SwapArea;
use pagecore::{Access, MemoryAccessor, Pages};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc's contract;
// the counter is a side effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: a statistic read by the same thread after the workload's threads are joined.
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout goes to System as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` or `realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's pointer, layout and size go to System as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PAGE: usize = 64;
/// More pages than one AccessMap leaf holds, so that objects have several leaves.
const OBJECT_PAGES: u64 = 1500;

/// One round: a pool with swap, a file-like object and an anonymous one with copies, five
/// clients on one page (an out-of-line record), a waiting writer, reclaim through a small pool.
fn round() {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 4096).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(8)
        .swap(swap.clone())
        .wait_bound(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    let file = pages
        .open(MemoryAccessor::new(), OBJECT_PAGES * PAGE as u64)
        .unwrap();
    // Pages spread over every leaf, through a pool of 8 frames: reclaim and write-back.
    for p in (0..OBJECT_PAGES).step_by(97) {
        file.write(p).unwrap()[0] = p as u8;
    }
    for p in (0..OBJECT_PAGES).step_by(97) {
        assert_eq!(file.read(p).unwrap()[0], p as u8);
    }
    // Five readers on one page escape the inline entry; a writer waits behind them.
    let clients: Vec<_> = (0..6).map(|_| file.register().unwrap()).collect();
    let grants: Vec<_> = clients[..5]
        .iter()
        .map(|c| c.request(3, Access::Read).unwrap())
        .collect();
    assert!(clients[5]
        .request_timeout(3, Access::Write, Duration::from_millis(1))
        .is_err());
    drop(grants);
    drop(clients[5].request(3, Access::Write).unwrap());
    drop(clients);
    file.sync().unwrap();

    // Anonymous memory, a copy of a copy, private writes on both sides, swap under pressure.
    let x = pages.anonymous(OBJECT_PAGES * PAGE as u64).unwrap();
    for p in (0..OBJECT_PAGES).step_by(131) {
        x.write(p).unwrap()[0] = 1;
    }
    let y = x.copy().unwrap();
    let z = y.copy().unwrap();
    for p in (0..OBJECT_PAGES).step_by(262) {
        y.write(p).unwrap()[0] = 2;
        assert_eq!(z.read(p).unwrap()[0], 1);
    }
    drop(y);
    z.compact();
    drop((x, z, file));
    let c = pages.census().unwrap();
    assert_eq!(c.free, 8, "frames outlived every object: {c:?}");
    assert_eq!(swap.in_use(), 0, "swap slots outlived every object");
}

fn main() {
    round();
    let warm = LIVE.load(Ordering::Relaxed);
    for i in 1..=5 {
        round();
        let live = LIVE.load(Ordering::Relaxed);
        assert_eq!(
            live,
            warm,
            "round {i} left {} bytes allocated (live {live}, after the warm-up {warm})",
            live - warm
        );
    }
    println!("leaks: 5 rounds after a warm-up, live bytes back to {warm} after each");
}
