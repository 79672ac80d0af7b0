/* Line charts drawn into an RGB canvas and encoded with libpng. */
#include "util/plot.h"
#include "util/err.h"
#include "util/io.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 5x7 glyphs, one byte per row, bit 4 the leftmost column. */
struct glyph {
    char c;
    uint8_t rows[7];
};

static const struct glyph font[] = {
    { '0', { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E } }, { '1', { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E } },
    { '2', { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F } }, { '3', { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E } },
    { '4', { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 } }, { '5', { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E } },
    { '6', { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E } }, { '7', { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 } },
    { '8', { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E } }, { '9', { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C } },
    { '.', { 0, 0, 0, 0, 0, 0x0C, 0x0C } },                { '-', { 0, 0, 0, 0x1F, 0, 0, 0 } },
    { '+', { 0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0 } },       { '/', { 0, 0x01, 0x02, 0x04, 0x08, 0x10, 0 } },
    { ':', { 0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0 } },          { '_', { 0, 0, 0, 0, 0, 0, 0x1F } },
    { '#', { 0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A } }, { '(', { 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02 } },
    { ')', { 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08 } }, { ' ', { 0, 0, 0, 0, 0, 0, 0 } },
    { 'a', { 0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F } },       { 'b', { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E } },
    { 'c', { 0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E } },       { 'd', { 0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F } },
    { 'e', { 0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E } },       { 'f', { 0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08 } },
    { 'g', { 0, 0, 0x0F, 0x11, 0x0F, 0x01, 0x0E } },       { 'h', { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11 } },
    { 'i', { 0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E } },    { 'j', { 0x02, 0, 0x06, 0x02, 0x02, 0x12, 0x0C } },
    { 'k', { 0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12 } }, { 'l', { 0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E } },
    { 'm', { 0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11 } },       { 'n', { 0, 0, 0x16, 0x19, 0x11, 0x11, 0x11 } },
    { 'o', { 0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E } },       { 'p', { 0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10 } },
    { 'q', { 0, 0, 0x0D, 0x13, 0x0F, 0x01, 0x01 } },       { 'r', { 0, 0, 0x16, 0x19, 0x10, 0x10, 0x10 } },
    { 's', { 0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E } },       { 't', { 0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06 } },
    { 'u', { 0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D } },       { 'v', { 0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04 } },
    { 'w', { 0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A } },       { 'x', { 0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11 } },
    { 'y', { 0, 0, 0x11, 0x11, 0x0F, 0x01, 0x0E } },       { 'z', { 0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F } },
};

#define SCALE 2
#define CHAR_W (6 * SCALE)
#define CHAR_H (7 * SCALE)

struct canvas {
    int w, h;
    uint8_t *px; /* RGB rows */
};

static void put(struct canvas *c, int x, int y, uint32_t rgb)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = (uint8_t)(rgb >> 16);
    p[1] = (uint8_t)(rgb >> 8);
    p[2] = (uint8_t)rgb;
}

static void rect(struct canvas *c, int x0, int y0, int x1, int y1, uint32_t rgb)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, rgb);
}

static void line(struct canvas *c, int x0, int y0, int x1, int y1, uint32_t rgb, int thick)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        rect(c, x0 - thick / 2, y0 - thick / 2, x0 + (thick - 1) / 2, y0 + (thick - 1) / 2, rgb);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

static const uint8_t *glyph_rows(char ch)
{
    static const uint8_t box[7] = { 0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F };
    if (ch >= 'A' && ch <= 'Z')
        ch = (char)(ch - 'A' + 'a');
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == ch)
            return font[i].rows;
    return box;
}

static int text_width(const char *s)
{
    return (int)strlen(s) * CHAR_W - SCALE;
}

