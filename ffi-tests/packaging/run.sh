#!/usr/bin/env bash
# Packaging test: installs harmonizer into a temporary prefix with scripts/install.sh, then
# builds ffi-tests/packaging/hello.c against that prefix the ways a C developer would, and runs
# each program (it exits 0 iff its 3 events are delivered):
#
#   1. pkg-config --static, linking libharmonizer.a (no runtime dependency on the .so);
#   2. pkg-config, linking libharmonizer.so, run with LD_LIBRARY_PATH;
#   3. CMake find_package(harmonizer 0.1) with harmonizer::harmonizer_static;
#   4. CMake with harmonizer::harmonizer (shared, found through CMake's build RPATH).
#
#     bash ffi-tests/packaging/run.sh
#
# Needs a C compiler, pkg-config, cmake and make: the missing ones are installed with apt-get
# (as root, or through sudo). Honours CARGO_TARGET_DIR and HZ_SONAME (see scripts/install.sh).
# HZ_KEEP_TMP=1 keeps the temporary directory. Prints PASS/FAIL lines; exits 1 on any FAIL.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/ffi-tests/packaging"
cd "$ROOT"

# --- tools ---------------------------------------------------------------------------------

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cmake >/dev/null || missing+=(cmake)
command -v make >/dev/null || missing+=(make)
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}"
    if [[ $(id -u) == 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        echo "FAIL tools: ${missing[*]} missing and neither root nor sudo to install them" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "FAIL tools: ${missing[*]} missing and no apt-get: install them first" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
        "${sudo[@]}" apt-get update
        "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

# --- helpers -------------------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hz-packaging.XXXXXX")
if [[ "${HZ_KEEP_TMP:-0}" == 1 ]]; then
    echo "==> keeping $TMP"
else
    trap 'rm -rf "$TMP"' EXIT
fi
PREFIX="$TMP/prefix"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
CFLAGS_STRICT=(-std=c11 -Wall -Wextra -Werror -pedantic)

failures=0
pass() { echo "PASS $*"; }
fail() {
    echo "FAIL $1"
    [[ -f "${2:-}" ]] && sed 's/^/    | /' "$2" | tail -n 40
    failures=$((failures + 1))
}
# step NAME CMD...: runs CMD with its output to a log; PASS or FAIL (with the log's tail).
step() {
    local name=$1 log
    shift
    log="$TMP/$(tr -c 'A-Za-z0-9' _ <<<"$name").log"
    if "$@" >"$log" 2>&1; then
        pass "$name"
        return 0
    fi
    fail "$name" "$log"
    return 1
}
# needed BINARY: the DT_NEEDED entries of BINARY, one a line
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }
# run_hello NAME BINARY [VAR=VALUE...]: runs BINARY in a clean environment (plus the
# assignments) and expects exit 0 and "3 events delivered".
run_hello() {
    local name=$1 bin=$2 out
    shift 2
    if out=$(env -u LD_LIBRARY_PATH "$@" "$bin" 2>&1) && [[ "$out" == *": 3 events delivered"* ]]; then
        pass "$name: $out"
    else
        printf '%s\n' "$out" >"$TMP/run.log"
        fail "$name" "$TMP/run.log"
    fi
}

# --- install -------------------------------------------------------------------------------

if ! step "install.sh into a temporary prefix" bash scripts/install.sh "$PREFIX"; then
    echo "packaging: install failed, nothing to test"
    exit 1
fi
sed -n '/^==> installed/,$p' "$TMP"/install*.log | sed 's/^/    /'

# The version as cargo resolves it (the root package takes it from [workspace.package]),
# independently of install.sh's reading.
VERSION=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "harmonizer"))')
if [[ "$(pkg-config --modversion harmonizer 2>&1)" == "$VERSION" ]] && pkg-config --exists 'harmonizer >= 0.1'; then
    pass "pkg-config finds harmonizer $VERSION"
else
    fail "pkg-config finds harmonizer $VERSION (got: $(pkg-config --modversion harmonizer 2>&1))"
fi

# --- 1. pkg-config, static -----------------------------------------------------------------

