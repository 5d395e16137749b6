//! The bundled accessors and the pool's own reporting, through the public API: what a file, an
//! in-memory store and a computed object hold after write-backs, and what `Pages` shows of
//! itself. (Mutation testing of the files outside the protocol found these unchecked.)

use pagecore::{Accessor, ComputedAccessor, FileAccessor, MemoryAccessor, Pages};
use std::sync::{Arc, Mutex};

const PAGE: usize = 64;

fn pages() -> Pages {
    Pages::builder().page_size(PAGE).frames(4).build().unwrap()
}

#[test]
fn pages_show_their_frames_and_page_size() {
    let shown = format!("{:?}", pages());
    assert!(shown.contains("frames: 4"), "{shown}");
    assert!(shown.contains("page_size: 64"), "{shown}");
}

#[test]
fn a_file_is_empty_until_a_page_is_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileAccessor::open(dir.path().join("f"), PAGE).unwrap());
    assert!(file.is_empty().unwrap());
    let pages = pages();
    let o = pages.open(file.clone(), 2 * PAGE as u64).unwrap();
    o.write(1).unwrap()[0] = 9;
    assert!(file.is_empty().unwrap(), "written back before a sync");
    o.sync().unwrap();
    assert!(!file.is_empty().unwrap());
    assert_eq!(file.len().unwrap(), 2 * PAGE as u64);
    // Read back through the accessor: the written page, and zeros for the hole before it and
    // past the end of the file.
    let mut buf = [1u8; PAGE];
    file.fill(1, &mut buf).unwrap();
    assert_eq!((buf[0], buf[1]), (9, 0));
    file.fill(0, &mut buf).unwrap();
    assert_eq!(buf, [0; PAGE]);
    buf.fill(1);
    file.fill(5, &mut buf).unwrap();
    assert_eq!(buf, [0; PAGE]);
}

#[test]
fn a_memory_store_counts_the_pages_written_back() {
    let store = Arc::new(MemoryAccessor::new());
    let pages = pages();
    let o = pages.open(store.clone(), 4 * PAGE as u64).unwrap();
    assert_eq!(store.stored_pages(), 0);
    o.write(0).unwrap()[0] = 1;
    o.write(2).unwrap()[0] = 3;
    drop(o.read(3).unwrap());
    o.sync().unwrap();
    assert_eq!(store.stored_pages(), 2, "only the written pages are stored");
    assert_eq!(store.stored(2).unwrap()[0], 3);
    assert_eq!(store.stored(3), None);
}

#[test]
fn a_computed_object_hands_its_dirty_pages_to_its_flush() {
    let flushed = Arc::new(Mutex::new(Vec::new()));
    let seen = flushed.clone();
    let acc = ComputedAccessor::new(|p, b| {
        b.fill(p as u8);
        Ok(())
    })
    .with_flush(move |p, b| {
        seen.lock().unwrap().push((p, b[0]));
        Ok(())
    });
    assert!(acc.writable());
    let pages = pages();
    let o = pages.open(Arc::new(acc), 2 * PAGE as u64).unwrap();
    assert_eq!(o.read(1).unwrap()[0], 1);
    o.write(1).unwrap()[0] = 7;
    o.sync().unwrap();
    assert_eq!(*flushed.lock().unwrap(), [(1, 7)]);
    let read_only = ComputedAccessor::new(|_, b| {
        b.fill(0);
        Ok(())
    });
    assert!(!read_only.writable());
    assert!(read_only.flush(0, &[0; PAGE]).is_err());
}

/// A read error is an error: a file accessor over a directory (every read fails, `EISDIR`) fails
/// the fill at once rather than retrying as if interrupted.
#[cfg(unix)]
#[test]
fn a_file_that_cannot_be_read_fails_the_fill() {
    let dir = tempfile::tempdir().unwrap();
    let acc = FileAccessor::new(std::fs::File::open(dir.path()).unwrap(), PAGE);
    let mut buf = [0u8; PAGE];
    assert!(acc.fill(0, &mut buf).is_err());
}

/// A pool that was given no swap area makes one of the default size on first use, big enough
/// for a copy of a file whose written pages do not fit in the frames.
#[test]
fn the_default_swap_area_takes_a_copys_pages() {
    let pages = pages();
    let x = pages
        .open(Arc::new(MemoryAccessor::new()), 8 * PAGE as u64)
        .unwrap();
    let y = x.copy().unwrap();
    for p in 0..8 {
        y.write(p).unwrap()[0] = p as u8 + 1;
    }
    for p in 0..8 {
        assert_eq!(y.read(p).unwrap()[0], p as u8 + 1);
        assert_eq!(x.read(p).unwrap()[0], 0);
    }
}

