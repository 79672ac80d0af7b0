/* The solvers against Caffe: every case of ../shared/golden/solvers run with
 * crema's solver; weights and history after each iteration compared with
 * Caffe's snapshots, printed values with log_values.tsv; and restore. */
#define _GNU_SOURCE
#include "check.h"
#include "solver_testing.h"
#include "net/device.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"
#include "util/err.h"
#include "util/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- running a case ---- */

struct run {
    const char *solver;  /* solver file in the case folder */
    const char *weights; /* or NULL */
    const char *resume;  /* or NULL */
    const char *prefix;  /* snapshot prefix (always a temp path) */
    int max_iter;        /* -1: the file's */
};

/* Runs in the case folder (restoring the working directory after); the log
 * text comes back in *log_text. */
static int run_case(const char *dir, const struct run *r, char **log_text)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd) || chdir(dir) != 0)
        return err_set(CREMA_ERR_IO, "cannot enter %s", dir);
    Caffe__SolverParameter *p = NULL;
    int rc = solver_read_param(r->solver, &p);
    size_t len = 0;
    FILE *log = open_memstream(log_text, &len);
    if (!rc) {
        free(p->snapshot_prefix);
        p->snapshot_prefix = strdup(r->prefix);
        if (r->max_iter >= 0)
            p->max_iter = r->max_iter;
        if (r->weights) {
            for (size_t i = 0; i < p->n_weights; i++)
                free(p->weights[i]);
            free(p->weights);
            p->weights = malloc(sizeof *p->weights);
            p->weights[0] = strdup(r->weights);
            p->n_weights = 1;
        }
        struct solver *s = NULL;
        rc = solver_create(p, log, &s);
        /* $CREMA_TEST_DEVICE: the same runs on a GPU (or the mirror) */
        const char *dev = getenv("CREMA_TEST_DEVICE");
        const struct backend *be = NULL;
        if (!rc && dev && *dev && !(rc = device_open(dev, &be)))
            rc = solver_set_backend(s, be);
        if (!rc)
            rc = solver_solve(s, r->resume);
        solver_free(s);
        proto_free(&p->base);
    }
    fclose(log);
    if (chdir(cwd) != 0 && !rc)
        rc = err_set(CREMA_ERR_IO, "cannot go back to %s", cwd);
    return rc;
}

/* ---- comparing blobs ---- */

struct worst {
    double rel;       /* largest max|a-b| / max|golden| seen */
    double tol_ratio; /* largest error / allowed */
    char where[256];
};

static void compare_blob(const char *what, const float *a, size_t na, const float *g, size_t ng, int n_iter,
                         struct worst *w)
{
    CHECK_MSG(na == ng, "%s: %zu values, Caffe has %zu", what, na, ng);
    if (na != ng)
        return;
    double maxg = 0, maxd = 0;
    for (size_t i = 0; i < ng; i++) {
        maxg = fmax(maxg, fabs(g[i]));
        maxd = fmax(maxd, fabs((double)a[i] - g[i]));
    }
    double allowed = 1e-5 * n_iter * maxg + 1e-7;
    double rel = maxg > 0 ? maxd / maxg : maxd;
    if (maxd / allowed > w->tol_ratio) {
        w->tol_ratio = maxd / allowed;
        snprintf(w->where, sizeof w->where, "%s", what);
    }
    if (rel > w->rel)
        w->rel = rel;
    CHECK_MSG(maxd <= allowed, "%s: max |crema - caffe| = %g, allowed %g (max |caffe| %g)", what, maxd, allowed,
              maxg);
}

static int read_model(const char *path, Caffe__NetParameter **out)
{
    if (hdf5_is_snapshot_name(path))
        return hdf5_read_net(path, out);
    return proto_read_binary(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)out);
}

static int read_state(const char *path, Caffe__SolverState **out)
{
    if (hdf5_is_snapshot_name(path))
        return hdf5_read_solver_state(path, out);
    return proto_read_binary(path, &caffe__solver_state__descriptor, (ProtobufCMessage **)out);
}

