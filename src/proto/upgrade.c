/* Upgrades of V0/V1 nets and old solvers, following Caffe's upgrade_proto
 * step for step. Messages are changed in place: fields move (pointers are
 * handed over) from the old layer messages to the new ones, and what is
 * left of the old ones is freed. */
#include "proto/upgrade.h"
#include "proto/proto_io.h"
#include "util/err.h"
#include "util/io.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
    const char *file;
    struct upgrade_notes *notes;
};

static const char *fname(const char *f) { return f ? f : "(net)"; }

static void note(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct ctx *c, const char *fmt, ...)
{
    if (!c->notes)
        return;
    c->notes->count++;
    size_t used = strlen(c->notes->text);
    size_t room = sizeof c->notes->text - used;
    if (room < 2)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->notes->text + used, room - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    used = strlen(c->notes->text);
    c->notes->text[used] = '\n';
    c->notes->text[used + 1] = 0;
}

static int nomem(const char *file)
{
    return err_set(CREMA_ERR_NOMEM, "%s: out of memory while upgrading", fname(file));
}

/* A fresh message of the descriptor's type, from malloc, so that
 * protobuf_c_message_free_unpacked can free it with the rest. */
static void *msg_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (m)
        d->message_init(m);
    return m;
}

/* Caffe's mutable_x(): the sub-message, made when absent (NULL on OOM). */
#define SUB(owner, field, desc) ((owner)->field ? (owner)->field : ((owner)->field = msg_new(&(desc))))

static void msg_free(void *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

/* An optional string is present when set to anything but its default. */
static bool str_has(const char *s, const char *def) { return s && s != def; }

static void str_replace(char **dst, char *s, const char *def)
{
    if (str_has(*dst, def))
        free(*dst);
    *dst = s;
}

static int append_u32(uint32_t **arr, size_t *n, uint32_t v)
{
    uint32_t *a = realloc(*arr, (*n + 1) * sizeof *a);
    if (!a)
        return -1;
    a[(*n)++] = v;
    *arr = a;
    return 0;
}

/* ---- predicates ---- */

bool upgrade_net_needs_v0(const Caffe__NetParameter *net)
{
    for (size_t i = 0; i < net->n_layers; i++)
        if (net->layers[i]->layer)
            return true;
    return false;
}

bool upgrade_net_needs_v1(const Caffe__NetParameter *net) { return net->n_layers > 0; }

static bool data_fields_set(protobuf_c_boolean has_scale, const char *mean_file, protobuf_c_boolean has_crop,
                            protobuf_c_boolean has_mirror)
{
    return has_scale || mean_file || has_crop || has_mirror;
}

bool upgrade_net_needs_data_transform(const Caffe__NetParameter *net)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        const Caffe__V1LayerParameter *l = net->layers[i];
        if (l->type == CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DATA && l->data_param) {
            const Caffe__DataParameter *p = l->data_param;
            if (data_fields_set(p->has_scale, p->mean_file, p->has_crop_size, p->has_mirror))
                return true;
        }
        if (l->type == CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__IMAGE_DATA && l->image_data_param) {
            const Caffe__ImageDataParameter *p = l->image_data_param;
            if (data_fields_set(p->has_scale, p->mean_file, p->has_crop_size, p->has_mirror))
                return true;
        }
        if (l->type == CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__WINDOW_DATA && l->window_data_param) {
            const Caffe__WindowDataParameter *p = l->window_data_param;
            if (data_fields_set(p->has_scale, p->mean_file, p->has_crop_size, p->has_mirror))
                return true;
        }
    }
    return false;
}

bool upgrade_net_needs_input(const Caffe__NetParameter *net) { return net->n_input > 0; }

static bool is_old_batch_norm(const Caffe__LayerParameter *l)
{
    return l->type && strcmp(l->type, "BatchNorm") == 0 && l->n_param == 3;
}

bool upgrade_net_needs_batch_norm(const Caffe__NetParameter *net)
{
    for (size_t i = 0; i < net->n_layer; i++)
        if (is_old_batch_norm(net->layer[i]))
            return true;
    return false;
}

bool upgrade_net_needed(const Caffe__NetParameter *net)
{
    return upgrade_net_needs_v0(net) || upgrade_net_needs_v1(net) || upgrade_net_needs_data_transform(net) ||
           upgrade_net_needs_input(net) || upgrade_net_needs_batch_norm(net);
}

/* ---- V0 -> V1 ---- */

static const struct {
    const char *v0;
    Caffe__V1LayerParameter__LayerType v1;
} v0_types[] = {
    { "accuracy", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__ACCURACY },
    { "bnll", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__BNLL },
    { "concat", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONCAT },
    { "conv", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONVOLUTION },
    { "data", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DATA },
    { "dropout", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DROPOUT },
    { "euclidean_loss", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__EUCLIDEAN_LOSS },
    { "flatten", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__FLATTEN },
    { "hdf5_data", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__HDF5_DATA },
    { "hdf5_output", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__HDF5_OUTPUT },
    { "im2col", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__IM2COL },
    { "images", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__IMAGE_DATA },
    { "infogain_loss", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__INFOGAIN_LOSS },
    { "innerproduct", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__INNER_PRODUCT },
    { "lrn", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__LRN },
    { "multinomial_logistic_loss", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__MULTINOMIAL_LOGISTIC_LOSS },
    { "pool", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__POOLING },
    { "relu", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__RELU },
    { "sigmoid", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SIGMOID },
    { "softmax", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SOFTMAX },
    { "softmax_loss", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SOFTMAX_LOSS },
    { "split", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SPLIT },
    { "tanh", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__TANH },
    { "window_data", CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__WINDOW_DATA },
};

static const char *v0_type_of(const Caffe__V1LayerParameter *l)
{
    return l->layer && l->layer->type ? l->layer->type : "";
}

static const char *v1_layer_label(const Caffe__V1LayerParameter *l)
{
    if (l->name)
        return l->name;
    if (l->layer && l->layer->name)
        return l->layer->name;
    return "";
}

/* Caffe's blob_name_to_last_top_idx: which layer last wrote each blob. */
struct blob_map {
    const char **name;
    long *idx;
    size_t n, cap;
};

