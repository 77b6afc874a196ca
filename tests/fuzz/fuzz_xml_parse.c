/* libFuzzer target for the XML state parser: no input may crash, leak or
 * trip a sanitizer, and whatever parses must write, and its written form
 * must be a fixed point (parse -> write gives it back byte for byte).
 * Both parser modes run on every input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition, const char *what, const lf_diagnostic *diag)
{
    if (condition)
        return;
    fprintf(stderr, "fuzz_xml_parse: %s: %s\n", what, diag->message);
    abort();
}

static void check_fixed_point(const uint8_t *data, size_t size, unsigned flags)
{
    lf_diagnostic diag = {0};
    lf_tree *tree;
    if (lf_xml_parse(data, size, flags, &tree, &diag) < 0) {
        check(tree == NULL, "a failed parse left a tree", &diag);
        return;
    }
    lf_buffer first = {0}, second = {0};
    check(lf_xml_write(tree, flags, &first, &diag) >= 0, "a parsed tree does not write", &diag);
    lf_tree *again;
    check(lf_xml_parse(first.data, first.length, flags, &again, &diag) == 0,
          "the canonical form does not parse", &diag);
    check(lf_xml_write(again, flags, &second, &diag) >= 0, "a reparsed tree does not write",
          &diag);
    check(first.length == second.length && memcmp(first.data, second.data, first.length) == 0,
          "the canonical form is not a fixed point", &diag);
    lf_buffer_free(&first);
    lf_buffer_free(&second);
    lf_tree_free(again);
    lf_tree_free(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_fixed_point(data, size, 0);
    check_fixed_point(data, size, LF_XML_WITHOUT_BODIES);
    return 0;
}
