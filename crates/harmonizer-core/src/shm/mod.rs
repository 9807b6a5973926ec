//! Rings in a memory-mapped file: a producer in another process (Linux).
//!
//! The engine creates (or re-attaches to) a ring file for a stream with
//! [`Engine::attach_file`](crate::engine::Engine::attach_file); a feed-handler process opens it
//! with [`StreamProducer::open_file`](crate::engine::StreamProducer::open_file) and pushes as
//! into any ring. The file holds a checked header, the ring's atomic words and its record bytes
//! (layout: `header`), so the ring protocol is the in-process one, run on shared pages. Design
//! notes, the guarantees and their limits: `docs/shm.md`.
//!
//! # Orderings
//!
//! The ring's protocol is unchanged (`ring` module, `# Orderings`): the same atomics, now in
//! the mapping. An 8-byte atomic is lock-free and address-free, so the acquire/release pairs
//! hold between processes sharing the page exactly as between threads. What is new is how a
//! side *starts*:
//!
//! - **Producer (re)start.** It loads `tail` with `Acquire` and goes on from there. A killed
//!   producer's last `Release` store of `tail` is the only thing that ever made its bytes
//!   visible, so bytes it wrote past the tail (a record cut short by `SIGKILL`, an open batch)
//!   were never readable and are simply overwritten: no record is ever read torn. The record
//!   numbers go on from the frames in `[head, tail)`, which only a producer writes and none
//!   other is left (the producer lock, below, makes sure).
//! - **Consumer (re)start.** It loads the head word with `Acquire` and reads on from the last
//!   released position: records the dead engine had read but not released come again (the
//!   application's tracker checkpoint drops them, `docs/shm.md`). A front the dead engine held
//!   (the lock bit) is released with an `AcqRel` exchange, as `set_role` would.
//! - **Liveness** is not an atomic protocol at all: the producer holds an open-file-description
//!   lock on byte 0 of the file for as long as its process lives (the kernel drops it when the
//!   process dies, however it dies). The generation and pid in the header are written under
//!   that lock and only describe it; the lock is the authority.
//!
//! Loom models of the restart protocols run on heap rings through the same code
//! (`Producer::restart`, `Consumer::restart`): `tests/loom_ring.rs`.

mod guard;
mod header;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use memmap2::{MmapOptions, MmapRaw};

pub use guard::{set_sigbus_guard, GUARD_SLOTS};
use header::{Fixed, Live, LIVE_OFFSET, WORDS_OFFSET};
pub use header::{HeaderError, HEADER_BYTES, LAYOUT_VERSION, MAGIC};

use crate::ring::{RingConfig, RingError, RingWords};
use crate::sync::Ordering;

/// How [`Engine::attach_file`](crate::engine::Engine::attach_file) treats the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Make a new ring file; an existing one is an error ([`ShmError::Exists`]).
    Create,
    /// Re-attach to a ring file an earlier engine made (a restarted consumer): reading goes on
    /// from its last released position.
    Resume,
    /// Resume if the file exists, create it otherwise.
    CreateOrResume,
}

