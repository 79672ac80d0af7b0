/* The dist module with real processes and sockets on 127.0.0.1: collectives
 * for 2 and 3 ranks, asynchronous allreduce, the rendezvous secret, rank and
 * size checks, a rank killed with SIGKILL, config comparison, environment;
 * strangers at the rendezvous (a wrong secret, a thousand idle connections)
 * cannot stop a job, and -dist_timeout is kept within 10 %. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dist/dist.h"
#include "dist/rendezvous.h"
#include "dist/sha256.h"

#define MAX_RANKS 4
#define MSG 1024

/* What each forked rank reports back, in memory shared with the parent. */
struct rank_result {
    int rc;
    double seconds; /* from the start of the rank to its failure/success */
    double mark;    /* when the rank function called mark_now(), from the start */
    double ended;   /* after dist_comm_free, from the start */
    double cpu;     /* CPU seconds the rank's process used, all threads */
    char msg[MSG];
};

struct job {
    int size;
    char rendezvous[256];
    const char *secret[MAX_RANKS];
    int size_of[MAX_RANKS]; /* 0: size */
    int delay_ms[MAX_RANKS]; /* wait this long before joining */
    int nofile[MAX_RANKS];   /* 0, or the rank's file descriptor limit */
    int timeout_ms;
    void *arg;
};

typedef int (*rank_fn)(struct dist_comm *comm, const struct job *job, char *msg);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        return 29500;
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void job_init(struct job *j, int size)
{
    memset(j, 0, sizeof *j);
    j->size = size;
    snprintf(j->rendezvous, sizeof j->rendezvous, "tcp://127.0.0.1:%d", free_port());
    for (int r = 0; r < MAX_RANKS; r++)
        j->secret[r] = "s3cret-for-tests";
    j->timeout_ms = 20000;
}

static struct rank_result *this_rank_result;
static double this_rank_t0;

/* Notes the time in this rank's result (rank functions call it). */
static void mark_now(void) { this_rank_result->mark = now_s() - this_rank_t0; }