static long *blob_map_find(struct blob_map *m, const char *name)
{
    for (size_t i = m->n; i-- > 0;)
        if (strcmp(m->name[i], name) == 0)
            return &m->idx[i];
    return NULL;
}

static int blob_map_set(struct blob_map *m, const char *name, long idx)
{
    long *p = blob_map_find(m, name);
    if (p) {
        *p = idx;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        const char **nn = realloc(m->name, cap * sizeof *nn);
        if (!nn)
            return -1;
        m->name = nn;
        long *ni = realloc(m->idx, cap * sizeof *ni);
        if (!ni)
            return -1;
        m->idx = ni;
        m->cap = cap;
    }
    m->name[m->n] = name;
    m->idx[m->n++] = idx;
    return 0;
}

/* Caffe's UpgradeV0PaddingLayers: a V0 "padding" layer disappears and its
 * pad moves into the convolution or pooling it feeds. */
static int v0_fold_padding(Caffe__NetParameter *net, struct ctx *c)
{
    size_t n = net->n_layers;
    Caffe__V1LayerParameter **old = net->layers;
    Caffe__V1LayerParameter **kept = calloc(n ? n : 1, sizeof *kept);
    struct blob_map map = { 0 };
    size_t nk = 0;
    int rc = CREMA_OK;
    if (!kept)
        return nomem(c->file);
    for (size_t i = 0; i < net->n_input && !rc; i++)
        if (blob_map_set(&map, net->input[i], -1))
            rc = nomem(c->file);
    for (size_t i = 0; i < n && !rc; i++) {
        Caffe__V1LayerParameter *l = old[i];
        const char *type = v0_type_of(l);
        if (strcmp(type, "padding") != 0)
            kept[nk++] = l;
        for (size_t j = 0; j < l->n_bottom && !rc; j++) {
            long *src_idx = blob_map_find(&map, l->bottom[j]);
            if (!src_idx) {
                rc = err_set(CREMA_ERR_INVALID, "%s: layers %zu (\"%s\"): bottom \"%s\" is not an input or an "
                             "earlier top",
                             fname(c->file), i, v1_layer_label(l), l->bottom[j]);
                break;
            }
            if (*src_idx < 0)
                continue;
            const Caffe__V1LayerParameter *src = old[*src_idx];
            if (strcmp(v0_type_of(src), "padding") != 0)
                continue;
            if (strcmp(type, "conv") != 0 && strcmp(type, "pool") != 0)
                rc = err_set(CREMA_ERR_INVALID,
                             "%s: layers %zu (\"%s\"): a padding layer feeds a layer of type \"%s\"; "
                             "only conv and pool can take its pad",
                             fname(c->file), i, v1_layer_label(l), type);
            else if (l->n_bottom != 1)
                rc = err_set(CREMA_ERR_INVALID, "%s: layers %zu (\"%s\"): fed by a padding layer, it must have "
                             "one bottom, not %zu",
                             fname(c->file), i, v1_layer_label(l), l->n_bottom);
            else if (src->n_bottom != 1 || src->n_top != 1)
                rc = err_set(CREMA_ERR_INVALID, "%s: padding layer \"%s\" must have one bottom and one top",
                             fname(c->file), v1_layer_label(src));
            if (rc)
                break;
            char *b = strdup(src->bottom[0]);
            if (!b) {
                rc = nomem(c->file);
                break;
            }
            l->layer->has_pad = 1;
            l->layer->pad = src->layer->pad;
            free(l->bottom[j]);
            l->bottom[j] = b;
        }
        for (size_t j = 0; j < l->n_top && !rc; j++)
            if (blob_map_set(&map, l->top[j], (long)i))
                rc = nomem(c->file);
    }
    free(map.name);
    free(map.idx);
    if (rc) {
        free(kept);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(v0_type_of(old[i]), "padding") == 0)
            msg_free(old[i]);
    free(old);
    net->layers = kept;
    net->n_layers = nk;
    return CREMA_OK;
}

/* The V1 sub-messages a V0 field may land in, made on first use. */
#define V1SUB(field, desc)                                                                                   \
    do {                                                                                                     \
        if (!SUB(o, field, desc))                                                                            \
            return nomem(c->file);                                                                           \
    } while (0)

static void dropped(struct ctx *c, const char *layer, const char *field, const char *type)
{
    note(c, "%s: layer \"%s\": V0 field %s does not apply to type \"%s\"; dropped", fname(c->file), layer, field,
         type);
}

/* Caffe's UpgradeV0LayerParameter on one layer: o (fresh) receives what l
 * holds; l keeps what was not taken and is freed by the caller. */
