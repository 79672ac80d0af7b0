/* The rendezvous store: rank 0's server thread and every rank's client.
 * Frames are a 4-byte big-endian length and a payload whose first byte is
 * the operation: S(et), G(et), W(ait), P (heartbeat), Q (status), B(ye);
 * replies are K (ok), V (value) or E (error text). */
#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dist/sha256.h"
#include "util/err.h"

#define RDV_MAGIC "CREMA-RDV1"
#define RDV_MAGIC_LEN 10
#define RDV_MAX_FRAME (64u << 20)
#define RDV_NONCE 32
/* Connections that have not proved the secret yet: at most this many (and
 * at most an eighth of the descriptor limit; the oldest is dropped for a
 * new one), each for at most RDV_HANDSHAKE_MS, and at most RDV_MAX_HELLO
 * bytes before it has. A stranger can neither stop the job nor use up rank
 * 0's file descriptors. */
#define RDV_MAX_PENDING 32
#define RDV_HANDSHAKE_MS 5000
#define RDV_MAX_HELLO 256

int64_t rdv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) << 32 | get_u32(p + 4); }

int rdv_parse_address(const char *addr, char *host, size_t host_len, int *port)
{
    if (!addr)
        return err_set(CREMA_ERR_INVALID, "rendezvous: no address (set CREMA_MASTER=host:port or -rendezvous)");
    const char *a = addr;
    if (strncmp(a, "tcp://", 6) == 0)
        a += 6;
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a)
        return err_set(CREMA_ERR_INVALID, "rendezvous '%s': expected host:port", addr);
    size_t hl = (size_t)(colon - a);
    if (a[0] == '[' && colon[-1] == ']') { /* [v6]:port */
        a++;
        hl -= 2;
    }
    if (hl >= host_len)
        return err_set(CREMA_ERR_INVALID, "rendezvous '%s': host name too long", addr);
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
        return err_set(CREMA_ERR_INVALID, "rendezvous '%s': port '%s' is not in 1..65535", addr, colon + 1);
    memcpy(host, a, hl);
    host[hl] = 0;
    *port = (int)p;
    return CREMA_OK;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res)
        return err_set(CREMA_ERR_DIST, "rendezvous: cannot resolve '%s': %s", host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return CREMA_OK;
}

/* Writes all of buf; MSG_NOSIGNAL so a dead peer is an error, not SIGPIPE. */
static int send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_frame2(int fd, const void *a, size_t na, const void *b, size_t nb)
{
    unsigned char hdr[4];
    put_u32(hdr, (uint32_t)(na + nb));
    if (send_all(fd, hdr, 4) || send_all(fd, a, na))
        return -1;
    return nb ? send_all(fd, b, nb) : 0;
}

static int send_frame(int fd, const void *a, size_t na) { return send_frame2(fd, a, na, NULL, 0); }

static int send_error(int fd, const char *msg) { return send_frame2(fd, "E", 1, msg, strlen(msg)); }

static const char *reason_of(int e)
{
    return e == ECONNRESET ? "connection reset" : e == EPIPE ? "broken pipe" : e ? strerror(e) : "connection closed";
}

/* ------------------------------------------------------------------ */
/* Server                                                             */

struct rdv_conn {
    int fd;
    enum { CONN_AUTH, CONN_JOIN, CONN_READY } state;
    unsigned char nonce[RDV_NONCE];
    int rank;
    char peer[64];
    unsigned char *in;
    size_t in_len, in_cap;
    int64_t opened_ms;
    /* a G or W waiting for keys */
    char pending;
    char **keys;
    int n_keys;
    int64_t deadline_ms, wait_ms;
};

struct rdv_rank {
    int state;
    char reason[48];
    uint64_t seq;
    int64_t last_ms;
};

struct rdv_kv {
    char *key;
    unsigned char *value;
    size_t n;
};

struct rdv_server {
    int listen_fd;
    int wake[2];
    char *secret;
    int size;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stopping;
    int64_t stop_deadline_ms;

    /* owned by the thread */
    struct rdv_conn *conns;
    int n_conns, cap_conns;
    struct rdv_rank *ranks;
    struct rdv_kv *kv;
    int n_kv, cap_kv;
    char poison[512];
    /* peers turned away without touching the job, for the messages */
    long turned_away;
    char last_turned[160];
    int64_t accept_pause_until; /* no descriptors left: accept later */
    int max_pending; /* RDV_MAX_PENDING, fewer under a low descriptor limit */
};

static struct rdv_kv *kv_find(struct rdv_server *s, const char *key)
{
    for (int i = 0; i < s->n_kv; i++)
        if (strcmp(s->kv[i].key, key) == 0)
            return &s->kv[i];
    return NULL;
}

