#!/bin/sh
# happy: the sample's stand-in parser generator; answers the version check.
case "$1" in
  --version) echo "Happy Version 1.19.12 Copyright (c) 1993-1996 Andy Gill, Simon Marlow (c) 1997-2005 Simon Marlow" ;;
  *) echo "happy (sample stand-in): only --version" >&2; exit 1 ;;
esac
