//! S1–S15 and C1–C20 under loom: every interleaving up to the preemption bound (default 3; set
//! `LOOM_MAX_PREEMPTIONS` to raise it). Run with
//! `RUSTFLAGS="--cfg pagecore_loom" cargo test -p pagecore-verify --release --test loom_scenarios -- --nocapture`.
#![cfg(pagecore_loom)]

use pagecore_verify as s;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Preemption bound cap of the arbitration scenarios.
const ARBITRATION_BOUND: usize = 3;

/// Preemption bound cap of S11 (reclaim of a held page racing a request for it: four parties
/// over one frame): bound 3 explores 4,086,269 executions (8-13 minutes on CI's 2 cores, a
/// third of the loom stage), bound 2 explores 345,210 in about a minute, and its semantic
/// mutants (066, 067, 070: holders not asked, revocations not called, only writers asked) are
/// all killed at bound 2 (stop 32).
const S11_BOUND: usize = 2;

/// Preemption bound cap of C25-C34 (written for the semantic mutants, each killed at bound 3;
/// not yet timed at bound 5 in CI's budget).
const NEW_SCENARIO_BOUND: usize = 3;

/// The bound of the mapping scenarios whose faults may be served by a thread of their own (a
/// fourth thread beside the CPU, the handler and the main thread: M1 explores 945,221
/// executions at bound 3, M3 more than a million); each of their mutants is killed at 2.
const MAPPING_BOUND: usize = 2;

/// Preemption bound cap of C36: three threads, each needed (the reader whose access must be
/// ordered, the breaker, and a reclaimer that acquires the breaker's unpins but not its later
/// pin of the page, which would order the reader's access through the release sequence), on
/// the long paths of a break and of a reclaim with a page-out. Bound 1 explores 16,851
/// executions in ~5 s and kills mutant 014 (its window needs one preemption); bound 2 explores
/// 709,354 in ~190 s.
const C36_BOUND: usize = 1;

/// The bound of the largest scenarios at CI's bound 5 (C4, C5, C7, C8, C23, C35, S5, S14: from
/// 200,000 to 1.9 million executions each there, half the loom stage on CI's 2 cores; C4 alone
/// 1,916,171 at 5 and 399,051 at 4). No semantic mutant needs more than bound 4 to die (each is
/// run at 3 unless its patch names 4), so CI runs them at 4 to stay within its hour.
/// `PAGECORE_LOOM_UNCAPPED=1` lifts every cap (this one, the arbitration, mapping and newer
/// scenarios' bounds) for a long run.
const LARGE_BOUND: usize = 4;

/// Runs `f` under loom with the preemption bound and prints how many executions it explored.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    model_capped(name, usize::MAX, f)
}

/// As [`model`], with the preemption bound capped at `cap`: the arbitration scenarios (S8-S12)
/// have three or four threads and several locks each, so bound 3 already explores 10^4-10^6
/// executions (and bound 5 would take hours).
fn model_capped(name: &str, cap: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    let cap = if std::env::var_os("PAGECORE_LOOM_UNCAPPED").is_some_and(|v| v == "1") {
        usize::MAX
    } else {
        cap
    };
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(3).min(cap));
    // Branches (atomic steps) per execution: loom's default of 1,000 is too few for the copy
    // scenarios, whose threads' paths are long (C7: a break, a reclaim that unmaps proxies, a
    // fault that resolves again), though they never spin (a spin exceeds any cap).
    b.max_branches = std::env::var("PAGECORE_LOOM_BRANCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let bound = b.preemption_bound;
    // Per test (tests run in parallel), counted outside the model: not protocol state.
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let f = std::sync::Arc::new(f);
    b.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let n = runs.load(Ordering::Relaxed);
    println!("loom {name}: {n} executions explored (preemption bound {bound:?})");
}

#[test]
fn s1_reclaim_vs_reserve() {
    model("S1", s::s1_reclaim_vs_reserve);
}

#[test]
fn s2_double_fault() {
    model("S2", s::s2_double_fault);
}

