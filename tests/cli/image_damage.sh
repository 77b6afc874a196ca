# Damaged images (docs/FORMAT.md §7): every single-bit flip, truncation and
# appended junk is found and named, never crashes a command, and damage to
# one file's stream costs only that file:
#  (a) bit flips at fixed and seeded random offsets in copies of an image:
#      fsck exits 1 with a message; in a file's stream, fsck names the
#      stream's paths, `ls` is unchanged, `cat` of the file fails and every
#      other file reads back exactly; in the superblock or the stream table,
#      fsck, ls and mount refuse the image naming the part;
#  (b) truncations and appended bytes: "not an llmfuse image", "truncated",
#      "unexpected bytes";
#  (c) a mount of an image with a damaged file stream serves the other
#      files, fails reads of that one with EIO, and commits a change;
#  (d) another model than the image's is refused, naming both.
source "$(dirname "$0")/lib.bash"
export TZ=UTC LC_ALL=C
umask 022
command -v zstd >/dev/null || skip "zstd is missing (scripts/install-deps installs it)"
sanitized=${LLMFUSE_SANITIZED:-0}

# Runs "$@" with stdout in $scratch/out and stderr in $scratch/err, its exit
# status in $rc. Death by a signal or a sanitizer report fails the test
# (AddressSanitizer exits 1, like a clean refusal, so stderr is checked).
run() {
  rc=0
  "$@" >"$scratch/out" 2>"$scratch/err" || rc=$?
  [ "$rc" -lt 128 ] || fail "$* died with status $rc: $(head -c 2000 "$scratch/err")"
  ! grep -qE 'Sanitizer|runtime error:' "$scratch/err" ||
    fail "$*: sanitizer report: $(head -c 4000 "$scratch/err")"
}
# Runs "$@", which must exit 1 with WORDS (an extended regex) on stderr.
refused() {
  local words=$1; shift
  run "$@"
  [ "$rc" = 1 ] || fail "$* exited $rc, expected 1; stderr: $(cat "$scratch/err")"
  grep -qE -- "$words" "$scratch/err" || fail "$*: stderr lacks /$words/: $(cat "$scratch/err")"
}

# A small tree: text the model codes, a short file and a gzip file that are
# stored, a duplicate pair (one stream, two names), hard links, an empty
# file, a symlink.
src=$scratch/src image=$scratch/image mnt=$scratch/mnt
mkdir -p "$src/sub/deep" "$mnt"
cleanup_hooks+=("fusermount3 -u -z '$mnt' 2>/dev/null") # should a refused mount have mounted
seq 1 300 | sed 's/^/line one /' >"$src/file1.txt"
seq 1 500 | sed 's/^/the second file, line /' >"$src/file2.txt"
head -c 2500 "$source_dir/README.md" >"$src/sub/deep/readme.md"
printf 'hello world\n' >"$src/sub/hello.txt"
seq 1 2000 | gzip -9n >"$src/numbers.gz"
printf 'the same words twice\n%.0s' $(seq 20) >"$src/dup_a.txt"
cp "$src/dup_a.txt" "$src/sub/dup_b.txt"
seq 1 120 | sed 's/^/linked /' >"$src/hard.txt"
ln "$src/hard.txt" "$src/sub/hard_link.txt"
: >"$src/empty"
ln -s file1.txt "$src/link"
files=()
while IFS= read -r path; do files+=("/${path#"$src"/}"); done < <(find "$src" -type f | sort)

# One stream per content here (--pack-size 0); packs are (e)'s.
run "$llmfuse" mkfs "$src" "$image" -m cm -q --pack-size 0
[ "$rc" = 0 ] || fail "mkfs failed: $(cat "$scratch/err")"
run "$llmfuse" fsck "$image"
[ "$rc" = 0 ] || fail "fsck of the undamaged image failed: $(cat "$scratch/err")"
run "$llmfuse" ls "$image"
[ "$rc" = 0 ] || fail "ls of the undamaged image failed: $(cat "$scratch/err")"
cp "$scratch/out" "$scratch/ls.expected"
size=$(stat -c %s "$image")

