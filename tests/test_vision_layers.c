/* Vision and dense layers: finite-difference gradients for every layer with
 * a backward, Caffe's shape rules, and the errors bad parameters give. */
#include "check.h"
#include "gradcheck.h"
#include "layers/layer.h"
#include "proto/proto_io.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static Caffe__LayerParameter *param_of(const char *text)
{
    ProtobufCMessage *m = NULL;
    int rc = proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "test", &m);
    if (rc) {
        check_fail(__FILE__, __LINE__, "parse %s: %s", text, crema_errmsg());
        return NULL;
    }
    return (Caffe__LayerParameter *)m;
}

static struct tensor *tensor_of(int n, const int *shape, float lo, float hi, unsigned seed)
{
    struct tensor *t = tensor_new();
    if (tensor_reshape(t, n, shape))
        check_fail(__FILE__, __LINE__, "reshape: %s", crema_errmsg());
    gradcheck_fill(t, lo, hi, seed);
    return t;
}

/* Values that are all different by at least 0.02, in a scrambled order, so
 * that a finite-difference step never changes which input is the maximum. */
static void fill_distinct(struct tensor *t, unsigned seed)
{
    float *d = tensor_data(t);
    size_t n = t->count;
    for (size_t i = 0; i < n; i++)
        d[i] = ((float)((i * 7919u + seed) % n) - (float)n / 2.f) * 0.02f;
}

/* Gradient check of the layer `text` over the given bottoms. */
static void grad(const char *text, struct tensor **bottom, int n_bottom, int n_top,
                 const struct gradcheck_opts *opts)
{
    Caffe__LayerParameter *p = param_of(text);
    if (!p)
        return;
    int rc = gradcheck_layer(p, CAFFE__PHASE__TRAIN, bottom, n_bottom, n_top, opts);
    CHECK_MSG(rc == 0, "gradient check failed for: %s", text);
    proto_free(&p->base);
}

/* Builds a layer and expects it to fail with `code` and a message holding `needle`. */
static void expect_error(const char *text, struct tensor **bottom, int n_bottom, int n_top, int code,
                         const char *needle)
{
    Caffe__LayerParameter *p = param_of(text);
    if (!p)
        return;
    struct tensor *top[4] = { tensor_new(), tensor_new(), tensor_new(), tensor_new() };
    struct rng rng;
    rng_seed(&rng, 5);
    struct layer *l = NULL;
    int rc = layer_create(p, CAFFE__PHASE__TRAIN, &rng, bottom, n_bottom, top, n_top, &l);
    CHECK_MSG(rc == code, "%s: expected status %d, got %d (%s)", text, code, rc, crema_errmsg());
    CHECK_MSG(strstr(crema_errmsg(), needle) != NULL, "%s: message \"%s\" should mention \"%s\"",
              text, crema_errmsg(), needle);
    layer_free(l);
    for (int i = 0; i < 4; i++)
        tensor_free(top[i]);
    proto_free(&p->base);
}

/* Builds, runs forward; returns the layer (tops in top[]). */
static struct layer *build(Caffe__LayerParameter *p, struct tensor **bottom, int n_bottom,
                           struct tensor **top, int n_top)
{
    static struct rng rng;
    rng_seed(&rng, 11);
    struct layer *l = NULL;
    int rc = layer_create(p, CAFFE__PHASE__TRAIN, &rng, bottom, n_bottom, top, n_top, &l);
    if (rc) {
        check_fail(__FILE__, __LINE__, "layer_create: %s", crema_errmsg());
        return NULL;
    }
    rc = l->kind->forward(l, bottom, top);
    if (rc) {
        check_fail(__FILE__, __LINE__, "forward: %s", crema_errmsg());
        layer_free(l);
        return NULL;
    }
    return l;
}

static void free_all(struct tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        tensor_free(t[i]);
}

/* "blobs { shape { dim: ... } data: 0 ... }" for a zero blob of that shape. */
static const char *blob_text(char *buf, size_t len, int n, const int *dims)
{
    size_t o = (size_t)snprintf(buf, len, " blobs { shape {");
    size_t count = 1;
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(buf + o, len - o, " dim: %d", dims[i]);
        count *= (size_t)dims[i];
    }
    o += (size_t)snprintf(buf + o, len - o, " }");
    for (size_t i = 0; i < count && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, " data: 0");
    snprintf(buf + o, len - o, " }");
    return buf;
}