static void text(struct canvas *c, int x, int y, const char *s, uint32_t rgb)
{
    for (; *s; s++, x += CHAR_W) {
        const uint8_t *rows = glyph_rows(*s);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (rows[r] & (0x10 >> b))
                    rect(c, x + b * SCALE, y + r * SCALE, x + b * SCALE + SCALE - 1, y + r * SCALE + SCALE - 1, rgb);
    }
}

/* Vertical text, bottom to top, for the y axis titles. */
static void text_up(struct canvas *c, int x, int y, const char *s, uint32_t rgb)
{
    for (; *s; s++, y -= CHAR_W) {
        const uint8_t *rows = glyph_rows(*s);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (rows[r] & (0x10 >> b))
                    rect(c, x + r * SCALE, y - b * SCALE - SCALE + 1, x + r * SCALE + SCALE - 1, y - b * SCALE, rgb);
    }
}

/* A 1-2-5 step giving about `want` intervals over [lo, hi]. */
static double nice_step(double lo, double hi, int want)
{
    double raw = (hi - lo) / want;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void tick_label(char *out, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-4))
        snprintf(out, n, "%.2g", v);
    else
        snprintf(out, n, "%.*f", decimals, v);
}

struct range {
    double lo, hi;
    bool used;
};

static void range_of(const struct plot_curve *cv, int n, int axis, bool xs, struct range *r)
{
    r->used = false;
    for (int i = 0; i < n; i++) {
        if (!xs && cv[i].right_axis != axis)
            continue;
        const double *v = xs ? cv[i].x : cv[i].y;
        for (size_t k = 0; k < cv[i].n; k++) {
            if (!isfinite(v[k]))
                continue;
            if (!r->used)
                r->lo = r->hi = v[k];
            r->lo = fmin(r->lo, v[k]);
            r->hi = fmax(r->hi, v[k]);
            r->used = true;
        }
    }
    if (!r->used)
        return;
    if (r->hi == r->lo) {
        double pad = r->lo != 0 ? fabs(r->lo) * 0.1 : 1;
        r->lo -= pad;
        r->hi += pad;
    }
    /* widen to whole steps so the ticks sit on the frame */
    double st = nice_step(r->lo, r->hi, 5);
    r->lo = floor(r->lo / st) * st;
    r->hi = ceil(r->hi / st) * st;
}

struct png_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed;
};

static void png_buf_write(png_structp png, png_bytep d, png_size_t n)
{
    struct png_buf *b = png_get_io_ptr(png);
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *g = realloc(b->data, cap);
        if (!g) {
            b->failed = true;
            return;
        }
        b->data = g;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
}

static void png_buf_flush(png_structp png)
{
    (void)png;
}

static int encode(const struct canvas *c, struct png_buf *b)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc((size_t)c->h * sizeof *rows);
    if (!png || !info || !rows) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(rows);
        return err_set(CREMA_ERR_NOMEM, "out of memory encoding the PNG");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return err_set(CREMA_ERR_IO, "libpng failed to encode the plot");
    }
    png_set_write_fn(png, b, png_buf_write, png_buf_flush);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < c->h; y++)
        rows[y] = c->px + (size_t)y * (size_t)c->w * 3;
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b->failed ? err_set(CREMA_ERR_NOMEM, "out of memory encoding the PNG") : 0;
}

#define GRID 0xE4E4E4
#define INK 0x202020

