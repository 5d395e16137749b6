//! Backing stores: the [`Accessor`](accessor::Accessor) trait by which an object's pages are
//! filled and written back, the bundled accessors (file, memory, computed), anonymous memory over
//! a swap area (`anonymous`) and the swap area itself (`swap`).

pub(crate) mod accessor;
pub(crate) mod anonymous;
pub(crate) mod swap;
