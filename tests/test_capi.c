/* The C API calls the Python package stands on: layer wiring and the blob
 * list, weights files read without a net, and the solver handle. */
#include "check.h"
#include "crema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static void test_wiring(void)
{
    char *proto = check_shared("golden/models/lenet_mnist/net.prototxt");
    crema_net *net = NULL;
    CHECK_OK(crema_net_open(proto, NULL, CREMA_TEST, &net));
    free(proto);
    if (!net)
        return;
    CHECK_EQ_INT(crema_net_num_blobs(net), 8);
    CHECK(streq(crema_net_blob_name(net, 0), "data"));
    CHECK(streq(crema_net_blob_name(net, 7), "loss"));
    CHECK(crema_net_blob_name(net, 8) == NULL);
    CHECK(crema_net_blob_name(net, -1) == NULL);
    /* layers: data conv1 pool1 conv2 pool2 ip1 relu1 ip2 loss */
    CHECK_EQ_INT(crema_net_layer_num_params(net, 0), 0);
    CHECK_EQ_INT(crema_net_layer_num_params(net, 1), 2);
    CHECK_EQ_INT(crema_net_layer_num_params(net, 99), 0);
    CHECK_EQ_INT(crema_net_layer_num_bottoms(net, 0), 0);
    CHECK_EQ_INT(crema_net_layer_num_tops(net, 0), 1);
    CHECK(streq(crema_net_layer_top_name(net, 0, 0), "data"));
    CHECK_EQ_INT(crema_net_layer_num_bottoms(net, 6), 1);
    CHECK(streq(crema_net_layer_bottom_name(net, 6, 0), "ip1")); /* relu1 is in place */
    CHECK(streq(crema_net_layer_top_name(net, 6, 0), "ip1"));
    CHECK(crema_net_layer_top_name(net, 6, 1) == NULL);
    CHECK(crema_net_layer_bottom_name(net, 0, 0) == NULL);
    CHECK(crema_net_layer_top_name(net, 9, 0) == NULL);
    crema_net_free(net);
    CHECK_EQ_INT(crema_net_num_blobs(NULL), 0);
    CHECK(crema_net_blob_name(NULL, 0) == NULL);
}

static int find_layer(const crema_weights *w, const char *name)
{
    for (int i = 0; i < crema_weights_num_layers(w); i++)
        if (streq(crema_weights_layer_name(w, i), name))
            return i;
    return -1;
}

static void test_weights_binary(void)
{
    char *path = check_shared("golden/nets/lenet_train/golden.caffemodel");
    char *proto = check_shared("golden/nets/lenet_train/net.prototxt");
    crema_weights *w = NULL;
    CHECK_OK(crema_weights_open(path, &w));
    if (w) {
        CHECK(streq(crema_weights_layer_name(w, 0), "conv1"));
        int ip1 = find_layer(w, "ip1"), loss = find_layer(w, "blob/loss");
        CHECK(ip1 >= 0 && loss >= 0);
        CHECK_EQ_INT(crema_weights_num_blobs(w, ip1), 2);
        crema_blob b;
        CHECK_OK(crema_weights_blob(w, ip1, 0, &b));
        CHECK_EQ_INT(b.num_axes, 2);
        CHECK_EQ_INT(b.shape[0], 500);
        CHECK_EQ_INT(b.shape[1], 800);
        CHECK(b.diff != NULL); /* this file stores gradients */
        crema_blob l;
        CHECK_OK(crema_weights_blob(w, loss, 0, &l));
        CHECK_EQ_INT(l.num_axes, 0);
        CHECK_EQ_INT(l.count, 1);
        CHECK_MSG(fabsf(l.data[0] - 2.46746f) < 1e-4f, "loss %g, expected 2.46746", (double)l.data[0]);
        /* the same numbers a net loads from the file */
        crema_net *net = NULL;
        CHECK_OK(crema_net_open(proto, path, CREMA_TRAIN, &net));
        crema_blob p;
        if (net && crema_net_param(net, "ip1", 0, &p) == 0) {
            CHECK_EQ_INT(p.count, b.count);
            CHECK(memcmp(p.data, b.data, b.count * sizeof(float)) == 0);
        }
        crema_net_free(net);
        CHECK_EQ_INT(crema_weights_blob(w, ip1, 2, &b), CREMA_ERR_NOTFOUND);
        CHECK_EQ_INT(crema_weights_blob(w, 1000, 0, &b), CREMA_ERR_NOTFOUND);
        CHECK(crema_weights_layer_name(w, 1000) == NULL);
        CHECK_EQ_INT(crema_weights_num_blobs(w, -1), 0);
        crema_weights_free(w);
    }
    free(path);
    free(proto);
    /* pretrained weights carry no diffs */
    path = check_shared("golden/models/lenet_mnist/lenet_iter_10000.caffemodel");
    CHECK_OK(crema_weights_open(path, &w));
    if (w) {
        crema_blob b;
        int c1 = find_layer(w, "conv1");
        CHECK(c1 >= 0);
        CHECK_OK(crema_weights_blob(w, c1 < 0 ? 0 : c1, 0, &b));
        CHECK(b.diff == NULL);
        CHECK_EQ_INT(b.count, 500);
        crema_weights_free(w);
    }
    free(path);
    CHECK(crema_weights_open("/nonexistent/w.caffemodel", &w) != 0);
    CHECK(w == NULL);
    CHECK(strstr(crema_errmsg(), "/nonexistent/w.caffemodel") != NULL);
    path = check_shared("golden/models/lenet_mnist/net.prototxt"); /* text, not binary */
    CHECK(crema_weights_open(path, &w) != 0);
    free(path);
    crema_weights_free(NULL);
}

