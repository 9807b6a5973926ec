//! loom model of the SIGBUS guard's table (`harmonizer_core::guard_table`, `# Orderings`): the
//! signal handler's lookup, racing a thread that registers, frees and re-registers a slot,
//! only ever acts on a `(start, len)` pair exactly as it was registered.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_guard`.

#![cfg(loom)]

use harmonizer_core::guard_table::GuardTable;
use loom::sync::Arc;
use loom::thread;

const A: (u64, u64) = (0x1000, 0x1000);
const B: (u64, u64) = (0x9000, 0x100);

#[test]
fn loom_a_lookup_never_mixes_two_registrations() {
    loom::model(|| {
        let table = Arc::new(GuardTable::<1>::new());
        let writer = {
            let table = Arc::clone(&table);
            thread::spawn(move || {
                let i = table.claim(A.0, A.1).expect("a free slot");
                table.free(i);
                table.claim(B.0, B.1).expect("the freed slot again");
            })
        };
        // The handler, looking for an address inside B's range as a mix of B's start and A's
        // length would also match, then for one only A's range holds.
        for addr in [0x9080, 0x1800] {
            if let Some((_, start, len)) = table.find(addr) {
                assert!((start, len) == A || (start, len) == B, "torn ({start:#x}, {len:#x})");
                assert!(addr >= start && addr - start < len);
            }
        }
        writer.join().unwrap();
        assert_eq!(table.find(0x9080).map(|(_, s, l)| (s, l)), Some(B));
        assert_eq!(table.find(0x1800), None);
    });
}

#[test]
fn loom_two_claimers_never_share_a_slot() {
    loom::model(|| {
        let table = Arc::new(GuardTable::<2>::new());
        let other = {
            let table = Arc::clone(&table);
            thread::spawn(move || table.claim(A.0, A.1))
        };
        let mine = table.claim(B.0, B.1);
        let theirs = other.join().unwrap();
        assert!(mine.is_some() && theirs.is_some() && mine != theirs);
        assert_eq!(table.find(0x1800).map(|(_, s, l)| (s, l)), Some(A));
        assert_eq!(table.find(0x9080).map(|(_, s, l)| (s, l)), Some(B));
    });
}
