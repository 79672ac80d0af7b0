/* Layers that move data without arithmetic: Concat, Slice, Flatten, Reshape,
 * Tile, Filter, BatchReindex, Parameter and Silence (Caffe's semantics),
 * each written once for every backend (be->structure's block copies). */
#include "layers/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Both buffers of top become bottom's (Caffe's ShareData + ShareDiff),
 * wherever their current copies are. */
static int share_both(struct tensor *top, struct tensor *bottom)
{
    return tensor_share_both(top, bottom);
}

/* Rows of `len` floats: n blocks, from src with stride src_step into dst
 * with stride dst_step (all counted in floats), on l->be. */
static void copy_blocks(const struct layer *l, const float *src, size_t src_step, float *dst, size_t dst_step,
                        size_t n, size_t len)
{
    l->be->structure->copy_blocks(l->be, src, src_step, dst, dst_step, n, len);
}

static bool structure_runs_on(const struct backend *be)
{
    return be->structure != NULL;
}

/* ---- Concat ---------------------------------------------------------------- */

struct concat_state {
    int axis;
};

static int concat_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    const Caffe__ConcatParameter *p = l->param->concat_param;
    if (p && p->has_axis && p->has_concat_dim)
        return err_set(CREMA_ERR_INVALID, "concat_param: give either axis or concat_dim, not both");
    l->priv = calloc(1, sizeof(struct concat_state));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

/* The axis named by axis or the legacy *_dim field of Concat and Slice. */
static int split_axis(const struct tensor *t, bool has_dim, uint32_t dim, int axis, const char *what,
                      int *out)
{
    if (has_dim) {
        if (dim >= (uint32_t)t->num_axes)
            return err_set(CREMA_ERR_INVALID, "%s_dim %u is out of range for a %d-axis bottom", what, dim,
                           t->num_axes);
        *out = (int)dim;
        return CREMA_OK;
    }
    *out = tensor_canonical_axis(t, axis);
    if (*out < 0)
        return err_set(CREMA_ERR_INVALID, "%s_param.axis %d is out of range for a %d-axis bottom", what,
                       axis, t->num_axes);
    return CREMA_OK;
}

static int concat_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ConcatParameter def = CAFFE__CONCAT_PARAMETER__INIT;
    const Caffe__ConcatParameter *p = l->param->concat_param ? l->param->concat_param : &def;
    struct concat_state *s = l->priv;
    int rc = split_axis(bottom[0], p->has_concat_dim, p->concat_dim, p->axis, "concat", &s->axis);
    if (rc)
        return rc;
    int shape[TENSOR_MAX_AXES];
    memcpy(shape, bottom[0]->shape, sizeof shape);
    for (int i = 1; i < l->n_bottom; i++) {
        char a[256], b[256];
        if (bottom[i]->num_axes != bottom[0]->num_axes)
            return err_set(CREMA_ERR_SHAPE, "bottom %d has %d axes but bottom 0 has %d (shapes %s and %s)", i,
                           bottom[i]->num_axes, bottom[0]->num_axes,
                           tensor_shape_string(bottom[i], a, sizeof a),
                           tensor_shape_string(bottom[0], b, sizeof b));
        for (int j = 0; j < bottom[0]->num_axes; j++)
            if (j != s->axis && bottom[i]->shape[j] != bottom[0]->shape[j])
                return err_set(CREMA_ERR_SHAPE,
                               "bottom %d has shape %s, bottom 0 has %s: they may differ only on the concat axis %d",
                               i, tensor_shape_string(bottom[i], a, sizeof a),
                               tensor_shape_string(bottom[0], b, sizeof b), s->axis);
        shape[s->axis] += bottom[i]->shape[s->axis];
    }
    rc = tensor_reshape(top[0], bottom[0]->num_axes, shape);
    if (!rc && l->n_bottom == 1)
        rc = share_both(top[0], bottom[0]);
    return rc;
}

static int concat_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct concat_state *s = l->priv;
    if (l->n_bottom == 1)
        return CREMA_OK;
    float *y = LDATA(top[0]);
    if (!y)
        return CREMA_ERR_NOMEM;
    size_t outer = tensor_count_range(top[0], 0, s->axis);
    size_t inner = tensor_count_range(top[0], s->axis + 1, top[0]->num_axes);
    size_t top_axis = (size_t)top[0]->shape[s->axis], offset = 0;
    for (int i = 0; i < l->n_bottom; i++) {
        const float *x = LCDATA(bottom[i]);
        if (!x)
            return CREMA_ERR_NOMEM;
        size_t ax = (size_t)bottom[i]->shape[s->axis];
        copy_blocks(l, x, ax * inner, y + offset * inner, top_axis * inner, outer, ax * inner);
        offset += ax;
    }
    return CREMA_OK;
}

