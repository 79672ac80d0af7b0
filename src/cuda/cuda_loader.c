/* Finds and loads the CUDA plugin: $CREMA_CUDA_PLUGIN, else
 * libcrema_cuda.so beside the library or program that holds this code,
 * else the dynamic loader's search path. Loaded once per process. */
#define _GNU_SOURCE
#include "cuda/cuda_backend.h"
#include "cuda/cuda_plugin.h"
#include "util/err.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_NAME "libcrema_cuda.so"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const struct cuda_plugin *plugin;
static char load_error[1024];

static const struct cuda_host host = { .err_set = err_set };

static void *try_open(const char *path, char *why, size_t n)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && why[0] == 0) {
        const char *e = dlerror();
        snprintf(why, n, "%.700s", e ? e : path);
    }
    return h;
}

static void load_plugin(void)
{
    char why[768] = "";
    void *h = NULL;
    const char *env = getenv("CREMA_CUDA_PLUGIN");
    if (env && *env) {
        h = try_open(env, why, sizeof why);
    } else {
        /* Beside the object holding this function: build/lib for the
         * library, and build/bin/../lib for the static command line. */
        Dl_info info;
        if (dladdr((void *)load_plugin, &info) && info.dli_fname) {
            char dir[PATH_MAX], path[PATH_MAX + 64];
            snprintf(dir, sizeof dir, "%s", info.dli_fname);
            char *slash = strrchr(dir, '/');
            if (slash) {
                *slash = 0;
                snprintf(path, sizeof path, "%s/%s", dir, PLUGIN_NAME);
                h = try_open(path, why, sizeof why);
                if (!h) {
                    snprintf(path, sizeof path, "%s/../lib/%s", dir, PLUGIN_NAME);
                    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
                }
            }
        }
        if (!h)
            h = dlopen(PLUGIN_NAME, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        snprintf(load_error, sizeof load_error,
                 "crema's CUDA backend could not be loaded (%.700s); it is built only where the CUDA toolkit "
                 "is found, and needs CUDA's libraries at run time",
                 why[0] ? why : PLUGIN_NAME " not found");
        return;
    }
    cuda_plugin_entry_fn entry = (cuda_plugin_entry_fn)dlsym(h, CUDA_PLUGIN_ENTRY);
    const struct cuda_plugin *p = entry ? entry(&host) : NULL;
    if (!p || p->abi != CUDA_PLUGIN_ABI || p->backend_size != sizeof(struct backend)) {
        snprintf(load_error, sizeof load_error,
                 "%s does not match this build of crema (rebuild both from the same tree)", PLUGIN_NAME);
        dlclose(h);
        return;
    }
    plugin = p;
}

static int need_plugin(void)
{
    pthread_once(&load_once, load_plugin);
    if (!plugin)
        return err_set(CREMA_ERR_UNSUPPORTED, "%s", load_error);
    return CREMA_OK;
}

int cuda_device_count(int *n)
{
    *n = 0;
    pthread_once(&load_once, load_plugin);
    if (!plugin)
        return CREMA_OK;
    return plugin->device_count(n);
}

int cuda_backend_open(int id, const struct backend **out)
{
    *out = NULL;
    int rc = need_plugin();
    return rc ? rc : plugin->open(id, out);
}

int cuda_device_query(int id, FILE *out)
{
    int rc = need_plugin();
    return rc ? rc : plugin->query(id, out);
}
