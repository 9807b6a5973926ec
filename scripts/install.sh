#!/usr/bin/env bash
# Builds harmonizer in release and installs the C library under a prefix:
#
#     bash scripts/install.sh PREFIX          # e.g. /usr/local, $HOME/.local, /opt/harmonizer
#
# PREFIX/include/harmonizer.h                         the C API's header
# PREFIX/include/harmonizer.hpp                       C++17 RAII wrappers over it (header-only)
# PREFIX/lib/libharmonizer.a                          static library
# PREFIX/lib/libharmonizer.so.X.Y.Z                   shared library, soname libharmonizer.so.X (0.Y before 1.0),
# PREFIX/lib/libharmonizer.so.X -> .so.X.Y.Z            with the usual two symlinks
# PREFIX/lib/libharmonizer.so -> .so.X
# PREFIX/lib/pkgconfig/harmonizer.pc                  pkg-config (Libs.private for --static)
# PREFIX/lib/cmake/harmonizer/harmonizerConfig.cmake  CMake package: harmonizer::harmonizer (shared),
# PREFIX/lib/cmake/harmonizer/harmonizerConfigVersion.cmake       harmonizer::harmonizer_static
#
# Environment:
#   CARGO_TARGET_DIR      cargo's target directory (default: target, in the repository).
#   HZ_SONAME=0           install an unversioned libharmonizer.so with no DT_SONAME. The
#                         default (1) builds with `cargo rustc --release --locked --lib -- -C
#                         link-arg=-Wl,-soname,libharmonizer.so.X`: the flag reaches only the
#                         harmonizer crate's own link (the cdylib), not its dependencies or build
#                         scripts, as RUSTFLAGS would. Cargo fingerprints the extra flag, so the
#                         next plain `cargo build --release` relinks the library without it.
#   HZ_NATIVE_STATIC_LIBS the system libraries a static link needs (Libs.private and the static
#                         CMake target's INTERFACE_LINK_LIBRARIES). By default they are computed:
#                         the build asks rustc (`--print native-static-libs`), which knows what
#                         the standard library needs on this target; nothing is written by hand.
#
# Linux (ELF) only. Templates: packaging/*.in.
set -euo pipefail

