# Large inputs: a 100 MB generated text (several segments on both cores)
# round-trips byte for byte, and 64-bit sizes hold. Too slow under the
# sanitizers, so it runs in the optimised builds only.
source "$(dirname "$0")/lib.bash"
[ "${LLMFUSE_SANITIZED:-0}" = 1 ] && skip "too slow under the sanitizers"
llmencode=$build/llmencode
cd "$scratch"
# Deterministic pseudo-English: words drawn by a fixed-seed generator.
awk 'BEGIN {
  srand(1);
  split("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were their one all we can her has there been if more when will would who so no out up into do time only could new them man some these then two first may any like now my such make over our even most me state after also made many did must before back see through way where get much go well your know should down work year because come people just say each those take day good how long being himself use little three right very file directory model byte coder", words, " ");
  n = length(words); line = "";
  while (total < 100000000) {
    word = words[int(rand() * n) + 1];
    line = line word (rand() < 0.08 ? ".\n" : " ");
    if (length(line) > 4000) { printf "%s", line; total += length(line); line = "" }
  }
}' >big.txt
size=$(stat -c %s big.txt)
[ "$size" -ge 100000000 ] || fail "generated only $size bytes"
"$llmencode" -k -T 2 big.txt || fail "compress 100 MB"
"$llmencode" -l -v big.txt.llmz | grep -c "segment" | { read n; [ "$n" -ge 6 ] || fail "expected several segments, listed $n"; }
"$llmencode" -d -c -T 2 big.txt.llmz | cmp - big.txt || fail "100 MB round trip differs"
echo "large input: ok ($size bytes -> $(stat -c %s big.txt.llmz))"
