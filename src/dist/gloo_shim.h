/* The C face of the Gloo shim (gloo_shim.cc): a connected Gloo context and
 * its collectives. Every call catches Gloo's exceptions and returns a code
 * with Gloo's message in err. */
#ifndef CREMA_DIST_GLOO_SHIM_H
#define CREMA_DIST_GLOO_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GLOO_SHIM_OK = 0, GLOO_SHIM_TIMEOUT = 1, GLOO_SHIM_IO = 2, GLOO_SHIM_OTHER = 3 };

/* The key-value store gloo pairs through: our rendezvous client. Each
 * returns a crema status, with crema_errmsg() set on failure. */
struct gloo_shim_store {
    void *ctx;
    int (*set)(void *ctx, const char *key, const void *value, size_t n);
    int (*get)(void *ctx, const char *key, void **value, size_t *n, int timeout_ms);
    int (*wait)(void *ctx, const char *const *keys, int n_keys, int timeout_ms);
};

struct gloo_shim;

/* store NULL: gloo's FileStore in file_dir. hostname: the address gloo's
 * TCP device binds. */
int gloo_shim_create(int rank, int size, const struct gloo_shim_store *store, const char *file_dir,
                     const char *hostname, int infiniband, int timeout_ms, struct gloo_shim **out, char *err,
                     size_t err_len);
void gloo_shim_free(struct gloo_shim *g);

int gloo_shim_allreduce_sum(struct gloo_shim *g, float *buf, size_t n, uint32_t tag, char *err, size_t err_len);
int gloo_shim_broadcast(struct gloo_shim *g, void *buf, size_t bytes, int root, uint32_t tag, char *err,
                        size_t err_len);
int gloo_shim_barrier(struct gloo_shim *g, uint32_t tag, char *err, size_t err_len);
int gloo_shim_allgather(struct gloo_shim *g, const void *send, size_t bytes, void *recv, uint32_t tag, char *err,
                        size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
