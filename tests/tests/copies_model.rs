//! Model-based property test of anonymous memory, logical copies, swap pressure and regions
//! (issue 4): random operation sequences (reads, writes, copies of copies, drops, syncs,
//! compactions, region maps, unmaps and faults) over a pool of 4 frames for objects of 12 pages,
//! checked after every step against `pagecore_tests::CopyModel`: every read's bytes (I3, I13),
//! every region operation's outcome, conservation and uniqueness (census: I1, I2, I15); at the
//! end, once every handle and address space is gone, every frame is free, the swap area empty,
//! and the persistent object's store holds exactly its model content (I6).

use pagecore::internals::sync::ShareArc;
use pagecore::SwapArea;
use pagecore::{Access, Error, MemoryAccessor, PageMapper, Pages};
use pagecore::{AddressSpace, Protection, Sharing};
use pagecore_tests::{CopyModel, RegionExpect};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const PAGE: usize = 32;
const FRAMES: u64 = 4;
const PAGES: u64 = 12;
const SPACES: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Read(usize, u64),
    Write(usize, u64, u8),
    Copy(usize),
    Drop(usize),
    Sync(usize),
    Compact(usize),
    Map {
        space: usize,
        obj: usize,
        start: u64,
        len: u64,
        offset: u64,
        write: bool,
        private: bool,
    },
    Unmap {
        space: usize,
        start: u64,
        len: u64,
    },
    Fault {
        space: usize,
        page: u64,
        write: Option<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..16usize;
    let p = 0..PAGES;
    prop_oneof![
        8 => (h.clone(), p.clone()).prop_map(|(h, p)| Op::Read(h, p)),
        8 => (h.clone(), p.clone(), any::<u8>()).prop_map(|(h, p, v)| Op::Write(h, p, v)),
        3 => h.clone().prop_map(Op::Copy),
        1 => h.clone().prop_map(Op::Drop),
        1 => h.clone().prop_map(Op::Sync),
        1 => h.clone().prop_map(Op::Compact),
        2 => (0..SPACES, h, 0..24u64, 1..5u64, 0..PAGES, any::<bool>(), any::<bool>())
            .prop_map(|(space, obj, start, len, offset, write, private)| Op::Map {
                space, obj, start, len, offset, write, private
            }),
        1 => (0..SPACES, 0..24u64, 1..4u64).prop_map(|(space, start, len)| Op::Unmap { space, start, len }),
        6 => (0..SPACES, 0..26u64, proptest::option::of(any::<u8>()))
            .prop_map(|(space, page, write)| Op::Fault { space, page, write }),
    ]
}

/// The bytes a write of `v` puts in page `p`.
fn pattern(p: u64, v: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|i| v.wrapping_mul(31) ^ (p as u8).wrapping_mul(7) ^ i as u8)
        .collect()
}

fn region_err(e: &Error) -> RegionExpect {
    match e {
        Error::NoRegion { .. } => RegionExpect::NoRegion,
        Error::Protection { .. } => RegionExpect::Protection,
        Error::Overlap { .. } => RegionExpect::Overlap,
        Error::OutOfRange { .. } => RegionExpect::OutOfRange,
        other => panic!("unexpected error {other:?}"),
    }
}

