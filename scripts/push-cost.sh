#!/usr/bin/env bash
# Instructions per event for a push and its share of a poll, counted with callgrind (the same on
# every run, whatever the machine is doing), one at a time and in batches of 64; and for the push
# alone, one at a time (`alone`: examples/push_alone.rs, counting only its out-of-line
# `push_one` and all it calls):
#
#     bash scripts/push-cost.sh [GIT_REV_TO_COMPARE]
#
# With a revision, the same workloads (examples/push_cost.rs and push_alone.rs, copied in) are
# built at that revision in a temporary worktree and counted beside this tree's. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000
count() { # dir target-dir example [program args and callgrind options]
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo build --release --example "$3" -q)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:5}" "$2/release/examples/$3" $4 "$N" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
report() { # label dir target-dir
    for mode in one batch alone; do
        if [[ $mode == alone ]]; then
            total=$(count "$2" "$3" push_alone "" '--toggle-collect=*push_one*')
        else
            total=$(count "$2" "$3" push_cost "$mode")
        fi
        printf '%-12s %-6s %8.1f instructions per event (%s in all, N=%s)\n' "$1" "$mode" \
            "$(awk -v t="$total" -v n="$N" 'BEGIN { print t / n }')" "$total" "$N"
    done
}
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "$PWD/target")
report "this tree" . "$TARGET"
if [[ $# -ge 1 ]]; then
    tmp=$(mktemp -d)
    git worktree add -q --detach "$tmp/tree" "$1"
    trap 'git worktree remove --force "$tmp/tree"; rm -rf "$tmp"' EXIT
    cp examples/push_cost.rs examples/push_alone.rs "$tmp/tree/examples/"
    # Before the workspace split (issue 13) the library's Rust crate was `harmonizer`.
    if [[ ! -d "$tmp/tree/crates/harmonizer-core" ]]; then
        sed -i 's/\bharmonizer_core::/harmonizer::/g' "$tmp/tree/examples/push_cost.rs" "$tmp/tree/examples/push_alone.rs"
    fi
    report "$1" "$tmp/tree" "$TARGET/push-cost-$1"
fi
