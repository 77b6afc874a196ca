# `llmfuse eval`: a tiny model fine-tuned until it knows six examples by
# heart answers them exactly (a read, a failure, a listing, a write's XML
# state, base64 bytes); a random model answers none; the thread count never
# changes the scores; mistakes are named.
source "$(dirname "$0")/lib.bash"
cd "$scratch"

# Six examples in the dataset's form (docs/FORMAT.md §4.1), short enough for
# a 256-token context.
root_open='<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:00\"'
a_txt='<file path=\"a.txt\" name=\"a.txt\" mode=\"644\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:00\" size=\"3\"><body>hi\n</body></file>'
z_bin='<file path=\"z.bin\" name=\"z.bin\" mode=\"644\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:00\" size=\"2\"><body encoding=\"base64\">aAA=</body></file>'
with_a="$root_open>$a_txt</directory></filesystem>"
empty="$root_open /></filesystem>"
made_d='<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:01\"><directory path=\"d\" name=\"d\" mode=\"755\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:01\" /></directory></filesystem>'
line() { # KIND OP OPERATION-LINE STATE COMPLETION [EXTRA-MEMBERS]
  printf '{"prompt":"<%s>\\n%s\\n---\\n%s","completion":"%s"%s,"op":"%s","kind":"%s"}\n' \
    "$1" "$3" "$4" "$5" "${6:-}" "$2" "$1"
}
{
  line R read "read('/a.txt', size=4096, offset=0, fh=4)" "$with_a" 'hi\n'
  line R getattr "getattr('/b', fh=None)" "$with_a" 'ERROR: ENOENT'
  line R readdir "readdir('/', fh=0)" "$with_a" '[\".\",\"..\",\"a.txt\"]'
  line W mkdir "mkdir('/d', mode=0o755)" "$empty" "$made_d"
  line W unlink "unlink('/x')" "$empty" 'ERROR: ENOENT'
  line R read "read('/z.bin', size=2, offset=0, fh=4)" "$root_open>$z_bin</directory></filesystem>" \
    'aAA=' ',"completion_encoding":"base64"'
} >data.jsonl

"$llmfuse" tokenizer train --vocab-size 320 -o tok.gguf data.jsonl 2>/dev/null \
  || fail "tokenizer training failed"
cat >shape.json <<'EOF'
{"context_length": 256, "embedding_length": 32, "block_count": 2, "head_count": 4,
 "head_count_kv": 2, "feed_forward_length": 64}
EOF
"$llmfuse" train --tokenizer tok.gguf --config shape.json --sft data.jsonl --run-dir run \
  --steps 150 --batch 6 --lr 1e-2 --threads 2 --output tuned.gguf 2>train.log \
  || fail "fine-tuning failed: $(cat train.log)"
grep -qF "examples: 6 for training (0 longer than 256 tokens skipped)" train.log \
  || fail "not every example was trained on: $(cat train.log)"

# The fine-tuned model knows its examples; exact means byte for byte.
"$llmfuse" eval tuned.gguf data.jsonl --threads 2 >tuned.out 2>tuned.err \
  || fail "eval failed: $(cat tuned.err)"
last=$(tail -n 1 tuned.out)
[[ $last =~ ^exact:\ ([0-9]+\.[0-9])%\ \(([0-9]+)/6\)$ ]] || fail "last line: '$last'"
tuned_exact=${BASH_REMATCH[2]}
[ "$tuned_exact" -ge 5 ] || fail "the tuned model is exact on only: $(cat tuned.out)"
grep -qE '^mkdir +W +1 ' tuned.out || fail "no row for mkdir: $(cat tuned.out)"
grep -qE '^\(all\) +R +4 ' tuned.out || fail "no row for the reads: $(cat tuned.out)"
grep -qE '^W states that parse as XML: [0-9.]+% \([01]/1\)$' tuned.out \
  || fail "no XML validity line: $(cat tuned.out)"
grep -qE '^latency per example: mean [0-9.]+ ms, p90 [0-9.]+ ms$' tuned.out \
  || fail "no latency line: $(cat tuned.out)"
grep -qE '^speed: [0-9.]+ examples/s, [0-9]+ tokens/s' tuned.out || fail "no speed line"

