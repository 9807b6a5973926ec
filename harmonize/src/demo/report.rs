//! The report: one row per arming policy, as a table or as one JSON object.

use std::fmt::Write as _;

use serde::Serialize;

use harmonizer_sim::scripted::lockstep::{PassOutcome, RecipientOutcome};
use harmonizer_sim::scripted::scenario::Scenario;
use harmonizer_sim::scripted::world::World;

/// One policy's row. The first thirteen keys are the issue's, in its order; more follow.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Policy name.
    pub name: &'static str,
    /// Distinct events delivered, all recipients.
    pub delivered: u64,
    /// Events never delivered (or given up in `Lost` notices).
    pub lost: u64,
    /// Events delivered more than once.
    pub duplicates: u64,
    /// Events delivered out of order.
    pub out_of_order: u64,
    /// Switches (`Switched` notices).
    pub switches: u64,
    /// Of which seamless.
    pub seamless: u64,
    /// Of which cold.
    pub cold: u64,
    /// Median switch stall, scenario-clock ns.
    pub stall_p50_ns: u64,
    /// 99th percentile switch stall, scenario-clock ns.
    pub stall_p99_ns: u64,
    /// Staged time over observed time, all recipients.
    pub duty_cycle: f64,
    /// Largest staged bytes of one recipient (engine accounting: window × largest frame).
    pub peak_staged_bytes: u64,
    /// Events delivered per second of wall time of the run.
    pub events_per_sec: f64,
    /// Recipients.
    pub recipients: usize,
    /// Longest stall, scenario-clock ns.
    pub stall_max_ns: u64,
    /// Events with a wrong payload or header (must be 0).
    pub corrupt: u64,
    /// Malformed flips rejected (`FlipRejected` with a decode error).
    pub flips_rejected_malformed: u64,
    /// Flips rejected for other reasons (a rollout stage selecting a recipient already moved).
    pub flips_rejected_other: u64,
    /// Flips applied.
    pub flips_applied: u64,
    /// Flips for other recipients (rollout stages that excluded them).
    pub flips_ignored: u64,
    /// `Gap` notices (each answered by a re-read).
    pub gaps: u64,
    /// Events filled into a gap from a staged candidate.
    pub gap_filled: u64,
    /// Fetches by the application (cold switches and re-reads).
    pub fetches: u64,
    /// Candidates staged (live subscriptions).
    pub live_subscribes: u64,
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// Scenario time simulated, s (the drain after the last arrival included).
    pub scenario_s: f64,
    /// Push attempts that found an active ring full and were retried (backpressure), plus
    /// pushes refused for good (none expected).
    pub push_full: u64,
    /// Switches a dry run was reported before (`--dry-run`).
    pub dry_runs: u64,
    /// Of those, switches whose dry run said what they then were (seamless or not).
    pub dry_runs_agreed: u64,
    /// Per recipient.
    pub per_recipient: Vec<RecipientRow>,
}

/// One recipient's numbers under one policy.
#[derive(Debug, Serialize)]
pub struct RecipientRow {
    /// Its id.
    pub id: u64,
    /// Distinct events delivered.
    pub delivered: u64,
    /// Lost, duplicated, out of order (must be 0).
    pub lost: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Out of order.
    pub out_of_order: u64,
    /// Switches.
    pub switches: u64,
    /// Seamless switches.
    pub seamless: u64,
    /// Its duty cycle.
    pub duty_cycle: f64,
    /// Its peak staged bytes.
    pub peak_staged_bytes: u64,
}

