#!/usr/bin/env bash
# Transformer engine speed (issue 5): tokens/s and KB/s of `llmencode -m
# MODEL.gguf` compressing and decompressing with 1 and 2 threads, for random
# models of about 1M, 5M and 20M parameters with a byte-level BPE vocabulary
# of 8,192 tokens trained on Debian's license texts, then the share of time
# per kernel (perf, when available).
#
# The input is text made of random vocabulary tokens: with random weights a
# model codes it in fewer bytes than zstd (on real text zstd would win, the
# model's payload would be dropped and decompression would not run the
# model), and its cost per token is that of any text.
#
# The last two columns code the input as one segment (--best): one stream,
# whose steps both threads share (docs/DECISIONS.md, "Threads inside a
# step"); the others as two, a thread each.
#
# Usage: bench/engine_speed.sh [BUILD_DIR (build)] [TOKENS (100000)] [REPEAT (1)]
# Each figure is the best of REPEAT runs (the machine is shared: timings are
# noisy). LLMFUSE_KERNELS=portable|avx2|avx512-vnni picks the kernels.
set -euo pipefail
build=${1:-build}
tokens=${2:-100000}
repeat=${3:-1}
llmfuse=$build/llmfuse
llmencode=$build/llmencode
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The vocabulary: Debian's license texts and the first 400 copyright files.
{ cat /usr/share/common-licenses/*; find /usr/share/doc -name copyright | sort | head -n 400 | xargs cat; } \
  >"$work/corpus" 2>/dev/null
"$llmfuse" tokenizer train --vocab-size 8192 -o "$work/tok.gguf" "$work/corpus" 2>/dev/null

# name embedding layers heads kv_heads feed_forward (context 512 for all)
models=(
  "1M 96 2 4 2 256"
  "5M 256 4 8 4 768"
  "20M 512 5 8 4 1536"
)
for spec in "${models[@]}"; do
  read -r name d layers heads kv ff <<<"$spec"
  printf '{"context_length": 512, "embedding_length": %d, "block_count": %d, "head_count": %d, "head_count_kv": %d, "feed_forward_length": %d}\n' \
    "$d" "$layers" "$heads" "$kv" "$ff" >"$work/$name.json"
  "$llmfuse" model init --config "$work/$name.json" --tokenizer "$work/tok.gguf" -o "$work/$name.gguf"
done

awk -v n="$tokens" 'BEGIN { srand(1); for (i = 0; i < n; i++) printf "%d ", 260 + int(rand() * 7932) }' \
  | "$llmfuse" tokenizer decode "$work/tok.gguf" >"$work/input"
bytes=$(wc -c <"$work/input")
count=$("$llmfuse" tokenizer encode "$work/tok.gguf" "$work/input" | wc -w)

seconds() { # COMMAND...: best wall-clock seconds of REPEAT runs
  local best=
  for ((r = 0; r < repeat; r++)); do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    best=$(awk -v s="$start" -v e="$end" -v b="$best" 'BEGIN { t = e - s; print (b == "" || t < b) ? t : b }')
  done
  echo "$best"
}
cell() { # SECONDS: "tokens/s (KB/s)"
  awk -v t="$1" -v n="$count" -v b="$bytes" 'BEGIN { printf "%.0f (%.0f)", n / t, b / t / 1000 }'
}

echo "Input: $bytes bytes, $count tokens of random vocabulary text; kernels: $("$llmfuse" model info "$work/1M.gguf" | sed -n 's/^kernel: *//p'); $(nproc) CPUs ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -n 1))."
echo
echo "| model | parameters | compress -T1 | compress -T2 | decompress -T1 | decompress -T2 | one segment: compress -T2 | decompress -T2 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for spec in "${models[@]}"; do
  read -r name _ <<<"$spec"
  model=$work/$name.gguf
  "$llmencode" -m "$model" -c "$work/input" >"$work/$name.llmz"
  if "$llmencode" -l -v "$work/$name.llmz" | grep -q 'segment .*: \(zstd\|stored\)'; then
    echo "$name: the model lost to zstd on some segment; the timings would not be the model's" >&2
    exit 1
  fi
  row="| $name | $("$llmfuse" model info "$model" | sed -n 's/^parameters: *//p') |"
  for mode in compress decompress; do
    for threads in 1 2; do
      if [ "$mode" = compress ]; then
        t=$(seconds "$llmencode" -m "$model" -T "$threads" -c "$work/input")
      else
        t=$(seconds "$llmencode" -m "$model" -T "$threads" -d -c "$work/$name.llmz")
      fi
      row="$row $(cell "$t") |"
    done
  done
  "$llmencode" -m "$model" --best -c "$work/input" >"$work/$name.best.llmz"
  row="$row $(cell "$(seconds "$llmencode" -m "$model" --best -T 2 -c "$work/input")") |"
  row="$row $(cell "$(seconds "$llmencode" -m "$model" -T 2 -d -c "$work/$name.best.llmz")") |"
  echo "$row"
done
echo
echo "tokens/s (KB/s); best of $repeat run(s) each."

if ! command -v perf >/dev/null || ! perf record -o "$work/probe.data" true >/dev/null 2>&1; then
  echo
  echo "perf is not available: no per-kernel shares."
  exit 0
fi
# Kernel shares: perf samples of a 2-thread compression and decompression,
# by symbol, grouped. Activation quantization counts as the product's.
echo
echo "Share of time per kernel (perf, compress and decompress with 2 threads):"
echo
echo "| model | matmul | attention | norm, RoPE, SwiGLU, rest of the step | logits -> frequencies | range coding | other |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for spec in "${models[@]}"; do
  read -r name _ <<<"$spec"
  model=$work/$name.gguf
  perf record -q -o "$work/compress.data" "$llmencode" -m "$model" -T 2 -c "$work/input" >/dev/null 2>&1
  perf record -q -o "$work/decompress.data" "$llmencode" -m "$model" -T 2 -d -c "$work/$name.llmz" >/dev/null 2>&1
  for data in compress decompress; do
    perf report -i "$work/$data.data" --no-children --sort symbol --stdio 2>/dev/null
  done | awk -v name="$name" '
    /^ +[0-9.]+%/ {
      share = $1; sub(/%/, "", share)
      for (i = 2; i < NF; i++) if ($i ~ /^\[.\]$/) symbol = $(i + 1)
      if (symbol ~ /^(tile_|lf_kernel_matmul|matmul_portable|lf_kernel_quantize|quantize_portable)/) k = "matmul"
      else if (symbol ~ /^(lf_kernel_attend|attend_portable)/) k = "attention"
      else if (symbol ~ /^(lf_kernel_distribution|distribution_portable|lf_frequencies_set|lf_exact_expf)/) k = "frequencies"
      else if (symbol ~ /^(lf_kernel_rmsnorm|lf_kernel_swiglu|swiglu_portable|lf_transformer_step|lf_exact_(sin|cos)|products_share|attention_share|finish_share)/) k = "step"
      else if (symbol ~ /^(lf_range_|lf_frequencies_(encode|decode|find)|encode_next|decode_next)/) k = "coding"
      else k = "other"
      total[k] += share; all += share
    }
    END {
      printf "| %s |", name
      split("matmul attention step frequencies coding other", order, " ")
      for (i = 1; i <= 6; i++) printf " %.1f%% |", 100 * total[order[i]] / all
      printf "\n"
    }'
done
