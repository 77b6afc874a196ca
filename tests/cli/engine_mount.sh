# `llmfuse mount --engine`: the model-implemented filesystem.  With the exact
# engine (the simulator's answers) a scripted shell session gives what it
# gives on tmpfs, and --verify reports no divergence; with a model that
# answers nonsense every change fails with EIO and leaves the state as it
# was; the state is saved as XML or LM-compressed.  With models/fs.gguf
# present (and no sanitizer), the session runs on the model too.
source "$(dirname "$0")/lib.bash"
require_fuse
command -v jq >/dev/null || skip "jq is missing (scripts/install-deps installs it)"
export TZ=UTC LC_ALL=C
umask 022
mnt=$scratch/mnt
mkdir "$mnt"
cleanup_hooks+=("fusermount3 -u -q '$mnt'")

session() { # runs in the directory $1; prints what a user would see
  (
    cd "$1"
    mkdir notes
    echo hello >notes/a.txt
    cat notes/a.txt
    echo "second line" >>notes/a.txt
    ls -l --time-style=+ notes | tail -n +2
    chmod 600 notes/a.txt
    mv notes/a.txt notes/b.txt
    ln -s b.txt notes/link
    cat notes/link
    ls -l --time-style=+ notes | tail -n +2
    rm notes/b.txt
    ls notes
    readlink notes/link
    cat notes/missing 2>&1 | sed 's/^cat: //' || true
  ) 2>&1
}

serve() { # ENGINE-OPTIONS...: mounts in the foreground, in the background
  "$llmfuse" mount "$@" -f "$mnt" 2>"$scratch/engine.log" &
  server=$!
  for _ in $(seq 100); do grep -qs " $mnt fuse" /proc/mounts && return; sleep 0.1; done
  fail "the engine did not mount: $(cat "$scratch/engine.log")"
}
unmount() { fusermount3 -u "$mnt"; wait "$server" || fail "the engine exited with an error: $(cat "$scratch/engine.log")"; }

# The reference: the same session on tmpfs.
mkdir "$scratch/tmpfs"
mount -t tmpfs none "$scratch/tmpfs"
cleanup_hooks+=("umount '$scratch/tmpfs'")
expected=$(session "$scratch/tmpfs")

# The exact engine, verified: identical output, no divergence, no invalid answer.
serve --engine=exact --verify --state "$scratch/state.xml" --record "$scratch/session.jsonl"
actual=$(session "$mnt")
unmount
[ "$actual" = "$expected" ] || fail "the session differs from tmpfs:
--- tmpfs
$expected
--- engine
$actual"
grep -Eq ' 0 invalid answers \([0-9]+ more set right by second opinions\), 0 divergences' "$scratch/engine.log" || fail "verify: $(cat "$scratch/engine.log")"
"$llmfuse" xml --check "$scratch/state.xml" >/dev/null || fail "the saved state does not parse"
grep -q 'path="notes/link" name="link"' "$scratch/state.xml" || fail "the state lacks the link: $(cat "$scratch/state.xml")"

# --record wrote one dataset line per operation the engine answered: what
# the shell asked (an echo's short append, mv's RENAME_NOREPLACE) with the
# exact completion.
operations=$(grep -o '[0-9]* operations,' "$scratch/engine.log" | cut -d' ' -f1)
[ "$(wc -l <"$scratch/session.jsonl")" -eq "$operations" ] ||
  fail "$operations operations, $(wc -l <"$scratch/session.jsonl") recorded"
jq -e -s 'all(.[]; (.prompt | test("^<[RW]>\n")) and (.completion | type == "string") and .kind and .status)' \
  "$scratch/session.jsonl" >/dev/null || fail "a recorded line is not a dataset line"
jq -e -s 'any(.[]; .op == "write" and (.prompt | test("data=second line\n, data_length=12, offset=6,")))' \
  "$scratch/session.jsonl" >/dev/null || fail "the append is not recorded"
jq -e -s 'any(.[]; .op == "rename" and (.prompt | test("flags=1, now=")) and .status == "OK" and
  (.completion | contains("path=\"notes/b.txt\"")))' "$scratch/session.jsonl" >/dev/null ||
  fail "mv's rename is not recorded with its new state"
# A record that cannot be written is reported, and the filesystem goes on.
serve --engine=exact --record /dev/full
mkdir "$mnt/unrecorded" || fail "mkdir failed with an unwritable record"
unmount
grep -q 'cannot record mkdir' "$scratch/engine.log" || fail "no report: $(cat "$scratch/engine.log")"

