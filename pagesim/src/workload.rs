//! Workloads: which page each operation touches.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

/// The access pattern.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Zipf(alpha) over the working set, hottest ranks scattered over it.
    Zipf,
    /// Uniform over the working set.
    Uniform,
    /// A sequential sweep over the working set, wrapping at its end.
    Scan,
    /// Zipf(alpha) over the working set, with a share of the operations (`scan_fraction`) a
    /// sequential sweep over a cold region four times its size (a scan polluting a hot set).
    ScanZipf,
    /// A loop over the first `loop_pages` pages, again and again.
    Loop,
}

/// A workload over one object.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Workload {
    /// The access pattern.
    pub kind: Kind,
    /// Pages of the working set.
    pub pages: u64,
    /// Zipf's alpha (`zipf`, `scan-zipf`).
    pub alpha: f64,
    /// The scan's share of operations (`scan-zipf`).
    pub scan_fraction: f64,
    /// The loop's length in pages (`loop`).
    pub loop_pages: u64,
}

impl Workload {
    /// A workload of `kind` over `pages` pages with the defaults: alpha 0.99, a 20% scan, a loop
    /// over the whole working set.
    pub fn new(kind: Kind, pages: u64) -> Self {
        Self {
            kind,
            pages,
            alpha: 0.99,
            scan_fraction: 0.2,
            loop_pages: pages,
        }
    }

    /// Pages the object needs (the working set, plus the cold region of `scan-zipf`).
    pub fn object_pages(&self) -> u64 {
        match self.kind {
            Kind::ScanZipf => self.pages * 5,
            _ => self.pages,
        }
    }

    /// A short name ("zipf-0.99", "loop", ...).
    pub fn name(&self) -> String {
        match self.kind {
            Kind::Zipf => format!("zipf-{}", self.alpha),
            Kind::Uniform => "uniform".into(),
            Kind::Scan => "scan".into(),
            Kind::ScanZipf => format!("scan-zipf-{}", self.alpha),
            Kind::Loop => "loop".into(),
        }
    }

    /// The page generator of one thread (`seed` distinguishes threads).
    pub fn generator(&self, seed: u64) -> Generator {
        let zipf = match self.kind {
            Kind::Zipf | Kind::ScanZipf => Some(Zipf::new(self.pages as f64, self.alpha).ok()),
            _ => None,
        }
        .flatten();
        let mut rng = StdRng::seed_from_u64(seed);
        // Threads start their sweeps at different places.
        let pos = rng.random_range(0..self.pages.max(1));
        Generator {
            w: *self,
            zipf,
            rng,
            pos,
            scan: pos * 4,
        }
    }
}

/// Produces page indices for one thread.
pub struct Generator {
    w: Workload,
    zipf: Option<Zipf<f64>>,
    rng: StdRng,
    pos: u64,
    scan: u64,
}

impl Generator {
    fn zipf(&mut self) -> u64 {
        let n = self.w.pages.max(1);
        let rank = match &self.zipf {
            Some(z) => z.sample(&mut self.rng) as u64 - 1,
            None => self.rng.random_range(0..n),
        };
        // An odd multiplier scatters the hot ranks over the range.
        rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
    }

    /// The next page.
    pub fn next_page(&mut self) -> u64 {
        let n = self.w.pages.max(1);
        match self.w.kind {
            Kind::Zipf => self.zipf(),
            Kind::Uniform => self.rng.random_range(0..n),
            Kind::Scan => {
                self.pos = (self.pos + 1) % n;
                self.pos
            }
            Kind::Loop => {
                self.pos = (self.pos + 1) % self.w.loop_pages.clamp(1, n);
                self.pos
            }
            Kind::ScanZipf => {
                if self.rng.random::<f64>() < self.w.scan_fraction {
                    self.scan = (self.scan + 1) % (4 * n);
                    n + self.scan
                } else {
                    self.zipf()
                }
            }
        }
    }

    /// Whether the next operation writes, with probability `ratio`.
    pub fn writes(&mut self, ratio: f64) -> bool {
        ratio > 0.0 && self.rng.random::<f64>() < ratio
    }
}
