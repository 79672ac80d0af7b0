/* crema's thread pool: cpu_parallel_for covers every index once, nests,
 * reports errors; and whole nets give bit-identical blobs and gradients on
 * 1, 2 and 3 threads. */
#include "check.h"
#include "cpu/threads.h"
#include "net/net.h"
#include "proto/proto_io.h"
#include "util/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- cpu_parallel_for ---- */

struct cover {
    size_t n;
    atomic_int *hits;
    atomic_size_t calls, shortest;
};

static int cover_fn(void *ctx, size_t begin, size_t end)
{
    struct cover *c = ctx;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
    atomic_fetch_add(&c->calls, 1);
    size_t len = end - begin, cur = atomic_load(&c->shortest);
    while (len < cur && !atomic_compare_exchange_weak(&c->shortest, &cur, len))
        ;
    return 0;
}

/* Runs cover_fn over [0, n) and checks every index was hit exactly once,
 * by ranges of at least min(min_chunk, n) (0 reads as 1). Returns the
 * number of ranges. */
static size_t check_cover(size_t n, size_t min_chunk)
{
    struct cover c = { .n = n, .hits = calloc(n ? n : 1, sizeof(atomic_int)) };
    atomic_init(&c.calls, 0);
    atomic_init(&c.shortest, SIZE_MAX);
    CHECK_OK(cpu_parallel_for(n, min_chunk, cover_fn, &c));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&c.hits[i]) != 1 && bad++ < 3)
            check_fail(__FILE__, __LINE__, "n %zu min_chunk %zu: index %zu covered %d times", n,
                       min_chunk, i, atomic_load(&c.hits[i]));
    size_t want = min_chunk ? min_chunk : 1;
    if (want > n)
        want = n;
    size_t calls = atomic_load(&c.calls);
    if (n == 0)
        CHECK_EQ_INT(calls, 0);
    else
        CHECK_MSG(atomic_load(&c.shortest) >= want,
                  "n %zu min_chunk %zu: a range of %zu indices", n, min_chunk,
                  atomic_load(&c.shortest));
    free(c.hits);
    return calls;
}

static void test_cover_all_indices(void)
{
    static const int threads[] = { 1, 2, 3, 4, 7 };
    static const size_t ns[] = { 0, 1, 2, 3, 5, 17, 100, 1000, 10007 };
    static const size_t chunks[] = { 0, 1, 3, 64, 5000 };
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        CHECK_OK(cpu_set_num_threads(threads[t]));
        CHECK_EQ_INT(cpu_num_threads(), threads[t]);
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof chunks / sizeof *chunks; b++) {
                size_t calls = check_cover(ns[a], chunks[b]);
                /* One thread, or too little work to split: one inline call. */
                size_t m = chunks[b] ? chunks[b] : 1;
                if (ns[a] && (threads[t] == 1 || ns[a] / m < 2))
                    CHECK_MSG(calls == 1, "%d threads, n %zu, min_chunk %zu: %zu calls, expected 1",
                              threads[t], ns[a], chunks[b], calls);
                if (threads[t] > 1 && ns[a] / m >= 2)
                    CHECK_MSG(calls >= 2 && calls <= ns[a] / m,
                              "%d threads, n %zu, min_chunk %zu: %zu ranges", threads[t], ns[a],
                              chunks[b], calls);
            }
    }
    CHECK_OK(cpu_set_num_threads(0));
}

/* cpu_scratch: one buffer per thread, kept across calls, grown on demand. */
static int scratch_fn(void *ctx, size_t begin, size_t end)
{
    float **seen = ctx;
    for (size_t i = begin; i < end; i++) {
        float *a = cpu_scratch(1000), *b = cpu_scratch(10);
        if (!a || a != b)
            return err_set(CREMA_ERR_INVALID, "cpu_scratch gave %p, then %p", (void *)a, (void *)b);
        a[999] = (float)i;
        seen[i] = a;
    }
    return 0;
}

