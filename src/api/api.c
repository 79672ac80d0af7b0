/* The public C API (include/crema.h): opaque handles around struct net and
 * weights files, with every failure reported through crema_errmsg(). */
#include "crema.h"
#include "api/handles.h"
#include "api/onnx_export.h"
#include "data/db.h"
#include "dist/dist.h"
#include "layers/cos_data.h"
#include "layers/data_source.h"
#include "layers/input.h"
#include "core/blob_proto.h"
#include "net/device.h"
#include "net/net.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "solvers/solver.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* Fillers draw from this seed unless a solver seeds the net itself, so that
 * two opens of the same prototxt give the same initial weights;
 * crema_set_random_seed replaces it (module state, as the mode below). */
#define CREMA_NET_DEFAULT_SEED 1701
static uint64_t api_seed = CREMA_NET_DEFAULT_SEED;
static bool api_seed_set = false;

void crema_set_random_seed(uint64_t seed)
{
    api_seed = seed;
    api_seed_set = true;
}

/* The process's mode (crema_set_mode): module state, read when nets and
 * solvers open. */
static crema_mode api_mode = CREMA_MODE_CPU;
static int api_device = 0;

static int api_mode_backend(const struct backend **be)
{
    if (api_mode == CREMA_MODE_CPU) {
        *be = device_cpu();
        return CREMA_OK;
    }
    char spec[32];
    snprintf(spec, sizeof spec, "gpu:%d", api_device);
    return device_open(spec, be);
}

crema_status crema_set_mode(crema_mode mode)
{
    if (mode != CREMA_MODE_CPU && mode != CREMA_MODE_GPU)
        return err_set(CREMA_ERR_INVALID, "crema_set_mode: mode must be CREMA_MODE_CPU or CREMA_MODE_GPU, got %d",
                       (int)mode);
    crema_mode old = api_mode;
    api_mode = mode;
    const struct backend *be;
    int rc = api_mode_backend(&be);
    if (rc)
        api_mode = old;
    return rc;
}

crema_mode crema_get_mode(void)
{
    return api_mode;
}

crema_status crema_set_device(int gpu_id)
{
    if (gpu_id < 0)
        return err_set(CREMA_ERR_INVALID, "crema_set_device: GPU id %d is negative", gpu_id);
    int old = api_device;
    api_device = gpu_id;
    if (api_mode == CREMA_MODE_GPU) {
        const struct backend *be;
        int rc = api_mode_backend(&be);
        if (rc)
            api_device = old;
        return rc;
    }
    return CREMA_OK;
}

int crema_get_device(void)
{
    return api_device;
}

int crema_gpu_count(void)
{
    return device_gpu_count();
}

crema_status crema_net_open(const char *prototxt, const char *weights, crema_phase phase, crema_net **out)
{
    return crema_net_open_state(prototxt, weights, phase, -1, NULL, 0, out);
}

