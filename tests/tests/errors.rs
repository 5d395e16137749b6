//! Bad input returns errors (never panics), fill errors reach every waiter and leave nothing in
//! the map, a panicking accessor is contained, exhaustion is reported.

use pagecore::{Access, Accessor, ComputedAccessor, Error, MemoryAccessor, Pages};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn bad_configuration_is_an_error() {
    for ps in [0, 3, 4, 100, 4095, 1 << 31] {
        assert!(
            matches!(
                Pages::builder().page_size(ps).build(),
                Err(Error::InvalidPageSize(_))
            ),
            "page size {ps}"
        );
    }
    assert!(matches!(
        Pages::builder().page_size(4096).budget_bytes(4095).build(),
        Err(Error::BudgetTooSmall { .. })
    ));
    assert!(matches!(
        Pages::builder().frames(0).build(),
        Err(Error::BudgetTooSmall { .. })
    ));
    assert!(matches!(
        Pages::builder().frames(u64::MAX).build(),
        Err(Error::TooManyFrames(_))
    ));
    let p = Pages::builder()
        .page_size(4096)
        .budget_bytes(10 * 4096 + 17)
        .build()
        .unwrap();
    assert_eq!(p.frames(), 10);
}

#[test]
fn an_accessor_made_for_another_page_size_is_refused() {
    let pages = Pages::builder().page_size(4096).frames(4).build().unwrap();
    let file = tempfile::tempfile().unwrap();
    let e = pages
        .open(
            pagecore::FileAccessor::new(file.try_clone().unwrap(), 512),
            1 << 20,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::AccessorPageSize {
                accessor: 512,
                page_size: 4096
            }
        ),
        "{e}"
    );
    // An anonymous object over a swap area of other slots: refused the same way.
    let swap = Arc::new(pagecore::SwapArea::temporary(512, 8).unwrap());
    let e = pages
        .open(pagecore::Anonymous::new(swap), 1 << 20)
        .unwrap_err();
    assert!(
        matches!(e, Error::AccessorPageSize { accessor: 512, .. }),
        "{e}"
    );
    // The right sizes open; accessors with no page size of their own open in any pool.
    let obj = pages
        .open(pagecore::FileAccessor::new(file, 4096), 1 << 20)
        .unwrap();
    obj.write(3).unwrap()[0] = 7;
    obj.sync().unwrap();
    assert!(pages.open(MemoryAccessor::new(), 1 << 20).is_ok());
}

#[test]
fn out_of_range_and_closed_are_errors() {
    let pages = Pages::builder().page_size(64).frames(2).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 640).unwrap();
    assert!(matches!(obj.read(10), Err(Error::OutOfRange { .. })));
    assert!(matches!(obj.write(u64::MAX), Err(Error::OutOfRange { .. })));
    assert!(matches!(
        obj.read_at(600, &mut [0; 41]),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        obj.write_at(u64::MAX, &[1]),
        Err(Error::OutOfRange { .. })
    ));
    obj.read_at(600, &mut [0; 40]).unwrap();
    let other = obj.clone();
    obj.close().unwrap();
    assert!(matches!(other.read(0), Err(Error::Closed)));
    assert!(matches!(other.sync(), Err(Error::Closed)));
    assert_eq!(pages.census().unwrap().free, 2);
}

struct Flaky {
    fills: AtomicUsize,
}

