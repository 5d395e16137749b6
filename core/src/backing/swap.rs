//! Swap: a swap area in a real file, divided into page-sized slots, with a slot allocator
//! (seed 001's "on swap" page state).
//!
//! A [`SwapArea`] is shared by the anonymous objects that page out to it. A slot is allocated
//! when a page is first written to swap, rewritten in place while the page keeps it, and freed
//! exactly once when its page is discarded (the object's last handle drops): a second free is an
//! [`Error::Invariant`], never a silent double use. A full area is [`Error::SwapFull`] (the page
//! stays resident; as a write-back error it is `ENOSPC`, one of the expected errors).
//!
//! The allocator is a bitmap under one mutex, searched next-fit from a rotating hint: slot
//! allocation happens once per page-out of a page that never had a slot, far off every hit path.
//! That mutex (`SwapMap`, SPEC.md §5.1) is a leaf but for the locks after it.

use crate::error::{Error, Result};
use crate::sync::{lock, AccessTrack, Mutex, ShareArc};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Index of a slot in a [`SwapArea`].
pub type Slot = u32;

/// The slot bitmap: bit set = slot in use.
#[derive(Debug)]
struct SlotMap {
    bits: Vec<u64>,
    slots: u32,
    used: u32,
    hint: u32,
}

impl SlotMap {
    fn new(slots: u32) -> Self {
        Self {
            bits: vec![0; (slots as usize).div_ceil(64)],
            slots,
            used: 0,
            hint: 0,
        }
    }

    fn alloc(&mut self) -> Option<Slot> {
        if self.used == self.slots {
            return None;
        }
        let words = self.bits.len();
        let start = (self.hint / 64) as usize;
        for k in 0..=words {
            let w = (start + k) % words;
            let free = !self.bits[w];
            if free == 0 {
                continue;
            }
            let s = w as u32 * 64 + free.trailing_zeros();
            if s >= self.slots {
                continue; // the tail bits of the last word are not slots
            }
            self.bits[w] |= 1 << (s % 64);
            self.used += 1;
            self.hint = s;
            return Some(s);
        }
        None
    }

    fn free(&mut self, s: Slot) -> bool {
        if s >= self.slots {
            return false;
        }
        let (w, b) = ((s / 64) as usize, 1u64 << (s % 64));
        if self.bits[w] & b == 0 {
            return false;
        }
        self.bits[w] &= !b;
        self.used -= 1;
        true
    }
}

/// A swap area: a file of `slots` page-sized slots and their allocator.
///
/// ```
/// use pagecore::SwapArea;
///
/// let swap = SwapArea::temporary(4096, 2)?;       // a temp file, removed on drop
/// let a = swap.alloc()?;
/// swap.write(a, &[7u8; 4096]).unwrap();         // positional I/O: io::Result
/// let mut buf = [0u8; 4096];
/// swap.read(a, &mut buf).unwrap();
/// assert_eq!(buf[0], 7);
/// let _b = swap.alloc()?;
/// assert!(matches!(swap.alloc(), Err(pagecore::Error::SwapFull { slots: 2 })));
/// swap.free(a)?;
/// assert!(swap.free(a).is_err());                  // freed exactly once
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Debug)]
pub struct SwapArea {
    file: File,
    path: PathBuf,
    remove_on_drop: bool,
    page_size: usize,
    map: Mutex<SlotMap>,
    /// Access tracking of each slot's bytes (zero-sized but under loom, see
    /// [`crate::sync::AccessTrack`]): a swap-in (`read`) must be ordered after every page-out
    /// (`write`) of its slot. The file does not order them for loom; the core must.
    tracks: SlotTracks,
}

/// The slots' trackers ([`SwapArea`]'s `tracks`); their Debug shows only how many.
struct SlotTracks(Vec<AccessTrack>);

impl std::fmt::Debug for SlotTracks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} slots", self.0.len())
    }
}