/* level < 0 with no stages: the file's state as it is (crema_net_open). */
crema_status crema_net_open_state(const char *prototxt, const char *weights, crema_phase phase, int level,
                                  const char *const *stages, int n_stages, crema_net **out)
{
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_net_open: out is NULL");
    *out = NULL;
    if (!prototxt)
        return err_set(CREMA_ERR_INVALID, "crema_net_open: no prototxt path");
    if (phase != CREMA_TRAIN && phase != CREMA_TEST)
        return err_set(CREMA_ERR_INVALID, "crema_net_open: phase must be CREMA_TRAIN or CREMA_TEST, got %d",
                       (int)phase);
    if (n_stages < 0 || (n_stages && !stages))
        return err_set(CREMA_ERR_INVALID, "crema_net_open: %d stages without a list", n_stages);
    for (int i = 0; i < n_stages; i++)
        if (!stages[i])
            return err_set(CREMA_ERR_INVALID, "crema_net_open: stage %d is NULL", i);
    Caffe__NetParameter *p = NULL;
    int rc = upgrade_read_net(prototxt, false, &p);
    if (rc)
        return rc;
    static const Caffe__NetState def = CAFFE__NET_STATE__INIT;
    Caffe__NetState st = p->state ? *p->state : def;
    st.has_phase = 1;
    st.phase = phase == CREMA_TRAIN ? CAFFE__PHASE__TRAIN : CAFFE__PHASE__TEST;
    if (level >= 0 || n_stages) {
        st.has_level = 1;
        st.level = level;
    }
    /* Caffe's Net(file, phase, level, stages) adds the stages to the file's. */
    char **all = calloc(st.n_stage + (size_t)n_stages + 1, sizeof *all);
    if (!all) {
        proto_free(&p->base);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < st.n_stage; i++)
        all[i] = st.stage[i];
    for (int i = 0; i < n_stages; i++)
        all[st.n_stage + (size_t)i] = (char *)stages[i];
    st.n_stage += (size_t)n_stages;
    st.stage = all;
    struct net *net = NULL;
    rc = net_build(p, &st, api_seed, &net);
    free(all);
    proto_free(&p->base);
    const struct backend *be = NULL;
    if (!rc && !(rc = api_mode_backend(&be)))
        rc = net_set_backend(net, be, NULL);
    if (rc) {
        net_free(net);
        return err_prefix(rc, "%s", prototxt);
    }
    if (weights && (rc = net_load_weights(net, weights))) {
        net_free(net);
        return rc;
    }
    crema_net *h = malloc(sizeof *h);
    if (!h) {
        net_free(net);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    h->net = net;
    *out = h;
    return CREMA_OK;
}

void crema_net_free(crema_net *net)
{
    if (!net)
        return;
    net_free(net->net);
    free(net);
}

crema_status crema_net_load_weights_flags(crema_net *net, const char *weights, unsigned flags)
{
    if (!net || !weights)
        return err_set(CREMA_ERR_INVALID, "crema_net_load_weights: NULL argument");
    if (flags & ~CREMA_WEIGHTS_ALLOW_UNMATCHED)
        return err_set(CREMA_ERR_INVALID, "crema_net_load_weights_flags: unknown flags 0x%x", flags);
    return net_load_weights_opt(net->net, weights, flags & CREMA_WEIGHTS_ALLOW_UNMATCHED);
}

crema_status crema_net_load_weights(crema_net *net, const char *weights)
{
    return crema_net_load_weights_flags(net, weights, 0);
}

crema_status crema_net_save_weights(crema_net *net, const char *path)
{
    if (!net || !path)
        return err_set(CREMA_ERR_INVALID, "crema_net_save_weights: NULL argument");
    Caffe__NetParameter *p = NULL;
    int rc = net_to_proto(net->net, false, &p);
    if (rc)
        return rc;
    rc = proto_write_binary(path, &p->base);
    caffe__net_parameter__free_unpacked(p, NULL);
    return rc;
}

int api_blob_view(struct tensor *t, crema_blob *out)
{
    memset(out, 0, sizeof *out);
    out->num_axes = t->num_axes;
    for (int i = 0; i < t->num_axes && i < CREMA_MAX_AXES; i++)
        out->shape[i] = t->shape[i];
    out->count = t->count;
    out->data = tensor_data(t);
    out->diff = tensor_diff(t);
    if (!out->data || !out->diff)
        return CREMA_ERR_NOMEM;
    return CREMA_OK;
}

static int find_blob(crema_net *net, const char *name, struct tensor **t)
{
    if (!net || !name)
        return err_set(CREMA_ERR_INVALID, "NULL net or blob name");
    *t = net_blob(net->net, name);
    if (!*t)
        return err_set(CREMA_ERR_NOTFOUND, "net %s has no blob \"%s\"", net->net->name, name);
    return CREMA_OK;
}

crema_status crema_net_blob(crema_net *net, const char *name, crema_blob *out)
{
    struct tensor *t;
    int rc = find_blob(net, name, &t);
    if (rc)
        return rc;
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_net_blob: out is NULL");
    return api_blob_view(t, out);
}

crema_status crema_net_param(crema_net *net, const char *layer, int index, crema_blob *out)
{
    if (!net || !layer || !out)
        return err_set(CREMA_ERR_INVALID, "crema_net_param: NULL argument");
    struct layer *l = net_layer_by_name(net->net, layer);
    if (!l)
        return err_set(CREMA_ERR_NOTFOUND, "net %s has no layer \"%s\"", net->net->name, layer);
    if (index < 0 || index >= l->n_blobs)
        return err_set(CREMA_ERR_NOTFOUND, "layer %s has %d parameter blobs; there is no blob %d", layer,
                       l->n_blobs, index);
    return api_blob_view(l->blobs[index], out);
}

crema_status crema_net_set_input(crema_net *net, const char *name, int num_axes, const int *shape,
                                 const float *data)
{
    struct tensor *t;
    int rc = find_blob(net, name, &t);
    if (rc)
        return rc;
    if (num_axes < 0 || num_axes > TENSOR_MAX_AXES || (num_axes && !shape))
        return err_set(CREMA_ERR_INVALID, "blob %s: bad shape (%d axes)", name, num_axes);
    bool same = t->num_axes == num_axes;
    for (int i = 0; same && i < num_axes; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        if ((rc = tensor_reshape(t, num_axes, shape)))
            return err_prefix(rc, "blob %s", name);
        if ((rc = net_reshape(net->net)))
            return rc;
    }
    if (data) {
        float *d = tensor_data(t);
        if (!d)
            return CREMA_ERR_NOMEM;
        memcpy(d, data, t->count * sizeof(float));
    }
    return CREMA_OK;
}

crema_status crema_net_get_blob(crema_net *net, const char *name, int diff, float *dst, size_t count)
{
    struct tensor *t;
    int rc = find_blob(net, name, &t);
    if (rc)
        return rc;
    if (count != t->count)
        return err_set(CREMA_ERR_SHAPE, "blob %s holds %zu values, not %zu", name, t->count, count);
    const float *s = diff ? tensor_diff(t) : tensor_data(t);
    if (!s)
        return CREMA_ERR_NOMEM;
    if (count)
        memcpy(dst, s, count * sizeof(float));
    return CREMA_OK;
}

crema_status crema_net_set_memory_data(crema_net *net, const char *layer, const float *data, const float *labels,
                                       int n)
{
    if (!net || !layer)
        return err_set(CREMA_ERR_INVALID, "crema_net_set_memory_data: NULL argument");
    struct layer *l = net_layer_by_name(net->net, layer);
    if (!l)
        return err_set(CREMA_ERR_NOTFOUND, "net %s has no layer \"%s\"", net->net->name, layer);
    return memory_data_reset(l, data, labels, n);
}

crema_status crema_net_forward(crema_net *net, float *loss)
{
    if (!net)
        return err_set(CREMA_ERR_INVALID, "crema_net_forward: NULL net");
    return net_forward(net->net, loss);
}

crema_status crema_net_forward_from_to(crema_net *net, int start, int end, float *loss)
{
    if (!net)
        return err_set(CREMA_ERR_INVALID, "crema_net_forward_from_to: NULL net");
    return net_forward_from_to(net->net, start, end, loss);
}

crema_status crema_net_backward(crema_net *net)
{
    if (!net)
        return err_set(CREMA_ERR_INVALID, "crema_net_backward: NULL net");
    return net_backward(net->net);
}

crema_status crema_net_backward_from_to(crema_net *net, int start, int end)
{
    if (!net)
        return err_set(CREMA_ERR_INVALID, "crema_net_backward_from_to: NULL net");
    return net_backward_from_to(net->net, start, end);
}

crema_status crema_net_clear_param_diffs(crema_net *net)
{
    if (!net)
        return err_set(CREMA_ERR_INVALID, "crema_net_clear_param_diffs: NULL net");
    net_clear_param_diffs(net->net);
    return CREMA_OK;
}

int crema_net_num_layers(const crema_net *net)
{
    return net ? net->net->n_layers : 0;
}

const char *crema_net_layer_name(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_layers)
        return NULL;
    return net->net->layers[i].layer->name;
}

