/* The layer contract, as Caffe's: set up, reshape, forward, backward.
 * Every layer kind is one `struct layer_kind` listed in layer_table.c. */
#ifndef CREMA_LAYERS_LAYER_H
#define CREMA_LAYERS_LAYER_H

#include <stdbool.h>

#include "caffe.pb-c.h"
#include "core/backend.h"
#include "core/tensor.h"
#include "util/err.h"
#include "util/rng.h"

struct layer;
struct net;
struct data_source_ops;

struct layer_kind {
    const char *type; /* Caffe's type string: "Convolution" */
    /* Bottom and top counts Caffe checks: -1 means no limit. */
    int min_bottoms, max_bottoms;
    int min_tops, max_tops;
    bool equal_num_bottom_top;
    /* Caffe's AutoTopBlobs: the net creates missing anonymous tops up to min_tops. */
    bool auto_top_blobs;
    /* A loss layer: top 0 gets loss weight 1 when the prototxt gives none. */
    bool is_loss;
    /* Parameter blobs that are state, never learned (BatchNorm's statistics):
     * the net gives every blob without a ParamSpec lr_mult 0, as Caffe's
     * BatchNormLayer::LayerSetUp adds `param { lr_mult: 0 }` for them. */
    bool fixed_params;

    /* LayerSetUp: read parameters, create and fill learnable blobs (l->blobs)
     * unless the layer was given blobs already (l->n_blobs > 0 on entry). */
    int (*setup)(struct layer *l, struct tensor **bottom, struct tensor **top);
    /* Shape the tops (and internal buffers) from the bottoms. */
    int (*reshape)(struct layer *l, struct tensor **bottom, struct tensor **top);
    int (*forward)(struct layer *l, struct tensor **bottom, struct tensor **top);
    /* Bottom diffs are written (overwritten); parameter diffs are ADDED to, as
     * Caffe's are (the solver clears them). NULL: the layer has no backward
     * (ArgMax, Accuracy, Threshold, data layers). */
    int (*backward)(struct layer *l, struct tensor **top, const bool *propagate_down,
                    struct tensor **bottom);
    /* Device entry points: forward and backward when the layer computes on
     * a backend with memory of its own (l->be, a GPU), through that
     * backend's table and tensor_*_on(t, l->be) pointers. A kind written
     * once for every backend names the same functions here as above. NULL:
     * the kind has no device path; on a device its host functions run on
     * the host copies (the tensors move as needed) and the net says so. */
    int (*forward_dev)(struct layer *l, struct tensor **bottom, struct tensor **top);
    int (*backward_dev)(struct layer *l, struct tensor **top, const bool *propagate_down,
                        struct tensor **bottom);
    /* Whether backend `be` has the table the device entry points call
     * (e.g. be->neuron != NULL). NULL: they need only be->math. */
    bool (*runs_on)(const struct backend *be);
    /* Layers that hold layers of their own pass the backend on to them.
     * NULL: nothing to pass on. */
    void (*set_backend)(struct layer *l, const struct backend *be);
    /* Frees l->priv. May be NULL. */
    void (*destroy)(struct layer *l);
    /* Caffe's AllowForceBackward; NULL means true for every bottom. */
    bool (*allow_force_backward)(const struct layer *l, int bottom_index);
    /* Layers that read a source: sharding and reading positions
     * (layers/data_source.h). NULL for every other layer. */
    const struct data_source_ops *source;
};

struct layer {
    const struct layer_kind *kind;
    const Caffe__LayerParameter *param; /* owned by the net (or the test) */
    const char *name;
    Caffe__Phase phase;
    int n_bottom, n_top;
    /* Learnable parameters (Caffe's blobs_); may share buffers with another
     * layer's through ParamSpec names. Owned by the layer. */
    int n_blobs;
    struct tensor **blobs;
    bool *param_propagate_down; /* one per blob; true unless lr_mult is 0 */
    float *loss_weight;          /* one per top */
    struct rng *rng;             /* the net's generator: fillers, dropout */
    struct net *net;             /* the owner; NULL when a test builds a layer alone */
    /* Where the layer computes: the CPU backend (host copies), or its net's
     * device backend when the kind has device entry points for it. */
    const struct backend *be;
    void *priv;                  /* the kind's own state */
};

/* Looks a kind up by its type string; NULL if crema has no such layer. */
const struct layer_kind *layer_kind_find(const char *type);
/* Kind i of the table, in the table's order; NULL past the end. */
const struct layer_kind *layer_kind_at(int i);

/* Build a layer alone (for tests and for layers that contain nets): checks
 * the bottom/top counts, calls setup and reshape. */
int layer_create(const Caffe__LayerParameter *param, Caffe__Phase phase, struct rng *rng,
                 struct tensor **bottom, int n_bottom, struct tensor **top, int n_top,
                 struct layer **out);
void layer_free(struct layer *l);

/* A vector of at least n ones on l->be (Caffe's bias and sum multipliers):
 * *t is made on first use and refilled whenever it has to grow; the layer
 * frees it with tensor_free. NULL when memory runs out. */
const float *layer_ones(struct layer *l, struct tensor **t, size_t n);

/* The four pointers a layer computes with, on l->be (tensor_*_on). */
#define LDATA(t) tensor_data_on((t), l->be)
#define LDIFF(t) tensor_diff_on((t), l->be)
#define LCDATA(t) tensor_cdata_on((t), l->be)
#define LCDIFF(t) tensor_cdiff_on((t), l->be)

/* Runs the kind's forward (backward) for l->be: the device entry point on a
 * backend with memory of its own, else the host function. */
int layer_forward(struct layer *l, struct tensor **bottom, struct tensor **top);
int layer_backward(struct layer *l, struct tensor **top, const bool *propagate_down, struct tensor **bottom);
/* Whether the kind computes on `be` (always on the CPU). */
bool layer_kind_runs_on(const struct layer_kind *k, const struct backend *be);
/* Makes l compute on `be` where its kind can, else on the CPU; returns
 * whether it computes on `be`. */
bool layer_set_backend(struct layer *l, const struct backend *be);

/* Helpers for kinds: make n learnable blobs (l->blobs), each reshaped. */
int layer_alloc_blobs(struct layer *l, int n);
/* Checks the bottom and top counts against the kind's limits. */
int layer_check_counts(const struct layer *l);

/* Fill a tensor with a Caffe FillerParameter (constant, uniform, gaussian
 * with sparse, positive_unitball, xavier, msra, bilinear). */
int filler_fill(const Caffe__FillerParameter *fp, struct tensor *t, struct rng *rng);

#endif
