/* Whole-file reading and atomic writing (temporary name, fsync, rename). */
#ifndef CREMA_UTIL_IO_H
#define CREMA_UTIL_IO_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated, not counted in
 * *len). Files larger than max_len are refused with CREMA_ERR_NOMEM. */
int io_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len);

/* Writes data to path.tmp.PID, fsyncs it and renames it over path. */
int io_write_atomic(const char *path, const void *data, size_t len);

/* Strips a leading "file:" or "file://" URI scheme; returns the path part. */
const char *io_strip_file_uri(const char *path);

/* Largest file crema will read into memory as one protobuf message. */
#define IO_MAX_MESSAGE ((size_t)1 << 33)

#endif
