//! `hz_config`: what an engine is built from.

use super::pool::hz_pool;
use super::{guard, hz_status, LastError, HZ_ERR_CONFIG, HZ_ERR_INVALID, HZ_ERR_NULL, HZ_ERR_PANIC, HZ_OK};
use harmonizer_core::clock::Clock;
use harmonizer_core::engine::{EngineConfig, Exhausted, GapPolicy, Spread, MAX_STREAMS};
use harmonizer_core::ring::{MAX_CAPACITY, MAX_IDENTITIES, MAX_PAYLOAD_LIMIT};
use harmonizer_core::tracker::SeqMode;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// Arming policy: stage what is announced, armed or the switchback target (the default).
pub const HZ_POLICY_MANUAL: u32 = 0;
/// Arming policy: never stage (every switch is cold).
pub const HZ_POLICY_NEVER: u32 = 1;
/// Arming policy: stage every candidate always.
pub const HZ_POLICY_ALWAYS: u32 = 2;
/// Arming policy: the predictor with the shipped model (see `hz_config_set_preset`).
pub const HZ_POLICY_PREDICTOR: u32 = 3;

/// Predictor preset: threshold 0.75 (the default).
pub const HZ_PRESET_CONSERVATIVE: u32 = 0;
/// Predictor preset: threshold 0.5.
pub const HZ_PRESET_BALANCED: u32 = 1;
/// Predictor preset: threshold 0.22.
pub const HZ_PRESET_AGGRESSIVE: u32 = 2;

/// Gap policy: ask for a re-read (`HZ_NOTICE_SUBSCRIBE` of the active stream); the default.
pub const HZ_GAP_REREAD: u32 = 0;
/// Gap policy: report the missing events lost (`HZ_NOTICE_LOST`) and go on.
pub const HZ_GAP_REPORT_LOST: u32 = 1;

/// Exhausted gap recovery: report `HZ_NOTICE_STUCK` and hold at the gap (the default).
pub const HZ_EXHAUSTED_STUCK: u32 = 0;
/// Exhausted gap recovery: report the exact range `HZ_NOTICE_LOST` and go on.
pub const HZ_EXHAUSTED_REPORT_LOST: u32 = 1;

/// Sequence mode: `seq` is contiguous per origin; a jump is a gap (the default).
pub const HZ_SEQ_STRICT: u32 = 0;
/// Sequence mode: `seq` only increases per origin.
pub const HZ_SEQ_MONOTONIC: u32 = 1;

/// An engine configuration. Opaque.
#[allow(non_camel_case_types)]
pub struct hz_config {
    pub(crate) cfg: EngineConfig,
    pub(crate) policy: u32,
    pub(crate) preset: u32,
    /// The application's clock (`hz_config_set_clock`); `None`: the monotonic clock.
    pub(crate) clock: Option<AppClock>,
    /// The predictor's learning (`hz_config_set_learning`); `None`: off.
    pub(crate) learn: Option<harmonizer_core::predict::LearnConfig>,
    pub(crate) err: LastError,
}

/// The application's clock: returns nanoseconds since an origin of its choosing. Called on the
/// polling thread, once per poll, with the `user_data` given to `hz_config_set_clock`. It must
/// return normally and must not call into the engine.
#[allow(non_camel_case_types)]
pub type hz_clock_fn = Option<unsafe extern "C" fn(user_data: *mut c_void) -> u64>;

/// An application clock as the engine sees it: never goes back (a smaller reading counts as no
/// time passing), so every duration the engine measures stays non-negative.
#[derive(Clone, Copy)]
pub(crate) struct AppClock {
    f: unsafe extern "C" fn(*mut c_void) -> u64,
    user: *mut c_void,
}

// SAFETY: `AppClock` is a C function pointer and its `user_data`, which the engine only passes
// back to that function, on the thread that polls (one call at a time: a configuration or an
// engine is used by one thread at a time, and moves between threads only as a whole).
// `hz_config_set_clock` documents that both must be callable from whichever thread polls: the
// application vouches for its pointer, as for every callback's `user_data`.
unsafe impl Send for AppClock {}

/// [`AppClock`] with its last reading, inside an engine.
pub(crate) struct AppClockState {
    clock: AppClock,
    last: core::cell::Cell<u64>,
}

