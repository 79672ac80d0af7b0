/* Every layer and net case of ../shared/golden (README's recipe): build the
 * net, load the stored weights and inputs, forward, seed the output diffs,
 * backward, and compare every blob and gradient with Caffe's.
 * `test_golden relu conv` runs the cases whose name contains an argument. */
#include "check.h"
#include "golden_bounds.h"
#include "core/blob_proto.h"
#include "net/device.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per blob, max |crema - Caffe| <= rtol * scale + atol, the comparison
 * ../shared/golden/README.md suggests, with its rtol and atol (layers/ 1e-5
 * and 1e-6, nets/ 1e-4 and 1e-6). The scale is the blob's largest |Caffe
 * value|, or, where larger, the largest magnitude of the terms that a
 * Convolution, Deconvolution or InnerProduct summed into one of its values
 * (golden_bounds.h).
 * Why that scale: a float32 sum of K products, in any order, is within
 * gamma_K * sum|terms| of the exact sum (gamma_K ~ K * 2^-24; Higham 3.1),
 * and nothing bounds its error relative to |result| when the terms cancel.
 * The sums here have up to ~4600 terms (LeNet's conv1 gradients, gamma_K
 * 3e-4), so rtol is of the size of that bound, now against the scale the
 * bound is stated for. The bias gradients of the Convolutions that feed
 * TRAIN BatchNorms (nets/resnet20_block_train) are 0 in exact arithmetic:
 * Caffe stores ~4e-6 of rounding noise summed from terms of up to ~300, and
 * another OpenBLAS kernel (another summation order) gives other noise of
 * that size. Against max|golden| they failed; against the terms they use
 * less than 4e-4 of the bound. The terms' magnitude is at least the exact
 * |value|, so the scale never shrinks; for blobs without cancellation it
 * grows 1 to 16 times.
 * Measured with the kernels Haswell, Zen, Sandybridge, Prescott and this
 * machine's own (OPENBLAS_CORETYPE), the worst error is 0.03 of its bound,
 * and atol decides nowhere (the suite passes with atol 0 as well).
 * Integer outputs (indices, counts, pooling masks) must match exactly. */
struct tol {
    double rtol, atol;
};

struct outcome {
    bool failed;
    char msg[1024];   /* first failure */
    int n_fail;       /* failing comparisons */
    double worst;     /* max over comparisons of max |err| / bound */
    char worst_what[256];
    bool backward;
    size_t n_ties;    /* max-pooling windows decided the other way, within rounding */
    double tie_gap;   /* the largest difference of Caffe's values among them */
};

static void fail(struct outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct outcome *o, const char *fmt, ...)
{
    va_list ap;
    if (o->n_fail++ < 6) {
        char line[1024];
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        if (!o->failed)
            snprintf(o->msg, sizeof o->msg, "%s", line);
        else
            fprintf(stderr, "      also: %s\n", line);
    }
    o->failed = true;
}

static const Caffe__LayerParameter *golden_entry(const Caffe__NetParameter *g, const char *prefix, const char *name)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < g->n_layer; i++) {
        const char *n = g->layer[i]->name;
        if (n && strncmp(n, prefix, pl) == 0 && strcmp(n + pl, name) == 0)
            return g->layer[i];
    }
    return NULL;
}

/* Outputs that are integers (indices, counts, pooling masks) must match;
 * *mask_layer gets the Pooling layer whose mask the blob is, else -1. */
static bool blob_is_integer(const struct net *net, int blob_id, int *mask_layer)
{
    *mask_layer = -1;
    for (int i = 0; i < net->n_layers; i++) {
        const struct net_layer *nl = &net->layers[i];
        for (int j = 0; j < nl->n_top; j++) {
            if (nl->top_id[j] != blob_id)
                continue;
            const char *t = nl->layer->kind->type;
            if (strcmp(t, "ArgMax") == 0 || strcmp(t, "Accuracy") == 0)
                return true;
            if (strcmp(t, "Pooling") == 0 && j == 1) {
                *mask_layer = i;
                return true;
            }
        }
    }
    return false;
}

