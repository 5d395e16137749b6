//! Packing of the 64-bit state words: one small typed helper ([`Field`]) and the two words built
//! on it, the per-page [`EntryWord`] (AccessMap entry: frame and pin state) and the per-frame
//! [`FrameWord`] (lifecycle tag).
//!
//! Every field is a named constant; the invariants each field carries are written on it, and
//! SPEC.md's layout tables are generated from the same numbers (see `SPEC.md#state-words`).
//! `pack`/`unpack` are round-tripped by proptest (`tests` below) and by the `codec` fuzz target.

mod access;
mod entry;
mod frame;
#[cfg(test)]
mod tests;

pub use access::AccessWord;
pub use entry::EntryWord;
pub use frame::{FrameWord, InvalidWord, Tag};

use std::fmt;

/// A bit field of a `u64` word: `bits` bits starting at bit `shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    shift: u32,
    bits: u32,
}

impl Field {
    /// The field of `bits` bits at bit 0.
    pub const fn first(bits: u32) -> Self {
        Self { shift: 0, bits }
    }

    /// The field of `bits` bits right above `self`.
    pub const fn next(self, bits: u32) -> Self {
        Self {
            shift: self.shift + self.bits,
            bits,
        }
    }

    /// Lowest bit of the field.
    pub const fn shift(self) -> u32 {
        self.shift
    }

    /// Width of the field in bits.
    pub const fn bits(self) -> u32 {
        self.bits
    }

    /// Largest value the field holds.
    pub const fn max(self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// The field's bits within the word.
    pub const fn mask(self) -> u64 {
        self.max() << self.shift
    }

    /// The value `1` in this field (for single-bit flags and counters).
    pub const fn one(self) -> u64 {
        1u64 << self.shift
    }

    /// Reads the field out of `word`.
    #[inline(always)]
    pub const fn get(self, word: u64) -> u64 {
        (word >> self.shift) & self.max()
    }

    /// Writes `value` into the field of `word`. Values wider than the field are truncated; callers
    /// keep values in range (each use site states why), and the proptests check the round trip.
    #[inline(always)]
    pub const fn set(self, word: u64, value: u64) -> u64 {
        (word & !self.mask()) | ((value & self.max()) << self.shift)
    }

    /// Whether a single-bit flag is set.
    #[inline(always)]
    pub const fn is_set(self, word: u64) -> bool {
        word & self.mask() != 0
    }
}

/// Whether `fields`, in order, tile bits `0..64` exactly: each starts where the one before
/// ends, none is empty, and the last ends at bit 64 (no overlap, no gap, nothing beyond the word).
const fn tiles(fields: &[(&str, Field)]) -> bool {
    let mut at = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].1.shift != at || fields[i].1.bits == 0 {
            return false;
        }
        at += fields[i].1.bits;
        i += 1;
    }
    at == 64
}

// Each word's fields fit its 64 bits without overlap or gap, checked at compile time.
const _: () = assert!(tiles(FrameWord::FIELDS));
const _: () = assert!(tiles(EntryWord::FIELDS));
const _: () = assert!(tiles(AccessWord::FIELDS));
// Two bits per inline client slot fill the `HOLD` field.
const _: () = assert!(EntryWord::HOLD.bits() == 2 * EntryWord::INLINE_CLIENTS);
const _: () = assert!(EntryWord::HOLD_WRITE_BITS == 0xAA << 48);

/// Checks the codecs on one raw word: `from_raw` either rejects it for a stated reason or accepts
/// it, and then every field reads back through the typed accessors, re-packing the fields gives
/// the same word, and the word's invariants hold. Used by the proptests below and by the `codec`
/// fuzz target (`fuzz/fuzz_targets/codec.rs`), whose committed corpus also replays as a test.
pub fn check_codecs(raw: u64) -> Result<(), String> {
    match FrameWord::from_raw(raw) {
        Ok(w) if FrameWord::new(w.tag()).raw() != raw => {
            return Err(format!("frame word {raw:#x} re-packs differently"));
        }
        Ok(_) => {}
        Err(_) if FrameWord::RESERVED.get(raw) == 0 => {
            return Err(format!("frame word {raw:#x} wrongly rejected"));
        }
        Err(_) => {}
    }
    if let Ok(e) = EntryWord::from_raw(raw) {
        let Some(f) = e.frame() else {
            return if raw == 0 {
                Ok(())
            } else {
                Err(format!("entry {raw:#x} accepted without a frame"))
            };
        };
        let rebuilt = EntryWord::resident(f, e.pins())
            .with_freq(e.freq())
            .with(EntryWord::COW, e.cow())
            .with_hold(e.hold())
            .with(EntryWord::WRITER, e.writer())
            .with(EntryWord::DIRTY, e.dirty())
            .with(EntryWord::WAIT_PAGE, EntryWord::WAIT_PAGE.is_set(raw))
            .with(EntryWord::WAIT_POOL, EntryWord::WAIT_POOL.is_set(raw))
            .with(EntryWord::RECLAIMING, e.reclaiming())
            .with(EntryWord::ARB_SLOW, e.arb_slow())
            .with(EntryWord::EXT_READ, e.ext_read())
            .with(EntryWord::EXT_WRITE, e.ext_write());
        if rebuilt.raw() != raw {
            return Err(format!("entry {raw:#x} re-packs as {:#x}", rebuilt.raw()));
        }
        let writers = e.writer() as u32
            + (e.hold() & EntryWord::HOLD_WRITES).count_ones()
            + e.ext_write() as u32;
        if writers > 1 || (writers == 1 && (e.pins() != 0 || e.ext_read())) {
            return Err(format!("accepted {e:?}: a writer beside other access"));
        }
        if writers == 1 && e.hold() != 0 && (e.hold() & EntryWord::HOLD_WRITES) == 0 {
            return Err(format!("accepted {e:?}: a writer beside inline readers"));
        }
        if e.reclaiming() && !e.takeable_but_reclaiming() {
            return Err(format!("accepted {e:?}: pinned or held while reclaiming"));
        }
        if e.cow() && writers != 0 {
            return Err(format!(
                "accepted {e:?}: a writer on a shared copy-on-write frame"
            ));
        }
    }
    match AccessWord::from_raw(raw) {
        Ok(w) => {
            let rebuilt = match w.record() {
                Some(id) => AccessWord::record_of(id),
                None => {
                    let waiters: Vec<_> = w.waiters().collect();
                    AccessWord::inline(&waiters, w.asked())
                        .ok_or_else(|| format!("access word {raw:#x} accepted but not inline"))?
                }
            };
            if rebuilt.raw() != raw {
                return Err(format!(
                    "access word {raw:#x} re-packs as {:#x}",
                    rebuilt.raw()
                ));
            }
        }
        Err(InvalidWord::Reserved(_))
            if !AccessWord::OUT_OF_LINE.is_set(raw) && AccessWord::RESERVED.get(raw) == 0 =>
        {
            return Err(format!("access word {raw:#x} wrongly rejected as reserved"));
        }
        Err(_) => {}
    }
    Ok(())
}
