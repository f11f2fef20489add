#!/bin/sh
# Build the sample programs into src/vmsim/samples/ (the binaries shipped with the
# package, so `vmsim run hello` works without a compiler).
#   examples/build.sh            build every sample with musl-gcc -static -O2
#   examples/build.sh OUTDIR     build into OUTDIR instead (the tests rebuild this way)
# Needs musl-gcc (Debian: apt-get install musl-tools).  CC=gcc builds with glibc instead.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../src/vmsim/samples}
cc=${CC:-musl-gcc}
mkdir -p "$out"
for src in "$here"/*.c; do
    name=$(basename "$src" .c)
    "$cc" -static -O2 -Wall -Wextra -Werror -s -o "$out/$name" "$src"
done
echo "built $(ls "$here"/*.c | wc -l) samples into $out"
