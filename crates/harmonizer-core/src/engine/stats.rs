//! Counters the engine keeps; read with `Engine::stats`.

/// Engine statistics. Counts are totals since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events handed to the handler.
    pub delivered: u64,
    /// Events dropped because the tracker had delivered them already.
    pub duplicates_dropped: u64,
    /// Events delivered from a staged candidate to fill a gap in the active stream.
    pub gap_filled: u64,
    /// Holes in the active stream that a lagging staged stream filled while delivery waited for
    /// it (`Liveness::gap_wait_ns`), before any gap policy ran: no `Gap`, no re-read, no loss.
    pub gaps_filled_by_wait: u64,
    /// Gaps reported (`Notice::Gap`).
    pub gaps: u64,
    /// Events given up for lost (`Notice::Lost`).
    pub lost: u64,
    /// Re-reads of the active stream asked for (gap policy `ReRead`).
    pub rereads: u64,
    /// Other streams asked to bring a gap's events (`Subscribe` with `Purpose::Fill`).
    pub fill_requests: u64,
    /// Gaps whose recovery ran out of rounds and streams and stopped (`Notice::Stuck`).
    pub stuck: u64,
    /// Silences of the active stream reported (`Notice::ActiveSilent`).
    pub silences: u64,
    /// Switches the engine made on a silence (`SwitchCause::Silence`).
    pub failovers: u64,
    /// Events skipped while waiting for a re-read (they come again).
    pub skipped_for_reread: u64,
    /// Events dropped because they precede a switch's `resume_pos`.
    pub before_resume_pos: u64,
    /// Flips applied to this recipient.
    pub flips_applied: u64,
    /// Flips for other recipients (evidence of a rollout).
    pub flips_ignored: u64,
    /// Flips seen again (same id, e.g. on the other stream).
    pub flips_repeated: u64,
    /// Flips met while catching up after a switch that lay behind the delivery frontier and
    /// predate that switch (they reached only the new stream, while another was active): not
    /// applied, reported (`RejectReason::Superseded`), their ids not consumed.
    pub flips_stale: u64,
    /// Flips rejected: every `Notice::FlipRejected`, stale ones (`flips_stale`) included.
    pub flips_rejected: u64,
    /// Events whose origin is out of range (`Notice::BadEvent`).
    pub bad_events: u64,
    /// Events of a kind the engine does not know (delivered as data).
    pub unknown_kinds: u64,
    /// Switches whose target was staged and whose window reached the switch point.
    pub switches_seamless: u64,
    /// Other switches.
    pub switches_cold: u64,
    /// Stall of the last switch, ns.
    pub stall_last_ns: u64,
    /// Largest stall, ns.
    pub stall_max_ns: u64,
    /// Sum of stalls, ns.
    pub stall_total_ns: u64,
    /// The engine's own cost of the last switch (epoch change, roles, plan), ns.
    pub switch_last_ns: u64,
    /// Largest engine-side switch cost, ns.
    pub switch_max_ns: u64,
    /// Bytes the staged windows hold now (frames actually retained after the last trim).
    pub staged_bytes: u64,
    /// Largest `staged_bytes` seen.
    pub peak_staged_bytes: u64,
    /// Clock ns with at least one stream staged.
    pub staged_ns: u64,
    /// Clock ns observed in total (first poll to last).
    pub observed_ns: u64,
    /// Payload bytes of the events delivered (their mean prices a staged window's records).
    pub delivered_bytes: u64,
    /// Ring files detached because another process wrote something the protocol never writes
    /// (`Notice::RingCorrupt`).
    pub rings_corrupt: u64,
    /// Origins whose re-read start on a switch's target the identity tier made exact: the
    /// target's window had evicted the records the start would have been taken from
    /// (`EngineConfig::identity_records`, docs/staging.md).
    pub identity_starts: u64,
    /// Events the conflation tier did not deliver, reported in `Notice::Conflated`.
    pub conflated: u64,
    /// Events the conflation tier delivered from its store (each key's latest of a hole).
    pub conflation_survivors: u64,
    /// Holes the conflation tier left to the gap policy (an unmarked or unlogged event, a copy
    /// missing or too large, the store full).
    pub conflation_fallbacks: u64,
    /// Events whose copy on a staged stream matched the digest of the copy the active stream
    /// delivered (`EngineConfig::verify_records`, docs/verify.md).
    pub verified: u64,
    /// Events whose two copies differed (`Notice::Mismatch`).
    pub mismatches: u64,
    /// Delivered events trimmed from a staged window with nothing remembered of the active
    /// stream's copy (it was delivered before staging began, filled from that stream, or the
    /// delivery memory no longer held it): neither verified nor mismatched.
    pub unverified: u64,
    /// Switches refused because the target's copies differed (`MismatchPolicy::BlockSwitch`,
    /// `Notice::SwitchBlocked`).
    pub switches_blocked: u64,
    /// Runs the position map began (a pair that breaks the strides begins one).
    pub map_runs: u64,
    /// Runs of the position map overwritten by newer ones (`EngineConfig::map_runs` full).
    pub map_runs_dropped: u64,
    /// Streams that showed an anomaly during their probation after a switch
    /// (`Notice::ProbationFailed`).
    pub probation_failures: u64,
    /// Switches back after a failed probation (`SwitchCause::Rollback`).
    pub rollbacks: u64,
}

impl Stats {
    /// Fraction of observed time with at least one candidate staged.
    pub fn duty_cycle(&self) -> f64 {
        if self.observed_ns == 0 {
            0.0
        } else {
            self.staged_ns as f64 / self.observed_ns as f64
        }
    }
}
