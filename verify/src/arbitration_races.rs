//! Arbitration races (S8-S12, C15, C19): clients' requests, grants, releases and revocations,
//! with the helpers they share (`value`, `put`, `Exclusion`, `Mailbox`, `assert_arbitration_idle`).

use super::*;

// ----- arbitration scenarios (S8-S12) --------------------------------------------------------

/// The `u64` a grant shows.
pub fn value(g: &Grant<'_>) -> u64 {
    u64::from_le_bytes(g[..8].try_into().unwrap())
}

/// Writes `v` through a write grant.
pub fn put(g: &mut Grant<'_>, v: u64) {
    g.bytes_mut()
        .expect("a write grant")
        .copy_from_slice(&v.to_le_bytes());
}

/// An independent many-readers-or-one-writer checker (I9): counts of active grants, asserted on
/// entry to every grant's critical section.
#[derive(Default)]
pub struct Exclusion {
    readers: AtomicUsize,
    writers: AtomicUsize,
}

impl Exclusion {
    /// Enters as a reader; panics if a writer is active.
    pub fn read(&self) {
        self.readers.fetch_add(1, SeqCst);
        assert_eq!(self.writers.load(SeqCst), 0, "I9: a reader beside a writer");
    }
    /// Leaves as a reader.
    pub fn read_done(&self) {
        self.readers.fetch_sub(1, SeqCst);
    }
    /// Enters as the writer; panics if anyone else is active.
    pub fn write(&self) {
        assert_eq!(self.writers.fetch_add(1, SeqCst), 0, "I9: two writers");
        assert_eq!(self.readers.load(SeqCst), 0, "I9: a writer beside readers");
    }
    /// Leaves as the writer.
    pub fn write_done(&self) {
        self.writers.fetch_sub(1, SeqCst);
    }
}

/// A revocation mailbox a client's callback posts to and its owner waits on.
#[derive(Default)]
pub struct Mailbox {
    asks: Mutex<(u32, bool)>,
    cv: Condvar,
}

