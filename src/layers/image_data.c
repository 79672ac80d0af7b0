/* The ImageData layer: images named in a list file ("FILE LABEL" lines),
 * read from disk, optionally resized and shuffled each pass, transformed,
 * and batched ahead of time by the shared prefetch thread. */
#include "data/image.h"
#include "data/image_list.h"
#include "data/transformer.h"
#include "layers/data_source.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* src.at.record is the next entry within the pass; src.at.rng crops and
 * mirrors on the prefetch thread. */
struct image_data_priv {
    struct data_source src;
    struct image_list list;
    const char *source, *root;
    int new_h, new_w;
    enum image_color color;
    bool shuffle;
    struct transformer tf;
    struct rng shuffle_rng; /* only shuffles: every rank draws the same order */
    /* With shuffle, every pass's order is drawn afresh from the list's file
     * order (file_order), so that src.at.pass_rng, the shuffle generator as
     * it was before drawing this pass's order, is enough to redraw it on
     * resume. (Caffe reshuffles the previous order in place; either way
     * each pass is a uniform permutation.) */
    struct image_list_entry *file_order;
};
_Static_assert(offsetof(struct image_data_priv, src) == 0, "a data layer's state begins with its data_source");

/* Reads entry i as the layer's images are: root + file, colour or gray,
 * resized when new_height/new_width are set. */
static int load_entry(const struct image_data_priv *p, size_t i, struct image *out)
{
    const struct image_list_entry *e = &p->list.items[i];
    size_t n = strlen(p->root) + strlen(e->file) + 1;
    char *path = malloc(n);
    if (!path)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s%s", p->root, e->file);
    int rc = image_read(path, p->color, out);
    if (!rc && p->new_h > 0) {
        struct image rs;
        rc = image_resize(out, p->new_h, p->new_w, &rs);
        image_free(out);
        if (!rc)
            *out = rs;
    }
    free(path);
    if (rc)
        return err_prefix(rc, "%s:%zu", p->source, e->line);
    return CREMA_OK;
}

/* Draws this pass's order: the file order shuffled by the next draws of
 * shuffle_rng. */
static void draw_order(struct image_data_priv *p)
{
    p->src.at.pass_rng = p->shuffle_rng;
    memcpy(p->list.items, p->file_order, p->list.n * sizeof *p->list.items);
    image_list_shuffle(&p->list, &p->shuffle_rng);
}

static void advance(struct image_data_priv *p)
{
    if (++p->src.at.record < p->list.n)
        return;
    p->src.at.record = 0;
    p->src.at.epoch++;
    if (p->shuffle)
        draw_order(p);
}

static int fill_batch(void *ctx, struct prefetch_batch *b)
{
    struct image_data_priv *p = ctx;
    struct image img = { 0 };
    int rc = CREMA_OK;
    for (int i = 0; !rc && i < p->src.batch_size; i++) {
        while (!data_source_mine(&p->src, p->src.at.record))
            advance(p);
        size_t at = p->src.at.record;
        const struct image_list_entry *e = &p->list.items[at];
        int label = e->label;
        size_t line = e->line;
        advance(p);
        image_free(&img);
        if ((rc = load_entry(p, at, &img)))
            break;
        int oh, ow;
        rc = transformer_check(&p->tf, img.channels, img.height, img.width, &oh, &ow);
        if (rc) {
            err_prefix(rc, "%s:%zu", p->source, line);
            break;
        }
        if (i == 0) {
            rc = prefetch_reserve(b, p->src.batch_size, img.channels, oh, ow);
        } else if (b->c != img.channels || b->h != oh || b->w != ow) {
            rc = err_set(CREMA_ERR_SHAPE,
                         "%s:%zu: image gives %dx%dx%d but the batch's first gives %dx%dx%d "
                         "(set new_height and new_width to make images one size)",
                         p->source, line, img.channels, oh, ow, b->c, b->h, b->w);
        }
        if (rc)
            break;
        size_t item = (size_t)b->c * (size_t)b->h * (size_t)b->w;
        rc = transformer_apply(&p->tf, &p->src.at.rng, img.data, NULL, img.channels, img.height, img.width,
                               b->data + item * (size_t)i);
        b->label[i] = (float)label;
    }
    image_free(&img);
    return rc;
}

