# Compressed filesystem images end to end: mkfs, then a mount of the image
# serves exactly the source tree (real trees: documentation, /etc, a held-out
# package's sources), unpack restores it with every kept attribute, a write
# workload through the mount survives unmount and remount as it would on a
# plain directory, lf_fsx finds no mismatch, a read-only mount changes
# nothing, and ls, cat, info and fsck report sensibly.
source "$(dirname "$0")/lib.bash"
require_fuse
export TZ=UTC LC_ALL=C
umask 022
fsx=$build/tests/lf_fsx
[ -x "$fsx" ] || fail "$fsx is not built (target lf_fsx)"
# The sanitizers slow coding about twentyfold (-m cm codes about 50 KB/s),
# and there each file costs about 0.1 s to code or decode: smaller trees
# (the real ones keep their directories and symlinks but one file in $thin,
# of at most 16 KiB; sizes in KiB) and fewer lf_fsx operations.
case "${LLMFUSE_SANITIZED:-0}" in ON | on | 1 | TRUE | true) sanitized=1 ;; *) sanitized=0 ;; esac
if [ "$sanitized" = 1 ]; then
  doc_budget=500 thin=5 random_size=20 sparse_size=64 fsx_ops=2500
else
  doc_budget=2500 thin=1 random_size=300 sparse_size=1024 fsx_ops=100000
fi
thin_out() { # DIR: deletes all but every $thin-th file below the top, and large ones
  [ "$thin" = 1 ] && return
  (cd "$1" && find . -mindepth 2 -type f | sort | awk -v n="$thin" 'NR % n' | tr '\n' '\0' | xargs -0 -r rm -f)
  find "$1" -type f -size +16k -delete
}
cd "$scratch"
# progress with the seconds spent so far, for the log
step() { echo "[${SECONDS}s] $*"; }

