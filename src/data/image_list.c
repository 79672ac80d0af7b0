/* Reading and shuffling image list files. */
#include "data/image_list.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

void image_list_free(struct image_list *list)
{
    for (size_t i = 0; list->items && i < list->n; i++)
        free(list->items[i].file);
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

int image_list_read(const char *path, struct image_list *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set(CREMA_ERR_IO, "%s: cannot open the list file", path);
    size_t cap = 0, lineno = 0;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t len;
    int rc = CREMA_OK;
    while ((len = getline(&buf, &bcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = 0;
        if (len == 0)
            continue;
        char *sp = strrchr(buf, ' ');
        char *end;
        long label = sp ? strtol(sp + 1, &end, 10) : 0;
        if (!sp || sp == buf || !sp[1] || *end || label < -2147483647L - 1 || label > 2147483647L) {
            rc = err_set(CREMA_ERR_PARSE, "%s:%zu: expected \"FILE LABEL\", got \"%s\"", path, lineno, buf);
            break;
        }
        *sp = 0;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            struct image_list_entry *nl = realloc(out->items, cap * sizeof *nl);
            if (!nl) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            out->items = nl;
        }
        struct image_list_entry *e = &out->items[out->n];
        e->file = strdup(buf);
        e->label = (int)label;
        e->line = lineno;
        if (!e->file) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            break;
        }
        out->n++;
    }
    free(buf);
    fclose(f);
    if (!rc && out->n == 0)
        rc = err_set(CREMA_ERR_INVALID, "%s: no images listed (the list file is empty)", path);
    if (rc)
        image_list_free(out);
    return rc;
}

void image_list_shuffle(struct image_list *list, struct rng *r)
{
    for (size_t i = list->n > 0 ? list->n - 1 : 0; i > 0; i--) {
        size_t j = rng_below(r, (uint32_t)(i + 1));
        struct image_list_entry t = list->items[i];
        list->items[i] = list->items[j];
        list->items[j] = t;
    }
}
