//! pagesim: drives the real pagecore library with client threads over objects backed by real
//! files, through a pool of frames, and reports what a user of a pager cares about: operations
//! per second, hit ratio, fills, reclaims, write-backs, grant waits and revocations, and the
//! latency of hits and misses. Its `study` runs every eviction policy on several workloads and
//! cache sizes and writes a miss-ratio table and plot; its `replay` plays a recorded trace
//! (libCacheSim's oracleGeneral, csv or one id per line) through every policy at several cache
//! sizes. With `--mmap` the clients are plain loads and stores on a `pagecore::Mapping` of each
//! object (faults served through userfaultfd).
//!
//! The binary (`cargo run --release -p pagesim`) is the project's main job; the library is what
//! the benchmarks drive (`benches/end_to_end.rs`: pagesim's workload on pagecore beside the same
//! workload on `quick_cache` plus positional reads, [`peer`]).

mod mapped;
pub mod peer;
pub mod plot;
pub mod replay;
pub mod sim;
pub mod study;
pub mod workload;

pub use sim::{run, Config, PolicyArg, Summary};
pub use workload::{Kind, Workload};