const char *crema_net_layer_type(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_layers)
        return NULL;
    return net->net->layers[i].layer->kind->type;
}

int crema_net_num_inputs(const crema_net *net)
{
    return net ? net->net->n_inputs : 0;
}

const char *crema_net_input_name(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_inputs)
        return NULL;
    return net->net->blob_names[net->net->input_ids[i]];
}

int crema_net_num_outputs(const crema_net *net)
{
    return net ? net->net->n_outputs : 0;
}

const char *crema_net_output_name(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_outputs)
        return NULL;
    return net->net->blob_names[net->net->output_ids[i]];
}

static const struct net_layer *layer_at(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_layers)
        return NULL;
    return &net->net->layers[i];
}

int crema_net_layer_num_params(const crema_net *net, int i)
{
    const struct net_layer *nl = layer_at(net, i);
    return nl ? nl->layer->n_blobs : 0;
}

int crema_net_layer_num_bottoms(const crema_net *net, int i)
{
    const struct net_layer *nl = layer_at(net, i);
    return nl ? nl->n_bottom : 0;
}

const char *crema_net_layer_bottom_name(const crema_net *net, int i, int j)
{
    const struct net_layer *nl = layer_at(net, i);
    if (!nl || j < 0 || j >= nl->n_bottom)
        return NULL;
    return net->net->blob_names[nl->bottom_id[j]];
}

int crema_net_layer_num_tops(const crema_net *net, int i)
{
    const struct net_layer *nl = layer_at(net, i);
    return nl ? nl->n_top : 0;
}

const char *crema_net_layer_top_name(const crema_net *net, int i, int j)
{
    const struct net_layer *nl = layer_at(net, i);
    if (!nl || j < 0 || j >= nl->n_top)
        return NULL;
    return net->net->blob_names[nl->top_id[j]];
}

int crema_net_num_blobs(const crema_net *net)
{
    return net ? net->net->n_blobs : 0;
}

const char *crema_net_blob_name(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_blobs)
        return NULL;
    return net->net->blob_names[i];
}

/* ---- Weights files ---- */