# ---- Mounting helpers ---------------------------------------------------
# Every mount runs in the foreground as a background job, so the test can
# wait for the process: the image holds every change once it has exited.
declare -A server=() # mountpoint -> pid of its llmfuse
mounted() { grep -qs " $(realpath -m "$1") fuse" /proc/mounts; }
unmount_everything() {
  local mountpoint
  for mountpoint in $(awk -v dir="$scratch/" 'index($2, dir) == 1 && $3 ~ /^fuse/ { print $2 }' /proc/mounts); do
    fusermount3 -u -q "$mountpoint" || fusermount3 -u -z -q "$mountpoint" || true
  done
  for mountpoint in "${!server[@]}"; do # give each server time to commit, then stop it
    local pid=${server[$mountpoint]}
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
cleanup_hooks+=(unmount_everything)

mount_image() { # IMAGE MNT [mount options...]
  local image=$1 mountpoint=$2
  shift 2
  mkdir -p "$mountpoint"
  "$llmfuse" mount "$image" "$mountpoint" -f "$@" 2>>"$scratch/mount.err" &
  server[$mountpoint]=$!
  for _ in $(seq 200); do
    mounted "$mountpoint" && return 0
    kill -0 "${server[$mountpoint]}" 2>/dev/null || break
    sleep 0.05
  done
  fail "mount of $image on $mountpoint did not come up: $(cat "$scratch/mount.err")"
}
unmount_image() { # MNT: unmounts and waits for the server, which must exit 0
  local mountpoint=$1 status=0
  fusermount3 -u "$mountpoint" || fail "fusermount3 -u $mountpoint failed"
  wait "${server[$mountpoint]}" || status=$?
  unset "server[$mountpoint]"
  [ "$status" = 0 ] || fail "the server of $mountpoint exited $status: $(cat "$scratch/mount.err")"
}

# ---- Comparison helpers -------------------------------------------------
# One line per entry: path, type, mode (set-id and sticky bits included),
# owner, group, mtime to the second, symlink target, link count.
metadata() {
  (cd "$1" && find . -printf '%P %y %m %U %G %TY-%Tm-%Td+%TH:%TM:%.2TS %l %n\n' | sort)
}
# Without times, with sizes: for trees where the kernel set times to "now".
metadata_without_times() {
  (cd "$1" && find . -printf '%P %y %m %U %G %s %l %n\n' | sort)
}
# Times only where something set them explicitly (before the workload
# began at second $2, tar's or touch -d's); any later time is "new".
explicit_times() {
  (cd "$1" && find . -printf '%P %Ts\n' | sort) |
    awk -v start="$2" '{ t = $NF; $NF = (t + 0 < start + 0) ? int(t) : "new"; print }'
}
# Regular files with several links, grouped by inode: the hard-link structure.
link_groups() {
  (cd "$1" && find . -type f -links +1 -printf '%i %P\n') | sort |
    awk '$1 != last { if (line != "") print line; line = ""; last = $1 } { line = line " " $2 } END { if (line != "") print line }' |
    sort
}
same_tree() { # SOURCE COPY WHAT: contents, metadata and hard links (inodes) equal
  diff -r --no-dereference "$1" "$2" >"$scratch/diff.out" 2>&1 ||
    fail "$3: contents differ: $(head -c 3000 "$scratch/diff.out")"
  diff <(metadata "$1") <(metadata "$2") >"$scratch/diff.out" ||
    fail "$3: metadata differ (< source, > copy): $(head -c 3000 "$scratch/diff.out")"
  diff <(link_groups "$1") <(link_groups "$2") >"$scratch/diff.out" ||
    fail "$3: hard links differ: $(head -c 3000 "$scratch/diff.out")"
}
digest() { sha256sum <"$1" | cut -d' ' -f1; }
make_image() { # SRC IMAGE [mkfs options]: must succeed, quietly
  "$llmfuse" mkfs "$@" -q 2>"$scratch/mkfs.err" || fail "mkfs $* exited $?: $(cat "$scratch/mkfs.err")"
}
check_image() {
  "$llmfuse" fsck "$1" >"$scratch/fsck.out" 2>&1 ||
    fail "fsck of $1 failed: $(cat "$scratch/fsck.out")"
  grep -q "every checksum and stream is sound" "$scratch/fsck.out" ||
    fail "fsck of $1 says: $(cat "$scratch/fsck.out")"
}

# ---- The trees ----------------------------------------------------------
# (a) a slice of /usr/share/doc: whole package directories, in name order,
# about 2.5 MB
mkdir doc
budget=$doc_budget
for entry in /usr/share/doc/*; do
  [ "$budget" -gt 0 ] || break
  size=$(du -sk "$entry" 2>/dev/null | cut -f1)
  [ -n "$size" ] && [ "$size" -le 1000 ] || continue
  cp -a "$entry" doc/ 2>/dev/null || continue
  budget=$((budget - size))
done
[ -n "$(ls doc)" ] || skip "/usr/share/doc is empty"

# (b) /etc, without what a copy cannot reproduce (unreadable files are left
# out by cp; fifos, sockets and devices cannot be stored in an image)
cp -a /etc etc 2>/dev/null || true
find etc \( -type p -o -type s -o -type b -o -type c \) -delete
thin_out etc

# (c) the sources of a Debian package held out from training, else this
# project's own src/
package_tree() {
  local corpus=/work/corpus package deb
  [ -f "$corpus/heldout.list" ] && [ -d "$corpus/debs" ] && command -v dpkg-deb >/dev/null || return 1
  for package in librust-clap-dev python3-jinja2 golang-github-spf13-cobra-dev \
    $(sed -n 's|.*/docs/heldout/\([^/]*\)/.*|\1|p' "$corpus/heldout.list" | sort -u); do
    grep -q "/docs/heldout/$package/" "$corpus/heldout.list" || continue
    grep -qx "$package" "$source_dir/corpus/train-packages.txt" 2>/dev/null && continue
    deb=$(ls "$corpus/debs/${package}_"*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] && dpkg-deb -x "$deb" package 2>/dev/null && echo "$package" && return 0
    rm -rf package
  done
  return 1
}
if ! package=$(package_tree); then
  package="this project's src/"
  cp -a "$source_dir/src" package
