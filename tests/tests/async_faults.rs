//! Faults awaited as futures (`read_async`, `write_async`) on tokio: tasks faulting an object
//! many times the pool lose no write (against a model); a task waiting for a frame, a fill or a
//! page's writer does not block its thread (a current-thread runtime would deadlock); a dropped
//! future leaves no waiter, pin or fill record behind; an awaited fault waiting for another's
//! fill gets the filled page, filled once.

use pagecore::{Accessor, Error, MemoryAccessor, PageMapper, Pages};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_faulting_an_object_larger_than_the_pool_lose_no_write() {
    const TASKS: u64 = 8;
    const PAGES: u64 = 96;
    const ROUNDS: u64 = 6;
    let pages = Pages::builder().page_size(64).frames(12).build().unwrap();
    let obj = Arc::new(pages.open(MemoryAccessor::new(), 64 * PAGES).unwrap());
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let obj = obj.clone();
        tasks.push(tokio::spawn(async move {
            // Each task owns the pages p with p % TASKS == t, and reads everyone's.
            for r in 0..ROUNDS {
                for p in (t..PAGES).step_by(TASKS as usize) {
                    let mut g = obj.write_async(p).await.unwrap();
                    assert_eq!(word(&g), if r == 0 { 0 } else { p * 1000 + r - 1 });
                    g[..8].copy_from_slice(&(p * 1000 + r).to_le_bytes());
                    drop(g);
                    tokio::task::yield_now().await;
                    let other = (p * 7 + r) % PAGES;
                    let g = obj.read_async(other).await.unwrap();
                    let v = word(&g);
                    assert!(v == 0 || v / 1000 == other, "page {other} holds {v}");
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(LIMIT, t).await.unwrap().unwrap();
    }
    for p in 0..PAGES {
        assert_eq!(word(&obj.read(p).unwrap()), p * 1000 + ROUNDS - 1);
    }
    let c = pages.census().unwrap();
    assert_eq!((c.pinned, c.waiting_for_frames), (0, 0), "{c:?}");
    assert!(
        pages.stats().evictions > 0,
        "the pool was too big to test eviction"
    );
}

/// One frame, pinned by a guard another task drops later: the awaited fault of another page
/// waits for the frame without blocking the runtime's only thread (else the dropping task never
/// runs and the fault fails with `Exhausted` at the pool's bound).
#[tokio::test(flavor = "current_thread")]
async fn a_task_waiting_for_a_frame_lets_the_thread_run_the_task_that_frees_it() {
    let pages = Pages::builder()
        .page_size(64)
        .frames(1)
        .wait_bound(Some(LIMIT))
        .build()
        .unwrap();
    let obj = Arc::new(pages.open(MemoryAccessor::new(), 64 * 4).unwrap());
    obj.write(0).unwrap()[0] = 1;
    obj.write(1).unwrap()[0] = 2;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let o = obj.clone();
    let holder = tokio::spawn(async move {
        let g = o.read(1).unwrap(); // the only frame, pinned
        let v = g[0];
        rx.await.unwrap();
        drop(g);
        v
    });
    tokio::task::yield_now().await; // the holder pins page 1
    let o = obj.clone();
    let faulter = tokio::spawn(async move { o.read_async(0).await.map(|g| g[0]) });
    tokio::task::yield_now().await; // the fault finds no frame, and waits
    assert_eq!(pages.census().unwrap().waiting_for_frames, 1);
    tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap(), 2);
    assert_eq!(faulter.await.unwrap().unwrap(), 1);
    let c = pages.census().unwrap();
    assert_eq!((c.pinned, c.waiting_for_frames), (0, 0), "{c:?}");
}

/// A write fault waits for the page's reader (a guard held across an await by another task on
/// the same thread), then gets the page.
#[tokio::test(flavor = "current_thread")]
async fn an_awaited_write_waits_for_a_reader_on_the_same_thread() {
    let pages = Pages::builder().page_size(64).frames(2).build().unwrap();
    let obj = Arc::new(pages.open(MemoryAccessor::new(), 64 * 4).unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let o = obj.clone();
    let reader = tokio::spawn(async move {
        let g = o.read_async(2).await.unwrap();
        rx.await.unwrap();
        g[0]
    });
    tokio::task::yield_now().await;
    let o = obj.clone();
    let writer = tokio::spawn(async move {
        let mut g = o.write_async(2).await.unwrap();
        g[0] = 9;
    });
    tokio::task::yield_now().await;
    assert!(!writer.is_finished(), "the write must wait for the reader");
    tx.send(()).unwrap();
    assert_eq!(reader.await.unwrap(), 0);
    writer.await.unwrap();
    assert_eq!(obj.read(2).unwrap()[0], 9);
}

/// Futures dropped while waiting (for a frame, for a page's writer) withdraw: no waiting
/// obtainer is left counted, no pin, and the next faults proceed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_fault_futures_leave_nothing_behind() {
    let pages = Pages::builder().page_size(64).frames(1).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 64 * 4).unwrap();
    let w = obj.write(0).unwrap(); // the only frame, held by a writer
    let r = tokio::time::timeout(Duration::from_millis(20), obj.read_async(0)).await;
    assert!(r.is_err(), "the writer holds the page: the fault waits");
    let r = tokio::time::timeout(Duration::from_millis(20), obj.read_async(1)).await;
    assert!(r.is_err(), "the only frame is held: the fault waits");
    let c = pages.census().unwrap();
    assert_eq!(
        (c.pinned, c.waiting_for_frames),
        (1, 0),
        "only the writer's pin is left: {c:?}"
    );
    drop(w);
    assert_eq!(obj.read_async(1).await.unwrap()[0], 0);
    let c = pages.census().unwrap();
    assert_eq!((c.pinned, c.waiting_for_frames), (0, 0), "{c:?}");
}

/// An accessor whose fills take a while and are counted.
struct Slow {
    fills: AtomicU64,
}

impl Accessor for Slow {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        self.fills.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        buf[..8].copy_from_slice(&(page + 100).to_le_bytes());
        Ok(())
    }
    fn flush(&self, _page: u64, _buf: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Awaited faults of a page another thread is filling wait for that fill (without joining it)
/// and read its bytes: one fill. Some of them are dropped while they wait: the fill is not
/// disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaited_faults_wait_for_another_threads_fill_of_the_page() {
    let pages = Pages::builder().page_size(64).frames(4).build().unwrap();
    let acc = Arc::new(Slow {
        fills: AtomicU64::new(0),
    });
    let obj: Arc<PageMapper> = Arc::new(pages.open(acc.clone(), 64 * 4).unwrap());
    let o = obj.clone();
    let filler = std::thread::spawn(move || word(&o.read(3).unwrap()));
    while acc.fills.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let dropped = tokio::time::timeout(Duration::from_millis(5), obj.read_async(3)).await;
    assert!(dropped.is_err(), "the fill takes 50 ms");
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let o = obj.clone();
        waiting.push(tokio::spawn(async move {
            word(&o.read_async(3).await.unwrap())
        }));
    }
    for w in waiting {
        assert_eq!(w.await.unwrap(), 103);
    }
    assert_eq!(filler.join().unwrap(), 103);
    assert_eq!(acc.fills.load(Ordering::SeqCst), 1, "one fill");
    let c = pages.census().unwrap();
    assert_eq!(c.pinned, 0, "{c:?}");
}

/// Errors come back as the blocking faults' do: a page beyond the object, a write to a
/// read-only object, a closed object; polling a completed future again is an error.
#[tokio::test(flavor = "current_thread")]
async fn awaited_faults_report_the_blocking_faults_errors() {
    use std::future::Future;
    let pages = Pages::builder().page_size(64).frames(2).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 64 * 4).unwrap();
    assert!(matches!(
        obj.read_async(4).await,
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        obj.read_async(u64::MAX).await,
        Err(Error::OutOfRange { .. })
    ));
    let mut fut = std::pin::pin!(obj.read_async(0));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let std::task::Poll::Ready(Ok(g)) = fut.as_mut().poll(&mut cx) else {
        panic!("an uncontended fault completes at once");
    };
    drop(g);
    assert!(matches!(
        fut.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Err(Error::Invariant(_)))
    ));
    obj.close().unwrap();
    assert!(matches!(obj.write_async(0).await, Err(Error::Closed)));
}