static void conn_clear_pending(struct rdv_conn *c)
{
    for (int i = 0; i < c->n_keys; i++)
        free(c->keys[i]);
    free(c->keys);
    c->keys = NULL;
    c->n_keys = 0;
    c->pending = 0;
}

static void conn_close(struct rdv_server *s, struct rdv_conn *c, const char *why)
{
    if (c->fd < 0)
        return;
    if (c->state == CONN_READY && c->rank >= 0 && s->ranks[c->rank].state == RDV_ALIVE) {
        struct rdv_rank *r = &s->ranks[c->rank];
        r->state = RDV_LOST;
        snprintf(r->reason, sizeof r->reason, "%s", why);
        if (!s->poison[0])
            snprintf(s->poison, sizeof s->poison, "lost rank %d: %s", c->rank, why);
    }
    close(c->fd);
    c->fd = -1;
    conn_clear_pending(c);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

/* Ranks that have not joined, as " 2, 3" for messages. */
static void absent_ranks(struct rdv_server *s, char *out, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (int r = 0; r < s->size && used + 16 < n; r++)
        if (s->ranks[r].state == RDV_ABSENT)
            used += (size_t)snprintf(out + used, n - used, "%s%d", used ? ", " : "", r);
}

/* Answers a pending G/W if it can: with the value, ok, poison or timeout. */
static void conn_try_pending(struct rdv_server *s, struct rdv_conn *c, int64_t now)
{
    if (!c->pending || c->fd < 0)
        return;
    if (s->poison[0]) {
        send_error(c->fd, s->poison);
        conn_clear_pending(c);
        return;
    }
    bool all = true;
    for (int i = 0; i < c->n_keys && all; i++)
        all = kv_find(s, c->keys[i]) != NULL;
    if (all) {
        if (c->pending == 'G') {
            struct rdv_kv *kv = kv_find(s, c->keys[0]);
            send_frame2(c->fd, "V", 1, kv->value, kv->n);
        } else {
            send_frame(c->fd, "K", 1);
        }
        conn_clear_pending(c);
    } else if (now >= c->deadline_ms) {
        char absent[256], msg[512];
        absent_ranks(s, absent, sizeof absent);
        if (absent[0] && s->turned_away)
            snprintf(msg, sizeof msg, "timed out after %.0f s waiting for rank%s %s to join the rendezvous (%ld "
                     "connection%s turned away meanwhile; the last: %s)", c->wait_ms / 1000.0,
                     strchr(absent, ',') ? "s" : "", absent, s->turned_away, s->turned_away == 1 ? "" : "s",
                     s->last_turned);
        else if (absent[0])
            snprintf(msg, sizeof msg, "timed out after %.0f s waiting for rank%s %s to join the rendezvous",
                     c->wait_ms / 1000.0, strchr(absent, ',') ? "s" : "", absent);
        else
            snprintf(msg, sizeof msg, "timed out after %.0f s waiting for key '%s'", c->wait_ms / 1000.0,
                     c->keys[0]);
        send_error(c->fd, msg);
        conn_clear_pending(c);
    }
}

static void server_poison(struct rdv_server *s, const char *msg)
{
    if (!s->poison[0])
        snprintf(s->poison, sizeof s->poison, "%s", msg);
}

static void handle_auth(struct rdv_server *s, struct rdv_conn *c, const unsigned char *p, size_t n)
{
    /* 'A' rank(4) client-nonce(32) mac(32) */
    if (n != 1 + 4 + RDV_NONCE + SHA256_BYTES || p[0] != 'A') {
        conn_close(s, c, "bad handshake");
        return;
    }
    uint32_t rank = get_u32(p + 1);
    const unsigned char *cn = p + 5, *mac = p + 5 + RDV_NONCE;
    unsigned char rank_be[4], want[SHA256_BYTES];
    put_u32(rank_be, rank);
    const void *parts[] = {"crema-rdv-client", c->nonce, cn, rank_be};
    const size_t lens[] = {16, RDV_NONCE, RDV_NONCE, 4};
    hmac_sha256(s->secret, strlen(s->secret), 4, parts, lens, want);
    unsigned diff = 0;
    for (int i = 0; i < SHA256_BYTES; i++)
        diff |= want[i] ^ mac[i];
    if (diff) {
        /* Whoever this is, it does not belong to the job: it is dropped and
         * the job goes on. A rank of ours with a wrong secret fails itself,
         * and the ranks waiting for it say so when they time out. */
        s->turned_away++;
        snprintf(s->last_turned, sizeof s->last_turned, "%s, claiming rank %d, presented a wrong secret", c->peer,
                 (int)rank);
        send_error(c->fd, "wrong secret");
        conn_close(s, c, "wrong secret");
        return;
    }
    unsigned char reply[1 + SHA256_BYTES];
    reply[0] = 'K';
    const void *sparts[] = {"crema-rdv-server", cn, c->nonce};
    const size_t slens[] = {16, RDV_NONCE, RDV_NONCE};
    hmac_sha256(s->secret, strlen(s->secret), 3, sparts, slens, reply + 1);
    send_frame(c->fd, reply, sizeof reply);
    c->state = CONN_JOIN;
}

static void handle_join(struct rdv_server *s, struct rdv_conn *c, const unsigned char *p, size_t n)
{
    if (n != 9 || p[0] != 'J') {
        conn_close(s, c, "bad join");
        return;
    }
    int rank = (int)get_u32(p + 1), size = (int)get_u32(p + 5);
    char msg[256] = "";
    if (size != s->size)
        snprintf(msg, sizeof msg, "rank %d says the job has %d ranks, rank 0 says %d", rank, size, s->size);
    else if (rank < 0 || rank >= s->size)
        snprintf(msg, sizeof msg, "rank %d is out of range for a job of %d ranks", rank, s->size);
    else if (s->ranks[rank].state != RDV_ABSENT)
        snprintf(msg, sizeof msg, "rank %d joined twice (second from %s)", rank, c->peer);
    if (msg[0]) {
        server_poison(s, msg);
        send_error(c->fd, msg);
        conn_close(s, c, "rejected");
        return;
    }
    c->rank = rank;
    c->state = CONN_READY;
    s->ranks[rank].state = RDV_ALIVE;
    s->ranks[rank].last_ms = rdv_now_ms();
    send_frame(c->fd, "K", 1);
}

/* Reads "len key" at p[*off]; NULL on a malformed frame. */
static char *take_key(const unsigned char *p, size_t n, size_t *off)
{
    if (*off + 4 > n)
        return NULL;
    uint32_t kl = get_u32(p + *off);
    if (kl > n - *off - 4)
        return NULL;
    char *k = malloc(kl + 1);
    if (!k)
        return NULL;
    memcpy(k, p + *off + 4, kl);
    k[kl] = 0;
    *off += 4 + kl;
    return k;
}

static void handle_request(struct rdv_server *s, struct rdv_conn *c, const unsigned char *p, size_t n)
{
    int64_t now = rdv_now_ms();
    s->ranks[c->rank].last_ms = now;
    size_t off = 1;
    switch (p[0]) {
    case 'S': {
        char *key = take_key(p, n, &off);
        if (!key) {
            conn_close(s, c, "malformed set");
            return;
        }
        struct rdv_kv *kv = kv_find(s, key);
        if (!kv) {
            if (s->n_kv == s->cap_kv) {
                int cap = s->cap_kv ? 2 * s->cap_kv : 16;
                struct rdv_kv *nk = realloc(s->kv, (size_t)cap * sizeof *nk);
                if (!nk) {
                    free(key);
                    send_error(c->fd, "rendezvous server out of memory");
                    return;
                }
                s->kv = nk;
                s->cap_kv = cap;
            }
            kv = &s->kv[s->n_kv++];
            kv->key = key;
            kv->value = NULL;
        } else {
            free(key);
        }
        free(kv->value);
        kv->n = n - off;
        kv->value = malloc(kv->n ? kv->n : 1);
        if (kv->value)
            memcpy(kv->value, p + off, kv->n);
        send_frame(c->fd, "K", 1);
        for (int i = 0; i < s->n_conns; i++)
            conn_try_pending(s, &s->conns[i], now);
        return;
    }
    case 'G':
    case 'W': {
        if (n < 9) {
            conn_close(s, c, "malformed wait");
            return;
        }
        uint32_t wait_ms = get_u32(p + 1), n_keys = get_u32(p + 5);
        off = 9;
        if (n_keys == 0 || n_keys > 1u << 16 || (p[0] == 'G' && n_keys != 1)) {
            conn_close(s, c, "malformed wait");
            return;
        }
        c->keys = calloc(n_keys, sizeof *c->keys);
        if (!c->keys) {
            send_error(c->fd, "rendezvous server out of memory");
            return;
        }
        for (uint32_t i = 0; i < n_keys; i++) {
            c->keys[i] = take_key(p, n, &off);
            c->n_keys = (int)i + 1;
            if (!c->keys[i]) {
                conn_close(s, c, "malformed wait");
                return;
            }
        }
        c->pending = (char)p[0];
        c->wait_ms = wait_ms;
        c->deadline_ms = now + wait_ms;
        conn_try_pending(s, c, now);
        return;
    }
    case 'P':
        if (n == 9)
            s->ranks[c->rank].seq = get_u64(p + 1);
        return;
    case 'Q': {
        size_t each = 1 + 8 + 4 + 48;
        unsigned char *r = malloc(1 + each * (size_t)s->size);
        if (!r) {
            send_error(c->fd, "rendezvous server out of memory");
            return;
        }
        r[0] = 'V';
        for (int i = 0; i < s->size; i++) {
            unsigned char *q = r + 1 + each * (size_t)i;
            struct rdv_rank *k = &s->ranks[i];
            q[0] = (unsigned char)k->state;
            put_u64(q + 1, k->seq);
            int64_t age = k->state == RDV_ABSENT ? 0 : now - k->last_ms;
            put_u32(q + 9, (uint32_t)(age < 0 ? 0 : age));
            memset(q + 13, 0, 48);
            memcpy(q + 13, k->reason, strnlen(k->reason, 47));
        }
        send_frame(c->fd, r, 1 + each * (size_t)s->size);
        free(r);
        return;
    }
    case 'B':
        s->ranks[c->rank].state = RDV_LEFT;
        send_frame(c->fd, "K", 1);
        return;
    default:
        conn_close(s, c, "unknown request");
    }
}

/* Reads what is there and handles every complete frame. */
static void conn_read(struct rdv_server *s, struct rdv_conn *c)
{
    if (c->in_cap - c->in_len < 65536) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
        unsigned char *ni = realloc(c->in, cap);
        if (!ni) {
            conn_close(s, c, "out of memory");
            return;
        }
        c->in = ni;
        c->in_cap = cap;
    }
    /* before the handshake, only a handshake's bytes are taken */
    size_t room = c->in_cap - c->in_len;
    if (c->state != CONN_READY && room > RDV_MAX_HELLO)
        room = RDV_MAX_HELLO;
    ssize_t r = recv(c->fd, c->in + c->in_len, room, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        conn_close(s, c, reason_of(r < 0 ? errno : 0));
        return;
    }
    c->in_len += (size_t)r;
    size_t off = 0;
    while (c->fd >= 0 && c->in_len - off >= 4) {
        uint32_t len = get_u32(c->in + off);
        if (len == 0 || len > RDV_MAX_FRAME || (c->state != CONN_READY && len > RDV_MAX_HELLO)) {
            conn_close(s, c, "oversized frame");
            return;
        }
        if (c->in_len - off - 4 < len)
            break;
        const unsigned char *p = c->in + off + 4;
        off += 4 + len;
        if (c->state == CONN_AUTH)
            handle_auth(s, c, p, len);
        else if (c->state == CONN_JOIN)
            handle_join(s, c, p, len);
        else if (c->pending)
            conn_close(s, c, "request while waiting");
        else
            handle_request(s, c, p, len);
    }
    if (c->fd >= 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* The connection that has waited longest without proving the secret, or
 * -1. */
static int oldest_pending(const struct rdv_server *s, int *n_pending)
{
    int oldest = -1;
    *n_pending = 0;
    for (int i = 0; i < s->n_conns; i++) {
        const struct rdv_conn *c = &s->conns[i];
        if (c->fd < 0 || c->state != CONN_AUTH)
            continue;
        (*n_pending)++;
        if (oldest < 0 || c->opened_ms < s->conns[oldest].opened_ms)
            oldest = i;
    }
    return oldest;
}

static void server_accept(struct rdv_server *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept(s->listen_fd, (struct sockaddr *)&ss, &sl);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* No descriptor for it: make room by dropping the oldest
             * stranger, or stop accepting for a while; never spin on a
             * listening socket that stays readable. */
            int n_pending, oldest = oldest_pending(s, &n_pending);
            if (oldest >= 0) {
                s->turned_away++;
                snprintf(s->last_turned, sizeof s->last_turned, "%s, dropped unproven when rank 0 ran out of file "
                         "descriptors", s->conns[oldest].peer);
                conn_close(s, &s->conns[oldest], "dropped");
            } else {
                s->accept_pause_until = rdv_now_ms() + 100;
            }
        }
        return;
    }
    int n_pending, oldest = oldest_pending(s, &n_pending);
    if (n_pending >= s->max_pending && oldest >= 0) {
        s->turned_away++;
        snprintf(s->last_turned, sizeof s->last_turned, "%s, dropped unproven for a newer connection",
                 s->conns[oldest].peer);
        conn_close(s, &s->conns[oldest], "dropped");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (s->n_conns == s->cap_conns) {
        int cap = s->cap_conns ? 2 * s->cap_conns : 8;
        struct rdv_conn *nc = realloc(s->conns, (size_t)cap * sizeof *nc);
        if (!nc) {
            close(fd);
            return;
        }
        s->conns = nc;
        s->cap_conns = cap;
    }
    struct rdv_conn *c = &s->conns[s->n_conns++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->rank = -1;
    c->state = CONN_AUTH;
    c->opened_ms = rdv_now_ms();
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    snprintf(c->peer, sizeof c->peer, "%s", ip);
    unsigned char hello[RDV_MAGIC_LEN + RDV_NONCE];
    memcpy(hello, RDV_MAGIC, RDV_MAGIC_LEN);
    if (getrandom(c->nonce, RDV_NONCE, 0) != RDV_NONCE) {
        conn_close(s, c, "no randomness");
        return;
    }
    memcpy(hello + RDV_MAGIC_LEN, c->nonce, RDV_NONCE);
    if (send_frame(fd, hello, sizeof hello))
        conn_close(s, c, "send failed");
}

static bool server_done(struct rdv_server *s, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    int64_t deadline = s->stop_deadline_ms;
    pthread_mutex_unlock(&s->mu);
    if (!stopping)
        return false;
    if (now >= deadline)
        return true;
    for (int r = 0; r < s->size; r++)
        if (s->ranks[r].state == RDV_ALIVE)
            return false;
    return true;
}

static void *server_main(void *arg)
{
    struct rdv_server *s = arg;
    struct pollfd *pf = NULL;
    int cap_pf = 0;
    for (;;) {
        int64_t now = rdv_now_ms();
        if (server_done(s, now))
            break;
        /* drop closed connections; handshakes that stall are dropped too */
        int k = 0;
        for (int i = 0; i < s->n_conns; i++) {
            struct rdv_conn *c = &s->conns[i];
            if (c->fd >= 0 && c->state != CONN_READY && now - c->opened_ms > RDV_HANDSHAKE_MS) {
                s->turned_away++;
                snprintf(s->last_turned, sizeof s->last_turned, "%s, silent for %d s after connecting", c->peer,
                         RDV_HANDSHAKE_MS / 1000);
                conn_close(s, c, "handshake timed out");
            }
            if (c->fd >= 0)
                s->conns[k++] = *c;
        }
        s->n_conns = k;
        if (cap_pf < s->n_conns + 2) {
            cap_pf = s->n_conns + 16;
            struct pollfd *np = realloc(pf, (size_t)cap_pf * sizeof *np);
            if (!np)
                break;
            pf = np;
        }
        /* while accept has no descriptor to give, the listening socket is
         * left out (poll ignores a negative fd) */
        pf[0] = (struct pollfd){.fd = now < s->accept_pause_until ? -1 : s->listen_fd, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        for (int i = 0; i < s->n_conns; i++)
            pf[i + 2] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
        int n = poll(pf, (nfds_t)(s->n_conns + 2), 100);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0) {
            if (pf[1].revents) {
                char buf[16];
                ssize_t ignored = read(s->wake[0], buf, sizeof buf);
                (void)ignored;
            }
            int n_polled = s->n_conns;
            for (int i = 0; i < n_polled; i++)
                if (pf[i + 2].revents && s->conns[i].fd >= 0)
                    conn_read(s, &s->conns[i]);
            if (pf[0].revents & POLLIN)
                server_accept(s);
        }
        now = rdv_now_ms();
        for (int i = 0; i < s->n_conns; i++)
            conn_try_pending(s, &s->conns[i], now);
    }
    free(pf);
    return NULL;
}

/* Is addr one of this host's addresses (so the server can bind to it)? */
static bool address_is_local(const struct sockaddr_storage *ss)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return false;
    bool found = false;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != ss->ss_family)
            continue;
        if (ss->ss_family == AF_INET)
            found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
                    ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
        else if (ss->ss_family == AF_INET6)
            found = memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
                           &((const struct sockaddr_in6 *)ss)->sin6_addr, 16) == 0;
    }
    freeifaddrs(ifs);
    return found;
}