#define GAUSS_W "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 }"

/* ------------------------------------------------------------ convolution */

static void conv_gradients(void)
{
    int s[4] = { 2, 3, 6, 5 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 1);
    grad("name: 'c' type: 'Convolution' convolution_param { num_output: 4 kernel_size: 3 "
         "stride: 2 pad: 1 " GAUSS_W " }",
         &x, 1, 1, NULL);
    grad("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_h: 3 kernel_w: 2 "
         "stride_h: 2 stride_w: 1 pad_h: 1 " GAUSS_W " }",
         &x, 1, 1, NULL);
    grad("name: 'c' type: 'Convolution' convolution_param { num_output: 3 kernel_size: 1 " GAUSS_W " }",
         &x, 1, 1, NULL);
    grad("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 2 "
         "dilation: 2 pad: 1 bias_term: false " GAUSS_W " }",
         &x, 1, 1, NULL);
    tensor_free(x);
    int sg[4] = { 2, 4, 5, 5 };
    struct tensor *xg = tensor_of(4, sg, -1.f, 1.f, 2);
    grad("name: 'c' type: 'Convolution' convolution_param { num_output: 6 group: 2 kernel_size: 3 "
         "pad: 1 " GAUSS_W " }",
         &xg, 1, 1, NULL);
    tensor_free(xg);
}

static void conv_nd_gradients(void)
{
    int s[5] = { 1, 2, 3, 4, 4 };
    struct tensor *x = tensor_of(5, s, -1.f, 1.f, 3);
    grad("name: 'c3' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 pad: 1 "
         "stride: 1 stride: 2 stride: 1 " GAUSS_W " }",
         &x, 1, 1, NULL);
    tensor_free(x);
}

/* The N-D im2col path must give what the 2-D one gives. */
static void conv_force_nd_matches_2d(void)
{
    int s[4] = { 2, 3, 7, 6 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 4);
    const char *base = "name: 'c' type: 'Convolution' convolution_param { num_output: 4 "
                       "kernel_size: 3 stride: 2 pad: 1 dilation: 1 group: 1 " GAUSS_W;
    char a[512], b[512];
    snprintf(a, sizeof a, "%s }", base);
    snprintf(b, sizeof b, "%s force_nd_im2col: true }", base);
    Caffe__LayerParameter *pa = param_of(a), *pb = param_of(b);
    struct tensor *ta = tensor_new(), *tb = tensor_new();
    struct layer *la = build(pa, &x, 1, &ta, 1), *lb = build(pb, &x, 1, &tb, 1);
    if (la && lb) {
        CHECK_EQ_INT(ta->shape[2], 4);
        CHECK_EQ_INT(ta->shape[3], 3);
        /* Same weights (same filler seed), so outputs must agree exactly. */
        CHECK(ta->count == tb->count);
        int same = memcmp(tensor_data(ta), tensor_data(tb), ta->count * sizeof(float)) == 0;
        CHECK_MSG(same, "force_nd_im2col output differs from the 2-D path");
    }
    layer_free(la);
    layer_free(lb);
    tensor_free(ta);
    tensor_free(tb);
    tensor_free(x);
    proto_free(&pa->base);
    proto_free(&pb->base);
}

/* A direct (naive) convolution agrees with im2col + sgemm. */
static void conv_matches_direct(void)
{
    int s[4] = { 1, 2, 5, 6 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 5);
    Caffe__LayerParameter *p = param_of(
        "name: 'c' type: 'Convolution' convolution_param { num_output: 3 kernel_size: 3 stride: 2 "
        "pad: 1 dilation: 2 " GAUSS_W " }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        int OH = y->shape[2], OW = y->shape[3];
        CHECK_EQ_INT(OH, 2); /* (5 + 2 - 5) / 2 + 1 */
        CHECK_EQ_INT(OW, 2); /* (6 + 2 - 5) / 2 + 1 */
        const float *w = tensor_data(l->blobs[0]), *b = tensor_data(l->blobs[1]);
        const float *xd = tensor_data(x), *yd = tensor_data(y);
        double worst = 0;
        for (int o = 0; o < 3; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = b[o];
                    for (int c = 0; c < 2; c++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int h = oh * 2 - 1 + kh * 2, ww = ow * 2 - 1 + kw * 2;
                                if (h < 0 || h >= 5 || ww < 0 || ww >= 6)
                                    continue;
                                acc += (double)w[((o * 2 + c) * 3 + kh) * 3 + kw] *
                                       xd[(c * 5 + h) * 6 + ww];
                            }
                    worst = fmax(worst, fabs(acc - yd[(o * OH + oh) * OW + ow]));
                }
        CHECK_MSG(worst < 1e-5, "direct convolution differs by %g", worst);
    }
    layer_free(l);
    tensor_free(y);
    tensor_free(x);
    proto_free(&p->base);
}

