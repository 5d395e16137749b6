//! S1–S15 and C1–C20 under shuttle: random and PCT schedulers, `PAGECORE_SHUTTLE_ITERS` schedules each
//! (default 10,000). A failure prints the failing schedule; replay it with
//! `pagecore_verify::shuttle_run::replay(scenario, "<schedule>")` (see verify/README.md). Run with
//! `cargo test -p pagecore-verify --features shuttle --release --test shuttle_scenarios`.
#![cfg(feature = "shuttle")]

use pagecore_verify as s;
use pagecore_verify::shuttle_run;

fn iterations() -> usize {
    std::env::var("PAGECORE_SHUTTLE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Random schedules and PCT (depth 3) schedules, `iterations()` each, then a quarter as many
/// PCT schedules of depth 2. Depth 2 is the livelock finder: its one priority change lets a
/// thread stop a party mid-step and then run alone for ever at the highest priority, so a
/// retry loop that waits for nobody spins past shuttle's step bound at once (C47's livelock:
/// depth 2 fails on its first schedules, 10,000 random and 10,000 depth-3 schedules miss it).
fn explore(name: &str, f: impl Fn() + Send + Sync + 'static) {
    let n = iterations();
    let f = std::sync::Arc::new(f);
    let (g, h) = (f.clone(), f.clone());
    shuttle_run::check_random(move || g(), n);
    shuttle_run::check_pct(move || h(), n, 3);
    let n2 = n.div_ceil(4);
    shuttle_run::check_pct(move || f(), n2, 2);
    println!("shuttle {name}: {n} random + {n} PCT(depth 3) + {n2} PCT(depth 2) schedules");
}

#[test]
fn s1_reclaim_vs_reserve() {
    explore("S1", s::s1_reclaim_vs_reserve);
}

#[test]
fn s2_double_fault() {
    explore("S2", s::s2_double_fault);
}

#[test]
fn s3_reclaim_vs_fill() {
    explore("S3", s::s3_reclaim_vs_fill);
}

#[test]
fn s4_queue_vs_reclaim() {
    explore("S4", s::s4_queue_vs_reclaim);
}

#[test]
fn s5_cross_reclaim() {
    explore("S5", s::s5_cross_reclaim);
}

#[test]
fn s6_write_vs_reclaim() {
    explore("S6", s::s6_write_vs_reclaim);
}

#[test]
fn s7_writeback_failure() {
    for errno in s::S7_ERRNOS {
        explore(&format!("S7 errno {errno}"), move || {
            s::s7_writeback_failure(errno)
        });
    }
}

#[test]
fn c1_close_vs_fault() {
    explore("C1", s::c1_close_vs_fault);
}

#[test]
fn c2_sync_vs_write() {
    explore("C2", s::c2_sync_vs_write);
}

#[test]
fn c3_fill_error_reaches_waiters() {
    explore("C3", s::c3_fill_error_reaches_waiters);
}

#[test]
fn c4_readers_and_writer() {
    explore("C4", s::c4_readers_and_writer);
}

#[test]
fn c5_wake_after_move() {
    explore("C5", s::c5_wake_after_move);
}

#[test]
fn s8_two_writers() {
    explore("S8", s::s8_two_writers);
}

#[test]
fn s9_readers_and_writer() {
    explore("S9", s::s9_readers_and_writer);
}

#[test]
fn s10_release_vs_revoke() {
    explore("S10", s::s10_release_vs_revoke);
}

#[test]
fn s11_reclaim_vs_request() {
    explore("S11", s::s11_reclaim_vs_request);
}

#[test]
fn s12_out_of_line_transition() {
    explore("S12", s::s12_out_of_line_transition);
}

#[test]
fn s13_swap_out_vs_fault() {
    explore("S13", s::s13_swap_out_vs_fault);
}

#[test]
fn s14_last_drop_vs_fault() {
    explore("S14", s::s14_last_drop_vs_fault);
}

#[test]
fn s15_cow_fault_vs_reader() {
    explore("S15", s::s15_cow_fault_vs_reader);
}

#[test]
fn c6_copy_vs_write() {
    explore("C6", s::c6_copy_vs_write);
}

#[test]
fn c7_break_vs_reclaim() {
    explore("C7", s::c7_break_vs_reclaim);
}

#[test]
fn c10_break_vs_reader_of_its_proxy() {
    explore("C10", s::c10_break_vs_reader_of_its_proxy);
}

#[test]
fn c11_close_vs_writer_of_errored_page() {
    explore("C11", s::c11_close_vs_writer_of_errored_page);
}

#[test]
fn c12_faults_joining_a_proxy() {
    explore("C12", s::c12_faults_joining_a_proxy);
}

#[test]
fn c13_pool_wait_on_a_pinned_proxy() {
    explore("C13", s::c13_pool_wait_on_a_pinned_proxy);
}

#[test]
fn c14_copy_vs_page_out() {
    explore("C14", s::c14_copy_vs_page_out);
}

#[test]
fn c15_request_vs_reclaim() {
    explore("C15", s::c15_request_vs_reclaim);
}

#[test]
fn c16_failed_fill_frees_for_a_waiting_fault() {
    explore("C16", s::c16_failed_fill_frees_for_a_waiting_fault);
}

#[test]
fn c17_failed_writeback_reverts_for_a_waiting_fault() {
    explore("C17", s::c17_failed_writeback_reverts_for_a_waiting_fault);
}

#[test]
fn c18_copy_vs_faults_between_mark_and_freeze() {
    explore("C18", s::c18_copy_vs_faults_between_mark_and_freeze);
}

#[test]
fn c19_write_request_vs_plain_writer() {
    explore("C19", s::c19_write_request_vs_plain_writer);
}

#[test]
fn c20_break_publishes_for_a_waiting_fault() {
    explore("C20", s::c20_break_publishes_for_a_waiting_fault);
}

#[test]
fn c21_compaction_vs_copy() {
    explore("C21", s::c21_compaction_vs_copy);
}

#[test]
fn c22_compaction_vs_page_out() {
    explore("C22", s::c22_compaction_vs_page_out);
}

#[test]
fn c8_collapse_vs_fault() {
    explore("C8", s::c8_collapse_vs_fault);
}

#[test]
fn c9_sieve_hand_vs_hits() {
    explore("C9", s::c9_sieve_hand_vs_hits);
}

#[test]
fn c50_s3fifo_promotion_vs_hits() {
    explore("C50", s::c50_s3fifo_promotion_vs_hits);
}

#[test]
fn c23_unusual_writeback_failure_vs_reclaim() {
    explore("C23", s::c23_unusual_writeback_failure_vs_reclaim);
}

#[test]
fn c24_compaction_vs_layer_fill() {
    explore("C24", s::c24_compaction_vs_layer_fill);
}

#[test]
fn c35_collapse_into_a_layer_being_unlinked() {
    explore("C35", s::c35_collapse_into_a_layer_being_unlinked);
}

#[test]
fn c43_unusual_failure_vs_successful_sync() {
    explore("C43", s::c43_unusual_failure_vs_successful_sync);
}

#[test]
fn c25_reclaim_vs_a_hit_that_leaves_the_entry_as_it_was() {
    explore(
        "C25",
        s::c25_reclaim_vs_a_hit_that_leaves_the_entry_as_it_was,
    );
}

#[test]
fn c26_double_fault_in_an_existing_leaf() {
    explore("C26", s::c26_double_fault_in_an_existing_leaf);
}

#[test]
fn c27_read_and_write_faults_on_an_absent_page() {
    explore("C27", s::c27_read_and_write_faults_on_an_absent_page);
}

#[test]
fn c28_failed_writeback_vs_a_writer() {
    explore("C28", s::c28_failed_writeback_vs_a_writer);
}

#[test]
fn c29_reclaim_unmaps_a_proxy_its_reader_just_left() {
    explore("C29", s::c29_reclaim_unmaps_a_proxy_its_reader_just_left);
}

#[test]
fn c30_write_grants_on_the_fast_path() {
    explore("C30", s::c30_write_grants_on_the_fast_path);
}

#[test]
fn c31_copy_read_while_its_source_is_written() {
    explore("C31", s::c31_copy_read_while_its_source_is_written);
}

#[test]
fn c32_read_grant_after_a_downgrade() {
    explore("C32", s::c32_read_grant_after_a_downgrade);
}

#[test]
fn c33_write_back_then_refill_through_another_frame() {
    explore("C33", s::c33_write_back_then_refill_through_another_frame);
}

#[test]
fn c34_close_vs_a_proxy_fault() {
    explore("C34", s::c34_close_vs_a_proxy_fault);
}

#[test]
fn c36_reclaim_after_a_break_a_proxy_reader_overtook() {
    explore("C36", s::c36_reclaim_after_a_break_a_proxy_reader_overtook);
}

#[test]
fn c37_read_guard_on_a_proxy_across_a_fault() {
    explore("C37", s::c37_read_guard_on_a_proxy_across_a_fault);
}

#[test]
fn c38_break_timing_out_on_a_reader_of_its_proxy() {
    explore("C38", s::c38_break_timing_out_on_a_reader_of_its_proxy);
}

#[test]
fn c39_two_writers_of_a_proxy_and_its_readers_unpin() {
    explore("C39", s::c39_two_writers_of_a_proxy_and_its_readers_unpin);
}

#[test]
fn c40_break_vs_reclaim_and_refault_of_its_layer_page() {
    explore("C40", s::c40_break_vs_reclaim_and_refault_of_its_layer_page);
}

#[test]
fn c41_slow_write_grant_after_a_fast_grant_and_release() {
    explore(
        "C41",
        s::c41_slow_write_grant_after_a_fast_grant_and_release,
    );
}

#[test]
fn c42_hit_on_a_layer_page_moved_up_after_its_fill() {
    explore("C42", s::c42_hit_on_a_layer_page_moved_up_after_its_fill);
}

#[test]
fn c44_awaited_request_vs_the_release_it_waits_for() {
    explore("C44", s::c44_awaited_request_vs_the_release_it_waits_for);
}

#[test]
fn c45_dropped_request_future_vs_the_grant_handed_to_it() {
    explore(
        "C45",
        s::c45_dropped_request_future_vs_the_grant_handed_to_it,
    );
}

#[test]
fn c46_timed_joiner_leaves_a_fill_vs_its_publication() {
    explore("C46", s::c46_timed_joiner_leaves_a_fill_vs_its_publication);
}

#[test]
fn c51_awaited_write_behind_a_plain_reader_vs_its_drop() {
    explore(
        "C51",
        s::c51_awaited_write_behind_a_plain_reader_vs_its_drop,
    );
}

#[test]
fn c52_awaited_fault_vs_the_fill_it_waits_for() {
    explore("C52", s::c52_awaited_fault_vs_the_fill_it_waits_for);
}

#[test]
fn c53_awaited_fault_waiting_for_a_frame_vs_its_unpin() {
    explore("C53", s::c53_awaited_fault_waiting_for_a_frame_vs_its_unpin);
}

#[test]
fn c54_close_vs_an_awaited_fault_waiting_for_a_frame() {
    explore("C54", s::c54_close_vs_an_awaited_fault_waiting_for_a_frame);
}

#[test]
fn c55_awaited_copy_miss_vs_a_blocking_fault_in_the_layer() {
    explore(
        "C55",
        s::c55_awaited_copy_miss_vs_a_blocking_fault_in_the_layer,
    );
}

#[test]
fn c56_awaited_break_vs_the_frame_it_waits_for() {
    explore("C56", s::c56_awaited_break_vs_the_frame_it_waits_for);
}

#[test]
fn c47_request_resolving_through_a_paged_out_layer() {
    explore("C47", s::c47_request_resolving_through_a_paged_out_layer);
}

#[test]
fn c48_pool_wait_after_the_page_is_pinned_again() {
    explore("C48", s::c48_pool_wait_after_the_page_is_pinned_again);
}

#[test]
fn c49_reclaim_vs_a_proxy_releasing_with_a_waiter() {
    explore("C49", s::c49_reclaim_vs_a_proxy_releasing_with_a_waiter);
}

#[test]
fn m1_evict_vs_store() {
    explore("M1", s::m1_evict_vs_store);
}

#[test]
fn m2_two_faults_one_fill() {
    explore("M2", s::m2_two_faults_one_fill);
}

#[test]
fn m3_sync_vs_store() {
    explore("M3", s::m3_sync_vs_store);
}

#[test]
fn m4_fault_vs_close() {
    explore("M4", s::m4_fault_vs_close);
}

#[test]
fn m5_fill_error_vs_waiting_faults() {
    explore("M5", s::m5_fill_error_vs_waiting_faults);
}

#[test]
fn m6_fault_service_vs_reclaim() {
    explore("M6", s::m6_fault_service_vs_reclaim);
}

#[test]
fn m7_write_guard_vs_store() {
    explore("M7", s::m7_write_guard_vs_store);
}

#[test]
fn m8_holder_faults_while_a_store_waits_for_it() {
    explore("M8", s::m8_holder_faults_while_a_store_waits_for_it);
}

#[test]
fn m9_fault_around_vs_store() {
    explore("M9", s::m9_fault_around_vs_store);
}

#[test]
fn m10_two_handlers() {
    explore("M10", s::m10_two_handlers);
}

#[test]
fn m11_store_in_one_mapping_vs_load_in_another() {
    explore("M11", s::m11_store_in_one_mapping_vs_load_in_another);
}

#[test]
fn m12_evict_vs_stores_in_two_mappings() {
    explore("M12", s::m12_evict_vs_stores_in_two_mappings);
}

#[test]
fn m13_close_one_mapping_vs_fault_in_another() {
    explore("M13", s::m13_close_one_mapping_vs_fault_in_another);
}

#[test]
fn m14_private_break_vs_shared_store() {
    explore("M14", s::m14_private_break_vs_shared_store);
}

#[test]
fn m18_mapped_file_store_vs_private_load() {
    explore("M18", s::m18_mapped_file_store_vs_private_load);
}

#[test]
fn m19_mapped_file_drops_its_last_layer() {
    explore("M19", s::m19_mapped_file_drops_its_last_layer);
}

#[test]
fn m15_batched_evict_vs_store() {
    explore("M15", s::m15_batched_evict_vs_store);
}

#[test]
fn m16_fault_asks_a_client_holder_to_release() {
    explore("M16", s::m16_fault_asks_a_client_holder_to_release);
}

#[test]
fn m17_private_mapping_fault_vs_source_write() {
    explore("M17", s::m17_private_mapping_fault_vs_source_write);
}
