//! Real paging: mappings of an object whose page faults pagecore serves (issue 19).
//!
//! This room holds the operating-system side first: [`uffd`], Linux's userfaultfd through raw
//! ioctls (register a range, read fault events, resolve them with COPY / ZEROPAGE / CONTINUE /
//! MOVE, or answer them with POISON, write-protect, wake, and PAGEMAP_SCAN for WP_ASYNC dirty
//! tracking), with probe tests of the kernel facts the mapping's design relies on. The mapping
//! built on it, the MMU trait with its simulated implementation on the sync facade, and their
//! race scenarios (M1, …) come next; SPEC.md marks them planned.

#[cfg(target_os = "linux")]
pub(crate) mod uffd;
