#!/usr/bin/env bash
# Counts the user-mode instructions `ca-notify run` spends per record in the e2e bench's
# `overhead` scenario (no latency, no setting changed), under valgrind's cachegrind: a
# count does not drift with the machine the way CPU time does (docs/benchmarks.md,
# "counting instructions"). The difference between a small and a large run is what one
# more record costs; the rest is paid once per run.
#
#   scripts/count-instructions.sh [BINARY] [SMALL] [LARGE]
#
# BINARY defaults to the release build (built here when missing), SMALL to 5000 records,
# LARGE to 20000. Needs valgrind (`apt-get install valgrind`); takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

small=${2:-5000}
large=${3:-20000}
if [ -n "${1:-}" ]; then
    binary=$(realpath "$1")
else
    cargo build --release -p ca-notify
    binary=$(realpath target/release/ca-notify)
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The bench starts the binary for `run` and for the simulators' helpers; only `run` is
# counted.
cat >"$work/wrap.sh" <<EOF
#!/bin/sh
case "\$1" in
  run) exec valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$work/out.\$\$" "$binary" "\$@" ;;
  *) exec "$binary" "\$@" ;;
esac
EOF
chmod +x "$work/wrap.sh"

count() {
    rm -f "$work"/out.*
    E2E_ONLY=overhead E2E_OVERHEAD_RECORDS=$1 E2E_BINARY="$work/wrap.sh" \
        cargo bench -q -p ca-notify-integration-tests --bench e2e >"$work/bench.$1" 2>&1 \
        || { cat "$work/bench.$1" >&2; exit 1; }
    awk '/^summary:/ { print $2 }' "$work"/out.*
}

at_small=$(count "$small")
at_large=$(count "$large")
awk -v s="$small" -v l="$large" -v a="$at_small" -v b="$at_large" 'BEGIN {
    per = (b - a) / (l - s)
    printf "%d records: %d instructions; %d records: %d instructions\n", s, a, l, b
    printf "per record: %.0f; once per run: %.0f million\n", per, (a - per * s) / 1e6
}'
