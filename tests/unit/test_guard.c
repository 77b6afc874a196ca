/* The state guard (engine/guard.h): it accepts every canonical state byte
 * by byte, refuses exactly the byte that would break the strict parser's
 * rules, and picks the best allowed tokens the way argmax does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/guard.h"
#include "fs/xml.h"
#include "random_tree.h"
#include "token_strings.h"

typedef struct fixture {
    lf_guard_memory memory;
} fixture;

static int setup(void **state)
{
    *state = calloc(1, sizeof(fixture));
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lf_guard_memory_free(&f->memory);
    free(f);
    return 0;
}

/* Feeds text byte by byte; returns the offset of the first refused byte,
 * or the length when all are taken. */
static size_t feed(lf_guard *guard, const char *text)
{
    size_t length = strlen(text);
    for (size_t i = 0; i < length; i++)
        if (!lf_guard_take(guard, (const uint8_t *)text + i, 1))
            return i;
    return length;
}

/* Whether a copy of the guard takes all of text. */
static bool takes(lf_guard guard, const char *text)
{
    return feed(&guard, text) == strlen(text);
}

/* A guard that has taken `before` (all of it must be taken): whether
 * `next` is taken after it. */
static bool takes_after(fixture *f, const char *before, const char *next)
{
    lf_guard guard;
    lf_guard_start(&guard, &f->memory);
    assert_int_equal(feed(&guard, before), strlen(before));
    return feed(&guard, next) == strlen(next);
}

static void canonical_states_pass_whole(void **state)
{
    fixture *f = *state;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        lf_random random;
        lf_random_seed(&random, seed);
        lf_tree *tree = lf_test_random_tree(&random, (int)lf_random_below(&random, 60));
        lf_buffer xml = {0};
        assert_true(lf_xml_write(tree, 0, &xml, NULL) >= 0);
        lf_guard guard;
        lf_guard_start(&guard, &f->memory);
        for (size_t i = 0; i < xml.length; i++) {
            if (!lf_guard_take(&guard, xml.data + i, 1))
                fail_msg("seed %lu: byte %zu refused: ...%.60s", (unsigned long)seed, i,
                         (const char *)xml.data + (i > 40 ? i - 40 : 0));
            if (i + 1 < xml.length && lf_guard_may_end(&guard))
                fail_msg("seed %lu: may end after byte %zu", (unsigned long)seed, i);
        }
        assert_true(lf_guard_may_end(&guard));
        lf_buffer_free(&xml);
        lf_tree_free(tree);
    }
}

#define ROOT                                                                                   \
    "<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" " \
    "mtime=\"2025-01-01T00:00:00\">"
#define ATTRIBUTES "mode=\"644\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:00\""
#define FILE_A(size) "<file path=\"a\" name=\"a\" " ATTRIBUTES " size=\"" size "\">"
#define DOCS                                                                           \
    ROOT "<directory path=\"docs\" name=\"docs\" mode=\"755\" owner=\"root\" group=\"root\" " \
         "mtime=\"2025-01-01T00:00:00\">"

static void text_bodies_have_their_size(void **state)
{
    fixture *f = *state;
    assert_true(takes_after(f, ROOT FILE_A("3") "<body>", "abc</body></file>"));
    assert_false(takes_after(f, ROOT FILE_A("3") "<body>abc", "d"));   /* past the size */
    assert_false(takes_after(f, ROOT FILE_A("3") "<body>ab", "<"));    /* before it */
    assert_false(takes_after(f, ROOT FILE_A("3") "<body>abc", "</body><f"));
    assert_false(takes_after(f, ROOT FILE_A("3") "<body>abc", "<filesystem"));
    assert_false(takes_after(f, ROOT FILE_A("3") "<body", " /"));      /* empty for 3 bytes */
    assert_true(takes_after(f, ROOT FILE_A("0") "<body", " /></file>"));
    assert_true(takes_after(f, ROOT FILE_A("0") "<body>", "</body></file>"));
    /* an entity is one byte, a numeric reference its UTF-8 bytes */
    assert_true(takes_after(f, ROOT FILE_A("2") "<body>", "&lt;&amp;</body>"));
    assert_false(takes_after(f, ROOT FILE_A("1") "<body>&amp;", "&"));
    assert_true(takes_after(f, ROOT FILE_A("3") "<body>", "&#233;x</body>"));
    assert_false(takes_after(f, ROOT FILE_A("2") "<body>", "&#233;x"));
    assert_true(takes_after(f, ROOT FILE_A("2") "<body>", "\xc3\xa9</body>"));
}

