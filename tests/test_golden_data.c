/* The data/ golden cases: layers built from each case's net.prototxt, run in
 * the case folder, compared with what Caffe produced (exactly). */
#include "check.h"
#include "data/datum.h"
#include "data/db.h"
#include "layers/layer.h"
#include "net/device.h"
#include "core/blob_proto.h"
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
        /* $CREMA_TEST_DEVICE: the layer on a device, its prefetch thread
         * copying each batch there (the mirror runs it without a GPU) */
        const char *dev = getenv("CREMA_TEST_DEVICE");
        const struct backend *be = NULL;
        if (l && dev && *dev) {
            CHECK_OK(device_open(dev, &be));
            if (be)
                CHECK_MSG(layer_set_backend(l, be), "the Data layer has no %s path", be->name);
        }
        double worst = 0;
        for (int k = 1; l && k <= n_forward; k++) {
            CHECK_OK(layer_forward(l, NULL, tops));
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

static void hdf5_data(void)
{
    struct golden_case gc;
    if (case_open("golden/data/hdf5_data", &gc) == 0) {
        const Caffe__LayerParameter *lp = find_layer(gc.net, "type", "HDF5Data");
        CHECK(lp && lp->n_top == 3);
        struct tensor *tops[3] = { tensor_new(), tensor_new(), tensor_new() };
        struct rng rng;
        rng_seed(&rng, 1);
        struct layer *l = NULL;
        if (lp)
            CHECK_OK(layer_create(lp, CAFFE__PHASE__TRAIN, &rng, NULL, 0, tops, 3, &l));
        double worst = 0;
        for (int k = 1; l && k <= 5; k++) {
            CHECK_OK(l->kind->forward(l, NULL, tops));
            for (size_t t = 0; t < 3; t++) {
                char name[128];
                snprintf(name, sizeof name, "blob/%s@%d", lp->top[t], k);
                double e = compare_blob(&gc, name, tops[t]);
                worst = e > worst ? e : worst;
            }
        }
        printf("  hdf5_data: 5 forwards, worst |diff| %g\n", worst);
        layer_free(l);
        for (int t = 0; t < 3; t++)
            tensor_free(tops[t]);
    }
    case_close(&gc);
}

/* Reads a float dataset whole; *n values. */
static float *read_h5(const char *path, const char *name, int *nd, hsize_t dims[8], size_t *n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK_MSG(f >= 0, "cannot open %s", path);
    if (f < 0)
        return NULL;
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    CHECK_MSG(ds >= 0, "%s: no dataset %s", path, name);
    float *v = NULL;
    if (ds >= 0) {
        hid_t sp = H5Dget_space(ds);
        *nd = H5Sget_simple_extent_ndims(sp);
        H5Sget_simple_extent_dims(sp, dims, NULL);
        *n = 1;
        for (int i = 0; i < *nd; i++)
            *n *= (size_t)dims[i];
        v = malloc(*n * sizeof(float));
        H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Sclose(sp);
        H5Dclose(ds);
    }
    H5Fclose(f);
    return v;
}

static void hdf5_output(void)
{
    struct golden_case gc;
    char *tmp = check_tmpdir("hdf5_output");
    char *tmp_abs = realpath(tmp, NULL);
    if (case_open("golden/data/hdf5_output", &gc) == 0 && tmp_abs) {
        const Caffe__LayerParameter *lp = find_layer(gc.net, "type", "HDF5Output");
        CHECK(lp != NULL);
        /* Same layer, but written to the scratch folder (the case folder is Caffe's). */
        Caffe__LayerParameter copy = *lp;
        Caffe__HDF5OutputParameter hp = CAFFE__HDF5_OUTPUT_PARAMETER__INIT;
        char out[1024];
        snprintf(out, sizeof out, "%s/out.h5", tmp_abs);
        hp.file_name = out;
        copy.hdf5_output_param = &hp;
        struct tensor *bottoms[2] = { tensor_new(), tensor_new() };
        const char *names[2] = { "blob/data", "blob/label" };
        for (int i = 0; i < 2; i++) {
            const Caffe__LayerParameter *g = find_layer(gc.gold, "name", names[i]);
            CHECK(g && g->n_blobs == 1);
            if (g && g->n_blobs == 1)
                CHECK_OK(tensor_from_proto(bottoms[i], g->blobs[0], true));
        }
        struct layer *l = NULL;
        CHECK_OK(layer_create(&copy, CAFFE__PHASE__TEST, NULL, bottoms, 2, NULL, 0, &l));
        if (l)
            CHECK_OK(l->kind->forward(l, bottoms, NULL));
        layer_free(l); /* closes and renames the file */
        const char *sets[2] = { "data", "label" };
        for (int i = 0; i < 2; i++) {
            int nd1 = 0, nd2 = 0;
            hsize_t d1[8], d2[8];
            size_t n1 = 0, n2 = 0;
            float *a = read_h5("caffe_output.h5", sets[i], &nd1, d1, &n1);
            float *b = read_h5(out, sets[i], &nd2, d2, &n2);
            CHECK_MSG(nd1 == nd2 && n1 == n2 && memcmp(d1, d2, (size_t)nd1 * sizeof(hsize_t)) == 0,
                      "dataset %s: shape differs (%d axes, %zu values vs %d axes, %zu values)", sets[i], nd1, n1, nd2, n2);
            CHECK_MSG(a && b && n1 == n2 && memcmp(a, b, n1 * sizeof(float)) == 0, "dataset %s values differ", sets[i]);
            free(a);
            free(b);
        }
        tensor_free(bottoms[0]);
        tensor_free(bottoms[1]);
    }
    case_close(&gc);
    free(tmp_abs);
    free(tmp);
}

static void compute_image_mean(void)
{
    /* compute-mean's file against golden byte for byte (also in
     * test_data_tools.sh); here through the CLI on the golden LMDB. */
    char *tmp = check_tmpdir("mean");
    char *lmdb = check_shared("golden/data/lmdb_test_crop/lmdb");
    char *gold = check_shared("golden/data/compute_image_mean/mean.binaryproto");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' compute-mean '%s' '%s/mean.binaryproto' >/dev/null && cmp '%s/mean.binaryproto' '%s'",
             check_crema_bin(), lmdb, tmp, tmp, gold);
    CHECK_MSG(system(cmd) == 0, "compute-mean output differs from %s", gold);
    free(tmp);
    free(lmdb);
    free(gold);
}

CHECK_MAIN(CASE(lmdb_test_crop), CASE(lmdb_mean_file), CASE(hdf5_data), CASE(hdf5_output), CASE(compute_image_mean))