static int v0_layer(struct ctx *c, Caffe__V1LayerParameter *l, Caffe__V1LayerParameter *o)
{
    o->bottom = l->bottom, o->n_bottom = l->n_bottom;
    l->bottom = NULL, l->n_bottom = 0;
    o->top = l->top, o->n_top = l->n_top;
    l->top = NULL, l->n_top = 0;
    Caffe__V0LayerParameter *v = l->layer;
    if (!v)
        return CREMA_OK;
    const char *type = v->type ? v->type : "";
    const char *lname = v->name ? v->name : "";
    if (v->name)
        o->name = v->name, v->name = NULL;
    if (v->type) {
        size_t k, nt = sizeof v0_types / sizeof v0_types[0];
        for (k = 0; k < nt; k++)
            if (strcmp(v0_types[k].v0, type) == 0)
                break;
        if (k == nt)
            return err_set(CREMA_ERR_INVALID, "%s: layer \"%s\": V0 layer type \"%s\" has no upgrade", fname(c->file),
                           lname, type);
        o->has_type = 1;
        o->type = v0_types[k].v1;
    }
    o->blobs = v->blobs, o->n_blobs = v->n_blobs;
    v->blobs = NULL, v->n_blobs = 0;
    o->blobs_lr = v->blobs_lr, o->n_blobs_lr = v->n_blobs_lr;
    v->blobs_lr = NULL, v->n_blobs_lr = 0;
    o->weight_decay = v->weight_decay, o->n_weight_decay = v->n_weight_decay;
    v->weight_decay = NULL, v->n_weight_decay = 0;

    bool conv = strcmp(type, "conv") == 0, ip = strcmp(type, "innerproduct") == 0,
         pool = strcmp(type, "pool") == 0, lrn = strcmp(type, "lrn") == 0, data = strcmp(type, "data") == 0,
         hdf5 = strcmp(type, "hdf5_data") == 0, images = strcmp(type, "images") == 0,
         window = strcmp(type, "window_data") == 0;

    if (v->has_num_output) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            o->convolution_param->has_num_output = 1;
            o->convolution_param->num_output = v->num_output;
        } else if (ip) {
            V1SUB(inner_product_param, caffe__inner_product_parameter__descriptor);
            o->inner_product_param->has_num_output = 1;
            o->inner_product_param->num_output = v->num_output;
        } else {
            dropped(c, lname, "num_output", type);
        }
    }
    if (v->has_biasterm) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            o->convolution_param->has_bias_term = 1;
            o->convolution_param->bias_term = v->biasterm;
        } else if (ip) {
            V1SUB(inner_product_param, caffe__inner_product_parameter__descriptor);
            o->inner_product_param->has_bias_term = 1;
            o->inner_product_param->bias_term = v->biasterm;
        } else {
            dropped(c, lname, "biasterm", type);
        }
    }
    if (v->weight_filler) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            msg_free(o->convolution_param->weight_filler);
            o->convolution_param->weight_filler = v->weight_filler, v->weight_filler = NULL;
        } else if (ip) {
            V1SUB(inner_product_param, caffe__inner_product_parameter__descriptor);
            msg_free(o->inner_product_param->weight_filler);
            o->inner_product_param->weight_filler = v->weight_filler, v->weight_filler = NULL;
        } else {
            dropped(c, lname, "weight_filler", type);
        }
    }
    if (v->bias_filler) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            msg_free(o->convolution_param->bias_filler);
            o->convolution_param->bias_filler = v->bias_filler, v->bias_filler = NULL;
        } else if (ip) {
            V1SUB(inner_product_param, caffe__inner_product_parameter__descriptor);
            msg_free(o->inner_product_param->bias_filler);
            o->inner_product_param->bias_filler = v->bias_filler, v->bias_filler = NULL;
        } else {
            dropped(c, lname, "bias_filler", type);
        }
    }
    if (v->has_pad) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            if (append_u32(&o->convolution_param->pad, &o->convolution_param->n_pad, v->pad))
                return nomem(c->file);
        } else if (pool) {
            V1SUB(pooling_param, caffe__pooling_parameter__descriptor);
            o->pooling_param->has_pad = 1;
            o->pooling_param->pad = v->pad;
        } else {
            dropped(c, lname, "pad", type);
        }
    }
    if (v->has_kernelsize) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            if (append_u32(&o->convolution_param->kernel_size, &o->convolution_param->n_kernel_size, v->kernelsize))
                return nomem(c->file);
        } else if (pool) {
            V1SUB(pooling_param, caffe__pooling_parameter__descriptor);
            o->pooling_param->has_kernel_size = 1;
            o->pooling_param->kernel_size = v->kernelsize;
        } else {
            dropped(c, lname, "kernelsize", type);
        }
    }
    if (v->has_group) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            o->convolution_param->has_group = 1;
            o->convolution_param->group = v->group;
        } else {
            dropped(c, lname, "group", type);
        }
    }
    if (v->has_stride) {
        if (conv) {
            V1SUB(convolution_param, caffe__convolution_parameter__descriptor);
            if (append_u32(&o->convolution_param->stride, &o->convolution_param->n_stride, v->stride))
                return nomem(c->file);
        } else if (pool) {
            V1SUB(pooling_param, caffe__pooling_parameter__descriptor);
            o->pooling_param->has_stride = 1;
            o->pooling_param->stride = v->stride;
        } else {
            dropped(c, lname, "stride", type);
        }
    }
    if (v->has_pool) {
        if (pool) {
            switch (v->pool) {
            case CAFFE__V0_LAYER_PARAMETER__POOL_METHOD__MAX:
            case CAFFE__V0_LAYER_PARAMETER__POOL_METHOD__AVE:
            case CAFFE__V0_LAYER_PARAMETER__POOL_METHOD__STOCHASTIC:
                V1SUB(pooling_param, caffe__pooling_parameter__descriptor);
                o->pooling_param->has_pool = 1;
                o->pooling_param->pool = v->pool == CAFFE__V0_LAYER_PARAMETER__POOL_METHOD__MAX
                                             ? CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX
                                         : v->pool == CAFFE__V0_LAYER_PARAMETER__POOL_METHOD__AVE
                                             ? CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE
                                             : CAFFE__POOLING_PARAMETER__POOL_METHOD__STOCHASTIC;
                break;
            default:
                note(c, "%s: layer \"%s\": unknown pool method %d; dropped", fname(c->file), lname, (int)v->pool);
            }
        } else {
            dropped(c, lname, "pool", type);
        }
    }
    if (v->has_dropout_ratio) {
        if (strcmp(type, "dropout") == 0) {
            V1SUB(dropout_param, caffe__dropout_parameter__descriptor);
            o->dropout_param->has_dropout_ratio = 1;
            o->dropout_param->dropout_ratio = v->dropout_ratio;
        } else {
            dropped(c, lname, "dropout_ratio", type);
        }
    }
    if (v->has_local_size) {
        if (lrn) {
            V1SUB(lrn_param, caffe__lrnparameter__descriptor);
            o->lrn_param->has_local_size = 1;
            o->lrn_param->local_size = v->local_size;
        } else {
            dropped(c, lname, "local_size", type);
        }
    }
    if (v->has_alpha) {
        if (lrn) {
            V1SUB(lrn_param, caffe__lrnparameter__descriptor);
            o->lrn_param->has_alpha = 1;
            o->lrn_param->alpha = v->alpha;
        } else {
            dropped(c, lname, "alpha", type);
        }
    }
    if (v->has_beta) {
        if (lrn) {
            V1SUB(lrn_param, caffe__lrnparameter__descriptor);
            o->lrn_param->has_beta = 1;
            o->lrn_param->beta = v->beta;
        } else {
            dropped(c, lname, "beta", type);
        }
    }
    if (v->has_k) {
        if (lrn) {
            V1SUB(lrn_param, caffe__lrnparameter__descriptor);
            o->lrn_param->has_k = 1;
            o->lrn_param->k = v->k;
        } else {
            dropped(c, lname, "k", type);
        }
    }
    if (v->source) {
        char *s = v->source;
        if (data) {
            V1SUB(data_param, caffe__data_parameter__descriptor);
            str_replace(&o->data_param->source, s, NULL);
        } else if (hdf5) {
            V1SUB(hdf5_data_param, caffe__hdf5_data_parameter__descriptor);
            str_replace(&o->hdf5_data_param->source, s, NULL);
        } else if (images) {
            V1SUB(image_data_param, caffe__image_data_parameter__descriptor);
            str_replace(&o->image_data_param->source, s, NULL);
        } else if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            str_replace(&o->window_data_param->source, s, NULL);
        } else if (strcmp(type, "infogain_loss") == 0) {
            V1SUB(infogain_loss_param, caffe__infogain_loss_parameter__descriptor);
            str_replace(&o->infogain_loss_param->source, s, NULL);
        } else {
            s = NULL;
            dropped(c, lname, "source", type);
        }
        if (s)
            v->source = NULL;
    }
    if (v->has_scale) {
        V1SUB(transform_param, caffe__transformation_parameter__descriptor);
        o->transform_param->has_scale = 1;
        o->transform_param->scale = v->scale;
    }
    if (v->meanfile) {
        V1SUB(transform_param, caffe__transformation_parameter__descriptor);
        str_replace(&o->transform_param->mean_file, v->meanfile, NULL);
        v->meanfile = NULL;
    }
    if (v->has_batchsize) {
        if (data) {
            V1SUB(data_param, caffe__data_parameter__descriptor);
            o->data_param->has_batch_size = 1;
            o->data_param->batch_size = v->batchsize;
        } else if (hdf5) {
            V1SUB(hdf5_data_param, caffe__hdf5_data_parameter__descriptor);
            o->hdf5_data_param->has_batch_size = 1;
            o->hdf5_data_param->batch_size = v->batchsize;
        } else if (images) {
            V1SUB(image_data_param, caffe__image_data_parameter__descriptor);
            o->image_data_param->has_batch_size = 1;
            o->image_data_param->batch_size = v->batchsize;
        } else if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            o->window_data_param->has_batch_size = 1;
            o->window_data_param->batch_size = v->batchsize;
        } else {
            dropped(c, lname, "batchsize", type);
        }
    }
    if (v->has_cropsize) {
        V1SUB(transform_param, caffe__transformation_parameter__descriptor);
        o->transform_param->has_crop_size = 1;
        o->transform_param->crop_size = v->cropsize;
    }
    if (v->has_mirror) {
        V1SUB(transform_param, caffe__transformation_parameter__descriptor);
        o->transform_param->has_mirror = 1;
        o->transform_param->mirror = v->mirror;
    }
    if (v->has_rand_skip) {
        if (data) {
            V1SUB(data_param, caffe__data_parameter__descriptor);
            o->data_param->has_rand_skip = 1;
            o->data_param->rand_skip = v->rand_skip;
        } else if (images) {
            V1SUB(image_data_param, caffe__image_data_parameter__descriptor);
            o->image_data_param->has_rand_skip = 1;
            o->image_data_param->rand_skip = v->rand_skip;
        } else {
            dropped(c, lname, "rand_skip", type);
        }
    }
    if (v->has_shuffle_images) {
        if (images) {
            V1SUB(image_data_param, caffe__image_data_parameter__descriptor);
            o->image_data_param->has_shuffle = 1;
            o->image_data_param->shuffle = v->shuffle_images;
        } else {
            dropped(c, lname, "shuffle_images", type);
        }
    }
    if (v->has_new_height) {
        if (images) {
            V1SUB(image_data_param, caffe__image_data_parameter__descriptor);
            o->image_data_param->has_new_height = 1;
            o->image_data_param->new_height = (uint32_t)v->new_height;
        } else {
            dropped(c, lname, "new_height", type);
        }
    }
    if (v->has_new_width) {
        if (images) {
            V1SUB(image_data_param, caffe__image_data_parameter__descriptor);
            o->image_data_param->has_new_width = 1;
            o->image_data_param->new_width = (uint32_t)v->new_width;
        } else {
            dropped(c, lname, "new_width", type);
        }
    }
    if (v->has_concat_dim) {
        if (strcmp(type, "concat") == 0) {
            V1SUB(concat_param, caffe__concat_parameter__descriptor);
            o->concat_param->has_concat_dim = 1;
            o->concat_param->concat_dim = v->concat_dim;
        } else {
            dropped(c, lname, "concat_dim", type);
        }
    }
    if (v->has_det_fg_threshold) {
        if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            o->window_data_param->has_fg_threshold = 1;
            o->window_data_param->fg_threshold = v->det_fg_threshold;
        } else {
            dropped(c, lname, "det_fg_threshold", type);
        }
    }
    if (v->has_det_bg_threshold) {
        if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            o->window_data_param->has_bg_threshold = 1;
            o->window_data_param->bg_threshold = v->det_bg_threshold;
        } else {
            dropped(c, lname, "det_bg_threshold", type);
        }
    }
    if (v->has_det_fg_fraction) {
        if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            o->window_data_param->has_fg_fraction = 1;
            o->window_data_param->fg_fraction = v->det_fg_fraction;
        } else {
            dropped(c, lname, "det_fg_fraction", type);
        }
    }
    if (v->has_det_context_pad) {
        if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            o->window_data_param->has_context_pad = 1;
            o->window_data_param->context_pad = v->det_context_pad;
        } else {
            dropped(c, lname, "det_context_pad", type);
        }
    }
    if (str_has(v->det_crop_mode, caffe__v0_layer_parameter__det_crop_mode__default_value)) {
        if (window) {
            V1SUB(window_data_param, caffe__window_data_parameter__descriptor);
            str_replace(&o->window_data_param->crop_mode, v->det_crop_mode,
                        caffe__window_data_parameter__crop_mode__default_value);
            v->det_crop_mode = NULL;
        } else {
            dropped(c, lname, "det_crop_mode", type);
        }
    }
    if (v->hdf5_output_param) {
        if (strcmp(type, "hdf5_output") == 0) {
            msg_free(o->hdf5_output_param);
            o->hdf5_output_param = v->hdf5_output_param, v->hdf5_output_param = NULL;
        } else {
            dropped(c, lname, "hdf5_output_param", type);
        }
    }
    return CREMA_OK;
}

