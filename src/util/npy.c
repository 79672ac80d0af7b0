/* .npy reading and writing (format version 1.0 written; 1.0-3.0 read). */
#include "util/npy.h"
#include "util/err.h"
#include "util/io.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Finds 'key': in the header dict and returns a pointer past the colon. */
static const char *find_key(const char *h, const char *end, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = h; p + kl + 2 < end; p++) {
        if ((*p == '\'' || *p == '"') && strncmp(p + 1, key, kl) == 0 && p[kl + 1] == *p) {
            const char *q = skip_ws(p + kl + 2, end);
            if (q < end && *q == ':')
                return skip_ws(q + 1, end);
        }
    }
    return NULL;
}

int npy_parse(const char *path, const unsigned char *buf, size_t len, struct npy_array *out)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return err_set(CREMA_ERR_PARSE, "%s: not a .npy file (bad magic)", path);
    int major = buf[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)buf[8] | ((size_t)buf[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return err_set(CREMA_ERR_PARSE, "%s: truncated .npy header", path);
        hlen = (size_t)buf[8] | ((size_t)buf[9] << 8) | ((size_t)buf[10] << 16) | ((size_t)buf[11] << 24);
        off = 12;
    } else {
        return err_set(CREMA_ERR_PARSE, "%s: unsupported .npy version %d", path, major);
    }
    if (hlen > len - off)
        return err_set(CREMA_ERR_PARSE, "%s: truncated .npy header", path);
    const char *h = (const char *)buf + off, *hend = h + hlen;
    const char *descr = find_key(h, hend, "descr");
    const char *fortran = find_key(h, hend, "fortran_order");
    const char *shape = find_key(h, hend, "shape");
    if (!descr || !fortran || !shape)
        return err_set(CREMA_ERR_PARSE, "%s: .npy header lacks descr, fortran_order or shape", path);
    if (strncmp(fortran, "False", 5) != 0)
        return err_set(CREMA_ERR_UNSUPPORTED, "%s: fortran_order arrays are not supported; save in C order", path);
    char dt[16] = { 0 };
    if (*descr != '\'' && *descr != '"')
        return err_set(CREMA_ERR_PARSE, "%s: bad descr in .npy header", path);
    for (int i = 0; i < 15 && descr + 1 + i < hend && descr[1 + i] != *descr; i++)
        dt[i] = descr[1 + i];
    int kind; /* 0 f4, 1 f8, 2 i4, 3 i8, 4 u1, 5 i1 */
    size_t esize;
    if (!strcmp(dt, "<f4") || !strcmp(dt, "=f4")) { kind = 0; esize = 4; }
    else if (!strcmp(dt, "<f8") || !strcmp(dt, "=f8")) { kind = 1; esize = 8; }
    else if (!strcmp(dt, "<i4") || !strcmp(dt, "=i4")) { kind = 2; esize = 4; }
    else if (!strcmp(dt, "<i8") || !strcmp(dt, "=i8")) { kind = 3; esize = 8; }
    else if (!strcmp(dt, "|u1")) { kind = 4; esize = 1; }
    else if (!strcmp(dt, "|i1")) { kind = 5; esize = 1; }
    else
        return err_set(CREMA_ERR_UNSUPPORTED, "%s: dtype %s is not supported (float32, float64, int32, int64, uint8, int8 are)", path, dt);
    if (*shape != '(')
        return err_set(CREMA_ERR_PARSE, "%s: bad shape in .npy header", path);
    const char *p = shape + 1;
    size_t count = 1;
    int na = 0;
    for (;;) {
        p = skip_ws(p, hend);
        if (p >= hend)
            return err_set(CREMA_ERR_PARSE, "%s: unterminated shape in .npy header", path);
        if (*p == ')')
            break;
        char *e;
        long long v = strtoll(p, &e, 10);
        if (e == p || v < 0 || v > INT32_MAX || na >= NPY_MAX_AXES)
            return err_set(CREMA_ERR_PARSE, "%s: bad dimension in .npy shape", path);
        if (v && count > ((size_t)1 << 40) / (size_t)v)
            return err_set(CREMA_ERR_PARSE, "%s: .npy array too large", path);
        out->shape[na++] = (int)v;
        count *= (size_t)v;
        p = skip_ws(e, hend);
        if (p < hend && *p == ',')
            p++;
    }
    size_t data_off = off + hlen;
    if ((len - data_off) / esize < count)
        return err_set(CREMA_ERR_PARSE, "%s: .npy data truncated: %zu values declared, %zu present", path,
                       count, (len - data_off) / esize);
    float *d = malloc((count ? count : 1) * sizeof(float));
    if (!d)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
    const unsigned char *src = buf + data_off;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *s = src + i * esize;
        switch (kind) {
        case 0: { float f; memcpy(&f, s, 4); d[i] = f; break; }
        case 1: { double f; memcpy(&f, s, 8); d[i] = (float)f; break; }
        case 2: { int32_t v; memcpy(&v, s, 4); d[i] = (float)v; break; }
        case 3: { int64_t v; memcpy(&v, s, 8); d[i] = (float)v; break; }
        case 4: d[i] = (float)s[0]; break;
        default: d[i] = (float)(int8_t)s[0]; break;
        }
    }
    out->num_axes = na;
    out->count = count;
    out->data = d;
    return CREMA_OK;
}

int npy_read(const char *path, struct npy_array *out)
{
    uint8_t *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = io_read_file(io_strip_file_uri(path), IO_MAX_MESSAGE, &buf, &len);
    if (rc)
        return rc;
    rc = npy_parse(path, buf, len, out);
    free(buf);
    return rc;
}

int npy_write(const char *path, int num_axes, const int *shape, const float *data)
{
    char dict[1024];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < num_axes; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%d,%s", shape[i], (i + 1 < num_axes) ? " " : "");
        count *= (size_t)shape[i];
    }
    if (num_axes > 1) /* numpy writes "(2, 3)" but "(5,)" for one axis */
        n--;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Pad with spaces so that data starts on a 64-byte boundary; end with \n. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)n + pad + 1;
    size_t size = 10 + hlen + count * sizeof(float);
    unsigned char *buf = malloc(size);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    memcpy(buf + 10 + hlen, data, count * sizeof(float));
    int rc = io_write_atomic(io_strip_file_uri(path), buf, size);
    free(buf);
    return rc;
}

void npy_free(struct npy_array *a)
{
    free(a->data);
    a->data = NULL;
}
