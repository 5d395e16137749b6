//! Real paging: mappings of an object whose page faults pagecore serves (issue 19).
//!
//! This room holds the operating-system side first: [`uffd`], Linux's userfaultfd through raw
//! ioctls (register a range, read fault events, resolve them with COPY / ZEROPAGE / CONTINUE /
//! MOVE, or answer them with POISON, write-protect, wake, and PAGEMAP_SCAN for WP_ASYNC dirty
//! tracking), with probe tests of the kernel facts the mapping's design relies on. Over it:
//! [`mmu`], the MMU as the protocol sees it (a trait), [`sim`], its simulated implementation on
//! the sync facade, and [`core`], the mapping's protocol over either (SPEC §2.8), which loom and
//! shuttle check over the simulation (scenarios M…); [`real`], the kernel's MMU (a memfd mapped
//! twice, faults through userfaultfd); and [`mapping`], the public `Mapping` over it.

pub(crate) mod core;
#[cfg(all(target_os = "linux", not(any(pagecore_loom, feature = "shuttle"))))]
pub(crate) mod mapping;
pub(crate) mod mmu;
#[cfg(all(target_os = "linux", not(any(pagecore_loom, feature = "shuttle"))))]
pub(crate) mod real;
pub(crate) mod sim;
#[cfg(target_os = "linux")]
pub(crate) mod uffd;
