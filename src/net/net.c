/* The net, after Caffe's Net::Init: layer filtering by NetState, split
 * insertion, wiring of named blobs, backward pruning, parameter sharing;
 * then forward, backward and weights in and out. */
#include "cpu/backend_cpu.h"
#include "net/net.h"
#include "core/blob_proto.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "util/err.h"
#include "util/strmap.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

static void *grow(void *p, size_t n, size_t size)
{
    return realloc(p, (n ? n : 1) * size);
}

/* protobuf-c has no copy: a pack/unpack round trip is one. */
static int net_param_clone(const Caffe__NetParameter *p, Caffe__NetParameter **out)
{
    size_t n = caffe__net_parameter__get_packed_size(p);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory copying a net of %zu bytes", n);
    caffe__net_parameter__pack(p, buf);
    *out = caffe__net_parameter__unpack(NULL, n, buf);
    free(buf);
    if (!*out)
        return err_set(CREMA_ERR_NOMEM, "out of memory copying a net");
    return CREMA_OK;
}

static int layer_param_clone(const Caffe__LayerParameter *p, Caffe__LayerParameter **out)
{
    size_t n = caffe__layer_parameter__get_packed_size(p);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    caffe__layer_parameter__pack(p, buf);
    *out = caffe__layer_parameter__unpack(NULL, n, buf);
    free(buf);
    if (!*out)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    return CREMA_OK;
}

/* ---------------------------------------------------------------------- */
/* Legacy net inputs (NetParameter.input/input_shape/input_dim) become an
 * Input layer in front, as Caffe's UpgradeNetInput does on load. */

static int net_upgrade_input(Caffe__NetParameter *p)
{
    bool has_shape = p->n_input_shape > 0, has_dim = p->n_input_dim > 0;
    int rc = CREMA_OK;
    if (has_shape || has_dim) {
        if (has_shape && p->n_input_shape < p->n_input)
            return err_set(CREMA_ERR_INVALID, "net %s: %zu inputs but %zu input_shape", str_or(p->name, ""),
                           p->n_input, p->n_input_shape);
        if (!has_shape && p->n_input_dim < 4 * p->n_input)
            return err_set(CREMA_ERR_INVALID, "net %s: %zu inputs need %zu input_dim values, got %zu",
                           str_or(p->name, ""), p->n_input, 4 * p->n_input, p->n_input_dim);
        Caffe__LayerParameter *lp = malloc(sizeof *lp);
        Caffe__InputParameter *ip = malloc(sizeof *ip);
        Caffe__LayerParameter **layers = malloc((p->n_layer + 1) * sizeof *layers);
        if (!lp || !ip || !layers) {
            free(lp);
            free(ip);
            free(layers);
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        }
        caffe__layer_parameter__init(lp);
        caffe__input_parameter__init(ip);
        lp->input_param = ip;
        layers[0] = lp;
        if (p->n_layer)
            memcpy(layers + 1, p->layer, p->n_layer * sizeof *layers);
        free(p->layer);
        p->layer = layers;
        p->n_layer++;
        lp->name = strdup("input");
        lp->type = strdup("Input");
        lp->top = calloc(p->n_input ? p->n_input : 1, sizeof(char *));
        ip->shape = calloc(p->n_input ? p->n_input : 1, sizeof *ip->shape);
        if (!lp->name || !lp->type || !lp->top || !ip->shape)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < p->n_input; i++) {
            lp->top[i] = p->input[i];
            p->input[i] = NULL;
            lp->n_top++;
            if (has_shape) {
                ip->shape[i] = p->input_shape[i];
                p->input_shape[i] = NULL;
            } else {
                Caffe__BlobShape *s = malloc(sizeof *s);
                int64_t *dim = malloc(4 * sizeof *dim);
                if (!s || !dim) {
                    free(s);
                    free(dim);
                    return err_set(CREMA_ERR_NOMEM, "out of memory");
                }
                caffe__blob_shape__init(s);
                for (int j = 0; j < 4; j++)
                    dim[j] = p->input_dim[4 * i + (size_t)j];
                s->dim = dim;
                s->n_dim = 4;
                ip->shape[i] = s;
            }
            ip->n_shape++;
        }
    }
    for (size_t i = 0; i < p->n_input; i++)
        free(p->input[i]);
    for (size_t i = 0; i < p->n_input_shape; i++)
        if (p->input_shape[i])
            caffe__blob_shape__free_unpacked(p->input_shape[i], NULL);
    free(p->input);
    free(p->input_shape);
    free(p->input_dim);
    p->input = NULL;
    p->input_shape = NULL;
    p->input_dim = NULL;
    p->n_input = p->n_input_shape = p->n_input_dim = 0;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* FilterNet */

static bool state_has_stage(const Caffe__NetState *s, const char *stage)
{
    for (size_t i = 0; i < s->n_stage; i++)
        if (strcmp(s->stage[i], stage) == 0)
            return true;
    return false;
}

bool net_state_meets_rule(const Caffe__NetState *s, const Caffe__NetStateRule *r)
{
    if (r->has_phase && r->phase != s->phase)
        return false;
    if (r->has_min_level && s->level < r->min_level)
        return false;
    if (r->has_max_level && s->level > r->max_level)
        return false;
    for (size_t i = 0; i < r->n_stage; i++)
        if (!state_has_stage(s, r->stage[i]))
            return false;
    for (size_t i = 0; i < r->n_not_stage; i++)
        if (state_has_stage(s, r->not_stage[i]))
            return false;
    return true;
}

