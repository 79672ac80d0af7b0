/* Loss layers and Accuracy: gradients by finite differences (scaled by the
 * top diff, as the loss weight arrives), values against double-precision
 * references, normalization modes, and errors on bad labels and shapes. */
#include "layer_testing.h"

#include <stdlib.h>

static void grad(const char *text, struct tensor **bottom, int nb, const bool *skip)
{
    Caffe__LayerParameter *p = lt_param(text);
    if (!p)
        return;
    struct gradcheck_opts o = { 1e-2f, 1e-3f, skip, false, -1, 1701 };
    if (gradcheck_layer(p, CAFFE__PHASE__TRAIN, bottom, nb, 1, &o))
        check_fail(__FILE__, __LINE__, "gradient check failed for: %s", text);
    lt_free_param(p);
}

static void fill_labels(struct tensor *t, int n_classes, unsigned seed)
{
    gradcheck_fill(t, 0, (float)n_classes, seed);
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        d[i] = floorf(d[i]);
}

/* Builds, runs forward (and backward with top diff `w` when w != 0). */
static struct layer *run(const char *text, struct tensor **b, int nb, struct tensor **t, int nt, float w,
                         Caffe__LayerParameter **keep)
{
    *keep = lt_param(text);
    struct layer *l = NULL;
    if (!*keep)
        return NULL;
    if (layer_create(*keep, CAFFE__PHASE__TRAIN, NULL, b, nb, t, nt, &l)) {
        check_fail(__FILE__, __LINE__, "layer_create(%s): %s", text, crema_errmsg());
        return NULL;
    }
    int rc = l->kind->forward(l, b, t);
    if (!rc && w != 0.f) {
        tensor_diff(t[0])[0] = w;
        bool pd[3] = { true, false, false };
        rc = l->kind->backward(l, t, pd, b);
    }
    if (rc) {
        check_fail(__FILE__, __LINE__, "forward/backward(%s): %s", text, crema_errmsg());
        layer_free(l);
        return NULL;
    }
    return l;
}

/* ---- gradients ---- */

static void softmax_loss_gradients(void)
{
    struct tensor *b[2] = { lt_tensor(4, 4, 5, 2, 3), lt_tensor(4, 4, 1, 2, 3) };
    gradcheck_fill(b[0], -2, 2, 1);
    fill_labels(b[1], 5, 2);
    bool skip[2] = { false, true };
    grad("type: 'SoftmaxWithLoss'", b, 2, skip);
    grad("type: 'SoftmaxWithLoss' loss_param { ignore_label: 2 normalization: FULL }", b, 2, skip);
    grad("type: 'SoftmaxWithLoss' loss_param { ignore_label: 2 normalization: VALID }", b, 2, skip);
    grad("type: 'SoftmaxWithLoss' loss_param { ignore_label: 2 normalization: BATCH_SIZE }", b, 2, skip);
    grad("type: 'SoftmaxWithLoss' loss_param { normalization: NONE }", b, 2, skip);
    grad("type: 'SoftmaxWithLoss' loss_param { normalize: false }", b, 2, skip);
    struct tensor *c[2] = { lt_tensor(3, 2, 3, 4), lt_tensor(2, 2, 3) };
    gradcheck_fill(c[0], -2, 2, 3);
    fill_labels(c[1], 4, 4);
    grad("type: 'SoftmaxWithLoss' softmax_param { axis: 2 }", c, 2, skip);
    lt_free(b, 2);
    lt_free(c, 2);
}

