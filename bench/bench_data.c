/* The data pipeline's speed: records per second read from LMDB and
 * transformed by one prefetch thread, and how long a LeNet training loop
 * waits on the Data layer per iteration (the goal is about zero).
 * Usage: bench_data [iterations]; builds its LMDBs with the crema binary
 * next to it (../bin/crema, or $CREMA_BIN) from Fashion-MNIST and the
 * cat/dog images in ../shared ($CREMA_SHARED). */
#include "bench_util.h"
#include "layers/layer.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[256], crema_bin[512], shared[512];

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "bench_data: failed: %s\n", cmd);
    return rc;
}

/* A Data layer alone; records/s over `forwards` batches after one warm-up batch. */
static double data_layer_rate(const char *db, int batch, const char *transform, int forwards, double *wait_ms)
{
    char text[2048];
    snprintf(text, sizeof text,
             "name: 'data' type: 'Data' top: 'data' top: 'label' transform_param { %s } "
             "data_param { source: '%s' batch_size: %d backend: LMDB }",
             transform, db, batch);
    Caffe__LayerParameter *lp = NULL;
    if (proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "bench", (ProtobufCMessage **)&lp))
        return -1;
    struct rng r;
    rng_seed(&r, 1);
    struct tensor *tops[2] = { tensor_new(), tensor_new() };
    struct layer *l = NULL;
    double rate = -1;
    if (layer_create(lp, CAFFE__PHASE__TRAIN, &r, NULL, 0, tops, 2, &l) == 0 &&
        l->kind->forward(l, NULL, tops) == 0) {
        double t0 = bench_now();
        int ok = 1;
        for (int i = 0; ok && i < forwards; i++)
            ok = l->kind->forward(l, NULL, tops) == 0;
        double dt = bench_now() - t0;
        /* The consumer does nothing but wait, so this is the filler's speed. */
        if (ok)
            rate = (double)batch * forwards / dt;
        *wait_ms = dt / forwards * 1e3;
    } else {
        fprintf(stderr, "bench_data: %s\n", crema_errmsg());
    }
    layer_free(l);
    proto_free(&lp->base);
    tensor_free(tops[0]);
    tensor_free(tops[1]);
    return rate;
}

static const char *lenet_fmt =
    "name: 'LeNet' "
    "layer { name: 'mnist' type: 'Data' top: 'data' top: 'label' transform_param { scale: 0.00390625 } "
    "  data_param { source: '%s' batch_size: 64 backend: LMDB } }"
    "layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1' "
    "  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: 'xavier' } } }"
    "layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1' pooling_param { pool: MAX kernel_size: 2 stride: 2 } }"
    "layer { name: 'conv2' type: 'Convolution' bottom: 'pool1' top: 'conv2' "
    "  convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: 'xavier' } } }"
    "layer { name: 'pool2' type: 'Pooling' bottom: 'conv2' top: 'pool2' pooling_param { pool: MAX kernel_size: 2 stride: 2 } }"
    "layer { name: 'ip1' type: 'InnerProduct' bottom: 'pool2' top: 'ip1' "
    "  inner_product_param { num_output: 500 weight_filler { type: 'xavier' } } }"
    "layer { name: 'relu1' type: 'ReLU' bottom: 'ip1' top: 'ip1' }"
    "layer { name: 'ip2' type: 'InnerProduct' bottom: 'ip1' top: 'ip2' "
    "  inner_product_param { num_output: 10 weight_filler { type: 'xavier' } } }"
    "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip2' bottom: 'label' top: 'loss' }";

/* LeNet forward/backward fed by the Data layer: time blocked in the data
 * layer's forward (waiting for the prefetched batch, plus its copy) and
 * time in the rest of the iteration. */