static void test_scratch(void)
{
    float *a = cpu_scratch(16);
    CHECK(a != NULL);
    CHECK(cpu_scratch(8) == a); /* smaller: the same buffer */
    float *b = cpu_scratch(1 << 20);
    CHECK(b != NULL);
    if (b)
        b[(1 << 20) - 1] = 1.f; /* all of it is there */
    CHECK(cpu_scratch(1 << 20) == b);
    CHECK_OK(cpu_set_num_threads(2));
    float *seen[64] = { 0 };
    CHECK_OK(cpu_parallel_for(64, 1, scratch_fn, seen));
    CHECK_OK(cpu_set_num_threads(0));
}

static void test_n_smaller_than_threads(void)
{
    CHECK_OK(cpu_set_num_threads(4));
    CHECK(check_cover(1, 1) == 1);
    CHECK(check_cover(2, 1) <= 2);
    CHECK(check_cover(3, 1) <= 3);
    CHECK_OK(cpu_set_num_threads(0));
}

/* Ranges that take a while, so that a worker gets to take some even on a
 * busy machine; records which threads ran them. */
struct who {
    pthread_t seen[64];
    atomic_int n_seen;
};

static int who_fn(void *ctx, size_t begin, size_t end)
{
    struct who *w = ctx;
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL);
    int k = atomic_fetch_add(&w->n_seen, 1);
    if (k < 64)
        w->seen[k] = pthread_self();
    (void)begin;
    (void)end;
    return 0;
}

static void test_workers_take_ranges(void)
{
    CHECK_OK(cpu_set_num_threads(2));
    bool two = false;
    for (int attempt = 0; attempt < 20 && !two; attempt++) {
        struct who w;
        atomic_init(&w.n_seen, 0);
        CHECK_OK(cpu_parallel_for(8, 1, who_fn, &w));
        int n = atomic_load(&w.n_seen);
        CHECK_EQ_INT(n, 8);
        for (int i = 1; i < n && i < 64; i++)
            two |= !pthread_equal(w.seen[i], w.seen[0]);
    }
    CHECK_MSG(two, "20 regions of 8 ranges of 2 ms on 2 threads: every range ran on one thread");
    CHECK_OK(cpu_set_num_threads(0));
}

struct nest {
    atomic_int inner_calls, inner_not_inline, outer_indices;
};

static int nest_inner(void *ctx, size_t begin, size_t end)
{
    struct nest *s = ctx;
    atomic_fetch_add(&s->inner_calls, 1);
    if (begin != 0 || end != 1000)
        atomic_fetch_add(&s->inner_not_inline, 1);
    return 0;
}

static int nest_outer(void *ctx, size_t begin, size_t end)
{
    struct nest *s = ctx;
    atomic_fetch_add(&s->outer_indices, (int)(end - begin));
    for (size_t i = begin; i < end; i++) {
        int rc = cpu_parallel_for(1000, 1, nest_inner, s);
        if (rc)
            return rc;
    }
    /* Resizing the pool from inside a task is refused. */
    if (cpu_set_num_threads(1) != CREMA_ERR_INVALID)
        return err_set(CREMA_ERR_UNSUPPORTED, "cpu_set_num_threads inside a task was not refused");
    return 0;
}

static void test_nested_runs_inline(void)
{
    CHECK_OK(cpu_set_num_threads(3));
    struct nest s;
    atomic_init(&s.inner_calls, 0);
    atomic_init(&s.inner_not_inline, 0);
    atomic_init(&s.outer_indices, 0);
    CHECK_OK(cpu_parallel_for(40, 1, nest_outer, &s));
    CHECK_EQ_INT(atomic_load(&s.outer_indices), 40);
    CHECK_EQ_INT(atomic_load(&s.inner_calls), 40);
    CHECK_EQ_INT(atomic_load(&s.inner_not_inline), 0);
    CHECK_OK(cpu_set_num_threads(0));
}

