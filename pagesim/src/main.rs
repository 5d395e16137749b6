//! pagesim: the project's main job. `pagesim` (or `pagesim run`) drives pagecore with client
//! threads over temporary files and prints a summary; `pagesim study` runs the eviction-policy
//! miss-ratio study; `pagesim replay FILE` plays a recorded trace through every policy at several
//! cache sizes. `pagesim --help` for every option.

use clap::{Args, Parser, Subcommand};
use pagesim::replay::{self, CacheSize, Format, TraceOptions};
use pagesim::study;
use pagesim::{Config, Kind, PolicyArg, Workload};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pagesim",
    version,
    about = "Drives pagecore with client threads over objects backed by real files",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the simulation (the default).
    Run(RunArgs),
    /// Run the eviction-policy miss-ratio study and write its table and plot.
    Study(StudyArgs),
    /// Replay a recorded trace at several cache sizes under every policy: miss-ratio table,
    /// JSON and SVG curve.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// The trace file.
    file: PathBuf,
    /// Its format: libCacheSim's binary oracleGeneral (24-byte records), csv, or txt (one id
    /// per line).
    #[arg(long, value_enum, default_value_t = Format::OracleGeneral)]
    format: Format,
    /// csv: the object id's column, from 1.
    #[arg(long, default_value_t = 1)]
    id_column: usize,
    /// csv: the object size's column (bytes), from 1 [default: every object is one page].
    #[arg(long)]
    size_column: Option<usize>,
    /// csv: the field delimiter.
    #[arg(long, default_value_t = ',')]
    delimiter: char,
    /// csv: the first line is a header.
    #[arg(long)]
    header: bool,
    /// Page size in bytes: an object of size s takes ceil(s / page) pages.
    #[arg(long, default_value_t = 4096)]
    page_size: u64,
    /// Count each object as one page, whatever its size.
    #[arg(long)]
    ignore_size: bool,
    /// Cache sizes: percentages of the working set (`5%`) or frame counts, comma-separated.
    #[arg(long, default_value = "1%,2%,5%,10%,20%")]
    sizes: String,
    /// Policies to compare [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    policies: Vec<PolicyArg>,
    /// Replay at most this many requests.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Directory for <trace>.miss-ratio.md, .json and .svg.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Print the cells as JSON instead of the table (and no progress bar).
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Objects, one file each.
    #[arg(long, default_value_t = 4)]
    objects: usize,
    /// Clients per object (one thread each).
    #[arg(long, default_value_t = 2)]
    clients_per_object: usize,
    /// Pages in each object's working set.
    #[arg(long, default_value_t = 8192)]
    pages: u64,
    /// Page size in bytes (a power of two, 64 B to 1 MiB).
    #[arg(long, default_value_t = 4096)]
    page_size: usize,
    /// Pool size in frames [default: 10% of all the objects' pages].
    #[arg(long)]
    frames: Option<u64>,
    /// Pool size as a percentage of all the objects' pages (ignored with --frames).
    #[arg(long, default_value_t = 10.0)]
    pool_pct: f64,
    /// Share of operations that write (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    write_ratio: f64,
    /// The access pattern.
    #[arg(long, value_enum, default_value_t = Kind::Zipf)]
    workload: Kind,
    /// Zipf's alpha (zipf, scan-zipf).
    #[arg(long, default_value_t = 0.99)]
    alpha: f64,
    /// The scan's share of operations (scan-zipf).
    #[arg(long, default_value_t = 0.2)]
    scan_fraction: f64,
    /// The loop's length in pages (loop) [default: the working set].
    #[arg(long)]
    loop_pages: Option<u64>,
    /// The eviction policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::Sieve)]
    policy: PolicyArg,
    /// Seconds to run.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Operations per thread instead of a duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Directory for the files [default: a temporary directory, removed after].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Touch each object through a mapping (plain loads and stores whose faults pagecore serves
    /// through userfaultfd; Linux, the system's page size) instead of client requests.
    #[arg(long)]
    mmap: bool,
    /// With --mmap: fault-around's bound in pages (0 = off).
    #[arg(long, default_value_t = 32)]
    fault_around: u64,
    /// With --mmap: mappings of each object, sharing its pages (the object's client threads
    /// take them in turn: see --clients-per-object).
    #[arg(long, default_value_t = 1)]
    mappings_per_object: usize,
    /// Print the summary as JSON (and no progress bar).
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct StudyArgs {
    /// Pages in the working set.
    #[arg(long, default_value_t = 4096)]
    pages: u64,
    /// Page size in bytes.
    #[arg(long, default_value_t = 4096)]
    page_size: usize,
    /// Operations per measurement.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Where to write miss-ratio.md, miss-ratio.svg and miss-ratio.json.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// Print the rows as JSON too.
    #[arg(long)]
    json: bool,
}

