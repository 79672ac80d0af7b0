/* Activation and normalisation layers: gradients against finite differences,
 * in place against out of place, Dropout's statistics, refused parameters,
 * and each layer alone against the numbers BVLC Caffe computed (golden/layers). */
#include "check.h"
#include "gradcheck.h"
#include "layers/layer.h"
#include "core/blob_proto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) (int[]){ __VA_ARGS__ }, (int)(sizeof((int[]){ __VA_ARGS__ }) / sizeof(int))

static Caffe__LayerParameter layer_param(const char *type)
{
    Caffe__LayerParameter p = CAFFE__LAYER_PARAMETER__INIT;
    p.name = (char *)type;
    p.type = (char *)type;
    return p;
}

static struct tensor *random_tensor(const int *shape, int n_axes, float lo, float hi, unsigned seed)
{
    struct tensor *t = tensor_new();
    CHECK_OK(tensor_reshape(t, n_axes, shape));
    gradcheck_fill(t, lo, hi, seed);
    return t;
}

/* Moves values away from a kink k so that finite differences do not straddle it. */
static void away_from(struct tensor *t, float k, float margin)
{
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        if (fabsf(d[i] - k) < margin)
            d[i] = d[i] >= k ? k + margin + (d[i] - k) : k - margin + (d[i] - k);
}

static void grad_ok(const char *what, const Caffe__LayerParameter *p, Caffe__Phase phase, struct tensor **bottom,
                    int n_bottom, bool skip_params)
{
    struct gradcheck_opts o = { 1e-2f, 1e-3f, NULL, skip_params, -1, 1701 };
    CHECK_MSG(gradcheck_layer(p, phase, bottom, n_bottom, 1, &o) == 0, "gradient check failed: %s", what);
}

/* One bottom of shape `shape`, filled in [lo, hi), kept `margin` away from a kink. */
static void grad1(const char *what, const Caffe__LayerParameter *p, Caffe__Phase phase, const int *shape, int n_axes,
                  float lo, float hi, float kink, float margin, bool skip_params)
{
    struct tensor *x = random_tensor(shape, n_axes, lo, hi, 7);
    if (margin > 0)
        away_from(x, kink, margin);
    grad_ok(what, p, phase, &x, 1, skip_params);
    tensor_free(x);
}

/* ---- gradient checks ---- */

static void grad_activations(void)
{
    Caffe__LayerParameter p;
    p = layer_param("ReLU");
    grad1("ReLU", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -1, 1, 0, 0.03f, false);
    static Caffe__ReLUParameter leaky = CAFFE__RE_LUPARAMETER__INIT;
    leaky.negative_slope = 0.1f;
    p.relu_param = &leaky;
    grad1("ReLU leaky", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -1, 1, 0, 0.03f, false);

    p = layer_param("ELU");
    static Caffe__ELUParameter elu = CAFFE__ELUPARAMETER__INIT;
    elu.alpha = 0.7f;
    p.elu_param = &elu;
    grad1("ELU", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -2, 2, 0, 0.03f, false);

    p = layer_param("Sigmoid");
    grad1("Sigmoid", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -3, 3, 0, 0, false);
    p = layer_param("TanH");
    grad1("TanH", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -2, 2, 0, 0, false);
    p = layer_param("AbsVal");
    grad1("AbsVal", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -2, 2, 0, 0.03f, false);
    p = layer_param("BNLL");
    grad1("BNLL", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -3, 3, 0, 0, false);

    p = layer_param("Clip");
    static Caffe__ClipParameter clip = CAFFE__CLIP_PARAMETER__INIT;
    clip.min = -0.5f;
    clip.max = 0.6f;
    p.clip_param = &clip;
    struct tensor *x = random_tensor(SHAPE(2, 3, 4, 5), -1, 1, 7);
    away_from(x, -0.5f, 0.03f);
    away_from(x, 0.6f, 0.03f);
    grad_ok("Clip", &p, CAFFE__PHASE__TRAIN, &x, 1, false);
    tensor_free(x);

    p = layer_param("Swish");
    static Caffe__SwishParameter swish = CAFFE__SWISH_PARAMETER__INIT;
    swish.beta = 1.5f;
    p.swish_param = &swish;
    grad1("Swish", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -3, 3, 0, 0, false);
    swish.beta = 1.f;
    grad1("Swish beta 1", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -3, 3, 0, 0, false);

    p = layer_param("Dropout");
    grad1("Dropout TEST", &p, CAFFE__PHASE__TEST, SHAPE(2, 3, 4), -1, 1, 0, 0, false);
}

static void grad_prelu(void)
{
    Caffe__LayerParameter p = layer_param("PReLU");
    static Caffe__PReLUParameter pp = CAFFE__PRE_LUPARAMETER__INIT;
    static Caffe__FillerParameter filler = CAFFE__FILLER_PARAMETER__INIT;
    filler.type = "uniform";
    filler.min = 0.05f;
    filler.max = 0.5f;
    pp.filler = &filler;
    p.prelu_param = &pp;
    /* The slope gradients are checked too (skip_params false). */
    grad1("PReLU per channel", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -1, 1, 0, 0.03f, false);
    pp.channel_shared = true;
    grad1("PReLU shared", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -1, 1, 0, 0.03f, false);
    pp.channel_shared = false;
    pp.filler = NULL; /* the default: constant 0.25 */
    grad1("PReLU default slope, 2 axes", &p, CAFFE__PHASE__TRAIN, SHAPE(4, 3), -1, 1, 0, 0.03f, false);
}

