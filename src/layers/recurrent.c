/* RNN and LSTM (Caffe's RecurrentLayer family): the computation Caffe's
 * unrolled internal net performs, done directly step by step, on any backend
 * (GEMMs through be->math, the rest through be->recurrent). */
#include "layers/layer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum rec_arch { REC_RNN, REC_LSTM };

/* Where each learnable blob sits in l->blobs; -1 when absent. Caffe orders
 * them as its unrolled net meets them: input transform, static transform,
 * then the recurrent (and, for RNN, output) transforms. */
struct rec_slots {
    int wx, bx, ws, wh, wo, bo;
};

struct rec {
    enum rec_arch arch;
    int T, N, H, G; /* G: gate width, H for RNN and 4H for LSTM */
    int K, KS;      /* input sizes of x (from axis 2) and x_static (from axis 1) */
    bool expose, has_static;
    int n_recur;    /* recurrent states: h (RNN), h and c (LSTM) */
    struct rec_slots s;
    /* Buffers for the current T x N on the layer's backend; h and c hold
     * T+1 steps, step 0 being the initial state (kept between forwards when
     * not exposed, as Caffe copies h_T into h_0). */
    struct tensor *xg, *sg, *gate, *hc, *h, *c, *dgate, *dh, *dc, *dtmp, *ones, *dstatic;
    size_t steps_n; /* T*N the buffers were sized for */
};

static void rec_free_buffers(struct rec *r)
{
    struct tensor **bufs[] = { &r->xg, &r->sg, &r->gate, &r->hc, &r->h, &r->c, &r->dgate,
                               &r->dh, &r->dc, &r->dtmp, &r->ones, &r->dstatic };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        tensor_free(*bufs[i]);
        *bufs[i] = NULL;
    }
    r->steps_n = 0;
}

static void rec_destroy(struct layer *l)
{
    struct rec *r = l->priv;
    if (r)
        rec_free_buffers(r);
    free(r);
    l->priv = NULL;
}

/* Row-major C = A' B' + beta C (Caffe's caffe_cpu_gemm) on the layer's backend. */
static void rec_gemm(const struct layer *l, bool ta, bool tb, int m, int n, int k, const float *a, const float *b,
                     float beta, float *c)
{
    l->be->math->gemm(l->be, ta, tb, m, n, k, 1.f, a, b, beta, c);
}

static const char *rec_type(const struct rec *r)
{
    return r->arch == REC_RNN ? "RNN" : "LSTM";
}

static int rec_check_blob(struct layer *l, int i, const char *what, int d0, int d1)
{
    const struct tensor *t = l->blobs[i];
    int n = d1 > 0 ? 2 : 1;
    if (t->num_axes != n || t->shape[0] != d0 || (n == 2 && t->shape[1] != d1)) {
        char got[128];
        if (n == 2)
            return err_set(CREMA_ERR_SHAPE, "layer %s (%s): blob %d (%s) should be %d x %d, got %s", l->name,
                           rec_type(l->priv), i, what, d0, d1, tensor_shape_string(t, got, sizeof got));
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): blob %d (%s) should have shape %d, got %s", l->name,
                       rec_type(l->priv), i, what, d0, tensor_shape_string(t, got, sizeof got));
    }
    return CREMA_OK;
}

/* Shapes of x and cont, and of x_static; also used on every reshape. */
static int rec_check_inputs(struct layer *l, struct tensor **bottom, int *T, int *N)
{
    struct rec *r = l->priv;
    char s[128];
    const struct tensor *x = bottom[0], *cont = bottom[1];
    /* Caffe's input transform is an InnerProduct on axis 2: x needs 3 axes. */
    if (x->num_axes < 3)
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom 0 (x) must be T x N x ... with at least 3 axes, got %s",
                       l->name, rec_type(r), tensor_shape_string(x, s, sizeof s));
    *T = x->shape[0];
    *N = x->shape[1];
    if (cont->num_axes != 2 || cont->shape[0] != *T || cont->shape[1] != *N)
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom 1 (cont) must be T x N = %d x %d, got %s", l->name,
                       rec_type(r), *T, *N, tensor_shape_string(cont, s, sizeof s));
    if (r->has_static) {
        const struct tensor *xs = bottom[2];
        if (xs->num_axes < 2 || xs->shape[0] != *N)
            return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom 2 (x_static) must be N x ... = %d x ..., got %s",
                           l->name, rec_type(r), *N, tensor_shape_string(xs, s, sizeof s));
    }
    return CREMA_OK;
}

