# `llmfuse loopback`: a shell workload through the mount leaves in SRC what
# it leaves in a plain directory, and the log has a complete line for each
# operation, with its paths and result, by the time the operation returns.
source "$(dirname "$0")/lib.bash"
require_fuse
command -v jq >/dev/null || skip "jq is missing (scripts/install-deps installs it)"
export TZ=UTC
umask 022

src=$scratch/src mnt=$scratch/mnt log=$scratch/operations.log
mkdir "$src" "$mnt"
cleanup_hooks+=("fusermount3 -u -q '$mnt'")
mounted() { grep -qs " $mnt fuse" /proc/mounts; }

workload() { # runs in the directory $1; every step must succeed
  (
    set -e
    cd "$1"
    mkdir -p a/b/c
    echo hello >a/b/c/f.txt
    [ "$(cat a/b/c/f.txt)" = hello ]
    mv a/b/c/f.txt a/g.txt
    chmod 600 a/g.txt
    ln -s g.txt a/link
    truncate -s 3 a/g.txt
    touch -d '2020-01-02 03:04:05' a/g.txt a/b
    echo temporary >a/tmp.txt
    rm a/tmp.txt
    rmdir a/b/c
    ! cat a/missing 2>/dev/null
  )
}

# Daemonised (the default): the command returns once the mount is there.
"$llmfuse" loopback "$src" "$mnt" --log "$log" || fail "loopback did not start"
mounted || fail "loopback returned without a mount"
workload "$mnt" || fail "the workload failed through the mount"
# Lines are written before the operation returns: all there before unmounting.
grep -q '"op":"rmdir","path":"/a/b/c"' "$log" || fail "the last operation is not in the log yet"
fusermount3 -u "$mnt"

# SRC holds what the workload makes of a plain directory (kernel-set times aside).
plain=$scratch/plain
mkdir "$plain"
workload "$plain"
without_times() { "$llmfuse" xml "$1" | sed 's/ mtime="[^"]*"//g'; }
[ "$(without_times "$src")" = "$(without_times "$plain")" ] ||
  fail "SRC differs from a plain run: $(without_times "$src")"
"$llmfuse" xml "$src" | grep -q 'path="a/g.txt" name="g.txt" mode="600" owner="root" group="root" mtime="2020-01-02T03:04:05" size="3"><body>hel</body>' ||
  fail "a/g.txt is not as the workload left it: $("$llmfuse" xml "$src")"

# Every line is a JSON object with a time, an operation, a path and a result or an error.
lines=$(wc -l <"$log")
[ "$(jq -c 'select((.time|type)=="string" and (.op|type)=="string" and (.path|type)=="string"
                   and ((.result|type)=="number") != ((.error|type)=="string"))' "$log" | wc -l)" = "$lines" ] ||
  fail "malformed log lines: $(head -c 2000 "$log")"
logged() { # a jq condition that some line must meet
  [ -n "$(jq -c "select($1)" "$log" | head -n 1)" ] || fail "no log line where $1"
}
logged '.op=="mkdir" and .path=="/a/b/c" and .mode=="0o755" and .result==0'
logged '.op=="create" and .path=="/a/b/c/f.txt" and .mode=="0o100644" and .result==0'
logged '.op=="write" and .path=="/a/b/c/f.txt" and .size==6 and .offset==0 and .data=="aGVsbG8K" and .result==6'
logged '.op=="read" and .path=="/a/b/c/f.txt" and .result==6'
logged '.op=="rename" and .path=="/a/b/c/f.txt" and .new_path=="/a/g.txt" and .result==0'
logged '.op=="chmod" and .path=="/a/g.txt" and .mode=="0o100600" and .result==0'
logged '.op=="symlink" and .path=="/a/link" and .target=="g.txt" and .result==0'
logged '.op=="truncate" and .path=="/a/g.txt" and .length==3 and .result==0'
logged '.op=="utimens" and .path=="/a/g.txt" and .mtime=="2020-01-02T03:04:05.000000000Z" and .result==0'
logged '.op=="unlink" and .path=="/a/tmp.txt" and .result==0'
logged '.op=="rmdir" and .path=="/a/b/c" and .result==0'
logged '.op=="getattr" and .path=="/a/missing" and .error=="ENOENT"'
logged '.op=="release" and (.fh|type)=="number" and .result==0'

# In the foreground, payloads as hashes; a killed server has lost no line.
hashed=$scratch/hashed.log
"$llmfuse" loopback "$src" "$mnt" --log "$hashed" --log-data=hash -f &
server=$!
for _ in $(seq 100); do mounted && break; sleep 0.05; done
mounted || fail "the foreground loopback did not mount"
printf 'hashed payload' >"$mnt/h.txt"
kill -9 "$server"
wait "$server" 2>/dev/null || true
fusermount3 -u "$mnt"
log=$hashed
logged '.op=="write" and .path=="/h.txt" and .size==14 and (.data_xxh64|test("^[0-9a-f]{16}$")) and .data==null and .result==14'
[ "$(cat "$src/h.txt")" = "hashed payload" ] || fail "h.txt did not reach SRC"

expect_failure 1 "usage" "$llmfuse" loopback "$src" "$mnt"
expect_failure 1 "'full' or 'hash'" "$llmfuse" loopback "$src" "$mnt" --log "$log" --log-data=some
expect_failure 1 "no-such-dir" "$llmfuse" loopback "$scratch/no-such-dir" "$mnt" --log "$log"
echo "loopback mount: ok"