# The state comes back at the next mount, and an .llmz state is LM-compressed.
serve --engine=exact --state "$scratch/state.xml"
[ "$(readlink "$mnt/notes/link")" = b.txt ] || fail "the state was not loaded"
mkdir "$mnt/more"
unmount
grep -q 'path="more"' "$scratch/state.xml" || fail "the change was not saved"
cp "$scratch/state.xml" "$scratch/before.xml"
serve --engine=exact --state "$scratch/state.llmz" -m cm
mkdir "$mnt/compressed"
unmount
"$build/llmencode" -d -c -m cm "$scratch/state.llmz" | grep -q 'path="compressed"' ||
  fail "the .llmz state does not hold the change"

# A model that answers nonsense: changes fail with EIO, the state stays, each is logged.
"$llmfuse" tokenizer train --vocab-size 300 -o "$scratch/tok.gguf" "$scratch/before.xml" 2>/dev/null
random_model() { # CONTEXT FILE
  echo "{\"context_length\": $1, \"embedding_length\": 32, \"block_count\": 1, \"head_count\": 2,
 \"head_count_kv\": 2, \"feed_forward_length\": 32}" >"$scratch/shape.json"
  "$llmfuse" model init --config "$scratch/shape.json" --tokenizer "$scratch/tok.gguf" --seed 5 \
    -o "$2" >/dev/null
}
random_model 1024 "$scratch/random.gguf"
serve --engine=model -m "$scratch/random.gguf" --state "$scratch/state.xml" --retries 2
mkdir "$mnt/x" 2>"$scratch/mkdir.err" && fail "mkdir succeeded on nonsense"
grep -q 'Input/output error' "$scratch/mkdir.err" || fail "mkdir: $(cat "$scratch/mkdir.err")"
[ -d "$mnt/notes" ] || fail "getattr no longer answers from the state"
# data is checked as written bytes are: nonsense is never handed out as a symlink's target
readlink -v "$mnt/notes/link" >"$scratch/readlink.out" 2>"$scratch/readlink.err" &&
  fail "readlink handed out '$(cat "$scratch/readlink.out")' from nonsense"
grep -q 'Input/output error' "$scratch/readlink.err" || fail "readlink: $(cat "$scratch/readlink.err")"
unmount
# the greedy answer and two second opinions, each logged; both operations failed
[ "$(grep -c 'invalid answer to mkdir' "$scratch/engine.log")" = 3 ] ||
  fail "not three answers to mkdir: $(cat "$scratch/engine.log")"
[ "$(grep -c "invalid answer to readlink.*(not where the symlink points)" "$scratch/engine.log")" = 3 ] ||
  fail "not three answers to readlink: $(cat "$scratch/engine.log")"
grep -q ' 2 invalid answers (0 more set right by second opinions)' "$scratch/engine.log" ||
  fail "no summary: $(cat "$scratch/engine.log")"
cmp -s "$scratch/state.xml" "$scratch/before.xml" || fail "the state changed after invalid answers"

# The model's context is the filesystem's capacity: a change whose prompt
# and new state would not fit is not asked, it fails with ENOSPC.
random_model 64 "$scratch/small.gguf"
serve --engine=model -m "$scratch/small.gguf" --state "$scratch/state.xml"
mkdir "$mnt/y" 2>"$scratch/mkdir.err" && fail "mkdir succeeded beyond the context"
grep -q 'No space left on device' "$scratch/mkdir.err" || fail "mkdir: $(cat "$scratch/mkdir.err")"
unmount
grep -q "mkdir of '/y': the new state would not fit the model's context" "$scratch/engine.log" ||
  fail "no ENOSPC line: $(cat "$scratch/engine.log")"
cmp -s "$scratch/state.xml" "$scratch/before.xml" || fail "the state changed after ENOSPC"

# The recorded session is an eval set.
"$llmfuse" eval "$scratch/random.gguf" "$scratch/session.jsonl" --max-tokens 8 >"$scratch/eval.out" ||
  fail "eval of the recorded session: $(cat "$scratch/eval.out")"
tail -n 1 "$scratch/eval.out" | grep -Eq "^exact: [0-9.]+% \([0-9]+/$operations\)$" ||
  fail "eval did not read every recorded line: $(tail -n 1 "$scratch/eval.out")"

# The fine-tuned model, when there is one.
if [ -f "$source_dir/models/fs.gguf" ] && [ "${LLMFUSE_SANITIZED:-OFF}" != ON ] &&
   [ "${LLMFUSE_SANITIZED:-0}" != 1 ]; then
  rm -f "$scratch/model-state.xml"
  serve --engine=model -m "$source_dir/models/fs.gguf" --verify --state "$scratch/model-state.xml"
  actual=$(session "$mnt")
  unmount
  [ "$actual" = "$expected" ] || fail "the model's session differs from tmpfs:
--- tmpfs
$expected
--- model
$actual
$(cat "$scratch/engine.log")"
  grep -Eq ' 0 invalid answers \([0-9]+ more set right by second opinions\), 0 divergences' "$scratch/engine.log" || fail "verify: $(cat "$scratch/engine.log")"
fi
echo "engine mount: ok"
