//! Sleeping until there is something to deliver (issue 12, defect 7): `Engine::wait`.

use super::Engine;

/// The longest a wait held at a gap with no deadline sleeps before returning (false).
const HELD_GAP_SLICE_NS: u64 = 1_000_000_000;

impl Engine {
    /// Sleeps until the active stream's producer publishes, or `timeout` passes, or an engine
    /// deadline (a recovery round, a `Resume` read, a silence) comes due, whichever is first;
    /// returns true when records wait on the active stream or the next `poll` has work of its
    /// own (the first poll, a deferred switch). Real time, whatever the engine's clock; a
    /// deadline on a manual clock only shortens the sleep.
    ///
    /// A waiting engine uses no CPU; a producer pays one load on a line it already reads while
    /// the engine is awake (`ring::wake`, `# Orderings`, its loom model). Only the active
    /// stream wakes it: staged candidates fill their windows without waking it (poll trims
    /// them). A switch cannot happen during a wait: the active stream is fixed until the next
    /// poll. For a ring file, its producer in another process wakes it too.
    ///
    /// While delivery is held at a gap (waiting for a lagging candidate, a fill, or the
    /// application after `Stuck`), the active stream's next record is the gap event, already
    /// there: waiting for it would return at once, and a loop of `poll` and `wait` would spin.
    /// Then the wait is for the first staged candidate's next publish instead (what can close
    /// the gap), or the deadline; true when either came, false at `timeout`.
    pub fn wait(&mut self, timeout: core::time::Duration) -> bool {
        if !self.started || self.deferred.is_some() {
            return true;
        }
        let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let mut ns = timeout_ns;
        let deadline = self.next_deadline_ns();
        if let Some(d) = deadline {
            ns = ns.min(d);
        }
        let active = self.active;
        if self.holding_gap {
            // Held with no deadline (stuck: only the application or a staged stream can move it)
            // and an unbounded timeout: wake once a second all the same, so no wait is endless.
            let ns = if deadline.is_none() { ns.min(HELD_GAP_SLICE_NS) } else { ns };
            let staged = (0..self.streams.len())
                .find(|&i| i != active && self.streams[i].consumer.role() == crate::ring::Role::Staged);
            let published = match staged {
                Some(i) => self.streams[i].consumer.wait_for_publish(ns),
                None => {
                    // Nothing staged can bring it: sleep until the deadline or the timeout.
                    std::thread::sleep(core::time::Duration::from_nanos(ns));
                    false
                }
            };
            return published || deadline.is_some_and(|d| d <= timeout_ns);
        }
        self.streams[active].consumer.wait(ns)
    }

    /// Clock ns from the last poll until the engine's next deadline, if one is set and still
    /// ahead: a recovery round's timeout, a `Resume` read's, or the active stream's silence. One
    /// already due at the last poll was handled by it or cannot move (a stuck gap, a silence
    /// with no candidate ahead): it must not turn the wait into a spin.
    fn next_deadline_ns(&self) -> Option<u64> {
        let now = self.now_ns;
        let round = self.liveness.round_timeout_ns;
        let mut due: Option<u64> = None;
        let mut at = |t: u64| {
            if t > 0 {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        if let Some(started) = self.recovery.as_ref().map(|r| r.round_started()) {
            at(started.saturating_add(round).saturating_sub(now));
        }
        if let Some(started) = self.resume_wait.as_ref().map(|w| w.started()) {
            at(started.saturating_add(round).saturating_sub(now));
        }
        if let Some(since) = self.gap_wait.since_ns() {
            at(since.saturating_add(self.liveness.gap_wait_ns).saturating_sub(now));
        }
        if self.liveness.silence_ns != 0 && !self.silence_reported {
            at(self.active_heard_ns.saturating_add(self.liveness.silence_ns).saturating_sub(now));
        }
        due
    }
}
