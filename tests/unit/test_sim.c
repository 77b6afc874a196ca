/* The simulator's dataset (src/sim/) is ground truth and self-contained:
 * every example's completion is what the tree computes from the prompt
 * alone, the state parsed back from the prompt's XML and the clock one
 * second past its newest mtime; the lines are the same for a seed with and
 * without the loopback mount; no prompt appears twice, so training and
 * evaluation share none; and every line is JSON that gives back the
 * example; and the engine's guard, with the plan it makes from a prompt,
 * takes each new state (it changes only what the operation names) and
 * each getattr and readdir answer whole.  Generation itself checks each operation against the kernel. */
#include <errno.h>
#include <jansson.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/base64.h"
#include "common/buffer.h"
#include "common/error.h"
#include "engine/guard.h"
#include "fs/tree.h"
#include "fs/xml.h"
#include "sim/dataset.h"
#include "sim/oplines.h"
#include "sim/simulator.h"

typedef struct collected {
    size_t max_bytes;
    lf_buffer lines; /* every line, in order */
    char **prompts;
    size_t prompt_count;
    size_t split_counts[2];
    size_t reads, writes;
    size_t op_counts[LF_SIM_OP_COUNT];
    size_t enoent, eexist, enotempty, enotdir, eisdir;
    size_t planned; /* new states the guard took with a plan */
} collected;

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->prompt_count; i++)
        free(c->prompts[i]);
    free(c->prompts);
    lf_buffer_free(&c->lines);
}

/* Recomputes the completion from the prompt alone. */
static void replay(const lf_sim_example *example, size_t state_offset)
{
    const char *xml = example->prompt + state_offset;
    size_t xml_length = example->prompt_length - state_offset;
    /* the prompt holds the canonical form */
    lf_tree *tree = NULL;
    lf_diagnostic diagnostic = {0};
    if (lf_xml_parse(xml, xml_length, 0, &tree, &diagnostic) != 0)
        fail_msg("the prompt's state does not parse: %s", diagnostic.message);
    lf_buffer rewritten = {0};
    assert_true(lf_xml_write(tree, 0, &rewritten, NULL) >= 0);
    assert_int_equal(rewritten.length, xml_length);
    assert_memory_equal(rewritten.data, xml, xml_length);

    lf_buffer completion = {0};
    int64_t result;
    assert_int_equal(lf_sim_exact_completion((const uint8_t *)xml, xml_length, example->operation,
                                             &completion, &result, &diagnostic), 0);
    assert_int_equal(result, example->status);
    if (completion.length != example->completion_length ||
        memcmp(completion.data, example->completion, completion.length) != 0)
        fail_msg("%.*s\ncompletion: %.*s\nreplayed:   %s", (int)state_offset, example->prompt,
                 (int)example->completion_length, (const char *)example->completion,
                 lf_buffer_string(&completion));
    /* the exact new state holds the bytes a write or truncate leaves */
    if (example->status >= 0 && !lf_sim_op_is_read(example->operation->op)) {
        lf_tree *after = NULL;
        assert_int_equal(lf_xml_parse(completion.data, completion.length, 0, &after, NULL), 0);
        assert_int_equal(lf_sim_holds_bytes_written((const uint8_t *)xml, xml_length,
                                                    example->operation, after),
                         1);
        lf_tree_free(after);
    }
    lf_buffer_free(&completion);
    lf_buffer_free(&rewritten);
    lf_tree_free(tree);
}

/* The line is JSON that gives back the example. */
static void check_line(const lf_sim_example *example, const lf_buffer *line)
{
    json_error_t error;
    json_t *object = json_loadb((const char *)line->data, line->length, 0, &error);
    if (!object)
        fail_msg("not JSON: %s", error.text);
    const char *prompt = json_string_value(json_object_get(object, "prompt"));
    assert_non_null(prompt);
    assert_int_equal(json_string_length(json_object_get(object, "prompt")), example->prompt_length);
    assert_memory_equal(prompt, example->prompt, example->prompt_length);
    json_t *completion = json_object_get(object, "completion");
    lf_buffer bytes = {0};
    if (json_object_get(object, "completion_encoding"))
        assert_true(lf_base64_decode(json_string_value(completion), json_string_length(completion),
                                     &bytes) >= 0);
    else
        lf_buffer_append(&bytes, json_string_value(completion), json_string_length(completion));
    assert_int_equal(bytes.length, example->completion_length);
    assert_memory_equal(bytes.data, example->completion, bytes.length);
    bool read = lf_sim_op_is_read(example->operation->op);
    assert_string_equal(json_string_value(json_object_get(object, "kind")), read ? "R" : "W");
    assert_string_equal(json_string_value(json_object_get(object, "op")),
                        lf_sim_op_name(example->operation->op));
    assert_string_equal(json_string_value(json_object_get(object, "status")),
                        example->status < 0 ? lf_error_name(example->status) : "OK");
    lf_buffer_free(&bytes);
    json_decref(object);
}

