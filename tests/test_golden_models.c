/* The pretrained models of ../shared/golden/models against Caffe: build the
 * deploy net (TEST), load the original pretrained .caffemodel, feed the exact
 * preprocessed input Caffe saw (blob/<input>), forward, and compare every
 * blob (rtol 1e-4, atol 1e-6) and the top-1/top-5 classes of expected.txt. */
#include "check.h"
#include "core/blob_proto.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define RTOL 1e-4
#define ATOL 1e-6

static const Caffe__LayerParameter *entry(const Caffe__NetParameter *g, const char *name)
{
    for (size_t i = 0; i < g->n_layer; i++)
        if (g->layer[i]->name && strcmp(g->layer[i]->name, name) == 0)
            return g->layer[i];
    return NULL;
}

/* expected.txt: "<image> (label L):" then five "class prob [name]" lines. */
struct expected {
    int n;
    char image[16][64];
    int top5[16][5];
};

static int read_expected(const char *path, struct expected *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    e->n = 0;
    int k = 5;
    while (fgets(line, sizeof line, f)) {
        char name[64];
        int cls;
        if (strstr(line, "(label ") && sscanf(line, "%63s", name) == 1 && e->n < 16) {
            snprintf(e->image[e->n], sizeof e->image[0], "%s", name);
            e->n++;
            k = 0;
        } else if (k < 5 && e->n > 0 && sscanf(line, " %d", &cls) == 1) {
            e->top5[e->n - 1][k++] = cls;
        }
    }
    fclose(f);
    return 0;
}

/* Indices of the 5 largest of p[0..n), largest first (first index wins ties). */
static void top5_of(const float *p, int n, int out[5])
{
    for (int k = 0; k < 5; k++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool used = false;
            for (int j = 0; j < k; j++)
                used |= out[j] == i;
            if (!used && (best < 0 || p[i] > p[best]))
                best = i;
        }
        out[k] = best;
    }
}

static void run_model(const char *dir, const char *weights, const char *prob_blob)
{
    char *base = check_shared(dir);
    char path[4096];
    Caffe__NetParameter *np = NULL, *g = NULL;
    struct net *net = NULL;
    snprintf(path, sizeof path, "%s/net.prototxt", base);
    CHECK_OK(proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np));
    snprintf(path, sizeof path, "%s/golden.caffemodel", base);
    CHECK_OK(proto_read_binary(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&g));
    Caffe__NetState test = CAFFE__NET_STATE__INIT;
    test.has_phase = 1;
    test.phase = CAFFE__PHASE__TEST;
    if (np && g)
        CHECK_OK(net_build(np, &test, 1, &net));
    if (!net)
        goto out;
    snprintf(path, sizeof path, "%s/%s", base, weights);
    CHECK_OK(net_load_weights(net, path));

    for (int i = 0; i < net->n_inputs; i++) {
        const char *name = net->blob_names[net->input_ids[i]];
        char key[512];
        snprintf(key, sizeof key, "blob/%s", name);
        const Caffe__LayerParameter *e = entry(g, key);
        struct tensor *t = net->blobs[net->input_ids[i]];
        CHECK_MSG(e && e->n_blobs == 1, "golden has no %s", key);
        if (!e || e->n_blobs != 1)
            goto out;
        CHECK_OK(tensor_from_proto(t, e->blobs[0], true));
        CHECK_OK(net_reshape(net));
    }
    float loss = 0;
    CHECK_OK(net_forward(net, &loss));

    int compared = 0;
    double worst_rel = 0;
    for (size_t i = 0; i < g->n_layer; i++) {
        const Caffe__LayerParameter *e = g->layer[i];
        if (!e->name || strncmp(e->name, "blob/", 5) != 0 || e->n_blobs != 1)
            continue;
        const char *name = e->name + 5;
        struct tensor *t = net_blob(net, name);
        CHECK_MSG(t != NULL, "%s: the net has no blob %s", dir, name);
        if (!t)
            continue;
        const Caffe__BlobProto *bp = e->blobs[0];
        CHECK_MSG(bp->n_data == t->count, "%s: blob %s has %zu values, golden %zu", dir, name, t->count,
                  bp->n_data);
        if (bp->n_data != t->count)
            continue;
        const float *got = tensor_data(t);
        double gmax = 0, emax = 0;
        size_t at = 0;
        for (size_t k = 0; k < t->count; k++) {
            double d = fabs((double)got[k] - bp->data[k]);
            if (fabs((double)bp->data[k]) > gmax)
                gmax = fabs((double)bp->data[k]);
            if (d > emax || isnan(got[k])) {
                emax = isnan(got[k]) ? INFINITY : d;
                at = k;
            }
        }
        double limit = RTOL * gmax + ATOL;
        double rel = gmax > 0 ? emax / gmax : emax;
        if (rel > worst_rel)
            worst_rel = rel;
        fprintf(stderr, "  %-24s max |err| %.3g  (rel %.2g, limit %.3g)\n", name, emax, rel, limit);
        CHECK_MSG(emax <= limit, "%s: blob %s: max |err| %.3g > %.3g (at %zu: got %.9g, want %.9g)", dir, name,
                  emax, limit, at, (double)got[at], (double)bp->data[at]);
        compared++;
    }
    CHECK_MSG(compared > 2, "%s: only %d golden blobs compared", dir, compared);
    fprintf(stderr, "  %s: %d blobs, worst rel err %.2g\n", dir, compared, worst_rel);

    struct expected ex;
    snprintf(path, sizeof path, "%s/expected.txt", base);
    CHECK_MSG(read_expected(path, &ex) == 0, "cannot read %s", path);
    struct tensor *prob = net_blob(net, prob_blob);
    CHECK_MSG(prob && prob->num_axes >= 2 && prob->shape[0] == ex.n, "%s: %s does not hold %d images", dir,
              prob_blob, ex.n);
    if (!prob || prob->num_axes < 2 || prob->shape[0] != ex.n)
        goto out;
    int classes = (int)(prob->count / (size_t)prob->shape[0]);
    for (int n = 0; n < ex.n; n++) {
        int top[5];
        top5_of(tensor_data(prob) + (size_t)n * (size_t)classes, classes, top);
        fprintf(stderr, "  %-14s top-5 %d %d %d %d %d (Caffe %d %d %d %d %d)\n", ex.image[n], top[0], top[1], top[2], top[3],
               top[4], ex.top5[n][0], ex.top5[n][1], ex.top5[n][2], ex.top5[n][3], ex.top5[n][4]);
        for (int k = 0; k < 5; k++)
            CHECK_MSG(top[k] == ex.top5[n][k], "%s %s: top-5 place %d is class %d, Caffe has %d", dir, ex.image[n],
                      k + 1, top[k], ex.top5[n][k]);
    }
out:
    net_free(net);
    if (np)
        proto_free(&np->base);
    if (g)
        proto_free(&g->base);
    free(base);
}

static void lenet_mnist(void)
{
    run_model("golden/models/lenet_mnist", "lenet_iter_10000.caffemodel", "loss");
}

static void resnet20_cifar(void)
{
    run_model("golden/models/resnet20_cifar", "ResNet_20.caffemodel", "prob");
}

CHECK_MAIN(CASE(lenet_mnist), CASE(resnet20_cifar))