impl Mailbox {
    /// Registers a client of `obj` whose revocations are posted here.
    pub fn client(this: &Arc<Self>, obj: &PageMapper) -> Client {
        let me = this.clone();
        obj.register_with(move |_page: u64, _ask: Revocation| {
            lock(&me.asks).0 += 1;
            me.cv.notify_all();
        })
        .expect("register")
    }
    /// Revocations received so far.
    pub fn asks(&self) -> u32 {
        lock(&self.asks).0
    }
    /// Marks the scenario's other party done (and wakes the owner).
    pub fn finish(&self) {
        lock(&self.asks).1 = true;
        self.cv.notify_all();
    }
    /// Waits until more than `seen` revocations arrived, or the other party finished.
    pub fn wait_past(&self, seen: u32) {
        let mut g = lock(&self.asks);
        while g.0 <= seen && !g.1 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Asserts the arbitration invariants (I9-I12) and that nothing is held, waiting, or left in
/// the side table, and that every out-of-line record was freed exactly once.
pub fn assert_arbitration_idle(obj: &PageMapper) {
    let c = obj
        .arbitration()
        .unwrap_or_else(|e| panic!("arbitration invariant violated: {e}"));
    assert_eq!(
        (c.held_pages, c.waiting, c.side_entries, c.records),
        (0, 0, 0, 0),
        "arbitration state left behind: {c:?}"
    );
    assert_eq!(c.records_created, c.records_freed, "I11: {c:?}");
}

/// S8 two writers on one page: while client 0 writes A0, clients 1 and 2 request write access.
/// Never are two writers granted at once (the checker and loom's access tracking), and they are
/// granted in the order they entered the wait list (FIFO); each sees the previous writer's value.
pub fn s8_two_writers() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let ex = Arc::new(Exclusion::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let granted = Arc::new(Mutex::new(Vec::new()));
    let c0 = a.register().unwrap();
    let mut g0 = c0.request(0, Access::Write).unwrap();
    put(&mut g0, 1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let c = a.register().unwrap();
            let (ex, order, granted) = (ex.clone(), order.clone(), granted.clone());
            thread::spawn(move || {
                let pending = {
                    let mut o = lock(&order);
                    let p = c.enqueue(0, Access::Write).unwrap();
                    o.push(c.id());
                    p
                };
                let mut g = pending.wait().unwrap();
                ex.write();
                lock(&granted).push(c.id());
                let v = value(&g);
                put(&mut g, v + 1);
                ex.write_done();
            })
        })
        .collect();
    ex.write();
    ex.write_done();
    drop(g0);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        *lock(&order),
        *lock(&granted),
        "S8: grants out of FIFO order"
    );
    assert_eq!(read(&a, 0).unwrap().0, 3, "S8: a writer's update was lost");
    drop(c0);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S9 readers and a writer: client 0 reads A0; a writer W and a reader R2 request it
/// concurrently. Readers share (R2 arriving first is granted beside client 0 at once); the writer
/// waits for every reader; a reader arriving behind the waiting writer waits for it and then sees
/// its value.
pub fn s9_readers_and_writer() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let ex = Arc::new(Exclusion::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let c0 = a.register().unwrap();
    let g0 = c0.request(0, Access::Read).unwrap();
    ex.read();
    let w = {
        let (c, ex, order) = (a.register().unwrap(), ex.clone(), order.clone());
        thread::spawn(move || {
            let p = {
                let mut o = lock(&order);
                let p = c.enqueue(0, Access::Write).unwrap();
                o.push('W');
                p
            };
            let mut g = p.wait().unwrap();
            ex.write();
            put(&mut g, 9);
            ex.write_done();
        })
    };
    let r2 = {
        let (c, ex, order) = (a.register().unwrap(), ex.clone(), order.clone());
        thread::spawn(move || {
            let (mut p, first) = {
                let mut o = lock(&order);
                let p = c.enqueue(0, Access::Read).unwrap();
                o.push('R');
                (p, o.len() == 1)
            };
            if first {
                assert!(p.is_granted().unwrap(), "S9: readers must share");
            }
            let g = p.wait().unwrap();
            ex.read();
            let v = value(&g);
            ex.read_done();
            (first, v)
        })
    };
    assert_eq!(value(&g0), initial(A, 0));
    ex.read_done();
    drop(g0);
    w.join().unwrap();
    let (first, v) = r2.join().unwrap();
    if first {
        assert_eq!(
            v,
            initial(A, 0),
            "S9: the reader ahead of the writer saw its value"
        );
    } else {
        assert_eq!(
            v, 9,
            "S9: a reader behind a waiting writer was granted before it"
        );
    }
    drop(c0);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S10 voluntary release racing a revoke: client A writes A0, then releases it on its own while
/// client B's write request asks A to revoke; A then requests read access again and holds it
/// until it is asked to revoke (or B is done). No release is applied twice, no grant is lost
/// (B is granted; A is asked again for its second grant if B needs it, which a stale "asked"
/// mark would prevent: a deadlock), and the values follow the grant order.
pub fn s10_release_vs_revoke() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let mail = Arc::new(Mailbox::default());
    let ca = Mailbox::client(&mail, &a);
    let cb = a.register().unwrap();
    let mut g1 = ca.request(0, Access::Write).unwrap();
    put(&mut g1, 5);
    let b = {
        let mail = mail.clone();
        thread::spawn(move || {
            let mut g = cb.request(0, Access::Write).unwrap();
            let v = value(&g);
            put(&mut g, 6);
            drop(g);
            mail.finish();
            v
        })
    };
    drop(g1); // voluntary, racing B's revocation
    let seen = mail.asks();
    let g2 = ca.request(0, Access::Read).unwrap();
    let v2 = value(&g2);
    mail.wait_past(seen);
    drop(g2);
    let vb = b.join().unwrap();
    assert!(mail.asks() <= 2, "S10: A asked {} times", mail.asks());
    match v2 {
        5 => assert_eq!(vb, 5, "S10: B wrote after A's read but saw {vb}"),
        6 => assert_eq!(vb, 5, "S10: B did not see A's write"),
        v => panic!("S10: A read {v}"),
    }
    assert_eq!(read(&a, 0).unwrap().0, 6);
    drop(ca);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S11 reclaim of a held page racing a new request for it: one frame; client 1 holds A0 (read),
/// a plain fault on A1 needs the frame, and client 2 requests A0. Reclaim skips the held page and
/// asks its holders to release (the access list is its reverse map); the frame is reused only
/// after every holder released (loom's access tracking would flag a fill over a live grant);
/// client 2 reads A0's value whichever way the race goes; nothing deadlocks.
pub fn s11_reclaim_vs_request() {
    let pages = pool(1);
    let sa = Store::new(2, A);
    let a = open(&pages, &sa, 2);
    let mail = Arc::new(Mailbox::default());
    let c1 = Mailbox::client(&mail, &a);
    let g1 = c1.request(0, Access::Read).unwrap();
    let x = {
        let a = a.clone();
        thread::spawn(move || read(&a, 1).unwrap().0)
    };
    let r2 = {
        let c2 = a.register().unwrap();
        thread::spawn(move || value(&c2.request(0, Access::Read).unwrap()))
    };
    assert_eq!(value(&g1), initial(A, 0));
    mail.wait_past(0); // reclaim asks us to release
    drop(g1);
    assert_eq!(x.join().unwrap(), initial(A, 1));
    assert_eq!(r2.join().unwrap(), initial(A, 0));
    assert!(pages.stats().revocations >= 1);
    drop(c1);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S12 inline -> out-of-line transition racing other state changes: clients 2 and 3 read A0
/// (inline); a fifth client's read (which moves the page's state out of line) races a write
/// request of client 0 (queued behind the readers: a wait list, revocations) and the release of
/// the inline readers. Every state is checked at the end: nothing held or waiting, the page is
/// back inline, and every record created was freed exactly once.
pub fn s12_out_of_line_transition() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let cs: Vec<_> = (0..5).map(|_| a.register().unwrap()).collect();
    let mut cs = cs.into_iter();
    let (c0, c1, c2, c3, c4) = (
        cs.next().unwrap(),
        cs.next().unwrap(),
        cs.next().unwrap(),
        cs.next().unwrap(),
        cs.next().unwrap(),
    );
    assert_eq!(c4.id(), 4);
    let (g2, g3) = (
        c2.request(0, Access::Read).unwrap(),
        c3.request(0, Access::Read).unwrap(),
    );
    let fifth = thread::spawn(move || value(&c4.request(0, Access::Read).unwrap()));
    let writer = thread::spawn(move || {
        let mut g = c0.request(0, Access::Write).unwrap();
        put(&mut g, 9);
    });
    drop(g2);
    drop(g3);
    let v = fifth.join().unwrap();
    assert!(v == initial(A, 0) || v == 9, "S12: fifth client read {v}");
    writer.join().unwrap();
    assert_eq!(read(&a, 0).unwrap().0, 9);
    drop(c1);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// C15 a client's request racing a reclaim of the same page: one frame holds A0 (written); a
/// client of A requests A0 for reading while the main thread faults B0, which reclaims A0 (a
/// write-back, then the entry emptied). The
/// request is granted at once, or finds the page being reclaimed (ready as far as arbitration
/// goes, blocked only by the core) and waits on the entry (not in a loop: loom reports a spin),
/// then faults A0 back once B0's guard is gone. Both read their own page's value (A0 the written
/// one, from the frame or the store); arbitration is idle after; nothing pinned.
pub fn c15_request_vs_reclaim() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    write(&a, 0, 5).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || {
            let c = a.register().unwrap();
            let g = c.request(0, Access::Read).unwrap();
            value(&g)
        })
    };
    let vb = read(&b, 0).unwrap().0;
    assert_eq!(t.join().unwrap(), 5, "C15: the client read");
    assert_eq!(vb, initial(B, 0), "C15: the reclaiming fault read");
    assert_arbitration_idle(&a);
    assert_settled(&pages, "C15");
}

