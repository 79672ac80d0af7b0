/* The weight fillers: values, ranges and statistics as Caffe's fillers
 * define them (fan_in = count / num, fan_out = count / channels). */
#include "check.h"
#include "layers/layer.h"

#include <math.h>
#include <string.h>

static Caffe__FillerParameter filler(const char *type)
{
    Caffe__FillerParameter f = CAFFE__FILLER_PARAMETER__INIT;
    f.type = (char *)type;
    return f;
}

static struct tensor *tensor4(int n, int c, int h, int w)
{
    struct tensor *t = tensor_new();
    CHECK_OK(tensor_reshape4(t, n, c, h, w));
    return t;
}

static void stats(struct tensor *t, double *mean, double *std, float *lo, float *hi)
{
    const float *d = tensor_data(t);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < t->count; i++) {
        s += d[i];
        s2 += (double)d[i] * d[i];
        if (d[i] < *lo)
            *lo = d[i];
        if (d[i] > *hi)
            *hi = d[i];
    }
    *mean = s / (double)t->count;
    *std = sqrt(s2 / (double)t->count - *mean * *mean);
}

static void test_constant(void)
{
    struct rng r;
    rng_seed(&r, 1);
    struct tensor *t = tensor4(2, 3, 4, 5);
    Caffe__FillerParameter f = filler("constant");
    f.value = 0.25f;
    CHECK_OK(filler_fill(&f, t, &r));
    for (size_t i = 0; i < t->count; i++)
        CHECK(tensor_data(t)[i] == 0.25f);
    CHECK_OK(filler_fill(NULL, t, &r)); /* the default filler: constant 0 */
    CHECK(tensor_data(t)[7] == 0.f);
    tensor_free(t);
}

static void test_uniform_gaussian(void)
{
    struct rng r;
    rng_seed(&r, 2);
    struct tensor *t = tensor4(100, 10, 10, 10);
    Caffe__FillerParameter f = filler("uniform");
    f.min = -0.5f;
    f.max = 1.5f;
    double mean, std;
    float lo, hi;
    CHECK_OK(filler_fill(&f, t, &r));
    stats(t, &mean, &std, &lo, &hi);
    CHECK_MSG(lo >= -0.5f && hi <= 1.5f && fabs(mean - 0.5) < 0.01, "uniform: [%g, %g] mean %g", (double)lo,
              (double)hi, mean);
    f = filler("gaussian");
    f.mean = 1.f;
    f.std = 2.f;
    CHECK_OK(filler_fill(&f, t, &r));
    stats(t, &mean, &std, &lo, &hi);
    CHECK_MSG(fabs(mean - 1) < 0.02 && fabs(std - 2) < 0.02, "gaussian: mean %g std %g", mean, std);
    /* sparse: about sparse / num_outputs of the weights are non-zero */
    struct tensor *w = tensor_new();
    int shape[2] = { 50, 2000 };
    CHECK_OK(tensor_reshape(w, 2, shape));
    f.sparse = 10;
    CHECK_OK(filler_fill(&f, w, &r));
    size_t nz = 0;
    for (size_t i = 0; i < w->count; i++)
        nz += tensor_data(w)[i] != 0.f;
    double frac = (double)nz / (double)w->count;
    CHECK_MSG(fabs(frac - 0.2) < 0.01, "sparse 10 of 50 outputs: non-zero fraction %g, want 0.2", frac);
    tensor_free(w);
    tensor_free(t);
}

static void test_unitball(void)
{
    struct rng r;
    rng_seed(&r, 3);
    struct tensor *t = tensor4(4, 3, 2, 5);
    Caffe__FillerParameter f = filler("positive_unitball");
    CHECK_OK(filler_fill(&f, t, &r));
    for (int n = 0; n < 4; n++) {
        double s = 0;
        for (int i = 0; i < 30; i++) {
            float v = tensor_data(t)[n * 30 + i];
            CHECK(v >= 0.f && v <= 1.f);
            s += v;
        }
        CHECK_MSG(fabs(s - 1) < 1e-5, "row %d sums to %g", n, s);
    }
    tensor_free(t);
}

