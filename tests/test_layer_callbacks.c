/* Layers implemented by callbacks (crema_register_layer: what the Python
 * package registers for type "Python"), and the other calls of
 * api_pycaffe.c: nets by NetState, reshapes, sharing, HDF5 weights, the
 * layer type list, the solver's ApplyUpdate. */
#include "check.h"
#include "crema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct provider {
    int created, destroyed;
    int fail_setup, fail_forward;
};

/* state: 1 = times ten, 2 = a learnable scalar added to the bottom */
static crema_status cb_create(void *user, crema_layer *l, void **state)
{
    struct provider *p = user;
    uint8_t *bytes = NULL;
    size_t len = 0;
    crema_status rc = crema_layer_param(l, &bytes, &len);
    if (rc)
        return rc;
    /* the name is in the packed LayerParameter: field 1, length-delimited */
    int add = len > 2 && bytes[0] == 0x0a && memchr(bytes + 2, 'A', bytes[1]) != NULL;
    crema_free(bytes);
    p->created++;
    *state = (void *)(intptr_t)(add ? 2 : 1);
    return CREMA_OK;
}

static struct provider *the_provider;

static crema_status cb_setup(void *state, crema_layer *l)
{
    if (the_provider->fail_setup)
        return crema_layer_fail(l, CREMA_ERR_INVALID, "ValueError: setup says no");
    if ((intptr_t)state == 2) {
        int one = 1;
        return crema_layer_add_param(l, 1, &one);
    }
    return CREMA_OK;
}

static crema_status cb_reshape(void *state, crema_layer *l)
{
    (void)state;
    crema_blob b;
    crema_status rc = crema_layer_blob(l, CREMA_LAYER_BOTTOM, 0, &b);
    return rc ? rc : crema_layer_reshape(l, CREMA_LAYER_TOP, 0, b.num_axes, b.shape);
}

static crema_status cb_forward(void *state, crema_layer *l)
{
    if (the_provider->fail_forward)
        return 7; /* a status without a message: the layer makes one */
    crema_blob x, y, w;
    crema_status rc = crema_layer_blob(l, CREMA_LAYER_BOTTOM, 0, &x);
    if (!rc)
        rc = crema_layer_blob(l, CREMA_LAYER_TOP, 0, &y);
    if (!rc && (intptr_t)state == 2)
        rc = crema_layer_blob(l, CREMA_LAYER_PARAM, 0, &w);
    for (size_t i = 0; !rc && i < x.count; i++)
        y.data[i] = (intptr_t)state == 2 ? x.data[i] + w.data[0] : 10 * x.data[i];
    return rc;
}

static crema_status cb_backward(void *state, crema_layer *l, const int *propagate_down)
{
    crema_blob x, y, w;
    crema_status rc = crema_layer_blob(l, CREMA_LAYER_BOTTOM, 0, &x);
    if (!rc)
        rc = crema_layer_blob(l, CREMA_LAYER_TOP, 0, &y);
    if (!rc && (intptr_t)state == 2)
        rc = crema_layer_blob(l, CREMA_LAYER_PARAM, 0, &w);
    for (size_t i = 0; !rc && i < x.count; i++) {
        if ((intptr_t)state == 2)
            w.diff[0] += y.diff[i];
        if (propagate_down[0])
            x.diff[i] = (intptr_t)state == 2 ? y.diff[i] : 10 * y.diff[i];
    }
    return rc;
}

static void cb_destroy(void *state)
{
    (void)state;
    the_provider->destroyed++;
}

static const crema_layer_callbacks callbacks = { cb_create, cb_setup, cb_reshape, cb_forward, cb_backward,
                                                 cb_destroy };

