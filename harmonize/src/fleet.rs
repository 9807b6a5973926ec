//! `harmonize fleet`: many recipients in one process (a gateway), one scenario run side by side
//! with the fleet's staging memory given four ways (docs/staging.md, "Measured"):
//!
//! - `unlimited`: no budget at all (what staging everything holds: the reference), and
//!   `unlimited+spread`, the same with staging starts spread (`Spread`);
//! - `per-engine`: the total divided equally, one budget per recipient;
//! - `shared`: the total as one `StagingPool` for every recipient;
//! - `shared+spread`: the same, with staging starts spread (`Spread`).
//!
//! Every run is the scripted lockstep of `harmonize sim` (real engines, feed threads, the
//! simulated application that checks every delivered event), so exactly-once is checked in each.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use harmonizer_sim::scripted::lockstep::{self, PassOutcome};
use harmonizer_sim::scripted::scenario::Scenario;
use harmonizer_sim::scripted::{world, PolicyKind};

use crate::demo::{file, progress_bar};

/// The policy a fleet runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FleetPolicy {
    /// Announced streams and the switchback target (`ManualStage`).
    Manual,
    /// The predictor with the shipped model.
    Predictor,
}

/// `harmonize fleet`.
#[derive(Args, Debug)]
#[command(after_help = FLEET_HELP)]
pub struct FleetArgs {
    /// The scenario file (TOML); default: the embedded harmonize/scenarios/fleet.toml.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// The fleet's staging memory, KiB; default: the scenario's `engine.shared_pool_kib`.
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..))]
    total_kib: Option<u32>,
    /// The longest spread of a staging start in the `shared+spread` run, ms.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    spread_ms: u32,
    /// The arming policy of every recipient.
    #[arg(long, value_enum, default_value_t = FleetPolicy::Manual)]
    policy: FleetPolicy,
    /// Replace the scenario's seed.
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Replace the scenario's number of recipients (1 to 1024).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    recipients: Option<u32>,
    /// The short window of the staging-tier runs, records (the lead it cannot hold is
    /// evicted: re-read, searched for or exact).
    #[arg(long, value_name = "RECORDS", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    tier_window: u32,
    /// Slots of each stream's identity log in the `identity` tier run.
    #[arg(long, value_name = "SLOTS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=1_048_576))]
    identities: u32,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

const FLEET_HELP: &str = "\
Example:
  harmonize fleet                              # 256 recipients, the fleet's staging memory four ways
  harmonize fleet --total-kib 700 --json
  harmonize fleet --scenario my-fleet.toml --policy predictor

docs/staging.md explains the runs and the columns.";

/// One way of giving the fleet its staging memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Budget {
    Unlimited,
    UnlimitedSpread,
    PerEngine,
    Shared,
    SharedSpread,
}

impl Budget {
    const ALL: [Budget; 5] =
        [Budget::Unlimited, Budget::UnlimitedSpread, Budget::PerEngine, Budget::Shared, Budget::SharedSpread];
    fn name(self) -> &'static str {
        match self {
            Budget::Unlimited => "unlimited",
            Budget::UnlimitedSpread => "unlimited+spread",
            Budget::PerEngine => "per-engine",
            Budget::Shared => "shared",
            Budget::SharedSpread => "shared+spread",
        }
    }
}

/// What a staged stream keeps beyond its full-fidelity window (docs/staging.md, "Tiers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Tier {
    /// The scenario's own window, nothing beyond it: the memory a window that holds the
    /// lead costs.
    Reference,
    /// A short window and nothing beyond it: a switch past it re-reads from "after (origin,
    /// seq)", which the application searches for.
    Full,
    /// The same short window and each stream's identity log: the re-read starts at the exact
    /// position.
    Identity,
    /// The same, and the conflation tier: a hole of marked events is conflated, not re-read.
    Conflation,
}

