//! Random concurrent programs over pagecore's whole public API (`pagecore_verify::programs`).
//!
//! * `random_programs_under_shuttle` (`--features shuttle`): each of `PAGECORE_PROGRAMS` seeds
//!   (default 40, from `PAGECORE_PROGRAM_SEED`, default 0) under `PAGECORE_PROGRAM_SCHEDULES`
//!   random and as many PCT (depth 3) schedules (default 150 each), the schedulers seeded from
//!   the program's seed (`PAGECORE_PROGRAM_UNSEEDED=1` for fresh ones); stops at the first
//!   failure.
//! * `random_programs_on_threads` (default build): each of `PAGECORE_PROGRAMS` seeds (default
//!   200) once on real threads.
//! * `hunt` (`--features shuttle`, `--ignored`): like the shuttle test, one schedule at a time,
//!   going on after failures and printing where each kind of failure first showed.
//! * `replay` (`--features shuttle`): replays one schedule (`PAGECORE_PROGRAM_REPLAY=<file>`).
//!
//! `PAGECORE_PROGRAM_FOCUS=<objects>,<classes>` fixes every program's swarm choice;
//! `PAGECORE_PROGRAM_TRACE=1` prints each operation as its thread starts it;
//! `PAGECORE_PROGRAM_STATS=1` prints the pool's statistics and the injector's counts after each run.
//!
//! A failure prints the seed; under shuttle, shuttle prints the failing schedule too: save the
//! encoded schedule to a file and run
//! `PAGECORE_PROGRAM_SEED=<seed> PAGECORE_PROGRAM_REPLAY=<file> cargo test -p pagecore-verify
//! --features shuttle --release --test programs -- replay`.

use pagecore_verify::programs::Program;

/// `PAGECORE_PROGRAM_FOCUS=<objects mask>,<classes mask>` (hex or decimal) replaces every
/// program's swarm choice (see `Program::from_seed_focused`).
fn focus() -> Option<(u8, u16)> {
    let v = std::env::var("PAGECORE_PROGRAM_FOCUS").ok()?;
    let (o, c) = v.split_once(',')?;
    let num = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        }
    };
    Some((num(o)? as u8, num(c)? as u16))
}