static int rec_setup(struct layer *l, struct tensor **bottom, struct tensor **top, enum rec_arch arch)
{
    static const Caffe__RecurrentParameter def = CAFFE__RECURRENT_PARAMETER__INIT;
    static const Caffe__FillerParameter def_filler = CAFFE__FILLER_PARAMETER__INIT;
    const Caffe__RecurrentParameter *rp = l->param->recurrent_param ? l->param->recurrent_param : &def;
    struct rec *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = r;
    r->arch = arch;
    if (rp->num_output == 0 || rp->num_output > (1u << 28))
        return err_set(CREMA_ERR_INVALID, "layer %s (%s): recurrent_param.num_output must be in 1..2^28, got %u", l->name,
                       rec_type(r), rp->num_output);
    r->H = (int)rp->num_output;
    r->G = arch == REC_LSTM ? 4 * r->H : r->H;
    r->expose = rp->expose_hidden;
    r->n_recur = arch == REC_LSTM ? 2 : 1;
    int min_b = 2 + (r->expose ? r->n_recur : 0);
    int want_t = 1 + (r->expose ? r->n_recur : 0);
    if (l->n_bottom < min_b || l->n_bottom > min_b + 1)
        return err_set(CREMA_ERR_INVALID,
                       "layer %s (%s): takes %d or %d bottoms (x, cont, [x_static]%s), got %d", l->name, rec_type(r),
                       min_b, min_b + 1,
                       r->expose ? (arch == REC_LSTM ? ", h_0, c_0 with expose_hidden" : ", h_0 with expose_hidden") : "",
                       l->n_bottom);
    if (l->n_top != want_t)
        return err_set(CREMA_ERR_INVALID, "layer %s (%s): takes %d top%s (%s%s), got %d", l->name, rec_type(r), want_t,
                       want_t > 1 ? "s" : "", arch == REC_LSTM ? "h" : "o",
                       r->expose ? (arch == REC_LSTM ? ", h_T, c_T with expose_hidden" : ", h_T with expose_hidden") : "",
                       l->n_top);
    r->has_static = l->n_bottom > min_b;
    int T, N;
    int rc = rec_check_inputs(l, bottom, &T, &N);
    if (rc)
        return rc;
    r->T = T;
    size_t k = tensor_count_range(bottom[0], 2, bottom[0]->num_axes);
    size_t ks = r->has_static ? tensor_count_range(bottom[2], 1, bottom[2]->num_axes) : 0;
    if (k == 0 || k > (1u << 30) || ks > (1u << 30))
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): input size %zu per time step is not usable", l->name,
                       rec_type(r), k);
    r->K = (int)k;
    r->KS = (int)ks;

    struct rec_slots s = { 0, 1, -1, 2, -1, -1 };
    if (r->has_static) {
        s.ws = 2;
        s.wh = 3;
    }
    if (arch == REC_RNN) {
        s.wo = s.wh + 1;
        s.bo = s.wh + 2;
    }
    r->s = s;
    int n_blobs = (arch == REC_RNN ? 5 : 3) + (r->has_static ? 1 : 0);
    bool fresh = l->n_blobs == 0;
    if (fresh) {
        rc = layer_alloc_blobs(l, n_blobs);
        if (rc)
            return rc;
    } else if (l->n_blobs != n_blobs) {
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): expected %d parameter blobs, got %d", l->name, rec_type(r),
                       n_blobs, l->n_blobs);
    }
    struct {
        int slot;
        const char *what;
        int d0, d1;
        bool bias;
    } spec[6] = {
        { s.wx, arch == REC_RNN ? "W_xh" : "W_xc", r->G, r->K, false },
        { s.bx, arch == REC_RNN ? "b_h" : "b_c", r->G, 0, true },
        { s.ws, arch == REC_RNN ? "W_xh_static" : "W_xc_static", r->G, r->KS, false },
        { s.wh, arch == REC_RNN ? "W_hh" : "W_hc", r->G, r->H, false },
        { s.wo, "W_ho", r->H, r->H, false },
        { s.bo, "b_o", r->H, 0, true },
    };
    const Caffe__FillerParameter *wf = rp->weight_filler ? rp->weight_filler : &def_filler;
    const Caffe__FillerParameter *bf = rp->bias_filler ? rp->bias_filler : &def_filler;
    for (int i = 0; i < 6 && !rc; i++) {
        if (spec[i].slot < 0)
            continue;
        if (fresh) {
            int shape[2] = { spec[i].d0, spec[i].d1 };
            rc = tensor_reshape(l->blobs[spec[i].slot], spec[i].d1 > 0 ? 2 : 1, shape);
            if (!rc)
                rc = filler_fill(spec[i].bias ? bf : wf, l->blobs[spec[i].slot], l->rng);
        } else {
            rc = rec_check_blob(l, spec[i].slot, spec[i].what, spec[i].d0, spec[i].d1);
        }
    }
    return rc;
}

