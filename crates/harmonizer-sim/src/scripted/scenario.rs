//! The scripted scenario: its schema, its defaults and its validation.
//!
//! A [`Scenario`] is what a scenario file holds (the `harmonize` CLI reads TOML into it; every key
//! is documented in `docs/demo.md`, and `harmonize/scenarios/demo.toml` is the embedded default
//! and a commented example). Unknown keys are errors (`deny_unknown_fields`), and every
//! validation error names the key path (`incident[2].lead_s`), so a typo never passes silently.

use serde::Deserialize;

use harmonizer_core::flip::{MAX_BASIS_POINTS, MAX_IDS};

/// Most records a scenario may render (`rate × duration × streams`, times the highest rate
/// multiplier when there are bursts): keeps the pre-rendered logs under about 256 MB (32
/// bytes per record).
pub const MAX_RECORDS: f64 = 8e6;
/// Overlapping bursts multiply the rate, up to this.
pub const MAX_RATE_FACTOR: f64 = 10.0;
/// Most recipients (a fleet: `harmonize fleet`).
pub const MAX_RECIPIENTS: u32 = 1024;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in reports.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Fixes every random draw (arrivals, jitter, drops, error flags, bursts, default salts).
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Scenario time simulated, seconds.
    pub duration_s: f64,
    /// Logical events per second (Poisson), before bursts.
    #[serde(default = "d_rate")]
    pub rate: f64,
    /// Origins: event `k` has origin `k % origins` and seq `k / origins + 1`.
    #[serde(default = "d_origins")]
    pub origins: u32,
    /// Streams carrying every event.
    #[serde(default = "d_streams")]
    pub streams: u32,
    /// Every recipient starts on this stream.
    #[serde(default)]
    pub initial_stream: u32,
    /// Per stream: base lag from an event's time to its arrival, ms. Default `[2, 1, 3]` for 3
    /// streams; required otherwise.
    #[serde(default)]
    pub stream_lag_ms: Option<Vec<f64>>,
    /// Each record arrives up to this much later still (uniform), ms.
    #[serde(default = "d_jitter")]
    pub jitter_ms: f64,
    /// Scenario time between two polls of the lockstep (the arrival-time resolution), ms.
    #[serde(default = "d_tick")]
    pub tick_ms: f64,
    /// The recipients.
    #[serde(default)]
    pub recipients: Recipients,
    /// The simulated application around each engine.
    #[serde(default)]
    pub app: App,
    /// Each recipient's engine.
    #[serde(default)]
    pub engine: EngineKeys,
    /// The predictor policy.
    #[serde(default)]
    pub predictor: PredictorKeys,
    /// Random background load bursts (no switch).
    #[serde(default)]
    pub background: Background,
    /// Which events the application marks conflatable (none by default).
    #[serde(default)]
    pub conflation: Conflation,
    /// What happens, in any order.
    #[serde(default, rename = "incident")]
    pub incidents: Vec<Incident>,
}

/// `[recipients]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    /// How many recipients (each its own engine and id).
    #[serde(default = "d_count")]
    pub count: u32,
    /// Ids are `first_id, first_id + 1, ...`.
    #[serde(default = "d_first_id")]
    pub first_id: u64,
}

impl Default for Recipients {
    fn default() -> Self {
        Recipients { count: d_count(), first_id: d_first_id() }
    }
}

/// `[app]`: the simulated application and its upstream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// From a live `Subscribe` (a candidate being staged) to its first record, ms.
    #[serde(default = "d_subscribe_delay")]
    pub subscribe_delay_ms: f64,
    /// From a fetching `Subscribe` (cold switch, re-read) to the first fetched record, ms.
    #[serde(default = "d_fetch_delay")]
    pub fetch_delay_ms: f64,
    /// A fetch's transfer time per record fetched, µs (0: a fetch is all there after its
    /// delay): a re-read that reaches further back takes longer.
    #[serde(default)]
    pub fetch_record_us: f64,
    /// How the application finds where to re-read when the engine names no exact position
    /// (`StartAt::AfterSeq`, `AfterFrontier`): 0 (the default) finds the first undelivered
    /// event for free; otherwise it re-reads from the first event of the stream at most this
    /// many ms older than the last event it delivered (the streams' skew, plus a margin), and
    /// the engine drops what it already delivered.
    #[serde(default)]
    pub search_lookback_ms: f64,
}

