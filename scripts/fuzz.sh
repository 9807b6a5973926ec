#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz on the nightly toolchain) for SECONDS each (default
# 60), starting from the checked-in seeds in fuzz/corpus/ (left as they are: what the run finds
# goes to a scratch directory), and prints libFuzzer's last status line per target (executions,
# coverage, corpus). A crash stops the run with its input saved under fuzz/artifacts/; add that
# input to fuzz/corpus/ with the fix, so the stable replay test keeps it fixed.
#
#     bash scripts/fuzz.sh [SECONDS]
#
# Needs `cargo install cargo-fuzz` and the nightly toolchain; says so and exits 0 when either is
# missing (CI's .ci/run calls it that way).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER=${1:-60}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIPPED fuzzing: no nightly toolchain"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "SKIPPED fuzzing: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi
for target in $(cargo +nightly fuzz list); do
    echo "==> fuzz $target for ${SECONDS_PER} s"
    log=$(mktemp)
    scratch=$(mktemp -d)
    # libFuzzer writes new inputs to the first corpus directory and only reads the others.
    # -timeout: an input that runs 10 s is a hang (a poll that never returns), reported as a
    # crash with its input saved.
    if ! cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- -max_total_time="$SECONDS_PER" -timeout=10 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "FAIL fuzz $target: see fuzz/artifacts/$target/"
        exit 1
    fi
    grep -E '^#[0-9]+' "$log" | tail -n 1
    rm -rf "$log" "$scratch"
done
