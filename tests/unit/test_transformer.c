/* The inference engine against a straightforward float reference, and its
 * determinism: the same bits alone or in a batch, portable or SIMD kernel.
 *
 * Tolerance: the engine quantizes weights and activations to int8, so its
 * probabilities are not the reference's. On this random model (weights
 * doubled so that it has opinions: top tokens at p ~ 0.05) the
 * log-probability of every token above e^-8 agrees within 0.25 nats at
 * every position, before and after the window slides, and the top token
 * agrees at >= 90% of positions (measured: worst 0.1757, 38/40, the same
 * with a float key/value cache as with the bfloat16 one: its rounding is
 * far below int8's). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/random.h"
#include "model/kernels.h"
#include "model/transformer_file.h"
#include "reference_transformer.h"
#include "sandbox.h"

typedef struct fixture {
    lf_transformer_config config;
    float *parameters;
    char *directory, *path;
    lf_gguf *file;
    lf_transformer *model;
    lf_transformer_workspace *workspace; /* for up to 8 sequences */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->config = lf_transformer_default_config(LF_TOKEN_FIRST_MERGE);
    f->config.context_length = 24; /* short, so the tests slide past it */
    f->parameters = malloc(lf_transformer_parameter_count(&f->config) * sizeof(float));
    lf_transformer_init_parameters(&f->config, 42, f->parameters);
    /* Random init gives near-uniform outputs; scale up so the model has
     * opinions worth comparing. */
    for (size_t i = 0; i < lf_transformer_parameter_count(&f->config); i++)
        f->parameters[i] *= 2.0f;
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_from_merges(NULL, 0, &tokenizer, NULL), 0);
    f->directory = lf_test_sandbox_create("transformer");
    assert_true(asprintf(&f->path, "%s/model.gguf", f->directory) > 0);
    lf_diagnostic diagnostic = {0};
    if (lf_transformer_save(&f->config, f->parameters, tokenizer, f->path, &diagnostic) != 0)
        fail_msg("save: %s", diagnostic.message);
    lf_tokenizer_free(tokenizer);
    if (lf_gguf_open_file(f->path, &f->file, &diagnostic) != 0 ||
        lf_transformer_load(f->file, &f->model, &diagnostic) != 0)
        fail_msg("load: %s", diagnostic.message);
    assert_int_equal(lf_transformer_workspace_new(f->model, 8, NULL, &f->workspace), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lf_transformer_workspace_free(f->workspace);
    lf_transformer_free(f->model);
    lf_gguf_close(f->file);
    lf_test_sandbox_remove(f->directory);
    free(f->directory);
    free(f->path);
    free(f->parameters);
    free(f);
    return 0;
}

static void log_softmax(const float *logits, size_t count, double *out)
{
    double largest = -INFINITY, total = 0;
    for (size_t i = 0; i < count; i++)
        largest = fmax(largest, logits[i]);
    for (size_t i = 0; i < count; i++)
        total += exp(logits[i] - largest);
    for (size_t i = 0; i < count; i++)
        out[i] = logits[i] - largest - log(total);
}

static void test_matches_float_reference(void **state)
{
    fixture *f = *state;
    uint32_t vocabulary = f->config.vocab_size;
    enum { LENGTH = 40 }; /* past the 24-token window */
    uint32_t tokens[LENGTH];
    lf_random random;
    lf_random_seed(&random, 5);
    for (size_t i = 0; i < LENGTH; i++)
        tokens[i] = (uint32_t)lf_random_below(&random, 256);
    lf_transformer_cache *cache;
    assert_int_equal(lf_transformer_cache_new(f->model, &cache), 0);
    size_t parameter_count = lf_transformer_parameter_count(&f->config);
    double *parameters = malloc(parameter_count * sizeof *parameters);
    for (size_t i = 0; i < parameter_count; i++)
        parameters[i] = f->parameters[i];
    double *references = malloc(LENGTH * vocabulary * sizeof *references);
    lf_test_reference_log_probabilities(&f->config, parameters, tokens, LENGTH, references);
    float *logits = malloc(vocabulary * sizeof *logits);
    double *engine = malloc(vocabulary * sizeof *engine);
    double worst = 0;
    int top_agrees = 0;
    for (size_t n = 1; n <= LENGTH; n++) {
        assert_int_equal(
            lf_transformer_step(f->model, f->workspace, &cache, &tokens[n - 1], 1, logits), 0);
        log_softmax(logits, vocabulary, engine);
        const double *reference = references + (n - 1) * vocabulary;
        size_t engine_top = 0, reference_top = 0;
        for (uint32_t i = 0; i < vocabulary; i++) {
            /* compare where probability matters: tokens above e^-8 */
            if (reference[i] > -8)
                worst = fmax(worst, fabs(engine[i] - reference[i]));
            if (engine[i] > engine[engine_top])
                engine_top = i;
            if (reference[i] > reference[reference_top])
                reference_top = i;
        }
        top_agrees += engine_top == reference_top;
        if (getenv("LLMFUSE_TRACE")) {
            double here = 0;
            for (uint32_t i = 0; i < vocabulary; i++)
                if (reference[i] > -8)
                    here = fmax(here, fabs(engine[i] - reference[i]));
            print_message("n=%zu diff %.4f top %zu/%zu ref %.3f\n", n, here, engine_top, reference_top, reference[reference_top]);
        }
    }
    print_message("worst log-probability difference %.4f nats; top token agrees %d/%d\n", worst,
                  top_agrees, LENGTH);
    assert_true(worst < 0.25);
    assert_true(top_agrees >= LENGTH * 9 / 10);
    free(logits), free(engine), free(references), free(parameters);
    lf_transformer_cache_free(cache);
}