impl Default for App {
    fn default() -> Self {
        App {
            subscribe_delay_ms: d_subscribe_delay(),
            fetch_delay_ms: d_fetch_delay(),
            fetch_record_us: 0.0,
            search_lookback_ms: 0.0,
        }
    }
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineKeys {
    /// Ring capacity per stream, KiB.
    #[serde(default = "d_ring_kib")]
    pub ring_kib: u32,
    /// Largest payload, bytes (flips must fit).
    #[serde(default = "d_max_payload")]
    pub max_payload: u32,
    /// Default staging window, records.
    #[serde(default = "d_window")]
    pub default_window: u32,
    /// Staging budget per recipient, KiB (0: unlimited).
    #[serde(default)]
    pub staging_budget_kib: u32,
    /// Staging budget per recipient in bytes, when set (not 0) in place of
    /// `staging_budget_kib`: a fleet's total divided among its recipients is rarely whole KiB.
    #[serde(default)]
    pub staging_budget_bytes: u64,
    /// One staging budget shared by every recipient's engine, KiB (0: none); docs/staging.md.
    #[serde(default)]
    pub shared_pool_kib: u32,
    /// What a cold switch costs a recipient, ms (a staged window's benefit in the shared pool
    /// is the switch's probability times this).
    #[serde(default = "d_cold_cost")]
    pub cold_switch_cost_ms: f64,
    /// Spread staging starts over at most this long, ms (0: no spreading); docs/staging.md.
    #[serde(default)]
    pub spread_max_ms: f64,
    /// Share of the expected time to a switch that spreading may use.
    #[serde(default = "d_spread_fraction")]
    pub spread_fraction: f64,
    /// The identity tier: slots of each stream's eviction log (0: off); docs/staging.md.
    #[serde(default)]
    pub identity_records: u32,
    /// The conflation tier: keys each stream's store holds (0: off; needs `identity_records`).
    #[serde(default)]
    pub conflation_keys: u32,
    /// The conflation tier: the largest payload a store keeps, bytes.
    #[serde(default = "d_conflation_payload")]
    pub conflation_payload: u32,
    /// Content verification (docs/verify.md): deliveries remembered while a candidate is
    /// staged (0: off).
    #[serde(default)]
    pub verify_records: u32,
    /// Refuse a switch to a stream that carried a mismatching copy (`MismatchPolicy::
    /// BlockSwitch`) instead of only reporting it.
    #[serde(default)]
    pub block_mismatched: bool,
    /// A probation after each switch, ms (0: off): a hole or a mismatch on the new stream
    /// rolls back (docs/verify.md, "Rollback").
    #[serde(default)]
    pub probation_ms: f64,
    /// Report a dry run before each switch (`Notice::DryRun`), compared with the switch.
    #[serde(default)]
    pub dry_run_switches: bool,
}

fn d_conflation_payload() -> u32 {
    64
}

impl Default for EngineKeys {
    fn default() -> Self {
        EngineKeys {
            ring_kib: d_ring_kib(),
            max_payload: d_max_payload(),
            default_window: d_window(),
            staging_budget_kib: 0,
            staging_budget_bytes: 0,
            shared_pool_kib: 0,
            cold_switch_cost_ms: d_cold_cost(),
            spread_max_ms: 0.0,
            spread_fraction: d_spread_fraction(),
            identity_records: 0,
            conflation_keys: 0,
            conflation_payload: d_conflation_payload(),
            verify_records: 0,
            block_mismatched: false,
            probation_ms: 0.0,
            dry_run_switches: false,
        }
    }
}

/// `[predictor]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictorKeys {
    /// `aggressive`, `balanced` or `conservative`.
    #[serde(default = "d_preset")]
    pub preset: PresetName,
    /// Duty cycle to hold (the adaptive threshold's integral controller), or none.
    #[serde(default)]
    pub target_duty: Option<f64>,
}

impl Default for PredictorKeys {
    fn default() -> Self {
        PredictorKeys { preset: d_preset(), target_duty: None }
    }
}