impl Tier {
    const ALL: [Tier; 4] = [Tier::Reference, Tier::Full, Tier::Identity, Tier::Conflation];
    fn name(self) -> &'static str {
        match self {
            Tier::Reference => "full window",
            Tier::Full => "short window",
            Tier::Identity => "short + identity",
            Tier::Conflation => "short + conflation",
        }
    }
}

/// One staging-tier run's row (no budget: every recipient stages what its policy asks).
#[derive(Debug, Serialize)]
pub(crate) struct TierRow {
    tier: Tier,
    /// Staging window, records.
    window: u32,
    /// Identity log slots per stream (0: none).
    identity_records: u32,
    switches: u64,
    seamless: u64,
    seamless_share: f64,
    peak_staged_bytes: u64,
    mean_staged_bytes: f64,
    /// Bytes every recipient's identity logs take together (allocated at construction).
    identity_bytes: u64,
    /// Fetches (cold switches, re-reads, fills).
    fetches: u64,
    /// Records the fetches brought: the re-read volume.
    fetched_records: u64,
    /// Of them, events already delivered that the engine dropped (what a search re-read again).
    duplicates_dropped: u64,
    /// Origins whose re-read start the identity tier made exact.
    identity_starts: u64,
    /// Keys of each stream's conflation store (0: none).
    conflation_keys: u32,
    /// Bytes every recipient's conflation stores take together (allocated at construction).
    conflation_bytes: u64,
    /// Events `Conflated` notices reported not delivered, the survivors delivered from the
    /// stores, and the holes left to re-reads.
    conflated: u64,
    conflation_survivors: u64,
    conflation_fallbacks: u64,
    /// `Conflated` notices whose range's undelivered events differ from the count (must be 0).
    conflation_mismatches: u64,
    /// Switches' stall (`Switched::stall_ns`), mean and largest, ms.
    mean_stall_ms: f64,
    max_stall_ms: f64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    corrupt: u64,
    wall_s: f64,
}

/// One run's row.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    budget: Budget,
    /// The staging memory of the run, bytes (0: unlimited).
    total_bytes: u64,
    /// Per recipient (`per-engine`), bytes.
    per_recipient_bytes: u64,
    switches: u64,
    seamless: u64,
    seamless_share: f64,
    /// Largest sum of every recipient's staged bytes at once.
    peak_staged_bytes: u64,
    /// That sum over time, mean.
    mean_staged_bytes: f64,
    /// Live subscriptions (staging starts), all recipients.
    stage_subscribes: u64,
    /// The most staging starts within any 1 s and any 100 ms.
    peak_subscribes_per_s: usize,
    peak_subscribes_per_100ms: usize,
    /// Fetches (cold switches, re-reads).
    fetches: u64,
    /// Events lost, duplicated, out of order, corrupt (all must be 0).
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    corrupt: u64,
    /// The shared pool's counters.
    pool_grants: u64,
    pool_refusals: u64,
    pool_yields: u64,
    pool_peak_bytes: u64,
    /// Staging starts per 100 ms of scenario time.
    subscribes_per_100ms: Vec<u32>,
    /// Per second of scenario time with a switch: `[second, switches, seamless]`.
    switches_by_second: Vec<[u64; 3]>,
    wall_s: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    scenario: String,
    seed: u64,
    recipients: u32,
    streams: u32,
    duration_s: f64,
    policy: &'static str,
    total_kib: u32,
    spread_ms: u32,
    runs: Vec<Row>,
    /// The staging tiers side by side (empty when not run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<TierRow>,
    /// Where the application searches from without an exact position, ms before its last
    /// delivered event (`app.search_lookback_ms`; 0: it finds it for free).
    search_lookback_ms: f64,
    /// A fetch's transfer time per record, µs (`app.fetch_record_us`).
    fetch_record_us: f64,
}

