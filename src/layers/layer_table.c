/* The one table of layer kinds: Caffe's type string to its functions.
 * Adding a layer touches its family's file and one line here. */
#include "layers/layer.h"

#include <string.h>

/* Each family file defines its kinds. */
#define KIND(sym) extern const struct layer_kind sym;
#include "layers/layer_list.h"
#undef KIND

static const struct layer_kind *const layer_table[] = {
#define KIND(sym) &sym,
#include "layers/layer_list.h"
#undef KIND
    NULL
};

const struct layer_kind *layer_kind_find(const char *type)
{
    if (!type)
        return NULL;
    for (int i = 0; layer_table[i]; i++)
        if (strcmp(layer_table[i]->type, type) == 0)
            return layer_table[i];
    return NULL;
}

const struct layer_kind *layer_kind_at(int i)
{
    static const int n = (int)(sizeof layer_table / sizeof layer_table[0]) - 1;
    return i >= 0 && i < n ? layer_table[i] : NULL;
}