static void grad_power(void)
{
    Caffe__LayerParameter p = layer_param("Power");
    static Caffe__PowerParameter pw = CAFFE__POWER_PARAMETER__INIT;
    p.power_param = &pw;
    struct {
        float power, scale, shift, lo, hi;
    } cases[] = {
        { 1.7f, 0.8f, 0.3f, 0.1f, 2.f },   /* general */
        { 1.7f, 0.8f, 0.f, 0.1f, 2.f },    /* shift 0: y / x */
        { 2.f, -0.5f, 1.f, -2.f, 2.f },    /* square with shift */
        { 2.f, 1.5f, 0.f, -2.f, 2.f },     /* square without */
        { 1.f, 2.f, -1.f, -2.f, 2.f },     /* linear */
        { -1.5f, 1.f, 2.f, -1.f, 1.f },    /* negative power */
        { 0.f, 1.3f, 2.f, -1.f, 1.f },     /* power 0: constant 1 */
        { 3.f, 0.f, 2.f, -1.f, 1.f },      /* scale 0: constant shift^power */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pw.power = cases[i].power;
        pw.scale = cases[i].scale;
        pw.shift = cases[i].shift;
        char what[96];
        snprintf(what, sizeof what, "Power %g %g %g", pw.power, pw.scale, pw.shift);
        grad1(what, &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), cases[i].lo, cases[i].hi, 0, 0, false);
    }
}

static void grad_exp_log(void)
{
    Caffe__LayerParameter p = layer_param("Exp");
    static Caffe__ExpParameter ep = CAFFE__EXP_PARAMETER__INIT;
    p.exp_param = &ep;
    const float bases[] = { -1.f, 2.f, 0.5f, 10.f };
    for (int i = 0; i < 4; i++) {
        ep.base = bases[i];
        ep.scale = 0.5f;
        ep.shift = 0.2f;
        char what[64];
        snprintf(what, sizeof what, "Exp base %g", bases[i]);
        grad1(what, &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -1, 1, 0, 0, false);
    }
    ep.base = -1.f;
    ep.scale = 1.f;
    ep.shift = 0.f;
    grad1("Exp plain", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -1, 1, 0, 0, false);

    p = layer_param("Log");
    static Caffe__LogParameter lp = CAFFE__LOG_PARAMETER__INIT;
    p.log_param = &lp;
    for (int i = 0; i < 4; i++) {
        lp.base = bases[i];
        lp.scale = 1.5f;
        lp.shift = 0.2f;
        char what[64];
        snprintf(what, sizeof what, "Log base %g", bases[i]);
        grad1(what, &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), 0.5f, 2, 0, 0, false);
    }
    lp.base = -1.f;
    lp.scale = 1.f;
    lp.shift = 0.f;
    grad1("Log plain", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), 0.5f, 2, 0, 0, false);
}

static void grad_batch_norm(void)
{
    Caffe__LayerParameter p = layer_param("BatchNorm");
    static Caffe__BatchNormParameter bp = CAFFE__BATCH_NORM_PARAMETER__INIT;
    p.batch_norm_param = &bp;
    /* The statistics blobs are not parameters to learn: skip them. */
    grad1("BatchNorm TRAIN 4-D", &p, CAFFE__PHASE__TRAIN, SHAPE(3, 2, 3, 2), -2, 2, 0, 0, true);
    grad1("BatchNorm TRAIN 2-D", &p, CAFFE__PHASE__TRAIN, SHAPE(5, 3), -2, 2, 0, 0, true);
    /* Global statistics with zero blobs: factor 0 means mean 0, variance 0. */
    grad1("BatchNorm TEST", &p, CAFFE__PHASE__TEST, SHAPE(2, 3, 4), -2, 2, 0, 0, true);
    bp.has_use_global_stats = 1;
    bp.use_global_stats = true;
    grad1("BatchNorm TRAIN use_global_stats", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -2, 2, 0, 0, true);
    bp.has_use_global_stats = 0;
}

static void grad_mvn(void)
{
    Caffe__LayerParameter p = layer_param("MVN");
    static Caffe__MVNParameter mp = CAFFE__MVNPARAMETER__INIT;
    p.mvn_param = &mp;
    grad1("MVN", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -2, 2, 0, 0, false);
    mp.across_channels = true;
    grad1("MVN across channels", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -2, 2, 0, 0, false);
    mp.eps = 1e-3f;
    grad1("MVN across channels eps 1e-3", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 2, 2), -2, 2, 0, 0, false);
    mp.eps = 1e-9f;
    mp.normalize_variance = false;
    grad1("MVN mean only, across", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -2, 2, 0, 0, false);
    mp.across_channels = false;
    grad1("MVN mean only", &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4), -2, 2, 0, 0, false);
    mp.normalize_variance = true;
}

static Caffe__FillerParameter uniform_filler(float lo, float hi)
{
    Caffe__FillerParameter f = CAFFE__FILLER_PARAMETER__INIT;
    f.type = "uniform";
    f.min = lo;
    f.max = hi;
    return f;
}