/// What went wrong with a ring file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShmError {
    /// A system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error number (0 if none).
        errno: i32,
    },
    /// The header is not one this build accepts.
    Header(HeaderError),
    /// `AttachMode::Create` and the path exists.
    Exists,
    /// The file is shorter than its header says (truncated), or too short for a header.
    Truncated {
        /// Its length now.
        len: u64,
        /// The length it must have.
        needed: u64,
    },
    /// The file is longer than its header says.
    SizeMismatch {
        /// Its length.
        len: u64,
        /// The length the header implies.
        expected: u64,
    },
    /// The ring positions in the file are inconsistent (corrupt).
    Positions {
        /// The head word's position.
        head: u64,
        /// The tail.
        tail: u64,
    },
    /// The engine's configuration makes no valid ring.
    Config(RingError),
    /// The file was made for another configuration.
    Mismatch {
        /// `capacity`, `max_payload` or `stream`.
        field: &'static str,
        /// The file's value.
        file: u64,
        /// The engine's.
        expected: u64,
    },
    /// Another live process holds the producer side of this file.
    ProducerBusy {
        /// Its pid, as it wrote it.
        pid: u64,
        /// Its generation.
        generation: u64,
    },
    /// Another live engine is attached to this file.
    ConsumerBusy {
        /// Its pid, as it wrote it.
        pid: u64,
    },
    /// The engine has no stream with this id.
    UnknownStream(u32),
    /// The mapping could not be guarded against truncation (`set_sigbus_guard`): every one of
    /// the [`GUARD_SLOTS`] is in use (`errno` 0), or installing the handler failed.
    Guard {
        /// The error of `sigaction`, or 0 when the table is full.
        errno: i32,
    },
}

impl ShmError {
    fn io(op: &'static str, e: io::Error) -> ShmError {
        ShmError::Io { op, errno: e.raw_os_error().unwrap_or(0) }
    }
}

impl core::fmt::Display for ShmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ShmError::Io { op, errno } => {
                write!(f, "ring file: {op}: {}", io::Error::from_raw_os_error(*errno))
            }
            ShmError::Header(e) => write!(f, "{e}"),
            ShmError::Exists => f.write_str("ring file already exists"),
            ShmError::Truncated { len, needed } => {
                write!(f, "ring file truncated: {len} bytes, the ring needs {needed}")
            }
            ShmError::SizeMismatch { len, expected } => {
                write!(f, "ring file is {len} bytes; its header says {expected}")
            }
            ShmError::Positions { head, tail } => {
                write!(f, "ring file corrupt: head {head} and tail {tail} are inconsistent")
            }
            ShmError::Config(e) => write!(f, "{e}"),
            ShmError::Mismatch { field, file, expected } => {
                write!(f, "ring file made with {field} {file}, engine configured with {expected}")
            }
            ShmError::ProducerBusy { pid, generation } => {
                write!(f, "ring file already has a live producer (pid {pid}, generation {generation})")
            }
            ShmError::ConsumerBusy { pid } => {
                write!(f, "ring file already attached to a live engine (pid {pid})")
            }
            ShmError::UnknownStream(s) => write!(f, "no stream {s} in this engine"),
            ShmError::Guard { errno: 0 } => write!(
                f,
                "ring file cannot be guarded against truncation: all {GUARD_SLOTS} guarded mappings in use"
            ),
            ShmError::Guard { errno } => write!(
                f,
                "ring file cannot be guarded against truncation: sigaction(SIGBUS): {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for ShmError {}

/// The producer side of a ring file, as the consumer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerStatus {
    /// No producer has opened the file yet.
    Never,
    /// A process holds the producer lock: alive, however slow.
    Alive {
        /// Its generation (1 for the first producer).
        generation: u64,
        /// Its process id.
        pid: u64,
    },
    /// The last producer closed the file and exited cleanly.
    Closed {
        /// Its generation.
        generation: u64,
        /// Its process id.
        pid: u64,
    },
    /// The last producer's process died without closing the file (crash, `SIGKILL`).
    Dead {
        /// Its generation.
        generation: u64,
        /// Its process id.
        pid: u64,
    },
}

/// Byte of the file the producer's lock covers.
const PRODUCER_LOCK_BYTE: i64 = 0;
/// Byte of the file the consumer's lock covers.
const CONSUMER_LOCK_BYTE: i64 = 1;

/// An open, mapped ring file.
pub(crate) struct RingFile {
    /// First, so it is dropped (unregistered) before the mapping is unmapped.
    guard: guard::Guarded,
    file: File,
    map: MmapRaw,
    fixed: Fixed,
    /// Set in a producer's handle: the generation it marks closed when dropped.
    producer_generation: Option<u64>,
}

