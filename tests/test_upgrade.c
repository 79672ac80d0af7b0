/* Net and solver upgrades: every before/after pair Caffe's own upgrade tools
 * wrote (corpus/upgrade) comes out equal, step by step and in full; the
 * upgrades are idempotent; hand-made nets cover padding layers, inputs,
 * BatchNorm, V1 param specs and the error cases. */
#include "check.h"
#include "proto_testing.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static bool same_net_or_quiet(const Caffe__NetParameter *a, const Caffe__NetParameter *b, const char *what,
                              bool quiet);

/* Equal packed bytes (protobuf-c writes fields in number order, so equal
 * messages pack the same). On a difference, prints both as text. */
static bool same_net_or_quiet(const Caffe__NetParameter *a, const Caffe__NetParameter *b, const char *what,
                              bool quiet)
{
    bool same = pt_same_message(&a->base, &b->base);
    if (!same && !quiet) {
        char *ta = NULL, *tb = NULL;
        size_t n;
        if (proto_print_text(&a->base, &ta, &n) == 0 && proto_print_text(&b->base, &tb, &n) == 0)
            printf("    %s differ.\n--- got:\n%s--- expected:\n%s", what, ta, tb);
        free(ta);
        free(tb);
    }
    return same;
}

static bool same_net(const Caffe__NetParameter *a, const Caffe__NetParameter *b, const char *what)
{
    return same_net_or_quiet(a, b, what, false);
}

static Caffe__NetParameter *read_net(const char *path)
{
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_text(path, &caffe__net_parameter__descriptor, &m));
    return (Caffe__NetParameter *)m;
}

static Caffe__NetParameter *parse_net(const char *text)
{
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_parse_text(&caffe__net_parameter__descriptor, text, strlen(text), "inline.prototxt", &m));
    return (Caffe__NetParameter *)m;
}