# Threads never change a score (only the times).
scores() { grep -vE '^(latency|speed)' "$1" | sed -E 's/ +[0-9.]+$//'; } # rows lose their mean ms
"$llmfuse" eval tuned.gguf data.jsonl --threads 1 >one.out || fail "eval on one thread"
diff <(scores tuned.out) <(scores one.out) || fail "one thread scored differently"
"$llmfuse" eval tuned.gguf data.jsonl --limit 2 --threads 3 | tail -n 1 | grep -qE '^exact: .* \([0-9]/2\)$' \
  || fail "--limit 2"
# One changed byte in the expected completion is a miss.
sed '1s/"completion":"hi\\n"/"completion":"hi!"/' data.jsonl >changed.jsonl
"$llmfuse" eval tuned.gguf changed.jsonl --limit 1 --mismatches missed.jsonl | tail -n 1 \
  | grep -qxF 'exact: 0.0% (0/1)' || fail "a changed byte was not a miss"
# --mismatches writes that miss: what was expected and what the model said.
[ "$(wc -l <missed.jsonl)" -eq 1 ] || fail "mismatch lines: $(cat missed.jsonl)"
grep -qF '"index":0,"op":"read",' missed.jsonl || fail "mismatch line: $(cat missed.jsonl)"
grep -qF '"expected":"hi!","got":"hi\n"' missed.jsonl || fail "mismatch line: $(cat missed.jsonl)"
"$llmfuse" eval tuned.gguf data.jsonl --mismatches all.jsonl >/dev/null || fail "eval --mismatches"
[ -f all.jsonl ] && [ "$(wc -l <all.jsonl)" -eq $((6 - tuned_exact)) ] \
  || fail "not one line per inexact example: $(cat all.jsonl)"

# A random model of the same shape knows nothing.
"$llmfuse" model init --config shape.json --tokenizer tok.gguf --seed 3 -o random.gguf \
  || fail "model init"
"$llmfuse" eval random.gguf data.jsonl --max-tokens 40 >random.out || fail "eval of the random model"
tail -n 1 random.out | grep -qxF 'exact: 0.0% (0/6)' || fail "the random model: $(cat random.out)"
# Its two write answers and two reads' data are nonsense: second opinions
# are tried and counted on a line of their own; the table and the last
# line stay greedy.
"$llmfuse" eval random.gguf data.jsonl --max-tokens 40 --retries 3 >retries.out || fail "eval --retries"
grep -qxF 'second opinions (--retries 3): 4 invalid answers, 0 made valid, 0 of them exact; exact with them: 0.0% (0/6)' \
  retries.out || fail "no second-opinion line: $(cat retries.out)"
diff <(scores random.out | grep -v '^second') <(scores retries.out | grep -v '^second') ||
  fail "--retries changed the greedy scores"
"$llmfuse" eval random.gguf data.jsonl --retries 65 2>retries.err && fail "--retries 65 was taken"
grep -qF -- '--retries is at most 64' retries.err || fail "--retries 65: $(cat retries.err)"

# Mistakes are named.
expect_failure 1 "cannot open 'missing.gguf'" "$llmfuse" eval missing.gguf data.jsonl
expect_failure 1 "not a transformer model" "$llmfuse" eval tok.gguf data.jsonl
expect_failure 1 "not a GGUF file" "$llmfuse" eval data.jsonl data.jsonl
expect_failure 1 "cannot open 'missing.jsonl'" "$llmfuse" eval tuned.gguf missing.jsonl
{ head -n 2 data.jsonl; echo '{"prompt": "<R>\n'; } >broken.jsonl
expect_failure 1 "broken.jsonl:3:" "$llmfuse" eval tuned.gguf broken.jsonl
echo '{"prompt":"<R>\nreadlink(\u0027/l\u0027)"}' >incomplete.jsonl
expect_failure 1 'incomplete.jsonl:1: needs string members "prompt" and "completion"' \
  "$llmfuse" eval tuned.gguf incomplete.jsonl
echo '{"prompt":"p","completion":"!!","completion_encoding":"base64"}' >bad64.jsonl
expect_failure 1 "bad64.jsonl:1: the completion is not base64" "$llmfuse" eval tuned.gguf bad64.jsonl
: >empty.jsonl
expect_failure 1 "holds no examples" "$llmfuse" eval tuned.gguf empty.jsonl
expect_failure 1 "--threads needs a whole number" "$llmfuse" eval tuned.gguf data.jsonl --threads 0
expect_failure 1 "usage: llmfuse eval" "$llmfuse" eval tuned.gguf
"$llmfuse" eval --help | grep -qF "usage: llmfuse eval" || fail "eval --help"
