/* The loss family on the CPU: Caffe's softmax (on crema's threads), the
 * loss layers' loops and Accuracy, each with Caffe's order of operations
 * (the golden cases compare bit for bit). */
#include "cpu/backend_cpu.h"
#include "cpu/threads.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Caffe's kLOG_THRESHOLD: probabilities are clamped here before the log. */
#define LOG_THRESHOLD 1e-20f

/* ---- softmax ---- */

/* One softmax pass; it runs over ranges of the outer x inner positions,
 * each position's channels computed in Caffe's order on one thread. */
struct softmax_job {
    const float *in, *y, *dy;
    float *out;
    int channels, inner;
};

/* Positions handled together: consecutive inner positions of one outer
 * index, whose running maxima or sums live in a stack buffer. */
#define SOFTMAX_BLOCK 256

static void softmax_forward_block(const struct softmax_job *job, size_t i, size_t k0, size_t m)
{
    const size_t inner = (size_t)job->inner, dim = (size_t)job->channels * inner;
    const int channels = job->channels;
    float *o = job->out + i * dim + k0, scale[SOFTMAX_BLOCK];
    if (job->out != job->in) {
        const float *x = job->in + i * dim + k0;
        for (int j = 0; j < channels; j++)
            memcpy(o + (size_t)j * inner, x + (size_t)j * inner, m * sizeof(float));
    }
    /* Caffe starts from the first plane and takes the max over all. */
    memcpy(scale, o, m * sizeof(float));
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++) {
            float v = o[(size_t)j * inner + k];
            if (v > scale[k])
                scale[k] = v;
        }
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            o[(size_t)j * inner + k] = expf(o[(size_t)j * inner + k] - scale[k]);
    for (size_t k = 0; k < m; k++)
        scale[k] = 0.f;
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            scale[k] += o[(size_t)j * inner + k];
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            o[(size_t)j * inner + k] /= scale[k];
}

/* bottom_diff = (top_diff - <top_diff, top_data>) * top_data, per position. */
static void softmax_backward_block(const struct softmax_job *job, size_t i, size_t k0, size_t m)
{
    const size_t inner = (size_t)job->inner, dim = (size_t)job->channels * inner;
    const int channels = job->channels;
    float *d = job->out + i * dim + k0, scale[SOFTMAX_BLOCK];
    const float *y = job->y + i * dim + k0;
    if (job->out != job->dy) {
        const float *dy = job->dy + i * dim + k0;
        for (int j = 0; j < channels; j++)
            memcpy(d + (size_t)j * inner, dy + (size_t)j * inner, m * sizeof(float));
    }
    for (size_t k = 0; k < m; k++) {
        float s = 0.f;
        for (int j = 0; j < channels; j++)
            s += d[(size_t)j * inner + k] * y[(size_t)j * inner + k];
        scale[k] = s;
    }
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            d[(size_t)j * inner + k] -= scale[k];
    for (int j = 0; j < channels; j++)
        for (size_t k = 0; k < m; k++)
            d[(size_t)j * inner + k] *= y[(size_t)j * inner + k];
}

/* Positions [p0, p1) of the flattened outer x inner, cut into blocks that
 * stay within one outer index. */
static void softmax_blocks(const struct softmax_job *job, size_t p0, size_t p1,
                           void (*block)(const struct softmax_job *, size_t, size_t, size_t))
{
    const size_t inner = (size_t)job->inner;
    while (p0 < p1) {
        size_t i = p0 / inner, k = p0 % inner;
        size_t m = inner - k;
        if (m > p1 - p0)
            m = p1 - p0;
        if (m > SOFTMAX_BLOCK)
            m = SOFTMAX_BLOCK;
        block(job, i, k, m);
        p0 += m;
    }
}

static int softmax_forward_range(void *ctx, size_t p0, size_t p1)
{
    softmax_blocks(ctx, p0, p1, softmax_forward_block);
    return 0;
}

static int softmax_backward_range(void *ctx, size_t p0, size_t p1)
{
    softmax_blocks(ctx, p0, p1, softmax_backward_block);
    return 0;
}

static void c_softmax_forward(const struct backend *be, const float *in, float *out, int outer, int channels,
                              int inner)
{
    if (inner <= 0 || channels <= 0 || outer <= 0)
        return;
    struct softmax_job job = { .in = in, .out = out, .channels = channels, .inner = inner };
    cpu_parallel_for((size_t)outer * (size_t)inner, cpu_grain(16 * (size_t)channels), softmax_forward_range, &job);
}

