/* The CPU's fused SGD step (solver_ops.sgd_step) against the separate
 * entries it replaces (scale, regularize, sgd, apply): the same bits, for
 * L1 and L2, with and without iter_size scaling and weight decay, on 1 and
 * 2 threads. */
#include "check.h"
#include "cpu/backend_cpu.h"
#include "cpu/threads.h"

#include <string.h>

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.f - 1.f;
}

static void check_case(size_t n, bool l1, float scale, float decay, int threads)
{
    const struct backend *be = &cpu_backend;
    const struct solver_ops *ops = be->solver;
    float *w[2], *g[2], *h[2];
    unsigned seed = 7;
    for (int k = 0; k < 2; k++) {
        w[k] = malloc(n * sizeof(float));
        g[k] = malloc(n * sizeof(float));
        h[k] = malloc(n * sizeof(float));
    }
    for (size_t i = 0; i < n; i++) {
        w[0][i] = w[1][i] = frand(&seed);
        g[0][i] = g[1][i] = frand(&seed) * 1e-2f;
        h[0][i] = h[1][i] = frand(&seed) * 1e-3f;
    }
    w[0][0] = w[1][0] = 0.f; /* sign(0) = 0 for L1 */
    CHECK_OK(cpu_set_num_threads(threads));
    const float momentum = 0.9f, rate = 0.01f;
    if (scale != 1.f)
        ops->scale(be, n, scale, g[0]);
    if (decay != 0.f)
        ops->regularize(be, n, l1, decay, w[0], g[0]);
    ops->sgd(be, n, g[0], h[0], momentum, rate);
    ops->apply(be, n, g[0], w[0]);
    ops->sgd_step(be, n, w[1], g[1], h[1], scale, l1, decay, momentum, rate);
    CHECK_MSG(memcmp(w[0], w[1], n * sizeof(float)) == 0, "n %zu l1 %d scale %g decay %g threads %d: weights differ",
              n, l1, (double)scale, (double)decay, threads);
    CHECK_MSG(memcmp(g[0], g[1], n * sizeof(float)) == 0, "n %zu: diffs differ", n);
    CHECK_MSG(memcmp(h[0], h[1], n * sizeof(float)) == 0, "n %zu: histories differ", n);
    CHECK_OK(cpu_set_num_threads(0));
    for (int k = 0; k < 2; k++) {
        free(w[k]);
        free(g[k]);
        free(h[k]);
    }
}

static void test_sgd_step_bits(void)
{
    static const size_t ns[] = { 1, 17, 100000 };
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int l1 = 0; l1 < 2; l1++)
            for (int t = 1; t <= 2; t++) {
                check_case(ns[a], l1, 1.f, 0.f, t);
                check_case(ns[a], l1, 1.f, 5e-4f, t);
                check_case(ns[a], l1, 0.25f, 5e-4f, t);
            }
}

CHECK_MAIN(CASE(test_sgd_step_bits))
