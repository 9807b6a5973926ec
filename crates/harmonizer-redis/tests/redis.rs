//! The Redis connector against a real `redis-server` (one per test, on a free loopback port):
//! exactly-once delivery with payload checks through announced, cold and back switches, a server
//! killed and restarted mid-stream, a permanent hole in one stream, and a re-read into a range
//! the server trimmed. No mocks: `redis-server` must be installed (scripts/check.sh does it).

mod common;

use std::time::Duration;

use common::*;
use harmonizer_connect::{Report, Start};
use harmonizer_core::engine::{Exhausted, Liveness};
use harmonizer_core::flip::FlipAction;

const LIMIT: Duration = Duration::from_secs(30);

/// Announce, then switch: the target was staged, so the switch is seamless; then a switchback
/// to the kept previous stream, seamless too; then an announce that is cancelled. Every event
/// once, in order, with its payload.
#[test]
fn announced_switch_switchback_and_cancel() {
    let server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1); // from the start of `a`
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    feed.data_all(1..=50);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 50);
    // The announce stages `b` from its live end: wait until its reader is there before writing
    // more, as a real feed would simply keep going.
    feed.flip_all(&flip(FlipAction::Announce, 1, 1));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |_, r| {
        r.iter().any(|r| matches!(r, Report::Started { stream: 1, start: Start::Live, .. }))
    });
    feed.data_all(51..=100);
    feed.flip_all(&flip(FlipAction::Switch, 1, 2));
    feed.data_all(101..=150);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 150);
    assert_eq!(seen.switches, [(0, 1, 2, true)], "a seamless switch to b");
    assert_eq!(d.engine().active_stream(), 1);
    feed.flip_all(&flip(FlipAction::Switchback, 0, 3));
    feed.data_all(151..=200);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 200);
    assert_eq!(seen.switches[1..], [(1, 0, 3, true)], "the switchback target was kept staged");
    feed.flip_all(&flip(FlipAction::Announce, 1, 4));
    feed.data_all(201..=220);
    feed.flip_all(&flip(FlipAction::Cancel, 1, 5));
    feed.data_all(221..=250);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 250);
    seen.assert_exactly_once(250);
    assert_eq!(seen.switches.len(), 2, "a cancelled announce switches nothing");
    assert!(seen.lost.is_empty());
}

/// A switch to a stream that was not staged: the engine cannot name a position in it, so the
/// reader finds the first entry after the last seq delivered (a bisection over the key), and
/// delivery goes on without a duplicate or a hole.
#[test]
fn cold_switch_finds_the_position_after_the_frontier() {
    let server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    // `b` carries a long history first, so the search has something to search.
    for s in 1..=3000 {
        feed.data(1, s);
    }
    for s in 1..=1000 {
        feed.data(0, s);
    }
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 1000);
    feed.flip(0, &flip(FlipAction::Switch, 1, 9));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 3000);
    seen.assert_exactly_once(3000);
    assert_eq!(seen.switches, [(0, 1, 9, false)], "cold");
    let started_b: Vec<_> =
        reports.iter().filter(|r| matches!(r, Report::Started { stream: 1, .. })).collect();
    assert!(
        matches!(
            started_b.first(),
            Some(Report::Started { start: Start::AfterSeq { origin: 0, seq: 1000 }, .. })
                | Some(Report::Started { start: Start::AfterFrontier(_), .. })
        ),
        "b starts after the frontier: {started_b:?}"
    );
}

/// The server is killed (`kill -9`) and restarted mid-stream (its append-only file keeps every
/// entry): the reader reports the outage, reconnects with backoff, and goes on from the entry
/// after the last one it took.
#[test]
fn server_killed_and_restarted_mid_stream() {
    let mut server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    feed.data_all(1..=500);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 500);
    server.crash_and_restart(Duration::from_millis(300));
    // Keep polling through the outage: the reader must report it.
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |_, _| true);
    let mut feed = Feed::new(&server, &keys);
    feed.data_all(501..=1000);
    let mut reconnected = false;
    let deadline = std::time::Instant::now() + LIMIT;
    while !(reconnected && seen.seqs(0).len() == 1000) {
        d.run_once(&mut seen, Duration::from_millis(5));
        for r in d.reports() {
            reconnected |= matches!(r, Report::Reconnected { stream: 0, .. });
            reports.push(r);
        }
        assert!(std::time::Instant::now() < deadline, "reports {reports:#?}, {} events", seen.events.len());
    }
    seen.assert_exactly_once(1000);
    assert!(
        reports.iter().any(|r| matches!(r, Report::Disconnected { stream: 0, .. })),
        "the outage is reported: {reports:#?}"
    );
}

