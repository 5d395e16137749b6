//! Packing of the 64-bit state words: one small typed helper ([`Field`]) and the two words built
//! on it, the per-frame [`FrameWord`] and the per-page [`EntryWord`].
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
    /// On the free list; backs no page; `pins == 0`, no flags.
    Free = 0,
    /// Taken by one mapper to be filled (or by the reclaimer to be handed over); in no map, in no
    /// queue; its bytes and owner are the holder's alone.
    Filling = 1,
    /// Backs the page named by its owner; recorded in that page's AccessMap entry with this
    /// generation; linked in the PageQueue. Guards pin it here.
    Resident = 2,
    /// Taken from the queue by a reclaimer (or by `close`), which alone may flush it and remove it
    /// from its owner's AccessMap; `pins == 0`, no writer.
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
    #[error("frame word {0:#018x}: pins, writer or dirty set in a state that forbids them")]
    Inconsistent(u64),
}

/// The per-frame state word (`AtomicU64` in each frame).
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..24 | `PINS` | number of live read pins (read guards, write-backs by `sync`, pre-pins for fill waiters). Non-zero only in `Resident`. |
/// | 24 | `WRITER` | a write guard holds the frame; only in `Resident`, and then `PINS == 0`. |
/// | 25 | `DIRTY` | the bytes differ from the backing store; only in `Resident` or `Reclaiming`. Set when a write guard is taken; cleared only after a successful write-back, by the party that excluded writers while writing back. |
/// | 26 | `WAIT_PAGE` | somebody is parked on this frame's page-parker bucket; whoever clears it must wake the bucket. |
/// | 27 | `WAIT_POOL` | an `obtain` is parked waiting for this frame to become unpinned; the last unpinner clears it and wakes the pool parker. |
/// | 28..31 | `TAG` | the [`Tag`]. |
/// | 31 | reserved | zero. |
/// | 32..64 | `GEN` | generation: incremented each time the frame stops backing a page (reclaimed or freed). An AccessMap entry `(frame, gen)` is valid iff the frame is `Resident` with that generation (ABA protection for `reserve`). |
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameWord(pub(crate) u64);

impl FrameWord {
    /// Read pins.
    pub const PINS: Field = Field::first(24);
    /// Write guard held.
    pub const WRITER: Field = Self::PINS.next(1);
    /// Bytes differ from the backing store.
    pub const DIRTY: Field = Self::WRITER.next(1);
    /// A waiter is parked on the page bucket.
    pub const WAIT_PAGE: Field = Self::DIRTY.next(1);
    /// An obtainer is parked on the pool parker.
    pub const WAIT_POOL: Field = Self::WAIT_PAGE.next(1);
    /// Lifecycle tag.
    pub const TAG: Field = Self::WAIT_POOL.next(3);
    /// Reserved, zero.
    pub const RESERVED: Field = Self::TAG.next(1);
    /// Generation.
    pub const GEN: Field = Self::RESERVED.next(32);

    /// Both waiter flags.
    pub const WAIT_BITS: u64 = Self::WAIT_PAGE.mask() | Self::WAIT_POOL.mask();

    /// A word in state `tag` with generation `gen` and nothing else set.
    #[inline(always)]
    pub const fn new(tag: Tag, gen: u32) -> Self {
        Self(Self::GEN.set(Self::TAG.set(0, tag as u64), gen as u64))
    }

    /// Decodes and validates a raw word.
    pub fn from_raw(raw: u64) -> Result<Self, InvalidWord> {
        if Self::RESERVED.get(raw) != 0 {
            return Err(InvalidWord::Reserved(raw));
        }
        let tag = Tag::from_bits(Self::TAG.get(raw)).ok_or(InvalidWord::UnknownTag(raw))?;
        let w = Self(raw);
        let ok = match tag {
            Tag::Resident => !(w.writer() && w.pins() != 0),
            Tag::Reclaiming => w.pins() == 0 && !w.writer(),
            Tag::Free | Tag::Filling => w.pins() == 0 && !w.writer() && !w.dirty(),
        };
        if ok {
            Ok(w)
        } else {
            Err(InvalidWord::Inconsistent(raw))
        }
    }