# The layout, read with the shell's own parser of the format: the
# superblock's u64 at byte 24 is the table's offset; the table is one zstd
# frame of a varint stream count, then per stream its kind (1 byte), XXH32
# (4), varints stored size, original size and prefix size, and the prefix
# (a file's path and a newline); the streams lie back to back from byte 64.
table_offset=$(od -An -v -tu8 --endian=little -j24 -N8 "$image" | tr -d ' ')
table=($(tail -c +$((table_offset + 1)) "$image" | zstd -dcq | od -An -v -tu1))
at=0
varint() { # the varint at table[at] into $value
  local shift=0 byte
  value=0
  while :; do
    byte=${table[at++]}
    value=$((value | (byte & 127) << shift))
    [ "$byte" -lt 128 ] && break
    shift=$((shift + 7))
  done
}
varint
stream_count=$value
stream_start=() stream_end=() stream_paths=()
offset=64
for ((i = 0; i < stream_count; i++)); do
  at=$((at + 5)) # kind and checksum
  varint; stored=$value
  varint; varint; prefix_size=$value
  prefix=
  for ((j = 0; j < prefix_size - 1; j++)); do prefix+=$(printf "\\$(printf %03o "${table[at + j]}")"); done
  at=$((at + prefix_size))
  stream_start[i]=$offset
  stream_end[i]=$((offset + stored))
  offset=$((offset + stored))
  # every file holding the stream's content (duplicates, hard links)
  stream_paths[i]=
  if [ "$i" -ge 2 ]; then
    for file in "${files[@]}"; do
      cmp -s "$src/$prefix" "$src$file" && stream_paths[i]+="$file "
    done
    [ -n "${stream_paths[i]}" ] || fail "stream $i's prefix '$prefix' names no file"
  fi
done
[ "$offset" = "$table_offset" ] || fail "the streams end at $offset, the table starts at $table_offset"
[ "$at" = "${#table[@]}" ] || fail "the table has ${#table[@]} bytes, its entries $at"
[ "$stream_count" = 9 ] || fail "expected 9 streams (metadata, node table, 7 contents), got $stream_count"

# Which part holds byte $1: "superblock", "table" or a stream's index.
part_at() {
  local offset=$1 i
  if [ "$offset" -lt 64 ]; then part=superblock; return; fi
  if [ "$offset" -ge "$table_offset" ]; then part=table; return; fi
  for ((i = 0; i < stream_count; i++)); do
    if [ "$offset" -lt "${stream_end[i]}" ]; then part=$i; return; fi
  done
}
flip() { # copies the image to $2 with bit $3 of byte $1 flipped
  local byte
  byte=$(od -An -tu1 -j "$1" -N1 "$image" | tr -d ' ')
  cp "$image" "$2"
  printf "\\$(printf %03o $((byte ^ (1 << $3))))" | dd of="$2" bs=1 seek="$1" conv=notrunc status=none
}

# (a) Offsets: bytes of every superblock field, the first, middle and last
# byte of every stream and of the table, then seeded random ones.
offsets=(0 7 8 12 16 23 24 32 40 48 52 56 59 60 63 "$table_offset" $(((table_offset + size) / 2)) $((size - 1)))
for ((i = 0; i < stream_count; i++)); do
  offsets+=("${stream_start[i]}" $(((stream_start[i] + stream_end[i]) / 2)) $((stream_end[i] - 1)))
done
RANDOM=20261127
random_count=20
[ "$sanitized" = 1 ] && random_count=6
for ((i = 0; i < random_count; i++)); do offsets+=($(((RANDOM * 32768 + RANDOM) % size))); done

