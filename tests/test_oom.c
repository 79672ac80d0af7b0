/* Every layer kind driven past available memory must end in a clean error
 * naming the layer, never a signal. One net per kind: the cases of
 * ../shared/golden/layers (Input-fed, made by BVLC Caffe). Each runs in a
 * forked child: forward and backward once at its own size, then, under an
 * address-space limit (RLIMIT_AS) of what the child maps now plus BUDGET,
 * built again with the batch axis of its inputs (and Parameter blobs)
 * grown until one alone takes 3/5 of BUDGET, and run forward and backward.
 * A layer whose outputs or gradients are as large as an input cannot fit;
 * a kind that allocates nothing of that size of its own runs through, and
 * the test says so (the Python layer case needs the Python package: see
 * python/tests/test_net.py). No timing is involved: the limit is counted
 * in bytes of address space, one BLAS and one crema thread.
 * Then the command line, as a user meets it: Convolution on a batch past
 * the limit, Im2col and Convolution with a huge pad (exit status 1, a
 * message naming the layer).
 * `test_oom conv lrn` runs the golden cases whose name contains an argument. */
#define _GNU_SOURCE
#include "check.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Address space the grown net may map beyond what the child has mapped
 * after running it at its own size. */
#define BUDGET ((size_t)256 << 20)

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UNDER_ASAN)
#define UNDER_ASAN 1
#endif

#ifdef UNDER_ASAN
/* AddressSanitizer's allocator aborts when memory runs out unless told to
 * return NULL as malloc does. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

/* The child's exit statuses. */
enum { RAN = 0, FAILED = 1, NOT_RUN = 3 };

static size_t mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static int limit_address_space(size_t extra)
{
    struct rlimit r = { .rlim_cur = mapped_bytes() + extra, .rlim_max = RLIM_INFINITY };
    struct rlimit old;
    if (getrlimit(RLIMIT_AS, &old) == 0)
        r.rlim_max = old.rlim_max;
    if (r.rlim_max != RLIM_INFINITY && r.rlim_cur > r.rlim_max)
        r.rlim_cur = r.rlim_max;
    return setrlimit(RLIMIT_AS, &r);
}

/* The shapes a case feeds its layers: Input tops and Parameter blobs. */
static size_t fed_shapes(Caffe__NetParameter *np, Caffe__BlobShape **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < np->n_layer; i++) {
        Caffe__LayerParameter *lp = np->layer[i];
        if (lp->type && !strcmp(lp->type, "Input") && lp->input_param)
            for (size_t s = 0; s < lp->input_param->n_shape && n < cap; s++)
                out[n++] = lp->input_param->shape[s];
        if (lp->type && !strcmp(lp->type, "Parameter") && lp->parameter_param && lp->parameter_param->shape &&
            n < cap)
            out[n++] = lp->parameter_param->shape;
    }
    return n;
}

/* Grows the batch so that the largest fed blob holds about `floats`
 * values: its axis 0 (axis 1 where axis 0 is a single time step), and that
 * axis of every other fed shape of the same extent there, so that shapes
 * that must agree still do. Returns the factor (0: nothing to grow). */
static long grow_inputs(Caffe__NetParameter *np, size_t floats)
{
    Caffe__BlobShape *shapes[64];
    size_t n = fed_shapes(np, shapes, 64), largest = 0;
    const Caffe__BlobShape *big = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t count = 1;
        for (size_t d = 0; d < shapes[i]->n_dim; d++)
            count *= shapes[i]->dim[d] > 0 ? (size_t)shapes[i]->dim[d] : 1;
        if (shapes[i]->n_dim && count > largest) {
            largest = count;
            big = shapes[i];
        }
    }
    if (!big)
        return 0;
    size_t axis = big->dim[0] == 1 && big->n_dim > 1 ? 1 : 0;
    int64_t extent = big->dim[axis];
    long factor = (long)(floats / largest);
    if (factor < 2)
        factor = 2;
    for (size_t i = 0; i < n; i++)
        if (shapes[i]->n_dim > axis && shapes[i]->dim[axis] == extent && extent * factor < INT_MAX)
            shapes[i]->dim[axis] = extent * factor;
    return factor;
}

