#!/bin/sh
# ghc-stage1: the in-place stage-1 compiler (runs from the build tree).
d=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 1
exec "$d/../../driver/ghc.pl" -B"$d/../lib" "$@"
