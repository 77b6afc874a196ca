#!/usr/bin/env bash
# Filesystem image benchmark: the same trees packed by mksquashfs (gzip, xz,
# zstd -19), tar | xz -9e, and llmfuse mkfs, in the same run.  Prints a
# Markdown table of image sizes and build times, and llmfuse's ratio to
# squashfs-xz.
#
#   bench/images.sh [-m MODEL] [-T THREADS] [TREE...]
# Default trees (each copied to a scratch directory first): three packages
# held out of the training corpus, extracted from their .deb files
# (CORPUS=/work/corpus by default, built by scripts/corpus), a slice of
# /usr/share/doc, and /etc.  Needs build/llmfuse and mksquashfs
# (apt-get install squashfs-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
model=""
threads=2
while getopts "m:T:" option; do
  case $option in
    m) model="-m $OPTARG" ;;
    T) threads=$OPTARG ;;
    *) exit 1 ;;
  esac
done
shift $((OPTIND - 1))
llmfuse=$PWD/build/llmfuse
[ -x "$llmfuse" ] || { echo "build/llmfuse is missing: run scripts/quickstart" >&2; exit 1; }
command -v mksquashfs >/dev/null || { echo "mksquashfs is missing: apt-get install squashfs-tools" >&2; exit 1; }
corpus=${CORPUS:-/work/corpus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name=path pairs of the trees to measure
trees=()
if [ $# -gt 0 ]; then
  for tree in "$@"; do trees+=("$(basename "$tree")=$tree"); done
else
  for package in python3-requests python3-jinja2 bash-completion; do
    deb=$(ls "$corpus"/debs/"${package}"_*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$deb" ] || { echo "($package: no .deb in $corpus/debs, left out)" >&2; continue; }
    dpkg-deb -x "$deb" "$work/$package"
    trees+=("$package (held out)=$work/$package")
  done
  mkdir -p "$work/doc"
  # a fixed slice: the first 60 package directories in name order
  for directory in $(ls /usr/share/doc | sort | head -n 60); do
    cp -a "/usr/share/doc/$directory" "$work/doc/" 2>/dev/null || true
  done
  trees+=("/usr/share/doc, 60 packages=$work/doc")
  cp -a /etc "$work/etc" 2>/dev/null || true
  trees+=("/etc=$work/etc")
fi

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
measure() { # measure OUTPUT COMMAND...: prints "bytes seconds"
  local output=$1 start
  shift
  start=$(now)
  "$@" >/dev/null 2>&1 || true
  echo "$(stat -c %s "$output" 2>/dev/null || echo 0) $(elapsed "$start")"
}

echo "| tree | files | bytes | squashfs gzip | squashfs xz | squashfs zstd -19 | tar.xz -9e | llmfuse | llmfuse / squashfs-xz |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for entry in "${trees[@]}"; do
  name=${entry%%=*} tree=${entry#*=}
  files=$(find "$tree" -type f | wc -l)
  bytes=$(du -sb --apparent-size "$tree" | cut -f1)
  row="| $name | $files | $bytes |"
  declare -A result=()
  for method in gzip xz zstd; do
    options=(-comp "$method" -noappend -nopad -quiet -processors "$threads")
    [ "$method" = zstd ] && options+=(-Xcompression-level 19)
    [ "$method" = xz ] && options+=(-Xdict-size 100%)
    read -r size seconds < <(measure "$work/image.$method" mksquashfs "$tree" "$work/image.$method" "${options[@]}")
    result[$method]=$size
    row+=" $size ($(printf %.1f "$seconds") s) |"
  done
  read -r size seconds < <(measure "$work/tree.tar.xz" \
    bash -c "tar -C '$tree' -cf - . | xz -9e -T$threads >'$work/tree.tar.xz'")
  row+=" $size ($(printf %.1f "$seconds") s) |"
  read -r size seconds < <(measure "$work/image.llmfs" \
    "$llmfuse" mkfs "$tree" "$work/image.llmfs" $model --threads "$threads" -q --force)
  "$llmfuse" fsck $model "$work/image.llmfs" >/dev/null || { echo "fsck failed on $name" >&2; exit 1; }
  row+=" **$size** ($(printf %.1f "$seconds") s) | $(echo "scale=3; $size / ${result[xz]}" | bc) |"
  echo "$row"
  rm -f "$work"/image.* "$work/tree.tar.xz"
done
echo
echo "Sizes in bytes (build time on $threads threads); llmfuse model: ${model:-default (base)}."