/// A predictor preset by name.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PresetName {
    /// Threshold 0.75.
    Conservative,
    /// Threshold 0.5.
    Balanced,
    /// The lowest threshold.
    Aggressive,
}

impl PresetName {
    /// The library's preset.
    pub fn preset(self) -> harmonizer_core::predict::Preset {
        use harmonizer_core::predict::Preset;
        match self {
            PresetName::Conservative => Preset::Conservative,
            PresetName::Balanced => Preset::Balanced,
            PresetName::Aggressive => Preset::Aggressive,
        }
    }
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            PresetName::Conservative => "conservative",
            PresetName::Balanced => "balanced",
            PresetName::Aggressive => "aggressive",
        }
    }
}

/// `[conflation]`: events the application marks conflatable (`FLAG_CONFLATABLE`), with a
/// conflation key in their payload's first 8 bytes (docs/staging.md, "Tiers").
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conflation {
    /// Share of the events marked, drawn per event (the same on every stream).
    #[serde(default)]
    pub share: f64,
    /// Keys per origin the marked events spread over, uniformly.
    #[serde(default)]
    pub keys: u32,
}

/// `[background]`: random load bursts, as in the predictor's training world.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Background {
    /// Mean gap between bursts, s (exponential); 0: none.
    #[serde(default)]
    pub bursts_every_s: f64,
    /// Rate multiplier of a burst, drawn uniformly from `[lo, hi]`.
    #[serde(default = "d_burst_factor")]
    pub burst_factor: [f64; 2],
    /// Length of a burst, s, drawn uniformly from `[lo, hi]`.
    #[serde(default = "d_burst_length")]
    pub burst_length_s: [f64; 2],
}

impl Default for Background {
    fn default() -> Self {
        Background { bursts_every_s: 0.0, burst_factor: d_burst_factor(), burst_length_s: d_burst_length() }
    }
}

/// What an ANNOUNCE leads to.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A SWITCH to the announced target `lead_s` later.
    Switch,
    /// A CANCEL `lead_s` later.
    Cancel,
    /// Nothing: the announce expires.
    Expire,
}

/// How a malformed flip is broken.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Malform {
    /// A valid flip cut short.
    Truncated,
    /// A valid flip with one byte flipped (the CRC-32C no longer matches).
    BadCrc,
    /// A valid flip claiming layout version 99.
    UnknownVersion,
}

