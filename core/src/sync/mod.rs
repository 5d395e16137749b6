//! The synchronisation facade: the one place in pagecore that names concrete sync primitives.
//!
//! Every other module imports atomics, `Arc`, `Mutex`, `Condvar`, `thread`, `hint` and
//! [`UnsafeCell`] from here, so one code base runs on three backends:
//!
//! | backend | selected by | used for |
//! |---|---|---|
//! | `std` | default | production |
//! | loom | `RUSTFLAGS="--cfg pagecore_loom"` | exhaustive model checking (verify/, `loom_*` tests) |
//! | shuttle | cargo feature `shuttle` | randomized and PCT schedule exploration |
//!
//! The loom switch is a crate-prefixed cfg (as crossbeam does) so that a user's dependencies that
//! test `cfg(loom)` are not switched too, and so that verify/ can build pagecore as an ordinary
//! dependency (no `cfg(test)` is involved).
//!
//! ## Gaps patched here
//!
//! * **Timed waits.** loom's `Condvar::wait_timeout` never times out, and neither loom nor shuttle
//!   models the clock. [`Parker::park`] therefore, under loom, *yields and reports a timeout*
//!   instead of sleeping when a deadline is given: a bounded wait is modelled as "give up now",
//!   which is one of the behaviours the real implementation may show, so every path that handles
//!   a timeout is explored. Untimed waits are real condvar waits on every backend.
//! * **Poisoning.** pagecore never panics while holding a lock on purpose; [`lock`] recovers the
//!   guard from a poisoned mutex so one panicking user callback cannot wedge the pool.
//! * **`UnsafeCell`.** std's cell gets loom's `with`/`with_mut` closure API (zero cost), and
//!   [`AccessTrack`] lets loom check that page bytes handed out through guards are never read and
//!   written concurrently (a no-op on std and shuttle).
//! * **Error payloads.** [`ShareArc`] is std's `Arc` on every backend (loom's lacks `Display`).
//! * **Time.** [`Instant`] is std's on every backend; deadlines are computed from it but, under
//!   the model checkers, only the "expired or not" decision matters (see above).

#![allow(unused_imports)]

#[cfg(pagecore_loom)]
mod imp {
    pub use loom::hint;
    pub use loom::sync::atomic;
    pub use loom::sync::{Arc, Condvar, Mutex as RawMutex, MutexGuard as RawMutexGuard};
    pub use loom::thread;
    pub use loom::thread_local;

    /// loom's tracked cell (already has `with` / `with_mut`).
    pub use loom::cell::UnsafeCell;

    /// Whether [`super::Parker::park`] may really sleep on this backend.
    pub const REAL_TIME: bool = false;

    /// Whether `h`'s thread has ended (the models keep every handle to the end: no).
    pub fn finished<T>(_h: &thread::JoinHandle<T>) -> bool {
        false
    }
}

#[cfg(all(feature = "shuttle", not(pagecore_loom)))]
mod imp {
    pub use shuttle::hint;
    pub use shuttle::sync::atomic;
    pub use shuttle::sync::{Arc, Condvar, Mutex as RawMutex, MutexGuard as RawMutexGuard};
    pub use shuttle::thread;
    pub use shuttle::thread_local;

    pub use super::std_cell::UnsafeCell;

    /// shuttle's condvar may time out at any point of the schedule; that is fine.
    pub const REAL_TIME: bool = true;

    /// Whether `h`'s thread has ended (the models keep every handle to the end: no).
    pub fn finished<T>(_h: &thread::JoinHandle<T>) -> bool {
        false
    }
}

#[cfg(not(any(pagecore_loom, feature = "shuttle")))]
mod imp {
    pub use std::hint;
    pub use std::sync::atomic;
    pub use std::sync::{Arc, Condvar, Mutex as RawMutex, MutexGuard as RawMutexGuard};
    pub use std::thread;
    pub use std::thread_local;

    pub use super::std_cell::UnsafeCell;

    /// Whether [`super::Parker::park`] may really sleep on this backend.
    pub const REAL_TIME: bool = true;

    /// Whether `h`'s thread has ended (its join would not wait).
    pub fn finished<T>(h: &thread::JoinHandle<T>) -> bool {
        h.is_finished()
    }
}

pub use imp::*;

pub use std::time::{Duration, Instant};

/// `std::sync::Arc`, on every backend: what a user passes where pagecore shares a value it
/// never mutates (`PagesBuilder::swap(ShareArc::new(SwapArea::temporary(..)?))`,
/// `Anonymous::new(swap)`), and what it uses for I/O errors shared by every client that waited
/// on a failed fill. Not the sync facade's `Arc` (loom's under the model checker): loom's does
/// not forward `Display`/`Error`, which `thiserror` needs, and there is nothing to model in
/// sharing an immutable value.
pub type ShareArc<T> = std::sync::Arc<T>;

