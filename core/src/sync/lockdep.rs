//! The lock hierarchy and its check (SPEC.md §5.1 is the same table).
//!
//! Every lock in pagecore belongs to a [`Level`]. A thread takes locks in increasing level order:
//! while it holds a lock of level `a` it may block on a lock of level `b` only if `b >= a`.
//! Locks of one level may nest when their order within the level is fixed by the code (the fill
//! shards of one object in index order; the shards of a copy before its source's), which the
//! check does not see: it checks the order across levels. A non-blocking `try_lock` may take any
//! level (it cannot deadlock), and what it holds counts for what comes after.
//!
//! Debug builds, loom and shuttle check the order on every blocking acquisition: the facade's
//! [`super::lock`] records the levels a thread holds (a thread-local stack, per model thread
//! under loom and shuttle) and panics on an out-of-order acquisition, naming both levels, as
//! Linux's lockdep does. `PAGECORE_LOCKDEP=warn` prints each distinct violation once per thread
//! instead (to survey a whole run), and `PAGECORE_LOCKDEP=trace` also prints every distinct edge
//! "held -> taken" (the graph a run exercises). Release builds outside the model checkers skip
//! the check.

/// A level of the lock hierarchy, outermost first. See the module doc; SPEC.md §5.1 lists the
/// same levels with what each protects and what is taken under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// An object's copy lock (`object::layer::Layer::copy_lock`): a copy of an object and its close do
    /// not overlap. Everything an object does while copying or closing comes after it.
    Copy,
    /// An object's region registrations (`MapperShared::regions`).
    Regions,
    /// A region table's ranges (`regions::Ranges`).
    Ranges,
    /// An arbitration shard's parker: a waiter re-checks its request under the shard lock (and
    /// the records and clients locks) while holding it.
    ArbPark,
    /// An arbitration shard's side table (`Arbiter::shards`).
    ArbShard,
    /// The arbitration's interned records (`Arbiter::records`).
    Records,
    /// The arbitration's registered clients (`Arbiter::clients`).
    Clients,
    /// An object's fill-table shards (`MapperShared::fills`): fill de-duplication; a copy or a
    /// collapse holds all of one object's, in index order.
    FillShard,
    /// The views a mapped object is mapped in (`mmap::core::Views::list`): reclaim and
    /// write-back change each view's table entry under it, so a view that leaves (unmapped
    /// first) is never half-quiesced; a failed fill's poison and a retry (`MapCore::retry`)
    /// are ordered by it. A simulated MMU's table and parkers are taken under it.
    Views,
    /// The parkers of the pool, frames, pages, fills and layers: a waiter's re-check may take the
    /// lists lock or a fill's outcome; a waker takes a parker with no lock after it held (wakes
    /// are deferred until the lists lock is dropped).
    Park,
    /// The pool's lists: queue, free list, frame tags, owners and proxies (`PagesShared::lists`).
    Lists,
    /// A frozen layer's state (`object::layer::Layer::state`).
    LayerState,
    /// A frozen layer's file record (`object::layer::FrozenStore::file`).
    LayerFile,
    /// The pool's swap area handle (`backing::swap::PoolSwap`).
    PoolSwap,
    /// An anonymous object's slot table (`Anonymous::slots`).
    AnonSlots,
    /// A swap area's slot map (`SwapArea::map`).
    SwapMap,
    /// A fill's outcome (`FillRecord::outcome`).
    FillOutcome,
    /// An object's recorded write-back error (`MapperShared::error`).
    ObjectError,
    /// A bundled accessor's own store (`MemoryAccessor`): a leaf, called with anything held.
    Store,
    /// A simulated MMU's page tables and fault queue (`mmap::sim::SimMmu`), the kernel MMU's
    /// queue of faults read (`mmap::real::UffdMmu`), a mapping's fault-around stream
    /// (`mmap::core::MapCore`): leaves, taken one at a time. A simulated CPU's access and every
    /// table change happen under the first, as a TLB shootdown orders them.
    Mmu,
}

impl Level {
    /// Every level, outermost first (SPEC.md §5.1's rows, in order; a test compares them).
    pub const ALL: [Level; 20] = [
        Level::Copy,
        Level::Regions,
        Level::Ranges,
        Level::ArbPark,
        Level::ArbShard,
        Level::Records,
        Level::Clients,
        Level::FillShard,
        Level::Views,
        Level::Park,
        Level::Lists,
        Level::LayerState,
        Level::LayerFile,
        Level::PoolSwap,
        Level::AnonSlots,
        Level::SwapMap,
        Level::FillOutcome,
        Level::ObjectError,
        Level::Store,
        Level::Mmu,
    ];
}

// `ALL` is in order and complete: each level's discriminant is its index.
const _: () = {
    let mut i = 0;
    while i < Level::ALL.len() {
        assert!(Level::ALL[i] as usize == i);
        i += 1;
    }
    assert!(Level::Mmu as usize == Level::ALL.len() - 1);
};

// Not `const { .. }` thread-local initializers: loom's and shuttle's `thread_local!` do not
// take them.
#[cfg(any(debug_assertions, pagecore_loom, feature = "shuttle"))]
#[allow(clippy::missing_const_for_thread_local)]
mod imp {
    use super::Level;
    use std::cell::RefCell;

