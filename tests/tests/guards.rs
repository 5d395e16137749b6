//! What a guard reports about itself: its page, the frame the reverse map names as that page's,
//! the bytes its write went to (through `Deref` as well as `DerefMut`), and a `Debug` naming both.
//! (Mutation testing: accessors returning constants survived every other test.)

use pagecore::{MemoryAccessor, Pages};

const PAGE: usize = 64;

#[test]
fn guards_name_their_page_and_the_frame_the_reverse_map_gives_it() {
    let pages = Pages::builder().page_size(PAGE).frames(8).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 16 * PAGE as u64).unwrap();
    let mut frames = Vec::new();
    // Pages 2..8 land in six distinct frames; the guards say which.
    for p in 2..8u64 {
        let mut w = obj.write(p).unwrap();
        assert_eq!(w.page(), p);
        w.fill(p as u8 + 1);
        // Deref (not only DerefMut) shows the bytes just written.
        let shown: &[u8] = &w;
        assert_eq!(shown, &[p as u8 + 1; PAGE][..], "page {p}");
        let fw = w.frame();
        assert_eq!(
            format!("{w:?}"),
            format!("WriteGuard {{ page: {p}, frame: {fw} }}")
        );
        drop(w);
        let r = obj.read(p).unwrap();
        assert_eq!(r.page(), p);
        assert_eq!(r.frame(), fw, "page {p} moved without a reclaim");
        assert_eq!(&r[..], &[p as u8 + 1; PAGE][..]);
        assert_eq!(
            format!("{r:?}"),
            format!("ReadGuard {{ page: {p}, frame: {fw} }}")
        );
        let map = pages.rmap(fw).expect("a guard's frame is in the pool");
        let owner = map.owner.expect("a resident page's frame has an owner");
        assert_eq!((owner.object, owner.page), (obj.id(), p), "frame {fw}");
        frames.push(fw);
    }
    frames.sort_unstable();
    frames.dedup();
    assert_eq!(
        frames.len(),
        6,
        "six resident pages share a frame: {frames:?}"
    );
}

// ----- owned grants (here so that Miri checks their borrow of the client: ci/miri.sh) ---------

#[test]
fn an_owned_grant_keeps_its_client_registered_until_it_goes() {
    use pagecore::{Access, OwnedGrant};
    use std::sync::Arc;
    let pages = Pages::builder().page_size(64).frames(4).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 64 * 4).unwrap();
    obj.write(1).unwrap()[0] = 9;
    let client = Arc::new(obj.register().unwrap());
    let mut w = OwnedGrant::request(&client, 2, Access::Write).unwrap();
    let r = OwnedGrant::request(&client, 1, Access::Read).unwrap();
    drop(client); // the grants keep it
    assert_eq!(obj.arbitration().unwrap().clients, 1);
    assert_eq!(obj.arbitration().unwrap().held_pages, 2);
    w.bytes_mut().unwrap()[0] = 7;
    w.downgrade().unwrap();
    assert!(w.bytes_mut().is_err());
    let r = std::thread::spawn(move || (r[0], r)).join().unwrap();
    assert_eq!(r.0, 9);
    drop(r.1);
    w.release().unwrap();
    assert_eq!(obj.arbitration().unwrap().clients, 0);
    assert_eq!(obj.read(2).unwrap()[0], 7);
}
