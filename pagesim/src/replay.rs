//! Trace replay: a recorded request trace, played through the real library at several cache
//! sizes under every eviction policy, reported as a miss-ratio table, JSON and an SVG curve
//! (`pagesim replay FILE`).
//!
//! Formats:
//!
//! * `oracle-general` — libCacheSim's binary `oracleGeneral` format: 24-byte little-endian
//!   records `u32 time, u64 object id, u32 size, i64 next access` (the next access is ignored).
//!   Compressed traces (`.zst`) must be decompressed first (`zstd -d`); a zstd file is reported as
//!   such rather than read as records.
//! * `csv` — one request per line; the object id in column `id_column` (1-based) and,
//!   optionally, its size in bytes in `size_column`; `header` skips the first line. An id that
//!   is not an unsigned integer is hashed (so string keys work).
//! * `txt` — one object id per line (integer or hashed string, as for csv).
//!
//! Each object takes `ceil(size / page_size)` consecutive pages (at least one; the size of its
//! first request), or one page with `ignore_size`; a request reads every page of its object.
//! A request *misses* if any of its pages had to be filled; both the request and the page miss
//! ratios are reported. One thread replays each cell, so every count is deterministic.
//!
//! Cache sizes are frame counts or percentages of the trace's working set (its distinct pages).
//! The pool's frames are 64 bytes whatever `page_size` says: only which pages are resident
//! matters here, so a cache of millions of pages costs tens of megabytes, not gigabytes.

use crate::plot::{self, Panel};
use crate::sim::{PolicyArg, SimError};
use indicatif::{ProgressBar, ProgressStyle};
use pagecore::{ComputedAccessor, Pages};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A trace file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// libCacheSim's binary oracleGeneral records (24 bytes each, little-endian).
    #[value(name = "oracleGeneral", alias = "oracle-general")]
    OracleGeneral,
    /// Delimited text, the id (and optionally the size) in chosen columns.
    Csv,
    /// One object id per line.
    Txt,
}

/// How to read a trace and map it to pages.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    /// The file's format.
    pub format: Format,
    /// csv: the id's column, 1-based.
    pub id_column: usize,
    /// csv: the size's column, 1-based (none: every object is one page).
    pub size_column: Option<usize>,
    /// csv: the field delimiter.
    pub delimiter: char,
    /// csv: skip the first line.
    pub header: bool,
    /// The page size objects are measured in, in bytes.
    pub page_size: u64,
    /// Count every object as one page, whatever its size.
    pub ignore_size: bool,
    /// Read at most this many requests.
    pub max_requests: Option<u64>,
}

impl TraceOptions {
    /// Defaults for `format`: id in column 1, no size column, `,`, no header, 4 KiB pages.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            id_column: 1,
            size_column: None,
            delimiter: ',',
            header: false,
            page_size: 4096,
            ignore_size: false,
            max_requests: None,
        }
    }
}

/// A trace mapped to pages.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Each request: its object's first page and its page count.
    pub requests: Vec<(u64, u32)>,
    /// Distinct objects.
    pub objects: u64,
    /// Distinct pages (the working set).
    pub pages: u64,
}

/// A malformed trace or option, with where.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The trace could not be read.
    #[error("reading the trace: {0}")]
    Io(#[from] std::io::Error),
    /// An oracleGeneral file whose length is not a multiple of 24 bytes.
    #[error("oracleGeneral trace ends with a partial record ({0} stray bytes): truncated, or not oracleGeneral")]
    Partial(usize),
    /// A zstd-compressed file.
    #[error("the trace is zstd-compressed: decompress it first (zstd -d FILE)")]
    Compressed,
    /// A csv line without the id or size column, or with a size that is not a number.
    #[error("line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        what: String,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// No request at all.
    #[error("the trace holds no request")]
    Empty,
    /// More pages than a u64 (or an object's page count than a u32) holds.
    #[error("the trace's objects need more pages than pagecore can address")]
    TooLarge,
}

/// Object ids to page ranges, as the trace is read.
struct Mapper {
    opts: TraceOptions,
    objects: HashMap<u64, (u64, u32)>,
    trace: Trace,
}