static void c_softmax_backward(const struct backend *be, const float *top_data, const float *top_diff,
                               float *bottom_diff, int outer, int channels, int inner)
{
    if (inner <= 0 || channels <= 0 || outer <= 0)
        return;
    struct softmax_job job = { .y = top_data, .dy = top_diff, .out = bottom_diff, .channels = channels,
                               .inner = inner };
    cpu_parallel_for((size_t)outer * (size_t)inner, cpu_grain(4 * (size_t)channels), softmax_backward_range,
                     &job);
}

/* ---- labels and normalization ---- */

enum { LABEL_IGNORED = -1, LABEL_BAD = -2 };

/* A label as Caffe's static_cast<int> reads it: the class, or LABEL_IGNORED
 * or LABEL_BAD (see core/ops_loss.h). */
static int label_class(float v, int classes, bool has_ignore, int ignore)
{
    if (!(v > -2147483648.f && v < 2147483648.f))
        return LABEL_BAD;
    int lab = (int)v;
    if (has_ignore && lab == ignore)
        return LABEL_IGNORED;
    return lab >= 0 && lab < classes ? lab : LABEL_BAD;
}


static void fill_nan(float *x, size_t n, size_t stride)
{
    for (size_t i = 0; i < n; i++)
        x[i * stride] = NAN;
}

/* ---- SoftmaxWithLoss ---- */

static void c_softmax_loss_forward(const struct backend *be, const float *prob, const float *label,
                                   const struct loss_labels *g, float *loss_out, float *normalizer)
{
    size_t dim = (size_t)g->channels * (size_t)g->inner;
    int count = 0;
    float loss = 0.f;
    for (int i = 0; i < g->outer; i++)
        for (int j = 0; j < g->inner; j++) {
            size_t at = (size_t)i * g->inner + j;
            int lab = label_class(label[at], g->channels, g->has_ignore, g->ignore);
            if (lab == LABEL_IGNORED)
                continue;
            loss -= lab == LABEL_BAD ? NAN : logf(fmaxf(prob[i * dim + (size_t)lab * g->inner + j], FLT_MIN));
            count++;
        }
    *normalizer = loss_normalizer(g->norm, g->outer, g->inner, count);
    *loss_out = loss / *normalizer;
}

static void c_softmax_loss_backward(const struct backend *be, const float *prob, const float *label,
                                    const struct loss_labels *g, const float *loss_weight, const float *normalizer,
                                    float *dx)
{
    size_t dim = (size_t)g->channels * (size_t)g->inner, n = (size_t)g->outer * dim;
    memcpy(dx, prob, n * sizeof(float));
    for (int i = 0; i < g->outer; i++)
        for (int j = 0; j < g->inner; j++) {
            int lab = label_class(label[(size_t)i * g->inner + j], g->channels, g->has_ignore, g->ignore);
            if (lab == LABEL_IGNORED) {
                for (int c = 0; c < g->channels; c++)
                    dx[i * dim + (size_t)c * g->inner + j] = 0.f;
            } else if (lab >= 0) {
                dx[i * dim + (size_t)lab * g->inner + j] -= 1.f;
            }
        }
    float w = loss_weight[0] / normalizer[0];
    for (size_t i = 0; i < n; i++)
        dx[i] *= w;
    for (int i = 0; i < g->outer; i++)
        for (int j = 0; j < g->inner; j++)
            if (label_class(label[(size_t)i * g->inner + j], g->channels, g->has_ignore, g->ignore) == LABEL_BAD)
                fill_nan(dx + i * dim + (size_t)j, (size_t)g->channels, (size_t)g->inner);
}

/* ---- InfogainLoss ---- */

static void c_infogain_loss_forward(const struct backend *be, const float *prob, const float *label,
                                    const float *h, const struct loss_labels *g, float *loss_out,
                                    float *normalizer)
{
    int n = g->channels, count = 0;
    float loss = 0.f;
    for (int i = 0; i < g->outer; i++)
        for (int j = 0; j < g->inner; j++) {
            int lab = label_class(label[(size_t)i * g->inner + j], n, g->has_ignore, g->ignore);
            if (lab == LABEL_IGNORED)
                continue;
            if (lab == LABEL_BAD)
                loss = NAN;
            else
                for (int k = 0; k < n; k++)
                    loss -= h[(size_t)lab * n + k] *
                            logf(fmaxf(prob[(size_t)i * g->inner * n + (size_t)k * g->inner + j], LOG_THRESHOLD));
            count++;
        }
    *normalizer = loss_normalizer(g->norm, g->outer, g->inner, count);
    *loss_out = loss / *normalizer;
}

