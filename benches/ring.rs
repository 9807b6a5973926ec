//! Side-by-side throughput of the harmonizer ring and its peers, one producer thread feeding one
//! consumer thread.
//!
//! Two groups, `ring_64B` and `ring_256B`: every record is 64 or 256 bytes *including* the
//! 32-byte [`EventHeader`] (so a harmonizer payload of 32 or 224 bytes; harmonizer adds its own
//! 8-byte frame header on top). One criterion iteration is one record moved from the producer
//! thread to the consumer thread (`Throughput::Elements(1)`, so `thrpt` is records per second).
//!
//! Entries:
//!
//! - `harmonizer`: `Producer::push` one record at a time; the consumer `peek`s and `release`s
//!   one at a time (one `Release` store per record on each side).
//! - `harmonizer_batch64`: the producer pushes 64 records through `Producer::batch` and publishes
//!   them with one store; the consumer reads up to 64 with `Consumer::consume` and frees them
//!   with one store.
//! - `file_checked`, `file_unchecked` (and `_batch64`): the same two ways, on a ring file (the
//!   ring's memory and words in a mapped file under /dev/shm, both ends in this process), with
//!   the checks the consumer makes on every frame and position another process wrote
//!   (`ring::check`, issue 19) and without them: the checks' cost, side by side.
//! - `rtrb`: `rtrb::RingBuffer` of the same 64/256-byte record type, `push`/`pop` one at a time.
//! - `rtrb_chunk64`: the same ring through rtrb's chunk API, the fair peer of
//!   `harmonizer_batch64`: the producer writes up to 64 records with
//!   `write_chunk_uninit(n).fill_from_iter` (one commit), the consumer reads up to 64 with
//!   `read_chunk(n)`, folds them from `as_slices` and frees them with `commit_all`.
//! - `array_queue`: `crossbeam_queue::ArrayQueue` of the same record type, `push`/`pop` one at a
//!   time (an MPMC queue, here used SPSC).
//! - `ceiling`: an ideal handoff, the most any ring could hope for: the producer copies records
//!   into a 4 MiB buffer (reused as a ring) and publishes its position once per 64 KiB; the
//!   consumer waits for that position, reads the records behind it and hands space back once per
//!   64 KiB. No per-record synchronisation at all. Its buffer is deliberately larger than the
//!   rings (which take 256 KiB to 2 MiB), and part of its lead comes from that size, not only
//!   from the coarse handoff: once the buffer is bigger than a core's private caches, the
//!   producer overwrites lines that have already left the consumer's caches.
//!
//! Every entry does the same work per record: the producer stamps a distinct `seq` into the
//! header and into the first 8 payload bytes of a producer-local record (the rest of the payload
//! is a fixed fill) and copies the record in; the consumer adds the header's `seq` and the last
//! payload byte into a checksum, which is `black_box`ed and checked against the expected value at
//! the end of every sample (that also checks that exactly `iters` records arrived, intact and
//! in full). The queues hold 4096 records; the harmonizer ring is sized with
//! `RingConfig::for_records(4096, payload)`, which rounds up to a power of two of bytes (about
//! 7.3k records of 64 B, 7.9k of 256 B). A full or empty queue is waited on with
//! `std::hint::spin_loop`.
//!
//! The producer thread is persistent for each entry (it waits on a channel between samples), and
//! each entry first moves 200 000 records untimed through the same code, which wraps every ring
//! several times, so `cargo test --benches` checks the plumbing of every entry too.
//!
//! Absolute numbers depend on the machine and its load; compare entries with ratios taken from
//! one run (`cargo bench --bench ring`), never across runs. The benchmark needs two otherwise idle
//! cores: on a virtual machine the two threads may land on nearby or distant physical cores, and
//! that alone can move every entry by a factor of several from one run to the next, so repeat a
//! run before trusting a ratio.

use std::cell::UnsafeCell;
use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
#[cfg(target_os = "linux")]
use harmonizer_core::engine::StreamStorage;
use harmonizer_core::event::{EventHeader, EVENT_HEADER_SIZE};
use harmonizer_core::ring::{ring, Consumer, Producer, PushError, Record, RingConfig, Storage};

