/* Allreduce bus bandwidth between ranks, counted as nccl-tests counts it:
 * algbw = bytes / time, busbw = algbw * 2(n-1)/n, shown as a fraction of
 * the link rate. One process per rank; bench_allreduce.sh starts them.
 *   bench_allreduce --rank R --size N --rendezvous URL [--iface IF]
 *                   [--link-gbit G] [--max-mb M]   (secret: CREMA_SECRET) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "crema.h"
#include "dist/dist.h"

int main(int argc, char **argv)
{
    struct dist_config cfg;
    dist_config_init(&cfg);
    double link_gbit = 0;
    double max_mb = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rank") == 0)
            cfg.rank = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            cfg.size = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rendezvous") == 0)
            cfg.rendezvous = argv[i + 1];
        else if (strcmp(argv[i], "--iface") == 0)
            cfg.iface = argv[i + 1];
        else if (strcmp(argv[i], "--link-gbit") == 0)
            link_gbit = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--max-mb") == 0)
            max_mb = atof(argv[i + 1]);
    }
    cfg.timeout_ms = 120000;
    struct dist_comm *comm;
    if (dist_config_from_env(&cfg) || dist_comm_create(&cfg, &comm)) {
        fprintf(stderr, "bench_allreduce rank %d: %s\n", cfg.rank, crema_errmsg());
        return 1;
    }
    int n = dist_size(comm), rank = dist_rank(comm);
    size_t max_bytes = (size_t)(max_mb * 1024 * 1024);
    float *buf = malloc(max_bytes > 4096 ? max_bytes : 4096);
    if (!buf) {
        fprintf(stderr, "bench_allreduce: out of memory\n");
        return 1;
    }
    memset(buf, 0, max_bytes > 4096 ? max_bytes : 4096);
    if (rank == 0) {
        printf("allreduce (gloo, %d ranks%s%s)\n", n, cfg.iface ? ", iface " : "", cfg.iface ? cfg.iface : "");
        printf("%12s %8s %12s %12s %12s\n", "bytes", "iters", "time_us", "algbw_GB/s", "busbw_GB/s");
    }
    int rc = 0;
    for (size_t bytes = 4096; bytes <= max_bytes && !rc; bytes *= 4) {
        size_t count = bytes / sizeof(float);
        /* warm up, then enough iterations for about half a second */
        rc = dist_allreduce_sum(comm, buf, count);
        double t0 = bench_now();
        rc = rc ? rc : dist_allreduce_sum(comm, buf, count);
        double one = bench_now() - t0;
        /* every rank must run the same count: rank 0's estimate decides */
        int iters = one > 0 ? (int)(0.5 / one) : 1000;
        iters = iters < 2 ? 2 : iters > 1000 ? 1000 : iters;
        rc = rc ? rc : dist_broadcast(comm, &iters, sizeof iters, 0);
        rc = rc ? rc : dist_barrier(comm);
        t0 = bench_now();
        for (int i = 0; i < iters && !rc; i++)
            rc = dist_allreduce_sum(comm, buf, count);
        double t = (bench_now() - t0) / iters;
        if (rc)
            break;
        double algbw = bytes / t / 1e9;
        double busbw = algbw * 2.0 * (n - 1) / n;
        if (rank == 0) {
            printf("%12zu %8d %12.1f %12.4f %12.4f", bytes, iters, t * 1e6, algbw, busbw);
            if (link_gbit > 0)
                printf("  %5.1f%% of the %.3g Gbit/s link", 100.0 * busbw / (link_gbit / 8.0), link_gbit);
            printf("\n");
            fflush(stdout);
        }
    }
    if (rc)
        fprintf(stderr, "bench_allreduce rank %d: %s\n", rank, crema_errmsg());
    free(buf);
    dist_comm_free(comm);
    return rc ? 1 : 0;
}
