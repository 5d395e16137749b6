//! Maps a file sixteen times larger than the pool and checksums it through a byte slice over
//! the mapping: pagecore faults each page in from the file on first touch (sequential, so
//! fault-around maps up to 32 pages per fault), evicts pages to stay within its frames, and the
//! checksum is compared with one computed from a plain read of the file.
//!
//! `cargo run --release -p pagecore --example lazy_file` (Linux, where userfaultfd is
//! permitted; elsewhere it says why and exits).

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use pagecore::{Error, FileAccessor, Mapping, Pages};
    use std::io::Write;
    use std::time::Instant;

    const PAGE: usize = 4096;
    const FRAMES: u64 = 1024; // 4 MiB of frames
    const FILE_PAGES: u64 = FRAMES * 16; // a 64 MiB file

    // A file of 64 MiB, every 8 bytes a different word.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..FILE_PAGES * PAGE as u64 / 8 {
        w.write_all(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes())?;
    }
    w.flush()?;
    drop(w);

    let pages = Pages::builder().page_size(PAGE).frames(FRAMES).build()?;
    let file = FileAccessor::open(&path, PAGE)?;
    let len = file.len()?;
    let map = match Mapping::new(&pages, file, len) {
        Ok(m) => m,
        Err(Error::Map(e)) => {
            println!("SKIPPED: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    let t = Instant::now();
    // SAFETY: nothing stores to the mapping or writes to its object while the slice lives.
    let bytes = unsafe { map.as_slice() };
    let mapped = checksum(bytes);
    let t_map = t.elapsed();

    let t = Instant::now();
    let plain = checksum(&std::fs::read(&path)?);
    let t_read = t.elapsed();

    let s = pages.stats();
    println!(
        "{} MiB file through {} MiB of frames: checksum {mapped:#018x} in {t_map:.2?} \
         (a plain read: {plain:#018x} in {t_read:.2?})",
        len >> 20,
        (FRAMES as usize * PAGE) >> 20
    );
    println!(
        "pages filled {}, evicted {}, resident now {}",
        s.fills,
        s.reclaims,
        pages.census()?.resident
    );
    assert_eq!(
        mapped, plain,
        "the mapping read other bytes than the file holds"
    );
    assert_eq!(s.fills, FILE_PAGES, "every page filled once");
    Ok(())
}

/// FNV-1a over 8-byte words.
#[cfg(target_os = "linux")]
fn checksum(b: &[u8]) -> u64 {
    b.chunks_exact(8).fold(0xcbf2_9ce4_8422_2325, |h, w| {
        (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: mappings need Linux's userfaultfd");
}