/// One `[[incident]]`, by its `kind`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Incident {
    /// A cohort rollout: SWITCH flips to `target` with a cohort selector at each stage.
    Rollout {
        /// First stage, s.
        at_s: f64,
        /// The stream every cohort moves to.
        target: u32,
        /// Basis points of each stage, strictly increasing, at most 10000.
        #[serde(default = "d_stages")]
        stages_bp: Vec<u16>,
        /// Time between stages, s.
        #[serde(default = "d_stage_gap")]
        stage_gap_s: f64,
        /// The cohort salt; default: derived from the seed.
        #[serde(default)]
        salt: Option<u64>,
    },
    /// An ANNOUNCE of a switch to `target`, expected `lead_s` later; then a SWITCH, a CANCEL,
    /// or nothing.
    Announce {
        /// The ANNOUNCE, s.
        at_s: f64,
        /// The announced stream.
        target: u32,
        /// From the ANNOUNCE to the SWITCH or CANCEL, s.
        lead_s: f64,
        /// What follows.
        outcome: Outcome,
        /// Only these recipient ids (default: all).
        #[serde(default)]
        recipients: Option<Vec<u64>>,
    },
    /// A plain SWITCH with no warning.
    Switch {
        /// The flip, s.
        at_s: f64,
        /// The stream to switch to.
        target: u32,
        /// Only these recipient ids (default: all).
        #[serde(default)]
        recipients: Option<Vec<u64>>,
    },
    /// A stream degrades (lag, upstream errors and drops rising over `ramp_s`); with
    /// `switch_to`, a SWITCH comes at the end of the ramp, else it is a false alarm.
    Degradation {
        /// Start of the ramp, s.
        at_s: f64,
        /// The degrading stream.
        stream: u32,
        /// Time from healthy to the peak, s.
        ramp_s: f64,
        /// Extra lag at the peak, ms.
        peak_lag_ms: f64,
        /// Probability of UPSTREAM_ERROR at the peak.
        peak_error: f64,
        /// Probability that the live path drops an event at the peak.
        peak_drop: f64,
        /// Linear recovery after the peak, s.
        recover_s: f64,
        /// The SWITCH's target; none: a false alarm.
        #[serde(default)]
        switch_to: Option<u32>,
        /// Only these recipient ids (default: all).
        #[serde(default)]
        recipients: Option<Vec<u64>>,
    },
    /// A SWITCH with no warning, after which `stream` delivers nothing for `dead_s`.
    FailStop {
        /// The flip, s.
        at_s: f64,
        /// The stream that dies.
        stream: u32,
        /// The stream to switch to.
        switch_to: u32,
        /// How long `stream` stays dead, s.
        dead_s: f64,
        /// Only these recipient ids (default: all).
        #[serde(default)]
        recipients: Option<Vec<u64>>,
    },
    /// `bad_stream` turns bad (errors, extra lag) at `bad_from_s`; a SWITCHBACK comes at
    /// `at_s`; the stream recovers over `recover_s`.
    Switchback {
        /// The SWITCHBACK flip, s.
        at_s: f64,
        /// The stream that turns bad (the one switched to just before).
        bad_stream: u32,
        /// When it turns bad, s (before `at_s`).
        bad_from_s: f64,
        /// Its probability of UPSTREAM_ERROR.
        error: f64,
        /// Its extra lag, ms.
        extra_lag_ms: f64,
        /// Linear recovery after the switchback, s.
        recover_s: f64,
        /// Only these recipient ids (default: all).
        #[serde(default)]
        recipients: Option<Vec<u64>>,
    },
    /// A malformed FLIP record on every live stream.
    Malformed {
        /// When, s.
        at_s: f64,
        /// How it is broken.
        form: Malform,
    },
    /// The live path of `stream` loses `events` consecutive events (the stream's log still
    /// has them: a re-read finds them).
    Gap {
        /// The first event after this time is the first lost, s.
        at_s: f64,
        /// The stream.
        stream: u32,
        /// How many events.
        events: u32,
    },
    /// `stream` carries other payloads than the other streams for `events` consecutive events
    /// (a faulty pipeline: its live path and its log alike).
    Corrupt {
        /// The first event after this time is the first corrupted, s.
        at_s: f64,
        /// The stream.
        stream: u32,
        /// How many events.
        events: u32,
    },
    /// The event rate rises by `factor` for `length_s` (no switch).
    Burst {
        /// Start, s.
        at_s: f64,
        /// Rate multiplier.
        factor: f64,
        /// Length, s.
        length_s: f64,
    },
}

fn d_seed() -> u64 {
    1
}
fn d_rate() -> f64 {
    400.0
}
fn d_origins() -> u32 {
    4
}
fn d_streams() -> u32 {
    3
}
fn d_jitter() -> f64 {
    0.3
}
fn d_tick() -> f64 {
    1.0
}
fn d_count() -> u32 {
    8
}
fn d_first_id() -> u64 {
    1001
}
fn d_subscribe_delay() -> f64 {
    20.0
}
fn d_fetch_delay() -> f64 {
    50.0
}
fn d_ring_kib() -> u32 {
    256
}
fn d_max_payload() -> u32 {
    256
}
fn d_cold_cost() -> f64 {
    100.0
}
fn d_spread_fraction() -> f64 {
    0.5
}
fn d_window() -> u32 {
    100
}
fn d_preset() -> PresetName {
    PresetName::Aggressive
}
fn d_burst_factor() -> [f64; 2] {
    [2.0, 4.0]
}
fn d_burst_length() -> [f64; 2] {
    [0.5, 2.0]
}
fn d_stages() -> Vec<u16> {
    vec![1000, 5000, 10_000]
}
fn d_stage_gap() -> f64 {
    10.0
}

/// A value out of range: `path = value: must be want`.
fn bad(path: impl AsRef<str>, value: impl std::fmt::Display, want: &str) -> String {
    format!("{} = {value}: must be {want}", path.as_ref())
}

