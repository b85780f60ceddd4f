/* SPDX-License-Identifier: MIT
 *
 * router/bandit.c -- seeded random numbers for the bandit policy: splitmix64, a
 * Gamma sampler (Marsaglia and Tsang, 2000) and Beta(a, b) = X / (X + Y) with
 * X ~ Gamma(a), Y ~ Gamma(b). Pure functions of the state they are given.
 */
#include <math.h>

#include "router_int.h"

uint64_t qv__rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double qv__rng_unit(uint64_t *s)
{
    /* 53 random bits, shifted by half a step so that 0 and 1 never come out. */
    return ((double)(qv__rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Standard normal by the polar method; the second value is dropped to keep the
 * state a single word. */
static double rng_normal(uint64_t *s)
{
    double u, v, q;

    do {
        u = 2.0 * qv__rng_unit(s) - 1.0;
        v = 2.0 * qv__rng_unit(s) - 1.0;
        q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    return u * sqrt(-2.0 * log(q) / q);
}

double qv__rng_gamma(uint64_t *s, double a)
{
    double d, c, x, v, u;

    if (a < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a). */
        u = qv__rng_unit(s);
        return qv__rng_gamma(s, a + 1.0) * pow(u, 1.0 / a);
    }
    d = a - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        do {
            x = rng_normal(s);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        u = qv__rng_unit(s);
        if (u < 1.0 - 0.0331 * (x * x) * (x * x))
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double qv__rng_beta(uint64_t *s, double a, double b)
{
    double x = qv__rng_gamma(s, a);
    double y = qv__rng_gamma(s, b);

    if (x + y <= 0.0)
        return 0.5;
    return x / (x + y);
}