impl SwapArea {
    /// A swap area of `slots` slots of `page_size` bytes in the file at `path` (created if
    /// missing; its old content is ignored, slots are written before they are read).
    pub fn create(path: impl AsRef<Path>, page_size: usize, slots: u32) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::Swap(ShareArc::new(e)))?;
        Self::with_file(file, path, false, page_size, slots)
    }

    /// A swap area in a fresh file under the system's temporary directory. On Unix the file is
    /// unlinked as soon as it is open (the open handle keeps its blocks), so nothing is left
    /// behind even if the process is killed; elsewhere it is removed on drop.
    pub fn temporary(page_size: usize, slots: u32) -> Result<Self> {
        use std::hash::{BuildHasher, Hasher};
        // A random name (create_new refuses a clash, which is then an error, not a shared file).
        let n = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let path =
            std::env::temp_dir().join(format!("pagecore-swap-{}-{n:016x}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::Swap(ShareArc::new(e)))?;
        // A swap area with no name cannot leak: a test or a server killed mid-run (a time-out,
        // an abort) used to leave its swap files in the temporary directory.
        #[cfg(unix)]
        let remove_on_drop = std::fs::remove_file(&path).is_err();
        #[cfg(not(unix))]
        let remove_on_drop = true;
        Self::with_file(file, path, remove_on_drop, page_size, slots)
    }

    fn with_file(
        file: File,
        path: PathBuf,
        remove_on_drop: bool,
        page_size: usize,
        slots: u32,
    ) -> Result<Self> {
        if !page_size.is_power_of_two() || !(8..=1 << 30).contains(&page_size) {
            return Err(Error::InvalidPageSize(page_size));
        }
        Ok(Self {
            file,
            path,
            remove_on_drop,
            page_size,
            map: Mutex::new(crate::sync::Level::SwapMap, SlotMap::new(slots)),
            tracks: SlotTracks((0..slots).map(|_| AccessTrack::new()).collect()),
        })
    }

    /// The file's path (for a [`SwapArea::temporary`] on Unix, the name it had before it was
    /// unlinked).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Slot size in bytes.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        lock(&self.map).slots
    }

    /// Slots in use.
    pub fn in_use(&self) -> u32 {
        lock(&self.map).used
    }

    /// Allocates a slot ([`Error::SwapFull`] when none is free).
    pub fn alloc(&self) -> Result<Slot> {
        let mut m = lock(&self.map);
        m.alloc().ok_or(Error::SwapFull { slots: m.slots })
    }

    /// Frees an allocated slot; freeing a free (or unknown) slot is an [`Error::Invariant`].
    pub fn free(&self, slot: Slot) -> Result<()> {
        if lock(&self.map).free(slot) {
            Ok(())
        } else {
            Err(Error::Invariant(format!(
                "swap slot {slot} freed but not in use"
            )))
        }
    }

    fn offset(&self, slot: Slot, len: usize) -> io::Result<u64> {
        if len != self.page_size || slot >= self.slots() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("swap slot {slot} / {len} bytes outside the area"),
            ));
        }
        Ok(slot as u64 * self.page_size as u64)
    }

    /// Writes one page to `slot`.
    pub fn write(&self, slot: Slot, buf: &[u8]) -> io::Result<()> {
        let off = self.offset(slot, buf.len())?;
        // Shared: page-outs of a slot do not conflict with each other, only with a swap-in.
        let _t = self.tracks.0.get(slot as usize).map(AccessTrack::shared);
        crate::backing::accessor::write_all_at(&self.file, buf, off)
    }

    /// Reads one page from `slot` (bytes never written read as zero).
    pub fn read(&self, slot: Slot, buf: &mut [u8]) -> io::Result<()> {
        let off = self.offset(slot, buf.len())?;
        // Exclusive: see `tracks`.
        let _t = self.tracks.0.get(slot as usize).map(AccessTrack::exclusive);
        crate::backing::accessor::read_exact_or_zero_at(&self.file, buf, off)
    }
}

/// The swap area a pool's anonymous objects and its copies of persistent objects share: the one
/// given at build, or a temporary file made on first use. Every object of the pool holds it.
pub(crate) struct PoolSwap {
    area: Mutex<Option<ShareArc<SwapArea>>>,
    page_size: usize,
    slots: u32,
}

impl PoolSwap {
    pub(crate) fn new(area: Option<ShareArc<SwapArea>>, page_size: usize, slots: u32) -> Self {
        Self {
            area: Mutex::new(crate::sync::Level::PoolSwap, area),
            page_size,
            slots,
        }
    }

    /// The area, made (a temporary file of the configured slots) on first use.
    pub(crate) fn get(&self) -> Result<ShareArc<SwapArea>> {
        let mut s = lock(&self.area);
        if let Some(a) = &*s {
            return Ok(a.clone());
        }
        let a = ShareArc::new(SwapArea::temporary(self.page_size, self.slots)?);
        *s = Some(a.clone());
        Ok(a)
    }
}

impl Drop for SwapArea {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Miri runs these a few hundred times slower: a handful of cases there (ci/miri.sh).
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 }))]
        /// Against a set model: allocations are distinct, in range, and fail only when full;
        /// frees succeed exactly once.
        #[test]
        fn slot_map_matches_a_set(slots in 1u32..200, ops in proptest::collection::vec(any::<(bool, u8)>(), 0..400)) {
            let mut m = SlotMap::new(slots);
            let mut model = std::collections::BTreeSet::new();
            for (alloc, pick) in ops {
                if alloc {
                    match m.alloc() {
                        Some(s) => {
                            prop_assert!(s < slots);
                            prop_assert!(model.insert(s), "slot {} handed out twice", s);
                        }
                        None => prop_assert_eq!(model.len() as u32, slots),
                    }
                } else {
                    let s = pick as u32 % (slots + 1);
                    prop_assert_eq!(m.free(s), model.remove(&s));
                }
                prop_assert_eq!(m.used as usize, model.len());
            }
        }
    }
}