/// Runs `sc` once per item of `items`, in order, with a progress bar: each run starts from
/// `sc` with no staging budget, no pool, no spread and no tier, then `setup` makes it the item's.
fn run_each<K: Copy>(
    sc: &Scenario,
    kind: PolicyKind,
    items: &[K],
    name: impl Fn(K) -> &'static str,
    setup: impl Fn(K, &mut Scenario),
) -> Result<Vec<(K, Scenario, PassOutcome)>, String> {
    let world = world::render(sc);
    let dur_ms = world.duration_ns / 1_000_000;
    let bar = progress_bar(items.len() as u64 * dur_ms);
    let mut out = Vec::new();
    for (i, &k) in items.iter().enumerate() {
        bar.set_message(name(k));
        let mut v: Scenario = sc.clone();
        v.engine.staging_budget_kib = 0;
        v.engine.staging_budget_bytes = 0;
        v.engine.shared_pool_kib = 0;
        v.engine.spread_max_ms = 0.0;
        v.engine.identity_records = 0;
        v.engine.conflation_keys = 0;
        setup(k, &mut v);
        let base = i as u64 * dur_ms;
        let pass = lockstep::run(&v, &world, kind, None, &mut |t| {
            bar.set_position(base + (t / 1_000_000).min(dur_ms))
        })?;
        out.push((k, v, pass));
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Runs `sc` once per way of giving it `total_kib` of staging memory in `budgets`, in order.
fn compare(
    sc: &Scenario,
    budgets: &[Budget],
    total_kib: u32,
    spread_ms: u32,
    kind: PolicyKind,
) -> Result<Vec<Row>, String> {
    let total = u64::from(total_kib) * 1024;
    let n = u64::from(sc.recipients.count);
    let runs = run_each(sc, kind, budgets, Budget::name, |b, v| match b {
        Budget::Unlimited => {}
        Budget::UnlimitedSpread => v.engine.spread_max_ms = f64::from(spread_ms),
        Budget::PerEngine => v.engine.staging_budget_bytes = (total / n).max(1),
        Budget::Shared => v.engine.shared_pool_kib = total_kib,
        Budget::SharedSpread => {
            v.engine.shared_pool_kib = total_kib;
            v.engine.spread_max_ms = f64::from(spread_ms);
        }
    })?;
    Ok(runs.iter().map(|(b, v, pass)| row(*b, v, total, pass)).collect())
}

/// Runs `sc` once per tier, with no staging budget, spread off.
fn compare_tiers(
    sc: &Scenario,
    tiers: &[Tier],
    window: u32,
    identities: u32,
    kind: PolicyKind,
) -> Result<Vec<TierRow>, String> {
    let runs = run_each(sc, kind, tiers, Tier::name, |t, v| match t {
        Tier::Reference => {}
        Tier::Full => v.engine.default_window = window,
        Tier::Identity => {
            v.engine.default_window = window;
            v.engine.identity_records = identities;
        }
        Tier::Conflation => {
            v.engine.default_window = window;
            v.engine.identity_records = identities;
            // A key per origin and marked key, payloads as the world's.
            v.engine.conflation_keys = (sc.origins * sc.conflation.keys).max(1);
            v.engine.conflation_payload = 16;
        }
    })?;
    Ok(runs.iter().map(|(t, v, pass)| tier_row(*t, v, pass)).collect())
}

fn tier_row(t: Tier, sc: &Scenario, p: &PassOutcome) -> TierRow {
    let sum = |f: &dyn Fn(&lockstep::RecipientOutcome) -> u64| p.recipients.iter().map(f).sum::<u64>();
    let stalls: Vec<u64> = p.recipients.iter().flat_map(|r| r.switches.iter().map(|s| s.stall_ns)).collect();
    let switches = stalls.len() as u64;
    let seamless = sum(&|r| r.switches.iter().filter(|s| s.seamless).count() as u64);
    let ms = |ns: f64| ns / 1e6;
    TierRow {
        tier: t,
        window: sc.engine.default_window,
        identity_records: sc.engine.identity_records,
        switches,
        seamless,
        seamless_share: if switches == 0 { 0.0 } else { seamless as f64 / switches as f64 },
        peak_staged_bytes: p.fleet.peak_staged_bytes,
        mean_staged_bytes: p.fleet.mean_staged_bytes,
        identity_bytes: p.recipients.len() as u64
            * u64::from(sc.streams)
            * u64::from(sc.engine.identity_records)
            * harmonizer_core::ring::IDENTITY_SLOT_BYTES as u64,
        fetches: sum(&|r| r.fetches),
        fetched_records: sum(&|r| r.fetched_records),
        duplicates_dropped: sum(&|r| r.stats.duplicates_dropped),
        identity_starts: sum(&|r| r.stats.identity_starts),
        conflation_keys: sc.engine.conflation_keys,
        conflation_bytes: if sc.engine.conflation_keys == 0 {
            0
        } else {
            p.recipients.len() as u64
                * u64::from(sc.streams)
                * harmonizer_core::engine::conflation_store_bytes(
                    sc.engine.conflation_keys as usize,
                    sc.engine.conflation_payload as usize,
                ) as u64
        },
        conflated: sum(&|r| r.stats.conflated),
        conflation_survivors: sum(&|r| r.stats.conflation_survivors),
        conflation_fallbacks: sum(&|r| r.stats.conflation_fallbacks),
        conflation_mismatches: sum(&|r| r.conflation_mismatches),
        mean_stall_ms: if switches == 0 {
            0.0
        } else {
            ms(stalls.iter().sum::<u64>() as f64 / switches as f64)
        },
        max_stall_ms: ms(stalls.iter().copied().max().unwrap_or(0) as f64),
        lost: sum(&|r| r.lost),
        duplicates: sum(&|r| r.duplicates),
        out_of_order: sum(&|r| r.out_of_order),
        corrupt: sum(&|r| r.corrupt),
        wall_s: p.wall.as_secs_f64(),
    }
}

/// The demo's fleet section: the embedded fleet scenario with `recipients` recipients, the
/// same memory per engine and shared, and all of it with and without spread starts.
pub(crate) fn demo_section(recipients: u32) -> Result<Report, String> {
    let mut sc = file::parse(file::FLEET_NAME, file::FLEET_TOML)?;
    sc.recipients.count = recipients;
    sc.validate().map_err(|e| format!("{}: {e}", file::FLEET_NAME))?;
    // The file's memory is a quarter window per recipient of its 256; keep that share.
    let total_kib = (u64::from(sc.engine.shared_pool_kib) * u64::from(recipients) / 256).max(1) as u32;
    let spread_ms = 3000;
    let budgets = [Budget::PerEngine, Budget::Shared, Budget::Unlimited, Budget::UnlimitedSpread];
    let runs = compare(&sc, &budgets, total_kib, spread_ms, PolicyKind::Manual)?;
    let tiers =
        compare_tiers(&sc, &[Tier::Full, Tier::Identity, Tier::Conflation], 25, 64, PolicyKind::Manual)?;
    Ok(Report {
        scenario: sc.name.clone(),
        seed: sc.seed,
        recipients,
        streams: sc.streams,
        duration_s: sc.duration_s,
        policy: PolicyKind::Manual.name(),
        total_kib,
        spread_ms,
        runs,
        tiers,
        search_lookback_ms: sc.app.search_lookback_ms,
        fetch_record_us: sc.app.fetch_record_us,
    })
}

/// The demo's fleet section as lines under its table.
pub(crate) fn demo_table(r: &Report) -> String {
    let mut out = String::new();
    let get = |b: Budget| r.runs.iter().find(|x| x.budget == b);
    let _ = writeln!(
        out,
        "\nstaging across a fleet ({} recipients in one process, scenario \"{}\", policy {}; `harmonize fleet` has the whole table):",
        r.recipients, r.scenario, r.policy
    );
    if let (Some(p), Some(s)) = (get(Budget::PerEngine), get(Budget::Shared)) {
        let _ = writeln!(
            out,
            "  the same {} KiB of staging memory: per engine {}/{} switches seamless ({:.1}%), shared {}/{} ({:.1}%)",
            r.total_kib,
            p.seamless,
            p.switches,
            100.0 * p.seamless_share,
            s.seamless,
            s.switches,
            100.0 * s.seamless_share
        );
    }
    if let (Some(u), Some(v)) = (get(Budget::Unlimited), get(Budget::UnlimitedSpread)) {
        let _ = writeln!(
            out,
            "  staging starts in the worst 100 ms: {} at once, {} spread over at most {} ms ({} and {} seamless of {})",
            u.peak_subscribes_per_100ms, v.peak_subscribes_per_100ms, r.spread_ms, u.seamless, v.seamless, u.switches
        );
    }
    let tier = |t: Tier| r.tiers.iter().find(|x| x.tier == t);
    if let (Some(f), Some(i)) = (tier(Tier::Full), tier(Tier::Identity)) {
        let _ = writeln!(
            out,
            "  windows of {} records, too short for the lead: fetches re-read {} records searching for the frontier, {} with the identity tier\n    ({} slots a stream, {} KiB in all; {} re-read starts made exact, mean stall {:.1} ms against {:.1} ms)",
            f.window,
            f.fetched_records,
            i.fetched_records,
            i.identity_records,
            kib(i.identity_bytes as f64),
            i.identity_starts,
            i.mean_stall_ms,
            f.mean_stall_ms
        );
    }
    if let Some(c) = tier(Tier::Conflation) {
        let _ = writeln!(
            out,
            "  with the conflation tier too ({} keys a stream, {} KiB more): {} fetches re-read {} records, {} events reported conflated and {} kept,\n    mean stall {:.1} ms",
            c.conflation_keys,
            kib(c.conflation_bytes as f64),
            c.fetches,
            c.fetched_records,
            c.conflated,
            c.conflation_survivors,
            c.mean_stall_ms
        );
    }
    let lost: u64 = r.runs.iter().map(|x| x.lost + x.duplicates + x.out_of_order + x.corrupt).sum::<u64>()
        + r.tiers
            .iter()
            .map(|x| x.lost + x.duplicates + x.out_of_order + x.corrupt + x.conflation_mismatches)
            .sum::<u64>();
    let _ = writeln!(out, "  lost, duplicated, out of order or corrupt events in these runs: {lost}");
    out
}

/// Runs `harmonize fleet`.
pub fn run(a: FleetArgs) -> Result<(), String> {
    let (name, text) = match &a.scenario {
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| format!("{name}: cannot read: {e}"))?;
            (name, text)
        }
        None => (file::FLEET_NAME.to_string(), file::FLEET_TOML.to_string()),
    };
    let mut sc = file::parse(&name, &text)?;
    if let Some(seed) = a.seed {
        sc.seed = seed;
    }
    if let Some(n) = a.recipients {
        sc.recipients.count = n;
    }
    let total_kib = match a.total_kib.or((sc.engine.shared_pool_kib > 0).then_some(sc.engine.shared_pool_kib))
    {
        Some(k) => k,
        None => return Err(format!("{name}: engine.shared_pool_kib is 0 and no --total-kib was given")),
    };
    sc.validate().map_err(|e| format!("{name}: {e}"))?;
    let kind = match a.policy {
        FleetPolicy::Manual => PolicyKind::Manual,
        FleetPolicy::Predictor => PolicyKind::Predictor,
    };
    let rows = compare(&sc, &Budget::ALL, total_kib, a.spread_ms, kind)?;
    let tiers = compare_tiers(&sc, &Tier::ALL, a.tier_window, a.identities, kind)?;
    let rep = Report {
        scenario: sc.name.clone(),
        seed: sc.seed,
        recipients: sc.recipients.count,
        streams: sc.streams,
        duration_s: sc.duration_s,
        policy: kind.name(),
        total_kib,
        spread_ms: a.spread_ms,
        runs: rows,
        tiers,
        search_lookback_ms: sc.app.search_lookback_ms,
        fetch_record_us: sc.app.fetch_record_us,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep).map_err(|e| format!("json: {e}"))?);
    } else {
        print!("{}", table(&rep, &sc));
    }
    Ok(())
}

