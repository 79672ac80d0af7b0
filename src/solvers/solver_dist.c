/* The solver as one rank of a data-parallel job: gradients summed in
 * buckets while backward runs, shards, and state agreed among ranks. */
#include "solvers/solver_internal.h"
#include "dist/dist.h"
#include "layers/data_source.h"
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


static int grad_bucket_pack(struct solver *s, struct grad_bucket *b)
{
    size_t off = 0;
    for (int k = 0; k < b->n_members; k++) {
        struct tensor *t = s->params[s->dist->order[b->first + k]];
        const float *diff = tensor_cdiff(t); /* fetched from a device when newer there */
        if (!diff)
            return CREMA_ERR_NOMEM;
        memcpy(b->buf + off, diff, t->count * sizeof(float));
        off += t->count;
    }
    return CREMA_OK;
}

/* The device path: the bucket's diffs gathered on the device, summed there. */
static int grad_bucket_start_device(struct solver *s, struct grad_bucket *b)
{
    struct solver_dist *d = s->dist;
    const struct backend *be = d->dev_be;
    float *buf = tensor_data_on(b->dev, be);
    if (!buf)
        return CREMA_ERR_NOMEM;
    size_t off = 0;
    for (int k = 0; k < b->n_members; k++) {
        struct tensor *t = s->params[d->order[b->first + k]];
        const float *diff = tensor_cdiff_on(t, be);
        if (!diff)
            return CREMA_ERR_NOMEM;
        be->math->copy(be, t->count, diff, buf + off);
        off += t->count;
    }
    d->dev_started = true;
    return be->comm->allreduce_start(be, d->dev_comm, buf, b->count);
}

static int grad_bucket_start(struct solver *s, struct grad_bucket *b)
{
    if (s->dist->dev_comm)
        return grad_bucket_start_device(s, b);
    int rc = grad_bucket_pack(s, b);
    return rc ? rc : dist_allreduce_start(s->dist->comm, b->buf, b->count, &b->req);
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
 * local ones: on the device when the sums ran there, else on the host. */
int dist_finish_gradients(struct solver *s, int status)
{
    struct solver_dist *d = s->dist;
    const struct backend *be = d->dev_be;
    int rc = status;
    for (; !rc && d->next_bucket < d->n_buckets; d->next_bucket++)
        rc = grad_bucket_start(s, &d->buckets[d->next_bucket]);
    if (d->dev_started) {
        int w = be->comm->allreduce_finish(be, d->dev_comm);
        d->dev_started = false;
        rc = rc ? rc : w;
    }
    for (int i = 0; i < d->n_buckets; i++) {
        struct grad_bucket *b = &d->buckets[i];
        if (!b->req)
            continue;
        int w = dist_wait(b->req);
        b->req = NULL;
        rc = rc ? rc : w;
    }
    d->next_bucket = 0;
    d->reducing = false;
    if (rc)
        return rc;
    const float scale = 1.0f / (float)d->size;
    for (int i = 0; i < d->n_buckets; i++) {
        struct grad_bucket *b = &d->buckets[i];
        const float *dev_buf = d->dev_comm ? tensor_cdata_on(b->dev, be) : NULL;
        if (d->dev_comm && !dev_buf)
            return CREMA_ERR_NOMEM;
        size_t off = 0;
        for (int k = 0; k < b->n_members; k++) {
            struct tensor *t = s->params[d->order[b->first + k]];
            if (d->dev_comm) {
                float *diff = tensor_diff_on(t, be);
                if (!diff)
                    return CREMA_ERR_NOMEM;
                be->math->copy(be, t->count, dev_buf + off, diff);
                be->math->scal(be, (int)t->count, scale, diff);
            } else {
                float *diff = tensor_diff(t);
                if (!diff)
                    return CREMA_ERR_NOMEM;
                for (size_t j = 0; j < t->count; j++)
                    diff[j] = b->buf[off + j] * scale;
            }
            off += t->count;
        }
    }
    return d->dev_comm ? be->status(be) : CREMA_OK;
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

void solver_dist_free(struct solver_dist *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_buckets; i++) {
        if (d->buckets[i].req)
            dist_wait(d->buckets[i].req);
        free(d->buckets[i].buf);
        tensor_free(d->buckets[i].dev);
    }
    if (d->dev_comm)
        d->dev_be->comm->close(d->dev_be, d->dev_comm);
    free(d->buckets);
    free(d->order);
    free(d);
}

/* A signal seen by any rank acts on every rank, at the same iteration. */
int dist_agree_action(struct solver *s, enum solver_action *action)
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
        if (!l || !data_source_follows_rank0(l))
            continue;
        m->record = shard_record(m->record, d->rank, d->size);
        m->n_rng_state = 0; /* each rank keeps its own generator */
        rc = data_source_set_position(l, m);
        if (rc) {
            /* past the end of the database: this rank's next record is in
             * the next pass */
            m->record = 0;
            m->epoch++;
            rc = data_source_set_position(l, m);
        }
    }
    proto_free(&st->base);
