//! The engine's counters as text, for monitoring (issue 17, "Audit trail and metrics"):
//! OpenMetrics (the Prometheus text format: counters as `_total` samples, gauges, `# EOF`) and a
//! versioned JSON document. Both are formatted into any `fmt::Write` and list the same metrics,
//! one per [`Stats`] field; the allocation-free path remains [`Engine::stats`] (C:
//! `hz_engine_stats`, a size-tagged struct).

use core::fmt;

use super::{Engine, Stats};

/// The JSON document's version: a reader checks it; fields are only ever added.
pub const METRICS_JSON_VERSION: u32 = 1;

/// A counter (a total since creation) or a gauge (a value now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A total since the engine was built: OpenMetrics `counter`, sample `<name>_total`.
    Counter,
    /// A value now (or the largest seen): OpenMetrics `gauge`.
    Gauge,
}

/// One metric: its name (the family is `harmonizer_<name>`), kind, help text and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// Snake case; the [`Stats`] field's name (but `stall_ns` for `stall_total_ns`, a counter
    /// whose OpenMetrics sample would otherwise be `..._total_ns_total`).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// One line of help.
    pub help: &'static str,
    /// The value.
    pub value: u64,
}

/// How [`Engine::write_metrics`] formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsFormat {
    /// The OpenMetrics text format, labelled with the recipient.
    OpenMetrics,
    /// `{"version":1,"recipient":..,"active_stream":..,"stats":{"delivered":..,..}}`.
    Json,
}

/// Number of metrics [`Stats::metrics`] lists.
pub const METRICS: usize = 45;

impl Stats {
    /// Every counter, as metrics, in the struct's order. Destructures the struct, so a field
    /// added to [`Stats`] without a metric does not compile.
    pub fn metrics(&self) -> [Metric; METRICS] {
        use MetricKind::{Counter as C, Gauge as G};
        let Stats {
            delivered,
            duplicates_dropped,
            gap_filled,
            gaps_filled_by_wait,
            gaps,
            lost,
            rereads,
            fill_requests,
            stuck,
            silences,
            failovers,
            skipped_for_reread,
            before_resume_pos,
            flips_applied,
            flips_ignored,
            flips_repeated,
            flips_stale,
            flips_rejected,
            bad_events,
            unknown_kinds,
            switches_seamless,
            switches_cold,
            stall_last_ns,
            stall_max_ns,
            stall_total_ns,
            switch_last_ns,
            switch_max_ns,
            staged_bytes,
            peak_staged_bytes,
            staged_ns,
            observed_ns,
            delivered_bytes,
            rings_corrupt,
            identity_starts,
            conflated,
            conflation_survivors,
            conflation_fallbacks,
            verified,
            mismatches,
            unverified,
            switches_blocked,
            map_runs,
            map_runs_dropped,
            probation_failures,
            rollbacks,
        } = *self;
        let m = |name, kind, help, value| Metric { name, kind, help, value };
        [
            m("delivered", C, "Events handed to the handler.", delivered),
            m("duplicates_dropped", C, "Events dropped as already delivered.", duplicates_dropped),
            m("gap_filled", C, "Events delivered from a staged stream to fill a gap.", gap_filled),
            m(
                "gaps_filled_by_wait",
                C,
                "Holes a lagging staged stream filled while delivery waited.",
                gaps_filled_by_wait,
            ),
            m("gaps", C, "Gaps reported.", gaps),
            m("lost", C, "Events given up for lost.", lost),
            m("rereads", C, "Re-reads of the active stream asked for.", rereads),
            m("fill_requests", C, "Other streams asked to bring a gap's events.", fill_requests),
            m("stuck", C, "Gaps whose recovery ran out of rounds and stopped.", stuck),
            m("silences", C, "Silences of the active stream reported.", silences),
            m("failovers", C, "Switches made on a silence.", failovers),
            m("skipped_for_reread", C, "Events skipped while waiting for a re-read.", skipped_for_reread),
            m("before_resume_pos", C, "Events dropped before a switch's resume position.", before_resume_pos),
            m("flips_applied", C, "Flips applied to this recipient.", flips_applied),
            m("flips_ignored", C, "Flips for other recipients.", flips_ignored),
            m("flips_repeated", C, "Flips seen again.", flips_repeated),
            m("flips_stale", C, "Flips behind the frontier that predate the switch.", flips_stale),
            m("flips_rejected", C, "Flips rejected.", flips_rejected),
            m("bad_events", C, "Events whose origin is out of range.", bad_events),
            m("unknown_kinds", C, "Events of an unknown kind.", unknown_kinds),
            m(
                "switches_seamless",
                C,
                "Switches whose staged window reached the switch point.",
                switches_seamless,
            ),
            m("switches_cold", C, "Other switches.", switches_cold),
            m("stall_last_ns", G, "Stall of the last switch, ns.", stall_last_ns),
            m("stall_max_ns", G, "Largest stall, ns.", stall_max_ns),
            m("stall_ns", C, "Sum of the switches' stalls, ns.", stall_total_ns),
            m("switch_last_ns", G, "The engine's own cost of the last switch, ns.", switch_last_ns),
            m("switch_max_ns", G, "Largest engine-side switch cost, ns.", switch_max_ns),
            m("staged_bytes", G, "Bytes the staged windows hold now.", staged_bytes),
            m("peak_staged_bytes", G, "Largest staged_bytes seen.", peak_staged_bytes),
            m("staged_ns", C, "Clock ns with at least one stream staged.", staged_ns),
            m("observed_ns", C, "Clock ns observed in total.", observed_ns),
            m("delivered_bytes", C, "Payload bytes of the events delivered.", delivered_bytes),
            m("rings_corrupt", C, "Ring files detached as corrupt.", rings_corrupt),
            m("identity_starts", C, "Re-read starts the identity tier made exact.", identity_starts),
            m("conflated", C, "Events the conflation tier did not deliver.", conflated),
            m(
                "conflation_survivors",
                C,
                "Events the conflation tier delivered from its store.",
                conflation_survivors,
            ),
            m(
                "conflation_fallbacks",
                C,
                "Holes the conflation tier left to the gap policy.",
                conflation_fallbacks,
            ),
            m("verified", C, "Events whose staged copy matched the delivered one.", verified),
            m("mismatches", C, "Events whose two copies differed.", mismatches),
            m("unverified", C, "Staged copies of delivered events not matched.", unverified),
            m("switches_blocked", C, "Switches refused after a mismatch.", switches_blocked),
            m("map_runs", C, "Runs the position map began.", map_runs),
            m("map_runs_dropped", C, "Position map runs overwritten.", map_runs_dropped),
            m("probation_failures", C, "Anomalies during a probation after a switch.", probation_failures),
            m("rollbacks", C, "Switches back after a failed probation.", rollbacks),
        ]
    }
}