fi
thin_out package

# (d) a tree made for the attributes an image keeps
mkdir -p features/d/sub features/e/empty-dir "features/name with spaces" features/ünïcødé
(
  cd features
  printf 'hello\n' >d/f
  ln d/f e/hard # a hard link pair across directories
  : >empty
  truncate -s "${sparse_size}K" sparse &&
    printf middle | dd of=sparse bs=1 seek="$((sparse_size * 500))" conv=notrunc status=none
  truncate -s "$((sparse_size / 4))K" all-hole
  printf 'set-user-ID\n' >suid && chmod 4755 suid
  printf 'set-group-ID\n' >sgid && chmod 2711 sgid
  mkdir sticky && chmod 1777 sticky
  mkdir shared && chmod 2775 shared && chown 2000:2001 shared
  printf 'not root\n' >owned && chown 1234:5678 owned && chmod 640 owned
  printf 'private\n' >"name with spaces/private" && chmod 400 "name with spaces/private"
  printf 'unicode\n' >ünïcødé/ファイル
  ln -s d/f link
  ln -s /nonexistent/target dangling && chown -h 4321:8765 dangling
  ln -s ../.. d/sub/up
  seq 1 20000 >numbers
  head -c "$((random_size / 3))K" /dev/urandom >random.bin
  cp numbers numbers-copy # the same content twice: stored once
  touch -d '1999-12-31 23:59:59' d/f
  touch -h -d '2001-02-03 04:05:06' link
  touch -d '1970-01-01 00:00:01' empty
  touch -d '2038-01-19 03:14:08' numbers # past 32-bit time
  touch -d '2020-06-01 12:00:00' d/sub e sticky
)

# ---- 1. mkfs, mount, compare ---------------------------------------------
step "mkfs, mount and compare the trees"
mkdir mnt
for tree in doc etc package features; do
  step "  $tree"
  make_image "$tree" "$tree.img" -m cm
  check_image "$tree.img"
  image_digest=$(digest "$tree.img")
  mount_image "$tree.img" mnt --cache-size 1 # 1 MiB: contents are dropped and decoded again
  same_tree "$tree" mnt "the mount of $tree ($([ "$tree" = package ] && echo "$package" || echo "$tree"))"
  unmount_image mnt
  # reading commits nothing: the image is the one mkfs wrote
  [ "$(digest "$tree.img")" = "$image_digest" ] || fail "mounting and reading $tree.img changed it"
done

# ---- 2. unpack -------------------------------------------------------------
step "unpack"
for tree in features etc; do
  "$llmfuse" unpack "$tree.img" "$tree.unpacked" || fail "unpack of $tree.img exited $?"
  same_tree "$tree" "$tree.unpacked" "unpack of $tree"
done
[ "$(stat -c %i features.unpacked/d/f)" = "$(stat -c %i features.unpacked/e/hard)" ] ||
  fail "the hard link pair is not a hard link after unpack"
[ "$(stat -c %h features.unpacked/d/f)" = 2 ] || fail "d/f has $(stat -c %h features.unpacked/d/f) links after unpack"
# the sparse files are sparse again (at most a few blocks allocated)
[ "$(stat -c %b features.unpacked/all-hole)" -le 8 ] ||
  fail "all-hole came back dense: $(stat -c %b features.unpacked/all-hole) blocks"
[ "$(stat -c %b features.unpacked/sparse)" -le 16 ] ||
  fail "sparse came back dense: $(stat -c %b features.unpacked/sparse) blocks"
expect_failure 1 "exists" "$llmfuse" unpack features.img features.unpacked
ls -d features.unpacked.unpack-* >/dev/null 2>&1 && fail "unpack left a staging directory"