static int concat_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                           struct tensor **bottom)
{
    struct concat_state *s = l->priv;
    if (l->n_bottom == 1)
        return CREMA_OK;
    const float *dy = LCDIFF(top[0]);
    if (!dy)
        return CREMA_ERR_NOMEM;
    size_t outer = tensor_count_range(top[0], 0, s->axis);
    size_t inner = tensor_count_range(top[0], s->axis + 1, top[0]->num_axes);
    size_t top_axis = (size_t)top[0]->shape[s->axis], offset = 0;
    for (int i = 0; i < l->n_bottom; i++) {
        size_t ax = (size_t)bottom[i]->shape[s->axis];
        if (propagate_down[i]) {
            float *dx = LDIFF(bottom[i]);
            if (!dx)
                return CREMA_ERR_NOMEM;
            copy_blocks(l, dy + offset * inner, top_axis * inner, dx, ax * inner, outer, ax * inner);
        }
        offset += ax;
    }
    return CREMA_OK;
}

static void free_priv(struct layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct layer_kind concat_layer = {
    .type = "Concat",
    .min_bottoms = 1, .max_bottoms = -1, .min_tops = 1, .max_tops = 1,
    .setup = concat_setup,
    .reshape = concat_reshape,
    .forward = concat_forward,
    .backward = concat_backward,
    .destroy = free_priv,
    .forward_dev = concat_forward,
    .backward_dev = concat_backward,
    .runs_on = structure_runs_on,
};

/* ---- Slice ----------------------------------------------------------------- */

static int slice_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    const Caffe__SliceParameter *p = l->param->slice_param;
    if (p && p->has_axis && p->has_slice_dim)
        return err_set(CREMA_ERR_INVALID, "slice_param: give either axis or slice_dim, not both");
    l->priv = calloc(1, sizeof(struct concat_state));
    return l->priv ? CREMA_OK : err_set(CREMA_ERR_NOMEM, "out of memory");
}

static int slice_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__SliceParameter def = CAFFE__SLICE_PARAMETER__INIT;
    const Caffe__SliceParameter *p = l->param->slice_param ? l->param->slice_param : &def;
    struct concat_state *s = l->priv;
    int rc = split_axis(bottom[0], p->has_slice_dim, p->slice_dim, p->axis, "slice", &s->axis);
    if (rc)
        return rc;
    int shape[TENSOR_MAX_AXES];
    memcpy(shape, bottom[0]->shape, sizeof shape);
    int whole = bottom[0]->shape[s->axis];
    if (p->n_slice_point) {
        if (p->n_slice_point != (size_t)l->n_top - 1)
            return err_set(CREMA_ERR_INVALID, "slice_param.slice_point: %zu points for %d tops (need %d)",
                           p->n_slice_point, l->n_top, l->n_top - 1);
        if (l->n_top > whole)
            return err_set(CREMA_ERR_INVALID, "%d tops cannot slice an axis of size %d", l->n_top, whole);
        uint32_t prev = 0;
        for (size_t i = 0; i < p->n_slice_point; i++) {
            if (p->slice_point[i] <= prev)
                return err_set(CREMA_ERR_INVALID,
                               "slice_param.slice_point %zu: %u is not greater than the previous point %u", i,
                               p->slice_point[i], prev);
            prev = p->slice_point[i];
        }
        if (prev >= (uint32_t)whole)
            return err_set(CREMA_ERR_INVALID,
                           "slice_param.slice_point: the last point %u is not inside the axis of size %d", prev,
                           whole);
        prev = 0;
        for (int i = 0; i < l->n_top; i++) {
            uint32_t end = i < l->n_top - 1 ? p->slice_point[i] : (uint32_t)whole;
            shape[s->axis] = (int)(end - prev);
            prev = end;
            if ((rc = tensor_reshape(top[i], bottom[0]->num_axes, shape)))
                return rc;
        }
    } else {
        if (whole % l->n_top)
            return err_set(CREMA_ERR_INVALID, "%d tops do not evenly divide the slice axis of size %d",
                           l->n_top, whole);
        shape[s->axis] = whole / l->n_top;
        for (int i = 0; i < l->n_top; i++)
            if ((rc = tensor_reshape(top[i], bottom[0]->num_axes, shape)))
                return rc;
    }
    if (l->n_top == 1)
        rc = share_both(top[0], bottom[0]);
    return rc;
}

