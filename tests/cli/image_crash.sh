# Crash safety of a mounted image: the mount is killed with SIGKILL at
# seeded random moments while a writer keeps changing it (a few hundred KB
# of new text per round, so a commit takes a while) and commits by fsync and
# every second.  After every kill the image passes fsck and holds a state
# the mount could have committed: the marker file names a round that was
# written, no older than the image before the mount nor than the last round
# whose fsync returned, and every data file is that round's text (or, for a
# round after the marker's, a prefix of it).  Temporaries the killed commits
# leave beside the image (.image.tmp-XXXXXX) never take its place.  Every
# third kill waits for a temporary to appear, so that it lands in a commit's
# write or fsync; a random file of a few MB that every commit copies makes
# those last long enough.  Then a clean
# unmount and a SIGTERM each commit everything.
source "$(dirname "$0")/lib.bash"
require_fuse
export TZ=UTC LC_ALL=C
umask 022
sanitized=${LLMFUSE_SANITIZED:-0}

# Runs "$@" with stdout in $scratch/out and stderr in $scratch/err, its exit
# status in $rc; a signal or a sanitizer report fails the test.
run() {
  rc=0
  "$@" >"$scratch/out" 2>"$scratch/err" || rc=$?
  [ "$rc" -lt 128 ] || fail "$* died with status $rc: $(head -c 2000 "$scratch/err")"
  ! grep -qE 'Sanitizer|runtime error:' "$scratch/err" ||
    fail "$*: sanitizer report: $(head -c 4000 "$scratch/err")"
}

tries=24
lines=5000 # about 300 KB a round: coding it takes a few tenths of a second
blob_kib=3072
[ "$sanitized" = 1 ] && lines=1000 blob_kib=512
image=$scratch/image mnt=$scratch/mnt expected=$scratch/expected
mkdir -p "$mnt" "$expected" "$scratch/tree"
cleanup_hooks+=("fusermount3 -u -z '$mnt' 2>/dev/null")

# Round $1's data file: text no other round has.
content() {
  awk -v r="$1" -v n="$lines" 'BEGIN {
    split("alpha beta gamma delta epsilon zeta eta theta iota kappa", words, " ")
    x = r * 7919 + 1
    for (i = 0; i < n; i++) {
      x = (x * 69069 + 1) % 4294967296
      printf "round %d line %d: %s %s %d\n", r, i, words[x % 10 + 1], words[int(x / 10) % 10 + 1], x % 1000
    }
  }'
}
content 0 >"$expected/data_0"
cp "$expected/data_0" "$scratch/tree/data_0"
head -c "${blob_kib}K" /dev/urandom >"$expected/blob"
cp "$expected/blob" "$scratch/tree/blob"
echo 0 >"$scratch/tree/marker"
run "$llmfuse" mkfs "$scratch/tree" "$image" -m cm -q
[ "$rc" = 0 ] || fail "mkfs failed: $(cat "$scratch/err")"
echo 0 >"$scratch/started" # the last round the writer began
echo 0 >"$scratch/synced"  # the last round whose marker's fsync returned

mounted() { grep -qs " $mnt fuse" /proc/mounts; }
mount_image() {
  "$llmfuse" mount "$image" "$mnt" -f --commit-interval 1 2>>"$scratch/mount.err" &
  server=$!
  for _ in $(seq 400); do mounted && return; kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
  fail "the image did not mount: $(cat "$scratch/mount.err")"
}

# Rounds through the mount until something fails (the mount's death): round
# k writes data_k, commits it (fsync), replaces the marker with k by a rename,
# commits that, then removes the previous round's file.  It starts by
# removing what earlier sessions left besides the marker's round.
writer() {
  set +e
  local previous=$1 k
  for file in "$mnt"/data_* "$mnt/marker.tmp"; do
    [ "$file" = "$mnt/data_$previous" ] || rm -f "$file" || return
  done
  while :; do
    k=$(($(cat "$scratch/started") + 1))
    echo "$k" >"$scratch/started"
    content "$k" >"$expected/data_$k"
    cp "$expected/data_$k" "$mnt/data_$k" || return
    sync "$mnt/data_$k" || return
    echo "$k" >"$mnt/marker.tmp" || return
    mv "$mnt/marker.tmp" "$mnt/marker" || return
    sync "$mnt/marker" || return
    echo "$k" >"$scratch/synced"
    rm "$mnt/data_$previous" || return
    previous=$k
  done
}