static void c_infogain_sum_rows(const struct backend *be, const float *h, int n, float *sum_rows)
{
    for (int r = 0; r < n; r++) {
        float acc = 0.f;
        for (int c = 0; c < n; c++)
            acc += h[(size_t)r * n + c];
        sum_rows[r] = acc;
    }
}

static void c_infogain_loss_backward(const struct backend *be, const float *prob, const float *label,
                                     const float *h, const float *sum_rows, const struct loss_labels *g,
                                     const float *loss_weight, const float *normalizer, float *dx)
{
    int n = g->channels;
    size_t dim = (size_t)n * (size_t)g->inner, total = (size_t)g->outer * dim;
    for (int i = 0; i < g->outer; i++)
        for (int j = 0; j < g->inner; j++) {
            int lab = label_class(label[(size_t)i * g->inner + j], n, g->has_ignore, g->ignore);
            for (int k = 0; k < n; k++) {
                size_t o = i * dim + (size_t)k * g->inner + j;
                if (lab == LABEL_IGNORED)
                    dx[o] = 0.f;
                else if (lab == LABEL_BAD)
                    dx[o] = NAN;
                else
                    dx[o] = prob[o] * sum_rows[lab] - h[(size_t)lab * n + k];
            }
        }
    float w = loss_weight[0] / normalizer[0];
    for (size_t i = 0; i < total; i++)
        dx[i] *= w;
}

/* ---- SigmoidCrossEntropyLoss ---- */

static bool sigmoid_ce_ignored(const struct loss_labels *g, float target)
{
    return g->has_ignore && target > -2147483648.f && target < 2147483648.f && (int)target == g->ignore;
}

static void c_sigmoid_ce_loss_forward(const struct backend *be, const float *x, const float *t,
                                      const struct loss_labels *g, float *sig, float *loss_out, float *normalizer)
{
    size_t n = (size_t)g->outer * (size_t)g->inner;
    for (size_t i = 0; i < n; i++)
        sig[i] = (float)(0.5 * tanh(0.5 * (double)x[i]) + 0.5);
    int valid = 0;
    float loss = 0.f;
    for (size_t i = 0; i < n; i++) {
        if (sigmoid_ce_ignored(g, t[i]))
            continue;
        /* log(1 + exp(-|x|)) form: never overflows. */
        float pos = x[i] >= 0 ? 1.f : 0.f;
        loss -= x[i] * (t[i] - pos) - logf(1.f + expf(x[i] - 2.f * x[i] * pos));
        valid++;
    }
    *normalizer = loss_normalizer(g->norm, g->outer, g->inner, valid);
    *loss_out = loss / *normalizer;
}

static void c_sigmoid_ce_loss_backward(const struct backend *be, const float *sig, const float *t,
                                       const struct loss_labels *g, const float *loss_weight,
                                       const float *normalizer, float *dx)
{
    size_t n = (size_t)g->outer * (size_t)g->inner;
    for (size_t i = 0; i < n; i++)
        dx[i] = sig[i] - t[i];
    for (size_t i = 0; i < n; i++)
        if (sigmoid_ce_ignored(g, t[i]))
            dx[i] = 0.f;
    float w = loss_weight[0] / normalizer[0];
    for (size_t i = 0; i < n; i++)
        dx[i] *= w;
}

/* ---- EuclideanLoss ---- */

static void c_euclidean_loss_forward(const struct backend *be, size_t n, int num, const float *a, const float *b,
                                     float *diff, float *loss)
{
    float dot = 0.f;
    for (size_t i = 0; i < n; i++) {
        diff[i] = a[i] - b[i];
        dot += diff[i] * diff[i];
    }
    *loss = dot / (float)num / 2.f;
}

static void c_euclidean_loss_backward(const struct backend *be, size_t n, int num, float sign, const float *diff,
                                      const float *loss_weight, float *dx)
{
    float alpha = sign * loss_weight[0] / (float)num;
    for (size_t j = 0; j < n; j++)
        dx[j] = alpha * diff[j];
}

/* ---- HingeLoss ---- */