impl RingFile {
    /// Makes a ring file at `path` for a ring of `config` on stream `stream`, atomically: it is
    /// built under a temporary name and linked into place only when complete, so an opener
    /// never sees half a header. Fails with [`ShmError::Exists`] if `path` exists.
    pub(crate) fn create(path: &Path, config: RingConfig, stream: u32) -> Result<RingFile, ShmError> {
        let capacity = config.validate().map_err(ShmError::Config)?;
        let fixed = Fixed::new(capacity as u64, config.max_payload as u64, stream);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".creating.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ShmError::io("create", e))?;
        let built = (|| {
            file.set_len(fixed.file_len()).map_err(|e| ShmError::io("set_len", e))?;
            let map = map(&file, fixed.file_len())?;
            let base = map.as_mut_ptr();
            let window = crate::ring::clamp_window(capacity, config.window);
            // SAFETY: the mapping is `file_len` bytes, page-aligned, private to this process
            // until the file is linked into place below; `Fixed` and `RingWords` fit at their
            // offsets (asserted in `header`) with their alignment (a multiple of 128 from a
            // page-aligned base).
            unsafe {
                base.cast::<Fixed>().write(fixed);
                base.add(WORDS_OFFSET).cast::<RingWords>().write(RingWords::new(config.role, window));
            }
            Ok::<_, ShmError>(map)
        })();
        let map = match built {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let guard = match guard::register(map.as_mut_ptr(), map.len()) {
            Ok(g) => g,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(ShmError::Exists),
            Err(e) => return Err(ShmError::io("link", e)),
        }
        Ok(RingFile { guard, file, map, fixed, producer_generation: None })
    }

    /// Opens and checks an existing ring file: the header, the file's length, the positions.
    pub(crate) fn open(path: &Path) -> Result<RingFile, ShmError> {
        let file =
            OpenOptions::new().read(true).write(true).open(path).map_err(|e| ShmError::io("open", e))?;
        let len = file.metadata().map_err(|e| ShmError::io("fstat", e))?.len();
        if len < HEADER_BYTES as u64 {
            return Err(ShmError::Truncated { len, needed: HEADER_BYTES as u64 });
        }
        let map = map(&file, len)?;
        // Guarded before the first read: the file may shrink at any moment from now on.
        let guard = guard::register(map.as_mut_ptr(), map.len())?;
        // SAFETY: the mapping holds at least `HEADER_BYTES` (checked above) and is page-aligned;
        // any 64 bytes are a valid `Fixed` (integers and bytes). The creator wrote it before
        // linking the file into place, so it is complete; it is never written again.
        let fixed = unsafe { map.as_ptr().cast::<Fixed>().read() };
        fixed.validate().map_err(ShmError::Header)?;
        let expected = fixed.file_len();
        if len < expected {
            return Err(ShmError::Truncated { len, needed: expected });
        }
        if len > expected {
            return Err(ShmError::SizeMismatch { len, expected });
        }
        let rf = RingFile { guard, file, map, fixed, producer_generation: None };
        // SAFETY: `words` points at the file's `RingWords` (layout checked by `validate`).
        let w = unsafe { rf.words().as_ref() };
        let (head, tail) = w.positions();
        if !w.positions_are_sane(fixed.capacity) {
            return Err(ShmError::Positions { head, tail });
        }
        Ok(rf)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.fixed.capacity as usize
    }
    pub(crate) fn max_payload(&self) -> usize {
        self.fixed.max_payload as usize
    }
    pub(crate) fn stream(&self) -> u32 {
        self.fixed.stream
    }

    fn live(&self) -> &Live {
        // SAFETY: `LIVE_OFFSET` lies inside the header page of a mapping this value owns;
        // 8-aligned; all-zero or atomically written bytes are valid atomics.
        unsafe { &*self.map.as_ptr().add(LIVE_OFFSET).cast::<Live>() }
    }

    /// The ring's atomic words, in the mapping.
    pub(crate) fn words(&self) -> NonNull<RingWords> {
        // SAFETY: inside the mapping (non-null), 128-aligned (`header` asserts).
        unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(WORDS_OFFSET).cast::<RingWords>()) }
    }

    /// The record storage, in the mapping.
    pub(crate) fn data(&self) -> NonNull<u8> {
        // SAFETY: `HEADER_BYTES` is below the mapping's length (`file_len`), so non-null.
        unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(HEADER_BYTES)) }
    }

    /// The file's length now (one `fstat`).
    pub(crate) fn len_now(&self) -> Result<u64, ShmError> {
        self.file.metadata().map(|m| m.len()).map_err(|e| ShmError::io("fstat", e))
    }

    /// True when this process's SIGBUS guard found the file truncated under the mapping (and
    /// mapped zeros over the lost pages).
    pub(crate) fn truncation_seen(&self) -> bool {
        self.guard.hit()
    }

    /// Whether this mapping is guarded: touching it is safe even after a truncation.
    pub(crate) fn is_guarded(&self) -> bool {
        self.guard.is_guarded()
    }

    /// The length the mapping needs.
    pub(crate) fn needed_len(&self) -> u64 {
        self.fixed.file_len()
    }

    /// Becomes the file's producer: takes the producer lock (held until this value is dropped
    /// or the process dies) and the next generation. Returns the generation.
    pub(crate) fn become_producer(&mut self) -> Result<u64, ShmError> {
        if !ofd_try_lock(&self.file, PRODUCER_LOCK_BYTE).map_err(|e| ShmError::io("lock", e))? {
            let live = self.live();
            return Err(ShmError::ProducerBusy {
                pid: live.producer_pid.load(Ordering::Relaxed),
                generation: live.producer_generation.load(Ordering::Relaxed),
            });
        }
        let live = self.live();
        live.producer_pid.store(u64::from(std::process::id()), Ordering::Relaxed);
        // Release: a consumer reading this generation also reads the pid above.
        // Wrapping: another process may have written any value here.
        let generation = live.producer_generation.fetch_add(1, Ordering::Release).wrapping_add(1);
        self.producer_generation = Some(generation);
        Ok(generation)
    }

    /// Becomes the file's consumer: takes the consumer lock (one engine per file).
    pub(crate) fn become_consumer(&self) -> Result<(), ShmError> {
        if !ofd_try_lock(&self.file, CONSUMER_LOCK_BYTE).map_err(|e| ShmError::io("lock", e))? {
            return Err(ShmError::ConsumerBusy { pid: self.live().consumer_pid.load(Ordering::Relaxed) });
        }
        let live = self.live();
        live.consumer_pid.store(u64::from(std::process::id()), Ordering::Relaxed);
        live.consumer_generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Whether the producer lives: asks the kernel whether anyone holds the producer lock.
    pub(crate) fn producer_status(&self) -> Result<ProducerStatus, ShmError> {
        let live = self.live();
        // Read before the probe: a producer takes the lock *before* it bumps the generation,
        // so a generation that moves across a free probe belongs to a producer that came after
        // the probe (loom would call this a stale read; here it is a race with another process
        // that no ordering can close, so it is detected instead).
        let before = live.producer_generation.load(Ordering::Acquire);
        let held =
            ofd_is_locked(&self.file, PRODUCER_LOCK_BYTE).map_err(|e| ShmError::io("lock probe", e))?;
        // Acquire: pairs with `become_producer`'s Release, so the pid belongs to it.
        let generation = live.producer_generation.load(Ordering::Acquire);
        let pid = live.producer_pid.load(Ordering::Relaxed);
        Ok(if held || generation != before {
            // Held, or a new producer opened while we looked: alive as far as we know; the
            // next check tells.
            ProducerStatus::Alive { generation, pid }
        } else if generation == 0 {
            ProducerStatus::Never
        } else if live.producer_closed.load(Ordering::Acquire) == generation {
            // Stored before the lock was let go, which the probe saw.
            ProducerStatus::Closed { generation, pid }
        } else {
            ProducerStatus::Dead { generation, pid }
        })
    }
}

