//! The connector bench (`cargo bench -p harmonize --bench connectors`): starts its own
//! `redis-server` and `nats-server -js` on free loopback ports and runs `harmonize
//! connector-bench` against each (docs/connectors.md, "Measured"): events/s through the
//! connector and the engine next to a plain client of the same server, in the same run; idle
//! CPU; the switch stall, staged and cold. Without `--bench` (as `cargo test --all-targets`
//! runs it) it is a smoke run: 2,000 events, one round.

use std::process::Command;

use harmonizer_connect::testing::{self, Process};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (events, rounds) = if full { ("200000", "3") } else { ("2000", "1") };
    let redis = Process::start("redis-server", testing::redis_command, testing::listening);
    let nats = Process::start("nats-server", testing::nats_command, testing::listening);
    for (flag, url) in [
        ("--redis", format!("redis://127.0.0.1:{}/", redis.port)),
        ("--nats", format!("nats://127.0.0.1:{}", nats.port)),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_harmonize"))
            .args(["connector-bench", flag, &url, "--events", events, "--rounds", rounds])
            .output()
            .expect("run harmonize connector-bench");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
