//! The event header shared by Rust and C (docs/design.md §1).
//!
//! One fixed `repr(C)` layout, 32 bytes, 8-byte aligned, no padding: it is written once by the
//! producer straight into ring memory and read in place by the consumer.

/// Event kind: an ordinary data event.
pub const KIND_DATA: u16 = 0;
/// Event kind: an in-band flip (control) event; its payload is a flip record.
pub const KIND_FLIP: u16 = 1;
/// Event kind: a heartbeat carrying no payload, used to advance time and detect lag.
pub const KIND_HEARTBEAT: u16 = 2;

/// Flag: the fanout path reported a retry or fault for this event.
pub const FLAG_UPSTREAM_ERROR: u16 = 1 << 0;
/// Flag: the application marks this data event conflatable: beyond a staged window only the
/// latest event per conflation key need be kept (the conflation tier, docs/staging.md). Its
/// key is the first [`CONFLATION_KEY_LEN`] bytes of the payload, little-endian; an event with a
/// shorter payload is not conflatable whatever its flag says.
pub const FLAG_CONFLATABLE: u16 = 1 << 1;
/// Bytes of a conflation key at the start of a conflatable event's payload.
pub const CONFLATION_KEY_LEN: usize = 8;

/// The conflation key of an event with `flags` and `payload`, if it is conflatable.
#[inline]
pub fn conflation_key(flags: u16, payload: &[u8]) -> Option<u64> {
    if flags & FLAG_CONFLATABLE == 0 {
        return None;
    }
    let key: [u8; CONFLATION_KEY_LEN] = payload.get(..CONFLATION_KEY_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(key))
}

/// The fixed header of every event: 32 bytes, the same layout on every C ABI and in ring files
/// (`pos` at 0, `seq` at 8, `ts_ns` at 16, `origin` at 24, `kind` at 28, `flags` at 30; no
/// padding). Not size-tagged: it is the record format, versioned with the ring layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventHeader {
    /// Absolute position in its stream: stream-local, strictly increasing.
    pub pos: u64,
    /// Logical sequence number within the origin; the same in every stream.
    pub seq: u64,
    /// Upstream event time, nanoseconds.
    pub ts_ns: u64,
    /// Dense origin index, `< max_origins`.
    pub origin: u32,
    /// Data, flip or heartbeat: `KIND_*` in Rust, `HZ_KIND_*` in C.
    pub kind: u16,
    /// Bit set: `FLAG_UPSTREAM_ERROR` in Rust, `HZ_FLAG_UPSTREAM_ERROR` in C.
    pub flags: u16,
}

/// Size of [`EventHeader`] in bytes.
pub const EVENT_HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();

const _: () = assert!(EVENT_HEADER_SIZE == 32);
const _: () = assert!(core::mem::align_of::<EventHeader>() == 8);
const _: () = assert!(core::mem::offset_of!(EventHeader, origin) == 24);
const _: () = assert!(core::mem::offset_of!(EventHeader, flags) == 30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_c_layout() {
        assert_eq!(core::mem::offset_of!(EventHeader, pos), 0);
        assert_eq!(core::mem::offset_of!(EventHeader, seq), 8);
        assert_eq!(core::mem::offset_of!(EventHeader, ts_ns), 16);
        assert_eq!(core::mem::offset_of!(EventHeader, origin), 24);
        assert_eq!(core::mem::offset_of!(EventHeader, kind), 28);
        assert_eq!(core::mem::offset_of!(EventHeader, flags), 30);
        assert_eq!(EVENT_HEADER_SIZE, 32);
    }
}
