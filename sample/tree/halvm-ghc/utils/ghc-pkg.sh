#!/bin/sh
# ghc-pkg: the sample's stand-in package manager. The global package db is
# ../package.conf.d beside this script unless --global-package-db is given.
# recache writes package.cache: one "id sha256-of-conf" line per package.
db= cmd= pkg= simple=no
for a in "$@"; do
  case "$a" in
    --version) echo "GHC package manager version 8.0.2"; exit 0 ;;
    --global-package-db=*) db="${a#*=}" ;;
    --no-user-package-db|--no-user-package-conf|--global) ;;
    --simple-output) simple=yes ;;
    -*) echo "ghc-pkg (sample stand-in): unknown option $a" >&2; exit 1 ;;
    *) if [ -z "$cmd" ]; then cmd="$a"; else pkg="$a"; fi ;;
  esac
done
[ -n "$db" ] || db="$(dirname "$0")/../package.conf.d"
[ -d "$db" ] || { echo "ghc-pkg: no package db at $db" >&2; exit 1; }
case "$cmd" in
  recache)
    for f in "$db"/*.conf; do
      printf '%s %s\n' "$(sed -n 's/^id: *//p' "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)"
    done | LC_ALL=C sort > "$db/package.cache.tmp" && mv "$db/package.cache.tmp" "$db/package.cache" ;;
  list)
    for f in "$db"/*.conf; do
      n=$(sed -n 's/^name: *//p' "$f"); v=$(sed -n 's/^version: *//p' "$f")
      if [ -z "$pkg" ] || [ "$pkg" = "$n" ]; then echo "$n-$v"; fi
    done | if [ $simple = yes ]; then tr '\n' ' ' | sed 's/ $//'; echo; else sed 's/^/    /'; fi ;;
  check)
    [ -f "$db/package.cache" ] || { echo "ghc-pkg: $db/package.cache missing: run recache" >&2; exit 1; } ;;
  *) echo "ghc-pkg (sample stand-in): unsupported command $cmd" >&2; exit 1 ;;
esac