static int run_once(const Caffe__NetParameter *np)
{
    struct net *net = NULL;
    int rc = net_build(np, NULL, 1, &net);
    if (!rc)
        rc = net_forward(net, NULL);
    /* Layers without backward (ArgMax, Threshold) under force_backward:
     * forward alone. */
    if (!rc && (rc = net_backward(net)) == CREMA_ERR_UNSUPPORTED)
        rc = CREMA_OK;
    net_free(net);
    return rc;
}

/* The child: the case at its own size, then grown under the limit. Says
 * what happened on `out` in one line. */
static int oom_child(const char *dir, FILE *out)
{
    if (chdir(dir) != 0) {
        fprintf(out, "cannot enter %s: %s\n", dir, strerror(errno));
        return NOT_RUN;
    }
    /* One arena and one thread: what the limit leaves does not depend on
     * the machine's core count. */
    mallopt(M_ARENA_MAX, 1);
    Caffe__NetParameter *np = NULL;
    int rc = proto_read_text("net.prototxt", &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np);
    if (!rc && (rc = run_once(np))) {
        fprintf(out, "does not run at its own size: %s\n", crema_errmsg());
        return NOT_RUN;
    }
    if (rc) {
        fprintf(out, "%s\n", crema_errmsg());
        return NOT_RUN;
    }
    long factor = grow_inputs(np, BUDGET / sizeof(float) * 3 / 5);
    if (!factor) {
        fprintf(out, "no Input or Parameter shapes to grow\n");
        return NOT_RUN;
    }
    fflush(out);
    if (limit_address_space(BUDGET) != 0) {
        fprintf(out, "setrlimit: %s\n", strerror(errno));
        return NOT_RUN;
    }
    rc = run_once(np);
    if (rc) {
        fprintf(out, "%s\n", crema_errmsg());
        return FAILED;
    }
    fprintf(out, "batch x%ld ran within the limit\n", factor);
    return RAN;
}

/* Forks; `fn(arg, out)` runs in the child, whose line comes back in msg. */
static int in_child(int (*fn)(const void *, FILE *), const void *arg, char *msg, size_t len, int *sig)
{
    int fd[2];
    *sig = 0;
    msg[0] = 0;
    if (pipe(fd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fd[0]);
        FILE *out = fdopen(fd[1], "w");
        setvbuf(out, NULL, _IONBF, 0);
        _exit(fn(arg, out));
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd[0], msg + n, len - 1 - n)) > 0)
        n += (size_t)r;
    msg[n] = 0;
    char sink[256];
    while (read(fd[0], sink, sizeof sink) > 0) {
    }
    close(fd[0]);
    if (n && msg[n - 1] == '\n')
        msg[n - 1] = 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        *sig = WTERMSIG(status);
        return -1;
    }
    return WEXITSTATUS(status);
}

static int golden_child(const void *dir, FILE *out)
{
    return oom_child(dir, out);
}

/* The kinds a case tests: the types of its layers other than Input. */
static void case_kinds(const char *dir, char *buf, size_t len)
{
    char path[PATH_MAX];
    Caffe__NetParameter *np = NULL;
    buf[0] = 0;
    if (snprintf(path, sizeof path, "%s/net.prototxt", dir) >= (int)sizeof path ||
        proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np))
        return;
    size_t o = 0;
    for (size_t i = 0; i < np->n_layer && o < len; i++)
        if (np->layer[i]->type && strcmp(np->layer[i]->type, "Input"))
            o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "", np->layer[i]->type);
    caffe__net_parameter__free_unpacked(np, NULL);
}

static bool names_a_layer(const char *msg)
{
    return strstr(msg, "layer ") && strchr(msg, '(');
}

static bool says_memory(const char *msg)
{
    return strstr(msg, "allocate") || strstr(msg, "memory");
}

