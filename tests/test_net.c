/* Net construction as Caffe's Net::Init: filtering rules, split insertion,
 * in-place layers, shared parameters, backward pruning, loss weights, bad
 * nets; the input layers against data/ golden cases; the C API. */
#include "check.h"
#include "layers/input.h"
#include "core/blob_proto.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static Caffe__NetParameter *parse(const char *text)
{
    Caffe__NetParameter *p = NULL;
    int rc = proto_parse_text(&caffe__net_parameter__descriptor, text, strlen(text), "test.prototxt",
                              (ProtobufCMessage **)&p);
    CHECK_MSG(rc == 0, "parse failed: %s", crema_errmsg());
    return p;
}

/* Builds text in the state it names (or phase/level/stages given here). */
static struct net *build_state(const char *text, const Caffe__NetState *st)
{
    Caffe__NetParameter *p = parse(text);
    if (!p)
        return NULL;
    struct net *net = NULL;
    int rc = net_build(p, st, 7, &net);
    CHECK_MSG(rc == 0, "net_build failed: %s", crema_errmsg());
    proto_free(&p->base);
    return net;
}

static struct net *build(const char *text)
{
    return build_state(text, NULL);
}

/* Expects the build to fail with code and a message containing each of the
 * NULL-terminated words. */
static void expect_build_error(const char *text, int code, const char *const *words)
{
    Caffe__NetParameter *p = parse(text);
    if (!p)
        return;
    struct net *net = NULL;
    int rc = net_build(p, NULL, 7, &net);
    proto_free(&p->base);
    CHECK_MSG(rc == code, "expected status %d, got %d (%s)", code, rc, crema_errmsg());
    CHECK(net == NULL);
    for (int i = 0; words[i]; i++)
        CHECK_MSG(strstr(crema_errmsg(), words[i]), "message \"%s\" does not mention \"%s\"", crema_errmsg(),
                  words[i]);
    net_free(net);
}

static bool has_layer(const struct net *net, const char *name)
{
    return net_layer_index(net, name) >= 0;
}

static void fill(struct tensor *t, float v0, float step)
{
    float *d = tensor_data(t);
    for (size_t i = 0; i < t->count; i++)
        d[i] = v0 + step * (float)i;
}

/* ---------------------------------------------------------------------- */

static void test_state_rules(void)
{
    Caffe__NetState s = CAFFE__NET_STATE__INIT;
    char *stages[] = { "a", "b" };
    s.phase = CAFFE__PHASE__TRAIN;
    s.level = 2;
    s.n_stage = 2;
    s.stage = stages;
    Caffe__NetStateRule r = CAFFE__NET_STATE_RULE__INIT;
    CHECK(net_state_meets_rule(&s, &r));
    r.has_phase = 1;
    r.phase = CAFFE__PHASE__TEST;
    CHECK(!net_state_meets_rule(&s, &r));
    r.phase = CAFFE__PHASE__TRAIN;
    CHECK(net_state_meets_rule(&s, &r));
    r.has_min_level = 1;
    r.min_level = 3;
    CHECK(!net_state_meets_rule(&s, &r));
    r.min_level = 2;
    CHECK(net_state_meets_rule(&s, &r));
    r.has_max_level = 1;
    r.max_level = 1;
    CHECK(!net_state_meets_rule(&s, &r));
    r.max_level = 2;
    CHECK(net_state_meets_rule(&s, &r));
    char *want[] = { "b", "c" };
    r.n_stage = 1;
    r.stage = want;
    CHECK(net_state_meets_rule(&s, &r));
    r.n_stage = 2; /* every stage must be present */
    CHECK(!net_state_meets_rule(&s, &r));
    r.n_stage = 0;
    char *nots[] = { "c", "a" };
    r.n_not_stage = 1;
    r.not_stage = nots;
    CHECK(net_state_meets_rule(&s, &r));
    r.n_not_stage = 2;
    CHECK(!net_state_meets_rule(&s, &r));
}

static const char *filter_net =
    "name: 'f'\n"
    "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'train_only' type: 'ReLU' bottom: 'x' top: 't' include { phase: TRAIN } }\n"
    "layer { name: 'test_only' type: 'ReLU' bottom: 'x' top: 'u' include { phase: TEST } }\n"
    "layer { name: 'not_test' type: 'ReLU' bottom: 'x' top: 'v' exclude { phase: TEST } }\n"
    "layer { name: 'lvl' type: 'ReLU' bottom: 'x' top: 'w' include { min_level: 1 } }\n"
    "layer { name: 'staged' type: 'ReLU' bottom: 'x' top: 's' include { stage: 'deploy' } }\n"
    "layer { name: 'either' type: 'ReLU' bottom: 'x' top: 'e' include { phase: TEST } include { stage: 'deploy' } }\n"
    "layer { name: 'not_deploy' type: 'ReLU' bottom: 'x' top: 'n' include { not_stage: 'deploy' } }\n";

