/* The Python layer (type "Python"): its four verbs are callbacks that a
 * front end registers (crema_layer_callbacks in crema.h), on host arrays. */
#ifndef CREMA_LAYERS_PYTHON_LAYER_H
#define CREMA_LAYERS_PYTHON_LAYER_H

#include <stdbool.h>

#include "crema.h"
#include "layers/layer.h"

/* What a callback gets as its crema_layer: the layer, the net's bottom and
 * top arrays, and the provider as it was when the layer was made. */
struct crema_layer {
    struct layer *l;
    struct tensor **bottom, **top;
    crema_layer_callbacks cb;
    void *user, *state;
    unsigned generation; /* the provider's at create */
    bool created;        /* create succeeded: destroy owes it a call */
    bool in_setup;       /* parameters may be added */
};

/* The provider of Python layers (callbacks NULL: none). The registration is
 * this module's state, behind a lock. */
int python_layer_set_provider(const crema_layer_callbacks *callbacks, void *user);
bool python_layer_has_provider(void);
/* The crema_layer of a Python layer; NULL for other kinds. */
struct crema_layer *python_layer_handle(const struct layer *l);
/* A new zero-filled learnable blob (during setup). */
int python_layer_add_param(struct crema_layer *pl, int num_axes, const int *shape);

#endif
