/* Image list files ("FILE LABEL" per line), as Caffe's convert_imageset and
 * ImageData layer read them: the label is the last space-separated token, so
 * file names may contain spaces. */
#ifndef CREMA_DATA_IMAGE_LIST_H
#define CREMA_DATA_IMAGE_LIST_H

#include <stddef.h>

#include "util/rng.h"

struct image_list_entry {
    char *file;
    int label;
    size_t line; /* 1-based line in the list file, for messages */
};

struct image_list {
    struct image_list_entry *items;
    size_t n;
};

/* Reads the list; blank lines are skipped. A line without a label, or a list
 * with no images, is an error naming the file (and line). */
int image_list_read(const char *path, struct image_list *out);
void image_list_free(struct image_list *list);

/* Shuffles the entries in place (Fisher-Yates, from the last entry down). */
void image_list_shuffle(struct image_list *list, struct rng *r);

#endif