#[test]
fn s3_reclaim_vs_fill() {
    model("S3", s::s3_reclaim_vs_fill);
}

#[test]
fn s4_queue_vs_reclaim() {
    model("S4", s::s4_queue_vs_reclaim);
}

#[test]
fn s5_cross_reclaim() {
    model_capped("S5", LARGE_BOUND, s::s5_cross_reclaim);
}

#[test]
fn s6_write_vs_reclaim() {
    model("S6", s::s6_write_vs_reclaim);
}

#[test]
fn s7_writeback_failure() {
    // One errno is enough for loom (the code path does not depend on which); shuttle and the
    // std driver run all three.
    model("S7", || s::s7_writeback_failure(s::S7_ERRNOS[0]));
}

#[test]
fn c1_close_vs_fault() {
    model("C1", s::c1_close_vs_fault);
}

#[test]
fn c2_sync_vs_write() {
    model("C2", s::c2_sync_vs_write);
}

#[test]
fn c3_fill_error_reaches_waiters() {
    model("C3", s::c3_fill_error_reaches_waiters);
}

#[test]
fn c4_readers_and_writer() {
    model_capped("C4", LARGE_BOUND, s::c4_readers_and_writer);
}

#[test]
fn s8_two_writers() {
    model_capped("S8", ARBITRATION_BOUND, s::s8_two_writers);
}

#[test]
fn s9_readers_and_writer() {
    model_capped("S9", ARBITRATION_BOUND, s::s9_readers_and_writer);
}

#[test]
fn s10_release_vs_revoke() {
    model_capped("S10", ARBITRATION_BOUND, s::s10_release_vs_revoke);
}

#[test]
fn s11_reclaim_vs_request() {
    model_capped("S11", S11_BOUND, s::s11_reclaim_vs_request);
}

#[test]
fn s12_out_of_line_transition() {
    model_capped("S12", ARBITRATION_BOUND, s::s12_out_of_line_transition);
}

#[test]
fn c5_wake_after_move() {
    model_capped("C5", LARGE_BOUND, s::c5_wake_after_move);
}

#[test]
fn s13_swap_out_vs_fault() {
    model("S13", s::s13_swap_out_vs_fault);
}

#[test]
fn s14_last_drop_vs_fault() {
    model_capped("S14", LARGE_BOUND, s::s14_last_drop_vs_fault);
}

#[test]
fn s15_cow_fault_vs_reader() {
    model("S15", s::s15_cow_fault_vs_reader);
}

#[test]
fn c6_copy_vs_write() {
    model("C6", s::c6_copy_vs_write);
}

#[test]
fn c7_break_vs_reclaim() {
    model_capped("C7", LARGE_BOUND, s::c7_break_vs_reclaim);
}

#[test]
fn c10_break_vs_reader_of_its_proxy() {
    model("C10", s::c10_break_vs_reader_of_its_proxy);
}

#[test]
fn c11_close_vs_writer_of_errored_page() {
    model("C11", s::c11_close_vs_writer_of_errored_page);
}

#[test]
fn c12_faults_joining_a_proxy() {
    model("C12", s::c12_faults_joining_a_proxy);
}

#[test]
fn c13_pool_wait_on_a_pinned_proxy() {
    model("C13", s::c13_pool_wait_on_a_pinned_proxy);
}

#[test]
fn c14_copy_vs_page_out() {
    model("C14", s::c14_copy_vs_page_out);
}

#[test]
fn c15_request_vs_reclaim() {
    model("C15", s::c15_request_vs_reclaim);
}

#[test]
fn c16_failed_fill_frees_for_a_waiting_fault() {
    model("C16", s::c16_failed_fill_frees_for_a_waiting_fault);
}

#[test]
fn c17_failed_writeback_reverts_for_a_waiting_fault() {
    model("C17", s::c17_failed_writeback_reverts_for_a_waiting_fault);
}

#[test]
fn c18_copy_vs_faults_between_mark_and_freeze() {
    model("C18", s::c18_copy_vs_faults_between_mark_and_freeze);
}