static void c_hinge_loss_forward(const struct backend *be, int num, int dim, bool l2, const float *x,
                                 const float *label, float *diff, float *loss)
{
    size_t count = (size_t)num * (size_t)dim;
    memcpy(diff, x, count * sizeof(float));
    for (int i = 0; i < num; i++) {
        int lab = label_class(label[i], dim, false, 0);
        if (lab >= 0)
            diff[(size_t)i * dim + (size_t)lab] *= -1.f;
    }
    for (size_t i = 0; i < count; i++)
        diff[i] = fmaxf(0.f, 1.f + diff[i]);
    for (int i = 0; i < num; i++)
        if (label_class(label[i], dim, false, 0) == LABEL_BAD)
            fill_nan(diff + (size_t)i * dim, (size_t)dim, 1);
    float acc = 0.f;
    if (l2)
        for (size_t i = 0; i < count; i++)
            acc += diff[i] * diff[i];
    else
        for (size_t i = 0; i < count; i++)
            acc += fabsf(diff[i]);
    *loss = acc / (float)num;
}

static void c_hinge_loss_backward(const struct backend *be, int num, int dim, bool l2, const float *diff,
                                  const float *label, const float *loss_weight, float *dx)
{
    size_t count = (size_t)num * (size_t)dim;
    memcpy(dx, diff, count * sizeof(float));
    for (int i = 0; i < num; i++) {
        int lab = label_class(label[i], dim, false, 0);
        if (lab >= 0)
            dx[(size_t)i * dim + (size_t)lab] *= -1.f;
    }
    if (l2) {
        float w = loss_weight[0] * 2.f / (float)num;
        for (size_t i = 0; i < count; i++)
            dx[i] *= w;
    } else {
        float w = loss_weight[0] / (float)num;
        for (size_t i = 0; i < count; i++)
            dx[i] = (float)((dx[i] > 0) - (dx[i] < 0)) * w;
    }
    for (int i = 0; i < num; i++)
        if (label_class(label[i], dim, false, 0) == LABEL_BAD)
            fill_nan(dx + (size_t)i * dim, (size_t)dim, 1);
}

/* ---- ContrastiveLoss ---- */

/* Caffe tests static_cast<int>(sim) != 0. */
static bool contrastive_similar(float v)
{
    return v >= 1.f || v <= -1.f;
}

static void c_contrastive_loss_forward(const struct backend *be, int num, int channels, float margin, bool legacy,
                                       const float *a, const float *b, const float *sim, float *diff,
                                       float *dist_sq, float *loss_out)
{
    size_t c_n = (size_t)channels;
    for (size_t i = 0; i < (size_t)num * c_n; i++)
        diff[i] = a[i] - b[i];
    float loss = 0.f;
    for (int i = 0; i < num; i++) {
        const float *d = diff + (size_t)i * c_n;
        float dsq = 0.f;
        for (size_t c = 0; c < c_n; c++)
            dsq += d[c] * d[c];
        dist_sq[i] = dsq;
        if (contrastive_similar(sim[i])) {
            loss += dsq;
        } else if (legacy) {
            loss += fmaxf(margin - dsq, 0.f);
        } else {
            float dist = fmaxf(margin - sqrtf(dsq), 0.f);
            loss += dist * dist;
        }
    }
    *loss_out = loss / (float)num / 2.f;
}

static void c_contrastive_loss_backward(const struct backend *be, int num, int channels, float margin, bool legacy,
                                        float sign, const float *diff, const float *dist_sq, const float *sim,
                                        const float *loss_weight, float *dx)
{
    size_t c_n = (size_t)channels;
    float alpha = sign * loss_weight[0] / (float)num;
    for (int j = 0; j < num; j++) {
        const float *d = diff + (size_t)j * c_n;
        float *o = dx + (size_t)j * c_n;
        float scale;
        if (contrastive_similar(sim[j])) {
            scale = alpha;
        } else {
            float mdist, beta;
            if (legacy) {
                mdist = margin - dist_sq[j];
                beta = -alpha;
            } else {
                float dist = sqrtf(dist_sq[j]);
                mdist = margin - dist;
                beta = -alpha * mdist / (dist + 1e-4f);
            }
            scale = mdist > 0.f ? beta : 0.f;
        }
        for (size_t c = 0; c < c_n; c++)
            o[c] = scale * d[c];
    }
}

/* ---- MultinomialLogisticLoss ---- */