impl AppClockState {
    pub(crate) fn new(clock: AppClock) -> Self {
        AppClockState { clock, last: core::cell::Cell::new(0) }
    }
}

impl Clock for AppClockState {
    fn now_ns(&self) -> u64 {
        // SAFETY: `f` was a non-null `hz_clock_fn` given with this `user_data`; the caller of
        // `hz_config_set_clock` promised both stay valid for the engine's life.
        let t = unsafe { (self.clock.f)(self.clock.user) };
        let t = t.max(self.last.get());
        self.last.set(t);
        t
    }
}

/// Makes a configuration: `streams` streams with ids `0..streams` (1 to 16), each ring
/// `capacity_bytes` (rounded up to a power of two), data events up to `max_payload` bytes (flip
/// records may be larger, up to `HZ_MAX_FLIP_LEN`, 1335 bytes: the rings take both), starting on stream 0, strict seqs, gaps re-read, the
/// manual policy, default window 100, no staging budget.
///
/// Maxima, checked here: `capacity_bytes` 1 to 1 TiB (1 GiB on 32-bit targets), `max_payload`
/// up to 16 MiB. Whether a capacity holds two records of `max_payload` is checked by
/// `hz_engine_new`, and so is the memory: a ring the system cannot give is `HZ_ERR_NO_MEMORY`.
///
/// Ownership: on `HZ_OK`, `*out` is a new configuration the caller frees with
/// `hz_config_free`. Errors (the reason in `hz_last_error`): `HZ_ERR_NULL` (`out`),
/// `HZ_ERR_INVALID` (`streams` 0 or above 16), `HZ_ERR_CONFIG` (a capacity or payload limit
/// above its maximum, or a capacity of 0). Any thread; the configuration is then used by one
/// thread at a time.
#[no_mangle]
pub unsafe extern "C" fn hz_config_new(
    recipient_id: u64,
    streams: u32,
    capacity_bytes: usize,
    max_payload: usize,
    out: *mut *mut hz_config,
) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        if out.is_null() {
            return super::flip::fail(HZ_ERR_NULL, "out is NULL");
        }
        if streams == 0 || streams as usize > MAX_STREAMS {
            return super::flip::fail(HZ_ERR_INVALID, format!("{streams} streams: 1 to {MAX_STREAMS}"));
        }
        if capacity_bytes == 0 || capacity_bytes > MAX_CAPACITY {
            return super::flip::fail(
                HZ_ERR_CONFIG,
                format!("capacity_bytes {capacity_bytes} outside 1..={MAX_CAPACITY}"),
            );
        }
        if max_payload > MAX_PAYLOAD_LIMIT {
            return super::flip::fail(
                HZ_ERR_CONFIG,
                format!("max_payload {max_payload} above the limit of {MAX_PAYLOAD_LIMIT} bytes"),
            );
        }
        let c = hz_config {
            cfg: EngineConfig::new(recipient_id, streams, capacity_bytes, max_payload),
            policy: HZ_POLICY_MANUAL,
            preset: HZ_PRESET_CONSERVATIVE,
            clock: None,
            learn: None,
            err: LastError::default(),
        };
        // SAFETY: `out` is non-null and the caller provides a writable `hz_config *`.
        unsafe { *out = Box::into_raw(Box::new(c)) };
        HZ_OK
    })
}

