/* The WindowData layer (R-CNN fine-tuning): windows of images listed in a
 * window file are sampled, a fraction from the foreground set, cropped with
 * optional context padding, warped to crop_size and mean-subtracted, in the
 * order and arithmetic of Caffe's WindowDataLayer. */
#include "data/image.h"
#include "data/transformer.h"
#include "layers/data_source.h"
#include "util/io.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct window {
    int image, label;
    int x1, y1, x2, y2;
    size_t line; /* in the window file */
};

struct window_image {
    char *path;
    size_t line;    /* of its "# index" header */
    uint8_t *bytes; /* the file's bytes when cache_images */
    size_t len;
};

/* src.at.rng samples windows and mirrors on the prefetch thread. */
struct window_priv {
    struct data_source src;
    const char *source;
    struct window_image *images;
    size_t n_images;
    struct window *fg, *bg;
    size_t n_fg, n_bg;
    int channels, crop, context_pad;
    bool square, mirror;
    float scale, fg_fraction;
    struct transformer tf; /* mean file and mean values only */
};
_Static_assert(offsetof(struct window_priv, src) == 0, "a data layer's state begins with its data_source");

/* ---- the window file ---- */

struct tokens {
    const char *path;
    const char *p, *end;
    size_t line;
    char tok[4096];
};

/* The next whitespace-separated token, or NULL at the end of the file. */
static const char *tok_next(struct tokens *t)
{
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t' || *t->p == '\r' || *t->p == '\n')) {
        if (*t->p == '\n')
            t->line++;
        t->p++;
    }
    if (t->p >= t->end)
        return NULL;
    size_t n = 0;
    while (t->p < t->end && !(*t->p == ' ' || *t->p == '\t' || *t->p == '\r' || *t->p == '\n')) {
        if (n + 1 < sizeof t->tok)
            t->tok[n++] = *t->p;
        t->p++;
    }
    t->tok[n] = 0;
    return t->tok;
}

static int tok_int(struct tokens *t, const char *what, int *out)
{
    const char *s = tok_next(t);
    if (!s)
        return err_set(CREMA_ERR_PARSE, "%s:%zu: expected %s, got the end of the file", t->path, t->line, what);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || end == s || errno || v < INT_MIN || v > INT_MAX)
        return err_set(CREMA_ERR_PARSE, "%s:%zu: expected %s (an integer), got \"%s\"", t->path, t->line, what, s);
    *out = (int)v;
    return CREMA_OK;
}

static int tok_float(struct tokens *t, const char *what, float *out)
{
    const char *s = tok_next(t);
    if (!s)
        return err_set(CREMA_ERR_PARSE, "%s:%zu: expected %s, got the end of the file", t->path, t->line, what);
    char *end;
    float v = strtof(s, &end);
    if (*end || end == s || !isfinite(v))
        return err_set(CREMA_ERR_PARSE, "%s:%zu: expected %s (a number), got \"%s\"", t->path, t->line, what, s);
    *out = v;
    return CREMA_OK;
}

static int push_window(struct window **v, size_t *n, size_t *cap, const struct window *w)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct window *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *w;
    return CREMA_OK;
}

/* Parses "# index / path / channels / height / width / count / count lines
 * of class overlap x1 y1 x2 y2" blocks, sorting windows into foreground
 * (overlap >= fg_threshold) and background (overlap < bg_threshold). */