fn row(b: Budget, sc: &Scenario, total: u64, p: &PassOutcome) -> Row {
    let sum = |f: &dyn Fn(&lockstep::RecipientOutcome) -> u64| p.recipients.iter().map(f).sum::<u64>();
    let switches = sum(&|r| r.switches.len() as u64);
    let seamless = sum(&|r| r.switches.iter().filter(|s| s.seamless).count() as u64);
    let f = &p.fleet;
    let buckets = (p.end_ns / 100_000_000 + 1) as usize;
    let mut per = vec![0u32; buckets];
    for &t in &f.stage_subscribes_ns {
        if let Some(c) = per.get_mut((t / 100_000_000) as usize) {
            *c += 1;
        }
    }
    let pool = f.pool.unwrap_or_default();
    let mut by_s = std::collections::BTreeMap::<u64, [u64; 3]>::new();
    for s in p.recipients.iter().flat_map(|r| &r.switches) {
        let e = by_s.entry(s.t_ns / 1_000_000_000).or_insert([s.t_ns / 1_000_000_000, 0, 0]);
        e[1] += 1;
        e[2] += u64::from(s.seamless);
    }
    Row {
        budget: b,
        total_bytes: if matches!(b, Budget::Unlimited | Budget::UnlimitedSpread) { 0 } else { total },
        per_recipient_bytes: if b == Budget::PerEngine { sc.engine.staging_budget_bytes } else { 0 },
        switches,
        seamless,
        seamless_share: if switches == 0 { 0.0 } else { seamless as f64 / switches as f64 },
        peak_staged_bytes: f.peak_staged_bytes,
        mean_staged_bytes: f.mean_staged_bytes,
        stage_subscribes: f.stage_subscribes_ns.len() as u64,
        peak_subscribes_per_s: f.peak_subscribes_within(1_000_000_000),
        peak_subscribes_per_100ms: f.peak_subscribes_within(100_000_000),
        fetches: f.fetches_ns.len() as u64,
        lost: sum(&|r| r.lost),
        duplicates: sum(&|r| r.duplicates),
        out_of_order: sum(&|r| r.out_of_order),
        corrupt: sum(&|r| r.corrupt),
        pool_grants: pool.grants,
        pool_refusals: pool.refusals,
        pool_yields: pool.yields,
        pool_peak_bytes: pool.peak_used_bytes,
        subscribes_per_100ms: per,
        switches_by_second: by_s.into_values().collect(),
        wall_s: p.wall.as_secs_f64(),
    }
}

