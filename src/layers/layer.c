/* Building a layer on its own, and the helpers every kind shares. */
#include "layers/layer.h"
#include "core/blob_proto.h"
#include "cpu/backend_cpu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int layer_alloc_blobs(struct layer *l, int n)
{
    l->blobs = calloc((size_t)(n ? n : 1), sizeof *l->blobs);
    l->param_propagate_down = calloc((size_t)(n ? n : 1), sizeof *l->param_propagate_down);
    if (!l->blobs || !l->param_propagate_down)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        l->blobs[i] = tensor_new();
        if (!l->blobs[i])
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        l->param_propagate_down[i] = true;
    }
    l->n_blobs = n;
    return CREMA_OK;
}

static int check_count(const char *what, const char *name, const char *type, int n, int lo, int hi)
{
    if (lo >= 0 && n < lo)
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) takes at least %d %s, got %d", name, type, lo, what, n);
    if (hi >= 0 && n > hi)
        return err_set(CREMA_ERR_INVALID, "layer %s (%s) takes at most %d %s, got %d", name, type, hi, what, n);
    return CREMA_OK;
}

int layer_check_counts(const struct layer *l)
{
    const struct layer_kind *k = l->kind;
    int rc = check_count("bottoms", l->name, k->type, l->n_bottom, k->min_bottoms, k->max_bottoms);
    if (!rc)
        rc = check_count("tops", l->name, k->type, l->n_top, k->min_tops, k->max_tops);
    if (!rc && k->equal_num_bottom_top && l->n_bottom != l->n_top)
        rc = err_set(CREMA_ERR_INVALID, "layer %s (%s) needs as many tops as bottoms (%d vs %d)",
                     l->name, k->type, l->n_top, l->n_bottom);
    return rc;
}

int layer_create(const Caffe__LayerParameter *param, Caffe__Phase phase, struct rng *rng,
                 struct tensor **bottom, int n_bottom, struct tensor **top, int n_top,
                 struct layer **out)
{
    *out = NULL;
    const struct layer_kind *k = layer_kind_find(param->type);
    if (!k)
        return err_set(CREMA_ERR_UNSUPPORTED, "layer %s: unknown type \"%s\"",
                       param->name ? param->name : "?", param->type ? param->type : "");
    struct layer *l = calloc(1, sizeof *l);
    if (!l)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->kind = k;
    l->be = &cpu_backend;
    l->param = param;
    l->name = param->name ? param->name : "";
    l->phase = param->has_phase ? param->phase : phase;
    l->n_bottom = n_bottom;
    l->n_top = n_top;
    l->rng = rng;
    l->loss_weight = calloc((size_t)(n_top ? n_top : 1), sizeof(float));
    if (!l->loss_weight) {
        free(l);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n_top && i < (int)param->n_loss_weight; i++)
        l->loss_weight[i] = param->loss_weight[i];
    if (k->is_loss && param->n_loss_weight == 0 && n_top > 0)
        l->loss_weight[0] = 1.f;
    int rc = layer_check_counts(l);
    if (!rc && param->n_blobs > 0) {
        /* Blobs given in the prototxt/model are loaded as they are. */
        rc = layer_alloc_blobs(l, (int)param->n_blobs);
        for (size_t i = 0; !rc && i < param->n_blobs; i++)
            rc = tensor_from_proto(l->blobs[i], param->blobs[i], true);
    }
    if (!rc && k->setup)
        rc = k->setup(l, bottom, top);
    if (!rc && k->reshape)
        rc = k->reshape(l, bottom, top);
    if (rc) {
        err_prefix(rc, "layer %s (%s)", l->name, k->type);
        layer_free(l);
        return rc;
    }
    *out = l;
    return CREMA_OK;
}

void layer_free(struct layer *l)
{
    if (!l)
        return;
    if (l->kind && l->kind->destroy)
        l->kind->destroy(l);
    for (int i = 0; i < l->n_blobs; i++)
        tensor_free(l->blobs[i]);
    free(l->blobs);
    free(l->param_propagate_down);
    free(l->loss_weight);
    free(l);
}

int layer_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const struct layer_kind *k = l->kind;
    if (!l->be->host_memory && k->forward_dev)
        return k->forward_dev(l, bottom, top);
    return k->forward ? k->forward(l, bottom, top) : CREMA_OK;
}

int layer_backward(struct layer *l, struct tensor **top, const bool *propagate_down, struct tensor **bottom)
{
    const struct layer_kind *k = l->kind;
    if (!l->be->host_memory && k->backward_dev)
        return k->backward_dev(l, top, propagate_down, bottom);
    return k->backward ? k->backward(l, top, propagate_down, bottom) : CREMA_OK;
}

bool layer_kind_runs_on(const struct layer_kind *k, const struct backend *be)
{
    if (be->host_memory || (!k->forward && !k->backward))
        return true; /* the host's, or nothing to compute (Input) */
    if (!k->forward_dev || (k->backward && !k->backward_dev))
        return false;
    return !k->runs_on || k->runs_on(be);
}

bool layer_set_backend(struct layer *l, const struct backend *be)
{
    bool on = layer_kind_runs_on(l->kind, be);
    l->be = on ? be : &cpu_backend;
    if (l->kind->set_backend)
        l->kind->set_backend(l, l->be);
    return on;
}

const float *layer_ones(struct layer *l, struct tensor **t, size_t n)
{
    if (n == 0)
        n = 1;
    if (!*t && !(*t = tensor_new())) {
        err_set(CREMA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    struct tensor *o = *t;
    if (o->count < n) {
        int shape[1] = { (int)n };
        float *v;
        if (n > (size_t)INT32_MAX || tensor_reshape(o, 1, shape) || !(v = tensor_data_on(o, l->be)))
            return NULL;
        l->be->math->set(l->be, n, 1.f, v);
    }
    return tensor_cdata_on(o, l->be);
}
