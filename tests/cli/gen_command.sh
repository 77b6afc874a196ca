# `llmfuse gen`: 2000 JSON lines covering every operation, reads and
# writes, failures included; write completions are canonical XML states;
# the same seed gives the same bytes (here once through the loopback mount
# and once with plain system calls); training and evaluation share no
# prompt.  tests/unit/test_sim.c checks every completion against the tree.
source "$(dirname "$0")/lib.bash"
[ "$(id -u)" = 0 ] || skip "llmfuse gen needs root"
[ "$(stat -f -c %T "${TMPDIR:-/tmp}")" = ext2/ext3 ] || skip "llmfuse gen needs TMPDIR on ext4"
command -v jq >/dev/null || skip "jq is missing (scripts/install-deps installs it)"

train=$scratch/train.jsonl eval=$scratch/eval.jsonl
"$llmfuse" gen --count 2000 --seed 1 --out "$train" --eval-count 200 --eval-out "$eval" \
  2>"$scratch/stats" || fail "gen failed: $(cat "$scratch/stats")"
[ "$(wc -l <"$train")" = 2000 ] || fail "$(wc -l <"$train") training lines, not 2000"
[ "$(wc -l <"$eval")" = 200 ] || fail "$(wc -l <"$eval") evaluation lines, not 200"

