//! `--mmap`: the same workloads as plain loads and stores on a `pagecore::Mapping` of each
//! object; the mappings' handlers serve the faults through userfaultfd.
//!
//! A read checks the page's first 16 bytes (its page and object index, as the file was
//! written); a write stores the operation's number into bytes 16..24, so reads stay checkable.
//! Both are atomic 8-byte accesses (threads of one object touch the same pages). An operation
//! on a page resident before it counts as a hit (it may still fault once: a store to a page
//! mapped read-only), any other as a miss. With several mappings per object
//! (`--mappings-per-object`), the object's client threads take them in turn: every mapping
//! shares the object's pages, so a thread's read checks what any other mapping stored.

#[cfg(target_os = "linux")]
use crate::sim::{create_file, histogram, latency, ThreadResult};
use crate::sim::{Config, SimError, Summary};

/// Runs `cfg` through mappings (Linux only).
#[cfg(target_os = "linux")]
pub(crate) fn run(cfg: &Config) -> Result<Summary, SimError> {
    use pagecore::{FileAccessor, Mapping, Pages};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    if cfg.mappings_per_object == 0 {
        return Err("--mappings-per-object must be at least 1"
            .to_string()
            .into());
    }
    let system = system_page_size();
    if cfg.page_size != system {
        return Err(format!(
            "--mmap needs --page-size {system} (the system's page size), not {}",
            cfg.page_size
        )
        .into());
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
    let mut maps = Vec::new();
    for o in 0..cfg.objects {
        let path = dir.join(format!("object-{o}.bin"));
        create_file(&path, o as u64, object_pages, cfg.page_size)?;
        let acc = FileAccessor::open(&path, cfg.page_size)?;
        let map = Mapping::new(&pages, acc, object_pages * cfg.page_size as u64)
            .map_err(|e| format!("--mmap: {e}"))?;
        map.set_fault_around(cfg.fault_around);
        let mut views = vec![map];
        for _ in 1..cfg.mappings_per_object {
            let more = views[0].share().map_err(|e| format!("--mmap: {e}"))?;
            more.set_fault_around(cfg.fault_around);
            views.push(more);
        }
        maps.push(views);
    }
    let threads = cfg.objects * cfg.clients_per_object;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let ps = cfg.page_size;
    let results: Vec<ThreadResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                // Object t % objects, through its mapping (t / objects) % mappings_per_object.
                let views = &maps[t % cfg.objects];
                let (stop, map) = (&stop, &views[(t / cfg.objects) % views.len()]);
                let o = (t % cfg.objects) as u64;
                s.spawn(move || {
                    let base = map.as_ptr() as usize;
                    let word = |page: u64, at: usize| {
                        // SAFETY: `page` is inside the mapping (the workload draws pages below
                        // its size) and the offset inside the page; the mapping outlives the
                        // scope; 8-byte aligned (pages are). Every thread touches the mapped
                        // bytes through atomics only.
                        unsafe { &*((base + page as usize * ps + at) as *const AtomicU64) }
                    };
                    let mut gen = cfg.workload.generator(cfg.seed.wrapping_add(t as u64));
                    let (mut hh, mut hm) = (histogram(), histogram());
                    let (mut n, mut hits, mut bad) = (0u64, 0u64, 0u64);
                    let limit = cfg.ops.unwrap_or(u64::MAX);
                    while n < limit && !stop.load(Ordering::Relaxed) {
                        let page = gen.next_page();
                        let write = gen.writes(cfg.write_ratio);
                        let hit = map.object().is_resident(page);
                        let t0 = Instant::now();
                        if write {
                            word(page, 16).store(n, Ordering::Relaxed);
                        } else if word(page, 0).load(Ordering::Relaxed) != page
                            || word(page, 8).load(Ordering::Relaxed) != o
                        {
                            bad += 1;
                        }
                        let ns = t0.elapsed().as_nanos() as u64;
                        if hit {
                            hits += 1;
                            hh.saturating_record(ns.max(1));
                        } else {
                            hm.saturating_record(ns.max(1));
                        }
                        n += 1;
                    }
                    ThreadResult {
                        ops: n,
                        hits,
                        content_errors: bad,
                        request_errors: 0,
                        hit_latency: hh,
                        miss_latency: hm,
                    }
                })
            })
            .collect();
        if cfg.ops.is_none() {
            let deadline = start + Duration::from_secs_f64(cfg.seconds);
            while !handles.iter().all(|h| h.is_finished()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Relaxed);
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a mapped client thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (mut ops, mut hits, mut bad) = (0, 0, 0);
    let (mut hh, mut hm) = (histogram(), histogram());
    for r in results {
        ops += r.ops;
        hits += r.hits;
        bad += r.content_errors;
        hh.add(&r.hit_latency)?;
        hm.add(&r.miss_latency)?;
    }
    let stats = pages.stats();
    let (faults, mapped_ahead) = maps.iter().flatten().fold((0, 0), |(f, a), m| {
        let s = m.stats();
        (f + s.faults, a + s.mapped_ahead)
    });
    // Every stored page written back as the mappings close; then each file is read back: every
    // page still starts with its page and object index.
    let t = Instant::now();
    for m in maps.into_iter().flatten() {
        m.close()?;
    }
    let close_seconds = t.elapsed().as_secs_f64();
    for o in 0..cfg.objects {
        let data = std::fs::read(dir.join(format!("object-{o}.bin")))?;
        for (p, page) in data.chunks_exact(ps).enumerate() {
            if page[..8] != (p as u64).to_le_bytes() || page[8..16] != (o as u64).to_le_bytes() {
                bad += 1;
            }
        }
    }
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
        request_errors: 0,
        close_seconds,
        faults,
        mapped_ahead,
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn run(_cfg: &Config) -> Result<Summary, SimError> {
    Err("--mmap needs Linux (userfaultfd)".into())
}

#[cfg(target_os = "linux")]
fn system_page_size() -> usize {
    // SAFETY: sysconf takes no pointer and has no precondition.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