struct weights_layer {
    char *name;
    int n_blobs;
    struct tensor **blobs;
    bool *has_diff;
};

struct crema_weights {
    int n_layers;
    struct weights_layer *layers;
};

static int weights_add_layer(crema_weights *w, const char *name, Caffe__BlobProto **blobs, size_t n)
{
    struct weights_layer *wl = &w->layers[w->n_layers];
    wl->name = strdup(name ? name : "");
    wl->blobs = calloc(n + 1, sizeof *wl->blobs);
    wl->has_diff = calloc(n + 1, sizeof *wl->has_diff);
    w->n_layers++;
    if (!wl->name || !wl->blobs || !wl->has_diff)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < n; j++) {
        struct tensor *t = tensor_new();
        if (!t)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        wl->blobs[wl->n_blobs++] = t;
        int rc = tensor_from_proto(t, blobs[j], true);
        if (rc)
            return err_prefix(rc, "layer %s blob %zu", wl->name, j);
        wl->has_diff[j] = blobs[j]->n_diff || blobs[j]->n_double_diff;
    }
    return CREMA_OK;
}

crema_status crema_weights_open(const char *path, crema_weights **out)
{
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_weights_open: out is NULL");
    *out = NULL;
    if (!path)
        return err_set(CREMA_ERR_INVALID, "crema_weights_open: no path");
    Caffe__NetParameter *p = NULL;
    int rc = hdf5_is_snapshot_name(path) ? hdf5_read_net(path, &p) : upgrade_read_net(path, true, &p);
    if (rc)
        return rc;
    crema_weights *w = calloc(1, sizeof *w);
    if (w)
        w->layers = calloc(p->n_layer + 1, sizeof *w->layers);
    if (!w || !w->layers) {
        free(w);
        proto_free(&p->base);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < p->n_layer; i++)
        rc = weights_add_layer(w, p->layer[i]->name, p->layer[i]->blobs, p->layer[i]->n_blobs);
    proto_free(&p->base);
    if (rc) {
        crema_weights_free(w);
        return err_prefix(rc, "%s", path);
    }
    *out = w;
    return CREMA_OK;
}

void crema_weights_free(crema_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n_layers; i++) {
        struct weights_layer *wl = &w->layers[i];
        for (int j = 0; j < wl->n_blobs; j++)
            tensor_free(wl->blobs[j]);
        free(wl->blobs);
        free(wl->has_diff);
        free(wl->name);
    }
    free(w->layers);
    free(w);
}

int crema_weights_num_layers(const crema_weights *w)
{
    return w ? w->n_layers : 0;
}

const char *crema_weights_layer_name(const crema_weights *w, int i)
{
    if (!w || i < 0 || i >= w->n_layers)
        return NULL;
    return w->layers[i].name;
}

int crema_weights_num_blobs(const crema_weights *w, int i)
{
    if (!w || i < 0 || i >= w->n_layers)
        return 0;
    return w->layers[i].n_blobs;
}

crema_status crema_weights_blob(crema_weights *w, int i, int j, crema_blob *out)
{
    if (!w || !out)
        return err_set(CREMA_ERR_INVALID, "crema_weights_blob: NULL argument");
    if (i < 0 || i >= w->n_layers)
        return err_set(CREMA_ERR_NOTFOUND, "weights file has %d layers; there is no layer %d", w->n_layers, i);
    struct weights_layer *wl = &w->layers[i];
    if (j < 0 || j >= wl->n_blobs)
        return err_set(CREMA_ERR_NOTFOUND, "layer %s has %d blobs; there is no blob %d", wl->name, wl->n_blobs, j);
    int rc = api_blob_view(wl->blobs[j], out);
    if (!wl->has_diff[j])
        out->diff = NULL;
    return rc;
}

/* ---- Solvers ---- */

crema_status crema_solver_open(const char *solver_prototxt, int log_to_stderr, crema_solver **out)
{
    return crema_solver_open_type(solver_prototxt, NULL, log_to_stderr, out);
}