int net_filter_layers(Caffe__NetParameter *p, const Caffe__NetState *s)
{
    size_t kept = 0;
    int rc = CREMA_OK;
    for (size_t i = 0; i < p->n_layer; i++) {
        Caffe__LayerParameter *l = p->layer[i];
        if (!rc && l->n_include && l->n_exclude)
            rc = err_set(CREMA_ERR_INVALID, "layer %s: give either include or exclude rules, not both",
                         str_or(l->name, "(unnamed)"));
        bool included = l->n_include == 0;
        for (size_t j = 0; included && j < l->n_exclude; j++)
            if (net_state_meets_rule(s, l->exclude[j]))
                included = false;
        for (size_t j = 0; !included && j < l->n_include; j++)
            if (net_state_meets_rule(s, l->include[j]))
                included = true;
        if (included)
            p->layer[kept++] = l;
        else
            caffe__layer_parameter__free_unpacked(l, NULL);
    }
    p->n_layer = kept;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* InsertSplits: where one top feeds several bottoms (or a bottom and a
 * loss), a Split layer gives each consumer its own blob, so that backward
 * sums their gradients. Names as Caffe's: <blob>_<layer>_<top>_split[_k]. */

static char *split_name(const char *layer, const char *blob, int top, int k)
{
    size_t n = strlen(layer) + strlen(blob) + 48;
    char *s = malloc(n);
    if (!s)
        return NULL;
    if (k < 0)
        snprintf(s, n, "%s_%s_%d_split", blob, layer, top);
    else
        snprintf(s, n, "%s_%s_%d_split_%d", blob, layer, top, k);
    return s;
}

static Caffe__LayerParameter *split_layer_param(const char *layer, const char *blob, int top, int count,
                                                float loss_weight)
{
    Caffe__LayerParameter *lp = malloc(sizeof *lp);
    if (!lp)
        return NULL;
    caffe__layer_parameter__init(lp);
    lp->name = split_name(layer, blob, top, -1);
    lp->type = strdup("Split");
    lp->bottom = malloc(sizeof(char *));
    lp->top = calloc((size_t)count, sizeof(char *));
    if (loss_weight != 0)
        lp->loss_weight = calloc((size_t)count, sizeof(float));
    bool ok = lp->name && lp->type && lp->bottom && lp->top && (loss_weight == 0 || lp->loss_weight);
    if (lp->bottom && (lp->bottom[0] = strdup(blob)))
        lp->n_bottom = 1;
    else
        ok = false;
    for (int k = 0; ok && k < count; k++) {
        if (!(lp->top[k] = split_name(layer, blob, top, k)))
            ok = false;
        else
            lp->n_top++;
    }
    if (ok && loss_weight != 0) {
        lp->loss_weight[0] = loss_weight;
        lp->n_loss_weight = (size_t)count;
    }
    if (!ok) {
        caffe__layer_parameter__free_unpacked(lp, NULL);
        return NULL;
    }
    return lp;
}

static int net_insert_splits(Caffe__NetParameter *p)
{
    size_t nl = p->n_layer;
    size_t *base = calloc(nl + 1, sizeof *base); /* top key of (i, j) = base[i] + j */
    size_t **src = calloc(nl ? nl : 1, sizeof *src);     /* bottom (i, j) -> top key */
    int rc = CREMA_OK;
    if (!base || !src) {
        free(base);
        free(src);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < nl; i++)
        base[i + 1] = base[i] + p->layer[i]->n_top;
    size_t nkeys = base[nl];
    int *count = calloc(nkeys ? nkeys : 1, sizeof *count);
    int *split_idx = calloc(nkeys ? nkeys : 1, sizeof *split_idx);
    float *loss = calloc(nkeys ? nkeys : 1, sizeof *loss);
    size_t *key_layer = calloc(nkeys ? nkeys : 1, sizeof *key_layer); /* top key -> its layer */
    Caffe__LayerParameter **out = calloc(nl + nkeys + 1, sizeof *out);
    struct strmap producer = { 0 }; /* blob name -> top key of its latest producer so far */
    size_t n_out = 0;
    if (nkeys > INT_MAX) {
        rc = err_set(CREMA_ERR_INVALID, "net: %zu tops are more than crema can index", nkeys);
        goto done;
    }
    if (!count || !split_idx || !loss || !key_layer || !out) {
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nl; i++)
        for (size_t j = base[i]; j < base[i + 1]; j++)
            key_layer[j] = i;
    for (size_t i = 0; i < nl && !rc; i++) {
        Caffe__LayerParameter *l = p->layer[i];
        src[i] = calloc(l->n_bottom ? l->n_bottom : 1, sizeof **src);
        if (!src[i]) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t j = 0; j < l->n_bottom; j++) {
            /* The blob's latest producer before this layer. */
            int key = strmap_get(&producer, l->bottom[j]);
            if (key < 0) {
                rc = err_set(CREMA_ERR_INVALID, "layer %s: unknown bottom blob \"%s\" (bottom index %zu)",
                             str_or(l->name, "(unnamed)"), l->bottom[j], j);
                break;
            }
            src[i][j] = (size_t)key;
            count[src[i][j]]++;
        }
        for (size_t b = 0; b < l->n_top && !rc; b++)
            rc = strmap_put(&producer, l->top[b], (int)(base[i] + b));
        size_t last_loss = l->n_loss_weight < l->n_top ? l->n_loss_weight : l->n_top;
        for (size_t j = 0; j < last_loss; j++) {
            size_t key = base[i] + j;
            for (size_t b = l->n_top; b-- > 0;)
                if (strcmp(l->top[b], l->top[j]) == 0) {
                    key = base[i] + b;
                    break;
                }
            loss[key] = l->loss_weight[j];
            if (loss[key] != 0)
                count[key]++;
        }
    }
    if (rc)
        goto done;
    for (size_t i = 0; i < nl && !rc; i++) {
        Caffe__LayerParameter *l = p->layer[i];
        out[n_out++] = l;
        for (size_t j = 0; j < l->n_bottom; j++) {
            size_t key = src[i][j];
            if (count[key] > 1) {
                size_t a = key_layer[key];
                char *name = split_name(str_or(p->layer[a]->name, ""), l->bottom[j], (int)(key - base[a]),
                                        split_idx[key]++);
                if (!name) {
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                    break;
                }
                free(l->bottom[j]);
                l->bottom[j] = name;
            }
        }
        for (size_t j = 0; j < l->n_top && !rc; j++) {
            size_t key = base[i] + j;
            if (count[key] > 1) {
                Caffe__LayerParameter *sp = split_layer_param(str_or(l->name, ""), l->top[j], (int)j, count[key],
                                                              loss[key]);
                if (!sp) {
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                    break;
                }
                out[n_out++] = sp;
                if (loss[key] != 0) {
                    /* The split's first top carries the loss now. */
                    free(l->loss_weight);
                    l->loss_weight = NULL;
                    l->n_loss_weight = 0;
                    split_idx[key]++;
                }
            }
        }
    }
    if (!rc) {
        free(p->layer);
        p->layer = out;
        p->n_layer = n_out;
        out = NULL;
    } else {
        /* The split layers made so far are ours; the rest belong to p. */
        for (size_t k = 0; k < n_out; k++) {
            bool original = false;
            for (size_t i = 0; i < nl && !original; i++)
                original = out[k] == p->layer[i];
            if (!original)
                caffe__layer_parameter__free_unpacked(out[k], NULL);
        }
    }
done:
    for (size_t i = 0; i < nl; i++)
        free(src[i]);
    free(src);
    free(base);
    free(count);
    free(split_idx);
    free(loss);
    free(key_layer);
    free(out);
    strmap_free(&producer);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Net::Init */

struct build {
    bool *available; /* per blob: produced and not yet consumed */
    bool *anonymous; /* per blob: an automatic top, never a bottom */
    const char **param_names; /* per net param: its ParamSpec name or "" */
    /* The per-blob and per-param arrays grow by doubling, and names are
     * found by hashing, so that building a net is linear in its size. */
    size_t blob_cap, param_cap, learnable_cap;
    struct strmap shared_params; /* ParamSpec name -> owning net param */
};

static int net_find_named_blob(const struct net *net, const struct build *b, const char *name)
{
    (void)b;
    return strmap_get(&net->blob_index, name);
}

static int net_add_blob(struct net *net, struct build *b, const char *name, bool anonymous)
{
    int id = net->n_blobs;
    if (id == INT_MAX)
        return -1;
    size_t n = (size_t)id + 1;
    if (n > b->blob_cap) {
        b->blob_cap = 2 * n;
        n = b->blob_cap;
    } else {
        n = 0; /* room enough */
    }
    void *p;
    if (n) {
        if (!(p = grow(net->blobs, n, sizeof *net->blobs)))
            return -1;
        net->blobs = p;
        if (!(p = grow(net->blob_names, n, sizeof *net->blob_names)))
            return -1;
        net->blob_names = p;
        if (!(p = grow(net->blob_need_backward, n, sizeof *net->blob_need_backward)))
            return -1;
        net->blob_need_backward = p;
        if (!(p = grow(net->blob_loss_weights, n, sizeof *net->blob_loss_weights)))
            return -1;
        net->blob_loss_weights = p;
        if (!(p = grow(b->available, n, sizeof *b->available)))
            return -1;
        b->available = p;
        if (!(p = grow(b->anonymous, n, sizeof *b->anonymous)))
            return -1;
        b->anonymous = p;
    }
    net->blobs[id] = tensor_new();
    net->blob_names[id] = strdup(name);
    if (!net->blobs[id] || !net->blob_names[id] ||
        (!anonymous && strmap_put(&net->blob_index, net->blob_names[id], id))) {
        tensor_free(net->blobs[id]);
        free(net->blob_names[id]);
        return -1;
    }
    net->blob_need_backward[id] = false;
    net->blob_loss_weights[id] = 0;
    b->available[id] = false;
    b->anonymous[id] = anonymous;
    net->n_blobs++;
    return id;
}

static int net_append_param(struct net *net, struct build *b, int layer_id, int param_id)
{
    struct layer *l = net->layers[layer_id].layer;
    const Caffe__LayerParameter *lp = l->param;
    static const Caffe__ParamSpec def = CAFFE__PARAM_SPEC__INIT;
    Caffe__ParamSpec fixed = CAFFE__PARAM_SPEC__INIT;
    fixed.has_lr_mult = 1;
    fixed.lr_mult = 0.f;
    const Caffe__ParamSpec *spec = (size_t)param_id < lp->n_param ? lp->param[param_id]
                                   : l->kind->fixed_params    ? &fixed
                                                              : &def;
    const char *pname = spec->name ? spec->name : "";
    int id = net->n_params;
    if (id == INT_MAX)
        return err_set(CREMA_ERR_NOMEM, "too many parameter blobs");
    size_t n = 2 * ((size_t)id + 1);
    void *p;
#define GROW(arr)                                                   \
    do {                                                            \
        if (!(p = grow(arr, n, sizeof *(arr))))                     \
            return err_set(CREMA_ERR_NOMEM, "out of memory");       \
        arr = p;                                                    \
    } while (0)
    if ((size_t)id + 1 > b->param_cap) {
        GROW(net->params);
        GROW(net->param_owner);
        GROW(net->param_layer);
        GROW(net->param_layer_index);
        GROW(net->param_learnable);
        GROW(b->param_names);
        b->param_cap = n;
    }
    net->n_params++;
    net->params[id] = l->blobs[param_id];
    net->param_layer[id] = layer_id;
    net->param_layer_index[id] = param_id;
    net->param_owner[id] = -1;
    b->param_names[id] = pname;
    net->layers[layer_id].param_id[param_id] = id;
    int owner = pname[0] ? strmap_get(&b->shared_params, pname) : -1;
    if (owner < 0) {
        if (pname[0] && strmap_put(&b->shared_params, pname, id))
            return CREMA_ERR_NOMEM;
        int li = net->n_learnable;
        n = 2 * ((size_t)li + 1);
        if ((size_t)li + 1 > b->learnable_cap) {
            GROW(net->learnable);
            b->learnable_cap = n;
        }
        net->n_learnable++;
        struct net_learnable *lr = &net->learnable[li];
        lr->tensor = net->params[id];
        lr->lr_mult = spec->lr_mult;
        lr->decay_mult = spec->decay_mult;
        lr->has_lr_mult = spec->has_lr_mult;
        lr->has_decay_mult = spec->has_decay_mult;
        net->param_learnable[id] = li;
        return CREMA_OK;
    }
#undef GROW
    net->param_owner[id] = owner;
    struct tensor *mine = net->params[id], *theirs = net->params[owner];
    const char *owner_layer = net->layers[net->param_layer[owner]].layer->name;
    char s1[256], s2[256];
    if (spec->share_mode == CAFFE__PARAM_SPEC__DIM_CHECK_MODE__PERMISSIVE) {
        if (mine->count != theirs->count)
            return err_set(CREMA_ERR_SHAPE,
                           "layer %s: cannot share param \"%s\" owned by layer %s: count mismatch, owner shape %s, "
                           "this layer's shape %s", l->name, pname, owner_layer,
                           tensor_shape_string(theirs, s1, sizeof s1), tensor_shape_string(mine, s2, sizeof s2));
    } else if (!tensor_shape_equals(mine, theirs)) {
        return err_set(CREMA_ERR_SHAPE,
                       "layer %s: cannot share param \"%s\" owned by layer %s: shape mismatch, owner shape %s, this "
                       "layer expects %s", l->name, pname, owner_layer,
                       tensor_shape_string(theirs, s1, sizeof s1), tensor_shape_string(mine, s2, sizeof s2));
    }
    int li = net->param_learnable[owner];
    net->param_learnable[id] = li;
    struct net_learnable *lr = &net->learnable[li];
    if (spec->has_lr_mult) {
        if (lr->has_lr_mult && lr->lr_mult != spec->lr_mult)
            return err_set(CREMA_ERR_INVALID, "layer %s: shared param \"%s\" has lr_mult %g, its owner %s has %g",
                           l->name, pname, spec->lr_mult, owner_layer, lr->lr_mult);
        lr->has_lr_mult = true;
        lr->lr_mult = spec->lr_mult;
    }
    if (spec->has_decay_mult) {
        if (lr->has_decay_mult && lr->decay_mult != spec->decay_mult)
            return err_set(CREMA_ERR_INVALID,
                           "layer %s: shared param \"%s\" has decay_mult %g, its owner %s has %g", l->name, pname,
                           spec->decay_mult, owner_layer, lr->decay_mult);
        lr->has_decay_mult = true;
        lr->decay_mult = spec->decay_mult;
    }
    return CREMA_OK;
}

static int net_set_loss_weights(struct layer *l, struct tensor **top)
{
    for (int j = 0; j < l->n_top; j++) {
        float w = l->loss_weight[j];
        if (w == 0)
            continue;
        float *d = tensor_diff(top[j]);
        if (!d)
            return CREMA_ERR_NOMEM;
        for (size_t k = 0; k < top[j]->count; k++)
            d[k] = w;
    }
    return CREMA_OK;
}

static int net_setup_layer(struct net *net, struct build *b, int i)
{
    Caffe__LayerParameter *lp = net->param->layer[i];
    struct net_layer *nl = &net->layers[i];
    const char *lname = str_or(lp->name, "(unnamed)");
    const char *type = str_or(lp->type, "");
    if (!lp->has_phase) {
        lp->has_phase = 1;
        lp->phase = net->phase;
    }
    if (lp->n_propagate_down && lp->n_propagate_down != lp->n_bottom)
        return err_set(CREMA_ERR_INVALID, "layer %s: propagate_down is given %zu times for %zu bottoms (give it "
                       "once per bottom or not at all)", lname, lp->n_propagate_down, lp->n_bottom);
    const struct layer_kind *kind = layer_kind_find(type);
    if (!kind)
        return err_set(CREMA_ERR_UNSUPPORTED, "layer %s: unknown layer type \"%s\"", lname, type);

    int n_top = (int)lp->n_top;
    if (kind->auto_top_blobs && kind->min_tops > n_top)
        n_top = kind->min_tops;
    nl->n_bottom = (int)lp->n_bottom;
    nl->n_top = n_top;
    nl->bottom = calloc(lp->n_bottom + 1, sizeof *nl->bottom);
    nl->bottom_id = calloc(lp->n_bottom + 1, sizeof *nl->bottom_id);
    nl->bottom_need_backward = calloc(lp->n_bottom + 1, sizeof *nl->bottom_need_backward);
    nl->top = calloc((size_t)n_top + 1, sizeof *nl->top);
    nl->top_id = calloc((size_t)n_top + 1, sizeof *nl->top_id);
    if (!nl->bottom || !nl->bottom_id || !nl->bottom_need_backward || !nl->top || !nl->top_id)
        return err_set(CREMA_ERR_NOMEM, "out of memory");

    bool need_backward = false;
    for (size_t j = 0; j < lp->n_bottom; j++) {
        int id = net_find_named_blob(net, b, lp->bottom[j]);
        if (id < 0 || !b->available[id])
            return err_set(CREMA_ERR_INVALID, "layer %s: unknown bottom blob \"%s\" (bottom index %zu)", lname,
                           lp->bottom[j], j);
        nl->bottom[j] = net->blobs[id];
        nl->bottom_id[j] = id;
        b->available[id] = false;
        need_backward |= net->blob_need_backward[id];
        nl->bottom_need_backward[j] = lp->n_propagate_down ? lp->propagate_down[j] : net->blob_need_backward[id];
    }
    for (int j = 0; j < n_top; j++) {
        int id;
        if ((size_t)j < lp->n_top) {
            const char *name = lp->top[j];
            int existing = net_find_named_blob(net, b, name);
            if ((size_t)j < lp->n_bottom && strcmp(name, lp->bottom[j]) == 0) {
                id = existing; /* in place */
            } else if (existing >= 0) {
                return err_set(CREMA_ERR_INVALID, "layer %s: top blob \"%s\" is produced by more than one layer",
                               lname, name);
            } else if ((id = net_add_blob(net, b, name, false)) < 0) {
                return err_set(CREMA_ERR_NOMEM, "out of memory");
            }
            b->available[id] = true;
            if (strcmp(type, "Input") == 0) {
                int *p = grow(net->input_ids, (size_t)net->n_inputs + 1, sizeof *p);
                if (!p)
                    return err_set(CREMA_ERR_NOMEM, "out of memory");
                net->input_ids = p;
                net->input_ids[net->n_inputs++] = id;
            }
        } else if ((id = net_add_blob(net, b, "(automatic)", true)) < 0) {
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        }
        nl->top[j] = net->blobs[id];
        nl->top_id[j] = id;
    }
    if (lp->n_loss_weight && lp->n_loss_weight != (size_t)n_top)
        return err_set(CREMA_ERR_INVALID, "layer %s: loss_weight is given %zu times for %d tops (give it once per "
                       "top or not at all)", lname, lp->n_loss_weight, n_top);

    int rc = layer_create(lp, net->phase, &net->rng, nl->bottom, nl->n_bottom, nl->top, nl->n_top, &nl->layer);
    if (rc)
        return rc;
    struct layer *l = nl->layer;
    l->net = net;
    if ((rc = net_set_loss_weights(l, nl->top)))
        return rc;
    for (int j = 0; j < n_top; j++)
        net->blob_loss_weights[nl->top_id[j]] = l->loss_weight[j];

    if (lp->n_param > (size_t)l->n_blobs)
        return err_set(CREMA_ERR_INVALID, "layer %s: %zu param specs given but the layer has %d parameter blobs",
                       lname, lp->n_param, l->n_blobs);
    nl->n_param = l->n_blobs;
    nl->param_id = calloc((size_t)l->n_blobs + 1, sizeof *nl->param_id);
    if (!nl->param_id)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int j = 0; j < l->n_blobs; j++) {
        float lr = (size_t)j < lp->n_param ? lp->param[j]->lr_mult : 1.f;
        l->param_propagate_down[j] = lr != 0;
        need_backward |= lr != 0;
    }
    for (int j = 0; j < l->n_blobs; j++)
        if ((rc = net_append_param(net, b, i, j)))
            return rc;
    nl->need_backward = need_backward;
    if (need_backward)
        for (int j = 0; j < n_top; j++)
            net->blob_need_backward[nl->top_id[j]] = true;
    return CREMA_OK;
}

