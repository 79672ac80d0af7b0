/* Caffe's Solver and SGDSolver bookkeeping: nets from the SolverParameter,
 * the Step loop and tests. Snapshots are solver_snapshot.c's, the
 * data-parallel part solver_dist.c's. */
#include "solvers/solver_internal.h"
#include "dist/dist.h"
#include "core/blob_proto.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "util/err.h"

#include <hdf5.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *dup_str(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        err_set(CREMA_ERR_NOMEM, "out of memory");
    return d;
}

/* ---------------------------------------------------------------------- */
/* Reading the solver */

static bool is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Caffe's UpgradeSnapshotPrefixProperty (boost path semantics): no prefix
 * gives the solver file without its extension; a directory gets the solver
 * file's stem appended. */
static int default_snapshot_prefix(Caffe__SolverParameter *p, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t stem_len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *prefix = NULL;
    if (!p->snapshot_prefix) {
        size_t n = (size_t)(base - path) + stem_len;
        prefix = malloc(n + 1);
        if (prefix) {
            memcpy(prefix, path, n);
            prefix[n] = 0;
        }
    } else if (is_directory(p->snapshot_prefix)) {
        size_t pl = strlen(p->snapshot_prefix);
        prefix = malloc(pl + stem_len + 2);
        if (prefix) {
            memcpy(prefix, p->snapshot_prefix, pl);
            size_t o = pl;
            if (pl == 0 || p->snapshot_prefix[pl - 1] != '/')
                prefix[o++] = '/';
            memcpy(prefix + o, base, stem_len);
            prefix[o + stem_len] = 0;
        }
    } else {
        return CREMA_OK;
    }
    if (!prefix)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    free(p->snapshot_prefix);
    p->snapshot_prefix = prefix;
    return CREMA_OK;
}

int solver_read_param(const char *path, Caffe__SolverParameter **out)
{
    *out = NULL;
    Caffe__SolverParameter *p = NULL;
    int rc = upgrade_read_solver(path, &p);
    if (rc)
        return rc;
    rc = default_snapshot_prefix(p, path);
    if (rc) {
        proto_free(&p->base);
        return rc;
    }
    *out = p;
    return CREMA_OK;
}

static int read_net_file(const char *path, Caffe__NetParameter **out)
{
    return upgrade_read_net(path, false, out);
}

/* ---------------------------------------------------------------------- */
/* Building */

/* NetState::MergeFrom: set scalars overwrite, stages append. */
struct state_buf {
    Caffe__NetState st;
    char *stages[64];
};

static int state_merge(struct state_buf *b, const Caffe__NetState *from)
{
    if (!from)
        return CREMA_OK;
    if (from->has_phase) {
        b->st.has_phase = true;
        b->st.phase = from->phase;
    }
    if (from->has_level) {
        b->st.has_level = true;
        b->st.level = from->level;
    }
    for (size_t i = 0; i < from->n_stage; i++) {
        if (b->st.n_stage >= sizeof b->stages / sizeof b->stages[0])
            return err_set(CREMA_ERR_INVALID, "net state: more than 64 stages");
        b->stages[b->st.n_stage++] = from->stage[i];
    }
    b->st.stage = b->stages;
    return CREMA_OK;
}

static uint64_t seed_from_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* Caffe's InitTrainNet: exactly one of train_net_param, train_net,
 * net_param, net; the state is TRAIN, then the net's own, then train_state. */
static int build_train_net(struct solver *s, uint64_t seed)
{
    const Caffe__SolverParameter *p = s->param;
    int given = (p->train_net_param != NULL) + (p->train_net != NULL) + (p->net_param != NULL) + (p->net != NULL);
    if (given != 1)
        return err_set(CREMA_ERR_INVALID, "solver: give exactly one of train_net_param, train_net, net_param and "
                       "net (got %d)", given);
    Caffe__NetParameter *np = NULL;
    const Caffe__NetParameter *use;
    const char *what;
    int rc = CREMA_OK;
    if (p->train_net_param) {
        use = p->train_net_param, what = "train_net_param";
        LOG(s, "Creating training net specified in train_net_param.\n");
    } else if (p->net_param) {
        use = p->net_param, what = "net_param";
        LOG(s, "Creating training net specified in net_param.\n");
    } else {
        what = p->train_net ? p->train_net : p->net;
        LOG(s, "Creating training net from %s file: %s\n", p->train_net ? "train_net" : "net", what);
        if ((rc = read_net_file(what, &np)))
            return err_prefix(rc, "solver: %s", p->train_net ? "train_net" : "net");
        use = np;
    }
    struct state_buf sb = { .st = CAFFE__NET_STATE__INIT };
    sb.st.has_phase = true;
    sb.st.phase = CAFFE__PHASE__TRAIN;
    rc = state_merge(&sb, use->state);
    if (!rc)
        rc = state_merge(&sb, p->train_state);
    if (!rc)
        rc = net_build(use, &sb.st, seed, &s->net);
    if (rc)
        err_prefix(rc, "solver: train net (%s)", what);
    if (np)
        proto_free(&np->base);
    return rc;
}