/* The guard with the plan for the prompt takes the true answer whole: the
 * plan's rule (what the operation does not name stays as it was, in its
 * order) holds for every operation the simulator runs, and getattr and
 * readdir answers have the shape the guard holds them to. */
static void guard_takes_the_answer(collected *c, const lf_sim_example *example)
{
    lf_guard_plan plan = {0};
    int64_t made = lf_guard_plan_prompt(&plan, (const uint8_t *)example->prompt, example->prompt_length);
    assert_true(made == 0 || made == 1);
    if (made == 1 && lf_sim_op_is_read(example->operation->op))
        return; /* a read or readlink: not guarded */
    lf_guard_memory memory = {0};
    lf_guard guard;
    lf_guard_start(&guard, &memory, made == 0 ? &plan : NULL);
    for (size_t i = 0; i < example->completion_length; i++)
        if (!lf_guard_take(&guard, example->completion + i, 1))
            fail_msg("the guard refuses byte %zu of the answer to\n%.*s\n---\n%.*s", i,
                     (int)example->prompt_length, example->prompt, (int)example->completion_length,
                     (const char *)example->completion);
    assert_true(lf_guard_may_end(&guard));
    if (made == 0 && plan.answer == LF_GUARD_ANSWER_STATE && example->status >= 0)
        assert_int_equal(lf_guard_plan_keeps_content(&plan, example->completion, example->completion_length), 1);
    c->planned += made == 0 && !lf_sim_op_is_read(example->operation->op);
    lf_guard_memory_free(&memory);
    lf_guard_plan_free(&plan);
}

static int64_t collect(void *context, lf_sim_split split, const lf_sim_example *example)
{
    collected *c = context;
    const lf_sim_operation *op = example->operation;
    bool read = lf_sim_op_is_read(op->op);
    assert_true(example->prompt_length + example->completion_length <= c->max_bytes);

    /* "<R>\n" or "<W>\n", the op line, "\n---\n", then the state. */
    lf_buffer head = {0};
    lf_buffer_printf(&head, "<%c>\n", read ? 'R' : 'W');
    assert_int_equal(lf_sim_opline_format(op, &head), 0);
    lf_buffer_append_string(&head, "\n---\n");
    assert_true(example->prompt_length > head.length);
    assert_memory_equal(example->prompt, head.data, head.length);
    replay(example, head.length);
    lf_buffer_free(&head);

    /* A completion reads as an error exactly when it is one: file bodies
     * never hold "ERROR:". */
    bool error_text = example->completion_length >= 7 &&
                      memcmp(example->completion, "ERROR: ", 7) == 0;
    assert_int_equal(error_text, example->status < 0);

    size_t start = c->lines.length;
    assert_int_equal(lf_sim_dataset_line(example, &c->lines, NULL), 0);
    lf_buffer line = {.data = c->lines.data + start, .length = c->lines.length - start};
    assert_int_equal(line.data[line.length - 1], '\n');
    check_line(example, &line);

    c->prompts = realloc(c->prompts, (c->prompt_count + 1) * sizeof *c->prompts);
    c->prompts[c->prompt_count] = strndup(example->prompt, example->prompt_length);
    c->prompt_count++;
    if (example->status >= 0)
        guard_takes_the_answer(c, example);
    c->split_counts[split]++;
    c->op_counts[op->op]++;
    *(read ? &c->reads : &c->writes) += 1;
    c->enoent += example->status == -ENOENT;
    c->eexist += example->status == -EEXIST;
    c->enotempty += example->status == -ENOTEMPTY;
    c->enotdir += example->status == -ENOTDIR;
    c->eisdir += example->status == -EISDIR;
    return 0;
}

