//! The simulation: client threads over objects backed by real files, through a pool of frames.

use crate::workload::Workload;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use pagecore::{Access, FileAccessor, PageMapper, Pages, Policy};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An error of the simulation (a bad configuration, or I/O setting it up).
pub type SimError = Box<dyn std::error::Error + Send + Sync>;

/// The eviction policy, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PolicyArg {
    /// First in, first out (the departure design).
    Fifo,
    /// Second chance.
    Clock,
    /// SIEVE.
    Sieve,
    /// S3-FIFO with its authors' defaults (small 10%, ghost 90%, move to main at 2 hits).
    S3fifo,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::Fifo => Policy::Fifo,
            PolicyArg::Clock => Policy::Clock,
            PolicyArg::Sieve => Policy::Sieve,
            PolicyArg::S3fifo => Policy::S3Fifo(pagecore::S3Fifo::default()),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Objects (one file each).
    pub objects: usize,
    /// Clients per object: each is one thread with its own registration.
    pub clients_per_object: usize,
    /// The workload of each client over its object.
    pub workload: Workload,
    /// Page size in bytes.
    pub page_size: usize,
    /// Frames in the pool.
    pub frames: u64,
    /// Share of operations that write.
    pub write_ratio: f64,
    /// The eviction policy.
    pub policy: PolicyArg,
    /// Run for this long (unless `ops` is given).
    pub seconds: f64,
    /// Operations per thread (overrides `seconds`).
    pub ops: Option<u64>,
    /// Where the files go (default: a temporary directory, removed after).
    pub dir: Option<PathBuf>,
    /// Random seed (thread `t` uses `seed + t`).
    pub seed: u64,
    /// Touch the objects through a [`pagecore::Mapping`] each (plain loads and stores,
    /// faults served through userfaultfd; Linux, the system's page size) instead of client
    /// requests.
    pub mmap: bool,
    /// With `mmap`: fault-around's bound in pages (0 = off).
    pub fault_around: u64,
    /// With `mmap`: mappings of each object (its client threads spread over them; 1 or more).
    pub mappings_per_object: usize,
    /// Show a progress bar on standard error.
    #[serde(skip)]
    pub progress: bool,
}

impl Config {
    /// Checks the configuration; every problem is a clear message.
    pub fn validate(&self) -> Result<(), String> {
        if self.objects == 0 || self.clients_per_object == 0 {
            return Err("--objects and --clients-per-object must be at least 1".into());
        }
        if self.objects * self.clients_per_object > 1024 {
            return Err("at most 1024 client threads (objects x clients per object)".into());
        }
        if self.workload.pages == 0 {
            return Err("--pages must be at least 1".into());
        }
        if !self.page_size.is_power_of_two() || !(64..=1 << 20).contains(&self.page_size) {
            return Err(format!(
                "--page-size {} is not a power of two from 64 bytes to 1 MiB",
                self.page_size
            ));
        }
        if self.frames == 0 {
            return Err("the pool needs at least one frame".into());
        }
        if self.frames < (self.objects * self.clients_per_object) as u64 {
            return Err(format!(
                "a pool of {} frames cannot serve {} client threads at once (at least one each)",
                self.frames,
                self.objects * self.clients_per_object
            ));
        }
        if !(0.0..=1.0).contains(&self.write_ratio) {
            return Err("--write-ratio must be between 0 and 1".into());
        }
        if !(self.workload.alpha > 0.0 && self.workload.alpha.is_finite()) {
            return Err("--alpha must be a positive number".into());
        }
        if self.ops.is_none() && !(self.seconds > 0.0 && self.seconds.is_finite()) {
            return Err("--seconds must be positive".into());
        }
        let bytes =
            self.workload.object_pages() as u128 * self.page_size as u128 * self.objects as u128;
        if bytes > 64 << 30 {
            return Err(format!(
                "the files would take {} GiB; at most 64 GiB",
                bytes >> 30
            ));
        }
        Ok(())
    }
}

