/* A hash map from strings to ints (open addressing), so that looking a
 * blob or layer up by name costs the same in a net of ten layers and in one
 * of a hundred thousand. Keys are borrowed: they must outlive the map. */
#ifndef CREMA_UTIL_STRMAP_H
#define CREMA_UTIL_STRMAP_H

#include <stddef.h>

struct strmap {
    const char **keys; /* NULL: an empty slot */
    int *values;
    size_t cap, n;     /* cap is a power of two, or 0 */
};

/* An empty map is all zeros; strmap_free returns it to that state. */
void strmap_free(struct strmap *m);
/* Sets key to value (replacing an earlier value); CREMA_ERR_NOMEM when the
 * map cannot grow. */
int strmap_put(struct strmap *m, const char *key, int value);
/* The value of key, or -1 when it is absent. */
int strmap_get(const struct strmap *m, const char *key);

#endif
