//! loom model of the shared staging pool (`harmonizer_core::engine::StagingPool`,
//! `# Orderings` in `engine/pool.rs`): engines granting and giving back concurrently never
//! hold more than the capacity together, the pool's count ends equal to what they hold, and a
//! bid is withdrawn only by the engine that posted it.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_pool`.

#![cfg(loom)]

use harmonizer_core::engine::{PoolConfig, StagingPool};
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Three engines ask for 40, 40 and 30 bytes of a 100-byte pool; the first gives back 40 and
/// asks again. Whatever the interleaving: what they hold together (counted by the model on the
/// side) never exceeds 100, and the pool's `used` ends equal to it.
#[test]
fn loom_grants_never_exceed_the_capacity() {
    loom::model(|| {
        let pool = Arc::new(StagingPool::new(PoolConfig::new(100)).unwrap());
        let held = Arc::new(AtomicU64::new(0));
        let take = |pool: &StagingPool, held: &AtomicU64, bytes: u64| {
            if pool.try_grant(bytes, 0, 1.0, 0).is_ok() {
                let now = held.fetch_add(bytes, Ordering::SeqCst) + bytes;
                assert!(now <= 100, "{now} held");
                true
            } else {
                false
            }
        };
        let t1 = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                if take(&pool, &held, 40) {
                    held.fetch_sub(40, Ordering::SeqCst);
                    pool.give_back(40);
                }
                take(&pool, &held, 40);
            })
        };
        let t2 = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                take(&pool, &held, 40);
            })
        };
        take(&pool, &held, 30);
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(pool.used() <= 100);
        assert_eq!(pool.used(), held.load(Ordering::SeqCst));
    });
}

/// Two engines bid 10 and 20; the lower one withdraws its own word. Whatever the
/// interleaving, the 20-bid stands at the end: a 10-bid never replaces a standing 20, and the
/// withdrawal removes only a word equal to the 10-bid's.
#[test]
fn loom_a_bid_is_withdrawn_only_by_its_bidder() {
    loom::model(|| {
        let pool = Arc::new(StagingPool::new(PoolConfig::new(100)).unwrap());
        let low = {
            let pool = pool.clone();
            thread::spawn(move || {
                let w = pool.bid(10.0, 0);
                pool.withdraw(w);
            })
        };
        pool.bid(20.0, 0);
        low.join().unwrap();
        assert_eq!(pool.pressure(0), Some(20.0));
    });
}
