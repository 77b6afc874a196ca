# `llmfuse tokenizer`: train, info, encode/decode round trips, exit codes.
source "$(dirname "$0")/lib.bash"

# A corpus of the project's own sources and docs: code and prose.
cat "$source_dir"/src/model/*.c "$source_dir"/docs/*.md >"$scratch/corpus"
"$llmfuse" tokenizer train --vocab-size 600 -o "$scratch/tok.gguf" "$scratch/corpus" \
  "$source_dir/README.md" 2>"$scratch/err" || fail "train failed: $(cat "$scratch/err")"
grep -qF "600 tokens from" "$scratch/err" || fail "train did not report its vocabulary"

"$llmfuse" tokenizer info "$scratch/tok.gguf" >"$scratch/info"
grep -qF "vocabulary: 600 tokens (256 bytes, 4 special, 340 merges)" "$scratch/info" \
  || fail "info: $(cat "$scratch/info")"
grep -qF '257 "<R>"' "$scratch/info" || fail "info lacks the special tokens"

# Any bytes survive encode | decode, from a file and from stdin.
head -c 3000 /dev/urandom >"$scratch/random"
cat "$scratch/random" "$scratch/corpus" >"$scratch/mixed"
"$llmfuse" tokenizer encode "$scratch/tok.gguf" "$scratch/mixed" >"$scratch/ids"
"$llmfuse" tokenizer decode "$scratch/tok.gguf" "$scratch/ids" | cmp - "$scratch/mixed" \
  || fail "decode(encode(x)) differs from x"
printf 'hello <R> world' | "$llmfuse" tokenizer encode "$scratch/tok.gguf" \
  | "$llmfuse" tokenizer decode "$scratch/tok.gguf" >"$scratch/out"
[ "$(cat "$scratch/out")" = "hello <R> world" ] || fail "stdin round trip: $(cat "$scratch/out")"
# Training on the corpus compresses it.
tokens=$(wc -w <"$scratch/ids")
bytes=$(wc -c <"$scratch/mixed")
[ "$tokens" -lt "$bytes" ] || fail "$tokens tokens for $bytes bytes"

# A tiny corpus learns what it can and warns (exit 2).
printf 'abab' >"$scratch/tiny"
expect_failure 2 "only 261 of 1000 tokens" \
  "$llmfuse" tokenizer train --vocab-size 1000 -o "$scratch/tiny.gguf" "$scratch/tiny"
"$llmfuse" tokenizer info "$scratch/tiny.gguf" >/dev/null || fail "the tiny tokenizer was not saved"

# Errors (exit 1) name the problem.
expect_failure 1 "outside the vocabulary of 600" \
  "$llmfuse" tokenizer decode "$scratch/tok.gguf" <(echo "65 600")
expect_failure 1 "expected a token id" "$llmfuse" tokenizer decode "$scratch/tok.gguf" <(echo "65 x")
expect_failure 1 "not a GGUF file" "$llmfuse" tokenizer info "$scratch/corpus"
head -c 100 "$scratch/tok.gguf" >"$scratch/cut.gguf"
expect_failure 1 "truncated" "$llmfuse" tokenizer info "$scratch/cut.gguf"
expect_failure 1 "--vocab-size must be" \
  "$llmfuse" tokenizer train --vocab-size 100 -o "$scratch/x.gguf" "$scratch/tiny"
expect_failure 1 "cannot open" \
  "$llmfuse" tokenizer train --vocab-size 300 -o "$scratch/x.gguf" "$scratch/missing"
[ ! -e "$scratch/x.gguf" ] || fail "a failed training left a file"
expect_failure 1 "usage" "$llmfuse" tokenizer frobnicate