# Every line is a JSON object of the documented shape (jq fails on anything else).
count() { jq -c "select($1)" "$train" | wc -l; }
[ "$(count '(.prompt|type)=="string" and (.completion|type)=="string" and (.op|type)=="string"
            and (.kind=="R" or .kind=="W") and (.status|type)=="string"')" = 2000 ] ||
  fail "lines without prompt, completion, op, kind and status"
[ "$(count '.prompt|test("^<[RW]>\n[a-z]+\\(\u0027/(.|\n)*\n---\n<filesystem>")')" = 2000 ] ||
  fail "prompts not of the form <R|W>, op line, ---, state"
for op in getattr readdir read readlink write create mkdir unlink rmdir chmod chown truncate \
          rename symlink utimens; do
  [ "$(count ".op==\"$op\"")" -gt 0 ] || fail "no $op example"
done
[ "$(count '.kind=="R"')" -gt 0 ] && [ "$(count '.kind=="W"')" -gt 0 ] || fail "not both kinds"
for error in ENOENT EEXIST ENOTEMPTY ENOTDIR EISDIR; do
  [ "$(count ".status==\"$error\" and .completion==\"ERROR: $error\"")" -gt 0 ] ||
    fail "no $error example"
done
[ "$(count '(.status=="OK") == (.completion|startswith("ERROR: "))')" = 0 ] ||
  fail "completions that read as errors and are not, or the reverse"
[ "$(count '.op=="readdir" and .status=="OK" and (.completion|startswith("[\".\",\"..\"")|not)')" = 0 ] ||
  fail "readdir completions not in the seed's list form"

# Write completions that are not errors are states that the XML parser
# takes and writes back unchanged (a sample: each check is a process).
jq -r 'select(.kind=="W" and .status=="OK") | .completion | @base64' "$train" |
  awk 'NR % 50 == 1' >"$scratch/states"
[ -s "$scratch/states" ] || fail "no write completions"
while read -r state; do
  printf '%s' "$state" | base64 -d >"$scratch/state.xml"
  "$llmfuse" xml --check "$scratch/state.xml" >"$scratch/canonical.xml" ||
    fail "a write completion does not parse: $(cat "$scratch/state.xml")"
  cmp -s "$scratch/state.xml" "$scratch/canonical.xml" ||
    fail "a write completion is not canonical: $(cat "$scratch/state.xml")"
done <"$scratch/states"

# Per-operation statistics on stderr.
grep -q '^mkdir ' "$scratch/stats" || fail "no statistics: $(cat "$scratch/stats")"

# The same seed, the same bytes, here without the mount.
"$llmfuse" gen --count 2000 --seed 1 --out "$scratch/again.jsonl" --eval-count 200 \
  --eval-out "$scratch/again-eval.jsonl" --no-mount 2>/dev/null || fail "gen --no-mount failed"
cmp -s "$train" "$scratch/again.jsonl" || fail "the same seed gave different training lines"
cmp -s "$eval" "$scratch/again-eval.jsonl" || fail "the same seed gave different evaluation lines"

# The same bytes from every build (gcc or clang, sanitized or not) on a
# Debian system: a digest of a small run.  A change meant to alter what is
# generated updates tests/golden/gen_seed1_200.sha256 with
#   llmfuse gen --count 200 --seed 1 --out F --no-mount && sha256sum <F
"$llmfuse" gen --count 200 --seed 1 --out "$scratch/small.jsonl" --no-mount 2>/dev/null ||
  fail "gen --count 200 failed"
[ "$(sha256sum <"$scratch/small.jsonl" | cut -d' ' -f1)" = \
  "$(cat "$source_dir/tests/golden/gen_seed1_200.sha256")" ] ||
  fail "seed 1 no longer gives the golden bytes (see the comment above)"

# getattr answers and utimens lines write modes and times as the state
# does, so an answer is a copy: every getattr's mtime and mode stand in its
# prompt's XML.
jq -r 'select(.prompt | startswith("<R>\ngetattr(")) | select(.completion | startswith("{"))
       | [(.completion | fromjson | .mtime, .mode), .prompt] | @tsv' "$train" >"$scratch/getattr.tsv"
[ -s "$scratch/getattr.tsv" ] || fail "no successful getattr in the training lines"
while IFS=$'\t' read -r mtime mode prompt; do
  [[ $mtime =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$ && $mode =~ ^[0-7]{3,4}$ ]] ||
    fail "a getattr answer has mtime '$mtime', mode '$mode'"
  [[ $prompt == *"mode=\"$mode\""* && $prompt == *"mtime=\"$mtime\""* ]] ||
    fail "getattr's mode $mode or mtime $mtime is not in its prompt"
done <"$scratch/getattr.tsv"
jq -r '.prompt | select(startswith("<W>\nutimens(")) | split("\n")[1]' "$train" >"$scratch/utimens"
grep -q "times=('[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]\{8\}'" "$scratch/utimens" ||
  fail "no utimens line with times as the XML writes them: $(head -3 "$scratch/utimens")"
! grep -q "times=([0-9]" "$scratch/utimens" || fail "a utimens line has seconds since 1970"

# Answers copy times and sizes rather than compute them: every line of an
# operation that can set an mtime ends with now='...', no mtime in the state
# after a success (but utimens', which may be told any time) is later than
# that second, and a write's end is its offset plus its length.
jq -r 'select(.kind == "W" and .op != "chmod" and .op != "chown")
       | [(.prompt | split("\n---\n")[0] | capture(", now=(?<t>[^)]*)\\)$").t // "missing"),
          (if .status == "OK" and .op != "utimens" then [.completion | scan("mtime=\"([^\"]*)\"")[0]] | max else "" end)]
       | @tsv' "$train" >"$scratch/now.tsv"
[ -s "$scratch/now.tsv" ] || fail "no write-kind lines"
while IFS=$'\t' read -r now newest; do
  [[ $now =~ ^\'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\'$ ]] || fail "a line has now=$now"
  [[ -z $newest || ! $newest > ${now//\'/} ]] || fail "a state has mtime $newest after now=$now"
done <"$scratch/now.tsv"
jq -e -s '[.[] | select(.op == "write") | .prompt | split("\n---\n")[0]
           | capture("data_length=(?<n>[0-9]+), offset=(?<o>[0-9]+), end=(?<e>[0-9]+), fh=4")
           | (.n | tonumber) + (.o | tonumber) == (.e | tonumber)] | length > 0 and all' "$train" \
  >/dev/null || fail "a write's end is not its offset plus its length"

# Training and evaluation share no prompt.
jq -c .prompt "$train" | sort >"$scratch/train-prompts"
jq -c .prompt "$eval" | sort >"$scratch/eval-prompts"
[ -z "$(comm -12 "$scratch/train-prompts" "$scratch/eval-prompts")" ] ||
  fail "a prompt is in both files"

# Weights choose the operations.
"$llmfuse" gen --count 30 --seed 2 --out "$scratch/mkdir.jsonl" --no-mount \
  --weights "$(printf '%s=0,' getattr readdir read readlink write create unlink rmdir chmod chown \
                 truncate rename symlink utimens)mkdir=1" 2>/dev/null || fail "gen --weights failed"
[ "$(jq -c 'select(.op=="mkdir")' "$scratch/mkdir.jsonl" | wc -l)" = 30 ] ||
  fail "--weights mkdir=1 (others 0) gave other operations"

expect_failure 1 "usage" "$llmfuse" gen --seed 1 --out "$scratch/x.jsonl"
expect_failure 1 "usage" "$llmfuse" gen --count 1 --out "$scratch/x.jsonl" --eval-count 5
expect_failure 1 "no operation named 'frob'" "$llmfuse" gen --count 1 --out "$scratch/x.jsonl" --weights frob=1
expect_failure 1 "at least" "$llmfuse" gen --count 1 --out "$scratch/x.jsonl" --max-bytes 100
[ ! -e "$scratch/x.jsonl" ] || fail "a failed run left its output behind"
echo "gen command: ok"