static void base64_bodies_have_their_length(void **state)
{
    fixture *f = *state;
    const char *open = ROOT FILE_A("4") "<body encoding=\"base64\">";
    assert_true(takes_after(f, open, "AAAAAA==</body></file>"));
    assert_false(takes_after(f, open, "AAAAA="));  /* '=' before the padding */
    assert_false(takes_after(f, open, "AAAAAAA")); /* data where padding goes */
    assert_false(takes_after(f, open, "AAAAAA==A"));
    assert_false(takes_after(f, open, "AAAA<"));
    assert_true(takes_after(f, ROOT FILE_A("3") "<body encoding=\"base64\">", "AAAA</body>"));
}

static void paths_and_names_follow_the_tree(void **state)
{
    fixture *f = *state;
    assert_true(takes_after(f, DOCS, "<file path=\"docs/x\" name=\"x\" " ATTRIBUTES));
    assert_false(takes_after(f, DOCS, "<file path=\"x"));          /* not under docs/ */
    assert_false(takes_after(f, DOCS, "<file path=\"docs/x/"));    /* two names */
    assert_false(takes_after(f, DOCS, "<file path=\"docs/\""));    /* no name */
    assert_false(takes_after(f, DOCS, "<file path=\"docs/x\" name=\"y"));
    assert_false(takes_after(f, DOCS, "<file path=\"docs/x\" name=\"xy"));
    assert_false(takes_after(f, DOCS, "<file path=\"docs/x\" name=\"\""));
    /* a sibling's name is refused at the path's closing quote, not before */
    const char *with_x = DOCS "<directory path=\"docs/x\" name=\"x\" mode=\"755\" owner=\"root\" "
                              "group=\"root\" mtime=\"2025-01-01T00:00:00\" />";
    assert_true(takes_after(f, with_x, "<file path=\"docs/x"));
    assert_false(takes_after(f, with_x, "<file path=\"docs/x\""));
    assert_true(takes_after(f, with_x, "<file path=\"docs/xy\""));
    /* after </directory>, names are the parent's again: x is free there, docs is not */
    assert_true(takes_after(f, with_x, "</directory><file path=\"x\" name=\"x\""));
    assert_false(takes_after(f, with_x, "</directory><file path=\"docs\""));
    assert_false(takes_after(f, with_x, "</directory><file path=\"docs/"));
    /* a nested directory's entries are under its whole path */
    const char *nested = DOCS "<directory path=\"docs/x\" name=\"x\" mode=\"755\" owner=\"root\" "
                              "group=\"root\" mtime=\"2025-01-01T00:00:00\">";
    assert_true(takes_after(f, nested, "<symlink path=\"docs/x/y\""));
    assert_false(takes_after(f, nested, "<symlink path=\"docs/y"));
}

static void tags_are_canonical(void **state)
{
    fixture *f = *state;
    assert_false(takes_after(f, ROOT, "<dir "));                        /* unknown element */
    assert_false(takes_after(f, ROOT, "<fix"));                         /* refused at the x */
    assert_false(takes_after(f, ROOT, "<file c"));                      /* unknown attribute */
    assert_false(takes_after(f, ROOT "<file path=\"a\" ", "pa"));      /* path again */
    assert_false(takes_after(f, ROOT, "<file path=\"a\" target"));    /* a symlink's */
    assert_false(takes_after(f, ROOT, "</dir>"));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" path="));      /* given twice */
    assert_false(takes_after(f, ROOT, "<file path='"));                 /* single quotes */
    assert_false(takes_after(f, ROOT, "<file path=\"a\"name"));         /* no space */
    assert_false(takes_after(f, ROOT, "<file path=\"a<"));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" name=\"a\" " ATTRIBUTES " size=\"1x"));
    assert_false(takes_after(f, ROOT, "<directory path=\"a\" name=\"a\">")); /* lacks mode... */
    assert_false(takes_after(f, ROOT, "<file path=\"a\" name=\"a\" " ATTRIBUTES ">")); /* size */
    assert_false(takes_after(f, ROOT, "text"));
    assert_false(takes_after(f, ROOT, "\n"));                          /* none between tags */
    assert_false(takes_after(f, ROOT, "<file  "));                     /* one space */
    assert_false(takes_after(f, ROOT, "<file\n"));
    assert_false(takes_after(f, ROOT "</directory></filesystem>", "\n"));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" name=\"a\" " ATTRIBUTES " size=\"0\" /"));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" mode=\"8"));   /* octal */
    assert_false(takes_after(f, ROOT, "<file path=\"a\" mode=\"17777"));
    assert_true(takes_after(f, ROOT, "<file path=\"a\" mode=\"07777\""));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" mode=\"\""));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" mtime=\"2025-01-01 "));
    assert_false(takes_after(f, ROOT, "<file path=\"a\" mtime=\"2025-01-01T00:00\""));
}

