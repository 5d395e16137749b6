//! [`Mapping`]: a memory object mapped into this process's memory, its page faults served by
//! pagecore through userfaultfd (`real.rs`) with the protocol of `core.rs` (SPEC §2.8).

use super::core::MapCore;
use super::mmu::Mmu;
use super::real::UffdMmu;
use crate::error::{Error, Result};
use crate::sync::{thread, Arc, ShareArc};
use crate::{Accessor, PageMapper, Pages};

/// A mapping's counts ([`Mapping::stats`]); the pool's own (fills, evictions, write-backs) are
/// in [`Pages::stats`](crate::Pages::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MappingStats {
    /// Faults the handler read: first touches, stores to pages mapped read-only, and faults
    /// again after an eviction.
    pub faults: u64,
    /// Pages fault-around mapped ahead of a fault.
    pub mapped_ahead: u64,
}

/// A memory object mapped into this process's memory: plain loads and stores in
/// `[as_ptr(), as_ptr() + len())` read and write the object's pages, which pagecore faults in on
/// first touch (through the accessor, once however many threads, guards and clients want a
/// page), counts against the pool's frames, evicts under pressure (writing dirty pages back
/// first; a store racing an eviction faults and waits, it is never lost) and writes back on
/// [`Mapping::sync`] and when the object's last mapping ends (drop or [`Mapping::close`]). Handler threads serve the faults (one unless
/// [`Mapping::builder`] says more); a mapping's only handler looks for the next fault for 50 µs
/// after each before it sleeps (a thread woken from a fault often faults again at once, and
/// waking a sleeping CPU costs tens of microseconds on a VM); several sleep at once.
///
/// Linux only; it needs userfaultfd on a memfd (`MISSING`, `MINOR`, write-protect, `POISON`:
/// Linux 6.6 or later) and the pool's page size must be the system's. Where userfaultfd is not
/// permitted, [`Mapping::new`] fails with [`Error::Map`], whose message names the remedies.
///
/// A page whose fill fails is poisoned: a thread touching it gets `SIGBUS`, not zeros, until the
/// page's marker goes ([`Mapping::retry`]; a write guard on the page, or its eviction, clears it
/// too). A store through a mapping of a read-only object is a `SIGBUS` too.
/// System calls reading or writing the range (`read(2)` into it, `write(2)` from it) are served
/// like any access where the process may have kernel-mode faults reported (root,
/// `CAP_SYS_PTRACE`, `vm.unprivileged_userfaultfd = 1`); elsewhere they fail with `EFAULT` on a
/// page not mapped yet, and a system call that copies into the range (`read(2)` into it) also
/// on a page mapped read-only (after a load, fault-around or a sync). Touching the range after
/// the mapping is dropped is a segmentation fault, as after `munmap`; so is touching it in a
/// child after `fork` (the range is `MADV_DONTFORK`: the child has no mapping there).
///
/// A private mapping ([`Mapping::private`]) maps a copy-on-write copy of an object, mapped or
/// not, as `mmap(MAP_PRIVATE)` maps a file: its loads see the object as it was when the mapping
/// was made, its stores are its own. A mapped object can be copied ([`PageMapper::copy`]) and
/// privately mapped: the copy first writes its dirty pages back (to its swap area or file),
/// and its mappings keep their pages (SPEC §2.8, copies of a mapped object).
///
/// A fault waits for the page's holders, as a guard would: a thread that holds a guard or a
/// grant on a page and then touches that page through the mapping waits for itself, for ever
/// (as a thread that takes a lock it holds). Drop the guard first, or reach the page through
/// the guard. A [`Client`](crate::Client) holding the page is asked to give it back (its
/// [`Revoke`](crate::Revoke) callback: every holder for a store, a writer to downgrade for a
/// load), as a conflicting request would ask it.
///
/// An object may be mapped several times ([`Mapping::share`], [`MappingBuilder::share`]),
/// read-write or read-only ([`MappingBuilder::read_only`]): the mappings share each resident
/// page's bytes (one copy, one frame), so they are coherent as two `MAP_SHARED` mappings of a
/// file are, and the object closes when the last of them ends.
///
/// Fault-around: a load's fault that continues a sequential stream of them (on the page right
/// after what the previous one mapped) has up to [`Mapping::fault_around`] pages after its own
/// (32 by default, and never more than a quarter of the pool's frames; the window doubles from
/// 4 as the stream goes on) filled and mapped read-only before its thread is woken, so a scan
/// takes a fault per window, not per page. A page that is held, or would need a frame the pool
/// cannot give at once, ends the window. The window's fills run on the handler thread before
/// the fault is answered: with a slow accessor, lower the bound or add handler threads
/// ([`Mapping::builder`]). Stores are not streamed (a page mapped ahead is read-only, so a
/// store to it faults once, to be marked dirty).
///
/// A fault's service lets its pin on the page go just after it wakes the faulting thread, so
/// [`Pages::census`](crate::Pages::census) taken right after may still count the page pinned.
///
/// Evictions are batched: a reclaim of a mapped page evicts up to
/// [`PagesBuilder::evict_batch`](crate::PagesBuilder::evict_batch) pages at once (16 by
/// default in a pool of 256 frames or more, a sixteenth of the frames in a smaller one), taking
/// each run of consecutive pages out of the mappings and giving its memory up
/// in one system call, and leaves the frames beyond the one it needed free for the next faults.
///
/// Not yet (issue 19): `mlock` of the range (eviction's zap is refused there) and long-term pins
/// of its pages (`O_DIRECT`, io_uring fixed buffers).
///
/// ```no_run
/// use pagecore::{Mapping, MemoryAccessor, Pages};
/// let pages = Pages::builder().page_size(4096).frames(64).build()?;
/// let map = Mapping::new(&pages, MemoryAccessor::new(), 1 << 20)?; // 256 pages, 64 frames
/// let p = map.as_ptr();
/// for i in 0..256 {
///     // SAFETY: inside the mapping, which outlives the loop; no other thread touches it.
///     unsafe { *p.add(i * 4096) = i as u8 };   // faults, evicts, writes back as needed
/// }
/// map.sync()?;                                  // every page written back
/// assert_eq!(map.object().read(255)?[0], 255); // the same object through a guard
/// # Ok::<(), pagecore::Error>(())
/// ```
pub struct Mapping {
    core: Arc<MapCore<UffdMmu>>,
    handlers: Vec<thread::JoinHandle<u64>>,
    /// `close` ran (drop has nothing left to do).
    closed: bool,
}

