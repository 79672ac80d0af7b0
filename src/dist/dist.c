/* The dist module: configuration from flags and launcher environments, the
 * communicator over Gloo and the rendezvous, asynchronous allreduce, and the
 * diagnosis that turns a failed collective into "lost rank N". */
#include "dist/dist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist/gloo_shim.h"
#include "dist/rendezvous.h"
#include "dist/sha256.h"
#include "util/err.h"

#define DIST_MSG 1024

struct dist_request {
    struct dist_comm *comm;
    float *buf;
    size_t n;
    uint32_t tag;
    uint64_t seq;
    bool done;
    int status;
    char msg[DIST_MSG];
    struct dist_request *next;
};

struct dist_comm {
    int rank, size, timeout_ms;
    struct rdv_server *server;
    struct rdv_client *client;
    struct gloo_shim *gloo;
    uint32_t next_tag;
    _Atomic uint64_t seq; /* collectives entered; the heartbeat reports it */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    char failed[DIST_MSG]; /* once a collective failed, every later call fails alike */
    bool stopping;
    bool fail_fast; /* create failed: rank 0 need not wait for the others to leave */
    bool heartbeat_running, worker_running;
    pthread_t heartbeat, worker;
    struct dist_request *head, *tail;
};

void dist_config_init(struct dist_config *c)
{
    memset(c, 0, sizeof *c);
    c->rank = -1;
    c->size = -1;
    c->transport = DIST_ETHERNET;
    c->timeout_ms = DIST_DEFAULT_TIMEOUT_MS;
}

int dist_transport_parse(const char *s, enum dist_transport *out)
{
    if (s && strcmp(s, "ethernet") == 0)
        *out = DIST_ETHERNET;
    else if (s && strcmp(s, "infiniband") == 0)
        *out = DIST_INFINIBAND;
    else
        return err_set(CREMA_ERR_INVALID, "connection '%s': expected ethernet or infiniband", s ? s : "");
    return CREMA_OK;
}

static int env_int(const char *name, int *out, bool *found)
{
    const char *v = getenv(name);
    *found = v != NULL;
    if (!v)
        return CREMA_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > 1000000)
        return err_set(CREMA_ERR_INVALID, "environment %s='%s': expected a non-negative integer", name, v);
    *out = (int)x;
    return CREMA_OK;
}

int dist_config_from_env(struct dist_config *c)
{
    /* launchers in the order they are most specific */
    static const char *const pairs[][2] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                           {"PMI_RANK", "PMI_SIZE"},
                                           {"SLURM_PROCID", "SLURM_NTASKS"},
                                           {"CREMA_RANK", "CREMA_SIZE"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int rank = -1, size = -1;
        bool has_rank, has_size;
        int rc = env_int(pairs[i][0], &rank, &has_rank);
        if (!rc)
            rc = env_int(pairs[i][1], &size, &has_size);
        if (rc)
            return rc;
        if (!has_rank && !has_size)
            continue;
        if (has_rank != has_size)
            return err_set(CREMA_ERR_INVALID, "environment: %s is set but %s is not",
                           pairs[i][has_rank ? 0 : 1], pairs[i][has_rank ? 1 : 0]);
        if (c->rank < 0)
            c->rank = rank;
        if (c->size < 0)
            c->size = size;
        break;
    }
    if (!c->rendezvous)
        c->rendezvous = getenv("CREMA_MASTER");
    if (!c->secret)
        c->secret = getenv("CREMA_SECRET");
    if (!c->iface)
        c->iface = getenv("CREMA_IFACE");
    return CREMA_OK;
}

/* The IPv4 address of a named interface, for gloo's device to bind. */
static int iface_address(const char *iface, char *ip, size_t ip_len)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return err_set(CREMA_ERR_DIST, "-iface %s: getifaddrs: %s", iface, strerror(errno));
    char names[256] = "";
    size_t used = 0;
    bool found = false;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        if (strcmp(i->ifa_name, iface) == 0) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, (socklen_t)ip_len);
            found = true;
            break;
        }
        if (used + strlen(i->ifa_name) + 3 < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", i->ifa_name);
    }
    freeifaddrs(ifs);
    if (!found)
        return err_set(CREMA_ERR_DIST, "-iface %s: no such interface with an IPv4 address (interfaces: %s)", iface,
                       names);
    return CREMA_OK;
}

