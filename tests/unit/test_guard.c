/* The state guard (engine/guard.h): it accepts every canonical state byte
 * by byte, refuses exactly the byte that would break the strict parser's
 * rules, and picks the best allowed tokens the way argmax does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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
    lf_guard_start(&guard, &f->memory, NULL);
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
        lf_guard_start(&guard, &f->memory, NULL);
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
#define FULL_ROOT ROOT FILE_A("0") "<body /></file>" /* a root with an entry */
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
    assert_false(takes_after(f, FULL_ROOT "</directory></filesystem>", "\n"));
    assert_false(takes_after(f, ROOT, "</directory>")); /* empty: <directory ... /> */
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
    assert_false(takes_after(f, FULL_ROOT "</directory>", "<directory ")); /* one root */
    assert_true(takes_after(f, FULL_ROOT "</directory>", "</filesystem>"));
    assert_false(takes_after(f, ROOT FILE_A("0"), "<file "));         /* a file holds a body */
    assert_false(takes_after(f, ROOT FILE_A("0"), "</file>"));        /* ...always */
    assert_false(takes_after(f, ROOT FILE_A("0") "<body />", "<body "));
    assert_true(takes_after(f, ROOT FILE_A("0") "<body />", "</file>"));
    assert_false(takes_after(f, ROOT FILE_A("0") "<body />", "</directory>"));
    assert_false(takes_after(f, ROOT, "</filesystem>"));               /* the root is open */
    assert_false(takes_after(f, ROOT "<symlink path=\"l\" name=\"l\" " ATTRIBUTES
                                     " target=\"a\">", "<file "));
}

