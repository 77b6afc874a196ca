# Shared by the command-line tests: `source` it, then call the helpers.
# Usage of each test script: SCRIPT BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source_dir=$2
llmfuse=$build/llmfuse
scratch=$(mktemp -d /tmp/llmfuse-cli-XXXXXX)
cleanup_hooks=()
cleanup() {
  local hook
  for hook in "${cleanup_hooks[@]}"; do eval "$hook" || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
# Tests that mount FUSE filesystems need root and a usable /dev/fuse.
require_fuse() {
  [ "$(id -u)" = 0 ] || skip "FUSE mounts need root"
  [ -c /dev/fuse ] && [ -r /dev/fuse ] || skip "/dev/fuse is not usable"
  command -v fusermount3 >/dev/null || skip "fusermount3 is missing"
}
# Runs a command that must fail: checks the exit code and that stderr
# contains the expected words.
expect_failure() {
  local code=$1 words=$2; shift 2
  local status=0
  "$@" >"$scratch/out" 2>"$scratch/err" || status=$?
  [ "$status" = "$code" ] || fail "$* exited $status, expected $code; stderr: $(cat "$scratch/err")"
  grep -qF -- "$words" "$scratch/err" || fail "$*: stderr lacks '$words': $(cat "$scratch/err")"
}
