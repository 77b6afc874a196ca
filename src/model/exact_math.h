/* exp, sin and cos computed the same way on every machine and build.
 *
 * libm's results differ between glibc versions and CPUs in the last bit,
 * and one differing bit of a probability breaks arithmetic decoding. These
 * use only IEEE-754 +, -, *, / and conversions, in a fixed order (the build
 * forbids FMA contraction), so their bits are fixed by the source alone. */
#ifndef LLMFUSE_MODEL_EXACT_MATH_H
#define LLMFUSE_MODEL_EXACT_MATH_H

/* e^x for float x; 0 below -87, +inf above 88.7. Relative error < 2e-7. */
float lf_exact_expf(float x);
/* e^x and ln x in double, for tables built once at load (RoPE frequencies):
 * error < 1e-15 relative on the ranges used (|x| < 700; x > 0). */
double lf_exact_exp(double x);
double lf_exact_log(double x);
/* sin and cos of x in radians, for |x| < 2^20 (RoPE angles), error < 1e-15. */
double lf_exact_sin(double x);
double lf_exact_cos(double x);

#endif
