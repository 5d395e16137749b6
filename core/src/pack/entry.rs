//! The per-page AccessMap entry word, [`EntryWord`]: frame, pins, holders and flags.

use super::*;

/// The per-page AccessMap entry: which frame backs the page, its pin state, and which of the
/// object's first four clients hold access (the seed's ACCESSLIST, inline). This is the word a hit
/// CASes (*reserve*, or a client's *grant*) and a reclaimer CASes (*take*): all on one word, so
/// exactly one of them wins (S1, S11).
///
/// | bits | field | invariant |
/// |---|---|---|
/// | 0..32 | `FRAME1` | frame index + 1; `0` means no frame, and then the whole word is `0` (`EMPTY`). |
/// | 32..45 | `PINS` | live plain read pins (read guards, `sync` write-backs, pre-pins for faults that joined the fill, the resolution pins of copy-on-write proxies naming this page's frame). |
/// | 45..47 | `FREQ` | hits since the eviction policy last looked at the page, saturating at 3 (`queue::Policy`): raised by the hit's own CAS (every pin and grant), cleared by CLOCK and SIEVE, lowered by one or cleared by S3-FIFO, all under the lists lock. |
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
    pub const PINS: Field = Self::FRAME1.next(13);
    /// Hits since the eviction policy last looked, saturating at 3 (CLOCK's and SIEVE's visited
    /// bit when not 0; S3-FIFO's frequency).
    pub const FREQ: Field = Self::PINS.next(2);
    /// Shared copy-on-write (a proxy of a frozen layer's frame): no writer of any kind.
    pub const COW: Field = Self::FREQ.next(1);
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
        ("FREQ", Self::FREQ),
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

    /// Hits since the eviction policy last looked at it (0 to 3).
    #[inline(always)]
    pub const fn freq(self) -> u64 {
        Self::FREQ.get(self.0)
    }

    /// Hit since the eviction policy last looked at it (`FREQ` not 0).
    #[inline(always)]
    pub const fn referenced(self) -> bool {
        Self::FREQ.is_set(self.0)
    }

    /// `word` marked hit once more: `FREQ` plus one, unless it is already 3. What every pin's and
    /// grant's CAS stores, so a hit costs no extra store whatever the policy.
    #[inline(always)]
    pub const fn hit(word: u64) -> u64 {
        let saturated = Self::FREQ.get(word) == Self::FREQ.max();
        word + ((!saturated as u64) << Self::FREQ.shift())
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

    /// With `FREQ` replaced (`freq <= 3`; wider values are truncated).
    #[inline(always)]
    pub const fn with_freq(self, freq: u64) -> Self {
        Self(Self::FREQ.set(self.0, freq))
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
            .field("freq", &self.freq())
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
