/* TensorBoard event files: scalars written as TFRecord-framed Event
 * messages (events.out.tfevents.<time>.<host>), and read back. */
#ifndef CREMA_UTIL_TENSORBOARD_H
#define CREMA_UTIL_TENSORBOARD_H

#include <stdint.h>

struct tb_writer;

/* Creates dir if missing and a new event file in it (its first record is
 * the file_version event TensorBoard expects). */
int tb_open(const char *dir, struct tb_writer **out);
/* Appends one scalar; flushed, so a live TensorBoard sees it. */
int tb_scalar(struct tb_writer *w, const char *tag, int64_t step, float value);
const char *tb_path(const struct tb_writer *w);
/* Closes the file; returns the status of the last write. NULL allowed. */
int tb_close(struct tb_writer *w);

/* Reads every scalar of an event file in order, checking each record's
 * length and data CRCs; errors name the file and the record's offset. */
typedef int (*tb_scalar_fn)(void *ctx, const char *tag, int64_t step, float value);
int tb_read(const char *path, tb_scalar_fn fn, void *ctx);

#endif
