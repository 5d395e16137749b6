//! The vocabulary every layer shares: the access a client, a guard or a fault asks for.

/// Read or write access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Shared with other readers.
    Read,
    /// Exclusive.
    Write,
}