static void other_loss_gradients(void)
{
    bool skip1[3] = { false, true, true };
    struct tensor *e[2] = { lt_tensor(2, 5, 3), lt_tensor(2, 5, 3) };
    gradcheck_fill(e[0], -1, 1, 5);
    gradcheck_fill(e[1], -1, 1, 6);
    grad("type: 'EuclideanLoss'", e, 2, NULL); /* both bottoms */

    struct tensor *s[2] = { lt_tensor(3, 4, 3, 2), lt_tensor(3, 4, 3, 2) };
    gradcheck_fill(s[0], -4, 4, 7);
    gradcheck_fill(s[1], 0, 1, 8);
    grad("type: 'SigmoidCrossEntropyLoss'", s, 2, skip1);
    float *t = tensor_data(s[1]);
    for (size_t i = 0; i < s[1]->count; i++)
        t[i] = i % 5 == 0 ? -1.f : (float)(i % 2);
    grad("type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: -1 normalization: VALID }", s, 2, skip1);
    grad("type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: -1 normalization: FULL }", s, 2, skip1);

    struct tensor *h[2] = { lt_tensor(2, 5, 4), lt_tensor(1, 5) };
    gradcheck_fill(h[0], -3, 3, 9);
    fill_labels(h[1], 4, 10);
    grad("type: 'HingeLoss'", h, 2, skip1);
    grad("type: 'HingeLoss' hinge_loss_param { norm: L2 }", h, 2, skip1);

    struct tensor *m[2] = { lt_tensor(2, 5, 4), lt_tensor(1, 5) };
    gradcheck_fill(m[0], 0.2f, 1, 11);
    fill_labels(m[1], 4, 12);
    grad("type: 'MultinomialLogisticLoss'", m, 2, skip1);

    struct tensor *c[3] = { lt_tensor(2, 6, 3), lt_tensor(2, 6, 3), lt_tensor(1, 6) };
    gradcheck_fill(c[0], -0.6f, 0.6f, 13);
    gradcheck_fill(c[1], -0.6f, 0.6f, 14);
    lt_set(c[2], (float[]){ 1, 0, 0, 1, 0, 0 });
    bool skip2[3] = { false, false, true };
    grad("type: 'ContrastiveLoss' contrastive_loss_param { margin: 1.0 }", c, 3, skip2);
    grad("type: 'ContrastiveLoss' contrastive_loss_param { margin: 1.5 legacy_version: true }", c, 3, skip2);

    struct tensor *g[3] = { lt_tensor(2, 5, 4), lt_tensor(1, 5), lt_tensor(4, 1, 1, 4, 4) };
    gradcheck_fill(g[0], -2, 2, 15);
    fill_labels(g[1], 4, 16);
    gradcheck_fill(g[2], 0, 1, 17);
    grad("type: 'InfogainLoss'", g, 3, skip1);
    grad("type: 'InfogainLoss' loss_param { ignore_label: 1 normalization: NONE }", g, 3, skip1);
    lt_free(e, 2);
    lt_free(s, 2);
    lt_free(h, 2);
    lt_free(m, 2);
    lt_free(c, 3);
    lt_free(g, 3);
}

/* ---- values ---- */

static void softmax_loss_values(void)
{
    /* 3 items, 4 classes; item 1's label is ignored */
    struct tensor *b[2] = { lt_tensor(2, 3, 4), lt_tensor(1, 3) }, *t[2] = { tensor_new(), tensor_new() };
    const float x[12] = { 1, 2, 3, 4, -1, 0, 5, 2, 0.5f, 0.5f, -2, 3 };
    const int lab[3] = { 2, 1, 3 };
    lt_set(b[0], x);
    lt_set(b[1], (float[]){ 2, 1, 3 });
    double nll[3], prob[12];
    for (int i = 0; i < 3; i++) {
        double m = -1e9, s = 0;
        for (int k = 0; k < 4; k++)
            m = fmax(m, x[4 * i + k]);
        for (int k = 0; k < 4; k++)
            s += exp(x[4 * i + k] - m);
        for (int k = 0; k < 4; k++)
            prob[4 * i + k] = exp(x[4 * i + k] - m) / s;
        nll[i] = -log(prob[4 * i + lab[i]]);
    }
    struct {
        const char *text;
        double norm;
    } modes[] = {
        { "loss_param { ignore_label: 1 normalization: VALID }", 2 },
        { "loss_param { ignore_label: 1 normalization: FULL }", 3 },
        { "loss_param { ignore_label: 1 normalization: BATCH_SIZE }", 3 },
        { "loss_param { ignore_label: 1 normalization: NONE }", 1 },
        { "loss_param { ignore_label: 1 normalize: true }", 2 },
        { "loss_param { ignore_label: 1 normalize: false }", 3 },
        { "loss_param { ignore_label: 1 normalize: false normalization: VALID }", 2 },
    };
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        char text[256];
        snprintf(text, sizeof text, "type: 'SoftmaxWithLoss' %s", modes[k].text);
        Caffe__LayerParameter *p;
        struct layer *l = run(text, b, 2, t, 1, 2.f, &p);
        if (l) {
            CHECK(l->kind->is_loss);
            LT_SHAPE(t[0], );
            float want = (float)((nll[0] + nll[2]) / modes[k].norm);
            LT_NEAR(tensor_data(t[0]), &want, 1, 1e-6);
            /* gradient = loss weight (top diff 2) * (p - onehot) / normalizer; 0 for the ignored item */
            float g[12];
            for (int i = 0; i < 12; i++) {
                int item = i / 4;
                g[i] = item == 1 ? 0.f
                                 : (float)(2.0 * (prob[i] - (i % 4 == lab[item] ? 1.0 : 0.0)) / modes[k].norm);
            }
            LT_NEAR(tensor_diff(b[0]), g, 12, 1e-6);
        }
        layer_free(l);
        lt_free_param(p);
    }
    /* the optional probability top */
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'SoftmaxWithLoss' loss_weight: 1 loss_weight: 0", b, 2, t, 2, 0.f, &p);
    if (l) {
        float pf[12];
        for (int i = 0; i < 12; i++)
            pf[i] = (float)prob[i];
        LT_SHAPE(t[1], 3, 4);
        LT_NEAR(tensor_data(t[1]), pf, 12, 1e-7);
    }
    layer_free(l);
    lt_free_param(p);
    lt_free(b, 2);
    lt_free(t, 2);
}

