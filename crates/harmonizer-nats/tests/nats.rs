//! The NATS JetStream connector against a real `nats-server -js` (one per test, on a free
//! loopback port, file storage in its own directory, so a restart keeps every message): every
//! scenario of `harmonizer_connect::testing`. No mocks: `nats-server` must be installed
//! (scripts/check.sh does it).

use std::time::Duration;

use harmonizer_connect::testing::{Backend, Process, Publish};
use harmonizer_core::event::EventHeader;
use harmonizer_nats::{NatsPublisher, NatsUpstream};

struct Nats(Process);

fn ready(port: u16) -> bool {
    NatsPublisher::new(&format!("nats://127.0.0.1:{port}")).is_ok()
}

impl Backend for Nats {
    type Up = NatsUpstream;
    fn start() -> Self {
        Nats(Process::start("nats-server", harmonizer_connect::testing::nats_command, ready))
    }
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }
    fn prepare(&self, keys: &[&str]) {
        let p = NatsPublisher::new(&self.url()).unwrap();
        for k in keys {
            p.ensure_stream(k).unwrap();
        }
    }
    fn upstream(&self, keys: &[&str]) -> NatsUpstream {
        NatsUpstream::new(&self.url(), keys.iter().map(|k| k.to_string()).collect()).unwrap()
    }
    fn publisher(url: &str) -> Box<dyn Publish> {
        Box::new(Pub(NatsPublisher::new(url).unwrap()))
    }
    fn crash_and_restart(&mut self, down_for: Duration) {
        self.0.kill();
        std::thread::sleep(down_for);
        self.0.spawn("nats-server", ready);
    }
    fn trim_before(&self, key: &str, pos: u64) {
        NatsPublisher::new(&self.url()).unwrap().purge_below(key, pos).unwrap();
    }
}

struct Pub(NatsPublisher);

impl Publish for Pub {
    fn publish(&mut self, key: &str, header: &EventHeader, payload: &[u8]) -> u64 {
        self.0.publish(key, header, payload).unwrap()
    }
    fn last_seq(&mut self, key: &str) -> u64 {
        self.0.last_seq(key).unwrap().unwrap_or(0)
    }
}

harmonizer_connect::scenario_tests!(Nats);

/// A reader keeps its ordered consumer while it reads on from where it is (a start at its next
/// sequence, as after a re-read that resumes there), and makes a new one only for a start
/// somewhere else.
#[test]
fn the_ordered_consumer_is_reused_when_reading_on() {
    use harmonizer_connect::upstream::{Reader, Start, Upstream};
    let server = Nats::start();
    server.prepare(&["a"]);
    let mut p = Nats::publisher(&server.url());
    for seq in 1..=20 {
        let h = EventHeader { pos: 0, seq, ts_ns: 0, origin: 0, kind: 0, flags: 0 };
        p.publish("a", &h, b"x");
    }
    let up = server.upstream(&["a"]);
    let mut r = up.open(0).unwrap();
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    let read = |r: &mut harmonizer_nats::NatsReader,
                out: &mut Vec<harmonizer_connect::Entry>,
                skipped: &mut Vec<_>| {
        out.clear();
        while out.len() < 10 {
            r.read(10 - out.len(), Duration::from_secs(2), out, skipped).unwrap();
        }
    };
    r.seek(&Start::Pos(1)).unwrap();
    read(&mut r, &mut out, &mut skipped);
    assert_eq!(out.iter().map(|e| e.header.pos).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    r.seek(&Start::Pos(11)).unwrap(); // where it is: kept
    read(&mut r, &mut out, &mut skipped);
    assert_eq!(out[0].header.pos, 11);
    assert_eq!(r.consumers_made(), 1, "reading on reuses the consumer");
    r.seek(&Start::Pos(3)).unwrap(); // elsewhere: a new one
    read(&mut r, &mut out, &mut skipped);
    assert_eq!((out[0].header.pos, out[0].header.seq), (3, 3));
    assert_eq!(r.consumers_made(), 2);
    assert!(skipped.is_empty());
}