static int slice_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct concat_state *s = l->priv;
    if (l->n_top == 1)
        return CREMA_OK;
    const float *x = LCDATA(bottom[0]);
    if (!x)
        return CREMA_ERR_NOMEM;
    size_t outer = tensor_count_range(bottom[0], 0, s->axis);
    size_t inner = tensor_count_range(bottom[0], s->axis + 1, bottom[0]->num_axes);
    size_t whole = (size_t)bottom[0]->shape[s->axis], offset = 0;
    for (int i = 0; i < l->n_top; i++) {
        float *y = LDATA(top[i]);
        if (!y)
            return CREMA_ERR_NOMEM;
        size_t ax = (size_t)top[i]->shape[s->axis];
        copy_blocks(l, x + offset * inner, whole * inner, y, ax * inner, outer, ax * inner);
        offset += ax;
    }
    return CREMA_OK;
}

static int slice_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                          struct tensor **bottom)
{
    struct concat_state *s = l->priv;
    if (!propagate_down[0] || l->n_top == 1)
        return CREMA_OK;
    float *dx = LDIFF(bottom[0]);
    if (!dx)
        return CREMA_ERR_NOMEM;
    size_t outer = tensor_count_range(bottom[0], 0, s->axis);
    size_t inner = tensor_count_range(bottom[0], s->axis + 1, bottom[0]->num_axes);
    size_t whole = (size_t)bottom[0]->shape[s->axis], offset = 0;
    for (int i = 0; i < l->n_top; i++) {
        const float *dy = LCDIFF(top[i]);
        if (!dy)
            return CREMA_ERR_NOMEM;
        size_t ax = (size_t)top[i]->shape[s->axis];
        copy_blocks(l, dy, ax * inner, dx + offset * inner, whole * inner, outer, ax * inner);
        offset += ax;
    }
    return CREMA_OK;
}

const struct layer_kind slice_layer = {
    .type = "Slice",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = -1,
    .setup = slice_setup,
    .reshape = slice_reshape,
    .forward = slice_forward,
    .backward = slice_backward,
    .destroy = free_priv,
    .forward_dev = slice_forward,
    .backward_dev = slice_backward,
    .runs_on = structure_runs_on,
};

/* ---- Flatten and Reshape: new shapes over the bottom's own buffers ---------- */

static int no_backward_work(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    (void)l;
    (void)top;
    (void)propagate_down;
    (void)bottom;
    return CREMA_OK;
}

/* The buffers are already shared by reshape; sharing again here keeps them
 * shared if the bottom's buffers were replaced since. */
static int reshare_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)l;
    if (top[0]->data_buf == bottom[0]->data_buf && top[0]->diff_buf == bottom[0]->diff_buf)
        return CREMA_OK;
    return share_both(top[0], bottom[0]);
}

static int flatten_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__FlattenParameter def = CAFFE__FLATTEN_PARAMETER__INIT;
    const Caffe__FlattenParameter *p = l->param->flatten_param ? l->param->flatten_param : &def;
    if (top[0] == bottom[0])
        return err_set(CREMA_ERR_INVALID, "Flatten cannot be computed in place");
    int start = tensor_canonical_axis(bottom[0], p->axis);
    int end = tensor_canonical_axis(bottom[0], p->end_axis);
    if (start < 0 || end < 0)
        return err_set(CREMA_ERR_INVALID, "flatten_param: axis %d or end_axis %d is out of range for a %d-axis bottom",
                       p->axis, p->end_axis, bottom[0]->num_axes);
    if (end < start)
        return err_set(CREMA_ERR_INVALID, "flatten_param: end_axis %d comes before axis %d", p->end_axis, p->axis);
    int shape[TENSOR_MAX_AXES], n = 0;
    for (int i = 0; i < start; i++)
        shape[n++] = bottom[0]->shape[i];
    size_t flat = tensor_count_range(bottom[0], start, end + 1);
    if (flat > 0x7fffffff)
        return err_set(CREMA_ERR_SHAPE, "flattened axis of %zu elements is too large", flat);
    shape[n++] = (int)flat;
    for (int i = end + 1; i < bottom[0]->num_axes; i++)
        shape[n++] = bottom[0]->shape[i];
    int rc = tensor_reshape(top[0], n, shape);
    return rc ? rc : share_both(top[0], bottom[0]);
}

