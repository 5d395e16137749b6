//! Per-call time-outs of plain guards (`PageMapper::read_timeout` / `write_timeout`): they bound
//! the waits the pool's bound would (a frame, a writer or reclaim, a copy), succeed when the page
//! comes free in time, and a fault that gives up leaves no pin, frame or fill record behind.

use pagecore::{Error, MemoryAccessor, PageMapper, Pages};
use std::time::{Duration, Instant};

const POOL_BOUND: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(20);

fn pool(frames: u64) -> (Pages, PageMapper) {
    let pages = Pages::builder()
        .page_size(64)
        .frames(frames)
        .wait_bound(Some(POOL_BOUND))
        .build()
        .unwrap();
    let obj = pages.open(MemoryAccessor::new(), 64 * 16).unwrap();
    (pages, obj)
}

#[test]
fn a_held_page_times_out_at_the_call_bound_not_the_pool_bound() {
    let (pages, obj) = pool(4);
    let w = obj.write(3).unwrap();
    let t = Instant::now();
    assert!(matches!(
        obj.read_timeout(3, SHORT),
        Err(Error::Busy { page: 3 })
    ));
    assert!(matches!(
        obj.write_timeout(3, SHORT),
        Err(Error::Busy { page: 3 })
    ));
    assert!(t.elapsed() >= 2 * SHORT && t.elapsed() < POOL_BOUND / 4);
    drop(w);
    // Nothing left behind: the page is free, one frame in use, no pin.
    let census = pages.census().unwrap();
    assert_eq!(census.total(), 4);
    assert_eq!(obj.write_timeout(3, SHORT).unwrap()[0], 0);
}

#[test]
fn no_free_frame_times_out_with_exhausted_and_the_page_can_be_faulted_later() {
    let (pages, obj) = pool(2);
    let (a, b) = (obj.write(0).unwrap(), obj.write(1).unwrap());
    let t = Instant::now();
    assert!(matches!(
        obj.read_timeout(5, SHORT),
        Err(Error::Exhausted { .. })
    ));
    assert!(t.elapsed() < POOL_BOUND / 4);
    drop((a, b));
    // The failed fault's fill record is gone: the page faults in normally.
    assert_eq!(obj.read(5).unwrap()[0], 0);
    assert_eq!(pages.stats().fill_errors, 0);
}

#[test]
fn a_page_released_in_time_is_granted() {
    let (_pages, obj) = pool(2);
    let w = obj.write(2).unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut g = obj
                .write_timeout(2, Duration::from_secs(30))
                .expect("the writer released within the time-out");
            g[0] = 7;
        });
        std::thread::sleep(Duration::from_millis(10));
        drop(w);
        h.join().unwrap();
    });
    assert_eq!(obj.read(2).unwrap()[0], 7);
}

#[test]
fn a_timed_out_filler_lets_a_joined_fault_fill_for_itself() {
    // One frame, held: a fault with a short time-out starts the fill of page 4 and waits for a
    // frame; a fault with the pool's bound joins it. The first gives up; the second must not
    // inherit its time-out: it fills the page once the frame is released.
    let (_pages, obj) = pool(1);
    let held = obj.write(0).unwrap();
    std::thread::scope(|s| {
        let short = s.spawn(|| {
            obj.read_timeout(4, Duration::from_millis(200))
                .map(|g| g[0])
        });
        std::thread::sleep(Duration::from_millis(50));
        let patient = s.spawn(|| obj.read(4).map(|g| g[0]));
        let r = short.join().unwrap();
        assert!(matches!(r, Err(Error::Exhausted { .. })), "{r:?}");
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(patient.join().unwrap().unwrap(), 0);
    });
}

#[test]
fn an_enormous_time_out_is_no_time_out() {
    let (_pages, obj) = pool(2);
    assert_eq!(obj.read_timeout(1, Duration::MAX).unwrap()[0], 0);
    assert_eq!(obj.write_timeout(1, Duration::MAX).unwrap()[0], 0);
}

#[test]
fn a_fault_that_joined_a_fill_waiting_for_a_frame_leaves_at_its_own_bound() {
    // Found by a fresh-eyes user: the joined fault waited out the filler's wait for a frame
    // (here 2 s; the pool's bound, or for good with no bound).
    let (pages, obj) = pool(1);
    let held = obj.write(0).unwrap();
    std::thread::scope(|s| {
        let filler = s.spawn(|| obj.read(1).map(|g| g[0]));
        std::thread::sleep(Duration::from_millis(50)); // the filler waits for the only frame
        let t = Instant::now();
        let joined = obj.read_timeout(1, Duration::from_millis(50));
        let waited = t.elapsed();
        assert!(
            matches!(joined, Err(Error::Busy { page: 1 })),
            "{:?}",
            joined.map(|g| g[0])
        );
        assert!(waited < Duration::from_secs(1), "waited {waited:?}");
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(filler.join().unwrap().unwrap(), 0);
    });
    // The pin the filler would have taken for the joiner was never taken.
    assert_eq!(pages.census().unwrap().pinned, 0);
    assert_eq!(pages.stats().fills, 2);
}

#[test]
fn many_timed_faults_on_one_absent_page_each_leave_at_their_own_bound() {
    let (pages, obj) = pool(1);
    let held = obj.write(0).unwrap();
    let bound = Duration::from_millis(200);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let obj = &obj;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(50 * i));
                    let t = Instant::now();
                    let r = if i % 2 == 0 {
                        obj.read_timeout(5, bound).map(|_| ())
                    } else {
                        obj.write_timeout(5, bound).map(|_| ())
                    };
                    (r, t.elapsed())
                })
            })
            .collect();
        for h in hs {
            let (r, waited) = h.join().unwrap();
            assert!(
                matches!(r, Err(Error::Busy { .. }) | Err(Error::Exhausted { .. })),
                "{r:?}"
            );
            // Each leaves at its own bound, not at the last filler's (which, for the first, is
            // 350 ms later: the threads start 50 ms apart). Generous: a noisy machine.
            assert!(
                waited < bound + Duration::from_millis(250),
                "waited {waited:?}"
            );
        }
    });
    drop(held);
    assert_eq!(pages.census().unwrap().pinned, 0);
    assert_eq!(obj.read(5).unwrap()[0], 0);
}