static int rnn_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return rec_setup(l, bottom, top, REC_RNN);
}

static int lstm_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    return rec_setup(l, bottom, top, REC_LSTM);
}

/* A zeroed buffer of n floats on the layer's backend. */
static int rec_alloc(struct layer *l, struct tensor **p, size_t n)
{
    tensor_free(*p);
    int shape[1] = { (int)(n ? n : 1) };
    if (!(*p = tensor_new()))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    int rc = tensor_reshape(*p, 1, shape);
    return rc ? rc : tensor_zero_data_on(*p, l->be);
}

static int rec_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct rec *r = l->priv;
    int T, N;
    char s[128];
    int rc = rec_check_inputs(l, bottom, &T, &N);
    if (rc)
        return rc;
    /* Caffe unrolls its net for T at set-up and cannot change it later. */
    if (T != r->T)
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom 0 (x) has %d time steps, the layer was set up for %d",
                       l->name, rec_type(r), T, r->T);
    if (tensor_count_range(bottom[0], 2, bottom[0]->num_axes) != (size_t)r->K)
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom 0 (x) has %zu inputs per step, the weights take %d",
                       l->name, rec_type(r), tensor_count_range(bottom[0], 2, bottom[0]->num_axes), r->K);
    if (r->has_static && tensor_count_range(bottom[2], 1, bottom[2]->num_axes) != (size_t)r->KS)
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom 2 (x_static) has %zu inputs, the weights take %d",
                       l->name, rec_type(r), tensor_count_range(bottom[2], 1, bottom[2]->num_axes), r->KS);
    if (r->expose) {
        static const char *const names[2] = { "h_0", "c_0" };
        int off = 2 + (r->has_static ? 1 : 0);
        for (int j = 0; j < r->n_recur; j++) {
            const struct tensor *b = bottom[off + j];
            if (b->num_axes != 3 || b->shape[0] != 1 || b->shape[1] != N || b->shape[2] != r->H)
                return err_set(CREMA_ERR_SHAPE, "layer %s (%s): bottom %d (%s) must be 1 x %d x %d, got %s", l->name,
                               rec_type(r), off + j, names[j], N, r->H, tensor_shape_string(b, s, sizeof s));
        }
    }
    int out_shape[3] = { T, N, r->H };
    rc = tensor_reshape(top[0], 3, out_shape);
    int state_shape[3] = { 1, N, r->H };
    for (int j = 1; !rc && j < l->n_top; j++)
        rc = tensor_reshape(top[j], 3, state_shape);
    if (rc)
        return rc;
    size_t tn = (size_t)T * N;
    /* The BLAS calls take int sizes. */
    if (tn * (size_t)(r->G > r->K ? r->G : r->K) > (size_t)INT_MAX)
        return err_set(CREMA_ERR_SHAPE, "layer %s (%s): %d x %d steps of %d inputs and %d gates are too large", l->name,
                       rec_type(r), T, N, r->K, r->G);
    if (r->N == N && r->steps_n == tn)
        return CREMA_OK;
    /* A new batch size drops the carried hidden state. */
    rec_free_buffers(r);
    size_t g = (size_t)r->G, h = (size_t)r->H;
    if ((rc = rec_alloc(l, &r->xg, tn * g)) || (rc = rec_alloc(l, &r->sg, (size_t)N * g)) ||
        (rc = rec_alloc(l, &r->gate, tn * g)) || (rc = rec_alloc(l, &r->hc, tn * h)) ||
        (rc = rec_alloc(l, &r->h, (tn + N) * h)) || (rc = rec_alloc(l, &r->c, (tn + N) * h)) ||
        (rc = rec_alloc(l, &r->dgate, tn * g)) || (rc = rec_alloc(l, &r->dh, (size_t)N * h)) ||
        (rc = rec_alloc(l, &r->dc, (size_t)N * h)) || (rc = rec_alloc(l, &r->dtmp, (size_t)N * h)) ||
        (rc = rec_alloc(l, &r->ones, tn)) || (rc = rec_alloc(l, &r->dstatic, (size_t)N * g)))
        return rc;
    float *ones = LDATA(r->ones);
    if (!ones)
        return CREMA_ERR_NOMEM;
    l->be->math->set(l->be, tn, 1.f, ones);
    r->N = N;
    r->steps_n = tn;
    return CREMA_OK;
}

