/* libFuzzer target for the state guard (engine/guard.h), which reads what a
 * model writes: no input may crash, leak or trip a sanitizer, and
 *   - trying tokens never changes a guard: one that tries a vocabulary's
 *     tokens before each step (tokens that span tags, close directories and
 *     open entries) takes and refuses exactly what a twin that never tries
 *     anything does, on memory of its own;
 *   - whatever the strict parser accepts, written canonically, the guard
 *     takes whole, and may end only after its last byte;
 *   - a plan is made from any prompt or refused cleanly, and a state that
 *     an operation leaves as it was passes the plan made for it (an
 *     operation on one of its paths, chosen by the input). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/guard.h"
#include "fs/xml.h"
#include "token_strings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition, const char *what)
{
    if (condition)
        return;
    fprintf(stderr, "fuzz_guard: %s\n", what);
    abort();
}

static const lf_tokenizer *vocabulary_tokenizer(void)
{
    static const char *const strings[] = {
        "\"/></directory><file path=\"", "</directory><directory path=\"d",
        "</directory></directory>",      "\"/></directory></filesystem>",
        "\" name=\"",                    "\"><body>",
        "</body></file>",                "\"><body encoding=\"base64\">",
        " size=\"",                      "\" mode=\"644\" owner=\"root\" group=\"root\" ",
        "AAAA",                          "&amp;",
        "<file path=\"",                 "<symlink path=\"",
        "\" /><file path=\"a",           "\n\n",
    };
    static lf_tokenizer *tokenizer;
    if (!tokenizer)
        tokenizer = lf_test_tokenizer_of_strings(strings, sizeof strings / sizeof *strings);
    check(tokenizer != NULL, "no tokenizer");
    return tokenizer;
}

/* Logits from a seed: every token gets a pseudo-random score, so that
 * different tokens get tried at each step. */
static void fill_logits(float *logits, uint32_t count, uint64_t seed)
{
    for (uint32_t i = 0; i < count; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        logits[i] = (float)(seed >> 40);
    }
}

static void trials_change_nothing(const uint8_t *data, size_t size)
{
    const lf_tokenizer *tokenizer = vocabulary_tokenizer();
    uint32_t vocabulary = lf_tokenizer_vocab_size(tokenizer);
    float *logits = malloc(vocabulary * sizeof *logits);
    check(logits != NULL, "out of memory");
    lf_guard_memory tried_memory = {0}, twin_memory = {0};
    lf_guard tried, twin;
    lf_guard_start(&tried, &tried_memory, NULL);
    lf_guard_start(&twin, &twin_memory, NULL);
    for (size_t at = 0; at < size;) {
        uint32_t best, second;
        fill_logits(logits, vocabulary, at * 131 + data[at]);
        check(lf_guard_best_two(&tried, tokenizer, logits, vocabulary, &best, &second),
              "no token allowed");
        size_t length = 1 + data[at] % 7;
        length = length < size - at ? length : size - at;
        bool taken = lf_guard_take(&tried, data + at, length);
        check(taken == lf_guard_take(&twin, data + at, length), "a trial changed the guard");
        check(lf_guard_may_end(&tried) == lf_guard_may_end(&twin), "a trial changed the end");
        at += length;
    }
    free(logits);
    lf_guard_memory_free(&tried_memory);
    lf_guard_memory_free(&twin_memory);
}

static void parsed_states_pass_whole(const uint8_t *data, size_t size)
{
    lf_tree *tree;
    if (lf_xml_parse(data, size, 0, &tree, NULL) < 0)
        return;
    lf_buffer canonical = {0};
    check(lf_xml_write(tree, 0, &canonical, NULL) >= 0, "a parsed tree does not write");
    lf_guard_memory memory = {0};
    lf_guard guard;
    lf_guard_start(&guard, &memory, NULL);
    for (size_t i = 0; i < canonical.length; i++) {
        check(lf_guard_take(&guard, canonical.data + i, 1), "a canonical byte refused");
        check(i + 1 == canonical.length || !lf_guard_may_end(&guard), "an end inside a state");
    }
    check(lf_guard_may_end(&guard), "no end after a state");
    /* a plan for an operation on one of its paths: the state unchanged passes */
    check(lf_buffer_append(&canonical, "", 1) >= 0, "out of memory");
    canonical.length--; /* a C string to search */
    size_t paths = 0;
    for (const char *at = (const char *)canonical.data; (at = strstr(at, " path=\"")); at += 7)
        paths++;
    if (paths == 0) { /* <filesystem />: nothing to name */
        lf_guard_memory_free(&memory);
        lf_buffer_free(&canonical);
        lf_tree_free(tree);
        return;
    }
    const char *path = (const char *)canonical.data;
    for (size_t i = 0; i <= data[0] % paths; i++)
        path = strstr(path, " path=\"") + 7;
    size_t path_length = strcspn(path, "\"");
    static const char *const operations[] = {"chmod", "unlink", "write", "rename"};
    lf_buffer prompt = {0};
    check(lf_buffer_printf(&prompt, "<W>\n%s('/%.*s'%s)\n---\n", operations[data[size - 1] % 4],
                           path_length == 1 && path[0] == '/' ? 0 : (int)path_length, path,
                           data[size - 1] % 4 == 3 ? ", new_path='/new'" : "") >= 0 &&
              lf_buffer_append(&prompt, canonical.data, canonical.length) >= 0,
          "out of memory");
    lf_guard_plan plan = {0};
    int64_t made = lf_guard_plan_prompt(&plan, prompt.data, prompt.length);
    check(made == 0 || made == 1, "a plan failed");
    lf_guard_start(&guard, &memory, made == 0 ? &plan : NULL);
    check(lf_guard_take(&guard, canonical.data, canonical.length) && lf_guard_may_end(&guard),
          "a plan refused the state it was made for");
    check(made != 0 || data[size - 1] % 4 != 0 ||
              lf_guard_plan_keeps_content(&plan, canonical.data, canonical.length) == 1,
          "a chmod's plan says the unchanged state lost content");
    lf_guard_plan_free(&plan);
    lf_buffer_free(&prompt);
    lf_guard_memory_free(&memory);
    lf_buffer_free(&canonical);
    lf_tree_free(tree);
}

/* The input as a prompt: a plan, or a clean refusal. */
static void any_prompt_plans_or_not(const uint8_t *data, size_t size)
{
    lf_guard_plan plan = {0};
    int64_t made = lf_guard_plan_prompt(&plan, data, size);
    check(made == 0 || made == 1, "a plan failed");
    lf_guard_plan_free(&plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trials_change_nothing(data, size);
    parsed_states_pass_whole(data, size);
    any_prompt_plans_or_not(data, size);
    return 0;
}
