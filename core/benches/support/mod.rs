//! What the interleaved benchmarks share: their `main` (criterion's runs by default, alternating
//! slices with `PAGECORE_BENCH_INTERLEAVE=ROUNDS`) and the median of a round's measurements.

/// Runs `interleaved(rounds)` if `PAGECORE_BENCH_INTERLEAVE=ROUNDS` is set, else `benches`
/// (criterion's group) and criterion's summary.
pub fn main(benches: fn(), interleaved: fn(usize)) {
    match std::env::var("PAGECORE_BENCH_INTERLEAVE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(rounds) => interleaved(rounds.max(1)),
        None => {
            benches();
            criterion::Criterion::default()
                .configure_from_args()
                .final_summary();
        }
    }
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