/// Queue capacity in records.
const RECORDS: usize = 4096;
/// Records per batch in `harmonizer_batch64`.
const BATCH: usize = 64;
/// Bytes of the `ceiling` buffer.
const CEILING_BYTES: usize = 4 << 20;
/// The `ceiling` publishes and hands back space once per this many bytes.
const CEILING_BLOCK: u64 = 64 << 10;
/// Records moved untimed through each entry before it is measured.
const SELF_CHECK_RECORDS: u64 = 200_000;
/// Every payload byte except the stamped `seq`.
const FILL: u8 = 0xA5;

/// A record as the peers carry it: the same header and payload bytes harmonizer stores.
#[repr(C)]
#[derive(Clone, Copy)]
struct Rec<const P: usize> {
    header: EventHeader,
    payload: [u8; P],
}

impl<const P: usize> Rec<P> {
    const SIZE: usize = {
        assert!(core::mem::size_of::<Self>() == EVENT_HEADER_SIZE + P);
        assert!(P >= 8);
        core::mem::size_of::<Self>()
    };

    fn new() -> Self {
        Rec { header: EventHeader::default(), payload: [FILL; P] }
    }

    /// Writes `seq` into the header and the first 8 payload bytes.
    #[inline(always)]
    fn stamp(&mut self, seq: u64) {
        self.header.seq = seq;
        self.payload[..8].copy_from_slice(&seq.to_ne_bytes());
    }

    /// The consumer's read of a peer record.
    #[inline(always)]
    fn fold(&self, sum: u64) -> u64 {
        fold(sum, self.header.seq, self.payload[P - 1])
    }
}

/// The checksum step every consumer does for every record.
#[inline(always)]
fn fold(sum: u64, seq: u64, last: u8) -> u64 {
    sum.wrapping_add(seq).wrapping_add(u64::from(last))
}

/// The consumer's read of a harmonizer record.
#[inline(always)]
fn fold_record<const P: usize>(sum: u64, r: Record<'_>) -> u64 {
    fold(sum, r.header.seq, r.payload[P - 1])
}

/// The checksum of records `first .. first + n`.
fn expected_sum(first: u64, n: u64) -> u64 {
    let triangle = (u128::from(n) * u128::from(n.saturating_sub(1)) / 2) as u64;
    n.wrapping_mul(first.wrapping_add(u64::from(FILL))).wrapping_add(triangle)
}

/// One benchmark entry: a persistent producer thread and the consumer, run on the bench thread.
struct Entry<C: FnMut(u64) -> u64> {
    /// Tells the producer thread how many records to produce next.
    start: Option<mpsc::Sender<u64>>,
    producer: Option<JoinHandle<()>>,
    /// Consumes exactly `n` records and returns their checksum.
    consume: C,
    /// The `seq` of the next record.
    next_seq: u64,
}

impl<C: FnMut(u64) -> u64> Entry<C> {
    /// `produce(n)` must push the next `n` records, with consecutive `seq`s from 0.
    fn new(mut produce: impl FnMut(u64) + Send + 'static, consume: C) -> Self {
        let (start, rx) = mpsc::channel::<u64>();
        let producer = thread::spawn(move || {
            for n in rx {
                produce(n);
            }
        });
        let mut entry = Entry { start: Some(start), producer: Some(producer), consume, next_seq: 0 };
        entry.run(SELF_CHECK_RECORDS);
        entry
    }

    /// Moves `n` records and returns the time it took, from the start signal to the last read.
    fn run(&mut self, n: u64) -> Duration {
        let t0 = Instant::now();
        self.start.as_ref().expect("producer running").send(n).expect("producer thread alive");
        let sum = black_box((self.consume)(n));
        let elapsed = t0.elapsed();
        assert_eq!(sum, expected_sum(self.next_seq, n), "checksum of records {} + {n}", self.next_seq);
        self.next_seq += n;
        elapsed
    }
}

impl<C: FnMut(u64) -> u64> Drop for Entry<C> {
    fn drop(&mut self) {
        drop(self.start.take());
        if let Some(handle) = self.producer.take() {
            let joined = handle.join();
            if !thread::panicking() {
                joined.expect("producer thread panicked");
            }
        }
    }
}