const struct layer_kind flatten_layer = {
    .type = "Flatten",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .reshape = flatten_reshape,
    .forward = reshare_forward,
    .backward = no_backward_work,
    .forward_dev = reshare_forward,
    .backward_dev = no_backward_work,
    .runs_on = structure_runs_on,
};

struct reshape_state {
    int inferred_axis;  /* index into the new dims of the -1, or -1 */
    int n_copy;
    int copy_axes[TENSOR_MAX_AXES];
    long long constant_count;
};

static int reshape_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    if (top[0] == bottom[0])
        return err_set(CREMA_ERR_INVALID, "Reshape cannot be computed in place");
    const Caffe__ReshapeParameter *p = l->param->reshape_param;
    const Caffe__BlobShape *shape = p ? p->shape : NULL;
    size_t n = shape ? shape->n_dim : 0;
    if (n > TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_INVALID, "reshape_param.shape has %zu dims; at most %d", n, TENSOR_MAX_AXES);
    struct reshape_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = s;
    s->inferred_axis = -1;
    s->constant_count = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t d = shape->dim[i];
        if (d == 0) {
            s->copy_axes[s->n_copy++] = (int)i;
        } else if (d == -1) {
            if (s->inferred_axis >= 0)
                return err_set(CREMA_ERR_INVALID,
                               "reshape_param.shape: dims %d and %zu are both -1; at most one dim may be inferred",
                               s->inferred_axis, i);
            s->inferred_axis = (int)i;
        } else if (d < -1 || d > 0x7fffffff) {
            return err_set(CREMA_ERR_INVALID, "reshape_param.shape dim %zu: %lld is not a size, 0 or -1", i,
                           (long long)d);
        } else {
            s->constant_count *= d;
            if (s->constant_count > (1LL << 40))
                return err_set(CREMA_ERR_INVALID, "reshape_param.shape: more than 2^40 elements");
        }
    }
    return CREMA_OK;
}

static int reshape_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    static const Caffe__ReshapeParameter def = CAFFE__RESHAPE_PARAMETER__INIT;
    const Caffe__ReshapeParameter *p = l->param->reshape_param ? l->param->reshape_param : &def;
    const struct reshape_state *s = l->priv;
    const struct tensor *b = bottom[0];
    int start = p->axis >= 0 ? p->axis : b->num_axes + p->axis + 1;
    if (start < 0 || start > b->num_axes)
        return err_set(CREMA_ERR_INVALID, "reshape_param.axis %d is out of range for a %d-axis bottom", p->axis,
                       b->num_axes);
    if (p->num_axes < -1)
        return err_set(CREMA_ERR_INVALID, "reshape_param.num_axes %d: must be >= 0, or -1 for all", p->num_axes);
    int end = p->num_axes == -1 ? b->num_axes : start + p->num_axes;
    if (end > b->num_axes)
        return err_set(CREMA_ERR_INVALID, "reshape_param: axis %d + num_axes %d goes past the %d bottom axes",
                       start, p->num_axes, b->num_axes);
    int n_new = p->shape ? (int)p->shape->n_dim : 0;
    int n_top = b->num_axes - (end - start) + n_new;
    if (n_top > TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_INVALID, "reshape_param: the top would have %d axes; at most %d", n_top,
                       TENSOR_MAX_AXES);
    int shape[TENSOR_MAX_AXES], k = 0;
    for (int i = 0; i < start; i++)
        shape[k++] = b->shape[i];
    for (int i = 0; i < n_new; i++)
        shape[k++] = (int)p->shape->dim[i];
    for (int i = end; i < b->num_axes; i++)
        shape[k++] = b->shape[i];
    for (int i = 0; i < s->n_copy; i++) {
        int a = start + s->copy_axes[i];
        if (a >= b->num_axes)
            return err_set(CREMA_ERR_INVALID,
                           "reshape_param.shape dim %d is 0 (copy), but the bottom has no axis %d to copy",
                           s->copy_axes[i], a);
        shape[a] = b->shape[a];
    }
    if (s->inferred_axis >= 0) {
        long long known = s->constant_count * (long long)tensor_count_range(b, 0, start) *
                          (long long)tensor_count_range(b, end, b->num_axes);
        for (int i = 0; i < s->n_copy; i++)
            known *= shape[start + s->copy_axes[i]];
        if (known == 0 || (long long)b->count % known)
            return err_set(CREMA_ERR_SHAPE,
                           "reshape_param: the bottom's %zu elements are not divisible by the product of the other dims (%lld)",
                           b->count, known);
        long long inferred = (long long)b->count / known;
        if (inferred > 0x7fffffff)
            return err_set(CREMA_ERR_SHAPE, "reshape_param: inferred dim %lld is too large", inferred);
        shape[start + s->inferred_axis] = (int)inferred;
    }
    int rc = tensor_reshape(top[0], n_top, shape);
    if (rc)
        return rc;
    if (top[0]->count != b->count) {
        char a[256], c[256];
        return err_set(CREMA_ERR_SHAPE, "reshape_param: top shape %s does not hold the bottom's %s",
                       tensor_shape_string(top[0], a, sizeof a), tensor_shape_string(b, c, sizeof c));
    }
    return share_both(top[0], bottom[0]);
}

