/* The data/ golden cases: layers built from each case's net.prototxt, run in
 * the case folder, compared with what Caffe produced (exactly). */
#include "check.h"
#include "data/datum.h"
#include "data/db.h"
#include "layers/layer.h"
#include "net/blob_proto.h"
#include "proto/proto_io.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct golden_case {
    char *dir, *old_cwd;
    Caffe__NetParameter *net, *gold;
};

/* Enters the case folder and reads its net and golden model. */
static int case_open(const char *rel, struct golden_case *gc)
{
    memset(gc, 0, sizeof *gc);
    gc->dir = check_shared(rel);
    gc->old_cwd = getcwd(NULL, 0);
    if (chdir(gc->dir) != 0) {
        CHECK_MSG(0, "cannot enter %s", gc->dir);
        return -1;
    }
    ProtobufCMessage *m = NULL;
    int rc = proto_read_text("net.prototxt", &caffe__net_parameter__descriptor, &m);
    CHECK_OK(rc);
    gc->net = (Caffe__NetParameter *)m;
    m = NULL;
    int rc2 = proto_read_binary("golden.caffemodel", &caffe__net_parameter__descriptor, &m);
    CHECK_OK(rc2);
    gc->gold = (Caffe__NetParameter *)m;
    return rc || rc2 ? -1 : 0;
}

static void case_close(struct golden_case *gc)
{
    if (gc->old_cwd && chdir(gc->old_cwd) != 0)
        CHECK_MSG(0, "cannot go back to %s", gc->old_cwd);
    proto_free((ProtobufCMessage *)gc->net);
    proto_free((ProtobufCMessage *)gc->gold);
    free(gc->dir);
    free(gc->old_cwd);
}

static const Caffe__LayerParameter *find_layer(const Caffe__NetParameter *n, const char *field, const char *value)
{
    for (size_t i = 0; n && i < n->n_layer; i++) {
        const char *v = strcmp(field, "type") == 0 ? n->layer[i]->type : n->layer[i]->name;
        if (v && strcmp(v, value) == 0)
            return n->layer[i];
    }
    return NULL;
}

/* Compares t with the golden entry `name` exactly; returns the worst |diff|. */
static double compare_blob(const struct golden_case *gc, const char *name, struct tensor *t)
{
    const Caffe__LayerParameter *g = find_layer(gc->gold, "name", name);
    CHECK_MSG(g && g->n_blobs == 1, "golden entry %s missing", name);
    if (!g || g->n_blobs != 1)
        return INFINITY;
    struct tensor *want = tensor_new();
    CHECK_OK(tensor_from_proto(want, g->blobs[0], true));
    char a[128], b[128];
    CHECK_MSG(tensor_shape_equals(want, t), "%s: shape expected %s, got %s", name,
              tensor_shape_string(want, a, sizeof a), tensor_shape_string(t, b, sizeof b));
    double worst = 0;
    size_t bad = 0, first_bad = 0;
    if (want->count == t->count) {
        const float *w = tensor_data(want), *d = tensor_data(t);
        for (size_t i = 0; i < t->count; i++) {
            double e = fabs((double)w[i] - (double)d[i]);
            if (e > worst)
                worst = e;
            if (w[i] != d[i] && bad++ == 0)
                first_bad = i;
        }
        CHECK_MSG(bad == 0, "%s: %zu of %zu values differ; first at %zu: expected %.9g, got %.9g", name, bad,
                  t->count, first_bad, w[first_bad], d[first_bad]);
    }
    tensor_free(want);
    return worst;
}

static void run_data_case(const char *rel, int n_forward)
{
    struct golden_case gc;
    if (case_open(rel, &gc) == 0) {
        const Caffe__LayerParameter *lp = find_layer(gc.net, "type", "Data");
        CHECK(lp != NULL);
        struct tensor *tops[2] = { tensor_new(), tensor_new() };
        struct rng rng;
        rng_seed(&rng, 1);
        struct layer *l = NULL;
        Caffe__Phase phase = gc.net->state ? gc.net->state->phase : CAFFE__PHASE__TEST;
        if (lp)
            CHECK_OK(layer_create(lp, phase, &rng, NULL, 0, tops, 2, &l));
        double worst = 0;
        for (int k = 1; l && k <= n_forward; k++) {
            CHECK_OK(l->kind->forward(l, NULL, tops));
            for (size_t t = 0; t < lp->n_top; t++) {
                char name[128];
                snprintf(name, sizeof name, "blob/%s@%d", lp->top[t], k);
                double e = compare_blob(&gc, name, tops[t]);
                worst = e > worst ? e : worst;
            }
        }
        printf("  %s: %d forwards, worst |diff| %g\n", rel, n_forward, worst);
        layer_free(l);
        tensor_free(tops[0]);
        tensor_free(tops[1]);
    }
    case_close(&gc);
}

static void lmdb_test_crop(void)
{
    run_data_case("golden/data/lmdb_test_crop", 2);
}

static void lmdb_mean_file(void)
{
    run_data_case("golden/data/lmdb_mean_file", 2);
}

CHECK_MAIN(CASE(lmdb_test_crop), CASE(lmdb_mean_file))