/* The local address that routes to host: what peers can reach us at. */
static int route_address(const char *host, int port, char *ip, size_t ip_len)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res)
        return err_set(CREMA_ERR_DIST, "rendezvous: cannot resolve '%s': %s", host, gai_strerror(rc));
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in local;
    socklen_t ll = sizeof local;
    /* a UDP connect sends nothing; it only picks the route */
    int ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
             getsockname(fd, (struct sockaddr *)&local, &ll) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    if (!ok)
        return err_set(CREMA_ERR_DIST, "rendezvous: no route to '%s': %s", host, strerror(e));
    inet_ntop(AF_INET, &local.sin_addr, ip, (socklen_t)ip_len);
    return CREMA_OK;
}

/* ---- store callbacks for gloo ---- */

static int store_set(void *ctx, const char *key, const void *value, size_t n)
{
    return rdv_set(ctx, key, value, n);
}

static int store_get(void *ctx, const char *key, void **value, size_t *n, int timeout_ms)
{
    return rdv_get(ctx, key, value, n, timeout_ms);
}

static int store_wait(void *ctx, const char *const *keys, int n_keys, int timeout_ms)
{
    return rdv_wait(ctx, keys, n_keys, timeout_ms);
}

/* ---- heartbeat: tells rank 0 which collective this rank is in ---- */

