/* Caffe's Solver and SGDSolver bookkeeping: nets from the SolverParameter,
 * the Step loop, tests, snapshots (binary and HDF5) and restore. */
#include "solvers/solver.h"
#include "dist/dist.h"
#include "layers/data_layer.h"
#include "net/blob_proto.h"
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

#define LOG(s, ...)                                 \
    do {                                            \
        if ((s)->log) {                             \
            fprintf((s)->log, __VA_ARGS__);         \
            fflush((s)->log);                       \
        }                                           \
    } while (0)

/* The data-parallel part, at the end of the file. */
/* Gradients travel in buckets of about this many bytes: big enough that a
 * call's latency is small next to its transfer, small enough that the first
 * buckets go out while backward still runs. */
#define GRAD_BUCKET_BYTES (4u << 20)

struct grad_bucket {
    int first, n_members; /* a range of solver_dist.order */
    int ready_layer;      /* its diffs are final once backward has done this layer */
    size_t count;
    float *buf;
    struct dist_request *req;
};

struct solver_dist {
    struct dist_comm *comm;
    int rank, size;
    int *order; /* learnable indices, in the order backward finishes them */
    int n_buckets, next_bucket;
    struct grad_bucket *buckets;
    bool reducing; /* this backward pass is the one whose gradients are summed */
};

static int dist_agree_action(struct solver *s, enum solver_action *action);
static int dist_finish_gradients(struct solver *s, int status);
static int dist_sync_state(struct solver *s, bool positions);
static void solver_dist_free(struct solver_dist *d);

static char *dup_str(const char *s)
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
    int rc = proto_read_text(path, &caffe__solver_parameter__descriptor, (ProtobufCMessage **)&p);
    if (rc)
        return rc;
    if (upgrade_solver_needed(p))
        rc = upgrade_solver(p, path, NULL);
    if (!rc)
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
    int rc = proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)out);
    if (!rc && upgrade_net_needed(*out))
        rc = upgrade_net(*out, path, NULL);
    if (rc && *out) {
        proto_free(&(*out)->base);
        *out = NULL;
    }
    return rc;
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

/* Caffe's ShareTrainedLayersWith: layers of the same name use the train
 * net's parameter buffers. */
static int share_trained_layers(struct net *test, const struct net *train)
{
    for (int i = 0; i < train->n_layers; i++) {
        struct layer *src = train->layers[i].layer;
        struct layer *dst = net_layer_by_name(test, src->name);
        if (!dst)
            continue;
        if (dst->n_blobs != src->n_blobs)
            return err_set(CREMA_ERR_SHAPE, "layer %s: the test net's has %d blobs, the train net's %d", src->name,
                           dst->n_blobs, src->n_blobs);
        for (int j = 0; j < src->n_blobs; j++) {
            if (!tensor_shape_equals(dst->blobs[j], src->blobs[j])) {
                char a[256], b[256];
                return err_set(CREMA_ERR_SHAPE, "layer %s: blob %d is %s in the test net but %s in the train net",
                               src->name, j, tensor_shape_string(dst->blobs[j], a, sizeof a),
                               tensor_shape_string(src->blobs[j], b, sizeof b));
            }
            if (!tensor_data(src->blobs[j]))
                return CREMA_ERR_NOMEM;
            int rc = tensor_share_data(dst->blobs[j], src->blobs[j]);
            if (rc)
                return rc;
        }
    }
    return CREMA_OK;
}

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
    int rc = share_trained_layers(tn, s->net);
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
        net_clear_param_diffs(s->net);
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
        float rate;
        if ((rc = solver_learning_rate(&s->update, &rate)))
            return rc;
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