static void rank_main(int rank, const struct job *j, rank_fn fn, struct rank_result *res)
{
    if (j->nofile[rank]) {
        struct rlimit rl = {(rlim_t)j->nofile[rank], (rlim_t)j->nofile[rank]};
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (j->delay_ms[rank])
        usleep((useconds_t)j->delay_ms[rank] * 1000);
    struct dist_config cfg;
    dist_config_init(&cfg);
    cfg.rank = rank;
    cfg.size = j->size_of[rank] ? j->size_of[rank] : j->size;
    cfg.rendezvous = j->rendezvous;
    cfg.secret = j->secret[rank];
    cfg.timeout_ms = j->timeout_ms;
    double t0 = now_s();
    this_rank_result = res;
    this_rank_t0 = t0;
    struct dist_comm *comm = NULL;
    int rc = dist_comm_create(&cfg, &comm);
    if (rc == 0)
        rc = fn(comm, j, res->msg);
    else
        snprintf(res->msg, MSG, "%s", crema_errmsg());
    res->seconds = now_s() - t0;
    res->rc = rc;
    dist_comm_free(comm);
    res->ended = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Runs fn in `size` forked ranks; a rank still running after limit_s is
 * killed (and reported with rc -9), so a hang fails the test, not ctest. */
static void run_job(const struct job *j, rank_fn fn, struct rank_result *out, double limit_s)
{
    struct rank_result *shared =
        mmap(NULL, sizeof *shared * MAX_RANKS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pids[MAX_RANKS];
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < j->size; r++) {
        shared[r].rc = -1;
        shared[r].msg[0] = 0;
        pids[r] = fork();
        if (pids[r] == 0) {
            rank_main(r, j, fn, &shared[r]);
            _exit(0);
        }
    }
    double t0 = now_s();
    int left = j->size;
    int status[MAX_RANKS];
    for (int r = 0; r < j->size; r++)
        status[r] = -1;
    while (left > 0) {
        for (int r = 0; r < j->size; r++) {
            if (status[r] != -1)
                continue;
            int st;
            if (waitpid(pids[r], &st, WNOHANG) == pids[r]) {
                status[r] = st;
                left--;
            }
        }
        if (left > 0 && now_s() - t0 > limit_s) {
            for (int r = 0; r < j->size; r++)
                if (status[r] == -1) {
                    kill(pids[r], SIGKILL);
                    waitpid(pids[r], &status[r], 0);
                    snprintf(shared[r].msg, MSG, "rank %d still running after %.0f s: killed", r, limit_s);
                    shared[r].rc = -9;
                    left--;
                }
        }
        usleep(20000);
    }
    for (int r = 0; r < j->size; r++) {
        out[r] = shared[r];
        if (WIFSIGNALED(status[r]) && shared[r].rc == -1) {
            out[r].rc = -WTERMSIG(status[r]);
            snprintf(out[r].msg, MSG, "killed by signal %d", WTERMSIG(status[r]));
        }
    }
    munmap(shared, sizeof *shared * MAX_RANKS);
    for (int r = 0; r < j->size; r++)
        if (out[r].rc)
            printf("    rank %d (%.2f s): %s\n", r, out[r].seconds, out[r].msg);
}

/* ---- collectives ---- */

static const size_t sizes[] = {1, 7, 1000, 262147, 2 * 1024 * 1024};

static int do_collectives(struct dist_comm *comm, const struct job *j, char *msg)
{
    int rank = dist_rank(comm), size = dist_size(comm);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *buf = malloc(n * sizeof *buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (float)((rank + 1) * (int)(i % 97));
        int rc = dist_allreduce_sum(comm, buf, n);
        if (rc) {
            snprintf(msg, MSG, "allreduce n=%zu: %s", n, crema_errmsg());
            free(buf);
            return rc;
        }
        float tri = (float)(size * (size + 1) / 2);
        for (size_t i = 0; i < n; i++)
            if (buf[i] != tri * (float)(i % 97)) {
                snprintf(msg, MSG, "allreduce n=%zu: [%zu] = %g, expected %g", n, i, buf[i], tri * (float)(i % 97));
                free(buf);
                return 1;
            }
        /* broadcast from the last rank, bytes */
        unsigned char *b = (unsigned char *)buf;
        size_t bytes = n * sizeof(float) - (n > 1 ? 3 : 0);
        for (size_t i = 0; i < bytes; i++)
            b[i] = rank == size - 1 ? (unsigned char)(i * 7 + 1) : 0;
        if ((rc = dist_broadcast(comm, b, bytes, size - 1))) {
            snprintf(msg, MSG, "broadcast %zu bytes: %s", bytes, crema_errmsg());
            free(buf);
            return rc;
        }
        for (size_t i = 0; i < bytes; i++)
            if (b[i] != (unsigned char)(i * 7 + 1)) {
                snprintf(msg, MSG, "broadcast %zu bytes: byte %zu = %d, expected %d", bytes, i, b[i],
                         (unsigned char)(i * 7 + 1));
                free(buf);
                return 1;
            }
        free(buf);
        if ((rc = dist_barrier(comm))) {
            snprintf(msg, MSG, "barrier: %s", crema_errmsg());
            return rc;
        }
    }
    /* allgather: 5 bytes, then 1 MB per rank */
    size_t gsizes[] = {5, 1 << 20};
    for (int g = 0; g < 2; g++) {
        size_t bytes = gsizes[g];
        unsigned char *send = malloc(bytes), *recv = malloc(bytes * (size_t)size);
        for (size_t i = 0; i < bytes; i++)
            send[i] = (unsigned char)(rank * 31 + i);
        int rc = dist_allgather(comm, send, bytes, recv);
        if (rc)
            snprintf(msg, MSG, "allgather %zu: %s", bytes, crema_errmsg());
        for (int r = 0; r < size && !rc; r++)
            for (size_t i = 0; i < bytes && !rc; i++)
                if (recv[(size_t)r * bytes + i] != (unsigned char)(r * 31 + i)) {
                    snprintf(msg, MSG, "allgather %zu: rank %d byte %zu wrong", bytes, r, i);
                    rc = 1;
                }
        free(send);
        free(recv);
        if (rc)
            return rc;
    }
    return 0;
}

static void check_all_ok(const struct rank_result *res, int size)
{
    for (int r = 0; r < size; r++)
        CHECK_MSG(res[r].rc == 0, "rank %d: rc %d: %s", r, res[r].rc, res[r].msg);
}

static void test_collectives_2_ranks(void)
{
    struct job j;
    job_init(&j, 2);
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_collectives, res, 120);
    check_all_ok(res, 2);
}

static void test_collectives_3_ranks(void)
{
    struct job j;
    job_init(&j, 3);
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_collectives, res, 120);
    check_all_ok(res, 3);
}

