//! The run: the world the threads share, each thread's context checking its reads against the
//! expectations, the drivers (shuttle, real threads, fuzz).

use super::*;

use check::*;
// ----- the run ----------------------------------------------------------------------------------

/// What the run shares between threads.
pub(super) struct World {
    pub(super) pages: Pages,
    pub(super) objs: Vec<Mutex<PageMapper>>,
    pub(super) mem: Arc<MemoryAccessor>,
    pub(super) inj: Arc<Injector>,
    /// Per object and page: the newest tag whose write started / completed.
    pub(super) started: Vec<Vec<AtomicU64>>,
    pub(super) committed: Vec<Vec<AtomicU64>>,
    /// Per object: how many times it was closed and reopened.
    pub(super) gens: Vec<AtomicU64>,
    pub(super) threads: usize,
    pub(super) npages: u64,
    pub(super) real: bool,
    /// The first failure a thread found.
    pub(super) failure: std::sync::Mutex<Option<String>>,
    pub(super) revocations: Arc<FAtomicU64>,
}

impl World {
    pub(super) fn obj(&self, o: usize) -> PageMapper {
        lock(&self.objs[o]).clone()
    }
}

/// What a thread expects of one page of one of its copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exp {
    Known(u64),
    /// A tag of the page's writer between these two (inclusive), not yet read.
    Window(u64, u64),
    /// The copy's own write.
    Mine(u64),
}

impl Exp {
    /// Whether the copy may show `v` for a page `writer` writes; `reopened`: the object the
    /// copy was made of was closed and reopened since, and pages the copy did not write may
    /// show later writes to the store (see [`Op::CloseReopen`]).
    pub(super) fn admits(self, v: u64, writer: u64, reopened: bool) -> bool {
        let of_writer = v & COPY_BIT == 0 && (v == 0 || v >> 40 == writer);
        match self {
            Exp::Mine(k) => v == k,
            Exp::Known(k) if reopened => v == k || (of_writer && v >= k),
            Exp::Window(lo, _) if reopened => v == lo || (of_writer && v >= lo),
            Exp::Known(k) => v == k,
            Exp::Window(lo, hi) => v == lo || (of_writer && lo <= v && v <= hi),
        }
    }
}

pub(super) struct CopyState {
    pub(super) map: PageMapper,
    /// The generation of the object it was made of when it was made.
    pub(super) gen: u64,
    /// The object the copy (or the copy it was copied from) was made of.
    pub(super) base: usize,
    pub(super) exp: Vec<Exp>,
}

/// Where an operation ran, for [`allowed`].
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// The object (for a copy, the object its chain started from).
    pub obj: usize,
    /// Whether the operation ran on a copy.
    pub copy: bool,
    /// Whether the pool's waits are bounded (real threads).
    pub bounded: bool,
    /// Whether the injector has injected a fill error.
    pub fill_injected: bool,
    /// The operation was a `try_request`.
    pub try_request: bool,
    /// The operation was an upgrade.
    pub upgrade: bool,
}

pub(super) fn io_ok(source: &io::Error) -> bool {
    matches!(source.raw_os_error(), Some(1 | 5 | 28 | 122))
        || source.to_string().contains("injected unusual error")
}

/// Whether `e` is an error the operation at `site` may return in these programs.
/// [`Error::Invariant`] never is; a [`Error::Fill`] only on the injecting object (or a copy of
/// it) once a fill error was injected, never one naming a frozen layer otherwise.
pub fn allowed(e: &Error, site: Site) -> bool {
    match e {
        Error::Invariant(_) => false,
        Error::Fill { source, .. } => {
            site.obj == 2 && site.fill_injected && {
                // The injector's own error, or a frozen layer passing one on.
                source.raw_os_error() == Some(5) || source.to_string().contains("frozen layer")
            }
        }
        Error::WriteBack { source, .. } => io_ok(source),
        Error::SwapFull { .. } => true,
        Error::Closed => !site.copy && site.obj != 1,
        Error::Busy { .. } | Error::Exhausted { .. } => site.bounded,
        Error::WouldBlock { .. } => site.try_request,
        Error::UpgradeConflict { .. } => site.upgrade,
        _ => false,
    }
}