fn run(ops: Vec<Op>, policy: pagecore::Policy) -> Result<(), TestCaseError> {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 4096).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(FRAMES)
        .swap(swap.clone())
        // One thread: nothing should ever wait, so a wait is a failure, reported at once
        // rather than after a long bound at every shrinking step.
        .wait_bound(Some(Duration::from_millis(100)))
        .policy(policy)
        .build()
        .unwrap();
    let limit = PAGES * PAGE as u64;
    let store = Arc::new(MemoryAccessor::new());
    let mut model = CopyModel::new(SPACES);
    // Live handles: (handle, model id, persistent).
    let mut handles: Vec<(PageMapper, usize, bool)> = Vec::new();
    let anon = pages.anonymous(limit).unwrap();
    handles.push((anon, model.create(), false));
    let file = pages.open(store.clone(), limit).unwrap();
    let file_id = model.create();
    handles.push((file, file_id, true));
    let mut spaces: Vec<AddressSpace> = (0..SPACES).map(|_| AddressSpace::new(&pages)).collect();
    let ps = PAGE as u64;

    for op in ops {
        if handles.is_empty() {
            break;
        }
        let pick = |i: usize| i % handles.len();
        match op.clone() {
            Op::Read(h, p) => {
                let (o, id, _) = &handles[pick(h)];
                let got = o.read(p).unwrap().to_vec();
                prop_assert_eq!(got, model.read(*id, p, PAGE), "{:?}", op);
            }
            Op::Write(h, p, v) => {
                let (o, id, _) = &handles[pick(h)];
                o.write(p).unwrap().copy_from_slice(&pattern(p, v));
                model.write(*id, p, pattern(p, v));
            }
            Op::Copy(h) => {
                let (o, id, _) = &handles[pick(h)];
                let c = o.copy().unwrap();
                let cid = model.copy(*id);
                handles.push((c, cid, false));
            }
            Op::Drop(h) => {
                let i = pick(h);
                if !handles[i].2 {
                    handles.remove(i);
                }
            }
            Op::Sync(h) => {
                let (o, id, persistent) = &handles[pick(h)];
                o.sync().unwrap();
                if *persistent {
                    pagecore_tests::assert_store(&*store, &model, *id, PAGES, PAGE, "after sync");
                }
            }
            Op::Compact(h) => {
                let (o, _, _) = &handles[pick(h)];
                let d = o.compact();
                prop_assert_eq!(d, o.copy_stats().depth);
            }
            Op::Map {
                space,
                obj,
                start,
                len,
                offset,
                write,
                private,
            } => {
                let (o, id, _) = &handles[pick(obj)];
                let prot = if write {
                    Protection::ReadWrite
                } else {
                    Protection::Read
                };
                let sharing = if private {
                    Sharing::Private
                } else {
                    Sharing::Shared
                };
                let got =
                    match spaces[space].map(start * ps, len * ps, o, offset * ps, prot, sharing) {
                        Ok(()) => RegionExpect::Ok(Vec::new()),
                        Err(e) => region_err(&e),
                    };
                let want = model.map(space, start, len, *id, PAGES, offset, write, private);
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Unmap { space, start, len } => {
                spaces[space].unmap(start * ps, len * ps).unwrap();
                model.unmap(space, start, len);
            }
            Op::Fault { space, page, write } => {
                let addr = page * ps + 3;
                let got = match write {
                    None => spaces[space]
                        .fault(addr, Access::Read)
                        .map(|g| RegionExpect::Ok(g.to_vec())),
                    Some(v) => {
                        // The page the address maps (for the pattern), if any.
                        let p = spaces[space].translate(addr).map(|f| f.page).unwrap_or(0);
                        spaces[space].fault(addr, Access::Write).and_then(|mut g| {
                            g.bytes_mut()?.copy_from_slice(&pattern(p, v));
                            Ok(RegionExpect::Ok(Vec::new()))
                        })
                    }
                };
                let got = got.unwrap_or_else(|e| region_err(&e));
                let data = write.map(|v| {
                    let p = spaces[space].translate(addr).map(|f| f.page).unwrap_or(0);
                    pattern(p, v)
                });
                prop_assert_eq!(got, model.fault(space, page, data, PAGE), "{:?}", op);
            }
        }
        let c = pages
            .census()
            .map_err(|e| TestCaseError::fail(format!("{e} after {op:?}")))?;
        prop_assert_eq!(c.pinned, 0, "{:?} after {:?}", c, op);
        for (o, _, _) in &handles {
            o.arbitration()
                .map_err(|e| TestCaseError::fail(format!("{e} after {op:?}")))?;
        }
    }
    // The persistent object's store gets its content when its last handle goes.
    drop(spaces);
    drop(handles);
    pagecore_tests::assert_store(&*store, &model, file_id, PAGES, PAGE, "at the end");
    let c = pages.census().unwrap();
    prop_assert_eq!(
        c.free,
        FRAMES as u32,
        "frames outlived every object: {:?}",
        c
    );
    prop_assert_eq!(swap.in_use(), 0, "swap slots outlived every object");
    Ok(())
}

/// Every eviction policy (`pagecore_tests::POLICIES`).
fn policy() -> impl Strategy<Value = pagecore::Policy> {
    proptest::sample::select(pagecore_tests::POLICIES.to_vec())
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
    fn copies_regions_and_swap_match_the_model(ops in proptest::collection::vec(op(), 1..150),
                                              policy in policy()) {
        run(ops, policy)?;
    }
}