done:
    free(buf);
    return rc;
}

/* Rank 0's iteration, weights and history (and reading positions) to all. */
int dist_sync_state(struct solver *s, bool positions)
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
        if (data_source_shardable(l)) {
            int rc = data_source_set_shard(l, d->rank, d->size);
            if (rc)
                return err_prefix(rc, "%s net", which);
        } else if (data_source_has_position(l) && d->rank == 0) {
            LOG(s, "Note: %s net layer %s (%s) is not sharded: every rank reads all of its data\n", which, l->name,
                l->kind->type);
        }
    }
    return CREMA_OK;
}

/* Where the ranks sum gradients: in device memory (NCCL) when the update
 * computes on a device with collectives and no two ranks share a GPU (NCCL
 * needs one GPU per rank); else on the host. Every rank decides alike, from
 * the same gathered table. CREMA_DIST_HOST=1 keeps the sums on the host. */
static int dist_setup_device(struct solver *s)
{
    struct solver_dist *d = s->dist;
    const struct backend *be = s->update.be;
    const char *force_host = getenv("CREMA_DIST_HOST");
    struct where {
        uint64_t host;
        int32_t device, device_comm;
    } me = { 1469598103934665603ull, -1, 0 };
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    for (const char *c = host; *c; c++) /* FNV-1a of the host name */
        me.host = (me.host ^ (uint8_t)*c) * 1099511628211ull;
    if (!be->host_memory) {
        me.device = be->device_id;
        me.device_comm = be->comm && !(force_host && *force_host == '1');
    }
    struct where *all = calloc((size_t)d->size, sizeof *all);
    if (!all)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    int rc = dist_allgather(d->comm, &me, sizeof me, all);
    bool device = !rc;
    int shared_with = -1;
    for (int r = 0; device && r < d->size; r++) {
        device = all[r].device >= 0 && all[r].device_comm;
        for (int q = 0; device && q < r; q++)
            if (all[q].host == all[r].host && all[q].device == all[r].device) {
                device = false;
                shared_with = q;
            }
    }
    if (!rc && shared_with >= 0)
        LOG(s, "Ranks share GPU %d of one host: gradients are summed on the host\n", all[shared_with].device);
    free(all);
    if (rc || !device)
        return rc;
    d->dev_be = be;
    uint8_t id[512];
    if (be->comm->id_bytes > sizeof id)
        return err_set(CREMA_ERR_UNSUPPORTED, "%s: a collective id of %zu bytes", be->name, be->comm->id_bytes);
    /* rank 0's id to all; if it cannot make one, the others hear so */
    int made = d->rank == 0 ? be->comm->make_id(be, id) : CREMA_OK;
    int32_t ok = made == CREMA_OK;
    if (d->rank == 0 && !ok)
        memset(id, 0, be->comm->id_bytes);
    if ((rc = dist_broadcast(d->comm, &ok, sizeof ok, 0)) ||
        (rc = dist_broadcast(d->comm, id, be->comm->id_bytes, 0)))
        return rc;
    if (!ok)
        return d->rank == 0 ? made : err_set(CREMA_ERR_DIST, "rank 0 could not set up the GPU collectives");
    if ((rc = be->comm->open(be, d->rank, d->size, id, dist_timeout_ms(d->comm), &d->dev_comm)))
        return err_prefix(rc, "rank %d: joining the GPU collectives", d->rank);
    for (int i = 0; i < d->n_buckets; i++) {
        int shape[1] = { (int)d->buckets[i].count };
        if (!(d->buckets[i].dev = tensor_new()) || tensor_reshape(d->buckets[i].dev, 1, shape))
            return err_set(CREMA_ERR_NOMEM, "out of memory for the gradient buckets");
    }
    LOG(s, "Rank %d of %d: gradients are summed on %s\n", d->rank, d->size, be->name);
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
        rc = dist_setup_device(s);
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