# Checks the image after a mount ended; $1 is the marker of the image
# before the mount. Sets $marker.
verify() {
  local before=$1 started synced path round size
  started=$(cat "$scratch/started") synced=$(cat "$scratch/synced")
  run "$llmfuse" fsck "$image" -m cm
  [ "$rc" = 0 ] || fail "fsck after $context: $(cat "$scratch/err")"
  run "$llmfuse" cat "$image" /marker -m cm
  [ "$rc" = 0 ] || fail "no marker after $context: $(cat "$scratch/err")"
  marker=$(cat "$scratch/out")
  [[ $marker =~ ^[0-9]+$ ]] || fail "the marker is '$marker' after $context"
  [ "$marker" -ge "$before" ] || fail "after $context the image went back from round $before to $marker"
  [ "$marker" -ge "$synced" ] || fail "after $context the image lost round $synced, whose fsync had returned (it holds $marker)"
  [ "$marker" -le "$started" ] || fail "after $context the marker is $marker, past the rounds written ($started)"
  run "$llmfuse" ls "$image" -m cm
  [ "$rc" = 0 ] || fail "ls after $context: $(cat "$scratch/err")"
  local listing found_marker_round=0
  listing=$(awk 'NR > 1 { print $NF }' "$scratch/out")
  for path in $listing; do
    case $path in
    /marker | /marker.tmp) continue ;;
    /blob)
      run "$llmfuse" cat "$image" /blob -m cm
      [ "$rc" = 0 ] && cmp -s "$scratch/out" "$expected/blob" || fail "after $context /blob differs"
      continue
      ;;
    /data_*) round=${path#/data_} ;;
    *) fail "after $context the image holds '$path'" ;;
    esac
    [[ $round =~ ^[0-9]+$ ]] && [ "$round" -le "$started" ] || fail "after $context the image holds '$path'"
    run "$llmfuse" cat "$image" "$path" -m cm
    [ "$rc" = 0 ] || fail "cat $path after $context: $(cat "$scratch/err")"
    if [ "$round" -le "$marker" ]; then
      cmp -s "$scratch/out" "$expected/data_$round" || fail "after $context $path is not round $round's text"
    else # written after the marker's round: may be partly there
      size=$(stat -c %s "$scratch/out")
      [ "$size" -le "$(stat -c %s "$expected/data_$round")" ] &&
        cmp -s -n "$size" "$scratch/out" "$expected/data_$round" ||
        fail "after $context $path is not a prefix of round $round's text"
    fi
    [ "$round" = "$marker" ] && found_marker_round=1
  done
  grep -qx /blob <<<"$listing" || fail "after $context /blob is missing"
  [ "$found_marker_round" = 1 ] || fail "after $context the marker says $marker but data_$marker is missing"
}

# Temporaries left beside the image: counted, checked, removed.
leftovers=0
sweep_temporaries() {
  local file
  for file in "$scratch"/.image.tmp-* "$scratch"/*; do
    [ -e "$file" ] || continue
    case ${file#"$scratch"/} in
    .image.tmp-??????) leftovers=$((leftovers + 1)) left_this_time=1; rm -f "$file" ;;
    image | mnt | expected | tree | started | synced | mount.err | out | err) ;;
    *) fail "after $context an unexpected file lies beside the image: $file" ;;
    esac
  done
}

RANDOM=1127
marker=0 advanced=0 mid_commit=0
for ((try = 1; try <= tries; try++)); do
  before=$marker
  mount_image
  writer "$before" >/dev/null 2>&1 &
  writing=$!
  delay=$((100 + (RANDOM * 32768 + RANDOM) % 2400)) # milliseconds
  sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
  if ((try % 3 == 0)); then
    # then, as soon as a commit's temporary appears: in its write or fsync
    deadline=$((SECONDS + 5))
    until compgen -G "$scratch/.image.tmp-*" >/dev/null || [ "$SECONDS" -ge "$deadline" ]; do :; done
    delay+=" and a temporary"
  fi
  kill -9 "$server" 2>/dev/null ||
    fail "the mount died before kill $try: $(tail -n 40 "$scratch/mount.err")"
  wait "$server" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$writing" 2>/dev/null || break; sleep 0.05; done
  kill "$writing" 2>/dev/null || true # stuck: the kernel did not fail its request
  wait "$writing" 2>/dev/null || true
  fusermount3 -u -z "$mnt"
  context="kill $try (after ${delay} ms)"
  left_this_time=0
  sweep_temporaries
  mid_commit=$((mid_commit + left_this_time))
  verify "$before"
  [ "$marker" -gt "$before" ] && advanced=$((advanced + 1))
done
[ "$advanced" -gt 0 ] || fail "no kill came after a commit: the writer never got going"

# A clean unmount commits what was not committed yet, and leaves no temporary.
mount_image
before=$marker
k=$(($(cat "$scratch/started") + 1))
echo "$k" >"$scratch/started"
content "$k" >"$expected/data_$k"
cp "$expected/data_$k" "$mnt/data_$k"
echo "$k" >"$mnt/marker"
fusermount3 -u "$mnt"
wait "$server" || fail "the mount exited $? after a clean unmount: $(tail -n 5 "$scratch/mount.err")"
context="a clean unmount"
left_this_time=0
sweep_temporaries
[ "$left_this_time" = 0 ] || fail "a clean unmount left a temporary"
echo "$k" >"$scratch/synced"
verify "$before"

# So does SIGTERM.
mount_image
k=$(($(cat "$scratch/started") + 1))
echo "$k" >"$scratch/started"
content "$k" >"$expected/data_$k"
cp "$expected/data_$k" "$mnt/data_$k"
echo "$k" >"$mnt/marker"
kill -TERM "$server"
wait "$server" || fail "the mount exited $? after SIGTERM: $(tail -n 5 "$scratch/mount.err")"
fusermount3 -u -z "$mnt" 2>/dev/null || true
context="SIGTERM"
left_this_time=0
sweep_temporaries
[ "$left_this_time" = 0 ] || fail "SIGTERM left a temporary"
echo "$k" >"$scratch/synced"
verify "$k"

! grep -qE 'Sanitizer|runtime error:' "$scratch/mount.err" ||
  fail "the mount reported: $(grep -E -A 20 'Sanitizer|runtime error:' "$scratch/mount.err" | head -c 4000)"
echo "image_crash: $tries kills, $advanced after new commits, $mid_commit left a temporary (a commit cut short); rounds up to $k"