crema_status crema_solver_open_type(const char *solver_prototxt, const char *type, int log_to_stderr,
                                    crema_solver **out)
{
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_solver_open: out is NULL");
    *out = NULL;
    if (!solver_prototxt)
        return err_set(CREMA_ERR_INVALID, "crema_solver_open: no solver prototxt path");
    if (type && (!*type || strchr(type, '"') || strchr(type, '\\')))
        return err_set(CREMA_ERR_INVALID, "crema_solver_open: solver type \"%s\" is not a type name", type);
    Caffe__SolverParameter *param = NULL;
    int rc = solver_read_param(solver_prototxt, &param);
    if (rc)
        return rc;
    if (type) {
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%.64s\"", type);
        if ((rc = proto_path_set(&param->base, "type", quoted))) {
            proto_free(&param->base);
            return rc;
        }
    }
    /* Caffe seeds a solver's nets from its global generator unless the
     * prototxt gives random_seed. */
    if (api_seed_set && param->random_seed < 0) {
        param->has_random_seed = 1;
        param->random_seed = (int64_t)(api_seed & INT64_MAX);
    }
    struct solver *s = NULL;
    rc = solver_create(param, log_to_stderr ? stderr : NULL, &s);
    proto_free(&param->base);
    const struct backend *be = NULL;
    if (!rc && !(rc = api_mode_backend(&be)) && !be->host_memory)
        rc = solver_set_backend(s, be);
    if (rc) {
        solver_free(s);
        return err_prefix(rc, "%s", solver_prototxt);
    }
    crema_solver *h = calloc(1, sizeof *h);
    if (h)
        h->tests = calloc((size_t)s->n_test_nets + 1, sizeof *h->tests);
    if (!h || !h->tests) {
        free(h);
        solver_free(s);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    h->s = s;
    h->train.net = s->net;
    for (int i = 0; i < s->n_test_nets; i++)
        h->tests[i].net = s->test_nets[i];
    *out = h;
    return CREMA_OK;
}

void crema_solver_free(crema_solver *s)
{
    if (!s)
        return;
    solver_free(s->s);
    free(s->tests);
    free(s);
}

crema_status crema_solver_step(crema_solver *s, int iters)
{
    if (!s)
        return err_set(CREMA_ERR_INVALID, "crema_solver_step: NULL solver");
    if (iters < 0)
        return err_set(CREMA_ERR_INVALID, "crema_solver_step: iters is %d", iters);
    return solver_step(s->s, iters);
}

crema_status crema_solver_solve(crema_solver *s, const char *resume_file)
{
    if (!s)
        return err_set(CREMA_ERR_INVALID, "crema_solver_solve: NULL solver");
    return solver_solve(s->s, resume_file);
}

crema_status crema_solver_snapshot(crema_solver *s)
{
    if (!s)
        return err_set(CREMA_ERR_INVALID, "crema_solver_snapshot: NULL solver");
    return solver_snapshot(s->s);
}

crema_status crema_solver_restore(crema_solver *s, const char *state_file)
{
    if (!s || !state_file)
        return err_set(CREMA_ERR_INVALID, "crema_solver_restore: NULL argument");
    return solver_restore(s->s, state_file);
}

crema_status crema_solver_test_all(crema_solver *s)
{
    if (!s)
        return err_set(CREMA_ERR_INVALID, "crema_solver_test_all: NULL solver");
    return solver_test_all(s->s);
}

int crema_solver_iter(const crema_solver *s)
{
    return s ? s->s->update.iter : 0;
}

crema_net *crema_solver_net(crema_solver *s)
{
    return s ? &s->train : NULL;
}

int crema_solver_num_test_nets(const crema_solver *s)
{
    return s ? s->s->n_test_nets : 0;
}

crema_net *crema_solver_test_net(crema_solver *s, int i)
{
    if (!s || i < 0 || i >= s->s->n_test_nets)
        return NULL;
    return &s->tests[i];
}

/* ---- CaffeOnSpark feeding ---- */

static int find_layer(crema_net *net, const char *layer, const char *fn, struct layer **out)
{
    if (!net || !layer)
        return err_set(CREMA_ERR_INVALID, "%s: NULL argument", fn);
    *out = net_layer_by_name(net->net, layer);
    if (!*out)
        return err_set(CREMA_ERR_NOTFOUND, "net %s has no layer \"%s\"", net->net->name, layer);
    return CREMA_OK;
}

crema_status crema_net_set_cos_data(crema_net *net, const char *layer, int top, const void *data,
                                    const size_t *lengths, int n)
{
    struct layer *l;
    int rc = find_layer(net, layer, "crema_net_set_cos_data", &l);
    return rc ? rc : cos_data_feed(l, top, data, lengths, n);
}

int crema_net_cos_top_type(crema_net *net, const char *layer, int top)
{
    struct layer *l = net && layer ? net_layer_by_name(net->net, layer) : NULL;
    return l ? cos_data_top_type(l, top) : -1;
}

long crema_net_cos_top_size(crema_net *net, const char *layer, int top)
{
    struct layer *l = net && layer ? net_layer_by_name(net->net, layer) : NULL;
    return l ? cos_data_top_size(l, top) : -1;
}

crema_status crema_net_set_memory_images(crema_net *net, const char *layer, const uint8_t *data,
                                         const size_t *lengths, int n, int channels, int height, int width,
                                         const float *labels)
{
    struct layer *l;
    int rc = find_layer(net, layer, "crema_net_set_memory_images", &l);
    return rc ? rc : memory_data_feed_images(l, data, lengths, n, channels, height, width, labels);
}

