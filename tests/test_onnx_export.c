/* The ONNX exporter from C (also under the sanitizers): every golden layer
 * case and a few deploy nets exported and read back with protobuf-c, the
 * graph checked for what every ONNX reader relies on (values defined once
 * and before use, the net's inputs and outputs, initializer sizes,
 * attribute types, opset); refusals and bad arguments. The numbers are
 * checked against ONNX Runtime by tests/test_python_onnx.sh. */
#include "check.h"
#include "crema.h"
#include "onnx.pb-c.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *g_tmp;

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static Onnx__ModelProto *read_model(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    Onnx__ModelProto *m = got == (size_t)n ? onnx__model_proto__unpack(NULL, got, buf) : NULL;
    free(buf);
    return m;
}

/* A small set of names (the graph's values). */
struct names {
    const char **v;
    size_t n, cap;
};

static int names_has(const struct names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return 1;
    return 0;
}

static void names_add(struct names *s, const char *name)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = name;
}

static size_t count_of(const Onnx__TensorProto *t)
{
    size_t c = 1;
    for (size_t i = 0; i < t->n_dims; i++)
        c *= (size_t)t->dims[i];
    return c;
}

/* What ONNX readers need from the graph; the net's inputs and outputs. */
static void check_graph(const char *what, const Onnx__ModelProto *m, crema_net *net, int opset)
{
    CHECK_MSG(m->ir_version >= 7 && m->ir_version <= 10, "%s: IR version %lld", what, (long long)m->ir_version);
    CHECK_MSG(m->n_opset_import == 1 && m->opset_import[0]->version == opset, "%s: opset", what);
    CHECK(streq(m->producer_name, "crema"));
    const Onnx__GraphProto *g = m->graph;
    if (!g) {
        CHECK_MSG(0, "%s: no graph", what);
        return;
    }
    struct names defined = { 0 };
    CHECK_EQ_INT(g->n_input, crema_net_num_inputs(net));
    for (size_t i = 0; i < g->n_input; i++) {
        CHECK_MSG(streq(g->input[i]->name, crema_net_input_name(net, (int)i)), "%s: input %zu is %s", what, i,
                  g->input[i]->name);
        names_add(&defined, g->input[i]->name);
    }
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        CHECK_MSG(!names_has(&defined, t->name), "%s: value %s defined twice", what, t->name);
        names_add(&defined, t->name);
        size_t have = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data : t->n_int64_data;
        CHECK_MSG(have == count_of(t), "%s: initializer %s holds %zu values for %zu", what, t->name, have,
                  count_of(t));
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        CHECK_MSG(n->op_type && *n->op_type, "%s: node %zu has no op_type", what, i);
        for (size_t j = 0; j < n->n_input; j++)
            CHECK_MSG(!*n->input[j] || names_has(&defined, n->input[j]),
                      "%s: node %s (%s) reads %s before it is defined", what, n->name, n->op_type, n->input[j]);
        for (size_t j = 0; j < n->n_attribute; j++) {
            const Onnx__AttributeProto *a = n->attribute[j];
            int ok = a->has_type && ((a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT && a->has_i) ||
                                     (a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT && a->has_f) ||
                                     a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
            CHECK_MSG(ok, "%s: node %s attribute %s has the wrong type", what, n->name, a->name);
        }
        for (size_t j = 0; j < n->n_output; j++) {
            CHECK_MSG(!names_has(&defined, n->output[j]), "%s: node %s writes %s again", what, n->name,
                      n->output[j]);
            names_add(&defined, n->output[j]);
        }
    }
    CHECK_EQ_INT(g->n_output, crema_net_num_outputs(net));
    for (size_t i = 0; i < g->n_output; i++) {
        CHECK_MSG(streq(g->output[i]->name, crema_net_output_name(net, (int)i)), "%s: output %zu is %s", what, i,
                  g->output[i]->name);
        CHECK_MSG(names_has(&defined, g->output[i]->name), "%s: output %s is never made", what,
                  g->output[i]->name);
    }
    free(defined.v);
}

static int is_refused_type(const char *msg)
{
    static const char *const types[] = { "(Data)", "(MemoryData)", "(HDF5Output)", "(RNN)", "(LSTM)", "Loss)", "(Accuracy)" };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strstr(msg, types[i]))
            return 1;
    return 0;
}

static int export_and_check(const char *what, crema_net *net, int opset, unsigned flags)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/x.onnx", g_tmp);
    int rc = crema_net_export_onnx(net, path, opset, flags);
    if (rc)
        return rc;
    Onnx__ModelProto *m = read_model(path);
    CHECK_MSG(m != NULL, "%s: the file does not parse as a ModelProto", what);
    if (m) {
        check_graph(what, m, net, opset ? opset : CREMA_ONNX_OPSET_DEFAULT);
        if (!(flags & CREMA_ONNX_FIXED_BATCH) && m->graph->n_input && m->graph->input[0]->type->tensor_type->shape)
            CHECK(streq(m->graph->input[0]->type->tensor_type->shape->dim[0]->dim_param, "N"));
        onnx__model_proto__free_unpacked(m, NULL);
    }
    unlink(path);
    return 0;
}

