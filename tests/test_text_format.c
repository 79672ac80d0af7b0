/* The protobuf text format: every prototxt of the corpus, read-print-read
 * round trips, each syntax form, and the errors bad input must give. */
#include "check.h"
#include "proto_testing.h"
#include "proto/proto_io.h"
#include "util/io.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static const ProtobufCMessageDescriptor *desc_for(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strstr(base, "solver") ? &caffe__solver_parameter__descriptor : &caffe__net_parameter__descriptor;
}

/* Fields that only Caffe forks define. */
static const char *const fork_fields[] = { "ceil_mode", "permute_param", "norm_param", "priorbox_param",
                                           "detection_output_param", "upsample_param", "interp_param" };

/* The first use of a fork-only field in text (as a field: followed by ':'
 * or '{', not part of a longer name); its line, or 0. */
static size_t first_fork_field(const char *text, const char **which)
{
    size_t best_off = (size_t)-1;
    for (size_t k = 0; k < sizeof fork_fields / sizeof fork_fields[0]; k++) {
        size_t fl = strlen(fork_fields[k]);
        for (const char *p = strstr(text, fork_fields[k]); p; p = strstr(p + 1, fork_fields[k])) {
            char before = p == text ? ' ' : p[-1];
            const char *q = p + fl;
            while (*q == ' ' || *q == '\t')
                q++;
            bool ident_before = (before >= 'a' && before <= 'z') || (before >= 'A' && before <= 'Z') ||
                                (before >= '0' && before <= '9') || before == '_';
            if (!ident_before && (*q == ':' || *q == '{') && (size_t)(p - text) < best_off) {
                best_off = (size_t)(p - text);
                *which = fork_fields[k];
                break;
            }
        }
    }
    if (best_off == (size_t)-1)
        return 0;
    size_t line = 1;
    for (size_t i = 0; i < best_off; i++)
        line += text[i] == '\n';
    return line;
}

static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = NULL;
    int rc = proto_parse_text(d, text, strlen(text), "t.prototxt", &m);
    CHECK_MSG(rc == 0, "parsing <<%s>> failed: %s", text, crema_errmsg());
    return m;
}

/* Parsing must fail with a message holding every one of the given pieces. */
static void parse_fails(const ProtobufCMessageDescriptor *d, const char *text, const char *const *pieces)
{
    ProtobufCMessage *m = NULL;
    int rc = proto_parse_text(d, text, strlen(text), "t.prototxt", &m);
    CHECK_MSG(rc == CREMA_ERR_PARSE, "parsing <<%s>>: expected a parse error, got %d", text, rc);
    CHECK(m == NULL);
    if (m)
        proto_free(m);
    const char *msg = crema_errmsg();
    for (; *pieces; pieces++)
        CHECK_MSG(strstr(msg, *pieces), "error for <<%s>> should mention \"%s\"; it is: %s", text, *pieces, msg);
}

#define FAILS(d, text, ...)                                                   \
    do {                                                                      \
        static const char *const pieces_[] = { __VA_ARGS__, NULL };           \
        parse_fails((d), (text), pieces_);                                    \
    } while (0)

#define NET (&caffe__net_parameter__descriptor)
#define LAYER (&caffe__layer_parameter__descriptor)
#define SOLVER (&caffe__solver_parameter__descriptor)

/* ------------------------------------------------------------- corpus */