static void elements_nest_as_in_a_state(void **state)
{
    fixture *f = *state;
    assert_false(takes_after(f, "", "<directory "));       /* a state starts with <filesystem> */
    assert_false(takes_after(f, "<filesystem>", "<file "));
    assert_true(takes_after(f, "<filesystem>", "<directory "));
    assert_false(takes_after(f, ROOT "</directory>", "<directory ")); /* one root */
    assert_true(takes_after(f, ROOT "</directory>", "</filesystem>"));
    assert_false(takes_after(f, ROOT FILE_A("0"), "<file "));         /* a file holds a body */
    assert_false(takes_after(f, ROOT FILE_A("0"), "</file>"));        /* ...always */
    assert_false(takes_after(f, ROOT FILE_A("0") "<body />", "<body "));
    assert_true(takes_after(f, ROOT FILE_A("0") "<body />", "</file>"));
    assert_false(takes_after(f, ROOT FILE_A("0") "<body />", "</directory>"));
    assert_false(takes_after(f, ROOT, "</filesystem>"));               /* the root is open */
    assert_false(takes_after(f, ROOT "<symlink path=\"l\" name=\"l\" " ATTRIBUTES
                                     " target=\"a\">", "<file "));
}

/* Random walks over the bytes the guard allows: from everything it takes,
 * some byte or the end is still allowed (decoding never meets a dead end). */
static void no_dead_ends(void **state)
{
    fixture *f = *state;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        lf_random random;
        lf_random_seed(&random, seed);
        lf_guard guard;
        lf_guard_start(&guard, &f->memory);
        assert_true(lf_guard_take(&guard, (const uint8_t *)"<", 1));
        for (int step = 0; step < 3000 && !(lf_guard_may_end(&guard) && step > 0); step++) {
            uint8_t allowed[256];
            size_t count = 0;
            for (unsigned byte = 0; byte < 256; byte++) {
                lf_guard copy = guard;
                uint8_t c = (uint8_t)byte;
                if (lf_guard_take(&copy, &c, 1))
                    allowed[count++] = c;
            }
            if (count == 0)
                fail_msg("seed %lu: a dead end after %d bytes", (unsigned long)seed, step);
            uint8_t c = allowed[lf_random_below(&random, count)];
            assert_true(lf_guard_take(&guard, &c, 1));
        }
    }
}

static void ends_only_where_a_state_may(void **state)
{
    fixture *f = *state;
    lf_guard guard;
    lf_guard_start(&guard, &f->memory);
    assert_true(lf_guard_may_end(&guard));
    assert_int_equal(feed(&guard, ROOT FILE_A("3") "<body>ab"), strlen(ROOT FILE_A("3")) + 8);
    assert_false(lf_guard_may_end(&guard));
    assert_int_equal(feed(&guard, "c</body></file></directory>"), 27);
    assert_false(lf_guard_may_end(&guard));
    assert_int_equal(feed(&guard, "</filesystem>\n"), 13); /* nothing after it */
    assert_true(lf_guard_may_end(&guard));
    /* an error is not a state: nothing refused */
    lf_guard_start(&guard, &f->memory);
    assert_int_equal(feed(&guard, "ERROR: ENOENT <x y='z'>"), 23);
    assert_true(lf_guard_may_end(&guard));
}

static lf_tokenizer *tokenizer_of(const char *const *strings, size_t count)
{
    lf_tokenizer *tokenizer = lf_test_tokenizer_of_strings(strings, count);
    assert_non_null(tokenizer);
    return tokenizer;
}

static uint32_t id_of(const lf_tokenizer *tokenizer, const char *text)
{
    uint32_t id = lf_test_token_id(tokenizer, text);
    assert_int_not_equal(id, UINT32_MAX);
    return id;
}