static void free_net(Caffe__NetParameter *n)
{
    if (n)
        proto_free(&n->base);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Upgrading an upgraded net changes nothing; a text print and re-read of it
 * is the same net. */
static void check_fixed_point(Caffe__NetParameter *net, const char *what)
{
    CHECK_MSG(!upgrade_net_needed(net), "%s: still needs an upgrade", what);
    size_t l1, l2;
    uint8_t *p1 = pt_pack(&net->base, &l1);
    bool changed = true;
    CHECK_OK(upgrade_net(net, what, &changed));
    CHECK_MSG(!changed, "%s: a second upgrade reported a change", what);
    uint8_t *p2 = pt_pack(&net->base, &l2);
    CHECK_MSG(l1 == l2 && memcmp(p1, p2, l1) == 0, "%s: a second upgrade changed the net", what);
    free(p1);
    free(p2);
    char *text = NULL;
    size_t n = 0;
    CHECK_OK(proto_print_text(&net->base, &text, &n));
    if (text) {
        Caffe__NetParameter *again = parse_net(text);
        if (again)
            CHECK_MSG(same_net(again, net, "printed and re-read"), "%s: text round trip changed the net", what);
        free_net(again);
    }
    free(text);
}

/* ---- the corpus pairs ---- */

/* One before/after pair: its path relative to the roots, both paths, and
 * both nets as read. */
struct net_pair {
    const char *rel, *bp, *ap;
    Caffe__NetParameter *b, *a;
};

/* Runs check on every *.prototxt under before_root whose namesake under
 * after_root also reads; check says whether the pair matched Caffe's. Returns
 * the number of before files; *matched counts the matching pairs. */
static size_t for_each_pair(const char *before_root, const char *after_root, bool (*check)(struct net_pair *, void *),
                            void *ctx, int *matched)
{
    struct pt_files files = { 0 };
    pt_collect(before_root, ".prototxt", &files);
    *matched = 0;
    for (size_t i = 0; i < files.n; i++) {
        struct net_pair p = { .rel = files.v[i] + strlen(before_root) + 1 };
        char *bp = join(before_root, p.rel), *ap = join(after_root, p.rel);
        p.bp = bp;
        p.ap = ap;
        p.b = read_net(bp);
        p.a = read_net(ap);
        if (p.b && p.a)
            *matched += check(&p, ctx);
        free_net(p.b);
        free_net(p.a);
        free(bp);
        free(ap);
    }
    size_t n = files.n;
    pt_files_free(&files);
    return n;
}

/* V0 -> V1 (Caffe commit 1fbb5bb3 ran upgrade_net_proto_text over the V0
 * examples). Caffe of that day put scale/mean_file/crop_size/mirror in the
 * data-layer parameters; the current V0 upgrade puts them straight into
 * transform_param, and a later step moves the old ones there. So the stage
 * check compares our V0 -> V1 output with the after file once both have had
 * the data-transform step; the full check upgrades both to the current
 * format. */
static bool v0_pair(struct net_pair *p, void *ctx)
{
    (void)ctx;
    Caffe__NetParameter *b = p->b, *a = p->a;
    CHECK_MSG(upgrade_net_needs_v0(b), "%s: not recognised as V0", p->bp);
    CHECK_MSG(!upgrade_net_needs_v0(a) && upgrade_net_needs_v1(a), "%s: not V1", p->ap);
    /* the comparison tells them apart before the upgrade */
    CHECK(!same_net_or_quiet(b, a, p->rel, true));
    /* stage: V0 -> V1 */
    struct upgrade_notes notes = { 0 };
    CHECK_OK(upgrade_net_v0(b, p->bp, &notes));
    CHECK_MSG(notes.count == 0, "%s: %s", p->bp, notes.text);
    CHECK_OK(upgrade_net_data_transform(b, p->bp));
    CHECK_OK(upgrade_net_data_transform(a, p->ap));
    bool ok = same_net(b, a, p->rel);
    CHECK_MSG(ok, "%s: V0 -> V1 differs from Caffe's", p->rel);
    /* full, from both ends */
    bool changed = false;
    CHECK_OK(upgrade_net(b, p->bp, &changed));
    CHECK(changed);
    CHECK_OK(upgrade_net(a, p->ap, &changed));
    CHECK(changed);
    bool ok2 = same_net(b, a, p->rel);
    CHECK_MSG(ok2, "%s: full upgrades of before and after differ", p->rel);
    check_fixed_point(b, p->bp);
    return ok && ok2;
}

static void v0_pairs(void)
{
    char *before_root = check_shared("corpus/upgrade/V0_before");
    char *after_root = check_shared("corpus/upgrade/V1_after_upgrade_net_proto");
    int matched;
    size_t n = for_each_pair(before_root, after_root, v0_pair, NULL, &matched);
    CHECK_MSG(n >= 10, "expected the 10 V0 example nets, found %zu", n);
    printf("    %d of %zu V0 nets match Caffe's upgrade\n", matched, n);
    free(before_root);
    free(after_root);
}

/* V1 -> V2 (Caffe commit e6c80dac ran upgrade_net_proto_text over the
 * examples and models). Its UpgradeNetAsNeeded then did V0, data transform
 * and V1 -> V2, which is the stage check; the deploy nets still had `input:`
 * fields then, which the full upgrade also turns into Input layers. */
static bool v1_pair(struct net_pair *p, void *ctx)
{
    int *inputs = ctx;
    Caffe__NetParameter *b = p->b, *a = p->a;
    CHECK_MSG(upgrade_net_needs_v1(b) && !upgrade_net_needs_v0(b), "%s: not V1", p->bp);
    CHECK_MSG(!upgrade_net_needs_v1(a), "%s: not V2", p->ap);
    CHECK(!same_net_or_quiet(b, a, p->rel, true));
    if (upgrade_net_needs_data_transform(b))
        CHECK_OK(upgrade_net_data_transform(b, p->bp));
    struct upgrade_notes notes = { 0 };
    CHECK_OK(upgrade_net_v1(b, p->bp, &notes));
    CHECK_MSG(notes.count == 0, "%s: %s", p->bp, notes.text);
    bool ok = same_net(b, a, p->rel);
    CHECK_MSG(ok, "%s: V1 -> V2 differs from Caffe's", p->rel);
    *inputs += upgrade_net_needs_input(a);
    bool changed = false;
    CHECK_OK(upgrade_net(b, p->bp, &changed));
    CHECK_OK(upgrade_net(a, p->ap, &changed));
    bool ok2 = same_net(b, a, p->rel);
    CHECK_MSG(ok2, "%s: full upgrades of before and after differ", p->rel);
    check_fixed_point(b, p->bp);
    return ok && ok2;
}

static void v1_pairs(void)
{
    char *before_root = check_shared("corpus/upgrade/V1_before_2015");
    char *after_root = check_shared("corpus/upgrade/V2_after_upgrade_net_proto_text");
    int matched, inputs = 0;
    size_t n = for_each_pair(before_root, after_root, v1_pair, &inputs, &matched);
    CHECK_MSG(n >= 21, "expected the 21 V1 nets, found %zu", n);
    printf("    %d of %zu V1 nets match Caffe's upgrade (%d with input fields)\n", matched, n, inputs);
    CHECK_MSG(inputs >= 5, "expected several deploy nets with input fields, found %d", inputs);
    free(before_root);
    free(after_root);
}

/* Current-format nets of the corpus need nothing and stay as they are. */
static void current_nets_untouched(void)
{
    const char *rel[] = { "corpus/caffe/examples/mnist/lenet_train_test.prototxt",
                          "corpus/caffe/models/bvlc_googlenet/train_val.prototxt" };
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char *p = check_shared(rel[i]);
        Caffe__NetParameter *n = read_net(p);
        if (n)
            check_fixed_point(n, p);
        free_net(n);
        free(p);
    }
}