#[cfg(not(pagecore_loom))]
mod std_cell {
    /// `std::cell::UnsafeCell` with loom's closure API.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `data`.
        pub const fn new(data: T) -> Self {
            Self(std::cell::UnsafeCell::new(data))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with an exclusive raw pointer to the contents.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

mod lockdep;
pub use lockdep::{Level, CHECKED as LOCK_ORDER_CHECKED};

/// A mutex of the lock hierarchy: the backend's mutex and its [`Level`]. Taken with [`lock`]
/// (or [`try_lock`]), which checks the order in debug builds and under loom and shuttle.
pub struct Mutex<T: ?Sized> {
    level: Level,
    raw: RawMutex<T>,
}

impl<T> Mutex<T> {
    /// A mutex of `level` holding `value`.
    pub fn new(level: Level, value: T) -> Self {
        Self {
            level,
            raw: RawMutex::new(value),
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Its level in the hierarchy.
    pub fn level(&self) -> Level {
        self.level
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex")
            .field("level", &self.level)
            .field("raw", &self.raw)
            .finish()
    }
}

/// A held [`Mutex`]; lets go of its level when dropped.
pub struct MutexGuard<'a, T: ?Sized> {
    raw: RawMutexGuard<'a, T>,
    level: Level,
}

impl<T: ?Sized> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.raw
    }
}

impl<T: ?Sized> std::ops::DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.raw
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        lockdep::release(self.level);
    }
}

/// Locks `m`, recovering the guard if a previous holder panicked (pagecore's own critical
/// sections keep their data consistent at every unwinding point, so the data is still valid).
/// Checks the lock hierarchy first (see [`Level`]).
#[inline]
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    lockdep::acquire(m.level, true);
    MutexGuard {
        raw: lock_raw(&m.raw),
        level: m.level,
    }
}

/// Locks `m` if no one holds it (recovering a poisoned guard, as [`lock`] does). Never blocks,
/// so any level may be tried; a lock it takes counts as held for what comes after.
#[inline]
pub fn try_lock<T: ?Sized>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    let raw = match m.raw.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    lockdep::acquire(m.level, false);
    Some(MutexGuard {
        raw,
        level: m.level,
    })
}

/// Locks a backend mutex outside the hierarchy (the harnesses' own locks, and the parker's,
/// whose level the parker records itself), recovering a poisoned guard.
#[inline]
pub fn lock_raw<T: ?Sized>(m: &RawMutex<T>) -> RawMutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The levels this thread holds, innermost last (empty where the order is not checked).
pub fn held_levels() -> Vec<Level> {
    lockdep::held()
}

/// A mutex-and-condvar pair used for blocking slow paths: waiting for a fill, for a reclaim to
/// finish, for a guard conflict to clear, or for a frame to become reclaimable.
///
/// Protocol (no lost wake-ups): a waiter takes the lock, publishes that it waits (a bit in an
/// atomic state word, or a counter under the lock), re-checks its condition, then parks. A waker
/// changes the condition first (an atomic RMW, which observes the waiter's publication if it came
/// first), then takes the lock and notifies. Because the waiter holds the lock from its re-check
/// until the condvar releases it, the waker's notify cannot fall between the re-check and the
/// park.
///
/// The lock also counts the parked waiters, so that a wake-up with nobody parked (the common
/// case: a fill completing that no fault joined) costs an uncontended lock and no system call
/// (a condvar's `notify_all` is a futex syscall whether or not anyone waits).
///
/// Async waiters ([`Parker::poll_park`]) register their task's `Waker` under the same lock, after
/// the same re-check, and a wake-up takes every registered waker and wakes it after dropping the
/// lock: the same argument shows no wake-up is lost.
#[derive(Debug)]
pub struct Parker {
    level: Level,
    lock: RawMutex<ParkState>,
    cv: Condvar,
}

/// A parker's waiters: threads parked on its condvar, and tasks' wakers (a `Vec` allocates only
/// when a task first registers).
#[derive(Debug, Default)]
struct ParkState {
    parked: usize,
    wakers: Vec<std::task::Waker>,
}

/// Outcome of [`Parker::park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// Woken (or spuriously woken): re-check the condition.
    Woken,
    /// The deadline passed.
    TimedOut,
}