static void c_multinomial_loss_forward(const struct backend *be, int num, int dim, const float *x,
                                       const float *label, float *loss_out)
{
    float loss = 0.f;
    for (int i = 0; i < num; i++) {
        int lab = label_class(label[i], dim, false, 0);
        loss -= lab < 0 ? NAN : logf(fmaxf(x[(size_t)i * dim + (size_t)lab], LOG_THRESHOLD));
    }
    *loss_out = loss / (float)num;
}

static void c_multinomial_loss_backward(const struct backend *be, int num, int dim, const float *x,
                                        const float *label, const float *loss_weight, float *dx)
{
    memset(dx, 0, (size_t)num * (size_t)dim * sizeof(float));
    float scale = -loss_weight[0] / (float)num;
    for (int i = 0; i < num; i++) {
        int lab = label_class(label[i], dim, false, 0);
        if (lab < 0) {
            fill_nan(dx + (size_t)i * dim, (size_t)dim, 1);
            continue;
        }
        size_t at = (size_t)i * dim + (size_t)lab;
        dx[at] = scale / fmaxf(x[at], LOG_THRESHOLD);
    }
}

/* ---- Accuracy ---- */

/* Counting the classes ranked before the label's is the same test as
 * selecting the top k (value, index) pairs and looking for the label among
 * them: the order is total, so the label is selected iff fewer than k pairs
 * precede it. */
static float accuracy_hit(const float *x, int classes, size_t inner, int lab, int top_k)
{
    float xl = x[(size_t)lab * inner];
    int before = 0;
    for (int k = 0; k < classes && before < top_k; k++) {
        float v = x[(size_t)k * inner];
        before += v > xl || (v == xl && k > lab);
    }
    return before < top_k ? 1.f : 0.f;
}

static void c_accuracy_forward(const struct backend *be, const float *x, const float *label,
                               const struct loss_labels *g, int top_k, float *hit, float *accuracy,
                               float *per_class)
{
    size_t dim = (size_t)g->channels * (size_t)g->inner, positions = (size_t)g->outer * (size_t)g->inner;
    long long hits = 0, count = 0;
    bool bad = false;
    for (int i = 0; i < g->outer; i++)
        for (int j = 0; j < g->inner; j++) {
            size_t at = (size_t)i * g->inner + j;
            int lab = label_class(label[at], g->channels, g->has_ignore, g->ignore);
            if (lab < 0) {
                hit[at] = (float)lab;
                bad = bad || lab == LABEL_BAD;
                continue;
            }
            hit[at] = accuracy_hit(x + i * dim + (size_t)j, g->channels, (size_t)g->inner, lab, top_k);
            hits += hit[at] > 0.f;
            count++;
        }
    /* Caffe divides by the count even when it is 0 (every label ignored). */
    *accuracy = bad || !count ? NAN : (float)hits / (float)count;
    if (!per_class)
        return;
    for (int c = 0; c < g->channels; c++) {
        long long n = 0, h = 0;
        for (size_t p = 0; p < positions; p++)
            if (hit[p] >= 0.f && label_class(label[p], g->channels, g->has_ignore, g->ignore) == c) {
                n++;
                h += hit[p] > 0.f;
            }
        per_class[c] = n ? (float)h / (float)n : 0.f;
    }
}

const struct loss_ops cpu_loss_ops = {
    .softmax_forward = c_softmax_forward,
    .softmax_backward = c_softmax_backward,
    .softmax_loss_forward = c_softmax_loss_forward,
    .softmax_loss_backward = c_softmax_loss_backward,
    .infogain_loss_forward = c_infogain_loss_forward,
    .infogain_sum_rows = c_infogain_sum_rows,
    .infogain_loss_backward = c_infogain_loss_backward,
    .sigmoid_ce_loss_forward = c_sigmoid_ce_loss_forward,
    .sigmoid_ce_loss_backward = c_sigmoid_ce_loss_backward,
    .euclidean_loss_forward = c_euclidean_loss_forward,
    .euclidean_loss_backward = c_euclidean_loss_backward,
    .hinge_loss_forward = c_hinge_loss_forward,
    .hinge_loss_backward = c_hinge_loss_backward,
    .contrastive_loss_forward = c_contrastive_loss_forward,
    .contrastive_loss_backward = c_contrastive_loss_backward,
    .multinomial_loss_forward = c_multinomial_loss_forward,
    .multinomial_loss_backward = c_multinomial_loss_backward,
    .accuracy_forward = c_accuracy_forward,
};