/* Keeps only what Caffe's UpgradeV0Net copies back after clearing the net
 * (name, layers, input, input_dim, force_backward) and frees the rest. */
static int net_keep_only_v0_fields(Caffe__NetParameter *net, const char *file)
{
    Caffe__NetParameter *old = malloc(sizeof *old);
    if (!old)
        return nomem(file);
    *old = *net;
    caffe__net_parameter__init(net);
    net->name = old->name, old->name = NULL;
    net->layers = old->layers, net->n_layers = old->n_layers;
    old->layers = NULL, old->n_layers = 0;
    net->input = old->input, net->n_input = old->n_input;
    old->input = NULL, old->n_input = 0;
    net->input_dim = old->input_dim, net->n_input_dim = old->n_input_dim;
    old->input_dim = NULL, old->n_input_dim = 0;
    net->has_force_backward = old->has_force_backward;
    net->force_backward = old->force_backward;
    msg_free(old);
    return CREMA_OK;
}

int upgrade_net_v0(Caffe__NetParameter *net, const char *filename, struct upgrade_notes *notes)
{
    struct ctx c = { filename, notes };
    int rc = v0_fold_padding(net, &c);
    if (rc)
        return rc;
    for (size_t i = 0; i < net->n_layers; i++) {
        Caffe__V1LayerParameter *o = msg_new(&caffe__v1_layer_parameter__descriptor);
        if (!o)
            return nomem(filename);
        Caffe__V1LayerParameter *l = net->layers[i];
        rc = v0_layer(&c, l, o);
        /* the layer slot always holds one whole message, even on error */
        net->layers[i] = o;
        msg_free(l);
        if (rc)
            return rc;
    }
    return net_keep_only_v0_fields(net, filename);
}