static void compare_models(const char *mine, const char *gold, int n_iter, struct worst *w)
{
    Caffe__NetParameter *a = NULL, *g = NULL;
    CHECK_OK(read_model(mine, &a));
    CHECK_OK(read_model(gold, &g));
    if (!a || !g)
        goto out;
    for (size_t i = 0; i < g->n_layer; i++) {
        const Caffe__LayerParameter *gl = g->layer[i];
        if (!gl->n_blobs)
            continue;
        const Caffe__LayerParameter *al = NULL;
        for (size_t j = 0; j < a->n_layer; j++)
            if (a->layer[j]->name && strcmp(a->layer[j]->name, gl->name) == 0)
                al = a->layer[j];
        CHECK_MSG(al && al->n_blobs == gl->n_blobs, "%s: layer %s missing or with another blob count", mine,
                  gl->name);
        if (!al || al->n_blobs != gl->n_blobs)
            continue;
        for (size_t b = 0; b < gl->n_blobs; b++) {
            char what[300];
            snprintf(what, sizeof what, "%s %s/%zu", mine, gl->name, b);
            compare_blob(what, al->blobs[b]->data, al->blobs[b]->n_data, gl->blobs[b]->data, gl->blobs[b]->n_data,
                         n_iter, w);
        }
    }
out:
    if (a)
        proto_free(&a->base);
    if (g)
        proto_free(&g->base);
}

static void compare_states(const char *mine, const char *gold, int n_iter, struct worst *w)
{
    Caffe__SolverState *a = NULL, *g = NULL;
    CHECK_OK(read_state(mine, &a));
    CHECK_OK(read_state(gold, &g));
    if (a && g) {
        CHECK_EQ_INT(a->iter, g->iter);
        CHECK_EQ_INT(a->current_step, g->current_step);
        CHECK_EQ_INT(a->n_history, g->n_history);
        for (size_t i = 0; i < a->n_history && i < g->n_history; i++) {
            char what[300];
            snprintf(what, sizeof what, "%s history/%zu", mine, i);
            compare_blob(what, a->history[i]->data, a->history[i]->n_data, g->history[i]->data,
                         g->history[i]->n_data, n_iter, w);
        }
    }
    if (a)
        proto_free(&a->base);
    if (g)
        proto_free(&g->base);
}

/* ---- the log ---- */

struct value {
    char kind[8];
    int iter;
    char name[64];
    double v;
};

struct values {
    int n, cap;
    struct value *v;
};

static void values_add(struct values *vs, const char *kind, int iter, const char *name, double v)
{
    if (vs->n == vs->cap) {
        vs->cap = vs->cap ? 2 * vs->cap : 64;
        vs->v = realloc(vs->v, (size_t)vs->cap * sizeof *vs->v);
    }
    struct value *x = &vs->v[vs->n++];
    snprintf(x->kind, sizeof x->kind, "%s", kind);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->iter = iter;
    x->v = v;
}

/* The values log_values.tsv holds, taken from crema's log lines. */
static void parse_log(const char *text, struct values *vs)
{
    int iter = 0;
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        char buf[512];
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n >= sizeof buf)
            n = sizeof buf - 1;
        memcpy(buf, line, n);
        buf[n] = 0;
        int it, k;
        double x, y, z;
        char name[64];
        const char *loss = strstr(buf, "), loss = ");
        if (sscanf(buf, "Iteration %d (", &it) == 1 && loss) {
            iter = it;
            values_add(vs, "train", iter, "smoothed_loss", atof(loss + 10));
        } else if (sscanf(buf, "Iteration %d, lr = %lf", &it, &x) == 2) {
            values_add(vs, "train", it, "lr", x);
        } else if (sscanf(buf, "Iteration %d, loss = %lf", &it, &x) == 2) {
            iter = it;
            values_add(vs, "train", it, "smoothed_loss", x);
        } else if (sscanf(buf, "Iteration %d, Testing net", &it) == 1) {
            iter = it;
        } else if (sscanf(buf, "    Train net output #%d: %63s = %lf", &k, name, &x) == 3) {
            values_add(vs, "train", iter, name, x);
        } else if (sscanf(buf, "    Test net output #%d: %63s = %lf", &k, name, &x) == 3) {
            values_add(vs, "test", iter, name, x);
        } else if (sscanf(buf, "Gradient clipping: scaling down gradients (L2 norm %lf > %lf) by scale factor %lf",
                          &x, &y, &z) == 3) {
            values_add(vs, "clip", iter, "l2norm", x);
            values_add(vs, "clip", iter, "scale_factor", z);
        }
        line = nl ? nl + 1 : NULL;
    }
}

