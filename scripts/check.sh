#!/usr/bin/env bash
# Every check harmonizer has, in the order CI runs them. This is the README's one test command:
#
#     bash scripts/check.sh
#
# It installs what it needs (the nightly Miri and rust-src components, Rust 1.81, 1.85 and 1.88
# for the rust-version check; redis-server and nats-server for the connector tests, and cmake
# and pkg-config for the packaging test, with apt-get; pip fetches the Python package's build
# tools) and otherwise needs the stable and nightly toolchains rustup provides, gcc/g++, python3
# (with venv) and valgrind. The connector tests start their own servers, each on a free
# loopback port with its own directory, and stop them when they end. Each step prints a banner; the first failure
# stops the run. Set SKIP_MIRI=1 or SKIP_LOOM=1 to skip the slow steps while iterating.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Keep loom and Miri builds out of the main target dir so they do not invalidate each other.
TARGET=${CARGO_TARGET_DIR:-target}

# Debian packages the tests need, installed when missing (as root, or with sudo).
need_packages() { # command=package...
    local missing=() want cmd pkg
    for want in "$@"; do
        cmd=${want%%=*} pkg=${want#*=}
        command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    echo "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
        { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; }
}

step "servers for the connector tests: redis-server and nats-server (Debian's)"
need_packages redis-server=redis-server nats-server=nats-server
redis-server --version
# Debian installs nats-server in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin"
nats-server --version

step "rustfmt"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, integration, model and stress tests; benches smoke-run in test mode"
cargo test --workspace --all-targets --locked

step "doc tests (including the compile-fail Send/!Sync pins)"
cargo test --workspace --doc --locked

step "rustdoc: every intra-doc link resolves"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "minimum Rust versions: each package's rust-version builds its locked dependencies"
# rustup fetches the two toolchains if they are missing; if it cannot, say so and go on (the
# registries, not rustup's server, are what CI promises to reach).
msrv() { # version packages...
    local v=$1
    shift
    if ! cargo "+$v" --version >/dev/null 2>&1 && ! rustup toolchain install "$v" --profile minimal >/dev/null 2>&1; then
        echo "SKIPPED: Rust $v could not be installed, so rust-version $v of $* is not checked"
        return
    fi
    CARGO_TARGET_DIR="$TARGET/msrv-$v" cargo "+$v" check --locked --lib --bins "${@/#/-p=}"
}
msrv 1.81 harmonizer-core harmonizer-sim harmonizer-connect
msrv 1.85 harmonizer
msrv 1.88 harmonizer-redis harmonizer-nats harmonize

step "predictor, release: the shipped model is what the tool trains; held-out results against the phi rule"
cargo test --release --locked -p harmonizer-sim --test predictor -- --ignored

if [[ "${SKIP_LOOM:-0}" != 1 ]]; then
    step "loom models (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3})"
    RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" CARGO_TARGET_DIR="$TARGET/loom" \
        cargo test --release --locked -p harmonizer-core --test loom_ring --test loom_engine --test loom_guard --test loom_pool --test loom_identity
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$TARGET/loom" \
        cargo clippy --locked -p harmonizer-core --test loom_ring --test loom_engine --test loom_guard --test loom_pool --test loom_identity -- -D warnings
fi

if [[ "${SKIP_MIRI:-0}" != 1 ]]; then
    step "Miri (nightly): unit tests of the modules with unsafe code or under it, the ring model and two-thread tests (shrunk), the engine tests"
    if ! cargo +nightly miri --version >/dev/null 2>&1; then
        rustup component add --toolchain nightly miri rust-src
    fi
    # predict:: (and the harmonizer-sim crate) hold no unsafe code and their tests replay long
    # traces: native only.
    MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}" CARGO_TARGET_DIR="$TARGET/miri" \
        cargo +nightly miri test --locked -p harmonizer-core --lib -- ring:: flip:: tracker:: event:: crc32c:: clock::
    MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}" CARGO_TARGET_DIR="$TARGET/miri" \
        cargo +nightly miri test --locked -p harmonizer --lib
    MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}" CARGO_TARGET_DIR="$TARGET/miri" \
        cargo +nightly miri test --locked -p harmonizer-core --test ring_model --test ring_stress --test engine
fi

step "C API: C11, threads, C++17, dlopen and Python tests; again under ASan+UBSan and valgrind"
bash ffi-tests/run.sh "$TARGET"

step "packaging: install to a temporary prefix, build a C program with pkg-config and CMake"
CARGO_TARGET_DIR="$TARGET" bash ffi-tests/packaging/run.sh

step "all checks passed"