crema_status crema_net_set_data_shard(crema_net *net, const char *layer, int rank, int size)
{
    struct layer *l;
    int rc = find_layer(net, layer, "crema_net_set_data_shard", &l);
    return rc ? rc : data_source_set_shard(l, rank, size);
}

crema_status crema_db_count(const char *path, const char *backend, size_t *count)
{
    if (!path || !backend || !count)
        return err_set(CREMA_ERR_INVALID, "crema_db_count: NULL argument");
    enum db_backend b;
    struct db *db;
    int rc = db_backend_parse(backend, &b);
    if (!rc)
        rc = db_open_read(path, b, &db);
    if (rc)
        return rc;
    rc = db_count(db, count);
    db_close(db);
    return rc;
}

crema_status crema_db_keys(const char *path, const char *backend, int rank, int size, uint8_t **keys,
                           size_t **offsets, size_t *count)
{
    if (!path || !backend || !keys || !offsets || !count)
        return err_set(CREMA_ERR_INVALID, "crema_db_keys: NULL argument");
    *keys = NULL;
    *offsets = NULL;
    *count = 0;
    if (size < 1 || rank < 0 || rank >= size)
        return err_set(CREMA_ERR_INVALID, "crema_db_keys: rank %d of %d", rank, size);
    enum db_backend b;
    struct db *db;
    struct db_cursor *c = NULL;
    int rc = db_backend_parse(backend, &b);
    if (!rc)
        rc = db_open_read(path, b, &db);
    if (rc)
        return rc;
    size_t cap = 0, n = 0, used = 0, bcap = 0;
    uint8_t *buf = NULL;
    size_t *off = NULL;
    rc = db_cursor_open(db, &c);
    for (size_t i = 0; !rc && db_cursor_valid(c); i++) {
        if (i % (size_t)size == (size_t)rank) {
            size_t klen;
            const uint8_t *k = db_cursor_key(c, &klen);
            if (n + 2 > cap) {
                cap = cap ? cap * 2 : 1024;
                size_t *no = realloc(off, cap * sizeof *no);
                if (!no) {
                    rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory listing keys", path);
                    break;
                }
                off = no;
            }
            if (used + klen > bcap) {
                bcap = bcap ? bcap * 2 : 16384;
                while (bcap < used + klen)
                    bcap *= 2;
                uint8_t *nb = realloc(buf, bcap);
                if (!nb) {
                    rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory listing keys", path);
                    break;
                }
                buf = nb;
            }
            off[n++] = used;
            if (klen)
                memcpy(buf + used, k, klen);
            used += klen;
        }
        rc = db_cursor_next(c);
    }
    if (c)
        db_cursor_close(c);
    db_close(db);
    if (!rc && !off && !(off = malloc(sizeof *off)))
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    if (!rc && !buf && !(buf = malloc(1)))
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    if (rc) {
        free(buf);
        free(off);
        return rc;
    }
    off[n] = used;
    *keys = buf;
    *offsets = off;
    *count = n;
    return CREMA_OK;
}

/* ---- Data-parallel ranks ---- */

struct crema_dist {
    struct dist_comm *comm;
};

crema_status crema_dist_open(int rank, int size, const char *address, const char *secret, int timeout_ms,
                             crema_dist **out)
{
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_dist_open: NULL out");
    *out = NULL;
    struct dist_config c;
    dist_config_init(&c);
    c.rank = rank;
    c.size = size;
    c.rendezvous = address;
    c.secret = secret ? secret : "";
    if (timeout_ms > 0)
        c.timeout_ms = timeout_ms;
    crema_dist *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    int rc = dist_comm_create(&c, &d->comm);
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    return CREMA_OK;
}

void crema_dist_free(crema_dist *d)
{
    if (!d)
        return;
    dist_comm_free(d->comm);
    free(d);
}

int crema_dist_rank(const crema_dist *d)
{
    return d ? dist_rank(d->comm) : 0;
}

int crema_dist_size(const crema_dist *d)
{
    return d ? dist_size(d->comm) : 1;
}

crema_status crema_dist_allreduce(crema_dist *d, float *buf, size_t n)
{
    if (!d || (!buf && n))
        return err_set(CREMA_ERR_INVALID, "crema_dist_allreduce: NULL argument");
    return dist_allreduce_sum(d->comm, buf, n);
}

crema_status crema_dist_broadcast(crema_dist *d, void *buf, size_t bytes, int root)
{
    if (!d || (!buf && bytes))
        return err_set(CREMA_ERR_INVALID, "crema_dist_broadcast: NULL argument");
    return dist_broadcast(d->comm, buf, bytes, root);
}