fn program(seed: u64) -> Program {
    Program::from_seed_focused(seed, focus())
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` for seed `seed`, printing the seed (and re-raising) if it panics.
fn with_seed(seed: u64, what: &str, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        eprintln!("FAILED: program seed {seed} ({what}); replay with PAGECORE_PROGRAM_SEED={seed} PAGECORE_PROGRAMS=1");
        std::panic::resume_unwind(p);
    }
}

/// Programs the default run skips, with the reason: each is an open finding (issue 17's notes,
/// `verify/tests/findings/README.md`), not a pass. `PAGECORE_PROGRAM_ALL=1` runs them too.
#[cfg(feature = "shuttle")]
const KNOWN: &[(u64, &str)] = &[(
    29,
    "every write-back of the persistent object fails with an unusual error, so every frame \
     ends up holding an errored page that reclaim skips, and two copy-on-write breaks wait for \
     a frame forever (unbounded waits; SPEC §9's limit, a harness false positive to remove \
     from the generator)",
)];

#[cfg(feature = "shuttle")]
#[test]
fn random_programs_under_shuttle() {
    use pagecore_verify::shuttle_run;
    let first = env("PAGECORE_PROGRAM_SEED", 0);
    let n = env("PAGECORE_PROGRAMS", 40);
    let schedules = env("PAGECORE_PROGRAM_SCHEDULES", 150) as usize;
    let start = std::time::Instant::now();
    // The schedulers are seeded from the program's seed (unless `PAGECORE_PROGRAM_UNSEEDED` is
    // set, for hunting): a run explores the same schedules every time, so CI is reproducible
    // and a failure it reports replays from its seed alone.
    let seeded = std::env::var_os("PAGECORE_PROGRAM_UNSEEDED").is_none();
    let all = std::env::var_os("PAGECORE_PROGRAM_ALL").is_some();
    for seed in first..first + n {
        if let Some((_, why)) = KNOWN.iter().find(|k| k.0 == seed && !all) {
            eprintln!("program seed {seed} skipped (PAGECORE_PROGRAM_ALL=1 runs it): {why}");
            continue;
        }
        let p = program(seed);
        let q = p.clone();
        let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed;
        with_seed(seed, "random", || {
            if seeded {
                shuttle_run::check_random_seeded(move || q.run(), schedules, s)
            } else {
                shuttle_run::check_random(move || q.run(), schedules)
            }
        });
        with_seed(seed, "pct", || {
            if seeded {
                shuttle_run::check_pct_seeded(move || p.run(), schedules, 3, s)
            } else {
                shuttle_run::check_pct(move || p.run(), schedules, 3)
            }
        });
    }
    eprintln!(
        "{n} programs x {schedules} random + {schedules} PCT schedules in {:.1?}",
        start.elapsed()
    );
}

#[cfg(not(feature = "shuttle"))]
#[test]
fn random_programs_on_threads() {
    let first = env("PAGECORE_PROGRAM_SEED", 0);
    let n = env("PAGECORE_PROGRAMS", 200);
    for seed in first..first + n {
        let p = program(seed);
        with_seed(seed, "threads", || {
            pagecore_verify::programs::run_threads(&p)
        });
    }
}

#[test]
fn programs_are_deterministic_in_their_seed() {
    let (a, b) = (Program::from_seed(7), Program::from_seed(7));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!((0..20).any(|s| Program::from_seed(s).threads.len() == 3));
}

/// Runs seeds one schedule at a time and, instead of stopping at the first failure, records the
/// first seed and schedule count at which each kind of failure shows (`PAGECORE_PROGRAMS` seeds
/// from `PAGECORE_PROGRAM_SEED`, `PAGECORE_PROGRAM_SCHEDULES` random then as many PCT schedules
/// each). For measuring the harness against known bugs: `--ignored hunt`.
#[cfg(feature = "shuttle")]
#[test]
#[ignore]
fn hunt() {
    use pagecore_verify::shuttle_run;
    use std::collections::BTreeMap;
    let first = env("PAGECORE_PROGRAM_SEED", 0);
    let n = env("PAGECORE_PROGRAMS", 40);
    let schedules = env("PAGECORE_PROGRAM_SCHEDULES", 150);
    let start = std::time::Instant::now();
    let mut found: BTreeMap<String, (u64, &str, u64, u64, f64, u32)> = BTreeMap::new();
    let mut total = 0u64;
    for seed in first..first + n {
        for (sched, pct) in [("random", false), ("pct", true)] {
            for i in 0..schedules {
                total += 1;
                let p = program(seed);
                let r = std::panic::catch_unwind(move || {
                    if pct {
                        shuttle_run::check_pct(move || p.run(), 1, 3)
                    } else {
                        shuttle_run::check_random(move || p.run(), 1)
                    }
                });
                let Err(e) = r else { continue };
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let kind = if msg.contains("frozen layer") {
                    "bug 2: frozen layer asked for a page it does not hold".to_string()
                } else if msg.contains("already taken") || msg.contains("record refcounts") {
                    "bug 1: AccessMap entry already taken / I11".to_string()
                } else {
                    let m: String = msg
                        .chars()
                        .filter(|c| !c.is_ascii_digit())
                        .take(90)
                        .collect();
                    format!("other: {m}")
                };
                let e = found.entry(kind).or_insert((
                    seed,
                    sched,
                    i + 1,
                    total,
                    start.elapsed().as_secs_f64(),
                    0,
                ));
                e.5 += 1;
                eprintln!("HUNT seed {seed} {sched} schedule {} : {msg}", i + 1);
            }
        }
    }
    eprintln!(
        "HUNT SUMMARY: {total} executions in {:.1?}",
        start.elapsed()
    );
    for (k, (seed, sched, i, at, secs, count)) in &found {
        eprintln!(
            "HUNT FIRST {k}: seed {seed} ({sched}, schedule {i} of the seed), execution {at} \
             overall, {secs:.1}s; {count} failing executions in all"
        );
    }
}

/// Replays one failing schedule: `PAGECORE_PROGRAM_SEED=<seed>` (and the
/// `PAGECORE_PROGRAM_FOCUS` it ran with, if any) and `PAGECORE_PROGRAM_REPLAY=<file>`, a file
/// holding the schedule shuttle printed (`failing schedule: "<encoded>"`, the encoded part).
#[cfg(feature = "shuttle")]
#[test]
fn replay() {
    let Some(path) = std::env::var_os("PAGECORE_PROGRAM_REPLAY") else {
        return;
    };
    let text = std::fs::read_to_string(path).expect("a schedule file");
    let schedule: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let p = program(env("PAGECORE_PROGRAM_SEED", 0));
    eprintln!("{p:#?}");
    pagecore_verify::shuttle_run::replay(move || p.run(), &schedule);
}
