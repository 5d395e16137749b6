//! Accessors populate (fill) and write back (flush) the pages of one memory object.
//!
//! Three are provided: [`FileAccessor`] (a real file, positional I/O), [`ComputedAccessor`]
//! (a closure computes each page; optionally a second closure takes write-backs) and
//! [`MemoryAccessor`] (an in-memory backing store, handy in tests and as a RAM disk). Users can
//! implement [`Accessor`] for anything else.
//! [`MemoryAccessor`]'s own map is a leaf of the lock hierarchy (`Store`, SPEC.md §5.1).

use crate::sync::{lock, Arc, Mutex};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;

/// Populates and writes back the pages of one memory object.
///
/// Calls for different pages may run concurrently; pagecore never calls `fill` and `flush` for
/// the same page at the same time, and never calls `fill` for a page while a dirty frame for it
/// is still resident (so a fill always sees the last write-back).
pub trait Accessor: Send + Sync + 'static {
    /// Fills `buf` (one page) with the content of page `page`. Bytes beyond the end of the backing
    /// data must be zero.
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `buf` (one page) back as the content of page `page`.
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()>;

    /// Makes earlier write-backs durable (fsync). Default: nothing to do.
    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }

    /// Whether pages may be written (false makes write guards fail with `Error::ReadOnly`).
    fn writable(&self) -> bool {
        true
    }

    /// Whether the content outlives the object. `false` (anonymous memory): `sync` writes
    /// nothing back and `close` (the last handle's drop) discards dirty pages instead of writing
    /// them back; reclaim still writes them back (pages out). Default: `true`.
    fn persistent(&self) -> bool {
        true
    }

    /// The page size this accessor was made for, if it has one: [`crate::Pages::open`] refuses an
    /// accessor whose page size differs from the pool's ([`crate::Error::AccessorPageSize`])
    /// rather than reading and writing pages at the wrong offsets. Default: `None` (any page
    /// size; `fill` and `flush` get the pool's pages).
    ///
    /// ```
    /// use pagecore::{Error, FileAccessor, Pages};
    /// let pages = Pages::builder().page_size(4096).frames(4).build()?;
    /// let file = tempfile::tempfile()?;
    /// let wrong = FileAccessor::new(file.try_clone()?, 512);
    /// assert!(matches!(pages.open(wrong, 1 << 20), Err(Error::AccessorPageSize { accessor: 512, page_size: 4096 })));
    /// let right = FileAccessor::new(file, pages.page_size());
    /// assert!(pages.open(right, 1 << 20).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn page_size(&self) -> Option<usize> {
        None
    }

    /// The anonymous memory behind this accessor, if it is one ([`crate::backing::anonymous::Anonymous`]).
    /// pagecore uses it to move an object's swap slots into the frozen layer when the object is
    /// copied ([`crate::PageMapper::copy`]). Other accessors keep the default, `None`.
    fn as_anonymous(&self) -> Option<&crate::backing::anonymous::Anonymous> {
        None
    }
}

/// Calls `f` (an accessor call), turning a panic into an `io::Error` so a misbehaving accessor
/// cannot strand a fill record, a frame, or the clients waiting on them.
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(io::Error::other(format!(
            "accessor panicked in {what}: {msg}"
        )))
    })
}

/// A real file, read and written with positional I/O. Reads past end-of-file give zeros; the file
/// grows when a page beyond its end is written back.
#[derive(Debug)]
pub struct FileAccessor {
    file: File,
    page_size: u64,
}

impl FileAccessor {
    /// Wraps an open file (opened for reading and writing if pages will be written).
    pub fn new(file: File, page_size: usize) -> Self {
        Self {
            file,
            page_size: page_size as u64,
        }
    }

    /// Opens (creating if needed) the file at `path` for reading and writing.
    pub fn open(path: impl AsRef<Path>, page_size: usize) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Self::new(file, page_size))
    }

    /// The file's current length in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

#[cfg(unix)]
pub(crate) fn read_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, off)
}
#[cfg(unix)]
pub(crate) fn write_all_at(f: &File, buf: &[u8], off: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, off)
}
#[cfg(windows)]
pub(crate) fn read_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, off)
}
#[cfg(windows)]
pub(crate) fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, off)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        off += n as u64;
    }
    Ok(())
}

/// Fills `buf` from `off`, with zeros past the end of the file.
pub(crate) fn read_exact_or_zero_at(f: &File, buf: &mut [u8], mut off: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(f, &mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

impl Accessor for FileAccessor {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        read_exact_or_zero_at(&self.file, buf, page * self.page_size)
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size as usize)
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        write_all_at(&self.file, buf, page * self.page_size)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

type FillFn = dyn Fn(u64, &mut [u8]) -> io::Result<()> + Send + Sync;
type FlushFn = dyn Fn(u64, &[u8]) -> io::Result<()> + Send + Sync;

/// Computed data: a closure fills each page. Read-only unless a write-back closure is given.
pub struct ComputedAccessor {
    fill: Box<FillFn>,
    flush: Option<Box<FlushFn>>,
}

impl std::fmt::Debug for ComputedAccessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputedAccessor")
            .field("writable", &self.flush.is_some())
            .finish()
    }
}

impl ComputedAccessor {
    /// Pages are computed by `fill(page, buf)`; the object is read-only.
    pub fn new(fill: impl Fn(u64, &mut [u8]) -> io::Result<()> + Send + Sync + 'static) -> Self {
        Self {
            fill: Box::new(fill),
            flush: None,
        }
    }

    /// Makes the object writable: dirty pages are handed to `flush(page, bytes)`.
    pub fn with_flush(
        mut self,
        flush: impl Fn(u64, &[u8]) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.flush = Some(Box::new(flush));
        self
    }
}

impl Accessor for ComputedAccessor {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        (self.fill)(page, buf)
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        match &self.flush {
            Some(f) => f(page, buf),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "computed object is read-only",
            )),
        }
    }

    fn writable(&self) -> bool {
        self.flush.is_some()
    }
}

/// An in-memory backing store: pages never written read as zeros.
#[derive(Debug)]
pub struct MemoryAccessor {
    pages: Mutex<HashMap<u64, Box<[u8]>>>,
}

impl Default for MemoryAccessor {
    fn default() -> Self {
        Self {
            pages: Mutex::new(crate::sync::Level::Store, HashMap::new()),
        }
    }
}

impl MemoryAccessor {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the stored content of `page` (`None` if never written back).
    pub fn stored(&self, page: u64) -> Option<Vec<u8>> {
        lock(&self.pages).get(&page).map(|b| b.to_vec())
    }

    /// Number of pages ever written back.
    pub fn stored_pages(&self) -> usize {
        lock(&self.pages).len()
    }
}

impl Accessor for MemoryAccessor {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        match lock(&self.pages).get(&page) {
            Some(b) => buf.copy_from_slice(&b[..buf.len()]),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        lock(&self.pages).insert(page, buf.into());
        Ok(())
    }
}

impl<A: Accessor> Accessor for Arc<A> {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).fill(page, buf)
    }
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        (**self).flush(page, buf)
    }
    fn sync_all(&self) -> io::Result<()> {
        (**self).sync_all()
    }
    fn writable(&self) -> bool {
        (**self).writable()
    }
    fn persistent(&self) -> bool {
        (**self).persistent()
    }
    fn as_anonymous(&self) -> Option<&crate::backing::anonymous::Anonymous> {
        (**self).as_anonymous()
    }
}
