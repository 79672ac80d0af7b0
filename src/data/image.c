/* JPEG and PNG in and out of planar BGR uint8, and bilinear resizing.
 * libjpeg and libpng report errors by longjmp; each decoder keeps what it
 * allocated in a context struct so the jump cannot leak it. */
#include "data/image.h"
#include "util/err.h"
#include "util/io.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void image_free(struct image *img)
{
    if (!img)
        return;
    free(img->data);
    img->data = NULL;
    img->channels = img->height = img->width = 0;
}

static int image_alloc(struct image *img, int c, int h, int w)
{
    if (h <= 0 || w <= 0 || h > IMAGE_MAX_SIDE || w > IMAGE_MAX_SIDE ||
        (size_t)h * (size_t)w > IMAGE_MAX_PIXELS)
        return err_set(CREMA_ERR_INVALID, "image size %dx%d out of range", w, h);
    img->data = malloc((size_t)c * (size_t)h * (size_t)w);
    if (!img->data)
        return err_set(CREMA_ERR_NOMEM, "out of memory for a %dx%dx%d image", c, h, w);
    img->channels = c;
    img->height = h;
    img->width = w;
    return CREMA_OK;
}

/* Interleaved rows (HWC) to planar CHW. */
static void hwc_to_chw(const uint8_t *src, struct image *img)
{
    int c = img->channels;
    size_t plane = (size_t)img->height * (size_t)img->width;
    for (size_t p = 0; p < plane; p++)
        for (int k = 0; k < c; k++)
            img->data[(size_t)k * plane + p] = src[p * (size_t)c + (size_t)k];
}

/* ---- JPEG ---- */

struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    uint8_t *hwc;
};

static void jpeg_fail(j_common_ptr cinfo)
{
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->msg);
    longjmp(ctx->jump, 1);
}

/* Warnings (corrupt-but-decodable data) are not printed: a library must
 * not write to stderr behind its caller. */
static void jpeg_quiet(j_common_ptr cinfo)
{
    (void)cinfo;
}

