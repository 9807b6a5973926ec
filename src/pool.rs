//! `hz_pool`: one staging budget shared by the engines of a process (docs/staging.md).

use std::ffi::c_char;
use std::sync::Arc;

use super::flip::fail;
use super::{fill_sized, guard, hz_status, size_problem, struct_size_of, LastError};
use super::{HZ_ERR_CONFIG, HZ_ERR_INVALID, HZ_ERR_NULL, HZ_ERR_PANIC, HZ_OK};
use harmonizer_core::engine::{PoolConfig, StagingPool, MAX_POOL_BYTES};

/// A staging budget shared by engines (docs/staging.md). Opaque. Engines built from a
/// configuration given the pool (`hz_config_set_pool`) each hold a reference to it: the pool
/// lives until the handle and every such engine are freed, in any order.
#[allow(non_camel_case_types)]
pub struct hz_pool {
    pub(crate) pool: Arc<StagingPool>,
    err: LastError,
}

/// Largest `capacity_bytes` `hz_pool_new` takes: 2^50 bytes (1 PiB).
pub const HZ_MAX_POOL_BYTES: u64 = 1_125_899_906_842_624;
const _: () = assert!(HZ_MAX_POOL_BYTES == MAX_POOL_BYTES);

/// A pool's counters, as `hz_pool_stats` fills them (a function of that name, so the struct is
/// named for what it holds). Set `struct_size` to `sizeof(hz_pool_counters)` before the call;
/// fields a later library adds are appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_pool_counters {
    /// `sizeof(hz_pool_counters)`, set by the caller.
    pub struct_size: usize,
    /// Bytes of staged windows the engines may hold together (`hz_pool_new`).
    pub capacity_bytes: u64,
    /// Bytes granted now.
    pub used_bytes: u64,
    /// Largest `used_bytes` seen.
    pub peak_used_bytes: u64,
    /// Grants made.
    pub grants: u64,
    /// Requests refused (no room, over the per-engine maximum, or a higher bid waiting).
    pub refusals: u64,
    /// Grants given back to a bid worth more than twice as much.
    pub yields: u64,
    /// The most one engine may hold, bytes (as `hz_pool_new` settled it).
    pub per_engine_max_bytes: u64,
    /// How long a refused bid stands without being renewed, clock ns (as `hz_pool_new`
    /// settled it).
    pub bid_ttl_ns: u64,
}

/// Size of `hz_pool_counters`'s first layout (fields are only ever appended).
const COUNTERS_V1: usize = std::mem::offset_of!(hz_pool_counters, bid_ttl_ns) + std::mem::size_of::<u64>();

/// Makes a staging pool of `capacity_bytes` (1 to `HZ_MAX_POOL_BYTES`), to be shared by
/// engines through `hz_config_set_pool`. A staged window is then staged only while its engine
/// holds a grant of its bytes from the pool (priced as `hz_config_set_staging_budget` prices
/// it), besides fitting the engine's own budget; a refused window bids its expected benefit
/// (the switch's probability times `hz_config_set_cold_switch_cost`), and a grant worth less
/// than half a standing bid is given back to it (docs/staging.md). `per_engine_max_bytes` is
/// the most one engine may hold (0, or above the capacity: the capacity); `bid_ttl_ns` how long
/// a refused bid stands without being renewed, in the engines' clock ns (0: 100 ms; at most an
/// hour, 3,600,000,000,000). Engines
/// sharing a pool must share a clock timebase: the default monotonic clock does; application
/// clocks (`hz_config_set_clock`) must all count from the same origin.
///
/// Ownership: on `HZ_OK`, `*out` is a new pool the caller frees with `hz_pool_free`; engines
/// built with it keep it alive after that. Errors (the reason in `hz_last_error`):
/// `HZ_ERR_NULL` (`out`), `HZ_ERR_CONFIG` (`capacity_bytes` 0 or above `HZ_MAX_POOL_BYTES`;
/// `bid_ttl_ns` above an hour).
/// Any thread; the handle is then used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn hz_pool_new(
    capacity_bytes: u64,
    per_engine_max_bytes: u64,
    bid_ttl_ns: u64,
    out: *mut *mut hz_pool,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        if out.is_null() {
            return fail(HZ_ERR_NULL, "out is NULL");
        }
        if capacity_bytes == 0 || capacity_bytes > MAX_POOL_BYTES {
            return fail(
                HZ_ERR_CONFIG,
                format!(
                    "capacity_bytes {capacity_bytes} outside 1..={MAX_POOL_BYTES} (HZ_MAX_POOL_BYTES, 1 PiB)"
                ),
            );
        }
        let mut cfg = PoolConfig::new(capacity_bytes);
        if per_engine_max_bytes != 0 {
            cfg.per_engine_max_bytes = per_engine_max_bytes.min(capacity_bytes);
        }
        if bid_ttl_ns != 0 {
            cfg.bid_ttl_ns = bid_ttl_ns;
        }
        let pool = match StagingPool::new(cfg) {
            Ok(p) => p,
            // Unreachable after the checks above; kept so a rule added to the core reaches C.
            Err(e) => return fail(HZ_ERR_CONFIG, e.to_string()),
        };
        let p = hz_pool { pool: Arc::new(pool), err: LastError::default() };
        // SAFETY: `out` is non-null and the caller provides a writable `hz_pool *`.
        unsafe { *out = Box::into_raw(Box::new(p)) };
        HZ_OK
    })
}

