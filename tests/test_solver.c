/* The solver beyond the golden cases: crema's snapshot files are valid Caffe
 * messages and load back; a seeded run repeats bit for bit; a Data layer
 * (prefetch thread, random crops and mirrors) and an ImageData layer (shuffled
 * passes) resume mid-epoch exactly; and
 * SIGKILL during training never leaves a broken file under a final name. */
#define _GNU_SOURCE
#include "check.h"
#include "solver_testing.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"
#include "util/err.h"
#include "util/io.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *fmt(const char *f, const char *a, const char *b)
{
    size_t n = strlen(f) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *p = malloc(n);
    snprintf(p, n, f, a, b);
    return p;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK_MSG(f, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A Data-layer net over the golden Fashion-MNIST test LMDB, with TRAIN
 * crops and mirrors, so that resuming must restore record and generator. */
static char *data_net(const char *dir, int prefetch)
{
    char *lmdb = check_shared("golden/data/lmdb_test_crop/lmdb");
    char *abs = realpath(lmdb, NULL);
    CHECK_MSG(abs, "no %s", lmdb);
    char text[4096];
    snprintf(text, sizeof text,
             "name: \"tiny\"\n"
             "layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\"\n"
             "  transform_param { scale: 0.00390625 crop_size: 20 mirror: true }\n"
             "  data_param { source: \"%s\" batch_size: 7 backend: LMDB prefetch: %d } }\n"
             "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\"\n"
             "  inner_product_param { num_output: 10 weight_filler { type: \"xavier\" } } }\n"
             "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" }\n",
             abs ? abs : lmdb, prefetch);
    char *net = fmt("%s/net.prototxt", dir, NULL);
    write_text(net, text);
    free(abs);
    free(lmdb);
    return net;
}

/* The same with an ImageData input: shuffled each pass, cropped, mirrored,
 * over the CaffeOnSpark cat/dog images (53 of them: batches of 8 wrap). */
static char *image_net(const char *dir)
{
    char *cd = check_shared("corpus/caffeonspark/images_catdog");
    char *abs = realpath(cd, NULL);
    CHECK_MSG(abs, "no %s", cd);
    char text[4096];
    snprintf(text, sizeof text,
             "name: \"tiny_img\"\n"
             "layer { name: \"d\" type: \"ImageData\" top: \"data\" top: \"label\"\n"
             "  transform_param { scale: 0.00390625 crop_size: 10 mirror: true }\n"
             "  image_data_param { source: \"%s/labels.txt\" root_folder: \"%s/\" batch_size: 8\n"
             "    new_height: 12 new_width: 12 shuffle: true } }\n"
             "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\"\n"
             "  inner_product_param { num_output: 2 weight_filler { type: \"xavier\" } } }\n"
             "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" }\n",
             abs ? abs : cd, abs ? abs : cd);
    char *net = fmt("%s/net.prototxt", dir, NULL);
    write_text(net, text);
    free(abs);
    free(cd);
    return net;
}

static int train(const char *net, const char *prefix, int max_iter, int snapshot, const char *format,
                 const char *resume)
{
    char text[2048];
    snprintf(text, sizeof text,
             "net: \"%s\" base_lr: 0.05 momentum: 0.9 weight_decay: 0.0005 lr_policy: \"step\" gamma: 0.5\n"
             "stepsize: 3 max_iter: %d snapshot: %d snapshot_prefix: \"%s\" random_seed: 7\n"
             "snapshot_format: %s\n",
             net, max_iter, snapshot, prefix, format);
    char *sp = fmt("%s.solver.prototxt", prefix, NULL);
    write_text(sp, text);
    Caffe__SolverParameter *p = NULL;
    struct solver *s = NULL;
    int rc = solver_read_param(sp, &p);
    if (!rc)
        rc = solver_create(p, NULL, &s);
    if (!rc)
        rc = solver_solve(s, resume);
    solver_free(s);
    if (p)
        proto_free(&p->base);
    free(sp);
    return rc;
}

/* Walks the wire format of a top-level message: every field must be a
 * well-formed tag + value (what any protobuf parser, Caffe's included, skips
 * when unknown). Returns the number of fields numbered `want` with wire type 2. */