const struct layer_kind reshape_layer = {
    .type = "Reshape",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .setup = reshape_setup,
    .reshape = reshape_reshape,
    .forward = reshare_forward,
    .backward = no_backward_work,
    .destroy = free_priv,
    .forward_dev = reshare_forward,
    .backward_dev = no_backward_work,
    .runs_on = structure_runs_on,
};

/* ---- Tile ------------------------------------------------------------------ */

struct tile_state {
    int axis, tiles;
};

static int tile_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const Caffe__TileParameter *p = l->param->tile_param;
    if (!p || !p->has_tiles)
        return err_set(CREMA_ERR_INVALID, "tile_param.tiles must be given");
    if (p->tiles <= 0)
        return err_set(CREMA_ERR_INVALID, "tile_param.tiles is %d; it must be positive", p->tiles);
    int axis = tensor_canonical_axis(bottom[0], p->axis);
    if (axis < 0)
        return err_set(CREMA_ERR_INVALID, "tile_param.axis %d is out of range for a %d-axis bottom", p->axis,
                       bottom[0]->num_axes);
    if (!l->priv && !(l->priv = calloc(1, sizeof(struct tile_state))))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    struct tile_state *s = l->priv;
    s->axis = axis;
    s->tiles = p->tiles;
    int shape[TENSOR_MAX_AXES];
    memcpy(shape, bottom[0]->shape, sizeof shape);
    if ((long long)shape[axis] * p->tiles > 0x7fffffff)
        return err_set(CREMA_ERR_SHAPE, "tile_param: %d tiles of an axis of %d is too large", p->tiles, shape[axis]);
    shape[axis] *= p->tiles;
    return tensor_reshape(top[0], bottom[0]->num_axes, shape);
}

static int tile_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct tile_state *s = l->priv;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    size_t outer = tensor_count_range(bottom[0], 0, s->axis);
    size_t inner = tensor_count_range(bottom[0], s->axis, bottom[0]->num_axes);
    size_t step = (size_t)s->tiles * inner;
    for (int t = 0; t < s->tiles; t++)
        copy_blocks(l, x, inner, y + (size_t)t * inner, step, outer, inner);
    return CREMA_OK;
}

static int tile_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                         struct tensor **bottom)
{
    struct tile_state *s = l->priv;
    if (!propagate_down[0])
        return CREMA_OK;
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!dx || !dy)
        return CREMA_ERR_NOMEM;
    size_t outer = tensor_count_range(bottom[0], 0, s->axis);
    size_t inner = tensor_count_range(bottom[0], s->axis, bottom[0]->num_axes);
    size_t step = (size_t)s->tiles * inner;
    /* tile 0, then each later tile added in order: every element sums its
     * tiles in the same order as one pass over them would */
    copy_blocks(l, dy, step, dx, inner, outer, inner);
    for (int t = 1; t < s->tiles; t++)
        l->be->structure->add_blocks(l->be, dy + (size_t)t * inner, step, dx, inner, outer, inner);
    return CREMA_OK;
}