static int parse_window_file(struct window_priv *p, const Caffe__WindowDataParameter *wp, const char *root,
                             bool cache)
{
    uint8_t *text;
    size_t len;
    int rc = io_read_file(p->source, (size_t)1 << 31, &text, &len);
    if (rc)
        return err_prefix(rc, "window_data_param.source");
    struct tokens t = { .path = p->source, .p = (const char *)text, .end = (const char *)text + len, .line = 1 };
    size_t cap_img = 0, cap_fg = 0, cap_bg = 0;
    const char *s;
    p->channels = 0;
    while (!rc && (s = tok_next(&t))) {
        size_t head_line = t.line;
        int index, c, h, w, n_win;
        if (strcmp(s, "#") != 0) {
            rc = err_set(CREMA_ERR_PARSE, "%s:%zu: expected \"# image_index\", got \"%s\"", p->source, t.line, s);
            break;
        }
        if ((rc = tok_int(&t, "the image index", &index)))
            break;
        const char *file = tok_next(&t);
        if (!file) {
            rc = err_set(CREMA_ERR_PARSE, "%s:%zu: expected an image path after \"# %d\"", p->source, t.line, index);
            break;
        }
        if (p->n_images == cap_img) {
            cap_img = cap_img ? cap_img * 2 : 64;
            struct window_image *ni = realloc(p->images, cap_img * sizeof *ni);
            if (!ni) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            p->images = ni;
        }
        struct window_image *im = &p->images[p->n_images];
        memset(im, 0, sizeof *im);
        size_t plen = strlen(root) + strlen(file) + 1;
        im->path = malloc(plen);
        if (!im->path) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(im->path, plen, "%s%s", root, file);
        im->line = head_line;
        p->n_images++;
        if ((rc = tok_int(&t, "the image channels", &c)) || (rc = tok_int(&t, "the image height", &h)) ||
            (rc = tok_int(&t, "the image width", &w)) || (rc = tok_int(&t, "the number of windows", &n_win)))
            break;
        if (c != 1 && c != 3) {
            rc = err_set(CREMA_ERR_INVALID, "%s:%zu: image %s has %d channels; 1 or 3 are supported", p->source,
                         head_line, im->path, c);
            break;
        }
        if (p->channels && c != p->channels) {
            rc = err_set(CREMA_ERR_INVALID, "%s:%zu: image %s has %d channels but the ones before have %d",
                         p->source, head_line, im->path, c, p->channels);
            break;
        }
        p->channels = c;
        if (n_win < 0) {
            rc = err_set(CREMA_ERR_INVALID, "%s:%zu: negative number of windows %d", p->source, t.line, n_win);
            break;
        }
        if (cache && (rc = io_read_file(im->path, (size_t)1 << 31, &im->bytes, &im->len))) {
            err_prefix(rc, "%s:%zu", p->source, head_line);
            break;
        }
        for (int k = 0; !rc && k < n_win; k++) {
            struct window win = { .image = (int)(p->n_images - 1) };
            float overlap = 0;
            if ((rc = tok_int(&t, "a window's class", &win.label)) ||
                (rc = tok_float(&t, "a window's overlap", &overlap)) || (rc = tok_int(&t, "x1", &win.x1)) ||
                (rc = tok_int(&t, "y1", &win.y1)) || (rc = tok_int(&t, "x2", &win.x2)) ||
                (rc = tok_int(&t, "y2", &win.y2)))
                break;
            win.line = t.line;
            if (win.x1 < 0 || win.y1 < 0 || win.x2 < win.x1 || win.y2 < win.y1) {
                rc = err_set(CREMA_ERR_INVALID, "%s:%zu: window (%d, %d)-(%d, %d) is empty or negative", p->source,
                             t.line, win.x1, win.y1, win.x2, win.y2);
                break;
            }
            if (overlap >= wp->fg_threshold) {
                if (win.label <= 0) {
                    rc = err_set(CREMA_ERR_INVALID,
                                 "%s:%zu: a foreground window (overlap %g >= fg_threshold %g) needs a class > 0, got %d",
                                 p->source, t.line, overlap, wp->fg_threshold, win.label);
                    break;
                }
                rc = push_window(&p->fg, &p->n_fg, &cap_fg, &win);
            } else if (overlap < wp->bg_threshold) {
                win.label = 0; /* background, whatever class the file says */
                rc = push_window(&p->bg, &p->n_bg, &cap_bg, &win);
            }
        }
    }
    free(text);
    if (!rc && p->n_images == 0)
        rc = err_set(CREMA_ERR_INVALID, "%s: the window file is empty", p->source);
    return rc;
}

/* ---- sampling and warping ---- */