/* Caffe's InitTestNets: test_net_param, then test_net files, then as many
 * instances of net/net_param as test_iter has entries left. */
static int build_test_nets(struct solver *s, uint64_t seed)
{
    const Caffe__SolverParameter *p = s->param;
    bool generic = p->net || p->net_param;
    int n_params = (int)p->n_test_net_param, n_files = (int)p->n_test_net;
    int n_explicit = n_params + n_files;
    int n_iter = (int)p->n_test_iter;
    if (generic ? n_iter < n_explicit : n_iter != n_explicit)
        return err_set(CREMA_ERR_INVALID, "solver: test_iter must be given for each test net (%d test_iter for %d "
                       "test nets)", n_iter, n_explicit);
    int n_generic = generic ? n_iter - n_explicit : 0;
    int n = n_explicit + n_generic;
    if (p->n_test_state && (int)p->n_test_state != n)
        return err_set(CREMA_ERR_INVALID, "solver: test_state must be unspecified or given for each of the %d test "
                       "nets (got %zu)", n, p->n_test_state);
    if (n > 0 && p->test_interval <= 0 && p->has_test_interval)
        return err_set(CREMA_ERR_INVALID, "solver: test_interval must be positive, got %d", p->test_interval);
    s->test_nets = calloc((size_t)n + 1, sizeof *s->test_nets);
    if (!s->test_nets)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        Caffe__NetParameter *np = NULL;
        const Caffe__NetParameter *use;
        const char *what;
        int rc = CREMA_OK;
        if (i < n_params) {
            use = p->test_net_param[i], what = "test_net_param";
            LOG(s, "Creating test net (#%d) specified by test_net_param\n", i);
        } else if (i < n_explicit) {
            what = p->test_net[i - n_params];
            LOG(s, "Creating test net (#%d) specified by test_net file: %s\n", i, what);
            rc = read_net_file(what, &np);
            use = np;
        } else if (p->net_param) {
            use = p->net_param, what = "net_param";
            LOG(s, "Creating test net (#%d) specified by net_param\n", i);
        } else {
            what = p->net;
            LOG(s, "Creating test net (#%d) specified by net file: %s\n", i, what);
            rc = read_net_file(what, &np);
            use = np;
        }
        if (rc)
            return err_prefix(rc, "solver: test net #%d", i);
        struct state_buf sb = { .st = CAFFE__NET_STATE__INIT };
        sb.st.has_phase = true;
        sb.st.phase = CAFFE__PHASE__TEST;
        rc = state_merge(&sb, use->state);
        if (!rc && p->n_test_state)
            rc = state_merge(&sb, p->test_state[i]);
        if (!rc)
            rc = net_build(use, &sb.st, seed + 1 + (uint64_t)i, &s->test_nets[i]);
        if (np)
            proto_free(&np->base);
        if (rc)
            return err_prefix(rc, "solver: test net #%d (%s)", i, what);
        s->n_test_nets = i + 1;
    }
    return CREMA_OK;
}

/* Caffe's LoadNetWeights: a comma-separated list, each copied in turn. */
static int load_weights_list(struct solver *s, const char *list)
{
    char *copy = dup_str(list);
    if (!copy)
        return CREMA_ERR_NOMEM;
    int rc = CREMA_OK;
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w && !rc; w = strtok_r(NULL, ",", &save)) {
        LOG(s, "Finetuning from %s\n", w);
        rc = net_load_weights(s->net, w);
    }
    free(copy);
    return rc;
}

static int message_clone(const ProtobufCMessage *m, ProtobufCMessage **out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    protobuf_c_message_pack(m, buf);
    int rc = proto_parse_binary(m->descriptor, buf, n, "solver parameters", out);
    free(buf);
    return rc;
}