# pkg-config --static gives "-L$libdir -lharmonizer" plus Libs.private; with the .so installed
# next to the archive, GNU ld would pick the .so for -lharmonizer, so name the archive.
static_flags=$(pkg-config --cflags --libs --static harmonizer)
static_flags=${static_flags/-lharmonizer/-l:libharmonizer.a}
echo "    static flags: $static_flags"
# shellcheck disable=SC2086 # word splitting of the pkg-config flags is intended
if step "pkg-config --static: build hello.c" \
    cc "${CFLAGS_STRICT[@]}" -o "$TMP/hello_static" "$HERE/hello.c" $static_flags; then
    if needed "$TMP/hello_static" | grep -q '^libharmonizer'; then
        fail "pkg-config --static: hello links libharmonizer statically (NEEDED: $(needed "$TMP/hello_static" | tr '\n' ' '))"
    else
        pass "pkg-config --static: no libharmonizer in NEEDED ($(needed "$TMP/hello_static" | tr '\n' ' '))"
    fi
    run_hello "pkg-config --static: run hello" "$TMP/hello_static"
fi

# --- 2. pkg-config, shared -----------------------------------------------------------------

shared_flags=$(pkg-config --cflags --libs harmonizer)
echo "    shared flags: $shared_flags"
# shellcheck disable=SC2086
if step "pkg-config shared: build hello.c" \
    cc "${CFLAGS_STRICT[@]}" -o "$TMP/hello_shared" "$HERE/hello.c" $shared_flags; then
    soname=$(readelf -d "$PREFIX/lib/libharmonizer.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    if needed "$TMP/hello_shared" | grep -qx "${soname:-libharmonizer.so}"; then
        pass "pkg-config shared: hello needs ${soname:-libharmonizer.so}"
    else
        fail "pkg-config shared: hello needs ${soname:-libharmonizer.so} (NEEDED: $(needed "$TMP/hello_shared" | tr '\n' ' '))"
    fi
    run_hello "pkg-config shared: run hello with LD_LIBRARY_PATH" "$TMP/hello_shared" \
        LD_LIBRARY_PATH="$PREFIX/lib"
fi

# --- 2b. C++17 through the installed harmonizer.hpp, pkg-config shared ----------------------

if command -v c++ >/dev/null; then
    # shellcheck disable=SC2086
    if step "pkg-config shared: build hello.cpp (C++17, harmonizer.hpp)" \
        c++ -std=c++17 -Wall -Wextra -Werror -pedantic -o "$TMP/hello_cpp" "$HERE/hello.cpp" $shared_flags; then
        run_hello "pkg-config shared: run hello.cpp" "$TMP/hello_cpp" LD_LIBRARY_PATH="$PREFIX/lib"
    fi
else
    fail "C++ compiler (c++) missing: harmonizer.hpp not checked from the prefix"
fi

# --- 3 and 4. CMake find_package -----------------------------------------------------------

cmake_case() { # cmake_case LABEL TARGET
    local label=$1 target=$2 build="$TMP/cmake-$1"
    step "cmake $label: configure (find_package(harmonizer 0.1), $target)" \
        cmake -S "$HERE" -B "$build" -DCMAKE_PREFIX_PATH="$PREFIX" -DHZ_LINK="$target" \
        -DCMAKE_BUILD_TYPE=Release || return 0
    step "cmake $label: build" cmake --build "$build" || return 0
    if [[ "$label" == static ]] && needed "$build/hello" | grep -q '^libharmonizer'; then
        fail "cmake static: hello links libharmonizer statically (NEEDED: $(needed "$build/hello" | tr '\n' ' '))"
    fi
    run_hello "cmake $label: run hello" "$build/hello"
}
cmake_case static harmonizer::harmonizer_static
cmake_case shared harmonizer::harmonizer

# The version file refuses a newer request (0.2) and, by the 0.x rule, another minor (0.0).
for want in 0.2 0.0; do
    mkdir -p "$TMP/want-$want"
    printf '%s\n' 'cmake_minimum_required(VERSION 3.13)' 'project(want NONE)' \
        "find_package(harmonizer $want REQUIRED)" >"$TMP/want-$want/CMakeLists.txt"
    if cmake -S "$TMP/want-$want" -B "$TMP/want-$want/build" -DCMAKE_PREFIX_PATH="$PREFIX" \
        >"$TMP/want-$want.log" 2>&1; then
        fail "cmake: find_package(harmonizer $want) is refused by harmonizer $VERSION" "$TMP/want-$want.log"
    elif grep -q "compatible with requested version \"$want\"" "$TMP/want-$want.log"; then
        pass "cmake: find_package(harmonizer $want) is refused by harmonizer $VERSION"
    else
        fail "cmake: find_package(harmonizer $want) is refused for its version" "$TMP/want-$want.log"
    fi
done

echo
if ((failures)); then
    echo "packaging: $failures FAIL"
    exit 1
fi
echo "packaging: all PASS"