/// Frees a configuration. NULL is a no-op. An engine made from it does not need it. The
/// configuration's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_config_free(config: *mut hz_config) {
    guard((), || {
        if !config.is_null() {
            // SAFETY: made by `hz_config_new` (Box::into_raw) and not freed before, per contract.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}

/// Runs `f` on the configuration behind `config`, or returns `HZ_ERR_NULL`.
pub(crate) fn with(config: *mut hz_config, f: impl FnOnce(&mut hz_config) -> u32) -> hz_status {
    guard(HZ_ERR_PANIC, || {
        // SAFETY: NULL or a live configuration from `hz_config_new`, used by one thread at a time.
        match unsafe { config.as_mut() } {
            Some(c) => f(c),
            None => HZ_ERR_NULL,
        }
    })
}

/// Sets the stream the engine starts on (an id `0..streams`; checked by `hz_engine_new`).
/// Errors: `HZ_ERR_NULL`.
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_initial_stream(config: *mut hz_config, stream: u32) -> hz_status {
    with(config, |c| {
        c.cfg.initial_stream = stream;
        HZ_OK
    })
}

/// Sets how many origins (`origin < max_origins`) the tracker follows (default 64).
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (0).
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_max_origins(config: *mut hz_config, max_origins: u32) -> hz_status {
    with(config, |c| {
        if max_origins == 0 {
            return c.err.set(HZ_ERR_INVALID, "max_origins must be at least 1");
        }
        c.cfg.max_origins = max_origins;
        HZ_OK
    })
}

/// Sets the gap policy: `HZ_GAP_REREAD` or `HZ_GAP_REPORT_LOST`.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown value).
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_gap_policy(config: *mut hz_config, policy: u32) -> hz_status {
    with(config, |c| {
        c.cfg.gap_policy = match policy {
            HZ_GAP_REREAD => GapPolicy::ReRead,
            HZ_GAP_REPORT_LOST => GapPolicy::ReportLost,
            v => return c.err.set(HZ_ERR_INVALID, format!("unknown gap policy {v}")),
        };
        HZ_OK
    })
}

/// Sets the bounds of a gap's recovery (gap policy `HZ_GAP_REREAD`): `rounds` asks of one
/// stream (at least 1; default 3), each given `round_timeout_ns` of clock time (default 2 s);
/// `fill_from_others` nonzero asks the other streams in turn after the re-reads (default 1);
/// `exhausted` is `HZ_EXHAUSTED_STUCK` (default) or `HZ_EXHAUSTED_REPORT_LOST`. Errors:
/// `HZ_ERR_NULL`, `HZ_ERR_INVALID` (rounds 0 or unknown `exhausted`). The configuration's
/// thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_recovery(
    config: *mut hz_config,
    rounds: u32,
    round_timeout_ns: u64,
    fill_from_others: u32,
    exhausted: u32,
) -> hz_status {
    with(config, |c| {
        if rounds == 0 {
            return c.err.set(HZ_ERR_INVALID, "rounds must be at least 1");
        }
        let exhausted = match exhausted {
            HZ_EXHAUSTED_STUCK => Exhausted::Stuck,
            HZ_EXHAUSTED_REPORT_LOST => Exhausted::ReportLost,
            v => return c.err.set(HZ_ERR_INVALID, format!("unknown exhausted policy {v}")),
        };
        let l = &mut c.cfg.liveness;
        (l.reread_rounds, l.round_timeout_ns, l.fill_from_others, l.exhausted) =
            (rounds, round_timeout_ns, fill_from_others != 0, exhausted);
        HZ_OK
    })
}

/// Sets silence reporting: `HZ_NOTICE_ACTIVE_SILENT` when the active stream delivers nothing for
/// `silence_ns` (0 disables; default 1 s) while a staged candidate holds newer events; with
/// `failover` nonzero the engine then switches to that candidate (default 0). Errors:
/// `HZ_ERR_NULL`. The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_silence(
    config: *mut hz_config,
    silence_ns: u64,
    failover: u32,
) -> hz_status {
    with(config, |c| {
        (c.cfg.liveness.silence_ns, c.cfg.liveness.failover_on_silence) = (silence_ns, failover != 0);
        HZ_OK
    })
}

/// Sets how long a hole in the active stream waits, delivery held at it, for a staged stream
/// that lags (it has not yet shown the hole's origin past it) to bring the missing events,
/// before the gap policy runs: `gap_wait_ns` of clock time from when the hole is met (0
/// disables; default 20 ms). The wait ends early when the hole is filled or every staged stream
/// shows the origin past it without it. Holes filled so are counted in
/// `hz_stats.gaps_filled_by_wait`. Errors: `HZ_ERR_NULL`. The configuration's thread (one at a
/// time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_gap_wait(config: *mut hz_config, gap_wait_ns: u64) -> hz_status {
    with(config, |c| {
        c.cfg.liveness.gap_wait_ns = gap_wait_ns;
        HZ_OK
    })
}