static void deconv_gradients(void)
{
    int s[4] = { 2, 4, 3, 3 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 6);
    grad("name: 'd' type: 'Deconvolution' convolution_param { num_output: 3 kernel_size: 4 "
         "stride: 2 pad: 1 " GAUSS_W " }",
         &x, 1, 1, NULL);
    grad("name: 'd' type: 'Deconvolution' convolution_param { num_output: 4 group: 2 kernel_size: 3 "
         GAUSS_W " }",
         &x, 1, 1, NULL);
    /* Output extent: stride * (in - 1) + kernel - 2 * pad. */
    Caffe__LayerParameter *p = param_of("name: 'd' type: 'Deconvolution' convolution_param { "
                                        "num_output: 3 kernel_size: 4 stride: 2 pad: 1 " GAUSS_W " }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        CHECK_EQ_INT(y->shape[1], 3);
        CHECK_EQ_INT(y->shape[2], 6);
        CHECK_EQ_INT(l->blobs[0]->shape[0], 4); /* deconv weights: [channels, out/group, k, k] */
        CHECK_EQ_INT(l->blobs[0]->shape[1], 3);
    }
    layer_free(l);
    tensor_free(y);
    proto_free(&p->base);
    tensor_free(x);
}

static void conv_errors(void)
{
    int s[4] = { 1, 4, 5, 5 }, s5[5] = { 1, 2, 3, 3, 3 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 7), *x5 = tensor_of(5, s5, -1.f, 1.f, 7);
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 }", &x, 1, 1,
                 CREMA_ERR_INVALID, "kernel_size");
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 0 }",
                 &x, 1, 1, CREMA_ERR_INVALID, "nonzero");
    expect_error("name: 'c' type: 'Convolution' convolution_param { kernel_size: 3 }", &x, 1, 1,
                 CREMA_ERR_INVALID, "num_output");
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 "
                 "group: 3 }",
                 &x, 1, 1, CREMA_ERR_INVALID, "group");
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_h: 3 "
                 "kernel_w: 3 }",
                 &x5, 1, 1, CREMA_ERR_INVALID, "2-D");
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 "
                 "kernel_size: 3 }",
                 &x5, 1, 1, CREMA_ERR_INVALID, "once per spatial axis");
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 7 }",
                 &x, 1, 1, CREMA_ERR_SHAPE, "output extent");
    /* Weights given with the wrong shape. */
    char text[4096], b1[2048], b2[256];
    const int wrong[4] = { 2, 3, 3, 3 }, right[4] = { 2, 4, 3, 3 }, nb[1] = { 2 };
    snprintf(text, sizeof text, "name: 'c' type: 'Convolution' convolution_param { num_output: 2 "
             "kernel_size: 3 } %s %s", blob_text(b1, sizeof b1, 4, wrong), blob_text(b2, sizeof b2, 1, nb));
    expect_error(text, &x, 1, 1, CREMA_ERR_SHAPE, "expected [2 4 3 3]");
    snprintf(text, sizeof text, "name: 'c' type: 'Convolution' convolution_param { num_output: 2 "
             "kernel_size: 3 } %s", blob_text(b1, sizeof b1, 4, right));
    expect_error(text, &x, 1, 1, CREMA_ERR_SHAPE, "parameter blobs");
    expect_error("name: 'c' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 "
                 "axis: 4 }",
                 &x, 1, 1, CREMA_ERR_INVALID, "axis");
    tensor_free(x);
    tensor_free(x5);
}

/* ------------------------------------------------------------ pooling */