crema_status crema_dist_barrier(crema_dist *d)
{
    if (!d)
        return err_set(CREMA_ERR_INVALID, "crema_dist_barrier: NULL argument");
    return dist_barrier(d->comm);
}

crema_status crema_solver_set_dist(crema_solver *cs, crema_dist *d)
{
    if (!cs || !d)
        return err_set(CREMA_ERR_INVALID, "crema_solver_set_dist: NULL argument");
    return solver_set_dist(cs->s, d->comm);
}

crema_status crema_net_set_device(crema_net *net, const char *device)
{
    if (!net || !device)
        return err_set(CREMA_ERR_INVALID, "crema_net_set_device: NULL argument");
    const struct backend *be = NULL;
    int rc = device_open(device, &be);
    return rc ? rc : net_set_backend(net->net, be, NULL);
}

crema_status crema_solver_set_device(crema_solver *s, const char *device)
{
    if (!s || !device)
        return err_set(CREMA_ERR_INVALID, "crema_solver_set_device: NULL argument");
    const struct backend *be = NULL;
    int rc = device_open(device, &be);
    return rc ? rc : solver_set_backend(s->s, be);
}

/* ---- Prototxt documents ------------------------------------------------ */

struct crema_proto {
    ProtobufCMessage *msg;
    const char *type;
};

static const char *str_or_empty(const char *s) { return s && *s ? s : "net"; }

static const struct {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
} proto_types[] = {
    { "NetParameter", &caffe__net_parameter__descriptor },
    { "SolverParameter", &caffe__solver_parameter__descriptor },
    { "LayerParameter", &caffe__layer_parameter__descriptor },
    { "NetState", &caffe__net_state__descriptor },
    { "TransformationParameter", &caffe__transformation_parameter__descriptor },
    { "SolverState", &caffe__solver_state__descriptor },
};

static int proto_type(const char *type, const ProtobufCMessageDescriptor **desc, const char **name)
{
    size_t n = sizeof proto_types / sizeof proto_types[0];
    for (size_t i = 0; type && i < n; i++) {
        if (strcmp(type, proto_types[i].name) == 0) {
            *desc = proto_types[i].desc;
            *name = proto_types[i].name;
            return CREMA_OK;
        }
    }
    return err_set(CREMA_ERR_INVALID, "no message type \"%s\" (crema_proto takes NetParameter, SolverParameter, "
                   "LayerParameter, NetState, TransformationParameter, SolverState)", type ? type : "(null)");
}