pub(super) struct Ctx<'w> {
    pub(super) w: &'w World,
    pub(super) t: usize,
    pub(super) seq: u64,
    /// Per object and page: (last tag this thread surely wrote, a newer one that may have
    /// landed) for its own pages; the newest tag it saw for the others.
    pub(super) mine: Vec<Vec<(u64, Vec<u64>)>>,
    pub(super) seen: Vec<Vec<u64>>,
    pub(super) copies: Vec<CopyState>,
    pub(super) step: usize,
}

impl Ctx<'_> {
    /// Records the thread's first failure (the run panics with it once every thread is joined)
    /// and returns a dummy tag. Failing without unwinding matters under shuttle: a task that
    /// switches out while unwinding (dropping guards and handles calls into the scheduler)
    /// leaves the executor thread panicking, and every later execution in the process fails.
    pub(super) fn fail(&self, what: String) -> u64 {
        let mut f = self.w.failure.lock().unwrap();
        if f.is_none() {
            *f = Some(format!("thread {} step {}: {what}", self.t, self.step));
        }
        0
    }

    pub(super) fn site(&self, obj: usize, copy: bool) -> Site {
        Site {
            obj,
            copy,
            bounded: self.w.real,
            fill_injected: self.w.inj.fills_injected.load(SeqCst) > 0,
            try_request: false,
            upgrade: false,
        }
    }

    pub(super) fn check_err(&self, e: &Error, mut site: Site, op: &str) {
        site.fill_injected = self.w.inj.fills_injected.load(SeqCst) > 0;
        if !allowed(e, site) {
            let on = if site.copy {
                "a copy of object"
            } else {
                "object"
            };
            self.fail(format!(
                "{op} on {on} {}: error not allowed here: {e:?} ({e})",
                site.obj
            ));
        }
    }

    pub(super) fn next_tag(&mut self) -> u64 {
        self.seq += 1;
        ((self.t as u64 + 1) << 40) | self.seq
    }

    pub(super) fn owns(&self, page: u64) -> bool {
        writer_of(page, self.w.threads) == self.t
    }

    pub(super) fn window(&self, obj: usize, page: u64) -> u64 {
        self.w.committed[obj][page as usize].load(SeqCst)
    }

    pub(super) fn begin_write(&mut self, obj: usize, page: u64, tag: u64) {
        self.w.started[obj][page as usize].store(tag, SeqCst);
    }

    pub(super) fn end_write(&mut self, obj: usize, page: u64, tag: u64, landed: Option<bool>) {
        let m = &mut self.mine[obj][page as usize];
        match landed {
            Some(true) => {
                *m = (tag, Vec::new());
                self.w.committed[obj][page as usize].store(tag, SeqCst);
            }
            Some(false) => {}
            None => m.1.push(tag),
        }
    }

    /// Checks tag `v` read from page `page` of object `obj`, where `lo` was the newest completed
    /// write when the read started.
    pub(super) fn check_read(&mut self, obj: usize, page: u64, v: u64, lo: u64, what: &str) {
        let hi = self.w.started[obj][page as usize].load(SeqCst);
        if v & COPY_BIT != 0 {
            self.fail(format!(
                "{what}: object {obj} page {page} shows a copy's write {v:#x}"
            ));
        }
        if self.owns(page) {
            let (c, maybe) = self.mine[obj][page as usize].clone();
            if v == c {
                self.mine[obj][page as usize].1.clear();
            } else if maybe.contains(&v) {
                self.end_write(obj, page, v, Some(true));
            } else {
                self.fail(format!(
                    "{what}: object {obj} page {page} reads {v:#x}, but this thread last wrote \
                     {c:#x} (maybe {maybe:x?})"
                ));
            }
        } else {
            let writer = writer_of(page, self.w.threads) as u64 + 1;
            let seen = self.seen[obj][page as usize];
            if v != 0 && v >> 40 != writer {
                self.fail(format!(
                    "{what}: object {obj} page {page} reads {v:#x}, not a tag of its writer"
                ));
            }
            if v < lo || v > hi || v < seen {
                self.fail(format!(
                    "{what}: object {obj} page {page} reads {v:#x}, outside [{lo:#x}, {hi:#x}] \
                     or older than {seen:#x} seen before"
                ));
            }
            self.seen[obj][page as usize] = v;
        }
    }

    pub(super) fn read(&mut self, obj: usize, page: u64, awaited: bool) {
        let lo = self.window(obj, page);
        let m = self.w.obj(obj);
        let g = if awaited {
            crate::block_on(m.read_async(page))
        } else {
            m.read(page)
        };
        let v = match g {
            Ok(g) => tag_of(&g).unwrap_or_else(|e| self.fail(format!("read {obj}/{page}: {e}"))),
            Err(e) => return self.check_err(&e, self.site(obj, false), "read"),
        };
        self.check_read(obj, page, v, lo, "read");
    }

    pub(super) fn write(&mut self, obj: usize, page: u64, awaited: bool) {
        let tag = self.next_tag();
        let m = self.w.obj(obj);
        self.begin_write(obj, page, tag);
        let g = if awaited {
            crate::block_on(m.write_async(page))
        } else {
            m.write(page)
        };
        match g {
            Ok(mut g) => {
                fill_tag(&mut g, tag);
                drop(g);
                self.end_write(obj, page, tag, Some(true));
            }
            Err(e) => self.check_err(&e, self.site(obj, false), "write"),
        };
    }

    pub(super) fn read_at(&mut self, obj: usize, page: u64) {
        let (lo0, lo1) = (self.window(obj, page), self.window(obj, page + 1));
        let m = self.w.obj(obj);
        let mut buf = [0u8; PAGE];
        match m.read_at(page * PAGE as u64 + PAGE as u64 / 2, &mut buf) {
            Ok(()) => {
                let (a, b) = buf.split_at(PAGE / 2);
                let va = tag_of(a).unwrap_or_else(|e| self.fail(format!("read_at: {e}")));
                let vb = tag_of(b).unwrap_or_else(|e| self.fail(format!("read_at: {e}")));
                self.check_read(obj, page, va, lo0, "read_at");
                self.check_read(obj, page + 1, vb, lo1, "read_at");
            }
            Err(e) => self.check_err(&e, self.site(obj, false), "read_at"),
        }
    }

    pub(super) fn write_at(&mut self, obj: usize, pair: u64) {
        let (p0, p1) = (2 * pair, 2 * pair + 1);
        let tag = self.next_tag();
        let m = self.w.obj(obj);
        let mut buf = [0u8; 2 * PAGE];
        fill_tag(&mut buf, tag);
        self.begin_write(obj, p0, tag);
        self.begin_write(obj, p1, tag);
        match m.write_at(p0 * PAGE as u64, &buf) {
            Ok(()) => {
                self.end_write(obj, p0, tag, Some(true));
                self.end_write(obj, p1, tag, Some(true));
            }
            Err(e) => {
                self.check_err(&e, self.site(obj, false), "write_at");
                // The first page may have been written before the second failed.
                self.end_write(obj, p0, tag, None);
            }
        }
    }

    pub(super) fn close_reopen(&mut self, obj: usize) {
        let mut slot = lock(&self.w.objs[obj]);
        let h = slot.clone();
        let probe = slot.clone();
        let res = h.close();
        if let Err(e) = &res {
            self.check_err(e, self.site(obj, false), "close");
        }
        // An error a reclaim recorded earlier is reported by the close that closes for good.
        match res.map_err(|_| probe.is_closed()) {
            Ok(()) | Err(true) => {
                let m = if obj == 0 {
                    self.w
                        .pages
                        .open(self.w.mem.clone(), self.w.npages * PAGE as u64)
                } else {
                    self.w
                        .pages
                        .open(self.w.inj.clone(), self.w.npages * PAGE as u64)
                };
                match m {
                    Ok(m) => *slot = m,
                    Err(e) => {
                        self.fail(format!("reopen: {e}"));
                    }
                }
                self.w.gens[obj].fetch_add(1, SeqCst);
            }
            Err(false) => {}
        }
    }

    /// A copy of `src` (an object, or one of this thread's copies), with what it should show.
    pub(super) fn copy(&mut self, obj: usize, from_copy: Option<usize>) {
        let (made, base, gen, exp) = match from_copy {
            None => {
                let gen = self.w.gens[obj].load(SeqCst);
                let lo: Vec<u64> = (0..self.w.npages).map(|p| self.window(obj, p)).collect();
                let m = self.w.obj(obj);
                let made = m.copy();
                let exp = (0..self.w.npages)
                    .map(|p| {
                        if self.owns(p) {
                            let (c, maybe) = &self.mine[obj][p as usize];
                            match maybe.iter().max() {
                                None => Exp::Known(*c),
                                Some(&n) => Exp::Window(*c, n),
                            }
                        } else {
                            let hi = self.w.started[obj][p as usize].load(SeqCst);
                            Exp::Window(lo[p as usize].max(self.seen[obj][p as usize]), hi)
                        }
                    })
                    .collect();
                (made, obj, gen, exp)
            }
            Some(i) => {
                let Some(c) = self.copies.get(i) else { return };
                (c.map.copy(), c.base, c.gen, c.exp.clone())
            }
        };
        match made {
            Ok(map) => {
                if self.copies.len() == MAX_COPIES {
                    self.copies.remove(0);
                }
                self.copies.push(CopyState {
                    map,
                    base,
                    gen,
                    exp,
                });
            }
            Err(e) => self.check_err(&e, self.site(base, from_copy.is_some()), "copy"),
        }
    }

    pub(super) fn copy_read(&mut self, i: usize, page: u64) {
        let Some(c) = self.copies.get(i) else { return };
        let base = c.base;
        let v = match c.map.read(page) {
            Ok(g) => tag_of(&g).unwrap_or_else(|e| self.fail(format!("copy read: {e}"))),
            Err(e) => return self.check_err(&e, self.site(base, true), "copy read"),
        };
        self.check_copy_value(i, page, v);
    }

    pub(super) fn check_copy_value(&mut self, i: usize, page: u64, v: u64) {
        let writer = writer_of(page, self.w.threads) as u64 + 1;
        let c = &self.copies[i];
        let reopened = self.w.gens[c.base].load(SeqCst) != c.gen;
        let exp = c.exp[page as usize];
        if !exp.admits(v, writer, reopened) {
            self.fail(format!(
                "copy {i} (of {}) page {page} reads {v:#x}, expected {exp:x?} (reopened since: {reopened})",
                c.base
            ));
        }
        if !matches!(exp, Exp::Mine(_)) {
            self.copies[i].exp[page as usize] = Exp::Known(v);
        }
    }

    pub(super) fn copy_write(&mut self, i: usize, page: u64) {
        let tag = self.next_tag() | COPY_BIT;
        let Some(c) = self.copies.get(i) else { return };
        let base = c.base;
        let res = c.map.write(page).map(|mut g| fill_tag(&mut g, tag));
        match res {
            Ok(()) => self.copies[i].exp[page as usize] = Exp::Mine(tag),
            Err(e) => self.check_err(&e, self.site(base, true), "copy write"),
        }
    }

    pub(super) fn grant(&mut self, obj: usize, page: u64, access: Access, how: How, then: Then) {
        let m = self.w.obj(obj);
        let asks = self.w.revocations.clone();
        let client = match m.register_with(move |_p: u64, _a: Revocation| {
            asks.fetch_add(1, FOrdering::SeqCst);
        }) {
            Ok(c) => c,
            Err(e) => return self.check_err(&e, self.site(obj, false), "register"),
        };
        let mut site = self.site(obj, false);
        let lo = self.window(obj, page);
        let got = match how {
            How::Request => client.request(page, access),
            How::Try => {
                site.try_request = true;
                client.try_request(page, access)
            }
            How::Enqueue => client.enqueue(page, access).and_then(|p| p.wait()),
            How::Poll => client.enqueue(page, access).and_then(|mut p| {
                for _ in 0..3 {
                    if p.is_granted()? {
                        break;
                    }
                    thread::yield_now();
                }
                p.wait()
            }),
        };
        let mut g = match got {
            Ok(g) => g,
            Err(e) => return self.check_err(&e, site, "request"),
        };
        let mut access = access;
        if then == Then::Upgrade {
            let mut s = site;
            s.upgrade = true;
            match g.upgrade() {
                Ok(()) => access = Access::Write,
                Err(e) => self.check_err(&e, s, "upgrade"),
            }
        }
        let v = tag_of(&g).unwrap_or_else(|e| self.fail(format!("grant: {e}")));
        self.check_read(obj, page, v, lo, "grant");
        if access == Access::Write && self.owns(page) {
            let tag = self.next_tag();
            self.begin_write(obj, page, tag);
            match g.bytes_mut() {
                Ok(b) => {
                    fill_tag(b, tag);
                    self.end_write(obj, page, tag, Some(true));
                }
                Err(e) => self.check_err(&e, site, "bytes_mut"),
            }
        }
        if then == Then::Downgrade && access == Access::Write {
            if let Err(e) = g.downgrade() {
                self.check_err(&e, site, "downgrade");
            }
            let lo = self.window(obj, page);
            let v = tag_of(&g).unwrap_or_else(|e| self.fail(format!("grant: {e}")));
            self.check_read(obj, page, v, lo, "downgraded grant");
        }
        if let Err(e) = g.release() {
            self.check_err(&e, site, "release");
        }
    }

    pub(super) fn step(&mut self, op: Op) {
        match op {
            Op::Read { obj, page, awaited } => self.read(obj, page, awaited),
            Op::Write { obj, page, awaited } => self.write(obj, page, awaited),
            Op::ReadAt { obj, page } => self.read_at(obj, page),
            Op::WriteAt { obj, pair } => self.write_at(obj, pair),
            Op::Sync { obj } => {
                if let Err(e) = self.w.obj(obj).sync() {
                    self.check_err(&e, self.site(obj, false), "sync");
                }
            }
            Op::CloseReopen { obj } => self.close_reopen(obj),
            Op::Copy { obj } => self.copy(obj, None),
            Op::CopyCopy { copy } => self.copy(0, Some(copy)),
            Op::DropCopy { copy } => {
                if copy < self.copies.len() {
                    self.copies.remove(copy);
                }
            }
            Op::CopyRead { copy, page } => self.copy_read(copy, page),
            Op::CopyWrite { copy, page } => self.copy_write(copy, page),
            Op::Compact { obj, copy } => match copy {
                Some(i) => {
                    if let Some(c) = self.copies.get(i) {
                        c.map.compact();
                    }
                }
                None => {
                    self.w.obj(obj).compact();
                }
            },
            Op::Grant {
                obj,
                page,
                access,
                how,
                then,
            } => self.grant(obj, page, access, how, then),
            Op::Census { frame } => {
                if let Err(e) = self.w.pages.census() {
                    self.fail(format!("census mid-run: {e}"));
                }
                let _ = self.w.pages.rmap(frame);
            }
        }
    }
}