/* ---- hand-made nets ---- */

static const Caffe__LayerParameter *layer_named(const Caffe__NetParameter *n, const char *name)
{
    for (size_t i = 0; i < n->n_layer; i++)
        if (n->layer[i]->name && strcmp(n->layer[i]->name, name) == 0)
            return n->layer[i];
    return NULL;
}

static void v0_padding_folds_into_conv(void)
{
    Caffe__NetParameter *n = parse_net(
        "name: 'pad'\ninput: 'data'\ninput_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n"
        "layers { layer { name: 'pad1' type: 'padding' pad: 2 } bottom: 'data' top: 'pad1' }\n"
        "layers { layer { name: 'conv1' type: 'conv' num_output: 4 kernelsize: 3 stride: 2 group: 1"
        "  biasterm: false weight_filler { type: 'gaussian' std: 0.01 } blobs_lr: 1 blobs_lr: 2"
        "  weight_decay: 1 weight_decay: 0 } bottom: 'pad1' top: 'conv1' }\n"
        "layers { layer { name: 'pool1' type: 'pool' pool: AVE kernelsize: 2 stride: 2 }"
        "  bottom: 'conv1' top: 'pool1' }\n"
        "layers { layer { name: 'drop' type: 'dropout' dropout_ratio: 0.3 } bottom: 'pool1' top: 'pool1' }\n"
        "layers { layer { name: 'relu' type: 'relu' num_output: 3 } bottom: 'pool1' top: 'pool1' }\n");
    if (!n)
        return;
    struct upgrade_notes notes = { 0 };
    bool changed = false;
    CHECK_OK(upgrade_net_noted(n, "pad.prototxt", &changed, &notes));
    CHECK(changed);
    /* num_output on a relu is not carried over, as in Caffe */
    CHECK_EQ_INT(notes.count, 1);
    CHECK_MSG(strstr(notes.text, "num_output") && strstr(notes.text, "relu"), "notes: %s", notes.text);
    CHECK_EQ_INT(n->n_layer, 5); /* input + 4, the padding layer gone */
    CHECK_EQ_INT(n->n_input, 0);
    const Caffe__LayerParameter *in = layer_named(n, "input"), *conv = layer_named(n, "conv1"),
                                *pool = layer_named(n, "pool1"), *drop = layer_named(n, "drop");
    CHECK(in && n->layer[0] == in);
    if (in) {
        CHECK(strcmp(in->type, "Input") == 0);
        CHECK(in->n_top == 1 && strcmp(in->top[0], "data") == 0);
        CHECK(in->input_param && in->input_param->n_shape == 1 && in->input_param->shape[0]->n_dim == 4 &&
              in->input_param->shape[0]->dim[1] == 3);
    }
    CHECK(conv != NULL);
    if (conv) {
        CHECK(strcmp(conv->type, "Convolution") == 0);
        CHECK(conv->n_bottom == 1 && strcmp(conv->bottom[0], "data") == 0);
        const Caffe__ConvolutionParameter *cp = conv->convolution_param;
        CHECK(cp && cp->n_pad == 1 && cp->pad[0] == 2 && cp->n_kernel_size == 1 && cp->kernel_size[0] == 3 &&
              cp->n_stride == 1 && cp->stride[0] == 2 && cp->has_group && cp->has_bias_term && !cp->bias_term &&
              cp->num_output == 4 && cp->weight_filler && strcmp(cp->weight_filler->type, "gaussian") == 0);
        CHECK_EQ_INT(conv->n_param, 2);
        if (conv->n_param == 2)
            CHECK(conv->param[0]->lr_mult == 1 && conv->param[1]->lr_mult == 2 && conv->param[0]->decay_mult == 1 &&
                  conv->param[1]->has_decay_mult && conv->param[1]->decay_mult == 0);
    }
    CHECK(pool && pool->pooling_param && pool->pooling_param->pool == CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE &&
          pool->pooling_param->kernel_size == 2 && strcmp(pool->type, "Pooling") == 0);
    CHECK(drop && drop->dropout_param && drop->dropout_param->dropout_ratio > 0.29f);
    check_fixed_point(n, "pad.prototxt");
    free_net(n);
}

