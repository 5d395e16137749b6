//! S1–S15 and C1–C20 on real threads (std backend), repeated: a cheap smoke run of the same bodies the model
//! checkers explore, on real hardware memory ordering.
#![cfg(not(any(pagecore_loom, feature = "shuttle")))]

use pagecore_verify as s;

const REPS: usize = 300;

fn repeat(f: impl Fn()) {
    for _ in 0..REPS {
        f();
    }
}

#[test]
fn scenarios_on_real_threads() {
    repeat(s::s1_reclaim_vs_reserve);
    repeat(s::s2_double_fault);
    repeat(s::s3_reclaim_vs_fill);
    repeat(s::s4_queue_vs_reclaim);
    repeat(s::s5_cross_reclaim);
    repeat(s::s6_write_vs_reclaim);
    for errno in s::S7_ERRNOS {
        repeat(|| s::s7_writeback_failure(errno));
    }
    repeat(s::c1_close_vs_fault);
    repeat(s::c2_sync_vs_write);
    repeat(s::c3_fill_error_reaches_waiters);
    repeat(s::c4_readers_and_writer);
    repeat(s::c5_wake_after_move);
    repeat(s::s8_two_writers);
    repeat(s::s9_readers_and_writer);
    repeat(s::s10_release_vs_revoke);
    repeat(s::s11_reclaim_vs_request);
    repeat(s::s12_out_of_line_transition);
    repeat(s::s13_swap_out_vs_fault);
    repeat(s::s14_last_drop_vs_fault);
    repeat(s::s15_cow_fault_vs_reader);
    repeat(s::c6_copy_vs_write);
    repeat(s::c7_break_vs_reclaim);
    repeat(s::c8_collapse_vs_fault);
    repeat(s::c10_break_vs_reader_of_its_proxy);
    repeat(s::c11_close_vs_writer_of_errored_page);
    repeat(s::c12_faults_joining_a_proxy);
    repeat(s::c13_pool_wait_on_a_pinned_proxy);
    repeat(s::c14_copy_vs_page_out);
    repeat(s::c15_request_vs_reclaim);
    repeat(s::c16_failed_fill_frees_for_a_waiting_fault);
    repeat(s::c17_failed_writeback_reverts_for_a_waiting_fault);
    repeat(s::c18_copy_vs_faults_between_mark_and_freeze);
    repeat(s::c19_write_request_vs_plain_writer);
    repeat(s::c20_break_publishes_for_a_waiting_fault);
    repeat(s::c21_compaction_vs_copy);
    repeat(s::c22_compaction_vs_page_out);
    repeat(s::c23_unusual_writeback_failure_vs_reclaim);
    repeat(s::c24_compaction_vs_layer_fill);
    repeat(s::c35_collapse_into_a_layer_being_unlinked);
    repeat(s::c43_unusual_failure_vs_successful_sync);
    repeat(s::c9_sieve_hand_vs_hits);
    repeat(s::c50_s3fifo_promotion_vs_hits);
    repeat(s::c25_reclaim_vs_a_hit_that_leaves_the_entry_as_it_was);
    repeat(s::c26_double_fault_in_an_existing_leaf);
    repeat(s::c27_read_and_write_faults_on_an_absent_page);
    repeat(s::c28_failed_writeback_vs_a_writer);
    repeat(s::c29_reclaim_unmaps_a_proxy_its_reader_just_left);
    repeat(s::c30_write_grants_on_the_fast_path);
    repeat(s::c31_copy_read_while_its_source_is_written);
    repeat(s::c32_read_grant_after_a_downgrade);
    repeat(s::c33_write_back_then_refill_through_another_frame);
    repeat(s::c34_close_vs_a_proxy_fault);
    repeat(s::c36_reclaim_after_a_break_a_proxy_reader_overtook);
    repeat(s::c37_read_guard_on_a_proxy_across_a_fault);
    repeat(s::c38_break_timing_out_on_a_reader_of_its_proxy);
    repeat(s::c39_two_writers_of_a_proxy_and_its_readers_unpin);
    repeat(s::c40_break_vs_reclaim_and_refault_of_its_layer_page);
    repeat(s::c41_slow_write_grant_after_a_fast_grant_and_release);
    repeat(s::c42_hit_on_a_layer_page_moved_up_after_its_fill);
    repeat(s::c44_awaited_request_vs_the_release_it_waits_for);
    repeat(s::c45_dropped_request_future_vs_the_grant_handed_to_it);
    repeat(s::c46_timed_joiner_leaves_a_fill_vs_its_publication);
    repeat(s::c51_awaited_write_behind_a_plain_reader_vs_its_drop);
    repeat(s::c52_awaited_fault_vs_the_fill_it_waits_for);
    repeat(s::c53_awaited_fault_waiting_for_a_frame_vs_its_unpin);
    repeat(s::c54_close_vs_an_awaited_fault_waiting_for_a_frame);
    repeat(s::c55_awaited_copy_miss_vs_a_blocking_fault_in_the_layer);
    repeat(s::c56_awaited_break_vs_the_frame_it_waits_for);
    repeat(s::c47_request_resolving_through_a_paged_out_layer);
    repeat(s::c48_pool_wait_after_the_page_is_pinned_again);
    repeat(s::c49_reclaim_vs_a_proxy_releasing_with_a_waiter);
    repeat(s::m1_evict_vs_store);
    repeat(s::m2_two_faults_one_fill);
    repeat(s::m3_sync_vs_store);
    repeat(s::m4_fault_vs_close);
    repeat(s::m5_fill_error_vs_waiting_faults);
    repeat(s::m6_fault_service_vs_reclaim);
    repeat(s::m7_write_guard_vs_store);
    repeat(s::m8_holder_faults_while_a_store_waits_for_it);
    repeat(s::m9_fault_around_vs_store);
    repeat(s::m10_two_handlers);
    repeat(s::m11_store_in_one_mapping_vs_load_in_another);
    repeat(s::m12_evict_vs_stores_in_two_mappings);
    repeat(s::m13_close_one_mapping_vs_fault_in_another);
    repeat(s::m14_private_break_vs_shared_store);
    repeat(s::m15_batched_evict_vs_store);
    repeat(s::m16_fault_asks_a_client_holder_to_release);
    repeat(s::m17_private_mapping_fault_vs_source_write);
    repeat(s::m18_mapped_file_store_vs_private_load);
    repeat(s::m19_mapped_file_drops_its_last_layer);
}
