//! The C API of the predictor's learning (docs/predictor.md, "Learning from the deployment"):
//! recording labelled feature snapshots while the engine runs, the online mode, draining the
//! rows, and writing the (adapted) model back as a model file.

use std::ffi::c_char;

use harmonizer_core::predict::learn::{LearnConfig, OnlineConfig, MAX_RECORDED_ROWS, MIN_EVERY_NS};
use harmonizer_core::predict::{LabelledRow, Predictor, N_FEATURES};

use super::config::hz_config;
use super::engine::{with, BufWriter};
use super::{
    fill_sized, guard, hz_status, read_sized, size_problem, struct_size_of, HZ_ERR_BUFFER_TOO_SMALL,
    HZ_ERR_CONFIG, HZ_ERR_INVALID, HZ_ERR_NULL, HZ_ERR_STATE, HZ_OK,
};

/// Room for features in `hz_history_row`: this build fills `HZ_N_FEATURES` of them (its
/// `n_features`), the rest are 0. Larger than today's count so a later library with more
/// features keeps the row's layout.
pub const HZ_HISTORY_MAX_FEATURES: usize = 32;
/// How many features this build's predictor computes (`hz_feature_name` names them).
pub const HZ_N_FEATURES: u32 = 18;
/// Largest `record_rows` `hz_config_set_learning` takes.
pub const HZ_MAX_HISTORY_ROWS: usize = 1_048_576;
/// Smallest snapshot cadence `hz_config_set_learning` takes, ns (1 ms).
pub const HZ_MIN_SNAPSHOT_NS: u64 = 1_000_000;

const _: () = assert!(N_FEATURES <= HZ_HISTORY_MAX_FEATURES);
const _: () = assert!(HZ_N_FEATURES as usize == N_FEATURES);
const _: () = assert!(HZ_MAX_HISTORY_ROWS == MAX_RECORDED_ROWS);
const _: () = assert!(HZ_MIN_SNAPSHOT_NS == MIN_EVERY_NS);

/// One labelled feature snapshot (the row `harmonize train` fits; the history format is in
/// `harmonize trace --help`): at `t_ns` (the engine's clock), candidate `stream`'s features;
/// `label` 1 when the recipient switched to `stream` within the model's horizon after `t_ns`.
/// Fixed layout: an array of rows is filled by `hz_engine_drain_history`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct hz_history_row {
    /// Engine clock time of the snapshot, ns.
    pub t_ns: u64,
    /// The candidate stream.
    pub stream: u32,
    /// 1: switched to `stream` within the horizon; 0: not.
    pub label: u32,
    /// Features filled (`HZ_N_FEATURES`), in `hz_feature_name` order.
    pub n_features: u32,
    /// 0.
    pub reserved: u32,
    /// The features; entries past `n_features` are 0.
    pub features: [f64; HZ_HISTORY_MAX_FEATURES],
}

/// The online mode's settings (docs/predictor.md): `hz_online_config_default` fills the
/// defaults. Size-tagged: set `struct_size` to `sizeof(hz_online_config)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_online_config {
    /// `sizeof(hz_online_config)`, set by the caller.
    pub struct_size: usize,
    /// Step size per labelled row, in (0, 10]; 1 is the diagonal Newton step (default).
    pub learning_rate: f64,
    /// Weight of a positive row, in (0, 1000] (default 1).
    pub positive_weight: f64,
    /// Pull back towards the starting model per step, in [0, 1] (default 0).
    pub prior_l2: f64,
    /// Evidence, in rows, the starting model counts for per weight, in (0, 1e9] (default 200).
    pub prior_precision: f64,
    /// Rows of memory for each weight's curvature, at least 1 (default 20000).
    pub memory_rows: f64,
    /// No weight moves further than this from the starting model, in (0, 100] (default 3).
    pub max_drift: f64,
}

const ONLINE_V1: usize = std::mem::size_of::<hz_online_config>();