impl Mapper {
    fn push(&mut self, id: u64, size: u64) -> Result<(), TraceError> {
        let page_size = self.opts.page_size;
        let next = self.trace.pages;
        let ignore = self.opts.ignore_size;
        let (start, n) = match self.objects.get(&id) {
            Some(&r) => r,
            None => {
                let n = if ignore {
                    1
                } else {
                    size.div_ceil(page_size).max(1)
                };
                let n = u32::try_from(n).map_err(|_| TraceError::TooLarge)?;
                let end = next.checked_add(n as u64).ok_or(TraceError::TooLarge)?;
                self.objects.insert(id, (next, n));
                self.trace.pages = end;
                self.trace.objects += 1;
                (next, n)
            }
        };
        self.trace.requests.push((start, n));
        Ok(())
    }

    fn full(&self) -> bool {
        self.opts
            .max_requests
            .is_some_and(|m| self.trace.requests.len() as u64 >= m)
    }
}

/// An id field: an unsigned integer as is, anything else hashed (std's SipHash with fixed keys:
/// the same string maps to the same id in every run).
fn id_of(field: &str) -> u64 {
    let f = field.trim();
    f.parse().unwrap_or_else(|_| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        f.hash(&mut h);
        h.finish()
    })
}

/// Reads a trace from `input`.
pub fn parse(input: impl Read, opts: &TraceOptions) -> Result<Trace, TraceError> {
    if opts.page_size == 0 {
        return Err(TraceError::Options("the page size must be above 0".into()));
    }
    if opts.format == Format::Csv && (opts.id_column == 0 || opts.size_column == Some(0)) {
        return Err(TraceError::Options(
            "csv columns are numbered from 1".into(),
        ));
    }
    let mut m = Mapper {
        opts: opts.clone(),
        objects: HashMap::new(),
        trace: Trace::default(),
    };
    let mut r = BufReader::with_capacity(1 << 16, input);
    match opts.format {
        Format::OracleGeneral => {
            let mut rec = [0u8; 24];
            let mut first = true;
            while !m.full() {
                let mut got = 0;
                while got < 24 {
                    let k = r.read(&mut rec[got..])?;
                    if k == 0 {
                        break;
                    }
                    got += k;
                }
                if first && got >= 4 && rec[..4] == [0x28, 0xB5, 0x2F, 0xFD] {
                    return Err(TraceError::Compressed);
                }
                first = false;
                match got {
                    0 => break,
                    24 => {}
                    n => return Err(TraceError::Partial(n)),
                }
                let id = u64::from_le_bytes(rec[4..12].try_into().expect("8 bytes"));
                let size = u32::from_le_bytes(rec[12..16].try_into().expect("4 bytes"));
                m.push(id, size as u64)?;
            }
        }
        Format::Csv | Format::Txt => {
            let mut line = String::new();
            let mut no = 0u64;
            while !m.full() {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    break;
                }
                no += 1;
                let text = line.trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() || (no == 1 && opts.header && opts.format == Format::Csv)
                {
                    continue;
                }
                if opts.format == Format::Txt {
                    m.push(id_of(text), 0)?;
                    continue;
                }
                let fields: Vec<&str> = text.split(opts.delimiter).collect();
                let field = |col: usize, what: &str| {
                    fields
                        .get(col - 1)
                        .copied()
                        .ok_or_else(|| TraceError::Line {
                            line: no,
                            what: format!("no {what} column {col} ({} fields)", fields.len()),
                        })
                };
                let id = id_of(field(opts.id_column, "id")?);
                let size = match opts.size_column {
                    None => 0,
                    Some(c) => {
                        let f = field(c, "size")?.trim();
                        f.parse().map_err(|_| TraceError::Line {
                            line: no,
                            what: format!("size {f:?} is not a number of bytes"),
                        })?
                    }
                };
                m.push(id, size)?;
            }
        }
    }
    if m.trace.requests.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(m.trace)
}

/// Reads the trace at `path`.
pub fn load(path: &Path, opts: &TraceOptions) -> Result<Trace, TraceError> {
    parse(std::fs::File::open(path)?, opts)
}

/// A cache size: a frame count or a share of the working set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum CacheSize {
    /// This many frames.
    Frames(u64),
    /// This percentage of the trace's distinct pages (at least one frame).
    Percent(f64),
}