    super::super::thread_local! {
        static HELD: RefCell<Vec<Level>> = RefCell::new(Vec::new());
        static WARNED: RefCell<Vec<(Level, Level)>> = RefCell::new(Vec::new());
        static MODE: RefCell<Option<u8>> = RefCell::new(None);
    }

    /// `PAGECORE_LOCKDEP`'s mode: 0 panic, 1 warn, 2 trace (also print every distinct edge
    /// "held -> taken" once per thread, to see the whole graph a run exercises).
    fn mode() -> u8 {
        MODE.with(|m| {
            *m.borrow_mut().get_or_insert_with(|| {
                match std::env::var("PAGECORE_LOCKDEP").as_deref() {
                    Ok("warn") => 1,
                    Ok("trace") => 2,
                    _ => 0,
                }
            })
        })
    }

    /// Records that this thread takes a lock of `level`; a blocking acquisition is checked first.
    pub(crate) fn acquire(level: Level, blocking: bool) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if mode() == 2 {
                for &outer in h.iter() {
                    if outer != level {
                        WARNED.with(|w| {
                            let mut w = w.borrow_mut();
                            if !w.contains(&(outer, level)) {
                                w.push((outer, level));
                                eprintln!("LOCKEDGE {outer:?} -> {level:?}");
                            }
                        });
                    }
                }
            }
            if blocking {
                if let Some(&outer) = h.iter().filter(|&&l| l > level).max() {
                    violation(outer, level, &h);
                }
            }
            h.push(level);
        });
    }

    /// Records that this thread let go of a lock of `level`.
    pub(crate) fn release(level: Level) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|&l| l == level) {
                h.remove(i);
            }
        });
    }

    fn violation(outer: Level, level: Level, held: &[Level]) {
        let msg = format!(
            "lock order violated: taking {level:?} while holding {outer:?} (held: {held:?}); \
             see the lock hierarchy in SPEC.md §5.1"
        );
        if mode() != 0 {
            WARNED.with(|w| {
                let mut w = w.borrow_mut();
                if !w.contains(&(outer, level)) {
                    w.push((outer, level));
                    eprintln!("LOCKDEP {msg}");
                }
            });
        } else {
            panic!("{msg}");
        }
    }

    /// The levels this thread holds (innermost last).
    pub(crate) fn held() -> Vec<Level> {
        HELD.with(|h| h.borrow().clone())
    }
}

#[cfg(not(any(debug_assertions, pagecore_loom, feature = "shuttle")))]
mod imp {
    use super::Level;

    #[inline(always)]
    pub(crate) fn acquire(_: Level, _: bool) {}

    #[inline(always)]
    pub(crate) fn release(_: Level) {}

    pub(crate) fn held() -> Vec<super::Level> {
        Vec::new()
    }
}

pub(crate) use imp::{acquire, held, release};

/// Whether this build checks the lock order.
pub const CHECKED: bool = cfg!(any(debug_assertions, pagecore_loom, feature = "shuttle"));

#[cfg(all(test, debug_assertions, not(pagecore_loom), not(feature = "shuttle")))]
mod tests {
    use super::super::{held_levels, lock, try_lock, Level, Mutex};

    #[test]
    fn locks_taken_down_the_hierarchy_pass_and_are_recorded() {
        let (a, b) = (
            Mutex::new(Level::Lists, 0),
            Mutex::new(Level::LayerState, 0),
        );
        let ga = lock(&a);
        let gb = lock(&b);
        assert_eq!(held_levels(), vec![Level::Lists, Level::LayerState]);
        drop(ga); // out of order release is fine
        assert_eq!(held_levels(), vec![Level::LayerState]);
        drop(gb);
        assert!(held_levels().is_empty());
        // Two locks of one level nest (their order is the code's to fix).
        let (s1, s2) = (
            Mutex::new(Level::FillShard, ()),
            Mutex::new(Level::FillShard, ()),
        );
        let _g = (lock(&s1), lock(&s2));
    }

    #[test]
    #[should_panic(expected = "taking Lists while holding LayerState")]
    fn a_lock_taken_up_the_hierarchy_panics() {
        let (a, b) = (
            Mutex::new(Level::Lists, 0),
            Mutex::new(Level::LayerState, 0),
        );
        let _gb = lock(&b);
        let _ga = lock(&a);
    }

    #[test]
    #[should_panic(expected = "taking Copy while holding Lists")]
    fn a_try_lock_may_go_up_but_what_it_holds_counts() {
        let (l, s, c) = (
            Mutex::new(Level::Lists, ()),
            Mutex::new(Level::LayerState, ()),
            Mutex::new(Level::Copy, ()),
        );
        let _gs = lock(&s);
        let gl = try_lock(&l).expect("free"); // up the hierarchy, but it cannot block
        assert_eq!(held_levels(), vec![Level::LayerState, Level::Lists]);
        drop(_gs);
        let _gc = lock(&c); // blocks on Copy while holding Lists: out of order
        drop(gl);
    }
}
