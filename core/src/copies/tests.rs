//! Unit tests of copies: chains of copies, breaks, collapses and freezes.

use super::collapse::collapse_backing;
use super::resolve::copy_out;
use super::*;
use crate::backing::accessor::Accessor;
use crate::frames::Freeze;
use crate::sync::atomic::AtomicBool;
use crate::sync::Mutex;
use crate::{Access, Pages};
use std::io;

const PAGE: usize = 64;

/// A pool of `frames` frames whose waits give up after 3 seconds.
fn pool(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(Some(std::time::Duration::from_secs(3)))
        .build()
        .unwrap()
}

/// An anonymous object of one page in a pool of three frames (waits bounded).
fn anonymous() -> (Pages, PageMapper) {
    let pages = pool(3);
    let x = anonymous_in(&pages).1;
    (pages, x)
}

/// Another anonymous object of one page (its own swap area) in `pages`.
fn anonymous_in(pages: &Pages) -> (ShareArc<SwapArea>, PageMapper) {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 8).unwrap());
    let x = pages
        .open(ShareArc::new(Anonymous::new(swap.clone())), PAGE as u64)
        .unwrap();
    (swap, x)
}

/// A copy's freeze of `x` as `copy` runs it once its marking is done (under `x`'s fill-shard
/// locks, into a new empty layer), moving nothing else if it restarts.
fn freeze_now(x: &PageMapper) -> Freeze {
    let this: &Arc<MapperShared> = &x.shared;
    let swap = this.accessor.as_anonymous().unwrap().swap_area().clone();
    let store = ShareArc::new(FrozenStore::new(swap));
    let to = Arc::new(MapperShared::new(
        this.pages.clone(),
        this.swap.clone(),
        store.clone(),
        this.limit(),
        Layer::with(this.layer.chain, Some(store)),
    ));
    let _shards = this.lock_fill_shards();
    this.pages.freeze(this, &to, || {})
}

/// A page filled and written between a copy's marking and its freeze (the marking found it
/// absent, so it asked no writer to finish): the freeze must see the writer still at work
/// and restart, not make the page a read-only proxy under a live write guard, whose later
/// bytes would reach the snapshot. Played by hand: a held write guard, then the freeze.
/// (Mutation testing: no scenario puts a writer's bit on the entry at that moment.)
/// A collapse that read `c`'s backing before a copy of `c` replaced it: the copy moved
/// `c`'s pages into a new layer reading through the old backing (whose reader count stays
/// one), so only the backing itself shows the change. Collapsing the old backing into `c`
/// then would give `c` the layer's older pages and drop the new layer from its chain.
/// Played by hand: the backing is read, the copy runs, then the rest of the collapse.
/// (Found by mutation testing: the reader count's re-check is what the code relied on.)
#[test]
fn a_collapse_that_a_copy_overtook_leaves_the_chain_alone() {
    let pages = pool(2);
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 32).unwrap());
    let x = pages
        .open(ShareArc::new(Anonymous::new(swap.clone())), PAGE as u64)
        .unwrap();
    x.write(0).unwrap()[0] = 1;
    let y = x.copy().unwrap();
    y.write(0).unwrap()[0] = 2;
    drop(x);
    // The collapse reads Y's backing (the layer holding 1, read by Y alone) ...
    let seen = y.shared.layer.backing().expect("a backing");
    assert_eq!(seen.shared.layer.children.load(Ordering::SeqCst), 1);
    // ... a copy of Y moves Y's page (2) into a new layer above it ...
    let z = y.copy().unwrap();
    // ... and everything is paged out.
    let other = pages
        .open(ShareArc::new(Anonymous::new(swap.clone())), 4 * PAGE as u64)
        .unwrap();
    for p in 0..4 {
        other.write(p).unwrap()[0] = 9;
    }
    assert!(
        !collapse_backing(&y.shared, &seen, None),
        "collapsed a stale backing"
    );
    assert_eq!(y.read(0).unwrap()[0], 2, "Y lost its page");
    assert_eq!(z.read(0).unwrap()[0], 2, "the copy lost its snapshot");
    // The old layer now collapses into the new one (read by Y and the copy: it stays).
    assert_eq!(y.compact(), 1);
    assert_eq!(y.read(0).unwrap()[0], 2);
    assert_eq!(z.read(0).unwrap()[0], 2);
    pages.census().unwrap();
}