/// The same for a copy's page that no layer holds (zeros): its awaited fault waits for the
/// frame a task of the same thread holds, and does not block the thread (it used to obtain as a
/// blocking fault does, and failed with `Exhausted` at the pool's bound).
#[tokio::test(flavor = "current_thread")]
async fn a_copy_s_zero_page_waits_for_a_frame_without_blocking_the_thread() {
    let pages = Pages::builder()
        .page_size(64)
        .frames(1)
        .wait_bound(Some(LIMIT))
        .build()
        .unwrap();
    let src = pages.anonymous(64 * 4).unwrap();
    src.write(0).unwrap()[0] = 1;
    let copy = Arc::new(src.copy().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = Arc::new(src);
    let holder = {
        let s = s.clone();
        tokio::spawn(async move {
            let g = s.read(0).unwrap(); // the only frame, pinned (the layer's page)
            let v = g[0];
            rx.await.unwrap();
            drop(g);
            v
        })
    };
    tokio::task::yield_now().await;
    let c = copy.clone();
    let faulter = tokio::spawn(async move { c.read_async(3).await.map(|g| g[0]) });
    tokio::task::yield_now().await; // the fault finds no frame, and waits
    assert_eq!(pages.census().unwrap().waiting_for_frames, 1);
    tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap(), 1);
    assert_eq!(faulter.await.unwrap().unwrap(), 0);
    assert_eq!(copy.read(0).unwrap()[0], 1);
    let c = pages.census().unwrap();
    assert_eq!((c.pinned, c.waiting_for_frames), (0, 0), "{c:?}");
}