static void grad_scale(void)
{
    static Caffe__FillerParameter sf, bf;
    sf = uniform_filler(0.5f, 1.5f);
    bf = uniform_filler(-0.3f, 0.3f);
    Caffe__LayerParameter p = layer_param("Scale");
    static Caffe__ScaleParameter sp = CAFFE__SCALE_PARAMETER__INIT;
    p.scale_param = &sp;
    sp.filler = &sf;
    sp.bias_filler = &bf;
    struct {
        const char *what;
        int axis, num_axes;
        bool bias;
    } cases[] = {
        { "Scale per channel", 1, 1, false },
        { "Scale per channel with bias", 1, 1, true },
        { "Scale axis 2 num_axes 2", 2, 2, false },
        { "Scale scalar (num_axes 0) with bias", 1, 0, true },
        { "Scale axis 0 to the end", 0, -1, true },
        { "Scale axis -1", -1, 1, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp.axis = cases[i].axis;
        sp.num_axes = cases[i].num_axes;
        sp.has_bias_term = 1;
        sp.bias_term = cases[i].bias;
        grad1(cases[i].what, &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -1, 1, 0, 0, false);
    }
    /* The scale as a second bottom, gradients to both bottoms. */
    struct {
        const char *what;
        int axis;
        bool bias;
        int s_axes, s_shape[3];
    } two[] = {
        { "Scale two bottoms axis 0 with bias", 0, true, 2, { 2, 3 } },
        { "Scale two bottoms axis 1", 1, false, 1, { 3 } },
        { "Scale two bottoms eltwise", 0, false, 3, { 2, 3, 4 } },
        { "Scale two bottoms scalar with bias", 1, true, 0, { 0 } },
        { "Scale two bottoms axis 2", 2, false, 1, { 4 } },
    };
    for (size_t i = 0; i < sizeof two / sizeof two[0]; i++) {
        sp.axis = two[i].axis;
        sp.num_axes = 1;
        sp.bias_term = two[i].bias;
        struct tensor *b[2] = { random_tensor(SHAPE(2, 3, 4), -1, 1, 5),
                                random_tensor(two[i].s_shape, two[i].s_axes, 0.5f, 1.5f, 6) };
        grad_ok(two[i].what, &p, CAFFE__PHASE__TRAIN, b, 2, false);
        tensor_free(b[0]);
        tensor_free(b[1]);
    }
}

static void grad_bias(void)
{
    static Caffe__FillerParameter bf;
    bf = uniform_filler(-1.f, 1.f);
    Caffe__LayerParameter p = layer_param("Bias");
    static Caffe__BiasParameter bp = CAFFE__BIAS_PARAMETER__INIT;
    p.bias_param = &bp;
    bp.filler = &bf;
    const int axes[][2] = { { 1, 1 }, { 2, 2 }, { 0, -1 }, { 1, 0 }, { -2, 1 } };
    for (int i = 0; i < 5; i++) {
        bp.axis = axes[i][0];
        bp.num_axes = axes[i][1];
        char what[64];
        snprintf(what, sizeof what, "Bias learned axis %d num_axes %d", bp.axis, bp.num_axes);
        grad1(what, &p, CAFFE__PHASE__TRAIN, SHAPE(2, 3, 4, 5), -1, 1, 0, 0, false);
    }
    bp.axis = 1;
    bp.num_axes = 1;
    struct tensor *b[2] = { random_tensor(SHAPE(2, 3, 4, 5), -1, 1, 5), random_tensor(SHAPE(3, 4), -1, 1, 6) };
    grad_ok("Bias second bottom", &p, CAFFE__PHASE__TRAIN, b, 2, false);
    tensor_free(b[1]);
    b[1] = random_tensor(NULL, 0, -1, 1, 6);
    grad_ok("Bias second bottom scalar", &p, CAFFE__PHASE__TRAIN, b, 2, false);
    tensor_free(b[0]);
    tensor_free(b[1]);
}

/* ---- in place equals out of place ---- */

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

static void in_place_case(const char *what, const Caffe__LayerParameter *p, Caffe__Phase phase, const int *shape,
                          int n_axes, float lo, float hi)
{
    struct tensor *a = random_tensor(shape, n_axes, lo, hi, 11), *b = tensor_new(), *ta = tensor_new();
    CHECK_OK(tensor_copy_from(b, a, false));
    struct rng ra, rb;
    rng_seed(&ra, 3);
    rng_seed(&rb, 3);
    struct layer *la = NULL, *lb = NULL;
    CHECK_OK(layer_create(p, phase, &ra, &a, 1, &ta, 1, &la));
    CHECK_OK(layer_create(p, phase, &rb, &b, 1, &b, 1, &lb));
    if (!la || !lb)
        goto out;
    CHECK_OK(la->kind->forward(la, &a, &ta));
    CHECK_OK(lb->kind->forward(lb, &b, &b));
    CHECK_EQ_INT(b->count, ta->count);
    float d = max_abs_diff(tensor_data(ta), tensor_data(b), ta->count);
    CHECK_MSG(d == 0.f, "%s: in-place forward differs from out-of-place by %g", what, d);
    if (!la->kind->backward)
        goto out;
    struct tensor *dy = random_tensor(ta->shape, ta->num_axes, -1, 1, 12);
    memcpy(tensor_diff(ta), tensor_data(dy), ta->count * sizeof(float));
    memcpy(tensor_diff(b), tensor_data(dy), ta->count * sizeof(float));
    tensor_free(dy);
    for (int i = 0; i < la->n_blobs; i++) {
        tensor_zero_diff(la->blobs[i]);
        tensor_zero_diff(lb->blobs[i]);
    }
    const bool pd[1] = { true };
    CHECK_OK(la->kind->backward(la, &ta, pd, &a));
    CHECK_OK(lb->kind->backward(lb, &b, pd, &b));
    d = max_abs_diff(tensor_diff(a), tensor_diff(b), a->count);
    CHECK_MSG(d == 0.f, "%s: in-place bottom gradient differs from out-of-place by %g", what, d);
    for (int i = 0; i < la->n_blobs; i++) {
        d = max_abs_diff(tensor_diff(la->blobs[i]), tensor_diff(lb->blobs[i]), la->blobs[i]->count);
        CHECK_MSG(d == 0.f, "%s: in-place gradient of blob %d differs from out-of-place by %g", what, i, d);
    }
out:
    layer_free(la);
    layer_free(lb);
    tensor_free(a);
    tensor_free(b);
    tensor_free(ta);
}

static void in_place(void)
{
    static Caffe__ReLUParameter leaky = CAFFE__RE_LUPARAMETER__INIT;
    static Caffe__ELUParameter elu = CAFFE__ELUPARAMETER__INIT;
    static Caffe__PReLUParameter prelu = CAFFE__PRE_LUPARAMETER__INIT;
    static Caffe__PowerParameter pw = CAFFE__POWER_PARAMETER__INIT;
    static Caffe__ExpParameter ep = CAFFE__EXP_PARAMETER__INIT;
    static Caffe__LogParameter lg = CAFFE__LOG_PARAMETER__INIT;
    static Caffe__ClipParameter clip = CAFFE__CLIP_PARAMETER__INIT;
    static Caffe__SwishParameter swish = CAFFE__SWISH_PARAMETER__INIT;
    static Caffe__ThresholdParameter thr = CAFFE__THRESHOLD_PARAMETER__INIT;
    static Caffe__BatchNormParameter bn = CAFFE__BATCH_NORM_PARAMETER__INIT;
    static Caffe__ScaleParameter sc = CAFFE__SCALE_PARAMETER__INIT;
    static Caffe__BiasParameter bi = CAFFE__BIAS_PARAMETER__INIT;
    static Caffe__MVNParameter mvn = CAFFE__MVNPARAMETER__INIT;
    static Caffe__FillerParameter uf;
    uf = uniform_filler(0.2f, 1.2f);
    leaky.negative_slope = 0.1f;
    elu.alpha = 0.7f;
    prelu.filler = &uf;
    pw.power = 1.7f;
    pw.scale = 0.8f;
    pw.shift = 2.f;
    ep.base = 2.f;
    ep.scale = 0.5f;
    ep.shift = 0.3f;
    lg.base = 10.f;
    lg.scale = 1.5f;
    lg.shift = 2.f;
    clip.min = -0.5f;
    clip.max = 0.6f;
    swish.beta = 1.5f;
    thr.threshold = 0.2f;
    sc.filler = &uf;
    sc.has_bias_term = 1;
    sc.bias_term = true;
    sc.bias_filler = &uf;
    bi.filler = &uf;
    struct {
        const char *type;
        Caffe__Phase phase;
    } kinds[] = {
        { "ReLU", CAFFE__PHASE__TRAIN },    { "PReLU", CAFFE__PHASE__TRAIN },   { "ELU", CAFFE__PHASE__TRAIN },
        { "Sigmoid", CAFFE__PHASE__TRAIN }, { "TanH", CAFFE__PHASE__TRAIN },    { "AbsVal", CAFFE__PHASE__TRAIN },
        { "Power", CAFFE__PHASE__TRAIN },   { "Exp", CAFFE__PHASE__TRAIN },     { "Log", CAFFE__PHASE__TRAIN },
        { "BNLL", CAFFE__PHASE__TRAIN },    { "Threshold", CAFFE__PHASE__TRAIN }, { "Clip", CAFFE__PHASE__TRAIN },
        { "Swish", CAFFE__PHASE__TRAIN },   { "Dropout", CAFFE__PHASE__TRAIN }, { "Dropout", CAFFE__PHASE__TEST },
        { "BatchNorm", CAFFE__PHASE__TRAIN }, { "BatchNorm", CAFFE__PHASE__TEST }, { "Scale", CAFFE__PHASE__TRAIN },
        { "Bias", CAFFE__PHASE__TRAIN },    { "MVN", CAFFE__PHASE__TRAIN },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        Caffe__LayerParameter p = layer_param(kinds[i].type);
        p.relu_param = &leaky;
        p.elu_param = &elu;
        p.prelu_param = &prelu;
        p.power_param = &pw;
        p.exp_param = &ep;
        p.log_param = &lg;
        p.clip_param = &clip;
        p.swish_param = &swish;
        p.threshold_param = &thr;
        p.batch_norm_param = &bn;
        p.scale_param = &sc;
        p.bias_param = &bi;
        p.mvn_param = &mvn;
        char what[64];
        snprintf(what, sizeof what, "%s %s", kinds[i].type, kinds[i].phase == CAFFE__PHASE__TRAIN ? "TRAIN" : "TEST");
        in_place_case(what, &p, kinds[i].phase, SHAPE(2, 3, 4, 5), -2, 2);
    }
}

/* ---- Dropout ---- */

static void dropout(void)
{
    Caffe__LayerParameter p = layer_param("Dropout");
    static Caffe__DropoutParameter dp = CAFFE__DROPOUT_PARAMETER__INIT;
    dp.dropout_ratio = 0.3f;
    p.dropout_param = &dp;
    const int shape[2] = { 100, 100 };
    struct tensor *x = random_tensor(shape, 2, 0.5f, 1.5f, 21), *y = tensor_new(), *y2 = tensor_new();
    struct rng r, r2;
    struct layer *l = NULL, *l2 = NULL;
    rng_seed(&r, 5);
    rng_seed(&r2, 5);

    /* TEST: the identity, forward and backward. */
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TEST, NULL, &x, 1, &y, 1, &l));
    if (!l)
        goto out;
    CHECK_OK(l->kind->forward(l, &x, &y));
    CHECK(max_abs_diff(tensor_data(x), tensor_data(y), x->count) == 0.f);
    gradcheck_fill(y, -1, 1, 3);
    memcpy(tensor_diff(y), tensor_data(y), y->count * sizeof(float));
    const bool pd[1] = { true };
    CHECK_OK(l->kind->backward(l, &y, pd, &x));
    CHECK(max_abs_diff(tensor_diff(x), tensor_diff(y), x->count) == 0.f);
    layer_free(l);
    l = NULL;

    /* TRAIN: about 30% dropped, the rest scaled by 1/0.7, repeatable by seed. */
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TRAIN, &r, &x, 1, &y, 1, &l));
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TRAIN, &r2, &x, 1, &y2, 1, &l2));
    if (!l || !l2)
        goto out;
    CHECK_OK(l->kind->forward(l, &x, &y));
    CHECK_OK(l2->kind->forward(l2, &x, &y2));
    const float *xd = tensor_data(x), *yd = tensor_data(y);
    size_t dropped = 0, bad = 0;
    const float scale = (float)(1. / (1. - 0.3f));
    for (size_t i = 0; i < x->count; i++) {
        if (yd[i] == 0.f)
            dropped++;
        else if (yd[i] != xd[i] * scale)
            bad++;
    }
    double frac = (double)dropped / (double)x->count;
    /* 10000 draws: the standard deviation of the fraction is 0.0046. */
    CHECK_MSG(fabs(frac - 0.3) < 0.025, "dropped fraction %.4f, expected about 0.3", frac);
    CHECK_MSG(bad == 0, "%zu kept values are not x / (1 - ratio)", bad);
    CHECK_MSG(max_abs_diff(yd, tensor_data(y2), y->count) == 0.f, "the same seed gave different masks");
    /* A second forward draws a new mask. */
    CHECK_OK(l->kind->forward(l, &x, &y));
    CHECK_MSG(max_abs_diff(tensor_data(y), tensor_data(y2), y->count) != 0.f, "two forwards gave the same mask");
    /* Backward uses the mask of the last forward. */
    for (size_t i = 0; i < y->count; i++)
        tensor_diff(y)[i] = 1.f;
    CHECK_OK(l->kind->backward(l, &y, pd, &x));
    bad = 0;
    for (size_t i = 0; i < x->count; i++) {
        float want = tensor_data(y)[i] == 0.f ? 0.f : scale;
        if (tensor_diff(x)[i] != want)
            bad++;
    }
    CHECK_MSG(bad == 0, "%zu gradients are not mask / (1 - ratio)", bad);