/* Every row of the golden table must be in crema's log, equal to the 6
 * significant digits Caffe printed (with float noise: 1e-4 relative). */
static double compare_log(const char *tsv, const char *log_text)
{
    struct values mine = { 0 };
    parse_log(log_text, &mine);
    FILE *f = fopen(tsv, "r");
    CHECK_MSG(f, "cannot open %s", tsv);
    double worst = 0;
    char line[512];
    int rows = 0;
    while (f && fgets(line, sizeof line, f)) {
        char kind[16], name[64];
        int iter;
        double v;
        if (sscanf(line, "%15s %d %63s %lf", kind, &iter, name, &v) != 4)
            continue;
        rows++;
        const struct value *found = NULL;
        for (int i = 0; i < mine.n; i++)
            if (!strcmp(mine.v[i].kind, kind) && mine.v[i].iter == iter && !strcmp(mine.v[i].name, name))
                found = &mine.v[i];
        CHECK_MSG(found, "%s: crema printed no %s %s at iteration %d", tsv, kind, name, iter);
        if (!found)
            continue;
        double d = fabs(found->v - v), rel = d / fmax(fabs(v), 1e-6);
        if (rel > worst)
            worst = rel;
        CHECK_MSG(d <= 1e-4 * fabs(v) + 1e-6, "%s: %s %s at iteration %d: crema %g, Caffe %g", tsv, kind, name, iter,
                  found->v, v);
    }
    CHECK_MSG(rows > 0, "%s has no rows", tsv);
    if (f)
        fclose(f);
    free(mine.v);
    return worst;
}

/* ---- the cases ---- */

static char *path2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Runs solver.prototxt with init.caffemodel and compares each iteration. */
static void golden_case(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "golden/solvers/%s", name);
    char *dir = check_shared(rel);
    char *tmp = abs_tmpdir(name);
    char *prefix = path2(tmp, "snap");
    char *log_text = NULL;
    struct run r = { "solver.prototxt", "init.caffemodel", NULL, prefix, -1 };
    CHECK_OK(run_case(dir, &r, &log_text));
    bool h5 = strcmp(name, "snapshot_hdf5") == 0;
    struct worst w = { 0 };
    for (int n = 1; n <= 6; n++) {
        char m[64], st[64];
        snprintf(m, sizeof m, "snap_iter_%d.caffemodel%s", n, h5 ? ".h5" : "");
        snprintf(st, sizeof st, "snap_iter_%d.solverstate%s", n, h5 ? ".h5" : "");
        char *mine_m = path2(tmp, m), *gold_m = path2(dir, m), *mine_s = path2(tmp, st), *gold_s = path2(dir, st);
        compare_models(mine_m, gold_m, n, &w);
        compare_states(mine_s, gold_s, n, &w);
        free(mine_m), free(gold_m), free(mine_s), free(gold_s);
    }
    char *tsv = path2(dir, "log_values.tsv");
    double worst_log = log_text ? compare_log(tsv, log_text) : 0;
    printf("  %-18s worst weight/history error: %.3g of max|caffe| (%.3g of the tolerance, %s); worst log value "
           "rel %.3g\n",
           name, w.rel, w.tol_ratio, w.where[0] ? w.where : "-", worst_log);
    free(tsv);
    free(log_text);
    free(prefix);
    free(tmp);
    free(dir);
}

#define GOLDEN(n)                                                                                                    \
    static void test_##n(void) { golden_case(#n); }
GOLDEN(sgd_momentum_step)
GOLDEN(nesterov)
GOLDEN(adagrad)
GOLDEN(rmsprop)
GOLDEN(adadelta)
GOLDEN(adam)
GOLDEN(sgd_l1)
GOLDEN(clip_gradients)
GOLDEN(iter_size2)
GOLDEN(lr_exp)
GOLDEN(lr_fixed)
GOLDEN(lr_inv)
GOLDEN(lr_multistep)
GOLDEN(lr_poly)
GOLDEN(lr_sigmoid)
GOLDEN(snapshot_hdf5)
GOLDEN(test_net)

