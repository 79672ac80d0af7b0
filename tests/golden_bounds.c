/* The magnitudes behind Convolution, Deconvolution and InnerProduct values
 * (the same operation on absolute values, in double) and max-pooling ties
 * decided by rounding, for test_golden's comparisons (golden_bounds.h). */
#include "golden_bounds.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Records, one per buffer. */

struct mag {
    const struct tensor_buf *buf;
    size_t n;
    double *m;
};

struct mags {
    struct mag *v;
    size_t n, cap;
};

struct mags *mags_new(void)
{
    return calloc(1, sizeof(struct mags));
}

void mags_free(struct mags *ms)
{
    if (!ms)
        return;
    for (size_t i = 0; i < ms->n; i++)
        free(ms->v[i].m);
    free(ms->v);
    free(ms);
}

static struct mag *mag_find(const struct mags *ms, const struct tensor_buf *buf)
{
    for (size_t i = 0; i < ms->n; i++)
        if (ms->v[i].buf == buf)
            return &ms->v[i];
    return NULL;
}

/* The record of buf with n values: zeroed when `fresh` (the layer
 * overwrites the buffer), kept when not (it adds to it: parameter diffs).
 * NULL when memory runs out. */
static double *mag_get(struct mags *ms, const struct tensor_buf *buf, size_t n, bool fresh)
{
    struct mag *r = mag_find(ms, buf);
    if (r && r->n == n) {
        if (fresh)
            memset(r->m, 0, n * sizeof(double));
        return r->m;
    }
    if (!r) {
        if (ms->n == ms->cap) {
            size_t cap = ms->cap ? 2 * ms->cap : 16;
            struct mag *v = realloc(ms->v, cap * sizeof *v);
            if (!v)
                return NULL;
            ms->v = v;
            ms->cap = cap;
        }
        r = &ms->v[ms->n++];
        r->buf = buf;
        r->m = NULL;
    }
    free(r->m);
    r->n = n;
    r->m = calloc(n ? n : 1, sizeof(double));
    if (!r->m) {
        *r = ms->v[--ms->n];
        return NULL;
    }
    return r->m;
}

static void mag_drop(struct mags *ms, const struct tensor_buf *buf)
{
    struct mag *r = mag_find(ms, buf);
    if (!r)
        return;
    free(r->m);
    *r = ms->v[--ms->n];
}

double mags_max(const struct mags *ms, const struct tensor_buf *buf)
{
    const struct mag *r = mag_find(ms, buf);
    double m = 0;
    for (size_t i = 0; r && i < r->n; i++)
        if (r->m[i] > m)
            m = r->m[i];
    return m;
}

/* Whether t's buffer (data or diff) belongs to one of `others` while t is
 * none of them: the layer shares the buffer (Split's tops, Reshape,
 * Flatten) and does not write it. An in-place layer's top is its bottom. */
static bool shares_only(const struct tensor *t, struct tensor **others, int n, bool diff)
{
    const struct tensor_buf *b = diff ? t->diff_buf : t->data_buf;
    bool shared = false;
    for (int i = 0; i < n; i++) {
        if (others[i] == t)
            return false;
        if ((diff ? others[i]->diff_buf : others[i]->data_buf) == b)
            shared = true;
    }
    return shared;
}

static int oom(char *msg, size_t msz)
{
    snprintf(msg, msz, "out of memory for the magnitudes");
    return -1;
}

/* ---------------------------------------------------------------------- */
/* Convolution as Caffe's BaseConvolutionLayer sees it: an input side (the
 * bottom; a Deconvolution's top) and an output side with the weight
 * cout x cin/group x kernel. Each output value sums, over the kernel and
 * the group's input channels, weight times input; padding adds nothing. */

struct cgeom {
    int axis;             /* the channel axis */
    size_t outer;         /* product of the axes before it */
    int cin, cout, group; /* channels on the input and output side */
    size_t in_sp, out_sp, ksz;
    long *tab; /* out_sp x ksz: offset into an input plane, -1 in the padding */
};

/* A repeated ConvolutionParameter field (pad, stride, dilation) for
 * spatial axis d of ns, or its _h/_w form, or `dflt`. */
static long conv_field(size_t n, const uint32_t *v, bool has_hw, uint32_t h, uint32_t w, int d, int ns, long dflt)
{
    if (has_hw)
        return ns == 2 ? (long)(d == 0 ? h : w) : -1;
    if (n == 0)
        return dflt;
    if (n == 1)
        return (long)v[0];
    return n == (size_t)ns ? (long)v[d] : -1;
}