/* The simulator needs root (owners) and a sandbox on ext4, whose
 * behaviour the tree follows. */
static bool can_generate(void)
{
    const char *base = getenv("TMPDIR");
    struct statfs filesystem;
    return geteuid() == 0 && statfs(base && *base ? base : "/tmp", &filesystem) == 0 &&
           filesystem.f_type == EXT4_SUPER_MAGIC;
}

static void generate(lf_sim_config *config, collected *c)
{
    lf_sim_stats stats;
    lf_diagnostic diagnostic = {0};
    c->max_bytes = config->max_bytes;
    if (lf_sim_generate(config, collect, c, &stats, &diagnostic) != 0)
        fail_msg("generation failed: %s", diagnostic.message);
    assert_int_equal(c->split_counts[LF_SIM_TRAIN], config->train_count);
    assert_int_equal(c->split_counts[LF_SIM_EVAL], config->eval_count);
}

static int compare_prompts(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_examples_follow_from_their_prompts(void **state)
{
    (void)state;
    if (!can_generate())
        skip();
    lf_sim_config config;
    lf_sim_config_default(&config);
    config.seed = 7;
    config.train_count = 600;
    config.eval_count = 150;
    collected c = {0};
    generate(&config, &c);
    for (int op = 0; op < LF_SIM_OP_COUNT; op++)
        if (c.op_counts[op] == 0)
            fail_msg("no %s example", lf_sim_op_name((lf_sim_op)op));
    assert_true(c.reads > 0 && c.writes > 0);
    assert_true(c.planned > c.writes / 2);
    assert_true(c.enoent > 0 && c.eexist > 0 && c.enotempty > 0 && c.enotdir > 0 && c.eisdir > 0);
    /* No prompt twice, within or across the splits. */
    qsort(c.prompts, c.prompt_count, sizeof *c.prompts, compare_prompts);
    for (size_t i = 1; i < c.prompt_count; i++)
        if (strcmp(c.prompts[i - 1], c.prompts[i]) == 0)
            fail_msg("a prompt appears twice:\n%s", c.prompts[i]);
    collected_free(&c);
}

static void test_same_seed_same_lines(void **state)
{
    (void)state;
    if (!can_generate())
        skip();
    lf_sim_config config;
    lf_sim_config_default(&config);
    config.seed = 11;
    config.train_count = 150;
    config.eval_count = 50;
    collected first = {0}, again = {0}, unmounted = {0}, other = {0};
    generate(&config, &first);
    generate(&config, &again);
    config.mount = false;
    generate(&config, &unmounted);
    config.seed = 12;
    generate(&config, &other);
    assert_int_equal(first.lines.length, again.lines.length);
    assert_memory_equal(first.lines.data, again.lines.data, first.lines.length);
    assert_int_equal(first.lines.length, unmounted.lines.length);
    assert_memory_equal(first.lines.data, unmounted.lines.data, first.lines.length);
    assert_true(other.lines.length != first.lines.length ||
                memcmp(other.lines.data, first.lines.data, first.lines.length) != 0);
    collected_free(&first);
    collected_free(&again);
    collected_free(&unmounted);
    collected_free(&other);
}

static void test_weights_choose_the_operations(void **state)
{
    (void)state;
    lf_sim_config config;
    lf_sim_config_default(&config);
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_sim_parse_weights("mkdir=3,rename=0", config.weights, &diagnostic), 0);
    assert_int_equal(config.weights[LF_SIM_MKDIR], 3);
    assert_int_equal(config.weights[LF_SIM_RENAME], 0);
    assert_true(config.weights[LF_SIM_READ] > 0); /* unnamed: unchanged */
    static const char *const refused[] = {"mkdir", "frobnicate=1", "read=-1", "read=x", "read=",
                                          "=3", "read=1,"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        diagnostic.message[0] = '\0';
        assert_int_equal(lf_sim_parse_weights(refused[i], config.weights, &diagnostic), -EINVAL);
        assert_true(diagnostic.message[0] != '\0');
    }
    if (!can_generate())
        skip();
    for (int op = 0; op < LF_SIM_OP_COUNT; op++)
        config.weights[op] = op == LF_SIM_RMDIR || op == LF_SIM_READLINK;
    config.train_count = 40;
    collected c = {0};
    generate(&config, &c);
    assert_int_equal(c.op_counts[LF_SIM_RMDIR] + c.op_counts[LF_SIM_READLINK], 40);
    assert_true(c.op_counts[LF_SIM_RMDIR] > 0 && c.op_counts[LF_SIM_READLINK] > 0);
    collected_free(&c);
}