static int jpeg_decode(const uint8_t *bytes, size_t len, enum image_color color, struct image *out)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_fail;
    ctx.pub.output_message = jpeg_quiet;
    if (setjmp(ctx.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(ctx.hwc);
        image_free(out);
        return err_set(CREMA_ERR_PARSE, "bad JPEG: %s", ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    bool gray = color == IMAGE_GRAY || (color == IMAGE_NATIVE && cinfo.num_components == 1);
    bool cmyk = !gray && (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK);
    cinfo.out_color_space = gray ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_EXT_BGR;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, oc = cinfo.output_components;
    int c = gray ? 1 : 3;
    if (image_alloc(out, c, h, w)) {
        jpeg_destroy_decompress(&cinfo);
        return err_prefix(CREMA_ERR_INVALID, "JPEG");
    }
    ctx.hwc = malloc((size_t)w * (size_t)h * (size_t)oc);
    if (!ctx.hwc) {
        jpeg_destroy_decompress(&cinfo);
        image_free(out);
        return err_set(CREMA_ERR_NOMEM, "out of memory decoding a JPEG");
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = ctx.hwc + (size_t)cinfo.output_scanline * (size_t)w * (size_t)oc;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (cmyk) {
        /* Adobe writes inverted CMYK; each ink scales by the key. */
        size_t n = (size_t)w * (size_t)h;
        for (size_t p = 0; p < n; p++) {
            const uint8_t *s = ctx.hwc + p * 4;
            uint8_t *d = ctx.hwc + p * 3;
            int k = s[3];
            uint8_t b = (uint8_t)(s[2] * k / 255), g = (uint8_t)(s[1] * k / 255), r = (uint8_t)(s[0] * k / 255);
            d[0] = b;
            d[1] = g;
            d[2] = r;
        }
    }
    hwc_to_chw(ctx.hwc, out);
    free(ctx.hwc);
    return CREMA_OK;
}

/* ---- PNG ---- */

struct png_ctx {
    const uint8_t *bytes;
    size_t len, pos;
    char msg[200];
    uint8_t *hwc;
    png_bytep *rows;
    /* writing */
    uint8_t *obuf;
    size_t olen, ocap;
    bool oom;
};

static void png_fail(png_structp png, png_const_charp msg)
{
    struct png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_mem_read(png_structp png, png_bytep dst, size_t n)
{
    struct png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->len - ctx->pos)
        png_error(png, "truncated PNG data");
    memcpy(dst, ctx->bytes + ctx->pos, n);
    ctx->pos += n;
}

static int png_decode(const uint8_t *bytes, size_t len, enum image_color color, struct image *out)
{
    struct png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.bytes = bytes;
    ctx.len = len;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_fail, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return err_set(CREMA_ERR_NOMEM, "out of memory decoding a PNG");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx.hwc);
        free(ctx.rows);
        image_free(out);
        return err_set(CREMA_ERR_PARSE, "bad PNG: %s", ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_mem_read);
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    bool src_gray = !(type & PNG_COLOR_MASK_COLOR) && type != PNG_COLOR_TYPE_PALETTE;
    bool gray = color == IMAGE_GRAY || (color == IMAGE_NATIVE && src_gray);
    if (depth == 16)
        png_set_strip_16(png);
    if (depth < 8 && src_gray)
        png_set_expand_gray_1_2_4_to_8(png);
    else if (depth < 8)
        png_set_packing(png);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    png_set_strip_alpha(png);
    if (gray && !src_gray)
        png_set_rgb_to_gray(png, 1, 0.299, 0.587);
    if (!gray && src_gray)
        png_set_gray_to_rgb(png);
    if (!gray)
        png_set_bgr(png);
    png_read_update_info(png, info);
    int c = gray ? 1 : 3;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * (size_t)c)
        png_error(png, "unexpected row layout after conversion");
    if (image_alloc(out, c, (int)h, (int)w)) {
        png_destroy_read_struct(&png, &info, NULL);
        return err_prefix(CREMA_ERR_INVALID, "PNG");
    }
    ctx.hwc = malloc(rowbytes * h);
    ctx.rows = malloc(sizeof(png_bytep) * h);
    if (!ctx.hwc || !ctx.rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        ctx.rows[y] = ctx.hwc + (size_t)y * rowbytes;
    png_read_image(png, ctx.rows);
    png_destroy_read_struct(&png, &info, NULL);
    hwc_to_chw(ctx.hwc, out);
    free(ctx.hwc);
    free(ctx.rows);
    return CREMA_OK;
}

int image_decode(const uint8_t *bytes, size_t len, enum image_color color, struct image *out)
{
    memset(out, 0, sizeof *out);
    if (len >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return jpeg_decode(bytes, len, color, out);
    if (len >= 8 && png_sig_cmp(bytes, 0, 8) == 0)
        return png_decode(bytes, len, color, out);
    return err_set(CREMA_ERR_PARSE, "not a JPEG or PNG image (%zu bytes)", len);
}

int image_read(const char *path, enum image_color color, struct image *out)
{
    uint8_t *bytes;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = io_read_file(path, (size_t)1 << 31, &bytes, &len);
    if (rc)
        return rc;
    rc = image_decode(bytes, len, color, out);
    free(bytes);
    if (rc)
        return err_prefix(rc, "%s", path);
    return CREMA_OK;
}

/* ---- encoding ---- */

static uint8_t *chw_to_hwc(const struct image *img)
{
    size_t plane = (size_t)img->height * (size_t)img->width;
    uint8_t *hwc = malloc(plane * (size_t)img->channels);
    if (!hwc)
        return NULL;
    for (size_t p = 0; p < plane; p++)
        for (int k = 0; k < img->channels; k++)
            hwc[p * (size_t)img->channels + (size_t)k] = img->data[(size_t)k * plane + p];
    return hwc;
}

static int jpeg_encode(const struct image *img, uint8_t **out, size_t *len)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    unsigned char *buf = NULL;
    unsigned long blen = 0;
    ctx.hwc = chw_to_hwc(img);
    if (!ctx.hwc)
        return err_set(CREMA_ERR_NOMEM, "out of memory encoding a JPEG");
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_fail;
    ctx.pub.output_message = jpeg_quiet;
    if (setjmp(ctx.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(ctx.hwc);
        return err_set(CREMA_ERR_INVALID, "JPEG encoding: %s", ctx.msg);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buf, &blen);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = img->channels;
    cinfo.in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_EXT_BGR;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = ctx.hwc + (size_t)cinfo.next_scanline * (size_t)img->width * (size_t)img->channels;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(ctx.hwc);
    *out = malloc(blen ? blen : 1);
    if (!*out) {
        free(buf);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    memcpy(*out, buf, blen);
    free(buf);
    *len = blen;
    return CREMA_OK;
}

static void png_mem_write(png_structp png, png_bytep src, size_t n)
{
    struct png_ctx *ctx = png_get_io_ptr(png);
    if (ctx->olen + n > ctx->ocap) {
        size_t cap = ctx->ocap ? ctx->ocap : 4096;
        while (cap < ctx->olen + n)
            cap *= 2;
        uint8_t *b = realloc(ctx->obuf, cap);
        if (!b)
            png_error(png, "out of memory");
        ctx->obuf = b;
        ctx->ocap = cap;
    }
    memcpy(ctx->obuf + ctx->olen, src, n);
    ctx->olen += n;
}

static void png_mem_flush(png_structp png)
{
    (void)png;
}

static int png_encode(const struct image *img, uint8_t **out, size_t *len)
{
    struct png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_fail, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return err_set(CREMA_ERR_NOMEM, "out of memory encoding a PNG");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(ctx.hwc);
        free(ctx.rows);
        free(ctx.obuf);
        return err_set(CREMA_ERR_INVALID, "PNG encoding: %s", ctx.msg);
    }
    png_set_write_fn(png, &ctx, png_mem_write, png_mem_flush);
    png_set_compression_level(png, 1);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (img->channels == 3)
        png_set_bgr(png);
    ctx.hwc = chw_to_hwc(img);
    ctx.rows = malloc(sizeof(png_bytep) * (size_t)img->height);
    if (!ctx.hwc || !ctx.rows)
        png_error(png, "out of memory");
    for (int y = 0; y < img->height; y++)
        ctx.rows[y] = ctx.hwc + (size_t)y * (size_t)img->width * (size_t)img->channels;
    png_write_image(png, ctx.rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(ctx.hwc);
    free(ctx.rows);
    *out = ctx.obuf;
    *len = ctx.olen;
    return CREMA_OK;
}

int image_encode(const struct image *img, const char *type, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (img->channels != 1 && img->channels != 3)
        return err_set(CREMA_ERR_INVALID, "cannot encode an image of %d channels", img->channels);
    if (strcasecmp(type, "jpg") == 0 || strcasecmp(type, "jpeg") == 0)
        return jpeg_encode(img, out, len);
    if (strcasecmp(type, "png") == 0)
        return png_encode(img, out, len);
    return err_set(CREMA_ERR_UNSUPPORTED, "unknown image encoding \"%s\" (jpg or png)", type);
}

/* ---- resizing ---- */

/* Fixed-point weights as OpenCV's uint8 INTER_LINEAR path uses: 11 bits per
 * direction, source coordinate (d + 0.5) * scale - 0.5 clamped at the edges. */
#define RESIZE_BITS 11
#define RESIZE_ONE (1 << RESIZE_BITS)

static void resize_taps(int dsize, int ssize, int *idx, int *w0)
{
    double scale = (double)ssize / dsize;
    for (int d = 0; d < dsize; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0) {
            f = 0;
            s = 0;
        }
        if (s >= ssize - 1) {
            f = 0;
            s = ssize - 1;
        }
        idx[d] = s;
        w0[d] = (int)lrintf((1.f - f) * RESIZE_ONE);
    }
}

int image_resize(const struct image *in, int height, int width, struct image *out)
{
    memset(out, 0, sizeof *out);
    int rc = image_alloc(out, in->channels, height, width);
    if (rc)
        return rc;
    int *xi = malloc(sizeof(int) * (size_t)width * 2), *yi = malloc(sizeof(int) * (size_t)height * 2);
    int *row = malloc(sizeof(int) * (size_t)width * 2);
    if (!xi || !yi || !row) {
        free(xi);
        free(yi);
        free(row);
        image_free(out);
        return err_set(CREMA_ERR_NOMEM, "out of memory resizing");
    }
    int *xw = xi + width, *yw = yi + height;
    resize_taps(width, in->width, xi, xw);
    resize_taps(height, in->height, yi, yw);
    size_t iplane = (size_t)in->height * (size_t)in->width, oplane = (size_t)height * (size_t)width;
    for (int c = 0; c < in->channels; c++) {
        const uint8_t *src = in->data + (size_t)c * iplane;
        uint8_t *dst = out->data + (size_t)c * oplane;
        for (int y = 0; y < height; y++) {
            int y0 = yi[y], y1 = y0 + 1 < in->height ? y0 + 1 : y0;
            int *r0 = row, *r1 = row + width;
            for (int x = 0; x < width; x++) {
                int x0 = xi[x], x1 = x0 + 1 < in->width ? x0 + 1 : x0;
                int a = xw[x], b = RESIZE_ONE - a;
                const uint8_t *s0 = src + (size_t)y0 * (size_t)in->width, *s1 = src + (size_t)y1 * (size_t)in->width;
                r0[x] = s0[x0] * a + s0[x1] * b;
                r1[x] = s1[x0] * a + s1[x1] * b;
            }
            int a = yw[y], b = RESIZE_ONE - a;
            for (int x = 0; x < width; x++) {
                long long v = ((long long)r0[x] * a + (long long)r1[x] * b + (1LL << (2 * RESIZE_BITS - 1))) >>
                              (2 * RESIZE_BITS);
                dst[(size_t)y * (size_t)width + (size_t)x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(xi);
    free(yi);
    free(row);
    return CREMA_OK;
}