/// The options of a [`Mapping`] ([`Mapping::builder`]): handler threads, fault-around and
/// protection; it maps a new object ([`MappingBuilder::build`]), one already mapped
/// ([`MappingBuilder::share`]), or a private copy of an object ([`MappingBuilder::private`]).
///
/// ```no_run
/// use pagecore::{Mapping, MemoryAccessor, Pages};
/// let pages = Pages::builder().page_size(4096).frames(256).build()?;
/// let map = Mapping::builder()
///     .handlers(4)      // four threads serve faults (fills from a slow store overlap)
///     .fault_around(0)  // random access: map nothing ahead
///     .build(&pages, MemoryAccessor::new(), 64 << 20)?;
/// # Ok::<(), pagecore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MappingBuilder {
    handlers: usize,
    fault_around: u64,
    read_only: bool,
}

/// The most handler threads a mapping may have.
const MAX_HANDLERS: usize = 64;

impl MappingBuilder {
    /// Threads that read and serve the mapping's faults (1 to 64; default 1). With several,
    /// faults on different pages are served at once (a fault whose page is held, or which
    /// waits for a frame, gets a thread of its own either way).
    pub fn handlers(mut self, n: usize) -> Self {
        self.handlers = n;
        self
    }

    /// Fault-around's bound in pages (default 32; 0 turns it off): see [`Mapping`].
    pub fn fault_around(mut self, pages: u64) -> Self {
        self.fault_around = pages;
        self
    }

