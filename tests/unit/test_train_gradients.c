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
#include "reference_transformer.h"
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

/* Mean cross-entropy over the counted targets of the batch, in doubles
 * (tests/support/reference_transformer.c). */
static double reference_loss(const lf_transformer_config *config, const double *parameters,
                             const lf_train_batch *batch)
{
    double *log_probabilities = malloc(batch->length * config->vocab_size * sizeof(double));
    double total = 0;
    size_t counted = 0;
    for (uint32_t row = 0; row < batch->rows; row++) {
        const int32_t *targets = batch->targets + row * batch->length;
        lf_test_reference_log_probabilities(config, parameters, batch->inputs + row * batch->length,
                                            batch->length, log_probabilities);
        for (size_t t = 0; t < batch->length; t++)
            if (targets[t] != LF_TRAIN_NO_TARGET) {
                total -= log_probabilities[t * config->vocab_size + (size_t)targets[t]];
                counted++;
            }
    }
    free(log_probabilities);
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

    double expected_loss = reference_loss(&config, exact, &batch);
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
            double above = reference_loss(&config, exact, &batch);
            exact[i] = saved - step;
            double below = reference_loss(&config, exact, &batch);
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
