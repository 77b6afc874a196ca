# The seed's "self-compression" as a test: models/fs.gguf codes the seed's
# toy state in at most 30 bytes of raw payload (the seed's fine-tuned
# Qwen3-4B: 21) and the held-out generated states of tests/golden/states
# (write completions of generator seed 424242, which no training run used;
# bench/self_compression.sh measures the same files) in fewer bytes than
# base.gguf; every payload decodes back to the state.
source "$(dirname "$0")/lib.bash"
fs_model=$source_dir/models/fs.gguf
[ -f "$fs_model" ] || skip "models/fs.gguf is not shipped"
llmencode=$build/llmencode

raw_size() { # MODEL FILE: the raw payload's bytes, after checking it decodes
  "$llmencode" --format=raw -m "$1" -c "$2" >"$scratch/raw" || fail "llmencode -m $1 $2 failed"
  "$llmencode" -d --format=raw -m "$1" -c "$scratch/raw" | cmp -s - "$2" ||
    fail "the raw payload of $2 under $1 does not decode back"
  stat -c %s "$scratch/raw"
}

toy=$(raw_size "$fs_model" "$source_dir/tests/golden/toy.xml")
[ "$toy" -le 30 ] || fail "fs.gguf codes the toy state in $toy bytes, more than 30"
for state in "$source_dir"/tests/golden/states/*.xml; do
  fine_tuned=$(raw_size "$fs_model" "$state")
  pretrained=$(raw_size base "$state")
  [ "$fine_tuned" -lt "$pretrained" ] ||
    fail "$(basename "$state"): fs.gguf codes it in $fine_tuned bytes, base.gguf in $pretrained"
done
echo "self-compression: ok (the toy in $toy bytes)"
