# Sourced by the benchmarks of the model-implemented filesystem: the model
# to measure (models/fs.gguf), build/llmfuse (or $LLMFUSE), a scratch directory
# $work, mount points made by `make_mountpoint` and unmounted at exit, and
# `serve` to start an engine on one. Needs root and /dev/fuse.
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

make_mountpoint() { # NAME: makes $work/NAME, unmounted at exit
  mkdir "$work/$1"
  mountpoints+=("$work/$1")
}

serve() { # MOUNTPOINT LOG ENGINE-OPTIONS...: an engine in the background, mounted
  local mountpoint=$1 log=$2
  shift 2
  "$llmfuse" mount "$@" -f "$mountpoint" 2>"$log" &
  for _ in $(seq 100); do grep -qs " $mountpoint fuse" /proc/mounts && return; sleep 0.1; done
  echo "the engine did not mount: $(cat "$log")" >&2
  exit 1
}
