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

/// The per-page AccessMap entry: which frame backs the page, its pin state, and which of the
/// object's first four clients hold access (the seed's ACCESSLIST, inline). This is the word a hit
/// CASes (*reserve*, or a client's *grant*) and a reclaimer CASes (*take*): all on one word, so
/// exactly one of them wins (S1, S11).
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..32 | `FRAME1` | frame index + 1; `0` means no frame, and then the whole word is `0` (`EMPTY`). |
/// | 32..46 | `PINS` | live plain read pins (read guards, `sync` write-backs, pre-pins for faults that joined the fill, the resolution pins of copy-on-write proxies naming this page's frame). |
/// | 46 | `REFERENCED` | the page was hit (pinned or granted by a hit) since the eviction policy last looked at it (`queue::Policy`); set by the hit's own CAS, cleared by the policy under the lists lock. |
/// | 47 | `COW` | the frame is shared copy-on-write: this entry is a *proxy* of a frame owned by a frozen layer (it holds one read pin on the owner's entry), or (only while a copy of the object runs) a private page being frozen. Read pins and read grants are taken as usual; write pins and write grants are refused (a writer breaks the copy first). Never with a writer of any kind. |
/// | 48..56 | `HOLD` | inline ACCESSLIST: for client slot `i` in `0..4`, bit `48+2i` = holds read, bit `49+2i` = holds write. At most one write bit, and then no other `HOLD` bit and `PINS == 0`. Zero when `EXT_*` is set. |
/// | 56 | `WRITER` | a plain write guard holds the page; then `PINS == 0` and no client holds it. |
/// | 57 | `DIRTY` | the frame's bytes differ from the backing store. Set with `WRITER` or a client's write grant; cleared only after a successful write-back by a party that excludes writers. |
/// | 58 | `WAIT_PAGE` | someone is parked on this page's bucket (keyed by frame); whoever clears it wakes the bucket. |
/// | 59 | `WAIT_POOL` | an `obtain` is parked waiting for this page to become takeable; whoever makes it takeable clears it and wakes the pool. |
/// | 60 | `RECLAIMING` | the frame is being taken from this page (written back, then the entry cleared); then nothing pins or holds it, `ARB_SLOW` is clear, and no pin or grant can be added. |
/// | 61 | `ARB_SLOW` | the page has arbitration state beyond `HOLD` (a waitlist, revocations asked, or an out-of-line record) in its object's side table; client fast paths are off and reclaim skips the page. |
/// | 62 | `EXT_READ` | out-of-line holders include a reader (then `ARB_SLOW`). |
/// | 63 | `EXT_WRITE` | an out-of-line holder has write access (then `ARB_SLOW`, `PINS == 0`, no `WRITER`, no `EXT_READ`). |
///
/// Finding an entry is *tentative* until the CAS that pins it succeeds; no generation is needed:
/// the CAS succeeds only on this page's own entry naming this frame, so it can only ever pin this
/// page's bytes (a page refilled into the same frame is still this page).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryWord(pub(crate) u64);