/* ---- data-layer transform fields ---- */

static int move_transform(Caffe__V1LayerParameter *l, protobuf_c_boolean *has_scale, float *scale, char **mean_file,
                          protobuf_c_boolean *has_crop, uint32_t *crop, protobuf_c_boolean *has_mirror,
                          protobuf_c_boolean *mirror)
{
    Caffe__TransformationParameter *t = SUB(l, transform_param, caffe__transformation_parameter__descriptor);
    if (!t)
        return -1;
    if (*has_scale) {
        t->has_scale = 1, t->scale = *scale;
        *has_scale = 0, *scale = 1;
    }
    if (*mean_file) {
        str_replace(&t->mean_file, *mean_file, NULL);
        *mean_file = NULL;
    }
    if (*has_crop) {
        t->has_crop_size = 1, t->crop_size = *crop;
        *has_crop = 0, *crop = 0;
    }
    if (*has_mirror) {
        t->has_mirror = 1, t->mirror = *mirror;
        *has_mirror = 0, *mirror = 0;
    }
    return 0;
}

int upgrade_net_data_transform(Caffe__NetParameter *net, const char *filename)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        Caffe__V1LayerParameter *l = net->layers[i];
        int bad = 0;
        /* Caffe touches (and so creates) both sub-messages of every layer of
         * these types, whether or not it has fields to move. */
        if (l->type == CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DATA) {
            Caffe__DataParameter *p = SUB(l, data_param, caffe__data_parameter__descriptor);
            bad = !p || move_transform(l, &p->has_scale, &p->scale, &p->mean_file, &p->has_crop_size,
                                       &p->crop_size, &p->has_mirror, &p->mirror);
        } else if (l->type == CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__IMAGE_DATA) {
            Caffe__ImageDataParameter *p = SUB(l, image_data_param, caffe__image_data_parameter__descriptor);
            bad = !p || move_transform(l, &p->has_scale, &p->scale, &p->mean_file, &p->has_crop_size,
                                       &p->crop_size, &p->has_mirror, &p->mirror);
        } else if (l->type == CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__WINDOW_DATA) {
            Caffe__WindowDataParameter *p = SUB(l, window_data_param, caffe__window_data_parameter__descriptor);
            bad = !p || move_transform(l, &p->has_scale, &p->scale, &p->mean_file, &p->has_crop_size,
                                       &p->crop_size, &p->has_mirror, &p->mirror);
        }
        if (bad)
            return nomem(filename);
    }
    return CREMA_OK;
}

/* ---- V1 -> V2 ---- */

const char *upgrade_v1_layer_type_name(int t)
{
    switch (t) {
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__NONE: return "";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__ABSVAL: return "AbsVal";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__ACCURACY: return "Accuracy";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__ARGMAX: return "ArgMax";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__BNLL: return "BNLL";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONCAT: return "Concat";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONTRASTIVE_LOSS: return "ContrastiveLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONVOLUTION: return "Convolution";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DECONVOLUTION: return "Deconvolution";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DATA: return "Data";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DROPOUT: return "Dropout";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__DUMMY_DATA: return "DummyData";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__EUCLIDEAN_LOSS: return "EuclideanLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__ELTWISE: return "Eltwise";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__EXP: return "Exp";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__FLATTEN: return "Flatten";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__HDF5_DATA: return "HDF5Data";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__HDF5_OUTPUT: return "HDF5Output";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__HINGE_LOSS: return "HingeLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__IM2COL: return "Im2col";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__IMAGE_DATA: return "ImageData";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__INFOGAIN_LOSS: return "InfogainLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__INNER_PRODUCT: return "InnerProduct";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__LRN: return "LRN";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__MEMORY_DATA: return "MemoryData";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__MULTINOMIAL_LOGISTIC_LOSS: return "MultinomialLogisticLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__MVN: return "MVN";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__POOLING: return "Pooling";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__POWER: return "Power";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__RELU: return "ReLU";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SIGMOID: return "Sigmoid";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SIGMOID_CROSS_ENTROPY_LOSS: return "SigmoidCrossEntropyLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SILENCE: return "Silence";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SOFTMAX: return "Softmax";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SOFTMAX_LOSS: return "SoftmaxWithLoss";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SPLIT: return "Split";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SLICE: return "Slice";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__TANH: return "TanH";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__WINDOW_DATA: return "WindowData";
    case CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__THRESHOLD: return "Threshold";
    }
    return NULL;
}