# fsck runs as a user would; ls, cat and info name the model (-m cm), which
# saves them opening the built-in transformer to match the fingerprint.
# Under the sanitizers every command is slow: there the other files are
# read back after the first flip in each stream only.
damaged=$scratch/damaged
declare -A hit=()
for offset in "${offsets[@]}"; do
  bit=$((offset * 5 % 8))
  flip "$offset" "$damaged" "$bit"
  part_at "$offset"
  first_in_part=$([ -z "${hit[$part]:-}" ] && echo 1 || echo 0)
  hit[$part]=1
  where="byte $offset bit $bit ($([[ $part =~ ^[0-9]+$ ]] && echo "stream $part" || echo "$part"))"
  run "$llmfuse" fsck "$damaged"
  [ "$rc" = 1 ] || fail "fsck exited $rc on a flip at $where: $(cat "$scratch/err")"
  [ -s "$scratch/err" ] || fail "fsck gave no message for a flip at $where"
  case $part in
  superblock | table)
    if [ "$part" = table ]; then words='the stream table is damaged'
    elif [ "$offset" -lt 8 ]; then words='not an llmfuse image' # the magic
    else words='the superblock is damaged'; fi
    grep -qF "$words" "$scratch/err" || fail "fsck on a flip at $where: no '$words': $(cat "$scratch/err")"
    refused "$words" "$llmfuse" ls "$damaged" -m cm
    refused "$words" "$llmfuse" cat "$damaged" /file1.txt -m cm
    refused "$words" timeout 60 "$llmfuse" mount "$damaged" "$mnt"
    ! grep -qs " $mnt fuse" /proc/mounts || fail "mount mounted an image with a flip at $where"
    ;;
  0 | 1)
    words=$([ "$part" = 0 ] && echo metadata || echo 'node table')
    grep -qF "damaged: stream $part (the $words)" "$scratch/err" ||
      fail "fsck on a flip at $where does not name the $words: $(cat "$scratch/err")"
    refused "the $words is damaged" "$llmfuse" ls "$damaged" -m cm
    refused "the $words is damaged" "$llmfuse" cat "$damaged" /file1.txt -m cm
    ;;
  *)
    [ "$(grep -c 'damaged: stream' "$scratch/err")" = 1 ] &&
      grep -q "damaged: stream $part (" "$scratch/err" ||
      fail "fsck on a flip at $where does not name stream $part alone: $(cat "$scratch/err")"
    for file in ${stream_paths[part]}; do
      grep "damaged: stream $part (" "$scratch/err" | grep -qF "$file" ||
        fail "fsck on a flip at $where does not name $file: $(cat "$scratch/err")"
    done
    # the metadata is intact: ls shows the same tree
    run "$llmfuse" ls "$damaged" -m cm
    [ "$rc" = 0 ] && cmp -s "$scratch/out" "$scratch/ls.expected" ||
      fail "ls changed with a flip at $where: $(cat "$scratch/err")"
    run "$llmfuse" info "$damaged" -m cm
    [ "$rc" = 0 ] || fail "info failed with a flip at $where: $(cat "$scratch/err")"
    for file in "${files[@]}"; do
      if [[ " ${stream_paths[part]}" == *" $file "* ]]; then
        refused "'$file': its stream is damaged" "$llmfuse" cat "$damaged" "$file" -m cm
        [ -s "$scratch/out" ] && fail "cat of damaged $file wrote bytes (flip at $where)"
      elif [ "$sanitized" = 0 ] || [ "$first_in_part" = 1 ]; then
        run "$llmfuse" cat "$damaged" "$file" -m cm
        [ "$rc" = 0 ] && cmp -s "$scratch/out" "$src$file" ||
          fail "cat of undamaged $file (flip at $where) exited $rc or differs: $(cat "$scratch/err")"
      fi
    done
    ;;
  esac
done
for ((i = 0; i < stream_count; i++)); do [ -n "${hit[$i]:-}" ] || fail "no flip landed in stream $i"; done

