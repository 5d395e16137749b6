//! Model-based property test: random operation sequences over several objects and a pool much
//! smaller than the data (so reclaim is constant), checked against the sequential reference
//! model after every step: content (I3) on every read, conservation and uniqueness (I1, I2) via
//! the pool's census, durability (I6) of everything written after each sync and close.

use pagecore::{Accessor, Error, FileAccessor, MemoryAccessor, PageMapper, Pages};
use pagecore_tests::{Expect, Model};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const PAGE: usize = 64;
const FRAMES: u64 = 4;
const PAGES_PER_OBJECT: u64 = 12;
const OBJECTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Read(usize, u64),
    Write(usize, u64, u8),
    WriteAt(usize, u64, u8, u16),
    Hold(usize, u64),
    ReleaseAll,
    Sync(usize),
    Close(usize),
    Reopen(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let obj = 0..OBJECTS;
    // Page indices run one past the limit to exercise OutOfRange.
    let page = 0..PAGES_PER_OBJECT + 1;
    prop_oneof![
        6 => (obj.clone(), page.clone()).prop_map(|(o, p)| Op::Read(o, p)),
        6 => (obj.clone(), page.clone(), any::<u8>()).prop_map(|(o, p, v)| Op::Write(o, p, v)),
        2 => (obj.clone(), 0..PAGES_PER_OBJECT * PAGE as u64, any::<u8>(), 1u16..200)
            .prop_map(|(o, off, v, n)| Op::WriteAt(o, off, v, n)),
        2 => (obj.clone(), page).prop_map(|(o, p)| Op::Hold(o, p)),
        2 => Just(Op::ReleaseAll),
        1 => obj.clone().prop_map(Op::Sync),
        1 => obj.clone().prop_map(Op::Close),
        1 => obj.prop_map(Op::Reopen),
    ]
}

/// A page's bytes for a write of `v`: varied within the page so a mix-up of offsets shows.
fn pattern(page: u64, v: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|i| v.wrapping_add(i as u8).wrapping_mul(page as u8 | 1))
        .collect()
}

struct Backing {
    mem: Option<Arc<MemoryAccessor>>,
    file: Option<(Arc<FileAccessor>, std::path::PathBuf)>,
}

fn open(pages: &Pages, b: &Backing) -> PageMapper {
    let limit = PAGES_PER_OBJECT * PAGE as u64;
    match (&b.mem, &b.file) {
        (Some(m), _) => pages.open(m.clone(), limit).unwrap(),
        (_, Some((f, _))) => pages.open(f.clone(), limit).unwrap(),
        _ => unreachable!(),
    }
}

/// The stored (backing) content of a page.
fn stored(b: &Backing, page: u64) -> Vec<u8> {
    let mut buf = vec![0; PAGE];
    match (&b.mem, &b.file) {
        (Some(m), _) => m.fill(page, &mut buf).unwrap(),
        (_, Some((f, _))) => f.fill(page, &mut buf).unwrap(),
        _ => unreachable!(),
    }
    buf
}

fn expect_err(e: &Error) -> Expect {
    match e {
        Error::Exhausted { .. } => Expect::Exhausted,
        Error::Busy { .. } => Expect::Busy,
        Error::OutOfRange { .. } => Expect::OutOfRange,
        Error::Closed => Expect::Closed,
        other => panic!("unexpected error {other:?}"),
    }
}

