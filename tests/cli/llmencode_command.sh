# llmencode's command line: gzip conventions, round trips, damage handling.
source "$(dirname "$0")/lib.bash"
llmencode=$build/llmencode
canterbury=$source_dir/../shared/bench/canterbury
cd "$scratch"

# Round trips of small edge cases through files and pipes.
: >empty
printf 'x' >one
printf "$(printf '\\%03o' $(seq 0 255))" >all-bytes
head -c 300000 /dev/urandom >random
for file in empty one all-bytes random; do
  cp "$file" "$file.orig"
  "$llmencode" -q "$file" || fail "compress $file"
  [ ! -e "$file" ] || fail "$file not removed after compression"
  [ -s "$file.llmz" ] || fail "$file.llmz missing"
  "$llmencode" -d "$file.llmz" || fail "decompress $file"
  [ ! -e "$file.llmz" ] || fail "$file.llmz not removed after decompression"
  cmp "$file" "$file.orig" || fail "$file differs after a round trip"
  "$llmencode" -c <"$file" | "$llmencode" -d | cmp - "$file" || fail "pipe round trip of $file"
done
# Random data: stored, so it grows only by the header (at most 32 bytes).
size=$("$llmencode" -c random | wc -c)
[ "$size" -le $((300000 + 32)) ] || fail "random data grew to $size bytes"

# Every Canterbury file round-trips with the adaptive model, and text
# shrinks (tests/cli/default_model.sh covers the default model). Under the
# sanitizers (ten times slower) the small files only; the optimised build
# runs them all.
if [ -d "$canterbury" ]; then
  for file in "$canterbury"/*; do
    [ "${LLMFUSE_SANITIZED:-0}" = 1 ] && [ "$(stat -c %s "$file")" -gt 200000 ] && continue
    name=$(basename "$file")
    "$llmencode" -m cm -c "$file" >"$name.llmz" || fail "compress $name"
    "$llmencode" -dc "$name.llmz" | cmp - "$file" || fail "$name differs after a round trip"
  done
  [ "$(wc -c <alice29.txt.llmz)" -lt 45000 ] || fail "alice29.txt compressed poorly"
fi

# Conventions: -k, -o, -f, refusing to overwrite, suffixes, several files.
printf 'hello llmfuse\n' >a.txt
printf 'second file\n' >b.txt
"$llmencode" -k a.txt b.txt || fail "two files"
[ -e a.txt ] && [ -e a.txt.llmz ] && [ -e b.txt.llmz ] || fail "-k or several files"
expect_failure 1 "already exists" "$llmencode" -k a.txt
"$llmencode" -kf a.txt || fail "-f overwrites"
"$llmencode" -dk -o restored.txt a.txt.llmz || fail "-o"
cmp restored.txt a.txt || fail "-o output differs"
expect_failure 2 "unknown suffix" "$llmencode" -d a.txt
expect_failure 2 "already has .llmz suffix" "$llmencode" a.txt.llmz
expect_failure 1 "-o takes a single input" "$llmencode" -o x a.txt b.txt
"$llmencode" -t a.txt.llmz b.txt.llmz || fail "-t on good archives"
"$llmencode" -l a.txt.llmz >listing || fail "-l"
grep -q "a.txt.llmz" listing && grep -q "uncompressed" listing || fail "-l output: $(cat listing)"
"$llmencode" -V | grep -q "llmencode" || fail "-V"
"$llmencode" -h | grep -q "usage" || fail "-h"
"$llmencode" -v -c a.txt 2>stats >/dev/null || fail "-v"
grep -q "bits/byte" stats && grep -q "MB/s" stats || fail "-v statistics: $(cat stats)"

# An output that is a device is written into, never replaced by a file (a
# private null device, so a regression cannot break the system's).
if mknod null-device c 1 3 2>/dev/null; then
  "$llmencode" -k -f -o null-device a.txt || fail "-o onto a device"
  [ -c null-device ] || fail "-o replaced a device node with a file"
fi

# Damage: a clear message, exit 1, and no output file (not even a temporary).
cp a.txt.llmz damaged.txt.llmz
printf '\x55' | dd of=damaged.txt.llmz bs=1 seek=20 conv=notrunc 2>/dev/null
expect_failure 1 "corrupted" "$llmencode" -d damaged.txt.llmz
[ ! -e damaged.txt ] || fail "a damaged archive left an output file"
head -c 25 a.txt.llmz >cut.txt.llmz
expect_failure 1 "truncated" "$llmencode" -d cut.txt.llmz
[ ! -e cut.txt ] || fail "a truncated archive left an output file"
ls -A | grep -q "tmp-" && fail "a temporary file was left behind"
expect_failure 1 "not an llmz archive" "$llmencode" -d -c a.txt

# Another model: refused, naming both fingerprints.
"$llmencode" -c -m cm-small a.txt >small.llmz
expect_failure 1 "not with 'cm'" "$llmencode" -d -c -m cm small.llmz
"$llmencode" -d -c small.llmz | cmp - a.txt || fail "the archive's own built-in model is found by fingerprint"
expect_failure 1 "no model 'nonexistent'" "$llmencode" -c -m nonexistent a.txt

# Raw streams: payload only, ended by the end symbol.
"$llmencode" -c --format=raw a.txt >a.raw
"$llmencode" -d -c --format=raw a.raw | cmp - a.txt || fail "raw round trip"
[ "$(wc -c <a.raw)" -lt "$(wc -c <a.txt.llmz)" ] || fail "raw stream is not smaller than the archive"

# Thread counts never change the bytes. The default model on alice29 takes
# over an hour under the sanitizers on a machine without AVX-512, so there
# only a small file (tests/cli/determinism.sh covers threads on many
# segments with a small model).
threads_input=a.txt
[ "${LLMFUSE_SANITIZED:-0}" != 1 ] && [ -f "$canterbury/alice29.txt" ] && threads_input=$canterbury/alice29.txt
"$llmencode" -c -T 1 "$threads_input" >t1 || fail "-T 1 on $threads_input"
"$llmencode" -c -T 2 "$threads_input" >t2 || fail "-T 2 on $threads_input"
cmp t1 t2 || fail "-T 1 and -T 2 archives differ"
echo "llmencode command: ok"