static void simple_loss_values(void)
{
    struct tensor *t = tensor_new();
    Caffe__LayerParameter *p;
    /* Euclidean: sum of squares / N / 2 */
    struct tensor *e[2] = { lt_tensor(2, 2, 2), lt_tensor(2, 2, 2) };
    lt_set(e[0], (float[]){ 1, 2, 3, 4 });
    lt_set(e[1], (float[]){ 0, 2, 5, 1 });
    struct layer *l = run("type: 'EuclideanLoss'", e, 2, &t, 1, 3.f, &p);
    if (l) {
        LT_NEAR(tensor_data(t), ((float[]){ (1 + 0 + 4 + 9) / 2.f / 2.f }), 1, 1e-6);
        LT_NEAR(tensor_diff(e[0]), ((float[]){ 1.5f, 0, -3, 4.5f }), 4, 1e-6);
    }
    layer_free(l);
    lt_free_param(p);
    /* Hinge L1: sum max(0, 1 + s * x) / N with s = -1 at the label */
    struct tensor *h[2] = { lt_tensor(2, 2, 3), lt_tensor(1, 2) };
    lt_set(h[0], (float[]){ 0.5f, -2, 0.2f, 1, 3, -0.5f });
    lt_set(h[1], (float[]){ 0, 1 });
    l = run("type: 'HingeLoss'", h, 2, &t, 1, 1.f, &p);
    if (l) {
        float want = ((0.5f + 0 + 1.2f) + (2 + 0 + 0.5f)) / 2;
        LT_NEAR(tensor_data(t), &want, 1, 1e-6);
        LT_NEAR(tensor_diff(h[0]), ((float[]){ -0.5f, 0, 0.5f, 0.5f, 0, 0.5f }), 6, 1e-7);
    }
    layer_free(l);
    lt_free_param(p);
    /* Multinomial: -mean log p[label] */
    struct tensor *m[2] = { lt_tensor(2, 2, 2), lt_tensor(1, 2) };
    lt_set(m[0], (float[]){ 0.25f, 0.75f, 0.5f, 0.5f });
    lt_set(m[1], (float[]){ 1, 0 });
    l = run("type: 'MultinomialLogisticLoss'", m, 2, &t, 1, 1.f, &p);
    if (l) {
        float want = (float)(-(log(0.75) + log(0.5)) / 2);
        LT_NEAR(tensor_data(t), &want, 1, 1e-6);
        LT_NEAR(tensor_diff(m[0]), ((float[]){ 0, -1 / 0.75f / 2, -1 / 0.5f / 2, 0 }), 4, 1e-6);
    }
    layer_free(l);
    lt_free_param(p);
    /* SigmoidCrossEntropy: the default divides by the batch size */
    struct tensor *s[2] = { lt_tensor(2, 2, 2), lt_tensor(2, 2, 2) };
    lt_set(s[0], (float[]){ 0.3f, -1.2f, 2.0f, 0.0f });
    lt_set(s[1], (float[]){ 1, 0, -1, 0.25f });
    double ce = 0;
    const double xs[4] = { 0.3, -1.2, 2.0, 0.0 }, ts[4] = { 1, 0, -1, 0.25 };
    for (int i = 0; i < 4; i++)
        if (i != 2)
            ce += log(1 + exp(xs[i])) - ts[i] * xs[i];
    l = run("type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: -1 }", s, 2, &t, 1, 1.f, &p);
    if (l) {
        float want = (float)(ce / 2);
        LT_NEAR(tensor_data(t), &want, 1, 1e-6);
        CHECK(tensor_diff(s[0])[2] == 0.f);
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: -1 normalization: VALID }", s, 2, &t, 1,
            1.f, &p);
    if (l) {
        float want = (float)(ce / 3);
        LT_NEAR(tensor_data(t), &want, 1, 1e-6);
    }
    layer_free(l);
    lt_free_param(p);
    lt_free(e, 2);
    lt_free(h, 2);
    lt_free(m, 2);
    lt_free(s, 2);
    tensor_free(t);
}