/* Fails every range that holds an index >= 50, naming its first index;
 * counts the indices it saw and keeps the lowest failing first index. */
struct fails {
    atomic_size_t seen, lowest;
};

static int fail_fn(void *ctx, size_t begin, size_t end)
{
    struct fails *f = ctx;
    atomic_fetch_add(&f->seen, end - begin);
    if (end <= 50)
        return 0;
    size_t cur = atomic_load(&f->lowest);
    while (begin < cur && !atomic_compare_exchange_weak(&f->lowest, &cur, begin))
        ;
    return err_set(begin < 50 ? CREMA_ERR_IO : CREMA_ERR_SHAPE, "range from %zu failed", begin);
}

static void test_errors(void)
{
    CHECK_EQ_INT(cpu_parallel_for(10, 1, NULL, NULL), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "no function") != NULL);
    CHECK_EQ_INT(cpu_set_num_threads(-1), CREMA_ERR_INVALID);
    CHECK_EQ_INT(cpu_set_num_threads(CPU_MAX_THREADS + 1), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "cpu_set_num_threads") != NULL);
    /* Inline, the one range [0, 100) fails; on three threads the first
     * failing range (the one holding 50), whatever thread ran it, gives its
     * status and message, and a failure does not stop the other ranges. */
    for (int threads = 1; threads <= 3; threads += 2) {
        CHECK_OK(cpu_set_num_threads(threads));
        for (int rep = 0; rep < 20; rep++) {
            err_clear();
            struct fails f;
            atomic_init(&f.seen, 0);
            atomic_init(&f.lowest, SIZE_MAX);
            int rc = cpu_parallel_for(100, 1, fail_fn, &f);
            size_t lowest = atomic_load(&f.lowest);
            CHECK(lowest <= 50);
            if (threads == 1)
                CHECK_EQ_INT(lowest, 0);
            CHECK_EQ_INT(rc, lowest < 50 ? CREMA_ERR_IO : CREMA_ERR_SHAPE);
            char want[64];
            snprintf(want, sizeof want, "range from %zu failed", lowest);
            CHECK_MSG(strcmp(crema_errmsg(), want) == 0, "message \"%s\", expected \"%s\"",
                      crema_errmsg(), want);
            CHECK_EQ_INT(atomic_load(&f.seen), 100);
        }
    }
    /* The pool still works after failures. */
    check_cover(1000, 1);
    CHECK_OK(cpu_set_num_threads(0));
}

static void test_env_threads(void)
{
    char *old = getenv("CREMA_NUM_THREADS") ? strdup(getenv("CREMA_NUM_THREADS")) : NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int fallback = cpus < 1 ? 1 : cpus > CPU_MAX_THREADS ? CPU_MAX_THREADS : (int)cpus;
    setenv("CREMA_NUM_THREADS", "3", 1);
    CHECK_OK(cpu_set_num_threads(0));
    CHECK_EQ_INT(cpu_num_threads(), 3);
    check_cover(500, 1);
    static const char *const bad[] = { "0", "-2", "abc", "4x", "100000" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("CREMA_NUM_THREADS", bad[i], 1);
        CHECK_OK(cpu_set_num_threads(0));
        CHECK_MSG(cpu_num_threads() == fallback, "CREMA_NUM_THREADS=%s: %d threads, expected %d",
                  bad[i], cpu_num_threads(), fallback);
    }
    unsetenv("CREMA_NUM_THREADS");
    CHECK_OK(cpu_set_num_threads(0));
    CHECK_EQ_INT(cpu_num_threads(), fallback);
    if (old)
        setenv("CREMA_NUM_THREADS", old, 1);
    free(old);
    CHECK_OK(cpu_set_num_threads(0));
}

static void *caller_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        check_cover(3000, 16);
    return NULL;
}