/// What a thread hands back when joined: its final expectations and its copies.
pub(super) struct Outcome {
    pub(super) mine: Vec<Vec<(u64, Vec<u64>)>>,
    pub(super) copies: Vec<CopyState>,
}

pub(super) fn run_program(p: &Program) {
    run_with(p, cfg!(not(feature = "shuttle")))
}

/// Runs `p` once on real threads (std backend), with the pool's waits bounded at 2 s.
pub fn run_threads(p: &Program) {
    run_with(p, true)
}

pub(super) fn run_with(p: &Program, real: bool) {
    let threads = p.threads.len();
    let npages = p.pages;
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(p.frames)
        .wait_bound(if real {
            Some(std::time::Duration::from_secs(2))
        } else {
            None
        })
        .swap_slots(p.swap_slots)
        .build()
        .expect("pool");
    let unusual_cap = p.frames.saturating_sub(threads as u64 + 1) as usize;
    let mem = Arc::new(MemoryAccessor::new());
    let inj = Arc::new(Injector::new(p, npages, unusual_cap));
    let limit = npages * PAGE as u64;
    let objs = vec![
        Mutex::new(pages.open(mem.clone(), limit).expect("open")),
        Mutex::new(pages.anonymous(limit).expect("anonymous")),
        Mutex::new(pages.open(inj.clone(), limit).expect("open")),
    ];
    let table = || -> Vec<Vec<AtomicU64>> {
        (0..OBJECTS)
            .map(|_| (0..npages).map(|_| AtomicU64::new(0)).collect())
            .collect()
    };
    let world = Arc::new(World {
        pages: pages.clone(),
        objs,
        mem: mem.clone(),
        inj: inj.clone(),
        started: table(),
        committed: table(),
        gens: (0..OBJECTS).map(|_| AtomicU64::new(0)).collect(),
        threads,
        npages,
        real,
        failure: std::sync::Mutex::new(None),
        revocations: Arc::new(FAtomicU64::new(0)),
    });
    let handles: Vec<_> = p
        .threads
        .iter()
        .enumerate()
        .map(|(t, ops)| {
            let ops = ops.clone();
            let world = world.clone();
            thread::spawn(move || {
                let mut cx = Ctx {
                    w: &world,
                    t,
                    seq: 0,
                    mine: vec![vec![(0, Vec::new()); npages as usize]; OBJECTS],
                    seen: vec![vec![0; npages as usize]; OBJECTS],
                    copies: Vec::new(),
                    step: 0,
                };
                let trace = std::env::var_os("PAGECORE_PROGRAM_TRACE").is_some();
                for (i, op) in ops.into_iter().enumerate() {
                    if cx.w.failure.lock().unwrap().is_some() {
                        break;
                    }
                    cx.step = i;
                    if trace {
                        eprintln!("TRACE thread {t} step {i}: {op:?}");
                    }
                    cx.step(op);
                }
                Outcome {
                    mine: cx.mine,
                    copies: cx.copies,
                }
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = handles
        .into_iter()
        .map(|h| h.join().expect("a program thread panicked"))
        .collect();
    if std::env::var_os("PAGECORE_PROGRAM_STATS").is_some() {
        eprintln!(
            "STATS {:?} injected: fills {} flushes {} unusual {}",
            pages.stats(),
            inj.fills_injected.load(SeqCst),
            inj.flushes_injected.load(SeqCst),
            inj.unusual_injected.load(SeqCst)
        );
    }
    let failed = world.failure.lock().unwrap().take();
    let result = match failed {
        Some(f) => {
            std::mem::forget(outcomes);
            Err(f)
        }
        None => final_checks(&world, p, outcomes),
    };
    if let Err(f) = result {
        // Leaked, not dropped: a broken state may hang a close, and the panic below must not
        // unwind through pagecore's handles (see `Ctx::fail`).
        std::mem::forget(world);
        std::mem::forget(pages);
        panic!("{f}");
    }
    drop(world);
    let c = pages
        .census()
        .unwrap_or_else(|e| panic!("final census: {e}"));
    if c.free != pages.frames() {
        panic!("after closing everything, frames are left: {c:?}");
    }
}

/// The body of the `programs` fuzz target: the first byte says how many of the following bytes
/// (times four) describe the program ([`Program::from_bytes`]); the rest drive shuttle's
/// scheduler ([`crate::fuzz::BytesScheduler`]).
#[cfg(feature = "shuttle")]
pub fn fuzz(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let split = (n as usize * 4).min(rest.len());
    let (prog, sched) = rest.split_at(split);
    let p = Program::from_bytes(prog);
    shuttle::Runner::new(
        crate::fuzz::BytesScheduler::new(sched),
        crate::shuttle_run::config(),
    )
    .run(move || p.run());
}
