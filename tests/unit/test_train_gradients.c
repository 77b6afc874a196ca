/* The trainer's forward and backward passes against a straightforward
 * double-precision reference of the engine's architecture.
 *
 * The reference computes the mean cross-entropy of a batch in doubles, so
 * central differences of it are accurate to about 1e-10: they check the
 * float32 analytic gradients of every parameter tensor (several elements
 * each) to within float rounding, and the forward loss itself. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/random.h"
#include "model/transformer_file.h"
#include "train/backprop.h"

enum { ROWS = 2, LENGTH = 8, SAMPLES_PER_TENSOR = 5 };

static lf_transformer_config tiny_config(void)
{
    return (lf_transformer_config){.vocab_size = 260,
                                   .context_length = LENGTH,
                                   .embedding_size = 16,
                                   .layer_count = 2,
                                   .head_count = 4,
                                   .kv_head_count = 2,
                                   .feed_forward_size = 24,
                                   .rope_base = 10000.0f,
                                   .norm_epsilon = 1e-5f};
}

/* ---- the reference: one sequence at a time, everything in doubles ---- */

typedef struct reference {
    const lf_transformer_config *config;
    const lf_transformer_tensor *tensors;
    const double *parameters;
} reference;

/* Tensor of layer l (or -1 for the embedding and output norm) by name. */
static const double *weight(const reference *r, const char *name)
{
    size_t count = lf_transformer_tensors(r->config, NULL);
    for (size_t i = 0; i < count; i++)
        if (strcmp(r->tensors[i].name, name) == 0)
            return r->parameters + r->tensors[i].offset;
    fail_msg("no tensor %s", name);
    return NULL;
}

// out (OC) = w (OC, C) @ x (C)
static void matvec(double *out, const double *w, const double *x, size_t oc, size_t c)
{
    for (size_t o = 0; o < oc; o++) {
        double sum = 0;
        for (size_t i = 0; i < c; i++)
            sum += w[o * c + i] * x[i];
        out[o] = sum;
    }
}

static void rmsnorm(double *out, const double *x, const double *w, size_t d, double epsilon)
{
    double squares = 0;
    for (size_t i = 0; i < d; i++)
        squares += x[i] * x[i];
    double inverse = 1.0 / sqrt(squares / (double)d + epsilon);
    for (size_t i = 0; i < d; i++)
        out[i] = x[i] * inverse * w[i];
}

static void rope(double *x, size_t head, size_t position, double base)
{
    size_t half = head / 2;
    for (size_t i = 0; i < half; i++) {
        double angle = (double)position * pow(base, -2.0 * (double)i / (double)head);
        double a = x[i], b = x[i + half];
        x[i] = a * cos(angle) - b * sin(angle);
        x[i + half] = a * sin(angle) + b * cos(angle);
    }
}