/* Two threads of the program use the pool at once: one of them runs its
 * loops inline while the other holds it; both are complete. */
static void test_concurrent_callers(void)
{
    CHECK_OK(cpu_set_num_threads(2));
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, caller_main, NULL), 0);
    caller_main(NULL);
    pthread_join(t, NULL);
    CHECK_OK(cpu_set_num_threads(0));
}

static void test_shutdown_and_fork(void)
{
    CHECK_OK(cpu_set_num_threads(2));
    check_cover(1000, 1);
    cpu_threads_shutdown();
    cpu_threads_shutdown();
    check_cover(1000, 1); /* a new pool */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child has no workers; it makes its own pool. */
        int before = check_case_failed;
        for (int i = 0; i < 20; i++)
            check_cover(1000, 1);
        _exit(check_case_failed == before ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    check_cover(1000, 1);
    CHECK_OK(cpu_set_num_threads(0));
}

/* ---- whole nets: the same bits on any number of threads ---- */

struct snapshot {
    int n;
    float **v;
    size_t *count;
};

static void snap_add(struct snapshot *s, const float *p, size_t count)
{
    s->v = realloc(s->v, (size_t)(s->n + 1) * sizeof *s->v);
    s->count = realloc(s->count, (size_t)(s->n + 1) * sizeof *s->count);
    s->v[s->n] = malloc((count ? count : 1) * sizeof(float));
    if (count)
        memcpy(s->v[s->n], p, count * sizeof(float));
    s->count[s->n++] = count;
}

static void snap_free(struct snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s->count);
    memset(s, 0, sizeof *s);
}

/* Builds the net, runs two forward+backward passes on `threads` threads,
 * and keeps every blob's data and diff and every parameter's data and
 * diff, with their names in `names` (first run only). */
static void run_net(const char *text, const char *what, int threads, struct snapshot *out,
                    char ***names)
{
    CHECK_OK(cpu_set_num_threads(threads));
    Caffe__NetParameter *p = NULL;
    int rc = proto_parse_text(&caffe__net_parameter__descriptor, text, strlen(text), what,
                              (ProtobufCMessage **)&p);
    CHECK_MSG(rc == 0, "%s: %s", what, crema_errmsg());
    if (rc)
        return;
    static const Caffe__NetState def = CAFFE__NET_STATE__INIT;
    Caffe__NetState st = def;
    st.has_phase = 1;
    st.phase = CAFFE__PHASE__TRAIN;
    struct net *net = NULL;
    rc = net_build(p, &st, 1234, &net);
    proto_free(&p->base);
    CHECK_MSG(rc == 0, "%s: %s", what, crema_errmsg());
    if (rc)
        return;
    float loss;
    for (int it = 0; it < 2; it++) {
        CHECK_OK(net_forward(net, &loss));
        CHECK_OK(net_backward(net));
    }
    int k = 0;
    for (int i = 0; i < net->n_blobs; i++, k += 2) {
        struct tensor *t = net->blobs[i];
        snap_add(out, tensor_data(t), t->count);
        snap_add(out, tensor_diff(t), t->count);
        if (names) {
            *names = realloc(*names, (size_t)(k + 2) * sizeof **names);
            (*names)[k] = malloc(strlen(net->blob_names[i]) + 16);
            (*names)[k + 1] = malloc(strlen(net->blob_names[i]) + 16);
            sprintf((*names)[k], "blob %s data", net->blob_names[i]);
            sprintf((*names)[k + 1], "blob %s diff", net->blob_names[i]);
        }
    }
    for (int i = 0; i < net->n_params; i++, k += 2) {
        struct tensor *t = net->params[i];
        snap_add(out, tensor_data(t), t->count);
        snap_add(out, tensor_diff(t), t->count);
        if (names) {
            const char *layer = net->layers[net->param_layer[i]].layer->param->name;
            *names = realloc(*names, (size_t)(k + 2) * sizeof **names);
            (*names)[k] = malloc(strlen(layer) + 48);
            (*names)[k + 1] = malloc(strlen(layer) + 48);
            sprintf((*names)[k], "layer %s param %d data", layer, net->param_layer_index[i]);
            sprintf((*names)[k + 1], "layer %s param %d diff", layer, net->param_layer_index[i]);
        }
    }
    net_free(net);
}