int rdv_server_start(const char *host, int port, const char *secret, int size, struct rdv_server **out)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = resolve(host, port, &ss, &sl);
    if (rc)
        return rc;
    if (!address_is_local(&ss)) {
        /* a name that resolves elsewhere (NAT, several names): listen everywhere */
        int fam = ss.ss_family;
        memset(&ss, 0, sizeof ss);
        if (fam == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons((uint16_t)port);
            a->sin6_addr = in6addr_any;
            sl = sizeof *a;
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            a->sin_port = htons((uint16_t)port);
            a->sin_addr.s_addr = htonl(INADDR_ANY);
            sl = sizeof *a;
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(CREMA_ERR_DIST, "rendezvous: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return err_set(CREMA_ERR_DIST, "rendezvous: rank 0 cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    struct rdv_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return err_set(CREMA_ERR_NOMEM, "rendezvous: out of memory");
    }
    s->listen_fd = fd;
    s->size = size;
    /* strangers get at most an eighth of the process's descriptors: the
     * rest stay for the job (Gloo's connections, data, snapshots) */
    struct rlimit rl;
    long limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 1 << 20;
    s->max_pending = limit / 8 < RDV_MAX_PENDING ? (int)(limit / 8 > 1 ? limit / 8 : 1) : RDV_MAX_PENDING;
    s->secret = strdup(secret ? secret : "");
    s->ranks = calloc((size_t)size, sizeof *s->ranks);
    if (!s->secret || !s->ranks || pipe(s->wake) != 0) {
        free(s->secret);
        free(s->ranks);
        free(s);
        close(fd);
        return err_set(CREMA_ERR_NOMEM, "rendezvous: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) {
        close(s->wake[0]);
        close(s->wake[1]);
        pthread_mutex_destroy(&s->mu);
        free(s->secret);
        free(s->ranks);
        free(s);
        close(fd);
        return err_set(CREMA_ERR_DIST, "rendezvous: cannot start the server thread");
    }
    *out = s;
    return CREMA_OK;
}

void rdv_server_stop(struct rdv_server *s, int wait_ms)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->stop_deadline_ms = rdv_now_ms() + wait_ms;
    pthread_mutex_unlock(&s->mu);
    ssize_t ignored = write(s->wake[1], "x", 1);
    (void)ignored;
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->n_conns; i++) {
        s->conns[i].state = CONN_AUTH; /* closing at shutdown is not a loss */
        conn_close(s, &s->conns[i], "shutdown");
    }
    free(s->conns);
    for (int i = 0; i < s->n_kv; i++) {
        free(s->kv[i].key);
        free(s->kv[i].value);
    }
    free(s->kv);
    free(s->ranks);
    close(s->listen_fd);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    free(s->secret);
    free(s);
}