impl Parker {
    /// A new parker whose lock is of `level` (its waiters' `prepare` runs under it, so what
    /// `prepare` locks must come after it; a waker takes it last).
    pub fn new(level: Level) -> Self {
        Self {
            level,
            lock: RawMutex::new(ParkState::default()),
            cv: Condvar::new(),
        }
    }

    /// Runs `prepare` under the lock. If it returns `true` (the caller published that it waits and
    /// its condition still holds), parks until notified or `deadline`.
    pub fn park(&self, deadline: Option<Instant>, prepare: impl FnOnce() -> bool) -> Parked {
        lockdep::acquire(self.level, true);
        let r = self.park_locked(deadline, prepare);
        lockdep::release(self.level);
        r
    }

    fn park_locked(&self, deadline: Option<Instant>, prepare: impl FnOnce() -> bool) -> Parked {
        let mut g = lock_raw(&self.lock);
        if !prepare() {
            return Parked::Woken;
        }
        if deadline.is_some() && !REAL_TIME {
            // loom: a timed wait is modelled as an immediate time-out (see the module doc).
            drop(g);
            thread::yield_now();
            return Parked::TimedOut;
        }
        let now = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Parked::TimedOut;
                }
                Some((d, now))
            }
            None => None,
        };
        g.parked += 1;
        let mut g = match now {
            None => match self.cv.wait(g) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            },
            Some((d, now)) => match self.cv.wait_timeout(g, d - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            },
        };
        g.parked -= 1;
        drop(g);
        match now {
            Some((d, _)) if Instant::now() >= d => Parked::TimedOut,
            _ => Parked::Woken,
        }
    }

    /// Wakes every parked waiter (after the caller changed the condition they wait for). A
    /// waiter counts itself under the lock before it parks and is parked as soon as it releases
    /// the lock, so a notifier that takes the lock and sees no one parked has no one to wake.
    pub fn unpark_all(&self) {
        lockdep::acquire(self.level, true);
        let mut g = lock_raw(&self.lock);
        if g.parked > 0 {
            self.cv.notify_all();
        }
        let wakers = std::mem::take(&mut g.wakers);
        drop(g);
        lockdep::release(self.level);
        // Outside the lock: a waker may run its task's poll at once (an inline executor), and
        // that poll takes this lock again.
        for w in wakers {
            w.wake();
        }
    }

    /// The async form of [`Parker::park`]: runs `prepare` under the lock; if it returns `true`
    /// (the caller published that it waits and its condition still holds), registers the task's
    /// waker, woken by the next [`Parker::unpark_all`], and returns `Pending`; otherwise `Ready`
    /// (re-check the condition). A future dropped while registered leaves its waker behind, woken
    /// once for nothing by the next wake-up.
    pub fn poll_park(
        &self,
        cx: &mut std::task::Context<'_>,
        prepare: impl FnOnce() -> bool,
    ) -> std::task::Poll<()> {
        lockdep::acquire(self.level, true);
        let mut g = lock_raw(&self.lock);
        let r = if prepare() {
            if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                g.wakers.push(cx.waker().clone());
            }
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        };
        drop(g);
        lockdep::release(self.level);
        r
    }
}

/// Lets loom check that the bytes of a frame are never accessed concurrently in conflicting ways.
///
/// Page bytes live in one big allocation that loom cannot see. Each frame carries an
/// `AccessTrack`; every shared access (a read guard, a write-back) holds a [`Shared`] token and
/// every exclusive access (a fill, a write guard) holds an [`Exclusive`] token for its whole
/// duration. Under loom these are loom's tracked cell pointers, so a schedule in which a reader and
/// a writer overlap fails the model. On std and shuttle they are zero-sized and free.
#[derive(Debug, Default)]
pub struct AccessTrack {
    #[cfg(pagecore_loom)]
    cell: loom::cell::UnsafeCell<()>,
}

/// A shared-access token (see [`AccessTrack`]).
#[derive(Debug)]
pub struct Shared {
    #[cfg(pagecore_loom)]
    _p: loom::cell::ConstPtr<()>,
}

/// An exclusive-access token (see [`AccessTrack`]).
#[derive(Debug)]
pub struct Exclusive {
    #[cfg(pagecore_loom)]
    _p: loom::cell::MutPtr<()>,
}

/// Under loom: the end of an access is a scheduling point. A token's cell access ends when the
/// token drops, which by itself is no loom operation: a thread that released the pin protecting
/// an access and only then ended the access (the bug of ending it after the unpin) ran on to
/// the end without loom ever switching threads between the two, so the window in which another
/// thread takes the frame while the access is still open was never explored. A Relaxed load of
/// an atomic nobody writes is a branch point that orders nothing (no happens-before edge).
#[cfg(pagecore_loom)]
fn access_end_point() {
    loom::lazy_static! {
        static ref POINT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }
    POINT.load(loom::sync::atomic::Ordering::Relaxed);
}