/* The pointers of one pass: the buffers' on the layer's backend. */
struct rec_ptrs {
    float *xg, *sg, *gate, *hc, *h, *c, *dgate, *dh, *dc, *dtmp, *dstatic;
    const float *ones;
};

static int rec_ptrs(struct layer *l, struct rec_ptrs *p)
{
    struct rec *r = l->priv;
    p->xg = LDATA(r->xg);
    p->sg = LDATA(r->sg);
    p->gate = LDATA(r->gate);
    p->hc = LDATA(r->hc);
    p->h = LDATA(r->h);
    p->c = LDATA(r->c);
    p->dgate = LDATA(r->dgate);
    p->dh = LDATA(r->dh);
    p->dc = LDATA(r->dc);
    p->dtmp = LDATA(r->dtmp);
    p->dstatic = LDATA(r->dstatic);
    p->ones = LCDATA(r->ones);
    bool ok = p->xg && p->sg && p->gate && p->hc && p->h && p->c && p->dgate && p->dh && p->dc && p->dtmp &&
              p->dstatic && p->ones;
    return ok ? CREMA_OK : CREMA_ERR_NOMEM;
}

static int rec_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct rec *r = l->priv;
    const struct backend *be = l->be;
    const struct recurrent_ops *ops = be->recurrent;
    const int T = r->T, N = r->N, H = r->H, G = r->G;
    const size_t nh = (size_t)N * H, ng = (size_t)N * G;
    struct rec_ptrs p;
    int rc = rec_ptrs(l, &p);
    if (rc)
        return rc;
    const float *x = LCDATA(bottom[0]), *cont = LCDATA(bottom[1]);
    const float *xs = r->has_static ? LCDATA(bottom[2]) : NULL;
    float *out = LDATA(top[0]);
    const float *wx = LCDATA(l->blobs[r->s.wx]), *bx = LCDATA(l->blobs[r->s.bx]);
    const float *wh = LCDATA(l->blobs[r->s.wh]);
    const float *ws = r->has_static ? LCDATA(l->blobs[r->s.ws]) : NULL;
    const float *wo = r->arch == REC_RNN ? LCDATA(l->blobs[r->s.wo]) : NULL;
    const float *bo = r->arch == REC_RNN ? LCDATA(l->blobs[r->s.bo]) : NULL;
    if (!x || !cont || (r->has_static && (!xs || !ws)) || !out || !wx || !bx || !wh ||
        (r->arch == REC_RNN && (!wo || !bo)))
        return CREMA_ERR_NOMEM;

    /* The input transform of every step at once, bias included. */
    rec_gemm(l, false, true, T * N, G, r->K, x, wx, 0.f, p.xg);
    ops->add_bias_rows(be, (size_t)T * N, G, bx, p.xg);
    if (r->has_static)
        rec_gemm(l, false, true, N, G, r->KS, xs, ws, 0.f, p.sg);

    if (r->expose) {
        int off = 2 + (r->has_static ? 1 : 0);
        const float *h0 = LCDATA(bottom[off]);
        const float *c0 = r->arch == REC_LSTM ? LCDATA(bottom[off + 1]) : NULL;
        if (!h0 || (r->arch == REC_LSTM && !c0))
            return CREMA_ERR_NOMEM;
        be->math->copy(be, nh, h0, p.h);
        if (r->arch == REC_LSTM)
            be->math->copy(be, nh, c0, p.c);
    } else {
        /* Without exposed state Caffe continues from the last forward's h_T
         * (T >= 1, so the two ranges never overlap). */
        be->math->copy(be, nh, p.h + (size_t)T * nh, p.h);
        if (r->arch == REC_LSTM)
            be->math->copy(be, nh, p.c + (size_t)T * nh, p.c);
    }

    for (int t = 0; t < T; t++) {
        const float *ct = cont + (size_t)t * N;
        const float *hprev = p.h + (size_t)t * nh;
        float *hc = p.hc + (size_t)t * nh;
        float *gate = p.gate + (size_t)t * ng;
        float *hcur = p.h + (size_t)(t + 1) * nh;
        ops->scale_rows(be, (size_t)N, H, ct, hprev, hc);
        rec_gemm(l, false, true, N, G, H, hc, wh, 0.f, gate);
        be->math->add(be, (int)ng, gate, p.xg + (size_t)t * ng, gate);
        if (r->has_static)
            be->math->add(be, (int)ng, gate, p.sg, gate);
        float *outt = out + (size_t)t * nh;
        if (r->arch == REC_LSTM) {
            ops->lstm_unit_forward(be, N, H, p.c + (size_t)t * nh, gate, ct, p.c + (size_t)(t + 1) * nh, hcur);
            be->math->copy(be, nh, hcur, outt);
        } else {
            ops->tanh(be, nh, gate, hcur);
            rec_gemm(l, false, true, N, H, H, hcur, wo, 0.f, outt);
            ops->bias_tanh(be, (size_t)N, H, bo, outt);
        }
    }
    if (r->expose) {
        float *hT = LDATA(top[1]);
        float *cT = r->arch == REC_LSTM ? LDATA(top[2]) : NULL;
        if (!hT || (r->arch == REC_LSTM && !cT))
            return CREMA_ERR_NOMEM;
        be->math->copy(be, nh, p.h + (size_t)T * nh, hT);
        if (r->arch == REC_LSTM)
            be->math->copy(be, nh, p.c + (size_t)T * nh, cT);
    }
    return CREMA_OK;
}