static void test_collectives_file_rendezvous(void)
{
    struct job j;
    job_init(&j, 2);
    char *dir = check_tmpdir("dist_file_rdv");
    snprintf(j.rendezvous, sizeof j.rendezvous, "file://%s", dir);
    free(dir);
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_collectives, res, 120);
    check_all_ok(res, 2);
}

static void test_one_rank(void)
{
    struct dist_config cfg;
    dist_config_init(&cfg);
    cfg.rank = 0;
    cfg.size = 1;
    struct dist_comm *comm;
    CHECK_OK(dist_comm_create(&cfg, &comm));
    float x[3] = {1, 2, 3};
    CHECK_OK(dist_allreduce_sum(comm, x, 3));
    CHECK(x[0] == 1 && x[2] == 3);
    char a[4] = "abc", b[4] = "";
    CHECK_OK(dist_allgather(comm, a, 4, b));
    CHECK(strcmp(b, "abc") == 0);
    CHECK_OK(dist_check_same(comm, "x", 1, "net"));
    dist_comm_free(comm);
}

/* ---- asynchronous, bucketed allreduce ---- */

static int do_async(struct dist_comm *comm, const struct job *j, char *msg)
{
    int rank = dist_rank(comm), size = dist_size(comm);
    enum { BUCKETS = 8 };
    size_t n[BUCKETS] = {1, 100, 5000, 1 << 16, 3, 1 << 18, 77, 1 << 20};
    float *bucket[BUCKETS];
    struct dist_request *req[BUCKETS];
    for (int b = 0; b < BUCKETS; b++) {
        bucket[b] = malloc(n[b] * sizeof(float));
        for (size_t i = 0; i < n[b]; i++)
            bucket[b][i] = (float)(rank + b) + (float)(i % 13);
        /* as backward would: start each bucket when it is ready */
        int rc = dist_allreduce_start(comm, bucket[b], n[b], &req[b]);
        if (rc) {
            snprintf(msg, MSG, "start bucket %d: %s", b, crema_errmsg());
            return rc;
        }
        if (b == 3) { /* a synchronous call interleaved with pending ones */
            float x = (float)rank;
            if ((rc = dist_allreduce_sum(comm, &x, 1)) || x != (float)(size * (size - 1) / 2)) {
                snprintf(msg, MSG, "sync allreduce among async ones: rc %d x %g: %s", rc, x, crema_errmsg());
                return rc ? rc : 1;
            }
        }
    }
    int bad = 0;
    for (int b = 0; b < BUCKETS; b++) {
        int rc = dist_wait(req[b]);
        if (rc && !bad) {
            snprintf(msg, MSG, "wait bucket %d: %s", b, crema_errmsg());
            bad = rc;
        }
        for (size_t i = 0; i < n[b] && !bad; i++) {
            float want = (float)(size * (size - 1) / 2 + size * b) + (float)size * (float)(i % 13);
            if (bucket[b][i] != want) {
                snprintf(msg, MSG, "bucket %d [%zu] = %g, expected %g", b, i, bucket[b][i], want);
                bad = 1;
            }
        }
        free(bucket[b]);
    }
    return bad;
}

static void test_async_buckets(void)
{
    struct job j;
    job_init(&j, 3);
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_async, res, 120);
    check_all_ok(res, 3);
}

/* ---- failures at start ---- */

static int do_nothing(struct dist_comm *comm, const struct job *j, char *msg)
{
    return dist_barrier(comm);
}

/* A rank of the job with a wrong secret fails at once; rank 0 waits for it
 * (a wrong secret does not end the job: it may be anyone's) and, timing out,
 * says what it turned away. */
static void test_wrong_secret(void)
{
    struct job j;
    job_init(&j, 2);
    j.secret[1] = "not-the-secret";
    j.timeout_ms = 3000;
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_nothing, res, 60);
    CHECK_MSG(res[0].rc != 0 && strstr(res[0].msg, "rank 1") && strstr(res[0].msg, "wrong secret"),
              "rank 0: expected an error naming rank 1's wrong secret, got rc %d: %s", res[0].rc, res[0].msg);
    CHECK_MSG(res[1].rc != 0 && strstr(res[1].msg, "secret"), "rank 1: expected a secret error, got rc %d: %s",
              res[1].rc, res[1].msg);
    CHECK_MSG(res[1].seconds < 3, "rank 1 took %.1f s to fail (expected at once)", res[1].seconds);
    CHECK_MSG(res[0].seconds < 3 + 2, "rank 0 took %.1f s to fail (timeout 3 s)", res[0].seconds);
}