static void corpus_prototxts(void)
{
    struct pt_files ps = { 0 };
    char *corpus = check_shared("corpus");
    char *golden = check_shared("golden");
    pt_collect(corpus, ".prototxt", &ps);
    pt_collect(golden, ".prototxt", &ps);
    CHECK_MSG(ps.n > 300, "expected the corpus and golden prototxts, found %zu under %s", ps.n, corpus);
    size_t parsed = 0, rejected = 0, round_tripped = 0, v0 = 0, v1 = 0;
    for (size_t i = 0; i < ps.n; i++) {
        const char *path = ps.v[i];
        uint8_t *text;
        size_t len;
        CHECK_OK(io_read_file(path, IO_MAX_MESSAGE, &text, &len));
        if (!text)
            continue;
        const char *fork = NULL;
        size_t fork_line = first_fork_field((const char *)text, &fork);
        const ProtobufCMessageDescriptor *d = desc_for(path);
        ProtobufCMessage *m = NULL;
        int rc = proto_parse_text(d, (const char *)text, len, path, &m);
        if (fork_line) {
            rejected++;
            char want[64];
            snprintf(want, sizeof want, ":%zu:", fork_line);
            CHECK_MSG(rc == CREMA_ERR_PARSE, "%s uses fork-only field %s (line %zu) but parsed", path, fork,
                      fork_line);
            CHECK_MSG(rc == 0 || (strstr(crema_errmsg(), fork) && strstr(crema_errmsg(), want)),
                      "%s: the error should name %s and line %zu; it is: %s", path, fork, fork_line,
                      crema_errmsg());
        } else {
            CHECK_MSG(rc == 0, "%s did not parse as %s: %s", path, d->name, crema_errmsg());
        }
        if (rc == 0) {
            parsed++;
            if (d == NET) {
                const Caffe__NetParameter *np = (const Caffe__NetParameter *)m;
                if (np->n_layers > 0) {
                    v1++;
                    if (np->layers[0]->layer)
                        v0++;
                }
            }
            char *printed;
            size_t plen;
            CHECK_OK(proto_print_text(m, &printed, &plen));
            ProtobufCMessage *m2 = NULL;
            int rc2 = proto_parse_text(d, printed, plen, "printed", &m2);
            CHECK_MSG(rc2 == 0, "%s: printed text did not parse back: %s", path, crema_errmsg());
            if (rc2 == 0) {
                CHECK_MSG(pt_same_message(m, m2), "%s: read-print-read changed the message", path);
                char *printed2;
                size_t plen2;
                CHECK_OK(proto_print_text(m2, &printed2, &plen2));
                CHECK_MSG(plen == plen2 && memcmp(printed, printed2, plen) == 0,
                          "%s: printing is not stable", path);
                free(printed2);
                round_tripped++;
            }
            proto_free(m2);
            free(printed);
            proto_free(m);
        }
        free(text);
    }
    printf("  %zu prototxts: %zu parsed and round-tripped %zu, %zu rejected for fork-only fields; "
           "%zu with V1 `layers` (%zu V0)\n",
           ps.n, parsed, round_tripped, rejected, v1, v0);
    /* corpus/README.md counts 40 fork-only files; the files themselves hold
     * ceil_mode in 37 and no other fork-only field. */
    CHECK_EQ_INT(rejected, 37);
    CHECK_EQ_INT(parsed + rejected, ps.n);
    CHECK(v0 >= 3 && v1 > v0);
    pt_files_free(&ps);
    free(corpus);
    free(golden);
}

/* ------------------------------------------------------------- syntax */

static void comments_blocks_separators(void)
{
    Caffe__NetParameter *n = (Caffe__NetParameter *)parse_ok(
        NET, "# leading comment\nname: \"net\" # trailing\n"
             "layer < name: 'a'; type: 'ReLU', >\n"
             "layer { name: 'b' }\nlayer: { name: 'c' bottom: 'x' }\n"
             "force_backward: true;");
    if (n) {
        CHECK(strcmp(n->name, "net") == 0);
        CHECK_EQ_INT(n->n_layer, 3);
        CHECK(strcmp(n->layer[0]->name, "a") == 0 && strcmp(n->layer[0]->type, "ReLU") == 0);
        CHECK(strcmp(n->layer[1]->name, "b") == 0);
        CHECK(strcmp(n->layer[2]->name, "c") == 0 && n->layer[2]->n_bottom == 1);
        CHECK(n->has_force_backward && n->force_backward);
        proto_free(&n->base);
    }
    /* Empty input is an empty message. */
    Caffe__NetParameter *e = (Caffe__NetParameter *)parse_ok(NET, "  # nothing\n");
    if (e) {
        CHECK(e->n_layer == 0 && e->name == NULL);
        proto_free(&e->base);
    }
}