fn kib(b: f64) -> String {
    format!("{:.1}", b / 1024.0)
}

fn table(r: &Report, sc: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "harmonize fleet: scenario \"{}\" (seed {}): {} recipients, {} streams, {} s, policy {}, staging memory {} KiB",
        r.scenario, r.seed, r.recipients, r.streams, r.duration_s, r.policy, r.total_kib
    );
    if !sc.description.is_empty() {
        let _ = writeln!(out, "  {}", sc.description);
    }
    out.push('\n');
    let head = [
        "run",
        "switches",
        "seamless",
        "share",
        "peak KiB",
        "mean KiB",
        "starts",
        "peak/s",
        "peak/100ms",
        "fetches",
        "lost",
        "dup",
        "ooo",
    ];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for x in &r.runs {
        cells.push(vec![
            x.budget.name().to_string(),
            x.switches.to_string(),
            x.seamless.to_string(),
            format!("{:.1}%", 100.0 * x.seamless_share),
            kib(x.peak_staged_bytes as f64),
            kib(x.mean_staged_bytes),
            x.stage_subscribes.to_string(),
            x.peak_subscribes_per_s.to_string(),
            x.peak_subscribes_per_100ms.to_string(),
            x.fetches.to_string(),
            x.lost.to_string(),
            (x.duplicates).to_string(),
            (x.out_of_order + x.corrupt).to_string(),
        ]);
    }
    out.push_str(&crate::demo::report::align(&cells));
    out.push('\n');
    let per = r.runs.iter().find(|x| x.budget == Budget::PerEngine).map_or(0, |x| x.per_recipient_bytes);
    let _ = writeln!(
        out,
        "runs: unlimited = no budget (the reference), +spread: staging starts spread over at most {} ms; per-engine = {} KiB split evenly, {per} bytes per recipient;\n  shared = one StagingPool of {} KiB; shared+spread = the same, staging starts spread over at most {} ms.",
        r.spread_ms, r.total_kib, r.total_kib, r.spread_ms
    );
    let _ = writeln!(
        out,
        "seamless: switches the engine reported seamless (staged, window reached back). peak/mean KiB: every recipient's\n  staged windows together (frames retained), at the worst tick and on average. starts: staging subscriptions\n  (the upstream's load); peak/s, peak/100ms: the most that began within any 1 s, 100 ms. lost/dup/ooo: checked\n  by the application on every delivered event (ooo includes corrupt), all must be 0."
    );
    if !r.tiers.is_empty() {
        out.push_str(&tier_table(r));
    }
    for x in r.runs.iter().filter(|x| x.pool_grants > 0 || x.pool_refusals > 0) {
        let _ = writeln!(
            out,
            "pool ({}): {} grants, {} refusals, {} yields, peak {} of {} KiB granted",
            x.budget.name(),
            x.pool_grants,
            x.pool_refusals,
            x.pool_yields,
            kib(x.pool_peak_bytes as f64),
            r.total_kib
        );
    }
    out
}

