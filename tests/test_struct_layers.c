/* Structure layers: gradients by finite differences, exact forward results
 * on hand-computed cases, buffer sharing, and clear errors on bad shapes. */
#include "layer_testing.h"

#include <stdlib.h>

static void grad(const char *text, struct tensor **bottom, int nb, int nt, const bool *skip)
{
    Caffe__LayerParameter *p = lt_param(text);
    if (!p)
        return;
    struct gradcheck_opts o = { 1e-2f, 1e-3f, skip, false, -1, 1701 };
    if (gradcheck_layer(p, CAFFE__PHASE__TRAIN, bottom, nb, nt, &o))
        check_fail(__FILE__, __LINE__, "gradient check failed for: %s", text);
    lt_free_param(p);
}

/* ---- gradients ---- */

static void eltwise_gradients(void)
{
    struct tensor *b[3] = { lt_tensor(3, 2, 3, 4), lt_tensor(3, 2, 3, 4), lt_tensor(3, 2, 3, 4) };
    gradcheck_fill(b[0], -2, 2, 1);
    gradcheck_fill(b[1], -2, 2, 2);
    gradcheck_fill(b[2], -2, 2, 3);
    grad("type: 'Eltwise' eltwise_param { operation: PROD }", b, 3, 1, NULL);
    grad("type: 'Eltwise' eltwise_param { operation: PROD stable_prod_grad: false }", b, 3, 1, NULL);
    grad("type: 'Eltwise' eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }", b, 3, 1, NULL);
    grad("type: 'Eltwise'", b, 2, 1, NULL);
    grad("type: 'Eltwise' eltwise_param { operation: MAX }", b, 3, 1, NULL);
    lt_free(b, 3);
}

static void concat_slice_gradients(void)
{
    struct tensor *b[3] = { lt_tensor(4, 2, 2, 3, 2), lt_tensor(4, 2, 3, 3, 2), lt_tensor(4, 2, 1, 3, 2) };
    for (int i = 0; i < 3; i++)
        gradcheck_fill(b[i], -1, 1, 10 + (unsigned)i);
    grad("type: 'Concat'", b, 3, 1, NULL);
    grad("type: 'Concat' concat_param { concat_dim: 1 }", b, 2, 1, NULL);
    struct tensor *c[2] = { lt_tensor(2, 1, 5), lt_tensor(2, 3, 5) };
    gradcheck_fill(c[0], -1, 1, 4);
    gradcheck_fill(c[1], -1, 1, 5);
    grad("type: 'Concat' concat_param { axis: 0 }", c, 2, 1, NULL);
    struct tensor *s = lt_tensor(3, 2, 6, 3);
    gradcheck_fill(s, -1, 1, 6);
    grad("type: 'Slice' slice_param { slice_point: 1 slice_point: 4 }", &s, 1, 3, NULL);
    grad("type: 'Slice' slice_param { axis: -1 }", &s, 1, 3, NULL);
    grad("type: 'Slice' slice_param { slice_dim: 1 }", &s, 1, 2, NULL);
    lt_free(b, 3);
    lt_free(c, 2);
    tensor_free(s);
}

static void reshaping_gradients(void)
{
    struct tensor *b = lt_tensor(4, 2, 3, 4, 5);
    gradcheck_fill(b, -1, 1, 7);
    grad("type: 'Flatten'", &b, 1, 1, NULL);
    grad("type: 'Flatten' flatten_param { axis: 1 end_axis: 2 }", &b, 1, 1, NULL);
    grad("type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 dim: 4 } }", &b, 1, 1, NULL);
    grad("type: 'Tile' tile_param { axis: 1 tiles: 3 }", &b, 1, 1, NULL);
    grad("type: 'Tile' tile_param { axis: -1 tiles: 2 }", &b, 1, 1, NULL);
    tensor_free(b);
}

static void reduction_gradients(void)
{
    struct tensor *b = lt_tensor(3, 2, 3, 4);
    gradcheck_fill(b, -1, 1, 8);
    /* keep ASUM away from its kink at 0 */
    float *d = tensor_data(b);
    for (size_t i = 0; i < b->count; i++)
        if (fabsf(d[i]) < 0.05f)
            d[i] = 0.3f;
    grad("type: 'Reduction'", &b, 1, 1, NULL);
    grad("type: 'Reduction' reduction_param { operation: SUM axis: 0 }", &b, 1, 1, NULL);
    grad("type: 'Reduction' reduction_param { operation: ASUM axis: 1 coeff: 0.5 }", &b, 1, 1, NULL);
    grad("type: 'Reduction' reduction_param { operation: SUMSQ axis: 2 }", &b, 1, 1, NULL);
    grad("type: 'Reduction' reduction_param { operation: MEAN axis: -1 coeff: -2 }", &b, 1, 1, NULL);
    tensor_free(b);
}