#[test]
fn c19_write_request_vs_plain_writer() {
    model("C19", s::c19_write_request_vs_plain_writer);
}

#[test]
fn c20_break_publishes_for_a_waiting_fault() {
    // Three threads (the break, the waiting fault, the guard's holder joining them): bound 3
    // explores some 50,000 executions in 13 s on 2 cores.
    model_capped("C20", 3, s::c20_break_publishes_for_a_waiting_fault);
}

#[test]
fn c21_compaction_vs_copy() {
    model("C21", s::c21_compaction_vs_copy);
}

#[test]
fn c22_compaction_vs_page_out() {
    model("C22", s::c22_compaction_vs_page_out);
}

#[test]
fn c8_collapse_vs_fault() {
    model_capped("C8", LARGE_BOUND, s::c8_collapse_vs_fault);
}

#[test]
fn c9_sieve_hand_vs_hits() {
    model("C9", s::c9_sieve_hand_vs_hits);
}

#[test]
fn c50_s3fifo_promotion_vs_hits() {
    model_capped("C50", NEW_SCENARIO_BOUND, s::c50_s3fifo_promotion_vs_hits);
}

#[test]
fn c23_unusual_writeback_failure_vs_reclaim() {
    model_capped(
        "C23",
        LARGE_BOUND,
        s::c23_unusual_writeback_failure_vs_reclaim,
    );
}

#[test]
fn c24_compaction_vs_layer_fill() {
    model("C24", s::c24_compaction_vs_layer_fill);
}

#[test]
fn c35_collapse_into_a_layer_being_unlinked() {
    model_capped(
        "C35",
        LARGE_BOUND,
        s::c35_collapse_into_a_layer_being_unlinked,
    );
}

#[test]
fn c43_unusual_failure_vs_successful_sync() {
    model("C43", s::c43_unusual_failure_vs_successful_sync);
}

#[test]
fn c25_reclaim_vs_a_hit_that_leaves_the_entry_as_it_was() {
    model_capped(
        "C25",
        NEW_SCENARIO_BOUND,
        s::c25_reclaim_vs_a_hit_that_leaves_the_entry_as_it_was,
    );
}

#[test]
fn c26_double_fault_in_an_existing_leaf() {
    model_capped(
        "C26",
        NEW_SCENARIO_BOUND,
        s::c26_double_fault_in_an_existing_leaf,
    );
}

#[test]
fn c27_read_and_write_faults_on_an_absent_page() {
    model_capped(
        "C27",
        NEW_SCENARIO_BOUND,
        s::c27_read_and_write_faults_on_an_absent_page,
    );
}

#[test]
fn c28_failed_writeback_vs_a_writer() {
    model_capped(
        "C28",
        NEW_SCENARIO_BOUND,
        s::c28_failed_writeback_vs_a_writer,
    );
}

#[test]
fn c29_reclaim_unmaps_a_proxy_its_reader_just_left() {
    model_capped(
        "C29",
        NEW_SCENARIO_BOUND,
        s::c29_reclaim_unmaps_a_proxy_its_reader_just_left,
    );
}

#[test]
fn c30_write_grants_on_the_fast_path() {
    model_capped(
        "C30",
        NEW_SCENARIO_BOUND,
        s::c30_write_grants_on_the_fast_path,
    );
}

#[test]
fn c31_copy_read_while_its_source_is_written() {
    model_capped(
        "C31",
        NEW_SCENARIO_BOUND,
        s::c31_copy_read_while_its_source_is_written,
    );
}

#[test]
fn c32_read_grant_after_a_downgrade() {
    model_capped(
        "C32",
        NEW_SCENARIO_BOUND,
        s::c32_read_grant_after_a_downgrade,
    );
}

#[test]
fn c33_write_back_then_refill_through_another_frame() {
    model_capped(
        "C33",
        NEW_SCENARIO_BOUND,
        s::c33_write_back_then_refill_through_another_frame,
    );
}

#[test]
fn c34_close_vs_a_proxy_fault() {
    model_capped("C34", NEW_SCENARIO_BOUND, s::c34_close_vs_a_proxy_fault);
}

