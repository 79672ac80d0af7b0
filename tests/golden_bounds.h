/* What a comparison with Caffe's golden values must allow and no more: the
 * magnitude of the terms each value sums, and max-pooling ties. */
#ifndef CREMA_TESTS_GOLDEN_BOUNDS_H
#define CREMA_TESTS_GOLDEN_BOUNDS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

/* Magnitudes. A float32 sum of products y = sum_k a_k b_k, taken in any
 * order, is off from the exact sum by at most about K * eps * sum_k |a_k b_k|
 * (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), and errors
 * the factors carry reach y weighted the same way. So the scale of the error
 * is sum_k |a_k b_k|, not |y|: where the terms cancel (the bias gradient of
 * a Convolution that feeds a TRAIN BatchNorm is exactly 0 in exact
 * arithmetic), |y| is rounding noise and says nothing about the error.
 * A `struct mags` keeps, for every buffer that a Convolution, Deconvolution
 * or InnerProduct (or a Split summing their gradients) wrote last, that sum
 * per element, computed in double from the values the layer read (the same
 * operation on absolute values). Any other layer that writes the buffer
 * drops it. */
struct mags;

struct mags *mags_new(void);
void mags_free(struct mags *ms);
/* Records (or drops) the magnitudes of what layer nl wrote in its forward
 * (backward) pass; call right after it. Non-zero: out of memory, or shapes
 * the layer's parameters do not explain; msg says which. */
int mags_after_forward(struct mags *ms, struct net_layer *nl, char *msg, size_t msz);
int mags_after_backward(struct mags *ms, struct net_layer *nl, char *msg, size_t msz);
/* The largest recorded magnitude of buf's values; 0 when none is recorded. */
double mags_max(const struct mags *ms, const struct tensor_buf *buf);

/* Max-pooling ties. Caffe gives a window's gradient to its first maximum in
 * scan order (pooling_layer.cpp: strict >, rows then columns). Where two
 * values of a window are equal within the error allowed upstream, rounding
 * decides which is first, and an engine whose values are as good as Caffe's
 * may pick the other one: a "reroute". */
struct pool_reroute {
    size_t top;  /* index into the top */
    size_t from; /* the bottom index crema's values make the first maximum */
    size_t to;   /* the bottom index Caffe's values make the first maximum */
};

struct pool_ties {
    size_t n, cap;
    struct pool_reroute *r;
    double max_gap; /* largest |Caffe's value at from - at to| among them */
};

/* For a MAX Pooling layer after its forward: compares the first maximum of
 * every window in crema's bottom (what the layer read) with the first
 * maximum in `want` (Caffe's bottom values). A window where they differ is
 * a tie when Caffe's two values, and crema's, differ by at most `bound`
 * (the error the comparison of that bottom allows); it is added to *t.
 * Any other difference fails, with msg naming the window. */
int pool_find_ties(const struct net_layer *nl, const float *want, double bound, struct pool_ties *t, char *msg,
                   size_t msz);
/* After that layer's backward: moves each rerouted window's gradient from
 * crema's choice to Caffe's, in the bottom diff, so that what lies below
 * is compared with Caffe's numbers as they are. The move assumes crema gave
 * the gradient to its own first maximum; if it gave it anywhere else, the
 * comparison of the bottom diff fails. */
int pool_move_ties(struct net_layer *nl, const struct pool_ties *t);
/* The mask top Caffe would have written had it decided the ties as crema
 * did: `want` with each rerouted window's index replaced (n values). */
void pool_mask_with_ties(const struct net_layer *nl, const struct pool_ties *t, float *mask, size_t n);
void pool_ties_free(struct pool_ties *t);

/* Whether nl is a Pooling layer with method MAX. */
bool pool_is_max(const struct net_layer *nl);

#endif