    /// The raw bits.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The tag. Words are only ever built from valid tags, so the fallback is unreachable; it
    /// maps to `Filling`, the state nobody but its holder touches.
    #[inline(always)]
    pub fn tag(self) -> Tag {
        Tag::from_bits(Self::TAG.get(self.0)).unwrap_or(Tag::Filling)
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

    /// Generation.
    #[inline(always)]
    pub const fn gen(self) -> u32 {
        Self::GEN.get(self.0) as u32
    }

    /// No read pin and no writer: the frame may be taken by a reclaimer.
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

    /// With the tag replaced.
    #[inline(always)]
    pub const fn with_tag(self, tag: Tag) -> Self {
        Self(Self::TAG.set(self.0, tag as u64))
    }

    /// With `PINS` replaced (`pins <= PINS.max()`, checked by callers).
    #[inline(always)]
    pub const fn with_pins(self, pins: u64) -> Self {
        Self(Self::PINS.set(self.0, pins))
    }
}

impl fmt::Debug for FrameWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameWord")
            .field("tag", &self.tag())
            .field("gen", &self.gen())
            .field("pins", &self.pins())
            .field("writer", &self.writer())
            .field("dirty", &self.dirty())
            .field("wait_page", &Self::WAIT_PAGE.is_set(self.0))
            .field("wait_pool", &Self::WAIT_POOL.is_set(self.0))
            .finish()
    }
}

/// The per-page AccessMap entry: which frame backs the page, and at which generation.
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..32 | `FRAME1` | frame index + 1; `0` means "no frame" (the whole word is then `0`). |
/// | 32..64 | `GEN` | the frame's generation when the entry was recorded. |
///
/// Finding an entry is *tentative*: it is honoured only if the frame is still `Resident` at
/// `GEN` when it is pinned (`reserve`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EntryWord(pub(crate) u64);

impl EntryWord {
    /// Frame index plus one.
    pub const FRAME1: Field = Field::first(32);
    /// Generation of the frame when recorded.
    pub const GEN: Field = Self::FRAME1.next(32);
    /// No frame.
    pub const EMPTY: EntryWord = EntryWord(0);
    /// Largest frame index an entry can name.
    pub const MAX_FRAME: u32 = u32::MAX - 1;

    /// The entry for `frame` at `gen` (`frame <= MAX_FRAME`, which `Pages` enforces at build).
    #[inline(always)]
    pub const fn new(frame: u32, gen: u32) -> Self {
        Self(Self::GEN.set(Self::FRAME1.set(0, frame as u64 + 1), gen as u64))
    }

    /// Decodes and validates a raw word.
    pub fn from_raw(raw: u64) -> Result<Self, InvalidWord> {
        if Self::FRAME1.get(raw) == 0 && raw != 0 {
            return Err(InvalidWord::Reserved(raw));
        }
        Ok(Self(raw))
    }

    /// The raw bits.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// `(frame, gen)`, or `None` for an empty entry.
    #[inline(always)]
    pub const fn get(self) -> Option<(u32, u32)> {
        match Self::FRAME1.get(self.0) {
            0 => None,
            f1 => Some(((f1 - 1) as u32, Self::GEN.get(self.0) as u32)),
        }
    }
}

