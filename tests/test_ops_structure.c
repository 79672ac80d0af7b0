/* The structure family's table (core/ops_structure.h) on $CREMA_TEST_DEVICE
 * (default cpu-mirror; cuda:0 on the GPU machine) against the CPU's, entry
 * by entry, on random data with ties, odd sizes and single rows. Copies
 * must be exact; sums may differ by their order (a GPU sums a row as a
 * tree), within a few float epsilons of the row's magnitude. */
#include "check.h"
#include "core/tensor.h"
#include "net/device.h"
#include "util/rng.h"

#include <math.h>
#include <string.h>

static const struct backend *dev, *cpu;
static struct rng r;

static struct tensor *vec(size_t n)
{
    struct tensor *t = tensor_new();
    int s[1] = { (int)n };
    CHECK_OK(tensor_reshape(t, 1, s));
    return t;
}

static void fill(struct tensor *t, float lo, float hi, bool ties)
{
    float *x = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        x[i] = ties ? (float)(int)rng_uniform(&r, lo, hi) : rng_uniform(&r, lo, hi);
}

static void close_to(const char *what, struct tensor *got, struct tensor *want, double rtol)
{
    const float *a = tensor_cdata(got), *b = tensor_cdata(want);
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < want->count; i++) {
        m = fmax(m, fabs(b[i]));
        double d = fabs((double)a[i] - b[i]);
        if (d > e || isnan(a[i])) {
            e = isnan(a[i]) ? INFINITY : d;
            at = i;
        }
    }
    CHECK_MSG(e <= rtol * m, "%s: max |err| %.3g at %zu (got %.9g, want %.9g)", what, e, at, (double)a[at],
              (double)b[at]);
}

/* out[k] on backend k (0 CPU, 1 device), both starting from `init`. */
#define BOTH(out, init, call)                                            \
    do {                                                                 \
        for (int k_ = 0; k_ < 2; k_++) {                                 \
            const struct backend *be = k_ ? dev : cpu;                   \
            CHECK_OK(tensor_copy_from(out[k_], init, false));            \
            call;                                                        \
        }                                                                \
        CHECK_OK(dev->sync(dev));                                        \
    } while (0)
#define D(t) tensor_data_on((t), be)
#define C(t) tensor_cdata_on((t), be)
#define OUT(k) out[k_]

static void test_blocks(void)
{
    size_t n = 7, len = 13, sstep = 29, dstep = 17;
    struct tensor *src = vec(n * sstep), *init = vec(n * dstep), *out[2] = { vec(n * dstep), vec(n * dstep) };
    fill(src, -2, 2, false);
    fill(init, -2, 2, false);
    BOTH(out, init, be->structure->copy_blocks(be, C(src), sstep, D(OUT(k)), dstep, n, len));
    close_to("copy_blocks", out[1], out[0], 0);
    BOTH(out, init, be->structure->copy_blocks(be, C(src) + 3, 0, D(OUT(k)) + 5, 0, 1, len));
    close_to("copy_blocks one row", out[1], out[0], 0);
    /* overlapping-stride form (src_step < len) goes through the kernel */
    BOTH(out, init, be->structure->copy_blocks(be, C(src), 2, D(OUT(k)), dstep, n, len));
    close_to("copy_blocks narrow steps", out[1], out[0], 0);
    BOTH(out, init, be->structure->add_blocks(be, C(src), sstep, D(OUT(k)), dstep, n, len));
    close_to("add_blocks", out[1], out[0], 0);
    BOTH(out, init, be->structure->scale_add(be, n * dstep, -0.37f, C(src), D(OUT(k))));
    close_to("scale_add", out[1], out[0], 0);
    BOTH(out, init, be->structure->scale(be, n * dstep, 1.9f, C(src), D(OUT(k))));
    close_to("scale", out[1], out[0], 0);
    tensor_free(src);
    tensor_free(init);
    tensor_free(out[0]);
    tensor_free(out[1]);
}