static void expect_upgrade_error(const char *text, const char *want1, const char *want2)
{
    Caffe__NetParameter *n = parse_net(text);
    if (!n)
        return;
    int rc = upgrade_net(n, "bad.prototxt", NULL);
    CHECK_MSG(rc != 0, "expected an upgrade error for:\n%s", text);
    CHECK_MSG(strstr(crema_errmsg(), "bad.prototxt") && strstr(crema_errmsg(), want1) &&
                  (!want2 || strstr(crema_errmsg(), want2)),
              "message should name the file, \"%s\"%s%s: %s", want1, want2 ? " and " : "", want2 ? want2 : "",
              crema_errmsg());
    free_net(n); /* still a whole message after the error */
}

static void upgrade_errors(void)
{
    expect_upgrade_error("input: 'x'\nlayers { layer { name: 'p' type: 'padding' pad: 1 } bottom: 'x' top: 'y' }\n"
                         "layers { layer { name: 'r' type: 'relu' } bottom: 'y' top: 'z' }\n",
                         "\"r\"", "padding");
    expect_upgrade_error("input: 'x'\nlayers { layer { name: 'w' type: 'warp' } bottom: 'x' top: 'y' }\n", "\"w\"",
                         "warp");
    expect_upgrade_error("layers { layer { name: 'c' type: 'conv' } bottom: 'nowhere' top: 'y' }\n", "\"c\"",
                         "nowhere");
    expect_upgrade_error("layer { name: 'a' type: 'ReLU' }\nlayers { name: 'b' type: RELU }\n", "layer", "layers");
    expect_upgrade_error("input: 'a' input: 'b'\ninput_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4\n", "input_dim",
                         NULL);
}

