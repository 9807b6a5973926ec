//! `harmonize connector-bench`: what following a real stream costs, next to a plain client of
//! the same server reading the same entries in the same run.
//!
//! 1. **Throughput.** One stream is prefilled with `--events` entries. A plain client reads them
//!    all (Redis: `XREAD COUNT 512` in a loop, fields walked but not decoded; NATS: an ordered
//!    consumer, messages counted), then a recipient does (the connector, the driver and the
//!    engine, to a handler that counts). Alternately, `--rounds` times each; the ratio of the
//!    medians is the figure (goal: at least 0.9, the engine must not be the bottleneck).
//! 2. **Idle CPU.** The recipient then waits 2 s with nothing to read: the process's CPU time
//!    over that span (all its threads: readers, the NATS runtime), as a share of one core.
//! 3. **Switch stall as the application sees it.** Two streams fed at 2,000 events/s; a switch
//!    to the second, staged (announced 200 ms before) and cold (not announced): the `Switched`
//!    notice's stall and the longest wall-clock gap between two deliveries around the switch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use harmonizer_connect::{Driver, DriverOptions, Upstream};
use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::event::{EventHeader, KIND_DATA, KIND_FLIP};
use harmonizer_core::flip::{Flip, FlipAction};
use harmonizer_core::ring::Record;
use harmonizer_nats::{NatsPublisher, NatsUpstream};
use harmonizer_redis::{RedisPublisher, RedisUpstream};
use serde::Serialize;

use crate::connect::{cpu_seconds, ServerArgs};
use crate::predictor::parse_u64;

/// `harmonize connector-bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Entries in the prefilled stream.
    #[arg(long, value_name = "N", default_value = "200000", value_parser = parse_u64)]
    events: u64,
    /// Payload bytes per entry.
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = parse_u64)]
    payload_bytes: u64,
    /// Rounds of each reader, alternated.
    #[arg(long, value_name = "N", default_value = "3", value_parser = parse_u64)]
    rounds: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Results {
    server: String,
    events: u64,
    plain_events_per_s: Vec<f64>,
    connector_events_per_s: Vec<f64>,
    /// This process's CPU time per event (all threads, user + system), ns: what reading costs
    /// the client side, whatever the server does.
    plain_cpu_ns_per_event: Vec<f64>,
    connector_cpu_ns_per_event: Vec<f64>,
    /// Median connector rate over median plain rate.
    ratio: f64,
    idle_cpu_percent: Option<f64>,
    staged_stall_ms: f64,
    staged_max_delivery_gap_ms: f64,
    cold_stall_ms: f64,
    cold_max_delivery_gap_ms: f64,
}

/// The server under test, with what the bench needs of it.
enum Server {
    Redis(String),
    Nats(String),
}

impl Server {
    fn name(&self) -> String {
        match self {
            Server::Redis(u) => format!("redis {u}"),
            Server::Nats(u) => format!("nats {u}"),
        }
    }

