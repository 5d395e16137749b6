//! The miss-ratio study: each eviction policy on each workload at each cache size, through the
//! real library (one thread, so every count is deterministic), as a table and a plot.

use crate::sim::{PolicyArg, SimError};
use crate::workload::{Kind, Workload};
use indicatif::{ProgressBar, ProgressStyle};
use pagecore::{FileAccessor, Pages};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The workload's name.
    pub workload: String,
    /// Cache size as a percentage of the working set.
    pub cache_pct: f64,
    /// Cache size in frames.
    pub frames: u64,
    /// The policy.
    pub policy: PolicyArg,
    /// Operations.
    pub ops: u64,
    /// Misses (pages filled).
    pub misses: u64,
    /// misses / ops.
    pub miss_ratio: f64,
}

/// The study's workloads over `pages` pages: Zipf 0.6 to 1.2, Zipf 0.9 with a scan mixed in,
/// uniform (where recency and frequency tell nothing: a smarter policy can only lose), and a loop
/// over a quarter of the working set (fits at 30% and 50%, not below).
pub fn workloads(pages: u64) -> Vec<Workload> {
    let mut v: Vec<Workload> = [0.6, 0.8, 0.9, 1.0, 1.2]
        .iter()
        .map(|&alpha| Workload {
            alpha,
            ..Workload::new(Kind::Zipf, pages)
        })
        .collect();
    v.push(Workload {
        alpha: 0.9,
        ..Workload::new(Kind::ScanZipf, pages)
    });
    v.push(Workload::new(Kind::Uniform, pages));
    v.push(Workload {
        loop_pages: pages / 4,
        ..Workload::new(Kind::Loop, pages)
    });
    v
}

/// Cache sizes, as percentages of the working set.
pub const CACHE_PCTS: [f64; 7] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0];

/// The policies compared.
pub const POLICIES: [PolicyArg; 4] = [
    PolicyArg::Fifo,
    PolicyArg::Clock,
    PolicyArg::Sieve,
    PolicyArg::S3fifo,
];

/// Runs the study: `ops` operations per measurement over `pages` pages of `page_size` bytes,
/// files under `dir`.
pub fn run(
    pages: u64,
    page_size: usize,
    ops: u64,
    dir: &Path,
    progress: bool,
) -> Result<Vec<Row>, SimError> {
    let ws = workloads(pages);
    let total = (ws.len() * CACHE_PCTS.len() * POLICIES.len()) as u64;
    let bar = progress.then(|| {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs {msg}").expect("valid"),
        );
        pb
    });
    let mut rows = Vec::new();
    for w in &ws {
        let path = dir.join(format!("study-{}.bin", w.name()));
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let page = vec![0u8; page_size];
            for _ in 0..w.object_pages() {
                f.write_all(&page)?;
            }
            f.flush()?;
        }
        for &pct in &CACHE_PCTS {
            let frames = ((pages as f64 * pct / 100.0).round() as u64).max(1);
            for &policy in &POLICIES {
                if let Some(pb) = &bar {
                    pb.set_message(format!("{} at {pct}%, {policy:?}", w.name()));
                }
                let pool = Pages::builder()
                    .page_size(page_size)
                    .frames(frames)
                    .policy(policy.into())
                    .build()?;
                let obj = pool.open(
                    FileAccessor::open(&path, page_size)?,
                    w.object_pages() * page_size as u64,
                )?;
                let mut gen = w.generator(42);
                for _ in 0..ops {
                    let g = obj.read(gen.next_page())?;
                    std::hint::black_box(g[0]);
                }
                let misses = pool.stats().fills;
                obj.close()?;
                rows.push(Row {
                    workload: w.name(),
                    cache_pct: pct,
                    frames,
                    policy,
                    ops,
                    misses,
                    miss_ratio: misses as f64 / ops as f64,
                });
                if let Some(pb) = &bar {
                    pb.inc(1);
                }
            }
        }
        std::fs::remove_file(&path)?;
    }
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    Ok(rows)
}

fn misses(rows: &[Row], w: &str, pct: f64, p: PolicyArg) -> Option<u64> {
    rows.iter()
        .find(|r| r.workload == w && r.cache_pct == pct && r.policy == p)
        .map(|r| r.misses)
}

/// The two goals for `policy` against FIFO: its miss reduction on Zipf 0.9 at a 10%
/// cache (goal ≥ 10%), and its worst excess over FIFO anywhere (goal ≤ 2%), with where.
pub fn goals(rows: &[Row], policy: PolicyArg) -> (f64, f64, String) {
    let gain = match (
        misses(rows, "zipf-0.9", 10.0, PolicyArg::Fifo),
        misses(rows, "zipf-0.9", 10.0, policy),
    ) {
        (Some(f), Some(p)) if f > 0 => 100.0 * (f as f64 - p as f64) / f as f64,
        _ => f64::NAN,
    };
    let mut worst = (f64::NEG_INFINITY, String::new());
    for r in rows.iter().filter(|r| r.policy == policy) {
        if let Some(f) = misses(rows, &r.workload, r.cache_pct, PolicyArg::Fifo) {
            let excess = if f == 0 {
                0.0
            } else {
                100.0 * (r.misses as f64 - f as f64) / f as f64
            };
            if excess > worst.0 {
                worst = (excess, format!("{} at {}%", r.workload, r.cache_pct));
            }
        }
    }
    (gain, worst.0, worst.1)
}