/* The golden name of the values blob blob_id holds: its own, or, for a
 * Split's top (Caffe's are not stored), the name of the Split's bottom. */
static const char *golden_blob_name(const struct net *net, int blob_id)
{
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const struct net_layer *nl = &net->layers[i];
        for (int j = 0; j < nl->n_top; j++)
            if (nl->top_id[j] == blob_id) {
                if (strcmp(nl->layer->kind->type, "Split") == 0 && nl->n_bottom == 1)
                    return golden_blob_name(net, nl->bottom_id[0]);
                return net->blob_names[blob_id];
            }
    }
    return net->blob_names[blob_id];
}

static double bound_of(struct tol tol, double scale)
{
    return tol.rtol * scale + tol.atol;
}

static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)v[i]) > m)
            m = fabs((double)v[i]);
    return m;
}

/* Compares n values; mag is the largest magnitude of the terms behind
 * them (0: none known). Records the worst err / bound. */
static void compare(struct outcome *o, const char *what, const float *got, const float *want, size_t n,
                    struct tol tol, double mag, bool exact)
{
    double gmax = max_abs(want, n), emax = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (e > emax || isnan(got[i])) {
            emax = isnan(got[i]) ? INFINITY : e;
            at = i;
        }
    }
    double scale = mag > gmax ? mag : gmax;
    double limit = exact ? 0 : bound_of(tol, scale);
    double ratio = limit > 0 ? emax / limit : (emax > 0 ? INFINITY : 0);
    if (ratio > o->worst) {
        o->worst = ratio;
        snprintf(o->worst_what, sizeof o->worst_what, "%s", what);
    }
    if (emax > limit) {
        char by[96] = "";
        if (mag > gmax)
            snprintf(by, sizeof by, "; terms summed up to %.3g", mag);
        fail(o, "%s: max |err| %.3g > %.3g (at %zu: got %.9g, want %.9g; max |golden| %.3g%s)", what, emax, limit, at,
             (double)got[at], (double)want[at], gmax, by);
    }
}

static bool proto_shape_matches(const struct tensor *t, const Caffe__BlobProto *bp)
{
    int na = 0, shape[TENSOR_MAX_AXES];
    if (blob_proto_shape(bp, &na, shape) != CREMA_OK || na != t->num_axes)
        return false;
    for (int i = 0; i < na; i++)
        if (shape[i] != t->shape[i])
            return false;
    return true;
}

/* The least rtol of forward comparisons (set for a GPU in main). */
static double fwd_rtol_min;

/* want: the values to compare with when not the blob proto's own (NULL). */
static void compare_blob(struct outcome *o, const char *what, struct tensor *t, const Caffe__BlobProto *bp,
                         bool diff, struct tol tol, double mag, bool exact, const float *want)
{
    char s1[256];
    size_t n = diff ? bp->n_diff : bp->n_data;
    if (!diff && !proto_shape_matches(t, bp)) {
        int na = 0, shape[TENSOR_MAX_AXES];
        blob_proto_shape(bp, &na, shape);
        char s2[256] = "";
        size_t off = 0;
        for (int i = 0; i < na && off < sizeof s2; i++)
            off += (size_t)snprintf(s2 + off, sizeof s2 - off, "%d ", shape[i]);
        fail(o, "%s: shape %s, golden %s", what, tensor_shape_string(t, s1, sizeof s1), s2);
        return;
    }
    if (n != t->count) {
        fail(o, "%s: %zu values, golden has %zu", what, t->count, n);
        return;
    }
    const float *got = diff ? tensor_cdiff(t) : tensor_cdata(t);
    if (!got) {
        fail(o, "%s: out of memory", what);
        return;
    }
    /* On a GPU the bar for forward values is 1e-4 of Caffe's (cuDNN
     * and cuBLAS sum in orders of their own); gradients keep the CPU's
     * bound, scaled by the terms summed. */
    if (!diff && fwd_rtol_min > tol.rtol)
        tol.rtol = fwd_rtol_min;
    compare(o, what, got, want ? want : diff ? bp->diff : bp->data, n, tol, mag, exact);
}