impl Accessor for Flaky {
    fn fill(&self, _page: u64, _buf: &mut [u8]) -> io::Result<()> {
        self.fills.fetch_add(1, Ordering::SeqCst);
        // Slow, so concurrent faults usually join this fill (S2 proves joining exactly).
        std::thread::sleep(Duration::from_millis(20));
        Err(io::Error::from_raw_os_error(5))
    }
    fn flush(&self, _page: u64, _buf: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_fill_error_reaches_every_waiter_and_records_nothing() {
    let pages = Pages::builder().page_size(64).frames(4).build().unwrap();
    let acc = Arc::new(Flaky {
        fills: AtomicUsize::new(0),
    });
    let obj = pages.open(acc.clone(), 640).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| obj.read(3).map(|_| ())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        match r {
            Err(Error::Fill { page: 3, source }) => assert_eq!(source.raw_os_error(), Some(5)),
            other => panic!("expected the fill error, got {other:?}"),
        }
    }
    assert!(acc.fills.load(Ordering::SeqCst) >= 1);
    let c = pages.census().unwrap();
    assert_eq!(
        (c.free, c.resident),
        (4, 0),
        "a failed fill left something behind: {c:?}"
    );
}

#[test]
fn a_panicking_accessor_is_contained() {
    let pages = Pages::builder().page_size(64).frames(2).build().unwrap();
    let obj = pages
        .open(
            ComputedAccessor::new(|p, _| if p == 1 { panic!("boom") } else { Ok(()) }),
            640,
        )
        .unwrap();
    let e = obj.read(1).unwrap_err();
    assert!(e.to_string().contains("boom"), "{e}");
    assert_eq!(obj.read(0).unwrap()[0], 0);
    assert_eq!(pages.census().unwrap().total(), 2);
}

#[test]
fn every_frame_pinned_gives_exhausted_within_the_bound() {
    let pages = Pages::builder()
        .page_size(64)
        .frames(2)
        .wait_bound(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let obj = pages.open(MemoryAccessor::new(), 640).unwrap();
    let _a = obj.read(0).unwrap();
    let _b = obj.read(1).unwrap();
    let t = std::time::Instant::now();
    assert!(matches!(obj.read(2), Err(Error::Exhausted { .. })));
    assert!(t.elapsed() >= Duration::from_millis(50));
    // A held page still hits.
    assert_eq!(obj.read(0).unwrap()[0], 0);
}

#[test]
fn a_waiting_obtain_gets_the_frame_released_meanwhile() {
    let pages = Pages::builder().page_size(64).frames(1).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 640).unwrap();
    let g = obj.write(0).unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| obj.read(1).map(|g| g[0]));
        // Release only once the reader is waiting for a frame.
        while pages.stats().obtain_waits == 0 {
            std::thread::yield_now();
        }
        drop(g);
        assert_eq!(h.join().unwrap().unwrap(), 0);
    });
    assert!(pages.stats().obtain_waits >= 1);
}

#[test]
fn read_only_objects_refuse_writes() {
    let pages = Pages::builder().page_size(64).frames(2).build().unwrap();
    let obj = pages
        .open(
            ComputedAccessor::new(|_, b| {
                b.fill(9);
                Ok(())
            }),
            64,
        )
        .unwrap();
    assert!(matches!(obj.write(0), Err(Error::ReadOnly)));
    assert_eq!(obj.read(0).unwrap()[63], 9);
    // Clients too, on the hit path as on the miss path (mutation testing: a hit path that let a
    // write through on a read-only object survived the plain-guard check above).
    let c = obj.register().unwrap();
    assert!(obj.is_resident(0));
    assert!(matches!(c.request(0, Access::Write), Err(Error::ReadOnly)));
    assert!(matches!(
        c.try_request(0, Access::Write),
        Err(Error::ReadOnly)
    ));
    assert_eq!(c.request(0, Access::Read).unwrap()[0], 9);
}

/// A pool whose bookkeeping does not fit the address space (its frames' memory does) is
/// `TooManyFrames`, not an abort: the frame table, the queue, the free list and S3-FIFO's ghost
/// are allocated fallibly (found by the fresh-eyes pass of stop 31: a pool of 2^26 frames of 8
/// bytes under `ulimit -v 3000000`, and one of 2^23 frames with a ghost of 1000%, aborted in
/// `handle_alloc_error`). Run in a child process under `ulimit -v`.
#[test]
fn a_pool_too_large_for_the_address_space_is_an_error_not_an_abort() {
    use pagecore::{Policy, S3Fifo};
    const NAME: &str = "a_pool_too_large_for_the_address_space_is_an_error_not_an_abort";
    if std::env::var_os("PAGECORE_OOM_CHILD").is_some() {
        let ghost = Policy::S3Fifo(S3Fifo::new(10, 1000, 2).unwrap());
        for (frames, policy) in [(1u64 << 26, Policy::Fifo), (1 << 23, ghost)] {
            match Pages::builder()
                .page_size(8)
                .frames(frames)
                .policy(policy)
                .build()
            {
                Ok(_) => println!("{frames} frames: built"),
                Err(Error::TooManyFrames(f)) => println!("{f} frames: TooManyFrames"),
                Err(e) => panic!("{frames} frames: {e}"),
            }
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 1500000 && exec '{}' --exact {NAME} --nocapture --test-threads 1",
            exe.display()
        ))
        .env("PAGECORE_OOM_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child died ({:?}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("TooManyFrames"),
        "nothing was too large under the limit: {stdout}"
    );
}
