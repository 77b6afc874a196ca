/* Measures the context-mixing model: for each file, a fresh model predicts
 * every bit; prints the ideal code length (sum of -log2 p, which the range
 * coder matches closely) and the speed of lf_cm_new + predict + update +
 * lf_cm_free (the bookkeeping of this program is not timed).
 *
 *   cm_ratio [-l memory_level] FILE...    (memory level 24 by default)
 *
 * Built by the cm_ratio target, or by hand:
 *   cc -std=c17 -O3 -ffp-contract=off -Isrc bench/cm_ratio.c src/model/cm.c -lm
 * Floating point here only measures; the model itself is integer-only. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/cm.h"

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    unsigned level = 24;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-l") == 0) {
        level = (unsigned)atoi(argv[2]);
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: cm_ratio [-l memory_level] FILE...\n");
        return 2;
    }
    /* -log2(p / 65536) for every 16-bit p, once. */
    static double cost[65536];
    for (int p = 1; p < 65536; p++)
        cost[p] = -log2(p / 65536.0);

    double total_bits = 0, total_seconds = 0;
    long total_bytes = 0;
    for (int a = first; a < argc; a++) {
        FILE *file = fopen(argv[a], "rb");
        if (!file) {
            perror(argv[a]);
            return 1;
        }
        fseek(file, 0, SEEK_END);
        const long size = ftell(file);
        fseek(file, 0, SEEK_SET);
        unsigned char *data = malloc(size ? (size_t)size : 1);
        if (!data || fread(data, 1, (size_t)size, file) != (size_t)size) {
            fprintf(stderr, "%s: read failed\n", argv[a]);
            return 1;
        }
        fclose(file);

        /* Only the model's calls are timed: predictions are kept per block
         * and their cost is added up outside the clock. */
        enum { BLOCK = 4096 };
        static uint16_t predictions[BLOCK * 8];
        double elapsed = 0, bits = 0;
        double start = seconds_now();
        lf_cm *model = lf_cm_new(level);
        if (!model) {
            fprintf(stderr, "no model at memory level %u\n", level);
            return 1;
        }
        elapsed += seconds_now() - start;
        for (long block = 0; block < size; block += BLOCK) {
            const long end = block + BLOCK < size ? block + BLOCK : size;
            start = seconds_now();
            for (long i = block; i < end; i++)
                for (int b = 7; b >= 0; b--) {
                    const int bit = (data[i] >> b) & 1;
                    predictions[(i - block) * 8 + 7 - b] = (uint16_t)lf_cm_predict(model);
                    lf_cm_update(model, bit);
                }
            elapsed += seconds_now() - start;
            for (long i = block; i < end; i++)
                for (int b = 7; b >= 0; b--) {
                    const unsigned p = predictions[(i - block) * 8 + 7 - b];
                    bits += ((data[i] >> b) & 1) ? cost[p] : cost[65536 - p];
                }
        }
        start = seconds_now();
        lf_cm_free(model);
        elapsed += seconds_now() - start;
        printf("%-40s %9ld -> %10.1f bytes  %.4f bits/byte  %.2f MB/s\n", argv[a], size, bits / 8,
               size ? bits / (double)size : 0.0, size / elapsed / 1e6);
        total_bits += bits;
        total_bytes += size;
        total_seconds += elapsed;
        free(data);
    }
    printf("%-40s %9ld -> %10.1f bytes  %.4f bits/byte  %.2f MB/s\n", "total", total_bytes,
           total_bits / 8, total_bytes ? total_bits / (double)total_bytes : 0.0,
           total_bytes / total_seconds / 1e6);
    return 0;
}