static int cgeom_init(struct cgeom *g, const struct layer *l, const struct tensor *in, const struct tensor *out,
                      const struct tensor *w, char *msg, size_t msz)
{
    const Caffe__ConvolutionParameter *cp = l->param->convolution_param;
    memset(g, 0, sizeof *g);
    if (!cp) {
        snprintf(msg, msz, "no convolution_param");
        return -1;
    }
    int na = in->num_axes, axis = cp->axis < 0 ? cp->axis + na : cp->axis;
    int ns = na - axis - 1;
    if (axis < 0 || ns < 0 || out->num_axes != na || w->num_axes != ns + 2) {
        snprintf(msg, msz, "axes of input (%d), output (%d) and weight (%d) do not fit channel axis %d", na,
                 out->num_axes, w->num_axes, (int)cp->axis);
        return -1;
    }
    g->axis = axis;
    g->outer = 1;
    for (int d = 0; d < axis; d++) {
        if (in->shape[d] != out->shape[d]) {
            snprintf(msg, msz, "axis %d: input %d, output %d", d, in->shape[d], out->shape[d]);
            return -1;
        }
        g->outer *= (size_t)in->shape[d];
    }
    g->cin = in->shape[axis];
    g->cout = out->shape[axis];
    g->group = cp->group ? (int)cp->group : 1;
    if (g->cout % g->group || w->shape[0] != g->cout || (long)w->shape[1] * g->group != g->cin) {
        snprintf(msg, msz, "weight %d x %d does not fit %d -> %d channels in %d groups", w->shape[0], w->shape[1],
                 g->cin, g->cout, g->group);
        return -1;
    }
    long k[TENSOR_MAX_AXES], st[TENSOR_MAX_AXES], pd[TENSOR_MAX_AXES], dl[TENSOR_MAX_AXES];
    int ind[TENSOR_MAX_AXES], outd[TENSOR_MAX_AXES];
    g->in_sp = g->out_sp = g->ksz = 1;
    for (int d = 0; d < ns; d++) {
        k[d] = w->shape[2 + d];
        st[d] = conv_field(cp->n_stride, cp->stride, cp->has_stride_h || cp->has_stride_w, cp->stride_h, cp->stride_w,
                           d, ns, 1);
        pd[d] = conv_field(cp->n_pad, cp->pad, cp->has_pad_h || cp->has_pad_w, cp->pad_h, cp->pad_w, d, ns, 0);
        dl[d] = conv_field(cp->n_dilation, cp->dilation, false, 0, 0, d, ns, 1);
        ind[d] = in->shape[axis + 1 + d];
        outd[d] = out->shape[axis + 1 + d];
        if (st[d] < 1 || pd[d] < 0 || dl[d] < 1 ||
            outd[d] != (ind[d] + 2 * pd[d] - (dl[d] * (k[d] - 1) + 1)) / st[d] + 1) {
            snprintf(msg, msz, "spatial axis %d: input %d, output %d, kernel %ld, stride %ld, pad %ld, dilation %ld", d,
                     ind[d], outd[d], k[d], st[d], pd[d], dl[d]);
            return -1;
        }
        g->in_sp *= (size_t)ind[d];
        g->out_sp *= (size_t)outd[d];
        g->ksz *= (size_t)k[d];
    }
    g->tab = malloc(g->out_sp * g->ksz * sizeof *g->tab);
    if (!g->tab)
        return oom(msg, msz);
    int o[TENSOR_MAX_AXES] = { 0 };
    for (size_t oi = 0; oi < g->out_sp; oi++) {
        int kk[TENSOR_MAX_AXES] = { 0 };
        for (size_t ki = 0; ki < g->ksz; ki++) {
            long at = 0;
            for (int d = 0; d < ns && at >= 0; d++) {
                long i = o[d] * st[d] - pd[d] + kk[d] * dl[d];
                at = i < 0 || i >= ind[d] ? -1 : at * ind[d] + i;
            }
            g->tab[oi * g->ksz + ki] = at;
            for (int d = ns - 1; d >= 0 && ++kk[d] == k[d]; d--)
                kk[d] = 0;
        }
        for (int d = ns - 1; d >= 0 && ++o[d] == outd[d]; d--)
            o[d] = 0;
    }
    return 0;
}