impl Drop for Shared {
    #[inline(always)]
    fn drop(&mut self) {
        // The scheduling point comes before the field (the tracked access) drops.
        #[cfg(pagecore_loom)]
        access_end_point();
    }
}

impl Drop for Exclusive {
    #[inline(always)]
    fn drop(&mut self) {
        #[cfg(pagecore_loom)]
        access_end_point();
    }
}

// SAFETY: the tracker's cell holds `()` and is never dereferenced: it only records accesses for
// loom (which checks them itself), so it may be shared and sent like the frame it describes.
unsafe impl Sync for AccessTrack {}
// SAFETY: as above.
unsafe impl Send for AccessTrack {}

// SAFETY: the tokens carry no data; under loom the pointers are only used for access tracking
// and are never dereferenced. Guards that hold them move between threads like ordinary values.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Exclusive {}
// SAFETY: as above.
unsafe impl Sync for Exclusive {}

impl AccessTrack {
    /// A new tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a shared access (ends when the token drops).
    #[inline(always)]
    pub fn shared(&self) -> Shared {
        Shared {
            #[cfg(pagecore_loom)]
            _p: self.cell.get(),
        }
    }

    /// Starts an exclusive access (ends when the token drops).
    #[inline(always)]
    pub fn exclusive(&self) -> Exclusive {
        Exclusive {
            #[cfg(pagecore_loom)]
            _p: self.cell.get_mut(),
        }
    }
}

/// A statistics counter. Statistics are not part of any protocol (nothing reads them to decide
/// anything), so under loom they are plain std atomics that the model does not track: this keeps
/// the explored state space to the protocol's own operations. `Relaxed` everywhere: a counter
/// orders nothing.
#[derive(Debug, Default)]
pub struct Counter(std::sync::atomic::AtomicU64);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds one and returns the value before.
    #[inline]
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// ----- statistics beyond `Counter` (crate::stats): std primitives, outside the models ----------

/// std's `Relaxed` (statistics' atomics are std's on every backend).
const STD_RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// A hit counter (see `crate::stats`'s module doc, "What a hit costs"): four counters per CPU
/// (8 to 256), each on its own cache line and *owned* by one thread at a time, which adds to
/// it with a plain load and store; threads beyond those (and every thread under loom and
/// shuttle) add to one more, shared counter with `fetch_add`. No thread but a counter's owner
/// ever writes it, so no count is lost. std atomics on every backend, as [`Counter`]'s.
pub struct HitCounter {
    /// `slot::owned()` owned counters, then the shared one.
    lines: Box<[Line]>,
}

#[derive(Default)]
#[repr(align(64))]
struct Line(std::sync::atomic::AtomicU64);

/// No counter (counts nothing): see [`HitCounter::new`].
impl Default for HitCounter {
    fn default() -> Self {
        Self::new(false)
    }
}

impl std::fmt::Debug for HitCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HitCounter").field(&self.get()).finish()
    }
}

impl HitCounter {
    /// A hit counter; `enabled: false` allocates no counter (and counts nothing).
    pub fn new(enabled: bool) -> Self {
        let lines = if enabled { slot::owned() + 1 } else { 0 };
        Self {
            lines: (0..lines).map(|_| Line::default()).collect(),
        }
    }

    /// Counts one hit by the calling thread.
    #[inline(always)]
    pub fn incr(&self) {
        let i = slot::raw();
        // The last line is the shared one: an index of it or beyond is not owned.
        if i < self.lines.len().saturating_sub(1) {
            // This thread owns counter `i` (no other thread writes it): a plain load and store.
            let c = &self.lines[i].0;
            c.store(c.load(STD_RELAXED).wrapping_add(1), STD_RELAXED);
        } else {
            self.incr_slow();
        }
    }

    /// A thread with no counter assigned yet (it gets one now, if one is free), or one that
    /// shares.
    #[cold]
    #[inline(never)]
    fn incr_slow(&self) {
        let i = slot::current();
        if i < self.lines.len().saturating_sub(1) {
            let c = &self.lines[i].0;
            c.store(c.load(STD_RELAXED).wrapping_add(1), STD_RELAXED);
        } else if let Some(shared) = self.lines.last() {
            shared.0.fetch_add(1, STD_RELAXED);
        }
    }