static void test_filter(void)
{
    Caffe__NetState st = CAFFE__NET_STATE__INIT;
    st.phase = CAFFE__PHASE__TRAIN;
    struct net *net = build_state(filter_net, &st);
    if (!net)
        return;
    CHECK(has_layer(net, "train_only") && !has_layer(net, "test_only") && has_layer(net, "not_test"));
    CHECK(!has_layer(net, "lvl") && !has_layer(net, "staged") && !has_layer(net, "either"));
    CHECK(has_layer(net, "not_deploy"));
    CHECK_EQ_INT(net->phase, CAFFE__PHASE__TRAIN);
    net_free(net);

    char *stages[] = { "deploy" };
    st.phase = CAFFE__PHASE__TEST;
    st.level = 1;
    st.n_stage = 1;
    st.stage = stages;
    net = build_state(filter_net, &st);
    if (!net)
        return;
    CHECK(!has_layer(net, "train_only") && has_layer(net, "test_only") && !has_layer(net, "not_test"));
    CHECK(has_layer(net, "lvl") && has_layer(net, "staged") && has_layer(net, "either"));
    CHECK(!has_layer(net, "not_deploy"));
    CHECK_EQ_INT(net->layers[net_layer_index(net, "lvl")].layer->phase, CAFFE__PHASE__TEST);
    net_free(net);

    static const char *const words[] = { "both_rules", "include or exclude", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'both_rules' type: 'ReLU' bottom: 'x' top: 'y' include { phase: TRAIN } "
                       "exclude { phase: TEST } }\n",
                       CREMA_ERR_INVALID, words);
}

/* x feeds two layers: a Split is inserted, named as Caffe names it, and the
 * gradient to x is the sum of both branches'. */
static void test_splits(void)
{
    struct net *net = build("force_backward: true\n"
                            "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
                            "layer { name: 'a' type: 'Power' bottom: 'x' top: 'ya' power_param { scale: 2 } }\n"
                            "layer { name: 'b' type: 'Power' bottom: 'x' top: 'yb' power_param { scale: 3 } }\n");
    if (!net)
        return;
    CHECK_EQ_INT(net->n_layers, 4);
    int s = net_layer_index(net, "x_in_0_split");
    CHECK_EQ_INT(s, 1);
    CHECK(s >= 0 && strcmp(net->layers[s].layer->kind->type, "Split") == 0);
    CHECK(net_blob_index(net, "x_in_0_split_0") >= 0 && net_blob_index(net, "x_in_0_split_1") >= 0);
    CHECK_EQ_INT(net->n_outputs, 2);
    CHECK(strcmp(net->blob_names[net->output_ids[0]], "ya") == 0);
    CHECK(strcmp(net->blob_names[net->output_ids[1]], "yb") == 0);
    struct tensor *x = net_blob(net, "x");
    fill(x, -1.f, 0.5f);
    CHECK_OK(net_forward(net, NULL));
    CHECK(tensor_data(net_blob(net, "yb"))[5] == 3.f * 1.5f);
    for (int i = 0; i < 6; i++) {
        tensor_diff(net_blob(net, "ya"))[i] = 1.f;
        tensor_diff(net_blob(net, "yb"))[i] = (float)i;
    }
    CHECK_OK(net_backward(net));
    for (int i = 0; i < 6; i++)
        CHECK_MSG(tensor_diff(x)[i] == 2.f + 3.f * (float)i, "x diff %d: got %g, want %g", i,
                  (double)tensor_diff(x)[i], 2.0 + 3.0 * i);
    net_free(net);

    /* One consumer and a loss on the consumer's top: no split. */
    net = build("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 4 } } }\n"
                "layer { name: 'sc' type: 'Scale' bottom: 'x' top: 'y' scale_param { axis: 0 filler { type: "
                "'constant' value: 2 } } }\n"
                "layer { name: 'p' type: 'Power' bottom: 'y' top: 'z' loss_weight: 1 }\n");
    if (!net)
        return;
    CHECK_EQ_INT(net->n_layers, 3);
    CHECK(net_layer_index(net, "y_sc_0_split") < 0);
    net_free(net);

    /* A top with a loss weight that also feeds a layer: the split's first
     * top carries the loss, the producer's own weight is cleared. */
    net = build("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 4 } } }\n"
                "layer { name: 'sc' type: 'Scale' bottom: 'x' top: 'y' loss_weight: 0.5 scale_param { axis: 0 "
                "filler { type: 'constant' value: 2 } } }\n"
                "layer { name: 'p' type: 'Power' bottom: 'y' top: 'z' }\n");
    if (!net)
        return;
    int sp = net_layer_index(net, "y_sc_0_split");
    CHECK(sp >= 0);
    if (sp >= 0) {
        struct layer *l = net->layers[sp].layer;
        CHECK(l->loss_weight[0] == 0.5f && l->loss_weight[1] == 0.f);
        CHECK(net->layers[net_layer_index(net, "sc")].layer->loss_weight[0] == 0.f);
        /* The consumer reads split_1; split_0 is the loss output. */
        CHECK(strcmp(net->blob_names[net->layers[sp + 1].bottom_id[0]], "y_sc_0_split_1") == 0);
        CHECK(net_blob_index(net, "y_sc_0_split_0") >= 0);
    }
    fill(net_blob(net, "x"), 1.f, 1.f);
    float loss = 0;
    CHECK_OK(net_forward(net, &loss));
    CHECK_MSG(fabsf(loss - 0.5f * 2.f * (1 + 2 + 3 + 4)) < 1e-5f, "loss %g, want 10", (double)loss);
    net_free(net);
}