static void contrastive_values(void)
{
    struct tensor *b[3] = { lt_tensor(2, 2, 2), lt_tensor(2, 2, 2), lt_tensor(1, 2) }, *t = tensor_new();
    lt_set(b[0], (float[]){ 0, 0, 0.3f, 0.4f });
    lt_set(b[1], (float[]){ 0.6f, 0.8f, 0, 0 });
    lt_set(b[2], (float[]){ 1, 0 });
    Caffe__LayerParameter *p;
    /* pair 0 similar, d^2 = 1; pair 1 dissimilar, d = 0.5: (1 - 0.5)^2 */
    struct layer *l = run("type: 'ContrastiveLoss' contrastive_loss_param { margin: 1 }", b, 3, &t, 1, 1.f, &p);
    if (l)
        LT_NEAR(tensor_data(t), ((float[]){ (1.f + 0.25f) / 2 / 2 }), 1, 1e-6);
    layer_free(l);
    lt_free_param(p);
    /* legacy: max(margin - d^2, 0) = 0.75 */
    l = run("type: 'ContrastiveLoss' contrastive_loss_param { margin: 1 legacy_version: true }", b, 3, &t, 1, 1.f,
            &p);
    if (l)
        LT_NEAR(tensor_data(t), ((float[]){ (1.f + 0.75f) / 2 / 2 }), 1, 1e-6);
    layer_free(l);
    lt_free_param(p);
    lt_free(b, 3);
    tensor_free(t);
}

