/* RNN, LSTM and LSTMUnit: gradients by finite differences, Caffe's
 * expose_hidden and cont semantics, shape errors. (Their Caffe outputs are
 * checked by test_golden: layers/rnn*, layers/lstm*.) */
#include "check.h"
#include "gradcheck.h"


#include <math.h>
#include <string.h>

static Caffe__FillerParameter weight_filler = CAFFE__FILLER_PARAMETER__INIT;
static Caffe__FillerParameter bias_filler = CAFFE__FILLER_PARAMETER__INIT;

/* A layer parameter for type with recurrent_param; the caller owns rp. */
static void rec_param(Caffe__LayerParameter *p, Caffe__RecurrentParameter *rp, const char *type, int num_output,
                      bool expose)
{
    static const Caffe__LayerParameter lp_init = CAFFE__LAYER_PARAMETER__INIT;
    static const Caffe__RecurrentParameter rp_init = CAFFE__RECURRENT_PARAMETER__INIT;
    *p = lp_init;
    *rp = rp_init;
    weight_filler.type = "uniform";
    weight_filler.has_min = weight_filler.has_max = true;
    weight_filler.min = -0.5f;
    weight_filler.max = 0.5f;
    bias_filler.type = "uniform";
    bias_filler.has_min = bias_filler.has_max = true;
    bias_filler.min = -0.3f;
    bias_filler.max = 0.3f;
    p->name = (char *)"rec";
    p->type = (char *)type;
    rp->has_num_output = true;
    rp->num_output = (uint32_t)num_output;
    rp->has_expose_hidden = true;
    rp->expose_hidden = expose;
    rp->weight_filler = &weight_filler;
    rp->bias_filler = &bias_filler;
    p->recurrent_param = rp;
}

static struct tensor *make(int n, const int *shape, unsigned seed)
{
    struct tensor *t = tensor_new();
    CHECK_OK(tensor_reshape(t, n, shape));
    gradcheck_fill(t, -1.f, 1.f, seed);
    return t;
}

/* cont for T x N: 0 at t = 0 unless first_one, and a restart of stream 1 at t = 2. */
static struct tensor *make_cont(int T, int N, bool first_one)
{
    int s[2] = { T, N };
    struct tensor *t = tensor_new();
    CHECK_OK(tensor_reshape(t, 2, s));
    float *d = tensor_data(t);
    for (int i = 0; i < T; i++)
        for (int n = 0; n < N; n++)
            d[i * N + n] = (i == 0 && !first_one) || (i == 2 && n == 1) ? 0.f : 1.f;
    return t;
}

static void free_all(struct tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        tensor_free(t[i]);
}

static void lstm_unit_gradient(void)
{
    int cs[3] = { 1, 3, 4 }, xs[3] = { 1, 3, 16 }, ks[2] = { 1, 3 };
    struct tensor *b[3] = { make(3, cs, 1), make(3, xs, 2), tensor_new() };
    CHECK_OK(tensor_reshape(b[2], 2, ks));
    float *cont = tensor_data(b[2]);
    cont[0] = 1.f, cont[1] = 0.f, cont[2] = 1.f;
    Caffe__LayerParameter p = CAFFE__LAYER_PARAMETER__INIT;
    p.name = (char *)"unit";
    p.type = (char *)"LSTMUnit";
    bool skip[3] = { false, false, true };
    struct gradcheck_opts o = { .step = 1e-2f, .threshold = 1e-3f, .skip_bottom = skip, .top_only = -1, .seed = 5 };
    CHECK_OK(gradcheck_layer(&p, CAFFE__PHASE__TRAIN, b, 3, 2, &o));
    free_all(b, 3);
}