fn check_range(path: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(bad(path, v, &format!("in [{lo}, {hi}]")))
    }
}

fn check_prob(path: &str, v: f64) -> Result<(), String> {
    check_range(path, v, 0.0, 1.0)
}

impl Scenario {
    /// Seconds to ns (values are validated finite and in range first).
    pub fn ns(s: f64) -> u64 {
        (s * 1e9).round() as u64
    }

    /// The per-stream lags, ms.
    pub fn lags_ms(&self) -> Vec<f64> {
        match &self.stream_lag_ms {
            Some(v) => v.clone(),
            None => vec![2.0, 1.0, 3.0],
        }
    }

    /// The recipient ids.
    pub fn recipient_ids(&self) -> Vec<u64> {
        (0..u64::from(self.recipients.count)).map(|i| self.recipients.first_id.wrapping_add(i)).collect()
    }

    /// Checks every value; errors name the key path.
    pub fn validate(&self) -> Result<(), String> {
        check_range("duration_s", self.duration_s, 1.0, 3600.0)?;
        check_range("rate", self.rate, 1.0, 20_000.0)?;
        if !(1..=64).contains(&self.origins) {
            return Err(bad("origins", self.origins, "in [1, 64]"));
        }
        if !(2..=16).contains(&self.streams) {
            return Err(bad("streams", self.streams, "in [2, 16]"));
        }
        if self.initial_stream >= self.streams {
            return Err(bad("initial_stream", self.initial_stream, "a stream (below `streams`)"));
        }
        match &self.stream_lag_ms {
            None if self.streams != 3 => {
                return Err("stream_lag_ms: missing: needed when streams is not 3 (one lag per stream)".into())
            }
            Some(v) if v.len() != self.streams as usize => {
                return Err(format!(
                    "stream_lag_ms: has {} entries for {} streams (need one per stream)",
                    v.len(),
                    self.streams
                ))
            }
            _ => {}
        }
        for (i, lag) in self.lags_ms().iter().enumerate() {
            check_range(&format!("stream_lag_ms[{i}]"), *lag, 0.0, 10_000.0)?;
        }
        check_range("jitter_ms", self.jitter_ms, 0.0, 1000.0)?;
        check_range("tick_ms", self.tick_ms, 0.1, 100.0)?;
        if !(1..=MAX_RECIPIENTS).contains(&self.recipients.count) {
            return Err(bad("recipients.count", self.recipients.count, &format!("in [1, {MAX_RECIPIENTS}]")));
        }
        check_range("app.subscribe_delay_ms", self.app.subscribe_delay_ms, 0.0, 10_000.0)?;
        check_range("app.fetch_delay_ms", self.app.fetch_delay_ms, 0.0, 10_000.0)?;
        check_range("app.fetch_record_us", self.app.fetch_record_us, 0.0, 1_000_000.0)?;
        check_prob("conflation.share", self.conflation.share)?;
        if self.conflation.share > 0.0 && self.conflation.keys == 0 {
            return Err(bad("conflation.keys", 0, "at least 1 when conflation.share is above 0"));
        }
        if self.engine.conflation_keys as usize > harmonizer_core::engine::MAX_CONFLATION_KEYS {
            return Err(bad(
                "engine.conflation_keys",
                self.engine.conflation_keys,
                &format!("at most {}", harmonizer_core::engine::MAX_CONFLATION_KEYS),
            ));
        }
        if self.engine.conflation_payload as usize > harmonizer_core::engine::MAX_CONFLATION_PAYLOAD {
            return Err(bad(
                "engine.conflation_payload",
                self.engine.conflation_payload,
                &format!("at most {}", harmonizer_core::engine::MAX_CONFLATION_PAYLOAD),
            ));
        }
        if self.engine.conflation_keys > 0 && self.engine.identity_records < 2 {
            return Err(bad(
                "engine.conflation_keys",
                self.engine.conflation_keys,
                "0 unless engine.identity_records is 2 or more (the conflation tier needs the identity tier)",
            ));
        }
        check_range("app.search_lookback_ms", self.app.search_lookback_ms, 0.0, 3_600_000.0)?;
        if self.engine.verify_records as usize > harmonizer_core::engine::MAX_VERIFY_RECORDS {
            return Err(bad(
                "engine.verify_records",
                self.engine.verify_records,
                &format!("at most {}", harmonizer_core::engine::MAX_VERIFY_RECORDS),
            ));
        }
        check_range("engine.probation_ms", self.engine.probation_ms, 0.0, 3_600_000.0)?;
        if self.engine.identity_records as usize > harmonizer_core::ring::MAX_IDENTITIES {
            return Err(bad(
                "engine.identity_records",
                self.engine.identity_records,
                &format!("at most {}", harmonizer_core::ring::MAX_IDENTITIES),
            ));
        }
        if !(16..=65_536).contains(&self.engine.ring_kib) {
            return Err(bad("engine.ring_kib", self.engine.ring_kib, "in [16, 65536]"));
        }
        if !(128..=65_536).contains(&self.engine.max_payload) {
            return Err(bad(
                "engine.max_payload",
                self.engine.max_payload,
                "in [128, 65536] (flips must fit)",
            ));
        }
        if !(1..=1_000_000).contains(&self.engine.default_window) {
            return Err(bad("engine.default_window", self.engine.default_window, "in [1, 1000000]"));
        }
        check_range("engine.cold_switch_cost_ms", self.engine.cold_switch_cost_ms, 0.0, 3_600_000.0)?;
        check_range("engine.spread_max_ms", self.engine.spread_max_ms, 0.0, 3_600_000.0)?;
        check_prob("engine.spread_fraction", self.engine.spread_fraction)?;
        if let Some(d) = self.predictor.target_duty {
            check_prob("predictor.target_duty", d)?;
        }
        let b = &self.background;
        check_range("background.bursts_every_s", b.bursts_every_s, 0.0, 3600.0)?;
        if b.bursts_every_s > 0.0 && b.bursts_every_s < 1.0 {
            return Err(bad("background.bursts_every_s", b.bursts_every_s, "0 (none) or at least 1"));
        }
        check_pair("background.burst_factor", b.burst_factor, 1.0, 10.0)?;
        check_pair("background.burst_length_s", b.burst_length_s, 0.01, 60.0)?;
        let bursts =
            b.bursts_every_s > 0.0 || self.incidents.iter().any(|i| matches!(i, Incident::Burst { .. }));
        let peak = if bursts { MAX_RATE_FACTOR } else { 1.0 };
        let records = self.rate * self.duration_s * peak * f64::from(self.streams);
        if records > MAX_RECORDS {
            return Err(format!(
                "rate × duration_s × streams{} = {records:.0} records: at most {MAX_RECORDS:.0} (shorten duration_s or lower rate)",
                if bursts { " × 10 (bursts)" } else { "" }
            ));
        }
        for (i, inc) in self.incidents.iter().enumerate() {
            self.validate_incident(i, inc)?;
        }
        Ok(())
    }