static void copy_data_in(struct outcome *o, struct net *net, struct tensor *t, const Caffe__BlobProto *bp,
                         const char *name)
{
    int na = 0, shape[TENSOR_MAX_AXES];
    if (blob_proto_shape(bp, &na, shape) || bp->n_data == 0) {
        fail(o, "golden blob/%s has no usable data", name);
        return;
    }
    if (!proto_shape_matches(t, bp)) {
        int rc = tensor_reshape(t, na, shape);
        if (!rc)
            rc = net_reshape(net);
        if (rc) {
            fail(o, "reshaping input %s: %s", name, crema_errmsg());
            return;
        }
    }
    if (bp->n_data != t->count) {
        fail(o, "golden blob/%s: %zu values for %zu", name, bp->n_data, t->count);
        return;
    }
    memcpy(tensor_data(t), bp->data, t->count * sizeof(float));
}

/* Where the nets compute: $CREMA_TEST_DEVICE (cpu, cpu-mirror, cuda:N). */
static const struct backend *test_be;
/* After MAX Pooling layer i ran forward: the windows whose first maximum
 * rounding decided otherwise than in Caffe, each checked to be a tie. The
 * bound is the one the comparison of the pooling's bottom allows: values
 * closer than that are equal as far as this test can tell. */
static void find_pool_ties(struct outcome *o, struct net *net, int i, const Caffe__NetParameter *g, struct tol tol,
                           const struct mags *ms, struct pool_ties *t)
{
    struct net_layer *nl = &net->layers[i];
    struct tensor *b = nl->bottom[0];
    const Caffe__LayerParameter *e = golden_entry(g, "blob/", golden_blob_name(net, nl->bottom_id[0]));
    /* Without Caffe's bottom values there are no ties to tell; the gradient
     * is then compared as it is. */
    if (!e || e->n_blobs != 1 || e->blobs[0]->n_data != b->count)
        return;
    const float *want = e->blobs[0]->data;
    double mag = mags_max(ms, b->data_buf), gmax = max_abs(want, b->count);
    char msg[512];
    if (pool_find_ties(nl, want, bound_of(tol, mag > gmax ? mag : gmax), t, msg, sizeof msg)) {
        fail(o, "layer %s: %s", nl->layer->name, msg);
        return;
    }
    o->n_ties += t->n;
    if (t->max_gap > o->tie_gap)
        o->tie_gap = t->max_gap;
}