/// The active stream lacks one event for good; the other stream has it. The engine re-reads the
/// active stream a bounded number of rounds, then asks the other stream to fill the hole, and
/// delivery goes on: exactly once, no loop.
#[test]
fn permanent_hole_is_filled_from_the_other_stream() {
    let server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    for s in 1..=200 {
        if s != 120 {
            feed.data(0, s);
        }
        feed.data(1, s);
    }
    let mut d = follow(&server, &keys, 7, |c| {
        c.liveness = Liveness { reread_rounds: 2, round_timeout_ns: 300_000_000, ..Liveness::default() };
    });
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 200);
    seen.assert_exactly_once(200);
    assert!(seen.gaps >= 1 && seen.lost.is_empty());
    assert_eq!(d.engine().stats().fill_requests, 1, "one fill asked of b");
}

/// A cold switch whose target was trimmed past the frontier, while the old stream has nothing
/// more: the reader reports the trimmed range, the engine's bounded recovery reports exactly
/// the missing seqs as lost, and delivery goes on from the first entry still there.
#[test]
fn trimmed_range_under_a_reread_is_reported_and_lost_exactly() {
    let server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    for s in 1..=50 {
        feed.data(0, s);
    }
    let mut first_kept = 0;
    for s in 1..=100 {
        let p = feed.data(1, s);
        if s == 70 {
            first_kept = p;
        }
    }
    let (ms, seq) = harmonizer_redis::pos_to_id(first_kept);
    feed.p.command(redis::cmd("XTRIM").arg("b").arg("MINID").arg(format!("{ms}-{seq}"))).unwrap();
    let mut d = follow(&server, &keys, 7, |c| {
        c.liveness = Liveness {
            reread_rounds: 1,
            round_timeout_ns: 200_000_000,
            exhausted: Exhausted::ReportLost,
            ..Liveness::default()
        };
    });
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 50);
    feed.flip(0, &flip(FlipAction::Switch, 1, 9));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).last() == Some(&100));
    let seqs = seen.seqs(0);
    let want: Vec<u64> = (1..=50).chain(70..=100).collect();
    assert_eq!(seqs, want, "exactly once around the hole; notices {:#?}", seen.notices);
    assert_eq!(seen.lost, [(0, 51, 69)], "the trimmed seqs, exactly, as lost");
    assert!(
        reports.iter().any(|r| matches!(r, Report::Trimmed { stream: 1, first, .. } if *first == first_kept)),
        "the trim is reported, with the first entry left: {reports:#?}"
    );
}

/// The writer of the active stream is a process, killed with `kill -9` mid-stream and started
/// again later (it goes on from the last seq its key holds, as a restarted writer does). The
/// active stream falls silent: the engine reports it and fails over to the staged stream (opt-in
/// failover), and every event is delivered once.
#[test]
fn writer_killed_with_sigkill_then_restarted() {
    let server = Server::start();
    let keys = ["a", "b"];
    let n = 4000;
    let mut d = follow(&server, &keys, 7, |c| {
        c.liveness = Liveness { silence_ns: 150_000_000, failover_on_silence: true, ..Liveness::default() };
    });
    d.engine_mut().resume_stream_at(0, 1);
    d.engine_mut().resume_stream_at(1, 1);
    assert!(d.engine_mut().arm(1), "stream b is staged from the start");
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    let mut writer_a = Writer::spawn(&server, "a", n, 300);
    let mut writer_b = Writer::spawn(&server, "b", n, 300);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() >= 800);
    writer_a.kill9();
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.switches.iter().any(|w| w.2 == 0));
    let mut restarted = Writer::spawn(&server, "a", n, 300);
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == n as usize);
    seen.assert_exactly_once(n);
    assert!(seen.silences >= 1, "the silence of `a` was reported");
    assert_eq!(seen.switches[0].0..seen.switches[0].1, 0..1, "failed over from a to b: {:?}", seen.switches);
    assert!(writer_b.wait_ok() && restarted.wait_ok(), "the writers finished");
}

