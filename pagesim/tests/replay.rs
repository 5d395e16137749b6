//! Trace replay: the three formats read the same trace alike; object sizes map to page ranges;
//! FIFO's misses equal a reference FIFO's exactly; a cache as large as the working set misses
//! only cold under every policy; malformed traces are clear errors; the command writes its table,
//! JSON and plot.

use pagesim::replay::{self, CacheSize, Format, Trace, TraceOptions};
use pagesim::PolicyArg;
use std::collections::{HashSet, VecDeque};
use std::io::Write;

const ALL: [PolicyArg; 4] = [
    PolicyArg::Fifo,
    PolicyArg::Clock,
    PolicyArg::Sieve,
    PolicyArg::S3fifo,
];

/// A skewed id sequence (deterministic): ids drawn from a small hot set and a long tail.
fn ids(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let hot = x % 4 != 0;
            let id = if hot { x % 40 } else { 40 + (x >> 8) % 600 };
            id * 1_000_003 + 17 // sparse, large ids
        })
        .collect()
}

fn oracle(ids: &[u64], mut size: impl FnMut(u64) -> u32) -> Vec<u8> {
    let mut v = Vec::new();
    for (t, &id) in ids.iter().enumerate() {
        v.extend_from_slice(&(t as u32).to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&size(id).to_le_bytes());
        v.extend_from_slice(&(-1i64).to_le_bytes());
    }
    v
}

fn parse(bytes: &[u8], opts: &TraceOptions) -> Trace {
    replay::parse(bytes, opts).expect("a valid trace")
}

/// Page-level FIFO over `frames` frames: the misses a FIFO cache makes on `trace`.
fn reference_fifo(trace: &Trace, frames: u64) -> u64 {
    let (mut q, mut resident, mut misses) = (VecDeque::new(), HashSet::new(), 0);
    for &(start, n) in &trace.requests {
        for p in start..start + n as u64 {
            if resident.contains(&p) {
                continue;
            }
            misses += 1;
            if q.len() as u64 == frames {
                let old = q.pop_front().unwrap();
                resident.remove(&old);
            }
            q.push_back(p);
            resident.insert(p);
        }
    }
    misses
}

#[test]
fn the_three_formats_read_one_trace_alike() {
    let ids = ids(3000);
    let o = parse(
        &oracle(&ids, |_| 100),
        &TraceOptions::new(Format::OracleGeneral),
    );
    let csv: String = std::iter::once("time,key,size\n".to_string())
        .chain(
            ids.iter()
                .enumerate()
                .map(|(t, id)| format!("{t},{id},100\n")),
        )
        .collect();
    let c = parse(
        csv.as_bytes(),
        &TraceOptions {
            id_column: 2,
            size_column: Some(3),
            header: true,
            ..TraceOptions::new(Format::Csv)
        },
    );
    let txt: String = ids.iter().map(|id| format!("{id}\n")).collect();
    let t = parse(txt.as_bytes(), &TraceOptions::new(Format::Txt));
    assert_eq!(o.requests, c.requests, "oracleGeneral vs csv");
    assert_eq!(o.requests, t.requests, "oracleGeneral vs txt");
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(o.objects, distinct.len() as u64);
    assert_eq!(o.pages, o.objects, "100-byte objects take one page each");
    let sizes = [CacheSize::Percent(10.0), CacheSize::Frames(50)];
    let a = replay::replay(&o, &sizes, &ALL, false).unwrap();
    let b = replay::replay(&t, &sizes, &ALL, false).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.request_misses, y.request_misses,
            "{:?} at {}",
            x.policy, x.size
        );
    }
}

#[test]
fn sizes_map_to_page_ranges_unless_ignored() {
    // Object 1: 10,000 bytes (3 pages of 4 KiB); object 2: 0 bytes (1 page); object 3: 4096 (1).
    let ids = [1u64, 2, 3, 1, 1];
    let size = |id| match id {
        1 => 10_000,
        2 => 0,
        _ => 4096,
    };
    let t = parse(
        &oracle(&ids, size),
        &TraceOptions::new(Format::OracleGeneral),
    );
    assert_eq!(t.requests, vec![(0, 3), (3, 1), (4, 1), (0, 3), (0, 3)]);
    assert_eq!((t.objects, t.pages), (3, 5));
    let cells = replay::replay(&t, &[CacheSize::Frames(8)], &ALL, false).unwrap();
    for c in &cells {
        assert_eq!(c.page_reads, 11, "{:?}", c.policy);
        assert_eq!(c.page_misses, 5, "{:?}: only cold misses", c.policy);
        assert_eq!(c.request_misses, 3, "{:?}", c.policy);
    }
    let ignored = parse(
        &oracle(&ids, size),
        &TraceOptions {
            ignore_size: true,
            ..TraceOptions::new(Format::OracleGeneral)
        },
    );
    assert_eq!(
        ignored.requests,
        vec![(0, 1), (1, 1), (2, 1), (0, 1), (0, 1)]
    );
    // A later request with another size keeps the object's first size.
    let t2 = parse(
        &oracle(&[7, 7], {
            let mut n = 0;
            move |_| {
                n += 5000;
                n
            }
        }),
        &TraceOptions::new(Format::OracleGeneral),
    );
    assert_eq!(t2.requests, vec![(0, 2), (0, 2)]);
}