static void test_in_place_and_outputs(void)
{
    struct net *net = build("layer { name: 'in' type: 'Input' top: 'x' top: 'lab' input_param { shape { dim: 2 "
                            "dim: 3 } shape { dim: 2 } } }\n"
                            "layer { name: 'r' type: 'ReLU' bottom: 'x' top: 'x' }\n"
                            "layer { name: 'r2' type: 'ReLU' bottom: 'x' top: 'x' }\n");
    if (!net)
        return;
    CHECK_EQ_INT(net->n_blobs, 2);
    CHECK_EQ_INT(net->n_inputs, 2);
    CHECK(net->layers[1].top[0] == net->layers[1].bottom[0]);
    CHECK(net->layers[2].top[0] == net_blob(net, "x"));
    /* Caffe keeps outputs sorted by name. */
    CHECK_EQ_INT(net->n_outputs, 2);
    CHECK(strcmp(net->blob_names[net->output_ids[0]], "lab") == 0);
    fill(net_blob(net, "x"), -2.f, 1.f);
    CHECK_OK(net_forward(net, NULL));
    CHECK(tensor_data(net_blob(net, "x"))[0] == 0.f && tensor_data(net_blob(net, "x"))[5] == 3.f);
    net_free(net);
}

static void test_bad_nets(void)
{
    static const char *const unknown_bottom[] = { "'c'", "\"nothere\"", "unknown bottom", NULL };
    const char *tmp = "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                      "layer { name: 'c' type: 'ReLU' bottom: 'nothere' top: 'y' }\n";
    (void)unknown_bottom;
    static const char *const ub[] = { "c", "\"nothere\"", "unknown bottom", NULL };
    expect_build_error(tmp, CREMA_ERR_INVALID, ub);

    static const char *const ut[] = { "layer q", "unknown layer type", "\"Frobnicate\"", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'q' type: 'Frobnicate' bottom: 'x' top: 'y' }\n",
                       CREMA_ERR_UNSUPPORTED, ut);

    static const char *const dup[] = { "layer b", "\"y\"", "more than one", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'a' type: 'ReLU' bottom: 'x' top: 'y' }\n"
                       "layer { name: 'b' type: 'ReLU' bottom: 'x' top: 'y' }\n",
                       CREMA_ERR_INVALID, dup);

    static const char *const cnt[] = { "layer r", "ReLU", "at most 1 bottoms", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' top: 'z' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'r' type: 'ReLU' bottom: 'x' bottom: 'z' top: 'y' }\n",
                       CREMA_ERR_INVALID, cnt);

    static const char *const py[] = { "layer py", "Python", "package", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'py' type: 'Python' bottom: 'x' top: 'y' python_param { module: 'm' layer: "
                       "'L' } }\n",
                       CREMA_ERR_UNSUPPORTED, py);

    static const char *const pd[] = { "layer r", "propagate_down", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'r' type: 'ReLU' bottom: 'x' top: 'y' propagate_down: true "
                       "propagate_down: false }\n",
                       CREMA_ERR_INVALID, pd);

    static const char *const lw[] = { "layer r", "loss_weight", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'r' type: 'ReLU' bottom: 'x' top: 'y' loss_weight: 1 loss_weight: 2 }\n",
                       CREMA_ERR_INVALID, lw);

    static const char *const many[] = { "layer r", "param", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }\n"
                       "layer { name: 'r' type: 'ReLU' bottom: 'x' top: 'y' param { lr_mult: 1 } }\n",
                       CREMA_ERR_INVALID, many);

    /* A bottom consumed earlier by a layer that is not in place is gone
     * only after splits: the same blob twice in one layer gets split. */
    struct net *net = build("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 3 } } }\n"
                            "layer { name: 'e' type: 'Eltwise' bottom: 'x' bottom: 'x' top: 'y' }\n");
    if (net) {
        CHECK(has_layer(net, "x_in_0_split"));
        fill(net_blob(net, "x"), 1.f, 1.f);
        CHECK_OK(net_forward(net, NULL));
        CHECK(tensor_data(net_blob(net, "y"))[2] == 6.f);
        net_free(net);
    }
}