static int rdv_port(const struct job *j) { return atoi(strrchr(j->rendezvous, ':') + 1); }

/* ---- strangers at the rendezvous ---- */

static int do_barrier_then_files(struct dist_comm *comm, const struct job *j, char *msg)
{
    int rc = dist_barrier(comm);
    if (rc) {
        snprintf(msg, MSG, "%s", crema_errmsg());
        return rc;
    }
    /* rank 0 can still open files (a snapshot) */
    int fds[8], n = 0, e = 0;
    for (; n < 8; n++)
        if ((fds[n] = open("/dev/null", O_RDONLY)) < 0) {
            e = errno;
            break;
        }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (n < 8) {
        snprintf(msg, MSG, "rank %d could open only %d files: %s", dist_rank(comm), n, strerror(e));
        return 1;
    }
    return dist_barrier(comm);
}

/* A connection with a wrong secret, made before every rank has joined,
 * is turned away and the job goes on. */
static void test_stranger_cannot_stop_job(void)
{
    struct job j;
    job_init(&j, 2);
    j.delay_ms[1] = 1500;
    pid_t pid = fork();
    if (pid == 0) {
        usleep(500000);
        struct rdv_client *c = NULL;
        int rc = rdv_client_connect("127.0.0.1", rdv_port(&j), "guess", 1, 2, 3000, &c);
        rdv_client_free(c);
        _exit(rc == 0 ? 1 : 0); /* the stranger must be refused */
    }
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_barrier_then_files, res, 60);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the stranger with a wrong secret was let in");
    for (int r = 0; r < 2; r++)
        CHECK_MSG(res[r].rc == 0, "rank %d: the job failed after a stranger's wrong secret: %s", r, res[r].msg);
}

/* A thousand idle connections to rank 0, whose descriptor limit is nofile:
 * the rendezvous keeps a bounded number of strangers (256: the bound is
 * reached first) or drops the oldest when accept finds no descriptor (40:
 * the descriptors run out first), does not spin, and rank 1 joins. */
static void idle_connections(int nofile)
{
    struct job j;
    job_init(&j, 2);
    j.nofile[0] = nofile;
    j.delay_ms[1] = 2500;
    j.timeout_ms = 20000;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 1100) {
        rl.rlim_cur = rl.rlim_max < 1100 ? rl.rlim_max : 1100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int want = rl.rlim_cur >= 1100 ? 1000 : (int)rl.rlim_cur - 64;
    pid_t pid = fork();
    if (pid == 0) {
        usleep(500000);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rdv_port(&j)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        for (int i = 0; i < want; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0)
                break;
            connect(fd, (struct sockaddr *)&a, sizeof a); /* EINPROGRESS: the kernel finishes it */
        }
        sleep(30); /* held open, silent; killed when the job is done */
        _exit(0);
    }
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_barrier_then_files, res, 90);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    printf("    %d idle connections, %d descriptors: rank 0 used %.2f s CPU in %.2f s\n", want, nofile, res[0].cpu,
           res[0].ended);
    for (int r = 0; r < 2; r++)
        CHECK_MSG(res[r].rc == 0, "rank %d: the job failed under %d idle connections: %s", r, want, res[r].msg);
    /* a thread spinning on a listening socket it cannot accept from burns a
     * core for as long as it lasts */
    CHECK_MSG(res[0].cpu < 0.5 * res[0].ended, "rank 0 used %.2f s of CPU in %.2f s: the rendezvous spins",
              res[0].cpu, res[0].ended);
}

static void test_idle_connections(void)
{
    idle_connections(256);
    idle_connections(40);
}

/* ---- -dist_timeout is honoured ---- */

static int do_stop_rank1(struct dist_comm *comm, const struct job *j, char *msg)
{
    if (dist_rank(comm) == 1)
        raise(SIGSTOP); /* alive, silent, forever: killed by run_job */
    mark_now();
    int rc = dist_barrier(comm);
    snprintf(msg, MSG, "%s", rc ? crema_errmsg() : "no error");
    return rc;
}