/// Sets the engine's clock (docs/design.md §6: replay and tests pass virtual time): `clock`
/// returns nanoseconds since an origin of the application's choosing, and the engine reads it
/// once per poll instead of its monotonic clock. Every time in notices and statistics, and every
/// liveness deadline, is then on this clock. A reading smaller than the last counts as no time
/// passing. `hz_engine_wait` still sleeps in real time (a deadline due sooner on this clock only
/// shortens the sleep). `NULL` restores the monotonic clock (the default).
///
/// Ownership: `clock` and `user_data` must stay valid, and be callable from whichever thread
/// polls, for the life of every engine built from this configuration; the engine never frees
/// `user_data`. `clock` must return normally (no C++ exceptions, no longjmp) and must not call
/// into the engine. Errors: `HZ_ERR_NULL` (`config`). The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_clock(
    config: *mut hz_config,
    clock: hz_clock_fn,
    user_data: *mut c_void,
) -> hz_status {
    with(config, |c| {
        c.clock = clock.map(|f| AppClock { f, user: user_data });
        HZ_OK
    })
}

/// Sets the sequence mode: `HZ_SEQ_STRICT` or `HZ_SEQ_MONOTONIC`.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown value).
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_seq_mode(config: *mut hz_config, mode: u32) -> hz_status {
    with(config, |c| {
        c.cfg.seq_mode = match mode {
            HZ_SEQ_STRICT => SeqMode::Strict,
            HZ_SEQ_MONOTONIC => SeqMode::Monotonic,
            v => return c.err.set(HZ_ERR_INVALID, format!("unknown seq mode {v}")),
        };
        HZ_OK
    })
}

/// Sets the most bytes staged windows may take at once: each window counted as its records
/// times the mean data frame delivered so far (the largest frame before any data), summed.
/// Errors: `HZ_ERR_NULL`.
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_staging_budget(config: *mut hz_config, bytes: usize) -> hz_status {
    with(config, |c| {
        c.cfg.staging_budget_bytes = bytes;
        HZ_OK
    })
}

/// Shares `pool` (`hz_pool_new`) among the engines built from this configuration from now on,
/// and with every other engine given the same pool: their staged windows then need a grant from
/// it as well as fitting each engine's `hz_config_set_staging_budget` (docs/staging.md). NULL
/// removes the pool (the default: each engine has only its own budget).
///
/// Ownership: the configuration, and each engine built from it, keeps its own reference to the
/// pool; `pool` may be freed at once, before or after them. Errors: `HZ_ERR_NULL` (`config`).
/// The configuration's thread (one at a time); the pool handle is only read.
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_pool(config: *mut hz_config, pool: *const hz_pool) -> hz_status {
    with(config, |c| {
        // SAFETY: NULL or a live pool, per contract.
        c.cfg.staging_pool = unsafe { pool.as_ref() }.map(|p| Arc::clone(&p.pool));
        HZ_OK
    })
}

/// Sets what a cold switch costs this recipient, ns of stall (default 100 ms, a fetch): in a
/// shared pool a staged window's benefit is the switch's probability times this, so a recipient
/// whose cold switches cost more wins the bytes (`hz_staging_demand.urgency` reports it). 0
/// makes every request worthless: it never bids and yields to any bid.
/// Errors: `HZ_ERR_NULL`.
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_cold_switch_cost(config: *mut hz_config, cost_ns: u64) -> hz_status {
    with(config, |c| {
        c.cfg.cold_switch_cost_ns = cost_ns;
        HZ_OK
    })
}

/// Spreads staging starts across a fleet (docs/staging.md, "Spread starts"): a candidate the
/// policy asks for (an ANNOUNCE, a prediction) starts staging after a delay fixed per recipient
/// and stream, uniform over the fleet, below `min(max_ns, fraction × expected time to the
/// switch)`, where `fraction` is `fraction_permille / 1000` and the expected time is the
/// ANNOUNCE's `expected_in_ns`, else the policy's estimate (unknown: the bound is
/// `max_ns × (1 − probability)`). Armed streams and gap fills start at once. `max_ns` 0 turns
/// spreading off (the default; `fraction_permille` default 500).
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (`fraction_permille` above 1000; nothing changed).
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_spread(
    config: *mut hz_config,
    max_ns: u64,
    fraction_permille: u32,
) -> hz_status {
    with(config, |c| {
        if fraction_permille > 1000 {
            return c
                .err
                .set(HZ_ERR_INVALID, format!("fraction_permille {fraction_permille}: must be 0 ..= 1000"));
        }
        c.cfg.spread = Spread { max_ns, fraction: fraction_permille as f32 / 1000.0 };
        HZ_OK
    })
}

