#include "model/exact_math.h"

#include <stdint.h>
#include <string.h>

static float float_from_bits(uint32_t bits)
{
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

float lf_exact_expf(float x)
{
    if (x < -87.0f)
        return 0.0f;
    if (x > 88.7f)
        return float_from_bits(0x7F800000u);
    /* e^x = 2^k * e^r with k = round(x / ln 2) and |r| <= ln2 / 2; ln 2 is
     * split in two so that k * ln2_high is exact. */
    const float inverse_ln2 = 1.44269504088896341f;
    const float ln2_high = 0.693359375f, ln2_low = -2.12194440e-4f;
    float scaled = x * inverse_ln2;
    int k = (int)(scaled + (scaled >= 0.0f ? 0.5f : -0.5f));
    float r = x - (float)k * ln2_high;
    r = r - (float)k * ln2_low;
    /* Taylor terms to r^7: below float precision on |r| <= 0.35. */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^k as a float, in two steps so that k near -126 stays representable. */
    int half = k / 2;
    float scale_a = float_from_bits((uint32_t)(half + 127) << 23);
    float scale_b = float_from_bits((uint32_t)(k - half + 127) << 23);
    return p * scale_a * scale_b;
}

/* Taylor series on |r| <= pi/4, to r^17 (sin) and r^18 (cos). */
static double sin_reduced(double r)
{
    double r2 = r * r, term = r, sum = r;
    for (int n = 1; n <= 8; n++) {
        term = -term * r2 / (double)((2 * n) * (2 * n + 1));
        sum += term;
    }
    return sum;
}

static double cos_reduced(double r)
{
    double r2 = r * r, term = 1.0, sum = 1.0;
    for (int n = 1; n <= 9; n++) {
        term = -term * r2 / (double)((2 * n - 1) * (2 * n));
        sum += term;
    }
    return sum;
}

/* x = q * pi/2 + r with |r| <= pi/4; pi/2 in three parts keeps r exact
 * enough for the RoPE angle range. */
static double reduce(double x, int64_t *quadrant)
{
    const double half_pi_1 = 1.57079632673412561417e+00;
    const double half_pi_2 = 6.07710050650619224932e-11;
    const double half_pi_3 = 2.02226624879595063154e-21;
    double scaled = x * 6.36619772367581382433e-01; /* 2/pi */
    int64_t q = (int64_t)(scaled + (scaled >= 0 ? 0.5 : -0.5));
    double r = x - (double)q * half_pi_1;
    r = r - (double)q * half_pi_2;
    r = r - (double)q * half_pi_3;
    *quadrant = q;
    return r;
}

double lf_exact_sin(double x)
{
    int64_t q;
    double r = reduce(x, &q);
    switch (q & 3) {
    case 0:
        return sin_reduced(r);
    case 1:
        return cos_reduced(r);
    case 2:
        return -sin_reduced(r);
    default:
        return -cos_reduced(r);
    }
}

double lf_exact_cos(double x)
{
    int64_t q;
    double r = reduce(x, &q);
    switch (q & 3) {
    case 0:
        return cos_reduced(r);
    case 1:
        return -sin_reduced(r);
    case 2:
        return -cos_reduced(r);
    default:
        return sin_reduced(r);
    }
}

double lf_exact_exp(double x)
{
    /* e^x = 2^k * e^r, |r| <= ln2 / 2, Taylor to r^20; 2^k assembled from
     * exact powers of two. */
    const double ln2 = 6.93147180559945286227e-01;
    double scaled = x * 1.44269504088896338700e+00;
    int k = (int)(scaled + (scaled >= 0 ? 0.5 : -0.5));
    double r = x - (double)k * ln2;
    double term = 1.0, sum = 1.0;
    for (int n = 1; n <= 20; n++) {
        term = term * r / (double)n;
        sum += term;
    }
    double power = 1.0, two = k >= 0 ? 2.0 : 0.5;
    for (int i = 0; i < (k >= 0 ? k : -k); i++)
        power *= two;
    return sum * power;
}

double lf_exact_log(double x)
{
    /* x = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh((m-1)/(m+1)). */
    int exponent = 0;
    double m = x;
    while (m >= 1.4142135623730951) {
        m *= 0.5;
        exponent++;
    }
    while (m < 0.7071067811865476) {
        m *= 2.0;
        exponent--;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = s;
    for (int n = 3; n <= 41; n += 2) {
        term *= s2;
        sum += term / (double)n;
    }
    return 2.0 * sum + (double)exponent * 6.93147180559945286227e-01;
}
