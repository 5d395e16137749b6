//! The census: the frame-state snapshot [`Census`] and the check of conservation (I1) and
//! uniqueness (I2) under the lists lock that produces it.

use super::*;

/// Snapshot of frame states taken under the lists lock (see [`crate::Pages::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Frames on the free list.
    pub free: u32,
    /// Frames being filled (or handed from a reclaimer to a filler).
    pub filling: u32,
    /// Frames backing a page, linked in the PageQueue.
    pub resident: u32,
    /// Frames being reclaimed or closed.
    pub reclaiming: u32,
    /// Resident frames with a read pin, a holder or a writer (through their owner's entry or a
    /// proxy; the pins proxies hold on their owner do not count).
    pub pinned: u32,
    /// Resident frames whose bytes are not yet written back.
    pub dirty: u32,
    /// Resident frames shared copy-on-write: mapped by at least one proxy besides their owner.
    pub shared: u32,
    /// Copy-on-write proxies mapping resident frames (each object page that maps a frame it
    /// does not own).
    pub proxies: u32,
    /// Threads waiting for a frame: faults (or breaks) that found every frame pinned and sleep
    /// until one is unpinned, freed or put back, and awaited faults
    /// ([`PageMapper::read_async`](crate::PageMapper::read_async)) doing the same without a
    /// thread (not part of [`Census::total`]).
    pub waiting_for_frames: u32,
}

impl Census {
    /// Sum of the four states; equals the pool size (I1).
    pub fn total(&self) -> u32 {
        self.free + self.filling + self.resident + self.reclaiming
    }
}

impl PagesShared {
    // ----- inspection ------------------------------------------------------------------------

    /// Checks I1 (conservation) and I2 (uniqueness) under the lists lock and returns the census.
    pub(crate) fn check_invariants(&self) -> std::result::Result<Census, String> {
        let mut l = lock(&self.lists);
        l.queue.check()?;
        let n = self.frame_count();
        let mut c = Census::default();
        let mut on_free = vec![false; n as usize];
        for &f in &l.free {
            if f >= n || std::mem::replace(&mut on_free[f as usize], true) {
                return Err(format!("free list holds frame {f} twice or out of range"));
            }
        }
        let mut owners = std::collections::HashSet::new();
        for f in 0..n {
            let raw = self.tags[f as usize].load(Ordering::Relaxed);
            let tag = FrameWord::from_raw(raw)
                .map_err(|e| format!("frame {f}: {e}"))?
                .tag();
            match tag {
                Tag::Free => c.free += 1,
                Tag::Filling => c.filling += 1,
                Tag::Resident => c.resident += 1,
                Tag::Reclaiming => c.reclaiming += 1,
            }
            if (tag == Tag::Free) != on_free[f as usize] {
                return Err(format!(
                    "frame {f} is {tag:?} but on_free_list={}",
                    on_free[f as usize]
                ));
            }
            let queued = l.queue.contains(f);
            if (tag == Tag::Resident) != queued {
                return Err(format!("frame {f} is {tag:?} but queued={queued}"));
            }
            if tag != Tag::Resident {
                continue;
            }
            // SAFETY: we hold the lists lock and saw the frame Resident; it cannot leave Resident
            // (and its owner cannot change) until we release the lock.
            let e = unsafe {
                self.with_owner(f, |o| {
                    let o = o.ok_or_else(|| format!("resident frame {f} has no owner"))?;
                    let e = EntryWord(
                        o.slot()
                            .ok_or_else(|| format!("resident frame {f}: owner page has no entry"))?
                            .load(Ordering::Acquire),
                    );
                    EntryWord::from_raw(e.raw())
                        .map_err(|err| format!("page {}: {err}", o.page))?;
                    if e.frame() != Some(f) || e.reclaiming() {
                        return Err(format!("resident frame {f}: page {} maps to {e:?}", o.page));
                    }
                    if !owners.insert((Arc::as_ptr(&o.mapper) as usize, o.page)) {
                        return Err(format!("page {} backed by two frames", o.page));
                    }
                    Ok(e)
                })
            }?;
            // The proxies (I2 for copies): each names a page whose entry names this frame with
            // COW, not RECLAIMING, and holds one of the owner entry's pins.
            let proxies: Vec<Owner> = self.with_proxies(&mut l, f, |p| p.iter().cloned().collect());
            let mut proxy_pinned = false;
            for p in &proxies {
                let pe = EntryWord(
                    p.slot()
                        .ok_or_else(|| format!("frame {f}: proxy page {} has no entry", p.page))?
                        .load(Ordering::Acquire),
                );
                EntryWord::from_raw(pe.raw())
                    .map_err(|err| format!("proxy page {}: {err}", p.page))?;
                if pe.frame() != Some(f) || !pe.cow() || pe.reclaiming() {
                    return Err(format!("frame {f}: proxy page {} maps to {pe:?}", p.page));
                }
                proxy_pinned |= !pe.unpinned();
            }
            let n = proxies.len() as u64;
            if e.pins() < n {
                return Err(format!("frame {f}: {n} proxies but the owner entry {e:?}"));
            }
            if e.pins() > n || e.held() || e.writer() || proxy_pinned {
                c.pinned += 1;
            }
            if n > 0 {
                c.shared += 1;
                c.proxies += n as u32;
            }
            if e.dirty() {
                c.dirty += 1;
            }
            drop(proxies);
        }
        if c.free as usize != l.free.len() || c.resident as usize != l.queue.len() {
            return Err(format!(
                "census {c:?} disagrees with lists (free {}, queued {})",
                l.free.len(),
                l.queue.len()
            ));
        }
        if c.total() != n {
            return Err(format!("census {c:?} does not add up to {n} frames"));
        }
        c.waiting_for_frames = u32::try_from(l.waiting_obtainers)
            .map_err(|_| format!("{} threads waiting for a frame", l.waiting_obtainers))?;
        Ok(c)
    }
}