    /// Writes `events` into `stream` (made if need be), in batches.
    fn fill(&self, stream: &str, events: &[(EventHeader, Vec<u8>)]) -> Result<(), String> {
        match self {
            Server::Redis(u) => {
                let mut p = RedisPublisher::new(u).map_err(|e| e.to_string())?;
                for chunk in events.chunks(1000) {
                    p.publish_batch(stream, chunk).map_err(|e| e.to_string())?;
                }
            }
            Server::Nats(u) => {
                let p = NatsPublisher::new(u).map_err(|e| e.to_string())?;
                p.ensure_stream(stream).map_err(|e| e.to_string())?;
                for chunk in events.chunks(1000) {
                    p.publish_batch(stream, chunk).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// A plain client reads `n` entries of `stream` from its start; the rate.
    fn plain_read(&self, stream: &str, n: u64) -> Result<f64, String> {
        let t = Instant::now();
        match self {
            Server::Redis(u) => {
                let client = redis::Client::open(u.as_str()).map_err(|e| e.to_string())?;
                let mut conn = client.get_connection().map_err(|e| e.to_string())?;
                let (mut last, mut got, mut bytes) = ("0-0".to_string(), 0u64, 0usize);
                while got < n {
                    let v: redis::Value = redis::cmd("XREAD")
                        .arg("COUNT")
                        .arg(512)
                        .arg("STREAMS")
                        .arg(stream)
                        .arg(&last)
                        .query(&mut conn)
                        .map_err(|e| e.to_string())?;
                    let redis::Value::Array(streams) = v else { return Err("XREAD: no entries".into()) };
                    let Some(redis::Value::Array(s)) = streams.first() else { break };
                    let Some(redis::Value::Array(entries)) = s.get(1) else { break };
                    for e in entries {
                        let redis::Value::Array(kv) = e else { continue };
                        if let Some(redis::Value::BulkString(id)) = kv.first() {
                            last = String::from_utf8_lossy(id).into_owned();
                        }
                        if let Some(redis::Value::Array(fields)) = kv.get(1) {
                            for f in fields {
                                if let redis::Value::BulkString(b) = f {
                                    bytes += b.len();
                                }
                            }
                        }
                        got += 1;
                    }
                }
                std::hint::black_box(bytes);
            }
            Server::Nats(u) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    use futures_util::StreamExt;
                    let client = async_nats::connect(u.as_str()).await.map_err(|e| e.to_string())?;
                    let js = async_nats::jetstream::new(client);
                    let s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
                    let c = s
                        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut m = c.messages().await.map_err(|e| e.to_string())?;
                    let (mut got, mut bytes) = (0u64, 0usize);
                    while got < n {
                        let msg = m.next().await.ok_or("the consumer ended")?.map_err(|e| e.to_string())?;
                        bytes += msg.payload.len();
                        got += 1;
                    }
                    std::hint::black_box(bytes);
                    Ok::<(), String>(())
                })?;
            }
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    }

    /// A driver on `streams` (manual staging).
    fn driver(&self, streams: &[&str]) -> Result<Driver, String> {
        let names: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
        let (engine, producers) = Engine::new(EngineConfig::new(1, names.len() as u32, 1 << 22, 4096))
            .map_err(|e| e.to_string())?;
        fn go<U: Upstream>(
            e: Engine,
            p: Vec<harmonizer_core::engine::StreamProducer>,
            u: U,
        ) -> Result<Driver, String> {
            Driver::new(e, p, Arc::new(u), DriverOptions::default()).map_err(|e| e.to_string())
        }
        match self {
            Server::Redis(u) => {
                go(engine, producers, RedisUpstream::new(u, names).map_err(|e| e.to_string())?)
            }
            Server::Nats(u) => go(engine, producers, NatsUpstream::new(u, names).map_err(|e| e.to_string())?),
        }
    }
}

/// Counts deliveries, and the switch and the delivery gaps around it.
#[derive(Default)]
struct Count {
    n: u64,
    last_at: Option<Instant>,
    max_gap: Duration,
    stall_ns: Option<u64>,
}

impl Handler for Count {
    fn event(&mut self, _stream: u32, r: &Record<'_>) {
        std::hint::black_box(r.payload.len());
        self.n += 1;
        let now = Instant::now();
        if let Some(t) = self.last_at {
            self.max_gap = self.max_gap.max(now - t);
        }
        self.last_at = Some(now);
    }
    fn notice(&mut self, n: &Notice<'_>) {
        if let Notice::Switched { stall_ns, .. } = *n {
            self.stall_ns = Some(stall_ns);
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn events(first: u64, n: u64, payload: usize) -> Vec<(EventHeader, Vec<u8>)> {
    (first..first + n)
        .map(|seq| {
            let mut p = format!("event {seq}").into_bytes();
            p.resize(payload, b'.');
            (EventHeader { pos: 0, seq, ts_ns: seq, origin: 0, kind: KIND_DATA, flags: 0 }, p)
        })
        .collect()
}

/// One switch at 2,000 events/s: staged (announced first) or cold. Its stall (notice) and the
/// longest wall-clock gap between deliveries, ms.
fn switch_stall(server: &Server, tag: &str, staged: bool) -> Result<(f64, f64), String> {
    let (a, b) = (format!("{tag}-sa"), format!("{tag}-sb"));
    server.fill(&a, &[])?;
    server.fill(&b, &[])?;
    let mut d = server.driver(&[&a, &b])?;
    let mut c = Count::default();
    // The first poll subscribes the initial stream (live); let its reader get there.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(300) {
        d.run_once(&mut c, Duration::from_millis(10));
    }
    let flip = |action, id| {
        let f = Flip::new(action, id, 1).to_vec().unwrap();
        (EventHeader { pos: 0, seq: 0, ts_ns: 0, origin: 0, kind: KIND_FLIP, flags: 0 }, f)
    };
    let total = 3000u64;
    let writer = {
        let (a, b) = (a.clone(), b.clone());
        let server = match server {
            Server::Redis(u) => Server::Redis(u.clone()),
            Server::Nats(u) => Server::Nats(u.clone()),
        };
        std::thread::spawn(move || -> Result<(), String> {
            let start = Instant::now();
            for (i, ev) in events(1, total, 64).into_iter().enumerate() {
                let seq = ev.0.seq;
                let mut batch = Vec::new();
                if staged && seq == 1000 {
                    batch.push(flip(FlipAction::Announce, 1));
                }
                if seq == 1400 {
                    batch.push(flip(FlipAction::Switch, 2));
                }
                batch.push(ev);
                server.fill(&a, &batch)?;
                server.fill(&b, &batch)?;
                let due = start + Duration::from_micros(500 * (i as u64 + 1));
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
            }
            Ok(())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.n < total && Instant::now() < deadline {
        d.run_once(&mut c, Duration::from_millis(10));
    }
    writer.join().map_err(|_| "the writer panicked".to_string())??;
    let stall = c.stall_ns.ok_or("no switch was made")? as f64 / 1e6;
    Ok((stall, c.max_gap.as_secs_f64() * 1e3))
}

pub fn run(a: BenchArgs) -> Result<(), String> {
    let server = match (&a.server.redis, &a.server.nats) {
        (Some(u), _) => Server::Redis(u.clone()),
        (None, Some(u)) => Server::Nats(u.clone()),
        _ => return Err("--redis or --nats is required".into()),
    };
    let tag = format!("hzbench{}", std::process::id());
    let stream = format!("{tag}-fill");
    server.fill(&stream, &events(1, a.events, a.payload_bytes as usize))?;
    let (mut plain, mut conn) = (Vec::new(), Vec::new());
    let (mut plain_cpu, mut conn_cpu) = (Vec::new(), Vec::new());
    let events_n = a.events as f64;
    let per_event =
        |c0: Option<f64>| cpu_seconds().zip(c0).map_or(f64::NAN, |(b, a)| (b - a) * 1e9 / events_n);
    let mut idle_cpu = None;
    for round in 0..a.rounds.max(1) {
        let c0 = cpu_seconds();
        plain.push(server.plain_read(&stream, a.events)?);
        plain_cpu.push(per_event(c0));
        let c0 = cpu_seconds();
        let mut d = server.driver(&[&stream])?;
        d.engine_mut().resume_stream_at(0, 1);
        let mut c = Count::default();
        let t = Instant::now();
        while c.n < a.events {
            d.run_once(&mut c, Duration::from_millis(10));
            if t.elapsed() > Duration::from_secs(120) {
                return Err(format!("the connector read {} of {} in 120 s", c.n, a.events));
            }
        }
        conn.push(a.events as f64 / t.elapsed().as_secs_f64());
        conn_cpu.push(per_event(c0));
        if round == 0 {
            // Idle: nothing more arrives; the recipient sleeps on the engine's wait.
            let (cpu0, t0) = (cpu_seconds(), Instant::now());
            while t0.elapsed() < Duration::from_secs(2) {
                d.run_once(&mut c, Duration::from_millis(100));
            }
            idle_cpu = cpu_seconds().zip(cpu0).map(|(b, a)| (b - a) / t0.elapsed().as_secs_f64() * 100.0);
        }
    }
    let (staged_stall, staged_gap) = switch_stall(&server, &format!("{tag}-staged"), true)?;
    let (cold_stall, cold_gap) = switch_stall(&server, &format!("{tag}-cold"), false)?;
    let r = Results {
        server: server.name(),
        events: a.events,
        ratio: median(&conn) / median(&plain),
        plain_events_per_s: plain,
        connector_events_per_s: conn,
        plain_cpu_ns_per_event: plain_cpu,
        connector_cpu_ns_per_event: conn_cpu,
        idle_cpu_percent: idle_cpu,
        staged_stall_ms: staged_stall,
        staged_max_delivery_gap_ms: staged_gap,
        cold_stall_ms: cold_stall,
        cold_max_delivery_gap_ms: cold_gap,
    };
    if a.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        let list = |v: &[f64]| v.iter().map(|x| format!("{:.0}", x)).collect::<Vec<_>>().join(", ");
        println!("{} — {} entries of {} bytes, {} rounds", r.server, r.events, a.payload_bytes, a.rounds);
        println!("  plain client       {} events/s", list(&r.plain_events_per_s));
        println!("  connector + engine {} events/s", list(&r.connector_events_per_s));
        println!("  ratio of medians   {:.3} (goal >= 0.9)", r.ratio);
        println!(
            "  client CPU/event   plain {} ns, connector + engine {} ns (all threads)",
            list(&r.plain_cpu_ns_per_event),
            list(&r.connector_cpu_ns_per_event)
        );
        println!(
            "  idle CPU           {}",
            r.idle_cpu_percent.map_or("unknown".into(), |c| format!("{c:.2}% of a core over 2 s"))
        );
        println!(
            "  switch, staged     stall {:.3} ms, longest gap between deliveries {:.1} ms",
            r.staged_stall_ms, r.staged_max_delivery_gap_ms
        );
        println!(
            "  switch, cold       stall {:.3} ms, longest gap between deliveries {:.1} ms",
            r.cold_stall_ms, r.cold_max_delivery_gap_ms
        );
    }
    Ok(())
}
