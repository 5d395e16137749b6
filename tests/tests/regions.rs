//! Regions (issue 4, item 3) and the reverse map (item 4): address spaces bind ranges to objects,
//! faults compute the object page from the address, the region start and the region offset,
//! partial unmaps split regions, private regions are snapshots, revocations arrive as addresses,
//! and the reverse map names every page, client and region that uses a frame.

use pagecore::{Access, Error, MemoryAccessor, PageMapper, Pages, Revocation};
use pagecore::{AddressSpace, Protection, Sharing};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PS: u64 = 256;

fn setup(frames: u64, pages: u64) -> (Pages, PageMapper) {
    let pool = Pages::builder()
        .page_size(PS as usize)
        .frames(frames)
        .wait_bound(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    let obj = pool.open(MemoryAccessor::new(), pages * PS).unwrap();
    for p in 0..pages {
        obj.write(p).unwrap()[..8].copy_from_slice(&p.to_le_bytes());
    }
    (pool, obj)
}

fn page_at(space: &AddressSpace, addr: u64) -> u64 {
    let g = space.fault(addr, Access::Read).unwrap();
    u64::from_le_bytes(g[..8].try_into().unwrap())
}

#[test]
fn a_fault_maps_address_region_start_and_offset_to_the_page() {
    let (pool, obj) = setup(8, 32);
    let mut space = AddressSpace::new(&pool);
    space
        .map(
            0x1000 * PS,
            4 * PS,
            &obj,
            10 * PS,
            Protection::Read,
            Sharing::Shared,
        )
        .unwrap();
    space
        .map(
            0x2000 * PS,
            8 * PS,
            &obj,
            20 * PS,
            Protection::ReadWrite,
            Sharing::Shared,
        )
        .unwrap();
    for k in 0..4 {
        assert_eq!(page_at(&space, 0x1000 * PS + k * PS + 17), 10 + k);
    }
    for k in 0..8 {
        assert_eq!(page_at(&space, 0x2000 * PS + k * PS), 20 + k);
    }
    let f = space.translate(0x2000 * PS + 3 * PS + 5).unwrap();
    assert_eq!(
        (f.region_start, f.object_offset, f.page),
        (0x2000 * PS, 23 * PS + 5, 23)
    );
    assert_eq!(f.object, obj.id());
    // One client per object and space, shared by both regions.
    let infos: Vec<_> = space.regions().collect();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].client, infos[1].client);
    assert_eq!(obj.arbitration().unwrap().clients, 1);
}

#[test]
fn faults_outside_regions_or_against_protection_are_clear_errors() {
    let (pool, obj) = setup(8, 16);
    let mut space = AddressSpace::new(&pool);
    space
        .map(4 * PS, 2 * PS, &obj, 0, Protection::Read, Sharing::Shared)
        .unwrap();
    assert!(matches!(
        space.fault(3 * PS, Access::Read),
        Err(Error::NoRegion { addr }) if addr == 3 * PS
    ));
    assert!(matches!(
        space.fault(6 * PS, Access::Read),
        Err(Error::NoRegion { .. })
    ));
    assert!(matches!(
        space.fault(5 * PS, Access::Write),
        Err(Error::Protection {
            access: Access::Write,
            ..
        })
    ));
    // Bad arguments to map are errors, never panics.
    let e = space.map(8 * PS + 1, PS, &obj, 0, Protection::Read, Sharing::Shared);
    assert!(matches!(e, Err(Error::Unaligned { what: "start", .. })));
    let e = space.map(8 * PS, 0, &obj, 0, Protection::Read, Sharing::Shared);
    assert!(matches!(e, Err(Error::Unaligned { what: "length", .. })));
    let e = space.map(8 * PS, PS, &obj, 7, Protection::Read, Sharing::Shared);
    assert!(matches!(e, Err(Error::Unaligned { what: "offset", .. })));
    let e = space.map(5 * PS, 2 * PS, &obj, 0, Protection::Read, Sharing::Shared);
    assert!(matches!(e, Err(Error::Overlap { .. })));
    let e = space.map(
        8 * PS,
        4 * PS,
        &obj,
        14 * PS,
        Protection::Read,
        Sharing::Shared,
    );
    assert!(matches!(e, Err(Error::OutOfRange { .. })));
    let e = space.map(
        u64::MAX - PS + 1,
        2 * PS,
        &obj,
        0,
        Protection::Read,
        Sharing::Shared,
    );
    assert!(e.is_err());
    let ro = pool
        .open(
            pagecore::ComputedAccessor::new(|_, b| {
                b.fill(1);
                Ok(())
            }),
            4 * PS,
        )
        .unwrap();
    let e = space.map(64 * PS, PS, &ro, 0, Protection::ReadWrite, Sharing::Shared);
    assert!(matches!(e, Err(Error::ReadOnly)));
    // A private (copy-on-write) region of a read-only object can be written.
    space
        .map(64 * PS, PS, &ro, 0, Protection::ReadWrite, Sharing::Private)
        .unwrap();
    space
        .fault(64 * PS, Access::Write)
        .unwrap()
        .bytes_mut()
        .unwrap()[0] = 5;
    assert_eq!(ro.read(0).unwrap()[0], 1);
}