static void *heartbeat_main(void *arg)
{
    struct dist_comm *c = arg;
    uint64_t sent = UINT64_MAX;
    int64_t sent_ms = 0;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        uint64_t seq = atomic_load(&c->seq);
        int64_t now = rdv_now_ms();
        if (seq != sent || now - sent_ms >= 1000) {
            pthread_mutex_unlock(&c->mu);
            int rc = rdv_heartbeat(c->client, seq);
            pthread_mutex_lock(&c->mu);
            if (rc)
                break; /* rank 0 is gone; the next collective will say so */
            sent = seq;
            sent_ms = now;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- diagnosis ---- */

/* Sets the message for a failed collective: which rank was lost or is late.
 * Called on the thread that ran it; remembers the message for later calls. */
static int dist_explain(struct dist_comm *c, const char *op, uint64_t my_seq, int code, const char *gloo_msg)
{
    char msg[DIST_MSG];
    double secs = c->timeout_ms / 1000.0;
    if (!c->client) {
        snprintf(msg, sizeof msg, "%s failed%s: %s (the file rendezvous cannot tell which rank)", op,
                 code == GLOO_SHIM_TIMEOUT ? " (timed out)" : "", gloo_msg);
        goto done;
    }
    struct rdv_peer *peers = calloc((size_t)c->size, sizeof *peers);
    if (!peers) {
        snprintf(msg, sizeof msg, "%s failed: %s", op, gloo_msg);
        goto done;
    }
    /* the server may see the closed socket a moment after we do */
    int64_t until = rdv_now_ms() + 2000;
    for (;;) {
        if (rdv_status(c->client, peers, c->size, 3000)) {
            snprintf(msg, sizeof msg, "%s (in %s)", err_msg(), op);
            break;
        }
        int lost = -1, late = -1, silent = -1;
        for (int r = 0; r < c->size; r++) {
            if (r == c->rank)
                continue;
            if (peers[r].state == RDV_LOST && lost < 0)
                lost = r;
            if (peers[r].state == RDV_ALIVE && peers[r].seq < my_seq && (late < 0 || peers[r].seq < peers[late].seq))
                late = r;
            /* heartbeats come every second: several missed is a rank that is
             * stopped, hung or cut off */
            if (peers[r].state == RDV_ALIVE && peers[r].age_ms > 3000 &&
                (silent < 0 || peers[r].age_ms > peers[silent].age_ms))
                silent = r;
        }
        if (lost >= 0) {
            snprintf(msg, sizeof msg, "lost rank %d: %s (in %s)", lost, peers[lost].reason, op);
            break;
        }
        if (code == GLOO_SHIM_TIMEOUT) {
            if (silent >= 0)
                snprintf(msg, sizeof msg,
                         "timed out after %.0f s waiting for rank %d (in %s: rank %d has been silent for %.0f s: "
                         "stopped, hung or cut off; it is at collective %llu, this rank at %llu)",
                         secs, silent, op, silent, peers[silent].age_ms / 1000.0,
                         (unsigned long long)peers[silent].seq, (unsigned long long)my_seq);
            else if (late >= 0)
                snprintf(msg, sizeof msg,
                         "timed out after %.0f s waiting for rank %d (in %s: rank %d is at collective %llu, "
                         "this rank at %llu)",
                         secs, late, op, late, (unsigned long long)peers[late].seq, (unsigned long long)my_seq);
            else
                snprintf(msg, sizeof msg, "timed out after %.0f s in %s (every rank is alive): %s", secs, op,
                         gloo_msg);
            break;
        }
        if (rdv_now_ms() >= until) {
            /* Nobody is lost but a peer hung up: it gave up waiting, and a
             * rank that is behind is the one everybody was waiting for. */
            if (late >= 0)
                snprintf(msg, sizeof msg,
                         "timed out after %.0f s waiting for rank %d (in %s: a peer gave up first; rank %d is at "
                         "collective %llu, this rank at %llu)",
                         secs, late, op, late, (unsigned long long)peers[late].seq, (unsigned long long)my_seq);
            else
                snprintf(msg, sizeof msg, "%s failed: %s", op, gloo_msg);
            break;
        }
        usleep(100000);
    }
    free(peers);
done:
    pthread_mutex_lock(&c->mu);
    if (!c->failed[0])
        snprintf(c->failed, sizeof c->failed, "%s", msg);
    pthread_mutex_unlock(&c->mu);
    return err_set(CREMA_ERR_DIST, "%s", msg);
}

static int dist_check_failed(struct dist_comm *c)
{
    pthread_mutex_lock(&c->mu);
    int rc = CREMA_OK;
    if (c->failed[0])
        rc = err_set(CREMA_ERR_DIST, "%s", c->failed);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Each collective gets the next tag (the same on every rank, since every
 * rank calls them in the same order) and bumps the progress counter. */
static uint32_t dist_enter(struct dist_comm *c, uint64_t *seq)
{
    *seq = atomic_fetch_add(&c->seq, 1) + 1;
    return c->next_tag++;
}

/* ---- create / free ---- */

int dist_comm_create(const struct dist_config *cfg, struct dist_comm **out)
{
    *out = NULL;
    if (cfg->size < 1)
        return err_set(CREMA_ERR_INVALID, "dist: the number of ranks is not set (size %d): give -clusterSize, or "
                       "start under mpirun/srun", cfg->size);
    if (cfg->rank < 0 || cfg->rank >= cfg->size)
        return err_set(CREMA_ERR_INVALID, "dist: rank %d is out of range for a job of %d ranks (0..%d)", cfg->rank,
                       cfg->size, cfg->size - 1);
    if (cfg->timeout_ms <= 0)
        return err_set(CREMA_ERR_INVALID, "dist: timeout %d ms must be positive", cfg->timeout_ms);
    struct dist_comm *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(CREMA_ERR_NOMEM, "dist: out of memory");
    c->rank = cfg->rank;
    c->size = cfg->size;
    c->timeout_ms = cfg->timeout_ms;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    atomic_init(&c->seq, 0);
    if (c->size == 1) {
        *out = c; /* one rank: every collective is trivial */
        return CREMA_OK;
    }
    /* A peer that dies closes its sockets; writing to one must fail the
     * call (and name the rank), not kill this process with SIGPIPE. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    int rc = CREMA_OK;
    char ip[INET6_ADDRSTRLEN] = "";
    const char *rdv = cfg->rendezvous;
    if (!rdv || !*rdv) {
        rc = err_set(CREMA_ERR_INVALID, "dist: no rendezvous: give -rendezvous tcp://host:port or file:///dir, or "
                     "set CREMA_MASTER=host:port");
        goto fail;
    }
    if (cfg->iface && *cfg->iface && (rc = iface_address(cfg->iface, ip, sizeof ip)))
        goto fail;

    char errbuf[DIST_MSG];
    int code;
    if (strncmp(rdv, "file://", 7) == 0) {
        const char *dir = rdv + 7;
        if (!*dir) {
            rc = err_set(CREMA_ERR_INVALID, "rendezvous '%s': no directory", rdv);
            goto fail;
        }
        code = gloo_shim_create(c->rank, c->size, NULL, dir, ip, cfg->transport == DIST_INFINIBAND, c->timeout_ms,
                                &c->gloo, errbuf, sizeof errbuf);
    } else {
        char host[256];
        int port;
        if ((rc = rdv_parse_address(rdv, host, sizeof host, &port)))
            goto fail;
        if (!cfg->secret || !*cfg->secret) {
            rc = err_set(CREMA_ERR_INVALID, "dist: the tcp rendezvous needs a shared secret: give -secret or set "
                         "CREMA_SECRET (the same on every rank)");
            goto fail;
        }
        if (!ip[0] && (rc = route_address(host, port, ip, sizeof ip)))
            goto fail;
        if (c->rank == 0 && (rc = rdv_server_start(host, port, cfg->secret, c->size, &c->server)))
            goto fail;
        if ((rc = rdv_client_connect(host, port, cfg->secret, c->rank, c->size, c->timeout_ms, &c->client)))
            goto fail;
        struct gloo_shim_store store = {c->client, store_set, store_get, store_wait};
        code = gloo_shim_create(c->rank, c->size, &store, NULL, ip, cfg->transport == DIST_INFINIBAND,
                                c->timeout_ms, &c->gloo, errbuf, sizeof errbuf);
    }
    if (code != GLOO_SHIM_OK) {
        rc = err_set(CREMA_ERR_DIST, "dist: rank %d of %d could not connect: %s", c->rank, c->size, errbuf);
        goto fail;
    }
    if (c->client) {
        if (pthread_create(&c->heartbeat, NULL, heartbeat_main, c) != 0) {
            rc = err_set(CREMA_ERR_DIST, "dist: cannot start the heartbeat thread");
            goto fail;
        }
        c->heartbeat_running = true;
    }
    *out = c;
    return CREMA_OK;
fail:
    {
        /* keep the message across the teardown */
        char keep[DIST_MSG];
        snprintf(keep, sizeof keep, "%s", err_msg());
        c->fail_fast = true;
        dist_comm_free(c);
        return err_set(rc, "%s", keep);
    }
}

void dist_comm_free(struct dist_comm *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (c->worker_running)
        pthread_join(c->worker, NULL); /* it finishes the queue first */
    if (c->heartbeat_running)
        pthread_join(c->heartbeat, NULL);
    gloo_shim_free(c->gloo);
    if (c->client) {
        rdv_leave(c->client);
        rdv_client_free(c->client);
    }
    /* Rank 0 serves the others until they leave; after a failure only
     * briefly (they may still ask who was lost), so that the job ends
     * within its -dist_timeout and not up to 10 s after. */
    int failed_wait = c->timeout_ms / 50 < 500 ? c->timeout_ms / 50 : 500;
    if (c->server)
        rdv_server_stop(c->server, c->fail_fast ? 500 : c->failed[0] ? failed_wait
                                   : c->timeout_ms < 10000 ? c->timeout_ms : 10000);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int dist_rank(const struct dist_comm *c) { return c->rank; }
int dist_size(const struct dist_comm *c) { return c->size; }
int dist_timeout_ms(const struct dist_comm *c) { return c->timeout_ms; }

/* ---- collectives ---- */

enum dist_op_kind { DIST_OP_ALLREDUCE, DIST_OP_BROADCAST, DIST_OP_BARRIER, DIST_OP_ALLGATHER };

struct dist_op {
    enum dist_op_kind kind;
    const char *name; /* for messages */
    void *buf;        /* allreduce/broadcast in place, allgather's receive side */
    const void *send; /* allgather's send side */
    size_t n;         /* floats for allreduce, bytes otherwise */
    int root;
};

/* The part every blocking collective shares: refuse after a failure, take the
 * next tag, run the shim call, and explain a failure with its sequence number. */
static int dist_collective(struct dist_comm *c, const struct dist_op *op)
{
    int rc = dist_check_failed(c);
    if (rc)
        return rc;
    uint64_t seq;
    uint32_t tag = dist_enter(c, &seq);
    char errbuf[DIST_MSG];
    int code = 0;
    switch (op->kind) {
    case DIST_OP_ALLREDUCE:
        code = gloo_shim_allreduce_sum(c->gloo, op->buf, op->n, tag, errbuf, sizeof errbuf);
        break;
    case DIST_OP_BROADCAST:
        code = gloo_shim_broadcast(c->gloo, op->buf, op->n, op->root, tag, errbuf, sizeof errbuf);
        break;
    case DIST_OP_BARRIER:
        code = gloo_shim_barrier(c->gloo, tag, errbuf, sizeof errbuf);
        break;
    case DIST_OP_ALLGATHER:
        code = gloo_shim_allgather(c->gloo, op->send, op->n, op->buf, tag, errbuf, sizeof errbuf);
        break;
    }
    return code ? dist_explain(c, op->name, seq, code, errbuf) : CREMA_OK;
}

int dist_allreduce_sum(struct dist_comm *c, float *buf, size_t n)
{
    if (c->size == 1 || n == 0)
        return CREMA_OK;
    struct dist_op op = { .kind = DIST_OP_ALLREDUCE, .name = "allreduce", .buf = buf, .n = n };
    return dist_collective(c, &op);
}

int dist_broadcast(struct dist_comm *c, void *buf, size_t bytes, int root)
{
    if (root < 0 || root >= c->size)
        return err_set(CREMA_ERR_INVALID, "broadcast: root %d is out of range for %d ranks", root, c->size);
    if (c->size == 1 || bytes == 0)
        return CREMA_OK;
    struct dist_op op = { .kind = DIST_OP_BROADCAST, .name = "broadcast", .buf = buf, .n = bytes,
                          .root = root };
    return dist_collective(c, &op);
}

int dist_barrier(struct dist_comm *c)
{
    if (c->size == 1)
        return CREMA_OK;
    struct dist_op op = { .kind = DIST_OP_BARRIER, .name = "barrier" };
    return dist_collective(c, &op);
}

int dist_allgather(struct dist_comm *c, const void *send, size_t bytes, void *recv)
{
    if (bytes == 0)
        return CREMA_OK;
    if (c->size == 1) {
        memmove(recv, send, bytes);
        return CREMA_OK;
    }
    struct dist_op op = { .kind = DIST_OP_ALLGATHER, .name = "allgather", .buf = recv, .send = send,
                          .n = bytes };
    return dist_collective(c, &op);
}

/* ---- asynchronous allreduce: one worker thread runs requests in order ---- */

static void *worker_main(void *arg)
{
    struct dist_comm *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->head && !c->stopping)
            pthread_cond_wait(&c->cond, &c->mu);
        struct dist_request *r = c->head;
        if (!r)
            break; /* stopping and drained */
        bool failed = c->failed[0] != 0;
        if (failed)
            snprintf(r->msg, sizeof r->msg, "%s", c->failed);
        pthread_mutex_unlock(&c->mu);
        int status = CREMA_OK;
        if (failed) {
            status = CREMA_ERR_DIST;
        } else {
            char errbuf[DIST_MSG];
            int code = gloo_shim_allreduce_sum(c->gloo, r->buf, r->n, r->tag, errbuf, sizeof errbuf);
            if (code) {
                status = dist_explain(c, "allreduce", r->seq, code, errbuf);
                snprintf(r->msg, sizeof r->msg, "%s", err_msg());
            }
        }
        pthread_mutex_lock(&c->mu);
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        r->status = status;
        r->done = true;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int dist_allreduce_start(struct dist_comm *c, float *buf, size_t n, struct dist_request **req)
{
    *req = NULL;
    struct dist_request *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(CREMA_ERR_NOMEM, "dist: out of memory");
    r->comm = c;
    r->buf = buf;
    r->n = n;
    if (c->size == 1 || n == 0) {
        r->done = true;
        *req = r;
        return CREMA_OK;
    }
    int rc = dist_check_failed(c);
    if (rc) {
        free(r);
        return rc;
    }
    r->tag = dist_enter(c, &r->seq);
    pthread_mutex_lock(&c->mu);
    if (!c->worker_running) {
        if (pthread_create(&c->worker, NULL, worker_main, c) != 0) {
            pthread_mutex_unlock(&c->mu);
            free(r);
            return err_set(CREMA_ERR_DIST, "dist: cannot start the allreduce thread");
        }
        c->worker_running = true;
    }
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    *req = r;
    return CREMA_OK;
}

int dist_wait(struct dist_request *r)
{
    if (!r)
        return CREMA_OK;
    struct dist_comm *c = r->comm;
    pthread_mutex_lock(&c->mu);
    while (!r->done)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    int rc = r->status;
    if (rc)
        err_set(rc, "%s", r->msg);
    free(r);
    return rc;
}

int dist_check_same(struct dist_comm *c, const void *bytes, size_t n, const char *what)
{
    unsigned char mine[SHA256_BYTES];
    sha256_digest(bytes, n, mine);
    unsigned char *all = malloc((size_t)c->size * SHA256_BYTES);
    if (!all)
        return err_set(CREMA_ERR_NOMEM, "dist: out of memory");
    int rc = dist_allgather(c, mine, SHA256_BYTES, all);
    if (rc) {
        free(all);
        return err_prefix(rc, "comparing the %s of every rank", what);
    }
    for (int r = 1; r < c->size; r++) {
        if (memcmp(all + (size_t)r * SHA256_BYTES, all, SHA256_BYTES) != 0) {
            char h0[2 * 6 + 1], hr[2 * 6 + 1];
            sha256_hex(all, 6, h0);
            sha256_hex(all + (size_t)r * SHA256_BYTES, 6, hr);
            rc = err_set(CREMA_ERR_INVALID,
                         "rank %d has a different %s than rank 0 (sha256 %s... vs %s...): every rank must be "
                         "started with the same files",
                         r, what, hr, h0);
            break;
        }
    }
    free(all);
    return rc;
}