/// Sets the default staging window, records (default 100).
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (0).
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_default_window(config: *mut hz_config, records: usize) -> hz_status {
    with(config, |c| {
        if records == 0 {
            return c.err.set(HZ_ERR_INVALID, "the default window must be at least 1 record");
        }
        c.cfg.default_window = records;
        HZ_OK
    })
}

/// Largest `slots` `hz_config_set_identity_records` takes: 2^20 (40 MiB of log per stream).
pub const HZ_MAX_IDENTITIES: usize = 1_048_576;
const _: () = assert!(HZ_MAX_IDENTITIES == MAX_IDENTITIES);

/// The identity tier (docs/staging.md, "Tiers"): each stream's ring keeps the identities
/// (origin, seq, position; 40 bytes each, allocated by `hz_engine_new`) of the last `slots - 1`
/// records its staged window evicted, so a switch whose target's window proved too short asks
/// the re-read with `HZ_START_POS` (the exact position) where it would otherwise say
/// `HZ_START_AFTER_SEQ` or `HZ_START_AFTER_FRONTIER`. 0 (the default): off. Size it to the
/// records a window may evict beyond the frontier (a stream's lead over the active one, less
/// the window). Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (above `HZ_MAX_IDENTITIES`; nothing
/// changed). The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_identity_records(config: *mut hz_config, slots: usize) -> hz_status {
    with(config, |c| {
        if slots > MAX_IDENTITIES {
            return c.err.set(
                HZ_ERR_INVALID,
                format!("identity records {slots}: the limit is {MAX_IDENTITIES} (HZ_MAX_IDENTITIES)"),
            );
        }
        c.cfg.identity_records = slots;
        HZ_OK
    })
}

/// Largest `keys` `hz_config_set_conflation` takes: 2^20.
pub const HZ_MAX_CONFLATION_KEYS: usize = 1_048_576;
const _: () = assert!(HZ_MAX_CONFLATION_KEYS == harmonizer_core::engine::MAX_CONFLATION_KEYS);
/// Largest `payload_max` `hz_config_set_conflation` takes: 64 KiB.
pub const HZ_MAX_CONFLATION_PAYLOAD: usize = 65_536;
const _: () = assert!(HZ_MAX_CONFLATION_PAYLOAD == harmonizer_core::engine::MAX_CONFLATION_PAYLOAD);

/// The conflation tier (docs/staging.md, "Tiers"): each stream keeps, while staged, a copy of
/// the latest event marked `HZ_FLAG_CONFLATABLE` of up to `keys` conflation keys, payloads up
/// to `payload_max` bytes (allocated by `hz_engine_new`: about `2 × keys` rounded up to a power
/// of two, times `payload_max + 56` bytes, per stream). A hole its staged window left that held
/// only marked events is then conflated: `HZ_NOTICE_CONFLATED` and each key's latest event,
/// instead of a re-read. Needs the identity tier (`hz_config_set_identity_records`, 2 or more:
/// `hz_engine_new` says `HZ_ERR_CONFIG` otherwise), whose log bounds the holes it can conflate.
/// `keys` 0 (the default) turns it off. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (`keys` above
/// `HZ_MAX_CONFLATION_KEYS`, `payload_max` above `HZ_MAX_CONFLATION_PAYLOAD`, or a store above
/// 1 GiB a stream; nothing changed). The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_conflation(
    config: *mut hz_config,
    keys: usize,
    payload_max: usize,
) -> hz_status {
    with(config, |c| {
        if keys > HZ_MAX_CONFLATION_KEYS {
            return c.err.set(
                HZ_ERR_INVALID,
                format!(
                    "conflation keys {keys}: the limit is {HZ_MAX_CONFLATION_KEYS} (HZ_MAX_CONFLATION_KEYS)"
                ),
            );
        }
        if payload_max > HZ_MAX_CONFLATION_PAYLOAD {
            return c.err.set(
                HZ_ERR_INVALID,
                format!(
                    "conflation payload_max {payload_max}: the limit is {HZ_MAX_CONFLATION_PAYLOAD} bytes (HZ_MAX_CONFLATION_PAYLOAD)"
                ),
            );
        }
        let bytes = harmonizer_core::engine::conflation_store_bytes(keys, payload_max);
        if bytes > harmonizer_core::engine::MAX_CONFLATION_STORE_BYTES {
            return c.err.set(
                HZ_ERR_INVALID,
                format!(
                    "conflation store of {keys} keys and {payload_max}-byte payloads takes {bytes} bytes a stream: the limit is 1 GiB"
                ),
            );
        }
        c.cfg.conflation_keys = keys;
        c.cfg.conflation_payload = payload_max;
        HZ_OK
    })
}

