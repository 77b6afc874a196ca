# The shipped default model (models/base.gguf, built in as 'base'): every
# Canterbury text file round-trips with no options; the sizes meet the
# targets of models/README.md (deterministic bytes, so a regression in the
# model, the mixer or the fallback shows here); and the shipped model codes
# the same bytes with every kernel variant, thread count and batch size.
source "$(dirname "$0")/lib.bash"
llmencode=$build/llmencode
canterbury=$source_dir/../shared/bench/canterbury
[ "${LLMFUSE_SANITIZED:-0}" = 1 ] && skip "the transformer is too slow under the sanitizers; the optimised build runs this"
cd "$scratch"

# Kernels, threads and batches with the shipped model, on a text of the
# project's own (always there).
head -c 12000 "$source_dir"/docs/FORMAT.md >text
"$llmencode" -c text >reference.llmz
for kernels in native avx2 portable; do
  for threads in 1 2; do
    for batch in 1 3; do
      if [ "$kernels" = native ]; then
        "$llmencode" -T "$threads" --batch "$batch" -c text >variant.llmz
      else
        LLMFUSE_KERNELS=$kernels "$llmencode" -T "$threads" --batch "$batch" -c text >variant.llmz
      fi
      cmp -s variant.llmz reference.llmz || fail "kernels $kernels, -T $threads, --batch $batch: other bytes"
    done
  done
done
LLMFUSE_KERNELS=portable "$llmencode" -T 1 -dc reference.llmz | cmp - text || fail "portable kernels do not decode it"
# the archive names the model file's fingerprint: the file decodes it too
"$llmencode" -m "$source_dir/models/base.gguf" -dc reference.llmz | cmp - text \
  || fail "models/base.gguf does not decode an archive of the built-in model"

[ -d "$canterbury" ] || skip "no Canterbury corpus at $canterbury"
# name, then the bound each must stay under: paq8px -8 for the small files
# (issue 6), and 0.75 x xz -9e for the total
files="alice29.txt asyoulik.txt cp.html fields.c grammar.lsp lcet10.txt plrabn12.txt xargs.1"
declare -A bound=([cp.html]=5408 [fields.c]=2027 [grammar.lsp]=861 [xargs.1]=1295)
total=0
for name in $files; do
  "$llmencode" -c "$canterbury/$name" >"$name.llmz" || fail "compress $name"
  "$llmencode" -dc "$name.llmz" | cmp - "$canterbury/$name" || fail "$name differs after a round trip"
  size=$(wc -c <"$name.llmz")
  echo "$name: $size bytes"
  total=$((total + size))
  if [ -n "${bound[$name]:-}" ] && [ "$size" -ge "${bound[$name]}" ]; then
    fail "$name: $size bytes, not under paq8px's ${bound[$name]}"
  fi
done
echo "total: $total bytes (xz -9e: 391852)"
# asyoulik.txt (122 KiB) is two segments, one per core; --best keeps it whole
"$llmencode" -l asyoulik.txt.llmz | grep -qE ' 2 [0-9a-f]{16} asyoulik' || fail "asyoulik.txt: not two segments"
"$llmencode" --best -c "$canterbury/asyoulik.txt" >best.llmz || fail "compress --best"
"$llmencode" -l best.llmz | grep -qE ' 1 [0-9a-f]{16} best' || fail "--best: not one segment"
[ "$(wc -c <best.llmz)" -lt "$(wc -c <asyoulik.txt.llmz)" ] || fail "--best is not smaller"
"$llmencode" -dc best.llmz | cmp - "$canterbury/asyoulik.txt" || fail "--best round trip"
[ "$total" -le 293900 ] || fail "total $total bytes is over 0.75 x xz -9e (293,900)"