fn harmonizer_one<const P: usize>() -> Entry<impl FnMut(u64) -> u64> {
    let (tx, rx) = ring(RingConfig::for_records(RECORDS, P)).expect("ring config");
    one_at_a_time::<P, _>(tx, rx)
}

fn harmonizer_batch<const P: usize>() -> Entry<impl FnMut(u64) -> u64> {
    let (tx, rx) = ring(RingConfig::for_records(RECORDS, P)).expect("ring config");
    batches::<P, _>(tx, rx)
}

/// The same ring on a ring file (both ends in this process), reading with the checks every
/// ring file gets (`checked`) or without them, as for a ring in this process.
#[cfg(target_os = "linux")]
fn file_ring<const P: usize>(
    name: &str,
    checked: bool,
) -> (Producer<StreamStorage>, Consumer<StreamStorage>) {
    let dir =
        if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let path = dir.join(format!("hz-ring-bench-{}-{name}-{P}.ring", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (tx, mut rx) =
        harmonizer_core::shm::file_ring(&path, RingConfig::for_records(RECORDS, P)).expect("ring file");
    // The mapping stays; the name is not needed.
    let _ = std::fs::remove_file(&path);
    if !checked {
        // SAFETY: the producer is this crate's, in this process, and nothing else writes the
        // file (its name is gone).
        unsafe { rx.trust_producer() };
    }
    (tx, rx)
}

fn one_at_a_time<const P: usize, S: Storage>(
    mut tx: Producer<S>,
    mut rx: Consumer<S>,
) -> Entry<impl FnMut(u64) -> u64> {
    let mut rec = Rec::<P>::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        for _ in 0..n {
            rec.stamp(seq);
            loop {
                match tx.push(&rec.header, &rec.payload) {
                    Ok(()) => break,
                    Err(PushError::Full) => spin_loop(),
                    Err(e) => panic!("push: {e}"),
                }
            }
            seq += 1;
        }
    };
    let consume = move |n: u64| {
        let mut sum = 0u64;
        let mut left = n;
        while left > 0 {
            match rx.peek().expect("active ring") {
                Some(r) => sum = fold_record::<P>(sum, r),
                None => {
                    spin_loop();
                    continue;
                }
            }
            rx.release().expect("a record was peeked");
            left -= 1;
        }
        sum
    };
    Entry::new(produce, consume)
}

fn batches<const P: usize, S: Storage>(
    mut tx: Producer<S>,
    mut rx: Consumer<S>,
) -> Entry<impl FnMut(u64) -> u64> {
    let mut rec = Rec::<P>::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        let mut left = n;
        while left > 0 {
            let want = left.min(BATCH as u64);
            let mut done = 0;
            let mut batch = tx.batch();
            while done < want {
                rec.stamp(seq);
                match batch.push(&rec.header, &rec.payload) {
                    Ok(()) => {
                        seq += 1;
                        done += 1;
                    }
                    // Full with records pending: publish them, so the consumer can make room.
                    Err(PushError::Full) if done > 0 => break,
                    Err(PushError::Full) => spin_loop(),
                    Err(e) => panic!("push: {e}"),
                }
            }
            batch.publish();
            left -= done;
        }
    };
    let consume = move |n: u64| {
        let mut sum = 0u64;
        let mut left = n;
        while left > 0 {
            let got = rx.consume(BATCH, |r| sum = fold_record::<P>(sum, r)).expect("active ring");
            if got == 0 {
                spin_loop();
            }
            left -= got as u64;
        }
        sum
    };
    Entry::new(produce, consume)
}

fn rtrb_entry<const P: usize>() -> Entry<impl FnMut(u64) -> u64> {
    let (mut tx, mut rx) = rtrb::RingBuffer::<Rec<P>>::new(RECORDS);
    let mut rec = Rec::<P>::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        for _ in 0..n {
            rec.stamp(seq);
            while tx.push(rec).is_err() {
                spin_loop();
            }
            seq += 1;
        }
    };
    let consume = move |n: u64| {
        let mut sum = 0u64;
        let mut left = n;
        while left > 0 {
            match rx.pop() {
                Ok(r) => {
                    sum = r.fold(sum);
                    left -= 1;
                }
                Err(_) => spin_loop(),
            }
        }
        sum
    };
    Entry::new(produce, consume)
}

