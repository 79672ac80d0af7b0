/* crema test: Caffe's `caffe test`: N forward passes of a trained net in
 * the TEST phase, each output per batch, then each output's mean and the
 * mean loss. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "api/internal.h"

static struct flag test_flags[] = {
    { "model", FLAG_STRING, "", "the net to score (prototxt; file: URIs accepted)", NULL, false },
    { "weights", FLAG_STRING, "", "trained weights: comma-separated .caffemodel(.h5) files", NULL, false },
    { "allow_unmatched_weights", FLAG_BOOL, "false",
      "load -weights even when no layer of the net gets weights from them (an empty or unrelated file)", NULL,
      false },
    { "iterations", FLAG_INT, "50", "forward passes to run", NULL, false },
    { "phase", FLAG_STRING, "TEST", "the net state's phase: TRAIN or TEST", NULL, false },
    { "level", FLAG_INT, "0", "the net state's level", NULL, false },
    { "stage", FLAG_STRING, "", "comma-separated stages of the net state", NULL, false },
    { "gpu", FLAG_STRING, "", "the GPU to score on (an id; default: the CPU)", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_TEST_FLAGS ((int)(sizeof test_flags / sizeof test_flags[0]))

int cli_score_net(struct net *net, long long iterations, FILE *out, struct cli_scores *sc)
{
    float loss = 0;
    size_t n = 0;
    float *score = NULL;
    int *owner = NULL;
    int rc = 0;
    for (long long i = 0; i < iterations && !rc; i++) {
        float iter_loss = 0;
        if ((rc = net_forward(net, &iter_loss)))
            break;
        loss += iter_loss;
        size_t idx = 0;
        for (int j = 0; j < net->n_outputs && !rc; j++) {
            int bi = net->output_ids[j];
            struct tensor *t = net->blobs[bi];
            const float *d = tensor_data(t);
            if (!d) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            for (size_t k = 0; k < t->count; k++, idx++) {
                if (i == 0) {
                    float *ns = realloc(score, (idx + 1) * sizeof *ns);
                    if (ns)
                        score = ns;
                    int *no = ns ? realloc(owner, (idx + 1) * sizeof *no) : NULL;
                    if (no)
                        owner = no;
                    if (!ns || !no) {
                        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                        break;
                    }
                    score[idx] = d[k];
                    owner[idx] = bi;
                    n = idx + 1;
                } else if (idx < n) {
                    score[idx] += d[k];
                } else {
                    rc = err_set(CREMA_ERR_SHAPE, "batch %lld: output %s grew from the first batch's size", i,
                                 net->blob_names[bi]);
                    break;
                }
                if (out)
                    fprintf(out, "Batch %lld, %s = %g\n", i, net->blob_names[bi], d[k]);
            }
        }
    }
    if (rc) {
        free(score);
        free(owner);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        score[i] /= (float)iterations;
    sc->loss = loss / (float)iterations;
    sc->n = n;
    sc->mean = score;
    sc->blob = owner;
    return 0;
}

void cli_print_scores(struct net *net, const struct cli_scores *sc, FILE *out)
{
    fprintf(out, "Loss: %g\n", sc->loss);
    for (size_t i = 0; i < sc->n; i++) {
        int bi = sc->blob[i];
        float w = net->blob_loss_weights[bi];
        if (w != 0)
            fprintf(out, "%s = %g (* %g = %g loss)\n", net->blob_names[bi], sc->mean[i], w, w * sc->mean[i]);
        else
            fprintf(out, "%s = %g\n", net->blob_names[bi], sc->mean[i]);
    }
}

void cli_scores_free(struct cli_scores *sc)
{
    free(sc->mean);
    free(sc->blob);
    sc->mean = NULL;
    sc->blob = NULL;
    sc->n = 0;
}

int cmd_test(int argc, char **argv)
{
    struct flag *fl = test_flags;
    int start = cli_parse_command_flags(
        "test",
        "-model NET -weights W [flags]\n\nScores a trained net as caffe test: per-batch "
        "outputs, then their means.",
        argc, argv, fl, N_TEST_FLAGS);
    if (start >= 0)
        return start;
    long long iters = cli_int(fl, N_TEST_FLAGS, "iterations");
    if (iters <= 0 || iters > 1000000000) {
        fprintf(stderr, "crema test: -iterations must be positive, got %lld\n", iters);
        return 1;
    }
    int phase;
    if (cli_parse_phase("test", cli_str(fl, N_TEST_FLAGS, "phase"), &phase))
        return 1;
    const char *model = cli_str(fl, N_TEST_FLAGS, "model"), *weights = cli_str(fl, N_TEST_FLAGS, "weights");
    if (cli_check_file("test", "model", model))
        return 1;
    if (!*weights) {
        fprintf(stderr, "crema test: -weights is required: need model weights to score\n");
        return 1;
    }
    struct net *net = NULL;
    if (cli_load_net("test", model, weights, phase, (int)cli_int(fl, N_TEST_FLAGS, "level"),
                     cli_str(fl, N_TEST_FLAGS, "stage"), cli_bool(fl, N_TEST_FLAGS, "allow_unmatched_weights"), &net))
        return 1;
    if (cli_net_to_gpu("test", cli_str(fl, N_TEST_FLAGS, "gpu"), net)) {
        net_free(net);
        return 1;
    }
    fprintf(stderr, "Running for %lld iterations.\n", iters);
    struct cli_scores sc;
    int rc = cli_score_net(net, iters, stdout, &sc);
    if (rc) {
        fprintf(stderr, "crema test: %s\n", crema_errmsg());
        net_free(net);
        return 1;
    }
    cli_print_scores(net, &sc, stdout);
    cli_scores_free(&sc);
    net_free(net);
    return 0;
}
