/* Stand-ins for the Gloo shim where libgloo was not found at build time:
 * one rank works, more fail with a message saying why. */
#ifdef CREMA_NO_GLOO
#include <stdio.h>

#include "dist/gloo_shim.h"

static int gloo_none(char *err, size_t err_len)
{
    snprintf(err, err_len, "this crema was built without Gloo (libgloo-dev): only one rank can run");
    return GLOO_SHIM_OTHER;
}

int gloo_shim_create(int rank, int size, const struct gloo_shim_store *store, const char *file_dir,
                     const char *hostname, int infiniband, int timeout_ms, struct gloo_shim **out, char *err,
                     size_t err_len)
{
    *out = NULL;
    return gloo_none(err, err_len);
}

void gloo_shim_free(struct gloo_shim *g) { (void)g; }

int gloo_shim_allreduce_sum(struct gloo_shim *g, float *buf, size_t n, uint32_t tag, char *err, size_t err_len)
{
    return gloo_none(err, err_len);
}

int gloo_shim_broadcast(struct gloo_shim *g, void *buf, size_t bytes, int root, uint32_t tag, char *err,
                        size_t err_len)
{
    return gloo_none(err, err_len);
}

int gloo_shim_barrier(struct gloo_shim *g, uint32_t tag, char *err, size_t err_len) { return gloo_none(err, err_len); }

int gloo_shim_allgather(struct gloo_shim *g, const void *send, size_t bytes, void *recv, uint32_t tag, char *err,
                        size_t err_len)
{
    return gloo_none(err, err_len);
}
#else
typedef int gloo_none_unused; /* ISO C wants a declaration in every file */
#endif
