/* Data-parallel training through `crema train`: 2 ranks with batch b give
 * the weights of 1 rank with batch 2b over the same samples (LeNet on a
 * Fashion-MNIST LMDB), whether the ranks are started by -clusterSize, by a
 * launcher's environment (mpirun, srun) or by hand; also with iter_size. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "proto/proto_io.h"

#define ITERS 10

/* Debian's dataset-fashion-mnist, or $FASHION_MNIST (the GPU machine's copy). */
static const char *fashion(void)
{
    const char *d = getenv("FASHION_MNIST");
    return d && *d ? d : "/usr/share/datasets/fashion-mnist";
}

static char *tmp;
static char lmdb[1024];

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void show_log(const char *log)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "tail -5 '%s' >&2", log);
    if (system(cmd) != 0)
        fprintf(stderr, "    (no log %s)\n", log);
}

/* The records i of the LMDB are Fashion-MNIST's test images in file order. */
static int need_lmdb(void)
{
    struct stat st;
    char gz[1024];
    snprintf(gz, sizeof gz, "%s/t10k-images-idx3-ubyte.gz", fashion());
    if (stat(gz, &st) != 0) {
        check_skip("no Fashion-MNIST at %s (Debian dataset-fashion-mnist)", fashion());
        return 1;
    }
    if (!tmp)
        tmp = check_tmpdir("dist_train");
    snprintf(lmdb, sizeof lmdb, "%s/lmdb", tmp);
    if (stat(lmdb, &st) == 0)
        return 0;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' convert-mnist '%s/t10k-images-idx3-ubyte.gz' '%s/t10k-labels-idx1-ubyte.gz' "
             "'%s' >'%s/convert.log' 2>&1",
             check_crema_bin(), fashion(), fashion(), lmdb, tmp);
    int rc = run(cmd);
    CHECK_MSG(rc == 0, "convert-mnist exited %d", rc);
    return rc != 0;
}

/* LeNet with the demo's layers, training only, batch b per rank. */
static void write_solver(const char *name, int batch, int iter_size)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s_net.prototxt", tmp, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "name: \"LeNet\"\n"
            "layer { name: \"mnist\" type: \"Data\" top: \"data\" top: \"label\"\n"
            "  transform_param { scale: 0.00390625 }\n"
            "  data_param { source: \"%s\" batch_size: %d backend: LMDB } }\n"
            "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
            "  param { lr_mult: 1 } param { lr_mult: 2 }\n"
            "  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: \"xavier\" } } }\n"
            "layer { name: \"pool1\" type: \"Pooling\" bottom: \"conv1\" top: \"pool1\"\n"
            "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
            "layer { name: \"conv2\" type: \"Convolution\" bottom: \"pool1\" top: \"conv2\"\n"
            "  param { lr_mult: 1 } param { lr_mult: 2 }\n"
            "  convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: \"xavier\" } } }\n"
            "layer { name: \"pool2\" type: \"Pooling\" bottom: \"conv2\" top: \"pool2\"\n"
            "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
            "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"pool2\" top: \"ip1\"\n"
            "  param { lr_mult: 1 } param { lr_mult: 2 }\n"
            "  inner_product_param { num_output: 500 weight_filler { type: \"xavier\" } } }\n"
            "layer { name: \"relu1\" type: \"ReLU\" bottom: \"ip1\" top: \"ip1\" }\n"
            "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"ip1\" top: \"ip2\"\n"
            "  param { lr_mult: 1 } param { lr_mult: 2 }\n"
            "  inner_product_param { num_output: 10 weight_filler { type: \"xavier\" } } }\n"
            "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" top: \"loss\" }\n",
            lmdb, batch);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s_solver.prototxt", tmp, name);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "net: \"%s/%s_net.prototxt\"\n"
            "base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005\n"
            "lr_policy: \"inv\" gamma: 0.0001 power: 0.75\n"
            "display: 0 max_iter: %d iter_size: %d\n"
            "snapshot_prefix: \"%s/%s\" random_seed: 7\n",
            tmp, name, ITERS, iter_size, tmp, name);
    fclose(f);
}

/* Trains solver `name` with extra arguments (and $CREMA_TEST_TRAIN_ARGS,
 * e.g. -gpu 0 on the GPU machine); 0 when crema exited 0. */