static void lstm_unit_forward_values(void)
{
    int cs[3] = { 1, 2, 1 }, xs[3] = { 1, 2, 4 }, ks[2] = { 1, 2 };
    struct tensor *b[3] = { tensor_new(), tensor_new(), tensor_new() };
    CHECK_OK(tensor_reshape(b[0], 3, cs));
    CHECK_OK(tensor_reshape(b[1], 3, xs));
    CHECK_OK(tensor_reshape(b[2], 2, ks));
    const float x[8] = { 0.5f, -1.f, 2.f, 0.3f, 0.5f, -1.f, 2.f, 0.3f };
    memcpy(tensor_data(b[1]), x, sizeof x);
    tensor_data(b[0])[0] = 0.7f;
    tensor_data(b[0])[1] = 0.7f;
    tensor_data(b[2])[0] = 1.f;
    tensor_data(b[2])[1] = 0.f; /* stream 1 starts over: c_prev is dropped */
    struct tensor *t[2] = { tensor_new(), tensor_new() };
    Caffe__LayerParameter p = CAFFE__LAYER_PARAMETER__INIT;
    p.name = (char *)"unit";
    p.type = (char *)"LSTMUnit";
    struct layer *l = NULL;
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TRAIN, NULL, b, 3, t, 2, &l));
    if (l) {
        CHECK_OK(l->kind->forward(l, b, t));
        double sg = 1 / (1 + exp(-0.5)), sf = 1 / (1 + exp(1.0)), so = 1 / (1 + exp(-2.0)), g = tanh(0.3);
        double c0 = sf * 0.7 + sg * g, c1 = sg * g;
        CHECK_MSG(fabs(tensor_data(t[0])[0] - c0) < 1e-6, "c[0]: expected %g, got %g", c0, tensor_data(t[0])[0]);
        CHECK_MSG(fabs(tensor_data(t[0])[1] - c1) < 1e-6, "c[1]: expected %g, got %g", c1, tensor_data(t[0])[1]);
        CHECK_MSG(fabs(tensor_data(t[1])[0] - so * tanh(c0)) < 1e-6, "h[0]: expected %g, got %g", so * tanh(c0),
                  tensor_data(t[1])[0]);
        CHECK(!l->kind->allow_force_backward(l, 2));
        CHECK(l->kind->allow_force_backward(l, 0) && l->kind->allow_force_backward(l, 1));
        bool pd[3] = { true, true, true };
        CHECK(l->kind->backward(l, t, pd, b) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "sequence indicators") != NULL, "message: %s", crema_errmsg());
    }
    layer_free(l);
    free_all(b, 3);
    free_all(t, 2);
}

static void lstm_unit_shape_errors(void)
{
    int cs[3] = { 1, 3, 4 }, bad_x[3] = { 1, 3, 12 }, ks[2] = { 1, 3 };
    struct tensor *b[3] = { make(3, cs, 1), make(3, bad_x, 2), tensor_new() };
    CHECK_OK(tensor_reshape(b[2], 2, ks));
    struct tensor *t[2] = { tensor_new(), tensor_new() };
    Caffe__LayerParameter p = CAFFE__LAYER_PARAMETER__INIT;
    p.name = (char *)"unit";
    p.type = (char *)"LSTMUnit";
    struct layer *l = NULL;
    CHECK(layer_create(&p, CAFFE__PHASE__TRAIN, NULL, b, 3, t, 2, &l) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "needs 4 x 4 = 16") != NULL, "message: %s", crema_errmsg());
    int bad_c[3] = { 2, 3, 4 };
    CHECK_OK(tensor_reshape(b[0], 3, bad_c));
    CHECK(layer_create(&p, CAFFE__PHASE__TRAIN, NULL, b, 3, t, 2, &l) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "bottom 0 (c_prev) must have 1 time step") != NULL, "message: %s",
              crema_errmsg());
    free_all(b, 3);
    free_all(t, 2);
}

/* Gradient check of RNN or LSTM over x (T=4, N=3, x of 2x2 per step),
 * optional x_static, and with exposed h_0 (c_0) skipped: Caffe gives them
 * no gradient and ignores the h_T / c_T diffs, so only top 0 is checked. */