/// One flip, several recipients: a cohort flip switches the recipients it selects (and only
/// those); a second flip for everyone switches the rest. Each recipient gets every event once.
#[test]
fn cohort_rollout_across_recipients() {
    use harmonizer_core::flip::{in_cohort, Selector};
    let server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let recipients = [11u64, 12, 13, 14, 15, 16];
    // A salt that splits them: some in the 50% cohort, some not.
    let salt = (1..1000u64)
        .find(|&s| {
            let k = recipients.iter().filter(|&&r| in_cohort(r, s, 5000)).count();
            k >= 2 && k <= recipients.len() - 2
        })
        .expect("some salt splits six recipients");
    let mut drivers: Vec<_> = recipients
        .iter()
        .map(|&r| {
            let mut d = follow(&server, &keys, r, |_| {});
            d.engine_mut().resume_stream_at(0, 1);
            (r, d, Seen::default(), Vec::new())
        })
        .collect();
    feed.data_all(1..=100);
    let mut cohort = flip(FlipAction::Switch, 1, 21);
    cohort.selector = Selector::Cohort { basis_points: 5000, salt };
    feed.flip_all(&cohort);
    feed.data_all(101..=200);
    let everyone = flip(FlipAction::Switch, 1, 22);
    feed.flip_all(&everyone);
    feed.data_all(201..=300);
    for (r, d, seen, reports) in &mut drivers {
        run_until(d, seen, reports, LIMIT, |s, _| s.seqs(0).len() == 300);
        seen.assert_exactly_once(300);
        let want = if in_cohort(*r, salt, 5000) { 21 } else { 22 };
        assert_eq!(seen.switches.len(), 1, "recipient {r}: {:?}", seen.switches);
        assert_eq!((seen.switches[0].1, seen.switches[0].2), (1, want), "recipient {r}");
        assert_eq!(d.engine().active_stream(), 1);
    }
}

/// The target of a switch lags by 1.5 s: the switch waits for it (a stall, reported with its
/// length in the `Switched` notice), nothing is lost, nothing repeated.
#[test]
fn lagging_target_stalls_the_switch_and_loses_nothing() {
    let server = Server::start();
    let keys = ["a", "b"];
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    let url = server.url();
    // `a` now, `b` the same records 1.5 s later; the switch to `b` sits after seq 150 in both.
    let write = move |key: &'static str, delay: Duration| {
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut feed =
                Feed { keys: vec![key.into()], p: harmonizer_redis::RedisPublisher::new(&url).unwrap() };
            for s in 1..=300 {
                if s == 151 {
                    feed.flip(0, &flip(FlipAction::Switch, 1, 31));
                }
                feed.data(0, s);
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };
    let ta = write("a", Duration::ZERO);
    let tb = write("b", Duration::from_millis(1500));
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 300);
    ta.join().unwrap();
    tb.join().unwrap();
    seen.assert_exactly_once(300);
    assert_eq!(seen.switches.len(), 1);
    assert!(seen.stalls[0] >= 1_000_000_000, "the switch waited for b: stall {} ns", seen.stalls[0]);
    assert!(seen.lost.is_empty());
}

/// The same flip reaches the two streams at different logical points (after seq 100 in `a`,
/// after seq 130 in `b`), and so does the switchback (after 200 in `b`, 180 in `a`). Each is
/// applied once, where the active stream carries it; the copies met later are repeats.
#[test]
fn flips_at_different_logical_points_in_each_stream() {
    let server = Server::start();
    let keys = ["a", "b"];
    let mut feed = Feed::new(&server, &keys);
    let mut d = follow(&server, &keys, 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    d.engine_mut().resume_stream_at(1, 1);
    let (mut seen, mut reports) = (Seen::default(), Vec::new());
    let switch = flip(FlipAction::Switch, 1, 41);
    let back = flip(FlipAction::Switchback, 0, 42);
    for s in 1..=300 {
        if s == 101 {
            feed.flip(0, &switch);
        }
        if s == 131 {
            feed.flip(1, &switch);
        }
        if s == 181 {
            feed.flip(0, &back);
        }
        if s == 201 {
            feed.flip(1, &back);
        }
        feed.data(0, s);
        feed.data(1, s);
    }
    run_until(&mut d, &mut seen, &mut reports, LIMIT, |s, _| s.seqs(0).len() == 300);
    seen.assert_exactly_once(300);
    let ids: Vec<_> = seen.switches.iter().map(|w| (w.0, w.1, w.2)).collect();
    assert_eq!(ids, [(0, 1, 41), (1, 0, 42)]);
    // Where each switch took effect: 41 after seq 100 (met on `a`), 42 after seq 200 (met on
    // `b`, active then).
    let stream_of = |seq: u64| seen.events.iter().find(|e| e.2 == seq).map(|e| e.0);
    assert_eq!(
        (stream_of(100), stream_of(101), stream_of(200), stream_of(201)),
        (Some(0), Some(1), Some(1), Some(0))
    );
    assert!(d.engine().stats().flips_repeated >= 1);
}

/// Not a test: the body of the writer processes [`Writer`] starts, run by them with
/// `--include-ignored` (ignored in an ordinary run, where it would do nothing).
#[test]
#[ignore = "the writer process's entry point, run by Writer::spawn"]
fn writer_process() {
    writer_main();
}
