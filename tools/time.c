/* crema time: Caffe's `caffe time` benchmark: one warm-up forward and
 * backward, then the average forward and backward time of every layer. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "crema.h"

static struct flag time_flags[] = {
    { "model", FLAG_STRING, "", "the net (prototxt)", NULL, false },
    { "weights", FLAG_STRING, "", "weights to load first (optional)", NULL, false },
    { "allow_unmatched_weights", FLAG_BOOL, "false",
      "load -weights even when no layer of the net gets weights from them (an empty or unrelated file)", NULL,
      false },
    { "iterations", FLAG_INT, "50", "timed forward-backward iterations", NULL, false },
    { "phase", FLAG_STRING, "TRAIN", "TRAIN or TEST", NULL, false },
    { "gpu", FLAG_STRING, "", "the GPU to time on (an id; default: the CPU)", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_TIME_FLAGS ((int)(sizeof time_flags / sizeof time_flags[0]))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int fail(crema_net *net, double *a, double *b)
{
    fprintf(stderr, "crema time: %s\n", crema_errmsg());
    free(a);
    free(b);
    crema_net_free(net);
    return 1;
}

int cmd_time(int argc, char **argv)
{
    struct flag *fl = time_flags;
    int start = cli_parse_command_flags(
        "time", "-model NET [flags]\n\nTimes forward and backward per layer, as caffe time.",
        argc, argv, fl, N_TIME_FLAGS);
    if (start >= 0)
        return start;
    long long iters = cli_int(fl, N_TIME_FLAGS, "iterations");
    if (iters <= 0 || iters > 1000000000) {
        fprintf(stderr, "crema time: -iterations must be positive, got %lld\n", iters);
        return 1;
    }
    const char *gpu = cli_str(fl, N_TIME_FLAGS, "gpu");
    if (*gpu) {
        char *end = NULL;
        long id = strtol(gpu, &end, 10);
        if (end == gpu || *end || id < 0 || id > 1024) {
            fprintf(stderr, "crema time: -gpu wants one GPU id, got \"%s\"\n", gpu);
            return 1;
        }
        if (crema_set_device((int)id) || crema_set_mode(CREMA_MODE_GPU)) {
            fprintf(stderr, "crema time: -gpu %s: %s\n", gpu, crema_errmsg());
            return 1;
        }
        printf("Use GPU with device ID %ld\n", id);
    }
    crema_net *net = NULL;
    if (cli_open_net("time", cli_str(fl, N_TIME_FLAGS, "model"), cli_str(fl, N_TIME_FLAGS, "weights"),
                     cli_str(fl, N_TIME_FLAGS, "phase"), cli_bool(fl, N_TIME_FLAGS, "allow_unmatched_weights"), &net))
        return 1;
    int L = crema_net_num_layers(net);
    double *fwd = calloc((size_t)L + 1, sizeof *fwd), *bwd = calloc((size_t)L + 1, sizeof *bwd);
    if (!fwd || !bwd)
        return fail(net, fwd, bwd);
    /* As Caffe: a first pass so that every buffer is allocated before timing. */
    float loss = 0;
    printf("Performing Forward\n");
    if (crema_net_forward(net, &loss))
        return fail(net, fwd, bwd);
    printf("Initial loss: %g\nPerforming Backward\n", loss);
    if (crema_net_backward(net))
        return fail(net, fwd, bwd);
    printf("*** Benchmark begins ***\nTesting for %lld iterations.\n", iters);
    double total0 = now_ms(), fwd_total = 0, bwd_total = 0;
    for (long long j = 0; j < iters; j++) {
        double it0 = now_ms();
        for (int i = 0; i < L; i++) {
            double t0 = now_ms();
            if (crema_net_forward_from_to(net, i, i, NULL))
                return fail(net, fwd, bwd);
            fwd[i] += now_ms() - t0;
        }
        double mid = now_ms();
        fwd_total += mid - it0;
        for (int i = L - 1; i >= 0; i--) {
            double t0 = now_ms();
            if (crema_net_backward_from_to(net, i, i))
                return fail(net, fwd, bwd);
            bwd[i] += now_ms() - t0;
        }
        double end = now_ms();
        bwd_total += end - mid;
        printf("Iteration: %lld forward-backward time: %g ms.\n", j + 1, end - it0);
    }
    double n = (double)iters;
    printf("Average time per layer: \n");
    for (int i = 0; i < L; i++) {
        const char *name = crema_net_layer_name(net, i);
        printf("%10s\tforward: %g ms.\n", name, fwd[i] / n);
        printf("%10s\tbackward: %g ms.\n", name, bwd[i] / n);
    }
    double total = now_ms() - total0;
    printf("Average Forward pass: %g ms.\n", fwd_total / n);
    printf("Average Backward pass: %g ms.\n", bwd_total / n);
    printf("Average Forward-Backward: %g ms.\n", total / n);
    printf("Total Time: %g ms.\n", total);
    printf("*** Benchmark ends ***\n");
    free(fwd);
    free(bwd);
    crema_net_free(net);
    return 0;
}
