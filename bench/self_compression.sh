#!/usr/bin/env bash
# Self-compression: filesystem states as XML (the seed's toy state and states
# the simulator generates) compressed by the classic tools, by squashfs with
# the seed's method, and by llmencode --format=raw with the pretrained and the
# fine-tuned model.  Prints a Markdown table of sizes in bytes.
#
#   bench/self_compression.sh [-m MODEL]...   (default: base, and models/fs.gguf when present)
# The seed's figures for its toy state: squashfs 171, Qwen3-4B base 38,
# fine-tuned 21 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
models=()
while getopts "m:" option; do
  case $option in
    m) models+=("$OPTARG") ;;
    *) exit 1 ;;
  esac
done
[ ${#models[@]} -gt 0 ] || { models=(base); [ -f models/fs.gguf ] && models+=(models/fs.gguf); }
llmfuse=build/llmfuse llmencode=build/llmencode
[ -x "$llmencode" ] || { echo "build/llmencode is missing: run scripts/quickstart" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The states: the toy, then five generated ones of growing size (write
# completions of a seed no training run used, 424242, picked by size from
# 400 examples of the generator's defaults of 2026-11-29; kept in
# tests/golden/states, which tests/cli/self_compression.sh checks).
cp tests/golden/toy.xml "$work/toy.xml"
states=(toy)
for k in 1 2 3 4 5; do
  cp "tests/golden/states/state$k.xml" "$work/state$k.xml"
  states+=("state$k")
done

# squashfs as the seed measured it: the last non-zero byte of a gzip image
# of the tree, minus the 96-byte superblock.
squashfs_size() {
  rm -rf "$work/tree" "$work/image.sqsh"
  "$llmfuse" xml --extract "$1" "$work/tree"
  mksquashfs "$work/tree" "$work/image.sqsh" -comp gzip -noappend -quiet >/dev/null
  python3 -c 'import sys; d=open(sys.argv[1],"rb").read().rstrip(b"\0"); print(len(d) - 96)' "$work/image.sqsh"
}

printf '| state | XML bytes | gzip -9 | xz -9e | zstd -19 | brotli -q 11 | squashfs (gzip) |'
for model in "${models[@]}"; do printf ' llmencode raw, %s |' "$(basename "$model")"; done
printf '\n|---|---:|---:|---:|---:|---:|---:|'
for model in "${models[@]}"; do printf -- '---:|'; done
printf '\n'
for state in "${states[@]}"; do
  file=$work/$state.xml
  row="| $state | $(stat -c %s "$file") | $(gzip -9n <"$file" | wc -c) | $(xz -9e <"$file" | wc -c)"
  row+=" | $(zstd -19 -q -c "$file" | wc -c)"
  if command -v brotli >/dev/null; then row+=" | $(brotli -q 11 -c "$file" | wc -c)"; else row+=" | -"; fi
  if command -v mksquashfs >/dev/null; then row+=" | $(squashfs_size "$file")"; else row+=" | -"; fi
  for model in "${models[@]}"; do
    "$llmencode" --format=raw -m "$model" -c "$file" >"$work/raw"
    "$llmencode" -d --format=raw -m "$model" -c "$work/raw" | cmp -s - "$file" ||
      { echo "llmencode round trip failed on $state with $model" >&2; exit 1; }
    row+=" | $(stat -c %s "$work/raw")"
  done
  echo "$row |"
done
