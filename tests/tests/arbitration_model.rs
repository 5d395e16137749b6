//! Model-based property test of arbitration: random sequences of requests, releases,
//! withdrawals, downgrades, upgrade attempts, writes and client departures by six clients (so
//! pages go out of line with the fifth) over a few pages, checked after every step against the
//! reference model ([`ArbModel`]): which requests are granted (many readers or one writer, FIFO
//! with reader batches), which revocations were asked (each holder once per grant), the page
//! contents each grant shows, and the implementation's own invariant check (I9-I12).

use pagecore::{Access, Client, Error, Grant, MemoryAccessor, Pages, Pending, Revocation};
use pagecore_tests::{Acc, ArbModel, Ask, ReqOutcome};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PAGE: usize = 16;
const PAGES: u64 = 4;
const CLIENTS: u32 = 6;

#[derive(Debug, Clone)]
enum Op {
    Request(u32, u64, bool),
    Drop(u32, u64),
    Downgrade(u32, u64),
    Upgrade(u32, u64),
    Write(u32, u64, u8),
    Depart(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    let p = 0..PAGES;
    prop_oneof![
        8 => (c.clone(), p.clone(), any::<bool>()).prop_map(|(c, p, w)| Op::Request(c, p, w)),
        6 => (c.clone(), p.clone()).prop_map(|(c, p)| Op::Drop(c, p)),
        2 => (c.clone(), p.clone()).prop_map(|(c, p)| Op::Downgrade(c, p)),
        2 => (c.clone(), p.clone()).prop_map(|(c, p)| Op::Upgrade(c, p)),
        3 => (c.clone(), p, any::<u8>()).prop_map(|(c, p, v)| Op::Write(c, p, v)),
        1 => c.prop_map(Op::Depart),
    ]
}

fn acc(w: bool) -> (Access, Acc) {
    if w {
        (Access::Write, Acc::Write)
    } else {
        (Access::Read, Acc::Read)
    }
}

type Log = Arc<Mutex<Vec<Ask>>>;

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(PAGES * 2)
        .wait_bound(Some(Duration::ZERO))
        .build()
        .unwrap();
    let obj = pages
        .open(MemoryAccessor::new(), PAGES * PAGE as u64)
        .unwrap();
    let log = Log::default();
    // Slot i of the test drives the client registered i-th; a departed slot gets a new client
    // (clients are leaked so grants can outlive the loop's borrows; ids are therefore not
    // reused here: `tests/arbitration.rs` checks id reuse).
    let mut ids: Vec<u32> = Vec::new();
    let mut clients: Vec<&'static Client> = Vec::new();
    let register = |log: &Log| -> &'static Client {
        let log = log.clone();
        let me = Arc::new(Mutex::new(u32::MAX));
        let me2 = me.clone();
        let c = obj
            .register_with(move |page, ask| {
                log.lock()
                    .unwrap()
                    .push((*me2.lock().unwrap(), page, ask == Revocation::Release))
            })
            .unwrap();
        *me.lock().unwrap() = c.id();
        Box::leak(Box::new(c))
    };
    for _ in 0..CLIENTS {
        let c = register(&log);
        ids.push(c.id());
        clients.push(c);
    }
    let mut model = ArbModel::default();
    let mut content: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut grants: HashMap<(u32, u64), Grant<'static>> = HashMap::new();
    let mut pendings: HashMap<(u32, u64), Pending<'static>> = HashMap::new();

    for op in ops {
        match op.clone() {
            Op::Request(i, p, w) => {
                let (a, ma) = acc(w);
                let id = ids[i as usize];
                let want = model.request(id, p, ma);
                match clients[i as usize].enqueue(p, a) {
                    Ok(pend) => {
                        pendings.insert((id, p), pend);
                        prop_assert!(want != ReqOutcome::AlreadyHeld, "{:?}", op);
                    }
                    Err(Error::AlreadyHeld { .. }) => {
                        prop_assert_eq!(want, ReqOutcome::AlreadyHeld, "{:?}", op)
                    }
                    Err(e) => prop_assert!(false, "{:?}: {:?}", op, e),
                }
            }
            Op::Drop(i, p) => {
                let id = ids[i as usize];
                grants.remove(&(id, p));
                pendings.remove(&(id, p));
                model.drop_access(id, p);
            }
            Op::Downgrade(i, p) => {
                let id = ids[i as usize];
                if let Some(g) = grants.get_mut(&(id, p)) {
                    g.downgrade().unwrap();
                    model.downgrade(id, p);
                }
            }
            Op::Upgrade(i, p) => {
                let id = ids[i as usize];
                if let Some(g) = grants.get_mut(&(id, p)) {
                    if g.access() == Access::Read {
                        let r = g.upgrade_timeout(Duration::ZERO);
                        let want = model.try_upgrade(id, p);
                        prop_assert_eq!(r.is_ok(), want, "{:?}: {:?}", op, r);
                    }
                }
            }
            Op::Write(i, p, v) => {
                let id = ids[i as usize];
                if let Some(g) = grants.get_mut(&(id, p)) {
                    let data: Vec<u8> = (0..PAGE as u8).map(|k| v ^ k).collect();
                    match g.bytes_mut() {
                        Ok(b) => {
                            prop_assert_eq!(model.holds(id, p), Some(Acc::Write));
                            b.copy_from_slice(&data);
                            content.insert(p, data);
                        }
                        Err(Error::ReadGrant { .. }) => {
                            prop_assert_eq!(model.holds(id, p), Some(Acc::Read))
                        }
                        Err(e) => prop_assert!(false, "{:?}", e),
                    }
                }
            }
            Op::Depart(i) => {
                let id = ids[i as usize];
                grants.retain(|k, _| k.0 != id);
                pendings.retain(|k, _| k.0 != id);
                for p in 0..PAGES {
                    model.drop_access(id, p);
                }
                let c = register(&log);
                ids[i as usize] = c.id();
                clients[i as usize] = c;
            }
        }
        // Every waiting request granted by the model must be granted, and only those.
        let keys: Vec<_> = pendings.keys().copied().collect();
        for k in keys {
            let granted = pendings.get_mut(&k).unwrap().is_granted().unwrap();
            let want = model.holds(k.0, k.1).is_some();
            prop_assert_eq!(
                granted,
                want,
                "request {:?} after {:?}: {:?}",
                k,
                op,
                model.pages.get(&k.1)
            );
            if granted {
                let g = pendings.remove(&k).unwrap().wait().unwrap();
                grants.insert(k, g);
            } else {
                prop_assert!(model.waits(k.0, k.1));
            }
        }
        for (k, g) in &grants {
            let want = match model.holds(k.0, k.1) {
                Some(Acc::Read) => Access::Read,
                Some(Acc::Write) => Access::Write,
                None => return Err(TestCaseError::fail(format!("{k:?} granted, not in model"))),
            };
            prop_assert_eq!(g.access(), want);
            let expect = content.get(&k.1).cloned().unwrap_or_else(|| vec![0; PAGE]);
            prop_assert_eq!(&g[..], &expect[..], "content of page {}", k.1);
        }
        let mut got = log.lock().unwrap().clone();
        let mut want = model.asks.clone();
        got.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(got, want, "revocations after {:?}", op);
        let census = obj
            .arbitration()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((census.held_pages, census.waiting), model.census());
        prop_assert_eq!(
            census.records_created - census.records_freed,
            census.records
        );
        pages
            .census()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    grants.clear();
    pendings.clear();
    let census = obj
        .arbitration()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        (census.held_pages, census.waiting, census.records),
        (0, 0, 0)
    );
    Ok(())
}

proptest! {
    // A failure reports in seconds: a bounded shrink (each step replays a whole run).
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 1024,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    })]
    #[test]
    fn arbitration_matches_the_reference_model(ops in prop::collection::vec(op(), 1..150)) {
        run(ops)?;
    }
}