/* Copies rows y0..y0+h-1, columns x0..x0+w-1 of img into out. */
static int crop_image(const struct image *img, int x0, int y0, int w, int h, struct image *out)
{
    out->channels = img->channels;
    out->height = h;
    out->width = w;
    out->data = malloc((size_t)img->channels * (size_t)h * (size_t)w);
    if (!out->data)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int c = 0; c < img->channels; c++)
        for (int y = 0; y < h; y++)
            memcpy(out->data + ((size_t)c * (size_t)h + (size_t)y) * (size_t)w,
                   img->data + ((size_t)c * (size_t)img->height + (size_t)(y0 + y)) * (size_t)img->width +
                       (size_t)x0,
                   (size_t)w);
    return CREMA_OK;
}

static int load_image(const struct window_priv *p, const struct window_image *im, struct image *out)
{
    enum image_color color = p->channels == 1 ? IMAGE_GRAY : IMAGE_COLOR;
    int rc = im->bytes ? image_decode(im->bytes, im->len, color, out) : image_read(im->path, color, out);
    if (rc)
        return err_prefix(rc, "%s:%zu: image %s", p->source, im->line, im->path);
    return CREMA_OK;
}

/* Warps one window into item (channels x crop x crop, zeroed beforehand). */
static int warp_window(struct window_priv *p, const struct window *win, bool mirror, float *item)
{
    const struct window_image *im = &p->images[win->image];
    struct image img = { 0 }, roi = { 0 }, warped = { 0 };
    int rc = load_image(p, im, &img);
    if (rc)
        return rc;
    const int crop = p->crop;
    int x1 = win->x1, y1 = win->y1, x2 = win->x2, y2 = win->y2;
    int pad_w = 0, pad_h = 0, out_w = crop, out_h = crop;
    if (p->context_pad > 0 || p->square) {
        /* Grow the region so that, warped to crop x crop, it has context_pad
         * pixels of context on each side; clip it to the image and remember
         * how much was cut off, which becomes zero padding. */
        float context_scale = (float)crop / (float)(crop - 2 * p->context_pad);
        float half_h = (float)((double)(y2 - y1 + 1) / 2.0);
        float half_w = (float)((double)(x2 - x1 + 1) / 2.0);
        float cx = (float)x1 + half_w, cy = (float)y1 + half_h;
        if (p->square) {
            if (half_h > half_w)
                half_w = half_h;
            else
                half_h = half_w;
        }
        x1 = (int)roundf(cx - half_w * context_scale);
        x2 = (int)roundf(cx + half_w * context_scale);
        y1 = (int)roundf(cy - half_h * context_scale);
        y2 = (int)roundf(cy + half_h * context_scale);
        int unclipped_h = y2 - y1 + 1, unclipped_w = x2 - x1 + 1;
        int pad_x1 = x1 < 0 ? -x1 : 0, pad_y1 = y1 < 0 ? -y1 : 0;
        int pad_x2 = x2 - img.width + 1 > 0 ? x2 - img.width + 1 : 0;
        int pad_y2 = y2 - img.height + 1 > 0 ? y2 - img.height + 1 : 0;
        x1 += pad_x1;
        x2 -= pad_x2;
        y1 += pad_y1;
        y2 -= pad_y2;
        float scale_x = (float)crop / (float)unclipped_w, scale_y = (float)crop / (float)unclipped_h;
        out_w = (int)roundf((float)(x2 - x1 + 1) * scale_x);
        out_h = (int)roundf((float)(y2 - y1 + 1) * scale_y);
        pad_x1 = (int)roundf((float)pad_x1 * scale_x);
        pad_x2 = (int)roundf((float)pad_x2 * scale_x);
        pad_y1 = (int)roundf((float)pad_y1 * scale_y);
        pad_h = pad_y1;
        pad_w = mirror ? pad_x2 : pad_x1; /* the padding is mirrored too */
        if (pad_h + out_h > crop)
            out_h = crop - pad_h;
        if (pad_w + out_w > crop)
            out_w = crop - pad_w;
    }
    if (x1 < 0 || y1 < 0 || x2 >= img.width || y2 >= img.height || x2 < x1 || y2 < y1) {
        rc = err_set(CREMA_ERR_INVALID, "%s:%zu: window (%d, %d)-(%d, %d) is outside image %s (%dx%d)", p->source,
                     win->line, win->x1, win->y1, win->x2, win->y2, im->path, img.width, img.height);
        goto done;
    }
    if (out_w <= 0 || out_h <= 0)
        goto done; /* nothing of the window survives the warp: all padding */
    if ((rc = crop_image(&img, x1, y1, x2 - x1 + 1, y2 - y1 + 1, &roi)) ||
        (rc = image_resize(&roi, out_h, out_w, &warped)))
        goto done;
    const struct transformer *tf = &p->tf;
    int mean_off = tf->mean ? (tf->mean_w - crop) / 2 : 0;
    for (int c = 0; c < warped.channels; c++) {
        float mv = tf->n_mean_values == 0 ? 0.f : tf->mean_values[tf->n_mean_values == 1 ? 0 : c];
        for (int y = 0; y < out_h; y++) {
            const uint8_t *src = warped.data + ((size_t)c * (size_t)out_h + (size_t)y) * (size_t)out_w;
            float *dst = item + ((size_t)c * (size_t)crop + (size_t)(y + pad_h)) * (size_t)crop + (size_t)pad_w;
            const float *mean = tf->mean ? tf->mean + ((size_t)c * (size_t)tf->mean_h + (size_t)(y + mean_off + pad_h)) *
                                                          (size_t)tf->mean_w + (size_t)(mean_off + pad_w)
                                         : NULL;
            for (int x = 0; x < out_w; x++) {
                float v = (float)src[mirror ? out_w - 1 - x : x];
                dst[x] = mean ? (v - mean[x]) * p->scale : (v - mv) * p->scale;
            }
        }
    }
done:
    image_free(&img);
    image_free(&roi);
    image_free(&warped);
    return rc;
}

