# Sourced by the benchmarks of the model-implemented filesystem: the model
# to measure (models/fs.gguf), build/llmfuse (or $LLMFUSE), a scratch directory
# $work, and cleanup at exit of every mount point listed in $mountpoints.
# Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=models/fs.gguf
llmfuse=${LLMFUSE:-$PWD/build/llmfuse}
[ -x "$llmfuse" ] || { echo "$llmfuse is missing: run scripts/quickstart" >&2; exit 1; }
work=$(mktemp -d)
mountpoints=()
cleanup() {
  for mountpoint in "${mountpoints[@]}"; do fusermount3 -u -q "$mountpoint" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export TZ=UTC LC_ALL=C
umask 022