static int wire_walk(const uint8_t *p, size_t n, int want, bool *ok)
{
    size_t i = 0;
    int count = 0;
    *ok = true;
    while (i < n) {
        uint64_t tag = 0;
        int shift = 0;
        while (i < n && (p[i] & 0x80) && shift < 64)
            tag |= (uint64_t)(p[i++] & 0x7f) << shift, shift += 7;
        if (i >= n) {
            *ok = false;
            return count;
        }
        tag |= (uint64_t)p[i++] << shift;
        int wt = (int)(tag & 7);
        uint64_t field = tag >> 3, len = 0;
        switch (wt) {
        case 0:
            while (i < n && (p[i] & 0x80))
                i++;
            i++;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2:
            shift = 0;
            while (i < n && (p[i] & 0x80) && shift < 64)
                len |= (uint64_t)(p[i++] & 0x7f) << shift, shift += 7;
            if (i < n)
                len |= (uint64_t)p[i++] << shift;
            i += len;
            if (field == (uint64_t)want)
                count++;
            break;
        default:
            *ok = false;
            return count;
        }
    }
    *ok = i == n;
    return count;
}

static void test_snapshot_files_are_caffe_messages(void)
{
    char *dir = abs_tmpdir("solver_files");
    char *net = data_net(dir, 2);
    char *prefix = fmt("%s/bin", dir, NULL);
    CHECK_OK(train(net, prefix, 2, 2, "BINARYPROTO", NULL));
    char *model = fmt("%s_iter_2.caffemodel", prefix, NULL), *state = fmt("%s_iter_2.solverstate", prefix, NULL);
    Caffe__NetParameter *np = NULL;
    Caffe__SolverState *st = NULL;
    CHECK_OK(proto_read_binary(model, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np));
    CHECK_OK(proto_read_binary(state, &caffe__solver_state__descriptor, (ProtobufCMessage **)&st));
    if (st) {
        CHECK_EQ_INT(st->iter, 2);
        CHECK_MSG(st->learned_net && strcmp(st->learned_net, model) == 0, "learned_net %s, expected %s",
                  st->learned_net ? st->learned_net : "(none)", model);
        CHECK_EQ_INT(st->n_history, 2);
        CHECK_EQ_INT(st->n_crema_data_position, 1);
        if (st->n_crema_data_position == 1) {
            CHECK(strcmp(st->crema_data_position[0]->layer, "d") == 0);
            CHECK_EQ_INT(st->crema_data_position[0]->record, 14); /* two batches of 7 read */
        }
        proto_free(&st->base);
    }
    if (np) {
        CHECK_EQ_INT(np->n_layer, 3);
        proto_free(&np->base);
    }
    /* Bytes: well-formed fields throughout; the position is one field 1000
     * (wire type 2), which a parser without it skips. */
    uint8_t *bytes = NULL;
    size_t len = 0;
    CHECK_OK(io_read_file(state, IO_MAX_MESSAGE, &bytes, &len));
    bool ok = false;
    CHECK_EQ_INT(wire_walk(bytes, len, 1000, &ok), 1);
    CHECK(ok);
    free(bytes);
    CHECK_OK(io_read_file(model, IO_MAX_MESSAGE, &bytes, &len));
    wire_walk(bytes, len, 1000, &ok);
    CHECK(ok);
    free(bytes);

    /* HDF5: the same content by dataset, plus crema's positions dataset. */
    char *h5prefix = fmt("%s/h5", dir, NULL);
    CHECK_OK(train(net, h5prefix, 2, 2, "HDF5", NULL));
    char *h5model = fmt("%s_iter_2.caffemodel.h5", h5prefix, NULL);
    char *h5state = fmt("%s_iter_2.solverstate.h5", h5prefix, NULL);
    Caffe__NetParameter *hn = NULL;
    Caffe__SolverState *hs = NULL;
    CHECK_OK(hdf5_read_net(h5model, &hn));
    CHECK_OK(hdf5_read_solver_state(h5state, &hs));
    if (hs) {
        CHECK_EQ_INT(hs->iter, 2);
        CHECK_EQ_INT(hs->n_history, 2);
        CHECK(hs->learned_net && strcmp(hs->learned_net, h5model) == 0);
        proto_free(&hs->base);
    }
    if (hn)
        proto_free(&hn->base);
    /* Resuming from either state continues to the same weights as a run
     * resumed from the other (same arithmetic, same data position). */
    char *r1 = fmt("%s/rb", dir, NULL), *r2 = fmt("%s/rh", dir, NULL);
    CHECK_OK(train(net, r1, 4, 4, "BINARYPROTO", state));
    CHECK_OK(train(net, r2, 4, 4, "BINARYPROTO", h5state));
    char *m1 = fmt("%s_iter_4.caffemodel", r1, NULL), *m2 = fmt("%s_iter_4.caffemodel", r2, NULL);
    CHECK_MSG(same_bytes(m1, m2), "resumed from binary (%s) and HDF5 (%s) states differ", m1, m2);
    free(m1), free(m2), free(r1), free(r2);
    free(h5model), free(h5state), free(h5prefix);
    free(model), free(state), free(prefix), free(net), free(dir);
}