static int rec_backward(struct layer *l, struct tensor **top, const bool *propagate_down, struct tensor **bottom)
{
    struct rec *r = l->priv;
    if (propagate_down[1])
        return err_set(CREMA_ERR_INVALID, "layer %s (%s): cannot backpropagate to the sequence indicators (bottom 1, cont)",
                       l->name, rec_type(r));
    const struct backend *be = l->be;
    const struct recurrent_ops *ops = be->recurrent;
    const int T = r->T, N = r->N, H = r->H, G = r->G;
    const size_t nh = (size_t)N * H, ng = (size_t)N * G;
    struct rec_ptrs p;
    int rc = rec_ptrs(l, &p);
    if (rc)
        return rc;
    const float *cont = LCDATA(bottom[1]);
    const float *out = LCDATA(top[0]), *dout = LCDIFF(top[0]);
    const float *wh = LCDATA(l->blobs[r->s.wh]);
    if (!cont || !out || !dout || !wh)
        return CREMA_ERR_NOMEM;
    const bool *ppd = l->param_propagate_down;
    float *dwh = ppd[r->s.wh] ? LDIFF(l->blobs[r->s.wh]) : NULL;

    /* Exposed h_T / c_T diffs are ignored and h_0 / c_0 get none: Caffe
     * shares only the data of those blobs with its unrolled net. */
    be->math->set(be, nh, 0.f, p.dh);
    be->math->set(be, nh, 0.f, p.dc);
    float *dwo = NULL, *dbo = NULL;
    const float *wo = NULL;
    if (r->arch == REC_RNN) {
        wo = LCDATA(l->blobs[r->s.wo]);
        dwo = ppd[r->s.wo] ? LDIFF(l->blobs[r->s.wo]) : NULL;
        dbo = ppd[r->s.bo] ? LDIFF(l->blobs[r->s.bo]) : NULL;
        if (!wo)
            return CREMA_ERR_NOMEM;
    }
    for (int t = T - 1; t >= 0; t--) {
        const float *ct = cont + (size_t)t * N;
        const float *hcur = p.h + (size_t)(t + 1) * nh;
        float *dgate = p.dgate + (size_t)t * ng;
        const float *doutt = dout + (size_t)t * nh;
        if (r->arch == REC_RNN) {
            /* Output branch: o_t = tanh(W_ho h_t + b_o). */
            ops->tanh_grad(be, nh, doutt, out + (size_t)t * nh, p.dtmp);
            if (dwo)
                rec_gemm(l, true, false, H, H, N, p.dtmp, hcur, 1.f, dwo);
            if (dbo)
                be->math->gemv(be, true, N, H, 1.f, p.dtmp, p.ones, 1.f, dbo);
            /* dh holds what h_t got through step t+1 (zero for t = T-1). */
            float *from_o = dgate; /* scratch until dgate is written */
            rec_gemm(l, false, false, N, H, H, p.dtmp, wo, 0.f, from_o);
            if (t != T - 1)
                be->math->add(be, (int)nh, from_o, p.dh, from_o);
            ops->tanh_grad(be, nh, from_o, hcur, dgate);
        } else {
            if (t == T - 1)
                be->math->copy(be, nh, doutt, p.dtmp);
            else
                be->math->add(be, (int)nh, p.dh, doutt, p.dtmp);
            /* dc holds c_t's diff (c_T's is zero) and becomes c_{t-1}'s. */
            ops->lstm_unit_backward(be, N, H, p.c + (size_t)t * nh, p.gate + (size_t)t * ng, ct,
                                    p.c + (size_t)(t + 1) * nh, p.dc, p.dtmp, p.dc, dgate);
        }
        const float *hc = p.hc + (size_t)t * nh;
        if (dwh)
            rec_gemm(l, true, false, G, H, N, dgate, hc, 1.f, dwh);
        if (t > 0) {
            rec_gemm(l, false, false, N, H, G, dgate, wh, 0.f, p.dh);
            ops->scale_rows(be, (size_t)N, H, ct, p.dh, p.dh);
        }
    }

    if (r->has_static) {
        /* Caffe's split sums the static branch's diffs in step order. */
        be->math->copy(be, ng, p.dgate, p.dstatic);
        for (int t = 1; t < T; t++)
            be->math->add(be, (int)ng, p.dstatic, p.dgate + (size_t)t * ng, p.dstatic);
        const float *xs = LCDATA(bottom[2]);
        if (!xs)
            return CREMA_ERR_NOMEM;
        if (ppd[r->s.ws]) {
            float *dws = LDIFF(l->blobs[r->s.ws]);
            if (!dws)
                return CREMA_ERR_NOMEM;
            rec_gemm(l, true, false, G, r->KS, N, p.dstatic, xs, 1.f, dws);
        }
        if (propagate_down[2]) {
            const float *ws = LCDATA(l->blobs[r->s.ws]);
            float *dxs = LDIFF(bottom[2]);
            if (!ws || !dxs)
                return CREMA_ERR_NOMEM;
            rec_gemm(l, false, false, N, r->KS, G, p.dstatic, ws, 0.f, dxs);
        }
    }
    const float *x = LCDATA(bottom[0]);
    if (!x)
        return CREMA_ERR_NOMEM;
    if (ppd[r->s.wx]) {
        float *dwx = LDIFF(l->blobs[r->s.wx]);
        if (!dwx)
            return CREMA_ERR_NOMEM;
        rec_gemm(l, true, false, G, r->K, T * N, p.dgate, x, 1.f, dwx);
    }
    if (ppd[r->s.bx]) {
        float *dbx = LDIFF(l->blobs[r->s.bx]);
        if (!dbx)
            return CREMA_ERR_NOMEM;
        be->math->gemv(be, true, T * N, G, 1.f, p.dgate, p.ones, 1.f, dbx);
    }
    if (propagate_down[0]) {
        const float *wx = LCDATA(l->blobs[r->s.wx]);
        float *dx = LDIFF(bottom[0]);
        if (!wx || !dx)
            return CREMA_ERR_NOMEM;
        rec_gemm(l, false, false, T * N, r->K, G, p.dgate, wx, 0.f, dx);
    }
    if (r->expose) {
        int off = 2 + (r->has_static ? 1 : 0);
        for (int j = 0; j < r->n_recur; j++)
            if (propagate_down[off + j] && (rc = tensor_zero_diff_on(bottom[off + j], be)))
                return rc;
    }
    return CREMA_OK;
}

static bool rec_runs_on(const struct backend *be)
{
    return be->recurrent != NULL;
}

static bool rec_allow_force_backward(const struct layer *l, int bottom_index)
{
    return bottom_index != 1;
}

const struct layer_kind rnn_layer = {
    .type = "RNN",
    .min_bottoms = 2, .max_bottoms = 4,
    .min_tops = 1, .max_tops = 2,
    .setup = rnn_setup,
    .reshape = rec_reshape,
    .forward = rec_forward,
    .backward = rec_backward,
    .destroy = rec_destroy,
    .allow_force_backward = rec_allow_force_backward,
    .forward_dev = rec_forward,
    .backward_dev = rec_backward,
    .runs_on = rec_runs_on,
};

const struct layer_kind lstm_layer = {
    .type = "LSTM",
    .min_bottoms = 2, .max_bottoms = 5,
    .min_tops = 1, .max_tops = 3,
    .setup = lstm_setup,
    .reshape = rec_reshape,
    .forward = rec_forward,
    .backward = rec_backward,
    .destroy = rec_destroy,
    .allow_force_backward = rec_allow_force_backward,
    .forward_dev = rec_forward,
    .backward_dev = rec_backward,
    .runs_on = rec_runs_on,
};