const struct layer_kind tile_layer = {
    .type = "Tile",
    .min_bottoms = 1, .max_bottoms = 1, .min_tops = 1, .max_tops = 1,
    .reshape = tile_reshape,
    .forward = tile_forward,
    .backward = tile_backward,
    .destroy = free_priv,
    .forward_dev = tile_forward,
    .backward_dev = tile_backward,
    .runs_on = structure_runs_on,
};

/* ---- Filter ---------------------------------------------------------------- */

struct filter_state {
    bool first_reshape;
    int n_keep;
    int *keep; /* items of the selector that are non-zero */
    int keep_cap;
};

static int filter_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    if (l->n_top != l->n_bottom - 1)
        return err_set(CREMA_ERR_INVALID, "Filter needs one top per filtered bottom: %d bottoms (the last is the selector) but %d tops",
                       l->n_bottom, l->n_top);
    struct filter_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    s->first_reshape = true;
    l->priv = s;
    return CREMA_OK;
}

static int filter_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    struct filter_state *s = l->priv;
    struct tensor *sel = bottom[l->n_bottom - 1];
    if (sel->num_axes < 1)
        return err_set(CREMA_ERR_SHAPE, "the selector (last bottom) has no axes");
    for (int i = 1; i < sel->num_axes; i++)
        if (sel->shape[i] != 1)
            return err_set(CREMA_ERR_SHAPE, "the selector (last bottom) must be N x 1 x ...: axis %d is %d", i,
                           sel->shape[i]);
    for (int i = 0; i < l->n_bottom - 1; i++)
        if (bottom[i]->num_axes < 1 || bottom[i]->shape[0] != sel->shape[0])
            return err_set(CREMA_ERR_SHAPE, "bottom %d has %d items but the selector has %d", i,
                           bottom[i]->num_axes ? bottom[i]->shape[0] : 0, sel->shape[0]);
    /* The kept items are host decisions (as in Caffe, whose GPU Filter
     * reads the selector's CPU copy too). */
    const float *d = tensor_cdata(sel);
    if (!d)
        return CREMA_ERR_NOMEM;
    if (sel->shape[0] > s->keep_cap) {
        free(s->keep);
        s->keep = malloc((size_t)sel->shape[0] * sizeof(int));
        if (!s->keep)
            return err_set(CREMA_ERR_NOMEM, "cannot allocate the indices of %d items", sel->shape[0]);
        s->keep_cap = sel->shape[0];
    }
    s->n_keep = 0;
    for (int i = 0; i < sel->shape[0]; i++)
        if (d[i] != 0.f)
            s->keep[s->n_keep++] = i;
    /* Caffe sizes the tops by the whole batch at set-up, before any data. */
    int n = s->n_keep;
    if (s->first_reshape) {
        n = bottom[0]->shape[0];
        s->first_reshape = false;
    }
    for (int t = 0; t < l->n_top; t++) {
        int shape[TENSOR_MAX_AXES];
        memcpy(shape, bottom[t]->shape, sizeof shape);
        shape[0] = n;
        int rc = tensor_reshape(top[t], bottom[t]->num_axes, shape);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

static int filter_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    /* The kept items depend on the selector's data: shape the tops from it
     * now, as Caffe's Forward does through Reshape. */
    int rc = filter_reshape(l, bottom, top);
    if (rc)
        return rc;
    struct filter_state *s = l->priv;
    for (int t = 0; t < l->n_top; t++) {
        const float *x = LCDATA(bottom[t]);
        float *y = LDATA(top[t]);
        if (!x || !y)
            return CREMA_ERR_NOMEM;
        size_t dim = tensor_count_range(bottom[t], 1, bottom[t]->num_axes);
        for (int n = 0; n < s->n_keep; n++)
            copy_blocks(l, x + (size_t)s->keep[n] * dim, 0, y + (size_t)n * dim, 0, 1, dim);
    }
    return CREMA_OK;
}

static int filter_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                           struct tensor **bottom)
{
    struct filter_state *s = l->priv;
    if (propagate_down[l->n_bottom - 1])
        return err_set(CREMA_ERR_INVALID, "layer %s (Filter) cannot back-propagate to its selector (last bottom)",
                       l->name);
    for (int t = 0; t < l->n_top; t++) {
        if (!propagate_down[t])
            continue;
        const float *dy = LCDIFF(top[t]);
        float *dx = LDIFF(bottom[t]);
        if (!dy || !dx)
            return CREMA_ERR_NOMEM;
        size_t dim = tensor_count_range(bottom[t], 1, bottom[t]->num_axes);
        l->be->math->set(l->be, bottom[t]->count, 0.f, dx);
        for (int n = 0; n < s->n_keep; n++)
            copy_blocks(l, dy + (size_t)n * dim, 0, dx + (size_t)s->keep[n] * dim, 0, 1, dim);
    }
    return CREMA_OK;
}