/// What was run.
#[derive(Debug, Serialize)]
pub struct ScenarioInfo {
    /// The scenario's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The file it came from.
    pub file: String,
    /// The seed used.
    pub seed: u64,
    /// Recipients.
    pub recipients: u32,
    /// Streams.
    pub streams: u32,
    /// Origins.
    pub origins: u32,
    /// Scenario length, s.
    pub duration_s: f64,
    /// Logical events each recipient must receive.
    pub events_per_recipient: u64,
    /// Lockstep tick, ms.
    pub tick_ms: f64,
    /// The clock the stalls are measured on.
    pub stall_clock: &'static str,
    /// The predictor's preset.
    pub predictor_preset: &'static str,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was run.
    pub scenario: ScenarioInfo,
    /// One row per policy, in the order run.
    pub policies: Vec<Row>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    /// Builds the report from the runs.
    pub fn new(sc: &Scenario, file: &str, world: &World, passes: &[PassOutcome]) -> Report {
        let policies = passes.iter().map(row).collect();
        Report {
            scenario: ScenarioInfo {
                name: sc.name.clone(),
                description: sc.description.clone(),
                file: file.to_string(),
                seed: sc.seed,
                recipients: sc.recipients.count,
                streams: sc.streams,
                origins: sc.origins,
                duration_s: sc.duration_s,
                events_per_recipient: world.events,
                tick_ms: sc.tick_ms,
                stall_clock: "scenario",
                predictor_preset: sc.predictor.preset.name(),
            },
            policies,
        }
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(self).map_err(|e| format!("json: {e}"))
    }

