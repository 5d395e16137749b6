//! Packing of the 64-bit state words: one small typed helper ([`Field`]) and the two words built
//! on it, the per-page [`EntryWord`] (AccessMap entry: frame and pin state) and the per-frame
//! [`FrameWord`] (lifecycle tag).
//!
//! Every field is a named constant; the invariants each field carries are written on it, and
//! SPEC.md's layout tables are generated from the same numbers (see `SPEC.md#state-words`).
//! `pack`/`unpack` are round-tripped by proptest (`tests` below) and by the `codec` fuzz target.

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

/// The lifecycle state of a frame (the `TAG` field of [`FrameWord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// On the free list; backs no page.
    Free = 0,
    /// Taken by one mapper to be filled (or by a reclaimer, to be handed over); in no map entry,
    /// in no queue; its bytes and owner are its holder's alone.
    Filling = 1,
    /// Backs the page named by its owner, whose AccessMap entry names this frame (not
    /// `RECLAIMING`); linked in the PageQueue. Pins live in that entry.
    Resident = 2,
    /// Taken by a reclaimer (or by `close`), which alone may write it back and clear its owner's
    /// entry; the entry names this frame with `RECLAIMING` set until cleared.
    Reclaiming = 3,
}

impl Tag {
    /// All tags, in encoding order.
    pub const ALL: [Tag; 4] = [Tag::Free, Tag::Filling, Tag::Resident, Tag::Reclaiming];

    fn from_bits(v: u64) -> Option<Tag> {
        Tag::ALL.get(v as usize).copied()
    }
}

/// Why a raw word was rejected by `from_raw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWord {
    /// The tag bits name no [`Tag`].
    #[error("frame word {0:#018x}: unknown tag")]
    UnknownTag(u64),
    /// Bits that no field uses are set.
    #[error("word {0:#018x}: reserved bits set")]
    Reserved(u64),
    /// The fields contradict one of the word's invariants.
    #[error("entry word {0:#018x}: fields contradict the entry's invariants")]
    Inconsistent(u64),
}

/// The per-frame lifecycle word (`AtomicU64` per frame).
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..2 | `TAG` | the [`Tag`]. Changes only under the lists lock, except `Reclaiming -> Filling` by the frame's exclusive holder. |
/// | 2..64 | reserved | zero. |
///
/// Everything a hit touches (pins, writer, dirty) lives in the page's [`EntryWord`] instead, so a
/// hit reads one state cache line, not two.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FrameWord(pub(crate) u64);

impl FrameWord {
    /// Lifecycle tag.
    pub const TAG: Field = Field::first(2);
    /// Reserved, zero.
    pub const RESERVED: Field = Self::TAG.next(62);

    /// A word in state `tag`.
    #[inline(always)]
    pub const fn new(tag: Tag) -> Self {
        Self(Self::TAG.set(0, tag as u64))
    }

    /// Decodes and validates a raw word.
    pub fn from_raw(raw: u64) -> Result<Self, InvalidWord> {
        if Self::RESERVED.get(raw) != 0 {
            return Err(InvalidWord::Reserved(raw));
        }
        Tag::from_bits(Self::TAG.get(raw)).ok_or(InvalidWord::UnknownTag(raw))?;
        Ok(Self(raw))
    }

    /// The raw bits.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The tag (every 2-bit value is a tag).
    #[inline(always)]
    pub fn tag(self) -> Tag {
        Tag::from_bits(Self::TAG.get(self.0)).unwrap_or(Tag::Filling)
    }
}

/// The per-page AccessMap entry: which frame backs the page, and the page's pin state. This is
/// the word a hit CASes (*reserve*) and a reclaimer CASes (*take*): both on one word, so exactly
/// one of them wins (S1).
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..32 | `FRAME1` | frame index + 1; `0` means no frame, and then the whole word is `0` (`EMPTY`). |
/// | 32..56 | `PINS` | live read pins (read guards, `sync` write-backs, pre-pins for faults that joined the fill). |
/// | 56 | `WRITER` | a write guard holds the page; then `PINS == 0`. |
/// | 57 | `DIRTY` | the frame's bytes differ from the backing store. Set with `WRITER`; cleared only after a successful write-back by a party that excludes writers. |
/// | 58 | `WAIT_PAGE` | someone is parked on this page's bucket (keyed by frame); whoever clears it wakes the bucket. |
/// | 59 | `WAIT_POOL` | an `obtain` is parked waiting for this page to become unpinned; the last unpinner clears it and wakes the pool. |
/// | 60 | `RECLAIMING` | the frame is being taken from this page (written back, then the entry cleared); then `PINS == 0` and no `WRITER`, and no pin can be added. |
/// | 61..64 | reserved | zero. |
///
/// Finding an entry is *tentative* until the CAS that pins it succeeds; no generation is needed:
/// the CAS succeeds only on this page's own entry naming this frame, so it can only ever pin this
/// page's bytes (a page refilled into the same frame is still this page).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryWord(pub(crate) u64);