# mkfs: an existing image needs --force; a fifo is skipped with
# a message and exit 2, the rest stored
expect_failure 1 "--force" "$llmfuse" mkfs features features.img -m cm
mkdir special && printf 'kept\n' >special/kept && mkfifo special/fifo
expect_failure 2 "fifo" "$llmfuse" mkfs special special.img -m cm -q
[ "$("$llmfuse" cat special.img kept)" = kept ] || fail "the special tree's regular file is not in its image"
"$llmfuse" ls special.img >"$scratch/ls.out" || fail "ls special.img exited $?"
grep -q fifo "$scratch/ls.out" && fail "the fifo is in the image: $(cat "$scratch/ls.out")"

# ---- 3. a write workload through the mount ---------------------------------
# The payload tarball: a source tree (whatever src/fs and src/common hold),
# files the workload edits by name, the odd attributes, owners included.
step "the write workload"
mkdir payload payload/w
cp -a "$source_dir/src/fs" "$source_dir/src/common" payload/
for name in a.c b.c c.c d.c e.h f.h; do cat "$source_dir/src/fs/tree.h" >"payload/w/$name"; done
cp -a features/d features/e features/suid features/owned features/link features/numbers payload/
head -c "${random_size}K" /dev/urandom >payload/binary
chown 77:88 payload/w/c.c
touch -d '2019-05-06 07:08:09' payload/w/*
tar -C payload -cf payload.tar .
head -c "$((random_size * 2 / 3))K" /dev/urandom >incoming.bin
workload() { # in directory $1; every step must succeed
  (
    set -e
    cd "$1"
    tar --warning=no-timestamp -xf "$scratch/payload.tar"
    sed -i 's/int64_t/int64_t /g' w/a.c                              # a new file renamed over
    printf 'appended line\n' >>w/b.c                                 # appends
    printf 'appended twice\n' >>numbers
    dd if="$scratch/incoming.bin" of=binary bs=1000 seek=50 conv=notrunc status=none # overwrite inside
    cp "$scratch/incoming.bin" incoming.bin                          # a new file
    mv w/c.c w/renamed.c                                             # renames: a file,
    mv fs moved-fs                                                   # a directory,
    mv w/d.c moved-fs/                                               # across directories,
    mv numbers e/hard                                                # over a hard link
    rm w/e.h                                                         # deletes
    rm -r common d/sub
    chmod 750 w/f.h
    chmod 4711 suid
    chmod 1777 w
    chown 1000:1000 w/renamed.c
    chown -h 3000:3001 link
    ln -s ../w/f.h moved-fs/f-link
    ln -s ../missing w/dangling
    ln w/f.h f-hard
    ln owned e/owned-hard
    truncate -s 100 binary                                           # shrink
    truncate -s "$((sparse_size * 2))K" grown                        # a new sparse file
    truncate -s 50000 w/b.c                                          # grow
    mkdir -p new/deeper/deepest
    printf 'deep\n' >new/deeper/deepest/file
    ! rmdir new/deeper/deepest 2>/dev/null                           # not empty: must fail
    rm new/deeper/deepest/file
    rmdir new/deeper/deepest
    touch -d '2021-03-04 05:06:07' w/f.h incoming.bin new
    touch -h -d '2022-01-01 00:00:00' moved-fs/f-link
    touch -d '2023-07-08 09:10:11' .
  )
}
compare_workload() { # DIR START WHAT: DIR (workload started at second START) equals the plain run
  diff -r --no-dereference plain "$1" >"$scratch/diff.out" 2>&1 ||
    fail "$3: contents differ from the plain run: $(head -c 3000 "$scratch/diff.out")"
  diff <(metadata_without_times plain) <(metadata_without_times "$1") >"$scratch/diff.out" ||
    fail "$3: metadata differ from the plain run (< plain, > mount): $(head -c 3000 "$scratch/diff.out")"
  diff <(explicit_times plain "$plain_start") <(explicit_times "$1" "$2") >"$scratch/diff.out" ||
    fail "$3: times differ from the plain run (< plain, > mount): $(head -c 3000 "$scratch/diff.out")"
  diff <(link_groups plain) <(link_groups "$1") >"$scratch/diff.out" ||
    fail "$3: hard links differ from the plain run: $(head -c 3000 "$scratch/diff.out")"
}
# Both runs start from the features tree: on a plain copy and in its image.
cp -a features plain
plain_start=$(date +%s)
workload plain || fail "the workload failed on a plain directory"
make_image features work.img -m cm
mount_start=$(date +%s)
mount_image work.img mnt
workload mnt || fail "the workload failed through the mount"
compare_workload mnt "$mount_start" "the mount after the workload"
unmount_image mnt
check_image work.img
mount_image work.img mnt
compare_workload mnt "$mount_start" "the remounted image"
unmount_image mnt
"$llmfuse" unpack work.img work.unpacked || fail "unpack of work.img exited $?"
compare_workload work.unpacked "$mount_start" "unpack after the workload"

# The periodic commit: a change reaches the image while still mounted.
step "periodic commit, fsync, hard-link attributes"
mount_image work.img mnt --commit-interval 1
printf 'committed while mounted\n' >mnt/periodic
for _ in $(seq 100); do
  [ "$("$llmfuse" cat work.img periodic 2>/dev/null)" = "committed while mounted" ] && break
  sleep 0.1
done
[ "$("$llmfuse" cat work.img periodic 2>/dev/null)" = "committed while mounted" ] ||
  fail "no periodic commit within 10 s"
unmount_image mnt
# Without periodic commits, fsync commits at once.
mount_image work.img mnt --commit-interval 0
printf 'synced\n' >mnt/synced
sync mnt/synced # fsync(2) on the file
[ "$("$llmfuse" cat work.img synced)" = synced ] || fail "fsync did not commit"
# The other names of a hard-linked file show a change through one at once
# (no attributes cached from before it).
printf 'one\n' >mnt/h1
stat mnt/h1 >/dev/null
ln mnt/h1 mnt/h2
[ "$(stat -c %h mnt/h1)" = 2 ] || fail "h1 shows $(stat -c %h mnt/h1) links after ln h1 h2"
printf 'two\n' >>mnt/h2
[ "$(stat -c %s mnt/h1)" = 8 ] || fail "h1 shows $(stat -c %s mnt/h1) bytes after an append to h2"
rm mnt/h2
[ "$(stat -c %h mnt/h1)" = 1 ] || fail "h1 shows $(stat -c %h mnt/h1) links after rm h2"
unmount_image mnt

# Packs through commits: a pack most of whose files went is coded again
# without them; one still mostly in use is copied as it is.
step "packs through commits"
mkdir packs
for i in $(seq 10); do seq 1 80 | sed "s/^/pack member $(printf %02d "$i"), line /" >"packs/m$i.txt"; done
make_image packs packs.img -m cm
stored_contents() { # the original bytes of the image's file streams
  "$llmfuse" info "$1" -m cm | sed -n 's/^file content: .* bytes in files, \([0-9]*\) in distinct.*/\1/p'
}
member=$(stat -c %s packs/m1.txt)
[ "$(stored_contents packs.img)" = $((10 * member)) ] || fail "packs.img holds $(stored_contents packs.img) bytes"
[ "$("$llmfuse" info packs.img -m cm | grep -c '^file contents')" = 1 ] &&
  "$llmfuse" info packs.img -m cm | grep -Eq '^file contents +cm +1 ' &&
  "$llmfuse" info packs.img -m cm | grep -Eq '^packs: +1 of' || fail "the 10 files are not one pack"
