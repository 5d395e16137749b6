//! The body of the `schedule` fuzz target (`fuzz/fuzz_targets/schedule.rs`), also replayed over
//! its committed corpus by `tests/schedule_corpus.rs` (both with `--features shuttle`).
//!
//! The first byte of the input picks one of the race scenarios of SPEC.md; every later byte is a
//! scheduling decision: shuttle runs the scenario once under [`BytesScheduler`], which, at each
//! point where more than one thread could run, runs the runnable thread the next byte names. So
//! the fuzzer's mutations of the input are mutations of the interleaving, and coverage guides it
//! toward interleavings that reach new code. When the bytes run out, the running thread keeps
//! running while it can (then the first runnable one). Every scenario asserts its invariants; a
//! deadlock (every thread blocked) is a failure too.

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// A shuttle scheduler whose every decision comes from a byte string.
#[derive(Debug)]
pub struct BytesScheduler {
    data: Vec<u8>,
    pos: usize,
    started: bool,
}

impl BytesScheduler {
    /// A scheduler for one execution driven by `data`.
    pub fn new(data: &[u8]) -> Self {
        Self {
            data: data.to_vec(),
            pos: 0,
            started: false,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }
}

impl Scheduler for BytesScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        if runnable.len() == 1 {
            return Some(runnable[0].id());
        }
        match self.byte() {
            Some(b) => Some(runnable[b as usize % runnable.len()].id()),
            None => current
                .filter(|c| !is_yielding && runnable.iter().any(|t| t.id() == *c))
                .or(Some(runnable[0].id())),
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        for b in &mut v {
            *b = self.byte().unwrap_or(0);
        }
        u64::from_le_bytes(v)
    }
}

/// Every scenario, in a fixed order (the first input byte picks one).
pub fn scenarios() -> Vec<(&'static str, fn())> {
    use crate as s;
    vec![
        ("S1", s::s1_reclaim_vs_reserve),
        ("S2", s::s2_double_fault),
        ("S3", s::s3_reclaim_vs_fill),
        ("S4", s::s4_queue_vs_reclaim),
        ("S5", s::s5_cross_reclaim),
        ("S6", s::s6_write_vs_reclaim),
        ("S7 EIO", || s::s7_writeback_failure(5)),
        ("S7 ENOSPC", || s::s7_writeback_failure(28)),
        ("S8", s::s8_two_writers),
        ("S9", s::s9_readers_and_writer),
        ("S10", s::s10_release_vs_revoke),
        ("S11", s::s11_reclaim_vs_request),
        ("S12", s::s12_out_of_line_transition),
        ("S13", s::s13_swap_out_vs_fault),
        ("S14", s::s14_last_drop_vs_fault),
        ("S15", s::s15_cow_fault_vs_reader),
        ("C1", s::c1_close_vs_fault),
        ("C2", s::c2_sync_vs_write),
        ("C3", s::c3_fill_error_reaches_waiters),
        ("C4", s::c4_readers_and_writer),
        ("C5", s::c5_wake_after_move),
        ("C6", s::c6_copy_vs_write),
        ("C7", s::c7_break_vs_reclaim),
        ("C8", s::c8_collapse_vs_fault),
        ("C9", s::c9_sieve_hand_vs_hits),
        ("C10", s::c10_break_vs_reader_of_its_proxy),
        ("C11", s::c11_close_vs_writer_of_errored_page),
        ("C12", s::c12_faults_joining_a_proxy),
        ("C13", s::c13_pool_wait_on_a_pinned_proxy),
        ("C14", s::c14_copy_vs_page_out),
        ("C15", s::c15_request_vs_reclaim),
        ("C16", s::c16_failed_fill_frees_for_a_waiting_fault),
        ("C17", s::c17_failed_writeback_reverts_for_a_waiting_fault),
        ("C18", s::c18_copy_vs_faults_between_mark_and_freeze),
        ("C19", s::c19_write_request_vs_plain_writer),
        ("C20", s::c20_break_publishes_for_a_waiting_fault),
        ("C21", s::c21_compaction_vs_copy),
        ("C22", s::c22_compaction_vs_page_out),
    ]
}

/// Runs the scenario the first byte of `data` picks, under the interleaving the rest dictates.
/// Panics (a failed assertion, or a deadlock) are the findings.
pub fn schedule(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let all = scenarios();
    let (_, f) = all[pick as usize % all.len()];
    shuttle::Runner::new(BytesScheduler::new(rest), crate::shuttle_run::config()).run(f);
}
