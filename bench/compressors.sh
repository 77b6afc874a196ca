#!/usr/bin/env bash
# Compression benchmark: llmencode against the classic compressors, measured
# in the same run on the same files. Prints a Markdown table of compressed
# sizes per file, the total over the Canterbury text files, and speeds.
#
#   bench/compressors.sh [-m MODEL] [-T THREADS] [FILE...]
# Default files: ../shared/bench/canterbury/*. Needs build/llmencode
# (scripts/quickstart builds it).
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
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(../shared/bench/canterbury/*)
llmencode=build/llmencode
[ -x "$llmencode" ] || { echo "build/llmencode is missing: run scripts/quickstart" >&2; exit 1; }
text_files=" alice29.txt asyoulik.txt cp.html fields.c grammar.lsp lcet10.txt plrabn12.txt xargs.1 "

# Every Debian 12 compressor of note; a missing one is left out (install:
# apt-get install lzip p7zip-full zpaq).
compressors=()
for c in "gzip -9" "bzip2 -9" "xz -9e" "lzip -9" "zstd -19" "brotli -q 11" "7z ppmd" "zpaq -m5" "llmencode"; do
  case $c in
    "7z ppmd") tool=7z ;;
    llmencode) tool=$llmencode ;;
    *) tool=${c%% *} ;;
  esac
  command -v "$tool" >/dev/null && compressors+=("$c") || echo "($c is not installed: left out)" >&2
done
declare -A size total seconds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

printf '| file | original |'
for c in "${compressors[@]}"; do printf ' %s |' "$c"; done
printf '\n|---|---:|'
for c in "${compressors[@]}"; do printf -- '---:|'; done
printf '\n'
original_total=0
for file in "${files[@]}"; do
  [ -f "$file" ] || continue
  name=$(basename "$file")
  bytes=$(stat -c %s "$file")
  case $text_files in *" $name "*) original_total=$((original_total + bytes)) ;; esac
  printf '| %s | %d |' "$name" "$bytes"
  for c in "${compressors[@]}"; do
    start=$(now)
    case $c in
      llmencode) $llmencode $model -T "$threads" -c "$file" >"$work/out" ;;
      brotli*) brotli -q 11 -c "$file" >"$work/out" ;;
      "7z ppmd") rm -f "$work/out.7z"
                 7z a -bd -m0=PPMd:mem=256m:o=16 "$work/out.7z" "$file" >/dev/null && mv "$work/out.7z" "$work/out" ;;
      "zpaq -m5") rm -f "$work/out.zpaq"
                  zpaq a "$work/out.zpaq" "$file" -method 5 >/dev/null 2>&1 && mv "$work/out.zpaq" "$work/out" ;;
      *) $c -c "$file" >"$work/out" 2>/dev/null ;;
    esac
    end=$(now)
    s=$(stat -c %s "$work/out")
    seconds[$c]=$(echo "${seconds[$c]:-0} + $end - $start" | bc)
    case $text_files in *" $name "*) total[$c]=$(( ${total[$c]:-0} + s )) ;; esac
    if [ "$c" = llmencode ]; then
      start=$(now)
      $llmencode $model -T "$threads" -d -c "$work/out" | cmp -s - "$file" || { echo "round trip of $name failed" >&2; exit 1; }
      end=$(now)
      seconds[unllmencode]=$(echo "${seconds[unllmencode]:-0} + $end - $start" | bc)
    fi
    printf ' %d |' "$s"
  done
  printf '\n'
done
printf '| **text total** | %d |' "$original_total"
for c in "${compressors[@]}"; do printf ' **%d** |' "${total[$c]:-0}"; done
printf '\n\n'
all_bytes=0
for file in "${files[@]}"; do [ -f "$file" ] && all_bytes=$((all_bytes + $(stat -c %s "$file"))); done
echo "Speed over all files ($all_bytes bytes), compression:"
for c in "${compressors[@]}"; do
  printf '  %-14s %8.3f MB/s\n' "$c" "$(echo "$all_bytes / ${seconds[$c]} / 1000000" | bc -l)"
done
printf '  %-14s %8.3f MB/s\n' "llmencode -d" "$(echo "$all_bytes / ${seconds[unllmencode]} / 1000000" | bc -l)"
if [ -n "${total[xz -9e]:-}" ]; then
  printf '\nllmencode / xz -9e on the text files: %.3f\n' "$(echo "${total[llmencode]} / ${total[xz -9e]}" | bc -l)"
fi
