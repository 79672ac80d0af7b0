/* crema: Caffe-compatible deep learning in C. The one public header.
 * Every call that can fail returns a crema_status; crema_errmsg() says why. */
#ifndef CREMA_H
#define CREMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum crema_status {
    CREMA_OK = 0,
    CREMA_ERR_IO = 1,          /* a file could not be opened, read or written */
    CREMA_ERR_PARSE = 2,       /* text or binary input is malformed */
    CREMA_ERR_INVALID = 3,     /* input is well-formed but its values are wrong */
    CREMA_ERR_SHAPE = 4,       /* shapes do not agree */
    CREMA_ERR_UNSUPPORTED = 5, /* valid Caffe, but crema cannot do it here */
    CREMA_ERR_NOMEM = 6,       /* out of memory, or a size too large to allocate */
    CREMA_ERR_NOTFOUND = 7,    /* a named blob, layer or key does not exist */
    CREMA_ERR_DIST = 8,        /* a peer or the rendezvous failed */
    CREMA_ERR_INTERRUPTED = 9  /* stopped by a signal */
} crema_status;

/* The message of the last failure on this thread ("" if none). */
const char *crema_errmsg(void);

/* A short name for a status code. */
const char *crema_status_name(crema_status s);

const char *crema_version(void);

#ifdef __cplusplus
}
#endif
#endif
