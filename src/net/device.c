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