/* Hands a sub-message pointer from the V1 layer to the V2 one. */
#define MOVE(field)                                                                                          \
    do {                                                                                                     \
        o->field = l->field;                                                                                 \
        l->field = NULL;                                                                                     \
    } while (0)
#define MOVE_REPEATED(field)                                                                                 \
    do {                                                                                                     \
        o->field = l->field, o->n_##field = l->n_##field;                                                    \
        l->field = NULL, l->n_##field = 0;                                                                   \
    } while (0)

/* Caffe's UpgradeV1LayerParameter: o (fresh) receives l's contents. */
static int v1_layer(struct ctx *c, size_t idx, Caffe__V1LayerParameter *l, Caffe__LayerParameter *o)
{
    const char *lname = l->name ? l->name : "";
    if (l->has_type) {
        const char *t = upgrade_v1_layer_type_name(l->type);
        if (!t)
            return err_set(CREMA_ERR_INVALID, "%s: layers %zu (\"%s\"): unknown V1 layer type %d", fname(c->file), idx,
                           lname, (int)l->type);
        if (!(o->type = strdup(t)))
            return nomem(c->file);
    }
    size_t np = l->n_param;
    if (l->n_blob_share_mode > np)
        np = l->n_blob_share_mode;
    if (l->n_blobs_lr > np)
        np = l->n_blobs_lr;
    if (l->n_weight_decay > np)
        np = l->n_weight_decay;
    for (size_t i = 0; i < l->n_blob_share_mode; i++)
        if (l->blob_share_mode[i] != CAFFE__V1_LAYER_PARAMETER__DIM_CHECK_MODE__STRICT &&
            l->blob_share_mode[i] != CAFFE__V1_LAYER_PARAMETER__DIM_CHECK_MODE__PERMISSIVE)
            return err_set(CREMA_ERR_INVALID, "%s: layers %zu (\"%s\"): unknown blob_share_mode %d", fname(c->file),
                           idx, lname, (int)l->blob_share_mode[i]);
    if (np) {
        o->param = calloc(np, sizeof *o->param);
        if (!o->param)
            return nomem(c->file);
        for (size_t i = 0; i < np; i++) {
            Caffe__ParamSpec *ps = msg_new(&caffe__param_spec__descriptor);
            if (!ps)
                return nomem(c->file);
            o->param[o->n_param++] = ps;
            if (i < l->n_param) {
                ps->name = l->param[i];
                l->param[i] = NULL;
            }
            if (i < l->n_blob_share_mode) {
                ps->has_share_mode = 1;
                ps->share_mode = l->blob_share_mode[i] == CAFFE__V1_LAYER_PARAMETER__DIM_CHECK_MODE__STRICT
                                     ? CAFFE__PARAM_SPEC__DIM_CHECK_MODE__STRICT
                                     : CAFFE__PARAM_SPEC__DIM_CHECK_MODE__PERMISSIVE;
            }
            if (i < l->n_blobs_lr) {
                ps->has_lr_mult = 1;
                ps->lr_mult = l->blobs_lr[i];
            }
            if (i < l->n_weight_decay) {
                ps->has_decay_mult = 1;
                ps->decay_mult = l->weight_decay[i];
            }
        }
    }
    MOVE_REPEATED(bottom);
    MOVE_REPEATED(top);
    MOVE(name);
    MOVE_REPEATED(include);
    MOVE_REPEATED(exclude);
    MOVE_REPEATED(blobs);
    MOVE_REPEATED(loss_weight);
    MOVE(accuracy_param);
    MOVE(argmax_param);
    MOVE(concat_param);
    MOVE(contrastive_loss_param);
    MOVE(convolution_param);
    MOVE(data_param);
    MOVE(dropout_param);
    MOVE(dummy_data_param);
    MOVE(eltwise_param);
    MOVE(exp_param);
    MOVE(hdf5_data_param);
    MOVE(hdf5_output_param);
    MOVE(hinge_loss_param);
    MOVE(image_data_param);
    MOVE(infogain_loss_param);
    MOVE(inner_product_param);
    MOVE(lrn_param);
    MOVE(memory_data_param);
    MOVE(mvn_param);
    MOVE(pooling_param);
    MOVE(power_param);
    MOVE(relu_param);
    MOVE(sigmoid_param);
    MOVE(softmax_param);
    MOVE(slice_param);
    MOVE(tanh_param);
    MOVE(threshold_param);
    MOVE(window_data_param);
    MOVE(transform_param);
    MOVE(loss_param);
    if (l->layer)
        note(c, "%s: layers %zu (\"%s\"): holds a V0 layer, which a V1 -> V2 upgrade ignores", fname(c->file), idx,
             o->name ? o->name : "");
    return CREMA_OK;
}

int upgrade_net_v1(Caffe__NetParameter *net, const char *filename, struct upgrade_notes *notes)
{
    struct ctx c = { filename, notes };
    if (net->n_layer > 0 && net->n_layers > 0)
        return err_set(CREMA_ERR_INVALID,
                       "%s: the net has both `layer` and `layers` entries; the current format uses only "
                       "`layer { type: \"Name\" }`, so convert the `layers { type: NAME }` entries by hand",
                       fname(filename));
    Caffe__LayerParameter **out = calloc(net->n_layers ? net->n_layers : 1, sizeof *out);
    if (!out)
        return nomem(filename);
    int rc = CREMA_OK;
    size_t n = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        Caffe__LayerParameter *o = msg_new(&caffe__layer_parameter__descriptor);
        if (!o) {
            rc = nomem(filename);
            break;
        }
        out[n++] = o;
        rc = v1_layer(&c, i, net->layers[i], o);
        if (rc)
            break;
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            msg_free(out[i]);
        free(out);
        return rc;
    }
    for (size_t i = 0; i < net->n_layers; i++)
        msg_free(net->layers[i]);
    free(net->layers);
    net->layers = NULL;
    net->n_layers = 0;
    free(net->layer);
    net->layer = out;
    net->n_layer = n;
    return CREMA_OK;
}