/// C19 a client's write request racing a plain writer of an absent page: X0 is not resident; a
/// thread writes 5 into it through a plain write guard while a client of X requests X0 for
/// writing and writes 7 through its grant. The request finds no frame and faults the page in
/// itself, or meets the writer's guard and waits on the entry (blocked only by the core: not in
/// a loop, which loom reports), or finds the page the writer left dirty and turns its fault's pin
/// into the grant. The two writes are ordered: the grant sees X0's old value or 5, and X0 ends
/// 5 or 7 to match; arbitration is idle after; the write reaches the store on sync.
pub fn c19_write_request_vs_plain_writer() {
    let pages = pool(1);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 5).unwrap())
    };
    let c = x.register().unwrap();
    let seen = {
        let mut g = c.request(0, Access::Write).unwrap();
        let seen = value(&g);
        put(&mut g, 7);
        seen
    };
    t.join().unwrap();
    let last = match seen {
        v if v == initial(A, 0) => 5,
        5 => 7,
        v => panic!("C19: the grant saw {v}"),
    };
    assert_eq!(read(&x, 0).unwrap().0, last, "C19: a write was lost");
    assert_arbitration_idle(&x);
    x.sync().unwrap();
    assert_eq!(s.get(0), last, "C19: the store");
    assert_settled(&pages, "C19");
}