static void run_net_case(struct outcome *o, const char *case_name, const Caffe__NetParameter *np,
                         const Caffe__NetParameter *g, struct tol tol)
{
    struct net *net = NULL;
    int rc = net_build(np, NULL, 1, &net);
    if (!rc)
        rc = net_set_backend(net, test_be, test_be->host_memory ? NULL : stderr);
    bool python = strcmp(case_name, "layers/python") == 0;
    if (python) {
        /* crema runs Python layers only from its Python package. */
        if (rc == CREMA_OK)
            fail(o, "a Python layer built in the C library; expected an error naming the Python package");
        else if (!strstr(crema_errmsg(), "Python") || !strstr(crema_errmsg(), "package"))
            fail(o, "the error for a Python layer does not say it needs the Python package: %s", crema_errmsg());
        else
            snprintf(o->msg, sizeof o->msg, "clear error: %s", crema_errmsg());
        net_free(net);
        return;
    }
    if (rc) {
        fail(o, "%s", crema_errmsg());
        return;
    }

    /* 3. Parameters: every entry whose name has no '/'. */
    Caffe__NetParameter w = CAFFE__NET_PARAMETER__INIT;
    Caffe__LayerParameter **sel = calloc(g->n_layer + 1, sizeof *sel);
    struct mags *ms = mags_new();
    struct pool_ties *ties = calloc((size_t)net->n_layers + 1, sizeof *ties);
    if (!sel || !ms || !ties) {
        fail(o, "out of memory");
        free(sel);
        goto out;
    }
    bool has_diff = false;
    for (size_t i = 0; i < g->n_layer; i++) {
        const Caffe__LayerParameter *e = g->layer[i];
        if (e->name && !strchr(e->name, '/'))
            sel[w.n_layer++] = g->layer[i];
        for (size_t j = 0; j < e->n_blobs; j++)
            if (e->name && strncmp(e->name, "blob/", 5) == 0 && e->blobs[j]->n_diff)
                has_diff = true;
    }
    w.layer = sel;
    rc = net_copy_trained_layers(net, &w);
    free(sel);
    if (rc) {
        fail(o, "loading parameters: %s", crema_errmsg());
        goto out;
    }
    for (size_t i = 0; i < g->n_layer; i++) {
        const Caffe__LayerParameter *e = g->layer[i];
        if (e->name && !strchr(e->name, '/') && !net_layer_by_name(net, e->name))
            fail(o, "golden parameters for layer %s, which the net does not have", e->name);
    }
    net_clear_param_diffs(net);

    /* 4. Inputs. */
    for (int i = 0; i < net->n_inputs; i++) {
        const char *name = net->blob_names[net->input_ids[i]];
        const Caffe__LayerParameter *e = golden_entry(g, "blob/", name);
        if (!e || e->n_blobs != 1)
            fail(o, "no golden blob/%s for input %s", name, name);
        else
            copy_data_in(o, net, net->blobs[net->input_ids[i]], e->blobs[0], name);
    }
    if (o->failed)
        goto out;

    /* 5. Forward, a layer at a time (what net_forward does) to record the
     * magnitudes and the pooling ties as each layer leaves them; compare. */
    char msg[512];
    for (int i = 0; i < net->n_layers; i++) {
        struct net_layer *nl = &net->layers[i];
        if ((rc = net_forward_from_to(net, i, i, NULL))) {
            fail(o, "forward: %s", crema_errmsg());
            goto out;
        }
        if (mags_after_forward(ms, nl, msg, sizeof msg)) {
            fail(o, "magnitudes of layer %s: %s", nl->layer->name, msg);
            goto out;
        }
        if (pool_is_max(nl))
            find_pool_ties(o, net, i, g, tol, ms, &ties[i]);
    }
    char what[512];
    for (size_t i = 0; i < g->n_layer; i++) {
        const Caffe__LayerParameter *e = g->layer[i];
        if (!e->name || e->n_blobs == 0)
            continue;
        if (strncmp(e->name, "blob/", 5) == 0) {
            int id = net_blob_index(net, e->name + 5);
            if (id < 0) {
                fail(o, "the net has no blob %s", e->name + 5);
                continue;
            }
            snprintf(what, sizeof what, "blob %s data", e->name + 5);
            int mask_of;
            bool exact = blob_is_integer(net, id, &mask_of);
            float *want = NULL;
            if (mask_of >= 0 && ties[mask_of].n && e->blobs[0]->n_data) {
                /* The mask names crema's choice where a tie went the other way. */
                if (!(want = malloc(e->blobs[0]->n_data * sizeof *want))) {
                    fail(o, "out of memory");
                    continue;
                }
                memcpy(want, e->blobs[0]->data, e->blobs[0]->n_data * sizeof *want);
                pool_mask_with_ties(&net->layers[mask_of], &ties[mask_of], want, e->blobs[0]->n_data);
            }
            struct tensor *t = net->blobs[id];
            compare_blob(o, what, t, e->blobs[0], false, tol, mags_max(ms, t->data_buf), exact, want);
            free(want);
        } else if (strncmp(e->name, "after_forward/", 14) == 0) {
            struct layer *l = net_layer_by_name(net, e->name + 14);
            if (!l || (size_t)l->n_blobs != e->n_blobs) {
                fail(o, "%s: layer missing or %d blobs for %zu", e->name, l ? l->n_blobs : -1, e->n_blobs);
                continue;
            }
            for (size_t j = 0; j < e->n_blobs; j++) {
                snprintf(what, sizeof what, "layer %s param %zu after forward", e->name + 14, j);
                compare_blob(o, what, l->blobs[j], e->blobs[j], false, tol, 0, false, NULL);
            }
        }
    }

    /* 6. Seed the outputs' diffs, backward (a layer at a time again),
     * compare gradients. */
    if (has_diff && !o->failed) {
        o->backward = true;
        for (int i = 0; i < net->n_outputs; i++) {
            int id = net->output_ids[i];
            const char *name = net->blob_names[id];
            const Caffe__LayerParameter *e = golden_entry(g, "seed_diff/", name);
            const float *seed = NULL;
            size_t n = 0;
            if (e && e->n_blobs == 1) {
                seed = e->blobs[0]->data;
                n = e->blobs[0]->n_data;
            } else if ((e = golden_entry(g, "blob/", name)) && e->n_blobs == 1) {
                seed = e->blobs[0]->diff;
                n = e->blobs[0]->n_diff;
            }
            if (!seed)
                continue;
            if (n != net->blobs[id]->count) {
                fail(o, "seed diff for %s: %zu values for %zu", name, n, net->blobs[id]->count);
                continue;
            }
            memcpy(tensor_diff(net->blobs[id]), seed, n * sizeof(float));
        }
        for (int i = net->n_layers - 1; i >= 0 && !o->failed; i--) {
            struct net_layer *nl = &net->layers[i];
            if ((rc = net_backward_from_to(net, i, i))) {
                fail(o, "backward: %s", crema_errmsg());
                break;
            }
            if (mags_after_backward(ms, nl, msg, sizeof msg)) {
                fail(o, "magnitudes of layer %s: %s", nl->layer->name, msg);
                break;
            }
            /* Below a tie decided the other way, compare with Caffe's own
             * decision: move the gradient to Caffe's first maximum. */
            if (pool_move_ties(nl, &ties[i])) {
                fail(o, "out of memory");
                break;
            }
        }
        for (size_t i = 0; i < g->n_layer && !o->failed; i++) {
            const Caffe__LayerParameter *e = g->layer[i];
            if (!e->name || e->n_blobs == 0)
                continue;
            if (strncmp(e->name, "blob/", 5) == 0) {
                int id = net_blob_index(net, e->name + 5);
                if (id < 0 || !e->blobs[0]->n_diff)
                    continue;
                snprintf(what, sizeof what, "blob %s diff", e->name + 5);
                struct tensor *t = net->blobs[id];
                compare_blob(o, what, t, e->blobs[0], true, tol, mags_max(ms, t->diff_buf), false, NULL);
            } else if (!strchr(e->name, '/')) {
                struct layer *l = net_layer_by_name(net, e->name);
                for (size_t j = 0; l && j < e->n_blobs && j < (size_t)l->n_blobs; j++) {
                    if (!e->blobs[j]->n_diff)
                        continue;
                    snprintf(what, sizeof what, "layer %s param %zu diff", e->name, j);
                    compare_blob(o, what, l->blobs[j], e->blobs[j], true, tol, mags_max(ms, l->blobs[j]->diff_buf),
                                 false, NULL);
                }
            }
        }
    }
out:
    for (int i = 0; ties && i < net->n_layers; i++)
        pool_ties_free(&ties[i]);
    free(ties);
    mags_free(ms);
    net_free(net);
}