mount_image packs.img mnt
rm mnt/m{1..7}.txt
unmount_image mnt
check_image packs.img
[ "$(stored_contents packs.img)" = $((3 * member)) ] ||
  fail "after deleting 7 of 10 files the pack holds $(stored_contents packs.img) bytes, not $((3 * member))"
mount_image packs.img mnt
rm mnt/m8.txt
unmount_image mnt
[ "$(stored_contents packs.img)" = $((3 * member)) ] || fail "a pack 2/3 in use was not copied"
for i in 9 10; do
  cmp -s <("$llmfuse" cat packs.img "m$i.txt") "packs/m$i.txt" || fail "m$i.txt differs after the commits"
done

# ---- 4. lf_fsx inside the mount ---------------------------------------------
# Every fsync (about one operation in fifty) commits the image, coding the
# file again: a small --max-size keeps 100,000 operations (fewer under the
# sanitizers) to about a minute.
step "lf_fsx"
make_image features fsx.img -m cm
mount_image fsx.img mnt
"$fsx" mnt/fsx.dat --ops "$fsx_ops" --seed 7 --max-size 8192 >"$scratch/fsx.out" 2>&1 ||
  fail "lf_fsx exited $?: $(tail -c 4000 "$scratch/fsx.out")"
grep -q "no mismatch" "$scratch/fsx.out" || fail "lf_fsx: $(cat "$scratch/fsx.out")"
left=$(digest mnt/fsx.dat)
unmount_image mnt
check_image fsx.img
[ "$("$llmfuse" cat fsx.img fsx.dat | sha256sum | cut -d' ' -f1)" = "$left" ] ||
  fail "llmfuse cat of the image does not give the file lf_fsx left"