static void infogain_file(void)
{
    char *dir = check_tmpdir("infogain");
    char path[4096];
    snprintf(path, sizeof path, "%s/H.binaryproto", dir);
    float h[9] = { 1, 0.5f, 0, 0.2f, 1, 0.1f, 0, 0.3f, 2 };
    Caffe__BlobProto bp = CAFFE__BLOB_PROTO__INIT;
    bp.has_num = bp.has_channels = bp.has_height = bp.has_width = 1;
    bp.num = 1;
    bp.channels = 1;
    bp.height = 3;
    bp.width = 3;
    bp.n_data = 9;
    bp.data = h;
    CHECK_OK(proto_write_binary(path, &bp.base));
    struct tensor *b[3] = { lt_tensor(2, 2, 3), lt_tensor(1, 2), lt_tensor(4, 1, 1, 3, 3) }, *t = tensor_new();
    const float x[6] = { 0.2f, -1, 0.5f, 2, 0, -0.5f };
    lt_set(b[0], x);
    lt_set(b[1], (float[]){ 2, 0 });
    lt_set(b[2], h);
    char text[4200];
    snprintf(text, sizeof text, "type: 'InfogainLoss' infogain_loss_param { source: '%s' }", path);
    Caffe__LayerParameter *p;
    struct layer *l = run(text, b, 2, &t, 1, 1.f, &p);
    double want = 0;
    for (int i = 0; i < 2; i++) {
        double m = -1e9, s = 0;
        int lab = i == 0 ? 2 : 0;
        for (int k = 0; k < 3; k++)
            m = fmax(m, x[3 * i + k]);
        for (int k = 0; k < 3; k++)
            s += exp(x[3 * i + k] - m);
        for (int k = 0; k < 3; k++)
            want -= h[3 * lab + k] * log(exp(x[3 * i + k] - m) / s);
    }
    float wantf = (float)(want / 2);
    if (l)
        LT_NEAR(tensor_data(t), &wantf, 1, 1e-6);
    float from_file[6];
    if (l)
        memcpy(from_file, tensor_diff(b[0]), sizeof from_file);
    layer_free(l);
    lt_free_param(p);
    /* H as a third bottom gives the same loss and gradient */
    l = run("type: 'InfogainLoss'", b, 3, &t, 1, 1.f, &p);
    if (l) {
        LT_NEAR(tensor_data(t), &wantf, 1, 1e-6);
        LT_NEAR(tensor_diff(b[0]), from_file, 6, 1e-7);
        CHECK(!l->kind->allow_force_backward(l, 1) && !l->kind->allow_force_backward(l, 2));
    }
    layer_free(l);
    lt_free_param(p);
    /* errors: no source, missing file, wrong H size */
    Caffe__LayerParameter *bad = lt_param("type: 'InfogainLoss'");
    LT_CREATE_FAILS(bad, b, 2, &t, 1, "infogain_loss_param.source");
    lt_free_param(bad);
    snprintf(text, sizeof text, "type: 'InfogainLoss' infogain_loss_param { source: '%s/none.binaryproto' }", dir);
    bad = lt_param(text);
    LT_CREATE_FAILS(bad, b, 2, &t, 1, "none.binaryproto");
    lt_free_param(bad);
    struct tensor *h2 = lt_tensor(2, 2, 2);
    struct tensor *b2[3] = { b[0], b[1], h2 };
    bad = lt_param("type: 'InfogainLoss'");
    LT_CREATE_FAILS(bad, b2, 3, &t, 1, "3 labels need 3 x 3");
    lt_free_param(bad);
    tensor_free(h2);
    lt_free(b, 3);
    tensor_free(t);
    free(dir);
}