/// The learner's counters, as `hz_engine_learn_stats` fills them. Size-tagged: set
/// `struct_size` to `sizeof(hz_learn_stats)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct hz_learn_stats {
    /// `sizeof(hz_learn_stats)`, set by the caller.
    pub struct_size: usize,
    /// Snapshots taken (one per candidate per cadence).
    pub snapshots: u64,
    /// Rows released with their label (one horizon after their snapshot).
    pub labelled: u64,
    /// Of them, positive.
    pub positives: u64,
    /// Rows kept for `hz_engine_drain_history`.
    pub rows_recorded: u64,
    /// Rows not kept: the application had not drained the ring.
    pub rows_dropped: u64,
    /// Snapshots dropped unlabelled because the waiting ring was full: 0 unless something is
    /// wrong (the ring grows with a longer model's horizon; a cadence too fine is refused).
    pub pending_dropped: u64,
    /// Online steps taken.
    pub updates: u64,
    /// Rows waiting to be drained.
    pub rows_waiting: u64,
    /// Largest distance of any weight (or the bias) from the starting model.
    pub max_drift: f64,
    /// Mean log loss of the rows learned from, before each step (decayed over ~1000 rows).
    pub recent_log_loss: f64,
}

const LEARN_STATS_V1: usize = std::mem::size_of::<hz_learn_stats>();

fn online_default() -> hz_online_config {
    let o = OnlineConfig::default();
    hz_online_config {
        struct_size: ONLINE_V1,
        learning_rate: o.learning_rate,
        positive_weight: o.positive_weight,
        prior_l2: o.prior_l2,
        prior_precision: o.prior_precision,
        memory_rows: o.memory_rows,
        max_drift: o.max_drift,
    }
}