out:
    layer_free(l);
    layer_free(l2);
    tensor_free(x);
    tensor_free(y);
    tensor_free(y2);
}

/* ---- refused parameters, with messages that say why ---- */

static void expect_error(const char *what, const Caffe__LayerParameter *p, struct tensor **bottom, int n_bottom,
                         const char *needle)
{
    struct tensor *top = tensor_new();
    struct rng r;
    rng_seed(&r, 1);
    struct layer *l = NULL;
    int rc = layer_create(p, CAFFE__PHASE__TRAIN, &r, bottom, n_bottom, &top, 1, &l);
    CHECK_MSG(rc != 0, "%s: layer_create accepted it", what);
    if (rc)
        CHECK_MSG(strstr(crema_errmsg(), needle) != NULL, "%s: message \"%s\" does not mention \"%s\"", what,
                  crema_errmsg(), needle);
    layer_free(l);
    tensor_free(top);
}

static void errors(void)
{
    struct tensor *x = random_tensor(SHAPE(2, 3, 4, 5), -1, 1, 1);
    struct tensor *v = random_tensor(SHAPE(6), -1, 1, 1);
    Caffe__LayerParameter p;

    p = layer_param("Clip");
    expect_error("Clip without clip_param", &p, &x, 1, "clip_param");

    p = layer_param("PReLU");
    expect_error("PReLU on one axis", &p, &v, 1, "2 axes");
    static Caffe__PReLUParameter shared = CAFFE__PRE_LUPARAMETER__INIT;
    shared.channel_shared = true;
    p.prelu_param = &shared;
    Caffe__BlobProto three = CAFFE__BLOB_PROTO__INIT;
    float vals[3] = { 1, 2, 3 };
    three.n_data = 3;
    three.data = vals;
    three.has_num = three.has_channels = three.has_height = three.has_width = 1;
    three.num = three.channels = three.height = 1;
    three.width = 3;
    Caffe__BlobProto *blobs[1] = { &three };
    p.n_blobs = 1;
    p.blobs = blobs;
    expect_error("PReLU shared with 3 slopes", &p, &x, 1, "channel_shared");

    p = layer_param("Exp");
    static Caffe__ExpParameter ep = CAFFE__EXP_PARAMETER__INIT;
    ep.base = -2.f;
    p.exp_param = &ep;
    expect_error("Exp base -2", &p, &x, 1, "exp_param.base");
    p = layer_param("Log");
    static Caffe__LogParameter lp = CAFFE__LOG_PARAMETER__INIT;
    lp.base = 1.f;
    p.log_param = &lp;
    expect_error("Log base 1", &p, &x, 1, "log_param.base");

    p = layer_param("Dropout");
    static Caffe__DropoutParameter dp = CAFFE__DROPOUT_PARAMETER__INIT;
    dp.dropout_ratio = 1.f;
    p.dropout_param = &dp;
    expect_error("Dropout ratio 1", &p, &x, 1, "dropout_ratio");

    p = layer_param("BatchNorm");
    p.n_blobs = 1;
    p.blobs = blobs;
    expect_error("BatchNorm with one blob", &p, &x, 1, "3 blobs");

    p = layer_param("Scale");
    struct tensor *b2[2] = { x, random_tensor(SHAPE(2, 4), 0, 1, 1) };
    expect_error("Scale with a 2x4 scale on 2x3x4x5 at axis 0", &p, b2, 2, "dimension mismatch");
    static Caffe__ScaleParameter sp = CAFFE__SCALE_PARAMETER__INIT;
    sp.axis = 2;
    sp.num_axes = 3;
    p.scale_param = &sp;
    expect_error("Scale past the last axis", &p, &x, 1, "extends past");
    sp.axis = 4;
    sp.num_axes = 1;
    expect_error("Scale axis out of range", &p, &x, 1, "out of range");
    sp.axis = 1;
    Caffe__BlobProto four = CAFFE__BLOB_PROTO__INIT;
    Caffe__BlobShape four_shape = CAFFE__BLOB_SHAPE__INIT;
    int64_t four_dim[1] = { 4 };
    float four_vals[4] = { 1, 2, 3, 4 };
    four_shape.n_dim = 1;
    four_shape.dim = four_dim;
    four.shape = &four_shape;
    four.n_data = 4;
    four.data = four_vals;
    Caffe__BlobProto *four_blobs[1] = { &four };
    p.n_blobs = 1;
    p.blobs = four_blobs; /* 4 scales for 3 channels */
    expect_error("Scale with a blob of the wrong shape", &p, &x, 1, "dimension mismatch");

    p = layer_param("Bias");
    static Caffe__BiasParameter bp = CAFFE__BIAS_PARAMETER__INIT;
    bp.num_axes = -2;
    p.bias_param = &bp;
    expect_error("Bias num_axes -2", &p, &x, 1, "num_axes");
    p.bias_param = NULL;
    struct tensor *bb[2] = { x, random_tensor(SHAPE(3, 5), 0, 1, 1) };
    expect_error("Bias 3x5 on 2x3x4x5 at axis 1", &p, bb, 2, "dimension mismatch");

    /* Caffe does not refuse min > max: every output is min. */
    p = layer_param("Clip");
    static Caffe__ClipParameter cp = CAFFE__CLIP_PARAMETER__INIT;
    cp.min = 1.f;
    cp.max = -1.f;
    p.clip_param = &cp;
    struct tensor *y = tensor_new();
    struct layer *l = NULL;
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TRAIN, NULL, &x, 1, &y, 1, &l));
    if (l) {
        CHECK_OK(l->kind->forward(l, &x, &y));
        for (size_t i = 0; i < y->count; i++)
            CHECK_MSG(tensor_data(y)[i] == 1.f, "Clip min 1 max -1: y[%zu] = %g, expected 1", i, tensor_data(y)[i]);
    }
    layer_free(l);
    tensor_free(y);
    tensor_free(b2[1]);
    tensor_free(bb[1]);
    tensor_free(x);
    tensor_free(v);
}