/* A sequence's logits are the same bits alone and inside a batch of others
 * at other positions. */
static void test_batch_composition_never_changes_bits(void **state)
{
    fixture *f = *state;
    uint32_t vocabulary = f->config.vocab_size;
    enum { SEQUENCES = 7, STEPS = 30 };
    lf_transformer_cache *alone, *batch[SEQUENCES];
    assert_int_equal(lf_transformer_cache_new(f->model, &alone), 0);
    for (int s = 0; s < SEQUENCES; s++)
        assert_int_equal(lf_transformer_cache_new(f->model, &batch[s]), 0);
    float *single = malloc(vocabulary * sizeof *single);
    float *many = malloc(SEQUENCES * vocabulary * sizeof *many);
    lf_random random;
    lf_random_seed(&random, 9);
    for (int step = 0; step < STEPS; step++) {
        uint32_t tokens[SEQUENCES];
        for (int s = 0; s < SEQUENCES; s++)
            tokens[s] = (uint32_t)lf_random_below(&random, vocabulary);
        tokens[3] = (uint32_t)(step * 7 % 256); /* sequence 3 is also run alone */
        assert_int_equal(
            lf_transformer_step(f->model, f->workspace, &alone, &tokens[3], 1, single), 0);
        /* the batch skips some steps for other sequences: different positions */
        size_t count = step % 3 == 0 ? 4 : SEQUENCES;
        assert_int_equal(
            lf_transformer_step(f->model, f->workspace, batch, tokens, count, many), 0);
        assert_memory_equal(single, many + 3 * vocabulary, vocabulary * sizeof *single);
    }
    lf_transformer_cache_free(alone);
    for (int s = 0; s < SEQUENCES; s++)
        lf_transformer_cache_free(batch[s]);
    free(single), free(many);
}

/* Nor do the threads that share a step: teams of 1, 2 and 3 give the same
 * bits for steps that mix sequences of several rows (an encoder's
 * lookahead) and of one, past the context's end. Rows of one cache must be
 * adjacent. */
static void test_threads_never_change_bits(void **state)
{
    fixture *f = *state;
    uint32_t vocabulary = f->config.vocab_size;
    enum { TEAMS = 3, SEQUENCES = 3, ROWS = 6, STEPS = 12 };
    static const size_t rows_of[SEQUENCES] = {3, 1, 2};
    lf_team *teams[TEAMS];
    lf_transformer_workspace *workspaces[TEAMS];
    lf_transformer_cache *caches[TEAMS][SEQUENCES];
    float *logits[TEAMS];
    for (int t = 0; t < TEAMS; t++) {
        assert_int_equal(lf_team_new((unsigned)t + 1, &teams[t]), 0);
        assert_int_equal(lf_transformer_workspace_new(f->model, ROWS, teams[t], &workspaces[t]), 0);
        for (int s = 0; s < SEQUENCES; s++)
            assert_int_equal(lf_transformer_cache_new(f->model, &caches[t][s]), 0);
        logits[t] = malloc(ROWS * vocabulary * sizeof(float));
    }
    lf_random random;
    lf_random_seed(&random, 5);
    for (int step = 0; step < STEPS; step++) {
        uint32_t tokens[ROWS];
        for (int r = 0; r < ROWS; r++)
            tokens[r] = (uint32_t)lf_random_below(&random, vocabulary);
        for (int t = 0; t < TEAMS; t++) {
            lf_transformer_cache *row_caches[ROWS];
            for (size_t s = 0, r = 0; s < SEQUENCES; s++)
                for (size_t k = 0; k < rows_of[s]; k++)
                    row_caches[r++] = caches[t][s];
            assert_int_equal(lf_transformer_step(f->model, workspaces[t], row_caches, tokens, ROWS,
                                                 logits[t]), 0);
            if (t > 0)
                assert_memory_equal(logits[0], logits[t], ROWS * vocabulary * sizeof(float));
        }
    }
    lf_transformer_cache *apart[3] = {caches[0][0], caches[0][1], caches[0][0]};
    uint32_t tokens[3] = {1, 2, 3};
    assert_int_equal(lf_transformer_step(f->model, workspaces[0], apart, tokens, 3, logits[0]),
                     -EINVAL);
    for (int t = 0; t < TEAMS; t++) {
        for (int s = 0; s < SEQUENCES; s++)
            lf_transformer_cache_free(caches[t][s]);
        lf_transformer_workspace_free(workspaces[t]);
        lf_team_free(teams[t]);
        free(logits[t]);
    }
}

