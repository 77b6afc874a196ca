/* Tokenizers made by hand for tests: each given string becomes one token,
 * whatever the pre-tokenizer's chunks would allow (a token may span a tag's
 * end and the next tag's start), so the code that tries tokens meets every
 * shape of token a vocabulary may hold. */
#ifndef LLMFUSE_TEST_TOKEN_STRINGS_H
#define LLMFUSE_TEST_TOKEN_STRINGS_H

#include <stddef.h>

#include "model/tokenizer.h"

/* Merges that build each string (2 to LF_TOKENIZER_MAX_CHUNK bytes) from its
 * bytes left to right, sharing the merges of common prefixes; ids follow in
 * order. NULL when the strings need more than 1024 merges or a tokenizer
 * cannot be made. */
lf_tokenizer *lf_test_tokenizer_of_strings(const char *const *strings, size_t count);
/* The id of the token whose bytes are text; UINT32_MAX for none. */
uint32_t lf_test_token_id(const lf_tokenizer *tokenizer, const char *text);

#endif
