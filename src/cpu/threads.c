/* The thread pool behind cpu_parallel_for: a region publishes its job in
 * an atomic word, workers take contiguous ranges by an atomic counter.
 * Between regions a worker spins a little before it sleeps, so the short
 * regions of a small net do not each pay for waking a thread. */
#include "cpu/threads.h"

#include "util/err.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* More ranges than threads, so that a thread the OS deschedules (the
 * machine may be shared) holds up a region by one small range at most:
 * the others, the caller included, take the rest. */
#define RANGES_PER_THREAD 4

/* How long an idle worker watches for the next region before it sleeps:
 * longer than the gaps between the regions of one layer and the next in
 * a small net, short enough that a pool left idle gives its cores back
 * at once. */
#define SPIN_NS 200000L

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

static struct {
    pthread_mutex_t mu; /* guards workers, n_workers, exiting, fail_*, and sleeping */
    pthread_cond_t wake;
    pthread_mutex_t region; /* held by the thread whose region owns the workers */
    atomic_int want;        /* threads per region, caller included; 0: not read yet */
    int n_workers;
    pthread_t *workers;
    bool exiting;
    unsigned long gen; /* the last region's number (the caller's, under `region`) */
    /* The open region's number, 0 between regions. A worker that reads a
     * number counts itself in `active` and reads it again before it takes
     * ranges; the caller closes the region (0) and then waits for `active`
     * to drain, so a worker never reads a region's fields while the next
     * region's are being written. */
    atomic_ulong open;
    atomic_int active;
    atomic_int sleepers; /* workers asleep on `wake`, or about to be */
    atomic_bool stop;
    /* the open region's job */
    cpu_range_fn fn;
    void *ctx;
    size_t n, n_ranges;
    atomic_size_t next;
    size_t fail_range;
    int fail_rc;
    char fail_msg[512];
} pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .region = PTHREAD_MUTEX_INITIALIZER,
};

/* True on pool workers, and on a caller while it runs its share. */
static _Thread_local bool in_task;

/* cpu_scratch's buffer: the pointer in thread-local storage, freed by a
 * pthread key's destructor when the thread ends. */
static _Thread_local float *scratch;
static _Thread_local size_t scratch_cap;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_make(void)
{
    pthread_key_create(&scratch_key, free);
}

float *cpu_scratch(size_t n)
{
    if (n <= scratch_cap)
        return scratch;
    pthread_once(&scratch_once, scratch_key_make);
    float *p = realloc(scratch, n * sizeof *p);
    if (!p) {
        err_set(CREMA_ERR_NOMEM, "out of memory (%zu floats of thread scratch)", n);
        return NULL;
    }
    scratch = p;
    scratch_cap = n;
    pthread_setspecific(scratch_key, p);
    return p;
}

static int default_threads(void)
{
    const char *env = getenv("CREMA_NUM_THREADS");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int fallback = cpus < 1 ? 1 : cpus > CPU_MAX_THREADS ? CPU_MAX_THREADS : (int)cpus;
    if (!env || !*env)
        return fallback;
    char *end;
    long v = strtol(env, &end, 10);
    if (*end || v < 1 || v > CPU_MAX_THREADS) {
        /* A bad setting must not stop a run; say once what is used instead. */
        static atomic_bool warned;
        if (!atomic_exchange(&warned, true))
            fprintf(stderr,
                    "crema: CREMA_NUM_THREADS=\"%s\" is not a thread count from 1 to %d; using %d\n",
                    env, CPU_MAX_THREADS, fallback);
        return fallback;
    }
    return (int)v;
}

int cpu_num_threads(void)
{
    int n = atomic_load(&pool.want);
    if (n)
        return n;
    n = default_threads();
    int unset = 0;
    /* Another thread may have read (or set) it meanwhile: theirs stands. */
    return atomic_compare_exchange_strong(&pool.want, &unset, n) ? n : unset;
}

