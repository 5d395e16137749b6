//! Running the scenarios under shuttle with the configuration they need: the drivers in
//! `tests/shuttle_scenarios.rs`, the linearizability test, the `schedule` fuzz target and a
//! replayed failure all go through [`config`], so a schedule found by one replays in another.
//!
//! Shuttle runs each task on a stack of its own, 60 KiB by default; a debug build of the deeper
//! scenarios (a fault that reclaims a dirty page and fails its write-back, say) needs more and
//! overflowed it (a SIGSEGV, not a finding), so the stack here is 1 MiB.

use shuttle::scheduler::{PctScheduler, RandomScheduler, ReplayScheduler};
use shuttle::{Config, Runner};

/// Stack size of every shuttle task (bytes).
pub const STACK_SIZE: usize = 1 << 20;

/// Shuttle's configuration for the scenarios: [`STACK_SIZE`] stacks, warnings about weak
/// orderings silenced (loom checks those; shuttle treats every ordering as `SeqCst`).
pub fn config() -> Config {
    let mut config = Config::new();
    config.stack_size = STACK_SIZE;
    config.silence_warnings = true;
    config
}

/// `iterations` random schedules of `f` (shuttle's `check_random` with [`config`]).
pub fn check_random(f: impl Fn() + Send + Sync + 'static, iterations: usize) {
    Runner::new(RandomScheduler::new(iterations), config()).run(f);
}

/// `iterations` PCT schedules of `f` at bug depth `depth` (shuttle's `check_pct` with
/// [`config`]).
pub fn check_pct(f: impl Fn() + Send + Sync + 'static, iterations: usize, depth: usize) {
    Runner::new(PctScheduler::new(depth, iterations), config()).run(f);
}

/// As [`check_random`], with the scheduler's own randomness seeded: the same `seed` explores the
/// same schedules on every run (what CI runs, so that it is reproducible).
pub fn check_random_seeded(f: impl Fn() + Send + Sync + 'static, iterations: usize, seed: u64) {
    Runner::new(RandomScheduler::new_from_seed(seed, iterations), config()).run(f);
}

/// As [`check_pct`], seeded (see [`check_random_seeded`]).
pub fn check_pct_seeded(
    f: impl Fn() + Send + Sync + 'static,
    iterations: usize,
    depth: usize,
    seed: u64,
) {
    Runner::new(
        PctScheduler::new_from_seed(seed, depth, iterations),
        config(),
    )
    .run(f);
}

/// Replays the schedule a failing run printed (`failing schedule: "<encoded>"`), with the same
/// configuration it failed under.
///
/// ```no_run
/// pagecore_verify::shuttle_run::replay(pagecore_verify::s1_reclaim_vs_reserve, "<encoded>");
/// ```
pub fn replay(f: impl Fn() + Send + Sync + 'static, encoded_schedule: &str) {
    Runner::new(
        ReplayScheduler::new_from_encoded(encoded_schedule),
        config(),
    )
    .run(f);
}
