/* TensorBoard event files: TFRecord framing (uint64 length, masked CRC-32C
 * of the length, data, masked CRC-32C of the data) around Event messages
 * from our tensorboard.proto. */
#include "util/tensorboard.h"
#include "tensorboard.pb-c.h"
#include "util/crc32c.h"
#include "util/err.h"
#include "util/io.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

struct tb_writer {
    FILE *f;
    char *path;
    int rc;
};

static double wall_time(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int write_event(struct tb_writer *w, const Tensorboard__Event *ev)
{
    size_t len = tensorboard__event__get_packed_size(ev);
    uint8_t *buf = malloc(len + 16);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    put_le(buf, len, 8);
    put_le(buf + 8, crc32c_mask(crc32c(buf, 8)), 4);
    tensorboard__event__pack(ev, buf + 12);
    put_le(buf + 12 + len, crc32c_mask(crc32c(buf + 12, len)), 4);
    int rc = 0;
    if (fwrite(buf, 1, len + 16, w->f) != len + 16 || fflush(w->f) != 0)
        rc = err_set(CREMA_ERR_IO, "%s: %s", w->path, strerror(errno));
    free(buf);
    if (rc)
        w->rc = rc;
    return rc;
}

int tb_open(const char *dir, struct tb_writer **out)
{
    *out = NULL;
    dir = io_strip_file_uri(dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return err_set(CREMA_ERR_IO, "%s: %s", dir, strerror(errno));
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    struct tb_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(dir) + strlen(host) + 64;
    if (w)
        w->path = malloc(n);
    if (!w || !w->path) {
        free(w);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    double now = wall_time();
    snprintf(w->path, n, "%s/events.out.tfevents.%lld.%s", dir, (long long)now, host);
    w->f = fopen(w->path, "wb");
    if (!w->f) {
        int rc = err_set(CREMA_ERR_IO, "%s: %s", w->path, strerror(errno));
        free(w->path);
        free(w);
        return rc;
    }
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.has_wall_time = true;
    ev.wall_time = now;
    ev.has_step = true;
    ev.step = 0;
    ev.file_version = (char *)"brain.Event:2";
    int rc = write_event(w, &ev);
    if (rc) {
        tb_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

int tb_scalar(struct tb_writer *w, const char *tag, int64_t step, float value)
{
    Tensorboard__SummaryValue v = TENSORBOARD__SUMMARY_VALUE__INIT;
    v.tag = (char *)tag;
    v.has_simple_value = true;
    v.simple_value = value;
    Tensorboard__SummaryValue *vs[1] = { &v };
    Tensorboard__Summary sum = TENSORBOARD__SUMMARY__INIT;
    sum.n_value = 1;
    sum.value = vs;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.has_wall_time = true;
    ev.wall_time = wall_time();
    ev.has_step = true;
    ev.step = step;
    ev.summary = &sum;
    return write_event(w, &ev);
}

const char *tb_path(const struct tb_writer *w)
{
    return w->path;
}

int tb_close(struct tb_writer *w)
{
    if (!w)
        return 0;
    int rc = w->rc;
    if (w->f && fclose(w->f) != 0 && !rc)
        rc = err_set(CREMA_ERR_IO, "%s: %s", w->path, strerror(errno));
    free(w->path);
    free(w);
    return rc;
}

int tb_read(const char *path, tb_scalar_fn fn, void *ctx)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = io_read_file(path, (size_t)1 << 32, &data, &len);
    if (rc)
        return rc;
    size_t off = 0;
    while (!rc && off < len) {
        if (len - off < 12) {
            rc = err_set(CREMA_ERR_PARSE, "%s: record at byte %zu: truncated header", path, off);
            break;
        }
        uint64_t n = get_le(data + off, 8);
        if ((uint32_t)get_le(data + off + 8, 4) != crc32c_mask(crc32c(data + off, 8))) {
            rc = err_set(CREMA_ERR_PARSE, "%s: record at byte %zu: length CRC mismatch", path, off);
            break;
        }
        if (n > len - off - 12 || len - off - 12 - n < 4) {
            rc = err_set(CREMA_ERR_PARSE, "%s: record at byte %zu: %llu bytes of data run past the end", path, off,
                         (unsigned long long)n);
            break;
        }
        const uint8_t *d = data + off + 12;
        if ((uint32_t)get_le(d + n, 4) != crc32c_mask(crc32c(d, n))) {
            rc = err_set(CREMA_ERR_PARSE, "%s: record at byte %zu: data CRC mismatch", path, off);
            break;
        }
        Tensorboard__Event *ev = tensorboard__event__unpack(NULL, n, d);
        if (!ev) {
            rc = err_set(CREMA_ERR_PARSE, "%s: record at byte %zu: not an Event message", path, off);
            break;
        }
        for (size_t i = 0; !rc && ev->summary && i < ev->summary->n_value; i++) {
            const Tensorboard__SummaryValue *v = ev->summary->value[i];
            if (v->has_simple_value && v->tag)
                rc = fn(ctx, v->tag, ev->step, v->simple_value);
        }
        tensorboard__event__free_unpacked(ev, NULL);
        off += 12 + n + 4;
    }
    free(data);
    return rc;
}