mount_image fsx.img mnt
[ "$(digest mnt/fsx.dat)" = "$left" ] || fail "after remount fsx.dat is not what lf_fsx left"
diff -r --no-dereference --exclude=fsx.dat features mnt >/dev/null || fail "lf_fsx changed other files"
unmount_image mnt

# ---- 5. a read-only mount ------------------------------------------------
# Daemonised this time: the command returns once the mount is there.
step "read-only mount"
image_digest=$(digest features.img)
image_mtime=$(stat -c %Y features.img)
"$llmfuse" mount features.img mnt -o ro -m cm || fail "the read-only mount did not start"
mounted mnt || fail "mount returned without a mount"
erofs() { # a command that must fail with EROFS
  "$@" >/dev/null 2>"$scratch/err" && fail "'$*' succeeded on a read-only mount"
  grep -q "Read-only file system" "$scratch/err" || fail "'$*' did not fail with EROFS: $(cat "$scratch/err")"
}
erofs sh -c "printf x >mnt/new-file"
erofs sh -c "printf x >>mnt/d/f"
erofs sh -c ": >mnt/numbers" # open(O_TRUNC)
erofs mkdir mnt/new-dir
erofs rm mnt/empty
erofs mv mnt/numbers mnt/renamed
erofs chmod 600 mnt/owned
erofs chown 1:1 mnt/owned
erofs ln -s target mnt/new-link
erofs ln mnt/d/f mnt/new-hard
erofs truncate -s 0 mnt/numbers
erofs touch -d '2000-01-01' mnt/numbers
[ "$(cat mnt/d/f)" = hello ] || fail "a read-only mount does not read"
diff -r --no-dereference features mnt >/dev/null || fail "the read-only mount differs from its source"
fusermount3 -u mnt
for _ in $(seq 100); do grep -qsF "$scratch/features.img" /proc/[0-9]*/maps || break; sleep 0.1; done
grep -qsF "$scratch/features.img" /proc/[0-9]*/maps && fail "the read-only mount's server did not exit"
[ "$(digest features.img)" = "$image_digest" ] && [ "$(stat -c %Y features.img)" = "$image_mtime" ] ||
  fail "a read-only mount changed its image"

# ---- 6. ls, cat, info --------------------------------------------------------
step "ls, cat, info"
"$llmfuse" ls features.img >"$scratch/ls.out" || fail "ls exited $?"
[ "$(wc -l <"$scratch/ls.out")" = "$(find features | wc -l)" ] ||
  fail "ls lists $(wc -l <"$scratch/ls.out") entries, the tree has $(find features | wc -l): $(cat "$scratch/ls.out")"
