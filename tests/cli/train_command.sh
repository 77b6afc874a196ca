# `llmfuse train`: tokenize, train, stop and resume to the same losses and
# the same model, fine-tune from a run and from a model file, and the model
# compresses with llmencode.
source "$(dirname "$0")/lib.bash"
llmencode=$build/llmencode
cd "$scratch"

# A corpus of the project's own sources and docs, one document per file.
documents=("$source_dir"/src/train/*.[ch] "$source_dir"/docs/*.md)
"$llmfuse" tokenizer train --vocab-size 400 -o tok.gguf "${documents[@]}" 2>/dev/null \
  || fail "tokenizer training failed"
"$llmfuse" train tokenize --tokenizer tok.gguf -o data.tok "${documents[@]}" 2>err \
  || fail "tokenize: $(cat err)"
grep -qF "from ${#documents[@]} documents" err || fail "tokenize did not report: $(cat err)"
[ $(($(stat -c %s data.tok) % 4)) = 0 ] || fail "data.tok is not whole uint32 ids"

cat >shape.json <<'EOF'
{"context_length": 64, "embedding_length": 32, "block_count": 2, "head_count": 4,
 "head_count_kv": 2, "feed_forward_length": 64}
EOF
common=(--steps 30 --batch 4 --lr 3e-3 --eval-every 10 --progress-every 1 --threads 1)
"$llmfuse" train --tokenizer tok.gguf --config shape.json --data data.tok --run-dir straight \
  "${common[@]}" --output straight.gguf 2>straight.log || fail "training failed: $(cat straight.log)"
grep -qE '^step 30/30  loss [0-9.]+  lr' straight.log || fail "no progress line: $(cat straight.log)"
grep -qE '^eval step 30  loss [0-9.]+ nats/token  [0-9.]+ bits/byte' straight.log \
  || fail "no evaluation: $(cat straight.log)"
cmp straight.log straight/log.txt || fail "the run's log.txt differs from stderr"

# Stopped halfway and resumed: the same losses and the same model.
"$llmfuse" train --tokenizer tok.gguf --config shape.json --data data.tok --run-dir split \
  "${common[@]}" --output split.gguf --stop-after 15 2>first.log || fail "first half: $(cat first.log)"
grep -qF "stopped at step 15 of 30" first.log || fail "no stop message: $(cat first.log)"
[ ! -e split.gguf ] || fail "the output was written before the end"
"$llmfuse" train --resume split --progress-every 1 --threads 1 2>second.log \
  || fail "resume: $(cat second.log)"
grep -qF "resuming at step 15 of 30" second.log || fail "resume message: $(cat second.log)"
losses() { grep -hoE '^step [0-9]+/30  loss [0-9.]+' "$@"; }
diff <(losses straight.log) <(losses first.log second.log) || fail "the resumed losses differ"
cmp straight.gguf split.gguf || fail "the resumed run made another model"

# The model works in the engine: an exact round trip through llmencode.
head -c 4000 "$source_dir/README.md" >sample.txt
"$llmencode" -m straight.gguf -c sample.txt >sample.llmz || fail "llmencode -m failed"
"$llmencode" -m straight.gguf -d -c sample.llmz | cmp - sample.txt || fail "round trip with the trained model"

# Fine-tuning on prompt/completion lines, from the run and from the model file.
for i in 1 2 3 4 5 6; do
  printf '{"prompt":"<R>\\nread(\x27/f%s\x27)","completion":"line %s"}\n' "$i" "$i"
done >sft.jsonl
"$llmfuse" train --init straight --sft sft.jsonl --sft-eval sft.jsonl --run-dir tuned --steps 5 \
  --batch 2 --threads 1 2>tuned.log || fail "fine-tuning from a run: $(cat tuned.log)"
grep -qF "examples: 6 for training (0 longer than 64 tokens skipped), 6 held out" tuned.log \
  || fail "example count: $(cat tuned.log)"
grep -qE '^eval step 5  loss [0-9.]+ nats/token  [0-9.]+ bits/byte  \([0-9]+ tokens, 36 bytes\)' \
  tuned.log || fail "fine-tuning evaluation: $(cat tuned.log)"
grep -qF "batches of similar lengths from runs of 64" tuned.log || fail "default grouping: $(cat tuned.log)"
# A resumed run may change the grouping, and keeps the new one.
"$llmfuse" train --resume tuned --steps 7 --group-batches 2 --threads 1 2>tuned-more.log \
  || fail "resuming with --group-batches: $(cat tuned-more.log)"
"$llmfuse" train --resume tuned --steps 8 --threads 1 2>tuned-last.log || fail "resuming again"
grep -qF "from runs of 2 (--group-batches)" tuned-last.log || fail "grouping kept: $(cat tuned-last.log)"
# The same examples as a token file for scripts/train-gpu sft (docs/FORMAT.md 6.4):
# a header, then per example its count, completion start and ids.
"$llmfuse" train tokenize --sft --tokenizer tok.gguf --context 64 -o sft.sfttok sft.jsonl 2>sft.err ||
  fail "tokenize --sft: $(cat sft.err)"
grep -qE "sft.sfttok: 6 examples, [0-9]+ tokens \(0 with more than 64 inputs left out\)" sft.err ||
  fail "tokenize --sft did not report: $(cat sft.err)"
[ "$(head -c 8 sft.sfttok)" = llmfsft1 ] || fail "no example file magic"
tokens=$(grep -oE '[0-9]+ tokens' sft.err | cut -d' ' -f1)
[ "$(stat -c %s sft.sfttok)" = $((8 + 6 * 8 + 4 * tokens)) ] || fail "example file size"
first_count=$(od -An -tu4 -j8 -N4 sft.sfttok | tr -d ' ')
first_start=$(od -An -tu4 -j12 -N4 sft.sfttok | tr -d ' ')
[ "$first_start" -gt 0 ] && [ "$first_start" -lt "$first_count" ] || fail "example 1: $first_count $first_start"
"$llmfuse" train tokenize --sft --tokenizer tok.gguf --context 3 -o short.sfttok sft.jsonl 2>short.err
grep -qF "0 examples" short.err && grep -qF "(6 with more than 3 inputs left out)" short.err ||
  fail "--context: $(cat short.err)"
echo '{"prompt": 1}' >bad.jsonl
expect_failure 1 'bad.jsonl:1: needs string members' "$llmfuse" train tokenize --sft \
  --tokenizer tok.gguf -o bad.sfttok bad.jsonl
[ ! -e bad.sfttok ] || fail "a failed tokenize --sft left a file"
"$llmfuse" train --init straight.gguf --sft sft.jsonl --run-dir tuned2 --steps 5 --batch 2 \
  --threads 1 --output tuned.gguf 2>/dev/null || fail "fine-tuning from a model file"
"$llmfuse" model info tuned.gguf | grep -qF "layers:          2" || fail "the tuned model"

# SIGINT stops after the current step and saves the run (exit 2).
"$llmfuse" train --tokenizer tok.gguf --config shape.json --data data.tok --run-dir interrupted \
  --steps 100000 --batch 4 --progress-every 1 --threads 1 2>interrupted.log &
pid=$!
for _ in $(seq 100); do grep -q '^step' interrupted.log && break; sleep 0.1; done
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" = 2 ] || fail "interrupted run exited $status: $(cat interrupted.log)"
grep -qF "continue with: llmfuse train --resume interrupted" interrupted.log \
  || fail "interrupted: $(cat interrupted.log)"
[ -s interrupted/checkpoint.gguf ] || fail "no checkpoint after SIGINT"

# Mistakes are named.
expect_failure 1 "already holds a run" "$llmfuse" train --tokenizer tok.gguf --data data.tok \
  --run-dir straight
expect_failure 1 "cannot change the batch" "$llmfuse" train --resume split --batch 8
expect_failure 1 "give either --data or --sft" "$llmfuse" train --tokenizer tok.gguf --run-dir x
printf '\xff\xff\xff\xff' >bad.tok
expect_failure 1 "outside the vocabulary" "$llmfuse" train --tokenizer tok.gguf --data bad.tok \
  --run-dir x
expect_failure 1 "not a multiple of 4" "$llmfuse" train --tokenizer tok.gguf --data shape.json \
  --run-dir y
expect_failure 1 "--steps needs a whole number" "$llmfuse" train --resume split --steps x