/* ------------------------------------------------------------------ */
/* Client                                                             */

struct rdv_client {
    int fd;
    int rank;
    char where[300]; /* "tcp://host:port" for messages */
    pthread_mutex_t mu;
    bool broken;
};

/* Reads exactly n bytes before deadline; 0, or -1 with errno / ETIMEDOUT. */
static int recv_all(int fd, void *buf, size_t n, int64_t deadline)
{
    char *p = buf;
    while (n > 0) {
        int64_t left = deadline - rdv_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno != EINTR)
            return -1;
        if (pr <= 0)
            continue;
        ssize_t r = recv(fd, p, n, 0);
        if (r == 0) {
            errno = 0;
            return -1;
        }
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Receives one frame (malloc'd payload). */
static int recv_frame(int fd, unsigned char **payload, size_t *n, int64_t deadline)
{
    unsigned char hdr[4];
    if (recv_all(fd, hdr, 4, deadline))
        return -1;
    uint32_t len = get_u32(hdr);
    if (len == 0 || len > RDV_MAX_FRAME) {
        errno = EPROTO;
        return -1;
    }
    unsigned char *p = malloc(len + 1);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    if (recv_all(fd, p, len, deadline)) {
        int e = errno;
        free(p);
        errno = e;
        return -1;
    }
    p[len] = 0;
    *payload = p;
    *n = len;
    return 0;
}

static int client_io_error(struct rdv_client *c, const char *doing)
{
    int e = errno;
    c->broken = true;
    if (e == ETIMEDOUT)
        return err_set(CREMA_ERR_DIST, "%s: timed out waiting for rank 0 (rendezvous server) while %s", c->where,
                       doing);
    return err_set(CREMA_ERR_DIST, "lost rank 0: %s (%s, while %s)", reason_of(e), c->where, doing);
}

/* Sends a request and, for all but heartbeats, reads the reply. */
static int client_call(struct rdv_client *c, const char *doing, const void *a, size_t na, const void *b, size_t nb,
                       int reply_wait_ms, unsigned char **reply, size_t *reply_n)
{
    if (c->broken)
        return err_set(CREMA_ERR_DIST, "lost rank 0: %s is no longer reachable", c->where);
    if (send_frame2(c->fd, a, na, b, nb))
        return client_io_error(c, doing);
    if (!reply)
        return CREMA_OK;
    unsigned char *p;
    size_t n;
    if (recv_frame(c->fd, &p, &n, rdv_now_ms() + reply_wait_ms))
        return client_io_error(c, doing);
    if (p[0] == 'E') {
        int rc = err_set(CREMA_ERR_DIST, "%s", (char *)p + 1);
        free(p);
        return rc;
    }
    *reply = p;
    *reply_n = n;
    return CREMA_OK;
}

static int client_handshake(struct rdv_client *c, const char *secret, int rank, int size, int64_t deadline)
{
    unsigned char *p = NULL;
    size_t n = 0;
    if (recv_frame(c->fd, &p, &n, deadline))
        return client_io_error(c, "waiting for its greeting");
    if (n != RDV_MAGIC_LEN + RDV_NONCE || memcmp(p, RDV_MAGIC, RDV_MAGIC_LEN) != 0) {
        free(p);
        return err_set(CREMA_ERR_DIST, "%s is not a crema rendezvous (unexpected greeting)", c->where);
    }
    unsigned char server_nonce[RDV_NONCE];
    memcpy(server_nonce, p + RDV_MAGIC_LEN, RDV_NONCE);
    free(p);

    unsigned char msg[1 + 4 + RDV_NONCE + SHA256_BYTES];
    msg[0] = 'A';
    put_u32(msg + 1, (uint32_t)rank);
    unsigned char *cn = msg + 5;
    if (getrandom(cn, RDV_NONCE, 0) != RDV_NONCE)
        return err_set(CREMA_ERR_DIST, "rendezvous: getrandom failed");
    const void *parts[] = {"crema-rdv-client", server_nonce, cn, msg + 1};
    const size_t lens[] = {16, RDV_NONCE, RDV_NONCE, 4};
    hmac_sha256(secret, strlen(secret), 4, parts, lens, msg + 5 + RDV_NONCE);
    if (send_frame(c->fd, msg, sizeof msg))
        return client_io_error(c, "authenticating");
    if (recv_frame(c->fd, &p, &n, deadline))
        return client_io_error(c, "authenticating");
    if (p[0] == 'E') {
        int rc = err_set(CREMA_ERR_DIST,
                         "%s: rank 0 rejected rank %d: %s (the ranks were given different secrets: "
                         "check -secret / CREMA_SECRET)",
                         c->where, rank, (char *)p + 1);
        free(p);
        return rc;
    }
    unsigned char want[SHA256_BYTES];
    const void *sparts[] = {"crema-rdv-server", cn, server_nonce};
    const size_t slens[] = {16, RDV_NONCE, RDV_NONCE};
    hmac_sha256(secret, strlen(secret), 3, sparts, slens, want);
    bool ok = n == 1 + SHA256_BYTES && p[0] == 'K' && memcmp(p + 1, want, SHA256_BYTES) == 0;
    free(p);
    if (!ok)
        return err_set(CREMA_ERR_DIST, "%s: the rendezvous server does not know our secret (wrong secret, or "
                       "another job's server)", c->where);

    unsigned char join[9];
    join[0] = 'J';
    put_u32(join + 1, (uint32_t)rank);
    put_u32(join + 5, (uint32_t)size);
    if (send_frame(c->fd, join, sizeof join))
        return client_io_error(c, "joining");
    if (recv_frame(c->fd, &p, &n, deadline))
        return client_io_error(c, "joining");
    if (p[0] == 'E') {
        int rc = err_set(CREMA_ERR_DIST, "%s: %s", c->where, (char *)p + 1);
        free(p);
        return rc;
    }
    free(p);
    return CREMA_OK;
}

int rdv_client_connect(const char *host, int port, const char *secret, int rank, int size, int timeout_ms,
                       struct rdv_client **out)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = resolve(host, port, &ss, &sl);
    if (rc)
        return rc;
    struct rdv_client *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(CREMA_ERR_NOMEM, "rendezvous: out of memory");
    c->fd = -1;
    c->rank = rank;
    snprintf(c->where, sizeof c->where, "rendezvous tcp://%s:%d", host, port);
    pthread_mutex_init(&c->mu, NULL);
    int64_t deadline = rdv_now_ms() + timeout_ms;
    int last_errno = 0;
    /* rank 0 may not be listening yet: retry until the deadline */
    while (rdv_now_ms() < deadline) {
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            break;
        }
        if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
            c->fd = fd;
            break;
        }
        last_errno = errno;
        close(fd);
        usleep(100000);
    }
    if (c->fd < 0) {
        rdv_client_free(c);
        return err_set(CREMA_ERR_DIST, "rendezvous tcp://%s:%d: cannot reach rank 0 within %.0f s: %s", host, port,
                       timeout_ms / 1000.0, last_errno ? strerror(last_errno) : "timed out");
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int64_t hs_deadline = rdv_now_ms() + (timeout_ms < 10000 ? timeout_ms : 10000);
    rc = client_handshake(c, secret ? secret : "", rank, size, hs_deadline);
    if (rc) {
        rdv_client_free(c);
        return rc;
    }
    *out = c;
    return CREMA_OK;
}