/* The engine's checksum on written bytes: a new state whose file does not
 * hold exactly what the write or truncate leaves is caught, whatever else
 * in it is right (its size, as the guard holds it); a symlink is followed. */
static int64_t holds(const lf_sim_operation *operation, const char *body, const char *size)
{
    static const char before[] =
        "<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" "
        "mtime=\"2025-01-01T00:00:01\"><file path=\"a.txt\" name=\"a.txt\" mode=\"644\" owner=\"root\" "
        "group=\"root\" mtime=\"2025-01-01T00:00:03\" size=\"6\"><body>hello\n</body></file>"
        "<symlink path=\"link\" name=\"link\" mode=\"777\" owner=\"root\" group=\"root\" "
        "mtime=\"2025-01-01T00:00:03\" target=\"a.txt\" /></directory></filesystem>";
    char after[1024];
    snprintf(after, sizeof after,
             "<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" "
             "mtime=\"2025-01-01T00:00:01\"><file path=\"a.txt\" name=\"a.txt\" mode=\"644\" "
             "owner=\"root\" group=\"root\" mtime=\"2025-01-01T00:00:04\" size=\"%s\">%s</file>"
             "<symlink path=\"link\" name=\"link\" mode=\"777\" owner=\"root\" group=\"root\" "
             "mtime=\"2025-01-01T00:00:03\" target=\"a.txt\" /></directory></filesystem>",
             size, body);
    lf_tree *tree = NULL;
    lf_diagnostic diagnostic = {0};
    if (lf_xml_parse(after, strlen(after), 0, &tree, &diagnostic) != 0)
        fail_msg("%s", diagnostic.message);
    int64_t result = lf_sim_holds_bytes_written((const uint8_t *)before, sizeof before - 1, operation, tree);
    lf_tree_free(tree);
    return result;
}

static void test_written_bytes_are_checked(void **state)
{
    (void)state;
    lf_sim_operation write = {.op = LF_SIM_WRITE, .path = "/a.txt", .offset = 6, .now = 1735689604};
    lf_buffer_append_string(&write.data, "second line\n");
    assert_int_equal(holds(&write, "<body>hello\nsecond line\n</body>", "18"), 1);
    assert_int_equal(holds(&write, "<body>hello\nsecondsign\n </body>", "18"), 0);
    assert_int_equal(holds(&write, "<body>hello\nsecond\n</body>", "13"), 0);
    assert_int_equal(holds(&write, "<body>second line\n</body>", "12"), 0);
    snprintf(write.path, sizeof write.path, "/link");
    assert_int_equal(holds(&write, "<body>hello\nsecond line\n</body>", "18"), 1);
    /* past the end: zeros in between (base64, as the state writes NUL) */
    write.offset = 8;
    assert_int_equal(holds(&write, "<body encoding=\"base64\">aGVsbG8KAABzZWNvbmQgbGluZQo=</body>", "20"), 1);
    assert_int_equal(holds(&write, "<body>hello\n  second line\n</body>", "20"), 0);
    lf_sim_operation_free(&write);
    lf_sim_operation truncate = {.op = LF_SIM_TRUNCATE, .path = "/a.txt", .length = 3};
    assert_int_equal(holds(&truncate, "<body>hel</body>", "3"), 1);
    assert_int_equal(holds(&truncate, "<body>lo\n</body>", "3"), 0);
    /* other operations, and one that fails on the old state, are not its business */
    lf_sim_operation chmod = {.op = LF_SIM_CHMOD, .path = "/a.txt", .mode = 0600};
    assert_int_equal(holds(&chmod, "<body>anything</body>", "8"), 1);
    snprintf(truncate.path, sizeof truncate.path, "/missing");
    assert_int_equal(holds(&truncate, "<body>x</body>", "1"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_follow_from_their_prompts),
        cmocka_unit_test(test_same_seed_same_lines),
        cmocka_unit_test(test_weights_choose_the_operations),
        cmocka_unit_test(test_written_bytes_are_checked),
    };
    return cmocka_run_group_tests_name("sim", tests, NULL, NULL);
}
