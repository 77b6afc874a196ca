#!/usr/bin/env bash
# Appends through real mounts of the model-implemented filesystem: for each
# two-word phrase of bench/appends.txt (common English words; the copying
# a small model does worst is a second real word in a row), a fresh mount
# with --verify runs `mkdir notes; echo hello >notes/a.txt; echo PHRASE
# >>notes/a.txt; cat notes/a.txt` and the output is compared with what
# any filesystem shows. Counts the phrases read back right (and how many
# of them second opinions saved), wrong (bytes other than written: the
# engine's checks should make this 0) and failed (EIO from a refused
# answer).
#
#   bench/engine_appends.sh [-m MODEL] [-r RETRIES (4)]
source "$(dirname "$0")/engine_common.bash"
retries=4
while getopts "m:r:" option; do
  case $option in
    m) model=$OPTARG ;;
    r) retries=$OPTARG ;;
    *) exit 1 ;;
  esac
done
mnt=$work/mnt
make_mountpoint mnt
right=0 saved=0 wrong=0 failed=0
while IFS= read -r phrase; do
  serve "$mnt" "$work/engine.log" --engine=model -m "$model" --verify --retries "$retries"
  output=$(cd "$mnt" && { mkdir notes && echo hello >notes/a.txt &&
    echo "$phrase" >>notes/a.txt && cat notes/a.txt; } 2>&1) || true
  fusermount3 -u "$mnt"
  wait
  if [ "$output" = "hello
$phrase" ]; then
    right=$((right + 1))
    grep -q 'answers it' "$work/engine.log" && saved=$((saved + 1))
  elif grep -q 'Input/output error' <<<"$output"; then
    failed=$((failed + 1))
  else
    wrong=$((wrong + 1))
    printf 'wrong: %s -> %s\n' "$phrase" "$(tr '\n' '|' <<<"$output")"
  fi
done <bench/appends.txt
echo "model: $model, --retries $retries, $(wc -l <bench/appends.txt) appends:" \
  "right $right ($saved by second opinions), wrong $wrong, failed with EIO $failed"