static void test_max(void)
{
    size_t n = 1001;
    struct tensor *a = vec(n), *b = vec(n), *c = vec(n), *dy = vec(n), *zero = vec(n);
    struct tensor *y[2] = { vec(n), vec(n) }, *mask[2] = { vec(n), vec(n) }, *dx[2] = { vec(n), vec(n) };
    fill(a, -3, 3, true); /* small integers: many ties between bottoms */
    fill(b, -3, 3, true);
    fill(c, -3, 3, true);
    fill(dy, -1, 1, false);
    for (int k = 0; k < 2; k++) {
        const struct backend *be = k ? dev : cpu;
        be->structure->max_first(be, n, C(a), C(b), D(y[k]), D(mask[k]));
        be->structure->max_next(be, n, C(c), 2, D(y[k]), D(mask[k]));
    }
    close_to("max y", y[1], y[0], 0);
    close_to("max mask (ties: 0 vs 1 to 1, later bottoms only when larger)", mask[1], mask[0], 0);
    for (int j = 0; j < 3; j++) {
        for (int k = 0; k < 2; k++) {
            const struct backend *be = k ? dev : cpu;
            be->structure->max_backward(be, n, C(dy), C(mask[k]), j, D(dx[k]));
        }
        close_to("max backward", dx[1], dx[0], 0);
    }
    struct tensor *all[] = { a, b, c, dy, zero, y[0], y[1], mask[0], mask[1], dx[0], dx[1] };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tensor_free(all[i]);
}

static void test_reduce(void)
{
    size_t shapes[][2] = { { 1, 1 }, { 5, 1000 }, { 300, 7 }, { 1, 4099 } };
    for (size_t s = 0; s < 4; s++) {
        size_t num = shapes[s][0], dim = shapes[s][1];
        struct tensor *x = vec(num * dim), *dy = vec(num), *y[2] = { vec(num), vec(num) },
                      *dx[2] = { vec(num * dim), vec(num * dim) };
        fill(x, -1, 1, false);
        fill(dy, -1, 1, false);
        for (int op = 1; op <= 4; op++) {
            float coeff = op == 4 ? 1.f / (float)dim : op == 2 ? 1.f : -0.5f;
            for (int k = 0; k < 2; k++) {
                const struct backend *be = k ? dev : cpu;
                be->structure->reduce(be, op, num, dim, C(x), coeff, D(y[k]));
                be->structure->reduce_backward(be, op, num, dim, C(x), C(dy), coeff, D(dx[k]));
            }
            char what[64];
            /* A float sum of dim terms in any order is within dim * u *
             * sum|terms| of the exact sum (u = 2^-24, Higham 4.2), so two
             * orders differ by at most twice that (times |coeff|). */
            snprintf(what, sizeof what, "reduce op %d, %zu x %zu", op, num, dim);
            const float *a = tensor_cdata(y[1]), *b = tensor_cdata(y[0]), *xv = tensor_cdata(x);
            for (size_t i = 0; i < num; i++) {
                double terms = 0;
                for (size_t j = 0; j < dim; j++) {
                    double v = xv[i * dim + j];
                    terms += op == 3 ? v * v : fabs(v);
                }
                double bound = 2 * (double)dim * 0x1p-24 * terms * fabs(coeff) + 1e-30;
                CHECK_MSG(fabs((double)a[i] - b[i]) <= bound, "%s row %zu: %.9g vs %.9g (bound %.3g)", what, i,
                          (double)a[i], (double)b[i], bound);
            }
            snprintf(what, sizeof what, "reduce_backward op %d", op);
            close_to(what, dx[1], dx[0], 0);
        }
        tensor_free(x);
        tensor_free(dy);
        for (int k = 0; k < 2; k++) {
            tensor_free(y[k]);
            tensor_free(dx[k]);
        }
    }
}

int main(int argc, char **argv)
{
    const char *name = getenv("CREMA_TEST_DEVICE");
    if (device_open(name && *name ? name : "cpu-mirror", &dev)) {
        printf("SKIP: %s\n", crema_errmsg());
        return 77;
    }
    cpu = device_cpu();
    rng_seed(&r, 11);
    printf("device: %s\n", dev->name);
    static const struct check_case cases[] = { CASE(test_blocks), CASE(test_max), CASE(test_reduce) };
    return check_run(cases, 3, argc, argv);
}