static void repeated_and_lists(void)
{
    Caffe__LayerParameter *l = (Caffe__LayerParameter *)parse_ok(
        LAYER, "top: 'a' top: [\"b\", 'c'] bottom: [] loss_weight: [1, 2.5]\n"
               "param { lr_mult: 1 } param: [{ lr_mult: 2 }, < lr_mult: 3 >]");
    if (l) {
        CHECK_EQ_INT(l->n_top, 3);
        CHECK(l->n_top == 3 && strcmp(l->top[2], "c") == 0);
        CHECK_EQ_INT(l->n_bottom, 0);
        CHECK(l->n_loss_weight == 2 && l->loss_weight[1] == 2.5f);
        CHECK(l->n_param == 3 && l->param[2]->lr_mult == 3.0f);
        proto_free(&l->base);
    }
    Caffe__BlobShape *s = (Caffe__BlobShape *)parse_ok(&caffe__blob_shape__descriptor,
                                                       "dim: [1, 0x7fffffffffffffff, -9223372036854775808]");
    if (s) {
        CHECK(s->n_dim == 3 && s->dim[1] == INT64_MAX && s->dim[2] == INT64_MIN);
        proto_free(&s->base);
    }
}

static void enums(void)
{
    Caffe__PoolingParameter *p =
        (Caffe__PoolingParameter *)parse_ok(&caffe__pooling_parameter__descriptor, "pool: AVE");
    if (p) {
        CHECK(p->has_pool && p->pool == CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE);
        proto_free(&p->base);
    }
    p = (Caffe__PoolingParameter *)parse_ok(&caffe__pooling_parameter__descriptor, "pool: 2");
    if (p) {
        CHECK(p->pool == CAFFE__POOLING_PARAMETER__POOL_METHOD__STOCHASTIC);
        proto_free(&p->base);
    }
    FAILS(&caffe__pooling_parameter__descriptor, "\n pool: MEDIAN", "t.prototxt:2:8:", "pool",
          "caffe.PoolingParameter", "MEDIAN", "AVE");
    FAILS(&caffe__pooling_parameter__descriptor, "pool: 7", ":1:7:", "pool", "7");
    FAILS(&caffe__pooling_parameter__descriptor, "pool: 'AVE'", "pool", "enum");
}

static void strings(void)
{
    Caffe__LayerParameter *l = (Caffe__LayerParameter *)parse_ok(
        LAYER, "name: 'a\\n\\t\\\\\\'\\\"\\101\\x42\\0103' \"cd\" 'e'\n"
               "type: \"it's\" top: '' top: \"\\r\\a\\b\\f\\v\\?\\x4a4\"");
    if (l) {
        CHECK_MSG(strcmp(l->name, "a\n\t\\'\"AB\x08" "3cde") == 0, "got name \"%s\"", l->name);
        CHECK(strcmp(l->type, "it's") == 0);
        CHECK(l->n_top == 2 && strcmp(l->top[0], "") == 0);
        CHECK(l->n_top == 2 && strcmp(l->top[1], "\r\a\b\f\v?J4") == 0);
        proto_free(&l->base);
    }
    /* bytes: embedded NULs survive. */
    Caffe__Datum *d = (Caffe__Datum *)parse_ok(&caffe__datum__descriptor, "data: 'a\\000b\\377' channels: 1");
    if (d) {
        CHECK(d->has_data && d->data.len == 4 && d->data.data[1] == 0 && d->data.data[3] == 0xff);
        char *t;
        CHECK_OK(proto_print_text(&d->base, &t, NULL));
        CHECK_MSG(strcmp(t, "channels: 1\ndata: \"a\\000b\\377\"\n") == 0, "printed: %s", t);
        free(t);
        proto_free(&d->base);
    }
    FAILS(LAYER, "name: 'abc", "t.prototxt:1:7:", "unterminated string");
    FAILS(LAYER, "name: 'ab\ncd'", ":1:7:", "line");
    FAILS(LAYER, "name: 'a\\qb'", "escape");
    FAILS(LAYER, "name: 'a\\x'", "hex");
    FAILS(LAYER, "name: a", "name", "caffe.LayerParameter", "quoted string");
}

