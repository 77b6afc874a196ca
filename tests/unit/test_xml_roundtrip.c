/* tree -> XML -> tree -> XML is byte-identical on thousands of random trees
 * built to stress escaping, unicode, binary and sparse bodies, symlinks,
 * deep nesting and unusual modes, owners and dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buffer.h"
#include "fs/xml.h"
#include "random_tree.h"

static void check_round_trip(uint64_t seed, unsigned flags)
{
    lf_random random;
    lf_random_seed(&random, seed);
    lf_tree *tree = lf_test_random_tree(&random, (int)lf_random_below(&random, 80));
    lf_buffer first = {0}, second = {0};
    lf_diagnostic diagnostic = {0};
    if (lf_xml_write(tree, flags, &first, &diagnostic) < 0)
        fail_msg("seed %llu: write: %s", (unsigned long long)seed, diagnostic.message);
    lf_tree *parsed = NULL;
    if (lf_xml_parse(first.data, first.length, flags, &parsed, &diagnostic) != 0)
        fail_msg("seed %llu: parse: %s\n%s", (unsigned long long)seed, diagnostic.message,
                 lf_buffer_string(&first));
    int64_t written = lf_xml_write(parsed, flags, &second, &diagnostic);
    assert_int_equal(written, (int64_t)second.length);
    if (first.length != second.length || memcmp(first.data, second.data, first.length) != 0)
        fail_msg("seed %llu: second write differs\n%s\n%s", (unsigned long long)seed,
                 lf_buffer_string(&first), lf_buffer_string(&second));
    lf_buffer_free(&first);
    lf_buffer_free(&second);
    lf_tree_free(tree);
    lf_tree_free(parsed);
}

static void test_random_trees_round_trip(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3000; seed++)
        check_round_trip(seed, 0);
}

static void test_random_trees_round_trip_without_bodies(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 500; seed++)
        check_round_trip(seed, LF_XML_WITHOUT_BODIES);
}

/* The generator must really produce the hard cases, or the test above
 * proves little. */
static void test_generator_covers_hard_cases(void **state)
{
    (void)state;
    lf_buffer all = {0};
    for (uint64_t seed = 1; seed <= 200; seed++) {
        lf_random random;
        lf_random_seed(&random, seed);
        lf_tree *tree = lf_test_random_tree(&random, 60);
        lf_diagnostic diagnostic = {0};
        assert_true(lf_xml_write(tree, 0, &all, &diagnostic) > 0);
        lf_tree_free(tree);
    }
    const char *text = lf_buffer_string(&all);
    const char *needles[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#10;", "&#09;", "日本語",
                             "encoding=\"base64\"", "<symlink ", "<body />", "owner=\"alice\"",
                             "mtime=\"0", "/>"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        if (!strstr(text, needles[i]))
            fail_msg("no random tree contains %s", needles[i]);
    lf_buffer_free(&all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_trees_round_trip),
        cmocka_unit_test(test_random_trees_round_trip_without_bodies),
        cmocka_unit_test(test_generator_covers_hard_cases),
    };
    return cmocka_run_group_tests_name("xml round trip", tests, NULL, NULL);
}