/* Every blob and gradient of text on 2 and 3 threads equals 1 thread's, bit
 * for bit. */
static void check_net_bits(const char *text, const char *what)
{
    struct snapshot ref = { 0 };
    char **names = NULL;
    run_net(text, what, 1, &ref, &names);
    CHECK_MSG(ref.n > 0, "%s: nothing to compare", what);
    for (int threads = 2; threads <= 3; threads++) {
        struct snapshot got = { 0 };
        run_net(text, what, threads, &got, NULL);
        CHECK_EQ_INT(got.n, ref.n);
        int differ = 0;
        for (int i = 0; i < ref.n && i < got.n; i++) {
            CHECK_EQ_INT(got.count[i], ref.count[i]);
            if (got.count[i] != ref.count[i])
                continue;
            if (memcmp(got.v[i], ref.v[i], ref.count[i] * sizeof(float)) == 0)
                continue;
            size_t j = 0;
            while (memcmp(&got.v[i][j], &ref.v[i][j], sizeof(float)) == 0)
                j++;
            if (differ++ < 5)
                check_fail(__FILE__, __LINE__,
                           "%s, %d threads: %s differs from 1 thread's at %zu: %.9g, expected %.9g",
                           what, threads, names[i], j, got.v[i][j], ref.v[i][j]);
        }
        snap_free(&got);
    }
    printf("    %s: %d blobs and gradients identical on 1, 2, 3 threads\n", what, ref.n);
    for (int i = 0; i < ref.n; i++)
        free(names[i]);
    free(names);
    snap_free(&ref);
    CHECK_OK(cpu_set_num_threads(0));
}

/* A bench net with random data (gaussian) and labels (0-9) instead of
 * constants, so that every path (pooling ties, ReLU signs) is exercised. */