/* Same seed, one BLAS thread: every snapshot byte-identical. */
static void test_seeded_runs_repeat(void)
{
    char *dir = abs_tmpdir("solver_repeat");
    char *net = data_net(dir, 3);
    char *a = fmt("%s/a", dir, NULL), *b = fmt("%s/b", dir, NULL);
    CHECK_OK(train(net, a, 5, 1, "BINARYPROTO", NULL));
    CHECK_OK(train(net, b, 5, 1, "BINARYPROTO", NULL));
    for (int n = 1; n <= 5; n++) {
        char ma[512], mb[512];
        snprintf(ma, sizeof ma, "%s_iter_%d.caffemodel", a, n);
        snprintf(mb, sizeof mb, "%s_iter_%d.caffemodel", b, n);
        CHECK_MSG(same_bytes(ma, mb), "%s and %s differ", ma, mb);
    }
    free(a), free(b), free(net), free(dir);
}

/* Resume mid-epoch (Data layer, prefetch, random crops/mirrors) at several
 * iterations: each resumed run equals the straight run byte for byte. */
static void test_data_layer_resume_equals_straight(void)
{
    char *dir = abs_tmpdir("solver_resume");
    char *net = data_net(dir, 4);
    char *straight = fmt("%s/straight", dir, NULL);
    CHECK_OK(train(net, straight, 9, 1, "BINARYPROTO", NULL));
    const int at[] = { 1, 3, 5 };
    for (int k = 0; k < 3; k++) {
        char state[512], pre[512];
        snprintf(state, sizeof state, "%s_iter_%d.solverstate", straight, at[k]);
        snprintf(pre, sizeof pre, "%s/resumed%d", dir, at[k]);
        CHECK_OK(train(net, pre, 9, 1, "BINARYPROTO", state));
        for (int n = at[k] + 1; n <= 9; n++) {
            char ma[600], mb[600];
            snprintf(ma, sizeof ma, "%s_iter_%d.caffemodel", pre, n);
            snprintf(mb, sizeof mb, "%s_iter_%d.caffemodel", straight, n);
            CHECK_MSG(same_bytes(ma, mb), "resumed at %d: %s differs from the straight run's %s", at[k], ma, mb);
        }
    }
    free(straight), free(net), free(dir);
}

/* The same for ImageData: the resumed runs must redraw the pass's shuffled
 * order and restore the crop/mirror generator, across pass boundaries
 * (53 images, batches of 8: iterations 6 and 13 straddle a pass). */