static void check_recurrent(const char *type, bool with_static, bool expose)
{
    int n_recur = strcmp(type, "LSTM") == 0 ? 2 : 1;
    int T = 4, N = 3, H = 3;
    int xs[4] = { T, N, 2, 2 }, ss[2] = { N, 3 }, hs[3] = { 1, N, H };
    struct tensor *b[5];
    int nb = 0;
    b[nb++] = make(4, xs, 11);
    b[nb++] = make_cont(T, N, expose);
    if (with_static)
        b[nb++] = make(2, ss, 12);
    for (int j = 0; expose && j < n_recur; j++)
        b[nb++] = make(3, hs, 13 + (unsigned)j);
    bool skip[5] = { false, true, false, true, true };
    if (!with_static)
        skip[2] = true; /* then bottom 2 is h_0 */
    Caffe__LayerParameter p;
    Caffe__RecurrentParameter rp;
    rec_param(&p, &rp, type, H, expose);
    struct gradcheck_opts o = { .step = 1e-2f, .threshold = 2e-3f, .skip_bottom = skip, .top_only = 0, .seed = 3 };
    int n_top = expose ? 1 + n_recur : 1;
    CHECK_OK(gradcheck_layer(&p, CAFFE__PHASE__TRAIN, b, nb, n_top, &o));
    free_all(b, nb);
}

static void rnn_gradient(void) { check_recurrent("RNN", false, false); }
static void rnn_static_gradient(void) { check_recurrent("RNN", true, false); }
static void rnn_static_expose_gradient(void) { check_recurrent("RNN", true, true); }
static void lstm_gradient(void) { check_recurrent("LSTM", false, false); }
static void lstm_static_gradient(void) { check_recurrent("LSTM", true, false); }
static void lstm_expose_gradient(void) { check_recurrent("LSTM", false, true); }
static void lstm_static_expose_gradient(void) { check_recurrent("LSTM", true, true); }

/* expose_hidden: h_T / c_T are the last step's state; h_0 / c_0 get zero
 * diff; without exposure a second forward continues from the first's h_T. */