static void integers(void)
{
    Caffe__ConvolutionParameter *c = (Caffe__ConvolutionParameter *)parse_ok(
        &caffe__convolution_parameter__descriptor,
        "num_output: 0x10 group: 010 axis: -2147483648 pad: [0, 4294967295] kernel_size: 0XfF");
    if (c) {
        CHECK_EQ_INT(c->num_output, 16);
        CHECK_EQ_INT(c->group, 8);
        CHECK_EQ_INT(c->axis, INT32_MIN);
        CHECK(c->n_pad == 2 && c->pad[1] == UINT32_MAX);
        CHECK(c->n_kernel_size == 1 && c->kernel_size[0] == 255);
        proto_free(&c->base);
    }
    const ProtobufCMessageDescriptor *cd = &caffe__convolution_parameter__descriptor;
    FAILS(cd, "num_output: 4294967296", "num_output", "caffe.ConvolutionParameter", "out of range", "uint32");
    FAILS(cd, "num_output: -1", "num_output", "negative");
    FAILS(cd, "axis: 2147483648", "axis", "out of range", "int32");
    FAILS(cd, "axis: -2147483649", "axis", "out of range");
    FAILS(cd, "axis: 99999999999999999999999", "axis", "out of range");
    FAILS(cd, "axis: 1.5", "axis", "integer");
    FAILS(cd, "axis: one", "axis", "integer", "\"one\"");
    FAILS(cd, "group: 09", "octal");
    FAILS(cd, "group: 0x", "hex");
    FAILS(cd, "group: 12abc", "space between number");
    Caffe__SolverParameter *s = (Caffe__SolverParameter *)parse_ok(SOLVER, "random_seed: -5 max_iter: 07");
    if (s) {
        CHECK(s->has_random_seed && s->random_seed == -5);
        CHECK_EQ_INT(s->max_iter, 7);
        proto_free(&s->base);
    }
}

static void floats(void)
{
    Caffe__LayerParameter *l = (Caffe__LayerParameter *)parse_ok(
        LAYER, "loss_weight: [1e-3, 1.5E+2, inf, -inf, nan, infinity, -Infinity, 1.0f, 2F, 3, 0x10, .5, -0.25,"
               " 1e40, 1.e1]");
    if (l) {
        CHECK_EQ_INT(l->n_loss_weight, 15);
        if (l->n_loss_weight == 15) {
            const float *w = l->loss_weight;
            CHECK(w[0] == 1e-3f && w[1] == 150.0f && isinf(w[2]) && w[2] > 0 && isinf(w[3]) && w[3] < 0);
            CHECK(isnan(w[4]) && isinf(w[5]) && w[6] < 0 && isinf(w[6]));
            CHECK(w[7] == 1.0f && w[8] == 2.0f && w[9] == 3.0f && w[10] == 16.0f && w[11] == 0.5f);
            CHECK(w[12] == -0.25f && isinf(w[13]) && w[14] == 10.0f);
        }
        proto_free(&l->base);
    }
    Caffe__BlobProto *b = (Caffe__BlobProto *)parse_ok(&caffe__blob_proto__descriptor,
                                                       "double_data: [0.1, 1e-300, -2]");
    if (b) {
        CHECK(b->n_double_data == 3 && b->double_data[0] == 0.1 && b->double_data[1] == 1e-300);
        proto_free(&b->base);
    }
    FAILS(LAYER, "loss_weight: x", "loss_weight", "number");
    FAILS(LAYER, "loss_weight: 'x'", "loss_weight", "number");
    FAILS(LAYER, "loss_weight: 1e", "exponent");
}

static void booleans(void)
{
    static const char *const yes[] = { "true", "True", "t", "1" };
    static const char *const no[] = { "false", "False", "f", "0" };
    for (int k = 0; k < 8; k++) {
        char text[64];
        snprintf(text, sizeof text, "mirror: %s", k < 4 ? yes[k] : no[k - 4]);
        Caffe__TransformationParameter *t =
            (Caffe__TransformationParameter *)parse_ok(&caffe__transformation_parameter__descriptor, text);
        if (t) {
            CHECK_MSG(t->has_mirror && t->mirror == (k < 4), "%s gave %d", text, t->mirror);
            proto_free(&t->base);
        }
    }
    FAILS(&caffe__transformation_parameter__descriptor, "mirror: yes", "mirror", "boolean", "\"yes\"");
    FAILS(&caffe__transformation_parameter__descriptor, "mirror: 2", "mirror", "boolean");
}