void rdv_client_free(struct rdv_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int rdv_set(struct rdv_client *c, const char *key, const void *value, size_t n)
{
    size_t kl = strlen(key);
    unsigned char *p = malloc(1 + 4 + kl + n);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "rendezvous: out of memory");
    p[0] = 'S';
    put_u32(p + 1, (uint32_t)kl);
    memcpy(p + 5, key, kl);
    if (n)
        memcpy(p + 5 + kl, value, n);
    unsigned char *reply = NULL;
    size_t rn;
    pthread_mutex_lock(&c->mu);
    int rc = client_call(c, "setting a key", p, 5 + kl + n, NULL, 0, 30000, &reply, &rn);
    pthread_mutex_unlock(&c->mu);
    free(p);
    free(reply);
    return rc;
}

static int client_wait(struct rdv_client *c, char op, const char *const *keys, int n_keys, int timeout_ms,
                       unsigned char **reply, size_t *rn)
{
    size_t total = 9;
    for (int i = 0; i < n_keys; i++)
        total += 4 + strlen(keys[i]);
    unsigned char *p = malloc(total);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "rendezvous: out of memory");
    p[0] = (unsigned char)op;
    put_u32(p + 1, (uint32_t)timeout_ms);
    put_u32(p + 5, (uint32_t)n_keys);
    size_t off = 9;
    for (int i = 0; i < n_keys; i++) {
        size_t kl = strlen(keys[i]);
        put_u32(p + off, (uint32_t)kl);
        memcpy(p + off + 4, keys[i], kl);
        off += 4 + kl;
    }
    pthread_mutex_lock(&c->mu);
    /* the server answers by the deadline; give the reply a few seconds more */
    int rc = client_call(c, "waiting for keys", p, total, NULL, 0, timeout_ms + 5000, reply, rn);
    pthread_mutex_unlock(&c->mu);
    free(p);
    return rc;
}

