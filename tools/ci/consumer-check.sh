#!/usr/bin/env bash
# Install a build into a scratch prefix and build a program outside the tree
# against it with `pkg-config --cflags --libs sigma`; run it.
set -euo pipefail
build=$1; work=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
meson install -C "$build" --destdir "$work/dest" > "$work/install.log"
# meson's destdir keeps the configured prefix below it
cfg_prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
ln -s "$work/dest$cfg_prefix" "$prefix"
pcdir=$(dirname "$(find "$prefix/" -name sigma.pc | head -n 1)")
test -n "$pcdir"
sed -i "s|^prefix=.*|prefix=$prefix|" "$pcdir/sigma.pc"
cp "$root/tests/abi/consumer.c" "$work/consumer.c"
cd "$work"
export PKG_CONFIG_PATH="$pcdir"
cc -std=c11 -Wall -Wextra -Werror consumer.c -o consumer $(pkg-config --cflags --libs sigma)
libdir=$(pkg-config --variable=libdir sigma)
LD_LIBRARY_PATH="$libdir" ./consumer
# the binary must depend on the versioned SONAME
readelf -d consumer | grep -q 'NEEDED.*libsigma.so.0'
echo "consumer ok"