/// At how many of the cache sizes `p` misses less than `than` on workload `w`, and of how many
/// sizes measured for both.
pub fn ahead(rows: &[Row], p: PolicyArg, than: PolicyArg, w: &str) -> (usize, usize) {
    let mut ahead = 0;
    let mut sizes = 0;
    for &pct in &CACHE_PCTS {
        if let (Some(a), Some(b)) = (misses(rows, w, pct, p), misses(rows, w, pct, than)) {
            sizes += 1;
            ahead += (a < b) as usize;
        }
    }
    (ahead, sizes)
}

/// Which policy wins on workload `w`: the one with the fewest misses at the most cache sizes
/// (sizes where every policy ties count for none).
pub fn winner(rows: &[Row], w: &str) -> String {
    let mut wins = [0u32; POLICIES.len()];
    let mut tied = 0;
    for &pct in &CACHE_PCTS {
        let m: Vec<Option<u64>> = POLICIES.iter().map(|&p| misses(rows, w, pct, p)).collect();
        let Some(best) = m.iter().flatten().min().copied() else {
            continue;
        };
        let at_best: Vec<usize> = (0..m.len()).filter(|&i| m[i] == Some(best)).collect();
        if at_best.len() == m.len() {
            tied += 1;
            continue;
        }
        for i in at_best {
            wins[i] += 1;
        }
    }
    let most = wins.iter().copied().max().unwrap_or(0);
    if most == 0 {
        return format!("Winner on {w}: none (every policy ties at every size).");
    }
    let names: Vec<&str> = (0..wins.len())
        .filter(|&i| wins[i] == most)
        .map(|i| crate::plot::style(POLICIES[i]).1)
        .collect();
    format!(
        "Winner on {w}: **{}** (fewest misses at {most} of {} sizes{}).",
        names.join(", "),
        CACHE_PCTS.len(),
        if tied > 0 {
            format!("; {tied} tied")
        } else {
            String::new()
        }
    )
}

/// The rows as markdown: one table per workload, miss ratio per policy and cache size.
pub fn markdown(rows: &[Row], pages: u64, ops: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Miss ratio (misses / operations) over a working set of {pages} pages, {ops} operations \
         per cell, one thread, through the real library (`pagesim study`). Lower is better; the \
         last columns are SIEVE's and S3-FIFO's change in misses against FIFO.\n"
    );
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.workload.as_str()) {
            names.push(&r.workload);
        }
    }
    for w in names {
        let _ = writeln!(out, "### {w}\n");
        let _ = writeln!(
            out,
            "| cache | FIFO | CLOCK | SIEVE | S3-FIFO | SIEVE vs FIFO | S3-FIFO vs FIFO |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for &pct in &CACHE_PCTS {
            let cell = |p| {
                rows.iter()
                    .find(|r| r.workload == w && r.cache_pct == pct && r.policy == p)
                    .map(|r| format!("{:.4}", r.miss_ratio))
                    .unwrap_or_default()
            };
            let delta = |p| match (
                misses(rows, w, pct, PolicyArg::Fifo),
                misses(rows, w, pct, p),
            ) {
                (Some(f), Some(s)) if f > 0 => {
                    format!("{:+.1}%", 100.0 * (s as f64 - f as f64) / f as f64)
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {pct}% | {} | {} | {} | {} | {} | {} |",
                cell(PolicyArg::Fifo),
                cell(PolicyArg::Clock),
                cell(PolicyArg::Sieve),
                cell(PolicyArg::S3fifo),
                delta(PolicyArg::Sieve),
                delta(PolicyArg::S3fifo)
            );
        }
        let _ = writeln!(out, "\n{}\n", winner(rows, w));
    }
    out
}

/// The rows as an SVG plot: one panel per workload, miss ratio against cache size (log scale),
/// a line per policy.
pub fn svg(rows: &[Row]) -> String {
    let mut panels: Vec<crate::plot::Panel> = Vec::new();
    for r in rows {
        if !panels.iter().any(|p| p.title == r.workload) {
            panels.push(crate::plot::Panel {
                title: r.workload.clone(),
                points: Vec::new(),
            });
        }
        if let Some(p) = panels.iter_mut().find(|p| p.title == r.workload) {
            p.points.push((r.policy, r.cache_pct, r.miss_ratio));
        }
    }
    // 30% sits too close to 20% on a log axis to label both.
    let ticks: Vec<(f64, String)> = CACHE_PCTS
        .iter()
        .filter(|&&p| p != 30.0)
        .map(|&p| (p, format!("{p}%")))
        .collect();
    crate::plot::svg(&panels, &POLICIES, &ticks, "cache, % of working set")
}
