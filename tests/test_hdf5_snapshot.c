/* HDF5 snapshots: real Caffe files load, agree with the binary snapshots of
 * the same run, survive HDF5 and binary round trips, and bad files give
 * errors naming the file. */
#include "check.h"
#include "proto_testing.h"
#include "proto/hdf5_snapshot.h"
#include "util/io.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cifar_models[] = { "cifar10_full_iter_65000.caffemodel.h5",
                                      "cifar10_full_iter_70000.caffemodel.h5" };
static const char *cifar_states[] = { "cifar10_full_iter_65000.solverstate.h5",
                                      "cifar10_full_iter_70000.solverstate.h5" };

static char *cifar_path(const char *name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "corpus/formats/hdf5_snapshots_cifar10_full/%s", name);
    return check_shared(rel);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static const Caffe__LayerParameter *find_layer(const Caffe__NetParameter *net, const char *name)
{
    for (size_t i = 0; i < net->n_layer; i++)
        if (net->layer[i]->name && strcmp(net->layer[i]->name, name) == 0)
            return net->layer[i];
    return NULL;
}

static bool shape_is(const Caffe__BlobProto *bp, int n, const int64_t *dims)
{
    if (!bp->shape || bp->shape->n_dim != (size_t)n)
        return false;
    for (int i = 0; i < n; i++)
        if (bp->shape->dim[i] != dims[i])
            return false;
    return true;
}

static void cifar_models_load(void)
{
    for (int k = 0; k < 2; k++) {
        char *p = cifar_path(cifar_models[k]);
        Caffe__NetParameter *net = NULL;
        CHECK_OK(hdf5_read_net(p, &net));
        if (net) {
            /* 14 layer groups, 4 of them with weights (h5ls of the file). */
            CHECK_EQ_INT(net->n_layer, 14);
            const Caffe__LayerParameter *c1 = find_layer(net, "conv1");
            const Caffe__LayerParameter *ip1 = find_layer(net, "ip1");
            const Caffe__LayerParameter *relu = find_layer(net, "relu1");
            CHECK(c1 && ip1 && relu);
            if (c1 && ip1 && relu) {
                CHECK_EQ_INT(c1->n_blobs, 2);
                CHECK(shape_is(c1->blobs[0], 4, (int64_t[]){ 32, 3, 5, 5 }));
                CHECK_EQ_INT(c1->blobs[0]->n_data, 32 * 3 * 5 * 5);
                CHECK(shape_is(c1->blobs[1], 1, (int64_t[]){ 32 }));
                CHECK_EQ_INT(ip1->n_blobs, 2);
                CHECK(shape_is(ip1->blobs[0], 2, (int64_t[]){ 10, 1024 }));
                CHECK_EQ_INT(relu->n_blobs, 0);
                /* trained weights: not all zero, all finite */
                double sum = 0;
                for (size_t i = 0; i < c1->blobs[0]->n_data; i++)
                    sum += c1->blobs[0]->data[i] * c1->blobs[0]->data[i];
                CHECK_MSG(sum > 1e-3 && sum < 1e6, "conv1 weights' sum of squares %g", sum);
            }
            protobuf_c_message_free_unpacked(&net->base, NULL);
        }
        free(p);
    }
}

static void cifar_states_load(void)
{
    const int iters[2] = { 65000, 70000 };
    for (int k = 0; k < 2; k++) {
        char *p = cifar_path(cifar_states[k]);
        Caffe__SolverState *st = NULL;
        CHECK_OK(hdf5_read_solver_state(p, &st));
        if (st) {
            CHECK(st->has_iter);
            CHECK_EQ_INT(st->iter, iters[k]);
            CHECK_EQ_INT(st->current_step, 0);
            CHECK_EQ_INT(st->n_history, 8);
            char want[256];
            snprintf(want, sizeof want, "examples/cifar10/cifar10_full_iter_%d.caffemodel.h5", iters[k]);
            CHECK_MSG(st->learned_net && strcmp(st->learned_net, want) == 0, "learned_net: expected %s, got %s",
                      want, st->learned_net ? st->learned_net : "(none)");
            if (st->n_history == 8) {
                CHECK(shape_is(st->history[0], 4, (int64_t[]){ 32, 3, 5, 5 }));
                CHECK(shape_is(st->history[6], 2, (int64_t[]){ 10, 1024 }));
                CHECK_EQ_INT(st->history[7]->n_data, 10);
            }
            protobuf_c_message_free_unpacked(&st->base, NULL);
        }
        free(p);
    }
}

/* Load, write as HDF5, load again: the same message; and the same through a
 * binary .caffemodel / .solverstate. */