static void test_timeout_honoured(void)
{
    struct job j;
    job_init(&j, 2);
    j.timeout_ms = 10000;
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_stop_rank1, res, 15);
    double took = res[0].ended - res[0].mark;
    printf("    timeout 10 s: rank 0 ended %.2f s after entering the collective\n", took);
    CHECK_MSG(res[0].rc == CREMA_ERR_DIST && strstr(res[0].msg, "timed out after 10 s waiting for rank 1") &&
              strstr(res[0].msg, "silent"), "rank 0: expected a timeout naming the silent rank 1, got %d: %s",
              res[0].rc, res[0].msg);
    CHECK_MSG(took >= 9.5 && took <= 11.0, "rank 0 ended %.2f s after entering the collective; -dist_timeout 10 "
              "allows 10 to 11", took);
}

static void test_rank_out_of_range(void)
{
    struct dist_config cfg;
    dist_config_init(&cfg);
    cfg.rank = 2;
    cfg.size = 2;
    cfg.rendezvous = "tcp://127.0.0.1:1";
    cfg.secret = "x";
    struct dist_comm *comm = NULL;
    int rc = dist_comm_create(&cfg, &comm);
    CHECK_EQ_INT(rc, CREMA_ERR_INVALID);
    CHECK_MSG(strstr(crema_errmsg(), "rank 2 is out of range"), "got: %s", crema_errmsg());
    CHECK(comm == NULL);
}

static void test_size_mismatch(void)
{
    struct job j;
    job_init(&j, 2);
    j.size_of[1] = 3; /* rank 1 believes in 3 ranks */
    j.timeout_ms = 15000;
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_nothing, res, 60);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(res[r].rc != 0 && strstr(res[r].msg, "rank 1 says the job has 3 ranks, rank 0 says 2"),
                  "rank %d: expected a size mismatch naming rank 1, got rc %d: %s", r, res[r].rc, res[r].msg);
        CHECK_MSG(res[r].seconds < 5, "rank %d took %.1f s to fail", r, res[r].seconds);
    }
}

static void test_missing_secret(void)
{
    struct dist_config cfg;
    dist_config_init(&cfg);
    cfg.rank = 0;
    cfg.size = 2;
    cfg.rendezvous = "tcp://127.0.0.1:1";
    struct dist_comm *comm = NULL;
    CHECK_EQ_INT(dist_comm_create(&cfg, &comm), CREMA_ERR_INVALID);
    CHECK_MSG(strstr(crema_errmsg(), "secret"), "got: %s", crema_errmsg());
}

/* ---- failures while running ---- */

static int do_kill_rank1(struct dist_comm *comm, const struct job *j, char *msg)
{
    float x[1000];
    for (int it = 0;; it++) {
        if (dist_rank(comm) == 1 && it == 3)
            raise(SIGKILL);
        for (int i = 0; i < 1000; i++)
            x[i] = 1;
        int rc = dist_allreduce_sum(comm, x, 1000);
        if (rc) {
            snprintf(msg, MSG, "%s", crema_errmsg());
            return rc;
        }
        if (it > 100000) {
            snprintf(msg, MSG, "no error after %d iterations", it);
            return 0;
        }
    }
}

static void test_kill_rank(void)
{
    struct job j;
    job_init(&j, 3);
    j.timeout_ms = 5000;
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_kill_rank1, res, 60);
    CHECK_MSG(res[1].rc == -SIGKILL, "rank 1: expected to die by SIGKILL, got rc %d: %s", res[1].rc, res[1].msg);
    for (int r = 0; r < 3; r += 2) {
        CHECK_MSG(res[r].rc == CREMA_ERR_DIST && strstr(res[r].msg, "lost rank 1"),
                  "rank %d: expected 'lost rank 1', got rc %d: %s", r, res[r].rc, res[r].msg);
        CHECK_MSG(res[r].seconds < 5 + 2, "rank %d took %.1f s to notice (timeout 5 s)", r, res[r].seconds);
    }
}

static int do_stall_rank2(struct dist_comm *comm, const struct job *j, char *msg)
{
    float x = 1;
    int rc = dist_allreduce_sum(comm, &x, 1);
    if (rc)
        return rc;
    if (dist_rank(comm) == 2) {
        sleep(8); /* alive, but late: the others must time out naming it */
        snprintf(msg, MSG, "woke up");
        return 0;
    }
    rc = dist_allreduce_sum(comm, &x, 1);
    snprintf(msg, MSG, "%s", rc ? crema_errmsg() : "no error");
    return rc;
}