/* ---- against BVLC Caffe (golden/layers) ---- */

struct golden_case {
    const char *name;  /* folder under golden/layers */
    const char *layer; /* the layer's name in the net */
    Caffe__Phase phase;
    const char *bottoms[2];
    void (*configure)(Caffe__LayerParameter *p);
};

#define CONFIG(fn, body)                                                      \
    static void fn(Caffe__LayerParameter *p) { body }

CONFIG(cfg_none, (void)p;)
CONFIG(cfg_relu_leaky, static Caffe__ReLUParameter r = CAFFE__RE_LUPARAMETER__INIT; r.negative_slope = 0.1f;
       p->relu_param = &r;)
CONFIG(cfg_prelu_shared, static Caffe__PReLUParameter r = CAFFE__PRE_LUPARAMETER__INIT; r.channel_shared = true;
       p->prelu_param = &r;)
CONFIG(cfg_elu, static Caffe__ELUParameter r = CAFFE__ELUPARAMETER__INIT; r.alpha = 0.7f; p->elu_param = &r;)
CONFIG(cfg_clip, static Caffe__ClipParameter r = CAFFE__CLIP_PARAMETER__INIT; r.min = -0.5f; r.max = 0.6f;
       p->clip_param = &r;)
CONFIG(cfg_swish, static Caffe__SwishParameter r = CAFFE__SWISH_PARAMETER__INIT; r.beta = 1.5f;
       p->swish_param = &r;)