impl EntryWord {
    /// Frame index plus one.
    pub const FRAME1: Field = Field::first(32);
    /// Read pins.
    pub const PINS: Field = Self::FRAME1.next(24);
    /// Write guard held.
    pub const WRITER: Field = Self::PINS.next(1);
    /// Bytes differ from the backing store.
    pub const DIRTY: Field = Self::WRITER.next(1);
    /// A waiter is parked on the page bucket.
    pub const WAIT_PAGE: Field = Self::DIRTY.next(1);
    /// An obtainer is parked on the pool parker.
    pub const WAIT_POOL: Field = Self::WAIT_PAGE.next(1);
    /// The frame is being reclaimed from this page.
    pub const RECLAIMING: Field = Self::WAIT_POOL.next(1);
    /// Reserved, zero.
    pub const RESERVED: Field = Self::RECLAIMING.next(3);

    /// Both waiter flags.
    pub const WAIT_BITS: u64 = Self::WAIT_PAGE.mask() | Self::WAIT_POOL.mask();
    /// No frame.
    pub const EMPTY: EntryWord = EntryWord(0);
    /// Largest frame index an entry can name.
    pub const MAX_FRAME: u32 = u32::MAX - 1;

    /// A resident entry for `frame` with `pins` read pins (`frame <= MAX_FRAME`, which `Pages`
    /// enforces at build; `pins <= PINS.max()`, clamped by callers).
    #[inline(always)]
    pub const fn resident(frame: u32, pins: u64) -> Self {
        Self(Self::PINS.set(Self::FRAME1.set(0, frame as u64 + 1), pins))
    }

    /// Decodes and validates a raw word.
    pub fn from_raw(raw: u64) -> Result<Self, InvalidWord> {
        if Self::RESERVED.get(raw) != 0 {
            return Err(InvalidWord::Reserved(raw));
        }
        let e = Self(raw);
        let ok = if Self::FRAME1.get(raw) == 0 {
            raw == 0
        } else {
            // A writer excludes pins; RECLAIMING excludes both.
            let writer_ok = !e.writer() || e.pins() == 0;
            let reclaim_ok = !e.reclaiming() || e.unpinned();
            writer_ok && reclaim_ok
        };
        if ok {
            Ok(e)
        } else {
            Err(InvalidWord::Inconsistent(raw))
        }
    }

    /// The raw bits.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The frame, or `None` for an empty entry.
    #[inline(always)]
    pub const fn frame(self) -> Option<u32> {
        match Self::FRAME1.get(self.0) {
            0 => None,
            f1 => Some((f1 - 1) as u32),
        }
    }

    /// Read pins.
    #[inline(always)]
    pub const fn pins(self) -> u64 {
        Self::PINS.get(self.0)
    }

    /// Write guard held.
    #[inline(always)]
    pub const fn writer(self) -> bool {
        Self::WRITER.is_set(self.0)
    }

    /// Dirty.
    #[inline(always)]
    pub const fn dirty(self) -> bool {
        Self::DIRTY.is_set(self.0)
    }

    /// Being reclaimed.
    #[inline(always)]
    pub const fn reclaiming(self) -> bool {
        Self::RECLAIMING.is_set(self.0)
    }

    /// No read pin and no writer.
    #[inline(always)]
    pub const fn unpinned(self) -> bool {
        self.0 & (Self::PINS.mask() | Self::WRITER.mask()) == 0
    }

    /// Same word with the waiter flags cleared (for "did it change?" comparisons).
    #[inline(always)]
    pub const fn without_waiters(self) -> u64 {
        self.0 & !Self::WAIT_BITS
    }

    /// With `flag` set or cleared.
    #[inline(always)]
    pub const fn with(self, flag: Field, on: bool) -> Self {
        Self(flag.set(self.0, on as u64))
    }

    /// With `PINS` replaced.
    #[inline(always)]
    pub const fn with_pins(self, pins: u64) -> Self {
        Self(Self::PINS.set(self.0, pins))
    }
}

