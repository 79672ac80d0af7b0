/* The per-thread error message behind crema_errmsg(). */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERR_MAX 2048

static _Thread_local char err_buf[ERR_MAX];

int err_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return code;
}

int err_prefix(int code, const char *fmt, ...)
{
    char old[ERR_MAX];
    char ctx[ERR_MAX];
    va_list ap;
    memcpy(old, err_buf, sizeof old);
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    /* ctx, then ": ", then the old message, cut to the buffer */
    size_t n = strnlen(ctx, ERR_MAX - 1);
    memcpy(err_buf, ctx, n);
    if (old[0] && n + 2 < ERR_MAX) {
        err_buf[n++] = ':';
        err_buf[n++] = ' ';
        size_t m = strnlen(old, ERR_MAX - 1 - n);
        memcpy(err_buf + n, old, m);
        n += m;
    }
    err_buf[n] = 0;
    return code;
}

void err_clear(void) { err_buf[0] = 0; }

void err_notice(const char *fmt, ...)
{
    char msg[ERR_MAX + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one write, so that notices of several threads or ranks do not mix */
    char line[sizeof msg + 64];
    size_t n = (size_t)snprintf(line, sizeof line, "crema: note: %s", msg);
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    while (n > 0 && line[n - 1] == '\n')
        n--;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}

const char *err_msg(void) { return err_buf; }

const char *crema_errmsg(void) { return err_buf; }

const char *crema_status_name(crema_status s)
{
    switch (s) {
    case CREMA_OK: return "ok";
    case CREMA_ERR_IO: return "i/o error";
    case CREMA_ERR_PARSE: return "parse error";
    case CREMA_ERR_INVALID: return "invalid value";
    case CREMA_ERR_SHAPE: return "shape mismatch";
    case CREMA_ERR_UNSUPPORTED: return "unsupported";
    case CREMA_ERR_NOMEM: return "out of memory";
    case CREMA_ERR_NOTFOUND: return "not found";
    case CREMA_ERR_DIST: return "distributed failure";
    case CREMA_ERR_INTERRUPTED: return "interrupted";
    case CREMA_ERR_DEVICE: return "device error";
    }
    return "unknown status";
}

const char *crema_version(void) { return "0.1.0"; }
