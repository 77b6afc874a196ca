#include "reference_transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double *reference_tensor(const lf_transformer_config *config,
                                      const double *parameters, const char *name)
{
    size_t count = lf_transformer_tensors(config, NULL);
    lf_transformer_tensor tensors[count];
    lf_transformer_tensors(config, tensors);
    for (size_t i = 0; i < count; i++)
        if (strcmp(tensors[i].name, name) == 0)
            return parameters + tensors[i].offset;
    fprintf(stderr, "reference transformer: no tensor %s\n", name);
    abort();
}

// out (OC) = w (OC, C) @ x (C)
static void reference_matvec(double *out, const double *w, const double *x, size_t oc, size_t c)
{
    for (size_t o = 0; o < oc; o++) {
        double sum = 0;
        for (size_t i = 0; i < c; i++)
            sum += w[o * c + i] * x[i];
        out[o] = sum;
    }
}

static void reference_rmsnorm(double *out, const double *x, const double *w, size_t d,
                              double epsilon)
{
    double squares = 0;
    for (size_t i = 0; i < d; i++)
        squares += x[i] * x[i];
    double inverse = 1.0 / sqrt(squares / (double)d + epsilon);
    for (size_t i = 0; i < d; i++)
        out[i] = x[i] * inverse * w[i];
}

static void reference_rope(double *x, size_t head, size_t position, double base)
{
    size_t half = head / 2;
    for (size_t i = 0; i < half; i++) {
        double angle = (double)position * pow(base, -2.0 * (double)i / (double)head);
        double a = x[i], b = x[i + half];
        x[i] = a * cos(angle) - b * sin(angle);
        x[i + half] = a * sin(angle) + b * cos(angle);
    }
}

void lf_test_reference_log_probabilities(const lf_transformer_config *c,
                                         const double *parameters, const uint32_t *tokens,
                                         size_t length, double *out)
{
    size_t d = c->embedding_size, hs = d / c->head_count, kv = hs * c->kv_head_count;
    size_t ff = c->feed_forward_size, window = c->context_length;
    size_t group = c->head_count / c->kv_head_count;
    double *x = calloc(length * d, sizeof *x), *normed = malloc(d * sizeof *normed);
    double *q = malloc(length * d * sizeof *q), *k = malloc(length * kv * sizeof *k);
    double *v = malloc(length * kv * sizeof *v), *attended = malloc(d * sizeof *attended);
    double *projected = malloc(d * sizeof *projected), *gate = malloc(ff * sizeof *gate);
    double *up = malloc(ff * sizeof *up), *scores = malloc(length * sizeof *scores);
    const double *embedding = reference_tensor(c, parameters, "token_embd.weight");
    for (size_t t = 0; t < length; t++)
        memcpy(x + t * d, embedding + (size_t)tokens[t] * d, d * sizeof *x);
    char name[64];
#define W(...) (snprintf(name, sizeof name, __VA_ARGS__), reference_tensor(c, parameters, name))
    for (uint32_t l = 0; l < c->layer_count; l++) {
        for (size_t t = 0; t < length; t++) {
            reference_rmsnorm(normed, x + t * d, W("blk.%u.attn_norm.weight", l), d, c->norm_epsilon);
            reference_matvec(q + t * d, W("blk.%u.attn_q.weight", l), normed, d, d);
            reference_matvec(k + t * kv, W("blk.%u.attn_k.weight", l), normed, kv, d);
            reference_matvec(v + t * kv, W("blk.%u.attn_v.weight", l), normed, kv, d);
            for (size_t h = 0; h < c->head_count; h++)
                reference_rope(q + t * d + h * hs, hs, t, c->rope_base);
            for (size_t h = 0; h < c->kv_head_count; h++)
                reference_rope(k + t * kv + h * hs, hs, t, c->rope_base);
        }
        /* every position's keys and values come from the layer's input, so
         * the residual stream is updated only after all of them exist */
        for (size_t t = 0; t < length; t++) {
            size_t oldest = t + 1 > window ? t + 1 - window : 0;
            for (size_t h = 0; h < c->head_count; h++) {
                size_t g = h / group;
                double largest = -INFINITY, total = 0;
                for (size_t s = oldest; s <= t; s++) {
                    double dot = 0;
                    for (size_t i = 0; i < hs; i++)
                        dot += q[t * d + h * hs + i] * k[s * kv + g * hs + i];
                    scores[s] = dot / sqrt((double)hs);
                    largest = fmax(largest, scores[s]);
                }
                for (size_t s = oldest; s <= t; s++)
                    total += scores[s] = exp(scores[s] - largest);
                for (size_t i = 0; i < hs; i++) {
                    double sum = 0;
                    for (size_t s = oldest; s <= t; s++)
                        sum += scores[s] * v[s * kv + g * hs + i];
                    attended[h * hs + i] = sum / total;
                }
            }
            reference_matvec(projected, W("blk.%u.attn_output.weight", l), attended, d, d);
            for (size_t i = 0; i < d; i++)
                x[t * d + i] += projected[i];
        }
        for (size_t t = 0; t < length; t++) {
            reference_rmsnorm(normed, x + t * d, W("blk.%u.ffn_norm.weight", l), d, c->norm_epsilon);
            reference_matvec(gate, W("blk.%u.ffn_gate.weight", l), normed, ff, d);
            reference_matvec(up, W("blk.%u.ffn_up.weight", l), normed, ff, d);
            for (size_t i = 0; i < ff; i++)
                gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i];
            reference_matvec(projected, W("blk.%u.ffn_down.weight", l), gate, d, ff);
            for (size_t i = 0; i < d; i++)
                x[t * d + i] += projected[i];
        }
    }
#undef W
    const double *output_norm = reference_tensor(c, parameters, "output_norm.weight");
    for (size_t t = 0; t < length; t++) {
        double *logits = out + t * c->vocab_size; /* tied embeddings */
        reference_rmsnorm(normed, x + t * d, output_norm, d, c->norm_epsilon);
        reference_matvec(logits, embedding, normed, c->vocab_size, d);
        double largest = -INFINITY, total = 0;
        for (uint32_t i = 0; i < c->vocab_size; i++)
            largest = fmax(largest, logits[i]);
        for (uint32_t i = 0; i < c->vocab_size; i++)
            total += exp(logits[i] - largest);
        for (uint32_t i = 0; i < c->vocab_size; i++)
            logits[i] -= largest + log(total);
    }
    free(x), free(normed), free(q), free(k), free(v), free(attended), free(projected);
    free(gate), free(up), free(scores);
}