impl CacheSize {
    /// Parses `5%`, `0.5%` or `1000`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            match p.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Ok(Self::Percent(v)),
                _ => Err(format!(
                    "cache size {s:?}: a percentage must be in (0, 100]"
                )),
            }
        } else {
            match s.parse::<u64>() {
                Ok(v) if v > 0 => Ok(Self::Frames(v)),
                _ => Err(format!(
                    "cache size {s:?}: give a frame count above 0 or a percentage like 5%"
                )),
            }
        }
    }

    /// Parses a comma-separated list, keeping the first of equal sizes (`10%,10.0%` is one).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out: Vec<Self> = Vec::new();
        for p in s.split(',').filter(|p| !p.trim().is_empty()) {
            let size = Self::parse(p)?;
            if !out.contains(&size) {
                out.push(size);
            }
        }
        Ok(out)
    }

    /// The frame count for a working set of `pages` pages: at most the working set (a larger
    /// cache holds nothing more) and at least one frame.
    pub fn frames(self, pages: u64) -> u64 {
        let f = match self {
            Self::Frames(f) => f,
            Self::Percent(p) => (pages as f64 * p / 100.0).round() as u64,
        };
        f.clamp(1, pages.max(1))
    }

    /// As the table shows it.
    pub fn label(self) -> String {
        match self {
            Self::Frames(f) => format!("{f} frames"),
            Self::Percent(p) => format!("{p}%"),
        }
    }
}

/// One cell: a policy at a cache size.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// The policy.
    pub policy: PolicyArg,
    /// The cache size as asked.
    pub size: String,
    /// Frames in the pool.
    pub frames: u64,
    /// Requests replayed.
    pub requests: u64,
    /// Requests that filled at least one page.
    pub request_misses: u64,
    /// Pages read.
    pub page_reads: u64,
    /// Pages filled.
    pub page_misses: u64,
    /// request_misses / requests.
    pub miss_ratio: f64,
    /// page_misses / page_reads.
    pub page_miss_ratio: f64,
}

/// Replays `trace` at every size under every policy.
pub fn replay(
    trace: &Trace,
    sizes: &[CacheSize],
    policies: &[PolicyArg],
    progress: bool,
) -> Result<Vec<Cell>, SimError> {
    let total = trace.requests.len() as u64 * (sizes.len() * policies.len()) as u64;
    let bar = (progress && total > 0).then(|| {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{bar:40} {percent}% {msg} (eta {eta})").expect("valid"),
        );
        pb
    });
    let mut cells = Vec::new();
    for &size in sizes {
        let frames = size.frames(trace.pages);
        for &policy in policies {
            if let Some(pb) = &bar {
                pb.set_message(format!("{} {policy:?}", size.label()));
            }
            cells.push(cell(trace, size, frames, policy, bar.as_ref())?);
        }
    }
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    Ok(cells)
}

/// One cell, through a fresh pool of `frames` 64-byte frames.
fn cell(
    trace: &Trace,
    size: CacheSize,
    frames: u64,
    policy: PolicyArg,
    bar: Option<&ProgressBar>,
) -> Result<Cell, SimError> {
    const FRAME: usize = 64;
    let pool = Pages::builder()
        .page_size(FRAME)
        .frames(frames)
        .policy(policy.into())
        .build()?;
    let limit = trace
        .pages
        .checked_mul(FRAME as u64)
        .ok_or("the trace's working set is too large to replay")?;
    // The accessor counts its fills, and the pool's own count is checked against it at the end.
    let filled = Arc::new(AtomicU64::new(0));
    let obj = pool.open(
        ComputedAccessor::new({
            let filled = filled.clone();
            move |page, buf| {
                buf[..8].copy_from_slice(&page.to_le_bytes());
                filled.fetch_add(1, Relaxed);
                Ok(())
            }
        }),
        limit,
    )?;
    let (mut request_misses, mut page_reads) = (0u64, 0u64);
    let mut fills = 0;
    for (i, &(start, n)) in trace.requests.iter().enumerate() {
        for p in start..start + n as u64 {
            let g = obj.read(p)?;
            if g[..8] != p.to_le_bytes() {
                return Err(format!("page {p} holds another page's bytes").into());
            }
        }
        page_reads += n as u64;
        // Relaxed: this thread made every fill (the pool fills on the faulting thread).
        let now = filled.load(Relaxed);
        request_misses += (now != fills) as u64;
        fills = now;
        if let Some(pb) = bar {
            if i % 4096 == 4095 {
                pb.inc(4096);
            }
        }
    }
    if let Some(pb) = bar {
        pb.inc(trace.requests.len() as u64 % 4096);
    }
    let page_misses = filled.load(Relaxed);
    obj.close()?;
    let counted = pool.stats().fills;
    if counted != page_misses {
        return Err(format!("the pool counted {counted} fills, the accessor {page_misses}").into());
    }
    let requests = trace.requests.len() as u64;
    Ok(Cell {
        policy,
        size: size.label(),
        frames,
        requests,
        request_misses,
        page_reads,
        page_misses,
        miss_ratio: request_misses as f64 / requests.max(1) as f64,
        page_miss_ratio: page_misses as f64 / page_reads.max(1) as f64,
    })
}