/* ---- input fields -> Input layer ---- */

int upgrade_net_input(Caffe__NetParameter *net, const char *filename)
{
    bool has_shape = net->n_input_shape > 0, has_dim = net->n_input_dim > 0;
    if (has_shape && net->n_input_shape < net->n_input)
        return err_set(CREMA_ERR_INVALID, "%s: %zu inputs but only %zu input_shape entries", fname(filename),
                       net->n_input, net->n_input_shape);
    if (!has_shape && has_dim && net->n_input_dim < 4 * net->n_input)
        return err_set(CREMA_ERR_INVALID, "%s: %zu inputs need %zu input_dim values (4 each), the net gives %zu",
                       fname(filename), net->n_input, 4 * net->n_input, net->n_input_dim);
    if (has_shape || has_dim) {
        Caffe__LayerParameter *l = msg_new(&caffe__layer_parameter__descriptor);
        Caffe__LayerParameter **layers = realloc(net->layer, (net->n_layer + 1) * sizeof *layers);
        if (layers)
            net->layer = layers;
        if (!l || !layers) {
            msg_free(l);
            return nomem(filename);
        }
        /* The Input layer goes first, so every later layer finds its bottoms. */
        memmove(layers + 1, layers, net->n_layer * sizeof *layers);
        layers[0] = l;
        net->n_layer++;
        l->name = strdup("input");
        l->type = strdup("Input");
        l->input_param = msg_new(&caffe__input_parameter__descriptor);
        size_t n = net->n_input;
        l->top = calloc(n ? n : 1, sizeof *l->top);
        if (!l->name || !l->type || !l->input_param || !l->top)
            return nomem(filename);
        Caffe__InputParameter *ip = l->input_param;
        ip->shape = calloc(n ? n : 1, sizeof *ip->shape);
        if (!ip->shape)
            return nomem(filename);
        for (size_t i = 0; i < n; i++) {
            l->top[l->n_top++] = net->input[i];
            net->input[i] = NULL;
            Caffe__BlobShape *s;
            if (has_shape) {
                s = net->input_shape[i];
                net->input_shape[i] = NULL;
            } else {
                s = msg_new(&caffe__blob_shape__descriptor);
                if (!s)
                    return nomem(filename);
                s->dim = malloc(4 * sizeof *s->dim);
                if (!s->dim) {
                    msg_free(s);
                    return nomem(filename);
                }
                for (size_t j = 0; j < 4; j++)
                    s->dim[j] = net->input_dim[4 * i + j];
                s->n_dim = 4;
            }
            ip->shape[ip->n_shape++] = s;
        }
    }
    for (size_t i = 0; i < net->n_input; i++)
        free(net->input[i]);
    free(net->input);
    net->input = NULL;
    net->n_input = 0;
    for (size_t i = 0; i < net->n_input_shape; i++)
        msg_free(net->input_shape[i]);
    free(net->input_shape);
    net->input_shape = NULL;
    net->n_input_shape = 0;
    free(net->input_dim);
    net->input_dim = NULL;
    net->n_input_dim = 0;
    return CREMA_OK;
}

/* ---- BatchNorm ---- */

int upgrade_net_batch_norm(Caffe__NetParameter *net, bool *changed)
{
    bool ch = false;
    for (size_t i = 0; i < net->n_layer; i++) {
        Caffe__LayerParameter *l = net->layer[i];
        if (!is_old_batch_norm(l))
            continue;
        for (size_t j = 0; j < l->n_param; j++) {
            Caffe__ParamSpec *p = l->param[j];
            if (!p->has_lr_mult || p->lr_mult != 0.f || !p->has_decay_mult || p->decay_mult != 0.f)
                ch = true;
            p->has_lr_mult = 1, p->lr_mult = 0.f;
            p->has_decay_mult = 1, p->decay_mult = 0.f;
        }
    }
    if (changed)
        *changed = ch;
    return CREMA_OK;
}

/* ---- all together ---- */

int upgrade_net_noted(Caffe__NetParameter *net, const char *filename, bool *changed, struct upgrade_notes *notes)
{
    bool ch = false;
    int rc = CREMA_OK;
    if (upgrade_net_needs_v0(net)) {
        rc = upgrade_net_v0(net, filename, notes);
        ch = true;
    }
    if (!rc && upgrade_net_needs_data_transform(net)) {
        rc = upgrade_net_data_transform(net, filename);
        ch = true;
    }
    if (!rc && upgrade_net_needs_v1(net)) {
        rc = upgrade_net_v1(net, filename, notes);
        ch = true;
    }
    if (!rc && upgrade_net_needs_input(net)) {
        rc = upgrade_net_input(net, filename);
        ch = true;
    }
    if (!rc && upgrade_net_needs_batch_norm(net)) {
        bool bn = false;
        rc = upgrade_net_batch_norm(net, &bn);
        ch = ch || bn;
    }
    if (changed)
        *changed = ch;
    return rc;
}

int upgrade_net(Caffe__NetParameter *net, const char *filename, bool *changed)
{
    return upgrade_net_noted(net, filename, changed, NULL);
}

/* ---- solver ---- */

const char *upgrade_solver_type_name(int t)
{
    switch (t) {
    case CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__SGD: return "SGD";
    case CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__NESTEROV: return "Nesterov";
    case CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__ADAGRAD: return "AdaGrad";
    case CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__RMSPROP: return "RMSProp";
    case CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__ADADELTA: return "AdaDelta";
    case CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__ADAM: return "Adam";
    }
    return NULL;
}

bool upgrade_solver_needed(const Caffe__SolverParameter *s) { return s->has_solver_type; }