static void accuracy_values(void)
{
    /* 4 items x 3 classes; item 3 ties classes 0 and 2 (the larger index ranks first) */
    struct tensor *b[2] = { lt_tensor(2, 4, 3), lt_tensor(1, 4) }, *t[2] = { tensor_new(), tensor_new() };
    lt_set(b[0], (float[]){ 0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f, 0.3f, 0.3f, 0.4f, 0.4f, 0.2f, 0.4f });
    lt_set(b[1], (float[]){ 1, 1, 0, 0 });
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'Accuracy'", b, 2, t, 1, 0.f, &p);
    if (l) {
        CHECK(l->kind->backward == NULL);
        CHECK_EQ_INT(t[0]->num_axes, 0);
        LT_NEAR(tensor_data(t[0]), ((float[]){ 0.25f }), 1, 0);
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Accuracy' accuracy_param { top_k: 2 }", b, 2, t, 1, 0.f, &p);
    if (l)
        LT_NEAR(tensor_data(t[0]), ((float[]){ 0.75f }), 1, 0);
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Accuracy' accuracy_param { ignore_label: 0 }", b, 2, t, 2, 0.f, &p);
    if (l) {
        LT_NEAR(tensor_data(t[0]), ((float[]){ 0.5f }), 1, 0);
        LT_SHAPE(t[1], 3);
        LT_NEAR(tensor_data(t[1]), ((float[]){ 0, 0.5f, 0 }), 3, 0);
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Accuracy' accuracy_param { top_k: 2 }", b, 2, t, 2, 0.f, &p);
    if (l)
        LT_NEAR(tensor_data(t[1]), ((float[]){ 0.5f, 1, 0 }), 3, 0);
    layer_free(l);
    lt_free_param(p);
    /* spatial: 1 x 3 classes x 2 positions along axis 1 */
    struct tensor *c[2] = { lt_tensor(3, 1, 3, 2), lt_tensor(2, 1, 2) };
    lt_set(c[0], (float[]){ 0, 5, 1, 4, 2, 3 });
    lt_set(c[1], (float[]){ 2, 1 });
    l = run("type: 'Accuracy'", c, 2, t, 1, 0.f, &p);
    if (l)
        LT_NEAR(tensor_data(t[0]), ((float[]){ 0.5f }), 1, 0);
    layer_free(l);
    lt_free_param(p);
    Caffe__LayerParameter *bad = lt_param("type: 'Accuracy' accuracy_param { top_k: 4 }");
    LT_CREATE_FAILS(bad, b, 2, t, 1, "top_k 4");
    lt_free_param(bad);
    lt_set(b[1], (float[]){ 1, 3, 0, 0 });
    l = NULL;
    bad = lt_param("type: 'Accuracy'");
    if (!layer_create(bad, CAFFE__PHASE__TRAIN, NULL, b, 2, t, 1, &l)) {
        CHECK(l->kind->forward(l, b, t) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "label 1 is 3") != NULL, "message: %s", crema_errmsg());
    }
    layer_free(l);
    lt_free_param(bad);
    lt_free(b, 2);
    lt_free(c, 2);
    lt_free(t, 2);
}

static void loss_errors(void)
{
    struct tensor *b[2] = { lt_tensor(2, 3, 4), lt_tensor(1, 3) }, *t[2] = { tensor_new(), tensor_new() };
    struct tensor *wrong[2] = { b[0], lt_tensor(1, 2) };
    gradcheck_fill(b[0], -1, 1, 3);
    lt_set(b[1], (float[]){ 0, 4, 1 });
    Caffe__LayerParameter *p = lt_param("type: 'SoftmaxWithLoss'");
    struct layer *l = NULL;
    if (!layer_create(p, CAFFE__PHASE__TRAIN, NULL, b, 2, t, 1, &l)) {
        CHECK(l->kind->forward(l, b, t) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "label 1 is 4, outside [0, 4)") != NULL, "message: %s", crema_errmsg());
        CHECK(!l->kind->allow_force_backward(l, 1));
        bool pd[2] = { true, true };
        CHECK(l->kind->backward(l, t, pd, b) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "label input") != NULL, "message: %s", crema_errmsg());
    } else {
        check_fail(__FILE__, __LINE__, "layer_create: %s", crema_errmsg());
    }
    layer_free(l);
    LT_CREATE_FAILS(p, wrong, 2, t, 1, "same first dimension");
    lt_free_param(p);
    p = lt_param("type: 'SoftmaxWithLoss' softmax_param { axis: 0 }");
    LT_CREATE_FAILS(p, b, 2, t, 1, "labels for predictions");
    lt_free_param(p);
    p = lt_param("type: 'SoftmaxWithLoss' loss_weight: 1 loss_weight: 1");
    LT_CREATE_FAILS(p, b, 2, t, 2, "probability top");
    lt_free_param(p);
    p = lt_param("type: 'InfogainLoss' loss_param { normalize: true }");
    LT_CREATE_FAILS(p, b, 2, t, 1, "deprecated");
    lt_free_param(p);
    p = lt_param("type: 'EuclideanLoss'");
    struct tensor *e[2] = { b[0], lt_tensor(2, 3, 3) };
    LT_CREATE_FAILS(p, e, 2, t, 1, "same dimension");
    lt_free_param(p);
    p = lt_param("type: 'ContrastiveLoss'");
    struct tensor *c[3] = { lt_tensor(4, 3, 2, 2, 1), lt_tensor(4, 3, 2, 2, 1), b[1] };
    LT_CREATE_FAILS(p, c, 3, t, 1, "N x C x 1 x 1");
    lt_free_param(p);
    tensor_free(wrong[1]);
    tensor_free(e[1]);
    lt_free(c, 2);
    lt_free(b, 2);
    lt_free(t, 2);
}

CHECK_MAIN(CASE(softmax_loss_gradients), CASE(other_loss_gradients), CASE(softmax_loss_values),
           CASE(simple_loss_values), CASE(contrastive_values), CASE(infogain_file), CASE(accuracy_values),
           CASE(loss_errors))