# A damaged stream keeps unpack from making the directory at all.
offset=$(((stream_start[2] + stream_end[2]) / 2))
flip "$offset" "$damaged" 3
first=${stream_paths[2]%% *}
refused "cannot load the content of '${first#/}'" "$llmfuse" unpack "$damaged" "$scratch/unpacked" -m cm
[ ! -e "$scratch/unpacked" ] || fail "unpack made its directory from a damaged image"
! ls -d "$scratch"/unpacked.unpack-* 2>/dev/null || fail "unpack left its staging directory"

# (b) Truncations and junk.
cut() { head -c "$1" "$image" >"$damaged"; }
for length in 0 7; do
  cut "$length"
  refused "not an llmfuse image" "$llmfuse" fsck "$damaged"
  refused "not an llmfuse image" "$llmfuse" ls "$damaged"
done
for length in 63 64 $((table_offset - 1)) "$table_offset" $((size / 2)) $((size - 1)); do
  cut "$length"
  refused "truncated" "$llmfuse" fsck "$damaged"
  refused "truncated" "$llmfuse" ls "$damaged"
  refused "truncated" "$llmfuse" info "$damaged"
done
cut $((size - 1))
refused "truncated" timeout 60 "$llmfuse" mount "$damaged" "$mnt"
for junk in '\0' 'x' 'LLMFSIMG more junk\n'; do
  { cat "$image"; printf "$junk"; } >"$damaged"
  refused "unexpected bytes after the image's end" "$llmfuse" fsck "$damaged"
  refused "unexpected bytes after the image's end" "$llmfuse" cat "$damaged" /file1.txt
done
refused "unexpected bytes after the image's end" timeout 60 "$llmfuse" mount "$damaged" "$mnt"
refused "not an llmfuse image" "$llmfuse" fsck "$src/file1.txt"
refused "not a regular file" "$llmfuse" fsck "$src"
refused "No such file" "$llmfuse" ls "$scratch/missing"
! grep -qs " $mnt fuse" /proc/mounts || fail "mount mounted a damaged image"

# (d) Another model: refused naming the image's and the one given.
refused "the image was made with model [0-9a-f]+, not with 'cm-small'" "$llmfuse" ls "$image" -m cm-small
refused "not with 'cm-small'" "$llmfuse" fsck "$image" -m cm-small
refused "not with 'cm-small'" "$llmfuse" cat "$image" /file1.txt -m cm-small
refused "not with 'cm-small'" timeout 60 "$llmfuse" mount "$image" "$mnt" -m cm-small
refused "no model 'nonesuch'" "$llmfuse" ls "$image" -m nonesuch
run "$llmfuse" ls "$image" -m cm
[ "$rc" = 0 ] && cmp -s "$scratch/out" "$scratch/ls.expected" || fail "ls -m cm failed: $(cat "$scratch/err")"

# (e) Packs: small text files share a stream, so a flip there costs every
# file of that pack, which fsck names, and no other.
packed=$scratch/packed.img
run "$llmfuse" mkfs "$src" "$packed" -m cm -q
[ "$rc" = 0 ] || fail "mkfs with packs failed: $(cat "$scratch/err")"
packed_table=$(od -An -v -tu8 --endian=little -j24 -N8 "$packed" | tr -d ' ')
widest=0
for ((k = 1; k <= 12; k++)); do
  offset=$((64 + (packed_table - 64) * k / 13))
  byte=$(od -An -tu1 -j "$offset" -N1 "$packed" | tr -d ' ')
  cp "$packed" "$damaged"
  printf "\\$(printf %03o $((byte ^ 16)))" | dd of="$damaged" bs=1 seek="$offset" conv=notrunc status=none
  run "$llmfuse" fsck "$damaged"
  [ "$rc" = 1 ] || fail "fsck exited $rc on a flip in the packed image at byte $offset"
  named=$(sed -n 's/^llmfuse fsck: damaged: stream [0-9]* (\(.*\)): .*/\1/p' "$scratch/err")
  [ -n "$named" ] || fail "fsck names no stream for a flip at byte $offset: $(cat "$scratch/err")"
  [[ "$named" == the* ]] && continue # metadata or node table: (a) covers them
  count=$(($(tr -cd ',' <<<"$named" | wc -c) + 1))
  [ "$count" -gt "$widest" ] && widest=$count
  for file in "${files[@]}"; do
    run "$llmfuse" cat "$damaged" "$file" -m cm
    if [[ ", $named, " == *", $file, "* ]]; then
      [ "$rc" = 1 ] && [ ! -s "$scratch/out" ] || fail "$file of a damaged pack read (flip at byte $offset)"
    else
      [ "$rc" = 0 ] && cmp -s "$scratch/out" "$src$file" ||
        fail "$file, outside the damaged stream ($named), does not read back (flip at byte $offset)"
    fi
  done
