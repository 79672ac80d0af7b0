/* Crop: cut bottom 0 down to the shape of bottom 1 on the axes from `axis`
 * on, starting at the given offsets; backward puts the diff back in place.
 * On any backend (be->vision's window copies). */
#include "layers/vision.h"

#include <stdlib.h>

struct crop {
    int start_axis;
    int offsets[TENSOR_MAX_AXES];
};

static int crop_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__CropParameter def = CAFFE__CROP_PARAMETER__INIT;
    const Caffe__CropParameter *cp = l->param->crop_param ? l->param->crop_param : &def;
    struct crop *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    int n = bottom[0]->num_axes;
    s->start_axis = tensor_canonical_axis(bottom[0], cp->axis);
    if (s->start_axis < 0)
        return err_set(CREMA_ERR_INVALID, "crop_param.axis %d is out of range for a %d-axis input",
                       cp->axis, n);
    if (cp->n_offset > 1 && s->start_axis + (int)cp->n_offset != n)
        return err_set(CREMA_ERR_INVALID,
                       "crop_param.offset: %zu values given, but axis %d of a %d-axis input "
                       "leaves %d axes to crop (give one value or one per axis)",
                       cp->n_offset, s->start_axis, n, n - s->start_axis);
    return CREMA_OK;
}

static int crop_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__CropParameter def = CAFFE__CROP_PARAMETER__INIT;
    const Caffe__CropParameter *cp = l->param->crop_param ? l->param->crop_param : &def;
    struct crop *s = l->priv;
    const struct tensor *a = bottom[0], *ref = bottom[1];
    if (a->num_axes != ref->num_axes)
        return err_set(CREMA_ERR_SHAPE, "the two inputs have %d and %d axes; they must agree",
                       a->num_axes, ref->num_axes);
    if (s->start_axis >= a->num_axes || (cp->n_offset > 1 && s->start_axis + (int)cp->n_offset != a->num_axes))
        return err_set(CREMA_ERR_SHAPE, "the input's number of axes changed to %d", a->num_axes);
    int shape[TENSOR_MAX_AXES];
    for (int i = 0; i < a->num_axes; i++) {
        int off = 0, size = a->shape[i];
        if (i >= s->start_axis) {
            size = ref->shape[i];
            if (cp->n_offset == 1)
                off = (int)cp->offset[0];
            else if (cp->n_offset > 1)
                off = (int)cp->offset[i - s->start_axis];
            if (off < 0 || (long)a->shape[i] - off < size)
                return err_set(CREMA_ERR_SHAPE,
                               "invalid crop in axis %d: offset %d + size %d exceeds the input "
                               "extent %d",
                               i, off, size, a->shape[i]);
        }
        shape[i] = size;
        s->offsets[i] = off;
    }
    return tensor_reshape(top[0], a->num_axes, shape);
}

static int crop_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const struct crop *s = l->priv;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    l->be->vision->crop_gather(l->be, bottom[0]->num_axes, bottom[0]->shape, top[0]->shape, s->offsets, x, y);
    return CREMA_OK;
}

static int crop_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                         struct tensor **bottom)
{
    const struct crop *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!dy || !dx)
        return CREMA_ERR_NOMEM;
    l->be->math->set(l->be, bottom[0]->count, 0.f, dx);
    l->be->vision->crop_scatter(l->be, bottom[0]->num_axes, bottom[0]->shape, top[0]->shape, s->offsets, dy, dx);
    return CREMA_OK;
}

static void crop_destroy(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct layer_kind crop_layer = {
    .type = "Crop",
    .min_bottoms = 2, .max_bottoms = 2,
    .min_tops = 1, .max_tops = 1,
    .setup = crop_setup,
    .reshape = crop_reshape,
    .forward = crop_forward,
    .backward = crop_backward,
    .forward_dev = crop_forward,
    .backward_dev = crop_backward,
    .runs_on = vision_runs_on,
    .destroy = crop_destroy,
};