static void softmax_gradients(void)
{
    struct tensor *b = lt_tensor(4, 2, 4, 3, 2);
    gradcheck_fill(b, -2, 2, 9);
    grad("type: 'Softmax'", &b, 1, 1, NULL);
    grad("type: 'Softmax' softmax_param { axis: 2 }", &b, 1, 1, NULL);
    grad("type: 'Softmax' softmax_param { axis: -1 }", &b, 1, 1, NULL);
    tensor_free(b);
}

static void filter_reindex_silence_gradients(void)
{
    struct tensor *b[3] = { lt_tensor(3, 6, 3, 2), lt_tensor(2, 6, 4), lt_tensor(1, 6) };
    gradcheck_fill(b[0], -1, 1, 11);
    gradcheck_fill(b[1], -1, 1, 12);
    lt_set(b[2], (float[]){ 1, 0, 0, 1, 1, 0 });
    bool skip[3] = { false, false, true };
    grad("type: 'Filter'", b, 3, 2, skip);
    struct tensor *r[2] = { lt_tensor(3, 5, 2, 2), lt_tensor(1, 7) };
    gradcheck_fill(r[0], -1, 1, 13);
    lt_set(r[1], (float[]){ 4, 0, 2, 2, 1, 4, 3 });
    bool skip_idx[2] = { false, true };
    grad("type: 'BatchReindex'", r, 2, 1, skip_idx);
    grad("type: 'Silence'", b, 2, 0, NULL);
    lt_free(b, 3);
    lt_free(r, 2);
}

static void parameter_gradient(void)
{
    grad("type: 'Parameter' parameter_param { shape { dim: 2 dim: 3 } }", NULL, 0, 1, NULL);
}

/* ---- exact forward results ---- */

static struct layer *run(const char *text, struct tensor **b, int nb, struct tensor **t, int nt,
                         Caffe__LayerParameter **keep)
{
    *keep = lt_param(text);
    struct layer *l = NULL;
    if (!*keep)
        return NULL;
    int rc = layer_create(*keep, CAFFE__PHASE__TRAIN, NULL, b, nb, t, nt, &l);
    if (rc) {
        check_fail(__FILE__, __LINE__, "layer_create(%s): %s", text, crema_errmsg());
        return NULL;
    }
    if (l->kind->forward(l, b, t)) {
        check_fail(__FILE__, __LINE__, "forward(%s): %s", text, crema_errmsg());
        layer_free(l);
        return NULL;
    }
    return l;
}