static char *bench_text(const char *file)
{
    char rel[128];
    snprintf(rel, sizeof rel, "bench/%s", file);
    char *path = check_shared(rel);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    free(path);
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *src = calloc((size_t)len + 1, 1);
    CHECK(fread(src, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    static const char data_old[] = "data_filler { type: \"constant\" value: 0.5 }";
    static const char label_old[] = "data_filler { type: \"constant\" value: 0 }";
    static const char data_new[] = "data_filler { type: \"gaussian\" std: 1 }";
    static const char label_new[] = "data_filler { type: \"uniform\" min: 0 max: 9.99 }";
    char *out = calloc((size_t)len + 256, 1);
    char *a = strstr(src, data_old), *b = strstr(src, label_old);
    CHECK_MSG(a && b && a < b, "%s: the DummyData fillers are not where expected", file);
    if (a && b && a < b) {
        strncat(out, src, (size_t)(a - src));
        strcat(out, data_new);
        strncat(out, a + strlen(data_old), (size_t)(b - a - (long)strlen(data_old)));
        strcat(out, label_new);
        strcat(out, b + strlen(label_old));
    }
    free(src);
    return out;
}

static void test_lenet_bits(void)
{
    char *text = bench_text("lenet.prototxt");
    if (text)
        check_net_bits(text, "LeNet");
    free(text);
}

static void test_cifar10_quick_bits(void)
{
    char *text = bench_text("cifar10_quick.prototxt");
    if (text)
        check_net_bits(text, "CIFAR10-quick");
    free(text);
}

/* Every threaded layer, on tensors large enough to be split. */
static const char every_layer_net[] =
    "name: 'every_threaded_layer' force_backward: true\n"
    "layer { name: 'data' type: 'DummyData' top: 'data'\n"
    "  dummy_data_param { data_filler { type: 'gaussian' std: 1 } shape { dim: 8 dim: 16 dim: 24 dim: 24 } } }\n"
    "layer { name: 'target' type: 'DummyData' top: 'target'\n"
    "  dummy_data_param { data_filler { type: 'gaussian' std: 1 } shape { dim: 8 dim: 16 dim: 7 dim: 7 } } }\n"
    "layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'\n"
    "  convolution_param { num_output: 16 kernel_size: 3 pad: 1\n"
    "    weight_filler { type: 'gaussian' std: 0.1 } bias_filler { type: 'gaussian' std: 0.1 } } }\n"
    "layer { name: 'deconv' type: 'Deconvolution' bottom: 'conv' top: 'deconv'\n"
    "  convolution_param { num_output: 16 kernel_size: 3 stride: 1 pad: 1\n"
    "    weight_filler { type: 'gaussian' std: 0.1 } } }\n"
    "layer { name: 'lrn' type: 'LRN' bottom: 'deconv' top: 'lrn' lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 } }\n"
    "layer { name: 'relu' type: 'ReLU' bottom: 'lrn' top: 'relu' relu_param { negative_slope: 0.1 } }\n"
    "layer { name: 'prelu' type: 'PReLU' bottom: 'relu' top: 'prelu' }\n"
    "layer { name: 'elu' type: 'ELU' bottom: 'prelu' top: 'elu' }\n"
    "layer { name: 'sigmoid' type: 'Sigmoid' bottom: 'elu' top: 'sigmoid' }\n"
    "layer { name: 'tanh' type: 'TanH' bottom: 'sigmoid' top: 'tanh' }\n"
    "layer { name: 'abs' type: 'AbsVal' bottom: 'tanh' top: 'abs' }\n"
    "layer { name: 'power' type: 'Power' bottom: 'abs' top: 'power' power_param { power: 2 scale: 0.5 shift: 1 } }\n"
    "layer { name: 'exp' type: 'Exp' bottom: 'power' top: 'exp' exp_param { scale: 0.5 } }\n"
    "layer { name: 'log' type: 'Log' bottom: 'exp' top: 'log' log_param { shift: 1 } }\n"
    "layer { name: 'bnll' type: 'BNLL' bottom: 'log' top: 'bnll' }\n"
    "layer { name: 'clip' type: 'Clip' bottom: 'bnll' top: 'clip' clip_param { min: 0 max: 1.2 } }\n"
    "layer { name: 'swish' type: 'Swish' bottom: 'clip' top: 'swish' }\n"
    "layer { name: 'drop' type: 'Dropout' bottom: 'swish' top: 'drop' dropout_param { dropout_ratio: 0.3 } }\n"
    "layer { name: 'pool1' type: 'Pooling' bottom: 'drop' top: 'pool1'\n"
    "  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }\n"
    "layer { name: 'softmax' type: 'Softmax' bottom: 'pool1' top: 'softmax' }\n"
    "layer { name: 'lrn2' type: 'LRN' bottom: 'softmax' top: 'lrn2'\n"
    "  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }\n"
    "layer { name: 'pool2' type: 'Pooling' bottom: 'lrn2' top: 'pool2'\n"
    "  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }\n"
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'pool2' bottom: 'target' top: 'loss' }\n";

static void test_every_threaded_layer_bits(void)
{
    check_net_bits(every_layer_net, "every threaded layer");
}

CHECK_MAIN(CASE(test_cover_all_indices), CASE(test_scratch), CASE(test_n_smaller_than_threads),
           CASE(test_workers_take_ranges), CASE(test_nested_runs_inline), CASE(test_errors),
           CASE(test_env_threads), CASE(test_concurrent_callers), CASE(test_shutdown_and_fork),
           CASE(test_lenet_bits), CASE(test_cifar10_quick_bits),
           CASE(test_every_threaded_layer_bits))