    /// Maps the range read-only (default: read-write): a store through it is the kernel's
    /// `SIGSEGV`, as with any `PROT_READ` mapping, and never reaches the object; a system
    /// call that copies into it (`read(2)` into the range) fails with `EFAULT`, while one that
    /// copies from it (`write(2)` from the range) is a load and works. Loads see every store
    /// made through the object's other mappings, guards and grants.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Maps `of`'s object again: another range of this process's memory whose loads and
    /// stores reach the same pages, with its own handler threads and fault-around (this
    /// builder's) and protection ([`MappingBuilder::read_only`]). The mappings share each
    /// resident page (one copy of its bytes, one frame, one table entry per mapping that
    /// touched it), so a store through one is seen by the next load through any other, as
    /// with two `MAP_SHARED` mappings of one file; reclaim and write-back take a page's access
    /// away in every mapping. The object lives until every mapping of it has ended: ending
    /// one (drop, [`Mapping::close`]) leaves its pages, dirty ones included, to the others, and
    /// the last one writes back and closes the object. Fails with [`Error::Map`] as
    /// [`MappingBuilder::build`] does, and with [`Error::Closed`] if the object was closed
    /// ([`PageMapper::close`] on [`Mapping::object`]).
    ///
    /// ```no_run
    /// use pagecore::{Mapping, MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(4096).frames(64).build()?;
    /// let a = Mapping::new(&pages, MemoryAccessor::new(), 1 << 20)?;
    /// let b = Mapping::builder().read_only(true).share(&a)?;
    /// // SAFETY: both inside their mappings; no other thread touches them.
    /// unsafe { *a.as_ptr().add(4096) = 7 };
    /// assert_eq!(unsafe { *b.as_ptr().add(4096) }, 7); // the same page
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn share(self, of: &Mapping) -> Result<Mapping> {
        self.check_handlers()?;
        let mmu = of
            .core
            .mmu()
            .share(self.read_only)
            .map_err(|e| Error::Map(ShareArc::new(e)))?;
        let core = of.core.share(mmu)?;
        self.start(core)
    }

    /// Maps a private copy-on-write copy of `object` (as `mmap(MAP_PRIVATE)` maps a file):
    /// loads of pages never stored to through this mapping read `object` as it was at this
    /// call, whatever is written to it later; a store gives the mapping a page of its own,
    /// which `object`, its other copies and mappings never see. `object` may be closed or
    /// dropped meanwhile: the mapping keeps what it reads. The mapping's object
    /// ([`Mapping::object`]) is the copy ([`PageMapper::copy`]): an anonymous object over the
    /// source's swap area (or the pool's), closed with the mapping's last end; it can be copied
    /// and privately mapped in turn.
    ///
    /// Memory: a page read through the mapping is copied into its memory, so while resident it
    /// holds two frames (the frozen layer's and the mapping's: the pool needs at least two);
    /// until stored to, it is evicted without a write-back and copied again at its next fault.
    /// A page stored to is written to the swap area when evicted, so the swap area bounds how
    /// many pages the mapping can have stored to and evicted at once: with it full, such a
    /// store's fault waits until slots are freed, and [`Mapping::sync`] fails with
    /// [`Error::WriteBack`] (`ENOSPC`).
    ///
    /// `object` may be mapped itself (shared mappings of a file beside private ones, as with
    /// `mmap`): the copy writes its dirty pages back first, and its mappings keep their pages
    /// and go on storing, unseen by this one; while this mapping lives, the first store to each
    /// page of a mapped file puts the page's old bytes in the pool's swap area (see
    /// [`PageMapper::copy`]).
    ///
    /// Fails with [`Error::Mapped`] if `object` is mapped and its accessor is neither anonymous
    /// nor persistent ([`Accessor::persistent`](crate::Accessor::persistent)), with [`Error::Closed`] if it is closed, with [`Error::Map`] as
    /// [`MappingBuilder::build`] does or if the pool has fewer than two frames, and as
    /// [`PageMapper::copy`] does ([`Error::Busy`] while a writer holds a page past the pool's
    /// bound; [`Error::WriteBack`] if a file's dirty page cannot be written back first).
    ///
    /// ```no_run
    /// use pagecore::{Mapping, MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(4096).frames(64).build()?;
    /// let image = pages.open(MemoryAccessor::new(), 1 << 20)?; // e.g. a disk image
    /// image.write(1)?[0] = 1;
    /// let vm = Mapping::builder().private(&image)?;
    /// image.write(1)?[0] = 2;                           // after the mapping: not seen
    /// let p = vm.as_ptr();
    /// // SAFETY: inside the mapping; no other thread touches it.
    /// assert_eq!(unsafe { *p.add(4096) }, 1);
    /// unsafe { *p.add(4096) = 3 };                      // the mapping's own page now
    /// assert_eq!(image.read(1)?[0], 2);                 // the image never sees it
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn private(self, object: &PageMapper) -> Result<Mapping> {
        self.check_handlers()?;
        let ps = object.shared.pages.page_size();
        check_page_size(ps)?;
        let n = object.limit().div_ceil(ps as u64);
        if n == 0 {
            return Err(invalid("a mapping of 0 bytes".into()));
        }
        let mmu = UffdMmu::new(n, self.read_only).map_err(|e| Error::Map(ShareArc::new(e)))?;
        let core = MapCore::private(object, mmu)?;
        self.start(core)
    }