CONFIG(cfg_threshold, static Caffe__ThresholdParameter r = CAFFE__THRESHOLD_PARAMETER__INIT; r.threshold = 0.2f;
       p->threshold_param = &r;)
CONFIG(cfg_dropout, static Caffe__DropoutParameter r = CAFFE__DROPOUT_PARAMETER__INIT; r.dropout_ratio = 0.3f;
       p->dropout_param = &r;)
CONFIG(cfg_exp, static Caffe__ExpParameter r = CAFFE__EXP_PARAMETER__INIT; r.base = -1; r.scale = 0.5f;
       r.shift = 0.2f; p->exp_param = &r;)
CONFIG(cfg_exp2, static Caffe__ExpParameter r = CAFFE__EXP_PARAMETER__INIT; r.base = 2; r.scale = 1;
       r.shift = 0.3f; p->exp_param = &r;)
CONFIG(cfg_log, static Caffe__LogParameter r = CAFFE__LOG_PARAMETER__INIT; r.base = -1; r.scale = 1.5f;
       r.shift = 0.2f; p->log_param = &r;)
CONFIG(cfg_log10, static Caffe__LogParameter r = CAFFE__LOG_PARAMETER__INIT; r.base = 10; p->log_param = &r;)
CONFIG(cfg_power_frac, static Caffe__PowerParameter r = CAFFE__POWER_PARAMETER__INIT; r.power = 1.7f;
       r.scale = 0.8f; r.shift = 0.3f; p->power_param = &r;)
CONFIG(cfg_power_one, static Caffe__PowerParameter r = CAFFE__POWER_PARAMETER__INIT; r.power = 1; r.scale = 2;
       r.shift = -1; p->power_param = &r;)
CONFIG(cfg_power_square, static Caffe__PowerParameter r = CAFFE__POWER_PARAMETER__INIT; r.power = 2;
       r.scale = -0.5f; r.shift = 1; p->power_param = &r;)
CONFIG(cfg_bn_global, static Caffe__BatchNormParameter r = CAFFE__BATCH_NORM_PARAMETER__INIT;
       r.has_use_global_stats = 1; r.use_global_stats = true; p->batch_norm_param = &r;)
CONFIG(cfg_bn_train, static Caffe__BatchNormParameter r = CAFFE__BATCH_NORM_PARAMETER__INIT;
       r.has_use_global_stats = 1; r.use_global_stats = false; r.moving_average_fraction = 0.9f; r.eps = 1e-4f;
       p->batch_norm_param = &r;)
CONFIG(cfg_bn_train2d, static Caffe__BatchNormParameter r = CAFFE__BATCH_NORM_PARAMETER__INIT;
       r.has_use_global_stats = 1; r.use_global_stats = false; p->batch_norm_param = &r;)
CONFIG(cfg_bias_learned, static Caffe__BiasParameter r = CAFFE__BIAS_PARAMETER__INIT; r.axis = 1; r.num_axes = 1;
       p->bias_param = &r;)
