//! The body of the `ops` fuzz target (`fuzz/fuzz_targets/ops.rs`), also replayed over its
//! committed corpus by `tests/tests/fuzz_corpus.rs` on stable Rust.
//!
//! The input is an operation sequence ([`Op`], derived with `arbitrary`) over four objects made
//! at the start (a persistent one, an anonymous one, and a copy of each), five clients each (so
//! ids reach the out-of-line path), copies made during the run, two address spaces, and a pool
//! of six frames. At most three guards or grants are held across operations, so a miss and a
//! copy-on-write break always find frames, and every operation is non-blocking (`try_request`,
//! `try_fault`, waits bounded at zero): the model then predicts every outcome exactly, `Busy`,
//! `WouldBlock` and `AlreadyHeld` included. After every operation: the pool's census (I1, I2,
//! I15), each object's arbitration check (I9-I12), and every read's bytes against the model (I3,
//! I13). At the end: every frame free, the swap area empty, the store holding the model's content.

use crate::{CopyModel, RegionExpect};
use arbitrary::{Arbitrary, Unstructured};
use pagecore::internals::sync::ShareArc;
use pagecore::SwapArea;
use pagecore::{Access, Client, Error, Grant, MemoryAccessor, PageMapper, Pages, ReadGuard};
use pagecore::{AddressSpace, Protection, Sharing};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const PAGE: usize = 16;
const PAGES: u64 = 8;
const FRAMES: u64 = 6;
const FIXED: usize = 4;
const CLIENTS: usize = 5;
const MAX_HELD: usize = 3;

/// One operation of the `ops` target. Its fields are indices (taken modulo what exists: objects,
/// pages, clients, kept items, address spaces), page-index units for regions, and `v`, the byte
/// that picks a write's pattern.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)] // the fields are described above, once
pub enum Op {
    /// A plain read of a page.
    Read { obj: u8, page: u8 },
    /// A plain write of a whole page.
    Write { obj: u8, page: u8, v: u8 },
    /// A plain read guard, kept.
    Hold { obj: u8, page: u8 },
    /// Drops a kept guard or grant.
    Let { which: u8 },
    /// `try_request` by a client of a fixed object; a grant is kept (a write grant writes first).
    Request {
        obj: u8,
        client: u8,
        page: u8,
        write: bool,
        v: u8,
    },
    /// Downgrades a kept write grant.
    Downgrade { which: u8 },
    /// Copies an object (fixed or extra) into a new extra object.
    Copy { obj: u8 },
    /// Drops an extra object.
    DropExtra { which: u8 },
    /// `sync` of an object.
    Sync { obj: u8 },
    /// `compact` of an object.
    Compact { obj: u8 },
    /// Maps a region.
    Map {
        space: bool,
        obj: u8,
        start: u8,
        len: u8,
        offset: u8,
        write: bool,
        private: bool,
    },
    /// Unmaps a range.
    Unmap { space: bool, start: u8, len: u8 },
    /// A non-blocking fault (the grant is dropped at once).
    Fault {
        space: bool,
        page: u8,
        write: Option<u8>,
    },
}

enum Held<'a> {
    /// A kept read guard (kept only for its pin, dropped by `Let`).
    Guard {
        obj: usize,
        page: u64,
        _pin: ReadGuard<'a>,
    },
    Grant(usize, usize, u64, Grant<'a>),
}

fn pattern(p: u64, v: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|i| v.wrapping_mul(13) ^ (p as u8).wrapping_mul(101) ^ i as u8)
        .collect()
}

/// Runs an operation sequence decoded from `data` and panics on any disagreement.
pub fn ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let ops: Vec<Op> = match Vec::arbitrary(&mut u) {
        Ok(v) => v,
        Err(_) => return,
    };
    run(&ops);
}

/// Who holds a page of a fixed object: `None` a plain guard, `Some(c)` client `c`; and how.
type Holders = BTreeMap<(usize, u64), Vec<(Option<usize>, Access)>>;