fn run(ops: Vec<Op>, policy: pagecore::Policy) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    // Waits are bounded at zero so that "every frame pinned" and "page held" fail at once, as
    // the model predicts, instead of waiting for a release that this single thread never makes.
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(FRAMES)
        .wait_bound(Some(Duration::ZERO))
        .policy(policy)
        .build()
        .unwrap();
    let mut model = Model::new(PAGE, FRAMES as usize);
    let backings: Vec<Backing> = (0..OBJECTS)
        .map(|i| {
            if i == 0 {
                let path = dir.path().join("obj0");
                let f = Arc::new(FileAccessor::open(&path, PAGE).unwrap());
                Backing {
                    mem: None,
                    file: Some((f, path)),
                }
            } else {
                Backing {
                    mem: Some(Arc::new(MemoryAccessor::new())),
                    file: None,
                }
            }
        })
        .collect();
    let objects: Vec<PageMapper> = backings.iter().map(|b| open(&pages, b)).collect();
    let mut objects: Vec<Option<PageMapper>> = objects.into_iter().map(Some).collect();
    for _ in 0..OBJECTS {
        model.open(PAGES_PER_OBJECT);
    }
    // Guards borrow a handle; held guards borrow leaked clones (a few bytes per Hold), so the
    // handles in `objects` can be replaced on reopen while guards are held.
    let mut held: Vec<(usize, u64, pagecore::ReadGuard<'static>)> = Vec::new();

    for op in ops {
        match op.clone() {
            Op::Read(o, p) => {
                let h = objects[o].as_ref().unwrap();
                let got = match h.read(p) {
                    Ok(g) => Expect::Ok(g.to_vec()),
                    Err(e) => expect_err(&e),
                };
                prop_assert_eq!(got, model.read(o, p), "{:?}", op);
            }
            Op::Write(o, p, v) => {
                let h = objects[o].as_ref().unwrap();
                let data = pattern(p, v);
                let got = match h.write(p) {
                    Ok(mut g) => {
                        g.copy_from_slice(&data);
                        Expect::Ok(Vec::new())
                    }
                    Err(e) => expect_err(&e),
                };
                prop_assert_eq!(got, model.write(o, p, data), "{:?}", op);
            }
            Op::WriteAt(o, off, v, n) => {
                // Only when nothing is held, so each touched page's outcome is predictable.
                if !model.held.is_empty() || !model.objects[o].open {
                    continue;
                }
                let h = objects[o].as_ref().unwrap();
                let n = n as u64;
                let data: Vec<u8> = (0..n).map(|i| v.wrapping_add(i as u8)).collect();
                let r = h.write_at(off, &data);
                if off + n > PAGES_PER_OBJECT * PAGE as u64 {
                    prop_assert!(matches!(r, Err(Error::OutOfRange { .. })), "{:?}", r);
                    continue;
                }
                prop_assert!(r.is_ok(), "{:?}: {:?}", op, r);
                for (i, b) in data.iter().enumerate() {
                    let pos = off + i as u64;
                    let (p, w) = (pos / PAGE as u64, (pos % PAGE as u64) as usize);
                    let mut c = model.content(o, p);
                    c[w] = *b;
                    model.objects[o].pages.insert(p, c);
                }
                let mut back = vec![0; n as usize];
                h.read_at(off, &mut back).unwrap();
                prop_assert_eq!(back, data);
            }
            Op::Hold(o, p) => {
                if model.held.contains(&(o, p)) {
                    continue;
                }
                let h: &'static PageMapper =
                    Box::leak(Box::new(objects[o].as_ref().unwrap().clone()));
                let got = match h.read(p) {
                    Ok(g) => {
                        let bytes = g.to_vec();
                        held.push((o, p, g));
                        Expect::Ok(bytes)
                    }
                    Err(e) => expect_err(&e),
                };
                prop_assert_eq!(got, model.hold(o, p), "{:?}", op);
            }
            Op::ReleaseAll => {
                held.clear();
                model.release_all();
            }
            Op::Sync(o) => {
                let h = objects[o].as_ref().unwrap();
                let r = h.sync();
                if model.objects[o].open {
                    prop_assert!(r.is_ok(), "sync: {:?}", r);
                    // I6: everything written is in the backing store now.
                    for p in 0..PAGES_PER_OBJECT {
                        prop_assert_eq!(
                            stored(&backings[o], p),
                            model.content(o, p),
                            "page {} after sync",
                            p
                        );
                    }
                } else {
                    prop_assert!(matches!(r, Err(Error::Closed)), "{:?}", r);
                }
            }
            Op::Close(o) => {
                if !held.is_empty() {
                    // Guards borrow handles; keep the borrow story simple.
                    continue;
                }
                let h = objects[o].as_ref().unwrap().clone();
                let r = h.close();
                let want = model.close(o);
                prop_assert_eq!(
                    r.map(|_| Expect::Ok(Vec::new()))
                        .unwrap_or_else(|e| expect_err(&e)),
                    want
                );
                if !model.objects[o].open {
                    for p in 0..PAGES_PER_OBJECT {
                        prop_assert_eq!(
                            stored(&backings[o], p),
                            model.content(o, p),
                            "page {} after close",
                            p
                        );
                    }
                }
            }
            Op::Reopen(o) => {
                if model.objects[o].open || !held.is_empty() {
                    continue;
                }
                objects[o] = Some(open(&pages, &backings[o]));
                model.reopen(o);
            }
        }
        let c = pages
            .census()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(c.total() as u64, FRAMES);
        prop_assert_eq!(
            c.filling + c.reclaiming,
            0,
            "quiescent pool has frames in transit"
        );
        prop_assert!(c.pinned as usize <= held.len());
    }
    held.clear();
    Ok(())
}

/// Every eviction policy (`pagecore_tests::POLICIES`).
fn policy() -> impl Strategy<Value = pagecore::Policy> {
    proptest::sample::select(pagecore_tests::POLICIES.to_vec())
}

proptest! {
    // A failure reports in seconds: a bounded shrink (each step replays a whole run).
    // Under Miri (ci/miri.sh) a handful of cases: each is hundreds of times slower there.
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        max_shrink_iters: 1024,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    })]
    #[test]
    fn operations_match_the_reference_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 150 }),
                                             policy in policy()) {
        run(ops, policy)?;
    }
}