    /// The hits counted so far (each thread's counted hits, as far as this thread sees them).
    pub fn get(&self) -> u64 {
        self.lines
            .iter()
            .fold(0u64, |n, s| n.wrapping_add(s.0.load(STD_RELAXED)))
    }
}

/// Which of a [`HitCounter`]'s counters the calling thread owns.
#[cfg(not(any(pagecore_loom, feature = "shuttle")))]
mod slot {
    use std::cell::Cell;
    use std::sync::{Mutex, OnceLock};

    /// Not yet assigned (and, as any index `>= owned()`, not owned).
    const NONE: usize = usize::MAX;
    /// Owns no counter: adds to the shared one.
    const SHARED: usize = usize::MAX - 1;

    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(NONE) };
        static OWNED: Owned = const { Owned(Cell::new(NONE)) };
    }

    /// Counter indices no live thread owns, and how many were ever handed out.
    static FREE: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

    /// How many counters a hit counter has for owners: four per CPU, 8 to 256 (threads
    /// outnumber CPUs: a program's main thread and idle threads keep theirs).
    pub(super) fn owned() -> usize {
        static N: OnceLock<usize> = OnceLock::new();
        *N.get_or_init(|| {
            std::thread::available_parallelism()
                .map_or(8, |n| n.get().saturating_mul(4))
                .clamp(8, 256)
        })
    }

    /// Gives the thread's index back when the thread exits.
    struct Owned(Cell<usize>);

    impl Drop for Owned {
        fn drop(&mut self) {
            let i = self.0.get();
            if i < owned() {
                // From here on this thread (in later thread-local destructors) shares.
                let _ = INDEX.try_with(|c| c.set(SHARED));
                // The mutex orders this thread's last counts before the next owner's.
                if let Ok(mut f) = FREE.lock() {
                    f.0.push(i);
                }
            }
        }
    }

    /// The calling thread's counter index as it stands (`>= owned()`: none of its own, or none
    /// assigned yet).
    #[inline(always)]
    pub(super) fn raw() -> usize {
        INDEX.with(Cell::get)
    }

    /// The calling thread's counter index, assigned if it had none (`SHARED`: it shares).
    pub(super) fn current() -> usize {
        let i = raw();
        if i != NONE {
            return i;
        }
        let taken = FREE.lock().ok().and_then(|mut f| {
            f.0.pop().or_else(|| {
                (f.1 < owned()).then(|| {
                    f.1 += 1;
                    f.1 - 1
                })
            })
        });
        // Registering the destructor fails only while the thread exits: then share.
        let i = match taken {
            Some(i) if OWNED.try_with(|o| o.0.set(i)).is_ok() => i,
            Some(i) => {
                if let Ok(mut f) = FREE.lock() {
                    f.0.push(i);
                }
                SHARED
            }
            None => SHARED,
        };
        INDEX.with(|c| c.set(i));
        i
    }
}

/// Under loom and shuttle every thread shares (see [`HitCounter`]): their threads share one OS
/// thread's thread-locals.
#[cfg(any(pagecore_loom, feature = "shuttle"))]
mod slot {
    pub(super) fn owned() -> usize {
        0
    }

    #[inline(always)]
    pub(super) fn raw() -> usize {
        usize::MAX
    }

    pub(super) fn current() -> usize {
        usize::MAX
    }
}

/// A number for a new pool, unique in the process (labels its statistics' series).
pub fn next_pool_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, STD_RELAXED)
}

/// A lock for statistics (the stats registry): std's mutex on every backend, taken alone, never
/// with a protocol lock, so outside the lock hierarchy and the models. A poisoned lock is
/// used as it is (statistics have no invariant a panic could break).
#[derive(Default)]
pub struct StatLock<T>(std::sync::Mutex<T>);

impl<T> StatLock<T> {
    /// Runs `f` on the locked value.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

#[cfg(test)]
mod stat_tests {
    use super::*;

    /// Hits counted by more threads than there are owned counters, running at once, some of
    /// them short-lived: every hit is counted (a sharing thread never writes an owned counter).
    #[test]
    fn hits_from_many_threads_add_up() {
        let c = std::sync::Arc::new(HitCounter::new(true));
        let n = 3 * slot::owned() + 2;
        let start = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (c, start) = (c.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..20_000 {
                        c.incr();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), 20_000 * n as u64);
        // Threads come and go: their counters are handed on, and the counts stay.
        for _ in 0..2 * n {
            let c = c.clone();
            std::thread::spawn(move || c.incr()).join().unwrap();
        }
        assert_eq!(c.get(), 20_000 * n as u64 + 2 * n as u64);
    }
}