/* Caffe's backward pass over the graph: a layer needs backward only if some
 * top reaches a loss, and not when every consumer skips its gradient. */
static int net_prune_backward(struct net *net)
{
    bool *under_loss = calloc((size_t)net->n_blobs + 1, sizeof *under_loss);
    bool *skip = calloc((size_t)net->n_blobs + 1, sizeof *skip);
    if (!under_loss || !skip) {
        free(under_loss);
        free(skip);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    for (int i = net->n_layers - 1; i >= 0; i--) {
        struct net_layer *nl = &net->layers[i];
        bool contributes = false, skip_down = true;
        for (int j = 0; j < nl->n_top; j++) {
            int id = nl->top_id[j];
            if (nl->layer->loss_weight[j] != 0 || under_loss[id])
                contributes = true;
            if (!skip[id])
                skip_down = false;
            if (contributes && !skip_down)
                break;
        }
        if (nl->need_backward && skip_down) {
            nl->need_backward = false;
            for (int j = 0; j < nl->n_bottom; j++)
                nl->bottom_need_backward[j] = false;
        }
        if (!contributes)
            nl->need_backward = false;
        for (int j = 0; j < nl->n_bottom; j++) {
            int id = nl->bottom_id[j];
            if (contributes)
                under_loss[id] = true;
            else
                nl->bottom_need_backward[j] = false;
            if (!nl->bottom_need_backward[j])
                skip[id] = true;
        }
    }
    free(under_loss);
    free(skip);
    if (net->param->force_backward) {
        for (int i = 0; i < net->n_layers; i++) {
            struct net_layer *nl = &net->layers[i];
            struct layer *l = nl->layer;
            nl->need_backward = true;
            for (int j = 0; j < nl->n_bottom; j++) {
                bool allow = l->kind->allow_force_backward ? l->kind->allow_force_backward(l, j) : true;
                nl->bottom_need_backward[j] = nl->bottom_need_backward[j] || allow;
                net->blob_need_backward[nl->bottom_id[j]] |= nl->bottom_need_backward[j];
            }
            for (int j = 0; j < l->n_blobs; j++)
                l->param_propagate_down[j] = true;
        }
    }
    return CREMA_OK;
}

static const struct net *sort_net;
static int cmp_blob_name(const void *a, const void *b)
{
    return strcmp(sort_net->blob_names[*(const int *)a], sort_net->blob_names[*(const int *)b]);
}

static int net_init(struct net *net)
{
    struct build b = { 0 };
    Caffe__NetParameter *p = net->param;
    int rc = CREMA_OK;
    net->layers = calloc(p->n_layer + 1, sizeof *net->layers);
    if (!net->layers)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n_layer && !rc; i++) {
        net->n_layers = (int)i + 1;
        rc = net_setup_layer(net, &b, (int)i);
    }
    if (!rc)
        rc = net_prune_backward(net);
    if (!rc) {
        net->output_ids = calloc((size_t)net->n_blobs + 1, sizeof *net->output_ids);
        if (!net->output_ids)
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        for (int i = 0; !rc && i < net->n_blobs; i++)
            if (b.available[i])
                net->output_ids[net->n_outputs++] = i;
        if (!rc) {
            /* Caffe keeps the outputs in a std::set of names. */
            sort_net = net;
            qsort(net->output_ids, (size_t)net->n_outputs, sizeof(int), cmp_blob_name);
        }
    }
    for (int i = 0; !rc && i < net->n_params; i++) {
        int o = net->param_owner[i];
        if (o < 0)
            continue;
        if (!tensor_data(net->params[o]) || !tensor_diff(net->params[o]))
            rc = CREMA_ERR_NOMEM;
        else if (!(rc = tensor_share_data(net->params[i], net->params[o])))
            rc = tensor_share_diff(net->params[i], net->params[o]);
    }
    for (int i = 0; !rc && i < net->n_layers; i++)
        if (strmap_get(&net->layer_index, net->layers[i].layer->name) < 0)
            rc = strmap_put(&net->layer_index, net->layers[i].layer->name, i);
    free(b.available);
    free(b.anonymous);
    free(b.param_names);
    strmap_free(&b.shared_params);
    return rc;
}