/// Latency percentiles, nanoseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Median latency of hits.
    pub hit_p50: u64,
    /// 99th percentile latency of hits.
    pub hit_p99: u64,
    /// Median latency of misses.
    pub miss_p50: u64,
    /// 99th percentile latency of misses.
    pub miss_p99: u64,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The configuration.
    pub config: Config,
    /// Client threads.
    pub threads: usize,
    /// Operations completed.
    pub ops: u64,
    /// Seconds the operations took.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Operations on a page that was resident.
    pub hits: u64,
    /// Operations on a page that was not.
    pub misses: u64,
    /// hits / ops.
    pub hit_ratio: f64,
    /// Pages filled from the files.
    pub fills: u64,
    /// Frames reclaimed.
    pub reclaims: u64,
    /// Dirty pages written back.
    pub writebacks: u64,
    /// Requests that waited for another client.
    pub grant_waits: u64,
    /// Revocations asked of clients.
    pub revocations: u64,
    /// Latency percentiles.
    pub latency_ns: Latency,
    /// Pages whose content was not what the file holds for them (always zero).
    pub content_errors: u64,
    /// Requests that failed (always zero).
    pub request_errors: u64,
    /// Seconds closing the objects took (writing every dirty page back).
    pub close_seconds: f64,
    /// With `mmap`: faults the mappings' handlers served (0 otherwise).
    pub faults: u64,
    /// With `mmap`: pages fault-around mapped ahead of a fault.
    pub mapped_ahead: u64,
}

/// Writes object `obj`'s file: each page starts with its page index and object index.
pub fn create_file(path: &Path, obj: u64, pages: u64, page_size: usize) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut page = vec![0u8; page_size];
    for p in 0..pages {
        page[..8].copy_from_slice(&p.to_le_bytes());
        page[8..16].copy_from_slice(&obj.to_le_bytes());
        w.write_all(&page)?;
    }
    w.flush()
}

/// What one client thread measured.
pub(crate) struct ThreadResult {
    pub(crate) ops: u64,
    pub(crate) hits: u64,
    pub(crate) content_errors: u64,
    pub(crate) request_errors: u64,
    pub(crate) hit_latency: Histogram<u64>,
    pub(crate) miss_latency: Histogram<u64>,
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 2).expect("valid bounds")
}

/// The percentiles of hits (`hh`) and misses (`hm`); 0 for an empty histogram.
pub(crate) fn latency(hh: &Histogram<u64>, hm: &Histogram<u64>) -> Latency {
    let pct = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q)
        }
    };
    Latency {
        hit_p50: pct(hh, 0.5),
        hit_p99: pct(hh, 0.99),
        miss_p50: pct(hm, 0.5),
        miss_p99: pct(hm, 0.99),
    }
}