/// A break that found its proxy's frame and owner, and then found the owner's entry naming
/// another frame (the frame was reclaimed from the owner, the owner's page refaulted
/// elsewhere, and the proxy made again for the frame's next owner), must look again, not copy
/// a frame it holds no pin on and publish it with pins counted against the wrong entry.
/// Played by hand: `copy_out` is given X0's proxy frame with, as its owner, another object's
/// page in another frame. (Mutation testing: no scenario reaches this five-party window.)
#[test]
fn a_break_whose_owner_names_another_frame_looks_again() {
    let (pages, x) = anonymous();
    x.write(0).unwrap()[0] = 5;
    let y = x.copy().unwrap();
    let sx = x.shared.map.slot(0).unwrap();
    let seen = EntryWord(sx.load(Ordering::SeqCst));
    let f = seen.frame().unwrap();
    assert!(seen.cow());
    let (_, z) = anonymous_in(&pages);
    z.write(0).unwrap()[0] = 7;
    let sz = z.shared.map.slot(0).unwrap();
    let z_seen = sz.load(Ordering::SeqCst);
    assert_ne!(EntryWord(z_seen).frame(), Some(f));
    let stale = Owner {
        mapper: (*z.shared).clone(),
        page: 0,
    };
    let this: &Arc<MapperShared> = &x.shared;
    let r = copy_out(this, 0, sx, 0, None, f, stale, &mut None);
    assert!(
        matches!(r, Ok(false)),
        "a break copied through a stale owner: {r:?}"
    );
    assert_eq!(sx.load(Ordering::SeqCst), seen.raw(), "X0's proxy changed");
    // (Its look at the other page counts as a use: its hit count may have risen.)
    let referenced = EntryWord::FREQ.mask();
    assert_eq!(
        sz.load(Ordering::SeqCst) & !referenced,
        z_seen & !referenced,
        "the other page's pins changed"
    );
    // The break proper still works.
    x.write(0).unwrap()[0] = 6;
    assert_eq!(y.read(0).unwrap()[0], 5);
    assert_eq!(z.read(0).unwrap()[0], 7);
    let c = pages.census().unwrap();
    assert_eq!(c.pinned, 0, "{c:?}");
}

/// A file that refuses every write-back while `broken` is set.
struct Fragile {
    pages: Mutex<std::collections::HashMap<u64, Vec<u8>>>,
    broken: AtomicBool,
}

impl Default for Fragile {
    fn default() -> Self {
        Self {
            pages: Mutex::new(crate::sync::Level::Store, Default::default()),
            broken: AtomicBool::new(false),
        }
    }
}

impl Accessor for Fragile {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        match lock(&self.pages).get(&page) {
            Some(b) => buf.copy_from_slice(b),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        lock(&self.pages).insert(page, buf.to_vec());
        Ok(())
    }
}

/// The source of a copy is dropped while its file refuses writes: its last handle's close
/// fails, so the source stays (its written page resident and dirty: nothing is lost), still
/// counted as a reader of the layer it shares with the copy. Once the file recovers and a
/// reclaim writes the page back, the source goes, and with it its count on the layer (which
/// a collapse needs at one). (Mutation testing: the layer's drop not detaching its backing
/// after a failed close kept the count one too high; only an anonymous chain collapses,
/// where such a close takes a reclaim slower than the wait bound, so the count is checked.)
#[test]
fn a_reader_gone_after_a_failed_close_leaves_the_layers_count() {
    let pages = pool(3);
    let file = ShareArc::new(Fragile::default());
    let x = pages.open(file.clone(), PAGE as u64).unwrap();
    x.write(0).unwrap()[0] = 1;
    let y = x.copy().unwrap();
    x.write(0).unwrap()[0] = 2;
    let layer = y.shared.layer.backing().expect("the copy reads a layer");
    let readers = || layer.shared.layer.children.load(Ordering::SeqCst);
    assert_eq!(readers(), 2);
    file.broken.store(true, Ordering::SeqCst);
    drop(x);
    assert_eq!(readers(), 2, "the source still reads the layer");
    file.broken.store(false, Ordering::SeqCst);
    let (_, z) = anonymous_in(&pages);
    let other = pages
        .open(ShareArc::new(crate::MemoryAccessor::new()), 4 * PAGE as u64)
        .unwrap();
    for p in 0..4 {
        drop(other.read(p).unwrap());
    }
    drop(z);
    assert_eq!(
        lock(&file.pages).get(&0).map(|b| b[0]),
        Some(2),
        "the write was lost"
    );
    assert_eq!(readers(), 1, "the source's count outlived it");
    assert_eq!(y.read(0).unwrap()[0], 1);
}

#[test]
fn a_freeze_restarts_for_a_plain_writer_at_work() {
    let (_pages, x) = anonymous();
    let mut g = x.write(0).unwrap();
    g[0] = 5;
    match freeze_now(&x) {
        Freeze::Restart(0, e) => assert!(e.writer(), "{e:?}"),
        Freeze::Restart(p, e) => panic!("restarted on page {p}: {e:?}"),
        Freeze::Done => panic!("froze a page under a write guard"),
    }
    g[0] = 6;
    drop(g);
    let y = x.copy().unwrap();
    assert_eq!(y.read(0).unwrap()[0], 6);
    x.write(0).unwrap()[0] = 7;
    assert_eq!(
        y.read(0).unwrap()[0],
        6,
        "a later write reached the snapshot"
    );
}

/// As above for a client's write grant (a hold, no writer bit): the freeze must restart.
#[test]
fn a_freeze_restarts_for_a_clients_write_grant() {
    let (_pages, x) = anonymous();
    let c = x.register().unwrap();
    let mut g = c.request(0, Access::Write).unwrap();
    g.bytes_mut().unwrap()[0] = 5;
    match freeze_now(&x) {
        Freeze::Restart(0, e) => {
            assert!(e.0 & EntryWord::HOLD_WRITE_BITS != 0, "{e:?}")
        }
        Freeze::Restart(p, e) => panic!("restarted on page {p}: {e:?}"),
        Freeze::Done => panic!("froze a page under a write grant"),
    }
    g.bytes_mut().unwrap()[0] = 6;
    g.release().unwrap();
    let y = x.copy().unwrap();
    assert_eq!(y.read(0).unwrap()[0], 6);
}
