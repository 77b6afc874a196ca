# lf_fsx (tests/support/fsx.c), the fsx-style exerciser run inside our
# mounts, checked on a plain file: a clean run passes, a flipped shadow byte
# is reported at its offset, and the seed alone fixes the operations.
source "$(dirname "$0")/lib.bash"
fsx=$build/tests/lf_fsx
[ -x "$fsx" ] || fail "$fsx is not built (target lf_fsx)"
cd "$scratch"

# (a) 20000 operations on a healthy file: exit 0 and the one success line
"$fsx" "$scratch/first" --ops 20000 --seed 1 >out 2>err || fail "lf_fsx exited $?: $(cat err)"
[ "$(cat out)" = "lf_fsx: 20000 operations on $scratch/first, no mismatch (seed 1)" ] \
  || fail "unexpected success output: $(cat out)"
[ ! -s err ] || fail "a clean run wrote to stderr: $(cat err)"

# (b) a shadow byte flipped at op 5000 must be caught: exit 1 and a report
# naming the op, the first differing offset (the flipped one), the bytes on
# both sides and the ring of recent operations
expect_failure 1 "MISMATCH in " "$fsx" "$scratch/faulty" --ops 20000 --seed 1 --inject-fault 5000
for words in "first differing offset" "expected:" "actual:" "last 32 operations" "op 5000: "; do
  grep -qF -- "$words" err || fail "the mismatch report lacks '$words': $(cat err)"
done
flipped=$(sed -n 's/.*flipped the shadow.s byte at offset \([0-9]*\) .*/\1/p' err)
found=$(sed -n 's/.*first differing offset \([0-9]*\) .*/\1/p' err)
[ -n "$flipped" ] && [ "$flipped" = "$found" ] \
  || fail "reported offset '$found' is not the flipped one '$flipped': $(cat err)"

# (c) the same seed gives the same operations, hence the same final file;
# another seed gives another file
"$fsx" "$scratch/again" --ops 20000 --seed 1 >/dev/null || fail "second seed-1 run exited $?"
"$fsx" "$scratch/other" --ops 20000 --seed 2 >/dev/null || fail "seed-2 run exited $?"
digest() { sha256sum <"$1" | cut -d' ' -f1; }
[ "$(digest first)" = "$(digest again)" ] || fail "seed 1 twice left different files"
[ "$(digest first)" != "$(digest other)" ] || fail "seeds 1 and 2 left the same file"

# usage errors are exit 2, like system-call errors
expect_failure 2 "--ops wants a decimal number" "$fsx" "$scratch/x" --ops -5
expect_failure 2 "cannot create" "$fsx" "$scratch/missing-dir/x" --ops 1
echo "lf_fsx: clean run, injected fault and determinism all as expected"