int net_build(const Caffe__NetParameter *param, const Caffe__NetState *state, uint64_t seed, struct net **out)
{
    static const Caffe__NetState def_state = CAFFE__NET_STATE__INIT;
    *out = NULL;
    if (!state)
        state = param->state ? param->state : &def_state;
    struct net *net = calloc(1, sizeof *net);
    if (!net)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    rng_seed(&net->rng, seed);
    net->be = &cpu_backend;
    net->phase = state->phase;
    int rc = net_param_clone(param, &net->param);
    if (!rc && upgrade_net_needed(net->param)) {
        /* a NetParameter made in memory; files are upgraded as they are read */
        char what[300] = "a net made in memory";
        if (param->name && *param->name)
            snprintf(what, sizeof what, "net \"%.256s\"", param->name);
        rc = upgrade_net_on_load(net->param, what);
    }
    if (!rc) {
        net->name = strdup(str_or(param->name, ""));
        if (!net->name)
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    if (!rc)
        rc = net_upgrade_input(net->param);
    if (!rc)
        rc = net_filter_layers(net->param, state);
    if (!rc)
        rc = net_insert_splits(net->param);
    if (!rc)
        rc = net_init(net);
    if (rc) {
        if (net->name && net->name[0])
            err_prefix(rc, "net %s", net->name);
        net_free(net);
        return rc;
    }
    *out = net;
    return CREMA_OK;
}

void net_free(struct net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n_layers; i++) {
        struct net_layer *nl = &net->layers[i];
        layer_free(nl->layer);
        free(nl->bottom);
        free(nl->top);
        free(nl->bottom_id);
        free(nl->top_id);
        free(nl->bottom_need_backward);
        free(nl->param_id);
    }
    free(net->layers);
    for (int i = 0; i < net->n_blobs; i++) {
        tensor_free(net->blobs[i]);
        free(net->blob_names[i]);
    }
    free(net->blobs);
    free(net->blob_names);
    free(net->blob_need_backward);
    free(net->blob_loss_weights);
    free(net->input_ids);
    free(net->output_ids);
    free(net->params);
    free(net->param_owner);
    free(net->param_layer);
    free(net->param_layer_index);
    free(net->param_learnable);
    free(net->learnable);
    strmap_free(&net->blob_index);
    strmap_free(&net->layer_index);
    if (net->param)
        caffe__net_parameter__free_unpacked(net->param, NULL);
    free(net->name);
    free(net);
}