static void test_weights_hdf5(void)
{
    char *path = check_shared("golden/solvers/snapshot_hdf5/snap_iter_1.caffemodel.h5");
    crema_weights *w = NULL;
    CHECK_OK(crema_weights_open(path, &w));
    if (w) {
        int ip2 = find_layer(w, "ip2");
        CHECK(ip2 >= 0);
        CHECK_EQ_INT(crema_weights_num_blobs(w, ip2), 2);
        crema_blob b;
        CHECK_OK(crema_weights_blob(w, ip2 < 0 ? 0 : ip2, 1, &b));
        CHECK_EQ_INT(b.num_axes, 1);
        crema_weights_free(w);
    }
    free(path);
}

/* sgd_momentum_step from its case folder (relative data paths), with the
 * solver prototxt and snapshots in a scratch directory. */
static void test_solver(void)
{
    char *dir = check_tmpdir("capi_solver");
    char *case_dir = check_shared("golden/solvers/sgd_momentum_step");
    char *abs_dir = realpath(dir, NULL), *abs_case = realpath(case_dir, NULL);
    char cwd[4096];
    CHECK(abs_dir && abs_case && getcwd(cwd, sizeof cwd));
    if (!abs_dir || !abs_case || chdir(abs_case) != 0) {
        free(dir), free(case_dir), free(abs_dir), free(abs_case);
        return;
    }
    char sp[4200], state[4300], gold[4300];
    snprintf(sp, sizeof sp, "%s/solver.prototxt", abs_dir);
    FILE *f = fopen(sp, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "net: \"%s/net.prototxt\"\ntype: \"SGD\"\nbase_lr: 0.1\nmomentum: 0.9\n"
                   "weight_decay: 0.0005\nlr_policy: \"step\"\ngamma: 0.5\nstepsize: 2\nmax_iter: 6\n"
                   "snapshot_prefix: \"%s/snap\"\nrandom_seed: 1\n", abs_case, abs_dir);
        fclose(f);
    }
    crema_solver *s = NULL;
    CHECK_OK(crema_solver_open(sp, 0, &s));
    if (s) {
        CHECK_EQ_INT(crema_solver_num_test_nets(s), 0);
        CHECK(crema_solver_test_net(s, 0) == NULL);
        crema_net *net = crema_solver_net(s);
        CHECK(net != NULL);
        CHECK_OK(crema_net_load_weights(net, "init.caffemodel"));
        CHECK_OK(crema_solver_step(s, 2));
        CHECK_EQ_INT(crema_solver_iter(s), 2);
        crema_weights *w = NULL;
        CHECK_OK(crema_weights_open("snap_iter_2.caffemodel", &w));
        crema_blob p, g;
        int rp = crema_net_param(net, "ip2", 0, &p);
        CHECK_EQ_INT(rp, 0);
        int rg = w ? (int)crema_weights_blob(w, find_layer(w, "ip2"), 0, &g) : -1;
        CHECK_EQ_INT(rg, 0);
        if (rp == 0 && rg == 0) {
            float worst = 0, mag = 0;
            for (size_t i = 0; i < g.count; i++) {
                worst = fmaxf(worst, fabsf(p.data[i] - g.data[i]));
                mag = fmaxf(mag, fabsf(g.data[i]));
            }
            CHECK_MSG(worst <= 2e-5f * mag + 1e-7f, "ip2 weights after 2 steps: max error %g (magnitude %g)",
                      (double)worst, (double)mag);
        }
        crema_weights_free(w);
        CHECK_OK(crema_solver_snapshot(s));
        CHECK_EQ_INT(crema_solver_step(s, -1), CREMA_ERR_INVALID);
        crema_solver_free(s);
    }
    snprintf(state, sizeof state, "%s/snap_iter_2.solverstate", abs_dir);
    CHECK(access(state, R_OK) == 0);
    CHECK_OK(crema_solver_open(sp, 0, &s));
    if (s) {
        CHECK_OK(crema_solver_restore(s, state));
        CHECK_EQ_INT(crema_solver_iter(s), 2);
        CHECK_OK(crema_solver_test_all(s));
        CHECK(crema_solver_restore(s, "/nonexistent.solverstate") != 0);
        crema_solver_free(s);
    }
    snprintf(gold, sizeof gold, "%s/no_such_solver.prototxt", abs_dir);
    CHECK(crema_solver_open(gold, 0, &s) != 0);
    CHECK(s == NULL);
    CHECK(strstr(crema_errmsg(), "no_such_solver.prototxt") != NULL);
    crema_solver_free(NULL);
    CHECK(chdir(cwd) == 0);
    free(dir), free(case_dir), free(abs_dir), free(abs_case);
}

CHECK_MAIN(CASE(test_wiring), CASE(test_weights_binary), CASE(test_weights_hdf5), CASE(test_solver))