static const char *prune_net =
    "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'sc' type: 'Scale' bottom: 'x' top: 'y' param { lr_mult: LR } scale_param { filler { type: "
    "'constant' value: 2 } } }\n"
    "layer { name: 'to_loss' type: 'Power' bottom: 'y' top: 'z' loss_weight: 1 }\n"
    "layer { name: 'dead_end' type: 'Power' bottom: 'y' top: 'w' }\n"
    "layer { name: 'no_prop' type: 'Power' bottom: 'y' top: 'v' loss_weight: 1 propagate_down: false }\n";

static struct net *build_prune(const char *lr, bool force)
{
    char text[2048];
    const char *at = strstr(prune_net, "LR");
    snprintf(text, sizeof text, "%s%.*s%s%s", force ? "force_backward: true\n" : "", (int)(at - prune_net),
             prune_net, lr, at + 2);
    return build(text);
}

static void test_backward_pruning(void)
{
    struct net *net = build_prune("1", false);
    if (!net)
        return;
    int sc = net_layer_index(net, "sc"), tl = net_layer_index(net, "to_loss"), de = net_layer_index(net, "dead_end"),
        np = net_layer_index(net, "no_prop");
    CHECK(!net->layers[0].need_backward);
    CHECK(net->layers[sc].need_backward);
    CHECK(!net->layers[sc].bottom_need_backward[0]); /* x is an input with nothing to learn */
    CHECK(net->layers[sc].layer->param_propagate_down[0]);
    CHECK(net->layers[tl].need_backward && net->layers[tl].bottom_need_backward[0]);
    CHECK(!net->layers[de].need_backward && !net->layers[de].bottom_need_backward[0]);
    CHECK(!net->layers[np].bottom_need_backward[0]);
    CHECK(net->blob_loss_weights[net_blob_index(net, "z")] == 1.f);
    CHECK(net->blob_need_backward[net_blob_index(net, "y")]);
    CHECK(!net->blob_need_backward[net_blob_index(net, "x")]);
    CHECK_EQ_INT(net->n_learnable, 1);
    /* z = 2x, loss = sum z (twice); d loss / d scale_j = x[0][j] + x[1][j]
     * through to_loss only. */
    fill(net_blob(net, "x"), 0.f, 1.f);
    float loss = 0;
    CHECK_OK(net_forward(net, &loss));
    CHECK_MSG(fabsf(loss - 2.f * 15.f * 2.f) < 1e-4f, "loss %g, want 60 (two loss tops of 2x)", (double)loss);
    CHECK_OK(net_backward(net));
    for (int j = 0; j < 3; j++) {
        float g = tensor_diff(net->layers[sc].layer->blobs[0])[j];
        CHECK_MSG(fabsf(g - (float)(3 + 2 * j)) < 1e-4f, "scale gradient %d: %g, want %d (no_prop adds nothing)",
                  j, (double)g, 3 + 2 * j);
    }
    net_clear_param_diffs(net);
    CHECK(tensor_diff(net->layers[sc].layer->blobs[0])[0] == 0.f);
    net_free(net);

    net = build_prune("0", false);
    if (!net)
        return;
    sc = net_layer_index(net, "sc");
    CHECK(!net->layers[sc].need_backward);
    CHECK(!net->layers[sc].layer->param_propagate_down[0]);
    CHECK(!net->layers[net_layer_index(net, "to_loss")].need_backward);
    net_free(net);

    net = build_prune("0", true);
    if (!net)
        return;
    for (int i = 0; i < net->n_layers; i++)
        CHECK(net->layers[i].need_backward);
    sc = net_layer_index(net, "sc");
    CHECK(net->layers[sc].layer->param_propagate_down[0]);
    CHECK(net->layers[sc].bottom_need_backward[0]);
    CHECK(!net->layers[net_layer_index(net, "no_prop")].bottom_need_backward[0] == false);
    net_free(net);
}

static void test_loss_layer_weights(void)
{
    struct net *net = build("layer { name: 'in' type: 'Input' top: 'a' top: 'b' input_param { shape { dim: 2 dim: "
                            "3 } } }\n"
                            "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'a' bottom: 'b' }\n");
    if (!net)
        return;
    /* An anonymous top with the loss layer's implicit weight 1. */
    CHECK_EQ_INT(net->layers[1].n_top, 1);
    CHECK_EQ_INT(net->n_blobs, 3);
    CHECK(net->blob_loss_weights[2] == 1.f);
    CHECK(tensor_diff(net->blobs[2])[0] == 1.f);
    CHECK_EQ_INT(net->n_outputs, 0);
    fill(net_blob(net, "a"), 0.f, 1.f);
    fill(net_blob(net, "b"), 1.f, 1.f);
    float loss = 0;
    CHECK_OK(net_forward(net, &loss));
    CHECK_MSG(fabsf(loss - 6.f / 2.f / 2.f) < 1e-6f, "loss %g, want 1.5", (double)loss);
    /* Nothing below the loss learns, so nothing runs backward... */
    CHECK(!net->layers[1].need_backward);
    net_free(net);
    /* ...unless forced. */
    net = build("force_backward: true\n"
                "layer { name: 'in' type: 'Input' top: 'a' top: 'b' input_param { shape { dim: 2 dim: 3 } } }\n"
                "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'a' bottom: 'b' loss_weight: 3 }\n");
    if (!net)
        return;
    CHECK(net->layers[1].need_backward && net->layers[1].bottom_need_backward[1]);
    CHECK(net->blob_loss_weights[2] == 3.f);
    fill(net_blob(net, "a"), 0.f, 1.f);
    fill(net_blob(net, "b"), 1.f, 1.f);
    CHECK_OK(net_forward(net, NULL));
    CHECK_OK(net_backward(net));
    /* d/da of 3 * sum (a-b)^2 / (2N) = 3 (a - b) / N */
    CHECK_MSG(fabsf(tensor_diff(net_blob(net, "a"))[0] + 1.5f) < 1e-6f, "a diff %g, want -1.5",
              (double)tensor_diff(net_blob(net, "a"))[0]);
    net_free(net);
}