static int fill_batch(void *ctx, struct prefetch_batch *b)
{
    struct window_priv *p = ctx;
    const int batch_size = p->src.batch_size;
    struct rng *rng = &p->src.at.rng;
    int rc = prefetch_reserve(b, batch_size, p->channels, p->crop, p->crop);
    if (rc)
        return rc;
    size_t item = (size_t)p->channels * (size_t)p->crop * (size_t)p->crop;
    memset(b->data, 0, item * (size_t)batch_size * sizeof(float));
    int num_fg = (int)((float)batch_size * p->fg_fraction);
    int counts[2] = { batch_size - num_fg, num_fg };
    int k = 0;
    /* background windows first, then foreground, as Caffe fills the batch */
    for (int is_fg = 0; is_fg < 2; is_fg++) {
        for (int j = 0; j < counts[is_fg]; j++, k++) {
            uint32_t r = rng_u32(rng);
            const struct window *win = is_fg ? &p->fg[r % p->n_fg] : &p->bg[r % p->n_bg];
            bool mirror = p->mirror && rng_u32(rng) % 2;
            if ((rc = warp_window(p, win, mirror, b->data + item * (size_t)k)))
                return rc;
            b->label[k] = (float)win->label;
        }
    }
    return CREMA_OK;
}

/* ---- the layer ---- */

static void window_free(struct window_priv *p)
{
    data_source_close(&p->src);
    for (size_t i = 0; i < p->n_images; i++) {
        free(p->images[i].path);
        free(p->images[i].bytes);
    }
    free(p->images);
    free(p->fg);
    free(p->bg);
    transformer_free(&p->tf);
    free(p);
}

