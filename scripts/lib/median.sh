# scripts/lib/median.sh: `median [NUMBER...]` prints the median of its arguments, or of the
# numbers on standard input (one per line, or separated by spaces) when it has none; nothing
# for no numbers. Sourced by the bench scripts (run from the repository's root).
median() {
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; else tr ' ' '\n'; fi | grep -v '^$' | sort -g |
    awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
