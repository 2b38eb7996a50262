#!/bin/sh
# By hand, not in CI: tests/c/ucl_component.c built twice, against UCL
# common 1.2.19 (its own headers and libuclmmbase.a) and against rmbus, and
# run against each other in both roles, inside a network namespace of its
# own (UCL sends host-local multicast by the default route; there, that is
# the namespace's loopback). Needs root (unshare -n) and a C compiler.
#
#   crates/rmbus-c/ucl-interop.sh UCL_SOURCE_DIR [des]
#
# UCL_SOURCE_DIR is a checkout of UCL common 1.2.19 (e.g. the GitHub mirror
# soohyunc/common); it is configured and built in place. The library must
# be built first: cargo build -p rmbus-c.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ucl=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$ucl/src/libuclmmbase.a" ]; then
    (cd "$ucl" && ./configure --disable-ipv6 >/dev/null && cd src && make >/dev/null)
fi
# UCL programs get xfree from UCL's memory.h, which needs its config header.
cc -std=gnu99 -D_GNU_SOURCE -I "$ucl/src" -include "$ucl/src/config_unix.h" \
    -include "$ucl/src/memory.h" "$here/tests/c/ucl_component.c" "$ucl/src/libuclmmbase.a" \
    -o "$work/component_ucl"
lib="${CARGO_TARGET_DIR:-$root/target}/debug"
cc -std=c99 -D_POSIX_C_SOURCE=200809L -I "$here/include" "$here/tests/c/ucl_component.c" \
    -L "$lib" -lrmbus_c -Wl,-rpath,"$lib" -o "$work/component_rmbus"

# UCL takes $MBUS as a directory or a path ending in .mbus.
if [ "${2:-}" = des ]; then cipher=des; else cipher=none; fi
"$lib/rmbus" keygen --hash md5 --cipher "$cipher" -o "$work/.mbus" 2>/dev/null \
    || cargo run -q --manifest-path "$root/Cargo.toml" -- keygen --hash md5 --cipher "$cipher" -o "$work/.mbus"
sed -i 's/^SCOPE=.*/SCOPE=HOSTLOCAL/' "$work/.mbus"

cat > "$work/pair.sh" <<'PAIR'
#!/bin/sh
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
cd "$WORK"
timeout 30 "./component_$2" ui > ui.out 2>&1 & ui=$!
timeout 30 "./component_$1" engine > engine.out 2>&1; engine=$?
wait $ui; ui=$?
echo "== engine built with $1 (exit $engine), ui built with $2 (exit $ui)"
sed 's/^/   engine: /' engine.out; sed 's/^/   ui:     /' ui.out
[ $engine -eq 0 ] && [ $ui -eq 0 ]
PAIR
chmod +x "$work/pair.sh"
status=0
for pair in "ucl rmbus" "rmbus ucl" "ucl ucl"; do
    # shellcheck disable=SC2086
    WORK="$work" MBUS="$work/.mbus" unshare -n "$work/pair.sh" $pair || status=1
done
exit $status
