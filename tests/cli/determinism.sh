# The determinism contract (DESIGN.md §4, issue 5), end to end: the same
# inputs compressed with the same random transformer, and a text with the
# shipped model (built in as 'base'), under every configuration give
# byte-identical archives, and every configuration decompresses them. Configurations: this build's fastest kernels, its AVX2
# and portable kernels (LLMFUSE_KERNELS), 1, 2 and 4 threads (threads share
# the steps of a run when there are fewer runs than threads: one segment on
# two, two segments on four, more threads than cores), a segment alone
# (--batch 1), a few together and all together; then a portable build
# (-DLLMFUSE_PORTABLE=ON: no intrinsics at all) and an -O0 build, both with
# the other compiler (gcc <-> clang) when it is installed. Under the
# sanitizers (LLMFUSE_SANITIZED=1) only this build runs, on less input.
source "$(dirname "$0")/lib.bash"
llmencode=$build/llmencode
sanitized=${LLMFUSE_SANITIZED:-0}

# A small model with a trained vocabulary; context 64, so that the inputs
# slide the attention window many times.
cat "$source_dir"/src/model/*.c "$source_dir"/docs/*.md >"$scratch/corpus"
"$llmfuse" tokenizer train --vocab-size 512 -o "$scratch/tok.gguf" "$scratch/corpus" 2>/dev/null \
  || fail "tokenizer train failed"
cat >"$scratch/config.json" <<'EOF'
{"context_length": 64, "embedding_length": 64, "block_count": 2, "head_count": 4,
 "head_count_kv": 2, "feed_forward_length": 128}
EOF
"$llmfuse" model init --config "$scratch/config.json" --tokenizer "$scratch/tok.gguf" --seed 7 \
  -o "$scratch/model.gguf" || fail "model init failed"
model=$scratch/model.gguf

# Text of random vocabulary tokens: a random model codes it in fewer bytes
# than zstd, so every segment's payload is the model's (checked below).
random_text() { # SEED TOKENS
  awk -v seed="$1" -v n="$2" 'BEGIN { srand(seed); for (i = 0; i < n; i++) printf "%d ", 260 + int(rand() * 252) }' \
    | "$llmfuse" tokenizer decode "$scratch/tok.gguf"
}
random_text 1 1000 >"$scratch/small"  # ~3 KB: one segment
if [ "$sanitized" = 1 ]; then
  random_text 2 6000 >"$scratch/large"   # ~20 KB
else
  random_text 2 100000 >"$scratch/large"  # ~330 KB: two segments
fi
head -c 6000 "$source_dir/docs/FORMAT.md" >"$scratch/text"

# Configurations: NAME BUILD_DIR ENVIRONMENT OPTIONS...
configurations=(
  "native-T1-batch1|$build||-T 1 --batch 1"
  "native-T1|$build||-T 1"
  "native-T2-batch2|$build||-T 2 --batch 2"
  "native-T2|$build||-T 2"
  "native-T4|$build||-T 4"
  "avx2-kernels-T2|$build|LLMFUSE_KERNELS=avx2|-T 2"
  "portable-kernels-T1-batch3|$build|LLMFUSE_KERNELS=portable|-T 1 --batch 3"
)
if [ "$sanitized" = 0 ]; then
  compiler=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
  case "$(basename "$compiler")" in
    *clang*) other=gcc ;;
    *) other=clang ;;
  esac
  command -v "$other" >/dev/null || other=$compiler
  build_variant() { # DIR CMAKE_OPTIONS...
    local dir=$1; shift
    CC=$other cmake -S "$source_dir" -B "$dir" "$@" >"$dir.log" 2>&1 \
      && cmake --build "$dir" --target llmencode -j"$(nproc)" >>"$dir.log" 2>&1 \
      || fail "building $dir failed: $(tail -n 20 "$dir.log")"
  }
  build_variant "$scratch/portable" -DCMAKE_BUILD_TYPE=Release -DLLMFUSE_PORTABLE=ON
  build_variant "$scratch/O0" -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS=-O0
  configurations+=(
    "portable-$other-T1|$scratch/portable||-T 1"
    "portable-$other-T2-batch1|$scratch/portable||-T 2 --batch 1"
    "O0-$other-T2|$scratch/O0||-T 2"
  )
fi

run() { # CONFIGURATION LLMENCODE_ARGUMENTS...
  local name dir environment options
  IFS='|' read -r name dir environment options <<<"$1"
  shift
  # shellcheck disable=SC2086 # options are words
  env $environment "$dir/llmencode" -m "$model" $options "$@"
}

check() { # INPUT...: one archive per input under every configuration
  for input in "$@"; do
    reference=
    for configuration in "${configurations[@]}"; do
      name=${configuration%%|*}
      run "$configuration" -c "$scratch/$input" >"$scratch/$input.$name.llmz" \
        || fail "$name: compressing $input failed"
      if [ -z "$reference" ]; then
        reference=$scratch/$input.$name.llmz
        "$llmencode" -l -v "$reference" >"$scratch/list"
        ! grep -q 'segment .*: \(zstd\|stored\)' "$scratch/list" \
          || fail "$input: not every segment is model-coded: $(cat "$scratch/list")"
      else
        cmp -s "$reference" "$scratch/$input.$name.llmz" \
          || fail "$input: $name wrote a different archive than $(basename "$reference")"
      fi
    done
    for configuration in "${configurations[@]}"; do
      name=${configuration%%|*}
      run "$configuration" -d -c "$reference" | cmp -s - "$scratch/$input" \
        || fail "$input: $name does not decompress the archive to the original"
    done
    echo "$input: $(wc -c <"$scratch/$input") bytes, $(grep -c 'segment ' "$scratch/list") segments: one archive and every decompression agree across ${#configurations[@]} configurations"
  done
}

check small large
# The shipped model is ten times slower than the random one: under the
# sanitizers it would take minutes, and the optimised stage runs it anyway.
if [ "$sanitized" = 0 ]; then
  model=base
  check text
fi