static void filter_destroy(struct layer *l)
{
    struct filter_state *s = l->priv;
    if (s)
        free(s->keep);
    free_priv(l);
}

static bool not_last_bottom(const struct layer *l, int bottom_index)
{
    return bottom_index != l->n_bottom - 1;
}

const struct layer_kind filter_layer = {
    .type = "Filter",
    .min_bottoms = 2, .max_bottoms = -1, .min_tops = 1, .max_tops = -1,
    .setup = filter_setup,
    .reshape = filter_reshape,
    .forward = filter_forward,
    .backward = filter_backward,
    .destroy = filter_destroy,
    .allow_force_backward = not_last_bottom,
    .forward_dev = filter_forward,
    .backward_dev = filter_backward,
    .runs_on = structure_runs_on,
};

/* ---- BatchReindex ---------------------------------------------------------- */

static int batch_reindex_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)l;
    if (bottom[1]->num_axes != 1)
        return err_set(CREMA_ERR_SHAPE, "the index bottom must have 1 axis, not %d", bottom[1]->num_axes);
    if (bottom[0]->num_axes < 1)
        return err_set(CREMA_ERR_SHAPE, "the data bottom has no axes");
    int shape[TENSOR_MAX_AXES];
    memcpy(shape, bottom[0]->shape, sizeof shape);
    shape[0] = bottom[1]->shape[0];
    return tensor_reshape(top[0], bottom[0]->num_axes, shape);
}

/* Checks every index against the batch size; Caffe stops on a bad one. */
static int batch_reindex_check(const struct layer *l, const float *idx, int n, int batch)
{
    for (int i = 0; i < n; i++)
        if (!(idx[i] >= 0.f && idx[i] < (float)batch))
            return err_set(CREMA_ERR_INVALID, "layer %s (BatchReindex): index %d is %g, outside [0, %d)", l->name, i,
                           (double)idx[i], batch);
    return CREMA_OK;
}

/* The indices are read on the host, checked there (Caffe's GPU path reads
 * them on the host too), and steer block copies on l->be. */
static int batch_reindex_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    const float *idx = tensor_cdata(bottom[1]);
    if (!idx)
        return CREMA_ERR_NOMEM;
    int rc = batch_reindex_check(l, idx, (int)bottom[1]->count, bottom[0]->shape[0]);
    if (rc)
        return rc;
    const float *x = LCDATA(bottom[0]);
    float *y = LDATA(top[0]);
    if (!x || !y)
        return CREMA_ERR_NOMEM;
    size_t inner = tensor_count_range(bottom[0], 1, bottom[0]->num_axes);
    for (size_t n = 0; n < bottom[1]->count; n++)
        copy_blocks(l, x + (size_t)(int)idx[n] * inner, 0, y + n * inner, 0, 1, inner);
    return CREMA_OK;
}

static int batch_reindex_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                                  struct tensor **bottom)
{
    if (propagate_down[1])
        return err_set(CREMA_ERR_INVALID, "layer %s (BatchReindex) cannot back-propagate to its index bottom",
                       l->name);
    if (!propagate_down[0])
        return CREMA_OK;
    const float *idx = tensor_cdata(bottom[1]);
    if (!idx)
        return CREMA_ERR_NOMEM;
    int rc = batch_reindex_check(l, idx, (int)bottom[1]->count, bottom[0]->shape[0]);
    if (rc)
        return rc;
    const float *dy = LCDIFF(top[0]);
    float *dx = LDIFF(bottom[0]);
    if (!dy || !dx)
        return CREMA_ERR_NOMEM;
    size_t inner = tensor_count_range(bottom[0], 1, bottom[0]->num_axes);
    l->be->math->set(l->be, bottom[0]->count, 0.f, dx);
    /* items in order, so a row picked twice sums in the same order anywhere */
    for (size_t n = 0; n < bottom[1]->count; n++)
        l->be->structure->add_blocks(l->be, dy + n * inner, 0, dx + (size_t)(int)idx[n] * inner, 0, 1, inner);
    return CREMA_OK;
}