/* ---------------------------------------------------------------------- */
/* Running */

static int net_layer_fail(int rc, const struct layer *l, const char *what)
{
    return err_prefix(rc, "layer %s (%s) %s", l->name, l->kind->type, what);
}

/* Caffe's Layer::Forward loss: loss weights (in the top's diff) dotted with
 * the top, on the backend the layer computed on. */
static int net_top_loss(struct layer *l, struct tensor *top, float *out)
{
    const struct backend *be = l->be;
    const float *d = tensor_cdata_on(top, be), *w = tensor_cdiff_on(top, be);
    if (!d || !w)
        return CREMA_ERR_NOMEM;
    if (!be->host_memory) {
        *out = be->math->dot(be, (int)top->count, d, w);
        return be->status(be);
    }
    float dot = 0;
    for (size_t k = 0; k < top->count; k++)
        dot += d[k] * w[k];
    *out = dot;
    return CREMA_OK;
}

int net_forward_from_to(struct net *net, int start, int end, float *loss)
{
    if (start < 0 || end >= net->n_layers || start > end + 1)
        return err_set(CREMA_ERR_INVALID, "forward from layer %d to %d: the net has layers 0..%d", start, end,
                       net->n_layers - 1);
    double total = 0;
    for (int i = start; i <= end; i++) {
        struct net_layer *nl = &net->layers[i];
        struct layer *l = nl->layer;
        int rc = CREMA_OK;
        if (l->kind->reshape)
            rc = l->kind->reshape(l, nl->bottom, nl->top);
        if (!rc)
            rc = layer_forward(l, nl->bottom, nl->top);
        if (!rc && !l->be->host_memory)
            rc = l->be->status(l->be);
        if (rc)
            return net_layer_fail(rc, l, "forward");
        for (int j = 0; j < nl->n_top; j++) {
            if (l->loss_weight[j] == 0)
                continue;
            float dot;
            if ((rc = net_top_loss(l, nl->top[j], &dot)))
                return net_layer_fail(rc, l, "loss");
            total += dot;
        }
    }
    if (loss)
        *loss = (float)total;
    return CREMA_OK;
}

