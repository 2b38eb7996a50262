#!/bin/sh
# Installs the C library into PREFIX: lib/librmbus_c.so and .a, the
# headers in include/rmbus/ (mbus.h, mbus_parser.h, rmbus.h) and
# lib/pkgconfig/rmbus-c.pc.
#
#   crates/rmbus-c/install.sh PREFIX              builds (release) and installs
#   crates/rmbus-c/install.sh --built DIR PREFIX  installs what DIR holds
#                                                 (e.g. target/debug), no build
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
built=
if [ "${1:-}" = "--built" ]; then
    built=$2
    shift 2
fi
if [ $# -ne 1 ]; then
    echo "usage: $0 [--built DIR] PREFIX" >&2
    exit 2
fi
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
if [ -z "$built" ]; then
    (cd "$root" && cargo build --locked --release -p rmbus-c)
    built="${CARGO_TARGET_DIR:-$root/target}/release"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
install -d "$prefix/lib/pkgconfig" "$prefix/include/rmbus"
install -m 755 "$built/librmbus_c.so" "$prefix/lib/librmbus_c.so"
install -m 644 "$built/librmbus_c.a" "$prefix/lib/librmbus_c.a"
install -m 644 "$here/include/mbus.h" "$here/include/mbus_parser.h" "$here/include/rmbus.h" \
    "$prefix/include/rmbus/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/rmbus-c.pc.in" \
    > "$prefix/lib/pkgconfig/rmbus-c.pc"
echo "installed rmbus-c $version into $prefix (pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