impl Drop for RingFile {
    fn drop(&mut self) {
        if let Some(g) = self.producer_generation {
            // Before the lock goes with the file below: a consumer that sees the lock free
            // sees this too, and reports a clean close rather than a death.
            self.live().producer_closed.store(g, Ordering::Release);
        }
    }
}

fn map(file: &File, len: u64) -> Result<MmapRaw, ShmError> {
    let len = usize::try_from(len).map_err(|_| ShmError::Io { op: "mmap", errno: libc::EFBIG })?;
    MmapOptions::new().len(len).map_raw(file).map_err(|e| ShmError::io("mmap", e))
}

fn lock_request(start: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value (and `l_pid` must be 0
    // for open-file-description locks).
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = 1;
    fl
}

/// Takes an exclusive open-file-description lock on one byte; false if another holds it. The
/// lock belongs to the open file (not the process, unlike POSIX locks, so closing another
/// descriptor of the same file elsewhere in the process does not drop it) and the kernel drops
/// it when the file's last descriptor closes: at process death, however it dies.
fn ofd_try_lock(file: &File, start: i64) -> io::Result<bool> {
    let mut fl = lock_request(start);
    // SAFETY: a valid descriptor and a valid `flock` for the call's duration.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Whether another open file holds a lock on the byte (asks, takes nothing).
fn ofd_is_locked(file: &File, start: i64) -> io::Result<bool> {
    let mut fl = lock_request(start);
    // SAFETY: as in `ofd_try_lock`; F_OFD_GETLK writes into `fl`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// A ring on a new ring file at `path`, both ends in this process over one mapping, for the
/// benchmarks that compare a file ring's checked reads with unchecked ones
/// ([`Consumer::trust_producer`](crate::ring::Consumer::trust_producer)). Not API.
#[doc(hidden)]
pub fn file_ring(
    path: &Path,
    config: RingConfig,
) -> Result<
    (
        crate::ring::Producer<crate::engine::StreamStorage>,
        crate::ring::Consumer<crate::engine::StreamStorage>,
    ),
    ShmError,
> {
    let mut rf = RingFile::create(path, config, 0)?;
    rf.become_consumer()?;
    rf.become_producer()?;
    let rf = std::sync::Arc::new(rf);
    let max_payload = rf.max_payload();
    let storage = || crate::engine::StreamStorage::file(std::sync::Arc::clone(&rf));
    Ok((
        crate::ring::resume_producer(storage(), max_payload),
        crate::ring::resume_consumer(storage(), max_payload),
    ))
}

/// Opens (or creates) the ring file of an engine stream and checks it against the engine's
/// configuration. `role` and `window` are used only when the file is created.
pub(crate) fn open_for_engine(
    path: &Path,
    mode: AttachMode,
    config: RingConfig,
    stream: u32,
) -> Result<RingFile, ShmError> {
    let capacity = config.validate().map_err(ShmError::Config)?;
    let rf = match mode {
        AttachMode::Create => RingFile::create(path, config, stream)?,
        AttachMode::Resume => RingFile::open(path)?,
        AttachMode::CreateOrResume => match RingFile::create(path, config, stream) {
            Err(ShmError::Exists) => RingFile::open(path)?,
            r => r?,
        },
    };
    for (field, file, expected) in [
        ("capacity", rf.capacity() as u64, capacity as u64),
        ("max_payload", rf.max_payload() as u64, config.max_payload as u64),
        ("stream", u64::from(rf.stream()), u64::from(stream)),
    ] {
        if file != expected {
            return Err(ShmError::Mismatch { field, file, expected });
        }
    }
    rf.become_consumer()?;
    Ok(rf)
}
