//! Follows two Redis stream keys as one recipient, printing what it delivers:
//!
//! ```sh
//! cargo run -p harmonizer-redis --example follow -- redis://127.0.0.1:6379/ feed-a feed-b
//! ```
//!
//! Write to them with `redis-cli XADD feed-a '*' s 1 p hello` (and the same into `feed-b`).
//! The README shows this program; `cargo test` builds it.

use std::sync::Arc;
use std::time::Duration;

use harmonizer_connect::{Driver, DriverOptions};
use harmonizer_core::engine::{Engine, EngineConfig, Handler, Notice};
use harmonizer_core::ring::Record;
use harmonizer_redis::RedisUpstream;

struct Print;

impl Handler for Print {
    fn event(&mut self, stream: u32, r: &Record<'_>) {
        println!("stream {stream}: seq {} {}", r.header.seq, String::from_utf8_lossy(r.payload));
    }
    fn notice(&mut self, n: &Notice<'_>) {
        eprintln!("notice: {n:?}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let mut keys: Vec<String> = args.collect();
    if keys.is_empty() {
        keys = vec!["feed-a".into(), "feed-b".into()];
    }
    // Recipient 42 on len(keys) streams; stream i is keys[i]; it starts on stream 0, live.
    let (engine, producers) = Engine::new(EngineConfig::new(42, keys.len() as u32, 1 << 20, 4096))?;
    let upstream = Arc::new(RedisUpstream::new(&url, keys)?);
    let mut driver = Driver::new(engine, producers, upstream, DriverOptions::default())?;
    loop {
        driver.run_once(&mut Print, Duration::from_millis(100)); // sleeps when idle
        for report in driver.reports() {
            eprintln!("report: {report:?}");
        }
    }
}