static const char *shared_net =
    "layer { name: 'in' type: 'Input' top: 'a' top: 'b' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'ip1' type: 'InnerProduct' bottom: 'a' top: 'y1' param { name: 'w' lr_mult: 1 } param { "
    "name: 'bias' lr_mult: 2 } inner_product_param { num_output: 4 weight_filler { type: 'gaussian' } } }\n"
    "layer { name: 'ip2' type: 'InnerProduct' bottom: 'b' top: 'y2' param { name: 'w' } param { name: 'bias' "
    "decay_mult: 0 } inner_product_param { num_output: 4 weight_filler { type: 'gaussian' } } }\n"
    "layer { name: 'ip3' type: 'InnerProduct' bottom: 'b' top: 'y3' inner_product_param { num_output: 4 } }\n";

static void test_shared_params(void)
{
    struct net *net = build(shared_net);
    if (!net)
        return;
    struct layer *l1 = net_layer_by_name(net, "ip1"), *l2 = net_layer_by_name(net, "ip2");
    CHECK(l1 && l2);
    if (!l1 || !l2) {
        net_free(net);
        return;
    }
    CHECK_EQ_INT(net->n_params, 6);
    CHECK_EQ_INT(net->n_learnable, 4);
    CHECK(tensor_data(l1->blobs[0]) == tensor_data(l2->blobs[0]));
    CHECK(tensor_diff(l1->blobs[1]) == tensor_diff(l2->blobs[1]));
    CHECK_EQ_INT(net->param_owner[2], 0);
    CHECK_EQ_INT(net->param_owner[3], 1);
    CHECK(net->learnable[0].lr_mult == 1.f && net->learnable[1].lr_mult == 2.f);
    CHECK(net->learnable[1].decay_mult == 0.f && net->learnable[1].has_decay_mult);
    CHECK(net->learnable[0].decay_mult == 1.f && !net->learnable[0].has_decay_mult);
    net_free(net);

    static const char *const lr[] = { "layer b", "lr_mult", "\"w\"", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
                       "layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'y' param { name: 'w' lr_mult: 1 } "
                       "inner_product_param { num_output: 2 bias_term: false } }\n"
                       "layer { name: 'b' type: 'InnerProduct' bottom: 'x' top: 'z' param { name: 'w' lr_mult: 2 } "
                       "inner_product_param { num_output: 2 bias_term: false } }\n",
                       CREMA_ERR_INVALID, lr);
    static const char *const shape[] = { "layer b", "\"w\"", "owned by layer a", "shape", NULL };
    expect_build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
                       "layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'y' param { name: 'w' } "
                       "inner_product_param { num_output: 2 bias_term: false } }\n"
                       "layer { name: 'b' type: 'InnerProduct' bottom: 'x' top: 'z' param { name: 'w' } "
                       "inner_product_param { num_output: 3 bias_term: false } }\n",
                       CREMA_ERR_SHAPE, shape);
    /* PERMISSIVE: only the counts must agree. */
    net = build("layer { name: 'in' type: 'Input' top: 'x' top: 'x2' input_param { shape { dim: 2 dim: 6 } shape { "
                "dim: 2 dim: 3 } } }\n"
                "layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'y' param { name: 'w' } "
                "inner_product_param { num_output: 2 bias_term: false } }\n"
                "layer { name: 'b' type: 'InnerProduct' bottom: 'x2' top: 'z' param { name: 'w' share_mode: "
                "PERMISSIVE } inner_product_param { num_output: 4 bias_term: false } }\n");
    if (net) {
        CHECK_EQ_INT(net->n_learnable, 1);
        net_free(net);
    }
}