static void argmax_exact(void)
{
    /* 2 items x 5 values; item 1 has a tie between 1 and 4 (larger index first). */
    struct tensor *b = lt_tensor(2, 2, 5), *t = tensor_new();
    lt_set(b, (float[]){ 0.1f, 0.9f, -1.f, 0.5f, 0.2f, 3.f, 7.f, 1.f, 0.f, 7.f });
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'ArgMax'", &b, 1, &t, 1, &p);
    if (l) {
        CHECK(l->kind->backward == NULL);
        LT_SHAPE(t, 2, 1, 1);
        LT_NEAR(tensor_data(t), ((float[]){ 1, 4 }), 2, 0);
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'ArgMax' argmax_param { top_k: 3 out_max_val: true }", &b, 1, &t, 1, &p);
    if (l) {
        LT_SHAPE(t, 2, 2, 3);
        LT_NEAR(tensor_data(t), ((float[]){ 1, 3, 4, 0.9f, 0.5f, 0.2f, 4, 1, 0, 7, 7, 3 }), 12, 0);
    }
    layer_free(l);
    lt_free_param(p);
    /* along axis 1 of 2x3x2: top 2 indices per (item, position) */
    struct tensor *c = lt_tensor(3, 2, 3, 2);
    lt_set(c, (float[]){ 1, 6, 2, 5, 3, 4, /* item 1 */ 9, 0, 8, 0, 7, 1 });
    l = run("type: 'ArgMax' argmax_param { axis: 1 top_k: 2 }", &c, 1, &t, 1, &p);
    if (l) {
        LT_SHAPE(t, 2, 2, 2);
        LT_NEAR(tensor_data(t), ((float[]){ 2, 0, 1, 1, 0, 2, 1, 1 }), 8, 0);
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'ArgMax' argmax_param { axis: 1 top_k: 2 out_max_val: true }", &c, 1, &t, 1, &p);
    if (l)
        LT_NEAR(tensor_data(t), ((float[]){ 3, 6, 2, 5, 9, 1, 8, 0 }), 8, 0);
    layer_free(l);
    lt_free_param(p);
    Caffe__LayerParameter *bad = lt_param("type: 'ArgMax' argmax_param { top_k: 11 }");
    LT_CREATE_FAILS(bad, &b, 1, &t, 1, "top_k");
    lt_free_param(bad);
    tensor_free(b);
    tensor_free(c);
    tensor_free(t);
}

static void eltwise_max_ties_and_sum(void)
{
    struct tensor *b[3] = { lt_tensor(1, 4), lt_tensor(1, 4), lt_tensor(1, 4) }, *t = tensor_new();
    lt_set(b[0], (float[]){ 1, 2, 3, 4 });
    lt_set(b[1], (float[]){ 1, 5, 0, 4 });
    lt_set(b[2], (float[]){ 0, 5, 3, 9 });
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'Eltwise' eltwise_param { operation: MAX }", b, 3, &t, 1, &p);
    if (l) {
        LT_NEAR(tensor_data(t), ((float[]){ 1, 5, 3, 9 }), 4, 0);
        float *dy = tensor_diff(t);
        for (int i = 0; i < 4; i++)
            dy[i] = (float)(i + 1);
        bool pd[3] = { true, true, true };
        CHECK_OK(l->kind->backward(l, &t, pd, b));
        /* ties: element 0 goes to bottom 1, not 0; in element 1 bottom 2's 5 does not beat bottom 1's */
        LT_NEAR(tensor_diff(b[0]), ((float[]){ 0, 0, 3, 0 }), 4, 0);
        LT_NEAR(tensor_diff(b[1]), ((float[]){ 1, 2, 0, 0 }), 4, 0);
        LT_NEAR(tensor_diff(b[2]), ((float[]){ 0, 0, 0, 4 }), 4, 0);
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Eltwise' eltwise_param { coeff: 2 coeff: -1 coeff: 0.5 }", b, 3, &t, 1, &p);
    if (l)
        LT_NEAR(tensor_data(t), ((float[]){ 1, 1.5f, 7.5f, 8.5f }), 4, 1e-6);
    layer_free(l);
    lt_free_param(p);
    lt_free(b, 3);
    tensor_free(t);
}

static void reduction_and_softmax_values(void)
{
    struct tensor *b = lt_tensor(2, 2, 3), *t = tensor_new();
    lt_set(b, (float[]){ 1, -2, 3, -4, 5, 6 });
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'Reduction' reduction_param { operation: SUM axis: 0 }", &b, 1, &t, 1, &p);
    if (l) {
        CHECK_EQ_INT(t->num_axes, 0);
        LT_NEAR(tensor_data(t), ((float[]){ 9 }), 1, 0);
    }
    layer_free(l);
    lt_free_param(p);
    const char *ops[] = { "ASUM", "SUMSQ", "MEAN" };
    const float want[3][2] = { { 6 * 0.5f, 15 * 0.5f }, { 14 * 0.5f, 77 * 0.5f }, { 2.f / 3 * 0.5f, 7.f / 3 * 0.5f } };
    for (int i = 0; i < 3; i++) {
        char text[128];
        snprintf(text, sizeof text, "type: 'Reduction' reduction_param { operation: %s axis: 1 coeff: 0.5 }", ops[i]);
        l = run(text, &b, 1, &t, 1, &p);
        if (l) {
            LT_SHAPE(t, 2);
            LT_NEAR(tensor_data(t), want[i], 2, 1e-6);
        }
        layer_free(l);
        lt_free_param(p);
    }
    l = run("type: 'Softmax'", &b, 1, &t, 1, &p);
    if (l) {
        float ref[6];
        for (int r = 0; r < 2; r++) {
            const float *x = tensor_data(b) + 3 * r;
            double m = fmax(fmax(x[0], x[1]), x[2]), s = 0;
            for (int k = 0; k < 3; k++)
                s += exp(x[k] - m);
            for (int k = 0; k < 3; k++)
                ref[3 * r + k] = (float)(exp(x[k] - m) / s);
        }
        LT_NEAR(tensor_data(t), ref, 6, 1e-7);
    }
    layer_free(l);
    lt_free_param(p);
    tensor_free(b);
    tensor_free(t);
}

/* ---- shapes and sharing ---- */

static void shapes_and_sharing(void)
{
    struct tensor *b = lt_tensor(4, 2, 3, 4, 5), *t = tensor_new();
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'Flatten'", &b, 1, &t, 1, &p);
    if (l) {
        LT_SHAPE(t, 2, 60);
        CHECK(tensor_data(t) == tensor_data(b));
        CHECK(tensor_diff(t) == tensor_diff(b));
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Flatten' flatten_param { axis: 1 end_axis: 2 }", &b, 1, &t, 1, &p);
    if (l)
        LT_SHAPE(t, 2, 12, 5);
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 dim: 4 } }", &b, 1, &t, 1, &p);
    if (l) {
        LT_SHAPE(t, 2, 15, 4);
        CHECK(tensor_data(t) == tensor_data(b));
        CHECK(tensor_diff(t) == tensor_diff(b));
    }
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Reshape' reshape_param { axis: 1 num_axes: 2 shape { dim: -1 } }", &b, 1, &t, 1, &p);
    if (l)
        LT_SHAPE(t, 2, 12, 5);
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Reshape' reshape_param { axis: -1 num_axes: 0 shape { dim: 1 } }", &b, 1, &t, 1, &p);
    if (l)
        LT_SHAPE(t, 2, 3, 4, 5, 1);
    layer_free(l);
    lt_free_param(p);
    l = run("type: 'Tile' tile_param { axis: 1 tiles: 3 }", &b, 1, &t, 1, &p);
    if (l)
        LT_SHAPE(t, 2, 9, 4, 5);
    layer_free(l);
    lt_free_param(p);
    struct tensor *sl[3] = { tensor_new(), tensor_new(), tensor_new() };
    l = run("type: 'Slice' slice_param { axis: 3 slice_point: 1 slice_point: 4 }", &b, 1, sl, 3, &p);
    if (l) {
        LT_SHAPE(sl[0], 2, 3, 4, 1);
        LT_SHAPE(sl[1], 2, 3, 4, 3);
        LT_SHAPE(sl[2], 2, 3, 4, 1);
        CHECK(tensor_data(sl[1])[0] == tensor_data(b)[1]);
    }
    layer_free(l);
    lt_free_param(p);
    lt_free(sl, 3);
    /* Parameter: the top is the blob */
    l = run("type: 'Parameter' parameter_param { shape { dim: 2 dim: 3 } }", NULL, 0, &t, 1, &p);
    if (l) {
        LT_SHAPE(t, 2, 3);
        CHECK_EQ_INT(l->n_blobs, 1);
        CHECK(tensor_data(t) == tensor_data(l->blobs[0]));
        CHECK(tensor_diff(t) == tensor_diff(l->blobs[0]));
    }
    layer_free(l);
    lt_free_param(p);
    tensor_free(b);
    tensor_free(t);
}

static void filter_forward_shapes(void)
{
    struct tensor *b[2] = { lt_tensor(2, 4, 2), lt_tensor(1, 4) }, *t = tensor_new();
    lt_set(b[0], (float[]){ 0, 1, 2, 3, 4, 5, 6, 7 });
    lt_set(b[1], (float[]){ 0, 1, 0, 1 });
    Caffe__LayerParameter *p = lt_param("type: 'Filter'");
    struct layer *l = NULL;
    CHECK_OK(layer_create(p, CAFFE__PHASE__TRAIN, NULL, b, 2, &t, 1, &l));
    if (l) {
        LT_SHAPE(t, 4, 2); /* set-up sizes by the batch, as Caffe */
        CHECK_OK(l->kind->forward(l, b, &t));
        LT_SHAPE(t, 2, 2);
        LT_NEAR(tensor_data(t), ((float[]){ 2, 3, 6, 7 }), 4, 0);
        CHECK(l->kind->allow_force_backward && !l->kind->allow_force_backward(l, 1));
        CHECK(l->kind->allow_force_backward(l, 0));
        bool pd[2] = { true, true };
        CHECK(l->kind->backward(l, &t, pd, b) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "selector") != NULL, "message: %s", crema_errmsg());
    }
    layer_free(l);
    lt_free_param(p);
    lt_free(b, 2);
    tensor_free(t);
}

static void batch_reindex_values(void)
{
    struct tensor *b[2] = { lt_tensor(2, 3, 2), lt_tensor(1, 4) }, *t = tensor_new();
    lt_set(b[0], (float[]){ 0, 1, 10, 11, 20, 21 });
    lt_set(b[1], (float[]){ 2, 0, 2, 1 });
    Caffe__LayerParameter *p;
    struct layer *l = run("type: 'BatchReindex'", b, 2, &t, 1, &p);
    if (l) {
        LT_SHAPE(t, 4, 2);
        LT_NEAR(tensor_data(t), ((float[]){ 20, 21, 0, 1, 20, 21, 10, 11 }), 8, 0);
        float *dy = tensor_diff(t);
        for (int i = 0; i < 8; i++)
            dy[i] = (float)i;
        bool pd[2] = { true, false };
        CHECK_OK(l->kind->backward(l, &t, pd, b));
        LT_NEAR(tensor_diff(b[0]), ((float[]){ 2, 3, 6, 7, 0 + 4, 1 + 5 }), 6, 0);
        lt_set(b[1], (float[]){ 2, 0, 3, 1 });
        CHECK(l->kind->forward(l, b, &t) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "index 2") != NULL, "message: %s", crema_errmsg());
    }
    layer_free(l);
    lt_free_param(p);
    lt_free(b, 2);
    tensor_free(t);
}