static char *write_file(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static const char py_net[] =
    "name: 'py' force_backward: true\n"
    "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'ten' type: 'Python' bottom: 'x' top: 'y' python_param { module: 'm' layer: 'Ten' } }\n"
    "layer { name: 'Add' type: 'Python' bottom: 'y' top: 'z' python_param { module: 'm' layer: 'Add' } }\n";

static void test_callbacks(void)
{
    char *dir = check_tmpdir("layer_callbacks");
    char *proto = write_file(dir, "net.prototxt", py_net);
    struct provider p = { 0 };
    the_provider = &p;
    crema_net *net = NULL;

    /* without a provider: the clear error, and no "Python" in the type list */
    CHECK_EQ_INT(crema_net_open(proto, NULL, CREMA_TEST, &net), CREMA_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(crema_errmsg(), "layer ten") && strstr(crema_errmsg(), "Python") &&
              strstr(crema_errmsg(), "package"), "error without a provider: %s", crema_errmsg());
    int n_without = crema_layer_type_count();
    for (int i = 0; i < n_without; i++)
        CHECK(strcmp(crema_layer_type_name(i), "Python") != 0);

    CHECK_EQ_INT(crema_register_layer("Convolution", &callbacks, &p), CREMA_ERR_UNSUPPORTED);
    CHECK_OK(crema_register_layer("Python", &callbacks, &p));
    CHECK_EQ_INT(crema_layer_type_count(), n_without + 1);
    int python = 0;
    for (int i = 0; i < crema_layer_type_count(); i++) {
        python += strcmp(crema_layer_type_name(i), "Python") == 0;
        if (i > 0)
            CHECK(strcmp(crema_layer_type_name(i - 1), crema_layer_type_name(i)) < 0);
    }
    CHECK_EQ_INT(python, 1);

    CHECK_OK(crema_net_open(proto, NULL, CREMA_TRAIN, &net));
    CHECK_EQ_INT(p.created, 2);
    if (net) {
        CHECK((intptr_t)crema_net_layer_state(net, 1) == 1);
        CHECK((intptr_t)crema_net_layer_state(net, 2) == 2);
        CHECK(crema_net_layer_state(net, 0) == NULL);
        CHECK_EQ_INT(crema_net_layer_num_params(net, 2), 1);
        crema_blob x, z, w;
        CHECK_OK(crema_net_blob(net, "x", &x));
        CHECK_OK(crema_net_param(net, "Add", 0, &w));
        for (int i = 0; i < 6; i++)
            x.data[i] = (float)i;
        w.data[0] = 0.5f;
        CHECK_OK(crema_net_forward(net, NULL));
        CHECK_OK(crema_net_blob(net, "z", &z));
        for (int i = 0; i < 6; i++)
            CHECK_MSG(z.data[i] == 10.f * (float)i + 0.5f, "z[%d] = %g", i, (double)z.data[i]);
        for (int i = 0; i < 6; i++)
            z.diff[i] = 1;
        CHECK_OK(crema_net_clear_param_diffs(net));
        CHECK_OK(crema_net_backward(net));
        CHECK_OK(crema_net_blob(net, "x", &x));
        CHECK_OK(crema_net_param(net, "Add", 0, &w));
        CHECK_MSG(w.diff[0] == 6.f, "param diff %g", (double)w.diff[0]);
        for (int i = 0; i < 6; i++)
            CHECK_MSG(x.diff[i] == 10.f, "x diff[%d] = %g", i, (double)x.diff[i]);

        /* on a device (the mirror backend: memory of its own) the layers
         * run on the host copies, and the numbers are the same */
        CHECK_OK(crema_net_set_device(net, "cpu-mirror"));
        CHECK_OK(crema_net_blob(net, "x", &x));
        for (int i = 0; i < 6; i++)
            x.data[i] = (float)(2 * i);
        CHECK_OK(crema_net_forward(net, NULL));
        CHECK_OK(crema_net_blob(net, "z", &z));
        for (int i = 0; i < 6; i++)
            CHECK_MSG(z.data[i] == 20.f * (float)i + 0.5f, "on the mirror: z[%d] = %g", i, (double)z.data[i]);
        for (int i = 0; i < 6; i++)
            z.diff[i] = 2;
        CHECK_OK(crema_net_clear_param_diffs(net));
        CHECK_OK(crema_net_backward(net));
        CHECK_OK(crema_net_param(net, "Add", 0, &w));
        CHECK_MSG(w.diff[0] == 12.f, "on the mirror: param diff %g", (double)w.diff[0]);
        CHECK_OK(crema_net_blob(net, "x", &x));
        CHECK_MSG(x.diff[5] == 20.f, "on the mirror: x diff %g", (double)x.diff[5]);
        CHECK_OK(crema_net_set_device(net, "cpu"));

        /* a reshape of the input reaches the Python layers' tops */
        int shape[3] = { 4, 1, 2 };
        CHECK_OK(crema_net_reshape_blob(net, "x", 3, shape));
        CHECK_OK(crema_net_blob(net, "z", &z));
        CHECK_EQ_INT(z.count, 6);
        CHECK_OK(crema_net_reshape(net));
        CHECK_OK(crema_net_blob(net, "z", &z));
        CHECK_EQ_INT(z.count, 8);
        CHECK_EQ_INT(z.num_axes, 3);

        /* a failing callback: its status; a message made when it gives none */
        p.fail_forward = 1;
        CHECK_EQ_INT(crema_net_forward(net, NULL), CREMA_ERR_NOTFOUND);
        CHECK_MSG(strstr(crema_errmsg(), "ten") && strstr(crema_errmsg(), "forward"), "%s", crema_errmsg());
        p.fail_forward = 0;
        CHECK_OK(crema_net_forward(net, NULL));
        crema_net_free(net);
        net = NULL;
    }
    CHECK_EQ_INT(p.destroyed, 2);

    p.fail_setup = 1;
    CHECK_EQ_INT(crema_net_open(proto, NULL, CREMA_TEST, &net), CREMA_ERR_INVALID);
    CHECK_MSG(strstr(crema_errmsg(), "setup says no") != NULL, "%s", crema_errmsg());
    CHECK(net == NULL);
    CHECK_EQ_INT(p.created, 3);
    CHECK_EQ_INT(p.destroyed, 3);
    p.fail_setup = 0;

    /* unregistered while a net lives: freed without calling back */
    CHECK_OK(crema_net_open(proto, NULL, CREMA_TEST, &net));
    CHECK_OK(crema_register_layer("Python", NULL, NULL));
    crema_net_free(net);
    CHECK_EQ_INT(p.destroyed, 3);
    CHECK_EQ_INT(crema_layer_type_count(), n_without);
    CHECK_EQ_INT(crema_net_open(proto, NULL, CREMA_TEST, &net), CREMA_ERR_UNSUPPORTED);
    free(proto);
    free(dir);
}

static const char staged_net[] =
    "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'a' include { stage: 'A' }\n"
    "  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 } } }\n"
    "layer { name: 'l1' type: 'InnerProduct' bottom: 'x' top: 'l1' include { min_level: 1 }\n"
    "  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 } } }\n";

static int has_blob(crema_net *net, const char *name)
{
    for (int i = 0; i < crema_net_num_blobs(net); i++)
        if (strcmp(crema_net_blob_name(net, i), name) == 0)
            return 1;
    return 0;
}

static void test_state_share_hdf5(void)
{
    char *dir = check_tmpdir("layer_callbacks_state");
    char *proto = write_file(dir, "net.prototxt", staged_net);
    crema_net *plain = NULL, *a = NULL, *lvl = NULL, *both = NULL;
    const char *stages[] = { "A" };
    CHECK_OK(crema_net_open(proto, NULL, CREMA_TEST, &plain));
    CHECK_OK(crema_net_open_state(proto, NULL, CREMA_TEST, 0, stages, 1, &a));
    CHECK_OK(crema_net_open_state(proto, NULL, CREMA_TEST, 1, NULL, 0, &lvl));
    CHECK_OK(crema_net_open_state(proto, NULL, CREMA_TEST, 1, stages, 1, &both));
    crema_net *bad = NULL;
    CHECK(crema_net_open_state(proto, NULL, CREMA_TEST, 0, NULL, 2, &bad) != CREMA_OK);
    CHECK(bad == NULL);
    if (plain && a && lvl && both) {
        CHECK(!has_blob(plain, "a") && !has_blob(plain, "l1"));
        CHECK(has_blob(a, "a") && !has_blob(a, "l1"));
        CHECK(!has_blob(lvl, "a") && has_blob(lvl, "l1"));
        CHECK(has_blob(both, "a") && has_blob(both, "l1"));
        /* weights: HDF5 under a name without .h5, and sharing */
        crema_blob w1, w2;
        CHECK_OK(crema_net_param(both, "a", 0, &w1));
        for (size_t i = 0; i < w1.count; i++)
            w1.data[i] = (float)i + 0.25f;
        char path[4096];
        snprintf(path, sizeof path, "%s/weights.bin", dir);
        CHECK_OK(crema_net_save_hdf5(both, path, 0));
        CHECK_OK(crema_net_load_hdf5(a, path));
        CHECK_OK(crema_net_param(a, "a", 0, &w2));
        for (size_t i = 0; i < w2.count; i++)
            CHECK(w2.data[i] == (float)i + 0.25f);
        CHECK(crema_net_load_weights(a, path) != CREMA_OK); /* not a binary proto */
        CHECK_OK(crema_net_share_with(lvl, both));
        CHECK_OK(crema_net_param(lvl, "l1", 0, &w1));
        CHECK_OK(crema_net_param(both, "l1", 0, &w2));
        CHECK(w1.data == w2.data);
        CHECK(crema_net_blob_loss_weight(a, 0) == 0);
    }
    crema_net_free(plain), crema_net_free(a), crema_net_free(lvl), crema_net_free(both);
    free(proto);
    free(dir);
}

static const char ip_net[] =
    "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { num_output: 2 } }\n";

/* One update from diffs of 1 on weights of 0: SGD at lr 0.01 gives -0.01;
 * RMSProp (the file's type) -0.01 / sqrt(0.01) = -0.1. */
static float one_update(const char *solver, const char *type)
{
    crema_solver *s = NULL;
    float got = 0;
    CHECK_OK(crema_solver_open_type(solver, type, 0, &s));
    if (!s)
        return got;
    crema_blob w;
    CHECK_OK(crema_net_param(crema_solver_net(s), "ip", 0, &w));
    for (size_t i = 0; i < w.count; i++) {
        w.data[i] = 0;
        w.diff[i] = 1;
    }
    CHECK_OK(crema_solver_apply_update(s));
    CHECK_EQ_INT(crema_solver_iter(s), 0);
    CHECK_OK(crema_net_param(crema_solver_net(s), "ip", 0, &w));
    got = w.data[0];
    for (size_t i = 1; i < w.count; i++)
        CHECK(w.data[i] == got);
    crema_solver_free(s);
    return got;
}

static void test_apply_update(void)
{
    char *dir = check_tmpdir("layer_callbacks_solver");
    char *proto = write_file(dir, "net.prototxt", ip_net);
    char text[8192];
    snprintf(text, sizeof text, "net: '%s' base_lr: 0.01 lr_policy: 'fixed' max_iter: 1 type: 'RMSProp'\n"
             "snapshot_prefix: '%s/s'\n", proto, dir);
    char *sp = write_file(dir, "solver.prototxt", text);
    float sgd = one_update(sp, "SGD"), rms = one_update(sp, NULL);
    CHECK_MSG(sgd > -0.0100001f && sgd < -0.0099999f, "SGD update %g", (double)sgd);
    CHECK_MSG(rms > -0.100001f && rms < -0.099999f, "RMSProp update %g", (double)rms);
    crema_solver *s = NULL;
    CHECK(crema_solver_open_type(sp, "No\"Such", 0, &s) != CREMA_OK);
    CHECK(crema_solver_open_type(sp, "NoSuch", 0, &s) != CREMA_OK);
    CHECK(s == NULL);
    free(sp);
    free(proto);
    free(dir);
}

CHECK_MAIN(CASE(test_callbacks), CASE(test_state_share_hdf5), CASE(test_apply_update))