char *solver_snapshot_name(const struct solver *s, const char *extension)
{
    const char *prefix = s->param->snapshot_prefix ? s->param->snapshot_prefix : "";
    size_t n = strlen(prefix) + strlen(extension) + 32;
    char *name = malloc(n);
    if (!name) {
        err_set(CREMA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(name, n, "%s_iter_%d%s", prefix, s->update.iter, extension);
    return name;
}

static void free_positions(Caffe__CremaDataPosition **pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        caffe__crema_data_position__free_unpacked(pos[i], NULL);
    free(pos);
}

/* Every data layer's position, train net first (net 0), then test nets. */
static int collect_positions(struct solver *s, Caffe__CremaDataPosition ***out, size_t *n_out)
{
    size_t n = 0, cap = 0;
    Caffe__CremaDataPosition **pos = NULL;
    int rc = CREMA_OK;
    for (int k = 0; !rc && k <= s->n_test_nets; k++) {
        struct net *net = k == 0 ? s->net : s->test_nets[k - 1];
        for (int i = 0; !rc && i < net->n_layers; i++) {
            struct layer *l = net->layers[i].layer;
            if (!l->kind->get_position)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 4;
                Caffe__CremaDataPosition **np = realloc(pos, cap * sizeof *np);
                if (!np) {
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                    break;
                }
                pos = np;
            }
            Caffe__CremaDataPosition *m = malloc(sizeof *m);
            if (!m) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            caffe__crema_data_position__init(m);
            pos[n++] = m;
            m->layer = dup_str(l->name);
            m->has_net = true;
            m->net = k;
            if (!m->layer)
                rc = CREMA_ERR_NOMEM;
            else if ((rc = l->kind->get_position(l, m)))
                err_prefix(rc, "layer %s: reading position", l->name);
        }
    }
    if (rc) {
        free_positions(pos, n);
        return rc;
    }
    *out = pos;
    *n_out = n;
    return CREMA_OK;
}

static int apply_positions(struct solver *s, Caffe__CremaDataPosition **pos, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const Caffe__CremaDataPosition *m = pos[i];
        if (!m->layer || m->net < 0 || m->net > s->n_test_nets)
            continue; /* a net or layer this solver does not have: as Caffe ignores unknown layers */
        struct net *net = m->net == 0 ? s->net : s->test_nets[m->net - 1];
        struct layer *l = net_layer_by_name(net, m->layer);
        if (!l || !l->kind->set_position)
            continue;
        int rc = l->kind->set_position(l, m);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

/* Caffe's HDF5 files leave out weights a layer shares with an earlier one. */
static void drop_shared_blobs(struct net *net, Caffe__NetParameter *np)
{
    for (int p = 0; p < net->n_params; p++) {
        if (net->param_owner[p] < 0)
            continue;
        Caffe__BlobProto *bp = np->layer[net->param_layer[p]]->blobs[net->param_layer_index[p]];
        caffe__blob_proto__free_unpacked(bp, NULL);
        bp = malloc(sizeof *bp);
        if (bp)
            caffe__blob_proto__init(bp);
        np->layer[net->param_layer[p]]->blobs[net->param_layer_index[p]] = bp;
    }
}

static int write_model(struct solver *s, bool h5, char **model_name)
{
    char *name = solver_snapshot_name(s, h5 ? ".caffemodel.h5" : ".caffemodel");
    if (!name)
        return CREMA_ERR_NOMEM;
    LOG(s, "Snapshotting to %s file %s\n", h5 ? "HDF5" : "binary proto", name);
    Caffe__NetParameter *np = NULL;
    int rc = net_to_proto(s->net, s->param->snapshot_diff, &np);
    if (!rc && h5) {
        drop_shared_blobs(s->net, np);
        for (size_t i = 0; i < np->n_layer && !rc; i++)
            for (size_t j = 0; j < np->layer[i]->n_blobs; j++)
                if (!np->layer[i]->blobs[j])
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        if (!rc)
            rc = hdf5_write_net(name, np, s->param->snapshot_diff);
    } else if (!rc) {
        rc = proto_write_binary(name, &np->base);
    }
    if (np)
        caffe__net_parameter__free_unpacked(np, NULL);
    if (rc) {
        free(name);
        return err_prefix(rc, "snapshot %s", name ? "model" : "");
    }
    *model_name = name;
    return CREMA_OK;
}

/* The positions as a uint8 dataset (a serialized SolverState carrying only
 * them) in an HDF5 state written at tmp; Caffe reads past unknown datasets. */
static int h5_add_positions(const char *tmp, Caffe__CremaDataPosition **pos, size_t n)
{
    Caffe__SolverState only = CAFFE__SOLVER_STATE__INIT;
    only.n_crema_data_position = n;
    only.crema_data_position = pos;
    size_t len = caffe__solver_state__get_packed_size(&only);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    caffe__solver_state__pack(&only, buf);
    int rc = CREMA_OK;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[1] = { len };
    hid_t space = f < 0 ? -1 : H5Screate_simple(1, dims, NULL);
    hid_t ds = space < 0 ? -1 : H5Dcreate2(f, "crema_data_position", H5T_STD_U8LE, space, H5P_DEFAULT,
                                           H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || (len && H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0))
        rc = err_set(CREMA_ERR_IO, "%s: cannot write dataset \"crema_data_position\"", tmp);
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = err_set(CREMA_ERR_IO, "%s: cannot close", tmp);
    free(buf);
    if (!rc) {
        int fd = open(tmp, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return rc;
}

static int h5_read_positions(const char *path, Caffe__SolverState **out)
{
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return err_set(CREMA_ERR_IO, "%s: cannot open as HDF5", path);
    int rc = CREMA_OK;
    if (H5Lexists(f, "crema_data_position", H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(f, "crema_data_position", H5P_DEFAULT);
        hid_t space = ds < 0 ? -1 : H5Dget_space(ds);
        hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
        uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (!buf || (n > 0 && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0))
            rc = err_set(CREMA_ERR_IO, "%s: cannot read dataset \"crema_data_position\"", path);
        else
            rc = proto_parse_binary(&caffe__solver_state__descriptor, buf, (size_t)n, path, (ProtobufCMessage **)out);
        free(buf);
        if (space >= 0)
            H5Sclose(space);
        if (ds >= 0)
            H5Dclose(ds);
    }
    H5Fclose(f);
    return rc;
}

static int write_state(struct solver *s, bool h5, const char *model_name)
{
    Caffe__SolverState st = CAFFE__SOLVER_STATE__INIT;
    st.has_iter = st.has_current_step = true;
    st.iter = s->update.iter;
    st.current_step = s->update.current_step;
    st.learned_net = (char *)model_name;
    Caffe__BlobProto *blobs = calloc((size_t)s->update.n_history + 1, sizeof *blobs);
    Caffe__BlobProto **hist = calloc((size_t)s->update.n_history + 1, sizeof *hist);
    char *name = solver_snapshot_name(s, h5 ? ".solverstate.h5" : ".solverstate");
    Caffe__CremaDataPosition **pos = NULL;
    size_t n_pos = 0;
    int rc = (!blobs || !hist || !name) ? err_set(CREMA_ERR_NOMEM, "out of memory") : CREMA_OK;
    for (int i = 0; !rc && i < s->update.n_history; i++) {
        caffe__blob_proto__init(&blobs[i]);
        hist[i] = &blobs[i];
        st.n_history = (size_t)i + 1;
        rc = tensor_to_proto(s->update.history[i], &blobs[i], false);
    }
    st.history = hist;
    if (!rc)
        rc = collect_positions(s, &pos, &n_pos);
    if (!rc) {
        LOG(s, "Snapshotting solver state to %s file %s\n", h5 ? "HDF5" : "binary proto", name);
        if (h5) {
            size_t n = strlen(name) + 32;
            char *tmp = malloc(n);
            if (!tmp) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            } else {
                snprintf(tmp, n, "%s.part.%ld", name, (long)getpid());
                rc = hdf5_write_solver_state(tmp, &st);
                if (!rc)
                    rc = h5_add_positions(tmp, pos, n_pos);
                if (!rc && rename(tmp, name) != 0)
                    rc = err_set(CREMA_ERR_IO, "%s: cannot rename into place", name);
                if (rc)
                    unlink(tmp);
                free(tmp);
            }
        } else {
            st.n_crema_data_position = n_pos;
            st.crema_data_position = pos;
            rc = proto_write_binary(name, &st.base);
        }
    }
    for (size_t i = 0; i < st.n_history; i++)
        blob_proto_clear(&blobs[i]);
    free(blobs);
    free(hist);
    free_positions(pos, n_pos);
    if (rc)
        err_prefix(rc, "snapshot %s", name ? name : "");
    free(name);
    return rc;
}

int solver_snapshot(struct solver *s)
{
    if (s->dist && s->dist->rank != 0)
        return CREMA_OK; /* every rank holds the same weights; rank 0 writes them */
    bool h5 = s->param->snapshot_format == CAFFE__SOLVER_PARAMETER__SNAPSHOT_FORMAT__HDF5;
    char *model = NULL;
    int rc = write_model(s, h5, &model);
    if (!rc)
        rc = write_state(s, h5, model);
    free(model);
    return rc;
}

int solver_restore(struct solver *s, const char *state_file)
{
    bool h5 = hdf5_is_snapshot_name(state_file);
    Caffe__SolverState *st = NULL, *extra = NULL;
    int rc = h5 ? hdf5_read_solver_state(state_file, &st)
                : proto_read_binary(state_file, &caffe__solver_state__descriptor, (ProtobufCMessage **)&st);
    if (!rc && h5)
        rc = h5_read_positions(state_file, &extra);
    if (rc)
        goto done;
    if (st->learned_net && *st->learned_net && (rc = net_load_weights(s->net, st->learned_net)))
        goto done;
    if ((int)st->n_history != s->update.n_history) {
        rc = err_set(CREMA_ERR_INVALID, "%s: %zu history blobs, the %s solver over this net has %d", state_file,
                     st->n_history, solver_kind_name(s->update.kind), s->update.n_history);
        goto done;
    }
    LOG(s, "SGDSolver: restoring history\n");
    for (int i = 0; i < s->update.n_history; i++) {
        struct tensor *h = s->update.history[i];
        if ((rc = tensor_from_proto(h, st->history[i], true)))
            goto done;
        if (h->count != s->params[i % s->update.n_params]->count) {
            rc = err_set(CREMA_ERR_SHAPE, "%s: history blob %d has %zu values, its parameter %zu", state_file, i,
                         h->count, s->params[i % s->update.n_params]->count);
            goto done;
        }
    }
    s->update.iter = st->iter;
    s->update.current_step = st->current_step;
    rc = apply_positions(s, st->crema_data_position, st->n_crema_data_position);
    if (!rc && extra)
        rc = apply_positions(s, extra->crema_data_position, extra->n_crema_data_position);
done:
    if (rc)
        err_prefix(rc, "restoring %s", state_file);
    if (st)
        proto_free(&st->base);
    if (extra)
        proto_free(&extra->base);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Data-parallel ranks */

static void grad_bucket_pack(struct solver *s, struct grad_bucket *b)
{
    size_t off = 0;
    for (int k = 0; k < b->n_members; k++) {
        struct tensor *t = s->params[s->dist->order[b->first + k]];
        memcpy(b->buf + off, tensor_diff(t), t->count * sizeof(float));
        off += t->count;
    }
}

static int grad_bucket_start(struct solver *s, struct grad_bucket *b)
{
    grad_bucket_pack(s, b);
    return dist_allreduce_start(s->dist->comm, b->buf, b->count, &b->req);
}

/* The net's per-layer backward hook: sends every bucket that is complete. */
static int dist_on_backward_layer(struct net *net, int layer, void *ctx)
{
    (void)net;
    struct solver *s = ctx;
    struct solver_dist *d = s->dist;
    if (!d->reducing)
        return CREMA_OK;
    while (d->next_bucket < d->n_buckets && d->buckets[d->next_bucket].ready_layer >= layer) {
        int rc = grad_bucket_start(s, &d->buckets[d->next_bucket]);
        d->next_bucket++;
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

/* Waits for every bucket sent (always, so no buffer stays in flight); on
 * success the summed gradients, divided by the number of ranks, replace the
 * local ones. */
static int dist_finish_gradients(struct solver *s, int status)
{
    struct solver_dist *d = s->dist;
    int rc = status;
    for (; !rc && d->next_bucket < d->n_buckets; d->next_bucket++)
        rc = grad_bucket_start(s, &d->buckets[d->next_bucket]);
    for (int i = 0; i < d->n_buckets; i++) {
        struct grad_bucket *b = &d->buckets[i];
        if (!b->req)
            continue;
        int w = dist_wait(b->req);
        b->req = NULL;
        if (!rc)
            rc = w;
    }
    d->next_bucket = 0;
    d->reducing = false;
    if (rc)
        return rc;
    const float scale = 1.0f / (float)d->size;
    for (int i = 0; i < d->n_buckets; i++) {
        struct grad_bucket *b = &d->buckets[i];
        size_t off = 0;
        for (int k = 0; k < b->n_members; k++) {
            struct tensor *t = s->params[d->order[b->first + k]];
            float *diff = tensor_diff(t);
            for (size_t j = 0; j < t->count; j++)
                diff[j] = b->buf[off + j] * scale;
            off += t->count;
        }
    }
    return CREMA_OK;
}

/* Orders the learnable parameters by the last layer backward reaches that
 * uses them (shared ones are final only after their lowest user), then cuts
 * that order into buckets. */
static int dist_plan_buckets(struct solver *s)
{
    struct solver_dist *d = s->dist;
    struct net *net = s->net;
    int n = net->n_learnable;
    int *ready = malloc(((size_t)n + 1) * sizeof *ready);
    d->order = malloc(((size_t)n + 1) * sizeof *d->order);
    d->buckets = calloc((size_t)n + 1, sizeof *d->buckets);
    if (!ready || !d->order || !d->buckets) {
        free(ready);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        ready[i] = net->n_layers;
    for (int p = 0; p < net->n_params; p++) {
        int li = net->param_learnable[p];
        if (li >= 0 && li < n && net->param_layer[p] < ready[li])
            ready[li] = net->param_layer[p];
    }
    /* insertion sort: later layers first, then later parameters first */
    for (int i = 0; i < n; i++) {
        int x = n - 1 - i, j = i;
        while (j > 0 && ready[d->order[j - 1]] < ready[x]) {
            d->order[j] = d->order[j - 1];
            j--;
        }
        d->order[j] = x;
    }
    /* CREMA_DIST_BUCKET_KB overrides the size (tests, tuning) */
    size_t limit = GRAD_BUCKET_BYTES;
    const char *env = getenv("CREMA_DIST_BUCKET_KB");
    if (env && atol(env) > 0)
        limit = (size_t)atol(env) * 1024;
    int rc = CREMA_OK;
    for (int i = 0; i < n && !rc; i++) {
        struct tensor *t = s->params[d->order[i]];
        struct grad_bucket *b = d->n_buckets ? &d->buckets[d->n_buckets - 1] : NULL;
        if (!b || (b->count + t->count) * sizeof(float) > limit) {
            b = &d->buckets[d->n_buckets++];
            b->first = i;
            b->ready_layer = net->n_layers;
        }
        b->n_members++;
        b->count += t->count;
        if (ready[d->order[i]] < b->ready_layer)
            b->ready_layer = ready[d->order[i]];
    }
    for (int i = 0; i < d->n_buckets && !rc; i++)
        if (!(d->buckets[i].buf = malloc((d->buckets[i].count + 1) * sizeof(float))))
            rc = err_set(CREMA_ERR_NOMEM, "out of memory for the gradient buckets");
    free(ready);
    return rc;
}

static void solver_dist_free(struct solver_dist *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_buckets; i++) {
        if (d->buckets[i].req)
            dist_wait(d->buckets[i].req);
        free(d->buckets[i].buf);
    }
    free(d->buckets);
    free(d->order);
    free(d);
}

/* A signal seen by any rank acts on every rank, at the same iteration. */
static int dist_agree_action(struct solver *s, enum solver_action *action)
{
    float votes[2] = { *action == SOLVER_ACTION_STOP, *action == SOLVER_ACTION_SNAPSHOT };
    int rc = dist_allreduce_sum(s->dist->comm, votes, 2);
    if (rc)
        return rc;
    *action = votes[1] > 0 ? SOLVER_ACTION_SNAPSHOT : votes[0] > 0 ? SOLVER_ACTION_STOP : SOLVER_ACTION_NONE;
    return CREMA_OK;
}

static int check_same_message(struct solver_dist *d, const ProtobufCMessage *m, const char *what)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    protobuf_c_message_pack(m, buf);
    int rc = dist_check_same(d->comm, buf, n, what);
    free(buf);
    return rc;
}

/* Where rank r of n should start reading for its batches to follow rank 0's
 * (whose position is `record`): rank 0's next record is the first multiple
 * of n at or after it; rank r's is r past that. The reader skips forward to
 * its own records, so any start past the group rank 0 last read will do. */
static uint64_t shard_record(uint64_t record, int rank, int size)
{
    uint64_t n = (uint64_t)size, next0 = (record + n - 1) / n * n;
    return next0 >= n ? next0 - n + (uint64_t)rank + 1 : 0;
}

/* Every rank takes rank 0's reading positions (Data layers shifted to their
 * own shard; other kinds keep their own, as they read every record). */
static int dist_sync_positions(struct solver *s)
{
    struct solver_dist *d = s->dist;
    Caffe__CremaDataPosition **pos = NULL;
    size_t n_pos = 0;
    uint8_t *buf = NULL;
    uint64_t len = 0;
    int rc = CREMA_OK;
    if (d->rank == 0) {
        if ((rc = collect_positions(s, &pos, &n_pos)))
            return rc;
        Caffe__SolverState only = CAFFE__SOLVER_STATE__INIT;
        only.n_crema_data_position = n_pos;
        only.crema_data_position = pos;
        len = caffe__solver_state__get_packed_size(&only);
        if ((buf = malloc(len ? len : 1)))
            caffe__solver_state__pack(&only, buf);
        free_positions(pos, n_pos);
        if (!buf)
            len = UINT64_MAX; /* tells the others to give up too */
    }
    if ((rc = dist_broadcast(d->comm, &len, sizeof len, 0)))
        goto done;
    if (len == UINT64_MAX) {
        rc = err_set(CREMA_ERR_NOMEM, "rank 0: out of memory packing the data positions");
        goto done;
    }
    if (d->rank != 0 && !(buf = malloc(len ? len : 1))) {
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = dist_broadcast(d->comm, buf, len, 0)) || d->rank == 0)
        goto done;
    Caffe__SolverState *st = NULL;
    if ((rc = proto_parse_binary(&caffe__solver_state__descriptor, buf, len, "rank 0's data positions",
                                 (ProtobufCMessage **)&st)))
        goto done;
    for (size_t i = 0; i < st->n_crema_data_position && !rc; i++) {
        Caffe__CremaDataPosition *m = st->crema_data_position[i];
        if (!m->layer || m->net < 0 || m->net > s->n_test_nets)
            continue;
        struct net *net = m->net == 0 ? s->net : s->test_nets[m->net - 1];
        struct layer *l = net_layer_by_name(net, m->layer);
        if (!l || !l->kind->set_position || strcmp(l->kind->type, "Data") != 0)
            continue;
        m->record = shard_record(m->record, d->rank, d->size);
        m->n_rng_state = 0; /* each rank keeps its own generator */
        rc = l->kind->set_position(l, m);
        if (rc) {
            /* past the end of the database: this rank's next record is in
             * the next pass */
            m->record = 0;
            m->epoch++;
            rc = l->kind->set_position(l, m);
        }
    }
    proto_free(&st->base);
done:
    free(buf);
    return rc;
}

/* Rank 0's iteration, weights and history (and reading positions) to all. */
static int dist_sync_state(struct solver *s, bool positions)
{
    struct solver_dist *d = s->dist;
    int32_t iters[2] = { s->update.iter, s->update.current_step };
    int rc = dist_broadcast(d->comm, iters, sizeof iters, 0);
    for (int p = 0; !rc && p < s->net->n_params; p++) {
        if (s->net->param_owner[p] >= 0)
            continue;
        struct tensor *t = s->net->params[p];
        float *data = tensor_data(t);
        rc = data ? dist_broadcast(d->comm, data, t->count * sizeof(float), 0) : CREMA_ERR_NOMEM;
    }
    for (int i = 0; !rc && i < s->update.n_history; i++) {
        struct tensor *h = s->update.history[i];
        float *data = tensor_data(h);
        rc = data ? dist_broadcast(d->comm, data, h->count * sizeof(float), 0) : CREMA_ERR_NOMEM;
    }
    if (!rc && positions)
        rc = dist_sync_positions(s);
    if (rc)
        return err_prefix(rc, "taking rank 0's state");
    s->update.iter = iters[0];
    s->update.current_step = iters[1];
    return CREMA_OK;
}

static int dist_shard_net(struct solver *s, struct net *net, const char *which)
{
    struct solver_dist *d = s->dist;
    for (int i = 0; i < net->n_layers; i++) {
        struct layer *l = net->layers[i].layer;
        if (l->kind->set_shard) {
            int rc = data_layer_set_shard(l, d->rank, d->size);
            if (rc)
                return err_prefix(rc, "%s net", which);
        } else if (l->kind->get_position && d->rank == 0) {
            LOG(s, "Note: %s net layer %s (%s) is not sharded: every rank reads all of its data\n", which, l->name,
                l->kind->type);
        }
    }
    return CREMA_OK;
}

int solver_set_dist(struct solver *s, struct dist_comm *comm)
{
    if (s->dist)
        return err_set(CREMA_ERR_INVALID, "solver: already part of a distributed job");
    struct solver_dist *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    d->comm = comm;
    d->rank = dist_rank(comm);
    d->size = dist_size(comm);
    s->dist = d;
    int rc = check_same_message(d, &s->param->base, "solver definition");
    if (!rc)
        rc = check_same_message(d, &s->net->param->base, "train net");
    for (int i = 0; !rc && i < s->n_test_nets; i++)
        rc = check_same_message(d, &s->test_nets[i]->param->base, "test net");
    if (!rc)
        rc = dist_shard_net(s, s->net, "train");
    for (int i = 0; !rc && i < s->n_test_nets; i++)
        rc = dist_shard_net(s, s->test_nets[i], "test");
    if (!rc)
        rc = dist_plan_buckets(s);
    if (!rc)
        rc = dist_sync_state(s, false);
    if (rc) {
        s->dist = NULL;
        solver_dist_free(d);
        return rc;
    }
    s->net->on_backward_layer = dist_on_backward_layer;
    s->net->on_backward_ctx = s;
    LOG(s, "Rank %d of %d: batch sizes are per rank; gradients are averaged over %d ranks in %d bucket%s\n",
        d->rank, d->size, d->size, d->n_buckets, d->n_buckets == 1 ? "" : "s");
    return CREMA_OK;
}