/// A swap area reports its geometry, hands out each slot once, and takes back only slots it
/// handed out (a second free of the same slot is refused).
#[test]
fn a_swap_area_reports_its_geometry_and_frees_each_slot_once() {
    let area = pagecore::SwapArea::temporary(PAGE, 130).unwrap();
    assert_eq!(
        (area.page_size(), area.slots(), area.in_use()),
        (PAGE, 130, 0)
    );
    let slots: Vec<_> = (0..130).map(|_| area.alloc().unwrap()).collect();
    assert_eq!(area.in_use(), 130);
    assert!(area.alloc().is_err(), "a full area handed out a slot");
    let mut sorted = slots.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 130, "a slot was handed out twice");
    for &s in &slots[65..70] {
        area.free(s).unwrap();
        assert!(area.free(s).is_err(), "slot {s} freed twice");
    }
    assert_eq!(area.in_use(), 125);
    area.write(slots[0], &[7; PAGE]).unwrap();
    let mut back = [0; PAGE];
    area.read(slots[0], &mut back).unwrap();
    assert_eq!(back, [7; PAGE]);
    // Bad input is an error: a buffer of another size, a slot past the area.
    assert!(area.write(slots[0], &[7; PAGE - 1]).is_err());
    assert!(area.read(slots[0], &mut [0; PAGE + 1]).is_err());
    assert!(area.write(130, &[7; PAGE]).is_err());
    assert!(area.read(130, &mut back).is_err());
}

/// A page that the file's end cuts in two reads the file's bytes, then zeros (a short read, then
/// the end of the file).
#[test]
fn a_page_cut_by_the_end_of_the_file_reads_zeros_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let bytes: Vec<u8> = (0..PAGE + PAGE / 2).map(|i| i as u8 | 1).collect();
    std::fs::write(&path, &bytes).unwrap();
    let file = FileAccessor::open(&path, PAGE).unwrap();
    let mut buf = [0xEEu8; PAGE];
    file.fill(1, &mut buf).unwrap();
    assert_eq!(buf[..PAGE / 2], bytes[PAGE..]);
    assert_eq!(buf[PAGE / 2..], [0; PAGE / 2]);
}

/// A swap area refuses a slot size that is not a power of two, or outside 8 bytes to 1 GiB.
#[test]
fn a_swap_area_refuses_a_bad_slot_size() {
    use pagecore::SwapArea;
    for bad in [0, 4, 24, 100, 2 << 30] {
        assert!(SwapArea::temporary(bad, 4).is_err(), "slot size {bad}");
    }
    for good in [8, 64, 4096] {
        assert_eq!(SwapArea::temporary(good, 4).unwrap().page_size(), good);
    }
}

/// A page the file's end leaves one byte of: that byte, then zeros (the next read is at the end
/// of the file, not at the same offset again).
#[test]
fn a_page_with_one_byte_in_the_file_reads_that_byte_then_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut bytes = vec![0x11u8; PAGE];
    bytes.push(0x5A);
    std::fs::write(&path, &bytes).unwrap();
    let file = FileAccessor::open(&path, PAGE).unwrap();
    let mut buf = [0xEEu8; PAGE];
    file.fill(1, &mut buf).unwrap();
    assert_eq!(buf[0], 0x5A);
    assert_eq!(buf[1..], [0; PAGE - 1]);
}

/// Errors from the backing store carry their I/O kind; other errors have none.
#[test]
fn a_fill_error_carries_its_io_kind() {
    let acc = ComputedAccessor::new(|_, _| Err(std::io::ErrorKind::PermissionDenied.into()));
    let pages = pages();
    let o = pages.open(Arc::new(acc), PAGE as u64).unwrap();
    let e = o.read(0).unwrap_err();
    assert_eq!(
        e.io_kind(),
        Some(std::io::ErrorKind::PermissionDenied),
        "{e}"
    );
    o.clone().close().unwrap();
    let closed = o.read(0).unwrap_err();
    assert!(matches!(closed, pagecore::Error::Closed), "{closed}");
    assert_eq!(closed.io_kind(), None);
}
