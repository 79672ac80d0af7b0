/* Net construction scales linearly with the number of layers: chains and
 * fan-outs (split layers, shared parameters) of 12.5k and 100k layers; the
 * ratio of their CPU times must stay far from the 64 of a quadratic build. */
#include "check.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Input, then n ReLU layers; chain: each reads the last, fan: each reads
 * the input (one Split layer with n tops) and, every other layer, an
 * InnerProduct sharing one named weight. */
static Caffe__NetParameter *make_net(int n, bool fan)
{
    size_t cap = (size_t)n * 160 + 256, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    len += (size_t)snprintf(text + len, cap - len,
                            "name: \"scale\" layer { name: \"in\" type: \"Input\" top: \"b0\" "
                            "input_param { shape { dim: 1 dim: 2 } } }\n");
    for (int i = 0; i < n; i++) {
        if (fan && i % 2)
            len += (size_t)snprintf(text + len, cap - len,
                                    "layer { name: \"l%d\" type: \"InnerProduct\" bottom: \"b0\" top: \"t%d\" "
                                    "param { name: \"w\" } inner_product_param { num_output: 1 bias_term: false } }\n",
                                    i, i);
        else if (fan)
            len += (size_t)snprintf(text + len, cap - len,
                                    "layer { name: \"l%d\" type: \"ReLU\" bottom: \"b0\" top: \"t%d\" }\n", i, i);
        else
            len += (size_t)snprintf(text + len, cap - len,
                                    "layer { name: \"l%d\" type: \"ReLU\" bottom: \"b%d\" top: \"b%d\" }\n", i, i,
                                    i + 1);
    }
    Caffe__NetParameter *p = NULL;
    int rc = proto_parse_text(&caffe__net_parameter__descriptor, text, len, "scale.prototxt",
                              (ProtobufCMessage **)&p);
    free(text);
    CHECK_MSG(rc == 0, "parse failed: %s", crema_errmsg());
    return p;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds to build (and free) p, the least of `runs` tries. */
static double build_time(const Caffe__NetParameter *p, int runs, int expect_layers)
{
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        struct net *net = NULL;
        double t0 = cpu_seconds();
        int rc = net_build(p, NULL, 1, &net);
        double t = cpu_seconds() - t0;
        CHECK_MSG(rc == 0, "net_build failed: %s", crema_errmsg());
        if (rc)
            return -1;
        CHECK_MSG(net->n_layers >= expect_layers, "expected at least %d layers, got %d", expect_layers,
                  net->n_layers);
        CHECK(net_layer_index(net, "l7") >= 0 && net_blob_index(net, "b0") == 0);
        net_free(net);
        if (t < best)
            best = t;
    }
    return best;
}

static void check_scaling(bool fan)
{
    const int small = 12500, large = 100000;
    Caffe__NetParameter *ps = make_net(small, fan), *pl = make_net(large, fan);
    if (ps && pl) {
        double ts = build_time(ps, 5, small + 1), tl = build_time(pl, 2, large + 1);
        /* Linear: 8 times the small net in instructions (callgrind), up to
         * 2.5 times that in time, as the large net's memory outgrows the
         * caches; quadratic: 64 times. Process CPU time, the least of a few
         * runs, so other load hardly counts. */
        double ratio = tl / (ts > 1e-4 ? ts : 1e-4);
        printf("  %s: %d layers in %.3f s, %d layers in %.3f s CPU (ratio %.1f; linear 8, quadratic 64)\n",
               fan ? "fan-out" : "chain", small, ts, large, tl, ratio);
        CHECK_MSG(ts >= 0 && tl >= 0 && ratio < 32, "building %d layers took %.1f times as long as %d layers "
                  "(%.3f s vs %.3f s): construction is not linear", large, ratio, small, tl, ts);
    }
    if (ps)
        proto_free(&ps->base);
    if (pl)
        proto_free(&pl->base);
}

static void test_chain(void) { check_scaling(false); }
static void test_fan_out(void) { check_scaling(true); }

CHECK_MAIN(CASE(test_chain), CASE(test_fan_out))