int net_forward(struct net *net, float *loss)
{
    if (net->n_layers == 0) {
        if (loss)
            *loss = 0;
        return CREMA_OK;
    }
    return net_forward_from_to(net, 0, net->n_layers - 1, loss);
}

int net_backward_from_to(struct net *net, int start, int end)
{
    if (end < 0 || start >= net->n_layers || end > start + 1)
        return err_set(CREMA_ERR_INVALID, "backward from layer %d down to %d: the net has layers 0..%d", start,
                       end, net->n_layers - 1);
    for (int i = start; i >= end; i--) {
        struct net_layer *nl = &net->layers[i];
        struct layer *l = nl->layer;
        if (nl->need_backward && !l->kind->backward) {
            for (int j = 0; j < nl->n_bottom; j++)
                if (nl->bottom_need_backward[j])
                    return err_set(CREMA_ERR_UNSUPPORTED,
                                   "layer %s (%s) has no backward, but bottom %d (\"%s\") needs a gradient", l->name,
                                   l->kind->type, j, net->blob_names[nl->bottom_id[j]]);
        } else if (nl->need_backward) {
            int rc = layer_backward(l, nl->top, nl->bottom_need_backward, nl->bottom);
            if (!rc && !l->be->host_memory)
                rc = l->be->status(l->be);
            if (rc)
                return net_layer_fail(rc, l, "backward");
        }
        if (net->on_backward_layer) {
            int rc = net->on_backward_layer(net, i, net->on_backward_ctx);
            if (rc)
                return rc;
        }
    }
    return CREMA_OK;
}