static int not_hidden(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static void test_layer_cases(void)
{
    char *root = check_shared("golden/layers");
    struct dirent **list = NULL;
    int n = scandir(root, &list, not_hidden, alphasort);
    CHECK(n > 100);
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    int exported = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        const char *c = list[i]->d_name;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, c);
        crema_net *net = NULL;
        /* cases name their files relatively */
        if (strcmp(c, "python") == 0 || chdir(dir) != 0 || crema_net_open("net.prototxt", NULL, CREMA_TEST, &net)) {
            CHECK_MSG(strcmp(c, "python") == 0, "case %s does not open: %s", c, crema_errmsg());
            free(list[i]);
            CHECK(chdir(cwd) == 0);
            continue;
        }
        CHECK(chdir(cwd) == 0);
        int rc = export_and_check(c, net, 0, 0);
        if (rc == CREMA_ERR_UNSUPPORTED && strstr(crema_errmsg(), "fixed batch"))
            rc = export_and_check(c, net, 0, CREMA_ONNX_FIXED_BATCH);
        if (rc == 0) {
            exported++;
        } else {
            const char *msg = crema_errmsg();
            CHECK_MSG(rc == CREMA_ERR_UNSUPPORTED && (is_refused_type(msg) || strstr(msg, "has no outputs")),
                      "case %s: export failed (%d): %s", c, rc, msg);
            char path[4096];
            snprintf(path, sizeof path, "%s/x.onnx", g_tmp);
            CHECK_MSG(access(path, F_OK) != 0, "case %s: a refused export left %s", c, path);
            refused++;
        }
        crema_net_free(net);
        free(list[i]);
    }
    free(list);
    free(root);
    fprintf(stderr, "golden layer cases: %d exported, %d refused\n", exported, refused);
    CHECK(exported >= 90);
}

static void test_deploy_nets(void)
{
    static const char *const nets[] = {
        "corpus/zoo/zoo_squeezenet/SqueezeNet_v1.1/deploy.prototxt",
        "corpus/caffe/models/bvlc_googlenet/deploy.prototxt",
        "corpus/zoo/zoo_shicai_mobilenet/mobilenet_v2_deploy.prototxt",
    };
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        char *p = check_shared(nets[i]);
        crema_net *net = NULL;
        CHECK_OK(crema_net_open(p, NULL, CREMA_TEST, &net));
        if (net) {
            CHECK_OK(export_and_check(nets[i], net, 0, 0));
            CHECK_OK(export_and_check(nets[i], net, CREMA_ONNX_OPSET_MIN, CREMA_ONNX_FIXED_BATCH));
            CHECK_OK(export_and_check(nets[i], net, CREMA_ONNX_OPSET_MAX, 0));
        }
        crema_net_free(net);
        free(p);
    }
}

/* Reduce* take their axes as an attribute before opset 18 and as an input
 * from 18 on. */
static void test_opset_forms(void)
{
    char *p = check_shared("golden/layers/mvn/net.prototxt");
    crema_net *net = NULL;
    CHECK_OK(crema_net_open(p, NULL, CREMA_TEST, &net));
    char path[4096];
    snprintf(path, sizeof path, "%s/mvn.onnx", g_tmp);
    for (int opset = 17; net && opset <= 18; opset++) {
        CHECK_OK(crema_net_export_onnx(net, path, opset, 0));
        Onnx__ModelProto *m = read_model(path);
        CHECK(m != NULL);
        int seen = 0;
        for (size_t i = 0; m && i < m->graph->n_node; i++) {
            const Onnx__NodeProto *n = m->graph->node[i];
            if (!streq(n->op_type, "ReduceMean"))
                continue;
            seen++;
            int attr = 0;
            for (size_t j = 0; j < n->n_attribute; j++)
                attr |= streq(n->attribute[j]->name, "axes");
            CHECK_EQ_INT(attr, opset < 18);
            CHECK_EQ_INT(n->n_input, opset < 18 ? 1 : 2);
        }
        CHECK(seen > 0);
        if (m)
            onnx__model_proto__free_unpacked(m, NULL);
    }
    unlink(path);
    crema_net_free(net);
    free(p);
}

static void test_errors(void)
{
    char *p = check_shared("golden/models/lenet_mnist/net.prototxt");
    crema_net *net = NULL;
    CHECK_OK(crema_net_open(p, NULL, CREMA_TEST, &net));
    char path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/e.onnx", g_tmp);
    snprintf(bad, sizeof bad, "%s/no/such/dir/e.onnx", g_tmp);
    CHECK_EQ_INT(crema_net_export_onnx(NULL, path, 0, 0), CREMA_ERR_INVALID);
    CHECK_EQ_INT(crema_net_export_onnx(net, NULL, 0, 0), CREMA_ERR_INVALID);
    CHECK_EQ_INT(crema_net_export_onnx(net, path, CREMA_ONNX_OPSET_MIN - 1, 0), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "opset") != NULL);
    CHECK_EQ_INT(crema_net_export_onnx(net, path, CREMA_ONNX_OPSET_MAX + 1, 0), CREMA_ERR_INVALID);
    CHECK_EQ_INT(crema_net_export_onnx(net, path, 0, 2), CREMA_ERR_INVALID);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(crema_net_export_onnx(net, bad, 0, 0), CREMA_ERR_IO);
    CHECK(strstr(crema_errmsg(), "no/such/dir") != NULL);
    crema_net_free(net);
    free(p);

    /* A data layer: refused by name, nothing written. */
    p = check_shared("golden/data/memory_data/net.prototxt");
    CHECK_OK(crema_net_open(p, NULL, CREMA_TEST, &net));
    if (net) {
        CHECK_EQ_INT(crema_net_export_onnx(net, path, 0, 0), CREMA_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(crema_errmsg(), "layer data (MemoryData)") != NULL, "message: %s", crema_errmsg());
        CHECK(access(path, F_OK) != 0);
    }
    crema_net_free(net);
    free(p);
}

int main(int argc, char **argv)
{
    g_tmp = check_tmpdir("onnx_export");
    static const struct check_case cases[] = { CASE(test_layer_cases), CASE(test_deploy_nets),
                                               CASE(test_opset_forms), CASE(test_errors) };
    int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
    free(g_tmp);
    return rc;
}