/* Floats uniform in [-spread, spread], one in 50 exactly zero. */
static void random_floats(lf_random *random, float *x, size_t count, float spread)
{
    for (size_t i = 0; i < count; i++) {
        double unit = (double)lf_random_range(random, -1000000, 1000000) / 1000000.0;
        x[i] = lf_random_chance(random, 1, 50) ? 0.0f : (float)(unit * spread);
    }
}

/* A (rows, columns) matrix of random int8 values, -128 included (a file may
 * hold it though our quantizer never writes it), prepared as the loader
 * does. */
typedef struct test_matrix {
    lf_int8_matrix matrix;
    int8_t *values, *packed;
    float *scales;
    int32_t *row_sums;
} test_matrix;

static void make_matrix(lf_random *random, size_t rows, size_t columns, test_matrix *m)
{
    m->values = malloc(rows * columns);
    m->scales = malloc(rows * sizeof *m->scales);
    m->row_sums = calloc(rows, sizeof *m->row_sums);
    m->packed = aligned_alloc(64, lf_kernel_packed_size(rows, columns));
    for (size_t r = 0; r < rows; r++) {
        m->scales[r] = 0.001f * (float)(r + 1);
        for (size_t c = 0; c < columns; c++) {
            int8_t v = (int8_t)lf_random_range(random, -128, 127);
            m->values[r * columns + c] = v;
            m->row_sums[r] += v;
        }
    }
    lf_kernel_pack(m->values, rows, columns, m->packed);
    m->matrix = (lf_int8_matrix){.rows = (uint32_t)rows, .columns = (uint32_t)columns,
                                 .values = m->values, .scales = m->scales,
                                 .row_sums = m->row_sums, .packed = m->packed};
}

static void free_matrix(test_matrix *m)
{
    free(m->values), free(m->scales), free(m->row_sums), free(m->packed);
}

/* Each kernel of every variant the CPU runs against the portable one, bit
 * for bit, on shapes that exercise every tail: columns not a multiple of 4
 * or 16, rows not a multiple of 16 or 64, batches past the register tiles,
 * positions not a multiple of 16 or 64, odd query-head groups, head sizes
 * not a multiple of 16. */