/// Fills `*out` with the online mode's defaults (`OnlineConfig::default()`), keeping its
/// `struct_size`. Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (`struct_size`). Any thread.
#[no_mangle]
pub unsafe extern "C" fn hz_online_config_default(out: *mut hz_online_config) -> hz_status {
    guard(super::HZ_ERR_PANIC, || {
        if out.is_null() {
            return super::flip::fail(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null, the caller's struct per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        if let Some(why) = size_problem(
            "out",
            "hz_online_config",
            given,
            ONLINE_V1,
            std::mem::align_of::<hz_online_config>(),
        ) {
            return super::flip::fail(HZ_ERR_INVALID, why);
        }
        let d = hz_online_config { struct_size: given, ..online_default() };
        // SAFETY: checked above: `given` writable bytes, at least the first layout.
        let ok = unsafe { fill_sized(out.cast(), given, ONLINE_V1, &d) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}

/// Turns on the predictor's learning for engines made from `config` (used with
/// `HZ_POLICY_PREDICTOR`): a snapshot of every candidate's features each `every_ns` (at least
/// `HZ_MIN_SNAPSHOT_NS`, and coarse enough that the snapshots of one horizon, 16 streams'
/// worth, fit the waiting ring: 2 ms over the default model's 5 s; 100 ms is what training
/// uses), labelled one horizon later; up to
/// `record_rows` labelled rows (at most `HZ_MAX_HISTORY_ROWS`) kept for
/// `hz_engine_drain_history`; and, when `online` is not NULL, the online mode with its settings
/// (read up to its `struct_size`). `record_rows` 0 with `online` NULL turns learning off. The
/// engine allocates its two rings when it is made (`HZ_ERR_NO_MEMORY` then), nothing after.
/// Errors: `HZ_ERR_NULL`, `HZ_ERR_INVALID` (`online->struct_size`), `HZ_ERR_CONFIG` (a value
/// out of range, named). The configuration's thread.
#[no_mangle]
pub unsafe extern "C" fn hz_config_set_learning(
    config: *mut hz_config,
    every_ns: u64,
    record_rows: usize,
    online: *const hz_online_config,
) -> hz_status {
    super::config::with(config, |c| {
        let online = if online.is_null() {
            None
        } else {
            // SAFETY: non-null, the caller's struct per contract.
            let given = unsafe { struct_size_of(online.cast()) };
            if let Some(why) = size_problem(
                "online",
                "hz_online_config",
                given,
                ONLINE_V1,
                std::mem::align_of::<hz_online_config>(),
            ) {
                return c.err.set(HZ_ERR_INVALID, why);
            }
            // SAFETY: `online` readable for `given` bytes; the struct is plain doubles.
            let Some(o) = (unsafe { read_sized::<hz_online_config>(online.cast(), given, ONLINE_V1) }) else {
                return c.err.set(HZ_ERR_INVALID, "online->struct_size is out of range");
            };
            Some(OnlineConfig {
                learning_rate: o.learning_rate,
                positive_weight: o.positive_weight,
                prior_l2: o.prior_l2,
                prior_precision: o.prior_precision,
                memory_rows: o.memory_rows,
                max_drift: o.max_drift,
            })
        };
        if record_rows == 0 && online.is_none() {
            c.learn = None;
            return HZ_OK;
        }
        let l = LearnConfig { every_ns, record_rows, online };
        // The engine starts with the default model: its horizon bounds the cadence.
        if let Err(e) = l.validate_for_horizon(harmonizer_core::predict::policy::default_model().horizon_ns) {
            return c.err.set(HZ_ERR_CONFIG, e.to_string());
        }
        c.learn = Some(l);
        HZ_OK
    })
}

fn predictor(e: &mut super::engine::Inner) -> Option<&mut Predictor> {
    e.engine.policy_mut::<Predictor>()
}

const NOT_PREDICTOR: &str = "the engine's policy is not the predictor (HZ_POLICY_PREDICTOR)";

/// Moves up to `cap` labelled rows, oldest first, into `rows` and their number to `*count` (0
/// when none wait, or learning records nothing). Allocates nothing. Errors: `HZ_ERR_NULL`
/// (`count`, or `rows` with `cap` above 0), `HZ_ERR_STATE` (the policy is not the predictor; from
/// a callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_drain_history(
    engine: *mut super::engine::hz_engine,
    rows: *mut hz_history_row,
    cap: usize,
    count: *mut usize,
) -> hz_status {
    with(engine, |e, err, _| {
        if count.is_null() {
            return err.set(HZ_ERR_NULL, "count is NULL");
        }
        if rows.is_null() && cap > 0 {
            return err.set(HZ_ERR_NULL, format!("rows is NULL with cap {cap}"));
        }
        let Some(p) = predictor(e) else { return err.set(HZ_ERR_STATE, NOT_PREDICTOR) };
        let mut n = 0;
        let mut one = [LabelledRow { t_ns: 0, stream: 0, label: false, features: [0.0; N_FEATURES] }];
        while n < cap && p.drain_history(&mut one) == 1 {
            let r = &one[0];
            let mut out = hz_history_row {
                t_ns: r.t_ns,
                stream: r.stream,
                label: u32::from(r.label),
                n_features: HZ_N_FEATURES,
                reserved: 0,
                features: [0.0; HZ_HISTORY_MAX_FEATURES],
            };
            out.features[..N_FEATURES].copy_from_slice(&r.features);
            // SAFETY: `rows` is non-null (`cap` > 0) and holds `cap` writable rows per
            // contract; `n < cap`.
            unsafe { rows.add(n).write_unaligned(out) };
            n += 1;
        }
        // SAFETY: non-null and writable per contract.
        unsafe { *count = n };
        HZ_OK
    })
}

/// Fills `*out` with the learner's counters (all 0 when learning is off). Errors: `HZ_ERR_NULL`,
/// `HZ_ERR_INVALID` (`struct_size`), `HZ_ERR_STATE` (not the predictor; from a callback). Poll
/// thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_learn_stats(
    engine: *mut super::engine::hz_engine,
    out: *mut hz_learn_stats,
) -> hz_status {
    with(engine, |e, err, _| {
        if out.is_null() {
            return err.set(HZ_ERR_NULL, "out is NULL");
        }
        // SAFETY: non-null, the caller's struct per contract.
        let given = unsafe { struct_size_of(out.cast()) };
        if let Some(why) = size_problem(
            "out",
            "hz_learn_stats",
            given,
            LEARN_STATS_V1,
            std::mem::align_of::<hz_learn_stats>(),
        ) {
            return err.set(HZ_ERR_INVALID, why);
        }
        let Some(p) = predictor(e) else { return err.set(HZ_ERR_STATE, NOT_PREDICTOR) };
        let s = p.learn_stats().unwrap_or_default();
        let v = hz_learn_stats {
            struct_size: given,
            snapshots: s.snapshots,
            labelled: s.labelled,
            positives: s.positives,
            rows_recorded: s.rows_recorded,
            rows_dropped: s.rows_dropped,
            pending_dropped: s.pending_dropped,
            updates: s.updates,
            rows_waiting: p.history_len() as u64,
            max_drift: s.max_drift,
            recent_log_loss: s.recent_log_loss,
        };
        // SAFETY: checked above: `given` writable bytes, at least the first layout.
        let ok = unsafe { fill_sized(out.cast(), given, LEARN_STATS_V1, &v) };
        debug_assert!(ok.is_some());
        HZ_OK
    })
}

/// Writes the predictor's model as it is now (with whatever the online mode changed) as a model
/// file (docs/predictor.md; `hz_engine_load_model` reads it back, bit for bit), NUL-terminated,
/// into `buf` (`cap` bytes), its length without the NUL to `*len`. Ask the length with `buf`
/// NULL and `cap` 0 (`HZ_ERR_BUFFER_TOO_SMALL`, `*len` set); allocates nothing. Errors:
/// `HZ_ERR_NULL` (`len`, or `buf` with `cap` above 0), `HZ_ERR_BUFFER_TOO_SMALL`, `HZ_ERR_STATE`
/// (not the predictor; from a callback). Poll thread.
#[no_mangle]
pub unsafe extern "C" fn hz_engine_model_json(
    engine: *mut super::engine::hz_engine,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> hz_status {
    with(engine, |e, err, _| {
        if len.is_null() {
            return err.set(HZ_ERR_NULL, "len is NULL");
        }
        if buf.is_null() && cap > 0 {
            return err.set(HZ_ERR_NULL, format!("buf is NULL with cap {cap}"));
        }
        let Some(p) = predictor(e) else { return err.set(HZ_ERR_STATE, NOT_PREDICTOR) };
        let mut count = BufWriter { buf: &mut [], len: 0 };
        let _ = p.model().write_json(&mut count);
        // SAFETY: non-null and writable per contract.
        unsafe { *len = count.len };
        if cap <= count.len {
            return err.set(
                HZ_ERR_BUFFER_TOO_SMALL,
                format!("the model takes {} bytes and a NUL; cap is {cap}", count.len),
            );
        }
        // SAFETY: `buf` is non-null (`cap` > `count.len` >= 0) and the caller's `cap` writable
        // bytes per contract; nothing else refers to them during the call.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) };
        let mut w = BufWriter { buf: out, len: 0 };
        let _ = p.model().write_json(&mut w);
        let n = w.len;
        out[n] = 0;
        HZ_OK
    })
}

/// The name of feature `i` (`0 .. HZ_N_FEATURES`) as the model file and the history name it
/// (static, NUL-terminated); NULL past the last. Any thread.
#[no_mangle]
pub extern "C" fn hz_feature_name(i: u32) -> *const c_char {
    const NAMES: [&std::ffi::CStr; N_FEATURES] = [
        c"load_burst",
        c"load_sustained",
        c"rate_log",
        c"error_rate",
        c"gap_rate",
        c"lag_excess_ms",
        c"lag_trend_ms",
        c"overload_s",
        c"rollout_wait_s",
        c"cohort_near",
        c"since_switch",
        c"post_switch_errors",
        c"silence_s",
        c"cand_announced",
        c"cand_announce_due",
        c"cand_rollout_target",
        c"cand_previous",
        c"cand_left_unwell_s",
    ];
    NAMES.get(i as usize).map_or(std::ptr::null(), |n| n.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use harmonizer_core::predict::FEATURE_NAMES;

    #[test]
    fn feature_names_match_the_library() {
        for (i, want) in FEATURE_NAMES.iter().enumerate() {
            // SAFETY: a static NUL-terminated name.
            let got = unsafe { std::ffi::CStr::from_ptr(hz_feature_name(i as u32)) };
            assert_eq!(got.to_str().unwrap(), *want);
        }
        assert!(hz_feature_name(HZ_N_FEATURES).is_null());
    }

    #[test]
    fn defaults_match_the_library() {
        let d = online_default();
        let o = OnlineConfig::default();
        assert_eq!(
            (d.learning_rate, d.prior_precision, d.max_drift),
            (o.learning_rate, o.prior_precision, o.max_drift)
        );
        let _ = HZ_ERR_CONFIG;
    }
}
