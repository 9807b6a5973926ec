//! # harmonizer-core
//!
//! Receiver-side stream switching: the same logical events arrive over several streams, and
//! in-band flip events move this recipient between them. harmonizer delivers every event once,
//! in order, across switches and switchbacks, pre-buffering the likely next stream so a switch
//! costs microseconds. The contract is `docs/design.md`; the other design notes live in `docs/`.
//!
//! ## Contents
//!
//! - [`engine`]: the harmonization engine: poll loop, flips, switching, staging, notices.
//! - [`clock`]: the engine's time source (monotonic, or virtual for simulation and tests).
//! - [`event`]: the fixed `repr(C)` event header shared with C.
//! - [`flip`]: the flip record (encode, decode with precise rejections) and the cohort rule.
//! - [`predict`]: the switch predictor: per-event features, the logistic model and its reader,
//!   and the arming policy built on it.
//! - [`ring`]: the lock-free SPSC event ring with active, staged and idle roles and the epoch
//!   switch between them.
//! - [`tracker`]: per-origin last delivered seq; duplicates, gaps, trimming.
//! - `shm` (Linux): rings in memory-mapped files, for a producer in another process.
//!
//! Elsewhere in the workspace (docs/workspace.md): the C API (`libharmonizer`, the root
//! package), simulation, training and evaluation (`harmonizer-sim`), and the `harmonize` CLI.
//!
//! Internal: `sync`, the one shim every lock-free protocol imports its atomics from (loom's
//! under `--cfg loom`).

#![warn(missing_docs)]

pub mod clock;
#[doc(hidden)]
pub mod crc32c;
pub mod engine;
pub mod event;
pub mod flip;
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod guard_table;
pub mod predict;
pub mod ring;
#[cfg(shm)]
pub mod shm;
mod sync;
pub mod tracker;

/// The README's Rust examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