static void test_image_data_resume_equals_straight(void)
{
    char *dir = abs_tmpdir("solver_resume_img");
    char *net = image_net(dir);
    char *straight = fmt("%s/straight", dir, NULL);
    CHECK_OK(train(net, straight, 16, 1, "BINARYPROTO", NULL));
    const int at[] = { 2, 7, 13 };
    for (int k = 0; k < 3; k++) {
        char state[512], pre[512];
        snprintf(state, sizeof state, "%s_iter_%d.solverstate", straight, at[k]);
        snprintf(pre, sizeof pre, "%s/resumed%d", dir, at[k]);
        CHECK_OK(train(net, pre, 16, 1, "BINARYPROTO", state));
        for (int n = at[k] + 1; n <= 16; n++) {
            char ma[600], mb[600];
            snprintf(ma, sizeof ma, "%s_iter_%d.caffemodel", pre, n);
            snprintf(mb, sizeof mb, "%s_iter_%d.caffemodel", straight, n);
            CHECK_MSG(same_bytes(ma, mb), "resumed at %d: %s differs from the straight run's %s", at[k], ma, mb);
        }
    }
    free(straight), free(net), free(dir);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Every file under a final snapshot name must load. Returns how many. */
static int check_snapshots_load(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (ends_with(e->d_name, ".caffemodel")) {
            Caffe__NetParameter *np = NULL;
            CHECK_OK(proto_read_binary(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np));
            if (np) {
                CHECK_MSG(np->n_layer == 3, "%s: %zu layers", path, np->n_layer);
                proto_free(&np->base);
            }
            n++;
        } else if (ends_with(e->d_name, ".solverstate")) {
            Caffe__SolverState *st = NULL;
            CHECK_OK(proto_read_binary(path, &caffe__solver_state__descriptor, (ProtobufCMessage **)&st));
            if (st) {
                CHECK_MSG(st->n_history == 2, "%s: %zu history blobs", path, st->n_history);
                proto_free(&st->base);
            }
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* kill -9 at random moments of a run that snapshots every iteration (a net
 * big enough that writing takes a while); after each kill every file under a
 * final name loads, and a resume from the newest state works. */
static void test_sigkill_leaves_snapshots_loadable(void)
{
    char *dir = abs_tmpdir("solver_kill");
    char text[2048];
    char *lmdb = check_shared("golden/data/lmdb_test_crop/lmdb");
    char *abs = realpath(lmdb, NULL);
    snprintf(text, sizeof text,
             "name: \"big\"\n"
             "layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\"\n"
             "  transform_param { scale: 0.00390625 }\n"
             "  data_param { source: \"%s\" batch_size: 4 backend: LMDB } }\n"
             "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\"\n"
             "  inner_product_param { num_output: 2000 weight_filler { type: \"gaussian\" std: 0.01 } } }\n"
             "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" }\n",
             abs ? abs : lmdb);
    free(abs);
    free(lmdb);
    char *net = fmt("%s/net.prototxt", dir, NULL);
    write_text(net, text);
    char *solver = fmt("%s/solver.prototxt", dir, NULL);
    snprintf(text, sizeof text,
             "net: \"%s\" base_lr: 0.01 lr_policy: \"fixed\" momentum: 0.9 max_iter: 100000 snapshot: 1\n"
             "snapshot_prefix: \"%s/snap\" random_seed: 3\n",
             net, dir);
    write_text(solver, text);
    srand((unsigned)time(NULL));
    int total = 0;
    for (int round = 0; round < 10; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open("/dev/null", 1);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            execl(check_crema_bin(), "crema", "train", "-solver", solver, (char *)NULL);
            _exit(127);
        }
        CHECK(pid > 0);
        /* The first round waits for a first snapshot; then kill at random
         * moments of the write-every-iteration loop. */
        for (int w = 0; round == 0 && w < 600 && check_snapshots_load(dir) == 0; w++)
            usleep(50000);
        usleep((useconds_t)(rand() % 1500000));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status), "crema train ended before the kill (status %d)", status);
        total = check_snapshots_load(dir);
    }
    CHECK_MSG(total > 0, "no snapshot was written before the kills");
    printf("  %d snapshot files present after 10 kills, all load\n", total);
    free(solver), free(net), free(dir);
}

CHECK_MAIN(CASE(test_snapshot_files_are_caffe_messages), CASE(test_seeded_runs_repeat),
           CASE(test_data_layer_resume_equals_straight), CASE(test_image_data_resume_equals_straight),
           CASE(test_sigkill_leaves_snapshots_loadable))