grep -Eq '^-rwsr-xr-x +1 .* /suid$' "$scratch/ls.out" || fail "ls: no setuid /suid line: $(cat "$scratch/ls.out")"
grep -Eq '^drwxrwxrwt .* 2020-06-01 12:00:00 /sticky$' "$scratch/ls.out" || fail "ls: no sticky /sticky line"
grep -Eq '^-rw-r----- +1 1234 +5678 +9 .* /owned$' "$scratch/ls.out" || fail "ls: no /owned line with numeric owners"
grep -Eq '^-rw-r--r-- +2 .* 6 1999-12-31 23:59:59 /d/f$' "$scratch/ls.out" || fail "ls: no /d/f line"
grep -Eq '^lrwxrwxrwx .* 2001-02-03 04:05:06 /link -> d/f$' "$scratch/ls.out" || fail "ls: no /link line"
"$llmfuse" ls features.img /d >"$scratch/ls.out" || fail "ls of /d exited $?"
[ "$(sed 's/ -> .*//' "$scratch/ls.out" | awk '{ print $NF }' | tr '\n' ' ')" = "/d /d/f /d/sub /d/sub/up " ] ||
  fail "ls of /d: $(cat "$scratch/ls.out")"
expect_failure 1 "no/such/dir" "$llmfuse" ls features.img no/such/dir
cmp -s <("$llmfuse" cat features.img numbers) features/numbers || fail "cat numbers differs"
cmp -s <("$llmfuse" cat features.img /random.bin) features/random.bin || fail "cat /random.bin differs"
cmp -s <("$llmfuse" cat features.img sparse) features/sparse || fail "cat sparse differs"
[ -z "$("$llmfuse" cat features.img empty)" ] || fail "cat of the empty file printed something"
expect_failure 1 "no/such/file" "$llmfuse" cat features.img no/such/file
expect_failure 1 "d/sub" "$llmfuse" cat features.img d/sub
"$llmfuse" info features.img >"$scratch/info.out" || fail "info exited $?"
grep -Eq '^model: +cm ' "$scratch/info.out" || fail "info does not name the model: $(cat "$scratch/info.out")"
grep -q "$(find features -type d | wc -l) directories, $(find features -type f | wc -l) files, $(find features -type l | wc -l) symlinks" \
  "$scratch/info.out" || fail "info counts the nodes wrongly: $(cat "$scratch/info.out")"
grep -q "^total " "$scratch/info.out" || fail "info has no total: $(cat "$scratch/info.out")"

# ---- A small tree with the default model (too slow under the sanitizers) --
if [ "$sanitized" = 0 ]; then
  step "the default model"
  mkdir small small/sub
  cp "$source_dir/tests/cli/lib.bash" small/lib.bash
  printf '# notes\n\nA small tree coded by the shipped model.\n' >small/sub/README.md
  ln -s ../lib.bash small/sub/lib-link
  make_image small small.img
  "$llmfuse" info small.img >"$scratch/info.out" || fail "info small.img exited $?"
  grep -Eq '^model: +base ' "$scratch/info.out" || fail "small.img is not coded by base: $(cat "$scratch/info.out")"
  check_image small.img
  mount_image small.img mnt
  same_tree small mnt "the mount of the default-model tree"
  printf 'edited through the mount\n' >>mnt/sub/README.md
  unmount_image mnt
  check_image small.img
  printf 'edited through the mount\n' >>small/sub/README.md
  "$llmfuse" unpack small.img small.unpacked || fail "unpack of small.img exited $?"
  diff -r --no-dereference small small.unpacked >/dev/null || fail "the default-model image after an edit differs"
fi
[ ! -s "$scratch/mount.err" ] || fail "the mounts reported: $(head -c 3000 "$scratch/mount.err")"
echo "image mount: ok (package tree: $package)"