static void test_kernel_variants_agree(void **state)
{
    (void)state;
    const lf_kernels *variants[4];
    size_t variant_count = lf_kernels_available(variants, 4);
    const lf_kernels *portable = variants[0];
    assert_string_equal(portable->name, "portable");
    lf_random random;
    lf_random_seed(&random, 11);
    for (size_t v = 1; v < variant_count; v++) {
        const lf_kernels *k = variants[v];
        print_message("checking %s against portable\n", k->name);
        static const size_t shapes[][3] = {{1, 1, 1},  {3, 17, 5},    {7, 64, 64},  {13, 100, 45},
                                           {6, 256, 384}, {9, 33, 260}, {2, 96, 7},  {16, 80, 128}};
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            size_t batch = shapes[s][0], rows = shapes[s][1], columns = shapes[s][2];
            size_t stride = lf_kernel_row_stride(columns);
            float *x = malloc(batch * columns * sizeof *x), scales[2][16];
            int8_t *q[2] = {malloc(batch * stride), malloc(batch * stride)};
            random_floats(&random, x, batch * columns, s % 2 ? 1e-3f : 40.0f);
            if (s == 1)
                memset(x, 0, columns * sizeof *x); /* a zero row */
            portable->quantize(x, batch, columns, stride, q[0], scales[0]);
            k->quantize(x, batch, columns, stride, q[1], scales[1]);
            assert_memory_equal(q[0], q[1], batch * stride);
            assert_memory_equal(scales[0], scales[1], batch * sizeof(float));
            test_matrix m;
            make_matrix(&random, rows, columns, &m);
            size_t out_bytes = batch * rows * sizeof(float);
            float *out[2] = {malloc(out_bytes), malloc(out_bytes)};
            portable->matmul(out[0], q[0], scales[0], batch, &m.matrix, 0, rows);
            /* in two shares, as threads take them: the second leaves the
             * first's columns alone, and together they are the whole */
            size_t split = rows / 2 / LF_KERNEL_OUTPUT_ALIGN * LF_KERNEL_OUTPUT_ALIGN;
            memset(out[1], 0xFF, out_bytes);
            k->matmul(out[1], q[0], scales[0], batch, &m.matrix, split, rows);
            for (size_t b = 0; b < batch; b++)
                for (size_t o = 0; o < split; o++)
                    assert_int_equal(((uint32_t *)out[1])[b * rows + o], 0xFFFFFFFFu);
            k->matmul(out[1], q[0], scales[0], batch, &m.matrix, 0, split);
            assert_memory_equal(out[0], out[1], batch * rows * sizeof(float));
            free_matrix(&m);
            free(x), free(q[0]), free(q[1]), free(out[0]), free(out[1]);
        }
        static const size_t heads[][3] = {/* group, head size, count */
                                           {1, 32, 1},  {2, 32, 100}, {3, 24, 77},  {2, 40, 64},
                                           {1, 8, 200}, {4, 16, 17},  {2, 128, 33}, {1, 2, 5}};
        for (size_t s = 0; s < sizeof heads / sizeof *heads; s++) {
            size_t group = heads[s][0], hs = heads[s][1], count = heads[s][2];
            size_t key_count = (count + LF_KERNEL_KEY_BLOCK - 1) / LF_KERNEL_KEY_BLOCK *
                               LF_KERNEL_KEY_BLOCK * hs;
            float *query = malloc(group * hs * sizeof(float));
            /* every element random, those the kernels must skip included */
            size_t value_count = count * lf_kernel_value_stride(hs);
            float *floats = malloc((key_count + value_count) * sizeof(float));
            uint16_t *keys = malloc(key_count * sizeof(uint16_t));
            uint16_t *values = malloc(value_count * sizeof(uint16_t));
            float *scratch = malloc(group * count * sizeof(float));
            size_t out_bytes = group * hs * sizeof(float);
            float *out[2] = {malloc(out_bytes), malloc(out_bytes)};
            random_floats(&random, query, group * hs, 2.0f);
            random_floats(&random, floats, key_count, s == 4 ? 30.0f : 2.0f); /* some underflow */
            random_floats(&random, floats + key_count, value_count, 5.0f);
            for (size_t i = 0; i < key_count; i++)
                keys[i] = lf_bf16_round(floats[i]);
            for (size_t i = 0; i < value_count; i++)
                values[i] = lf_bf16_round(floats[key_count + i]);
            portable->attend(out[0], query, keys, values, group, hs, count, scratch);
            k->attend(out[1], query, keys, values, group, hs, count, scratch);
            assert_memory_equal(out[0], out[1], group * hs * sizeof(float));
            free(query), free(floats), free(keys), free(values), free(scratch);
            free(out[0]), free(out[1]);
        }
        /* exp over its whole range, edges included, through both users:
         * the distribution (logits spread wide, so that some weights are 0
         * and several share the top) and SwiGLU (both overflow edges) */
        enum { N = 4099 };
        float *gate[2] = {malloc(N * sizeof(float)), malloc(N * sizeof(float))};
        float *up = malloc(N * sizeof(float));
        uint32_t *scratch = malloc(N * sizeof(uint32_t));
        random_floats(&random, gate[0], N, 100.0f);
        static const float edges[] = {-87.0f, -87.00001f, -86.99999f, 88.7f, 88.70001f, 88.69999f,
                                      0.0f,   -0.0f,      1e-30f,     -1e-30f, 0.34657f, -0.34657f,
                                      100.0f, 100.0f};
        memcpy(gate[0], edges, sizeof edges);
        random_floats(&random, up, N, 3.0f);
        memcpy(gate[1], gate[0], N * sizeof(float));
        for (uint32_t n = 1; n <= N; n += 273) {
            lf_frequencies tables[2] = {{0}, {0}};
            for (int t = 0; t < 2; t++) {
                assert_int_equal(lf_frequencies_resize(&tables[t], n), 0);
                (t ? k : portable)->distribution(&tables[t], gate[0] + (N - n), scratch);
            }
            assert_memory_equal(tables[0].cumulative, tables[1].cumulative,
                                (n + 1) * sizeof(uint32_t));
            lf_frequencies_free(&tables[0]);
            lf_frequencies_free(&tables[1]);
        }
        portable->swiglu(gate[0], up, N);
        k->swiglu(gate[1], up, N);
        assert_memory_equal(gate[0], gate[1], N * sizeof(float));
        free(gate[0]), free(gate[1]), free(up), free(scratch);
    }
    print_message("kernel variant in use: %s\n", lf_kernels_chosen()->name);
}