enum cop {
    C_FWD, /* res (output side) += |w| |in| */
    C_BWD, /* res (input side) += |w| |out| */
    C_WGT  /* res (weight) += |out| |in| */
};

static void conv_abs(const struct cgeom *g, enum cop op, const float *w, const float *in, const float *out,
                     double *res)
{
    int cig = g->cin / g->group, cog = g->cout / g->group;
    for (size_t n = 0; n < g->outer; n++)
        for (int co = 0; co < g->cout; co++)
            for (int c = 0; c < cig; c++) {
                size_t wo = ((size_t)co * cig + c) * g->ksz;
                size_t io = (n * g->cin + (size_t)(co / cog) * cig + c) * g->in_sp;
                size_t oo = (n * g->cout + co) * g->out_sp;
                for (size_t o = 0; o < g->out_sp; o++) {
                    const long *t = g->tab + o * g->ksz;
                    for (size_t k = 0; k < g->ksz; k++) {
                        if (t[k] < 0)
                            continue;
                        size_t i = io + (size_t)t[k];
                        if (op == C_FWD)
                            res[oo + o] += fabs((double)w[wo + k]) * fabs((double)in[i]);
                        else if (op == C_BWD)
                            res[i] += fabs((double)w[wo + k]) * fabs((double)out[oo + o]);
                        else
                            res[wo + k] += fabs((double)out[oo + o]) * fabs((double)in[i]);
                    }
                }
            }
}

/* Per channel c of a tensor with the channel axis `axis`: add |b[c]| to
 * every value (to_values), or add every |value| to res[c] (bias gradient). */
static void channel_abs(const struct tensor *t, int axis, const float *b, const float *v, double *res,
                        bool to_values)
{
    size_t outer = tensor_count_range(t, 0, axis), ch = (size_t)t->shape[axis];
    size_t inner = tensor_count_range(t, axis + 1, t->num_axes);
    for (size_t n = 0; n < outer; n++)
        for (size_t c = 0; c < ch; c++)
            for (size_t i = 0; i < inner; i++) {
                size_t at = (n * ch + c) * inner + i;
                if (to_values)
                    res[at] += fabs((double)b[c]);
                else
                    res[c] += fabs((double)v[at]);
            }
}

