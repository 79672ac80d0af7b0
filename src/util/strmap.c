/* The string-to-int hash map of strmap.h: FNV-1a, linear probing, grown
 * at half full. No deletion: the net only adds names and rebinds them. */
#include "util/strmap.h"
#include "util/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void strmap_free(struct strmap *m)
{
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
    m->cap = m->n = 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t slot(const struct strmap *m, const char *key)
{
    size_t mask = m->cap - 1, i = (size_t)hash(key) & mask;
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

static int grow(struct strmap *m)
{
    size_t cap = m->cap ? 2 * m->cap : 16;
    if (cap > SIZE_MAX / 2 / sizeof(int))
        return err_set(CREMA_ERR_NOMEM, "name index: too many names (%zu)", m->n);
    struct strmap g = { calloc(cap, sizeof *g.keys), calloc(cap, sizeof *g.values), cap, m->n };
    if (!g.keys || !g.values) {
        free(g.keys);
        free(g.values);
        return err_set(CREMA_ERR_NOMEM, "name index: out of memory for %zu names", m->n + 1);
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = slot(&g, m->keys[i]);
            g.keys[j] = m->keys[i];
            g.values[j] = m->values[i];
        }
    free(m->keys);
    free(m->values);
    *m = g;
    return CREMA_OK;
}

int strmap_put(struct strmap *m, const char *key, int value)
{
    if (2 * (m->n + 1) > m->cap) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t i = slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->n++;
    }
    m->values[i] = value;
    return CREMA_OK;
}

int strmap_get(const struct strmap *m, const char *key)
{
    if (!m->cap)
        return -1;
    size_t i = slot(m, key);
    return m->keys[i] ? m->values[i] : -1;
}
