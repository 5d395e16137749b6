//! The per-frame word: the lifecycle [`Tag`] in a [`FrameWord`], and why a raw word is rejected
//! ([`InvalidWord`]).

use super::*;

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
    /// Every field, low bit first, by the name SPEC.md §3 gives it.
    pub const FIELDS: &'static [(&'static str, Field)] =
        &[("TAG", Self::TAG), ("reserved", Self::RESERVED)];

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