fn tier_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstaging tiers (no budget; beyond the window a stream keeps nothing, each evicted record's identity, or also each key's latest):\n"
    );
    let head = [
        "run",
        "window",
        "switches",
        "seamless",
        "peak KiB",
        "tier KiB",
        "fetches",
        "re-read",
        "dropped",
        "exact",
        "conflated",
        "kept",
        "fallback",
        "stall ms",
        "max ms",
        "lost",
        "dup",
        "ooo",
    ];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for x in &r.tiers {
        cells.push(vec![
            x.tier.name().to_string(),
            x.window.to_string(),
            x.switches.to_string(),
            format!("{} ({:.1}%)", x.seamless, 100.0 * x.seamless_share),
            kib(x.peak_staged_bytes as f64),
            kib((x.identity_bytes + x.conflation_bytes) as f64),
            x.fetches.to_string(),
            x.fetched_records.to_string(),
            x.duplicates_dropped.to_string(),
            x.identity_starts.to_string(),
            x.conflated.to_string(),
            x.conflation_survivors.to_string(),
            x.conflation_fallbacks.to_string(),
            format!("{:.1}", x.mean_stall_ms),
            format!("{:.1}", x.max_stall_ms),
            x.lost.to_string(),
            x.duplicates.to_string(),
            (x.out_of_order + x.corrupt + x.conflation_mismatches).to_string(),
        ]);
    }
    out.push_str(&crate::demo::report::align(&cells));
    out.push('\n');
    let search = if r.search_lookback_ms > 0.0 {
        format!("re-reads from {} ms before the last event it delivered", r.search_lookback_ms)
    } else {
        "finds the first undelivered event for free".to_string()
    };
    let ids = r.tiers.iter().map(|x| x.identity_records).max().unwrap_or(0);
    let keys = r.tiers.iter().map(|x| x.conflation_keys).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "tier KiB: every recipient's identity logs ({ids} slots a stream, {slot} bytes a slot) and conflation stores ({keys} keys a stream), allocated\n  up front. re-read: records fetched (cold switches, re-reads); dropped: duplicates the engines dropped; exact: re-read starts the\n  identity tier made exact; conflated: events reported not delivered (Conflated notices), kept: each key's latest delivered in their\n  place, fallback: holes left to a re-read. A conflated switch is not seamless (it is lossy); ooo includes corrupt and conflation\n  notices that miscounted. Without an exact position the application {search}; a fetch takes {} µs a record after its delay.",
        r.fetch_record_us,
        slot = harmonizer_core::ring::IDENTITY_SLOT_BYTES
    );
    out
}
