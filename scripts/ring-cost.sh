#!/usr/bin/env bash
# Instructions per record moved through a ring (written and read back), harmonizer's and its peer
# rtrb's, counted with callgrind: the same on every run, whatever the machine is doing.
#
#     bash scripts/ring-cost.sh [N]
#
# Each entry of examples/ring_cost.rs is counted at N and at 2N records; the difference divided
# by N is the marginal cost per record (set-up and the ring's allocation cancel out). Needs
# valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "$PWD/target")
cargo build --release --example ring_cost -q
count() { # entry n
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$TARGET/release/examples/ring_cost" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for entry in harmonizer-one rtrb-one harmonizer-batch rtrb-chunk; do
    a=$(count "$entry" "$N")
    b=$(count "$entry" $((2 * N)))
    printf '%-18s %7.1f instructions per record (marginal, N=%s)\n' "$entry" \
        "$(awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN { print (b - a) / n }')" "$N"
done