static int train(const char *name, const char *env, const char *extra)
{
    char cmd[4096], log[1200];
    const char *more = getenv("CREMA_TEST_TRAIN_ARGS");
    snprintf(log, sizeof log, "%s/%s.log", tmp, name);
    snprintf(cmd, sizeof cmd, "%s OPENBLAS_NUM_THREADS=1 '%s' train -solver '%s/%s_solver.prototxt' %s %s >'%s' 2>&1",
             env, check_crema_bin(), tmp, name, extra, more ? more : "", log);
    int rc = run(cmd);
    CHECK_MSG(rc == 0, "%s: crema train exited %d", name, rc);
    if (rc)
        show_log(log);
    return rc;
}

/* Starts cmd in the background; its exit status goes to <tmp>/<tag>.rc. */
static void start_bg(const char *tag, const char *cmd)
{
    char bg[4600];
    snprintf(bg, sizeof bg, "( %s; echo $? >'%s/%s.rc.part' && mv '%s/%s.rc.part' '%s/%s.rc' ) >/dev/null 2>&1 &",
             cmd, tmp, tag, tmp, tag, tmp, tag);
    CHECK_EQ_INT(run(bg), 0);
}

/* The background command's exit status, waiting up to 60 s; -1: none. */
static int wait_bg(const char *tag)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.rc", tmp, tag);
    for (int i = 0; i < 600; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            int rc = -1;
            if (fscanf(f, "%d", &rc) != 1)
                rc = -1;
            fclose(f);
            return rc;
        }
        usleep(100000);
    }
    return -1;
}

static Caffe__NetParameter *load_model(const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s_iter_%d.caffemodel", tmp, name, ITERS);
    Caffe__NetParameter *np = NULL;
    int rc = proto_read_binary(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np);
    CHECK_MSG(rc == 0, "reading %s: %s", path, crema_errmsg());
    return rc ? NULL : np;
}

/* The largest difference of any blob relative to that blob's largest
 * magnitude; also the number of values compared. */
static double model_rel_diff(const char *a_name, const char *b_name, size_t *n_values)
{
    Caffe__NetParameter *a = load_model(a_name), *b = load_model(b_name);
    double worst = INFINITY;
    *n_values = 0;
    if (a && b) {
        worst = 0;
        CHECK_EQ_INT(a->n_layer, b->n_layer);
        for (size_t i = 0; i < a->n_layer && i < b->n_layer; i++) {
            CHECK_EQ_INT(a->layer[i]->n_blobs, b->layer[i]->n_blobs);
            for (size_t j = 0; j < a->layer[i]->n_blobs && j < b->layer[i]->n_blobs; j++) {
                const Caffe__BlobProto *x = a->layer[i]->blobs[j], *y = b->layer[i]->blobs[j];
                CHECK_EQ_INT(x->n_data, y->n_data);
                double scale = 0, diff = 0;
                for (size_t k = 0; k < x->n_data && k < y->n_data; k++) {
                    scale = fmax(scale, fabs(x->data[k]));
                    diff = fmax(diff, fabs((double)x->data[k] - y->data[k]));
                }
                *n_values += x->n_data;
                if (scale > 0 && diff / scale > worst)
                    worst = diff / scale;
            }
        }
    }
    if (a)
        proto_free(&a->base);
    if (b)
        proto_free(&b->base);
    return worst;
}

static void expect_same(const char *a, const char *b, double tol)
{
    size_t n;
    double d = model_rel_diff(a, b, &n);
    fprintf(stderr, "    %s vs %s: worst relative difference %.3g over %zu weights\n", a, b, d, n);
    CHECK(n > 400000); /* LeNet has 431080 weights */
    CHECK_MSG(d <= tol, "%s and %s differ by %.3g (relative), more than %.0e", a, b, d, tol);
}

/* 2 ranks x batch 8 == 1 rank x batch 16: rank 0 reads the even records,
 * rank 1 the odd ones, so every iteration's sample set is the same. */
static void test_two_ranks_equal_one_rank_double_batch(void)
{
    if (need_lmdb())
        return;
    write_solver("one16", 16, 1);
    write_solver("two8", 8, 1);
    write_solver("one8", 8, 1);
    if (train("one16", "", "") || train("two8", "", "-clusterSize 2 -dist_timeout 20") || train("one8", "", ""))
        return;
    expect_same("two8", "one16", 1e-5);
    /* and the comparison can tell: half the batch trains differently */
    size_t n;
    double d = model_rel_diff("one8", "one16", &n);
    fprintf(stderr, "    one8 vs one16 (should differ): %.3g\n", d);
    CHECK_MSG(d > 1e-3, "1 rank with batch 8 is as close as %.3g to batch 16: the test cannot tell", d);
}