done
[ "$widest" -ge 3 ] || fail "no flip hit a pack of several files (at most $widest named)"

# (c) A mount of an image with a damaged file stream (file2.txt's).
[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null ||
  { echo "image_damage: mount of a damaged image skipped (needs root and FUSE)"; exit 0; }
for ((i = 2; i < stream_count; i++)); do [ "${stream_paths[i]}" = "/file2.txt " ] && break; done
flip $(((stream_start[i] + stream_end[i]) / 2)) "$damaged" 6
cp "$damaged" "$scratch/damaged.before"
"$llmfuse" mount "$damaged" "$mnt" -f -m cm 2>"$scratch/mount.err" &
server=$! # the unmount hook ends it
for _ in $(seq 200); do grep -qs " $mnt fuse" /proc/mounts && break; sleep 0.05; done
grep -qs " $mnt fuse" /proc/mounts || fail "the damaged image did not mount: $(cat "$scratch/mount.err")"
for attempt in 1 2; do # the second read must fail again, not see an empty file
  run cat "$mnt/file2.txt"
  [ "$rc" = 1 ] && grep -q "Input/output error" "$scratch/err" ||
    fail "reading the damaged file through the mount (try $attempt): status $rc, $(cat "$scratch/err")"
done
for file in "${files[@]}"; do
  [ "$file" = /file2.txt ] || cmp -s "$mnt$file" "$src$file" || fail "$file reads wrong through the mount"
done
[ "$(stat -c %s "$mnt/file2.txt")" = "$(stat -c %s "$src/file2.txt")" ] || fail "file2.txt's size changed"
# Reads leave the image alone; a change commits, keeping the damaged stream
# as it is (still found by fsck) and the rest.
cmp -s "$damaged" "$scratch/damaged.before" || fail "reading through the mount rewrote the image"
printf 'new\n' >"$mnt/new.txt"
fusermount3 -u "$mnt"
wait "$server" || fail "the mount exited $? after unmounting: $(cat "$scratch/mount.err")"
! grep -qE 'Sanitizer|runtime error:' "$scratch/mount.err" || fail "mount: $(cat "$scratch/mount.err")"
grep -q "damaged" "$scratch/mount.err" || fail "the mount did not report the damaged stream"
refused "damaged: stream [0-9]+ \(/file2.txt\)" "$llmfuse" fsck "$damaged"
run "$llmfuse" cat "$damaged" /new.txt
[ "$rc" = 0 ] && [ "$(cat "$scratch/out")" = new ] || fail "the change was not committed: $(cat "$scratch/err")"
for file in "${files[@]}"; do
  [ "$file" = /file2.txt ] && continue
  run "$llmfuse" cat "$damaged" "$file"
  [ "$rc" = 0 ] && cmp -s "$scratch/out" "$src$file" || fail "$file differs after the commit"
done
echo "image_damage: ${#offsets[@]} bit flips, truncations, junk, wrong models and a damaged mount checked"