static void test_weights_roundtrip(void)
{
    struct net *net = build(shared_net);
    if (!net)
        return;
    Caffe__NetParameter *p = NULL;
    CHECK_OK(net_to_proto(net, true, &p));
    if (!p) {
        net_free(net);
        return;
    }
    CHECK_EQ_INT(p->n_layer, (size_t)net->n_layers);
    struct net *other = NULL;
    Caffe__NetParameter *src = parse(shared_net);
    /* Another seed: different initial weights until copied. */
    CHECK_OK(net_build(src, NULL, 99, &other));
    proto_free(&src->base);
    if (other) {
        struct layer *a = net_layer_by_name(net, "ip1"), *b = net_layer_by_name(other, "ip1");
        CHECK(tensor_data(a->blobs[0])[0] != tensor_data(b->blobs[0])[0]);
        CHECK_OK(net_copy_trained_layers(other, p));
        CHECK(memcmp(tensor_data(a->blobs[0]), tensor_data(b->blobs[0]), a->blobs[0]->count * sizeof(float)) == 0);
        net_free(other);
    }

    /* Legacy 4-D blob shapes (1 1 4 6) fit a 4x6 weight; unknown layers are ignored. */
    Caffe__LayerParameter *ip3 = p->layer[net_layer_index(net, "ip3")];
    Caffe__BlobProto *w = ip3->blobs[0];
    int64_t *dims = w->shape->dim;
    size_t nd = w->shape->n_dim;
    Caffe__BlobShape *saved = w->shape;
    w->shape = NULL;
    w->has_num = w->has_channels = w->has_height = w->has_width = 1;
    w->num = 1;
    w->channels = 1;
    w->height = 4;
    w->width = 3;
    free(ip3->name);
    ip3->name = strdup("ip3");
    char *old_name = p->layer[0]->name;
    p->layer[0]->name = strdup("no_such_layer");
    free(old_name);
    CHECK_OK(net_copy_trained_layers(net, p));
    w->width = 5;
    int rc = net_copy_trained_layers(net, p);
    CHECK_EQ_INT(rc, CREMA_ERR_SHAPE);
    CHECK_MSG(strstr(crema_errmsg(), "ip3") && strstr(crema_errmsg(), "1 1 4 5") && strstr(crema_errmsg(), "4 3"),
              "message: %s", crema_errmsg());
    w->shape = saved;
    (void)dims;
    (void)nd;
    w->has_num = w->has_channels = w->has_height = w->has_width = 0;
    dims[0] = 5;
    rc = net_copy_trained_layers(net, p);
    CHECK_EQ_INT(rc, CREMA_ERR_SHAPE);
    caffe__net_parameter__free_unpacked(p, NULL);
    net_free(net);
}

static void test_reshape(void)
{
    struct net *net = build("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
                            "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { "
                            "num_output: 4 } }\n"
                            "layer { name: 'r' type: 'ReLU' bottom: 'y' top: 'y' }\n");
    if (!net)
        return;
    int shape[2] = { 5, 3 };
    CHECK_OK(tensor_reshape(net_blob(net, "x"), 2, shape));
    CHECK_OK(net_reshape(net));
    CHECK_EQ_INT(net_blob(net, "y")->shape[0], 5);
    CHECK_EQ_INT(net_blob(net, "y")->count, 20);
    CHECK_OK(net_forward_from_to(net, 1, 1, NULL));
    CHECK_EQ_INT(net_forward_from_to(net, 0, 3, NULL), CREMA_ERR_INVALID);
    CHECK_OK(net_backward_from_to(net, 2, 1));
    net_free(net);
}

/* data/ golden cases: blob/<top>@<k> after the k-th forward, exact. */
static const Caffe__LayerParameter *entry(const Caffe__NetParameter *g, const char *name)
{
    for (size_t i = 0; i < g->n_layer; i++)
        if (g->layer[i]->name && strcmp(g->layer[i]->name, name) == 0)
            return g->layer[i];
    return NULL;
}

static void check_data_case(const char *dir, const char *const *tops, int n_tops, int passes, bool memory)
{
    char *path = check_shared(dir);
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    if (chdir(path) != 0) {
        CHECK_MSG(0, "cannot enter %s", path);
        free(path);
        return;
    }
    Caffe__NetParameter *np = NULL, *g = NULL;
    CHECK_OK(proto_read_text("net.prototxt", &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np));
    CHECK_OK(proto_read_binary("golden.caffemodel", &caffe__net_parameter__descriptor, (ProtobufCMessage **)&g));
    struct net *net = NULL;
    if (np && g)
        CHECK_OK(net_build(np, NULL, 3, &net));
    if (net && memory) {
        const Caffe__LayerParameter *fd = entry(g, "fed/data"), *fl = entry(g, "fed/label");
        CHECK(fd && fl);
        if (fd && fl)
            CHECK_OK(memory_data_reset(net_layer_by_name(net, "data"), fd->blobs[0]->data, fl->blobs[0]->data,
                                       (int)fl->blobs[0]->n_data));
    }
    for (int k = 1; net && k <= passes; k++) {
        CHECK_OK(net_forward(net, NULL));
        for (int t = 0; t < n_tops; t++) {
            char name[128];
            snprintf(name, sizeof name, "blob/%s@%d", tops[t], k);
            const Caffe__LayerParameter *e = entry(g, name);
            struct tensor *b = net_blob(net, tops[t]);
            CHECK_MSG(e && b, "%s: golden entry or blob missing", name);
            if (!e || !b)
                continue;
            int na = 0, shape[TENSOR_MAX_AXES];
            CHECK_OK(blob_proto_shape(e->blobs[0], &na, shape));
            CHECK_EQ_INT(b->num_axes, na);
            CHECK_EQ_INT(b->count, e->blobs[0]->n_data);
            if (b->count == e->blobs[0]->n_data)
                CHECK_MSG(memcmp(tensor_data(b), e->blobs[0]->data, b->count * sizeof(float)) == 0,
                          "%s: values differ", name);
        }
    }
    net_free(net);
    if (np)
        proto_free(&np->base);
    if (g)
        proto_free(&g->base);
    CHECK(chdir(cwd) == 0);
    free(path);
}