/// Checks the codecs on one raw word: `from_raw` either rejects it for a stated reason or accepts
/// it, and then every field reads back through the typed accessors, re-packing the fields gives
/// the same word, and the word's invariants hold. Used by the proptests below and by the `codec`
/// fuzz target (`fuzz/fuzz_targets/codec.rs`), whose committed corpus also replays as a test.
pub fn check_codecs(raw: u64) -> Result<(), String> {
    match FrameWord::from_raw(raw) {
        Ok(w) => {
            let rebuilt = FrameWord::new(w.tag(), w.gen())
                .with_pins(w.pins())
                .with(FrameWord::WRITER, w.writer())
                .with(FrameWord::DIRTY, w.dirty())
                .with(FrameWord::WAIT_PAGE, FrameWord::WAIT_PAGE.is_set(raw))
                .with(FrameWord::WAIT_POOL, FrameWord::WAIT_POOL.is_set(raw));
            if rebuilt.raw() != raw {
                return Err(format!(
                    "frame word {raw:#x} re-packs as {:#x}",
                    rebuilt.raw()
                ));
            }
            if w.writer() && w.pins() != 0 {
                return Err(format!("accepted {w:?}: writer with pins"));
            }
            if w.tag() != Tag::Resident && !w.unpinned() {
                return Err(format!("accepted {w:?}: pinned outside Resident"));
            }
        }
        Err(InvalidWord::Reserved(r)) if r != raw || FrameWord::RESERVED.get(raw) == 0 => {
            return Err(format!("frame word {raw:#x} wrongly rejected as reserved"));
        }
        Err(InvalidWord::UnknownTag(_)) if FrameWord::TAG.get(raw) < Tag::ALL.len() as u64 => {
            return Err(format!(
                "frame word {raw:#x} wrongly rejected as unknown tag"
            ));
        }
        Err(_) => {}
    }
    match EntryWord::from_raw(raw) {
        Ok(e) => match e.get() {
            None if raw != 0 => return Err(format!("entry {raw:#x} accepted without a frame")),
            Some((f, g)) if EntryWord::new(f, g).raw() != raw => {
                return Err(format!("entry {raw:#x} re-packs differently"));
            }
            _ => {}
        },
        Err(_) if EntryWord::FRAME1.get(raw) != 0 || raw == 0 => {
            return Err(format!("entry {raw:#x} wrongly rejected"));
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
            FrameWord::PINS,
            FrameWord::WRITER,
            FrameWord::DIRTY,
            FrameWord::WAIT_PAGE,
            FrameWord::WAIT_POOL,
            FrameWord::TAG,
            FrameWord::RESERVED,
            FrameWord::GEN,
        ];
        let mut seen = 0u64;
        for f in fields {
            assert_eq!(seen & f.mask(), 0, "{f:?} overlaps");
            seen |= f.mask();
        }
        assert_eq!(seen, u64::MAX);
        assert_eq!(EntryWord::FRAME1.mask() | EntryWord::GEN.mask(), u64::MAX);
    }

    fn tag() -> impl Strategy<Value = Tag> {
        prop::sample::select(Tag::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn frame_word_round_trips(t in tag(), gen: u32, pins in 0u64..=FrameWord::PINS.max(),
                                  writer: bool, dirty: bool, wp: bool, wq: bool) {
            let w = FrameWord::new(t, gen).with_pins(pins).with(FrameWord::WRITER, writer)
                .with(FrameWord::DIRTY, dirty).with(FrameWord::WAIT_PAGE, wp)
                .with(FrameWord::WAIT_POOL, wq);
            prop_assert_eq!(w.tag(), t);
            prop_assert_eq!(w.gen(), gen);
            prop_assert_eq!(w.pins(), pins);
            prop_assert_eq!(w.writer(), writer);
            prop_assert_eq!(w.dirty(), dirty);
            prop_assert_eq!(FrameWord::WAIT_PAGE.is_set(w.raw()), wp);
            prop_assert_eq!(FrameWord::WAIT_POOL.is_set(w.raw()), wq);
            prop_assert_eq!(w.unpinned(), pins == 0 && !writer);
            let valid = match t {
                Tag::Resident => !(writer && pins != 0),
                Tag::Reclaiming => pins == 0 && !writer,
                Tag::Free | Tag::Filling => pins == 0 && !writer && !dirty,
            };
            prop_assert_eq!(FrameWord::from_raw(w.raw()).is_ok(), valid);
        }

        #[test]
        fn codecs_hold_on_any_raw_word(raw: u64) {
            prop_assert_eq!(check_codecs(raw), Ok(()));
        }

        #[test]
        fn frame_word_rejects_reserved_and_unknown(raw: u64) {
            let r = FrameWord::from_raw(raw);
            if FrameWord::RESERVED.get(raw) != 0 || FrameWord::TAG.get(raw) >= 4 {
                prop_assert!(r.is_err());
            }
            if let Ok(w) = r {
                prop_assert_eq!(w.raw(), raw);
            }
        }

        #[test]
        fn entry_word_round_trips(frame in 0u32..=EntryWord::MAX_FRAME, gen: u32) {
            let e = EntryWord::new(frame, gen);
            prop_assert_eq!(e.get(), Some((frame, gen)));
            prop_assert_eq!(EntryWord::from_raw(e.raw()), Ok(e));
        }

        #[test]
        fn entry_word_rejects_gen_without_frame(gen in 1u32..) {
            let raw = EntryWord::GEN.set(0, gen as u64);
            prop_assert!(EntryWord::from_raw(raw).is_err());
        }
    }
}