static void pooling_gradients(void)
{
    int s[4] = { 2, 2, 7, 8 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 8);
    fill_distinct(x, 3);
    struct gradcheck_opts o = { .step = 1e-3f, .threshold = 1e-2f, .top_only = -1, .seed = 3 };
    grad("name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 }", &x, 1, 1, &o);
    grad("name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
         &x, 1, 1, &o);
    grad("name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 "
         "stride_w: 1 pad_h: 1 pad_w: 0 round_mode: FLOOR }",
         &x, 1, 1, &o);
    grad("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 }", &x, 1, 1, &o);
    grad("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 "
         "round_mode: FLOOR }",
         &x, 1, 1, &o);
    grad("name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }", &x, 1, 1, &o);
    grad("name: 'p' type: 'Pooling' pooling_param { pool: MAX global_pooling: true }", &x, 1, 1, &o);
    struct gradcheck_opts o0 = o;
    o0.top_only = 0; /* the mask top is not differentiable */
    grad("name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }",
         &x, 1, 2, &o0);
    tensor_free(x);
}

static void pooling_shapes_and_values(void)
{
    int s[4] = { 1, 1, 8, 8 };
    struct tensor *x = tensor_of(4, s, 0.f, 1.f, 9);
    float *d = tensor_data(x);
    for (int i = 0; i < 64; i++)
        d[i] = 1.f;
    d[0] = d[1] = 5.f; /* a tie: the first maximum (index 0) wins */
    struct tensor *top[2] = { tensor_new(), tensor_new() };
    Caffe__LayerParameter *p = param_of("name: 'p' type: 'Pooling' pooling_param { pool: MAX "
                                        "kernel_size: 3 stride: 2 }");
    struct layer *l = build(p, &x, 1, top, 2);
    if (l) {
        CHECK_EQ_INT(top[0]->shape[2], 4); /* CEIL: ceil(5 / 2) + 1 */
        CHECK_EQ_INT(tensor_data(top[1])[0], 0);
        CHECK(tensor_data(top[0])[0] == 5.f);
    }
    layer_free(l);
    proto_free(&p->base);
    /* AVE, CEIL on 8x8: the 4th window covers rows 6..7 only and divides by 2 * 3. */
    for (int i = 0; i < 64; i++)
        d[i] = (float)i;
    p = param_of("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 }");
    l = build(p, &x, 1, top, 1);
    if (l) {
        CHECK_EQ_INT(top[0]->shape[3], 4);
        float want = (6 + 7 + 14 + 15 + 22 + 23) / 6.f;
        CHECK_MSG(fabsf(tensor_data(top[0])[3] - want) < 1e-5f, "clipped window average: got %g, want %g",
                  (double)tensor_data(top[0])[3], (double)want);
    }
    layer_free(l);
    proto_free(&p->base);
    /* FLOOR gives 3x3 there. */
    p = param_of("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 "
                 "round_mode: FLOOR }");
    l = build(p, &x, 1, top, 1);
    if (l)
        CHECK_EQ_INT(top[0]->shape[3], 3);
    layer_free(l);
    proto_free(&p->base);
    /* Padding counts in the divisor: 7x7, pad 1, kernel 3, stride 2: the
     * corner window covers 2x2 real pixels and divides by 9. */
    int s7[4] = { 1, 1, 7, 7 };
    struct tensor *x7 = tensor_of(4, s7, 0.f, 1.f, 9);
    for (int i = 0; i < 49; i++)
        tensor_data(x7)[i] = 1.f;
    p = param_of("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }");
    l = build(p, &x7, 1, top, 1);
    if (l) {
        CHECK_EQ_INT(top[0]->shape[2], 4);
        CHECK_MSG(fabsf(tensor_data(top[0])[0] - 4.f / 9.f) < 1e-6f, "padded corner: got %g",
                  (double)tensor_data(top[0])[0]);
    }
    layer_free(l);
    proto_free(&p->base);
    /* The last window must start inside the padded image: 6x6, kernel 2,
     * stride 2, pad 1 gives ceil(6/2)+1 = 4 windows, all starting in range. */
    int s6[4] = { 1, 1, 6, 6 };
    struct tensor *x6 = tensor_of(4, s6, 0.f, 1.f, 9);
    p = param_of("name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 3 pad: 2 }");
    l = build(p, &x6, 1, top, 1);
    if (l) /* ceil((6 + 4 - 3) / 3) + 1 = 4, but window 3 starts at 9 - 2 = 7 >= 6 + 2: drop it */
        CHECK_EQ_INT(top[0]->shape[2], 3);
    layer_free(l);
    proto_free(&p->base);
    free_all(top, 2);
    tensor_free(x);
    tensor_free(x7);
    tensor_free(x6);
}

