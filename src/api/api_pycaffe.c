/* The calls of the C API that pycaffe's interface needs beyond crema.Net's:
 * nets by NetState, blob reshapes, weight sharing, HDF5 weights, the layer
 * type list, the solver's ApplyUpdate, and layers implemented by callbacks. */
#include "crema.h"
#include "api/handles.h"
#include "layers/python_layer.h"
#include "proto/hdf5_snapshot.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

crema_status crema_net_reshape_blob(crema_net *net, const char *name, int num_axes, const int *shape)
{
    if (!net || !name)
        return err_set(CREMA_ERR_INVALID, "crema_net_reshape_blob: NULL argument");
    struct tensor *t = net_blob(net->net, name);
    if (!t)
        return err_set(CREMA_ERR_NOTFOUND, "net %s has no blob \"%s\"", net->net->name, name);
    if (num_axes < 0 || num_axes > TENSOR_MAX_AXES || (num_axes && !shape))
        return err_set(CREMA_ERR_INVALID, "blob %s: bad shape (%d axes)", name, num_axes);
    int rc = tensor_reshape(t, num_axes, shape);
    return rc ? err_prefix(rc, "blob %s", name) : CREMA_OK;
}

crema_status crema_net_reshape(crema_net *net)
{
    if (!net)
        return err_set(CREMA_ERR_INVALID, "crema_net_reshape: NULL net");
    return net_reshape(net->net);
}

crema_status crema_net_share_with(crema_net *net, crema_net *other)
{
    if (!net || !other)
        return err_set(CREMA_ERR_INVALID, "crema_net_share_with: NULL net");
    if (net->net == other->net)
        return CREMA_OK;
    return net_share_trained_layers(net->net, other->net);
}

crema_status crema_net_save_hdf5(crema_net *net, const char *path, int with_diff)
{
    if (!net || !path)
        return err_set(CREMA_ERR_INVALID, "crema_net_save_hdf5: NULL argument");
    Caffe__NetParameter *p = NULL;
    int rc = net_to_proto(net->net, with_diff != 0, &p);
    if (rc)
        return rc;
    rc = hdf5_write_net(path, p, with_diff != 0);
    caffe__net_parameter__free_unpacked(p, NULL);
    return rc;
}

crema_status crema_net_load_hdf5(crema_net *net, const char *path)
{
    if (!net || !path)
        return err_set(CREMA_ERR_INVALID, "crema_net_load_hdf5: NULL argument");
    return net_load_weights_as(net->net, path, true, false);
}

float crema_net_blob_loss_weight(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_blobs)
        return 0;
    return net->net->blob_loss_weights[i];
}

/* ---- the layer type list ---- */

static int type_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted type names, made once: the table is constant. */
static const char **sorted_types(int *n)
{
    static const char **names;
    static int count;
    if (!names) {
        int k = 0;
        while (layer_kind_at(k))
            k++;
        const char **v = calloc((size_t)k + 1, sizeof *v);
        if (!v)
            return NULL;
        for (int i = 0; i < k; i++)
            v[i] = layer_kind_at(i)->type;
        qsort(v, (size_t)k, sizeof *v, type_cmp);
        count = k;
        names = v;
    }
    *n = count;
    return names;
}

int crema_layer_type_count(void)
{
    int n;
    if (!sorted_types(&n))
        return 0;
    return python_layer_has_provider() ? n : n - 1;
}

const char *crema_layer_type_name(int i)
{
    int n;
    const char **v = sorted_types(&n);
    if (!v || i < 0)
        return NULL;
    bool python = python_layer_has_provider();
    for (int k = 0; k < n; k++) {
        if (!python && strcmp(v[k], "Python") == 0)
            continue;
        if (i-- == 0)
            return v[k];
    }
    return NULL;
}

/* ---- the solver ---- */

crema_status crema_solver_apply_update(crema_solver *s)
{
    if (!s)
        return err_set(CREMA_ERR_INVALID, "crema_solver_apply_update: NULL solver");
    float rate = solver_learning_rate(&s->s->update);
    s->s->rate = rate;
    return solver_apply_update(&s->s->update, rate);
}

/* ---- layers implemented by callbacks ---- */