impl EntryWord {
    /// Frame index plus one.
    pub const FRAME1: Field = Field::first(32);
    /// Plain read pins.
    pub const PINS: Field = Self::FRAME1.next(14);
    /// Hit since the eviction policy last looked (CLOCK's and SIEVE's visited bit).
    pub const REFERENCED: Field = Self::PINS.next(1);
    /// Shared copy-on-write (a proxy of a frozen layer's frame): no writer of any kind.
    pub const COW: Field = Self::REFERENCED.next(1);
    /// Inline ACCESSLIST of client slots 0..4 (read bit, write bit per slot).
    pub const HOLD: Field = Self::COW.next(8);
    /// Plain write guard held.
    pub const WRITER: Field = Self::HOLD.next(1);
    /// Bytes differ from the backing store.
    pub const DIRTY: Field = Self::WRITER.next(1);
    /// A waiter is parked on the page bucket.
    pub const WAIT_PAGE: Field = Self::DIRTY.next(1);
    /// An obtainer is parked on the pool parker.
    pub const WAIT_POOL: Field = Self::WAIT_PAGE.next(1);
    /// The frame is being reclaimed from this page.
    pub const RECLAIMING: Field = Self::WAIT_POOL.next(1);
    /// Arbitration state lives in the side table (waiters, asked revocations, record).
    pub const ARB_SLOW: Field = Self::RECLAIMING.next(1);
    /// An out-of-line holder reads.
    pub const EXT_READ: Field = Self::ARB_SLOW.next(1);
    /// An out-of-line holder writes.
    pub const EXT_WRITE: Field = Self::EXT_READ.next(1);
    /// Every field, low bit first, by the name SPEC.md §3 gives it.
    pub const FIELDS: &'static [(&'static str, Field)] = &[
        ("FRAME1", Self::FRAME1),
        ("PINS", Self::PINS),
        ("REFERENCED", Self::REFERENCED),
        ("COW", Self::COW),
        ("HOLD", Self::HOLD),
        ("WRITER", Self::WRITER),
        ("DIRTY", Self::DIRTY),
        ("WAIT_PAGE", Self::WAIT_PAGE),
        ("WAIT_POOL", Self::WAIT_POOL),
        ("RECLAIMING", Self::RECLAIMING),
        ("ARB_SLOW", Self::ARB_SLOW),
        ("EXT_READ", Self::EXT_READ),
        ("EXT_WRITE", Self::EXT_WRITE),
    ];

    /// Inline client slots.
    pub const INLINE_CLIENTS: u32 = 4;
    /// Both waiter flags.
    pub const WAIT_BITS: u64 = Self::WAIT_PAGE.mask() | Self::WAIT_POOL.mask();
    /// The write bits of every inline client slot, within the `HOLD` field's value (slot `i`'s
    /// write bit is bit `2i + 1`).
    pub const HOLD_WRITES: u64 = {
        let mut m = 0;
        let mut i = 0;
        while i < Self::INLINE_CLIENTS {
            m |= 1 << (2 * i + 1);
            i += 1;
        }
        m
    };
    /// The write bits of every inline client slot, in the word.
    pub const HOLD_WRITE_BITS: u64 = Self::HOLD_WRITES << Self::HOLD.shift();
    /// Everything that keeps a page from being written by a plain writer or taken by reclaim.
    pub const PINNED_BITS: u64 = Self::PINS.mask()
        | Self::HOLD.mask()
        | Self::WRITER.mask()
        | Self::EXT_READ.mask()
        | Self::EXT_WRITE.mask();
    /// Everything that refuses a new plain read pin (besides an empty entry and a full counter).
    pub const NO_READ_BITS: u64 = Self::WRITER.mask()
        | Self::RECLAIMING.mask()
        | Self::HOLD_WRITE_BITS
        | Self::EXT_WRITE.mask();
    /// Everything that refuses a plain write pin or a write grant (besides an empty entry):
    /// any pin or holder, a reclaim, a shared copy-on-write frame.
    pub const NO_WRITE_BITS: u64 = Self::PINNED_BITS | Self::RECLAIMING.mask() | Self::COW.mask();
    /// No frame.
    pub const EMPTY: EntryWord = EntryWord(0);
    /// Largest frame index an entry can name.
    pub const MAX_FRAME: u32 = u32::MAX - 1;

    /// The `HOLD` bits of inline client slot `slot` (`< 4`) for reading or writing.
    #[inline(always)]
    pub const fn hold_bit(slot: u32, write: bool) -> u64 {
        1u64 << (Self::HOLD.shift() + 2 * (slot & 3) + write as u32)
    }

    /// Both `HOLD` bits of inline client slot `slot` (`< 4`).
    #[inline(always)]
    pub const fn hold_bits(slot: u32) -> u64 {
        3u64 << (Self::HOLD.shift() + 2 * (slot & 3))
    }

    /// A resident entry for `frame` with `pins` read pins (`frame <= MAX_FRAME`, which `Pages`
    /// enforces at build; `pins <= PINS.max()`, clamped by callers).
    #[inline(always)]
    pub const fn resident(frame: u32, pins: u64) -> Self {
        Self(Self::PINS.set(Self::FRAME1.set(0, frame as u64 + 1), pins))
    }

    /// Decodes and validates a raw word.
    pub fn from_raw(raw: u64) -> Result<Self, InvalidWord> {
        let e = Self(raw);
        let ok = if Self::FRAME1.get(raw) == 0 {
            raw == 0
        } else {
            let hold = Self::HOLD.get(raw);
            let hold_writes = (hold & Self::HOLD_WRITES).count_ones();
            // Each inline slot holds read or write, not both.
            let slots_ok = (0..Self::INLINE_CLIENTS).all(|i| (hold >> (2 * i)) & 3 != 3);
            // One writer (plain, inline or out-of-line) excludes every other pin and holder.
            let writers = e.writer() as u32 + hold_writes + e.ext_write() as u32;
            let writer_ok = writers == 0
                || (writers == 1
                    && e.pins() == 0
                    && (e.writer() && hold == 0 && !e.ext_read()
                        || hold_writes == 1 && hold.count_ones() == 1 && !e.ext_read()
                        || e.ext_write() && hold == 0 && !e.ext_read()));
            // Out-of-line holders: all holders are in the record, which needs the side table.
            let ext_ok = !(e.ext_read() || e.ext_write()) || (hold == 0 && e.arb_slow());
            let reclaim_ok = !e.reclaiming() || (e.unpinned() && !e.arb_slow());
            // A shared copy-on-write frame is never written in place.
            let cow_ok = !e.cow() || writers == 0;
            slots_ok && writer_ok && ext_ok && reclaim_ok && cow_ok
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

    /// Plain read pins.
    #[inline(always)]
    pub const fn pins(self) -> u64 {
        Self::PINS.get(self.0)
    }

    /// The inline ACCESSLIST bits.
    #[inline(always)]
    pub const fn hold(self) -> u64 {
        Self::HOLD.get(self.0)
    }

    /// Plain write guard held.
    #[inline(always)]
    pub const fn writer(self) -> bool {
        Self::WRITER.is_set(self.0)
    }

    /// Dirty.
    #[inline(always)]
    pub const fn dirty(self) -> bool {
        Self::DIRTY.is_set(self.0)
    }

    /// Hit since the eviction policy last looked at it.
    #[inline(always)]
    pub const fn referenced(self) -> bool {
        Self::REFERENCED.is_set(self.0)
    }

    /// Shared copy-on-write (a proxy, or a private page a running copy is freezing).
    #[inline(always)]
    pub const fn cow(self) -> bool {
        Self::COW.is_set(self.0)
    }

    /// Being reclaimed.
    #[inline(always)]
    pub const fn reclaiming(self) -> bool {
        Self::RECLAIMING.is_set(self.0)
    }

    /// Arbitration state in the side table.
    #[inline(always)]
    pub const fn arb_slow(self) -> bool {
        Self::ARB_SLOW.is_set(self.0)
    }

    /// An out-of-line holder reads.
    #[inline(always)]
    pub const fn ext_read(self) -> bool {
        Self::EXT_READ.is_set(self.0)
    }

    /// An out-of-line holder writes.
    #[inline(always)]
    pub const fn ext_write(self) -> bool {
        Self::EXT_WRITE.is_set(self.0)
    }

    /// Some client holds access (inline or out-of-line).
    #[inline(always)]
    pub const fn held(self) -> bool {
        self.0 & (Self::HOLD.mask() | Self::EXT_READ.mask() | Self::EXT_WRITE.mask()) != 0
    }

    /// No plain read pin, no plain writer, no client holder.
    #[inline(always)]
    pub const fn unpinned(self) -> bool {
        self.0 & Self::PINNED_BITS == 0
    }

    /// Reclaim may take it: unpinned, not being reclaimed, no arbitration state.
    #[inline(always)]
    pub const fn takeable(self) -> bool {
        self.0 & (Self::PINNED_BITS | Self::RECLAIMING.mask() | Self::ARB_SLOW.mask()) == 0
    }

    /// Nothing pins or holds it and no arbitration state (what `RECLAIMING` requires).
    #[inline(always)]
    pub const fn takeable_but_reclaiming(self) -> bool {
        self.0 & (Self::PINNED_BITS | Self::ARB_SLOW.mask()) == 0
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

    /// With `HOLD` replaced.
    #[inline(always)]
    pub const fn with_hold(self, hold: u64) -> Self {
        Self(Self::HOLD.set(self.0, hold))
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
            .field("cow", &self.cow())
            .field("hold", &format_args!("{:#010b}", self.hold()))
            .field("arb_slow", &self.arb_slow())
            .field("ext", &(self.ext_read(), self.ext_write()))
            .field("wait_page", &Self::WAIT_PAGE.is_set(self.0))
            .field("wait_pool", &Self::WAIT_POOL.is_set(self.0))
            .finish()
    }
}

/// The side-table word of a page with arbitration state beyond its entry's `HOLD` bits (the seed's
/// WAITLIST and flags, or a pointer to an out-of-line record). Kept per object in a sharded table,
/// only for pages whose entry has `ARB_SLOW`, and only read or written under that shard's lock.
///
/// Inline form (`OUT_OF_LINE` clear):
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..16 | `WAIT` | four 4-bit slots, FIFO, slot 0 is the head: bit 0 used, bits 1..3 client slot, bit 3 wants write. Used slots are contiguous from slot 0; a client appears at most once. |
/// | 16..20 | `ASKED` | client slot `i` has been asked to revoke its current access (only holders). |
/// | 20..63 | reserved | zero. |
/// | 63 | `OUT_OF_LINE` | clear. |
///
/// Out-of-line form (`OUT_OF_LINE` set): bits 0..32 are `RECORD`, the id of an interned record in
/// the object's record table (holders, waiters and asked set of any size); bits 32..63 are zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessWord(pub(crate) u64);

impl AccessWord {
    /// The inline waitlist (four 4-bit slots).
    pub const WAIT: Field = Field::first(16);
    /// Revocation asked, per inline client slot.
    pub const ASKED: Field = Self::WAIT.next(4);
    /// Reserved, zero.
    pub const RESERVED: Field = Self::ASKED.next(43);
    /// The word names an out-of-line record.
    pub const OUT_OF_LINE: Field = Self::RESERVED.next(1);
    /// Every field of the inline form, low bit first, by the name SPEC.md §3 gives it.
    pub const FIELDS: &'static [(&'static str, Field)] = &[
        ("WAIT", Self::WAIT),
        ("ASKED", Self::ASKED),
        ("reserved", Self::RESERVED),
        ("OUT_OF_LINE", Self::OUT_OF_LINE),
    ];
    /// Record id (out-of-line form).
    pub const RECORD: Field = Field::first(32);
    /// Waitlist slots inline.
    pub const WAIT_SLOTS: usize = 4;
    /// Nothing (a page without side-table state).
    pub const EMPTY: AccessWord = AccessWord(0);

    /// The inline form for `waiters` (client slot, wants write) in FIFO order and the `asked`
    /// slot mask, or `None` if it does not fit (more than four waiters, a client slot >= 4, a
    /// client twice).
    pub fn inline(waiters: &[(u32, bool)], asked: u8) -> Option<AccessWord> {
        if waiters.len() > Self::WAIT_SLOTS || asked > 0xF {
            return None;
        }
        let mut w = 0u64;
        let mut seen = 0u8;
        for (k, &(c, write)) in waiters.iter().enumerate() {
            if c >= EntryWord::INLINE_CLIENTS || seen & (1 << c) != 0 {
                return None;
            }
            seen |= 1 << c;
            w |= (1 | (c as u64) << 1 | (write as u64) << 3) << (4 * k);
        }
        Some(AccessWord(Self::ASKED.set(w, asked as u64)))
    }

    /// The out-of-line form naming record `id`.
    pub const fn record_of(id: u32) -> AccessWord {
        AccessWord(Self::OUT_OF_LINE.one() | id as u64)
    }

    /// Decodes and validates a raw word.
    pub fn from_raw(raw: u64) -> Result<Self, InvalidWord> {
        let w = AccessWord(raw);
        if Self::OUT_OF_LINE.is_set(raw) {
            return if raw & !(Self::OUT_OF_LINE.mask() | Self::RECORD.mask()) == 0 {
                Ok(w)
            } else {
                Err(InvalidWord::Reserved(raw))
            };
        }
        if Self::RESERVED.get(raw) != 0 {
            return Err(InvalidWord::Reserved(raw));
        }
        let mut ended = false;
        let mut seen = 0u8;
        for k in 0..Self::WAIT_SLOTS {
            let slot = (raw >> (4 * k)) & 0xF;
            if slot & 1 == 0 {
                ended = true;
                if slot != 0 {
                    return Err(InvalidWord::Inconsistent(raw));
                }
                continue;
            }
            let c = ((slot >> 1) & 3) as u8;
            if ended || seen & (1 << c) != 0 {
                return Err(InvalidWord::Inconsistent(raw));
            }
            seen |= 1 << c;
        }
        Ok(w)
    }

    /// The raw bits.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The record id, if out-of-line.
    pub const fn record(self) -> Option<u32> {
        if Self::OUT_OF_LINE.is_set(self.0) {
            Some(Self::RECORD.get(self.0) as u32)
        } else {
            None
        }
    }

    /// Inline waiters, FIFO (client slot, wants write); empty for the out-of-line form.
    pub fn waiters(self) -> impl Iterator<Item = (u32, bool)> {
        let raw = if self.record().is_some() { 0 } else { self.0 };
        (0..Self::WAIT_SLOTS)
            .map(move |k| (raw >> (4 * k)) & 0xF)
            .take_while(|slot| slot & 1 == 1)
            .map(|slot| (((slot >> 1) & 3) as u32, slot & 8 != 0))
    }

    /// Inline asked mask (bit `i`: client slot `i`); zero for the out-of-line form.
    pub const fn asked(self) -> u8 {
        if Self::OUT_OF_LINE.is_set(self.0) {
            0
        } else {
            Self::ASKED.get(self.0) as u8
        }
    }
}