#[test]
fn c36_reclaim_after_a_break_a_proxy_reader_overtook() {
    model_capped(
        "C36",
        C36_BOUND,
        s::c36_reclaim_after_a_break_a_proxy_reader_overtook,
    );
}

#[test]
fn c37_read_guard_on_a_proxy_across_a_fault() {
    model_capped(
        "C37",
        NEW_SCENARIO_BOUND,
        s::c37_read_guard_on_a_proxy_across_a_fault,
    );
}

#[test]
fn c38_break_timing_out_on_a_reader_of_its_proxy() {
    model_capped(
        "C38",
        NEW_SCENARIO_BOUND,
        s::c38_break_timing_out_on_a_reader_of_its_proxy,
    );
}

#[test]
fn c39_two_writers_of_a_proxy_and_its_readers_unpin() {
    model_capped(
        "C39",
        NEW_SCENARIO_BOUND,
        s::c39_two_writers_of_a_proxy_and_its_readers_unpin,
    );
}

#[test]
fn c40_break_vs_reclaim_and_refault_of_its_layer_page() {
    model_capped(
        "C40",
        NEW_SCENARIO_BOUND,
        s::c40_break_vs_reclaim_and_refault_of_its_layer_page,
    );
}

#[test]
fn c41_slow_write_grant_after_a_fast_grant_and_release() {
    model_capped(
        "C41",
        NEW_SCENARIO_BOUND,
        s::c41_slow_write_grant_after_a_fast_grant_and_release,
    );
}

#[test]
fn c42_hit_on_a_layer_page_moved_up_after_its_fill() {
    model_capped(
        "C42",
        NEW_SCENARIO_BOUND,
        s::c42_hit_on_a_layer_page_moved_up_after_its_fill,
    );
}

#[test]
fn c44_awaited_request_vs_the_release_it_waits_for() {
    model_capped(
        "C44",
        NEW_SCENARIO_BOUND,
        s::c44_awaited_request_vs_the_release_it_waits_for,
    );
}

#[test]
fn c45_dropped_request_future_vs_the_grant_handed_to_it() {
    model_capped(
        "C45",
        NEW_SCENARIO_BOUND,
        s::c45_dropped_request_future_vs_the_grant_handed_to_it,
    );
}

#[test]
fn c46_timed_joiner_leaves_a_fill_vs_its_publication() {
    model_capped(
        "C46",
        NEW_SCENARIO_BOUND,
        s::c46_timed_joiner_leaves_a_fill_vs_its_publication,
    );
}

#[test]
fn c51_awaited_write_behind_a_plain_reader_vs_its_drop() {
    model(
        "C51",
        s::c51_awaited_write_behind_a_plain_reader_vs_its_drop,
    );
}

#[test]
fn c52_awaited_fault_vs_the_fill_it_waits_for() {
    model("C52", s::c52_awaited_fault_vs_the_fill_it_waits_for);
}

#[test]
fn c53_awaited_fault_waiting_for_a_frame_vs_its_unpin() {
    model("C53", s::c53_awaited_fault_waiting_for_a_frame_vs_its_unpin);
}

#[test]
fn c54_close_vs_an_awaited_fault_waiting_for_a_frame() {
    model("C54", s::c54_close_vs_an_awaited_fault_waiting_for_a_frame);
}

#[test]
fn c55_awaited_copy_miss_vs_a_blocking_fault_in_the_layer() {
    model_capped(
        "C55",
        NEW_SCENARIO_BOUND,
        s::c55_awaited_copy_miss_vs_a_blocking_fault_in_the_layer,
    );
}

#[test]
fn c56_awaited_break_vs_the_frame_it_waits_for() {
    model_capped(
        "C56",
        NEW_SCENARIO_BOUND,
        s::c56_awaited_break_vs_the_frame_it_waits_for,
    );
}

#[test]
fn c47_request_resolving_through_a_paged_out_layer() {
    model_capped(
        "C47",
        NEW_SCENARIO_BOUND,
        s::c47_request_resolving_through_a_paged_out_layer,
    );
}