int solver_create(const Caffe__SolverParameter *param, FILE *log, struct solver **out)
{
    *out = NULL;
    struct solver *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    s->log = log;
    int rc = message_clone(&param->base, (ProtobufCMessage **)&s->param);
    const Caffe__SolverParameter *p = s->param;
    if (!rc)
        rc = solver_check_param(p); /* before the nets open their sources */
    if (!rc && p->average_loss < 1)
        rc = err_set(CREMA_ERR_INVALID, "solver: average_loss must be at least 1, got %d", p->average_loss);
    if (!rc && p->iter_size < 1)
        rc = err_set(CREMA_ERR_INVALID, "solver: iter_size must be at least 1, got %d", p->iter_size);
    if (!rc && p->snapshot > 0 && !p->snapshot_prefix)
        rc = err_set(CREMA_ERR_INVALID, "solver: snapshot is set but snapshot_prefix is not");
    uint64_t seed = 0;
    if (!rc) {
        seed = p->random_seed >= 0 ? (uint64_t)p->random_seed : seed_from_clock();
        rc = build_train_net(s, seed);
    }
    if (!rc)
        rc = build_test_nets(s, seed);
    for (size_t i = 0; !rc && i < p->n_weights; i++)
        rc = load_weights_list(s, p->weights[i]);
    if (!rc) {
        int n = s->net->n_learnable;
        s->params = calloc((size_t)n + 1, sizeof *s->params);
        s->lr_mult = calloc((size_t)n + 1, sizeof *s->lr_mult);
        s->decay_mult = calloc((size_t)n + 1, sizeof *s->decay_mult);
        s->losses = calloc((size_t)p->average_loss, sizeof *s->losses);
        if (!s->params || !s->lr_mult || !s->decay_mult || !s->losses)
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        for (int i = 0; !rc && i < n; i++) {
            s->params[i] = s->net->learnable[i].tensor;
            s->lr_mult[i] = s->net->learnable[i].lr_mult;
            s->decay_mult[i] = s->net->learnable[i].decay_mult;
        }
        if (!rc)
            rc = solver_update_init(&s->update, s->param, n, s->params, s->lr_mult, s->decay_mult);
        s->update.log = log;
    }
    if (rc) {
        solver_free(s);
        return rc;
    }
    *out = s;
    return CREMA_OK;
}

int solver_set_backend(struct solver *s, const struct backend *be)
{
    if (s->dist)
        return err_set(CREMA_ERR_INVALID, "solver: choose the device before joining the ranks (solver_set_dist)");
    int rc = net_set_backend(s->net, be, s->log);
    for (int i = 0; !rc && i < s->n_test_nets; i++)
        rc = net_set_backend(s->test_nets[i], be, NULL);
    if (!rc)
        s->update.be = be;
    return rc;
}

void solver_free(struct solver *s)
{
    if (!s)
        return;
    solver_dist_free(s->dist);
    solver_update_free(&s->update);
    for (int i = 0; i < s->n_test_nets; i++)
        net_free(s->test_nets[i]);
    free(s->test_nets);
    net_free(s->net);
    free(s->params);
    free(s->lr_mult);
    free(s->decay_mult);
    free(s->losses);
    if (s->param)
        proto_free(&s->param->base);
    free(s);
}

/* ---------------------------------------------------------------------- */
/* Testing */

/* The action asked for since the last call; with ranks, agreed by all. */
static int requested_action(struct solver *s, enum solver_action *a)
{
    *a = s->action ? s->action(s->action_ctx) : SOLVER_ACTION_NONE;
    return s->dist ? dist_agree_action(s, a) : CREMA_OK;
}