int net_backward(struct net *net)
{
    if (net->n_layers == 0)
        return CREMA_OK;
    return net_backward_from_to(net, net->n_layers - 1, 0);
}

int net_reshape(struct net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        struct net_layer *nl = &net->layers[i];
        struct layer *l = nl->layer;
        if (l->kind->reshape) {
            int rc = l->kind->reshape(l, nl->bottom, nl->top);
            if (rc)
                return net_layer_fail(rc, l, "reshape");
        }
    }
    return CREMA_OK;
}

int net_clear_param_diffs(struct net *net)
{
    for (int i = 0; i < net->n_learnable; i++) {
        int rc = tensor_zero_diff_on(net->learnable[i].tensor, net->be);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

int net_set_backend(struct net *net, const struct backend *be, FILE *log)
{
    net->be = be;
    for (int i = 0; i < net->n_layers; i++) {
        struct layer *l = net->layers[i].layer;
        if (!layer_set_backend(l, be) && log)
            fprintf(log, "Layer %s (%s) has no %s path: it runs on the CPU\n", l->name, l->kind->type, be->name);
    }
    return be->host_memory ? CREMA_OK : be->status(be);
}

/* ---------------------------------------------------------------------- */
/* Lookups */

int net_blob_index(const struct net *net, const char *name)
{
    return strmap_get(&net->blob_index, name);
}

int net_layer_index(const struct net *net, const char *name)
{
    return strmap_get(&net->layer_index, name);
}

struct tensor *net_blob(const struct net *net, const char *name)
{
    int i = net_blob_index(net, name);
    return i < 0 ? NULL : net->blobs[i];
}

struct layer *net_layer_by_name(const struct net *net, const char *name)
{
    int i = net_layer_index(net, name);
    return i < 0 ? NULL : net->layers[i].layer;
}

/* ---------------------------------------------------------------------- */
/* Weights in and out */

/* Blob::ShapeEquals(BlobProto): legacy 4-D protos compare from the end of
 * the shape (a bias of N matches 1 1 1 N). */
static bool tensor_matches_proto(const struct tensor *t, const Caffe__BlobProto *bp)
{
    if (bp->has_num || bp->has_channels || bp->has_height || bp->has_width)
        return t->num_axes <= 4 && tensor_legacy_dim(t, -4) == bp->num && tensor_legacy_dim(t, -3) == bp->channels &&
               tensor_legacy_dim(t, -2) == bp->height && tensor_legacy_dim(t, -1) == bp->width;
    size_t nd = bp->shape ? bp->shape->n_dim : 0;
    if ((size_t)t->num_axes != nd)
        return false;
    for (size_t i = 0; i < nd; i++)
        if (bp->shape->dim[i] != t->shape[i])
            return false;
    return true;
}

static const char *proto_shape_string(const Caffe__BlobProto *bp, char *buf, size_t n)
{
    int na = 0, shape[TENSOR_MAX_AXES];
    size_t off = 0;
    buf[0] = 0;
    if (blob_proto_shape(bp, &na, shape) != CREMA_OK) {
        snprintf(buf, n, "(invalid)");
        return buf;
    }
    size_t count = 1;
    for (int i = 0; i < na && off < n; i++) {
        off += (size_t)snprintf(buf + off, n - off, "%d ", shape[i]);
        count *= (size_t)shape[i];
    }
    if (off < n)
        snprintf(buf + off, n - off, "(%zu)", count);
    return buf;
}

static bool blob_proto_empty(const Caffe__BlobProto *bp)
{
    return !bp->shape && !bp->has_num && !bp->has_channels && !bp->has_height && !bp->has_width && !bp->n_data &&
           !bp->n_double_data;
}

/* from_hdf5: Caffe's HDF5 files leave out weights shared with an earlier
 * layer; such blobs may be missing or empty. got (may be NULL; one flag per
 * net layer) marks the layers that received weights. */
static int net_copy_layers(struct net *net, const Caffe__NetParameter *weights, bool from_hdf5, bool *got)
{
    for (size_t i = 0; i < weights->n_layer; i++) {
        const Caffe__LayerParameter *src = weights->layer[i];
        if (!src->name)
            continue;
        int li = net_layer_index(net, src->name);
        if (li < 0)
            continue;
        struct layer *l = net->layers[li].layer;
        if ((size_t)l->n_blobs != src->n_blobs && !(from_hdf5 && src->n_blobs < (size_t)l->n_blobs))
            return err_set(CREMA_ERR_SHAPE, "layer %s: the weights hold %zu blobs, the layer has %d", src->name,
                           src->n_blobs, l->n_blobs);
        for (int j = 0; j < l->n_blobs; j++) {
            char s1[256], s2[256];
            if (from_hdf5 && ((size_t)j >= src->n_blobs || blob_proto_empty(src->blobs[j]))) {
                if (net->param_owner[net->layers[li].param_id[j]] >= 0)
                    continue;
                return err_set(CREMA_ERR_SHAPE, "layer %s: the weights have no blob %d", src->name, j);
            }
            if (!tensor_matches_proto(l->blobs[j], src->blobs[j]))
                return err_set(CREMA_ERR_SHAPE, "layer %s: cannot copy param %d: the weights have shape %s, the "
                               "net expects %s (rename the layer to learn it from scratch)", src->name, j,
                               proto_shape_string(src->blobs[j], s1, sizeof s1),
                               tensor_shape_string(l->blobs[j], s2, sizeof s2));
            int rc = tensor_from_proto(l->blobs[j], src->blobs[j], false);
            if (rc)
                return err_prefix(rc, "layer %s: param %d", src->name, j);
        }
        if (got)
            got[li] = true;
    }
    return CREMA_OK;
}

int net_copy_trained_layers(struct net *net, const Caffe__NetParameter *weights)
{
    return net_copy_layers(net, weights, false, NULL);
}

/* Up to `max` names from names(i) for i in 0..n where pick(i), as "a, b,
 * c and 12 more". */
static void name_list(char *out, size_t size, int n, int max, const char *(*name)(const void *, int),
                      bool (*pick)(const void *, int), const void *ctx)
{
    size_t used = 0;
    int shown = 0, total = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (!pick(ctx, i))
            continue;
        total++;
        if (shown < max && used + 2 < size) {
            used += (size_t)snprintf(out + used, size - used, "%s%s", shown ? ", " : "", name(ctx, i));
            shown++;
        }
    }
    if (total > shown && used < size)
        snprintf(out + used, size - used, " and %d more", total - shown);
}

struct coverage {
    const struct net *net;
    const bool *got;
    const Caffe__NetParameter *w;
};

static const char *cov_layer_name(const void *c, int i)
{
    return ((const struct coverage *)c)->net->layers[i].layer->name;
}

static bool cov_missing(const void *c, int i)
{
    const struct coverage *cv = c;
    return cv->net->layers[i].layer->n_blobs > 0 && !cv->got[i];
}

static const char *cov_file_name(const void *c, int i)
{
    const char *n = ((const struct coverage *)c)->w->layer[i]->name;
    return n ? n : "(unnamed)";
}

static bool cov_any(const void *c, int i)
{
    (void)c;
    (void)i;
    return true;
}

int net_load_weights_opt(struct net *net, const char *path, bool allow_unmatched)
{
    return net_load_weights_as(net, path, hdf5_is_snapshot_name(path), allow_unmatched);
}

int net_load_weights_as(struct net *net, const char *path, bool h5, bool allow_unmatched)
{
    Caffe__NetParameter *w = NULL;
    int rc = h5 ? hdf5_read_net(path, &w) : upgrade_read_net(path, true, &w);
    if (rc)
        return rc;
    bool *got = calloc((size_t)net->n_layers + 1, sizeof *got);
    rc = got ? net_copy_layers(net, w, h5, got) : err_set(CREMA_ERR_NOMEM, "out of memory");
    if (rc) {
        err_prefix(rc, "%s", path);
    } else {
        /* Caffe leaves a layer the file does not name with its initial
         * values and says nothing; a file that fits no layer at all (empty,
         * or another net's) is almost always a mistake. */
        int with = 0, missing = 0;
        for (int i = 0; i < net->n_layers; i++)
            if (net->layers[i].layer->n_blobs > 0) {
                with++;
                missing += !got[i];
            }
        struct coverage cv = { net, got, w };
        char names[1024], held[1024];
        if (missing) {
            name_list(names, sizeof names, net->n_layers, 8, cov_layer_name, cov_missing, &cv);
            name_list(held, sizeof held, (int)w->n_layer, 8, cov_file_name, cov_any, &cv);
        }
        if (missing && missing == with && !allow_unmatched)
            rc = err_set(CREMA_ERR_INVALID, "%s: no layer of net %s got weights from this file: it holds %zu "
                         "layer(s)%s%s%s, none named as the net's %d layer(s) with weights (%s); an empty or "
                         "another net's weights file?", path, net->name, w->n_layer, w->n_layer ? " (" : "",
                         held, w->n_layer ? ")" : "", with, names);
        else if (missing)
            err_notice("%s: %d of the %d layer(s) with weights of net %s got none from this file and keep "
                       "their initial values: %s", path, missing, with, net->name, names);
    }
    free(got);
    proto_free(&w->base);
    return rc;
}

int net_load_weights(struct net *net, const char *path)
{
    return net_load_weights_opt(net, path, false);
}

int net_to_proto(struct net *net, bool write_diff, Caffe__NetParameter **out)
{
    *out = NULL;
    Caffe__NetParameter *np = malloc(sizeof *np);
    if (!np)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    caffe__net_parameter__init(np);
    int rc = CREMA_OK;
    np->name = strdup(net->name);
    np->layer = calloc((size_t)net->n_layers + 1, sizeof *np->layer);
    if (!np->name || !np->layer)
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < net->n_layers; i++) {
        struct layer *l = net->layers[i].layer;
        Caffe__LayerParameter *lp;
        if ((rc = layer_param_clone(l->param, &lp)))
            break;
        np->layer[np->n_layer++] = lp;
        for (size_t j = 0; j < lp->n_blobs; j++)
            caffe__blob_proto__free_unpacked(lp->blobs[j], NULL);
        free(lp->blobs);
        lp->n_blobs = 0;
        lp->blobs = calloc((size_t)l->n_blobs + 1, sizeof *lp->blobs);
        if (!lp->blobs) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            break;
        }
        for (int j = 0; !rc && j < l->n_blobs; j++) {
            Caffe__BlobProto *bp = malloc(sizeof *bp);
            if (!bp) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            caffe__blob_proto__init(bp);
            lp->blobs[lp->n_blobs++] = bp;
            rc = tensor_to_proto(l->blobs[j], bp, write_diff);
        }
    }
    if (rc) {
        caffe__net_parameter__free_unpacked(np, NULL);
        return rc;
    }
    *out = np;
    return CREMA_OK;
}

int net_share_trained_layers(struct net *dst_net, const struct net *from)
{
    for (int i = 0; i < from->n_layers; i++) {
        struct layer *src = from->layers[i].layer;
        struct layer *dst = net_layer_by_name(dst_net, src->name);
        if (!dst)
            continue;
        if (dst->n_blobs != src->n_blobs)
            return err_set(CREMA_ERR_SHAPE, "layer %s: this net's has %d parameter blobs, the other net's %d",
                           src->name, dst->n_blobs, src->n_blobs);
        for (int j = 0; j < src->n_blobs; j++) {
            if (!tensor_shape_equals(dst->blobs[j], src->blobs[j])) {
                char a[256], b[256];
                return err_set(CREMA_ERR_SHAPE, "layer %s: parameter blob %d is %s in this net but %s in the other",
                               src->name, j, tensor_shape_string(dst->blobs[j], a, sizeof a),
                               tensor_shape_string(src->blobs[j], b, sizeof b));
            }
            if (!tensor_data(src->blobs[j]))
                return CREMA_ERR_NOMEM;
            int rc = tensor_share_data(dst->blobs[j], src->blobs[j]);
            if (rc)
                return rc;
        }
    }
    return CREMA_OK;
}
