/* Backends by name (see device.h). */
#include "net/device.h"
#include "cpu/backend_cpu.h"
#include "cuda/cuda_backend.h"
#include "util/err.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const struct backend *device_cpu(void)
{
    return &cpu_backend;
}

int device_gpu_count(void)
{
    int n = 0;
    return cuda_device_count(&n) ? 0 : n;
}

int device_query(int id, FILE *out)
{
    return cuda_device_query(id, out);
}

int device_set_precision(const struct backend *be, const char *precision)
{
    if (!precision || !*precision || strcmp(precision, "fp32") == 0)
        return be->set_tf32 ? be->set_tf32(be, false) : CREMA_OK;
    if (strcmp(precision, "tf32") == 0) {
        if (!be->set_tf32)
            return err_set(CREMA_ERR_UNSUPPORTED, "-precision tf32: %s has no TF32 (a GPU has)", be->name);
        return be->set_tf32(be, true);
    }
    return err_set(CREMA_ERR_INVALID, "-precision %s: expected fp32 or tf32", precision);
}

static int parse_gpu_id(const char *s, int *id)
{
    if (!*s || strlen(s) > 6)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    *id = atoi(s);
    return 0;
}

int device_open(const char *spec, const struct backend **out)
{
    *out = NULL;
    if (!spec || !*spec || strcmp(spec, "cpu") == 0 || strcmp(spec, "CPU") == 0) {
        *out = &cpu_backend;
        return CREMA_OK;
    }
    if (strcmp(spec, "cpu-mirror") == 0) {
        *out = &cpu_mirror_backend;
        return CREMA_OK;
    }
    int id = 0;
    const char *rest = NULL;
    if (strcmp(spec, "gpu") == 0 || strcmp(spec, "cuda") == 0 || strcmp(spec, "GPU") == 0)
        rest = "0";
    else if (strncmp(spec, "gpu:", 4) == 0 || strncmp(spec, "GPU:", 4) == 0)
        rest = spec + 4;
    else if (strncmp(spec, "cuda:", 5) == 0)
        rest = spec + 5;
    else
        rest = spec;
    if (parse_gpu_id(rest, &id))
        return err_set(CREMA_ERR_INVALID, "device \"%s\": expected cpu, gpu, gpu:N, cuda:N or a GPU id", spec);
    return cuda_backend_open(id, out);
}

int device_parse_gpus(const char *flag, int *ids, int max, int *n)
{
    *n = 0;
    if (!flag || !*flag)
        return CREMA_OK;
    if (strcmp(flag, "all") == 0) {
        int count = 0;
        int rc = cuda_device_count(&count);
        if (rc)
            return rc;
        if (count == 0) {
            const struct backend *be;
            rc = cuda_backend_open(0, &be); /* for its message: no plugin, no driver, no device */
            return err_prefix(rc ? rc : CREMA_ERR_UNSUPPORTED, "-gpu all");
        }
        for (int i = 0; i < count && i < max; i++)
            ids[(*n)++] = i;
        return CREMA_OK;
    }
    const char *p = flag;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[16];
        int id = 0;
        if (len == 0 || len >= sizeof item)
            return err_set(CREMA_ERR_INVALID, "-gpu %s: expected all or a comma-separated list of GPU ids", flag);
        memcpy(item, p, len);
        item[len] = 0;
        if (parse_gpu_id(item, &id))
            return err_set(CREMA_ERR_INVALID, "-gpu %s: \"%s\" is not a GPU id", flag, item);
        for (int i = 0; i < *n; i++)
            if (ids[i] == id)
                return err_set(CREMA_ERR_INVALID, "-gpu %s: GPU %d is listed twice", flag, id);
        if (*n == max)
            return err_set(CREMA_ERR_INVALID, "-gpu %s: more than %d GPUs", flag, max);
        ids[(*n)++] = id;
        p = end ? end + 1 : p + len;
    }
    return CREMA_OK;
}

int device_choose(const char *gpu_flag, bool mode_gpu, int device_id, FILE *log, const struct backend **out,
                  int *n_gpus)
{
    *out = &cpu_backend;
    *n_gpus = 0;
    int ids[64], n = 0;
    int rc = device_parse_gpus(gpu_flag, ids, 64, &n);
    if (rc)
        return rc;
    if (n > 0) {
        *n_gpus = n;
        if ((rc = cuda_backend_open(ids[0], out)))
            return err_prefix(rc, "-gpu %s", gpu_flag);
        return CREMA_OK;
    }
    if (!mode_gpu)
        return CREMA_OK;
    const struct backend *be = NULL;
    if (cuda_backend_open(device_id, &be)) {
        if (log)
            fprintf(log, "solver_mode is GPU, but %s; computing on the CPU\n", crema_errmsg());
        err_clear();
        return CREMA_OK;
    }
    *out = be;
    *n_gpus = 1;
    return CREMA_OK;
}