static void test_golden_dummy_data(void)
{
    static const char *const tops[] = { "a", "b" };
    check_data_case("golden/data/dummy_data", tops, 2, 2, false);
}

static void test_golden_memory_data(void)
{
    static const char *const tops[] = { "data", "label" };
    check_data_case("golden/data/memory_data", tops, 2, 3, true);
}

static void test_memory_data_errors(void)
{
    struct net *net = build("layer { name: 'm' type: 'MemoryData' top: 'd' top: 'l' memory_data_param { "
                            "batch_size: 2 channels: 1 height: 1 width: 2 } }\n");
    if (!net)
        return;
    CHECK_EQ_INT(net_forward(net, NULL), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "layer m") != NULL);
    float d[6] = { 1, 2, 3, 4, 5, 6 }, l[3] = { 0, 1, 2 };
    CHECK_EQ_INT(memory_data_reset(net_layer_by_name(net, "m"), d, l, 3), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "multiple of batch_size") != NULL);
    net_free(net);
    static const char *const w[] = { "layer m", "batch_size", NULL };
    expect_build_error("layer { name: 'm' type: 'MemoryData' top: 'd' top: 'l' memory_data_param { "
                       "batch_size: 2 channels: 1 height: 1 } }\n",
                       CREMA_ERR_INVALID, w);
}

static void test_dummy_data_refill(void)
{
    struct net *net = build("layer { name: 'd' type: 'DummyData' top: 'c' top: 'u' dummy_data_param { "
                            "data_filler { type: 'constant' value: 7 } data_filler { type: 'uniform' } num: 2 "
                            "channels: 3 height: 1 width: 2 } }\n");
    if (!net)
        return;
    struct tensor *c = net_blob(net, "c"), *u = net_blob(net, "u");
    CHECK_EQ_INT(c->num_axes, 4);
    CHECK_EQ_INT(u->count, 12);
    CHECK_OK(net_forward(net, NULL));
    float first = tensor_data(u)[0];
    tensor_data(c)[0] = 1; /* a constant top is filled once, at setup */
    CHECK_OK(net_forward(net, NULL));
    CHECK(tensor_data(c)[0] == 1.f && tensor_data(c)[1] == 7.f);
    CHECK(tensor_data(u)[0] != first);
    net_free(net);
}

static void test_legacy_inputs(void)
{
    struct net *net = build("input: 'data' input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5\n"
                            "layer { name: 'r' type: 'ReLU' bottom: 'data' top: 'y' }\n");
    if (!net)
        return;
    CHECK_EQ_INT(net->n_inputs, 1);
    CHECK(strcmp(net->layers[0].layer->kind->type, "Input") == 0);
    CHECK_EQ_INT(net_blob(net, "y")->count, 120);
    net_free(net);
}