/* Straight run to 8; crema resumed from its own states at 3 and at 4 equals
 * it byte for byte; resumed from Caffe's a_iter_3 (no data position) it
 * equals Caffe's own resumed run. */
static void test_restore(void)
{
    char *dir = check_shared("golden/solvers/restore");
    char *tmp = abs_tmpdir("restore");
    char *log_text = NULL;
    struct worst w = { 0 };

    char *straight = path2(tmp, "straight");
    struct run r = { "solver_straight.prototxt", "init.caffemodel", NULL, straight, -1 };
    CHECK_OK(run_case(dir, &r, &log_text));
    free(log_text);
    for (int n = 1; n <= 8; n++) {
        char m[64], st[64];
        snprintf(m, sizeof m, "straight_iter_%d.caffemodel", n);
        snprintf(st, sizeof st, "straight_iter_%d.solverstate", n);
        char *a = path2(tmp, m), *g = path2(dir, m), *as = path2(tmp, st), *gs = path2(dir, st);
        compare_models(a, g, n, &w);
        compare_states(as, gs, n, &w);
        free(a), free(g), free(as), free(gs);
    }

    const int at[2] = { 3, 4 };
    for (int k = 0; k < 2; k++) {
        char pa[64], pr[64], state[128];
        snprintf(pa, sizeof pa, "first%d", at[k]);
        snprintf(pr, sizeof pr, "resumed%d", at[k]);
        char *first = path2(tmp, pa), *resumed = path2(tmp, pr);
        struct run r1 = { "solver_straight.prototxt", "init.caffemodel", NULL, first, at[k] };
        CHECK_OK(run_case(dir, &r1, &log_text));
        free(log_text);
        snprintf(state, sizeof state, "%s_iter_%d.solverstate", first, at[k]);
        struct run r2 = { "solver_straight.prototxt", NULL, state, resumed, 8 };
        CHECK_OK(run_case(dir, &r2, &log_text));
        free(log_text);
        for (int n = at[k] + 1; n <= 8; n++) {
            char a[256], b[256];
            snprintf(a, sizeof a, "%s_iter_%d.caffemodel", resumed, n);
            snprintf(b, sizeof b, "%s_iter_%d.caffemodel", straight, n);
            CHECK_MSG(same_bytes(a, b), "%s differs from %s (crema resumed at %d vs straight)", a, b, at[k]);
        }
        free(first);
        free(resumed);
    }

    char *caffe_resumed = path2(tmp, "caffe_resumed");
    struct run r3 = { "solver_a2.prototxt", NULL, "a_iter_3.solverstate", caffe_resumed, -1 };
    CHECK_OK(run_case(dir, &r3, &log_text));
    free(log_text);
    for (int n = 4; n <= 6; n++) {
        char m[64], st[64];
        snprintf(m, sizeof m, "_iter_%d.caffemodel", n);
        snprintf(st, sizeof st, "_iter_%d.solverstate", n);
        char a[300], g[300], as[300], gs[300];
        snprintf(a, sizeof a, "%s%s", caffe_resumed, m);
        snprintf(g, sizeof g, "%s/a_resumed%s", dir, m);
        snprintf(as, sizeof as, "%s%s", caffe_resumed, st);
        snprintf(gs, sizeof gs, "%s/a_resumed%s", dir, st);
        compare_models(a, g, n, &w);
        compare_states(as, gs, n, &w);
    }
    printf("  restore            worst weight/history error: %.3g of max|caffe| (%.3g of the tolerance)\n", w.rel,
           w.tol_ratio);
    free(caffe_resumed);
    free(straight);
    free(tmp);
    free(dir);
}

CHECK_MAIN(CASE(test_sgd_momentum_step), CASE(test_nesterov), CASE(test_adagrad), CASE(test_rmsprop),
           CASE(test_adadelta), CASE(test_adam), CASE(test_sgd_l1), CASE(test_clip_gradients), CASE(test_iter_size2),
           CASE(test_lr_exp), CASE(test_lr_fixed), CASE(test_lr_inv), CASE(test_lr_multistep), CASE(test_lr_poly),
           CASE(test_lr_sigmoid), CASE(test_snapshot_hdf5), CASE(test_test_net), CASE(test_restore))