static int image_data_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    static const Caffe__ImageDataParameter def = CAFFE__IMAGE_DATA_PARAMETER__INIT;
    const Caffe__ImageDataParameter *ip = l->param->image_data_param ? l->param->image_data_param : &def;
    struct image_data_priv *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = p;
    p->source = ip->source ? ip->source : "";
    p->root = ip->root_folder ? ip->root_folder : "";
    if (!*p->source)
        return err_set(CREMA_ERR_INVALID, "image_data_param.source is empty");
    int rc = data_source_init(&p->src, "image_data_param.batch_size", ip->batch_size,
                              DATA_SAVES_EPOCH | DATA_SAVES_RNG | (ip->shuffle ? DATA_SAVES_PASS_RNG : 0));
    if (rc)
        return rc;
    if ((ip->new_height == 0) != (ip->new_width == 0) || ip->new_height > IMAGE_MAX_SIDE ||
        ip->new_width > IMAGE_MAX_SIDE)
        return err_set(CREMA_ERR_INVALID,
                       "image_data_param: give new_height and new_width together (got %u and %u)", ip->new_height,
                       ip->new_width);
    p->new_h = (int)ip->new_height;
    p->new_w = (int)ip->new_width;
    p->color = ip->is_color ? IMAGE_COLOR : IMAGE_GRAY;
    p->shuffle = ip->shuffle;
    rc = transformer_init(&p->tf, l->param->transform_param, l->phase);
    if (rc)
        return rc;
    rc = image_list_read(p->source, &p->list);
    if (rc)
        return err_prefix(rc, "image_data_param.source");
    data_source_seed(&p->src, l);
    rng_seed(&p->shuffle_rng, l->rng ? rng_next(l->rng) : 0x5eed5);
    if (p->shuffle) {
        /* shallow: the names stay owned by the list */
        p->file_order = malloc(p->list.n * sizeof *p->file_order);
        if (!p->file_order)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        memcpy(p->file_order, p->list.items, p->list.n * sizeof *p->file_order);
        draw_order(p);
    }
    if (ip->rand_skip > 0) {
        uint32_t skip = rng_below(&p->src.at.rng, ip->rand_skip);
        if (skip >= p->list.n)
            return err_set(CREMA_ERR_INVALID, "image_data_param.rand_skip: cannot skip %u of %zu images", skip,
                           p->list.n);
        p->src.at.record = skip;
    }
    /* Shape the tops from the image that will be read first. */
    struct image img;
    rc = load_entry(p, p->src.at.record, &img);
    int oh = 0, ow = 0;
    if (!rc) {
        rc = transformer_check(&p->tf, img.channels, img.height, img.width, &oh, &ow);
        if (rc)
            err_prefix(rc, "%s:%zu", p->source, p->list.items[p->src.at.record].line);
    }
    if (!rc)
        rc = tensor_reshape4(top[0], p->src.batch_size, img.channels, oh, ow);
    image_free(&img);
    if (!rc)
        rc = tensor_reshape(top[1], 1, &p->src.batch_size);
    if (rc)
        return rc;
    return data_source_prefetch(&p->src, l, fill_batch, p);
}

static int image_data_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    struct image_data_priv *p = l->priv;
    return data_source_forward_on(&p->src, top[0], top[1], l->be);
}

/* Drops what was read ahead, redraws the pass's order and moves to the entry. */
static int image_data_set_position(struct layer *l, const Caffe__CremaDataPosition *pos)
{
    struct image_data_priv *p = l->priv;
    if (pos->record >= p->list.n)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.record %llu is past the %zu images of %s",
                       l->name, (unsigned long long)pos->record, p->list.n, p->source);
    struct data_cursor at;
    int rc = data_source_read_position(l, &p->src, pos, &at);
    if (rc)
        return rc;
    data_source_stop(&p->src);
    p->src.at = at;
    if (p->shuffle) {
        p->shuffle_rng = at.pass_rng;
        draw_order(p);
    }
    return CREMA_OK;
}

static void image_data_destroy(struct layer *l)
{
    struct image_data_priv *p = l->priv;
    if (!p)
        return;
    data_source_close(&p->src);
    image_list_free(&p->list);
    free(p->file_order);
    transformer_free(&p->tf);
    free(p);
    l->priv = NULL;
}

static const struct data_source_ops image_data_source = {
    .set_shard = data_source_keep_share,
    .get_position = data_source_cursor_position,
    .set_position = image_data_set_position,
};

const struct layer_kind image_data_layer = {
    .type = "ImageData",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 2,
    .max_tops = 2,
    .setup = image_data_setup,
    .forward = image_data_forward,
    .forward_dev = image_data_forward, /* the prefetch thread uploads each batch */
    .runs_on = data_source_runs_on,
    .destroy = image_data_destroy,
    .source = &image_data_source,
};