static void test_api(void)
{
    char *dir = check_tmpdir("net_api");
    char proto[4096], weights[4096];
    snprintf(proto, sizeof proto, "%s/net.prototxt", dir);
    snprintf(weights, sizeof weights, "%s/w.caffemodel", dir);
    FILE *f = fopen(proto, "w");
    CHECK(f != NULL);
    if (!f) {
        free(dir);
        return;
    }
    fputs("name: 'api'\n"
          "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
          "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { num_output: 2 "
          "weight_filler { type: 'gaussian' } } include { phase: TEST } }\n"
          "layer { name: 'ipt' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { num_output: 2 } "
          "include { phase: TRAIN } }\n",
          f);
    fclose(f);
    crema_net *net = NULL;
    CHECK_OK(crema_net_open(proto, NULL, CREMA_TEST, &net));
    if (!net) {
        free(dir);
        return;
    }
    CHECK_EQ_INT(crema_net_num_layers(net), 2);
    CHECK(strcmp(crema_net_layer_name(net, 1), "ip") == 0);
    CHECK(strcmp(crema_net_output_name(net, 0), "y") == 0);
    CHECK(strcmp(crema_net_input_name(net, 0), "x") == 0);
    float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    int shape[2] = { 4, 2 };
    CHECK_EQ_INT(crema_net_set_input(net, "x", 2, shape, x), CREMA_ERR_SHAPE); /* 2 inputs vs the 3 the IP takes */
    shape[1] = 3;
    shape[0] = 2;
    CHECK_OK(crema_net_set_input(net, "x", 2, shape, x));
    float loss = -1;
    CHECK_OK(crema_net_forward(net, &loss));
    CHECK(loss == 0.f);
    crema_blob y, w;
    CHECK_OK(crema_net_blob(net, "y", &y));
    CHECK_OK(crema_net_param(net, "ip", 0, &w));
    CHECK_EQ_INT(y.count, 4);
    CHECK_EQ_INT(w.num_axes, 2);
    float want = w.data[0] * 1 + w.data[1] * 2 + w.data[2] * 3;
    CHECK_MSG(fabsf(y.data[0] - want) < 1e-5f, "y[0] %g, want %g", (double)y.data[0], (double)want);
    float out[4];
    CHECK_OK(crema_net_get_blob(net, "y", 0, out, 4));
    CHECK(out[0] == y.data[0]);
    CHECK_EQ_INT(crema_net_blob(net, "nope", &y), CREMA_ERR_NOTFOUND);
    CHECK_EQ_INT(crema_net_param(net, "ip", 2, &w), CREMA_ERR_NOTFOUND);
    CHECK_OK(crema_net_save_weights(net, weights));
    float w0 = w.data[0];

    crema_net *again = NULL;
    CHECK_OK(crema_net_open(proto, weights, CREMA_TEST, &again));
    if (again) {
        crema_blob w2;
        CHECK_OK(crema_net_param(again, "ip", 0, &w2));
        CHECK(w2.data[0] == w0);
        crema_net_free(again);
    }
    /* TRAIN builds the other layer; the weights for 'ip' fit no layer
     * there, which is refused unless asked for. */
    CHECK_EQ_INT(crema_net_open(proto, weights, CREMA_TRAIN, &again), CREMA_ERR_INVALID);
    CHECK_MSG(strstr(crema_errmsg(), "no layer of net api got weights") && strstr(crema_errmsg(), "ipt"), "got: %s",
              crema_errmsg());
    CHECK_OK(crema_net_open(proto, NULL, CREMA_TRAIN, &again));
    if (again) {
        CHECK(strcmp(crema_net_layer_name(again, 1), "ipt") == 0);
        CHECK_OK(crema_net_load_weights_flags(again, weights, CREMA_WEIGHTS_ALLOW_UNMATCHED));
        crema_net_free(again);
    }
    CHECK(crema_net_open("/nonexistent/net.prototxt", NULL, CREMA_TEST, &again) != 0);
    CHECK(strstr(crema_errmsg(), "/nonexistent/net.prototxt") != NULL);
    CHECK_EQ_INT(crema_net_set_memory_data(net, "ip", x, x, 2), CREMA_ERR_INVALID);
    crema_net_free(net);
    free(dir);
}

static void test_api_memory_data(void)
{
    char *path = check_shared("golden/data/memory_data/net.prototxt");
    char *gpath = check_shared("golden/data/memory_data/golden.caffemodel");
    crema_net *net = NULL;
    CHECK_OK(crema_net_open(path, NULL, CREMA_TRAIN, &net));
    Caffe__NetParameter *g = NULL;
    CHECK_OK(proto_read_binary(gpath, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&g));
    if (net && g) {
        const Caffe__LayerParameter *fd = entry(g, "fed/data"), *fl = entry(g, "fed/label");
        CHECK_OK(crema_net_set_memory_data(net, "data", fd->blobs[0]->data, fl->blobs[0]->data, 6));
        for (int k = 1; k <= 3; k++) {
            CHECK_OK(crema_net_forward(net, NULL));
            char name[64];
            snprintf(name, sizeof name, "blob/label@%d", k);
            crema_blob b;
            CHECK_OK(crema_net_blob(net, "label", &b));
            const Caffe__LayerParameter *e = entry(g, name);
            CHECK(e && b.count == 3 && memcmp(b.data, e->blobs[0]->data, 3 * sizeof(float)) == 0);
        }
    }
    if (g)
        proto_free(&g->base);
    crema_net_free(net);
    free(path);
    free(gpath);
}

CHECK_MAIN(CASE(test_state_rules), CASE(test_filter), CASE(test_splits), CASE(test_in_place_and_outputs),
           CASE(test_bad_nets), CASE(test_backward_pruning), CASE(test_loss_layer_weights),
           CASE(test_shared_params), CASE(test_weights_roundtrip), CASE(test_reshape),
           CASE(test_golden_dummy_data), CASE(test_golden_memory_data), CASE(test_memory_data_errors),
           CASE(test_dummy_data_refill), CASE(test_legacy_inputs), CASE(test_api), CASE(test_api_memory_data))