int rdv_get(struct rdv_client *c, const char *key, void **value, size_t *n, int timeout_ms)
{
    unsigned char *reply = NULL;
    size_t rn = 0;
    int rc = client_wait(c, 'G', &key, 1, timeout_ms, &reply, &rn);
    if (rc)
        return rc;
    /* the value without the 'V' */
    memmove(reply, reply + 1, rn - 1);
    *value = reply;
    *n = rn - 1;
    return CREMA_OK;
}

int rdv_wait(struct rdv_client *c, const char *const *keys, int n_keys, int timeout_ms)
{
    unsigned char *reply = NULL;
    size_t rn;
    int rc = client_wait(c, 'W', keys, n_keys, timeout_ms, &reply, &rn);
    free(reply);
    return rc;
}

int rdv_heartbeat(struct rdv_client *c, uint64_t seq)
{
    unsigned char p[9];
    p[0] = 'P';
    put_u64(p + 1, seq);
    pthread_mutex_lock(&c->mu);
    int rc = client_call(c, "sending a heartbeat", p, sizeof p, NULL, 0, 0, NULL, NULL);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int rdv_status(struct rdv_client *c, struct rdv_peer *peers, int size, int timeout_ms)
{
    unsigned char *reply = NULL;
    size_t rn;
    pthread_mutex_lock(&c->mu);
    int rc = client_call(c, "asking which ranks are alive", "Q", 1, NULL, 0, timeout_ms, &reply, &rn);
    pthread_mutex_unlock(&c->mu);
    if (rc)
        return rc;
    size_t each = 1 + 8 + 4 + 48;
    if (rn != 1 + each * (size_t)size) {
        free(reply);
        return err_set(CREMA_ERR_DIST, "%s: malformed status reply", c->where);
    }
    for (int i = 0; i < size; i++) {
        const unsigned char *q = reply + 1 + each * (size_t)i;
        peers[i].state = q[0];
        peers[i].seq = get_u64(q + 1);
        peers[i].age_ms = get_u32(q + 9);
        memcpy(peers[i].reason, q + 13, 47);
        peers[i].reason[47] = 0;
    }
    free(reply);
    return CREMA_OK;
}

int rdv_leave(struct rdv_client *c)
{
    unsigned char *reply = NULL;
    size_t rn;
    pthread_mutex_lock(&c->mu);
    int rc = client_call(c, "leaving", "B", 1, NULL, 0, 5000, &reply, &rn);
    pthread_mutex_unlock(&c->mu);
    free(reply);
    return rc;
}