static void v1_params_and_rules(void)
{
    Caffe__NetParameter *n = parse_net(
        "layers { name: 'ip' type: INNER_PRODUCT bottom: 'x' top: 'y' param: 'w' param: 'b'"
        "  blob_share_mode: PERMISSIVE blobs_lr: 1 blobs_lr: 2 blobs_lr: 3 weight_decay: 0.5"
        "  loss_weight: 2 include { phase: TRAIN } exclude { stage: 's' }"
        "  inner_product_param { num_output: 7 } }\n"
        "layers { name: 'd' type: DATA top: 'x' data_param { source: 'db' scale: 0.5 mirror: true }"
        "  include { phase: TEST } }\n"
        "layers { name: 'n' type: NONE }\n");
    if (!n)
        return;
    CHECK(upgrade_net_needs_data_transform(n));
    CHECK_OK(upgrade_net(n, "v1.prototxt", NULL));
    CHECK_EQ_INT(n->n_layer, 3);
    const Caffe__LayerParameter *ip = layer_named(n, "ip"), *d = layer_named(n, "d"), *none = layer_named(n, "n");
    CHECK(ip && d && none);
    if (ip) {
        CHECK(strcmp(ip->type, "InnerProduct") == 0);
        CHECK_EQ_INT(ip->n_param, 3);
        if (ip->n_param == 3) {
            CHECK(ip->param[0]->name && strcmp(ip->param[0]->name, "w") == 0);
            CHECK(ip->param[1]->name && strcmp(ip->param[1]->name, "b") == 0);
            CHECK(ip->param[2]->name == NULL);
            CHECK(ip->param[0]->has_share_mode &&
                  ip->param[0]->share_mode == CAFFE__PARAM_SPEC__DIM_CHECK_MODE__PERMISSIVE);
            CHECK(!ip->param[1]->has_share_mode);
            CHECK(ip->param[2]->lr_mult == 3 && ip->param[0]->decay_mult == 0.5f && !ip->param[1]->has_decay_mult);
        }
        CHECK(ip->n_loss_weight == 1 && ip->loss_weight[0] == 2);
        CHECK(ip->n_include == 1 && ip->include[0]->phase == CAFFE__PHASE__TRAIN);
        CHECK(ip->n_exclude == 1 && ip->exclude[0]->n_stage == 1);
        CHECK(ip->inner_product_param && ip->inner_product_param->num_output == 7);
    }
    if (d) {
        CHECK(strcmp(d->type, "Data") == 0);
        CHECK(d->transform_param && d->transform_param->has_scale && d->transform_param->scale == 0.5f &&
              d->transform_param->has_mirror && d->transform_param->mirror);
        CHECK(d->data_param && !d->data_param->has_scale && !d->data_param->has_mirror &&
              strcmp(d->data_param->source, "db") == 0);
    }
    if (none)
        CHECK(none->type && strcmp(none->type, "") == 0); /* Caffe names NONE "" */
    check_fixed_point(n, "v1.prototxt");
    free_net(n);
}

