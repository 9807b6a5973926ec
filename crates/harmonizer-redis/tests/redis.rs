//! The Redis connector against a real `redis-server` (one per test, on a free loopback port,
//! with an append-only file synced on every write so a restart keeps every entry): every
//! scenario of `harmonizer_connect::testing`. No mocks: `redis-server` must be installed
//! (scripts/check.sh does it).

use std::time::Duration;

use harmonizer_connect::testing::{self as t, Backend, Process, Publish};
use harmonizer_core::event::EventHeader;
use harmonizer_redis::{pos_to_id, RedisPublisher, RedisUpstream};

struct Redis(Process);

fn ready(port: u16) -> bool {
    RedisPublisher::new(&format!("redis://127.0.0.1:{port}/"))
        .and_then(|mut p| p.command(&redis::cmd("PING")))
        .is_ok()
}

impl Backend for Redis {
    type Up = RedisUpstream;
    fn start() -> Self {
        Redis(Process::start("redis-server", t::redis_command_aof, ready))
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.0.port)
    }
    fn prepare(&self, _keys: &[&str]) {}
    fn upstream(&self, keys: &[&str]) -> RedisUpstream {
        RedisUpstream::new(&self.url(), keys.iter().map(|k| k.to_string()).collect()).unwrap()
    }
    fn publisher(url: &str) -> Box<dyn Publish> {
        Box::new(Pub(RedisPublisher::new(url).unwrap()))
    }
    fn crash_and_restart(&mut self, down_for: Duration) {
        self.0.kill();
        std::thread::sleep(down_for);
        self.0.spawn("redis-server", ready);
    }
    fn trim_before(&self, key: &str, pos: u64) {
        let (ms, seq) = pos_to_id(pos);
        let mut p = RedisPublisher::new(&self.url()).unwrap();
        p.command(redis::cmd("XTRIM").arg(key).arg("MINID").arg(format!("{ms}-{seq}"))).unwrap();
    }
}

struct Pub(RedisPublisher);

impl Publish for Pub {
    fn publish(&mut self, key: &str, header: &EventHeader, payload: &[u8]) -> u64 {
        self.0.publish(key, header, payload).unwrap()
    }
    fn last_seq(&mut self, key: &str) -> u64 {
        self.0.last_seq(key).unwrap().unwrap_or(0)
    }
}

harmonizer_connect::scenario_tests!(Redis);

/// Entries the connector cannot take are reported, each once, and not delivered: a missing
/// seq, a payload field named twice, an id beyond the position mapping. The rest is delivered.
#[test]
fn unreadable_entries_are_reported_and_skipped() {
    use harmonizer_connect::upstream::Skipped;
    use harmonizer_connect::Report;
    let server = Redis::start();
    let mut p = RedisPublisher::new(&server.url()).unwrap();
    let xadd = |p: &mut RedisPublisher, id: &str, fields: &[(&str, &str)]| {
        let mut c = redis::cmd("XADD");
        c.arg("a").arg(id);
        for (k, v) in fields {
            c.arg(*k).arg(*v);
        }
        p.command(&c).unwrap();
    };
    xadd(&mut p, "*", &[("s", "1"), ("p", "o0-event-1")]);
    xadd(&mut p, "*", &[("p", "no seq")]);
    xadd(&mut p, "*", &[("s", "2"), ("p", "one"), ("p", "two")]);
    xadd(&mut p, "*", &[("s", "2"), ("p", "o0-event-2")]);
    xadd(&mut p, "5000000000000000-1", &[("s", "3"), ("p", "o0-event-3")]); // ms above 2^42
    let mut d = t::follow(&server, &["a", "b"], 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (t::Seen::default(), Vec::new());
    t::run_until(&mut d, &mut seen, &mut reports, t::LIMIT, |s, r| {
        s.seqs(0).len() == 2 && r.iter().filter(|r| matches!(r, Report::Skipped { .. })).count() == 3
    });
    seen.assert_exactly_once(2);
    let skipped: Vec<&Skipped> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Skipped { stream: 0, what } => Some(what),
            _ => None,
        })
        .collect();
    assert!(matches!(skipped[0], Skipped::Malformed { why, .. } if why.contains("no `s`")), "{skipped:?}");
    assert!(matches!(skipped[1], Skipped::Malformed { why, .. } if why.contains("twice")), "{skipped:?}");
    assert_eq!(skipped[2], &Skipped::Unrepresentable { id: "5000000000000000-1".into() });
}

/// A key deleted and made again under the same name while it is read: its new ids are below
/// what was read, and `XREAD` after the old id would wait for ever. The reader notices on its
/// next idle read and reports it (as an outage, retried with backoff), never silently.
#[test]
fn a_key_made_again_below_what_was_read_is_reported() {
    use harmonizer_connect::upstream::UpstreamError;
    use harmonizer_connect::Report;
    let server = Redis::start();
    let mut p = RedisPublisher::new(&server.url()).unwrap();
    for i in 1..=5u64 {
        p.command(
            redis::cmd("XADD")
                .arg("a")
                .arg(format!("1000-{i}"))
                .arg("s")
                .arg(i)
                .arg("p")
                .arg(format!("o0-event-{i}")),
        )
        .unwrap();
    }
    let mut d = t::follow(&server, &["a", "b"], 7, |_| {});
    d.engine_mut().resume_stream_at(0, 1);
    let (mut seen, mut reports) = (t::Seen::default(), Vec::new());
    t::run_until(&mut d, &mut seen, &mut reports, t::LIMIT, |s, _| s.seqs(0).len() == 5);
    p.command(redis::cmd("DEL").arg("a")).unwrap();
    p.command(redis::cmd("XADD").arg("a").arg("500-1").arg("s").arg(6).arg("p").arg("o0-event-6")).unwrap();
    t::run_until(&mut d, &mut seen, &mut reports, t::LIMIT, |_, r| {
        r.iter().any(|r| {
            matches!(r, Report::Disconnected { stream: 0, error: UpstreamError::Refused(m) } if m.contains("went backwards"))
        })
    });
    seen.assert_exactly_once(5);
}
