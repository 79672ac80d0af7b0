/* crema device_query: Caffe's device_query. With -gpu, each GPU's
 * properties in Caffe's lines; without, the CPU crema computes on (model,
 * cores, memory, BLAS) and how many GPUs it could use. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/internal.h"
#include "cli.h"

char *openblas_get_config(void);
int openblas_get_num_threads(void);

static struct flag dq_flags[] = {
    { "gpu", FLAG_STRING, "", "GPU ids to query (comma-separated), or all", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_DQ_FLAGS ((int)(sizeof dq_flags / sizeof dq_flags[0]))

/* The first "model name" of /proc/cpuinfo, or "unknown". */
static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        colon[strcspn(colon, "\n")] = 0;
        snprintf(out, n, "%s", colon);
        break;
    }
    fclose(f);
}

int cmd_device_query(int argc, char **argv)
{
    int rc = cli_parse_command_flags(
        "device_query", "[-gpu IDS]\n\nDescribes the devices crema computes on.", argc, argv,
        dq_flags, N_DQ_FLAGS);
    if (rc >= 0)
        return rc;
    const char *gpu = cli_str(dq_flags, N_DQ_FLAGS, "gpu");
    if (*gpu) {
        int ids[64], n = 0;
        int qrc = device_parse_gpus(gpu, ids, 64, &n);
        for (int i = 0; !qrc && i < n; i++) {
            fprintf(stderr, "Querying GPUs %d\n", ids[i]);
            qrc = device_query(ids[i], stdout);
        }
        if (qrc) {
            fprintf(stderr, "crema device_query: -gpu %s: %s\n", gpu, crema_errmsg());
            return 1;
        }
        return 0;
    }
    char model[256];
    cpu_model(model, sizeof model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int gpus = device_gpu_count();
    printf("Mode: CPU\n");
    printf("GPUs: %d%s\n", gpus, gpus ? " (crema device_query -gpu all describes them)" : "");
    printf("CPU: %s\n", model);
    printf("Cores online: %ld\n", cores);
    if (pages > 0 && page > 0)
        printf("Memory: %.1f GiB\n", (double)pages * (double)page / (1024.0 * 1024.0 * 1024.0));
    printf("BLAS: %s (%d threads)\n", openblas_get_config(), openblas_get_num_threads());
    return 0;
}