/* Sum of the cross-entropies of one sequence's counted targets. */
static double reference_sequence_loss(const reference *r, const uint32_t *tokens,
                                      const int32_t *targets, size_t length)
{
    const lf_transformer_config *c = r->config;
    size_t d = c->embedding_size, hs = d / c->head_count, kv = hs * c->kv_head_count;
    size_t ff = c->feed_forward_size, group = c->head_count / c->kv_head_count;
    double *x = calloc(length * d, sizeof *x), *normed = malloc(d * sizeof *normed);
    double *q = malloc(length * d * sizeof *q), *k = malloc(length * kv * sizeof *k);
    double *v = malloc(length * kv * sizeof *v), *attended = malloc(d * sizeof *attended);
    double *projected = malloc(d * sizeof *projected), *gate = malloc(ff * sizeof *gate);
    double *up = malloc(ff * sizeof *up), *scores = malloc(length * sizeof *scores);
    double *logits = malloc(c->vocab_size * sizeof *logits);
    const double *embedding = weight(r, "token_embd.weight");
    for (size_t t = 0; t < length; t++)
        memcpy(x + t * d, embedding + (size_t)tokens[t] * d, d * sizeof *x);
    char name[64];
#define W(...) (snprintf(name, sizeof name, __VA_ARGS__), weight(r, name))
    for (uint32_t l = 0; l < c->layer_count; l++) {
        for (size_t t = 0; t < length; t++) {
            rmsnorm(normed, x + t * d, W("blk.%u.attn_norm.weight", l), d, c->norm_epsilon);
            matvec(q + t * d, W("blk.%u.attn_q.weight", l), normed, d, d);
            matvec(k + t * kv, W("blk.%u.attn_k.weight", l), normed, kv, d);
            matvec(v + t * kv, W("blk.%u.attn_v.weight", l), normed, kv, d);
            for (size_t h = 0; h < c->head_count; h++)
                rope(q + t * d + h * hs, hs, t, c->rope_base);
            for (size_t h = 0; h < c->kv_head_count; h++)
                rope(k + t * kv + h * hs, hs, t, c->rope_base);
        }
        double *middle = malloc(length * d * sizeof *middle);
        for (size_t t = 0; t < length; t++) {
            for (size_t h = 0; h < c->head_count; h++) {
                size_t g = h / group;
                double largest = -INFINITY, total = 0;
                for (size_t s = 0; s <= t; s++) {
                    double dot = 0;
                    for (size_t i = 0; i < hs; i++)
                        dot += q[t * d + h * hs + i] * k[s * kv + g * hs + i];
                    scores[s] = dot / sqrt((double)hs);
                    largest = fmax(largest, scores[s]);
                }
                for (size_t s = 0; s <= t; s++)
                    total += scores[s] = exp(scores[s] - largest);
                for (size_t i = 0; i < hs; i++) {
                    double sum = 0;
                    for (size_t s = 0; s <= t; s++)
                        sum += scores[s] * v[s * kv + g * hs + i];
                    attended[h * hs + i] = sum / total;
                }
            }
            matvec(projected, W("blk.%u.attn_output.weight", l), attended, d, d);
            for (size_t i = 0; i < d; i++)
                middle[t * d + i] = x[t * d + i] + projected[i];
        }
        for (size_t t = 0; t < length; t++) {
            rmsnorm(normed, middle + t * d, W("blk.%u.ffn_norm.weight", l), d, c->norm_epsilon);
            matvec(gate, W("blk.%u.ffn_gate.weight", l), normed, ff, d);
            matvec(up, W("blk.%u.ffn_up.weight", l), normed, ff, d);
            for (size_t i = 0; i < ff; i++)
                gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i];
            matvec(projected, W("blk.%u.ffn_down.weight", l), gate, d, ff);
            for (size_t i = 0; i < d; i++)
                x[t * d + i] = middle[t * d + i] + projected[i];
        }
        free(middle);
    }
    double loss = 0;
    for (size_t t = 0; t < length; t++) {
        if (targets[t] == LF_TRAIN_NO_TARGET)
            continue;
        rmsnorm(normed, x + t * d, weight(r, "output_norm.weight"), d, c->norm_epsilon);
        matvec(logits, embedding, normed, c->vocab_size, d);
        double largest = -INFINITY, total = 0;
        for (uint32_t j = 0; j < c->vocab_size; j++)
            largest = fmax(largest, logits[j]);
        for (uint32_t j = 0; j < c->vocab_size; j++)
            total += exp(logits[j] - largest);
        loss += largest + log(total) - logits[targets[t]];
    }
#undef W
    free(x), free(normed), free(q), free(k), free(v), free(attended), free(projected);
    free(gate), free(up), free(scores), free(logits);
    return loss;
}

/* Mean loss over the counted targets of the batch. */
static double reference_loss(const reference *r, const lf_train_batch *batch)
{
    double total = 0;
    size_t counted = 0;
    for (uint32_t row = 0; row < batch->rows; row++) {
        const int32_t *targets = batch->targets + row * batch->length;
        total += reference_sequence_loss(r, batch->inputs + row * batch->length, targets,
                                         batch->length);
        for (size_t t = 0; t < batch->length; t++)
            counted += targets[t] != LF_TRAIN_NO_TARGET;
    }
    return total / (double)counted;
}

