/* The net (Caffe's Net): layers over named tensors, built from a
 * NetParameter for a NetState; forward, backward, weights in and out. */
#ifndef CREMA_NET_NET_H
#define CREMA_NET_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "caffe.pb-c.h"
#include "layers/layer.h"
#include "core/tensor.h"
#include "util/rng.h"
#include "util/strmap.h"

/* One layer of the net and its wiring (indices are into net->blobs and
 * net->params). */
struct net_layer {
    struct layer *layer;
    int n_bottom, n_top;
    struct tensor **bottom, **top;
    int *bottom_id, *top_id;
    bool *bottom_need_backward; /* Caffe's bottom_need_backward_ = propagate_down */
    bool need_backward;         /* Caffe's layer_need_backward_ */
    int n_param;
    int *param_id; /* net param index of each layer blob */
};

/* A learnable parameter as the solver sees it (Caffe's learnable_params_):
 * shared parameters appear once, under their owner. */
struct net_learnable {
    struct tensor *tensor;
    float lr_mult, decay_mult;
    bool has_lr_mult, has_decay_mult;
};

struct net {
    char *name;
    Caffe__Phase phase;
    /* The filtered NetParameter with split layers inserted; it owns every
     * LayerParameter the layers point to. */
    Caffe__NetParameter *param;
    struct rng rng;

    int n_layers;
    struct net_layer *layers;
    /* Where the net computes (net_set_backend); the CPU backend unless set. */
    const struct backend *be;

    int n_blobs;
    struct tensor **blobs;
    char **blob_names;
    bool *blob_need_backward;
    float *blob_loss_weights;

    int n_inputs, *input_ids;   /* tops of Input layers */
    int n_outputs, *output_ids; /* blobs no layer consumes, sorted by name as Caffe's */

    /* Every layer blob (Caffe's params_), with its owner when shared. */
    int n_params;
    struct tensor **params;
    int *param_owner;       /* -1 or the net param index that owns it */
    int *param_layer;       /* layer index of param i */
    int *param_layer_index; /* blob index within that layer */
    int *param_learnable;   /* learnable index of param i (the owner's) */

    int n_learnable;
    struct net_learnable *learnable;

    /* Names to indices: named blobs (automatic tops are not named) and
     * layers (the first of several with one name). */
    struct strmap blob_index, layer_index;

    /* Called by net_backward_from_to after layer i's backward (or its skip),
     * when the diffs of the parameters only layers >= i use are final: the
     * solver starts summing gradients across ranks from here. NULL: none.
     * A non-zero return stops backward with that status. */
    int (*on_backward_layer)(struct net *net, int layer, void *ctx);
    void *on_backward_ctx;
};

/* Builds a net as Caffe's Net::Init does: filter layers by the state (NULL:
 * param->state), insert splits, set up every layer, decide who needs
 * backward, share parameters. seed starts the net's random generator
 * (fillers, dropout). Errors name the layer and the blob or field. */
int net_build(const Caffe__NetParameter *param, const Caffe__NetState *state, uint64_t seed,
              struct net **out);
void net_free(struct net *net);

/* Caffe's FilterNet rule test, exposed for tests. */
bool net_state_meets_rule(const Caffe__NetState *state, const Caffe__NetStateRule *rule);
/* Caffe's FilterNet, in place: drops (and frees) the layers of p that the
 * state's phase, level and stages exclude; a layer with both include and
 * exclude rules is an error naming it. */
int net_filter_layers(Caffe__NetParameter *p, const Caffe__NetState *state);

/* Runs layers start..end (inclusive) forward; *loss (may be NULL) gets the
 * sum over their tops of loss_weight * top, as Caffe's Layer::Forward. */
int net_forward_from_to(struct net *net, int start, int end, float *loss);
int net_forward(struct net *net, float *loss);
/* Runs layers start down to end (inclusive) backward, where needed. */
int net_backward_from_to(struct net *net, int start, int end);
int net_backward(struct net *net);
/* Re-runs every layer's reshape, after an input changed shape. */
int net_reshape(struct net *net);

/* Sets every learnable parameter diff to zero on the net's backend (the
 * solver's job, per step). */
int net_clear_param_diffs(struct net *net);

/* Makes the net compute on `be`: every layer whose kind has a device path
 * for it computes there, the others on the CPU, each of those named once
 * on log (may be NULL). Tensors move between host and device only when a
 * layer on the other side asks for them. */
int net_set_backend(struct net *net, const struct backend *be, FILE *log);

/* Lookups by name: index, or -1 when absent. */
int net_blob_index(const struct net *net, const char *name);
int net_layer_index(const struct net *net, const char *name);
struct tensor *net_blob(const struct net *net, const char *name);
struct layer *net_layer_by_name(const struct net *net, const char *name);

/* Caffe's CopyTrainedLayersFrom: loads the blobs of every layer of weights
 * whose name is a layer of this net (others are ignored); a count or shape
 * mismatch is an error naming the layer and both shapes. */
int net_copy_trained_layers(struct net *net, const Caffe__NetParameter *weights);
/* The same from a file: a binary .caffemodel (V0/V1 ones upgraded, with a
 * notice), or HDF5 when the name ends in ".h5" (Caffe's rule). Layers with
 * weights that the file does not name are listed in a notice; when none of
 * them got weights the load fails (CREMA_ERR_INVALID, naming what the file
 * holds) unless allow_unmatched. */
int net_load_weights(struct net *net, const char *path);
int net_load_weights_opt(struct net *net, const char *path, bool allow_unmatched);
/* The same with the format given: HDF5 when h5, whatever the name. */
int net_load_weights_as(struct net *net, const char *path, bool h5, bool allow_unmatched);
/* Caffe's ShareTrainedLayersWith: every layer of dst named as a layer of
 * from uses from's parameter data buffers (counts and shapes must match). */
int net_share_trained_layers(struct net *dst, const struct net *from);
/* Caffe's ToProto: every layer's parameter with its blobs (and diffs when
 * write_diff). Free with caffe__net_parameter__free_unpacked(p, NULL). */
int net_to_proto(struct net *net, bool write_diff, Caffe__NetParameter **out);

#endif