fn rtrb_chunk_entry<const P: usize>() -> Entry<impl FnMut(u64) -> u64> {
    let (mut tx, mut rx) = rtrb::RingBuffer::<Rec<P>>::new(RECORDS);
    let mut rec = Rec::<P>::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        let mut left = n;
        while left > 0 {
            let want = (left as usize).min(BATCH).min(tx.slots());
            if want == 0 {
                spin_loop();
                continue;
            }
            let chunk = tx.write_chunk_uninit(want).expect("slots were free");
            let first = seq;
            let written = chunk.fill_from_iter((first..first + want as u64).map(|s| {
                rec.stamp(s);
                rec
            }));
            seq += written as u64;
            left -= written as u64;
        }
    };
    let consume = move |n: u64| {
        let mut sum = 0u64;
        let mut left = n;
        while left > 0 {
            let have = (left as usize).min(BATCH).min(rx.slots());
            if have == 0 {
                spin_loop();
                continue;
            }
            let chunk = rx.read_chunk(have).expect("slots were filled");
            let (a, b) = chunk.as_slices();
            for r in a.iter().chain(b) {
                sum = r.fold(sum);
            }
            chunk.commit_all();
            left -= have as u64;
        }
        sum
    };
    Entry::new(produce, consume)
}

fn array_queue_entry<const P: usize>() -> Entry<impl FnMut(u64) -> u64> {
    let queue = Arc::new(ArrayQueue::<Rec<P>>::new(RECORDS));
    let tx = Arc::clone(&queue);
    let mut rec = Rec::<P>::new();
    let mut seq = 0u64;
    let produce = move |n: u64| {
        for _ in 0..n {
            rec.stamp(seq);
            while tx.push(rec).is_err() {
                spin_loop();
            }
            seq += 1;
        }
    };
    let consume = move |n: u64| {
        let mut sum = 0u64;
        let mut left = n;
        while left > 0 {
            match queue.pop() {
                Some(r) => {
                    sum = r.fold(sum);
                    left -= 1;
                }
                None => spin_loop(),
            }
        }
        sum
    };
    Entry::new(produce, consume)
}

/// The `ceiling` buffer and its two positions (byte counts since the start, never wrapped).
struct Ceiling {
    buf: Box<[UnsafeCell<u64>]>,
    /// Bytes the producer has written and published. Written only by the producer.
    published: CachePadded<AtomicU64>,
    /// Bytes the consumer has finished reading. Written only by the consumer.
    consumed: CachePadded<AtomicU64>,
}

// SAFETY: the buffer's bytes are shared by the handoff protocol alone: the producer writes only
// bytes whose previous contents the consumer has signalled done (`consumed`, Release/Acquire),
// and the consumer reads only bytes below `published` (Release/Acquire), which the producer does
// not touch again until the consumer hands them back. So no byte is accessed by both threads
// without a happens-before edge between the accesses. The positions are atomics.
unsafe impl Sync for Ceiling {}