#[test]
fn unmapping_part_of_a_region_splits_it_and_the_pieces_keep_their_binding() {
    let (pool, obj) = setup(8, 32);
    let mut space = AddressSpace::new(&pool);
    space
        .map(
            100 * PS,
            10 * PS,
            &obj,
            5 * PS,
            Protection::ReadWrite,
            Sharing::Shared,
        )
        .unwrap();
    space.unmap(103 * PS, 2 * PS).unwrap(); // middle: two pieces
    space.unmap(109 * PS, 5 * PS).unwrap(); // the tail, and beyond
    space.unmap(0, PS).unwrap(); // nothing there: fine
    let infos: Vec<_> = space.regions().collect();
    assert_eq!(infos.len(), 2);
    assert_eq!(
        (infos[0].start, infos[0].len, infos[0].offset),
        (100 * PS, 3 * PS, 5 * PS)
    );
    assert_eq!(
        (infos[1].start, infos[1].len, infos[1].offset),
        (105 * PS, 4 * PS, 10 * PS)
    );
    assert_eq!(infos[0].client, infos[1].client);
    for a in [103, 104, 109] {
        assert!(matches!(
            space.fault(a * PS, Access::Read),
            Err(Error::NoRegion { .. })
        ));
    }
    assert_eq!(page_at(&space, 102 * PS), 7);
    assert_eq!(page_at(&space, 105 * PS), 10);
    assert_eq!(page_at(&space, 108 * PS), 13);
    // Writes through a piece reach the shared object.
    space
        .fault(106 * PS, Access::Write)
        .unwrap()
        .bytes_mut()
        .unwrap()[8] = 42;
    assert_eq!(obj.read(11).unwrap()[8], 42);
    // Unmapping everything releases the client.
    space.unmap(0, 1 << 30).unwrap();
    assert_eq!(space.regions().count(), 0);
    assert_eq!(obj.arbitration().unwrap().clients, 0);
}

