#!/usr/bin/env bash
# Per-command latency of the model-implemented filesystem: a shell session,
# from an empty filesystem or a given state, through a real mount of `llmfuse mount --engine=model
# --verify`, next to the same session through the exact engine (the
# simulator's answers, which tests/cli/engine_mount.sh holds to tmpfs).
# Prints a Markdown table: each command's wall time on the model's mount and
# whether what the user saw (output and exit status) is the exact engine's;
# then the engine's --verify summary.  Needs root and /dev/fuse.
#
#   bench/engine_latency.sh [-m MODEL] [-s STATE.xml]
#     MODEL: models/fs.gguf; STATE: none (empty)
source "$(dirname "$0")/engine_common.bash"
state=
while getopts "m:s:" option; do
  case $option in
    m) model=$OPTARG ;;
    s) state=$OPTARG ;;
    *) exit 1 ;;
  esac
done
exact=$work/exact model_mount=$work/model
make_mountpoint exact
make_mountpoint model
if [ -n "$state" ]; then
  cp "$state" "$work/exact.xml"
  cp "$state" "$work/model.xml"
fi
serve "$exact" "$work/exact.log" --engine=exact --state "$work/exact.xml"
serve "$model_mount" "$work/model.log" --engine=model -m "$model" --verify --state "$work/model.xml"

commands=(
  'ls -l --time-style=+ MNT'
  'mkdir MNT/docs'
  'echo hello > MNT/docs/a.txt'
  'cat MNT/docs/a.txt'
  'echo more >> MNT/docs/a.txt'
  'ls -l --time-style=+ MNT/docs'
  'chmod 600 MNT/docs/a.txt'
  'mv MNT/docs/a.txt MNT/docs/b.txt'
  'ln -s b.txt MNT/docs/link'
  'cat MNT/docs/link'
  'rm MNT/docs/b.txt'
  'readlink MNT/docs/link'
  'rm MNT/docs/link'
  'rmdir MNT/docs'
  'ls -l --time-style=+ MNT'
)
run() { # COMMAND MOUNTPOINT: what the user sees, the mount point written MNT
  local status=0 output
  output=$(bash -c "${1//MNT/$2}" 2>&1) || status=$?
  printf '%s\n[exit %d]' "${output//$2/MNT}" "$status"
}
echo "| command | ms | as the exact engine |"
echo "|---|---:|---|"
for command in "${commands[@]}"; do
  expected=$(run "$command" "$exact")
  start=$EPOCHREALTIME
  actual=$(run "$command" "$model_mount")
  end=$EPOCHREALTIME
  milliseconds=$(echo "($end - $start) * 1000 / 1" | bc)
  if [ "$actual" = "$expected" ]; then
    verdict=same
  else
    verdict="differs: $(head -n 1 <<<"$actual" | tr '|' '/')"
  fi
  echo "| \`$command\` | $milliseconds | $verdict |"
done
fusermount3 -u "$model_mount"
fusermount3 -u "$exact"
wait
echo
echo "model: $model, state: ${state:-empty}; $(grep -o '[0-9]* operations, .*' "$work/model.log" | tail -n 1)"