static void input_shape_and_batch_norm(void)
{
    Caffe__NetParameter *n = parse_net(
        "input: 'a' input: 'b'\ninput_shape { dim: 2 dim: 3 } input_shape { dim: 5 }\n"
        "layer { name: 'bn' type: 'BatchNorm' bottom: 'a' top: 'a'"
        "  param { name: 'm' lr_mult: 1 } param { lr_mult: 0 decay_mult: 0 } param { decay_mult: 1 } }\n"
        "layer { name: 'bn2' type: 'BatchNorm' bottom: 'b' top: 'b' param { lr_mult: 1 } }\n");
    if (!n)
        return;
    CHECK(upgrade_net_needs_input(n) && upgrade_net_needs_batch_norm(n));
    bool changed = false;
    CHECK_OK(upgrade_net(n, "bn.prototxt", &changed));
    CHECK(changed);
    CHECK_EQ_INT(n->n_layer, 3);
    const Caffe__LayerParameter *in = n->layer[0], *bn = layer_named(n, "bn"), *bn2 = layer_named(n, "bn2");
    CHECK(strcmp(in->type, "Input") == 0 && in->n_top == 2 && in->input_param->n_shape == 2 &&
          in->input_param->shape[0]->n_dim == 2 && in->input_param->shape[1]->dim[0] == 5);
    if (bn && bn->n_param == 3) {
        for (int i = 0; i < 3; i++)
            CHECK(bn->param[i]->has_lr_mult && bn->param[i]->lr_mult == 0 && bn->param[i]->has_decay_mult &&
                  bn->param[i]->decay_mult == 0);
        CHECK(bn->param[0]->name && strcmp(bn->param[0]->name, "m") == 0); /* names kept (BVLC 1.0) */
    } else {
        CHECK_MSG(0, "BatchNorm layer should keep its 3 param specs");
    }
    /* only the three-spec form is Caffe's old BatchNorm */
    CHECK(bn2 && bn2->n_param == 1 && bn2->param[0]->lr_mult == 1);
    /* the three specs stay, so the predicate still holds, but nothing changes */
    changed = true;
    CHECK_OK(upgrade_net(n, "bn.prototxt", &changed));
    CHECK(!changed);
    free_net(n);
}

/* A V1 .caffemodel (weights inside) upgrades the same through the library
 * and through `crema upgrade-net`, weights untouched. */
static void v1_binary_caffemodel(void)
{
    char *src = check_shared("corpus/upgrade/V1_before_2015/examples/mnist/lenet_train_test.prototxt");
    Caffe__NetParameter *n = read_net(src);
    free(src);
    if (!n)
        return;
    Caffe__V1LayerParameter *conv = NULL;
    for (size_t i = 0; i < n->n_layers; i++)
        if (n->layers[i]->name && strcmp(n->layers[i]->name, "conv1") == 0)
            conv = n->layers[i];
    CHECK(conv != NULL);
    if (conv) {
        /* two blobs as Caffe stores them: shape + data */
        conv->blobs = calloc(2, sizeof *conv->blobs);
        for (int b = 0; b < 2; b++) {
            Caffe__BlobProto *bp = malloc(sizeof *bp);
            caffe__blob_proto__init(bp);
            bp->shape = malloc(sizeof *bp->shape);
            caffe__blob_shape__init(bp->shape);
            size_t count = b == 0 ? 20 * 25 : 20;
            bp->shape->n_dim = b == 0 ? 4 : 1;
            bp->shape->dim = malloc(4 * sizeof *bp->shape->dim);
            int64_t dims[4] = { 20, 1, 5, 5 };
            memcpy(bp->shape->dim, dims, 4 * sizeof dims[0]);
            if (b == 1)
                bp->shape->dim[0] = 20;
            bp->data = malloc(count * sizeof *bp->data);
            for (size_t k = 0; k < count; k++)
                bp->data[k] = (float)k * 0.25f - (float)b;
            bp->n_data = count;
            conv->blobs[conv->n_blobs++] = bp;
        }
    }
    char *dir = check_tmpdir("upgrade_binary");
    char *in = join(dir, "v1.caffemodel"), *out = join(dir, "v2.caffemodel");
    CHECK_OK(proto_write_binary(in, &n->base));
    free_net(n);

    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_binary(in, &caffe__net_parameter__descriptor, &m));
    Caffe__NetParameter *lib = (Caffe__NetParameter *)m;
    if (lib) {
        CHECK(upgrade_net_needs_v1(lib));
        CHECK_OK(upgrade_net(lib, in, NULL));
        const Caffe__LayerParameter *c = layer_named(lib, "conv1");
        CHECK(c && c->n_blobs == 2 && c->blobs[0]->n_data == 500 && c->blobs[0]->data[4] == 1.0f &&
              c->blobs[1]->shape->dim[0] == 20 && c->blobs[1]->data[0] == -1.0f);
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' upgrade-net '%s' '%s' 2>/dev/null", check_crema_bin(), in, out);
    CHECK_EQ_INT(system(cmd), 0);
    m = NULL;
    CHECK_OK(proto_read_binary(out, &caffe__net_parameter__descriptor, &m));
    Caffe__NetParameter *cli = (Caffe__NetParameter *)m;
    if (lib && cli)
        CHECK_MSG(same_net(cli, lib, "crema upgrade-net vs upgrade_net"), "binary upgrades differ");
    free_net(lib);
    free_net(cli);
    free(in);
    free(out);
    free(dir);
}