#[test]
fn private_regions_are_snapshots_with_their_own_writes() {
    let (pool, obj) = setup(6, 16);
    let mut a = AddressSpace::new(&pool);
    let mut b = AddressSpace::new(&pool);
    a.map(0, 16 * PS, &obj, 0, Protection::ReadWrite, Sharing::Private)
        .unwrap();
    // The object moves on after a's mapping; b maps it privately after that.
    obj.write(3).unwrap()[..8].copy_from_slice(&303u64.to_le_bytes());
    b.map(0, 16 * PS, &obj, 0, Protection::ReadWrite, Sharing::Private)
        .unwrap();
    a.fault(5 * PS, Access::Write).unwrap().bytes_mut().unwrap()[..8]
        .copy_from_slice(&505u64.to_le_bytes());
    b.fault(6 * PS, Access::Write).unwrap().bytes_mut().unwrap()[..8]
        .copy_from_slice(&606u64.to_le_bytes());
    for p in 0..16 {
        let want_a = if p == 5 { 505 } else { p };
        let want_b = match p {
            3 => 303,
            6 => 606,
            _ => p,
        };
        let want_obj = if p == 3 { 303 } else { p };
        assert_eq!(page_at(&a, p * PS), want_a, "a page {p}");
        assert_eq!(page_at(&b, p * PS), want_b, "b page {p}");
        let g = obj.read(p).unwrap();
        assert_eq!(u64::from_le_bytes(g[..8].try_into().unwrap()), want_obj);
    }
    // Splitting a private region keeps its copy: both pieces see its writes.
    a.unmap(2 * PS, PS).unwrap();
    assert_eq!(page_at(&a, 5 * PS), 505);
    let objs: Vec<u64> = a.regions().map(|r| r.object).collect();
    assert_eq!(objs[0], objs[1]);
    assert_ne!(objs[0], obj.id());
    drop((a, b));
    drop(obj);
    assert_eq!(pool.census().unwrap().free, 6);
}

#[test]
fn revocations_arrive_as_addresses_and_the_reverse_map_names_regions_and_holders() {
    let (pool, obj) = setup(8, 16);
    let asked: Arc<Mutex<Vec<(u64, Revocation)>>> = Arc::default();
    let log = asked.clone();
    let mut space = AddressSpace::new(&pool)
        .with_revoke(move |addr, ask| log.lock().unwrap().push((addr, ask)));
    // Page 4 of the object is mapped twice in this space.
    space
        .map(
            0x100 * PS,
            8 * PS,
            &obj,
            0,
            Protection::ReadWrite,
            Sharing::Shared,
        )
        .unwrap();
    space
        .map(
            0x200 * PS,
            2 * PS,
            &obj,
            4 * PS,
            Protection::Read,
            Sharing::Shared,
        )
        .unwrap();
    let g = space.fault(0x104 * PS, Access::Read).unwrap();
    let frame = g.frame();
    // The reverse map: the object's page 4, held by the space's client, mapped by two regions.
    let map = pool.rmap(frame).unwrap();
    assert_eq!(map.owner.map(|o| (o.object, o.page)), Some((obj.id(), 4)));
    assert!(map.proxies.is_empty());
    assert_eq!(map.holders.len(), 1);
    assert_eq!(map.holders[0].access, Access::Read);
    let mut starts: Vec<u64> = map.regions.iter().map(|r| r.start).collect();
    starts.sort_unstable();
    assert_eq!(starts, vec![0x100 * PS, 0x200 * PS]);
    assert!(map.regions.iter().all(|r| r.space == space.id()));
    // Another client wants to write page 4: the space is asked, at both addresses.
    let other = obj.register().unwrap();
    let pending = other.enqueue(4, Access::Write).unwrap();
    let mut got = asked.lock().unwrap().clone();
    got.sort_unstable_by_key(|a| a.0);
    assert_eq!(
        got,
        vec![
            (0x104 * PS, Revocation::Release),
            (0x200 * PS, Revocation::Release)
        ]
    );
    drop(g);
    let w = pending.wait().unwrap();
    assert_eq!(w.page(), 4);
    drop(w);
    assert!(pool.rmap(u32::MAX).is_none());
}

