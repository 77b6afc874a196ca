# .gz files in images: those that `gzip -9` made (the gzip program on this
# machine, on text of many sizes) are stored as their header and their text
# and come back byte for byte; any other .gz (another level, a name in the
# header kept, two members, truncated, incompressible contents) is stored as
# it is and comes back byte for byte too. No mount is needed: unpack, cat
# and a mount's reads decode a stream the same way (lf_image_read_stream).
source "$(dirname "$0")/lib.bash"
export LC_ALL=C
command -v gzip >/dev/null || skip "gzip is missing"
cd "$scratch"
mkdir src

# Text of SIZE bytes from the project's docs and sources, cut at a different place
# for each size (documents, not random words: what .gz files hold).
cat "$source_dir"/docs/*.md "$source_dir"/src/*/*.c >docs.txt
docs_text() { head -c "$(($2 + $1))" docs.txt | tail -c "$1"; } # SIZE START
split_expected=0
for size in 1 100 3000 40000 70000 200000; do
  docs_text "$size" "$((size / 7 + 1))" | gzip -9n >"src/text$size.gz"
  # the text of the tiniest, with an archive's header, is no smaller
  [ "$size" -lt 1000 ] || split_expected=$((split_expected + 1))
done
docs_text 30000 5000 >named.txt
gzip -9 -c named.txt >src/named.gz # the name and time in the header are kept
split_expected=$((split_expected + 1))
# not split: another level, two members, a cut member, bytes gzip stored
docs_text 30000 9000 | gzip -6n >src/level6.gz
cat src/text3000.gz src/text100.gz >src/two_members.gz
head -c 2000 src/text40000.gz >src/truncated.gz
head -c 20000 /dev/urandom | gzip -9n >src/random.gz
: | gzip -9n >src/empty.gz
echo "not gzip" >src/plain.txt.gz

"$llmfuse" mkfs src gz.img -m cm -q || fail "mkfs"
"$llmfuse" info gz.img -m cm >info.out || fail "info"
row=$(grep -E '^gzip files +cm ' info.out) || fail "no gzip streams: $(cat info.out)"
streams=$(echo "$row" | awk '{print $4}')
[ "$streams" = "$split_expected" ] || fail "gzip streams: $streams, expected $split_expected: $(cat info.out)"
"$llmfuse" fsck gz.img -m cm >/dev/null || fail "fsck"
"$llmfuse" unpack gz.img out -m cm || fail "unpack"
diff -r src out || fail "unpack changed a .gz file"
"$llmfuse" cat gz.img text200000.gz -m cm | cmp - src/text200000.gz || fail "cat text200000.gz"
gzip -t out/text200000.gz out/named.gz || fail "gzip does not accept the rebuilt files"

# The stored text is the smaller part: the image holds less than the files.
files=$(cat src/text[1-9]???*.gz src/named.gz | wc -c)
stored=$(echo "$row" | awk '{print $6}')
[ "$stored" -lt "$files" ] || fail "gzip streams hold $stored bytes of $files"
echo "ok: $streams .gz files stored as text, $files bytes in $stored"