static void range_bounds(size_t n, size_t k, size_t i, size_t *begin, size_t *end)
{
    size_t q = n / k, r = n % k;
    *begin = i * q + (i < r ? i : r);
    *end = *begin + q + (i < r);
}

static void note_failure(size_t i, int rc)
{
    pthread_mutex_lock(&pool.mu);
    if (!pool.fail_rc || i < pool.fail_range) {
        pool.fail_range = i;
        pool.fail_rc = rc;
        snprintf(pool.fail_msg, sizeof pool.fail_msg, "%s", err_msg());
    }
    pthread_mutex_unlock(&pool.mu);
}

/* Takes ranges of the open region until none is left. */
static void run_ranges(void)
{
    size_t i;
    while ((i = atomic_fetch_add(&pool.next, 1)) < pool.n_ranges) {
        size_t b, e;
        range_bounds(pool.n, pool.n_ranges, i, &b, &e);
        int rc = pool.fn(pool.ctx, b, e);
        if (rc)
            note_failure(i, rc);
    }
}

static long elapsed_ns(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* A region the worker has not joined yet, or 0 when told to stop: spins
 * for SPIN_NS, then sleeps until a caller or the shutdown wakes it. */
static unsigned long await_region(unsigned long seen)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned spins = 1;; spins++) {
        if (atomic_load(&pool.stop))
            return 0;
        unsigned long g = atomic_load(&pool.open);
        if (g && g != seen)
            return g;
        cpu_relax();
        if (spins % 64 == 0 && elapsed_ns(&t0) > SPIN_NS)
            break;
    }
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add(&pool.sleepers, 1);
    unsigned long g = 0;
    /* A caller publishes `open` and then reads `sleepers`; this reads them
     * the other way round, so one of the two sees the other's write. */
    while (!atomic_load(&pool.stop) && ((g = atomic_load(&pool.open)) == 0 || g == seen))
        pthread_cond_wait(&pool.wake, &pool.mu);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.mu);
    return atomic_load(&pool.stop) ? 0 : g;
}

static void *worker_main(void *arg)
{
    (void)arg;
    in_task = true;
    unsigned long seen = atomic_load(&pool.open), g;
    while ((g = await_region(seen)) != 0) {
        seen = g;
        atomic_fetch_add(&pool.active, 1);
        if (atomic_load(&pool.open) == g)
            run_ranges();
        atomic_fetch_sub(&pool.active, 1);
    }
    return NULL;
}

static void pool_at_exit(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.exiting = true;
    pthread_mutex_unlock(&pool.mu);
    cpu_threads_shutdown();
}

/* A forked child has only the thread that forked: it forgets the workers
 * and makes its own pool when it needs one. The pool's locks are held
 * across fork() (region first, as everywhere) so the child's are free;
 * not `region` when a task forks, its region being the one in progress. */
static _Thread_local bool fork_holds_region;

static void pool_fork_prepare(void)
{
    if (!in_task) {
        pthread_mutex_lock(&pool.region);
        fork_holds_region = true;
    }
    pthread_mutex_lock(&pool.mu);
}

static void pool_fork_parent(void)
{
    pthread_mutex_unlock(&pool.mu);
    if (fork_holds_region) {
        fork_holds_region = false;
        pthread_mutex_unlock(&pool.region);
    }
}

static void pool_fork_child(void)
{
    free(pool.workers);
    pool.workers = NULL;
    pool.n_workers = 0;
    atomic_store(&pool.active, 0);
    atomic_store(&pool.sleepers, 0);
    atomic_store(&pool.open, 0);
    pool_fork_parent();
}

static void pool_register(void)
{
    atexit(pool_at_exit);
    pthread_atfork(pool_fork_prepare, pool_fork_parent, pool_fork_child);
}

/* With `region` held: starts the workers if there are none yet. Returns
 * the number running (fewer than asked when the system refuses threads:
 * the regions then run on those there are, or inline). */