/* ---- errors ---- */

static void errors(void)
{
    struct tensor *b[2] = { lt_tensor(3, 2, 3, 4), lt_tensor(3, 2, 3, 5) }, *t[3] = { tensor_new(), tensor_new(), tensor_new() };
    struct {
        const char *text;
        int nb, nt;
        const char *part;
    } cases[] = {
        { "type: 'Concat' concat_param { axis: 1 }", 2, 1, "may differ only on the concat axis" },
        { "type: 'Concat' concat_param { axis: 1 concat_dim: 1 }", 2, 1, "not both" },
        { "type: 'Concat' concat_param { axis: 5 }", 2, 1, "out of range" },
        { "type: 'Eltwise'", 2, 1, "bottom 1 has shape" },
        { "type: 'Eltwise' eltwise_param { coeff: 1 }", 2, 1, "coefficients for 2 bottoms" },
        { "type: 'Eltwise' eltwise_param { operation: PROD coeff: 1 coeff: 2 }", 2, 1, "only allowed with operation SUM" },
        { "type: 'Slice' slice_param { slice_point: 2 slice_point: 1 }", 1, 3, "not greater than the previous" },
        { "type: 'Slice' slice_param { slice_point: 1 }", 1, 3, "1 points for 3 tops" },
        { "type: 'Slice' slice_param { axis: 2 slice_point: 4 }", 1, 2, "not inside the axis" },
        { "type: 'Slice' slice_param { axis: 2 }", 1, 3, "do not evenly divide" },
        { "type: 'Reshape' reshape_param { shape { dim: -1 dim: -1 } }", 1, 1, "both -1" },
        { "type: 'Reshape' reshape_param { shape { dim: 5 dim: -1 } }", 1, 1, "not divisible" },
        { "type: 'Reshape' reshape_param { shape { dim: 2 dim: 3 } }", 1, 1, "does not hold" },
        { "type: 'Reshape' reshape_param { axis: 2 shape { dim: 0 dim: 0 } }", 1, 1, "no axis 3 to copy" },
        { "type: 'Flatten' flatten_param { axis: 2 end_axis: 1 }", 1, 1, "comes before" },
        { "type: 'Tile' tile_param { tiles: 0 }", 1, 1, "must be positive" },
        { "type: 'Tile'", 1, 1, "tiles must be given" },
        { "type: 'Softmax' softmax_param { axis: 3 }", 1, 1, "out of range" },
        { "type: 'Reduction' reduction_param { axis: -4 }", 1, 1, "out of range" },
        { "type: 'BatchReindex'", 2, 1, "index bottom must have 1 axis" },
        { "type: 'Filter'", 2, 2, "one top per filtered bottom" },
        { "type: 'Silence'", 1, 1, "at most 0 tops" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Caffe__LayerParameter *p = lt_param(cases[i].text);
        if (!p)
            continue;
        LT_CREATE_FAILS(p, b, cases[i].nb, t, cases[i].nt, cases[i].part);
        lt_free_param(p);
    }
    lt_free(b, 2);
    lt_free(t, 3);
}

CHECK_MAIN(CASE(eltwise_gradients), CASE(concat_slice_gradients), CASE(reshaping_gradients),
           CASE(reduction_gradients), CASE(softmax_gradients), CASE(filter_reindex_silence_gradients),
           CASE(parameter_gradient), CASE(argmax_exact), CASE(eltwise_max_ties_and_sum),
           CASE(reduction_and_softmax_values), CASE(shapes_and_sharing), CASE(filter_forward_shapes),
           CASE(batch_reindex_values), CASE(errors))