static void cifar_round_trips(void)
{
    char *dir = check_tmpdir("hdf5_round");
    for (int k = 0; k < 2; k++) {
        char *p = cifar_path(cifar_models[k]);
        Caffe__NetParameter *net = NULL, *again = NULL;
        CHECK_OK(hdf5_read_net(p, &net));
        char *out = join(dir, "m.caffemodel.h5");
        if (net) {
            CHECK_OK(hdf5_write_net(out, net, false));
            CHECK_OK(hdf5_read_net(out, &again));
            if (again) {
                CHECK_MSG(pt_same_message(&net->base, &again->base), "%s: HDF5 round trip changed the net", p);
                /* crema's files keep the order layers were written in */
                CHECK_EQ_INT(again->n_layer, net->n_layer);
                for (size_t i = 0; i < net->n_layer && i < again->n_layer; i++)
                    CHECK(strcmp(net->layer[i]->name, again->layer[i]->name) == 0);
                protobuf_c_message_free_unpacked(&again->base, NULL);
            }
            /* binary .caffemodel */
            size_t len;
            uint8_t *b = pt_pack(&net->base, &len);
            char *bin = join(dir, "m.caffemodel");
            CHECK_OK(io_write_atomic(bin, b, len));
            free(b);
            uint8_t *data = NULL;
            CHECK_OK(io_read_file(bin, IO_MAX_MESSAGE, &data, &len));
            Caffe__NetParameter *fromb = data ? caffe__net_parameter__unpack(NULL, len, data) : NULL;
            CHECK(fromb != NULL);
            if (fromb) {
                CHECK_MSG(pt_same_message(&net->base, &fromb->base), "binary round trip changed the net");
                /* and from binary back to HDF5 */
                CHECK_OK(hdf5_write_net(out, fromb, false));
                Caffe__NetParameter *third = NULL;
                CHECK_OK(hdf5_read_net(out, &third));
                if (third) {
                    CHECK(pt_same_message(&net->base, &third->base));
                    protobuf_c_message_free_unpacked(&third->base, NULL);
                }
                caffe__net_parameter__free_unpacked(fromb, NULL);
            }
            free(data);
            free(bin);
            protobuf_c_message_free_unpacked(&net->base, NULL);
        }
        free(out);
        free(p);

        p = cifar_path(cifar_states[k]);
        Caffe__SolverState *st = NULL, *st2 = NULL;
        CHECK_OK(hdf5_read_solver_state(p, &st));
        out = join(dir, "s.solverstate.h5");
        if (st) {
            CHECK_OK(hdf5_write_solver_state(out, st));
            CHECK_OK(hdf5_read_solver_state(out, &st2));
            if (st2) {
                CHECK_MSG(pt_same_message(&st->base, &st2->base), "%s: solver state round trip changed it", p);
                protobuf_c_message_free_unpacked(&st2->base, NULL);
            }
            size_t len;
            uint8_t *b = pt_pack(&st->base, &len);
            Caffe__SolverState *fromb = caffe__solver_state__unpack(NULL, len, b);
            CHECK(fromb && pt_same_message(&st->base, &fromb->base));
            if (fromb)
                caffe__solver_state__free_unpacked(fromb, NULL);
            free(b);
            protobuf_c_message_free_unpacked(&st->base, NULL);
        }
        free(out);
        free(p);
    }
    /* no temporary files left behind */
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".tmp."))
            n++;
    if (d)
        closedir(d);
    CHECK_EQ_INT(n, 0);
    free(dir);
}

static Caffe__NetParameter *read_binary_net(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(io_read_file(path, IO_MAX_MESSAGE, &data, &len));
    Caffe__NetParameter *n = data ? caffe__net_parameter__unpack(NULL, len, data) : NULL;
    free(data);
    CHECK_MSG(n != NULL, "%s: not a binary NetParameter", path);
    return n;
}

static bool same_values(const Caffe__BlobProto *a, const Caffe__BlobProto *b)
{
    return a->n_data == b->n_data && memcmp(a->data, b->data, a->n_data * sizeof(float)) == 0;
}

/* golden/solvers/snapshot_hdf5 is the sgd_momentum_step run with
 * snapshot_format HDF5: its .h5 snapshots hold exactly the numbers of the
 * binary snapshots. */