impl Ceiling {
    fn new() -> Self {
        const { assert!(CEILING_BYTES as u64 % CEILING_BLOCK == 0) };
        Ceiling {
            buf: (0..CEILING_BYTES / 8).map(|_| UnsafeCell::new(0)).collect(),
            published: CachePadded::new(AtomicU64::new(0)),
            consumed: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// The record slot at byte position `pos` (a multiple of the record size).
    #[inline(always)]
    fn slot<const P: usize>(&self, pos: u64) -> *mut Rec<P> {
        let offset = (pos % CEILING_BYTES as u64) as usize;
        debug_assert!(offset % Rec::<P>::SIZE == 0 && offset + Rec::<P>::SIZE <= CEILING_BYTES);
        // `UnsafeCell<u64>` has the layout of `u64` and allows writes through a shared
        // reference, so a pointer derived from the slice may write any of its bytes.
        self.buf.as_ptr().cast::<u8>().cast_mut().wrapping_add(offset).cast()
    }
}

fn ceiling_entry<const P: usize>() -> Entry<impl FnMut(u64) -> u64> {
    let size = Rec::<P>::SIZE as u64;
    // Records then tile blocks and the buffer exactly, so none straddles the buffer's end.
    assert!(CEILING_BLOCK % size == 0, "record size must divide the block");
    let shared = Arc::new(Ceiling::new());
    let theirs = Arc::clone(&shared);
    let mut rec = Rec::<P>::new();
    let mut seq = 0u64;
    let mut written = 0u64;
    let mut consumed = 0u64;
    let produce = move |n: u64| {
        let sh = &*theirs;
        for _ in 0..n {
            rec.stamp(seq);
            while written + size > consumed + CEILING_BYTES as u64 {
                consumed = sh.consumed.load(Ordering::Acquire);
                if written + size <= consumed + CEILING_BYTES as u64 {
                    break;
                }
                spin_loop();
            }
            // SAFETY: the slot is inside the buffer, 8-aligned (the buffer is, and `written` is a
            // multiple of the record size, a multiple of 8). Its bytes were last read by the
            // consumer at position `written - CEILING_BYTES` or earlier, which is below
            // `consumed` (just checked); the consumer stored `consumed` with Release after those
            // reads and we loaded it with Acquire, so they happen-before this write. The
            // consumer will not read these bytes again until we publish past them.
            unsafe { sh.slot::<P>(written).write(rec) };
            written += size;
            seq += 1;
            if written % CEILING_BLOCK == 0 {
                sh.published.store(written, Ordering::Release);
            }
        }
        // The sample's last partial block.
        sh.published.store(written, Ordering::Release);
    };
    let mut read = 0u64;
    let mut published = 0u64;
    let consume = move |n: u64| {
        let sh = &*shared;
        let mut sum = 0u64;
        for _ in 0..n {
            while read == published {
                published = sh.published.load(Ordering::Acquire);
                if read != published {
                    break;
                }
                spin_loop();
            }
            // SAFETY: `read < published`: the producer wrote this record and then stored
            // `published` with Release, which we loaded with Acquire, so the write
            // happens-before this read. The slot is in bounds and aligned (see the producer),
            // and the producer does not write it again until we store a `consumed` past it,
            // which happens after this borrow ends. Any bytes are a valid `Rec`.
            let r = unsafe { &*sh.slot::<P>(read) };
            sum = r.fold(sum);
            read += size;
            if read % CEILING_BLOCK == 0 {
                sh.consumed.store(read, Ordering::Release);
            }
        }
        sh.consumed.store(read, Ordering::Release);
        sum
    };
    Entry::new(produce, consume)
}

/// Measures one entry: one criterion iteration is one record.
fn measure<C: FnMut(u64) -> u64>(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, mut entry: Entry<C>) {
    group.bench_function(id, |b| b.iter_custom(|iters| entry.run(iters)));
}

/// The five entries for records of `EVENT_HEADER_SIZE + P` bytes.
fn group<const P: usize>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("ring_{}B", Rec::<P>::SIZE));
    group.throughput(Throughput::Elements(1));
    measure(&mut group, "harmonizer", harmonizer_one::<P>());
    measure(&mut group, "harmonizer_batch64", harmonizer_batch::<P>());
    // Ring files: the checks on what another process wrote, on and off, side by side.
    #[cfg(target_os = "linux")]
    {
        let (tx, rx) = file_ring::<P>("one-checked", true);
        measure(&mut group, "file_checked", one_at_a_time::<P, _>(tx, rx));
        let (tx, rx) = file_ring::<P>("one-unchecked", false);
        measure(&mut group, "file_unchecked", one_at_a_time::<P, _>(tx, rx));
        let (tx, rx) = file_ring::<P>("batch-checked", true);
        measure(&mut group, "file_checked_batch64", batches::<P, _>(tx, rx));
        let (tx, rx) = file_ring::<P>("batch-unchecked", false);
        measure(&mut group, "file_unchecked_batch64", batches::<P, _>(tx, rx));
    }
    measure(&mut group, "rtrb", rtrb_entry::<P>());
    measure(&mut group, "rtrb_chunk64", rtrb_chunk_entry::<P>());
    measure(&mut group, "array_queue", array_queue_entry::<P>());
    measure(&mut group, "ceiling", ceiling_entry::<P>());
    group.finish();
}

fn rings(c: &mut Criterion) {
    group::<{ 64 - EVENT_HEADER_SIZE }>(c);
    group::<{ 256 - EVENT_HEADER_SIZE }>(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = rings
}
criterion_main!(benches);