    /// The report as a table with notes.
    pub fn to_table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "harmonize: scenario \"{}\" (seed {}): {} recipients, {} streams, {} s of scenario time, {} events per recipient",
            s.name,
            s.seed,
            s.recipients,
            s.streams,
            s.duration_s,
            thousands(s.events_per_recipient)
        );
        if !s.description.is_empty() {
            let _ = writeln!(out, "  {}", s.description);
        }
        out.push('\n');
        let head = [
            "policy",
            "delivered",
            "lost",
            "dup",
            "ooo",
            "switches",
            "seamless",
            "cold",
            "stall p50",
            "stall p99",
            "duty",
            "peak staged",
            "events/s",
        ];
        let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
        for r in &self.policies {
            rows.push(vec![
                r.name.to_string(),
                thousands(r.delivered),
                thousands(r.lost),
                thousands(r.duplicates),
                thousands(r.out_of_order),
                thousands(r.switches),
                thousands(r.seamless),
                thousands(r.cold),
                ms(r.stall_p50_ns),
                ms(r.stall_p99_ns),
                format!("{:.1}%", r.duty_cycle * 100.0),
                format!("{:.1} KiB", r.peak_staged_bytes as f64 / 1024.0),
                thousands(r.events_per_sec.round() as u64),
            ]);
        }
        out.push_str(&align(&rows));
        out.push('\n');
        let _ = writeln!(
            out,
            "delivered/lost/dup/ooo: checked by the demo's own handler (each event once, in order, with its own payload), summed over recipients."
        );
        let _ = writeln!(
            out,
            "stall: scenario-clock time from consuming the flip to delivering the target's first event ({} ms ticks); a cold switch includes the simulated fetch.",
            s.tick_ms
        );
        let _ = writeln!(
            out,
            "duty: share of scenario time with a candidate staged. peak staged: the most bytes one recipient's staged windows held at once (frames retained)."
        );
        let _ = writeln!(
            out,
            "events/s: events delivered to all recipients per wall second of that policy's run: the pace of the lockstep simulation, not the engine's capacity."
        );
        out.push('\n');
        let names: Vec<&str> = self.policies.iter().map(|r| r.name).collect();
        let counters: [(&str, Counter); 10] = [
            ("flips applied", |r| r.flips_applied),
            ("flips for other recipients (rollout evidence)", |r| r.flips_ignored),
            ("flips rejected: malformed", |r| r.flips_rejected_malformed),
            ("flips rejected: already on the target", |r| r.flips_rejected_other),
            ("gaps filled from a staged stream (events)", |r| r.gap_filled),
            ("gaps re-read from the stream's log", |r| r.gaps),
            ("fetches (cold switches and re-reads)", |r| r.fetches),
            ("corrupt events (must be 0)", |r| r.corrupt),
            ("switches with a dry run before them (--dry-run)", |r| r.dry_runs),
            ("  of which the dry run said seamless or not rightly", |r| r.dry_runs_agreed),
        ];
        let lw = counters.iter().map(|c| c.0.len()).max().unwrap_or(0);
        let cw: Vec<usize> = names.iter().map(|n| n.len().max(9)).collect();
        let mut line = format!("{:lw$}", "engine and application counters (all recipients)");
        let lw = lw.max(line.len());
        line = format!("{line:lw$}");
        for (n, w) in names.iter().zip(&cw) {
            let _ = write!(line, "  {n:>w$}");
        }
        let _ = writeln!(out, "{line}");
        for (label, get) in counters {
            let mut line = format!("{label:lw$}");
            for (r, w) in self.policies.iter().zip(&cw) {
                let _ = write!(line, "  {:>w$}", thousands(get(r)));
            }
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// Reads one counter from a row.
type Counter = fn(&Row) -> u64;

fn row(p: &PassOutcome) -> Row {
    let rs = &p.recipients;
    let mut stalls: Vec<u64> = rs.iter().flat_map(|r| r.switches.iter().map(|s| s.stall_ns)).collect();
    stalls.sort_unstable();
    let sum = |f: &dyn Fn(&RecipientOutcome) -> u64| rs.iter().map(f).sum::<u64>();
    let staged: u64 = sum(&|r| r.stats.staged_ns);
    let observed: u64 = sum(&|r| r.stats.observed_ns);
    let delivered = sum(&|r| r.delivered);
    let wall = p.wall.as_secs_f64();
    Row {
        name: p.policy.name(),
        delivered,
        lost: sum(&|r| r.lost),
        duplicates: sum(&|r| r.duplicates),
        out_of_order: sum(&|r| r.out_of_order),
        switches: stalls.len() as u64,
        seamless: sum(&|r| r.switches.iter().filter(|s| s.seamless).count() as u64),
        cold: sum(&|r| r.switches.iter().filter(|s| !s.seamless).count() as u64),
        stall_p50_ns: percentile(&stalls, 50.0),
        stall_p99_ns: percentile(&stalls, 99.0),
        duty_cycle: if observed == 0 { 0.0 } else { staged as f64 / observed as f64 },
        peak_staged_bytes: rs.iter().map(|r| r.stats.peak_staged_bytes).max().unwrap_or(0),
        events_per_sec: if wall > 0.0 { delivered as f64 / wall } else { 0.0 },
        recipients: rs.len(),
        stall_max_ns: stalls.last().copied().unwrap_or(0),
        corrupt: sum(&|r| r.corrupt),
        flips_rejected_malformed: sum(&|r| r.rejected_malformed),
        flips_rejected_other: sum(&|r| r.rejected_other),
        flips_applied: sum(&|r| r.stats.flips_applied),
        flips_ignored: sum(&|r| r.stats.flips_ignored),
        gaps: sum(&|r| r.gaps),
        gap_filled: sum(&|r| r.stats.gap_filled),
        fetches: sum(&|r| r.fetches),
        live_subscribes: sum(&|r| r.live_subscribes),
        wall_s: wall,
        scenario_s: p.end_ns as f64 / 1e9,
        push_full: p.push_full + p.push_errors,
        dry_runs: sum(&|r| r.switches.iter().filter(|s| s.predicted_seamless.is_some()).count() as u64),
        dry_runs_agreed: sum(&|r| {
            r.switches.iter().filter(|s| s.predicted_seamless == Some(s.seamless)).count() as u64
        }),
        per_recipient: rs
            .iter()
            .map(|r| RecipientRow {
                id: r.id,
                delivered: r.delivered,
                lost: r.lost,
                duplicates: r.duplicates,
                out_of_order: r.out_of_order,
                switches: r.switches.len() as u64,
                seamless: r.switches.iter().filter(|s| s.seamless).count() as u64,
                duty_cycle: r.stats.duty_cycle(),
                peak_staged_bytes: r.stats.peak_staged_bytes,
            })
            .collect(),
    }
}

/// `1234567` → `1,234,567`.
/// `rows` (the first one the header) as text columns: the first left-aligned, the others
/// right-aligned, two spaces apart, one line each.
pub(crate) fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// ns as ms with one decimal.
fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_numbers() {
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[5], 99.0), 5);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(100), "100");
    }
}