static int conv_mags(struct mags *ms, struct net_layer *nl, bool backward, char *msg, size_t msz)
{
    struct layer *l = nl->layer;
    bool deconv = strcmp(l->kind->type, "Deconvolution") == 0;
    if (l->n_blobs < 1) {
        snprintf(msg, msz, "no weight blob");
        return -1;
    }
    struct tensor *w = l->blobs[0], *b = l->n_blobs > 1 ? l->blobs[1] : NULL;
    const float *wv = tensor_cdata(w), *bv = b ? tensor_cdata(b) : NULL;
    if (!wv || (b && !bv))
        return oom(msg, msz);
    for (int j = 0; j < nl->n_top && j < nl->n_bottom; j++) {
        struct tensor *bot = nl->bottom[j], *top = nl->top[j];
        struct cgeom g;
        if (cgeom_init(&g, l, deconv ? top : bot, deconv ? bot : top, w, msg, msz)) {
            free(g.tab);
            return -1;
        }
        if (b && b->count != (size_t)top->shape[g.axis]) {
            snprintf(msg, msz, "bias of %zu for %d channels", b->count, top->shape[g.axis]);
            free(g.tab);
            return -1;
        }
        int rc = 0;
        const float *x = tensor_cdata(bot);
        if (!backward) {
            double *m = x ? mag_get(ms, top->data_buf, top->count, true) : NULL;
            if (!m) {
                rc = oom(msg, msz);
            } else {
                if (deconv)
                    conv_abs(&g, C_BWD, wv, NULL, x, m);
                else
                    conv_abs(&g, C_FWD, wv, x, NULL, m);
                if (b)
                    channel_abs(top, g.axis, bv, NULL, m, true);
            }
            free(g.tab);
            if (rc)
                return rc;
            continue;
        }
        const float *dy = tensor_cdiff(top);
        if (!x || !dy)
            rc = oom(msg, msz);
        if (!rc && l->param_propagate_down[0]) {
            double *m = mag_get(ms, w->diff_buf, w->count, false);
            if (!m)
                rc = oom(msg, msz);
            else if (deconv)
                conv_abs(&g, C_WGT, NULL, dy, x, m);
            else
                conv_abs(&g, C_WGT, NULL, x, dy, m);
        }
        if (!rc && b && l->param_propagate_down[1]) {
            double *m = mag_get(ms, b->diff_buf, b->count, false);
            if (!m)
                rc = oom(msg, msz);
            else
                channel_abs(top, g.axis, NULL, dy, m, false);
        }
        if (!rc && nl->bottom_need_backward[j]) {
            double *m = mag_get(ms, bot->diff_buf, bot->count, true);
            if (!m)
                rc = oom(msg, msz);
            else if (deconv)
                conv_abs(&g, C_FWD, wv, dy, NULL, m);
            else
                conv_abs(&g, C_BWD, wv, NULL, dy, m);
        }
        free(g.tab);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* InnerProduct: top (M x N) = bottom (M x K, flattened from `axis`) times
 * the weight (N x K, or K x N with transpose) plus the bias. */

static int ip_mags(struct mags *ms, struct net_layer *nl, bool backward, char *msg, size_t msz)
{
    struct layer *l = nl->layer;
    const Caffe__InnerProductParameter *ip = l->param->inner_product_param;
    struct tensor *bot = nl->bottom[0], *top = nl->top[0];
    if (!ip || l->n_blobs < 1) {
        snprintf(msg, msz, "no inner_product_param or no weight blob");
        return -1;
    }
    int axis = tensor_canonical_axis(bot, ip->axis);
    if (axis < 0) {
        snprintf(msg, msz, "axis %d out of range", (int)ip->axis);
        return -1;
    }
    size_t M = tensor_count_range(bot, 0, axis), K = tensor_count_range(bot, axis, bot->num_axes);
    size_t N = ip->num_output;
    struct tensor *w = l->blobs[0], *b = l->n_blobs > 1 ? l->blobs[1] : NULL;
    if (w->count != N * K || top->count != M * N || (b && b->count != N)) {
        snprintf(msg, msz, "weight %zu, bias %zu, top %zu do not fit %zu x %zu times %zu outputs", w->count,
                 b ? b->count : 0, top->count, M, K, N);
        return -1;
    }
    size_t sn = ip->transpose ? 1 : K, sk = ip->transpose ? N : 1; /* w(n, k) = wv[n * sn + k * sk] */
    const float *wv = tensor_cdata(w), *bv = b ? tensor_cdata(b) : NULL, *x = tensor_cdata(bot);
    if (!wv || (b && !bv) || !x)
        return oom(msg, msz);
    if (!backward) {
        double *m = mag_get(ms, top->data_buf, top->count, true);
        if (!m)
            return oom(msg, msz);
        for (size_t i = 0; i < M; i++)
            for (size_t n = 0; n < N; n++) {
                double s = bv ? fabs((double)bv[n]) : 0;
                for (size_t k = 0; k < K; k++)
                    s += fabs((double)x[i * K + k]) * fabs((double)wv[n * sn + k * sk]);
                m[i * N + n] = s;
            }
        return 0;
    }
    const float *dy = tensor_cdiff(top);
    if (!dy)
        return oom(msg, msz);
    if (l->param_propagate_down[0]) {
        double *m = mag_get(ms, w->diff_buf, w->count, false);
        if (!m)
            return oom(msg, msz);
        for (size_t i = 0; i < M; i++)
            for (size_t n = 0; n < N; n++)
                for (size_t k = 0; k < K; k++)
                    m[n * sn + k * sk] += fabs((double)dy[i * N + n]) * fabs((double)x[i * K + k]);
    }
    if (b && l->param_propagate_down[1]) {
        double *m = mag_get(ms, b->diff_buf, b->count, false);
        if (!m)
            return oom(msg, msz);
        for (size_t i = 0; i < M; i++)
            for (size_t n = 0; n < N; n++)
                m[n] += fabs((double)dy[i * N + n]);
    }
    if (nl->bottom_need_backward[0]) {
        double *m = mag_get(ms, bot->diff_buf, bot->count, true);
        if (!m)
            return oom(msg, msz);
        for (size_t i = 0; i < M; i++)
            for (size_t n = 0; n < N; n++)
                for (size_t k = 0; k < K; k++)
                    m[i * K + k] += fabs((double)dy[i * N + n]) * fabs((double)wv[n * sn + k * sk]);
    }
    return 0;
}

/* Split's backward sums its tops' diffs: their magnitudes where recorded,
 * else their absolute values. */
static int split_mags(struct mags *ms, struct net_layer *nl, char *msg, size_t msz)
{
    if (!nl->bottom_need_backward[0])
        return 0;
    struct tensor *bot = nl->bottom[0];
    double *m = mag_get(ms, bot->diff_buf, bot->count, true);
    if (!m)
        return oom(msg, msz);
    for (int j = 0; j < nl->n_top; j++) {
        const struct mag *r = mag_find(ms, nl->top[j]->diff_buf);
        if (r && r->n == bot->count) {
            for (size_t i = 0; i < bot->count; i++)
                m[i] += r->m[i];
            continue;
        }
        const float *d = tensor_cdiff(nl->top[j]);
        if (!d || nl->top[j]->count != bot->count) {
            mag_drop(ms, bot->diff_buf);
            return d ? 0 : oom(msg, msz);
        }
        for (size_t i = 0; i < bot->count; i++)
            m[i] += fabs((double)d[i]);
    }
    return 0;
}

static bool is_conv(const struct layer *l)
{
    return strcmp(l->kind->type, "Convolution") == 0 || strcmp(l->kind->type, "Deconvolution") == 0;
}

int mags_after_forward(struct mags *ms, struct net_layer *nl, char *msg, size_t msz)
{
    struct layer *l = nl->layer;
    if (is_conv(l))
        return conv_mags(ms, nl, false, msg, msz);
    if (strcmp(l->kind->type, "InnerProduct") == 0)
        return ip_mags(ms, nl, false, msg, msz);
    for (int j = 0; j < nl->n_top; j++)
        if (!shares_only(nl->top[j], nl->bottom, nl->n_bottom, false))
            mag_drop(ms, nl->top[j]->data_buf);
    return 0;
}

int mags_after_backward(struct mags *ms, struct net_layer *nl, char *msg, size_t msz)
{
    struct layer *l = nl->layer;
    if (!nl->need_backward)
        return 0;
    if (is_conv(l))
        return conv_mags(ms, nl, true, msg, msz);
    if (strcmp(l->kind->type, "InnerProduct") == 0)
        return ip_mags(ms, nl, true, msg, msz);
    if (strcmp(l->kind->type, "Split") == 0)
        return split_mags(ms, nl, msg, msz);
    for (int j = 0; j < nl->n_bottom; j++)
        if (nl->bottom_need_backward[j] && !shares_only(nl->bottom[j], nl->top, nl->n_top, true))
            mag_drop(ms, nl->bottom[j]->diff_buf);
    for (int j = 0; j < l->n_blobs; j++)
        mag_drop(ms, l->blobs[j]->diff_buf);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Max pooling, windows as Caffe's PoolingLayer::Forward_cpu clips them. */

struct pgeom {
    int kh, kw, sh, sw, ph, pw;
    int H, W, PH, PW;
    size_t planes;
};

bool pool_is_max(const struct net_layer *nl)
{
    const Caffe__PoolingParameter *pp = nl->layer->param->pooling_param;
    return strcmp(nl->layer->kind->type, "Pooling") == 0 && pp &&
           pp->pool == CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX;
}

static int pgeom_init(const struct net_layer *nl, struct pgeom *g, char *msg, size_t msz)
{
    const Caffe__PoolingParameter *pp = nl->layer->param->pooling_param;
    const struct tensor *b = nl->bottom[0], *t = nl->top[0];
    if (b->num_axes != 4 || t->num_axes != 4 || b->shape[0] != t->shape[0] || b->shape[1] != t->shape[1]) {
        snprintf(msg, msz, "bottom and top are not N x C x H x W with the same N and C");
        return -1;
    }
    g->H = b->shape[2];
    g->W = b->shape[3];
    g->PH = t->shape[2];
    g->PW = t->shape[3];
    g->planes = (size_t)b->shape[0] * (size_t)b->shape[1];
    if (pp->global_pooling) {
        g->kh = g->H;
        g->kw = g->W;
    } else if (pp->has_kernel_h || pp->has_kernel_w) {
        g->kh = (int)pp->kernel_h;
        g->kw = (int)pp->kernel_w;
    } else {
        g->kh = g->kw = (int)pp->kernel_size;
    }
    bool hw = pp->has_pad_h || pp->has_pad_w;
    g->ph = (int)(hw ? pp->pad_h : pp->pad);
    g->pw = (int)(hw ? pp->pad_w : pp->pad);
    hw = pp->has_stride_h || pp->has_stride_w;
    g->sh = (int)(hw ? pp->stride_h : pp->stride);
    g->sw = (int)(hw ? pp->stride_w : pp->stride);
    if (g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1) {
        snprintf(msg, msz, "kernel %d x %d, stride %d x %d", g->kh, g->kw, g->sh, g->sw);
        return -1;
    }
    return 0;
}

/* Caffe's rule: the first value in scan order greater than all before it,
 * starting from -FLT_MAX; -1 when none is. */
static long first_max(const struct pgeom *g, const float *plane, int ph, int pw)
{
    int hs = ph * g->sh - g->ph, ws = pw * g->sw - g->pw;
    int he = hs + g->kh < g->H ? hs + g->kh : g->H, we = ws + g->kw < g->W ? ws + g->kw : g->W;
    hs = hs > 0 ? hs : 0;
    ws = ws > 0 ? ws : 0;
    float best = -FLT_MAX;
    long at = -1;
    for (int h = hs; h < he; h++)
        for (int w = ws; w < we; w++)
            if (plane[h * g->W + w] > best) {
                best = plane[h * g->W + w];
                at = (long)h * g->W + w;
            }
    return at;
}

int pool_find_ties(const struct net_layer *nl, const float *want, double bound, struct pool_ties *t, char *msg,
                   size_t msz)
{
    struct pgeom g;
    if (pgeom_init(nl, &g, msg, msz))
        return -1;
    const float *got = tensor_cdata(nl->bottom[0]);
    if (!got)
        return oom(msg, msz);
    size_t plane = (size_t)g.H * g.W;
    for (size_t p = 0; p < g.planes; p++)
        for (int ph = 0; ph < g.PH; ph++)
            for (int pw = 0; pw < g.PW; pw++) {
                long a = first_max(&g, got + p * plane, ph, pw), c = first_max(&g, want + p * plane, ph, pw);
                if (a == c)
                    continue;
                double gap_got = a < 0 || c < 0 ? INFINITY : (double)got[p * plane + a] - got[p * plane + c];
                double gap_want = a < 0 || c < 0 ? INFINITY : (double)want[p * plane + c] - want[p * plane + a];
                if (gap_got > bound || gap_want > bound) {
                    snprintf(msg, msz,
                             "window (plane %zu, %d, %d): crema's first maximum is at %ld (%.9g), Caffe's at %ld "
                             "(%.9g); Caffe's values there differ by %.3g, crema's by %.3g, more than rounding "
                             "allows (%.3g): not a tie",
                             p, ph, pw, a, a < 0 ? NAN : (double)got[p * plane + a], c,
                             c < 0 ? NAN : (double)want[p * plane + c], gap_want, gap_got, bound);
                    return -1;
                }
                if (t->n == t->cap) {
                    size_t cap = t->cap ? 2 * t->cap : 64;
                    struct pool_reroute *r = realloc(t->r, cap * sizeof *r);
                    if (!r)
                        return oom(msg, msz);
                    t->r = r;
                    t->cap = cap;
                }
                t->r[t->n++] = (struct pool_reroute){ .top = (p * (size_t)g.PH + (size_t)ph) * g.PW + (size_t)pw,
                                                      .from = p * plane + (size_t)a,
                                                      .to = p * plane + (size_t)c };
                if (gap_want > t->max_gap)
                    t->max_gap = gap_want;
            }
    return 0;
}

int pool_move_ties(struct net_layer *nl, const struct pool_ties *t)
{
    if (!t->n || !nl->need_backward || !nl->bottom_need_backward[0])
        return 0;
    float *bd = tensor_diff(nl->bottom[0]);
    const float *td = tensor_cdiff(nl->top[0]);
    if (!bd || !td)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        bd[t->r[i].from] -= td[t->r[i].top];
        bd[t->r[i].to] += td[t->r[i].top];
    }
    return 0;
}

void pool_mask_with_ties(const struct net_layer *nl, const struct pool_ties *t, float *mask, size_t n)
{
    size_t plane = (size_t)nl->bottom[0]->shape[2] * (size_t)nl->bottom[0]->shape[3];
    for (size_t i = 0; i < t->n; i++)
        if (t->r[i].top < n)
            mask[t->r[i].top] = (float)(t->r[i].from % plane);
}

void pool_ties_free(struct pool_ties *t)
{
    free(t->r);
    memset(t, 0, sizeof *t);
}