/// Runs the simulation.
pub fn run(cfg: &Config) -> Result<Summary, SimError> {
    cfg.validate()?;
    if cfg.mmap {
        return crate::mapped::run(cfg);
    }
    let tmp;
    let dir = match &cfg.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let object_pages = cfg.workload.object_pages();
    let pages = Pages::builder()
        .page_size(cfg.page_size)
        .frames(cfg.frames)
        .policy(cfg.policy.into())
        .build()?;
    let mut objects: Vec<PageMapper> = Vec::new();
    for o in 0..cfg.objects {
        let path = dir.join(format!("object-{o}.bin"));
        create_file(&path, o as u64, object_pages, cfg.page_size)?;
        let acc = FileAccessor::open(&path, cfg.page_size)?;
        objects.push(pages.open(acc, object_pages * cfg.page_size as u64)?);
    }
    let threads = cfg.objects * cfg.clients_per_object;
    let mut clients = Vec::new();
    for t in 0..threads {
        // A client's revocation callback has nothing to do here: each thread holds one grant at
        // a time, for one operation, and lets it go at once.
        clients.push((t % cfg.objects, objects[t % cfg.objects].register()?));
    }
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let bar = cfg.progress.then(|| {
        let (len, unit) = match cfg.ops {
            Some(n) => (n * threads as u64, "ops"),
            None => ((cfg.seconds * 10.0) as u64, "ds"),
        };
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit} {{msg}}"))
                .expect("valid template"),
        );
        pb
    });
    let start = Instant::now();
    let results: Vec<Result<ThreadResult, SimError>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(t, (o, client))| {
                let (stop, done, obj) = (&stop, &done, &objects[*o]);
                let o = *o as u64;
                s.spawn(move || {
                    let mut gen = cfg.workload.generator(cfg.seed.wrapping_add(t as u64));
                    let (mut hh, mut hm) = (histogram(), histogram());
                    let (mut n, mut hits, mut bad, mut failed) = (0u64, 0u64, 0u64, 0u64);
                    let limit = cfg.ops.unwrap_or(u64::MAX);
                    while n < limit && !stop.load(Ordering::Relaxed) {
                        let page = gen.next_page();
                        let write = gen.writes(cfg.write_ratio);
                        let hit = obj.is_resident(page);
                        let t0 = Instant::now();
                        let access = if write { Access::Write } else { Access::Read };
                        match client.request(page, access) {
                            Ok(mut g) => {
                                if write {
                                    g.bytes_mut()?[16..24].copy_from_slice(&n.to_le_bytes());
                                } else if g[..8] != page.to_le_bytes()
                                    || g[8..16] != o.to_le_bytes()
                                {
                                    bad += 1;
                                }
                            }
                            Err(_) => failed += 1,
                        }
                        let ns = t0.elapsed().as_nanos() as u64;
                        if hit {
                            hits += 1;
                            hh.saturating_record(ns.max(1));
                        } else {
                            hm.saturating_record(ns.max(1));
                        }
                        n += 1;
                        if n % 256 == 0 {
                            done.fetch_add(256, Ordering::Relaxed);
                        }
                    }
                    Ok(ThreadResult {
                        ops: n,
                        hits,
                        content_errors: bad,
                        request_errors: failed,
                        hit_latency: hh,
                        miss_latency: hm,
                    })
                })
            })
            .collect();
        // The main thread keeps time and the progress bar.
        let deadline = cfg
            .ops
            .is_none()
            .then(|| start + Duration::from_secs_f64(cfg.seconds));
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            let el = start.elapsed().as_secs_f64();
            if let Some(pb) = &bar {
                match cfg.ops {
                    Some(_) => pb.set_position(done.load(Ordering::Relaxed)),
                    None => pb.set_position((el * 10.0) as u64),
                }
                let rate = done.load(Ordering::Relaxed) as f64 / el.max(1e-9);
                pb.set_message(format!("{:.2} Mops/s", rate / 1e6));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop.store(true, Ordering::Relaxed);
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let (mut ops, mut hits, mut bad, mut failed) = (0, 0, 0, 0);
    let (mut hh, mut hm) = (histogram(), histogram());
    for r in results {
        let r = r?;
        ops += r.ops;
        hits += r.hits;
        bad += r.content_errors;
        failed += r.request_errors;
        hh.add(&r.hit_latency)?;
        hm.add(&r.miss_latency)?;
    }
    let stats = pages.stats();
    drop(clients);
    let t = Instant::now();
    for o in objects {
        o.close()?;
    }
    let close_seconds = t.elapsed().as_secs_f64();
    Ok(Summary {
        config: cfg.clone(),
        threads,
        ops,
        seconds: elapsed,
        ops_per_sec: ops as f64 / elapsed,
        hits,
        misses: ops - hits,
        hit_ratio: if ops == 0 {
            0.0
        } else {
            hits as f64 / ops as f64
        },
        fills: stats.fills,
        reclaims: stats.reclaims,
        writebacks: stats.writebacks,
        grant_waits: stats.grant_waits,
        revocations: stats.revocations,
        latency_ns: latency(&hh, &hm),
        content_errors: bad,
        request_errors: failed,
        close_seconds,
        faults: 0,
        mapped_ahead: 0,
    })
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "pagesim: {} over {} objects x {} pages of {} B, {} clients each ({} threads), pool {} frames ({:.1}% of the data), {:?}, {:.0}% writes",
            c.workload.name(),
            c.objects,
            c.workload.object_pages(),
            c.page_size,
            c.clients_per_object,
            self.threads,
            c.frames,
            100.0 * c.frames as f64 / (c.workload.object_pages() * c.objects as u64) as f64,
            c.policy,
            100.0 * c.write_ratio
        )?;
        writeln!(
            f,
            "  {} ops in {:.2} s: {:.0} ops/s",
            self.ops, self.seconds, self.ops_per_sec
        )?;
        writeln!(
            f,
            "  hit ratio {:.4} ({} hits, {} misses)",
            self.hit_ratio, self.hits, self.misses
        )?;
        writeln!(
            f,
            "  fills {}, reclaims {}, write-backs {}, grant waits {}, revocations {}",
            self.fills, self.reclaims, self.writebacks, self.grant_waits, self.revocations
        )?;
        let l = &self.latency_ns;
        writeln!(
            f,
            "  latency: hits p50 {} ns, p99 {} ns; misses p50 {} ns, p99 {} ns",
            l.hit_p50, l.hit_p99, l.miss_p50, l.miss_p99
        )?;
        if c.mmap {
            writeln!(
                f,
                "  mapped (plain loads and stores, {} mapping(s) per object): {} faults ({:.0}/s), {} pages mapped ahead (fault-around bound {})",
                c.mappings_per_object,
                self.faults,
                self.faults as f64 / self.seconds.max(1e-9),
                self.mapped_ahead,
                c.fault_around
            )?;
        }
        write!(
            f,
            "  close (write-back) {:.2} s; content errors {}, request errors {}",
            self.close_seconds, self.content_errors, self.request_errors
        )
    }
}