static void test_stalled_rank(void)
{
    struct job j;
    job_init(&j, 3);
    j.timeout_ms = 3000;
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_stall_rank2, res, 60);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(res[r].rc == CREMA_ERR_DIST && strstr(res[r].msg, "timed out after 3 s waiting for rank 2"),
                  "rank %d: expected a timeout naming rank 2, got rc %d: %s", r, res[r].rc, res[r].msg);
        CHECK_MSG(res[r].seconds < 3 + 4, "rank %d took %.1f s (timeout 3 s)", r, res[r].seconds);
    }
}

static int do_check_same(struct dist_comm *comm, const struct job *j, char *msg)
{
    const char *net = dist_rank(comm) == 1 ? "layer { name: 'other' }" : "layer { name: 'conv1' }";
    int rc = dist_check_same(comm, net, strlen(net), "net");
    snprintf(msg, MSG, "%s", rc ? crema_errmsg() : "same");
    return rc;
}

static int do_check_same_equal(struct dist_comm *comm, const struct job *j, char *msg)
{
    const char *net = "layer { name: 'conv1' }";
    int rc = dist_check_same(comm, net, strlen(net), "net");
    snprintf(msg, MSG, "%s", rc ? crema_errmsg() : "same");
    return rc;
}

static void test_check_same(void)
{
    struct job j;
    job_init(&j, 3);
    struct rank_result res[MAX_RANKS];
    run_job(&j, do_check_same, res, 60);
    for (int r = 0; r < 3; r++)
        CHECK_MSG(res[r].rc == CREMA_ERR_INVALID && strstr(res[r].msg, "rank 1 has a different net than rank 0"),
                  "rank %d: expected a mismatch naming rank 1, got rc %d: %s", r, res[r].rc, res[r].msg);
    job_init(&j, 2);
    run_job(&j, do_check_same_equal, res, 60);
    check_all_ok(res, 2);
}

/* ---- configuration ---- */