static int lenet_wait(const char *db, int iters, double *wait_ms, double *max_wait_ms, double *compute_ms)
{
    char text[4096];
    snprintf(text, sizeof text, lenet_fmt, db);
    Caffe__NetParameter *np = NULL;
    if (proto_parse_text(&caffe__net_parameter__descriptor, text, strlen(text), "lenet", (ProtobufCMessage **)&np))
        return -1;
    Caffe__NetState st = CAFFE__NET_STATE__INIT;
    st.has_phase = 1;
    st.phase = CAFFE__PHASE__TRAIN;
    struct net *net = NULL;
    int rc = net_build(np, &st, 1, &net);
    proto_free(&np->base);
    if (rc)
        return rc;
    double wait = 0, maxw = 0, comp = 0;
    for (int it = -2; !rc && it < iters; it++) { /* two warm-up iterations */
        double t0 = bench_now();
        rc = net_forward_from_to(net, 0, 0, NULL);
        double t1 = bench_now();
        if (!rc)
            rc = net_forward_from_to(net, 1, net->n_layers - 1, NULL);
        if (!rc)
            rc = net_backward(net);
        double t2 = bench_now();
        if (it >= 0) {
            wait += t1 - t0;
            maxw = t1 - t0 > maxw ? t1 - t0 : maxw;
            comp += t2 - t1;
        }
    }
    net_free(net);
    *wait_ms = wait / iters * 1e3;
    *max_wait_ms = maxw * 1e3;
    *compute_ms = comp / iters * 1e3;
    return rc;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 100;
    if (iters <= 0)
        iters = 100;
    const char *e = getenv("CREMA_BIN");
    char self[512];
    snprintf(self, sizeof self, "%s", argv[0]);
    if (e)
        snprintf(crema_bin, sizeof crema_bin, "%s", e);
    else
        snprintf(crema_bin, sizeof crema_bin, "%s/../bin/crema", dirname(self));
    e = getenv("CREMA_SHARED");
    snprintf(shared, sizeof shared, "%s", e ? e : "../shared");
    snprintf(tmp, sizeof tmp, "/tmp/crema_bench_data.%d", (int)getpid());
    const char *fm = "/usr/share/datasets/fashion-mnist";
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && '%s' convert-mnist %s/train-images-idx3-ubyte.gz %s/train-labels-idx1-ubyte.gz %s/fm >/dev/null && "
             "'%s' convert-imageset -resize_height 256 -resize_width 256 '%s/corpus/caffeonspark/images_catdog/' "
             "'%s/corpus/caffeonspark/images_catdog/labels.txt' %s/cd_raw >/dev/null && "
             "'%s' convert-imageset -encoded -resize_height 256 -resize_width 256 '%s/corpus/caffeonspark/images_catdog/' "
             "'%s/corpus/caffeonspark/images_catdog/labels.txt' %s/cd_jpg >/dev/null",
             tmp, crema_bin, fm, fm, tmp, crema_bin, shared, shared, tmp, crema_bin, shared, shared, tmp);
    if (run(cmd))
        return 1;
    double gf = bench_sgemm_gflops(512, 5);
    printf("bench_data  (sgemm 512 yardstick: %.1f GFLOP/s)\n", gf);
    printf("%-52s %14s %12s\n", "case", "records/s", "ms/batch");
    char db[512];
    double ms;
    snprintf(db, sizeof db, "%s/fm", tmp);
    double r1 = data_layer_rate(db, 64, "scale: 0.00390625", 20 * iters / 10 + 50, &ms);
    printf("%-52s %14.0f %12.3f\n", "Fashion-MNIST 1x28x28, scale, batch 64", r1, ms);
    snprintf(db, sizeof db, "%s/cd_raw", tmp);
    const char *crop = "crop_size: 227 mirror: true mean_value: 104 mean_value: 117 mean_value: 123";
    double r2 = data_layer_rate(db, 32, crop, iters / 10 + 10, &ms);
    printf("%-52s %14.0f %12.3f\n", "cat/dog raw 3x256x256 -> crop 227, mirror, mean, b32", r2, ms);
    snprintf(db, sizeof db, "%s/cd_jpg", tmp);
    double r3 = data_layer_rate(db, 32, crop, iters / 10 + 10, &ms);
    printf("%-52s %14.0f %12.3f\n", "cat/dog JPEG 256x256 -> crop 227, mirror, mean, b32", r3, ms);
    snprintf(db, sizeof db, "%s/fm", tmp);
    double wait, maxw, comp;
    int rc = lenet_wait(db, iters, &wait, &maxw, &comp);
    if (rc)
        fprintf(stderr, "bench_data: LeNet: %s\n", crema_errmsg());
    else
        printf("%-52s wait %.4f ms/iter (max %.3f), compute %.3f ms/iter, wait %.2f%%\n",
               "LeNet train, Data layer prefetch, batch 64", wait, maxw, comp, 100 * wait / (wait + comp));
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    run(cmd);
    return rc || r1 < 0 || r2 < 0 || r3 < 0;
}
