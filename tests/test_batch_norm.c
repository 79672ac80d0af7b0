/* BatchNorm's statistics are never learned: the net gives its three blobs
 * lr_mult 0 when the prototxt names none (Caffe's BatchNormLayer::LayerSetUp),
 * and rejects a ParamSpec with lr_mult != 0. */
#include "check.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <string.h>

static const char *net_text(const char *bn_params)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "name: 'bn' force_backward: true state { phase: TRAIN }\n"
             "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n"
             "layer { name: 'conv' type: 'Convolution' bottom: 'x' top: 'c'\n"
             "  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: 'gaussian' std: 0.5 } } }\n"
             "layer { name: 'bn' type: 'BatchNorm' bottom: 'c' top: 'c' %s }\n"
             "layer { name: 'sc' type: 'Scale' bottom: 'c' top: 'c' scale_param { bias_term: true } }\n"
             "layer { name: 'loss' type: 'Reduction' bottom: 'c' top: 'loss' loss_weight: 1\n"
             "  reduction_param { operation: SUMSQ } }\n",
             bn_params);
    return buf;
}

static int build(const char *bn_params, struct net **out)
{
    const char *text = net_text(bn_params);
    Caffe__NetParameter *p = NULL;
    int rc = proto_parse_text(&caffe__net_parameter__descriptor, text, strlen(text), "bn.prototxt",
                              (ProtobufCMessage **)&p);
    CHECK_MSG(rc == 0, "parse failed: %s", crema_errmsg());
    if (rc)
        return rc;
    rc = net_build(p, NULL, 3, out);
    proto_free(&p->base);
    return rc;
}

/* The learnable entry of parameter blob `index` of layer `name`. */
static const struct net_learnable *learnable_of(const struct net *net, const char *name, int index)
{
    int li = net_layer_index(net, name);
    if (li < 0 || index >= net->layers[li].n_param)
        return NULL;
    return &net->learnable[net->param_learnable[net->layers[li].param_id[index]]];
}

static void bn_stats_get_lr_mult_zero(void)
{
    struct net *net = NULL;
    CHECK_OK(build("", &net));
    if (!net)
        return;
    for (int i = 0; i < 3; i++) {
        const struct net_learnable *lr = learnable_of(net, "bn", i);
        CHECK_MSG(lr != NULL, "BatchNorm blob %d is not registered", i);
        if (!lr)
            continue;
        CHECK_MSG(lr->has_lr_mult && lr->lr_mult == 0.f, "BatchNorm blob %d: has_lr_mult %d lr_mult %g, want 0", i,
                  (int)lr->has_lr_mult, (double)lr->lr_mult);
        CHECK_MSG(lr->decay_mult == 1.f, "BatchNorm blob %d: decay_mult %g, want Caffe's default 1", i,
                  (double)lr->decay_mult);
    }
    /* Other layers keep the default lr_mult 1. */
    const struct net_learnable *w = learnable_of(net, "conv", 0), *s = learnable_of(net, "sc", 0);
    CHECK(w && !w->has_lr_mult && w->lr_mult == 1.f);
    CHECK(s && !s->has_lr_mult && s->lr_mult == 1.f);

    /* Forward + backward: the statistics move (TRAIN), their diffs stay zero. */
    float *x = tensor_data(net_blob(net, "x"));
    for (size_t i = 0; i < net_blob(net, "x")->count; i++)
        x[i] = (float)((i * 37) % 11) - 5.f;
    float loss = 0;
    CHECK_OK(net_forward(net, &loss));
    CHECK_OK(net_backward(net));
    struct layer *bn = net_layer_by_name(net, "bn");
    CHECK(bn && bn->n_blobs == 3);
    if (bn && bn->n_blobs == 3) {
        CHECK_MSG(tensor_data(bn->blobs[2])[0] == 1.f, "factor after one TRAIN forward: %g, want 1",
                  (double)tensor_data(bn->blobs[2])[0]);
        for (int b = 0; b < 3; b++) {
            const float *d = tensor_diff(bn->blobs[b]);
            for (size_t i = 0; i < bn->blobs[b]->count; i++)
                CHECK_MSG(d[i] == 0.f, "BatchNorm blob %d diff[%zu] = %g, want 0", b, i, (double)d[i]);
        }
    }
    /* The conv weights do get a gradient through BatchNorm. */
    const float *dw = tensor_diff(net_layer_by_name(net, "conv")->blobs[0]);
    float asum = 0;
    for (size_t i = 0; i < net_layer_by_name(net, "conv")->blobs[0]->count; i++)
        asum += dw[i] < 0 ? -dw[i] : dw[i];
    CHECK_MSG(asum > 0, "conv weight gradient is all zero");
    net_free(net);
}

static void bn_given_zero_lr_mult_accepted(void)
{
    struct net *net = NULL;
    CHECK_OK(build("param { lr_mult: 0 } param { lr_mult: 0 decay_mult: 0 } param { lr_mult: 0 }", &net));
    if (!net)
        return;
    const struct net_learnable *lr = learnable_of(net, "bn", 1);
    CHECK(lr && lr->lr_mult == 0.f && lr->decay_mult == 0.f);
    net_free(net);
    /* Fewer specs than blobs: the rest get lr_mult 0 as well. */
    CHECK_OK(build("param { lr_mult: 0 }", &net));
    if (!net)
        return;
    lr = learnable_of(net, "bn", 2);
    CHECK(lr && lr->has_lr_mult && lr->lr_mult == 0.f);
    net_free(net);
}

static void bn_nonzero_lr_mult_rejected(void)
{
    static const char *bad[] = { "param { lr_mult: 1 }", "param { lr_mult: 0 } param { lr_mult: 0.5 }",
                                 "param { decay_mult: 0 }" /* lr_mult defaults to 1 */ };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct net *net = NULL;
        int rc = build(bad[i], &net);
        CHECK_MSG(rc == CREMA_ERR_INVALID, "%s: expected CREMA_ERR_INVALID, got %d", bad[i], rc);
        CHECK(net == NULL);
        CHECK_MSG(strstr(crema_errmsg(), "bn") && strstr(crema_errmsg(), "lr_mult") &&
                      strstr(crema_errmsg(), "batch normalization statistics"),
                  "%s: message does not name the layer, the field and the reason: %s", bad[i], crema_errmsg());
        net_free(net);
    }
}

CHECK_MAIN(CASE(bn_stats_get_lr_mult_zero), CASE(bn_given_zero_lr_mult_accepted), CASE(bn_nonzero_lr_mult_rejected))