static char **g_filter;
static int g_n_filter;

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void test_every_golden_layer_past_memory(void)
{
    char *root = check_shared("golden/layers");
    struct dirent **ents;
    int n = scandir(root, &ents, NULL, by_name);
    if (n < 0) {
        check_skip("%s: %s", root, strerror(errno));
        free(root);
        return;
    }
    int failed_clean = 0, ran = 0, not_run = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        char dir[PATH_MAX], kinds[512], msg[PATH_MAX + 64];
        if (snprintf(dir, sizeof dir, "%s/%s", root, name) >= (int)sizeof dir)
            continue;
        bool wanted = g_n_filter == 0;
        for (int f = 0; f < g_n_filter; f++)
            wanted |= strstr(name, g_filter[f]) != NULL;
        if (name[0] == '.' || !wanted || access(dir, X_OK) != 0)
            continue;
        if (snprintf(msg, sizeof msg, "%s/net.prototxt", dir) >= (int)sizeof msg || access(msg, R_OK) != 0)
            continue;
        case_kinds(dir, kinds, sizeof kinds);
        int sig, st = in_child(golden_child, dir, msg, sizeof msg, &sig);
        if (sig) {
            CHECK_MSG(0, "%s (%s): killed by signal %d (%s) past memory; last line: %s", name, kinds, sig,
                      strsignal(sig), msg);
        } else if (st == FAILED) {
            CHECK_MSG(names_a_layer(msg) && says_memory(msg),
                      "%s (%s): expected an out-of-memory error naming a layer, got: %s", name, kinds, msg);
            printf("  %-28s %-22s clean error: %s\n", name, kinds, msg);
            failed_clean++;
        } else if (st == RAN) {
            printf("  %-28s %-22s not driven past memory (nothing of its own grows that far): %s\n", name,
                   kinds, msg);
            ran++;
        } else if (st == NOT_RUN) {
            printf("  %-28s %-22s not run here: %s\n", name, kinds, msg);
            not_run++;
        } else {
            CHECK_MSG(0, "%s (%s): child exited %d: %s", name, kinds, st, msg);
        }
    }
    printf("  %d cases ended in a clean error, %d ran within the limit, %d were not run\n", failed_clean, ran,
           not_run);
    CHECK_MSG(g_n_filter || failed_clean > 50, "only %d golden cases were driven past memory", failed_clean);
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    free(root);
}

/* The command line under RLIMIT_AS: crema time on `prototxt`. */
struct cli_case {
    const char *path;
    size_t limit;
};

static int cli_child(const void *arg, FILE *out)
{
    const struct cli_case *c = arg;
    int fd = fileno(out);
    dup2(fd, 2);
    int null = open("/dev/null", 0);
    if (null >= 0)
        dup2(null, 1);
    if (c->limit) {
        struct rlimit r = { c->limit, c->limit };
        if (setrlimit(RLIMIT_AS, &r) != 0)
            return NOT_RUN;
    }
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
#ifdef UNDER_ASAN
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof opts, "%s%sallocator_may_return_null=1", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    execl(check_crema_bin(), "crema", "time", "-model", c->path, "-iterations", "1", (char *)NULL);
    fprintf(out, "exec %s: %s\n", check_crema_bin(), strerror(errno));
    return 127;
}

static void cli_expect(const char *what, const char *text, size_t limit, const char *layer)
{
    char *dir = check_tmpdir("oom");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.prototxt", dir, what);
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (!f) {
        free(dir);
        return;
    }
    fputs(text, f);
    fclose(f);
    struct cli_case c = { path, limit };
    char msg[4096];
    int sig, st = in_child(cli_child, &c, msg, sizeof msg, &sig);
    /* The last line is crema's error. */
    const char *last = strrchr(msg, '\n') ? strrchr(msg, '\n') + 1 : msg;
    CHECK_MSG(!sig, "%s: crema time killed by signal %d (%s); stderr: %s", what, sig, strsignal(sig), msg);
    CHECK_MSG(!strstr(msg, "runtime error"), "%s: a sanitizer's runtime error: %s", what, msg);
    CHECK_MSG(sig || (st == 1 && strstr(last, layer)),
              "%s: expected exit status 1 and an error naming %s, got status %d: %s", what, layer, st, msg);
    printf("  %-28s exit %d: %s\n", what, st, last);
    free(dir);
}