int plot_png(const char *path, int width, int height, const char *xlabel, const char *left_label,
             const char *right_label, const struct plot_curve *cv, int n)
{
    if (width < 200 || height < 150 || width > 8000 || height > 8000)
        return err_set(CREMA_ERR_INVALID, "plot size %dx%d: want 200x150 to 8000x8000", width, height);
    struct range xr, yl, yr;
    range_of(cv, n, 0, true, &xr);
    range_of(cv, n, 0, false, &yl);
    range_of(cv, n, 1, false, &yr);
    if (!xr.used)
        return err_set(CREMA_ERR_INVALID, "nothing to plot: no finite values");
    struct canvas c = { width, height, malloc((size_t)width * (size_t)height * 3) };
    if (!c.px)
        return err_set(CREMA_ERR_NOMEM, "out of memory for a %dx%d plot", width, height);
    memset(c.px, 0xff, (size_t)width * (size_t)height * 3);
    const int left = 110, right = yr.used ? width - 110 : width - 30, top = 50, bottom = height - 70;
    /* legend across the top */
    int lx = left;
    for (int i = 0; i < n; i++) {
        line(&c, lx, 24, lx + 24, 24, cv[i].rgb, 3);
        text(&c, lx + 32, 24 - CHAR_H / 2, cv[i].label, INK);
        lx += 32 + text_width(cv[i].label) + 36;
    }
    double xs = nice_step(xr.lo, xr.hi, 6);
    for (double v = xr.lo; v <= xr.hi + xs * 1e-6; v += xs) {
        int x = left + (int)lround((v - xr.lo) / (xr.hi - xr.lo) * (right - left));
        line(&c, x, top, x, bottom, GRID, 1);
        line(&c, x, bottom, x, bottom + 6, INK, 1);
        char lab[32];
        tick_label(lab, sizeof lab, v, xs);
        text(&c, x - text_width(lab) / 2, bottom + 12, lab, INK);
    }
    text(&c, (left + right) / 2 - text_width(xlabel) / 2, height - 26, xlabel, INK);
    const struct range *axes[2] = { &yl, &yr };
    const char *titles[2] = { left_label, right_label };
    for (int a = 0; a < 2; a++) {
        const struct range *r = axes[a];
        if (!r->used)
            continue;
        double st = nice_step(r->lo, r->hi, 5);
        int ax = a == 0 ? left : right;
        for (double v = r->lo; v <= r->hi + st * 1e-6; v += st) {
            int y = bottom - (int)lround((v - r->lo) / (r->hi - r->lo) * (bottom - top));
            if (a == 0)
                line(&c, left, y, right, y, GRID, 1);
            line(&c, a == 0 ? ax - 6 : ax, y, a == 0 ? ax : ax + 6, y, INK, 1);
            char lab[32];
            tick_label(lab, sizeof lab, v, st);
            int tx = a == 0 ? ax - 10 - text_width(lab) : ax + 10;
            text(&c, tx, y - CHAR_H / 2, lab, INK);
        }
        int tx = a == 0 ? 8 : width - 8 - CHAR_H;
        text_up(&c, tx, (top + bottom) / 2 + text_width(titles[a]) / 2, titles[a], INK);
    }
    /* frame */
    line(&c, left, top, right, top, INK, 1);
    line(&c, left, bottom, right, bottom, INK, 1);
    line(&c, left, top, left, bottom, INK, 1);
    line(&c, right, top, right, bottom, INK, 1);
    for (int i = 0; i < n; i++) {
        const struct range *r = axes[cv[i].right_axis ? 1 : 0];
        int px = 0, py = 0;
        bool have = false;
        for (size_t k = 0; k < cv[i].n; k++) {
            if (!isfinite(cv[i].x[k]) || !isfinite(cv[i].y[k])) {
                have = false;
                continue;
            }
            int x = left + (int)lround((cv[i].x[k] - xr.lo) / (xr.hi - xr.lo) * (right - left));
            int y = bottom - (int)lround((cv[i].y[k] - r->lo) / (r->hi - r->lo) * (bottom - top));
            if (have)
                line(&c, px, py, x, y, cv[i].rgb, 2);
            if (cv[i].n <= 60)
                rect(&c, x - 3, y - 3, x + 3, y + 3, cv[i].rgb);
            px = x;
            py = y;
            have = true;
        }
    }
    struct png_buf b = { 0 };
    int rc = encode(&c, &b);
    free(c.px);
    if (!rc)
        rc = io_write_atomic(path, b.data, b.len);
    free(b.data);
    return rc;
}
