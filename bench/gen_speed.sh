#!/usr/bin/env bash
# Examples per second of `llmfuse gen`, through the loopback mount and with
# plain system calls (--no-mount), on the same seed: the two files must be
# the same bytes.  Needs root; the mount also needs /dev/fuse (without it
# both runs use plain system calls, as the first line then says).
# Usage: bench/gen_speed.sh [BUILD_DIR (build)] [EXAMPLES (5000)]
set -euo pipefail
build=${1:-build}
examples=${2:-5000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for mode in mount no-mount; do
  flags=()
  [ "$mode" = no-mount ] && flags=(--no-mount)
  start=$(date +%s.%N)
  "$build/llmfuse" gen --count "$examples" --seed 1 --out "$work/$mode.jsonl" "${flags[@]}" \
    2>"$work/$mode.stats"
  end=$(date +%s.%N)
  how=$(grep -o 'through the loopback mount\|plain system calls' "$work/$mode.stats")
  awk -v mode="$mode" -v n="$examples" -v start="$start" -v end="$end" -v how="$how" \
    'BEGIN { printf "%-9s %7d examples in %7.2f s: %8.0f examples/s (%s)\n", mode, n, end - start, n / (end - start), how }'
done
if cmp -s "$work/mount.jsonl" "$work/no-mount.jsonl"; then
  echo "both runs wrote the same $(wc -c <"$work/mount.jsonl") bytes"
else
  echo "the two runs differ: a bug" >&2
  exit 1
fi