static void structure_errors(void)
{
    FAILS(NET, "layer {\n  name: 'a'\n  nmae: 'x'\n}", "t.prototxt:3:3:", "nmae", "caffe.LayerParameter");
    FAILS(NET, "layer {\n  name: 'a'\n", "t.prototxt:3:1:", "end of input", "caffe.LayerParameter");
    FAILS(NET, "layer { name: 'a' ", "end of input");
    FAILS(NET, "layer { name 'a' }", "name", "\":\"");
    FAILS(NET, "name: 'a' name: 'b'", "name", "multiple times");
    FAILS(NET, "layer { convolution_param { } convolution_param { } }", "convolution_param", "multiple times");
    FAILS(NET, "layer }", "layer", "\"{\"");
    FAILS(NET, "}", "field name");
    FAILS(NET, "layer { name: 'a' >", "field name");
    FAILS(NET, "name: ['a']", "name", "not repeated");
    FAILS(NET, "layer { top: ['a' 'b' }", "top");
    FAILS(NET, "name: \"a\" \x01", "invalid character", ":1:11:");
    FAILS(NET, "layer { clip_param { min: 1 } }", "caffe.ClipParameter", "required", "max");
    Caffe__ClipParameter *c = (Caffe__ClipParameter *)parse_ok(&caffe__clip_parameter__descriptor, "max: 2 min: -1");
    if (c) {
        CHECK(c->min == -1.0f && c->max == 2.0f);
        char *t;
        CHECK_OK(proto_print_text(&c->base, &t, NULL));
        CHECK_MSG(strcmp(t, "min: -1\nmax: 2\n") == 0, "printed: %s", t);
        free(t);
        proto_free(&c->base);
    }
    /* Input that is not text at all. */
    static const char junk[] = { 'n', 'a', 'm', 'e', ':', ' ', '\'', 0, '\'', 0, (char)0xff };
    ProtobufCMessage *m = NULL;
    CHECK(proto_parse_text(NET, junk, sizeof junk, "junk", &m) == CREMA_ERR_PARSE && m == NULL);
}

/* A self-referencing message type, to reach the depth limit (caffe.proto
 * has no recursive message). */
typedef struct Node {
    ProtobufCMessage base;
    struct Node *child;
    size_t n_v;
    int32_t *v;
} Node;
static const ProtobufCMessageDescriptor node_desc;
static const ProtobufCFieldDescriptor node_fields[2] = {
    { "child", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, 0, offsetof(Node, child), &node_desc,
      NULL, 0, 0, NULL, NULL },
    { "v", 2, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_INT32, offsetof(Node, n_v), offsetof(Node, v), NULL,
      NULL, 0, 0, NULL, NULL },
};
static const unsigned node_by_name[] = { 0, 1 };
static const ProtobufCIntRange node_ranges[] = { { 1, 0 }, { 0, 2 } };
static void node_init(Node *n)
{
    memset(n, 0, sizeof *n);
    n->base.descriptor = &node_desc;
}
static const ProtobufCMessageDescriptor node_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.Node", "Node", "Node", "test", sizeof(Node), 2, node_fields,
    node_by_name, 1, node_ranges, (ProtobufCMessageInit)node_init, NULL, NULL, NULL
};

static char *nested(int depth, const char *open, const char *close)
{
    size_t ol = strlen(open), cl = strlen(close);
    char *t = malloc((size_t)depth * (ol + cl) + 16);
    size_t o = 0;
    for (int i = 0; i < depth; i++) {
        memcpy(t + o, open, ol);
        o += ol;
    }
    memcpy(t + o, "v: 1 ", 5);
    o += 5;
    for (int i = 0; i < depth; i++) {
        memcpy(t + o, close, cl);
        o += cl;
    }
    t[o] = 0;
    return t;
}

static void depth_and_size_limits(void)
{
    char *ok = nested(100, "child { ", "} ");
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_parse_text(&node_desc, ok, strlen(ok), "deep", &m));
    if (m) {
        char *t;
        CHECK_OK(proto_print_text(m, &t, NULL));
        CHECK(t && strstr(t, "child {\n  child {\n") == t);
        free(t);
        proto_free(m);
    }
    free(ok);
    char *deep = nested(101, "child < ", "> ");
    m = NULL;
    CHECK(proto_parse_text(&node_desc, deep, strlen(deep), "deep", &m) == CREMA_ERR_PARSE && m == NULL);
    CHECK_MSG(strstr(crema_errmsg(), "deeper than 100"), "got: %s", crema_errmsg());
    free(deep);
    /* A million open braces: an error, not a stack overflow. */
    char *hostile = nested(1000000, "child{", "}");
    CHECK(proto_parse_text(&node_desc, hostile, strlen(hostile), "hostile", &m) == CREMA_ERR_PARSE);
    free(hostile);
    /* A large input: 4 million repeated values. */
    size_t count = 4000000;
    char *big = malloc(count * 5 + 1);
    for (size_t i = 0; i < count; i++)
        memcpy(big + i * 5, "v: 7\n", 5);
    big[count * 5] = 0;
    m = NULL;
    CHECK_OK(proto_parse_text(&node_desc, big, count * 5, "big", &m));
    if (m) {
        Node *n = (Node *)m;
        CHECK_EQ_INT(n->n_v, count);
        CHECK(n->v[count - 1] == 7);
        proto_free(m);
    }
    free(big);
}