static void lstm_expose_and_carry(void)
{
    int T = 3, N = 2, H = 4;
    int xs[3] = { T, N, 5 }, hs[3] = { 1, N, H };
    struct tensor *x = make(3, xs, 21), *cont = make_cont(T, N, true);
    struct tensor *h0 = make(3, hs, 22), *c0 = make(3, hs, 23);
    Caffe__LayerParameter p, pe;
    Caffe__RecurrentParameter rp, rpe;
    rec_param(&p, &rp, "LSTM", H, false);
    rec_param(&pe, &rpe, "LSTM", H, true);
    struct rng rng;
    rng_seed(&rng, 9);
    struct tensor *top[3] = { tensor_new(), tensor_new(), tensor_new() };
    struct tensor *etop[3] = { tensor_new(), tensor_new(), tensor_new() };
    struct tensor *b[4] = { x, cont, h0, c0 };
    struct layer *l = NULL, *le = NULL;
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TRAIN, &rng, b, 2, top, 1, &l));
    CHECK_OK(layer_create(&pe, CAFFE__PHASE__TRAIN, &rng, b, 4, etop, 3, &le));
    if (!l || !le)
        goto out;
    CHECK(!l->kind->allow_force_backward(l, 1));
    CHECK(l->kind->allow_force_backward(l, 0) && l->kind->allow_force_backward(l, 2));
    for (int i = 0; i < l->n_blobs; i++)
        CHECK_OK(tensor_copy_from(le->blobs[i], l->blobs[i], false));
    /* First forward from zero state (cont is 1 at t = 0 here), then feed its
     * final state to the exposed layer and compare with a second forward. */
    int nh = N * H;
    CHECK_OK(l->kind->forward(l, b, top));
    CHECK_OK(l->kind->forward(l, b, top)); /* continues from the state in the layer */
    /* c_T is not visible without exposure: get it by running the exposed layer
     * from zero state first. */
    tensor_zero_data(h0);
    tensor_zero_data(c0);
    CHECK_OK(le->kind->forward(le, b, etop));
    memcpy(tensor_data(h0), tensor_data(etop[1]), (size_t)nh * sizeof(float));
    memcpy(tensor_data(c0), tensor_data(etop[2]), (size_t)nh * sizeof(float));
    CHECK_OK(le->kind->forward(le, b, etop));
    float worst = 0;
    for (int i = 0; i < T * nh; i++)
        worst = fmaxf(worst, fabsf(tensor_data(top[0])[i] - tensor_data(etop[0])[i]));
    CHECK_MSG(worst < 1e-6f, "carried state vs exposed h_0/c_0: max difference %g", worst);
    for (int i = 0; i < nh; i++)
        CHECK_MSG(tensor_data(etop[1])[i] == tensor_data(etop[0])[(T - 1) * nh + i], "h_T[%d] is not h's last step",
                  i);
    /* Backward: h_0, c_0 diffs are zero (even if dirty before); the h_T / c_T
     * diffs change nothing. */
    for (int i = 0; i < nh; i++)
        tensor_diff(h0)[i] = tensor_diff(c0)[i] = 5.f;
    gradcheck_fill(etop[0], -1.f, 1.f, 30);
    memcpy(tensor_diff(etop[0]), tensor_data(etop[0]), (size_t)T * nh * sizeof(float));
    CHECK_OK(le->kind->forward(le, b, etop));
    bool pd[4] = { true, false, true, true };
    CHECK_OK(le->kind->backward(le, etop, pd, b));
    float *dx1 = malloc(x->count * sizeof(float));
    memcpy(dx1, tensor_diff(x), x->count * sizeof(float));
    for (int i = 0; i < nh; i++) {
        CHECK_MSG(tensor_diff(h0)[i] == 0.f && tensor_diff(c0)[i] == 0.f, "h_0/c_0 diff %d: %g %g", i,
                  tensor_diff(h0)[i], tensor_diff(c0)[i]);
        tensor_diff(etop[1])[i] = 3.f;
        tensor_diff(etop[2])[i] = -2.f;
    }
    CHECK_OK(le->kind->backward(le, etop, pd, b));
    for (size_t i = 0; i < x->count; i++)
        CHECK_MSG(tensor_diff(x)[i] == dx1[i], "x diff %zu changed with the h_T/c_T diffs: %g vs %g", i,
                  tensor_diff(x)[i], dx1[i]);
    free(dx1);
    bool pd_cont[4] = { true, true, true, true };
    CHECK(le->kind->backward(le, etop, pd_cont, b) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "sequence indicators") != NULL, "message: %s", crema_errmsg());
out:
    layer_free(l);
    layer_free(le);
    free_all(top, 3);
    free_all(etop, 3);
    struct tensor *in[4] = { x, cont, h0, c0 };
    free_all(in, 4);
}

static void expect_create_error(const Caffe__LayerParameter *p, struct tensor **b, int nb, int nt, const char *want)
{
    struct tensor *t[3] = { tensor_new(), tensor_new(), tensor_new() };
    struct rng rng;
    rng_seed(&rng, 1);
    struct layer *l = NULL;
    int rc = layer_create(p, CAFFE__PHASE__TRAIN, &rng, b, nb, t, nt, &l);
    CHECK_MSG(rc != 0, "expected an error containing \"%s\", got success", want);
    if (rc)
        CHECK_MSG(strstr(crema_errmsg(), want) != NULL, "expected a message containing \"%s\", got \"%s\"", want,
                  crema_errmsg());
    layer_free(l);
    free_all(t, 3);
}

