/* Error reporting: a status code returned, and a message kept per thread.
 * The thread-local message buffer is this module's only state. */
#ifndef CREMA_UTIL_ERR_H
#define CREMA_UTIL_ERR_H

#include "crema.h"

/* Sets this thread's message (printf-style) and returns code, so that
 * `return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));` reads well. */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Puts context in front of the current message: "ctx: old message". */
int err_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(void);

/* A notice for the person running crema (an old file upgraded on load,
 * layers that got no weights): one line on standard error, as Caffe's
 * LOG(WARNING) lines. Lines of a notice after the first are indented. */
void err_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_msg(void);

#endif