/// Runs `ops` against the model (see the module doc).
pub fn run(ops: &[Op]) {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 1024).expect("swap area"));
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(FRAMES)
        .swap(swap.clone())
        .wait_bound(Some(Duration::ZERO))
        .build()
        .expect("pool");
    let limit = PAGES * PAGE as u64;
    let store = Arc::new(MemoryAccessor::new());
    let mut model = CopyModel::new(2);
    let file = pages.open(store.clone(), limit).expect("object");
    let anon = pages.anonymous(limit).expect("object");
    let (file_id, anon_id) = (model.create(), model.create());
    let copy_file = file.copy().expect("copy");
    let copy_anon = anon.copy().expect("copy");
    let ids = [file_id, anon_id, model.copy(file_id), model.copy(anon_id)];
    let fixed: Vec<PageMapper> = vec![file, anon, copy_file, copy_anon];
    let clients: Vec<Vec<Client>> = fixed
        .iter()
        .map(|o| {
            (0..CLIENTS)
                .map(|_| o.register().expect("client"))
                .collect()
        })
        .collect();
    let mut extra: Vec<(PageMapper, usize)> = Vec::new();
    let mut spaces = [AddressSpace::new(&pages), AddressSpace::new(&pages)];
    let mut held: Vec<Held<'_>> = Vec::new();
    let mut holders: Holders = BTreeMap::new();
    let ps = PAGE as u64;

    for op in ops {
        let n_obj = FIXED + extra.len();
        let obj_of = |i: u8| i as usize % n_obj;
        let page_of = |p: u8| p as u64 % PAGES;
        let hold_of = |h: &Holders, o: usize, p: u64| h.get(&(o, p)).cloned().unwrap_or_default();
        match op.clone() {
            Op::Read { obj, page } => {
                let (o, p) = (obj_of(obj), page_of(page));
                let (m, id) = handle(&fixed, &ids, &extra, o);
                let write_held =
                    o < FIXED && hold_of(&holders, o, p).iter().any(|h| h.1 == Access::Write);
                match m.read(p) {
                    Ok(g) => {
                        assert!(!write_held, "{op:?}: read a write-held page");
                        assert_eq!(g.to_vec(), model.read(id, p, PAGE), "{op:?}");
                    }
                    Err(Error::Busy { .. }) => assert!(write_held, "{op:?}: Busy unheld"),
                    Err(e) => panic!("{op:?}: {e}"),
                }
            }
            Op::Write { obj, page, v } => {
                let (o, p) = (obj_of(obj), page_of(page));
                let (m, id) = handle(&fixed, &ids, &extra, o);
                let busy = o < FIXED && !hold_of(&holders, o, p).is_empty();
                match m.write(p) {
                    Ok(mut g) => {
                        assert!(!busy, "{op:?}: wrote a held page");
                        g.copy_from_slice(&pattern(p, v));
                        model.write(id, p, pattern(p, v));
                    }
                    Err(Error::Busy { .. }) => assert!(busy, "{op:?}: Busy unheld"),
                    Err(e) => panic!("{op:?}: {e}"),
                }
            }
            Op::Hold { obj, page } => {
                if held.len() >= MAX_HELD {
                    continue;
                }
                let (o, p) = ((obj as usize) % FIXED, page_of(page));
                let write_held = hold_of(&holders, o, p).iter().any(|h| h.1 == Access::Write);
                match fixed[o].read(p) {
                    Ok(g) => {
                        assert!(!write_held, "{op:?}");
                        assert_eq!(g.to_vec(), model.read(ids[o], p, PAGE), "{op:?}");
                        holders
                            .entry((o, p))
                            .or_default()
                            .push((None, Access::Read));
                        held.push(Held::Guard {
                            obj: o,
                            page: p,
                            _pin: g,
                        });
                    }
                    Err(Error::Busy { .. }) => assert!(write_held, "{op:?}"),
                    Err(e) => panic!("{op:?}: {e}"),
                }
            }
            Op::Let { which } => {
                if held.is_empty() {
                    continue;
                }
                let h = held.remove(which as usize % held.len());
                let (key, who) = match &h {
                    Held::Guard { obj, page, .. } => ((*obj, *page), None),
                    Held::Grant(o, c, p, _) => ((*o, *p), Some(*c)),
                };
                drop(h);
                let v = holders.get_mut(&key).expect("held");
                let i = v.iter().position(|x| x.0 == who).expect("holder");
                v.remove(i);
            }
            Op::Request {
                obj,
                client,
                page,
                write,
                v,
            } => {
                if held.len() >= MAX_HELD {
                    continue;
                }
                let (o, c, p) = (
                    (obj as usize) % FIXED,
                    client as usize % CLIENTS,
                    page_of(page),
                );
                let want = if write { Access::Write } else { Access::Read };
                let hs = hold_of(&holders, o, p);
                let mine = hs.iter().any(|h| h.0 == Some(c));
                let blocked = match want {
                    Access::Write => !hs.is_empty(),
                    Access::Read => hs.iter().any(|h| h.1 == Access::Write),
                };
                match clients[o][c].try_request(p, want) {
                    Ok(mut g) => {
                        assert!(!mine && !blocked, "{op:?}: granted against {hs:?}");
                        assert_eq!(g.to_vec(), model.read(ids[o], p, PAGE), "{op:?}");
                        if write {
                            g.bytes_mut()
                                .expect("write grant")
                                .copy_from_slice(&pattern(p, v));
                            model.write(ids[o], p, pattern(p, v));
                        }
                        holders.entry((o, p)).or_default().push((Some(c), want));
                        held.push(Held::Grant(o, c, p, g));
                    }
                    Err(Error::AlreadyHeld { .. }) => assert!(mine, "{op:?}"),
                    Err(Error::WouldBlock { .. }) => assert!(!mine && blocked, "{op:?}: {hs:?}"),
                    Err(e) => panic!("{op:?}: {e}"),
                }
            }
            Op::Downgrade { which } => {
                if held.is_empty() {
                    continue;
                }
                let i = which as usize % held.len();
                if let Held::Grant(o, c, p, g) = &mut held[i] {
                    g.downgrade().expect("downgrade");
                    for h in holders.get_mut(&(*o, *p)).expect("held") {
                        if h.0 == Some(*c) {
                            h.1 = Access::Read;
                        }
                    }
                }
            }
            Op::Copy { obj } => {
                if extra.len() >= 4 {
                    continue;
                }
                let o = obj_of(obj);
                let (m, id) = handle(&fixed, &ids, &extra, o);
                let writing = writes(&holders, o);
                match m.copy() {
                    Ok(c) => {
                        assert!(!writing, "{op:?}: copied under a writer");
                        let cid = model.copy(id);
                        extra.push((c, cid));
                    }
                    Err(Error::Busy { .. }) => assert!(writing, "{op:?}: Busy with no writer"),
                    Err(e) => panic!("{op:?}: {e}"),
                }
            }
            Op::DropExtra { which } => {
                if !extra.is_empty() {
                    extra.remove(which as usize % extra.len());
                }
            }
            Op::Sync { obj } => {
                let o = obj_of(obj);
                let (m, id) = handle(&fixed, &ids, &extra, o);
                let write_held = writes(&holders, o);
                match m.sync() {
                    Ok(()) if o == 0 => {
                        crate::assert_store(&*store, &model, id, PAGES, PAGE, "after sync")
                    }
                    Ok(()) => {}
                    // A write-held dirty page cannot be written back without waiting.
                    Err(Error::Busy { .. }) => assert!(write_held, "{op:?}"),
                    Err(e) => panic!("{op:?}: {e}"),
                }
            }
            Op::Compact { obj } => {
                let (m, _) = handle(&fixed, &ids, &extra, obj_of(obj));
                assert_eq!(m.compact(), m.copy_stats().depth);
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
                let s = space as usize;
                let o = obj_of(obj);
                let (m, id) = handle(&fixed, &ids, &extra, o);
                let (start, len, offset) =
                    (start as u64 % 24, 1 + len as u64 % 4, offset as u64 % PAGES);
                let writing = writes(&holders, o);
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
                let got = spaces[s].map(start * ps, len * ps, m, offset * ps, prot, sharing);
                // `map` checks the range, then overlaps, then (private) copies, which fails
                // without waiting if a client writes the object.
                let want = if offset + len > PAGES {
                    RegionExpect::OutOfRange
                } else if spaces_overlap(&model, s, start, len) {
                    RegionExpect::Overlap
                } else if private && writing {
                    RegionExpect::Protection // stands for Busy below
                } else {
                    model.map(s, start, len, id, PAGES, offset, write, private)
                };
                match (got, want) {
                    (Ok(()), RegionExpect::Ok(_)) => {}
                    (Err(Error::Busy { .. }), RegionExpect::Protection) => {}
                    (Err(Error::Overlap { .. }), RegionExpect::Overlap) => {}
                    (Err(Error::OutOfRange { .. }), RegionExpect::OutOfRange) => {}
                    (got, want) => panic!("{op:?}: got {got:?}, model {want:?}"),
                }
            }
            Op::Unmap { space, start, len } => {
                let (s, start, len) = (space as usize, start as u64 % 24, 1 + len as u64 % 3);
                spaces[s].unmap(start * ps, len * ps).expect("unmap");
                model.unmap(s, start, len);
            }
            Op::Fault { space, page, write } => {
                let s = space as usize;
                let at = page as u64 % 26;
                let addr = at * ps + 1;
                let tr = spaces[s].translate(addr).ok();
                // Regions of fixed objects (shared) meet the holders kept by this run.
                let blocked = tr.is_some_and(|f| {
                    fixed
                        .iter()
                        .position(|m| m.id() == f.object)
                        .is_some_and(|o| {
                            let hs = hold_of(&holders, o, f.page);
                            match write {
                                Some(_) => !hs.is_empty(),
                                None => hs.iter().any(|h| h.1 == Access::Write),
                            }
                        })
                });
                let data = write.map(|v| pattern(tr.map_or(0, |f| f.page), v));
                let got = match &data {
                    None => spaces[s]
                        .try_fault(addr, Access::Read)
                        .map(|g| RegionExpect::Ok(g.to_vec())),
                    Some(d) => spaces[s].try_fault(addr, Access::Write).and_then(|mut g| {
                        g.bytes_mut()?.copy_from_slice(d);
                        Ok(RegionExpect::Ok(Vec::new()))
                    }),
                };
                match got {
                    Err(Error::WouldBlock { .. }) => {
                        assert!(blocked, "{op:?}: WouldBlock unheld");
                    }
                    got => {
                        let got = got.unwrap_or_else(|e| match e {
                            Error::NoRegion { .. } => RegionExpect::NoRegion,
                            Error::Protection { .. } => RegionExpect::Protection,
                            e => panic!("{op:?}: {e}"),
                        });
                        let want = model.fault(s, at, data, PAGE);
                        if matches!(want, RegionExpect::Ok(_)) {
                            assert!(!blocked, "{op:?}: faulted a held page");
                        }
                        assert_eq!(got, want, "{op:?}");
                    }
                }
            }
        }
        let c = pages
            .census()
            .unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        assert_eq!(c.total(), FRAMES as u32);
        for m in &fixed {
            m.arbitration()
                .unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        }
    }
    drop(held);
    drop(spaces);
    drop(extra);
    drop(clients);
    drop(fixed);
    crate::assert_store(&*store, &model, ids[0], PAGES, PAGE, "at the end");
    let c = pages.census().expect("census");
    assert_eq!(c.free, FRAMES as u32, "frames outlived every object: {c:?}");
    assert_eq!(swap.in_use(), 0, "swap slots outlived every object");
}

/// Whether a client holds a page of object `o` for writing (only fixed objects have clients).
fn writes(holders: &Holders, o: usize) -> bool {
    o < FIXED
        && holders
            .iter()
            .any(|(&(ho, _), v)| ho == o && v.iter().any(|h| h.1 == Access::Write))
}

/// The handle and model id of object `o` (fixed first, then extras).
fn handle<'a>(
    fixed: &'a [PageMapper],
    ids: &[usize; FIXED],
    extra: &'a [(PageMapper, usize)],
    o: usize,
) -> (&'a PageMapper, usize) {
    if o < FIXED {
        (&fixed[o], ids[o])
    } else {
        let (m, id) = &extra[o - FIXED];
        (m, *id)
    }
}

/// Whether `[start, start + len)` overlaps a region of space `s` in the model.
fn spaces_overlap(model: &CopyModel, s: usize, start: u64, len: u64) -> bool {
    model.spaces[s]
        .range(..start + len)
        .any(|(&rs, r)| rs + r.len > start)
}