impl fmt::Debug for AccessWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.record() {
            Some(id) => write!(f, "AccessWord(record {id})"),
            None => f
                .debug_struct("AccessWord")
                .field("waiters", &self.waiters().collect::<Vec<_>>())
                .field("asked", &format_args!("{:#06b}", self.asked()))
                .finish(),
        }
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
    if let Ok(e) = EntryWord::from_raw(raw) {
        let Some(f) = e.frame() else {
            return if raw == 0 {
                Ok(())
            } else {
                Err(format!("entry {raw:#x} accepted without a frame"))
            };
        };
        let rebuilt = EntryWord::resident(f, e.pins())
            .with(EntryWord::REFERENCED, e.referenced())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `takeable` (what reclaim and close ask) refuses each thing that keeps a page: a pin, a
    /// holder, a writer, an out-of-line holder, a reclaim under way, arbitration state; and
    /// `takeable_but_reclaiming` refuses the same less the reclaim.
    #[test]
    fn takeable_refuses_every_pin_holder_and_reclaim() {
        let free = EntryWord::resident(3, 0);
        assert!(free.takeable() && free.takeable_but_reclaiming());
        let keeps = [
            EntryWord::resident(3, 1),
            free.with(EntryWord::WRITER, true),
            EntryWord(free.0 | EntryWord::hold_bit(2, false)),
            free.with(EntryWord::EXT_READ, true),
            free.with(EntryWord::EXT_WRITE, true),
            free.with(EntryWord::ARB_SLOW, true),
        ];
        for e in keeps {
            assert!(!e.takeable(), "{e:?}");
            assert!(!e.takeable_but_reclaiming(), "{e:?}");
        }
        let reclaiming = free.with(EntryWord::RECLAIMING, true);
        assert!(!reclaiming.takeable());
        assert!(reclaiming.takeable_but_reclaiming());
        assert!(
            free.with(EntryWord::DIRTY, true).takeable(),
            "a dirty page is taken"
        );
    }

    /// One writer (plain, inline or out-of-line) excludes every other pin and holder: the decoder
    /// refuses each such pair and accepts each writer alone and readers together.
    #[test]
    fn the_decoder_refuses_a_writer_beside_any_other_access() {
        let base = EntryWord::resident(7, 0).raw();
        let writer = EntryWord::WRITER.mask();
        let ext_write = EntryWord::EXT_WRITE.mask() | EntryWord::ARB_SLOW.mask();
        let hold_w = EntryWord::hold_bit(1, true);
        let others = [
            EntryWord::PINS.one(),
            EntryWord::hold_bit(0, false),
            EntryWord::hold_bit(2, true),
            EntryWord::EXT_READ.mask() | EntryWord::ARB_SLOW.mask(),
        ];
        for w in [writer, hold_w, ext_write] {
            assert!(EntryWord::from_raw(base | w).is_ok(), "{w:#x} alone");
            for o in others {
                if o & w == 0 && !(w == ext_write && o & EntryWord::EXT_READ.mask() != 0) {
                    assert!(
                        EntryWord::from_raw(base | w | o).is_err(),
                        "accepted writer {w:#x} beside {o:#x}"
                    );
                }
            }
        }
        let readers = base | (2 * EntryWord::PINS.one()) | EntryWord::hold_bit(0, false);
        assert!(EntryWord::from_raw(readers | EntryWord::hold_bit(3, false)).is_ok());
        // Out-of-line holders live in the side table (`ARB_SLOW`), and then every holder does.
        let ext_read = EntryWord::EXT_READ.mask();
        let arb = EntryWord::ARB_SLOW.mask();
        assert!(EntryWord::from_raw(base | ext_read | arb).is_ok());
        assert!(
            EntryWord::from_raw(base | ext_read).is_err(),
            "out of line, no side table"
        );
        let mixed = base | ext_read | arb | EntryWord::hold_bit(0, false);
        assert!(
            EntryWord::from_raw(mixed).is_err(),
            "out of line beside inline"
        );
        // An inline slot holds for reading or for writing, not both.
        for c in 0..EntryWord::INLINE_CLIENTS {
            assert!(
                EntryWord::from_raw(base | EntryWord::hold_bits(c)).is_err(),
                "slot {c}"
            );
        }
    }

    /// An entry shows its fields (the scenarios' failure messages print entries).
    #[test]
    fn an_entry_shows_its_fields() {
        let e = EntryWord::resident(5, 2).with(EntryWord::DIRTY, true);
        let shown = format!("{e:?}");
        for part in [
            "EntryWord",
            "frame: Some(5)",
            "pins: 2",
            "dirty: true",
            "writer: false",
        ] {
            assert!(shown.contains(part), "{part} not in {shown}");
        }
    }

    /// The inline access word refuses a client listed twice, whichever slot it has, and an
    /// `asked` mask wider than the four inline slots.
    #[test]
    fn an_inline_access_word_refuses_a_client_twice() {
        assert_eq!(AccessWord::inline(&[], 0x10), None);
        assert!(AccessWord::inline(&[], 0xF).is_some());
        for c in 0..EntryWord::INLINE_CLIENTS {
            assert_eq!(
                AccessWord::inline(&[(c, false), (c, true)], 0),
                None,
                "client {c}"
            );
            let other = (c + 1) % EntryWord::INLINE_CLIENTS;
            assert!(AccessWord::inline(&[(c, false), (other, true)], 0).is_some());
        }
    }

    #[test]
    fn fields_tile_the_word_without_overlap() {
        for fields in [EntryWord::FIELDS, AccessWord::FIELDS, FrameWord::FIELDS] {
            let mut seen = 0u64;
            for (name, f) in fields {
                assert_eq!(seen & f.mask(), 0, "{name} overlaps");
                seen |= f.mask();
            }
            assert_eq!(seen, u64::MAX);
        }
        let mut holds = 0;
        for c in 0..EntryWord::INLINE_CLIENTS {
            assert_eq!(
                EntryWord::hold_bits(c),
                EntryWord::hold_bit(c, false) | EntryWord::hold_bit(c, true)
            );
            holds |= EntryWord::hold_bits(c);
        }
        assert_eq!(holds, EntryWord::HOLD.mask());
        assert_eq!(EntryWord::HOLD_WRITE_BITS & !EntryWord::HOLD.mask(), 0);
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

    /// Every inline waitlist of up to four distinct client slots, with every asked mask, round
    /// trips exactly (exhaustive: 4 slots x 2 accesses, all orders, 16 masks).
    #[test]
    fn every_inline_access_word_round_trips() {
        fn lists(prefix: &mut Vec<(u32, bool)>, out: &mut Vec<Vec<(u32, bool)>>) {
            out.push(prefix.clone());
            for c in 0..4 {
                if prefix.iter().any(|&(p, _)| p == c) {
                    continue;
                }
                for w in [false, true] {
                    prefix.push((c, w));
                    lists(prefix, out);
                    prefix.pop();
                }
            }
        }
        let mut all = Vec::new();
        lists(&mut Vec::new(), &mut all);
        assert_eq!(all.len(), 1 + 8 + 8 * 6 + 8 * 6 * 4 + 8 * 6 * 4 * 2);
        let mut words = std::collections::HashSet::new();
        // Under Miri (ci/miri.sh: some hundred times slower) every 37th list; the rest is
        // integer arithmetic, which Miri checks nothing more of.
        let stride = if cfg!(miri) { 37 } else { 1 };
        for l in all.iter().step_by(stride) {
            for asked in 0..16u8 {
                let w = AccessWord::inline(l, asked).expect("fits");
                assert_eq!(AccessWord::from_raw(w.raw()), Ok(w));
                assert_eq!(&w.waiters().collect::<Vec<_>>(), l);
                assert_eq!(w.asked(), asked);
                assert_eq!(w.record(), None);
                assert!(words.insert(w.raw()), "two states pack alike");
            }
        }
        assert!(AccessWord::inline(&[(0, false); 2], 0).is_none());
        assert!(AccessWord::inline(&[(4, false)], 0).is_none());
        assert!(AccessWord::inline(
            &[(0, false), (1, false), (2, false), (3, false), (0, true)],
            0
        )
        .is_none());
    }

    proptest! {
        // Miri runs these a few hundred times slower: a handful of cases there (ci/miri.sh).
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 }))]
        #[test]
        fn entry_word_round_trips(frame in 0u32..=EntryWord::MAX_FRAME,
                                  pins in 0u64..=EntryWord::PINS.max(), hold in 0u64..256,
                                  writer: bool, dirty: bool, wp: bool, wq: bool, rec: bool,
                                  slow: bool, xr: bool, xw: bool, cow: bool, rf: bool) {
            let e = EntryWord::resident(frame, pins).with_hold(hold).with(EntryWord::WRITER, writer)
                .with(EntryWord::COW, cow).with(EntryWord::REFERENCED, rf)
                .with(EntryWord::DIRTY, dirty).with(EntryWord::WAIT_PAGE, wp)
                .with(EntryWord::WAIT_POOL, wq).with(EntryWord::RECLAIMING, rec)
                .with(EntryWord::ARB_SLOW, slow).with(EntryWord::EXT_READ, xr)
                .with(EntryWord::EXT_WRITE, xw);
            prop_assert_eq!(e.frame(), Some(frame));
            prop_assert_eq!(e.pins(), pins);
            prop_assert_eq!(e.hold(), hold);
            prop_assert_eq!(e.writer(), writer);
            prop_assert_eq!(e.dirty(), dirty);
            prop_assert_eq!(e.reclaiming(), rec);
            prop_assert_eq!(e.arb_slow(), slow);
            prop_assert_eq!(e.ext_read(), xr);
            prop_assert_eq!(e.ext_write(), xw);
            prop_assert_eq!(e.cow(), cow);
            prop_assert_eq!(e.referenced(), rf);
            prop_assert_eq!(EntryWord::WAIT_PAGE.is_set(e.raw()), wp);
            prop_assert_eq!(EntryWord::WAIT_POOL.is_set(e.raw()), wq);
            prop_assert_eq!(e.unpinned(), pins == 0 && !writer && hold == 0 && !xr && !xw);
            prop_assert_eq!(e.held(), hold != 0 || xr || xw);
            // The invariants, restated independently of from_raw.
            let slot_both = (0..4).any(|i| (hold >> (2 * i)) & 3 == 3);
            let hw = (hold & EntryWord::HOLD_WRITES).count_ones();
            let hr = (hold & 0x55).count_ones();
            let writers = writer as u32 + hw + xw as u32;
            let valid = !slot_both
                && writers <= 1
                && (writers == 0 || (pins == 0 && !xr && hr == 0))
                && (!(xr || xw) || (hold == 0 && slow))
                && (!rec || (pins == 0 && !writer && hold == 0 && !xr && !xw && !slow))
                && (!cow || writers == 0);
            prop_assert_eq!(EntryWord::from_raw(e.raw()).is_ok(), valid, "{:?}", e);
        }

        #[test]
        fn codecs_hold_on_any_raw_word(raw: u64) {
            prop_assert_eq!(check_codecs(raw), Ok(()));
        }

        #[test]
        fn out_of_line_access_word_round_trips(id: u32, junk in 1u64..(1 << 31)) {
            let w = AccessWord::record_of(id);
            prop_assert_eq!(AccessWord::from_raw(w.raw()), Ok(w));
            prop_assert_eq!(w.record(), Some(id));
            prop_assert_eq!(w.waiters().count(), 0);
            prop_assert!(AccessWord::from_raw(w.raw() | (junk << 32)).is_err());
        }

        #[test]
        fn entry_word_rejects_bits_without_frame(raw in 1u64..) {
            let raw = raw & !EntryWord::FRAME1.mask();
            prop_assume!(raw != 0);
            prop_assert!(EntryWord::from_raw(raw).is_err());
        }
    }
}