static void pooling_errors(void)
{
    int s[4] = { 1, 2, 6, 6 }, s3[3] = { 1, 2, 6 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 10), *x3 = tensor_of(3, s3, -1.f, 1.f, 10);
    expect_error("name: 'p' type: 'Pooling' pooling_param { kernel_size: 3 pad: 3 }", &x, 1, 1,
                 CREMA_ERR_INVALID, "smaller than the kernel");
    expect_error("name: 'p' type: 'Pooling' pooling_param { pool: STOCHASTIC kernel_size: 3 }", &x, 1, 1,
                 CREMA_ERR_UNSUPPORTED, "GPU-only");
    expect_error("name: 'p' type: 'Pooling' pooling_param { pool: MAX }", &x, 1, 1, CREMA_ERR_INVALID,
                 "kernel_size");
    expect_error("name: 'p' type: 'Pooling' pooling_param { kernel_size: 3 kernel_h: 3 }", &x, 1, 1,
                 CREMA_ERR_INVALID, "not both");
    expect_error("name: 'p' type: 'Pooling' pooling_param { global_pooling: true kernel_size: 2 }",
                 &x, 1, 1, CREMA_ERR_INVALID, "global_pooling");
    expect_error("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 2 }", &x, 1, 2,
                 CREMA_ERR_INVALID, "mask");
    expect_error("name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 }", &x3, 1, 1,
                 CREMA_ERR_SHAPE, "4-axis");
    expect_error("name: 'p' type: 'Pooling' pooling_param { kernel_size: 9 round_mode: FLOOR }", &x,
                 1, 1, CREMA_ERR_SHAPE, "empty");
    tensor_free(x);
    tensor_free(x3);
}

/* ------------------------------------------------------------ SPP, LRN */

static void spp_gradients_and_shape(void)
{
    int s[4] = { 2, 2, 9, 10 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 11);
    fill_distinct(x, 5);
    struct gradcheck_opts o = { .step = 1e-3f, .threshold = 1e-2f, .top_only = -1, .seed = 4 };
    grad("name: 's' type: 'SPP' spp_param { pyramid_height: 3 pool: MAX }", &x, 1, 1, &o);
    grad("name: 's' type: 'SPP' spp_param { pyramid_height: 2 pool: AVE }", &x, 1, 1, &o);
    grad("name: 's' type: 'SPP' spp_param { pyramid_height: 1 pool: MAX }", &x, 1, 1, &o);
    Caffe__LayerParameter *p = param_of("name: 's' type: 'SPP' spp_param { pyramid_height: 3 }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        CHECK_EQ_INT(y->num_axes, 2);
        CHECK_EQ_INT(y->shape[1], 2 * (1 + 4 + 16));
    }
    layer_free(l);
    proto_free(&p->base);
    tensor_free(y);
    int small[4] = { 1, 1, 3, 3 };
    struct tensor *xs = tensor_of(4, small, -1.f, 1.f, 1);
    expect_error("name: 's' type: 'SPP' spp_param { pyramid_height: 3 }", &xs, 1, 1, CREMA_ERR_SHAPE,
                 "pad must be smaller than the kernel");
    expect_error("name: 's' type: 'SPP' spp_param { pyramid_height: 2 pool: STOCHASTIC }", &xs, 1, 1,
                 CREMA_ERR_UNSUPPORTED, "GPU-only");
    tensor_free(xs);
    tensor_free(x);
}

static void lrn_gradients(void)
{
    int s[4] = { 2, 7, 3, 3 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 12);
    struct gradcheck_opts o = { .step = 1e-2f, .threshold = 1e-2f, .top_only = -1, .seed = 5 };
    grad("name: 'n' type: 'LRN' lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 }", &x, 1, 1, &o);
    grad("name: 'n' type: 'LRN' lrn_param { local_size: 3 alpha: 0.8 beta: 0.6 norm_region: "
         "WITHIN_CHANNEL }",
         &x, 1, 1, &o);
    expect_error("name: 'n' type: 'LRN' lrn_param { local_size: 4 }", &x, 1, 1, CREMA_ERR_INVALID, "odd");
    tensor_free(x);
}

