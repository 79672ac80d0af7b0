/* crema plot: training curves as a PNG: the train loss and the test outputs
 * (accuracy on a right-hand axis) against iteration, read from a Caffe-style
 * log (crema's or Caffe's) or from a crema TensorBoard event file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "api/internal.h"

#define MAX_SERIES 16

struct series {
    char name[128];
    double *x, *y;
    size_t n, cap;
};

struct curves {
    struct series s[MAX_SERIES];
    int n;
};

static int add_point(struct curves *c, const char *name, double x, double y)
{
    int i = 0;
    while (i < c->n && strcmp(c->s[i].name, name) != 0)
        i++;
    if (i == c->n) {
        if (c->n == MAX_SERIES)
            return 0; /* more outputs than a chart can show: keep the first */
        snprintf(c->s[c->n++].name, sizeof c->s[0].name, "%s", name);
    }
    struct series *s = &c->s[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (nx)
            s->x = nx;
        double *ny = nx ? realloc(s->y, cap * sizeof *ny) : NULL;
        if (ny)
            s->y = ny;
        if (!nx || !ny)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return 0;
}

static void curves_free(struct curves *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->s[i].x);
        free(c->s[i].y);
    }
}

/* Caffe's log lines (with or without glog's prefix):
 *   Iteration N (... iter/s ...), loss = X   |   Iteration N, loss = X
 *   Iteration N, Testing net (#k)   then   Test net output #j: NAME = V */
static int parse_log(const char *text, struct curves *c)
{
    long test_iter = -1;
    int test_net = 0;
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
        line += len + (end ? 1 : 0);
        const char *p;
        long it;
        double v;
        char name[128];
        int k;
        if ((p = strstr(buf, "Iteration ")) && sscanf(p, "Iteration %ld, Testing net (#%d)", &it, &k) == 2) {
            test_iter = it;
            test_net = k;
        } else if ((p = strstr(buf, "Test net output #")) && test_iter >= 0 &&
                   sscanf(p, "Test net output #%*d: %127s = %lf", name, &v) == 2) {
            char tag[160];
            snprintf(tag, sizeof tag, test_net ? "test%d %s" : "test%.0d %s", test_net, name);
            if (add_point(c, tag, (double)test_iter, v))
                return 1;
        } else if ((p = strstr(buf, "Iteration ")) && sscanf(p, "Iteration %ld", &it) == 1 &&
                   (p = strstr(p, "loss = ")) && sscanf(p, "loss = %lf", &v) == 1 && !strstr(buf, "Test")) {
            if (add_point(c, "train loss", (double)it, v))
                return 1;
        }
    }
    return 0;
}

static int on_scalar(void *ctx, const char *tag, int64_t step, float value)
{
    struct curves *c = ctx;
    char name[160];
    if (strcmp(tag, "train/lr") == 0)
        return 0;
    snprintf(name, sizeof name, "%s", tag);
    for (char *q = name; *q; q++)
        if (*q == '/')
            *q = ' ';
    return add_point(c, name, (double)step, value);
}

static bool is_event_file(const uint8_t *d, size_t n, const char *path)
{
    return strstr(path, "tfevents") != NULL || (n >= 12 && d[8] + d[9] + d[10] + d[11] != 0 && memchr(d, '\n', n > 200 ? 200 : n) == NULL);
}

static struct flag plot_flags[] = {
    { "o", FLAG_STRING, "", "the PNG to write", NULL, false },
    { "width", FLAG_INT, "900", "image width in pixels", NULL, false },
    { "height", FLAG_INT, "560", "image height in pixels", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_PLOT ((int)(sizeof plot_flags / sizeof plot_flags[0]))

int cmd_plot(int argc, char **argv)
{
    const char *pos[1];
    int n_pos;
    int start = cli_parse_command("plot",
                                  "LOG_OR_EVENTS -o curve.png [flags]\n\nDraws the train loss and the test outputs "
                                  "against iteration from a Caffe-style log or a TensorBoard event file.",
                                  argc, argv, plot_flags, N_PLOT, pos, 1, &n_pos);
    if (start >= 0)
        return start;
    const char *out = cli_str(plot_flags, N_PLOT, "o");
    if (n_pos != 1) {
        fprintf(stderr, "crema plot: expected one log or event file (crema help plot lists the flags)\n");
        return 1;
    }
    if (!*out) {
        fprintf(stderr, "crema plot: -o is required: the PNG to write\n");
        return 1;
    }
    if (cli_check_file("plot", "input", pos[0]))
        return 1;
    const char *in = io_strip_file_uri(pos[0]);
    uint8_t *data = NULL;
    size_t len = 0;
    if (io_read_file(in, (size_t)1 << 32, &data, &len)) {
        fprintf(stderr, "crema plot: %s\n", crema_errmsg());
        return 1;
    }
    struct curves c = { 0 };
    int rc = is_event_file(data, len, in) ? tb_read(in, on_scalar, &c) : parse_log((const char *)data, &c);
    free(data);
    if (!rc && c.n == 0)
        rc = err_set(CREMA_ERR_INVALID, "%s: no loss or test output lines found", pos[0]);
    struct plot_curve pc[MAX_SERIES];
    static const uint32_t left_colors[] = { 0x1f77b4, 0xff7f0e, 0x9467bd, 0x8c564b };
    static const uint32_t right_colors[] = { 0x2ca02c, 0xd62728, 0x17becf, 0xbcbd22 };
    int nl = 0, nr = 0;
    for (int i = 0; !rc && i < c.n; i++) {
        bool loss = strstr(c.s[i].name, "loss") != NULL;
        pc[i] = (struct plot_curve){ c.s[i].name, c.s[i].x, c.s[i].y, c.s[i].n,
                                     loss ? left_colors[nl++ % 4] : right_colors[nr++ % 4], !loss };
    }
    if (!rc)
        rc = plot_png(io_strip_file_uri(out), (int)cli_int(plot_flags, N_PLOT, "width"),
                      (int)cli_int(plot_flags, N_PLOT, "height"), "iteration", "loss", "accuracy", pc, c.n);
    curves_free(&c);
    if (rc) {
        fprintf(stderr, "crema plot: %s\n", crema_errmsg());
        return 1;
    }
    fprintf(stderr, "crema plot: wrote %s\n", out);
    return 0;
}