impl Engine {
    /// The engine's metrics as text in `format` (module docs): its [`Stats`] and the active
    /// stream, labelled (OpenMetrics) or keyed (JSON) with the recipient id. Formats into `w`
    /// and allocates nothing itself. Not for the poll path's hot loop: call it when scraped.
    pub fn write_metrics<W: fmt::Write>(&self, format: MetricsFormat, w: &mut W) -> fmt::Result {
        let r = self.recipient_id();
        let active = self.active_stream();
        let metrics = self.stats().metrics();
        match format {
            MetricsFormat::OpenMetrics => {
                for m in &metrics {
                    let (kind, suffix) = match m.kind {
                        MetricKind::Counter => ("counter", "_total"),
                        MetricKind::Gauge => ("gauge", ""),
                    };
                    writeln!(w, "# TYPE harmonizer_{} {kind}", m.name)?;
                    writeln!(w, "# HELP harmonizer_{} {}", m.name, m.help)?;
                    writeln!(w, "harmonizer_{}{suffix}{{recipient=\"{r}\"}} {}", m.name, m.value)?;
                }
                writeln!(w, "# TYPE harmonizer_active_stream gauge")?;
                writeln!(w, "# HELP harmonizer_active_stream The stream delivering now.")?;
                writeln!(w, "harmonizer_active_stream{{recipient=\"{r}\"}} {active}")?;
                writeln!(w, "# EOF")
            }
            MetricsFormat::Json => {
                write!(w, "{{\"version\":{METRICS_JSON_VERSION},\"recipient\":{r},\"active_stream\":{active},\"stats\":{{")?;
                for (i, m) in metrics.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(w, "{sep}\"{}\":{}", m.name, m.value)?;
                }
                w.write_str("}}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    #[test]
    fn openmetrics_and_json_list_every_counter_once() {
        let (mut e, mut p) = Engine::new(EngineConfig::new(7, 2, 1 << 16, 64)).unwrap();
        for seq in 1..=3 {
            let h = crate::event::EventHeader { pos: seq, seq, ts_ns: 0, origin: 0, kind: 0, flags: 0 };
            p[0].push(&h, &[1]).unwrap();
        }
        struct Nop;
        impl crate::engine::Handler for Nop {
            fn event(&mut self, _: u32, _: &crate::ring::Record<'_>) {}
            fn notice(&mut self, _: &crate::engine::Notice<'_>) {}
        }
        while e.poll(64, &mut Nop) > 0 {}
        let mut om = String::new();
        e.write_metrics(MetricsFormat::OpenMetrics, &mut om).unwrap();
        assert!(om.contains("harmonizer_delivered_total{recipient=\"7\"} 3\n"), "{om}");
        assert!(om.contains("# TYPE harmonizer_staged_bytes gauge\n"), "{om}");
        assert!(om.contains("harmonizer_active_stream{recipient=\"7\"} 0\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let samples = om.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, METRICS + 1);
        let mut names: Vec<&str> = e.stats().metrics().iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS, "metric names are unique");
        let mut js = String::new();
        e.write_metrics(MetricsFormat::Json, &mut js).unwrap();
        assert!(
            js.starts_with("{\"version\":1,\"recipient\":7,\"active_stream\":0,\"stats\":{\"delivered\":3,"),
            "{js}"
        );
        assert!(js.ends_with("}}"));
        assert_eq!(js.matches(':').count(), 4 + METRICS, "{js}");
    }
}
