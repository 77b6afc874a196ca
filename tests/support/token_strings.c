#include "token_strings.h"

#include <string.h>

enum { MOST_MERGES = 1024 };

lf_tokenizer *lf_test_tokenizer_of_strings(const char *const *strings, size_t count)
{
    static lf_tokenizer_merge merges[MOST_MERGES];
    uint32_t merge_count = 0;
    for (size_t s = 0; s < count; s++) {
        const uint8_t *text = (const uint8_t *)strings[s];
        uint32_t token = text[0];
        for (size_t i = 1; text[i]; i++) {
            lf_tokenizer_merge merge = {token, text[i]};
            uint32_t found = merge_count;
            for (uint32_t m = 0; m < merge_count; m++)
                if (merges[m].left == merge.left && merges[m].right == merge.right)
                    found = m;
            if (found == merge_count) {
                if (merge_count == MOST_MERGES)
                    return NULL;
                merges[merge_count++] = merge;
            }
            token = LF_TOKEN_FIRST_MERGE + found;
        }
    }
    lf_tokenizer *tokenizer;
    return lf_tokenizer_from_merges(merges, merge_count, &tokenizer, NULL) == 0 ? tokenizer : NULL;
}

uint32_t lf_test_token_id(const lf_tokenizer *tokenizer, const char *text)
{
    for (uint32_t id = 0; id < lf_tokenizer_vocab_size(tokenizer); id++) {
        size_t length;
        const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, id, &length);
        if (id != LF_TOKEN_ENDOFTEXT && bytes && length == strlen(text) &&
            memcmp(bytes, text, length) == 0)
            return id;
    }
    return UINT32_MAX;
}
