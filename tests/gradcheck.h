/* Finite-difference gradient checks for one layer, as Caffe's
 * GradientChecker does: objective E = sum over tops of top . w (w fixed
 * random), analytic gradients from backward against central differences. */
#ifndef CREMA_TESTS_GRADCHECK_H
#define CREMA_TESTS_GRADCHECK_H

#include <stdbool.h>

#include "layers/layer.h"

struct gradcheck_opts {
    float step;          /* default 1e-2 */
    float threshold;     /* default 1e-3, relative to max(|a|,|n|,1) */
    /* bottoms not to check (labels, indices): skip[i] true */
    const bool *skip_bottom;
    bool skip_params;
    /* only check top top_only (>= 0), else all tops */
    int top_only;
    unsigned seed;
};

/* Builds the layer over the given bottoms (tops are made here), and checks
 * d E / d bottom and d E / d params. Returns 0 when every element agrees;
 * reports mismatches through check_fail. */
int gradcheck_layer(const Caffe__LayerParameter *param, Caffe__Phase phase, struct tensor **bottom,
                    int n_bottom, int n_top, const struct gradcheck_opts *opts);

/* Fill a tensor with uniform values in [lo, hi) from a fixed seed. */
void gradcheck_fill(struct tensor *t, float lo, float hi, unsigned seed);

#endif
