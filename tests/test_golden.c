/* Every layer and net case of ../shared/golden (README's recipe): build the
 * net, load the stored weights and inputs, forward, seed the output diffs,
 * backward, and compare every blob and gradient with Caffe's.
 * `test_golden relu conv` runs the cases whose name contains an argument. */
#include "check.h"
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

struct tol {
    double rtol, atol;
};

struct outcome {
    bool failed;
    char msg[1024];   /* first failure */
    int n_fail;       /* failing comparisons */
    double worst_fwd; /* max |e - g| / max |g| over forward comparisons */
    double worst_bwd;
    bool backward;
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

/* Outputs that are integers (indices, counts, pooling masks) must match. */
static bool blob_is_integer(const struct net *net, int blob_id)
{
    for (int i = 0; i < net->n_layers; i++) {
        const struct net_layer *nl = &net->layers[i];
        for (int j = 0; j < nl->n_top; j++) {
            if (nl->top_id[j] != blob_id)
                continue;
            const char *t = nl->layer->kind->type;
            if (strcmp(t, "ArgMax") == 0 || strcmp(t, "Accuracy") == 0)
                return true;
            if (strcmp(t, "Pooling") == 0 && j == 1)
                return true;
        }
    }
    return false;
}

/* Compares n values; records the worst relative error in *worst. */
static void compare(struct outcome *o, const char *what, const float *got, const float *want, size_t n,
                    struct tol tol, bool exact, double *worst)
{
    double gmax = 0, emax = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double g = fabs((double)want[i]);
        if (g > gmax)
            gmax = g;
        double e = fabs((double)got[i] - (double)want[i]);
        if (e > emax || isnan(got[i])) {
            emax = isnan(got[i]) ? INFINITY : e;
            at = i;
        }
    }
    double rel = gmax > 0 ? emax / gmax : emax;
    if (rel > *worst)
        *worst = rel;
    double limit = exact ? 0 : tol.rtol * gmax + tol.atol;
    if (emax > limit)
        fail(o, "%s: max |err| %.3g > %.3g (at %zu: got %.9g, want %.9g; max |golden| %.3g)", what, emax, limit, at,
             (double)got[at], (double)want[at], gmax);
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

static void compare_blob(struct outcome *o, const char *what, struct tensor *t, const Caffe__BlobProto *bp,
                         bool diff, struct tol tol, bool exact, double *worst)
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
    const float *got = diff ? tensor_diff(t) : tensor_data(t);
    compare(o, what, got, diff ? bp->diff : bp->data, n, tol, exact, worst);
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
        net_free(net);
        return;
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
    if (o->failed) {
        net_free(net);
        return;
    }

    /* 5. Forward and compare. */
    float loss = 0;
    if ((rc = net_forward(net, &loss))) {
        fail(o, "forward: %s", crema_errmsg());
        net_free(net);
        return;
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
            compare_blob(o, what, net->blobs[id], e->blobs[0], false, tol, blob_is_integer(net, id), &o->worst_fwd);
        } else if (strncmp(e->name, "after_forward/", 14) == 0) {
            struct layer *l = net_layer_by_name(net, e->name + 14);
            if (!l || (size_t)l->n_blobs != e->n_blobs) {
                fail(o, "%s: layer missing or %d blobs for %zu", e->name, l ? l->n_blobs : -1, e->n_blobs);
                continue;
            }
            for (size_t j = 0; j < e->n_blobs; j++) {
                snprintf(what, sizeof what, "layer %s param %zu after forward", e->name + 14, j);
                compare_blob(o, what, l->blobs[j], e->blobs[j], false, tol, false, &o->worst_fwd);
            }
        }
    }

    /* 6. Seed the outputs' diffs, backward, compare gradients. */
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
        if (!o->failed && (rc = net_backward(net)))
            fail(o, "backward: %s", crema_errmsg());
        for (size_t i = 0; i < g->n_layer && !rc; i++) {
            const Caffe__LayerParameter *e = g->layer[i];
            if (!e->name || e->n_blobs == 0)
                continue;
            if (strncmp(e->name, "blob/", 5) == 0) {
                int id = net_blob_index(net, e->name + 5);
                if (id < 0 || !e->blobs[0]->n_diff)
                    continue;
                snprintf(what, sizeof what, "blob %s diff", e->name + 5);
                compare_blob(o, what, net->blobs[id], e->blobs[0], true, tol, false, &o->worst_bwd);
            } else if (!strchr(e->name, '/')) {
                struct layer *l = net_layer_by_name(net, e->name);
                for (size_t j = 0; l && j < e->n_blobs && j < (size_t)l->n_blobs; j++) {
                    if (!e->blobs[j]->n_diff)
                        continue;
                    snprintf(what, sizeof what, "layer %s param %zu diff", e->name, j);
                    compare_blob(o, what, l->blobs[j], e->blobs[j], true, tol, false, &o->worst_bwd);
                }
            }
        }
    }
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
    if (test_be->device != DEVICE_CPU) /* a GPU sums in its own order: 1e-4 of Caffe's values, forward */
        tols[0].rtol = 1e-4;
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
            if (o.failed) {
                fprintf(stderr, "FAIL %s: %s\n", name, o.msg);
                failed++;
            } else if (o.msg[0]) {
                fprintf(stderr, "ok   %s: %s\n", name, o.msg);
                passed++;
            } else if (o.backward) {
                fprintf(stderr, "ok   %s: worst rel err %.1e (forward) %.1e (backward)\n", name, o.worst_fwd,
                        o.worst_bwd);
                passed++;
            } else {
                fprintf(stderr, "ok   %s: worst rel err %.1e (forward; no backward)\n", name, o.worst_fwd);
                passed++;
            }
            free(list[i]);
        }
        free(list);
        free(base);
    }
    fprintf(stderr, "%d passed, %d failed, 0 skipped\n", passed, failed);
    return failed ? 1 : 0;
}