static void golden_hdf5_matches_binary(void)
{
    for (int it = 1; it <= 6; it++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/solvers/snapshot_hdf5/snap_iter_%d.caffemodel.h5", it);
        char *h5 = check_shared(rel);
        snprintf(rel, sizeof rel, "golden/solvers/sgd_momentum_step/snap_iter_%d.caffemodel", it);
        char *bin = check_shared(rel);
        Caffe__NetParameter *a = NULL, *b = read_binary_net(bin);
        CHECK_OK(hdf5_read_net(h5, &a));
        int compared = 0;
        if (a && b) {
            for (size_t i = 0; i < b->n_layer; i++) {
                const Caffe__LayerParameter *lb = b->layer[i];
                const Caffe__LayerParameter *la = find_layer(a, lb->name);
                CHECK_MSG(la != NULL, "iter %d: layer %s missing from the HDF5 snapshot", it, lb->name);
                if (!la)
                    continue;
                CHECK_EQ_INT(la->n_blobs, lb->n_blobs);
                for (size_t j = 0; j < lb->n_blobs && j < la->n_blobs; j++) {
                    CHECK_MSG(same_values(la->blobs[j], lb->blobs[j]), "iter %d: %s blob %zu differs", it,
                              lb->name, j);
                    CHECK(la->blobs[j]->shape && lb->blobs[j]->shape &&
                          la->blobs[j]->shape->n_dim == lb->blobs[j]->shape->n_dim);
                    compared++;
                }
            }
        }
        CHECK_EQ_INT(compared, 4);
        if (a)
            protobuf_c_message_free_unpacked(&a->base, NULL);
        if (b)
            caffe__net_parameter__free_unpacked(b, NULL);
        free(h5);
        free(bin);

        snprintf(rel, sizeof rel, "golden/solvers/snapshot_hdf5/snap_iter_%d.solverstate.h5", it);
        h5 = check_shared(rel);
        snprintf(rel, sizeof rel, "golden/solvers/sgd_momentum_step/snap_iter_%d.solverstate", it);
        bin = check_shared(rel);
        Caffe__SolverState *sa = NULL, *sb = NULL;
        CHECK_OK(hdf5_read_solver_state(h5, &sa));
        uint8_t *data = NULL;
        size_t len = 0;
        CHECK_OK(io_read_file(bin, IO_MAX_MESSAGE, &data, &len));
        if (data)
            sb = caffe__solver_state__unpack(NULL, len, data);
        free(data);
        CHECK(sb != NULL);
        if (sa && sb) {
            CHECK_EQ_INT(sa->iter, it);
            CHECK_EQ_INT(sa->iter, sb->iter);
            CHECK_EQ_INT(sa->current_step, sb->current_step);
            char want[64];
            snprintf(want, sizeof want, "snap_iter_%d.caffemodel.h5", it);
            CHECK(sa->learned_net && strcmp(sa->learned_net, want) == 0);
            CHECK_EQ_INT(sa->n_history, sb->n_history);
            for (size_t j = 0; j < sa->n_history && j < sb->n_history; j++)
                CHECK_MSG(same_values(sa->history[j], sb->history[j]), "iter %d: history %zu differs", it, j);
        }
        if (sa)
            protobuf_c_message_free_unpacked(&sa->base, NULL);
        if (sb)
            caffe__solver_state__free_unpacked(sb, NULL);
        free(h5);
        free(bin);
    }
}

