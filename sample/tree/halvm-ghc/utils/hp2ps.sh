#!/bin/sh
# hp2ps: the sample's stand-in heap-profile converter.
echo "hp2ps (sample stand-in): converting heap profiles is not supported" >&2
exit 1