usage() { echo "usage: bash scripts/install.sh PREFIX" >&2; exit 2; }
[[ $# -eq 1 && -n "$1" ]] || usage
case "$1" in -h | --help) usage ;; esac

# A relative PREFIX is relative to where the command was run, not to the repository.
case "$1" in /*) PREFIX_ARG=$1 ;; *) PREFIX_ARG=$PWD/$1 ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ "$(uname -s)" != Linux ]]; then
    echo "install.sh: only Linux is supported (found $(uname -s))" >&2
    exit 1
fi

mkdir -p "$PREFIX_ARG"
PREFIX=$(cd "$PREFIX_ARG" && pwd)

# --- what to install -----------------------------------------------------------------------

# version and description from the root Cargo.toml: the [package] table, or, for a field the
# package takes from the workspace (`version.workspace = true`), the [workspace.package] table
pkg_field() { # key table
    awk -v key="$1" -v table="$2" '
        /^\[/ { in_table = ($0 == "[" table "]") }
        in_table && $0 ~ "^" key "[ \t]*=[ \t]*\"" {
            sub(/^[^=]*=[ \t]*"/, ""); sub(/"[ \t]*$/, ""); print; exit
        }' Cargo.toml
}
field() { # key
    local v
    v=$(pkg_field "$1" package)
    [[ -n "$v" ]] || v=$(pkg_field "$1" workspace.package)
    printf '%s' "$v"
}
VERSION=$(field version)
DESCRIPTION=$(field description)
if [[ ! "$VERSION" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
    echo "install.sh: cannot read a MAJOR.MINOR.PATCH version from Cargo.toml (got '$VERSION')" >&2
    exit 1
fi
MAJOR=${BASH_REMATCH[1]} MINOR=${BASH_REMATCH[2]} PATCH=${BASH_REMATCH[3]}

# The checked-in header must be the one for this version.
hdr_macro() { awk -v m="HZ_VERSION_$1" '$1 == "#define" && $2 == m { print $3; exit }' include/harmonizer.h; }
HDR_VERSION="$(hdr_macro MAJOR).$(hdr_macro MINOR).$(hdr_macro PATCH)"
if [[ "$HDR_VERSION" != "$VERSION" ]]; then
    echo "install.sh: include/harmonizer.h says $HDR_VERSION, Cargo.toml says $VERSION;" \
        "regenerate the header (HZ_WRITE_HEADER=1 cargo build)" >&2
    exit 1
fi

SIZEOF_VOID_P=$(($(getconf LONG_BIT) / 8))

HZ_SONAME=${HZ_SONAME:-1}
if [[ "$HZ_SONAME" == 1 ]]; then
    # Before 1.0 a minor release may break the ABI (as the CMake version file assumes), so the
    # soname carries the minor version too: libharmonizer.so.0.1, then libharmonizer.so.1.
    if [[ "$MAJOR" == 0 ]]; then
        SONAME="libharmonizer.so.0.$MINOR"
    else
        SONAME="libharmonizer.so.$MAJOR"
    fi
    SHARED_FILE="libharmonizer.so.$VERSION"
else
    SONAME=""
    SHARED_FILE="libharmonizer.so"
fi

# --- build ---------------------------------------------------------------------------------

TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
build=(cargo rustc --release --locked --lib --)
[[ -z "$SONAME" ]] || build+=(-C "link-arg=-Wl,-soname,$SONAME")
build+=(--print native-static-libs)
echo "==> ${build[*]}"
if ! log=$("${build[@]}" 2>&1); then
    printf '%s\n' "$log" >&2
    exit 1
fi
# rustc prints the list as a note when it writes the staticlib (cargo replays it when the
# library is fresh).
COMPUTED=$(sed -n 's/.*note: native-static-libs: //p' <<<"$log" | tail -1)
NATIVE_STATIC_LIBS=${HZ_NATIVE_STATIC_LIBS:-$COMPUTED}
if [[ -z "$NATIVE_STATIC_LIBS" ]]; then
    echo "install.sh: rustc printed no native-static-libs; set HZ_NATIVE_STATIC_LIBS" >&2
    exit 1
fi
CMAKE_LINK_LIBS=""
for flag in $NATIVE_STATIC_LIBS; do
    CMAKE_LINK_LIBS+="${CMAKE_LINK_LIBS:+;}${flag#-l}"
done

OUT="$TARGET_DIR/release"
for f in libharmonizer.a libharmonizer.so; do
    [[ -f "$OUT/$f" ]] || { echo "install.sh: $OUT/$f was not built" >&2; exit 1; }
done
if [[ -n "$SONAME" ]] && command -v readelf >/dev/null; then
    got=$(readelf -d "$OUT/libharmonizer.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    if [[ "$got" != "$SONAME" ]]; then
        echo "install.sh: $OUT/libharmonizer.so has soname '$got', expected '$SONAME'" >&2
        exit 1
    fi
fi

# --- install -------------------------------------------------------------------------------

installed=()
put() { # put MODE SRC DEST
    mkdir -p "$(dirname "$3")"
    rm -f "$3" # replace, never write through, a library a running process may have mapped
    install -m "$1" "$2" "$3"
    installed+=("$3")
}
link() { # link TARGET NAME
    rm -f "$2"
    ln -s "$1" "$2"
    installed+=("$2 -> $1")
}
subst() { # subst TEMPLATE DEST: replace the @VARS@ (quoted replacements: no & expansion)
    local s
    s=$(<"$1")
    s=${s//@PREFIX@/"$PREFIX"}
    s=${s//@VERSION@/"$VERSION"}
    s=${s//@VERSION_MAJOR@/"$MAJOR"}
    s=${s//@VERSION_MINOR@/"$MINOR"}
    s=${s//@DESCRIPTION@/"$DESCRIPTION"}
    s=${s//@LIBS_PRIVATE@/"$NATIVE_STATIC_LIBS"}
    s=${s//@CMAKE_LINK_LIBS@/"$CMAKE_LINK_LIBS"}
    s=${s//@SHARED_FILE@/"$SHARED_FILE"}
    s=${s//@SONAME@/"$SONAME"}
    s=${s//@SIZEOF_VOID_P@/"$SIZEOF_VOID_P"}
    if grep -q '@[A-Z_]\+@' <<<"$s"; then
        echo "install.sh: $1 has an unknown placeholder: $(grep -o '@[A-Z_]\+@' <<<"$s" | head -1)" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$2")"
    printf '%s\n' "$s" >"$2.tmp"
    mv -f "$2.tmp" "$2"
    installed+=("$2")
}

LIB="$PREFIX/lib"
put 644 include/harmonizer.h "$PREFIX/include/harmonizer.h"
put 644 include/harmonizer.hpp "$PREFIX/include/harmonizer.hpp"
put 644 "$OUT/libharmonizer.a" "$LIB/libharmonizer.a"
put 755 "$OUT/libharmonizer.so" "$LIB/$SHARED_FILE"
if [[ -n "$SONAME" ]]; then
    link "$SHARED_FILE" "$LIB/$SONAME"
    link "$SONAME" "$LIB/libharmonizer.so"
fi
subst packaging/harmonizer.pc.in "$LIB/pkgconfig/harmonizer.pc"
subst packaging/harmonizerConfig.cmake.in "$LIB/cmake/harmonizer/harmonizerConfig.cmake"
subst packaging/harmonizerConfigVersion.cmake.in "$LIB/cmake/harmonizer/harmonizerConfigVersion.cmake"

echo "==> installed harmonizer $VERSION under $PREFIX"
printf '    %s\n' "${installed[@]}"
echo "    soname: ${SONAME:-none (HZ_SONAME=0)}"
echo "    static link needs: $NATIVE_STATIC_LIBS"
