//! The checks after the run: the census, sync, arbitration, every page's last write, the copies.

use super::*;

/// Returns the formatted message as an `Err` (the final checks fail without unwinding: see
/// `Ctx::fail`).
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(format!($($t)*))
    };
}

pub(super) fn settled(pages: &Pages, when: &str) -> Result<(), String> {
    let c = pages
        .census()
        .map_err(|e| format!("{when}: census (I1/I2): {e}"))?;
    if c.total() != pages.frames() || c.pinned != 0 || c.waiting_for_frames != 0 {
        bail!("{when}: a pin or a waiter was left behind, or frames lost: {c:?}");
    }
    Ok(())
}

/// A fault that found every frame holding an anonymous dirty page the full swap area cannot take.
pub(super) fn swap_full(e: &Error, p: &Program) -> bool {
    p.swap_slots < 16
        && match e {
            Error::SwapFull { .. } => true,
            Error::WriteBack { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        }
}

pub(super) fn final_checks(w: &World, p: &Program, outcomes: Vec<Outcome>) -> Result<(), String> {
    settled(&w.pages, "after the run")?;
    w.inj.on.store(false, SeqCst);
    let (threads, npages) = (p.threads.len(), p.pages);
    // Each page's expected tag: its writer's last write (or the one that may have landed).
    let expect = |o: usize, pg: u64| &outcomes[writer_of(pg, threads)].mine[o][pg as usize];
    for o in 0..OBJECTS {
        let m = w.obj(o);
        let mut last = Ok(());
        for _ in 0..3 {
            last = m.sync();
            if last.is_ok() {
                break;
            }
        }
        if let Err(e) = last {
            bail!("object {o}: sync still fails with injection off: {e:?}");
        }
        let a = m
            .arbitration()
            .map_err(|e| format!("object {o}: arbitration invariant violated: {e}"))?;
        if (
            a.held_pages,
            a.waiting,
            a.records,
            a.record_refs,
            a.error_pages,
        ) != (0, 0, 0, 0, 0)
            || a.records_created != a.records_freed
        {
            bail!("object {o}: arbitration state left behind after the run and a sync: {a:?}");
        }
        for pg in 0..npages {
            let (c, maybe) = expect(o, pg).clone();
            let v = match m.read(pg) {
                Ok(g) => tag_of(&g).map_err(|e| format!("object {o} page {pg}: {e}"))?,
                Err(e) if swap_full(&e, p) => continue,
                Err(e) => bail!("object {o} page {pg}: final read failed: {e:?} ({e})"),
            };
            if v != c && !maybe.contains(&v) {
                bail!("object {o} page {pg}: holds {v:#x}, its writer last wrote {c:#x} (maybe {maybe:x?})");
            }
            let stored = match o {
                0 => w.mem.stored(pg).map_or(Ok(0), |b| tag_of(&b)),
                2 => Ok(w.inj.get(pg)),
                _ => Ok(v),
            };
            if stored != Ok(v) {
                bail!(
                    "object {o} page {pg}: the store holds {stored:x?} after sync, the page {v:#x}"
                );
            }
        }
    }
    for (t, out) in outcomes.into_iter().enumerate() {
        for (i, c) in out.copies.into_iter().enumerate() {
            let (map, base, exp) = (c.map, c.base, c.exp);
            let reopened = w.gens[base].load(SeqCst) != c.gen;
            if let Err(e) = map.arbitration() {
                bail!("thread {t} copy {i}: arbitration invariant violated: {e}");
            }
            for pg in 0..npages {
                let v = match map.read(pg) {
                    Ok(g) => tag_of(&g).map_err(|e| format!("copy page {pg}: {e}"))?,
                    Err(e) if swap_full(&e, p) => continue,
                    Err(e) => bail!(
                        "thread {t} copy {i} (of {base}) page {pg}: final read failed: {e:?} ({e})"
                    ),
                };
                let writer = writer_of(pg, threads) as u64 + 1;
                if !exp[pg as usize].admits(v, writer, reopened) {
                    bail!(
                        "thread {t} copy {i} (of {base}) page {pg}: holds {v:#x}, expected {:x?} \
                         (reopened since: {reopened})",
                        exp[pg as usize]
                    );
                }
            }
            drop(map);
        }
    }
    settled(&w.pages, "after the final checks")?;
    for o in 0..OBJECTS {
        let h = w.obj(o);
        let probe = h.clone();
        if let Err(e) = h.close() {
            // A write-back failure a reclaim recorded earlier is reported once, by the close
            // that closes the object for good (a full swap area, for the anonymous one).
            if !probe.is_closed() || !swap_full(&e, p) {
                bail!("object {o}: close with injection off failed: {e:?}");
            }
        }
        drop(probe);
    }
    Ok(())
}
