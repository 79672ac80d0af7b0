/* Caffe's DataTransformer: scale, mean (file or values), crop and mirror,
 * in Caffe's order and float arithmetic: out = (pixel - mean) * scale. */
#ifndef CREMA_DATA_TRANSFORMER_H
#define CREMA_DATA_TRANSFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include "caffe.pb-c.h"
#include "data/image.h"
#include "util/rng.h"

struct transformer {
    float scale;
    bool mirror;
    int crop;
    bool train; /* random crop offsets and mirroring; centre crop otherwise */
    enum image_color color;
    /* mean_file: a C x H x W mean the size of the (uncropped) input */
    float *mean;
    int mean_c, mean_h, mean_w;
    /* mean_value: one for all channels, or one per channel */
    float *mean_values;
    int n_mean_values;
};

/* Reads the parameters (p may be NULL: identity) and loads mean_file,
 * relative to the working directory as Caffe does. */
int transformer_init(struct transformer *t, const Caffe__TransformationParameter *p, Caffe__Phase phase);
void transformer_free(struct transformer *t);

/* The output shape for a c x h x w input (crop applied); checks the input
 * against crop size, mean file and mean values. */
int transformer_check(const struct transformer *t, int c, int h, int w, int *oh, int *ow);

/* Transforms one c x h x w image given as uint8 (u8) or float (f; u8 NULL)
 * into dst (c x oh x ow). rng draws the TRAIN mirror and crop offsets
 * (mirror first, then row offset, then column offset, as Caffe). */
int transformer_apply(const struct transformer *t, struct rng *rng, const uint8_t *u8, const float *f, int c,
                      int h, int w, float *dst);

#endif