fn config(a: &RunArgs) -> Result<Config, String> {
    let mut w = Workload::new(a.workload, a.pages);
    w.alpha = a.alpha;
    w.scan_fraction = a.scan_fraction;
    w.loop_pages = a.loop_pages.unwrap_or(a.pages);
    if !(0.0..=1.0).contains(&a.scan_fraction) {
        return Err("--scan-fraction must be between 0 and 1".into());
    }
    let total = w.object_pages().saturating_mul(a.objects as u64);
    let frames = match a.frames {
        Some(f) => f,
        None => {
            if !(a.pool_pct > 0.0 && a.pool_pct <= 100.0) {
                return Err("--pool-pct must be in (0, 100]".into());
            }
            ((total as f64 * a.pool_pct / 100.0).round() as u64).max(1)
        }
    };
    Ok(Config {
        objects: a.objects,
        clients_per_object: a.clients_per_object,
        workload: w,
        page_size: a.page_size,
        frames,
        write_ratio: a.write_ratio,
        policy: a.policy,
        seconds: a.seconds,
        ops: a.ops,
        dir: a.dir.clone(),
        seed: a.seed,
        mmap: a.mmap,
        fault_around: a.fault_around,
        mappings_per_object: a.mappings_per_object,
        progress: !a.json && !a.quiet,
    })
}

fn run(a: &RunArgs) -> Result<(), String> {
    let cfg = config(a)?;
    let s = pagesim::run(&cfg).map_err(|e| e.to_string())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?
        );
    } else {
        println!("{s}");
    }
    if s.content_errors != 0 || s.request_errors != 0 {
        return Err(format!(
            "{} content errors and {} failed requests",
            s.content_errors, s.request_errors
        ));
    }
    Ok(())
}

fn run_study(a: &StudyArgs) -> Result<(), String> {
    if a.pages < 100 || a.ops == 0 {
        return Err("the study needs --pages of at least 100 and --ops above 0".into());
    }
    if !a.page_size.is_power_of_two() || !(64..=1 << 20).contains(&a.page_size) {
        return Err(format!(
            "--page-size {} is not a power of two from 64 B to 1 MiB",
            a.page_size
        ));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rows =
        study::run(a.pages, a.page_size, a.ops, tmp.path(), !a.json).map_err(|e| e.to_string())?;
    let mut md = String::from("# Eviction policies: miss-ratio study\n\n");
    md.push_str(&study::markdown(&rows, a.pages, a.ops));
    let mut report = String::new();
    for p in [PolicyArg::Clock, PolicyArg::Sieve, PolicyArg::S3fifo] {
        let (gain, worst, at) = study::goals(&rows, p);
        report.push_str(&format!(
            "- {p:?}: {gain:.1}% fewer misses than FIFO on Zipf 0.9 at a 10% cache (goal ≥ 10%); \
             at worst {worst:+.1}% against FIFO ({at}; goal ≤ +2%)\n"
        ));
    }
    let (ahead, sizes) = study::ahead(&rows, PolicyArg::S3fifo, PolicyArg::Sieve, "scan-zipf-0.9");
    report.push_str(&format!(
        "- S3fifo against SIEVE on scan-zipf-0.9: fewer misses at {ahead} of {sizes} cache sizes \
         (goal: ahead)\n"
    ));
    md.push_str("## Against the goals\n\n");
    md.push_str(&report);
    md.push_str("\n![miss ratio per policy](miss-ratio.svg)\n");
    let write = |name: &str, body: &str| {
        std::fs::write(a.out.join(name), body).map_err(|e| format!("{name}: {e}"))
    };
    write("miss-ratio.md", &md)?;
    write("miss-ratio.svg", &study::svg(&rows))?;
    let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
    write("miss-ratio.json", &json)?;
    if a.json {
        println!("{json}");
    } else {
        print!("{report}");
        println!(
            "wrote {}/miss-ratio.md, miss-ratio.svg, miss-ratio.json",
            a.out.display()
        );
    }
    Ok(())
}

fn run_replay(a: &ReplayArgs) -> Result<(), String> {
    let sizes = CacheSize::parse_list(&a.sizes)?;
    if sizes.is_empty() {
        return Err("--sizes lists no cache size".into());
    }
    let policies = if a.policies.is_empty() {
        study::POLICIES.to_vec()
    } else {
        a.policies.clone()
    };
    let opts = TraceOptions {
        id_column: a.id_column,
        size_column: a.size_column,
        delimiter: a.delimiter,
        header: a.header,
        page_size: a.page_size,
        ignore_size: a.ignore_size,
        max_requests: a.max_requests,
        ..TraceOptions::new(a.format)
    };
    let trace = replay::load(&a.file, &opts).map_err(|e| match e {
        replay::TraceError::Options(_) => e.to_string(),
        _ => format!("{}: {e}", a.file.display()),
    })?;
    let cells = replay::replay(&trace, &sizes, &policies, !a.json && !a.quiet)
        .map_err(|e| e.to_string())?;
    let name = a
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let md = replay::markdown(&name, &trace, &cells, &policies);
    let json = serde_json::to_string_pretty(&cells).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut written = Vec::new();
    for (ext, body) in [
        (
            "md",
            format!("# Miss ratio of {name}\n\n{md}\n![miss ratio]({name}.miss-ratio.svg)\n"),
        ),
        ("json", json.clone()),
        ("svg", replay::svg(&name, &cells, &policies)),
    ] {
        let path = a.out.join(format!("{name}.miss-ratio.{ext}"));
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    if a.json {
        println!("{json}");
    } else {
        print!("{md}");
        println!("wrote {}", written.join(", "));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        None => run(&cli.run),
        Some(Command::Run(a)) => run(a),
        Some(Command::Study(a)) => run_study(a),
        Some(Command::Replay(a)) => run_replay(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagesim: {e}");
            ExitCode::from(2)
        }
    }
}