static void recurrent_shape_errors(void)
{
    int xs[3] = { 4, 3, 5 }, x2[2] = { 4, 3 }, hs[3] = { 1, 3, 6 }, bad_h[3] = { 1, 3, 5 }, ss[2] = { 2, 3 };
    struct tensor *x = make(3, xs, 1), *xflat = make(2, x2, 1), *cont = make_cont(4, 3, false);
    struct tensor *bad_cont = make_cont(3, 3, false), *h0 = make(3, hs, 2), *c0 = make(3, hs, 3);
    struct tensor *hbad = make(3, bad_h, 4), *sbad = make(2, ss, 5);
    Caffe__LayerParameter p;
    Caffe__RecurrentParameter rp;
    rec_param(&p, &rp, "RNN", 6, false);
    struct tensor *b1[2] = { x, bad_cont };
    expect_create_error(&p, b1, 2, 1, "bottom 1 (cont) must be T x N = 4 x 3");
    struct tensor *b2[2] = { xflat, cont };
    expect_create_error(&p, b2, 2, 1, "at least 3 axes");
    struct tensor *b3[3] = { x, cont, sbad };
    expect_create_error(&p, b3, 3, 1, "bottom 2 (x_static) must be N x ... = 3 x ...");
    rp.num_output = 0;
    struct tensor *b4[2] = { x, cont };
    expect_create_error(&p, b4, 2, 1, "num_output must be in 1..2^28, got 0");
    rec_param(&p, &rp, "LSTM", 6, true);
    struct tensor *b5[3] = { x, cont, h0 };
    expect_create_error(&p, b5, 3, 3, "takes 4 or 5 bottoms");
    struct tensor *b6[4] = { x, cont, h0, hbad };
    expect_create_error(&p, b6, 4, 3, "bottom 3 (c_0) must be 1 x 3 x 6");
    struct tensor *b7[4] = { x, cont, h0, c0 };
    expect_create_error(&p, b7, 4, 1, "takes 3 tops");

    /* Reshape to another T is refused, as Caffe's unrolled net is fixed. */
    rec_param(&p, &rp, "RNN", 6, false);
    struct tensor *t[1] = { tensor_new() };
    struct layer *l = NULL;
    struct rng rng;
    rng_seed(&rng, 1);
    struct tensor *b8[2] = { x, cont };
    CHECK_OK(layer_create(&p, CAFFE__PHASE__TRAIN, &rng, b8, 2, t, 1, &l));
    if (l) {
        int xs3[3] = { 3, 3, 5 }, cs3[2] = { 3, 3 };
        CHECK_OK(tensor_reshape(x, 3, xs3));
        CHECK_OK(tensor_reshape(cont, 2, cs3));
        CHECK(l->kind->reshape(l, b8, t) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "set up for 4") != NULL, "message: %s", crema_errmsg());
        /* A new batch size is fine. */
        int xs4[3] = { 4, 2, 5 }, cs4[2] = { 4, 2 };
        CHECK_OK(tensor_reshape(x, 3, xs4));
        CHECK_OK(tensor_reshape(cont, 2, cs4));
        CHECK_OK(l->kind->reshape(l, b8, t));
        CHECK_EQ_INT(t[0]->shape[1], 2);
        CHECK_OK(l->kind->forward(l, b8, t));
    }
    layer_free(l);
    tensor_free(t[0]);
    struct tensor *all[8] = { x, xflat, cont, bad_cont, h0, c0, hbad, sbad };
    free_all(all, 8);
}

CHECK_MAIN(CASE(lstm_unit_gradient), CASE(lstm_unit_forward_values), CASE(lstm_unit_shape_errors),
           CASE(rnn_gradient), CASE(rnn_static_gradient), CASE(rnn_static_expose_gradient), CASE(lstm_gradient),
           CASE(lstm_static_gradient), CASE(lstm_expose_gradient), CASE(lstm_static_expose_gradient),
           CASE(lstm_expose_and_carry), CASE(recurrent_shape_errors))