static bool not_bottom_1(const struct layer *l, int bottom_index)
{
    (void)l;
    return bottom_index != 1;
}

const struct layer_kind batch_reindex_layer = {
    .type = "BatchReindex",
    .min_bottoms = 2, .max_bottoms = 2, .min_tops = 1, .max_tops = 1,
    .reshape = batch_reindex_reshape,
    .forward = batch_reindex_forward,
    .backward = batch_reindex_backward,
    .allow_force_backward = not_bottom_1,
    .forward_dev = batch_reindex_forward,
    .backward_dev = batch_reindex_backward,
    .runs_on = structure_runs_on,
};

/* ---- Parameter: a learnable blob exposed as a top --------------------------- */

static int parameter_shape(const struct layer *l, int *n, int shape[TENSOR_MAX_AXES])
{
    const Caffe__ParameterParameter *p = l->param->parameter_param;
    const Caffe__BlobShape *bs = p ? p->shape : NULL;
    *n = bs ? (int)bs->n_dim : 0;
    if (bs && bs->n_dim > TENSOR_MAX_AXES)
        return err_set(CREMA_ERR_INVALID, "parameter_param.shape has %zu dims; at most %d", bs->n_dim,
                       TENSOR_MAX_AXES);
    for (int i = 0; i < *n; i++) {
        if (bs->dim[i] < 0 || bs->dim[i] > 0x7fffffff)
            return err_set(CREMA_ERR_INVALID, "parameter_param.shape dim %d: %lld is not a size", i,
                           (long long)bs->dim[i]);
        shape[i] = (int)bs->dim[i];
    }
    return CREMA_OK;
}

static int parameter_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    int n, shape[TENSOR_MAX_AXES];
    int rc = parameter_shape(l, &n, shape);
    if (rc)
        return rc;
    if (l->n_blobs == 0) {
        if ((rc = layer_alloc_blobs(l, 1)) || (rc = tensor_reshape(l->blobs[0], n, shape)))
            return rc;
    } else {
        struct tensor *want = tensor_new();
        if (!want)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        rc = tensor_reshape(want, n, shape);
        if (!rc && (l->n_blobs != 1 || want->count != l->blobs[0]->count)) {
            char a[256], b[256];
            rc = err_set(CREMA_ERR_SHAPE, "given %d blob(s), the first of shape %s; parameter_param.shape asks for one of %s",
                         l->n_blobs, tensor_shape_string(l->blobs[0], a, sizeof a),
                         tensor_shape_string(want, b, sizeof b));
        }
        tensor_free(want);
        if (rc)
            return rc;
    }
    rc = tensor_reshape(top[0], n, shape);
    return rc ? rc : share_both(top[0], l->blobs[0]);
}

static int parameter_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    if (top[0]->data_buf == l->blobs[0]->data_buf && top[0]->diff_buf == l->blobs[0]->diff_buf)
        return CREMA_OK;
    return share_both(top[0], l->blobs[0]);
}

const struct layer_kind parameter_layer = {
    .type = "Parameter",
    .min_bottoms = 0, .max_bottoms = 0, .min_tops = 1, .max_tops = 1,
    .setup = parameter_setup,
    .forward = parameter_forward,
    .backward = no_backward_work,
    .forward_dev = parameter_forward,
    .backward_dev = no_backward_work,
    .runs_on = structure_runs_on,
};

/* ---- Silence --------------------------------------------------------------- */

static int silence_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)l;
    (void)bottom;
    (void)top;
    return CREMA_OK;
}

static int silence_backward(struct layer *l, struct tensor **top, const bool *propagate_down,
                            struct tensor **bottom)
{
    (void)top;
    for (int i = 0; i < l->n_bottom; i++)
        if (propagate_down[i]) {
            int rc = tensor_zero_diff_on(bottom[i], l->be);
            if (rc)
                return rc;
        }
    return CREMA_OK;
}

const struct layer_kind silence_layer = {
    .type = "Silence",
    .min_bottoms = 1, .max_bottoms = -1, .min_tops = 0, .max_tops = 0,
    .forward = silence_forward,
    .backward = silence_backward,
    .forward_dev = silence_forward,
    .backward_dev = silence_backward,
    .runs_on = structure_runs_on,
};