/// `hz_config_set_verify` policy: report a mismatch (`HZ_NOTICE_MISMATCH`) and switch as flips
/// say.
pub const HZ_MISMATCH_REPORT: u32 = 1;
/// `hz_config_set_verify` policy: report a mismatch, and refuse a switch to the stream that
/// carried the differing copy (`HZ_NOTICE_SWITCH_BLOCKED`) until it has verified `window`
/// events since.
pub const HZ_MISMATCH_BLOCK_SWITCH: u32 = 2;
/// Largest `records` `hz_config_set_verify` takes: 2^22 (128 MiB).
pub const HZ_MAX_VERIFY_RECORDS: usize = 4_194_304;
const _: () = assert!(HZ_MAX_VERIFY_RECORDS == harmonizer_core::engine::MAX_VERIFY_RECORDS);
/// Largest `map_runs` `hz_config_set_verify` takes: 2^20 (72 MiB).
pub const HZ_MAX_MAP_RUNS: usize = 1_048_576;
const _: () = assert!(HZ_MAX_MAP_RUNS == harmonizer_core::engine::MAX_MAP_RUNS);

/// Content verification and the exact position map (docs/verify.md). While a candidate is
/// staged, the engine remembers the last `records` events it delivered (rounded up to a power
/// of two, 32 bytes each) and compares each with the staged stream's copy by a 64-bit digest
/// (XXH3 of kind, application flags and payload): equal copies are counted verified and their
/// positions go into the position map (`hz_engine_translate`, `hz_engine_position_map`;
/// `map_runs` runs of 72 bytes, the oldest overwritten first); differing ones are
/// `HZ_NOTICE_MISMATCH` and, under `HZ_MISMATCH_BLOCK_SWITCH`, block a switch to that stream
/// until it has verified `window` events since. `records` 0 (the default) turns it off.
/// Errors: `HZ_ERR_NULL`; `HZ_ERR_INVALID` (`records` above `HZ_MAX_VERIFY_RECORDS`,
/// `map_runs` 0 or above `HZ_MAX_MAP_RUNS` while `records` is set, an unknown policy; nothing
/// changed). The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_verify(
    config: *mut hz_config,
    records: usize,
    map_runs: usize,
    policy: u32,
    window: u64,
) -> hz_status {
    use harmonizer_core::engine::MismatchPolicy;
    with(config, |c| {
        if records > HZ_MAX_VERIFY_RECORDS {
            return c.err.set(
                HZ_ERR_INVALID,
                format!(
                    "verify records {records}: the limit is {HZ_MAX_VERIFY_RECORDS} (HZ_MAX_VERIFY_RECORDS)"
                ),
            );
        }
        if records > 0 && (map_runs == 0 || map_runs > HZ_MAX_MAP_RUNS) {
            return c.err.set(
                HZ_ERR_INVALID,
                format!("map_runs {map_runs}: must be 1..={HZ_MAX_MAP_RUNS} (HZ_MAX_MAP_RUNS)"),
            );
        }
        let policy = match policy {
            HZ_MISMATCH_REPORT => MismatchPolicy::Report,
            HZ_MISMATCH_BLOCK_SWITCH => MismatchPolicy::BlockSwitch,
            _ => {
                return c.err.set(
                    HZ_ERR_INVALID,
                    format!(
                        "unknown mismatch policy {policy}: HZ_MISMATCH_REPORT or HZ_MISMATCH_BLOCK_SWITCH"
                    ),
                )
            }
        };
        c.cfg.verify_records = records;
        if records > 0 {
            c.cfg.map_runs = map_runs;
        }
        c.cfg.mismatch_policy = policy;
        c.cfg.mismatch_window = window;
        HZ_OK
    })
}