/* The cache's bfloat16 rounding (kernels.h): to nearest, ties to even,
 * exact on the way back; overflow to Inf; and NaN to a fixed pattern, the
 * same in every build because the formula is integer arithmetic. */
static uint16_t bf16_of_bits(uint32_t bits)
{
    float x;
    memcpy(&x, &bits, sizeof x);
    return lf_bf16_round(x);
}

static void test_bfloat16_rounding(void **state)
{
    (void)state;
    static const uint32_t cases[][2] = {
        {0x3F800000u, 0x3F80}, /* 1.0: exact */
        {0x3F807FFFu, 0x3F80}, /* below half: down */
        {0x3F808000u, 0x3F80}, /* tie, even kept bit: down */
        {0x3F818000u, 0x3F82}, /* tie, odd kept bit: up to even */
        {0x3F808001u, 0x3F81}, /* above half: up */
        {0xBF80C000u, 0xBF81}, /* negative: magnitude rounds the same */
        {0x3FFFFFFFu, 0x4000}, /* carry into the exponent */
        {0x00000001u, 0x0000}, /* smallest subnormal: to +0 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x7F7FFFFFu, 0x7F80}, /* largest float: past the largest bfloat16, Inf */
        {0x7F800000u, 0x7F80}, /* Inf */
        {0xFF800000u, 0xFF80}, /* -Inf */
        {0x7FC00000u, 0x7FC0}, /* quiet NaN */
        {0x7FFFFFFFu, 0x8000}, /* NaN with every mantissa bit: wraps (never made) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(bf16_of_bits(cases[i][0]), cases[i][1]);
    for (uint32_t top = 0; top < 0x10000u; top += 0x101) {
        float x = lf_bf16_expand((uint16_t)top);
        uint32_t bits;
        memcpy(&bits, &x, sizeof bits);
        assert_int_equal(bits, top << 16);
        if ((top & 0x7F80) != 0x7F80) /* finite: a round trip */
            assert_int_equal(lf_bf16_round(x), top);
    }
}

static void test_bad_files_are_refused(void **state)
{
    fixture *f = *state;
    lf_transformer_config bad = f->config;
    bad.head_count = 3; /* 128 is not a multiple of 3 */
    lf_diagnostic diagnostic = {0};
    assert_int_equal(lf_transformer_validate_config(&bad, &diagnostic), -LF_EFORMAT);
    assert_non_null(strstr(diagnostic.message, "head count"));
    /* a tokenizer-only GGUF file is not a model */
    lf_tokenizer *tokenizer;
    assert_int_equal(lf_tokenizer_from_merges(NULL, 0, &tokenizer, NULL), 0);
    char *path;
    assert_true(asprintf(&path, "%s/tokenizer.gguf", f->directory) > 0);
    assert_int_equal(lf_tokenizer_save(tokenizer, path, NULL), 0);
    lf_gguf *file;
    lf_transformer *model;
    assert_int_equal(lf_gguf_open_file(path, &file, NULL), 0);
    memset(&diagnostic, 0, sizeof diagnostic);
    assert_true(lf_transformer_load(file, &model, &diagnostic) < 0);
    assert_true(diagnostic.message[0] != '\0');
    lf_gguf_close(file);
    lf_tokenizer_free(tokenizer);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_float_reference),
        cmocka_unit_test(test_batch_composition_never_changes_bits),
        cmocka_unit_test(test_threads_never_change_bits),
        cmocka_unit_test(test_kernel_variants_agree),
        cmocka_unit_test(test_bfloat16_rounding),
        cmocka_unit_test(test_bad_files_are_refused),
    };
    return cmocka_run_group_tests_name("transformer", tests, setup, teardown);
}