crema_status crema_register_layer(const char *type, const crema_layer_callbacks *callbacks, void *user)
{
    if (!type)
        return err_set(CREMA_ERR_INVALID, "crema_register_layer: NULL type");
    if (strcmp(type, "Python") != 0)
        return err_set(CREMA_ERR_UNSUPPORTED, "crema_register_layer: layers of type \"%s\" cannot be implemented "
                       "by callbacks; only type \"Python\" can", type);
    return python_layer_set_provider(callbacks, user);
}

static struct tensor **layer_blobs(crema_layer *pl, int which, int *n)
{
    switch (which) {
    case CREMA_LAYER_BOTTOM:
        *n = pl->l->n_bottom;
        return pl->bottom;
    case CREMA_LAYER_TOP:
        *n = pl->l->n_top;
        return pl->top;
    case CREMA_LAYER_PARAM:
        *n = pl->l->n_blobs;
        return pl->l->blobs;
    default:
        *n = -1;
        return NULL;
    }
}

static const char *const which_name[] = { "bottom", "top", "parameter" };

static int layer_tensor(crema_layer *pl, int which, int i, const char *fn, struct tensor **t)
{
    if (!pl)
        return err_set(CREMA_ERR_INVALID, "%s: NULL layer", fn);
    int n;
    struct tensor **v = layer_blobs(pl, which, &n);
    if (n < 0)
        return err_set(CREMA_ERR_INVALID, "%s: which is %d (CREMA_LAYER_BOTTOM, _TOP or _PARAM)", fn, which);
    if (i < 0 || i >= n)
        return err_set(CREMA_ERR_NOTFOUND, "layer %s has %d %s blob(s); there is no %s %d", pl->l->name, n,
                       which_name[which], which_name[which], i);
    *t = v[i];
    return CREMA_OK;
}

int crema_layer_count(const crema_layer *layer, int which)
{
    int n = 0;
    if (layer)
        layer_blobs((crema_layer *)layer, which, &n);
    return n < 0 ? 0 : n;
}

crema_status crema_layer_blob(crema_layer *layer, int which, int i, crema_blob *out)
{
    struct tensor *t;
    int rc = layer_tensor(layer, which, i, "crema_layer_blob", &t);
    if (rc)
        return rc;
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_layer_blob: out is NULL");
    return api_blob_view(t, out);
}

crema_status crema_layer_reshape(crema_layer *layer, int which, int i, int num_axes, const int *shape)
{
    struct tensor *t;
    int rc = layer_tensor(layer, which, i, "crema_layer_reshape", &t);
    if (rc)
        return rc;
    if (num_axes < 0 || num_axes > TENSOR_MAX_AXES || (num_axes && !shape))
        return err_set(CREMA_ERR_INVALID, "layer %s: a blob has 0 to %d axes, not %d", layer->l->name,
                       TENSOR_MAX_AXES, num_axes);
    if ((rc = tensor_reshape(t, num_axes, shape)))
        return err_prefix(rc, "layer %s: %s %d", layer->l->name, which_name[which], i);
    return CREMA_OK;
}

crema_status crema_layer_add_param(crema_layer *layer, int num_axes, const int *shape)
{
    if (!layer)
        return err_set(CREMA_ERR_INVALID, "crema_layer_add_param: NULL layer");
    return python_layer_add_param(layer, num_axes, shape);
}

crema_status crema_layer_param(const crema_layer *layer, uint8_t **bytes, size_t *len)
{
    if (!layer || !bytes || !len)
        return err_set(CREMA_ERR_INVALID, "crema_layer_param: NULL argument");
    const ProtobufCMessage *m = &layer->l->param->base;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n + 1);
    if (!b)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    *len = protobuf_c_message_pack(m, b);
    *bytes = b;
    return CREMA_OK;
}

crema_status crema_layer_fail(crema_layer *layer, crema_status status, const char *message)
{
    if (status < CREMA_ERR_IO || status > CREMA_ERR_DEVICE)
        status = CREMA_ERR_INVALID;
    (void)layer;
    return err_set(status, "%s", message ? message : "the layer failed");
}

void *crema_net_layer_state(const crema_net *net, int i)
{
    if (!net || i < 0 || i >= net->net->n_layers)
        return NULL;
    struct crema_layer *pl = python_layer_handle(net->net->layers[i].layer);
    return pl ? pl->state : NULL;
}