/// Automatic rollback (docs/verify.md, "Rollback"): after a switch, the new stream is on
/// probation for `duration_ns` clock nanoseconds (0, the default: off). It fails it when more
/// than `max_mismatches` of its events differ from the previous stream's copies (needs
/// `hz_config_set_verify`), when it shows more than `max_holes` holes, when it is silent for
/// `silence_ns` (0: not watched), or when the previous stream, kept staged, holds an event
/// `max_lag_ns` of upstream time ahead of the last delivered (0: not watched). Then
/// `HZ_NOTICE_PROBATION_FAILED`, and with `roll_back` non-zero a switch back to the previous
/// stream (`HZ_SWITCH_CAUSE_ROLLBACK`), exactly once from the delivery frontier. The previous
/// stream must stay staged for the comparisons (`hz_config_set_keep_previous`, the default).
/// Errors: `HZ_ERR_NULL`. The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_probation(
    config: *mut hz_config,
    duration_ns: u64,
    max_mismatches: u64,
    max_holes: u64,
    silence_ns: u64,
    max_lag_ns: u64,
    roll_back: u32,
) -> hz_status {
    with(config, |c| {
        c.cfg.probation = harmonizer_core::engine::Probation {
            duration_ns,
            max_mismatches,
            max_holes,
            silence_ns,
            max_lag_ns,
            roll_back: roll_back != 0,
        };
        HZ_OK
    })
}

/// Before each switch it makes (or refuses), the engine reports the switch's dry run as a
/// `HZ_NOTICE_DRY_RUN` notice (non-zero; 0, the default: no such notices), so a prediction can
/// be compared with the `SWITCHED` that follows (docs/verify.md, "The dry run"). Errors:
/// `HZ_ERR_NULL`. The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_dry_run_switches(config: *mut hz_config, enabled: u32) -> hz_status {
    with(config, |c| {
        c.cfg.dry_run_switches = enabled != 0;
        HZ_OK
    })
}

/// After a switch, keep the old stream as a staged candidate (non-zero, the default) or
/// release it with `HZ_NOTICE_UNSUBSCRIBE` (0). The policy has the last word: the manual
/// policy stages the switchback target and always-stage stages every stream, so with those the
/// old stream is subscribed again at once. Errors: `HZ_ERR_NULL`.
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_keep_previous(config: *mut hz_config, keep: u32) -> hz_status {
    with(config, |c| {
        c.cfg.keep_previous = keep != 0;
        HZ_OK
    })
}

/// Sets the arming policy: `HZ_POLICY_MANUAL`, `HZ_POLICY_NEVER`, `HZ_POLICY_ALWAYS` or
/// `HZ_POLICY_PREDICTOR`. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (unknown value).
/// The configuration's thread (one at a time).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_policy(config: *mut hz_config, policy: u32) -> hz_status {
    with(config, |c| {
        if policy > HZ_POLICY_PREDICTOR {
            return c.err.set(HZ_ERR_INVALID, format!("unknown arming policy {policy}"));
        }
        c.policy = policy;
        HZ_OK
    })
}

/// Sets the predictor's preset: `HZ_PRESET_CONSERVATIVE`, `HZ_PRESET_BALANCED` or
/// `HZ_PRESET_AGGRESSIVE` (used with `HZ_POLICY_PREDICTOR`). Errors: `HZ_ERR_NULL`,
/// `HZ_ERR_INVALID` (unknown value).
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_preset(config: *mut hz_config, preset: u32) -> hz_status {
    with(config, |c| {
        if preset > HZ_PRESET_AGGRESSIVE {
            return c.err.set(HZ_ERR_INVALID, format!("unknown predictor preset {preset}"));
        }
        c.preset = preset;
        HZ_OK
    })
}

/// The configuration's last error message (`""` if none). Valid until the next call on this
/// configuration; do not free. NULL `config` gives `""`. The configuration's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_config_last_error(config: *const hz_config) -> *const c_char {
    guard(c"".as_ptr(), || {
        // SAFETY: NULL or a live configuration.
        unsafe { config.as_ref() }.map_or(c"".as_ptr(), |c| c.err.as_ptr())
    })
}