#[test]
fn the_reverse_map_of_a_shared_frame_names_every_copy() {
    let (pool, obj) = setup(8, 4);
    let c1 = obj.copy().unwrap();
    let c2 = obj.copy().unwrap();
    let g1 = c1.register().unwrap();
    let r = g1.request(2, Access::Read).unwrap();
    let _ = obj.read(2).unwrap();
    let _ = c2.read(2).unwrap();
    let map = pool.rmap(r.frame()).unwrap();
    let mut mappers: Vec<u64> = map.proxies.iter().map(|p| p.object).collect();
    mappers.sort_unstable();
    let mut want = vec![obj.id(), c1.id(), c2.id()];
    want.sort_unstable();
    assert_eq!(mappers, want, "{map:?}");
    let owner = map.owner.unwrap();
    assert!(
        !want.contains(&owner.object),
        "a frozen layer owns the frame"
    );
    assert_eq!(map.holders.len(), 1);
    assert_eq!(map.holders[0].at.object, c1.id());
}

/// The reverse map keeps naming the pieces of a split region: after a hole is unmapped from the
/// middle of a region, a page of the right-hand piece is named with that piece's start.
#[test]
fn the_reverse_map_names_the_piece_right_of_a_hole() {
    let (pool, obj) = setup(8, 32);
    let mut space = AddressSpace::new(&pool);
    space
        .map(
            100 * PS,
            10 * PS,
            &obj,
            5 * PS,
            Protection::ReadWrite,
            Sharing::Shared,
        )
        .unwrap();
    space.unmap(103 * PS, 2 * PS).unwrap();
    let g = space.fault(106 * PS, Access::Read).unwrap();
    let map = pool.rmap(g.frame()).unwrap();
    let starts: Vec<u64> = map.regions.iter().map(|r| r.start).collect();
    assert_eq!(starts, vec![105 * PS], "{map:?}");
    let g = space.fault(101 * PS, Access::Read).unwrap();
    let map = pool.rmap(g.frame()).unwrap();
    let starts: Vec<u64> = map.regions.iter().map(|r| r.start).collect();
    assert_eq!(starts, vec![100 * PS], "{map:?}");
    // Object pages the pieces do not map (the hole's, and past the region) are named by none.
    for p in [8, 9, 15, 20] {
        let g = obj.read(p).unwrap();
        let map = pool.rmap(g.frame()).unwrap();
        assert!(map.regions.is_empty(), "object page {p}: {map:?}");
    }
}

/// An address space that goes takes only its own regions out of the object's reverse map: a
/// second space mapping the same page is still named.
#[test]
fn a_space_that_goes_leaves_the_other_spaces_in_the_reverse_map() {
    let (pool, obj) = setup(8, 16);
    let mut a = AddressSpace::new(&pool);
    a.map(
        0x100 * PS,
        8 * PS,
        &obj,
        0,
        Protection::Read,
        Sharing::Shared,
    )
    .unwrap();
    let mut b = AddressSpace::new(&pool);
    b.map(
        0x300 * PS,
        8 * PS,
        &obj,
        0,
        Protection::Read,
        Sharing::Shared,
    )
    .unwrap();
    assert_ne!(a.id(), b.id(), "two spaces with one id");
    let frame = a.fault(0x102 * PS, Access::Read).unwrap().frame();
    let map = pool.rmap(frame).unwrap();
    assert_eq!(map.regions.len(), 2, "{map:?}");
    let a_id = a.id();
    drop(b);
    let map = pool.rmap(frame).unwrap();
    let named: Vec<_> = map.regions.iter().map(|r| (r.space, r.start)).collect();
    assert_eq!(named, vec![(a_id, 0x100 * PS)], "{map:?}");
}

#[test]
fn an_address_space_shows_its_id_and_region_count() {
    let (pool, obj) = setup(4, 4);
    let mut space = AddressSpace::new(&pool);
    space
        .map(0, 2 * PS, &obj, 0, Protection::Read, Sharing::Shared)
        .unwrap();
    let shown = format!("{space:?}");
    assert!(shown.starts_with("AddressSpace"), "{shown}");
    assert!(shown.contains(&format!("id: {}", space.id())), "{shown}");
    assert!(shown.contains("regions: 1"), "{shown}");
}