/* The bytes the guard would take next, in order; how many. */
static size_t allowed_bytes(const lf_guard *guard, uint8_t allowed[256])
{
    size_t count = 0;
    for (unsigned byte = 0; byte < 256; byte++) {
        lf_guard copy = *guard;
        uint8_t c = (uint8_t)byte;
        if (lf_guard_take(&copy, &c, 1))
            allowed[count++] = c;
    }
    return count;
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
        lf_guard_start(&guard, &f->memory, NULL);
        assert_true(lf_guard_take(&guard, (const uint8_t *)"<", 1));
        for (int step = 0; step < 3000 && !(lf_guard_may_end(&guard) && step > 0); step++) {
            uint8_t allowed[256];
            size_t count = allowed_bytes(&guard, allowed);
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
    lf_guard_start(&guard, &f->memory, NULL);
    assert_true(lf_guard_may_end(&guard));
    assert_int_equal(feed(&guard, ROOT FILE_A("3") "<body>ab"), strlen(ROOT FILE_A("3")) + 8);
    assert_false(lf_guard_may_end(&guard));
    assert_int_equal(feed(&guard, "c</body></file></directory>"), 27);
    assert_false(lf_guard_may_end(&guard));
    assert_int_equal(feed(&guard, "</filesystem>\n"), 13); /* nothing after it */
    assert_true(lf_guard_may_end(&guard));
    /* an error is not a state: nothing refused */
    lf_guard_start(&guard, &f->memory, NULL);
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
    lf_guard_start(&guard, &f->memory, NULL);
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
    lf_guard_start(&guard, &f->memory, NULL);
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

/* ---- plans: what the operation does not name is copied ------------------- */

#define NODE(tag, path, name, mode, time) \
    "<" tag " path=\"" path "\" name=\"" name "\" mode=\"" mode "\" owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:0" time "\""
#define OLD_ROOT NODE("directory", "/", "/", "755", "1") ">"
#define OLD_A NODE("file", "a.txt", "a.txt", "644", "1") " size=\"2\"><body>hi</body></file>"
#define OLD_DOCS NODE("directory", "docs", "docs", "755", "1") ">"
#define OLD_B NODE("file", "docs/b.txt", "b.txt", "644", "1") " size=\"0\"><body /></file>"
#define OLD_LINK NODE("symlink", "link", "link", "777", "1") " target=\"a.txt\" />"
#define OLD_STATE "<filesystem>" OLD_ROOT OLD_A OLD_DOCS OLD_B "</directory>" OLD_LINK "</directory></filesystem>"

typedef struct planned {
    lf_guard_plan plan;
    lf_guard guard;
} planned;

/* A guard with the plan for the operation line on OLD_STATE. */
static void start_planned(fixture *f, planned *p, const char *operation)
{
    lf_buffer prompt = {0};
    assert_int_equal(lf_buffer_append_string(&prompt, "<W>\n"), 0);
    assert_int_equal(lf_buffer_append_string(&prompt, operation), 0);
    assert_int_equal(lf_buffer_append_string(&prompt, "\n---\n" OLD_STATE), 0);
    memset(&p->plan, 0, sizeof p->plan);
    assert_int_equal(lf_guard_plan_prompt(&p->plan, prompt.data, prompt.length), 0);
    lf_guard_start(&p->guard, &f->memory, &p->plan);
    lf_buffer_free(&prompt);
}

/* Where a planned guard first refuses text (its length: nowhere). */
static size_t planned_feed(fixture *f, const char *operation, const char *text)
{
    planned p;
    start_planned(f, &p, operation);
    size_t taken = feed(&p.guard, text);
    size_t length = strlen(text);
    if (taken == length && length > 13 && strcmp(text + length - 13, "</filesystem>") == 0)
        assert_true(lf_guard_may_end(&p.guard));
    lf_guard_plan_free(&p.plan);
    return taken;
}

static size_t offset_of(const char *text, const char *part)
{
    const char *found = strstr(text, part);
    assert_non_null(found);
    return (size_t)(found - text);
}

static void plans_copy_what_the_operation_does_not_name(void **state)
{
    fixture *f = *state;
    const char *chmod_b = "chmod('/docs/b.txt', mode=0o100600)";
    /* the answer: only docs/b.txt and its directory change */
    const char *answer = "<filesystem>" OLD_ROOT OLD_A OLD_DOCS
                         NODE("file", "docs/b.txt", "b.txt", "600", "1") " size=\"0\"><body /></file>"
                         "</directory>" OLD_LINK "</directory></filesystem>";
    assert_int_equal(planned_feed(f, chmod_b, answer), strlen(answer));
    /* another entry's mtime, one second off: refused at that digit */
    const char *touched = "<filesystem>" OLD_ROOT NODE("file", "a.txt", "a.txt", "644", "2");
    assert_int_equal(planned_feed(f, chmod_b, touched), strlen(touched) - 2);
    /* the due entry skipped: a.txt is due, a file, and docs keeps its place
     * in the root's kept listing, so no symlink may open here */
    const char *skipped = "<filesystem>" OLD_ROOT "<symlink path=\"link";
    assert_int_equal(planned_feed(f, chmod_b, skipped), offset_of(skipped, "<symlink") + 1);
    /* a kept file written as a directory: refused at the tag */
    const char *kind = "<filesystem>" OLD_ROOT "<directory path=\"a";
    assert_int_equal(planned_feed(f, chmod_b, kind), strlen("<filesystem>" OLD_ROOT) + 1);
    /* the root may not end while link is due, nor the state */
    const char *early = "<filesystem>" OLD_ROOT OLD_A OLD_DOCS OLD_B "</directory></directory>";
    assert_int_equal(planned_feed(f, chmod_b, early), strlen(early) - 11);
    /* nor docs while its kept entry is due (it is under a rename of a.txt) */
    const char *rename_a = "rename('/a.txt', new_path='/docs/c.txt', now='2025-01-01T00:00:02')";
    const char *emptied = "<filesystem>" OLD_ROOT OLD_DOCS "</directory>";
    assert_int_equal(planned_feed(f, rename_a, emptied), strlen(emptied) - 11);
    const char *renamed = "<filesystem>" OLD_ROOT OLD_DOCS OLD_B
                          NODE("file", "docs/c.txt", "c.txt", "644", "1") " size=\"2\"><body>hi</body></file>"
                          "</directory>" OLD_LINK "</directory></filesystem>";
    assert_int_equal(planned_feed(f, rename_a, renamed), strlen(renamed));
    /* what a successful operation leaves: unlink removes its path... */
    const char *unlink_b = "unlink('/docs/b.txt', now='2025-01-01T00:00:02')";
    /* (docs can hold nothing then: it is written empty, <directory ... />) */
    const char *kept_b = "<filesystem>" OLD_ROOT OLD_A OLD_DOCS "<file path=\"docs/b";
    assert_int_equal(planned_feed(f, unlink_b, kept_b), offset_of(kept_b, OLD_DOCS) + strlen(OLD_DOCS) - 1);
    const char *unlinked_b = "<filesystem>" OLD_ROOT OLD_A NODE("directory", "docs", "docs", "755", "2")
                             " />" OLD_LINK "</directory></filesystem>";
    assert_int_equal(planned_feed(f, unlink_b, unlinked_b), strlen(unlinked_b));
    /* ...mkdir makes it, as a directory, before its parent ends */
    const char *mkdir_new = "mkdir('/docs/new', mode=0o755, now='2025-01-01T00:00:02')";
    const char *no_new = "<filesystem>" OLD_ROOT OLD_A OLD_DOCS OLD_B "</directory>";
    assert_int_equal(planned_feed(f, mkdir_new, no_new), strlen(no_new) - 11);
    const char *file_new = "<filesystem>" OLD_ROOT OLD_A OLD_DOCS OLD_B "<file path=\"docs/new";
    assert_int_equal(planned_feed(f, mkdir_new, file_new), offset_of(file_new, "<file path=\"docs/new") + 1);
    const char *made = "<filesystem>" OLD_ROOT OLD_A NODE("directory", "docs", "docs", "755", "2") ">" OLD_B
                       NODE("directory", "docs/new", "new", "755", "2") " /></directory>" OLD_LINK
                       "</directory></filesystem>";
    assert_int_equal(planned_feed(f, mkdir_new, made), strlen(made));
    /* a chmod of a directory moves nothing below it */
    const char *inside = "<filesystem>" OLD_ROOT OLD_A NODE("directory", "docs", "docs", "700", "1") ">"
                         NODE("file", "docs/b.txt", "b.txt", "600", "1");
    assert_int_equal(planned_feed(f, "chmod('/docs', mode=0o40700)", inside), offset_of(inside, "600") + 1);
    /* entries give their path first under a plan */
    const char *name_first = "<filesystem><directory name";
    assert_int_equal(planned_feed(f, chmod_b, name_first), strlen(name_first) - 4);
}

static void plans_follow_symlinks_as_the_operation_does(void **state)
{
    fixture *f = *state;
    /* a chmod through link changes a.txt; an unlink of link does not */
    const char *changed_a = "<filesystem>" OLD_ROOT NODE("file", "a.txt", "a.txt", "600", "1");
    assert_int_equal(planned_feed(f, "chmod('/link', mode=0o100600)", changed_a), strlen(changed_a));
    assert_int_equal(planned_feed(f, "unlink('/link', now='2025-01-01T00:00:02')", changed_a),
                     offset_of(changed_a, "600") + 1);
    const char *unlinked = "<filesystem>" NODE("directory", "/", "/", "755", "2") ">" OLD_A OLD_DOCS OLD_B
                           "</directory></directory></filesystem>";
    assert_int_equal(planned_feed(f, "unlink('/link', now='2025-01-01T00:00:02')", unlinked),
                     strlen(unlinked));
    /* the root names only itself: its entries are copied */
    const char *root_mode = "<filesystem>" NODE("directory", "/", "/", "700", "1") ">"
                            NODE("file", "a.txt", "a.txt", "600", "1");
    assert_int_equal(planned_feed(f, "chmod('/', mode=0o40700)", root_mode), offset_of(root_mode, "600") + 1);
    /* prompts a plan cannot be made for: the guard follows syntax only */
    lf_guard_plan plan = {0};
    const char *prompts[] = {"<R>\nread('/a.txt', size=4096, offset=0, fh=4)\n---\n" OLD_STATE,
                             "<W>\nchmod(docs, mode=0o100600)\n---\n" OLD_STATE,
                             "<W>\nchmod('/docs', mode=0o100600)\n---\n<filesystem>",
                             "<W>\nrename('/a.txt')\n---\n" OLD_STATE};
    for (size_t i = 0; i < sizeof prompts / sizeof *prompts; i++)
        assert_int_equal(lf_guard_plan_prompt(&plan, (const uint8_t *)prompts[i], strlen(prompts[i])), 1);
    /* write data may hold the separator: the state is the one that reads whole */
    const char *tricky = "<W>\nwrite('/a.txt', data=x\n---\n<filesystem>, data_length=16)\n---\n" OLD_STATE;
    assert_int_equal(lf_guard_plan_prompt(&plan, (const uint8_t *)tricky, strlen(tricky)), 0);
    assert_int_equal(plan.state_size, strlen(OLD_STATE));
    lf_guard_plan_free(&plan);
}

/* Whether a planned guard takes text whole, and what lf_guard_plan_keeps_content says of it. */
static int64_t keeps_content(const char *operation, const char *text)
{
    lf_buffer prompt = {0};
    lf_guard_plan plan = {0};
    assert_int_equal(lf_buffer_append_string(&prompt, "<W>\n"), 0);
    assert_int_equal(lf_buffer_append_string(&prompt, operation), 0);
    assert_int_equal(lf_buffer_append_string(&prompt, "\n---\n" OLD_STATE), 0);
    assert_int_equal(lf_guard_plan_prompt(&plan, prompt.data, prompt.length), 0);
    int64_t kept = lf_guard_plan_keeps_content(&plan, (const uint8_t *)text, strlen(text));
    lf_guard_plan_free(&plan);
    lf_buffer_free(&prompt);
    return kept;
}

static void metadata_operations_keep_content(void **state)
{
    fixture *f = *state;
    /* chmod, chown, utimens and rename keep a file's bytes: once the other
     * attributes are written, the size and body are the old ones */
    const char *chmod_a = "chmod('/a.txt', mode=0o100600)";
    const char *kept = "<filesystem>" OLD_ROOT NODE("file", "a.txt", "a.txt", "600", "1")
                       " size=\"2\"><body>hi</body></file>" OLD_DOCS OLD_B "</directory>" OLD_LINK
                       "</directory></filesystem>";
    assert_int_equal(planned_feed(f, chmod_a, kept), strlen(kept));
    assert_int_equal(keeps_content(chmod_a, kept), 1);
    const char *rewritten = "<filesystem>" OLD_ROOT NODE("file", "a.txt", "a.txt", "600", "1")
                            " size=\"2\"><body>ho</body></file>" OLD_DOCS OLD_B "</directory>" OLD_LINK
                            "</directory></filesystem>";
    assert_int_equal(planned_feed(f, chmod_a, rewritten), offset_of(rewritten, "ho</body>") + 1);
    assert_int_equal(keeps_content(chmod_a, rewritten), 0);
    const char *resized = "<filesystem>" OLD_ROOT NODE("file", "a.txt", "a.txt", "600", "1") " size=\"3";
    assert_int_equal(planned_feed(f, chmod_a, resized), strlen(resized) - 1);
    /* a rename's new path holds what the old one held; a symlink keeps its target */
    const char *rename_a = "rename('/a.txt', new_path='/docs/c.txt', now='2025-01-01T00:00:02')";
    const char *moved = "<filesystem>" OLD_ROOT OLD_DOCS OLD_B
                        NODE("file", "docs/c.txt", "c.txt", "644", "1") " size=\"2\"><body>hx";
    assert_int_equal(planned_feed(f, rename_a, moved), strlen(moved) - 1);
    const char *chown_link = "chown('/link', uid=1, gid=1)";
    const char *retargeted = "<filesystem>" OLD_ROOT OLD_A OLD_DOCS OLD_B "</directory>"
                             "<symlink path=\"link\" name=\"link\" mode=\"777\" owner=\"daemon\" "
                             "group=\"daemon\" mtime=\"2025-01-01T00:00:01\" target=\"b";
    assert_int_equal(planned_feed(f, chown_link, retargeted), strlen(retargeted) - 1);
    /* a write changes bytes: nothing is kept */
    const char *write_a = "write('/a.txt', data=ho, data_length=2, offset=0, end=2, fh=4, "
                          "now='2025-01-01T00:00:02')";
    assert_int_equal(keeps_content(write_a, rewritten), 1);
}

/* Where a guard planned for an <R> prompt first refuses text. */
static size_t shaped_feed(fixture *f, const char *prompt, const char *text)
{
    lf_guard_plan plan = {0};
    assert_int_equal(lf_guard_plan_prompt(&plan, (const uint8_t *)prompt, strlen(prompt)), 0);
    lf_guard guard;
    lf_guard_start(&guard, &f->memory, &plan);
    size_t taken = feed(&guard, text);
    if (taken == strlen(text) && (text[taken - 1] == '}' || text[taken - 1] == ']'))
        assert_true(lf_guard_may_end(&guard));
    if (taken == strlen(text) && text[taken - 1] == ',')
        assert_false(lf_guard_may_end(&guard));
    lf_guard_plan_free(&plan);
    return taken;
}

static void getattr_and_readdir_answers_keep_their_shape(void **state)
{
    fixture *f = *state;
    const char *getattr = "<R>\ngetattr('/a.txt', fh=None)\n---\n" OLD_STATE;
    const char *answer = "{\"mode\": \"644\", \"size\": 2, \"type\": \"file\", \"mtime\": "
                         "\"2025-01-01T00:00:01\", \"owner\": \"root\", \"group\": \"root\"}";
    assert_int_equal(shaped_feed(f, getattr, answer), strlen(answer));
    const char *tight = "{\"mode\": \"644\", \"size\":2";
    assert_int_equal(shaped_feed(f, getattr, tight), strlen(tight) - 1);
    const char *letters = "{\"mode\": \"644\", \"size\": 1m";
    assert_int_equal(shaped_feed(f, getattr, letters), strlen(letters) - 1);
    const char *kind = "{\"mode\": \"644\", \"size\": 2, \"type\": \"dir\"";
    assert_int_equal(shaped_feed(f, getattr, kind), strlen(kind) - 1);
    const char *mode = "{\"mode\": \"648";
    assert_int_equal(shaped_feed(f, getattr, mode), strlen(mode) - 1);
    const char *escaped = "{\"mode\": \"644\", \"size\": 2, \"type\": \"file\", \"mtime\": "
                          "\"2025-01-01T00:00:01\", \"owner\": \"r\\u00e9\", \"group\": \"root\"}";
    assert_int_equal(shaped_feed(f, getattr, escaped), strlen(escaped));
    assert_int_equal(shaped_feed(f, getattr, "ERROR: ENOENT"), 13); /* errors are not shaped */

    const char *readdir = "<R>\nreaddir('/', fh=0)\n---\n" OLD_STATE;
    const char *listing = "[\".\",\"..\",\"a.txt\",\"docs\",\"link\"]";
    assert_int_equal(shaped_feed(f, readdir, listing), strlen(listing));
    assert_int_equal(shaped_feed(f, readdir, "[\".\",\"..\"]"), 10);
    assert_int_equal(shaped_feed(f, readdir, "[\".\",\"..\",\"a.txt\","), 18);
    const char *twice = "[\".\",\"..\",\"a.txt\",\"a.txt\"";
    assert_int_equal(shaped_feed(f, readdir, twice), strlen(twice) - 1);
    const char *dot = "[\".\",\"..\",\"..\"";
    assert_int_equal(shaped_feed(f, readdir, dot), strlen(dot) - 1);
    const char *slash = "[\".\",\"..\",\"docs/b";
    assert_int_equal(shaped_feed(f, readdir, slash), strlen(slash) - 2);
    const char *empty = "[\".\",\"..\",\"\"";
    assert_int_equal(shaped_feed(f, readdir, empty), strlen(empty) - 1);
    assert_int_equal(shaped_feed(f, readdir, "[\"..\""), 3);
    assert_int_equal(shaped_feed(f, readdir, "ERROR: ENOTDIR"), 14);
}

/* Random walks under plans for random trees and operations on their
 * paths: never a dead end, and every walk that ends is a state that
 * parses and differs from the old one only where the engine allows. */
typedef struct allowed_check {
    const lf_guard_plan *plan;
    char outside[4096];
} allowed_check;

static int64_t check_allowed(void *context, const char *path)
{
    allowed_check *check = context;
    const char *state_path = path[1] ? path + 1 : path;
    if (lf_guard_plan_may_change(check->plan, state_path, strlen(state_path)))
        return 0;
    snprintf(check->outside, sizeof check->outside, "%s", path);
    return 1;
}

static void collect_paths(const lf_tree *tree, const char *path, char ***paths, size_t *count)
{
    (void)tree;
    *paths = realloc(*paths, (*count + 1) * sizeof **paths);
    (*paths)[(*count)++] = strdup(path);
}

static void planned_walks_end_in_allowed_states(void **state)
{
    fixture *f = *state;
    static const char *const operations[] = {"chmod", "rename", "unlink", "mkdir", "write"};
    int ended = 0;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        lf_random random;
        lf_random_seed(&random, seed);
        lf_tree *tree = lf_test_random_tree(&random, 2 + (int)lf_random_below(&random, 12));
        lf_buffer old = {0};
        assert_true(lf_xml_write(tree, 0, &old, NULL) >= 0);
        assert_int_equal(lf_buffer_append(&old, "", 1), 0);
        old.length--; /* a C string to search */
        /* named paths: existing entries' paths (from the state) or new ones */
        char **paths = NULL;
        size_t path_count = 0;
        for (const char *at = (const char *)old.data; (at = strstr(at, " path=\"")); at += 7) {
            const char *end = strchr(at + 7, '"');
            char *path = strndup(at + 7, (size_t)(end - at - 7));
            if (!strchr(path, '&') && !strchr(path, '\''))
                collect_paths(tree, path, &paths, &path_count);
            free(path);
        }
        const char *operation = operations[lf_random_below(&random, 5)];
        const char *first = paths[lf_random_below(&random, path_count)];
        const char *second = lf_random_below(&random, 2) ? paths[lf_random_below(&random, path_count)] : "new";
        char line[8192];
        snprintf(line, sizeof line, "<W>\n%s('/%s'%s%s%s)\n---\n", operation, strcmp(first, "/") ? first : "",
                 strcmp(operation, "rename") == 0 ? ", new_path='/" : "",
                 strcmp(operation, "rename") == 0 ? second : "", strcmp(operation, "rename") == 0 ? "'" : "");
        lf_buffer prompt = {0};
        assert_int_equal(lf_buffer_append_string(&prompt, line), 0);
        assert_int_equal(lf_buffer_append(&prompt, old.data, old.length), 0);
        lf_guard_plan plan = {0};
        int64_t made = lf_guard_plan_prompt(&plan, prompt.data, prompt.length);
        assert_true(made == 0 || made == 1);
        lf_guard guard;
        lf_guard_start(&guard, &f->memory, made == 0 ? &plan : NULL);
        lf_buffer walk = {0};
        assert_true(lf_guard_take(&guard, (const uint8_t *)"<", 1));
        assert_int_equal(lf_buffer_append(&walk, "<", 1), 0);
        for (int step = 0; step < 20000 && !lf_guard_may_end(&guard); step++) {
            uint8_t allowed[256];
            size_t count = allowed_bytes(&guard, allowed);
            if (count == 0)
                fail_msg("seed %lu: %s: a dead end after %.*s", (unsigned long)seed, line, (int)walk.length,
                         (const char *)walk.data);
            /* mostly '<', '>', '"' or '1' where allowed: walks that end, in
             * states that parse (dates of ones are dates) */
            uint8_t preferred[4];
            size_t preferred_count = 0;
            for (size_t i = 0; i < count; i++)
                if (memchr("<>\"1", allowed[i], 4))
                    preferred[preferred_count++] = allowed[i];
            uint8_t c = preferred_count && lf_random_below(&random, 8) != 0
                            ? preferred[lf_random_below(&random, preferred_count)]
                            : allowed[lf_random_below(&random, count)];
            assert_true(lf_guard_take(&guard, &c, 1));
            assert_int_equal(lf_buffer_append(&walk, &c, 1), 0);
        }
        lf_tree *walked = NULL;
        if (made == 0 && lf_guard_may_end(&guard) &&
            lf_xml_parse(walk.data, walk.length, 0, &walked, NULL) == 0) {
            ended++;
            allowed_check check = {.plan = &plan};
            lf_tree *before = NULL; /* as the engine holds it: parsed from the state */
            assert_int_equal(lf_xml_parse(old.data, old.length, 0, &before, NULL), 0);
            int64_t changed = lf_tree_compare(before, walked, check_allowed, &check);
            lf_tree_free(before);
            if (changed != 0)
                fail_msg("seed %lu: %s changed at %s:\n%.*s", (unsigned long)seed, line, check.outside,
                         (int)walk.length, (const char *)walk.data);
            lf_tree_free(walked);
        }
        for (size_t i = 0; i < path_count; i++)
            free(paths[i]);
        free(paths);
        lf_buffer_free(&walk);
        lf_buffer_free(&prompt);
        lf_buffer_free(&old);
        lf_guard_plan_free(&plan);
        lf_tree_free(tree);
    }
    assert_true(ended >= 40); /* the property was checked, not skipped (49 of 300) */
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
        cmocka_unit_test_setup_teardown(plans_copy_what_the_operation_does_not_name, setup, teardown),
        cmocka_unit_test_setup_teardown(plans_follow_symlinks_as_the_operation_does, setup, teardown),
        cmocka_unit_test_setup_teardown(metadata_operations_keep_content, setup, teardown),
        cmocka_unit_test_setup_teardown(planned_walks_end_in_allowed_states, setup, teardown),
        cmocka_unit_test_setup_teardown(getattr_and_readdir_answers_keep_their_shape, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
