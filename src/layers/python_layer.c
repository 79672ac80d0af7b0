/* The Python layer: Caffe's PythonLayer, with the Python side behind the
 * callbacks a front end registers (crema's `caffe` package does at import). */
#include "layers/python_layer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t provider_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool set;
    crema_layer_callbacks cb;
    void *user;
    unsigned generation;
} provider;

int python_layer_set_provider(const crema_layer_callbacks *callbacks, void *user)
{
    if (callbacks && (!callbacks->create || !callbacks->setup || !callbacks->reshape || !callbacks->forward ||
                      !callbacks->backward))
        return err_set(CREMA_ERR_INVALID, "a layer provider needs create, setup, reshape, forward and backward");
    pthread_mutex_lock(&provider_lock);
    provider.set = callbacks != NULL;
    if (callbacks)
        provider.cb = *callbacks;
    provider.user = user;
    provider.generation++;
    pthread_mutex_unlock(&provider_lock);
    return CREMA_OK;
}

bool python_layer_has_provider(void)
{
    pthread_mutex_lock(&provider_lock);
    bool set = provider.set;
    pthread_mutex_unlock(&provider_lock);
    return set;
}

static bool provider_is(unsigned generation)
{
    pthread_mutex_lock(&provider_lock);
    bool same = provider.set && provider.generation == generation;
    pthread_mutex_unlock(&provider_lock);
    return same;
}

struct crema_layer *python_layer_handle(const struct layer *l)
{
    extern const struct layer_kind python_layer;
    return l && l->kind == &python_layer ? l->priv : NULL;
}

/* A callback's status as the layer's: a message it did not give is made. */
static int callback_status(struct crema_layer *pl, const char *verb, int rc)
{
    if (rc == CREMA_OK)
        return CREMA_OK;
    if (rc < CREMA_ERR_IO || rc > CREMA_ERR_DEVICE)
        rc = CREMA_ERR_INVALID;
    if (!*err_msg())
        err_set(rc, "the Python layer's %s failed (%s)", verb, crema_status_name(rc));
    (void)pl;
    return rc;
}

static int python_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    pthread_mutex_lock(&provider_lock);
    bool set = provider.set;
    struct crema_layer pv = { .cb = provider.cb, .user = provider.user, .generation = provider.generation };
    pthread_mutex_unlock(&provider_lock);
    if (!set)
        return err_set(CREMA_ERR_UNSUPPORTED, "type \"Python\" runs Python code and needs crema's Python package: "
                       "build the net from Python after `import caffe`; the C library alone cannot run it");
    struct crema_layer *pl = malloc(sizeof *pl);
    if (!pl)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    *pl = pv;
    pl->l = l;
    pl->bottom = bottom;
    pl->top = top;
    pl->state = NULL;
    pl->created = false;
    pl->in_setup = false;
    l->priv = pl;
    err_clear();
    int rc = callback_status(pl, "create", pl->cb.create(pl->user, pl, &pl->state));
    if (rc)
        return rc;
    pl->created = true;
    pl->in_setup = true;
    rc = callback_status(pl, "setup", pl->cb.setup(pl->state, pl));
    pl->in_setup = false;
    return rc;
}

static int python_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct crema_layer *pl = l->priv;
    pl->bottom = bottom;
    pl->top = top;
    err_clear();
    return callback_status(pl, "reshape", pl->cb.reshape(pl->state, pl));
}

static int python_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct crema_layer *pl = l->priv;
    pl->bottom = bottom;
    pl->top = top;
    err_clear();
    return callback_status(pl, "forward", pl->cb.forward(pl->state, pl));
}

static int python_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                           struct tensor **bottom)
{
    struct crema_layer *pl = l->priv;
    pl->bottom = bottom;
    pl->top = top;
    int *pd = calloc((size_t)l->n_bottom + 1, sizeof *pd);
    if (!pd)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n_bottom; i++)
        pd[i] = propagate_down[i];
    err_clear();
    int rc = callback_status(pl, "backward", pl->cb.backward(pl->state, pl, pd));
    free(pd);
    return rc;
}

static void python_destroy(struct layer *l)
{
    struct crema_layer *pl = l->priv;
    if (!pl)
        return;
    /* A provider unregistered since (an interpreter going away) is not
     * called back. */
    if (pl->created && pl->cb.destroy && provider_is(pl->generation))
        pl->cb.destroy(pl->state);
    free(pl);
    l->priv = NULL;
}

int python_layer_add_param(struct crema_layer *pl, int num_axes, const int *shape)
{
    struct layer *l = pl->l;
    if (!pl->in_setup)
        return err_set(CREMA_ERR_INVALID, "layer %s: parameter blobs can be added only in setup", l->name);
    if (num_axes < 0 || num_axes > TENSOR_MAX_AXES || (num_axes && !shape))
        return err_set(CREMA_ERR_INVALID, "layer %s: a parameter blob needs 0 to %d axes, got %d", l->name,
                       TENSOR_MAX_AXES, num_axes);
    int n = l->n_blobs;
    struct tensor **blobs = realloc(l->blobs, (size_t)(n + 1) * sizeof *blobs);
    if (!blobs)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->blobs = blobs;
    bool *pd = realloc(l->param_propagate_down, (size_t)(n + 1) * sizeof *pd);
    if (!pd)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->param_propagate_down = pd;
    struct tensor *t = tensor_new();
    if (!t)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    int rc = tensor_reshape(t, num_axes, shape);
    if (!rc && (!tensor_data(t) || !tensor_diff(t)))
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    if (rc) {
        tensor_free(t);
        return err_prefix(rc, "layer %s: parameter blob %d", l->name, n);
    }
    tensor_zero_data(t);
    tensor_zero_diff(t);
    l->blobs[n] = t;
    l->param_propagate_down[n] = true;
    l->n_blobs = n + 1;
    return CREMA_OK;
}

const struct layer_kind python_layer = {
    .type = "Python",
    .min_bottoms = -1, .max_bottoms = -1, .min_tops = -1, .max_tops = -1,
    .setup = python_setup,
    .reshape = python_reshape,
    .forward = python_forward,
    .backward = python_backward,
    .destroy = python_destroy,
};
