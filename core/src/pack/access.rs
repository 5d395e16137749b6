//! The arbitration side-table word, [`AccessWord`]: an inline waitlist and asked set, or the id
//! of an out-of-line record.

use super::*;

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