static void clear_launcher_env(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID",
                          "SLURM_NTASKS", "CREMA_RANK", "CREMA_SIZE", "CREMA_MASTER", "CREMA_SECRET", "CREMA_IFACE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_env(void)
{
    struct dist_config c;
    clear_launcher_env();
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
    setenv("SLURM_PROCID", "1", 1); /* mpirun's variables win */
    setenv("SLURM_NTASKS", "2", 1);
    setenv("CREMA_MASTER", "node7:29500", 1);
    setenv("CREMA_SECRET", "abc", 1);
    dist_config_init(&c);
    CHECK_OK(dist_config_from_env(&c));
    CHECK_EQ_INT(c.rank, 3);
    CHECK_EQ_INT(c.size, 8);
    CHECK(c.rendezvous && strcmp(c.rendezvous, "node7:29500") == 0);
    CHECK(c.secret && strcmp(c.secret, "abc") == 0);
    char host[64];
    int port = 0;
    CHECK_OK(rdv_parse_address(c.rendezvous, host, sizeof host, &port));
    CHECK(strcmp(host, "node7") == 0);
    CHECK_EQ_INT(port, 29500);

    clear_launcher_env();
    setenv("PMI_RANK", "0", 1);
    setenv("PMI_SIZE", "4", 1);
    dist_config_init(&c);
    CHECK_OK(dist_config_from_env(&c));
    CHECK_EQ_INT(c.rank, 0);
    CHECK_EQ_INT(c.size, 4);

    clear_launcher_env();
    setenv("SLURM_PROCID", "5", 1);
    setenv("SLURM_NTASKS", "6", 1);
    dist_config_init(&c);
    c.rank = 1; /* an explicit value wins over the environment */
    CHECK_OK(dist_config_from_env(&c));
    CHECK_EQ_INT(c.rank, 1);
    CHECK_EQ_INT(c.size, 6);

    clear_launcher_env();
    setenv("SLURM_PROCID", "two", 1);
    setenv("SLURM_NTASKS", "6", 1);
    dist_config_init(&c);
    CHECK_EQ_INT(dist_config_from_env(&c), CREMA_ERR_INVALID);
    CHECK_MSG(strstr(crema_errmsg(), "SLURM_PROCID='two'"), "got: %s", crema_errmsg());

    clear_launcher_env();
    setenv("PMI_RANK", "1", 1);
    dist_config_init(&c);
    CHECK_EQ_INT(dist_config_from_env(&c), CREMA_ERR_INVALID);
    CHECK_MSG(strstr(crema_errmsg(), "PMI_SIZE is not"), "got: %s", crema_errmsg());

    clear_launcher_env();
    dist_config_init(&c);
    CHECK_OK(dist_config_from_env(&c));
    CHECK_EQ_INT(c.rank, -1);
    CHECK(c.rendezvous == NULL);

    CHECK_EQ_INT(rdv_parse_address("tcp://h:0", host, sizeof host, &port), CREMA_ERR_INVALID);
    CHECK_EQ_INT(rdv_parse_address("hostonly", host, sizeof host, &port), CREMA_ERR_INVALID);
    enum dist_transport t;
    CHECK_OK(dist_transport_parse("infiniband", &t));
    CHECK_EQ_INT(t, DIST_INFINIBAND);
    CHECK_EQ_INT(dist_transport_parse("wifi", &t), CREMA_ERR_INVALID);
}

static void test_bad_iface(void)
{
    struct dist_config cfg;
    dist_config_init(&cfg);
    cfg.rank = 0;
    cfg.size = 2;
    cfg.rendezvous = "tcp://127.0.0.1:1";
    cfg.secret = "x";
    cfg.iface = "nosuchif0";
    struct dist_comm *comm = NULL;
    CHECK_EQ_INT(dist_comm_create(&cfg, &comm), CREMA_ERR_DIST);
    CHECK_MSG(strstr(crema_errmsg(), "-iface nosuchif0: no such interface"), "got: %s", crema_errmsg());
}

static void test_sha256(void)
{
    unsigned char d[SHA256_BYTES];
    char hex[65];
    sha256_digest("abc", 3, d);
    sha256_hex(d, 32, hex);
    CHECK_MSG(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "got %s", hex);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_digest(two, strlen(two), d);
    sha256_hex(d, 32, hex);
    CHECK_MSG(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "got %s", hex);
    /* RFC 4231 test case 2 */
    const void *parts[] = {"what do ya want ", "for nothing?"};
    const size_t lens[] = {16, 12};
    hmac_sha256("Jefe", 4, 2, parts, lens, d);
    sha256_hex(d, 32, hex);
    CHECK_MSG(strcmp(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0, "got %s", hex);
}

/* One rank of the network-namespace test (tests/test_dist_netns.sh):
 * test_dist --rank R --size N --rendezvous URL [--iface IF]; the secret comes
 * from CREMA_SECRET. Sums buffers of 1 float to 4 MB and checks them. */
static int rank_mode(int argc, char **argv)
{
    struct dist_config cfg;
    dist_config_init(&cfg);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rank") == 0)
            cfg.rank = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            cfg.size = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rendezvous") == 0)
            cfg.rendezvous = argv[i + 1];
        else if (strcmp(argv[i], "--iface") == 0)
            cfg.iface = argv[i + 1];
    }
    cfg.timeout_ms = 10000;
    if (dist_config_from_env(&cfg) != 0) {
        fprintf(stderr, "rank %d: %s\n", cfg.rank, crema_errmsg());
        return 1;
    }
    struct dist_comm *comm;
    if (dist_comm_create(&cfg, &comm) != 0) {
        fprintf(stderr, "rank %d: %s\n", cfg.rank, crema_errmsg());
        return 1;
    }
    struct job j;
    memset(&j, 0, sizeof j);
    char msg[MSG] = "";
    int rc = do_collectives(comm, &j, msg);
    if (!rc)
        rc = do_async(comm, &j, msg);
    printf("rank %d of %d: %s\n", cfg.rank, cfg.size, rc ? msg : "allreduce, broadcast, barrier, allgather ok");
    dist_comm_free(comm);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {CASE(test_sha256), CASE(test_env), CASE(test_one_rank), CASE(test_rank_out_of_range),
           CASE(test_missing_secret), CASE(test_bad_iface), CASE(test_collectives_2_ranks),
           CASE(test_collectives_3_ranks), CASE(test_collectives_file_rendezvous), CASE(test_async_buckets),
           CASE(test_wrong_secret), CASE(test_size_mismatch), CASE(test_check_same), CASE(test_kill_rank),
           CASE(test_stalled_rank), CASE(test_stranger_cannot_stop_job), CASE(test_idle_connections),
           CASE(test_timeout_honoured)};
    if (argc > 1 && strcmp(argv[1], "--rank") == 0)
        return rank_mode(argc, argv);
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
