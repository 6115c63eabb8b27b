#!/usr/bin/env bash
# scripts/bench-section.sh NAME FILE: replace the block between "<!-- BEGIN NAME" and
# "<!-- END NAME" in BENCHMARKS.md with FILE (which carries its own markers); hand-written notes
# outside the markers stay.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 file=$2
grep -q "^<!-- BEGIN $name" BENCHMARKS.md || { cat "$file" >> BENCHMARKS.md; exit 0; }
awk -v f="$file" -v name="$name" '
  $0 ~ "^<!-- BEGIN " name { while ((getline l < f) > 0) print l; skip = 1; next }
  $0 ~ "^<!-- END " name { skip = 0; next }
  !skip' BENCHMARKS.md > BENCHMARKS.md.tmp
mv BENCHMARKS.md.tmp BENCHMARKS.md