#[test]
fn fifo_misses_match_a_reference_fifo_and_a_full_cache_misses_only_cold() {
    let ids = ids(20_000);
    let t = parse(
        &oracle(&ids, |id| (id % 3) as u32 * 4096 + 1),
        &TraceOptions::new(Format::OracleGeneral),
    );
    assert!(t.pages > t.objects, "some objects span pages");
    let sizes: Vec<CacheSize> = [1u64, 7, 64, 200, t.pages / 2]
        .iter()
        .map(|&f| CacheSize::Frames(f))
        .chain([CacheSize::Percent(100.0)])
        .collect();
    let cells = replay::replay(&t, &sizes, &ALL, false).unwrap();
    for c in &cells {
        if c.policy == PolicyArg::Fifo {
            assert_eq!(
                c.page_misses,
                reference_fifo(&t, c.frames),
                "FIFO at {}",
                c.size
            );
        }
        assert!(
            c.page_misses >= t.pages,
            "{:?} at {}: fewer misses than pages",
            c.policy,
            c.size
        );
        assert!(c.request_misses <= c.requests && c.page_misses <= c.page_reads);
        if c.frames >= t.pages {
            assert_eq!(
                c.page_misses, t.pages,
                "{:?}: a full cache misses only cold",
                c.policy
            );
            assert_eq!(c.request_misses, t.objects, "{:?}", c.policy);
        }
    }
    // On a skewed trace the smarter policies beat FIFO at a small cache.
    let at = |p| {
        cells
            .iter()
            .find(|c| c.policy == p && c.frames == 64)
            .unwrap()
            .request_misses
    };
    assert!(
        at(PolicyArg::Sieve) < at(PolicyArg::Fifo),
        "SIEVE vs FIFO at 64 frames"
    );
}

#[test]
fn malformed_traces_are_clear_errors() {
    let opts = TraceOptions::new(Format::OracleGeneral);
    let mut partial = oracle(&[1, 2], |_| 1);
    partial.truncate(40);
    let e = replay::parse(&partial[..], &opts).unwrap_err();
    assert!(e.to_string().contains("partial record"), "{e}");
    let e = replay::parse(&[0x28u8, 0xB5, 0x2F, 0xFD, 0, 0][..], &opts).unwrap_err();
    assert!(e.to_string().contains("zstd"), "{e}");
    let e = replay::parse(&[][..], &opts).unwrap_err();
    assert!(e.to_string().contains("no request"), "{e}");
    let csv = TraceOptions {
        id_column: 3,
        ..TraceOptions::new(Format::Csv)
    };
    let e = replay::parse(&b"1,2,3\n4,5\n"[..], &csv).unwrap_err();
    assert!(
        e.to_string().contains("line 2") && e.to_string().contains("id column 3"),
        "{e}"
    );
    let sized = TraceOptions {
        size_column: Some(2),
        ..TraceOptions::new(Format::Csv)
    };
    let e = replay::parse(&b"a,12\nb,twelve\n"[..], &sized).unwrap_err();
    assert!(
        e.to_string().contains("line 2") && e.to_string().contains("twelve"),
        "{e}"
    );
    let zero = TraceOptions {
        id_column: 0,
        ..TraceOptions::new(Format::Csv)
    };
    assert!(replay::parse(&b"1\n"[..], &zero).is_err());
    // A huge object is an error, not an abort.
    let big = TraceOptions {
        page_size: 1,
        ..TraceOptions::new(Format::OracleGeneral)
    };
    let t = replay::parse(&oracle(&[1, 2], |_| u32::MAX)[..], &big).unwrap();
    assert_eq!(t.pages, 2 * u32::MAX as u64);
    for bad in ["0", "0%", "101%", "x", "-5"] {
        assert!(CacheSize::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        CacheSize::parse_list("1%, 250").unwrap(),
        vec![CacheSize::Percent(1.0), CacheSize::Frames(250)]
    );
    // Equal sizes once (their rows would merge in the table); a cache larger than the working
    // set is the working set.
    assert_eq!(
        CacheSize::parse_list("10%,10.0%,5,5").unwrap(),
        vec![CacheSize::Percent(10.0), CacheSize::Frames(5)]
    );
    assert_eq!(CacheSize::Frames(100_000_000_000).frames(298), 298);
    assert_eq!(CacheSize::Percent(0.01).frames(298), 1);
    // String ids hash to the same id each time.
    let t = parse(b"alpha\nbeta\nalpha\n", &TraceOptions::new(Format::Txt));
    assert_eq!(t.requests, vec![(0, 1), (1, 1), (0, 1)]);
}

#[test]
fn the_command_writes_table_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    for id in ids(5000) {
        writeln!(f, "{id};x").unwrap();
    }
    drop(f);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pagesim"))
        .args([
            "replay",
            path.to_str().unwrap(),
            "--format",
            "csv",
            "--delimiter",
            ";",
        ])
        .args(["--sizes", "5%,20,50%", "--quiet", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| 5% |") && stdout.contains("| 20 frames |"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("t.csv.miss-ratio.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 12, "3 sizes x 4 policies");
    let svg = std::fs::read_to_string(dir.path().join("t.csv.miss-ratio.svg")).unwrap();
    // The only polylines drawn in a policy's colour are its curves (the legend's are bars).
    let curves = ALL
        .iter()
        .filter(|&&p| {
            svg.matches(&format!(
                "stroke=\"{}\"",
                pagesim::plot::style(p).0.to_uppercase()
            ))
            .count()
                == 1
        })
        .count();
    assert_eq!(curves, 4, "a curve per policy");
    assert!(dir.path().join("t.csv.miss-ratio.md").exists());
    // A bad trace fails with a message and status 2.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_pagesim"))
        .args(["replay", "/nonexistent/trace"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/trace"));
}
