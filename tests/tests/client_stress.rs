//! Arbitration stress on real threads and a real file: 8 clients request read and write access
//! (and upgrades) to 24 pages through a pool of 6 frames, so reclaim runs constantly and must skip
//! held pages. An independent checker (a per-page count of active readers, or -1 for a writer,
//! changed on entry to and exit from every grant) asserts many-readers-or-one-writer (I9); every
//! write grant increments the page's counter, and at the end the file on disk holds, for every
//! page, exactly the number of increments made (no lost update, I6) in every word (no torn page).

use pagecore::{Access, Error, FileAccessor, Pages, Revocation};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const PAGE: usize = 256;
const PAGES: u64 = 24;
const FRAMES: u64 = 6;
const CLIENTS: usize = 8;
const OPS: usize = 3000;

fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap())
}

fn check_untorn(b: &[u8], page: u64) -> u64 {
    let v = word(b, 0);
    assert!((0..PAGE / 8).all(|i| word(b, i) == v), "page {page} torn");
    v
}

#[test]
fn eight_clients_keep_many_readers_or_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(FRAMES)
        .build()
        .unwrap();
    let obj = pages
        .open(
            FileAccessor::open(&path, PAGE).unwrap(),
            PAGES * PAGE as u64,
        )
        .unwrap();
    let active: Arc<Vec<AtomicI64>> = Arc::new((0..PAGES).map(|_| AtomicI64::new(0)).collect());
    let increments: Arc<Vec<AtomicU64>> = Arc::new((0..PAGES).map(|_| AtomicU64::new(0)).collect());
    let refused = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (obj, active, increments, refused) = (
                obj.clone(),
                active.clone(),
                increments.clone(),
                refused.clone(),
            );
            thread::spawn(move || {
                let asked = Arc::new(AtomicBool::new(false));
                let flag = asked.clone();
                let client = obj
                    .register_with(move |_p: u64, _a: Revocation| flag.store(true, SeqCst))
                    .unwrap();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                for _ in 0..OPS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Skewed: low pages are hot, so conflicts and waiting are frequent.
                    let page = (x % PAGES).min((x >> 8) % PAGES);
                    let kind = (x >> 20) % 8;
                    let want = if kind < 3 {
                        Access::Write
                    } else {
                        Access::Read
                    };
                    let mut g = match client.request_timeout(page, want, Duration::from_secs(5)) {
                        Ok(g) => g,
                        Err(Error::Exhausted { .. } | Error::Busy { .. }) => {
                            refused.fetch_add(1, SeqCst);
                            continue;
                        }
                        Err(e) => panic!("client {t}: {e}"),
                    };
                    let a = &active[page as usize];
                    if g.access() == Access::Read {
                        assert!(a.fetch_add(1, SeqCst) >= 0, "I9: reader beside a writer");
                        check_untorn(&g, page);
                        asked.store(false, SeqCst);
                        thread::yield_now();
                        assert!(a.fetch_sub(1, SeqCst) >= 1);
                        if kind == 7 {
                            // Upgrade: granted when the other readers leave, or refused.
                            match g.upgrade_timeout(Duration::from_millis(20)) {
                                Ok(()) => {}
                                Err(Error::UpgradeConflict { .. } | Error::GrantTimeout { .. }) => {
                                    continue
                                }
                                Err(e) => panic!("upgrade: {e}"),
                            }
                        } else {
                            continue;
                        }
                    }
                    assert_eq!(
                        a.compare_exchange(0, -1, SeqCst, SeqCst),
                        Ok(0),
                        "I9: two writers"
                    );
                    let v = check_untorn(&g, page) + 1;
                    for w in g.bytes_mut().unwrap().chunks_exact_mut(8) {
                        w.copy_from_slice(&v.to_le_bytes());
                    }
                    increments[page as usize].fetch_add(1, SeqCst);
                    assert_eq!(a.compare_exchange(-1, 0, SeqCst, SeqCst), Ok(-1));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    obj.sync().unwrap();
    let disk = std::fs::read(&path).unwrap();
    let mut total = 0;
    for p in 0..PAGES {
        let got = disk
            .get(p as usize * PAGE..(p as usize + 1) * PAGE)
            .map_or(0, |b| check_untorn(b, p));
        let want = increments[p as usize].load(SeqCst);
        assert_eq!(got, want, "page {p}: lost updates");
        total += want;
    }
    let stats = pages.stats();
    assert!(total > 1000, "too few writes to mean anything: {total}");
    assert!(stats.reclaims > 100, "the pool never reclaimed: {stats:?}");
    assert!(stats.grant_waits > 0, "no request ever waited: {stats:?}");
    println!(
        "{total} writes, {} refused; {stats:?}",
        refused.load(SeqCst)
    );
    let c = obj.arbitration().unwrap();
    assert_eq!(
        (c.held_pages, c.waiting, c.side_entries, c.records),
        (0, 0, 0, 0)
    );
    assert!(
        refused.load(SeqCst) < (CLIENTS * OPS / 10) as u64,
        "too many refusals: {}",
        refused.load(SeqCst)
    );
    pages.census().unwrap();
}