/// Frees the pool handle. NULL is a no-op. Engines built with the pool keep it alive (they hold
/// their own reference) and go on staging within it; configurations given it keep it too.
/// The handle's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_pool_free(pool: *mut hz_pool) {
    guard((), || {
        if !pool.is_null() {
            // SAFETY: made by `hz_pool_new` (Box::into_raw) and not freed before, per contract.
            drop(unsafe { Box::from_raw(pool) });
        }
    })
}

/// Fills `*out` with the pool's counters: set `out->struct_size` to `sizeof(hz_pool_counters)`
/// first. The counters are read one by one while engines may be changing them, so they are
/// each exact but not a single snapshot; `used_bytes` never exceeds `capacity_bytes`.
/// Errors: `HZ_ERR_NULL` (`pool`; `out`, with the reason in `hz_pool_last_error`),
/// `HZ_ERR_INVALID` (`struct_size` below the first layout, above 4096 or not a multiple of the
/// struct's alignment; nothing written). The handle's thread; the engines sharing the pool
/// may run on other threads meanwhile.
#[no_mangle]
pub unsafe extern "C" fn hz_pool_stats(pool: *const hz_pool, out: *mut hz_pool_counters) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live pool, used by one thread at a time, per contract.
        let Some(p) = (unsafe { pool.as_ref() }) else { return HZ_ERR_NULL };
        if out.is_null() {
            return p.err.set(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null, the caller's struct per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        if let Some(why) = size_problem(
            "out",
            "hz_pool_counters",
            given,
            COUNTERS_V1,
            std::mem::align_of::<hz_pool_counters>(),
        ) {
            return p.err.set(HZ_ERR_INVALID, why);
        }
        let s = p.pool.stats();
        let cfg = p.pool.config();
        let c = hz_pool_counters {
            struct_size: given,
            capacity_bytes: s.capacity_bytes,
            used_bytes: s.used_bytes,
            peak_used_bytes: s.peak_used_bytes,
            grants: s.grants,
            refusals: s.refusals,
            yields: s.yields,
            per_engine_max_bytes: cfg.per_engine_max_bytes,
            bid_ttl_ns: cfg.bid_ttl_ns,
        };
        // SAFETY: `out` is writable for `given` bytes (the caller's `struct_size`), checked
        // above to be within the size-tag rule.
        let ok = unsafe { fill_sized(out.cast(), given, COUNTERS_V1, &c) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}

/// The pool handle's last error message (`""` if none). Valid until the next call on this
/// handle; do not free. NULL gives `""`. The handle's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_pool_last_error(pool: *const hz_pool) -> *const c_char {
    guard(c"".as_ptr(), || {
        // SAFETY: NULL or a live pool.
        unsafe { pool.as_ref() }.map_or(c"".as_ptr(), |p| p.err.as_ptr())
    })
}