/* A hand-made net: a shared (empty) blob, a diff, doubles, a 0-axis blob. */
static void shapes_diffs_and_holes(void)
{
    char *dir = check_tmpdir("hdf5_shapes");
    char *out = join(dir, "x.caffemodel.h5");
    Caffe__NetParameter net = CAFFE__NET_PARAMETER__INIT;
    Caffe__LayerParameter l0 = CAFFE__LAYER_PARAMETER__INIT, l1 = CAFFE__LAYER_PARAMETER__INIT;
    Caffe__LayerParameter *layers[2] = { &l0, &l1 };
    net.layer = layers;
    net.n_layer = 2;
    l0.name = "zeta"; /* written first although it sorts last */
    l1.name = "alpha";
    Caffe__BlobProto empty = CAFFE__BLOB_PROTO__INIT, b1 = CAFFE__BLOB_PROTO__INIT,
                     b2 = CAFFE__BLOB_PROTO__INIT, scalar = CAFFE__BLOB_PROTO__INIT;
    Caffe__BlobShape s1 = CAFFE__BLOB_SHAPE__INIT, s0 = CAFFE__BLOB_SHAPE__INIT;
    int64_t d1[2] = { 2, 3 };
    s1.dim = d1;
    s1.n_dim = 2;
    float v1[6] = { 1, 2, 3, 4, 5, 6 }, g1[6] = { -1, -2, -3, -4, -5, -6 };
    b1.shape = &s1;
    b1.data = v1;
    b1.n_data = 6;
    b1.diff = g1;
    b1.n_diff = 6;
    double v2[6] = { 0.1, 0.2, 0.3, 0.4, 0.5, 1e-300 };
    b2.num = 1, b2.channels = 1, b2.height = 2, b2.width = 3; /* legacy 4-D shape */
    b2.has_num = b2.has_channels = b2.has_height = b2.has_width = 1;
    b2.double_data = v2;
    b2.n_double_data = 6;
    float v0[1] = { 42 };
    scalar.shape = &s0;
    scalar.data = v0;
    scalar.n_data = 1;
    Caffe__BlobProto *bl0[3] = { &empty, &b1, &b2 }, *bl1[1] = { &scalar };
    l0.blobs = bl0;
    l0.n_blobs = 3;
    l1.blobs = bl1;
    l1.n_blobs = 1;
    CHECK_OK(hdf5_write_net(out, &net, true));
    Caffe__NetParameter *r = NULL;
    CHECK_OK(hdf5_read_net(out, &r));
    if (r) {
        CHECK_EQ_INT(r->n_layer, 2);
        if (r->n_layer == 2) {
            CHECK(strcmp(r->layer[0]->name, "zeta") == 0);
            const Caffe__LayerParameter *z = r->layer[0], *a = r->layer[1];
            CHECK_EQ_INT(z->n_blobs, 3);
            if (z->n_blobs == 3) {
                CHECK(z->blobs[0]->shape == NULL && z->blobs[0]->n_data == 0);
                CHECK(shape_is(z->blobs[1], 2, d1));
                CHECK(z->blobs[1]->n_data == 6 && memcmp(z->blobs[1]->data, v1, sizeof v1) == 0);
                CHECK(z->blobs[1]->n_diff == 6 && memcmp(z->blobs[1]->diff, g1, sizeof g1) == 0);
                CHECK(shape_is(z->blobs[2], 4, (int64_t[]){ 1, 1, 2, 3 }));
                CHECK(z->blobs[2]->n_double_data == 6 && memcmp(z->blobs[2]->double_data, v2, sizeof v2) == 0);
                /* no diff given: written as zeros */
                CHECK_EQ_INT(z->blobs[2]->n_diff, 6);
                CHECK(z->blobs[2]->n_diff == 6 && z->blobs[2]->diff[5] == 0.f);
            }
            CHECK_EQ_INT(a->n_blobs, 1);
            if (a->n_blobs == 1) {
                CHECK(a->blobs[0]->shape && a->blobs[0]->shape->n_dim == 0);
                CHECK(a->blobs[0]->n_data == 1 && a->blobs[0]->data[0] == 42.f);
            }
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    /* shape and values that disagree */
    b1.n_data = 5;
    int rc = hdf5_write_net(out, &net, false);
    CHECK(rc != 0);
    CHECK_MSG(strstr(crema_errmsg(), "zeta") && strstr(crema_errmsg(), "x.caffemodel.h5"),
              "message should name the layer and file: %s", crema_errmsg());
    b1.n_data = 6;
    /* duplicate layer names cannot both be groups */
    l1.name = "zeta";
    CHECK(hdf5_write_net(out, &net, false) != 0);
    /* the failed writes left the good file in place */
    CHECK_OK(hdf5_read_net(out, &r));
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
    free(out);
    free(dir);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *d = NULL;
    CHECK_OK(io_read_file(path, IO_MAX_MESSAGE, &d, len));
    return d;
}

static void expect_net_error(const char *path, const char *want)
{
    Caffe__NetParameter *net = NULL;
    int rc = hdf5_read_net(path, &net);
    CHECK_MSG(rc != 0, "%s: expected an error", path);
    CHECK(net == NULL);
    if (getenv("CREMA_VERBOSE"))
        printf("    %s\n", crema_errmsg());
    CHECK_MSG(strstr(crema_errmsg(), path) != NULL, "message should name %s: %s", path, crema_errmsg());
    if (want)
        CHECK_MSG(strstr(crema_errmsg(), want) != NULL, "message should say \"%s\": %s", want, crema_errmsg());
    if (net)
        protobuf_c_message_free_unpacked(&net->base, NULL);
}

/* data/conv/<dname>: a float dataset, or a string one. */
static void make_odd_file(const char *path, const char *dname, bool string)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t l = H5Gcreate2(g, "conv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t ty = H5Tcopy(string ? H5T_C_S1 : H5T_NATIVE_FLOAT);
    if (string)
        H5Tset_size(ty, 4);
    char buf[8] = "abcdefg";
    hid_t d = H5Dcreate2(l, dname, ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(d >= 0 && H5Dwrite(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Dclose(d);
    H5Tclose(ty);
    H5Sclose(sp);
    H5Gclose(l);
    H5Gclose(g);
    H5Fclose(f);
}

/* A solver state whose history has "0" and "2" but no "1". */
static void make_state_with_hole(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t one = 1;
    int v = 3;
    float x = 1;
    hid_t sp = H5Screate_simple(1, &one, NULL);
    const char *ints[2] = { "iter", "current_step" };
    for (int i = 0; i < 2; i++) {
        hid_t d = H5Dcreate2(f, ints[i], H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
        H5Dclose(d);
    }
    hid_t g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[2] = { "0", "2" };
    for (int i = 0; i < 2; i++) {
        hid_t d = H5Dcreate2(g, names[i], H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &x);
        H5Dclose(d);
    }
    H5Gclose(g);
    H5Sclose(sp);
    H5Fclose(f);
}

static void bad_files(void)
{
    char *dir = check_tmpdir("hdf5_bad");
    char *missing = join(dir, "missing.caffemodel.h5");
    expect_net_error(missing, "No such file");

    char *text = join(dir, "text.caffemodel.h5");
    CHECK_OK(io_write_atomic(text, "name: \"not hdf5\"\n", 17));
    expect_net_error(text, "not an HDF5 file");

    /* a solver state is HDF5 but not a model, and the other way round */
    char *state = cifar_path(cifar_states[0]);
    expect_net_error(state, "\"data\"");
    char *model = cifar_path(cifar_models[0]);
    Caffe__SolverState *st = NULL;
    CHECK(hdf5_read_solver_state(model, &st) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "iter") && strstr(crema_errmsg(), model), "got: %s", crema_errmsg());
    CHECK(st == NULL);

    /* truncated copies of a real model: HDF5 records the file's length, so
     * every cut is caught */
    size_t len = 0;
    uint8_t *whole = slurp(model, &len);
    size_t cuts[] = { 0, 8, 100, 1000, 4000, len / 2, len - 1 };
    char *cut = join(dir, "cut.caffemodel.h5");
    for (size_t i = 0; whole && i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK_OK(io_write_atomic(cut, whole, cuts[i]));
        expect_net_error(cut, NULL);
        CHECK(hdf5_read_solver_state(cut, &st) != 0 && st == NULL);
    }
    /* a damaged signature */
    if (whole) {
        whole[1] ^= 0xff;
        CHECK_OK(io_write_atomic(cut, whole, len));
        expect_net_error(cut, "not an HDF5 file");
    }
    free(whole);

    /* a truncated solver state */
    whole = slurp(state, &len);
    if (whole) {
        CHECK_OK(io_write_atomic(cut, whole, len - 100));
        CHECK(hdf5_read_solver_state(cut, &st) != 0 && st == NULL);
        CHECK_MSG(strstr(crema_errmsg(), "cut.caffemodel.h5"), "got: %s", crema_errmsg());
    }
    free(whole);

    /* hand-made files with the wrong things inside */
    char *odd = join(dir, "odd.caffemodel.h5");
    make_odd_file(odd, "w", false);
    expect_net_error(odd, "data/conv/w");
    make_odd_file(odd, "0", true);
    expect_net_error(odd, "string");
    CHECK_MSG(strstr(crema_errmsg(), "data/conv/0"), "got: %s", crema_errmsg());
    char *hole = join(dir, "hole.solverstate.h5");
    make_state_with_hole(hole);
    CHECK(hdf5_read_solver_state(hole, &st) != 0 && st == NULL);
    CHECK_MSG(strstr(crema_errmsg(), "history/1") && strstr(crema_errmsg(), hole), "got: %s", crema_errmsg());
    free(hole);
    /* writing into a directory that does not exist fails, naming the path */
    char *nodir = join(dir, "no/such/dir/m.caffemodel.h5");
    Caffe__NetParameter empty = CAFFE__NET_PARAMETER__INIT;
    CHECK(hdf5_write_net(nodir, &empty, false) != 0);
    CHECK_MSG(strstr(crema_errmsg(), nodir), "got: %s", crema_errmsg());
    free(nodir);
    free(odd);
    free(cut);
    free(model);
    free(state);
    free(text);
    free(missing);
    free(dir);
}

CHECK_MAIN(CASE(cifar_models_load), CASE(cifar_states_load), CASE(cifar_round_trips),
           CASE(golden_hdf5_matches_binary), CASE(shapes_diffs_and_holes), CASE(bad_files))