static int proto_wrap(ProtobufCMessage *msg, const char *type, crema_proto **out)
{
    crema_proto *h = malloc(sizeof *h);
    if (!h) {
        proto_free(msg);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    h->msg = msg;
    h->type = type;
    *out = h;
    return CREMA_OK;
}

crema_status crema_proto_parse(const char *type, const char *text, size_t len, const char *filename,
                               crema_proto **out)
{
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_proto_parse: out is NULL");
    *out = NULL;
    const ProtobufCMessageDescriptor *desc;
    const char *name;
    int rc = proto_type(type, &desc, &name);
    if (rc)
        return rc;
    if (!text && len)
        return err_set(CREMA_ERR_INVALID, "crema_proto_parse: NULL text");
    ProtobufCMessage *msg = NULL;
    if ((rc = proto_parse_text(desc, text ? text : "", len, filename, &msg)))
        return rc;
    return proto_wrap(msg, name, out);
}

crema_status crema_proto_read(const char *type, const char *path, crema_proto **out)
{
    if (!out || !path)
        return err_set(CREMA_ERR_INVALID, "crema_proto_read: NULL argument");
    *out = NULL;
    const ProtobufCMessageDescriptor *desc;
    const char *name;
    int rc = proto_type(type, &desc, &name);
    if (rc)
        return rc;
    ProtobufCMessage *msg = NULL;
    if ((rc = proto_read_text(path, desc, &msg)))
        return rc;
    return proto_wrap(msg, name, out);
}

void crema_proto_free(crema_proto *p)
{
    if (!p)
        return;
    proto_free(p->msg);
    free(p);
}

const char *crema_proto_type(const crema_proto *p) { return p ? p->type : NULL; }

void crema_free(void *ptr) { free(ptr); }

crema_status crema_proto_print(const crema_proto *p, char **text, size_t *len)
{
    if (!p || !text)
        return err_set(CREMA_ERR_INVALID, "crema_proto_print: NULL argument");
    return proto_print_text(p->msg, text, len);
}

crema_status crema_proto_merge(crema_proto *p, const char *text, size_t len)
{
    if (!p || (!text && len))
        return err_set(CREMA_ERR_INVALID, "crema_proto_merge: NULL argument");
    return proto_merge_text(p->msg, text ? text : "", len, "merged text");
}

crema_status crema_proto_get(const crema_proto *p, const char *path, char **value, size_t *len)
{
    if (!p || !value)
        return err_set(CREMA_ERR_INVALID, "crema_proto_get: NULL argument");
    return proto_path_get(p->msg, path, value, len);
}

crema_status crema_proto_count(const crema_proto *p, const char *path, size_t *n)
{
    if (!p || !n)
        return err_set(CREMA_ERR_INVALID, "crema_proto_count: NULL argument");
    return proto_path_count(p->msg, path, n);
}

crema_status crema_proto_set(crema_proto *p, const char *path, const char *value)
{
    if (!p)
        return err_set(CREMA_ERR_INVALID, "crema_proto_set: NULL message");
    return proto_path_set(p->msg, path, value);
}

crema_status crema_proto_add(crema_proto *p, const char *path, const char *value)
{
    if (!p)
        return err_set(CREMA_ERR_INVALID, "crema_proto_add: NULL message");
    return proto_path_add(p->msg, path, value);
}

crema_status crema_proto_clear(crema_proto *p, const char *path)
{
    if (!p)
        return err_set(CREMA_ERR_INVALID, "crema_proto_clear: NULL message");
    return proto_path_clear(p->msg, path);
}

crema_status crema_proto_field(const crema_proto *p, const char *path, const char **type, int *repeated)
{
    if (!p)
        return err_set(CREMA_ERR_INVALID, "crema_proto_field: NULL message");
    const ProtobufCFieldDescriptor *f;
    int rc = proto_path_field(p->msg->descriptor, path, &f);
    if (rc)
        return rc;
    if (type)
        *type = proto_field_type_name(f);
    if (repeated)
        *repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    return CREMA_OK;
}

crema_status crema_proto_upgrade(crema_proto *p, int *changed)
{
    if (changed)
        *changed = 0;
    if (!p)
        return err_set(CREMA_ERR_INVALID, "crema_proto_upgrade: NULL message");
    bool ch = false;
    int rc = CREMA_OK;
    if (p->msg->descriptor == &caffe__net_parameter__descriptor) {
        Caffe__NetParameter *np = (Caffe__NetParameter *)p->msg;
        if (upgrade_net_needed(np))
            rc = upgrade_net(np, str_or_empty(np->name), &ch);
    } else if (p->msg->descriptor == &caffe__solver_parameter__descriptor) {
        Caffe__SolverParameter *sp = (Caffe__SolverParameter *)p->msg;
        if (upgrade_solver_needed(sp))
            rc = upgrade_solver(sp, "solver", &ch);
    } else {
        return err_set(CREMA_ERR_INVALID, "crema_proto_upgrade: a %s has no upgrades (NetParameter and "
                       "SolverParameter have)", p->type);
    }
    if (changed)
        *changed = ch;
    return rc;
}

crema_status crema_proto_filter_net(crema_proto *net, const crema_proto *state)
{
    if (!net || !state)
        return err_set(CREMA_ERR_INVALID, "crema_proto_filter_net: NULL argument");
    if (net->msg->descriptor != &caffe__net_parameter__descriptor ||
        state->msg->descriptor != &caffe__net_state__descriptor)
        return err_set(CREMA_ERR_INVALID, "crema_proto_filter_net: takes a NetParameter and a NetState, not a %s "
                       "and a %s", net->type, state->type);
    Caffe__NetParameter *np = (Caffe__NetParameter *)net->msg;
    int rc = CREMA_OK;
    if (upgrade_net_needed(np))
        rc = upgrade_net(np, str_or_empty(np->name), NULL);
    if (!rc)
        rc = net_filter_layers(np, (const Caffe__NetState *)state->msg);
    return rc;
}

/* ---- ONNX export ---------------------------------------------------------- */

_Static_assert(CREMA_ONNX_OPSET_MIN == ONNX_OPSET_MIN && CREMA_ONNX_OPSET_MAX == ONNX_OPSET_MAX &&
                   CREMA_ONNX_OPSET_DEFAULT == ONNX_OPSET_DEFAULT,
               "crema.h and api/onnx_export.h disagree on the ONNX opsets");

crema_status crema_net_export_onnx(crema_net *net, const char *path, int opset, unsigned flags)
{
    if (!net || !path)
        return err_set(CREMA_ERR_INVALID, "crema_net_export_onnx: NULL argument");
    if (flags & ~CREMA_ONNX_FIXED_BATCH)
        return err_set(CREMA_ERR_INVALID, "crema_net_export_onnx: unknown flags 0x%x", flags);
    struct onnx_export_options opt = { .opset = opset, .fixed_batch = flags & CREMA_ONNX_FIXED_BATCH };
    return onnx_export_net(net->net, path, &opt);
}
