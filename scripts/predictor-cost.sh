#!/usr/bin/env bash
# The predictor's cost per event in place, in instructions counted with callgrind (the same on
# every run, whatever the machine is doing): examples/predictor_cost.rs, the poll64 loop of
# benches/predictor.rs, with NeverStage and with the predictor; the difference per event is
# the predictor's (64 observes and one plan per poll).
#
#     bash scripts/predictor-cost.sh [GIT_REV_TO_COMPARE]
#
# With a revision, the same workload (examples/predictor_cost.rs, copied in) is built at that
# revision in a temporary worktree and counted beside this tree's. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
N=640000
count() { # dir target-dir mode
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo build --release --example predictor_cost -q)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$2/release/examples/predictor_cost" "$3" "$N" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
report() { # label dir target-dir
    never=$(count "$2" "$3" never)
    predictor=$(count "$2" "$3" predictor)
    awk -v l="$1" -v a="$never" -v b="$predictor" -v n="$N" 'BEGIN {
        printf "%-12s never %7.1f  predictor %7.1f  the predictor adds %6.1f instructions per event (N=%d)\n",
            l, a / n, b / n, (b - a) / n, n }'
}
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "$PWD/target")
report "this tree" . "$TARGET"
if [[ $# -ge 1 ]]; then
    tmp=$(mktemp -d)
    git worktree add -q --detach "$tmp/tree" "$1"
    trap 'git worktree remove --force "$tmp/tree"; rm -rf "$tmp"' EXIT
    cp examples/predictor_cost.rs "$tmp/tree/examples/"
    report "$1" "$tmp/tree" "$TARGET/predictor-cost-$1"
fi