static void run_case(struct outcome *o, const char *dir, const char *case_name, struct tol tol)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
        fail(o, "getcwd: %s", strerror(errno));
        return;
    }
    if (chdir(dir) != 0) {
        fail(o, "cannot enter %s: %s", dir, strerror(errno));
        return;
    }
    Caffe__NetParameter *np = NULL, *g = NULL;
    int rc = proto_read_text("net.prototxt", &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np);
    if (rc)
        fail(o, "net.prototxt: %s", crema_errmsg());
    else if ((rc = proto_read_binary("golden.caffemodel", &caffe__net_parameter__descriptor,
                                     (ProtobufCMessage **)&g)))
        fail(o, "golden.caffemodel: %s", crema_errmsg());
    else
        run_net_case(o, case_name, np, g, tol);
    if (np)
        proto_free(&np->base);
    if (g)
        proto_free(&g->base);
    if (chdir(cwd) != 0)
        fail(o, "cannot return to %s: %s", cwd, strerror(errno));
}

static int is_case_dir(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    static const char *sections[] = { "layers", "nets" };
    struct tol tols[] = { { 1e-5, 1e-6 }, { 1e-4, 1e-6 } };
    int passed = 0, failed = 0;
    const char *dev = getenv("CREMA_TEST_DEVICE");
    if (device_open(dev, &test_be)) {
        fprintf(stderr, "SKIP device %s: %s\n", dev, crema_errmsg());
        return 77;
    }
    fprintf(stderr, "device: %s\n", test_be->name);
    if (test_be->device != DEVICE_CPU)
        fwd_rtol_min = 1e-4;
    double worst = 0;
    char worst_at[1024] = "";
    for (int s = 0; s < 2; s++) {
        char rel[64];
        snprintf(rel, sizeof rel, "golden/%s", sections[s]);
        char *base = check_shared(rel);
        struct dirent **list = NULL;
        int n = scandir(base, &list, is_case_dir, alphasort);
        if (n < 0) {
            fprintf(stderr, "FAIL cannot list %s: %s\n", base, strerror(errno));
            failed++;
            free(base);
            continue;
        }
        for (int i = 0; i < n; i++) {
            char name[512], dir[4096];
            snprintf(name, sizeof name, "%s/%s", sections[s], list[i]->d_name);
            snprintf(dir, sizeof dir, "%s/%s", base, list[i]->d_name);
            struct stat st;
            bool want = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
            if (want && argc > 1) {
                want = false;
                for (int a = 1; a < argc; a++)
                    if (strstr(name, argv[a]))
                        want = true;
            }
            if (!want) {
                free(list[i]);
                continue;
            }
            struct outcome o = { 0 };
            run_case(&o, dir, name, tols[s]);
            char ties[128] = "";
            if (o.n_ties)
                snprintf(ties, sizeof ties, "; %zu max-pooling ties decided the other way (Caffe's values %.2g apart)",
                         o.n_ties, o.tie_gap);
            if (o.failed) {
                fprintf(stderr, "FAIL %s: %s\n", name, o.msg);
                failed++;
            } else if (o.msg[0]) {
                fprintf(stderr, "ok   %s: %s\n", name, o.msg);
                passed++;
            } else {
                fprintf(stderr, "ok   %s: worst err/bound %.2g%s%s%s%s%s\n", name, o.worst, o.worst_what[0] ? " (" : "",
                        o.worst_what, o.worst_what[0] ? ")" : " (all exact)", o.backward ? "" : "; forward only", ties);
                passed++;
            }
            if (!o.failed && o.worst >= worst) {
                worst = o.worst;
                snprintf(worst_at, sizeof worst_at, "%s, %s", name, o.worst_what);
            }
            free(list[i]);
        }
        free(list);
        free(base);
    }
    if (passed)
        fprintf(stderr, "worst err/bound of the passing cases: %.2g (%s)\n", worst, worst_at);
    fprintf(stderr, "%d passed, %d failed, 0 skipped\n", passed, failed);
    return failed ? 1 : 0;
}
