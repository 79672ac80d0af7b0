/* Whole-file reading and output writing that never destroys what is at the
 * output path (temporary name, fsync, rename for regular files). */
#ifndef CREMA_UTIL_IO_H
#define CREMA_UTIL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated, not counted in
 * *len): a regular file up to the size it had when opened, or a FIFO up to
 * EOF. Devices, directories and sockets are refused (CREMA_ERR_IO, naming
 * what the path is), so are files larger than max_len (CREMA_ERR_NOMEM). */
int io_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len);
/* The same for a regular file only (weights, solver states: a FIFO or
 * /dev/zero there is a mistake, not a stream). */
int io_read_regular_file(const char *path, size_t max_len, uint8_t **data, size_t *len);

/* Writes data to path without destroying what is there: a character device
 * or FIFO is written through; a symbolic link is followed to its target
 * (which need not exist yet); a regular file, or none, is written to
 * TARGET.tmp.PID, fsynced and renamed over TARGET. Directories, block
 * devices and sockets are refused. Temporaries that killed runs left next
 * to TARGET are removed first. */
int io_write_atomic(const char *path, const void *data, size_t len);

/* The pieces of io_write_atomic, for writers that need a file name of their
 * own (HDF5): path with its symbolic links followed (*exists says whether
 * anything is there, *st what); the temporary name for target (malloc'd);
 * and the removal of TARGET<tag>PID files whose process is gone. */
#define IO_TEMP_TAG ".tmp."
int io_resolve_output(const char *path, char **target, struct stat *st, bool *exists);
char *io_temp_name(const char *target);
void io_remove_stale_temps(const char *target, const char *tag);
/* "a character device", "a FIFO", ... for messages. */
const char *io_file_kind(mode_t mode);

/* Strips a leading "file:" or "file://" URI scheme; returns the path part. */
const char *io_strip_file_uri(const char *path);

/* Largest file crema will read into memory as one protobuf message. */
#define IO_MAX_MESSAGE ((size_t)1 << 33)

#endif