/* Small buckets: several allreduces in flight while backward runs. */
static void test_many_buckets(void)
{
    if (need_lmdb())
        return;
    write_solver("one16d", 16, 1);
    write_solver("bucket8", 8, 1);
    if (train("one16d", "", "") || train("bucket8", "CREMA_DIST_BUCKET_KB=16", "-clusterSize 2 -dist_timeout 20"))
        return;
    char log[1200];
    snprintf(log, sizeof log, "%s/bucket8.log", tmp);
    FILE *f = fopen(log, "r");
    char line[512];
    int buckets = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Rank 0 of 2: batch sizes are per rank; gradients are averaged over 2 ranks in %d",
                   &buckets) == 1)
            break;
    if (f)
        fclose(f);
    CHECK_MSG(buckets >= 4, "expected at least 4 gradient buckets of 16 KB, the log says %d", buckets);
    expect_same("bucket8", "one16d", 1e-5);
}

/* iter_size 2 x batch 4 on 2 ranks covers the same 16 records. */
static void test_iter_size_with_ranks(void)
{
    if (need_lmdb())
        return;
    write_solver("one16b", 16, 1);
    write_solver("two4x2", 4, 2);
    if (train("one16b", "", "") || train("two4x2", "", "-clusterSize 2 -dist_timeout 20"))
        return;
    expect_same("two4x2", "one16b", 1e-5);
}

/* Ranks started as mpirun does (OMPI_COMM_WORLD_*), as srun does
 * (SLURM_PROCID/NTASKS) and by hand (-rank -rendezvous -secret). */
static void test_launcher_environments(void)
{
    if (need_lmdb())
        return;
    write_solver("one16c", 16, 1);
    write_solver("env8", 8, 1);
    write_solver("hand8", 8, 1);
    if (train("one16c", "", ""))
        return;
    int port = 20000 + (int)(getpid() % 20000);
    char env0[512], env1[512], cmd[4096];
    /* mpirun's rank 0 in the background, srun's rank 1 in front */
    snprintf(env0, sizeof env0, "OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 CREMA_MASTER=127.0.0.1:%d "
             "CREMA_SECRET=env-secret", port);
    snprintf(env1, sizeof env1, "SLURM_PROCID=1 SLURM_NTASKS=2 CREMA_MASTER=127.0.0.1:%d CREMA_SECRET=env-secret",
             port);
    snprintf(cmd, sizeof cmd, "%s OPENBLAS_NUM_THREADS=1 '%s' train -solver '%s/env8_solver.prototxt' "
             "-dist_timeout 20 >'%s/env8_rank0.log' 2>&1", env0, check_crema_bin(), tmp, tmp);
    start_bg("env8_rank0", cmd);
    int rc1 = train("env8", env1, "-dist_timeout 20");
    int rc0 = wait_bg("env8_rank0");
    CHECK_MSG(rc0 == 0, "mpirun-style rank 0 exited %d", rc0);
    if (rc0 == 0 && rc1 == 0)
        expect_same("env8", "one16c", 1e-5);
    /* by hand: flags only */
    port++;
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 '%s' train -solver '%s/hand8_solver.prototxt' -rank 1 "
             "-clusterSize 2 -rendezvous tcp://127.0.0.1:%d -secret by-hand -dist_timeout 20 "
             ">'%s/hand8_rank1.log' 2>&1", check_crema_bin(), tmp, port, tmp);
    start_bg("hand8_rank1", cmd);
    char extra[256];
    snprintf(extra, sizeof extra, "-rank 0 -clusterSize 2 -rendezvous tcp://127.0.0.1:%d -secret by-hand "
             "-dist_timeout 20", port);
    rc0 = train("hand8", "", extra);
    rc1 = wait_bg("hand8_rank1");
    CHECK_MSG(rc1 == 0, "rank 1 started by hand exited %d", rc1);
    if (rc0 == 0 && rc1 == 0)
        expect_same("hand8", "one16c", 1e-5);
}

CHECK_MAIN(CASE(test_two_ranks_equal_one_rank_double_batch), CASE(test_many_buckets), CASE(test_iter_size_with_ranks),
           CASE(test_launcher_environments))
