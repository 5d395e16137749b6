//! Requests as futures (`client.enqueue(page, access)?.await`) on tokio's multi-threaded runtime:
//! every task's write is granted alone and none is lost; a request whose future is dropped (a
//! time-out) is withdrawn and leaves nothing behind; a grant handed to a waiting task wakes it.

use pagecore::{Access, Error, MemoryAccessor, PageMapper, Pages};
use std::sync::Arc;
use std::time::Duration;

fn object() -> (Pages, PageMapper) {
    let pages = Pages::builder().page_size(64).frames(4).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 64 * 8).unwrap();
    (pages, obj)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_writing_one_page_through_awaited_requests_lose_no_write() {
    const TASKS: u32 = 16;
    const ROUNDS: u32 = 50;
    let (_pages, obj) = object();
    let obj = Arc::new(obj);
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let obj = obj.clone();
        handles.push(tokio::spawn(async move {
            let client = obj.register().unwrap();
            for _ in 0..ROUNDS {
                let mut g = client.enqueue(3, Access::Write).unwrap().await.unwrap();
                let b = g.bytes_mut().unwrap();
                let n = u32::from_le_bytes(b[..4].try_into().unwrap());
                tokio::task::yield_now().await; // hold the grant across a suspension
                b[..4].copy_from_slice(&(n + 1).to_le_bytes());
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let n = u32::from_le_bytes(obj.read(3).unwrap()[..4].try_into().unwrap());
    assert_eq!(n, TASKS * ROUNDS);
    let census = obj.arbitration().unwrap();
    assert_eq!((census.held_pages, census.waiting), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_future_is_withdrawn() {
    let (_pages, obj) = object();
    let (holder, waiter) = (obj.register().unwrap(), obj.register().unwrap());
    let g = holder.request(2, Access::Write).unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(30),
        waiter.enqueue(2, Access::Read).unwrap(),
    )
    .await;
    assert!(
        r.is_err(),
        "the writer holds the page: the request must still wait"
    );
    let census = obj.arbitration().unwrap();
    assert_eq!(census.waiting, 0, "the dropped future withdrew its request");
    drop(g);
    // Nobody waits behind: a new request is granted at once.
    let g = waiter.try_request(2, Access::Write).unwrap();
    drop(g);
    assert_eq!(obj.arbitration().unwrap().held_pages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_on_another_thread_wakes_the_waiting_task() {
    let (_pages, obj) = object();
    let obj = Arc::new(obj);
    let holder = Arc::new(obj.register().unwrap());
    let g = pagecore::OwnedGrant::request(&holder, 1, Access::Write).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let o = obj.clone();
    let task = tokio::spawn(async move {
        let c = o.register().unwrap();
        let p = c.enqueue(1, Access::Read).unwrap();
        tx.send(()).unwrap();
        let g = p.await.unwrap();
        g[0]
    });
    rx.await.unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let mut g = g;
        g.bytes_mut().unwrap()[0] = 4;
        drop(g);
    });
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap(),
        4
    );
    releaser.join().unwrap();
}

/// An awaited write request queued behind a reader on a copy-on-write page: once the reader
/// lets go, the write is blocked only by the shared frame, which its poll breaks (the object
/// gets a private page). A poll that waited for the entry instead would wait for ever
/// (cargo-mutants' survivors at `poll_wait`'s break condition: no test reached it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_write_behind_a_reader_breaks_the_copy_on_write_page() {
    let (_pages, obj) = object();
    obj.write(5).unwrap()[0] = 7;
    let snap = obj.copy().unwrap(); // page 5 is shared copy-on-write from here
    let obj = Arc::new(obj);
    let reader = obj.register().unwrap();
    let r = reader.request(5, Access::Read).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let o = obj.clone();
    let task = tokio::spawn(async move {
        let writer = o.register().unwrap();
        let p = writer.enqueue(5, Access::Write).unwrap();
        tx.send(()).unwrap();
        let mut g = p.await.unwrap();
        g.bytes_mut().unwrap()[0] = 9;
    });
    rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // the write waits behind the reader
    drop(r);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the write is granted once the reader lets go")
        .unwrap();
    assert_eq!(obj.read(5).unwrap()[0], 9, "the object's write");
    assert_eq!(snap.read(5).unwrap()[0], 7, "the copy keeps its page");
}

#[test]
fn polling_a_completed_request_again_is_an_error_not_a_panic() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let (_pages, obj) = object();
    let c = obj.register().unwrap();
    let mut fut = std::pin::pin!(c.enqueue(0, Access::Read).unwrap());
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(g)) = fut.as_mut().poll(&mut cx) else {
        panic!("an uncontended request is granted at once")
    };
    drop(g);
    assert!(matches!(
        fut.as_mut().poll(&mut cx),
        Poll::Ready(Err(Error::Invariant(_)))
    ));
}