#[test]
fn c48_pool_wait_after_the_page_is_pinned_again() {
    model("C48", s::c48_pool_wait_after_the_page_is_pinned_again);
}

#[test]
fn c49_reclaim_vs_a_proxy_releasing_with_a_waiter() {
    model_capped(
        "C49",
        NEW_SCENARIO_BOUND,
        s::c49_reclaim_vs_a_proxy_releasing_with_a_waiter,
    );
}

#[test]
fn m1_evict_vs_store() {
    model_capped("M1", MAPPING_BOUND, s::m1_evict_vs_store);
}

#[test]
fn m2_two_faults_one_fill() {
    model_capped("M2", NEW_SCENARIO_BOUND, s::m2_two_faults_one_fill);
}

#[test]
fn m3_sync_vs_store() {
    model_capped("M3", MAPPING_BOUND, s::m3_sync_vs_store);
}

#[test]
fn m4_fault_vs_close() {
    model_capped("M4", NEW_SCENARIO_BOUND, s::m4_fault_vs_close);
}

#[test]
fn m5_fill_error_vs_waiting_faults() {
    model_capped("M5", MAPPING_BOUND, s::m5_fill_error_vs_waiting_faults);
}

#[test]
fn m6_fault_service_vs_reclaim() {
    model_capped("M6", MAPPING_BOUND, s::m6_fault_service_vs_reclaim);
}

#[test]
fn m7_write_guard_vs_store() {
    model_capped("M7", MAPPING_BOUND, s::m7_write_guard_vs_store);
}

#[test]
fn m8_holder_faults_while_a_store_waits_for_it() {
    // Four threads (the holder, the storing CPU, the handler and the store's own server): bound
    // 3 explores 2.2 million executions (6 min); bound 2 reaches the deadlock of a handler that
    // waits for the holder (mutant 090).
    model_capped(
        "M8",
        MAPPING_BOUND,
        s::m8_holder_faults_while_a_store_waits_for_it,
    );
}

#[test]
fn m9_fault_around_vs_store() {
    model_capped("M9", MAPPING_BOUND, s::m9_fault_around_vs_store);
}

#[test]
fn m10_two_handlers() {
    model_capped("M10", MAPPING_BOUND, s::m10_two_handlers);
}

#[test]
fn m11_store_in_one_mapping_vs_load_in_another() {
    model_capped(
        "M11",
        MAPPING_BOUND,
        s::m11_store_in_one_mapping_vs_load_in_another,
    );
}

#[test]
fn m12_evict_vs_stores_in_two_mappings() {
    model_capped("M12", MAPPING_BOUND, s::m12_evict_vs_stores_in_two_mappings);
}

#[test]
fn m13_close_one_mapping_vs_fault_in_another() {
    model_capped(
        "M13",
        MAPPING_BOUND,
        s::m13_close_one_mapping_vs_fault_in_another,
    );
}

#[test]
fn m14_private_break_vs_shared_store() {
    model_capped("M14", MAPPING_BOUND, s::m14_private_break_vs_shared_store);
}

#[test]
fn m18_mapped_file_store_vs_private_load() {
    model_capped(
        "M18",
        MAPPING_BOUND,
        s::m18_mapped_file_store_vs_private_load,
    );
}

#[test]
fn m19_mapped_file_drops_its_last_layer() {
    model_capped(
        "M19",
        MAPPING_BOUND,
        s::m19_mapped_file_drops_its_last_layer,
    );
}

#[test]
fn m15_batched_evict_vs_store() {
    model_capped("M15", MAPPING_BOUND, s::m15_batched_evict_vs_store);
}

#[test]
fn m16_fault_asks_a_client_holder_to_release() {
    model_capped(
        "M16",
        MAPPING_BOUND,
        s::m16_fault_asks_a_client_holder_to_release,
    );
}

#[test]
fn m17_private_mapping_fault_vs_source_write() {
    model_capped(
        "M17",
        MAPPING_BOUND,
        s::m17_private_mapping_fault_vs_source_write,
    );
}