static void test_xavier_msra(void)
{
    struct rng r;
    rng_seed(&r, 4);
    struct tensor *t = tensor4(1000, 20, 3, 3); /* fan_in 180, fan_out 180000/20 = 9000 */
    double mean, std;
    float lo, hi;
    Caffe__FillerParameter f = filler("xavier");
    CHECK_OK(filler_fill(&f, t, &r));
    stats(t, &mean, &std, &lo, &hi);
    float scale = sqrtf(3.f / 180.f);
    CHECK_MSG(lo >= -scale && hi <= scale && hi > 0.99f * scale, "xavier FAN_IN: [%g, %g], scale %g", (double)lo,
              (double)hi, (double)scale);
    f.variance_norm = CAFFE__FILLER_PARAMETER__VARIANCE_NORM__FAN_OUT;
    CHECK_OK(filler_fill(&f, t, &r));
    stats(t, &mean, &std, &lo, &hi);
    scale = sqrtf(3.f / 9000.f);
    CHECK_MSG(hi <= scale && hi > 0.99f * scale, "xavier FAN_OUT: max %g, scale %g", (double)hi, (double)scale);
    f = filler("msra");
    f.variance_norm = CAFFE__FILLER_PARAMETER__VARIANCE_NORM__AVERAGE;
    CHECK_OK(filler_fill(&f, t, &r));
    stats(t, &mean, &std, &lo, &hi);
    double want = sqrt(2.0 / ((180.0 + 9000.0) / 2.0));
    CHECK_MSG(fabs(std / want - 1) < 0.01 && fabs(mean) < 0.01 * want, "msra AVERAGE: std %g, want %g", std, want);
    tensor_free(t);
}

static void test_bilinear(void)
{
    struct rng r;
    rng_seed(&r, 5);
    struct tensor *t = tensor4(2, 1, 4, 4);
    Caffe__FillerParameter f = filler("bilinear");
    CHECK_OK(filler_fill(&f, t, &r));
    static const float w1[4] = { 0.25f, 0.75f, 0.75f, 0.25f };
    for (int k = 0; k < 32; k++) {
        int x = k % 4, y = (k / 4) % 4;
        CHECK_MSG(fabsf(tensor_data(t)[k] - w1[x] * w1[y]) < 1e-7f, "bilinear[%d] = %g, want %g", k,
                  (double)tensor_data(t)[k], (double)(w1[x] * w1[y]));
    }
    struct tensor *bad = tensor4(1, 1, 3, 4);
    CHECK_EQ_INT(filler_fill(&f, bad, &r), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "square") != NULL);
    tensor_free(bad);
    tensor_free(t);
}

static void test_errors(void)
{
    struct rng r;
    rng_seed(&r, 6);
    struct tensor *t = tensor4(2, 2, 2, 2);
    Caffe__FillerParameter f = filler("fancy");
    CHECK_EQ_INT(filler_fill(&f, t, &r), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "\"fancy\"") != NULL);
    f = filler("uniform");
    f.sparse = 3;
    CHECK_EQ_INT(filler_fill(&f, t, &r), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "sparse") != NULL);
    f = filler("uniform");
    f.min = 2;
    f.max = 1;
    CHECK_EQ_INT(filler_fill(&f, t, &r), CREMA_ERR_INVALID);
    f = filler("gaussian");
    f.std = 0;
    CHECK_EQ_INT(filler_fill(&f, t, &r), CREMA_ERR_INVALID);
    tensor_free(t);
}

CHECK_MAIN(CASE(test_constant), CASE(test_uniform_gaussian), CASE(test_unitball), CASE(test_xavier_msra),
           CASE(test_bilinear), CASE(test_errors))