int upgrade_solver(Caffe__SolverParameter *s, const char *filename, bool *changed)
{
    if (changed)
        *changed = false;
    if (!s->has_solver_type)
        return CREMA_OK;
    if (str_has(s->type, caffe__solver_parameter__type__default_value))
        return err_set(CREMA_ERR_INVALID,
                       "%s: solver_type (the old enum) and type (its string replacement) are both "
                       "given; keep only type",
                       fname(filename));
    const char *t = upgrade_solver_type_name(s->solver_type);
    if (!t)
        return err_set(CREMA_ERR_INVALID, "%s: solver_type: unknown value %d", fname(filename), (int)s->solver_type);
    char *dup = strdup(t);
    if (!dup)
        return nomem(filename);
    str_replace(&s->type, dup, caffe__solver_parameter__type__default_value);
    s->has_solver_type = 0;
    s->solver_type = CAFFE__SOLVER_PARAMETER__SOLVER_TYPE__SGD;
    if (changed)
        *changed = true;
    return CREMA_OK;
}

/* ---- on load ---- */

/* Which notices were printed: a file read several times in one process
 * (a solver's net for its train and test nets, features counting the
 * records first) is noted once. This module's only state, kept as hashes of
 * the notices' text under a lock. */
static pthread_mutex_t noticed_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t noticed[256];
static int n_noticed;

static bool notice_is_new(const char *text)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *c = text; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    pthread_mutex_lock(&noticed_mu);
    bool seen = false;
    for (int i = 0; i < n_noticed && !seen; i++)
        seen = noticed[i] == h;
    if (!seen) {
        /* past 256 files, the oldest are forgotten (and noted again) */
        memmove(noticed + 1, noticed, (size_t)(n_noticed < 256 ? n_noticed : 255) * sizeof *noticed);
        noticed[0] = h;
        if (n_noticed < 256)
            n_noticed++;
    }
    pthread_mutex_unlock(&noticed_mu);
    return !seen;
}

static void notice_once(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notice_once(const char *fmt, ...)
{
    char text[6144];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (notice_is_new(text))
        err_notice("%s", text);
}

int upgrade_net_on_load(Caffe__NetParameter *net, const char *what)
{
    if (!upgrade_net_needed(net))
        return CREMA_OK;
    /* upgrade_net_noted's steps one by one, to say which were taken */
    const char *old[5];
    int n_old = 0, rc = CREMA_OK;
    struct upgrade_notes notes = { 0 };
    bool v0 = upgrade_net_needs_v0(net);
    if (v0) {
        old[n_old++] = "the V0 layer format (layers { layer { ... } })";
        rc = upgrade_net_v0(net, what, &notes);
    }
    if (!rc && upgrade_net_needs_data_transform(net)) {
        old[n_old++] = "data-layer transformation fields outside transform_param";
        rc = upgrade_net_data_transform(net, what);
    }
    if (!rc && upgrade_net_needs_v1(net)) {
        if (!v0) /* a V0 net goes through V1: saying V0 is enough */
            old[n_old++] = "the V1 'layers' format (V1LayerParameter)";
        rc = upgrade_net_v1(net, what, &notes);
    }
    if (!rc && upgrade_net_needs_input(net)) {
        old[n_old++] = "input fields (input/input_dim/input_shape) instead of an Input layer";
        rc = upgrade_net_input(net, what);
    }
    if (!rc && upgrade_net_needs_batch_norm(net)) {
        bool bn = false;
        rc = upgrade_net_batch_norm(net, &bn);
        if (bn)
            old[n_old++] = "BatchNorm param specs that learn (Caffe fixes them at lr_mult 0)";
    }
    if (rc || n_old == 0)
        return rc;
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < n_old && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                 i == 0 ? "" : i == n_old - 1 ? " and " : ", ", old[i]);
    if (notes.count)
        notice_once("%s uses %s; upgraded it on load as Caffe does, past %d problem(s) Caffe also goes past:\n%s"
                   "(crema upgrade-net IN OUT writes the upgraded file once)",
                   what, list, notes.count, notes.text);
    else
        notice_once("%s uses %s; upgraded it on load as Caffe does (crema upgrade-net IN OUT writes the upgraded "
                   "file once)", what, list);
    return CREMA_OK;
}

int upgrade_read_net(const char *path, bool binary, Caffe__NetParameter **out)
{
    *out = NULL;
    const char *p = io_strip_file_uri(path);
    Caffe__NetParameter *net = NULL;
    int rc = binary ? proto_read_binary(p, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&net)
                    : proto_read_text(p, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&net);
    if (!rc)
        rc = upgrade_net_on_load(net, p);
    if (rc) {
        proto_free(net ? &net->base : NULL);
        return rc;
    }
    *out = net;
    return CREMA_OK;
}

int upgrade_read_solver(const char *path, Caffe__SolverParameter **out)
{
    *out = NULL;
    const char *p = io_strip_file_uri(path);
    Caffe__SolverParameter *s = NULL;
    int rc = proto_read_text(p, &caffe__solver_parameter__descriptor, (ProtobufCMessage **)&s);
    if (rc)
        return rc;
    if (upgrade_solver_needed(s)) {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(&caffe__solver_parameter__solver_type__descriptor, s->solver_type);
        char was[64];
        snprintf(was, sizeof was, "%s", v ? v->name : "?");
        bool changed = false;
        rc = upgrade_solver(s, p, &changed);
        if (!rc && changed)
            notice_once("%s uses the old solver_type enum (solver_type: %s); upgraded it on load to type: \"%s\" as "
                       "Caffe does (crema upgrade-solver IN OUT writes the upgraded file once)", p, was, s->type);
    }
    /* nets given inline are upgraded as the files are */
    static const char *const inline_names[] = { "net_param", "train_net_param" };
    Caffe__NetParameter *inl[2] = { s->net_param, s->train_net_param };
    for (int i = 0; !rc && i < 2; i++)
        if (inl[i]) {
            char what[4200];
            snprintf(what, sizeof what, "%s (%s)", p, inline_names[i]);
            rc = upgrade_net_on_load(inl[i], what);
        }
    for (size_t i = 0; !rc && i < s->n_test_net_param; i++) {
        char what[4200];
        snprintf(what, sizeof what, "%s (test_net_param #%zu)", p, i);
        rc = upgrade_net_on_load(s->test_net_param[i], what);
    }
    if (rc) {
        proto_free(&s->base);
        return rc;
    }
    *out = s;
    return CREMA_OK;
}