    fn validate_incident(&self, i: usize, inc: &Incident) -> Result<(), String> {
        let p = |key: &str| format!("incident[{i}].{key}");
        let dur = self.duration_s;
        let stream = |key: &str, s: u32| {
            if s < self.streams {
                Ok(())
            } else {
                Err(bad(p(key), s, &format!("a stream (below streams = {})", self.streams)))
            }
        };
        let at = |v: f64| check_range(&p("at_s"), v, 0.0, dur);
        let ids = |r: &Option<Vec<u64>>| match r {
            Some(v) if v.is_empty() || v.len() > MAX_IDS => {
                Err(bad(p("recipients"), format!("{} ids", v.len()), &format!("1 to {MAX_IDS} ids")))
            }
            _ => Ok(()),
        };
        match inc {
            Incident::Rollout { at_s, target, stages_bp, stage_gap_s, .. } => {
                at(*at_s)?;
                stream("target", *target)?;
                if stages_bp.is_empty() || stages_bp.len() > 16 {
                    return Err(bad(p("stages_bp"), format!("{} stages", stages_bp.len()), "1 to 16 stages"));
                }
                for (j, bp) in stages_bp.iter().enumerate() {
                    if *bp > MAX_BASIS_POINTS {
                        return Err(bad(format!("{}[{j}]", p("stages_bp")), bp, "at most 10000"));
                    }
                    if j > 0 && stages_bp[j - 1] >= *bp {
                        return Err(bad(format!("{}[{j}]", p("stages_bp")), bp, "above the stage before"));
                    }
                }
                check_range(&p("stage_gap_s"), *stage_gap_s, 0.0, dur)?;
            }
            Incident::Announce { at_s, target, lead_s, recipients, .. } => {
                at(*at_s)?;
                stream("target", *target)?;
                check_range(&p("lead_s"), *lead_s, 0.0, dur)?;
                ids(recipients)?;
            }
            Incident::Switch { at_s, target, recipients } => {
                at(*at_s)?;
                stream("target", *target)?;
                ids(recipients)?;
            }
            Incident::Degradation {
                at_s,
                stream: s,
                ramp_s,
                peak_lag_ms,
                peak_error,
                peak_drop,
                recover_s,
                switch_to,
                recipients,
            } => {
                at(*at_s)?;
                stream("stream", *s)?;
                check_range(&p("ramp_s"), *ramp_s, 0.0, dur)?;
                check_range(&p("peak_lag_ms"), *peak_lag_ms, 0.0, 10_000.0)?;
                check_prob(&p("peak_error"), *peak_error)?;
                check_range(&p("peak_drop"), *peak_drop, 0.0, 0.5)?;
                check_range(&p("recover_s"), *recover_s, 0.0, dur)?;
                if let Some(t) = switch_to {
                    stream("switch_to", *t)?;
                    if t == s {
                        return Err(bad(p("switch_to"), t, "another stream than `stream`"));
                    }
                }
                ids(recipients)?;
            }
            Incident::FailStop { at_s, stream: s, switch_to, dead_s, recipients } => {
                at(*at_s)?;
                stream("stream", *s)?;
                stream("switch_to", *switch_to)?;
                if switch_to == s {
                    return Err(bad(p("switch_to"), switch_to, "another stream than `stream`"));
                }
                check_range(&p("dead_s"), *dead_s, 0.0, dur)?;
                ids(recipients)?;
            }
            Incident::Switchback {
                at_s,
                bad_stream,
                bad_from_s,
                error,
                extra_lag_ms,
                recover_s,
                recipients,
            } => {
                at(*at_s)?;
                stream("bad_stream", *bad_stream)?;
                if !(bad_from_s.is_finite() && *bad_from_s >= 0.0 && *bad_from_s <= *at_s) {
                    return Err(bad(p("bad_from_s"), bad_from_s, "in [0, at_s]"));
                }
                check_prob(&p("error"), *error)?;
                check_range(&p("extra_lag_ms"), *extra_lag_ms, 0.0, 10_000.0)?;
                check_range(&p("recover_s"), *recover_s, 0.0, dur)?;
                ids(recipients)?;
            }
            Incident::Malformed { at_s, .. } => at(*at_s)?,
            Incident::Gap { at_s, stream: s, events } => {
                at(*at_s)?;
                stream("stream", *s)?;
                if !(1..=100_000).contains(events) {
                    return Err(bad(p("events"), events, "in [1, 100000]"));
                }
            }
            Incident::Corrupt { at_s, stream: s, events } => {
                at(*at_s)?;
                stream("stream", *s)?;
                if !(1..=1_000_000).contains(events) {
                    return Err(bad(p("events"), events, "in [1, 1000000]"));
                }
            }
            Incident::Burst { at_s, factor, length_s } => {
                at(*at_s)?;
                check_range(&p("factor"), *factor, 0.1, 10.0)?;
                check_range(&p("length_s"), *length_s, 0.0, dur)?;
            }
        }
        Ok(())
    }
}

fn check_pair(path: &str, v: [f64; 2], lo: f64, hi: f64) -> Result<(), String> {
    check_range(&format!("{path}[0]"), v[0], lo, hi)?;
    check_range(&format!("{path}[1]"), v[1], lo, hi)?;
    if v[0] > v[1] {
        return Err(bad(path, format!("[{}, {}]", v[0], v[1]), "[low, high] with low <= high"));
    }
    Ok(())
}
