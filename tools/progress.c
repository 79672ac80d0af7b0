/* Training progress for the command line: on a terminal one live line
 * (iteration, loss, learning rate, iterations/s, ETA) redrawn in place;
 * elsewhere the solver's Caffe-style log lines. Optionally every train
 * loss, learning rate and test output also goes to a TensorBoard file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "api/internal.h"

struct progress {
    bool tty;
    struct tb_writer *tb;
    double t0, last_draw;
    int start_iter, max_iter;
    bool live; /* a progress line is on screen */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_duration(char *out, size_t n, double s)
{
    long t = s > 0 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, n, "%lds", t);
}

static void clear_line(struct progress *p)
{
    if (p->live) {
        fputs("\r\033[K", stderr);
        p->live = false;
    }
}

static int on_iter(struct solver *s, void *ctx)
{
    struct progress *p = ctx;
    int iter = s->update.iter;
    if (p->tb) {
        /* the loss and rate belong to the iteration just done (Caffe's
         * "Iteration N, loss" numbering): the counter already moved on */
        int rc = tb_scalar(p->tb, "train/loss", iter - 1, s->smoothed_loss);
        if (!rc)
            rc = tb_scalar(p->tb, "train/lr", iter - 1, s->rate);
        if (rc)
            return rc;
    }
    if (!p->tty)
        return 0;
    double t = now_s();
    if (t - p->last_draw < 0.1 && iter < p->max_iter)
        return 0;
    p->last_draw = t;
    double rate = (t - p->t0) > 0 ? (double)(iter - p->start_iter) / (t - p->t0) : 0;
    char eta[32] = "?";
    if (rate > 0)
        fmt_duration(eta, sizeof eta, (double)(p->max_iter - iter) / rate);
    fprintf(stderr, "\r\033[Kiter %d/%d  loss %.4g  lr %.4g  %.1f it/s  ETA %s", iter, p->max_iter,
            (double)s->smoothed_loss, (double)s->rate, rate, eta);
    fflush(stderr);
    p->live = true;
    return 0;
}

static int on_test(struct solver *s, int net_id, int n, const char *const *names, const float *values, void *ctx)
{
    struct progress *p = ctx;
    if (p->tty) {
        clear_line(p);
        fprintf(stderr, "Iteration %d, test net #%d:", s->update.iter, net_id);
        for (int i = 0; i < n; i++)
            fprintf(stderr, "%s %s = %g", i ? "," : "", names[i], (double)values[i]);
        fputc('\n', stderr);
    }
    for (int i = 0; p->tb && i < n; i++) {
        char tag[512];
        if (net_id == 0)
            snprintf(tag, sizeof tag, "test/%s", names[i]);
        else
            snprintf(tag, sizeof tag, "test%d/%s", net_id, names[i]);
        int rc = tb_scalar(p->tb, tag, s->update.iter, values[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int cli_progress_attach(const char *cmd, struct solver *s, const char *tensorboard, struct progress **out)
{
    struct progress *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "crema %s: out of memory\n", cmd);
        return 1;
    }
    if (tensorboard && *tensorboard) {
        if (tb_open(tensorboard, &p->tb)) {
            fprintf(stderr, "crema %s: -tensorboard %s: %s\n", cmd, tensorboard, crema_errmsg());
            free(p);
            return 1;
        }
        fprintf(stderr, "TensorBoard events: %s\n", tb_path(p->tb));
    }
    p->tty = isatty(fileno(stderr)) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
    p->t0 = now_s();
    p->start_iter = s->update.iter;
    p->max_iter = s->param->max_iter;
    if (p->tty)
        s->log = NULL; /* the live line and the test lines replace the log */
    s->after_iter = on_iter;
    s->after_iter_ctx = p;
    s->after_test = on_test;
    s->after_test_ctx = p;
    *out = p;
    return 0;
}

int cli_progress_finish(struct progress *p)
{
    if (!p)
        return 0;
    if (p->live)
        fputc('\n', stderr);
    int rc = tb_close(p->tb);
    free(p);
    return rc;
}