    fn check_handlers(&self) -> Result<()> {
        if !(1..=MAX_HANDLERS).contains(&self.handlers) {
            return Err(invalid(format!(
                "{} handler threads: a mapping has 1 to {MAX_HANDLERS}",
                self.handlers
            )));
        }
        Ok(())
    }

    /// Sets the knobs on `core` and starts its handler threads.
    fn start(self, core: MapCore<UffdMmu>) -> Result<Mapping> {
        core.mmu().set_readers(self.handlers);
        core.set_fault_around(self.fault_around);
        let mut map = Mapping {
            core: Arc::new(core),
            handlers: Vec::with_capacity(self.handlers),
            closed: false,
        };
        for i in 0..self.handlers {
            let core = map.core.clone();
            let started = thread::Builder::new()
                .name(format!("pagecore-uffd-{i}"))
                .spawn(move || MapCore::serve_all(&core));
            match started {
                Ok(h) => map.handlers.push(h),
                // Ends the mapping and joins the handlers started so far (drop).
                Err(e) => return Err(Error::Map(ShareArc::new(e))),
            }
        }
        Ok(map)
    }

    /// Maps a new object of `len` bytes (rounded up to whole pages) backed by `accessor`, and
    /// starts its handler threads. Fails with [`Error::Map`] where userfaultfd is not
    /// permitted (the message names the remedies), the pool's page size is not the system's,
    /// `len` is 0 or more than the address space can map, or the handler count is not 1 to 64;
    /// with [`Error::AccessorPageSize`] if `accessor` works in pages of another size.
    pub fn build(self, pages: &Pages, accessor: impl Accessor, len: u64) -> Result<Mapping> {
        self.check_handlers()?;
        let ps = pages.page_size() as u64;
        check_page_size(pages.page_size())?;
        if len == 0 {
            return Err(invalid("a mapping of 0 bytes".into()));
        }
        let n = len.div_ceil(ps);
        let mmu = UffdMmu::new(n, self.read_only).map_err(|e| Error::Map(ShareArc::new(e)))?;
        let core = MapCore::new(pages, accessor, mmu)?;
        self.start(core)
    }
}

/// Refuses a pool whose page size is not the system's.
fn check_page_size(ps: usize) -> Result<()> {
    // SAFETY: no arguments.
    let system = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    if ps as u64 != system {
        return Err(invalid(format!(
            "the pool's page size ({ps}) must be the system's ({system})"
        )));
    }
    Ok(())
}

