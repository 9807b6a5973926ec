//! Issue 20: what the predictor records live is what training records, and leaving a family
//! out of the world does what it says.

use harmonizer_core::predict::{LearnConfig, Predictor, PredictorConfig};
use harmonizer_sim::eval::silent_model;
use harmonizer_sim::lofo::{run_model, Family, FamilyScore};
use harmonizer_sim::replay::{replay, ReplayConfig};
use harmonizer_sim::scenario::{generate, Cause, ScenarioParams};

const HORIZON: u64 = 5_000_000_000;

/// On a generated trace, the rows the engine's predictor records while it runs are the
/// snapshots `harmonize trace` records (the same times, candidates and features, bit for bit),
/// and their labels are the trace's ground truth wherever a switch is not within a second of
/// the horizon's edges: the live labeller knows a switch when the flip arrives, the ground
/// truth at the flip's upstream time.
#[test]
fn rows_recorded_live_are_the_training_snapshots() {
    let mut checked = 0;
    for seed in [11u64, 12, 13] {
        let trace = generate(&ScenarioParams::small(seed)).unwrap();
        let learn = LearnConfig { record_rows: 1 << 16, ..LearnConfig::default() };
        let p = Predictor::new(trace.recipient_id, silent_model(HORIZON), PredictorConfig::default())
            .unwrap()
            .with_learning(learn)
            .unwrap();
        let cfg =
            ReplayConfig { snapshot_every_ns: 100_000_000, horizon_ns: HORIZON, ..ReplayConfig::default() };
        let o = replay(&trace, p, &cfg).unwrap();
        let stats = o.learned.as_ref().and_then(|l| l.1).unwrap();
        assert_eq!(stats.rows_dropped + stats.pending_dropped, 0);
        assert_eq!(o.history.len() as u64, stats.rows_recorded);
        assert!(!o.history.is_empty() && trace.switches.len() > 3, "seed {seed}");
        let mut disagree = 0;
        for row in &o.history {
            let snap = o
                .snapshots
                .iter()
                .find(|s| s.t_ns == row.t_ns && s.stream == row.stream)
                .unwrap_or_else(|| panic!("seed {seed}: no snapshot at {} for {}", row.t_ns, row.stream));
            assert!(
                snap.features.iter().zip(&row.features).all(|(a, b)| a.to_bits() == b.to_bits()),
                "seed {seed}: features differ at {}",
                row.t_ns
            );
            if snap.label != row.label {
                disagree += 1;
                let near_edge = trace.switches.iter().any(|w| {
                    w.to == row.stream
                        && (w.at_ns.abs_diff(row.t_ns) < 1_000_000_000
                            || w.at_ns.abs_diff(row.t_ns + HORIZON) < 1_000_000_000)
                });
                assert!(
                    near_edge,
                    "seed {seed}: label differs at {} for {} far from any switch",
                    row.t_ns, row.stream
                );
            }
            checked += 1;
        }
        // Every snapshot older than one horizon before the end was released.
        let end = o.snapshots.last().unwrap().t_ns;
        let due = o.snapshots.iter().filter(|s| s.t_ns + HORIZON + 200_000_000 < end).count();
        assert!(o.history.len() >= due, "seed {seed}: {} rows, {due} due", o.history.len());
        assert!(disagree * 50 < o.history.len(), "seed {seed}: {disagree} labels differ");
    }
    assert!(checked > 3000, "{checked}");
}

/// `without` removes a family's switches from a world and `only` keeps only them; the score
/// counts the family's predictable switches and those after its first.
#[test]
fn families_are_left_out_and_kept_alone() {
    let base = ScenarioParams { duration_ns: 600_000_000_000, ..ScenarioParams::small(5) };
    for f in Family::ALL {
        let without = generate(&f.without(&base)).unwrap();
        assert!(without.switches.iter().all(|w| w.cause != f.cause()), "{}", f.name());
        let alone = generate(&f.only(&base)).unwrap();
        let mine = alone.switches.iter().filter(|w| w.cause == f.cause()).count();
        assert!(mine >= 3, "{}: {mine}", f.name());
        match f {
            // Switchbacks and failbacks follow other switches: those stay.
            Family::Switchback => assert!(alone.switches.iter().any(|w| w.cause != Cause::Switchback)),
            Family::Failback => {
                let leads = [Cause::Degradation, Cause::FailStop, Cause::Stall, Cause::Failback];
                assert!(alone.switches.iter().all(|w| leads.contains(&w.cause)), "{:?}", alone.switches);
            }
            // Only the family, and switchbacks after it are gone too (fail-stops too).
            _ => assert!(alone.switches.iter().all(|w| w.cause == f.cause()), "{}", f.name()),
        }
    }
    let trace = generate(&Family::Load.only(&base)).unwrap();
    let o = run_model(
        &trace,
        &harmonizer_core::predict::policy::default_model(),
        harmonizer_core::predict::Preset::Aggressive,
        None,
    )
    .unwrap();
    let s = FamilyScore::of(&trace, &o, Family::Load);
    let predictable = trace.switches.iter().filter(|w| w.predictable && w.cause == Cause::Load).count();
    assert_eq!(s.predictable, predictable);
    assert_eq!(s.after_first, predictable - 1, "the first load switch is predictable here");
    assert_eq!(s.timeline.len(), predictable);
    assert_eq!(s.seamless, s.timeline.iter().filter(|t| t.1).count());
}