impl fmt::Debug for EntryWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryWord")
            .field("frame", &self.frame())
            .field("pins", &self.pins())
            .field("writer", &self.writer())
            .field("dirty", &self.dirty())
            .field("reclaiming", &self.reclaiming())
            .field("wait_page", &Self::WAIT_PAGE.is_set(self.0))
            .field("wait_pool", &Self::WAIT_POOL.is_set(self.0))
            .finish()
    }
}

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
    match EntryWord::from_raw(raw) {
        Ok(e) => {
            let Some(f) = e.frame() else {
                return if raw == 0 {
                    Ok(())
                } else {
                    Err(format!("entry {raw:#x} accepted without a frame"))
                };
            };
            let rebuilt = EntryWord::resident(f, e.pins())
                .with(EntryWord::WRITER, e.writer())
                .with(EntryWord::DIRTY, e.dirty())
                .with(EntryWord::WAIT_PAGE, EntryWord::WAIT_PAGE.is_set(raw))
                .with(EntryWord::WAIT_POOL, EntryWord::WAIT_POOL.is_set(raw))
                .with(EntryWord::RECLAIMING, e.reclaiming());
            if rebuilt.raw() != raw {
                return Err(format!("entry {raw:#x} re-packs as {:#x}", rebuilt.raw()));
            }
            if e.writer() && e.pins() != 0 {
                return Err(format!("accepted {e:?}: writer with pins"));
            }
            if e.reclaiming() && !e.unpinned() {
                return Err(format!("accepted {e:?}: pinned while reclaiming"));
            }
        }
        Err(InvalidWord::Reserved(_)) if EntryWord::RESERVED.get(raw) == 0 => {
            return Err(format!("entry {raw:#x} wrongly rejected as reserved"));
        }
        Err(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_tile_the_word_without_overlap() {
        let fields = [
            EntryWord::FRAME1,
            EntryWord::PINS,
            EntryWord::WRITER,
            EntryWord::DIRTY,
            EntryWord::WAIT_PAGE,
            EntryWord::WAIT_POOL,
            EntryWord::RECLAIMING,
            EntryWord::RESERVED,
        ];
        let mut seen = 0u64;
        for f in fields {
            assert_eq!(seen & f.mask(), 0, "{f:?} overlaps");
            seen |= f.mask();
        }
        assert_eq!(seen, u64::MAX);
        assert_eq!(FrameWord::TAG.mask() | FrameWord::RESERVED.mask(), u64::MAX);
    }

    #[test]
    fn every_tag_round_trips() {
        for t in Tag::ALL {
            assert_eq!(
                FrameWord::from_raw(FrameWord::new(t).raw()).map(|w| w.tag()),
                Ok(t)
            );
        }
    }

    proptest! {
        #[test]
        fn entry_word_round_trips(frame in 0u32..=EntryWord::MAX_FRAME,
                                  pins in 0u64..=EntryWord::PINS.max(), writer: bool,
                                  dirty: bool, wp: bool, wq: bool, rec: bool) {
            let e = EntryWord::resident(frame, pins).with(EntryWord::WRITER, writer)
                .with(EntryWord::DIRTY, dirty).with(EntryWord::WAIT_PAGE, wp)
                .with(EntryWord::WAIT_POOL, wq).with(EntryWord::RECLAIMING, rec);
            prop_assert_eq!(e.frame(), Some(frame));
            prop_assert_eq!(e.pins(), pins);
            prop_assert_eq!(e.writer(), writer);
            prop_assert_eq!(e.dirty(), dirty);
            prop_assert_eq!(e.reclaiming(), rec);
            prop_assert_eq!(EntryWord::WAIT_PAGE.is_set(e.raw()), wp);
            prop_assert_eq!(EntryWord::WAIT_POOL.is_set(e.raw()), wq);
            prop_assert_eq!(e.unpinned(), pins == 0 && !writer);
            let valid = !(writer && pins != 0) && !(rec && (pins != 0 || writer));
            prop_assert_eq!(EntryWord::from_raw(e.raw()).is_ok(), valid);
        }

        #[test]
        fn codecs_hold_on_any_raw_word(raw: u64) {
            prop_assert_eq!(check_codecs(raw), Ok(()));
        }

        #[test]
        fn entry_word_rejects_bits_without_frame(raw in 1u64..) {
            let raw = raw & !EntryWord::FRAME1.mask();
            prop_assume!(raw != 0);
            prop_assert!(EntryWord::from_raw(raw).is_err());
        }
    }
}
