//! # harmonizer-connect
//!
//! Following real upstreams with harmonizer: what a connector implements ([`upstream`]), where
//! an entry's values live ([`entry`]), and the [`driver`] that owns the engine and one reader
//! thread per stream, turning the engine's notices into reader commands. The connectors
//! themselves are their own crates (`harmonizer-redis`, ...), so this one, like the core, has no
//! client dependency. docs/connectors.md is the guide.

#![warn(missing_docs)]

pub mod driver;
pub mod entry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream;

pub use driver::{ArrivalTap, Driver, DriverOptions, Report};
pub use entry::{Entry, EntryError, Layout};
pub use upstream::{describe_name, name_of, Reader, Seeked, Skipped, Start, Upstream, UpstreamError};