#define DUMMY(n, c, h, w)                                                                         \
    "layer { name: \"d\" type: \"DummyData\" top: \"x\" dummy_data_param { shape { dim: " #n     \
    " dim: " #c " dim: " #h " dim: " #w " } } }\n"

static void test_cli_batch_past_memory(void)
{
#ifdef UNDER_ASAN
    /* The binary maps its shadow memory (terabytes) before main: no
     * RLIMIT_AS it could start under would leave it any less. */
    check_skip("crema under AddressSanitizer cannot start under RLIMIT_AS");
    return;
#endif
    cli_expect("conv_batch",
               "name: \"n\"\n" DUMMY(30000, 3, 32, 32)
               "layer { name: \"l\" type: \"Convolution\" bottom: \"x\" top: \"y\" "
               "convolution_param { num_output: 16 kernel_size: 3 } }\n",
               (size_t)1000000 << 10, "layer l (Convolution)");
    cli_expect("pool_batch",
               "name: \"n\"\n" DUMMY(30000, 3, 32, 32)
               "layer { name: \"l\" type: \"Pooling\" bottom: \"x\" top: \"y\" "
               "pooling_param { pool: MAX kernel_size: 2 stride: 1 } }\n",
               (size_t)1000000 << 10, "layer l (Pooling)");
    cli_expect("lrn_batch",
               "name: \"n\"\n" DUMMY(30000, 3, 32, 32)
               "layer { name: \"l\" type: \"LRN\" bottom: \"x\" top: \"y\" }\n",
               (size_t)1000000 << 10, "layer l (LRN)");
}

/* A pad that makes the column matrix larger than any tensor (past INT_MAX
 * values, or past memory): refused by name, with no limit, never written
 * past its end. */
static void test_cli_huge_pad(void)
{
    static const char *pads[] = { "16000000", "50000", "9000", "5000" };
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        char text[1024], what[64];
        snprintf(text, sizeof text,
                 "name: \"n\"\n" DUMMY(1, 3, 4, 4)
                 "layer { name: \"l\" type: \"Im2col\" bottom: \"x\" top: \"y\" "
                 "convolution_param { kernel_size: 3 pad: %s } }\n", pads[i]);
        snprintf(what, sizeof what, "im2col_pad_%s", pads[i]);
        cli_expect(what, text, 0, "layer l (Im2col)");
        snprintf(text, sizeof text,
                 "name: \"n\"\n" DUMMY(1, 3, 4, 4)
                 "layer { name: \"l\" type: \"Convolution\" bottom: \"x\" top: \"y\" "
                 "convolution_param { num_output: 2 kernel_size: 3 pad: %s } }\n", pads[i]);
        snprintf(what, sizeof what, "conv_pad_%s", pads[i]);
        cli_expect(what, text, 0, "layer l (Convolution)");
    }
}

int main(int argc, char **argv)
{
    /* One BLAS thread, whose buffers the warm-up run maps before the
     * limit: OpenBLAS reads its setting when it loads, so start again. */
    const char *blas = getenv("OPENBLAS_NUM_THREADS");
    if (!blas || strcmp(blas, "1")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
    }
    setenv("CREMA_NUM_THREADS", "1", 1);
    static const struct check_case cases[] = {
        CASE(test_every_golden_layer_past_memory),
        CASE(test_cli_batch_past_memory),
        CASE(test_cli_huge_pad),
    };
    if (argc > 1) {
        g_filter = argv + 1;
        g_n_filter = argc - 1;
        return check_run(cases, 1, 1, argv);
    }
    return check_run(cases, (int)(sizeof cases / sizeof *cases), argc, argv);
}