static void best_two_are_the_best_allowed(void **state)
{
    fixture *f = *state;
    static const char *const strings[] = {"c</body>", "cd", "</body></file>"};
    lf_tokenizer *tokenizer = tokenizer_of(strings, 3);
    uint32_t vocabulary = lf_tokenizer_vocab_size(tokenizer);
    float *logits = calloc(vocabulary, sizeof *logits);
    uint32_t cd = id_of(tokenizer, "cd"), c_end = id_of(tokenizer, "c</body>");
    logits[cd] = 5.0f; /* the model wants one byte too many */
    logits[c_end] = 4.0f;
    logits['c'] = 3.0f;
    logits[LF_TOKEN_ENDOFTEXT] = 6.0f;
    uint32_t best, second;
    /* no guard: argmax, and the runner-up */
    assert_true(lf_guard_best_two(NULL, tokenizer, logits, vocabulary, &best, &second));
    assert_int_equal(best, LF_TOKEN_ENDOFTEXT);
    assert_int_equal(second, cd);
    lf_guard guard;
    lf_guard_start(&guard, &f->memory);
    assert_int_equal(feed(&guard, ROOT FILE_A("3") "<body>ab"), strlen(ROOT FILE_A("3")) + 8);
    assert_true(lf_guard_best_two(&guard, tokenizer, logits, vocabulary, &best, &second));
    assert_int_equal(best, c_end);
    assert_int_equal(second, 'c');
    /* equal logits: the lowest id, as argmax */
    logits[c_end] = 3.0f;
    assert_true(lf_guard_best_two(&guard, tokenizer, logits, vocabulary, &best, &second));
    assert_int_equal(best, 'c');
    assert_int_equal(second, c_end);
    /* a trial never changes the guard: the same answer again */
    assert_true(lf_guard_best_two(&guard, tokenizer, logits, vocabulary, &best, &second));
    assert_int_equal(best, 'c');
    free(logits);
    lf_tokenizer_free(tokenizer);
}

/* Tokens that close a directory and start a new entry in one go: trying
 * them (and dropping them) must leave the names the guard keeps intact. */
static void trials_leave_the_guard_intact(void **state)
{
    fixture *f = *state;
    static const char *const strings[] = {"\"/></directory><file path=\"q\" name=\"q\" ",
                                          "\"/></directory><file path=\"x"};
    lf_tokenizer *tokenizer = tokenizer_of(strings, 2);
    uint32_t vocabulary = lf_tokenizer_vocab_size(tokenizer);
    float *logits = calloc(vocabulary, sizeof *logits);
    for (uint32_t id = LF_TOKEN_FIRST_MERGE; id < vocabulary; id++)
        logits[id] = (float)id; /* rising: each is tried, as it beats the best so far */
    lf_guard guard;
    lf_guard_start(&guard, &f->memory);
    const char *inside = DOCS "<directory path=\"docs/x\" name=\"x\" mode=\"755\" owner=\"root\" "
                              "group=\"root\" mtime=\"2025-01-01T00:00:00\" />"
                              "<file path=\"docs/y\" name=\"y\" " ATTRIBUTES " size=\"0";
    assert_int_equal(feed(&guard, inside), strlen(inside));
    uint32_t best, second;
    assert_true(lf_guard_best_two(&guard, tokenizer, logits, vocabulary, &best, &second));
    /* the guard still knows docs/x and docs/y, and the root's docs */
    assert_false(takes(guard, "\"><body /></file><file path=\"docs/x\""));
    assert_true(takes(guard, "\"><body /></file><file path=\"docs/z\" name=\"z\""));
    assert_false(takes(guard, "\"><body /></file></directory><file path=\"docs\""));
    free(logits);
    lf_tokenizer_free(tokenizer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(canonical_states_pass_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(text_bodies_have_their_size, setup, teardown),
        cmocka_unit_test_setup_teardown(base64_bodies_have_their_length, setup, teardown),
        cmocka_unit_test_setup_teardown(paths_and_names_follow_the_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(tags_are_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(elements_nest_as_in_a_state, setup, teardown),
        cmocka_unit_test_setup_teardown(no_dead_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(ends_only_where_a_state_may, setup, teardown),
        cmocka_unit_test_setup_teardown(best_two_are_the_best_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(trials_leave_the_guard_intact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