/* ACROSS_CHANNELS against the formula y = x (k + alpha/n sum x^2)^-beta. */
static void lrn_across_formula(void)
{
    int s[4] = { 1, 6, 2, 2 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 13);
    Caffe__LayerParameter *p = param_of("name: 'n' type: 'LRN' lrn_param { local_size: 3 alpha: 0.9 "
                                        "beta: 0.7 k: 1.5 }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        const float *xd = tensor_data(x), *yd = tensor_data(y);
        double worst = 0;
        for (int c = 0; c < 6; c++)
            for (int i = 0; i < 4; i++) {
                double sum = 0;
                for (int j = c - 1; j <= c + 1; j++)
                    if (j >= 0 && j < 6)
                        sum += (double)xd[j * 4 + i] * xd[j * 4 + i];
                double want = xd[c * 4 + i] * pow(1.5 + 0.9 / 3 * sum, -0.7);
                worst = fmax(worst, fabs(want - yd[c * 4 + i]));
            }
        CHECK_MSG(worst < 1e-5, "LRN differs from its formula by %g", worst);
    }
    layer_free(l);
    proto_free(&p->base);
    tensor_free(y);
    tensor_free(x);
}

/* ------------------------------------------------------------ im2col, crop */

static void im2col_layer_gradients(void)
{
    int s[4] = { 2, 2, 5, 4 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 14);
    grad("name: 'i' type: 'Im2col' convolution_param { kernel_size: 3 stride: 2 pad: 1 }", &x, 1, 1, NULL);
    grad("name: 'i' type: 'Im2col' convolution_param { kernel_h: 2 kernel_w: 3 dilation: 2 pad: 1 }",
         &x, 1, 1, NULL);
    grad("name: 'i' type: 'Im2col' convolution_param { kernel_size: 2 force_nd_im2col: true }", &x, 1,
         1, NULL);
    Caffe__LayerParameter *p = param_of("name: 'i' type: 'Im2col' convolution_param { kernel_size: 3 pad: 1 }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        CHECK_EQ_INT(y->shape[1], 18);
        CHECK_EQ_INT(y->shape[2], 5);
        CHECK_EQ_INT(y->shape[3], 4);
        /* Row (c=0, kh=1, kw=1) is the image itself. */
        CHECK(memcmp(tensor_data(y) + 4 * 20, tensor_data(x), 20 * sizeof(float)) == 0);
    }
    layer_free(l);
    proto_free(&p->base);
    tensor_free(y);
    tensor_free(x);
}