/* ------------------------------------------------------------ printer */

static void printer_format(void)
{
    Caffe__NetParameter *n = (Caffe__NetParameter *)parse_ok(
        NET, "layer { type: 'Pooling' name: \"p\\n'q\\001\" pooling_param { pool: AVE kernel_size: 3 } "
             "loss_weight: 0.1 loss_weight: 0.333333343 loss_weight: 1e-10 loss_weight: -inf loss_weight: 100000000 "
             "propagate_down: false } name: 'n' force_backward: true");
    if (!n)
        return;
    char *t;
    size_t len;
    CHECK_OK(proto_print_text(&n->base, &t, &len));
    /* Fields in field-number order; floats in the fewest digits that read back. */
    const char *want = "name: \"n\"\n"
                       "force_backward: true\n"
                       "layer {\n"
                       "  name: \"p\\n\\'q\\001\"\n"
                       "  type: \"Pooling\"\n"
                       "  loss_weight: 0.1\n"
                       "  loss_weight: 0.333333343\n"
                       "  loss_weight: 1e-10\n"
                       "  loss_weight: -inf\n"
                       "  loss_weight: 1e+08\n"
                       "  propagate_down: false\n"
                       "  pooling_param {\n"
                       "    pool: AVE\n"
                       "    kernel_size: 3\n"
                       "  }\n"
                       "}\n";
    CHECK_MSG(strcmp(t, want) == 0, "printed:\n%s\nexpected:\n%s", t, want);
    CHECK_EQ_INT(len, strlen(t));
    free(t);
    proto_free(&n->base);

    /* Every float reads back exactly. */
    Caffe__LayerParameter l = CAFFE__LAYER_PARAMETER__INIT;
    float vals[2000];
    uint32_t bits = 0x9e3779b9u;
    for (int i = 0; i < 2000; i++) {
        bits = bits * 1664525u + 1013904223u;
        uint32_t b = (bits & 0x7f7fffffu); /* finite */
        memcpy(&vals[i], &b, 4);
        if (i & 1)
            vals[i] = -vals[i];
    }
    l.n_loss_weight = 2000;
    l.loss_weight = vals;
    CHECK_OK(proto_print_text(&l.base, &t, &len));
    ProtobufCMessage *back = NULL;
    CHECK_OK(proto_parse_text(LAYER, t, len, "floats", &back));
    if (back) {
        Caffe__LayerParameter *lb = (Caffe__LayerParameter *)back;
        CHECK(lb->n_loss_weight == 2000 && memcmp(lb->loss_weight, vals, sizeof vals) == 0);
        proto_free(back);
    }
    free(t);
}

static void files(void)
{
    char *dir = check_tmpdir("text_format");
    char path[512], uri[600];
    snprintf(path, sizeof path, "%s/s.prototxt", dir);
    snprintf(uri, sizeof uri, "file://%s", path);
    Caffe__SolverParameter *s = (Caffe__SolverParameter *)parse_ok(SOLVER, "base_lr: 0.01 type: 'Adam' net: 'x'");
    if (s) {
        CHECK_OK(proto_write_text(uri, &s->base));
        ProtobufCMessage *r = NULL;
        CHECK_OK(proto_read_text(path, SOLVER, &r));
        CHECK(r && pt_same_message(r, &s->base));
        proto_free(r);
        proto_free(&s->base);
    }
    ProtobufCMessage *r = NULL;
    CHECK(proto_read_text("/nonexistent/x.prototxt", NET, &r) == CREMA_ERR_IO && r == NULL);
    CHECK(strstr(crema_errmsg(), "/nonexistent/x.prototxt"));
    free(dir);
}

CHECK_MAIN(CASE(corpus_prototxts), CASE(comments_blocks_separators), CASE(repeated_and_lists), CASE(enums),
           CASE(strings), CASE(integers), CASE(floats), CASE(booleans), CASE(structure_errors),
           CASE(depth_and_size_limits), CASE(printer_format), CASE(files))