/* ---- the check ---- */

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    lf_transformer_config config = tiny_config();
    size_t count = lf_transformer_parameter_count(&config);
    size_t tensor_count = lf_transformer_tensors(&config, NULL);
    lf_transformer_tensor *tensors = malloc(tensor_count * sizeof *tensors);
    lf_transformer_tensors(&config, tensors);
    float *parameters = malloc(count * sizeof *parameters);
    float *gradients = calloc(count, sizeof *gradients);
    double *exact = malloc(count * sizeof *exact);
    lf_transformer_init_parameters(&config, 3, parameters);
    /* Random init is nearly uniform attention and tiny gradients; larger
     * weights and uneven norms make every path matter. */
    lf_random random;
    lf_random_seed(&random, 17);
    for (size_t t = 0; t < tensor_count; t++)
        for (size_t i = 0; i < (size_t)tensors[t].rows * tensors[t].columns; i++) {
            float *p = &parameters[tensors[t].offset + i];
            double noise = (double)lf_random_below(&random, 1000) / 1000.0 - 0.5;
            *p = tensors[t].matrix ? *p * 12.0f : (float)(1.0 + 0.4 * noise);
        }
    for (size_t i = 0; i < count; i++)
        exact[i] = parameters[i];

    lf_train_batch batch;
    assert_int_equal(lf_train_batch_allocate(&batch, ROWS, LENGTH), 0);
    for (size_t p = 0; p < ROWS * LENGTH; p++) {
        batch.inputs[p] = (uint32_t)lf_random_below(&random, config.vocab_size);
        batch.targets[p] = (int32_t)lf_random_below(&random, config.vocab_size);
    }
    batch.targets[3] = batch.targets[LENGTH + 5] = LF_TRAIN_NO_TARGET; /* masking takes part */

    lf_train_network *network;
    assert_int_equal(lf_train_network_create(&config, ROWS, LENGTH, 2, &network), 0);
    lf_train_loss loss;
    assert_int_equal(lf_train_forward(network, parameters, &batch, &loss), 0);
    assert_int_equal(loss.targets, ROWS * LENGTH - 2);
    lf_train_backward(network, parameters, &batch, gradients);

    reference r = {.config = &config, .tensors = tensors, .parameters = exact};
    double expected_loss = reference_loss(&r, &batch);
    double trainer_loss = loss.nats / (double)loss.targets;
    print_message("loss %.8f, reference %.8f\n", trainer_loss, expected_loss);
    assert_true(fabs(trainer_loss - expected_loss) < 1e-5 * expected_loss);

    double worst = 0;
    for (size_t t = 0; t < tensor_count; t++) {
        size_t size = (size_t)tensors[t].rows * tensors[t].columns;
        double largest = 0; /* the tensor's gradient scale, for elements near zero */
        for (size_t i = 0; i < size; i++)
            largest = fmax(largest, fabs(gradients[tensors[t].offset + i]));
        for (int sample = 0; sample < SAMPLES_PER_TENSOR; sample++) {
            size_t i = tensors[t].offset + (size_t)lf_random_below(&random, size);
            double step = 1e-5 * fmax(1.0, fabs(exact[i])), saved = exact[i];
            exact[i] = saved + step;
            double above = reference_loss(&r, &batch);
            exact[i] = saved - step;
            double below = reference_loss(&r, &batch);
            exact[i] = saved;
            double numeric = (above - below) / (2 * step), analytic = gradients[i];
            double error = fabs(analytic - numeric) / (fabs(numeric) + 1e-3 * largest + 1e-12);
            worst = fmax(worst, error);
            if (error > 1e-3)
                fail_msg("%s[%zu]: analytic %.9g, numeric %.9g (tensor's largest %.3g)",
                         tensors[t].name, i - tensors[t].offset, analytic, numeric, largest);
        }
    }
    print_message("%zu tensors, worst relative gradient error %.2e\n", tensor_count, worst);
    lf_train_network_free(network);
    lf_train_batch_free(&batch);
    free(tensors), free(parameters), free(gradients), free(exact);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
    };
    return cmocka_run_group_tests_name("train_gradients", tests, NULL, NULL);
}
