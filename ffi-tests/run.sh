#!/usr/bin/env bash
# The C API's tests: C11, C++17, dlopen, the Python package; then the C side again under
# AddressSanitizer + UBSan (and, where a nightly toolchain with rust-src can build it, with the
# Rust side instrumented too); then under valgrind memcheck. See ffi-tests/README.md.
#
#     bash ffi-tests/run.sh [TARGET_DIR]        (default: target, relative to the repository)
#
# Builds the library with `cargo rustc --release --locked --lib` into TARGET_DIR, puts every test
# binary and log under TARGET_DIR/ffi-tests/, prints one PASS/FAIL line per test and exits
# non-zero if any failed. Environment: CC (gcc), CXX (g++), PYTHON (python3),
# HZ_THREADS_N (events in threads.c; default 500000, 100000 under valgrind),
# HZ_SKIP_RUST_ASAN=1 (skip the nightly -Zsanitizer=address build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${1:-target}
case $TARGET in
/*) ;;
*) TARGET=$ROOT/$TARGET ;;
esac
OUT=$TARGET/ffi-tests
LOGS=$OUT/logs
mkdir -p "$OUT" "$LOGS"

CC=${CC:-gcc}
CXX=${CXX:-g++}
PYTHON=${PYTHON:-python3}
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic -O2 -g -I"$ROOT/include" -I"$ROOT/ffi-tests")
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic -O2 -g -I"$ROOT/include")
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
# LIBS: what the staticlib needs from the system, as rustc computes it (set after the build).
MODEL=$ROOT/crates/harmonizer-core/models/default.json
VALGRIND=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect)
# allocator_may_return_null: an allocation the system cannot satisfy (api.c asks for a 1 TiB
# ring, issue 19) returns NULL as malloc does, instead of ASan stopping the process: the
# library must turn it into HZ_ERR_NO_MEMORY.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failed_names=()
start=$SECONDS

pass() {
    printf 'PASS  %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL  %s\n' "$1"
    failed=$((failed + 1))
    failed_names+=("$1")
}
note() { printf 'NOTE  %s\n' "$*"; }

# check KEY NAME COMMAND...: runs COMMAND with its output in $LOGS/KEY.log; PASS or FAIL (with
# the log's tail).
check() {
    local log=$LOGS/$1.log name=$2
    shift 2
    if "$@" >"$log" 2>&1; then
        pass "$name"
    else
        fail "$name (log: $log)"
        tail -n 40 "$log" | sed 's/^/      | /'
    fi
}

# --- the Rust library --------------------------------------------------------------------------
echo "==> cargo rustc --release --locked --lib -- --print native-static-libs (CARGO_TARGET_DIR=$TARGET)"
if ! log=$(CARGO_TARGET_DIR=$TARGET cargo rustc --release --locked --lib -- --print native-static-libs 2>&1); then
    printf '%s\n' "$log" >&2
    fail "cargo rustc --release"
    exit 1
fi
# The same list install.sh writes into harmonizer.pc and the CMake package: rustc's.
read -r -a LIBS <<<"$(sed -n 's/.*note: native-static-libs: //p' <<<"$log" | tail -1)"
if ((${#LIBS[@]} == 0)); then
    fail "rustc printed no native-static-libs"
    exit 1
fi
echo "    static link needs: ${LIBS[*]}"
STATIC=$TARGET/release/libharmonizer.a
SHARED=$TARGET/release/libharmonizer.so
for f in "$STATIC" "$SHARED"; do
    [[ -f $f ]] || { fail "library built: $f missing"; exit 1; }
done
build_s=$((SECONDS - start))
start_tests=$SECONDS

# --- the header alone --------------------------------------------------------------------------
echo "==> header"
header_c11() { printf '#include "harmonizer.h"\nint main(void) { return HZ_OK; }\n' |
    "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -I"$ROOT/include" -x c - -o "$OUT/header_c"; }
header_cxx17() { printf '#include "harmonizer.h"\nint main() { return HZ_OK; }\n' |
    "$CXX" -std=c++17 -Wall -Wextra -Werror -pedantic -I"$ROOT/include" -x c++ - -o "$OUT/header_cxx"; }
check header_c11 "header compiles alone as C11 (-Wall -Wextra -Werror -pedantic)" header_c11
check header_cxx17 "header compiles alone as C++17 (-Wall -Wextra -Werror -pedantic)" header_cxx17
max_ids() { printf '#include "harmonizer.h"\nint main(void) { return (int)HZ_FLIP_MAX_IDS - 32; }\n' |
    "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -I"$ROOT/include" -x c - -o "$OUT/header_max_ids" && "$OUT/header_max_ids"; }
check header_max_ids "HZ_FLIP_MAX_IDS is a usable constant in C" max_ids

# --- a) plain builds ---------------------------------------------------------------------------
echo "==> C11, C++17, dlopen, Python (static link against libharmonizer.a)"
check build_api_c_c11_static "build api.c (C11, static)" "$CC" "${CFLAGS[@]}" ffi-tests/api.c "$STATIC" "${LIBS[@]}" -o "$OUT/api"
check build_threads_c_c11_pthreads_static "build threads.c (C11 + pthreads, static)" "$CC" "${CFLAGS[@]}" ffi-tests/threads.c "$STATIC" "${LIBS[@]}" -o "$OUT/threads"
check build_api_cpp_c_17_static "build api.cpp (C++17, static)" "$CXX" "${CXXFLAGS[@]}" ffi-tests/api.cpp "$STATIC" "${LIBS[@]}" -o "$OUT/api_cpp"
check build_shm_c_c11_static "build shm.c (C11, static)" "$CC" "${CFLAGS[@]}" ffi-tests/shm.c "$STATIC" "${LIBS[@]}" -o "$OUT/shm"
check build_dlopen_c_c11_ldl_only "build dlopen.c (C11, -ldl only)" "$CC" "${CFLAGS[@]}" ffi-tests/dlopen.c -ldl -o "$OUT/dlopen"
# (Outputs captured first: `cmd | grep -q` can fail under pipefail when grep exits early.)
no_link_dep() {
    local dyn undef
    dyn=$(readelf -d "$OUT/dlopen") && undef=$(nm -u "$OUT/dlopen") || return 1
    printf '%s\n' "$dyn" | grep NEEDED
    ! printf '%s\n' "$dyn" | grep NEEDED | grep harmonizer && ! printf '%s\n' "$undef" | grep ' hz_'
}
check dlopen_binary_has_no_link_time_dependency_on_libharmonizer "dlopen binary has no link-time dependency on libharmonizer" no_link_dep

# The README's C and C++ examples, compiled and run as they are written there.
sed -n '/^```c$/,/^```$/p' "$ROOT/README.md" | sed '1d;$d' >"$OUT/readme.c"
sed -n '/^```cpp$/,/^```$/p' "$ROOT/README.md" | sed '1d;$d' >"$OUT/readme.cpp"
check build_readme_c "build the README's C example (C11)" "$CC" "${CFLAGS[@]}" "$OUT/readme.c" "$STATIC" "${LIBS[@]}" -o "$OUT/readme_c"
check build_readme_cpp "build the README's C++ example (C++17, harmonizer.hpp)" "$CXX" "${CXXFLAGS[@]}" "$OUT/readme.cpp" "$STATIC" "${LIBS[@]}" -o "$OUT/readme_cpp"
delivers_one() { "$1" | tee /dev/stderr | grep -qx '1 delivered'; }
check readme_c "the README's C example delivers its event" delivers_one "$OUT/readme_c"
check readme_cpp "the README's C++ example delivers its event" delivers_one "$OUT/readme_cpp"
check api "api (C11)" "$OUT/api" "$MODEL"
check threads "threads (3 producer threads, consumer on main, N=${HZ_THREADS_N:-500000})" "$OUT/threads"
check api_cpp_c_17 "api.cpp (C++17)" "$OUT/api_cpp"
check shm "shm (ring file, producers in child processes: SIGKILL, restart, truncation)" "$OUT/shm" "$OUT"
check dlopen_dlopen_dlsym "dlopen (dlopen/dlsym)" "$OUT/dlopen" "$SHARED"
# The Python package, installed with pip into a fresh virtual environment (the system's cffi and
# setuptools visible; cffi from PyPI when the system has none), as a user installs it.
VENV=$OUT/venv
install_python_package() {
    rm -rf "$VENV" &&
        "$PYTHON" -m venv --system-site-packages "$VENV" &&
        { "$VENV/bin/python" -c 'import cffi' 2>/dev/null || "$VENV/bin/python" -m pip install --quiet cffi; } &&
        "$VENV/bin/python" -m pip install --quiet "$ROOT/python" &&
        HARMONIZER_LIB=$SHARED "$VENV/bin/python" -c 'import harmonizer; print(harmonizer.__file__, harmonizer.__version__)'
}
check python_package_pip_install "python package: pip install ./python" install_python_package
check test_python_py_python_package "test_python.py (the Python package; the README's example)" \
    env HARMONIZER_LIB="$SHARED" "$VENV/bin/python" ffi-tests/test_python.py "$ROOT/README.md"
grep -h '^threads:\|note:' "$LOGS/threads.log" "$LOGS/api.log" 2>/dev/null | sed 's/^/      /' || true

# --- b) sanitizers -----------------------------------------------------------------------------
echo "==> AddressSanitizer + UBSan (C side), release Rust staticlib"
check build_api_c_asan_ubsan "build api.c (ASan+UBSan)" "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/api.c "$STATIC" "${LIBS[@]}" -o "$OUT/api_asan"
check build_threads_c_asan_ubsan "build threads.c (ASan+UBSan)" "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/threads.c "$STATIC" "${LIBS[@]}" -o "$OUT/threads_asan"
check build_api_cpp_asan_ubsan "build api.cpp (ASan+UBSan)" "$CXX" "${CXXFLAGS[@]}" "${SAN[@]}" ffi-tests/api.cpp "$STATIC" "${LIBS[@]}" -o "$OUT/api_cpp_asan"
check build_shm_c_asan_ubsan "build shm.c (ASan+UBSan)" "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/shm.c "$STATIC" "${LIBS[@]}" -o "$OUT/shm_asan"
check build_dlopen_c_asan_ubsan "build dlopen.c (ASan+UBSan)" "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/dlopen.c -ldl -o "$OUT/dlopen_asan"
check api_asan_ubsan "api (ASan+UBSan)" "$OUT/api_asan" "$MODEL"
check threads_asan_ubsan "threads (ASan+UBSan)" "$OUT/threads_asan"
check api_cpp_asan_ubsan "api.cpp (ASan+UBSan)" "$OUT/api_cpp_asan"
check dlopen_asan_ubsan "dlopen (ASan+UBSan)" "$OUT/dlopen_asan" "$SHARED"
check shm_asan_ubsan "shm (ASan+UBSan)" "$OUT/shm_asan" "$OUT"

echo "==> Rust side under -Zsanitizer=address (nightly, -Zbuild-std)"
RTARGET=x86_64-unknown-linux-gnu
ASAN_DIR=$TARGET/asan
rust_asan_reason=""
if [[ ${HZ_SKIP_RUST_ASAN:-0} == 1 ]]; then
    rust_asan_reason="HZ_SKIP_RUST_ASAN=1"
elif [[ $(uname -s)-$(uname -m) != Linux-x86_64 ]]; then
    rust_asan_reason="not x86_64 Linux"
elif ! cargo +nightly --version >/dev/null 2>&1; then
    rust_asan_reason="no nightly toolchain (rustup toolchain install nightly)"
elif ! [[ $(rustup component list --toolchain nightly --installed 2>/dev/null) == *rust-src* ]]; then
    rust_asan_reason="nightly has no rust-src (rustup component add --toolchain nightly rust-src)"
elif ! RUSTFLAGS=-Zsanitizer=address CARGO_TARGET_DIR=$ASAN_DIR \
    cargo +nightly build -Zbuild-std --target "$RTARGET" --locked >"$LOGS/rust_asan_build.log" 2>&1; then
    rust_asan_reason="the nightly -Zsanitizer=address -Zbuild-std build failed on this machine (log: $LOGS/rust_asan_build.log)"
fi
if [[ -n $rust_asan_reason ]]; then
    note "skipped the ASan-instrumented Rust build: $rust_asan_reason"
else
    RSTATIC=$ASAN_DIR/$RTARGET/debug/libharmonizer.a
    # gcc's libasan must accept rustc's instrumentation (ABI version check at link time).
    if ! "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/api.c "$RSTATIC" "${LIBS[@]}" -o "$OUT/api_rasan" \
        >"$LOGS/rust_asan_link.log" 2>&1; then
        note "skipped running with the ASan-instrumented Rust lib: $CC's libasan does not link with rustc's instrumentation (log: $LOGS/rust_asan_link.log)"
    elif ! [[ $(nm "$RSTATIC" 2>/dev/null) == *" U __asan_report"* ]]; then
        fail "Rust staticlib from -Zsanitizer=address has no ASan instrumentation ($RSTATIC)"
    else
        pass "build api.c (ASan+UBSan, Rust ASan: the staticlib is instrumented)"
        check build_threads_c_asan_ubsan_rust_asan "build threads.c (ASan+UBSan, Rust ASan)" "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/threads.c "$RSTATIC" "${LIBS[@]}" -o "$OUT/threads_rasan"
        check build_api_cpp_asan_ubsan_rust_asan "build api.cpp (ASan+UBSan, Rust ASan)" "$CXX" "${CXXFLAGS[@]}" "${SAN[@]}" ffi-tests/api.cpp "$RSTATIC" "${LIBS[@]}" -o "$OUT/api_cpp_rasan"
        canary() {
            "$CC" "${CFLAGS[@]}" "${SAN[@]}" ffi-tests/asan_canary.c "$RSTATIC" "${LIBS[@]}" -o "$OUT/asan_canary" || return 1
            if "$OUT/asan_canary"; then return 1; fi
            return 0
        }
        if canary >"$LOGS/asan_canary.log" 2>&1 && grep -q 'heap-buffer-overflow' "$LOGS/asan_canary.log"; then
            pass "canary: ASan reports an over-read inside the Rust side (asan_canary.c)"
        else
            fail "canary: ASan missed the deliberate over-read in asan_canary.c (log: $LOGS/asan_canary.log)"
        fi
        check api_asan_ubsan_rust_asan_debug "api (ASan+UBSan, Rust ASan debug)" "$OUT/api_rasan" "$MODEL"
        check threads_asan_ubsan_rust_asan_debug "threads (ASan+UBSan, Rust ASan debug)" "$OUT/threads_rasan"
        check api_cpp_asan_ubsan_rust_asan_debug "api.cpp (ASan+UBSan, Rust ASan debug)" "$OUT/api_cpp_rasan"
    fi
fi

# --- c) valgrind -------------------------------------------------------------------------------
echo "==> valgrind memcheck (zero errors, zero definite/indirect leaks)"
if ! command -v valgrind >/dev/null 2>&1; then
    fail "valgrind: not installed"
else
    check api_valgrind "api (valgrind)" "${VALGRIND[@]}" "$OUT/api" "$MODEL"
    check threads_valgrind "threads (valgrind, N=${HZ_THREADS_N_VALGRIND:-100000})" \
        env HZ_THREADS_N="${HZ_THREADS_N_VALGRIND:-100000}" "${VALGRIND[@]}" "$OUT/threads"
    check api_cpp_valgrind "api.cpp (valgrind)" "${VALGRIND[@]}" "$OUT/api_cpp"
    check dlopen_valgrind "dlopen (valgrind)" "${VALGRIND[@]}" "$OUT/dlopen" "$SHARED"
    # The engine side runs under valgrind; its producer children are exec'd natively.
    check shm_valgrind "shm (valgrind)" "${VALGRIND[@]}" "$OUT/shm" "$OUT"
fi

echo
echo "ffi-tests: $passed passed, $failed failed (build ${build_s}s, tests $((SECONDS - start_tests))s)"
if ((failed > 0)); then
    printf '  failed: %s\n' "${failed_names[@]}"
    exit 1
fi