/* ---- solver ---- */

static Caffe__SolverParameter *parse_solver(const char *text)
{
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_parse_text(&caffe__solver_parameter__descriptor, text, strlen(text), "solver.prototxt", &m));
    return (Caffe__SolverParameter *)m;
}

static void solver_types(void)
{
    static const char *enums[] = { "SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM" };
    static const char *names[] = { "SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam" };
    for (int i = 0; i < 6; i++) {
        char text[256];
        snprintf(text, sizeof text, "base_lr: 0.1\nsolver_type: %s\nmax_iter: 3\n", enums[i]);
        Caffe__SolverParameter *s = parse_solver(text);
        if (!s)
            continue;
        CHECK(upgrade_solver_needed(s));
        bool changed = false;
        CHECK_OK(upgrade_solver(s, "solver.prototxt", &changed));
        CHECK(changed);
        CHECK_MSG(s->type && strcmp(s->type, names[i]) == 0, "solver_type %s: expected type %s, got %s", enums[i],
                  names[i], s->type ? s->type : "(null)");
        CHECK(!s->has_solver_type && !upgrade_solver_needed(s));
        /* again: nothing to do */
        size_t l1, l2;
        uint8_t *p1 = pt_pack(&s->base, &l1);
        CHECK_OK(upgrade_solver(s, "solver.prototxt", &changed));
        CHECK(!changed);
        uint8_t *p2 = pt_pack(&s->base, &l2);
        CHECK(l1 == l2 && memcmp(p1, p2, l1) == 0);
        free(p1);
        free(p2);
        /* the printed form names the type and not the enum */
        char *out = NULL;
        size_t n;
        CHECK_OK(proto_print_text(&s->base, &out, &n));
        CHECK_MSG(out && strstr(out, names[i]) && !strstr(out, "solver_type"), "printed: %s", out ? out : "");
        free(out);
        proto_free(&s->base);
    }
    Caffe__SolverParameter *s = parse_solver("solver_type: ADAM\ntype: \"Adam\"\n");
    if (s) {
        CHECK(upgrade_solver(s, "both.prototxt", NULL) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "both.prototxt") && strstr(crema_errmsg(), "solver_type"), "got: %s",
                  crema_errmsg());
        proto_free(&s->base);
    }
    /* a current solver of the corpus needs nothing */
    char *p = check_shared("corpus/caffe/examples/mnist/lenet_solver.prototxt");
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_text(p, &caffe__solver_parameter__descriptor, &m));
    if (m) {
        bool changed = true;
        CHECK(!upgrade_solver_needed((Caffe__SolverParameter *)m));
        CHECK_OK(upgrade_solver((Caffe__SolverParameter *)m, p, &changed));
        CHECK(!changed);
        proto_free(m);
    }
    free(p);
}

CHECK_MAIN(CASE(v0_pairs), CASE(v1_pairs), CASE(current_nets_untouched), CASE(v0_padding_folds_into_conv),
           CASE(upgrade_errors), CASE(v1_params_and_rules), CASE(input_shape_and_batch_norm),
           CASE(v1_binary_caffemodel), CASE(solver_types))
