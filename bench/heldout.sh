#!/usr/bin/env bash
# "Filesystem text" benchmark on the corpus's held-out packages (packages
# the shipped model never saw, corpus/heldout-packages.txt): per kind of
# file (source code by language, man pages, configuration, changelogs,
# documentation), each file compressed on its own, as a filesystem stores
# it, by every compressor in the same run. Prints a Markdown table of total
# compressed bytes per kind and llmencode's ratio to xz -9e.
#
#   bench/heldout.sh CORPUS_DIR [BYTES_PER_KIND (150000)]
# CORPUS_DIR is scripts/corpus's output. Files of a kind are taken in
# heldout.tsv's order until BYTES_PER_KIND; kinds with fewer than 5 files
# are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:?usage: bench/heldout.sh CORPUS_DIR [BYTES_PER_KIND]}
budget=${2:-150000}
llmencode=build/llmencode
[ -x "$llmencode" ] || { echo "build/llmencode is missing: run scripts/quickstart" >&2; exit 1; }
compressors=("gzip -9" "xz -9e" "zstd -19" "brotli -q 11" "llmencode")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

compressed_size() { # COMPRESSOR FILE
  case $1 in
    llmencode) "$llmencode" -c "$2" | wc -c ;;
    brotli*) brotli -q 11 -c "$2" | wc -c ;;
    *) $1 -c "$2" | wc -c ;;
  esac
}

printf '| kind | files | bytes |'
for c in "${compressors[@]}"; do printf ' %s |' "$c"; done
printf ' llmencode / xz |\n|---|---:|---:|'
for c in "${compressors[@]}"; do printf -- '---:|'; done
printf -- '---:|\n'
declare -A grand
grand_bytes=0
for kind in $(tail -n +2 "$corpus/heldout.tsv" | cut -f2 | sort | uniq -c | awk '$1 >= 5 {print $2}'); do
  files=() bytes=0
  while IFS=$'\t' read -r document file_kind _; do
    [ "$file_kind" = "$kind" ] || continue
    [ "$bytes" -lt "$budget" ] || break
    files+=("$document")
    bytes=$((bytes + $(stat -c %s "$document")))
  done < <(tail -n +2 "$corpus/heldout.tsv")
  declare -A sum=()
  for c in "${compressors[@]}"; do
    sum[$c]=0
    for file in "${files[@]}"; do
      sum[$c]=$(( ${sum[$c]} + $(compressed_size "$c" "$file") ))
    done
    grand[$c]=$(( ${grand[$c]:-0} + ${sum[$c]} ))
  done
  grand_bytes=$((grand_bytes + bytes))
  printf '| %s | %d | %d |' "$kind" "${#files[@]}" "$bytes"
  for c in "${compressors[@]}"; do printf ' %d |' "${sum[$c]}"; done
  printf ' %.3f |\n' "$(echo "${sum[llmencode]} / ${sum[xz -9e]}" | bc -l)"
done
printf '| **all** | | %d |' "$grand_bytes"
for c in "${compressors[@]}"; do printf ' **%d** |' "${grand[$c]}"; done
printf ' **%.3f** |\n' "$(echo "${grand[llmencode]} / ${grand[xz -9e]}" | bc -l)"