/// The policy with the fewest misses at each size (ties: every policy tied).
fn winners<'a>(cells: &'a [Cell], size: &str) -> Vec<&'a Cell> {
    let at: Vec<&Cell> = cells.iter().filter(|c| c.size == size).collect();
    let best = at.iter().map(|c| c.request_misses).min().unwrap_or(0);
    at.into_iter()
        .filter(|c| c.request_misses == best)
        .collect()
}

/// The cells as markdown: a row per cache size, the request miss ratio per policy, and the
/// policy with the fewest misses; then which policy wins most sizes.
pub fn markdown(name: &str, trace: &Trace, cells: &[Cell], policies: &[PolicyArg]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Trace `{name}`: {} requests, {} objects, {} pages (working set). Request miss ratio \
         (a request misses if any page of its object was filled); lower is better.\n",
        trace.requests.len(),
        trace.objects,
        trace.pages
    );
    let mut head = String::from("| cache | frames |");
    let mut rule = String::from("|---|---|");
    for p in policies {
        let _ = write!(head, " {} |", plot::style(*p).1);
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{head} best |\n{rule}---|");
    let mut sizes: Vec<(&str, u64)> = Vec::new();
    for c in cells {
        if !sizes.iter().any(|s| s.0 == c.size) {
            sizes.push((&c.size, c.frames));
        }
    }
    let mut wins: HashMap<PolicyArg, u32> = HashMap::new();
    for (size, frames) in &sizes {
        let _ = write!(out, "| {size} | {frames} |");
        for p in policies {
            let v = cells
                .iter()
                .find(|c| c.size == *size && c.policy == *p)
                .map(|c| format!("{:.4}", c.miss_ratio))
                .unwrap_or_default();
            let _ = write!(out, " {v} |");
        }
        let w = winners(cells, size);
        let names: Vec<&str> = w.iter().map(|c| plot::style(c.policy).1).collect();
        if w.len() < policies.len() {
            for c in &w {
                *wins.entry(c.policy).or_default() += 1;
            }
        }
        let _ = writeln!(
            out,
            " {} |",
            if w.len() == policies.len() {
                "tie".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    let mut ranked: Vec<(PolicyArg, u32)> = wins.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then((a.0 as u8).cmp(&(b.0 as u8))));
    let _ = writeln!(out);
    match ranked.first() {
        Some((p, n)) => {
            let _ = writeln!(
                out,
                "Fewest misses at the most sizes: **{}** ({n} of {}).",
                plot::style(*p).1,
                sizes.len()
            );
        }
        None => {
            let _ = writeln!(out, "Every policy misses as often at every size.");
        }
    }
    out
}

/// The cells as an SVG miss-ratio curve (x: frames, log scale).
pub fn svg(name: &str, cells: &[Cell], policies: &[PolicyArg]) -> String {
    let panel = Panel {
        title: name.to_string(),
        points: cells
            .iter()
            .map(|c| (c.policy, c.frames as f64, c.miss_ratio))
            .collect(),
    };
    let mut ticks: Vec<(f64, String)> = Vec::new();
    for c in cells {
        if !ticks.iter().any(|t| t.0 == c.frames as f64) {
            ticks.push((c.frames as f64, c.size.replace(" frames", "")));
        }
    }
    plot::svg(&[panel], policies, &ticks, "cache size (frames, log scale)")
}