CONFIG(cfg_scale_axis2, static Caffe__ScaleParameter r = CAFFE__SCALE_PARAMETER__INIT; r.axis = 2;
       r.num_axes = 2; p->scale_param = &r;)
CONFIG(cfg_scale_bias, static Caffe__ScaleParameter r = CAFFE__SCALE_PARAMETER__INIT; r.has_bias_term = 1;
       r.bias_term = true; p->scale_param = &r;)
CONFIG(cfg_scale_scalar, static Caffe__ScaleParameter r = CAFFE__SCALE_PARAMETER__INIT; r.num_axes = 0;
       r.has_bias_term = 1; r.bias_term = true; p->scale_param = &r;)
CONFIG(cfg_scale_two, static Caffe__ScaleParameter r = CAFFE__SCALE_PARAMETER__INIT; r.axis = 0;
       r.has_bias_term = 1; r.bias_term = true; p->scale_param = &r;)
CONFIG(cfg_mvn_across, static Caffe__MVNParameter r = CAFFE__MVNPARAMETER__INIT; r.across_channels = true;
       r.eps = 1e-3f; p->mvn_param = &r;)
CONFIG(cfg_mvn_novar, static Caffe__MVNParameter r = CAFFE__MVNPARAMETER__INIT; r.normalize_variance = false;
       p->mvn_param = &r;)

#define TR CAFFE__PHASE__TRAIN
static const struct golden_case golden_cases[] = {
    { "relu", "relu", TR, { "x" }, cfg_none },
    { "relu_leaky", "relu", TR, { "x" }, cfg_relu_leaky },
    { "prelu", "prelu", TR, { "x" }, cfg_none },
    { "prelu_shared", "prelu", TR, { "x" }, cfg_prelu_shared },
    { "elu", "elu", TR, { "x" }, cfg_elu },
    { "sigmoid", "sigmoid", TR, { "x" }, cfg_none },
    { "tanh", "tanh", TR, { "x" }, cfg_none },
    { "absval", "abs", TR, { "x" }, cfg_none },
    { "power_frac", "power", TR, { "x" }, cfg_power_frac },
    { "power_one", "power", TR, { "x" }, cfg_power_one },
    { "power_square", "power", TR, { "x" }, cfg_power_square },
    { "exp", "exp", TR, { "x" }, cfg_exp },
    { "exp_base2", "exp", TR, { "x" }, cfg_exp2 },
    { "log", "log", TR, { "x" }, cfg_log },
    { "log_base10", "log", TR, { "x" }, cfg_log10 },
    { "bnll", "bnll", TR, { "x" }, cfg_none },
    { "threshold", "thr", TR, { "x" }, cfg_threshold },
    { "clip", "clip", TR, { "x" }, cfg_clip },
    { "swish", "swish", TR, { "x" }, cfg_swish },
    { "dropout_test", "drop", CAFFE__PHASE__TEST, { "x" }, cfg_dropout },
    { "batchnorm_test", "bn", CAFFE__PHASE__TEST, { "x" }, cfg_bn_global },
    { "batchnorm_train_global", "bn", TR, { "x" }, cfg_bn_global },
    { "batchnorm_train", "bn", TR, { "x" }, cfg_bn_train },
    { "batchnorm_train_2d", "bn", TR, { "x" }, cfg_bn_train2d },
    { "scale_axis2_numaxes2", "scale", TR, { "x" }, cfg_scale_axis2 },
    { "scale_learned_bias", "scale", TR, { "x" }, cfg_scale_bias },
    { "scale_scalar", "scale", TR, { "x" }, cfg_scale_scalar },
    { "scale_two_bottom", "scale", TR, { "x", "s" }, cfg_scale_two },
    { "bias_learned", "bias", TR, { "x" }, cfg_bias_learned },
    { "bias_two_bottom", "bias", TR, { "x", "b" }, cfg_none },
    { "mvn", "mvn", TR, { "x" }, cfg_none },
    { "mvn_across_channels", "mvn", TR, { "x" }, cfg_mvn_across },
    { "mvn_no_variance", "mvn", TR, { "x" }, cfg_mvn_novar },
};

static const Caffe__LayerParameter *golden_entry(const Caffe__NetParameter *net, const char *name)
{
    for (size_t i = 0; i < net->n_layer; i++)
        if (net->layer[i]->name && strcmp(net->layer[i]->name, name) == 0)
            return net->layer[i];
    return NULL;
}

static const Caffe__BlobProto *golden_blob(const Caffe__NetParameter *net, const char *prefix, const char *name,
                                           int index)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const Caffe__LayerParameter *e = golden_entry(net, full);
    if (!e || (size_t)index >= e->n_blobs) {
        check_fail(__FILE__, __LINE__, "golden entry %s (blob %d) is missing", full, index);
        return NULL;
    }
    return e->blobs[index];
}

static double worst_rel_seen;

/* max |got - want| <= 1e-5 max |want| + 1e-6, the README's layer tolerance. */
static void compare(const char *cas, const char *what, const float *got, const float *want, size_t n, size_t n_want)
{
    if (n != n_want) {
        check_fail(__FILE__, __LINE__, "%s %s: %zu values, golden has %zu", cas, what, n, n_want);
        return;
    }
    double max_want = 0, max_diff = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        max_want = fmax(max_want, fabs(want[i]));
        double d = fabs((double)got[i] - (double)want[i]);
        if (d > max_diff) {
            max_diff = d;
            at = i;
        }
    }
    double rel = max_want > 0 ? max_diff / max_want : max_diff;
    if (rel > worst_rel_seen)
        worst_rel_seen = rel;
    printf("    %-24s %-12s max abs %.3g  rel %.3g\n", cas, what, max_diff, rel);
    if (max_diff > 1e-5 * max_want + 1e-6)
        check_fail(__FILE__, __LINE__, "%s %s: element %zu is %.9g, Caffe has %.9g (max abs %.3g, rel %.3g)", cas,
                   what, at, got[at], want[at], max_diff, rel);
}