static int solver_test(struct solver *s, int id)
{
    struct net *tn = s->test_nets[id];
    const Caffe__SolverParameter *p = s->param;
    int n_iter = p->test_iter[id];
    LOG(s, "Iteration %d, Testing net (#%d)\n", s->update.iter, id);
    int rc = net_share_trained_layers(tn, s->net);
    if (rc)
        return err_prefix(rc, "test net #%d", id);
    size_t n_scores = 0;
    float *score = NULL;
    int *score_output = NULL;
    float loss = 0;
    for (int i = 0; i < n_iter; i++) {
        for (;;) {
            enum solver_action a;
            if ((rc = requested_action(s, &a)))
                goto done;
            if (a == SOLVER_ACTION_NONE)
                break;
            if (a == SOLVER_ACTION_SNAPSHOT && (rc = solver_snapshot(s)))
                goto done;
            if (a == SOLVER_ACTION_STOP)
                s->requested_early_exit = true;
        }
        if (s->requested_early_exit)
            break;
        float iter_loss;
        if ((rc = net_forward(tn, &iter_loss)))
            goto done;
        if (p->test_compute_loss)
            loss += iter_loss;
        size_t idx = 0;
        for (int j = 0; j < tn->n_outputs; j++) {
            struct tensor *t = tn->blobs[tn->output_ids[j]];
            const float *d = tensor_data(t);
            if (!d) {
                rc = CREMA_ERR_NOMEM;
                goto done;
            }
            for (size_t k = 0; k < t->count; k++, idx++) {
                if (i == 0) {
                    float *ns = realloc(score, (idx + 1) * sizeof *score);
                    int *no = ns ? realloc(score_output, (idx + 1) * sizeof *score_output) : NULL;
                    if (ns)
                        score = ns;
                    if (no)
                        score_output = no;
                    if (!ns || !no) {
                        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                        goto done;
                    }
                    score[idx] = d[k];
                    score_output[idx] = j;
                    n_scores = idx + 1;
                } else if (idx < n_scores) {
                    score[idx] += d[k];
                }
            }
        }
    }
    if (s->requested_early_exit) {
        LOG(s, "Test interrupted.\n");
        goto done;
    }
    /* Each rank tested its own shard: the means over every rank's batches. */
    float n_batches = (float)n_iter;
    if (s->dist) {
        float *sum = malloc((n_scores + 1) * sizeof *sum);
        if (!sum) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            goto done;
        }
        sum[0] = loss;
        memcpy(sum + 1, score, n_scores * sizeof *sum);
        rc = dist_allreduce_sum(s->dist->comm, sum, n_scores + 1);
        loss = sum[0];
        memcpy(score, sum + 1, n_scores * sizeof *sum);
        free(sum);
        if (rc)
            goto done;
        n_batches *= (float)s->dist->size;
    }
    if (p->test_compute_loss) {
        loss /= n_batches;
        LOG(s, "Test loss: %g\n", loss);
    }
    for (size_t i = 0; i < n_scores; i++) {
        int bi = tn->output_ids[score_output[i]];
        float w = tn->blob_loss_weights[bi];
        float mean = score[i] / n_batches;
        if (w != 0)
            LOG(s, "    Test net output #%zu: %s = %g (* %g = %g loss)\n", i, tn->blob_names[bi], mean, w, w * mean);
        else
            LOG(s, "    Test net output #%zu: %s = %g\n", i, tn->blob_names[bi], mean);
        score[i] = mean;
    }
    if (s->after_test) {
        const char **names = malloc((n_scores ? n_scores : 1) * sizeof *names);
        if (!names) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n_scores; i++)
            names[i] = tn->blob_names[tn->output_ids[score_output[i]]];
        rc = s->after_test(s, id, (int)n_scores, names, score, s->after_test_ctx);
        free(names);
    }
done:
    free(score);
    free(score_output);
    return rc;
}