static void crop_gradients_and_errors(void)
{
    int s[4] = { 2, 4, 6, 5 }, r[4] = { 2, 2, 3, 3 };
    struct tensor *b[2] = { tensor_of(4, s, -1.f, 1.f, 15), tensor_of(4, r, -1.f, 1.f, 16) };
    bool skip[2] = { false, true };
    struct gradcheck_opts o = { .skip_bottom = skip, .top_only = -1, .seed = 6 };
    grad("name: 'c' type: 'Crop' crop_param { axis: 1 offset: 1 }", b, 2, 1, &o);
    grad("name: 'c' type: 'Crop' crop_param { axis: 2 offset: 2 offset: 1 }", b, 2, 1, &o);
    Caffe__LayerParameter *p = param_of("name: 'c' type: 'Crop' crop_param { axis: 2 offset: 2 offset: 1 }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, b, 2, &y, 1);
    if (l) {
        CHECK_EQ_INT(y->shape[1], 4); /* axes before `axis` keep bottom 0's size */
        CHECK_EQ_INT(y->shape[2], 3);
        /* y[0,1,0,0] = x[0,1,2,1] */
        CHECK(tensor_data(y)[9] == tensor_data(b[0])[1 * 30 + 2 * 5 + 1]);
    }
    layer_free(l);
    proto_free(&p->base);
    tensor_free(y);
    expect_error("name: 'c' type: 'Crop' crop_param { axis: 1 offset: 3 }", b, 2, 1, CREMA_ERR_SHAPE,
                 "invalid crop in axis");
    expect_error("name: 'c' type: 'Crop' crop_param { axis: 1 offset: 1 offset: 1 }", b, 2, 1,
                 CREMA_ERR_INVALID, "offset");
    free_all(b, 2);
}

/* ------------------------------------------------------------ inner product, embed */

static void inner_product_gradients(void)
{
    int s[4] = { 3, 2, 2, 3 };
    struct tensor *x = tensor_of(4, s, -1.f, 1.f, 17);
    grad("name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 4 " GAUSS_W " }", &x, 1, 1, NULL);
    grad("name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 4 transpose: true " GAUSS_W " }",
         &x, 1, 1, NULL);
    grad("name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 2 axis: 2 bias_term: false "
         GAUSS_W " }",
         &x, 1, 1, NULL);
    Caffe__LayerParameter *p = param_of(
        "name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 2 axis: -1 transpose: true "
        "} blobs { shape { dim: 3 dim: 2 } data: 1 data: 2 data: 3 data: 4 data: 5 data: 6 } "
        "blobs { shape { dim: 2 } data: 0.5 data: -1 }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        CHECK_EQ_INT(y->num_axes, 4);
        CHECK_EQ_INT(y->shape[3], 2);
        const float *xd = tensor_data(x);
        float want = xd[0] * 2 + xd[1] * 4 + xd[2] * 6 - 1.f; /* column 1 of the K x N weights */
        CHECK_MSG(fabsf(tensor_data(y)[1] - want) < 1e-5f, "transpose: got %g, want %g",
                  (double)tensor_data(y)[1], (double)want);
    }
    layer_free(l);
    proto_free(&p->base);
    tensor_free(y);
    char text[2048], b1[1024], b2[256];
    const int wrong[2] = { 2, 11 }, nb[1] = { 2 };
    snprintf(text, sizeof text, "name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 2 } %s %s",
             blob_text(b1, sizeof b1, 2, wrong), blob_text(b2, sizeof b2, 1, nb));
    expect_error(text, &x, 1, 1, CREMA_ERR_SHAPE, "expected 2 12");
    expect_error("name: 'ip' type: 'InnerProduct' inner_product_param { }", &x, 1, 1,
                 CREMA_ERR_INVALID, "num_output");
    tensor_free(x);
}

static void embed_gradients_and_errors(void)
{
    int s[2] = { 3, 2 };
    struct tensor *x = tensor_of(2, s, 0.f, 1.f, 18);
    const float idx[6] = { 4, 0, 2, 2, 1, 4 };
    memcpy(tensor_data(x), idx, sizeof idx);
    bool skip[1] = { true };
    struct gradcheck_opts o = { .skip_bottom = skip, .top_only = -1, .seed = 7 };
    grad("name: 'e' type: 'Embed' embed_param { num_output: 3 input_dim: 5 " GAUSS_W " }", &x, 1, 1, &o);
    Caffe__LayerParameter *p = param_of("name: 'e' type: 'Embed' embed_param { num_output: 3 input_dim: 5 "
                                        GAUSS_W " }");
    struct tensor *y = tensor_new();
    struct layer *l = build(p, &x, 1, &y, 1);
    if (l) {
        CHECK_EQ_INT(y->num_axes, 3);
        CHECK_EQ_INT(y->shape[2], 3);
        CHECK(l->kind->allow_force_backward && !l->kind->allow_force_backward(l, 0));
        const float *w = tensor_data(l->blobs[0]), *b = tensor_data(l->blobs[1]);
        CHECK(tensor_data(y)[0] == w[4 * 3] + b[0]);
        bool pd = true;
        CHECK_EQ_INT(l->kind->backward(l, &y, &pd, &x), CREMA_ERR_UNSUPPORTED);
        tensor_data(x)[3] = 5.f; /* out of range */
        CHECK_EQ_INT(l->kind->forward(l, &x, &y), CREMA_ERR_INVALID);
        CHECK(strstr(crema_errmsg(), "input_dim") != NULL);
        tensor_data(x)[3] = 1.5f;
        CHECK_EQ_INT(l->kind->forward(l, &x, &y), CREMA_ERR_INVALID);
    }
    layer_free(l);
    proto_free(&p->base);
    tensor_free(y);
    expect_error("name: 'e' type: 'Embed' embed_param { num_output: 3 }", &x, 1, 1, CREMA_ERR_INVALID,
                 "input_dim");
    tensor_free(x);
}

CHECK_MAIN(CASE(conv_gradients), CASE(conv_nd_gradients), CASE(conv_force_nd_matches_2d),
           CASE(conv_matches_direct), CASE(deconv_gradients), CASE(conv_errors),
           CASE(pooling_gradients), CASE(pooling_shapes_and_values), CASE(pooling_errors),
           CASE(spp_gradients_and_shape), CASE(lrn_gradients), CASE(lrn_across_formula),
           CASE(im2col_layer_gradients), CASE(crop_gradients_and_errors),
           CASE(inner_product_gradients), CASE(embed_gradients_and_errors))