static void golden_run(const struct golden_case *gc)
{
    char rel[160];
    snprintf(rel, sizeof rel, "golden/layers/%s/golden.caffemodel", gc->name);
    char *path = check_shared(rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        check_fail(__FILE__, __LINE__, "cannot open %s", path);
        free(path);
        return;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    Caffe__NetParameter *net = got == (size_t)len ? caffe__net_parameter__unpack(NULL, (size_t)len, buf) : NULL;
    free(buf);
    free(path);
    if (!net) {
        check_fail(__FILE__, __LINE__, "%s: cannot parse golden.caffemodel", gc->name);
        return;
    }
    const char *types[][2] = {
        { "relu", "ReLU" },     { "prelu", "PReLU" },   { "elu", "ELU" },       { "sigmoid", "Sigmoid" },
        { "tanh", "TanH" },     { "abs", "AbsVal" },    { "power", "Power" },   { "exp", "Exp" },
        { "log", "Log" },       { "bnll", "BNLL" },     { "thr", "Threshold" }, { "clip", "Clip" },
        { "swish", "Swish" },   { "drop", "Dropout" },  { "bn", "BatchNorm" },  { "scale", "Scale" },
        { "bias", "Bias" },     { "mvn", "MVN" },
    };
    const char *type = NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i][0], gc->layer) == 0)
            type = types[i][1];
    Caffe__LayerParameter p = layer_param(type);
    p.name = (char *)gc->layer;
    gc->configure(&p);
    const Caffe__LayerParameter *params = golden_entry(net, gc->layer);
    if (params) {
        p.n_blobs = params->n_blobs;
        p.blobs = params->blobs;
    }
    int n_bottom = gc->bottoms[1] ? 2 : 1;
    struct tensor *bottom[2] = { NULL, NULL }, *want[2] = { NULL, NULL };
    struct tensor *top = tensor_new(), *want_top = tensor_new();
    struct layer *l = NULL;
    const Caffe__BlobProto *bp;
    for (int b = 0; b < n_bottom; b++) {
        bottom[b] = tensor_new();
        want[b] = tensor_new();
        if (!(bp = golden_blob(net, "blob/", gc->bottoms[b], 0)))
            goto out;
        CHECK_OK(tensor_from_proto(want[b], bp, true));
        CHECK_OK(tensor_copy_from(bottom[b], want[b], false));
    }
    if (!(bp = golden_blob(net, "blob/", "y", 0)))
        goto out;
    CHECK_OK(tensor_from_proto(want_top, bp, true));
    const bool has_diff = bp->n_diff > 0;
    struct rng r;
    rng_seed(&r, 1);
    CHECK_OK(layer_create(&p, gc->phase, &r, bottom, n_bottom, &top, 1, &l));
    if (!l)
        goto out;
    for (int i = 0; i < l->n_blobs; i++)
        tensor_zero_diff(l->blobs[i]);
    CHECK_OK(l->kind->forward(l, bottom, &top));
    CHECK_MSG(tensor_shape_equals(top, want_top), "%s: top shape differs from Caffe's", gc->name);
    compare(gc->name, "top", tensor_data(top), tensor_data(want_top), top->count, want_top->count);
    const Caffe__LayerParameter *after = NULL;
    char an[64];
    snprintf(an, sizeof an, "after_forward/%s", gc->layer);
    if ((after = golden_entry(net, an)) != NULL) {
        for (size_t i = 0; i < after->n_blobs && (int)i < l->n_blobs; i++) {
            char what[32];
            snprintf(what, sizeof what, "blob %zu after", i);
            compare(gc->name, what, tensor_data(l->blobs[i]), after->blobs[i]->data, l->blobs[i]->count,
                    after->blobs[i]->n_data);
        }
    }
    if (!has_diff || !l->kind->backward)
        goto out;
    memcpy(tensor_diff(top), tensor_diff(want_top), top->count * sizeof(float));
    const bool pd[2] = { true, true };
    CHECK_OK(l->kind->backward(l, &top, pd, bottom));
    for (int b = 0; b < n_bottom; b++) {
        char what[32];
        snprintf(what, sizeof what, "%s diff", gc->bottoms[b]);
        compare(gc->name, what, tensor_diff(bottom[b]), tensor_diff(want[b]), bottom[b]->count, want[b]->count);
    }
    for (int i = 0; params && i < l->n_blobs && (size_t)i < params->n_blobs; i++) {
        if (params->blobs[i]->n_diff == 0)
            continue;
        char what[32];
        snprintf(what, sizeof what, "blob %d diff", i);
        compare(gc->name, what, tensor_diff(l->blobs[i]), params->blobs[i]->diff, l->blobs[i]->count,
                params->blobs[i]->n_diff);
    }
out:
    layer_free(l);
    for (int b = 0; b < 2; b++) {
        tensor_free(bottom[b]);
        tensor_free(want[b]);
    }
    tensor_free(top);
    tensor_free(want_top);
    caffe__net_parameter__free_unpacked(net, NULL);
}

static void golden(void)
{
    worst_rel_seen = 0;
    for (size_t i = 0; i < sizeof golden_cases / sizeof golden_cases[0]; i++)
        golden_run(&golden_cases[i]);
    printf("    worst relative error against Caffe: %.3g\n", worst_rel_seen);
}

CHECK_MAIN(CASE(grad_activations), CASE(grad_prelu), CASE(grad_power), CASE(grad_exp_log), CASE(grad_batch_norm),
           CASE(grad_mvn), CASE(grad_scale), CASE(grad_bias), CASE(in_place), CASE(dropout), CASE(errors),
           CASE(golden))