static int window_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    static const Caffe__WindowDataParameter def = CAFFE__WINDOW_DATA_PARAMETER__INIT;
    static const Caffe__TransformationParameter tdef = CAFFE__TRANSFORMATION_PARAMETER__INIT;
    const Caffe__WindowDataParameter *wp = l->param->window_data_param ? l->param->window_data_param : &def;
    const Caffe__TransformationParameter *tp = l->param->transform_param ? l->param->transform_param : &tdef;
    struct window_priv *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = p;
    p->source = wp->source ? wp->source : "";
    if (!*p->source)
        return err_set(CREMA_ERR_INVALID, "window_data_param.source is empty");
    int rc = data_source_init(&p->src, "window_data_param.batch_size", wp->batch_size, 0);
    if (rc)
        return rc;
    /* As Caffe: crop size, mirror and mean come from transform_param; the
     * scale from window_data_param. */
    p->crop = (int)tp->crop_size;
    if (p->crop <= 0 || tp->crop_size > IMAGE_MAX_SIDE)
        return err_set(CREMA_ERR_INVALID, "WindowData needs transform_param.crop_size > 0 (the warped window size)%s",
                       wp->crop_size ? "; window_data_param.crop_size is not read, as in Caffe" : "");
    if (wp->context_pad > 0 && 2 * (long)wp->context_pad >= p->crop)
        return err_set(CREMA_ERR_INVALID, "window_data_param.context_pad %u leaves nothing of a %d crop",
                       wp->context_pad, p->crop);
    p->context_pad = (int)wp->context_pad;
    const char *mode = wp->crop_mode ? wp->crop_mode : "warp";
    if (strcmp(mode, "warp") != 0 && strcmp(mode, "square") != 0)
        return err_set(CREMA_ERR_INVALID, "window_data_param.crop_mode \"%s\": warp or square", mode);
    p->square = strcmp(mode, "square") == 0;
    p->mirror = tp->mirror;
    p->scale = wp->scale;
    p->fg_fraction = wp->fg_fraction;
    if (!(wp->fg_fraction >= 0 && wp->fg_fraction <= 1))
        return err_set(CREMA_ERR_INVALID, "window_data_param.fg_fraction %g must be in [0, 1]", wp->fg_fraction);
    rc = transformer_init(&p->tf, tp, l->phase);
    if (rc)
        return rc;
    rc = parse_window_file(p, wp, wp->root_folder ? wp->root_folder : "", wp->cache_images);
    if (rc)
        return rc;
    int num_fg = (int)((float)p->src.batch_size * p->fg_fraction);
    if (num_fg > 0 && p->n_fg == 0)
        return err_set(CREMA_ERR_INVALID, "%s: no foreground windows (overlap >= fg_threshold %g) to sample from",
                       p->source, wp->fg_threshold);
    if (num_fg < p->src.batch_size && p->n_bg == 0)
        return err_set(CREMA_ERR_INVALID, "%s: no background windows (overlap < bg_threshold %g) to sample from",
                       p->source, wp->bg_threshold);
    const struct transformer *tf = &p->tf;
    if (tf->mean) {
        int off = (tf->mean_w - p->crop) / 2;
        if (tf->mean_c != p->channels || tf->mean_w < p->crop || off + p->crop > tf->mean_h)
            return err_set(CREMA_ERR_SHAPE, "transform_param.mean_file is %dx%dx%d: too small for %d channels cropped to %d",
                           tf->mean_c, tf->mean_h, tf->mean_w, p->channels, p->crop);
    }
    if (tf->n_mean_values > 1 && tf->n_mean_values != p->channels)
        return err_set(CREMA_ERR_SHAPE, "transform_param: %d mean_value given for %d channels (give 1 or %d)",
                       tf->n_mean_values, p->channels, p->channels);
    data_source_seed(&p->src, l);
    rc = tensor_reshape4(top[0], p->src.batch_size, p->channels, p->crop, p->crop);
    if (!rc)
        rc = tensor_reshape(top[1], 1, &p->src.batch_size);
    if (rc)
        return rc;
    return data_source_prefetch(&p->src, l, fill_batch, p);
}

static int window_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    struct window_priv *p = l->priv;
    return data_source_forward_on(&p->src, top[0], top[1], l->be);
}

static void window_destroy(struct layer *l)
{
    if (l->priv)
        window_free(l->priv);
    l->priv = NULL;
}

/* Windows are sampled at random from all of the file on every rank: no
 * share, and no position to resume from. */
static const struct data_source_ops window_data_source = { .set_shard = NULL };

const struct layer_kind window_data_layer = {
    .type = "WindowData",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 2,
    .max_tops = 2,
    .setup = window_setup,
    .forward = window_forward,
    .forward_dev = window_forward, /* the prefetch thread uploads each batch */
    .runs_on = data_source_runs_on,
    .destroy = window_destroy,
    .source = &window_data_source,
};