/// An invalid argument, as [`Error::Map`].
fn invalid(what: String) -> Error {
    Error::Map(ShareArc::new(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        what,
    )))
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("addr", &self.as_ptr())
            .field("len", &self.len())
            .finish()
    }
}

impl Mapping {
    /// Maps a new object of `len` bytes (rounded up to whole pages) backed by `accessor`, with
    /// one handler thread and fault-around's default bound ([`Mapping::builder`] for others).
    /// Fails with [`Error::Map`] where userfaultfd is not permitted (the message names the
    /// remedies), the pool's page size is not the system's, or `len` is 0 or more than the
    /// address space can map; with [`Error::AccessorPageSize`] if `accessor` works in pages of
    /// another size.
    pub fn new(pages: &Pages, accessor: impl Accessor, len: u64) -> Result<Self> {
        Self::builder().build(pages, accessor, len)
    }

    /// Maps this mapping's object again, read-write, with one handler thread and
    /// fault-around's default bound ([`MappingBuilder::share`] for others, and what sharing
    /// means): a store through either is seen by the other's next load.
    ///
    /// ```no_run
    /// use pagecore::{Mapping, MemoryAccessor, Pages};
    /// let pages = Pages::builder().page_size(4096).frames(64).build()?;
    /// let a = Mapping::new(&pages, MemoryAccessor::new(), 1 << 20)?;
    /// let b = a.share()?;
    /// assert_eq!(b.mappings(), 2);
    /// drop(a);                   // b keeps the object (and a's stores)
    /// assert_eq!(b.mappings(), 1);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn share(&self) -> Result<Mapping> {
        Self::builder().share(self)
    }

    /// Maps a private copy-on-write copy of `object`, read-write, with one handler thread and
    /// fault-around's default bound ([`MappingBuilder::private`] for others, and what private
    /// means): its stores are its own, and its loads see `object` as it was at this call.
    pub fn private(object: &PageMapper) -> Result<Mapping> {
        Self::builder().private(object)
    }

    /// How many mappings of this mapping's object are live, this one included
    /// ([`Mapping::share`]).
    pub fn mappings(&self) -> usize {
        self.core.mappings()
    }

    /// A mapping with options: handler threads, fault-around, read-only, another mapping of
    /// an object already mapped.
    pub fn builder() -> MappingBuilder {
        MappingBuilder {
            handlers: 1,
            fault_around: super::core::FAULT_AROUND,
            read_only: false,
        }
    }

    /// The mapping's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.core.mmu().as_ptr()
    }

    /// The mapping's length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.core.mmu().len()
    }

    /// The mapping as a byte slice: a load of any byte faults its page in as a plain load does.
    ///
    /// A page whose fill fails raises `SIGBUS` at the load, as with any access (see the type's
    /// doc).
    ///
    /// # Safety
    ///
    /// For the slice's life nothing may change the object's bytes: no store through this
    /// mapping or any other mapping of the object ([`Mapping::share`]; they share its pages),
    /// from any thread, and no write guard, grant or `write_at` on [`Mapping::object`].
    /// Loads elsewhere, evictions and faults are fine: a page evicted and faulted again reads
    /// the bytes it was written back with.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the range is this mapping's for its whole life (the slice borrows it) and
        // always readable (absent pages fault in); the caller keeps it unchanged meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The mapping as a mutable byte slice: stores fault their pages in writable and dirty.
    ///
    /// # Safety
    ///
    /// For the slice's life nothing else may read or write the object's bytes: no access
    /// through this mapping but the slice's, none through any other mapping of the object
    /// ([`Mapping::share`]; they share its pages), and no guard, grant, `read_at`, `write_at` or
    /// `sync` on [`Mapping::object`] or [`Mapping::sync`] (drop the slice, then sync). Evictions
    /// are fine: pagecore takes a page's entry away before it writes the page back.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; the caller makes this the only access meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }

    /// Whether the mapping is empty (never: it has at least one page).
    pub fn is_empty(&self) -> bool {
        self.core.mmu().is_empty()
    }

    /// The mapped object: its guards, clients and `sync` work beside the mapping (a guard takes
    /// the access of every mapping of the object to its page away while it lives). Do not
    /// `close` it while a mapping of it is used: every later access through one is a `SIGBUS`
    /// (the object's last mapping to end closes it: [`Mapping::close`]).
    pub fn object(&self) -> &PageMapper {
        self.core.object()
    }

    /// Sets fault-around's bound: a load's fault continuing a sequential stream maps up to
    /// `pages` pages after its own, and never more than a quarter of the pool's frames (0 turns
    /// fault-around off, for random access that would only evict useful pages).
    ///
    /// ```no_run
    /// # use pagecore::{Mapping, MemoryAccessor, Pages};
    /// # let pages = Pages::builder().page_size(4096).frames(64).build()?;
    /// let map = Mapping::new(&pages, MemoryAccessor::new(), 1 << 20)?;
    /// assert_eq!(map.fault_around(), 32);
    /// map.set_fault_around(0);
    /// # Ok::<(), pagecore::Error>(())
    /// ```
    pub fn set_fault_around(&self, pages: u64) {
        self.core.set_fault_around(pages);
    }

    /// Fault-around's bound (32 unless [`Mapping::set_fault_around`] changed it).
    pub fn fault_around(&self) -> u64 {
        self.core.fault_around()
    }

    /// Clears page `page`'s poison in this mapping (left by a fill that failed: touching the
    /// page raises `SIGBUS`), so that the next access faults and fills it again. Poison is per
    /// mapping (the mapping whose fault's fill failed); a write guard on the page, or its
    /// eviction, clears it in every mapping. On a page that is not
    /// poisoned it only drops the page's table entry (the next access faults it back in).
    /// Fails with [`Error::OutOfRange`] for a page past the mapping's end.
    pub fn retry(&self, page: u64) -> Result<()> {
        let ps = self.core.mmu().page_size() as u64;
        if page >= self.core.mmu().pages() {
            return Err(Error::OutOfRange {
                offset: page.saturating_mul(ps),
                limit: self.len() as u64,
            });
        }
        self.core.retry(page);
        Ok(())
    }

    /// What the mapping's handler has done so far.
    pub fn stats(&self) -> MappingStats {
        let (faults, mapped_ahead) = self.core.counts();
        MappingStats {
            faults,
            mapped_ahead,
        }
    }

    /// Writes back every page of the object stored to through this mapping or any other of it
    /// (or written otherwise) since it was last written back, as [`PageMapper::sync`] does: a write-back that failed earlier (during
    /// an eviction, whose page then stayed resident and dirty) is reported once, by the next
    /// sync, which still writes the rest back; nothing is lost, and a later sync retries.
    pub fn sync(&self) -> Result<()> {
        self.core.sync()
    }

    /// Ends the mapping and reports how: unmaps the range, joins the handler threads and, if it
    /// was the object's last mapping ([`Mapping::share`]), writes every page back and closes
    /// the object (as drop does, which cannot report an error); an earlier one leaves its
    /// pages, dirty ones included, to the object's other mappings. If a write-back fails the
    /// object stays open with its dirty pages (nothing is lost): a handle taken from
    /// [`Mapping::object`] before (a clone) can `sync` or `close` it again later. Closing
    /// the object waits, as [`PageMapper::close`] does, for guards and grants on its pages (up
    /// to the pool's wait bound), and fails with [`Error::Busy`] if one is still held then
    /// (the object stays open; drop waits as long and drops the error).
    pub fn close(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        self.closed = true;
        let r = self.core.close();
        for h in self.handlers.drain(..) {
            let _ = h.join();
        }
        r
    }
}

impl Drop for Mapping {
    /// Unmaps the range and ends the handler threads, and if this was the object's last
    /// mapping writes it back and closes it, as [`Mapping::close`] does (an error is lost: call
    /// `close` to see it). No thread may touch the range from here on.
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.end();
        }
    }
}