int solver_test_all(struct solver *s)
{
    for (int i = 0; i < s->n_test_nets && !s->requested_early_exit; i++) {
        int rc = solver_test(s, i);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

/* ---------------------------------------------------------------------- */
/* Training */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void update_smoothed_loss(struct solver *s, float loss, int start_iter)
{
    int average = s->param->average_loss;
    if (s->n_losses < average) {
        s->losses[s->n_losses++] = loss;
        s->smoothed_loss = (s->smoothed_loss * (float)(s->n_losses - 1) + loss) / (float)s->n_losses;
    } else {
        int idx = (s->update.iter - start_iter) % average;
        s->smoothed_loss += (loss - s->losses[idx]) / (float)average;
        s->losses[idx] = loss;
    }
}

static void display_outputs(struct solver *s)
{
    struct net *net = s->net;
    int score = 0;
    for (int j = 0; j < net->n_outputs; j++) {
        int bi = net->output_ids[j];
        struct tensor *t = net->blobs[bi];
        const float *d = tensor_data(t);
        float w = net->blob_loss_weights[bi];
        for (size_t k = 0; d && k < t->count; k++) {
            if (w != 0)
                LOG(s, "    Train net output #%d: %s = %g (* %g = %g loss)\n", score++, net->blob_names[bi], d[k], w,
                    w * d[k]);
            else
                LOG(s, "    Train net output #%d: %s = %g\n", score++, net->blob_names[bi], d[k]);
        }
    }
}

int solver_step(struct solver *s, int iters)
{
    const Caffe__SolverParameter *p = s->param;
    const int start_iter = s->update.iter, stop_iter = s->update.iter + iters;
    s->n_losses = 0;
    s->smoothed_loss = 0;
    double timer = now_seconds();
    int iters_last = s->update.iter;
    int rc = CREMA_OK;
    while (s->update.iter < stop_iter) {
        if ((rc = net_clear_param_diffs(s->net)))
            return rc;
        if (p->test_interval > 0 && s->update.iter % p->test_interval == 0 &&
            (s->update.iter > 0 || p->test_initialization)) {
            if ((rc = solver_test_all(s)))
                return rc;
            if (s->requested_early_exit)
                break;
        }
        bool display = p->display > 0 && s->update.iter % p->display == 0;
        float loss = 0;
        for (int i = 0; i < p->iter_size; i++) {
            float l;
            /* the last pass's backward sends the summed gradients */
            if (s->dist)
                s->dist->reducing = i == p->iter_size - 1;
            if ((rc = net_forward(s->net, &l)) || (rc = net_backward(s->net)))
                break;
            loss += l;
        }
        if (s->dist)
            rc = dist_finish_gradients(s, rc);
        if (rc)
            return rc;
        loss /= (float)p->iter_size;
        update_smoothed_loss(s, loss, start_iter);
        if (display) {
            double lapse = now_seconds() - timer;
            double per_s = (double)(s->update.iter - iters_last) / (lapse != 0 ? lapse : 1);
            LOG(s, "Iteration %d (%g iter/s, %gs/%d iters), loss = %g\n", s->update.iter, per_s, lapse, p->display,
                s->smoothed_loss);
            timer = now_seconds();
            iters_last = s->update.iter;
            display_outputs(s);
        }
        float rate = solver_learning_rate(&s->update);
        if (display)
            LOG(s, "Iteration %d, lr = %g\n", s->update.iter, rate);
        s->rate = rate;
        if ((rc = solver_apply_update(&s->update, rate)))
            return rc;
        s->update.iter++;
        enum solver_action a;
        if ((rc = requested_action(s, &a)))
            return rc;
        if ((p->snapshot > 0 && s->update.iter % p->snapshot == 0) || a == SOLVER_ACTION_SNAPSHOT)
            if ((rc = solver_snapshot(s)))
                return rc;
        if (s->after_iter && (rc = s->after_iter(s, s->after_iter_ctx)))
            return rc;
        if (a == SOLVER_ACTION_STOP) {
            s->requested_early_exit = true;
            break;
        }
    }
    return CREMA_OK;
}

int solver_solve(struct solver *s, const char *resume_file)
{
    const Caffe__SolverParameter *p = s->param;
    LOG(s, "Solving %s\n", s->net->name);
    LOG(s, "Learning Rate Policy: %s\n", p->lr_policy ? p->lr_policy : "");
    s->requested_early_exit = false;
    int rc;
    /* With ranks, rank 0 alone reads the state and hands it to the others. */
    if (resume_file && (!s->dist || s->dist->rank == 0)) {
        LOG(s, "Restoring previous solver status from %s\n", resume_file);
        if ((rc = solver_restore(s, resume_file)))
            return rc;
    }
    if (resume_file && s->dist && (rc = dist_sync_state(s, true)))
        return rc;
    int start_iter = s->update.iter;
    if ((rc = solver_step(s, p->max_iter - s->update.iter)))
        return rc;
    if (p->snapshot_after_train && (p->snapshot <= 0 || s->update.iter % p->snapshot != 0))
        if ((rc = solver_snapshot(s)))
            return rc;
    if (s->requested_early_exit) {
        LOG(s, "Optimization stopped early.\n");
        return CREMA_OK;
    }
    if (p->display > 0 && s->update.iter % p->display == 0) {
        float loss;
        if ((rc = net_forward(s->net, &loss)))
            return rc;
        update_smoothed_loss(s, loss, start_iter);
        LOG(s, "Iteration %d, loss = %g\n", s->update.iter, s->smoothed_loss);
    }
    if (p->test_interval > 0 && s->update.iter % p->test_interval == 0)
        if ((rc = solver_test_all(s)))
            return rc;
    LOG(s, "Optimization Done.\n");
    return CREMA_OK;
}

/* ---------------------------------------------------------------------- */
/* Snapshots */