static int pool_start(int threads)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pool_register);
    pthread_mutex_lock(&pool.mu);
    bool exiting = pool.exiting;
    pthread_mutex_unlock(&pool.mu);
    if (pool.workers || exiting)
        return pool.n_workers;
    pthread_t *w = calloc((size_t)threads - 1, sizeof *w);
    if (!w)
        return 0;
    int started = 0;
    while (started < threads - 1 && pthread_create(&w[started], NULL, worker_main, NULL) == 0)
        started++;
    pthread_mutex_lock(&pool.mu);
    pool.workers = w;
    pool.n_workers = started;
    pthread_mutex_unlock(&pool.mu);
    return started;
}

int cpu_parallel_for(size_t n, size_t min_chunk, cpu_range_fn fn, void *ctx)
{
    if (!fn)
        return err_set(CREMA_ERR_INVALID, "cpu_parallel_for: no function to run");
    if (n == 0)
        return CREMA_OK;
    if (min_chunk == 0)
        min_chunk = 1;
    /* Ranges of at least min_chunk: floor(n / min_chunk) of them at most. */
    size_t ranges = n / min_chunk;
    if (in_task || ranges < 2)
        return fn(ctx, 0, n);
    int threads = cpu_num_threads();
    if (threads <= 1 || pthread_mutex_trylock(&pool.region) != 0)
        return fn(ctx, 0, n);
    int workers = pool_start(threads);
    if (workers == 0) {
        pthread_mutex_unlock(&pool.region);
        return fn(ctx, 0, n);
    }
    size_t most = (size_t)(workers + 1) * RANGES_PER_THREAD;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.n_ranges = ranges < most ? ranges : most;
    atomic_store(&pool.next, 0);
    pool.fail_rc = 0;
    if (++pool.gen == 0)
        pool.gen = 1;
    atomic_store(&pool.open, pool.gen);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }

    in_task = true;
    run_ranges();
    in_task = false;

    /* Every range is taken: close the region, then wait for the workers
     * still inside it (each finishing one range at most). */
    atomic_store(&pool.open, 0);
    for (unsigned spins = 1; atomic_load(&pool.active) > 0; spins++) {
        if (spins < 4096)
            cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_lock(&pool.mu);
    int rc = pool.fail_rc;
    char msg[sizeof pool.fail_msg];
    if (rc)
        memcpy(msg, pool.fail_msg, sizeof msg);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.region);
    return rc ? err_set(rc, "%s", msg) : CREMA_OK;
}

/* With `region` held: joins the workers. */
static void pool_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    atomic_store(&pool.stop, true);
    pthread_cond_broadcast(&pool.wake);
    int n = pool.n_workers;
    pthread_t *w = pool.workers;
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < n; i++)
        pthread_join(w[i], NULL);
    pthread_mutex_lock(&pool.mu);
    free(pool.workers);
    pool.workers = NULL;
    pool.n_workers = 0;
    atomic_store(&pool.stop, false);
    pthread_mutex_unlock(&pool.mu);
}

void cpu_threads_shutdown(void)
{
    if (in_task)
        return;
    pthread_mutex_lock(&pool.region);
    pool_stop();
    pthread_mutex_unlock(&pool.region);
}

int cpu_set_num_threads(int n)
{
    if (n < 0 || n > CPU_MAX_THREADS)
        return err_set(CREMA_ERR_INVALID,
                       "cpu_set_num_threads: %d threads; give 1 to %d, or 0 for the default", n,
                       CPU_MAX_THREADS);
    if (in_task)
        return err_set(CREMA_ERR_INVALID,
                       "cpu_set_num_threads: called from inside a parallel region");
    int want = n ? n : default_threads();
    pthread_mutex_lock(&pool.region);
    pool_stop();
    atomic_store(&pool.want, want);
    pthread_mutex_unlock(&pool.region);
    return CREMA_OK;
}
