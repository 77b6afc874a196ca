# `llmfuse xml` on real directories and documents.
source "$(dirname "$0")/lib.bash"

# The seed's toy tree prints exactly the seed's 394-byte document.
toy=$scratch/toy
mkdir "$toy"
"$source_dir/scripts/make-toy-tree" "$toy"
"$llmfuse" xml "$toy" >"$scratch/toy.xml"
cmp "$scratch/toy.xml" "$source_dir/tests/golden/toy.xml" || fail "toy tree XML differs from the seed's"
[ "$(wc -c <"$scratch/toy.xml")" = 394 ] || fail "toy tree XML is not 394 bytes"

# --check prints the canonical form: of the canonical form itself, and of
# the seed's pretty-printed rendering of the same state.
"$llmfuse" xml --check "$scratch/toy.xml" | cmp - "$source_dir/tests/golden/toy.xml" \
  || fail "--check changed a canonical document"
cat >"$scratch/pretty.xml" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<filesystem>
  <directory path="/" name="/" mode="755" owner="root" group="root" mtime="2025-01-01T00:00:00">
    <directory path="testdir" name="testdir" mode="755" owner="root" group="root" mtime="2025-01-01T00:00:00" />
    <file path="testfile.txt" name="testfile.txt" mode="644" owner="root" group="root" mtime="2025-01-01T00:00:01" size="14">
      <body>hello llmfuse
</body>
    </file>
  </directory>
</filesystem>
XML
"$llmfuse" xml --check - <"$scratch/pretty.xml" | cmp - "$source_dir/tests/golden/toy.xml" \
  || fail "--check of the pretty-printed toy state is not the canonical form"

# Symlinks are recorded, not followed; special files are reported and skipped.
tree=$scratch/tree
mkdir -p "$tree/sub"
printf 'data' >"$tree/sub/file"
ln -s sub/file "$tree/link"
ln -s /nonexistent "$tree/dangling"
mkfifo "$tree/fifo"
status=0
"$llmfuse" xml "$tree" >"$scratch/tree.xml" 2>"$scratch/err" || status=$?
[ "$status" = 2 ] || fail "a skipped fifo must exit 2 (warning), got $status"
grep -q "skipping fifo 'fifo'" "$scratch/err" || fail "fifo skip not reported"
grep -q '<symlink path="link" name="link" mode="777" owner="root" group="root" mtime="[^"]*" target="sub/file" />' \
  "$scratch/tree.xml" || fail "symlink not recorded: $(cat "$scratch/tree.xml")"
grep -q 'target="/nonexistent"' "$scratch/tree.xml" || fail "dangling symlink lost"

# Errors name the file and the problem, and exit 1.
expect_failure 1 "no-such-dir" "$llmfuse" xml "$scratch/no-such-dir"
printf '<filesystem><directory path="/" name="/" mode="9" owner="root" group="root" mtime="2025-01-01T00:00:00" /></filesystem>' >"$scratch/bad.xml"
expect_failure 1 "mode" "$llmfuse" xml --check "$scratch/bad.xml"
expect_failure 1 "usage" "$llmfuse" xml
expect_failure 1 "unknown command" "$llmfuse" frobnicate
echo "xml command: ok"
